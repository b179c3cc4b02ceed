//! Merging variable layers and resolving variables that refer to other variables. Values are resolved
//! eagerly, in as many passes as the references need; a variable that cannot be resolved (undefined
//! reference, self reference) is kept aside with its reason and only becomes an error if a task uses it,
//! as Ansible's lazy variables would.
//!
//! The variables the engine provides ([`Magic`]) are template values, not JSON: `groups` and `hostvars`
//! hold every host, so one copy of each serves every host's context: copied into each context, they
//! would make a run's cost grow with the cube of its hosts.

use super::template::{is_templated, Templates};
use super::Vars;
use minijinja::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Merges layers, later layers replacing earlier ones key by key (Ansible's `hash_behaviour=replace`).
pub fn merge(layers: &[&Vars]) -> Vars {
    let mut out = Vars::new();
    for l in layers {
        for (k, v) in l.iter() {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// The variables the engine provides (`inventory_hostname`, `groups`, `hostvars`…), which templates read
/// and the inventory cannot override. Cloning one shares its values.
pub type Magic = BTreeMap<String, Value>;

/// Variables after resolution.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// Fully rendered variables of the raw set (the magic ones are in `magic`).
    pub vars: Vars,
    /// The magic variables the raw set was resolved with.
    pub magic: Magic,
    /// Variables that could not be rendered, with the reason.
    pub broken: BTreeMap<String, String>,
    /// `vars` and `magic` as a template context, converted once because every task on the host renders
    /// with it.
    pub context: Value,
    /// What each templated variable of the raw set reads (the names in its template), one a magic
    /// variable overrides included: the render order follows it, and so does [`secret_names`], which
    /// takes it from here rather than parse every template a second time.
    pub reads: BTreeMap<String, BTreeSet<String>>,
}

impl Resolved {
    /// True when `name` is a variable of this context, rendered or magic.
    pub fn defines(&self, name: &str) -> bool {
        self.vars.contains_key(name) || self.magic.contains_key(name)
    }
}

/// The template context of `vars` and `magic`: each variable converted on its own, the magic values
/// shared rather than copied.
fn context_of(vars: &Vars, magic: &Magic) -> Value {
    vars.iter()
        .map(|(k, v)| (k.as_str(), Value::from_serialize(v)))
        .chain(magic.iter().map(|(k, v)| (k.as_str(), v.clone())))
        .collect()
}

fn templated(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => is_templated(s),
        serde_json::Value::Array(a) => a.iter().any(templated),
        serde_json::Value::Object(m) => m.values().any(templated),
        _ => false,
    }
}

/// Resolves `raw` against itself; `magic` (host name, groups, hostvars…) is available and cannot be
/// overridden.
pub fn resolve(t: &Templates, raw: &Vars, magic: &Magic) -> Resolved {
    let reads: BTreeMap<String, BTreeSet<String>> = raw
        .iter()
        .filter(|(_, v)| templated(v))
        .map(|(k, v)| (k.clone(), t.names_in(v).unwrap_or_default()))
        .collect();
    let mut vars = Vars::new();
    let mut pending: Vec<(&String, &serde_json::Value)> = Vec::new();
    for (k, v) in raw {
        if magic.contains_key(k) {
            continue;
        }
        if templated(v) {
            pending.push((k, v));
        } else {
            vars.insert(k.clone(), v.clone());
        }
    }
    // A value renders once the variables it reads are rendered: `default()` and `is defined` would
    // otherwise take a variable that is only not rendered yet for an undefined one. When nothing is left
    // that waits only for others (a cycle, an undefined name), the rest render as they are, for the
    // reason they fail.
    let mut broken = BTreeMap::new();
    let mut stuck = false;
    while !pending.is_empty() {
        let ctx = context_of(&vars, magic);
        let waiting: BTreeSet<&String> = pending.iter().map(|(k, _)| *k).collect();
        let mut next = Vec::new();
        let mut progress = false;
        broken.clear();
        for (k, v) in pending.iter().copied() {
            if !stuck && reads[k].iter().any(|n| n != k && waiting.contains(n)) {
                next.push((k, v));
                continue;
            }
            match t.render_value(v, &ctx) {
                Ok(r) => {
                    vars.insert(k.clone(), r);
                    progress = true;
                }
                Err(e) => {
                    broken.insert(k.clone(), e);
                    next.push((k, v));
                }
            }
        }
        if !progress {
            if stuck {
                break;
            }
            stuck = true;
        }
        pending = next;
    }
    for (k, why) in broken.iter_mut() {
        if why.contains(&format!("`{k}`")) {
            *why = format!("`{k}` refers to itself ({why})");
        }
    }
    let context = context_of(&vars, magic);
    Resolved {
        vars,
        magic: magic.clone(),
        broken,
        context,
        reads,
    }
}

/// True when a variable's value must never be shown: listed under the inventory's `secrets`, or named
/// like a credential.
pub fn is_secret_name(name: &str, listed: &[String]) -> bool {
    let n = name.to_ascii_lowercase();
    listed.iter().any(|l| l == name)
        || ["password", "passwd", "passphrase", "secret"]
            .iter()
            .any(|w| n.contains(w))
}

/// Names of the variables whose values are secret in `raw`: those [`is_secret_name`] says are, and every
/// variable whose own value is a template reading a secret one (`jdbc_url: "...{{ db_password }}"`),
/// transitively. Sensitivity follows the data: a value rendered from a secret is a secret, whatever its
/// name. `reads` is what `raw`'s templated variables read ([`Resolved::reads`] of `raw`). `also` (e.g.
/// results registered by sensitive tasks) counts as secret too.
pub fn secret_names(
    raw: &Vars,
    reads: &BTreeMap<String, BTreeSet<String>>,
    listed: &[String],
    also: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut secret: BTreeSet<String> = raw
        .keys()
        .filter(|k| is_secret_name(k, listed))
        .chain(listed.iter())
        .chain(also.iter())
        .cloned()
        .collect();
    loop {
        let before = secret.len();
        for (k, names) in reads {
            if !secret.contains(k) && names.iter().any(|n| secret.contains(n)) {
                secret.insert(k.clone());
            }
        }
        if secret.len() == before {
            return secret;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: serde_json::Value) -> Vars {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn references_resolve_in_any_order() {
        let t = Templates::new();
        let raw = vars(
            json!({"url": "jdbc://{{ host }}:{{ port }}", "host": "{{ name }}.lab", "port": 3306}),
        );
        let magic = Magic::from([("name".into(), Value::from("h1"))]);
        let r = resolve(&t, &raw, &magic);
        assert_eq!(r.vars["url"], json!("jdbc://h1.lab:3306"));
        assert!(r.broken.is_empty());
    }

    #[test]
    fn a_default_sees_a_variable_rendered_later_in_the_same_pass() {
        let t = Templates::new();
        let raw: Vars = serde_json::from_value(json!({
            "c": "{{ a | default('none') }}",
            "a": "x-{{ b }}",
            "b": "{{ 1 + 1 }}",
            "d": "{{ missing | default('fallback') }}"
        }))
        .unwrap();
        let r = resolve(&t, &raw, &Magic::new());
        assert_eq!(r.vars["c"], json!("x-2"));
        assert_eq!(r.vars["d"], json!("fallback"));
        assert!(r.broken.is_empty(), "{:?}", r.broken);
    }

    #[test]
    fn broken_vars_are_kept_aside_with_their_reason() {
        let t = Templates::new();
        let raw = vars(json!({"a": "{{ a }}", "b": "{{ missing }}", "c": 1}));
        let r = resolve(&t, &raw, &Magic::new());
        assert!(r.broken["a"].contains("refers to itself"), "{:?}", r.broken);
        assert!(r.broken["b"].contains("missing"));
        assert_eq!(r.vars["c"], json!(1));
    }

    #[test]
    fn later_layers_win() {
        let a = vars(json!({"x": 1, "y": 1}));
        let b = vars(json!({"x": 2}));
        assert_eq!(merge(&[&a, &b]), vars(json!({"x": 2, "y": 1})));
    }

    #[test]
    fn a_value_rendered_from_a_secret_is_secret() {
        let t = Templates::new();
        let raw = vars(json!({
            "token": "t0ps3cret-value",
            "upper": "{{ token | upper }}",
            "joined": "{{ [upper, 'x'] | join(',') }}",
            "url": "jdbc://{{ host }}",
            "host": "db",
            "db_password": "pw-000000",
        }));
        let reads = resolve(&t, &raw, &Magic::new()).reads;
        let s = super::secret_names(
            &raw,
            &reads,
            &["token".into()],
            &BTreeSet::from(["reg".into()]),
        );
        let s: Vec<&str> = s.iter().map(String::as_str).collect();
        assert_eq!(s, ["db_password", "joined", "reg", "token", "upper"]);
    }

    #[test]
    fn secret_names() {
        assert!(is_secret_name("db_password", &[]));
        assert!(is_secret_name("keystore", &["keystore".into()]));
        assert!(!is_secret_name("db_user", &[]));
    }
}
