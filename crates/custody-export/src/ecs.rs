//! `ecs`: Elastic Common Schema 8.17 documents, one JSON object per line.
//!
//! `@timestamp` is when the event occurred and `event.created` when the
//! ledger recorded it; `event.id` is the event ID, `event.action` its kind,
//! `event.sequence` its log index; `event.category` and `event.type` follow
//! ECS's IAM conventions (see [`categorization`]); `user` is the acting
//! principal and `user.target` the identity whose access changes;
//! `related.user` names every principal of the case. The case ID, the four
//! roles, on-behalf-of, the delegation grant and `via` are in `labels`
//! (flat strings, for search) and in the custom `custody` object (with the
//! on-behalf-of and grant of every party). `event.original` holds the
//! event's canonical bytes and `event.hash` their SHA-256.

use custody_core::event::EventBody;
use custody_core::model::AuthContext;
use serde_json::{json, Map, Value};

use crate::about::{about, change_of, evidence_of, text_of};
use crate::kinds::{self, Outcome, Severity};
use crate::{ocsf, Party, Record};

/// The ECS version the documents follow.
pub const ECS_VERSION: &str = "8.17.0";

/// `event.category` and `event.type` of an event.
pub fn categorization(record: &Record<'_>) -> (&'static [&'static str], &'static [&'static str]) {
    let event = record.event;
    match &event.body {
        EventBody::PolicyAdopted(adopted) => (
            &["configuration"],
            if adopted.previous_hash.is_some() {
                &["change"]
            } else {
                &["creation"]
            },
        ),
        EventBody::DelegationGranted(_) => (&["iam"], &["admin", "creation"]),
        EventBody::DelegationRevoked(_) => (&["iam"], &["admin", "deletion"]),
        EventBody::TokenIssued(_) | EventBody::TokenRevoked(_) => (&["iam"], &["user", "change"]),
        EventBody::PrincipalGroupsChanged(_) => (&["iam"], &["user", "group", "change"]),
        body => {
            let (class, activity) = ocsf::class_and_activity(body, crate::case_change(record));
            let types: &'static [&'static str] = match (class.uid, activity.id) {
                (3001, 1) => &["user", "creation"],
                (3001, 6) => &["user", "deletion"],
                (3001, _) | (3005, _) | (3006, 3 | 4) => &["user", "change"],
                (3006, 6) => &["group", "creation"],
                (3006, 5) => &["group", "deletion"],
                (3006, _) => &["group", "change"],
                // An executed change of a role: an admin object.
                (3004, 1) if is_execution(body) => &["admin", "creation"],
                (3004, 4) if is_execution(body) => &["admin", "deletion"],
                (3004, _) if is_execution(body) && change_of(record).is_some() => {
                    &["admin", "change"]
                }
                // A step of the case that changes nobody's access.
                _ => &["info"],
            };
            (&["iam"], types)
        }
    }
}

fn is_execution(body: &EventBody) -> bool {
    matches!(
        body,
        EventBody::ExecutionCompleted(_)
            | EventBody::ExecutionFailed(_)
            | EventBody::RevocationExecuted(_)
    )
}

fn party_json(party: &Party) -> Value {
    json!({
        "principal": party.principal,
        "on_behalf_of": party.on_behalf_of,
        "delegation_grant": party.delegation_grant,
        "via": party.via,
    })
}

/// The ECS document for a record.
pub fn document(record: &Record<'_>, host: &str) -> Value {
    let event = record.event;
    let roles = record.roles;
    let about = about(record);
    let (category, types) = categorization(record);
    let outcome = match kinds::outcome(&event.body) {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
    };
    let severity = match kinds::severity(&event.body) {
        Severity::Informational => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
    };

    let mut labels = Map::new();
    let mut label = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            labels.insert(name.to_owned(), Value::from(value));
        }
    };
    label("case_id", Some(event.case_id.to_string()));
    label("entitlement", about.privilege.clone());
    label("resource", about.resource.clone());
    label("role", Some(event.role.as_str().to_owned()));
    label("via", Some(event.actor.via.to_string()));
    label("on_behalf_of", event.actor.on_behalf_of.clone());
    label("delegation_grant", event.actor.delegation_grant.clone());
    label(
        "requester",
        roles
            .requester
            .as_ref()
            .map(|party| party.principal.clone()),
    );
    label(
        "approvers",
        (!roles.approvers.is_empty()).then(|| {
            roles
                .approvers
                .iter()
                .map(|party| party.principal.as_str())
                .collect::<Vec<_>>()
                .join(",")
        }),
    );
    label(
        "executor",
        roles.executor.as_ref().map(|party| party.principal.clone()),
    );
    label(
        "reviewer",
        roles.reviewer.as_ref().map(|party| party.principal.clone()),
    );

    let mut related_users: Vec<String> = Vec::new();
    let mut relate = |name: &str| {
        if !related_users.iter().any(|known| known == name) {
            related_users.push(name.to_owned());
        }
    };
    relate(event.actor.principal.as_str());
    for party in roles
        .requester
        .iter()
        .chain(&roles.approvers)
        .chain(&roles.executor)
        .chain(&roles.reviewer)
    {
        relate(&party.principal);
    }
    if let Some(name) = &about.user_name {
        relate(name);
    }
    let evidence = evidence_of(&event.body);
    let bytes_hash = custody_core::Sha256Hash::of(record.bytes).to_hex();
    let mut related_hashes = vec![bytes_hash.clone()];
    related_hashes.extend(evidence.iter().map(|(hash, _, _)| hash.clone()));

    let auth = match &event.actor.auth {
        AuthContext::Token { token_id } => json!({"method": "token", "token_id": token_id}),
        AuthContext::Oidc { issuer, subject } => {
            json!({"method": "oidc", "issuer": issuer, "subject": subject})
        }
        AuthContext::System => json!({"method": "system"}),
    };
    let failure = (outcome == "failure")
        .then(|| text_of(&event.body))
        .flatten();
    let first_evidence = evidence.first();
    let mut document = json!({
        "@timestamp": event.occurred_at.to_string(),
        "ecs": {"version": ECS_VERSION},
        "message": event.body.summary(),
        "event": {
            "kind": "event",
            "category": category,
            "type": types,
            "action": event.body.kind_name(),
            "id": event.event_id.as_str(),
            "outcome": outcome,
            "created": event.recorded_at.to_string(),
            "sequence": record.log_index,
            "severity": severity,
            "provider": "custody",
            "module": "custody",
            "dataset": "custody.events",
            "reason": text_of(&event.body),
            "original": String::from_utf8_lossy(record.bytes),
            "hash": bytes_hash,
        },
        "user": {
            "id": event.actor.principal.as_str(),
            "name": event.actor.principal.as_str(),
            "domain": event.actor.org,
            "target": about.user_name.as_ref().map(|name| json!({
                "id": about.user_id,
                "name": name,
                "group": about.group.as_ref().map(|group| json!({"name": group})),
            })),
        },
        "group": about.group.as_ref().filter(|_| types.contains(&"group")).map(|group| json!({"name": group})),
        "related": {"user": related_users, "hash": related_hashes},
        "labels": labels,
        "observer": {
            "hostname": (!host.is_empty()).then_some(host),
            "product": "Custody",
            "vendor": "Custody",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "error": failure.map(|message| json!({"message": message})),
        "file": first_evidence.map(|(hash, name, _)| json!({"name": name, "hash": {"sha256": hash}})),
        "url": first_evidence.and_then(|(_, _, url)| url.map(|url| json!({"original": url}))),
        "custody": {
            "case_id": event.case_id.as_str(),
            "seq": event.seq,
            "log_index": record.log_index,
            "kind": event.body.kind_name(),
            "role": event.role.as_str(),
            "actor": {
                "principal": event.actor.principal.as_str(),
                "kind": event.actor.kind.as_str(),
                "org": event.actor.org,
                "groups": event.actor.groups,
                "on_behalf_of": event.actor.on_behalf_of,
                "delegation_grant": event.actor.delegation_grant,
                "via": event.actor.via.to_string(),
                "auth": auth,
            },
            "requester": roles.requester.as_ref().map(party_json),
            "approvers": roles.approvers.iter().map(party_json).collect::<Vec<_>>(),
            "executor": roles.executor.as_ref().map(party_json),
            "reviewer": roles.reviewer.as_ref().map(party_json),
            "change": change_of(record).map(|change| json!({
                "subject": change.subject().to_string(),
                "change": change.kind().as_str(),
                "entitlement": change.entitlement(),
                "resource": change.resource(),
                "duration_seconds": change.duration_seconds(),
            })),
        },
    });
    crate::strip_nulls(&mut document);
    document
}
