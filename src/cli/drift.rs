//! `drift`: the plan walk, read-only, reported as drift (see `apim_provision::drift` for the rules),
//! with optional JUnit and node_exporter files; `--fix` then applies what drifted. `--install-timer`
//! and `--remove-timer` schedule it instead (see `schedule`).

use super::{load, lock, schedule, signals, walk, RunArgs};
use anyhow::{Context, Result};
use apim_provision::drift::record::LastApply;
use apim_provision::drift::{out, record, DriftReport};
use apim_provision::execute::{self, Cancel, Mode, NodeReport, Sink};
use apim_provision::plan::Prepared;
use apim_provision::report::human::{HumanSink, Verbosity};
use apim_provision::report::mask::Masker;
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Options of `drift`: those of plan, and where else to report.
#[derive(Args, Clone)]
pub struct DriftArgs {
    #[command(flatten)]
    pub(super) run: RunArgs,
    /// Also write a JUnit XML report to FILE (a testsuite per host, a testcase per checked resource).
    #[arg(long, value_name = "FILE")]
    pub(super) junit: Option<PathBuf>,
    /// Also write the node_exporter textfile FILE (atomically: temp file and rename).
    #[arg(long, value_name = "FILE")]
    pub(super) prometheus: Option<PathBuf>,
    /// Then apply what drifted (and what depends on it, the handlers it notifies and the checks that
    /// follow it), leaving everything found in sync alone; reports like apply.
    #[arg(long)]
    fix: bool,
    #[command(flatten)]
    pub(super) schedule: schedule::ScheduleArgs,
}

/// A sink that shows nothing: drift reports once the walk is over.
struct Silent;

impl Sink for Silent {
    fn done(&self, _report: &NodeReport) {}
}

/// Runs `drift`; returns the exit code.
pub async fn run(d: &DriftArgs, verbosity: Verbosity, masker: &Masker) -> Result<i32> {
    if d.schedule.asked() {
        return schedule::run(d, masker);
    }
    let a = &d.run;
    let p = Arc::new(load(&a.target, masker)?);
    if !a.json {
        for w in &p.graph.warnings {
            eprintln!("{} {w}", console::style("warning:").yellow());
        }
    }
    let (signals, cancel) = signals::Signals::watch().context("watching for SIGINT/SIGTERM")?;
    let (sink, bar): (Arc<dyn Sink>, Option<Arc<HumanSink>>) = if a.json {
        (Arc::new(Silent), None)
    } else {
        let total = p.graph.graph.node_count();
        let h = Arc::new(HumanSink::new(Mode::Plan, verbosity, total, masker.clone()));
        (h.clone(), Some(h))
    };
    let walked = check(&p, a, sink, cancel.clone()).await?;
    if let Some(b) = bar {
        b.finish();
    }
    let report = walked.report();
    let text = if a.json {
        out::json_lines(&report, masker)
    } else {
        out::human(&report, masker)
    };
    super::print_out(&text)?;
    if let Some(f) = &d.junit {
        write_report(f, &out::junit(&report, masker))?;
    }
    if let Some(f) = &d.prometheus {
        write_report(f, &out::prometheus(&report, masker))?;
    }
    if let Some(code) = signals.exit_code() {
        return Ok(code);
    }
    let code = report.exit_code();
    if !d.fix || report.drifted() == 0 {
        return Ok(code);
    }
    let allowed = Arc::new(report.fixable(&p));
    let _lock = lock::RunLock::acquire(&a.target.inventory)?;
    if !a.json {
        super::print_out("\nFixing what drifted:")?;
    }
    let summary = walk(&p, a, Mode::Apply, verbosity, masker, cancel, Some(allowed)).await?;
    Ok(signals
        .exit_code()
        .unwrap_or_else(|| summary.exit_code(Mode::Apply).max(i32::from(code == 1))))
}

/// What one drift check walked, kept so that the report (which borrows the walk's reports) can be read
/// from it.
struct Walked {
    hosts: Vec<String>,
    reports: Vec<NodeReport>,
    records: BTreeMap<String, LastApply>,
    elapsed: std::time::Duration,
}

impl Walked {
    fn report(&self) -> DriftReport<'_> {
        DriftReport::of(&self.hosts, &self.reports, &self.records, self.elapsed)
    }
}

/// The read-only plan walk of drift, reported to `sink` as it goes, with the last-apply records (an
/// unreadable record is warned about and treated as none). Fails only when the command line's
/// controls cannot be set up (`--persist` without a private directory).
async fn check(
    p: &Arc<Prepared>,
    a: &RunArgs,
    sink: Arc<dyn Sink>,
    cancel: Cancel,
) -> Result<Walked> {
    let hosts: Vec<String> = p.graph.hosts.keys().cloned().collect();
    let mut records = BTreeMap::new();
    for h in &hosts {
        match record::load(&p.inv.path, h) {
            Ok(Some(r)) => {
                records.insert(h.clone(), r);
            }
            Ok(None) => {}
            Err(e) => eprintln!(
                "{} {e}; treated as none",
                console::style("warning:").yellow()
            ),
        }
    }
    let started = Instant::now();
    let ctl = execute::Control {
        explain_causes: true,
        ..a.control(cancel)?
    };
    let forks = a.forks();
    let reports = execute::run_with(p.clone(), Mode::Plan, forks, sink, ctl)
        .await
        .reports;
    Ok(Walked {
        hosts,
        reports,
        records,
        elapsed: started.elapsed(),
    })
}

/// The demo's last step: drift, reported as one line (`drift: none`, or what drifted and the command
/// that shows it), with drift's exit code.
pub(super) async fn one_line(a: &RunArgs, masker: &Masker) -> Result<(i32, String)> {
    let p = Arc::new(load(&a.target, masker)?);
    let (_signals, cancel) = signals::Signals::watch().context("watching for SIGINT/SIGTERM")?;
    let walked = check(&p, a, Arc::new(Silent), cancel).await?;
    let report = walked.report();
    let code = report.exit_code();
    let line = match code {
        0 => "drift: none".to_string(),
        _ => format!(
            "drift: {} drifted, {} unreachable; see: apim-provision drift {}",
            report.drifted(),
            report.unreachable().len(),
            a.target.inventory.display()
        ),
    };
    Ok((code, line))
}

/// Writes a report file atomically (readable by a collector that runs as another user).
fn write_report(path: &Path, text: &str) -> Result<()> {
    record::write_atomic(path, text.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", path.display()))
}
