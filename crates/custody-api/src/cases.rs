//! Cases: opening one (`POST /v1/cases`, `POST /v1/break-glass`), the case
//! list and one case's timeline, and the outcome every case write answers
//! with.

use custody_core::{CaseId, CaseState, CaseView, Event};
use serde::{Deserialize, Serialize};

/// The body of `POST /v1/cases`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    /// Whose access changes.
    pub subject: SubjectBody,
    /// The entitlement (role, group, permission, key scope).
    pub entitlement: String,
    /// `grant` (default), `revoke`, `create`, `rotate`, `delete` or `modify`.
    #[serde(default)]
    pub change: Option<String>,
    /// The resource the entitlement applies to.
    #[serde(default)]
    pub resource: Option<String>,
    /// For time-bound access: `30m`, `8h`, `7d`, ...
    #[serde(default)]
    pub duration: Option<String>,
    /// Why the change is needed.
    #[serde(default)]
    pub justification: Option<String>,
    /// The external ticket, as `SYSTEM:KEY`; the system is stored in
    /// lowercase and the key in uppercase.
    #[serde(default)]
    pub ticket: Option<String>,
    /// A drill's case (`custody drill`): recorded in the request, left out
    /// of listings, exports and metrics unless asked for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drill: bool,
}

/// A subject in a request body.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SubjectBody {
    /// `user`, `service_account`, `api_key`, `token`, `role`, `group` or `workload`.
    pub kind: String,
    /// Its identifier in the system that owns it (an identifier: see
    /// "Identifiers" in docs/api.md).
    pub id: String,
}

/// The body of `POST /v1/break-glass`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BreakGlassBody {
    /// Whose access changed.
    pub subject: SubjectBody,
    /// The entitlement.
    pub entitlement: String,
    /// `grant` (default), `revoke`, `create`, `rotate`, `delete` or `modify`.
    #[serde(default)]
    pub change: Option<String>,
    /// The resource.
    #[serde(default)]
    pub resource: Option<String>,
    /// For time-bound access.
    #[serde(default)]
    pub duration: Option<String>,
    /// The emergency (required).
    pub justification: String,
    /// The external ticket, as `SYSTEM:KEY`; the system is stored in
    /// lowercase and the key in uppercase.
    #[serde(default)]
    pub ticket: Option<String>,
    /// What was actually changed: a JSON object without floats, kept as
    /// sent so that `ChangeSet::from_json` parses it once and sees every key
    /// (integral numbers written with a fraction are normalised there).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub change_set: Option<Box<serde_json::value::RawValue>>,
    /// A drill's case (`custody drill`): recorded in the request, left out
    /// of listings, exports and metrics unless asked for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drill: bool,
}

/// Query of `GET /v1/cases`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct CasesQuery {
    /// Only cases in this state.
    pub state: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
    /// Only cases opened by an observed change no case sanctioned
    /// (`change.unsanctioned`).
    pub unsanctioned: Option<bool>,
    /// Also drill cases (`custody drill`), which are left out by default.
    pub include_drills: Option<bool>,
}

/// One case with its whole timeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaseDocument {
    /// The case ID.
    pub case_id: CaseId,
    /// Its state.
    pub state: CaseState,
    /// Everything derived from the events.
    pub view: CaseView,
    /// The approval stages of the case's rule and who counts for each.
    pub stages: Vec<custody_core::policy::StageProgress>,
    /// The events, in sequence order, exactly as stored.
    pub events: Vec<Event>,
}

/// The case list.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaseList {
    /// Cases, newest first.
    pub cases: Vec<CaseSummary>,
}

/// The result of a write, as returned to the client and replayed for retries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WriteOutcome {
    /// The case written to.
    pub case_id: CaseId,
    /// The case's state after the write.
    pub state: CaseState,
    /// Events appended by this write (empty when nothing new was appended).
    pub appended: Vec<AppendedEvent>,
    /// True when this result was replayed for a repeated idempotency key.
    pub replayed: bool,
    /// True when a request matched an open case with the same ticket and that case was returned.
    pub existing: bool,
}

/// One appended event, as reported to the writer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppendedEvent {
    /// The case it belongs to (a merge appends to two cases).
    pub case_id: String,
    /// The event ID.
    pub event_id: String,
    /// Its kind.
    pub kind: String,
    /// Its sequence number in the case.
    pub seq: u64,
    /// Its index in the log.
    pub log_index: u64,
}

/// A row of the case list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaseSummary {
    /// The case ID.
    pub case_id: String,
    /// Its state.
    pub state: String,
    /// A one-line description of the change.
    pub summary: String,
    /// The requester.
    pub requester: String,
    /// The external ticket.
    pub ticket: Option<String>,
    /// When it was opened.
    pub opened_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// A drill's case (`custody drill`); listed only with `include_drills`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drill: bool,
}
