//! A private MariaDB server for tests that need real databases on this machine (the stand-in packs'
//! datasources): its own data directory in a temp dir, TCP on 127.0.0.1 at a free port (JDBC has no unix
//! socket without extra jars) plus a socket for root's setup SQL. It is started once per test binary and
//! stopped and removed when the binary exits: a watchdog shell holds the server and ends it when its stdin,
//! a pipe from this process, closes.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

pub struct MariaDb {
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    socket: String,
    _watchdog: Mutex<Child>,
}

fn sh(script: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh runs")
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The shared server, started on first use.
pub fn server() -> &'static MariaDb {
    static SERVER: OnceLock<MariaDb> = OnceLock::new();
    SERVER.get_or_init(start)
}

fn start() -> MariaDb {
    if !Path::new("/usr/sbin/mariadbd").exists() || !Path::new("/usr/bin/mariadb").exists() {
        let out = sh(
            "DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -q \
             --no-install-recommends mariadb-server mariadb-client 2>&1",
        );
        assert!(
            out.status.success(),
            "installing mariadb-server failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("standin-mariadb")
        .tempdir()
        .unwrap()
        .keep();
    let d = quote(&dir.display().to_string());
    let out = sh(&format!(
        "mariadb-install-db --no-defaults --datadir={d}/data --user=root \
         --auth-root-authentication-method=socket --skip-test-db 2>&1"
    ));
    assert!(
        out.status.success(),
        "mariadb-install-db failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A free port now; nothing else of the tests binds ephemeral ports on purpose.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "mariadbd --no-defaults --datadir={d}/data --socket={d}/sock --port={port} \
             --bind-address=127.0.0.1 --skip-name-resolve --pid-file={d}/pid --user=root \
             --log-error={d}/err.log --innodb-buffer-pool-size=16M </dev/null >/dev/null 2>&1 & pid=$!\n\
             read _ || true\nkill \"$pid\"\nwait \"$pid\"\nrm -rf {d}\n"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the mariadbd watchdog");
    let socket = dir.join("sock").display().to_string();
    let out = sh(&format!(
        "i=0; until mariadb --no-defaults --socket={s} -uroot -e 'SELECT 1' >/dev/null 2>&1; do \
         i=$((i + 1)); [ $i -gt 300 ] && {{ cat {d}/err.log; exit 1; }}; sleep 0.1; done",
        s = quote(&socket)
    ));
    assert!(
        out.status.success(),
        "mariadbd did not come up: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    MariaDb {
        port,
        socket,
        _watchdog: Mutex::new(watchdog),
    }
}

impl MariaDb {
    /// Runs SQL as root (over the socket); returns what it printed.
    pub fn sql(&self, sql: &str) -> String {
        self.sql_in("", sql)
    }

    fn sql_in(&self, db: &str, sql: &str) -> String {
        let out = sh(&format!(
            "mariadb --no-defaults --socket={} -uroot --batch --skip-column-names {db} <<'__SQL__'\n{sql}\n__SQL__\n",
            quote(&self.socket)
        ));
        assert!(
            out.status.success(),
            "SQL failed: {}\n{sql}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Creates database `db` (dropping an old one), imports `script` into it when given, and lets `user`
    /// with `password` use it from 127.0.0.1.
    pub fn database(&self, db: &str, script: Option<&Path>, user: &str, password: &str) {
        self.sql(&format!(
            "DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}`; \
             CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'; \
             GRANT ALL ON `{db}`.* TO '{user}'@'127.0.0.1';"
        ));
        if let Some(script) = script {
            self.sql_in(db, &std::fs::read_to_string(script).unwrap());
        }
    }

    /// Imports `script` into the existing database `db`.
    pub fn import(&self, db: &str, script: &Path) {
        self.sql_in(db, &std::fs::read_to_string(script).unwrap());
    }

    /// A JDBC URL of database `db` on this server, in the MySQL scheme the WSO2 instructions use.
    pub fn url(&self, db: &str) -> String {
        format!(
            "jdbc:mysql://127.0.0.1:{}/{db}?autoReconnect=true",
            self.port
        )
    }
}
