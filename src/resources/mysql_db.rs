//! `mysql_db`: a MySQL/MariaDB database present, with its default character set and collation when they
//! are given. Only creation and `ALTER DATABASE` are supported: this tool never drops a database, because
//! a typo in an inventory must not be able to destroy data.

use super::mysql::{
    check_name, heredoc, ident, lit, split_login, statements_step, unreachable, unreachable_detail,
    unreachable_step, Login,
};
use super::{bad, parse_args, Action, BuildCtx, Change, Resource, ResourceError};
use crate::transport::Facts;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

const KIND: &str = "mysql_db";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    name: String,
    #[serde(alias = "charset")]
    encoding: Option<String>,
    collation: Option<String>,
    state: Option<String>,
}

struct MysqlDb {
    name: String,
    encoding: Option<String>,
    collation: Option<String>,
    login: Login,
}

/// The `mysql_db` entry of `TYPES`: checks names before any host is touched.
pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let (login, args) = split_login(KIND, args)?;
    let a: Args = parse_args(KIND, args)?;
    match a.state.as_deref() {
        None | Some("present") => {}
        Some("absent") => {
            return Err(bad(
                KIND,
                "state: absent is not supported: this tool never drops databases",
            ))
        }
        Some(other) => return Err(bad(KIND, format!("state `{other}` must be present"))),
    }
    check_name(KIND, "name", &a.name)?;
    for (field, v) in [("encoding", &a.encoding), ("collation", &a.collation)] {
        if let Some(v) = v {
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(bad(
                    KIND,
                    format!("{field} `{v}` must be a name of letters, digits and `_`"),
                ));
            }
        }
    }
    Ok(Box::new(MysqlDb {
        name: a.name,
        encoding: a.encoding.map(|e| canonical(&e)),
        collation: a.collation.map(|c| canonical(&c)),
        login,
    }))
}

/// A character set or collation name as information_schema spells it: lower case, and `utf8` under its
/// real name `utf8mb3`, so `encoding: UTF8` does not differ from the server's answer on every run.
fn canonical(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    match n.strip_prefix("utf8") {
        Some("") => "utf8mb3".into(),
        Some(rest) if rest.starts_with('_') => format!("utf8mb3{rest}"),
        _ => n,
    }
}

impl MysqlDb {
    /// The `CHARACTER SET`/`COLLATE` clause for the given fields (empty when neither is given).
    fn spec(&self) -> String {
        let mut s = String::new();
        if let Some(e) = &self.encoding {
            s.push_str(&format!(" CHARACTER SET {e}"));
        }
        if let Some(c) = &self.collation {
            s.push_str(&format!(" COLLATE {c}"));
        }
        s
    }

    /// The change and the statement making it, from the same facts so they cannot disagree.
    fn decide(&self, facts: &Facts) -> (Change, Option<String>) {
        let db = ident(&self.name);
        let create = format!("CREATE DATABASE IF NOT EXISTS {db}{}", self.spec());
        let mut details = Vec::new();
        let (action, sql) = if let Some(reason) = unreachable(facts) {
            details.push(format!("create database {}", self.name));
            details.push(unreachable_detail(&reason));
            (Action::Create, Some(create))
        } else if !facts.is("exists", "yes") {
            details.push(format!("create database {}", self.name));
            if let Some(e) = &self.encoding {
                details.push(format!("encoding {e}"));
            }
            if let Some(c) = &self.collation {
                details.push(format!("collation {c}"));
            }
            (Action::Create, Some(create))
        } else {
            for (key, want) in [("encoding", &self.encoding), ("collation", &self.collation)] {
                let have = facts.get(key).unwrap_or_default();
                if let Some(w) = want.as_deref().filter(|w| *w != have) {
                    details.push(format!("{key} {have} -> {w}"));
                }
            }
            if details.is_empty() {
                (Action::None, None)
            } else {
                (
                    Action::Update,
                    Some(format!("ALTER DATABASE {db}{}", self.spec())),
                )
            }
        };
        let mut change = Change::new(action, details);
        change.result.insert("db".into(), self.name.clone().into());
        for key in ["encoding", "collation"] {
            if let Some(v) = facts.get(key) {
                change.result.insert(key.into(), v.into());
            }
        }
        (change, sql)
    }
}

#[async_trait]
impl Resource for MysqlDb {
    fn describe(&self) -> String {
        format!("mysql_db {}", self.name)
    }

    fn probe(&self) -> String {
        let sql = format!(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME = {}",
            lit(&self.name)
        );
        format!(
            r#"{session}my_probe{q}if [ -n "$my_out" ]; then
  fact exists yes
  fact encoding "$(printf '%s\n' "$my_out" | cut -f1)"
  fact collation "$(printf '%s\n' "$my_out" | cut -f2)"
else
  fact exists no
fi"#,
            session = self.login.session(),
            q = heredoc(&sql),
        )
    }

    /// The statement as the change's step; with the server unreachable, a step failing with why.
    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        let (mut change, sql) = self.decide(facts);
        let what = self.describe();
        let step = match unreachable(facts) {
            Some(reason) => Some(unreachable_step(&what, &reason)),
            None => statements_step(&self.login, &what, sql.as_slice()),
        };
        change.steps.extend(step);
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::super::mysql::testdb::{
        only_in_option_file, root_sql, server, Recorder, ADMIN, ADMIN_PASSWORD,
    };
    use super::super::testkit::{bad_args, converge, plan_now, res};
    use super::super::{Action, ResourceError};
    use super::KIND;
    use crate::transport::{sh_quote, LocalTransport, Output, Transport, TransportError};
    use async_trait::async_trait;
    use serde_json::{json, Value};
    use std::path::Path;

    /// `args` with the test server's socket.
    fn on_server(mut args: Value) -> Value {
        args["login_unix_socket"] = server().socket.clone().into();
        args
    }

    /// Apply sends the planned statement and nothing else: no second probe of the server.
    #[tokio::test]
    async fn apply_is_the_planned_statement_in_one_round_trip() {
        let rec = Recorder::default();
        let db = res(KIND, on_server(json!({"name": "apim_db_once"})));
        let change = plan_now(db.as_ref(), &rec).await.unwrap();
        assert_eq!(change.action, Action::Create);
        rec.scripts.lock().unwrap().clear();
        db.apply(&change, &rec).await.unwrap();
        let sent = rec.scripts.lock().unwrap().clone();
        assert_eq!(sent.len(), 1, "{sent:#?}");
        assert!(
            sent[0].contains("CREATE DATABASE IF NOT EXISTS `apim_db_once`"),
            "{}",
            sent[0]
        );
        assert_eq!(
            root_sql(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='apim_db_once'"
            ),
            "1"
        );
    }

    #[tokio::test]
    async fn creates_then_alters_only_what_differs() {
        let t = LocalTransport::new("t");
        let db = res(
            KIND,
            on_server(json!({"name": "apim_db_a", "encoding": "latin1"})),
        );
        let (first, second) = converge(db.as_ref(), &t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(
            first.details,
            ["create database apim_db_a", "encoding latin1"]
        );
        assert_eq!(second.action, Action::None);
        assert_eq!(
            root_sql("SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='apim_db_a'"),
            "latin1"
        );
        let utf = res(
            KIND,
            on_server(
                json!({"name": "apim_db_a", "encoding": "UTF8MB4", "collation": "utf8mb4_bin"}),
            ),
        );
        let (first, second) = converge(utf.as_ref(), &t).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(
            first.details,
            [
                "encoding latin1 -> utf8mb4",
                "collation latin1_swedish_ci -> utf8mb4_bin"
            ]
        );
        assert_eq!(second.action, Action::None);
        let coll = res(
            KIND,
            on_server(json!({"name": "apim_db_a", "collation": "utf8mb4_general_ci"})),
        );
        let (first, second) = converge(coll.as_ref(), &t).await;
        assert_eq!(
            first.details,
            ["collation utf8mb4_bin -> utf8mb4_general_ci"]
        );
        assert_eq!(second.action, Action::None);
        let any = res(KIND, on_server(json!({"name": "apim_db_a"})));
        assert_eq!(
            plan_now(any.as_ref(), &t).await.unwrap().action,
            Action::None
        );
        let utf8 = res(
            KIND,
            on_server(json!({"name": "apim_db_b", "encoding": "utf8"})),
        );
        let (first, second) = converge(utf8.as_ref(), &t).await;
        assert_eq!(
            first.details,
            ["create database apim_db_b", "encoding utf8mb3"]
        );
        assert_eq!(second.action, Action::None);
    }

    #[tokio::test]
    async fn login_failures_are_clear_and_never_show_the_password() {
        let rec = Recorder::default();
        let none = res(
            KIND,
            on_server(json!({"name": "apim_db_c", "login_user": ADMIN})),
        );
        let err = plan_now(none.as_ref(), &rec).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "access denied for {ADMIN}@localhost (set login_password)"
            )),
            "{err}"
        );
        let wrong = res(
            KIND,
            on_server(json!({"name": "apim_db_c", "login_user": ADMIN, "login_password": "nope"})),
        );
        let err = plan_now(wrong.as_ref(), &rec)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "access denied for {ADMIN}@localhost (check login_password)"
            )),
            "{err}"
        );
        assert!(!err.contains("nope"), "{err}");
        let right = res(
            KIND,
            on_server(
                json!({"name": "apim_db_c", "login_user": ADMIN, "login_password": ADMIN_PASSWORD}),
            ),
        );
        let (first, second) = converge(right.as_ref(), &rec).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(second.action, Action::None);
        only_in_option_file(&right.probe(), ADMIN_PASSWORD);
        for script in rec.scripts.lock().unwrap().iter() {
            only_in_option_file(script, ADMIN_PASSWORD);
            assert!(
                !script.contains("--password") && !script.contains(" -p"),
                "{script}"
            );
        }
        for detail in first.details {
            assert!(!detail.contains(ADMIN_PASSWORD));
        }
    }

    /// Runs scripts with a `PATH` holding only the basic tools, as on a host without the mysql client.
    struct NoClient {
        dir: tempfile::TempDir,
    }

    #[async_trait]
    impl Transport for NoClient {
        fn host(&self) -> &str {
            "bare"
        }

        async fn run(&self, script: &str) -> Result<Output, TransportError> {
            let dir = sh_quote(&self.dir.path().display().to_string());
            LocalTransport::new("bare")
                .run(&format!("PATH={dir}; export PATH\n{script}"))
                .await
        }

        async fn upload(&self, local: &Path, remote: &str) -> Result<(), TransportError> {
            LocalTransport::new("bare").upload(local, remote).await
        }

        fn stats(&self) -> crate::transport::TransportStats {
            crate::transport::TransportStats::default()
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_warning_in_plan_and_an_error_in_apply() {
        let dir = tempfile::tempdir().unwrap();
        for tool in ["mktemp", "cat", "rm", "head", "cut", "sed"] {
            std::os::unix::fs::symlink(format!("/usr/bin/{tool}"), dir.path().join(tool))
                .or_else(|_| {
                    std::os::unix::fs::symlink(format!("/bin/{tool}"), dir.path().join(tool))
                })
                .unwrap();
        }
        let bare = NoClient { dir };
        let db = res(KIND, on_server(json!({"name": "apim_db_d"})));
        let c = plan_now(db.as_ref(), &bare).await.unwrap();
        assert_eq!(c.action, Action::Create);
        assert_eq!(
            c.details[1],
            "mysql client not found on host (yet): apply fails unless an earlier task installs or starts it"
        );
        let err = db.apply(&c, &bare).await.unwrap_err();
        assert!(matches!(err, ResourceError::Failed(_)));
        assert_eq!(
            err.to_string(),
            "mysql_db apim_db_d failed (exit 1): mysql client not found on host"
        );
        let nowhere = res(
            KIND,
            json!({"name": "apim_db_d", "login_unix_socket": "/nonexistent/mysqld.sock"}),
        );
        let t = LocalTransport::new("t");
        let c = plan_now(nowhere.as_ref(), &t).await.unwrap();
        assert!(
            c.details[1].starts_with("cannot reach the MySQL server: "),
            "{:?}",
            c.details
        );
        let err = nowhere.apply(&c, &t).await.unwrap_err().to_string();
        assert!(err.contains("/nonexistent/mysqld.sock"), "{err}");
    }

    #[test]
    fn bad_arguments_name_the_field() {
        let r = bad_args(KIND, json!({"name": "x", "state": "absent"}), "state");
        assert!(r.contains("never drops databases"), "{r}");
        bad_args(KIND, json!({"name": "x", "state": "gone"}), "state");
        bad_args(KIND, json!({}), "name");
        bad_args(KIND, json!({"name": "a`b"}), "name");
        bad_args(
            KIND,
            json!({"name": "x", "encoding": "latin1; DROP"}),
            "encoding",
        );
        bad_args(KIND, json!({"name": "x", "collation": ""}), "collation");
        bad_args(KIND, json!({"name": "x", "login_port": "x"}), "login_port");
        bad_args(
            KIND,
            json!({"name": "x", "login_unix_socket": "sock"}),
            "login_unix_socket",
        );
        bad_args(
            KIND,
            json!({"name": "x", "login_pasword": "p"}),
            "login_pasword",
        );
        bad_args(KIND, json!({"name": "x", "owner": "p"}), "owner");
    }
}
