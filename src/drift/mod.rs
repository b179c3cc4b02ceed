//! `drift`: Terraform's `plan -refresh-only`. The plan walk (the same probes, one batch per host, nothing
//! changed anywhere) read as the answer to "did a host move away from what the inventory says?". The
//! rules, per task on a host:
//!
//! - Only types that manage a state are checked ([`drift_checked`]): `command`, `shell`, `wait_for`,
//!   `assert` and `slurp` act or check and are never drift, whatever their guard. Handlers are never
//!   checked either: they run only when a change notifies them.
//! - A checked task that plan would change is drifted when the host as probed needs the change
//!   ([`ChangeCause::Host`]); one whose change only follows from an earlier pending change on the host
//!   (or is known only after apply) is pending, not drift.
//! - A host that cannot be reached is an error named in every output; the other hosts are still
//!   reported. A task that would fail is an error too.
//! - For a drifted `copy`/`template` file, the last-apply record ([`record`]) tells where it moved:
//!   the rendered content or attributes differ from the recorded ones: the inventory changed (`since:
//!   inventory`, also for a file the last apply did not write); they are the same: the host changed
//!   (`since: host`). Without a record, and for every other type: `unknown` (the human report says
//!   which of the two).

pub mod out;
pub mod record;

use crate::execute::{ChangeCause, NodeReport, Outcome};
use crate::plan::{Edge, Prepared};
use crate::resources::drift_checked;
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use record::LastApply;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Where a drifted resource moved, as far as the last-apply record tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// The host changed since the last apply: the inventory still renders what was applied.
    Host,
    /// The inventory changed since the last apply: it renders something else now.
    Inventory,
    /// No apply was recorded on the host.
    Unknown,
    /// An apply was recorded, but the record holds whole files only (their digests): for a service,
    /// a package, a grant or a keystore it cannot say which side moved.
    Untracked,
}

impl Since {
    /// The word in the JSON and the reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Since::Host => "host",
            Since::Inventory => "inventory",
            Since::Unknown | Since::Untracked => "unknown",
        }
    }

    /// What the human report says.
    pub fn explain(self) -> &'static str {
        match self {
            Since::Host => "changed on the host since the last apply",
            Since::Inventory => "the inventory changed since the last apply",
            Since::Unknown => "no last apply recorded on this host",
            Since::Untracked => {
                "the host or the inventory moved (the last apply records files only)"
            }
        }
    }
}

/// What drift found for one checked task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The host is as the inventory says.
    InSync,
    /// The host differs.
    Drifted(Since),
    /// Its state follows from an earlier pending change: known after apply, not drift.
    Pending(String),
    /// Checking it failed (would fail in plan).
    Error(String),
}

/// One checked task and what was found.
#[derive(Debug, Clone)]
pub struct Check<'a> {
    /// The plan walk's report of it.
    pub report: &'a NodeReport,
    /// The finding.
    pub finding: Finding,
}

/// One host's drift.
#[derive(Debug, Clone)]
pub struct HostDrift<'a> {
    /// Inventory name.
    pub host: String,
    /// Why the host could not be reached, when it could not (then nothing of it was checked).
    pub unreachable: Option<String>,
    /// Every checked task, in task order (empty for an unreachable host).
    pub checks: Vec<Check<'a>>,
    /// Tasks that are not checked but would fail (an `assert`, a command's probe): errors of the run.
    pub errors: Vec<(&'a NodeReport, String)>,
    /// When the last successful apply finished here, in seconds since the epoch, when recorded.
    pub last_apply: Option<u64>,
}

impl HostDrift<'_> {
    /// Drifted tasks.
    pub fn drifted(&self) -> impl Iterator<Item = &Check<'_>> {
        self.checks
            .iter()
            .filter(|c| matches!(c.finding, Finding::Drifted(_)))
    }

    /// True when something on the host could not be checked.
    pub fn has_errors(&self) -> bool {
        self.unreachable.is_some()
            || !self.errors.is_empty()
            || self
                .checks
                .iter()
                .any(|c| matches!(c.finding, Finding::Error(_)))
    }
}

/// The drift of a whole run.
#[derive(Debug, Clone)]
pub struct DriftReport<'a> {
    /// Per host, in inventory order.
    pub hosts: Vec<HostDrift<'a>>,
    /// How long the check took.
    pub duration: Duration,
    /// When it finished.
    pub finished: SystemTime,
}

impl<'a> DriftReport<'a> {
    /// Reads the plan walk's `reports` of `hosts` as drift, with each host's last-apply record.
    pub fn of(
        hosts: &[String],
        reports: &'a [NodeReport],
        records: &BTreeMap<String, LastApply>,
        duration: Duration,
    ) -> Self {
        let hosts = hosts
            .iter()
            .map(|h| host_drift(h, reports, records.get(h)))
            .collect();
        Self {
            hosts,
            duration,
            finished: SystemTime::now(),
        }
    }

    /// Drifted tasks over all hosts.
    pub fn drifted(&self) -> usize {
        self.hosts.iter().map(|h| h.drifted().count()).sum()
    }

    /// Pending tasks over all hosts.
    pub fn pending(&self) -> usize {
        self.hosts
            .iter()
            .flat_map(|h| &h.checks)
            .filter(|c| matches!(c.finding, Finding::Pending(_)))
            .count()
    }

    /// Names of the hosts that could not be reached.
    pub fn unreachable(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .filter(|h| h.unreachable.is_some())
            .map(|h| h.host.as_str())
            .collect()
    }

    /// 0: no drift; 2: drift; 1: something could not be checked (an unreachable host, a task that would
    /// fail), whatever else was found.
    pub fn exit_code(&self) -> i32 {
        if self.hosts.iter().any(HostDrift::has_errors) {
            1
        } else if self.drifted() > 0 {
            2
        } else {
            0
        }
    }

    /// The nodes `drift --fix` may change, by node index: on each host with drift, what drifted,
    /// what is pending after it, and the tasks that act (commands, health gates) and handlers, as an
    /// apply would run them; anywhere, what depends (`depends_on`) on a drifted task. Everything else,
    /// in sync when checked, is left alone.
    pub fn fixable(&self, p: &Prepared) -> Vec<bool> {
        let g = &p.graph.graph;
        let mut allowed = vec![false; g.node_count()];
        let mut stack = Vec::new();
        for h in self.hosts.iter().filter(|h| h.drifted().next().is_some()) {
            for c in &h.checks {
                if matches!(c.finding, Finding::Drifted(_) | Finding::Pending(_)) {
                    allowed[c.report.node.index()] = true;
                }
                if matches!(c.finding, Finding::Drifted(_)) {
                    stack.push(c.report.node);
                }
            }
            for &n in &p.graph.hosts[&h.host] {
                let t = p.task(n);
                if t.handler || !drift_checked(&t.kind) {
                    allowed[n.index()] = true;
                }
            }
        }
        while let Some(n) = stack.pop() {
            for e in g.edges_directed(n, Direction::Outgoing) {
                if *e.weight() == Edge::Depends
                    && !std::mem::replace(&mut allowed[e.target().index()], true)
                {
                    stack.push(e.target());
                }
            }
        }
        allowed
    }
}

fn host_drift<'a>(
    host: &str,
    reports: &'a [NodeReport],
    record: Option<&LastApply>,
) -> HostDrift<'a> {
    let mut d = HostDrift {
        host: host.to_string(),
        unreachable: None,
        checks: Vec::new(),
        errors: Vec::new(),
        last_apply: record.map(|r| r.applied_at),
    };
    for r in reports.iter().filter(|r| r.host == host) {
        if let Outcome::Unreachable(m) = &r.outcome {
            d.unreachable.get_or_insert_with(|| m.clone());
            continue;
        }
        if r.handler || !drift_checked(&r.kind) {
            if let Outcome::Failed(m) = &r.outcome {
                d.errors.push((r, m.clone()));
            }
            continue;
        }
        let finding = match &r.outcome {
            Outcome::Unchanged => Finding::InSync,
            Outcome::Change {
                cause: ChangeCause::Host,
                ..
            } => Finding::Drifted(since(r, record)),
            Outcome::Change {
                cause: ChangeCause::EarlierChange,
                ..
            } => Finding::Pending("follows from an earlier change on this host".into()),
            Outcome::Unknown(m) => Finding::Pending(m.clone()),
            Outcome::Failed(m) => Finding::Error(m.clone()),
            Outcome::Unreachable(_) | Outcome::Skipped { .. } => continue,
        };
        d.checks.push(Check { report: r, finding });
    }
    if d.unreachable.is_some() {
        d.checks.clear();
        d.errors.clear();
    }
    d
}

/// Where a drifted task moved: see the module's rules.
fn since(r: &NodeReport, record: Option<&LastApply>) -> Since {
    let Some(record) = record else {
        return Since::Unknown;
    };
    let Some(now) = &r.file else {
        return Since::Untracked;
    };
    match record.file(&now.dest) {
        Some(then) if then == now => Since::Host,
        // Rendered differently, or a file the last apply did not write: the inventory moved.
        _ => Since::Inventory,
    }
}
