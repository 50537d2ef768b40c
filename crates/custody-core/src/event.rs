//! Events: the only facts the ledger keeps.
//!
//! An [`Event`] is appended once and never changed. Its canonical bytes
//! (RFC 8785 of the whole struct) are what is stored, what is hashed, and what
//! becomes a leaf of the Merkle log; everything else about an event (indexes,
//! projections) is derived from those bytes and can be rebuilt from them.

use serde::{Deserialize, Serialize};

use crate::canonical::to_canonical_bytes;
use crate::id::{CaseId, EventId, Sha256Hash};
use crate::model::{Actor, Change, ConnectorName, ExternalUser, PrincipalId, Role, Ticket};
use crate::policy::AppliedRule;
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
    #[serde(deserialize_with = "Option::deserialize")]
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
    /// The system it came from, when it came from elsewhere (a ticketing
    /// system, an identity provider, a cloud audit log).
    ///
    /// The connector's name for an event a connector wrote (its `via` is
    /// `connector:<name>`), `None` for the API, the CLI and the ledger
    /// itself; [`Draft::seal`](crate::lifecycle::Draft::seal) is the one
    /// place that sets it, from the write's [`Origin`].
    #[serde(deserialize_with = "Option::deserialize")]
    pub source: Option<String>,
    /// Its ID in that system, so a record delivered twice by a connector is
    /// recognised: (source, external ID) is unique in the ledger (the
    /// writer appends a replay nothing, `verify` reports a repeat as
    /// `event.external-id-repeated`).
    #[serde(deserialize_with = "Option::deserialize")]
    pub external_id: Option<String>,
    /// The event this one responds to.
    #[serde(deserialize_with = "Option::deserialize")]
    pub causation: Option<EventId>,
    /// The idempotency key of the write that made it.
    #[serde(deserialize_with = "Option::deserialize")]
    pub idempotency_key: Option<String>,
    /// The notifications this event owes (see [`crate::notice`]); absent
    /// from the encoding when it owes none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<crate::notice::Owed>,
}

/// Where a record came from: the outside system (a connector's name) and
/// its ID there. (source, external ID) is unique in the ledger: a record
/// delivered twice appends once.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The connector's name.
    pub source: String,
    /// The record's ID in the source.
    pub external_id: String,
}

/// What happened, with its details. Serialised as `kind` plus `payload`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
#[non_exhaustive]
// Events are decoded and dropped one at a time (the auditor keeps
// projections, not events), so the request variant's size is not worth a box.
#[allow(clippy::large_enum_variant)]
pub enum EventBody {
    /// A request opened the case.
    RequestCreated(RequestCreated),
    /// An approver approved the requested change.
    ApprovalGranted(Decision),
    /// An approver denied the requested change.
    ApprovalDenied(Decision),
    /// An approver confirmed, with their own identity, an approval someone
    /// else recorded for them from chat.
    ApprovalConfirmed(Confirmation),
    /// The change was carried out.
    ExecutionCompleted(Execution),
    /// Carrying out the change failed.
    ExecutionFailed(Execution),
    /// A reviewer compared what was approved with what was executed.
    ReviewCompleted(Review),
    /// A comment.
    CommentAdded(Comment),
    /// A connector saw the case's ticket edited: the change its fields
    /// describe now. When the case was approved and this differs from the
    /// approved change, `verify` reports `connector.ticket-drift`.
    TicketChanged(TicketChanged),
    /// An outside ticket that carries the case's ID was bound to a case that
    /// had no ticket (a Jira issue created for a case opened in chat): the
    /// case's write-back and drift checks follow it from here.
    TicketLinked(TicketLinked),
    /// This case duplicates another one (the survivor) and is closed into it.
    DuplicateMerged(MergeLink),
    /// A duplicate case was merged into this one.
    DuplicateLinked(MergeLink),
    /// Access was changed in an emergency, before any approval; a post-hoc
    /// review is due by the deadline.
    BreakGlassInvoked(BreakGlass),
    /// The ledger escalated an obligation nobody met in time.
    EscalationRaised(Escalation),
    /// Time-bound access reached its end: the ledger records that its
    /// revocation is due (and the executor is to be told).
    RevocationDue(RevocationDue),
    /// The revocation of time-bound access was carried out.
    RevocationExecuted(Execution),
    /// A review with outcome `revoke` opened a revocation case.
    RevocationOpened(CaseLink),
    /// This case was opened by the review of another case (outcome `revoke`).
    OpenedByReview(CaseLink),
    /// One attempt to deliver a notification the case owes (by `system`).
    NotificationAttempted(Attempt),
    /// Time-bound access ends soon: its owner is to be told (by `system`).
    ExpiryApproaching(ExpiryApproaching),
    /// Evidence stored by its SHA-256 became part of the case (an upload, or
    /// a snapshot of a link).
    EvidenceAttached(Evidence),
    /// A link could not be captured: it is recorded as unverified.
    EvidenceUnverified(LinkFailure),
    /// A captured link was fetched again and compared with its snapshot.
    EvidenceRechecked(Recheck),
    /// Evidence attached to an external reference (a ticket) before any case
    /// carries it: kept in the reference's evidence record until one does.
    EvidenceHeld(HeldEvidence),
    /// The evidence held for this case's ticket joined the case (the other
    /// half of `evidence_released`).
    EvidenceJoined(EvidenceJoin),
    /// The evidence of this record joined the case that carries its ticket.
    EvidenceReleased(CaseLink),
    /// A node started deciding cases under a policy different from the last
    /// one recorded. Only in the deployment's policy record (a case of its
    /// own, written by `system`), never in a request's case.
    PolicyAdopted(PolicyAdopted),
    /// An admin (or, while the deployment is being set up, `system`) added
    /// a principal with its groups. Only in the administration record (see
    /// [`crate::admin`]), like every administration event below.
    PrincipalAdded(PrincipalAdded),
    /// An admin changed a principal's groups (`admins` among them makes or
    /// unmakes an admin).
    PrincipalGroupsChanged(PrincipalGroupsChanged),
    /// A bearer token was issued (its ID and a prefix of its SHA-256; never
    /// the secret).
    TokenIssued(TokenIssued),
    /// A token was revoked by an admin or its own principal.
    TokenRevoked(TokenRevoked),
    /// An admin granted a vendor organisation the right to act for an
    /// internal party.
    DelegationGranted(DelegationGranted),
    /// An admin revoked a delegation grant: it covers nothing recorded after.
    DelegationRevoked(DelegationRevoked),
    /// An admin mapped a user of an outside system, as a connector names
    /// it, to a principal: what that user does through the connector is
    /// done as the principal. A remap is one event naming the principal it
    /// replaces.
    IdentityMapped(IdentityMapped),
    /// An admin removed a mapping: the outside user is trusted no more.
    IdentityUnmapped(IdentityUnmapped),
    /// A connector saw the change made in the system that holds the access
    /// (an identity provider, a cloud account, a secrets manager), recorded
    /// by the ledger as `observer` (see [`crate::observation`]). The first
    /// one of a case no request sanctioned opens it, with a post-hoc review
    /// deadline.
    ExecutionObserved(crate::observation::Observed),
    /// The continuous monitor of `custody serve` found something wrong with
    /// the case's trail (by `system`): recorded once per finding, so the
    /// case's timeline shows it where people look.
    FindingRaised(FindingRaised),
}

/// The payload of `finding_raised`: one finding of the monitor, as
/// `custody verify` would report it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FindingRaised {
    /// The finding's code (see `docs/findings.md`).
    pub code: String,
    /// How bad it is: `info`, `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// What is wrong, in a sentence.
    pub message: String,
    /// The event it points at, when it points at one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The log index it points at, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
    /// The log size the monitor had verified up to when it found it.
    pub scanned_to: u64,
}

/// The payload of `notification_attempted`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Attempt {
    /// The owed notification (see [`crate::notice::Owed`]).
    pub delivery_id: String,
    /// The channel tried.
    pub channel: String,
    /// The recipient tried, when the route names one.
    #[serde(deserialize_with = "Option::deserialize")]
    pub recipient: Option<String>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// How it went.
    pub outcome: DeliveryOutcome,
    /// The receiver's status code (HTTP or SMTP), when there was one.
    #[serde(deserialize_with = "Option::deserialize")]
    pub status: Option<u16>,
    /// What went wrong, when it did.
    #[serde(deserialize_with = "Option::deserialize")]
    pub error: Option<String>,
    /// How long the attempt took, in milliseconds.
    pub latency_ms: u64,
}

/// How a delivery attempt went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// The receiver accepted it.
    Delivered,
    /// It failed; it will be retried.
    Failed,
    /// It failed for the last time (permanent error, or out of attempts):
    /// the notification is escalated.
    Dead,
}

impl DeliveryOutcome {
    /// The outcome's name as written in events.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Failed => "failed",
            DeliveryOutcome::Dead => "dead",
        }
    }
}

/// The payload of `expiry_approaching`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExpiryApproaching {
    /// When the access ends.
    pub expires_at: Timestamp,
}

/// The payload of `evidence_attached`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// SHA-256 of the stored bytes: the blob's name.
    pub sha256: Sha256Hash,
    /// Its size in bytes.
    pub size: u64,
    /// The file name the uploader gave.
    #[serde(deserialize_with = "Option::deserialize")]
    pub file_name: Option<String>,
    /// The media type the uploader (or the link's server) declared.
    #[serde(deserialize_with = "Option::deserialize")]
    pub declared_media_type: Option<String>,
    /// The media type sniffed from the first bytes.
    pub sniffed_media_type: String,
    /// Where the bytes came from, when they are a snapshot of a link.
    #[serde(deserialize_with = "Option::deserialize")]
    pub link: Option<LinkCapture>,
}

/// How a link was captured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LinkCapture {
    /// The URL as given.
    pub url: String,
    /// The URL after redirects.
    pub final_url: String,
    /// The HTTP status of the final answer.
    pub status: u16,
    /// When it was fetched.
    pub fetched_at: Timestamp,
}

/// The payload of `evidence_held`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeldEvidence {
    /// The external reference the evidence belongs to.
    pub ticket: Ticket,
    /// What was stored.
    pub evidence: Evidence,
}

/// The payload of `evidence_joined`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EvidenceJoin {
    /// The evidence record it comes from.
    pub record: CaseId,
    /// The evidence, in the order it was held.
    pub evidence: Vec<Evidence>,
}

/// The payload of `evidence_unverified`: a link that could not be captured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LinkFailure {
    /// The URL.
    pub url: String,
    /// Why it could not be captured.
    pub error: String,
}

/// The payload of `evidence_rechecked`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Recheck {
    /// The link.
    pub url: String,
    /// The SHA-256 of the snapshot it was compared with.
    pub previous: Sha256Hash,
    /// The SHA-256 of what it serves now (stored as a blob), when it answered.
    #[serde(deserialize_with = "Option::deserialize")]
    pub sha256: Option<Sha256Hash>,
    /// The HTTP status now, when it answered.
    #[serde(deserialize_with = "Option::deserialize")]
    pub status: Option<u16>,
    /// Whether the content changed (or is gone).
    pub drifted: bool,
    /// Why it could not be fetched, when it could not.
    #[serde(deserialize_with = "Option::deserialize")]
    pub error: Option<String>,
}

/// The payload of `principal_added`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PrincipalAdded {
    /// The new principal's stable ID.
    pub principal: PrincipalId,
    /// Its display name.
    pub display_name: String,
    /// Its kind.
    pub kind: crate::model::PrincipalKind,
    /// Its groups, sorted and without duplicates (`admins` makes an admin).
    pub groups: Vec<String>,
    /// Its organisation.
    #[serde(deserialize_with = "Option::deserialize")]
    pub org: Option<String>,
}

/// The payload of `principal_groups_changed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PrincipalGroupsChanged {
    /// The principal.
    pub principal: PrincipalId,
    /// Its groups before, as recorded.
    pub previous: Vec<String>,
    /// Its groups from now on, sorted and without duplicates.
    pub groups: Vec<String>,
}

/// The payload of `token_issued`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenIssued {
    /// The public token ID (`tok_...`), as recorded in actor contexts.
    pub token_id: String,
    /// The principal it authenticates.
    pub principal: PrincipalId,
    /// The first 16 hex digits of the SHA-256 of the bearer secret, so the
    /// stored token row can be matched to this event; never the secret.
    pub secret_sha256_prefix: String,
    /// The whole SHA-256 of the bearer secret (64 lowercase hex digits), so
    /// `verify` can tell any change to the stored hash. Not a secret: the
    /// bearer secret is 32 random bytes, and the server authenticates by
    /// hashing what is presented. Absent from tokens issued by versions
    /// that recorded only the prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_sha256: Option<Sha256Hash>,
    /// When it stops working, if ever.
    #[serde(deserialize_with = "Option::deserialize")]
    pub expires_at: Option<Timestamp>,
}

/// The payload of `token_revoked`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenRevoked {
    /// The token ID.
    pub token_id: String,
    /// The principal it authenticated.
    pub principal: PrincipalId,
}

/// The payload of `delegation_granted`: the grant as given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DelegationGranted {
    /// Its ID (`dg_...`), recorded in every action taken under it.
    pub grant_id: String,
    /// The vendor organisation it is given to.
    pub vendor_org: String,
    /// The vendor principals it is limited to (empty: any of the organisation).
    pub principals: Vec<PrincipalId>,
    /// The internal principal or team the vendor acts for.
    pub on_behalf_of: String,
    /// Entitlement patterns it covers (empty: any).
    pub entitlements: Vec<String>,
    /// Resource patterns it covers (empty: any).
    pub resources: Vec<String>,
    /// When it ends.
    pub valid_until: Timestamp,
    /// The admin who granted it (the actor, except for grants recorded from
    /// a data directory made before grants were events).
    pub granted_by: PrincipalId,
    /// When it was granted.
    pub granted_at: Timestamp,
}

/// The payload of `delegation_revoked`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DelegationRevoked {
    /// The grant.
    pub grant_id: String,
    /// When it was revoked: the event's `recorded_at` (earlier only for
    /// revocations recorded from an older data directory).
    pub revoked_at: Timestamp,
}

/// The payload of `identity_mapped`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IdentityMapped {
    /// The connector whose users the mapping is for.
    pub connector: ConnectorName,
    /// The user's ID in the outside system, exactly as the connector
    /// receives it.
    pub external_user: ExternalUser,
    /// The principal the user acts as from now on.
    pub principal: PrincipalId,
    /// The principal it was mapped to until now (a remap), or `None`.
    #[serde(deserialize_with = "Option::deserialize")]
    pub previous: Option<PrincipalId>,
}

/// The payload of `identity_unmapped`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IdentityUnmapped {
    /// The connector.
    pub connector: ConnectorName,
    /// The user's ID in the outside system.
    pub external_user: ExternalUser,
    /// The principal it was mapped to until now.
    pub principal: PrincipalId,
}

/// The payload of `policy_adopted`: which policy governs new cases from now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyAdopted {
    /// SHA-256 of the canonical encoding of `policy`: the hash every case
    /// decided under it records.
    pub policy_hash: Sha256Hash,
    /// The whole policy (its `[[policy.rules]]`), as canonical JSON.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub policy: serde_json::Value,
    /// The hash of the policy recorded before this one (none for the first).
    #[serde(deserialize_with = "Option::deserialize")]
    pub previous_hash: Option<Sha256Hash>,
    /// Where it came from (the configuration file, or the built-in default).
    pub source: String,
}

/// The payload of `revocation_due`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RevocationDue {
    /// When the access ended.
    pub expired_at: Timestamp,
}

/// The payload of `break_glass_invoked`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BreakGlass {
    /// The emergency.
    pub justification: String,
    /// When the post-hoc review is due.
    pub review_deadline: Timestamp,
}

/// The payload of `escalation_raised`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    /// What was missed.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub reason: EscalationReason,
    /// The deadline that passed.
    pub deadline: Timestamp,
    /// The notification that could not be delivered, for `notify.dead-letter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
}

/// Why the ledger raised an escalation: an obligation missed, or a
/// notification given up on. Written as its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EscalationReason {
    /// A break-glass execution's post-hoc review is overdue.
    BreakGlassReviewOverdue,
    /// An execution's review is overdue.
    ReviewOverdue,
    /// Nobody decided an open request within its rule's `approval_deadline`.
    ApprovalOverdue,
    /// A notification was given up on (the escalation names its delivery).
    DeadLetter,
}

impl EscalationReason {
    /// Every reason.
    pub const ALL: [EscalationReason; 4] = [
        EscalationReason::BreakGlassReviewOverdue,
        EscalationReason::ReviewOverdue,
        EscalationReason::ApprovalOverdue,
        EscalationReason::DeadLetter,
    ];

    /// The code it is recorded under.
    pub fn code(self) -> crate::code::Code {
        use crate::code::Code;
        match self {
            EscalationReason::BreakGlassReviewOverdue => Code::BreakGlassReviewOverdue,
            EscalationReason::ReviewOverdue => Code::ReviewOverdue,
            EscalationReason::ApprovalOverdue => Code::ApprovalOverdue,
            EscalationReason::DeadLetter => Code::NotifyDeadLetter,
        }
    }
}

crate::code::coded!(EscalationReason, "escalation reason");

/// The payload of `duplicate_merged` (in the duplicate, naming the survivor)
/// and `duplicate_linked` (in the survivor, naming the duplicate).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MergeLink {
    /// The other case of the link.
    pub other_case: CaseId,
    /// Why the cases are one change.
    #[serde(deserialize_with = "Option::deserialize")]
    pub comment: Option<String>,
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
    /// The policy rule that decided the case, with its requirements.
    pub rule: AppliedRule,
    /// Why it is needed.
    #[serde(deserialize_with = "Option::deserialize")]
    pub justification: Option<String>,
    /// The external ticket the request came from.
    #[serde(deserialize_with = "Option::deserialize")]
    pub ticket: Option<Ticket>,
    /// A drill case (`custody drill`): recorded at request time, so the
    /// case is left out of listings, exports and metrics unless asked for
    /// (`--include-drills`). A drill never touches real access. Written
    /// only when true, so the events of ordinary cases are unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drill: bool,
}

/// The payload of `approval_granted` and `approval_denied`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The change hash the approver saw: the decision covers exactly this change.
    pub change_hash: Sha256Hash,
    /// The approver's comment.
    #[serde(deserialize_with = "Option::deserialize")]
    pub comment: Option<String>,
    /// For an approval given in chat: where, and whose it is.
    #[serde(deserialize_with = "Option::deserialize")]
    pub chat: Option<ChatApproval>,
}

/// An approval given in a chat message, formalised in the ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChatApproval {
    /// The channel, e.g. `slack:#access-requests`.
    pub channel: String,
    /// The message's permalink.
    pub permalink: String,
    /// SHA-256 of the message text (the text itself is not kept).
    pub message_sha256: Sha256Hash,
    /// The principal whose approval the message is. When it is not the
    /// principal recording it, the approval is attested and counts only once
    /// the approver confirms it (or the rule allows attested approvals).
    pub approver: PrincipalId,
}

/// The payload of `approval_confirmed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// The attested approval the approver confirms with their own identity.
    pub approval_event: EventId,
}

/// The payload of `execution_completed` and `execution_failed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Execution {
    /// What was actually changed, as reported by the executor (JSON without floats).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(deserialize_with = "Option::deserialize")]
    pub change_set: Option<serde_json::Value>,
    /// SHA-256 of the change set's canonical bytes, when there is one.
    #[serde(deserialize_with = "Option::deserialize")]
    pub change_set_hash: Option<Sha256Hash>,
    /// The executor's comment, or the error for a failed execution.
    #[serde(deserialize_with = "Option::deserialize")]
    pub comment: Option<String>,
    /// The change actually applied, in the shape of the request (completed
    /// executions); compared with the approved change.
    #[serde(deserialize_with = "Option::deserialize")]
    pub applied: Option<Change>,
}

/// The payload of `revocation_opened` (in the reviewed case) and
/// `opened_by_review` (in the revocation case it opened).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CaseLink {
    /// The other case of the link.
    pub other_case: CaseId,
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
    #[serde(deserialize_with = "Option::deserialize")]
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

/// The payload of `ticket_changed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TicketChanged {
    /// The ticket, as the case carries it.
    pub ticket: crate::model::Ticket,
    /// The change the ticket's fields describe now.
    pub change: crate::model::Change,
}

/// The payload of `ticket_linked`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TicketLinked {
    /// The ticket, now the case's.
    pub ticket: crate::model::Ticket,
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

    /// Reads an event from stored bytes, insisting that they are the one
    /// canonical encoding of that event.
    ///
    /// Checking the form directly ([`crate::canonical::is_canonical`]) is
    /// several times faster than re-serialising and comparing, and says the
    /// same thing here: every field is required (`null` when absent), unknown
    /// fields are refused, and every string field has one accepted spelling
    /// (timestamps, hashes and IDs parse only from their canonical text), so
    /// canonical JSON that parses as an event is that event's encoding. A test
    /// checks this against re-serialisation.
    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        if !crate::canonical::is_canonical(bytes) {
            // Malformed JSON is reported as such rather than as a form problem.
            serde_json::from_slice::<serde::de::IgnoredAny>(bytes)?;
            return Err(DecodeError::NotCanonical);
        }
        let event: Event = serde_json::from_slice(bytes)?;
        if event.v != EVENT_FORMAT_VERSION {
            return Err(DecodeError::UnknownVersion(event.v));
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
            EventBody::ApprovalConfirmed(_) => "approval_confirmed",
            EventBody::ExecutionCompleted(_) => "execution_completed",
            EventBody::ExecutionFailed(_) => "execution_failed",
            EventBody::ReviewCompleted(_) => "review_completed",
            EventBody::CommentAdded(_) => "comment_added",
            EventBody::TicketChanged(_) => "ticket_changed",
            EventBody::TicketLinked(_) => "ticket_linked",
            EventBody::DuplicateMerged(_) => "duplicate_merged",
            EventBody::DuplicateLinked(_) => "duplicate_linked",
            EventBody::BreakGlassInvoked(_) => "break_glass_invoked",
            EventBody::EscalationRaised(_) => "escalation_raised",
            EventBody::RevocationDue(_) => "revocation_due",
            EventBody::RevocationExecuted(_) => "revocation_executed",
            EventBody::RevocationOpened(_) => "revocation_opened",
            EventBody::OpenedByReview(_) => "opened_by_review",
            EventBody::PolicyAdopted(_) => "policy_adopted",
            EventBody::NotificationAttempted(_) => "notification_attempted",
            EventBody::EvidenceAttached(_) => "evidence_attached",
            EventBody::EvidenceUnverified(_) => "evidence_unverified",
            EventBody::EvidenceRechecked(_) => "evidence_rechecked",
            EventBody::EvidenceHeld(_) => "evidence_held",
            EventBody::EvidenceJoined(_) => "evidence_joined",
            EventBody::EvidenceReleased(_) => "evidence_released",
            EventBody::ExpiryApproaching(_) => "expiry_approaching",
            EventBody::PrincipalAdded(_) => "principal_added",
            EventBody::PrincipalGroupsChanged(_) => "principal_groups_changed",
            EventBody::TokenIssued(_) => "token_issued",
            EventBody::TokenRevoked(_) => "token_revoked",
            EventBody::DelegationGranted(_) => "delegation_granted",
            EventBody::DelegationRevoked(_) => "delegation_revoked",
            EventBody::IdentityMapped(_) => "identity_mapped",
            EventBody::IdentityUnmapped(_) => "identity_unmapped",
            EventBody::ExecutionObserved(_) => "execution_observed",
            EventBody::FindingRaised(_) => "finding_raised",
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
                let text = match &decision.chat {
                    Some(chat) => format!(
                        "approved in chat for {} ({}, {})",
                        chat.approver, chat.channel, chat.permalink
                    ),
                    None => "approved".to_string(),
                };
                with_comment(text, &decision.comment)
            }
            EventBody::ApprovalConfirmed(confirmation) => format!(
                "confirmed the chat approval {} with their own identity",
                confirmation.approval_event
            ),
            EventBody::ApprovalDenied(decision) => {
                with_comment("denied".to_string(), &decision.comment)
            }
            EventBody::ExecutionCompleted(execution) => {
                let mut text = match &execution.change_set_hash {
                    Some(hash) => format!("executed (change set {})", &hash.to_hex()[..12]),
                    None => "executed".to_string(),
                };
                if let Some(applied) = &execution.applied {
                    text.push_str(&format!(": applied {applied}"));
                }
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
            EventBody::TicketLinked(linked) => format!("ticket {} linked", linked.ticket),
            EventBody::TicketChanged(changed) => {
                format!("ticket {} now describes {}", changed.ticket, changed.change)
            }
            EventBody::DuplicateMerged(link) => with_comment(
                format!("merged as a duplicate into {}", link.other_case),
                &link.comment,
            ),
            EventBody::DuplicateLinked(link) => with_comment(
                format!("duplicate {} merged into this case", link.other_case),
                &link.comment,
            ),
            EventBody::BreakGlassInvoked(break_glass) => format!(
                "BREAK-GLASS: {} (post-hoc review due {})",
                first_line(&break_glass.justification),
                break_glass.review_deadline
            ),
            EventBody::EscalationRaised(escalation) => format!(
                "ESCALATED: {} (deadline {} passed)",
                escalation.reason, escalation.deadline
            ),
            EventBody::RevocationDue(due) => {
                format!("access expired at {}: revocation due", due.expired_at)
            }
            EventBody::RevocationExecuted(execution) => {
                with_comment("revocation executed".to_string(), &execution.comment)
            }
            EventBody::RevocationOpened(link) => {
                format!("revocation case {} opened by the review", link.other_case)
            }
            EventBody::OpenedByReview(link) => {
                format!(
                    "opened by the review of {} (outcome revoke)",
                    link.other_case
                )
            }
            EventBody::NotificationAttempted(attempt) => {
                let mut text = format!(
                    "notification {} via {}{}: attempt {} {}",
                    attempt.delivery_id,
                    attempt.channel,
                    attempt
                        .recipient
                        .as_ref()
                        .map(|recipient| format!(" to {recipient}"))
                        .unwrap_or_default(),
                    attempt.attempt,
                    attempt.outcome.as_str()
                );
                if let Some(error) = &attempt.error {
                    text.push_str(&format!(": {}", first_line(error)));
                }
                text
            }
            EventBody::EvidenceAttached(evidence) => match &evidence.link {
                Some(link) => format!(
                    "captured {} ({}, {} bytes, sha256 {})",
                    link.url, link.status, evidence.size, evidence.sha256
                ),
                None => format!(
                    "attached {} ({} bytes, sha256 {})",
                    evidence.file_name.as_deref().unwrap_or("a file"),
                    evidence.size,
                    evidence.sha256
                ),
            },
            EventBody::EvidenceUnverified(failure) => format!(
                "link {} could not be captured: {}",
                failure.url,
                first_line(&failure.error)
            ),
            EventBody::EvidenceRechecked(recheck) => format!(
                "rechecked {}: {}",
                recheck.url,
                if recheck.drifted {
                    "CHANGED since it was captured"
                } else {
                    "unchanged"
                }
            ),
            EventBody::EvidenceHeld(held) => format!(
                "held for {} until a case carries it: {} ({} bytes, sha256 {})",
                held.ticket,
                held.evidence.file_name.as_deref().unwrap_or("a file"),
                held.evidence.size,
                held.evidence.sha256
            ),
            EventBody::EvidenceJoined(join) => format!(
                "{} piece(s) of evidence held for this ticket joined from {}",
                join.evidence.len(),
                join.record
            ),
            EventBody::EvidenceReleased(link) => {
                format!("the held evidence joined case {}", link.other_case)
            }
            EventBody::ExpiryApproaching(expiry) => {
                format!("access ends at {}: owner told", expiry.expires_at)
            }
            EventBody::PolicyAdopted(adopted) => {
                format!(
                    "policy {} adopted from {}",
                    adopted.policy_hash, adopted.source
                )
            }
            EventBody::PrincipalAdded(added) => format!(
                "added {} principal {}{}{}",
                added.kind.as_str(),
                added.principal,
                if added.groups.is_empty() {
                    String::new()
                } else {
                    format!(" in groups {}", added.groups.join(", "))
                },
                added
                    .org
                    .as_ref()
                    .map(|org| format!(" of {org}"))
                    .unwrap_or_default()
            ),
            EventBody::PrincipalGroupsChanged(changed) => format!(
                "changed the groups of {} from [{}] to [{}]",
                changed.principal,
                changed.previous.join(", "),
                changed.groups.join(", ")
            ),
            EventBody::TokenIssued(issued) => format!(
                "issued token {} for {}{}",
                issued.token_id,
                issued.principal,
                issued
                    .expires_at
                    .map(|at| format!(" until {at}"))
                    .unwrap_or_default()
            ),
            EventBody::TokenRevoked(revoked) => format!(
                "revoked token {} of {}",
                revoked.token_id, revoked.principal
            ),
            EventBody::DelegationGranted(grant) => format!(
                "granted {} to vendor {} for {} until {}",
                grant.grant_id, grant.vendor_org, grant.on_behalf_of, grant.valid_until
            ),
            EventBody::DelegationRevoked(revoked) => format!(
                "revoked delegation grant {} at {}",
                revoked.grant_id, revoked.revoked_at
            ),
            EventBody::IdentityMapped(mapped) => format!(
                "mapped {} user {} to {}{}",
                mapped.connector,
                mapped.external_user,
                mapped.principal,
                mapped
                    .previous
                    .as_ref()
                    .map(|previous| format!(" (was {previous})"))
                    .unwrap_or_default()
            ),
            EventBody::IdentityUnmapped(unmapped) => format!(
                "unmapped {} user {} (was {})",
                unmapped.connector, unmapped.external_user, unmapped.principal
            ),
            EventBody::ExecutionObserved(observed) => {
                let mut text = format!(
                    "{} observed {} ({}) by {}",
                    observed.source_kind, observed.change, observed.action, observed.actor.id
                );
                if let Some(principal) = &observed.actor.principal {
                    text.push_str(&format!(" ({principal})"));
                }
                text.push_str(&match observed.matched_by {
                    crate::observation::MatchedBy::Unmatched => {
                        "; no case sanctioned it".to_string()
                    }
                    matched => format!(
                        "; matched by {}{}",
                        matched.as_str(),
                        observed
                            .matched_on
                            .as_ref()
                            .map(|on| format!(" {on}"))
                            .unwrap_or_default()
                    ),
                });
                if !observed.drift.is_empty() {
                    text.push_str(&format!("; drift: {}", observed.drift.join(", ")));
                }
                text
            }
            EventBody::FindingRaised(raised) => format!(
                "the monitor raised {} ({}): {}",
                raised.code,
                raised.severity,
                first_line(&raised.message)
            ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{self, Placement};
    use crate::model::{AuthContext, ChangeKind, PrincipalKind, Subject, Via};

    fn sample_events() -> Vec<Event> {
        let actor = Actor {
            principal: "alice".parse().unwrap(),
            kind: PrincipalKind::Vendor,
            org: Some("acme".into()),
            groups: Vec::new(),
            on_behalf_of: Some("platform-team".into()),
            delegation_grant: None,
            via: Via::Connector("okta".into()),
            auth: AuthContext::Oidc {
                issuer: "https://id.example".into(),
                subject: "00u1".into(),
            },
        };
        let change = Change::new(
            "api_key:ci-deploy".parse::<Subject>().unwrap(),
            ChangeKind::Create,
            "scope:deploy".into(),
            None,
            Some(3600),
        )
        .unwrap();
        let request = lifecycle::request(
            change,
            Some("naïve \"quote\"\n".into()),
            None,
            &AppliedRule::brief_default(),
        )
        .unwrap();
        let execution = lifecycle::Draft {
            body: EventBody::ExecutionCompleted(Execution {
                change_set: Some(
                    serde_json::json!({"\u{1F600}": [1, -2], "\u{FB01}": {"b": null, "a": "x"}}),
                ),
                change_set_hash: Some(Sha256Hash::of(b"x")),
                comment: None,
                applied: None,
            }),
            role: Role::Executor,
            causation: Some(EventId::generate()),
        };
        [request, execution]
            .into_iter()
            .enumerate()
            .map(|(index, draft)| {
                draft.seal(
                    actor.clone(),
                    Placement {
                        case_id: CaseId::generate(),
                        seq: index as u64 + 1,
                        prev_hash: (index > 0).then(|| Sha256Hash::of(b"previous")),
                        recorded_at: Timestamp::from_micros(1_800_000_000_123_456),
                        occurred_at: Some(Timestamp::from_micros(1_799_999_000_000_000)),
                        idempotency_key: Some("key".into()),
                        origin: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn decode_accepts_exactly_the_canonical_encoding() {
        for event in sample_events() {
            let bytes = event.canonical_bytes();
            let decoded = Event::decode(&bytes).unwrap();
            assert_eq!(decoded, event);
            // The claim behind the fast check: what decodes re-encodes to the same bytes.
            assert_eq!(decoded.canonical_bytes(), bytes);
        }
    }

    #[test]
    fn decode_refuses_other_spellings_of_an_event() {
        let event = &sample_events()[0];
        let text = String::from_utf8(event.canonical_bytes()).unwrap();
        let variants = [
            // A field left out instead of null.
            text.replacen("\"source\":null,", "", 1),
            // A timestamp without its microseconds.
            text.replacen(".123456Z", "Z", 1),
            // Insignificant whitespace.
            text.replacen(":", ": ", 1),
            // An unknown field, in sorted position.
            text.replacen("\"v\":1", "\"v\":1,\"w\":1", 1),
            // A hash that is not lowercase hex.
            text.replace("\"prev_hash\":null", "\"prev_hash\":\"AB\""),
        ];
        for variant in variants {
            assert_ne!(variant, text);
            assert!(
                Event::decode(variant.as_bytes()).is_err(),
                "accepted {variant}"
            );
        }
        assert!(matches!(
            Event::decode(b"{not json"),
            Err(DecodeError::Malformed(_))
        ));
    }
}
