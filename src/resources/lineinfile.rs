//! `lineinfile`: one line of a text file present (optionally replacing the line a regex finds) or absent,
//! with Ansible's semantics so playbooks port over unchanged. The new content is computed on the controller,
//! so plan shows the exact diff apply writes.

use super::edit::TextEditor;
use super::edit::{body, insert, lines, regex, Anchor, Edit, TextFile};
use super::Presence as State;
use super::{bad, parse_args, Attrs, BuildCtx, Resource, ResourceError};
use regex::bytes::Regex;
use serde::Deserialize;
use serde_json::Value;

const KIND: &str = "lineinfile";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(alias = "dest")]
    path: String,
    line: Option<String>,
    #[serde(alias = "regex")]
    regexp: Option<String>,
    #[serde(default)]
    state: State,
    insertafter: Option<String>,
    insertbefore: Option<String>,
    #[serde(default)]
    create: bool,
    validate: Option<String>,
    #[serde(flatten)]
    attrs: Attrs,
}

struct LineInFile {
    file: TextFile,
    state: State,
    line: Option<String>,
    regexp: Option<Regex>,
    anchor: Anchor,
}

/// The `lineinfile` entry of `TYPES`: checks line, regexp and anchors before any host is touched.
pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    if a.line.as_deref().is_some_and(|l| l.contains(['\n', '\r'])) {
        return Err(bad(
            KIND,
            "`line` must be a single line (use blockinfile for several)",
        ));
    }
    let regexp = match a.regexp.as_deref() {
        Some("") => return Err(bad(KIND, "`regexp` is empty and would match every line")),
        Some(r) => Some(regex(KIND, "regexp", r)?),
        None => None,
    };
    match (a.state, &a.line, &regexp) {
        (State::Present, None, _) => return Err(bad(KIND, "state: present needs `line`")),
        (State::Absent, None, None) => {
            return Err(bad(KIND, "state: absent needs `line` or `regexp`"))
        }
        _ => {}
    }
    let anchor = Anchor::parse(KIND, a.insertafter.as_deref(), a.insertbefore.as_deref())?;
    let file = TextFile::new(
        KIND,
        a.path,
        Some(a.create),
        a.state == State::Absent,
        a.attrs,
        a.validate,
    )?;
    Ok(Box::new(LineInFile {
        file,
        state: a.state,
        line: a.line,
        regexp,
        anchor,
    }))
}

impl LineInFile {
    /// Ansible's rules. Present: with `regexp`, the last matching line becomes `line`; otherwise (or when
    /// nothing matches) the line is left alone if it already exists verbatim, else inserted at the anchor.
    /// Absent: every line matching `regexp` (or equal to `line`) goes.
    fn edit(&self, old: &[u8]) -> Edit {
        let mut lines = lines(old);
        let mut details = Vec::new();
        let line = self.line.as_deref().unwrap_or_default().as_bytes();
        match self.state {
            State::Absent => {
                let before = lines.len();
                lines.retain(|l| match &self.regexp {
                    Some(re) => !re.is_match(body(l)),
                    None => body(l) != line,
                });
                match before - lines.len() {
                    0 => {}
                    1 => details.push("remove 1 line".to_string()),
                    n => details.push(format!("remove {n} lines")),
                }
            }
            State::Present => {
                let hit = self
                    .regexp
                    .as_ref()
                    .and_then(|re| lines.iter().rposition(|l| re.is_match(body(l))));
                if let Some(i) = hit {
                    let cur = &lines[i];
                    if body(cur) != line {
                        let ending = cur[body(cur).len()..].to_vec();
                        lines[i] = [line, &ending].concat();
                        details.push(format!("replace line {}", i + 1));
                    }
                } else if !lines.iter().any(|l| body(l) == line) {
                    let at = self.anchor.index(&lines);
                    insert(&mut lines, at, &[line]);
                    details.push(format!("insert line {}", at + 1));
                }
            }
        }
        Edit {
            content: lines.concat(),
            details,
        }
    }
}

impl TextEditor for LineInFile {
    fn file(&self) -> &TextFile {
        &self.file
    }

    fn edit(&self, old: &[u8]) -> Result<Edit, ResourceError> {
        Ok(LineInFile::edit(self, old))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, converge, file_with, plan_now, read, res};
    use super::super::{Action, ResourceError};
    use super::KIND;
    use crate::transport::{LocalTransport, ProbeBatch};
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn appends_a_missing_line_then_plans_nothing() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with("a\nb\n");
        let r = res(KIND, json!({"path": path, "line": "c"}));
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(first.details, vec!["insert line 3"]);
        let diff = first.diff.expect("text diff");
        assert_eq!(
            (diff.old.as_str(), diff.new.as_str()),
            ("a\nb\n", "a\nb\nc\n")
        );
        assert_eq!(second.action, Action::None);
        assert_eq!(read(&path), "a\nb\nc\n");
    }

    #[tokio::test]
    async fn regexp_replaces_only_the_last_matching_line() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with("Port 22\n# x\nPort 2222\nend\n");
        let r = res(
            KIND,
            json!({"path": path, "regexp": "^Port ", "line": "Port 8022"}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.details, vec!["replace line 3"]);
        assert_eq!(second.action, Action::None);
        assert_eq!(read(&path), "Port 22\n# x\nPort 8022\nend\n");
    }

    #[tokio::test]
    async fn unmatched_regexp_inserts_at_the_anchor() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with("[main]\nx=1\n[other]\n");
        let after = res(
            KIND,
            json!({"path": path, "regexp": "^y=", "line": "y=2", "insertafter": "^x="}),
        );
        let (first, _) = converge(after.as_ref(), &t).await;
        assert_eq!(first.details, vec!["insert line 3"]);
        let before = res(
            KIND,
            json!({"path": path, "line": "# managed", "insertbefore": "BOF"}),
        );
        converge(before.as_ref(), &t).await;
        let nowhere = res(
            KIND,
            json!({"path": path, "line": "z=3", "insertbefore": "^no such line"}),
        );
        converge(nowhere.as_ref(), &t).await;
        assert_eq!(read(&path), "# managed\n[main]\nx=1\ny=2\n[other]\nz=3\n");
    }

    #[tokio::test]
    async fn a_line_already_present_is_not_added_when_the_regexp_misses() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with("keep\nwanted\n");
        let r = res(
            KIND,
            json!({"path": path, "regexp": "^nothing", "line": "wanted"}),
        );
        assert_eq!(plan_now(r.as_ref(), &t).await.unwrap().action, Action::None);
    }

    #[tokio::test]
    async fn absent_removes_every_matching_line() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with("a=1\nb=2\na=3\n");
        let r = res(
            KIND,
            json!({"path": path, "regexp": "^a=", "state": "absent"}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.details, vec!["remove 2 lines"]);
        assert_eq!(second.action, Action::None);
        assert_eq!(read(&path), "b=2\n");
        let missing = res(
            KIND,
            json!({"path": format!("{path}.nope"), "line": "x", "state": "absent"}),
        );
        assert_eq!(
            plan_now(missing.as_ref(), &t).await.unwrap().action,
            Action::None
        );
    }

    #[tokio::test]
    async fn crlf_endings_and_a_missing_final_newline_are_kept() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with("a=1\r\nb=2");
        let r = res(KIND, json!({"path": path, "regexp": "^a=", "line": "a=9"}));
        converge(r.as_ref(), &t).await;
        assert_eq!(read(&path), "a=9\r\nb=2");
        let add = res(KIND, json!({"path": path, "line": "c=3"}));
        converge(add.as_ref(), &t).await;
        assert_eq!(read(&path), "a=9\r\nb=2\nc=3\n");
    }

    #[tokio::test]
    async fn a_missing_file_needs_create() {
        let t = LocalTransport::new("t");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/new.conf").display().to_string();
        let r = res(KIND, json!({"path": path, "line": "x"}));
        let err = plan_now(r.as_ref(), &t).await.unwrap_err().to_string();
        assert!(err.contains("does not exist (set create: true)"), "{err}");
        let r = res(
            KIND,
            json!({"path": path, "line": "x", "create": true, "mode": "0600"}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(
            first.details,
            vec!["create file", "insert line 1", "mode - -> 0600"]
        );
        assert_eq!(second.action, Action::None);
        assert_eq!(read(&path), "x\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o600);
    }

    #[tokio::test]
    async fn a_mode_change_alone_is_exactly_that_change() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with("a\n");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let r = res(KIND, json!({"path": path, "line": "a", "mode": "0640"}));
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(first.details, vec!["mode 0644 -> 0640"]);
        assert!(first.diff.is_none());
        assert_eq!(second.action, Action::None);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o640);
        assert_eq!(read(&path), "a\n");
    }

    #[tokio::test]
    async fn the_target_of_a_symlink_is_edited_and_the_link_kept() {
        let t = LocalTransport::new("t");
        let (dir, target) = file_with("a\n");
        let link = dir.path().join("link").display().to_string();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let r = res(KIND, json!({"path": link, "line": "b"}));
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.diff.unwrap().path, target);
        assert_eq!(second.action, Action::None);
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(read(&target), "a\nb\n");
    }

    #[tokio::test]
    async fn a_change_planned_before_the_file_changed_is_refused_then_replanned_it_lands() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with("a\n");
        let one = res(KIND, json!({"path": path, "line": "one"}));
        let two = res(KIND, json!({"path": path, "line": "two"}));
        let mut batch = ProbeBatch::default();
        batch.push(one.probe());
        batch.push(two.probe());
        let answers = batch.run(&t).await.unwrap();
        let plan_one = one.plan(&answers[0].facts).unwrap();
        let plan_two = two.plan(&answers[1].facts).unwrap();
        one.apply(&plan_one, &t).await.unwrap();
        let err = two.apply(&plan_two, &t).await.unwrap_err();
        assert!(
            matches!(&err, ResourceError::Stale { message, .. }
                if message == &format!("{path} changed on the host since it was probed; run plan again")),
            "{err}"
        );
        assert_eq!(
            read(&path),
            "a\none\n",
            "the stale write must not undo the first edit"
        );
        let fresh = plan_now(two.as_ref(), &t).await.unwrap();
        two.apply(&fresh, &t).await.unwrap();
        assert_eq!(read(&path), "a\none\ntwo\n");
    }

    #[tokio::test]
    async fn a_failing_validate_leaves_the_file_alone() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with("a\n");
        let r = res(
            KIND,
            json!({"path": path, "line": "b", "validate": "grep -q nothing %s"}),
        );
        let change = plan_now(r.as_ref(), &t).await.unwrap();
        let err = r.apply(&change, &t).await.unwrap_err().to_string();
        assert!(err.contains("validation failed"), "{err}");
        assert_eq!(read(&path), "a\n");
    }

    #[test]
    fn bad_arguments_name_the_field() {
        let p = "/tmp/x";
        bad_args(KIND, json!({"line": "x"}), "path");
        bad_args(KIND, json!({"path": "rel", "line": "x"}), "path");
        bad_args(KIND, json!({"path": p}), "line");
        bad_args(KIND, json!({"path": p, "line": "a\nb"}), "line");
        bad_args(KIND, json!({"path": p, "state": "absent"}), "regexp");
        bad_args(
            KIND,
            json!({"path": p, "line": "x", "regexp": "("}),
            "regexp",
        );
        bad_args(
            KIND,
            json!({"path": p, "line": "x", "regexp": ""}),
            "regexp",
        );
        bad_args(
            KIND,
            json!({"path": p, "line": "x", "insertafter": "a", "insertbefore": "b"}),
            "insertbefore",
        );
        bad_args(
            KIND,
            json!({"path": p, "line": "x", "state": "gone"}),
            "state",
        );
        bad_args(
            KIND,
            json!({"path": p, "line": "x", "validate": "true"}),
            "validate",
        );
        bad_args(KIND, json!({"path": p, "line": "x", "mode": "999"}), "mode");
        bad_args(KIND, json!({"path": p, "line": 5}), "line");
        bad_args(
            KIND,
            json!({"path": p, "line": "x", "create": "yes"}),
            "create",
        );
        bad_args(KIND, json!({"path": p, "line": "x", "bogus": 1}), "bogus");
    }
}
