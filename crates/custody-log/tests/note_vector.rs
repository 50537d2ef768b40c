//! The C2SP signed-note reference vector from golang.org/x/mod sumdb/note,
//! read in place from `shared/testdata/signed-note.json`.

use std::fs;
use std::path::Path;

use custody_log::note::{key_id, NoteError};
use custody_log::{open_note, sign_note, Note, SignerKey, VerifierKey};
use serde_json::Value;

struct Vector {
    verifier_key: String,
    signer_key: String,
    text: String,
    signed_note: String,
}

fn vector() -> Vector {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/signed-note.json");
    let v: Value = serde_json::from_str(&fs::read_to_string(&path).expect("signed-note.json"))
        .expect("valid JSON");
    let field = |name: &str| v[name].as_str().expect(name).to_owned();
    Vector {
        verifier_key: field("verifier_key"),
        signer_key: field("signer_key"),
        text: field("text"),
        signed_note: field("signed_note"),
    }
}

#[test]
fn signing_reproduces_the_note_byte_for_byte() {
    let v = vector();
    let signer = SignerKey::parse(&v.signer_key).unwrap();
    assert_eq!(sign_note(&v.text, &[&signer]).unwrap(), v.signed_note);
    // The key strings round-trip exactly too.
    assert_eq!(signer.to_secret_string().as_str(), v.signer_key);
    assert_eq!(signer.verifier_key().to_string(), v.verifier_key);
    assert_eq!(
        VerifierKey::parse(&v.verifier_key).unwrap(),
        signer.verifier_key()
    );
    assert_eq!(signer.key_id(), 0xc74f20a3);
    assert_eq!(
        key_id("PeterNeumann", &signer.verifier_key().public_key()),
        0xc74f20a3
    );
}

#[test]
fn verifying_with_the_verifier_key_succeeds() {
    let v = vector();
    let verifier = VerifierKey::parse(&v.verifier_key).unwrap();
    let verified = open_note(v.signed_note.as_bytes(), &[verifier]).unwrap();
    assert_eq!(verified.text(), v.text);
    assert_eq!(verified.verified_signatures().len(), 1);
    assert!(verified.is_signed_by("PeterNeumann", 0xc74f20a3));
    // Parsing and re-formatting is the identity.
    let note = Note::parse(v.signed_note.as_bytes()).unwrap();
    assert_eq!(note.to_signed_string().unwrap(), v.signed_note);
}

#[test]
fn tampered_text_fails() {
    let v = vector();
    let verifier = VerifierKey::parse(&v.verifier_key).unwrap();
    let tampered = v.signed_note.replacen("answer", "Answer", 1);
    assert!(matches!(
        open_note(tampered.as_bytes(), std::slice::from_ref(&verifier)),
        Err(NoteError::InvalidSignature { .. })
    ));
    let tampered = v.signed_note.replacen("is.\n", "is!\n", 1);
    assert!(matches!(
        open_note(tampered.as_bytes(), &[verifier]),
        Err(NoteError::InvalidSignature { ref name, key_id })
            if name == "PeterNeumann" && key_id == 0xc74f20a3
    ));
}

#[test]
fn tampered_signature_fails() {
    let v = vector();
    let verifier = VerifierKey::parse(&v.verifier_key).unwrap();
    let (text, sig_line) = v.signed_note.rsplit_once("\n\n").unwrap();
    let b64 = sig_line.trim_end().rsplit_once(' ').unwrap().1;
    // Flip every base64 character of the signature part (after the 4-byte
    // key ID, i.e. from character 8 on) in turn to a different valid one.
    let mut rejected = 0;
    for pos in 8..b64.len() {
        let c = b64.as_bytes()[pos];
        if c == b'=' {
            continue;
        }
        let replacement = if c == b'A' { 'B' } else { 'A' };
        let mut mutated = b64.to_string();
        mutated.replace_range(pos..pos + 1, &replacement.to_string());
        let note = format!("{text}\n\n\u{2014} PeterNeumann {mutated}\n");
        let error = open_note(note.as_bytes(), std::slice::from_ref(&verifier))
            .err()
            .unwrap_or_else(|| panic!("accepted mutation at {pos}"));
        // The signature no longer verifies; only a change to the last
        // character's padding bits (the signature is 68 bytes, so the last
        // character before `=` carries two unused bits) makes the base64
        // non-canonical, which is refused before any signature is checked.
        let padding_bits_set = pos == b64.len() - 2 && replacement == 'B';
        if padding_bits_set {
            assert_eq!(error, NoteError::InvalidBase64, "mutation at {pos}");
        } else {
            assert_eq!(
                error,
                NoteError::InvalidSignature {
                    name: "PeterNeumann".to_string(),
                    key_id: 0xc74f20a3
                },
                "mutation at {pos}"
            );
        }
        rejected += 1;
    }
    assert!(rejected > 80);
}

#[test]
fn wrong_or_unknown_keys_fail() {
    let v = vector();
    let other = SignerKey::from_seed("PeterNeumann", &[1; 32]).unwrap();
    assert!(matches!(
        open_note(v.signed_note.as_bytes(), &[other.verifier_key()]),
        Err(NoteError::NoTrustedSignature)
    ));
    assert!(matches!(
        open_note(v.signed_note.as_bytes(), &[]),
        Err(NoteError::NoTrustedSignature)
    ));
    // A verifier key string with a wrong key ID is refused outright.
    let bad = v.verifier_key.replacen("c74f20a3", "c74f20a4", 1);
    assert_eq!(VerifierKey::parse(&bad), Err(NoteError::KeyIdMismatch));
    let bad = v.signer_key.replacen("c74f20a3", "c74f20a4", 1);
    assert!(matches!(
        SignerKey::parse(&bad),
        Err(NoteError::KeyIdMismatch)
    ));
}

#[test]
fn extra_unknown_signatures_are_ignored() {
    let v = vector();
    let verifier = VerifierKey::parse(&v.verifier_key).unwrap();
    let witness = SignerKey::from_seed("witness.example", &[2; 32]).unwrap();
    let mut note = Note::parse(v.signed_note.as_bytes()).unwrap();
    note.sign(&witness).unwrap();
    let signed = note.to_signed_string().unwrap();
    let verified = open_note(signed.as_bytes(), &[verifier]).unwrap();
    assert_eq!(verified.unverified_signatures().len(), 1);
    assert_eq!(
        verified.unverified_signatures()[0].name(),
        "witness.example"
    );
}
