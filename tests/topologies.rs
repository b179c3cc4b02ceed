//! The WSO2 topologies as configured, without a lab: `render` writes every file the example inventories'
//! playbooks would write (the packs' shipped XML with the playbooks' edits applied, from the stand-in
//! packs), and each value the guides set is checked in it: deployment.toml through a TOML parser for
//! the three API-M 4.x topologies, the XML of the API-M 1.x distributed components (both shapes) and of
//! the EI cluster through an XML parser, the nginx virtual hosts, the units, the sync script.

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

// ---- The Carbon 4 topologies: XML the guides set, as render leaves it (the pack's shipped files with
// the playbook's edits applied, and the files written whole).

const COMPONENTS: &str = "inventory/lab-distributed-components.yaml";
const COMPONENTS_ONE_HOST: &str = "inventory/lab-distributed-components-one-host.yaml";
const EI: &str = "inventory/lab-ei-cluster.yaml";

/// A rendered XML file, parsed.
struct Xml(String);

impl Xml {
    fn at(out: &Path, host: &str, path: &str) -> Xml {
        let text = read(out, host, path);
        roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{host}:{path}: {e}"));
        Xml(text)
    }

    fn doc(&self) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(&self.0).unwrap()
    }

    /// The elements at a slash path of local names below the root (`a/b/c`), where each step may carry
    /// one `[@attr=value]` or `[child=text]` filter.
    fn all(&self, path: &str) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
        let doc = self.doc();
        let mut here = vec![doc.root_element()];
        for step in steps(path) {
            let (name, filter) = match step.split_once('[') {
                Some((n, f)) => (n, Some(f.trim_end_matches(']'))),
                None => (step, None),
            };
            here = here
                .iter()
                .flat_map(|e| e.children().filter(|c| c.is_element()))
                .filter(|c| c.tag_name().name() == name)
                .filter(|c| match filter {
                    None => true,
                    Some(f) => {
                        let (k, v) = f.split_once('=').unwrap();
                        match k.strip_prefix('@') {
                            Some(a) => c.attribute(a) == Some(v),
                            None => c.children().any(|x| {
                                x.tag_name().name() == k && x.text().map(str::trim) == Some(v)
                            }),
                        }
                    }
                })
                .collect();
        }
        here.iter()
            .map(|e| {
                let text = e.text().unwrap_or("").trim().to_string();
                let attrs = e
                    .attributes()
                    .map(|a| (a.name().to_string(), a.value().to_string()))
                    .collect();
                (text, attrs)
            })
            .collect()
    }

    /// The text of the one element at `path`.
    fn text(&self, path: &str) -> String {
        let all = self.all(path);
        assert_eq!(all.len(), 1, "{path}: {} matches in\n{}", all.len(), self.0);
        all[0].0.clone()
    }

    fn attr(&self, path: &str, attr: &str) -> String {
        let all = self.all(path);
        assert_eq!(all.len(), 1, "{path}: {} matches in\n{}", all.len(), self.0);
        all[0]
            .1
            .get(attr)
            .cloned()
            .unwrap_or_else(|| panic!("{path} has no @{attr}"))
    }

    fn texts(&self, path: &str) -> Vec<String> {
        self.all(path).into_iter().map(|(t, _)| t).collect()
    }
}

/// The steps of a path: split at each `/` outside `[...]` (filter values are paths themselves).
fn steps(path: &str) -> Vec<&str> {
    let (mut out, mut start, mut depth) = (Vec::new(), 0, 0);
    for (i, c) in path.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '/' if depth == 0 => {
                out.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&path[start..]);
    out
}

/// The datasources of a master-datasources.xml: name, JNDI name, URL, username.
fn datasources(x: &Xml) -> Vec<(String, String, String, String)> {
    let doc = x.doc();
    doc.descendants()
        .filter(|n| n.has_tag_name("datasource"))
        .map(|d| {
            let get = |path: &[&str]| {
                let mut e = d;
                for p in path {
                    e = e
                        .children()
                        .find(|c| c.has_tag_name(*p))
                        .unwrap_or_else(|| panic!("datasource without {p}"));
                }
                e.text().unwrap_or("").trim().to_string()
            };
            (
                get(&["name"]),
                get(&["jndiConfig", "name"]),
                get(&["definition", "configuration", "url"]),
                get(&["definition", "configuration", "username"]),
            )
        })
        .collect()
}

/// The inventory's task graph (what `validate` and `plan` would run), as `graph --format json` gives it.
fn graph_of(p: &Project, inventory: &str) -> serde_json::Value {
    let r = p.run(&["graph", inventory, "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    serde_json::from_str(&r.stdout).unwrap()
}

/// The task names of each host in a graph.
fn tasks(g: &serde_json::Value) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out = std::collections::BTreeMap::<String, Vec<String>>::new();
    for n in g["nodes"].as_array().unwrap() {
        out.entry(n["host"].as_str().unwrap().to_string())
            .or_default()
            .push(n["task"].as_str().unwrap().to_string());
    }
    out
}

/// True when graph `g` runs `second` on its host only after `first` on its own: a path of edges from
/// one to the other.
fn runs_after(g: &serde_json::Value, first: (&str, &str), second: (&str, &str)) -> bool {
    let id = |(host, task): (&str, &str)| {
        g["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["host"] == host && n["task"] == task)
            .unwrap_or_else(|| panic!("no {task} on {host}"))["id"]
            .as_u64()
            .unwrap()
    };
    let (from, to) = (id(first), id(second));
    let mut todo = vec![from];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(n) = todo.pop() {
        if n == to {
            return true;
        }
        if seen.insert(n) {
            for e in g["edges"].as_array().unwrap() {
                if e["from"].as_u64() == Some(n) {
                    todo.push(e["to"].as_u64().unwrap());
                }
            }
        }
    }
    false
}

/// Every value the distributed-components guide sets, for the components at `hosts` (component ->
/// inventory host) with `offsets`, and the load balancer on h1.
fn distributed_components(inventory: &str, hosts: [(&str, &str); 4], offsets: [(&str, u16); 4]) {
    let (p, out) = render(inventory, |s| s, &[]);
    let g = graph_of(&p, inventory);
    let graph = tasks(&g);
    let off = |c: &str| offsets.iter().find(|(n, _)| *n == c).unwrap().1;
    let host = |c: &str| hosts.iter().find(|(n, _)| *n == c).unwrap().1;
    let names = [
        ("keymanager", "keymanager.apim-wso2.com"),
        ("gateway", "gwmanager.apim-wso2.com"),
        ("publisher", "publisher.apim-wso2.com"),
        ("store", "store.apim-wso2.com"),
    ];
    let name = |c: &str| names.iter().find(|(n, _)| *n == c).unwrap().1;
    // The guide's table: which component uses which database.
    let uses = [
        ("keymanager", vec!["WSO2AM_DB", "WSO2UM_DB"]),
        ("gateway", vec!["WSO2AM_DB"]),
        ("publisher", vec!["WSO2AM_DB", "WSO2UM_DB", "WSO2REG_DB"]),
        ("store", vec!["WSO2AM_DB", "WSO2UM_DB", "WSO2REG_DB"]),
    ];
    let db = [
        ("WSO2AM_DB", "jdbc/WSO2AM_DB", "apimgtdb"),
        ("WSO2UM_DB", "jdbc/WSO2UM_DB", "userdb"),
        ("WSO2REG_DB", "jdbc/WSO2REG_DB", "regdb"),
    ];
    for (c, used) in &uses {
        let h = host(c);
        let conf = format!("/opt/wso2am-{c}/wso2am-1.10.0/repository/conf");
        let carbon = Xml::at(&out, h, &format!("{conf}/carbon.xml"));
        assert_eq!(carbon.text("Ports/Offset"), off(c).to_string(), "{c}");
        for k in [
            "Security/KeyStore/Password",
            "Security/KeyStore/KeyPassword",
            "Security/TrustStore/Password",
        ] {
            assert_eq!(carbon.text(k), "(sensitive)", "{c}: {k}");
        }
        // Datasources: the local registry stays the pack's H2; the rest as the table says.
        let ds = datasources(&Xml::at(
            &out,
            h,
            &format!("{conf}/datasources/master-datasources.xml"),
        ));
        let got: Vec<&str> = ds.iter().map(|d| d.0.as_str()).collect();
        let mut want = vec!["WSO2_CARBON_DB"];
        want.extend(used.iter().copied());
        assert_eq!(got, want, "{c}");
        assert!(ds[0].2.starts_with("jdbc:h2:"), "{c}: {ds:?}");
        for (n, jndi, url, user) in &ds[1..] {
            let (_, want_jndi, database) = db.iter().find(|d| d.0 == n).unwrap();
            assert_eq!(jndi, want_jndi);
            assert_eq!(
                url,
                &format!("jdbc:mariadb://{database}.mysql-wso2.com:3306/{database}?autoReconnect=true&relaxAutoCommit=true")
            );
            assert_eq!(user, "apimuser");
        }
        // api-manager.xml: the API-M database, and whom the component calls, at its name and offset.
        let am = Xml::at(&out, h, &format!("{conf}/api-manager.xml"));
        assert_eq!(am.text("DataSourceName"), "jdbc/WSO2AM_DB", "{c}");
        let km = format!(
            "https://keymanager.apim-wso2.com:{}/services/",
            9443 + off("keymanager")
        );
        let gw = format!(
            "https://gwmanager.apim-wso2.com:{}/services/",
            9443 + off("gateway")
        );
        let own =
            "https://${carbon.local.ip}:${mgt.transport.https.port}${carbon.context}services/";
        let (key, auth, gateway) = match *c {
            "keymanager" => (own.to_string(), own.to_string(), own.to_string()),
            "gateway" => (km.clone(), own.to_string(), own.to_string()),
            _ => (km.clone(), km.clone(), gw.clone()),
        };
        assert_eq!(am.text("APIKeyManager/ServerURL"), key, "{c}");
        assert_eq!(am.text("AuthManager/ServerURL"), auth, "{c}");
        assert_eq!(am.text("APIGateway/ServerURL"), gateway, "{c}");
        if matches!(*c, "publisher" | "store") {
            assert_eq!(
                am.text("APIGateway/APIEndpointURL"),
                format!(
                    "http://gwmanager.apim-wso2.com:{},https://gwmanager.apim-wso2.com:{}",
                    8280 + off("gateway"),
                    8243 + off("gateway")
                )
            );
            for e in ["APIKeyManager", "AuthManager", "APIGateway"] {
                assert_eq!(am.text(&format!("{e}/Username")), "admin");
                assert_eq!(am.text(&format!("{e}/Password")), "(sensitive)");
            }
        }
        // user-mgt.xml: the JDBC user store on userdb where the table says so.
        let um = Xml::at(&out, h, &format!("{conf}/user-mgt.xml"));
        let store_ds = um.texts(
            "Realm/UserStoreManager[@class=org.wso2.carbon.user.core.jdbc.JDBCUserStoreManager]/Property[@name=dataSource]",
        );
        if used.contains(&"WSO2UM_DB") {
            assert_eq!(store_ds, ["jdbc/WSO2UM_DB"], "{c}");
        } else {
            assert!(store_ds.is_empty(), "{c}: {store_ds:?}");
        }
        assert_eq!(
            um.text("Realm/Configuration/AdminUser/Password"),
            "(sensitive)"
        );
        // registry.xml: the Publisher and Store mount the governance registry from regdb, each at its name.
        let registry = format!("{conf}/registry.xml");
        if matches!(*c, "publisher" | "store") {
            let r = Xml::at(&out, h, &registry);
            assert_eq!(
                r.text("dbConfig[@name=wso2registry]/dataSource"),
                "jdbc/WSO2CarbonDB"
            );
            assert_eq!(
                r.text("dbConfig[@name=govregistry]/dataSource"),
                "jdbc/WSO2REG_DB"
            );
            assert_eq!(
                r.attr("remoteInstance[id=gov]", "url"),
                format!("https://{}", name(c))
            );
            assert_eq!(r.text("remoteInstance[id=gov]/dbConfig"), "govregistry");
            assert_eq!(r.text("remoteInstance[id=gov]/readOnly"), "false");
            assert_eq!(r.text("mount[@path=/_system/governance]/instanceId"), "gov");
            assert_eq!(
                r.text("mount[@path=/_system/governance]/targetPath"),
                "/_system/governance"
            );
        } else {
            assert!(
                !out.join(h).join(registry.trim_start_matches('/')).exists(),
                "{c}"
            );
        }
        // Its own unit, start script and health gate.
        let unit = read(&out, h, &format!("/etc/systemd/system/wso2am-{c}.service"));
        assert!(
            unit.contains(&format!(
                "ExecStart=/opt/wso2am-{c}/current/bin/wso2server.sh"
            )) && unit.contains(&format!("Description=WSO2 API Manager 1.10.0 ({c})")),
            "{unit}"
        );
        read(&out, h, &format!("/usr/local/sbin/wso2am-{c}-health-gate"));
        // The web apps of the others' portals are removed.
        let tasks = &graph[h];
        for app in ["publisher", "store"] {
            let removal = format!("{c} | removed jaggeryapps/{app}");
            assert_eq!(tasks.contains(&removal), *c != app, "{removal}: {tasks:?}");
        }
    }
    // Start order: each component starts once the one before passed its health gate.
    let order = ["keymanager", "publisher", "store", "gateway"];
    for w in order.windows(2) {
        let gate = format!("{} health | health gate", w[0]);
        let start = format!("{} service | service", w[1]);
        assert!(
            runs_after(&g, (host(w[0]), &gate), (host(w[1]), &start)),
            "{start} does not wait for {gate}"
        );
    }
    // The databases, each with its dbscript, and the one account.
    let db_tasks = &graph["h1"];
    for want in [
        "wso2_databases | database apimgtdb",
        "wso2_databases | database userdb",
        "wso2_databases | database regdb",
        "wso2_databases | dbscript regdb",
        "wso2_databases | product account",
    ] {
        assert!(db_tasks.iter().any(|t| t == want), "{want}: {db_tasks:?}");
    }
    // The load balancer where the guide has its ELB: Publisher and Store on 443, the Gateway on 80/443.
    for (file, listen, c, port) in [
        (
            "publisher.apim-wso2.com.conf",
            "listen 443 ssl;",
            "publisher",
            9443,
        ),
        ("store.apim-wso2.com.conf", "listen 443 ssl;", "store", 9443),
        (
            "gwmanager.apim-wso2.com.http.conf",
            "listen 80;",
            "gateway",
            8280,
        ),
        (
            "gwmanager.apim-wso2.com.https.conf",
            "listen 443 ssl;",
            "gateway",
            8243,
        ),
    ] {
        let conf = read(&out, "h1", &format!("/etc/nginx/conf.d/{file}"));
        let addr = match host(c) {
            "h2" => "10.231.0.12",
            "h3" => "10.231.0.13",
            "h4" => "10.231.0.14",
            _ => "10.231.0.15",
        };
        assert!(conf.contains(listen), "{file}:\n{conf}");
        assert!(
            conf.contains(&format!("server {addr}:{} ", port + off(c))),
            "{file}:\n{conf}"
        );
        assert!(
            conf.contains(&format!("server_name {};", name(c))),
            "{conf}"
        );
        if listen.contains("ssl") {
            assert!(
                conf.contains(&format!("proxy_ssl_name {};", name(c))),
                "{conf}"
            );
        }
    }
}

#[test]
fn distributed_components_one_host_each_as_the_guide_sets_them() {
    distributed_components(
        COMPONENTS,
        [
            ("keymanager", "h2"),
            ("publisher", "h3"),
            ("store", "h4"),
            ("gateway", "h5"),
        ],
        [
            ("keymanager", 0),
            ("publisher", 0),
            ("store", 0),
            ("gateway", 0),
        ],
    );
}

#[test]
fn distributed_components_on_one_host_at_the_guides_offsets() {
    distributed_components(
        COMPONENTS_ONE_HOST,
        [
            ("keymanager", "h2"),
            ("publisher", "h2"),
            ("store", "h2"),
            ("gateway", "h2"),
        ],
        [
            ("keymanager", 1),
            ("gateway", 2),
            ("publisher", 3),
            ("store", 4),
        ],
    );
}

#[test]
fn ei_cluster_as_the_guide_sets_it() {
    let (p, out) = render(EI, |s| s, &[]);
    let conf = "/opt/wso2ei-6.6.0/conf";
    let nodes = [("h2", "10.231.0.12", 1), ("h3", "10.231.0.13", 2)];
    for (h, addr, n) in nodes {
        let carbon = Xml::at(&out, h, &format!("{conf}/carbon.xml"));
        assert_eq!(carbon.text("HostName"), "ei.wso2.com");
        assert_eq!(carbon.text("Ports/Offset"), "0");
        // Hazelcast wka clustering: this node's address, the guide's port, the other node as member.
        let axis2 = Xml::at(&out, h, &format!("{conf}/axis2/axis2.xml"));
        assert_eq!(axis2.attr("clustering", "enable"), "true");
        for (param, want) in [
            ("membershipScheme", "wka"),
            ("domain", "wso2.ei.domain"),
            ("localMemberHost", addr),
            ("localMemberPort", "4100"),
        ] {
            assert_eq!(
                axis2.text(&format!("clustering/parameter[@name={param}]")),
                want,
                "{h}"
            );
        }
        let others: Vec<String> = nodes
            .iter()
            .filter(|o| o.0 != h)
            .map(|o| o.1.to_string())
            .collect();
        assert_eq!(
            axis2.texts("clustering/members/member/hostName"),
            others,
            "{h}"
        );
        assert_eq!(
            axis2.texts("clustering/members/member/port"),
            ["4100"],
            "{h}"
        );
        // The WSDL endpoints as clients reach them, through the load balancer.
        assert_eq!(
            axis2.text("transportReceiver[@name=http]/parameter[@name=WSDLEPRPrefix]"),
            "http://ei.wso2.com:80"
        );
        assert_eq!(
            axis2.text("transportReceiver[@name=https]/parameter[@name=WSDLEPRPrefix]"),
            "https://ei.wso2.com:443"
        );
        // The servlet transports behind the load balancer.
        let catalina = Xml::at(&out, h, &format!("{conf}/tomcat/catalina-server.xml"));
        assert_eq!(
            catalina.attr("Service/Connector[@port=9763]", "proxyPort"),
            "80"
        );
        assert_eq!(
            catalina.attr("Service/Connector[@port=9443]", "proxyPort"),
            "443"
        );
        // Datasources: this node's local registry, the shared one, the user store.
        let ds = datasources(&Xml::at(
            &out,
            h,
            &format!("{conf}/datasources/master-datasources.xml"),
        ));
        let local = format!("REGISTRY_LOCAL{n}");
        let db = "jdbc:mariadb://carbondb.mysql-wso2.com:3306";
        assert_eq!(
            ds,
            [
                (
                    local.clone(),
                    "jdbc/WSO2CarbonDB".to_string(),
                    format!("{db}/{local}?autoReconnect=true"),
                    "regadmin".to_string()
                ),
                (
                    "REGISTRY_DB".to_string(),
                    "jdbc/WSO2RegistryDB".to_string(),
                    format!("{db}/REGISTRY_DB?autoReconnect=true"),
                    "regadmin".to_string()
                ),
                (
                    "WSO2_USER_DB".to_string(),
                    "jdbc/WSO2UMDB".to_string(),
                    format!("{db}/WSO2_USER_DB"),
                    "regadmin".to_string()
                ),
            ],
            "{h}"
        );
        // The shared registry and its two mounts, the local one kept; the cache id is the shared
        // database's account and URL.
        let r = Xml::at(&out, h, &format!("{conf}/registry.xml"));
        assert_eq!(r.text("currentDBConfig"), "wso2registry");
        assert_eq!(
            r.text("dbConfig[@name=wso2registry]/dataSource"),
            "jdbc/WSO2CarbonDB"
        );
        assert_eq!(
            r.text("dbConfig[@name=sharedregistry]/dataSource"),
            "jdbc/WSO2RegistryDB"
        );
        assert_eq!(
            r.text("remoteInstance[id=instanceid]/dbConfig"),
            "sharedregistry"
        );
        assert_eq!(
            r.text("remoteInstance[id=instanceid]/cacheId"),
            format!("regadmin@{db}/REGISTRY_DB?autoReconnect=true")
        );
        assert_eq!(
            r.text("mount[@path=/_system/config]/targetPath"),
            "/_system/eiconfig"
        );
        assert_eq!(
            r.text("mount[@path=/_system/config]/instanceId"),
            "instanceid"
        );
        assert_eq!(
            r.text("mount[@path=/_system/governance]/targetPath"),
            "/_system/governance"
        );
        let um = Xml::at(&out, h, &format!("{conf}/user-mgt.xml"));
        assert_eq!(
            um.text("Realm/Configuration/Property[@name=dataSource]"),
            "jdbc/WSO2UMDB"
        );
        // The start script and the JVM's memory.
        let unit = read(&out, h, "/etc/systemd/system/wso2ei.service");
        for want in [
            "ExecStart=/opt/wso2ei/bin/integrator.sh",
            "-Xms256m -Xmx512m",
            "-XX:MaxMetaspaceSize=256m",
        ] {
            assert!(unit.contains(want), "{h}: {want} not in\n{unit}");
        }
        assert!(!unit.contains("MaxPermSize"), "{unit}");
    }
    // Artifacts: node 1 pushes repository/deployment/server and repository/tenants to node 2.
    let sync = read(&out, "h2", "/usr/local/bin/wso2-sync");
    for d in ["deployment/server", "tenants"] {
        assert!(
            sync.contains(&format!(
                "/opt/wso2ei-6.6.0/repository/{d}/ \"wso2sync@$target:{d}\""
            )),
            "{d}: {sync}"
        );
    }
    assert!(sync.contains("for target in 10.231.0.13; do"), "{sync}");
    assert!(!out.join("h3/usr/local/bin/wso2-sync").exists());
    // The four databases, each with its dbscript.
    let graph = tasks(&graph_of(&p, EI));
    let db_tasks = &graph["h1"];
    for d in [
        "WSO2_USER_DB",
        "REGISTRY_DB",
        "REGISTRY_LOCAL1",
        "REGISTRY_LOCAL2",
    ] {
        for t in ["database", "dbscript"] {
            let want = format!("wso2_databases | {t} {d}");
            assert!(db_tasks.contains(&want), "{want}: {db_tasks:?}");
        }
    }
    // The health gate waits for the cluster's "Member joined".
    assert!(graph["h3"]
        .iter()
        .any(|t| t == "cluster health | health log line"));
    // The guide's three virtual hosts.
    let http = read(&out, "h4", "/etc/nginx/conf.d/ei.http.conf");
    assert!(
        http.contains("listen 80;") && http.contains("server_name ei.wso2.com;"),
        "{http}"
    );
    for a in ["10.231.0.12", "10.231.0.13"] {
        assert!(http.contains(&format!("server {a}:8280 ")), "{http}");
    }
    assert!(http.contains("proxy_pass http://ei_http;"), "{http}");
    let https = read(&out, "h4", "/etc/nginx/conf.d/ei.https.conf");
    assert!(
        https.contains("listen 443 ssl;") && https.contains("proxy_pass https://ei_https;"),
        "{https}"
    );
    for a in ["10.231.0.12", "10.231.0.13"] {
        assert!(https.contains(&format!("server {a}:8243 ")), "{https}");
    }
    let ui = read(&out, "h4", "/etc/nginx/conf.d/ui.ei.https.conf");
    for want in [
        "listen 443 ssl;",
        "server_name ui.ei.wso2.com;",
        "server 10.231.0.12:9443 ",
        "proxy_pass https://ei_console/;",
        "access_log /var/log/nginx/ui-access.log;",
        "error_log /var/log/nginx/ui-error.log;",
        "proxy_ssl_name ui.ei.wso2.com;",
    ] {
        assert!(ui.contains(want), "{want}:\n{ui}");
    }
    assert!(
        !ui.contains("10.231.0.13"),
        "the console is node 1's:\n{ui}"
    );
}
