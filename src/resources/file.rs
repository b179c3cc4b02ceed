//! `file`: a path that must be a directory, a regular file, a symlink, or absent, with mode and owner.

use super::{
    bad, parse_args, run_ok, Action, Attrs, BuildCtx, Change, Outcome, Resource, ResourceError,
};
use crate::transport::{sh_quote, Facts, Transport};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    /// A regular file; created empty when missing (`touch` is the same).
    #[serde(alias = "touch")]
    File,
    Directory,
    Link,
    Absent,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    path: String,
    #[serde(default = "default_state")]
    state: State,
    src: Option<String>,
    #[serde(flatten)]
    attrs: Attrs,
}

fn default_state() -> State {
    State::File
}

struct FileRes {
    args: Args,
}

pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args("file", args)?;
    if !a.path.starts_with('/') {
        return Err(bad("file", format!("path `{}` must be absolute", a.path)));
    }
    match (a.state, &a.src) {
        (State::Link, None) => {
            return Err(bad("file", "state: link needs `src` (the link target)"))
        }
        (State::Link, Some(_)) => {}
        (_, Some(_)) => return Err(bad("file", "`src` is only valid with state: link")),
        _ => {}
    }
    Ok(Box::new(FileRes { args: a }))
}

#[async_trait]
impl Resource for FileRes {
    fn describe(&self) -> String {
        format!("file {}", self.args.path)
    }

    fn probe(&self) -> String {
        format!("fact_stat {}", sh_quote(&self.args.path))
    }

    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        let a = &self.args;
        let cur = facts.get("type").unwrap_or("absent");
        let wrong = |what: &str| {
            Err(ResourceError::Failed(format!(
                "{} exists as a {cur}, not a {what}",
                a.path
            )))
        };
        let mut change = match (a.state, cur) {
            (State::Absent, "absent") => Change::none(),
            (State::Absent, _) => Change::new(Action::Delete, vec![format!("remove {cur}")]),
            (State::Directory, "absent") => {
                Change::new(Action::Create, vec!["create directory".into()])
            }
            (State::File, "absent") => {
                Change::new(Action::Create, vec!["create empty file".into()])
            }
            (State::Link, "absent") => Change::new(
                Action::Create,
                vec![format!("link -> {}", a.src.as_deref().unwrap_or_default())],
            ),
            (State::Link, "link") => {
                let want = a.src.as_deref().unwrap_or_default();
                let got = facts.get("link_target").unwrap_or_default();
                if want == got {
                    Change::none()
                } else {
                    Change::new(Action::Update, vec![format!("link {got} -> {want}")])
                }
            }
            (State::Link, "file") => {
                Change::new(Action::Update, vec!["replace file with a link".into()])
            }
            (State::Link, _) => return wrong("link"),
            (State::Directory, "directory") | (State::File, "file") => {
                let d = a.attrs.changes(facts);
                Change::new(
                    if d.is_empty() {
                        Action::None
                    } else {
                        Action::Update
                    },
                    d,
                )
            }
            (State::Directory, _) => return wrong("directory"),
            (State::File, _) => return wrong("file"),
        };
        if change.action == Action::Create && a.state != State::Link {
            change.details.extend(a.attrs.changes(&Facts::default()));
        }
        change.result.insert("path".into(), a.path.clone().into());
        Ok(change)
    }

    async fn apply(&self, change: &Change, host: &dyn Transport) -> Result<Outcome, ResourceError> {
        let a = &self.args;
        let p = sh_quote(&a.path);
        let script = match a.state {
            State::Absent => format!("rm -rf -- {p}"),
            State::Directory => format!("set -e\nmkdir -p -- {p}\n{}", a.attrs.script(&p)),
            State::File => format!("set -e\n[ -e {p} ] || : > {p}\n{}", a.attrs.script(&p)),
            State::Link => {
                let src = sh_quote(a.src.as_deref().unwrap_or_default());
                let own = match (&a.attrs.owner, &a.attrs.group) {
                    (Some(o), g) => format!(
                        "chown -h {} {p}\n",
                        sh_quote(&format!(
                            "{o}{}",
                            g.as_ref().map(|g| format!(":{g}")).unwrap_or_default()
                        ))
                    ),
                    _ => String::new(),
                };
                format!("set -e\nln -sfn {src} {p}\n{own}")
            }
        };
        run_ok(host, &format!("file {}", a.path), &script).await?;
        Ok(change.result.clone())
    }
}
