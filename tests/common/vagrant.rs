//! The Vagrant cluster (vagrant/) from the tests' side: its scripts and `vagrant` itself, run with this
//! machine's state directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The repository's vagrant/ directory (Vagrantfile, cluster.rb, host, inventory, box/build).
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vagrant")
}

/// vagrant/host's state directory.
pub fn state() -> PathBuf {
    PathBuf::from(
        std::env::var("APIM_VAGRANT_DIR").unwrap_or_else(|_| "/var/tmp/apim-vagrant".into()),
    )
}

/// Where the box stays added between runs (beside the box cache of vagrant/box/build): a directory
/// the qemu user can read the box's kernel from, unlike root's home.
pub fn vagrant_home() -> PathBuf {
    let cache = std::env::var("LAB_CACHE").unwrap_or_else(|_| "/var/cache/apim-lab".into());
    PathBuf::from(cache).join("vagrant/home")
}

/// Where the VMs' consoles are logged (the Vagrantfile's APIM_SERIAL_DIR), one NAME.log each.
pub fn serial_dir() -> PathBuf {
    state().join("serial")
}

/// The last lines of every VM's console log, for a failure message.
pub fn serial_tails() -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(serial_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        out.push_str(&format!("---- {} ----\n{tail}\n", e.path().display()));
    }
    out
}

/// What a command printed, its status and how long it took.
pub struct Ran {
    pub ok: bool,
    pub text: String,
    pub took: Duration,
}

/// Runs `cmd` with Vagrant's environment for `topology`, `.vagrant` state in `dotfile`, in `cwd`.
pub fn run_in(cwd: &Path, dotfile: &Path, topology: &str, cmd: &mut Command) -> Ran {
    let t0 = Instant::now();
    let out: Output = cmd
        .current_dir(cwd)
        .env("VAGRANT_HOME", vagrant_home())
        .env("VAGRANT_DOTFILE_PATH", dotfile)
        .env("VAGRANT_DEFAULT_PROVIDER", "libvirt")
        .env("VAGRANT_NO_COLOR", "1")
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .env("APIM_TOPOLOGY", topology)
        .env("APIM_SERIAL_DIR", serial_dir())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    Ran {
        ok: out.status.success(),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        took: t0.elapsed(),
    }
}

/// [`run_in`] in vagrant/, with the cluster's own `.vagrant` state under vagrant/host's directory.
pub fn run(topology: &str, cmd: &mut Command) -> Ran {
    run_in(&dir(), &state().join("dot"), topology, cmd)
}

/// Runs `cmd` and panics with its output when it fails.
pub fn must(topology: &str, what: &str, cmd: &mut Command) -> Ran {
    let r = run(topology, cmd);
    assert!(
        r.ok,
        "{what} failed after {:?}:\n{}\n{}",
        r.took,
        r.text,
        serial_tails()
    );
    r
}

/// `vagrant` with `args`.
pub fn vagrant(args: &[&str]) -> Command {
    let mut c = Command::new("vagrant");
    c.args(args);
    c
}

/// A script of vagrant/ with `args`.
pub fn script(name: &str, args: &[&str]) -> Command {
    let mut c = Command::new(dir().join(name));
    c.args(args);
    c
}

/// Vagrant and libvirt installed (vagrant/host deps); `None` after saying SKIPPED when this machine
/// cannot have them: not root. Elsewhere a failure to install fails the test.
pub fn deps(test: &str) -> Option<()> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        eprintln!("SKIPPED: {test}: the Vagrant cluster needs root (libvirt's system daemon, apt)");
        return None;
    }
    must(
        "active-active",
        "vagrant/host deps",
        &mut script("host", &["deps"]),
    );
    Some(())
}
