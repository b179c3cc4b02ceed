//! The engine on real hosts of the lab (systemd-nspawn containers in network namespaces) over SSH:
//! packages through the lab proxy, files, templates, systemd services, cross-host waits, and faults.

mod common;
use common::{lab, Project};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn project(playbook: &str) -> Project {
    let p = Project::new();
    p.write("playbooks/main.yaml", playbook);
    p
}

fn args<'a>(inv: &'a str, cmd: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![cmd, inv, "--playbook", "playbooks/main.yaml", "--no-color"];
    v.extend_from_slice(extra);
    v
}

const SERVICES: &str = r#"
plays:
  - name: base
    hosts: h1,h2,h3
    tasks:
      - name: tree
        package: { name: tree }
      - name: app dir
        file: { path: /opt/apim-lab-test, state: directory, mode: "0755" }
      - name: app.conf
        template: { src: app.conf.j2, dest: /opt/apim-lab-test/app.conf, mode: "0640" }
        notify: restart demo
      - name: demo unit
        copy:
          dest: /etc/systemd/system/apim-demo.service
          content: |
            [Unit]
            Description=apim-provision lab demo
            [Service]
            ExecStart=/bin/sleep infinity
            [Install]
            WantedBy=multi-user.target
        notify: restart demo
      - name: demo service
        service: { name: apim-demo, state: started, enabled: true, daemon_reload: true }
    handlers:
      - name: restart demo
        service: { name: apim-demo, state: restarted, daemon_reload: true }
  - name: web
    hosts: h1
    tasks:
      - name: nginx
        package: { name: nginx-light }
      - name: start nginx
        service: { name: nginx, state: started, enabled: true }
  - name: clients
    hosts: h2,h3
    tasks:
      - name: wait for web on h1
        depends_on: [{ task: start nginx, hosts: h1 }]
        wait_for: { host: "{{ hostvars['h1'].ansible_host }}", port: 80, timeout: 60 }
      - name: saw web
        copy: { dest: /opt/apim-lab-test/web, content: "h1 answered\n" }
"#;

#[test]
fn plan_apply_plan_over_ssh_with_packages_services_and_a_cross_host_wait() {
    let Some((_lab, inv)) = lab::acquire() else {
        return;
    };
    let inv = inv.display().to_string();
    let p = project(SERVICES);
    p.write(
        "playbooks/templates/app.conf.j2",
        "host = {{ inventory_hostname }}\naddress = {{ ansible_host }}\n",
    );
    for h in ["h1", "h2", "h3"] {
        // Purged, not removed: a WSO2 topology test may have left its own nginx.conf (conffiles survive a
        // remove), which serves no port 80.
        lab::ssh(h, "systemctl disable --now apim-demo nginx 2>/dev/null; rm -rf /opt/apim-lab-test /etc/systemd/system/apim-demo.service; apt-get purge -y -q tree nginx-light nginx-common >/dev/null 2>&1; systemctl daemon-reload; true");
    }
    let plan = p.run(&args(&inv, "plan", &[]));
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(
        plan.stdout.contains("install tree") || plan.stdout.contains("tree"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("+host = h2"), "{}", plan.stdout);

    let apply = p.run(&args(&inv, "apply", &["--json"]));
    assert_eq!(apply.code, 0, "{}", apply.all());
    for h in ["h1", "h2", "h3"] {
        assert_eq!(lab::ssh(h, "tree -d /opt/apim-lab-test >/dev/null && systemctl is-active apim-demo && systemctl is-enabled apim-demo").0, 0, "{h}");
        assert_eq!(
            std::fs::read_to_string(lab::on_disk(h, "/opt/apim-lab-test/app.conf")).unwrap(),
            format!("host = {h}\naddress = 10.231.0.1{}\n", &h[1..])
        );
    }
    assert_eq!(lab::ssh("h1", "systemctl is-active nginx").0, 0);
    assert_eq!(
        std::fs::read_to_string(lab::on_disk("h2", "/opt/apim-lab-test/web")).unwrap(),
        "h1 answered\n"
    );
    // The clients' wait started only after h1's nginx task finished.
    let events = apply.json();
    let pos = |h: &str, t: &str| {
        events
            .iter()
            .position(|e| e["host"] == h && e["task"] == t)
            .unwrap()
    };
    assert!(pos("h2", "wait for web on h1") > pos("h1", "start nginx"));
    assert!(pos("h3", "wait for web on h1") > pos("h1", "start nginx"));

    let since = lab::ssh(
        "h2",
        "systemctl show -p ActiveEnterTimestampMonotonic --value apim-demo",
    )
    .1;
    let again = p.run(&args(&inv, "plan", &[]));
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(
        again.stdout.contains("Plan: 0 to add, 0 to change"),
        "{}",
        again.stdout
    );
    let reapply = p.run(&args(&inv, "apply", &[]));
    assert_eq!(reapply.code, 0, "{}", reapply.all());
    assert_eq!(
        lab::ssh(
            "h2",
            "systemctl show -p ActiveEnterTimestampMonotonic --value apim-demo"
        )
        .1,
        since,
        "a no-op apply restarted the service"
    );

    // One changed template restarts the service on that host only.
    p.write(
        "playbooks/templates/app.conf.j2",
        "host = {{ inventory_hostname }}\naddress = {{ ansible_host }}\nextra = 1\n",
    );
    let apply = p.run(&args(&inv, "apply", &["--limit", "h2"]));
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_ne!(
        lab::ssh(
            "h2",
            "systemctl show -p ActiveEnterTimestampMonotonic --value apim-demo"
        )
        .1,
        since,
        "the handler did not restart"
    );
}

#[test]
fn no_ssh_process_is_left_after_apply() {
    let Some((_lab, inv)) = lab::acquire() else {
        return;
    };
    let inv = inv.display().to_string();
    let p = project("plays:\n  - hosts: lab\n    tasks:\n      - copy: { dest: /tmp/apim-leak-check, content: x }\n");
    let bin = env!("CARGO_BIN_EXE_apim-provision");
    let mut child = Command::new(bin)
        .args(args(&inv, "apply", &[]))
        .current_dir(p.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mine = format!("apim-provision-ssh-{}", child.id());
    assert!(child.wait().unwrap().success());
    let ps = Command::new("ps")
        .args(["-eo", "pid,args"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    let left: Vec<&str> = ps.lines().filter(|l| l.contains(&mine)).collect();
    assert!(
        !std::env::temp_dir().join(&mine).exists(),
        "control directory {mine} left behind"
    );
    assert!(
        left.is_empty(),
        "ssh processes left behind:\n{}",
        left.join("\n")
    );
}

#[test]
fn a_host_cut_off_mid_apply_fails_its_tasks_skips_dependents_and_converges_after_heal() {
    let Some((_lab, inv)) = lab::acquire() else {
        return;
    };
    let inv = inv.display().to_string();
    let p = project(
        r#"
plays:
  - name: prepare
    hosts: h1,h2,h3
    tasks:
      - file: { path: /opt/fault, state: directory }
  - name: slow
    hosts: h2
    tasks:
      - name: slow step
        shell: { cmd: "touch /opt/fault/started; sleep 6; touch /opt/fault/slow", creates: /opt/fault/slow }
      - name: after slow
        copy: { dest: /opt/fault/after, content: "x" }
  - name: dependent
    hosts: h3
    tasks:
      - name: needs h2
        depends_on: [{ task: after slow, hosts: h2 }]
        copy: { dest: /opt/fault/dependent, content: "x" }
  - name: independent
    hosts: h1
    tasks:
      - name: standalone
        shell: { cmd: "sleep 2; touch /opt/fault/standalone", creates: /opt/fault/standalone }
"#,
    );
    for h in ["h1", "h2", "h3"] {
        lab::ssh(h, "rm -rf /opt/fault");
    }
    let bin = env!("CARGO_BIN_EXE_apim-provision");
    let child = Command::new(bin)
        .args(args(&inv, "apply", &["--json"]))
        .current_dir(p.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lab::on_disk("h2", "/opt/fault/started").exists() {
        assert!(Instant::now() < deadline, "the slow step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    lab::lab(&["fault", "h2", "cut"]);
    let out = child.wait_with_output().unwrap();
    lab::lab(&["fault", "h2", "heal"]);
    let r = common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(r.code, 1, "{}", r.all());
    let slow = r.event("h2", "slow step");
    assert_eq!(slow["status"], "failed", "{slow}");
    assert!(
        slow["message"]
            .as_str()
            .unwrap()
            .contains("connection to h2 failed"),
        "{slow}"
    );
    assert_eq!(r.event("h2", "after slow")["status"], "skipped_dependency");
    assert_eq!(r.event("h3", "needs h2")["status"], "skipped_dependency");
    assert_eq!(r.event("h1", "standalone")["status"], "changed");
    assert!(lab::on_disk("h1", "/opt/fault/standalone").exists());

    let again = p.run(&args(&inv, "apply", &[]));
    assert_eq!(again.code, 0, "after heal: {}", again.all());
    assert!(lab::on_disk("h3", "/opt/fault/dependent").exists());
    let plan = p.run(&args(&inv, "plan", &[]));
    assert_eq!(plan.code, 0, "{}", plan.all());
}

#[test]
fn a_host_killed_while_a_file_is_written_keeps_the_old_or_the_new_file() {
    let Some((_lab, inv)) = lab::acquire() else {
        return;
    };
    let inv = inv.display().to_string();
    let p = project("plays:\n  - hosts: h4\n    tasks:\n      - file: { path: /opt/torn, state: directory }\n      - name: big\n        copy: { dest: /opt/torn/big, src: big.bin }\n");
    let old = vec![b'o'; 1024];
    p.write("playbooks/files/big.bin", "");
    std::fs::write(p.path().join("playbooks/files/big.bin"), &old).unwrap();
    lab::ssh("h4", "rm -rf /opt/torn");
    assert_eq!(p.run(&args(&inv, "apply", &[])).code, 0);
    let new: Vec<u8> = (0..96u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(p.path().join("playbooks/files/big.bin"), &new).unwrap();

    let bin = env!("CARGO_BIN_EXE_apim-provision");
    let mut child = Command::new(bin)
        .args(args(&inv, "apply", &[]))
        .current_dir(p.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dir = lab::on_disk("h4", "/opt/torn");
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed_mid_write = loop {
        let tmp = std::fs::read_dir(&dir).unwrap().flatten().find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".big.apim-provision.tmp.")
        });
        if let Some(t) = tmp {
            if t.metadata().map(|m| m.len() > 0).unwrap_or(false) {
                lab::lab(&["fault", "h4", "kill"]);
                break true;
            }
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = child.wait();
    lab::lab(&["fault", "h4", "start"]);
    assert!(
        killed_mid_write,
        "the write finished before the kill could land; the test proved nothing"
    );
    let got = std::fs::read(lab::on_disk("h4", "/opt/torn/big")).unwrap();
    assert!(got == old || got == new, "torn file: {} bytes", got.len());
    lab::lab(&["up", "4"]);
    assert_eq!(p.run(&args(&inv, "apply", &[])).code, 0);
    assert_eq!(
        std::fs::read(lab::on_disk("h4", "/opt/torn/big")).unwrap(),
        new
    );
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "big")
        .collect();
    assert!(
        left.is_empty(),
        "temp files left after the next run: {left:?}"
    );
}

#[test]
fn ssh_config_aliases_and_become_for_a_non_root_user() {
    let Some((_lab, inv)) = lab::acquire() else {
        return;
    };
    let inv = inv.display().to_string();
    let key = std::fs::read_to_string(lab::dir().join("id_ed25519.pub")).unwrap();
    // As root: a deploy user with the lab key and passwordless sudo.
    let p = project(&format!(
        r#"
plays:
  - hosts: h1
    tasks:
      - name: deploy user
        user: {{ name: deploy, shell: /bin/bash }}
      - file: {{ path: /home/deploy/.ssh, state: directory, owner: deploy, group: deploy, mode: "0700" }}
      - copy: {{ dest: /home/deploy/.ssh/authorized_keys, content: "{}", owner: deploy, group: deploy, mode: "0600" }}
      - copy: {{ dest: /etc/sudoers.d/deploy, content: "deploy ALL=(ALL) NOPASSWD: ALL\n", mode: "0440", validate: "visudo -cf %s" }}
"#,
        key.trim()
    ));
    let r = p.run(&args(&inv, "apply", &[]));
    assert_eq!(r.code, 0, "{}", r.all());

    // As deploy, through the lab's ssh_config alias `h1` (no address in the inventory), becoming root.
    let dir = lab::dir();
    p.write(
        "deploy.yaml",
        &format!(
            "playbook: playbooks/root-only.yaml\nssh:\n  user: deploy\n  ssh_config: {}\nhosts:\n  h1:\n    become: true\n",
            dir.join("ssh_config").display()
        ),
    );
    p.write("playbooks/root-only.yaml", "plays:\n  - hosts: all\n    tasks:\n      - name: root file\n        copy: { dest: /root/apim-become, content: \"as root\\n\", mode: \"0600\" }\n");
    let r = p.run(&["apply", "deploy.yaml", "--no-color"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        lab::ssh("h1", "stat -c %U /root/apim-become").1.trim(),
        "root"
    );
    // Without become the same write is refused: the user really is unprivileged.
    p.write(
        "deploy.yaml",
        &format!("playbook: playbooks/root-only.yaml\nssh:\n  user: deploy\n  ssh_config: {}\nhosts:\n  h1: {{}}\n", dir.join("ssh_config").display()),
    );
    lab::ssh("h1", "rm -f /root/apim-become");
    let r = p.run(&["apply", "deploy.yaml", "--no-color"]);
    assert_eq!(r.code, 1, "{}", r.all());
}

/// Every unix socket under `dir`: the kept masters' control sockets.
fn sockets(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_socket() {
                found.push(e.path());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn persist_keeps_each_master_for_the_next_run_and_no_longer() {
    let Some((_lab, inv)) = lab::acquire() else {
        return;
    };
    let inv = inv.display().to_string();
    let p = project("plays:\n  - hosts: h1,h2\n    tasks:\n      - copy: { dest: /tmp/apim-persist-check, content: x }\n");
    // The masters' directory is $XDG_RUNTIME_DIR/apim-provision: a directory of this test's own.
    let runtime = tempfile::tempdir().unwrap();
    let xdg = runtime.path().display().to_string();
    let env = [("XDG_RUNTIME_DIR", xdg.as_str())];
    let kept = runtime.path().join("apim-provision");
    let cost = |r: &common::Run, h: &str| {
        let t = &r.summary()["hosts"][h];
        (
            t["connections"].as_u64().unwrap(),
            t["masters_reused"].as_u64().unwrap(),
            t["round_trips"].as_u64().unwrap(),
        )
    };

    let first = p.run_env(&args(&inv, "apply", &["--json", "--persist", "30s"]), &env);
    assert_eq!(first.code, 0, "{}", first.all());
    for h in ["h1", "h2"] {
        assert_eq!(cost(&first, h).0, 1, "{h}: {}", first.summary());
    }
    assert_eq!(sockets(&kept).len(), 2, "{:?}", sockets(&kept));

    // The next run attaches to both: no handshake, and a no-op is one round trip.
    let second = p.run_env(&args(&inv, "apply", &["--json", "--persist", "30s"]), &env);
    let done = Instant::now();
    second.assert_no_changes();
    for h in ["h1", "h2"] {
        assert_eq!(cost(&second, h), (0, 1, 1), "{h}: {}", second.summary());
    }
    // Without --persist a run neither uses nor ends them; with another key, or another duration, it
    // does not attach to a master made for this one.
    let plain = p.run_env(&args(&inv, "apply", &["--json"]), &env);
    for h in ["h1", "h2"] {
        assert_eq!(cost(&plain, h).0, 1, "{h}: {}", plain.summary());
    }
    let key = p.path().join("other_key");
    std::fs::copy(lab::dir().join("id_ed25519"), &key).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let text = std::fs::read_to_string(&inv).unwrap();
    let lab_key = format!("identity_file: {}", lab::dir().join("id_ed25519").display());
    assert!(text.contains(&lab_key), "{text}");
    p.write(
        "other-key.yaml",
        &text.replace(&lab_key, &format!("identity_file: {}", key.display())),
    );
    let other = p.run_env(
        &args("other-key.yaml", "apply", &["--json", "--persist", "5s"]),
        &env,
    );
    assert_eq!(other.code, 0, "{}", other.all());
    for h in ["h1", "h2"] {
        assert_eq!(cost(&other, h).0, 1, "{h}: {}", other.summary());
    }

    // Idle for their duration, they end: every socket gone, no ssh process naming the directory.
    let deadline = done + Duration::from_secs(30 + 10);
    while !sockets(&kept).is_empty() {
        assert!(
            Instant::now() < deadline,
            "masters still up {}s after their 30s: {:?}",
            done.elapsed().as_secs(),
            sockets(&kept)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        done.elapsed() >= Duration::from_secs(25),
        "the kept masters ended after {}s, before their 30s",
        done.elapsed().as_secs()
    );
    let ps = Command::new("ps")
        .args(["-eo", "pid,args"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    let left: Vec<&str> = ps.lines().filter(|l| l.contains(&xdg)).collect();
    assert!(left.is_empty(), "ssh masters left:\n{}", left.join("\n"));
}
