//! The probe-answer parser: any bytes as what a host printed for a batch of probes (the first byte
//! says how many probes the batch had), split per probe into facts, statuses and messages. A host's
//! output is not trusted: it must never panic the controller.
#![no_main]

use apim_provision::transport::{parse_answers, Output};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let out = Output {
        status: i32::from(count >> 4) - 1,
        stdout: rest.to_vec(),
        stderr: rest.iter().rev().copied().collect(),
    };
    for a in parse_answers(&out, "n", usize::from(count & 0x0f)) {
        for (k, _) in a.facts.iter() {
            let _ = a.facts.bytes(k);
        }
    }
});
