//! Decode, then encode, is the identity: for every format whose parser
//! accepts only its one encoding, a value parsed from `x` encodes back to
//! `x` byte for byte. The first byte picks the format:
//! `e` event (canonical bytes), `c` checkpoint body, `n` signed note,
//! `t` tlog-proof, `w` witness add-checkpoint body, `s` note signature
//! line, `k` verifier key, `o` cosignature line.
#![no_main]

use custody_fuzz::split_selector;
use custody_log::cosignature::Cosignature;
use custody_log::witness::AddCheckpoint;
use custody_log::{Checkpoint, Note, NoteSignature, TlogProof, VerifierKey};
use libfuzzer_sys::fuzz_target;

fn same(kind: &str, input: &[u8], encoded: &[u8]) {
    assert!(
        input == encoded,
        "{kind}: decode then encode changed the bytes\n input: {:?}\noutput: {:?}",
        String::from_utf8_lossy(input),
        String::from_utf8_lossy(encoded)
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, input)) = split_selector(data) else {
        return;
    };
    let text = std::str::from_utf8(input).ok();
    match selector {
        b'e' => {
            if let Ok(event) = custody_core::Event::decode(input) {
                same("event", input, &event.canonical_bytes());
            }
        }
        b'c' => {
            if let Some(Ok(checkpoint)) = text.map(Checkpoint::parse) {
                same("checkpoint", input, checkpoint.to_text().as_bytes());
            }
        }
        b'n' => {
            if let Ok(note) = Note::parse(input) {
                if let Ok(encoded) = note.to_signed_string() {
                    same("note", input, encoded.as_bytes());
                }
            }
        }
        b't' => {
            if let Ok(proof) = TlogProof::parse(input) {
                same("tlog-proof", input, proof.to_text().as_bytes());
            }
        }
        b'w' => {
            if let Ok(request) = AddCheckpoint::parse(input) {
                same("add-checkpoint", input, request.to_body().as_bytes());
            }
        }
        b's' => {
            if let Some(Ok(signature)) = text.map(NoteSignature::parse_line) {
                let line = signature.to_line();
                same(
                    "signature line",
                    input,
                    line.trim_end_matches('\n').as_bytes(),
                );
            }
        }
        b'k' => {
            if let Some(Ok(key)) = text.map(VerifierKey::parse) {
                same("verifier key", input, key.to_string().as_bytes());
            }
        }
        b'o' => {
            if let Some(Ok(cosignature)) = text.map(Cosignature::parse_line) {
                let line = cosignature.to_line();
                same(
                    "cosignature line",
                    input,
                    line.trim_end_matches('\n').as_bytes(),
                );
            }
        }
        _ => {}
    }
});
