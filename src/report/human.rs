//! The terminal report: a plan grouped by host with `+ ~ - = !` and unified diffs; apply lines as tasks
//! finish, with a progress bar on a TTY, and a recap. Every line passes through the secret mask.

use super::mask::Masker;
use super::summary::Summary;
use crate::execute::{Mode, NodeReport, Outcome, Sink, SkipCause};
use crate::resources::{Action, ContentDiff};
use console::style;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::time::Duration;

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Summary and failures only.
    Quiet,
    /// Every task.
    Normal,
    /// Every task, with locations and timings.
    Verbose,
}

/// Progress and per-task lines while the graph runs.
pub struct HumanSink {
    mode: Mode,
    verbosity: Verbosity,
    bar: ProgressBar,
    masker: Masker,
}

impl HumanSink {
    /// A sink for `total` nodes hiding `masker`'s secrets; the bar only draws when stderr is a terminal.
    pub fn new(mode: Mode, verbosity: Verbosity, total: usize, masker: Masker) -> Self {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}",
            )
            .expect("static template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Self {
            mode,
            verbosity,
            bar,
            masker,
        }
    }

    /// Removes the progress bar before the final report.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn line(&self, text: String) {
        // A reader that went away (`apply | head`) must not stop an apply half-way: the line is lost.
        self.bar.suspend(|| {
            let _ = writeln!(std::io::stdout().lock(), "{}", self.masker.mask(&text));
        });
    }
}

impl Sink for HumanSink {
    fn started(&self, host: &str, task: &str) {
        self.bar
            .set_message(self.masker.masked(&format!("{host}: {task}")));
    }

    fn done(&self, r: &NodeReport) {
        self.bar.inc(1);
        if self.mode == Mode::Plan || self.verbosity == Verbosity::Quiet {
            return;
        }
        let (word, msg) = match &r.outcome {
            Outcome::Unchanged => (style("ok").green(), String::new()),
            Outcome::Change { details, .. } => (style("changed").yellow(), details.join(", ")),
            Outcome::Unknown(m) => (style("unknown").yellow(), m.clone()),
            Outcome::Failed(m) => (style("FAILED").red().bold(), m.clone()),
            Outcome::Unreachable(m) => (style("UNREACHABLE").red().bold(), m.clone()),
            Outcome::Skipped {
                cause: SkipCause::NotNotified,
                ..
            } => return,
            Outcome::Skipped { reason, cause } => (
                if matches!(cause, SkipCause::Dependency | SkipCause::EarlierBatch) {
                    style("skipped").red()
                } else {
                    style("skipped").dim()
                },
                reason.clone(),
            ),
        };
        let mut text = format!("{:<8} {}  {}", word, style(&r.host).bold(), r.task);
        if !msg.is_empty() {
            text.push_str(&format!("  ({msg})"));
        }
        if self.verbosity == Verbosity::Verbose {
            text.push_str(&format!(
                "  [{} {:.2}s]",
                r.location,
                r.elapsed.as_secs_f64()
            ));
        }
        self.line(text);
    }
}

fn symbol(o: &Outcome) -> console::StyledObject<&'static str> {
    match o {
        Outcome::Change {
            action: Action::Create,
            ..
        } => style("+").green(),
        Outcome::Change {
            action: Action::Delete,
            ..
        } => style("-").red(),
        Outcome::Change { .. } | Outcome::Unknown(_) => style("~").yellow(),
        Outcome::Failed(_) | Outcome::Unreachable(_) => style("!").red().bold(),
        Outcome::Unchanged | Outcome::Skipped { .. } => style("=").dim(),
    }
}

fn write_out(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()
}

/// Unified diff of a file's content, indented under its task.
pub fn unified(d: &ContentDiff) -> String {
    similar::TextDiff::from_lines(&d.old, &d.new)
        .unified_diff()
        .context_radius(3)
        .header(&d.path, &format!("{} (planned)", d.path))
        .to_string()
}

/// Prints the plan, grouped by host in inventory order, then the totals line. Fails when stdout is
/// closed (`plan | head -1`) instead of panicking.
pub fn print_plan(
    reports: &[NodeReport],
    summary: &Summary,
    verbosity: Verbosity,
    masker: &Masker,
) -> std::io::Result<()> {
    let mut out = String::new();
    for host in summary.hosts.keys() {
        let mine: Vec<&NodeReport> = reports
            .iter()
            .filter(|r| {
                &r.host == host
                    && !matches!(
                        r.outcome,
                        Outcome::Skipped {
                            cause: SkipCause::NotNotified,
                            ..
                        }
                    )
            })
            .collect();
        // Quiet: failures only, then the totals.
        let shown = |r: &NodeReport| {
            verbosity != Verbosity::Quiet
                || matches!(r.outcome, Outcome::Failed(_) | Outcome::Unreachable(_))
        };
        if !mine.iter().any(|r| shown(r)) {
            continue;
        }
        out.push_str(&format!("{}\n", style(host).bold().underlined()));
        for r in mine {
            if !shown(r) {
                continue;
            }
            let target = r
                .target
                .as_deref()
                .map(|t| format!("  {}", style(t).dim()))
                .unwrap_or_default();
            let handler = if r.handler { " (handler)" } else { "" };
            out.push_str(&format!(
                "  {} {}{handler}{target}\n",
                symbol(&r.outcome),
                r.task
            ));
            let note = match &r.outcome {
                Outcome::Change { details, .. } => details.join("; "),
                Outcome::Unknown(m) => m.clone(),
                Outcome::Failed(m) => format!("would fail: {m}"),
                Outcome::Unreachable(m) => format!("unreachable: {m}"),
                Outcome::Skipped { reason, .. } => reason.clone(),
                Outcome::Unchanged => String::new(),
            };
            if !note.is_empty() {
                for l in note.lines() {
                    out.push_str(&format!("      {}\n", style(l).dim()));
                }
            }
            if verbosity == Verbosity::Verbose {
                out.push_str(&format!("      {}\n", style(&r.location).dim()));
            }
            if let Outcome::Change { diff: Some(d), .. } = &r.outcome {
                for l in unified(d).lines() {
                    let s = match l.chars().next() {
                        Some('+') if !l.starts_with("+++") => style(l).green(),
                        Some('-') if !l.starts_with("---") => style(l).red(),
                        Some('@') => style(l).cyan(),
                        _ => style(l),
                    };
                    out.push_str(&format!("      {s}\n"));
                }
            }
        }
    }
    if verbosity == Verbosity::Verbose {
        out.push_str(&costs(summary));
    }
    out.push('\n');
    out.push_str(&summary.plan_line());
    write_out(&masker.mask(&out))
}

/// `-v`: what each host's connection cost, one line per host (`h2: 1 round trip (1 connection)`).
fn costs(summary: &Summary) -> String {
    let mut out = String::from("\nRound trips:\n");
    for (host, t) in &summary.hosts {
        out.push_str(&format!("  {host}: {}\n", t.cost_line()));
    }
    out
}

/// Prints the apply recap (with `-v`, each host's round trips) and every failure with its place;
/// fails, not panics, on a closed stdout.
pub fn print_recap(
    reports: &[NodeReport],
    summary: &Summary,
    elapsed: Duration,
    verbosity: Verbosity,
    masker: &Masker,
) -> std::io::Result<()> {
    let mut out = String::from("\nRecap:\n");
    for (host, t) in &summary.hosts {
        out.push_str(&format!(
            "  {:<20} ok={:<4} changed={:<4} failed={:<4} skipped={}\n",
            host, t.ok, t.changed, t.failed, t.skipped
        ));
    }
    for r in reports {
        let (word, m) = match &r.outcome {
            Outcome::Failed(m) => ("failed:", m),
            Outcome::Unreachable(m) => ("unreachable:", m),
            _ => continue,
        };
        out.push_str(&format!(
            "\n{} {} on {} ({}):\n  {}\n",
            style(word).red().bold(),
            r.task,
            r.host,
            r.location,
            m.replace('\n', "\n  ")
        ));
    }
    if verbosity == Verbosity::Verbose {
        out.push_str(&costs(summary));
    }
    out.push_str(&format!(
        "\n{} in {:.2}s.",
        summary.apply_line(),
        elapsed.as_secs_f64()
    ));
    write_out(&masker.mask(&out))
}
