//! C2SP tlog-proofs (custody-log's `tlog_proof`): the parser and the
//! offline check against the trusted log key. The input is the proof text,
//! then optionally a NUL byte and the leaf bytes it should prove.
#![no_main]

use custody_fuzz::trusted_keys;
use custody_log::TlogProof;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (proof, leaf) = match data.iter().position(|byte| *byte == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(parsed) = TlogProof::parse(proof) {
        let _ = parsed.to_text();
        let _ = parsed.verify(leaf, trusted_keys());
    }
});
