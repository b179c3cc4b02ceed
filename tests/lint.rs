//! `lint`: every weakness the deliberately weak inventories under tests/fixtures/lint hold is reported
//! at its file:line, with its severity; the example inventories report nothing but what is true of
//! them (a single database host and load balancer, as info): their secrets are references, and
//! literals in their place would be found. `plan` prints the findings first and fails on them only with `--strict`.

mod common;
use common::wso2::{build_pack, repo};
use common::Project;
use std::collections::BTreeSet;
use std::path::Path;

type Seen = BTreeSet<(String, String, String, u64)>;

/// `(severity, check, file, line)` of every finding of a `lint --json` run.
fn findings(out: &str) -> Seen {
    let v: serde_json::Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_string(),
                f["check"].as_str().unwrap().to_string(),
                f["file"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn want(list: &[(&str, &str, &str, u64)]) -> Seen {
    list.iter()
        .map(|(s, c, f, l)| (s.to_string(), c.to_string(), f.to_string(), *l))
        .collect()
}

/// A project with the shipped playbooks and modules, the stand-in pack, and an empty home.
fn wso2_project() -> Project {
    let p = Project::new();
    for d in ["playbooks", "modules"] {
        std::os::unix::fs::symlink(repo().join(d), p.path().join(d)).unwrap();
    }
    build_pack(&p.path().join("inventory/files"));
    std::fs::create_dir_all(p.path().join("home")).unwrap();
    p
}

fn fixture(rel: &str) -> String {
    std::fs::read_to_string(repo().join("tests/fixtures/lint").join(rel)).unwrap()
}

fn lint(p: &Project, args: &[&str], home: &str) -> common::Run {
    let home = p.path().join(home);
    let mut all = vec!["lint"];
    all.extend_from_slice(args);
    p.run_env(&all, &[("HOME", home.to_str().unwrap())])
}

#[test]
fn a_weak_wso2_inventory_reports_each_weakness_at_its_line() {
    let p = wso2_project();
    p.write("inventory/weak.yaml", &fixture("wso2/weak.yaml"));
    p.write("inventory/ssh_config", &fixture("wso2/ssh_config"));
    let r = lint(&p, &["inventory/weak.yaml", "--json"], "home");
    assert_eq!(r.code, 1, "default credentials are errors: {}", r.all());
    let inv = "inventory/weak.yaml";
    assert_eq!(
        findings(&r.stdout),
        want(&[
            ("error", "default-credential", inv, 11),
            ("error", "default-credential", inv, 12),
            ("error", "default-credential", inv, 13),
            ("warning", "literal-secret", inv, 10),
            ("warning", "literal-secret", inv, 11),
            ("warning", "literal-secret", inv, 12),
            ("warning", "literal-secret", inv, 13),
            ("warning", "any-host-grant", inv, 15),
            // The keystores and the load balancer's key are issued for wso2_portal_hostname.
            (
                "warning",
                "tls-localhost",
                "modules/wso2_keystores/tasks.yaml",
                1
            ),
            (
                "warning",
                "tls-localhost",
                "modules/wso2_keystores/tasks.yaml",
                19
            ),
            (
                "warning",
                "tls-localhost",
                "modules/nginx_lb/tasks.yaml",
                14
            ),
            (
                "warning",
                "tls-localhost",
                "modules/nginx_lb/tasks.yaml",
                26
            ),
            // The `Host 10.0.0.*` and `Host 10.0.0.14` blocks; not `Host elsewhere.example`.
            ("warning", "ssh-host-key", "inventory/ssh_config", 7),
            ("warning", "ssh-host-key", "inventory/ssh_config", 10),
            ("info", "single-point-of-failure", inv, 25),
            ("info", "single-point-of-failure", inv, 27),
        ]),
        "{}",
        r.stdout
    );
    // No secret value is shown, not even a default one; each finding says why and how to fix it.
    let human = lint(&p, &["inventory/weak.yaml", "--no-color"], "home");
    assert_eq!(human.code, 1);
    for secret in ["Db-pass-1", "wso2carbon"] {
        assert!(
            !human.all().contains(secret),
            "{secret} shown:\n{}",
            human.all()
        );
        assert!(!r.all().contains(secret), "{secret} in JSON:\n{}", r.all());
    }
    assert!(
        human
            .stdout
            .contains("inventory/weak.yaml:15: `wso2_db_client_host` is `%`"),
        "{}",
        human.stdout
    );
    assert_eq!(
        human.stdout.matches("\n  fix: ").count(),
        16,
        "{}",
        human.stdout
    );
    // --strict makes the literal secrets errors.
    let strict = lint(&p, &["inventory/weak.yaml", "--json", "--strict"], "home");
    assert_eq!(strict.code, 1);
    assert!(findings(&strict.stdout).contains(&(
        "error".into(),
        "literal-secret".into(),
        inv.into(),
        10
    )));
    // plan --strict refuses before touching any host (the addresses are not reachable from here).
    let plan = p.run_env(
        &["plan", "inventory/weak.yaml", "--strict", "--no-color"],
        &[("HOME", p.path().join("home").to_str().unwrap())],
    );
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(
        plan.stderr
            .contains("error[default-credential]: inventory/weak.yaml:11"),
        "{}",
        plan.stderr
    );
    assert!(
        plan.stderr.contains("nothing was planned"),
        "{}",
        plan.stderr
    );
}

/// A self-signed certificate for `cn` valid for `days` more days, as PEM.
fn certificate(cn: &str, days: i64) -> String {
    let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

#[test]
fn the_engines_own_checks_need_no_product_knowledge() {
    let p = Project::new();
    for f in [
        "weak.yaml",
        "playbook.yaml",
        "modules/app_secret/tasks.yaml",
        "home/.ssh/config",
    ] {
        p.write(f, &fixture(&format!("engine/{f}")));
    }
    p.write("certs/localhost.pem", &certificate("localhost", 3650));
    p.write("certs/expiring.pem", &certificate("app.example", 10));
    p.set_env("APP_TOKEN", "token-from-env");
    let r = lint(&p, &["weak.yaml", "--json"], "home");
    assert_eq!(r.code, 0, "warnings only: {}", r.all());
    let home_config = p.path().join("home/.ssh/config");
    assert_eq!(
        findings(&r.stdout),
        want(&[
            ("warning", "literal-secret", "weak.yaml", 7),
            ("warning", "tls-localhost", "weak.yaml", 9),
            ("warning", "tls-expiry", "weak.yaml", 10),
            ("warning", "ssh-host-key", "weak.yaml", 12),
            // ~/.ssh/config's `Host 192.0.2.2` block (a2); not its `Host 198.51.100.*`.
            ("warning", "ssh-host-key", home_config.to_str().unwrap(), 3),
            // The token file, not the README beside it.
            (
                "warning",
                "world-readable",
                "modules/app_secret/tasks.yaml",
                1
            ),
        ]),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("s3cret"), "{}", r.stdout);
    assert_eq!(lint(&p, &["weak.yaml", "--strict"], "home").code, 1);
}

/// The example inventories in a project with the stand-in pack.
fn examples() -> (Project, Vec<String>) {
    let p = wso2_project();
    let mut names = Vec::new();
    for e in std::fs::read_dir(repo().join("inventory")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "yaml") {
            let rel = format!("inventory/{}", path.file_name().unwrap().to_str().unwrap());
            p.write(&rel, &std::fs::read_to_string(&path).unwrap());
            names.push(rel);
        }
    }
    names.sort();
    let mut entries = common::wso2::SECRETS.to_vec();
    entries.push(("admin_password", "demo-Admin-pass-1"));
    p.seal_secrets("inventory/secrets.age", &entries);
    (p, names)
}

#[test]
fn the_examples_report_nothing_but_their_single_hosts() {
    let (p, names) = examples();
    assert!(names.len() >= 7, "{names:?}");
    for inv in &names {
        let r = lint(&p, &[inv, "--json", "--strict"], "home");
        assert_eq!(r.code, 0, "{inv}: {}", r.all());
        let seen = findings(&r.stdout);
        for f in &seen {
            assert_eq!(
                (f.0.as_str(), f.1.as_str()),
                ("info", "single-point-of-failure"),
                "{inv}: {}",
                r.stdout
            );
        }
        if inv.contains("lab-") {
            assert_eq!(
                seen.len(),
                2,
                "{inv}: one database host, one load balancer: {}",
                r.stdout
            );
        } else {
            assert!(seen.is_empty(), "{inv}: {}", r.stdout);
        }
    }
}

/// `text` with each reference to an entry of the secrets file replaced by a literal password.
fn with_literals(text: &str) -> String {
    text.lines()
        .map(|l| match l.split_once(": { secret:") {
            Some((k, _)) => format!("{k}: \"literal-pass-1\""),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_examples_secrets_are_references_and_literals_in_their_place_are_found() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo().join("playbooks"), dir.path().join("playbooks")).unwrap();
    for e in std::fs::read_dir(repo().join("inventory")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let inv = apim_provision::model::Inventory::load(&path).unwrap();
        let found = apim_provision::lint::literal_secrets(&inv, true);
        assert!(found.is_empty(), "{}: {found:?}", path.display());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("{ secret:"), "{}", path.display());
        // The same check sees literals written where the references are.
        let copy = dir.path().join(path.file_name().unwrap());
        std::fs::write(&copy, with_literals(&text)).unwrap();
        let raw = apim_provision::model::Inventory::load(&copy).unwrap();
        assert!(
            !apim_provision::lint::literal_secrets(&raw, false).is_empty(),
            "{}",
            copy.display()
        );
    }
}

#[test]
fn plan_prints_the_findings_first_and_fails_on_them_only_when_strict() {
    let p = Project::new();
    p.write(
        "inventory.yaml",
        "playbook: site.yaml\nvars:\n  db_password: \"literal-1\"\nhosts:\n  h: { connection: local }\n",
    );
    let dest = p.path().join("pw");
    p.write(
        "site.yaml",
        &format!(
            "plays:\n  - hosts: all\n    tasks:\n      - name: pw\n        copy: {{ dest: {}, content: \"{{{{ db_password }}}}\", mode: \"0600\" }}\n",
            dest.display()
        ),
    );
    let plan = p.run(&["plan", "inventory.yaml", "--no-color"]);
    assert_eq!(plan.code, 2, "the plan's own exit code: {}", plan.all());
    assert!(
        plan.stderr
            .contains("warning[literal-secret]: inventory.yaml:3"),
        "{}",
        plan.stderr
    );
    assert!(!plan.all().contains("literal-1"), "{}", plan.all());
    let strict = p.run(&["plan", "inventory.yaml", "--strict", "--no-color"]);
    assert_eq!(strict.code, 1, "{}", strict.all());
    assert!(!Path::new(&dest).exists());
}
