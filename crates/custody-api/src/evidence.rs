//! Evidence: uploads (to a case, or held for an external reference), link
//! captures and rechecks, the evidence list of a case and evidence records.

use custody_core::Event;
use serde::{Deserialize, Serialize};

use crate::cases::WriteOutcome;

/// The longest upload file name, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// Query of an upload.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct UploadQuery {
    /// The file's name, as the uploader knows it: an identifier of at most
    /// 255 bytes (see "Identifiers" in docs/api.md), percent-encoded UTF-8.
    pub name: Option<String>,
}

/// Body of a link capture.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    /// The URL to capture.
    pub url: String,
}

/// One piece of evidence of a case.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvidenceItem {
    /// The event that recorded it.
    pub event_id: String,
    /// Its kind: `evidence_attached`, `evidence_unverified` or `evidence_rechecked`.
    pub kind: String,
    /// Who recorded it.
    pub by: String,
    /// When it was recorded.
    pub recorded_at: String,
    /// The event's payload.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
}

/// The evidence of a case.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvidenceList {
    /// In sequence order.
    pub evidence: Vec<EvidenceItem>,
}

/// Query of an upload for an external reference.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct ReferenceUploadQuery {
    /// The reference, as SYSTEM:KEY (such as `jira:SEC-142`); the system is
    /// matched in lowercase and the key in uppercase.
    pub ticket: String,
    /// The file's name, as the uploader knows it (see [`UploadQuery`]).
    pub name: Option<String>,
}

/// The answer to an upload for an external reference: the write's outcome
/// and, in words and fields, where the evidence went.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReferenceUploadOutcome {
    /// The write's outcome. `case_id` is the case the evidence joined or,
    /// when it is held (`held` is true), the evidence record's ID, which
    /// `record_id` also names (and `custody show` and
    /// `GET /v1/evidence/records/{record_id}` display).
    #[serde(flatten)]
    pub outcome: WriteOutcome,
    /// Whether the evidence is held in the reference's evidence record
    /// because no case carries the reference yet.
    pub held: bool,
    /// The evidence record's ID when the evidence is held, else null.
    pub record_id: Option<String>,
    /// What happened, for people.
    pub message: String,
}

/// An evidence record: the evidence held for a reference before a case
/// carried it, and its release to that case.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvidenceRecordView {
    /// Always `evidence_record`: this is not a case.
    pub kind: String,
    /// The record's ID.
    pub record_id: String,
    /// The reference, as SYSTEM:KEY.
    pub ticket: String,
    /// The case the held evidence joined, once one carries the reference.
    pub released_to: Option<String>,
    /// The record's events, in sequence order (`evidence_held`,
    /// `evidence_released`).
    // Each is an `Event`; the published schema has always said objects, and
    // the OpenAPI document does not change with this crate's types.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub events: Vec<Event>,
}

/// Query of a recheck.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecheckBody {
    /// Only this case's links (default: every case's).
    pub case: Option<String>,
}

/// One link rechecked.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecheckResult {
    /// The case.
    pub case_id: String,
    /// The link.
    pub url: String,
    /// Whether it changed or is gone.
    pub drifted: bool,
    /// The event that records the recheck.
    pub event_id: String,
}

/// The links rechecked.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecheckReport {
    /// One per captured link.
    pub rechecked: Vec<RecheckResult>,
}
