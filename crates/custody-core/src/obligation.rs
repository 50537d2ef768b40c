//! Obligations: what a case owes by a deadline, derived from its trail. A
//! post-hoc review after break-glass, a review after an execution with a
//! deadline, the end of time-bound access (and a notice before it), an
//! answer to a request within the rule's approval deadline. When a deadline
//! passes the ledger acts on it itself ([`crate::lifecycle::escalate`]), once:
//! an obligation it acted on is no longer pending.

use crate::case::{CaseState, CaseView};
use crate::time::Timestamp;

/// The obligations of `case` that are overdue at `now`, as reason codes with
/// their deadlines, excluding those the ledger already acted on.
pub fn overdue(case: &CaseView, now: Timestamp) -> Vec<(&'static str, Timestamp)> {
    pending_obligations(case)
        .into_iter()
        .filter(|(_, deadline)| *deadline <= now)
        .collect()
}

/// Every obligation of `case` the ledger has not yet acted on, with its
/// deadline: a post-hoc review after break-glass, a review after an
/// execution with a deadline, the revocation of time-bound access.
pub fn pending_obligations(case: &CaseView) -> Vec<(&'static str, Timestamp)> {
    let escalated = |reason: &str| case.escalations.iter().any(|raised| raised == reason);
    let mut pending = Vec::new();
    if case.reviews.is_empty() {
        if let Some(deadline) = case.break_glass_deadline {
            if case.state == CaseState::PendingReview && !escalated(BREAK_GLASS_REVIEW_OVERDUE) {
                pending.push((BREAK_GLASS_REVIEW_OVERDUE, deadline));
            }
        }
        if let Some(deadline) = case.review_due {
            if case.state == CaseState::Executed && !escalated(REVIEW_OVERDUE) {
                pending.push((REVIEW_OVERDUE, deadline));
            }
        }
    }
    if let Some(expires_at) = case.expires_at {
        if !case.revoked && !case.revocation_due {
            pending.push((EXPIRY_REVOCATION_DUE, expires_at));
            // Long grants get a notice before they end.
            let long = case
                .change
                .duration_seconds
                .is_some_and(|seconds| seconds >= EXPIRY_NOTICE_MIN_DURATION_SECONDS);
            if long && !case.expiry_noticed {
                pending.push((
                    EXPIRY_NOTICE,
                    expires_at.plus_seconds(-EXPIRY_NOTICE_SECONDS),
                ));
            }
        }
    }
    if case.state == CaseState::Open && !escalated(APPROVAL_OVERDUE) {
        if let Some(seconds) = case.rule.approval_deadline_seconds {
            pending.push((
                APPROVAL_OVERDUE,
                case.opened_at.plus_seconds(seconds as i64),
            ));
        }
    }
    pending
}

/// The obligation code of the notice before time-bound access ends.
pub const EXPIRY_NOTICE: &str = "expiry.notice";

/// How long before time-bound access ends its owner is told.
pub const EXPIRY_NOTICE_SECONDS: i64 = 3600;

/// Grants shorter than this get no notice before they end.
pub const EXPIRY_NOTICE_MIN_DURATION_SECONDS: u64 = 2 * 3600;

/// The reason code of a request no approver answered within the rule's
/// `approval_deadline`.
pub const APPROVAL_OVERDUE: &str = "approval.overdue";

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

/// The reason code of a missed post-hoc review after break-glass.
pub const BREAK_GLASS_REVIEW_OVERDUE: &str = "break-glass.review-overdue";

/// The reason code of a review missed after an ordinary execution.
pub const REVIEW_OVERDUE: &str = "review.overdue";

/// The reason code under which the ledger records that time-bound access ended.
pub const EXPIRY_REVOCATION_DUE: &str = "expiry.revocation-due";

/// How long after time-bound access ends its revocation may still be
/// recorded before `verify` reports it overdue.
pub const REVOCATION_GRACE_SECONDS: i64 = 3600;
