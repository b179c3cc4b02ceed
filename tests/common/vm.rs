//! The lab's qemu VMs (tests/lab/vm) from the tests' side: for what the nspawn hosts cannot do because
//! they share this machine's kernel (NFS).

use super::lab;
use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/vm")
}

/// Runs tests/lab/vm; exit status and both streams.
pub fn vm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(script())
        .args(args)
        .env("VM_BOOT_TIMEOUT", "180")
        .output()
        .expect("run tests/lab/vm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Tears the VMs down (the script kills only the qemu PIDs it recorded) however the test ends.
pub struct Vms;

impl Drop for Vms {
    fn drop(&mut self) {
        let (ok, _, err) = vm(&["down"]);
        if !ok {
            eprintln!("tests/lab/vm down failed: {err}");
        }
    }
}

/// Fresh VMs v1..vN (any running ones are torn down first), kept until the guard drops; the path of the
/// inventory the script wrote. `None` after saying SKIPPED when this machine cannot run them (`test`
/// names the test in the message).
pub fn fresh(n: usize, test: &str) -> Option<(Vms, PathBuf)> {
    let (ok, _, err) = vm(&["deps"]);
    if !ok {
        eprintln!("SKIPPED: {test}: qemu cannot be installed here:\n{err}");
        return None;
    }
    let guard = Vms;
    let (ok, _, err) = vm(&["down"]);
    assert!(ok, "tests/lab/vm down failed: {err}");
    let (up, out, err) = vm(&["up", &n.to_string()]);
    if !up {
        if err.contains("no sshd after") || err.contains("qemu exited") {
            // The script printed the tail of the serial log of the VM that did not boot.
            eprintln!("SKIPPED: {test}: a VM did not boot within 180 s:\n{err}");
            return None;
        }
        panic!("tests/lab/vm up {n} failed:\n{out}{err}");
    }
    eprintln!("{err}");
    let inventory = PathBuf::from(out.lines().last().expect("inventory path").trim());
    Some((guard, inventory))
}

/// Runs `cmd` on VM `v` over the lab's ssh config, which includes the VMs' (host keys checked
/// strictly); exit code and both streams.
pub fn ssh(v: &str, cmd: &str) -> (i32, String) {
    let cfg = lab::dir().join("ssh_config");
    let out = Command::new("ssh")
        .args([
            "-F",
            &cfg.display().to_string(),
            "-o",
            "BatchMode=yes",
            v,
            cmd,
        ])
        .output()
        .expect("run ssh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}
