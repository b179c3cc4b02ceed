//! Errors found while reading and checking inventories and playbooks: all of them before any host is
//! touched, and all of them naming the file and line.

use super::location::Location;
use std::path::PathBuf;
use thiserror::Error;

/// A problem in the user's input.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A file could not be read. The reason is part of the message and not a `source`, so that an
    /// error chain prints it once.
    #[error("{path}: {reason}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
    /// A path names a FIFO, device, socket or directory: reading one could block forever or means
    /// nothing, so only regular files are read.
    #[error("{path}: not a regular file", path = path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Anything wrong at a known place: syntax, unknown names, bad arguments, undefined variables.
    #[error("{loc}: {msg}")]
    At {
        /// Where.
        loc: Location,
        /// What, naming the task and host when there is one.
        msg: String,
    },
    /// A variable set to a reference (`{ env: X }`, `{ secret: X }`…) that did not resolve: found
    /// while preparing, before any host is touched.
    #[error("{loc}: var `{var}` = {reference}: {why}")]
    Reference {
        /// Where the variable is set.
        loc: Location,
        /// The variable.
        var: String,
        /// The reference, as written (boxed, as `why` is: errors stay small on the happy path).
        reference: Box<super::reference::Reference>,
        /// Why it did not resolve.
        why: Box<super::reference::ReferenceError>,
    },
    /// Tasks that wait on each other.
    #[error("dependency cycle: {0}")]
    Cycle(String),
    /// A play's `serial:` that is no batch size: refused while loading (or, when templated, once
    /// rendered), before any host is touched, because a wrong batch could restart every node at once.
    #[error("{loc}: play `{play}`: `serial: {value}` {why}")]
    Serial {
        /// Where `serial:` is written.
        loc: Location,
        /// The play.
        play: String,
        /// The value as written (or as rendered from its template).
        value: String,
        /// Why it is refused.
        why: super::serial::SerialError,
    },
}

impl ModelError {
    /// An error at `loc`.
    pub fn at(loc: &Location, msg: impl Into<String>) -> Self {
        ModelError::At {
            loc: loc.clone(),
            msg: msg.into(),
        }
    }
}

/// Parses YAML with serde_yaml, turning its error into `file:line:col: message`.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    text: &str,
) -> Result<T, ModelError> {
    serde_yaml::from_str(text).map_err(|e| yaml_error(path, e))
}

/// A serde_yaml error as a located model error.
pub fn yaml_error(path: &std::path::Path, e: serde_yaml::Error) -> ModelError {
    let (line, col) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let mut msg = withhold_values(&e.to_string());
    if let Some(i) = msg.find(" at line ") {
        msg.truncate(i);
    }
    ModelError::At {
        loc: Location {
            file: super::location::clean(path),
            line,
        },
        msg: if col > 0 {
            format!("(column {col}) {msg}")
        } else {
            msg
        },
    }
}

/// serde's type errors quote the offending value (`invalid type: string "…", expected a map`). Such an
/// error comes before the run knows which values are secrets (the inventory is being read), so the
/// value could be a password or a key: the message keeps the kind and leaves the value out.
fn withhold_values(msg: &str) -> String {
    use std::sync::OnceLock;
    static QUOTED: OnceLock<regex::Regex> = OnceLock::new();
    let re = QUOTED.get_or_init(|| {
        regex::Regex::new(r#"\b(string|char) "(?:[^"\\]|\\.)*""#).expect("static regex")
    });
    re.replace_all(msg, "$1 (value not shown)").into_owned()
}

/// Reads a regular file, naming it (as the user wrote it, normalised) on failure.
pub fn read(path: &std::path::Path) -> Result<String, ModelError> {
    let shown = super::location::clean(path);
    let failed = |reason| ModelError::Read {
        path: shown.clone(),
        reason,
    };
    if !std::fs::metadata(path).map_err(failed)?.is_file() {
        return Err(ModelError::NotAFile { path: shown });
    }
    std::fs::read_to_string(path).map_err(failed)
}
