//! Where things are in the YAML files. serde_yaml gives no positions for values, so a second, event-level
//! pass with yaml-rust2 records the line of every node by its path (`plays.0.tasks.3`); errors found after
//! deserialization can then still name `file:line`. The same pass refuses what serde would accept
//! silently or could not survive: a key given twice in one mapping (serde keeps the last) and nesting
//! deeper than [`MAX_DEPTH`].

use super::error::ModelError;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// How deep mappings and sequences may nest. Nothing the engine reads needs more, and refusing deeper
/// input early keeps every later recursive walk (serde, templates, JSON) far from the stack's end.
pub const MAX_DEPTH: usize = 64;

/// A path with `.` and `a/..` removed, lexically, as it is shown to the user and used as a name.
pub fn clean(path: &Path) -> PathBuf {
    path_clean::clean(path)
}

/// A place in a file, shown as `file:line` in every error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, as the user named it (relative paths stay relative).
    pub file: PathBuf,
    /// 1-based line; 0 when unknown.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

/// Lines of every node of one YAML file, by dotted path.
#[derive(Debug, Clone, Default)]
pub struct Lines {
    file: PathBuf,
    by_path: HashMap<String, usize>,
}

impl Lines {
    /// Indexes `text` (the content of `file`), refusing duplicate keys and too deep nesting. Syntax
    /// errors are left to serde_yaml, which reports them with a position of its own, so a failed index
    /// is simply partial.
    pub fn index(file: &Path, text: &str) -> Result<Self, ModelError> {
        let file = clean(file);
        let mut rec = Recorder::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut rec, false);
        if let Some((line, msg)) = rec.problem {
            return Err(ModelError::at(&Location { file, line }, msg));
        }
        Ok(Self {
            file,
            by_path: rec.lines,
        })
    }

    /// The location of the node at `path` (e.g. `plays.0.tasks.2`), or of the file when unknown.
    pub fn at(&self, path: &str) -> Location {
        Location {
            file: self.file.clone(),
            line: self.by_path.get(path).copied().unwrap_or(0),
        }
    }

    /// The file these lines belong to.
    pub fn file(&self) -> &Path {
        &self.file
    }
}

enum Frame {
    Map {
        key: Option<String>,
        seen: HashSet<String>,
    },
    Seq {
        next: usize,
    },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<(String, Frame)>,
    lines: HashMap<String, usize>,
    /// The first duplicate key or too deep node, with its line.
    problem: Option<(usize, String)>,
}

impl Recorder {
    /// The path of a node starting now, or `None` when the node is a mapping key.
    fn node_path(&mut self, scalar: Option<&str>, line: usize) -> Option<String> {
        let Some((parent, frame)) = self.stack.last_mut() else {
            return Some(String::new());
        };
        let join = |p: &str, k: &str| {
            if p.is_empty() {
                k.to_string()
            } else {
                format!("{p}.{k}")
            }
        };
        match frame {
            Frame::Seq { next } => {
                let p = join(parent, &next.to_string());
                *next += 1;
                Some(p)
            }
            Frame::Map { key, seen } => match key.take() {
                Some(k) => Some(join(parent, &k)),
                None => {
                    let k = scalar.unwrap_or_default().to_string();
                    let path = join(parent, &k);
                    if scalar.is_some() && !seen.insert(k.clone()) && self.problem.is_none() {
                        let first = self.lines.get(&path).copied().unwrap_or(0);
                        self.problem = Some((
                            line,
                            format!("duplicate key `{path}` (first given at line {first}); each key may appear once"),
                        ));
                    }
                    self.lines.entry(path).or_insert(line);
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.problem.is_some() {
            return;
        }
        let line = mark.line();
        match ev {
            Event::Scalar(v, ..) => {
                if let Some(p) = self.node_path(Some(&v), line) {
                    self.lines.entry(p).or_insert(line);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.node_path(None, line) {
                    self.lines.entry(p).or_insert(line);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let p = self.node_path(None, line).unwrap_or_default();
                self.lines.entry(p.clone()).or_insert(line);
                if self.stack.len() >= MAX_DEPTH && self.problem.is_none() {
                    self.problem = Some((
                        line,
                        format!("nested deeper than {MAX_DEPTH} levels of mappings and lists"),
                    ));
                }
                let frame = if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map {
                        key: None,
                        seen: HashSet::new(),
                    }
                } else {
                    Frame::Seq { next: 0 }
                };
                self.stack.push((p, frame));
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_nested_nodes() {
        let text = "name: x\nplays:\n  - name: a\n    tasks:\n      - name: t1\n        file: {path: /x}\n      - name: t2\n";
        let l = Lines::index(Path::new("./x/../p.yaml"), text).unwrap();
        assert_eq!(l.at("plays.0").line, 3);
        assert_eq!(l.at("plays.0.tasks.0").line, 5);
        assert_eq!(l.at("plays.0.tasks.1").line, 7);
        assert_eq!(l.at("plays.0.tasks.0.file").line, 6);
        assert_eq!(l.at("nope").to_string(), "p.yaml");
    }
}

#[cfg(test)]
mod refusals {
    use super::*;

    #[test]
    fn a_key_given_twice_is_refused_with_both_lines() {
        let text = "hosts:\n  a: {}\n  b: {}\n  a: {}\n";
        let e = Lines::index(Path::new("inv.yaml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("inv.yaml:4: duplicate key `hosts.a` (first given at line 2)"),
            "{e}"
        );
        let text = "vars: {x: 1, y: 2, x: 3}\n";
        let e = Lines::index(Path::new("inv.yaml"), text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate key `vars.x`"), "{e}");
        assert!(Lines::index(Path::new("i"), "a: {x: 1}\nb: {x: 1}\n").is_ok());
    }

    #[test]
    fn deep_nesting_is_refused_with_its_line() {
        let text = format!("a: 1\nb: {}{}\n", "[".repeat(100), "]".repeat(100));
        let e = Lines::index(Path::new("d.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("d.yaml:2: nested deeper than 64"), "{e}");
    }
}
