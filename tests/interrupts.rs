//! Interrupts, hangs and concurrency, on `connection: local` hosts with the real binary: a run killed
//! while it writes a 200 MB file, a hanging command with a timeout, two applies of one inventory,
//! handlers of two plays with one name, and a cross-host read without its depends_on.

mod common;

use common::Project;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `apim-provision ARGS` in the project, in a process group of its own (as a shell job is).
fn spawn(p: &Project, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_apim-provision"))
        .args(args)
        .current_dir(p.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start apim-provision")
}

/// Waits up to `secs` for `cond`, panicking with `what` when it never holds.
fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `.<name>.apim-provision.tmp.*` files next to `dest`.
fn temp_files(dest: &Path) -> Vec<PathBuf> {
    let name = dest.file_name().unwrap().to_string_lossy().into_owned();
    let prefix = format!(".{name}.apim-provision.tmp.");
    std::fs::read_dir(dest.parent().unwrap())
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(&prefix)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

fn output(child: Child) -> (std::process::ExitStatus, String) {
    let out = child.wait_with_output().expect("wait for apim-provision");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

#[test]
fn an_apply_killed_while_writing_a_large_file_leaves_the_old_or_new_file_and_no_temp_file() {
    let p = Project::new();
    p.local_inventory(&["h1"], "");
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - name: big
    hosts: h1
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: big file
        copy: { src: big.bin, dest: "{{ root }}/big.bin" }
"#,
    );
    let big = p.path().join("playbooks/files/big.bin");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    let block: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&big).unwrap();
        for _ in 0..200 {
            f.write_all(&block).unwrap();
        }
    }
    let dest = p.root("h1").join("big.bin");
    let new_len = 200 * 1024 * 1024;
    for (name, sig, group, code) in [
        ("SIGINT", libc::SIGINT, false, Some(130)),
        ("SIGTERM", libc::SIGTERM, false, Some(143)),
        ("SIGKILL of the process group", libc::SIGKILL, true, None),
    ] {
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&dest, "old\n").unwrap();
        let child = spawn(&p, &["apply", "inventory.yaml"]);
        let pid = child.id() as i32;
        wait_until(300, &format!("{name}: the temp file"), || {
            !temp_files(&dest).is_empty()
        });
        signal(if group { -pid } else { pid }, sig);
        let (status, text) = output(child);
        match code {
            Some(c) => {
                assert_eq!(status.code(), Some(c), "{name}: {text}");
                assert!(text.contains("interrupted"), "{name}: {text}");
                assert!(
                    temp_files(&dest).is_empty(),
                    "{name}: temp file left: {:?}",
                    temp_files(&dest)
                );
            }
            None => assert_eq!(status.signal(), Some(libc::SIGKILL), "{name}: {text}"),
        }
        let len = std::fs::metadata(&dest).unwrap().len();
        assert!(
            len == 4 || len == new_len,
            "{name}: torn destination, {len} bytes"
        );
        let again = p.run(&["apply", "inventory.yaml"]);
        assert_eq!(again.code, 0, "{name}: the next run: {}", again.all());
        assert!(
            temp_files(&dest).is_empty(),
            "{name}: temp file left after the next run: {:?}",
            temp_files(&dest)
        );
        assert_eq!(std::fs::metadata(&dest).unwrap().len(), new_len, "{name}");
    }
}

#[test]
fn a_hanging_command_with_a_timeout_fails_naming_it_and_its_processes_are_gone() {
    let p = Project::new();
    p.local_inventory(&["h1"], "");
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - name: hang
    hosts: h1
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: hangs
        timeout: 2
        shell: { cmd: "sleep 300 & echo $! > '{{ root }}/pid'; wait" }
      - name: after
        copy: { dest: "{{ root }}/after", content: "x" }
"#,
    );
    let started = Instant::now();
    let run = p.run(&["apply", "inventory.yaml"]);
    assert!(started.elapsed() < Duration::from_secs(60), "{}", run.all());
    assert_eq!(run.code, 1, "{}", run.all());
    let out = run.all();
    assert!(
        out.contains("`hangs` on h1") && out.contains("timed out after 2s"),
        "{out}"
    );
    let pid: i32 = std::fs::read_to_string(p.root("h1").join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !alive(pid),
        "sleep {pid} still runs after its task timed out"
    );
    assert!(!p.root("h1").join("after").exists());
}

#[test]
fn a_second_apply_of_one_inventory_is_refused_naming_the_first_ones_pid() {
    let p = Project::new();
    p.local_inventory(&["h1"], "");
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - name: slow
    hosts: h1
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: slow
        shell: { cmd: "echo $$ > '{{ root }}/pid'; sleep 300" }
"#,
    );
    let first = spawn(&p, &["apply", "inventory.yaml"]);
    let first_pid = first.id();
    let pidfile = p.root("h1").join("pid");
    wait_until(60, "the first apply's command", || pidfile.exists());
    let second = p.run(&["apply", "inventory.yaml"]);
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(
        second.stderr.contains(&format!(
            "another apply of inventory.yaml is running (PID {first_pid})"
        )),
        "{}",
        second.stderr
    );
    // The first one dies without releasing anything by hand: its lock must not block the next apply.
    signal(-(first_pid as i32), libc::SIGKILL);
    let _ = output(first);
    p.write(
        "playbooks/main.yaml",
        "plays:\n  - name: quick\n    hosts: h1\n    tasks:\n      - file: { path: \"{{ root }}\", state: directory }\n",
    );
    let third = p.run(&["apply", "inventory.yaml"]);
    assert_eq!(third.code, 0, "{}", third.all());
}

#[test]
fn sigterm_stops_a_running_command_and_everything_it_started() {
    let p = Project::new();
    p.local_inventory(&["h1"], "");
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - name: slow
    hosts: h1
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: slow
        shell: { cmd: "sleep 300 & echo $! > '{{ root }}/pid'; wait" }
      - name: after
        copy: { dest: "{{ root }}/after", content: "x" }
"#,
    );
    let child = spawn(&p, &["apply", "inventory.yaml"]);
    let pidfile = p.root("h1").join("pid");
    wait_until(60, "the command", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
    });
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    signal(child.id() as i32, libc::SIGTERM);
    let (status, text) = output(child);
    assert_eq!(status.code(), Some(143), "{text}");
    assert!(text.contains("SIGTERM"), "{text}");
    assert!(!alive(pid), "sleep {pid} outlived the SIGTERM'd apply");
    assert!(
        !p.root("h1").join("after").exists(),
        "a task started after SIGTERM"
    );
}

#[test]
fn a_notify_reaches_only_the_handler_of_its_own_play() {
    let p = Project::new();
    p.local_inventory(&["h1"], "");
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - name: a
    hosts: h1
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: conf a
        copy: { dest: "{{ root }}/a.conf", content: "a" }
        notify: restart
    handlers:
      - name: restart
        copy: { dest: "{{ root }}/restarted-a", content: "x" }
  - name: b
    hosts: h1
    tasks:
      - name: conf b
        copy: { dest: "{{ root }}/b.conf", content: "b" }
        notify: restart
        when: "false"
    handlers:
      - name: restart
        copy: { dest: "{{ root }}/restarted-b", content: "x" }
"#,
    );
    let run = p.run(&["apply", "inventory.yaml"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(p.root("h1").join("restarted-a").exists());
    assert!(
        !p.root("h1").join("restarted-b").exists(),
        "play b's handler ran for play a's notify"
    );
}

#[test]
fn a_cross_host_read_without_depends_on_is_refused_before_any_host_is_touched() {
    let p = Project::new();
    p.local_inventory(&["mgr", "wkr"], "");
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - name: worker key
    hosts: wkr
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: read host key
        slurp: { path: /etc/hostname }
        register: hostkey
  - name: manager
    hosts: mgr
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: known_hosts
        copy: { dest: "{{ root }}/known_hosts", content: "{% for h in ['wkr'] %}{{ registered[h].hostkey.content }}{% endfor %}" }
"#,
    );
    for cmd in ["validate", "plan", "apply"] {
        let run = p.run(&[cmd, "inventory.yaml"]);
        assert_eq!(run.code, 1, "{cmd}: {}", run.all());
        assert!(
            run.stderr.contains("main.yaml:14")
                && run.stderr.contains("registered[h].hostkey")
                && run.stderr.contains("read host key")
                && run.stderr.contains("depends_on"),
            "{cmd}: {}",
            run.stderr
        );
        assert!(p.untouched(), "{cmd} touched a host");
    }
}
