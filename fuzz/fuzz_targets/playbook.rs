//! Any bytes as a playbook: loading (plays, tasks, includes of the shipped modules, `loop:`, `when:`,
//! `serial:`) must return the playbook or a located error, never panic nor overflow the stack.
#![no_main]

use apim_provision::model::playbook::LoopVars;
use apim_provision::model::Playbook;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // In the shipped playbooks' directory, so that `include: NAME` finds the shipped modules.
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../playbooks/fuzz.yaml"));
    let _ = Playbook::from_text(path, text, &[], &LoopVars::default());
});
