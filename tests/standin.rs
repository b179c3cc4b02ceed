//! The stand-in WSO2 server (tests/pack/StandIn.java) fails and reports as the real one would: each test
//! unzips the pack built by tests/pack/build into a temp dir, writes a deployment.toml variant and runs the
//! server on loopback with its own high port offset (no lab, no database: [database.*] is left out, the
//! server connects only to those present). Needs a JDK 17, zip/unzip and curl.

mod common;

use common::wso2::{build_pack, repo};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::ops::{Deref, DerefMut};
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

/// What a 4.x node and a Carbon 4 node share: the unzipped pack in a temp dir, its server's offset and,
/// once started, the process and what it printed. Both stand-ins log and refuse alike (CarbonStandIn
/// logs through StandIn), so their tests read them alike.
struct Server {
    _dir: tempfile::TempDir,
    home: PathBuf,
    offset: u16,
    child: Option<Child>,
    out: Arc<Mutex<String>>,
}

/// Offsets differ by less than the smallest gap between two of the server's ports (37: 8243 / 8280), so
/// tests running in parallel never share a port; all land below Linux's ephemeral range.
const BASE: u16 = 21000;

impl Server {
    /// Unzips `zip` into a temp dir; its directory `top` is the home, and the server's offset `BASE + slot`.
    fn unzip(zip: &Path, top: &str, slot: u16) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("unzip")
            .arg("-q")
            .arg(zip)
            .arg("-d")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "unzip {} failed", zip.display());
        let home = dir.path().join(top);
        Server {
            _dir: dir,
            home,
            offset: BASE + slot,
            child: None,
            out: Arc::default(),
        }
    }

    fn port(&self, base: u16) -> u16 {
        base + self.offset
    }

    /// Runs `cmd` until the stand-in started (true) or refused (false), keeping this run's output only (a
    /// node may be started again after a refusal).
    fn run(&mut self, cmd: Command) -> bool {
        self.out = Arc::default();
        run_until_started(cmd, &self.out, &mut self.child)
    }

    /// The one ERROR line (the one before "refused") of a start that must have refused: `started` is what
    /// the start returned.
    fn refusal(&self, started: bool) -> String {
        assert!(!started, "started, but should not have:\n{}", self.log());
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

    /// /health (or /health/node) on the management HTTPS port, as status code and JSON.
    fn health(&self, path: &str) -> (u16, serde_json::Value) {
        let (code, body) = get(self.port(9443), true, path);
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}\n{}", self.log()));
        (code, json)
    }

    /// Polls /health until it answers `code` (checks run every 2 s).
    fn health_becomes(&self, code: u16) -> serde_json::Value {
        self.health_says(code, &[])
    }

    /// Polls /health until it answers `code` with every one of `needles` in its reasons (a 4.x answer has
    /// none, so it is only polled for its code).
    fn health_says(&self, code: u16, needles: &[&str]) -> serde_json::Value {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let (c, json) = self.health("/health");
            if c == code && needles.iter().all(|n| reasons(&json).contains(n)) {
                return json;
            }
            assert!(
                Instant::now() < end,
                "/health stayed {c}, {code} with {needles:?} expected: {json}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only the process this test started (a Carbon start script execs java: it is that process).
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A node of the 4.x pack.
struct Node(Server);

impl Deref for Node {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.0
    }
}

impl DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.0
    }
}

impl Node {
    fn new(slot: u16) -> Node {
        Node(Server::unzip(pack(), "wso2am-4.2.0", slot))
    }

    fn sec(&self) -> PathBuf {
        self.home.join("repository/resources/security")
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
        let mut cmd = Command::new("java");
        cmd.args(props)
            .arg(format!("-Dcarbon.home={}", self.home.display()))
            .arg("-jar")
            .arg(self.home.join("lib/standin.jar"));
        self.run(cmd)
    }

    /// Starts the server, which must refuse: returns its one ERROR line.
    fn refuses(&mut self) -> String {
        let started = self.start(&[]);
        self.refusal(started)
    }

    fn get(&self, port: u16, tls: bool, path: &str) -> (u16, String) {
        get(port, tls, path)
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

// ---- The Carbon 4 based packs: API-M 1.x (wso2am-1.10.0.zip) and EI 6.x (wso2ei-6.6.0.zip) ----

use common::mariadb;

const APIM1: &str = "wso2am-1.10.0";
const EI: &str = "wso2ei-6.6.0";

/// A node of a Carbon 4 pack (`APIM1` or `EI`), unzipped into a temp dir, run through its start script.
struct Carbon {
    server: Server,
    /// The config directory: repository/conf (API-M) or conf (EI).
    conf: PathBuf,
    script: &'static str,
}

impl Deref for Carbon {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl DerefMut for Carbon {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.server
    }
}

impl Carbon {
    fn new(pack: &str, slot: u16) -> Carbon {
        let server = Server::unzip(&super_dir().join(format!("{pack}.zip")), pack, slot);
        let home = &server.home;
        let ei = pack == EI;
        let (conf, drivers, script) = if ei {
            (home.join("conf"), home.join("lib"), "integrator.sh")
        } else {
            (
                home.join("repository/conf"),
                home.join("repository/components/lib"),
                "wso2server.sh",
            )
        };
        // Where the instructions put the JDBC driver.
        std::fs::copy(
            super_dir().join("mariadb-java-client.jar"),
            drivers.join("mariadb-java-client.jar"),
        )
        .unwrap();
        Carbon {
            server,
            conf,
            script,
        }
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.conf.join(file)).unwrap()
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.conf.join(file), text).unwrap();
    }

    /// Replaces the one occurrence of `from` in conf/`file` by `to`.
    fn edit(&self, file: &str, from: &str, to: &str) {
        let text = self.read(file);
        assert_eq!(
            text.matches(from).count(),
            1,
            "{file}: `{from}` should occur once:\n{text}"
        );
        self.write(file, &text.replacen(from, to, 1));
    }

    /// Sets the configuration of datasource `name` in master-datasources.xml (MariaDB's driver).
    fn datasource(&self, name: &str, url: &str, user: &str, password: &str) {
        let file = "datasources/master-datasources.xml";
        let text = self.read(file);
        let start = text
            .find(&format!("<name>{name}</name>"))
            .unwrap_or_else(|| panic!("no datasource {name}"));
        let end = start + text[start..].find("</datasource>").unwrap();
        let mut block = text[start..end].to_string();
        for (tag, value) in [
            ("url", xml_escape(url)),
            ("username", user.to_string()),
            ("password", password.to_string()),
            ("driverClassName", "org.mariadb.jdbc.Driver".to_string()),
        ] {
            let (a, b) = (format!("<{tag}>"), format!("</{tag}>"));
            let i = block.find(&a).unwrap() + a.len();
            let j = i + block[i..].find(&b).unwrap();
            block.replace_range(i..j, &value);
        }
        self.write(file, &format!("{}{block}{}", &text[..start], &text[end..]));
    }

    /// Adds a datasource to master-datasources.xml (as the instructions do), MariaDB's driver.
    fn add_datasource(&self, name: &str, jndi: &str, url: &str, user: &str, password: &str) {
        let block = format!(
            "        <datasource>\n            <name>{name}</name>\n            <jndiConfig>\n                <name>{jndi}</name>\n            </jndiConfig>\n            <definition type=\"RDBMS\">\n                <configuration>\n                    <url>{}</url>\n                    <username>{user}</username>\n                    <password>{password}</password>\n                    <driverClassName>org.mariadb.jdbc.Driver</driverClassName>\n                    <validationQuery>SELECT 1</validationQuery>\n                </configuration>\n            </definition>\n        </datasource>\n    </datasources>",
            xml_escape(url)
        );
        self.edit(
            "datasources/master-datasources.xml",
            "    </datasources>",
            &block,
        );
    }

    /// Turns on wka clustering in axis2.xml: `domain`, this member at 127.0.0.1:`port`, `members`.
    fn cluster(&self, domain: &str, port: u16, members: &[String]) {
        let f = "axis2/axis2.xml";
        self.edit(
            f,
            "                enable=\"false\">",
            "                enable=\"true\">",
        );
        self.edit(
            f,
            "<parameter name=\"membershipScheme\">multicast</parameter>",
            "<parameter name=\"membershipScheme\">wka</parameter>",
        );
        self.edit(
            f,
            "<parameter name=\"domain\">wso2.carbon.domain</parameter>",
            &format!("<parameter name=\"domain\">{domain}</parameter>"),
        );
        self.edit(
            f,
            "<parameter name=\"localMemberPort\">4000</parameter>",
            &format!("<parameter name=\"localMemberPort\">{port}</parameter>"),
        );
        let list: String = members
            .iter()
            .map(|m| {
                let (h, p) = m.rsplit_once(':').unwrap();
                format!("            <member>\n                <hostName>{h}</hostName>\n                <port>{p}</port>\n            </member>\n")
            })
            .collect();
        self.edit(
            f,
            "            <member>\n                <hostName>127.0.0.1</hostName>\n                <port>4000</port>\n            </member>\n",
            &list,
        );
    }

    /// Runs bin/<script> with `args` (-D...) and waits until the server started (true) or refused (false).
    fn start_with(&mut self, args: &[String]) -> bool {
        let mut cmd = Command::new("sh");
        cmd.arg(self.home.join("bin").join(self.script))
            .arg("-Dcarbon.local.ip=127.0.0.1")
            .args(args);
        self.run(cmd)
    }

    /// Starts the server with its offset given as -DportOffset.
    fn start(&mut self) -> bool {
        self.start_with(&[format!("-DportOffset={}", self.offset)])
    }

    /// Starts the server, which must refuse: returns its one ERROR line.
    fn refuses(&mut self) -> String {
        let started = self.start();
        self.refusal(started)
    }

    /// repository/logs/wso2carbon.log.
    fn carbon_log(&self) -> String {
        std::fs::read_to_string(self.home.join("repository/logs/wso2carbon.log"))
            .unwrap_or_default()
    }
}

/// The directory of the built packs (the Carbon zips are built next to the 4.x one).
fn super_dir() -> &'static Path {
    pack().parent().unwrap()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;")
}

/// The reasons of a /health answer, one string.
fn reasons(json: &serde_json::Value) -> String {
    json["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The three databases of the distributed API-M 1.x instructions, prefixed `p`, on the test server:
/// returns their (apimgtdb, userdb, regdb) names.
fn apim1_databases(n: &Carbon, p: &str) -> (String, String, String) {
    let db = mariadb::server();
    let scripts = n.home.join("dbscripts");
    let names = (
        format!("{p}_apimgtdb"),
        format!("{p}_userdb"),
        format!("{p}_regdb"),
    );
    db.database(
        &names.0,
        Some(&scripts.join("apimgt/mysql.sql")),
        "apim",
        "apim-pass-1",
    );
    db.database(
        &names.1,
        Some(&scripts.join("mysql.sql")),
        "apim",
        "apim-pass-1",
    );
    db.database(
        &names.2,
        Some(&scripts.join("mysql.sql")),
        "apim",
        "apim-pass-1",
    );
    names
}

/// An API-M 1.x node configured as the instructions do for a Publisher: WSO2AM_DB on apimgtdb, WSO2UM_DB
/// (the user store) on userdb, WSO2REG_DB (the mounted governance registry) on regdb.
fn apim1_node(slot: u16, p: &str) -> Carbon {
    let n = Carbon::new(APIM1, slot);
    let (am, um, reg) = apim1_databases(&n, p);
    let db = mariadb::server();
    n.datasource("WSO2AM_DB", &db.url(&am), "apim", "apim-pass-1");
    n.add_datasource(
        "WSO2UM_DB",
        "jdbc/WSO2UM_DB",
        &db.url(&um),
        "apim",
        "apim-pass-1",
    );
    n.add_datasource(
        "WSO2REG_DB",
        "jdbc/WSO2REG_DB",
        &db.url(&reg),
        "apim",
        "apim-pass-1",
    );
    n.edit(
        "user-mgt.xml",
        "<UserStoreManager class=\"org.wso2.carbon.user.core.jdbc.JDBCUserStoreManager\">\n",
        "<UserStoreManager class=\"org.wso2.carbon.user.core.jdbc.JDBCUserStoreManager\">\n            <Property name=\"dataSource\">jdbc/WSO2UM_DB</Property>\n",
    );
    n.edit(
        "registry.xml",
        "    <dbConfig name=\"wso2registry\">\n        <dataSource>jdbc/WSO2CarbonDB</dataSource>\n    </dbConfig>\n",
        "    <dbConfig name=\"wso2registry\">\n        <dataSource>jdbc/WSO2CarbonDB</dataSource>\n    </dbConfig>\n\n    <dbConfig name=\"govregistry\">\n        <dataSource>jdbc/WSO2REG_DB</dataSource>\n    </dbConfig>\n    <remoteInstance url=\"https://publisher.example.com\">\n        <id>gov</id>\n        <dbConfig>govregistry</dbConfig>\n        <readOnly>false</readOnly>\n        <enableCache>true</enableCache>\n        <registryRoot>/</registryRoot>\n    </remoteInstance>\n    <mount path=\"/_system/governance\" overwrite=\"true\">\n        <instanceId>gov</instanceId>\n        <targetPath>/_system/governance</targetPath>\n    </mount>\n",
    );
    n
}

#[test]
fn apim1_pack_on_its_three_databases_is_healthy_and_lists_them() {
    let mut n = apim1_node(10, "t10");
    assert!(n.start(), "{}", n.log());
    let json = n.health_becomes(200);
    assert_eq!(json["status"], "ok", "{json}");
    assert_eq!(json["product"], "WSO2 API Manager 1.10.0");
    let ds = &json["datasources"];
    for name in ["WSO2AM_DB", "WSO2UM_DB", "WSO2REG_DB"] {
        assert_eq!(ds[name], "ok", "{json}");
    }
    // The local registry stays on the pack's embedded H2, as in the instructions.
    assert_eq!(ds["WSO2_CARBON_DB"], "embedded", "{json}");
    // The default ServerURLs name the node itself (${carbon.local.ip}:${mgt.transport.https.port}).
    let own = format!("https://127.0.0.1:{}/services/", n.port(9443));
    assert_eq!(json["peers"][&own], "ok", "{json}");
    assert_eq!(json["offset"], n.offset);
    for (k, base) in [
        ("servlet_https", 9443),
        ("servlet_http", 9763),
        ("passthrough_http", 8280),
        ("passthrough_https", 8243),
    ] {
        assert_eq!(json["ports"][k], n.port(base), "{k}: {json}");
        let (code, body) = get(n.port(base), k.ends_with('s'), "/health");
        assert_eq!(code, 200, "{k}: {body}");
    }
    // Webapps and Jaggery apps answer while deployed; a component's node removes those it does not run.
    assert_eq!(get(n.port(9443), true, "/store/").0, 200);
    assert_eq!(get(n.port(9443), true, "/carbon/").0, 200);
    std::fs::remove_dir_all(
        n.home
            .join("repository/deployment/server/jaggeryapps/store"),
    )
    .unwrap();
    assert_eq!(get(n.port(9443), true, "/store/").0, 404);
    assert_eq!(get(n.port(9443), true, "/publisher/").0, 200);
    let (_, json) = n.health("/health");
    let apps: Vec<&str> = json["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        apps.contains(&"/publisher") && !apps.contains(&"/store"),
        "{apps:?}"
    );
    assert!(apps.contains(&"/oauth2"), "{apps:?}");
    // The admin services take the admin's credentials only.
    let wrong = Command::new("curl")
        .args([
            "-sk",
            "--noproxy",
            "*",
            "-u",
            "admin:nope",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("https://127.0.0.1:{}/services/", n.port(9443)))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&wrong.stdout), "401");
    assert!(
        n.carbon_log()
            .contains("datasource WSO2UM_DB (jdbc/WSO2UM_DB) ok"),
        "{}",
        n.carbon_log()
    );
}

#[test]
fn apim1_broken_datasource_is_named_in_health() {
    // A wrong password: the server runs, /health names the datasource and the database's answer.
    let mut n = apim1_node(11, "t11");
    let db = mariadb::server();
    n.datasource(
        "WSO2AM_DB",
        &db.url("t11_apimgtdb"),
        "apim",
        "not-the-password",
    );
    assert!(n.start(), "{}", n.log());
    let json = n.health_says(503, &["datasource WSO2AM_DB: "]);
    assert_eq!(json["datasources"]["WSO2AM_DB"], "down", "{json}");
    assert_eq!(json["datasources"]["WSO2UM_DB"], "ok", "{json}");
    let why = reasons(&json);
    assert!(
        why.contains("datasource WSO2AM_DB: ") && why.contains("Access denied"),
        "{why}"
    );
    drop(n);

    // A database the dbscript was not imported into: the missing table is named, and the next check after
    // the import finds it.
    let mut n = apim1_node(11, "t11");
    db.database("t11_empty", None, "apim", "apim-pass-1");
    n.datasource("WSO2AM_DB", &db.url("t11_empty"), "apim", "apim-pass-1");
    assert!(n.start(), "{}", n.log());
    let json = n.health_says(503, &["datasource WSO2AM_DB: "]);
    let why = reasons(&json);
    assert!(
        why.contains("datasource WSO2AM_DB: table AM_API missing"),
        "{why}"
    );
    db.import("t11_empty", &n.home.join("dbscripts/apimgt/mysql.sql"));
    let json = n.health_becomes(200);
    assert_eq!(json["datasources"]["WSO2AM_DB"], "ok");
    drop(n);

    // A JNDI name no datasource has: the server refuses to start, naming the file and the name.
    let mut n = Carbon::new(APIM1, 11);
    n.edit(
        "api-manager.xml",
        "<DataSourceName>jdbc/WSO2AM_DB</DataSourceName>",
        "<DataSourceName>jdbc/WSO2AM_DB_TYPO</DataSourceName>",
    );
    let err = n.refuses();
    assert!(
        err.contains("api-manager.xml DataSourceName: jdbc/WSO2AM_DB_TYPO"),
        "{err}"
    );
}

#[test]
fn apim1_gateway_calls_the_key_manager_with_its_admin_credentials() {
    // The Key Manager on the pack's defaults; the Gateway's APIKeyManager ServerURL names it.
    let mut km = Carbon::new(APIM1, 12);
    assert!(km.start(), "{}", km.log());
    let mut gw = Carbon::new(APIM1, 13);
    let url = format!("https://localhost:{}/services/", km.port(9443));
    let key_manager = |password: &str| {
        format!("<APIKeyManager>\n        <ServerURL>{url}</ServerURL>\n        <Username>admin</Username>\n        <Password>{password}</Password>")
    };
    let default = "<APIKeyManager>\n        <ServerURL>https://${carbon.local.ip}:${mgt.transport.https.port}${carbon.context}services/</ServerURL>\n        <Username>${admin.username}</Username>\n        <Password>${admin.password}</Password>";
    gw.edit("api-manager.xml", default, &key_manager("wrong"));
    assert!(gw.start(), "{}", gw.log());
    let json = gw.health_says(503, &[&format!("peer {url}: HTTP")]);
    let why = reasons(&json);
    assert!(
        why.contains(&format!("peer {url}: HTTP 401")) && why.contains("APIKeyManager"),
        "{why}"
    );
    drop(gw);

    let mut gw = Carbon::new(APIM1, 13);
    gw.edit("api-manager.xml", default, &key_manager("admin"));
    assert!(gw.start(), "{}", gw.log());
    let json = gw.health_becomes(200);
    assert_eq!(json["peers"][&url], "ok", "{json}");
    // Once the Key Manager stops, the Gateway's health says so.
    drop(km);
    gw.health_says(503, &[&format!("peer {url}: ")]);
}

/// An EI node configured as the two-node cluster instructions do: REGISTRY_LOCAL<i> (the local registry,
/// jdbc/WSO2CarbonDB), REGISTRY_DB (shared, mounted, jdbc/WSO2RegistryDB), WSO2_USER_DB (jdbc/WSO2UMDB),
/// and wka clustering in domain wso2.ei.domain on 127.0.0.1:`member_port` with `members`.
fn ei_node(slot: u16, i: u32, member_port: u16, members: &[String]) -> Carbon {
    let n = Carbon::new(EI, slot);
    let db = mariadb::server();
    let (user, pass) = ("regadmin", "regadmin-pass-1");
    let local = format!("t_ei_registry_local{i}");
    db.database(
        &local,
        Some(&n.home.join("dbscripts/mysql.sql")),
        user,
        pass,
    );
    let text = n.read("datasources/master-datasources.xml");
    n.write(
        "datasources/master-datasources.xml",
        &text.replacen(
            "<name>WSO2_CARBON_DB</name>",
            &format!("<name>REGISTRY_LOCAL{i}</name>"),
            1,
        ),
    );
    n.datasource(&format!("REGISTRY_LOCAL{i}"), &db.url(&local), user, pass);
    n.add_datasource(
        "REGISTRY_DB",
        "jdbc/WSO2RegistryDB",
        &db.url("t_ei_registry_db"),
        user,
        pass,
    );
    n.add_datasource(
        "WSO2_USER_DB",
        "jdbc/WSO2UMDB",
        &db.url("t_ei_user_db"),
        user,
        pass,
    );
    n.edit(
        "user-mgt.xml",
        "<Property name=\"dataSource\">jdbc/WSO2CarbonDB</Property>",
        "<Property name=\"dataSource\">jdbc/WSO2UMDB</Property>",
    );
    let shared = db.url("t_ei_registry_db");
    n.edit(
        "registry.xml",
        "    <dbConfig name=\"wso2registry\">\n        <dataSource>jdbc/WSO2CarbonDB</dataSource>\n    </dbConfig>\n",
        &format!("    <dbConfig name=\"wso2registry\">\n        <dataSource>jdbc/WSO2CarbonDB</dataSource>\n    </dbConfig>\n\n    <dbConfig name=\"sharedregistry\">\n        <dataSource>jdbc/WSO2RegistryDB</dataSource>\n    </dbConfig>\n    <remoteInstance url=\"https://localhost:9443/registry\">\n        <id>instanceid</id>\n        <dbConfig>sharedregistry</dbConfig>\n        <readOnly>false</readOnly>\n        <enableCache>true</enableCache>\n        <registryRoot>/</registryRoot>\n        <cacheId>{user}@{}</cacheId>\n    </remoteInstance>\n    <mount path=\"/_system/config\" overwrite=\"true\">\n        <instanceId>instanceid</instanceId>\n        <targetPath>/_system/eiconfig</targetPath>\n    </mount>\n    <mount path=\"/_system/governance\" overwrite=\"true\">\n        <instanceId>instanceid</instanceId>\n        <targetPath>/_system/governance</targetPath>\n    </mount>\n", xml_escape(&shared)),
    );
    n.cluster("wso2.ei.domain", member_port, members);
    n
}

/// Cluster member ports: not shifted by the offset, so apart from every offset port of these tests.
const MEMBER_BASE: u16 = 24100;

#[test]
fn two_ei_nodes_on_loopback_join_one_cluster_and_are_healthy() {
    let db = mariadb::server();
    let (p1, p2) = (MEMBER_BASE + 14, MEMBER_BASE + 15);
    let mut a = ei_node(14, 1, p1, &[format!("127.0.0.1:{p2}")]);
    let mut b = ei_node(15, 2, p2, &[format!("127.0.0.1:{p1}")]);
    for shared in ["t_ei_registry_db", "t_ei_user_db"] {
        db.database(
            shared,
            Some(&a.home.join("dbscripts/mysql.sql")),
            "regadmin",
            "regadmin-pass-1",
        );
    }
    // Node a takes its offset from carbon.xml, node b from -DportOffset; a sits behind a load balancer.
    a.edit(
        "carbon.xml",
        "<Offset>0</Offset>",
        &format!("<Offset>{}</Offset>", a.offset),
    );
    a.edit(
        "tomcat/catalina-server.xml",
        "port=\"9443\"\n",
        "port=\"9443\"\n                   proxyPort=\"443\"\n",
    );
    assert!(a.start_with(&[]), "{}", a.log());
    assert!(b.start(), "{}", b.log());
    for (n, other) in [(&a, p2), (&b, p1)] {
        let json = n.health_becomes(200);
        assert_eq!(
            json["members"][&format!("127.0.0.1:{other}")],
            "joined",
            "{json}"
        );
        assert_eq!(json["clustering"]["domain"], "wso2.ei.domain");
        assert_eq!(json["product"], "WSO2 Enterprise Integrator 6.6.0");
        for ds in ["REGISTRY_DB", "WSO2_USER_DB"] {
            assert_eq!(json["datasources"][ds], "ok", "{json}");
        }
        assert_eq!(json["warnings"], serde_json::json!([]), "{json}");
        let log = n.carbon_log();
        assert!(
            log.contains(&format!(
                "Member joined [wso2.ei.domain]: /127.0.0.1:{other}"
            )),
            "{log}"
        );
    }
    let (_, json) = a.health("/health");
    assert_eq!(json["ports"]["servlet_https"], a.port(9443));
    assert_eq!(json["ports"]["cluster"], p1);
    assert_eq!(json["proxy_ports"]["servlet_https"], 443);
    // The management console on the servlet HTTPS port.
    assert_eq!(get(b.port(9443), true, "/carbon/").0, 200);
    // b stops: a says the member is gone.
    drop(b);
    a.health_says(503, &[&format!("member 127.0.0.1:{p2} unreachable")]);
    assert!(a
        .carbon_log()
        .contains(&format!("Member left [wso2.ei.domain]: /127.0.0.1:{p2}")));
}

#[test]
fn an_ei_member_at_a_wrong_address_or_in_another_domain_is_named_in_health() {
    // Both on the pack's embedded databases: only clustering is under test.
    let closed = closed_port();
    let (pa, pb) = (MEMBER_BASE + 16, MEMBER_BASE + 17);
    let mut other = Carbon::new(EI, 17);
    other.cluster("wso2.other.domain", pb, &[]);
    assert!(other.start(), "{}", other.log());
    let mut n = Carbon::new(EI, 16);
    n.cluster(
        "wso2.ei.domain",
        pa,
        &[format!("127.0.0.1:{closed}"), format!("127.0.0.1:{pb}")],
    );
    assert!(n.start(), "{}", n.log());
    let json = n.health_says(503, &["unreachable: ", "is in domain"]);
    let why = reasons(&json);
    assert!(
        why.contains(&format!("member 127.0.0.1:{closed} unreachable: ")),
        "{why}"
    );
    assert!(
        why.contains(&format!(
            "member 127.0.0.1:{pb} is in domain wso2.other.domain, not wso2.ei.domain"
        )),
        "{why}"
    );
    assert_eq!(
        json["members"][&format!("127.0.0.1:{closed}")],
        "unreachable"
    );
    // /health/node leaves the cluster out.
    let (code, _) = get(n.port(9443), true, "/health/node");
    assert_eq!(code, 200);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !n.carbon_log().contains("Member joined"),
        "{}",
        n.carbon_log()
    );
    assert!(
        !other.carbon_log().contains("Member joined"),
        "{}",
        other.carbon_log()
    );
}

#[test]
fn malformed_xml_or_a_dangling_reference_refuses_the_start_naming_the_file() {
    let mut n = Carbon::new(EI, 18);
    n.edit("axis2/axis2.xml", "</clustering>", "</clusterin>");
    let err = n.refuses();
    assert!(
        err.contains("conf/axis2/axis2.xml: malformed XML at line"),
        "{err}"
    );

    let mut n = Carbon::new(EI, 18);
    n.edit(
        "user-mgt.xml",
        "<Property name=\"dataSource\">jdbc/WSO2CarbonDB</Property>",
        "<Property name=\"dataSource\">jdbc/WSO2UMDB</Property>",
    );
    let err = n.refuses();
    assert!(
        err.contains("user-mgt.xml Realm/Configuration dataSource: jdbc/WSO2UMDB is not the JNDI name of any datasource"),
        "{err}"
    );

    // A mount of an instance that is not there.
    let mut n = Carbon::new(APIM1, 18);
    n.edit(
        "registry.xml",
        "    <versionResourcesOnChange>",
        "    <mount path=\"/_system/config\" overwrite=\"true\">\n        <instanceId>nowhere</instanceId>\n        <targetPath>/_system/nodes</targetPath>\n    </mount>\n\n    <versionResourcesOnChange>",
    );
    let err = n.refuses();
    assert!(
        err.contains("registry.xml: mount /_system/config names instanceId nowhere"),
        "{err}"
    );
}

#[test]
fn the_carbon_packs_have_the_real_layouts() {
    let am = Carbon::new(APIM1, 19);
    for f in [
        "bin/wso2server.sh",
        "repository/conf/carbon.xml",
        "repository/conf/axis2/axis2.xml",
        "repository/conf/datasources/master-datasources.xml",
        "repository/conf/registry.xml",
        "repository/conf/user-mgt.xml",
        "repository/conf/api-manager.xml",
        "repository/conf/tomcat/catalina-server.xml",
        "repository/resources/security/wso2carbon.jks",
        "repository/resources/security/client-truststore.jks",
        "repository/deployment/server/jaggeryapps/publisher/jaggery.conf",
        "repository/deployment/server/webapps/oauth2.war",
        "dbscripts/mysql.sql",
        "dbscripts/apimgt/mysql.sql",
    ] {
        assert!(am.home.join(f).is_file(), "{APIM1}: no {f}");
    }
    assert!(am.home.join("repository/tenants").is_dir());
    let ei = Carbon::new(EI, 19);
    for f in [
        "bin/integrator.sh",
        "conf/carbon.xml",
        "conf/axis2/axis2.xml",
        "conf/datasources/master-datasources.xml",
        "conf/registry.xml",
        "conf/user-mgt.xml",
        "conf/tomcat/catalina-server.xml",
        "repository/resources/security/wso2carbon.jks",
        "dbscripts/mysql.sql",
    ] {
        assert!(ei.home.join(f).is_file(), "{EI}: no {f}");
    }
    for d in [
        "repository/tenants",
        "repository/deployment/server/synapse-configs/default/proxy-services",
        "lib",
    ] {
        assert!(ei.home.join(d).is_dir(), "{EI}: no {d}/");
    }
    // The defaults a playbook edits.
    let carbon = ei.read("carbon.xml");
    assert!(
        carbon.contains("<Offset>0</Offset>")
            && carbon.contains("<!--HostName>www.wso2.org</HostName-->")
    );
    let axis2 = ei.read("axis2/axis2.xml");
    assert!(axis2.contains("<clustering class=\"org.wso2.carbon.core.clustering.hazelcast.HazelcastClusteringAgent\"\n                enable=\"false\">"));
    assert!(axis2.contains("<parameter name=\"localMemberHost\">127.0.0.1</parameter>"));
    assert!(ei
        .read("datasources/master-datasources.xml")
        .contains("<url>jdbc:h2:repository/database/WSO2CARBON_DB;"));
}
