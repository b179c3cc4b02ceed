//! What lint knows about a product, read from data: a `lint.yaml` beside a module's (or a playbook
//! directory's) tasks. The engine only knows the kinds of rule; which variables hold a product's
//! default credentials, which one is a database host pattern and which modules must not run on a
//! single host is written in the modules that know the product.

use crate::model::error::{parse_yaml, read};
use crate::model::location::{Lines, Location};
use crate::model::ModelError;
use serde::Deserialize;
use std::path::Path;

/// The name of the rules file looked for beside each task file.
pub const FILE: &str = "lint.yaml";

/// A variable whose value must not be one a product ships with (public knowledge, so no secret).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownValue {
    /// The variable.
    pub var: String,
    /// The values that are refused.
    pub values: Vec<serde_json::Value>,
    /// Why such a value is a weakness.
    pub why: String,
    /// What to do instead.
    pub fix: String,
}

/// A module whose hosts are a single point of failure when it runs on one host only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SingleHost {
    /// What the hosts are ("the database server").
    pub what: String,
    /// What to do instead.
    pub fix: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    default_values: Vec<KnownValue>,
    #[serde(default)]
    any_host: Vec<KnownValue>,
    single_host: Option<SingleHost>,
}

/// The rules of one `lint.yaml`, each with where it is written.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Credentials a product ships with: an error wherever a host's resolved value is one of them.
    pub default_values: Vec<(KnownValue, Location)>,
    /// Host patterns that let every address in (MySQL's `%`): a warning when the inventory knows the
    /// nodes' addresses, so a narrower pattern could be given.
    pub any_host: Vec<(KnownValue, Location)>,
    /// Set when the module's hosts must not be a single host (an info finding).
    pub single_host: Option<(SingleHost, Location)>,
}

impl Rules {
    /// Reads `path`, refusing unknown keys with `file:line`.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = read(path)?;
        let raw: Option<RulesFile> = parse_yaml(path, &text)?;
        let lines = Lines::index(path, &text)?;
        let raw = raw.unwrap_or_default();
        let located = |list: Vec<KnownValue>, key: &str| {
            list.into_iter()
                .enumerate()
                .map(|(i, r)| (r, lines.at(&format!("{key}.{i}"))))
                .collect()
        };
        Ok(Rules {
            default_values: located(raw.default_values, "default_values"),
            any_host: located(raw.any_host, "any_host"),
            single_host: raw.single_host.map(|s| (s, lines.at("single_host"))),
        })
    }
}
