//! The lifecycle's rules, re-checked: the rule table
//! ([`crate::lifecycle::judge`]) at every event, with the case as it stood
//! before it, and what only the end of a trail can tell (executions whose
//! approvals never came or came late, unconfirmed chat approvals, missed
//! deadlines).

use super::chain::CaseTrail;
use super::finding::Finding;
use crate::case::{CaseState, CaseView};
use crate::code::Code;
use crate::event::Event;
use crate::lifecycle::{judge_request, violations_with};
use crate::time::Timestamp;

/// The rules a case's first event breaks.
pub(super) fn at_request(event: &Event, log_index: u64) -> Vec<Finding> {
    judge_request(event)
        .into_iter()
        .map(|broken| {
            Finding::new(broken.refusal.rule, broken.refusal.message)
                .severity(broken.severity)
                .at_event(event, log_index)
        })
        .collect()
}

/// The rules `event` breaks on `view`, the case as it stood before it;
/// `merge_partner` is the other case of a merge as it stood before it.
pub(super) fn at_event(
    view: &CaseView,
    event: &Event,
    merge_partner: Option<&CaseView>,
    log_index: u64,
) -> Vec<Finding> {
    let mut findings: Vec<Finding> = violations_with(view, event, merge_partner)
        .into_iter()
        .map(|(refusal, severity)| {
            Finding::new(refusal.rule, refusal.message)
                .severity(severity)
                .at_event(event, log_index)
        })
        .collect();
    findings.extend(ticket_drift(view, event, log_index));
    findings.extend(super::observed::at_event(view, event, log_index));
    findings
}

/// A ticket a connector saw describe another change than the one approved,
/// after an approval: the ticket was edited after approval.
fn ticket_drift(view: &CaseView, event: &Event, log_index: u64) -> Option<Finding> {
    let crate::event::EventBody::TicketChanged(changed) = &event.body else {
        return None;
    };
    let approved = view
        .approvals
        .iter()
        .any(|approval| approval.change_hash == view.change_hash);
    (approved && changed.change != view.change).then(|| {
        Finding::new(
            Code::ConnectorTicketDrift,
            format!(
                "ticket {} of case {} was edited after the case was approved: it now describes {}, the approval covers {}",
                changed.ticket, view.case_id, changed.change, view.change
            ),
        )
        .at_event(event, log_index)
    })
}

/// A vendor acts only under a delegation grant named in its actor.
pub(super) fn delegation_missing(event: &Event, log_index: u64) -> Option<Finding> {
    (event.actor.kind == crate::PrincipalKind::Vendor && event.actor.delegation_grant.is_none())
        .then(|| {
            Finding::new(
                Code::DelegationMissing,
                format!(
                    "vendor principal {} acted on case {} without a delegation grant",
                    event.actor.principal, event.case_id
                ),
            )
            .at_event(event, log_index)
        })
}

/// What the end of a case's trail tells: deadlines passed at `now` (when
/// the audit has a time), executions whose approvals never came or came
/// after them, and chat approvals their approver never confirmed.
pub(super) fn end_of_trail(
    case_id: &str,
    trail: &CaseTrail,
    view: &CaseView,
    now: Option<Timestamp>,
    findings: &mut Vec<Finding>,
) {
    if let Some(now) = now {
        deadlines(case_id, view, now, findings);
    }
    let execution_finding = |code: Code, message: String| {
        Finding::new(code, message)
            .case(case_id)
            .event(view.execution_event.as_ref().map(ToString::to_string))
            .seq(trail.first_execution.map(|(seq, _)| seq))
            .log_index(trail.first_execution.map(|(_, index)| index))
    };
    // Judged from the whole trail, not the final state: a later event (a
    // review refused at write time, say) must not hide an execution whose
    // approvals never came.
    if view.awaiting_approval || view.state == CaseState::ExecutedPendingApproval {
        findings.push(execution_finding(
            Code::LifecycleExecutionWithoutApproval,
            format!(
                "case {case_id} was executed without the {} approval(s) it needed, and none has been recorded since",
                view.approvals_required
            ),
        ));
    }
    if view.approved_after_execution {
        findings.push(execution_finding(
            Code::LifecycleApprovedAfterExecution,
            format!(
                "case {case_id} was executed at {} and its approvals were given only afterwards",
                view.executed_at
                    .map(|at| at.to_string())
                    .unwrap_or_default()
            ),
        ));
    }
    for approval in &view.approvals {
        if approval.attested && !approval.confirmed && !view.rule.allow_attested_approvals {
            findings.push(
                Finding::new(
                    Code::ApprovalUnconfirmedAttestation,
                    format!(
                        "{} recorded a chat approval for {} on case {} that {} never confirmed; it does not count",
                        approval.by.principal, approval.approver, case_id, approval.approver
                    ),
                )
                .case(case_id)
                .event(approval.by.event_id.to_string())
                .seq(approval.by.seq),
            );
        }
    }
}

/// The obligations of a case whose deadline passed by `now` and that were
/// not met: a post-hoc review after break-glass, a review, the revocation
/// of time-bound access.
fn deadlines(case_id: &str, view: &CaseView, now: Timestamp, findings: &mut Vec<Finding>) {
    if let Some(deadline) = view.break_glass_deadline {
        if view.reviews.is_empty() && deadline <= now {
            let escalated = view
                .escalations
                .contains(&crate::event::EscalationReason::BreakGlassReviewOverdue);
            findings.push(
                Finding::new(
                    Code::BreakGlassReviewOverdue,
                    format!(
                        "case {case_id} was {} and its post-hoc review was due {deadline}; it has not been reviewed ({})",
                        if view.opened_by_observation {
                            "opened for a change a connector observed with no case"
                        } else {
                            "executed under break-glass"
                        },
                        if escalated { "escalated by the ledger" } else { "and no escalation is recorded" }
                    ),
                )
                .case(case_id),
            );
        }
    }
    if let Some(due) = view.review_due {
        if view.reviews.is_empty() && due <= now {
            findings.push(
                Finding::new(
                    Code::ReviewOverdue,
                    format!(
                        "case {case_id} was executed and its review was due {due}; it has not been reviewed"
                    ),
                )
                .case(case_id),
            );
        }
    }
    if let Some(expires_at) = view.expires_at {
        let grace_end = expires_at.plus_seconds(crate::obligation::REVOCATION_GRACE_SECONDS);
        if !view.revoked && grace_end <= now {
            findings.push(
                Finding::new(
                    Code::ExpiryRevocationOverdue,
                    format!(
                        "the time-bound access of case {case_id} ended at {expires_at} and no revocation is recorded{}",
                        if view.revocation_due { " (the ledger recorded it as due)" } else { "" }
                    ),
                )
                .case(case_id),
            );
        }
    }
}
