//! Running the graph. `plan` and `apply` are the same walk (mgmt's CheckApply with apply=false/true):
//! the same probe decides the change, and only apply makes it. `drift` is the plan walk, reported
//! differently (see [`ChangeCause`]), and `drift --fix` an apply restricted by [`Control::may_change`].

mod host;
mod scheduler;

pub use scheduler::{run, run_with};

/// Hosts worked on at once unless `--forks` says otherwise. Each host being worked on holds a
/// connection (over SSH an `ssh` master process and its socket), so a default of "every host" would
/// open hundreds at once in a large inventory; 64 keeps a machine's processes and file descriptors
/// in bounds while keeping many hosts busy.
pub const DEFAULT_FORKS: usize = 64;

use crate::resources::{Action, ContentDiff};
use crate::transport::{Persist, TransportStats};
use petgraph::graph::NodeIndex;
use std::collections::BTreeMap;
use std::sync::Arc;
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
    /// Apply only: the nodes (by index) allowed to make a change; `None` allows all. `drift --fix`
    /// allows only what drifted and what follows from it, so that a resource found in sync is not
    /// changed by a repair.
    pub may_change: Option<Arc<Vec<bool>>>,
    /// Plan only: tell a change the host itself needs from one that only follows from earlier pending
    /// changes on the host ([`ChangeCause`]). That costs a second planning of each such task against
    /// the probe alone, and only `drift` reads the answer, so a plain `plan` leaves it off.
    pub explain_causes: bool,
    /// SSH only: keep each host's master up for this idle time after the run and attach to one an
    /// earlier run kept (`--persist`), instead of closing it after the host's last task.
    pub persist: Option<Persist>,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            cancel: Cancel::never(),
            command_timeout: Duration::from_secs(3600),
            probe_timeout: Duration::from_secs(600),
            may_change: None,
            explain_causes: false,
            persist: None,
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
    /// Apply only: its change is not one the run allows (`drift --fix` leaves alone what did not
    /// drift, see [`Control::may_change`]).
    NotAllowed,
}

/// Why a planned change is needed, which is what tells drift from a change that merely follows one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeCause {
    /// The host as probed differs from the desired state: planned against the probe alone, the task
    /// changes something too. Also what a plan reports when it was not asked to explain causes
    /// ([`Control::explain_causes`]): the claim that never hides a drift.
    Host,
    /// Plan only: the change follows from earlier pending changes of the run on this host (a
    /// daemon-reload after a unit file changes, an edit of a file an earlier task rewrites); against
    /// the host as probed the task would change nothing, or could not be planned.
    EarlierChange,
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
        /// Whether the host itself differs or the change follows from an earlier one.
        cause: ChangeCause,
    },
    /// Plan only: the task's inputs depend on an earlier change, so its effect is known after apply.
    Unknown(String),
    /// Failed in apply, or would fail in plan.
    Failed(String),
    /// The host could not be reached to probe the task: nothing was decided or made. Kept apart from
    /// [`Outcome::Failed`] so that `drift` can name the host as unreachable rather than call its
    /// resources broken.
    Unreachable(String),
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
                | Outcome::Unreachable(_)
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
    /// The whole file the task manages (`copy`, `template`), when its resource was built: what the
    /// last-apply record keeps and `drift` compares with it.
    pub file: Option<ManagedFile>,
    /// The task is sensitive (it reads a secret or says `sensitive: true`): what it writes holds a
    /// secret, which the JSON report says so that a check of the hosts' file modes can find every such
    /// file without a hand-kept list.
    pub sensitive: bool,
    /// What happened.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
}

/// What a walk returns: the report of every node, in graph order, and what each host's connection
/// cost (round trips and connections, for `-v` and the JSON summary).
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Every node's report.
    pub reports: Vec<NodeReport>,
    /// Per host, what its transport counted over the whole run.
    pub hosts: BTreeMap<String, TransportStats>,
}

/// A whole file a task manages, by identity: its dest, the sha256 of the content the run rendered for it,
/// and the attributes it sets. Never the content, so it can be stored and compared without holding a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManagedFile {
    /// The absolute path on the host.
    pub dest: String,
    /// Hex sha256 of the content.
    pub sha256: String,
    /// Mode set on it (`0640`), when the task sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Owner set on it, when the task sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Group set on it, when the task sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl ManagedFile {
    /// The identity of what `resource` writes, when it writes a whole file.
    pub fn of(resource: &dyn crate::resources::Resource) -> Option<Self> {
        resource.whole_file().map(|w| Self {
            dest: w.dest.to_string(),
            sha256: w.sha256.to_string(),
            mode: w.attrs.mode.map(|m| m.to_string()),
            owner: w.attrs.owner.clone(),
            group: w.attrs.group.clone(),
        })
    }
}

/// Receives progress while the graph runs (reports, progress bars, JSON lines).
pub trait Sink: Send + Sync {
    /// A node starts working on its host.
    fn started(&self, _host: &str, _task: &str) {}
    /// A node is done.
    fn done(&self, report: &NodeReport);
}
