//! `mysql_db`: a MySQL/MariaDB database present, with its default character set and collation when they
//! are given. Only creation and `ALTER DATABASE` are supported: this tool never drops a database, because
//! a typo in an inventory must not be able to destroy data.

use super::mysql::{
    check_name, heredoc, ident, lit, run_sql, split_login, unreachable, unreachable_detail, Login,
};
use super::{
    bad, parse_args, probe_now, Action, BuildCtx, Change, Outcome, Resource, ResourceError,
};
use crate::transport::{Facts, Transport};
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

    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        Ok(self.decide(facts).0)
    }

    /// Probes again first: the plan may have been made before the server was installed or started.
    async fn apply(
        &self,
        _change: &Change,
        host: &dyn Transport,
    ) -> Result<Outcome, ResourceError> {
        let facts = probe_now(self, host).await?;
        if let Some(reason) = unreachable(&facts) {
            return Err(ResourceError::Failed(format!(
                "{}: {reason}",
                self.describe()
            )));
        }
        let (change, sql) = self.decide(&facts);
        if let Some(sql) = sql {
            let script = format!(
                "{}my_q{}",
                self.login.session(),
                heredoc(&format!("{sql};"))
            );
            run_sql(host, &self.describe(), &script).await?;
        }
        Ok(change.result)
    }
}
