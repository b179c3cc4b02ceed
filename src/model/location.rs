//! Where things are in the YAML files. serde_yaml gives no positions for values, so a second, event-level
//! pass with yaml-rust2 records the line of every node by its path (`plays.0.tasks.3`); errors found after
//! deserialization can then still name `file:line`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

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
    /// Indexes `text` (the content of `file`). Syntax errors are left to serde_yaml, which reports them
    /// with a position of its own, so a failed index is simply empty.
    pub fn index(file: &Path, text: &str) -> Self {
        let mut rec = Recorder::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut rec, false);
        Self {
            file: file.to_path_buf(),
            by_path: rec.lines,
        }
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
    Map { key: Option<String> },
    Seq { next: usize },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<(String, Frame)>,
    lines: HashMap<String, usize>,
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
            Frame::Map { key } => match key.take() {
                Some(k) => Some(join(parent, &k)),
                None => {
                    let k = scalar.unwrap_or_default().to_string();
                    self.lines.entry(join(parent, &k)).or_insert(line);
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
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
                let frame = if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map { key: None }
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
        let l = Lines::index(Path::new("p.yaml"), text);
        assert_eq!(l.at("plays.0").line, 3);
        assert_eq!(l.at("plays.0.tasks.0").line, 5);
        assert_eq!(l.at("plays.0.tasks.1").line, 7);
        assert_eq!(l.at("plays.0.tasks.0.file").line, 6);
        assert_eq!(l.at("nope").to_string(), "p.yaml");
    }
}
