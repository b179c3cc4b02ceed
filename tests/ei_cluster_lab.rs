//! The WSO2 EI cluster end to end: `playbooks/ei-cluster.yaml` with the example lab inventory on the
//! stand-in EI pack (`tests/pack/build`: conf/ and lib/ as in EI 6, a server that reads the XML, connects
//! to every datasource and joins the wka members it is configured with): h1 MariaDB with the four
//! databases, h2 + h3 EI nodes (h2 owns the artifacts), h4 nginx with the guide's three virtual hosts.

mod common;
use common::lab;
use common::wso2::{
    carbon_nodes_behind, converged, first_converge, health_at, java_args_unit, run, started_at_unit,
};
use std::time::{Duration, Instant};

const INVENTORY: &str = "inventory/lab-ei-cluster.yaml";
const NODES: [(&str, &str, &str, &str); 2] = [
    ("h2", "10.231.0.12", "10.231.0.13", "REGISTRY_LOCAL1"),
    ("h3", "10.231.0.13", "10.231.0.12", "REGISTRY_LOCAL2"),
];
const LB: &str = "10.231.0.14";

#[test]
fn the_ei_cluster_converges_syncs_and_a_wrong_member_fails_the_health_gate() {
    let Some((_lab, _)) = lab::acquire() else {
        return;
    };
    let t0 = Instant::now();
    let (p, ca) = first_converge(INVENTORY, &[]);
    // Every file holding a secret is private to the product's user, which is not root.
    let checked = common::wso2::assert_secret_files_private(&p, INVENTORY, "wso2", "/opt/");
    assert!(checked >= 5, "only {checked} secret files found");
    let t_first = t0.elapsed();

    // Each node: its four datasources' three (its own local registry), the other node joined in the
    // guide's domain, the names and ports clients use, the JVM's memory.
    for (h, addr, other, local) in NODES {
        let health = health_at(&ca, &format!("https://{addr}:9443/health"), None)
            .unwrap_or_else(|| panic!("{h} is not healthy"));
        for ds in [local, "REGISTRY_DB", "WSO2_USER_DB"] {
            assert_eq!(health["datasources"][ds], "ok", "{h}: {health}");
        }
        assert_eq!(
            health["members"][format!("{other}:4100")],
            "joined",
            "{h}: {health}"
        );
        assert_eq!(health["clustering"]["domain"], "wso2.ei.domain", "{health}");
        assert_eq!(
            health["clustering"]["local_member"],
            format!("{addr}:4100"),
            "{health}"
        );
        assert_eq!(health["hostname"], "ei.wso2.com", "{health}");
        assert_eq!(health["proxy_ports"]["servlet_https"], 443, "{health}");
        assert_eq!(health["warnings"], serde_json::json!([]), "{h}: {health}");
        let (_, log) = lab::ssh(
            h,
            "grep -c 'Member joined' /opt/wso2ei/repository/logs/wso2carbon.log",
        );
        assert!(
            log.trim().parse::<u32>().unwrap_or(0) >= 1,
            "{h}: no Member joined"
        );
        let (_, hosts) = lab::ssh(h, "cat /etc/hosts");
        assert!(
            hosts.contains("10.231.0.11 carbondb.mysql-wso2.com"),
            "{h}: {hosts}"
        );
        let args = java_args_unit(h, "wso2ei");
        assert!(
            args.contains("-Xmx512m") && args.contains("-XX:MaxMetaspaceSize=256m"),
            "{h}: {args}"
        );
    }

    // The load balancer: services over HTTP and HTTPS reach both nodes, the console only node 1.
    for (url, port) in [
        ("http://ei.wso2.com/health", 80),
        ("https://ei.wso2.com/health", 443),
    ] {
        let seen = carbon_nodes_behind(&ca, url, &format!("ei.wso2.com:{port}:{LB}"), 8);
        assert_eq!(
            seen,
            ["10.231.0.12".to_string(), "10.231.0.13".to_string()].into(),
            "{url}"
        );
    }
    let console = carbon_nodes_behind(
        &ca,
        "https://ui.ei.wso2.com/health",
        &format!("ui.ei.wso2.com:443:{LB}"),
        4,
    );
    assert_eq!(console, ["10.231.0.12".to_string()].into());
    let (_, logs) = lab::ssh("h4", "test -s /var/log/nginx/ui-access.log && echo ok");
    assert_eq!(logs.trim(), "ok", "the console's own access log");

    // Artifacts: a proxy service and a tenant's file deployed on node 1 reach node 2 within a sync
    // period (the timer runs each minute).
    let proxy = "/opt/wso2ei/repository/deployment/server/synapse-configs/default/proxy-services/EchoProxy.xml";
    let tenant = "/opt/wso2ei/repository/tenants/1/synapse-configs/default/api/TenantApi.xml";
    lab::ssh(
        "h2",
        &format!(
            "echo '<proxy name=\"EchoProxy\"/>' > {proxy} && mkdir -p $(dirname {tenant}) && \
             echo '<api name=\"TenantApi\"/>' > {tenant} && chown -R wso2:wso2 {proxy} /opt/wso2ei/repository/tenants/1"
        ),
    );
    let t = Instant::now();
    for f in [proxy, tenant] {
        while lab::ssh("h3", &format!("test -s {f}")).0 != 0 {
            assert!(
                t.elapsed() < Duration::from_secs(75),
                "h3 did not get {f} from h2"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    // Nothing to do the second time, and nothing restarted.
    let t1 = Instant::now();
    converged(&p, INVENTORY, &[], || {
        ["h2", "h3"].map(|h| started_at_unit(h, "wso2ei"))
    });
    let t_again = t1.elapsed();

    // A wrong member address (10.231.0.31 for h3): h2's cluster gate fails naming the host and the
    // member; the load balancer is not touched.
    let members = p.write(
        "members.yaml",
        "wso2_cluster_members:\n  - { host: 10.231.0.12, port: 4100 }\n  - { host: 10.231.0.31, port: 4100 }\n",
    );
    let wrong = format!("@{}", members.display());
    let t2 = Instant::now();
    let bad = run(
        &p,
        INVENTORY,
        "apply",
        &[],
        &["--json", "-e", &wrong, "-e", "wso2_health_timeout=30"],
    );
    let t_bad = t2.elapsed();
    assert_eq!(bad.code, 1, "{}", bad.all());
    let gate = bad.event("h2", "cluster health | health gate");
    assert_eq!(gate["status"], "failed", "{gate}");
    let msg = gate["message"].as_str().unwrap();
    assert!(
        msg.contains("h2:") && msg.contains("member 10.231.0.31:4100 unreachable"),
        "{msg}"
    );
    assert_eq!(
        bad.event("h4", "nginx_lb | nginx.conf")["status"],
        "skipped_dependency"
    );

    // Restored: the right members again, and the cluster converges.
    let t3 = Instant::now();
    let fixed = run(&p, INVENTORY, "apply", &[], &["--json"]);
    assert_eq!(fixed.code, 0, "{}", fixed.all());
    for (h, addr, other, _) in NODES {
        let health = health_at(&ca, &format!("https://{addr}:9443/health"), None)
            .unwrap_or_else(|| panic!("{h} is not healthy again"));
        assert_eq!(
            health["members"][format!("{other}:4100")],
            "joined",
            "{health}"
        );
    }
    let plan = run(&p, INVENTORY, "plan", &[], &[]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    eprintln!(
        "timings: first apply (incl. pack build) {t_first:?}, no-op apply {t_again:?}, \
         wrong member {t_bad:?}, restore {:?}, total {:?}",
        t3.elapsed(),
        t0.elapsed()
    );
}
