//! The C2SP witness protocol (custody-log's `witness` and `cosignature`):
//! an `add-checkpoint` request body and the witness's decision on it
//! against the trusted log key (with no stored size, and with one), the
//! witness's answers (a size body, signature lines), cosignature lines and
//! cosigner keys. The first byte picks the parser.
#![no_main]

use custody_fuzz::{split_selector, trusted_keys};
use custody_log::cosignature::{Cosignature, CosignatureVerifier, CosignerKey};
use custody_log::witness::{
    decide, parse_signatures, parse_size_body, AddCheckpoint, WitnessedSize,
};
use custody_log::Note;
use libfuzzer_sys::fuzz_target;

/// The witness the cosignature checks run against.
fn witness() -> CosignatureVerifier {
    CosignerKey::from_seed("witness.example", &[7; 32])
        .expect("a valid cosigner name")
        .verifier()
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, input)) = split_selector(data) else {
        return;
    };
    match selector % 4 {
        0 => {
            if let Ok(request) = AddCheckpoint::parse(input) {
                let _ = request.to_body();
                let _ = decide(&request, trusted_keys(), None);
                let size = request.checkpoint().size();
                let root = *request.checkpoint().root_hash();
                for stored in [size, size / 2, request.old_size()] {
                    let _ = decide(
                        &request,
                        trusted_keys(),
                        Some(WitnessedSize { size: stored, root }),
                    );
                }
            }
        }
        1 => {
            let _ = parse_size_body(input);
            if let Ok(lines) = parse_signatures(input) {
                let _ = custody_log::witness::cosignature_of(&witness(), "origin\n1\n", &lines);
            }
        }
        2 => {
            if let Ok(text) = std::str::from_utf8(input) {
                if let Ok(cosignature) = Cosignature::parse_line(text) {
                    let _ = cosignature.to_note_signature();
                }
                let _ = CosignatureVerifier::parse(text);
            }
        }
        _ => {
            if let Ok(note) = Note::parse(input) {
                let _ = witness().verify_note(&note);
            }
        }
    }
});
