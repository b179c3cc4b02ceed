//! JSON lines for CI: one object per finished task as it happens, then one summary object. Every string
//! field is masked before serialization.

use super::human::unified;
use super::mask::Masker;
use super::summary::Summary;
use crate::execute::{Mode, NodeReport, Outcome, Sink};
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;

fn emit(v: &Value, masker: &Masker) {
    let line = serde_json::to_string(v).expect("JSON of JSON");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", masker.mask(&line));
    let _ = out.flush();
}

/// Streams task events as JSON lines.
pub struct JsonSink {
    mode: Mode,
    masker: Masker,
}

impl JsonSink {
    /// A sink for a `mode` run hiding `masker`'s secrets.
    pub fn new(mode: Mode, masker: Masker) -> Self {
        Self { mode, masker }
    }
}

fn status(mode: Mode, o: &Outcome) -> (&'static str, Option<String>) {
    use crate::execute::SkipCause as C;
    match (mode, o) {
        (_, Outcome::Unchanged) => ("unchanged", None),
        (Mode::Plan, Outcome::Change { action, .. }) => (
            match action {
                crate::resources::Action::Create => "create",
                crate::resources::Action::Update => "update",
                crate::resources::Action::Delete => "delete",
                crate::resources::Action::Run => "run",
                crate::resources::Action::None => "unchanged",
            },
            None,
        ),
        (Mode::Apply, Outcome::Change { .. }) => ("changed", None),
        (_, Outcome::Unknown(msg)) => ("known_after_apply", Some(msg.clone())),
        (Mode::Plan, Outcome::Failed(msg)) => ("would_fail", Some(msg.clone())),
        (Mode::Apply, Outcome::Failed(msg)) => ("failed", Some(msg.clone())),
        (_, Outcome::Unreachable(msg)) => ("unreachable", Some(msg.clone())),
        (
            _,
            Outcome::Skipped {
                cause: C::NotNotified,
                reason,
            },
        ) => ("not_notified", Some(reason.clone())),
        (
            _,
            Outcome::Skipped {
                cause: C::Condition,
                reason,
            },
        ) => ("skipped", Some(reason.clone())),
        (
            _,
            Outcome::Skipped {
                cause: C::Dependency,
                reason,
            },
        ) => ("skipped_dependency", Some(reason.clone())),
        (
            _,
            Outcome::Skipped {
                cause: C::EarlierBatch,
                reason,
            },
        ) => ("skipped_earlier_batch", Some(reason.clone())),
        (
            _,
            Outcome::Skipped {
                cause: C::NotAllowed,
                reason,
            },
        ) => ("not_allowed", Some(reason.clone())),
    }
}

impl Sink for JsonSink {
    fn done(&self, r: &NodeReport) {
        let m = |s: &str| self.masker.masked(s);
        let (st, msg) = status(self.mode, &r.outcome);
        let (details, diff) = match &r.outcome {
            Outcome::Change { details, diff, .. } => (
                details.iter().map(|d| m(d)).collect::<Vec<_>>(),
                diff.as_ref().map(|d| m(&unified(d))),
            ),
            _ => (Vec::new(), None),
        };
        emit(
            &json!({
                "type": "task",
                "mode": if self.mode == Mode::Plan { "plan" } else { "apply" },
                "host": r.host,
                "task": m(&r.task),
                "resource": r.kind,
                "target": r.target.as_deref().map(m),
                "location": r.location,
                "handler": r.handler,
                "sensitive": r.sensitive,
                "status": st,
                "details": details,
                "diff": diff,
                "message": msg.as_deref().map(m),
                "elapsed_ms": r.elapsed.as_millis() as u64,
            }),
            &self.masker,
        );
    }
}

/// The closing summary line.
pub fn print_summary(
    mode: Mode,
    s: &Summary,
    elapsed: Duration,
    warnings: &[String],
    masker: &Masker,
) {
    emit(
        &json!({
            "type": "summary",
            "mode": if mode == Mode::Plan { "plan" } else { "apply" },
            "total": s.total,
            "add": s.add,
            "change": s.change,
            "unchanged": s.unchanged,
            "failed": s.failed,
            "skipped": s.skipped,
            "skipped_condition": s.skipped_condition,
            "not_notified": s.not_notified,
            "skipped_dependency": s.skipped_dependency,
            "skipped_earlier_batch": s.skipped_batch,
            "not_allowed": s.not_allowed,
            "hosts": s.hosts,
            "warnings": warnings,
            "exit_code": s.exit_code(mode),
            "elapsed_ms": elapsed.as_millis() as u64,
        }),
        masker,
    );
}

/// An error that stopped the run before or outside the graph.
pub fn print_error(message: &str, masker: &Masker) {
    emit(
        &json!({"type": "error", "message": masker.masked(message), "exit_code": 1}),
        masker,
    );
}
