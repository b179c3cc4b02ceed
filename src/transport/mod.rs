//! How the engine reaches a host. Everything the engine does on a host is a shell script sent over a
//! [`Transport`]; keeping that surface this small is what lets one batch script carry every probe of a host
//! in a single round trip, whatever the connection.

mod batch;
mod local;
mod persist;
mod ssh;

pub use batch::{parse_answers, sh_quote, BatchAnswer, Facts, ProbeBatch};
pub use local::LocalTransport;
pub use persist::{ControlDirError, Persist};
pub use ssh::SshTransport;

use crate::model::{Connection, Host};
use async_trait::async_trait;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;

/// What a host's connection cost over a run: the round trips (scripts and uploads) and the connections
/// behind them. A no-op run promises one round trip per host; `-v` and the JSON summary show whether a
/// run kept it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Scripts run on the host: probe batches, single probes, apply steps, the check after an upload,
    /// the stop of an abandoned script.
    pub scripts: u64,
    /// Files streamed to the host.
    pub uploads: u64,
    /// Connections opened (ssh masters started); none for a local host, nor for a reused master.
    pub connections: u64,
    /// Masters left by an earlier run (`--persist`) that were attached to instead of connecting.
    pub reused: u64,
}

impl TransportStats {
    /// Every exchange with the host that waits for its answer: scripts and uploads.
    pub fn round_trips(&self) -> u64 {
        self.scripts + self.uploads
    }
}

/// The counters behind [`TransportStats`], one set per transport value rather than process-wide, so
/// that two runs in one process (as tests make them) count apart.
#[derive(Debug, Default)]
struct Counters {
    scripts: AtomicU64,
    uploads: AtomicU64,
    connections: AtomicU64,
    reused: AtomicU64,
}

impl Counters {
    /// One more script run.
    fn script(&self) {
        self.scripts.fetch_add(1, Ordering::Relaxed);
    }

    /// One more file streamed.
    fn upload(&self) {
        self.uploads.fetch_add(1, Ordering::Relaxed);
    }

    /// One more connection opened.
    fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// One more master of an earlier run attached to.
    fn reuse(&self) {
        self.reused.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    fn stats(&self) -> TransportStats {
        TransportStats {
            scripts: self.scripts.load(Ordering::Relaxed),
            uploads: self.uploads.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
        }
    }
}

/// What a script printed and how it ended, kept raw so resources can parse their own facts.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Exit status of the remote `sh`; -1 when it died from a signal.
    pub status: i32,
    /// Raw standard output.
    pub stdout: Vec<u8>,
    /// Raw standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Standard output as text, for resources that print `key=value` facts.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The last lines of stderr (or stdout when stderr is empty), which is what an operator needs to see
    /// when a command failed, without flooding the report.
    pub fn tail(&self) -> String {
        let src = if self.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
            &self.stderr
        } else {
            &self.stdout
        };
        let text = String::from_utf8_lossy(src);
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(8);
        lines[start..].join("\n")
    }
}

/// Failures of the connection itself, kept apart from a script's own non-zero exit so the scheduler can
/// retry only what is safe to retry and say "host unreachable" rather than "command failed".
#[derive(Debug, Error)]
pub enum TransportError {
    /// The host could not be reached or the connection dropped.
    #[error("connection to {host} failed: {reason}")]
    Connection {
        /// Inventory name of the host.
        host: String,
        /// What the transport reported.
        reason: String,
    },
    /// A local I/O failure while talking to the host (spawning `sh`, reading a file to upload).
    #[error("{host}: {context}: {source}")]
    Io {
        /// Inventory name of the host.
        host: String,
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// A connection to one host. Implementations must be cheap to share across the tasks of that host.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Inventory name of the host, used in every error message.
    fn host(&self) -> &str;

    /// Runs `script` with a POSIX `sh` on the host. The script travels on standard input, never on the
    /// command line, so secrets inside it do not show up in the host's process list.
    async fn run(&self, script: &str) -> Result<Output, TransportError>;

    /// Copies a controller file to `remote` on the host (a path the caller then renames into place), so
    /// large payloads such as product packs stream instead of being embedded in a script.
    async fn upload(&self, local: &Path, remote: &str) -> Result<(), TransportError>;

    /// Closes the connection, so no helper process outlives the host's part in the run: after the host's
    /// last task, while it waits for another host (a later script connects again), and once more when
    /// the run is over. Closing a closed connection does nothing. A master kept for later runs
    /// (`--persist`) is left up instead, to end by itself once idle for its time.
    async fn close(&self) {}

    /// What this connection cost so far.
    fn stats(&self) -> TransportStats;
}

/// Opens the transport a host's `connection` names; an ssh host keeps its master for later runs when
/// `persist` is given. Nothing connects until the first script, so an unreachable host fails its own
/// tasks, not the run.
pub fn connect(host: &Host, persist: Option<&Persist>) -> std::sync::Arc<dyn Transport> {
    match host.connection {
        Connection::Local => std::sync::Arc::new(LocalTransport::new(host.name.clone())),
        Connection::Ssh => std::sync::Arc::new(SshTransport::new(host.clone(), persist.cloned())),
    }
}
