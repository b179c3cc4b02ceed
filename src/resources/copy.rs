//! `copy`: a file with exactly the given content (inline `content` or a controller `src` file). Also the
//! engine behind `template`, which only renders its content first.

use super::attrs::check_validate;
use super::format::{self, Format};
use super::{
    as_text, atomic_write_script, bad, parse_args, run_ok, sha256_hex, Action, Attrs, BuildCtx,
    Change, ContentDiff, Outcome, Resource, ResourceError,
};
use crate::transport::{sh_quote, Facts, Transport};
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
            content,
            sha,
            attrs,
            validate,
        })
    }
}

pub(super) fn build(args: Value, ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args("copy", args)?;
    let (content, name) = match (a.content, a.src) {
        (Some(c), None) => (c.into_bytes(), a.dest.clone()),
        (None, Some(src)) => {
            let path = ctx.find("files", &src).map_err(|e| bad("copy", e))?;
            let bytes = std::fs::read(&path)
                .map_err(|e| bad("copy", format!("reading {}: {e}", path.display())))?;
            (bytes, src)
        }
        _ => return Err(bad("copy", "exactly one of `content` or `src` is required")),
    };
    format::check("copy", &name, a.format, &content)?;
    Ok(Box::new(Copy::new(
        "copy", a.dest, content, a.attrs, a.validate,
    )?))
}

#[async_trait]
impl Resource for Copy {
    fn describe(&self) -> String {
        format!("{} {}", self.kind, self.dest)
    }

    fn probe(&self) -> String {
        let d = sh_quote(&self.dest);
        format!(
            "fact_stat {d}\nif [ -f {d} ] && [ ! -L {d} ]; then s=$(sha256sum < {d} | cut -c1-64); fact sha256 \"$s\"; \
             if [ \"$s\" != {sha} ] && [ \"$(stat -c %s {d})\" -le {DIFF_LIMIT} ]; then fact_b64 old {d}; fi; fi",
            sha = self.sha
        )
    }

    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
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
        if action != Action::Create {
            details.extend(self.attrs.changes(facts));
        }
        if action != Action::None {
            change.diff = match (old.as_deref().map(as_text), new_text) {
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
        Ok(change)
    }

    async fn apply(&self, change: &Change, host: &dyn Transport) -> Result<Outcome, ResourceError> {
        // Attribute-only changes rewrite the file too: one atomic path is simpler than two and the
        // content is identical, so the result cannot differ.
        let script = atomic_write_script(
            &self.dest,
            &self.content,
            &self.attrs,
            self.validate.as_deref(),
        );
        run_ok(host, &format!("writing {}", self.dest), &script).await?;
        Ok(change.result.clone())
    }
}
