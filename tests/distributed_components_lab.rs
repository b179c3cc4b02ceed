//! API Manager 1.x distributed components end to end: `playbooks/apim-distributed-components.yaml` on the
//! stand-in API-M 1.10 pack (a server that reads the XML, connects to every datasource and calls every
//! ServerURL with its credentials), in both of the guide's shapes: one host per component
//! (`inventory/lab-distributed-components.yaml`: h1 MariaDB and nginx, h2 Key Manager, h3 Publisher, h4
//! Store, h5 Gateway) and all four on one host at offsets 1-4
//! (`inventory/lab-distributed-components-one-host.yaml`: h1, h2).

mod common;
use common::lab;
use common::wso2::{
    carbon_nodes_behind, converged, first_converge_on, health_at, run, started_at_unit,
    unit_time_ms_of,
};
use std::path::Path;
use std::time::Instant;

const ONE_EACH: &str = "inventory/lab-distributed-components.yaml";
const ONE_HOST: &str = "inventory/lab-distributed-components-one-host.yaml";
const LB: &str = "10.231.0.11";
const NAMES: [(&str, &str); 4] = [
    ("keymanager", "keymanager.apim-wso2.com"),
    ("publisher", "publisher.apim-wso2.com"),
    ("store", "store.apim-wso2.com"),
    ("gateway", "gwmanager.apim-wso2.com"),
];

/// A component where the inventory puts it: name, lab host, address, port offset.
type Component = (&'static str, &'static str, &'static str, u16);

/// The guide's table: the datasources each component has, besides the local registry.
fn datasources(c: &str) -> &'static [&'static str] {
    match c {
        "keymanager" => &["WSO2AM_DB", "WSO2UM_DB"],
        "gateway" => &["WSO2AM_DB"],
        _ => &["WSO2AM_DB", "WSO2UM_DB", "WSO2REG_DB"],
    }
}

fn find(set: &[Component], c: &str) -> Component {
    *set.iter().find(|x| x.0 == c).unwrap()
}

/// Every component healthy with every peer it calls, its datasources as the table says, only its own
/// portal, the names in /etc/hosts; each started after the one before it was healthy; the load
/// balancer reaches the Publisher, the Store and the Gateway.
fn as_the_guide_lays_it_out(ca: &Path, set: &[Component]) {
    let km = find(set, "keymanager");
    let gw = find(set, "gateway");
    let mut ready = 0;
    for (c, h, addr, off) in ["keymanager", "publisher", "store", "gateway"].map(|c| find(set, c)) {
        let health = health_at(ca, &format!("https://{addr}:{}/health", 9443 + off), None)
            .unwrap_or_else(|| panic!("{c} on {h} is not healthy"));
        assert_eq!(health["offset"], off, "{c}: {health}");
        assert_eq!(
            health["datasources"]["WSO2_CARBON_DB"], "embedded",
            "{c}: {health}"
        );
        for ds in datasources(c) {
            assert_eq!(health["datasources"][ds], "ok", "{c}: {health}");
        }
        let peers = health["peers"].as_object().unwrap();
        let km_url = format!("https://keymanager.apim-wso2.com:{}/services/", 9443 + km.3);
        let gw_url = format!("https://gwmanager.apim-wso2.com:{}/services/", 9443 + gw.3);
        let wants: &[&String] = match c {
            "keymanager" => &[],
            "gateway" => &[&km_url],
            _ => &[&km_url, &gw_url],
        };
        for want in wants {
            assert_eq!(peers[want.as_str()], "ok", "{c}: {health}");
        }
        let apps: Vec<&str> = health["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        for portal in ["publisher", "store"] {
            assert_eq!(
                apps.contains(&format!("/{portal}").as_str()),
                c == portal,
                "{c}: {apps:?}"
            );
        }
        let (_, hosts) = lab::ssh(h, "cat /etc/hosts");
        for (_, name) in NAMES {
            assert!(hosts.contains(name), "{h}: {name} not in {hosts}");
        }
        assert!(
            hosts.contains("10.231.0.11 apimgtdb.mysql-wso2.com"),
            "{hosts}"
        );
        // Start order: this one's unit came up after the one before it was healthy.
        let unit = format!("wso2am-{c}");
        let start = unit_time_ms_of(h, &unit, "ActiveEnterTimestamp");
        assert!(
            start > ready,
            "{c} started at {start}, before the one before was ready at {ready}"
        );
        ready = health["started_at"].as_u64().unwrap();
    }
    for (url, port, want) in [
        (
            "https://publisher.apim-wso2.com/health",
            443,
            find(set, "publisher"),
        ),
        (
            "https://store.apim-wso2.com/health",
            443,
            find(set, "store"),
        ),
        ("http://gwmanager.apim-wso2.com/health", 80, gw),
        ("https://gwmanager.apim-wso2.com/health", 443, gw),
    ] {
        let name = url.split('/').nth(2).unwrap();
        let seen = carbon_nodes_behind(ca, url, &format!("{name}:{port}:{LB}"), 3);
        let expect = if want.3 == 0 {
            want.2.to_string()
        } else {
            format!("{}+{}", want.2, want.3)
        };
        assert_eq!(seen, [expect].into(), "{url}");
    }
}

fn start_times(set: &[Component]) -> Vec<u64> {
    set.iter()
        .map(|(c, h, _, _)| started_at_unit(h, &format!("wso2am-{c}")))
        .collect()
}

#[test]
fn distributed_components_converge_in_both_shapes_and_a_broken_datasource_stops_the_start_order() {
    let Some((_lab, _)) = lab::acquire() else {
        return;
    };
    lab::lab(&["up", "5"]);
    let t0 = Instant::now();

    // ---- One host per component.
    let each: [Component; 4] = [
        ("keymanager", "h2", "10.231.0.12", 0),
        ("publisher", "h3", "10.231.0.13", 0),
        ("store", "h4", "10.231.0.14", 0),
        ("gateway", "h5", "10.231.0.15", 0),
    ];
    let (p, ca) = first_converge_on(ONE_EACH, &["h1", "h2", "h3", "h4", "h5"], &[]);
    // Every file holding a secret is private to the product's user, which is not root.
    let checked = common::wso2::assert_secret_files_private(&p, ONE_EACH, "wso2", "/opt/");
    assert!(checked >= 5, "only {checked} secret files found");
    let t_first = t0.elapsed();
    as_the_guide_lays_it_out(&ca, &each);
    converged(&p, ONE_EACH, &[], || start_times(&each));

    // The Store's database password wrong: its health gate fails naming the host and the datasource,
    // and the Gateway, after it in the start order, is not started (its config is still checked).
    let good = std::fs::read_to_string(p.path().join(ONE_EACH)).unwrap();
    p.write(
        ONE_EACH,
        &good.replace(
            "h4: { address: 10.231.0.14 }",
            "h4: { address: 10.231.0.14, vars: { wso2_db_password: \"not-the-db-password\" } }",
        ),
    );
    let t1 = Instant::now();
    let bad = run(
        &p,
        ONE_EACH,
        "apply",
        &[],
        &["--json", "-e", "wso2_health_timeout=30"],
    );
    let t_bad = t1.elapsed();
    assert_eq!(bad.code, 1, "{}", bad.all());
    let gate = bad.event("h4", "store health | health gate");
    assert_eq!(gate["status"], "failed", "{gate}");
    let msg = gate["message"].as_str().unwrap();
    assert!(
        msg.contains("h4:") && msg.contains("datasource WSO2"),
        "{msg}"
    );
    assert!(!msg.contains("not-the-db-password"), "secret leaked: {msg}");
    assert_eq!(
        bad.event("h5", "gateway service | service")["status"],
        "skipped_dependency"
    );
    p.write(ONE_EACH, &good);
    let fixed = run(&p, ONE_EACH, "apply", &[], &["--json"]);
    assert_eq!(fixed.code, 0, "{}", fixed.all());
    let t_each = t0.elapsed();

    // ---- All four on h2, at the guide's offsets (the lab's h3-h5 are left as they are).
    let one: [Component; 4] = [
        ("keymanager", "h2", "10.231.0.12", 1),
        ("gateway", "h2", "10.231.0.12", 2),
        ("publisher", "h2", "10.231.0.12", 3),
        ("store", "h2", "10.231.0.12", 4),
    ];
    let t2 = Instant::now();
    let (q, ca) = first_converge_on(ONE_HOST, &["h1", "h2"], &[]);
    // Every file holding a secret is private to the product's user, which is not root.
    let checked = common::wso2::assert_secret_files_private(&q, ONE_HOST, "wso2", "/opt/");
    assert!(checked >= 5, "only {checked} secret files found");
    as_the_guide_lays_it_out(&ca, &one);
    converged(&q, ONE_HOST, &[], || start_times(&one));
    eprintln!(
        "timings: one host each: first apply (incl. pack build) {t_first:?}, broken datasource \
         {t_bad:?}, total {t_each:?}; all on one host {:?}; total {:?}",
        t2.elapsed(),
        t0.elapsed()
    );
}
