//! Counting outcomes into the numbers every report prints, and the exit code they imply. One [`Summary`]
//! is computed once from the run's reports and handed to the human plan line, the apply recap and the
//! JSON summary alike, so they cannot disagree with each other or with the task events: every report
//! lands in exactly one bucket, and the buckets add up to the number of tasks.

use crate::execute::{Mode, NodeReport, Outcome, SkipCause};
use crate::resources::Action;
use crate::transport::TransportStats;
use indexmap::IndexMap;
use serde::Serialize;
use std::collections::BTreeMap;

/// Per-host tallies, Ansible's recap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostTally {
    /// Unchanged tasks.
    pub ok: usize,
    /// Changed (apply) or pending (plan, including "known after apply") tasks.
    pub changed: usize,
    /// Failed (apply) or would-fail (plan) tasks, those of an unreachable host included.
    pub failed: usize,
    /// Tasks not run: condition false, handler not notified, a dependency did not succeed, or a
    /// change the run does not allow.
    pub skipped: usize,
    /// Round trips to the host: scripts run and files uploaded. A no-op run costs one per host.
    pub round_trips: u64,
    /// Of those, files uploaded.
    pub uploads: u64,
    /// Connections opened to the host: ssh masters started (none for a local host, nor for a
    /// master an earlier run kept).
    pub connections: u64,
    /// Masters an earlier `--persist` run kept that this run attached to instead of connecting.
    pub masters_reused: u64,
}

impl HostTally {
    /// What the host's connection cost, as `-v` prints it: `1 round trip (1 connection)`.
    pub fn cost_line(&self) -> String {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut line = plural(self.round_trips, "round trip", "round trips");
        if self.uploads > 0 {
            line.push_str(&format!(", {} of them uploads", self.uploads));
        }
        line.push_str(&format!(
            " ({}",
            plural(self.connections, "connection", "connections")
        ));
        if self.masters_reused > 0 {
            line.push_str(&format!(
                ", {}",
                plural(
                    self.masters_reused,
                    "kept master reused",
                    "kept masters reused"
                )
            ));
        }
        line.push(')');
        line
    }
}

/// Totals of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Every task of the run on every host: the sum of the buckets below, the same in every plan of one
    /// playbook and inventory.
    pub total: usize,
    /// Things to create.
    pub add: usize,
    /// Things to change, remove or run (including "known after apply").
    pub change: usize,
    /// Things already right.
    pub unchanged: usize,
    /// Failed or would fail, the tasks of an unreachable host included.
    pub failed: usize,
    /// Not run, for any of the reasons counted next.
    pub skipped: usize,
    /// Not run because their `when` is false.
    pub skipped_condition: usize,
    /// Handlers nobody notified.
    pub not_notified: usize,
    /// Not run because something they depend on did not succeed.
    pub skipped_dependency: usize,
    /// Not run because a host of an earlier `serial:` batch of their play did not finish it.
    pub skipped_batch: usize,
    /// Changes not made because the run does not allow them (`drift --fix` leaves what did not drift).
    pub not_allowed: usize,
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
            s.total += 1;
            let tally = s.hosts.entry(r.host.clone()).or_default();
            match &r.outcome {
                Outcome::Unchanged => {
                    s.unchanged += 1;
                    tally.ok += 1;
                }
                Outcome::Skipped { cause, .. } => {
                    s.skipped += 1;
                    tally.skipped += 1;
                    *match cause {
                        SkipCause::Condition => &mut s.skipped_condition,
                        SkipCause::NotNotified => &mut s.not_notified,
                        SkipCause::Dependency => &mut s.skipped_dependency,
                        SkipCause::EarlierBatch => &mut s.skipped_batch,
                        SkipCause::NotAllowed => &mut s.not_allowed,
                    } += 1;
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
                Outcome::Failed(_) | Outcome::Unreachable(_) => {
                    s.failed += 1;
                    tally.failed += 1;
                }
            }
        }
        s
    }

    /// Adds what each host's connection cost (from the walk) to its tally.
    pub fn with_costs(mut self, costs: &BTreeMap<String, TransportStats>) -> Self {
        for (host, c) in costs {
            let t = self.hosts.entry(host.clone()).or_default();
            t.round_trips = c.round_trips();
            t.uploads = c.uploads;
            t.connections = c.connections;
            t.masters_reused = c.reused;
        }
        self
    }

    /// Terraform's `-detailed-exitcode` for plan (0 clean, 2 changes, 1 error); 0/1 for apply. A task
    /// skipped because its dependency failed is an error too; one whose condition is false is not.
    pub fn exit_code(&self, mode: Mode) -> i32 {
        match mode {
            _ if self.failed > 0 || self.skipped_dependency + self.skipped_batch > 0 => 1,
            Mode::Plan if self.add + self.change > 0 => 2,
            _ => 0,
        }
    }

    /// The plan's closing line.
    pub fn plan_line(&self) -> String {
        let mut line = format!(
            "Plan: {} to add, {} to change, {} unchanged, {} skipped",
            self.add, self.change, self.unchanged, self.skipped
        );
        if self.failed > 0 {
            line.push_str(&format!(", {} would fail", self.failed));
        }
        line.push_str(&format!(" ({} tasks).", self.total));
        line
    }

    /// The apply recap's closing line, without the elapsed time; it says when a `serial:` batch
    /// failing stopped the later ones, which is why their hosts were not updated.
    pub fn apply_line(&self) -> String {
        let mut line = format!(
            "Apply: {} changed, {} failed, {} skipped, {} unchanged ({} tasks)",
            self.add + self.change,
            self.failed,
            self.skipped,
            self.unchanged,
            self.total
        );
        if self.skipped_batch > 0 {
            line.push_str(&format!(
                "; {} not run because an earlier serial batch failed",
                self.skipped_batch
            ));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petgraph::graph::NodeIndex;
    use std::time::Duration;

    fn report(host: &str, outcome: Outcome) -> NodeReport {
        NodeReport {
            node: NodeIndex::new(0),
            host: host.into(),
            task: "t".into(),
            kind: "file".into(),
            target: None,
            location: "x.yaml:1".into(),
            handler: false,
            file: None,
            sensitive: false,
            outcome,
            elapsed: Duration::ZERO,
        }
    }

    fn skipped(cause: SkipCause) -> Outcome {
        Outcome::Skipped {
            cause,
            reason: String::new(),
        }
    }

    /// Every report is in exactly one bucket: the host tallies and the totals add up to the tasks, and
    /// a false condition or an unnotified handler counts as skipped, not as ok or as nothing.
    #[test]
    fn every_task_is_counted_once_and_skips_are_skips() {
        let reports = vec![
            report("a", Outcome::Unchanged),
            report("a", skipped(SkipCause::Condition)),
            report("a", skipped(SkipCause::NotNotified)),
            report("b", skipped(SkipCause::Dependency)),
            report("b", skipped(SkipCause::EarlierBatch)),
            report("b", Outcome::Failed("x".into())),
            report(
                "b",
                Outcome::Change {
                    action: Action::Create,
                    details: vec![],
                    diff: None,
                    cause: crate::execute::ChangeCause::Host,
                },
            ),
            report("b", Outcome::Unknown("later".into())),
        ];
        let s = Summary::of(["a".to_string(), "b".to_string()], &reports);
        assert_eq!(s.total, 8);
        assert_eq!(
            (s.add, s.change, s.unchanged, s.failed, s.skipped),
            (1, 1, 1, 1, 4)
        );
        assert_eq!(
            (
                s.skipped_condition,
                s.not_notified,
                s.skipped_dependency,
                s.skipped_batch
            ),
            (1, 1, 1, 1)
        );
        let a = &s.hosts["a"];
        assert_eq!((a.ok, a.changed, a.failed, a.skipped), (1, 0, 0, 2));
        assert_eq!(a.round_trips, 0, "no costs added yet");
        let host_sum: usize = s
            .hosts
            .values()
            .map(|t| t.ok + t.changed + t.failed + t.skipped)
            .sum();
        assert_eq!(host_sum, s.total);
        assert_eq!(s.exit_code(Mode::Apply), 1);
        assert_eq!(
            s.plan_line(),
            "Plan: 1 to add, 1 to change, 1 unchanged, 4 skipped, 1 would fail (8 tasks)."
        );
    }

    /// A false condition or an unnotified handler is no error; a dependency's failure is, and so is an
    /// earlier batch's.
    #[test]
    fn only_a_dependency_skip_fails_the_run() {
        let quiet = vec![
            report("a", skipped(SkipCause::Condition)),
            report("a", skipped(SkipCause::NotNotified)),
        ];
        let s = Summary::of(["a".to_string()], &quiet);
        assert_eq!((s.exit_code(Mode::Plan), s.exit_code(Mode::Apply)), (0, 0));
        let dep = vec![report("a", skipped(SkipCause::Dependency))];
        assert_eq!(
            Summary::of(["a".to_string()], &dep).exit_code(Mode::Apply),
            1
        );
        let batch = Summary::of(
            ["a".to_string()],
            &[report("a", skipped(SkipCause::EarlierBatch))],
        );
        assert_eq!(batch.exit_code(Mode::Apply), 1);
        assert!(
            batch
                .apply_line()
                .ends_with("; 1 not run because an earlier serial batch failed"),
            "{}",
            batch.apply_line()
        );
    }

    /// Round trips are scripts plus uploads, and the line `-v` prints says so in the singular and
    /// the plural, with a reused master named.
    #[test]
    fn costs_reach_the_host_tallies_and_read_as_a_line() {
        let costs = BTreeMap::from([
            (
                "a".to_string(),
                TransportStats {
                    scripts: 1,
                    uploads: 0,
                    connections: 1,
                    reused: 0,
                },
            ),
            (
                "b".to_string(),
                TransportStats {
                    scripts: 5,
                    uploads: 2,
                    connections: 0,
                    reused: 1,
                },
            ),
        ]);
        let s = Summary::of(["a".to_string(), "b".to_string()], &[]).with_costs(&costs);
        assert_eq!(s.hosts["a"].cost_line(), "1 round trip (1 connection)");
        assert_eq!(s.hosts["b"].round_trips, 7);
        assert_eq!(
            s.hosts["b"].cost_line(),
            "7 round trips, 2 of them uploads (0 connections, 1 kept master reused)"
        );
    }
}
