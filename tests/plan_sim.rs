//! Plan equals apply: the plan sees each host as the pending changes of earlier tasks in the same run
//! will leave it, so later tasks are diffed against that, not against the host before the run, and tasks
//! that run because something changed count as changes.

mod common;
use common::{Project, Run};

/// The pending (plan) or made (apply) changes of a `--json` run, from its summary.
fn changes(run: &Run) -> u64 {
    let s = run.summary();
    s["add"].as_u64().unwrap() + s["change"].as_u64().unwrap()
}

/// Plans then applies with `--json` after `extra` arguments: the plan has changes (exit 2), and the apply
/// succeeds making as many as the plan said. Both runs, for the test's own checks.
fn plan_then_apply(p: &Project, extra: &[&str]) -> (Run, Run) {
    let args = |command| [&[command, "inventory.yaml"], extra, &["--json"]].concat();
    let plan = p.run(&args("plan"));
    assert_eq!(plan.code, 2, "{}", plan.all());
    let apply = p.run(&args("apply"));
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(changes(&plan), changes(&apply));
    (plan, apply)
}

fn project(playbook: &str) -> Project {
    let p = Project::new();
    p.local_inventory(&["a"], "");
    p.write("playbooks/main.yaml", playbook);
    p
}

#[test]
fn an_edit_of_a_file_an_earlier_task_creates_is_planned_against_that_file() {
    let p = project(
        r#"
plays:
  - hosts: all
    tasks:
      - name: dir
        file: { path: "{{ root }}", state: directory }
      - name: conf
        file: { path: "{{ root }}/app.conf", state: file }
      - name: line a
        lineinfile: { path: "{{ root }}/app.conf", line: "a=1" }
      - name: line b
        lineinfile: { path: "{{ root }}/app.conf", line: "b=2" }
"#,
    );
    let plan = p.run(&["plan", "inventory.yaml", "--no-color"]);
    // The file does not exist before the run and lineinfile has no `create`: without the simulation
    // this plan said "would fail" although apply succeeds.
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(!plan.stdout.contains("would fail"), "{}", plan.stdout);
    // Each edit is diffed against the content the tasks before it leave: `line b` keeps `a=1`.
    let b = plan
        .stdout
        .split("~ line b")
        .nth(1)
        .expect("line b planned as a change");
    assert!(b.contains(" a=1\n") && b.contains("+b=2"), "{b}");
    assert!(
        !b.contains("+a=1"),
        "line b diffed against the old file:\n{b}"
    );

    plan_then_apply(&p, &[]);
    assert_eq!(
        std::fs::read_to_string(p.root("a").join("app.conf")).unwrap(),
        "a=1\nb=2\n"
    );
    p.run(&["apply", "inventory.yaml", "--json"])
        .assert_no_changes();
}

/// The guide's "uncomment the member, then set its host" as separate `xml` tasks on the product's file:
/// each is planned against what the ones before it leave (the address is set on the member the task
/// before uncomments, the port goes after the parameter an earlier task uncomments), apply makes as
/// many changes as plan said, and the next run makes none.
#[test]
fn xml_edits_that_build_on_each_other_are_planned_in_order() {
    let p = project(
        r#"
plays:
  - hosts: all
    tasks:
      - name: dir
        file: { path: "{{ root }}", state: directory }
      - name: scheme
        xml: { path: "{{ root }}/axis2.xml", xpath: "/axisconfig/clustering/parameter[@name='membershipScheme']", value: wka }
      - name: member host
        xml: { path: "{{ root }}/axis2.xml", xpath: "/axisconfig/clustering/parameter[@name='localMemberHost']", uncomment: true, value: 10.0.0.5 }
      - name: member
        xml: { path: "{{ root }}/axis2.xml", xpath: /axisconfig/clustering/members/member, uncomment: true }
      - name: member address
        xml: { path: "{{ root }}/axis2.xml", xpath: /axisconfig/clustering/members/member/hostName, value: 10.0.0.6 }
      - name: member port
        xml:
          path: "{{ root }}/axis2.xml"
          xpath: "/axisconfig/clustering/parameter[@name='localMemberPort']"
          insert: { after: "parameter[@name='localMemberHost']" }
          fragment: <parameter name="localMemberPort">4100</parameter>
      - name: enable
        xml: { path: "{{ root }}/axis2.xml", xpath: /axisconfig/clustering, attributes: { enable: "true" } }
"#,
    );
    p.write(
        "hosts/a/axis2.xml",
        r#"<axisconfig name="AxisJava2.0">
    <clustering enable="false">
        <parameter name="membershipScheme">multicast</parameter>
        <!-- <parameter name="localMemberHost">127.0.0.1</parameter> -->
        <members>
            <!--member>
                <hostName>127.0.0.1</hostName>
                <port>4000</port>
            </member-->
        </members>
    </clustering>
</axisconfig>
"#,
    );
    let (_, apply) = plan_then_apply(&p, &[]);
    assert_eq!(changes(&apply), 6);
    assert_eq!(
        std::fs::read_to_string(p.root("a").join("axis2.xml")).unwrap(),
        r#"<axisconfig name="AxisJava2.0">
    <clustering enable="true">
        <parameter name="membershipScheme">wka</parameter>
        <parameter name="localMemberHost">10.0.0.5</parameter>
        <parameter name="localMemberPort">4100</parameter>
        <members>
            <member>
                <hostName>10.0.0.6</hostName>
                <port>4000</port>
            </member>
        </members>
    </clustering>
</axisconfig>
"#
    );
    p.run(&["apply", "inventory.yaml", "--json"])
        .assert_no_changes();
}

#[test]
fn a_copy_into_a_missing_directory_fails_in_plan_unless_an_earlier_task_makes_it() {
    let p = project(
        r#"
plays:
  - hosts: all
    tasks:
      - name: conf
        copy: { dest: "{{ root }}/conf/app.conf", content: "a=1\n" }
"#,
    );
    let plan = p.run(&["plan", "inventory.yaml", "--no-color"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(
        plan.stdout.contains("conf does not exist"),
        "{}",
        plan.stdout
    );
    let apply = p.run(&["apply", "inventory.yaml", "--no-color"]);
    assert_eq!(
        apply.code,
        1,
        "plan said it fails, so must apply: {}",
        apply.all()
    );

    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - hosts: all
    tasks:
      - name: conf dir
        file: { path: "{{ root }}/conf", state: directory }
      - name: conf
        copy: { dest: "{{ root }}/conf/app.conf", content: "a=1\n" }
"#,
    );
    let (plan, _) = plan_then_apply(&p, &[]);
    assert_eq!(plan.event("a", "conf")["status"], "create");
}

#[test]
fn checks_after_a_change_count_as_changes_in_plan_as_they_do_in_apply() {
    // A converged host, then one variable changes: the config, its handler and the gate whose check
    // follows the change all run in apply, so plan must count all three.
    let p = Project::new();
    p.local_inventory(&["a"], "vars:\n  heap: 1g\n");
    p.write(
        "playbooks/main.yaml",
        r#"
plays:
  - hosts: all
    tasks:
      - name: dir
        file: { path: "{{ root }}", state: directory }
      - name: conf
        copy: { dest: "{{ root }}/app.conf", content: "heap={{ heap }}\n" }
        notify: restart
      - name: other
        copy: { dest: "{{ root }}/other", content: "x\n" }
    handlers:
      - name: restart
        shell: { cmd: "rm -f {{ root }}/healthy; cp {{ root }}/app.conf {{ root }}/running" }
  - hosts: all
    tasks:
      - name: gate
        shell: { cmd: "touch {{ root }}/healthy", unless: "test -e {{ root }}/healthy" }
"#,
    );
    assert_eq!(p.run(&["apply", "inventory.yaml"]).code, 0);
    p.run(&["apply", "inventory.yaml", "--json"])
        .assert_no_changes();

    let (plan, apply) = plan_then_apply(&p, &["-e", "heap=2g"]);
    assert_eq!(plan.event("a", "gate")["status"], "known_after_apply");
    assert_eq!(plan.changed_tasks(), apply.changed_tasks());
    assert_eq!(changes(&plan), 3, "{}", plan.stdout);
}

#[test]
fn a_read_of_another_hosts_result_waits_for_it_through_a_chain_of_dependencies() {
    // `known_hosts` has no depends_on of its own: it follows `gate` on mgr, which depends on wkr's
    // `read host key`. The plan must still wait for that, as apply does (wkr's probes take a second).
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
      - name: slow check
        shell: { cmd: "true", unless: "sleep 1" }
      - name: host key
        copy: { dest: "{{ root }}/host.pub", content: "ed25519-A\n" }
      - name: read host key
        slurp: { path: "{{ root }}/host.pub" }
        register: hostkey
  - name: manager
    hosts: mgr
    tasks:
      - file: { path: "{{ root }}", state: directory }
      - name: gate
        depends_on: [{ task: read host key }]
        shell: { cmd: "true", creates: "{{ root }}" }
      - name: known_hosts
        copy: { dest: "{{ root }}/known_hosts", content: "wkr {{ registered['wkr'].hostkey.content }}" }
"#,
    );
    let apply = p.run(&["apply", "inventory.yaml", "--json"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let plan = p.run(&["plan", "inventory.yaml", "--json"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert_eq!(plan.event("mgr", "known_hosts")["status"], "unchanged");
}
