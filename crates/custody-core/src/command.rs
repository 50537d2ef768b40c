//! Commands: what a client asks the ledger to do, before it is decided.
//!
//! A [`CaseCommand`] is parsed from input at the edge. Its canonical bytes are
//! the fingerprint an idempotency key is bound to: the same key with a
//! different command is refused.

use serde::{Deserialize, Serialize};

use crate::case::CaseView;
use crate::code::Code;
use crate::event::ReviewOutcome;
use crate::id::{CaseId, Sha256Hash};
use crate::lifecycle::{self, Draft, Refusal};
use crate::model::{Actor, Change, Ticket};
use crate::policy::AppliedRule;

/// A write against the case ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
// One command is built per write and moved, never stored in bulk: the size
// difference between variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum CaseCommand {
    /// Open a case for a change.
    Request {
        /// The change asked for.
        change: Change,
        /// Why.
        justification: Option<String>,
        /// The external ticket it came from.
        ticket: Option<Ticket>,
        /// The policy rule that governs it, decided by the server from its
        /// configuration (never by the client).
        rule: AppliedRule,
    },
    /// Approve the case's change.
    Approve {
        /// The case.
        case_id: CaseId,
        /// Optional comment.
        comment: Option<String>,
        /// For an approval given in chat.
        chat: Option<crate::event::ChatApproval>,
    },
    /// Confirm an approval someone else recorded for the actor from chat.
    ConfirmApproval {
        /// The case.
        case_id: CaseId,
        /// The attested approval event.
        approval_event: crate::EventId,
    },
    /// Deny the case's change.
    Deny {
        /// The case.
        case_id: CaseId,
        /// Optional comment.
        comment: Option<String>,
    },
    /// Record an execution.
    Execute {
        /// The case.
        case_id: CaseId,
        /// What was actually changed.
        change_set: Option<crate::change_set::ChangeSet>,
        /// Optional comment, or the error of a failed execution.
        comment: Option<String>,
        /// `false` records a failed attempt.
        completed: bool,
        /// The change actually applied, when it differs from the approved one.
        applied: Option<Change>,
        /// Observed before its approval is recorded (a late record elsewhere).
        observed: bool,
    },
    /// Record the post-change review.
    Review {
        /// The case.
        case_id: CaseId,
        /// The outcome.
        outcome: ReviewOutcome,
        /// Optional comment.
        comment: Option<String>,
        /// For outcome `revoke`: the policy rule of the revocation case it
        /// opens, decided by the server.
        revocation_rule: Option<AppliedRule>,
    },
    /// Add a comment.
    Comment {
        /// The case.
        case_id: CaseId,
        /// The text.
        text: String,
    },
    /// Open a case by break-glass: the change was made in an emergency,
    /// before approval (see [`lifecycle::break_glass`]).
    BreakGlass {
        /// The change made.
        change: Change,
        /// The emergency.
        justification: String,
        /// The external ticket, if any.
        ticket: Option<Ticket>,
        /// The policy rule that governs it, decided by the server.
        rule: AppliedRule,
        /// What was actually changed.
        change_set: Option<crate::change_set::ChangeSet>,
    },
    /// Record the revocation of time-bound access that reached its end.
    ExecuteRevocation {
        /// The case.
        case_id: CaseId,
        /// What was actually changed.
        change_set: Option<crate::change_set::ChangeSet>,
        /// Optional comment.
        comment: Option<String>,
    },
    /// The ledger escalates an overdue obligation (system actor only).
    Escalate {
        /// The case.
        case_id: CaseId,
        /// The obligation whose deadline passed (written as `reason`, its code).
        reason: crate::obligation::Obligation,
        /// The deadline that passed.
        deadline: crate::Timestamp,
    },
    /// The outbox records one delivery attempt (system actor only; see
    /// [`lifecycle::record_delivery`]).
    RecordDelivery {
        /// The case that owes the notification.
        case_id: CaseId,
        /// The attempt.
        attempt: crate::event::Attempt,
        /// Whether a final failure is escalated.
        escalate: bool,
        /// When to try again, after a failure that will be retried.
        next_attempt_at: Option<crate::Timestamp>,
    },
    /// Record evidence stored by its hash (an upload or a link snapshot).
    AttachEvidence {
        /// The case.
        case_id: CaseId,
        /// What was stored.
        evidence: crate::event::Evidence,
    },
    /// Record evidence for an external reference: in the case that carries
    /// it, or held in the reference's evidence record until a case does.
    HoldEvidence {
        /// The reference.
        ticket: crate::model::Ticket,
        /// What was stored.
        evidence: crate::event::Evidence,
    },
    /// Record that a link could not be captured.
    RecordLinkFailure {
        /// The case.
        case_id: CaseId,
        /// The link and why.
        failure: crate::event::LinkFailure,
    },
    /// Record a link fetched again and compared with its snapshot.
    RecordRecheck {
        /// The case.
        case_id: CaseId,
        /// The comparison.
        recheck: crate::event::Recheck,
    },
    /// Merge a duplicate case into the case that survives (see [`lifecycle::merge`]).
    Merge {
        /// The duplicate, closed into the survivor.
        duplicate: CaseId,
        /// The surviving case.
        into: CaseId,
        /// Why they are one change.
        comment: Option<String>,
    },
}

impl CaseCommand {
    /// The case the command targets; `None` for a request, which creates one.
    pub fn case_id(&self) -> Option<&CaseId> {
        match self {
            CaseCommand::Request { .. }
            | CaseCommand::BreakGlass { .. }
            | CaseCommand::HoldEvidence { .. } => None,
            CaseCommand::Escalate { case_id, .. }
            | CaseCommand::RecordDelivery { case_id, .. }
            | CaseCommand::AttachEvidence { case_id, .. }
            | CaseCommand::RecordLinkFailure { case_id, .. }
            | CaseCommand::RecordRecheck { case_id, .. }
            | CaseCommand::ExecuteRevocation { case_id, .. } => Some(case_id),
            CaseCommand::Approve { case_id, .. }
            | CaseCommand::ConfirmApproval { case_id, .. }
            | CaseCommand::Deny { case_id, .. }
            | CaseCommand::Execute { case_id, .. }
            | CaseCommand::Review { case_id, .. }
            | CaseCommand::Comment { case_id, .. } => Some(case_id),
            CaseCommand::Merge { duplicate, .. } => Some(duplicate),
        }
    }

    /// Every case the command writes to (two for a merge).
    pub fn case_ids(&self) -> Vec<&CaseId> {
        match self {
            CaseCommand::Merge {
                duplicate, into, ..
            } => vec![duplicate, into],
            other => other.case_id().into_iter().collect(),
        }
    }

    /// The fingerprint an idempotency key is bound to.
    pub fn fingerprint(&self) -> Sha256Hash {
        Sha256Hash::of(&crate::canonical::to_canonical_bytes(self))
    }

    /// Decides a command against an existing case. Requests are decided by
    /// [`lifecycle::request`] instead, since they have no case yet.
    pub fn decide(&self, case: &CaseView, actor: &Actor) -> Result<Draft, Refusal> {
        match self {
            CaseCommand::Request { .. } => Err(Refusal {
                rule: Code::CaseAlreadyExists,
                message: format!("case {} already exists", case.case_id),
                hint: None,
            }),
            CaseCommand::Approve { comment, chat, .. } => {
                lifecycle::approve_with(case, actor, comment.clone(), chat.clone())
            }
            CaseCommand::ConfirmApproval { approval_event, .. } => {
                lifecycle::confirm_approval(case, actor, approval_event)
            }
            CaseCommand::Deny { comment, .. } => lifecycle::deny(case, actor, comment.clone()),
            CaseCommand::Execute {
                change_set,
                comment,
                applied,
                observed: true,
                ..
            } => lifecycle::execute_observed(
                case,
                actor,
                change_set.clone(),
                comment.clone(),
                applied.clone(),
            ),
            CaseCommand::Execute {
                change_set,
                comment,
                completed,
                applied,
                ..
            } => lifecycle::execute(
                case.approved()?,
                actor,
                change_set.clone(),
                comment.clone(),
                *completed,
                applied.clone(),
            ),
            CaseCommand::Review {
                outcome, comment, ..
            } => lifecycle::review(case.executed()?, actor, *outcome, comment.clone()),
            CaseCommand::Comment { text, .. } => Ok(lifecycle::comment(case, actor, text.clone())),
            // A merge writes to two cases; the store decides it with both in
            // hand through `lifecycle::merge`.
            CaseCommand::Escalate {
                reason, deadline, ..
            } => lifecycle::escalate_as(case, actor, *reason, *deadline),
            CaseCommand::ExecuteRevocation {
                change_set,
                comment,
                ..
            } => lifecycle::execute_revocation(case, actor, change_set.clone(), comment.clone()),
            CaseCommand::BreakGlass { .. } => Err(Refusal {
                rule: Code::CaseAlreadyExists,
                message: format!("case {} already exists", case.case_id),
                hint: None,
            }),
            CaseCommand::AttachEvidence { evidence, .. } => Ok(lifecycle::evidence(
                case,
                actor,
                crate::event::EventBody::EvidenceAttached(evidence.clone()),
            )?),
            CaseCommand::RecordLinkFailure { failure, .. } => Ok(lifecycle::evidence(
                case,
                actor,
                crate::event::EventBody::EvidenceUnverified(failure.clone()),
            )?),
            CaseCommand::RecordRecheck { recheck, .. } => Ok(lifecycle::evidence(
                case,
                actor,
                crate::event::EventBody::EvidenceRechecked(recheck.clone()),
            )?),
            CaseCommand::HoldEvidence { .. } => Err(Refusal {
                rule: Code::EvidenceHeldByReference,
                message: "evidence for a reference is placed by the store".to_string(),
                hint: None,
            }),
            CaseCommand::RecordDelivery { .. } => Err(Refusal {
                rule: Code::NotifyRecordedByTheOutbox,
                message: "delivery attempts are recorded by the outbox".to_string(),
                hint: None,
            }),
            CaseCommand::Merge { .. } => Err(Refusal {
                rule: Code::MergeNeedsBothCases,
                message: "a merge is decided with both cases".to_string(),
                hint: None,
            }),
        }
    }
}
