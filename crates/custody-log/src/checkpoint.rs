//! C2SP checkpoints (<https://c2sp.org/tlog-checkpoint>).
//!
//! A checkpoint is a signed note whose text is:
//!
//! ```text
//! <origin>
//! <tree size, ASCII decimal, no leading zeroes>
//! <root hash, standard base64>
//! [extension lines, each non-empty]
//! ```
//!
//! [`Checkpoint`] parses and formats that text. [`verify_checkpoint`] is the
//! only way to obtain a [`VerifiedCheckpoint`], and it applies this policy:
//! the note must verify against the trusted keys (see [`Note::verify`]), and
//! **the origin line must equal the name of a trusted key whose signature
//! verified**. The spec says the log's key name SHOULD match the origin;
//! requiring it binds the tree head to the log's own key, so a trusted
//! witness key alone can never vouch for a checkpoint.

use std::fmt;

use crate::encoding::{b64_decode_hash, b64_encode, parse_canonical_u64};
use crate::merkle::{verify_consistency, Hash, MerkleError};
use crate::note::{Note, NoteError, SignerKey, VerifiedNote, VerifierKey};

/// Errors of checkpoint parsing, signing and verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The signed note is malformed or fails verification.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The text has fewer than three lines or does not end in a newline.
    #[error("checkpoint text must have origin, size and root hash lines")]
    MissingLines,
    /// The origin line is empty.
    #[error("checkpoint origin is empty")]
    EmptyOrigin,
    /// An origin or extension line contains a newline or control character.
    #[error("checkpoint line contains a control character")]
    ControlCharacter,
    /// The size line is not a canonical ASCII decimal `u64`.
    #[error("checkpoint tree size is not a canonical decimal")]
    InvalidSize,
    /// The root hash line is not base64 of exactly 32 bytes.
    #[error("checkpoint root hash is not base64 of 32 bytes")]
    InvalidRootHash,
    /// An extension line is empty.
    #[error("checkpoint extension line is empty")]
    EmptyExtensionLine,
    /// No trusted key named like the origin signed the checkpoint.
    #[error("checkpoint for origin {origin:?} is not signed by a trusted key of that name")]
    OriginNotSigned {
        /// The checkpoint's origin line.
        origin: String,
    },
    /// Two checkpoints compared for consistency have different origins.
    #[error("checkpoints have different origins")]
    OriginMismatch,
    /// A consistency check between two checkpoints failed.
    #[error(transparent)]
    Inconsistent(#[from] MerkleError),
}

/// The body of a checkpoint: a log's origin, tree size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root_hash: Hash,
    extensions: Vec<String>,
}

/// A checkpoint whose signature has been verified by [`verify_checkpoint`],
/// the only function that constructs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    checkpoint: Checkpoint,
    note: VerifiedNote,
}

/// Parses a signed checkpoint and verifies it against the trusted keys.
///
/// Succeeds only if the note verifies (no trusted signature fails, at least
/// one succeeds) and one of the verified signatures is by a key named
/// exactly like the origin line.
///
/// # Errors
///
/// [`CheckpointError::Note`] for a malformed or unverifiable note, a body
/// error, or [`CheckpointError::OriginNotSigned`].
pub fn verify_checkpoint(
    signed: &[u8],
    trusted: &[VerifierKey],
) -> Result<VerifiedCheckpoint, CheckpointError> {
    let note = Note::parse(signed)?;
    verify_checkpoint_note(&note, trusted)
}

impl Checkpoint {
    /// Creates a checkpoint without extension lines.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::EmptyOrigin`] or [`CheckpointError::ControlCharacter`].
    pub fn new(origin: &str, size: u64, root_hash: Hash) -> Result<Self, CheckpointError> {
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        check_line(origin)?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root_hash,
            extensions: Vec::new(),
        })
    }

    /// Replaces the extension lines. Their use is NOT RECOMMENDED by the spec
    /// because monitors cannot audit them.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::EmptyExtensionLine`] or
    /// [`CheckpointError::ControlCharacter`].
    pub fn with_extensions(mut self, extensions: Vec<String>) -> Result<Self, CheckpointError> {
        for line in &extensions {
            if line.is_empty() {
                return Err(CheckpointError::EmptyExtensionLine);
            }
            check_line(line)?;
        }
        self.extensions = extensions;
        Ok(self)
    }

    /// Parses a checkpoint note text (the part of the note before the blank
    /// line, final newline included).
    ///
    /// # Errors
    ///
    /// [`CheckpointError::MissingLines`], [`CheckpointError::EmptyOrigin`],
    /// [`CheckpointError::InvalidSize`], [`CheckpointError::InvalidRootHash`],
    /// [`CheckpointError::EmptyExtensionLine`] or
    /// [`CheckpointError::ControlCharacter`].
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingLines)?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::MissingLines);
        };
        let checkpoint = Self::new(origin, 0, [0; 32])?;
        let size = parse_canonical_u64(size).ok_or(CheckpointError::InvalidSize)?;
        let root_hash = b64_decode_hash(root).ok_or(CheckpointError::InvalidRootHash)?;
        let extensions = lines.map(str::to_owned).collect();
        Self {
            size,
            root_hash,
            ..checkpoint
        }
        .with_extensions(extensions)
    }

    /// The origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root hash of the tree of that size.
    pub fn root_hash(&self) -> &Hash {
        &self.root_hash
    }

    /// The extension lines, usually none.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The note text: origin, size, base64 root and extension lines, each
    /// ending in a newline.
    pub fn to_text(&self) -> String {
        self.to_string()
    }

    /// Signs the checkpoint text with every signer and returns the signed
    /// note. The log's own key should be named like the origin, or
    /// [`verify_checkpoint`] will reject the result.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Note`] (for example no signers).
    pub fn sign(&self, signers: &[&SignerKey]) -> Result<String, CheckpointError> {
        Ok(crate::note::sign_note(&self.to_text(), signers)?)
    }
}

impl fmt::Display for Checkpoint {
    /// Writes the checkpoint note text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.origin)?;
        writeln!(f, "{}", self.size)?;
        writeln!(f, "{}", b64_encode(&self.root_hash))?;
        for line in &self.extensions {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

impl VerifiedCheckpoint {
    /// The verified checkpoint body.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The origin line.
    pub fn origin(&self) -> &str {
        self.checkpoint.origin()
    }

    /// The tree size.
    pub fn size(&self) -> u64 {
        self.checkpoint.size()
    }

    /// The root hash.
    pub fn root_hash(&self) -> &Hash {
        self.checkpoint.root_hash()
    }

    /// The verified note, with its verified and unverified signatures
    /// (unverified ones include witness cosignatures of other types).
    pub fn note(&self) -> &VerifiedNote {
        &self.note
    }

    /// Checks that `older` (same origin, not larger) is a prefix of this
    /// checkpoint's tree, given a consistency proof between the two sizes.
    /// Size 0 to a non-zero size is rejected (see the crate docs).
    ///
    /// # Errors
    ///
    /// [`CheckpointError::OriginMismatch`] or [`CheckpointError::Inconsistent`].
    pub fn verify_consistency_from(
        &self,
        older: &Checkpoint,
        proof: &[Hash],
    ) -> Result<(), CheckpointError> {
        if older.origin != self.checkpoint.origin {
            return Err(CheckpointError::OriginMismatch);
        }
        verify_consistency(
            older.size,
            self.checkpoint.size,
            &older.root_hash,
            &self.checkpoint.root_hash,
            proof,
        )?;
        Ok(())
    }
}

/// Verifies an already parsed checkpoint note; shared with tlog proofs.
pub(crate) fn verify_checkpoint_note(
    note: &Note,
    trusted: &[VerifierKey],
) -> Result<VerifiedCheckpoint, CheckpointError> {
    // Parse the body first: a malformed body is reported as such even when
    // no trusted key signed it.
    let checkpoint = Checkpoint::parse(note.text())?;
    let verified = note.verify(trusted)?;
    let origin_signed = verified
        .verified_signatures()
        .iter()
        .any(|s| s.name() == checkpoint.origin);
    if !origin_signed {
        return Err(CheckpointError::OriginNotSigned {
            origin: checkpoint.origin,
        });
    }
    Ok(VerifiedCheckpoint {
        checkpoint,
        note: verified,
    })
}

fn check_line(line: &str) -> Result<(), CheckpointError> {
    if line.bytes().any(|b| b < 0x20) {
        return Err(CheckpointError::ControlCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;
    use crate::tree::MemoryTree;

    fn log_key() -> SignerKey {
        SignerKey::from_seed("example.com/log", &[4; 32]).unwrap()
    }

    #[test]
    fn format_parse_round_trip() {
        let cp = Checkpoint::new("example.com/log", 20852163, [9; 32]).unwrap();
        let text = cp.to_text();
        assert_eq!(
            text,
            "example.com/log\n20852163\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n"
        );
        assert_eq!(Checkpoint::parse(&text).unwrap(), cp);
        let ext = cp
            .clone()
            .with_extensions(vec!["ext one".into(), "two".into()])
            .unwrap();
        assert_eq!(Checkpoint::parse(&ext.to_text()).unwrap(), ext);
    }

    #[test]
    fn malformed_bodies_are_rejected() {
        let root = b64_encode(&[1; 32]);
        for bad in [
            String::new(),
            "o\n1\n".into(),
            format!("o\n1\n{root}"),
            format!("\n1\n{root}\n"),
            format!("o\n01\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            format!("o\n1\n{}\n", &root[1..]),
            format!("o\n1\n{}\n", b64_encode(&[1; 31])),
            format!("o\n1\n{root}\n\n"),
            format!("o\n1\n{root}\next\n\n"),
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn verification_policy() {
        let key = log_key();
        let mut tree = MemoryTree::new();
        tree.append_leaf_hash(leaf_hash(b"a"));
        let cp = Checkpoint::new("example.com/log", 1, tree.root()).unwrap();
        let signed = cp.sign(&[&key]).unwrap();
        let verified = verify_checkpoint(signed.as_bytes(), &[key.verifier_key()]).unwrap();
        assert_eq!(verified.checkpoint(), &cp);

        // Signed by a trusted key whose name is not the origin.
        let witness = SignerKey::from_seed("witness.example", &[5; 32]).unwrap();
        let signed = cp.sign(&[&witness]).unwrap();
        assert!(matches!(
            verify_checkpoint(signed.as_bytes(), &[witness.verifier_key()]),
            Err(CheckpointError::OriginNotSigned { .. })
        ));
        // Untrusted key.
        let signed = cp.sign(&[&key]).unwrap();
        assert!(matches!(
            verify_checkpoint(signed.as_bytes(), &[witness.verifier_key()]),
            Err(CheckpointError::Note(NoteError::NoTrustedSignature))
        ));
    }

    #[test]
    fn consistency_between_checkpoints() {
        let key = log_key();
        let mut tree = MemoryTree::new();
        for i in 0..10u8 {
            tree.append_data(&[i]);
        }
        let old = Checkpoint::new("example.com/log", 4, tree.root_at(4).unwrap()).unwrap();
        let new = Checkpoint::new("example.com/log", 10, tree.root()).unwrap();
        let verified =
            verify_checkpoint(new.sign(&[&key]).unwrap().as_bytes(), &[key.verifier_key()])
                .unwrap();
        let proof = tree.consistency_proof(4, 10).unwrap();
        assert_eq!(verified.verify_consistency_from(&old, &proof), Ok(()));
        assert!(verified.verify_consistency_from(&old, &proof[1..]).is_err());
        let other = Checkpoint::new("other", 4, *old.root_hash()).unwrap();
        assert_eq!(
            verified.verify_consistency_from(&other, &proof),
            Err(CheckpointError::OriginMismatch)
        );
    }
}
