//! Variables whose value is a reference to a secret kept outside the inventory, so that a committed
//! inventory holds no password: `{ env: NAME }`, `{ file: path }`, `{ cmd: "pass show x" }` or
//! `{ secret: NAME }` (an entry of the inventory's age-encrypted secrets file). The model only reads
//! and checks what is written; `crate::secrets` resolves a reference on the controller.

use super::location::Location;
use std::fmt;
use std::path::PathBuf;
use thiserror::Error;

/// Where a secret comes from. Paths are made absolute (against the inventory's directory, `~` expanded)
/// when the inventory is read, so the same reference means the same file wherever it is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// An environment variable of the controller.
    Env(String),
    /// A file on the controller, readable by its owner only (0600 or 0400).
    File(PathBuf),
    /// A command run through `sh -c` on the controller; its stdout, trimmed.
    Cmd(String),
    /// An entry of the inventory's age-encrypted secrets file.
    Secret(String),
}

/// The keys that make a one-key mapping a reference rather than a value.
const KINDS: [&str; 4] = ["env", "file", "cmd", "secret"];

impl Reference {
    /// The reference `value` is, if it is one: a mapping with exactly one key among `env`, `file`,
    /// `cmd` and `secret`. A mapping of other or more keys is an ordinary value; a reference whose
    /// target is not a non-empty string is an error, since it can only be a typo.
    pub fn of(value: &serde_json::Value, dir: &std::path::Path) -> Option<Result<Self, String>> {
        let map = value.as_object().filter(|m| m.len() == 1)?;
        let (kind, target) = map.iter().next()?;
        if !KINDS.contains(&kind.as_str()) {
            return None;
        }
        let Some(target) = target.as_str().filter(|t| !t.trim().is_empty()) else {
            return Some(Err(format!(
                "`{{ {kind}: ... }}` is a secret reference and needs a non-empty string"
            )));
        };
        Some(Ok(match kind.as_str() {
            "env" => Reference::Env(target.to_string()),
            "file" => Reference::File(dir.join(expand_home(target))),
            "cmd" => Reference::Cmd(target.to_string()),
            _ => Reference::Secret(target.to_string()),
        }))
    }
}

/// `~` and `~/x` as the user's home; anything else as written.
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix('~'), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            PathBuf::from(home).join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(path),
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Env(n) => write!(f, "{{ env: {n} }}"),
            Reference::File(p) => write!(f, "{{ file: {} }}", p.display()),
            Reference::Cmd(c) => write!(f, "{{ cmd: {c:?} }}"),
            Reference::Secret(n) => write!(f, "{{ secret: {n} }}"),
        }
    }
}

/// The level of the inventory a variable is set at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    /// Top-level `vars`.
    Global,
    /// A group's `vars`.
    Group(String),
    /// A host's `vars`.
    Host(String),
}

/// A variable of the inventory set to a reference.
#[derive(Debug, Clone)]
pub struct VarReference {
    /// The variable.
    pub var: String,
    /// Where in the inventory it is set.
    pub level: Level,
    /// What it refers to.
    pub reference: Reference,
    /// Its line in the inventory.
    pub loc: Location,
}

/// Why a reference could not be resolved. No variant holds the secret's value.
#[derive(Debug, Error)]
pub enum ReferenceError {
    /// The environment variable is not set.
    #[error("environment variable `{0}` is not set")]
    EnvUnset(String),
    /// The environment variable is not UTF-8.
    #[error("environment variable `{0}` is not UTF-8")]
    EnvNotUnicode(String),
    /// The file could not be read.
    #[error("{path}: {reason}", path = path.display())]
    FileRead {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
    /// Others than the owner may read or write the file.
    #[error("{path} has mode {mode:04o}; a file holding a secret must be 0600 or 0400 (chmod 600 {path})", path = path.display())]
    FileTooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The command could not be started.
    #[error("cannot run `sh -c`: {0}")]
    CmdSpawn(std::io::Error),
    /// The command failed.
    #[error("the command exited with {status}: {stderr}")]
    CmdFailed {
        /// How it ended.
        status: std::process::ExitStatus,
        /// The first line of its stderr.
        stderr: String,
    },
    /// The command's output or the file is not UTF-8.
    #[error("the value is not UTF-8")]
    NotUnicode,
    /// The secrets file could not be read.
    #[error("secrets file {path}: {reason}", path = path.display())]
    StoreRead {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
    /// No identity to decrypt the secrets file with.
    #[error("no identity to decrypt {path} with: pass --identity FILE or set APIM_AGE_IDENTITY (an age identity file or an ssh private key); ~/.ssh/id_ed25519 is tried when it exists", path = path.display())]
    NoIdentity {
        /// The secrets file.
        path: PathBuf,
    },
    /// The identity file is no age identity and no usable ssh private key.
    #[error("identity {path}: {reason}", path = path.display())]
    Identity {
        /// The identity file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The secrets file could not be decrypted (wrong identity, not an age file, corrupt).
    #[error("cannot decrypt {path} with identity {identity}: {reason}", path = path.display(), identity = identity.display())]
    Decrypt {
        /// The secrets file.
        path: PathBuf,
        /// The identity tried.
        identity: PathBuf,
        /// Why.
        reason: String,
    },
    /// The decrypted secrets file is no YAML map of names to strings.
    #[error("{path}: the decrypted content is not a YAML map of names to strings: {reason}", path = path.display())]
    StoreFormat {
        /// The secrets file.
        path: PathBuf,
        /// Why (without any value).
        reason: String,
    },
    /// The secrets file has no such entry.
    #[error("{path} has no entry `{name}` (apim-provision secrets edit {path})", path = path.display())]
    NoEntry {
        /// The entry asked for.
        name: String,
        /// The secrets file.
        path: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    #[test]
    fn only_a_one_key_mapping_of_a_known_kind_is_a_reference() {
        let dir = Path::new("/inv");
        let of = |v| Reference::of(&v, dir);
        assert_eq!(
            of(json!({"env": "X"})).unwrap().unwrap(),
            Reference::Env("X".into())
        );
        assert_eq!(
            of(json!({"file": "pw"})).unwrap().unwrap(),
            Reference::File("/inv/pw".into())
        );
        assert_eq!(
            of(json!({"file": "/etc/pw"})).unwrap().unwrap(),
            Reference::File("/etc/pw".into())
        );
        assert!(of(json!({"env": "X", "file": "y"})).is_none());
        assert!(of(json!({"name": "x"})).is_none());
        assert!(of(json!("plain")).is_none());
        assert!(of(json!({"cmd": ""})).unwrap().is_err());
        assert!(of(json!({"secret": 3})).unwrap().is_err());
    }
}
