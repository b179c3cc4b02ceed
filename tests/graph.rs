//! `graph` emits DOT that Graphviz accepts, and JSON with every node and edge.

mod common;
use common::Project;
use std::io::Write;
use std::process::{Command, Stdio};

fn project() -> Project {
    let p = Project::new();
    p.local_inventory(
        &["m", "w"],
        "groups:\n  managers:\n    hosts: [m]\n  workers:\n    hosts: [w]\n",
    );
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - name: managers
    hosts: managers
    tasks:
      - name: "start \"manager\""
        file: { path: "{{ root }}", state: directory }
  - name: workers
    hosts: workers
    tasks:
      - name: start worker
        depends_on: [{ play: managers }]
        file: { path: "{{ root }}", state: directory }
      - name: after
        file: { path: "{{ root }}/x", state: directory }
"#,
    );
    p
}

#[test]
fn dot_output_is_accepted_by_graphviz() {
    let p = project();
    let r = p.run(&["graph", "inventory.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.starts_with("digraph"), "{}", r.stdout);
    let mut dot = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("graphviz `dot` must be installed (tests/run installs it)");
    dot.stdin
        .take()
        .unwrap()
        .write_all(r.stdout.as_bytes())
        .unwrap();
    let out = dot.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dot rejected the graph: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = String::from_utf8_lossy(&out.stdout);
    assert!(
        svg.contains("<svg") && svg.contains("start worker"),
        "{svg}"
    );
    assert!(p.untouched());
}

#[test]
fn json_graph_has_nodes_and_dependency_edges() {
    let p = project();
    let r = p.run(&["graph", "inventory.yaml", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let g: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(g["nodes"].as_array().unwrap().len(), 3);
    let edges = g["edges"].as_array().unwrap();
    assert_eq!(
        edges.iter().filter(|e| e["kind"] == "depends_on").count(),
        1
    );
    assert_eq!(edges.iter().filter(|e| e["kind"] == "order").count(), 1);
}

#[test]
fn dot_labels_hold_names_without_added_quotes() {
    let p = project();
    let r = p.run(&["graph", "inventory.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains(r#"label = "m: start \"manager\"""#),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(r#"label = "w: start worker""#),
        "{}",
        r.stdout
    );
}

#[test]
fn a_closed_pipe_is_an_error_not_a_panic() {
    let p = project();
    for args in [
        &["graph", "inventory.yaml"][..],
        &["validate", "inventory.yaml"],
    ] {
        let out = p.run_stdout_closed(args);
        let err = &out.stderr;
        assert_eq!(out.code, 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains("writing to standard output"), "{err}");
    }
}
