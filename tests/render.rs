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
    let secrets: Vec<&str> = wso2::SECRETS.iter().map(|(_, v)| *v).collect();
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

/// Partial edits are applied to what the controller knows of their file: a file a controller archive
/// unpacks (read from the zip), one an earlier template wrote; each edit is listed with the file it
/// leaves, the last one written; a secret value is a placeholder; an edit of a file the controller does
/// not know (the host's own) is not rendered, nor are edits after a `sensitive: true` one.
#[test]
fn partial_edits_apply_to_files_an_archive_or_an_earlier_task_gives() {
    let p = project();
    let pack = p.path().join("pack");
    std::fs::create_dir_all(pack.join("app-1.0/conf")).unwrap();
    std::fs::write(
        pack.join("app-1.0/conf/server.xml"),
        "<server>\n  <!-- the port -->\n  <port>80</port>\n  <!--Host>example</Host-->\n  <key>none</key>\n</server>\n",
    )
    .unwrap();
    let st = std::process::Command::new("zip")
        .args(["-qr", "../app-1.0.zip", "app-1.0"])
        .current_dir(&pack)
        .status()
        .expect("zip");
    assert!(st.success());
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - name: app
    hosts: web
    tasks:
      - name: pack
        unarchive: { src: "{{ inventory_dir }}/app-1.0.zip", dest: /opt, creates: /opt/app-1.0/conf/server.xml }
      - name: port
        xml: { path: /opt/app-1.0/conf/server.xml, xpath: /server/port, value: "{{ app_port }}" }
      - name: host
        xml: { path: /opt/app-1.0/conf/server.xml, xpath: /server/Host, uncomment: true, value: "{{ inventory_hostname }}" }
      - name: key
        xml: { path: /opt/app-1.0/conf/server.xml, xpath: /server/key, value: "{{ api_key }}" }
      - name: env
        template: { src: app.conf.j2, dest: /etc/app/app.conf }
      - name: env extra
        lineinfile: { path: /etc/app/app.conf, line: "extra = 1" }
      - name: hosts
        lineinfile: { path: /etc/hosts, line: "10.0.0.1 db" }
      - name: hidden
        sensitive: true
        lineinfile: { path: /etc/app/app.conf, line: "hidden = 1" }
      - name: after hidden
        lineinfile: { path: /etc/app/app.conf, line: "more = 1" }
"#,
    );
    let r = render(&p, "out", &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!p.path().join("contacted").exists(), "a host was contacted");
    let out = p.path().join("out");
    assert_eq!(
        read(&out, "h1/opt/app-1.0/conf/server.xml"),
        "<server>\n  <!-- the port -->\n  <port>8080</port>\n  <Host>h1</Host>\n  <key>(sensitive)</key>\n</server>\n"
    );
    let idx = index(&out);
    assert_eq!(entry(&idx, "h1", "key")["status"], "written");
    assert_eq!(entry(&idx, "h1", "key")["sensitive"], true);
    let port = entry(&idx, "h1", "port");
    assert_eq!(port["status"], "not written");
    assert!(
        port["why"].as_str().unwrap().contains("task `host`")
            && port["why"].as_str().unwrap().contains("edits it later"),
        "{port}"
    );
    // The template's file, edited once; the edit marked sensitive: true is not shown, and what follows
    // it cannot be told.
    assert_eq!(
        entry(&idx, "h1", "env extra")["status"],
        "not written",
        "{idx}"
    );
    assert_eq!(entry(&idx, "h1", "hidden")["status"], "not written");
    assert!(!out.join("h1/etc/app/app.conf").exists());
    for t in ["hosts", "after hidden"] {
        assert!(
            idx["hosts"]["h1"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["task"] != t),
            "{t} rendered: {idx}"
        );
    }
    let text = read(&out, "h2/opt/app-1.0/conf/server.xml");
    assert!(
        text.contains("<Host>h2</Host>") && !text.contains(API_KEY),
        "{text}"
    );
}
