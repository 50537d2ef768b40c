//! Custody's HTTP API on the wire: every request body, query and answer of
//! the `/v1/` routes, shared by the server (`custody-server`, which derives
//! the OpenAPI document from them) and its clients (`custody-client`). A
//! field renamed here is renamed on both sides, or fails to compile where it
//! is read.
//!
//! Types only: serde and, with the `openapi` feature, utoipa derives. No
//! HTTP framework, no IO. The domain values the answers carry (a case's
//! view and events, principals, grants, the policy, proofs) are
//! `custody-core`'s own types.
//!
//! [`WriteOutcome`] is also what the store keeps for every accepted write
//! and replays for a repeated idempotency key, so its serialised form is a
//! storage format as well: it may gain fields with defaults, never lose or
//! rename one.
//!
//! One module per resource, as the server's `api/` handlers are.

#![forbid(unsafe_code)]

pub mod admin;
pub mod cases;
pub mod decisions;
pub mod delegations;
pub mod evidence;
pub mod log;
pub mod notifications;
pub mod policy;
pub mod principals;
pub mod tokens;

pub use admin::AdminRecordDocument;
pub use cases::{
    AppendedEvent, BreakGlassBody, CaseDocument, CaseList, CaseSummary, CasesQuery, RequestBody,
    SubjectBody, WriteOutcome,
};
pub use decisions::{
    AppliedBody, ChatBody, CommentBody, DecisionBody, ExecutionBody, MergeBody, ReviewBody,
};
pub use delegations::{DelegationBody, DelegationList};
pub use evidence::{
    EvidenceItem, EvidenceList, EvidenceRecordView, LinkBody, RecheckBody, RecheckReport,
    RecheckResult, ReferenceUploadOutcome, ReferenceUploadQuery, UploadQuery,
};
pub use log::{
    ConsistencyDocument, ConsistencyQuery, EntriesDocument, EntriesQuery, EntryDocument,
    InclusionDocument, InclusionQuery, KeysDocument,
};
pub use notifications::{NotificationList, NotificationsQuery, OutboxEntry};
pub use policy::{PolicyAdoption, PolicyDocument};
pub use principals::{GroupsBody, PrincipalBody, PrincipalList, WhoAmI};
pub use tokens::{IssuedToken, TokenBody, TokenInfo, TokenList, TokensQuery};

/// Deserialises an optional JSON value whose integral numbers written with a
/// fraction (`226.0`) become integers (`226`): the same number (JSON Schema
/// and RFC 8785 agree), so a client cannot tell them apart. Numbers with a
/// fraction, and integers beyond ±2^53, stay as they are, for
/// `reject_floats` to refuse.
pub fn integral_numbers<'de, D>(deserializer: D) -> Result<Option<serde_json::Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    fn normalise(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Number(number) if number.is_f64() => {
                const LIMIT: f64 = (1u64 << 53) as f64;
                if let Some(float) = number.as_f64() {
                    if float.fract() == 0.0 && float.abs() <= LIMIT {
                        #[allow(
                            clippy::cast_possible_truncation,
                            reason = "integral and within ±2^53, so exact"
                        )]
                        let integer = float as i64;
                        *value = serde_json::Value::from(integer);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(normalise),
            serde_json::Value::Object(members) => members.values_mut().for_each(normalise),
            _ => {}
        }
    }
    let mut value = <Option<serde_json::Value> as serde::Deserialize>::deserialize(deserializer)?;
    if let Some(value) = value.as_mut() {
        normalise(value);
    }
    Ok(value)
}
