//! Every way a case proof bundle is rejected, each with its own error.
//!
//! The bundles are built as `custody log prove` builds them: the events'
//! canonical bytes are the leaves of a real Merkle tree, the checkpoint is a
//! signed note over its root, and every event carries a C2SP tlog-proof.
//! Each test breaks one thing and asserts the specific rejection, so that
//! deleting any one check of [`CaseProofBundle::verify`] fails a test. A
//! bundle that proves a rule-breaking trail is not rejected: it reports the
//! rule.

#![allow(clippy::unwrap_used, clippy::cast_possible_wrap)]

use base64::Engine;
use custody_core::event::{Comment, Decision, EventBody, RequestCreated};
use custody_core::lifecycle::{self, Draft, Placement};
use custody_core::model::{Actor, AuthContext, Change, ChangeKind, PrincipalKind, Role, Via};
use custody_core::policy::AppliedRule;
use custody_core::proof::{CaseProofBundle, CaseProofEvent, ProofError, CASE_PROOF_FORMAT};
use custody_core::{CaseId, Event, Sha256Hash, Timestamp};
use custody_log::{Checkpoint, MemoryTree, SignerKey, TlogProof, VerifierKey};

const ORIGIN: &str = "custody-test-log";

fn key() -> SignerKey {
    SignerKey::from_seed(ORIGIN, &[3; 32]).unwrap()
}

fn trusted() -> Vec<VerifierKey> {
    vec![key().verifier_key()]
}

fn human(name: &str) -> Actor {
    Actor {
        principal: name.parse().unwrap(),
        kind: PrincipalKind::Human,
        org: None,
        groups: Vec::new(),
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Cli,
        auth: AuthContext::Token {
            token_id: format!("tok_{name}"),
        },
    }
}

fn request() -> Draft {
    let change = Change::new(
        "user:ann".parse().unwrap(),
        ChangeKind::Grant,
        "admin".to_string(),
        None,
        None,
    )
    .unwrap();
    lifecycle::request(
        change,
        None,
        None,
        &AppliedRule::default_rule(Sha256Hash::of(b"the policy")),
    )
    .unwrap()
}

fn comment(text: &str) -> Draft {
    Draft {
        body: EventBody::CommentAdded(Comment {
            text: text.to_string(),
        }),
        role: Role::Observer,
        causation: None,
    }
}

/// A log: the exact leaf bytes, in log order.
#[derive(Default)]
struct Log {
    leaves: Vec<Vec<u8>>,
}

impl Log {
    /// Seals `draft` at an explicit place in `case` and appends its bytes.
    fn place(
        &mut self,
        case: &CaseId,
        seq: u64,
        prev_hash: Option<Sha256Hash>,
        draft: Draft,
    ) -> Event {
        let event = draft.seal(
            human("alice"),
            Placement {
                case_id: case.clone(),
                seq,
                prev_hash,
                recorded_at: Timestamp::from_micros(
                    1_800_000_000_000_000 + self.leaves.len() as i64,
                ),
                occurred_at: None,
                idempotency_key: None,
                origin: None,
            },
        );
        self.leaves.push(event.canonical_bytes());
        Event::decode(self.leaves.last().unwrap()).unwrap()
    }

    /// Appends `draft` as the store would: the next seq, chained.
    fn append(&mut self, case: &CaseId, previous: Option<&Event>, draft: Draft) -> Event {
        self.place(
            case,
            previous.map_or(1, |event| event.seq + 1),
            previous.map(Event::hash),
            draft,
        )
    }

    fn tree(&self, size: usize) -> MemoryTree {
        let mut tree = MemoryTree::new();
        for leaf in &self.leaves[..size] {
            tree.append_data(leaf);
        }
        tree
    }

    /// The checkpoint over the first `size` leaves, signed.
    fn checkpoint(&self, size: usize) -> String {
        Checkpoint::new(ORIGIN, size as u64, self.tree(size).root())
            .unwrap()
            .sign(&[&key()])
            .unwrap()
    }

    /// The bundle `custody log prove` writes for the events at `indexes`.
    fn prove(&self, case: &CaseId, indexes: &[usize]) -> CaseProofBundle {
        let size = self.leaves.len();
        let checkpoint = self.checkpoint(size);
        let tree = self.tree(size);
        let events = indexes
            .iter()
            .map(|index| {
                let proof = tree.inclusion_proof(*index as u64, size as u64).unwrap();
                CaseProofEvent {
                    index: *index as u64,
                    leaf: base64::engine::general_purpose::STANDARD.encode(&self.leaves[*index]),
                    proof: TlogProof::new(*index as u64, proof, &checkpoint)
                        .unwrap()
                        .to_text(),
                }
            })
            .collect();
        CaseProofBundle {
            format: CASE_PROOF_FORMAT.to_string(),
            case_id: case.to_string(),
            checkpoint,
            events,
        }
    }
}

/// A case A (request, comment) interleaved with a case B: log indexes
/// A1 = 0, B1 = 1, A2 = 2.
fn honest() -> (Log, CaseId, CaseId) {
    let mut log = Log::default();
    let a = CaseId::generate();
    let b = CaseId::generate();
    let first = log.append(&a, None, request());
    log.append(&b, None, request());
    log.append(&a, Some(&first), comment("looks fine"));
    (log, a, b)
}

#[track_caller]
fn entry_error(result: Result<impl std::fmt::Debug, ProofError>) -> (u64, String) {
    match result {
        Err(ProofError::Entry { index, message }) => (index, message),
        other => panic!("expected a log entry error, got {other:?}"),
    }
}

#[track_caller]
fn chain_error(result: Result<impl std::fmt::Debug, ProofError>) -> (String, String) {
    match result {
        Err(ProofError::Chain { case_id, message }) => (case_id, message),
        other => panic!("expected a chain error, got {other:?}"),
    }
}

#[test]
fn an_honest_bundle_proves_the_case() {
    let (log, a, _) = honest();
    let verified = log.prove(&a, &[0, 2]).verify(&trusted()).unwrap();
    assert_eq!(verified.case_id, a.as_str());
    assert_eq!(verified.events, 2);
    assert_eq!(verified.state, "open");
    assert_eq!(verified.checkpoint_size, 3);
    assert_eq!(verified.origin, ORIGIN);
    assert!(verified.rule_findings.is_empty());
}

/// A bundle proves what the log holds, rule breaks included: a requester's
/// approval of their own request, written into the log past the write
/// path, is proved and reported by its rule code (`verify-proof` then exits
/// 1).
#[test]
fn a_proved_case_that_breaks_a_rule_reports_the_rule() {
    let mut log = Log::default();
    let a = CaseId::generate();
    let first = log.append(&a, None, request());
    let RequestCreated { change_hash, .. } = match &first.body {
        EventBody::RequestCreated(created) => created.clone(),
        other => panic!("{other:?}"),
    };
    // Alice requested; alice approves.
    let approval = Draft {
        body: EventBody::ApprovalGranted(Decision {
            change_hash,
            comment: None,
            chat: None,
        }),
        role: Role::Approver,
        causation: Some(first.event_id.clone()),
    };
    log.append(&a, Some(&first), approval);
    let verified = log.prove(&a, &[0, 1]).verify(&trusted()).unwrap();
    assert_eq!(verified.events, 2);
    assert_eq!(verified.state, "approved");
    assert_eq!(verified.rule_findings, ["sod.requester-cannot-approve"]);
}

#[test]
fn a_forged_event_that_breaks_the_chain_fails_the_previous_hash_link() {
    // The forged comment is in the log (its inclusion proof verifies), has the
    // right case and the right sequence number, but does not link to the
    // request before it: only the previous-hash link can tell.
    let mut log = Log::default();
    let a = CaseId::generate();
    log.append(&a, None, request());
    log.place(
        &a,
        2,
        Some(Sha256Hash::of(b"an event that is not this request")),
        comment("forged"),
    );
    let (case, message) = chain_error(log.prove(&a, &[0, 1]).verify(&trusted()));
    assert_eq!(case, a.as_str());
    assert_eq!(message, "event seq 2 does not link to the event before it");

    // A first event that claims a predecessor is broken the same way.
    let mut log = Log::default();
    log.place(&a, 1, Some(Sha256Hash::of(b"nothing")), request());
    let (_, message) = chain_error(log.prove(&a, &[0]).verify(&trusted()));
    assert_eq!(message, "event seq 1 does not link to the event before it");
}

#[test]
fn an_unknown_format_is_rejected() {
    let (log, a, _) = honest();
    let mut bundle = log.prove(&a, &[0, 2]);
    bundle.format = "custody-case-proof/v0".to_string();
    match bundle.verify(&trusted()) {
        Err(ProofError::Format(message)) => assert_eq!(
            message,
            "format is `custody-case-proof/v0`, expected `custody-case-proof/v1`"
        ),
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn a_checkpoint_signed_by_another_key_is_rejected() {
    let (log, a, _) = honest();
    let bundle = log.prove(&a, &[0, 2]);
    let other = SignerKey::from_seed(ORIGIN, &[4; 32])
        .unwrap()
        .verifier_key();
    match bundle.verify(&[other]) {
        Err(ProofError::Checkpoint(message)) => {
            assert_eq!(message, "note has no signature from a trusted key")
        }
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

#[test]
fn a_leaf_that_is_not_base64_is_rejected() {
    let (log, a, _) = honest();
    let mut bundle = log.prove(&a, &[0, 2]);
    bundle.events[1].leaf = "not base64!".to_string();
    let (index, message) = entry_error(bundle.verify(&trusted()));
    assert_eq!(index, 2);
    assert!(message.starts_with("the leaf is not base64: "), "{message}");
}

#[test]
fn a_malformed_proof_is_rejected() {
    let (log, a, _) = honest();
    let mut bundle = log.prove(&a, &[0, 2]);
    bundle.events[0].proof = "c2sp.org/tlog-proof@v1\nnot a proof\n".to_string();
    let (index, message) = entry_error(bundle.verify(&trusted()));
    assert_eq!(index, 0);
    assert!(message.starts_with("the proof is malformed: "), "{message}");
}

#[test]
fn an_entry_whose_proof_is_for_another_index_is_rejected() {
    let (log, a, _) = honest();
    let mut bundle = log.prove(&a, &[0, 2]);
    // The entry claims index 1 (case B's request) but proves index 2.
    bundle.events[1].index = 1;
    let (index, message) = entry_error(bundle.verify(&trusted()));
    assert_eq!(index, 1);
    assert_eq!(message, "the proof is for index 2");
}

#[test]
fn a_proof_against_another_checkpoint_is_rejected() {
    let (log, a, _) = honest();
    let mut bundle = log.prove(&a, &[0, 2]);
    // A proof of index 0 against the (validly signed) checkpoint at size 1.
    let smaller = log.checkpoint(1);
    bundle.events[0].proof = TlogProof::new(0, Vec::new(), &smaller).unwrap().to_text();
    let (index, message) = entry_error(bundle.verify(&trusted()));
    assert_eq!(index, 0);
    assert_eq!(message, "the proof refers to a different checkpoint");
}

#[test]
fn a_leaf_the_log_does_not_hold_is_rejected() {
    let (log, a, _) = honest();
    let mut bundle = log.prove(&a, &[0, 2]);
    // The comment rewritten after the checkpoint: its proof no longer verifies.
    let mut event = Event::decode(&log.leaves[2]).unwrap();
    event.body = EventBody::CommentAdded(Comment {
        text: "rewritten".to_string(),
    });
    bundle.events[1].leaf =
        base64::engine::general_purpose::STANDARD.encode(event.canonical_bytes());
    let (index, message) = entry_error(bundle.verify(&trusted()));
    assert_eq!(index, 2);
    assert!(
        message.starts_with("the inclusion proof does not verify: "),
        "{message}"
    );
}

#[test]
fn a_leaf_that_is_not_a_canonical_event_is_rejected() {
    let (mut log, a, _) = honest();
    // Bytes in the log that are JSON but not an event's canonical form.
    let mut spaced = b"{ ".to_vec();
    spaced.extend_from_slice(&log.leaves[2][1..]);
    log.leaves.push(spaced);
    let (index, message) = entry_error(log.prove(&a, &[0, 3]).verify(&trusted()));
    assert_eq!(index, 3);
    assert!(
        message.starts_with("the leaf is not a canonical event: "),
        "{message}"
    );
}

#[test]
fn an_event_of_another_case_is_rejected() {
    let (log, a, b) = honest();
    let (index, message) = entry_error(log.prove(&a, &[0, 1]).verify(&trusted()));
    assert_eq!(index, 1);
    assert_eq!(message, format!("the event belongs to case {b}, not {a}"));
}

#[test]
fn a_bundle_missing_an_event_is_rejected() {
    let (log, a, _) = honest();
    // Only the comment: the request is left out.
    let (case, message) = chain_error(log.prove(&a, &[2]).verify(&trusted()));
    assert_eq!(case, a.as_str());
    assert_eq!(
        message,
        "event 1 has seq 2: events are missing or out of order"
    );
}

#[test]
fn a_bundle_with_no_event_is_rejected() {
    let (log, a, _) = honest();
    let (_, message) = chain_error(log.prove(&a, &[]).verify(&trusted()));
    assert_eq!(message, "the bundle holds no event");
}

#[test]
fn a_case_whose_first_event_is_not_a_request_is_rejected() {
    // A whole, chained, logged trail, but it starts with a comment.
    let mut log = Log::default();
    let a = CaseId::generate();
    let first = log.append(&a, None, comment("no request"));
    log.append(&a, Some(&first), comment("still none"));
    let (case, message) = chain_error(log.prove(&a, &[0, 1]).verify(&trusted()));
    assert_eq!(case, a.as_str());
    assert_eq!(message, "the first event is not a request");
}
