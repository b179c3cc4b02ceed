//! The `local` connection: scripts run on the controller itself. Used by the demo inventory and by tests
//! that need no network, and it shares every code path above the transport with SSH.
//!
//! Each script runs in a process group of its own, so that a cancelled run or a task's timeout stops
//! everything the script started (not only its `sh`), and it dies with the controller: a killed
//! controller must not leave a script writing on.
//!
//! A script is started without forking the controller where `setpriv` can set the death signal
//! instead: a fork copies the controller's page tables, which grow with the hosts of the run, so at
//! thousands of hosts starting the scripts would cost more than running them.

use super::{Counters, Output, Transport, TransportError, TransportStats};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// How long a stopped script's process group gets to exit on SIGTERM (and run its traps, e.g. removing a
/// temp file) before it is killed.
const GRACE: Duration = Duration::from_secs(2);

/// How a script's `sh` is made to get SIGTERM when the thread that started it ends (the controller
/// dying, even by SIGKILL).
#[derive(Debug, Clone)]
enum Launch {
    /// `setpriv --pdeathsig TERM /bin/sh -s`: spawned without a fork (posix_spawn), so starting a
    /// script costs the same however large the controller is.
    Setpriv(PathBuf),
    /// `prctl(PR_SET_PDEATHSIG)` between fork and exec, where no `setpriv` knows `--pdeathsig`.
    Prctl,
}

/// The launch this machine allows, found once: which tools are installed is the machine's, not a
/// run's, and asking per script would cost a process each time.
static LAUNCH: LazyLock<Launch> = LazyLock::new(|| {
    ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| {
            std::process::Command::new(p)
                .args(["--pdeathsig", "TERM", "--", "/bin/sh", "-c", ":"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map_or(Launch::Prctl, Launch::Setpriv)
});

/// Runs scripts with the controller's `/bin/sh`.
#[derive(Debug)]
pub struct LocalTransport {
    host: String,
    launch: Launch,
    /// Process groups of scripts that were stopped before they finished, still being terminated.
    stopping: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Scripts and copies made; a local host has no connection to count.
    counters: Counters,
}

impl LocalTransport {
    /// A transport acting for the inventory host `host`.
    pub fn new(host: impl Into<String>) -> Self {
        Self::with_launch(host, LAUNCH.clone())
    }

    fn with_launch(host: impl Into<String>, launch: Launch) -> Self {
        Self {
            host: host.into(),
            launch,
            stopping: Mutex::new(Vec::new()),
            counters: Counters::default(),
        }
    }

    /// The command that runs a script read from standard input.
    fn command(&self) -> Command {
        match &self.launch {
            Launch::Setpriv(setpriv) => {
                let mut cmd = Command::new(setpriv);
                cmd.args(["--pdeathsig", "TERM", "--", "/bin/sh", "-s"]);
                cmd
            }
            Launch::Prctl => {
                let mut cmd = Command::new("/bin/sh");
                cmd.arg("-s");
                // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the
                // parent.
                unsafe {
                    cmd.pre_exec(|| {
                        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                cmd
            }
        }
    }

    fn io(&self, context: &str, source: std::io::Error) -> TransportError {
        TransportError::Io {
            host: self.host.clone(),
            context: context.to_string(),
            source,
        }
    }
}

/// A running script's process group: stopped when the run of the script is abandoned (the future
/// dropped on cancel or timeout) before the script finished. This, not tokio's `kill_on_drop`, stops
/// it: SIGKILL to the shell alone would leave its children running and skip its traps (temp files).
struct Group<'a> {
    pgid: i32,
    finished: bool,
    owner: &'a LocalTransport,
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let pgid = self.pgid;
        tracing::debug!(host = %self.owner.host, pgid, "stopping an unfinished script");
        let handle = std::thread::spawn(move || terminate_group(pgid));
        self.owner.stopping.lock().expect("stopping").push(handle);
    }
}

/// SIGTERM to the whole group, then SIGKILL to whatever is left after [`GRACE`].
fn terminate_group(pgid: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; it has no memory effects.
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let until = std::time::Instant::now() + GRACE;
    while std::time::Instant::now() < until {
        // SAFETY: signal 0 only checks whether the group still has members.
        if unsafe { libc::kill(-pgid, 0) } != 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// Writes `input` to `stdin` and closes it. A script that exits before reading all of it (`exit` in a
/// probe) closes the pipe; that is the script's business, reported through its exit status.
async fn feed(mut stdin: impl AsyncWriteExt + Unpin, input: &[u8]) -> std::io::Result<()> {
    match stdin.write_all(input).await {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Reads a pipe to its end.
async fn drain(mut pipe: impl AsyncReadExt + Unpin) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    pipe.read_to_end(&mut buf).await?;
    Ok(buf)
}

#[async_trait]
impl Transport for LocalTransport {
    fn host(&self) -> &str {
        &self.host
    }

    async fn run(&self, script: &str) -> Result<Output, TransportError> {
        let mut cmd = self.command();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| self.io("spawning /bin/sh", e))?;
        self.counters.script();
        let mut group = Group {
            pgid: child.id().map(|p| p as i32).unwrap_or_default(),
            finished: false,
            owner: self,
        };
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        // All three at once: a script that prints a lot while it is still being fed must not block on a
        // full pipe while we block on its full stdin.
        let (sent, stdout, stderr, status) = tokio::join!(
            async {
                let r = feed(stdin, script.as_bytes()).await;
                // stdin is dropped here, so sh sees the end of the script.
                r
            },
            drain(stdout),
            drain(stderr),
            child.wait()
        );
        let status = status.map_err(|e| self.io("waiting for /bin/sh", e))?;
        group.finished = true;
        sent.map_err(|e| self.io("sending the script", e))?;
        Ok(Output {
            status: status.code().unwrap_or(-1),
            stdout: stdout.map_err(|e| self.io("reading the script's output", e))?,
            stderr: stderr.map_err(|e| self.io("reading the script's errors", e))?,
        })
    }

    async fn upload(&self, local: &Path, remote: &str) -> Result<(), TransportError> {
        self.counters.upload();
        tokio::fs::copy(local, remote)
            .await
            .map(|_| ())
            .map_err(|e| self.io(&format!("copying {} to {remote}", local.display()), e))
    }

    async fn close(&self) {
        let handles: Vec<_> = std::mem::take(&mut *self.stopping.lock().expect("stopping"));
        for h in handles {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }

    fn stats(&self) -> TransportStats {
        self.counters.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_script_fed_a_large_stdin_while_printing_a_large_answer_does_not_deadlock() {
        // The script starts printing 8 MB before it has read its own 8 MB tail (a comment), so feeding
        // and reading must overlap: pipes hold 64 KB.
        let mut script = String::from("head -c 8000000 /dev/zero | tr '\\0' x\n");
        script.push('#');
        script.push_str(&"y".repeat(8_000_000));
        script.push('\n');
        script.push_str("echo done >&2\n");
        let t = LocalTransport::new("t");
        let out = tokio::time::timeout(Duration::from_secs(60), t.run(&script))
            .await
            .expect("the run deadlocked")
            .unwrap();
        assert_eq!(out.status, 0, "{}", out.tail());
        assert_eq!(out.stdout.len(), 8_000_000);
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "done");
    }

    #[tokio::test]
    async fn an_abandoned_script_and_its_children_are_stopped() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("pid");
        let t = LocalTransport::new("t");
        let script = format!(
            "sleep 300 & echo $! > {}\nwait\n",
            super::super::sh_quote(&pidfile.display().to_string())
        );
        let run = t.run(&script);
        let r = tokio::time::timeout(Duration::from_secs(1), run).await;
        assert!(r.is_err(), "the script was meant to outlive the timeout");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        t.close().await;
        assert!(!alive(pid), "sleep {pid} survived its abandoned script");
    }

    #[test]
    fn a_script_dies_with_the_thread_that_started_it_however_it_was_launched() {
        let mut launches = vec![Launch::Prctl];
        launches.extend(matches!(&*LAUNCH, Launch::Setpriv(_)).then(|| LAUNCH.clone()));
        for launch in launches {
            let d = tempfile::tempdir().unwrap();
            let pidfile = d.path().join("pid");
            let script = format!(
                "echo $$ > {}\nwhile :; do sleep 1; done\n",
                super::super::sh_quote(&pidfile.display().to_string())
            );
            let t = LocalTransport::with_launch("t", launch.clone());
            let written = pidfile.clone();
            // The thread ends with the script still running and nothing left to stop it (the run is
            // leaked, not dropped): only the death signal can end it, as when the controller dies.
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let mut run = Box::pin(t.run(&script));
                    let started = std::time::Instant::now();
                    while std::fs::read_to_string(&written).map_or(true, |s| !s.ends_with('\n')) {
                        assert!(started.elapsed() < Duration::from_secs(30), "{launch:?}: no pid");
                        tokio::select! {
                            r = &mut run => panic!("{launch:?}: the script ended: {:?}", r.map(|o| o.tail())),
                            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                        }
                    }
                    std::mem::forget(run);
                });
            })
            .join()
            .unwrap();
            let pid: i32 = std::fs::read_to_string(&pidfile)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let until = std::time::Instant::now() + Duration::from_secs(10);
            while alive(pid) && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(!alive(pid), "sh {pid} outlived the thread that started it");
        }
    }

    /// True while `pid` exists and is not a zombie waiting to be reaped.
    pub(crate) fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }
}
