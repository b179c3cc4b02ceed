//! `drift --install-timer` / `--remove-timer` on a machine where systemd is not PID 1 (this one, in a
//! container): refused with the equivalent cron line, and nothing written, neither unit files nor
//! reports; bad flags are refused before anything else. The systemd side is `drift_timer_lab.rs`.

mod common;
use common::{Project, Run};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const UNIT_DIR: &str = "/etc/systemd/system";

/// True (after saying so) where systemd runs: there an install would really install, so these tests
/// of the refusal do not apply.
fn systemd_runs() -> bool {
    let yes = Path::new("/run/systemd/system").is_dir();
    if yes {
        eprintln!("SKIPPED: systemd runs here; the refusal is for machines without it");
    }
    yes
}

fn project() -> Project {
    let p = Project::new();
    p.local_inventory(&["a"], "");
    p.write(
        "playbooks/main.yaml",
        "plays:\n  - hosts: all\n    tasks:\n      - copy: { dest: \"{{ root }}/x\", content: \"x\\n\" }\n",
    );
    p
}

/// The project directory as the binary sees it (its cwd is physical).
fn real(p: &Project) -> PathBuf {
    std::fs::canonicalize(p.path()).unwrap()
}

/// The unit name the install would use for `inventory`.
fn unit_name(inventory: &Path) -> String {
    let hash = Sha256::digest(inventory.as_os_str().as_encoded_bytes());
    let hex: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    let stem = inventory.file_stem().unwrap().to_string_lossy();
    format!("apim-provision-drift-{stem}-{hex}")
}

/// Names in the unit directory and in the project: what an install might write.
fn written(p: &Project) -> (BTreeSet<String>, BTreeSet<String>) {
    let names = |d: &Path| -> BTreeSet<String> {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    (names(Path::new(UNIT_DIR)), names(p.path()))
}

fn drift(p: &Project, args: &[&str]) -> Run {
    let mut v = vec!["drift"];
    v.extend_from_slice(args);
    p.run(&v)
}

/// Checks `r` was refused (exit 1) with every one of `needles` in what it printed on stderr.
fn refused(r: &Run, needles: &[&str]) {
    assert_eq!(r.code, 1, "{}", r.all());
    for needle in needles {
        assert!(r.stderr.contains(needle), "no {needle:?} in:\n{}", r.stderr);
    }
}

#[test]
fn without_systemd_an_install_is_refused_naming_the_cron_line_and_writes_nothing() {
    if systemd_runs() {
        return;
    }
    let p = project();
    let before = written(&p);
    let r = drift(
        &p,
        &[
            "--install-timer",
            "inventory.yaml",
            "--every",
            "15m",
            "--prometheus",
            "drift.prom",
            "--junit",
            "drift.xml",
            "--persist",
            "2m",
        ],
    );
    let dir = real(&p);
    let inv = dir.join("inventory.yaml");
    let name = unit_name(&inv);
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_apim-provision")).unwrap();
    let cron = format!(
        "*/15 * * * * root {} drift {} --no-color --persist 120s --junit {} --prometheus {}",
        exe.display(),
        inv.display(),
        dir.join("drift.xml").display(),
        dir.join("drift.prom").display()
    );
    refused(
        &r,
        &[
            "systemd is not running on this machine",
            "nothing was written",
            &format!("/etc/cron.d/{name}"),
        ],
    );
    assert!(
        r.stderr.lines().any(|l| l == cron),
        "no line\n{cron}\nin:\n{}",
        r.stderr
    );
    assert!(!Path::new(UNIT_DIR).join(format!("{name}.service")).exists());
    assert!(!Path::new(UNIT_DIR).join(format!("{name}.timer")).exists());
    assert_eq!(written(&p), before, "the refused install wrote something");
    assert!(p.untouched(), "a host was touched");

    // --json is for the scheduled runs: the install itself still reports as text.
    let j = drift(
        &p,
        &[
            "inventory.yaml",
            "--install-timer",
            "--every",
            "1h",
            "--json",
        ],
    );
    assert_eq!(j.code, 1, "{}", j.all());
    assert!(j.stdout.is_empty(), "{}", j.stdout);
    assert!(
        j.stderr
            .lines()
            .any(|l| l.starts_with("0 * * * * root ") && l.ends_with(" --no-color --json")),
        "{}",
        j.stderr
    );
}

#[test]
fn an_interval_cron_cannot_say_asks_for_a_schedule() {
    if systemd_runs() {
        return;
    }
    let p = project();
    let r = drift(&p, &["inventory.yaml", "--install-timer", "--every", "45m"]);
    refused(
        &r,
        &["cron cannot run every 45m exactly", "\nSCHEDULE root "],
    );
}

#[test]
fn without_systemd_a_remove_is_refused_and_names_the_cron_file() {
    if systemd_runs() {
        return;
    }
    let p = project();
    let before = written(&p);
    let r = drift(&p, &["--remove-timer", "inventory.yaml"]);
    let name = unit_name(&real(&p).join("inventory.yaml"));
    refused(
        &r,
        &[
            "systemd is not running on this machine",
            &format!("/etc/cron.d/{name}"),
        ],
    );
    assert_eq!(written(&p), before);
}

/// What would make a unit that cannot work is refused before the systemd check, so everywhere.
#[test]
fn a_broken_inventory_an_inline_variable_or_a_missing_report_dir_is_refused_first() {
    let p = project();
    let before = written(&p);
    let install = |extra: &[&str]| {
        let mut v = vec!["inventory.yaml", "--install-timer", "--every", "15m"];
        v.extend_from_slice(extra);
        drift(&p, &v)
    };
    let r = install(&["-e", "db_password=Sup3r-secret"]);
    refused(&r, &["-e db_password=…", "-e @FILE"]);
    assert!(!r.all().contains("Sup3r-secret"), "{}", r.all());

    let r = install(&["--prometheus", "no/such/dir/drift.prom"]);
    refused(&r, &["does not exist, so every scheduled run would fail"]);

    p.write(
        "playbooks/main.yaml",
        "plays:\n  - hosts: all\n    tasks:\n      - nosuchmodule: {}\n",
    );
    let r = install(&[]);
    refused(
        &r,
        &["the inventory does not load, so no timer was installed"],
    );
    assert!(!r.stderr.contains("cron"), "{}", r.stderr);
    assert_eq!(written(&p), before);
}

#[test]
fn bad_intervals_and_flag_combinations_are_usage_errors() {
    let p = project();
    let before = written(&p);
    for bad in ["0", "0m", "15", "1h30m", "15 m", "abc", "-5m", "400d"] {
        let every = format!("--every={bad}");
        let r = drift(&p, &["inventory.yaml", "--install-timer", &every]);
        assert_eq!(r.code, 2, "{bad}: {}", r.all());
        assert!(
            r.stderr.contains("--every <INTERVAL>"),
            "{bad}: {}",
            r.stderr
        );
    }
    let r = drift(&p, &["inventory.yaml", "--install-timer", "--every", "abc"]);
    assert!(r.stderr.contains("30s, 15m, 1h, 1d"), "{}", r.stderr);
    for args in [
        &["inventory.yaml", "--install-timer"][..],
        &["inventory.yaml", "--every", "15m"],
        &[
            "inventory.yaml",
            "--install-timer",
            "--every",
            "15m",
            "--fix",
        ],
        &["inventory.yaml", "--remove-timer", "--prometheus", "x.prom"],
        &["inventory.yaml", "--remove-timer", "--limit", "a"],
        &[
            "inventory.yaml",
            "--remove-timer",
            "--install-timer",
            "--every",
            "1m",
        ],
    ] {
        let r = drift(&p, args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.all());
        assert!(r.stderr.starts_with("error: "), "{args:?}: {}", r.stderr);
    }
    assert_eq!(written(&p), before);
}
