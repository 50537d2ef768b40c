//! Obligations: what a case owes by a deadline, derived from its trail. A
//! post-hoc review after break-glass, a review after an execution with a
//! deadline, the end of time-bound access (and a notice before it), an
//! answer to a request within the rule's approval deadline. When a deadline
//! passes the ledger acts on it itself ([`crate::lifecycle::escalate`]), once:
//! an obligation it acted on is no longer pending.

use crate::case::{CaseState, CaseView};
use crate::code::{coded, Code};
use crate::event::EscalationReason;
use crate::time::Timestamp;

/// Something a case owes by a deadline, named by the code the ledger
/// records it under when the deadline passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Obligation {
    /// The post-hoc review of a break-glass execution
    /// (`break-glass.review-overdue`, escalated).
    BreakGlassReview,
    /// The review of an execution with a deadline (`review.overdue`,
    /// escalated).
    Review,
    /// An answer to a request within its rule's `approval_deadline`
    /// (`approval.overdue`, escalated).
    Approval,
    /// The revocation of time-bound access that ended
    /// (`expiry.revocation-due`, recorded as `revocation_due`).
    Revocation,
    /// The notice before time-bound access ends (`expiry.notice`, recorded
    /// as `expiry_approaching`).
    ExpiryNotice,
}

impl Obligation {
    /// Every obligation.
    pub const ALL: [Obligation; 5] = [
        Obligation::BreakGlassReview,
        Obligation::Review,
        Obligation::Approval,
        Obligation::Revocation,
        Obligation::ExpiryNotice,
    ];

    /// The code the ledger records it under when its deadline passes.
    pub fn code(self) -> Code {
        match self {
            Obligation::BreakGlassReview => Code::BreakGlassReviewOverdue,
            Obligation::Review => Code::ReviewOverdue,
            Obligation::Approval => Code::ApprovalOverdue,
            Obligation::Revocation => Code::ExpiryRevocationDue,
            Obligation::ExpiryNotice => Code::ExpiryNotice,
        }
    }

    /// The escalation the ledger raises when it is missed; `None` for the
    /// obligations recorded as events of their own (the end of time-bound
    /// access, the notice before it).
    pub fn escalation(self) -> Option<EscalationReason> {
        match self {
            Obligation::BreakGlassReview => Some(EscalationReason::BreakGlassReviewOverdue),
            Obligation::Review => Some(EscalationReason::ReviewOverdue),
            Obligation::Approval => Some(EscalationReason::ApprovalOverdue),
            Obligation::Revocation | Obligation::ExpiryNotice => None,
        }
    }
}

coded!(Obligation, "obligation");

/// The obligations of `case` that are overdue at `now`, with their
/// deadlines, excluding those the ledger already acted on.
pub fn overdue(case: &CaseView, now: Timestamp) -> Vec<(Obligation, Timestamp)> {
    pending_obligations(case)
        .into_iter()
        .filter(|(_, deadline)| *deadline <= now)
        .collect()
}

/// Every obligation of `case` the ledger has not yet acted on, with its
/// deadline: a post-hoc review after break-glass, a review after an
/// execution with a deadline, the revocation of time-bound access.
pub fn pending_obligations(case: &CaseView) -> Vec<(Obligation, Timestamp)> {
    let escalated = |reason: EscalationReason| case.escalations.contains(&reason);
    let mut pending = Vec::new();
    if case.reviews.is_empty() {
        if let Some(deadline) = case.break_glass_deadline {
            if case.state == CaseState::PendingReview
                && !escalated(EscalationReason::BreakGlassReviewOverdue)
            {
                pending.push((Obligation::BreakGlassReview, deadline));
            }
        }
        if let Some(deadline) = case.review_due {
            if case.state == CaseState::Executed && !escalated(EscalationReason::ReviewOverdue) {
                pending.push((Obligation::Review, deadline));
            }
        }
    }
    if let Some(expires_at) = case.expires_at {
        if !case.revoked && !case.revocation_due {
            pending.push((Obligation::Revocation, expires_at));
            // Long grants get a notice before they end.
            let long = case
                .change
                .duration_seconds()
                .is_some_and(|seconds| seconds >= EXPIRY_NOTICE_MIN_DURATION_SECONDS);
            if long && !case.expiry_noticed {
                pending.push((
                    Obligation::ExpiryNotice,
                    expires_at.plus_seconds(-EXPIRY_NOTICE_SECONDS),
                ));
            }
        }
    }
    if case.state == CaseState::Open && !escalated(EscalationReason::ApprovalOverdue) {
        if let Some(seconds) = case.rule.approval_deadline_seconds {
            pending.push((
                Obligation::Approval,
                case.opened_at.plus_unsigned_seconds(seconds),
            ));
        }
    }
    pending
}

impl CaseView {
    /// The earliest deadline of an obligation the ledger has not acted on:
    /// the store indexes it so that timers scan only cases that are due.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        pending_obligations(self)
            .into_iter()
            .map(|(_, deadline)| deadline)
            .min()
    }
}

/// How long before time-bound access ends its owner is told.
pub const EXPIRY_NOTICE_SECONDS: i64 = 3600;

/// Grants shorter than this get no notice before they end.
pub const EXPIRY_NOTICE_MIN_DURATION_SECONDS: u64 = 2 * 3600;

/// How long after time-bound access ends its revocation may still be
/// recorded before `verify` reports it overdue.
pub const REVOCATION_GRACE_SECONDS: i64 = 3600;

/// [`Obligation::BreakGlassReview`], by its former name.
pub const BREAK_GLASS_REVIEW_OVERDUE: Obligation = Obligation::BreakGlassReview;
/// [`Obligation::Review`], by its former name.
pub const REVIEW_OVERDUE: Obligation = Obligation::Review;
/// [`Obligation::Approval`], by its former name.
pub const APPROVAL_OVERDUE: Obligation = Obligation::Approval;
/// [`Obligation::Revocation`], by its former name.
pub const EXPIRY_REVOCATION_DUE: Obligation = Obligation::Revocation;
/// [`Obligation::ExpiryNotice`], by its former name.
pub const EXPIRY_NOTICE: Obligation = Obligation::ExpiryNotice;
