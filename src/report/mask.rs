//! Secret masking. Every secret value the run knows is registered here once, and every piece of text that
//! leaves the process — plan lines, diffs, JSON events, log lines, error messages — passes through
//! [`mask`], so no output path can forget to hide one.

use std::borrow::Cow;
use std::sync::RwLock;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// What a secret is replaced with.
pub const MASK: &str = "(sensitive)";

/// Registers secret values to hide from now on (empty strings are ignored).
pub fn add_secrets<I: IntoIterator<Item = String>>(values: I) {
    let mut s = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for v in values {
        if !v.is_empty() && !s.contains(&v) {
            s.push(v);
        }
    }
    s.sort_by_key(|v| std::cmp::Reverse(v.len()));
}

/// `text` with every registered secret replaced by [`MASK`].
pub fn mask(text: &str) -> Cow<'_, str> {
    let s = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    if !s.iter().any(|v| text.contains(v.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for v in s.iter() {
        out = out.replace(v.as_str(), MASK);
    }
    Cow::Owned(out)
}

/// String leaves of a value, for registering a secret variable that is a list or mapping.
pub fn leaves(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Number(n) => out.push(n.to_string()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| leaves(x, out)),
        _ => {}
    }
}
