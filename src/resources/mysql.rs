//! What `mysql_db`, `mysql_user` and `mysql_import` share: the `login_*` connection arguments and the shell
//! that runs the `mysql`/`mariadb` client with them.
//!
//! Credentials never go on a command line: every script writes them to an option file (mode 0600, in a
//! `mktemp -d` directory removed by an EXIT trap) and runs the client with `--defaults-file`, which also
//! keeps a host's `~/.my.cnf` from silently overriding them. SQL goes to the client on standard input.
//! The login password is therefore inside the script text (which travels on `sh -s`'s stdin), and
//! nowhere else.
//!
//! A server that cannot be reached (no client, nothing on the socket) is not a probe error: an earlier
//! task of the same run may install or start it, so plan shows the change with a warning, and apply,
//! which probes again, fails with the reason if the server is still not there. Wrong credentials are an
//! error at once.

use super::{bad, parse_args, ResourceError, Step};
use crate::transport::{sh_quote, Facts};

use serde::Deserialize;
use serde_json::{Map, Value};

/// The connection arguments as written in a task; kept apart from each type's own arguments so all three
/// types parse them, default them and report their mistakes the same way.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LoginArgs {
    login_host: Option<String>,
    login_port: Option<u16>,
    login_user: Option<String>,
    login_password: Option<String>,
    login_unix_socket: Option<String>,
}

/// How to reach the server. Deliberately not `Debug`: it holds the login password.
pub(super) struct Login {
    host: Option<String>,
    port: u16,
    user: String,
    password: Option<String>,
    socket: Option<String>,
}

/// Takes the `login_*` keys out of `args` and parses them, leaving the type's own arguments behind for
/// its `deny_unknown_fields` struct (serde's `flatten` would lose the field names in error messages).
pub(super) fn split_login(kind: &str, mut args: Value) -> Result<(Login, Value), ResourceError> {
    let mut login = Map::new();
    if let Value::Object(map) = &mut args {
        let keys: Vec<String> = map
            .keys()
            .filter(|k| k.starts_with("login_"))
            .cloned()
            .collect();
        for k in keys {
            if let Some(v) = map.remove(&k) {
                login.insert(k, v);
            }
        }
    }
    let a: LoginArgs = parse_args(kind, Value::Object(login))?;
    for (field, v) in [
        ("login_host", &a.login_host),
        ("login_user", &a.login_user),
        ("login_password", &a.login_password),
        ("login_unix_socket", &a.login_unix_socket),
    ] {
        if v.as_deref().is_some_and(|s| s.contains('\0')) {
            return Err(bad(kind, format!("{field} must not contain a NUL byte")));
        }
    }
    if let Some(s) = &a.login_unix_socket {
        if !s.starts_with('/') {
            return Err(bad(
                kind,
                format!("login_unix_socket `{s}` must be an absolute path"),
            ));
        }
    }
    if a.login_host.as_deref() == Some("") || a.login_user.as_deref() == Some("") {
        return Err(bad(kind, "login_host and login_user must not be empty"));
    }
    let login = Login {
        host: a.login_host,
        port: a.login_port.unwrap_or(3306),
        user: a.login_user.unwrap_or_else(|| "root".into()),
        password: a.login_password,
        socket: a.login_unix_socket,
    };
    Ok((login, args))
}

/// Checks a database, user, host or table name that is spliced into SQL and shell text. Refusing quotes,
/// backslashes and control characters up front is what lets every statement quote names trivially, so no
/// name can change what a statement does.
pub(super) fn check_name(kind: &str, field: &str, value: &str) -> Result<(), ResourceError> {
    if value.is_empty() {
        return Err(bad(kind, format!("{field} must not be empty")));
    }
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, '\'' | '"' | '`' | '\\') || c.is_control())
    {
        return Err(bad(
            kind,
            format!("{field} `{value}` must not contain {c:?} (quotes, backslashes, control characters)"),
        ));
    }
    Ok(())
}

/// A name checked with [`check_name`] as a SQL string literal.
pub(super) fn lit(s: &str) -> String {
    format!("'{s}'")
}

/// A name checked with [`check_name`] as a SQL identifier.
pub(super) fn ident(s: &str) -> String {
    format!("`{s}`")
}

/// A value for the client's option file: double-quoted, with the escapes the option-file reader undoes,
/// so spaces, `#` and quotes in a password survive.
fn cnf_value(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The terminator of the option-file here-document; option values never hold a newline, so it cannot
/// occur inside.
const CNF_END: &str = "__APIM_MYSQL_CNF__";

/// The terminator of SQL here-documents; checked names hold no newline, so it cannot occur inside.
const SQL_END: &str = "__APIM_SQL__";

impl Login {
    /// `user@host` as the server sees the login, for the access-denied message.
    fn who(&self) -> String {
        format!(
            "{}@{}",
            self.user,
            self.host.as_deref().unwrap_or("localhost")
        )
    }

    /// The option file's text (with the password, when there is one).
    fn cnf(&self) -> String {
        let mut s = format!("[client]\nuser={}\n", cnf_value(&self.user));
        if let Some(p) = &self.password {
            s.push_str(&format!("password={}\n", cnf_value(p)));
        }
        if let Some(h) = &self.host {
            s.push_str(&format!("host={}\nport={}\n", cnf_value(h), self.port));
        }
        if let Some(sock) = &self.socket {
            s.push_str(&format!("socket={}\n", cnf_value(sock)));
        }
        s
    }

    /// Shell that finds the client, writes the option file and defines `my_q ARGS...` (runs the client
    /// with SQL on stdin; on failure prints a clear message on stderr and returns 5 when the server cannot
    /// be reached, 4 otherwise) and, for probes, `my_probe ARGS...` (sets `my_out` to the result; an
    /// unreachable server becomes the facts `server=down` and `server_error`, ending the probe without
    /// error; any other failure ends it with exit 4).
    pub(super) fn session(&self) -> String {
        let hint = if self.password.is_some() {
            "check login_password"
        } else {
            "set login_password"
        };
        format!(
            r#"if command -v mariadb >/dev/null 2>&1; then my_client=mariadb
elif command -v mysql >/dev/null 2>&1; then my_client=mysql
else my_client=; fi
my_dir=$(mktemp -d) || exit 4
trap 'rm -rf "$my_dir"' EXIT
trap 'exit 130' INT TERM HUP
(umask 077 && cat > "$my_dir/cnf") <<'{CNF_END}'
{cnf}{CNF_END}
my_q() {{
  if [ -z "$my_client" ]; then echo 'mysql client not found on host' >&2; return 5; fi
  "$my_client" --defaults-file="$my_dir/cnf" --batch --skip-column-names "$@" 2>"$my_dir/err" && return 0
  my_e=$(cat "$my_dir/err")
  case "$my_e" in
    *"ERROR 1045 "*|*"ERROR 1698 "*) printf '%s\n' {denied} "$my_e" >&2; return 4 ;;
    *"ERROR 2002 "*|*"ERROR 2003 "*|*"ERROR 2005 "*|*"ERROR 2006 "*|*"ERROR 2013 "*)
      printf 'cannot reach the MySQL server: %s\n' "$my_e" >&2; return 5 ;;
    *) printf '%s\n' "$my_e" >&2; return 4 ;;
  esac
}}
my_probe() {{
  my_out=$(my_q "$@" 2>"$my_dir/msg") && return 0
  case $? in
    5) fact server down; fact server_error "$(head -n 1 "$my_dir/msg")"; exit 0 ;;
    *) cat "$my_dir/msg" >&2; exit 4 ;;
  esac
}}
"#,
            cnf = self.cnf(),
            denied =
                crate::transport::sh_quote(&format!("access denied for {} ({hint}):", self.who())),
        )
    }
}

/// `sql` as a here-document on the standard input of the command before it (`my_q`, `my_probe`).
pub(super) fn heredoc(sql: &str) -> String {
    format!(" <<'{SQL_END}'\n{sql}\n{SQL_END}\n")
}

/// Why the server could not be reached at probe time, if it could not.
pub(super) fn unreachable(facts: &Facts) -> Option<String> {
    facts.is("server", "down").then(|| {
        facts
            .get("server_error")
            .unwrap_or("cannot reach the MySQL server")
            .to_string()
    })
}

/// The plan line warning that the server was not there at probe time.
pub(super) fn unreachable_detail(reason: &str) -> String {
    format!("{reason} (yet): apply fails unless an earlier task installs or starts it")
}

/// The step of a change decided while the server could not be reached (`reason`): it fails naming
/// `what`, since apply probes again after an earlier task on the host (which may install or start the
/// server) changed something, so a server still unreachable when apply decides is an error.
pub(super) fn unreachable_step(what: &str, reason: &str) -> Step {
    Step::run(
        what,
        Vec::new(),
        format!("echo {} >&2; exit 1", sh_quote(reason)),
    )
}

/// The step running `statements` in one client session of `login` (`None` when there are none).
pub(super) fn statements_step(login: &Login, what: &str, statements: &[String]) -> Option<Step> {
    if statements.is_empty() {
        return None;
    }
    let body: String = statements.iter().map(|s| format!("{s};\n")).collect();
    Some(Step::run(
        what,
        Vec::new(),
        format!("{}my_q{}", login.session(), heredoc(body.trim_end())),
    ))
}

/// A real MariaDB server for the tests of the three MySQL types: one per test binary, in a temp datadir,
/// on a unix socket only (no TCP), with the packages installed by apt when missing.
#[cfg(test)]
pub(crate) mod testdb {
    use crate::transport::{sh_quote, LocalTransport, Output, Transport, TransportError};
    use async_trait::async_trait;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::sync::{Mutex, OnceLock};

    /// The password of [`ADMIN`], with the characters an option file must escape.
    pub(crate) const ADMIN_PASSWORD: &str = r##"adm in"#x'\pw"##;

    /// An account with every privilege and a password, for the login tests (root uses unix_socket auth).
    pub(crate) const ADMIN: &str = "apim_admin";

    /// The running server. It is stopped by a watchdog shell started with it: the shell holds the read
    /// end of a pipe whose write end is this process's, and when this process exits (a static is never
    /// dropped) the pipe closes, so the shell kills the server by the PID it started and removes the
    /// datadir.
    pub(crate) struct Server {
        /// The server's unix socket, for `login_unix_socket`.
        pub(crate) socket: String,
        _watchdog: Mutex<Child>,
    }

    static SERVER: OnceLock<Server> = OnceLock::new();

    /// The shared server, started on first use.
    pub(crate) fn server() -> &'static Server {
        SERVER.get_or_init(start)
    }

    fn sh(script: &str) -> std::process::Output {
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("sh runs")
    }

    fn start() -> Server {
        if !Path::new("/usr/sbin/mariadbd").exists() || !Path::new("/usr/bin/mariadb").exists() {
            let out = sh(
                "DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y --no-install-recommends \
                 mariadb-server mariadb-client 2>&1",
            );
            assert!(
                out.status.success(),
                "installing mariadb-server with apt-get failed: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("apim-mysql")
            .tempdir()
            .expect("temp dir")
            .keep();
        let d = sh_quote(&dir.display().to_string());
        let out = sh(&format!(
            "mariadb-install-db --no-defaults --datadir={d}/data --user=root \
             --auth-root-authentication-method=socket --skip-test-db 2>&1"
        ));
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "mariadbd --no-defaults --datadir={d}/data --socket={d}/sock --skip-networking \
                 --pid-file={d}/pid --user=root --log-error={d}/err.log --innodb-buffer-pool-size=16M \
                 </dev/null >/dev/null 2>&1 & pid=$!\nread _ || true\nkill \"$pid\"\nwait \"$pid\"\nrm -rf {d}\n"
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the mariadbd watchdog");
        let socket = dir.join("sock").display().to_string();
        let setup = format!(
            "CREATE USER '{ADMIN}'@'localhost' IDENTIFIED BY '{}'; \
             GRANT ALL PRIVILEGES ON *.* TO '{ADMIN}'@'localhost' WITH GRANT OPTION;",
            ADMIN_PASSWORD.replace('\\', "\\\\").replace('\'', "\\'")
        );
        let ping = format!(
            "i=0; until mariadb --no-defaults --socket={s} -uroot -e 'SELECT 1' >/dev/null 2>&1; do \
             i=$((i + 1)); [ $i -gt 300 ] && {{ cat {d}/err.log; exit 1; }}; sleep 0.1; done\n\
             mariadb --no-defaults --socket={s} -uroot <<'__SQL__'\n{setup}\n__SQL__\n",
            s = sh_quote(&socket)
        );
        let out = sh(&ping);
        assert!(
            out.status.success(),
            "mariadbd did not come up: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Server {
            socket,
            _watchdog: Mutex::new(watchdog),
        }
    }

    /// Runs SQL as root over the test socket, for setting up states and checking results.
    pub(crate) fn root_sql(sql: &str) -> String {
        let out = sh(&format!(
            "mariadb --no-defaults --socket={} -uroot --batch --skip-column-names <<'__SQL__'\n{sql}\n__SQL__\n",
            sh_quote(&server().socket)
        ));
        assert!(
            out.status.success(),
            "root SQL `{sql}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A local transport that keeps every script it runs, to check where secrets appear in them.
    #[derive(Default)]
    pub(crate) struct Recorder {
        /// Every script run so far.
        pub(crate) scripts: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Transport for Recorder {
        fn host(&self) -> &str {
            "rec"
        }

        async fn run(&self, script: &str) -> Result<Output, TransportError> {
            self.scripts
                .lock()
                .expect("scripts")
                .push(script.to_string());
            LocalTransport::new("rec").run(script).await
        }

        async fn upload(&self, local: &Path, remote: &str) -> Result<(), TransportError> {
            LocalTransport::new("rec").upload(local, remote).await
        }

        fn stats(&self) -> crate::transport::TransportStats {
            crate::transport::TransportStats::default()
        }
    }

    /// Asserts that `secret` appears in `script` only inside the client's option-file here-document,
    /// i.e. never on a command line, in SQL or in anything the script prints.
    pub(crate) fn only_in_option_file(script: &str, secret: &str) {
        let mut outside = String::new();
        let mut inside = false;
        for line in script.lines() {
            if line.ends_with(&format!("<<'{}'", super::CNF_END)) {
                inside = true;
                outside.push_str(line);
            } else if line == super::CNF_END {
                inside = false;
            } else if !inside {
                outside.push_str(line);
                outside.push('\n');
            }
        }
        assert!(
            !outside.contains(secret),
            "the secret appears outside the option file in:\n{script}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::testdb::{only_in_option_file, server, ADMIN, ADMIN_PASSWORD};
    use super::{split_login, Login};
    use crate::transport::{LocalTransport, Transport};
    use serde_json::json;

    fn login(args: serde_json::Value) -> Login {
        split_login("t", args).unwrap_or_else(|e| panic!("{e}")).0
    }

    #[tokio::test]
    async fn the_option_file_is_private_and_removed_and_the_only_place_of_the_password() {
        let l = login(
            json!({"login_user": ADMIN, "login_password": ADMIN_PASSWORD,
                             "login_unix_socket": server().socket}),
        );
        let script = format!(
            "{}stat -c %a \"$my_dir\" \"$my_dir/cnf\"; echo \"$my_dir\"\nmy_q <<'E'\nSELECT CURRENT_USER()\nE\n",
            l.session()
        );
        only_in_option_file(&script, ADMIN_PASSWORD);
        let out = LocalTransport::new("t").run(&script).await.unwrap();
        assert_eq!(out.status, 0, "{}", out.tail());
        let text = out.stdout_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..2], ["700", "600"]);
        assert!(
            !std::path::Path::new(lines[2]).exists(),
            "option file left behind"
        );
        assert_eq!(lines[3], format!("{ADMIN}@localhost"));
    }

    #[test]
    fn connection_defaults_and_option_file_escapes() {
        let l = login(json!({"other": 1}));
        assert_eq!(l.who(), "root@localhost");
        assert_eq!(l.cnf(), "[client]\nuser=\"root\"\n");
        let l = login(json!({"login_host": "db1", "login_password": "a\"b\\c\nd"}));
        assert_eq!(l.who(), "root@db1");
        assert_eq!(
            l.cnf(),
            "[client]\nuser=\"root\"\npassword=\"a\\\"b\\\\c\\nd\"\nhost=\"db1\"\nport=3306\n"
        );
    }
}
