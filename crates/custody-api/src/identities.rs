//! The mapping of connectors' outside users to principals: which Slack
//! user, Jira account, ServiceNow user or Teams user acts as which
//! principal. Admins map and unmap; each change is an event of the
//! administration record.

use serde::{Deserialize, Serialize};

/// The body of `PUT /v1/connectors/{name}/identities/{external_user}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IdentityBody {
    /// The principal the outside user acts as (not `system`).
    pub principal: String,
}

/// One mapping of a file of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IdentityEntry {
    /// The user's ID in the outside system, exactly (case-sensitive).
    pub external_user: String,
    /// The principal it acts as (not `system`).
    pub principal: String,
}

/// The body of `POST /v1/connectors/{name}/identities`: mappings recorded
/// together, in order, each as its own event, or none of them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IdentitiesBody {
    /// The mappings; a user named twice is mapped, then remapped.
    pub identities: Vec<IdentityEntry>,
}

/// An outside user's mapping as it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentityMapping {
    /// The connector.
    pub connector: String,
    /// The user's ID in the outside system.
    pub external_user: String,
    /// The principal it acts as.
    pub principal: String,
    /// When it was mapped to that principal.
    pub mapped_at: String,
    /// The admin who mapped it (none for `system`).
    pub mapped_by: Option<String>,
}

/// What a map or unmap did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentityChange {
    /// The mapping now (a map), or the mapping removed (an unmap).
    pub mapping: IdentityMapping,
    /// For a remap, the principal it was mapped to before.
    pub previous: Option<String>,
    /// Whether an event was recorded: `false` when the user was mapped to
    /// that principal already.
    pub recorded: bool,
}

/// The answer to `POST /v1/connectors/{name}/identities`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentityChanges {
    /// What each mapping of the body did, in its order.
    pub changes: Vec<IdentityChange>,
}

/// The mappings of one connector.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentityList {
    /// The connector.
    pub connector: String,
    /// Its mapped users, by ID.
    pub identities: Vec<IdentityMapping>,
}

/// What `POST /v1/ingest/{name}` (and each pushed or pulled batch) did with
/// a source's records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestSummary {
    /// The source's connector name.
    pub source: String,
    /// Records that change access, read from the input.
    pub observations: u64,
    /// Records that change no access (sign-ins, reads), not recorded.
    pub skipped: u64,
    /// Observations recorded in a case that sanctioned them (by case ID,
    /// reference or window).
    pub matched: u64,
    /// Observations no case sanctioned: each opened a case of its own.
    pub unsanctioned: u64,
    /// Observations recorded before under the same (source, external ID):
    /// nothing appended.
    pub duplicates: u64,
    /// Observations recorded with drift (`drift.*` codes).
    pub drift: u64,
    /// Observations the ledger refused, each with its reason.
    pub refused: Vec<IngestRefusal>,
    /// The cases written to, in input order, without repeats.
    pub cases: Vec<String>,
}

/// One observation the ledger refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestRefusal {
    /// Its external ID.
    pub external_id: String,
    /// Why (escaped text).
    pub error: String,
}
