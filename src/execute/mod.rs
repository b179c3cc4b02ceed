//! Running the graph. `plan` and `apply` are the same walk (mgmt's CheckApply with apply=false/true):
//! the same probe decides the change, and only apply makes it. `drift` will be the plan walk, reported
//! differently.

mod host;
mod scheduler;

pub use scheduler::{run, run_with};

use crate::resources::{Action, ContentDiff};
use petgraph::graph::NodeIndex;
use std::time::Duration;
use tokio::sync::watch;

/// Asks a run to stop: tasks not started yet are not started, running ones are stopped (what their
/// scripts started on the host included) and reported as failed. Held by whoever catches the signal.
#[derive(Debug)]
pub struct Canceller(watch::Sender<Option<String>>);

impl Canceller {
    /// A canceller and the token a run watches.
    pub fn new() -> (Self, Cancel) {
        let (tx, rx) = watch::channel(None);
        (Self(tx), Cancel(Some(rx)))
    }

    /// Stops the run; `why` (e.g. `SIGINT`) is named in the report of every task it stops.
    pub fn cancel(&self, why: &str) {
        self.0.send_if_modified(|w| {
            if w.is_none() {
                *w = Some(why.to_string());
                true
            } else {
                false
            }
        });
    }
}

/// What a run watches to learn that it must stop.
#[derive(Debug, Clone)]
pub struct Cancel(Option<watch::Receiver<Option<String>>>);

impl Cancel {
    /// A token that is never cancelled, for runs nobody interrupts (tests, the demo).
    pub fn never() -> Self {
        Self(None)
    }

    /// Why the run was cancelled, once it was.
    pub fn reason(&self) -> Option<String> {
        self.0.as_ref().and_then(|rx| rx.borrow().clone())
    }

    /// Resolves with the reason when the run is cancelled (never, when it is not).
    pub async fn cancelled(&self) -> String {
        if let Some(rx) = &self.0 {
            let mut rx = rx.clone();
            let why = rx.wait_for(Option::is_some).await.map(|w| w.clone());
            if let Ok(why) = why {
                return why.unwrap_or_default();
            }
        }
        std::future::pending().await
    }
}

/// How long things may take and whether the run must stop: what bounds a run besides the graph.
#[derive(Debug, Clone)]
pub struct Control {
    /// Cancelled by a signal.
    pub cancel: Cancel,
    /// Longest a `command` or `shell` task may run when it sets no `timeout:` of its own.
    pub command_timeout: Duration,
    /// Longest a probe (a host's batch, or one task's own probe) may take.
    pub probe_timeout: Duration,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            cancel: Cancel::never(),
            command_timeout: Duration::from_secs(3600),
            probe_timeout: Duration::from_secs(600),
        }
    }
}

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
    /// A host of an earlier `serial:` batch of its play did not finish the play: a rolling update
    /// stops rather than take more nodes down (Ansible's `max_fail_percentage: 0`).
    EarlierBatch,
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
                    cause: SkipCause::Dependency | SkipCause::EarlierBatch,
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
