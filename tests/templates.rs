//! Templates as Ansible users write them: `default()` and `is defined` on names that may be undefined,
//! `{% include %}` of a file next to the template, and `trim_blocks`.

mod common;
use common::Project;

/// A project whose playbook's tasks (`tasks`, indented as list items of a play) run after one that
/// makes the host's directory.
fn project(tasks: &str) -> Project {
    let p = Project::new();
    p.local_inventory(&["a"], "vars:\n  port: 8080\n");
    p.write(
        "playbooks/main.yaml",
        &format!("plays:\n  - hosts: all\n    tasks:\n      - name: root\n        file: {{ path: \"{{{{ root }}}}\", state: directory }}\n{tasks}"),
    );
    p
}

#[test]
fn default_and_is_defined_work_in_args_and_when() {
    let p = project(
        r#"      - name: conf
        copy:
          dest: "{{ root }}/conf"
          content: "port={{ port }} heap={{ heap | default('512m') }} {{ 'opt' if opt is defined else 'none' }}\n"
      - name: only when unset
        when: opt is not defined
        copy: { dest: "{{ root }}/unset", content: "x\n" }
      - name: only when set
        when: opt is defined and opt
        copy: { dest: "{{ root }}/set", content: "{{ opt }}\n" }
"#,
    );
    let r = p.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        std::fs::read_to_string(p.root("a").join("conf")).unwrap(),
        "port=8080 heap=512m none\n"
    );
    assert!(p.root("a").join("unset").exists() && !p.root("a").join("set").exists());
    let r = p.run(&[
        "apply",
        "inventory.yaml",
        "--no-color",
        "-e",
        "opt=yes",
        "-e",
        "heap=1g",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        std::fs::read_to_string(p.root("a").join("conf")).unwrap(),
        "port=8080 heap=1g opt\n"
    );
    assert_eq!(
        std::fs::read_to_string(p.root("a").join("set")).unwrap(),
        "yes\n"
    );
}

#[test]
fn an_unguarded_typo_still_fails_before_any_host_is_touched() {
    let p = project(
        r#"      - name: conf
        copy: { dest: "{{ root }}/conf", content: "{{ heap | default('1g') }} {{ prot }}\n" }
"#,
    );
    let r = p.run(&["plan", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("main.yaml:6") && r.stderr.contains("undefined variable `prot`"),
        "{}",
        r.stderr
    );
    let p = project(
        "      - name: t\n        when: heap is defined or prot\n        copy: { dest: \"{{ root }}/c\", content: \"x\" }\n",
    );
    let r = p.run(&["plan", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("main.yaml:6") && r.stderr.contains("`prot`"),
        "{}",
        r.stderr
    );
    assert!(p.untouched());
}

#[test]
fn a_template_includes_a_file_next_to_it_and_blocks_trim_their_newline() {
    let p = project(
        "      - name: conf\n        template: { src: app.conf.j2, dest: \"{{ root }}/app.conf\" }\n",
    );
    p.write(
        "playbooks/templates/app.conf.j2",
        "[main]\n{% if port %}\nport = {{ port }}\n{% endif %}\n{% include 'common.j2' %}\n{% for x in [1, 2] %}\nx{{ x }}\n{% endfor %}\nend\n",
    );
    p.write(
        "playbooks/templates/common.j2",
        "host = {{ inventory_hostname }}\n",
    );
    let r = p.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        std::fs::read_to_string(p.root("a").join("app.conf")).unwrap(),
        "[main]\nport = 8080\nhost = a\nx1\nx2\nend\n"
    );
}

#[test]
fn an_include_outside_the_template_directory_is_refused() {
    let p = project(
        "      - name: conf\n        template: { src: app.conf.j2, dest: \"{{ root }}/app.conf\" }\n",
    );
    p.write(
        "playbooks/templates/app.conf.j2",
        "{% include '../main.yaml' %}\n",
    );
    let r = p.run(&["plan", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("include `../main.yaml`: only a file next to"),
        "{}",
        r.stderr
    );
    assert!(p.untouched());
}

#[test]
fn shipped_templates_render_as_ansible_renders_them() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = repo.join("tests/fixtures/ansible");
    let templates = [
        ("wso2_config", "deployment.toml"),
        ("nginx_lb", "nginx.conf"),
        ("nginx_lb", "portal.conf"),
        ("nginx_lb", "gateway.conf"),
        ("nginx_lb", "vhost.conf"),
        ("wso2_service", "wso2am.service"),
    ];
    for scenario in ["on", "off"] {
        let p = Project::new();
        let vars = std::fs::read_to_string(fixtures.join(format!("vars-{scenario}.json"))).unwrap();
        p.write(
            "inventory.yaml",
            &format!(
                "playbook: playbooks/main.yaml\nhosts:\n  a: {{connection: local, address: 10.0.0.1}}\n  b: {{connection: local, address: 10.0.0.2, vars: {{wso2_port_offset: 1}}}}\nvars: {vars}\n"
            ),
        );
        let mut tasks = String::from(
            "plays:\n  - hosts: a\n    tasks:\n      - file: { path: \"@ROOT@\", state: directory }\n",
        );
        for (module, file) in templates {
            let src = repo.join(format!("modules/{module}/templates/{file}.j2"));
            p.write(
                &format!("playbooks/templates/{file}.j2"),
                &std::fs::read_to_string(src).unwrap(),
            );
            tasks.push_str(&format!(
                "      - template: {{ src: {file}.j2, dest: \"@ROOT@/{file}\" }}\n"
            ));
        }
        // The parts the nginx virtual hosts include.
        for part in ["tls.j2", "proxy.j2"] {
            let src = repo.join("modules/nginx_lb/templates").join(part);
            p.write(
                &format!("playbooks/templates/{part}"),
                &std::fs::read_to_string(src).unwrap(),
            );
        }
        p.write("playbooks/main.yaml", &tasks);
        let r = p.run(&["apply", "inventory.yaml", "--no-color"]);
        assert_eq!(r.code, 0, "{}", r.all());
        for (_, file) in templates {
            let got = std::fs::read_to_string(p.path().join("hosts").join(file)).unwrap();
            let want =
                std::fs::read_to_string(fixtures.join(format!("{scenario}-{file}"))).unwrap();
            assert_eq!(
                got, want,
                "{scenario}: {file} differs from what Ansible renders"
            );
        }
    }
}
