//! The message the business rules post, and what it asks Custody to do.
//!
//! The shape is ours (ServiceNow has no webhook format of its own), written
//! by the business rule in docs/connectors/servicenow.md:
//!
//! ```json
//! {
//!   "table": "sc_req_item",
//!   "operation": "update",
//!   "sys_id": "8d4c1a2b3c4d5e6f708192a3b4c5d6e7",
//!   "number": "RITM0010001",
//!   "state": "1",
//!   "approval": "approved",
//!   "sys_created_on": "2026-11-30 09:58:12",
//!   "sys_updated_on": "2026-11-30 10:02:40",
//!   "sys_mod_count": "2",
//!   "correlation_id": "",
//!   "opened_by": {"sys_id": "...", "email": "alice@example.com"},
//!   "updated_by": {"sys_id": "...", "email": "bob@example.com"},
//!   "approver": {"sys_id": "...", "email": "bob@example.com"},
//!   "request_item": null,
//!   "close_notes": "",
//!   "fields": {"custody_subject": "alice", "custody_entitlement": "admins-prod"},
//!   "previous": {"state": "1", "approval": "requested", "fields": {...}}
//! }
//! ```
//!
//! Every message carries the record as it is now (and, for an update, as
//! it was), never a delta, so the meaning of a message does not depend on
//! the ones before it: messages may arrive twice or out of order.

use std::collections::BTreeMap;
use std::str::FromStr;

use custody_core::model::{
    parse_duration, validate_text, Change, ChangeKind, Subject, SubjectKind, Ticket,
};
use custody_core::{CaseId, Timestamp};
use serde::Deserialize;

use super::{FieldMapping, StateMapping, UserKey, TICKET_SYSTEM};
use crate::{Action, Inbound, Refusal, Target};

/// One message from a business rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Message {
    /// The table the record is in.
    table: String,
    /// Whether the business rule ran on an insert or an update.
    operation: Operation,
    /// The record's sys_id (32 hexadecimal digits).
    sys_id: String,
    /// Its number (`RITM0010001`, `SCTASK0010001`).
    number: String,
    /// Its `state` value.
    #[serde(default)]
    state: String,
    /// Its `approval` value (request items).
    #[serde(default)]
    approval: String,
    /// When it was created, `YYYY-MM-DD HH:MM:SS` in UTC.
    sys_created_on: String,
    /// When it was updated, `YYYY-MM-DD HH:MM:SS` in UTC: the window.
    sys_updated_on: String,
    /// How many times it was updated: with the sys_id, unique per update.
    sys_mod_count: Count,
    /// The case ID field's value (the request item's, for a task).
    #[serde(default)]
    correlation_id: String,
    /// Who opened the record (the requester).
    #[serde(default)]
    opened_by: Option<User>,
    /// Who made this update.
    #[serde(default)]
    updated_by: Option<User>,
    /// Who approved or rejected, when `approval` changed.
    #[serde(default)]
    approver: Option<User>,
    /// For a catalog task: its request item.
    #[serde(default)]
    request_item: Option<Parent>,
    /// For a catalog task: its close notes.
    #[serde(default)]
    close_notes: String,
    /// The mapped fields' values, by the names of the field mapping.
    #[serde(default)]
    fields: BTreeMap<String, Option<String>>,
    /// For an update: the values before it.
    #[serde(default)]
    previous: Option<Previous>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Operation {
    Insert,
    Update,
}

/// `sys_mod_count` as `getValue` gives it (a string) or as a number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Count {
    Number(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    #[serde(default)]
    sys_id: String,
    #[serde(default)]
    email: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Parent {
    sys_id: String,
    number: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Previous {
    #[serde(default)]
    state: String,
    #[serde(default)]
    approval: String,
    #[serde(default)]
    fields: BTreeMap<String, Option<String>>,
}

/// An instant from a record, with its Unix seconds for the window.
pub(super) struct Instant {
    pub timestamp: Timestamp,
    pub unix_seconds: u64,
}

/// What [`Message::inbound`] needs of the configuration.
pub(super) struct Settings<'a> {
    pub request_table: &'a str,
    pub task_table: &'a str,
    pub identify_users_by: UserKey,
    pub fields: &'a FieldMapping,
    pub states: &'a StateMapping,
}

fn malformed(text: impl Into<String>) -> Refusal {
    Refusal::Malformed(text.into())
}

impl Message {
    /// Reads a body, or says how it differs from the documented message.
    pub fn from_body(body: &[u8]) -> Result<Message, Refusal> {
        let message: Message = serde_json::from_slice(body).map_err(|error| {
            malformed(format!(
                "the body is not the documented ServiceNow message (see docs/connectors/servicenow.md): {error}"
            ))
        })?;
        if !is_sys_id(&message.sys_id) {
            return Err(malformed("sys_id is not 32 hexadecimal digits"));
        }
        Ok(message)
    }

    /// When the record was updated: the message's time for the window.
    pub fn updated_at(&self) -> Result<Instant, Refusal> {
        glide_time(&self.sys_updated_on, "sys_updated_on")
    }

    fn mod_count(&self) -> Result<u64, Refusal> {
        match &self.sys_mod_count {
            Count::Number(count) => Ok(*count),
            Count::Text(text) => text
                .trim()
                .parse()
                .map_err(|_| malformed("sys_mod_count is not a whole number")),
        }
    }

    /// The case the record carries in its case ID field, if it holds one.
    /// Anything else there (another integration's correlation) is no case.
    fn case(&self) -> Option<CaseId> {
        CaseId::from_str(self.correlation_id.trim()).ok()
    }

    /// A decision or an execution is the item's: it binds to the case that
    /// carries this item, never to a case `correlation_id` names (anyone
    /// who can write the field could point an approval at another case).
    /// The field counts once, when the item is requested, to link it.
    fn target(&self, ticket: &Ticket) -> Target {
        Target::Ticket(ticket.clone())
    }

    /// What the message asks for.
    pub fn inbound(&self, settings: &Settings<'_>) -> Result<Vec<Inbound>, Refusal> {
        // Checked for every message, so a malformed one is refused whatever
        // it would have meant.
        let updated_at = self.updated_at()?;
        let mod_count = self.mod_count()?;
        if self.operation == Operation::Update && self.previous.is_none() {
            return Err(malformed(
                "an update message carries `previous` (the values before the update)",
            ));
        }
        if self.table == settings.request_table {
            self.request_item(settings, &updated_at, mod_count)
        } else if self.table == settings.task_table {
            self.catalog_task(settings, &updated_at, mod_count)
        } else {
            // A business rule on another table: not for Custody.
            Ok(Vec::new())
        }
    }

    fn request_item(
        &self,
        settings: &Settings<'_>,
        updated_at: &Instant,
        mod_count: u64,
    ) -> Result<Vec<Inbound>, Refusal> {
        let Some((change, justification)) = change_of(&self.fields, settings.fields)? else {
            // No mapped field is filled in: a catalog item that is not an
            // access request.
            return Ok(Vec::new());
        };
        let ticket = ticket(&self.number, &self.sys_id)?;
        let created_at = glide_time(&self.sys_created_on, "sys_created_on")?;
        let mut inbound = Vec::new();
        // Every message of the item carries the request, under one external
        // ID for the item: the first to arrive (the insert, or an update that
        // overtook it) opens the case, and every later one is already
        // recorded.
        inbound.push(Inbound {
            external_id: format!("{}:request", self.sys_id.to_ascii_lowercase()),
            external_user: user(
                self.opened_by.as_ref(),
                "opened_by",
                settings.identify_users_by,
            )?,
            occurred_at: Some(created_at.timestamp),
            action: Action::Request {
                change: change.clone(),
                justification,
                ticket: Some(ticket.clone()),
                case: self.case(),
            },
            reply_to: None,
        });
        let Some(previous) = &self.previous else {
            return Ok(inbound);
        };
        let update_id =
            |part: &str| format!("{}@{mod_count}:{part}", self.sys_id.to_ascii_lowercase());
        if previous.approval != self.approval {
            let decision = if self.approval == settings.states.approved {
                Some(Action::Approve {
                    target: self.target(&ticket),
                    comment: None,
                    chat: None,
                })
            } else if self.approval == settings.states.rejected {
                Some(Action::Deny {
                    target: self.target(&ticket),
                    comment: None,
                })
            } else {
                None
            };
            if let Some(action) = decision {
                let approver = self.approver.as_ref().or(self.updated_by.as_ref());
                inbound.push(Inbound {
                    external_id: update_id("approval"),
                    external_user: user(approver, "approver", settings.identify_users_by)?,
                    occurred_at: Some(updated_at.timestamp),
                    action,
                    reply_to: None,
                });
            }
        }
        if change_values(&previous.fields, settings.fields)
            != change_values(&self.fields, settings.fields)
        {
            inbound.push(Inbound {
                external_id: update_id("fields"),
                external_user: user(
                    self.updated_by.as_ref(),
                    "updated_by",
                    settings.identify_users_by,
                )?,
                occurred_at: Some(updated_at.timestamp),
                action: Action::TicketUpdated { ticket, change },
                reply_to: None,
            });
        }
        Ok(inbound)
    }

    fn catalog_task(
        &self,
        settings: &Settings<'_>,
        updated_at: &Instant,
        mod_count: u64,
    ) -> Result<Vec<Inbound>, Refusal> {
        let parent = self
            .request_item
            .as_ref()
            .ok_or_else(|| malformed("a catalog task message carries `request_item` (its request item's sys_id and number)"))?;
        if !is_sys_id(&parent.sys_id) {
            return Err(malformed(
                "request_item.sys_id is not 32 hexadecimal digits",
            ));
        }
        let ticket = ticket(&parent.number, &parent.sys_id)?;
        let Some(previous) = &self.previous else {
            // A task created: nothing is executed yet.
            return Ok(Vec::new());
        };
        if previous.state == self.state {
            return Ok(Vec::new());
        }
        let completed = if settings.states.closed_complete.contains(&self.state) {
            true
        } else if settings.states.closed_incomplete.contains(&self.state) {
            false
        } else {
            return Ok(Vec::new());
        };
        let comment = match self.close_notes.trim() {
            "" => None,
            notes => Some(
                validate_text("close_notes", notes)
                    .map_err(|error| malformed(error.to_string()))?,
            ),
        };
        Ok(vec![Inbound {
            external_id: format!("{}@{mod_count}:execution", self.sys_id.to_ascii_lowercase()),
            external_user: user(
                self.updated_by.as_ref(),
                "updated_by",
                settings.identify_users_by,
            )?,
            occurred_at: Some(updated_at.timestamp),
            action: Action::Execute {
                target: self.target(&ticket),
                comment,
                completed,
            },
            reply_to: None,
        }])
    }
}

/// The ticket of a request item: `servicenow:<number>/<sys_id>`, so that
/// the write-back knows the record without looking it up.
fn ticket(number: &str, sys_id: &str) -> Result<Ticket, Refusal> {
    if number.trim().is_empty() {
        return Err(malformed("the request item's number is empty"));
    }
    Ticket::from_str(&format!(
        "{TICKET_SYSTEM}:{}/{}",
        number.trim(),
        sys_id.to_ascii_lowercase()
    ))
    .map_err(|error| {
        malformed(format!(
            "the request item's number does not make a ticket key: {error}"
        ))
    })
}

/// The sys_id in a ticket key written by [`ticket`] (`RITM0010001/<sys_id>`,
/// with or without the `servicenow:` prefix), in lowercase as the Table API
/// spells it; `None` for a key that holds none.
pub(super) fn sys_id_of_ticket_key(key: &str) -> Option<String> {
    let key = key.strip_prefix("servicenow:").unwrap_or(key);
    let (_, sys_id) = key.rsplit_once('/')?;
    is_sys_id(sys_id).then(|| sys_id.to_ascii_lowercase())
}

fn is_sys_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// The external user: the configured identifier of `who`.
fn user(who: Option<&User>, field: &str, key: UserKey) -> Result<String, Refusal> {
    let who = who.ok_or_else(|| malformed(format!("the message names no `{field}`")))?;
    let (value, name) = match key {
        UserKey::SysId => (&who.sys_id, "sys_id"),
        UserKey::Email => (&who.email, "email"),
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(malformed(format!(
            "`{field}` has no {name}, which identifies users here"
        )));
    }
    Ok(value.to_string())
}

/// A mapped field's value: trimmed, `None` when unmapped, absent or empty.
fn value<'a>(fields: &'a BTreeMap<String, Option<String>>, name: &str) -> Option<&'a str> {
    if name.is_empty() {
        return None;
    }
    fields
        .get(name)
        .and_then(|value| value.as_deref())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// The values that make the change, to tell whether an update edited it.
fn change_values<'a>(
    fields: &'a BTreeMap<String, Option<String>>,
    mapping: &FieldMapping,
) -> [Option<&'a str>; 6] {
    [
        &mapping.subject_kind,
        &mapping.subject_id,
        &mapping.entitlement,
        &mapping.change,
        &mapping.resource,
        &mapping.duration,
    ]
    .map(|name| value(fields, name))
}

/// The change (and justification) the mapped fields describe; `None` when
/// neither the subject nor the entitlement is filled in.
fn change_of(
    fields: &BTreeMap<String, Option<String>>,
    mapping: &FieldMapping,
) -> Result<Option<(Change, Option<String>)>, Refusal> {
    let subject_id = value(fields, &mapping.subject_id);
    let entitlement = value(fields, &mapping.entitlement);
    let (subject_id, entitlement) = match (subject_id, entitlement) {
        (None, None) => return Ok(None),
        (Some(subject_id), Some(entitlement)) => (subject_id, entitlement),
        (None, Some(_)) => {
            return Err(malformed(format!(
                "the field `{}` (the subject) is empty",
                mapping.subject_id
            )))
        }
        (Some(_), None) => {
            return Err(malformed(format!(
                "the field `{}` (the entitlement) is empty",
                mapping.entitlement
            )))
        }
    };
    let field_error = |name: &str, error: &dyn std::fmt::Display| {
        malformed(format!("the field `{name}`: {error}"))
    };
    let subject_kind = match value(fields, &mapping.subject_kind) {
        None => SubjectKind::User,
        Some(text) => SubjectKind::from_str(&text.to_ascii_lowercase())
            .map_err(|error| field_error(&mapping.subject_kind, &error))?,
    };
    let change_kind = match value(fields, &mapping.change) {
        None => ChangeKind::Grant,
        Some(text) => ChangeKind::from_str(&text.to_ascii_lowercase())
            .map_err(|error| field_error(&mapping.change, &error))?,
    };
    let duration = value(fields, &mapping.duration)
        .map(parse_duration)
        .transpose()
        .map_err(|error| field_error(&mapping.duration, &error))?;
    let change = Change::new(
        Subject {
            kind: subject_kind,
            id: subject_id.to_string(),
        },
        change_kind,
        entitlement.to_string(),
        value(fields, &mapping.resource).map(str::to_string),
        duration,
    )
    .map_err(|error| malformed(format!("the mapped fields do not make a change: {error}")))?;
    let justification = value(fields, &mapping.justification)
        .map(|text| validate_text("justification", text))
        .transpose()
        .map_err(|error| field_error(&mapping.justification, &error))?;
    Ok(Some((change, justification)))
}

/// A date-time as `GlideRecord.getValue` gives it: `YYYY-MM-DD HH:MM:SS`
/// in UTC. RFC 3339 is accepted too.
fn glide_time(text: &str, field: &str) -> Result<Instant, Refusal> {
    let text = text.trim();
    let glide = text.len() == 19 && text.as_bytes().get(10) == Some(&b' ');
    let parsed = if glide {
        Timestamp::parse(&format!("{text}Z"))
    } else {
        Timestamp::parse(text)
    }
    .map_err(|_| {
        malformed(format!(
            "{field} is not a date-time (expected YYYY-MM-DD HH:MM:SS in UTC)"
        ))
    })?;
    let unix_seconds = u64::try_from(parsed.as_micros() / 1_000_000)
        .map_err(|_| malformed(format!("{field} is before 1970")))?;
    Ok(Instant {
        timestamp: parsed,
        unix_seconds,
    })
}
