//! C2SP signed notes (custody-log's `note`): the note parser, opening a
//! note against the trusted log key, verifier keys (`--key`, `--witness`)
//! and signature lines, with arbitrary bytes.
#![no_main]

use custody_fuzz::trusted_keys;
use custody_log::{open_note, Note, NoteSignature, VerifierKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(note) = Note::parse(data) {
        let _ = note.text();
        let _ = note.to_signed_string();
        let _ = note.verify(trusted_keys());
    }
    let _ = open_note(data, trusted_keys());
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = VerifierKey::parse(text);
        let _ = NoteSignature::parse_line(text);
        let _ = custody_log::note::is_valid_key_name(text);
    }
});
