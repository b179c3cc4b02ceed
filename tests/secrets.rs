//! Secrets never appear in any output mode: plan, diff, apply lines, failures, JSON, logs.

mod common;
use common::Project;

const PASSWORD: &str = "Hunter2-very-secret";
const API_KEY: &str = "key-0123456789abcdef";

#[test]
fn secrets_are_masked_in_every_output_mode() {
    let p = Project::new();
    p.local_inventory(
        &["a"],
        &format!("secrets: [api_key]\nvars:\n  db_password: \"{PASSWORD}\"\n  api_key: \"{API_KEY}\"\n  jdbc_url: \"jdbc:mysql://db/x?password={{{{ db_password }}}}\"\n"),
    );
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - hosts: all
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: config with secrets
        copy: { dest: "{{ root }}/conf", content: "url={{ jdbc_url }}\nkey={{ api_key }}\n" }
      - name: command with a secret
        shell: { cmd: "echo {{ api_key }} > {{ root }}/key", creates: "{{ root }}/key" }
      - name: failing command printing a secret
        shell: { cmd: "echo 'bad password {{ db_password }}' >&2; exit 1" }
"#,
    );
    let debug = [("RUST_LOG", "debug")];
    let runs = [
        p.run_env(&["plan", "inventory.yaml", "-vv"], &debug),
        p.run_env(&["plan", "inventory.yaml", "--json"], &debug),
        p.run_env(&["apply", "inventory.yaml", "-vv"], &debug),
        p.run_env(&["apply", "inventory.yaml", "--json"], &debug),
        p.run_env(&["graph", "inventory.yaml", "--format", "json"], &debug),
        p.run_env(&["validate", "inventory.yaml"], &debug),
    ];
    for r in &runs {
        let all = r.all();
        assert!(
            !all.contains(PASSWORD) && !all.contains(API_KEY),
            "secret leaked:\n{all}"
        );
    }
    assert!(
        runs[0]
            .stdout
            .contains("+url=jdbc:mysql://db/x?password=(sensitive)"),
        "{}",
        runs[0].stdout
    );
    assert!(runs[0].stdout.contains("+key=(sensitive)"));
    assert!(
        runs[2].stdout.contains("bad password (sensitive)"),
        "{}",
        runs[2].stdout
    );
    assert!(
        runs[2].stderr.contains("applying"),
        "debug logs were not produced:\n{}",
        runs[2].stderr
    );
    // The host itself got the real values: masking is only for what we show.
    let conf = std::fs::read_to_string(p.root("a").join("conf")).unwrap();
    assert!(conf.contains(PASSWORD) && conf.contains(API_KEY));
}
