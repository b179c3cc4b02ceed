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
fn content_and_pattern_checks_name_file_and_line() {
    let p = project("plays:\n  - hosts: all\n    tasks:\n      - name: ok\n        file: {path: \"{{ root }}\", state: directory}\n      - name: conf\n        copy: {dest: \"{{ root }}/a.xml\", format: xml, content: \"<a>\\n<b></a>\\n\"}\n");
    every_command(
        &p,
        &[
            "main.yaml:6",
            "invalid XML at line 2 (`<b></a>`): expected 'b' tag, not 'a'",
        ],
    );
    let p = project("plays:\n  - hosts: all\n    tasks:\n      - name: started\n        wait_for: {path: /x.log, search_regex: \"started in \\\\d+ sec\"}\n");
    every_command(&p, &["main.yaml:4", "search_regex `started in \\d+ sec`"]);
    let p = project("plays:\n  - hosts: all\n    tasks:\n      - name: insert\n        xml: {path: /x.xml, xpath: \"/a/b[@k='1']\", fragment: \"<b k='2'/>\"}\n");
    every_command(&p, &["main.yaml:4", "fragment: its <b> does not match"]);
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

/// Runs `args` and checks for exit 1 with every `expect` in stderr, once, and no panic.
fn refused(p: &Project, args: &[&str], expect: &[&str]) -> String {
    let r = p.run(args);
    assert_eq!(r.code, 1, "{args:?}: expected exit 1\n{}", r.all());
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    for e in expect {
        assert!(
            r.stderr.contains(e),
            "{args:?}: `{e}` not in stderr:\n{}",
            r.stderr
        );
    }
    assert!(p.untouched(), "{args:?} touched a host");
    r.stderr
}

const ONE_TASK: &str = "plays:\n  - hosts: all\n    tasks:\n      - name: t\n        file: {path: \"{{ root }}\", state: directory}\n";

#[test]
fn a_limit_that_matches_no_host_is_an_error() {
    let p = project(ONE_TASK);
    for cmd in ["plan", "apply", "validate", "graph"] {
        refused(
            &p,
            &[cmd, "inventory.yaml", "--limit", "all:!a:!b"],
            &["--limit", "matches no host"],
        );
        refused(
            &p,
            &[cmd, "inventory.yaml", "--limit", "g:&b"],
            &["matches no host"],
        );
    }
    let p = project("plays:\n  - hosts: g\n    tasks:\n      - name: t\n        file: {path: \"{{ root }}\", state: directory}\n");
    refused(
        &p,
        &["apply", "inventory.yaml", "--limit", "b"],
        &["`b` selects b, on which no play runs"],
    );
}

#[test]
fn a_host_or_var_given_twice_in_the_inventory_is_refused() {
    let p = project(ONE_TASK);
    p.write(
        "inventory.yaml",
        "playbook: playbooks/main.yaml\nhosts:\n  a:\n    connection: local\n  a:\n    connection: local\n",
    );
    refused(
        &p,
        &["plan", "inventory.yaml"],
        &["inventory.yaml:5: duplicate key `hosts.a` (first given at line 3)"],
    );
    p.write(
        "inventory.yaml",
        "playbook: playbooks/main.yaml\nvars:\n  port: 1\n  port: 2\nhosts:\n  a: {connection: local}\n",
    );
    refused(
        &p,
        &["validate", "inventory.yaml"],
        &["inventory.yaml:4: duplicate key `vars.port`"],
    );
}

#[test]
fn a_handler_name_given_twice_is_refused() {
    let p = project("plays:\n  - hosts: all\n    tasks:\n      - name: t\n        file: {path: \"{{ root }}\", state: directory}\n        notify: h\n    handlers:\n      - name: h\n        file: {path: \"{{ root }}\", state: directory}\n      - name: h\n        file: {path: \"{{ root }}/x\", state: directory}\n");
    every_command(
        &p,
        &[
            "main.yaml:10",
            "handler `h` is already defined at playbooks/main.yaml:8",
        ],
    );
}

#[test]
fn a_module_included_twice_brings_its_handler_once() {
    let p = project("plays:\n  - hosts: all\n    tasks:\n      - include: m\n        vars: {n: 1}\n      - include: m\n        vars: {n: 2}\n");
    p.write(
        "modules/m/tasks.yaml",
        "- name: t{{ n }}\n  file: {path: \"{{ root }}\", state: directory}\n  notify: h\n",
    );
    p.write(
        "modules/m/handlers.yaml",
        "- name: h\n  file: {path: \"{{ root }}\", state: directory}\n",
    );
    let r = p.run(&["validate", "inventory.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn deeply_nested_yaml_is_refused_with_its_line() {
    // 100 levels pass serde_yaml's own limit (128) and reach the engine's; 30000 are refused by the
    // parsers themselves. Either way: exit 1 at the line, no stack overflow.
    for (n, why) in [(100, "nested deeper than 64"), (30000, "")] {
        let deep = format!("{}{}", "[".repeat(n), "]".repeat(n));
        let p = project(ONE_TASK);
        p.write(
            "inventory.yaml",
            &format!("playbook: playbooks/main.yaml\nhosts:\n  a: {{connection: local}}\nvars:\n  x: {deep}\n"),
        );
        refused(
            &p,
            &["plan", "inventory.yaml"],
            &["inventory.yaml:5: ", why],
        );
        let p = project(&format!(
            "plays:\n  - hosts: all\n    tasks:\n      - copy: {{dest: /x, content: {deep}}}\n"
        ));
        refused(&p, &["graph", "inventory.yaml"], &["main.yaml:4: ", why]);
        let p = project(ONE_TASK);
        p.write("deep.yaml", &format!("x: {deep}\n"));
        refused(
            &p,
            &["plan", "inventory.yaml", "-e", "@deep.yaml"],
            &["deep.yaml:1: ", why],
        );
    }
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let p = project(ONE_TASK);
    let fifo = p.path().join("fifo.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    refused(
        &p,
        &["plan", "fifo.yaml"],
        &["fifo.yaml: not a regular file"],
    );
    refused(
        &p,
        &["plan", "inventory.yaml", "--playbook", "fifo.yaml"],
        &["fifo.yaml: not a regular file"],
    );
    refused(
        &p,
        &["plan", "inventory.yaml", "-e", "@fifo.yaml"],
        &["fifo.yaml: not a regular file"],
    );
}

#[test]
fn extra_vars_must_name_a_variable() {
    let p = project(ONE_TASK);
    for bad in ["=x", "a b=1", "1a=2", "a-b=1"] {
        refused(
            &p,
            &["plan", "inventory.yaml", "-e", bad],
            &["is not a variable name"],
        );
    }
    p.write("bad.yaml", "\"a b\": 1\n");
    refused(
        &p,
        &["plan", "inventory.yaml", "-e", "@bad.yaml"],
        &["`a b` is not a variable name"],
    );
    let r = p.run(&["validate", "inventory.yaml", "-e", "ok_1=2"]);
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn a_missing_file_is_reported_once() {
    let p = project(ONE_TASK);
    let err = refused(
        &p,
        &["plan", "/nonexistent.yaml"],
        &["/nonexistent.yaml: No such file or directory"],
    );
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

#[test]
fn include_takes_a_module_name_not_a_path() {
    let p = project("plays:\n  - hosts: all\n    tasks:\n      - include: ../../x\n");
    p.write(
        "../x/tasks.yaml",
        "- file: {path: /tmp/x, state: directory}\n",
    );
    every_command(
        &p,
        &[
            "main.yaml:4",
            "`include: ../../x`: a module is named, not a path",
        ],
    );
    for name in ["a/b", "..", ".hidden", "/abs"] {
        let p = project(&format!(
            "plays:\n  - hosts: all\n    tasks:\n      - include: \"{name}\"\n"
        ));
        check(&p, "validate", &["a module is named, not a path"]);
    }
}

#[test]
fn modules_are_found_on_the_inventory_module_path() {
    let p = project("plays:\n  - hosts: all\n    tasks:\n      - include: mine\n");
    p.write(
        "ops/modules/mine/tasks.yaml",
        "- name: own\n  file: {path: \"{{ root }}\", state: directory}\n",
    );
    check(&p, "validate", &["unknown module `mine`"]);
    let inv = std::fs::read_to_string(p.path().join("inventory.yaml")).unwrap();
    p.write(
        "inventory.yaml",
        &format!("{inv}module_path: [ops/modules]\n"),
    );
    let r = p.run(&["plan", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stdout.contains("mine | own"), "{}", r.stdout);
}

#[test]
fn paths_in_errors_are_normalised() {
    let p = project("plays:\n  - hosts: all\n    tasks:\n      - include: m\n");
    p.write("modules/m/tasks.yaml", "- name: t\n  flie: {}\n");
    std::fs::create_dir_all(p.path().join("sub")).unwrap();
    let err = refused(
        &p,
        &[
            "plan",
            "inventory.yaml",
            "--playbook",
            "./sub/../playbooks/./main.yaml",
        ],
        &["modules/m/tasks.yaml:1", "unknown resource type `flie`"],
    );
    assert!(!err.contains("..") && !err.contains("/./"), "{err}");
}

#[test]
fn no_color_removes_every_colour_code_logs_included() {
    let p = project(ONE_TASK);
    let force = [("CLICOLOR_FORCE", "1")];
    let coloured = p.run_env(&["apply", "inventory.yaml", "-vv"], &force);
    assert!(
        coloured.all().contains('\x1b'),
        "the test must see colours when forced:\n{}",
        coloured.all()
    );
    assert!(
        coloured.stderr.contains("DEBUG"),
        "-vv logs expected:\n{}",
        coloured.stderr
    );
    for cmd in ["plan", "apply"] {
        let r = p.run_env(&[cmd, "inventory.yaml", "-vv", "--no-color"], &force);
        assert!(r.stderr.contains("DEBUG"), "{}", r.stderr);
        assert!(
            !r.all().contains('\x1b'),
            "{cmd}: colour codes with --no-color:\n{}",
            r.all()
        );
    }
    let r = p.run_env(&["plan", "nosuch.yaml", "--no-color"], &force);
    assert_eq!(r.code, 1);
    assert!(!r.all().contains('\x1b'), "{}", r.all());
}

/// Runs `args` in `p`, failing the test if the binary takes longer than `secs` (a hang, not an error).
fn run_within(p: &Project, args: &[&str], secs: u64) -> common::Run {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_apim-provision"))
        .args(args)
        .current_dir(p.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() > secs {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{args:?} still running after {secs}s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn deeply_nested_groups_are_refused_and_wide_ones_load_quickly() {
    let p = project(ONE_TASK);
    let inv = std::fs::read_to_string(p.path().join("inventory.yaml")).unwrap();
    let mut chain = inv.replace("groups:\n  g:\n    hosts: [a]\n", "groups:\n");
    for i in 0..2400 {
        chain.push_str(&format!("  g{i}: {{children: [g{}]}}\n", i + 1));
    }
    chain.push_str("  g2400: {hosts: [a]}\n");
    p.write("inventory.yaml", &chain);
    let r = run_within(&p, &["validate", "inventory.yaml"], 20);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("groups nested deeper than 64 levels: g0 -> g1 -> g2"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("inventory.yaml:"), "{}", r.stderr);

    // 30 levels of two groups, each the parent of both groups below: 2^30 paths, 60 groups.
    let mut lattice = inv.replace("groups:\n  g:\n    hosts: [a]\n", "groups:\n");
    for i in 0..30 {
        for side in ["l", "r"] {
            lattice.push_str(&format!(
                "  {side}{i}: {{children: [l{n}, r{n}], vars: {{lvl: {i}}}}}\n",
                n = i + 1
            ));
        }
    }
    lattice.push_str("  l30: {hosts: [a], vars: {lvl: 30}}\n  r30: {hosts: [b]}\n");
    p.write("inventory.yaml", &lattice);
    p.write(
        "playbooks/main.yaml",
        "plays:\n  - hosts: all\n    tasks:\n      - file: {path: \"{{ root }}\", state: directory}\n      - name: t\n        copy: {dest: \"{{ root }}/lvl\", content: \"lvl={{ lvl }}\"}\n",
    );
    let r = run_within(&p, &["plan", "inventory.yaml", "--json"], 20);
    assert_eq!(r.code, 2, "{}", r.all());
    // The deepest group's vars win on a; b's deepest group sets none, so the level above it wins.
    assert!(
        r.event("a", "t").to_string().contains("lvl=30"),
        "{}",
        r.stdout
    );
    assert!(
        r.event("b", "t").to_string().contains("lvl=29"),
        "{}",
        r.stdout
    );
}

#[test]
fn pattern_takes_a_playbook_name_not_a_path() {
    let p = project(ONE_TASK);
    p.write("elsewhere.yaml", ONE_TASK);
    for bad in ["../elsewhere", "a/b", ".hidden"] {
        p.write(
            "inventory.yaml",
            &format!("pattern: \"{bad}\"\nhosts:\n  a: {{connection: local}}\n"),
        );
        refused(
            &p,
            &["validate", "inventory.yaml"],
            &["inventory.yaml:1", "names a shipped playbook"],
        );
    }
}

#[test]
fn a_fifo_as_template_or_copy_source_is_refused_without_blocking() {
    let p = project(ONE_TASK);
    let fifo = p.path().join("src.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for kind in ["template", "copy"] {
        p.write(
            "playbooks/main.yaml",
            &format!("plays:\n  - hosts: all\n    tasks:\n      - name: t\n        {kind}: {{src: \"{}\", dest: \"{{{{ root }}}}/x\"}}\n", fifo.display()),
        );
        let r = run_within(&p, &["plan", "inventory.yaml", "--no-color"], 20);
        assert_eq!(r.code, 1, "{}", r.all());
        assert!(
            r.stderr.contains("main.yaml:4") && r.stderr.contains("src.fifo is not a regular file"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn template_paths_in_errors_are_normalised() {
    let p = project("plays:\n  - hosts: all\n    tasks:\n      - name: t\n        template: {src: ../templates/./bad.j2, dest: \"{{ root }}/x\"}\n");
    p.write("playbooks/templates/bad.j2", "line\n{{ nope }}\n");
    let err = refused(
        &p,
        &["plan", "inventory.yaml", "--no-color"],
        &["undefined variable `nope`", "playbooks/templates/bad.j2:2"],
    );
    assert!(!err.contains("/../") && !err.contains("/./"), "{err}");
}

#[test]
fn a_type_error_in_the_inventory_does_not_quote_the_value() {
    // Secrets are known only once the inventory is read: a value in the wrong place may be one.
    let p = Project::new();
    p.write("playbooks/main.yaml", "plays: []\n");
    p.write(
        "inventory.yaml",
        "playbook: playbooks/main.yaml\nhosts:\n  a: \"-----BEGIN PRIVATE KEY----- MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\"\n",
    );
    let r = p.run(&["plan", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("inventory.yaml:3"), "{}", r.stderr);
    assert!(
        !r.all().contains("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC") && !r.all().contains("PRIVATE KEY"),
        "{}",
        r.all()
    );
}

#[test]
fn vars_files_are_shared_below_the_playbook_vars_and_their_errors_are_located() {
    let pb = "vars_files: [vars/shared.yaml]\nvars:\n  b: from-playbook\nplays:\n  - hosts: a\n    tasks:\n      - name: show\n        copy: {dest: \"{{ root }}/out\", content: \"{{ a }} {{ b }}\"}\n";
    let p = project(pb);
    p.write("playbooks/vars/shared.yaml", "a: from-file\nb: from-file\n");
    std::fs::create_dir_all(p.path().join("hosts/a")).unwrap();
    let r = p.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let out = std::fs::read_to_string(p.path().join("hosts/a/out")).unwrap();
    assert_eq!(out, "from-file from-playbook");

    let dup = project(pb);
    dup.write("playbooks/vars/shared.yaml", "a: 1\na: 2\n");
    every_command(&dup, &["shared.yaml:2"]);
    let missing = project("vars_files: [vars/missing.yaml]\nplays:\n  - hosts: a\n    tasks: []\n");
    every_command(&missing, &["main.yaml:1", "missing.yaml does not exist"]);
}

#[test]
fn a_var_that_cannot_resolve_only_fails_the_tasks_that_run() {
    let pb = |cond: &str| {
        format!("vars:\n  server: \"{{{{ groups['nfs_server'][0] }}}}\"\nplays:\n  - hosts: a\n    tasks:\n      - name: mount\n        when: {cond}\n        file: {{path: \"{{{{ root }}}}/{{{{ server }}}}\", state: directory}}\n")
    };
    let skipped = project(&pb("false"));
    let r = skipped.run(&["validate", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let runs = project(&pb("true"));
    every_command(
        &runs,
        &["main.yaml:6", "variable `server` cannot be resolved"],
    );
}

#[test]
fn a_read_of_another_hosts_result_must_wait_for_the_task_that_registers_it() {
    let reader = |waits: &str, subscript: &str| {
        format!(
            "plays:\n  - name: keys\n    hosts: all\n    tasks:\n      - name: key\n        shell: {{ cmd: echo k }}\n        register: key\n      - name: later\n        file: {{ path: \"{{{{ root }}}}\", state: directory }}\n  - name: use\n    hosts: b\n    vars: {{ peer: a }}\n    tasks:\n      - name: use\n{waits}        copy: {{ dest: \"{{{{ root }}}}/k\", content: \"{{{{ registered[{subscript}].key.stdout }}}}\" }}\n"
        )
    };
    for subscript in ["'a'", "peer"] {
        let p = project(&reader("", subscript));
        for cmd in ["validate", "plan"] {
            check(
                &p,
                cmd,
                &[&format!(
                    "main.yaml:14: task `use` on b reads `registered[{subscript}].key`, which task `key` (playbooks/main.yaml:5) registers on a, but does not wait for it: add `depends_on: {{task: \"key\", hosts: a}}`"
                )],
            );
        }
        // Waiting for a later task of a waits for the one that registers, through a's own order.
        let p = project(&reader(
            "        depends_on: [{ task: later, hosts: a }]\n",
            subscript,
        ));
        let r = p.run(&["validate", "inventory.yaml"]);
        assert_eq!(r.code, 0, "{subscript}: {}", r.all());
    }
}
