//! The `ssh` connection: one OpenSSH ControlMaster per host (openssh crate, native mux), so every script
//! after the first costs one channel, not one handshake. `~/.ssh/config` is honoured unless the inventory
//! names another file; host keys are checked strictly against the user's (or the inventory's) known_hosts.
//! With [`Persist`] a host's master outlives the run for its idle time, and a later run attaches to it.

use super::{Counters, Output, Persist, Transport, TransportError, TransportStats};
use crate::model::Host;
use async_trait::async_trait;
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::sync::{Mutex, Semaphore};

/// sshd's MaxSessions defaults to 10; staying under it leaves room for an operator's own session.
const CHANNELS_PER_HOST: usize = 8;
/// Connection attempts before a host is declared unreachable.
const CONNECT_ATTEMPTS: u32 = 3;
/// First stderr line of every remote script: the id of its process group.
const PGID_MARK: &str = "@@apim-pgid ";
/// The name the openssh crate gives each master's directory, followed by random characters.
const MASTER_DIR_PREFIX: &str = ".ssh-connection";

/// A host reached over SSH.
pub struct SshTransport {
    host: Host,
    session: Mutex<Option<Arc<Session>>>,
    channels: Semaphore,
    /// The run's own directory for the masters it closes (unused when they are kept).
    control_dir: PathBuf,
    /// Keep the master for later runs, and attach to one an earlier run kept.
    persist: Option<Persist>,
    /// Remote process groups of abandoned scripts being stopped; close waits for them.
    stopping: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    counters: Counters,
}

impl SshTransport {
    /// A transport for `host`, keeping its master for later runs when `persist` says so; nothing is
    /// connected until the first script.
    pub fn new(host: Host, persist: Option<Persist>) -> Self {
        Self {
            host,
            session: Mutex::new(None),
            channels: Semaphore::new(CHANNELS_PER_HOST),
            control_dir: std::env::temp_dir()
                .join(format!("apim-provision-ssh-{}", std::process::id())),
            persist,
            stopping: std::sync::Mutex::new(Vec::new()),
            counters: Counters::default(),
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
            .server_alive_interval(Duration::from_secs(5));
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
    /// script that may have started is never re-run blindly. A kept master stops once idle for its
    /// time, which a long wait for another host can exceed: it is checked (locally, on its socket,
    /// which also restarts its idle time) before each use, and connected again when it is gone.
    async fn session(&self) -> Result<Arc<Session>, TransportError> {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_ref() {
            if self.persist.is_none() || s.check().await.is_ok() {
                return Ok(s.clone());
            }
            tracing::debug!(host = %self.host.name, "the kept ssh master is gone; connecting again");
            *slot = None;
        }
        let s = Arc::new(match &self.persist {
            None => {
                std::fs::create_dir_all(&self.control_dir).map_err(|e| {
                    self.conn_err(format!("creating {}: {e}", self.control_dir.display()))
                })?;
                self.launch(&self.control_dir).await?
            }
            Some(p) => self.attach_or_launch(p).await?,
        });
        *slot = Some(s.clone());
        Ok(s)
    }

    /// Starts a master in `dir` (kept for its idle time when persisting), retrying with backoff.
    async fn launch(&self, dir: &Path) -> Result<Session, TransportError> {
        let mut b = self.builder();
        b.control_directory(dir);
        if let Some(p) = &self.persist {
            let secs = usize::try_from(p.idle().as_secs()).unwrap_or(usize::MAX);
            b.control_persist(ControlPersist::IdleFor(
                NonZeroUsize::new(secs).unwrap_or(NonZeroUsize::MIN),
            ));
        }
        let mut last = String::new();
        for attempt in 0..CONNECT_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt - 1))).await;
            }
            tracing::debug!(host = %self.host.name, attempt, "connecting over ssh to {}", self.host.address);
            match b.connect_mux(&self.host.address).await {
                Ok(s) => {
                    self.counters.connection();
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

    /// The master an earlier run kept for exactly this connection, when it is still up, else a new
    /// one kept in its place. The host's directory is locked meanwhile, so two runs starting at once
    /// neither start two masters nor take the one the other is starting for an expired one.
    async fn attach_or_launch(&self, p: &Persist) -> Result<Session, TransportError> {
        let resolved = self.resolved().await?;
        let dir = p
            .host_dir(&self.host.name, &resolved)
            .map_err(|e| self.conn_err(e))?;
        let locking = dir.clone();
        let lock = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&locking)?;
            f.lock()?;
            Ok::<_, std::io::Error>(f)
        })
        .await
        .map_err(|e| self.conn_err(format!("locking {}: {e}", dir.display())))?
        .map_err(|e| self.conn_err(format!("locking {}: {e}", dir.display())))?;
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| self.conn_err(format!("reading {}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            if !entry
                .file_name()
                .to_string_lossy()
                .starts_with(MASTER_DIR_PREFIX)
            {
                continue;
            }
            let socket = entry.path().join("master");
            if socket.exists() {
                let s = Session::resume_mux(socket.into_boxed_path(), None);
                if s.check().await.is_ok() {
                    tracing::debug!(host = %self.host.name, "attached to the ssh master a run kept");
                    self.counters.reuse();
                    return Ok(s);
                }
            }
            // What an expired master left: its log, and a socket nobody listens on.
            let _ = std::fs::remove_dir_all(entry.path());
        }
        let s = self.launch(&dir).await;
        drop(lock);
        s
    }

    /// The connection as ssh resolves it from the inventory's settings and the ssh configuration
    /// (`ssh -G`: user, address, port, keys, known_hosts and the rest, without connecting), plus the
    /// identity of the inventory's key file, so that a kept master is found again only by the same
    /// connection, and not after the key file was replaced.
    async fn resolved(&self) -> Result<Vec<u8>, TransportError> {
        let s = &self.host.ssh;
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.arg("-G");
        if let Some(c) = &s.ssh_config {
            cmd.arg("-F").arg(c);
        }
        if let Some(u) = &s.user {
            cmd.arg("-l").arg(u);
        }
        if let Some(p) = s.port {
            cmd.arg("-p").arg(p.to_string());
        }
        if let Some(k) = &s.identity_file {
            cmd.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(k);
        }
        if let Some(k) = &s.known_hosts {
            cmd.arg("-o")
                .arg(format!("UserKnownHostsFile={}", k.display()));
        }
        let out = cmd
            .arg(&self.host.address)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| self.conn_err(format!("running ssh -G: {e}")))?;
        if !out.status.success() {
            return Err(self.conn_err(format!(
                "ssh -G {}: {}",
                self.host.address,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let mut resolved = out.stdout;
        if let Some(k) = &s.identity_file {
            use std::os::unix::fs::MetadataExt;
            if let Ok(m) = std::fs::metadata(k) {
                let key = format!(
                    "\nkey file {} {} {}.{}",
                    m.dev(),
                    m.ino(),
                    m.mtime(),
                    m.mtime_nsec()
                );
                resolved.extend(key.as_bytes());
            }
        }
        Ok(resolved)
    }

    /// The remote command running `inner` through `sh -c`, through `sudo -n` when the inventory asks to
    /// become root, in a session (and so a process group) of its own whose id it reports as the first
    /// line of stderr, so that a cancelled run or a timeout can stop everything the script started.
    fn shell(&self, inner: &str) -> String {
        let wrapped = grouped(inner);
        let become_root = self.host.ssh.become_root.unwrap_or(false)
            && self.host.ssh.user.as_deref().is_some_and(|u| u != "root");
        if become_root {
            format!("sudo -n {wrapped}")
        } else {
            wrapped
        }
    }

    /// `script` run by `sh -c` (through `sudo -n` when becoming root), outside any new session: for
    /// stopping a process group, which must not wait on a group of its own.
    fn shell_plain(&self, script: &str) -> String {
        let inner = format!("sh -c {}", super::sh_quote(script));
        let become_root = self.host.ssh.become_root.unwrap_or(false)
            && self.host.ssh.user.as_deref().is_some_and(|u| u != "root");
        if become_root {
            format!("sudo -n {inner}")
        } else {
            inner
        }
    }

    /// Runs `command` (from [`Self::shell`]) on one channel with `input` streamed to its stdin while its
    /// output is read, and collects that output; `count` tells which round trip it was, once the
    /// channel is open.
    async fn pipe(
        &self,
        command: String,
        input: impl AsyncRead + Unpin + Send,
        what: &str,
        count: fn(&Counters),
    ) -> Result<(i32, Vec<u8>, Vec<u8>), TransportError> {
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
        count(&self.counters);
        let stdin = child.stdin().take().expect("stdin is piped");
        let stdout = child.stdout().take().expect("stdout is piped");
        let stderr = child.stderr().take().expect("stderr is piped");
        let pgid = std::sync::Mutex::new(None);
        let mut group = Group {
            pgid: &pgid,
            finished: false,
            owner: self,
            session: session.clone(),
        };
        let (sent, out, err) = tokio::join!(
            feed(stdin, input),
            drain(stdout),
            stderr_with_pgid(stderr, &pgid)
        );
        let status = child.wait().await.map_err(|e| self.map(e))?;
        group.finished = true;
        sent.map_err(|e| self.conn_err(format!("{what}: {e}")))?;
        let out = out.map_err(|e| self.conn_err(format!("{what}: reading output: {e}")))?;
        let err = err.map_err(|e| self.conn_err(format!("{what}: reading errors: {e}")))?;
        Ok((status.code().unwrap_or(-1), out, err))
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
        let (status, stdout, stderr) = self
            .pipe(
                self.shell("sh -s"),
                script.as_bytes(),
                "sending the script",
                Counters::script,
            )
            .await?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    async fn upload(&self, local: &Path, remote: &str) -> Result<(), TransportError> {
        let file = tokio::fs::File::open(local)
            .await
            .map_err(|e| TransportError::Io {
                host: self.host.name.clone(),
                context: format!("reading {}", local.display()),
                source: e,
            })?;
        let mut hashing = Hashing::new(file);
        let cmd = format!("cat > {}", super::sh_quote(remote));
        let what = format!("uploading {}", local.display());
        let (status, _, stderr) = self
            .pipe(self.shell(&cmd), &mut hashing, &what, Counters::upload)
            .await?;
        if status != 0 {
            return Err(self.conn_err(format!(
                "writing {remote}: {}",
                String::from_utf8_lossy(&stderr).trim()
            )));
        }
        let want = hashing.hex();
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
        let stopping: Vec<_> = std::mem::take(&mut *self.stopping.lock().expect("stopping"));
        for h in stopping {
            let _ = h.await;
        }
        let Some(s) = self.session.lock().await.take() else {
            return;
        };
        match Arc::try_unwrap(s) {
            Ok(s) if self.persist.is_some() => {
                // Left up for its idle time, for the next run.
                let _ = s.detach();
            }
            Ok(s) => {
                if let Err(e) = s.close().await {
                    tracing::debug!(host = %self.host.name, "closing the ssh master: {}", chain(&e));
                }
            }
            Err(_) => tracing::warn!(host = %self.host.name, "ssh session still in use at close"),
        }
    }

    fn stats(&self) -> TransportStats {
        self.counters.stats()
    }
}

impl Drop for SshTransport {
    /// The run's control directory is shared by every host of the run: the last transport dropped
    /// removes it (earlier ones fail harmlessly because it is not empty yet). Not at close: a host
    /// closes as soon as it is done, while others may be connecting into the directory. Kept masters
    /// are not in it.
    fn drop(&mut self) {
        if self.persist.is_none() {
            let _ = std::fs::remove_dir(&self.control_dir);
        }
    }
}

/// `inner` run by `sh -c` in a new session, printing its process group id as the first stderr line.
fn grouped(inner: &str) -> String {
    format!(
        "setsid -w sh -c {}",
        super::sh_quote(&format!(
            "printf '{PGID_MARK}%s\\n' \"$$\" >&2; exec {inner}"
        ))
    )
}

/// A remote script's process group: stopped (TERM, then KILL after two seconds, on a channel of its
/// own) when the run of the script is abandoned before it finished (cancel or timeout).
struct Group<'a> {
    pgid: &'a std::sync::Mutex<Option<i32>>,
    finished: bool,
    owner: &'a SshTransport,
    session: Arc<Session>,
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        let pgid = *self.pgid.lock().expect("pgid");
        let (false, Some(pgid)) = (self.finished, pgid) else {
            return;
        };
        tracing::debug!(host = %self.owner.host.name, pgid, "stopping an unfinished remote script");
        let kill = format!(
            "kill -TERM -- -{pgid} 2>/dev/null || exit 0; sleep 2; kill -KILL -- -{pgid} 2>/dev/null; exit 0"
        );
        let command = self.owner.shell_plain(&kill);
        self.owner.counters.script();
        let session = self.session.clone();
        let handle = tokio::spawn(async move {
            let _ = session.raw_command(command).status().await;
        });
        self.owner.stopping.lock().expect("stopping").push(handle);
    }
}

/// Streams `input` to a remote stdin and closes it. A script that exits before reading all of it closes
/// the channel; its exit status says why.
async fn feed(
    mut stdin: impl AsyncWriteExt + Unpin,
    mut input: impl AsyncRead + Unpin,
) -> std::io::Result<()> {
    match tokio::io::copy(&mut input, &mut stdin).await {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    stdin.shutdown().await
}

/// Reads a pipe to its end.
async fn drain(mut pipe: impl AsyncReadExt + Unpin) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    pipe.read_to_end(&mut buf).await?;
    Ok(buf)
}

/// Reads stderr to its end, taking the process group marker off its first line as soon as it arrives.
async fn stderr_with_pgid(
    mut pipe: impl AsyncReadExt + Unpin,
    pgid: &std::sync::Mutex<Option<i32>>,
) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut marked = false;
    loop {
        let n = pipe.read(&mut chunk).await?;
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        if !marked {
            if let Some(end) = buf.iter().position(|b| *b == b'\n') {
                marked = true;
                let line = String::from_utf8_lossy(&buf[..end]).into_owned();
                if let Some(id) = line.strip_prefix(PGID_MARK) {
                    *pgid.lock().expect("pgid") = id.trim().parse().ok();
                    buf.drain(..=end);
                }
            }
        }
    }
}

/// A reader that hashes what passes through it, so an upload is checked without a second read.
struct Hashing<R> {
    inner: R,
    hash: sha2::Sha256,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        use sha2::Digest;
        Self {
            inner,
            hash: sha2::Sha256::new(),
        }
    }

    fn hex(self) -> String {
        use sha2::Digest;
        self.hash
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Hashing<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use sha2::Digest;
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &polled {
            let fresh = buf.filled()[before..].to_vec();
            self.hash.update(&fresh);
        }
        polled
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The remote wrapper, run by this machine's sh as sshd would run it: the script's exit status and
    /// output come through, the first stderr line names the script's own process group (not ours), and
    /// that line is taken off stderr.
    #[tokio::test]
    async fn the_remote_wrapper_reports_its_process_group_and_keeps_the_exit_status() {
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(grouped("sh -s"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let script: &[u8] = b"ps -o pgid= -p $$ | tr -d ' '; echo oops >&2; exit 7\n";
        let pgid = std::sync::Mutex::new(None);
        let (sent, out, err) = tokio::join!(
            feed(child.stdin.take().unwrap(), script),
            drain(child.stdout.take().unwrap()),
            stderr_with_pgid(child.stderr.take().unwrap(), &pgid)
        );
        let status = child.wait().await.unwrap();
        sent.unwrap();
        assert_eq!(status.code(), Some(7));
        let reported = pgid.lock().unwrap().expect("no process group reported");
        let own: i32 = String::from_utf8(out.unwrap())
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(reported, own);
        // SAFETY: getpgrp(2) only reads.
        assert_ne!(reported, unsafe { libc::getpgrp() });
        assert_eq!(String::from_utf8(err.unwrap()).unwrap(), "oops\n");
    }

    /// An upload is checked against the digest of what was streamed, so that digest must be the file's.
    #[tokio::test]
    async fn the_streamed_upload_is_hashed_on_the_way() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("pack");
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let mut hashing = Hashing::new(tokio::fs::File::open(&path).await.unwrap());
        let mut sent = Vec::new();
        tokio::io::copy(&mut hashing, &mut sent).await.unwrap();
        assert_eq!(sent, content);
        assert_eq!(hashing.hex(), crate::resources::sha256_hex(&content));
    }
}
