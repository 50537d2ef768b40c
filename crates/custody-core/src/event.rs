//! Events: the only facts the ledger keeps.
//!
//! An [`Event`] is appended once and never changed. Its canonical bytes
//! (RFC 8785 of the whole struct) are what is stored, what is hashed, and what
//! becomes a leaf of the Merkle log; everything else about an event (indexes,
//! projections) is derived from those bytes and can be rebuilt from them.

use serde::{Deserialize, Serialize};

use crate::canonical::to_canonical_bytes;
use crate::id::{CaseId, EventId, Sha256Hash};
use crate::model::{Actor, Change, Role, Ticket};
use crate::time::Timestamp;

/// The version of the event encoding, written into every event.
pub const EVENT_FORMAT_VERSION: u32 = 1;

/// One fact about one case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Encoding version; always [`EVENT_FORMAT_VERSION`] for events written by this code.
    pub v: u32,
    /// The event's own ID.
    pub event_id: EventId,
    /// The case it belongs to.
    pub case_id: CaseId,
    /// Position in the case: 1 for the request, then gapless.
    pub seq: u64,
    /// SHA-256 of the canonical bytes of the case's previous event (`None` for seq 1).
    pub prev_hash: Option<Sha256Hash>,
    /// What happened (`kind`) and its details (`payload`).
    #[serde(flatten)]
    pub body: EventBody,
    /// Who did it, taken from authentication.
    pub actor: Actor,
    /// The role the actor acted in for this event.
    pub role: Role,
    /// When the source says it happened.
    pub occurred_at: Timestamp,
    /// When the ledger accepted it.
    pub recorded_at: Timestamp,
    /// The system it came from, when it came from elsewhere.
    pub source: Option<String>,
    /// Its ID in that system.
    pub external_id: Option<String>,
    /// The event this one responds to.
    pub causation: Option<EventId>,
    /// The idempotency key of the write that made it.
    pub idempotency_key: Option<String>,
}

/// What happened, with its details. Serialised as `kind` plus `payload`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventBody {
    /// A request opened the case.
    RequestCreated(RequestCreated),
    /// An approver approved the requested change.
    ApprovalGranted(Decision),
    /// An approver denied the requested change.
    ApprovalDenied(Decision),
    /// The change was carried out.
    ExecutionCompleted(Execution),
    /// Carrying out the change failed.
    ExecutionFailed(Execution),
    /// A reviewer compared what was approved with what was executed.
    ReviewCompleted(Review),
    /// A comment.
    CommentAdded(Comment),
}

/// The payload of `request_created`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestCreated {
    /// The requested change.
    pub change: Change,
    /// SHA-256 of the change's canonical bytes: what approvals bind to.
    pub change_hash: Sha256Hash,
    /// Distinct approvals the policy required when the case was opened.
    pub approvals_required: u32,
    /// Why it is needed.
    pub justification: Option<String>,
    /// The external ticket the request came from.
    pub ticket: Option<Ticket>,
}

/// The payload of `approval_granted` and `approval_denied`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The change hash the approver saw: the decision covers exactly this change.
    pub change_hash: Sha256Hash,
    /// The approver's comment.
    pub comment: Option<String>,
}

/// The payload of `execution_completed` and `execution_failed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Execution {
    /// What was actually changed, as reported by the executor (JSON without floats).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub change_set: Option<serde_json::Value>,
    /// SHA-256 of the change set's canonical bytes, when there is one.
    pub change_set_hash: Option<Sha256Hash>,
    /// The executor's comment, or the error for a failed execution.
    pub comment: Option<String>,
}

/// The outcome of a post-change review.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReviewOutcome {
    /// What was executed matches what was approved.
    Confirmed,
    /// What was executed differs from what was approved.
    Mismatch,
    /// The access must be taken away again.
    Revoke,
}

/// The payload of `review_completed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Review {
    /// The outcome.
    pub outcome: ReviewOutcome,
    /// The reviewer's comment.
    pub comment: Option<String>,
}

/// The payload of `comment_added`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Comment {
    /// The comment's text.
    pub text: String,
}

/// Why stored bytes are not a well-formed event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not an event in this encoding.
    #[error("the bytes are not a valid event: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The bytes parse but are not in canonical form, so they were not written by the ledger.
    #[error("the event is not in canonical RFC 8785 form")]
    NotCanonical,
    /// The event declares an encoding version this code does not know.
    #[error("unknown event format version {0}")]
    UnknownVersion(u32),
}

impl Event {
    /// The canonical bytes: what is stored, hashed and logged.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        to_canonical_bytes(self)
    }

    /// SHA-256 of the canonical bytes; the next event of the case links to it.
    pub fn hash(&self) -> Sha256Hash {
        Sha256Hash::of(&self.canonical_bytes())
    }

    /// Reads an event from stored bytes, insisting that they are canonical.
    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        let event: Event = serde_json::from_slice(bytes)?;
        if event.v != EVENT_FORMAT_VERSION {
            return Err(DecodeError::UnknownVersion(event.v));
        }
        if event.canonical_bytes() != bytes {
            return Err(DecodeError::NotCanonical);
        }
        Ok(event)
    }
}

impl EventBody {
    /// The event kind's stable name, e.g. `approval_granted`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            EventBody::RequestCreated(_) => "request_created",
            EventBody::ApprovalGranted(_) => "approval_granted",
            EventBody::ApprovalDenied(_) => "approval_denied",
            EventBody::ExecutionCompleted(_) => "execution_completed",
            EventBody::ExecutionFailed(_) => "execution_failed",
            EventBody::ReviewCompleted(_) => "review_completed",
            EventBody::CommentAdded(_) => "comment_added",
        }
    }

    /// A one-line human description, for timelines.
    pub fn summary(&self) -> String {
        fn with_comment(text: String, comment: &Option<String>) -> String {
            match comment {
                Some(comment) => format!("{text}: {}", first_line(comment)),
                None => text,
            }
        }
        match self {
            EventBody::RequestCreated(request) => {
                let mut text = format!("requested {}", request.change);
                if let Some(ticket) = &request.ticket {
                    text.push_str(&format!(" (ticket {ticket})"));
                }
                with_comment(text, &request.justification)
            }
            EventBody::ApprovalGranted(decision) => {
                with_comment("approved".to_string(), &decision.comment)
            }
            EventBody::ApprovalDenied(decision) => {
                with_comment("denied".to_string(), &decision.comment)
            }
            EventBody::ExecutionCompleted(execution) => {
                let text = match &execution.change_set_hash {
                    Some(hash) => format!("executed (change set {})", &hash.to_hex()[..12]),
                    None => "executed".to_string(),
                };
                with_comment(text, &execution.comment)
            }
            EventBody::ExecutionFailed(execution) => {
                with_comment("execution failed".to_string(), &execution.comment)
            }
            EventBody::ReviewCompleted(review) => {
                let outcome = match review.outcome {
                    ReviewOutcome::Confirmed => "confirmed",
                    ReviewOutcome::Mismatch => "mismatch",
                    ReviewOutcome::Revoke => "revoke",
                };
                with_comment(format!("reviewed: {outcome}"), &review.comment)
            }
            EventBody::CommentAdded(comment) => format!("comment: {}", first_line(&comment.text)),
        }
    }
}

impl ReviewOutcome {
    /// The outcome's name as written in events.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewOutcome::Confirmed => "confirmed",
            ReviewOutcome::Mismatch => "mismatch",
            ReviewOutcome::Revoke => "revoke",
        }
    }
}

impl std::str::FromStr for ReviewOutcome {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "confirmed" => Ok(ReviewOutcome::Confirmed),
            "mismatch" => Ok(ReviewOutcome::Mismatch),
            "revoke" => Ok(ReviewOutcome::Revoke),
            _ => Err(format!(
                "`{text}` is not a review outcome (expected confirmed, mismatch or revoke)"
            )),
        }
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > 80 {
        format!("{}…", line.chars().take(79).collect::<String>())
    } else {
        line.to_string()
    }
}
