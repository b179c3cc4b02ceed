//! The Vagrant cluster (vagrant/): `vagrant validate` for every topology the Vagrantfile offers, and
//! the lab and the Vagrantfile reading one description. The run of real VMs (`vagrant up`, apply,
//! plan, destroy) is on branch `vagrant` until it passes within CI's budget (issue 13).

mod common;
use apim_provision::model::Inventory;
use common::vagrant;
use common::wso2;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Host name → (address, sorted groups) of a lab inventory as the engine reads it.
fn engine_view(path: &Path) -> BTreeMap<String, (String, Vec<String>)> {
    let inv = Inventory::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    inv.hosts
        .iter()
        .map(|h| {
            let mut groups = inv.groups_of(&h.name);
            groups.sort();
            (h.name.clone(), (h.address.clone(), groups))
        })
        .collect()
}

/// Host name → (lab address, Vagrant address, sorted groups) as vagrant/cluster.rb (what the
/// Vagrantfile builds its VMs from) reads `topology` in the tree of `cluster_rb`.
fn vagrant_view(
    cluster_rb: &Path,
    topology: &str,
) -> BTreeMap<String, (String, String, Vec<String>)> {
    let out = Command::new("ruby")
        .arg(cluster_rb)
        .args(["hosts", topology])
        .output()
        .expect("run ruby");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let mut groups: Vec<String> = f[4].split(',').map(String::from).collect();
            groups.sort();
            (
                f[0].to_string(),
                (f[1].to_string(), f[2].to_string(), groups),
            )
        })
        .collect()
}

/// The machines `vagrant status` lists for `topology` with the Vagrantfile in `dir`.
fn vagrant_machines(dir: &Path, topology: &str) -> Vec<String> {
    let dot = tempfile::tempdir().unwrap();
    let r = vagrant::run_in(
        dir,
        dot.path(),
        topology,
        &mut vagrant::vagrant(&["status", "--machine-readable"]),
    );
    assert!(r.ok, "vagrant status ({topology}):\n{}", r.text);
    r.text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() > 3 && f[2] == "state").then(|| f[1].to_string())
        })
        .collect()
}

fn topologies() -> Vec<String> {
    let out = Command::new("ruby")
        .arg(vagrant::dir().join("cluster.rb"))
        .arg("topologies")
        .output()
        .expect("run ruby");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn the_vagrantfile_validates_for_every_topology_and_rejects_an_unknown_one() {
    if vagrant::deps("vagrant validate").is_none() {
        return;
    }
    let ts = topologies();
    assert!(
        ts.len() >= 6 && ts.contains(&"active-active".to_string()),
        "{ts:?}"
    );
    let dot = tempfile::tempdir().unwrap();
    for t in &ts {
        let r = vagrant::run_in(
            &vagrant::dir(),
            dot.path(),
            t,
            &mut vagrant::vagrant(&["validate"]),
        );
        assert!(
            r.ok && r.text.contains("validated successfully"),
            "{t}:\n{}",
            r.text
        );
    }
    let r = vagrant::run_in(
        &vagrant::dir(),
        dot.path(),
        "nope",
        &mut vagrant::vagrant(&["validate"]),
    );
    assert!(
        !r.ok && r.text.contains("no inventory/lab-nope.yaml"),
        "{}",
        r.text
    );
}

#[test]
fn the_lab_and_vagrant_read_one_description() {
    if vagrant::deps("one description").is_none() {
        return;
    }
    let repo = wso2::repo();
    // Every topology: the VMs are the lab inventory's hosts, in the same groups, each on the
    // Vagrant subnet at the last octet of its lab address.
    for t in topologies() {
        let lab_view = engine_view(&repo.join(format!("inventory/lab-{t}.yaml")));
        let vm_view = vagrant_view(&vagrant::dir().join("cluster.rb"), &t);
        assert_eq!(
            lab_view.keys().collect::<Vec<_>>(),
            vm_view.keys().collect::<Vec<_>>(),
            "{t}"
        );
        for (h, (addr, groups)) in &lab_view {
            let (lab_addr, vm_addr, vm_groups) = &vm_view[h];
            assert_eq!(lab_addr, addr, "{t} {h}");
            assert_eq!(vm_groups, groups, "{t} {h}");
            assert_eq!(vm_addr, &addr.replace("10.231.0.", "10.231.8."), "{t} {h}");
        }
    }
    assert_eq!(
        vagrant_machines(&vagrant::dir(), "active-active"),
        ["h1", "h2", "h3", "h4"]
    );

    // A change to the description (a third node, h2 moved into the lb group too) in a copy of the
    // tree: the engine (the lab's reading) and the Vagrantfile both see it.
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path();
    std::fs::create_dir_all(t.join("vagrant")).unwrap();
    std::fs::create_dir_all(t.join("inventory")).unwrap();
    for f in ["Vagrantfile", "cluster.rb"] {
        std::fs::copy(vagrant::dir().join(f), t.join("vagrant").join(f)).unwrap();
    }
    std::os::unix::fs::symlink(repo.join("playbooks"), t.join("playbooks")).unwrap();
    let inv = std::fs::read_to_string(repo.join("inventory/lab-active-active.yaml")).unwrap();
    let changed = inv
        .replace(
            "  h4: { address: 10.231.0.14 }\n",
            "  h4: { address: 10.231.0.14 }\n  h9: { address: 10.231.0.19 }\n",
        )
        .replace("apim: { hosts: [h2, h3] }", "apim: { hosts: [h2, h3, h9] }")
        .replace("lb: { hosts: [h4] }", "lb: { hosts: [h4, h2] }");
    assert_ne!(changed, inv, "the edit did not apply");
    std::fs::write(t.join("inventory/lab-active-active.yaml"), &changed).unwrap();
    let lab_view = engine_view(&t.join("inventory/lab-active-active.yaml"));
    let vm_view = vagrant_view(&t.join("vagrant/cluster.rb"), "active-active");
    assert_eq!(
        lab_view["h9"],
        ("10.231.0.19".to_string(), vec!["apim".to_string()])
    );
    assert_eq!(vm_view["h9"].1, "10.231.8.19");
    assert_eq!(vm_view["h9"].2, ["apim"]);
    assert_eq!(lab_view["h2"].1, ["apim", "lb"]);
    assert_eq!(vm_view["h2"].2, ["apim", "lb"]);
    assert_eq!(
        vagrant_machines(&t.join("vagrant"), "active-active"),
        ["h1", "h2", "h3", "h4", "h9"]
    );
}
