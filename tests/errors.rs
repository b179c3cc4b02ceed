//! Bad input is reported with file:line, exit 1, before any host is touched.

mod common;
use common::Project;

fn check(p: &Project, cmd: &str, expect: &[&str]) {
    let r = p.run(&[cmd, "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 1, "{cmd}: expected exit 1\n{}", r.all());
    for e in expect {
        assert!(
            r.stderr.contains(e),
            "{cmd}: `{e}` not in stderr:\n{}",
            r.stderr
        );
    }
    assert!(p.untouched(), "{cmd} touched a host");
}

fn project(playbook: &str) -> Project {
    let p = Project::new();
    p.local_inventory(&["a", "b"], "groups:\n  g:\n    hosts: [a]\n");
    p.write("playbooks/main.yaml", playbook);
    p
}

fn every_command(p: &Project, expect: &[&str]) {
    for cmd in ["validate", "plan", "apply", "graph"] {
        check(p, cmd, expect);
    }
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let p = project("plays:\n  - hosts: all\n    tasks:\n      - name: x\n        file: {path: /x\n      - name: y\n");
    every_command(&p, &["main.yaml:6"]);
}

#[test]
fn unknown_resource_type_names_file_line_and_the_known_types() {
    let p = project("plays:\n  - hosts: all\n    tasks:\n      - name: ok\n        file: {path: \"{{ root }}\"}\n      - name: typo\n        flie: {path: /x}\n");
    every_command(
        &p,
        &["main.yaml:6", "unknown resource type `flie`", "template"],
    );
}

#[test]
fn unknown_module_names_where_it_looked() {
    let p = project("plays:\n  - hosts: all\n    tasks:\n      - include: nosuchmodule\n");
    every_command(
        &p,
        &[
            "main.yaml:4",
            "unknown module `nosuchmodule`",
            "modules/nosuchmodule/tasks.yaml",
        ],
    );
}

#[test]
fn undefined_variable_names_variable_task_host_and_line() {
    let p = project("plays:\n  - hosts: all\n    tasks:\n      - name: dir\n        file: {path: \"{{ root }}\", state: directory}\n      - name: uses typo\n        copy: {dest: \"{{ root }}/x\", content: \"{{ prot }}\"}\n");
    every_command(
        &p,
        &[
            "main.yaml:6",
            "undefined variable `prot`",
            "task `uses typo` on a",
        ],
    );
}

#[test]
fn undefined_nested_attribute_is_caught_too() {
    let p = project("vars:\n  db: {host: h}\nplays:\n  - hosts: all\n    tasks:\n      - name: t\n        copy: {dest: \"{{ root }}/x\", content: \"{{ db.hots }}\"}\n");
    every_command(&p, &["main.yaml:6", "undefined variable `db.hots`"]);
}

#[test]
fn a_dependency_cycle_lists_its_tasks() {
    let p = project(
        r#"plays:
  - name: one
    hosts: a
    tasks:
      - name: first on a
        file: {path: "{{ root }}", state: directory}
        depends_on: [{task: second on b, hosts: b}]
  - name: two
    hosts: b
    tasks:
      - name: second on b
        file: {path: "{{ root }}", state: directory}
        depends_on: [{task: first on a, hosts: a}]
"#,
    );
    every_command(
        &p,
        &[
            "dependency cycle",
            "`first on a` on a (",
            "`second on b` on b (",
            "main.yaml:5",
            "main.yaml:11",
        ],
    );
}

#[test]
fn bad_arguments_unknown_group_and_handler_are_located() {
    let p = project("plays:\n  - hosts: all\n    tasks:\n      - name: t\n        file: {path: \"{{ root }}\", state: directory, mdoe: \"0644\"}\n");
    every_command(&p, &["main.yaml:4", "unknown field `mdoe`"]);
    let p = project("plays:\n  - hosts: nosuchgroup\n    tasks: []\n");
    every_command(
        &p,
        &["main.yaml:2", "`nosuchgroup` is neither a host nor a group"],
    );
    let p = project("plays:\n  - hosts: all\n    tasks:\n      - name: t\n        file: {path: \"{{ root }}\", state: directory}\n        notify: nobody\n");
    every_command(&p, &["main.yaml:4", "unknown handler `nobody`"]);
}

#[test]
fn bad_inventory_and_limit_are_reported() {
    let p = project("plays: []\n");
    p.write(
        "inventory.yaml",
        "hosts:\n  a:\n    connection: local\n    adress: x\n",
    );
    let r = p.run(&["plan", "inventory.yaml"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("inventory.yaml:") && r.stderr.contains("adress"),
        "{}",
        r.stderr
    );
    let p = project("plays: []\n");
    let r = p.run(&["plan", "inventory.yaml", "--limit", "nosuch"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("`nosuch` is neither a host nor a group"),
        "{}",
        r.stderr
    );
}

#[test]
fn errors_in_json_mode_are_a_json_object() {
    let p = project("plays:\n  - hosts: all\n    tasks:\n      - flie: {}\n");
    let r = p.run(&["plan", "inventory.yaml", "--json"]);
    assert_eq!(r.code, 1);
    let e = &r.json()[0];
    assert_eq!(e["type"], "error");
    assert!(e["message"].as_str().unwrap().contains("main.yaml:4"));
}
