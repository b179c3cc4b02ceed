//! Rolling updates on local hosts: `serial:` batches run the whole play (tasks, handlers, post tasks)
//! one batch after the other, a failed batch stops the later ones, and a bad `serial:` is refused before
//! any host is touched. Order is read from one log file every task appends to, outside the host
//! directories; concurrency is proven by a barrier that only hosts running at the same time can pass.

mod common;
use common::Project;

/// An inventory of local hosts with `log` (the shared log) and `barrier` (a directory for the barrier
/// files) set for all, `partners` (the hosts that must reach the barrier too) set per host, and `extra`
/// YAML appended.
fn inventory(p: &Project, hosts: &[(&str, &[&str])], extra: &str) {
    let mut s = String::from("playbook: playbooks/main.yaml\nhosts:\n");
    for (h, partners) in hosts {
        s.push_str(&format!(
            "  {h}:\n    connection: local\n    vars:\n      root: \"@ROOT@/{h}\"\n      partners: {partners:?}\n"
        ));
    }
    let shared = p.path().join("shared");
    std::fs::create_dir_all(shared.join("barrier")).unwrap();
    s.push_str(&format!(
        "vars:\n  log: \"{}\"\n  barrier: \"{}\"\n",
        shared.join("log").display(),
        shared.join("barrier").display()
    ));
    s.push_str(extra);
    p.write("inventory.yaml", &s);
}

/// A play with `serial` (YAML, or none) whose tasks, handler and post task each append
/// `HOST STEP` to the log. With `barrier`, the first task waits (up to 10 s) until every partner of
/// its host has started it as well, and fails otherwise.
fn playbook(serial: Option<&str>, barrier: bool, fail_on: Option<&str>) -> String {
    let serial = serial
        .map(|s| format!("    serial: {s}\n"))
        .unwrap_or_default();
    let wait = if barrier {
        r#"touch {{ barrier }}/{{ inventory_hostname }}; for i in $(seq 100); do ok=1; for h in {{ partners | join(" ") }}; do [ -e {{ barrier }}/$h ] || ok=; done; [ -n "$ok" ] && exit 0; sleep 0.1; done; echo barrier not reached >&2; exit 1"#
    } else {
        "true"
    };
    let fail = fail_on
        .map(|h| format!("test {{{{ inventory_hostname }}}} != {h}"))
        .unwrap_or_else(|| "true".into());
    format!(
        r#"
plays:
  - name: rolling
    hosts: all
{serial}    tasks:
      - name: start
        shell: {{ cmd: 'echo "{{{{ inventory_hostname }}}} start" >> {{{{ log }}}}; {wait}' }}
      - name: config
        shell: {{ cmd: 'echo "{{{{ inventory_hostname }}}} config" >> {{{{ log }}}}; {fail}' }}
        notify: restart
    handlers:
      - name: restart
        shell: {{ cmd: 'echo "{{{{ inventory_hostname }}}} restart" >> {{{{ log }}}}' }}
    post_tasks:
      - name: health
        shell: {{ cmd: 'echo "{{{{ inventory_hostname }}}} health" >> {{{{ log }}}}' }}
        notify: restart
"#
    )
}

fn log(p: &Project) -> Vec<String> {
    std::fs::read_to_string(p.path().join("shared/log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// One host's whole play, in Ansible's order: tasks, the handlers they notified, post tasks, and the
/// handlers the post tasks notified.
fn whole_play(h: &str) -> Vec<String> {
    ["start", "config", "restart", "health", "restart"]
        .iter()
        .map(|s| format!("{h} {s}"))
        .collect()
}

#[test]
fn serial_1_runs_each_host_after_the_previous_one_finished_its_post_tasks() {
    let p = Project::new();
    inventory(&p, &[("a", &[]), ("b", &[]), ("c", &[])], "");
    p.write("playbooks/main.yaml", &playbook(Some("1"), false, None));
    let r = p.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let expected: Vec<String> = ["a", "b", "c"].iter().flat_map(|h| whole_play(h)).collect();
    assert_eq!(log(&p), expected, "{}", r.all());
}

#[test]
fn without_serial_all_hosts_run_the_play_at_once() {
    let p = Project::new();
    // Every host's first task waits for the other two: only hosts running together pass it.
    inventory(
        &p,
        &[("a", &["b", "c"]), ("b", &["a", "c"]), ("c", &["a", "b"])],
        "",
    );
    p.write("playbooks/main.yaml", &playbook(None, true, None));
    let r = p.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let lines = log(&p);
    for h in ["a", "b", "c"] {
        let mine: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("{h} ")))
            .cloned()
            .collect();
        assert_eq!(mine, whole_play(h));
    }
    // `serial: 0` is the same thing.
    std::fs::remove_file(p.path().join("shared/log")).unwrap();
    for h in ["a", "b", "c"] {
        std::fs::remove_file(p.path().join("shared/barrier").join(h)).unwrap();
    }
    p.write("playbooks/main.yaml", &playbook(Some("0"), true, None));
    let r = p.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn the_barrier_fails_under_serial_so_the_concurrency_check_can_fail() {
    let p = Project::new();
    inventory(&p, &[("a", &["b"]), ("b", &["a"])], "");
    p.write("playbooks/main.yaml", &playbook(Some("1"), true, None));
    let r = p.run(&["apply", "inventory.yaml", "--json"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(r.event("a", "start")["status"], "failed", "{}", r.stdout);
}

#[test]
fn fifty_percent_of_four_hosts_is_two_batches_of_two() {
    let p = Project::new();
    // a and b must run together, c and d too; c and d only after a and b finished.
    inventory(
        &p,
        &[("a", &["b"]), ("b", &["a"]), ("c", &["d"]), ("d", &["c"])],
        "",
    );
    p.write(
        "playbooks/main.yaml",
        &playbook(Some("\"50%\""), true, None),
    );
    let r = p.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let lines = log(&p);
    assert_eq!(lines.len(), 20, "{lines:?}");
    let (first, second) = lines.split_at(10);
    for l in first {
        assert!(l.starts_with("a ") || l.starts_with("b "), "{lines:?}");
    }
    for l in second {
        assert!(l.starts_with("c ") || l.starts_with("d "), "{lines:?}");
    }
}

#[test]
fn a_failed_host_stops_the_later_batches() {
    let p = Project::new();
    inventory(&p, &[("a", &[]), ("b", &[]), ("c", &[])], "");
    p.write(
        "playbooks/main.yaml",
        &playbook(Some("1"), false, Some("a")),
    );
    let r = p.run(&["apply", "inventory.yaml", "--json"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(r.event("a", "config")["status"], "failed");
    assert_eq!(log(&p), ["a start", "a config"], "{}", r.stdout);
    for h in ["b", "c"] {
        for t in ["start", "config", "restart", "health"] {
            let e = r.event(h, t);
            assert_eq!(e["status"], "skipped_earlier_batch", "{e}");
            let m = e["message"].as_str().unwrap();
            assert!(
                m.contains("earlier serial batch of play `rolling` failed")
                    && m.contains("`config` on a"),
                "{e}"
            );
        }
    }
    let s = r.summary();
    // b and c: two tasks, the handler twice and the post task each.
    assert_eq!(s["skipped_earlier_batch"], 10, "{s}");
    assert_eq!(s["exit_code"], 1, "{s}");

    let human = p.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(human.code, 1, "{}", human.all());
    assert!(
        human
            .stdout
            .contains("10 not run because an earlier serial batch failed"),
        "{}",
        human.stdout
    );
}

#[test]
fn plan_walks_the_batches_in_the_same_order() {
    let p = Project::new();
    inventory(&p, &[("a", &[]), ("b", &[]), ("c", &[])], "");
    p.write("playbooks/main.yaml", &playbook(Some("1"), false, None));
    let r = p.run(&["plan", "inventory.yaml", "--json"]);
    assert_eq!(r.code, 2, "{}", r.all());
    let hosts: Vec<String> = r
        .json()
        .into_iter()
        .filter(|e| e["type"] == "task")
        .map(|e| e["host"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = hosts.clone();
    sorted.sort();
    assert_eq!(hosts, sorted, "plan events out of batch order");
    assert_eq!(hosts.len(), 15);
    assert!(log(&p).is_empty(), "plan ran something");
}

#[test]
fn a_templated_serial_reads_inventory_vars_and_shows_as_graph_edges() {
    let p = Project::new();
    inventory(
        &p,
        &[("a", &[]), ("b", &[]), ("c", &[])],
        "  rolling_batch: 1\n",
    );
    p.write(
        "playbooks/main.yaml",
        &playbook(Some("\"{{ rolling_batch }}\""), false, None),
    );
    let g = p.run(&["graph", "inventory.yaml", "--format", "json"]);
    assert_eq!(g.code, 0, "{}", g.all());
    let v: serde_json::Value = serde_json::from_str(&g.stdout).unwrap();
    let node = |i: &serde_json::Value| {
        let n = &v["nodes"][i.as_u64().unwrap() as usize];
        format!(
            "{} {}",
            n["host"].as_str().unwrap(),
            n["task"].as_str().unwrap()
        )
    };
    let mut serial: Vec<String> = v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "serial")
        .map(|e| format!("{} -> {}", node(&e["from"]), node(&e["to"])))
        .collect();
    serial.sort();
    assert_eq!(serial, ["a restart -> b start", "b restart -> c start"]);
    let dot = p.run(&["graph", "inventory.yaml"]);
    assert!(dot.stdout.contains("style=dotted"), "{}", dot.stdout);
}

#[test]
fn a_serial_from_a_host_var_is_undefined() {
    let p = Project::new();
    p.write(
        "inventory.yaml",
        "playbook: playbooks/main.yaml\nhosts:\n  a:\n    connection: local\n    vars: { root: \"@ROOT@/a\", log: x, barrier: y, partners: [], rolling_batch: 1 }\n",
    );
    p.write(
        "playbooks/main.yaml",
        &playbook(Some("\"{{ rolling_batch }}\""), false, None),
    );
    let r = p.run(&["validate", "inventory.yaml"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("main.yaml:5")
            && r.stderr.contains("serial")
            && r.stderr.contains("undefined variable `rolling_batch`"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_bad_serial_is_refused_naming_its_line_before_any_host_is_touched() {
    for (value, why) in [
        ("-1", "must not be negative"),
        ("abc", "whole number of hosts or a percentage"),
        ("\"150%\"", "between 1% and 100%"),
        ("\"{{ batch }}\"", "renders as -2"),
    ] {
        let p = Project::new();
        inventory(&p, &[("a", &[]), ("b", &[])], "  batch: -2\n");
        p.write("playbooks/main.yaml", &playbook(Some(value), false, None));
        for cmd in ["apply", "plan", "validate"] {
            let r = p.run(&[cmd, "inventory.yaml", "--no-color"]);
            assert_eq!(r.code, 1, "{value} {cmd}: {}", r.all());
            assert!(
                r.stderr.contains("main.yaml:5")
                    && r.stderr.contains("play `rolling`")
                    && r.stderr.contains("serial")
                    && r.stderr.contains(why),
                "{value} {cmd}: {}",
                r.stderr
            );
            assert!(p.untouched() && log(&p).is_empty(), "{value} {cmd}");
        }
    }
}

#[test]
fn handlers_flush_again_after_post_tasks_only_for_what_the_post_tasks_notified() {
    let p = Project::new();
    inventory(&p, &[("a", &[])], "");
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - name: rolling
    hosts: all
    tasks:
      - name: config
        shell: { cmd: 'echo "{{ inventory_hostname }} config" >> {{ log }}' }
        notify: restart
    handlers:
      - name: restart
        shell: { cmd: 'echo "{{ inventory_hostname }} restart" >> {{ log }}' }
    post_tasks:
      - name: health
        shell: { cmd: 'echo "{{ inventory_hostname }} health" >> {{ log }}' }
      - name: never
        when: false
        shell: { cmd: 'echo "{{ inventory_hostname }} never" >> {{ log }}' }
        notify: restart
"#,
    );
    let r = p.run(&["apply", "inventory.yaml", "--json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        log(&p),
        ["a config", "a restart", "a health"],
        "{}",
        r.stdout
    );
    let flushes: Vec<String> = r
        .json()
        .into_iter()
        .filter(|e| e["type"] == "task" && e["task"] == "restart")
        .map(|e| e["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(flushes, ["changed", "not_notified"], "{}", r.stdout);
}
