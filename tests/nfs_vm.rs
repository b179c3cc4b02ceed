//! NFS shared storage (modules `nfs_server` and `wso2_shared_fs`, resource `mount`) on three qemu VMs of tests/lab/vm: the
//! lab's nspawn hosts share this machine's kernel, which may have no NFS, so this test needs real VMs.
//! v1 exports the directory; v2 and v3 mount it as the product's `repository/deployment/server`, and
//! v2, the first client, seeds the share from its own local directory before anyone mounts it. One
//! inventory with the lab's ssh settings reaches the VMs and the lab host h1.

mod common;
use common::vm::ssh;
use common::{lab, Project};
use std::path::Path;

/// The lines of an inventory's `ssh:` block.
fn ssh_block(inventory: &str) -> String {
    inventory
        .lines()
        .skip_while(|l| *l != "ssh:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `cmd` on `v` must succeed; its trimmed output.
fn run_on(v: &str, cmd: &str) -> String {
    let (code, out) = ssh(v, cmd);
    assert_eq!(code, 0, "{v}: `{cmd}` failed: {out}");
    out.trim().to_string()
}

const PLAYBOOK: &str = r#"
name: shared-fs
vars:
  product_link: /opt/wso2am
  wso2_user: wso2
  wso2_group: wso2
  wso2_uid: 802
  wso2_gid: 802
  shared_fs_export_dir: /srv/wso2/deployment-server
plays:
  - name: a lab host, through the same ssh settings
    hosts: h1
    tasks:
      - name: lab host reached
        file:
          path: /root
          state: directory
  - name: nfs server
    hosts: nfs_server
    tasks:
      - include: nfs_server
  - name: shared deployment dir
    hosts: nfs_clients
    tasks:
      - include: wso2_shared_fs
"#;

const MOUNT: &str = "/opt/wso2am/repository/deployment/server";
const EXPORT: &str = "/srv/wso2/deployment-server";
const MARKER: &str = ".apim-provision-seeded";

#[test]
fn nfs_share_seeded_once_and_mounted_on_two_vms() {
    let Some((_guard, lab_inventory)) = lab::acquire() else {
        return;
    };
    // Fresh VMs: the first apply must do the whole job.
    let Some((_vms, vm_inventory)) = common::vm::fresh(3, "nfs_vm") else {
        return;
    };
    let inv = std::fs::read_to_string(&vm_inventory).expect("VM inventory");
    let lab_inv = std::fs::read_to_string(&lab_inventory).expect("lab inventory");
    // The VMs' inventory has exactly the lab's ssh settings: one block reaches h* and v*.
    assert_eq!(
        ssh_block(&inv),
        ssh_block(&lab_inv),
        "the VMs' ssh settings differ from the lab's"
    );
    let inv = inv.split("\ngroups:").next().unwrap().to_string()
        + "\n  h1:\n    address: 10.231.0.11\n    connection: ssh\n"
        + "groups:\n  nfs_server: { hosts: [v1] }\n  nfs_clients: { hosts: [v2, v3] }\n";

    // What the pack left on the nodes before the share hides it: v2 seeds, v3's content never reaches
    // the share.
    run_on(
        "v2",
        &format!("mkdir -p {MOUNT}/webapps && echo pack-v2 > {MOUNT}/webapps/pack.txt"),
    );
    run_on(
        "v3",
        &format!("mkdir -p {MOUNT} && echo pack-v3 > {MOUNT}/v3-only.txt"),
    );

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

    // Seeded from v2 only, marker written, export owned by the product ids.
    assert_eq!(
        run_on("v1", &format!("cat {EXPORT}/webapps/pack.txt")),
        "pack-v2"
    );
    run_on("v1", &format!("test -f {EXPORT}/{MARKER}"));
    let (code, _) = ssh("v1", &format!("test -e {EXPORT}/v3-only.txt"));
    assert_ne!(code, 0, "v3, not the first client, seeded the share");
    assert_eq!(run_on("v1", &format!("stat -c %u:%g {EXPORT}")), "802:802");
    assert_eq!(
        run_on("v1", "id -u wso2; id -g wso2").replace('\n', " "),
        "802 802"
    );

    // Both clients mount the share: what v2 writes, v1 and v3 see.
    run_on(
        "v2",
        &format!("echo from-v2 > {MOUNT}/nfs-vm-test.txt && sync"),
    );
    assert_eq!(
        run_on("v1", &format!("cat {EXPORT}/nfs-vm-test.txt")),
        "from-v2",
        "the client's file is not in the server's export dir"
    );
    assert_eq!(
        run_on("v3", &format!("cat {MOUNT}/webapps/pack.txt")),
        "pack-v2"
    );
    for v in ["v2", "v3"] {
        let out = run_on(v, &format!("findmnt -n -o FSTYPE,SOURCE {MOUNT}"));
        let fstype = out.split_whitespace().next().unwrap_or_default();
        assert!(
            fstype == "nfs" || fstype == "nfs4",
            "{v} has no NFS mount on {MOUNT}: {out}"
        );
        assert!(
            out.contains(&format!("10.231.0.101:{EXPORT}")),
            "{v}: wrong source: {out}"
        );
    }

    let second = p.run(&args(&["--json"]));
    second.assert_no_changes();

    // A seeded share is never seeded again: with v2's mount gone, apply mounts it back, and neither a
    // file changed on the share nor one added to v2's local directory meanwhile is touched or copied.
    run_on(
        "v1",
        &format!("echo changed-on-share > {EXPORT}/webapps/pack.txt"),
    );
    run_on(
        "v2",
        &format!("umount {MOUNT} && echo late > {MOUNT}/late.txt"),
    );
    let third = p.run(&args(&[]));
    assert_eq!(third.code, 0, "apply after an unmount:\n{}", third.all());
    assert_eq!(
        run_on("v1", &format!("cat {EXPORT}/webapps/pack.txt")),
        "changed-on-share"
    );
    let (code, _) = ssh("v1", &format!("test -e {EXPORT}/late.txt"));
    assert_ne!(code, 0, "a seeded share was seeded again");

    // A seed cut short (no marker) is finished without overwriting what the share holds.
    run_on("v1", &format!("rm {EXPORT}/{MARKER}"));
    run_on("v2", &format!("umount {MOUNT}"));
    let fourth = p.run(&args(&[]));
    assert_eq!(fourth.code, 0, "apply finishing a seed:\n{}", fourth.all());
    assert_eq!(run_on("v1", &format!("cat {EXPORT}/late.txt")), "late");
    assert_eq!(
        run_on("v1", &format!("cat {EXPORT}/webapps/pack.txt")),
        "changed-on-share"
    );
    run_on("v1", &format!("test -f {EXPORT}/{MARKER}"));
}
