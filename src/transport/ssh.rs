//! The `ssh` connection: one OpenSSH ControlMaster per host (openssh crate, native mux), so every script
//! after the first costs one channel, not one handshake. `~/.ssh/config` is honoured unless the inventory
//! names another file; host keys are checked strictly against the user's (or the inventory's) known_hosts.

use super::{Output, Transport, TransportError};
use crate::model::Host;
use async_trait::async_trait;
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, Semaphore};

/// sshd's MaxSessions defaults to 10; staying under it leaves room for an operator's own session.
const CHANNELS_PER_HOST: usize = 8;
/// Connection attempts before a host is declared unreachable.
const CONNECT_ATTEMPTS: u32 = 3;

/// A host reached over SSH.
pub struct SshTransport {
    host: Host,
    session: Mutex<Option<Arc<Session>>>,
    channels: Semaphore,
    control_dir: PathBuf,
}

impl SshTransport {
    /// A transport for `host`; nothing is connected until the first script.
    pub fn new(host: Host) -> Self {
        Self {
            host,
            session: Mutex::new(None),
            channels: Semaphore::new(CHANNELS_PER_HOST),
            control_dir: std::env::temp_dir()
                .join(format!("apim-provision-ssh-{}", std::process::id())),
        }
    }

    fn conn_err(&self, reason: impl std::fmt::Display) -> TransportError {
        TransportError::Connection {
            host: self.host.name.clone(),
            reason: reason.to_string(),
        }
    }

    fn builder(&self) -> SessionBuilder {
        let s = &self.host.ssh;
        let mut b = SessionBuilder::default();
        b.known_hosts_check(KnownHosts::Strict)
            .connect_timeout(Duration::from_secs(10))
            .server_alive_interval(Duration::from_secs(5))
            .control_directory(&self.control_dir);
        if let Some(u) = &s.user {
            b.user(u.clone());
        }
        if let Some(p) = s.port {
            b.port(p);
        }
        if let Some(k) = &s.identity_file {
            b.keyfile(k);
        }
        if let Some(k) = &s.known_hosts {
            b.user_known_hosts_file(k);
        }
        if let Some(c) = &s.ssh_config {
            b.config_file(c);
        }
        b
    }

    /// The session, connecting on first use with retries and backoff. Only connecting is retried: a
    /// script that may have started is never re-run blindly.
    async fn session(&self) -> Result<Arc<Session>, TransportError> {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        std::fs::create_dir_all(&self.control_dir)
            .map_err(|e| self.conn_err(format!("creating {}: {e}", self.control_dir.display())))?;
        let b = self.builder();
        let mut last = String::new();
        for attempt in 0..CONNECT_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt - 1))).await;
            }
            tracing::debug!(host = %self.host.name, attempt, "connecting over ssh to {}", self.host.address);
            match b.connect_mux(&self.host.address).await {
                Ok(s) => {
                    let s = Arc::new(s);
                    *slot = Some(s.clone());
                    return Ok(s);
                }
                Err(e) => last = chain(&e),
            }
        }
        Err(self.conn_err(format!(
            "{} after {CONNECT_ATTEMPTS} attempts: {last}",
            self.host.address
        )))
    }

    /// The remote shell command: `sh -s`, through `sudo -n` when the inventory asks to become root.
    fn shell(&self, inner: &str) -> String {
        let become_root = self.host.ssh.become_root.unwrap_or(false)
            && self.host.ssh.user.as_deref().is_some_and(|u| u != "root");
        if become_root {
            format!("sudo -n {inner}")
        } else {
            inner.to_string()
        }
    }

    /// Runs `command` on one channel with `input` on its stdin and collects its output.
    async fn pipe(
        &self,
        command: String,
        input: &[u8],
        what: &str,
    ) -> Result<std::process::Output, TransportError> {
        let session = self.session().await?;
        let _channel = self.channels.acquire().await.expect("semaphore open");
        let mut child = session
            .raw_command(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| self.map(e))?;
        let mut stdin = child.stdin().take().expect("stdin is piped");
        let sent = async {
            stdin.write_all(input).await?;
            stdin.shutdown().await
        };
        sent.await
            .map_err(|e| self.conn_err(format!("{what}: {e}")))?;
        drop(stdin);
        child.wait_with_output().await.map_err(|e| self.map(e))
    }

    fn map(&self, e: openssh::Error) -> TransportError {
        self.conn_err(chain(&e))
    }
}

#[async_trait]
impl Transport for SshTransport {
    fn host(&self) -> &str {
        &self.host.name
    }

    async fn run(&self, script: &str) -> Result<Output, TransportError> {
        let out = self
            .pipe(self.shell("sh -s"), script.as_bytes(), "sending the script")
            .await?;
        Ok(Output {
            status: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    async fn upload(&self, local: &Path, remote: &str) -> Result<(), TransportError> {
        let bytes = tokio::fs::read(local)
            .await
            .map_err(|e| TransportError::Io {
                host: self.host.name.clone(),
                context: format!("reading {}", local.display()),
                source: e,
            })?;
        let want = crate::resources::sha256_hex(&bytes);
        let cmd = format!(
            "sh -c {}",
            super::sh_quote(&format!("cat > {}", super::sh_quote(remote)))
        );
        let what = format!("uploading {}", local.display());
        let out = self.pipe(self.shell(&cmd), &bytes, &what).await?;
        if !out.status.success() {
            return Err(self.conn_err(format!(
                "writing {remote}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let check = self
            .run(&format!(
                "sha256sum < {} | cut -c1-64",
                super::sh_quote(remote)
            ))
            .await?;
        let got = check.stdout_text().trim().to_string();
        if got != want {
            return Err(self.conn_err(format!(
                "upload of {} to {remote} is corrupt: sha256 {got}, expected {want}",
                local.display()
            )));
        }
        Ok(())
    }

    async fn close(&self) {
        let Some(s) = self.session.lock().await.take() else {
            return;
        };
        match Arc::try_unwrap(s) {
            Ok(s) => {
                if let Err(e) = s.close().await {
                    tracing::debug!(host = %self.host.name, "closing the ssh master: {}", chain(&e));
                }
            }
            Err(_) => tracing::warn!(host = %self.host.name, "ssh session still in use at close"),
        }
        // Shared by every host of this run: the last host to close removes it (earlier ones fail
        // harmlessly because it is not empty yet).
        let _ = std::fs::remove_dir(&self.control_dir);
    }
}

/// An error with its sources, since openssh's top-level messages ("failed to connect") hide the reason.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(&format!(": {s}"));
        cur = s.source();
    }
    out
}
