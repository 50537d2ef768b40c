//! C2SP checkpoints (custody-log's `checkpoint`): the body parser and the
//! signed checkpoint's verification against the trusted log key (the seed
//! is signed by it, so mutations reach the body checks behind the
//! signature), then a consistency check against the seed's own tree size.
#![no_main]

use custody_fuzz::trusted_keys;
use custody_log::{verify_checkpoint, Checkpoint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(checkpoint) = Checkpoint::parse(text) {
            let _ = checkpoint.to_text();
        }
    }
    if let Ok(verified) = verify_checkpoint(data, trusted_keys()) {
        let size = verified.size();
        let root = *verified.root_hash();
        let _ = verified.verify_consistency_from(verified.checkpoint(), &[]);
        if let Ok(older) = Checkpoint::new(verified.origin(), size / 2, root) {
            let _ = verified.verify_consistency_from(&older, &[root, root]);
        }
    }
});
