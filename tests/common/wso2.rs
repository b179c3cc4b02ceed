//! The WSO2 layer's test kit: a project with the repository's playbooks and modules, the stand-in
//! product pack (`tests/pack/build`), the JDBC driver, and checks of a running node.

use super::{lab, Project, Run};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The JDBC driver on the controller (Debian's MariaDB Connector/J).
pub const DRIVER: &str = "/usr/share/java/mariadb-java-client.jar";

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The passwords the example inventories' `{ secret: NAME }` references find in the test projects'
/// secrets file.
pub const SECRETS: &[(&str, &str)] = &[
    ("wso2_db_password", "apim-Db-pass-1"),
    ("wso2_admin_password", "apim-Admin-pass-1"),
    ("wso2_keystore_password", "apim-Ks-pass-1"),
    ("wso2_truststore_password", "apim-Ts-pass-1"),
];

/// A project with the repository's playbooks and modules and a copy of the example inventory at the same
/// relative path (so the CA and keys in `inventory/.apim-state` stay in the temp dir), with `edit`
/// applied to the inventory, and the inventory's `secrets.age` holding [`SECRETS`] for the project's
/// own identity.
pub fn project(inventory: &str, edit: impl Fn(String) -> String) -> Project {
    let p = Project::new();
    for d in ["playbooks", "modules"] {
        std::os::unix::fs::symlink(repo().join(d), p.path().join(d)).unwrap();
    }
    let inv = std::fs::read_to_string(repo().join(inventory)).unwrap();
    p.write(inventory, &edit(inv));
    let store = Path::new(inventory).with_file_name("secrets.age");
    p.seal_secrets(store.to_str().unwrap(), SECRETS);
    p
}

/// Builds the stand-in pack into `dir` (the zip, `dir/dbscripts` and `dir/mariadb-java-client.jar`, as
/// the example inventories expect them under `files/`); returns the zip's path.
pub fn build_pack(dir: &Path) -> PathBuf {
    build_pack_version(dir, "4.2.0")
}

/// Builds the stand-in pack of `version` into `dir`; returns the zip's path.
pub fn build_pack_version(dir: &Path, version: &str) -> PathBuf {
    // The build copies the JDBC driver next to the zip.
    ensure_driver();
    let out = Command::new(repo().join("tests/pack/build"))
        .arg(dir)
        .arg(version)
        .output()
        .expect("run tests/pack/build");
    assert!(
        out.status.success(),
        "tests/pack/build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let zip = PathBuf::from(stdout.lines().last().unwrap_or("").trim());
    assert!(zip.is_file(), "tests/pack/build printed no zip: {stdout}");
    assert!(
        dir.join("dbscripts/apimgt/mysql.sql").is_file(),
        "no dbscripts in {}",
        dir.display()
    );
    zip
}

/// The JDBC driver on the controller: Debian's MariaDB Connector/J, installed when missing.
pub fn ensure_driver() {
    if !Path::new(DRIVER).exists() {
        let st = Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=120", "install", "-y", "-q"])
            .arg("libmariadb-java")
            .status()
            .expect("run apt-get");
        assert!(st.success() && Path::new(DRIVER).exists(), "no {DRIVER}");
    }
}

/// `-e` arguments naming the pack, its dbscripts and the driver built in `dir`.
pub fn pack_vars(dir: &Path, zip: &Path) -> Vec<String> {
    [
        format!("wso2_pack_zip={}", zip.display()),
        format!("wso2_dbscripts_dir={}", dir.join("dbscripts").display()),
        format!(
            "jdbc_driver_jar={}",
            dir.join("mariadb-java-client.jar").display()
        ),
    ]
    .into_iter()
    .flat_map(|v| ["-e".to_string(), v])
    .collect()
}

/// Runs `cmd` (plan, apply, validate) on `inventory` with the `-e` arguments `vars`, then `extra`.
pub fn run(p: &Project, inventory: &str, cmd: &str, vars: &[String], extra: &[&str]) -> Run {
    let mut args = vec![cmd, inventory, "--no-color"];
    args.extend(vars.iter().map(String::as_str));
    args.extend_from_slice(extra);
    p.run(&args)
}

/// When the host's wso2am service last entered the active state (monotonic µs, one clock for every lab
/// host; changes on a restart).
pub fn started_at(host: &str) -> u64 {
    started_at_unit(host, "wso2am")
}

/// When `unit` on `host` last entered the active state (see [`started_at`]).
pub fn started_at_unit(host: &str, unit: &str) -> u64 {
    let (_, out) = lab::ssh(
        host,
        &format!("systemctl show -p ActiveEnterTimestampMonotonic --value {unit}"),
    );
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{host}: no start time in `{out}`"))
}

/// The JVM's command line of the host's running wso2am: what shows the heap and profile it was started
/// with, and so whether a change reached the running server.
pub fn java_args(host: &str) -> String {
    java_args_unit(host, "wso2am")
}

/// The JVM's command line of `unit` on `host` (see [`java_args`]).
pub fn java_args_unit(host: &str, unit: &str) -> String {
    lab::ssh(
        host,
        &format!("tr '\\0' ' ' < /proc/$(systemctl show -p MainPID --value {unit})/cmdline"),
    )
    .1
}

/// Puts h1..h4 back to fresh for a WSO2 topology test: no product, unit, sync state, nginx site, JDK
/// tarball, download or cluster names on any of them (another topology's test may have left them: a sync
/// timer on h2 would push into the next test's nodes, nginx on h4 holds port 9443), and no product
/// databases or account on h1.
pub fn fresh_hosts() {
    fresh(&["h1", "h2", "h3", "h4"]);
}

/// [`fresh_hosts`] for `hosts` (a lab of more hosts: the ones a test uses). Every WSO2 product the
/// playbooks install goes: the 4.x one, the Carbon instances (`wso2am-<component>`) and EI, with their
/// databases, since one left running holds the ports the next topology's nodes need.
pub fn fresh(hosts: &[&str]) {
    for h in hosts {
        lab::ssh(h, "for u in $(systemctl list-units --all --plain --no-legend 'wso2am*' 'wso2ei*' | awk '{print $1}'); do systemctl disable --now \"$u\"; done; systemctl disable --now wso2am wso2-sync.timer nginx 2>/dev/null; rm -rf /opt/wso2am /opt/wso2am-* /opt/wso2ei /opt/wso2ei-* /opt/java/jdk-17-* /var/cache/apim-provision /etc/systemd/system/wso2am*.service /etc/systemd/system/wso2ei*.service /etc/systemd/system/wso2-sync.* /var/lib/wso2-sync /etc/nginx/conf.d/*.conf; sed -i '/apim-provision cluster names/,/apim-provision cluster names/d' /etc/hosts; systemctl daemon-reload; true");
    }
    if hosts.contains(&"h1") {
        lab::ssh("h1", "command -v mysql >/dev/null && for d in WSO2AM_DB WSO2SHARED_DB apimgtdb userdb regdb WSO2_USER_DB REGISTRY_DB REGISTRY_LOCAL1 REGISTRY_LOCAL2; do mysql -e \"DROP DATABASE IF EXISTS $d\"; done && mysql -e 'DROP USER IF EXISTS apimuser@\"10.231.0.%\"; DROP USER IF EXISTS regadmin@\"10.231.0.%\"'; true");
    }
}

/// The stand-in's health answer at `url` (TLS verified against the cluster CA; `resolve` pins a
/// name to the load balancer's address as a client's DNS would), or None when it does not answer 200.
pub fn health_at(ca: &Path, url: &str, resolve: Option<&str>) -> Option<serde_json::Value> {
    let mut c = Command::new("curl");
    c.args(["-fsS", "--max-time", "5", "--cacert"]).arg(ca);
    if let Some(r) = resolve {
        c.args(["--resolve", r]);
    }
    let out = c.arg(url).output().expect("run curl");
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// What `name_of` makes of each health answer of `url` through the load balancer in `tries` requests:
/// the nodes behind it, by the names a test compares.
fn answered_behind(
    ca: &Path,
    url: &str,
    resolve: &str,
    tries: usize,
    name_of: impl Fn(&serde_json::Value) -> String,
) -> std::collections::BTreeSet<String> {
    (0..tries)
        .map(|_| {
            let h = health_at(ca, url, Some(resolve))
                .unwrap_or_else(|| panic!("{url} via {resolve} did not answer 200"));
            name_of(&h)
        })
        .collect()
}

/// The node addresses that answered `url` through the load balancer in `tries` requests.
pub fn nodes_behind(
    ca: &Path,
    url: &str,
    resolve: &str,
    tries: usize,
) -> std::collections::BTreeSet<String> {
    answered_behind(ca, url, resolve, tries, |h| {
        h["node_ip"].as_str().unwrap_or_default().to_string()
    })
}

/// A systemd timestamp property of the host's wso2am (e.g. ActiveEnterTimestamp) as epoch
/// milliseconds, to compare with the stand-in's own `started_at`.
pub fn unit_time_ms(host: &str, prop: &str) -> u64 {
    unit_time_ms_of(host, "wso2am", prop)
}

/// [`unit_time_ms`] of `unit`.
pub fn unit_time_ms_of(host: &str, unit: &str, prop: &str) -> u64 {
    let (_, out) = lab::ssh(
        host,
        &format!(
            "date -d \"$(systemctl show -p {prop} --value --timestamp=us+utc {unit})\" +%s%3N"
        ),
    );
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{host}: no {prop} in `{out}`"))
}

/// A topology's first converge on fresh hosts, as an operator sees it: the example inventory in a
/// project with the stand-in pack, a plan that has changes (exit 2), an apply that succeeds with
/// `extra` arguments, neither showing a secret of the inventory. The project and the cluster CA's
/// path.
pub fn first_converge(inventory: &str, extra: &[&str]) -> (Project, PathBuf) {
    first_converge_on(inventory, &["h1", "h2", "h3", "h4"], extra)
}

/// [`first_converge`] with `hosts` made fresh first (a lab of more hosts).
pub fn first_converge_on(inventory: &str, hosts: &[&str], extra: &[&str]) -> (Project, PathBuf) {
    let p = project(inventory, |s| s);
    build_pack(&p.path().join("inventory/files"));
    fresh(hosts);
    let plan = run(&p, inventory, "plan", &[], &[]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let first = run(&p, inventory, "apply", &[], &args);
    assert_eq!(first.code, 0, "{}", first.all());
    // No secret of the inventory in what the operator saw.
    for (name, value) in SECRETS {
        for (what, out) in [("plan", plan.all()), ("apply", first.all())] {
            assert!(!out.contains(value), "{what} shows the secret {name}");
        }
    }
    let ca = p.path().join("inventory/.apim-state/pki/ca.pem");
    (p, ca)
}

/// The Carbon stand-in servers (API-M 1.x, EI) that answered `url` through the load balancer in `tries`
/// requests, each as `address` (offset 0) or `address+offset`, from their health answers.
pub fn carbon_nodes_behind(
    ca: &Path,
    url: &str,
    resolve: &str,
    tries: usize,
) -> std::collections::BTreeSet<String> {
    answered_behind(ca, url, resolve, tries, |h| {
        let ip = h["local_ip"].as_str().unwrap_or_default().to_string();
        match h["offset"].as_u64() {
            Some(0) | None => ip,
            Some(o) => format!("{ip}+{o}"),
        }
    })
}

/// API traffic to `name` through the load balancer at `lb` (80 proxied and 443) reaches exactly the
/// nodes at `addrs`.
pub fn gateway_reaches(ca: &Path, name: &str, lb: &str, addrs: &[&str]) {
    for (scheme, port) in [("http", 80), ("https", 443)] {
        let url = format!("{scheme}://{name}/health");
        let seen = nodes_behind(ca, &url, &format!("{name}:{port}:{lb}"), 8);
        let want: std::collections::BTreeSet<String> =
            addrs.iter().map(|a| a.to_string()).collect();
        assert_eq!(seen, want, "{url} through {lb}");
    }
}

/// The second run of a converged topology: the plan exits 0 with nothing to change, the apply changes
/// nothing, and `started` (the nodes' start times) is the same before and after: nothing restarted.
pub fn converged<T: PartialEq + std::fmt::Debug>(
    p: &Project,
    inventory: &str,
    vars: &[String],
    started: impl Fn() -> T,
) {
    let before = started();
    let plan = run(p, inventory, "plan", vars, &["--json"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    plan.assert_no_changes();
    let again = run(p, inventory, "apply", vars, &["--json"]);
    again.assert_no_changes();
    assert_eq!(before, started(), "a no-op apply restarted wso2am");
}

/// Resources that write a file named by the second word of their target (`template /opt/x.toml`).
const FILE_KINDS: &[&str] = &[
    "copy",
    "template",
    "blockinfile",
    "lineinfile",
    "xml",
    "keystore",
    "truststore",
];

/// Every file on the hosts that holds a secret, by host, as the engine knows it: the file of each task
/// a `plan --json` of the converged cluster reports as sensitive (it reads a secret), and every
/// keystore, whatever its password's source, but for one that is a PEM certificate alone (public).
pub fn secret_files(p: &Project, inventory: &str) -> BTreeMap<String, BTreeSet<String>> {
    let plan = run(p, inventory, "plan", &[], &["--json"]);
    assert!(plan.code == 0 || plan.code == 2, "{}", plan.all());
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in plan.json().into_iter().filter(|e| e["type"] == "task") {
        let kind = e["resource"].as_str().unwrap_or_default();
        if !FILE_KINDS.contains(&kind) || !(e["sensitive"] == true || kind == "keystore") {
            continue;
        }
        let Some(path) = e["target"].as_str().and_then(|t| t.split(' ').nth(1)) else {
            continue;
        };
        let host = e["host"].as_str().unwrap();
        if e["sensitive"] != true {
            let (_, first) = lab::ssh(host, &format!("head -c 27 '{path}'"));
            if first == "-----BEGIN CERTIFICATE-----" {
                continue;
            }
        }
        out.entry(host.to_string())
            .or_default()
            .insert(path.to_string());
    }
    out
}

/// After an apply: every file [`secret_files`] finds is readable by its owner (and group) only —
/// 0600, 0640, 0400 or 0440 — and owned by `product_user` when it lies under `product_dir` (the
/// product's files; the others, such as the load balancer's TLS key, by root); and no java process of
/// the product runs as root. Returns how many files were checked, so a caller can insist on some.
pub fn assert_secret_files_private(
    p: &Project,
    inventory: &str,
    product_user: &str,
    product_dir: &str,
) -> usize {
    let files = secret_files(p, inventory);
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (host, paths) in &files {
        let list: Vec<String> = paths
            .iter()
            .map(|p| format!("'{}'", p.replace('\'', "'\\''")))
            .collect();
        let (code, out) = lab::ssh(host, &format!("stat -L -c '%a %U %n' {}", list.join(" ")));
        assert_eq!(code, 0, "{host}: stat {list:?}: {out}");
        for line in out.lines() {
            let mut parts = line.splitn(3, ' ');
            let (mode, owner, path) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            let want_owner = if path.starts_with(product_dir) {
                product_user
            } else {
                "root"
            };
            if !["600", "640", "400", "440"].contains(&mode) || owner != want_owner {
                wrong.push(format!(
                    "{host}:{path} is {mode} {owner} (want 0600/0640, {want_owner})"
                ));
            }
            checked += 1;
        }
        let (_, java) = lab::ssh(host, "ps -o user= -C java || true");
        assert!(
            !java.lines().any(|u| u.trim() == "root"),
            "{host}: the product runs as root: {java}"
        );
    }
    assert!(
        wrong.is_empty(),
        "secret files too open:\n{}",
        wrong.join("\n")
    );
    checked
}
