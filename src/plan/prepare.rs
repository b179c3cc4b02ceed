//! Loading, resolving and checking everything before any host is touched.

use super::graph::TaskGraph;
use crate::model::playbook::LoopVars;
use crate::model::template::Templates;
use crate::model::vars::{merge, resolve, secret_names, Magic, Resolved};
use crate::model::{
    Inventory, ModelError, Playbook, Serial, SerialError, SerialSpec, TaskSpec, Vars,
};
use crate::report::mask::{leaves, Masker};
use crate::resources::{self, BuildCtx, Resource};
use crate::secrets::Resolver;
use minijinja::value::{merge_maps, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The variable through which a template reads other hosts' registered results
/// (`registered['wkr1'].hostkey.content`). Tasks that read it are rendered at run time, after the
/// tasks they `depends_on` have run on those hosts.
pub const OTHER_HOSTS: &str = "registered";

/// What the user asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Playbook overriding the inventory's.
    pub playbook: Option<PathBuf>,
    /// Host pattern limiting the run.
    pub limit: Option<String>,
    /// `-e` variables, the highest precedence.
    pub extra: Vars,
    /// The run's resolver of the inventory's secret references (`--identity` is in it): one per run,
    /// so each reference is resolved once, when the run first needs it.
    pub secrets: Arc<Resolver>,
}

/// A node made ready: its resource, if its arguments could be rendered up front.
#[derive(Clone, Default)]
pub struct NodePrep {
    /// The built resource; `None` when arguments read registered results or the condition is false.
    pub resource: Option<Arc<dyn Resource>>,
    /// The condition's value when known up front.
    pub when: Option<bool>,
    /// Registered names the task reads (its arguments or condition are rendered at run time).
    pub reads: BTreeSet<String>,
    /// The task reads a secret (or says `sensitive: true`): reports show no content and no values.
    pub sensitive: bool,
}

/// Everything a run needs, checked.
pub struct Prepared {
    /// The inventory.
    pub inv: Inventory,
    /// The playbook.
    pub pb: Playbook,
    /// The task graph.
    pub graph: TaskGraph,
    /// The template engine.
    pub templates: Arc<Templates>,
    /// Per-node preparation, indexed by node index.
    pub nodes: Vec<NodePrep>,
    /// The run's secret values, for every output path.
    pub masker: Masker,
    contexts: HashMap<(String, usize), Arc<Resolved>>,
    /// Secret variable names per context (see [`secret_names`]).
    secret_vars: HashMap<(String, usize), BTreeSet<String>>,
    extra: Value,
    digests: resources::Digests,
}

impl Prepared {
    /// The task a node runs.
    pub fn task(&self, node: petgraph::graph::NodeIndex) -> &TaskSpec {
        &self.pb.tasks[self.graph.graph[node].task]
    }

    /// Template context of `node` with `registers` (the host's registered results so far) layered in:
    /// they beat every variable but `-e`, the README's precedence. `merge_maps` lets the last map win.
    pub fn context(&self, node: petgraph::graph::NodeIndex, registers: &Vars) -> Value {
        self.context_with(node, Value::from_serialize(registers))
    }

    /// [`Prepared::context`] with the registered results given as a template value, which may hold
    /// what no JSON can (`render`'s stand-in for results known only after apply, the run's other
    /// hosts read lazily).
    pub fn context_with(&self, node: petgraph::graph::NodeIndex, registers: Value) -> Value {
        let n = &self.graph.graph[node];
        let base = self.contexts[&(n.host.clone(), self.pb.tasks[n.task].scope)]
            .context
            .clone();
        merge_maps([base, registers, self.extra.clone()])
    }

    /// Builds a node's resource with `ctx`, labelling errors with the task, host and place.
    pub fn build(
        &self,
        node: petgraph::graph::NodeIndex,
        ctx: &Value,
    ) -> Result<Arc<dyn Resource>, ModelError> {
        let t = self.task(node);
        let host = &self.graph.graph[node].host;
        let here =
            |msg: String| ModelError::at(&t.loc, format!("task `{}` on {host}: {msg}", t.name));
        let args = self.templates.render_value(&t.args, ctx).map_err(here)?;
        let ctx_vars = &self.contexts[&(host.clone(), t.scope)];
        let render = |text: &str, name: &str| {
            self.templates
                .render_named(name, text, ctx)
                .map_err(|e| explain_broken(e, ctx_vars))
        };
        // A template file reads a secret when what it renders changes with the secrets replaced by
        // placeholders: through filters, includes and macros alike. A render that fails with them
        // (`| int` of one) counts as reading one. The real render is the one `render` already made, and
        // the placeholder context is made only for the template files that ask.
        let reads_secret = |text: &str, name: &str, rendered: &str| {
            let without = self.without_secrets(node, ctx);
            self.templates.render_named(name, text, &without).as_deref() != Ok(rendered)
        };
        let bctx = BuildCtx {
            search: &t.search,
            render: &render,
            sensitive: self.is_sensitive(node),
            reads_secret: &reads_secret,
            digests: &self.digests,
        };
        resources::build(&t.kind, args, &bctx)
            .map(Arc::from)
            .map_err(|e| here(e.to_string()))
    }

    /// The variables a node's task renders with, resolved for its host and scope: what `lint` checks
    /// the values the run would use against.
    pub fn resolved(&self, node: petgraph::graph::NodeIndex) -> &Resolved {
        let n = &self.graph.graph[node];
        &self.contexts[&(n.host.clone(), self.pb.tasks[n.task].scope)]
    }

    /// True when the node's task says `sensitive: true` or its arguments or condition read a secret
    /// variable (including results registered by sensitive tasks).
    pub fn is_sensitive(&self, node: petgraph::graph::NodeIndex) -> bool {
        let t = self.task(node);
        let secret = &self.secret_vars[&(self.graph.graph[node].host.clone(), t.scope)];
        t.sensitive
            || self
                .names_read(t)
                .map(|names| names.iter().any(|n| secret.contains(n)))
                .unwrap_or(false)
    }

    /// Top-level names a task's arguments and conditions read.
    fn names_read(&self, t: &TaskSpec) -> Result<BTreeSet<String>, String> {
        let mut names = self
            .templates
            .names_in(&t.args)
            .map_err(|e| format!("template syntax: {e}"))?;
        for w in &t.when {
            names.extend(
                self.templates
                    .names_in_expr(w)
                    .map_err(|e| format!("when `{w}`: {e}"))?,
            );
        }
        Ok(names)
    }

    /// Teaches the masker every line of `node`'s arguments rendered from a secret (`{{ token | upper }}`
    /// is as secret as `token`), so reports and errors hide those too. A line counts as rendered from a
    /// secret when it changes if the secrets are replaced by placeholders: the other lines of the same
    /// argument (a config's `[database]`) stay visible.
    pub fn learn_secrets(&self, node: petgraph::graph::NodeIndex, ctx: &Value) {
        let t = self.task(node);
        let secret = &self.secret_vars[&(self.graph.graph[node].host.clone(), t.scope)];
        let without = self.without_secrets(node, ctx);
        self.learn_rendered(&t.args, ctx, &without, secret);
    }

    /// `ctx` with each secret variable of `node`'s context replaced by a placeholder, to tell what a
    /// template renders from secrets by rendering it both ways.
    fn without_secrets(&self, node: petgraph::graph::NodeIndex, ctx: &Value) -> Value {
        self.secrets_as(node, ctx, &|n| format!("\u{1}{n}\u{1}"))
    }

    /// `ctx` with each secret variable `name` of `node`'s context replaced by `placeholder(name)`: the
    /// secret check's unique markers, or what `render` shows instead of a secret.
    pub(super) fn secrets_as(
        &self,
        node: petgraph::graph::NodeIndex,
        ctx: &Value,
        placeholder: &dyn Fn(&str) -> String,
    ) -> Value {
        let t = self.task(node);
        let secret = &self.secret_vars[&(self.graph.graph[node].host.clone(), t.scope)];
        let placeholders: serde_json::Map<String, serde_json::Value> = secret
            .iter()
            .map(|n| (n.clone(), placeholder(n).into()))
            .collect();
        // merge_maps: the last map wins.
        merge_maps([ctx.clone(), Value::from_serialize(&placeholders)])
    }

    fn learn_rendered(
        &self,
        v: &serde_json::Value,
        ctx: &Value,
        without: &Value,
        secret: &BTreeSet<String>,
    ) {
        use serde_json::Value as J;
        match v {
            J::String(_) => {
                let reads = self.templates.names_in(v).unwrap_or_default();
                if !reads.iter().any(|n| secret.contains(n)) {
                    return;
                }
                let Ok(real) = self.templates.render_value(v, ctx) else {
                    return;
                };
                // A render that fails with placeholders (`| int` of one) keeps every line secret.
                let other: BTreeSet<String> = match self.templates.render_value(v, without) {
                    Ok(alt) => leaves(&alt)
                        .iter()
                        .flat_map(|l| l.lines().map(|x| x.trim().to_string()))
                        .collect(),
                    Err(_) => BTreeSet::new(),
                };
                let real = leaves(&real);
                let lines = real
                    .iter()
                    .flat_map(|l| l.lines())
                    .filter(|l| !other.contains(l.trim()));
                self.masker.add_all(lines);
            }
            J::Array(a) => a
                .iter()
                .for_each(|x| self.learn_rendered(x, ctx, without, secret)),
            J::Object(m) => m
                .values()
                .for_each(|x| self.learn_rendered(x, ctx, without, secret)),
            _ => {}
        }
    }

    /// Evaluates a node's `when` conditions with `ctx`.
    pub fn condition(
        &self,
        node: petgraph::graph::NodeIndex,
        ctx: &Value,
    ) -> Result<bool, ModelError> {
        let t = self.task(node);
        for w in &t.when {
            let ok = self.templates.truth(w, ctx).map_err(|e| {
                ModelError::at(
                    &t.loc,
                    format!(
                        "task `{}` on {}: when `{w}`: {e}",
                        t.name, self.graph.graph[node].host
                    ),
                )
            })?;
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Loads the inventory and playbook, builds the graph and checks every task on every host.
pub fn prepare(inventory: &Path, opts: &Options) -> Result<Prepared, ModelError> {
    prepare_with(inventory, opts, &Masker::new())
}

/// [`prepare`], teaching `masker` (shared with the caller's error and log output) the run's secrets as
/// soon as they are known, so errors found later in preparing are masked too.
pub fn prepare_with(
    inventory: &Path,
    opts: &Options,
    masker: &Masker,
) -> Result<Prepared, ModelError> {
    let mut inv = Inventory::load(inventory)?;
    let store = inv.secrets_file.clone();
    inv.resolve_references(|r| opts.secrets.resolve(r, &store))?;
    let pb_path = match (&opts.playbook, &inv.playbook) {
        (Some(p), _) | (None, Some(p)) => p.clone(),
        (None, None) => {
            return Err(ModelError::at(
                &inv.at(""),
                "the inventory names no playbook: add `pattern: NAME` or `playbook: FILE`, or pass --playbook",
            ))
        }
    };
    let templates = Arc::new(Templates::new());

    let groups: serde_json::Map<String, serde_json::Value> = std::iter::once("all".to_string())
        .chain(inv.groups.keys().cloned())
        .map(|g| (g.clone(), inv.members(&g).into()))
        .collect();
    let dir_of = |p: &Path| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let pb_dir = match pb_path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut shared = Magic::new();
    shared.insert("groups".into(), Value::from_serialize(&groups));
    shared.insert("inventory_dir".into(), dir_of(&inv.dir).into());
    shared.insert("playbook_dir".into(), dir_of(&pb_dir).into());
    let magic_for = |host: &str| -> Magic {
        let h = inv.host(host).expect("known host");
        let mut m = shared.clone();
        m.insert("inventory_hostname".into(), host.into());
        m.insert("ansible_host".into(), h.address.as_str().into());
        m.insert(
            "group_names".into(),
            Value::from_serialize(inv.groups_of(host)),
        );
        m
    };
    let no_regs = BTreeSet::new();
    let remember = |raw: &Vars, r: &Resolved| {
        let secret = secret_names(raw, &r.reads, &inv.secrets, &no_regs);
        for (k, v) in &r.vars {
            if secret.contains(k) {
                masker.add_leaves(v);
            }
        }
        // A magic variable listed as secret (`ansible_host`, say) is hidden too.
        for (k, v) in &r.magic {
            if secret.contains(k) {
                masker.add_leaves(&serde_json::to_value(v).unwrap_or_default());
            }
        }
        secret
    };
    // Every host's variables, as `hostvars` shows them; one value shared by every context.
    let mut hostvars = BTreeMap::new();
    for h in &inv.hosts {
        let mut layers = inv.var_layers(&h.name);
        layers.push(&opts.extra);
        let raw = merge(&layers);
        let r = resolve(&templates, &raw, &magic_for(&h.name));
        remember(&raw, &r);
        hostvars.insert(h.name.clone(), r.context);
    }
    let hostvars = Value::from(hostvars);
    // `loop:` lists make tasks: rendered from what every host shares (`hostvars` is the same on every
    // host), like `serial:`.
    let mut loop_magic = shared.clone();
    loop_magic.insert("hostvars".into(), hostvars.clone());
    let loops = LoopVars::new(vec![inv.vars.clone(), opts.extra.clone()], loop_magic);
    let pb = Playbook::load_with(&pb_path, &inv.module_path, &loops)?;
    let serial = serials(&inv, &pb, &templates, &opts.extra, &shared)?;
    let graph = TaskGraph::build(&inv, &pb, opts.limit.as_deref(), &serial)?;
    let mut contexts: HashMap<(String, usize), Arc<Resolved>> = HashMap::new();
    let mut secret_vars: HashMap<(String, usize), BTreeSet<String>> = HashMap::new();
    for n in graph.graph.node_weights() {
        let scope = pb.tasks[n.task].scope;
        if contexts.contains_key(&(n.host.clone(), scope)) {
            continue;
        }
        let mut layers: Vec<&Vars> = pb.scopes[scope].layers.iter().map(|l| l.as_ref()).collect();
        layers.extend(inv.var_layers(&n.host));
        layers.push(&opts.extra);
        let mut magic = magic_for(&n.host);
        magic.insert("hostvars".into(), hostvars.clone());
        let raw = merge(&layers);
        let r = resolve(&templates, &raw, &magic);
        secret_vars.insert((n.host.clone(), scope), remember(&raw, &r));
        contexts.insert((n.host.clone(), scope), Arc::new(r));
    }

    let mut p = Prepared {
        nodes: vec![NodePrep::default(); graph.graph.node_count()],
        inv,
        pb,
        graph,
        templates,
        masker: masker.clone(),
        contexts,
        secret_vars,
        extra: Value::from_serialize(&opts.extra),
        digests: resources::Digests::default(),
    };
    p.add_sensitive_registers();
    for node in p.graph.graph.node_indices() {
        p.nodes[node.index()] = check_node(&p, node)?;
    }
    check_cross_host_reads(&p)?;
    Ok(p)
}

/// Each play's `serial:` as a batch size. A template is rendered against the variables that are the same
/// for every host of the play (playbook and play `vars`, inventory `vars`, `-e`, and `groups`,
/// `inventory_dir`, `playbook_dir`): group and host vars could give each host its own batch size, which
/// means nothing. A value that is no batch size is refused here, before any host is touched.
fn serials(
    inv: &Inventory,
    pb: &Playbook,
    templates: &Templates,
    extra: &Vars,
    shared: &Magic,
) -> Result<Vec<Serial>, ModelError> {
    pb.plays
        .iter()
        .map(|play| {
            let text = match &play.serial {
                SerialSpec::Fixed(s) => return Ok(*s),
                SerialSpec::Template(text) => text,
            };
            let refuse = |value: String, why| ModelError::Serial {
                loc: play.serial_loc.clone(),
                play: play.name.clone(),
                value,
                why,
            };
            let raw = merge(&[&pb.vars, &play.vars, &inv.vars, extra]);
            let ctx = resolve(templates, &raw, shared).context;
            let value = templates
                .render_value(&serde_json::Value::String(text.clone()), &ctx)
                .map_err(|e| refuse(text.clone(), SerialError::Template(e)))?;
            Serial::from_json(&value).map_err(|why| {
                let shown = match &value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                refuse(format!("{text} (renders as {shown})"), why)
            })
        })
        .collect()
}

/// A task that reads `registered[H].NAME` must wait for the task that registers NAME on H, or it reads
/// whatever that host happened to register by then (nothing, in a fast run). Every host that registers
/// NAME counts when the subscript is not a literal host name. Checked before any host is touched.
fn check_cross_host_reads(p: &Prepared) -> Result<(), ModelError> {
    let g = &p.graph.graph;
    // Who registers what, by name and by (name, host): looked up per reader, instead of a walk over
    // every node for each reader, and each reader's ancestors found once, walking back from it, which
    // sees only what it waits for, instead of a walk forward from each registering node, which sees
    // everything after it (every host that waits for it).
    let mut by_name: HashMap<&str, Vec<petgraph::graph::NodeIndex>> = HashMap::new();
    let mut by_host: HashMap<(&str, &str), Vec<petgraph::graph::NodeIndex>> = HashMap::new();
    for n in g.node_indices() {
        if let Some(r) = &p.task(n).register {
            by_name.entry(r).or_default().push(n);
            by_host.entry((r, &g[n].host)).or_default().push(n);
        }
    }
    for node in g.node_indices() {
        if !p.nodes[node.index()].reads.contains(OTHER_HOSTS) {
            continue;
        }
        let t = p.task(node);
        let mut sources = Vec::new();
        strings_in(&t.args, &mut sources);
        sources.extend(t.when.iter().map(String::as_str));
        let here = &g[node].host;
        let mut waits_for: Option<HashSet<petgraph::graph::NodeIndex>> = None;
        for (subscript, name) in sources.iter().flat_map(|s| cross_host_reads(s)) {
            let literal = subscript
                .strip_prefix(['\'', '"'])
                .and_then(|s| s.strip_suffix(['\'', '"']));
            let registering = match literal {
                Some(l) => by_host.get(&(name.as_str(), l)),
                None => by_name.get(name.as_str()),
            };
            for &other in registering.into_iter().flatten() {
                let (h, ot) = (&g[other].host, p.task(other));
                if h == here
                    || waits_for
                        .get_or_insert_with(|| ancestors(g, node))
                        .contains(&other)
                {
                    continue;
                }
                return Err(ModelError::at(
                    &t.loc,
                    format!(
                        "task `{}` on {here} reads `registered[{subscript}].{name}`, which task `{}` ({}) \
                         registers on {h}, but does not wait for it: add `depends_on: {{task: \"{}\", hosts: {h}}}`",
                        t.name, ot.name, ot.loc, ot.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Every node `node` waits for, through any chain of edges.
fn ancestors(
    g: &petgraph::graph::DiGraph<super::Node, super::Edge>,
    node: petgraph::graph::NodeIndex,
) -> HashSet<petgraph::graph::NodeIndex> {
    let mut seen = HashSet::new();
    let mut todo: Vec<_> = g
        .neighbors_directed(node, petgraph::Direction::Incoming)
        .collect();
    while let Some(n) = todo.pop() {
        if seen.insert(n) {
            todo.extend(g.neighbors_directed(n, petgraph::Direction::Incoming));
        }
    }
    seen
}

/// Every string in a task's arguments, where its templates are.
fn strings_in<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|v| strings_in(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| strings_in(v, out)),
        _ => {}
    }
}

/// The `registered[SUBSCRIPT].NAME` (or `["NAME"]`) reads in template text: the subscript as written and
/// the registered name.
fn cross_host_reads(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(OTHER_HOSTS) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + OTHER_HOSTS.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let Some(inner) = rest.trim_start().strip_prefix('[') else {
            continue;
        };
        let mut depth = 1;
        let Some(end) = inner.char_indices().find_map(|(i, c)| {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(i)
        }) else {
            continue;
        };
        let subscript = inner[..end].trim().to_string();
        let after = inner[end + 1..].trim_start();
        let name: String = if let Some(a) = after.strip_prefix('.') {
            a.trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        } else if let Some(a) = after.strip_prefix('[') {
            a.trim_start()
                .trim_start_matches(['\'', '"'])
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        } else {
            String::new()
        };
        if !name.is_empty() {
            out.push((subscript, name));
        }
        rest = &inner[end + 1..];
    }
    out
}

impl Prepared {
    /// Results registered by sensitive tasks are secret for the tasks that read them. Tasks are taken in
    /// playbook order, so a result registered from another such result is found too.
    fn add_sensitive_registers(&mut self) {
        let mut regs = BTreeSet::new();
        for t in &self.pb.tasks {
            let Some(r) = &t.register else { continue };
            let names = self.names_read(t).unwrap_or_default();
            let reads_secret = self
                .secret_vars
                .iter()
                .filter(|((_, scope), _)| *scope == t.scope)
                .any(|(_, secret)| names.iter().any(|n| secret.contains(n) || regs.contains(n)));
            if t.sensitive || reads_secret {
                regs.insert(r.clone());
            }
        }
        for secret in self.secret_vars.values_mut() {
            secret.extend(regs.iter().cloned());
        }
    }
}

/// Adds why a variable is undefined when it is one that could not be resolved (its own template failed).
fn explain_broken(e: String, vars: &Resolved) -> String {
    match vars
        .broken
        .iter()
        .find(|(k, _)| e.contains(&format!("undefined variable `{k}`")))
    {
        Some((k, why)) => format!("{e}: `{k}` cannot be resolved: {why}"),
        None => e,
    }
}

/// The registered name (or `registered`) an "undefined variable" error is about, if it is one.
fn run_time_name(error: &str, registered: &BTreeSet<String>) -> Option<String> {
    let rest = error.split("undefined variable `").nth(1)?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (name == OTHER_HOSTS || registered.contains(&name)).then_some(name)
}

/// Static checks of one node, then (when nothing waits for run time) its condition and resource.
fn check_node(p: &Prepared, node: petgraph::graph::NodeIndex) -> Result<NodePrep, ModelError> {
    let t = p.task(node);
    let n = &p.graph.graph[node];
    let ctx_vars = &p.contexts[&(n.host.clone(), t.scope)];
    let here =
        |msg: String| ModelError::at(&t.loc, format!("task `{}` on {}: {msg}", t.name, n.host));
    let names = p.names_read(t).map_err(here)?;
    let mut guarded = p.templates.guarded_in(&t.args);
    for w in &t.when {
        guarded.extend(p.templates.guarded_in_expr(w));
    }
    let sensitive = p.is_sensitive(node);
    let mut reads = BTreeSet::new();
    // A variable whose own template fails (it reads a group this inventory does not have, say) only
    // matters to a task that runs: a task whose condition is false does not need its arguments.
    let mut unresolved = None;
    for name in names {
        if p.pb.registered.contains(&name) || name == OTHER_HOSTS {
            reads.insert(name);
        } else if let Some(why) = ctx_vars.broken.get(&name) {
            unresolved.get_or_insert_with(|| {
                here(format!("variable `{name}` cannot be resolved: {why}"))
            });
        } else if !ctx_vars.defines(&name)
            && !p.templates.is_global(&name)
            && !guarded.contains(&name)
        {
            return Err(here(format!("undefined variable `{name}`")));
        }
    }
    if !reads.is_empty() {
        if let Some(e) = unresolved {
            return Err(e);
        }
        return Ok(NodePrep {
            resource: None,
            when: None,
            reads,
            sensitive,
        });
    }
    let ctx = p.context(node, &Vars::new());
    let when = p.condition(node, &ctx)?;
    match unresolved {
        Some(e) if when => return Err(e),
        Some(_) => {
            return Ok(NodePrep {
                resource: None,
                when: Some(false),
                reads,
                sensitive,
            })
        }
        None => {}
    }
    if sensitive {
        p.learn_secrets(node, &ctx);
    }
    let resource = if when {
        match p.build(node, &ctx) {
            Ok(r) => Some(r),
            // A template file (which the static check cannot see) that reads registered results is
            // rendered at run time, like arguments that read them.
            Err(e) => match run_time_name(&e.to_string(), &p.pb.registered) {
                Some(name) => {
                    return Ok(NodePrep {
                        resource: None,
                        when: None,
                        reads: BTreeSet::from([name]),
                        sensitive,
                    })
                }
                None => return Err(e),
            },
        }
    } else {
        None
    };
    Ok(NodePrep {
        resource,
        when: Some(when),
        reads,
        sensitive,
    })
}
