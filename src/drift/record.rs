//! The last-apply record: after every apply that succeeded on a host, `<inventory dir>/.apim-state/
//! applied/<host>.json` (0600, written atomically) says when, from which inventory and playbook, and
//! which whole files (`copy`, `template`) were left with which content. `drift` reads it to say
//! whether a drifted file changed on the host or in the inventory since then. It holds digests, never
//! content, so a secret rendered into a file is not copied into it.

use crate::execute::{ManagedFile, NodeReport, Outcome, SkipCause};
use crate::plan::Prepared;
use crate::resources::sha256_hex;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// One host's record of its last successful apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastApply {
    /// When the apply finished, in seconds since the Unix epoch.
    pub applied_at: u64,
    /// sha256 of the inventory file and the playbook file as they were (see [`sources_sha256`]).
    pub sources_sha256: String,
    /// Every whole file the apply left on the host, in task order.
    pub files: Vec<RecordedFile>,
}

/// A whole file as the last apply left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedFile {
    /// The task that manages it.
    pub task: String,
    /// Its dest, content digest and attributes.
    #[serde(flatten)]
    pub file: ManagedFile,
}

impl LastApply {
    /// The recorded state of `dest`: the last task writing it is what the host was left with.
    pub fn file(&self, dest: &str) -> Option<&ManagedFile> {
        self.files
            .iter()
            .rev()
            .find(|f| f.file.dest == dest)
            .map(|f| &f.file)
    }
}

/// Why a record could not be read or written.
#[derive(Debug, Error)]
pub enum RecordError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The record (or its directory).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a record.
    #[error("{path}: not a last-apply record: {source}")]
    Parse {
        /// The record.
        path: PathBuf,
        /// What serde found wrong.
        #[source]
        source: serde_json::Error,
    },
}

/// The directory of the records of the inventory at `inventory`.
pub fn dir(inventory: &Path) -> PathBuf {
    let base = inventory.parent().unwrap_or(Path::new("."));
    base.join(".apim-state").join("applied")
}

/// The record file of `host`.
fn path(inventory: &Path, host: &str) -> PathBuf {
    dir(inventory).join(format!("{host}.json"))
}

/// sha256 of the inventory file and the playbook file (the files themselves; modules and `-e` are not
/// in it, the per-file digests are what `drift` compares).
pub fn sources_sha256(p: &Prepared) -> String {
    let mut bytes = Vec::new();
    for f in [&p.inv.path, &p.pb.path] {
        bytes.extend(f.display().to_string().as_bytes());
        bytes.push(0);
        bytes.extend(std::fs::read(f).unwrap_or_default());
        bytes.push(0);
    }
    sha256_hex(&bytes)
}

/// `host`'s record, `None` when it has none (never applied by a version that records).
pub fn load(inventory: &Path, host: &str) -> Result<Option<LastApply>, RecordError> {
    let path = path(inventory, host);
    match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RecordError::Io { path, source }),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| RecordError::Parse { path, source }),
    }
}

/// True when every task of a host's run succeeded in a way that leaves it as the inventory says: made
/// or found unchanged, or not run because its condition is false or nobody notified it.
fn converged(reports: &[&NodeReport]) -> bool {
    reports.iter().all(|r| match &r.outcome {
        Outcome::Unchanged | Outcome::Change { .. } => true,
        Outcome::Skipped { cause, .. } => {
            matches!(cause, SkipCause::Condition | SkipCause::NotNotified)
        }
        _ => false,
    })
}

/// Writes the record of every host of an apply's `reports` on which everything succeeded; returns the
/// hosts recorded. A host with a failure keeps its previous record.
pub fn write_applied(
    p: &Prepared,
    reports: &[NodeReport],
    applied_at: u64,
) -> Result<Vec<String>, RecordError> {
    let sources = sources_sha256(p);
    let mut written = Vec::new();
    for host in p.graph.hosts.keys() {
        let mine: Vec<&NodeReport> = reports.iter().filter(|r| &r.host == host).collect();
        if mine.is_empty() || !converged(&mine) {
            continue;
        }
        let record = LastApply {
            applied_at,
            sources_sha256: sources.clone(),
            files: mine
                .iter()
                .filter(|r| !matches!(r.outcome, Outcome::Skipped { .. }))
                .filter_map(|r| {
                    r.file.clone().map(|file| RecordedFile {
                        task: r.task.clone(),
                        file,
                    })
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&record).expect("JSON of a record") + "\n";
        make_dir(&dir(&p.inv.path))?;
        write_atomic(&path(&p.inv.path, host), text.as_bytes(), 0o600)?;
        written.push(host.clone());
    }
    Ok(written)
}

/// Makes the records' directory (0700: it sits next to the cluster CA's keys) when it is missing.
fn make_dir(dir: &Path) -> Result<(), RecordError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| RecordError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// Writes `bytes` to `path` through a temp file in the same directory that is renamed into place: a
/// reader (node_exporter, the next `drift`, systemd) sees the old file or the new one, never a part. The
/// file gets exactly `mode`: set after opening, so neither the umask nor a temp file a killed run left
/// with other bits narrows a file meant to be readable by another user.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), RecordError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RecordError::Io { path, source }
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| {
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_the_last_writer_of_a_dest_wins() {
        let d = tempfile::tempdir().unwrap();
        let inv = d.path().join("inventory.yaml");
        let file = |task: &str, sha: &str| RecordedFile {
            task: task.into(),
            file: ManagedFile {
                dest: "/etc/a".into(),
                sha256: sha.into(),
                mode: Some("0640".into()),
                owner: None,
                group: None,
            },
        };
        let rec = LastApply {
            applied_at: 7,
            sources_sha256: "s".into(),
            files: vec![file("first", "1"), file("second", "2")],
        };
        let text = serde_json::to_string(&rec).unwrap();
        make_dir(&dir(&inv)).unwrap();
        write_atomic(&path(&inv, "h"), text.as_bytes(), 0o600).unwrap();
        let back = load(&inv, "h").unwrap().unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.file("/etc/a").unwrap().sha256, "2");
        assert!(load(&inv, "other").unwrap().is_none());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path(&inv, "h"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(path(&inv, "bad"), "{").unwrap();
        assert!(matches!(load(&inv, "bad"), Err(RecordError::Parse { .. })));
    }

    #[test]
    fn an_atomic_write_gets_exactly_its_mode_whatever_temp_file_was_left() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("drift.prom");
        let left = d
            .path()
            .join(format!(".drift.prom.tmp.{}", std::process::id()));
        std::fs::write(&left, "torn").unwrap();
        std::fs::set_permissions(&left, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&target, b"x 1\n", 0o644).unwrap();
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(std::fs::read(&target).unwrap(), b"x 1\n");
        assert!(!left.exists());
    }
}
