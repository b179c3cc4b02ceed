//! `lint`: whether a checked inventory and playbook are fit for production, before any host is
//! touched. The engine's own checks know no product: literal secrets, world-readable modes on files
//! that hold secrets, certificates, ssh host key checking. What a product ships with (default
//! credentials, host patterns that let anyone in, roles that must not sit on one host) is data: a
//! `lint.yaml` beside the module's tasks (see [`rules`]).

pub mod cert;
pub mod rules;
mod ssh;

use crate::model::location::Location;
use crate::model::vars::is_secret_name;
use crate::model::{Inventory, ModelError, Vars};
use crate::plan::Prepared;
use crate::resources::FileMode;
use petgraph::graph::NodeIndex;
use rules::Rules;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// How much a finding matters: `error` fails `lint`, `warning` fails it under `--strict`, `info` never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing (a single point of failure).
    Info,
    /// A weakness to fix before production.
    Warning,
    /// Unfit for production.
    Error,
}

impl Severity {
    /// The word shown and written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One weakness: where it is written, why it is one and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// A stable name of the check, for scripts and tests (`literal-secret`, `tls-expiry`…).
    pub check: &'static str,
    /// The file and line to change.
    pub loc: Location,
    /// Why it is a weakness.
    pub why: String,
    /// How to fix it.
    pub fix: String,
    /// The hosts it concerns, in inventory order (none for what concerns no host in particular).
    pub hosts: Vec<String>,
}

/// What a lint run depends on besides the inventory.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Literal secrets are errors, not warnings.
    pub strict: bool,
    /// The user's home, whose `.ssh/config` ssh reads when the inventory names no `ssh_config`.
    pub home: Option<PathBuf>,
    /// The time certificates are checked against (Unix seconds).
    pub now: i64,
}

/// Every finding for `p`, most severe first, each once.
pub fn lint(p: &Prepared, o: &Options) -> Result<Vec<Finding>, ModelError> {
    let rules = load_rules(p)?;
    let mut out = Vec::new();
    out.extend(literal_secrets(&p.inv, o.strict));
    known_values(p, &rules, &mut out);
    single_hosts(p, &rules, &mut out);
    tasks(p, o.now, &mut out);
    inventory_files(&p.inv, o.now, &mut out);
    out.extend(ssh::check(&p.inv, o.home.as_deref()));
    let mut out = merged(out, &p.inv);
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.loc.file.cmp(&b.loc.file))
            .then(a.loc.line.cmp(&b.loc.line))
    });
    Ok(out)
}

/// One finding per place and reason, with the hosts of all its copies.
fn merged(list: Vec<Finding>, inv: &Inventory) -> Vec<Finding> {
    let mut by: BTreeMap<(String, &'static str, String), Finding> = BTreeMap::new();
    for f in list {
        let key = (f.loc.to_string(), f.check, f.why.clone());
        match by.get_mut(&key) {
            Some(first) => first.hosts.extend(f.hosts),
            None => {
                by.insert(key, f);
            }
        }
    }
    let order: BTreeMap<&str, usize> = inv
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.as_str(), i))
        .collect();
    by.into_values()
        .map(|mut f| {
            f.hosts.sort_by_key(|h| order.get(h.as_str()).copied());
            f.hosts.dedup();
            f
        })
        .collect()
}

/// The exit code of `lint`: 1 on an error, or on a warning under `strict`; 0 otherwise.
pub fn exit_code(findings: &[Finding], strict: bool) -> i32 {
    let fails =
        |f: &Finding| f.severity == Severity::Error || (strict && f.severity == Severity::Warning);
    i32::from(findings.iter().any(fails))
}

/// A value that names where a secret comes from instead of holding it: a mapping with exactly one
/// key, `env`, `file`, `cmd` or `secret`.
pub fn is_reference(v: &serde_json::Value) -> bool {
    v.as_object().is_some_and(|m| {
        m.len() == 1
            && m.keys()
                .all(|k| ["env", "file", "cmd", "secret"].contains(&k.as_str()))
    })
}

/// The directory whose `lint.yaml` applies to a task: the one its task file is in.
fn rules_dir(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The rules beside every task file the playbook uses, by directory.
fn load_rules(p: &Prepared) -> Result<BTreeMap<PathBuf, Rules>, ModelError> {
    let mut out = BTreeMap::new();
    for t in &p.pb.tasks {
        let dir = rules_dir(&t.loc.file);
        if out.contains_key(&dir) {
            continue;
        }
        let file = dir.join(rules::FILE);
        let r = if file.is_file() {
            Rules::load(&file)?
        } else {
            Rules::default()
        };
        out.insert(dir, r);
    }
    Ok(out)
}

/// The inventory's variable layers with the dotted path of each: global, each group's, each host's.
fn layers(inv: &Inventory) -> Vec<(String, &Vars)> {
    let mut out = vec![("vars".to_string(), &inv.vars)];
    out.extend(
        inv.groups
            .iter()
            .map(|(g, d)| (format!("groups.{g}.vars"), &d.vars)),
    );
    out.extend(
        inv.hosts
            .iter()
            .map(|h| (format!("hosts.{}.vars", h.name), &h.vars)),
    );
    out
}

/// Where the inventory sets `var` for `host`: the layer that wins (host, then the groups from the
/// deepest, then global), `None` when the inventory does not set it.
fn var_loc(inv: &Inventory, host: &str, var: &str) -> Option<Location> {
    if inv.host(host).is_some_and(|h| h.vars.contains_key(var)) {
        return Some(inv.at(&format!("hosts.{host}.vars.{var}")));
    }
    for g in inv.groups_of(host).iter().rev() {
        if inv.groups[g].vars.contains_key(var) {
            return Some(inv.at(&format!("groups.{g}.vars.{var}")));
        }
    }
    inv.vars
        .contains_key(var)
        .then(|| inv.at(&format!("vars.{var}")))
}

/// Secrets written as literals in the inventory: a variable listed under `secrets:` or named like a
/// credential whose value is a plain value, not a reference nor a template (which reads another
/// variable, checked where it is written). A warning; an error under `strict`. Needs the inventory
/// alone, so it can be checked on files whose references cannot be resolved here.
pub fn literal_secrets(inv: &Inventory, strict: bool) -> Vec<Finding> {
    use crate::model::reference::Level;
    let referenced: std::collections::BTreeSet<String> = inv
        .references
        .iter()
        .map(|r| match &r.level {
            Level::Global => format!("vars.{}", r.var),
            Level::Group(g) => format!("groups.{g}.vars.{}", r.var),
            Level::Host(h) => format!("hosts.{h}.vars.{}", r.var),
        })
        .collect();
    let mut out = Vec::new();
    for (path, vars) in layers(inv) {
        for (k, v) in vars {
            if referenced.contains(&format!("{path}.{k}")) {
                continue;
            }
            let literal = match v {
                serde_json::Value::String(s) => !crate::model::template::is_templated(s),
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => true,
                _ => false,
            };
            if literal && is_secret_name(k, &inv.secrets) {
                out.push(Finding {
                    severity: if strict {
                        Severity::Error
                    } else {
                        Severity::Warning
                    },
                    check: "literal-secret",
                    loc: inv.at(&format!("{path}.{k}")),
                    why: format!("`{k}` is a secret written into the inventory: whoever reads the file or its history has it"),
                    fix: format!("give a reference instead: `{k}: {{ env: NAME }}`, `{{ file: PATH }}` (mode 0600), `{{ cmd: \"pass show …\" }}` or `{{ secret: NAME }}`"),
                    hosts: Vec::new(),
                });
            }
        }
    }
    out
}

/// Every graph node with the directory of its task's rules.
fn nodes<'a>(p: &'a Prepared) -> impl Iterator<Item = (NodeIndex, PathBuf)> + 'a {
    p.graph
        .graph
        .node_indices()
        .map(move |n| (n, rules_dir(&p.task(n).loc.file)))
}

fn known_values(p: &Prepared, rules: &BTreeMap<PathBuf, Rules>, out: &mut Vec<Finding>) {
    let addresses_known = !p.inv.hosts.is_empty()
        && p.inv
            .hosts
            .iter()
            .all(|h| h.address.parse::<std::net::IpAddr>().is_ok());
    for (node, dir) in nodes(p) {
        let Some(r) = rules.get(&dir) else { continue };
        let host = &p.graph.graph[node].host;
        let vars = &p.resolved(node).vars;
        let mut check = |list: &[(rules::KnownValue, Location)], severity, check| {
            for (rule, at) in list {
                let Some(v) = vars.get(&rule.var) else {
                    continue;
                };
                if rule.values.contains(v) {
                    // A secret's value is never shown, not even a default one.
                    let shown = if is_secret_name(&rule.var, &p.inv.secrets) {
                        "the default the product ships with".to_string()
                    } else {
                        format!(
                            "`{}`",
                            v.as_str().map_or_else(|| v.to_string(), str::to_string)
                        )
                    };
                    out.push(Finding {
                        severity,
                        check,
                        loc: var_loc(&p.inv, host, &rule.var).unwrap_or_else(|| at.clone()),
                        why: format!("`{}` is {shown}: {}", rule.var, rule.why),
                        fix: rule.fix.clone(),
                        hosts: vec![host.clone()],
                    });
                }
            }
        };
        check(&r.default_values, Severity::Error, "default-credential");
        if addresses_known {
            check(&r.any_host, Severity::Warning, "any-host-grant");
        }
    }
}

fn single_hosts(p: &Prepared, rules: &BTreeMap<PathBuf, Rules>, out: &mut Vec<Finding>) {
    let mut hosts: BTreeMap<&PathBuf, BTreeSet<&str>> = BTreeMap::new();
    let mut play_of: BTreeMap<&PathBuf, usize> = BTreeMap::new();
    let nodes: Vec<_> = nodes(p).collect();
    for (node, dir) in &nodes {
        if let Some(when) = p.nodes[node.index()].when {
            if !when {
                continue;
            }
        }
        hosts
            .entry(dir)
            .or_default()
            .insert(&p.graph.graph[*node].host);
        play_of.entry(dir).or_insert(p.task(*node).play);
    }
    for (dir, on) in hosts {
        let Some((rule, at)) = rules.get(dir).and_then(|r| r.single_host.as_ref()) else {
            continue;
        };
        if on.len() != 1 {
            continue;
        }
        let host = on.iter().next().copied().unwrap_or_default();
        let pattern = &p.pb.plays[play_of[dir]].hosts;
        let loc = if p.inv.groups.contains_key(pattern) {
            p.inv.at(&format!("groups.{pattern}"))
        } else {
            p.inv
                .host(host)
                .map_or_else(|| at.clone(), |h| h.loc.clone())
        };
        out.push(Finding {
            severity: Severity::Info,
            check: "single-point-of-failure",
            loc,
            why: format!("{} is one host: when it is down, the cluster is", rule.what),
            fix: rule.fix.clone(),
            hosts: vec![host.to_string()],
        });
    }
}

/// Checks of each task's arguments as the run would render them: secret-holding files written
/// world-readable, certificates issued for `localhost`, and the certificates in a state directory.
fn tasks(p: &Prepared, now: i64, out: &mut Vec<Finding>) {
    for node in p.graph.graph.node_indices() {
        let prep = &p.nodes[node.index()];
        if prep.resource.is_none() {
            continue;
        }
        let t = p.task(node);
        // Rendering costs what building the resource did: only for the tasks a check reads.
        let read = ["mode", "common_name", "ca_common_name", "state_dir"];
        if !t
            .args
            .as_object()
            .is_some_and(|a| read.iter().any(|k| a.contains_key(*k)))
        {
            continue;
        }
        let host = &p.graph.graph[node].host;
        let ctx = p.context(node, &Vars::new());
        let Ok(serde_json::Value::Object(args)) = p.templates.render_value(&t.args, &ctx) else {
            continue;
        };
        let holds_secret = prep.sensitive
            || args
                .iter()
                .any(|(k, v)| is_secret_name(k, &[]) && !v.is_null() && v.as_str() != Some(""));
        let mode = args.get("mode").and_then(|m| match m {
            serde_json::Value::String(s) => FileMode::parse(s).ok(),
            serde_json::Value::Number(n) => FileMode::parse(&n.to_string()).ok(),
            _ => None,
        });
        if let Some(mode) = mode.filter(|m| holds_secret && m.0 & 0o004 != 0) {
            let dest = args
                .get("dest")
                .or_else(|| args.get("path"))
                .and_then(|d| d.as_str())
                .unwrap_or("its file");
            out.push(Finding {
                severity: Severity::Warning,
                check: "world-readable",
                loc: t.loc.clone(),
                why: format!("task `{}` writes {dest}, which holds a secret, with mode {mode}: every account on the host can read it", t.name),
                fix: "give it mode 0600 or 0640, owned by the account that runs the product".into(),
                hosts: vec![host.clone()],
            });
        }
        for key in ["common_name", "ca_common_name"] {
            if args
                .get(key)
                .and_then(|v| v.as_str())
                .is_some_and(|cn| cn.eq_ignore_ascii_case("localhost"))
            {
                let what = format!(
                    "task `{}` issues a certificate with {key} localhost",
                    t.name
                );
                out.push(cert::localhost(t.loc.clone(), &what, host));
            }
        }
        if let Some(dir) = args.get("state_dir").and_then(|d| d.as_str()) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut pems: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "pem"))
                .collect();
            pems.sort();
            for f in pems {
                out.extend(cert::check_file(&f, &t.loc, now, Some(host)));
            }
        }
    }
}

/// Certificates in the files the inventory's variables name (a path relative to the inventory, or
/// absolute).
fn inventory_files(inv: &Inventory, now: i64, out: &mut Vec<Finding>) {
    for (path, vars) in layers(inv) {
        for (k, v) in vars {
            let Some(s) = v.as_str() else { continue };
            if crate::model::template::is_templated(s) || s.is_empty() || s.contains('\0') {
                continue;
            }
            let file = crate::model::location::clean(&inv.dir.join(s));
            if file.is_file() {
                out.extend(cert::check_file(
                    &file,
                    &inv.at(&format!("{path}.{k}")),
                    now,
                    None,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_reference_is_a_mapping_with_one_known_key() {
        for r in [
            json!({"env": "X"}),
            json!({"file": "s/db"}),
            json!({"cmd": "pass x"}),
            json!({"secret": "db"}),
        ] {
            assert!(is_reference(&r), "{r}");
        }
        for v in [
            json!("x"),
            json!({}),
            json!({"env": "X", "file": "y"}),
            json!({"path": "y"}),
            json!(["env"]),
        ] {
            assert!(!is_reference(&v), "{v}");
        }
    }

    #[test]
    fn errors_fail_and_warnings_fail_only_when_strict() {
        let f = |severity| Finding {
            severity,
            check: "x",
            loc: Location {
                file: "f".into(),
                line: 1,
            },
            why: String::new(),
            fix: String::new(),
            hosts: Vec::new(),
        };
        assert_eq!(exit_code(&[f(Severity::Info)], true), 0);
        assert_eq!(exit_code(&[f(Severity::Warning)], false), 0);
        assert_eq!(exit_code(&[f(Severity::Warning)], true), 1);
        assert_eq!(exit_code(&[f(Severity::Error)], false), 1);
        assert_eq!(exit_code(&[], true), 0);
    }
}
