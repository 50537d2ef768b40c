//! What every format says about an event kind beside its name: how severe it
//! is and whether it reports a success or a failure. One table, so the
//! formats agree with each other.

use custody_core::event::{DeliveryOutcome, EventBody, ReviewOutcome};

/// How much attention an event asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A step of a case going as it should.
    Informational,
    /// Access or administration changed, or a request was turned down.
    Low,
    /// Something failed or drifted and may need a look.
    Medium,
    /// Break-glass, an escalation, or a review that found the change wrong.
    High,
}

/// Whether the event reports something that worked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It worked (or the fact was simply recorded).
    Success,
    /// It failed: an execution, a delivery, a capture, or an approval denied.
    Failure,
}

/// The severity of an event.
pub fn severity(body: &EventBody) -> Severity {
    match body {
        EventBody::BreakGlassInvoked(_) | EventBody::EscalationRaised(_) => Severity::High,
        // A change no case sanctioned, or one that drifted from its case.
        EventBody::ExecutionObserved(observed) if observed.review_deadline.is_some() => {
            Severity::High
        }
        EventBody::ExecutionObserved(observed) if !observed.drift.is_empty() => Severity::Medium,
        EventBody::ExecutionObserved(_) => Severity::Low,
        // The monitor's finding, at the severity `verify` gives it.
        EventBody::FindingRaised(raised) => match raised.severity.as_str() {
            "critical" | "high" => Severity::High,
            "medium" => Severity::Medium,
            "low" => Severity::Low,
            _ => Severity::Informational,
        },
        EventBody::ReviewCompleted(review) => match review.outcome {
            ReviewOutcome::Confirmed => Severity::Informational,
            ReviewOutcome::Revoke => Severity::Medium,
            ReviewOutcome::Mismatch => Severity::High,
        },
        EventBody::ExecutionFailed(_) | EventBody::EvidenceUnverified(_) => Severity::Medium,
        EventBody::EvidenceRechecked(recheck) => {
            if recheck.drifted {
                Severity::Medium
            } else {
                Severity::Informational
            }
        }
        EventBody::NotificationAttempted(attempt) => match attempt.outcome {
            DeliveryOutcome::Delivered => Severity::Informational,
            DeliveryOutcome::Failed => Severity::Low,
            DeliveryOutcome::Dead => Severity::Medium,
        },
        EventBody::ApprovalDenied(_)
        | EventBody::ExecutionCompleted(_)
        | EventBody::RevocationExecuted(_)
        | EventBody::RevocationDue(_)
        | EventBody::PolicyAdopted(_)
        | EventBody::PrincipalAdded(_)
        | EventBody::PrincipalGroupsChanged(_)
        | EventBody::TokenIssued(_)
        | EventBody::TokenRevoked(_)
        | EventBody::DelegationGranted(_)
        | EventBody::DelegationRevoked(_)
        | EventBody::IdentityMapped(_)
        | EventBody::IdentityUnmapped(_) => Severity::Low,
        EventBody::RequestCreated(_)
        | EventBody::ApprovalGranted(_)
        | EventBody::ApprovalConfirmed(_)
        | EventBody::CommentAdded(_)
        | EventBody::DuplicateMerged(_)
        | EventBody::DuplicateLinked(_)
        | EventBody::RevocationOpened(_)
        | EventBody::OpenedByReview(_)
        | EventBody::ExpiryApproaching(_)
        | EventBody::EvidenceAttached(_)
        | EventBody::EvidenceHeld(_)
        | EventBody::EvidenceJoined(_)
        | EventBody::EvidenceReleased(_) => Severity::Informational,
        // `EventBody` is non-exhaustive for other crates: a kind added later
        // is informational until this table names it (a test lists them all).
        #[allow(unreachable_patterns)]
        _ => Severity::Informational,
    }
}

/// The outcome of an event.
pub fn outcome(body: &EventBody) -> Outcome {
    match body {
        EventBody::ExecutionFailed(_)
        | EventBody::ApprovalDenied(_)
        | EventBody::EvidenceUnverified(_) => Outcome::Failure,
        EventBody::NotificationAttempted(attempt) => match attempt.outcome {
            DeliveryOutcome::Delivered => Outcome::Success,
            DeliveryOutcome::Failed | DeliveryOutcome::Dead => Outcome::Failure,
        },
        EventBody::EvidenceRechecked(recheck) if recheck.error.is_some() => Outcome::Failure,
        _ => Outcome::Success,
    }
}
