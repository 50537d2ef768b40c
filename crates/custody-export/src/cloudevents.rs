//! `cloudevents`: CloudEvents 1.0 in structured JSON mode, one event per
//! line, with the authcontext extension.
//!
//! | attribute | value |
//! |---|---|
//! | `specversion` | `"1.0"` |
//! | `id` | the event ID (unique, so `source` + `id` is too) |
//! | `source` | `"custody"` |
//! | `type` | `dev.custody.event.<kind>`, e.g. `dev.custody.event.approval_granted` (the notification webhooks use `dev.custody.<notice>`; the extra segment keeps the two apart) |
//! | `subject` | the case ID |
//! | `time` | `occurred_at` |
//! | `datacontenttype` | `"application/json"` |
//! | `authtype` | `user` (human, vendor), `service_account` (service), `system` (automation, and the ledger itself, also when it records what a connector observed), as the notification webhooks write it |
//! | `authid` | the acting principal |
//! | `authclaims` | a JSON string: `{kind, org, groups, role, on_behalf_of, delegation_grant, via, auth}` (the token's public ID or the OIDC issuer and subject; never a secret) |
//! | `data` | `{event, log_index, roles: {requester, approvers, executor, reviewer}}`, `event` being the stored event (the same JSON value; keys not in canonical order) |

use custody_core::model::{AuthContext, PrincipalKind};
use serde::Serialize;
use serde_json::{json, Value};

use crate::{Party, Record};

/// The prefix of every exported event's type.
pub const TYPE_PREFIX: &str = "dev.custody.event.";

/// The `source` of every exported event.
pub const SOURCE: &str = "custody";

/// A CloudEvent, written through typed structs (see `ocsf.rs` for why).
#[derive(Serialize)]
pub(crate) struct CloudEvent<'a> {
    specversion: &'static str,
    id: &'a str,
    source: &'static str,
    #[serde(rename = "type")]
    type_name: String,
    subject: &'a str,
    time: String,
    datacontenttype: &'static str,
    authtype: &'static str,
    authid: &'a str,
    authclaims: String,
    data: Data<'a>,
}

#[derive(Serialize)]
struct Data<'a> {
    event: &'a custody_core::Event,
    log_index: u64,
    roles: RolesData<'a>,
}

#[derive(Serialize)]
struct RolesData<'a> {
    requester: Option<PartyData<'a>>,
    approvers: Vec<PartyData<'a>>,
    executor: Option<PartyData<'a>>,
    reviewer: Option<PartyData<'a>>,
}

#[derive(Serialize)]
struct PartyData<'a> {
    principal: &'a str,
    on_behalf_of: Option<&'a str>,
    delegation_grant: Option<&'a str>,
    via: &'a str,
}

fn party_data(party: &Party) -> PartyData<'_> {
    PartyData {
        principal: &party.principal,
        on_behalf_of: party.on_behalf_of.as_deref(),
        delegation_grant: party.delegation_grant.as_deref(),
        via: &party.via,
    }
}

/// The CloudEvent for a record, as a JSON value.
pub fn document(record: &Record<'_>) -> Value {
    serde_json::to_value(cloud_event(record)).unwrap_or(Value::Null)
}

pub(crate) fn cloud_event<'a>(record: &'a Record<'a>) -> CloudEvent<'a> {
    let event = record.event;
    let actor = &event.actor;
    let authtype = match (&actor.auth, actor.kind) {
        (AuthContext::System, _) | (_, PrincipalKind::Automation) => "system",
        // The ledger recording what a connector observed (`via` the connector).
        _ if actor.principal.as_str() == custody_core::model::SYSTEM_PRINCIPAL => "system",
        (_, PrincipalKind::Human | PrincipalKind::Vendor) => "user",
        (_, PrincipalKind::Service) => "service_account",
    };
    let auth = match &actor.auth {
        AuthContext::Token { token_id } => json!({"method": "token", "token_id": token_id}),
        AuthContext::Oidc { issuer, subject } => {
            json!({"method": "oidc", "issuer": issuer, "subject": subject})
        }
        AuthContext::Connector {
            connector,
            external_user,
        } => json!({"method": "connector", "connector": connector, "external_user": external_user}),
        AuthContext::System => json!({"method": "system"}),
    };
    let claims = json!({
        "kind": actor.kind.as_str(),
        "org": actor.org,
        "groups": actor.groups,
        "role": event.role.as_str(),
        "on_behalf_of": actor.on_behalf_of,
        "delegation_grant": actor.delegation_grant,
        "via": actor.via.to_string(),
        "auth": auth,
    });
    let roles = record.roles;
    CloudEvent {
        specversion: "1.0",
        id: event.event_id.as_str(),
        source: SOURCE,
        type_name: format!("{TYPE_PREFIX}{}", event.body.kind_name()),
        subject: event.case_id.as_str(),
        time: event.occurred_at.to_string(),
        datacontenttype: "application/json",
        authtype,
        authid: actor.principal.as_str(),
        authclaims: claims.to_string(),
        data: Data {
            // The decoded event: the same JSON value as the stored bytes
            // (keys in the struct's order, not the canonical sorted order;
            // hash the `jsonl` export, not this).
            event,
            log_index: record.log_index,
            roles: RolesData {
                requester: roles.requester.as_ref().map(party_data),
                approvers: roles.approvers.iter().map(party_data).collect(),
                executor: roles.executor.as_ref().map(party_data),
                reviewer: roles.reviewer.as_ref().map(party_data),
            },
        },
    }
}
