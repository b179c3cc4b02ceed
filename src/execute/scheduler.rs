//! The DAG walk on tokio: every node is a task that waits for its predecessors, then takes a fork permit
//! and runs. A node whose predecessor failed is skipped, and so are its own dependents, across hosts, while
//! independent branches go on. A host of a `serial:` batch whose previous batch did not finish the play
//! is skipped for that reason, so a rolling update stops instead of taking down the next nodes.

use super::host::{holds, Ahead, HostState};
use super::{
    ChangeCause, Control, ManagedFile, Mode, NodeReport, Outcome, RunReport, Sink, SkipCause,
};
use crate::model::Host;
use crate::plan::{Edge, Prepared, OTHER_HOSTS};
use crate::resources::{execute_wave, Action, Change, Effect, Resource};
use crate::transport::{connect, BatchAnswer, ProbeBatch, Transport, TransportError};
use minijinja::value::{merge_maps, Enumerator, Object, Value};
use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};

/// How a finished node looks to the nodes that wait for it.
#[derive(Debug, Clone)]
struct Done {
    ok: bool,
    changed: bool,
    label: String,
    /// The task that failed first on the way here (this node's own label when it failed itself).
    root: String,
    /// Set when the node was skipped because an earlier `serial:` batch failed: why, for its
    /// dependents, which are skipped for the same reason.
    earlier_batch: Option<String>,
}

struct Run {
    p: Arc<Prepared>,
    mode: Mode,
    hosts: HashMap<String, Arc<HostState>>,
    /// `hosts` by name in order, for [`OtherHosts`].
    by_name: Arc<BTreeMap<String, Arc<HostState>>>,
    /// Hosts worked on at once (see [`HostState::take_fork`]).
    forks: Arc<Semaphore>,
    /// More hosts than forks: a host that waits for another gives its fork up. With a fork for every
    /// host none need to, and keeping the connection saves connecting again.
    contended: bool,
    done: Vec<watch::Sender<Option<Done>>>,
    sink: Arc<dyn Sink>,
    ctl: Control,
    /// Plan mode: nodes that keep their cross-host waits, because they or a node after them read what
    /// other hosts registered (the registering task must have run, through however many hosts).
    keeps_order: Vec<bool>,
}

/// `registered` as a template of a node that reads other hosts' results sees it: every host by name,
/// whose results so far are converted when the template reads them. Copying every host's results for
/// every reader would cost hosts × hosts when every host reads another's.
struct OtherHosts(Arc<BTreeMap<String, Arc<HostState>>>);

impl std::fmt::Debug for OtherHosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Object for OtherHosts {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let hs = self.0.get(key.as_str()?)?;
        Some(Value::from_serialize(
            &*hs.registers.lock().expect("registers"),
        ))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.keys().map(|k| Value::from(k.as_str())).collect())
    }
}

/// Tells a node's dependents that it failed when the node ends without reporting (it panicked), so
/// they never wait for a result that cannot come.
struct Unfinished<'a> {
    tx: &'a watch::Sender<Option<Done>>,
    label: String,
    reported: bool,
}

/// Gives up the host's fork when its last node ends, however it ends (a panic included), so the hosts
/// waiting for one are not held up by a host that has nothing left to do.
struct LastOnHost<'a>(&'a HostState);

impl Drop for LastOnHost<'_> {
    fn drop(&mut self) {
        self.0.release_fork();
    }
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.tx.send_replace(Some(Done {
                ok: false,
                changed: false,
                label: self.label.clone(),
                root: self.label.clone(),
                earlier_batch: None,
            }));
        }
    }
}

/// Walks the whole graph in `mode` with at most `forks` hosts worked on at once, closes each host's
/// connection after its last task and every connection before returning. Reports come back in graph
/// order, with what each host's connection cost.
pub async fn run(p: Arc<Prepared>, mode: Mode, forks: usize, sink: Arc<dyn Sink>) -> RunReport {
    run_with(p, mode, forks, sink, Control::default()).await
}

/// [`run`] bounded by `ctl`: its timeouts, and its cancel token, after which no task starts and the
/// running ones are stopped.
pub async fn run_with(
    p: Arc<Prepared>,
    mode: Mode,
    forks: usize,
    sink: Arc<dyn Sink>,
    ctl: Control,
) -> RunReport {
    let persist = ctl.persist.clone();
    run_connected(p, mode, forks, sink, ctl, &|h| connect(h, persist.as_ref())).await
}

/// [`run_with`], reaching each host through what `connect` makes of it.
async fn run_connected(
    p: Arc<Prepared>,
    mode: Mode,
    forks: usize,
    sink: Arc<dyn Sink>,
    ctl: Control,
    connect: &dyn Fn(&Host) -> Arc<dyn Transport>,
) -> RunReport {
    let mut hosts = HashMap::new();
    for name in p.graph.hosts.keys() {
        let host = p.inv.host(name).expect("graph hosts are inventory hosts");
        hosts.insert(name.clone(), Arc::new(HostState::new(connect(host))));
    }
    let count = p.graph.graph.node_count();
    let keeps_order = feeding_cross_host_reads(&p);
    let by_name = Arc::new(hosts.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    let hosts_count = hosts.len();
    let run = Arc::new(Run {
        p,
        mode,
        hosts,
        by_name,
        forks: Arc::new(Semaphore::new(forks.max(1))),
        contended: hosts_count > forks.max(1),
        done: (0..count).map(|_| watch::channel(None).0).collect(),
        sink,
        ctl,
        keeps_order,
    });
    let mut handles = Vec::with_capacity(count);
    for node in run.p.graph.graph.node_indices() {
        let r = run.clone();
        handles.push(tokio::spawn(async move { r.node(node).await }));
    }
    let mut reports = Vec::with_capacity(count);
    for (node, h) in run.p.graph.graph.node_indices().zip(handles) {
        let report = match h.await {
            Ok(r) => r,
            Err(e) => {
                let r = run.lost(node, e);
                run.sink.done(&r);
                r
            }
        };
        reports.push(report);
    }
    let mut hosts = BTreeMap::new();
    for (name, h) in &run.hosts {
        h.transport().close().await;
        hosts.insert(name.clone(), h.transport().stats());
    }
    RunReport { reports, hosts }
}

/// Marks every node from which a node reading `registered['host']` can be reached, that node included:
/// in plan they must wait for their cross-host dependencies as in apply, or a reader could run before
/// the task it reads from (on another host, reached through a chain of dependencies).
fn feeding_cross_host_reads(p: &Prepared) -> Vec<bool> {
    let g = &p.graph.graph;
    let mut marked = vec![false; g.node_count()];
    let mut stack: Vec<NodeIndex> = g
        .node_indices()
        .filter(|n| p.nodes[n.index()].reads.contains(OTHER_HOSTS))
        .collect();
    while let Some(n) = stack.pop() {
        if std::mem::replace(&mut marked[n.index()], true) {
            continue;
        }
        stack.extend(g.neighbors_directed(n, Direction::Incoming));
    }
    marked
}

impl Run {
    /// The report of a node whose task ended without one (a panic), as a failure naming the task.
    fn lost(&self, node: NodeIndex, e: tokio::task::JoinError) -> NodeReport {
        let t = self.p.task(node);
        let why = match e.try_into_panic() {
            Ok(p) => p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into()),
            Err(e) => e.to_string(),
        };
        NodeReport {
            node,
            host: self.p.graph.graph[node].host.clone(),
            task: t.name.clone(),
            kind: t.kind.clone(),
            target: None,
            location: t.loc.to_string(),
            handler: t.handler,
            file: None,
            sensitive: self.p.nodes[node.index()].sensitive,
            outcome: Outcome::Failed(format!("internal error while running the task: {why}")),
            elapsed: Duration::ZERO,
        }
    }

    async fn node(&self, node: NodeIndex) -> NodeReport {
        let g = &self.p.graph.graph;
        let mut unfinished = Unfinished {
            tx: &self.done[node.index()],
            label: format!("`{}` on {}", self.p.task(node).name, g[node].host),
            reported: false,
        };
        let host = &g[node].host;
        let hs = &self.hosts[host];
        let last = self.p.graph.hosts[host].last() == Some(&node);
        let _last = last.then(|| LastOnHost(hs));
        let mut failed_dep: Option<Done> = None;
        let mut dep_changed = false;
        // Plan needs no cross-host order, except on the way to a task that reads what other hosts
        // registered. `serial:` batches keep theirs, so a plan walks the batches as apply will.
        let keeps_order = self.keeps_order[node.index()];
        let edges: Vec<_> = g
            .edges_directed(node, Direction::Incoming)
            .filter(|e| self.mode != Mode::Plan || *e.weight() != Edge::Depends || keeps_order)
            .collect();
        let from_here = |e: &petgraph::graph::EdgeReference<'_, Edge>| g[e.source()].host == *host;
        // This host's earlier tasks first: until they are done, the host's fork is theirs. Then, when
        // another host has still to finish what this task waits for and there are fewer forks than
        // hosts, the fork goes to a host that can work meanwhile (holding it would deadlock once every
        // fork waits so), and the connection is closed first, so no more hosts are connected than
        // forks; the next script connects again.
        for e in edges.iter().filter(|e| from_here(e)) {
            self.finished(e.source()).await;
        }
        if self.contended
            && edges
                .iter()
                .any(|e| !from_here(e) && self.done[e.source().index()].borrow().is_none())
        {
            hs.transport().close().await;
            hs.release_fork();
        }
        for e in &edges {
            let d = self.finished(e.source()).await;
            // A change on another host before this one (its dependency, or the batch before it)
            // may have changed this host too: its batched probes may be stale.
            dep_changed |= d.changed && *e.weight() != Edge::Order;
            if !d.ok && failed_dep.is_none() {
                let mut d = d;
                if *e.weight() == Edge::Serial && d.earlier_batch.is_none() {
                    d.earlier_batch = Some(format!(
                        "not started: an earlier serial batch of play `{}` failed ({} did not succeed)",
                        self.p.pb.plays[self.p.task(node).play].name,
                        d.root
                    ));
                }
                failed_dep = Some(d);
            }
        }
        let t = self.p.task(node);
        let started = Instant::now();
        let mut target = None;
        let mut file = None;
        let cancel = &self.ctl.cancel;
        let interrupted = |why: String| Outcome::Skipped {
            cause: SkipCause::Dependency,
            reason: format!("not started: the run was interrupted ({why})"),
        };
        let label = format!("`{}` on {host}", t.name);
        // What the dependents of a node skipped for a failed dependency learn: the first failure, and
        // whether it stopped a serial batch.
        let (mut root, mut earlier_batch) = (label.clone(), None);
        let ahead = hs.take_ahead(node);
        let outcome = match (failed_dep, cancel.reason(), ahead) {
            // Made already, by an earlier task's wave: reported whatever happens now.
            (_, _, Some(a)) => {
                self.sink.started(host, &t.name);
                let o = self.report_ahead(node, hs, a, &mut target, &mut file);
                self.hide_if_sensitive(node, o)
            }
            (_, Some(why), None) => interrupted(why),
            (Some(d), None, None) if self.mode == Mode::Apply => {
                root = d.root;
                match d.earlier_batch {
                    Some(why) => {
                        earlier_batch = Some(why.clone());
                        Outcome::Skipped {
                            cause: SkipCause::EarlierBatch,
                            reason: why,
                        }
                    }
                    None => Outcome::Skipped {
                        cause: SkipCause::Dependency,
                        reason: format!("{} did not succeed", d.label),
                    },
                }
            }
            _ => {
                tokio::select! {
                    why = cancel.cancelled() => interrupted(why),
                    () = hs.take_fork(&self.forks) => {
                        self.sink.started(host, &t.name);
                        tokio::select! {
                            why = cancel.cancelled() => Outcome::Failed(format!(
                                "`{}` on {host}: stopped, the run was interrupted ({why})",
                                t.name
                            )),
                            o = self.execute(node, dep_changed, &mut target, &mut file) => {
                                self.hide_if_sensitive(node, o)
                            }
                        }
                    }
                }
            }
        };
        let report = NodeReport {
            node,
            host: host.clone(),
            task: t.name.clone(),
            kind: t.kind.clone(),
            target,
            location: t.loc.to_string(),
            handler: t.handler,
            file,
            sensitive: self.p.nodes[node.index()].sensitive,
            outcome,
            elapsed: started.elapsed(),
        };
        self.done[node.index()].send_replace(Some(Done {
            ok: report.outcome.succeeded(),
            changed: report.outcome.changes(),
            label,
            root,
            earlier_batch,
        }));
        unfinished.reported = true;
        self.sink.done(&report);
        if last {
            // Closed before the fork is given up, so no more hosts are connected than forks.
            hs.transport().close().await;
        }
        report
    }

    /// What `node` ended with, once it has.
    async fn finished(&self, node: NodeIndex) -> Done {
        let mut rx = self.done[node.index()].subscribe();
        rx.wait_for(Option::is_some)
            .await
            .map(|d| d.clone().expect("waited for Some"))
            .unwrap_or(Done {
                ok: false,
                changed: false,
                label: "(lost)".into(),
                root: "(lost)".into(),
                earlier_batch: None,
            })
    }

    async fn execute(
        &self,
        node: NodeIndex,
        dep_changed: bool,
        target: &mut Option<String>,
        file: &mut Option<ManagedFile>,
    ) -> Outcome {
        let p = &self.p;
        let t = p.task(node);
        let hs = &self.hosts[&p.graph.graph[node].host];
        let prep = &p.nodes[node.index()];
        let skip = |cause, reason: &str| Outcome::Skipped {
            cause,
            reason: reason.to_string(),
        };
        if t.handler {
            // Taken, not read: a handler's second flush (after the post tasks) runs only for what
            // notified it after its first.
            let by = hs
                .notified
                .lock()
                .expect("notified")
                .remove(&(t.play, t.short.clone()));
            if by.is_none() {
                return skip(SkipCause::NotNotified, "not notified");
            }
        }
        let resource: Arc<dyn Resource> = match (&prep.resource, prep.when) {
            (_, Some(false)) => {
                self.register_skip(node, hs);
                return skip(SkipCause::Condition, "condition is false");
            }
            (Some(r), _) => r.clone(),
            (None, _) => {
                let mut unknown: Vec<String> = {
                    let u = hs.unknown.lock().expect("unknown");
                    prep.reads
                        .iter()
                        .filter(|r| u.contains(*r))
                        .cloned()
                        .collect()
                };
                if prep.reads.contains(OTHER_HOSTS) {
                    unknown.extend(self.unknown_upstream(node));
                }
                if !unknown.is_empty() {
                    self.pending(node, hs, vec![Effect::Other]);
                    return Outcome::Unknown(format!(
                        "reads `{}`, known after apply",
                        unknown.join("`, `")
                    ));
                }
                let own = Value::from_serialize(&*hs.registers.lock().expect("registers"));
                let registers = if prep.reads.contains(OTHER_HOSTS) {
                    let others = Value::from_object(OtherHosts(self.by_name.clone()));
                    merge_maps([own, Value::from_iter([(OTHER_HOSTS, others)])])
                } else {
                    own
                };
                let ctx = p.context_with(node, registers);
                match p.condition(node, &ctx) {
                    Ok(false) => {
                        self.register_skip(node, hs);
                        return skip(SkipCause::Condition, "condition is false");
                    }
                    Err(e) => return Outcome::Failed(e.to_string()),
                    Ok(true) => {}
                }
                if prep.sensitive {
                    p.learn_secrets(node, &ctx);
                }
                match p.build(node, &ctx) {
                    Ok(r) => r,
                    Err(e) => return Outcome::Failed(e.to_string()),
                }
            }
        };
        *target = Some(resource.describe());
        *file = ManagedFile::of(resource.as_ref());
        let transport = hs.transport().clone();
        let host = transport.host();
        // Plan takes every probe from the host's batch; apply too, for as long as the changes made so
        // far on the host cannot have touched what a probe looks at (then it decides as plan did,
        // through the same simulation, and its steps' guards check that the host agrees).
        let batched = prep.resource.is_some() && !dep_changed && hs.batch_holds(&resource.reads());
        let answer = if batched {
            let all = || self.batch_probes(&p.graph.graph[node].host);
            match hs.batch(all, self.ctl.probe_timeout).await {
                Ok(map) => map.get(&node).cloned(),
                Err(e) if e.unreachable => return Outcome::Unreachable(e.message.clone()),
                Err(e) => return Outcome::Failed(e.message.clone()),
            }
        } else {
            None
        };
        let from_batch = answer.is_some();
        let mut answer: BatchAnswer = match answer {
            Some(a) => a,
            None => match self
                .probe_alone(node, resource.as_ref(), transport.as_ref())
                .await
            {
                Ok(a) => a,
                Err(o) => return o,
            },
        };
        if let Some(failed) = probe_failed(&answer, resource.as_ref()) {
            return failed;
        }
        // Planned against earlier pending changes of the run, when there are any; a change is then the
        // host's own only when the probe alone also asks for one. Only a run that explains causes
        // (drift) pays for that second planning; the others report the host's own.
        let second_plan = self.mode == Mode::Plan
            && self.ctl.explain_causes
            && !hs.view.lock().expect("view").is_empty();
        let planned = match self.mode {
            Mode::Plan => resource.plan_in(&answer.facts, &hs.view.lock().expect("view")),
            Mode::Apply if from_batch => {
                let seen = resource.plan_in(&answer.facts, &hs.applied());
                match seen {
                    // The simulation cannot tell what an earlier change left: probe it now.
                    Ok(None) => match self
                        .probe_alone(node, resource.as_ref(), transport.as_ref())
                        .await
                    {
                        Ok(fresh) => {
                            answer = fresh;
                            resource.plan(&answer.facts).map(Some)
                        }
                        Err(o) => return o,
                    },
                    other => other,
                }
            }
            Mode::Apply => resource.plan(&answer.facts).map(Some),
        };
        let change = match planned {
            Ok(Some(c)) => c,
            Ok(None) => {
                // A change of a kind only apply will tell: it may do anything the resource can do.
                let unknown = Change::new(Action::Run, Vec::new());
                self.pending(node, hs, resource.effects(&unknown));
                return Outcome::Unknown(
                    "an earlier task changes what it checks on this host; known after apply".into(),
                );
            }
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        if !change.is_pending() {
            self.register(node, hs, false, change.result.clone());
            return Outcome::Unchanged;
        }
        let cause = if second_plan && !resource.plan(&answer.facts).is_ok_and(|c| c.is_pending()) {
            ChangeCause::EarlierChange
        } else {
            ChangeCause::Host
        };
        let (details, diff) = change.shown(prep.sensitive);
        let outcome = Outcome::Change {
            action: change.action,
            details,
            diff,
            cause,
        };
        match self.mode {
            Mode::Plan => {
                self.pending(node, hs, resource.effects(&change));
                outcome
            }
            Mode::Apply
                if self
                    .ctl
                    .may_change
                    .as_ref()
                    .is_some_and(|allowed| !allowed[node.index()]) =>
            {
                skip(
                    SkipCause::NotAllowed,
                    "not changed: it did not drift when checked (drift --fix changes only what drifted)",
                )
            }
            Mode::Apply => {
                tracing::info!(host = transport.host(), task = %t.name, "applying {}", resource.describe());
                let limit = t.timeout.map(Duration::from_secs).or(matches!(
                    t.kind.as_str(),
                    "command" | "shell"
                )
                .then_some(self.ctl.command_timeout));
                if limit.is_none() {
                    if let Some(done) = self
                        .wave(node, hs, resource.as_ref(), &change, transport.as_ref(), &outcome)
                        .await
                    {
                        return done;
                    }
                }
                let effects = resource.effects(&change);
                let applying = resource.apply(&change, transport.as_ref());
                let result = match limit {
                    None => applying.await,
                    Some(limit) => match tokio::time::timeout(limit, applying).await {
                        Ok(r) => r,
                        Err(_) => {
                            hs.changed(vec![Effect::Other]);
                            return self.timed_out(node, host, "it", limit);
                        }
                    },
                };
                self.applied(node, hs, effects, result, outcome)
            }
        }
    }

    /// Apply mode: when `change` of `node` can travel with changes of the host's next tasks, decides
    /// those from the host's batch through the simulation (as plan decides them) and makes them all
    /// in one script, stopping at the first that fails; each of those tasks reports what was done for
    /// it in its turn. None when no later task can join: the change is applied on its own.
    async fn wave(
        &self,
        node: NodeIndex,
        hs: &HostState,
        resource: &dyn Resource,
        change: &Change,
        transport: &dyn Transport,
        outcome: &Outcome,
    ) -> Option<Outcome> {
        if self.ctl.may_change.is_some() || !resource.applies_by_steps() || !change.runs_only() {
            return None;
        }
        let joined = self.joiners(node, hs, resource, change);
        if joined.is_empty() {
            return None;
        }
        let mut changes = vec![change];
        changes.extend(joined.iter().filter_map(|(_, j)| match j {
            Joined::Change(_, c) => Some(c),
            Joined::Unchanged(_) => None,
        }));
        tracing::info!(
            host = transport.host(),
            task = %self.p.task(node).name,
            "applying {} and the changes of {} later tasks in one script",
            resource.describe(),
            changes.len() - 1
        );
        let effects = resource.effects(change);
        let mut results = match execute_wave(&changes, transport).await {
            Ok(r) => r.into_iter(),
            Err(e) => return Some(self.applied(node, hs, effects, Err(e.into()), outcome.clone())),
        };
        let first = results.next()?;
        let went_on = first.is_ok();
        let own = self.applied(node, hs, effects, first, outcome.clone());
        if went_on {
            for (n, j) in joined {
                let ahead = match j {
                    Joined::Unchanged(result) => Ahead::Unchanged(result),
                    Joined::Change(r, c) => match results.next() {
                        Some(Ok(result)) => {
                            hs.changed(r.effects(&c));
                            let (details, diff) = c.shown(self.p.nodes[n.index()].sensitive);
                            let shown = Outcome::Change {
                                action: c.action,
                                details,
                                diff,
                                cause: ChangeCause::Host,
                            };
                            Ahead::Changed(shown, result)
                        }
                        Some(Err(e)) => {
                            hs.changed(vec![Effect::Other]);
                            hs.put_ahead(n, Ahead::Failed(e.to_string()));
                            break;
                        }
                        None => break,
                    },
                };
                hs.put_ahead(n, ahead);
            }
        }
        Some(own)
    }

    /// The host's tasks after `node` that can join its wave, in order: each decided from the batch as
    /// the changes before it (from `node` on) leave the host, up to the first that cannot be (a probe
    /// the simulation cannot answer, a handler, a timeout, a dependency on another host's change, a
    /// change that is more than scripts), ending with the last that changes something. Tasks skipped
    /// by a condition known before the run are passed over: they touch nothing.
    fn joiners(
        &self,
        node: NodeIndex,
        hs: &HostState,
        resource: &dyn Resource,
        change: &Change,
    ) -> Vec<(NodeIndex, Joined)> {
        let g = &self.p.graph.graph;
        let order = &self.p.graph.hosts[&g[node].host];
        let Some(pos) = order.iter().position(|n| *n == node) else {
            return Vec::new();
        };
        let mut view = hs.applied().clone();
        view.record(resource.effects(change));
        // The tasks decided ahead so far, and whether each changes something.
        let mut ahead: HashMap<NodeIndex, bool> = HashMap::from([(node, true)]);
        let mut out = Vec::new();
        for &n in &order[pos + 1..] {
            let t = self.p.task(n);
            let prep = &self.p.nodes[n.index()];
            if t.handler || t.timeout.is_some() || matches!(t.kind.as_str(), "command" | "shell") {
                break;
            }
            let deps_ready = g.edges_directed(n, Direction::Incoming).all(|e| {
                let plain = *e.weight() == Edge::Order;
                match ahead.get(&e.source()) {
                    Some(changes) => !changes || plain,
                    None => self.done[e.source().index()]
                        .borrow()
                        .as_ref()
                        .is_some_and(|d| d.ok && (!d.changed || plain)),
                }
            });
            if !deps_ready {
                break;
            }
            if prep.when == Some(false) {
                ahead.insert(n, false);
                continue;
            }
            let Some(r) = &prep.resource else { break };
            if !holds(&view, &r.reads()) {
                break;
            }
            let Some(answer) = hs.batched(n).filter(|a| a.status == 0) else {
                break;
            };
            let Ok(Some(c)) = r.plan_in(&answer.facts, &view) else {
                break;
            };
            if !c.is_pending() {
                ahead.insert(n, false);
                out.push((n, Joined::Unchanged(c.result)));
                continue;
            }
            if !r.applies_by_steps() || !c.runs_only() {
                break;
            }
            view.record(r.effects(&c));
            ahead.insert(n, true);
            out.push((n, Joined::Change(r.clone(), c)));
        }
        while matches!(out.last(), Some((_, Joined::Unchanged(_)))) {
            out.pop();
        }
        out
    }

    /// What an earlier task's wave did for `node`, reported as its own: registered and notified as if
    /// it had run itself.
    fn report_ahead(
        &self,
        node: NodeIndex,
        hs: &HostState,
        ahead: Ahead,
        target: &mut Option<String>,
        file: &mut Option<ManagedFile>,
    ) -> Outcome {
        if let Some(r) = &self.p.nodes[node.index()].resource {
            *target = Some(r.describe());
            *file = ManagedFile::of(r.as_ref());
        }
        match ahead {
            Ahead::Unchanged(result) => {
                self.register(node, hs, false, result);
                Outcome::Unchanged
            }
            Ahead::Changed(outcome, result) => {
                self.register(node, hs, true, result);
                self.notify(node, hs);
                outcome
            }
            Ahead::Failed(why) => Outcome::Failed(why),
        }
    }

    /// Probes `resource` on its own, in a round trip of its own: for a task that is not in the
    /// host's batch, or whose batched answer an earlier change of the run may have made stale. A
    /// probe that failed is the task's failure.
    async fn probe_alone(
        &self,
        node: NodeIndex,
        resource: &dyn Resource,
        transport: &dyn Transport,
    ) -> Result<BatchAnswer, Outcome> {
        let t = self.p.task(node);
        tracing::debug!(host = transport.host(), task = %t.name, "probe round trip (single)");
        let mut b = ProbeBatch::default();
        b.push(resource.probe());
        let limit = t
            .timeout
            .map(Duration::from_secs)
            .unwrap_or(self.ctl.probe_timeout);
        match tokio::time::timeout(limit, b.run(transport)).await {
            Ok(Ok(mut a)) => {
                let a = a.remove(0);
                probe_failed(&a, resource).map_or(Ok(a), Err)
            }
            Ok(Err(e @ TransportError::Connection { .. })) => {
                Err(Outcome::Unreachable(e.to_string()))
            }
            Ok(Err(e)) => Err(Outcome::Failed(e.to_string())),
            Err(_) => Err(self.timed_out(node, transport.host(), "its probe", limit)),
        }
    }

    /// The failure of `node` on `host` whose `what` (its probe, or the task itself) ran past `limit`.
    fn timed_out(&self, node: NodeIndex, host: &str, what: &str, limit: Duration) -> Outcome {
        Outcome::Failed(format!(
            "`{}` on {host}: {what} timed out after {}s (timeout), and what it started there was stopped",
            self.p.task(node).name,
            limit.as_secs()
        ))
    }

    /// Plan mode: records a pending change of `node` with its `effects` on the host, so later tasks
    /// there are planned against what it leaves, its registered value is known only after apply, and
    /// the handlers it notifies will run.
    fn pending(&self, node: NodeIndex, hs: &HostState, effects: Vec<Effect>) {
        hs.view.lock().expect("view").record(effects);
        if let Some(r) = &self.p.task(node).register {
            hs.unknown.lock().expect("unknown").insert(r.clone());
        }
        self.notify(node, hs);
    }

    /// A sensitive task's failure without its message: it quotes what the task ran and printed, which
    /// may be a secret in any spelling.
    fn hide_if_sensitive(&self, node: NodeIndex, outcome: Outcome) -> Outcome {
        match outcome {
            Outcome::Failed(_) if self.p.nodes[node.index()].sensitive => Outcome::Failed(format!(
                "{} failed; its message is hidden because the task is sensitive",
                self.p.task(node).kind
            )),
            other => other,
        }
    }

    /// Records an apply's result: registers and notifies on success; either way the host has changed,
    /// with the change's `effects` when it succeeded, and in a way the simulation cannot tell when it
    /// failed half-way.
    fn applied(
        &self,
        node: NodeIndex,
        hs: &HostState,
        effects: Vec<Effect>,
        result: Result<crate::resources::Registered, crate::resources::ResourceError>,
        outcome: Outcome,
    ) -> Outcome {
        hs.changed(if result.is_ok() {
            effects
        } else {
            vec![Effect::Other]
        });
        match result {
            Ok(result) => {
                self.register(node, hs, true, result);
                self.notify(node, hs);
                outcome
            }
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    /// Plan mode: `registered['h'].x` names of the hosts this node depends on whose value waits for a
    /// pending change there.
    fn unknown_upstream(&self, node: NodeIndex) -> Vec<String> {
        let g = &self.p.graph.graph;
        let mut out = Vec::new();
        for e in g.edges_directed(node, Direction::Incoming) {
            let host = &g[e.source()].host;
            if *e.weight() == Edge::Order || host == &g[node].host {
                continue;
            }
            for r in self.hosts[host].unknown.lock().expect("unknown").iter() {
                let name = format!("{OTHER_HOSTS}['{host}'].{r}");
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        out
    }

    /// Every probe of `host` that can be known up front, for its one-round-trip batch.
    fn batch_probes(&self, host: &str) -> Vec<(NodeIndex, String)> {
        self.p.graph.hosts[host]
            .iter()
            .filter_map(|n| {
                self.p.nodes[n.index()]
                    .resource
                    .as_ref()
                    .map(|r| (*n, r.probe()))
            })
            .collect()
    }

    fn register(
        &self,
        node: NodeIndex,
        hs: &HostState,
        changed: bool,
        mut result: serde_json::Map<String, serde_json::Value>,
    ) {
        if let Some(name) = &self.p.task(node).register {
            result.insert("changed".into(), changed.into());
            result.insert("failed".into(), false.into());
            result.entry("skipped").or_insert(false.into());
            hs.register(name, result.into());
        }
    }

    fn register_skip(&self, node: NodeIndex, hs: &HostState) {
        let mut m = serde_json::Map::new();
        m.insert("skipped".into(), true.into());
        self.register(node, hs, false, m);
    }

    fn notify(&self, node: NodeIndex, hs: &HostState) {
        let t = self.p.task(node);
        let mut n = hs.notified.lock().expect("notified");
        for h in &t.notify {
            n.entry((t.play, h.clone()))
                .or_default()
                .push(t.name.clone());
        }
    }
}

/// A later task of a host decided ahead for a wave: nothing to do (what it registers), or its change.
enum Joined {
    Unchanged(crate::resources::Registered),
    Change(Arc<dyn Resource>, Change),
}

/// The task's failure when its probe itself failed (the probe script exited non-zero).
fn probe_failed(answer: &BatchAnswer, resource: &dyn Resource) -> Option<Outcome> {
    (answer.status != 0).then(|| {
        Outcome::Failed(format!(
            "probe of {} failed (exit {}): {}",
            resource.describe(),
            answer.status,
            answer.messages.join("\n")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{prepare, Options};
    use crate::resources::{Change, Registered, ResourceError};
    use crate::transport::{Facts, LocalTransport};
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A resource whose planning panics: the only way to provoke a panic inside a node on purpose.
    struct PanicsWhilePlanning;

    #[async_trait]
    impl Resource for PanicsWhilePlanning {
        fn describe(&self) -> String {
            "panics".into()
        }
        fn probe(&self) -> String {
            "true".into()
        }
        fn plan(&self, _facts: &Facts) -> Result<Change, ResourceError> {
            panic!("planning blew up")
        }
        async fn apply(
            &self,
            _change: &Change,
            _host: &dyn Transport,
        ) -> Result<Registered, ResourceError> {
            unreachable!("never planned")
        }
    }

    struct Quiet;
    impl Sink for Quiet {
        fn done(&self, _report: &NodeReport) {}
    }

    /// Hosts connected at once, the most there were, and how many connections were made.
    #[derive(Default)]
    struct Connections {
        open: AtomicUsize,
        most: AtomicUsize,
        made: AtomicUsize,
    }

    /// A local host that counts itself connected from its first script until it is closed.
    struct Counted {
        inner: LocalTransport,
        connected: AtomicBool,
        count: Arc<Connections>,
    }

    #[async_trait]
    impl Transport for Counted {
        fn host(&self) -> &str {
            self.inner.host()
        }
        async fn run(&self, script: &str) -> Result<crate::transport::Output, TransportError> {
            if !self.connected.swap(true, Ordering::SeqCst) {
                self.count.made.fetch_add(1, Ordering::SeqCst);
                let now = self.count.open.fetch_add(1, Ordering::SeqCst) + 1;
                self.count.most.fetch_max(now, Ordering::SeqCst);
            }
            self.inner.run(script).await
        }
        async fn upload(
            &self,
            local: &std::path::Path,
            remote: &str,
        ) -> Result<(), TransportError> {
            self.inner.upload(local, remote).await
        }
        async fn close(&self) {
            if self.connected.swap(false, Ordering::SeqCst) {
                self.count.open.fetch_sub(1, Ordering::SeqCst);
            }
            self.inner.close().await
        }
        fn stats(&self) -> crate::transport::TransportStats {
            self.inner.stats()
        }
    }

    #[tokio::test]
    async fn forks_bound_the_hosts_connected_at_once_and_each_host_closes_when_it_is_done() {
        let d = tempfile::tempdir().unwrap();
        let mut inv = String::from("playbook: main.yaml\nhosts:\n");
        for i in 0..12 {
            let root = d.path().join(format!("h{i}")).display().to_string();
            inv.push_str(&format!(
                "  h{i}:\n    connection: local\n    vars: {{ root: \"{root}\" }}\n"
            ));
        }
        std::fs::write(d.path().join("inventory.yaml"), inv).unwrap();
        // Every host waits for a slow task of h11, the last host to get a fork, so hosts that got
        // one first must give it up while they wait (3 forks), or h11 never gets one; with a fork
        // for every host, none gives its fork or its connection up.
        std::fs::write(
            d.path().join("main.yaml"),
            "plays:\n  - name: p\n    hosts: all\n    tasks:\n      - name: dir\n        file: { path: \"{{ root }}\", state: directory }\n      - name: slow\n        when: inventory_hostname == 'h11'\n        shell: { cmd: sleep 0.3 }\n      - name: after h11\n        depends_on: [{ task: slow, hosts: h11 }]\n        copy: { dest: \"{{ root }}/after\", content: \"y\\n\" }\n",
        )
        .unwrap();
        let p = Arc::new(prepare(&d.path().join("inventory.yaml"), &Options::default()).unwrap());
        for (mode, forks) in [(Mode::Apply, 3), (Mode::Plan, 3), (Mode::Apply, 12)] {
            let count = Arc::new(Connections::default());
            let connect = |h: &Host| -> Arc<dyn Transport> {
                Arc::new(Counted {
                    inner: LocalTransport::new(h.name.clone()),
                    connected: AtomicBool::new(false),
                    count: count.clone(),
                })
            };
            let run = run_connected(
                p.clone(),
                mode,
                forks,
                Arc::new(Quiet),
                Control::default(),
                &connect,
            );
            let reports = tokio::time::timeout(std::time::Duration::from_secs(60), run)
                .await
                .expect("the run hung waiting for a fork")
                .reports;
            assert!(reports.iter().all(|r| r.outcome.succeeded()), "{reports:?}");
            let most = count.most.load(Ordering::SeqCst);
            assert!(
                (1..=forks).contains(&most),
                "{mode:?}, {forks} forks: {most} hosts connected at once"
            );
            assert_eq!(count.open.load(Ordering::SeqCst), 0, "{mode:?}");
            if forks == 12 {
                // A fork for every host: none gives its fork (and its connection) up while it waits.
                assert_eq!(count.made.load(Ordering::SeqCst), 12, "{mode:?}");
            }
        }
    }

    /// Applies `main.yaml` of `dir` on its one local host, returning the reports and the scripts run.
    async fn apply_counting(dir: &std::path::Path) -> (Vec<NodeReport>, u64) {
        let p = Arc::new(prepare(&dir.join("inventory.yaml"), &Options::default()).unwrap());
        let run = run(p, Mode::Apply, 4, Arc::new(Quiet)).await;
        let scripts = run.hosts.values().map(|s| s.scripts).sum();
        (run.reports, scripts)
    }

    #[tokio::test]
    async fn a_first_apply_makes_a_hosts_path_changes_in_one_wave_and_stops_it_at_a_failure() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("h1").display().to_string();
        std::fs::write(
            d.path().join("inventory.yaml"),
            format!("playbook: main.yaml\nhosts:\n  h1:\n    connection: local\n    vars: {{ root: \"{root}\" }}\n"),
        )
        .unwrap();
        let tasks = "plays:\n  - name: p\n    hosts: all\n    tasks:\n      - name: dir\n        file: { path: \"{{ root }}\", state: directory }\n      - name: a\n        copy: { dest: \"{{ root }}/a\", content: \"one\\n\" }\n      - name: b\n        copy: { dest: \"{{ root }}/b\", content: \"two\\n\" }\n      - name: edit c\n        lineinfile: { path: \"{{ root }}/c\", line: \"three\", create: true }\n      - name: sub\n        file: { path: \"{{ root }}/sub\", state: directory, mode: \"0750\" }\n";
        std::fs::write(d.path().join("main.yaml"), tasks).unwrap();
        // The batch, then one script for every change: each decided from the batch as the changes
        // before it leave the host.
        let (reports, scripts) = apply_counting(d.path()).await;
        assert!(
            reports
                .iter()
                .all(|r| matches!(r.outcome, Outcome::Change { .. })),
            "{reports:?}"
        );
        assert_eq!(scripts, 2, "{reports:?}");
        assert_eq!(
            std::fs::read_to_string(format!("{root}/a")).unwrap(),
            "one\n"
        );
        assert_eq!(
            std::fs::read_to_string(format!("{root}/b")).unwrap(),
            "two\n"
        );
        assert_eq!(
            std::fs::read_to_string(format!("{root}/c")).unwrap(),
            "three\n"
        );
        let (reports, scripts) = apply_counting(d.path()).await;
        assert!(
            reports
                .iter()
                .all(|r| matches!(r.outcome, Outcome::Unchanged)),
            "{reports:?}"
        );
        assert_eq!(scripts, 1, "a converged host is one round trip");

        // A step that fails on the host stops the wave there: what came before it is made and
        // reported as changed, it fails naming its step, and what comes after it never runs.
        std::fs::remove_dir_all(&root).unwrap();
        let tasks = tasks.replace(
            "content: \"two\\n\" }",
            "content: \"two\\n\", owner: no-such-user-apim }",
        );
        std::fs::write(d.path().join("main.yaml"), tasks).unwrap();
        let (reports, scripts) = apply_counting(d.path()).await;
        let of = |task: &str| {
            reports
                .iter()
                .find(|r| r.task == task)
                .map(|r| r.outcome.clone())
                .unwrap()
        };
        assert!(matches!(of("a"), Outcome::Change { .. }), "{reports:?}");
        match of("b") {
            Outcome::Failed(m) => assert!(m.contains("no-such-user-apim"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(
                of("edit c"),
                Outcome::Skipped {
                    cause: SkipCause::Dependency,
                    ..
                }
            ),
            "{reports:?}"
        );
        assert_eq!(scripts, 2, "{reports:?}");
        assert_eq!(
            std::fs::read_to_string(format!("{root}/a")).unwrap(),
            "one\n"
        );
        assert!(!std::path::Path::new(&format!("{root}/b")).exists());
        assert!(!std::path::Path::new(&format!("{root}/c")).exists());
        assert!(!std::path::Path::new(&format!("{root}/sub")).exists());
    }

    #[tokio::test]
    async fn a_panicking_node_fails_and_its_dependents_are_skipped_instead_of_waiting_forever() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("h1").display().to_string();
        std::fs::write(
            d.path().join("inventory.yaml"),
            format!("playbook: main.yaml\nhosts:\n  h1:\n    connection: local\n    vars: {{ root: \"{root}\" }}\n  h2:\n    connection: local\n    vars: {{ root: \"{root}2\" }}\n"),
        )
        .unwrap();
        std::fs::write(
            d.path().join("main.yaml"),
            "plays:\n  - name: p\n    hosts: all\n    tasks:\n      - name: first\n        file: { path: \"{{ root }}\", state: directory }\n      - name: second\n        depends_on: [{ task: first, hosts: h1 }]\n        file: { path: \"{{ root }}/x\", state: directory }\n",
        )
        .unwrap();
        let mut p = prepare(&d.path().join("inventory.yaml"), &Options::default()).unwrap();
        let first = p.graph.hosts["h1"][0];
        p.nodes[first.index()].resource = Some(Arc::new(PanicsWhilePlanning));
        let run = run(Arc::new(p), Mode::Apply, 4, Arc::new(Quiet));
        let reports = tokio::time::timeout(std::time::Duration::from_secs(60), run)
            .await
            .expect("the run hung on a panicked node")
            .reports;
        let of = |host: &str, task: &str| {
            reports
                .iter()
                .find(|r| r.host == host && r.task == task)
                .map(|r| r.outcome.clone())
                .unwrap()
        };
        match of("h1", "first") {
            Outcome::Failed(m) => assert!(m.contains("planning blew up"), "{m}"),
            o => panic!("{o:?}"),
        }
        for host in ["h1", "h2"] {
            match of(host, "second") {
                Outcome::Skipped {
                    cause: SkipCause::Dependency,
                    reason,
                } => assert!(reason.contains("`first` on h1"), "{reason}"),
                o => panic!("{host}: {o:?}"),
            }
        }
        assert!(of("h2", "first").succeeded());
    }
}
