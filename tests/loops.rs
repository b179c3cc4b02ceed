//! `loop:` on tasks and includes, on local hosts: one task per item, named from the item, each item
//! rendered per host (a value only a host has, such as `inventory_hostname`, included); a list that would differ between hosts, clashing names and a handler that loops
//! are refused before any host is touched.

mod common;
use common::Project;

const PLAYBOOK: &str = r#"
name: main
vars:
  sites:
    - { name: alpha, port: "{{ base_port }}" }
    - { name: beta, port: "{{ base_port + 1 }}", host: "{{ inventory_hostname }}" }
plays:
  - name: sites
    hosts: all
    tasks:
      - name: site dir
        file: { path: "{{ root }}/sites", state: directory }
      - name: "site {{ item.name }}"
        loop: "{{ sites }}"
        copy:
          dest: "{{ root }}/sites/{{ item.name }}.conf"
          content: "{{ item.name }} on {{ item.host | default(inventory_hostname) }}:{{ item.port }}\n"
        notify: reload
      - name: "vhost {{ v }}"
        loop: [one, two]
        loop_var: v
        include: vhost
        vars:
          suffix: "-{{ v }}"
    handlers:
      - name: reload
        shell: { cmd: "echo reloaded >> {{ root }}/reloads" }
"#;

fn project() -> Project {
    let p = Project::new();
    p.local_inventory(
        &["a", "b"],
        "vars:\n  base_port: 8000\ngroups:\n  web: { hosts: [a, b] }\n",
    );
    p.write("playbooks/main.yaml", PLAYBOOK);
    p.write(
        "playbooks/modules/vhost/tasks.yaml",
        "- name: vhost file\n  copy: { dest: \"{{ root }}/vhost{{ suffix }}\", content: \"{{ v }}\\n\" }\n",
    );
    p
}

#[test]
fn a_loop_makes_one_task_per_item_named_from_it_and_converges() {
    let p = project();
    // b's own base port: the items are rendered per host.
    let inv = std::fs::read_to_string(p.path().join("inventory.yaml")).unwrap();
    let root_b = format!("root: \"{}\"", p.root("b").display());
    assert!(inv.contains(&root_b), "{inv}");
    p.write(
        "inventory.yaml",
        &inv.replace(&root_b, &format!("{root_b}\n      base_port: 9000")),
    );
    let plan = p.run(&["plan", "inventory.yaml", "--no-color", "--json"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    for task in [
        "site alpha",
        "site beta",
        "vhost one | vhost file",
        "vhost two | vhost file",
    ] {
        plan.event("a", task);
        plan.event("b", task);
    }
    let apply = p.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let read = |h: &str, f: &str| std::fs::read_to_string(p.root(h).join(f)).unwrap();
    assert_eq!(read("a", "sites/alpha.conf"), "alpha on a:8000\n");
    assert_eq!(read("a", "sites/beta.conf"), "beta on a:8001\n");
    assert_eq!(read("b", "sites/beta.conf"), "beta on b:9001\n");
    assert_eq!(read("b", "vhost-two"), "two\n");
    // The handler both items notified ran once.
    assert_eq!(read("a", "reloads"), "reloaded\n");
    let again = p.run(&["apply", "inventory.yaml", "--no-color", "--json"]);
    again.assert_no_changes();
}

#[test]
fn loops_that_cannot_make_the_same_tasks_on_every_host_are_refused_at_their_line() {
    let cases: [(&str, &str, &str); 5] = [
        (
            // A list from a host var: hosts would run different tasks.
            "      - name: \"x {{ item }}\"\n        loop: \"{{ mine }}\"\n        command: { cmd: \"true\" }\n",
            "main.yaml:8",
            "never a host's own",
        ),
        (
            "      - name: same\n        loop: [1, 2]\n        command: { cmd: \"true\" }\n",
            "main.yaml:8",
            "loop items 1 and 2 both name the task `same`",
        ),
        (
            "      - loop: [1, 2]\n        command: { cmd: \"true\" }\n",
            "main.yaml:8",
            "a loop needs a `name`",
        ),
        (
            "      - name: \"x {{ item }}\"\n        loop: [1]\n        register: r\n        command: { cmd: \"true\" }\n",
            "main.yaml:8",
            "`register` cannot be used with `loop`",
        ),
        (
            "      - name: \"x {{ item }}\"\n        loop: \"{{ 3 }}\"\n        command: { cmd: \"true\" }\n",
            "main.yaml:8",
            "not a list",
        ),
    ];
    for (task, at, why) in cases {
        let p = Project::new();
        p.local_inventory(&["a"], "");
        let inv = std::fs::read_to_string(p.path().join("inventory.yaml")).unwrap();
        let root_a = format!("root: \"{}\"", p.root("a").display());
        p.write(
            "inventory.yaml",
            &inv.replace(&root_a, &format!("{root_a}\n      mine: [1]")),
        );
        p.write(
            "playbooks/main.yaml",
            &format!("name: main\nplays:\n  - name: p\n    hosts: all\n    tasks:\n      - name: first\n        command: {{ cmd: \"true\" }}\n{task}"),
        );
        let r = p.run(&["validate", "inventory.yaml", "--no-color"]);
        assert_eq!(r.code, 1, "{task}: {}", r.all());
        let out = r.all();
        assert!(out.contains(at) && out.contains(why), "{task}: {out}");
        assert!(p.untouched());
    }
    // A handler cannot loop.
    let p = Project::new();
    p.local_inventory(&["a"], "");
    p.write(
        "playbooks/main.yaml",
        "plays:\n  - hosts: all\n    handlers:\n      - name: \"h {{ item }}\"\n        loop: [1]\n        command: { cmd: \"true\" }\n",
    );
    let r = p.run(&["validate", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.all().contains("a handler cannot loop"), "{}", r.all());
}
