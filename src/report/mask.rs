//! Secret masking. The run's secret values are collected into one [`Masker`] while the run is prepared,
//! and every piece of text that leaves the process — plan lines, JSON events, log lines, error messages —
//! passes through it, so no output path can forget to hide one. The masker is a value handed to each
//! output path (sinks, the log writer, error printing), never process-global state.
//!
//! Masking is a second line of defence: a task that reads a secret is sensitive and shows no content or
//! values at all. Values are hidden line by line (a multi-line key or certificate appears in a diff one
//! line at a time), and values shorter than [`MIN_MASKED`] are never hidden by substring: masking `"1"`
//! would garble every number in the output, and the tasks reading them are sensitive instead.

use aho_corasick::{AhoCorasick, MatchKind};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, RwLock};

/// What a secret is replaced with.
pub const MASK: &str = "(sensitive)";

/// Shortest value (in characters, after trimming) hidden by substring.
pub const MIN_MASKED: usize = 6;

#[derive(Default)]
struct Needles {
    values: Vec<String>,
    /// `values` as a set, so learning a value costs the same however many are known.
    known: HashSet<String>,
    /// The matcher of `values`, rebuilt when text is masked after values were added (`stale`), not at
    /// each addition: the secrets of thousands of hosts are learnt one host at a time.
    matcher: Option<AhoCorasick>,
    stale: bool,
}

impl Needles {
    fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.matcher {
            Some(m) if m.is_match(text) => {
                Cow::Owned(m.replace_all(text, &vec![MASK; self.values.len()]))
            }
            _ => Cow::Borrowed(text),
        }
    }
}

/// The secret values of a run and the replacement of each of them in output text. Cloning shares the
/// same set, so values learnt while the run goes on (secrets rendered at run time) reach every holder.
#[derive(Clone, Default)]
pub struct Masker {
    inner: Arc<RwLock<Needles>>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.inner.read().map(|n| n.values.len()).unwrap_or(0);
        write!(f, "Masker({n} values)")
    }
}

impl Masker {
    /// A masker hiding nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hides `value` from now on: each of its lines that is at least [`MIN_MASKED`] characters long.
    pub fn add(&self, value: &str) {
        self.add_all(std::iter::once(value));
    }

    /// Hides every string and number leaf of `v` (a secret variable may be a list or a mapping).
    pub fn add_leaves(&self, v: &serde_json::Value) {
        self.add_all(leaves(v).iter().map(String::as_str));
    }

    /// Hides each of `values` (see [`Masker::add`]).
    pub fn add_all<'a>(&self, values: impl IntoIterator<Item = &'a str>) {
        let mut n = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for v in values {
            for line in v.lines() {
                let line = line.trim();
                if line.chars().count() >= MIN_MASKED && n.known.insert(line.to_string()) {
                    n.values.push(line.to_string());
                    n.stale = true;
                }
            }
        }
    }

    /// `text` with every known secret replaced by [`MASK`].
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        {
            let n = self.inner.read().unwrap_or_else(|e| e.into_inner());
            if !n.stale {
                return n.mask(text);
            }
        }
        let mut n = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if n.stale {
            n.matcher = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&n.values)
                .ok();
            n.stale = false;
        }
        n.mask(text)
    }

    /// [`Masker::mask`] as an owned string.
    pub fn masked(&self, text: &str) -> String {
        self.mask(text).into_owned()
    }
}

/// String and number leaves of a value as text: what of a secret list or mapping can show in output.
pub fn leaves(v: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Number(n) => out.push(n.to_string()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            serde_json::Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_values_are_hidden_line_by_line() {
        let m = Masker::new();
        m.add("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASCBKcwggSjAgEAAoIB\n-----END PRIVATE KEY-----\n");
        let diff = "+key:\n+AQEFAASCBKcwggSjAgEAAoIB\n-MIIEvQIBADANBgkqhkiG9w0B\n";
        let out = m.mask(diff);
        assert_eq!(out, "+key:\n+(sensitive)\n-(sensitive)\n");
    }

    #[test]
    fn short_values_never_mask_by_substring() {
        let m = Masker::new();
        m.add("1");
        m.add_leaves(&serde_json::json!({"pin": 42, "list": ["ab"]}));
        let text = "port 10001, 42 tasks, ab";
        assert_eq!(m.mask(text), text);
    }

    #[test]
    fn a_value_learnt_between_two_masks_is_hidden_from_the_second_on() {
        let m = Masker::new();
        m.add("first-secret");
        assert_eq!(
            m.mask("first-secret second-secret"),
            "(sensitive) second-secret"
        );
        m.add_all(["second-secret", "first-secret"]);
        assert_eq!(
            m.mask("first-secret second-secret"),
            "(sensitive) (sensitive)"
        );
        assert_eq!(format!("{m:?}"), "Masker(2 values)");
    }

    #[test]
    fn the_longest_overlapping_value_wins_and_clones_share_values() {
        let m = Masker::new();
        let seen = m.clone();
        m.add_all(["secret-one", "secret-one-two"]);
        assert_eq!(seen.mask("x secret-one-two y"), "x (sensitive) y");
        assert_eq!(format!("{m:?}"), "Masker(2 values)");
    }
}
