//! Who must be told what: the notifications the workflow owes.
//!
//! An event that owes notifications carries them in its `notify` field
//! ([`Owed`]): one per configured route of each audience, each with a
//! delivery ID that stays the same across retries. They are part of the
//! event's canonical bytes, so what was owed is as tamper-evident as the
//! event itself. Every delivery attempt is a `notification_attempted` event of
//! the same case, and a delivery that gives up is escalated
//! (`escalation_raised` naming the delivery). `custody verify` matches the
//! three: an owed notification that was neither delivered nor escalated, and
//! an automated execution that happened before the reviewer had been told of
//! the approved change, are findings.
//!
//! Which audiences an event owes is fixed here ([`notices`]); which channels
//! and recipients serve each audience is configuration ([`Routing`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::case::{CaseState, CaseView};
use crate::event::{Event, EventBody};

/// Who a notification is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Those who can approve the request (the rule's approver groups).
    Approvers,
    /// The principal who requested the change.
    Requester,
    /// Those who carry out changes.
    Executor,
    /// Those who review changes after execution.
    Reviewers,
    /// The security team (break-glass).
    Security,
    /// Whoever holds time-bound access that is about to end.
    Owner,
    /// The alternate when something was missed: a notification that could
    /// not be delivered, a request nobody answered in time, an overdue review.
    Escalation,
}

impl Audience {
    /// Every audience, in order.
    pub const ALL: [Audience; 7] = [
        Audience::Approvers,
        Audience::Requester,
        Audience::Executor,
        Audience::Reviewers,
        Audience::Security,
        Audience::Owner,
        Audience::Escalation,
    ];

    /// The audience's name, as in configuration and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Approvers => "approvers",
            Audience::Requester => "requester",
            Audience::Executor => "executor",
            Audience::Reviewers => "reviewers",
            Audience::Security => "security",
            Audience::Owner => "owner",
            Audience::Escalation => "escalation",
        }
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Audience {
    type Err = String;

    fn from_str(text: &str) -> Result<Audience, String> {
        Audience::ALL
            .into_iter()
            .find(|audience| audience.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "unknown audience `{text}`; expected one of {}",
                    Audience::ALL.map(Audience::as_str).join(", ")
                )
            })
    }
}

/// A notification an event owes: to whom, over which channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Owed {
    /// Unique per message and the same across retries: `<event ID>.<n>`.
    pub delivery_id: String,
    /// What it says, such as `approval_needed` (see [`notices`]).
    pub kind: String,
    /// Who it is for.
    pub audience: Audience,
    /// The configured channel that carries it.
    pub channel: String,
    /// The recipient on that channel, when the route names one (an address).
    #[serde(deserialize_with = "Option::deserialize")]
    pub recipient: Option<String>,
}

/// One notification kind owed to one audience.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice {
    /// What it says.
    pub kind: &'static str,
    /// Who it is for.
    pub audience: Audience,
}

/// The kind of the notice that tells reviewers a change was approved, before
/// it is executed.
pub const CHANGE_APPROVED_FOR_REVIEW: &str = "change_approved";

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
        EventBody::RevocationDue(_) => vec![notice("revocation_due", Audience::Executor)],
        EventBody::ExpiryApproaching(_) => vec![notice("access_expiring", Audience::Owner)],
        EventBody::EscalationRaised(_) => vec![notice("escalation", Audience::Escalation)],
        _ => Vec::new(),
    }
}

/// A channel and optional recipient serving an audience: `CHANNEL` or
/// `CHANNEL:RECIPIENT` in configuration. `{principal}` in the recipient is
/// replaced by the principal the audience denotes, where it denotes one (the
/// requester; the executor; the owner of expiring access).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The channel's configured name.
    pub channel: String,
    /// The recipient, if the route names one.
    pub recipient: Option<String>,
}

impl FromStr for Route {
    type Err = String;

    fn from_str(text: &str) -> Result<Route, String> {
        let (channel, recipient) = match text.split_once(':') {
            Some((channel, recipient)) => (channel, Some(recipient.to_string())),
            None => (text, None),
        };
        if channel.trim().is_empty() || recipient.as_deref().is_some_and(str::is_empty) {
            return Err(format!(
                "route `{text}` must be CHANNEL or CHANNEL:RECIPIENT"
            ));
        }
        Ok(Route {
            channel: channel.to_string(),
            recipient,
        })
    }
}

/// Which routes serve each audience, with overrides per policy rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routing {
    /// The routes of each audience.
    pub routes: BTreeMap<Audience, Vec<Route>>,
    /// Per policy rule (by name), routes that replace an audience's routes
    /// for the cases that rule decides.
    pub rules: BTreeMap<String, BTreeMap<Audience, Vec<Route>>>,
}

impl Routing {
    /// Whether no notification can be owed at all (no route anywhere).
    pub fn is_empty(&self) -> bool {
        self.routes.values().all(Vec::is_empty)
            && self
                .rules
                .values()
                .all(|routes| routes.values().all(Vec::is_empty))
    }

    /// The routes of `audience` for a case decided by `rule`.
    pub fn routes_for(&self, rule: &str, audience: Audience) -> &[Route] {
        self.rules
            .get(rule)
            .and_then(|routes| routes.get(&audience))
            .or_else(|| self.routes.get(&audience))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

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
        owed
    }
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
        Audience::Owner => Some(match case.change.subject.kind {
            crate::model::SubjectKind::User => case.change.subject.id.clone(),
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
    let (title, text) = message(&owed.kind, event, after);
    serde_json::json!({
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
    })
}

/// How long a notification may stay undelivered, without a final failure,
/// before `verify` reports it (the outbox retries meanwhile).
pub const DELIVERY_GRACE_SECONDS: i64 = 3600;

/// The escalation reason of a notification that could not be delivered.
pub const DEAD_LETTER: &str = "notify.dead-letter";
