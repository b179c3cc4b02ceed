//! Any bytes as an inventory file: loading must return the inventory or a located error, never panic
//! nor overflow the stack; what is loaded is then walked as a run walks it (groups, var layers, host
//! patterns, the lint of literal secrets).
#![no_main]

use apim_provision::model::Inventory;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Next to the shipped playbooks, so that `pattern:` finds them.
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../inventory/fuzz.yaml"));
    let Ok(inv) = Inventory::from_text(path, text) else {
        return;
    };
    for h in &inv.hosts {
        let _ = inv.var_layers(&h.name);
        let _ = inv.groups_of(&h.name);
    }
    for g in inv.groups.keys() {
        let _ = inv.members(g);
        let _ = inv.select(&format!("all:!{g}"));
    }
    let _ = inv.select("all:&h*");
    let _ = apim_provision::lint::literal_secrets(&inv, true);
});
