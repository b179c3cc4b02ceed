//! `user`: a local account present (uid, primary group, supplementary groups, home, shell) or absent,
//! through useradd/usermod/userdel. Only the fields given are managed; for an existing account only the
//! ones that differ are passed to usermod, so an unchanged uid never triggers usermod's busy-user check or
//! its re-owning of the home directory.

use super::group::check_account_name;
use super::Presence as State;
use super::{
    bad, digest_probe, one_or_many, parse_args, Action, BuildCtx, Change, Guard, Resource,
    ResourceError, Step,
};
use crate::transport::{sh_quote, Facts};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

const KIND: &str = "user";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    name: String,
    #[serde(default)]
    state: State,
    uid: Option<u32>,
    group: Option<String>,
    /// A list, or Ansible's comma-separated string.
    #[serde(default, deserialize_with = "opt_groups")]
    groups: Option<Vec<String>>,
    #[serde(default)]
    append: bool,
    home: Option<String>,
    shell: Option<String>,
    #[serde(default)]
    system: bool,
    #[serde(default = "yes", alias = "createhome")]
    create_home: bool,
    /// With state: absent, also remove the home directory and mail spool (`userdel -r`).
    #[serde(default)]
    remove: bool,
}

fn yes() -> bool {
    true
}

/// `groups` as a list or a comma-separated string, split and trimmed; an empty string means no groups.
fn opt_groups<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let items = one_or_many(d)?;
    Ok(Some(
        items
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    ))
}

struct User {
    a: Args,
}

/// The `user` entry of `TYPES`: checks names and paths before any host is touched.
pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    check_account_name(KIND, "name", &a.name)?;
    if let Some(g) = &a.group {
        if !g.chars().all(|c| c.is_ascii_digit()) {
            check_account_name(KIND, "group", g)?;
        }
    }
    for g in a.groups.iter().flatten() {
        check_account_name(KIND, "groups", g)?;
    }
    for (field, path) in [("home", &a.home), ("shell", &a.shell)] {
        if let Some(p) = path {
            if !p.starts_with('/') || p.contains(':') {
                return Err(bad(
                    KIND,
                    format!("{field} `{p}` must be an absolute path without `:`"),
                ));
            }
        }
    }
    if a.append && a.groups.is_none() {
        return Err(bad(KIND, "`append` only makes sense with `groups`"));
    }
    Ok(Box::new(User { a }))
}

impl User {
    /// Reads the account's entry and groups: what the change is decided from, and what its guard
    /// checks again.
    fn entry(&self) -> String {
        let n = sh_quote(&self.a.name);
        format!("getent passwd {n}; id -Gn {n}")
    }

    /// The names the primary group will have after apply (a gid given as `group` counts under its
    /// current name too). They are left out of the supplementary groups compared and passed to usermod,
    /// since `id -Gn` always lists the primary group: naming it in `groups` must not make every run a
    /// change.
    fn primary<'f>(&'f self, facts: &'f Facts) -> Vec<&'f str> {
        let cur = facts.get("group");
        match self.a.group.as_deref() {
            None => cur.into_iter().collect(),
            Some(g) if Some(g) == cur || Some(g) == facts.get("gid") => {
                std::iter::once(g).chain(cur).collect()
            }
            Some(g) => vec![g],
        }
    }

    /// The supplementary groups asked for, without the primary group and duplicates.
    fn wanted_groups(&self, primary: &[&str]) -> Option<Vec<&str>> {
        self.a.groups.as_ref().map(|gs| {
            let mut v: Vec<&str> = Vec::new();
            for g in gs.iter().map(String::as_str) {
                if !primary.contains(&g) && !v.contains(&g) {
                    v.push(g);
                }
            }
            v
        })
    }

    /// The change and the command making it, both from the same facts so they cannot disagree.
    fn decide(&self, facts: &Facts) -> (Change, Option<String>) {
        let a = &self.a;
        let n = sh_quote(&a.name);
        let exists = facts.is("exists", "yes");
        let mut details = Vec::new();
        let mut opts: Vec<String> = Vec::new();
        let action = match (a.state, exists) {
            (State::Absent, false) => Action::None,
            (State::Absent, true) => {
                details.push(format!(
                    "remove user {}{}",
                    a.name,
                    if a.remove { " and its home" } else { "" }
                ));
                opts.push(if a.remove { "userdel -r" } else { "userdel" }.into());
                Action::Delete
            }
            (State::Present, false) => {
                details.push(format!("create user {}", a.name));
                opts.push("useradd".into());
                if let Some(u) = a.uid {
                    details.push(format!("uid {u}"));
                    opts.push(format!("-u {u}"));
                }
                if let Some(g) = &a.group {
                    details.push(format!("group {g}"));
                    opts.push(format!("-g {}", sh_quote(g)));
                }
                if let Some(gs) = self.wanted_groups(&self.primary(facts)) {
                    details.push(format!("groups {}", list(&gs)));
                    opts.push(format!("-G {}", sh_quote(&gs.join(","))));
                }
                if let Some(h) = &a.home {
                    details.push(format!("home {h}"));
                    opts.push(format!("-d {}", sh_quote(h)));
                }
                if let Some(s) = &a.shell {
                    details.push(format!("shell {s}"));
                    opts.push(format!("-s {}", sh_quote(s)));
                }
                if a.system {
                    details.push("system account".into());
                    opts.push("-r".into());
                }
                if !a.create_home {
                    details.push("no home directory".into());
                }
                opts.push(if a.create_home { "-m" } else { "-M" }.into());
                Action::Create
            }
            (State::Present, true) => {
                opts.push("usermod".into());
                let cur = |k: &str| facts.get(k).unwrap_or_default();
                if let Some(u) = a.uid {
                    if cur("uid") != u.to_string() {
                        details.push(format!("uid {} -> {u}", cur("uid")));
                        opts.push(format!("-u {u}"));
                    }
                }
                if let Some(g) = &a.group {
                    if cur("group") != g && cur("gid") != g {
                        details.push(format!("group {} -> {g}", cur("group")));
                        opts.push(format!("-g {}", sh_quote(g)));
                    }
                }
                let primary = self.primary(facts);
                if let Some(want) = self.wanted_groups(&primary) {
                    let have: Vec<&str> = cur("groups")
                        .split_whitespace()
                        .filter(|g| !primary.contains(g) && *g != cur("group"))
                        .collect();
                    let missing: Vec<&str> =
                        want.iter().copied().filter(|g| !have.contains(g)).collect();
                    let extra = have.iter().any(|g| !want.contains(g));
                    if a.append && !missing.is_empty() {
                        details.push(format!("add to groups {}", list(&missing)));
                        opts.push(format!("-a -G {}", sh_quote(&missing.join(","))));
                    } else if !a.append && (!missing.is_empty() || extra) {
                        details.push(format!("groups {} -> {}", list(&have), list(&want)));
                        opts.push(format!("-G {}", sh_quote(&want.join(","))));
                    }
                }
                for (key, flag, want) in [("home", "-d", &a.home), ("shell", "-s", &a.shell)] {
                    if let Some(w) = want {
                        if cur(key) != w {
                            details.push(format!("{key} {} -> {w}", cur(key)));
                            opts.push(format!("{flag} {}", sh_quote(w)));
                        }
                    }
                }
                if details.is_empty() {
                    Action::None
                } else {
                    Action::Update
                }
            }
        };
        let mut change = Change::new(action, details);
        change.result.insert("name".into(), a.name.clone().into());
        for key in ["uid", "group", "home", "shell"] {
            if let Some(v) = facts.get(key).filter(|_| exists) {
                change.result.insert(key.into(), v.into());
            }
        }
        let command = (action != Action::None).then(|| format!("{} {n}", opts.join(" ")));
        (change, command)
    }
}

/// Groups for a detail line; `-` for none.
fn list(groups: &[&str]) -> String {
    if groups.is_empty() {
        "-".into()
    } else {
        groups.join(",")
    }
}

#[async_trait]
impl Resource for User {
    fn describe(&self) -> String {
        format!("user {}", self.a.name)
    }

    fn probe(&self) -> String {
        format!(
            r#"n={n}
if e=$(getent passwd "$n"); then
  fact exists yes
  set -f; IFS=:; set -- $e; unset IFS; set +f
  fact uid "$3"; fact gid "$4"; fact home "$6"; fact shell "$7"
  fact group "$(id -gn "$n" 2>/dev/null)"; fact groups "$(id -Gn "$n" 2>/dev/null)"
else
  fact exists no
fi
{digest}"#,
            n = sh_quote(&self.a.name),
            digest = digest_probe("entry_sha256", &self.entry()),
        )
    }

    /// The command as the change's one step, guarded by the account entry and groups it was decided
    /// from.
    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        let (change, command) = self.decide(facts);
        let what = format!("user {}", self.a.name);
        Ok(match command {
            Some(cmd) => change.then(Step::run(
                what.clone(),
                vec![Guard::digest(&what, &self.entry(), facts, "entry_sha256")?],
                cmd,
            )),
            None => change,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, build_plain, facts_from, plan_now, res};
    use super::super::{Action, Facts};
    use super::{parse_args, User, KIND};
    use crate::transport::LocalTransport;
    use serde_json::{json, Value};

    fn user(args: Value) -> User {
        User {
            a: parse_args(KIND, args).unwrap(),
        }
    }

    async fn app_facts() -> Facts {
        facts_from(&[
            ("exists", "yes"),
            ("uid", "1001"),
            ("gid", "1001"),
            ("group", "app"),
            ("groups", "app adm docker"),
            ("home", "/home/app"),
            ("shell", "/bin/sh"),
        ])
        .await
    }

    /// Reads this machine's passwd database (read-only) without applying anything.
    #[tokio::test]
    async fn the_probe_reads_the_real_passwd_database() {
        let t = LocalTransport::new("t");
        let root = res(
            KIND,
            json!({"name": "root", "uid": 0, "group": "root", "home": "/root"}),
        );
        assert_eq!(
            plan_now(root.as_ref(), &t).await.unwrap().action,
            Action::None
        );
        let moved = res(KIND, json!({"name": "root", "home": "/var/root"}));
        let c = plan_now(moved.as_ref(), &t).await.unwrap();
        assert_eq!(c.details, vec!["home /root -> /var/root"]);
        let new = res(
            KIND,
            json!({"name": "apim-no-such-user", "shell": "/bin/false"}),
        );
        let c = plan_now(new.as_ref(), &t).await.unwrap();
        assert_eq!(c.action, Action::Create);
        assert_eq!(
            c.details,
            vec!["create user apim-no-such-user", "shell /bin/false"]
        );
    }

    #[tokio::test]
    async fn a_new_account_gets_every_given_field() {
        let absent = facts_from(&[("exists", "no")]).await;
        let u = user(
            json!({"name": "app", "uid": 1500, "group": "app", "groups": "adm, docker",
                            "home": "/opt/app", "shell": "/bin/bash", "system": true,
                            "create_home": false}),
        );
        let (c, cmd) = u.decide(&absent);
        assert_eq!(c.action, Action::Create);
        assert_eq!(
            c.details,
            vec![
                "create user app",
                "uid 1500",
                "group app",
                "groups adm,docker",
                "home /opt/app",
                "shell /bin/bash",
                "system account",
                "no home directory"
            ]
        );
        assert_eq!(
            cmd.as_deref(),
            Some("useradd -u 1500 -g app -G adm,docker -d /opt/app -s /bin/bash -r -M app")
        );
    }

    #[tokio::test]
    async fn only_the_fields_that_differ_go_to_usermod() {
        let facts = app_facts().await;
        let same = user(json!({"name": "app", "uid": 1001, "group": "1001",
                               "groups": ["app", "docker", "adm"], "home": "/home/app"}));
        let (c, cmd) = same.decide(&facts);
        assert_eq!((c.action, cmd), (Action::None, None));
        let shell = user(json!({"name": "app", "uid": 1001, "shell": "/bin/bash"}));
        let (c, cmd) = shell.decide(&facts);
        assert_eq!(c.details, vec!["shell /bin/sh -> /bin/bash"]);
        assert_eq!(cmd.as_deref(), Some("usermod -s /bin/bash app"));
        let uid = user(json!({"name": "app", "uid": 2001}));
        assert_eq!(uid.decide(&facts).1.as_deref(), Some("usermod -u 2001 app"));
    }

    #[tokio::test]
    async fn groups_are_an_exact_set_unless_appending() {
        let facts = app_facts().await;
        let exact = user(json!({"name": "app", "groups": ["docker"]}));
        let (c, cmd) = exact.decide(&facts);
        assert_eq!(c.details, vec!["groups adm,docker -> docker"]);
        assert_eq!(cmd.as_deref(), Some("usermod -G docker app"));
        let none = user(json!({"name": "app", "groups": []}));
        assert_eq!(none.decide(&facts).1.as_deref(), Some("usermod -G '' app"));
        let append = user(json!({"name": "app", "groups": ["docker", "www-data"], "append": true}));
        let (c, cmd) = append.decide(&facts);
        assert_eq!(c.details, vec!["add to groups www-data"]);
        assert_eq!(cmd.as_deref(), Some("usermod -a -G www-data app"));
        let already = user(json!({"name": "app", "groups": "adm", "append": true}));
        assert_eq!(already.decide(&facts).0.action, Action::None);
    }

    #[tokio::test]
    async fn absent_deletes_only_an_existing_account() {
        let gone = user(json!({"name": "app", "state": "absent", "remove": true}));
        let (c, cmd) = gone.decide(&app_facts().await);
        assert_eq!(c.details, vec!["remove user app and its home"]);
        assert_eq!(cmd.as_deref(), Some("userdel -r app"));
        let absent = facts_from(&[("exists", "no")]).await;
        assert_eq!(gone.decide(&absent).1, None);
    }

    #[test]
    fn bad_arguments_name_the_field() {
        bad_args(KIND, json!({}), "name");
        bad_args(KIND, json!({"name": "a:b"}), "name");
        bad_args(KIND, json!({"name": "app", "uid": "x"}), "uid");
        bad_args(KIND, json!({"name": "app", "group": "a b"}), "group");
        bad_args(
            KIND,
            json!({"name": "app", "groups": ["ok", "b@d"]}),
            "groups",
        );
        bad_args(KIND, json!({"name": "app", "groups": 5}), "groups");
        bad_args(KIND, json!({"name": "app", "home": "rel"}), "home");
        bad_args(KIND, json!({"name": "app", "shell": "bash"}), "shell");
        bad_args(KIND, json!({"name": "app", "append": true}), "append");
        bad_args(KIND, json!({"name": "app", "state": "locked"}), "state");
        bad_args(KIND, json!({"name": "app", "password": "x"}), "password");
        assert!(build_plain(KIND, json!({"name": "app", "group": "1001"})).is_ok());
    }
}
