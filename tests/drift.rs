//! `drift` on local hosts: apply, move things on a host by hand, and check that drift names exactly
//! those (and only reads), says since when, reports the same in every format, hides secrets, never
//! counts commands or handlers, repairs with `--fix`, and names an unreachable host.

mod common;
use common::{Project, Run};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const SECRET: &str = "Sup3r-secret-db-pass";

const PLAYBOOK: &str = r#"
plays:
  - name: base
    hosts: all
    tasks:
      - name: conf dir
        file: { path: "{{ root }}/conf", state: directory, mode: "0755" }
      - name: app.conf
        template: { src: app.conf.j2, dest: "{{ root }}/conf/app.conf", mode: "0640" }
        notify: reload app
      - name: banner
        copy: { dest: "{{ root }}/conf/banner", content: "hello {{ inventory_hostname }}\n", mode: "0644" }
      - name: db.conf
        template: { src: db.conf.j2, dest: "{{ root }}/conf/db.conf", mode: "0600" }
      - name: limits line
        lineinfile: { path: "{{ root }}/conf/banner.local", line: "max = {{ max }}", create: true }
      - name: stamp
        shell: { cmd: "date >> {{ root }}/stamps" }
    handlers:
      - name: reload app
        shell: { cmd: "echo reloaded >> {{ root }}/reloads" }
"#;

fn project(hosts: &[&str], extra: &str) -> Project {
    let p = Project::new();
    p.local_inventory(
        hosts,
        &format!("secrets: [db_password]\nvars:\n  port: 8080\n  max: 10\n  db_password: \"{SECRET}\"\n{extra}"),
    );
    p.write("playbooks/main.yaml", PLAYBOOK);
    p.write(
        "playbooks/templates/app.conf.j2",
        "listen = {{ port }}\nname = {{ inventory_hostname }}\n",
    );
    p.write(
        "playbooks/templates/db.conf.j2",
        "user = app\npassword = {{ db_password }}\n",
    );
    p
}

fn applied(hosts: &[&str]) -> Project {
    let p = project(hosts, "");
    let r = p.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 0, "{}", r.all());
    p
}

/// sha256 (through `sha256sum`) and mode of every file under the hosts' directories.
fn snapshot(p: &Project) -> BTreeMap<String, (String, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![p.path().join("hosts")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path.clone());
            }
            let sum = if meta.is_file() {
                let o = std::process::Command::new("sha256sum")
                    .arg(&path)
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&o.stdout)
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_string()
            } else {
                String::new()
            };
            out.insert(path.display().to_string(), (sum, meta.permissions().mode()));
        }
    }
    out
}

fn state_dir(p: &Project) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![p.path().join(".apim-state")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.display().to_string(),
                    std::fs::read_to_string(&path).unwrap_or_default(),
                );
            }
        }
    }
    out
}

fn drift(p: &Project, extra: &[&str]) -> Run {
    let mut args = vec!["drift", "inventory.yaml", "--no-color"];
    args.extend_from_slice(extra);
    p.run(&args)
}

/// `host task since` of every drift object of a `--json` run, sorted.
fn drifted(r: &Run) -> Vec<String> {
    r.drifted(&["host", "task", "since"])
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_converged_cluster_has_no_drift_and_apply_records_it() {
    let p = applied(&["a", "b"]);
    let before = (snapshot(&p), state_dir(&p));
    let r = drift(&p, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("Drift: 0 drifted on 0 of 2 hosts, 0 pending"),
        "{}",
        r.stdout
    );
    assert_eq!(
        (snapshot(&p), state_dir(&p)),
        before,
        "drift changed something"
    );

    let rec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join(".apim-state/applied/a.json")).unwrap(),
    )
    .unwrap();
    let files: Vec<&str> = rec["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["task"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["app.conf", "banner", "db.conf"], "{rec}");
    assert!(rec["applied_at"].as_u64().unwrap() > 1_600_000_000);
    let mode = std::fs::metadata(p.path().join(".apim-state/applied/a.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !state_dir(&p).values().any(|t| t.contains(SECRET)),
        "the record holds a secret"
    );
}

#[test]
fn hand_edits_are_drift_since_the_host_and_only_they_and_drift_only_reads() {
    let p = applied(&["a", "b"]);
    std::fs::write(
        p.root("a").join("conf/app.conf"),
        "listen = 9999\nname = a\n",
    )
    .unwrap();
    chmod(&p.root("a").join("conf/banner"), 0o666);
    std::fs::write(
        p.root("b").join("conf/db.conf"),
        format!("user = root\npassword = {SECRET}\n"),
    )
    .unwrap();
    let before = (snapshot(&p), state_dir(&p));

    let human = drift(&p, &["--junit", "drift.xml", "--prometheus", "drift.prom"]);
    assert_eq!(human.code, 2, "{}", human.all());
    assert_eq!(
        (snapshot(&p), state_dir(&p)),
        before,
        "drift changed a host or the state dir"
    );
    let out = &human.stdout;
    assert!(
        out.contains("app.conf") && out.contains("changed on the host since the last apply"),
        "{out}"
    );
    assert!(
        out.contains("-listen = 9999") && out.contains("+listen = 8080"),
        "no diff:\n{out}"
    );
    assert!(out.contains("mode 0666 -> 0644"), "{out}");
    assert!(out.contains("Drift: 3 drifted on 2 of 2 hosts"), "{out}");
    // The command and the handler are not drift, though plan would run them.
    assert!(
        !out.contains("stamp") && !out.contains("reload app"),
        "{out}"
    );

    let j = drift(&p, &["--json"]);
    assert_eq!(j.code, 2, "{}", j.all());
    assert_eq!(
        drifted(&j),
        ["a app.conf host", "a banner host", "b db.conf host"]
    );
    let s = j.summary();
    assert_eq!(
        (s["hosts"].as_u64(), s["drifted"].as_u64()),
        (Some(2), Some(3)),
        "{s}"
    );
    assert_eq!(s["unreachable"], serde_json::json!([]));

    let xml = std::fs::read_to_string(p.path().join("drift.xml")).unwrap();
    assert_eq!(xml.matches("<failure").count(), 3, "{xml}");
    assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
    for task in ["app.conf", "banner", "db.conf"] {
        assert!(xml.contains(&format!("name=\"{task}: ")), "{task}: {xml}");
    }
    assert!(
        !xml.contains("stamp") && !xml.contains("reload app"),
        "{xml}"
    );
    let prom = std::fs::read_to_string(p.path().join("drift.prom")).unwrap();
    let metric = |line: &str| -> f64 {
        prom.lines()
            .find_map(|l| l.strip_prefix(line).map(|v| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("no {line} in:\n{prom}"))
    };
    assert_eq!(metric("apim_provision_drift_resources{host=\"a\"}"), 2.0);
    assert_eq!(metric("apim_provision_drift_resources{host=\"b\"}"), 1.0);
    assert_eq!(
        metric("apim_provision_drift_host_unreachable{host=\"a\"}"),
        0.0
    );
    assert!(metric("apim_provision_last_apply_timestamp_seconds{host=\"b\"}") > 1.6e9);
    assert!(metric("apim_provision_drift_last_run_timestamp_seconds") > 1.6e9);
    metric("apim_provision_drift_last_run_duration_seconds");
    assert!(!p.path().read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".tmp.")));

    for text in [human.all(), j.all(), xml, prom] {
        assert!(!text.contains(SECRET), "a secret leaked:\n{text}");
    }
}

#[test]
fn an_inventory_change_is_drift_since_the_inventory() {
    let p = applied(&["a"]);
    p.local_inventory(
        &["a"],
        &format!(
            "secrets: [db_password]\nvars:\n  port: 8181\n  max: 10\n  db_password: \"{SECRET}\"\n"
        ),
    );
    std::fs::write(p.root("a").join("conf/banner.local"), "other\n").unwrap();
    let r = drift(&p, &["--json"]);
    assert_eq!(r.code, 2, "{}", r.all());
    // A lineinfile's content is not in the record: where it moved is unknown.
    assert_eq!(
        drifted(&r),
        ["a app.conf inventory", "a limits line unknown"]
    );
}

#[test]
fn fix_repairs_only_what_drifted_and_the_next_drift_is_clean() {
    let p = applied(&["a", "b"]);
    let stamps = |h: &str| {
        std::fs::read_to_string(p.root(h).join("stamps"))
            .unwrap()
            .lines()
            .count()
    };
    let reloads = |h: &str| {
        std::fs::read_to_string(p.root(h).join("reloads"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let (stamps_b, reloads_a) = (stamps("b"), reloads("a"));
    std::fs::write(p.root("a").join("conf/app.conf"), "listen = 1\n").unwrap();
    let r = drift(&p, &["--fix"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("Apply:"), "{}", r.stdout);
    assert_eq!(
        std::fs::read_to_string(p.root("a").join("conf/app.conf")).unwrap(),
        "listen = 8080\nname = a\n"
    );
    assert_eq!(
        reloads("a"),
        reloads_a + 1,
        "the handler the fix notified did not run"
    );
    assert_eq!(stamps("b"), stamps_b, "a host without drift was touched");
    let again = drift(&p, &[]);
    assert_eq!(again.code, 0, "{}", again.all());
}

#[test]
fn an_unreachable_host_is_an_error_by_name_and_the_others_are_still_reported() {
    let p = project(&["a"], "");
    let r = p.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 0, "{}", r.all());
    p.write("ssh_config", "Host *\n  ProxyCommand sh -c 'exit 1'\n");
    let mut inv = std::fs::read_to_string(p.path().join("inventory.yaml")).unwrap();
    inv = inv.replace(
        "hosts:\n",
        "ssh: { user: root, ssh_config: ssh_config, known_hosts: known_hosts }\nhosts:\n  gone:\n    address: gone.invalid\n    vars: { root: /nonexistent/gone }\n",
    );
    std::fs::write(p.path().join("inventory.yaml"), inv).unwrap();
    std::fs::write(p.root("a").join("conf/app.conf"), "x\n").unwrap();

    let r = drift(
        &p,
        &["--json", "--junit", "j.xml", "--prometheus", "m.prom"],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(drifted(&r), ["a app.conf host"]);
    assert_eq!(r.summary()["unreachable"], serde_json::json!(["gone"]));
    let err = r.json().into_iter().find(|e| e["type"] == "error").unwrap();
    assert_eq!(
        (&err["host"], &err["unreachable"]),
        (&"gone".into(), &true.into()),
        "{err}"
    );
    let xml = std::fs::read_to_string(p.path().join("j.xml")).unwrap();
    assert!(
        xml.contains("name=\"reach gone\"") && xml.contains("<error"),
        "{xml}"
    );
    let prom = std::fs::read_to_string(p.path().join("m.prom")).unwrap();
    assert!(
        prom.contains("apim_provision_drift_host_unreachable{host=\"gone\"} 1"),
        "{prom}"
    );
    assert!(
        prom.contains("apim_provision_drift_resources{host=\"a\"} 1"),
        "{prom}"
    );
    assert!(
        !prom.contains("apim_provision_drift_resources{host=\"gone\"}"),
        "{prom}"
    );

    let human = drift(&p, &[]);
    assert_eq!(human.code, 1, "{}", human.all());
    assert!(
        human.stdout.contains("unreachable: gone"),
        "{}",
        human.stdout
    );
    assert!(
        human
            .stdout
            .contains("changed on the host since the last apply"),
        "{}",
        human.stdout
    );
}

/// What only follows from a drifted task is pending, not drift: the whole files in a directory removed
/// by hand are planned into the directory the first task makes again (on the host as probed they
/// could not be written). The line, which the host as probed lacks too, is drift of its own.
#[test]
fn what_follows_from_an_earlier_change_is_pending_not_drift() {
    let p = applied(&["a"]);
    std::fs::remove_dir_all(p.root("a").join("conf")).unwrap();
    let r = drift(&p, &["--json"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(drifted(&r), ["a conf dir unknown", "a limits line unknown"]);
    assert_eq!(r.summary()["pending"], 3, "{}", r.stdout);
}

/// A keystore whose certificate another replaced on the host (a product's own, say) is drift whose
/// report names both certificates and the days they expire, in the human report and the JSON `why`,
/// and never the store password.
#[test]
fn a_replaced_keystore_names_both_certificates_and_their_expiry() {
    let p = Project::new();
    p.local_inventory(
        &["a"],
        &format!("secrets: [store_password]\nvars:\n  store_password: \"{SECRET}\"\n"),
    );
    p.write(
        "playbooks/main.yaml",
        r#"
vars:
  pki: "{{ inventory_dir }}/.apim-state/pki"
plays:
  - hosts: all
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: primary keystore
        keystore: { dest: "{{ root }}/wso2carbon.jks", state_dir: "{{ pki }}", name: tls, common_name: a.example, format: jks, password: "{{ store_password }}" }
"#,
    );
    let r = p.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(drift(&p, &[]).code, 0);

    let store = p.root("a").join("wso2carbon.jks");
    std::fs::remove_file(&store).unwrap();
    let out = std::process::Command::new("keytool")
        .args(["-genkeypair", "-alias", "wso2carbon", "-keyalg", "EC"])
        .args(["-dname", "CN=foreign", "-storetype", "JKS"])
        .args(["-startdate", "2030/01/01 12:00:00", "-validity", "10"])
        .args([
            "-storepass:env",
            "T_PW",
            "-keypass:env",
            "T_PW",
            "-keystore",
        ])
        .arg(&store)
        .env("T_PW", SECRET)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let human = drift(&p, &[]);
    assert_eq!(human.code, 2, "{}", human.all());
    let line = human
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("certificate under alias wso2carbon: sha256 "))
        .unwrap_or_else(|| panic!("no certificate line:\n{}", human.stdout));
    assert!(
        line.contains(" (expires 2030-01-11) -> ") && line.matches("(expires ").count() == 2,
        "{line}"
    );
    let j = drift(&p, &["--json"]);
    assert_eq!(drifted(&j), ["a primary keystore unknown"]);
    let why = j
        .json()
        .into_iter()
        .find(|e| e["type"] == "drift")
        .map(|e| e["why"].as_str().unwrap().to_string())
        .unwrap();
    assert!(why.contains(line), "{why}");
    for text in [human.all(), j.all()] {
        assert!(!text.contains(SECRET), "a secret leaked:\n{text}");
    }
}
