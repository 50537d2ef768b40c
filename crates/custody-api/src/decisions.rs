//! The steps of a case after its request: approvals, denials, executions,
//! reviews, comments and merges. Each answers with a
//! [`WriteOutcome`](crate::WriteOutcome).

use serde::{Deserialize, Serialize};

use crate::cases::SubjectBody;

/// The body of approvals, denials and reviews' optional comments.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Optional comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// When the decision was taken, if earlier than now (RFC 3339).
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// Approvals only: the approval was given in a chat message.
    #[serde(default)]
    pub chat: Option<ChatBody>,
    /// Approvals only: confirm, as the approver, the chat approval with this event ID.
    #[serde(default)]
    pub confirm: Option<String>,
}

/// An approval given in chat.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChatBody {
    /// The channel, e.g. `slack:#access-requests`.
    pub channel: String,
    /// The message's permalink.
    pub permalink: String,
    /// When the message was posted (RFC 3339); recorded as `occurred_at`.
    pub message_time: String,
    /// The message text; only its SHA-256 is kept.
    pub message_text: String,
    /// Whose approval it is, when not the caller's own (an attestation).
    #[serde(default)]
    pub approver: Option<String>,
}

/// The body of `POST /v1/cases/{id}/executions`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecutionBody {
    /// What was actually changed: a JSON object without floats, kept as
    /// sent so that `ChangeSet::from_json` parses it once and sees every key
    /// (integral numbers written with a fraction are normalised there).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub change_set: Option<Box<serde_json::value::RawValue>>,
    /// Optional comment; for a failed execution, the error.
    #[serde(default)]
    pub comment: Option<String>,
    /// `completed` (default), `failed` or `revocation`.
    #[serde(default)]
    pub status: Option<String>,
    /// The execution was observed before its approval is recorded (give
    /// `occurred_at`); the case waits for the approval.
    #[serde(default)]
    pub observed: bool,
    /// When the change was applied, if earlier than now (RFC 3339).
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// What was applied, where it differs from the approved change; every
    /// field left out is the approved value. Recorded, never refused; a
    /// difference is reported by `verify` as `review.change-mismatch`.
    #[serde(default)]
    pub applied: Option<AppliedBody>,
}

/// The change actually applied, field by field.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppliedBody {
    /// The subject, when another one was changed.
    #[serde(default)]
    pub subject: Option<SubjectBody>,
    /// The change kind, when another one was applied.
    #[serde(default)]
    pub change: Option<String>,
    /// The entitlement, when another one was given.
    #[serde(default)]
    pub entitlement: Option<String>,
    /// The resource, when another one was touched.
    #[serde(default)]
    pub resource: Option<String>,
}

/// The body of `POST /v1/cases/{id}/reviews`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// `confirmed`, `mismatch` or `revoke`.
    pub outcome: String,
    /// Optional comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// The body of `POST /v1/cases/{id}/comments`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    /// The comment.
    pub text: String,
}

/// The body of `POST /v1/cases/{id}/merge`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The surviving case (`AC-...`); the case in the path is the duplicate.
    pub into: String,
    /// Why the two cases are one change (required: a merge is a judgement).
    pub comment: String,
}
