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
pub mod export;
pub mod identities;
pub mod log;
pub mod notifications;
pub mod policy;
pub mod principals;
pub mod problem;
pub mod tokens;

pub use admin::{
    AdminRecordDocument, Component, ComponentsDocument, ConnectorComponent, ExportSinkStatus,
};
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
pub use export::ExportQuery;
pub use identities::{
    IdentitiesBody, IdentityBody, IdentityChange, IdentityChanges, IdentityEntry, IdentityList,
    IdentityMapping, IngestRefusal, IngestSummary,
};
pub use log::{
    ConsistencyDocument, ConsistencyQuery, EntriesDocument, EntriesQuery, EntryDocument,
    InclusionDocument, InclusionQuery, KeysDocument,
};
pub use notifications::{NotificationList, NotificationsQuery, OutboxEntry};
pub use policy::{PolicyAdoption, PolicyDocument};
pub use principals::{GroupsBody, PrincipalBody, PrincipalList, WhoAmI};
pub use problem::Problem;
pub use tokens::{IssuedToken, TokenBody, TokenInfo, TokenList, TokensQuery};
