//! Built-in resource types. Each type lives in its own file and implements [`Resource`]: a read-only probe
//! (a shell snippet, so the engine can batch every probe of a host into one round trip), a pure `plan` from
//! the probe's facts to a [`Change`] that carries its apply [`Step`]s, and an `apply` that runs exactly
//! those steps ([`execute`]). Plan, apply and drift all go through the same probe and the same decision,
//! so what plan says is what apply does; each step is guarded by the facts it was decided from, so a
//! host changed in between is refused rather than overwritten.

mod assert;
mod attrs;
mod blockinfile;
mod checksum;
mod command;
mod copy;
mod edit;
mod file;
mod format;
mod get_url;
mod group;
mod hosts_entry;
mod keymat;
mod keystore;
mod lineinfile;
mod mount;
mod mysql;
mod mysql_db;
mod mysql_import;
mod mysql_user;
mod package;
mod pki;
mod service;
mod sim;
mod slurp;
mod template;
mod truststore;
mod unarchive;
mod user;
mod wait_for;
mod xml;

use crate::transport::{sh_quote, Facts, Transport, TransportError};
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub use attrs::{atomic_write_script, Attrs, FileMode};
pub use checksum::Digests;
pub use keymat::is_key_material;
pub use sim::{Effect, FileSim, HostView, Pending, Reads};

/// The registered result of a task (`register:`), as templates see it.
pub type Registered = Map<String, Value>;

/// The kind of change a task would make, which decides its plan symbol and how it is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The thing does not exist yet (`+`).
    Create,
    /// The thing exists but differs (`~`).
    Update,
    /// The thing exists and will be removed (`-`).
    Delete,
    /// A command will run or an action will be taken (`~`).
    Run,
    /// Nothing to do (`=`).
    None,
}

/// Whether a thing (line, block, user, grant…) must exist; the `state:` argument of most types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// It must exist (the default).
    #[default]
    Present,
    /// It must not exist.
    Absent,
}

/// Old and new text of a file, kept so plan can print a unified diff.
#[derive(Debug, Clone, Default)]
pub struct ContentDiff {
    /// The file the diff is about.
    pub path: String,
    /// Current content (empty when the file does not exist).
    pub old: String,
    /// Content after apply.
    pub new: String,
}

impl ContentDiff {
    /// What a sensitive file's change shows instead of its diff: how many lines change and the old and
    /// new sha256 prefixes, enough to see that (and roughly how much) it changes, and nothing of it.
    pub fn sensitive_summary(&self) -> Vec<String> {
        let changed = similar::TextDiff::from_lines(&self.old, &self.new)
            .iter_all_changes()
            .filter(|c| c.tag() != similar::ChangeTag::Equal)
            .count();
        let prefix = |t: &str| {
            if t.is_empty() {
                "-".to_string()
            } else {
                sha256_hex(t.as_bytes())[..12].to_string()
            }
        };
        vec![
            format!("(sensitive content, {changed} lines changed)"),
            format!("sha256 {} -> {}", prefix(&self.old), prefix(&self.new)),
        ]
    }
}

/// What a resource would do, derived from its probe alone.
#[derive(Debug, Clone)]
pub struct Change {
    /// The kind of change.
    pub action: Action,
    /// One line per thing that differs, e.g. `mode 0644 -> 0600`.
    pub details: Vec<String>,
    /// Text diff of the content, when content changes and both sides are text.
    pub diff: Option<ContentDiff>,
    /// What `register:` sees when the task makes no change (probe facts worth exposing).
    pub result: Registered,
    /// What apply runs, in order, decided here from the same facts as `action` and `details`: apply
    /// executes exactly these, so what plan showed and what apply does cannot diverge.
    pub steps: Vec<Step>,
    /// True when the resource itself found its content sensitive (key material, or built for a sensitive
    /// task) and already left every value out of `details` and `diff`: the report shows it as it is.
    pub sensitive: bool,
}

/// A fact the probe saw that a step relies on, checked again on the host in the same script as the step.
/// When it no longer holds, the step fails with "X changed on the host since it was probed" instead of
/// overwriting someone else's edit with a decision made from older facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// The regular file `path` has content with this sha256, or (`None`) nothing exists at `path`.
    File {
        /// The file on the host.
        path: String,
        /// sha256 of the content the decision was made from; `None` when the path was absent.
        sha256: Option<String>,
    },
    /// A read-only script (see [`digest_probe`]) still prints output with the sha256 the probe saw.
    Digest {
        /// What the script reads, for the message (`group app`).
        what: String,
        /// The read-only script.
        script: String,
        /// sha256 of its output at probe time.
        sha256: String,
    },
}

impl Guard {
    /// A digest guard from the fact `key` that [`digest_probe`] printed. A probe that did not print it
    /// leaves nothing to check against, so the plan fails instead of guessing.
    pub fn digest(
        what: &str,
        script: &str,
        facts: &Facts,
        key: &str,
    ) -> Result<Self, ResourceError> {
        let sha256 = facts.get(key).ok_or_else(|| {
            ResourceError::Failed(format!("the probe of {what} printed no `{key}`"))
        })?;
        Ok(Guard::Digest {
            what: what.to_string(),
            script: script.to_string(),
            sha256: sha256.to_string(),
        })
    }

    /// A digest guard for a read-only `script` whose output at probe time is known from the facts:
    /// `expected`, byte for byte, so the probe need not print a digest of its own.
    pub fn output(what: &str, script: &str, expected: &str) -> Self {
        Guard::Digest {
            what: what.to_string(),
            script: script.to_string(),
            sha256: sha256_hex(expected.as_bytes()),
        }
    }

    /// The thing the guard is about, as the error names it.
    fn what(&self) -> &str {
        match self {
            Guard::File { path, .. } => path,
            Guard::Digest { what, .. } => what,
        }
    }

    /// A shell condition true while the guarded fact still holds.
    fn condition(&self) -> String {
        match self {
            Guard::File {
                path,
                sha256: Some(sha),
            } => {
                let p = sh_quote(path);
                format!("[ -f {p} ] && [ ! -L {p} ] && [ \"$(sha256sum < {p})\" = '{sha}  -' ]")
            }
            Guard::File { path, sha256: None } => {
                let p = sh_quote(path);
                format!("[ ! -e {p} ] && [ ! -L {p} ]")
            }
            Guard::Digest { script, sha256, .. } => {
                format!("[ \"$({})\" = '{sha256}  -' ]", digest_cmd(script))
            }
        }
    }
}

/// Exit status of a step whose guard failed, kept apart from the step's own failures.
const GUARD_FAILED: i32 = 97;

/// How a failed guard's line ends, after the name of what changed.
const GUARD_MESSAGE: &str = " changed on the host since it was probed; run plan again";

/// The shell pipeline printing the sha256 of `script`'s output (stderr dropped, so a warning does not
/// count as a change) as `sha256sum` does (`HASH  -`), without a program more to cut it.
fn digest_cmd(script: &str) -> String {
    format!("{{ {script}\n}} 2>/dev/null | sha256sum")
}

/// A probe line printing, as fact `key`, the sha256 of what the read-only `script` prints: the identity
/// of the state a decision was made from, for a [`Guard::Digest`].
pub fn digest_probe(key: &str, script: &str) -> String {
    format!("printf '@w %s=' {}; {}", sh_quote(key), digest_cmd(script))
}

/// One action of apply, decided in plan. Scripts travel on the transport's standard input (never on a
/// command line), so a payload inside one, such as a password, stays out of the host's process list; for
/// the same reason `Debug` shows what a step does, never its script.
#[derive(Clone)]
pub enum Step {
    /// Runs `script` after checking `guards`; a non-zero exit fails the task naming `what`.
    Run {
        /// What the step does, for errors (`writing /etc/hosts`).
        what: String,
        /// Facts the script relies on.
        guards: Vec<Guard>,
        /// The script.
        script: String,
    },
    /// Like `Run`, and the script's exit status, stdout and stderr become `rc`, `stdout` and `stderr` of
    /// the registered result: run-time data (a command's output) the plan cannot know.
    Capture {
        /// What the step does, for errors (the command line).
        what: String,
        /// Facts the script relies on.
        guards: Vec<Guard>,
        /// The script.
        script: String,
    },
    /// Uploads the controller file `local` to a fresh temporary file in `dir` on the host, runs `script`
    /// with `$upload` naming it, and removes it whatever the script's outcome: payloads too large for a
    /// script (packs, SQL dumps) stream instead.
    Upload {
        /// What the step does, for errors.
        what: String,
        /// The controller file.
        local: PathBuf,
        /// The host directory the temporary file goes in (next to where it is used, so a large pack
        /// does not fill a small `/tmp` and a rename stays on one filesystem).
        dir: String,
        /// Facts the script relies on.
        guards: Vec<Guard>,
        /// The script using `$upload`.
        script: String,
    },
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, what) = match self {
            Step::Run { what, .. } => ("Run", what),
            Step::Capture { what, .. } => ("Capture", what),
            Step::Upload { what, .. } => ("Upload", what),
        };
        f.debug_struct(kind)
            .field("what", what)
            .finish_non_exhaustive()
    }
}

impl Step {
    /// A script step guarded by `guards`.
    pub fn run(what: impl Into<String>, guards: Vec<Guard>, script: impl Into<String>) -> Self {
        Step::Run {
            what: what.into(),
            guards,
            script: script.into(),
        }
    }

    /// The script as sent: every guard checked first, in the same round trip.
    fn script(&self) -> (&str, String) {
        let (what, guards, script) = match self {
            Step::Run {
                what,
                guards,
                script,
            }
            | Step::Capture {
                what,
                guards,
                script,
            }
            | Step::Upload {
                what,
                guards,
                script,
                ..
            } => (what, guards, script),
        };
        let mut s = String::new();
        for g in guards {
            let msg = sh_quote(&format!("{}{GUARD_MESSAGE}", g.what()));
            s.push_str(&format!(
                "if ! {{ {}; }}; then echo {msg} >&2; exit {GUARD_FAILED}; fi\n",
                g.condition()
            ));
        }
        s.push_str(script);
        s.push('\n');
        (what, s)
    }
}

/// Uploads `local` to a temporary file in `dir`, runs `script` with `$upload` set to it, and removes
/// the file whatever happened.
async fn upload_and_run(
    host: &dyn Transport,
    what: &str,
    local: &Path,
    dir: &str,
    script: &str,
) -> Result<crate::transport::Output, ResourceError> {
    let tmp = run_ok(
        host,
        &format!("{what}: making a temp file"),
        &format!(
            "mktemp {}",
            sh_quote(&format!(
                "{}/.apim-provision.upload.XXXXXX",
                dir.trim_end_matches('/')
            ))
        ),
    )
    .await?
    .stdout_text()
    .trim()
    .to_string();
    let q = sh_quote(&tmp);
    let out = match host.upload(local, &tmp).await {
        Ok(()) => host.run(&format!("upload={q}\n{script}")).await,
        Err(e) => Err(e),
    };
    run_ok(
        host,
        &format!("{what}: removing the upload"),
        &format!("rm -f -- {q}"),
    )
    .await?;
    Ok(out?)
}

/// Runs `change`'s steps in order on `host` and returns the registered result: the one way apply makes a
/// change, whatever the resource type. A failed guard or step stops there.
pub async fn execute(change: &Change, host: &dyn Transport) -> Result<Registered, ResourceError> {
    let mut result = change.result.clone();
    for step in &change.steps {
        let (what, script) = step.script();
        let out = match step {
            Step::Upload { local, dir, .. } => {
                upload_and_run(host, what, local, dir, &script).await?
            }
            _ => host.run(&script).await?,
        };
        if let Some(stale) = stale_guard(
            what,
            out.status,
            String::from_utf8_lossy(&out.stderr).lines(),
        ) {
            return Err(stale);
        }
        if out.status != 0 {
            return Err(match step {
                Step::Capture { .. } => {
                    ResourceError::Failed(format!("{what} exited {}: {}", out.status, out.tail()))
                }
                _ => step_failed(what, out.status, &out.tail()),
            });
        }
        if let Step::Capture { .. } = step {
            result.insert("rc".into(), out.status.into());
            result.insert(
                "stdout".into(),
                out.stdout_text().trim_end().to_string().into(),
            );
            result.insert(
                "stderr".into(),
                String::from_utf8_lossy(&out.stderr)
                    .trim_end()
                    .to_string()
                    .into(),
            );
        }
    }
    Ok(result)
}

/// Makes several changes of one host in one round trip, in order, each only when the ones before it
/// succeeded: what [`execute`] does for each, for changes that only [`Change::runs_only`]. Answers the
/// changes that ran, in order; a failed one is the last answered.
pub async fn execute_wave(
    changes: &[&Change],
    host: &dyn Transport,
) -> Result<Vec<Result<Registered, ResourceError>>, TransportError> {
    let mut batch = crate::transport::ProbeBatch::halting();
    for c in changes {
        let mut snippet = String::new();
        for (j, step) in c.steps.iter().enumerate() {
            // Not `( … ) || exit`: a script's own `set -e` would be ignored on the left of `||`.
            snippet.push_str(&format!(
                "printf '{WAVE_STEP}%d\\n' {j}\n( {}\n)\nst=$?; [ \"$st\" -eq 0 ] || exit \"$st\"\n",
                step.script().1
            ));
        }
        batch.push(snippet);
    }
    let answers = batch.run(host).await?;
    let mut out = Vec::new();
    for (c, a) in changes.iter().zip(answers) {
        let failed = a.status != 0;
        out.push(if failed {
            Err(wave_failure(c, &a))
        } else {
            Ok(c.result.clone())
        });
        if failed {
            break;
        }
    }
    Ok(out)
}

/// The line a wave prints before each step of a change, so a failure names the step it was in.
const WAVE_STEP: &str = "@step ";

/// Why `change` failed in a wave, as [`execute`] would say it: the failed step and the last lines it
/// printed, or the guard that found the host changed.
fn wave_failure(change: &Change, answer: &crate::transport::BatchAnswer) -> ResourceError {
    let at = answer
        .messages
        .iter()
        .rposition(|l| l.starts_with(WAVE_STEP))
        .unwrap_or(0);
    let j: usize = answer
        .messages
        .get(at)
        .and_then(|l| l.strip_prefix(WAVE_STEP))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let what = change.steps.get(j).map(|s| s.script().0).unwrap_or("apply");
    let printed: Vec<&str> = answer.messages[at..]
        .iter()
        .filter(|l| !l.starts_with(WAVE_STEP))
        .map(String::as_str)
        .collect();
    if let Some(stale) = stale_guard(what, answer.status, printed.iter().copied()) {
        return stale;
    }
    let tail = printed[printed.len().saturating_sub(8)..].join("\n");
    step_failed(what, answer.status, &tail)
}

/// The step `what` found its guard's facts changed on the host, when it exited as a failed guard does
/// and one of the `lines` it printed is the guard's.
fn stale_guard<'a>(
    what: &str,
    status: i32,
    mut lines: impl Iterator<Item = &'a str>,
) -> Option<ResourceError> {
    (status == GUARD_FAILED)
        .then(|| lines.find(|l| l.ends_with(GUARD_MESSAGE)))
        .flatten()
        .map(|line| ResourceError::Stale {
            what: what.to_string(),
            message: line.to_string(),
        })
}

/// The step `what` failed with `status`, after printing `tail` last.
fn step_failed(what: &str, status: i32, tail: &str) -> ResourceError {
    ResourceError::Failed(format!("{what} failed (exit {status}): {tail}"))
}

impl Change {
    /// True when the change is nothing but scripts run one after another ([`Step::Run`]): what a
    /// wave can carry with other changes in one script (no upload, no output to capture).
    pub fn runs_only(&self) -> bool {
        self.steps.iter().all(|s| matches!(s, Step::Run { .. }))
    }

    /// A change of `action` described by `details`.
    pub fn new(action: Action, details: Vec<String>) -> Self {
        Self {
            action,
            details,
            diff: None,
            result: Registered::new(),
            steps: Vec::new(),
            sensitive: false,
        }
    }

    /// This change, made by `step` after the ones it already has.
    pub fn then(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// What a report may show of this change: everything, unless the task is `sensitive` and the
    /// resource did not already hide its values itself; then the diff becomes its
    /// [`ContentDiff::sensitive_summary`] and the details (which may quote arguments) are withheld.
    pub fn shown(&self, sensitive: bool) -> (Vec<String>, Option<ContentDiff>) {
        if !sensitive || self.sensitive {
            return (self.details.clone(), self.diff.clone());
        }
        let mut details = match &self.diff {
            Some(d) => d.sensitive_summary(),
            None => Vec::new(),
        };
        if !self.details.is_empty() {
            details.push(format!(
                "(sensitive: {} detail(s) hidden)",
                self.details.len()
            ));
        }
        (details, None)
    }

    /// Nothing to do.
    pub fn none() -> Self {
        Self::new(Action::None, Vec::new())
    }

    /// True when apply has something to do.
    pub fn is_pending(&self) -> bool {
        self.action != Action::None
    }
}

/// Why a resource could not be built, probed or applied.
#[derive(Debug, Error)]
pub enum ResourceError {
    /// The task's arguments are wrong; found before any host is touched.
    #[error("bad arguments for `{kind}`: {reason}")]
    BadArgs {
        /// Resource type.
        kind: String,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// The resource type does not exist.
    #[error("unknown resource type `{0}` (known: {known})", known = names().join(", "))]
    Unknown(String),
    /// The probe or the apply ran but did not succeed.
    #[error("{0}")]
    Failed(String),
    /// A step's guard found the host no longer as probed, so the step was not run.
    #[error("{what}: {message}")]
    Stale {
        /// The step (`writing /etc/hosts`).
        what: String,
        /// The guard's line, naming what changed.
        message: String,
    },
    /// The host could not be reached.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// What a resource needs from the engine while being built: where its `src` files live and how to render a
/// template with the task's variables. Kept as a narrow interface so resources stay ignorant of the model.
pub struct BuildCtx<'a> {
    /// Directories searched, in order, for relative `src` paths (module dir first, then the playbook dir).
    pub search: &'a [PathBuf],
    /// Renders template text with the task's variables; the name labels errors.
    pub render: &'a dyn Fn(&str, &str) -> Result<String, String>,
    /// True when the task is sensitive (reads a secret, or says `sensitive: true`): resources that show
    /// content keep it out of their change.
    pub sensitive: bool,
    /// True when template text (a template file; the name places its includes), already rendered by
    /// `render` as the third argument, renders anything from a secret variable.
    pub reads_secret: &'a dyn Fn(&str, &str, &str) -> bool,
    /// The run's cache of controller file digests, so a pinned pack is hashed once, not once per host.
    pub digests: &'a Digests,
}

impl BuildCtx<'_> {
    /// Finds a controller-side regular file (never a FIFO, which would block the read), looking in
    /// `sub` (e.g. `templates`) of each search dir and then in the dir itself, as Ansible roles do. The
    /// path comes back normalised (no `a/../b`), as errors and reports show it.
    pub fn find(&self, sub: &str, rel: &str) -> Result<PathBuf, String> {
        let p = Path::new(rel);
        if p.is_absolute() {
            return if p.is_file() {
                Ok(path_clean::clean(p))
            } else if p.exists() {
                Err(format!("{rel} is not a regular file"))
            } else {
                Err(format!("{rel} does not exist on the controller"))
            };
        }
        let mut tried = Vec::new();
        for dir in self.search {
            for cand in [dir.join(sub).join(rel), dir.join(rel)].map(|c| path_clean::clean(&c)) {
                if cand.is_file() {
                    return Ok(cand);
                }
                tried.push(cand.display().to_string());
            }
        }
        Err(format!("{rel} not found (looked in {})", tried.join(", ")))
    }
}

/// A desired state of one thing on one host.
#[async_trait]
pub trait Resource: Send + Sync {
    /// Short description for reports, e.g. `file /etc/hosts`.
    fn describe(&self) -> String;

    /// A read-only shell snippet printing facts with `fact KEY VALUE` (see the batch prelude). It must not
    /// change anything: plan and drift run it too.
    fn probe(&self) -> String;

    /// Decides the change from the probe's facts, without touching the host: what it shows and the
    /// steps apply will run for it.
    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError>;

    /// Makes exactly `change` on the host and returns what `register:` should see: by default its
    /// [`Change::steps`], through [`execute`].
    async fn apply(
        &self,
        change: &Change,
        host: &dyn Transport,
    ) -> Result<Registered, ResourceError> {
        execute(change, host).await
    }

    /// True when [`apply`](Resource::apply) is [`execute`] of the change's steps and nothing else, so
    /// those steps may run in a wave with other tasks' (types that talk to the host in apply in their
    /// own way say no).
    fn applies_by_steps(&self) -> bool {
        true
    }

    /// What the probe looks at, so a plan knows when an earlier pending change of the same run makes
    /// the probe's answer stale. Most types look at nothing another task writes.
    fn reads(&self) -> Reads {
        Reads::Nothing
    }

    /// What a pending `change` of this resource will do to the host, for the plan of later tasks on it.
    /// Unless a type says better, a change may do anything a free-form check could notice.
    fn effects(&self, _change: &Change) -> Vec<Effect> {
        vec![Effect::Other]
    }

    /// Plans against the host as the earlier pending changes of the run (`view`) will leave it; `None`
    /// when that cannot be known before apply. Types whose probe can be affected and whose state the
    /// view can describe (files) override this to plan with the simulated state.
    fn plan_in(&self, facts: &Facts, view: &HostView) -> Result<Option<Change>, ResourceError> {
        if view.unaffected(&self.reads()) {
            self.plan(facts).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The whole file this resource writes, when the controller knows all of its content: what
    /// `render` puts in its tree for review without touching a host. Types that change part of a file
    /// or whose result depends on the host have none.
    fn whole_file(&self) -> Option<WholeFile<'_>> {
        None
    }

    /// The file this resource edits part of (`lineinfile`, `xml`, …), for `render`, which applies the
    /// edit to the content earlier tasks leave there when the controller knows it.
    fn edited_path(&self) -> Option<&str> {
        None
    }

    /// The whole content this resource's edit makes of `old` (only for a type with an
    /// [`edited_path`](Resource::edited_path)).
    fn edit_content(&self, _old: &[u8]) -> Result<Vec<u8>, ResourceError> {
        Err(ResourceError::Failed(
            "this resource edits no file".to_string(),
        ))
    }

    /// The controller archive this resource unpacks and the host directory it unpacks into, for
    /// `render`, which reads a file an edit needs from the archive when no earlier task wrote it.
    fn archive(&self) -> Option<(&std::path::Path, &str)> {
        None
    }
}

/// A file as a resource will write it, whole: see [`Resource::whole_file`].
#[derive(Debug, Clone, Copy)]
pub struct WholeFile<'a> {
    /// The absolute path on the host.
    pub dest: &'a str,
    /// The exact bytes apply writes.
    pub content: &'a [u8],
    /// Mode, owner and group set on it.
    pub attrs: &'a Attrs,
    /// The content is key material or rendered for a sensitive task: never shown as it is.
    pub sensitive: bool,
    /// Hex sha256 of `content`, computed once when the resource was built: the last-apply record and
    /// `drift` compare files by it without hashing a large pack again.
    pub sha256: &'a str,
}

/// Whether a type's tasks write whole files ([`Resource::whole_file`]): `render` lists such a task even
/// when it does not run (a false `when`), when no resource is built for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// Each task writes one whole file.
    WholeFile,
    /// Anything else.
    Other,
}

/// Whether `drift` checks a type's tasks: a type that manages a state can drift from it; one that exists
/// to act or to check (`command`, `shell`, `wait_for`, `assert`, `slurp`) has nothing of its own to drift,
/// and its planned run is an action, not a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    /// A desired state `drift` compares with the host.
    State,
    /// An action or a check: never drift.
    Acts,
}

/// Builds a resource from its (already templated) arguments.
pub type Builder = fn(Value, &BuildCtx) -> Result<Box<dyn Resource>, ResourceError>;

const TYPES: &[(&str, Builder, Writes, Checked)] = &[
    ("assert", assert::build, Writes::Other, Checked::Acts),
    (
        "blockinfile",
        blockinfile::build,
        Writes::Other,
        Checked::State,
    ),
    (
        "command",
        command::build_command,
        Writes::Other,
        Checked::Acts,
    ),
    ("copy", copy::build, Writes::WholeFile, Checked::State),
    ("file", file::build, Writes::Other, Checked::State),
    ("get_url", get_url::build, Writes::Other, Checked::State),
    ("group", group::build, Writes::Other, Checked::State),
    (
        "hosts_entry",
        hosts_entry::build,
        Writes::Other,
        Checked::State,
    ),
    ("keystore", keystore::build, Writes::Other, Checked::State),
    (
        "lineinfile",
        lineinfile::build,
        Writes::Other,
        Checked::State,
    ),
    ("mount", mount::build, Writes::Other, Checked::State),
    ("mysql_db", mysql_db::build, Writes::Other, Checked::State),
    (
        "mysql_import",
        mysql_import::build,
        Writes::Other,
        Checked::State,
    ),
    (
        "mysql_user",
        mysql_user::build,
        Writes::Other,
        Checked::State,
    ),
    ("package", package::build, Writes::Other, Checked::State),
    ("service", service::build, Writes::Other, Checked::State),
    ("shell", command::build_shell, Writes::Other, Checked::Acts),
    ("slurp", slurp::build, Writes::Other, Checked::Acts),
    (
        "template",
        template::build,
        Writes::WholeFile,
        Checked::State,
    ),
    (
        "truststore",
        truststore::build,
        Writes::Other,
        Checked::State,
    ),
    ("unarchive", unarchive::build, Writes::Other, Checked::State),
    ("user", user::build, Writes::Other, Checked::State),
    ("wait_for", wait_for::build, Writes::Other, Checked::Acts),
    ("xml", xml::build, Writes::Other, Checked::State),
];

/// Names of every built-in resource type, for error messages and `validate`.
pub fn names() -> Vec<&'static str> {
    TYPES.iter().map(|(n, ..)| *n).collect()
}

/// True when `kind` names a built-in resource type.
pub fn is_known(kind: &str) -> bool {
    TYPES.iter().any(|(n, ..)| *n == kind)
}

/// True when tasks of `kind` write whole files whose content the controller knows (`copy`, `template`).
pub fn writes_whole_file(kind: &str) -> bool {
    TYPES
        .iter()
        .any(|(n, _, w, _)| *n == kind && *w == Writes::WholeFile)
}

/// True when `drift` compares tasks of `kind` with the host: types that manage a state. A type that
/// acts or checks (`command`, `shell`, `wait_for`, `assert`, `slurp`) is never drift, whatever its
/// guard: a command's planned run is what it is for, and a guard's failure (a missing `creates` marker,
/// a failing `unless` health check) says the action is due, not that managed state moved.
pub fn drift_checked(kind: &str) -> bool {
    TYPES
        .iter()
        .any(|(n, _, _, c)| *n == kind && *c == Checked::State)
}

/// Builds the resource `kind` from `args`.
pub fn build(kind: &str, args: Value, ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let (_, builder, ..) = TYPES
        .iter()
        .find(|(n, ..)| *n == kind)
        .ok_or_else(|| ResourceError::Unknown(kind.to_string()))?;
    builder(args, ctx)
}

/// Deserializes a resource's arguments, turning serde's message into a `BadArgs` that names the type and
/// the offending field (serde alone says "invalid type: integer, expected a string" without saying where).
pub fn parse_args<T: DeserializeOwned>(kind: &str, args: Value) -> Result<T, ResourceError> {
    serde_path_to_error::deserialize(args).map_err(|e| bad(kind, e.to_string()))
}

/// A `BadArgs` error for `kind`.
pub fn bad(kind: &str, reason: impl Into<String>) -> ResourceError {
    ResourceError::BadArgs {
        kind: kind.to_string(),
        reason: reason.into(),
    }
}

/// Runs `script` and turns a non-zero exit into `Failed` with the script's last output lines, so every
/// resource reports command failures the same way.
pub async fn run_ok(
    host: &dyn Transport,
    what: &str,
    script: &str,
) -> Result<crate::transport::Output, ResourceError> {
    let out = host.run(script).await?;
    if out.status != 0 {
        return Err(ResourceError::Failed(format!(
            "{what} failed (exit {}): {}",
            out.status,
            out.tail()
        )));
    }
    Ok(out)
}

/// Text for a diff, or `None` when the bytes are not text (binary content gets a checksum line instead).
pub fn as_text(bytes: &[u8]) -> Option<String> {
    if bytes.contains(&0) {
        return None;
    }
    String::from_utf8(bytes.to_vec()).ok()
}

/// Hex sha256 of `bytes`, the identity of file content everywhere in the engine.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(bytes);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Deserializes a field that Ansible users write either as one string or as a list of strings (package
/// names, supplementary groups), so both spellings work and the resource only sees a list.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    use serde::de::Error;
    match <Value as serde::Deserialize>::deserialize(d)? {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(D::Error::custom(format!("expected a string, got {other}"))),
            })
            .collect(),
        other => Err(D::Error::custom(format!(
            "expected a string or a list of strings, got {other}"
        ))),
    }
}

/// Helpers shared by the resource tests: building without a playbook, one probe-plan-apply-probe-plan
/// cycle, hand-made facts, stand-in host commands and a loopback HTTP server.
#[cfg(test)]
pub(crate) mod testkit {
    use super::*;
    use crate::transport::{sh_quote, LocalTransport, Output, ProbeBatch};

    /// Builds `kind` the way the engine would, with no search directories and templates left as they are
    /// (tests pass absolute controller paths).
    pub(crate) fn build_plain(kind: &str, args: Value) -> Result<Box<dyn Resource>, ResourceError> {
        let render = |text: &str, _name: &str| Ok(text.to_string());
        let ctx = BuildCtx {
            search: &[],
            render: &render,
            sensitive: false,
            reads_secret: &|_, _, _| false,
            digests: &Digests::default(),
        };
        build(kind, args, &ctx)
    }

    /// Like [`build_plain`] for arguments that must be valid.
    pub(crate) fn res(kind: &str, args: Value) -> Box<dyn Resource> {
        build_plain(kind, args).unwrap_or_else(|e| panic!("building {kind}: {e}"))
    }

    /// The `BadArgs` reason of arguments that must be rejected, checked to name `field`.
    pub(crate) fn bad_args(kind: &str, args: Value, field: &str) -> String {
        match build_plain(kind, args) {
            Err(ResourceError::BadArgs { reason, .. }) => {
                assert!(reason.contains(field), "`{reason}` does not name `{field}`");
                reason
            }
            Err(e) => panic!("expected BadArgs naming {field}, got {e}"),
            Ok(r) => panic!("expected BadArgs naming {field}, built {}", r.describe()),
        }
    }

    /// A file holding `content` in a fresh temporary directory (kept alive by the returned guard).
    pub(crate) fn file_with(content: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf");
        std::fs::write(&path, content).unwrap();
        (dir, path.display().to_string())
    }

    /// The text of the file at `path`.
    pub(crate) fn read(path: &str) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    /// The permission bits of `path` (not following a symlink).
    pub(crate) fn mode_of(path: impl AsRef<std::path::Path>) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    /// `base` with the fields of `extra` set over it: one test's variation of the common arguments.
    pub(crate) fn merged(mut base: Value, extra: Value) -> Value {
        for (k, v) in extra.as_object().expect("extra arguments are an object") {
            base[k] = v.clone();
        }
        base
    }

    /// Runs `keytool ARGS -storepass:env … -keystore STORE` with `password`, as an operator would check a
    /// store: whether it succeeded, and what it printed.
    pub(crate) fn keytool(
        store: &std::path::Path,
        password: &str,
        args: &[&str],
    ) -> (bool, String) {
        let out = std::process::Command::new("keytool")
            .args(args)
            .args(["-storepass:env", "T_PW", "-keystore"])
            .arg(store)
            .env("T_PW", password)
            .output()
            .expect("run keytool");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Runs `res`'s probe on its own (through a [`ProbeBatch`], as the engine does) and returns its facts.
    pub(crate) async fn probe_now(
        res: &dyn Resource,
        host: &dyn Transport,
    ) -> Result<Facts, ResourceError> {
        let mut batch = ProbeBatch::default();
        batch.push(res.probe());
        let answer = batch.run(host).await?.pop().unwrap_or_default();
        if answer.status != 0 {
            return Err(ResourceError::Failed(format!(
                "probing {} failed (exit {}): {}",
                res.describe(),
                answer.status,
                answer.messages.join("\n")
            )));
        }
        Ok(answer.facts)
    }

    /// Probes (through a [`ProbeBatch`], as the engine does) and plans.
    pub(crate) async fn plan_now(
        res: &dyn Resource,
        host: &dyn Transport,
    ) -> Result<Change, ResourceError> {
        res.plan(&probe_now(res, host).await?)
    }

    /// Plans, applies when something is pending, then plans again: the second change must be `None` for
    /// an idempotent resource.
    pub(crate) async fn converge(res: &dyn Resource, host: &dyn Transport) -> (Change, Change) {
        let first = plan_now(res, host)
            .await
            .unwrap_or_else(|e| panic!("planning {}: {e}", res.describe()));
        if first.is_pending() {
            res.apply(&first, host)
                .await
                .unwrap_or_else(|e| panic!("applying {}: {e}", res.describe()));
        }
        let second = plan_now(res, host)
            .await
            .unwrap_or_else(|e| panic!("re-planning {}: {e}", res.describe()));
        (first, second)
    }

    /// [`converge`] across two runs, for resources that read controller state while being built (a
    /// keystore's CA and key, issued by its first apply): plans, applies, builds `kind` from `args` again
    /// as the next run would, and plans that. The first change carries what apply registered.
    pub(crate) async fn converge_runs(
        kind: &str,
        args: Value,
        host: &dyn Transport,
    ) -> (Change, Change) {
        let r = res(kind, args.clone());
        let mut first = plan_now(r.as_ref(), host)
            .await
            .unwrap_or_else(|e| panic!("planning {}: {e}", r.describe()));
        if first.is_pending() {
            first.result = r
                .apply(&first, host)
                .await
                .unwrap_or_else(|e| panic!("applying {}: {e}", r.describe()));
        }
        let again = res(kind, args);
        let second = plan_now(again.as_ref(), host)
            .await
            .unwrap_or_else(|e| panic!("re-planning {}: {e}", again.describe()));
        (first, second)
    }

    /// Facts as a probe printing exactly `pairs` would report them, for planning against states this
    /// machine must not be put in (packages, services, accounts).
    pub(crate) async fn facts_from(pairs: &[(&str, &str)]) -> Facts {
        let mut batch = ProbeBatch::default();
        let script: String = pairs
            .iter()
            .map(|(k, v)| format!("fact {} {}\n", sh_quote(k), sh_quote(v)))
            .collect();
        batch.push(format!("{script}true"));
        let answers = batch.run(&LocalTransport::new("t")).await;
        answers.expect("local sh runs").remove(0).facts
    }

    /// A directory of stand-in commands put first on the `PATH` of every script run through it, so the
    /// real probe and apply scripts of `package` and `service` run end to end against fakes rather than
    /// this machine's package manager and init system.
    pub(crate) struct FakeTools {
        dir: tempfile::TempDir,
        local: LocalTransport,
    }

    impl FakeTools {
        /// An empty set of fakes: until tools are added, scripts see the real commands.
        pub(crate) fn new() -> Self {
            Self {
                dir: tempfile::tempdir().expect("temp dir"),
                local: LocalTransport::new("fake"),
            }
        }

        /// The directory, also usable as the fakes' scratch space.
        pub(crate) fn dir(&self) -> &Path {
            self.dir.path()
        }

        /// Adds the command `name` running `body` under `sh`. Written by a child shell, not by this
        /// process, so no test thread's fork can hold it open for writing (ETXTBSY) when it is run.
        pub(crate) async fn tool(&self, name: &str, body: &str) {
            let path = sh_quote(&self.dir.path().join(name).display().to_string());
            let script = format!(
                "cat > {path} <<'__FAKE__'\n#!/bin/sh\n{body}\n__FAKE__\nchmod 755 {path}\n"
            );
            let out = self.local.run(&script).await.expect("local sh runs");
            assert_eq!(out.status, 0, "writing fake {name}: {}", out.tail());
        }
    }

    #[async_trait]
    impl Transport for FakeTools {
        fn host(&self) -> &str {
            "fake"
        }

        async fn run(&self, script: &str) -> Result<Output, TransportError> {
            let dir = sh_quote(&self.dir.path().display().to_string());
            let script = format!("PATH={dir}:$PATH; export PATH\n{script}");
            self.local.run(&script).await
        }

        async fn upload(&self, local: &Path, remote: &str) -> Result<(), TransportError> {
            self.local.upload(local, remote).await
        }

        fn stats(&self) -> crate::transport::TransportStats {
            self.local.stats()
        }
    }

    /// Serves `body` with status 200 to every request on a loopback port, on a thread that lives as long
    /// as the test binary; returns the port.
    pub(crate) fn serve_http(body: Vec<u8>) -> u16 {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            }
        });
        port
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::{file_with, plan_now, read, res, FakeTools};
    use super::*;
    use crate::transport::{LocalTransport, Output};
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A real transport that counts its round trips, to show what apply sends.
    struct Counting<T> {
        inner: T,
        runs: AtomicUsize,
    }

    impl<T> Counting<T> {
        fn new(inner: T) -> Self {
            Self {
                inner,
                runs: AtomicUsize::new(0),
            }
        }

        fn take(&self) -> usize {
            self.runs.swap(0, Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl<T: Transport> Transport for Counting<T> {
        fn host(&self) -> &str {
            self.inner.host()
        }

        async fn run(&self, script: &str) -> Result<Output, TransportError> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            self.inner.run(script).await
        }

        async fn upload(&self, local: &Path, remote: &str) -> Result<(), TransportError> {
            self.inner.upload(local, remote).await
        }

        fn stats(&self) -> crate::transport::TransportStats {
            self.inner.stats()
        }
    }

    /// Plans `r` through `t`, then applies: apply must send exactly the planned steps, one round trip
    /// each, and no probe of its own.
    async fn apply_round_trips<T: Transport>(r: &dyn Resource, t: &Counting<T>) -> usize {
        let change = plan_now(r, t).await.unwrap();
        assert!(change.is_pending(), "{} has nothing to do", r.describe());
        assert_eq!(change.steps.len(), 1, "{}", r.describe());
        t.take();
        r.apply(&change, t)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", r.describe()));
        t.take()
    }

    /// A wave is one round trip; it stops at a change whose guard finds the host changed since the
    /// probe, saying so as apply of that change alone would, and the changes after it never run.
    #[tokio::test]
    async fn a_wave_is_one_round_trip_and_stops_at_a_stale_guard() {
        let t = Counting::new(LocalTransport::new("t"));
        let d = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            d.path().join("a").display().to_string(),
            d.path().join("b").display().to_string(),
            d.path().join("c").display().to_string(),
        );
        std::fs::write(&b, "changed by someone\n").unwrap();
        let write = |path: &str, guards| {
            Change::new(Action::Create, vec![]).then(Step::run(
                format!("writing {path}"),
                guards,
                format!("set -e\necho x > {}", sh_quote(path)),
            ))
        };
        let first = write(&a, vec![]);
        let stale = write(
            &b,
            vec![Guard::File {
                path: b.clone(),
                sha256: None,
            }],
        );
        let last = write(&c, vec![]);
        let out = execute_wave(&[&first, &stale, &last], &t).await.unwrap();
        assert_eq!(t.take(), 1);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].is_ok());
        match &out[1] {
            Err(ResourceError::Stale { what, message }) => {
                assert_eq!(what, &format!("writing {b}"));
                assert!(message.ends_with(GUARD_MESSAGE), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(read(&a), "x\n");
        assert_eq!(read(&b), "changed by someone\n");
        assert!(!std::path::Path::new(&c).exists());

        // A failing command of a `set -e` script fails its change, naming the step.
        let failing = Change::new(Action::Create, vec![]).then(Step::run(
            "making d",
            vec![],
            "set -e\nfalse\necho never",
        ));
        let out = execute_wave(&[&failing, &last], &t).await.unwrap();
        match &out[..] {
            [Err(ResourceError::Failed(m))] => {
                assert!(m.starts_with("making d failed (exit 1)"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert!(!std::path::Path::new(&c).exists());
    }

    /// The types that used to probe again inside apply (the editors, mount, group, user) now send their
    /// one planned step and nothing else.
    #[tokio::test]
    async fn the_former_re_probers_apply_in_one_round_trip() {
        let t = Counting::new(LocalTransport::new("t"));
        let (_d, path) = file_with("a\n<r><x>1</x></r>\n");
        let (_x, xml) = file_with("<r><x>1</x></r>\n");
        let (_f, fstab) = file_with("UUID=1 / ext4 defaults 0 1\n");
        for (kind, args) in [
            ("lineinfile", json!({"path": path, "line": "b"})),
            ("blockinfile", json!({"path": path, "block": "c"})),
            (
                "hosts_entry",
                json!({"ip": "10.0.0.9", "names": "db", "path": path}),
            ),
            ("xml", json!({"path": xml, "xpath": "/r/x", "value": "2"})),
            (
                "mount",
                json!({"path": "/srv/x", "src": "h:/e", "fstype": "nfs", "state": "present",
                       "fstab": fstab}),
            ),
        ] {
            let r = res(kind, args);
            assert_eq!(apply_round_trips(r.as_ref(), &t).await, 1, "{kind}");
        }
        assert!(read(&path).contains("10.0.0.9"));

        let fake = FakeTools::new();
        fake.tool("getent", "exit 2").await;
        fake.tool("groupadd", "exit 0").await;
        fake.tool("useradd", "exit 0").await;
        let t = Counting::new(fake);
        let r = res("group", json!({"name": "app"}));
        assert_eq!(apply_round_trips(r.as_ref(), &t).await, 1, "group");
        let r = res("user", json!({"name": "app"}));
        assert_eq!(apply_round_trips(r.as_ref(), &t).await, 1, "user");
    }

    /// `render` lists the types the table marks as writing whole files, and their resources give it.
    #[test]
    fn whole_file_types_give_the_file_they_write() {
        let r = res(
            "copy",
            json!({"dest": "/etc/x", "content": "a\n", "mode": "0600"}),
        );
        let w = r.whole_file().expect("copy writes a whole file");
        assert_eq!(
            (w.dest, w.content, w.attrs.mode, w.sensitive),
            ("/etc/x", &b"a\n"[..], Some(FileMode(0o600)), false)
        );
        let dir = res("file", json!({"path": "/etc/x", "state": "directory"}));
        assert!(dir.whole_file().is_none());
        let marked: Vec<_> = names()
            .into_iter()
            .filter(|n| writes_whole_file(n))
            .collect();
        assert_eq!(marked, ["copy", "template"]);
    }

    /// `drift` leaves out the types that act or check, and only those: the table is the one place
    /// that decides it.
    #[test]
    fn drift_checks_every_type_but_the_ones_that_act() {
        let acting: Vec<_> = names().into_iter().filter(|n| !drift_checked(n)).collect();
        assert_eq!(acting, ["assert", "command", "shell", "slurp", "wait_for"]);
        assert!(!drift_checked("no_such_type"));
    }

    /// A planned change carries its scripts, secrets included, but its `Debug` (what a log line would
    /// show) never does.
    #[tokio::test]
    async fn a_change_shows_what_its_steps_do_never_their_scripts() {
        let t = LocalTransport::new("t");
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("pw").display().to_string();
        let r = res(
            "copy",
            json!({"dest": dest, "content": "hunter2-very-secret\n"}),
        );
        let change = plan_now(r.as_ref(), &t).await.unwrap();
        let Step::Run { script, .. } = &change.steps[0] else {
            panic!("{:?}", change.steps)
        };
        assert!(
            script.contains("aHVudGVyMi12ZXJ5LXNlY3JldAo="),
            "the step writes the content"
        );
        let shown = format!("{:?}", change.steps);
        assert_eq!(shown, format!("[Run {{ what: \"writing {dest}\", .. }}]"));
    }

    /// A step runs only while the facts it was decided from hold, checked in the same round trip.
    #[tokio::test]
    async fn a_guard_that_no_longer_holds_stops_the_step() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with("old\n");
        let marker = format!("{path}.ran");
        let step = Step::run(
            "touching",
            vec![Guard::File {
                path: path.clone(),
                sha256: Some(sha256_hex(b"old\n")),
            }],
            format!("touch {}", sh_quote(&marker)),
        );
        let change = Change::new(Action::Update, vec![]).then(step);
        std::fs::write(&path, "new\n").unwrap();
        let err = execute(&change, &t).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("touching: {path} changed on the host since it was probed; run plan again")
        );
        assert!(!Path::new(&marker).exists());
        std::fs::write(&path, "old\n").unwrap();
        execute(&change, &t).await.unwrap();
        assert!(Path::new(&marker).exists());
    }
}
