//! The plan's simulation of a host: what the pending changes of earlier tasks in the same run will leave
//! there. A probe sees the host as it is before the run; without this view, a task that edits a file an
//! earlier task writes would be planned against the old file (wrong diff, or "would fail" for a file that
//! apply creates first), and a task whose check follows a change (a daemon-reload after a unit file
//! changed, a health gate after a restart) would show as unchanged although apply runs it.

use super::Attrs;
use crate::transport::Facts;
use std::collections::BTreeMap;

/// What a pending change will do to the host, as far as later tasks' probes can notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The file at `path` will hold `content` (`None`: changed, but the new bytes are not known here).
    Write {
        /// Absolute path of the file (the symlink target when a link is edited).
        path: String,
        /// The new content when the plan knows it.
        content: Option<Vec<u8>>,
        /// Attributes the writer sets, when it sets them.
        attrs: Attrs,
    },
    /// A directory will exist at `path` where there was none.
    NewDir(String),
    /// Something at or below `path` changes in a way the plan cannot describe (a tree unpacked, a path
    /// removed, a link moved).
    Touch(String),
    /// A unit's run state changes (started, stopped, restarted).
    Unit(String),
    /// Anything else: a command runs, a package or an account changes.
    Other,
}

/// What a probe looks at, so plan can tell whether an earlier pending change makes its answer stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reads {
    /// Nothing an earlier task of the run can change (the default).
    Nothing,
    /// These paths (and, through their parent directories, whatever contains them).
    Paths(Vec<String>),
    /// Anything on the host: a free-form check such as a command's `unless`.
    Anything,
}

/// The state of one path after the earlier pending changes, as far as the plan knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// A regular file with this content and these attributes (unset ones stay as probed).
    File {
        /// The content apply will write.
        content: Vec<u8>,
        /// Attributes the writer sets.
        attrs: Attrs,
    },
    /// A directory that does not exist yet: everything below it is absent.
    NewDir,
    /// Changes whose result the plan cannot compute.
    Unknown,
}

/// A file as the plan expects it when the task runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSim {
    /// No earlier pending change touches it: the probe's answer holds.
    AsProbed,
    /// It will not exist (it lies in a directory that is yet to be made).
    Absent,
    /// A regular file with these `fact_stat` facts and this content.
    File {
        /// Type, mode, owner and group as a probe would print them then.
        facts: Facts,
        /// The content.
        content: Vec<u8>,
    },
    /// Changed in a way only apply will tell.
    Unknown,
}

/// One host's pending effects, in task order; kept by the scheduler during a plan, read by resources.
#[derive(Debug, Clone, Default)]
pub struct HostView {
    paths: BTreeMap<String, Pending>,
    units: Vec<String>,
    other: bool,
}

impl HostView {
    /// Records what a pending change will do.
    pub fn record(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Write {
                    path,
                    content: Some(content),
                    attrs,
                } => {
                    let attrs = match self.paths.get(&path) {
                        Some(Pending::File { attrs: before, .. }) => before.overlay(&attrs),
                        _ => attrs,
                    };
                    self.paths.insert(path, Pending::File { content, attrs });
                }
                Effect::Write { path, .. } | Effect::Touch(path) => {
                    self.paths.insert(path, Pending::Unknown);
                }
                Effect::NewDir(path) => {
                    self.paths.entry(path).or_insert(Pending::NewDir);
                }
                Effect::Unit(name) => self.units.push(name),
                Effect::Other => self.other = true,
            }
        }
    }

    /// True while no pending change is recorded: what a probe sees now is what apply will find.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.units.is_empty() && !self.other
    }

    /// True when no pending change can affect a probe that `reads`.
    pub fn unaffected(&self, reads: &Reads) -> bool {
        match reads {
            Reads::Nothing => true,
            Reads::Anything => self.is_empty(),
            Reads::Paths(ps) => ps.iter().all(|p| self.at(p).is_none()),
        }
    }

    /// What the pending changes leave at `path`: its own pending state, or that of the nearest
    /// directory above it that changes (a new directory means `path` is absent; any other change of an
    /// ancestor means the plan cannot know).
    pub fn at(&self, path: &str) -> Option<&Pending> {
        if let Some(p) = self.paths.get(path) {
            return Some(p);
        }
        let mut cur = path;
        while let Some(i) = cur.rfind('/') {
            cur = &cur[..i];
            let dir = if cur.is_empty() { "/" } else { cur };
            match self.paths.get(dir) {
                Some(Pending::File { .. }) => return Some(&Pending::Unknown),
                Some(p) => return Some(p),
                None => {}
            }
        }
        None
    }

    /// The file at `path` as the earlier pending changes leave it, starting from its `fact_stat` facts
    /// as probed before the run.
    pub fn file(&self, path: &str, probed: &Facts) -> FileSim {
        match self.at(path) {
            None => FileSim::AsProbed,
            Some(Pending::NewDir) => FileSim::Absent,
            Some(Pending::Unknown) => FileSim::Unknown,
            Some(Pending::File { content, attrs }) => {
                let mut facts = if probed.is("type", "file") {
                    probed.clone()
                } else {
                    Facts::default()
                };
                facts.set("type", "file");
                facts.unset("link_target");
                attrs.onto(&mut facts);
                FileSim::File {
                    facts,
                    content: content.clone(),
                }
            }
        }
    }

    /// True when an earlier pending change makes `dir` exist: a new directory at or below it (directories
    /// are made with their parents) or a file below it.
    pub fn dir_will_exist(&self, dir: &str) -> bool {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        self.paths.iter().any(|(p, state)| {
            (p == dir && *state == Pending::NewDir)
                || (p.starts_with(&prefix) && *state != Pending::Unknown)
        })
    }

    /// True when no earlier change starts, stops or restarts a unit (a service may write files of its
    /// own when it starts, which the simulation does not describe).
    pub fn units_unchanged(&self) -> bool {
        self.units.is_empty()
    }

    /// True when an earlier pending change is one the plan cannot describe (a command ran, a package was
    /// installed): it may have made any path.
    pub fn opaque(&self) -> bool {
        self.other
    }

    /// True when an earlier pending change writes something below `dir` (unit directories, for a
    /// daemon-reload).
    pub fn writes_under(&self, dir: &str) -> bool {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        self.paths.keys().any(|p| p.starts_with(&prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &str, content: &str) -> Effect {
        Effect::Write {
            path: path.into(),
            content: Some(content.as_bytes().to_vec()),
            attrs: Attrs::default(),
        }
    }

    #[test]
    fn a_later_write_of_the_same_path_wins() {
        let mut v = HostView::default();
        v.record(vec![write("/etc/a", "1"), write("/etc/a", "2")]);
        match v.at("/etc/a") {
            Some(Pending::File { content, .. }) => assert_eq!(content, b"2"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ancestors_decide_for_paths_below_them() {
        let mut v = HostView::default();
        v.record(vec![
            Effect::NewDir("/srv/new".into()),
            Effect::Touch("/opt/pack".into()),
        ]);
        assert_eq!(v.at("/srv/new/x/y"), Some(&Pending::NewDir));
        assert_eq!(v.at("/opt/pack/conf/a.toml"), Some(&Pending::Unknown));
        assert_eq!(v.at("/opt/packed"), None);
        assert!(v.unaffected(&Reads::Paths(vec!["/etc/x".into()])));
        assert!(!v.unaffected(&Reads::Anything));
        assert!(v.unaffected(&Reads::Nothing));
    }

    #[test]
    fn writes_under_sees_only_paths_inside_the_directory() {
        let mut v = HostView::default();
        v.record(vec![write("/etc/systemd/system/app.service", "x")]);
        assert!(v.writes_under("/etc/systemd/system"));
        assert!(!v.writes_under("/etc/systemd/sys"));
    }
}
