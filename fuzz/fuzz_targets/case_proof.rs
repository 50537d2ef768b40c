//! Case proofs (`custody log verify-proof FILE`, custody-core's `proof`):
//! the JSON bundle read as the CLI reads it, then verified offline against
//! the trusted log key (the seed was made by `custody log prove` under it,
//! so mutations reach the per-event checks: tlog-proofs, canonical leaves,
//! the case's chain and lifecycle).
#![no_main]

use custody_core::proof::CaseProofBundle;
use custody_fuzz::trusted_keys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = serde_json::from_slice::<CaseProofBundle>(data) {
        if let Ok(verified) = bundle.verify(trusted_keys()) {
            let _ = format!("{verified:?}");
        }
        let _ = bundle.verify(&[]);
    }
});
