//! `sha256` arguments: their spelling (`<hex>` or Ansible's `sha256:<hex>`) and the check of a controller
//! file against one, so a wrong or corrupted pack, JDK or driver on the operator's machine is caught while
//! planning, before any host is touched. Shared by `get_url`, `copy` and `unarchive`.

use super::{bad, ResourceError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// The lowercase hex digest of a `sha256` argument; `kind` names the task type in the error.
pub fn parse(kind: &str, given: &str) -> Result<String, ResourceError> {
    let hex = given
        .strip_prefix("sha256:")
        .unwrap_or(given)
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad(kind, format!("sha256 `{given}` must be 64 hex digits")));
    }
    Ok(hex)
}

/// The optional `sha256` of a task whose module passes an unset variable as an empty string.
pub fn parse_optional(kind: &str, given: &Option<String>) -> Result<Option<String>, ResourceError> {
    match given.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => parse(kind, s).map(Some),
    }
}

/// The run's digests of controller files, by path, size and modification time: a pack is hashed once per
/// run, not once per host. One per run (the plan owns it), passed to resources as they are built.
#[derive(Debug, Default)]
pub struct Digests(Mutex<HashMap<FileVersion, String>>);

/// A controller file as it is now: path, size and modification time.
type FileVersion = (PathBuf, u64, Option<SystemTime>);

impl Digests {
    /// The sha256 of the controller file at `path`, computed once for its current size and mtime.
    fn of(&self, path: &Path) -> std::io::Result<String> {
        let meta = std::fs::metadata(path)?;
        let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
        if let Some(d) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(d.clone());
        }
        let mut hasher = Sha256::new();
        std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
        let d = format!("{:x}", hasher.finalize());
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, d.clone());
        Ok(d)
    }
}

/// Fails, naming the file and both digests, unless the controller file at `path` has digest `want`.
pub fn verify_file(
    kind: &str,
    path: &Path,
    want: &str,
    digests: &Digests,
) -> Result<(), ResourceError> {
    let got = digests
        .of(path)
        .map_err(|e| bad(kind, format!("reading {}: {e}", path.display())))?;
    expect(kind, path, &got, want)
}

/// Fails, naming the file and both digests, unless `got` (the digest of the controller file at `path`,
/// already computed by the caller) is `want`.
pub fn expect(kind: &str, path: &Path, got: &str, want: &str) -> Result<(), ResourceError> {
    if got != want {
        return Err(bad(
            kind,
            format!(
                "sha256 of {} is {got}, not the expected {want}",
                path.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_parse_and_bad_ones_are_refused() {
        let hex = "AB".repeat(32);
        assert_eq!(parse("t", &hex).unwrap(), "ab".repeat(32));
        assert_eq!(
            parse("t", &format!("sha256:{hex}")).unwrap(),
            "ab".repeat(32)
        );
        for bad in ["", "abc", &"g".repeat(64), &format!("md5:{hex}")] {
            assert!(parse("t", bad).is_err(), "{bad}");
        }
        assert_eq!(parse_optional("t", &Some(" ".into())).unwrap(), None);
        assert_eq!(parse_optional("t", &None).unwrap(), None);
    }

    #[test]
    fn a_file_is_checked_and_a_changed_file_is_hashed_again() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("pack.zip");
        std::fs::write(&f, "one").unwrap();
        let one = super::super::sha256_hex(b"one");
        let digests = Digests::default();
        verify_file("t", &f, &one, &digests).unwrap();
        std::fs::write(&f, "two!").unwrap();
        let err = verify_file("t", &f, &one, &digests)
            .unwrap_err()
            .to_string();
        assert!(err.contains("pack.zip") && err.contains(&one), "{err}");
        let missing = verify_file("t", &d.path().join("nope"), &one, &digests).unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
    }
}
