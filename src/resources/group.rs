//! `group`: a local group present (with a given gid) or absent, through groupadd/groupmod/groupdel.

use super::Presence as State;
use super::{
    bad, digest_probe, parse_args, Action, BuildCtx, Change, Guard, Resource, ResourceError, Step,
};
use crate::transport::{sh_quote, Facts};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

const KIND: &str = "group";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    name: String,
    #[serde(default)]
    state: State,
    gid: Option<u32>,
    #[serde(default)]
    system: bool,
}

struct Group {
    name: String,
    state: State,
    gid: Option<u32>,
    system: bool,
}

/// Checks a user or group name against what shadow-utils accepts everywhere (a leading digit would also
/// make `getent` look the name up as an id), so a typo fails before any host is touched.
pub(super) fn check_account_name(kind: &str, field: &str, name: &str) -> Result<(), ResourceError> {
    let body = name.strip_suffix('$').unwrap_or(name);
    let ok = !body.is_empty()
        && name.len() <= 32
        && body.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(bad(
            kind,
            format!("{field} `{name}` is not a valid account name"),
        ))
    }
}

/// The `group` entry of `TYPES`: checks the group name before any host is touched.
pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    check_account_name(KIND, "name", &a.name)?;
    Ok(Box::new(Group {
        name: a.name,
        state: a.state,
        gid: a.gid,
        system: a.system,
    }))
}

impl Group {
    /// Reads the group's entry: what the change is decided from, and what its guard checks again.
    fn entry(&self) -> String {
        format!("getent group {}", sh_quote(&self.name))
    }

    /// The change and the command making it, both from the same facts so they cannot disagree.
    fn decide(&self, facts: &Facts) -> (Change, Option<String>) {
        let n = sh_quote(&self.name);
        let exists = facts.is("exists", "yes");
        let cur_gid = facts.get("gid").unwrap_or("-");
        let (change, command) = match (self.state, exists) {
            (State::Absent, false) => (Change::none(), None),
            (State::Absent, true) => (
                Change::new(Action::Delete, vec![format!("remove group {}", self.name)]),
                Some(format!("groupdel {n}")),
            ),
            (State::Present, false) => {
                let mut detail = format!("create group {}", self.name);
                let mut cmd = "groupadd".to_string();
                if let Some(g) = self.gid {
                    detail.push_str(&format!(" with gid {g}"));
                    cmd.push_str(&format!(" -g {g}"));
                }
                if self.system {
                    detail.push_str(" (system)");
                    cmd.push_str(" -r");
                }
                (
                    Change::new(Action::Create, vec![detail]),
                    Some(format!("{cmd} {n}")),
                )
            }
            (State::Present, true) => match self.gid {
                Some(g) if cur_gid != g.to_string() => (
                    Change::new(Action::Update, vec![format!("gid {cur_gid} -> {g}")]),
                    Some(format!("groupmod -g {g} {n}")),
                ),
                _ => (Change::none(), None),
            },
        };
        let mut change = change;
        change
            .result
            .insert("name".into(), self.name.clone().into());
        if exists {
            change.result.insert("gid".into(), cur_gid.into());
        }
        (change, command)
    }
}

#[async_trait]
impl Resource for Group {
    fn describe(&self) -> String {
        format!("group {}", self.name)
    }

    fn probe(&self) -> String {
        format!(
            "if e=$(getent group {n}); then fact exists yes; set -f; IFS=:; set -- $e; unset IFS; set +f; fact gid \"$3\"; else fact exists no; fi\n{}",
            digest_probe("entry_sha256", &self.entry()),
            n = sh_quote(&self.name)
        )
    }

    /// The command as the change's one step, guarded by the group entry it was decided from.
    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        let (change, command) = self.decide(facts);
        Ok(match command {
            Some(cmd) => change.then(Step::run(
                format!("group {}", self.name),
                vec![Guard::digest(
                    &format!("group {}", self.name),
                    &self.entry(),
                    facts,
                    "entry_sha256",
                )?],
                cmd,
            )),
            None => change,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, build_plain, facts_from, plan_now, res, FakeTools};
    use super::super::{Action, ResourceError};
    use super::{Group, State, KIND};
    use crate::transport::LocalTransport;
    use serde_json::json;

    fn group(state: State, gid: Option<u32>, system: bool) -> Group {
        Group {
            name: "app".into(),
            state,
            gid,
            system,
        }
    }

    /// Reads this machine's group database (read-only) without applying anything.
    #[tokio::test]
    async fn the_probe_reads_the_real_group_database() {
        let t = LocalTransport::new("t");
        let root = res(KIND, json!({"name": "root", "gid": 0}));
        assert_eq!(
            plan_now(root.as_ref(), &t).await.unwrap().action,
            Action::None
        );
        let moved = res(KIND, json!({"name": "root", "gid": 4242}));
        let c = plan_now(moved.as_ref(), &t).await.unwrap();
        assert_eq!(c.action, Action::Update);
        assert_eq!(c.details, vec!["gid 0 -> 4242"]);
        let new = res(KIND, json!({"name": "apim-no-such-group"}));
        let c = plan_now(new.as_ref(), &t).await.unwrap();
        assert_eq!(c.details, vec!["create group apim-no-such-group"]);
        let gone = res(
            KIND,
            json!({"name": "apim-no-such-group", "state": "absent"}),
        );
        assert_eq!(
            plan_now(gone.as_ref(), &t).await.unwrap().action,
            Action::None
        );
    }

    #[tokio::test]
    async fn each_change_has_exactly_its_command() {
        let absent = facts_from(&[("exists", "no")]).await;
        let present = facts_from(&[("exists", "yes"), ("gid", "1500")]).await;
        let (c, cmd) = group(State::Present, Some(1600), true).decide(&absent);
        assert_eq!(c.details, vec!["create group app with gid 1600 (system)"]);
        assert_eq!(cmd.as_deref(), Some("groupadd -g 1600 -r app"));
        let (c, cmd) = group(State::Present, Some(1600), false).decide(&present);
        assert_eq!(c.details, vec!["gid 1500 -> 1600"]);
        assert_eq!(cmd.as_deref(), Some("groupmod -g 1600 app"));
        let (c, cmd) = group(State::Present, Some(1500), true).decide(&present);
        assert_eq!((c.action, cmd), (Action::None, None));
        let (c, cmd) = group(State::Absent, None, false).decide(&present);
        assert_eq!(c.action, Action::Delete);
        assert_eq!(cmd.as_deref(), Some("groupdel app"));
    }

    /// The plan's step is what apply runs, and only while the group is as probed: a group changed in
    /// between (here a stand-in `getent` that now answers differently) is refused, and groupmod never runs.
    #[tokio::test]
    async fn apply_runs_the_planned_command_only_while_the_group_is_as_probed() {
        let fake = FakeTools::new();
        let log = fake.dir().join("log").display().to_string();
        fake.tool("getent", "echo \"app:x:$(cat $(dirname $0)/gid)\":")
            .await;
        fake.tool("groupmod", &format!("echo \"groupmod $*\" >> {log}"))
            .await;
        std::fs::write(fake.dir().join("gid"), "1500").unwrap();
        let r = res(KIND, json!({"name": "app", "gid": 1600}));
        let change = plan_now(r.as_ref(), &fake).await.unwrap();
        assert_eq!(change.details, vec!["gid 1500 -> 1600"]);
        std::fs::write(fake.dir().join("gid"), "1700").unwrap();
        let err = r.apply(&change, &fake).await.unwrap_err();
        assert!(
            matches!(&err, ResourceError::Stale { message, .. }
                if message == "group app changed on the host since it was probed; run plan again"),
            "{err}"
        );
        assert!(!fake.dir().join("log").exists(), "groupmod ran");
        std::fs::write(fake.dir().join("gid"), "1500").unwrap();
        r.apply(&change, &fake).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "groupmod -g 1600 app\n"
        );
    }

    #[test]
    fn bad_arguments_name_the_field() {
        bad_args(KIND, json!({}), "name");
        bad_args(KIND, json!({"name": "9lives"}), "name");
        bad_args(KIND, json!({"name": "a b"}), "name");
        bad_args(KIND, json!({"name": "x".repeat(33)}), "name");
        bad_args(KIND, json!({"name": "app", "gid": -1}), "gid");
        bad_args(KIND, json!({"name": "app", "state": "gone"}), "state");
        bad_args(KIND, json!({"name": "app", "members": []}), "members");
        assert!(build_plain(KIND, json!({"name": "svc$", "system": true})).is_ok());
    }
}
