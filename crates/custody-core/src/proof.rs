//! Offline proof that a case's trail is in the log: the bundle
//! `custody log prove` writes and `custody log verify-proof` checks with
//! nothing but the log's verifier key.
//!
//! A bundle holds a signed checkpoint and, for every event of the case, the
//! exact leaf bytes and a C2SP tlog-proof of inclusion in that checkpoint.
//! Verification re-checks the checkpoint's signature, every inclusion proof,
//! that every leaf is a canonical event of this case, and that the events
//! form the case's whole chain from its request.

use base64::Engine;
use custody_log::{verify_checkpoint, TlogProof, VerifierKey};
use serde::{Deserialize, Serialize};

use crate::case::CaseView;
use crate::event::Event;
use crate::lifecycle::violations;

/// The format tag of a case proof bundle.
pub const CASE_PROOF_FORMAT: &str = "custody-case-proof/v1";

/// Every event of a case with its C2SP tlog-proof against one checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CaseProofBundle {
    /// Always `custody-case-proof/v1`.
    pub format: String,
    /// The case.
    pub case_id: String,
    /// The signed checkpoint every proof refers to.
    pub checkpoint: String,
    /// The case's events covered by the checkpoint, in sequence order.
    pub events: Vec<CaseProofEvent>,
}

/// One event of a case proof bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CaseProofEvent {
    /// Its log index.
    pub index: u64,
    /// Standard base64 of the exact leaf bytes (the event's canonical bytes).
    pub leaf: String,
    /// The C2SP tlog-proof text.
    pub proof: String,
}

/// What a verified bundle proves.
#[derive(Debug, Clone, Serialize)]
pub struct VerifiedCaseProof {
    /// The case.
    pub case_id: String,
    /// Its state as of the checkpoint.
    pub state: String,
    /// Events proven.
    pub events: usize,
    /// The checkpoint's origin.
    pub origin: String,
    /// The checkpoint's tree size.
    pub checkpoint_size: u64,
    /// Lifecycle rules the proven trail breaks (codes), if any.
    pub rule_findings: Vec<String>,
}

/// Why a bundle does not prove what it claims.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The bundle is not in a known format.
    #[error("not a case proof bundle: {0}")]
    Format(String),
    /// The checkpoint is not signed by a trusted key.
    #[error("the checkpoint is not signed by the given key: {0}")]
    Checkpoint(String),
    /// An event's inclusion proof does not verify.
    #[error("log entry {index}: {message}")]
    Entry {
        /// The log index.
        index: u64,
        /// What is wrong.
        message: String,
    },
    /// The events do not form the case's whole chain.
    #[error("the trail of case {case_id} is not whole: {message}")]
    Chain {
        /// The case.
        case_id: String,
        /// What is wrong.
        message: String,
    },
}

impl CaseProofBundle {
    /// Verifies the bundle offline against `trusted` verifier keys.
    pub fn verify(&self, trusted: &[VerifierKey]) -> Result<VerifiedCaseProof, ProofError> {
        if self.format != CASE_PROOF_FORMAT {
            return Err(ProofError::Format(format!(
                "format is `{}`, expected `{CASE_PROOF_FORMAT}`",
                self.format
            )));
        }
        let checkpoint = verify_checkpoint(self.checkpoint.as_bytes(), trusted)
            .map_err(|error| ProofError::Checkpoint(error.to_string()))?;
        let mut events = Vec::with_capacity(self.events.len());
        for entry in &self.events {
            let fail = |message: String| ProofError::Entry {
                index: entry.index,
                message,
            };
            let leaf = base64::engine::general_purpose::STANDARD
                .decode(&entry.leaf)
                .map_err(|error| fail(format!("the leaf is not base64: {error}")))?;
            let proof = TlogProof::parse(entry.proof.as_bytes())
                .map_err(|error| fail(format!("the proof is malformed: {error}")))?;
            if proof.index() != entry.index {
                return Err(fail(format!("the proof is for index {}", proof.index())));
            }
            if proof.signed_checkpoint() != self.checkpoint {
                return Err(fail(
                    "the proof refers to a different checkpoint".to_string(),
                ));
            }
            proof
                .verify(&leaf, trusted)
                .map_err(|error| fail(format!("the inclusion proof does not verify: {error}")))?;
            let event = Event::decode(&leaf)
                .map_err(|error| fail(format!("the leaf is not a canonical event: {error}")))?;
            if event.case_id.as_str() != self.case_id {
                return Err(fail(format!(
                    "the event belongs to case {}, not {}",
                    event.case_id, self.case_id
                )));
            }
            events.push(event);
        }
        let chain_error = |message: String| ProofError::Chain {
            case_id: self.case_id.clone(),
            message,
        };
        let mut previous: Option<&Event> = None;
        for (position, event) in events.iter().enumerate() {
            if event.seq != position as u64 + 1 {
                return Err(chain_error(format!(
                    "event {} has seq {}: events are missing or out of order",
                    position + 1,
                    event.seq
                )));
            }
            let expected = previous.map(Event::hash);
            if event.prev_hash != expected {
                return Err(chain_error(format!(
                    "event seq {} does not link to the event before it",
                    event.seq
                )));
            }
            previous = Some(event);
        }
        let first = events
            .first()
            .ok_or_else(|| chain_error("the bundle holds no event".to_string()))?;
        if crate::admin::is_admin_event(&first.body) {
            // The administration record: every event re-checked against the
            // record as it stood before it (who was an admin, and so on).
            let mut state = crate::admin::AdminState::default();
            let mut rule_findings = Vec::new();
            for event in &events {
                for (refusal, _) in state.violations(event) {
                    rule_findings.push(refusal.rule.to_string());
                }
                state.apply(event);
            }
            return Ok(VerifiedCaseProof {
                case_id: self.case_id.clone(),
                state: "administration_record".to_string(),
                events: events.len(),
                origin: checkpoint.origin().to_string(),
                checkpoint_size: checkpoint.size(),
                rule_findings,
            });
        }
        let mut view = CaseView::open(first)
            .ok_or_else(|| chain_error("the first event is not a request".to_string()))?;
        let mut rule_findings = Vec::new();
        for event in &events[1..] {
            for (refusal, _) in violations(&view, event) {
                rule_findings.push(refusal.rule.to_string());
            }
            view.apply(event);
        }
        Ok(VerifiedCaseProof {
            case_id: self.case_id.clone(),
            state: view.state.as_str().to_string(),
            events: events.len(),
            origin: checkpoint.origin().to_string(),
            checkpoint_size: checkpoint.size(),
            rule_findings,
        })
    }
}
