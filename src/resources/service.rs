//! `service`: a systemd unit started or stopped, enabled or disabled, or restarted/reloaded (as handlers
//! do: those two always run). Hosts without a running systemd are a plan error: nothing an earlier task
//! does can change that.
//!
//! A unit that does not exist (yet) is not a plan error, because an earlier task of the same run (a
//! package, a copied unit file with `daemon_reload`) may create it: a start/enable/restart/reload of it is
//! planned as a change whose apply step checks again and fails with "unit … not found" if it is still missing. A
//! stop/disable of a missing unit plans nothing: a unit that does not exist is neither running nor enabled,
//! and planning a change for it would never converge on hosts that simply lack it.

use super::{
    bad, parse_args, Action, BuildCtx, Change, Effect, HostView, Resource, ResourceError, Step,
};
use crate::transport::{sh_quote, Facts};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

const KIND: &str = "service";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Started,
    Stopped,
    Restarted,
    Reloaded,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    name: String,
    state: Option<State>,
    enabled: Option<bool>,
    #[serde(default)]
    daemon_reload: bool,
}

/// Where unit files live; writing below one of them is what makes a daemon-reload necessary.
const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

struct Service {
    name: String,
    state: Option<State>,
    enabled: Option<bool>,
    daemon_reload: bool,
}

/// The `service` entry of `TYPES`: checks the unit name and that something is asked of it.
pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '@' | '-' | '\\');
    if a.name.is_empty() || a.name.starts_with('-') || !a.name.chars().all(ok) {
        return Err(bad(
            KIND,
            format!("name `{}` is not a systemd unit name", a.name),
        ));
    }
    if a.state.is_none() && a.enabled.is_none() && !a.daemon_reload {
        return Err(bad(
            KIND,
            "one of `state`, `enabled` or `daemon_reload` is required",
        ));
    }
    Ok(Box::new(Service {
        name: a.name,
        state: a.state,
        enabled: a.enabled,
        daemon_reload: a.daemon_reload,
    }))
}

/// `systemctl is-active` states in which the unit counts as running.
fn running(active: &str) -> bool {
    matches!(active, "active" | "reloading")
}

/// `systemctl is-active` states in which `state: stopped` has something to stop.
fn stoppable(active: &str) -> bool {
    matches!(
        active,
        "active" | "reloading" | "activating" | "deactivating"
    )
}

/// Whether the unit counts as enabled, from `systemctl is-enabled`; `None` for units whose enablement
/// cannot be changed (static, generated, transient), which `enabled:` therefore leaves alone instead of
/// planning a `disable` that could never take effect.
fn enabled(state: &str) -> Option<bool> {
    match state {
        "enabled" | "enabled-runtime" => Some(true),
        "static" | "generated" | "transient" => None,
        _ => Some(false),
    }
}

impl Service {
    /// Whether the task asks for something that needs the unit to exist.
    fn needs_unit(&self) -> bool {
        self.enabled == Some(true) || !matches!(self.state, None | Some(State::Stopped))
    }

    /// Runs the planned `systemctl` commands in order. A unit that was `missing` at probe time must exist
    /// once daemon-reload (the first command, when asked for) has run, else the step fails naming it. No
    /// guard on the unit's state: start, stop, enable and disable are idempotent in systemd, and a unit
    /// moving between transitional states (`activating` → `active`) would make one refuse needlessly.
    fn script(&self, cmds: &[&str], missing: bool) -> String {
        let mut s = format!("set -e\nu={}\n", sh_quote(&self.name));
        let mut rest = cmds;
        if let Some((&"daemon-reload", tail)) = cmds.split_first() {
            s.push_str("systemctl daemon-reload\n");
            rest = tail;
        }
        if missing && self.needs_unit() {
            s.push_str(
                "if [ \"$(systemctl show -p LoadState \"$u\" | sed 's/^LoadState=//')\" = not-found ]; then echo \"unit $u not found\" >&2; exit 1; fi\n",
            );
        }
        for c in rest {
            s.push_str(&format!("systemctl {c} \"$u\"\n"));
        }
        s
    }
}

#[async_trait]
impl Resource for Service {
    fn describe(&self) -> String {
        format!("service {}", self.name)
    }

    fn probe(&self) -> String {
        format!(
            r#"u={u}
case "$(command -v systemctl >/dev/null 2>&1 && systemctl is-system-running 2>/dev/null)" in
  ""|offline|unknown) fact systemd no; exit 0 ;;
esac
fact systemd yes
systemctl show -p LoadState -p ActiveState -p NeedDaemonReload -- "$u" 2>/dev/null | while IFS== read -r k v; do
  case $k in LoadState) fact load "$v" ;; ActiveState) fact active "$v" ;; NeedDaemonReload) fact need_reload "$v" ;; esac
done
fact enabled "$(systemctl is-enabled -- "$u" 2>/dev/null)""#,
            u = sh_quote(&self.name)
        )
    }

    fn effects(&self, _change: &Change) -> Vec<Effect> {
        vec![Effect::Unit(self.name.clone())]
    }

    /// A unit file written by an earlier task of the run makes systemd want a daemon-reload by the time
    /// this task runs, which the probe (taken before) cannot see yet.
    fn plan_in(&self, facts: &Facts, view: &HostView) -> Result<Option<Change>, ResourceError> {
        // A unit that does not exist yet after an earlier package install or command: the package may
        // well bring it, started and enabled (Debian's do), so only apply can tell.
        if facts.is("load", "not-found") && view.opaque() {
            return Ok(None);
        }
        let mut facts = facts.clone();
        if self.daemon_reload && UNIT_DIRS.iter().any(|d| view.writes_under(d)) {
            facts.set("need_reload", "yes");
        }
        self.plan(&facts).map(Some)
    }

    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        if !facts.is("systemd", "yes") {
            return Err(ResourceError::Failed(
                "systemd is not running on the host (service manages systemd units)".into(),
            ));
        }
        let active = facts.get("active").unwrap_or_default();
        let is_enabled = facts.get("enabled").unwrap_or_default();
        let mut details = Vec::new();
        // One `systemctl` command per detail that needs one, decided here from the same facts.
        let mut cmds: Vec<&str> = Vec::new();
        let missing = facts.is("load", "not-found");
        if missing {
            if self.daemon_reload {
                cmds.push("daemon-reload");
            }
            if self.needs_unit() {
                details.push(format!(
                    "unit {} not found (yet): apply fails unless an earlier task installs it",
                    self.name
                ));
            }
        } else if self.daemon_reload && facts.is("need_reload", "yes") {
            details.push("daemon-reload (unit files changed on disk)".to_string());
            cmds.push("daemon-reload");
        }
        match (self.enabled, enabled(is_enabled)) {
            (Some(true), _) if missing => {
                details.push("enable".into());
                cmds.push("enable");
            }
            (Some(want), Some(cur)) if !missing && want != cur => {
                let verb = if want { "enable" } else { "disable" };
                details.push(format!("{verb} (is {is_enabled})"));
                cmds.push(verb);
            }
            _ => {}
        }
        let mut action = Action::Update;
        match self.state {
            Some(State::Started) if missing => {
                details.push("start".into());
                cmds.push("start");
            }
            Some(State::Started) if !running(active) => {
                details.push(format!("start (is {active})"));
                cmds.push("start");
            }
            Some(State::Stopped) if !missing && stoppable(active) => {
                details.push(format!("stop (is {active})"));
                cmds.push("stop");
            }
            Some(State::Restarted) => {
                details.push("restart".into());
                cmds.push("restart");
                action = Action::Run;
            }
            Some(State::Reloaded) => {
                let (detail, cmd) = if running(active) {
                    ("reload", "reload")
                } else {
                    ("start (reload of a stopped unit)", "start")
                };
                details.push(detail.into());
                cmds.push(cmd);
                action = Action::Run;
            }
            _ => {}
        }
        let mut change = if details.is_empty() {
            Change::none()
        } else {
            Change::new(action, details).then(Step::run(
                format!("service {}", self.name),
                Vec::new(),
                self.script(&cmds, missing),
            ))
        };
        change
            .result
            .insert("name".into(), self.name.clone().into());
        change.result.insert("active".into(), active.into());
        change.result.insert("enabled".into(), is_enabled.into());
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, converge, plan_now, res, FakeTools};
    use super::super::Action;
    use super::KIND;
    use crate::transport::LocalTransport;
    use serde_json::json;

    /// A fake systemctl keeping each unit's state as marker files: `units/U` (it exists), `active/U`,
    /// `enabled/U`, `stale/U` (its unit file changed on disk), `static/U`; every call is logged.
    async fn fake_systemd(units: &[&str]) -> FakeTools {
        let fake = FakeTools::new();
        let db = fake.dir().join("db");
        for sub in ["units", "active", "enabled", "stale", "static"] {
            std::fs::create_dir_all(db.join(sub)).unwrap();
        }
        for u in units {
            std::fs::write(db.join("units").join(u), "").unwrap();
        }
        let db = db.display().to_string();
        fake.tool(
            "systemctl",
            &format!(
                r#"db={db}
case "$1" in is-system-running|show|is-active|is-enabled) ;; *) echo "$*" >> "$db/log" ;; esac
for u; do :; done
case "$1" in
  is-system-running) echo running ;;
  show)
    while [ $# -gt 1 ]; do
      if [ "$1" = -p ]; then case "$2" in
        LoadState) [ -e "$db/units/$u" ] && echo LoadState=loaded || echo LoadState=not-found ;;
        ActiveState) [ -e "$db/active/$u" ] && echo ActiveState=active || echo ActiveState=inactive ;;
        NeedDaemonReload) [ -e "$db/stale/$u" ] && echo NeedDaemonReload=yes || echo NeedDaemonReload=no ;;
      esac; fi
      shift
    done ;;
  is-active) if [ -e "$db/active/$u" ]; then [ "$2" = --quiet ] || echo active; else [ "$2" = --quiet ] || echo inactive; exit 3; fi ;;
  is-enabled) if [ -e "$db/static/$u" ]; then echo static; elif [ -e "$db/enabled/$u" ]; then echo enabled; else echo disabled; exit 1; fi ;;
  daemon-reload) rm -f "$db/stale/"* ;;
  start|restart) : > "$db/active/$u" ;;
  reload) ;;
  stop) rm -f "$db/active/$u" ;;
  enable) : > "$db/enabled/$u" ;;
  disable) rm -f "$db/enabled/$u" ;;
esac
exit 0"#
            ),
        )
        .await;
        fake
    }

    fn log(fake: &FakeTools) -> Vec<String> {
        std::fs::read_to_string(fake.dir().join("db/log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[tokio::test]
    async fn starts_and_enables_then_plans_nothing() {
        let fake = fake_systemd(&["app.service"]).await;
        let r = res(
            KIND,
            json!({"name": "app.service", "state": "started", "enabled": true}),
        );
        let (first, second) = converge(r.as_ref(), &fake).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(
            first.details,
            vec!["enable (is disabled)", "start (is inactive)"]
        );
        assert_eq!(second.action, Action::None);
        assert_eq!(log(&fake), vec!["enable app.service", "start app.service"]);

        let r = res(
            KIND,
            json!({"name": "app.service", "state": "stopped", "enabled": true}),
        );
        let (first, second) = converge(r.as_ref(), &fake).await;
        assert_eq!(first.details, vec!["stop (is active)"]);
        assert_eq!(second.action, Action::None);
    }

    /// Apply runs the commands the plan decided, not a second decision in shell: the unit started by
    /// someone between plan and apply still gets the planned (idempotent) start, and nothing else.
    #[tokio::test]
    async fn apply_runs_exactly_the_planned_commands() {
        let fake = fake_systemd(&["app.service"]).await;
        let r = res(
            KIND,
            json!({"name": "app.service", "state": "started", "enabled": true}),
        );
        let change = plan_now(r.as_ref(), &fake).await.unwrap();
        assert_eq!(
            change.details,
            vec!["enable (is disabled)", "start (is inactive)"]
        );
        std::fs::write(fake.dir().join("db/active/app.service"), "").unwrap();
        std::fs::write(fake.dir().join("db/enabled/app.service"), "").unwrap();
        r.apply(&change, &fake).await.unwrap();
        assert_eq!(log(&fake), vec!["enable app.service", "start app.service"]);
    }

    #[tokio::test]
    async fn restarted_and_reloaded_always_run() {
        let fake = fake_systemd(&["app"]).await;
        std::fs::write(fake.dir().join("db/active/app"), "").unwrap();
        for (state, detail, call) in [
            ("restarted", "restart", "restart app"),
            ("reloaded", "reload", "reload app"),
        ] {
            let r = res(KIND, json!({"name": "app", "state": state}));
            let (first, second) = converge(r.as_ref(), &fake).await;
            assert_eq!(first.action, Action::Run);
            assert_eq!(first.details, vec![detail]);
            assert_eq!(second.action, Action::Run);
            assert_eq!(log(&fake).last().map(String::as_str), Some(call));
        }
    }

    #[tokio::test]
    async fn plan_expects_a_daemon_reload_after_an_earlier_task_writes_a_unit_file() {
        use super::super::{Attrs, Effect, HostView};
        let fake = fake_systemd(&["app"]).await;
        std::fs::write(fake.dir().join("db/active/app"), "").unwrap();
        let r = res(
            KIND,
            json!({"name": "app", "state": "started", "daemon_reload": true}),
        );
        let facts = super::super::testkit::probe_now(r.as_ref(), &fake)
            .await
            .unwrap();
        let mut view = HostView::default();
        assert!(!r.plan_in(&facts, &view).unwrap().unwrap().is_pending());
        view.record(vec![Effect::Write {
            path: "/etc/systemd/system/app.service".into(),
            content: Some(b"[Service]\n".to_vec()),
            attrs: Attrs::default(),
        }]);
        let change = r.plan_in(&facts, &view).unwrap().unwrap();
        assert_eq!(
            change.details,
            vec!["daemon-reload (unit files changed on disk)"]
        );
    }

    #[tokio::test]
    async fn a_missing_unit_after_an_earlier_package_install_is_known_after_apply() {
        use super::super::{Effect, HostView};
        let fake = fake_systemd(&[]).await;
        let r = res(KIND, json!({"name": "nginx", "state": "started"}));
        let facts = super::super::testkit::probe_now(r.as_ref(), &fake)
            .await
            .unwrap();
        let mut view = HostView::default();
        assert!(r.plan_in(&facts, &view).unwrap().is_some());
        view.record(vec![Effect::Other]);
        assert!(r.plan_in(&facts, &view).unwrap().is_none());
    }

    #[tokio::test]
    async fn daemon_reload_runs_first_and_only_when_unit_files_changed() {
        let fake = fake_systemd(&["app"]).await;
        std::fs::write(fake.dir().join("db/stale/app"), "").unwrap();
        let r = res(
            KIND,
            json!({"name": "app", "state": "started", "daemon_reload": true}),
        );
        let (first, second) = converge(r.as_ref(), &fake).await;
        assert_eq!(
            first.details,
            vec![
                "daemon-reload (unit files changed on disk)",
                "start (is inactive)"
            ]
        );
        assert_eq!(second.action, Action::None);
        assert_eq!(log(&fake), vec!["daemon-reload", "start app"]);
    }

    #[tokio::test]
    async fn a_missing_unit_fails_at_apply_unless_only_stopped() {
        let fake = fake_systemd(&[]).await;
        let r = res(KIND, json!({"name": "ghost", "state": "started"}));
        let change = plan_now(r.as_ref(), &fake).await.unwrap();
        assert_eq!(change.action, Action::Update);
        assert_eq!(
            change.details,
            vec![
                "unit ghost not found (yet): apply fails unless an earlier task installs it",
                "start"
            ]
        );
        let err = r.apply(&change, &fake).await.unwrap_err().to_string();
        assert!(err.contains("unit ghost not found"), "{err}");
        let r = res(
            KIND,
            json!({"name": "ghost", "state": "stopped", "enabled": false}),
        );
        assert_eq!(
            plan_now(r.as_ref(), &fake).await.unwrap().action,
            Action::None
        );
    }

    #[tokio::test]
    async fn a_static_unit_is_not_disabled() {
        let fake = fake_systemd(&["dep"]).await;
        std::fs::write(fake.dir().join("db/static/dep"), "").unwrap();
        let r = res(KIND, json!({"name": "dep", "enabled": false}));
        assert_eq!(
            plan_now(r.as_ref(), &fake).await.unwrap().action,
            Action::None
        );
    }

    /// This machine runs no systemd (PID 1 is something else): the real probe must say so, read-only.
    #[tokio::test]
    async fn without_systemd_plan_fails_and_says_why() {
        if std::path::Path::new("/run/systemd/system").exists() {
            return;
        }
        let t = LocalTransport::new("t");
        let r = res(KIND, json!({"name": "ssh", "state": "started"}));
        let err = plan_now(r.as_ref(), &t).await.unwrap_err().to_string();
        assert!(err.contains("systemd is not running"), "{err}");
    }

    #[test]
    fn bad_arguments_name_the_field() {
        bad_args(KIND, json!({"state": "started"}), "name");
        bad_args(KIND, json!({"name": "app"}), "state");
        bad_args(KIND, json!({"name": "a b", "state": "started"}), "name");
        bad_args(KIND, json!({"name": "-x", "state": "started"}), "name");
        bad_args(KIND, json!({"name": "app", "state": "running"}), "state");
        bad_args(KIND, json!({"name": "app", "enabled": "yes"}), "enabled");
        bad_args(
            KIND,
            json!({"name": "app", "state": "started", "masked": true}),
            "masked",
        );
    }
}
