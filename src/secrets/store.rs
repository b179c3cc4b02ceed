//! The age-encrypted secrets file: a YAML map of names to strings, encrypted to one or more age
//! recipients or ssh public keys, so it can be committed next to the inventory. Decrypted only in
//! memory, with an age identity file or an ssh private key.

use crate::model::reference::{expand_home, ReferenceError};
use age::secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a secrets file could not be written.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A recipients line is no age recipient and no ssh public key.
    #[error("{source_name}:{line}: not an age recipient (age1…) or an ssh public key (ssh-ed25519 …, ssh-rsa …)")]
    BadRecipient {
        /// The recipients file or `--recipient`.
        source_name: String,
        /// 1-based line.
        line: usize,
    },
    /// Nothing to encrypt to.
    #[error("no recipients: pass --recipients FILE or --recipient KEY")]
    NoRecipients,
    /// The plaintext is no YAML map of names to strings.
    #[error("{0}")]
    Format(String),
    /// Encrypting or writing failed.
    #[error("{path}: {reason}", path = path.display())]
    Write {
        /// The file written.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The identity to decrypt with: the one asked for, else `~/.ssh/id_ed25519` when it exists.
pub fn identity_path(asked: Option<&Path>) -> Option<PathBuf> {
    match asked {
        Some(p) => Some(p.to_path_buf()),
        None => Some(expand_home("~/.ssh/id_ed25519")).filter(|p| p.is_file()),
    }
}

/// The identities of `path`: an ssh private key (unencrypted: a run cannot stop to ask for a
/// passphrase) or an age identity file.
fn identities(path: &Path) -> Result<Vec<Box<dyn age::Identity>>, ReferenceError> {
    let bad = |reason: String| ReferenceError::Identity {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    if text.trim_start().starts_with("-----BEGIN") {
        let key = age::ssh::Identity::from_buffer(text.as_bytes(), None)
            .map_err(|e| bad(e.to_string()))?;
        return match key {
            age::ssh::Identity::Unencrypted(_) => Ok(vec![Box::new(key)]),
            age::ssh::Identity::Encrypted(_) => Err(bad(
                "the ssh key is passphrase-protected; use an unencrypted key or an age identity"
                    .into(),
            )),
            age::ssh::Identity::Unsupported(_) => Err(bad("unsupported ssh key type".into())),
        };
    }
    let file = age::IdentityFile::from_buffer(text.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let ids = file.into_identities().map_err(|e| bad(e.to_string()))?;
    if ids.is_empty() {
        return Err(bad("no identity in the file".into()));
    }
    Ok(ids
        .into_iter()
        .map(|i| i as Box<dyn age::Identity>)
        .collect())
}

/// The plaintext of the secrets file `path`, decrypted with `identity`.
pub fn decrypt(path: &Path, identity: &Path) -> Result<Vec<u8>, ReferenceError> {
    let data = std::fs::read(path).map_err(|reason| ReferenceError::StoreRead {
        path: path.to_path_buf(),
        reason,
    })?;
    let ids = identities(identity)?;
    let failed = |reason: String| ReferenceError::Decrypt {
        path: path.to_path_buf(),
        identity: identity.to_path_buf(),
        reason,
    };
    let decryptor = age::Decryptor::new(&data[..]).map_err(|e| failed(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(ids.iter().map(|i| i.as_ref()))
        .map_err(|e| failed(e.to_string()))?;
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .map_err(|e| failed(e.to_string()))?;
    Ok(out)
}

/// The entries of the secrets file `path`, decrypted with `identity`.
pub fn read(path: &Path, identity: &Path) -> Result<BTreeMap<String, String>, ReferenceError> {
    let plain = decrypt(path, identity)?;
    entries(&plain).map_err(|reason| ReferenceError::StoreFormat {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses plaintext as a map of names to strings. The reason never quotes a value.
pub fn entries(plain: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let text = std::str::from_utf8(plain).map_err(|_| "not UTF-8".to_string())?;
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| match e.location() {
        Some(l) => format!("YAML syntax error at line {}", l.line()),
        None => "YAML syntax error".to_string(),
    })?;
    let map = match value {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => return Ok(BTreeMap::new()),
        _ => return Err("not a map".into()),
    };
    map.into_iter()
        .map(|(k, v)| match (k, v) {
            (serde_yaml::Value::String(k), serde_yaml::Value::String(v)) => Ok((k, v)),
            (serde_yaml::Value::String(k), _) => Err(format!("entry `{k}` is not a string")),
            _ => Err("a key is not a string".into()),
        })
        .collect()
}

/// Recipients from `text` (one a line, `#` comments and blank lines skipped): age recipients or ssh
/// public keys. `source_name` names the text in errors.
pub fn recipients(
    text: &str,
    source_name: &str,
) -> Result<Vec<Box<dyn age::Recipient + Send>>, StoreError> {
    let mut out: Vec<Box<dyn age::Recipient + Send>> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Ok(r) = line.parse::<age::x25519::Recipient>() {
            out.push(Box::new(r));
        } else if let Ok(r) = line.parse::<age::ssh::Recipient>() {
            out.push(Box::new(r));
        } else {
            return Err(StoreError::BadRecipient {
                source_name: source_name.to_string(),
                line: i + 1,
            });
        }
    }
    Ok(out)
}

/// Encrypts `plain` (checked to be a map of names to strings) to `recipients` into `path`, through a
/// temporary file renamed over it, so a failure leaves the old file whole.
pub fn write(
    path: &Path,
    plain: &[u8],
    recipients: &[Box<dyn age::Recipient + Send>],
) -> Result<(), StoreError> {
    entries(plain).map_err(|e| StoreError::Format(format!("the plaintext: {e}")))?;
    if recipients.is_empty() {
        return Err(StoreError::NoRecipients);
    }
    let failed = |reason: String| StoreError::Write {
        path: path.to_path_buf(),
        reason,
    };
    let encryptor = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
    )
    .map_err(|e| failed(e.to_string()))?;
    let mut sealed = Vec::new();
    let mut w = encryptor
        .wrap_output(&mut sealed)
        .map_err(|e| failed(e.to_string()))?;
    w.write_all(plain).map_err(|e| failed(e.to_string()))?;
    w.finish().map_err(|e| failed(e.to_string()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| failed(e.to_string()))?;
    tmp.write_all(&sealed).map_err(|e| failed(e.to_string()))?;
    tmp.persist(path).map_err(|e| failed(e.error.to_string()))?;
    Ok(())
}

/// A new age identity, as the text of an identity file, and its recipient: what a project without
/// keys of its own (the demo) encrypts its secrets to.
pub fn new_identity() -> (String, String) {
    let id = age::x25519::Identity::generate();
    let recipient = id.to_public().to_string();
    (
        format!(
            "# public key: {recipient}\n{}\n",
            id.to_string().expose_secret()
        ),
        recipient,
    )
}
