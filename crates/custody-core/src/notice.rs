//! Who must be told what: the notices the workflow owes, as data.
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
//! Which audiences each event owes, and what is sent, is decided from the
//! event and its case in [`crate::outbox`]; which channels and recipients
//! serve each audience is configuration ([`Routing`]). This module depends
//! on neither events nor cases, so the event can hold what it owes.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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
    /// The outside records a case is bound to: the ticket of a connector's
    /// system the case carries, or the chat message a connector acted on.
    /// A connector's write-back (`custody-connect`); its routes are not
    /// configured but follow from the connectors ([`Routing::linked`]).
    Linked,
}

impl Audience {
    /// Every audience, in order.
    pub const ALL: [Audience; 8] = [
        Audience::Approvers,
        Audience::Requester,
        Audience::Executor,
        Audience::Reviewers,
        Audience::Security,
        Audience::Owner,
        Audience::Escalation,
        Audience::Linked,
    ];

    /// The audiences a `[notify.routes]` table may configure (all but
    /// [`Audience::Linked`], whose routes are the connectors').
    pub const CONFIGURABLE: [Audience; 7] = [
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
            Audience::Linked => "linked",
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
    /// What it says, such as `approval_needed` (see [`crate::outbox::notices`]).
    pub kind: String,
    /// Who it is for.
    pub audience: Audience,
    /// The configured channel that carries it.
    pub channel: String,
    /// The recipient on that channel, when the route names one (an address).
    #[serde(deserialize_with = "Option::deserialize")]
    pub recipient: Option<String>,
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
    /// The connectors that write back to tickets: ticket system (`jira`)
    /// to the connectors (channels) serving it. Every event of a case
    /// carrying a ticket of that system owes each a [`CASE_UPDATE`] with
    /// the ticket's key as recipient (audience [`Audience::Linked`]).
    pub linked: BTreeMap<String, Vec<String>>,
}

impl Routing {
    /// Whether no notification can be owed at all (no route anywhere).
    pub fn is_empty(&self) -> bool {
        self.routes.values().all(Vec::is_empty)
            && self.linked.values().all(Vec::is_empty)
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
}

/// How long a notification may stay undelivered, without a final failure,
/// before `verify` reports it (the outbox retries meanwhile).
pub const DELIVERY_GRACE_SECONDS: i64 = 3600;
/// One notification kind owed to one audience.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice {
    /// What it says.
    pub kind: &'static str,
    /// Who it is for.
    pub audience: Audience,
}

/// The kind of a connector's write-back: the case's state after an event,
/// written into the outside record the case is bound to.
pub const CASE_UPDATE: &str = "case_update";

/// The kind of the notice that tells reviewers a change was approved, before
/// it is executed.
pub const CHANGE_APPROVED_FOR_REVIEW: &str = "change_approved";
