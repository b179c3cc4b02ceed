//! The WSO2 layer end to end: the active-active playbook (`playbooks/apim-active-active.yaml`) with the
//! example lab inventory, on a stand-in product pack (`tests/pack/build`: the real layout and a small Java
//! server that reads deployment.toml, serves TLS from the configured keystore and connects to the
//! configured databases). One test needs no lab (validate); the other provisions h1 (MariaDB), h2 + h3
//! (API-M nodes) and h4 (nginx) of the lab.

mod common;
use common::wso2::{
    build_pack, build_pack_version, converged, ensure_driver, gateway_reaches, health_at,
    java_args, nodes_behind, pack_vars, started_at, unit_time_ms, DRIVER,
};
use common::{lab, Project, Run};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const INVENTORY: &str = "inventory/lab-active-active.yaml";

fn project(edit: impl Fn(String) -> String) -> Project {
    common::wso2::project(INVENTORY, edit)
}

fn run(p: &Project, cmd: &str, vars: &[String], extra: &[&str]) -> Run {
    common::wso2::run(p, INVENTORY, cmd, vars, extra)
}

#[test]
fn the_playbook_validates_and_a_toml_ordering_mistake_in_an_override_fails_validate() {
    let p = project(|s| s);
    let files = p.path().join("inventory/files");
    let zip = build_pack(&files);
    ensure_driver();
    let vars = pack_vars(&files, &zip);
    let ok = run(&p, "validate", &vars, &[]);
    assert_eq!(ok.code, 0, "{}", ok.all());

    // An operator's extra TOML that reopens [apim.throttling] after the template's
    // [[apim.throttling.url_group]] entries: caught on the controller, before any host is touched.
    let bad = project(|s| {
        s.replace(
            "vars:\n",
            "vars:\n  wso2_toml_extra: |\n    [apim.throttling]\n    enable_unlimited_tier = true\n",
        )
    });
    let r = run(&bad, "validate", &vars, &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.all().contains("deployment.toml"), "{}", r.all());

    // Two sources for Java: the module says which vars clash.
    let r = run(
        &p,
        "validate",
        &vars,
        &[
            "-e",
            "jdk_tarball=/tmp/jdk.tgz",
            "-e",
            "jdk_url=https://example.invalid/jdk.tgz",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.all().contains("modules/jdk/tasks.yaml:1") && r.all().contains("jdk_url"),
        "{}",
        r.all()
    );

    // A download without its checksum: named by the module.
    let r = run(
        &p,
        "validate",
        &vars,
        &[
            "-e",
            "wso2_pack_url=https://example.invalid/wso2am-4.2.0.zip",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.all().contains("wso2_pack_url needs wso2_pack_sha256"),
        "{}",
        r.all()
    );

    // A pack that is not the one the operator pinned: caught on the controller too.
    let wrong = format!("wso2_pack_sha256={}", "0".repeat(64));
    let r = run(&p, "validate", &vars, &["-e", &wrong]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.all().contains("wso2am-4.2.0.zip is") && r.all().contains("not the expected"),
        "{}",
        r.all()
    );
}

#[test]
fn active_active_converges_rolls_restarts_and_a_wrong_db_password_fails_the_health_gate() {
    let Some((_lab, _)) = lab::acquire() else {
        return;
    };
    let t0 = Instant::now();
    let (p, ca) = converge_with_every_kind_of_reference();
    let vars: Vec<String> = Vec::new();
    let t_first = t0.elapsed();
    let checked = common::wso2::assert_secret_files_private(&p, INVENTORY, "wso2", "/opt/");
    assert!(checked >= 6, "only {checked} secret files found (want each node's deployment.toml, keystore, truststore)");
    // The sync key, which ssh-keygen (a command, not a file task) makes: the product user's, 0600.
    let (_, key) = lab::ssh("h2", "stat -c '%a %U' /var/lib/wso2-sync/id_ed25519");
    assert_eq!(key.trim(), "600 wso2", "the sync key");
    // Each node reports its databases and every peer (both traffic managers, the other node's JMS
    // broker through jndi2.properties, the gateway service URL: node 2's is node 1) as reachable.
    for (addr, peer) in [
        ("10.231.0.12", "10.231.0.13"),
        ("10.231.0.13", "10.231.0.12"),
    ] {
        let h = health_at(&ca, &format!("https://{addr}:9443/health"), None)
            .unwrap_or_else(|| panic!("{addr} is not healthy"));
        assert_eq!(h["datasources"]["apim_db"], "ok", "{h}");
        assert_eq!(h["datasources"]["shared_db"], "ok", "{h}");
        let peers = h["peers"].as_object().unwrap();
        for want in [
            format!("tcp://{peer}:9611"),
            format!("ssl://{peer}:9711"),
            format!("tcp://{peer}:5672"),
        ] {
            assert!(
                peers.iter().any(|(k, v)| k.contains(&want) && v == "ok"),
                "{addr}: {want} not ok in {h}"
            );
        }
    }

    // Through the load balancer: the gateway (80 proxied, 443) reaches both nodes; the portals are
    // sticky, so one client always lands on the same node.
    gateway_reaches(
        &ca,
        "gw.am.lab.internal",
        "10.231.0.14",
        &["10.231.0.12", "10.231.0.13"],
    );
    let portal = nodes_behind(
        &ca,
        "https://api.am.lab.internal/health",
        "api.am.lab.internal:443:10.231.0.14",
        6,
    );
    assert_eq!(portal.len(), 1, "portal not sticky: {portal:?}");

    // Artifact sync (rsync mode): an API deployed on node 1 appears on node 2 within a sync period.
    let api = "/opt/wso2am/repository/deployment/server/synapse-configs/default/api/PizzaShack.xml";
    lab::ssh(
        "h2",
        &format!("echo '<api name=\"PizzaShack\"/>' > {api} && chown wso2:wso2 {api}"),
    );
    let t = Instant::now();
    while lab::ssh("h3", &format!("grep -q PizzaShack {api}")).0 != 0 {
        assert!(
            t.elapsed() < Duration::from_secs(75),
            "h3 did not get h2's API"
        );
        std::thread::sleep(Duration::from_secs(2));
    }

    // A second plan and apply change nothing and restart nothing.
    let t1 = Instant::now();
    converged(&p, INVENTORY, &vars, || ["h2", "h3"].map(started_at));
    let t_again = t1.elapsed();
    drift_names_exactly_what_moved(&p, &ca);

    // Rolling restart: a new heap size restarts h2, waits for its health gate, then restarts h3. A
    // client polling the gateway through the load balancer meanwhile always gets an answer. Plan
    // equals apply: the unit file, daemon-reload, restart handler and health gates are all counted.
    let heap = ["--json", "-e", "wso2_heap_max=768m"];
    let plan = run(&p, "plan", &vars, &heap);
    assert_eq!(plan.code, 2, "{}", plan.all());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (ca, stop) = (ca.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match health_at(
                    &ca,
                    "http://gw.am.lab.internal/health/node",
                    Some("gw.am.lab.internal:80:10.231.0.14"),
                ) {
                    Some(_) => ok += 1,
                    None => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (ok, failed)
        })
    };
    let applied = run(&p, "apply", &vars, &heap);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = poller.join().unwrap();
    assert_eq!(applied.code, 0, "{}", applied.all());
    assert_eq!(
        failed,
        0,
        "{failed} of {} polls through the load balancer failed",
        ok + failed
    );
    assert!(ok > 5, "only {ok} polls");
    plan.assert_plan_matches(&applied);
    let h2 = health_at(&ca, "https://10.231.0.12:9443/health/node", None).unwrap();
    let h2_ready = h2["started_at"].as_u64().unwrap();
    let h3_stopped = unit_time_ms("h3", "InactiveEnterTimestamp");
    assert!(
        h3_stopped > h2_ready,
        "h3 went down at {h3_stopped}, before h2 was back at {h2_ready}"
    );
    for h in ["h2", "h3"] {
        assert!(java_args(h).contains("-Xmx768m"), "{h} not restarted");
    }

    // A wrong database password on h3 only: h3's health gate fails naming the host and the datasource,
    // what depends on it is skipped, and h2 is untouched.
    let since_h2 = started_at("h2");
    let good = std::fs::read_to_string(p.path().join(INVENTORY)).unwrap();
    p.write(
        INVENTORY,
        &good.replace(
            "h3: { address: 10.231.0.13 }",
            "h3: { address: 10.231.0.13, vars: { wso2_db_password: \"not-the-db-password\" } }",
        ),
    );
    let t2 = Instant::now();
    let bad = run(
        &p,
        "apply",
        &vars,
        &[
            "--json",
            "-e",
            "wso2_heap_max=768m",
            "-e",
            "wso2_health_timeout=30",
        ],
    );
    let t_bad = t2.elapsed();
    assert_eq!(bad.code, 1, "{}", bad.all());
    let gate = bad.event("h3", "wso2_health | health gate");
    assert_eq!(gate["status"], "failed", "{gate}");
    let msg = gate["message"].as_str().unwrap();
    assert!(msg.contains("h3"), "{msg}");
    assert!(
        msg.contains("WSO2AM_DB") || msg.contains("apim_db"),
        "{msg}"
    );
    assert!(!msg.contains("not-the-db-password"), "secret leaked: {msg}");
    assert_eq!(
        bad.event("h4", "nginx_lb | nginx.conf")["status"],
        "skipped_dependency"
    );
    assert_eq!(since_h2, started_at("h2"), "h2 was restarted");
    let h2_health =
        health_at(&ca, "https://10.231.0.12:9443/health/node", None).expect("h2 is healthy");
    assert_eq!(h2_health["datasources"]["apim_db"], "ok", "{h2_health}");

    // Restored: converges, and then nothing is left to do.
    p.write(INVENTORY, &good);
    let t3 = Instant::now();
    let fixed = run(&p, "apply", &vars, &["--json", "-e", "wso2_heap_max=768m"]);
    let t_fixed = t3.elapsed();
    assert_eq!(fixed.code, 0, "{}", fixed.all());
    let h3_health =
        health_at(&ca, "https://10.231.0.13:9443/health/node", None).expect("h3 is healthy");
    assert_eq!(h3_health["datasources"]["apim_db"], "ok", "{h3_health}");
    let plan = run(&p, "plan", &vars, &["-e", "wso2_heap_max=768m"]);
    assert_eq!(plan.code, 0, "{}", plan.all());

    let t4 = Instant::now();
    upgrade_from_a_mirror(&p, &vars, &ca);
    eprintln!(
        "timings: first apply (incl. pack build) {t_first:?}, no-op apply {t_again:?}, \
         failing apply {t_bad:?}, restoring apply {t_fixed:?}, upgrade {:?}, total {:?}",
        t4.elapsed(),
        t0.elapsed()
    );
}

/// An HTTP server for the lab's hosts: python's http.server serving `dir` from h1's network namespace
/// (the lab's firewall keeps hosts off the controller), stopped by PID when dropped.
struct Mirror(std::process::Child);

const MIRROR: &str = "http://10.231.0.11:8000";

impl Mirror {
    fn serve(dir: &Path) -> Self {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                "apimlab-h1",
                "python3",
                "-m",
                "http.server",
            ])
            .args(["--bind", "10.231.0.11", "8000", "--directory"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the mirror");
        let m = Mirror(child);
        for _ in 0..100 {
            let up = Command::new("curl")
                .args(["-fs", "-o", "/dev/null", "--max-time", "2", MIRROR])
                .status()
                .is_ok_and(|s| s.success());
            if up {
                return m;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the mirror on 10.231.0.11:8000 did not answer");
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The four passwords, each from another kind of reference: the DB's from the environment, the
/// admin's from a command, the truststore's from an owner-only file, the keystore's from the age
/// secrets file the test kit writes ([`common::wso2::SECRETS`]).
const DB_PASSWORD: &str = "aa-Db-from-env-7";
const ADMIN_PASSWORD: &str = "aa-Admin-from-cmd-7";
const TRUSTSTORE_PASSWORD: &str = "aa-Ts-from-file-7";
const KEYSTORE_PASSWORD: &str = "apim-Ks-pass-1";

/// Samples `ps -eo args` on the controller and on h1..h4 until stopped: whatever ran with a secret on
/// its command line, however briefly, has a chance to be seen.
struct ProcessSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<(String, usize, String)>>,
}

impl ProcessSampler {
    fn start() -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = ["controller", "h1", "h2", "h3", "h4"]
            .into_iter()
            .map(|h| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let (mut n, mut seen) = (0, String::new());
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let out = if h == "controller" {
                            let o = Command::new("ps").args(["-eo", "args"]).output().unwrap();
                            String::from_utf8_lossy(&o.stdout).into_owned()
                        } else {
                            lab::ssh(h, "ps -eo args").1
                        };
                        seen.push_str(&out);
                        n += 1;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    (h.to_string(), n, seen)
                })
            })
            .collect();
        Self { stop, threads }
    }

    /// Every sample, by host, with how many were taken.
    fn finish(self) -> Vec<(String, usize, String)> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect()
    }
}

/// The first converge of the cluster with every password from a reference of another kind: plan,
/// apply -vv with the process lists of the controller and of every host sampled throughout, a second
/// apply and a plan in JSON, drift in text and JSON. No password appears in any output or in any
/// process's command line.
fn converge_with_every_kind_of_reference() -> (Project, std::path::PathBuf) {
    let admin_file = "admin-password.txt";
    let p = project(|s| {
        s.replace(
            "wso2_db_password: { secret: wso2_db_password }",
            "wso2_db_password: { env: AA_DB_PASSWORD }",
        )
        .replace(
            "wso2_admin_password: { secret: wso2_admin_password }",
            &format!("wso2_admin_password: {{ cmd: \"cat {admin_file}\" }}"),
        )
        .replace(
            "wso2_truststore_password: { secret: wso2_truststore_password }",
            "wso2_truststore_password: { file: truststore-password }",
        )
    });
    p.set_env("AA_DB_PASSWORD", DB_PASSWORD);
    p.write(admin_file, &format!("{ADMIN_PASSWORD}\n"));
    let ts = p.write(
        "inventory/truststore-password",
        &format!("{TRUSTSTORE_PASSWORD}\n"),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ts, std::fs::Permissions::from_mode(0o600)).unwrap();
    build_pack(&p.path().join("inventory/files"));
    common::wso2::fresh_hosts();
    let secrets = [
        DB_PASSWORD,
        ADMIN_PASSWORD,
        TRUSTSTORE_PASSWORD,
        KEYSTORE_PASSWORD,
    ];
    let mut outputs = vec![("plan -vv", run(&p, "plan", &[], &["-vv"]))];
    assert_eq!(outputs[0].1.code, 2, "{}", outputs[0].1.all());
    let sampler = ProcessSampler::start();
    let t = Instant::now();
    let apply = run(&p, "apply", &[], &["-vv"]);
    let applied_in = t.elapsed();
    let samples = sampler.finish();
    assert_eq!(apply.code, 0, "{}", apply.all());
    outputs.push(("apply -vv", apply));
    outputs.push(("apply --json", run(&p, "apply", &[], &["--json"])));
    outputs.push(("plan --json", run(&p, "plan", &[], &["--json"])));
    outputs.push(("drift", run(&p, "drift", &[], &[])));
    outputs.push(("drift --json", run(&p, "drift", &[], &["--json"])));
    for (what, r) in &outputs[2..] {
        assert_eq!(r.code, 0, "{what}: {}", r.all());
    }
    for (what, r) in &outputs {
        for s in secrets {
            assert!(!r.all().contains(s), "{what} shows the secret {s}");
        }
    }
    for (host, n, seen) in &samples {
        // About one sample a second per host at least: a sampler that did not run proves nothing.
        assert!(
            *n as u64 >= applied_in.as_secs() / 2,
            "{host}: only {n} process samples in {applied_in:?}"
        );
        for s in secrets {
            assert!(
                !seen.contains(s),
                "{host}: the secret {s} is on a command line"
            );
        }
    }
    // The references resolved: the nodes reach their databases with the password from the env.
    let ca = p.path().join("inventory/.apim-state/pki/ca.pem");
    let h = health_at(&ca, "https://10.231.0.12:9443/health", None).expect("h2 healthy");
    assert_eq!(h["datasources"]["apim_db"], "ok", "{h}");
    (p, ca)
}

fn sha256_of(path: &Path) -> String {
    apim_provision::resources::sha256_hex(&std::fs::read(path).unwrap())
}

/// A Java runtime with only `modules`, made with jlink from the controller's JDK, as `www/<name>.tar.gz`
/// (top directory `<name>`); returns its sha256.
fn jdk_tarball(www: &Path, name: &str, modules: &str) -> String {
    let jlink = Command::new("jlink")
        .args([
            "--add-modules",
            modules,
            "--strip-debug",
            "--no-header-files",
        ])
        .args(["--no-man-pages", "--output"])
        .arg(www.join(name))
        .status()
        .expect("run jlink");
    assert!(jlink.success(), "jlink failed");
    let tarball = www.join(format!("{name}.tar.gz"));
    let tar = Command::new("tar")
        .arg("czf")
        .arg(&tarball)
        .arg("-C")
        .arg(www)
        .arg(name)
        .status()
        .unwrap();
    assert!(tar.success(), "tar of the JDK failed");
    sha256_of(&tarball)
}

/// `-e` arguments for a JDK tarball `name` from the mirror.
fn jdk_vars(name: &str, sha: &str) -> Vec<String> {
    [
        format!("jdk_url={MIRROR}/{name}.tar.gz"),
        format!("jdk_sha256={sha}"),
        format!("jdk_tarball_dir={name}"),
    ]
    .into_iter()
    .flat_map(|v| ["-e".to_string(), v])
    .collect()
}

/// Upgrade to 4.2.1 with everything downloaded by the hosts: a new pack, a JDK tarball and the driver,
/// each pinned by sha256. First with a JDK that lacks a module the driver needs: the JVM dies before it
/// can log, and the health gate says why from the journal. Then with a complete one: the new version
/// gets its own directory and the link moves; the old directory stays; both nodes restart onto the new
/// Java and pass their health gate; the next apply changes nothing.
fn upgrade_from_a_mirror(p: &Project, vars: &[String], ca: &Path) {
    let www = p.path().join("www");
    let zip = build_pack_version(&www, "4.2.1");
    let base = "java.base,java.sql,java.naming,java.management,java.logging,java.xml,jdk.httpserver,jdk.crypto.ec";
    let short_sha = jdk_tarball(&www, "jdk-17-short", base);
    let full_sha = jdk_tarball(&www, "jdk-17-lab", &format!("{base},java.sql.rowset"));
    std::fs::copy(DRIVER, www.join("mariadb-java-client.jar")).unwrap();
    let _mirror = Mirror::serve(&www);

    let mut up = vars.to_vec();
    for v in [
        "product_version=4.2.1".to_string(),
        format!("wso2_pack_url={MIRROR}/wso2am-4.2.1.zip"),
        format!("wso2_pack_sha256={}", sha256_of(&zip)),
        format!("jdbc_driver_url={MIRROR}/mariadb-java-client.jar"),
        format!("jdbc_driver_sha256={}", sha256_of(Path::new(DRIVER))),
    ] {
        up.extend(["-e".to_string(), v]);
    }
    let mut short = up.clone();
    short.extend(jdk_vars("jdk-17-short", &short_sha));
    let r = run(
        p,
        "apply",
        &short,
        &["--json", "-e", "wso2_health_timeout=20"],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    let msg = r.event("h2", "wso2_health | health gate")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("h2: service wso2am is") && msg.contains("javax.sql.rowset"),
        "{msg}"
    );

    up.extend(jdk_vars("jdk-17-lab", &full_sha));
    let r = run(p, "apply", &up, &["--json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for (host, addr) in [("h2", "10.231.0.12"), ("h3", "10.231.0.13")] {
        let (_, state) = lab::ssh(
            host,
            "readlink /opt/wso2am; readlink /opt/java/current; test -d /opt/wso2am-4.2.0 && echo kept; \
             pid=$(systemctl show -p MainPID --value wso2am); readlink /proc/$pid/exe /proc/$pid/cwd",
        );
        assert_eq!(
            state.split_whitespace().collect::<Vec<_>>(),
            [
                "/opt/wso2am-4.2.1",
                "/opt/java/jdk-17-lab",
                "kept",
                "/opt/java/jdk-17-lab/bin/java",
                "/opt/wso2am-4.2.1"
            ],
            "{host}"
        );
        let h = health_at(ca, &format!("https://{addr}:9443/health/node"), None)
            .unwrap_or_else(|| panic!("{addr} is not healthy"));
        assert_eq!(h["datasources"]["apim_db"], "ok", "{addr}: {h}");
    }
    let again = run(p, "apply", &up, &["--json"]);
    again.assert_no_changes();
}

/// What drift must leave alone on the lab: each managed file's checksum and attributes (the files the
/// last apply recorded), each service's state and main PID, the product account's grants and the
/// controller's state directory.
fn untouched_state(p: &Project) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for h in ["h1", "h2", "h3", "h4"] {
        let record = p
            .path()
            .join(format!("inventory/.apim-state/applied/{h}.json"));
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
        let files: Vec<String> = record["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| format!("'{}'", f["dest"].as_str().unwrap()))
            .collect();
        assert!(!files.is_empty(), "{h}: no managed files recorded");
        let (_, sums) = lab::ssh(
            h,
            &format!(
                "sha256sum {f}; stat -c '%n %a %U %G' {f}; \
                 systemctl show -p ActiveState -p UnitFileState -p MainPID wso2am mariadb nginx",
                f = files.join(" ")
            ),
        );
        out.insert(h.to_string(), sums);
    }
    out.insert(
        "grants".into(),
        lab::ssh(
            "h1",
            "mysql -N -e \"SHOW GRANTS FOR apimuser@'10.231.0.%'\"",
        )
        .1,
    );
    let mut stack = vec![p.path().join("inventory/.apim-state")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.display().to_string(), sha256_of(&path));
            }
        }
    }
    out
}

/// Drift on the converged active-active cluster: four things moved by hand (a deployment.toml edit on
/// h2, wso2am stopped on h3, the product account's grant on one database revoked on h1, h2's primary
/// keystore replaced by another certificate) are exactly what every report names; drift itself changes
/// nothing; `--fix` repairs them and the nodes are healthy again; a host cut off is an error by name.
fn drift_names_exactly_what_moved(p: &Project, ca: &Path) {
    let none = run(p, "drift", &[], &["--json"]);
    assert_eq!(none.code, 0, "a converged cluster drifted: {}", none.all());

    let toml = "/opt/wso2am/repository/conf/deployment.toml";
    lab::ssh("h2", &format!("echo '# tuned by hand' >> {toml}"));
    lab::ssh("h3", "systemctl stop wso2am");
    lab::ssh(
        "h1",
        "mysql -e \"REVOKE ALL PRIVILEGES ON WSO2SHARED_DB.* FROM apimuser@'10.231.0.%'\"",
    );
    let ks = "/opt/wso2am/repository/resources/security/wso2carbon.jks";
    let (code, out) = lab::ssh(
        "h2",
        &format!(
            "set -e; export P=apim-Ks-pass-1; rm -f /tmp/other.jks; \
             keytool -genkeypair -alias wso2carbon -keyalg RSA -keysize 2048 -validity 30 \
               -dname CN=replaced -storetype JKS -keystore /tmp/other.jks -storepass:env P -keypass:env P; \
             install -o wso2 -g wso2 -m 0640 /tmp/other.jks {ks}; rm -f /tmp/other.jks"
        ),
    );
    assert_eq!(code, 0, "replacing h2's keystore: {out}");

    let before = untouched_state(p);
    let want = [
        "h1 wso2_databases | product account",
        "h2 wso2_node | wso2_config | deployment.toml",
        "h2 wso2_node | wso2_keystores | primary keystore",
        "h3 wso2_service | service",
    ];
    let junit = p.path().join("drift.xml");
    let prom = p.path().join("drift.prom");
    let human = run(
        p,
        "drift",
        &[],
        &[
            "--junit",
            junit.to_str().unwrap(),
            "--prometheus",
            prom.to_str().unwrap(),
        ],
    );
    assert_eq!(human.code, 2, "{}", human.all());
    assert!(
        human.stdout.contains("Drift: 4 drifted on 3 of 4 hosts"),
        "{}",
        human.stdout
    );
    // How each one differs: deployment.toml holds secrets, so only how much changed; the grant, the
    // service state, the certificate.
    for what in [
        "(sensitive content, 1 lines changed)",
        "start (is inactive)",
        "certificate under alias wso2carbon",
        "(expires ",
        "grant ALL on WSO2SHARED_DB.*",
    ] {
        assert!(
            human.stdout.contains(what),
            "no `{what}` in:\n{}",
            human.stdout
        );
    }
    let json = run(p, "drift", &[], &["--json"]);
    assert_eq!(json.code, 2, "{}", json.all());
    let names = json.drifted(&["host", "task"]);
    assert_eq!(names, want, "drift must name exactly the four");
    for secret in [
        "apim-Ks-pass-1",
        "BEGIN PRIVATE KEY",
        "BEGIN RSA PRIVATE KEY",
    ] {
        assert!(
            !json.all().contains(secret) && !human.all().contains(secret),
            "{secret} shown"
        );
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<failure").count(), 4, "{xml}");
    for n in want {
        let task = n.split_once(' ').unwrap().1;
        assert!(
            xml.contains(&format!("name=\"{task}: ")),
            "{task} not in {xml}"
        );
    }
    let prom = std::fs::read_to_string(&prom).unwrap();
    for (h, n) in [("h1", 1), ("h2", 2), ("h3", 1), ("h4", 0)] {
        let line = format!("apim_provision_drift_resources{{host=\"{h}\"}} {n}");
        assert!(prom.lines().any(|l| l == line), "no `{line}` in:\n{prom}");
    }
    assert_eq!(before, untouched_state(p), "drift changed something");

    // --fix repairs the four, the nodes are healthy, and then nothing has drifted.
    let fixed = run(p, "drift", &[], &["--fix"]);
    assert_eq!(fixed.code, 0, "{}", fixed.all());
    for addr in ["10.231.0.12", "10.231.0.13"] {
        let h = health_at(ca, &format!("https://{addr}:9443/health"), None)
            .unwrap_or_else(|| panic!("{addr} is not healthy after --fix"));
        assert_eq!(h["datasources"]["shared_db"], "ok", "{h}");
    }
    let clean = run(p, "drift", &[], &["--json"]);
    assert_eq!(clean.code, 0, "{}", clean.all());

    // A host cut off: an error naming it; the others are still checked.
    lab::lab(&["fault", "h4", "cut"]);
    let cut = run(p, "drift", &[], &["--json"]);
    lab::lab(&["fault", "h4", "heal"]);
    assert_eq!(cut.code, 1, "{}", cut.all());
    let summary = cut.summary();
    assert_eq!(
        summary["unreachable"],
        serde_json::json!(["h4"]),
        "{summary}"
    );
    assert_eq!(summary["drifted"], 0, "{summary}");
    assert!(summary["checked"].as_u64().unwrap() > 20, "{summary}");
}
