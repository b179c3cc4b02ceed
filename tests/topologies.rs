//! The three API-M 4.x topologies as configured, without a lab: `render` writes every file the example
//! inventories' playbooks would write, and each value the guides set is checked in it (deployment.toml
//! through a TOML parser, the nginx virtual hosts, the unit, jndi2.properties).

mod common;
use common::wso2::{build_pack, project};
use common::Project;
use std::path::{Path, PathBuf};
use toml_edit::{DocumentMut, Item};

/// Renders `inventory` (with `edit` applied and `extra` arguments) into a fresh directory.
fn render(inventory: &str, edit: impl Fn(String) -> String, extra: &[&str]) -> (Project, PathBuf) {
    let p = project(inventory, edit);
    build_pack(&p.path().join("inventory/files"));
    let out = p.path().join("rendered");
    let mut args = vec!["render", inventory, "--out", "rendered", "--no-color"];
    args.extend_from_slice(extra);
    let r = p.run(&args);
    assert_eq!(r.code, 0, "{}", r.all());
    (p, out)
}

fn read(out: &Path, host: &str, path: &str) -> String {
    let f = out.join(host).join(path.trim_start_matches('/'));
    std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()))
}

fn toml(out: &Path, host: &str) -> DocumentMut {
    read(
        out,
        host,
        "/opt/wso2am-4.2.0/repository/conf/deployment.toml",
    )
    .parse()
    .expect("deployment.toml parses")
}

/// The value at a dotted path (`a.b.c`, array-of-tables index as a number) as TOML text.
fn get(doc: &DocumentMut, path: &str) -> String {
    let mut item: &Item = doc.as_item();
    for k in path.split('.') {
        item = match k.parse::<usize>() {
            Ok(i) => &item[i],
            Err(_) => &item[k],
        };
        assert!(!item.is_none(), "no {path} in\n{doc}");
    }
    let v = item
        .as_value()
        .unwrap_or_else(|| panic!("{path} is not a value"));
    match v.as_str() {
        Some(s) => s.to_string(),
        None => v.to_string().trim().to_string(),
    }
}

fn count(doc: &DocumentMut, path: &str) -> usize {
    let mut item: &Item = doc.as_item();
    for k in path.split('.') {
        item = &item[k];
    }
    item.as_array_of_tables().map_or(0, |a| a.len())
}

/// What every 4.x node gets, whatever the topology: the transports behind a load balancer, explicit
/// primary/internal/tls keystores, the gateway environment's four URLs on the gateway hostname, and a
/// unit with the JVM options.
fn common_node(out: &Path, host: &str, gateway_hostname: &str) {
    let d = toml(out, host);
    assert_eq!(get(&d, "transport.http.properties.port"), "9763");
    assert_eq!(get(&d, "transport.http.properties.proxyPort"), "80");
    assert_eq!(get(&d, "transport.https.properties.port"), "9443");
    assert_eq!(get(&d, "transport.https.properties.proxyPort"), "443");
    for (ks, file, alias) in [
        ("primary", "wso2carbon.jks", "wso2carbon"),
        ("internal", "wso2carbon.jks", "wso2carbon"),
        ("tls", "cluster-tls.jks", "cluster-tls"),
    ] {
        assert_eq!(get(&d, &format!("keystore.{ks}.file_name")), file, "{host}");
        assert_eq!(get(&d, &format!("keystore.{ks}.alias")), alias, "{host}");
        assert_eq!(get(&d, &format!("keystore.{ks}.password")), "(sensitive)");
        assert_eq!(get(&d, &format!("keystore.{ks}.type")), "JKS");
    }
    assert_eq!(get(&d, "truststore.file_name"), "client-truststore.jks");
    let env = "apim.gateway.environment.0";
    let g = gateway_hostname;
    assert_eq!(
        get(&d, &format!("{env}.ws_endpoint")),
        format!("ws://{g}:9099")
    );
    assert_eq!(
        get(&d, &format!("{env}.wss_endpoint")),
        format!("wss://{g}:8099")
    );
    assert_eq!(
        get(&d, &format!("{env}.http_endpoint")),
        format!("http://{g}:${{http.nio.port}}")
    );
    assert_eq!(
        get(&d, &format!("{env}.https_endpoint")),
        format!("https://{g}:${{https.nio.port}}")
    );
    let unit = read(out, host, "/etc/systemd/system/wso2am.service");
    for opt in [
        "-Xmx512m",
        "-XX:+HeapDumpOnOutOfMemoryError",
        "-Xlog:gc*:file=/opt/wso2am/repository/logs/gc.log",
    ] {
        assert!(unit.contains(opt), "{host}: {opt} not in\n{unit}");
    }
    assert!(
        unit.contains("ExecStart=/opt/wso2am/bin/api-manager.sh"),
        "{unit}"
    );
}

/// The load balancer's two virtual hosts, one file each: the portal sticky on 9443 of `portal_nodes`,
/// the gateway proxied (not redirected) on 80 -> 8280, 443 -> 8243 and WebSocket 9099/8099 of
/// `gateway_nodes` (`address` or `address+offset`).
fn load_balancer(out: &Path, lb: &str, portal: (&str, &[&str]), gateway: (&str, &[&str])) {
    let conf = read(out, lb, &format!("/etc/nginx/conf.d/{}.conf", portal.0));
    assert!(
        conf.contains(&format!("server_name {};", portal.0)),
        "{conf}"
    );
    assert!(conf.contains("ip_hash;"), "portal not sticky:\n{conf}");
    for n in portal.1 {
        let (ip, off) = n.split_once('+').unwrap_or((n, "0"));
        let port = 9443 + off.parse::<u32>().unwrap();
        assert!(
            conf.contains(&format!("server {ip}:{port} ")),
            "{n}:\n{conf}"
        );
    }
    assert!(
        conf.contains("return 301 https://$host$request_uri;"),
        "{conf}"
    );
    let gw = read(out, lb, &format!("/etc/nginx/conf.d/{}.conf", gateway.0));
    assert!(!gw.contains("return 301"), "gateway HTTP redirects:\n{gw}");
    for (listen, upstream) in [
        ("listen 80;", "proxy_pass http://apim_gw_http;"),
        ("listen 443 ssl;", "proxy_pass https://apim_gw_https;"),
        ("listen 9099;", "proxy_pass http://apim_gw_ws;"),
        ("listen 8099 ssl;", "proxy_pass https://apim_gw_wss;"),
    ] {
        assert!(
            gw.contains(listen) && gw.contains(upstream),
            "{listen}:\n{gw}"
        );
    }
    for n in gateway.1 {
        for port in ["8280", "8243", "9099", "8099"] {
            let (ip, off) = n.split_once('+').unwrap_or((n, "0"));
            let port: u32 = port.parse::<u32>().unwrap() + off.parse::<u32>().unwrap();
            assert!(
                gw.contains(&format!("server {ip}:{port} ")),
                "{n} {port}:\n{gw}"
            );
        }
    }
    for c in [&conf, &gw] {
        for h in [
            "proxy_set_header Host $http_host;",
            "proxy_set_header X-Forwarded-Host $host;",
            "proxy_set_header X-Forwarded-Server $host;",
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "proxy_set_header Upgrade $http_upgrade;",
            "proxy_set_header Connection \"upgrade\";",
            "proxy_read_timeout 5m;",
            "proxy_send_timeout 5m;",
            "proxy_next_upstream error timeout http_502 http_503 http_504;",
            "max_fails=1 fail_timeout=1s;",
        ] {
            assert!(c.contains(h), "{h} missing:\n{c}");
        }
    }
    let main = read(out, lb, "/etc/nginx/nginx.conf");
    assert!(main.contains("include /etc/nginx/conf.d/*.conf;"), "{main}");
}

const AA: &str = "inventory/lab-active-active.yaml";
const RSYNC: &str = "inventory/lab-gateway-rsync.yaml";
const SHARED: &str = "inventory/lab-gateway-shared-fs.yaml";

#[test]
fn active_active_with_rsync_as_the_guide_sets_it() {
    let (_p, out) = render(AA, |s| s, &[]);
    for (host, peer, peer_addr) in [("h2", "h3", "10.231.0.13"), ("h3", "h2", "10.231.0.12")] {
        common_node(&out, host, "gw.am.lab.internal");
        let d = toml(&out, host);
        assert_eq!(get(&d, "server.hostname"), "api.am.lab.internal");
        // Throttling: both traffic managers, each once.
        assert_eq!(count(&d, "apim.throttling.url_group"), 2);
        let urls: Vec<String> = (0..2)
            .map(|i| {
                get(
                    &d,
                    &format!("apim.throttling.url_group.{i}.traffic_manager_urls"),
                )
            })
            .collect();
        assert!(
            urls.iter().any(|u| u.contains("tcp://10.231.0.12:9611")),
            "{urls:?}"
        );
        assert!(
            urls.iter().any(|u| u.contains("tcp://10.231.0.13:9611")),
            "{urls:?}"
        );
        // jndi2.properties: the other node's broker, credentials not shown.
        let jndi = read(
            &out,
            host,
            "/opt/wso2am-4.2.0/repository/conf/jndi2.properties",
        );
        assert!(
            jndi.contains(&format!("brokerlist='tcp://{peer_addr}:5672'")),
            "{host} -> {peer}: {jndi}"
        );
        // The placeholder is percent-encoded like the password it stands for.
        assert!(
            jndi.contains("amqp://admin:%28sensitive%29@clientid/carbon"),
            "{jndi}"
        );
    }
    // rsync: node 1 publishes to itself and owns the artifacts; node 2 points at node 1.
    let env = "apim.gateway.environment.0.service_url";
    assert_eq!(
        get(&toml(&out, "h2"), env),
        "https://localhost:${mgt.transport.https.port}/services/"
    );
    assert_eq!(
        get(&toml(&out, "h3"), env),
        "https://10.231.0.12:9443/services/"
    );
    let sync = read(&out, "h2", "/usr/local/bin/wso2-sync");
    assert!(
        sync.contains("10.231.0.13") && !sync.contains("10.231.0.12 "),
        "{sync}"
    );
    // Publishers: written by node 1 only (node 2 receives them with the sync).
    let publisher =
        "/opt/wso2am-4.2.0/repository/deployment/server/eventpublishers/jmsEventPublisher-2.xml";
    assert!(read(&out, "h2", publisher).contains("repository/conf/jndi2.properties"));
    assert!(!out
        .join("h3")
        .join(publisher.trim_start_matches('/'))
        .exists());
    load_balancer(
        &out,
        "h4",
        ("api.am.lab.internal", &["10.231.0.12", "10.231.0.13"]),
        ("gw.am.lab.internal", &["10.231.0.12", "10.231.0.13"]),
    );
}

#[test]
fn active_active_with_nfs_offsets_and_hazelcast() {
    // h3 at offset 1 (two nodes on one machine, say): every URL and upstream pointing at h3 uses it.
    let (_p, out) = render(
        AA,
        |s| {
            s.replace(
                "h3: { address: 10.231.0.13 }",
                "h3: { address: 10.231.0.13, vars: { wso2_port_offset: 1 } }",
            )
            .replace(
                "lb: { hosts: [h4] }",
                "lb: { hosts: [h4] }\n  nfs_server: { hosts: [h1] }",
            )
        },
        &["-e", "wso2_artifact_sync=nfs", "-e", "wso2_hazelcast=true"],
    );
    let d = toml(&out, "h2");
    let urls: Vec<String> = (0..2)
        .flat_map(|i| {
            [
                get(
                    &d,
                    &format!("apim.throttling.url_group.{i}.traffic_manager_urls"),
                ),
                get(
                    &d,
                    &format!("apim.throttling.url_group.{i}.traffic_manager_auth_urls"),
                ),
            ]
        })
        .collect();
    for u in [
        "tcp://10.231.0.12:9611",
        "ssl://10.231.0.12:9711",
        "tcp://10.231.0.13:9612",
        "ssl://10.231.0.13:9712",
    ] {
        assert!(urls.iter().any(|x| x.contains(u)), "{u} not in {urls:?}");
    }
    assert_eq!(get(&toml(&out, "h3"), "server.offset"), "1");
    let jndi = read(
        &out,
        "h2",
        "/opt/wso2am-4.2.0/repository/conf/jndi2.properties",
    );
    assert!(
        jndi.contains("brokerlist='tcp://10.231.0.13:5673'"),
        "{jndi}"
    );
    // NFS: both publish locally; no rsync.
    for h in ["h2", "h3"] {
        assert_eq!(
            get(&toml(&out, h), "apim.gateway.environment.0.service_url"),
            "https://localhost:${mgt.transport.https.port}/services/"
        );
        assert!(!out.join(h).join("usr/local/bin/wso2-sync").exists());
        let d = toml(&out, h);
        assert_eq!(get(&d, "clustering.membership_scheme"), "wka");
        let members = get(&d, "clustering.members");
        assert!(
            members.contains("10.231.0.12:4000") && members.contains("10.231.0.13:4001"),
            "{members}"
        );
    }
    load_balancer(
        &out,
        "h4",
        ("api.am.lab.internal", &["10.231.0.12", "10.231.0.13+1"]),
        ("gw.am.lab.internal", &["10.231.0.12", "10.231.0.13+1"]),
    );
}

#[test]
fn gateway_with_rsync_as_the_guide_sets_it() {
    let (_p, out) = render(RSYNC, |s| s, &[]);
    common_node(&out, "h2", "am.lab.internal");
    assert_eq!(
        get(&toml(&out, "h2"), "server.hostname"),
        "mgt.am.lab.internal"
    );
    for w in ["h3", "h4"] {
        common_node(&out, w, "am.lab.internal");
        let d = toml(&out, w);
        assert_eq!(get(&d, "server.hostname"), "am.lab.internal");
        // Workers publish throttling data to the manager's traffic manager and deploy through it.
        assert_eq!(count(&d, "apim.throttling.url_group"), 1);
        assert!(get(&d, "apim.throttling.url_group.0.traffic_manager_urls")
            .contains("tcp://10.231.0.12:9611"));
        assert_eq!(
            get(&d, "apim.gateway.environment.0.service_url"),
            "https://10.231.0.12:9443/services/"
        );
        let unit = read(&out, w, "/etc/systemd/system/wso2am.service");
        assert!(
            unit.contains("api-manager.sh -Dprofile=gateway-worker"),
            "{unit}"
        );
    }
    let unit = read(&out, "h2", "/etc/systemd/system/wso2am.service");
    assert!(!unit.contains("-Dprofile"), "{unit}");
    let sync = read(&out, "h2", "/usr/local/bin/wso2-sync");
    assert!(sync.contains("10.231.0.13 10.231.0.14"), "{sync}");
    load_balancer(
        &out,
        "h1",
        ("mgt.am.lab.internal", &["10.231.0.12"]),
        ("am.lab.internal", &["10.231.0.13", "10.231.0.14"]),
    );
    let gw = read(&out, "h1", "/etc/nginx/conf.d/am.lab.internal.conf");
    assert!(
        !gw.contains("10.231.0.12:"),
        "the manager serves no API traffic:\n{gw}"
    );
}

#[test]
fn gateway_with_a_shared_file_system_as_the_guide_sets_it() {
    let (_p, out) = render(SHARED, |s| s, &[]);
    for n in ["v2", "v3"] {
        common_node(&out, n, "gw.am.lab.internal");
        let d = toml(&out, n);
        assert_eq!(get(&d, "server.hostname"), "gw.am.lab.internal");
        assert_eq!(
            get(&d, "apim.gateway.environment.0.service_url"),
            "https://localhost:${mgt.transport.https.port}/services/"
        );
        assert_eq!(count(&d, "apim.throttling.url_group"), 2);
        let unit = read(&out, n, "/etc/systemd/system/wso2am.service");
        assert!(
            !unit.contains("-Dprofile"),
            "every node is manager and worker: {unit}"
        );
        assert!(!out.join(n).join("usr/local/bin/wso2-sync").exists());
    }
    load_balancer(
        &out,
        "h2",
        ("api.am.lab.internal", &["10.231.0.102", "10.231.0.103"]),
        ("gw.am.lab.internal", &["10.231.0.102", "10.231.0.103"]),
    );
}
