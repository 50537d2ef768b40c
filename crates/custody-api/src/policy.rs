//! The approval policy in force and the record of every policy adopted.

use serde::{Deserialize, Serialize};

/// The policy a node decides new cases with, and every policy the
/// deployment adopted (the policy record), oldest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyDocument {
    /// SHA-256 of the policy this node decides new cases with.
    pub policy_hash: String,
    /// That policy (its rules, in order).
    pub policy: custody_core::policy::Policy,
    /// The ID of the deployment's policy record.
    pub record: Option<String>,
    /// Every adoption recorded, oldest first.
    pub history: Vec<PolicyAdoption>,
}

/// One recorded adoption of a policy.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyAdoption {
    /// The `policy_adopted` event.
    pub event_id: String,
    /// Its position in the log's policy record.
    pub seq: u64,
    /// When it was recorded.
    pub recorded_at: String,
    /// The policy's hash.
    pub policy_hash: String,
    /// The policy replaced.
    pub previous_hash: Option<String>,
    /// Where it came from.
    pub source: String,
    /// The rule names, in order.
    pub rules: Vec<String>,
}
