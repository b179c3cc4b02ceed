//! `blockinfile`: a block of lines between two marker lines, present or absent, with Ansible's semantics.
//! The markers are what make it idempotent: a re-run finds the block by them and replaces it in place.

use super::edit::TextEditor;
use super::edit::{body, insert, lines, Anchor, Edit, TextFile};
use super::Presence as State;
use super::{bad, parse_args, Attrs, BuildCtx, Resource, ResourceError};
use serde::Deserialize;
use serde_json::Value;

const KIND: &str = "blockinfile";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(alias = "dest")]
    path: String,
    #[serde(default, alias = "content")]
    block: String,
    #[serde(default = "default_marker")]
    marker: String,
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

fn default_marker() -> String {
    "# {mark} APIM-PROVISION MANAGED BLOCK".into()
}

struct BlockInFile {
    file: TextFile,
    begin: String,
    end: String,
    /// The block's lines; empty when the block is to be removed (state: absent or an empty block).
    block: Vec<String>,
    anchor: Anchor,
}

/// The `blockinfile` entry of `TYPES`: checks marker, block and anchors before any host is touched.
pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    if !a.marker.contains("{mark}") || a.marker.contains(['\n', '\r']) {
        return Err(bad(
            KIND,
            format!(
                "marker `{}` must be one line containing {{mark}} (BEGIN and END must differ)",
                a.marker
            ),
        ));
    }
    let begin = a.marker.replace("{mark}", "BEGIN");
    let end = a.marker.replace("{mark}", "END");
    // Ansible: an empty block with state present removes the block too.
    let block: Vec<String> = match a.state {
        State::Present => a.block.lines().map(str::to_string).collect(),
        State::Absent => Vec::new(),
    };
    if block.iter().any(|l| *l == begin || *l == end) {
        return Err(bad(
            KIND,
            "`block` contains one of its own marker lines, which would break it on the next run",
        ));
    }
    let anchor = Anchor::parse(KIND, a.insertafter.as_deref(), a.insertbefore.as_deref())?;
    let file = TextFile::new(
        KIND,
        a.path,
        Some(a.create),
        block.is_empty(),
        a.attrs,
        a.validate,
    )?;
    Ok(Box::new(BlockInFile {
        file,
        begin,
        end,
        block,
        anchor,
    }))
}

impl BlockInFile {
    /// Ansible's rules: when both markers are found (the last of each), everything from one to the other
    /// is replaced in place; otherwise the block goes at the anchor. Removing needs both markers.
    fn edit(&self, old: &[u8]) -> Edit {
        let mut lines = lines(old);
        let mut details = Vec::new();
        let find = |m: &str| lines.iter().rposition(|l| body(l) == m.as_bytes());
        let found = find(&self.begin).zip(find(&self.end));
        let new: Vec<&[u8]> = if self.block.is_empty() {
            Vec::new()
        } else {
            std::iter::once(self.begin.as_bytes())
                .chain(self.block.iter().map(|l| l.as_bytes()))
                .chain(std::iter::once(self.end.as_bytes()))
                .collect()
        };
        match found {
            Some((b, e)) => {
                let (lo, hi) = (b.min(e), b.max(e));
                let same = hi - lo + 1 == new.len()
                    && lines[lo..=hi].iter().zip(&new).all(|(l, n)| body(l) == *n);
                if !same {
                    lines.drain(lo..=hi);
                    insert(&mut lines, lo, &new);
                    details.push(if new.is_empty() {
                        format!("remove block (lines {}-{})", lo + 1, hi + 1)
                    } else {
                        format!("replace block (lines {}-{})", lo + 1, hi + 1)
                    });
                }
            }
            None if new.is_empty() => {}
            None => {
                let at = self.anchor.index(&lines);
                insert(&mut lines, at, &new);
                details.push(format!(
                    "insert block of {} line{} at line {}",
                    self.block.len(),
                    if self.block.len() == 1 { "" } else { "s" },
                    at + 1
                ));
            }
        }
        Edit {
            content: lines.concat(),
            details,
        }
    }
}

impl TextEditor for BlockInFile {
    fn file(&self) -> &TextFile {
        &self.file
    }

    fn edit(&self, old: &[u8]) -> Result<Edit, ResourceError> {
        Ok(BlockInFile::edit(self, old))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, converge, file_with, plan_now, read, res};
    use super::super::Action;
    use super::KIND;
    use crate::transport::LocalTransport;
    use serde_json::json;

    const B: &str = "# BEGIN APIM-PROVISION MANAGED BLOCK";
    const E: &str = "# END APIM-PROVISION MANAGED BLOCK";

    #[tokio::test]
    async fn inserts_the_block_then_plans_nothing() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with("a\nb");
        let r = res(KIND, json!({"path": path, "block": "x=1\ny=2\n"}));
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(first.details, vec!["insert block of 2 lines at line 3"]);
        assert_eq!(second.action, Action::None);
        assert_eq!(read(&path), format!("a\nb\n{B}\nx=1\ny=2\n{E}\n"));
    }

    #[tokio::test]
    async fn a_changed_block_is_replaced_in_place() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(&format!("top\n{B}\nold\n{E}\nbottom\n"));
        let r = res(
            KIND,
            json!({"path": path, "block": "new1\nnew2", "insertbefore": "BOF"}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.details, vec!["replace block (lines 2-4)"]);
        assert_eq!(second.action, Action::None);
        assert_eq!(read(&path), format!("top\n{B}\nnew1\nnew2\n{E}\nbottom\n"));
    }

    #[tokio::test]
    async fn the_anchor_places_a_new_block_and_custom_markers_are_used() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with("<a>\n</a>\n");
        let r = res(
            KIND,
            json!({"path": path, "block": "  <b/>", "insertbefore": "^</a>",
                   "marker": "<!-- {mark} managed -->"}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.details, vec!["insert block of 1 line at line 2"]);
        assert_eq!(second.action, Action::None);
        assert_eq!(
            read(&path),
            "<a>\n<!-- BEGIN managed -->\n  <b/>\n<!-- END managed -->\n</a>\n"
        );
    }

    #[tokio::test]
    async fn absent_and_an_empty_block_remove_it() {
        let t = LocalTransport::new("t");
        for args in [json!({"state": "absent"}), json!({"block": ""})] {
            let (_d, path) = file_with(&format!("a\n{B}\nx\n{E}\nb\n"));
            let mut args = args;
            args["path"] = path.clone().into();
            let r = res(KIND, args);
            let (first, second) = converge(r.as_ref(), &t).await;
            assert_eq!(first.details, vec!["remove block (lines 2-4)"]);
            assert_eq!(second.action, Action::None);
            assert_eq!(read(&path), "a\nb\n");
        }
        let gone = res(KIND, json!({"path": "/nonexistent/x", "state": "absent"}));
        assert_eq!(
            plan_now(gone.as_ref(), &t).await.unwrap().action,
            Action::None
        );
    }

    #[tokio::test]
    async fn create_makes_the_file_and_its_directory() {
        let t = LocalTransport::new("t");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d/f").display().to_string();
        let r = res(KIND, json!({"path": path, "block": "x"}));
        let err = plan_now(r.as_ref(), &t).await.unwrap_err().to_string();
        assert!(err.contains("does not exist (set create: true)"), "{err}");
        let r = res(KIND, json!({"path": path, "block": "x", "create": true}));
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(second.action, Action::None);
        assert_eq!(read(&path), format!("{B}\nx\n{E}\n"));
    }

    #[tokio::test]
    async fn changing_only_the_owner_changes_only_the_owner() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with("a\n");
        let r = res(KIND, json!({"path": path, "block": "x"}));
        converge(r.as_ref(), &t).await;
        let r = res(KIND, json!({"path": path, "block": "x", "owner": "nobody"}));
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.details, vec!["owner root -> nobody"]);
        assert_eq!(second.action, Action::None);
    }

    #[test]
    fn bad_arguments_name_the_field() {
        let p = "/tmp/x";
        bad_args(KIND, json!({"block": "x"}), "path");
        bad_args(KIND, json!({"path": "x", "block": "x"}), "path");
        bad_args(
            KIND,
            json!({"path": p, "block": "x", "marker": "# managed"}),
            "marker",
        );
        bad_args(
            KIND,
            json!({"path": p, "block": format!("a\n{B}")}),
            "block",
        );
        bad_args(KIND, json!({"path": p, "block": ["a"]}), "block");
        bad_args(
            KIND,
            json!({"path": p, "block": "x", "insertafter": "("}),
            "insertafter",
        );
        bad_args(
            KIND,
            json!({"path": p, "block": "x", "state": "on"}),
            "state",
        );
        bad_args(
            KIND,
            json!({"path": p, "block": "x", "backup": true}),
            "backup",
        );
    }
}
