//! What `render` shows: every whole file the plan's `copy` and `template` tasks would write, made on the
//! controller from what the run already prepared, touching no host. The rules, per task and host:
//!
//! - Secrets: a sensitive file is built again with every secret variable replaced by
//!   [`MASK`](crate::report::mask::MASK) (as the secret check replaces them by its markers), so what it
//!   renders holds no secret by construction, short ones included; filters apply to the placeholder
//!   (`| upper` shows `(SENSITIVE)`). A template that needs a secret's real value (`| int`) is not
//!   written. Every written text also passes the run's masker. Key material, and a task that says
//!   `sensitive: true` (whatever it reads), is never written.
//! - Registered results (own host's, or `registered['h'].x`) are unknown without a run: each renders as
//!   [`KNOWN_AFTER_APPLY`], whatever attribute is read of it. A template that needs a real value of one
//!   (`| b64decode`) is not written.
//! - `when`: decided as apply decides it when it reads no registered result; false means skipped (not
//!   written). A `when` reading registered results, and a handler (run only when notified), are
//!   undecided: listed, not written.
//! - A file a later task of the host writes again is not written: the later one is what the host ends
//!   with.
//! - A partial edit (`lineinfile`, `blockinfile`, `xml`, …) is applied to what the host's earlier tasks
//!   leave in its file, when the controller knows that: a file an earlier task wrote or edited, or one an
//!   earlier `unarchive` of a controller archive unpacks (read from the archive with `unzip`/`tar`),
//!   as on a host provisioned for the first time. Each such edit is listed with the whole file it
//!   leaves. A file the controller does not know (the host's own `/etc/hosts`) is not rendered, nor are
//!   later edits of a file whose content became unknown (an undecided or `sensitive: true` edit).

use super::prepare::{Prepared, OTHER_HOSTS};
use crate::model::ModelError;
use crate::report::mask::MASK;
use crate::resources::{as_text, is_key_material, writes_whole_file, Attrs};
use minijinja::value::{Object, ObjectRepr, Value};
use petgraph::graph::NodeIndex;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// What a value read from a registered result renders as: no run has registered it yet.
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";

/// One whole-file task on one host, as `render` sees it.
#[derive(Debug, Clone)]
pub struct RenderedFile {
    /// The task's node.
    pub node: NodeIndex,
    /// The absolute path on the host; `None` when the task is not built (skipped or undecided).
    pub dest: Option<String>,
    /// Mode, owner and group the task sets.
    pub attrs: Attrs,
    /// The task is sensitive: secrets show as placeholders, or the file is not written.
    pub sensitive: bool,
    /// The task reads registered results, shown as [`KNOWN_AFTER_APPLY`].
    pub known_after_apply: bool,
    /// What becomes of it.
    pub outcome: Outcome,
}

/// What `render` does with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The content to write, secrets replaced by placeholders and masked.
    Written(Vec<u8>),
    /// Built, but not written, and why (key material, `sensitive: true`, a later task replaces it…).
    NotWritten(String),
    /// Its `when` is false: apply skips it.
    Skipped,
    /// Only the run can tell whether it writes (its `when` reads registered results, a handler), and why.
    Undecided(String),
}

/// Every registered result read as an unknown: any attribute or item of it is again one, and it shows
/// as [`KNOWN_AFTER_APPLY`] (also through string filters such as `trim`). Filters that need a real value
/// (`b64decode`, `from_json`) fail on it, and the file is then not written.
#[derive(Debug)]
struct Unknown;

impl Object for Unknown {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, _key: &Value) -> Option<Value> {
        Some(Value::from_object(Unknown))
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(KNOWN_AFTER_APPLY)
    }
}

/// What a host's earlier tasks leave in its files, as far as the controller knows: the content each
/// path was last written or edited to (`None`: changed in a way render cannot tell), and the controller
/// archives unpacked so far, with the directory each went into.
#[derive(Default)]
struct HostFiles {
    known: HashMap<String, Option<Vec<u8>>>,
    archives: Vec<(PathBuf, String)>,
}

impl HostFiles {
    /// The content of `path` before the next task: written by an earlier one, or in an archive
    /// unpacked over it (the last one that has it). `None` when the controller cannot know it.
    fn content(&self, path: &str) -> Option<Vec<u8>> {
        if let Some(known) = self.known.get(path) {
            return known.clone();
        }
        self.archives
            .iter()
            .rev()
            .find_map(|(archive, dest)| from_archive(archive, dest, path))
    }
}

/// `path` as `archive` unpacked into `dest` has it, read on the controller (`unzip -p`, `tar -xO`).
fn from_archive(archive: &Path, dest: &str, path: &str) -> Option<Vec<u8>> {
    let member = path
        .strip_prefix(dest.trim_end_matches('/'))?
        .strip_prefix('/')?;
    if member.is_empty() {
        return None;
    }
    let name = archive.to_string_lossy().to_ascii_lowercase();
    let out = if name.ends_with(".zip") {
        Command::new("unzip")
            .arg("-p")
            .arg(archive)
            .arg(member)
            .output()
    } else {
        Command::new("tar")
            .arg("-xOf")
            .arg(archive)
            .arg(member)
            .output()
    }
    .ok()?;
    out.status.success().then_some(out.stdout)
}

impl Prepared {
    /// The whole-file tasks of `host`, and the partial edits of files the controller knows, in the
    /// order they run. A file that a later task of the host writes or edits again is not written (the
    /// later one is what the host ends with).
    pub fn render_host(&self, host: &str) -> Result<Vec<RenderedFile>, ModelError> {
        let mut out = Vec::new();
        let mut files = HostFiles::default();
        for &node in self.graph.hosts.get(host).into_iter().flatten() {
            let f = if writes_whole_file(&self.task(node).kind) {
                self.render_node(node)?
            } else {
                self.render_edit(node, &mut files)
            };
            if let Some(f) = f {
                // What the next edit of the file applies to: the content as rendered (secrets as
                // placeholders); a file not written is one render cannot tell.
                if let Some(dest) = &f.dest {
                    let now = match &f.outcome {
                        Outcome::Written(c) => Some(c.clone()),
                        _ => None,
                    };
                    files.known.insert(dest.clone(), now);
                }
                out.push(f);
            }
        }
        for i in 0..out.len() {
            let later = out[i + 1..]
                .iter()
                .find(|l| l.dest.is_some() && l.dest == out[i].dest);
            if let (Some(l), Outcome::Written(_)) = (later, &out[i].outcome) {
                let t = self.task(l.node);
                let how = if writes_whole_file(&t.kind) {
                    "writes"
                } else {
                    "edits"
                };
                out[i].outcome =
                    Outcome::NotWritten(format!("task `{}` ({}) {how} it later", t.name, t.loc));
            }
        }
        Ok(out)
    }

    /// A partial edit of a file whose content the controller knows, applied to it; an `unarchive` of a
    /// controller archive is remembered for the edits that follow. `None` for any other task, and for
    /// an edit whose file is unknown.
    fn render_edit(&self, node: NodeIndex, files: &mut HostFiles) -> Option<RenderedFile> {
        let t = self.task(node);
        let prep = &self.nodes[node.index()];
        if prep.when == Some(false) {
            return None;
        }
        let ctx = self.context_with(node, self.unknowns(&prep.reads));
        let decided = !t.handler && !self.when_reads_registered(node);
        let resource = match &prep.resource {
            Some(r) => r.clone(),
            None => {
                if decided && !self.condition(node, &ctx).ok()? {
                    return None;
                }
                self.build(node, &ctx).ok()?
            }
        };
        if let Some((archive, dest)) = resource.archive() {
            if decided {
                files
                    .archives
                    .push((archive.to_path_buf(), dest.to_string()));
            }
            return None;
        }
        let path = resource.edited_path()?.to_string();
        let base = files.content(&path)?;
        let mut file = RenderedFile {
            node,
            dest: Some(path.clone()),
            attrs: Attrs::default(),
            sensitive: prep.sensitive,
            known_after_apply: !prep.reads.is_empty(),
            outcome: Outcome::Skipped,
        };
        if !decided {
            file.outcome = Outcome::Undecided(if t.handler {
                "a handler: runs only when notified".into()
            } else {
                "its `when` reads registered results".into()
            });
            return Some(file);
        }
        if t.sensitive {
            file.outcome = Outcome::NotWritten("the task says `sensitive: true`".into());
            return Some(file);
        }
        let edited = if prep.sensitive {
            let masked = self.secrets_as(node, &ctx, &|_| MASK.to_string());
            self.build(node, &masked)
                .map_err(|e| e.to_string())
                .and_then(|r| r.edit_content(&base).map_err(|e| e.to_string()))
        } else {
            resource.edit_content(&base).map_err(|e| e.to_string())
        };
        file.outcome = match edited {
            Ok(new) => Outcome::Written(self.masked(&new)),
            Err(e) => Outcome::NotWritten(format!(
                "the edit cannot be applied to what earlier tasks leave: {}",
                self.masker.mask(&e)
            )),
        };
        Some(file)
    }

    /// One node's file, or `None` when its type writes no whole file.
    fn render_node(&self, node: NodeIndex) -> Result<Option<RenderedFile>, ModelError> {
        let t = self.task(node);
        if !writes_whole_file(&t.kind) {
            return Ok(None);
        }
        let prep = &self.nodes[node.index()];
        let mut file = RenderedFile {
            node,
            dest: None,
            attrs: Attrs::default(),
            sensitive: prep.sensitive,
            known_after_apply: !prep.reads.is_empty(),
            outcome: Outcome::Skipped,
        };
        if t.handler {
            file.outcome = Outcome::Undecided("a handler: runs only when notified".into());
            return Ok(Some(file));
        }
        let ctx = self.context_with(node, self.unknowns(&prep.reads));
        let resource = match (&prep.resource, prep.when) {
            (_, Some(false)) => return Ok(Some(file)),
            (Some(r), _) => r.clone(),
            (None, _) => {
                if self.when_reads_registered(node) {
                    file.outcome = Outcome::Undecided("its `when` reads registered results".into());
                    return Ok(Some(file));
                }
                if !self.condition(node, &ctx)? {
                    return Ok(Some(file));
                }
                match self.build(node, &ctx) {
                    Ok(r) => r,
                    Err(e) => {
                        file.outcome = Outcome::NotWritten(format!(
                            "cannot be rendered before apply: {}",
                            self.masker.mask(&e.to_string())
                        ));
                        return Ok(Some(file));
                    }
                }
            }
        };
        let Some(whole) = resource.whole_file() else {
            return Ok(None);
        };
        file.dest = Some(whole.dest.to_string());
        file.attrs = whole.attrs.clone();
        file.sensitive |= whole.sensitive;
        file.outcome = if is_key_material(whole.content) {
            Outcome::NotWritten("key material".into())
        } else if t.sensitive {
            Outcome::NotWritten("the task says `sensitive: true`".into())
        } else if whole.sensitive {
            self.with_placeholders(node, &ctx)
        } else {
            Outcome::Written(self.masked(whole.content))
        };
        Ok(Some(file))
    }

    /// The node built again with every secret variable replaced by [`MASK`]: what it renders then holds
    /// no secret by construction. A template that needs a secret's real value (`| int`, a TOML number)
    /// fails that way, and its file is not written.
    fn with_placeholders(&self, node: NodeIndex, ctx: &Value) -> Outcome {
        let masked = self.secrets_as(node, ctx, &|_| MASK.to_string());
        match self.build(node, &masked) {
            Ok(r) => match r.whole_file() {
                Some(w) if !is_key_material(w.content) => Outcome::Written(self.masked(w.content)),
                _ => Outcome::NotWritten("key material".into()),
            },
            Err(e) => Outcome::NotWritten(format!(
                "renders only with the secrets' real values: {}",
                self.masker.mask(&e.to_string())
            )),
        }
    }

    /// `content` with every known secret masked, as every output is (text only: binary content such as
    /// a jar holds no rendered value).
    fn masked(&self, content: &[u8]) -> Vec<u8> {
        match as_text(content) {
            Some(text) => self.masker.masked(&text).into_bytes(),
            None => content.to_vec(),
        }
    }

    /// The registered names `reads` as unknowns, for a context in which templates render without a run.
    fn unknowns(&self, reads: &BTreeSet<String>) -> Value {
        let unknown = Value::from_object(Unknown);
        Value::from_iter(reads.iter().map(|r| (r.clone(), unknown.clone())))
    }

    /// True when a `when` of the node reads a registered result (its own host's or, through
    /// [`OTHER_HOSTS`], another's), which only the run knows.
    fn when_reads_registered(&self, node: NodeIndex) -> bool {
        self.task(node).when.iter().any(|w| {
            self.templates
                .names_in_expr(w)
                .unwrap_or_default()
                .iter()
                .any(|n| n == OTHER_HOSTS || self.pb.registered.contains(n))
        })
    }
}
