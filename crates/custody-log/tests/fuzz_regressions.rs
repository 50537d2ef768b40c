//! Inputs the fuzz targets of `fuzz/` found (docs/fuzzing.md), each with
//! the answer the parser must give. The bytes are the crash files'.

use custody_log::cosignature::CosignatureVerifier;
use custody_log::{NoteError, SignerKey, VerifierKey};

/// `roundtrip` (fuzz/artifacts/roundtrip/crash-d9e1e252...): a verifier key
/// whose key ID is written with an uppercase hex digit parsed, and printed
/// back in lowercase, so the key read was not the text given. The key ID
/// has one spelling now, lowercase, as `Display` writes it.
#[test]
fn a_key_id_with_uppercase_hex_is_refused() {
    let given = "fuzz.custody.example/log+0d3426dC+AUltasKJ7QMm/G7799L1xj61f9ce+qw+M84YzxpM7mF/";
    let error = VerifierKey::parse(given).expect_err("uppercase key ID");
    assert!(
        matches!(
            error,
            NoteError::MalformedKey {
                reason: "key ID must be 8 lowercase hex digits"
            }
        ),
        "{error:?}"
    );
    let lowercase = given.replace("0d3426dC", "0d3426dc");
    let key = VerifierKey::parse(&lowercase).expect("the same key in lowercase");
    assert_eq!(key.to_string(), lowercase);
}

/// The same rule for every key text that carries a key ID: a witness's
/// cosigner key.
#[test]
fn a_cosigner_key_id_with_uppercase_hex_is_refused() {
    // The first seed whose key ID has a letter in it, so uppercase differs.
    let (verifier, name, id, key) = (1..=u8::MAX)
        .find_map(|seed| {
            let verifier = custody_log::CosignerKey::from_seed("witness.example", &[seed; 32])
                .expect("a valid name")
                .verifier()
                .to_string();
            let mut parts = verifier.splitn(3, '+');
            let (name, id, key) = (parts.next()?, parts.next()?, parts.next()?);
            id.bytes().any(|byte| byte.is_ascii_lowercase()).then(|| {
                (
                    verifier.clone(),
                    name.to_string(),
                    id.to_string(),
                    key.to_string(),
                )
            })
        })
        .expect("some seed gives a key ID with a letter");
    assert!(CosignatureVerifier::parse(&verifier).is_ok(), "{verifier}");
    let upper = format!("{name}+{}+{key}", id.to_ascii_uppercase());
    assert!(CosignatureVerifier::parse(&upper).is_err(), "{upper}");
    // A log's own key, as its signer prints it, keeps parsing.
    let signer = SignerKey::from_seed("fuzz.example/log", &[9; 32]).expect("a valid name");
    let text = signer.verifier_key().to_string();
    assert_eq!(
        VerifierKey::parse(&text).expect("lowercase").to_string(),
        text
    );
}
