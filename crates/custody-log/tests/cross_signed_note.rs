//! Cross-checks our signed notes and checkpoints against the independent
//! `signed_note` crate (a Rust port of Go's sumdb/note).

#![allow(clippy::unwrap_used)]

use custody_log::{verify_checkpoint, Checkpoint, Note, SignerKey};
use proptest::prelude::*;
use signed_note::{
    Note as TheirNote, Signer as _, StandardSigner, StandardVerifier, Verifier as _, VerifierList,
};

fn their_verifiers(vkeys: &[String]) -> VerifierList {
    VerifierList::new(
        vkeys
            .iter()
            .map(|k| Box::new(StandardVerifier::new(k).unwrap()) as Box<dyn signed_note::Verifier>)
            .collect(),
    )
}

/// Key names as logs use them: schema-less URLs.
fn origin() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,12}\\.[a-z]{2,6}(/[a-zA-Z0-9._-]{1,16}){0,2}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn signed_note_accepts_our_signed_checkpoints(
        origin in origin(),
        seed in any::<[u8; 32]>(),
        witness_seed in any::<[u8; 32]>(),
        size in any::<u64>(),
        root in any::<[u8; 32]>(),
    ) {
        let log = SignerKey::from_seed(&origin, &seed).unwrap();
        let witness = SignerKey::from_seed("witness.example/w1", &witness_seed).unwrap();
        let checkpoint = Checkpoint::new(&origin, size, root).unwrap();
        let signed = checkpoint.sign(&[&log, &witness]).unwrap();

        // They parse our note and verify both signatures with our key strings.
        let their_note = TheirNote::from_bytes(signed.as_bytes()).unwrap();
        prop_assert_eq!(their_note.text().to_vec(), checkpoint.to_text().into_bytes());
        let vkeys = [log.verifier_key().to_string(), witness.verifier_key().to_string()];
        let (verified, unverified) = their_note.verify(&their_verifiers(&vkeys)).unwrap();
        prop_assert_eq!(verified.len(), 2);
        prop_assert!(unverified.is_empty());
        // With only the log key, the witness signature is merely unknown.
        let (verified, unverified) = their_note
            .verify(&their_verifiers(&vkeys[..1]))
            .unwrap();
        prop_assert_eq!(verified.len(), 1);
        prop_assert_eq!(unverified.len(), 1);
        // Their formatting of our note is byte-identical.
        prop_assert_eq!(their_note.to_bytes(), signed.as_bytes());

        // Our own verification agrees.
        let ours = verify_checkpoint(signed.as_bytes(), &[log.verifier_key()]).unwrap();
        prop_assert_eq!(ours.checkpoint(), &checkpoint);
    }

    #[test]
    fn key_strings_and_signatures_agree(
        origin in origin(),
        seed in any::<[u8; 32]>(),
        text in "([ -~]{0,40}\n){1,4}",
    ) {
        let ours = SignerKey::from_seed(&origin, &seed).unwrap();
        // They load our secret and public key strings, with the same key ID.
        let their_signer = StandardSigner::new(&ours.to_secret_string()).unwrap();
        let their_verifier = StandardVerifier::new(&ours.verifier_key().to_string()).unwrap();
        prop_assert_eq!(their_signer.key_id(), ours.key_id());
        prop_assert_eq!(their_verifier.key_id(), ours.key_id());
        prop_assert_eq!(
            signed_note::key_id(&origin, &[&[1u8][..], &ours.verifier_key().public_key()].concat()),
            ours.key_id()
        );

        // Ed25519 is deterministic: both produce the same signed note.
        let mut their_note = TheirNote::new(text.as_bytes(), &[]).unwrap();
        their_note.add_sigs(&[&their_signer]).unwrap();
        let theirs = their_note.to_bytes();
        let ours_signed = custody_log::sign_note(&text, &[&ours]).unwrap();
        prop_assert_eq!(&theirs, &ours_signed.as_bytes().to_vec());

        // We accept what they sign and they accept what we sign.
        prop_assert!(custody_log::open_note(&theirs, &[ours.verifier_key()]).is_ok());
        prop_assert!(their_verifier.verify(text.as_bytes(), &ours.sign(text.as_bytes())));
    }

    #[test]
    fn both_reject_tampered_checkpoints(
        seed in any::<[u8; 32]>(),
        size in any::<u64>(),
        root in any::<[u8; 32]>(),
        pick in any::<prop::sample::Index>(),
    ) {
        let origin = "custody.example/log";
        let log = SignerKey::from_seed(origin, &seed).unwrap();
        let signed = Checkpoint::new(origin, size, root).unwrap().sign(&[&log]).unwrap();
        let text_len = signed.find("\n\n").unwrap();
        // Change one ASCII character of the checkpoint text (not a newline).
        let pos = pick.index(text_len);
        let mut bytes = signed.clone().into_bytes();
        prop_assume!(bytes[pos] != b'\n');
        bytes[pos] = if bytes[pos] == b'a' { b'b' } else { b'a' };
        let vkeys = [log.verifier_key().to_string()];
        let theirs_ok = TheirNote::from_bytes(&bytes)
            .map(|n| n.verify(&their_verifiers(&vkeys)).is_ok())
            .unwrap_or(false);
        prop_assert!(!theirs_ok);
        prop_assert!(verify_checkpoint(&bytes, &[log.verifier_key()]).is_err());
        // Parsing alone may well succeed: only verification must fail.
        let _ = Note::parse(&bytes);
    }
}
