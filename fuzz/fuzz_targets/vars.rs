//! Variable precedence and resolution: up to four layers of variables (the input split at `---`
//! lines, each a YAML mapping checked as every input file is), merged lowest first and resolved against
//! each other (templates reading templates, cycles, undefined names), then the secret names they
//! imply. Must never panic nor overflow the stack.
#![no_main]

use apim_provision::model::location::Lines;
use apim_provision::model::template::Templates;
use apim_provision::model::vars::{merge, resolve, secret_names, Magic};
use apim_provision::model::Vars;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut layers: Vec<Vars> = Vec::new();
    for doc in text.split("\n---\n").take(4) {
        if Lines::index(Path::new("fuzz.yaml"), doc).is_err() {
            return;
        }
        match serde_yaml::from_str::<Option<Vars>>(doc) {
            Ok(v) => layers.push(v.unwrap_or_default()),
            Err(_) => return,
        }
    }
    let refs: Vec<&Vars> = layers.iter().collect();
    let raw = merge(&refs);
    let t = Templates::new();
    let magic = Magic::from([
        ("inventory_hostname".to_string(), minijinja::Value::from("h1")),
        (
            "groups".to_string(),
            minijinja::Value::from_serialize(serde_json::json!({"all": ["h1", "h2"], "db": ["h1"]})),
        ),
    ]);
    let r = resolve(&t, &raw, &magic);
    let _ = secret_names(&raw, &r.reads, &["listed".to_string()], &BTreeSet::new());
});
