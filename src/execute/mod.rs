//! Running the graph. `plan` and `apply` are the same walk (mgmt's CheckApply with apply=false/true):
//! the same probe decides the change, and only apply makes it. `drift` will be the plan walk, reported
//! differently.

mod host;
mod scheduler;

pub use scheduler::run;

use crate::resources::{Action, ContentDiff};
use petgraph::graph::NodeIndex;
use std::time::Duration;

/// Whether changes are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Probe and decide only.
    Plan,
    /// Probe, decide and make the change.
    Apply,
}

/// Why a task did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipCause {
    /// Its `when` is false.
    Condition,
    /// A handler nobody notified.
    NotNotified,
    /// Something it waits for failed or was skipped for that reason.
    Dependency,
}

/// What happened to (or would happen to) one task on one host.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Already in the desired state.
    Unchanged,
    /// A change: pending in plan, made in apply.
    Change {
        /// Kind of change.
        action: Action,
        /// What differs.
        details: Vec<String>,
        /// Content diff, for files.
        diff: Option<ContentDiff>,
    },
    /// Plan only: the task's inputs depend on an earlier change, so its effect is known after apply.
    Unknown(String),
    /// Failed in apply, or would fail in plan.
    Failed(String),
    /// Not run.
    Skipped {
        /// Why.
        cause: SkipCause,
        /// Human explanation.
        reason: String,
    },
}

impl Outcome {
    /// True when dependents may go on.
    pub fn succeeded(&self) -> bool {
        !matches!(
            self,
            Outcome::Failed(_)
                | Outcome::Skipped {
                    cause: SkipCause::Dependency,
                    ..
                }
        )
    }

    /// True for a pending or made change (including "known after apply").
    pub fn changes(&self) -> bool {
        matches!(self, Outcome::Change { .. } | Outcome::Unknown(_))
    }
}

/// The result of one node, as reports show it.
#[derive(Debug, Clone)]
pub struct NodeReport {
    /// Graph node.
    pub node: NodeIndex,
    /// Host name.
    pub host: String,
    /// Task name.
    pub task: String,
    /// Resource type.
    pub kind: String,
    /// What the resource manages (`file /etc/x`), when it was built.
    pub target: Option<String>,
    /// Where the task is written.
    pub location: String,
    /// True for handlers.
    pub handler: bool,
    /// What happened.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
}

/// Receives progress while the graph runs (reports, progress bars, JSON lines).
pub trait Sink: Send + Sync {
    /// A node starts working on its host.
    fn started(&self, _host: &str, _task: &str) {}
    /// A node is done.
    fn done(&self, report: &NodeReport);
}
