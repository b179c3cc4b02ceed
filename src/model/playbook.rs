//! Playbooks and modules. A playbook is a list of plays; a play runs tasks, then the handlers they
//! notified, then its `post_tasks` (and the handlers those notified) on the hosts its pattern selects,
//! all of them at once or in `serial:` batches. `include: NAME` pulls in the reusable bundle `modules/NAME/` (`tasks.yaml`,
//! optional `defaults.yaml` and `handlers.yaml`, `templates/`, `files/`) with vars of its own.
//! A task or include with `loop:` is repeated once per item of a list (see [`LoopVars`]).
//! Everything here is checked when loading: unknown resource types, unknown modules, unknown handlers.

use super::error::{parse_yaml, read, ModelError};
use super::location::{clean, Lines, Location};
use super::serial::{Serial, SerialSpec};
use super::template::{whole_expression, Templates};
use super::vars::{merge, resolve, Magic};
use super::Vars;
use crate::resources;
use serde::Deserialize;
use serde_yaml::{Mapping, Value as Y};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A reference to what a task waits for: a task or a whole play, on all hosts that run it or on those a
/// pattern selects.
#[derive(Debug, Clone)]
pub struct DepRef {
    /// Task name (as shown in reports, or its own name when unique).
    pub task: Option<String>,
    /// Play name.
    pub play: Option<String>,
    /// Restrict to the hosts this pattern selects.
    pub hosts: Option<String>,
    /// Where the reference is written.
    pub loc: Location,
}

/// One task after module expansion; what the graph is built from.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    /// Index in [`Playbook::tasks`].
    pub id: usize,
    /// Name shown in reports (`module | task` for module tasks).
    pub name: String,
    /// The task's own `name:` (without the module prefix).
    pub short: String,
    /// Resource type.
    pub kind: String,
    /// Arguments, still templated.
    pub args: serde_json::Value,
    /// Name under which the result is registered.
    pub register: Option<String>,
    /// Handlers notified when the task changes something.
    pub notify: Vec<String>,
    /// Conditions, all of which must hold (an include's condition is prepended).
    pub when: Vec<String>,
    /// What the task waits for besides the previous task on its host.
    pub depends_on: Vec<DepRef>,
    /// Where the task is written.
    pub loc: Location,
    /// Index of its variable scope in [`Playbook::scopes`].
    pub scope: usize,
    /// Directories searched for relative `src` files.
    pub search: Arc<Vec<PathBuf>>,
    /// Index of its play.
    pub play: usize,
    /// True for handlers, which run only when notified.
    pub handler: bool,
    /// `timeout:` in seconds: the longest its probe or its apply may take before the task fails and
    /// whatever it started on the host is stopped (none: the run's default for its type).
    pub timeout: Option<u64>,
    /// `sensitive: true` (Ansible's `no_log`): the task shows no content diff and no values, whatever
    /// it reads. Tasks reading a secret are sensitive without it.
    pub sensitive: bool,
}

/// A play: tasks and handlers for the hosts its pattern selects.
#[derive(Debug, Clone)]
pub struct Play {
    /// Name shown in reports and used by `depends_on: {play: …}`.
    pub name: String,
    /// Host pattern.
    pub hosts: String,
    /// Task ids in order.
    pub tasks: Vec<usize>,
    /// Handler ids in order.
    pub handlers: Vec<usize>,
    /// `post_tasks:` ids in order: they run on a host after its handlers (Ansible's order), e.g. a
    /// health gate after the restart a config change notified.
    pub post_tasks: Vec<usize>,
    /// The handlers a post task can notify (directly or through other handlers), in declaration
    /// order: flushed a second time after the post tasks, as Ansible does at the end of a play.
    pub post_handlers: Vec<usize>,
    /// The play's own `vars:`, for what is evaluated per play rather than per host (`serial:`).
    pub vars: Arc<Vars>,
    /// How many hosts run the play at once (`serial:`; all when absent).
    pub serial: SerialSpec,
    /// Where `serial:` is written (the play, when it is not).
    pub serial_loc: Location,
    /// Where the play is written.
    pub loc: Location,
}

/// Variable layers of a task's context that come from the playbook side, lowest precedence first:
/// module defaults (innermost module first), playbook vars, play vars, include vars (outermost first).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The layers.
    pub layers: Vec<Arc<Vars>>,
}

/// A loaded, expanded playbook.
#[derive(Debug, Clone)]
pub struct Playbook {
    /// The playbook file.
    pub path: PathBuf,
    /// Its directory.
    pub dir: PathBuf,
    /// Playbook name (its file stem unless set).
    pub name: String,
    /// Plays in order.
    pub plays: Vec<Play>,
    /// All tasks and handlers.
    pub tasks: Vec<TaskSpec>,
    /// Variable scopes referenced by tasks.
    pub scopes: Vec<Scope>,
    /// Every `register:` name, so templates may use them before they exist.
    pub registered: BTreeSet<String>,
    /// The playbook's `vars:`, for what is evaluated per play rather than per host (`serial:`).
    pub vars: Arc<Vars>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaybookFile {
    name: Option<String>,
    #[serde(default)]
    vars_files: Vec<String>,
    #[serde(default)]
    vars: Vars,
    plays: Vec<PlayFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlayFile {
    name: Option<String>,
    hosts: String,
    #[serde(default)]
    vars: Vars,
    #[serde(default)]
    depends_on: Vec<Y>,
    #[serde(default)]
    tasks: Vec<Y>,
    #[serde(default)]
    handlers: Vec<Y>,
    #[serde(default)]
    post_tasks: Vec<Y>,
    serial: Option<Y>,
}

const TASK_KEYS: &[&str] = &[
    "name",
    "register",
    "notify",
    "when",
    "depends_on",
    "include",
    "vars",
    "timeout",
    "sensitive",
    "loop",
    "loop_var",
];

/// What a `loop:` is evaluated with when the playbook is loaded: the variables that are the same for
/// every host, as for `serial:`. A loop makes tasks, and every host must run the same tasks (the graph,
/// `depends_on` and the reports name them), so its list cannot depend on group or host vars; each item
/// itself is still rendered per host, with that host's vars, when the tasks run.
#[derive(Default)]
pub struct LoopVars {
    templates: Templates,
    /// Layers above the playbook's (inventory `vars`, then `-e`), lowest first.
    outer: Vec<Vars>,
    /// Variables nothing overrides (`groups`, `hostvars`, `inventory_dir`, `playbook_dir`).
    magic: Magic,
    /// The variables of each set of layers, resolved once (the loops of one module share them), keyed
    /// by the layers' addresses: the merged raw layers and their context, with the layers themselves
    /// (held, so that no other layer can take an address while it is a key).
    resolved: std::sync::Mutex<std::collections::HashMap<Vec<usize>, Arc<Resolved>>>,
}

impl LoopVars {
    /// Loops evaluated with `outer` above the playbook's layers and `magic` on top of all.
    pub fn new(outer: Vec<Vars>, magic: Magic) -> Self {
        LoopVars {
            templates: Templates::new(),
            outer,
            magic,
            resolved: Default::default(),
        }
    }

    /// The merged raw variables of `layers` (and the outer ones) and their resolved context.
    fn vars(&self, layers: &[Arc<Vars>]) -> Arc<Resolved> {
        let key: Vec<usize> = layers.iter().map(|l| Arc::as_ptr(l) as usize).collect();
        let mut cache = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(key)
            .or_insert_with(|| {
                let mut all: Vec<&Vars> = layers.iter().map(|l| l.as_ref()).collect();
                all.extend(self.outer.iter());
                let raw = merge(&all);
                let ctx = resolve(&self.templates, &raw, &self.magic).context;
                Arc::new(Resolved {
                    _layers: layers.to_vec(),
                    raw,
                    ctx,
                })
            })
            .clone()
    }

    /// The items of `expr` (a list, or one `{{ expression }}` rendering to one). A list, or a variable
    /// named alone (`{{ edits }}`) that holds one, only needs its length here: a value inside an item
    /// that reads what only a host has (`ansible_host`, `hostvars`) stays as written, and is rendered
    /// per host with the rest of the item when the task runs. Any other expression must render whole.
    fn items(&self, layers: &[Arc<Vars>], expr: &Y) -> Result<Vec<serde_json::Value>, String> {
        let v = serde_json::to_value(expr).map_err(|e| e.to_string())?;
        let vars = self.vars(layers);
        let (raw, ctx) = (&vars.raw, &vars.ctx);
        let named = match &v {
            serde_json::Value::String(s) => whole_expression(s)
                .map(str::trim)
                .filter(|n| is_ident(n))
                .and_then(|n| raw.get(n)),
            _ => None,
        };
        let out = match (named, &v) {
            (Some(list @ serde_json::Value::Array(_)), _)
            | (None, list @ serde_json::Value::Array(_)) => self.lenient(list, ctx),
            _ => self.templates.render_value(&v, ctx)?,
        };
        match out {
            serde_json::Value::Array(a) => Ok(a),
            other => Err(format!("renders as {other}, not a list")),
        }
    }

    /// `v` with every string that renders here rendered, the others kept as written.
    fn lenient(&self, v: &serde_json::Value, ctx: &minijinja::Value) -> serde_json::Value {
        use serde_json::Value as J;
        match v {
            J::String(_) => self
                .templates
                .render_value(v, ctx)
                .unwrap_or_else(|_| v.clone()),
            J::Array(a) => J::Array(a.iter().map(|x| self.lenient(x, ctx)).collect()),
            J::Object(m) => J::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.lenient(x, ctx)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// `text` rendered with `var` bound to `item`.
    fn render(
        &self,
        layers: &[Arc<Vars>],
        var: &str,
        item: &serde_json::Value,
        text: &str,
    ) -> Result<String, String> {
        let vars = self.vars(layers);
        let mut bound = Vars::new();
        bound.insert(var.to_string(), item.clone());
        let ctx = minijinja::value::merge_maps([
            vars.ctx.clone(),
            minijinja::Value::from_serialize(&bound),
        ]);
        self.templates.render_str(text, &ctx)
    }
}

/// One set of layers as a loop sees them.
struct Resolved {
    _layers: Vec<Arc<Vars>>,
    raw: Vars,
    ctx: minijinja::Value,
}

struct Loader<'a> {
    modules: Vec<PathBuf>,
    pb: Playbook,
    stack: Vec<String>,
    loops: &'a LoopVars,
}

/// The context in which a list of tasks is read.
#[derive(Clone)]
struct Frame {
    lines: Arc<Lines>,
    prefix: String,
    play: usize,
    handler: bool,
    /// Tasks read here are the play's `post_tasks` (a module's handlers stay handlers).
    post: bool,
    defaults: Vec<Arc<Vars>>,
    includes: Vec<Arc<Vars>>,
    when: Vec<String>,
    depends_on: Vec<DepRef>,
    search: Arc<Vec<PathBuf>>,
    label: String,
}

impl Playbook {
    /// Loads a playbook and every module it includes. Modules are found by name on the module path:
    /// the project's `modules/` (next to the playbook, or in its parent directory), then each of
    /// `module_path` (the operator's own, from the inventory).
    pub fn load(path: &Path, module_path: &[PathBuf]) -> Result<Self, ModelError> {
        Self::load_with(path, module_path, &LoopVars::default())
    }

    /// [`Playbook::load`], with `loop:` lists evaluated against `loops` (the inventory's vars, `-e`).
    pub fn load_with(
        path: &Path,
        module_path: &[PathBuf],
        loops: &LoopVars,
    ) -> Result<Self, ModelError> {
        Self::from_text(path, &read(path)?, module_path, loops)
    }

    /// [`Playbook::load_with`] of `text`, as if read from `path` (its modules are still read from
    /// disk): what the fuzz targets feed any bytes to.
    pub fn from_text(
        path: &Path,
        text: &str,
        module_path: &[PathBuf],
        loops: &LoopVars,
    ) -> Result<Self, ModelError> {
        let mut value: Y = parse_yaml(path, text)?;
        let lines = Arc::new(Lines::index(path, text)?);
        let path = &clean(path);
        let prefix = if value.is_sequence() {
            value = Y::Mapping(Mapping::from_iter([(Y::from("plays"), value)]));
            ""
        } else {
            "plays."
        };
        let raw: PlaybookFile = serde_yaml::from_value(value)
            .map_err(|e| ModelError::at(&lines.at(""), format!("not a playbook: {e}")))?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let name = raw.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let mut modules = vec![
            clean(&dir.join("modules")),
            clean(&dir.join("..").join("modules")),
        ];
        for m in module_path {
            if !modules.contains(m) {
                modules.push(m.clone());
            }
        }
        let mut shared = vars_files(&dir, &raw.vars_files, &lines)?;
        shared.extend(raw.vars);
        let mut l = Loader {
            modules,
            pb: Playbook {
                path: path.to_path_buf(),
                dir: dir.clone(),
                name,
                plays: Vec::new(),
                tasks: Vec::new(),
                scopes: Vec::new(),
                registered: BTreeSet::new(),
                vars: Arc::new(shared),
            },
            stack: Vec::new(),
            loops,
        };
        let pb_vars = l.pb.vars.clone();
        for (i, p) in raw.plays.into_iter().enumerate() {
            let at = format!("{prefix}{i}");
            let loc = lines.at(&at);
            let play_name = p.name.clone().unwrap_or_else(|| format!("play {}", i + 1));
            let deps = p
                .depends_on
                .iter()
                .enumerate()
                .map(|(j, d)| dep_ref(d, lines.at(&format!("{at}.depends_on.{j}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let serial_loc = lines.at(&format!("{at}.serial"));
            let serial = match &p.serial {
                None => SerialSpec::Fixed(Serial::All),
                Some(v) => SerialSpec::parse(v).map_err(|why| ModelError::Serial {
                    loc: serial_loc.clone(),
                    play: play_name.clone(),
                    value: serde_yaml::to_string(v)
                        .map(|t| t.trim().to_string())
                        .unwrap_or_default(),
                    why,
                })?,
            };
            let play_vars = Arc::new(p.vars);
            l.pb.plays.push(Play {
                name: play_name,
                hosts: p.hosts.clone(),
                tasks: Vec::new(),
                handlers: Vec::new(),
                post_tasks: Vec::new(),
                post_handlers: Vec::new(),
                vars: play_vars.clone(),
                serial,
                serial_loc,
                loc,
            });
            let frame = Frame {
                lines: lines.clone(),
                prefix: format!("{at}.tasks"),
                play: i,
                handler: false,
                post: false,
                defaults: Vec::new(),
                includes: vec![pb_vars.clone(), play_vars],
                when: Vec::new(),
                depends_on: deps,
                search: Arc::new(vec![dir.clone()]),
                label: String::new(),
            };
            l.tasks(&p.tasks, &frame)?;
            let post = Frame {
                prefix: format!("{at}.post_tasks"),
                post: true,
                ..frame.clone()
            };
            l.tasks(&p.post_tasks, &post)?;
            let hframe = Frame {
                prefix: format!("{at}.handlers"),
                handler: true,
                depends_on: Vec::new(),
                ..frame
            };
            l.tasks(&p.handlers, &hframe)?;
        }
        l.check_notify()?;
        l.post_handlers();
        Ok(l.pb)
    }
}

/// The playbook's `vars_files`, merged in order (a later file overrides an earlier one): vars that several
/// playbooks share are written once. Paths are relative to the playbook's directory; the playbook's own
/// `vars` then override what the files set.
fn vars_files(dir: &Path, files: &[String], lines: &Lines) -> Result<Vars, ModelError> {
    let mut merged = Vars::new();
    for (i, f) in files.iter().enumerate() {
        let path = clean(&dir.join(f));
        if !path.exists() {
            return Err(ModelError::at(
                &lines.at(&format!("vars_files.{i}")),
                format!("vars file {} does not exist", path.display()),
            ));
        }
        let text = read(&path)?;
        Lines::index(&path, &text)?;
        let vars: Vars = parse_yaml(&path, &text)?;
        merged.extend(vars);
    }
    Ok(merged)
}

impl Loader<'_> {
    fn tasks(&mut self, list: &[Y], f: &Frame) -> Result<(), ModelError> {
        for (i, t) in list.iter().enumerate() {
            let loc = f.lines.at(&format!("{}.{i}", f.prefix));
            let Some(map) = t.as_mapping() else {
                return Err(ModelError::at(&loc, "a task must be a mapping"));
            };
            self.task(map, &loc, &format!("{}.{i}", f.prefix), f)?;
        }
        Ok(())
    }

    fn task(
        &mut self,
        map: &Mapping,
        loc: &Location,
        at: &str,
        f: &Frame,
    ) -> Result<(), ModelError> {
        let get = |k: &str| map.get(Y::from(k));
        if let Some(list) = get("loop") {
            return self.looped(map, list, loc, at, f);
        }
        if get("loop_var").is_some() {
            return Err(ModelError::at(loc, "`loop_var` only goes with `loop`"));
        }
        let name = match get("name") {
            Some(Y::String(s)) => Some(s.clone()),
            Some(_) => return Err(ModelError::at(loc, "`name` must be a string")),
            None => None,
        };
        let mut when = f.when.clone();
        match get("when") {
            Some(Y::String(s)) => when.push(strip_braces(s)),
            Some(Y::Bool(b)) => when.push(b.to_string()),
            Some(Y::Sequence(s)) => {
                for w in s {
                    when.push(strip_braces(w.as_str().ok_or_else(|| {
                        ModelError::at(loc, "`when` items must be strings")
                    })?));
                }
            }
            Some(_) => {
                return Err(ModelError::at(
                    loc,
                    "`when` must be an expression string or a list of them",
                ))
            }
            None => {}
        }
        let mut depends_on = f.depends_on.clone();
        if let Some(d) = get("depends_on") {
            let items = d.as_sequence().cloned().unwrap_or_else(|| vec![d.clone()]);
            for (j, item) in items.iter().enumerate() {
                depends_on.push(dep_ref(item, f.lines.at(&format!("{at}.depends_on.{j}")))?);
            }
        }
        let vars: Vars = match get("vars") {
            Some(v) => serde_yaml::from_value(v.clone())
                .map_err(|e| ModelError::at(loc, format!("`vars`: {e}")))?,
            None => Vars::new(),
        };
        if let Some(module) = get("include") {
            let module = module
                .as_str()
                .ok_or_else(|| ModelError::at(loc, "`include` takes a module name"))?;
            for k in ["register", "notify", "timeout", "sensitive"] {
                if get(k).is_some() {
                    return Err(ModelError::at(
                        loc,
                        format!("`{k}` cannot be used on an include"),
                    ));
                }
            }
            if let Some(other) = map
                .keys()
                .filter_map(Y::as_str)
                .find(|k| !TASK_KEYS.contains(k))
            {
                return Err(ModelError::at(
                    loc,
                    format!("an include takes no `{other}` key"),
                ));
            }
            let label = name.unwrap_or_else(|| module.to_string());
            return self.include(module, &label, vars, when, depends_on, loc, f);
        }
        if !vars.is_empty() {
            return Err(ModelError::at(
                loc,
                "task-level `vars` only go with `include`; put them on the play",
            ));
        }
        let actions: Vec<&str> = map
            .keys()
            .filter_map(Y::as_str)
            .filter(|k| !TASK_KEYS.contains(k))
            .collect();
        let kind = match actions.as_slice() {
            [k] => k.to_string(),
            [] => {
                return Err(ModelError::at(
                    loc,
                    "task names no resource type (e.g. `file:`, `template:`, `command:`)",
                ))
            }
            many => {
                return Err(ModelError::at(
                    loc,
                    format!("task has more than one resource type: {}", many.join(", ")),
                ))
            }
        };
        if !resources::is_known(&kind) {
            return Err(ModelError::at(
                loc,
                format!(
                    "unknown resource type `{kind}` (known: {})",
                    resources::names().join(", ")
                ),
            ));
        }
        let args = match map.get(Y::from(kind.as_str())) {
            Some(Y::String(s)) if kind == "command" || kind == "shell" => {
                serde_json::json!({ "cmd": s })
            }
            Some(v @ Y::Mapping(_)) => serde_json::to_value(v)
                .map_err(|e| ModelError::at(loc, format!("`{kind}`: {e}")))?,
            Some(Y::Null) => serde_json::json!({}),
            _ => {
                return Err(ModelError::at(
                    loc,
                    format!("`{kind}` takes a mapping of arguments"),
                ))
            }
        };
        let register = match get("register") {
            Some(Y::String(s)) if is_ident(s) => Some(s.clone()),
            Some(_) => return Err(ModelError::at(loc, "`register` must be a variable name")),
            None => None,
        };
        if let Some(r) = &register {
            self.pb.registered.insert(r.clone());
        }
        let notify = match get("notify") {
            Some(Y::String(s)) => vec![s.clone()],
            Some(Y::Sequence(s)) => s
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            Some(_) => {
                return Err(ModelError::at(
                    loc,
                    "`notify` takes a handler name or a list of them",
                ))
            }
            None => Vec::new(),
        };
        let timeout = match get("timeout") {
            Some(Y::Number(n)) => match n.as_u64() {
                Some(secs) if secs > 0 => Some(secs),
                _ => {
                    return Err(ModelError::at(
                        loc,
                        "`timeout` must be a whole number of seconds above 0",
                    ))
                }
            },
            Some(_) => {
                return Err(ModelError::at(
                    loc,
                    "`timeout` must be a whole number of seconds above 0",
                ))
            }
            None => None,
        };
        let sensitive = match get("sensitive") {
            Some(Y::Bool(b)) => *b,
            Some(_) => return Err(ModelError::at(loc, "`sensitive` must be true or false")),
            None => false,
        };
        let short = name.unwrap_or_else(|| default_name(&kind, &args));
        let full = if f.label.is_empty() {
            short.clone()
        } else {
            format!("{} | {short}", f.label)
        };
        let id = self.pb.tasks.len();
        if f.handler {
            let play = &self.pb.plays[f.play];
            if let Some(other) = play
                .handlers
                .iter()
                .map(|h| &self.pb.tasks[*h])
                .find(|h| h.short == short)
            {
                // A module included twice in a play brings the same handler twice: one is enough.
                if other.loc == *loc {
                    return Ok(());
                }
                return Err(ModelError::at(
                    loc,
                    format!(
                        "handler `{short}` is already defined at {} in play `{}`; handler names must be unique",
                        other.loc, play.name
                    ),
                ));
            }
        }
        let scope = self.scope(f);
        self.pb.tasks.push(TaskSpec {
            id,
            name: full,
            short,
            kind,
            args,
            register,
            notify,
            when,
            depends_on,
            loc: loc.clone(),
            scope,
            search: f.search.clone(),
            play: f.play,
            handler: f.handler,
            timeout,
            sensitive,
        });
        let play = &mut self.pb.plays[f.play];
        if f.handler {
            play.handlers.push(id)
        } else if f.post {
            play.post_tasks.push(id)
        } else {
            play.tasks.push(id)
        }
        Ok(())
    }

    /// A task or include with `loop:`: once per item, with the item bound to `loop_var` (`item` by
    /// default) and the task's `name` rendered with it. Each copy's item is a variable like any other,
    /// rendered per host: an item of a literal list is that element (its templates included), an item of
    /// `{{ expr }}` is `{{ (expr)[i] }}`. The list itself is evaluated here, once, from the variables
    /// that are the same for every host ([`LoopVars`]), since it decides which tasks exist.
    fn looped(
        &mut self,
        map: &Mapping,
        list: &Y,
        loc: &Location,
        at: &str,
        f: &Frame,
    ) -> Result<(), ModelError> {
        let get = |k: &str| map.get(Y::from(k));
        if f.handler {
            return Err(ModelError::at(
                loc,
                "a handler cannot loop: it runs once per host when notified",
            ));
        }
        if get("register").is_some() {
            return Err(ModelError::at(
                loc,
                "`register` cannot be used with `loop` (each item would replace the last one's result)",
            ));
        }
        let var = match get("loop_var") {
            None => "item".to_string(),
            Some(Y::String(s)) if is_ident(s) => s.clone(),
            Some(_) => return Err(ModelError::at(loc, "`loop_var` must be a variable name")),
        };
        let Some(Y::String(name)) = get("name") else {
            return Err(ModelError::at(
                loc,
                format!("a loop needs a `name` that tells its items apart, e.g. `name: \"db {{{{ {var}.name }}}}\"`"),
            ));
        };
        let reference = |i: usize| -> Result<serde_json::Value, ModelError> {
            match list {
                Y::Sequence(items) => serde_json::to_value(&items[i])
                    .map_err(|e| ModelError::at(loc, format!("`loop`: {e}"))),
                Y::String(s) => match whole_expression(s) {
                    Some(expr) => Ok(format!("{{{{ ({expr})[{i}] }}}}").into()),
                    None => Err(ModelError::at(
                        loc,
                        "`loop` takes a list or one `{{ expression }}` rendering to a list",
                    )),
                },
                _ => Err(ModelError::at(
                    loc,
                    "`loop` takes a list or one `{{ expression }}` rendering to a list",
                )),
            }
        };
        if f.includes.iter().any(|l| l.contains_key(&var)) {
            return Err(ModelError::at(
                loc,
                "a loop inside another loop needs its own `loop_var` (the outer one binds it too)",
            ));
        }
        let vars: Vars = match get("vars") {
            Some(v) => serde_yaml::from_value(v.clone())
                .map_err(|e| ModelError::at(loc, format!("`vars`: {e}")))?,
            None => Vars::new(),
        };
        let mut layers: Vec<Arc<Vars>> = f.defaults.iter().rev().cloned().collect();
        layers.extend(f.includes.iter().cloned());
        if !vars.is_empty() {
            layers.push(Arc::new(vars));
        }
        let why = "a loop's list is rendered from the vars that are the same for every host (module defaults, playbook, play and include vars, inventory vars, -e, groups, hostvars), never a host's own";
        let items = self
            .loops
            .items(&layers, list)
            .map_err(|e| ModelError::at(loc, format!("`loop`: {e} ({why})")))?;
        let mut seen: Vec<String> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let label = self.loops.render(&layers, &var, item, name).map_err(|e| {
                ModelError::at(loc, format!("`name` of item {}: {e} ({why})", i + 1))
            })?;
            if let Some(j) = seen.iter().position(|n| *n == label) {
                return Err(ModelError::at(
                    loc,
                    format!(
                        "loop items {} and {} both name the task `{label}`: put what tells them apart in `name`",
                        j + 1,
                        i + 1
                    ),
                ));
            }
            seen.push(label.clone());
            let mut one = map.clone();
            one.remove(Y::from("loop"));
            one.remove(Y::from("loop_var"));
            one.insert(Y::from("name"), Y::from(label));
            let mut bound = Vars::new();
            bound.insert(var.clone(), reference(i)?);
            let mut sub = f.clone();
            sub.includes.push(Arc::new(bound));
            self.task(&one, loc, at, &sub)?;
        }
        Ok(())
    }

    fn scope(&mut self, f: &Frame) -> usize {
        let mut layers: Vec<Arc<Vars>> = f.defaults.iter().rev().cloned().collect();
        layers.extend(f.includes.iter().cloned());
        let found = self.pb.scopes.iter().position(|s| {
            s.layers.len() == layers.len()
                && s.layers.iter().zip(&layers).all(|(a, b)| Arc::ptr_eq(a, b))
        });
        found.unwrap_or_else(|| {
            self.pb.scopes.push(Scope { layers });
            self.pb.scopes.len() - 1
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn include(
        &mut self,
        module: &str,
        label: &str,
        vars: Vars,
        when: Vec<String>,
        depends_on: Vec<DepRef>,
        loc: &Location,
        f: &Frame,
    ) -> Result<(), ModelError> {
        if !is_module_name(module) {
            return Err(ModelError::at(
                loc,
                format!(
                    "`include: {module}`: a module is named, not a path: letters, digits, '-', '_' and '.' (no `/` or `..`); it is found on the module path ({})",
                    self.looked(module).join(", ")
                ),
            ));
        }
        if self.stack.iter().any(|m| m == module) {
            return Err(ModelError::at(
                loc,
                format!(
                    "module include cycle: {} -> {module}",
                    self.stack.join(" -> ")
                ),
            ));
        }
        let dir = self
            .modules
            .iter()
            .map(|d| d.join(module))
            .find(|d| d.join("tasks.yaml").is_file())
            .ok_or_else(|| {
                ModelError::at(
                    loc,
                    format!(
                        "unknown module `{module}` (looked for {})",
                        self.looked(module).join(", ")
                    ),
                )
            })?;
        let defaults = match dir.join("defaults.yaml") {
            p if p.is_file() => {
                let t = read(&p)?;
                let v: Option<Vars> = parse_yaml(&p, &t)?;
                Lines::index(&p, &t)?;
                v.unwrap_or_default()
            }
            _ => Vars::new(),
        };
        let mut search = vec![dir.clone()];
        search.extend(f.search.iter().cloned());
        let mut sub = f.clone();
        sub.defaults.push(Arc::new(defaults));
        sub.includes.push(Arc::new(vars));
        sub.when = when;
        sub.depends_on = depends_on;
        sub.search = Arc::new(search);
        sub.label = if f.label.is_empty() {
            label.to_string()
        } else {
            format!("{} | {label}", f.label)
        };
        self.stack.push(module.to_string());
        for (file, handler) in [("tasks.yaml", false), ("handlers.yaml", true)] {
            let p = dir.join(file);
            if !p.is_file() {
                continue;
            }
            let t = read(&p)?;
            let list: Option<Vec<Y>> = parse_yaml(&p, &t)?;
            let file_lines = Lines::index(&p, &t)?;
            let mut fr = sub.clone();
            fr.lines = Arc::new(file_lines);
            fr.prefix = String::new();
            fr.handler = f.handler || handler;
            if handler {
                fr.depends_on = Vec::new();
                fr.label = String::new();
            }
            let list = list.unwrap_or_default();
            for (i, item) in list.iter().enumerate() {
                let loc = fr.lines.at(&i.to_string());
                let map = item
                    .as_mapping()
                    .ok_or_else(|| ModelError::at(&loc, "a task must be a mapping"))?;
                self.task(map, &loc, &i.to_string(), &fr)?;
            }
        }
        self.stack.pop();
        Ok(())
    }

    /// Where `module`'s tasks file would be on the module path.
    fn looked(&self, module: &str) -> Vec<String> {
        self.modules
            .iter()
            .map(|d| d.join(module).join("tasks.yaml").display().to_string())
            .collect()
    }

    /// Fills each play's [`Play::post_handlers`]: the handlers its post tasks notify, and those these
    /// handlers notify in turn.
    fn post_handlers(&mut self) {
        let tasks = &self.pb.tasks;
        for play in &mut self.pb.plays {
            let by_name = |n: &String| {
                play.handlers
                    .iter()
                    .copied()
                    .find(|h| &tasks[*h].short == n)
            };
            let mut reached: BTreeSet<usize> = play
                .post_tasks
                .iter()
                .flat_map(|t| &tasks[*t].notify)
                .filter_map(by_name)
                .collect();
            loop {
                let more: BTreeSet<usize> = reached
                    .iter()
                    .flat_map(|h| &tasks[*h].notify)
                    .filter_map(by_name)
                    .filter(|h| !reached.contains(h))
                    .collect();
                if more.is_empty() {
                    break;
                }
                reached.extend(more);
            }
            play.post_handlers = play
                .handlers
                .iter()
                .copied()
                .filter(|h| reached.contains(h))
                .collect();
        }
    }

    fn check_notify(&self) -> Result<(), ModelError> {
        for t in &self.pb.tasks {
            let play = &self.pb.plays[t.play];
            for n in &t.notify {
                if !play.handlers.iter().any(|h| &self.pb.tasks[*h].short == n) {
                    return Err(ModelError::at(
                        &t.loc,
                        format!(
                            "task `{}` notifies unknown handler `{n}` (play `{}`)",
                            t.name, play.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn dep_ref(v: &Y, loc: Location) -> Result<DepRef, ModelError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct D {
        task: Option<String>,
        play: Option<String>,
        hosts: Option<String>,
    }
    let d: D = match v {
        Y::String(s) => D {
            task: Some(s.clone()),
            play: None,
            hosts: None,
        },
        other => serde_yaml::from_value(other.clone())
            .map_err(|e| ModelError::at(&loc, format!("depends_on: {e}")))?,
    };
    if d.task.is_some() == d.play.is_some() {
        return Err(ModelError::at(
            &loc,
            "depends_on: name exactly one of `task` or `play`",
        ));
    }
    Ok(DepRef {
        task: d.task,
        play: d.play,
        hosts: d.hosts,
        loc,
    })
}

fn strip_braces(s: &str) -> String {
    let t = s.trim();
    t.strip_prefix("{{")
        .and_then(|x| x.strip_suffix("}}"))
        .map(|x| x.trim().to_string())
        .unwrap_or_else(|| t.to_string())
}

/// A module name: what may follow `include:`, never a path that could reach outside the module path.
fn is_module_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(x) if x.is_ascii_alphabetic() || x == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn default_name(kind: &str, args: &serde_json::Value) -> String {
    let what = ["path", "dest", "name", "cmd", "url", "port"]
        .iter()
        .find_map(|k| args.get(k))
        .map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    match what {
        Some(w) => format!("{kind} {w}"),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SerialError;

    fn load(text: &str) -> Result<Playbook, ModelError> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("main.yaml");
        std::fs::write(&p, text).unwrap();
        Playbook::load(&p, &[])
    }

    #[test]
    fn post_tasks_and_the_handlers_they_reach_are_kept_apart_from_tasks() {
        let pb = load(
            "plays:\n  - hosts: all\n    serial: \"50%\"\n    tasks:\n      - name: t\n        command: x\n        notify: a\n    handlers:\n      - name: a\n        command: x\n      - name: b\n        command: x\n        notify: c\n      - name: c\n        command: x\n    post_tasks:\n      - name: p\n        command: x\n        notify: b\n",
        )
        .unwrap();
        let play = &pb.plays[0];
        let names = |ids: &[usize]| -> Vec<&str> {
            ids.iter().map(|i| pb.tasks[*i].short.as_str()).collect()
        };
        assert_eq!(names(&play.tasks), ["t"]);
        assert_eq!(names(&play.post_tasks), ["p"]);
        assert_eq!(names(&play.handlers), ["a", "b", "c"]);
        assert_eq!(names(&play.post_handlers), ["b", "c"]);
        assert_eq!(play.serial, SerialSpec::Fixed(Serial::Percent(50)));
    }

    #[test]
    fn a_bad_serial_is_a_typed_error_at_its_line() {
        let e = load("plays:\n  - name: roll\n    hosts: all\n    serial: abc\n").unwrap_err();
        match e {
            ModelError::Serial { loc, play, why, .. } => {
                assert_eq!((loc.line, play.as_str()), (4, "roll"));
                assert_eq!(why, SerialError::NotANumber);
            }
            other => panic!("{other}"),
        }
    }
}
