//! Module `wso2_rsync` on the lab: h2 is the gateway manager, h3 and h4 are workers. The playbook here
//! includes only the module (plus a `wso2` user and a plain deployment directory), so it runs in
//! seconds without the product. One test needs no lab: the full `apim-gateway-rsync` playbook validates.

mod common;
use common::wso2::repo;
use common::{lab, Project};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const DIR: &str = "/opt/wso2am/repository/deployment/server";
const KEY: &str = "/var/lib/wso2-sync/id_ed25519";
const KNOWN_HOSTS: &str = "/var/lib/wso2-sync/known_hosts";
const WORKERS: [(&str, &str); 2] = [("h3", "10.231.0.13"), ("h4", "10.231.0.14")];

const PLAYBOOK: &str = r#"
name: sync-lab
vars:
  wso2_user: wso2
  wso2_group: wso2
  product_home: /opt/wso2am
plays:
  - name: gateway sync
    hosts: gateway_manager,gateway_worker
    tasks:
      - name: wso2 group
        group: { name: wso2, system: true }
      - name: wso2 user
        user: { name: wso2, group: wso2, system: true, home: /opt/wso2am, create_home: false, shell: /usr/sbin/nologin }
      - name: deployment parent
        file: { path: /opt/wso2am/repository/deployment, state: directory, owner: wso2, group: wso2, mode: "0755" }
      - name: manager deployment dir
        when: inventory_hostname in groups['gateway_manager']
        file: { path: /opt/wso2am/repository/deployment/server, state: directory, owner: wso2, group: wso2, mode: "0755" }
      - include: wso2_rsync
"#;

const INVENTORY: &str = r#"
pattern: sync-lab
ssh:
  user: root
  identity_file: /var/tmp/apim-lab/id_ed25519
  known_hosts: /var/tmp/apim-lab/known_hosts
  ssh_config: /var/tmp/apim-lab/ssh_config
hosts:
  h2: { address: 10.231.0.12 }
  h3: { address: 10.231.0.13 }
  h4: { address: 10.231.0.14 }
groups:
  gateway_manager: { hosts: [h2] }
  gateway_worker: { hosts: [h3, h4] }
"#;

fn project() -> Project {
    let p = Project::new();
    std::os::unix::fs::symlink(repo().join("modules"), p.path().join("modules")).unwrap();
    p.write("playbooks/sync-lab.yaml", PLAYBOOK);
    p.write("inventory.yaml", INVENTORY);
    p
}

/// Applies twice: the first converges, the second changes nothing.
fn converge(p: &Project, extra: &[&str]) -> (Duration, Duration) {
    let mut args = vec!["apply", "inventory.yaml", "--no-color"];
    args.extend_from_slice(extra);
    let t = Instant::now();
    let first = p.run(&args);
    let t_first = t.elapsed();
    assert_eq!(first.code, 0, "{}", first.all());
    args.push("--json");
    let t = Instant::now();
    let again = p.run(&args);
    let t_again = t.elapsed();
    assert_eq!(again.code, 0, "{}", again.all());
    let s = again.summary();
    assert_eq!(
        (s["add"].as_u64(), s["change"].as_u64()),
        (Some(0), Some(0)),
        "second apply changed something: {s}\n{}",
        again.stdout
    );
    (t_first, t_again)
}

/// Runs the sync script on the manager until `check` holds on every worker (a scheduled run may hold the
/// lock for a moment, and then a manual run exits quietly).
fn sync_until(what: &str, check: impl Fn(&str) -> bool) {
    for _ in 0..15 {
        let (rc, out) = lab::ssh("h2", "/usr/local/bin/wso2-sync 2>&1");
        assert_eq!(rc, 0, "wso2-sync failed: {out}");
        if WORKERS.iter().all(|(h, _)| check(h)) {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("{what}: not on every worker after 15 syncs");
}

/// The sync key's ssh command line on the manager, as the product user.
fn ssh_as_sync(addr: &str) -> String {
    format!(
        "runuser -u wso2 -- ssh -i {KEY} -o IdentitiesOnly=yes -o UserKnownHostsFile={KNOWN_HOSTS} \
         -o StrictHostKeyChecking=yes -o BatchMode=yes wso2sync@{addr}"
    )
}

/// "type base64" of a public key line (without the comment).
fn key_of(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn gateway_rsync_playbook_validates() {
    // A copy of the example inventory, so the CA that validate makes in inventory/.apim-state stays
    // in the temp dir.
    let inv = "inventory/lab-gateway-rsync.yaml";
    let p = common::wso2::project(inv, |s| s);
    let f = &p.path().join("inventory/files");
    std::fs::create_dir_all(f.join("dbscripts/apimgt")).unwrap();
    for name in [
        "dbscripts/mysql.sql",
        "dbscripts/apimgt/mysql.sql",
        "wso2am-4.2.0.zip",
        "driver.jar",
    ] {
        std::fs::write(f.join(name), "").unwrap();
    }
    for scheduler in ["timer", "cron"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_apim-provision"))
            .current_dir(p.path())
            .env("APIM_AGE_IDENTITY", p.identity())
            .args(["validate", "inventory/lab-gateway-rsync.yaml", "--no-color"])
            .args([
                "-e",
                &format!("wso2_dbscripts_dir={}", f.join("dbscripts").display()),
            ])
            .args([
                "-e",
                &format!("wso2_pack_zip={}", f.join("wso2am-4.2.0.zip").display()),
            ])
            .args([
                "-e",
                &format!("jdbc_driver_jar={}", f.join("driver.jar").display()),
            ])
            .args(["-e", &format!("sync_scheduler={scheduler}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{scheduler}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn manager_pushes_to_restricted_pinned_workers_with_timer_or_cron() {
    let Some((_lab, _)) = lab::acquire() else {
        return;
    };
    let t0 = Instant::now();
    // Fresh hosts: no sync state, user, schedule or deployment dir from an earlier run.
    for h in ["h2", "h3", "h4"] {
        lab::ssh(
            h,
            &format!(
                "systemctl disable --now wso2-sync.timer 2>/dev/null; \
                 rm -rf /var/lib/wso2-sync /etc/systemd/system/wso2-sync.service \
                 /etc/systemd/system/wso2-sync.timer /etc/cron.d/wso2-sync /usr/local/bin/wso2-sync {DIR}; \
                 userdel wso2sync 2>/dev/null; systemctl daemon-reload; true"
            ),
        );
    }
    let p = project();

    // 1. Converges; a second apply changes nothing (the key is not regenerated).
    let (t_first, t_again) = converge(&p, &[]);
    let pubkey = std::fs::read_to_string(lab::on_disk("h2", &format!("{KEY}.pub"))).unwrap();
    assert!(pubkey.starts_with("ssh-ed25519 ") && pubkey.trim_end().ends_with(" wso2-sync"));

    // 2. An artifact written on the manager reaches both workers, and its removal does too.
    let rel = "synapse-configs/default/api/test_v1.xml";
    let body = format!("<api name=\"test\" context=\"/test/v1\" stamp=\"{t0:?}\"/>\n");
    let (rc, _) = lab::ssh(
        "h2",
        &format!(
            "mkdir -p {DIR}/synapse-configs/default/api && printf '%s' '{body}' > {DIR}/{rel} && chown -R wso2:wso2 {DIR}"
        ),
    );
    assert_eq!(rc, 0);
    sync_until("the new artifact", |h| {
        std::fs::read_to_string(lab::on_disk(h, &format!("{DIR}/{rel}"))).ok() == Some(body.clone())
    });
    lab::ssh("h2", &format!("rm {DIR}/{rel}"));
    sync_until("the deletion", |h| {
        !lab::on_disk(h, &format!("{DIR}/{rel}")).exists()
    });

    // 3. The key opens nothing but a write-only rsync into the directory.
    lab::ssh("h2", "echo evil > /tmp/evil && chmod 644 /tmp/evil");
    for (h, addr) in WORKERS {
        let (rc, out) = lab::ssh(
            "h2",
            &format!("{} 'cat /etc/shadow; id' 2>&1", ssh_as_sync(addr)),
        );
        assert_ne!(rc, 0, "{h}: a shell command ran: {out}");
        assert!(
            !out.contains("root:") && !out.contains("uid="),
            "{h}: {out}"
        );
        // Refused by the forced command (so the key and the pinned host key were accepted).
        assert!(out.contains("rrsync error"), "{h}: {out}");
        let (rc, out) = lab::ssh(
            "h2",
            &format!(
                "{} 'rsync --server --sender -logDtpre.iLsfxC . /etc/shadow' 2>&1 </dev/null",
                ssh_as_sync(addr)
            ),
        );
        assert!(
            !out.contains("root:"),
            "{h}: read /etc/shadow (rc {rc}): {out}"
        );
        let rsync = |dest: &str| {
            lab::ssh(
                "h2",
                &format!(
                    "runuser -u wso2 -- rsync -e \"ssh -i {KEY} -o UserKnownHostsFile={KNOWN_HOSTS} \
                     -o StrictHostKeyChecking=yes -o BatchMode=yes\" /tmp/evil wso2sync@{addr}:{dest} 2>&1"
                ),
            )
        };
        let up = rsync("../evil_up");
        let abs = rsync("/tmp/evil_abs");
        for outside in [
            "/opt/wso2am/repository/deployment/evil_up",
            "/tmp/evil_abs",
            "/var/lib/wso2-sync/evil_up",
        ] {
            // /tmp is the host's own tmpfs: look from inside.
            let (rc, _) = lab::ssh(h, &format!("test -e {outside}"));
            assert_ne!(rc, 0, "{h}: {outside} was written ({up:?} {abs:?})");
        }
        lab::ssh(
            h,
            &format!("rm -f {DIR}/evil_up {DIR}/tmp/evil_abs; rmdir {DIR}/tmp 2>/dev/null; true"),
        );
    }

    // 4. The manager's known_hosts pins exactly the workers' ed25519 host keys, by address.
    let kh = std::fs::read_to_string(lab::on_disk("h2", KNOWN_HOSTS)).unwrap();
    let pinned: BTreeSet<String> = kh.lines().map(str::to_string).collect();
    let expected: BTreeSet<String> = WORKERS
        .iter()
        .map(|(h, addr)| {
            let k = std::fs::read_to_string(lab::on_disk(h, "/etc/ssh/ssh_host_ed25519_key.pub"))
                .unwrap();
            format!("{addr} {}", key_of(&k))
        })
        .collect();
    let pinned_keys: BTreeSet<String> = pinned
        .iter()
        .map(|l| {
            let (addr, key) = l.split_once(' ').unwrap();
            format!("{addr} {}", key_of(key))
        })
        .collect();
    assert_eq!(pinned_keys, expected, "{kh}");
    assert!(!kh.contains("StrictHostKeyChecking=no"));
    let script = std::fs::read_to_string(lab::on_disk("h2", "/usr/local/bin/wso2-sync")).unwrap();
    assert!(
        script.contains("StrictHostKeyChecking=yes") && script.contains("flock -n"),
        "{script}"
    );

    // 5. The default scheduler: a systemd timer, enabled and running.
    assert_eq!(
        lab::ssh("h2", "systemctl is-enabled wso2-sync.timer")
            .1
            .trim(),
        "enabled"
    );
    assert_eq!(
        lab::ssh("h2", "systemctl is-active wso2-sync.timer")
            .1
            .trim(),
        "active"
    );

    // The cron scheduler instead: cron installed and running, the entry in /etc/cron.d; converges too.
    lab::ssh(
        "h2",
        "systemctl disable --now wso2-sync.timer; rm -f /etc/systemd/system/wso2-sync.*; systemctl daemon-reload",
    );
    let (t_cron, _) = converge(&p, &["-e", "sync_scheduler=cron"]);
    let cron = std::fs::read_to_string(lab::on_disk("h2", "/etc/cron.d/wso2-sync")).unwrap();
    assert!(
        cron.contains("* * * * * wso2 /usr/local/bin/wso2-sync"),
        "{cron}"
    );
    assert_eq!(
        lab::ssh("h2", "systemctl is-active cron").1.trim(),
        "active"
    );
    // Put the default back for whoever uses the lab next.
    lab::ssh("h2", "rm -f /etc/cron.d/wso2-sync");
    converge(&p, &[]);
    eprintln!(
        "timings: first apply {t_first:?}, no-op apply {t_again:?}, cron apply {t_cron:?}, total {:?}",
        t0.elapsed()
    );
}
