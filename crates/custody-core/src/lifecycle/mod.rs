//! The lifecycle of a case and the default separation of duties.
//!
//! Each step takes the case in the state it needs, as a type: an execution
//! needs an [`ApprovedCase`], which only [`CaseView::approved`] can make, and a
//! review needs an [`ExecutedCase`], which only [`CaseView::executed`] can
//! make. A step returns a [`Draft`] (the event to append) or a [`Refusal`]
//! naming the rule that refused it.
//!
//! The rules live in one table, [`judge`], which runs in two places: at write
//! time, where each step builds the event it would append and refuses with
//! the first rule the event breaks, and in [`crate::audit`] ([`violations`]),
//! which re-checks every stored event and reports every rule it breaks, at
//! that event, with the same code. A rule's code is stable and documented in
//! `docs/findings.md`.

use serde::Serialize;

use crate::case::{CaseState, CaseView};
use crate::change_set::ChangeSet;
use crate::code::Code;
use crate::event::EVENT_FORMAT_VERSION;
use crate::event::{
    BreakGlass, CaseLink, ChatApproval, Comment, Confirmation, Decision, Escalation,
    EscalationReason, Event, EventBody, Execution, MergeLink, RequestCreated, Review,
    ReviewOutcome, RevocationDue,
};
use crate::id::{CaseId, EventId, Sha256Hash};
use crate::model::{Actor, Change, PrincipalId, Role, Ticket};
use crate::policy::AppliedRule;
use crate::time::Timestamp;

// Moved to modules of their own; kept here so existing paths still resolve.
pub use crate::obligation::{
    overdue, pending_obligations, Obligation, APPROVAL_OVERDUE, BREAK_GLASS_REVIEW_OVERDUE,
    EXPIRY_NOTICE, EXPIRY_NOTICE_MIN_DURATION_SECONDS, EXPIRY_NOTICE_SECONDS,
    EXPIRY_REVOCATION_DUE, REVIEW_OVERDUE, REVOCATION_GRACE_SECONDS,
};
pub use crate::severity::Severity;

mod rules;
mod steps;

pub use rules::*;
pub use steps::*;

/// An event to append, before the store gives it an ID, a sequence number and
/// a place in the chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    /// What happened.
    pub body: EventBody,
    /// The role the actor acted in.
    pub role: Role,
    /// The event this one responds to (an approval responds to the request,
    /// an execution to the last approval, a review to the execution).
    pub causation: Option<EventId>,
}

impl Draft {
    /// Marks the request this draft opens a case with as a drill's
    /// (`custody drill`); any other draft is returned unchanged.
    pub fn drill(mut self, drill: bool) -> Draft {
        if let EventBody::RequestCreated(request) = &mut self.body {
            request.drill = drill;
        }
        self
    }
}

/// Why a step was refused: a stable rule code, a message and a hint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Stable code of the rule, e.g. `sod.requester-cannot-approve`.
    pub rule: Code,
    /// What was refused and why.
    pub message: String,
    /// What to do instead.
    pub hint: Option<String>,
}

/// A case whose approvals satisfy its policy: the only way to execute.
#[derive(Debug, Clone, Copy)]
pub struct ApprovedCase<'case> {
    case: &'case CaseView,
}

/// A case with a completed execution: the only way to review.
#[derive(Debug, Clone, Copy)]
pub struct ExecutedCase<'case> {
    case: &'case CaseView,
}

/// Where a draft goes in the ledger: everything the store decides.
#[derive(Clone, Debug)]
pub struct Placement {
    /// The case.
    pub case_id: CaseId,
    /// The sequence number the event takes.
    pub seq: u64,
    /// Hash of the case's previous event (`None` for seq 1).
    pub prev_hash: Option<Sha256Hash>,
    /// When the ledger accepted it.
    pub recorded_at: Timestamp,
    /// When it happened according to the client (defaults to `recorded_at`).
    pub occurred_at: Option<Timestamp>,
    /// The idempotency key of the write.
    pub idempotency_key: Option<String>,
    /// The outside system the write came from and its ID there, for a
    /// connector's write.
    pub origin: Option<crate::event::Origin>,
}

impl Draft {
    /// Turns the draft into the event to store, acted by `actor`.
    pub fn seal(self, actor: Actor, placement: Placement) -> Event {
        Event {
            v: EVENT_FORMAT_VERSION,
            event_id: EventId::generate(),
            case_id: placement.case_id,
            seq: placement.seq,
            prev_hash: placement.prev_hash,
            body: self.body,
            actor,
            role: self.role,
            occurred_at: placement.occurred_at.unwrap_or(placement.recorded_at),
            recorded_at: placement.recorded_at,
            source: placement
                .origin
                .as_ref()
                .map(|origin| origin.source.clone()),
            external_id: placement.origin.map(|origin| origin.external_id),
            causation: self.causation,
            idempotency_key: placement.idempotency_key,
            notify: Vec::new(),
        }
    }
}

impl Refusal {
    fn new(rule: Code, message: String, hint: &str) -> Refusal {
        Refusal {
            rule,
            message,
            hint: Some(hint.to_string()),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} [{}]", self.message, self.rule)
    }
}

impl CaseView {
    /// The case as an [`ApprovedCase`], or the reason it cannot be executed
    /// (the same rule the table applies to an execution event, see [`judge`]).
    pub fn approved(&self) -> Result<ApprovedCase<'_>, Refusal> {
        match execution_state(self, false) {
            None => Ok(ApprovedCase { case: self }),
            Some((refusal, _)) => Err(refusal),
        }
    }

    /// The refusal of `verb` on a case merged into another.
    pub fn merged_refusal(&self, verb: &str) -> Refusal {
        let survivor = self
            .merged_into
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        Refusal::new(
            Code::LifecycleCaseMerged,
            format!(
                "case {} was merged into {survivor} as a duplicate; {verb} the surviving case instead",
                self.case_id
            ),
            &format!("custody show {survivor}"),
        )
    }

    /// The case as an [`ExecutedCase`], or the reason it cannot be reviewed
    /// (the same rule the table applies to a review event, see [`judge`]).
    pub fn executed(&self) -> Result<ExecutedCase<'_>, Refusal> {
        match review_state(self) {
            None => Ok(ExecutedCase { case: self }),
            Some((refusal, _)) => Err(refusal),
        }
    }

    /// The role `principal` holds in this case, for events that are not role-specific.
    pub fn role_of(&self, principal: &PrincipalId) -> Role {
        if self
            .reviews
            .iter()
            .any(|review| &review.by.principal == principal)
        {
            Role::Reviewer
        } else if self.executors().contains(&principal) {
            Role::Executor
        } else if self
            .approvals
            .iter()
            .any(|approval| &approval.by.principal == principal)
            || self
                .denials
                .iter()
                .any(|denial| &denial.by.principal == principal)
        {
            Role::Approver
        } else if &self.requester.principal == principal {
            Role::Requester
        } else {
            Role::Observer
        }
    }
}
