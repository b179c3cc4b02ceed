//! `file`: a path that must be a directory, a regular file, a symlink, or absent, with mode and owner.

use super::{
    bad, parse_args, Action, Attrs, BuildCtx, Change, Effect, FileSim, HostView, Reads, Resource,
    ResourceError, Step,
};
use crate::transport::{sh_quote, Facts};
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

impl FileRes {
    /// The script making the path what `state` says. No guard: every branch converges whatever is there
    /// now (`mkdir -p` or `install -d`, create only if missing, `ln -sfn`, `rm -rf`), and plan already refused the
    /// types it cannot turn into the wanted one.
    fn script(&self) -> String {
        let a = &self.args;
        let p = sh_quote(&a.path);
        match a.state {
            State::Absent => format!("rm -rf -- {p}"),
            State::Directory => match a.attrs.install_flags() {
                Some(flags) => format!("install -d {flags} -- {p}"),
                None => format!("set -e\nmkdir -p -- {p}\n{}", a.attrs.script(&p)),
            },
            State::File => match a.attrs.install_flags() {
                Some(flags) => format!(
                    "set -e\nif [ -e {p} ]; then\n{}else install {flags} /dev/null {p}; fi",
                    a.attrs.script(&p)
                ),
                None => format!("set -e\n[ -e {p} ] || : > {p}\n{}", a.attrs.script(&p)),
            },
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
        }
    }
}

#[async_trait]
impl Resource for FileRes {
    fn describe(&self) -> String {
        format!("file {}", self.args.path)
    }

    fn probe(&self) -> String {
        format!("fact_stat {}", sh_quote(&self.args.path))
    }

    fn reads(&self) -> Reads {
        Reads::Paths(vec![self.args.path.clone()])
    }

    fn effects(&self, change: &Change) -> Vec<Effect> {
        let path = self.args.path.clone();
        match (self.args.state, change.action) {
            (State::Directory, Action::Create) => vec![Effect::NewDir(path)],
            (State::File, Action::Create) => vec![Effect::Write {
                path,
                content: Some(Vec::new()),
                attrs: self.args.attrs.clone(),
            }],
            _ => vec![Effect::Touch(path)],
        }
    }

    fn plan_in(&self, facts: &Facts, view: &HostView) -> Result<Option<Change>, ResourceError> {
        match view.file(&self.args.path, facts) {
            FileSim::AsProbed => self.plan(facts).map(Some),
            FileSim::Absent => self.plan(&Facts::absent()).map(Some),
            FileSim::File { facts, .. } => self.plan(&facts).map(Some),
            FileSim::Unknown => Ok(None),
        }
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
        if change.is_pending() {
            change.steps.push(Step::run(
                format!("file {}", a.path),
                Vec::new(),
                self.script(),
            ));
        }
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, converge, mode_of, plan_now, res};
    use super::super::Action;
    use crate::transport::LocalTransport;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn creates_a_directory_with_its_mode_then_plans_nothing() {
        let t = LocalTransport::new("t");
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("a/b").display().to_string();
        let r = res(
            "file",
            json!({"path": path, "state": "directory", "mode": "0750"}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(first.details, vec!["create directory", "mode - -> 0750"]);
        assert_eq!(second.action, Action::None);
        assert!(std::path::Path::new(&path).is_dir());
        assert_eq!(mode_of(&path), 0o750);
    }

    #[tokio::test]
    async fn a_mode_change_alone_is_exactly_that_change_and_keeps_the_content() {
        let t = LocalTransport::new("t");
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("f").display().to_string();
        std::fs::write(&path, "keep me").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let r = res("file", json!({"path": path, "mode": "0600"}));
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(first.details, vec!["mode 0644 -> 0600"]);
        assert_eq!(second.action, Action::None);
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    }

    #[tokio::test]
    async fn a_link_is_made_then_retargeted() {
        let t = LocalTransport::new("t");
        let d = tempfile::tempdir().unwrap();
        let link = d.path().join("current").display().to_string();
        let r = res(
            "file",
            json!({"path": link, "state": "link", "src": "/opt/app-1"}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.details, vec!["link -> /opt/app-1"]);
        assert_eq!(second.action, Action::None);
        let r = res(
            "file",
            json!({"path": link, "state": "link", "src": "/opt/app-2"}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(first.details, vec!["link /opt/app-1 -> /opt/app-2"]);
        assert_eq!(second.action, Action::None);
        assert_eq!(
            std::fs::read_link(&link).unwrap().display().to_string(),
            "/opt/app-2"
        );
    }

    #[tokio::test]
    async fn absent_removes_a_tree_and_a_type_clash_is_an_error() {
        let t = LocalTransport::new("t");
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("tree");
        std::fs::create_dir_all(dir.join("x/y")).unwrap();
        let path = dir.display().to_string();
        let clash = res("file", json!({"path": path, "state": "file"}));
        let err = plan_now(clash.as_ref(), &t).await.unwrap_err().to_string();
        assert!(err.contains("exists as a directory, not a file"), "{err}");
        let r = res("file", json!({"path": path, "state": "absent"}));
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Delete);
        assert_eq!(first.details, vec!["remove directory"]);
        assert_eq!(second.action, Action::None);
        assert!(!dir.exists());
    }

    #[test]
    fn bad_arguments_name_the_field() {
        bad_args("file", json!({"state": "file"}), "path");
        bad_args("file", json!({"path": "rel/x"}), "path");
        bad_args("file", json!({"path": "/x", "state": "link"}), "src");
        bad_args("file", json!({"path": "/x", "src": "/y"}), "src");
        bad_args("file", json!({"path": "/x", "state": "dir"}), "state");
        bad_args("file", json!({"path": "/x", "mode": "0999"}), "mode");
        bad_args("file", json!({"path": "/x", "colour": "red"}), "colour");
    }
}
