//! Checkpoints held outside the database (`custody verify --checkpoints
//! FILE|DIR`, the data directory's `checkpoints` file): custody-store's
//! `checkpoint_file::parse`, then every note it yields verified against the
//! trusted key as `verify` does. A note framed by `frame` parses back to
//! itself.
#![no_main]

use custody_fuzz::trusted_keys;
use custody_log::verify_checkpoint;
use custody_store::checkpoint_file::{frame, parse, BEGIN_LINE, END_LINE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse(text);
    for note in &parsed.notes {
        let _ = verify_checkpoint(note.as_bytes(), trusted_keys());
    }
    // A note that holds no frame line of its own survives framing.
    if !text.trim().is_empty()
        && !text
            .lines()
            .any(|line| line == BEGIN_LINE || line == END_LINE)
    {
        let framed = parse(&frame(text));
        let expected = if text.ends_with('\n') {
            text.to_string()
        } else {
            format!("{text}\n")
        };
        assert_eq!(
            framed.notes,
            vec![expected],
            "a framed note did not parse back"
        );
        assert_eq!(framed.torn, 0);
    }
});
