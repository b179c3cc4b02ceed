//! Secrets never appear in any output mode: plan, diff, apply lines, failures, JSON, logs. Sensitivity
//! follows the data: a value rendered from a secret (filtered, joined, in a template file) is as secret as
//! the secret, key material is sensitive whatever its source, and planning writes nothing on the
//! controller.

mod common;
use common::{Project, Run};
use std::path::Path;

const PASSWORD: &str = "Hunter2-very-secret";
const API_KEY: &str = "key-0123456789abcdef";

/// Every output mode of one inventory: plan and apply in text with debug logs and in JSON, graph and
/// validate.
fn every_mode(p: &Project, extra: &[&str]) -> Vec<Run> {
    let debug = [("RUST_LOG", "debug")];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(extra.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: &[&str]| {
        let a = with(args);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        p.run_env(&a, &debug)
    };
    vec![
        run(&["plan", "inventory.yaml", "-vv"]),
        run(&["plan", "inventory.yaml", "--json"]),
        run(&["apply", "inventory.yaml", "-vv"]),
        run(&["apply", "inventory.yaml", "--json"]),
        run(&["graph", "inventory.yaml", "--format", "json"]),
        run(&["validate", "inventory.yaml"]),
    ]
}

fn assert_absent(runs: &[Run], needles: &[&str]) {
    for r in runs {
        let all = r.all();
        for n in needles {
            assert!(!all.contains(n), "`{n}` leaked:\n{all}");
        }
    }
}

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
    let runs = every_mode(&p, &[]);
    assert_absent(&runs, &[PASSWORD, API_KEY]);
    // A file rendered from a secret shows neither its lines nor its values, only how much changes.
    let plan = &runs[0].stdout;
    assert!(
        plan.contains("(sensitive content, 2 lines changed)") && !plan.contains("+url="),
        "{plan}"
    );
    let event = runs[1].event("a", "config with secrets");
    assert!(event["diff"].is_null(), "{event}");
    assert!(
        runs[2]
            .stdout
            .contains("message is hidden because the task is sensitive"),
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

#[test]
fn a_rotated_secret_shows_neither_the_old_nor_the_new_value() {
    let p = Project::new();
    let inventory = |token: &str| {
        p.local_inventory(
            &["a"],
            &format!("secrets: [token]\nvars:\n  token: \"{token}\"\n"),
        );
    };
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - hosts: all
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: token file
        copy: { dest: "{{ root }}/app.conf", content: "user = app\ntoken = {{ token }}\n" }
"#,
    );
    let (old, new) = ("old-token-4f8a2c91", "new-token-77d3e0b5");
    inventory(old);
    assert_eq!(p.run(&["apply", "inventory.yaml"]).code, 0);
    inventory(new);
    let text = p.run(&["plan", "inventory.yaml", "-vv"]);
    let json = p.run(&["plan", "inventory.yaml", "--json"]);
    assert_eq!(text.code, 2, "{}", text.all());
    assert_absent(&[text, json], &[old, new]);
    let text = p.run(&["plan", "inventory.yaml"]);
    assert!(
        text.stdout.contains("(sensitive content, 2 lines changed)"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("sha256 "), "{}", text.stdout);
}

#[test]
fn multi_line_and_filtered_secrets_never_appear() {
    let p = Project::new();
    let cert_key = "line-one-of-the-secret\nLINE-two-of-the-secret\nthird-secret-line-3x\n";
    let yaml_block: String = cert_key.lines().map(|l| format!("    {l}\n")).collect();
    p.local_inventory(
        &["a"],
        &format!(
            "secrets: [blob, api_key]\nvars:\n  api_key: \"{API_KEY}\"\n  blob: |\n{yaml_block}  derived: \"{{{{ api_key | replace('key-', 'tok_') }}}}\"\n"
        ),
    );
    p.write(
        "playbooks/templates/app.conf.j2",
        "key = {{ api_key | upper }}\nuser = app\n",
    );
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - hosts: all
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: multi-line secret
        copy: { dest: "{{ root }}/blob", content: "{{ blob }}" }
      - name: filtered secrets
        copy: { dest: "{{ root }}/filtered", content: "{{ api_key | upper }}\n{{ [api_key, 'x'] | join('+') }}\n{{ derived }}\n" }
      - name: template file reading a secret
        template: { src: app.conf.j2, dest: "{{ root }}/app.conf" }
      - name: failing command printing a filtered secret
        shell: { cmd: "echo {{ api_key | upper }} {{ derived }} >&2; exit 1" }
"#,
    );
    let upper = API_KEY.to_uppercase();
    let joined = format!("{API_KEY}+x");
    let replaced = API_KEY.replace("key-", "tok_");
    let mut needles = vec![API_KEY, upper.as_str(), joined.as_str(), replaced.as_str()];
    needles.extend(cert_key.lines());
    let runs = every_mode(&p, &[]);
    assert_absent(&runs, &needles);
    // The files were written with the real values.
    let written = std::fs::read_to_string(p.root("a").join("filtered")).unwrap();
    assert!(written.contains(&upper) && written.contains(&replaced));
    assert!(std::fs::read_to_string(p.root("a").join("app.conf"))
        .unwrap()
        .contains(&upper));

    // An error message quoting a value rendered from a secret is masked too.
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - hosts: all
    tasks:
      - file: { path: "{{ api_key | upper }}", state: directory }
"#,
    );
    let errors = [
        p.run(&["plan", "inventory.yaml"]),
        p.run(&["plan", "inventory.yaml", "--json"]),
        p.run(&["validate", "inventory.yaml"]),
    ];
    for e in &errors {
        assert_eq!(e.code, 1, "{}", e.all());
    }
    assert_absent(&errors, &needles);
}

#[test]
fn a_short_secret_does_not_mask_unrelated_digits() {
    let p = Project::new();
    p.local_inventory(&["a"], "secrets: [pin]\nvars:\n  pin: \"1\"\n");
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - hosts: all
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: ports
        copy: { dest: "{{ root }}/ports", content: "port = 10001\n" }
      - name: pin file
        copy: { dest: "{{ root }}/pin", content: "pin = {{ pin }}\n" }
"#,
    );
    let r = p.run(&["plan", "inventory.yaml"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stdout.contains("+port = 10001"), "{}", r.stdout);
    // The task reading the short secret is sensitive instead: its content is not shown at all.
    assert!(!r.stdout.contains("+pin ="), "{}", r.stdout);
    assert!(
        r.stdout.contains("(sensitive content, 1 lines changed)"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_magic_variable_listed_as_secret_is_masked() {
    let p = Project::new();
    p.write(
        "inventory.yaml",
        "playbook: playbooks/main.yaml\nsecrets: [ansible_host]\nhosts:\n  a:\n    connection: local\n    address: internal-db-7.example\n    vars:\n      root: \"@ROOT@/a\"\n",
    );
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - hosts: all
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: note
        copy: { dest: "{{ root }}/note", content: "reached at internal-db-7.example\n" }
"#,
    );
    let runs = every_mode(&p, &[]);
    assert!(
        runs[0].stdout.contains("+reached at (sensitive)"),
        "{}",
        runs[0].stdout
    );
    assert_absent(&runs, &["internal-db-7.example"]);
}

#[test]
fn a_task_marked_sensitive_shows_no_content() {
    let p = Project::new();
    p.local_inventory(&["a"], "");
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - hosts: all
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: private notes
        copy: { dest: "{{ root }}/notes", content: "nobody-should-read-this\n" }
        sensitive: true
"#,
    );
    let text = p.run(&["plan", "inventory.yaml", "-vv"]);
    let json = p.run(&["plan", "inventory.yaml", "--json"]);
    assert!(
        text.stdout.contains("(sensitive content, 1 lines changed)"),
        "{}",
        text.stdout
    );
    assert_absent(&[text, json], &["nobody-should-read-this"]);
    p.write(
        "playbooks/main.yaml",
        "plays:\n  - hosts: all\n    tasks:\n      - file: { path: /tmp }\n        sensitive: maybe\n",
    );
    let r = p.run(&["validate", "inventory.yaml"]);
    assert!(
        r.stderr.contains("`sensitive` must be true or false"),
        "{}",
        r.all()
    );
}

/// The files under `dir` with their content, for "nothing was written" checks.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(snapshot(&path));
            } else {
                out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A local host given a PKCS#12 and a JKS keystore and a trust store (with `pem`, also the PEM key,
/// certificate and CA files), plus, with `copy_key`, `copy` of the issued key from the state directory
/// and inline: the content the demo's load balancer used to print.
fn key_project(pem: bool) -> Project {
    let p = Project::new();
    p.local_inventory(&["a"], "vars:\n  store_password: \"st0re-Passw0rd\"\n");
    p.write("playbooks/main.yaml", &main_with_keys(pem, false));
    p
}

fn main_with_keys(pem: bool, copy_key: bool) -> String {
    let mut s = String::from(
        r#"
vars:
  pki: "{{ inventory_dir }}/.apim-state/pki"
plays:
  - hosts: all
    tasks:
      - file: { path: "{{ root }}", state: directory }
"#,
    );
    let mut stores = vec![("p12", "pkcs12"), ("jks", "jks")];
    if pem {
        stores.extend([("key", "pem_key"), ("cert", "pem_cert")]);
    }
    for (name, format) in stores {
        s.push_str(&format!(
            "      - name: {name}\n        keystore: {{ dest: \"{{{{ root }}}}/tls.{name}\", state_dir: \"{{{{ pki }}}}\", name: tls, common_name: a.example, format: {format}{pw} }}\n",
            pw = if name == "key" || name == "cert" { "" } else { ", password: \"{{ store_password }}\"" }
        ));
    }
    if pem {
        s.push_str("      - name: ca\n        truststore: { dest: \"{{ root }}/ca.pem\", state_dir: \"{{ pki }}\", format: pem }\n");
    }
    s.push_str("      - name: trust\n        truststore: { dest: \"{{ root }}/trust.jks\", state_dir: \"{{ pki }}\", password: \"{{ store_password }}\" }\n");
    if copy_key {
        s.push_str("      - name: copied key\n        copy: { src: \"{{ pki }}/tls.key\", dest: \"{{ root }}/copied.key\" }\n");
        s.push_str("      - name: inline key\n        copy: { dest: \"{{ root }}/inline.key\", content: \"{{ lookup_key }}\" }\n");
    }
    s
}

fn plan_validate_graph_write_nothing(pem: bool) {
    let p = key_project(pem);
    let state = p.path().join(".apim-state");
    for args in [
        &["plan", "inventory.yaml"][..],
        &["plan", "inventory.yaml", "--json"],
        &["validate", "inventory.yaml"],
        &["graph", "inventory.yaml"],
    ] {
        let r = p.run(args);
        assert!(r.code == 0 || r.code == 2, "{args:?}: {}", r.all());
        assert!(!state.exists(), "{args:?} wrote the state directory");
    }
    let plan = p.run(&["plan", "inventory.yaml"]);
    assert!(plan.stdout.contains("issue cluster CA"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("issue key and certificate for tls"),
        "{}",
        plan.stdout
    );
    let apply = p.run(&["apply", "inventory.yaml"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let again = p.run(&["plan", "inventory.yaml"]);
    assert_eq!(again.code, 0, "not converged: {}", again.stdout);

    // Issued: a plan, validate or graph leaves the state directory byte for byte as it was.
    let before = snapshot(&state);
    assert!(before.iter().any(|(f, _)| f.ends_with("pki/tls.key")));
    p.run(&["plan", "inventory.yaml", "--json"]);
    p.run(&["validate", "inventory.yaml"]);
    p.run(&["graph", "inventory.yaml"]);
    assert_eq!(snapshot(&state), before);
}

#[test]
fn plan_validate_and_graph_write_nothing_on_the_controller() {
    plan_validate_graph_write_nothing(false);
}

#[test]
fn pem_keys_certificates_and_ca_are_issued_at_apply_and_converge() {
    plan_validate_graph_write_nothing(true);
}

#[test]
fn key_material_is_never_shown() {
    let p = key_project(false);
    let apply = p.run(&["apply", "inventory.yaml"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let key = std::fs::read_to_string(p.path().join(".apim-state/pki/tls.key")).unwrap();
    // Key material copied by `copy` (a file read, or an inline value of a variable not named like a
    // secret) is never shown, in no mode.
    p.write("playbooks/main.yaml", &main_with_keys(false, true));
    let mut inv = std::fs::read_to_string(p.path().join("inventory.yaml")).unwrap();
    let block: String = key.lines().map(|l| format!("    {l}\n")).collect();
    // The inventory's top-level `vars:` come last.
    inv.push_str(&format!("  lookup_key: |\n{block}"));
    std::fs::write(p.path().join("inventory.yaml"), inv).unwrap();
    let runs = [
        p.run(&["plan", "inventory.yaml", "-vv"]),
        p.run(&["plan", "inventory.yaml", "--json"]),
        p.run(&["apply", "inventory.yaml", "--json"]),
    ];
    assert_eq!(runs[0].code, 2, "{}", runs[0].all());
    let body: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(body.len() > 10);
    assert_absent(&runs, &body);
    assert_absent(&runs, &["BEGIN PRIVATE KEY"]);
    assert!(
        runs[0].stdout.contains("(sensitive content, "),
        "{}",
        runs[0].stdout
    );
    assert_eq!(
        std::fs::read_to_string(p.root("a").join("copied.key")).unwrap(),
        key
    );
    assert_eq!(
        std::fs::read_to_string(p.root("a").join("inline.key")).unwrap(),
        key
    );
}

#[test]
fn a_later_edit_of_a_sensitive_file_does_not_diff_against_its_content() {
    let p = Project::new();
    // Too short to be masked by substring, and so is the line holding it.
    p.local_inventory(&["a"], "secrets: [pin]\nvars:\n  pin: \"4711\"\n");
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - hosts: all
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: pin file
        copy: { dest: "{{ root }}/pin.conf", content: "{{ pin }}\n" }
      - name: one more line
        lineinfile: { path: "{{ root }}/pin.conf", line: "extra = yes" }
"#,
    );
    for args in [
        &["plan", "inventory.yaml", "-vv"][..],
        &["plan", "inventory.yaml", "--json"],
    ] {
        let r = p.run(args);
        assert_eq!(r.code, 2, "{}", r.all());
        let shown = |l: &str| {
            l.trim()
                .trim_start_matches([' ', '+', '-'])
                .trim_matches('"')
                == "4711"
        };
        assert!(!r.stdout.lines().any(shown), "{}", r.stdout);
        assert!(
            !r.stdout.contains("\\n4711") && !r.stdout.contains(" 4711\\n"),
            "{}",
            r.stdout
        );
    }
    assert_eq!(p.run(&["apply", "inventory.yaml"]).code, 0);
    let written = std::fs::read_to_string(p.root("a").join("pin.conf")).unwrap();
    assert_eq!(written, "4711\nextra = yes\n");
}

#[test]
fn only_the_lines_rendered_from_a_secret_are_masked() {
    let p = Project::new();
    p.local_inventory(&["a"], &format!("vars:\n  db_password: \"{PASSWORD}\"\n"));
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - hosts: all
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: secret config
        copy: { dest: "{{ root }}/secret.ini", content: "[database]\npassword={{ db_password | upper }}\n" }
      - name: plain config
        copy: { dest: "{{ root }}/plain.ini", content: "[database]\nhost=db\n" }
"#,
    );
    let r = p.run(&["plan", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stdout.contains("+[database]"), "{}", r.stdout);
    assert!(!r.stdout.contains(&PASSWORD.to_uppercase()), "{}", r.stdout);
}

#[test]
fn a_template_including_a_file_that_reads_a_secret_is_sensitive() {
    let p = Project::new();
    p.local_inventory(&["a"], &format!("vars:\n  db_password: \"{PASSWORD}\"\n"));
    p.write(
        "playbooks/templates/app.conf.j2",
        "[app]\n{% include 'db.j2' %}",
    );
    p.write(
        "playbooks/templates/db.j2",
        "pw = {{ db_password | replace('-', '_') }}\n",
    );
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - hosts: all
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: app config
        template: { src: app.conf.j2, dest: "{{ root }}/app.conf" }
"#,
    );
    let hidden = PASSWORD.replace('-', "_");
    let runs = [
        p.run(&["plan", "inventory.yaml", "-vv"]),
        p.run(&["plan", "inventory.yaml", "--json"]),
    ];
    assert_eq!(runs[0].code, 2, "{}", runs[0].all());
    assert!(
        runs[0]
            .stdout
            .contains("(sensitive content, 2 lines changed)"),
        "{}",
        runs[0].stdout
    );
    assert_absent(&runs, &[&hidden]);
}

/// A playbook writing `{{ token }}` into a file on local host `a`, with a command reading it too.
const TOKEN_PLAYBOOK: &str = r#"
plays:
  - hosts: all
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: token file
        copy: { dest: "{{ root }}/token", content: "token={{ token }}\n" }
"#;

/// An owner-only file under the project.
fn private(p: &Project, rel: &str, text: &str, mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let f = p.write(rel, text);
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
    f
}

/// Each reference kind resolves to its value, which reaches the host and is hidden everywhere: the
/// variable is secret although nothing in its name or in `secrets:` says so.
#[test]
fn every_kind_of_reference_resolves_and_is_secret() {
    let kinds: [(&str, &str); 4] = [
        ("{ env: APIM_TEST_TOKEN }", "env-Tok3n-value"),
        ("{ file: token.txt }", "file-Tok3n-value"),
        (
            "{ cmd: \"printf '  cmd-Tok3n-value\\\\n'\" }",
            "cmd-Tok3n-value",
        ),
        ("{ secret: token }", "age-Tok3n-value"),
    ];
    for (reference, value) in kinds {
        let p = Project::new();
        p.local_inventory(&["a"], &format!("vars:\n  token: {reference}\n"));
        p.write("playbooks/main.yaml", TOKEN_PLAYBOOK);
        // A file's one trailing newline is not part of the value.
        private(&p, "token.txt", "file-Tok3n-value\n", 0o600);
        p.seal_secrets(
            "secrets.age",
            &[("token", "age-Tok3n-value"), ("other", "x")],
        );
        let env = [
            ("APIM_TEST_TOKEN", "env-Tok3n-value"),
            ("RUST_LOG", "debug"),
        ];
        let runs = vec![
            p.run_env(&["plan", "inventory.yaml", "-vv"], &env),
            p.run_env(&["apply", "inventory.yaml", "--json"], &env),
            p.run_env(&["validate", "inventory.yaml"], &env),
            p.run_env(&["graph", "inventory.yaml", "--format", "json"], &env),
        ];
        assert_eq!(runs[0].code, 2, "{reference}: {}", runs[0].all());
        assert!(
            runs[0].stdout.contains("(sensitive content"),
            "{reference}: {}",
            runs[0].stdout
        );
        assert_eq!(runs[1].code, 0, "{reference}: {}", runs[1].all());
        assert_eq!(runs[2].code, 0, "{reference}: {}", runs[2].all());
        assert_absent(&runs, &[value]);
        let written = std::fs::read_to_string(p.root("a").join("token")).unwrap();
        assert_eq!(written, format!("token={value}\n"), "{reference}");
    }
}

/// References at group and host level resolve too, each host getting its own; the same `cmd` used by
/// two variables runs once per run.
#[test]
fn references_in_group_and_host_vars_resolve_once_per_run() {
    let p = Project::new();
    let count = p.path().join("count");
    p.write(
        "inventory.yaml",
        &format!(
            "playbook: playbooks/main.yaml\n\
             vars:\n  other: {{ cmd: \"echo x >> {c}; echo other-Value-1\" }}\n\
             hosts:\n  a:\n    connection: local\n    vars:\n      root: \"@ROOT@/a\"\n      token: {{ env: TOKEN_A }}\n\
             \x20 b:\n    connection: local\n    vars:\n      root: \"@ROOT@/b\"\n\
             groups:\n  g:\n    hosts: [b]\n    vars:\n      token: {{ cmd: \"echo x >> {c}; echo other-Value-1\" }}\n",
            c = count.display()
        ),
    );
    p.write("playbooks/main.yaml", TOKEN_PLAYBOOK);
    let r = p.run_env(
        &["apply", "inventory.yaml", "-vv"],
        &[("TOKEN_A", "a-Value-1")],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_absent(&[r], &["a-Value-1", "other-Value-1"]);
    let read = |h: &str| std::fs::read_to_string(p.root(h).join("token")).unwrap();
    assert_eq!(read("a"), "token=a-Value-1\n");
    assert_eq!(read("b"), "token=other-Value-1\n");
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "x\n");
}

/// Each way a reference can fail is an error before any host is touched, naming the inventory's line,
/// the variable and the reference, and why; none shows a secret.
#[test]
fn a_reference_that_does_not_resolve_is_an_error_naming_it() {
    let cases: [(&str, &str); 9] = [
        (
            "{ env: APIM_TEST_UNSET }",
            "environment variable `APIM_TEST_UNSET` is not set",
        ),
        (
            "{ file: missing.txt }",
            "missing.txt: No such file or directory",
        ),
        (
            "{ file: open.txt }",
            "has mode 0644; a file holding a secret must be 0600 or 0400",
        ),
        (
            "{ cmd: \"echo no-such-entry >&2; printf %s%s partial -Out; exit 3\" }",
            "exited with exit status: 3: no-such-entry",
        ),
        ("{ secret: absent }", "has no entry `absent`"),
        ("{ secret: token }", "cannot decrypt"),
        ("{ secret: token }", "no identity"),
        (
            "{ secret: token }",
            "not a YAML map of names to strings: entry `token` is not a string",
        ),
        (
            "{ env: [] }",
            "is a secret reference and needs a non-empty string",
        ),
    ];
    for (i, (reference, why)) in cases.into_iter().enumerate() {
        let p = Project::new();
        p.local_inventory(&["a"], &format!("vars:\n  token: {reference}\n"));
        p.write("playbooks/main.yaml", TOKEN_PLAYBOOK);
        private(&p, "open.txt", "open-Secret-1", 0o644);
        p.seal_secrets("secrets.age", &[("token", "age-Secret-1")]);
        let mut env = vec![];
        let other = p.path().join("other-identity.txt");
        match i {
            5 => {
                // Sealed for another identity than the one the run has.
                let (text, _) = apim_provision::secrets::store::new_identity();
                std::fs::write(&other, text).unwrap();
                env.push(("APIM_AGE_IDENTITY", other.to_str().unwrap()));
            }
            6 => {
                std::fs::remove_file(p.identity()).unwrap();
                env.push(("HOME", "/nonexistent"));
            }
            7 => {
                p.seal_secrets("plain.yaml.age", &[]);
                let id = p.identity();
                let key = std::fs::read_to_string(&id).unwrap();
                let key: age::x25519::Identity = key.lines().last().unwrap().parse().unwrap();
                let r =
                    apim_provision::secrets::store::recipients(&key.to_public().to_string(), "t")
                        .unwrap();
                // A valid map, sealed, then replaced by one whose entry is a list: written with the
                // age crate directly, since `store::write` refuses it.
                let enc =
                    age::Encryptor::with_recipients(r.iter().map(|r| r.as_ref() as _)).unwrap();
                let mut out = vec![];
                let mut w = enc.wrap_output(&mut out).unwrap();
                std::io::Write::write_all(&mut w, b"token: [age-Secret-1]\n").unwrap();
                w.finish().unwrap();
                std::fs::write(p.path().join("secrets.age"), out).unwrap();
            }
            _ => {}
        }
        for cmd in ["plan", "validate"] {
            let r = p.run_env(&[cmd, "inventory.yaml", "--no-color"], &env);
            assert_eq!(r.code, 1, "{reference}: {}", r.all());
            assert!(
                r.stderr.contains("inventory.yaml:")
                    && r.stderr.contains("var `token`")
                    && r.stderr.contains(why),
                "{reference}: {}",
                r.stderr
            );
            if i != 8 {
                let shown = reference.split(':').next().unwrap();
                assert!(r.stderr.contains(shown), "{reference}: {}", r.stderr);
            }
            assert_absent(&[r], &["open-Secret-1", "age-Secret-1", "partial-Out"]);
            assert!(p.untouched(), "{reference}");
        }
    }
}

/// `secrets encrypt`, `decrypt` and `edit` round-trip a file, for an age recipient and for an ssh key,
/// and an edit leaves no plaintext behind.
#[test]
fn the_secrets_commands_round_trip_for_age_and_ssh_keys() {
    let p = Project::new();
    p.write("plain.yaml", "db: Pass-One-1\n");
    // An age identity, its recipient in secrets.age.recipients (the default recipients file).
    let (text, recipient) = apim_provision::secrets::store::new_identity();
    private(&p, "id.txt", &text, 0o600);
    p.write("secrets.age.recipients", &format!("# me\n{recipient}\n"));
    let r = p.run(&["secrets", "encrypt", "plain.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let sealed = std::fs::read(p.path().join("secrets.age")).unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("Pass-One-1"));
    let d = p.run(&["secrets", "decrypt", "--identity", "id.txt"]);
    assert_eq!(
        (d.code, d.stdout.as_str()),
        (0, "db: Pass-One-1\n"),
        "{}",
        d.all()
    );
    // An edit through a scripted editor: a new entry appears, the temporary file is gone.
    let editor = p.write(
        "editor.sh",
        &format!(
            "#!/bin/sh\nstat -c %a \"$1\" > {m}\necho \"$1\" > {n}\necho 'jms: Pass-Two-2' >> \"$1\"\n",
            m = p.path().join("mode").display(),
            n = p.path().join("name").display()
        ),
    );
    private(
        &p,
        "editor.sh",
        &std::fs::read_to_string(&editor).unwrap(),
        0o700,
    );
    let e = p.run_env(
        &["secrets", "edit", "--identity", "id.txt"],
        &[("EDITOR", editor.to_str().unwrap()), ("VISUAL", "")],
    );
    assert_eq!(e.code, 0, "{}", e.all());
    assert_eq!(
        std::fs::read_to_string(p.path().join("mode")).unwrap(),
        "600\n"
    );
    let tmp = std::fs::read_to_string(p.path().join("name")).unwrap();
    assert!(
        !std::path::Path::new(tmp.trim()).exists(),
        "{tmp} left behind"
    );
    let d = p.run(&["secrets", "decrypt", "--identity", "id.txt"]);
    assert_eq!(d.stdout, "db: Pass-One-1\njms: Pass-Two-2\n", "{}", d.all());
    // An ssh ed25519 key: its public key as --recipient, its private key as identity.
    let key = p.path().join("ssh_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let r = p.run(&[
        "secrets",
        "encrypt",
        "plain.yaml",
        "-o",
        "ssh.age",
        "--recipient",
        public.trim(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let d = p.run(&[
        "secrets",
        "decrypt",
        "ssh.age",
        "--identity",
        key.to_str().unwrap(),
    ]);
    assert_eq!(
        (d.code, d.stdout.as_str()),
        (0, "db: Pass-One-1\n"),
        "{}",
        d.all()
    );
    // Plaintext that is no map of names to strings is refused, and nothing is written.
    p.write("bad.yaml", "db: [1, 2]\n");
    let r = p.run(&[
        "secrets",
        "encrypt",
        "bad.yaml",
        "-o",
        "bad.age",
        "--recipient",
        &recipient,
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("entry `db` is not a string"),
        "{}",
        r.stderr
    );
    assert!(!p.path().join("bad.age").exists());
}

/// `secrets_file:` names another secrets file, relative to the inventory.
#[test]
fn secrets_file_overrides_the_default_store() {
    let p = Project::new();
    p.local_inventory(
        &["a"],
        "secrets_file: vault/prod.age\nvars:\n  token: { secret: token }\n",
    );
    p.write("playbooks/main.yaml", TOKEN_PLAYBOOK);
    p.seal_secrets("vault/prod.age", &[("token", "prod-Token-9")]);
    let r = p.run(&["apply", "inventory.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        std::fs::read_to_string(p.root("a").join("token")).unwrap(),
        "token=prod-Token-9\n"
    );
}
