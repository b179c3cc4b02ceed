//! `mysql_import`: runs a SQL script into a database once. Whether it ran is judged by `marker_table`, a
//! table the script creates: while it is missing the import is pending, once it exists nothing happens,
//! even if the script changed since. That is what makes re-runs no-ops for schema scripts that are not
//! idempotent themselves (plain `CREATE TABLE`s, as products ship them).
//!
//! The script is a controller file (`src`, uploaded for the import and removed after) or a file already
//! on the host (`path`, e.g. a product's `dbscripts/mysql.sql`).

use super::mysql::{
    check_name, heredoc, lit, split_login, unreachable, unreachable_detail, unreachable_step, Login,
};
use super::{bad, parse_args, Action, BuildCtx, Change, Resource, ResourceError, Step};
use crate::transport::{sh_quote, Facts};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;

const KIND: &str = "mysql_import";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    db: String,
    src: Option<String>,
    path: Option<String>,
    marker_table: String,
}

/// Where the SQL script comes from.
enum Source {
    /// A controller file, uploaded to a temp file on the host for the import.
    Controller(PathBuf),
    /// A file on the host.
    Host(String),
}

struct MysqlImport {
    db: String,
    source: Source,
    marker: String,
    login: Login,
}

/// The `mysql_import` entry of `TYPES`: finds a controller `src` and checks names before any host is
/// touched.
pub(super) fn build(args: Value, ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let (login, args) = split_login(KIND, args)?;
    let a: Args = parse_args(KIND, args)?;
    check_name(KIND, "db", &a.db)?;
    check_name(KIND, "marker_table", &a.marker_table)?;
    let source = match (a.src, a.path) {
        (Some(src), None) => Source::Controller(
            ctx.find("files", &src)
                .map_err(|e| bad(KIND, format!("src: {e}")))?,
        ),
        (None, Some(p)) if p.starts_with('/') => Source::Host(p),
        (None, Some(p)) => return Err(bad(KIND, format!("path `{p}` must be an absolute path"))),
        _ => return Err(bad(KIND, "exactly one of `src` or `path` is required")),
    };
    Ok(Box::new(MysqlImport {
        db: a.db,
        source,
        marker: a.marker_table,
        login,
    }))
}

impl MysqlImport {
    /// The script's name for plan lines and messages.
    fn file(&self) -> String {
        match &self.source {
            Source::Controller(p) => p.display().to_string(),
            Source::Host(p) => p.clone(),
        }
    }

    /// The query counting the marker table (0 or 1).
    fn marker_sql(&self) -> String {
        format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
            lit(&self.db),
            lit(&self.marker)
        )
    }

    /// The import and its check that the marker table now exists, from a file on the host (`file` is a
    /// shell word: a quoted path, or `"$upload"`).
    fn import_script(&self, file: &str) -> String {
        format!(
            r#"{session}f={f}
if [ ! -r "$f" ]; then echo "$f does not exist on the host" >&2; exit 4; fi
my_q --database={db} < "$f" || exit $?
n=$(my_q{q}) || exit $?
if [ "$n" != 1 ]; then echo {missing} >&2; exit 4; fi
"#,
            session = self.login.session(),
            f = file,
            db = sh_quote(&self.db),
            q = heredoc(&self.marker_sql()),
            missing = sh_quote(&format!(
                "import of {} did not create table {}",
                self.file(),
                self.marker
            )),
        )
    }

    /// The change, from the probe's facts.
    fn decide(&self, facts: &Facts) -> Change {
        let run = format!(
            "import {} into {} (table {} missing)",
            self.file(),
            self.db,
            self.marker
        );
        let (action, mut details) = if let Some(reason) = unreachable(facts) {
            (Action::Run, vec![run, unreachable_detail(&reason)])
        } else if facts.is("marker_exists", "yes") {
            (Action::None, vec![])
        } else {
            (Action::Run, vec![run])
        };
        if action == Action::Run && facts.is("src_exists", "no") {
            details.push(format!(
                "{} not on the host (yet): apply fails unless an earlier task puts it there",
                self.file()
            ));
        }
        let mut change = Change::new(action, details);
        change.result.insert("db".into(), self.db.clone().into());
        change
            .result
            .insert("marker_table".into(), self.marker.clone().into());
        change
    }
}

#[async_trait]
impl Resource for MysqlImport {
    fn describe(&self) -> String {
        format!("mysql_import {} into {}", self.file(), self.db)
    }

    fn probe(&self) -> String {
        let src = match &self.source {
            Source::Host(p) => format!(
                "if [ -r {p} ]; then fact src_exists yes; else fact src_exists no; fi\n",
                p = sh_quote(p)
            ),
            Source::Controller(_) => String::new(),
        };
        format!(
            r#"{src}{session}my_probe{q}if [ "$my_out" = 1 ]; then fact marker_exists yes; else fact marker_exists no; fi"#,
            session = self.login.session(),
            q = heredoc(&self.marker_sql()),
        )
    }

    /// The import as the change's step (a controller script uploaded to a temp file removed whatever
    /// the import's outcome); with the server unreachable, a step failing with why.
    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        let change = self.decide(facts);
        if !change.is_pending() {
            return Ok(change);
        }
        let what = self.describe();
        let step = match (unreachable(facts), &self.source) {
            (Some(reason), _) => unreachable_step(&what, &reason),
            (None, Source::Host(p)) => {
                Step::run(what, Vec::new(), self.import_script(&sh_quote(p)))
            }
            (None, Source::Controller(local)) => Step::Upload {
                what,
                local: local.clone(),
                dir: "/tmp".into(),
                guards: Vec::new(),
                script: self.import_script("\"$upload\""),
            },
        };
        Ok(change.then(step))
    }
}

#[cfg(test)]
mod tests {
    use super::super::mysql::testdb::{root_sql, server, Recorder, ADMIN, ADMIN_PASSWORD};
    use super::super::testkit::{bad_args, converge, plan_now, res};
    use super::super::Action;
    use super::KIND;
    use crate::transport::LocalTransport;
    use serde_json::{json, Value};

    /// `args` with the test server's socket.
    fn on_server(mut args: Value) -> Value {
        args["login_unix_socket"] = server().socket.clone().into();
        args
    }

    fn uploads() -> usize {
        std::fs::read_dir("/tmp")
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".apim-provision.upload.")
            })
            .count()
    }

    #[tokio::test]
    async fn a_controller_script_runs_once_and_is_not_left_on_the_host() {
        root_sql("CREATE DATABASE apim_imp_a");
        let dir = tempfile::tempdir().unwrap();
        let sql = dir.path().join("schema.sql");
        std::fs::write(
            &sql,
            "CREATE TABLE t_marker (id INT);\nCREATE TABLE t_data (v VARCHAR(10));\nINSERT INTO t_data VALUES ('one');\n",
        )
        .unwrap();
        let src = sql.display().to_string();
        let before = uploads();
        let t = LocalTransport::new("t");
        let imp = res(
            KIND,
            on_server(json!({"db": "apim_imp_a", "src": src, "marker_table": "t_marker"})),
        );
        let (first, second) = converge(imp.as_ref(), &t).await;
        assert_eq!(first.action, Action::Run);
        assert_eq!(
            first.details,
            [format!(
                "import {src} into apim_imp_a (table t_marker missing)"
            )]
        );
        assert_eq!(second.action, Action::None);
        assert_eq!(root_sql("SELECT v FROM apim_imp_a.t_data"), "one");
        assert_eq!(uploads(), before, "the uploaded script was left in /tmp");
        std::fs::write(&sql, "INSERT INTO t_data VALUES ('two');\n").unwrap();
        let changed = res(
            KIND,
            on_server(json!({"db": "apim_imp_a", "src": src, "marker_table": "t_marker"})),
        );
        assert_eq!(
            plan_now(changed.as_ref(), &t).await.unwrap().action,
            Action::None
        );
        assert_eq!(root_sql("SELECT COUNT(*) FROM apim_imp_a.t_data"), "1");
    }

    #[tokio::test]
    async fn a_host_file_may_appear_later_in_the_run() {
        root_sql("CREATE DATABASE apim_imp_b");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dbscripts").join("mysql.sql");
        let p = path.display().to_string();
        let t = LocalTransport::new("t");
        let imp = res(
            KIND,
            on_server(json!({"db": "apim_imp_b", "path": p, "marker_table": "REG_LOG"})),
        );
        let c = plan_now(imp.as_ref(), &t).await.unwrap();
        assert_eq!(c.action, Action::Run);
        assert_eq!(
            c.details[1],
            format!("{p} not on the host (yet): apply fails unless an earlier task puts it there")
        );
        let err = imp.apply(&c, &t).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("{p} does not exist on the host")),
            "{err}"
        );
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "CREATE TABLE REG_LOG (REG_PATH VARCHAR(750));\n").unwrap();
        let (first, second) = converge(imp.as_ref(), &t).await;
        assert_eq!(
            first.details,
            [format!(
                "import {p} into apim_imp_b (table REG_LOG missing)"
            )]
        );
        assert_eq!(second.action, Action::None);
    }

    #[tokio::test]
    async fn failures_say_what_went_wrong_without_the_password() {
        root_sql("CREATE DATABASE apim_imp_c");
        let dir = tempfile::tempdir().unwrap();
        let quiet = dir.path().join("quiet.sql");
        std::fs::write(&quiet, "CREATE TABLE other (id INT);\n").unwrap();
        let broken = dir.path().join("broken.sql");
        std::fs::write(
            &broken,
            "CREATE TABLE marker (id INT);\nCREATE TABLE oops (;\n",
        )
        .unwrap();
        let rec = Recorder::default();
        let login = |file: &std::path::Path| {
            res(
                KIND,
                on_server(
                    json!({"db": "apim_imp_c", "path": file.display().to_string(),
                                 "marker_table": "marker", "login_user": ADMIN,
                                 "login_password": ADMIN_PASSWORD}),
                ),
            )
        };
        let imp = login(&quiet);
        let c = plan_now(imp.as_ref(), &rec).await.unwrap();
        let err = imp.apply(&c, &rec).await.unwrap_err().to_string();
        assert!(
            err.ends_with(&format!(
                "import of {} did not create table marker",
                quiet.display()
            )),
            "{err}"
        );
        let imp = login(&broken);
        let c = plan_now(imp.as_ref(), &rec).await.unwrap();
        let err = imp.apply(&c, &rec).await.unwrap_err().to_string();
        assert!(err.contains("ERROR 1064"), "{err}");
        assert!(!err.contains(ADMIN_PASSWORD), "{err}");
        for script in rec.scripts.lock().unwrap().iter() {
            super::super::mysql::testdb::only_in_option_file(script, ADMIN_PASSWORD);
        }
    }

    #[test]
    fn bad_arguments_name_the_field() {
        bad_args(KIND, json!({"db": "d", "path": "/x.sql"}), "marker_table");
        bad_args(
            KIND,
            json!({"db": "d", "path": "x.sql", "marker_table": "t"}),
            "path",
        );
        bad_args(KIND, json!({"db": "d", "marker_table": "t"}), "src");
        bad_args(
            KIND,
            json!({"db": "d", "src": "/x", "path": "/y", "marker_table": "t"}),
            "path",
        );
        bad_args(
            KIND,
            json!({"db": "d", "src": "/nonexistent/x.sql", "marker_table": "t"}),
            "src",
        );
        bad_args(
            KIND,
            json!({"db": "d'", "path": "/x", "marker_table": "t"}),
            "db",
        );
        bad_args(
            KIND,
            json!({"db": "d", "path": "/x", "marker_table": "t\n"}),
            "marker_table",
        );
        bad_args(
            KIND,
            json!({"db": "d", "path": "/x", "marker_table": "t", "login_port": 70000}),
            "login_port",
        );
    }
}
