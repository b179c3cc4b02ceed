//! What `lineinfile` and `blockinfile` share: the probe sends the file's content back, a pure function
//! computes the whole new content on the controller (so plan shows the exact diff), and apply writes
//! exactly that, atomically, unless the file changed since the probe. Kept in one place so both editors
//! treat missing files, symlinks, attributes and concurrent edits of the same file the same way.

use super::attrs::check_validate;
use super::{
    as_text, atomic_write_script, bad, sha256_hex, Action, Attrs, Change, ContentDiff, Effect,
    FileSim, Guard, HostView, Reads, Resource, ResourceError, Step,
};
use crate::transport::{sh_quote, Facts};
use regex::bytes::Regex;

/// Largest file the editors handle: its whole content travels back in the probe, base64-encoded.
const MAX_EDIT: u64 = 8 << 20;

/// The content an edit computes from the current one, with one line per thing it did
/// (`replace line 3`), for the plan.
pub(super) struct Edit {
    /// The whole new content.
    pub content: Vec<u8>,
    /// What changed; empty when the content is already right.
    pub details: Vec<String>,
}

/// Computes an [`Edit`] from the current content. Fallible because structured editors (`xml`,
/// `hosts_entry`) can find the current content unusable (not well-formed, no element at the path), which
/// must fail the plan rather than write anything.
pub(super) type EditFn<'a> = dyn Fn(&[u8]) -> Result<Edit, ResourceError> + Sync + 'a;

/// Where new text goes when the file holds nothing to replace (`insertafter` / `insertbefore`).
pub(super) enum Anchor {
    /// Before the first line.
    Bof,
    /// After the last line.
    Eof,
    /// After the last line matching the regex.
    After(Regex),
    /// Before the last line matching the regex.
    Before(Regex),
}

impl Anchor {
    /// Reads Ansible's two mutually exclusive arguments: `EOF` (for `insertafter`) and `BOF` (for
    /// `insertbefore`) are keywords, anything else is a regex.
    pub fn parse(
        kind: &str,
        after: Option<&str>,
        before: Option<&str>,
    ) -> Result<Self, ResourceError> {
        match (after, before) {
            (Some(_), Some(_)) => Err(bad(
                kind,
                "`insertafter` and `insertbefore` are mutually exclusive",
            )),
            (None, None) | (Some("EOF"), None) => Ok(Anchor::Eof),
            (None, Some("BOF")) => Ok(Anchor::Bof),
            (Some(re), None) => Ok(Anchor::After(regex(kind, "insertafter", re)?)),
            (None, Some(re)) => Ok(Anchor::Before(regex(kind, "insertbefore", re)?)),
        }
    }

    /// The index in `lines` where new lines go. A regex that matches no line falls back to the end of
    /// the file, as in Ansible.
    pub fn index(&self, lines: &[Vec<u8>]) -> usize {
        let last = |re: &Regex| lines.iter().rposition(|l| re.is_match(body(l)));
        match self {
            Anchor::Bof => 0,
            Anchor::Eof => lines.len(),
            Anchor::After(re) => last(re).map_or(lines.len(), |i| i + 1),
            Anchor::Before(re) => last(re).unwrap_or(lines.len()),
        }
    }
}

/// Compiles a user's regex, naming the field when it is invalid so the error points at the task line.
pub(super) fn regex(kind: &str, field: &str, pattern: &str) -> Result<Regex, ResourceError> {
    Regex::new(pattern).map_err(|e| bad(kind, format!("`{field}` is not a valid regex: {e}")))
}

/// Splits content into lines that keep their terminators, so an edit of one line leaves every other
/// byte (CRLF endings, a missing final newline) exactly as it was.
pub(super) fn lines(content: &[u8]) -> Vec<Vec<u8>> {
    content
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// A line without its `\n` or `\r\n`: what patterns and comparisons see.
pub(super) fn body(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Inserts `new` lines (each given a `\n`) at `at`, first ending an unterminated last line so the
/// insertion does not glue onto it.
pub(super) fn insert(lines: &mut Vec<Vec<u8>>, at: usize, new: &[&[u8]]) {
    if at > 0 && !lines[at - 1].ends_with(b"\n") {
        lines[at - 1].push(b'\n');
    }
    let new = new.iter().map(|l| [*l, b"\n"].concat());
    lines.splice(at..at, new);
}

/// The file an editor works on and everything about it but the edit itself.
pub(super) struct TextFile {
    kind: &'static str,
    path: String,
    create: Option<bool>,
    removing: bool,
    attrs: Attrs,
    validate: Option<String>,
}

/// What apply has to do to the file, decided from facts.
enum Write {
    Nothing,
    /// Only attributes differ; `sha256` is the unchanged content's.
    Attrs {
        sha256: String,
    },
    Content {
        content: Vec<u8>,
        /// sha256 of the content the edit was computed from; `None` when the file did not exist.
        old_sha: Option<String>,
    },
}

impl TextFile {
    /// `removing` says the edit only takes text out, so a missing file is already converged rather than
    /// an error; `create` allows starting from an empty file when it is missing, and is `None` for editors
    /// that have no `create` argument (the file must exist), so the error does not suggest one.
    pub fn new(
        kind: &'static str,
        path: String,
        create: Option<bool>,
        removing: bool,
        attrs: Attrs,
        validate: Option<String>,
    ) -> Result<Self, ResourceError> {
        if !path.starts_with('/') {
            return Err(bad(kind, format!("path `{path}` must be absolute")));
        }
        check_validate(kind, &validate)?;
        Ok(Self {
            kind,
            path,
            create,
            removing,
            attrs,
            validate,
        })
    }

    /// `lineinfile /etc/ssh/sshd_config`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind, self.path)
    }

    /// Reports the file (following a symlink to its target, which is the file that gets edited: replacing
    /// the link with a regular file would silently detach it) with its attributes and content.
    pub fn probe(&self) -> String {
        format!(
            r#"p={p}
if [ -L "$p" ]; then p=$(readlink -f -- "$p") || exit 1; fact target "$p"; fi
fact_stat "$p"
if [ -f "$p" ]; then s=$(stat -c %s -- "$p"); fact size "$s"; if [ "$s" -le {MAX_EDIT} ]; then fact_b64 content "$p"; fi; fi"#,
            p = sh_quote(&self.path)
        )
    }

    /// What a pending change leaves for later tasks: the file with the new content when the plan shows
    /// it as a diff, a changed file of unknown content otherwise.
    fn effects(&self, change: &Change) -> Vec<Effect> {
        let (path, content) = match &change.diff {
            Some(d) => (d.path.clone(), Some(d.new.clone().into_bytes())),
            None => (self.path.clone(), None),
        };
        vec![Effect::Write {
            path,
            content,
            attrs: self.attrs.clone(),
        }]
    }

    /// The probe's facts as the file will be when this task runs, after the earlier pending changes of
    /// the run; `None` when the plan cannot know them.
    fn simulated(&self, facts: &Facts, view: &HostView) -> Option<Facts> {
        let target = facts.get("target").unwrap_or(&self.path).to_string();
        match view.file(&target, facts) {
            FileSim::AsProbed => Some(facts.clone()),
            FileSim::Absent => Some(Facts::absent()),
            FileSim::File { mut facts, content } => {
                if target != self.path {
                    facts.set("target", &target);
                }
                facts.set("size", &content.len().to_string());
                facts.set_bytes("content", &content);
                Some(facts)
            }
            FileSim::Unknown => None,
        }
    }

    /// The change `edit` makes to the probed file, with the step writing it: the whole new content,
    /// guarded by the checksum (or absence) of the content it was computed from. Several editors of one
    /// file in one run add up because apply probes each one after the previous one changed the host.
    pub fn plan(&self, facts: &Facts, edit: &EditFn<'_>) -> Result<Change, ResourceError> {
        let (mut change, target, step) = self.decide(facts, edit)?;
        let t = sh_quote(&target);
        let what = format!("writing {target}");
        let step = match step {
            Write::Nothing => return Ok(change),
            Write::Attrs { sha256 } => Step::run(
                what,
                vec![Guard::File {
                    path: target.clone(),
                    sha256: Some(sha256),
                }],
                format!("set -e\n{}", self.attrs.script(&t)),
            ),
            Write::Content { content, old_sha } => {
                let mkdir = match old_sha {
                    Some(_) => String::new(),
                    None => format!("mkdir -p -- \"$(dirname -- {t})\"\n"),
                };
                Step::run(
                    what,
                    vec![Guard::File {
                        path: target.clone(),
                        sha256: old_sha,
                    }],
                    format!(
                        "{mkdir}{}",
                        atomic_write_script(
                            &target,
                            &content,
                            &self.attrs,
                            self.validate.as_deref()
                        )
                    ),
                )
            }
        };
        change.steps.push(step);
        Ok(change)
    }

    /// The change to show, the file it is about (the symlink target when the path is a link) and what
    /// apply has to do for it.
    fn decide(
        &self,
        facts: &Facts,
        edit: &EditFn<'_>,
    ) -> Result<(Change, String, Write), ResourceError> {
        let target = facts.get("target").unwrap_or(&self.path).to_string();
        let mut change = Change::none();
        change
            .result
            .insert("path".into(), self.path.clone().into());
        let (old, action) = match facts.get("type") {
            Some("file") => {
                let old = facts.bytes("content").ok_or_else(|| {
                    ResourceError::Failed(format!(
                        "{target} is larger than {MAX_EDIT} bytes; {} edits text files",
                        self.kind
                    ))
                })?;
                (old, Action::Update)
            }
            Some("absent") | None if self.removing => return Ok((change, target, Write::Nothing)),
            Some("absent") | None if self.create != Some(true) => {
                let hint = if self.create.is_some() {
                    " (set create: true)"
                } else {
                    ""
                };
                return Err(ResourceError::Failed(format!(
                    "{target} does not exist{hint}"
                )));
            }
            Some("absent") | None => (Vec::new(), Action::Create),
            Some(other) => {
                return Err(ResourceError::Failed(format!(
                    "{target} is a {other}, not a file"
                )))
            }
        };
        let edit = edit(&old)?;
        let mut details = Vec::new();
        if action == Action::Create {
            details.push("create file".to_string());
        }
        details.extend(edit.details);
        let write = action == Action::Create || edit.content != old;
        if write {
            match (as_text(&old), as_text(&edit.content)) {
                (Some(old), Some(new)) => {
                    change.diff = Some(ContentDiff {
                        path: target.clone(),
                        old,
                        new,
                    })
                }
                _ => details.push(format!(
                    "content sha256 {} -> {}",
                    sha256_hex(&old),
                    sha256_hex(&edit.content)
                )),
            }
        }
        let nothing = Facts::default();
        let current = if action == Action::Create {
            &nothing
        } else {
            facts
        };
        details.extend(self.attrs.changes(current));
        let step = if write {
            Write::Content {
                content: edit.content,
                old_sha: (action == Action::Update).then(|| sha256_hex(&old)),
            }
        } else if details.is_empty() {
            Write::Nothing
        } else {
            Write::Attrs {
                sha256: sha256_hex(&old),
            }
        };
        if !matches!(step, Write::Nothing) {
            change.action = action;
        }
        change.details = details;
        Ok((change, target, step))
    }
}

/// A resource that changes part of a text file. It only names its file and says how content changes;
/// probing, planning with a diff, and the guarded atomic write are the same for every such editor.
pub(super) trait TextEditor: Send + Sync {
    /// The file being edited.
    fn file(&self) -> &TextFile;

    /// The new content made from the old, with one detail line per change.
    fn edit(&self, old: &[u8]) -> Result<Edit, ResourceError>;

    /// Report line; editors add what they target inside the file.
    fn describe(&self) -> String {
        self.file().describe()
    }
}

#[async_trait::async_trait]
impl<T: TextEditor> Resource for T {
    fn describe(&self) -> String {
        TextEditor::describe(self)
    }

    fn probe(&self) -> String {
        self.file().probe()
    }

    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        self.file().plan(facts, &|old| self.edit(old))
    }

    fn reads(&self) -> Reads {
        Reads::Paths(vec![self.file().path.clone()])
    }

    fn edited_path(&self) -> Option<&str> {
        Some(&self.file().path)
    }

    fn edit_content(&self, old: &[u8]) -> Result<Vec<u8>, ResourceError> {
        self.edit(old).map(|e| e.content)
    }

    fn effects(&self, change: &Change) -> Vec<Effect> {
        self.file().effects(change)
    }

    fn plan_in(&self, facts: &Facts, view: &HostView) -> Result<Option<Change>, ResourceError> {
        let Some(facts) = self.file().simulated(facts, view) else {
            return Ok(None);
        };
        self.plan(&facts).map(Some)
    }
}
