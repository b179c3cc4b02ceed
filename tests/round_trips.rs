//! What a run costs each host in round trips, as the JSON summary and `-v` report it: a no-op plan or
//! apply of a converged host is one round trip (the batch of every probe), and a first apply is that
//! batch plus the changes' steps, those of consecutive tasks decided from the batch in one wave, and a
//! probe of its own for a task an earlier change may have made the batch wrong for.

mod common;
use common::Project;
use std::process::Command;

const PLAYBOOK: &str = r#"
plays:
  - name: main
    hosts: all
    tasks:
      - name: dir
        file: { path: "{{ root }}", state: directory, mode: "0755" }
      - name: conf
        copy: { dest: "{{ root }}/app.conf", content: "host {{ inventory_hostname }}\n", mode: "0644" }
        notify: reload
      - name: pack
        unarchive: { src: pack.tar.gz, dest: "{{ root }}", creates: "{{ root }}/pack/marker" }
      - name: link
        file: { path: "{{ root }}/current", src: "{{ root }}/app.conf", state: link }
    handlers:
      - name: reload
        shell: { cmd: "echo reloaded >> {{ root }}/reloads" }
"#;

fn project() -> Project {
    let p = Project::new();
    p.local_inventory(&["a", "b"], "");
    p.write("playbooks/main.yaml", PLAYBOOK);
    p.write("pack/pack/marker", "m\n");
    std::fs::create_dir_all(p.path().join("playbooks/files")).unwrap();
    let tar = Command::new("tar")
        .arg("-C")
        .arg(p.path().join("pack"))
        .arg("-czf")
        .arg(p.path().join("playbooks/files/pack.tar.gz"))
        .arg("pack")
        .status()
        .unwrap();
    assert!(tar.success());
    p
}

/// `(round_trips, uploads, connections)` of `host` in the summary of a `--json` run.
fn cost(run: &common::Run, host: &str) -> (u64, u64, u64) {
    let s = run.summary();
    let t = &s["hosts"][host];
    let n = |k: &str| {
        t[k].as_u64()
            .unwrap_or_else(|| panic!("no {k} for {host} in {s}"))
    };
    (n("round_trips"), n("uploads"), n("connections"))
}

#[test]
fn a_no_op_run_costs_one_round_trip_per_host_and_a_first_apply_what_its_changes_take() {
    let p = project();
    let plan = p.run(&["plan", "inventory.yaml", "--json"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    for h in ["a", "b"] {
        assert_eq!(cost(&plan, h), (1, 0, 0), "{h}: a plan is one batch");
    }

    let first = p.run(&["apply", "inventory.yaml", "--json"]);
    assert_eq!(first.code, 0, "{}", first.all());
    for h in ["a", "b"] {
        // The batch (1); `dir` and `conf` in one wave (1: conf is decided from the batch as the new
        // directory leaves it); `pack` cannot be decided so (an unpack's result is the archive's), so it
        // is probed alone (1), then 4 scripts and an upload (its guard, mktemp, the upload, the unpack,
        // removing the upload); `link` is decided from the batch (the unpack touches only its own
        // directory) and its step is 1; the notified handler (a command: anything may have changed) is
        // probed alone (1) and runs (1).
        assert_eq!(
            cost(&first, h),
            (1 + 1 + 1 + (4 + 1) + 1 + 1 + 1, 1, 0),
            "{h}"
        );
    }

    let again = p.run(&["apply", "inventory.yaml", "--json"]);
    again.assert_no_changes();
    for h in ["a", "b"] {
        assert_eq!(
            cost(&again, h),
            (1, 0, 0),
            "{h}: a no-op apply is one batch"
        );
    }
    let plan = p.run(&["plan", "inventory.yaml", "--json"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    for h in ["a", "b"] {
        assert_eq!(cost(&plan, h), (1, 0, 0), "{h}");
    }

    // -v says it per host, after the recap or the plan; without -v nothing is said.
    for cmd in ["apply", "plan"] {
        let v = p.run(&[cmd, "inventory.yaml", "-v", "--no-color"]);
        assert_eq!(v.code, 0, "{}", v.all());
        for h in ["a", "b"] {
            let line = format!("  {h}: 1 round trip (0 connections)");
            assert!(
                v.stdout.lines().any(|l| l == line),
                "{cmd}: `{line}` not in:\n{}",
                v.stdout
            );
        }
        let quiet = p.run(&[cmd, "inventory.yaml", "--no-color"]);
        assert!(!quiet.stdout.contains("round trip"), "{}", quiet.stdout);
    }
}
