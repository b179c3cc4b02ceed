//! The `local` connection: scripts run on the controller itself. Used by the demo inventory and by tests
//! that need no network, and it shares every code path above the transport with SSH.

use super::{Output, Transport, TransportError};
use async_trait::async_trait;
use std::path::Path;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs scripts with the controller's `/bin/sh`.
#[derive(Debug, Clone)]
pub struct LocalTransport {
    host: String,
}

impl LocalTransport {
    /// A transport acting for the inventory host `host`.
    pub fn new(host: impl Into<String>) -> Self {
        Self { host: host.into() }
    }

    fn io(&self, context: &str, source: std::io::Error) -> TransportError {
        TransportError::Io {
            host: self.host.clone(),
            context: context.to_string(),
            source,
        }
    }
}

#[async_trait]
impl Transport for LocalTransport {
    fn host(&self) -> &str {
        &self.host
    }

    async fn run(&self, script: &str) -> Result<Output, TransportError> {
        let mut child = Command::new("/bin/sh")
            .arg("-s")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.io("spawning /bin/sh", e))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| self.io("sending the script", e))?;
        drop(stdin);
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| self.io("waiting for /bin/sh", e))?;
        Ok(Output {
            status: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    async fn upload(&self, local: &Path, remote: &str) -> Result<(), TransportError> {
        tokio::fs::copy(local, remote)
            .await
            .map(|_| ())
            .map_err(|e| self.io(&format!("copying {} to {remote}", local.display()), e))
    }
}
