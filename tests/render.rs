//! `render`: every file the copy/template tasks would write, under `DIR/<host>/<dest>`, with an index,
//! secrets as `(sensitive)`, registered results as `(known after apply)`, and no host touched.

mod common;
use common::{Project, Run};
use std::path::Path;
use std::time::{Duration, Instant};

const PASSWORD: &str = "Hunter2-very-secret";
const API_KEY: &str = "key-0123456789abcdef";
const PIN: &str = "x7q"; // too short for the masker's substring match: the placeholder must hide it

/// Two SSH hosts whose connection can only fail: their ssh_config's ProxyCommand leaves a marker file
/// and exits 1. A render that tried to reach them would fail, and leave the marker.
fn project() -> Project {
    let p = Project::new();
    let marker = p.path().join("contacted");
    p.write(
        "ssh_config",
        &format!(
            "Host *\n  ProxyCommand sh -c 'touch {}; exit 1'\n",
            marker.display()
        ),
    );
    p.write(
        "inventory.yaml",
        &format!(
            r#"playbook: playbooks/main.yaml
ssh: {{ user: root, ssh_config: ssh_config, known_hosts: known_hosts }}
secrets: [api_key, pin]
vars:
  db_password: "{PASSWORD}"
  api_key: "{API_KEY}"
  pin: "{PIN}"
  app_port: 8080
hosts:
  h1: {{ address: h1.invalid }}
  h2: {{ address: h2.invalid }}
groups:
  web: {{ hosts: [h1, h2] }}
"#
        ),
    );
    p.write(
        "playbooks/templates/app.conf.j2",
        "[server]\nport = {{ app_port }}\nhost = \"{{ inventory_hostname }}\"\n\n[database]\n\
         password = \"{{ db_password }}\"\nshout = \"{{ db_password | upper }}\"\nkey = \"{{ api_key }}\"\npin = \"{{ pin }}\"\n",
    );
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - name: ident
    hosts: all
    tasks:
      - name: read id
        slurp: { path: /etc/hostname }
        register: ident
  - name: conf
    hosts: web
    tasks:
      - name: app config
        template: { src: app.conf.j2, dest: /opt/app/conf/app.conf, mode: "0640", owner: app, group: app, format: toml }
      - name: plain
        copy: { dest: /etc/app/plain.txt, content: "hello {{ inventory_hostname }}\n" }
      - name: never
        when: false
        copy: { dest: /etc/app/never.txt, content: "never\n" }
      - name: peers
        depends_on: [{ task: read id, hosts: all }]
        copy:
          dest: /etc/app/peers
          content: "{% for h in groups['all'] %}{{ h }} {{ registered[h].ident.content | trim }}\n{% endfor %}"
      - name: maybe
        when: "ident.content != ''"
        copy: { dest: /etc/app/maybe, content: "x\n" }
      - name: key
        copy: { dest: /etc/app/key.pem, content: "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n" }
      - name: marked
        sensitive: true
        copy: { dest: /etc/app/marked, content: "literal\n" }
"#,
    );
    p
}

fn render(p: &Project, out: &str, extra: &[&str]) -> Run {
    let mut args = vec!["render", "inventory.yaml", "--out", out, "--no-color"];
    args.extend_from_slice(extra);
    p.run(&args)
}

fn index(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("index.json")).expect("index.json");
    serde_json::from_str(&text).expect("index.json is JSON")
}

/// The index entry of `task` on `host`.
fn entry(idx: &serde_json::Value, host: &str, task: &str) -> serde_json::Value {
    idx["hosts"][host]
        .as_array()
        .unwrap_or_else(|| panic!("no host {host} in {idx}"))
        .iter()
        .find(|e| e["task"] == task)
        .unwrap_or_else(|| panic!("no task {task} on {host} in {idx}"))
        .clone()
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Nothing next to `out` but `out` itself: no temp or old tree left behind.
fn no_leftovers(p: &Project) {
    let left: Vec<String> = std::fs::read_dir(p.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".render-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn renders_every_file_with_placeholders_and_an_index_touching_no_host() {
    let p = project();
    let started = Instant::now();
    let r = render(&p, "out", &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "render took {:?}",
        started.elapsed()
    );
    assert_eq!(
        r.stdout.trim(),
        "Rendered 6 files for 2 hosts in out (4 not written, 2 skipped, 2 undecided: see out/index.json)."
    );
    assert!(!p.path().join("contacted").exists(), "a host was contacted");
    let out = p.path().join("out");
    let mut want = vec!["index.json".to_string()];
    for h in ["h1", "h2"] {
        for f in [
            "etc/app/peers",
            "etc/app/plain.txt",
            "opt/app/conf/app.conf",
        ] {
            want.push(format!("{h}/{f}"));
        }
    }
    want.sort();
    assert_eq!(tree(&out), want);

    assert_eq!(
        read(&out, "h2/opt/app/conf/app.conf"),
        "[server]\nport = 8080\nhost = \"h2\"\n\n[database]\npassword = \"(sensitive)\"\n\
         shout = \"(SENSITIVE)\"\nkey = \"(sensitive)\"\npin = \"(sensitive)\"\n"
    );
    assert_eq!(read(&out, "h1/etc/app/plain.txt"), "hello h1\n");
    assert_eq!(
        read(&out, "h1/etc/app/peers"),
        "h1 (known after apply)\nh2 (known after apply)\n"
    );
    for f in tree(&out) {
        let text = read(&out, &f);
        for secret in [
            PASSWORD,
            API_KEY,
            &PASSWORD.to_uppercase(),
            PIN,
            "literal",
            "MIIE",
        ] {
            assert!(!text.contains(secret), "`{secret}` in {f}:\n{text}");
        }
    }

    let idx = index(&out);
    let conf = entry(&idx, "h1", "app config");
    assert_eq!(conf["status"], "written");
    assert_eq!(conf["file"], "h1/opt/app/conf/app.conf");
    assert_eq!(conf["dest"], "/opt/app/conf/app.conf");
    assert_eq!(conf["location"], "playbooks/main.yaml:12");
    assert_eq!(conf["type"], "template");
    assert_eq!(
        (&conf["mode"], &conf["owner"], &conf["group"]),
        (&"0640".into(), &"app".into(), &"app".into())
    );
    assert_eq!(conf["sensitive"], true);
    assert_eq!(entry(&idx, "h1", "plain")["sensitive"], false);
    assert_eq!(entry(&idx, "h1", "peers")["known_after_apply"], true);
    let never = entry(&idx, "h1", "never");
    assert_eq!(
        (&never["status"], &never["dest"]),
        (&"skipped".into(), &serde_json::Value::Null)
    );
    let maybe = entry(&idx, "h2", "maybe");
    assert_eq!(maybe["status"], "undecided", "{maybe}");
    assert!(
        maybe["why"].as_str().unwrap().contains("registered"),
        "{maybe}"
    );
    let key = entry(&idx, "h1", "key");
    assert_eq!(
        (&key["status"], &key["why"]),
        (&"not written".into(), &"key material".into())
    );
    assert_eq!(key["dest"], "/etc/app/key.pem");
    assert_eq!(entry(&idx, "h1", "marked")["status"], "not written");
    assert!(idx["hosts"]["h1"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["type"] != "slurp"));
    no_leftovers(&p);

    // The control: the same hosts through ssh do reach the marker, so its absence above means something.
    if std::process::Command::new("ssh").arg("-V").output().is_ok() {
        let st = std::process::Command::new("ssh")
            .args([
                "-F",
                "ssh_config",
                "-o",
                "BatchMode=yes",
                "h1.invalid",
                "true",
            ])
            .current_dir(p.path())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!st.success());
        assert!(
            p.path().join("contacted").exists(),
            "the ProxyCommand never ran"
        );
    }
}

#[test]
fn limit_selects_the_hosts_rendered() {
    let p = project();
    let r = render(&p, "out", &["--limit", "h2"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let out = p.path().join("out");
    assert!(
        tree(&out).iter().all(|f| !f.starts_with("h1/")),
        "{:?}",
        tree(&out)
    );
    assert!(out.join("h2/etc/app/plain.txt").is_file());
    let idx = index(&out);
    assert!(idx["hosts"].get("h1").is_none(), "{idx}");
    assert!(r.stdout.contains("for 1 hosts"), "{}", r.stdout);
}

#[test]
fn a_foreign_directory_is_refused_and_an_earlier_render_is_replaced() {
    let p = project();
    p.write("mine/notes.txt", "keep me\n");
    let r = render(&p, "mine", &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("--out mine exists, is not empty and was not made by render"),
        "{}",
        r.stderr
    );
    assert_eq!(read(&p.path().join("mine"), "notes.txt"), "keep me\n");
    assert_eq!(tree(&p.path().join("mine")), vec!["notes.txt"]);
    p.write("afile", "x\n");
    let r = render(&p, "afile", &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("is not a directory"), "{}", r.stderr);

    // An empty directory is fine; rendering again into an earlier render replaces its whole content.
    std::fs::create_dir(p.path().join("out")).unwrap();
    assert_eq!(render(&p, "out", &[]).code, 0);
    p.write("out/h1/stale.txt", "from before\n");
    let r = render(&p, "out", &["--limit", "h1"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let out = p.path().join("out");
    assert!(!out.join("h1/stale.txt").exists());
    assert!(!out.join("h2").exists());
    assert!(out.join("h1/etc/app/plain.txt").is_file());
    no_leftovers(&p);
}

#[test]
fn a_failed_render_keeps_the_previous_tree_and_errors_name_the_place() {
    let p = project();
    assert_eq!(render(&p, "out", &[]).code, 0);
    let before = tree(&p.path().join("out"));
    // Two tasks whose files cannot both exist: one writes /etc/app/plain.txt, the other a file under it.
    let pb = std::fs::read_to_string(p.path().join("playbooks/main.yaml")).unwrap();
    p.write(
        "playbooks/main.yaml",
        &format!(
            "{pb}      - name: under a file\n        copy: {{ dest: /etc/app/plain.txt/x, content: \"y\\n\" }}\n"
        ),
    );
    let r = render(&p, "out", &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("playbooks/main.yaml:32: task `under a file`"),
        "{}",
        r.stderr
    );
    assert_eq!(tree(&p.path().join("out")), before);
    no_leftovers(&p);

    // An input error is reported like every verb reports it, before anything is written.
    p.write("playbooks/templates/app.conf.j2", "port = {{ app_prot }}\n");
    let r = render(&p, "fresh", &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("playbooks/main.yaml:12"), "{}", r.stderr);
    assert!(r.stderr.contains("app_prot"), "{}", r.stderr);
    assert!(!p.path().join("fresh").exists());
}

#[test]
fn the_active_active_example_renders_each_nodes_deployment_toml() {
    use common::wso2;
    let p = wso2::project("inventory/lab-active-active.yaml", |s| s);
    let pack = p.path().join("pack");
    std::fs::create_dir(&pack).unwrap();
    let zip = wso2::build_pack(&pack);
    wso2::ensure_driver();
    let vars = wso2::pack_vars(&pack, &zip);
    let r = wso2::run(
        &p,
        "inventory/lab-active-active.yaml",
        "render",
        &vars,
        &["--out", "out"],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let out = p.path().join("out");
    let toml = read(&out, "h2/opt/wso2am-4.2.0/repository/conf/deployment.toml");
    assert!(toml.contains("[server]"), "{toml}");
    assert!(toml.contains("password = \"(sensitive)\""), "{toml}");
    assert!(out.join("h4/etc/nginx/nginx.conf").is_file());
    let inv = std::fs::read_to_string(p.path().join("inventory/lab-active-active.yaml")).unwrap();
    let secrets: Vec<&str> = inv
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("wso2_")
                .filter(|l| l.contains("_password:"))
        })
        .map(|l| l.split('"').nth(1).expect("a quoted password"))
        .collect();
    assert_eq!(secrets.len(), 4, "{secrets:?}");
    for f in tree(&out) {
        let text = String::from_utf8_lossy(&std::fs::read(out.join(&f)).unwrap()).into_owned();
        for s in &secrets {
            assert!(!text.contains(s), "`{s}` in {f}");
        }
    }
    assert!(
        !p.path().join("inventory/.apim-state").exists(),
        "render wrote controller state"
    );
}
