//! The distributed gateway with a shared file system end to end: `playbooks/apim-gateway-shared-fs.yaml`
//! with the example lab inventory: h1 MariaDB and h2 nginx (nspawn hosts), v1 the NFS server and v2 + v3
//! gateway nodes (qemu VMs: NFS needs a kernel of its own). Every node is manager and worker, its
//! `repository/deployment/server` is the share, seeded from the pack before the first mount.

mod common;
use common::lab;
use common::vm::ssh;
use common::wso2::{converged, first_converge, gateway_reaches, health_at};

const INVENTORY: &str = "inventory/lab-gateway-shared-fs.yaml";
const NODES: [(&str, &str); 2] = [("v2", "10.231.0.102"), ("v3", "10.231.0.103")];
const SERVER: &str = "/opt/wso2am/repository/deployment/server";
const EXPORT: &str = "/srv/wso2/deployment-server";

/// `cmd` on VM `v` must succeed; its trimmed output.
fn on(v: &str, cmd: &str) -> String {
    let (code, out) = ssh(v, cmd);
    assert_eq!(code, 0, "{v}: `{cmd}` failed: {out}");
    out.trim().to_string()
}

/// When the VM's wso2am last became active (its own monotonic clock; changes on a restart).
fn started(v: &str) -> String {
    on(
        v,
        "systemctl show -p ActiveEnterTimestampMonotonic --value wso2am",
    )
}

#[test]
fn the_gateway_on_a_shared_file_system_converges_as_the_guide_lays_it_out() {
    let Some((_lab, _)) = lab::acquire() else {
        return;
    };
    let Some((_vms, _)) = common::vm::fresh(3, "gateway_shared_fs_lab") else {
        return;
    };
    let (p, ca) = first_converge(INVENTORY, &["-e", "wso2_health_timeout=300"]);
    // Every file holding a secret is private to the product's user, which is not root.
    let checked = common::wso2::assert_secret_files_private(&p, INVENTORY, "wso2", "/opt/");
    assert!(checked >= 5, "only {checked} secret files found");

    // The share: seeded with the pack's deployment directory (the marker last), mounted on both nodes.
    on(
        "v1",
        &format!("test -d {EXPORT}/synapse-configs/default/api"),
    );
    on("v1", &format!("test -f {EXPORT}/.apim-provision-seeded"));
    for (n, addr) in NODES {
        let m = on(n, &format!("findmnt -n -o FSTYPE,SOURCE {SERVER}"));
        assert!(
            m.starts_with("nfs") && m.contains(&format!("10.231.0.101:{EXPORT}")),
            "{n}: {m}"
        );
        let hosts = on(n, "cat /etc/hosts");
        assert!(
            hosts.contains(&format!("{addr} gw.am.lab.internal")),
            "{n}: {hosts}"
        );
        // Healthy, peers included (both traffic managers), every node manager and worker.
        let h = health_at(&ca, &format!("https://{addr}:9443/health"), None)
            .unwrap_or_else(|| panic!("{n} is not healthy"));
        assert_eq!(h["profile"], "default", "{n}: {h}");
        assert_eq!(h["hostname"], "gw.am.lab.internal", "{n}: {h}");
        assert_eq!(h["datasources"]["apim_db"], "ok", "{n}: {h}");
        for (_, peer) in NODES {
            assert_eq!(h["peers"][format!("tcp://{peer}:9611")], "ok", "{n}: {h}");
        }
    }

    // The load balancer reaches both nodes for API traffic.
    gateway_reaches(
        &ca,
        "gw.am.lab.internal",
        "10.231.0.12",
        &NODES.map(|(_, a)| a),
    );

    // An API deployed on any node is on every node at once.
    let api = format!("{SERVER}/synapse-configs/default/api/PizzaShack.xml");
    on(
        "v3",
        &format!("echo '<api name=\"PizzaShack\"/>' > {api} && chown wso2:wso2 {api} && sync"),
    );
    on("v2", &format!("grep -q PizzaShack {api}"));
    assert_eq!(
        on("v2", &format!("stat -c %U {api}")),
        "wso2",
        "ids differ between nodes"
    );

    // Nothing to do the second time, and nothing restarted.
    converged(&p, INVENTORY, &[], || NODES.map(|(n, _)| started(n)));
}
