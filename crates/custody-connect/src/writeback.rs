//! Writing a case's state back into the outside system.
//!
//! Write-back goes through the outbox like every notification. A
//! connector's name is a notification channel:
//! - every event of a case that carries a ticket of the connector's system
//!   ([`crate::Connector::ticket_system`]) owes a write-back to that ticket
//!   (audience `linked`, channel the connector's name, recipient the ticket
//!   key);
//! - an inbound action with a [`crate::Inbound::reply_to`] (a Slack message
//!   clicked) owes one to that record, on the event it wrote;
//! - a route naming the connector (`approvers = ["slack:C0123"]`) owes the
//!   audience's notices to it, like any channel (a Slack approval message
//!   with buttons posted to a channel).
//!
//! Each is recorded in the event's `notify`. The deliverer asks the connector for the [`Call`]s of the
//! [`Update`], makes them, and records every attempt as a
//! `notification_attempted` event, retried with backoff and escalated when
//! it gives up, exactly as a webhook or an email.

use custody_core::CaseId;

/// One HTTP call to make, IO-free: the server's HTTP client sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// `GET`, `POST`, `PUT`, `PATCH`.
    pub method: &'static str,
    /// The absolute URL.
    pub url: String,
    /// Every header, authentication included (the connector holds the
    /// vendor API credentials of its configuration).
    pub headers: Vec<(String, String)>,
    /// The body (JSON for every supported vendor).
    pub body: Vec<u8>,
}

/// One case update to write back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The case.
    pub case_id: CaseId,
    /// Where the case is seen in Custody (the console's or API's URL).
    pub case_url: Option<String>,
    /// The outside record it goes to: a ticket key (`SEC-142`), a
    /// ServiceNow sys_id, or a chat message (`CHANNEL/TS`), as the
    /// connector recorded it.
    pub recipient: String,
    /// The event kind that owes it (`requested`, `approved`, ...).
    pub event: String,
    /// The case's state after the event.
    pub state: String,
    /// The principal who acted, and for whom.
    pub actor: String,
    /// One line saying what was recorded, for a comment or a message.
    pub summary: String,
    /// Whether this is the case's first write-back to that record (so the
    /// case ID and link are written as a property or field too).
    pub first: bool,
}
