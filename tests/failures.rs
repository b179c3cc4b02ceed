//! A failed task skips what depends on it, on its own host and on others, while independent work finishes.

mod common;
use common::Project;

#[test]
fn failure_skips_dependents_across_hosts_and_independent_hosts_finish() {
    let p = Project::new();
    p.local_inventory(&["a", "b", "c"], "");
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - name: prepare
    hosts: all
    tasks:
      - name: dir
        file: { path: "{{ root }}", state: directory }
  - name: manager
    hosts: a
    tasks:
      - name: start manager
        shell: { cmd: "echo cannot start >&2; exit 3" }
      - name: after manager on a
        copy: { dest: "{{ root }}/after", content: "x" }
  - name: worker
    hosts: b
    tasks:
      - name: start worker
        depends_on: [{ task: start manager, hosts: a }]
        copy: { dest: "{{ root }}/worker", content: "x" }
      - name: after worker
        copy: { dest: "{{ root }}/after", content: "x" }
  - name: independent
    hosts: c
    tasks:
      - name: standalone
        copy: { dest: "{{ root }}/standalone", content: "x" }
"#,
    );
    let r = p.run(&["apply", "inventory.yaml", "--json"]);
    assert_eq!(r.code, 1, "{}", r.all());
    let failed = r.event("a", "start manager");
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["message"].as_str().unwrap().contains("cannot start"),
        "{failed}"
    );
    assert_eq!(
        r.event("a", "after manager on a")["status"],
        "skipped_dependency"
    );
    let w = r.event("b", "start worker");
    assert_eq!(w["status"], "skipped_dependency");
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .contains("`start manager` on a"),
        "{w}"
    );
    assert_eq!(r.event("b", "after worker")["status"], "skipped_dependency");
    assert_eq!(r.event("c", "standalone")["status"], "changed");
    assert!(p.root("c").join("standalone").exists());
    assert!(!p.root("b").join("worker").exists());
    assert!(!p.root("a").join("after").exists());
    let summary = r.json().pop().unwrap();
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["skipped"], 3);
    assert_eq!(summary["hosts"]["c"]["changed"], 2);

    let human = p.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(human.code, 1);
    assert!(
        human.stdout.contains("failed: start manager on a (")
            && human.stdout.contains("main.yaml:11"),
        "{}",
        human.stdout
    );
}

#[test]
fn workers_start_only_after_the_manager_on_every_manager() {
    let p = Project::new();
    p.local_inventory(
        &["m1", "m2", "w1"],
        "groups:\n  managers:\n    hosts: [m1, m2]\n",
    );
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - name: managers
    hosts: managers
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: start manager
        shell: { cmd: "sleep 0.3; date +%s%N > {{ root }}/started", creates: "{{ root }}/started" }
  - name: workers
    hosts: w1
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: start worker
        depends_on: [{ task: start manager }]
        shell: { cmd: "date +%s%N > {{ root }}/started", creates: "{{ root }}/started" }
"#,
    );
    let r = p.run(&["apply", "inventory.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let t = |h: &str| -> u128 {
        std::fs::read_to_string(p.root(h).join("started"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert!(
        t("w1") > t("m1") && t("w1") > t("m2"),
        "worker started before a manager"
    );
}
