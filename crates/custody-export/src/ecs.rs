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
use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::about::{about, change_of, evidence_of, text_of, About};
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
        EventBody::TokenIssued(_)
        | EventBody::TokenRevoked(_)
        | EventBody::IdentityMapped(_)
        | EventBody::IdentityUnmapped(_) => (&["iam"], &["user", "change"]),
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

// Written through typed structs rather than a `serde_json::Value` tree, for
// speed (see `ocsf.rs`); `None`s are left out.

#[derive(Serialize)]
pub(crate) struct Document<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    ecs: Ecs,
    message: String,
    event: EventFields<'a>,
    user: User<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<Named<'a>>,
    related: Related<'a>,
    labels: BTreeMap<&'static str, Cow<'a, str>>,
    observer: Observer<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorFields<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<File<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<Url<'a>>,
    custody: Custody<'a>,
}

#[derive(Serialize)]
struct Ecs {
    version: &'static str,
}

#[derive(Serialize)]
struct EventFields<'a> {
    kind: &'static str,
    category: &'static [&'static str],
    #[serde(rename = "type")]
    types: &'static [&'static str],
    action: &'static str,
    id: &'a str,
    outcome: &'static str,
    created: String,
    sequence: u64,
    severity: u32,
    provider: &'static str,
    module: &'static str,
    dataset: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    original: Cow<'a, str>,
    hash: String,
}

#[derive(Serialize)]
struct User<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<Target<'a>>,
}

#[derive(Serialize)]
struct Target<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<Named<'a>>,
}

#[derive(Serialize)]
struct Named<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Related<'a> {
    user: Vec<&'a str>,
    hash: Vec<String>,
}

#[derive(Serialize)]
struct Observer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<&'a str>,
    product: &'static str,
    vendor: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    message: &'a str,
}

#[derive(Serialize)]
struct File<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    hash: FileHash<'a>,
}

#[derive(Serialize)]
struct FileHash<'a> {
    sha256: &'a str,
}

#[derive(Serialize)]
struct Url<'a> {
    original: &'a str,
}

#[derive(Serialize)]
struct Custody<'a> {
    case_id: &'a str,
    seq: u64,
    log_index: u64,
    kind: &'static str,
    role: &'static str,
    actor: ActorFields<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requester: Option<&'a Party>,
    approvers: Vec<&'a Party>,
    #[serde(skip_serializing_if = "Option::is_none")]
    executor: Option<&'a Party>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reviewer: Option<&'a Party>,
    #[serde(skip_serializing_if = "Option::is_none")]
    change: Option<ChangeFields>,
}

#[derive(Serialize)]
struct ActorFields<'a> {
    principal: &'a str,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    org: Option<&'a str>,
    groups: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    on_behalf_of: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delegation_grant: Option<&'a str>,
    via: String,
    auth: Auth<'a>,
}

#[derive(Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
enum Auth<'a> {
    Token {
        token_id: &'a str,
    },
    Oidc {
        issuer: &'a str,
        subject: &'a str,
    },
    Connector {
        connector: &'a str,
        external_user: &'a str,
    },
    System,
}

#[derive(Serialize)]
struct ChangeFields {
    subject: String,
    change: &'static str,
    entitlement: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_seconds: Option<u64>,
}

/// The ECS document for a record, as a JSON value.
pub fn document(record: &Record<'_>, host: &str) -> Value {
    let about = about(record);
    let evidence = evidence_of(&record.event.body);
    serde_json::to_value(typed(record, host, &about, &evidence)).unwrap_or(Value::Null)
}

/// Appends the ECS document for a record as one line.
pub(crate) fn write(
    record: &Record<'_>,
    host: &str,
    out: &mut Vec<u8>,
) -> Result<(), crate::ExportError> {
    let about = about(record);
    let evidence = evidence_of(&record.event.body);
    crate::write_json_line(
        &typed(record, host, &about, &evidence),
        record.log_index,
        out,
    )
}

type EvidenceList<'a> = [(String, Option<&'a str>, Option<&'a str>)];

fn typed<'a>(
    record: &'a Record<'a>,
    host: &'a str,
    about: &'a About,
    evidence: &'a EvidenceList<'a>,
) -> Document<'a> {
    let event = record.event;
    let roles = record.roles;
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

    let mut labels: BTreeMap<&'static str, Cow<'a, str>> = BTreeMap::new();
    labels.insert("case_id", Cow::Borrowed(event.case_id.as_str()));
    labels.insert("role", Cow::Borrowed(event.role.as_str()));
    labels.insert("via", Cow::Owned(event.actor.via.to_string()));
    let mut optional = |name: &'static str, value: Option<Cow<'a, str>>| {
        if let Some(value) = value {
            labels.insert(name, value);
        }
    };
    optional("entitlement", about.privilege.as_deref().map(Cow::Borrowed));
    optional("resource", about.resource.as_deref().map(Cow::Borrowed));
    optional(
        "on_behalf_of",
        event.actor.on_behalf_of.as_deref().map(Cow::Borrowed),
    );
    optional(
        "delegation_grant",
        event.actor.delegation_grant.as_deref().map(Cow::Borrowed),
    );
    optional(
        "requester",
        roles
            .requester
            .as_ref()
            .map(|party| Cow::Borrowed(party.principal.as_str())),
    );
    optional(
        "approvers",
        (!roles.approvers.is_empty()).then(|| {
            Cow::Owned(
                roles
                    .approvers
                    .iter()
                    .map(|party| party.principal.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            )
        }),
    );
    optional(
        "executor",
        roles
            .executor
            .as_ref()
            .map(|party| Cow::Borrowed(party.principal.as_str())),
    );
    optional(
        "reviewer",
        roles
            .reviewer
            .as_ref()
            .map(|party| Cow::Borrowed(party.principal.as_str())),
    );

    let mut related_users: Vec<&'a str> = vec![event.actor.principal.as_str()];
    for party in roles
        .requester
        .iter()
        .chain(&roles.approvers)
        .chain(&roles.executor)
        .chain(&roles.reviewer)
    {
        if !related_users.contains(&party.principal.as_str()) {
            related_users.push(&party.principal);
        }
    }
    if let Some(name) = &about.user_name {
        if !related_users.contains(&name.as_str()) {
            related_users.push(name);
        }
    }
    let bytes_hash = custody_core::Sha256Hash::of(record.bytes).to_hex();
    let mut related_hashes = vec![bytes_hash.clone()];
    related_hashes.extend(evidence.iter().map(|(hash, _, _)| hash.clone()));

    let failure = if outcome == "failure" {
        text_of(&event.body)
    } else {
        None
    };
    let first_evidence = evidence.first();
    Document {
        timestamp: event.occurred_at.to_string(),
        ecs: Ecs {
            version: ECS_VERSION,
        },
        message: event.body.summary(),
        event: EventFields {
            kind: "event",
            category,
            types,
            action: event.body.kind_name(),
            id: event.event_id.as_str(),
            outcome,
            created: event.recorded_at.to_string(),
            sequence: record.log_index,
            severity,
            provider: "custody",
            module: "custody",
            dataset: "custody.events",
            reason: text_of(&event.body),
            original: String::from_utf8_lossy(record.bytes),
            hash: bytes_hash,
        },
        user: User {
            id: event.actor.principal.as_str(),
            name: event.actor.principal.as_str(),
            domain: event.actor.org.as_deref(),
            target: about.user_name.as_deref().map(|name| Target {
                id: about.user_id.as_deref(),
                name,
                group: about.group.as_deref().map(|name| Named { name }),
            }),
        },
        group: about
            .group
            .as_deref()
            .filter(|_| types.contains(&"group"))
            .map(|name| Named { name }),
        related: Related {
            user: related_users,
            hash: related_hashes,
        },
        labels,
        observer: Observer {
            hostname: (!host.is_empty()).then_some(host),
            product: "Custody",
            vendor: "Custody",
            version: env!("CARGO_PKG_VERSION"),
        },
        error: failure.map(|message| ErrorFields { message }),
        file: first_evidence.map(|(hash, name, _)| File {
            name: *name,
            hash: FileHash { sha256: hash },
        }),
        url: first_evidence.and_then(|(_, _, url)| url.map(|original| Url { original })),
        custody: Custody {
            case_id: event.case_id.as_str(),
            seq: event.seq,
            log_index: record.log_index,
            kind: event.body.kind_name(),
            role: event.role.as_str(),
            actor: ActorFields {
                principal: event.actor.principal.as_str(),
                kind: event.actor.kind.as_str(),
                org: event.actor.org.as_deref(),
                groups: &event.actor.groups,
                on_behalf_of: event.actor.on_behalf_of.as_deref(),
                delegation_grant: event.actor.delegation_grant.as_deref(),
                via: event.actor.via.to_string(),
                auth: match &event.actor.auth {
                    AuthContext::Token { token_id } => Auth::Token { token_id },
                    AuthContext::Oidc { issuer, subject } => Auth::Oidc { issuer, subject },
                    AuthContext::Connector {
                        connector,
                        external_user,
                    } => Auth::Connector {
                        connector,
                        external_user,
                    },
                    AuthContext::System => Auth::System,
                },
            },
            requester: roles.requester.as_ref(),
            approvers: roles.approvers.iter().collect(),
            executor: roles.executor.as_ref(),
            reviewer: roles.reviewer.as_ref(),
            change: change_of(record).map(|change| ChangeFields {
                subject: change.subject().to_string(),
                change: change.kind().as_str(),
                entitlement: change.entitlement().to_owned(),
                resource: change.resource().map(str::to_owned),
                duration_seconds: change.duration_seconds(),
            }),
        },
    }
}
