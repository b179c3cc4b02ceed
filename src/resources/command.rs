//! `command` and `shell`: run something on the host. They are idempotent only through their guards —
//! `creates` (skip when a path exists), `removes` (skip when it is absent), `unless` (skip when a read-only
//! check command succeeds) — which the probe evaluates, so a converged host plans nothing for them.

use super::{
    bad, parse_args, Action, BuildCtx, Change, Effect, Reads, Resource, ResourceError, Step,
};
use crate::transport::{sh_quote, Facts};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    cmd: Option<String>,
    argv: Option<Vec<String>>,
    chdir: Option<String>,
    creates: Option<String>,
    removes: Option<String>,
    unless: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

struct Command {
    kind: &'static str,
    /// The command line as the shell will run it.
    line: String,
    args: Args,
}

pub(super) fn build_command(
    args: Value,
    _ctx: &BuildCtx,
) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args("command", args)?;
    let words = match (&a.cmd, &a.argv) {
        (Some(c), None) => {
            shell_words::split(c).map_err(|e| bad("command", format!("cmd: {e}")))?
        }
        (None, Some(v)) => v.clone(),
        _ => return Err(bad("command", "exactly one of `cmd` or `argv` is required")),
    };
    if words.is_empty() {
        return Err(bad("command", "the command is empty"));
    }
    let line = words
        .iter()
        .map(|w| sh_quote(w))
        .collect::<Vec<_>>()
        .join(" ");
    finish("command", format!("exec {line}"), a)
}

pub(super) fn build_shell(
    args: Value,
    _ctx: &BuildCtx,
) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args("shell", args)?;
    let line = match (&a.cmd, &a.argv) {
        (Some(c), None) if !c.trim().is_empty() => c.clone(),
        _ => {
            return Err(bad(
                "shell",
                "`cmd` is required (and `argv` is for `command`)",
            ))
        }
    };
    finish("shell", line, a)
}

fn finish(
    kind: &'static str,
    line: String,
    args: Args,
) -> Result<Box<dyn Resource>, ResourceError> {
    for k in args.env.keys() {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad(
                kind,
                format!("env name `{k}` is not a valid variable name"),
            ));
        }
    }
    Ok(Box::new(Command { kind, line, args }))
}

impl Command {
    fn prologue(&self) -> String {
        let mut s = String::new();
        if let Some(d) = &self.args.chdir {
            s.push_str(&format!("cd {} || exit 1\n", sh_quote(d)));
        }
        for (k, v) in &self.args.env {
            s.push_str(&format!("export {k}={}\n", sh_quote(v)));
        }
        s
    }

    fn shown(&self) -> String {
        self.args
            .cmd
            .clone()
            .unwrap_or_else(|| self.args.argv.clone().unwrap_or_default().join(" "))
    }
}

#[async_trait]
impl Resource for Command {
    fn describe(&self) -> String {
        format!("{} {}", self.kind, self.shown())
    }

    fn probe(&self) -> String {
        let mut s = String::new();
        if let Some(c) = &self.args.creates {
            s.push_str(&format!(
                "if [ -e {q} ]; then fact skip {m}; fi\n",
                q = sh_quote(c),
                m = sh_quote(&format!("{c} exists"))
            ));
        }
        if let Some(r) = &self.args.removes {
            s.push_str(&format!(
                "if [ ! -e {q} ]; then fact skip {m}; fi\n",
                q = sh_quote(r),
                m = sh_quote(&format!("{r} does not exist"))
            ));
        }
        if let Some(u) = &self.args.unless {
            s.push_str(&format!(
                "if ( {pro}{u}\n ) >/dev/null 2>&1; then fact skip 'unless check succeeded'; fi\n",
                pro = self.prologue()
            ));
        }
        s.push_str("true");
        s
    }

    fn reads(&self) -> Reads {
        if self.args.unless.is_some() {
            return Reads::Anything;
        }
        let paths: Vec<String> = [&self.args.creates, &self.args.removes]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if paths.is_empty() {
            Reads::Nothing
        } else {
            Reads::Paths(paths)
        }
    }

    fn effects(&self, _change: &Change) -> Vec<Effect> {
        let mut out = vec![Effect::Other];
        if let Some(c) = &self.args.creates {
            out.push(Effect::Touch(c.clone()));
        }
        out
    }

    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        if let Some(why) = facts.get("skip") {
            let mut c = Change::none();
            c.result.insert("skipped".into(), true.into());
            c.result.insert("skip_reason".into(), why.into());
            return Ok(c);
        }
        Ok(
            Change::new(Action::Run, vec![format!("run: {}", self.shown())]).then(Step::Capture {
                what: format!("`{}`", self.shown()),
                guards: Vec::new(),
                script: format!("{}{}", self.prologue(), self.line),
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, plan_now, read, res};
    use super::super::Action;
    use crate::transport::LocalTransport;
    use serde_json::json;

    #[tokio::test]
    async fn runs_until_its_creates_guard_holds_then_plans_nothing() {
        let t = LocalTransport::new("t");
        let d = tempfile::tempdir().unwrap();
        let made = d.path().join("made").display().to_string();
        let r = res("command", json!({"argv": ["touch", made], "creates": made}));
        let first = plan_now(r.as_ref(), &t).await.unwrap();
        assert_eq!(first.action, Action::Run);
        assert_eq!(first.details, vec![format!("run: touch {made}")]);
        let out = r.apply(&first, &t).await.unwrap();
        assert_eq!(out["rc"], 0);
        let second = plan_now(r.as_ref(), &t).await.unwrap();
        assert_eq!(second.action, Action::None);
        assert_eq!(second.result["skip_reason"], format!("{made} exists"));
    }

    #[tokio::test]
    async fn changing_the_guard_alone_changes_the_plan() {
        let t = LocalTransport::new("t");
        let d = tempfile::tempdir().unwrap();
        let there = d.path().display().to_string();
        let gone = d.path().join("gone").display().to_string();
        let plan = |args| async {
            let r = res("shell", args);
            plan_now(r.as_ref(), &t).await.unwrap().action
        };
        assert_eq!(
            plan(json!({"cmd": "true", "removes": there})).await,
            Action::Run
        );
        assert_eq!(
            plan(json!({"cmd": "true", "removes": gone})).await,
            Action::None
        );
        assert_eq!(
            plan(json!({"cmd": "true", "unless": "test -d /"})).await,
            Action::None
        );
        assert_eq!(
            plan(json!({"cmd": "true", "unless": "test -d /nonexistent"})).await,
            Action::Run
        );
    }

    #[tokio::test]
    async fn shell_gets_chdir_env_and_pipes_and_a_failure_names_the_exit_code() {
        let t = LocalTransport::new("t");
        let d = tempfile::tempdir().unwrap();
        let r = res(
            "shell",
            json!({"cmd": "echo \"$GREETING\" | tr a-z A-Z > out; echo done",
                   "chdir": d.path().display().to_string(), "env": {"GREETING": "hi there"}}),
        );
        let c = plan_now(r.as_ref(), &t).await.unwrap();
        let out = r.apply(&c, &t).await.unwrap();
        assert_eq!(out["stdout"], "done");
        assert_eq!(
            read(&d.path().join("out").display().to_string()),
            "HI THERE\n"
        );
        let r = res("command", json!({"cmd": "sh -c 'echo oops >&2; exit 3'"}));
        let c = plan_now(r.as_ref(), &t).await.unwrap();
        let err = r.apply(&c, &t).await.unwrap_err().to_string();
        assert!(err.contains("exited 3") && err.contains("oops"), "{err}");
    }

    #[test]
    fn bad_arguments_name_the_field() {
        bad_args("command", json!({}), "cmd");
        bad_args("command", json!({"cmd": "a", "argv": ["a"]}), "argv");
        bad_args("command", json!({"cmd": "echo 'unclosed"}), "cmd");
        bad_args("command", json!({"argv": []}), "empty");
        bad_args("shell", json!({"argv": ["a"]}), "argv");
        bad_args("shell", json!({"cmd": "true", "env": {"A-B": "x"}}), "A-B");
        bad_args("shell", json!({"cmd": "true", "creats": "/x"}), "creats");
    }
}
