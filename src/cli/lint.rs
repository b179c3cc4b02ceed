//! `lint` and the lint that `plan` runs first: the findings as text or JSON, and the exit code.

use super::{load, print_out, Target};
use anyhow::{Context, Result};
use apim_provision::lint::{self, Finding, Severity};
use apim_provision::plan::Prepared;
use apim_provision::report::mask::Masker;
use clap::Args;

/// `apim-provision lint`'s arguments.
#[derive(Args, Clone)]
pub(crate) struct LintArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// One JSON object: the findings and their counts.
    #[arg(long)]
    json: bool,
    /// Warnings fail too (exit 1), and literal secrets are errors.
    #[arg(long)]
    strict: bool,
}

/// The options of a lint run now, for this user.
pub(crate) fn options(strict: bool) -> lint::Options {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    lint::Options {
        strict,
        home: std::env::var_os("HOME").map(Into::into),
        now,
    }
}

/// Runs `lint`; returns the exit code.
pub(crate) fn run(a: &LintArgs, masker: &Masker) -> Result<i32> {
    let p = load(&a.target, masker)?;
    let findings = lint::lint(&p, &options(a.strict)).context("lint")?;
    if a.json {
        print_out(&masker.mask(&to_json(&findings).to_string()))?;
    } else {
        for f in &findings {
            print_out(&masker.mask(&human(f)))?;
        }
        print_out(&summary(&findings))?;
    }
    Ok(lint::exit_code(&findings, a.strict))
}

/// The lint `plan` runs before planning: findings on stderr, as warnings. Returns whether `--strict`
/// makes them fail the plan.
pub(crate) fn before_plan(p: &Prepared, strict: bool, masker: &Masker) -> Result<bool> {
    let findings = lint::lint(p, &options(strict)).context("lint")?;
    for f in findings.iter().filter(|f| f.severity > Severity::Info) {
        eprintln!("{}", masker.mask(&human(f)));
    }
    Ok(lint::exit_code(&findings, strict) != 0)
}

fn human(f: &Finding) -> String {
    let word = match f.severity {
        Severity::Error => console::style("error").red().bold(),
        Severity::Warning => console::style("warning").yellow(),
        Severity::Info => console::style("info").cyan(),
    };
    let on = if f.hosts.is_empty() {
        String::new()
    } else {
        format!(" (hosts: {})", f.hosts.join(", "))
    };
    format!(
        "{word}[{}]: {}: {}{on}\n  fix: {}",
        f.check, f.loc, f.why, f.fix
    )
}

fn summary(findings: &[Finding]) -> String {
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    format!(
        "lint: {} errors, {} warnings, {} infos",
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info)
    )
}

fn to_json(findings: &[Finding]) -> serde_json::Value {
    let list: Vec<_> = findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "severity": f.severity.as_str(),
                "check": f.check,
                "file": f.loc.file,
                "line": f.loc.line,
                "why": f.why,
                "fix": f.fix,
                "hosts": f.hosts,
            })
        })
        .collect();
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    serde_json::json!({
        "findings": list,
        "errors": count(Severity::Error),
        "warnings": count(Severity::Warning),
        "infos": count(Severity::Info),
    })
}
