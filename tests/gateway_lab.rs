//! The distributed gateway with rsync end to end: `playbooks/apim-gateway-rsync.yaml` with the example
//! lab inventory on the stand-in product pack: h1 MariaDB and nginx, h2 the gateway manager, h3 + h4
//! gateway workers. Module `wso2_rsync` on its own is tested in `sync_lab.rs`; this is the whole
//! topology, as the guide asks: start order, profiles, names, the load balancer, content sync.

mod common;
use common::lab;
use common::wso2::{
    converged, first_converge, gateway_reaches, health_at, java_args, nodes_behind, started_at,
    unit_time_ms,
};
use std::time::{Duration, Instant};

const INVENTORY: &str = "inventory/lab-gateway-rsync.yaml";
const WORKERS: [(&str, &str); 2] = [("h3", "10.231.0.13"), ("h4", "10.231.0.14")];
const SERVER: &str = "/opt/wso2am/repository/deployment/server";

#[test]
fn the_gateway_with_rsync_converges_as_the_guide_lays_it_out() {
    let Some((_lab, _)) = lab::acquire() else {
        return;
    };
    let (p, ca) = first_converge(INVENTORY, &[]);
    // Every file holding a secret is private to the product's user, which is not root.
    let checked = common::wso2::assert_secret_files_private(&p, INVENTORY, "wso2", "/opt/");
    assert!(checked >= 5, "only {checked} secret files found");

    // Every node healthy, peers included (the workers' traffic manager and service URL are the
    // manager's).
    let node = |addr: &str| {
        health_at(&ca, &format!("https://{addr}:9443/health"), None)
            .unwrap_or_else(|| panic!("{addr} is not healthy"))
    };
    let manager = node("10.231.0.12");
    assert_eq!(manager["profile"], "default", "{manager}");
    assert_eq!(manager["hostname"], "mgt.am.lab.internal", "{manager}");
    assert!(!java_args("h2").contains("-Dprofile"));
    for (w, addr) in WORKERS {
        let h = node(addr);
        assert_eq!(h["profile"], "gateway-worker", "{w}: {h}");
        assert_eq!(h["hostname"], "am.lab.internal", "{w}: {h}");
        let peers = h["peers"].as_object().unwrap();
        assert!(
            peers.contains_key("tcp://10.231.0.12:9611")
                && peers
                    .keys()
                    .any(|k| k.starts_with("https://10.231.0.12:9443")),
            "{w}: {h}"
        );
        assert!(java_args(w).contains("-Dprofile=gateway-worker"), "{w}");
        // Start order: the worker's product came up after the manager was healthy, and after the
        // first sync had landed (the marker's arrival on the worker).
        let start = unit_time_ms(w, "ActiveEnterTimestamp");
        let manager_ready = manager["started_at"].as_u64().unwrap();
        assert!(
            start > manager_ready,
            "{w} started at {start}, the manager was ready at {manager_ready}"
        );
        let (_, landed) = lab::ssh(w, &format!("stat -c %Z {SERVER}/.apim-provision-sync"));
        let landed: u64 = landed.trim().parse::<u64>().unwrap() * 1000;
        assert!(
            start + 1000 >= landed,
            "{w} started before the first sync landed"
        );
        // Its deployment directory was emptied once, on this first provisioning (the marker says so;
        // the pack's content it now has came with the sync).
        assert_eq!(
            lab::ssh(w, "test -f /var/lib/wso2-sync/.deployment-emptied").0,
            0,
            "{w}"
        );
        // The names, both ways.
        let (_, hosts) = lab::ssh(w, "cat /etc/hosts");
        assert!(
            hosts.contains("10.231.0.12 mgt.am.lab.internal"),
            "{w}: {hosts}"
        );
    }
    let (_, hosts) = lab::ssh("h2", "cat /etc/hosts");
    for (_, addr) in WORKERS {
        assert!(
            hosts.contains(&format!("{addr} am.lab.internal")),
            "h2: {hosts}"
        );
    }

    // The load balancer: the gateway on 80 (proxied, not redirected) and 443 reaches every worker and
    // never the manager; the management console reaches the manager.
    gateway_reaches(
        &ca,
        "am.lab.internal",
        "10.231.0.11",
        &["10.231.0.13", "10.231.0.14"],
    );
    let seen = nodes_behind(
        &ca,
        "https://mgt.am.lab.internal/health",
        "mgt.am.lab.internal:443:10.231.0.11",
        3,
    );
    assert_eq!(seen, ["10.231.0.12".to_string()].into());

    // An API the manager deploys reaches every worker within a sync period (the timer runs each minute).
    let api = format!("{SERVER}/synapse-configs/default/api/PizzaShack.xml");
    lab::ssh(
        "h2",
        &format!("echo '<api name=\"PizzaShack\"/>' > {api} && chown wso2:wso2 {api}"),
    );
    let t = Instant::now();
    for (w, _) in WORKERS {
        while lab::ssh(w, &format!("grep -q PizzaShack {api}")).0 != 0 {
            assert!(
                t.elapsed() < Duration::from_secs(75),
                "{w} did not get the manager's API"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    // Nothing to do the second time, and nothing restarted.
    converged(&p, INVENTORY, &[], || ["h2", "h3", "h4"].map(started_at));
}
