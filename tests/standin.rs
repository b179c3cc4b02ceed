//! The stand-in WSO2 server (tests/pack/StandIn.java) fails and reports as the real one would: each test
//! unzips the pack built by tests/pack/build into a temp dir, writes a deployment.toml variant and runs the
//! server on loopback with its own high port offset (no lab, no database: [database.*] is left out, the
//! server connects only to those present). Needs a JDK 17, zip/unzip and curl.

mod common;

use common::wso2::{build_pack, repo};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The pack zip, built once for every test of this binary.
fn pack() -> &'static Path {
    static PACK: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &PACK
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let zip = build_pack(dir.path());
            (dir, zip)
        })
        .1
}

/// A node: the unzipped pack in a temp dir, its server's offset and, once started, the process.
struct Node {
    _dir: tempfile::TempDir,
    home: PathBuf,
    offset: u16,
    child: Option<Child>,
    out: Arc<Mutex<String>>,
}

/// Offsets differ by less than the smallest gap between two of the server's ports (37: 8243 / 8280), so
/// tests running in parallel never share a port; all land below Linux's ephemeral range.
const BASE: u16 = 21000;

impl Node {
    fn new(slot: u16) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("unzip")
            .arg("-q")
            .arg(pack())
            .arg("-d")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "unzip failed");
        let home = dir.path().join("wso2am-4.2.0");
        Node {
            _dir: dir,
            home,
            offset: BASE + slot,
            child: None,
            out: Arc::default(),
        }
    }

    fn sec(&self) -> PathBuf {
        self.home.join("repository/resources/security")
    }

    fn port(&self, base: u16) -> u16 {
        base + self.offset
    }

    /// Writes deployment.toml: [server] with this node's offset, [super_admin], then `rest`.
    fn toml(&self, rest: &str) {
        let text = format!(
            "[server]\nhostname = \"localhost\"\nnode_ip = \"127.0.0.1\"\noffset = {}\n\n[super_admin]\nusername = \"admin\"\npassword = \"admin\"\n\n{rest}\n",
            self.offset
        );
        std::fs::write(self.home.join("repository/conf/deployment.toml"), text).unwrap();
    }

    /// The pack's own deployment.toml without its (H2) databases, at this node's offset.
    fn pack_toml(&self) {
        let path = self.home.join("repository/conf/deployment.toml");
        let orig = std::fs::read_to_string(&path).unwrap();
        let mut out = String::new();
        let mut skip = false;
        for line in orig.lines() {
            if line.starts_with('[') {
                skip = line.starts_with("[database.");
            }
            if !skip {
                out.push_str(&line.replace("offset = 0", &format!("offset = {}", self.offset)));
                out.push('\n');
            }
        }
        assert!(out.contains(&format!("offset = {}", self.offset)));
        std::fs::write(path, out).unwrap();
    }

    /// Starts the server with `props` (-D...) and waits until it started (true) or exited (false).
    fn start(&mut self, props: &[&str]) -> bool {
        // This run's output only (a node may be started again after a refusal).
        self.out = Arc::default();
        let mut cmd = Command::new("java");
        cmd.args(props)
            .arg(format!("-Dcarbon.home={}", self.home.display()))
            .arg("-jar")
            .arg(self.home.join("lib/standin.jar"));
        run_until_started(cmd, &self.out, &mut self.child)
    }

    /// Starts the server, which must refuse: returns its one ERROR line (the one before "refused").
    fn refuses(&mut self) -> String {
        assert!(
            !self.start(&[]),
            "started, but should not have:\n{}",
            self.log()
        );
        let log = self.log();
        let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
        assert_eq!(
            errors.len(),
            2,
            "one ERROR line and the refusal expected:\n{log}"
        );
        assert!(errors[1].ends_with("WSO2 Carbon (stand-in) refused to start"));
        errors[0].to_string()
    }

    fn log(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn get(&self, port: u16, tls: bool, path: &str) -> (u16, String) {
        get(port, tls, path)
    }

    /// /health (or /health/node) on the management HTTPS port, as status code and JSON.
    fn health(&self, path: &str) -> (u16, serde_json::Value) {
        let (code, body) = self.get(self.port(9443), true, path);
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}\n{}", self.log()));
        (code, json)
    }

    /// Polls /health until it answers `code` (peers are checked every 2 s).
    fn health_becomes(&self, code: u16) -> serde_json::Value {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let (c, json) = self.health("/health");
            if c == code {
                return json;
            }
            assert!(
                Instant::now() < end,
                "/health stayed {c}, {code} expected: {json}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Only the process this test started.
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Spawns `cmd` into `slot` (whose owner kills it when dropped) with its output collected into `out`, and
/// waits until the stand-in started (true) or exited with 1, its refusal (false).
fn run_until_started(mut cmd: Command, out: &Arc<Mutex<String>>, slot: &mut Option<Child>) -> bool {
    let child = slot.insert(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the stand-in"),
    );
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let out = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut o = out.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        });
    }
    let log = || out.lock().unwrap().clone();
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if log().contains("WSO2 Carbon (stand-in) started") {
            return true;
        }
        if let Some(st) = child.try_wait().unwrap() {
            // Let the readers drain what the process printed.
            std::thread::sleep(Duration::from_millis(200));
            assert_eq!(st.code(), Some(1), "{}", log());
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "the stand-in neither started nor exited in 30 s:\n{}",
        log()
    );
}

/// Status code and body of GET `path` on 127.0.0.1:`port` (TLS unverified when `tls`).
fn get(port: u16, tls: bool, path: &str) -> (u16, String) {
    let scheme = if tls { "https" } else { "http" };
    let out = Command::new("curl")
        .args([
            "-sk",
            "--noproxy",
            "*",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
        ])
        .arg(format!("{scheme}://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn keytool(args: &[&str]) {
    let out = Command::new("keytool").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "keytool {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A JKS store `file` (password `pass`) with a self-signed key `alias` of `alg` ("RSA" or "EC").
fn genkey(file: &Path, pass: &str, alias: &str, alg: &str) {
    let f = file.to_str().unwrap();
    let size = if alg == "EC" { "256" } else { "2048" };
    #[rustfmt::skip]
    keytool(&["-genkeypair", "-noprompt", "-alias", alias, "-keyalg", alg, "-keysize", size, "-validity", "30",
        "-dname", "CN=localhost", "-storetype", "JKS", "-keystore", f, "-storepass", pass, "-keypass", pass]);
}

/// Puts the certificate of `alias` in `from` into the JKS truststore `to`.
fn trust(from: &Path, from_pass: &str, alias: &str, to: &Path, to_pass: &str) {
    let pem = from.with_extension(format!("{alias}.pem"));
    #[rustfmt::skip]
    keytool(&["-exportcert", "-rfc", "-alias", alias, "-keystore", from.to_str().unwrap(), "-storepass",
        from_pass, "-file", pem.to_str().unwrap()]);
    #[rustfmt::skip]
    keytool(&["-importcert", "-noprompt", "-alias", &format!("{alias}-trusted"), "-file", pem.to_str().unwrap(), "-storetype", "JKS",
        "-keystore", to.to_str().unwrap(), "-storepass", to_pass]);
}

/// A loopback port nothing listens on (ephemeral, so no test's offset range).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The 101 answer (status line and headers) to a WebSocket upgrade on `port`.
fn ws_upgrade(port: u16, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    #[rustfmt::skip]
    let out = Command::new("curl")
        .args(["-sk", "-i", "-N", "--noproxy", "*", "--max-time", "2", "-H", "Connection: Upgrade", "-H",
            "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13", "-H",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="])
        .arg(format!("{scheme}://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn the_packs_own_config_starts_healthy_on_every_port() {
    let mut n = Node::new(0);
    n.pack_toml();
    assert!(n.start(&[]), "{}", n.log());
    let json = n.health_becomes(200);
    assert_eq!(json["status"], "ok");
    assert_eq!(json["node"]["status"], "ok");
    assert_eq!(json["profile"], "default");
    // The pack's gateway environment calls the node itself: ${mgt.transport.https.port} resolved.
    let self_url = format!("https://localhost:{}/services/", n.port(9443));
    assert_eq!(json["peers"][&self_url], "ok", "{json}");
    for (k, base) in [
        ("https", 9443),
        ("http", 9763),
        ("gateway_http", 8280),
        ("gateway_https", 8243),
        ("ws", 9099),
        ("wss", 8099),
        ("tm_binary", 9611),
        ("tm_binary_ssl", 9711),
        ("jms", 5672),
    ] {
        assert_eq!(json["ports"][k], n.port(base), "{k}: {json}");
    }
    for k in ["primary", "internal", "tls"] {
        assert_eq!(json["keystores"][k], "wso2carbon (RSA 2048)", "{json}");
    }
    assert!(json["started_at"].as_u64().unwrap() > 1_600_000_000_000);
    // Every HTTP(S) port answers /health, the WebSocket ones too.
    for (base, tls) in [
        (9763, false),
        (8280, false),
        (8243, true),
        (9099, false),
        (8099, true),
    ] {
        let (code, body) = n.get(n.port(base), tls, "/health");
        assert_eq!(code, 200, "{base}: {body}");
    }
    for (base, tls) in [(9099, false), (8099, true)] {
        let answer = ws_upgrade(n.port(base), tls);
        assert!(
            answer.starts_with("HTTP/1.1 101"),
            "{base}: no upgrade: {answer}"
        );
        assert!(
            answer.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "{base}: {answer}"
        );
    }
    let ports = n
        .log()
        .lines()
        .find(|l| l.contains("listening on"))
        .unwrap()
        .to_string();
    assert!(ports.contains(&format!("jms {}", n.port(5672))), "{ports}");
}

#[test]
fn an_ec_key_in_the_primary_keystore_is_refused_but_is_fine_for_tls() {
    let mut n = Node::new(1);
    genkey(&n.sec().join("ec.jks"), "ecpass", "ec", "EC");
    n.toml("[keystore.primary]\nfile_name = \"ec.jks\"\npassword = \"ecpass\"\nalias = \"ec\"\n");
    let err = n.refuses();
    assert!(
        err.contains("[keystore.primary]") && err.contains("EC 256") && err.contains("RSA"),
        "{err}"
    );

    // internal defaults to primary: an EC key named there is refused too.
    let mut n = Node::new(1);
    genkey(&n.sec().join("ec.jks"), "ecpass", "ec", "EC");
    n.toml("[keystore.internal]\nfile_name = \"ec.jks\"\npassword = \"ecpass\"\nalias = \"ec\"\n");
    assert!(n.refuses().contains("[keystore.internal]"));

    // TLS may be EC, when the truststore trusts it.
    let mut n = Node::new(1);
    let ec = n.sec().join("ec.jks");
    genkey(&ec, "ecpass", "ec", "EC");
    trust(
        &ec,
        "ecpass",
        "ec",
        &n.sec().join("client-truststore.jks"),
        "wso2carbon",
    );
    // key_password defaults to primary's (wso2carbon), not to this section's password.
    let tls = "[keystore.tls]\nfile_name = \"ec.jks\"\npassword = \"ecpass\"\nalias = \"ec\"\n";
    n.toml(tls);
    let err = n.refuses();
    assert!(
        err.contains("[keystore.tls]") && err.contains("key_password"),
        "{err}"
    );
    n.toml(&format!("{tls}key_password = \"ecpass\"\n"));
    assert!(n.start(&[]), "{}", n.log());
    let json = n.health_becomes(200);
    assert_eq!(json["keystores"]["tls"], "ec (EC 256)");
    assert_eq!(json["keystores"]["primary"], "wso2carbon (RSA 2048)");
}

#[test]
fn a_tls_keystore_that_replaced_wso2carbon_jks_leaves_primary_unopenable() {
    // What a play does when it writes its TLS key over wso2carbon.jks with a new password and configures
    // only [keystore.tls]: primary still opens wso2carbon.jks with wso2carbon.
    let mut n = Node::new(2);
    let ks = n.sec().join("wso2carbon.jks");
    std::fs::remove_file(&ks).unwrap();
    genkey(&ks, "new-pass-1", "wso2carbon", "RSA");
    trust(
        &ks,
        "new-pass-1",
        "wso2carbon",
        &n.sec().join("client-truststore.jks"),
        "wso2carbon",
    );
    let tls = "[keystore.tls]\nfile_name = \"wso2carbon.jks\"\npassword = \"new-pass-1\"\nalias = \"wso2carbon\"\nkey_password = \"new-pass-1\"\n";
    n.toml(tls);
    let err = n.refuses();
    assert!(
        err.contains("[keystore.primary]") && err.contains("cannot open"),
        "{err}"
    );
    // Configuring primary too makes it start (internal and tls default to primary's).
    n.toml(&format!("{tls}\n[keystore.primary]\nfile_name = \"wso2carbon.jks\"\npassword = \"new-pass-1\"\nalias = \"wso2carbon\"\n"));
    assert!(n.start(&[]), "{}", n.log());
}

#[test]
fn the_truststore_must_open_and_trust_the_tls_certificate() {
    let mut n = Node::new(3);
    let other = n.sec().join("other.jks");
    genkey(&other, "otherpass", "other", "RSA");
    let ts = n.sec().join("ts.jks");
    trust(&other, "otherpass", "other", &ts, "ts-pass-1");
    n.toml("[truststore]\nfile_name = \"ts.jks\"\npassword = \"ts-pass-1\"\n");
    let err = n.refuses();
    assert!(
        err.contains("[truststore]") && err.contains("does not trust the TLS certificate"),
        "{err}"
    );

    let mut n = Node::new(3);
    n.toml("[truststore]\npassword = \"not-the-password\"\n");
    let err = n.refuses();
    assert!(
        err.contains("[truststore]")
            && err.contains("client-truststore.jks")
            && err.contains("cannot open"),
        "{err}"
    );
}

#[test]
fn jndi2_credentials_must_be_url_encoded_and_match_super_admin() {
    let password = "p@ss:w/rd?'%1";
    let encoded = "p%40ss%3Aw%2Frd%3F%27%251";
    let node = |slot, userinfo: &str| {
        let n = Node::new(slot);
        n.toml("");
        let text = std::fs::read_to_string(n.home.join("repository/conf/deployment.toml"))
            .unwrap()
            .replace(
                "password = \"admin\"",
                &format!("password = \"{password}\""),
            );
        std::fs::write(n.home.join("repository/conf/deployment.toml"), text).unwrap();
        let jms = n.port(5672);
        std::fs::write(
            n.home.join("repository/conf/jndi2.properties"),
            format!("connectionfactory.TopicConnectionFactory = amqp://{userinfo}@clientid/carbon?brokerlist='tcp://127.0.0.1:{jms}'\ntopic.throttleData = throttleData\n"),
        )
        .unwrap();
        n
    };
    let mut n = node(4, &format!("admin:{password}"));
    let err = n.refuses();
    assert!(err.contains("jndi2.properties"), "{err}");

    let mut n = node(4, "admin:wrong-password");
    let err = n.refuses();
    assert!(
        err.contains("jndi2.properties") && err.contains("[super_admin]"),
        "{err}"
    );

    let mut n = node(4, &format!("admin:{encoded}"));
    assert!(n.start(&[]), "{}", n.log());
    let json = n.health_becomes(200);
    assert_eq!(
        json["peers"][&format!("tcp://127.0.0.1:{}", n.port(5672))],
        "ok",
        "{json}"
    );
}

#[test]
fn an_unreachable_peer_degrades_health_but_not_node_health() {
    let mut n = Node::new(5);
    let port = closed_port();
    let tm = n.port(9711);
    n.toml(&format!(
        "[apim.throttling]\nenable_data_publishing = true\n\n[[apim.throttling.url_group]]\ntraffic_manager_urls = [\"tcp://127.0.0.1:{port}\"]\ntraffic_manager_auth_urls = [\"ssl://127.0.0.1:{tm}\"]\ntype = \"loadbalance\"\n"
    ));
    // The peer is down at startup: the server starts anyway.
    assert!(n.start(&[]), "{}", n.log());
    let json = n.health_becomes(503);
    assert_eq!(json["status"], "degraded");
    let peer = format!("tcp://127.0.0.1:{port}");
    assert_eq!(json["peers"][&peer], "down", "{json}");
    let (code, node) = n.health("/health/node");
    assert_eq!(code, 200, "{node}");
    assert_eq!(node["node"]["status"], "ok");
    // Once something listens there, the next check finds it.
    let _listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let json = n.health_becomes(200);
    assert_eq!(json["peers"][&peer], "ok");
    assert_eq!(json["peers"][&format!("ssl://127.0.0.1:{tm}")], "ok");
    assert!(n.log().contains(&format!("peer {peer}")), "{}", n.log());
}

#[test]
fn a_gateway_worker_runs_no_traffic_manager() {
    let mut n = Node::new(6);
    let own_tm = n.port(9611);
    n.toml(&format!(
        "[[apim.throttling.url_group]]\ntraffic_manager_urls = [\"tcp://127.0.0.1:{own_tm}\"]\n"
    ));
    assert!(n.start(&["-Dprofile=gateway-worker"]), "{}", n.log());
    let json = n.health_becomes(503);
    assert_eq!(json["profile"], "gateway-worker");
    assert!(json["ports"].get("tm_binary").is_none(), "{json}");
    assert!(json["ports"].get("jms").is_none(), "{json}");
    assert_eq!(json["peers"][&format!("tcp://127.0.0.1:{own_tm}")], "down");
}

#[test]
fn dotted_keys_are_the_same_keys_as_tables() {
    let mut n = Node::new(7);
    n.toml("[transport.http]\nproperties.port = 9800\n\n[transport.https.properties]\nproxyPort = 443 # the LB\n\n[transport]\nhttp.properties.proxyPort = 80\n");
    assert!(n.start(&[]), "{}", n.log());
    let json = n.health_becomes(200);
    assert_eq!(json["ports"]["http"], 9800 + n.offset, "{json}");
    assert_eq!(json["proxy_ports"]["https"], 443, "{json}");
    assert_eq!(json["proxy_ports"]["http"], 80, "{json}");

    // The same key twice, once dotted: invalid TOML, as for the real server.
    let mut n = Node::new(7);
    n.toml(
        "[transport.http]\nproperties.port = 9800\n\n[transport.http.properties]\nport = 9801\n",
    );
    let err = n.refuses();
    assert!(
        err.contains("deployment.toml") && err.contains("transport.http.properties.port"),
        "{err}"
    );
}

#[test]
fn the_build_leaves_dbscripts_and_the_driver_next_to_the_zip() {
    let dir = pack().parent().unwrap();
    assert!(dir.join("dbscripts/mysql.sql").is_file());
    assert!(dir.join("dbscripts/apimgt/mysql.sql").is_file());
    assert!(dir.join("mariadb-java-client.jar").is_file());
    // A rebuild replaces dbscripts/ whole: a stray file does not survive it.
    let tmp = tempfile::tempdir().unwrap();
    build_pack(tmp.path());
    std::fs::write(tmp.path().join("dbscripts/stray.sql"), "x").unwrap();
    build_pack(tmp.path());
    assert!(!tmp.path().join("dbscripts/stray.sql").exists());
    assert!(repo().join("tests/pack/build").is_file());
}
