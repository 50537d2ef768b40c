//! What goes into the outbox: the notices each event owes, over the
//! configured routes ([`crate::notice::Routing`]), and the payload sent for
//! each, rendered from the ledger.

use crate::case::{CaseState, CaseView};
use crate::event::{Event, EventBody};
use crate::notice::{Audience, Notice, Owed, Routing, CHANGE_APPROVED_FOR_REVIEW};

/// The notices `event` owes, given the case before it (`None` for the first
/// event) and after it:
///
/// | event | notices |
/// |---|---|
/// | a request (not break-glass) | `approval_needed` to approvers |
/// | the approval that completes the approvals | `case_approved` to the requester and the executor, `change_approved` to reviewers |
/// | a denial | `case_denied` to the requester |
/// | a completed execution | `execution_completed` to the requester, `review_needed` to reviewers |
/// | break-glass | `break_glass_used` to security |
/// | an observed change no case sanctioned | `change_unsanctioned` to security, `review_needed` to reviewers |
/// | an observed change with drift | `drift_observed` to security |
/// | revocation due | `revocation_due` to the executor |
/// | access about to expire | `access_expiring` to the owner |
/// | an escalation | `escalation` to the escalation route |
pub fn notices(before: Option<&CaseView>, event: &Event, after: &CaseView) -> Vec<Notice> {
    let notice = |kind, audience| Notice { kind, audience };
    let was = before.map(|view| view.state);
    match &event.body {
        EventBody::RequestCreated(_) => vec![notice("approval_needed", Audience::Approvers)],
        EventBody::ApprovalGranted(_) | EventBody::ApprovalConfirmed(_)
            if after.state == CaseState::Approved && was != Some(CaseState::Approved) =>
        {
            vec![
                notice("case_approved", Audience::Requester),
                notice("case_approved", Audience::Executor),
                notice(CHANGE_APPROVED_FOR_REVIEW, Audience::Reviewers),
            ]
        }
        EventBody::ApprovalDenied(_) => vec![notice("case_denied", Audience::Requester)],
        EventBody::ExecutionCompleted(_) if was != Some(CaseState::PendingReview) => vec![
            notice("execution_completed", Audience::Requester),
            notice("review_needed", Audience::Reviewers),
        ],
        // Break-glass: the request and the execution are recorded together;
        // security and the reviewers are told once, by the invocation.
        EventBody::BreakGlassInvoked(_) => vec![
            notice("break_glass_used", Audience::Security),
            notice("review_needed", Audience::Reviewers),
        ],
        EventBody::ExecutionObserved(observed) if observed.review_deadline.is_some() => vec![
            notice("change_unsanctioned", Audience::Security),
            notice("review_needed", Audience::Reviewers),
        ],
        EventBody::ExecutionObserved(observed) if !observed.drift.is_empty() => {
            vec![notice("drift_observed", Audience::Security)]
        }
        EventBody::RevocationDue(_) => vec![notice("revocation_due", Audience::Executor)],
        EventBody::ExpiryApproaching(_) => vec![notice("access_expiring", Audience::Owner)],
        EventBody::EscalationRaised(_) => vec![notice("escalation", Audience::Escalation)],
        _ => Vec::new(),
    }
}

impl Routing {
    /// The notifications `event` owes over the configured routes.
    pub fn owed(&self, before: Option<&CaseView>, event: &Event, after: &CaseView) -> Vec<Owed> {
        let mut owed = Vec::new();
        for notice in notices(before, event, after) {
            for route in self.routes_for(&after.rule.name, notice.audience) {
                let recipient = route.recipient.as_ref().map(|template| {
                    match principal_of(notice.audience, after) {
                        Some(principal) => template.replace("{principal}", &principal),
                        None => template.clone(),
                    }
                });
                owed.push(Owed {
                    delivery_id: format!("{}.{}", event.event_id, owed.len()),
                    kind: notice.kind.to_string(),
                    audience: notice.audience,
                    channel: route.channel.clone(),
                    recipient,
                });
            }
        }
        if let Some(ticket) = after.ticket.as_ref().filter(|_| writes_back(event)) {
            for channel in self.linked.get(&ticket.system).into_iter().flatten() {
                owed.push(Owed {
                    delivery_id: format!("{}.{}", event.event_id, owed.len()),
                    kind: crate::notice::CASE_UPDATE.to_string(),
                    audience: Audience::Linked,
                    channel: channel.clone(),
                    recipient: Some(ticket.key.clone()),
                });
            }
        }
        owed
    }
}

/// Whether `event` is written back to the ticket its case carries: every
/// step of the case, but not the ledger's bookkeeping about deliveries
/// (a write-back attempt owing a write-back would never end), nor what the
/// ticket itself reported.
fn writes_back(event: &Event) -> bool {
    !matches!(
        event.body,
        EventBody::NotificationAttempted(_)
            | EventBody::EscalationRaised(_)
            | EventBody::ExpiryApproaching(_)
            | EventBody::TicketChanged(_)
    )
}

/// The one principal an audience denotes in a case, if it denotes one.
fn principal_of(audience: Audience, case: &CaseView) -> Option<String> {
    match audience {
        Audience::Requester => Some(case.requester.principal.to_string()),
        Audience::Executor => case
            .executions
            .iter()
            .rev()
            .find(|execution| execution.completed)
            .map(|execution| execution.by.principal.to_string()),
        Audience::Owner => Some(match case.change.subject().kind {
            crate::model::SubjectKind::User => case.change.subject().id.clone(),
            _ => case.requester.principal.to_string(),
        }),
        _ => None,
    }
}

/// A one-line title and a plain-text body for a notification of `kind`
/// about `event` in `case`.
pub fn message(kind: &str, event: &Event, case: &CaseView) -> (String, String) {
    let change = &case.change;
    let title = match kind {
        "approval_needed" => format!("Approval needed: {change}"),
        "case_approved" => format!("Approved: {change}"),
        CHANGE_APPROVED_FOR_REVIEW => format!("Approved, to be executed: {change}"),
        "case_denied" => format!("Denied: {change}"),
        "execution_completed" => format!("Executed: {change}"),
        "review_needed" => format!("Review needed: {change}"),
        "break_glass_used" => format!("BREAK-GLASS: {change}"),
        "revocation_due" => format!("Revoke now: {change}"),
        "access_expiring" => format!("Access ending: {change}"),
        "escalation" => format!("ESCALATION: {change}"),
        other => format!("{other}: {change}"),
    };
    let mut text = format!(
        "Case {}: {}\nState: {}\nRule: {}\nBy: {} ({}){}\n",
        case.case_id,
        event.body.summary(),
        case.state,
        case.rule.name,
        event.actor.principal,
        event.actor.kind.as_str(),
        event
            .actor
            .on_behalf_of
            .as_ref()
            .map(|party| format!(" on behalf of {party}"))
            .unwrap_or_default()
    );
    if let Some(justification) = &case.justification {
        text.push_str(&format!("Justification: {justification}\n"));
    }
    if let Some(ticket) = &case.ticket {
        text.push_str(&format!("Ticket: {ticket}\n"));
    }
    (title, text)
}

/// The notification `owed` by `event` as delivered (the shape of
/// `custody_notify::Notification`), rendered from the ledger: the event and
/// the case as it stood right after it. The outbox keeps only a pointer to
/// the owing event, so what is sent is exactly what the ledger says, and
/// rendering costs nothing on the write path.
pub fn payload(owed: &Owed, event: &Event, after: &CaseView) -> serde_json::Value {
    let (mut title, mut text) = message(&owed.kind, event, after);
    // A drill's notifications reach real people and channels: they say so
    // first, so nobody acts on them as on a real change.
    if after.drill {
        title = format!("[DRILL] {title}");
        text = format!("This is a drill (`custody drill`): no real access changes.\n{text}");
    }
    let mut payload = serde_json::json!({
        "delivery_id": owed.delivery_id,
        "case_id": event.case_id,
        "event_id": event.event_id,
        "kind": owed.kind,
        "title": title,
        "text": text,
        "case_url": null,
        "occurred_at": event.occurred_at.to_string(),
        "actor": {
            "principal": event.actor.principal,
            "kind": event.actor.kind.as_str(),
            "org": event.actor.org,
            "on_behalf_of": event.actor.on_behalf_of,
            "via": event.actor.via.to_string(),
        },
        "data": {
            "audience": owed.audience,
            "state": after.state,
            "rule": after.rule.name,
            "change": after.change,
            "event_kind": event.body.kind_name(),
        },
    });
    if after.drill {
        payload["data"]["drill"] = serde_json::Value::Bool(true);
    }
    payload
}
