//! The lab from the tests' side: bring it up once per test binary, run faults, look at hosts' disks.
//! Lab tests change real hosts, so they run one at a time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

static LAB: OnceLock<Option<PathBuf>> = OnceLock::new();
static SERIAL: Mutex<()> = Mutex::new(());

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/lab")
}

/// The lab's state directory.
pub fn dir() -> PathBuf {
    PathBuf::from(std::env::var("LAB_DIR").unwrap_or_else(|_| "/var/tmp/apim-lab".into()))
}

/// Runs the lab script, panicking with its output when it fails.
pub fn lab(args: &[&str]) -> String {
    let out = Command::new(script())
        .args(args)
        .output()
        .expect("run tests/lab/lab");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "tests/lab/lab {args:?} failed:\n{text}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Held while a test uses the lab: the in-process lock orders tests of one binary, the file lock orders
/// test binaries (and developers' runs) against each other.
pub struct LabGuard {
    _thread: MutexGuard<'static, ()>,
    _process: std::fs::File,
}

/// The lab test lock alone, for tests that use this machine's lab resources (VMs) without the nspawn
/// hosts: one lab user at a time.
pub fn exclusive() -> LabGuard {
    let thread = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let process =
        std::fs::File::create("/run/lock/apimlab-tests.lock").expect("lab test lock file");
    process.lock().expect("lab test lock");
    LabGuard {
        _thread: thread,
        _process: process,
    }
}

/// Exclusive use of the lab (healed and up) and its inventory; `None` when this machine cannot make
/// network namespaces, after saying so loudly.
pub fn acquire() -> Option<(LabGuard, PathBuf)> {
    let guard = exclusive();
    let inv = LAB
        .get_or_init(|| {
            let check = Command::new(script()).arg("check").output().expect("run tests/lab/lab check");
            if check.status.code() == Some(3) {
                eprintln!(
                    "SKIPPED: lab tests need network namespaces, which this machine cannot make: {}",
                    String::from_utf8_lossy(&check.stdout).trim()
                );
                return None;
            }
            let out = lab(&["up", "4"]);
            Some(PathBuf::from(out.lines().last().expect("inventory path").trim()))
        })
        .clone()?;
    // A previous test may have left a fault behind; `up` heals and waits for every sshd.
    lab(&["up", "4"]);
    Some((guard, inv))
}

/// Runs `cmd` on `host` over the lab's ssh config.
pub fn ssh(host: &str, cmd: &str) -> (i32, String) {
    let out = Command::new("ssh")
        .args([
            "-F",
            &dir().join("ssh_config").display().to_string(),
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            host,
            cmd,
        ])
        .output()
        .expect("run ssh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A path on `host`'s disk, as the controller sees it through the host's overlay root. Symlinks are
/// followed inside that root (an absolute link such as `/opt/wso2am -> /opt/wso2am-4.2.0` means the
/// host's `/opt`, not the controller's).
pub fn on_disk(host: &str, path: &str) -> PathBuf {
    let root = dir().join("hosts").join(host).join("root");
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(String::from)
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let here = root.join(done.join("/")).join(&part);
        match std::fs::read_link(&here) {
            Ok(target) if hops < 40 => {
                hops += 1;
                let t = target.to_string_lossy().into_owned();
                if t.starts_with('/') {
                    done.clear();
                }
                todo.extend(
                    t.split('/')
                        .filter(|c| !c.is_empty())
                        .rev()
                        .map(String::from),
                );
            }
            _ => done.push(part),
        }
    }
    root.join(done.join("/"))
}
