//! The inventory: hosts, how to reach them, the groups they are in and the variables at each level.
//! Variable precedence (low → high): global `vars`, group vars (a parent group before its children,
//! then by name), host vars. Groups may also name hosts that have no entry of their own.

use super::error::{parse_yaml, read, ModelError};
use super::location::{clean, Lines, Location, MAX_DEPTH};
use super::reference::{expand_home, Level, Reference, ReferenceError, VarReference};
use super::Vars;
use indexmap::{IndexMap, IndexSet};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// How the engine reaches a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Connection {
    /// Run on the controller itself.
    Local,
    /// Run over SSH.
    Ssh,
}

/// SSH settings shared by all hosts unless a host overrides them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshDefaults {
    /// Remote user.
    pub user: Option<String>,
    /// Port, 22 when unset.
    pub port: Option<u16>,
    /// Private key file.
    pub identity_file: Option<PathBuf>,
    /// known_hosts file to check host keys against (the user's own is used otherwise).
    pub known_hosts: Option<PathBuf>,
    /// An ssh_config file used instead of `~/.ssh/config`.
    pub ssh_config: Option<PathBuf>,
    /// Run scripts through `sudo -n` when the remote user is not root.
    #[serde(rename = "become")]
    pub become_root: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostDef {
    address: Option<String>,
    connection: Option<Connection>,
    #[serde(flatten)]
    ssh: SshDefaults,
    #[serde(default)]
    vars: Vars,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDef {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    children: Vec<String>,
    #[serde(default)]
    vars: Vars,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    pattern: Option<String>,
    playbook: Option<PathBuf>,
    #[serde(default)]
    vars: Vars,
    #[serde(default)]
    secrets: Vec<String>,
    secrets_file: Option<String>,
    #[serde(default)]
    module_path: Vec<PathBuf>,
    #[serde(default)]
    ssh: SshDefaults,
    #[serde(default)]
    hosts: IndexMap<String, Option<HostDef>>,
    #[serde(default)]
    groups: IndexMap<String, Option<GroupDef>>,
}

/// One host of the inventory.
#[derive(Debug, Clone)]
pub struct Host {
    /// Inventory name, used in every report.
    pub name: String,
    /// Address to connect to (the name when unset).
    pub address: String,
    /// Connection kind (`ssh` unless said otherwise).
    pub connection: Connection,
    /// SSH settings after applying the inventory-wide defaults.
    pub ssh: SshDefaults,
    /// Host-level vars.
    pub vars: Vars,
    /// Where the host is declared.
    pub loc: Location,
}

/// A group and its direct members.
#[derive(Debug, Clone)]
pub struct Group {
    /// Hosts listed directly.
    pub hosts: Vec<String>,
    /// Child groups.
    pub children: Vec<String>,
    /// Group-level vars.
    pub vars: Vars,
    /// Where the group is declared.
    pub loc: Location,
    /// The longest chain of parent groups above it: a parent's vars come before its children's.
    pub depth: usize,
}

/// A loaded, checked inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The inventory file.
    pub path: PathBuf,
    /// Its directory; relative paths in it are relative to this.
    pub dir: PathBuf,
    /// The playbook it names (`pattern:` or `playbook:`), resolved to a path.
    pub playbook: Option<PathBuf>,
    /// Global vars.
    pub vars: Vars,
    /// Names of vars whose values must never be shown: those listed under `secrets:` and, once
    /// [`Inventory::resolve_references`] ran, those set from a reference.
    pub secrets: Vec<String>,
    /// The age-encrypted secrets file `{ secret: NAME }` reads: `secrets_file:`, or `secrets.age`
    /// next to the inventory.
    pub secrets_file: PathBuf,
    /// Variables set to a reference in the file. [`Inventory::resolve_references`] puts their values
    /// in place and keeps this list: a check of the file as written (lint's literal secrets) still
    /// knows which values were references.
    pub references: Vec<VarReference>,
    /// The operator's own module directories (`module_path:`, relative to the inventory), searched
    /// after the project's `modules/`, like Ansible's `roles_path`.
    pub module_path: Vec<PathBuf>,
    /// Hosts in declaration order.
    pub hosts: Vec<Host>,
    /// Groups in declaration order (the implicit `all` is not stored).
    pub groups: IndexMap<String, Group>,
    lines: Lines,
    /// Position of each host in `hosts`, so finding a host costs the same at any inventory size.
    index: HashMap<String, usize>,
    /// [`Inventory::groups_of`] of every host, worked out once at load: asked per host, walking
    /// every group's members each time would cost hosts × hosts.
    memberships: HashMap<String, Vec<String>>,
}

impl Inventory {
    /// Reads and checks an inventory file. `pattern: NAME` resolves to `playbooks/NAME.yaml` next to the
    /// inventory's project (the inventory dir or its parent).
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        Self::from_text(path, &read(path)?)
    }

    /// [`Inventory::load`] of `text`, as if read from `path` (relative paths in it are relative to
    /// that path's directory): what the fuzz targets feed any bytes to.
    pub fn from_text(path: &Path, text: &str) -> Result<Self, ModelError> {
        let raw: InventoryFile = parse_yaml(path, text)?;
        let lines = Lines::index(path, text)?;
        let path = &clean(path);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let playbook = match (&raw.pattern, &raw.playbook) {
            (Some(_), Some(_)) => {
                return Err(ModelError::at(&lines.at("pattern"), "set either `pattern` or `playbook`, not both"))
            }
            (Some(p), None) if p.is_empty() || p.starts_with('.') || !p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) => {
                return Err(ModelError::at(
                    &lines.at("pattern"),
                    format!("`pattern: {p}` names a shipped playbook (letters, digits, '-', '_', '.'; no `/` or `..`); use `playbook: FILE` for a path"),
                ))
            }
            (Some(p), None) => Some(find_pattern(&dir, p).ok_or_else(|| {
                ModelError::at(
                    &lines.at("pattern"),
                    format!("no playbook for pattern `{p}` (looked for playbooks/{p}.yaml next to the inventory and in its parent)"),
                )
            })?),
            (None, Some(p)) => Some(clean(&dir.join(p))),
            (None, None) => None,
        };
        let rel = |p: &Option<PathBuf>| p.as_ref().map(|p| clean(&dir.join(p)));
        let mut hosts: Vec<Host> = Vec::new();
        let mut known = HashSet::new();
        for (name, def) in raw.hosts {
            let def = def.unwrap_or(HostDef {
                address: None,
                connection: None,
                ssh: SshDefaults::default(),
                vars: Vars::new(),
            });
            let loc = lines.at(&format!("hosts.{name}"));
            check_name(&name, "host", &loc)?;
            let s = &def.ssh;
            let d = &raw.ssh;
            known.insert(name.clone());
            hosts.push(Host {
                address: def.address.unwrap_or_else(|| name.clone()),
                connection: def.connection.unwrap_or(Connection::Ssh),
                ssh: SshDefaults {
                    user: s.user.clone().or_else(|| d.user.clone()),
                    port: s.port.or(d.port),
                    identity_file: rel(&s.identity_file).or_else(|| rel(&d.identity_file)),
                    known_hosts: rel(&s.known_hosts).or_else(|| rel(&d.known_hosts)),
                    ssh_config: rel(&s.ssh_config).or_else(|| rel(&d.ssh_config)),
                    become_root: s.become_root.or(d.become_root),
                },
                vars: def.vars,
                name,
                loc,
            });
        }
        let mut groups = IndexMap::new();
        for (name, def) in raw.groups {
            let def = def.unwrap_or_default();
            let loc = lines.at(&format!("groups.{name}"));
            check_name(&name, "group", &loc)?;
            if name == "all" {
                return Err(ModelError::at(
                    &loc,
                    "`all` is implicit and holds every host; put its vars under top-level `vars`",
                ));
            }
            for h in &def.hosts {
                if known.insert(h.clone()) {
                    hosts.push(Host {
                        name: h.clone(),
                        address: h.clone(),
                        connection: Connection::Ssh,
                        ssh: raw.ssh.clone(),
                        vars: Vars::new(),
                        loc: loc.clone(),
                    });
                }
            }
            groups.insert(
                name,
                Group {
                    hosts: def.hosts,
                    children: def.children,
                    vars: def.vars,
                    loc,
                    depth: 0,
                },
            );
        }
        let module_path = raw
            .module_path
            .iter()
            .map(|p| clean(&dir.join(p)))
            .collect();
        let secrets_file = match &raw.secrets_file {
            Some(f) => clean(&dir.join(expand_home(f))),
            None => dir.join("secrets.age"),
        };
        let mut inv = Inventory {
            path: path.to_path_buf(),
            dir,
            playbook,
            vars: raw.vars,
            secrets: raw.secrets,
            secrets_file,
            references: Vec::new(),
            module_path,
            hosts,
            groups,
            lines,
            index: HashMap::new(),
            memberships: HashMap::new(),
        };
        inv.check_groups()?;
        inv.references = inv.find_references()?;
        inv.index = inv
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.clone(), i))
            .collect();
        inv.memberships = inv.memberships();
        Ok(inv)
    }

    /// Every variable of every level set to a reference, checked for syntax.
    fn find_references(&self) -> Result<Vec<VarReference>, ModelError> {
        let levels = std::iter::once((Level::Global, "vars".to_string(), &self.vars))
            .chain(
                self.groups
                    .iter()
                    .map(|(g, d)| (Level::Group(g.clone()), format!("groups.{g}.vars"), &d.vars)),
            )
            .chain(self.hosts.iter().map(|h| {
                (
                    Level::Host(h.name.clone()),
                    format!("hosts.{}.vars", h.name),
                    &h.vars,
                )
            }));
        let mut out = Vec::new();
        for (level, at, vars) in levels {
            for (var, value) in vars {
                let loc = self.lines.at(&format!("{at}.{var}"));
                match Reference::of(value, &self.dir) {
                    None => {}
                    Some(Err(msg)) => {
                        return Err(ModelError::at(&loc, format!("var `{var}`: {msg}")))
                    }
                    Some(Ok(reference)) => out.push(VarReference {
                        var: var.clone(),
                        level: level.clone(),
                        reference,
                        loc,
                    }),
                }
            }
        }
        Ok(out)
    }

    /// Replaces every variable set to a reference with what `resolve` gives for it, and makes it
    /// secret. The first reference that does not resolve is an error naming the variable, its line and
    /// the reference.
    pub fn resolve_references(
        &mut self,
        resolve: impl Fn(&Reference) -> Result<String, ReferenceError>,
    ) -> Result<(), ModelError> {
        for r in self.references.clone() {
            let value = resolve(&r.reference).map_err(|why| ModelError::Reference {
                loc: r.loc.clone(),
                var: r.var.clone(),
                reference: Box::new(r.reference.clone()),
                why: Box::new(why),
            })?;
            let vars = match &r.level {
                Level::Global => &mut self.vars,
                Level::Group(g) => &mut self.groups[g].vars,
                Level::Host(h) => &mut self.hosts[self.index[h]].vars,
            };
            vars.insert(r.var.clone(), value.into());
            if !self.secrets.contains(&r.var) {
                self.secrets.push(r.var);
            }
        }
        Ok(())
    }

    /// Checks child names, refuses cycles and nesting deeper than [`MAX_DEPTH`], and sets each group's
    /// depth. Every walk visits a group once, so a large or diamond-shaped hierarchy stays linear.
    fn check_groups(&mut self) -> Result<(), ModelError> {
        for (name, g) in &self.groups {
            for c in &g.children {
                if !self.groups.contains_key(c) {
                    return Err(ModelError::at(
                        &g.loc,
                        format!("group `{name}` has unknown child group `{c}`"),
                    ));
                }
            }
        }
        let mut done = HashSet::new();
        for name in self.groups.keys() {
            let mut path = IndexSet::new();
            self.check_below(name, &mut path, &mut done)?;
        }
        let mut depth: HashMap<String, usize> = HashMap::new();
        for _ in 0..=MAX_DEPTH {
            let mut moved = false;
            for (p, g) in &self.groups {
                let below = depth.get(p).copied().unwrap_or(0) + 1;
                for c in &g.children {
                    let d = depth.entry(c.clone()).or_insert(0);
                    if *d < below {
                        *d = below;
                        moved = true;
                    }
                }
            }
            if !moved {
                break;
            }
        }
        for (name, g) in self.groups.iter_mut() {
            g.depth = depth.get(name).copied().unwrap_or(0);
        }
        Ok(())
    }

    fn check_below(
        &self,
        name: &str,
        path: &mut IndexSet<String>,
        done: &mut HashSet<String>,
    ) -> Result<(), ModelError> {
        if done.contains(name) {
            return Ok(());
        }
        let chain = |path: &IndexSet<String>| {
            path.iter()
                .cloned()
                .chain([name.to_string()])
                .collect::<Vec<_>>()
                .join(" -> ")
        };
        if path.contains(name) {
            return Err(ModelError::at(
                &self.groups[name].loc,
                format!("group cycle: {}", chain(path)),
            ));
        }
        if path.len() >= MAX_DEPTH {
            return Err(ModelError::at(
                &self.groups[name].loc,
                format!(
                    "groups nested deeper than {MAX_DEPTH} levels: {} -> …",
                    path.iter()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" -> ")
                ),
            ));
        }
        path.insert(name.to_string());
        for c in &self.groups[name].children {
            self.check_below(c, path, done)?;
        }
        path.pop();
        done.insert(name.to_string());
        Ok(())
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.index.get(name).map(|&i| &self.hosts[i])
    }

    /// Every host of group `name` (with its child groups), in inventory order.
    pub fn members(&self, name: &str) -> Vec<String> {
        if name == "all" {
            return self.hosts.iter().map(|h| h.name.clone()).collect();
        }
        let mut set = IndexSet::new();
        self.collect(name, &mut set);
        self.hosts
            .iter()
            .filter(|h| set.contains(&h.name))
            .map(|h| h.name.clone())
            .collect()
    }

    fn collect(&self, group: &str, out: &mut IndexSet<String>) {
        let mut seen = HashSet::new();
        let mut todo = vec![group];
        while let Some(name) = todo.pop() {
            if !seen.insert(name) {
                continue;
            }
            if let Some(g) = self.groups.get(name) {
                out.extend(g.hosts.iter().cloned());
                todo.extend(g.children.iter().map(String::as_str));
            }
        }
    }

    /// Groups `host` belongs to, ordered for variable precedence: shallower groups (parents) first.
    pub fn groups_of(&self, host: &str) -> Vec<String> {
        self.memberships.get(host).cloned().unwrap_or_default()
    }

    /// The groups of every host, each host's list ordered as [`Inventory::groups_of`] returns it.
    fn memberships(&self) -> HashMap<String, Vec<String>> {
        let mut of: HashMap<String, Vec<(usize, String)>> = HashMap::new();
        for (g, group) in &self.groups {
            for h in self.members(g) {
                of.entry(h).or_default().push((group.depth, g.clone()));
            }
        }
        of.into_iter()
            .map(|(h, mut gs)| {
                gs.sort();
                (h, gs.into_iter().map(|(_, g)| g).collect())
            })
            .collect()
    }

    /// Variable layers of `host`, lowest precedence first.
    pub fn var_layers(&self, host: &str) -> Vec<&Vars> {
        let mut layers = vec![&self.vars];
        for g in self.groups_of(host) {
            layers.push(&self.groups[&g].vars);
        }
        if let Some(h) = self.host(host) {
            layers.push(&h.vars);
        }
        layers
    }

    /// Hosts matched by an Ansible-style pattern: names or groups separated by `,` or `:`, `*` wildcards,
    /// `!x` to exclude and `&x` to intersect. An unknown name is an error, not an empty match, because a
    /// typo in `--limit` or `hosts:` must never silently select nothing.
    pub fn select(&self, pattern: &str) -> Result<Vec<String>, String> {
        let mut picked: IndexSet<String> = IndexSet::new();
        let mut first = true;
        for part in pattern
            .split([',', ':'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (op, name) = match part.chars().next() {
                Some('!') => ('!', &part[1..]),
                Some('&') => ('&', &part[1..]),
                _ => ('+', part),
            };
            let matched = self.match_one(name)?;
            match op {
                '!' => picked.retain(|h| !matched.contains(h)),
                '&' => picked.retain(|h| matched.contains(h)),
                _ => picked.extend(matched),
            }
            if first && op != '+' {
                return Err(format!(
                    "pattern `{pattern}` starts with an exclusion; name what to include first"
                ));
            }
            first = false;
        }
        Ok(self
            .hosts
            .iter()
            .filter(|h| picked.contains(&h.name))
            .map(|h| h.name.clone())
            .collect())
    }

    fn match_one(&self, name: &str) -> Result<Vec<String>, String> {
        if name == "all" || self.groups.contains_key(name) {
            return Ok(self.members(name));
        }
        if self.host(name).is_some() {
            return Ok(vec![name.to_string()]);
        }
        if name.contains('*') {
            let re = regex::Regex::new(&format!("^{}$", regex::escape(name).replace("\\*", ".*")))
                .map_err(|e| e.to_string())?;
            let mut out: Vec<String> = self
                .hosts
                .iter()
                .filter(|h| re.is_match(&h.name))
                .map(|h| h.name.clone())
                .collect();
            for g in self.groups.keys().filter(|g| re.is_match(g)) {
                out.extend(self.members(g));
            }
            return Ok(out);
        }
        Err(format!(
            "`{name}` is neither a host nor a group of {}",
            self.path.display()
        ))
    }

    /// Location of a dotted path in the inventory file.
    pub fn at(&self, path: &str) -> Location {
        self.lines.at(path)
    }
}

fn find_pattern(dir: &Path, name: &str) -> Option<PathBuf> {
    let file = format!("{name}.yaml");
    [
        dir.join("playbooks").join(&file),
        dir.join("..").join("playbooks").join(&file),
    ]
    .into_iter()
    .map(|p| clean(&p))
    .find(|p| p.is_file())
}

fn check_name(name: &str, what: &str, loc: &Location) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ModelError::at(
            loc,
            format!("{what} name `{name}` may only hold letters, digits, '-', '_' and '.'"),
        ))
    }
}
