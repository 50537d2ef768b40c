//! C2SP offline transparency log proofs (<https://c2sp.org/tlog-proof>).
//!
//! Layout, every line ending in a newline (U+000A):
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 opaque data>          (optional, at most one line)
//! index <leaf index, ASCII decimal, no leading zeroes>
//! <base64 inclusion proof hash>       (zero or more, leaf's sibling first)
//!
//! <signed checkpoint note, verbatim>
//! ```
//!
//! The extra data is not authenticated; applications must not trust it.
//! [`TlogProof::verify`] verifies the checkpoint with
//! [`crate::checkpoint::verify_checkpoint`]'s policy, then the inclusion of
//! `leaf_hash(leaf)` at the index in that checkpoint's tree.

use std::fmt;

use crate::checkpoint::{verify_checkpoint_note, Checkpoint, CheckpointError, VerifiedCheckpoint};
use crate::encoding::{b64_decode, b64_decode_hash, b64_encode, parse_canonical_u64};
use crate::merkle::{leaf_hash, verify_inclusion, Hash, MerkleError};
use crate::note::{Note, VerifierKey, MAX_NOTE_SIZE};

/// The first line of every proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Most inclusion proof hashes a proof may carry: a tree of at most
/// `u64::MAX` leaves has at most 64 levels.
pub const MAX_PROOF_HASHES: usize = 64;

/// Largest proof text, in bytes, that parsing accepts: a maximal note plus
/// the proof lines.
pub const MAX_PROOF_SIZE: usize = MAX_NOTE_SIZE + 64 * 1024;

/// Errors of tlog proof parsing and verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogProofError {
    /// The proof is larger than [`MAX_PROOF_SIZE`].
    #[error("proof is {size} bytes, more than the {max} accepted")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The proof is not valid UTF-8.
    #[error("proof is not valid UTF-8")]
    NotUtf8,
    /// The first line is not `c2sp.org/tlog-proof@v1`.
    #[error("proof does not start with {TLOG_PROOF_HEADER}")]
    InvalidHeader,
    /// The `extra` line's data is not canonical base64.
    #[error("proof extra data is not valid base64")]
    InvalidExtra,
    /// The `index N` line is missing or not a canonical decimal.
    #[error("proof index line is missing or malformed")]
    InvalidIndex,
    /// An inclusion proof line is not base64 of exactly 32 bytes.
    #[error("inclusion proof line {line} is not base64 of 32 bytes")]
    InvalidProofHash {
        /// 1-based line number in the proof text.
        line: usize,
    },
    /// More than [`MAX_PROOF_HASHES`] proof hashes.
    #[error("proof has more than {max} hashes")]
    TooManyProofHashes {
        /// The limit.
        max: usize,
    },
    /// The text ends before the blank line and checkpoint.
    #[error("proof ends before its checkpoint")]
    MissingCheckpoint,
    /// The embedded checkpoint is malformed or does not verify.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The inclusion proof does not verify against the checkpoint.
    #[error(transparent)]
    Inclusion(#[from] MerkleError),
}

/// A parsed, not yet verified, tlog proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    extra: Option<Vec<u8>>,
    index: u64,
    inclusion_proof: Vec<Hash>,
    signed_checkpoint: String,
    note: Note,
    checkpoint: Checkpoint,
}

impl TlogProof {
    /// Assembles a proof from a leaf index, its inclusion proof and the
    /// signed checkpoint (the full signed note, kept verbatim).
    ///
    /// # Errors
    ///
    /// [`TlogProofError::TooManyProofHashes`], or
    /// [`TlogProofError::Checkpoint`] if the checkpoint is not a well-formed
    /// signed checkpoint note (its signatures are not verified here).
    pub fn new(
        index: u64,
        inclusion_proof: Vec<Hash>,
        signed_checkpoint: &str,
    ) -> Result<Self, TlogProofError> {
        if inclusion_proof.len() > MAX_PROOF_HASHES {
            return Err(TlogProofError::TooManyProofHashes {
                max: MAX_PROOF_HASHES,
            });
        }
        let note = Note::parse(signed_checkpoint.as_bytes()).map_err(CheckpointError::from)?;
        let checkpoint = Checkpoint::parse(note.text())?;
        Ok(Self {
            extra: None,
            index,
            inclusion_proof,
            signed_checkpoint: signed_checkpoint.to_owned(),
            note,
            checkpoint,
        })
    }

    /// Sets the opaque, unauthenticated extra data.
    pub fn with_extra(mut self, extra: Vec<u8>) -> Self {
        self.extra = Some(extra);
        self
    }

    /// Parses a proof text.
    ///
    /// # Errors
    ///
    /// Any [`TlogProofError`] format variant, or [`TlogProofError::Checkpoint`]
    /// for a malformed checkpoint note (not verified here).
    pub fn parse(input: &[u8]) -> Result<Self, TlogProofError> {
        if input.len() > MAX_PROOF_SIZE {
            return Err(TlogProofError::TooLarge {
                size: input.len(),
                max: MAX_PROOF_SIZE,
            });
        }
        let text = std::str::from_utf8(input).map_err(|_| TlogProofError::NotUtf8)?;
        let mut rest = text;
        let mut line_no = 0usize;

        let header = next_line(&mut rest, &mut line_no).ok_or(TlogProofError::InvalidHeader)?;
        if header != TLOG_PROOF_HEADER {
            return Err(TlogProofError::InvalidHeader);
        }

        let mut line = next_line(&mut rest, &mut line_no).ok_or(TlogProofError::InvalidIndex)?;
        let mut extra = None;
        if let Some(data) = line.strip_prefix("extra ") {
            extra = Some(b64_decode(data).ok_or(TlogProofError::InvalidExtra)?);
            line = next_line(&mut rest, &mut line_no).ok_or(TlogProofError::InvalidIndex)?;
        }

        let index = line
            .strip_prefix("index ")
            .and_then(parse_canonical_u64)
            .ok_or(TlogProofError::InvalidIndex)?;

        let mut inclusion_proof = Vec::new();
        loop {
            let line =
                next_line(&mut rest, &mut line_no).ok_or(TlogProofError::MissingCheckpoint)?;
            if line.is_empty() {
                break;
            }
            if inclusion_proof.len() == MAX_PROOF_HASHES {
                return Err(TlogProofError::TooManyProofHashes {
                    max: MAX_PROOF_HASHES,
                });
            }
            let hash =
                b64_decode_hash(line).ok_or(TlogProofError::InvalidProofHash { line: line_no })?;
            inclusion_proof.push(hash);
        }

        if rest.is_empty() {
            return Err(TlogProofError::MissingCheckpoint);
        }
        let proof = Self::new(index, inclusion_proof, rest)?;
        Ok(match extra {
            Some(extra) => proof.with_extra(extra),
            None => proof,
        })
    }

    /// The opaque extra data, if any. It is not authenticated.
    pub fn extra(&self) -> Option<&[u8]> {
        self.extra.as_deref()
    }

    /// The leaf index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The inclusion proof hashes, leaf's sibling first.
    pub fn inclusion_proof(&self) -> &[Hash] {
        &self.inclusion_proof
    }

    /// The signed checkpoint note, verbatim.
    pub fn signed_checkpoint(&self) -> &str {
        &self.signed_checkpoint
    }

    /// The proof text.
    pub fn to_text(&self) -> String {
        self.to_string()
    }

    /// Verifies that `leaf` (the leaf's data, hashed here as
    /// `leaf_hash(leaf)`) is at the proof's index in a checkpoint signed per
    /// [`crate::checkpoint::verify_checkpoint`]'s policy. Returns that
    /// checkpoint.
    ///
    /// # Errors
    ///
    /// [`TlogProofError::Checkpoint`] or [`TlogProofError::Inclusion`].
    pub fn verify(
        &self,
        leaf: &[u8],
        trusted: &[VerifierKey],
    ) -> Result<VerifiedCheckpoint, TlogProofError> {
        self.verify_leaf_hash(&leaf_hash(leaf), trusted)
    }

    /// Like [`Self::verify`], for a caller that already has the leaf hash.
    ///
    /// # Errors
    ///
    /// [`TlogProofError::Checkpoint`] or [`TlogProofError::Inclusion`].
    pub fn verify_leaf_hash(
        &self,
        leaf_hash: &Hash,
        trusted: &[VerifierKey],
    ) -> Result<VerifiedCheckpoint, TlogProofError> {
        let checkpoint = verify_checkpoint_note(&self.note, trusted)?;
        verify_inclusion(
            leaf_hash,
            self.index,
            checkpoint.size(),
            &self.inclusion_proof,
            checkpoint.root_hash(),
        )?;
        Ok(checkpoint)
    }
}

impl fmt::Display for TlogProof {
    /// Writes the proof text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{TLOG_PROOF_HEADER}")?;
        if let Some(extra) = &self.extra {
            writeln!(f, "extra {}", b64_encode(extra))?;
        }
        writeln!(f, "index {}", self.index)?;
        for hash in &self.inclusion_proof {
            writeln!(f, "{}", b64_encode(hash))?;
        }
        writeln!(f)?;
        f.write_str(&self.signed_checkpoint)
    }
}

/// Takes the next newline-terminated line off `rest`; `None` if no complete
/// line is left.
fn next_line<'a>(rest: &mut &'a str, line_no: &mut usize) -> Option<&'a str> {
    let (line, tail) = rest.split_once('\n')?;
    *rest = tail;
    *line_no += 1;
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::SignerKey;
    use crate::tree::MemoryTree;

    const ORIGIN: &str = "custody.example/log";

    fn setup() -> (SignerKey, MemoryTree, String) {
        let key = SignerKey::from_seed(ORIGIN, &[7; 32]).unwrap();
        let mut tree = MemoryTree::new();
        for i in 0..13u32 {
            tree.append_data(format!("record {i}").as_bytes());
        }
        let cp = Checkpoint::new(ORIGIN, tree.size(), tree.root()).unwrap();
        let signed = cp.sign(&[&key]).unwrap();
        (key, tree, signed)
    }

    #[test]
    fn build_format_parse_verify() {
        let (key, tree, signed) = setup();
        let proof = TlogProof::new(5, tree.inclusion_proof(5, 13).unwrap(), &signed)
            .unwrap()
            .with_extra(b"context".to_vec());
        let text = proof.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra Y29udGV4dA==\nindex 5\n"));
        assert!(text.ends_with(&signed));
        let parsed = TlogProof::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed, proof);
        assert_eq!(parsed.to_text(), text);
        let verified = parsed.verify(b"record 5", &[key.verifier_key()]).unwrap();
        assert_eq!(verified.size(), 13);
        assert!(matches!(
            parsed.verify(b"record 6", &[key.verifier_key()]),
            Err(TlogProofError::Inclusion(MerkleError::RootMismatch))
        ));
        let other = SignerKey::from_seed(ORIGIN, &[8; 32]).unwrap();
        assert!(matches!(
            parsed.verify(b"record 5", &[other.verifier_key()]),
            Err(TlogProofError::Checkpoint(_))
        ));
    }

    #[test]
    fn single_leaf_tree_has_no_proof_lines() {
        let key = SignerKey::from_seed(ORIGIN, &[7; 32]).unwrap();
        let mut tree = MemoryTree::new();
        tree.append_data(b"only");
        let signed = Checkpoint::new(ORIGIN, 1, tree.root())
            .unwrap()
            .sign(&[&key])
            .unwrap();
        let proof = TlogProof::new(0, Vec::new(), &signed).unwrap();
        let text = proof.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nindex 0\n\n"));
        let parsed = TlogProof::parse(text.as_bytes()).unwrap();
        assert!(parsed.verify(b"only", &[key.verifier_key()]).is_ok());
    }

    #[test]
    fn malformed_proofs_are_rejected() {
        let (_, tree, signed) = setup();
        let good = TlogProof::new(5, tree.inclusion_proof(5, 13).unwrap(), &signed)
            .unwrap()
            .to_text();
        let hash_line = b64_encode(&[3; 32]);
        let cases = [
            String::new(),
            good.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1),
            good.replacen("index 5", "index 05", 1),
            good.replacen("index 5", "index -5", 1),
            good.replacen("index 5", "index5", 1),
            good.replacen("index 5\n", "", 1),
            good.replacen("index 5", "extra !!\nindex 5", 1),
            good.replacen("index 5", "index 5\nextra AA==", 1),
            good.replacen("index 5\n", &format!("index 5\n{}\n", &hash_line[1..]), 1),
            good.replacen("index 5\n", &format!("index 5\n{hash_line} \n"), 1),
            good.replacen(
                "index 5\n",
                &format!("index 5\n{}", format!("{hash_line}\n").repeat(65)),
                1,
            ),
            good.split("\n\n").next().unwrap_or_default().to_owned(),
            format!("{}\n\n", good.split("\n\n").next().unwrap_or_default()),
            good.replacen("\n\n", "\n", 1),
            format!("{good}junk"),
            good.replacen("\u{2014}", "-", 1),
        ];
        for case in cases {
            assert!(TlogProof::parse(case.as_bytes()).is_err(), "{case:?}");
        }
        assert!(TlogProof::parse(b"c2sp.org/tlog-proof@v1\nindex 0\n\n\xff").is_err());
    }
}
