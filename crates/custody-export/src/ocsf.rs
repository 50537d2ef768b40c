//! `ocsf`: OCSF 1.8.0 events, one JSON object per line.
//!
//! Every event kind maps to one class of the Identity & Access Management
//! category (see [`class_and_activity`] and the table in `docs/export.md`):
//!
//! - an executed change of privileges (grant/revoke of an entitlement) is
//!   User Access Management (3005), or Group Management (3006) when the
//!   entitlement is a group membership (`group:NAME`) or the subject is a
//!   group;
//! - an executed change that creates, rotates, modifies or deletes an
//!   account, a key or a token is Account Change (3001), like the
//!   administration of principals and bearer tokens;
//! - everything else that happens to a case (request, approvals, reviews,
//!   comments, evidence, notifications, escalations, links) is Entity
//!   Management (3004) of the case itself, as is the adoption of a policy
//!   and the revocation of a delegation grant.
//!
//! Common to all: `metadata.uid` is the event ID, `metadata.correlation_uid`
//! the case ID, `metadata.sequence` the log index; `actor` is the acting
//! principal (its token or OIDC identity, its delegation grant and whom it
//! acted for in `actor.authorizations`, its channel in `actor.invoked_by`);
//! the case's requester, approvers, executor and reviewer, on-behalf-of,
//! the grant and `via` are in `metadata.tags`, `observables` and
//! `unmapped.custody`; `raw_data` holds the event's canonical bytes and
//! `raw_data_hash` their SHA-256. Attributes without a value are left out
//! (the schemas allow no `null`).

use custody_core::event::{Event, EventBody};
use custody_core::model::{
    Actor, AuthContext, Change, ChangeKind, PrincipalKind, Subject, SubjectKind,
};
use custody_core::Timestamp;
use serde_json::{json, Value};

use crate::kinds::{self, Outcome, Severity};
use crate::{case_change, Party, Record};

/// The OCSF version the events follow.
pub const OCSF_VERSION: &str = "1.8.0";

/// The category of every class used: Identity & Access Management.
pub const CATEGORY_UID: u32 = 3;

/// An OCSF event class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Class {
    /// `class_uid`.
    pub uid: u32,
    /// `class_name`.
    pub name: &'static str,
}

/// Account Change (3001): accounts, keys and tokens created, rotated,
/// modified or deleted; principals added; bearer tokens issued and revoked.
pub const ACCOUNT_CHANGE: Class = Class {
    uid: 3001,
    name: "Account Change",
};
/// Entity Management (3004): the case's own lifecycle, policies, grants.
pub const ENTITY_MANAGEMENT: Class = Class {
    uid: 3004,
    name: "Entity Management",
};
/// User Access Management (3005): privileges granted and revoked.
pub const USER_ACCESS_MANAGEMENT: Class = Class {
    uid: 3005,
    name: "User Access Management",
};
/// Group Management (3006): memberships, and groups' own privileges.
pub const GROUP_MANAGEMENT: Class = Class {
    uid: 3006,
    name: "Group Management",
};

/// An activity of a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Activity {
    /// `activity_id`.
    pub id: u32,
    /// `activity_name`.
    pub name: &'static str,
}

const fn activity(id: u32, name: &'static str) -> Activity {
    Activity { id, name }
}

/// The class and activity an event is exported as. `change` is the change
/// the case asks for, when known (executions name their subject by it).
pub fn class_and_activity(body: &EventBody, change: Option<&Change>) -> (Class, Activity) {
    let (class, activity, _) = target(body, change);
    (class, activity)
}

/// What the event is about, in the class's own attributes.
enum Target {
    /// Entity Management: the managed entity, and a comment.
    Entity {
        entity: Value,
        comment: Option<String>,
    },
    /// User Access Management: the user, the privileges, the resource.
    Privileges {
        user: Value,
        privileges: Vec<String>,
        resource: Option<Value>,
    },
    /// Group Management: the group, the user (memberships) or privileges.
    Group {
        group: Value,
        user: Option<Value>,
        privileges: Vec<String>,
    },
    /// Account Change: the account.
    Account { user: Value },
}

fn target(body: &EventBody, change: Option<&Change>) -> (Class, Activity, Target) {
    let case = |comment: Option<&String>| Target::Entity {
        entity: Value::Null,
        comment: comment.cloned(),
    };
    let update = activity(3, "Update");
    match body {
        EventBody::RequestCreated(request) => (
            ENTITY_MANAGEMENT,
            activity(1, "Create"),
            case(request.justification.as_ref()),
        ),
        EventBody::ExecutionCompleted(execution) | EventBody::ExecutionFailed(execution) => {
            match execution.applied.as_ref().or(change) {
                Some(change) => access_change(change),
                None => (ENTITY_MANAGEMENT, update, case(execution.comment.as_ref())),
            }
        }
        EventBody::RevocationExecuted(execution) => {
            let revocation = execution
                .applied
                .clone()
                .or_else(|| change.map(Change::revocation));
            match revocation {
                Some(change) => access_change(&change),
                None => (ENTITY_MANAGEMENT, update, case(execution.comment.as_ref())),
            }
        }
        EventBody::PrincipalAdded(added) => (
            ACCOUNT_CHANGE,
            activity(1, "Create"),
            Target::Account {
                user: json!({
                    "uid": added.principal.as_str(),
                    "name": added.principal.as_str(),
                    "full_name": added.display_name,
                    "type": user_type(added.kind).1,
                    "type_id": user_type(added.kind).0,
                    "org": added.org.as_ref().map(|org| json!({"name": org})),
                    "groups": groups(&added.groups),
                }),
            },
        ),
        EventBody::PrincipalGroupsChanged(changed) => {
            let added: Vec<&String> = changed
                .groups
                .iter()
                .filter(|group| !changed.previous.contains(group))
                .collect();
            let removed: Vec<&String> = changed
                .previous
                .iter()
                .filter(|group| !changed.groups.contains(group))
                .collect();
            let (activity, touched) = match (added.is_empty(), removed.is_empty()) {
                (false, true) => (activity(3, "Add User"), added),
                (true, false) => (activity(4, "Remove User"), removed),
                _ => (
                    activity(99, "Change Memberships"),
                    added.into_iter().chain(removed).collect(),
                ),
            };
            let names: Vec<&str> = touched.iter().map(|group| group.as_str()).collect();
            let name = if names.is_empty() {
                "(none)".to_owned()
            } else {
                names.join(",")
            };
            (
                GROUP_MANAGEMENT,
                activity,
                Target::Group {
                    group: json!({"name": name}),
                    user: Some(json!({
                        "uid": changed.principal.as_str(),
                        "name": changed.principal.as_str(),
                        "groups": groups(&changed.groups),
                    })),
                    privileges: Vec::new(),
                },
            )
        }
        EventBody::TokenIssued(issued) => (
            ACCOUNT_CHANGE,
            activity(99, "Issue Token"),
            Target::Account {
                user: json!({
                    "uid": issued.principal.as_str(),
                    "name": issued.principal.as_str(),
                    "credential_uid": issued.token_id,
                }),
            },
        ),
        EventBody::TokenRevoked(revoked) => (
            ACCOUNT_CHANGE,
            activity(99, "Revoke Token"),
            Target::Account {
                user: json!({
                    "uid": revoked.principal.as_str(),
                    "name": revoked.principal.as_str(),
                    "credential_uid": revoked.token_id,
                }),
            },
        ),
        EventBody::DelegationGranted(grant) => {
            let user = match grant.principals.as_slice() {
                [only] => json!({
                    "uid": only.as_str(),
                    "name": only.as_str(),
                    "type": "vendor",
                    "type_id": 99,
                    "org": {"name": grant.vendor_org},
                }),
                _ => json!({
                    "name": grant.vendor_org,
                    "type": "vendor",
                    "type_id": 99,
                    "org": {"name": grant.vendor_org},
                }),
            };
            let mut privileges = vec![format!("act_on_behalf_of:{}", grant.on_behalf_of)];
            if grant.entitlements.is_empty() {
                privileges.push("entitlement:*".to_owned());
            }
            privileges.extend(
                grant
                    .entitlements
                    .iter()
                    .map(|pattern| format!("entitlement:{pattern}")),
            );
            (
                USER_ACCESS_MANAGEMENT,
                activity(1, "Assign Privileges"),
                Target::Privileges {
                    user,
                    privileges,
                    resource: Some(json!({
                        "uid": grant.grant_id,
                        "name": grant.grant_id,
                        "type": "delegation_grant",
                    })),
                },
            )
        }
        EventBody::DelegationRevoked(revoked) => (
            ENTITY_MANAGEMENT,
            activity(4, "Delete"),
            Target::Entity {
                entity: json!({
                    "uid": revoked.grant_id,
                    "name": revoked.grant_id,
                    "type": "delegation_grant",
                    "type_id": 99,
                }),
                comment: None,
            },
        ),
        EventBody::PolicyAdopted(adopted) => (
            ENTITY_MANAGEMENT,
            if adopted.previous_hash.is_some() {
                update
            } else {
                activity(1, "Create")
            },
            Target::Entity {
                entity: json!({
                    "uid": adopted.policy_hash.to_hex(),
                    "name": "policy",
                    "type": "policy",
                    "type_id": 99,
                    "version": adopted.policy_hash.to_hex(),
                    "policy": {
                        "uid": adopted.policy_hash.to_hex(),
                        "name": adopted.source,
                        "type": "custody_policy",
                        "is_applied": true,
                        "data": adopted.policy,
                    },
                }),
                comment: None,
            },
        ),
        EventBody::ApprovalGranted(decision) | EventBody::ApprovalDenied(decision) => {
            (ENTITY_MANAGEMENT, update, case(decision.comment.as_ref()))
        }
        EventBody::ReviewCompleted(review) => {
            (ENTITY_MANAGEMENT, update, case(review.comment.as_ref()))
        }
        EventBody::CommentAdded(comment) => (ENTITY_MANAGEMENT, update, case(Some(&comment.text))),
        EventBody::DuplicateMerged(link) | EventBody::DuplicateLinked(link) => {
            (ENTITY_MANAGEMENT, update, case(link.comment.as_ref()))
        }
        EventBody::BreakGlassInvoked(break_glass) => (
            ENTITY_MANAGEMENT,
            update,
            case(Some(&break_glass.justification)),
        ),
        // Every other kind is a step in the case's life with no text of
        // its own: an update of the case entity.
        _ => (ENTITY_MANAGEMENT, update, case(None)),
    }
}

/// The class of an executed change.
fn access_change(change: &Change) -> (Class, Activity, Target) {
    let subject = change.subject();
    let grant = change.kind() == ChangeKind::Grant;
    match change.kind() {
        ChangeKind::Grant | ChangeKind::Revoke => {
            let membership = change
                .entitlement()
                .strip_prefix("group:")
                .filter(|_| subject.kind != SubjectKind::Group);
            if let Some(group) = membership {
                (
                    GROUP_MANAGEMENT,
                    if grant {
                        activity(3, "Add User")
                    } else {
                        activity(4, "Remove User")
                    },
                    Target::Group {
                        group: json!({"name": group, "uid": change.entitlement()}),
                        user: Some(subject_user(subject)),
                        privileges: Vec::new(),
                    },
                )
            } else if subject.kind == SubjectKind::Group {
                (
                    GROUP_MANAGEMENT,
                    if grant {
                        activity(1, "Assign Privileges")
                    } else {
                        activity(2, "Revoke Privileges")
                    },
                    Target::Group {
                        group: json!({"name": subject.id, "uid": subject.to_string()}),
                        user: None,
                        privileges: vec![change.entitlement().to_owned()],
                    },
                )
            } else {
                (
                    USER_ACCESS_MANAGEMENT,
                    if grant {
                        activity(1, "Assign Privileges")
                    } else {
                        activity(2, "Revoke Privileges")
                    },
                    Target::Privileges {
                        user: subject_user(subject),
                        privileges: vec![change.entitlement().to_owned()],
                        resource: change
                            .resource()
                            .map(|resource| json!({"name": resource, "uid": resource})),
                    },
                )
            }
        }
        kind @ (ChangeKind::Create
        | ChangeKind::Delete
        | ChangeKind::Rotate
        | ChangeKind::Modify) => {
            if subject.kind == SubjectKind::Group {
                let activity = match kind {
                    ChangeKind::Create => activity(6, "Create"),
                    ChangeKind::Delete => activity(5, "Delete"),
                    ChangeKind::Rotate => activity(99, "Rotate"),
                    _ => activity(99, "Modify"),
                };
                return (
                    GROUP_MANAGEMENT,
                    activity,
                    Target::Group {
                        group: json!({"name": subject.id, "uid": subject.to_string()}),
                        user: None,
                        privileges: Vec::new(),
                    },
                );
            }
            if subject.kind == SubjectKind::Role {
                let activity = match kind {
                    ChangeKind::Create => activity(1, "Create"),
                    ChangeKind::Delete => activity(4, "Delete"),
                    _ => activity(3, "Update"),
                };
                return (
                    ENTITY_MANAGEMENT,
                    activity,
                    Target::Entity {
                        entity: json!({
                            "uid": subject.to_string(),
                            "name": subject.id,
                            "type": "role",
                            "type_id": 99,
                        }),
                        comment: None,
                    },
                );
            }
            let activity = match kind {
                ChangeKind::Create => activity(1, "Create"),
                ChangeKind::Delete => activity(6, "Delete"),
                ChangeKind::Rotate => activity(99, "Rotate"),
                _ => activity(99, "Modify"),
            };
            (
                ACCOUNT_CHANGE,
                activity,
                Target::Account {
                    user: subject_user(subject),
                },
            )
        }
    }
}

/// The OCSF user a subject is: `uid` is `KIND:ID` (unique across kinds),
/// `name` the ID; keys and tokens also name themselves as the credential.
fn subject_user(subject: &Subject) -> Value {
    let credential = matches!(subject.kind, SubjectKind::ApiKey | SubjectKind::Token);
    json!({
        "uid": subject.to_string(),
        "name": subject.id,
        "type": subject.kind.as_str(),
        "type_id": if subject.kind == SubjectKind::User { 1 } else { 99 },
        "credential_uid": credential.then_some(subject.id.as_str()),
    })
}

/// OCSF `user.type_id` and `type` of a principal kind: a person is a User
/// (1); the other kinds have no OCSF type of their own (99, Other).
fn user_type(kind: PrincipalKind) -> (u32, &'static str) {
    match kind {
        PrincipalKind::Human => (1, "User"),
        other => (99, other.as_str()),
    }
}

fn groups(names: &[String]) -> Vec<Value> {
    names.iter().map(|name| json!({"name": name})).collect()
}

fn millis(timestamp: Timestamp) -> i64 {
    timestamp.as_micros().div_euclid(1000)
}

fn actor_json(actor: &Actor) -> Value {
    let system = actor.auth == AuthContext::System;
    let (type_id, type_name) = if system {
        (3, "System")
    } else {
        user_type(actor.kind)
    };
    let mut user = json!({
        "uid": actor.principal.as_str(),
        "name": actor.principal.as_str(),
        "type_id": type_id,
        "type": type_name,
        "org": actor.org.as_ref().map(|org| json!({"name": org})),
        "groups": groups(&actor.groups),
    });
    let mut idp = Value::Null;
    match &actor.auth {
        AuthContext::Token { token_id } => user["credential_uid"] = json!(token_id),
        AuthContext::Oidc { issuer, subject } => {
            user["uid_alt"] = json!(subject);
            idp = json!({"name": issuer, "issuer": issuer});
        }
        AuthContext::System => {}
    }
    let authorizations: Vec<Value> = match (&actor.delegation_grant, &actor.on_behalf_of) {
        (None, None) => Vec::new(),
        (grant, on_behalf_of) => vec![json!({
            "decision": "allowed",
            "policy": {
                "uid": grant,
                "type": if grant.is_some() { "delegation_grant" } else { "on_behalf_of" },
                "name": on_behalf_of.as_ref().map(|party| format!("on behalf of {party}")),
            },
        })],
    };
    json!({
        "user": user,
        "idp": idp,
        "invoked_by": actor.via.to_string(),
        "authorizations": authorizations,
    })
}

fn party_json(party: &Party) -> Value {
    json!({
        "principal": party.principal,
        "on_behalf_of": party.on_behalf_of,
        "delegation_grant": party.delegation_grant,
        "via": party.via,
    })
}

fn tag(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value})
}

/// The OCSF event for a record.
pub fn event_json(record: &Record<'_>) -> Value {
    let event: &Event = record.event;
    let change = case_change(record);
    let (class, activity, target) = target(&event.body, change);
    let roles = record.roles;
    let severity = kinds::severity(&event.body);
    let (severity_id, severity_name) = match severity {
        Severity::Informational => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
    };
    let (status_id, status_name) = match kinds::outcome(&event.body) {
        Outcome::Success => (1, "Success"),
        Outcome::Failure => (2, "Failure"),
    };

    let mut tags = vec![
        tag("role", event.role.as_str()),
        tag("via", &event.actor.via.to_string()),
    ];
    if let Some(on_behalf_of) = &event.actor.on_behalf_of {
        tags.push(tag("on_behalf_of", on_behalf_of));
    }
    if let Some(grant) = &event.actor.delegation_grant {
        tags.push(tag("delegation_grant", grant));
    }
    let mut observables = vec![
        json!({"name": "metadata.correlation_uid", "type_id": 10, "type": "Resource UID", "value": event.case_id.as_str()}),
        json!({"name": "actor.user.uid", "type_id": 4, "type": "User Name", "value": event.actor.principal.as_str()}),
    ];
    let mut role_party = |role: &str, party: &Party| {
        observables.push(json!({
            "name": format!("unmapped.custody.{role}.principal"),
            "type_id": 4,
            "type": "User Name",
            "value": party.principal,
        }));
    };
    if let Some(requester) = &roles.requester {
        role_party("requester", requester);
    }
    for approver in &roles.approvers {
        role_party("approvers", approver);
    }
    if let Some(executor) = &roles.executor {
        role_party("executor", executor);
    }
    if let Some(reviewer) = &roles.reviewer {
        role_party("reviewer", reviewer);
    }
    if let Some(requester) = &roles.requester {
        tags.push(tag("requester", &requester.principal));
    }
    if !roles.approvers.is_empty() {
        tags.push(json!({
            "name": "approvers",
            "values": roles.approvers.iter().map(|party| party.principal.as_str()).collect::<Vec<_>>(),
        }));
    }
    if let Some(executor) = &roles.executor {
        tags.push(tag("executor", &executor.principal));
    }
    if let Some(reviewer) = &roles.reviewer {
        tags.push(tag("reviewer", &reviewer.principal));
    }
    if let Some(grant) = &event.actor.delegation_grant {
        observables.push(json!({"name": "actor.authorizations.policy.uid", "type_id": 10, "type": "Resource UID", "value": grant}));
    }
    evidence_observables(&event.body, &mut observables);

    let bytes = String::from_utf8_lossy(record.bytes);
    let mut document = json!({
        "class_uid": class.uid,
        "class_name": class.name,
        "category_uid": CATEGORY_UID,
        "category_name": "Identity & Access Management",
        "activity_id": activity.id,
        "activity_name": activity.name,
        "type_uid": class.uid * 100 + activity.id,
        "type_name": format!("{}: {}", class.name, activity.name),
        "time": millis(event.occurred_at),
        "severity_id": severity_id,
        "severity": severity_name,
        "status_id": status_id,
        "status": status_name,
        "message": event.body.summary(),
        "metadata": {
            "version": OCSF_VERSION,
            "product": {
                "name": "Custody",
                "vendor_name": "Custody",
                "version": env!("CARGO_PKG_VERSION"),
            },
            "uid": event.event_id.as_str(),
            "correlation_uid": event.case_id.as_str(),
            "sequence": record.log_index,
            "event_code": event.body.kind_name(),
            "log_name": "custody",
            "logged_time": millis(event.recorded_at),
            "original_event_uid": event.external_id,
            "source": event.source,
            "labels": [format!("role:{}", event.role.as_str())],
            "tags": tags,
        },
        "actor": actor_json(&event.actor),
        "observables": observables,
        "raw_data": bytes,
        "raw_data_hash": {
            "algorithm": "SHA-256",
            "algorithm_id": 3,
            "value": custody_core::Sha256Hash::of(record.bytes).to_hex(),
        },
        "raw_data_size": record.bytes.len(),
        "unmapped": {
            "custody": {
                "kind": event.body.kind_name(),
                "case_id": event.case_id.as_str(),
                "seq": event.seq,
                "log_index": record.log_index,
                "role": event.role.as_str(),
                "occurred_at": event.occurred_at.to_string(),
                "recorded_at": event.recorded_at.to_string(),
                "causation": event.causation.as_ref().map(|id| id.as_str()),
                "actor": {
                    "principal": event.actor.principal.as_str(),
                    "kind": event.actor.kind.as_str(),
                    "on_behalf_of": event.actor.on_behalf_of,
                    "delegation_grant": event.actor.delegation_grant,
                    "via": event.actor.via.to_string(),
                },
                "requester": roles.requester.as_ref().map(party_json),
                "approvers": roles.approvers.iter().map(party_json).collect::<Vec<_>>(),
                "executor": roles.executor.as_ref().map(party_json),
                "reviewer": roles.reviewer.as_ref().map(party_json),
                "change": change.map(change_json),
            },
        },
    });
    if status_id == 2 {
        document["status_detail"] = json!(failure_detail(&event.body));
        if let EventBody::NotificationAttempted(attempt) = &event.body {
            document["status_code"] = json!(attempt.status.map(|code| code.to_string()));
        }
    }
    match target {
        Target::Entity { entity, comment } => {
            document["entity"] = if entity.is_null() {
                json!({
                    "uid": event.case_id.as_str(),
                    "name": event.case_id.as_str(),
                    "type": "case",
                    "type_id": 99,
                    "data": change.map(change_json),
                })
            } else {
                entity
            };
            document["comment"] = json!(comment);
        }
        Target::Privileges {
            user,
            privileges,
            resource,
        } => {
            document["user"] = user;
            document["privileges"] = json!(privileges);
            document["resource"] = resource.unwrap_or(Value::Null);
        }
        Target::Group {
            group,
            user,
            privileges,
        } => {
            document["group"] = group;
            document["user"] = user.unwrap_or(Value::Null);
            if !privileges.is_empty() {
                document["privileges"] = json!(privileges);
            }
        }
        Target::Account { user } => document["user"] = user,
    }
    crate::strip_nulls(&mut document);
    document
}

fn change_json(change: &Change) -> Value {
    json!({
        "subject": change.subject().to_string(),
        "change": change.kind().as_str(),
        "entitlement": change.entitlement(),
        "resource": change.resource(),
        "duration_seconds": change.duration_seconds(),
    })
}

fn failure_detail(body: &EventBody) -> Option<String> {
    match body {
        EventBody::ExecutionFailed(execution) => execution.comment.clone(),
        EventBody::ApprovalDenied(decision) => decision.comment.clone(),
        EventBody::EvidenceUnverified(failure) => Some(failure.error.clone()),
        EventBody::EvidenceRechecked(recheck) => recheck.error.clone(),
        EventBody::NotificationAttempted(attempt) => attempt.error.clone(),
        _ => None,
    }
}

fn evidence_observables(body: &EventBody, observables: &mut Vec<Value>) {
    let mut hash = |value: String| {
        observables.push(json!({"name": "unmapped.custody.evidence.sha256", "type_id": 8, "type": "Hash", "value": value}));
    };
    let mut urls = Vec::new();
    match body {
        EventBody::EvidenceAttached(evidence) => {
            hash(evidence.sha256.to_hex());
            urls.extend(evidence.link.as_ref().map(|link| link.url.clone()));
        }
        EventBody::EvidenceHeld(held) => {
            hash(held.evidence.sha256.to_hex());
            urls.extend(held.evidence.link.as_ref().map(|link| link.url.clone()));
        }
        EventBody::EvidenceJoined(join) => {
            for evidence in &join.evidence {
                hash(evidence.sha256.to_hex());
                urls.extend(evidence.link.as_ref().map(|link| link.url.clone()));
            }
        }
        EventBody::EvidenceRechecked(recheck) => {
            hash(recheck.previous.to_hex());
            if let Some(now) = recheck.sha256 {
                hash(now.to_hex());
            }
            urls.push(recheck.url.clone());
        }
        EventBody::EvidenceUnverified(failure) => urls.push(failure.url.clone()),
        _ => {}
    }
    for url in urls {
        observables.push(json!({"name": "unmapped.custody.evidence.url", "type_id": 6, "type": "URL String", "value": url}));
    }
}
