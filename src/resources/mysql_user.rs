//! `mysql_user`: a MySQL/MariaDB account `'name'@'host'` present with a password and privileges, or absent.
//!
//! The password is turned into its `mysql_native_password` hash when the task is built and the plain text
//! is dropped: the probe compares hashes on the server and prints only `password_matches=yes|no`, and
//! apply sets the account with `IDENTIFIED WITH mysql_native_password AS '<hash>'`, so the password itself
//! never leaves the controller. An account using another auth plugin (unix_socket, ed25519,
//! caching_sha2_password) cannot be compared and is switched to `mysql_native_password` by apply.
//!
//! `privs` (Ansible's `priv`) lists `object:PRIV,PRIV` items. Without `append_privs` they are the user's
//! exact grants, as in Ansible: privileges missing on a listed object are granted, extra ones revoked, and
//! objects not listed lose their grants (`USAGE ON *.*`, proxy and role grants are never touched). With
//! `append_privs: true` privileges are only added. Without `privs` the grants are not managed at all.
//! `GRANT` in a list stands for `WITH GRANT OPTION`. Plan lines say what differs per object: `grant
//! ALL on db.*` when the account holds nothing there, with `(lacks DELETE)` when a hand `REVOKE` left
//! part of it, which the server then lists privilege by privilege.

use super::mysql::{
    check_name, heredoc, ident, lit, split_login, statements_step, unreachable, unreachable_detail,
    unreachable_step, Login,
};
use super::Presence as State;
use super::{
    bad, execute, one_or_many, parse_args, Action, BuildCtx, Change, Registered, Resource,
    ResourceError,
};
use crate::transport::{Facts, Transport};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const KIND: &str = "mysql_user";

/// The privilege token standing for `WITH GRANT OPTION`, as Ansible spells it.
const GRANT_OPTION: &str = "GRANT";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    name: String,
    #[serde(default = "any_host")]
    host: String,
    password: Option<String>,
    #[serde(default, alias = "priv", deserialize_with = "opt_privs")]
    privs: Option<Vec<String>>,
    #[serde(default)]
    append_privs: bool,
    #[serde(default)]
    state: State,
}

fn any_host() -> String {
    "%".into()
}

/// `privs` as a list or Ansible's `a.*:ALL/b.*:SELECT` string; `/` separates items in either form.
fn opt_privs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(Some(
        one_or_many(d)?
            .iter()
            .flat_map(|s| s.split('/'))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    ))
}

/// What `ALL` stands for on a database (`db.*`) on MySQL and MariaDB alike (MariaDB adds `DELETE
/// HISTORY`, and from 11.3 `SHOW CREATE ROUTINE`): the privileges a plan line names as lacking when an
/// account holds only part of an `ALL` it should have, since the server shows the rest of a partly
/// revoked `ALL` as a list.
const DB_ALL: [&str; 18] = [
    "ALTER",
    "ALTER ROUTINE",
    "CREATE",
    "CREATE ROUTINE",
    "CREATE TEMPORARY TABLES",
    "CREATE VIEW",
    "DELETE",
    "DROP",
    "EVENT",
    "EXECUTE",
    "INDEX",
    "INSERT",
    "LOCK TABLES",
    "REFERENCES",
    "SELECT",
    "SHOW VIEW",
    "TRIGGER",
    "UPDATE",
];

/// Privileges per object, keyed by the object without backticks (`db.*`, `*.*`, `db.table`).
type Grants = BTreeMap<String, Grant>;

/// The privileges on one object and how to name the object in SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    /// The object as SQL text: quoted from a checked name, or verbatim from `SHOW GRANTS`.
    sql: String,
    /// Privilege names, `ALL` for all of them, [`GRANT_OPTION`] for the grant option.
    privs: BTreeSet<String>,
}

struct MysqlUser {
    name: String,
    host: String,
    /// The `mysql_native_password` hash of the password (never the password).
    hash: Option<String>,
    privs: Option<Grants>,
    append: bool,
    state: State,
    login: Login,
}

/// The `mysql_user` entry of `TYPES`: checks names and privileges and hashes the password before any
/// host is touched.
pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    Ok(Box::new(MysqlUser::from_args(args)?))
}

impl MysqlUser {
    /// The account the task's arguments describe, with the password already reduced to its hash.
    fn from_args(args: Value) -> Result<Self, ResourceError> {
        let (login, args) = split_login(KIND, args)?;
        let a: Args = parse_args(KIND, args)?;
        check_name(KIND, "name", &a.name)?;
        check_name(KIND, "host", &a.host)?;
        match a.state {
            State::Present if a.password.is_none() => {
                return Err(bad(KIND, "password is required with state: present"))
            }
            State::Absent if a.privs.is_some() || a.password.is_some() => {
                return Err(bad(
                    KIND,
                    "password and privs make no sense with state: absent",
                ))
            }
            _ => {}
        }
        if a.password.as_deref() == Some("") {
            return Err(bad(KIND, "password must not be empty"));
        }
        if a.append_privs && a.privs.is_none() {
            return Err(bad(KIND, "`append_privs` only makes sense with `privs`"));
        }
        let privs = a.privs.as_deref().map(parse_privs).transpose()?;
        Ok(MysqlUser {
            hash: a.password.as_deref().map(native_hash),
            name: a.name,
            host: a.host,
            privs,
            append: a.append_privs,
            state: a.state,
            login,
        })
    }
}

/// `mysql_native_password`'s stored form of `password`: `*` and the upper-case hex of SHA1(SHA1(pw)),
/// what MySQL's `PASSWORD()` returns.
fn native_hash(password: &str) -> String {
    use sha1::{Digest, Sha1};
    let twice = Sha1::digest(Sha1::digest(password.as_bytes()));
    let hex: String = twice.iter().map(|b| format!("{b:02X}")).collect();
    format!("*{hex}")
}

/// Parses `db.*:SELECT,INSERT` items into grants, merging items on the same object.
fn parse_privs(items: &[String]) -> Result<Grants, ResourceError> {
    let mut grants = Grants::new();
    for item in items {
        let (obj, list) = item.rsplit_once(':').ok_or_else(|| {
            bad(
                KIND,
                format!("privs item `{item}` must look like `db.*:PRIV,PRIV`"),
            )
        })?;
        let obj = obj.trim().replace('`', "");
        let (db, table) = obj.split_once('.').ok_or_else(|| {
            bad(
                KIND,
                format!("privs object `{obj}` must be `db.table`, `db.*` or `*.*`"),
            )
        })?;
        let mut sql = Vec::new();
        for part in [db, table] {
            if part == "*" {
                sql.push("*".to_string());
            } else {
                check_name(KIND, "privs", part)?;
                sql.push(ident(part));
            }
        }
        if db == "*" && table != "*" {
            return Err(bad(KIND, format!("privs object `{obj}` is not valid")));
        }
        let entry = grants.entry(obj.clone()).or_insert_with(|| Grant {
            sql: sql.join("."),
            privs: BTreeSet::new(),
        });
        for p in list.split(',') {
            let p = p.split_whitespace().collect::<Vec<_>>().join(" ");
            let p = p.to_ascii_uppercase();
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_uppercase() || c == ' ') {
                return Err(bad(
                    KIND,
                    format!("privs item `{item}`: `{p}` is not a privilege name"),
                ));
            }
            entry.privs.insert(normalize_priv(&p));
        }
    }
    Ok(grants)
}

/// One privilege name as compared: `ALL PRIVILEGES` is `ALL`.
fn normalize_priv(p: &str) -> String {
    if p == "ALL PRIVILEGES" {
        "ALL".into()
    } else {
        p.to_string()
    }
}

/// The user's current grants from the probe's `grant.N` facts (`PRIV, PRIV ON object`, as `SHOW GRANTS`
/// prints them up to `TO`). `USAGE` and proxy grants are left out: they are not privileges on objects.
fn current_grants(facts: &Facts) -> Grants {
    let mut grants = Grants::new();
    for (key, line) in facts.iter() {
        if !key.starts_with("grant.") {
            continue;
        }
        let Some((list, obj)) = line.split_once(" ON ") else {
            continue;
        };
        if obj.contains('@') {
            continue;
        }
        let entry = grants.entry(obj.replace('`', "")).or_insert_with(|| Grant {
            sql: obj.to_string(),
            privs: BTreeSet::new(),
        });
        for p in split_privs(list) {
            if p != "USAGE" {
                entry.privs.insert(normalize_priv(&p));
            }
        }
    }
    grants.retain(|_, g| !g.privs.is_empty());
    grants
}

/// Splits `SELECT (a, b), INSERT` at the commas outside parentheses (column privileges).
fn split_privs(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    for c in list.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur.trim().to_string());
    out.retain(|p| !p.is_empty());
    out
}

/// A privilege set for a plan line, `GRANT` spelled as `GRANT OPTION`.
fn show(privs: &BTreeSet<String>) -> String {
    privs
        .iter()
        .map(|p| {
            if p == GRANT_OPTION {
                "GRANT OPTION"
            } else {
                p.as_str()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What a plan line granting `ALL` on `obj` adds about the privileges `held` there now (the grant
/// option aside): nothing when none; on a database, those of [`DB_ALL`] it lacks; otherwise, or when it
/// lacks none of them, what it holds.
fn all_note(obj: &str, held: &BTreeSet<String>) -> String {
    if held.is_empty() {
        return String::new();
    }
    let lacks: BTreeSet<String> = DB_ALL
        .iter()
        .filter(|p| obj.ends_with(".*") && obj != "*.*" && !held.contains(**p))
        .map(|p| p.to_string())
        .collect();
    if lacks.is_empty() {
        format!(" (holds only {})", show(held))
    } else {
        format!(" (lacks {})", show(&lacks))
    }
}

/// Privileges for a `GRANT`/`REVOKE` list (`ALL` as `ALL PRIVILEGES`).
fn sql_privs(privs: &BTreeSet<String>) -> String {
    privs
        .iter()
        .map(|p| {
            if p == "ALL" {
                "ALL PRIVILEGES"
            } else {
                p.as_str()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What to revoke and grant on one object to go from `have` to `want`, privileges only (the grant
/// option is handled apart). `ALL` subsumes every other privilege: granting it needs no revoke, and
/// narrowing it down means revoking `ALL` and granting the wanted ones.
fn diff_privs(
    have: &BTreeSet<String>,
    want: &BTreeSet<String>,
    append: bool,
) -> (BTreeSet<String>, BTreeSet<String>) {
    if have.contains("ALL") {
        if want.contains("ALL") || append {
            (BTreeSet::new(), BTreeSet::new())
        } else {
            (["ALL".to_string()].into(), want.clone())
        }
    } else if want.contains("ALL") {
        (BTreeSet::new(), ["ALL".to_string()].into())
    } else {
        let revoke = if append {
            BTreeSet::new()
        } else {
            have.difference(want).cloned().collect()
        };
        (revoke, want.difference(have).cloned().collect())
    }
}

impl MysqlUser {
    /// The account as SQL.
    fn account(&self) -> String {
        format!("{}@{}", lit(&self.name), lit(&self.host))
    }

    /// The account for plan lines and messages.
    fn shown(&self) -> String {
        format!("'{}'@'{}'", self.name, self.host)
    }

    /// The clause giving the account the password hash (and the plugin the hash belongs to).
    fn identified(&self) -> String {
        format!(
            "IDENTIFIED WITH mysql_native_password AS {}",
            lit(self.hash.as_deref().unwrap_or_default())
        )
    }

    /// Plan lines and statements moving the grants from `have` to the wanted ones; revokes first, so a
    /// narrowed `ALL` is revoked before the remaining privileges are granted.
    fn grant_changes(&self, have: &Grants, details: &mut Vec<String>, sql: &mut Vec<String>) {
        let Some(want) = &self.privs else { return };
        let acct = self.account();
        let empty = BTreeSet::new();
        let mut revokes = Vec::new();
        let mut grants = Vec::new();
        let objects: BTreeSet<&String> = want
            .keys()
            .chain(have.keys().filter(|_| !self.append))
            .collect();
        for obj in objects {
            let w = want.get(obj);
            let h = have.get(obj);
            let obj_sql = w.or(h).map(|g| g.sql.clone()).unwrap_or_default();
            let wp = w.map_or(&empty, |g| &g.privs);
            let hp = h.map_or(&empty, |g| &g.privs);
            let strip = |s: &BTreeSet<String>| -> BTreeSet<String> {
                s.iter().filter(|p| *p != GRANT_OPTION).cloned().collect()
            };
            let (mut revoke, mut grant) = diff_privs(&strip(hp), &strip(wp), self.append);
            let (want_go, have_go) = (wp.contains(GRANT_OPTION), hp.contains(GRANT_OPTION));
            if want_go && !have_go {
                grant.insert(GRANT_OPTION.into());
            }
            if have_go && !want_go && !self.append {
                revoke.insert(GRANT_OPTION.into());
            }
            if !revoke.is_empty() {
                revokes.push(format!("revoke {} on {obj}", show(&revoke)));
                let go = revoke.remove(GRANT_OPTION);
                if !revoke.is_empty() {
                    sql.push(format!(
                        "REVOKE {} ON {obj_sql} FROM {acct}",
                        sql_privs(&revoke)
                    ));
                }
                if go {
                    sql.push(format!("REVOKE GRANT OPTION ON {obj_sql} FROM {acct}"));
                }
            }
            if !grant.is_empty() {
                let note = if grant.contains("ALL") {
                    all_note(obj, &strip(hp))
                } else {
                    String::new()
                };
                grants.push(format!("grant {} on {obj}{note}", show(&grant)));
                let go = grant.remove(GRANT_OPTION);
                let list = if grant.is_empty() {
                    "USAGE".to_string()
                } else {
                    sql_privs(&grant)
                };
                let with = if go { " WITH GRANT OPTION" } else { "" };
                sql.push(format!("GRANT {list} ON {obj_sql} TO {acct}{with}"));
            }
        }
        details.extend(revokes);
        details.extend(grants);
    }

    /// The change and the statements making it, from the same facts so they cannot disagree.
    fn decide(&self, facts: &Facts) -> (Change, Vec<String>) {
        let mut details = Vec::new();
        let mut sql = Vec::new();
        let acct = self.account();
        let exists = facts.is("exists", "yes");
        let action = if let Some(reason) = unreachable(facts) {
            if self.state == State::Absent {
                Action::None
            } else {
                details.push(format!("create user {}", self.shown()));
                details.push(unreachable_detail(&reason));
                Action::Create
            }
        } else {
            match (self.state, exists) {
                (State::Absent, false) => Action::None,
                (State::Absent, true) => {
                    details.push(format!("drop user {}", self.shown()));
                    sql.push(format!("DROP USER {acct}"));
                    Action::Delete
                }
                (State::Present, false) => {
                    details.push(format!("create user {}", self.shown()));
                    sql.push(format!("CREATE USER {acct} {}", self.identified()));
                    self.grant_changes(&Grants::new(), &mut details, &mut sql);
                    Action::Create
                }
                (State::Present, true) => {
                    if !facts.is("password_matches", "yes") {
                        let plugin = facts.get("plugin").unwrap_or_default();
                        details.push(if plugin == "mysql_native_password" || plugin.is_empty() {
                            "password changes".to_string()
                        } else {
                            format!(
                                "password changes (auth plugin {plugin} -> mysql_native_password)"
                            )
                        });
                        sql.push(format!("ALTER USER {acct} {}", self.identified()));
                    }
                    self.grant_changes(&current_grants(facts), &mut details, &mut sql);
                    if details.is_empty() {
                        Action::None
                    } else {
                        Action::Update
                    }
                }
            }
        };
        let mut change = Change::new(action, details);
        // The details name the account and its grants and say only that a password changes: never a
        // password or its hash, so a task that reads the password secret still shows them.
        change.sensitive = true;
        change
            .result
            .insert("user".into(), self.name.clone().into());
        change
            .result
            .insert("host".into(), self.host.clone().into());
        (change, sql)
    }

    /// `err` with the password hash masked, for an error that quotes the failing statement.
    fn mask(&self, err: ResourceError) -> ResourceError {
        match (err, &self.hash) {
            (ResourceError::Failed(msg), Some(h)) => {
                ResourceError::Failed(msg.replace(h.as_str(), "<password hash>"))
            }
            (err, _) => err,
        }
    }
}

#[async_trait]
impl Resource for MysqlUser {
    fn describe(&self) -> String {
        format!("mysql_user {}", self.shown())
    }

    fn probe(&self) -> String {
        let matches = match &self.hash {
            Some(h) => format!(
                "IF(plugin IN ('mysql_native_password', '') AND authentication_string = {}, 'yes', 'no')",
                lit(h)
            ),
            None => "'-'".into(),
        };
        let user_sql = format!(
            "SELECT plugin, {matches} FROM mysql.user WHERE User = {} AND Host = {}",
            lit(&self.name),
            lit(&self.host)
        );
        let grants = if self.privs.is_some() {
            format!(
                r#"my_probe{q}printf '%s\n' "$my_out" | sed -n \
  -e '/ WITH .*GRANT OPTION/{{s/^GRANT \(.*\) ON \(.*\) TO [^ ]*@.*$/\1, GRANT ON \2/p;d;}}' \
  -e 's/^GRANT \(.*\) ON \(.*\) TO [^ ]*@.*$/\1 ON \2/p' |
{{ i=0; while IFS= read -r g; do i=$((i + 1)); fact "grant.$i" "$g"; done; }}
"#,
                q = heredoc(&format!("SHOW GRANTS FOR {}", self.account()))
            )
        } else {
            String::new()
        };
        format!(
            r#"{session}my_probe{q}if [ -z "$my_out" ]; then fact exists no; exit 0; fi
fact exists yes
fact plugin "$(printf '%s\n' "$my_out" | cut -f1)"
fact password_matches "$(printf '%s\n' "$my_out" | cut -f2)"
{grants}"#,
            session = self.login.session(),
            q = heredoc(&user_sql),
        )
    }

    /// The statements as the change's step; with the server unreachable, a step failing with why.
    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        let (mut change, sql) = self.decide(facts);
        let what = self.describe();
        let step = match unreachable(facts) {
            Some(reason) if change.is_pending() => Some(unreachable_step(&what, &reason)),
            Some(_) => None,
            None => statements_step(&self.login, &what, &sql),
        };
        change.steps.extend(step);
        Ok(change)
    }

    fn applies_by_steps(&self) -> bool {
        false
    }

    /// Runs the planned statements, masking the password hash in an error that quotes one.
    async fn apply(
        &self,
        change: &Change,
        host: &dyn Transport,
    ) -> Result<Registered, ResourceError> {
        execute(change, host).await.map_err(|e| self.mask(e))
    }
}

#[cfg(test)]
mod tests {
    use super::super::mysql::testdb::{root_sql, server, Recorder};
    use super::super::testkit::probe_now;
    use super::super::testkit::{bad_args, converge, facts_from, plan_now, res};
    use super::super::{Action, ResourceError};
    use super::{current_grants, native_hash, MysqlUser, KIND};
    use crate::transport::LocalTransport;
    use serde_json::{json, Value};

    /// `args` with the test server's socket.
    fn on_server(mut args: Value) -> Value {
        args["login_unix_socket"] = server().socket.clone().into();
        args
    }

    fn grants(user: &str, host: &str) -> String {
        root_sql(&format!("SHOW GRANTS FOR '{user}'@'{host}'"))
    }

    #[tokio::test]
    async fn creates_then_changes_exactly_the_password_or_the_privileges() {
        let rec = Recorder::default();
        let pw1 = "first 'secret\" #1";
        let pw2 = "second-secret";
        let user = |pw: &str, privs: Value| {
            res(
                KIND,
                on_server(json!({"name": "apim_u1", "password": pw, "privs": privs})),
            )
        };
        let u = user(pw1, json!(["apim_udb.*:ALL", "apim_reg.*:select, insert"]));
        let (first, second) = converge(u.as_ref(), &rec).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(
            first.details,
            [
                "create user 'apim_u1'@'%'",
                "grant INSERT,SELECT on apim_reg.*",
                "grant ALL on apim_udb.*"
            ]
        );
        assert_eq!(second.action, Action::None);
        let g = grants("apim_u1", "%");
        assert!(
            g.contains("GRANT ALL PRIVILEGES ON `apim_udb`.* TO `apim_u1`@`%`"),
            "{g}"
        );
        assert!(
            g.contains("GRANT SELECT, INSERT ON `apim_reg`.* TO `apim_u1`@`%`"),
            "{g}"
        );
        assert_eq!(
            root_sql("SELECT authentication_string FROM mysql.user WHERE User='apim_u1'"),
            root_sql(&format!("SELECT PASSWORD('{}')", pw1.replace('\'', "''")))
        );

        let u = user(pw2, json!(["apim_udb.*:ALL", "apim_reg.*:SELECT,INSERT"]));
        let (first, second) = converge(u.as_ref(), &rec).await;
        assert_eq!(
            (first.action, first.details),
            (Action::Update, vec!["password changes".to_string()])
        );
        assert_eq!(second.action, Action::None);

        let u = user(pw2, json!(["apim_udb.*:ALL", "apim_reg.*:SELECT"]));
        let (first, second) = converge(u.as_ref(), &rec).await;
        assert_eq!(first.details, ["revoke INSERT on apim_reg.*"]);
        // The task reads a password secret; its grant changes are still shown.
        assert_eq!(first.shown(true).0, ["revoke INSERT on apim_reg.*"]);
        assert_eq!(second.action, Action::None);

        let u = user(pw2, json!("apim_udb.*:ALL/apim_reg.*:SELECT,UPDATE,GRANT"));
        let (first, second) = converge(u.as_ref(), &rec).await;
        assert_eq!(first.details, ["grant GRANT OPTION,UPDATE on apim_reg.*"]);
        assert_eq!(second.action, Action::None);
        assert!(grants("apim_u1", "%").contains("WITH GRANT OPTION"));

        let u = user(
            pw2,
            json!(["apim_udb.*:SELECT", "apim_reg.*:SELECT,UPDATE"]),
        );
        let (first, second) = converge(u.as_ref(), &rec).await;
        assert_eq!(
            first.details,
            [
                "revoke GRANT OPTION on apim_reg.*",
                "revoke ALL on apim_udb.*",
                "grant SELECT on apim_udb.*"
            ]
        );
        assert_eq!(second.action, Action::None);

        let more = res(
            KIND,
            on_server(
                json!({"name": "apim_u1", "password": pw2, "append_privs": true,
                             "priv": "apim_other.*:SELECT/apim_reg.*:SELECT"}),
            ),
        );
        let (first, second) = converge(more.as_ref(), &rec).await;
        assert_eq!(first.details, ["grant SELECT on apim_other.*"]);
        assert_eq!(second.action, Action::None);

        let only = user(pw2, json!(["apim_reg.*:SELECT,UPDATE"]));
        let (first, second) = converge(only.as_ref(), &rec).await;
        assert_eq!(
            first.details,
            [
                "revoke SELECT on apim_other.*",
                "revoke SELECT on apim_udb.*"
            ]
        );
        assert_eq!(second.action, Action::None);

        let unmanaged = res(KIND, on_server(json!({"name": "apim_u1", "password": pw2})));
        assert_eq!(
            plan_now(unmanaged.as_ref(), &rec).await.unwrap().action,
            Action::None
        );

        let facts = probe_now(u.as_ref(), &rec).await.unwrap();
        for (k, v) in facts.iter() {
            assert!(
                !v.contains(&native_hash(pw2)[1..]),
                "fact {k} shows the hash"
            );
        }
        assert!(facts.is("password_matches", "yes"));
        for script in rec.scripts.lock().unwrap().iter() {
            for pw in [pw1, pw2] {
                assert!(
                    !script.contains(pw),
                    "a script carries the password:\n{script}"
                );
            }
        }

        let gone = res(
            KIND,
            on_server(json!({"name": "apim_u1", "state": "absent"})),
        );
        let (first, second) = converge(gone.as_ref(), &rec).await;
        assert_eq!(
            (first.action, first.details),
            (Action::Delete, vec!["drop user 'apim_u1'@'%'".to_string()])
        );
        assert_eq!(second.action, Action::None);
        assert_eq!(
            root_sql("SELECT COUNT(*) FROM mysql.user WHERE User='apim_u1'"),
            "0"
        );
    }

    #[tokio::test]
    async fn a_grant_revoked_by_hand_is_named_with_what_the_account_lacks() {
        let t = LocalTransport::new("t");
        let acct = "'apim_u3'@'10.231.0.%'";
        let u = res(
            KIND,
            on_server(
                json!({"name": "apim_u3", "host": "10.231.0.%", "password": "pw3",
                             "privs": ["apim_db3.*:ALL", "apim_reg3.*:SELECT,INSERT"]}),
            ),
        );
        let (first, _) = converge(u.as_ref(), &t).await;
        assert_eq!(first.action, Action::Create);

        root_sql(&format!("REVOKE DELETE ON apim_db3.* FROM {acct}"));
        root_sql(&format!("REVOKE INSERT ON apim_reg3.* FROM {acct}"));
        let plan = plan_now(u.as_ref(), &t).await.unwrap();
        assert_eq!(
            plan.details,
            [
                "grant ALL on apim_db3.* (lacks DELETE)",
                "grant INSERT on apim_reg3.*"
            ]
        );

        root_sql(&format!("REVOKE ALL ON apim_db3.* FROM {acct}"));
        let (first, second) = converge(u.as_ref(), &t).await;
        assert_eq!(
            first.details,
            ["grant ALL on apim_db3.*", "grant INSERT on apim_reg3.*"]
        );
        assert_eq!(second.action, Action::None);
        assert!(grants("apim_u3", "10.231.0.%").contains("GRANT ALL PRIVILEGES ON `apim_db3`.*"));
    }

    #[tokio::test]
    async fn an_account_on_another_auth_plugin_is_switched_to_the_password() {
        root_sql("CREATE USER 'apim_u2'@'localhost' IDENTIFIED VIA unix_socket");
        let u = res(
            KIND,
            on_server(json!({"name": "apim_u2", "host": "localhost", "password": "pw2"})),
        );
        let (first, second) = converge(u.as_ref(), &LocalTransport::new("t")).await;
        assert_eq!(
            first.details,
            ["password changes (auth plugin unix_socket -> mysql_native_password)"]
        );
        assert_eq!(second.action, Action::None);
    }

    #[test]
    fn the_hash_is_what_the_server_computes() {
        assert_eq!(native_hash("x y'z"), root_sql("SELECT PASSWORD('x y''z')"));
    }

    #[tokio::test]
    async fn show_grants_lines_become_objects_and_privileges() {
        let facts = facts_from(&[
            ("exists", "yes"),
            ("password_matches", "yes"),
            ("grant.1", "USAGE ON *.*"),
            ("grant.2", "SELECT (`a`, `b`), INSERT ON `db`.`t`"),
            ("grant.3", "ALL PRIVILEGES, GRANT ON `x_y`.*"),
            ("grant.4", "PROXY ON ''@'%'"),
        ])
        .await;
        let have = current_grants(&facts);
        assert_eq!(have.keys().collect::<Vec<_>>(), ["db.t", "x_y.*"]);
        assert_eq!(
            have["db.t"].privs.iter().collect::<Vec<_>>(),
            ["INSERT", "SELECT (`a`, `b`)"]
        );
        assert_eq!(
            have["x_y.*"].privs.iter().collect::<Vec<_>>(),
            ["ALL", "GRANT"]
        );
        let u = MysqlUser::from_args(
            json!({"name": "n", "password": "p", "privs": ["x_y.*:ALL PRIVILEGES,GRANT", "db.t:INSERT"]}),
        )
        .unwrap();
        let mut details = Vec::new();
        let mut sql = Vec::new();
        u.grant_changes(&have, &mut details, &mut sql);
        assert_eq!(details, ["revoke SELECT (`a`, `b`) on db.t"]);
        assert_eq!(sql, ["REVOKE SELECT (`a`, `b`) ON `db`.`t` FROM 'n'@'%'"]);

        // An `ALL` held only in part: a table's lists what it holds; a database's what it lacks, or
        // (when it lacks only a privilege of one server's own) what it holds.
        let all = MysqlUser::from_args(
            json!({"name": "n", "password": "p", "privs": ["db.t:ALL", "x_y.*:ALL"]}),
        )
        .unwrap();
        let mut details = Vec::new();
        all.grant_changes(&have, &mut details, &mut Vec::new());
        assert_eq!(
            details,
            [
                "revoke GRANT OPTION on x_y.*",
                "grant ALL on db.t (holds only INSERT,SELECT (`a`, `b`))"
            ]
        );
        let most = super::DB_ALL.join(", ");
        let facts = facts_from(&[
            ("exists", "yes"),
            ("grant.1", &format!("{most}, DELETE HISTORY ON `d`.*")),
            ("grant.2", "SELECT, INSERT, UPDATE ON `e`.*"),
        ])
        .await;
        let all = MysqlUser::from_args(
            json!({"name": "n", "password": "p", "privs": ["d.*:ALL", "e.*:ALL"]}),
        )
        .unwrap();
        let mut details = Vec::new();
        all.grant_changes(&current_grants(&facts), &mut details, &mut Vec::new());
        assert_eq!(details[1], "grant ALL on e.* (lacks ALTER,ALTER ROUTINE,CREATE,CREATE ROUTINE,CREATE TEMPORARY TABLES,CREATE VIEW,DELETE,DROP,EVENT,EXECUTE,INDEX,LOCK TABLES,REFERENCES,SHOW VIEW,TRIGGER)");
        assert!(
            details[0].starts_with("grant ALL on d.* (holds only ALTER,"),
            "{details:?}"
        );
    }

    #[test]
    fn a_failing_statement_does_not_show_the_password_hash() {
        let u = MysqlUser::from_args(json!({"name": "n", "password": "p"})).unwrap();
        let h = native_hash("p");
        let err = u.mask(ResourceError::Failed(format!("ERROR 1064: near '{h}'")));
        assert_eq!(err.to_string(), "ERROR 1064: near '<password hash>'");
    }

    #[test]
    fn bad_arguments_name_the_field() {
        bad_args(KIND, json!({"name": "n"}), "password");
        bad_args(KIND, json!({"name": "n", "password": ""}), "password");
        bad_args(
            KIND,
            json!({"name": "n", "state": "absent", "password": "p"}),
            "password",
        );
        bad_args(KIND, json!({"name": "n'", "password": "p"}), "name");
        bad_args(
            KIND,
            json!({"name": "n", "host": "a\\b", "password": "p"}),
            "host",
        );
        bad_args(
            KIND,
            json!({"name": "n", "password": "p", "privs": ["db.*"]}),
            "privs",
        );
        bad_args(
            KIND,
            json!({"name": "n", "password": "p", "privs": ["db:ALL"]}),
            "privs",
        );
        bad_args(
            KIND,
            json!({"name": "n", "password": "p", "privs": ["db.*:SELECT;DROP"]}),
            "privs",
        );
        bad_args(
            KIND,
            json!({"name": "n", "password": "p", "privs": ["d'b.*:ALL"]}),
            "privs",
        );
        bad_args(
            KIND,
            json!({"name": "n", "password": "p", "privs": 3}),
            "privs",
        );
        bad_args(
            KIND,
            json!({"name": "n", "password": "p", "append_privs": true}),
            "append_privs",
        );
        bad_args(
            KIND,
            json!({"name": "n", "password": "p", "state": "locked"}),
            "state",
        );
        bad_args(
            KIND,
            json!({"name": "n", "password": "p", "login_port": -1}),
            "login_port",
        );
    }
}
