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
//! | `authtype` | `user` (human, vendor), `service_account` (service), `system` (automation, and the ledger itself), as the notification webhooks write it |
//! | `authid` | the acting principal |
//! | `authclaims` | a JSON string: `{kind, org, groups, role, on_behalf_of, delegation_grant, via, auth}` (the token's public ID or the OIDC issuer and subject; never a secret) |
//! | `data` | `{event, log_index, roles: {requester, approvers, executor, reviewer}}`, `event` being the event's JSON exactly as stored |

use custody_core::model::{AuthContext, PrincipalKind};
use serde_json::{json, Value};

use crate::{Party, Record};

/// The prefix of every exported event's type.
pub const TYPE_PREFIX: &str = "dev.custody.event.";

/// The `source` of every exported event.
pub const SOURCE: &str = "custody";

fn party_json(party: &Party) -> Value {
    json!({
        "principal": party.principal,
        "on_behalf_of": party.on_behalf_of,
        "delegation_grant": party.delegation_grant,
        "via": party.via,
    })
}

/// The CloudEvent for a record.
pub fn document(record: &Record<'_>) -> Value {
    let event = record.event;
    let actor = &event.actor;
    let authtype = match (&actor.auth, actor.kind) {
        (AuthContext::System, _) | (_, PrincipalKind::Automation) => "system",
        (_, PrincipalKind::Human | PrincipalKind::Vendor) => "user",
        (_, PrincipalKind::Service) => "service_account",
    };
    let auth = match &actor.auth {
        AuthContext::Token { token_id } => json!({"method": "token", "token_id": token_id}),
        AuthContext::Oidc { issuer, subject } => {
            json!({"method": "oidc", "issuer": issuer, "subject": subject})
        }
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
    // The stored bytes are canonical JSON of the event: parse them rather
    // than re-serialise, so `data.event` is what the ledger holds.
    let stored: Value = serde_json::from_slice(record.bytes)
        .unwrap_or_else(|_| serde_json::to_value(event).unwrap_or(Value::Null));
    let roles = record.roles;
    json!({
        "specversion": "1.0",
        "id": event.event_id.as_str(),
        "source": SOURCE,
        "type": format!("{TYPE_PREFIX}{}", event.body.kind_name()),
        "subject": event.case_id.as_str(),
        "time": event.occurred_at.to_string(),
        "datacontenttype": "application/json",
        "authtype": authtype,
        "authid": actor.principal.as_str(),
        "authclaims": claims.to_string(),
        "data": {
            "event": stored,
            "log_index": record.log_index,
            "roles": {
                "requester": roles.requester.as_ref().map(party_json),
                "approvers": roles.approvers.iter().map(party_json).collect::<Vec<_>>(),
                "executor": roles.executor.as_ref().map(party_json),
                "reviewer": roles.reviewer.as_ref().map(party_json),
            },
        },
    })
}
