//! The C2SP witness protocol (<https://c2sp.org/tlog-witness>), without IO:
//! the `add-checkpoint` request and response bodies, and the witness's
//! decision.
//!
//! A request body is an old size line (`old N`), zero to 63 consistency
//! proof lines (one base64 hash each), an empty line, then the signed
//! checkpoint note. The witness answers:
//!
//! | status | when |
//! |---|---|
//! | 200 | the checkpoint extends the latest one it cosigned: the body is its cosignature line(s) |
//! | 400 | the body is malformed, or `old` is larger than the checkpoint's size |
//! | 403 | no signature verifies against a key trusted for the origin |
//! | 404 | the origin is not one the witness knows |
//! | 409 | `old` is not the size of the latest cosigned checkpoint (body: that size, `text/x.tlog.size`), or the sizes are equal and the roots differ (a fork) |
//! | 422 | the consistency proof does not verify |
//!
//! [`decide`] is that decision as a pure function of the request, the
//! trusted log keys and the witness's stored state for the origin. The
//! caller must hold the origin's state across the decision and the update,
//! so two requests cannot race (the spec's rollback race).

use crate::checkpoint::{verify_checkpoint_note, Checkpoint, CheckpointError};
use crate::cosignature::{Cosignature, CosignatureVerifier, CosignerKey};
use crate::encoding::{b64_decode_hash, b64_encode, parse_canonical_u64};
use crate::merkle::{verify_consistency, Hash};
use crate::note::{Note, NoteError, NoteSignature, VerifierKey, MAX_NOTE_SIZE, SIGNATURE_PREFIX};

/// The most consistency proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;

/// The content type of a 409 answer's body (the witness's size).
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// The path of the call under the witness's submission prefix.
pub const ADD_CHECKPOINT_PATH: &str = "/add-checkpoint";

/// A malformed request or response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The body is larger than a note may be.
    #[error("the body is {0} bytes, more than the {MAX_NOTE_SIZE} accepted")]
    TooLarge(usize),
    /// The body is not UTF-8.
    #[error("the body is not UTF-8")]
    NotUtf8,
    /// The first line is not `old N`.
    #[error("the first line must be `old N` (N a decimal with no leading zeroes)")]
    OldLine,
    /// A proof line is not base64 of 32 bytes.
    #[error("consistency proof line {0} is not a base64 SHA-256 hash")]
    ProofLine(usize),
    /// More than [`MAX_PROOF_LINES`] proof lines.
    #[error("more than {MAX_PROOF_LINES} consistency proof lines")]
    TooManyProofLines,
    /// No empty line before the checkpoint.
    #[error("no empty line separates the proof from the checkpoint")]
    MissingSeparator,
    /// The checkpoint is not a signed checkpoint note.
    #[error("the checkpoint is malformed: {0}")]
    Checkpoint(CheckpointError),
    /// A 409 answer's body is not a size line.
    #[error("the witness's 409 answer is not a tree size followed by a newline")]
    SizeBody,
    /// A 200 answer's body is not note signature lines.
    #[error("the witness's answer is not note signature lines: {0}")]
    Signatures(NoteError),
}

/// An `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    old_size: u64,
    proof: Vec<Hash>,
    note: Note,
    checkpoint: Checkpoint,
}

/// What a witness stores for a log: the latest checkpoint it cosigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WitnessedSize {
    /// The tree size.
    pub size: u64,
    /// The root hash at that size.
    pub root: Hash,
}

/// Why a witness refuses a request; each maps to the spec's status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// 400: `old` is larger than the checkpoint's size, or a proof came
    /// with old size 0.
    #[error("{0}")]
    BadRequest(String),
    /// 403: no signature verifies against a key trusted for the origin.
    #[error("the checkpoint is not signed by a key trusted for {origin:?}: {reason}")]
    NotSigned {
        /// The origin.
        origin: String,
        /// Why.
        reason: String,
    },
    /// 404: the origin is unknown.
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// 409: `old` is not the witness's size (a stale client, or a rollback).
    #[error("old size {old} is not the size of the latest cosigned checkpoint, {latest}")]
    SizeMismatch {
        /// The request's old size.
        old: u64,
        /// The witness's size, sent back in the body.
        latest: u64,
    },
    /// 409: same size as the witness's checkpoint, another root (a fork).
    #[error("a different root at size {size}, which the witness cosigned already: a fork")]
    Fork {
        /// The size.
        size: u64,
    },
    /// 422: the consistency proof does not verify.
    #[error("the consistency proof from size {old} to {new} does not verify: {reason}")]
    Inconsistent {
        /// The old size.
        old: u64,
        /// The checkpoint's size.
        new: u64,
        /// Why.
        reason: String,
    },
}

impl Refusal {
    /// The HTTP status code the spec gives the refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::NotSigned { .. } => 403,
            Refusal::UnknownOrigin(_) => 404,
            Refusal::SizeMismatch { .. } | Refusal::Fork { .. } => 409,
            Refusal::Inconsistent { .. } => 422,
        }
    }

    /// The size to send back with a 409 (`text/x.tlog.size`), if any.
    pub fn latest_size(&self) -> Option<u64> {
        match self {
            Refusal::SizeMismatch { latest, .. } => Some(*latest),
            _ => None,
        }
    }
}

/// The witness's decision on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Store `state` as the origin's latest, then answer with the
    /// cosignature (made by [`Decision::cosign`]).
    Accept {
        /// The new state to persist before answering.
        state: WitnessedSize,
    },
    /// Answer with the refusal; nothing changes.
    Refuse(Refusal),
}

impl AddCheckpoint {
    /// A request to send: `old_size`, the proof from it, and the signed
    /// checkpoint note (any number of signatures).
    ///
    /// # Errors
    ///
    /// [`WitnessError::Checkpoint`] or [`WitnessError::TooManyProofLines`].
    pub fn new(old_size: u64, proof: Vec<Hash>, signed: &str) -> Result<Self, WitnessError> {
        if proof.len() > MAX_PROOF_LINES {
            return Err(WitnessError::TooManyProofLines);
        }
        let note = Note::parse(signed.as_bytes())
            .map_err(|error| WitnessError::Checkpoint(error.into()))?;
        let checkpoint = Checkpoint::parse(note.text()).map_err(WitnessError::Checkpoint)?;
        Ok(Self {
            old_size,
            proof,
            note,
            checkpoint,
        })
    }

    /// Parses a request body.
    ///
    /// # Errors
    ///
    /// A [`WitnessError`] saying what is malformed.
    pub fn parse(body: &[u8]) -> Result<Self, WitnessError> {
        // The proof adds at most 64 short lines to a note.
        if body.len() > MAX_NOTE_SIZE + 4096 {
            return Err(WitnessError::TooLarge(body.len()));
        }
        let text = std::str::from_utf8(body).map_err(|_| WitnessError::NotUtf8)?;
        let (first, mut rest) = text.split_once('\n').ok_or(WitnessError::OldLine)?;
        let old_size = first
            .strip_prefix("old ")
            .and_then(parse_canonical_u64)
            .ok_or(WitnessError::OldLine)?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest
                .split_once('\n')
                .ok_or(WitnessError::MissingSeparator)?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(WitnessError::TooManyProofLines);
            }
            proof.push(b64_decode_hash(line).ok_or(WitnessError::ProofLine(proof.len() + 1))?);
        }
        Self::new(old_size, proof, rest)
    }

    /// The request body.
    pub fn to_body(&self) -> String {
        let mut body = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            body.push_str(&b64_encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(self.note.text());
        body.push('\n');
        for signature in self.note.signatures() {
            body.push_str(&signature.to_line());
        }
        body
    }

    /// The old size.
    pub fn old_size(&self) -> u64 {
        self.old_size
    }

    /// The consistency proof.
    pub fn proof(&self) -> &[Hash] {
        &self.proof
    }

    /// The checkpoint's body.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The signed checkpoint note.
    pub fn note(&self) -> &Note {
        &self.note
    }

    /// The checkpoint's origin (which decides the state to decide with).
    pub fn origin(&self) -> &str {
        self.checkpoint.origin()
    }
}

impl Decision {
    /// The cosignature to answer an accepted request with.
    ///
    /// # Errors
    ///
    /// [`crate::cosignature::CosignatureError::TimestampTooLarge`].
    pub fn cosign(
        request: &AddCheckpoint,
        key: &CosignerKey,
        timestamp: u64,
    ) -> Result<Cosignature, crate::cosignature::CosignatureError> {
        key.cosign(request.note.text(), timestamp)
    }
}

/// Decides an `add-checkpoint` request.
///
/// `trusted` are the log keys the witness trusts (their names are the
/// origins it knows); `latest` is what it stores for the request's origin
/// (`None` if it never cosigned one). The checks follow the spec's order:
/// unknown origin (404), signature (403), `old` above the size (400), `old`
/// not the stored size (409 with the stored size), the proof (422), the
/// same size with another root (409).
pub fn decide(
    request: &AddCheckpoint,
    trusted: &[VerifierKey],
    latest: Option<WitnessedSize>,
) -> Decision {
    let origin = request.origin();
    let keys: Vec<VerifierKey> = trusted
        .iter()
        .filter(|key| key.name() == origin)
        .cloned()
        .collect();
    if keys.is_empty() {
        return Decision::Refuse(Refusal::UnknownOrigin(origin.to_owned()));
    }
    if let Err(error) = verify_checkpoint_note(&request.note, &keys) {
        return Decision::Refuse(Refusal::NotSigned {
            origin: origin.to_owned(),
            reason: error.to_string(),
        });
    }
    let new = WitnessedSize {
        size: request.checkpoint.size(),
        root: *request.checkpoint.root_hash(),
    };
    let old = request.old_size;
    if old > new.size {
        return Decision::Refuse(Refusal::BadRequest(format!(
            "old size {old} is larger than the checkpoint's size {}",
            new.size
        )));
    }
    let stored = latest.map_or(0, |state| state.size);
    if old != stored {
        return Decision::Refuse(Refusal::SizeMismatch {
            old,
            latest: stored,
        });
    }
    match latest {
        None => {
            if !request.proof.is_empty() {
                return Decision::Refuse(Refusal::BadRequest(
                    "the consistency proof must be empty when the old size is 0".into(),
                ));
            }
        }
        Some(state) if state.size == new.size && state.root != new.root => {
            return Decision::Refuse(Refusal::Fork { size: new.size });
        }
        Some(state) if state.size == 0 => {
            if !request.proof.is_empty() {
                return Decision::Refuse(Refusal::BadRequest(
                    "the consistency proof must be empty when the old size is 0".into(),
                ));
            }
        }
        Some(state) => {
            if let Err(error) =
                verify_consistency(state.size, new.size, &state.root, &new.root, &request.proof)
            {
                return Decision::Refuse(Refusal::Inconsistent {
                    old,
                    new: new.size,
                    reason: error.to_string(),
                });
            }
        }
    }
    Decision::Accept { state: new }
}

/// Parses a 409 answer's body: the witness's size and a newline.
///
/// # Errors
///
/// [`WitnessError::SizeBody`].
pub fn parse_size_body(body: &[u8]) -> Result<u64, WitnessError> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|text| text.strip_suffix('\n'))
        .and_then(parse_canonical_u64)
        .ok_or(WitnessError::SizeBody)
}

/// Parses a 200 answer's body: one or more signature lines, each ending in
/// a newline.
///
/// # Errors
///
/// [`WitnessError::Signatures`].
pub fn parse_signatures(body: &[u8]) -> Result<Vec<NoteSignature>, WitnessError> {
    let text =
        std::str::from_utf8(body).map_err(|_| WitnessError::Signatures(NoteError::NotUtf8))?;
    let lines = text
        .strip_suffix('\n')
        .ok_or(WitnessError::Signatures(NoteError::MalformedSignatureLine))?;
    lines
        .split('\n')
        .map(|line| {
            if !line.starts_with(SIGNATURE_PREFIX) {
                return Err(WitnessError::Signatures(NoteError::MalformedSignatureLine));
            }
            NoteSignature::parse_line(line).map_err(WitnessError::Signatures)
        })
        .collect()
}

/// The cosignature of `witness` among a 200 answer's `lines`, verified on
/// the checkpoint `text`. Lines of other keys are ignored, as the spec asks.
///
/// # Errors
///
/// The verification error of the witness's line, or
/// [`crate::cosignature::CosignatureError::OtherKey`] naming the first
/// line when none is the witness's.
pub fn cosignature_of(
    witness: &CosignatureVerifier,
    text: &str,
    lines: &[NoteSignature],
) -> Result<(NoteSignature, Cosignature), crate::cosignature::CosignatureError> {
    let mut last = None;
    for line in lines {
        match witness.verify(text, line) {
            Ok(cosignature) => return Ok((line.clone(), cosignature)),
            Err(error) => last = Some(error),
        }
    }
    Err(
        last.unwrap_or(crate::cosignature::CosignatureError::OtherKey {
            name: String::new(),
            key_id: 0,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::SignerKey;
    use crate::tree::MemoryTree;

    const ORIGIN: &str = "example.com/log";

    fn log_key() -> SignerKey {
        SignerKey::from_seed(ORIGIN, &[1; 32]).unwrap()
    }

    fn tree(leaves: u8) -> MemoryTree {
        let mut tree = MemoryTree::new();
        for i in 0..leaves {
            tree.append_data(&[i]);
        }
        tree
    }

    fn signed(size: u64, root: Hash, key: &SignerKey) -> String {
        Checkpoint::new(ORIGIN, size, root)
            .unwrap()
            .sign(&[key])
            .unwrap()
    }

    fn request(old: u64, proof: Vec<Hash>, size: u64, root: Hash) -> AddCheckpoint {
        AddCheckpoint::new(old, proof, &signed(size, root, &log_key())).unwrap()
    }

    fn trusted() -> Vec<VerifierKey> {
        vec![log_key().verifier_key()]
    }

    #[test]
    fn body_round_trip_matches_the_spec_layout() {
        let t = tree(10);
        let proof = t.consistency_proof(4, 10).unwrap();
        let req = request(4, proof.clone(), 10, t.root());
        let body = req.to_body();
        assert!(body.starts_with("old 4\n"));
        let lines: Vec<&str> = body.split('\n').collect();
        assert_eq!(lines[proof.len() + 1], "", "an empty line before the note");
        assert_eq!(lines[proof.len() + 2], ORIGIN);
        assert_eq!(AddCheckpoint::parse(body.as_bytes()).unwrap(), req);
    }

    #[test]
    fn malformed_bodies() {
        let note = signed(1, tree(1).root(), &log_key());
        for (body, error) in [
            (format!("old 01\n\n{note}"), WitnessError::OldLine),
            (format!("new 1\n\n{note}"), WitnessError::OldLine),
            (
                format!("old 1\nnot-a-hash\n\n{note}"),
                WitnessError::ProofLine(1),
            ),
            ("old 1\n".to_string(), WitnessError::MissingSeparator),
        ] {
            assert_eq!(AddCheckpoint::parse(body.as_bytes()), Err(error), "{body}");
        }
        let many = format!(
            "old 1\n{}\n{note}",
            format!("{}\n", b64_encode(&[0; 32])).repeat(64)
        );
        assert_eq!(
            AddCheckpoint::parse(many.as_bytes()),
            Err(WitnessError::TooManyProofLines)
        );
        assert!(matches!(
            AddCheckpoint::parse(b"old 0\n\nexample.com/log\n1\n"),
            Err(WitnessError::Checkpoint(_))
        ));
    }

    #[test]
    fn first_checkpoint_then_extension_is_accepted() {
        let t = tree(10);
        let first = request(0, vec![], 4, t.root_at(4).unwrap());
        let Decision::Accept { state } = decide(&first, &trusted(), None) else {
            panic!("first checkpoint refused");
        };
        assert_eq!(state.size, 4);
        let next = request(4, t.consistency_proof(4, 10).unwrap(), 10, t.root());
        assert_eq!(
            decide(&next, &trusted(), Some(state)),
            Decision::Accept {
                state: WitnessedSize {
                    size: 10,
                    root: t.root()
                }
            }
        );
        // The same checkpoint again (a client retrying) is cosigned again.
        let again = request(4, vec![], 4, t.root_at(4).unwrap());
        assert!(matches!(
            decide(&again, &trusted(), Some(state)),
            Decision::Accept { .. }
        ));
    }

    #[test]
    fn a_proof_that_does_not_verify_is_422() {
        let t = tree(10);
        let state = WitnessedSize {
            size: 4,
            root: t.root_at(4).unwrap(),
        };
        let mut proof = t.consistency_proof(4, 10).unwrap();
        proof[0][0] ^= 1;
        let req = request(4, proof, 10, t.root());
        let Decision::Refuse(refusal) = decide(&req, &trusted(), Some(state)) else {
            panic!("accepted a bad proof");
        };
        assert_eq!(refusal.status(), 422);
        // A rewritten history: its own, valid proof, from another old root.
        let mut forged = MemoryTree::new();
        for i in 0..10u8 {
            forged.append_data(&[i.wrapping_add(100)]);
        }
        let req = request(
            4,
            forged.consistency_proof(4, 10).unwrap(),
            10,
            forged.root(),
        );
        let Decision::Refuse(refusal) = decide(&req, &trusted(), Some(state)) else {
            panic!("accepted a rewritten history");
        };
        assert_eq!(refusal.status(), 422);
    }

    #[test]
    fn a_wrong_old_size_is_409_with_the_witness_size() {
        let t = tree(10);
        let state = WitnessedSize {
            size: 4,
            root: t.root_at(4).unwrap(),
        };
        let req = request(0, vec![], 10, t.root());
        let Decision::Refuse(refusal) = decide(&req, &trusted(), Some(state)) else {
            panic!("accepted");
        };
        assert_eq!(refusal.status(), 409);
        assert_eq!(refusal.latest_size(), Some(4));
        // And old above the checkpoint's size is a bad request.
        let req = request(11, vec![], 10, t.root());
        assert_eq!(
            match decide(&req, &trusted(), Some(state)) {
                Decision::Refuse(refusal) => refusal.status(),
                Decision::Accept { .. } => 200,
            },
            400
        );
    }

    #[test]
    fn a_rollback_is_refused() {
        let t = tree(10);
        let state = WitnessedSize {
            size: 10,
            root: t.root(),
        };
        // An older checkpoint, with a valid proof from its own old size.
        let req = request(
            2,
            t.consistency_proof(2, 4).unwrap(),
            4,
            t.root_at(4).unwrap(),
        );
        let Decision::Refuse(refusal) = decide(&req, &trusted(), Some(state)) else {
            panic!("rolled back");
        };
        assert_eq!(refusal.status(), 409);
        assert_eq!(refusal.latest_size(), Some(10));
        // Even claiming the witness's size as old: old above size is 400.
        let req = request(10, vec![], 4, t.root_at(4).unwrap());
        assert!(matches!(
            decide(&req, &trusted(), Some(state)),
            Decision::Refuse(Refusal::BadRequest(_))
        ));
    }

    #[test]
    fn a_fork_is_refused() {
        let t = tree(10);
        let state = WitnessedSize {
            size: 10,
            root: t.root(),
        };
        let req = request(10, vec![], 10, [9; 32]);
        assert_eq!(
            decide(&req, &trusted(), Some(state)),
            Decision::Refuse(Refusal::Fork { size: 10 })
        );
    }

    #[test]
    fn unknown_origin_is_404_and_untrusted_signature_403() {
        let t = tree(2);
        let req = request(0, vec![], 2, t.root());
        let other = SignerKey::from_seed("other.example/log", &[2; 32]).unwrap();
        let Decision::Refuse(refusal) = decide(&req, &[other.verifier_key()], None) else {
            panic!();
        };
        assert_eq!(refusal.status(), 404);
        let impostor = SignerKey::from_seed(ORIGIN, &[3; 32]).unwrap();
        let req = AddCheckpoint::new(0, vec![], &signed(2, t.root(), &impostor)).unwrap();
        let Decision::Refuse(refusal) = decide(&req, &trusted(), None) else {
            panic!();
        };
        assert_eq!(refusal.status(), 403);
    }

    #[test]
    fn responses_parse_and_verify() {
        assert_eq!(parse_size_body(b"42\n"), Ok(42));
        assert!(parse_size_body(b"42").is_err());
        assert!(parse_size_body(b"042\n").is_err());
        let t = tree(3);
        let req = request(0, vec![], 3, t.root());
        let witness = CosignerKey::from_seed("w.example/1", &[5; 32]).unwrap();
        let other = CosignerKey::from_seed("w.example/2", &[6; 32]).unwrap();
        let text = req.note().text();
        let body = format!(
            "{}{}",
            other.cosign(text, 5).unwrap().to_line(),
            Decision::cosign(&req, &witness, 7).unwrap().to_line()
        );
        let lines = parse_signatures(body.as_bytes()).unwrap();
        assert_eq!(lines.len(), 2);
        let (_, cosignature) = cosignature_of(&witness.verifier(), text, &lines).unwrap();
        assert_eq!(cosignature.timestamp(), 7);
        let only_other =
            parse_signatures(other.cosign(text, 5).unwrap().to_line().as_bytes()).unwrap();
        assert!(cosignature_of(&witness.verifier(), text, &only_other).is_err());
        assert!(parse_signatures(b"not a line\n").is_err());
        assert!(parse_signatures(b"").is_err());
    }
}
