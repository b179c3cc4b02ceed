//! The drift report in its four forms: human text, JSON lines, JUnit XML and a node_exporter textfile.
//! Each is built as one string and passed through the run's [`Masker`] as a whole, and a drifted
//! file's diff is the plan's (already reduced to line counts and digests for a sensitive task), so
//! no secret reaches any of them.

use super::{DriftReport, Finding, HostDrift};
use crate::execute::{NodeReport, Outcome};
use crate::report::human::unified;
use crate::report::mask::Masker;
use console::style;
use serde_json::json;
use std::time::UNIX_EPOCH;

/// How the plan walk described a task's change (the "how" of a drift).
fn why(r: &NodeReport) -> String {
    match &r.outcome {
        Outcome::Change { details, .. } => details.join("; "),
        _ => String::new(),
    }
}

/// The human report: per host, each drifted task with what moved and its diff, pending tasks, errors;
/// then a closing line.
pub fn human(d: &DriftReport, masker: &Masker) -> String {
    let mut out = String::new();
    for h in &d.hosts {
        let checked = h.checks.len();
        let drifted = h.drifted().count();
        out.push_str(&format!("{}", style(&h.host).bold().underlined()));
        if let Some(m) = &h.unreachable {
            out.push_str(&format!(
                "\n  {} unreachable: {m}\n",
                style("!").red().bold()
            ));
            continue;
        }
        out.push_str(&format!(
            "  {}\n",
            style(format!("{drifted} drifted of {checked} checked")).dim()
        ));
        for c in &h.checks {
            let r = c.report;
            let target = r.target.as_deref().unwrap_or(&r.kind);
            let (mark, note) = match &c.finding {
                Finding::InSync => continue,
                Finding::Drifted(since) => (style("~").yellow(), since.explain().to_string()),
                Finding::Pending(m) => (style("?").dim(), format!("pending: {m}")),
                Finding::Error(m) => (style("!").red().bold(), format!("cannot check: {m}")),
            };
            out.push_str(&format!("  {mark} {}  {}\n", r.task, style(target).dim()));
            out.push_str(&format!("      {note}\n"));
            if matches!(c.finding, Finding::Drifted(_)) {
                for l in why(r).split("; ").filter(|l| !l.is_empty()) {
                    out.push_str(&format!("      {}\n", style(l).dim()));
                }
                if let Outcome::Change {
                    diff: Some(diff), ..
                } = &r.outcome
                {
                    for l in unified(diff).lines() {
                        out.push_str(&format!("      {l}\n"));
                    }
                }
            }
        }
        for (r, m) in &h.errors {
            out.push_str(&format!(
                "  {} {}  would fail: {m}\n",
                style("!").red().bold(),
                r.task
            ));
        }
    }
    let unreachable = d.unreachable();
    let mut line = format!(
        "\nDrift: {} drifted on {} of {} hosts, {} pending",
        d.drifted(),
        d.hosts
            .iter()
            .filter(|h| h.drifted().next().is_some())
            .count(),
        d.hosts.len(),
        d.pending()
    );
    if !unreachable.is_empty() {
        line.push_str(&format!(", unreachable: {}", unreachable.join(", ")));
    }
    line.push_str(&format!(" ({:.2}s).", d.duration.as_secs_f64()));
    out.push_str(&line);
    masker.masked(&out)
}

/// JSON lines: one `drift` object per drifted task, one `error` object per task that could not be
/// checked and per unreachable host, then the `summary` object (the schema the README documents).
pub fn json_lines(d: &DriftReport, masker: &Masker) -> String {
    let mut lines = Vec::new();
    for h in &d.hosts {
        if let Some(m) = &h.unreachable {
            lines.push(json!({"type": "error", "host": h.host, "unreachable": true, "message": m}));
        }
        for c in &h.checks {
            let r = c.report;
            match &c.finding {
                Finding::Drifted(since) => lines.push(json!({
                    "type": "drift",
                    "host": r.host,
                    "task": r.task,
                    "resource": r.kind,
                    "target": r.target,
                    "location": r.location,
                    "why": why(r),
                    "since": since.as_str(),
                    "diff": match &r.outcome {
                        Outcome::Change { diff: Some(diff), .. } => Some(unified(diff)),
                        _ => None,
                    },
                })),
                Finding::Error(m) => lines.push(error(r, m)),
                Finding::InSync | Finding::Pending(_) => {}
            }
        }
        for (r, m) in &h.errors {
            lines.push(error(r, m));
        }
    }
    lines.push(json!({
        "type": "summary",
        "hosts": d.hosts.len(),
        "checked": d.hosts.iter().map(|h| h.checks.len()).sum::<usize>(),
        "drifted": d.drifted(),
        "unreachable": d.unreachable(),
        "pending": d.pending(),
        "exit_code": d.exit_code(),
        "duration_ms": d.duration.as_millis() as u64,
    }));
    let text: Vec<String> = lines
        .iter()
        .map(|l| serde_json::to_string(l).expect("JSON of JSON"))
        .collect();
    masker.masked(&text.join("\n"))
}

fn error(r: &NodeReport, message: &str) -> serde_json::Value {
    json!({
        "type": "error",
        "host": r.host,
        "task": r.task,
        "resource": r.kind,
        "location": r.location,
        "unreachable": false,
        "message": message,
    })
}

/// `s` as XML text or attribute value.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: a testsuite per host, a testcase per checked task (a `<failure>` when it drifted, an
/// `<error>` when it could not be checked), and for an unreachable host one testcase with an
/// `<error>`.
pub fn junit(d: &DriftReport, masker: &Masker) -> String {
    let mut suites = String::new();
    let (mut tests, mut failures, mut errors) = (0, 0, 0);
    for h in &d.hosts {
        let (body, t, f, e) = junit_host(h);
        suites.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{t}\" failures=\"{f}\" errors=\"{e}\">\n{body}  </testsuite>\n",
            xml(&h.host)
        ));
        tests += t;
        failures += f;
        errors += e;
    }
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"apim-provision drift\" tests=\"{tests}\" \
         failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">\n{suites}</testsuites>\n",
        d.duration.as_secs_f64()
    );
    masker.masked(&text)
}

fn junit_host(h: &HostDrift) -> (String, usize, usize, usize) {
    let host = xml(&h.host);
    if let Some(m) = &h.unreachable {
        let body = format!(
            "    <testcase classname=\"{host}\" name=\"reach {host}\">\n      <error message=\"unreachable\">{}</error>\n    </testcase>\n",
            xml(m)
        );
        return (body, 1, 0, 1);
    }
    let (mut body, mut f, mut e) = (String::new(), 0, 0);
    let case = |r: &NodeReport, inner: String| {
        let target = r.target.as_deref().unwrap_or(&r.kind);
        format!(
            "    <testcase classname=\"{host}\" name=\"{}: {}\">{inner}</testcase>\n",
            xml(&r.task),
            xml(target)
        )
    };
    for c in &h.checks {
        let inner = match &c.finding {
            Finding::InSync | Finding::Pending(_) => String::new(),
            Finding::Drifted(since) => {
                f += 1;
                format!(
                    "\n      <failure message=\"{}\">{}</failure>\n    ",
                    since.explain(),
                    xml(&why(c.report))
                )
            }
            Finding::Error(m) => {
                e += 1;
                format!(
                    "\n      <error message=\"cannot check\">{}</error>\n    ",
                    xml(m)
                )
            }
        };
        body.push_str(&case(c.report, inner));
    }
    for (r, m) in &h.errors {
        e += 1;
        body.push_str(&case(
            r,
            format!(
                "\n      <error message=\"would fail\">{}</error>\n    ",
                xml(m)
            ),
        ));
    }
    (body, h.checks.len() + h.errors.len(), f, e)
}

/// `s` as a Prometheus label value.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The node_exporter textfile: drifted resources and reachability per host (an unreachable host has no
/// drift count: it is unknown, not zero), when the check ran and how long it took, and when each host
/// was last applied (hosts with a record).
pub fn prometheus(d: &DriftReport, masker: &Masker) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, samples: Vec<(Option<&str>, String)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (host, v) in samples {
            match host {
                Some(h) => out.push_str(&format!("{name}{{host=\"{}\"}} {v}\n", label(h))),
                None => out.push_str(&format!("{name} {v}\n")),
            }
        }
    };
    metric(
        "apim_provision_drift_resources",
        "Resources that drifted from the inventory, per reachable host.",
        d.hosts
            .iter()
            .filter(|h| h.unreachable.is_none())
            .map(|h| (Some(h.host.as_str()), h.drifted().count().to_string()))
            .collect(),
    );
    metric(
        "apim_provision_drift_host_unreachable",
        "1 when the host could not be reached to check it.",
        d.hosts
            .iter()
            .map(|h| {
                (
                    Some(h.host.as_str()),
                    u8::from(h.unreachable.is_some()).to_string(),
                )
            })
            .collect(),
    );
    let finished = d
        .finished
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    metric(
        "apim_provision_drift_last_run_timestamp_seconds",
        "When the last drift check finished.",
        vec![(None, format!("{finished:.3}"))],
    );
    metric(
        "apim_provision_drift_last_run_duration_seconds",
        "How long the last drift check took.",
        vec![(None, format!("{:.3}", d.duration.as_secs_f64()))],
    );
    metric(
        "apim_provision_last_apply_timestamp_seconds",
        "When the last successful apply of the host finished.",
        d.hosts
            .iter()
            .filter_map(|h| h.last_apply.map(|t| (Some(h.host.as_str()), t.to_string())))
            .collect(),
    );
    masker.masked(&out)
}
