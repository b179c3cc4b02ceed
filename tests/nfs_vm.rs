//! NFS shared storage (module `wso2_shared_fs`, resource `mount`) on two qemu VMs of tests/lab/vm: the
//! lab's nspawn hosts share this machine's kernel, which may have no NFS, so this test needs real VMs.
//! v1 exports the directory, v2 mounts it as the product's `repository/deployment/server`.

mod common;
use common::{lab, Project};
use std::path::{Path, PathBuf};
use std::process::Command;

fn vm_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/vm")
}

/// Runs tests/lab/vm; exit status and both streams.
fn vm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(vm_script())
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
struct Vms;

impl Drop for Vms {
    fn drop(&mut self) {
        let (ok, _, err) = vm(&["down"]);
        if !ok {
            eprintln!("tests/lab/vm down failed: {err}");
        }
    }
}

/// Runs `cmd` on VM `v` over the ssh config tests/lab/vm wrote (host keys checked strictly).
fn ssh(v: &str, cmd: &str) -> (i32, String) {
    let cfg = lab::dir().join("vm/ssh_config");
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

const PLAYBOOK: &str = r#"
name: shared-fs
vars:
  product_link: /opt/wso2am
plays:
  - name: shared deployment dir
    hosts: nfs_server,nfs_clients
    tasks:
      - include: wso2_shared_fs
"#;

const MOUNT: &str = "/opt/wso2am/repository/deployment/server";
const EXPORT: &str = "/srv/wso2/deployment-server";

#[test]
fn nfs_share_between_two_vms() {
    let Some((_guard, _lab_inventory)) = lab::acquire() else {
        return;
    };
    let (ok, _, err) = vm(&["deps"]);
    if !ok {
        eprintln!("SKIPPED: nfs_vm: qemu cannot be installed here:\n{err}");
        return;
    }
    // Fresh VMs: the first apply must do the whole job.
    let _vms = Vms;
    let (ok, _, err) = vm(&["down"]);
    assert!(ok, "tests/lab/vm down failed: {err}");
    let (ok, out, err) = vm(&["up", "2"]);
    if !ok {
        if err.contains("no sshd after") || err.contains("qemu exited") {
            // The script printed the tail of the serial log of the VM that did not boot.
            eprintln!("SKIPPED: nfs_vm: a VM did not boot within 180 s:\n{err}");
            return;
        }
        panic!("tests/lab/vm up 2 failed:\n{out}{err}");
    }
    eprintln!("{err}");
    let vm_inventory = PathBuf::from(out.lines().last().expect("inventory path").trim());
    let inv = std::fs::read_to_string(&vm_inventory).expect("VM inventory");
    let inv = inv.split("\ngroups:").next().unwrap().to_string()
        + "\ngroups:\n  nfs_server: { hosts: [v1] }\n  nfs_clients: { hosts: [v2] }\n";

    let p = Project::new();
    p.write("inventory.yaml", &inv);
    p.write("playbooks/main.yaml", PLAYBOOK);
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("modules"),
        p.path().join("modules"),
    )
    .expect("link modules");
    let args = |extra: &[&'static str]| {
        let mut v = vec![
            "apply",
            "inventory.yaml",
            "--playbook",
            "playbooks/main.yaml",
            "--no-color",
        ];
        v.extend_from_slice(extra);
        v
    };

    let first = p.run(&args(&[]));
    assert_eq!(first.code, 0, "first apply:\n{}", first.all());

    let (code, out) = ssh(
        "v2",
        &format!("echo from-v2 > {MOUNT}/nfs-vm-test.txt && sync"),
    );
    assert_eq!(code, 0, "writing on the client: {out}");
    let (code, out) = ssh("v1", &format!("cat {EXPORT}/nfs-vm-test.txt"));
    assert_eq!(
        (code, out.trim()),
        (0, "from-v2"),
        "the client's file is not in the server's export dir"
    );

    let (code, out) = ssh("v2", &format!("findmnt -n -o FSTYPE,SOURCE {MOUNT}"));
    assert_eq!(code, 0, "findmnt on v2: {out}");
    let fstype = out.split_whitespace().next().unwrap_or_default();
    assert!(
        fstype == "nfs" || fstype == "nfs4",
        "v2 has no NFS mount on {MOUNT}: {out}"
    );
    assert!(
        out.contains(&format!("10.231.0.101:{EXPORT}")),
        "wrong source: {out}"
    );

    let second = p.run(&args(&["--json"]));
    second.assert_no_changes();
}
