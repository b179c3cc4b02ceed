//! `copy`: a file with exactly the given content (inline `content` or a controller `src` file). Also the
//! engine behind `template`, which only renders its content first.

use super::attrs::check_validate;
use super::checksum;
use super::format::{self, Format};
use super::{
    as_text, atomic_write_script, bad, is_key_material, parse_args, sha256_hex, Action, Attrs,
    BuildCtx, Change, ContentDiff, Effect, FileSim, Guard, HostView, Reads, Resource,
    ResourceError, Step, WholeFile,
};
use crate::transport::{sh_quote, Facts};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

/// Largest current file the probe sends back for a diff; bigger files get a checksum line only.
const DIFF_LIMIT: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    dest: String,
    content: Option<String>,
    src: Option<String>,
    /// Checks the controller `src` (empty: no check, so a module can pass an unset variable).
    sha256: Option<String>,
    validate: Option<String>,
    format: Option<Format>,
    #[serde(flatten)]
    attrs: Attrs,
}

/// A file whose whole content is known on the controller.
pub struct Copy {
    kind: &'static str,
    dest: String,
    content: Vec<u8>,
    sha: String,
    attrs: Attrs,
    validate: Option<String>,
    /// Key material, or rendered from a secret: the plan shows sizes, line counts and checksums only.
    sensitive: bool,
}

impl Copy {
    /// A file at `dest` with `content`; `kind` names the task type in messages.
    pub fn new(
        kind: &'static str,
        dest: String,
        content: Vec<u8>,
        attrs: Attrs,
        validate: Option<String>,
    ) -> Result<Self, ResourceError> {
        if !dest.starts_with('/') {
            return Err(bad(kind, format!("dest `{dest}` must be an absolute path")));
        }
        check_validate(kind, &validate)?;
        let sha = sha256_hex(&content);
        Ok(Self {
            kind,
            dest,
            sensitive: is_key_material(&content),
            content,
            sha,
            attrs,
            validate,
        })
    }

    /// Marks the content sensitive (the task reads a secret) on top of what its bytes say.
    pub fn sensitive(mut self, sensitive: bool) -> Self {
        self.sensitive |= sensitive;
        self
    }
}

pub(super) fn build(args: Value, ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args("copy", args)?;
    let sha256 = checksum::parse_optional("copy", &a.sha256)?;
    let (content, name, path) = match (a.content, a.src) {
        (Some(_), None) if sha256.is_some() => {
            return Err(bad(
                "copy",
                "sha256 checks a controller `src`, not `content`",
            ))
        }
        (Some(c), None) => (c.into_bytes(), a.dest.clone(), None),
        (None, Some(src)) => {
            let path = ctx.find("files", &src).map_err(|e| bad("copy", e))?;
            let bytes = std::fs::read(&path)
                .map_err(|e| bad("copy", format!("reading {}: {e}", path.display())))?;
            (bytes, src, Some(path))
        }
        _ => return Err(bad("copy", "exactly one of `content` or `src` is required")),
    };
    format::check("copy", &name, a.format, &content)?;
    let copy = Copy::new("copy", a.dest, content, a.attrs, a.validate)?.sensitive(ctx.sensitive);
    if let (Some(want), Some(path)) = (&sha256, &path) {
        checksum::expect("copy", path, &copy.sha, want)?;
    }
    Ok(Box::new(copy))
}

impl Copy {
    /// The directory the file goes into, which must exist: the atomic write makes its temp file there.
    fn parent(&self) -> String {
        match std::path::Path::new(&self.dest).parent() {
            Some(p) if !p.as_os_str().is_empty() => p.display().to_string(),
            _ => "/".into(),
        }
    }

    /// The atomic write of the whole content, guarded by what the probe saw at `dest` (its sha256, or
    /// nothing there). Attribute-only changes rewrite the file too: one atomic path is simpler than two
    /// and the content is identical, so the result cannot differ.
    fn write_step(&self, facts: &Facts) -> Step {
        let guard = match facts.get("type") {
            Some("file") => facts.get("sha256").map(|sha| Guard::File {
                path: self.dest.clone(),
                sha256: Some(sha.to_string()),
            }),
            Some("link") => None,
            _ => Some(Guard::File {
                path: self.dest.clone(),
                sha256: None,
            }),
        };
        Step::run(
            format!("writing {}", self.dest),
            guard.into_iter().collect(),
            atomic_write_script(
                &self.dest,
                &self.content,
                &self.attrs,
                self.validate.as_deref(),
            ),
        )
    }
}

#[async_trait]
impl Resource for Copy {
    fn describe(&self) -> String {
        format!("{} {}", self.kind, self.dest)
    }

    fn probe(&self) -> String {
        let d = sh_quote(&self.dest);
        format!(
            "fact_stat {d}\nif [ -f {d} ] && [ ! -L {d} ]; then s=$(sha256sum < {d}); s=${{s%% *}}; fact sha256 \"$s\"; \
             if [ \"$s\" != {sha} ] && [ \"$(stat -c %s {d})\" -le {DIFF_LIMIT} ]; then fact_b64 old {d}; fi; fi\n\
             [ -d {parent} ] || fact parent absent",
            sha = self.sha,
            parent = sh_quote(&self.parent()),
        )
    }

    fn reads(&self) -> Reads {
        Reads::Paths(vec![self.dest.clone()])
    }

    fn whole_file(&self) -> Option<WholeFile<'_>> {
        Some(WholeFile {
            dest: &self.dest,
            content: &self.content,
            attrs: &self.attrs,
            sensitive: self.sensitive,
            sha256: &self.sha,
        })
    }

    fn effects(&self, _change: &Change) -> Vec<Effect> {
        // Sensitive content is not handed on: a later edit of the file would diff against it, so that
        // edit is known after apply instead.
        vec![Effect::Write {
            path: self.dest.clone(),
            content: (!self.sensitive).then(|| self.content.clone()),
            attrs: self.attrs.clone(),
        }]
    }

    fn plan_in(&self, facts: &Facts, view: &HostView) -> Result<Option<Change>, ResourceError> {
        let facts = match view.file(&self.dest, facts) {
            FileSim::AsProbed if facts.is("parent", "absent") => {
                if view.dir_will_exist(&self.parent()) {
                    let mut f = facts.clone();
                    f.unset("parent");
                    f
                } else if view.opaque() {
                    // A package or command of an earlier task may well make the missing directory.
                    return Ok(None);
                } else {
                    facts.clone()
                }
            }
            FileSim::AsProbed => facts.clone(),
            FileSim::Absent => Facts::absent(),
            FileSim::File { mut facts, content } => {
                let sha = sha256_hex(&content);
                if sha != self.sha && content.len() as u64 <= DIFF_LIMIT {
                    facts.set_bytes("old", &content);
                }
                facts.set("sha256", &sha);
                facts
            }
            FileSim::Unknown => return Ok(None),
        };
        self.plan(&facts).map(Some)
    }

    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        if facts.is("parent", "absent") {
            return Err(ResourceError::Failed(format!(
                "directory {} does not exist (create it with an earlier `file` task, state: directory)",
                self.parent()
            )));
        }
        let new_text = as_text(&self.content);
        let (action, mut details, old) = match facts.get("type") {
            Some("absent") | None => (
                Action::Create,
                vec![format!("create file ({} bytes)", self.content.len())],
                Some(Vec::new()),
            ),
            Some("file") | Some("link") if facts.is("sha256", &self.sha) => {
                (Action::None, vec![], None)
            }
            Some("file") => (
                Action::Update,
                vec!["content changes".into()],
                facts.bytes("old"),
            ),
            Some("link") => (
                Action::Update,
                vec!["replace symlink with a file".into()],
                Some(Vec::new()),
            ),
            Some(other) => {
                return Err(ResourceError::Failed(format!(
                    "{} exists and is a {other}",
                    self.dest
                )))
            }
        };
        let mut change = Change::new(action, Vec::new());
        change.sensitive = self.sensitive;
        if action != Action::Create {
            details.extend(self.attrs.changes(facts));
        }
        if action != Action::None {
            change.diff = match (old.as_deref().map(as_text), new_text) {
                (Some(Some(old)), Some(new)) if self.sensitive => {
                    let d = ContentDiff {
                        path: self.dest.clone(),
                        old,
                        new,
                    };
                    details.extend(d.sensitive_summary());
                    None
                }
                (Some(Some(old)), Some(new)) => Some(ContentDiff {
                    path: self.dest.clone(),
                    old,
                    new,
                }),
                _ => {
                    details.push(format!(
                        "content sha256 {} -> {}",
                        facts.get("sha256").unwrap_or("-"),
                        self.sha
                    ));
                    None
                }
            };
        } else if !details.is_empty() {
            change.action = Action::Update;
        }
        change.details = details;
        change
            .result
            .insert("dest".into(), self.dest.clone().into());
        change
            .result
            .insert("sha256".into(), self.sha.clone().into());
        if change.is_pending() {
            change.steps.push(self.write_step(facts));
        }
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, converge, file_with, mode_of, plan_now, read, res};
    use super::super::Action;
    use crate::transport::LocalTransport;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    /// Apply writes what plan diffed against: an operator's edit made in between is refused, not lost.
    #[tokio::test]
    async fn a_file_edited_between_plan_and_apply_is_refused_not_overwritten() {
        let t = LocalTransport::new("t");
        let (_d, dest) = file_with("a=0\n");
        let r = res("copy", json!({"dest": dest, "content": "a=1\n"}));
        let change = plan_now(r.as_ref(), &t).await.unwrap();
        std::fs::write(&dest, "a=0\nmine=1\n").unwrap();
        let err = r.apply(&change, &t).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("{dest} changed on the host since it was probed")),
            "{err}"
        );
        assert_eq!(read(&dest), "a=0\nmine=1\n");
    }

    #[tokio::test]
    async fn creates_the_file_then_plans_nothing() {
        let t = LocalTransport::new("t");
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("app.conf").display().to_string();
        let r = res(
            "copy",
            json!({"dest": dest, "content": "a=1\n", "mode": "0640"}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(first.details, vec!["create file (4 bytes)"]);
        assert_eq!(first.diff.as_ref().unwrap().new, "a=1\n");
        assert_eq!(second.action, Action::None);
        assert_eq!(read(&dest), "a=1\n");
        let m = mode_of(&dest);
        assert_eq!(m, 0o640);
    }

    #[tokio::test]
    async fn changed_content_is_diffed_and_a_mode_change_alone_has_no_diff() {
        let t = LocalTransport::new("t");
        let (_d, dest) = file_with("a=1\nb=2\n");
        let r = res("copy", json!({"dest": dest, "content": "a=1\nb=3\n"}));
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(first.details, vec!["content changes"]);
        let diff = first.diff.unwrap();
        assert_eq!(
            (diff.old.as_str(), diff.new.as_str()),
            ("a=1\nb=2\n", "a=1\nb=3\n")
        );
        assert_eq!(second.action, Action::None);
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o644)).unwrap();
        let r = res(
            "copy",
            json!({"dest": dest, "content": "a=1\nb=3\n", "mode": "0600"}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.details, vec!["mode 0644 -> 0600"]);
        assert!(first.diff.is_none());
        assert_eq!(second.action, Action::None);
        assert_eq!(read(&dest), "a=1\nb=3\n");
    }

    #[tokio::test]
    async fn a_controller_src_is_copied_and_binary_content_is_shown_by_checksum() {
        let t = LocalTransport::new("t");
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("blob.bin");
        std::fs::write(&src, [0u8, 159, 146, 150]).unwrap();
        let dest = d.path().join("out.bin").display().to_string();
        let r = res(
            "copy",
            json!({"dest": dest, "src": src.display().to_string()}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert!(first.diff.is_none());
        assert!(
            first
                .details
                .iter()
                .any(|l| l.starts_with("content sha256 - -> ")),
            "{:?}",
            first.details
        );
        assert_eq!(second.action, Action::None);
        assert_eq!(std::fs::read(&dest).unwrap(), [0u8, 159, 146, 150]);
    }

    #[tokio::test]
    async fn a_failing_validate_leaves_the_old_file_and_no_temp_file() {
        let t = LocalTransport::new("t");
        let (d, dest) = file_with("good\n");
        let r = res(
            "copy",
            json!({"dest": dest, "content": "bad\n", "validate": "grep -q good %s"}),
        );
        let change = plan_now(r.as_ref(), &t).await.unwrap();
        let err = r.apply(&change, &t).await.unwrap_err().to_string();
        assert!(err.contains(&dest), "{err}");
        assert_eq!(read(&dest), "good\n");
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "a temp file was left behind");
    }

    #[tokio::test]
    async fn key_material_is_sensitive_whatever_its_source() {
        let t = LocalTransport::new("t");
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let (_d, dest) = file_with("old\n");
        let (_s, src) = file_with(&key);
        for args in [
            json!({"dest": dest, "content": key}),
            json!({"dest": dest, "src": src}),
        ] {
            std::fs::write(&dest, "old\n").unwrap();
            let r = res("copy", args);
            let (first, second) = converge(r.as_ref(), &t).await;
            assert!(
                first.sensitive && first.diff.is_none(),
                "{:?}",
                first.details
            );
            assert!(first
                .details
                .iter()
                .any(|d| d.starts_with("(sensitive content, ")));
            assert!(!format!("{:?}", first.details).contains("PRIVATE"));
            assert_eq!(second.action, Action::None);
            assert_eq!(read(&dest), key);
        }
    }

    #[test]
    fn bad_arguments_name_the_field() {
        bad_args("copy", json!({"content": "x"}), "dest");
        bad_args("copy", json!({"dest": "rel", "content": "x"}), "dest");
        bad_args("copy", json!({"dest": "/x"}), "content");
        bad_args(
            "copy",
            json!({"dest": "/x", "content": "x", "src": "/y"}),
            "src",
        );
        bad_args(
            "copy",
            json!({"dest": "/x", "src": "/nonexistent/y"}),
            "/nonexistent/y",
        );
        bad_args(
            "copy",
            json!({"dest": "/x", "content": "x", "validate": "true"}),
            "validate",
        );
        bad_args(
            "copy",
            json!({"dest": "/x", "content": "x", "mode": "rw"}),
            "mode",
        );
        let (_d, src) = file_with("driver");
        let pinned = |sha: &str| json!({"dest": "/x", "src": src, "sha256": sha});
        res("copy", pinned(&crate::resources::sha256_hex(b"driver")));
        let e = bad_args("copy", pinned(&"0".repeat(64)), &src);
        assert!(e.contains("not the expected"), "{e}");
        bad_args(
            "copy",
            json!({"dest": "/x", "content": "x", "sha256": "0".repeat(64)}),
            "sha256",
        );
    }
}
