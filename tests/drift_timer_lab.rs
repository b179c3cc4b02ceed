//! `drift --install-timer` on a real systemd: lab host h1 is the controller (this binary, the lab's
//! client key, an `~/.ssh/config` and the lab's known_hosts), h2 and h3 the managed hosts. The timer's
//! first run writes the textfile soon after the install, drift found is no unit failure, a second
//! install changes nothing, and a remove leaves no unit behind.

mod common;
use common::lab;
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// The project on h1.
const DIR: &str = "/root/apim-timer-test";
const INVENTORY: &str = "/root/apim-timer-test/inventory.yaml";
const BIN: &str = "/usr/local/bin/apim-provision";
const PROM: &str = "/var/lib/apim/drift.prom";
const KEY: &str = "/root/.ssh/apim-timer-test_ed25519";
const KNOWN_HOSTS: &str = "/root/.ssh/apim-timer-test_known_hosts";
const SSH_CONFIG: &str = "/root/.ssh/config";
/// First line of the ssh config this test writes: only a file that starts so is removed.
const MARK: &str = "# written by tests/drift_timer_lab.rs";
/// What the playbook manages on h2 and h3.
const MANAGED: &str = "/opt/apim-timer-test";

const PLAYBOOK: &str = r#"
plays:
  - hosts: all
    tasks:
      - name: test dir
        file: { path: /opt/apim-timer-test, state: directory, mode: "0755" }
      - name: stamp
        copy: { dest: /opt/apim-timer-test/stamp, content: "drift timer test on {{ inventory_hostname }}\n", mode: "0644" }
"#;

/// The units' name: the inventory's stem and 8 hex digits of the sha256 of its absolute path.
fn unit() -> String {
    let hash = Sha256::digest(INVENTORY.as_bytes());
    let hex: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("apim-provision-drift-inventory-{hex}")
}

/// Runs `cmd` on `host` and returns its exit code and output (stdout and stderr).
fn sh(host: &str, cmd: &str) -> (i32, String) {
    lab::ssh(host, &format!("{{ {cmd} ; }} 2>&1"))
}

/// Runs `cmd` on `host`, which must succeed; returns its output.
fn ok(host: &str, cmd: &str) -> String {
    let (code, out) = sh(host, cmd);
    assert_eq!(code, 0, "on {host}: {cmd}\n{out}");
    out
}

/// `systemctl show -p PROP --value UNIT` on h1.
fn show(unit: &str, prop: &str) -> String {
    ok("h1", &format!("systemctl show -p {prop} --value {unit}"))
        .trim()
        .to_string()
}

/// Removes what this test makes on h1, h2 and h3 (also what a failed earlier run left).
fn clean_up() {
    let u = unit();
    lab::ssh(
        "h1",
        &format!(
            "systemctl disable --now {u}.timer; systemctl stop {u}.service; \
             rm -f /etc/systemd/system/{u}.timer /etc/systemd/system/{u}.service; \
             systemctl daemon-reload; systemctl reset-failed {u}.service {u}.timer; \
             rm -rf {DIR} /var/lib/apim {BIN} {KEY} {KNOWN_HOSTS}; \
             head -1 {SSH_CONFIG} 2>/dev/null | grep -qxF '{MARK}' && rm -f {SSH_CONFIG}; true"
        ),
    );
    for h in ["h2", "h3"] {
        lab::ssh(h, &format!("rm -rf {MANAGED}"));
    }
}

/// Cleans up when the test ends, passed or not.
struct CleanUp;

impl Drop for CleanUp {
    fn drop(&mut self) {
        clean_up();
    }
}

fn put(host: &str, path: &str, bytes: &[u8], mode: u32) {
    let p = lab::on_disk(host, path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// h1 as a controller: the binary, and ssh to h2 and h3 through `~/.ssh/config` only (the inventory
/// names no key, config or known_hosts), with the lab's key and the lab's known_hosts.
fn make_controller() {
    let ssh_config = lab::on_disk("h1", SSH_CONFIG);
    if let Ok(text) = std::fs::read_to_string(&ssh_config) {
        assert!(
            text.starts_with(MARK),
            "h1 has an ssh config of its own, which this test will not overwrite:\n{text}"
        );
    }
    let bin = lab::on_disk("h1", BIN);
    std::fs::copy(env!("CARGO_BIN_EXE_apim-provision"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    put(
        "h1",
        KEY,
        &std::fs::read(lab::dir().join("id_ed25519")).unwrap(),
        0o600,
    );
    put(
        "h1",
        KNOWN_HOSTS,
        &std::fs::read(lab::dir().join("known_hosts")).unwrap(),
        0o644,
    );
    let config = format!(
        "{MARK}\n\
         Host h2 h3\n  User root\n  IdentityFile {KEY}\n  IdentitiesOnly yes\n  \
         UserKnownHostsFile {KNOWN_HOSTS}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n\
         Host h2\n  HostName 10.231.0.12\n\
         Host h3\n  HostName 10.231.0.13\n"
    );
    put("h1", SSH_CONFIG, config.as_bytes(), 0o600);
    for h in ["h2", "h3"] {
        ok("h1", &format!("ssh -o BatchMode=yes {h} true"));
    }
    put(
        "h1",
        INVENTORY,
        b"playbook: main.yaml\nhosts:\n  h2: {}\n  h3: {}\n",
        0o644,
    );
    put(
        "h1",
        &format!("{DIR}/main.yaml"),
        PLAYBOOK.as_bytes(),
        0o644,
    );
    ok("h1", "mkdir -p /var/lib/apim");
}

/// The drift command on h1, in the project directory, which must succeed: its output.
fn drift(args: &str) -> String {
    ok("h1", &format!("cd {DIR} && {BIN} drift {args}"))
}

/// Installs the timer of the project's inventory at interval `every`, writing the textfile `PROM`: every
/// install here differs only in that.
fn install(every: &str) -> String {
    drift(&format!(
        "--install-timer inventory.yaml --every {every} --prometheus {PROM}"
    ))
}

/// Waits until the service has finished a run after `since` (its ExecMainExitTimestampMonotonic).
fn wait_for_run(unit: &str, since: &str, within: Duration) {
    let service = format!("{unit}.service");
    let deadline = Instant::now() + within;
    loop {
        let exited = show(&service, "ExecMainExitTimestampMonotonic");
        let state = show(&service, "ActiveState");
        if exited != since && exited != "0" && (state == "inactive" || state == "failed") {
            return;
        }
        if Instant::now() > deadline {
            let timers = sh("h1", "systemctl list-timers --all --no-pager").1;
            panic!(
                "{service} did not run within {within:?} (state {state})\n{timers}\n{}",
                journal(&service)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The last lines the service logged, for failure messages.
fn journal(service: &str) -> String {
    sh("h1", &format!("journalctl -u {service} --no-pager -n 60")).1
}

fn prom() -> String {
    std::fs::read_to_string(lab::on_disk("h1", PROM)).unwrap_or_default()
}

#[test]
fn a_drift_timer_on_a_controller_runs_soon_reports_drift_as_success_and_installs_and_removes_idempotently(
) {
    let Some((_lab, _inv)) = lab::acquire() else {
        return;
    };
    clean_up();
    let _clean = CleanUp;
    make_controller();
    let u = unit();
    let (service, timer) = (format!("{u}.service"), format!("{u}.timer"));

    ok(
        "h1",
        &format!("cd {DIR} && {BIN} apply inventory.yaml --no-color"),
    );

    let out = install("15m");
    assert!(
        out.contains(&format!(
            "installed {timer}: first run in 10s, then every 15m"
        )),
        "{out}"
    );
    let unit_file = |suffix: &str| lab::on_disk("h1", &format!("/etc/systemd/system/{u}.{suffix}"));
    let text = std::fs::read_to_string(unit_file("service")).unwrap();
    for line in [
        format!("ExecStart={BIN} drift {INVENTORY} --no-color --prometheus {PROM}"),
        format!("WorkingDirectory={DIR}"),
        "Environment=HOME=/root".into(),
        "Type=oneshot".into(),
        "SuccessExitStatus=2".into(),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
    }
    for suffix in ["service", "timer"] {
        let mode = std::fs::metadata(unit_file(suffix))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o644, "{suffix}");
    }
    assert!(
        ok("h1", "systemctl list-timers --all --no-pager").contains(&timer),
        "the timer is not listed"
    );
    assert_eq!(
        ok("h1", &format!("systemctl is-enabled {timer}")).trim(),
        "enabled"
    );
    assert_eq!(
        ok("h1", &format!("systemctl is-active {timer}")).trim(),
        "active"
    );

    // The first run comes 10 s after the install: no drift, both hosts reached, through ~/.ssh/config.
    wait_for_run(&u, "0", Duration::from_secs(60));
    assert_eq!(
        (show(&service, "ExecMainStatus"), show(&service, "Result")),
        ("0".into(), "success".into()),
        "{}",
        journal(&service)
    );
    let text = prom();
    for line in [
        "apim_provision_drift_resources{host=\"h2\"} 0",
        "apim_provision_drift_resources{host=\"h3\"} 0",
        "apim_provision_drift_host_unreachable{host=\"h2\"} 0",
        "apim_provision_drift_host_unreachable{host=\"h3\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
    }
    // The run found the apply's records: it ran on the inventory the apply used.
    assert!(
        text.contains("apim_provision_last_apply_timestamp_seconds{host=\"h2\"}"),
        "{text}"
    );

    // Drift found (exit 2) is a finding in the textfile, not a failed unit.
    std::fs::write(
        lab::on_disk("h2", &format!("{MANAGED}/stamp")),
        "moved by hand\n",
    )
    .unwrap();
    let before = show(&service, "ExecMainExitTimestampMonotonic");
    ok("h1", &format!("systemctl start {service}"));
    wait_for_run(&u, &before, Duration::from_secs(60));
    assert_eq!(
        (show(&service, "ExecMainStatus"), show(&service, "Result")),
        ("2".into(), "success".into()),
        "{}",
        journal(&service)
    );
    assert_ne!(
        sh("h1", &format!("systemctl is-failed --quiet {service}")).0,
        0
    );
    let text = prom();
    assert!(
        text.lines()
            .any(|l| l == "apim_provision_drift_resources{host=\"h2\"} 1"),
        "{text}"
    );

    // The same install again changes nothing, not even the files' times.
    let stat = |suffix: &str| {
        ok(
            "h1",
            &format!("stat -c '%i %Y' /etc/systemd/system/{u}.{suffix}"),
        )
    };
    let stats = (stat("service"), stat("timer"));
    let out = install("15m");
    assert!(
        out.contains(&format!("unchanged {timer}")) && !out.contains("wrote "),
        "{out}"
    );
    assert_eq!((stat("service"), stat("timer")), stats);

    // Another interval rewrites the timer and restarts it.
    let out = install("30m");
    assert!(
        out.contains(&format!(
            "updated {timer}: first run in 10s, then every 30m"
        )),
        "{out}"
    );
    assert!(std::fs::read_to_string(unit_file("timer"))
        .unwrap()
        .contains("\nOnUnitActiveSec=30min\n"));

    let out = drift("--remove-timer inventory.yaml");
    assert!(
        out.contains(&format!("stopped and disabled {timer}")),
        "{out}"
    );
    assert!(!unit_file("service").exists() && !unit_file("timer").exists());
    assert!(
        !ok("h1", "systemctl list-timers --all --no-pager").contains(&timer),
        "the timer is still listed"
    );
    assert_eq!(show(&timer, "LoadState"), "not-found");
    // The enable link itself, not what it points to (on_disk would follow it).
    let wants = lab::on_disk("h1", "/etc/systemd/system/timers.target.wants").join(&timer);
    assert!(
        std::fs::symlink_metadata(&wants).is_err(),
        "{} is left",
        wants.display()
    );

    let out = drift("--remove-timer inventory.yaml");
    assert!(out.contains("no drift timer installed"), "{out}");
}
