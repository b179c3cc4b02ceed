//! The counts a person and a CI job read agree: the plan line, the apply recap and the JSON summary are the
//! same numbers, and each matches the task events, for a playbook with false conditions, unnotified
//! handlers and tasks skipped because a dependency failed.

mod common;
use common::{Project, Run};
use serde_json::Value;

const PLAYBOOK: &str = r#"
plays:
  - name: main
    hosts: all
    tasks:
      - name: dir
        file: { path: "{{ root }}", state: directory }
        notify: reloaded
      - name: only on b
        when: "{{ inventory_hostname == 'b' }}"
        copy: { dest: "{{ root }}/b-only", content: "x" }
      - name: break on b
        when: "{{ inventory_hostname == 'b' }}"
        shell: { cmd: "echo broken >&2; exit 3" }
      - name: after the break
        copy: { dest: "{{ root }}/after", content: "x" }
    handlers:
      - name: reloaded
        shell: { cmd: "echo reloaded >> {{ root }}/reloads" }
      - name: never
        shell: { cmd: "echo never >> {{ root }}/never" }
"#;

fn project() -> Project {
    let p = Project::new();
    p.local_inventory(&["a", "b"], "");
    p.write("playbooks/main.yaml", PLAYBOOK);
    p
}

/// How many task events of `run` have one of `statuses`, on `host` when given.
fn count(run: &Run, host: Option<&str>, statuses: &[&str]) -> u64 {
    run.json()
        .iter()
        .filter(|e| e["type"] == "task")
        .filter(|e| host.is_none_or(|h| e["host"] == h))
        .filter(|e| statuses.iter().any(|s| e["status"] == *s))
        .count() as u64
}

/// The JSON summary's totals and per-host tallies, checked against the events they count.
fn summary_matches_events(run: &Run, changed: &[&str], failed: &str) -> Value {
    let s = run.summary();
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("no {k} in {s}"));
    let events = run.json().iter().filter(|e| e["type"] == "task").count() as u64;
    assert_eq!(n("total"), events, "{s}");
    assert_eq!(n("unchanged"), count(run, None, &["unchanged"]), "{s}");
    assert_eq!(n("add") + n("change"), count(run, None, changed), "{s}");
    assert_eq!(n("failed"), count(run, None, &[failed]), "{s}");
    assert_eq!(
        n("skipped_condition"),
        count(run, None, &["skipped"]),
        "{s}"
    );
    assert_eq!(
        n("not_notified"),
        count(run, None, &["not_notified"]),
        "{s}"
    );
    assert_eq!(
        n("skipped_dependency"),
        count(run, None, &["skipped_dependency"]),
        "{s}"
    );
    assert_eq!(
        n("skipped"),
        n("skipped_condition")
            + n("not_notified")
            + n("skipped_dependency")
            + n("skipped_earlier_batch")
    );
    assert_eq!(
        n("total"),
        n("add") + n("change") + n("unchanged") + n("failed") + n("skipped")
    );
    for h in ["a", "b"] {
        let t = &s["hosts"][h];
        let skips = [
            "skipped",
            "not_notified",
            "skipped_dependency",
            "skipped_earlier_batch",
        ];
        assert_eq!(t["ok"], count(run, Some(h), &["unchanged"]), "{h}: {s}");
        assert_eq!(t["changed"], count(run, Some(h), changed), "{h}: {s}");
        assert_eq!(t["failed"], count(run, Some(h), &[failed]), "{h}: {s}");
        assert_eq!(t["skipped"], count(run, Some(h), &skips), "{h}: {s}");
    }
    s
}

#[test]
fn plan_line_recap_and_json_summary_agree_with_the_events() {
    let p = project();
    let plan = p.run(&["plan", "inventory.yaml", "--json"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    let s = summary_matches_events(
        &plan,
        &["create", "update", "delete", "run", "known_after_apply"],
        "would_fail",
    );
    // 2 hosts x (4 tasks + 2 handlers); a's two `when`s are false, `never` is notified nowhere.
    assert_eq!(s["total"], 12, "{s}");
    assert_eq!(s["skipped_condition"], 2, "{s}");
    assert_eq!(s["not_notified"], 2, "{s}");
    let human = p.run(&["plan", "inventory.yaml", "--no-color"]);
    let line = format!(
        "Plan: {} to add, {} to change, {} unchanged, {} skipped ({} tasks).",
        s["add"], s["change"], s["unchanged"], s["skipped"], s["total"]
    );
    assert!(
        human.stdout.contains(&line),
        "{line} not in:\n{}",
        human.stdout
    );
    assert!(p.untouched());

    let apply = p.run(&["apply", "inventory.yaml", "--json"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    let s = summary_matches_events(&apply, &["changed"], "failed");
    assert_eq!(s["total"], 12, "{s}");
    assert_eq!(s["failed"], 1, "{s}");
    assert!(s["skipped_dependency"].as_u64().unwrap() >= 1, "{s}");

    let fresh = project();
    let human = fresh.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(human.code, 1, "{}", human.all());
    for h in ["a", "b"] {
        let t = |k: &str| s["hosts"][h][k].as_u64().unwrap();
        let recap = format!(
            "ok={:<4} changed={:<4} failed={:<4} skipped={}",
            t("ok"),
            t("changed"),
            t("failed"),
            t("skipped")
        );
        assert!(
            human
                .stdout
                .lines()
                .any(|l| l.trim_start().starts_with(h) && l.ends_with(&recap)),
            "{h}: {recap} not in:\n{}",
            human.stdout
        );
    }
    let line = format!(
        "Apply: {} changed, {} failed, {} skipped, {} unchanged ({} tasks) in ",
        s["add"].as_u64().unwrap() + s["change"].as_u64().unwrap(),
        s["failed"],
        s["skipped"],
        s["unchanged"],
        s["total"]
    );
    assert!(
        human.stdout.contains(&line),
        "{line} not in:\n{}",
        human.stdout
    );

    let again = p.run(&["plan", "inventory.yaml", "--json"]);
    assert_eq!(
        again.summary()["total"],
        12,
        "the task total is the same in every plan"
    );
}
