//! Observed changes: what an identity provider, a cloud account or a
//! secrets manager recorded as done, whoever did it.
//!
//! A case says what *should* change; an observation says what *did*. Every
//! source a connector reads (Okta's System Log, CloudTrail, Entra ID's
//! directory audits, GitHub's audit log, Vault's audit device, the
//! Kubernetes API server's audit log) is parsed into one [`ObservedChange`]
//! per access change it records. The ledger then binds it to a case
//! ([`correlate`]): by a case ID the record carries, else by a reference
//! the case carries (its ticket), else by the same change inside the case's
//! window. It is recorded in that case as `execution_observed`; an
//! observation no case sanctioned opens a case of its own, which follows the
//! break-glass path (a post-hoc review with a deadline, escalated when
//! missed) and is reported as `change.unsanctioned` until reviewed.
//!
//! What the observation is compared with (the approved change, the recorded
//! execution, the time of the approval, the end of time-bound access) is
//! judged by [`drift`], at write time into the event and again by the
//! audit, from the events alone.

use serde::{Deserialize, Serialize};

use crate::case::{CaseState, CaseView};
use crate::code::Code;
use crate::id::{CaseId, Sha256Hash};
use crate::model::{Change, ChangeKind, PrincipalId, PrincipalKind, SubjectKind, Ticket};
use crate::severity::Severity;
use crate::time::Timestamp;

/// Who made an observed change, as the source names them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ObservedActor {
    /// The actor's ID in the source (an Okta user ID, an IAM ARN, an Entra
    /// object ID, a GitHub login, a Vault entity or accessor, a Kubernetes
    /// username). An identifier: checked with
    /// [`crate::model::validate_name`].
    pub id: String,
    /// What kind of actor the source says it is, when it says
    /// (`human`, `service`, `automation`, `vendor`).
    #[serde(deserialize_with = "Option::deserialize")]
    pub kind: Option<PrincipalKind>,
    /// A name for people (escaped text), when the source gives one.
    #[serde(deserialize_with = "Option::deserialize")]
    pub display: Option<String>,
    /// Whom it acted for, when it acted for someone else (CloudTrail's
    /// `onBehalfOf`, Okta's delegated admin, a Kubernetes impersonation).
    #[serde(deserialize_with = "Option::deserialize")]
    pub on_behalf_of: Option<String>,
    /// The session it acted in (an assumed role's session name, an Okta
    /// session, a Vault token accessor).
    #[serde(deserialize_with = "Option::deserialize")]
    pub session: Option<String>,
    /// The identity the session was started for (CloudTrail's
    /// `sourceIdentity`), when the source carries one.
    #[serde(deserialize_with = "Option::deserialize")]
    pub source_identity: Option<String>,
    /// The Custody principal the actor maps to through the deployment's
    /// identity map for this connector, when it is mapped. Set by the
    /// server, never by the source.
    #[serde(deserialize_with = "Option::deserialize")]
    pub principal: Option<PrincipalId>,
}

/// One access change a source recorded, normalised: what a connector's
/// parser returns for each record that changes access.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObservedChange {
    /// The record's ID in the source (Okta's `uuid`, CloudTrail's
    /// `eventID`, Entra's `id`, GitHub's `_document_id`, Vault's request
    /// ID, Kubernetes' `auditID`). With the connector's name it is unique:
    /// a record delivered twice is recorded once.
    pub external_id: String,
    /// The source's own name for what happened (`AttachRolePolicy`,
    /// `group.user_membership.add`, `team.add_member`, ...).
    pub action: String,
    /// When the source says it happened.
    pub occurred_at: Timestamp,
    /// Who did it.
    pub actor: ObservedActor,
    /// The change, in Custody's terms.
    pub change: Change,
    /// A case ID the record carries (a session name, `sourceIdentity`, a
    /// tag, a field): the first way it is bound to a case.
    pub case_hint: Option<CaseId>,
    /// Outside references it carries (a ticket key): the second way.
    pub references: Vec<Ticket>,
    /// SHA-256 of the raw record, as the source sent it.
    pub raw_sha256: Sha256Hash,
}

/// How an observation was bound to its case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// By the case ID the record carries.
    CaseId,
    /// By a reference the case carries (its ticket).
    Reference,
    /// By the same subject, entitlement and resource inside the case's window.
    Window,
    /// By nothing: the observation opened a case of its own (unsanctioned).
    Unmatched,
}

impl MatchedBy {
    /// The name as written in events.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::CaseId => "case_id",
            MatchedBy::Reference => "reference",
            MatchedBy::Window => "window",
            MatchedBy::Unmatched => "unmatched",
        }
    }
}

/// The payload of `execution_observed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Observed {
    /// The connector's kind (`okta`, `cloudtrail`, `entra`, `github`,
    /// `vault`, `kubernetes`); the event's `source` is the connector's name
    /// and its `external_id` the record's ID there.
    pub source_kind: String,
    /// The source's name for what happened.
    pub action: String,
    /// SHA-256 of the raw record.
    pub raw_sha256: Sha256Hash,
    /// Who did it.
    pub actor: ObservedActor,
    /// What changed.
    pub change: Change,
    /// How it was bound to this case.
    pub matched_by: MatchedBy,
    /// What it matched on: the case ID or the reference (`SYSTEM:KEY`), when
    /// it matched on one.
    #[serde(deserialize_with = "Option::deserialize")]
    pub matched_on: Option<String>,
    /// For an observation that opened its case (unsanctioned): when its
    /// post-hoc review is due.
    #[serde(deserialize_with = "Option::deserialize")]
    pub review_deadline: Option<Timestamp>,
    /// The drift found when it was recorded, by code (see [`drift`]);
    /// `verify` judges it again from the events.
    pub drift: Vec<String>,
}

/// An observation as the case's projection keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObservationRecord {
    /// The connector that saw it.
    pub source: String,
    /// Its ID there.
    pub external_id: String,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// What changed.
    pub change: Change,
    /// The actor's ID in the source.
    pub actor: String,
    /// The principal it maps to, when mapped.
    pub principal: Option<PrincipalId>,
    /// How it was matched.
    pub matched_by: MatchedBy,
}

/// One drift finding about an observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    /// The code.
    pub code: Code,
    /// How bad.
    pub severity: Severity,
    /// What is wrong, in a sentence (identifiers only; safe to show).
    pub message: String,
}

/// Whether `change` creates or rotates a credential of a non-human
/// identity (an API key, a token, a service account's key).
pub fn is_non_human_credential(change: &Change) -> bool {
    matches!(
        change.subject().kind,
        SubjectKind::ApiKey | SubjectKind::Token | SubjectKind::ServiceAccount
    ) && matches!(change.kind(), ChangeKind::Create | ChangeKind::Rotate)
}

/// Whether an observed change is the change `approved` describes: the same
/// subject, kind, entitlement and resource. (A duration is the ledger's,
/// not the source's: sources record the grant, and its end as a revoke.)
pub fn same_change(approved: &Change, observed: &Change) -> bool {
    approved.subject() == observed.subject()
        && approved.kind() == observed.kind()
        && approved.entitlement() == observed.entitlement()
        && approved.resource() == observed.resource()
}

/// Whether `observed` revokes the access `granted` gave.
pub fn revokes(granted: &Change, observed: &Change) -> bool {
    granted.kind() == ChangeKind::Grant
        && observed.kind() == ChangeKind::Revoke
        && granted.subject() == observed.subject()
        && granted.entitlement() == observed.entitlement()
        && granted.resource() == observed.resource()
}

/// How long after a case is closed (reviewed, denied) an observation of
/// the same change still belongs to it: sources deliver late (CloudTrail
/// within about 15 minutes, a polled log at its interval).
pub const WINDOW_GRACE_SECONDS: u64 = 3600;

/// Whether an observation of `change` at `occurred_at` falls inside the
/// window of `case`: the same change (or the revocation of its time-bound
/// grant), from the request until the case was closed plus
/// [`WINDOW_GRACE_SECONDS`] (open-ended while it is active).
pub fn in_window(case: &CaseView, change: &Change, occurred_at: Timestamp) -> bool {
    if case.state == CaseState::Merged {
        return false;
    }
    let same = same_change(&case.change, change)
        || (case.change.duration_seconds().is_some() && revokes(&case.change, change));
    // A case an observation opened starts at that observation; another
    // source may date the same change a little earlier (its own clock, a
    // late delivery), and it is still that change.
    let opens = if case.opened_by_observation {
        case.requester
            .occurred_at
            .plus_seconds(-i64::try_from(WINDOW_GRACE_SECONDS).unwrap_or(i64::MAX))
    } else {
        case.requester.occurred_at
    };
    if !same || occurred_at < opens {
        return false;
    }
    if case.state.is_active() {
        return true;
    }
    // Closed: a revocation of time-bound access may come when it ends; any
    // other observation only within the grace after the case was closed.
    let closed = case.updated_at.plus_unsigned_seconds(WINDOW_GRACE_SECONDS);
    let ends = case
        .expires_at
        .map(|end| end.plus_unsigned_seconds(WINDOW_GRACE_SECONDS));
    occurred_at <= closed || ends.is_some_and(|end| occurred_at <= end)
}

/// Picks the case an observation belongs to among `candidates` (cases of
/// the same change key, any order): inside its window, a sanctioned case
/// before one an observation opened, the newest request first.
pub fn by_window<'a>(
    candidates: impl IntoIterator<Item = &'a CaseView>,
    change: &Change,
    occurred_at: Timestamp,
) -> Option<&'a CaseView> {
    candidates
        .into_iter()
        .filter(|case| in_window(case, change, occurred_at))
        .max_by_key(|case| {
            (
                // A case that sanctioned the change before one an
                // observation opened (whose window reaches back a little).
                !case.opened_by_observation,
                case.requester.occurred_at,
                case.case_id.as_str().to_string(),
            )
        })
}

/// What an observation of `change` by `actor` at `occurred_at` tells about
/// `case` as it stood before it: each drift with its code and severity.
/// The audit calls it at every `execution_observed` event with the case as
/// it stood then, so write time and `verify` judge alike.
pub fn drift(
    case: &CaseView,
    change: &Change,
    actor: &ObservedActor,
    occurred_at: Timestamp,
) -> Vec<Drift> {
    let mut found = Vec::new();
    if case.opened_by_observation
        && (same_change(&case.change, change) || revokes(&case.change, change))
    {
        // The case is the observation's own: it is unsanctioned, reported
        // as such (and as a non-human credential when it is one). Another
        // change that names the case (by its ID) is not what it records,
        // and is judged below like any other.
        return found;
    }
    let revocation = revokes(&case.change, change);
    if !revocation && !same_change(&case.change, change) {
        found.push(Drift {
            code: Code::DriftWiderThanApproved,
            severity: Severity::High,
            message: format!(
                "case {} approved `{}` but {} was observed doing `{change}`",
                case.case_id, case.change, actor.id
            ),
        });
    }
    if !revocation && case.change.kind() == ChangeKind::Grant && change.kind() == ChangeKind::Grant
    {
        if let Some(after) = access_ended(case) {
            if occurred_at > after {
                found.push(Drift {
                    code: Code::DriftAccessAfterRevocation,
                    severity: Severity::High,
                    message: format!(
                        "case {}'s access ended at {after} (revoked or expired), but `{change}` was observed at {occurred_at}",
                        case.case_id
                    ),
                });
            }
        }
    }
    if !revocation && case.break_glass_deadline.is_none() {
        let approved_by = approved_at(case);
        if approved_by.is_none_or(|approved| occurred_at < approved) {
            found.push(Drift {
                code: Code::DriftBeforeApproval,
                severity: Severity::High,
                message: match approved_by {
                    Some(approved) => format!(
                        "`{change}` was observed at {occurred_at}, before case {} was approved at {approved}",
                        case.case_id
                    ),
                    None => format!(
                        "`{change}` was observed at {occurred_at}, and case {} has no approval",
                        case.case_id
                    ),
                },
            });
        }
    }
    if !revocation {
        let executors = case.executors();
        if !executors.is_empty() {
            match &actor.principal {
                Some(principal) if executors.contains(&principal) => {}
                Some(principal) => found.push(Drift {
                    code: Code::DriftActorMismatch,
                    severity: Severity::High,
                    message: format!(
                        "case {} records {} as its executor, but {} ({principal}) was observed making the change",
                        case.case_id,
                        names(&executors),
                        actor.id
                    ),
                }),
                None => found.push(Drift {
                    code: Code::DriftActorMismatch,
                    severity: Severity::Medium,
                    message: format!(
                        "case {} records {} as its executor, but the change was observed made by {}, who maps to no principal",
                        case.case_id,
                        names(&executors),
                        actor.id
                    ),
                }),
            }
        }
    }
    found
}

fn names(principals: &[&PrincipalId]) -> String {
    principals
        .iter()
        .map(|principal| principal.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// When the case's approvals were complete, by `occurred_at`: the time of
/// the approval that completed them. `None` while they are not.
pub fn approved_at(case: &CaseView) -> Option<Timestamp> {
    let mut times: Vec<Timestamp> = case
        .approvals
        .iter()
        .filter(|approval| case.approval_counts(approval))
        .map(|approval| approval.by.occurred_at)
        .collect();
    times.sort();
    times
        .into_iter()
        .find(|time| case.stages_complete(Some(*time)))
}

/// When the case's access ended: its recorded revocation, or the end of
/// time-bound access once the ledger recorded its revocation due.
pub fn access_ended(case: &CaseView) -> Option<Timestamp> {
    case.access_ended_at
}
