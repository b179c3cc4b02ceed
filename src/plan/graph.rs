//! The task graph: one node per (host, task), an edge from each task to the next on the same host
//! (tasks, handlers, post tasks, the handlers post tasks notify), from every task a `depends_on` names
//! to the task that waits, across hosts, and, in a play with `serial:`, from the end of the play on
//! every host of a batch to its start on every host of the next batch. petgraph finds cycles and
//! orders the graph; the scheduler walks the same graph, in plan and apply alike.

use crate::model::playbook::DepRef;
use crate::model::{Inventory, ModelError, Playbook, Serial};
use indexmap::IndexMap;
use petgraph::algo::{tarjan_scc, toposort};
use petgraph::dot::{Config, Dot};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use std::collections::{HashMap, HashSet};

/// A task on a host. A handler that post tasks can notify has two nodes on a host: its flush after the
/// tasks and its flush after the post tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Inventory host name.
    pub host: String,
    /// Task id in the playbook.
    pub task: usize,
}

/// Why one node waits for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// The previous task on the same host.
    Order,
    /// An explicit `depends_on`.
    Depends,
    /// `serial:`: a host of the previous batch finished the play (its last node) before this host
    /// starts it (its first node).
    Serial,
}

/// The edge kind's name, as in the JSON graph (and what DOT requires of edge weights).
impl std::fmt::Display for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Edge::Order => "order",
            Edge::Depends => "depends_on",
            Edge::Serial => "serial",
        })
    }
}

/// The whole run as a DAG.
#[derive(Debug, Clone, Default)]
pub struct TaskGraph {
    /// The graph itself.
    pub graph: DiGraph<Node, Edge>,
    /// Nodes of each selected host, in execution order; hosts in inventory order.
    pub hosts: IndexMap<String, Vec<NodeIndex>>,
    /// Things worth telling the user that are not errors (dependencies cut off by `--limit`).
    pub warnings: Vec<String>,
}

impl TaskGraph {
    /// Builds the graph for the hosts `limit` selects (all when `None`), checking every host pattern and
    /// dependency and rejecting cycles. `serial` is each play's batch size, resolved (templates
    /// rendered) by the caller, which knows the variables.
    pub fn build(
        inv: &Inventory,
        pb: &Playbook,
        limit: Option<&str>,
        serial: &[Serial],
    ) -> Result<Self, ModelError> {
        let limit_error = |msg: String| ModelError::At {
            loc: crate::model::Location {
                file: "--limit".into(),
                line: 0,
            },
            msg,
        };
        let allowed: Option<HashSet<String>> = match limit {
            Some(l) => {
                let hosts = inv.select(l).map_err(limit_error)?;
                if hosts.is_empty() {
                    return Err(limit_error(format!(
                        "`{l}` matches no host of {}",
                        inv.path.display()
                    )));
                }
                Some(hosts.into_iter().collect())
            }
            None => None,
        };
        let mut g = TaskGraph::default();
        for h in &inv.hosts {
            if allowed.as_ref().is_none_or(|a| a.contains(&h.name)) {
                g.hosts.insert(h.name.clone(), Vec::new());
            }
        }
        let mut index: HashMap<(usize, String), Vec<NodeIndex>> = HashMap::new();
        let mut play_hosts: Vec<Vec<String>> = Vec::new();
        for (i, play) in pb.plays.iter().enumerate() {
            let hosts = inv
                .select(&play.hosts)
                .map_err(|e| ModelError::at(&play.loc, format!("play `{}`: {e}", play.name)))?;
            let selected: Vec<String> = hosts
                .iter()
                .filter(|h| g.hosts.contains_key(*h))
                .cloned()
                .collect();
            // (first, last) node of the play on each selected host, for the batch edges.
            let mut ends = Vec::new();
            for h in &selected {
                let mut first = None;
                let order = play
                    .tasks
                    .iter()
                    .chain(&play.handlers)
                    .chain(&play.post_tasks)
                    .chain(&play.post_handlers);
                for &t in order {
                    let n = g.graph.add_node(Node {
                        host: h.clone(),
                        task: t,
                    });
                    index.entry((t, h.clone())).or_default().push(n);
                    let list = g.hosts.get_mut(h).expect("selected host");
                    if let Some(&prev) = list.last() {
                        g.graph.add_edge(prev, n, Edge::Order);
                    }
                    list.push(n);
                    first.get_or_insert(n);
                }
                if let Some(first) = first {
                    ends.push((first, g.hosts[h].last().copied().expect("just added")));
                }
            }
            let size = serial.get(i).copied().unwrap_or(Serial::All);
            let batches: Vec<_> = ends.chunks(size.batch_size(ends.len())).collect();
            for pair in batches.windows(2) {
                for &(_, last) in pair[0] {
                    for &(first, _) in pair[1] {
                        g.graph.add_edge(last, first, Edge::Serial);
                    }
                }
            }
            play_hosts.push(hosts);
        }
        for task in &pb.tasks {
            for dep in &task.depends_on {
                let targets = resolve_dep(
                    inv,
                    pb,
                    dep,
                    &play_hosts,
                    &index,
                    limit.is_some(),
                    &mut g.warnings,
                    &task.name,
                )?;
                for h in &play_hosts[task.play] {
                    for &me in index.get(&(task.id, h.clone())).into_iter().flatten() {
                        for &t in &targets {
                            if t == me {
                                return Err(ModelError::at(
                                    &dep.loc,
                                    format!("task `{}` depends on itself", task.name),
                                ));
                            }
                            g.graph.add_edge(t, me, Edge::Depends);
                        }
                    }
                }
            }
        }
        if let Some(l) = limit {
            if g.graph.node_count() == 0 {
                return Err(limit_error(format!(
                    "`{l}` selects {}, on which no play runs",
                    g.hosts.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        g.check_cycles(pb)?;
        Ok(g)
    }

    fn check_cycles(&self, pb: &Playbook) -> Result<(), ModelError> {
        if toposort(&self.graph, None).is_ok() {
            return Ok(());
        }
        let scc = tarjan_scc(&self.graph)
            .into_iter()
            .find(|c| c.len() > 1)
            .unwrap_or_default();
        let members: std::collections::HashSet<NodeIndex> = scc.iter().copied().collect();
        let Some(&start) = scc.first() else {
            return Err(ModelError::Cycle("(unknown)".into()));
        };
        let mut path = vec![start];
        let mut cur = start;
        let mut seen = std::collections::HashSet::from([start]);
        loop {
            let next = self
                .graph
                .edges(cur)
                .map(|e| e.target())
                .find(|t| members.contains(t) && (*t == start || !seen.contains(t)))
                .or_else(|| {
                    self.graph
                        .edges(cur)
                        .map(|e| e.target())
                        .find(|t| members.contains(t))
                });
            let Some(next) = next else { break };
            if next == start || path.len() > members.len() {
                break;
            }
            seen.insert(next);
            path.push(next);
            cur = next;
        }
        path.push(start);
        let text: Vec<String> = path
            .iter()
            .map(|&n| {
                let node = &self.graph[n];
                let t = &pb.tasks[node.task];
                format!("`{}` on {} ({})", t.name, node.host, t.loc)
            })
            .collect();
        Err(ModelError::Cycle(text.join(" -> ")))
    }

    /// Graphviz DOT: one box per (host, task), labelled `host: task` (quotes in names escaped, never
    /// added), dashed edges for explicit dependencies, dotted ones between `serial:` batches.
    pub fn to_dot(&self, pb: &Playbook) -> String {
        let labelled = self.graph.map(
            |_, n| format!("{}: {}", n.host, pb.tasks[n.task].name),
            |_, e| *e,
        );
        let edge_attr = |_: &_, e: petgraph::graph::EdgeReference<'_, Edge>| match e.weight() {
            Edge::Order => String::new(),
            Edge::Depends => "style=dashed color=blue".to_string(),
            Edge::Serial => "style=dotted color=red".to_string(),
        };
        let node_attr = |_: &_, _: (NodeIndex, &String)| "shape=box".to_string();
        // Display, not Debug: Debug would quote each label a second time, so the quotes showed.
        format!(
            "{}",
            Dot::with_attr_getters(&labelled, &[Config::EdgeNoLabel], &edge_attr, &node_attr)
        )
    }

    /// The graph as JSON for tools: nodes with host, task and location; edges with their kind.
    pub fn to_json(&self, pb: &Playbook) -> serde_json::Value {
        let nodes: Vec<_> = self
            .graph
            .node_indices()
            .map(|i| {
                let n = &self.graph[i];
                let t = &pb.tasks[n.task];
                serde_json::json!({"id": i.index(), "host": n.host, "task": t.name, "type": t.kind, "handler": t.handler, "location": t.loc.to_string()})
            })
            .collect();
        let edges: Vec<_> = self
            .graph
            .edge_references()
            .map(|e| serde_json::json!({"from": e.source().index(), "to": e.target().index(), "kind": e.weight().to_string()}))
            .collect();
        serde_json::json!({"playbook": pb.name, "nodes": nodes, "edges": edges})
    }
}

#[allow(clippy::too_many_arguments)]
fn resolve_dep(
    inv: &Inventory,
    pb: &Playbook,
    dep: &DepRef,
    play_hosts: &[Vec<String>],
    index: &HashMap<(usize, String), Vec<NodeIndex>>,
    limited: bool,
    warnings: &mut Vec<String>,
    waiting: &str,
) -> Result<Vec<NodeIndex>, ModelError> {
    let tasks: Vec<usize> = if let Some(name) = &dep.task {
        let by_full: Vec<usize> = pb
            .tasks
            .iter()
            .filter(|t| &t.name == name)
            .map(|t| t.id)
            .collect();
        let found = if by_full.is_empty() {
            pb.tasks
                .iter()
                .filter(|t| &t.short == name)
                .map(|t| t.id)
                .collect()
        } else {
            by_full
        };
        if found.is_empty() {
            return Err(ModelError::at(
                &dep.loc,
                format!("depends_on: no task named `{name}`"),
            ));
        }
        found
    } else {
        let name = dep.play.as_deref().unwrap_or_default();
        let play = pb
            .plays
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| {
                ModelError::at(&dep.loc, format!("depends_on: no play named `{name}`"))
            })?;
        pb.plays[play]
            .tasks
            .iter()
            .chain(&pb.plays[play].handlers)
            .chain(&pb.plays[play].post_tasks)
            .copied()
            .collect()
    };
    let only: Option<HashSet<String>> = match &dep.hosts {
        Some(p) => Some(
            inv.select(p)
                .map_err(|e| ModelError::at(&dep.loc, format!("depends_on: {e}")))?
                .into_iter()
                .collect(),
        ),
        None => None,
    };
    let mut out = Vec::new();
    let mut any_host = false;
    for &t in &tasks {
        for h in &play_hosts[pb.tasks[t].play] {
            if only.as_ref().is_some_and(|o| !o.contains(h)) {
                continue;
            }
            any_host = true;
            out.extend(index.get(&(t, h.clone())).into_iter().flatten());
        }
    }
    if !any_host {
        return Err(ModelError::at(
            &dep.loc,
            format!("depends_on of `{waiting}`: no host runs what it names"),
        ));
    }
    if out.is_empty() && limited {
        warnings.push(format!(
            "{}: `{waiting}` waits for hosts outside --limit; assuming they are done",
            dep.loc
        ));
    }
    Ok(out)
}
