//! Apply runs what its own probe decided: several editors of one file in one run each decide from the file
//! as the previous one left it (the scheduler probes again after a change on the host), so all of them
//! land and none undoes another, and the next plan has nothing to do.

mod common;
use common::Project;

#[test]
fn four_edits_of_one_file_in_one_run_all_land() {
    let p = Project::new();
    p.local_inventory(&["a"], "");
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - name: main
    hosts: all
    tasks:
      - name: dir
        file: { path: "{{ root }}", state: directory }
      - name: conf
        lineinfile: { path: "{{ root }}/app.conf", line: "a=1", create: true }
      - name: line b
        lineinfile: { path: "{{ root }}/app.conf", line: "b=2" }
      - name: block
        blockinfile: { path: "{{ root }}/app.conf", block: "c=4" }
      - name: host entry
        hosts_entry: { path: "{{ root }}/app.conf", ip: "10.0.0.9", names: db }
"#,
    );
    let apply = p.run(&["apply", "inventory.yaml", "--json"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    for task in ["conf", "line b", "block", "host entry"] {
        assert_eq!(apply.event("a", task)["status"], "changed", "{task}");
    }
    let conf = std::fs::read_to_string(p.root("a").join("app.conf")).unwrap();
    assert_eq!(
        conf,
        "a=1\nb=2\n# BEGIN APIM-PROVISION MANAGED BLOCK\nc=4\n# END APIM-PROVISION MANAGED BLOCK\n10.0.0.9\tdb\n"
    );
    let again = p.run(&["plan", "inventory.yaml", "--json"]);
    assert_eq!(again.code, 0, "{}", again.all());
}
