//! plan -> apply -> plan on local hosts: diffs, exit codes, convergence, dependencies, handlers, limits.

mod common;
use common::Project;

const PLAYBOOK: &str = r#"
name: main
plays:
  - name: base
    hosts: all
    tasks:
      - name: conf dir
        file: { path: "{{ root }}/conf", state: directory, mode: "0750" }
      - name: app.conf
        template: { src: app.conf.j2, dest: "{{ root }}/conf/app.conf", mode: "0640" }
        notify: reload app
      - name: banner
        copy: { dest: "{{ root }}/banner", content: "hello {{ inventory_hostname }}\n" }
      - name: init
        shell: { cmd: "date > {{ root }}/initialized", creates: "{{ root }}/initialized" }
    handlers:
      - name: reload app
        shell: { cmd: "echo reloaded >> {{ root }}/reloads" }
"#;

fn project() -> Project {
    let p = Project::new();
    p.local_inventory(&["a", "b"], "vars:\n  port: 8080\n");
    p.write("playbooks/main.yaml", PLAYBOOK);
    p.write(
        "playbooks/templates/app.conf.j2",
        "listen = {{ port }}\nname = {{ inventory_hostname }}\n",
    );
    p
}

#[test]
fn plan_shows_diffs_apply_converges_and_replan_is_clean() {
    let p = project();
    let plan = p.run(&["plan", "inventory.yaml", "--no-color"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("+ app.conf"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("+listen = 8080"),
        "diff missing:\n{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Plan: 6 to add, 4 to change, 0 unchanged, 0 skipped (10 tasks)."),
        "{}",
        plan.stdout
    );
    assert!(p.untouched(), "plan changed something");

    let apply = p.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let conf = std::fs::read_to_string(p.root("a").join("conf/app.conf")).unwrap();
    assert_eq!(conf, "listen = 8080\nname = a\n");
    assert_eq!(
        std::fs::read_to_string(p.root("b").join("reloads")).unwrap(),
        "reloaded\n"
    );

    let again = p.run(&["plan", "inventory.yaml", "--no-color"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(
        again
            .stdout
            .contains("Plan: 0 to add, 0 to change, 8 unchanged, 2 skipped (10 tasks)."),
        "{}",
        again.stdout
    );
    assert!(
        !again.stdout.contains("  + ") && !again.stdout.contains("  ~ "),
        "{}",
        again.stdout
    );

    let apply2 = p.run(&["apply", "inventory.yaml", "--json"]);
    assert_eq!(apply2.code, 0);
    assert!(apply2
        .json()
        .iter()
        .filter(|e| e["type"] == "task")
        .all(|e| e["status"] == "unchanged" || e["status"] == "not_notified"));
    assert_eq!(
        std::fs::read_to_string(p.root("b").join("reloads")).unwrap(),
        "reloaded\n",
        "handler ran without a change"
    );
}

#[test]
fn a_changed_variable_changes_only_that_file_and_notifies() {
    let p = project();
    assert_eq!(p.run(&["apply", "inventory.yaml"]).code, 0);
    let plan = p.run(&[
        "plan",
        "inventory.yaml",
        "-e",
        "port=9090",
        "--limit",
        "a",
        "--no-color",
    ]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(
        plan.stdout.contains("-listen = 8080") && plan.stdout.contains("+listen = 9090"),
        "{}",
        plan.stdout
    );
    assert!(
        !plan.stdout.contains("\nb\n"),
        "--limit a planned b:\n{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 2 to change, 3 unchanged, 0 skipped (5 tasks)."),
        "{}",
        plan.stdout
    );
    let apply = p.run(&["apply", "inventory.yaml", "-e", "port=9090", "--limit", "a"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(
        std::fs::read_to_string(p.root("a").join("reloads")).unwrap(),
        "reloaded\nreloaded\n"
    );
    assert_eq!(
        std::fs::read_to_string(p.root("b").join("reloads")).unwrap(),
        "reloaded\n"
    );
    assert!(std::fs::read_to_string(p.root("b").join("conf/app.conf"))
        .unwrap()
        .contains("8080"));
}

#[test]
fn json_plan_is_one_object_per_line_with_a_summary() {
    let p = project();
    let plan = p.run(&["plan", "inventory.yaml", "--json"]);
    assert_eq!(plan.code, 2);
    let events = plan.json();
    let summary = events.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["exit_code"], 2);
    assert_eq!(summary["add"], 6);
    let e = plan.event("a", "app.conf");
    assert_eq!(e["status"], "create");
    assert!(e["diff"].as_str().unwrap().contains("+listen = 8080"));
    assert!(
        e["location"].as_str().unwrap().ends_with("main.yaml:9"),
        "{e}"
    );
}

#[test]
fn registered_results_flow_and_unknown_values_say_known_after_apply() {
    let p = Project::new();
    p.local_inventory(&["a"], "");
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - hosts: all
    tasks:
      - name: dir
        file: { path: "{{ root }}", state: directory }
      - name: make id
        shell: { cmd: "echo id-42 > {{ root }}/id; cat {{ root }}/id", creates: "{{ root }}/id" }
        register: made
      - name: use id
        copy: { dest: "{{ root }}/copy-of-id", content: "{{ 'skipped' if made.skipped else made.stdout }}" }
"#,
    );
    let plan = p.run(&["plan", "inventory.yaml", "--json"]);
    assert_eq!(plan.code, 2);
    assert_eq!(plan.event("a", "use id")["status"], "known_after_apply");
    assert!(plan.event("a", "use id")["message"]
        .as_str()
        .unwrap()
        .contains("made"));
    assert_eq!(p.run(&["apply", "inventory.yaml"]).code, 0);
    assert_eq!(
        std::fs::read_to_string(p.root("a").join("copy-of-id")).unwrap(),
        "id-42"
    );
    // Converged: the guard skips the command, the register says so, and the copy would now change.
    let plan = p.run(&["plan", "inventory.yaml", "--json"]);
    assert_eq!(plan.event("a", "make id")["status"], "unchanged");
    assert_eq!(plan.event("a", "use id")["status"], "update");
}

#[test]
fn conditions_skip_tasks_and_are_not_changes() {
    let p = Project::new();
    p.local_inventory(&["a", "b"], "groups:\n  special:\n    hosts: [b]\n");
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - hosts: all
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: only special
        copy: { dest: "{{ root }}/special", content: "x" }
        when: "'special' in group_names"
"#,
    );
    assert_eq!(p.run(&["apply", "inventory.yaml"]).code, 0);
    assert!(!p.root("a").join("special").exists());
    assert!(p.root("b").join("special").exists());
    assert_eq!(p.run(&["plan", "inventory.yaml"]).code, 0);
}

#[test]
fn a_converged_plan_probes_each_host_in_one_round_trip() {
    let p = project();
    assert_eq!(p.run(&["apply", "inventory.yaml"]).code, 0);
    let plan = p.run_env(
        &["plan", "inventory.yaml", "--no-color"],
        &[("RUST_LOG", "apim_provision=debug")],
    );
    assert_eq!(plan.code, 0, "{}", plan.all());
    let batches = plan.stderr.matches("probe round trip (batch)").count();
    let singles = plan.stderr.matches("probe round trip (single)").count();
    assert_eq!((batches, singles), (2, 0), "{}", plan.stderr);
    let apply = p.run_env(
        &["apply", "inventory.yaml"],
        &[("RUST_LOG", "apim_provision=debug")],
    );
    assert_eq!(
        apply.stderr.matches("probe round trip").count(),
        2,
        "{}",
        apply.stderr
    );
}

#[test]
fn a_host_reads_what_another_host_registered() {
    let p = Project::new();
    p.local_inventory(&["mgr", "wkr"], "");
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - name: worker key
    hosts: wkr
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: host key
        copy: { dest: "{{ root }}/host.pub", content: "{{ key }}\n" }
      - name: read host key
        slurp: { path: "{{ root }}/host.pub" }
        register: hostkey
  - name: manager
    hosts: mgr
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: known_hosts
        depends_on: [{ task: read host key }]
        copy: { dest: "{{ root }}/known_hosts", content: "wkr {{ registered['wkr'].hostkey.content }}" }
      - name: known_hosts from a template
        depends_on: [{ task: read host key }]
        template: { src: known_hosts.j2, dest: "{{ root }}/known_hosts2" }
"#,
    );
    p.write(
        "playbooks/templates/known_hosts.j2",
        "{% for h in ['wkr'] %}{{ h }} {{ registered[h].hostkey.content }}{% endfor %}",
    );
    let plan = p.run(&["plan", "inventory.yaml", "--json", "-e", "key=ed25519-A"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    let kh = plan.event("mgr", "known_hosts");
    assert_eq!(kh["status"], "known_after_apply", "{kh}");
    assert!(
        kh["message"]
            .as_str()
            .unwrap()
            .contains("registered['wkr'].hostkey"),
        "{kh}"
    );
    assert_eq!(
        plan.event("mgr", "known_hosts from a template")["status"],
        "known_after_apply"
    );

    assert_eq!(
        p.run(&["apply", "inventory.yaml", "-e", "key=ed25519-A"])
            .code,
        0
    );
    assert_eq!(
        std::fs::read_to_string(p.root("mgr").join("known_hosts")).unwrap(),
        "wkr ed25519-A\n"
    );
    assert_eq!(
        std::fs::read_to_string(p.root("mgr").join("known_hosts2")).unwrap(),
        "wkr ed25519-A\n"
    );
    let clean = p.run(&["plan", "inventory.yaml", "-e", "key=ed25519-A"]);
    assert_eq!(clean.code, 0, "{}", clean.all());

    // A new worker key: the slurp after the pending copy is unknown, so the manager's file is too.
    let plan = p.run(&["plan", "inventory.yaml", "--json", "-e", "key=ed25519-B"]);
    assert_eq!(plan.code, 2);
    assert_eq!(
        plan.event("mgr", "known_hosts")["status"],
        "known_after_apply"
    );
    assert_eq!(
        p.run(&["apply", "inventory.yaml", "-e", "key=ed25519-B"])
            .code,
        0
    );
    assert_eq!(
        std::fs::read_to_string(p.root("mgr").join("known_hosts")).unwrap(),
        "wkr ed25519-B\n"
    );
}

#[test]
fn a_registered_result_beats_a_variable_of_its_name_and_extra_vars_beat_both() {
    let p = Project::new();
    p.local_inventory(
        &["a"],
        "vars:\n  answer: from-inventory\n  shown: from-inventory\n",
    );
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - hosts: all
    tasks:
      - name: dir
        file: { path: "{{ root }}", state: directory }
      - name: ask
        shell: { cmd: "echo from-register" }
        register: answer
      - name: ask again
        shell: { cmd: "echo from-register" }
        register: shown
      - name: write
        copy: { dest: "{{ root }}/out", content: "{{ answer.stdout }} {{ shown }}" }
"#,
    );
    let r = p.run(&["apply", "inventory.yaml", "-e", "shown=from-e"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        std::fs::read_to_string(p.root("a").join("out")).unwrap(),
        "from-register from-e"
    );
}
