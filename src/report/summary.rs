//! Counting outcomes into the numbers both report formats print, and the exit code they imply.

use crate::execute::{Mode, NodeReport, Outcome, SkipCause};
use crate::resources::Action;
use indexmap::IndexMap;
use serde::Serialize;

/// Per-host tallies, Ansible's recap.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostTally {
    /// Unchanged (and condition-skipped) tasks.
    pub ok: usize,
    /// Changed (apply) or pending (plan) tasks.
    pub changed: usize,
    /// Failed (apply) or would-fail (plan) tasks.
    pub failed: usize,
    /// Tasks skipped because something they depend on failed.
    pub skipped: usize,
}

/// Totals of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Things to create.
    pub add: usize,
    /// Things to change, remove or run (including "known after apply").
    pub change: usize,
    /// Things already right.
    pub unchanged: usize,
    /// Failed or would fail.
    pub failed: usize,
    /// Skipped because of a failed dependency.
    pub skipped: usize,
    /// Per host.
    pub hosts: IndexMap<String, HostTally>,
}

impl Summary {
    /// Tallies `reports`, keeping hosts in the order given.
    pub fn of(hosts: impl IntoIterator<Item = String>, reports: &[NodeReport]) -> Self {
        let mut s = Summary {
            hosts: hosts
                .into_iter()
                .map(|h| (h, HostTally::default()))
                .collect(),
            ..Default::default()
        };
        for r in reports {
            let tally = s.hosts.entry(r.host.clone()).or_default();
            match &r.outcome {
                Outcome::Unchanged
                | Outcome::Skipped {
                    cause: SkipCause::Condition,
                    ..
                } => {
                    s.unchanged += 1;
                    tally.ok += 1;
                }
                Outcome::Skipped {
                    cause: SkipCause::NotNotified,
                    ..
                } => {}
                Outcome::Skipped {
                    cause: SkipCause::Dependency,
                    ..
                } => {
                    s.skipped += 1;
                    tally.skipped += 1;
                }
                Outcome::Change {
                    action: Action::Create,
                    ..
                } => {
                    s.add += 1;
                    tally.changed += 1;
                }
                Outcome::Change { .. } | Outcome::Unknown(_) => {
                    s.change += 1;
                    tally.changed += 1;
                }
                Outcome::Failed(_) => {
                    s.failed += 1;
                    tally.failed += 1;
                }
            }
        }
        s
    }

    /// Terraform's `-detailed-exitcode` for plan (0 clean, 2 changes, 1 error); 0/1 for apply.
    pub fn exit_code(&self, mode: Mode) -> i32 {
        match mode {
            _ if self.failed > 0 || self.skipped > 0 => 1,
            Mode::Plan if self.add + self.change > 0 => 2,
            _ => 0,
        }
    }
}
