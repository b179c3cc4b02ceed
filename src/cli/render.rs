//! `render`: every whole file the plan's `copy` and `template` tasks would write (and the partial edits of
//! files the controller knows, applied), put under
//! `DIR/<host>/<absolute dest>` with `DIR/index.json` saying what each task's file became, so an operator
//! reviews exact configs before an apply and tests read them without a lab. No host is touched: the
//! files come from what preparing the run (as `validate` does) already built on the controller.
//!
//! The tree is made in a sibling directory and renamed into place when complete, so a failed render
//! leaves the previous tree (or none), never a half one that looks complete.

use anyhow::{bail, Context, Result};
use apim_provision::plan::{Outcome, Prepared, RenderedFile, KNOWN_AFTER_APPLY};
use apim_provision::report::mask::MASK;
use serde_json::{json, Map, Value};
use std::path::{Component, Path, PathBuf};

/// The index file, which also marks a directory as render's own (and so one it may replace).
pub const INDEX: &str = "index.json";

/// Renders `p` into `out` and returns the one-line summary.
pub fn render(p: &Prepared, out: &Path) -> Result<String> {
    let replaces = check_out(out)?;
    let mut hosts = Vec::new();
    for host in p.graph.hosts.keys() {
        if !is_plain_name(host) {
            bail!("host `{host}` cannot name a directory under --out");
        }
        hosts.push((host.as_str(), p.render_host(host)?));
    }
    let tmp = Scratch::new(sibling(out, "render-tmp")?)?;
    let mut index = Map::new();
    let mut written = 0;
    for (host, files) in &hosts {
        let mut entries = Vec::new();
        for f in files {
            let file = match &f.outcome {
                Outcome::Written(content) => {
                    let rel = Path::new(host).join(relative(f)?);
                    write(p, f, &tmp.path.join(&rel), &out.join(&rel), content)?;
                    written += 1;
                    Some(rel)
                }
                _ => None,
            };
            entries.push(entry(p, f, file.as_deref()));
        }
        index.insert(host.to_string(), Value::Array(entries));
    }
    let count = |pick: fn(&Outcome) -> bool| {
        hosts
            .iter()
            .flat_map(|(_, fs)| fs)
            .filter(|f| pick(&f.outcome))
            .count()
    };
    let not_written = count(|o| matches!(o, Outcome::NotWritten(_)));
    let skipped = count(|o| matches!(o, Outcome::Skipped));
    let undecided = count(|o| matches!(o, Outcome::Undecided(_)));
    let doc = json!({
        "inventory": p.inv.path.display().to_string(),
        "playbook": p.pb.path.display().to_string(),
        "placeholders": {"secret": MASK, "registered": KNOWN_AFTER_APPLY},
        "written": written,
        "hosts": index,
    });
    let text = serde_json::to_string_pretty(&doc)? + "\n";
    std::fs::write(tmp.path.join(INDEX), p.masker.mask(&text).as_bytes())
        .with_context(|| format!("writing {}", tmp.path.join(INDEX).display()))?;
    tmp.publish(out, replaces)?;
    Ok(format!(
        "Rendered {written} files for {} hosts in {} ({not_written} not written, {skipped} skipped, \
         {undecided} undecided: see {}).",
        hosts.len(),
        out.display(),
        out.join(INDEX).display()
    ))
}

/// Whether `out` exists (and will be replaced). A directory that is neither empty nor render's own is
/// refused: replacing it would delete someone's files.
fn check_out(out: &Path) -> Result<bool> {
    let shown = out.display();
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("--out {shown}")),
        Ok(m) if !m.is_dir() => bail!("--out {shown} exists and is not a directory"),
        Ok(_) => {
            let empty = std::fs::read_dir(out)
                .with_context(|| format!("--out {shown}"))?
                .next()
                .is_none();
            if !empty && !out.join(INDEX).is_file() {
                bail!(
                    "--out {shown} exists, is not empty and was not made by render (it has no {INDEX}): \
                     choose another directory or empty it"
                );
            }
            Ok(true)
        }
    }
}

/// A directory next to `out` named after it, for the tree being made and the one being replaced: on
/// the same filesystem, so renaming is atomic.
fn sibling(out: &Path, what: &str) -> Result<PathBuf> {
    let Some(name) = out.file_name() else {
        bail!("--out {} does not name a directory", out.display());
    };
    let name = format!("{}.{what}-{}", name.to_string_lossy(), std::process::id());
    Ok(out.with_file_name(name))
}

/// True when `name` is one plain path component (no `/`, `.` or `..`).
fn is_plain_name(name: &str) -> bool {
    let mut c = Path::new(name).components();
    matches!((c.next(), c.next()), (Some(Component::Normal(_)), None))
}

/// The file's place under its host directory: its dest without the leading `/`, with `..` resolved, so
/// no dest can reach outside the tree.
fn relative(f: &RenderedFile) -> Result<PathBuf> {
    let dest = f.dest.as_deref().unwrap_or_default();
    let clean = path_clean::clean(dest);
    match clean.strip_prefix("/") {
        Ok(rel) if !rel.as_os_str().is_empty() => Ok(rel.to_path_buf()),
        _ => bail!("dest `{dest}` is not a file path"),
    }
}

/// Writes one rendered file at `path` in the scratch tree, an error naming its task and where the file
/// goes (`shown`).
fn write(p: &Prepared, f: &RenderedFile, path: &Path, shown: &Path, content: &[u8]) -> Result<()> {
    let t = p.task(f.node);
    let at = || format!("{}: task `{}`: writing {}", t.loc, t.name, shown.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(at)?;
    }
    std::fs::write(path, content).with_context(at)
}

/// The index entry of one file.
fn entry(p: &Prepared, f: &RenderedFile, file: Option<&Path>) -> Value {
    let t = p.task(f.node);
    let (status, why) = match &f.outcome {
        Outcome::Written(_) => ("written", None),
        Outcome::NotWritten(why) => ("not written", Some(why.as_str())),
        Outcome::Skipped => ("skipped", Some("its `when` is false")),
        Outcome::Undecided(why) => ("undecided", Some(why.as_str())),
    };
    let mut e = json!({
        "task": t.name,
        "type": t.kind,
        "location": t.loc.to_string(),
        "dest": f.dest,
        "sensitive": f.sensitive,
        "known_after_apply": f.known_after_apply,
        "status": status,
    });
    let fields = [
        ("file", file.map(|x| x.display().to_string())),
        ("why", why.map(str::to_string)),
        ("mode", f.attrs.mode.map(|m| m.to_string())),
        ("owner", f.attrs.owner.clone()),
        ("group", f.attrs.group.clone()),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            e[k] = v.into();
        }
    }
    e
}

/// The tree being made; removed unless it was published.
struct Scratch {
    path: PathBuf,
    published: bool,
}

impl Scratch {
    /// Creates the directory (refusing one that exists: it would be another render's).
    fn new(path: PathBuf) -> Result<Self> {
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            path,
            published: false,
        })
    }

    /// Puts the finished tree at `out`, moving a previous one (`replaces`) aside first and removing it
    /// after, so `out` is always either the old tree, absent for a moment, or the new one.
    fn publish(mut self, out: &Path, replaces: bool) -> Result<()> {
        let old = sibling(out, "render-old")?;
        if replaces {
            std::fs::rename(out, &old)
                .with_context(|| format!("moving the previous {} aside", out.display()))?;
        }
        if let Err(e) = std::fs::rename(&self.path, out) {
            if replaces {
                let _ = std::fs::rename(&old, out);
            }
            return Err(e).with_context(|| format!("renaming the render into {}", out.display()));
        }
        self.published = true;
        if replaces {
            std::fs::remove_dir_all(&old)
                .with_context(|| format!("removing the previous render at {}", old.display()))?;
        }
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
