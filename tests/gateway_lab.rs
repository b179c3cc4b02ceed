//! The distributed gateway with rsync end to end: `playbooks/apim-gateway-rsync.yaml` with the example
//! lab inventory on the stand-in product pack: h1 MariaDB, h2 the gateway manager, h3 + h4 gateway
//! workers. Module `wso2_rsync` on its own is tested in `sync_lab.rs`; this is the whole topology.

mod common;
use common::lab;
use common::wso2::{
    build_pack, ensure_driver, fresh_hosts, health, pack_vars, project, run, started_at,
};

const INVENTORY: &str = "inventory/lab-gateway-rsync.yaml";
const WORKERS: [(&str, &str); 2] = [("h3", "10.231.0.13"), ("h4", "10.231.0.14")];
const SERVER: &str = "/opt/wso2am/repository/deployment/server";

/// The JVM's command line of the host's running wso2am.
fn java_args(host: &str) -> String {
    lab::ssh(
        host,
        "tr '\\0' ' ' < /proc/$(systemctl show -p MainPID --value wso2am)/cmdline",
    )
    .1
}

#[test]
fn the_manager_starts_first_workers_run_the_worker_profile_and_get_its_artifacts() {
    let Some((_lab, _)) = lab::acquire() else {
        return;
    };
    let p = project(INVENTORY, |s| s);
    let files = p.path().join("inventory/files");
    let zip = build_pack(&files);
    ensure_driver();
    let vars = pack_vars(&files, &zip);
    fresh_hosts();

    let first = run(&p, INVENTORY, "apply", &vars, &["--json"]);
    assert_eq!(first.code, 0, "{}", first.all());

    // The guide's start order: each worker's product came up after the manager's.
    let manager = started_at("h2");
    for (w, _) in WORKERS {
        assert!(started_at(w) > manager, "{w} started before the manager");
    }
    let margs = java_args("h2");
    assert!(!margs.contains("-Dprofile"), "manager: {margs}");
    let ca = p.path().join("inventory/.apim-state/pki/ca.pem");
    assert!(health(&ca, "10.231.0.12").contains(r#""status":"ok""#));
    for (w, addr) in WORKERS {
        let args = java_args(w);
        assert!(args.contains("-Dprofile=gateway-worker"), "{w}: {args}");
        let h = health(&ca, addr);
        assert!(h.contains(r#""status":"ok""#), "{w}: {h}");
    }

    // An API the manager deploys reaches every worker with the next sync run.
    let api = format!("{SERVER}/synapse-configs/default/api/PizzaShack.xml");
    lab::ssh(
        "h2",
        &format!("echo '<api name=\"PizzaShack\"/>' > {api} && chown wso2:wso2 {api}"),
    );
    let (rc, out) = lab::ssh("h2", "systemctl start wso2-sync.service");
    assert_eq!(rc, 0, "{out}");
    for (w, _) in WORKERS {
        let (rc, _) = lab::ssh(w, &format!("grep -q PizzaShack {api}"));
        assert_eq!(rc, 0, "{w} did not get the manager's API");
    }

    // Nothing to do the second time, and nothing restarted.
    let before: Vec<u64> = ["h2", "h3", "h4"].iter().map(|h| started_at(h)).collect();
    let again = run(&p, INVENTORY, "apply", &vars, &["--json"]);
    again.assert_no_changes();
    let after: Vec<u64> = ["h2", "h3", "h4"].iter().map(|h| started_at(h)).collect();
    assert_eq!(before, after, "a no-op apply restarted wso2am");
}
