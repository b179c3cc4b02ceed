//! Output a person reads: `-q` shows only failures and the totals.

mod common;
use common::Project;

#[test]
fn quiet_plan_prints_only_failures_and_the_summary() {
    let p = Project::new();
    p.local_inventory(&["a", "b"], "");
    p.write(
        "playbooks/main.yaml",
        r#"plays:
  - hosts: all
    tasks:
      - name: root
        file: { path: "{{ root }}", state: directory }
      - name: conf file
        copy: { dest: "{{ root }}/conf", content: "secret-free line\n" }
      - name: broken
        when: inventory_hostname == 'b'
        lineinfile: { path: "{{ root }}/missing/file", line: "x" }
"#,
    );
    let normal = p.run(&["plan", "inventory.yaml", "--no-color"]);
    assert!(
        normal.stdout.contains("+secret-free line"),
        "{}",
        normal.stdout
    );
    let r = p.run(&["plan", "inventory.yaml", "--no-color", "-q"]);
    assert!(
        !r.stdout.contains("conf file"),
        "a change shown with -q:\n{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("secret-free line"),
        "a diff shown with -q:\n{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("\na\n") && !r.stdout.starts_with("a\n"),
        "{}",
        r.stdout
    );
    assert!(normal.stdout.contains("! broken"), "{}", normal.stdout);
    assert!(r.stdout.contains("Plan: 4 to add"), "{}", r.stdout);
    assert!(
        r.stdout.starts_with("b\n"),
        "the failing host's name first:\n{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("! broken") && r.stdout.contains("would fail"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_closed_stdout_never_panics_and_never_stops_an_apply() {
    let p = Project::new();
    p.local_inventory(&["a"], "");
    p.write(
        "playbooks/main.yaml",
        "plays:\n  - hosts: all\n    tasks:\n      - name: root\n        file: { path: \"{{ root }}\", state: directory }\n      - name: conf\n        copy: { dest: \"{{ root }}/conf\", content: \"x\\n\" }\n",
    );
    for cmd in ["plan", "apply"] {
        let out = p.run_stdout_closed(&[cmd, "inventory.yaml"]);
        let err = &out.stderr;
        assert_eq!(out.code, 1, "{cmd}: {err}");
        assert!(!err.contains("panicked"), "{cmd}: {err}");
        assert!(err.contains("writing to standard output"), "{cmd}: {err}");
    }
    assert_eq!(
        std::fs::read_to_string(p.root("a").join("conf")).unwrap(),
        "x\n",
        "the apply did not finish"
    );
}
