//! Resolving the inventory's secret references on the controller (see `model::reference`): reading an
//! environment variable or an owner-only file, running a command, or taking an entry of the
//! age-encrypted secrets file. One [`Resolver`] serves one run: each reference is resolved the first
//! time it is asked for and remembered, so a `cmd` runs once and the secrets file is decrypted once,
//! however many variables and hosts use them; the next run asks again (a rotated secret is seen).

pub mod store;

use crate::model::reference::{Reference, ReferenceError};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The run's cache of resolved references.
#[derive(Default)]
pub struct Resolver {
    identity: Option<PathBuf>,
    values: Mutex<HashMap<Reference, String>>,
    stores: Mutex<HashMap<PathBuf, BTreeMap<String, String>>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The values are secrets: never shown, not even in a debug print.
        f.debug_struct("Resolver")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver decrypting secrets files with `identity` (see [`store::identity_path`] for the
    /// default).
    pub fn new(identity: Option<&Path>) -> Self {
        Self {
            identity: identity.map(Path::to_path_buf),
            ..Self::default()
        }
    }

    /// The value `r` refers to, resolved now if this run has not resolved it yet; `{ secret: NAME }`
    /// is an entry of the secrets file `store`.
    pub fn resolve(&self, r: &Reference, store: &Path) -> Result<String, ReferenceError> {
        if let Some(v) = self.values.lock().expect("resolver lock").get(r) {
            return Ok(v.clone());
        }
        let v = match r {
            Reference::Env(name) => match std::env::var(name) {
                Ok(v) => v,
                Err(std::env::VarError::NotPresent) => {
                    return Err(ReferenceError::EnvUnset(name.clone()))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(ReferenceError::EnvNotUnicode(name.clone()))
                }
            },
            Reference::File(path) => read_private(path)?,
            Reference::Cmd(cmd) => run(cmd)?,
            Reference::Secret(name) => self.entry(name, store)?,
        };
        self.values
            .lock()
            .expect("resolver lock")
            .insert(r.clone(), v.clone());
        Ok(v)
    }

    fn entry(&self, name: &str, path: &Path) -> Result<String, ReferenceError> {
        let mut stores = self.stores.lock().expect("resolver lock");
        if !stores.contains_key(path) {
            let identity = store::identity_path(self.identity.as_deref()).ok_or_else(|| {
                ReferenceError::NoIdentity {
                    path: path.to_path_buf(),
                }
            })?;
            stores.insert(path.to_path_buf(), store::read(path, &identity)?);
        }
        stores[path]
            .get(name)
            .cloned()
            .ok_or_else(|| ReferenceError::NoEntry {
                name: name.to_string(),
                path: path.to_path_buf(),
            })
    }
}

/// A file's content with one trailing newline trimmed, refused when anyone but its owner may read
/// or write it: a secret in a world-readable file is no secret.
fn read_private(path: &Path) -> Result<String, ReferenceError> {
    let failed = |reason| ReferenceError::FileRead {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(failed)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode != 0o600 && mode != 0o400 {
        return Err(ReferenceError::FileTooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let bytes = std::fs::read(path).map_err(failed)?;
    let mut text = String::from_utf8(bytes).map_err(|_| ReferenceError::NotUnicode)?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// Runs `cmd` through `sh -c` with the controller's stdin (so `pass` or `gpg` can ask for a
/// passphrase) and returns its stdout, trimmed.
fn run(cmd: &str) -> Result<String, ReferenceError> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::inherit())
        .output()
        .map_err(ReferenceError::CmdSpawn)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(ReferenceError::CmdFailed {
            status: out.status,
            stderr: stderr.lines().next().unwrap_or("").trim().to_string(),
        });
    }
    let text = String::from_utf8(out.stdout).map_err(|_| ReferenceError::NotUnicode)?;
    Ok(text.trim().to_string())
}
