//! The embedded local demo (the README's first command where the lab cannot run) shows plan -> apply ->
//! converged plan -> `drift: none`.

mod common;
use common::Project;

#[test]
fn demo_plans_applies_and_converges() {
    let p = Project::new();
    let dir = p.path().join("demo");
    let r = p.run(&[
        "demo",
        "--local",
        "--no-color",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let plans: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("Plan: "))
        .collect();
    assert_eq!(plans.len(), 2, "{}", r.stdout);
    assert!(plans[0].starts_with("Plan: 12 to add"), "{}", plans[0]);
    assert!(
        plans[1].starts_with("Plan: 0 to add, 0 to change, "),
        "{}",
        plans[1]
    );
    // The admin password is a reference: the demo made it up and sealed it in secrets.age for an
    // identity of its own, which its closing hint names.
    let identity = dir.join("local/age-identity.txt");
    let store = dir.join("local/inventory/secrets.age");
    let plain = p.run(&[
        "secrets",
        "decrypt",
        store.to_str().unwrap(),
        "--identity",
        identity.to_str().unwrap(),
    ]);
    assert_eq!(plain.code, 0, "{}", plain.all());
    let password = plain
        .stdout
        .trim()
        .strip_prefix("admin_password: ")
        .unwrap();
    assert_eq!(password.len(), 24, "{}", plain.stdout);
    assert!(r
        .stdout
        .contains(&format!("--identity {}", identity.display())));
    // deployment.toml reads the admin password: the plan shows how much changes, never its lines.
    assert!(
        r.stdout.contains("(sensitive content, 11 lines changed)") && !r.all().contains(password)
    );
    let pid = dir.join("local/.scratch/wkr2/opt/wso2am-4.2.0/wso2carbon.pid");
    assert_eq!(
        std::fs::read_to_string(pid).unwrap(),
        "started wkr2 as gateway-worker\n"
    );
    // It ends with drift's one line; the demo's inventory is one drift reads: a hand edit shows.
    assert!(r.stdout.lines().any(|l| l == "drift: none"), "{}", r.stdout);
    let marker = dir.join("local/.scratch/wkr1/opt/wso2am-4.2.0/profile");
    std::fs::write(&marker, "edited by hand\n").unwrap();
    let inventory = dir.join("local/inventory/demo.yaml");
    let d = p.run(&[
        "drift",
        inventory.to_str().unwrap(),
        "--no-color",
        "--identity",
        identity.to_str().unwrap(),
    ]);
    assert_eq!(d.code, 2, "{}", d.all());
    assert!(d.stdout.contains("profile marker"), "{}", d.stdout);
    assert!(
        d.stdout.contains("Drift: 1 drifted on 1 of 3 hosts"),
        "{}",
        d.stdout
    );
    // A second demo starts fresh, so it tells the same story.
    let again = p.run(&[
        "demo",
        "--local",
        "--no-color",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(again.code, 0);
    assert!(again.stdout.contains("Plan: 12 to add"));
}

#[test]
fn the_local_demo_leaves_the_lab_demos_project_alone() {
    let p = Project::new();
    let dir = p.path().join("demo");
    let lab_state = dir.join("lab/inventory/.apim-state/pki/ca.key");
    std::fs::create_dir_all(lab_state.parent().unwrap()).unwrap();
    std::fs::write(&lab_state, "the lab cluster's CA key").unwrap();
    let r = p.run(&[
        "demo",
        "--local",
        "--no-color",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        std::fs::read_to_string(&lab_state).unwrap(),
        "the lab cluster's CA key",
        "demo --local deleted the lab demo's state"
    );
}
