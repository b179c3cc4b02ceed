//! What the scheduler knows about one host during a run: its connection, registered results, notified
//! handlers, the batch of probes taken in one round trip (valid for a probe as long as the changes made
//! since cannot have touched what it looks at), and what a wave made ahead for later tasks.

use super::Outcome;
use crate::model::Vars;
use crate::resources::{Effect, HostView, Reads};
use crate::transport::{BatchAnswer, ProbeBatch, Transport, TransportError};
use petgraph::graph::NodeIndex;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

/// Probe answers of a host's batch, or why the batch could not run.
pub type BatchResult = Result<HashMap<NodeIndex, BatchAnswer>, BatchError>;

/// Why a host's batch could not run, and whether that is because the host could not be reached (which
/// `drift` reports by host name) rather than a timeout.
#[derive(Debug, Clone)]
pub struct BatchError {
    /// The message every task that waited for the batch fails with.
    pub message: String,
    /// The connection itself failed.
    pub unreachable: bool,
}

/// True when a batch's answer still holds for a probe that `reads` after the changes `view` describes:
/// there are none, or they only wrote paths (no command, package, account or unit change, which may
/// have made anything), and the simulation tracks paths for a probe of paths.
pub fn holds(view: &HostView, reads: &Reads) -> bool {
    view.is_empty()
        || (matches!(reads, Reads::Paths(_)) && !view.opaque() && view.units_unchanged())
}

/// What a wave did for a task after the one that sent it, for that task to report in its turn.
#[derive(Debug)]
pub enum Ahead {
    /// Decided from the batch: nothing to do; what `register:` sees.
    Unchanged(crate::resources::Registered),
    /// Made: how the report shows it, and what `register:` sees.
    Changed(Outcome, crate::resources::Registered),
    /// Failed: why.
    Failed(String),
}

/// Per-host run state.
pub struct HostState {
    /// Connection to the host (which connects on first use).
    transport: Arc<dyn Transport>,
    /// Results registered so far.
    pub registers: Mutex<Vars>,
    /// Plan mode: registered names whose value depends on a pending change.
    pub unknown: Mutex<BTreeSet<String>>,
    /// (play index, handler short name) → tasks that notified it: a notify reaches only the handlers of
    /// its own play.
    pub notified: Mutex<HashMap<(usize, String), Vec<String>>>,
    /// Plan mode: what the pending changes of earlier tasks will leave on the host.
    pub view: Mutex<HostView>,
    /// Apply mode: what the changes made so far on this host did, as the plan's simulation describes
    /// them, so a later task whose probe they cannot have touched is decided from the batch taken
    /// before them (as plan decided it) instead of probing again.
    applied: Mutex<HostView>,
    /// Apply mode: tasks an earlier task's wave decided and made, until each reports.
    ahead: Mutex<HashMap<NodeIndex, Ahead>>,
    batch: OnceCell<BatchResult>,
    /// The fork this host holds while it is worked on: taken by its first task that runs, given up
    /// while it waits for another host and after its last task, so `--forks` bounds the hosts
    /// connected at once. Only the host's running task touches it (its tasks run one after another).
    fork: Mutex<Option<OwnedSemaphorePermit>>,
}

impl HostState {
    /// A host reached through `transport`.
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Self {
            transport,
            registers: Mutex::new(Vars::new()),
            unknown: Mutex::new(BTreeSet::new()),
            notified: Mutex::new(HashMap::new()),
            view: Mutex::new(HostView::default()),
            applied: Mutex::new(HostView::default()),
            ahead: Mutex::new(HashMap::new()),
            batch: OnceCell::new(),
            fork: Mutex::new(None),
        }
    }

    /// Holds one of `forks` for this host, waiting for one unless it holds one already.
    pub async fn take_fork(&self, forks: &Arc<Semaphore>) {
        if self.fork.lock().expect("fork").is_some() {
            return;
        }
        let permit = forks.clone().acquire_owned().await.expect("forks open");
        *self.fork.lock().expect("fork") = Some(permit);
    }

    /// Gives this host's fork to the hosts waiting for one.
    pub fn release_fork(&self) {
        self.fork.lock().expect("fork").take();
    }

    /// The connection.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Records that a change was made with these `effects`: the batch's answers stay valid only
    /// for the probes they cannot have touched.
    pub fn changed(&self, effects: Vec<Effect>) {
        self.applied.lock().expect("applied").record(effects);
    }

    /// [`holds`] for this host's changes so far: whether a task may be decided from the batch, seen
    /// through [`applied`](Self::applied), instead of probing again.
    pub fn batch_holds(&self, reads: &Reads) -> bool {
        holds(&self.applied.lock().expect("applied"), reads)
    }

    /// The changes made so far on this host, as the simulation sees them.
    pub fn applied(&self) -> std::sync::MutexGuard<'_, HostView> {
        self.applied.lock().expect("applied")
    }

    /// The batch's answer for `node`, when the batch was taken and answered it.
    pub fn batched(&self, node: NodeIndex) -> Option<BatchAnswer> {
        match self.batch.get() {
            Some(Ok(map)) => map.get(&node).cloned(),
            _ => None,
        }
    }

    /// Keeps what a wave decided and did for `node` until its own task reports it.
    pub fn put_ahead(&self, node: NodeIndex, ahead: Ahead) {
        self.ahead.lock().expect("ahead").insert(node, ahead);
    }

    /// What a wave decided and did for `node`, if one did.
    pub fn take_ahead(&self, node: NodeIndex) -> Option<Ahead> {
        self.ahead.lock().expect("ahead").remove(&node)
    }

    /// The host's batched probe answers, taking the batch on first call with `probes`; a batch that takes
    /// longer than `limit` is stopped and fails every task that waited for it.
    pub async fn batch(
        &self,
        probes: impl FnOnce() -> Vec<(NodeIndex, String)>,
        limit: Duration,
    ) -> &BatchResult {
        self.batch
            .get_or_init(|| async {
                let t = &self.transport;
                let list = probes();
                let mut b = ProbeBatch::default();
                for (_, snippet) in &list {
                    b.push(snippet.clone());
                }
                tracing::debug!(
                    host = t.host(),
                    probes = list.len(),
                    "probe round trip (batch)"
                );
                let answers = tokio::time::timeout(limit, b.run(t.as_ref()))
                    .await
                    .map_err(|_| BatchError {
                        message: format!(
                            "{}: the probe batch timed out after {}s (probe timeout), and what it \
                             started there was stopped",
                            t.host(),
                            limit.as_secs()
                        ),
                        unreachable: false,
                    })?
                    .map_err(|e| BatchError {
                        unreachable: matches!(e, TransportError::Connection { .. }),
                        message: e.to_string(),
                    })?;
                Ok(list.into_iter().map(|(n, _)| n).zip(answers).collect())
            })
            .await
    }

    /// Registers `value` under `name`; in plan mode after a pending change on this host the value is
    /// only known after apply, so it is marked unknown instead.
    pub fn register(&self, name: &str, value: serde_json::Value) {
        if !self.view.lock().expect("view").is_empty() {
            self.unknown
                .lock()
                .expect("unknown")
                .insert(name.to_string());
        } else {
            self.registers
                .lock()
                .expect("registers")
                .insert(name.to_string(), value);
        }
    }
}
