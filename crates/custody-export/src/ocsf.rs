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
//!   administration of principals, bearer tokens and the outside users
//!   mapped to principals;
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
use serde::Serialize;
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
/// modified or deleted; principals added; bearer tokens issued and revoked;
/// outside users mapped to principals and unmapped.
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
        // What a connector saw done in the system that holds the access:
        // the access change itself, as the source recorded it.
        EventBody::ExecutionObserved(observed) => access_change(&observed.change),
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
        EventBody::IdentityMapped(mapped) => (
            ACCOUNT_CHANGE,
            activity(99, "Map Identity"),
            Target::Account {
                user: mapped_user(&mapped.principal, &mapped.connector, &mapped.external_user),
            },
        ),
        EventBody::IdentityUnmapped(unmapped) => (
            ACCOUNT_CHANGE,
            activity(99, "Unmap Identity"),
            Target::Account {
                user: mapped_user(
                    &unmapped.principal,
                    &unmapped.connector,
                    &unmapped.external_user,
                ),
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
        // The monitor's finding about the case's trail. OCSF's Detection
        // Finding (2004) is of the Findings category, outside the one the
        // export keeps to: the case entity is updated, the finding's code
        // and message in the comment (its severity in `severity_id`).
        EventBody::FindingRaised(raised) => (
            ENTITY_MANAGEMENT,
            update,
            case(Some(&format!("{}: {}", raised.code, raised.message))),
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

/// The OCSF user of a mapping: the principal, with the outside user that
/// acts as it as its `account` (`type` the connector, as `via` names it;
/// `type_id` 99, Other: the connector's name is the deployment's own).
fn mapped_user(
    principal: &custody_core::model::PrincipalId,
    connector: &custody_core::model::ConnectorName,
    external_user: &custody_core::model::ExternalUser,
) -> Value {
    json!({
        "uid": principal.as_str(),
        "name": principal.as_str(),
        "account": {
            "uid": external_user.as_str(),
            "name": external_user.as_str(),
            "type": format!("connector:{connector}"),
            "type_id": 99,
        },
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

// The document is written through typed structs rather than built as a
// `serde_json::Value`: an export writes millions of events, and a tree of
// maps per event spends most of its time allocating. `Option`s that are
// `None` and empty lists are left out (the schemas allow no `null`); the
// class-specific objects, small and shaped by the event kind, stay `Value`s
// without nulls (see `Target`).

#[derive(Serialize)]
struct Document<'a> {
    class_uid: u32,
    class_name: &'static str,
    category_uid: u32,
    category_name: &'static str,
    activity_id: u32,
    activity_name: &'static str,
    type_uid: u32,
    type_name: String,
    time: i64,
    severity_id: u32,
    severity: &'static str,
    status_id: u32,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<String>,
    message: String,
    metadata: Metadata<'a>,
    actor: ActorObject<'a>,
    observables: Vec<Observable<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    privileges: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<Value>,
    raw_data: std::borrow::Cow<'a, str>,
    raw_data_hash: Fingerprint,
    raw_data_size: usize,
    unmapped: Unmapped<'a>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    version: &'static str,
    product: Product,
    uid: &'a str,
    correlation_uid: &'a str,
    sequence: u64,
    event_code: &'static str,
    log_name: &'static str,
    logged_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_event_uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    labels: [String; 1],
    tags: Vec<Tag<'a>>,
}

#[derive(Serialize)]
struct Product {
    name: &'static str,
    vendor_name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Tag<'a> {
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<std::borrow::Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<Vec<&'a str>>,
}

fn tag<'a>(name: &'static str, value: impl Into<std::borrow::Cow<'a, str>>) -> Tag<'a> {
    Tag {
        name,
        value: Some(value.into()),
        values: None,
    }
}

#[derive(Serialize)]
struct ActorObject<'a> {
    user: ActorUser<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idp: Option<Idp<'a>>,
    invoked_by: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authorizations: Vec<Authorization<'a>>,
}

#[derive(Serialize)]
struct ActorUser<'a> {
    uid: &'a str,
    name: &'a str,
    type_id: u32,
    #[serde(rename = "type")]
    type_name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    org: Option<Named<'a>>,
    groups: Vec<Named<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid_alt: Option<&'a str>,
}

#[derive(Serialize)]
struct Named<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Idp<'a> {
    name: &'a str,
    issuer: &'a str,
}

#[derive(Serialize)]
struct Authorization<'a> {
    decision: &'static str,
    policy: AuthorizationPolicy<'a>,
}

#[derive(Serialize)]
struct AuthorizationPolicy<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<&'a str>,
    #[serde(rename = "type")]
    type_name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[derive(Serialize)]
struct Observable<'a> {
    name: &'static str,
    type_id: u32,
    #[serde(rename = "type")]
    type_name: &'static str,
    value: std::borrow::Cow<'a, str>,
}

fn observable<'a>(
    name: &'static str,
    (type_id, type_name): (u32, &'static str),
    value: impl Into<std::borrow::Cow<'a, str>>,
) -> Observable<'a> {
    Observable {
        name,
        type_id,
        type_name,
        value: value.into(),
    }
}

const RESOURCE_UID: (u32, &str) = (10, "Resource UID");
const USER_NAME: (u32, &str) = (4, "User Name");
const HASH: (u32, &str) = (8, "Hash");
const URL_STRING: (u32, &str) = (6, "URL String");

#[derive(Serialize)]
struct Fingerprint {
    algorithm: &'static str,
    algorithm_id: u32,
    value: String,
}

#[derive(Serialize)]
struct Unmapped<'a> {
    custody: CustodyFields<'a>,
}

#[derive(Serialize)]
struct CustodyFields<'a> {
    kind: &'static str,
    case_id: &'a str,
    seq: u64,
    log_index: u64,
    role: &'static str,
    occurred_at: String,
    recorded_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    causation: Option<&'a str>,
    actor: ActorFields<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requester: Option<&'a Party>,
    approvers: Vec<&'a Party>,
    #[serde(skip_serializing_if = "Option::is_none")]
    executor: Option<&'a Party>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reviewer: Option<&'a Party>,
    #[serde(skip_serializing_if = "Option::is_none")]
    change: Option<ChangeFields<'a>>,
}

#[derive(Serialize)]
struct ActorFields<'a> {
    principal: &'a str,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_behalf_of: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delegation_grant: Option<&'a str>,
    via: String,
}

#[derive(Serialize)]
struct ChangeFields<'a> {
    subject: String,
    change: &'static str,
    entitlement: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_seconds: Option<u64>,
}

fn change_fields(change: &Change) -> ChangeFields<'_> {
    ChangeFields {
        subject: change.subject().to_string(),
        change: change.kind().as_str(),
        entitlement: change.entitlement(),
        resource: change.resource(),
        duration_seconds: change.duration_seconds(),
    }
}

fn actor_object(actor: &Actor) -> ActorObject<'_> {
    let (type_id, type_name) = if actor.auth == AuthContext::System {
        (3, "System")
    } else {
        user_type(actor.kind)
    };
    let (credential_uid, uid_alt, idp) = match &actor.auth {
        AuthContext::Token { token_id } => (Some(token_id.as_str()), None, None),
        AuthContext::Oidc { issuer, subject } => (
            None,
            Some(subject.as_str()),
            Some(Idp {
                name: issuer,
                issuer,
            }),
        ),
        // The outside system's user ID is the account's alternate UID; the
        // connector that vouched for it is the identity provider.
        AuthContext::Connector {
            connector,
            external_user,
        } => (
            None,
            Some(external_user.as_str()),
            Some(Idp {
                name: connector,
                issuer: connector,
            }),
        ),
        AuthContext::System => (None, None, None),
    };
    let authorizations = match (&actor.delegation_grant, &actor.on_behalf_of) {
        (None, None) => Vec::new(),
        (grant, on_behalf_of) => vec![Authorization {
            decision: "allowed",
            policy: AuthorizationPolicy {
                uid: grant.as_deref(),
                type_name: if grant.is_some() {
                    "delegation_grant"
                } else {
                    "on_behalf_of"
                },
                name: on_behalf_of
                    .as_ref()
                    .map(|party| format!("on behalf of {party}")),
            },
        }],
    };
    ActorObject {
        user: ActorUser {
            uid: actor.principal.as_str(),
            name: actor.principal.as_str(),
            type_id,
            type_name,
            org: actor.org.as_deref().map(|name| Named { name }),
            groups: actor.groups.iter().map(|name| Named { name }).collect(),
            credential_uid,
            uid_alt,
        },
        idp,
        invoked_by: actor.via.to_string(),
        authorizations,
    }
}

/// The OCSF event for a record, as a JSON value.
pub fn event_json(record: &Record<'_>) -> Value {
    serde_json::to_value(document(record)).unwrap_or(Value::Null)
}

/// Appends the OCSF event for a record as one line.
pub(crate) fn write(record: &Record<'_>, out: &mut Vec<u8>) -> Result<(), crate::ExportError> {
    crate::write_json_line(&document(record), record.log_index, out)
}

fn document<'a>(record: &'a Record<'a>) -> Document<'a> {
    let event: &Event = record.event;
    let change = case_change(record);
    let (class, activity, target) = target(&event.body, change);
    let roles = record.roles;
    let (severity_id, severity_name) = match kinds::severity(&event.body) {
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
        tag("via", event.actor.via.to_string()),
    ];
    if let Some(on_behalf_of) = &event.actor.on_behalf_of {
        tags.push(tag("on_behalf_of", on_behalf_of.as_str()));
    }
    if let Some(grant) = &event.actor.delegation_grant {
        tags.push(tag("delegation_grant", grant.as_str()));
    }
    if let Some(requester) = &roles.requester {
        tags.push(tag("requester", requester.principal.as_str()));
    }
    if !roles.approvers.is_empty() {
        tags.push(Tag {
            name: "approvers",
            value: None,
            values: Some(
                roles
                    .approvers
                    .iter()
                    .map(|party| party.principal.as_str())
                    .collect(),
            ),
        });
    }
    if let Some(executor) = &roles.executor {
        tags.push(tag("executor", executor.principal.as_str()));
    }
    if let Some(reviewer) = &roles.reviewer {
        tags.push(tag("reviewer", reviewer.principal.as_str()));
    }

    let mut observables = vec![
        observable(
            "metadata.correlation_uid",
            RESOURCE_UID,
            event.case_id.as_str(),
        ),
        observable("actor.user.uid", USER_NAME, event.actor.principal.as_str()),
    ];
    let role_parties = [
        (
            "unmapped.custody.requester.principal",
            roles.requester.as_ref(),
        ),
        (
            "unmapped.custody.executor.principal",
            roles.executor.as_ref(),
        ),
        (
            "unmapped.custody.reviewer.principal",
            roles.reviewer.as_ref(),
        ),
    ];
    if let Some(requester) = role_parties[0].1 {
        observables.push(observable(
            role_parties[0].0,
            USER_NAME,
            requester.principal.as_str(),
        ));
    }
    for approver in &roles.approvers {
        observables.push(observable(
            "unmapped.custody.approvers.principal",
            USER_NAME,
            approver.principal.as_str(),
        ));
    }
    for (name, party) in &role_parties[1..] {
        if let Some(party) = party {
            observables.push(observable(name, USER_NAME, party.principal.as_str()));
        }
    }
    if let Some(grant) = &event.actor.delegation_grant {
        observables.push(observable(
            "actor.authorizations.policy.uid",
            RESOURCE_UID,
            grant.as_str(),
        ));
    }
    evidence_observables(&event.body, &mut observables);

    let failed = status_id == 2;
    let mut document = Document {
        class_uid: class.uid,
        class_name: class.name,
        category_uid: CATEGORY_UID,
        category_name: "Identity & Access Management",
        activity_id: activity.id,
        activity_name: activity.name,
        type_uid: class.uid * 100 + activity.id,
        type_name: format!("{}: {}", class.name, activity.name),
        time: millis(event.occurred_at),
        severity_id,
        severity: severity_name,
        status_id,
        status: status_name,
        status_detail: if failed {
            failure_detail(&event.body)
        } else {
            None
        },
        status_code: match &event.body {
            EventBody::NotificationAttempted(attempt) if failed => {
                attempt.status.map(|code| code.to_string())
            }
            _ => None,
        },
        message: event.body.summary(),
        metadata: Metadata {
            version: OCSF_VERSION,
            product: Product {
                name: "Custody",
                vendor_name: "Custody",
                version: env!("CARGO_PKG_VERSION"),
            },
            uid: event.event_id.as_str(),
            correlation_uid: event.case_id.as_str(),
            sequence: record.log_index,
            event_code: event.body.kind_name(),
            log_name: "custody",
            logged_time: millis(event.recorded_at),
            original_event_uid: event.external_id.as_deref(),
            source: event.source.as_deref(),
            labels: [format!("role:{}", event.role.as_str())],
            tags,
        },
        actor: actor_object(&event.actor),
        observables,
        entity: None,
        comment: None,
        user: None,
        group: None,
        privileges: None,
        resource: None,
        raw_data: String::from_utf8_lossy(record.bytes),
        raw_data_hash: Fingerprint {
            algorithm: "SHA-256",
            algorithm_id: 3,
            value: custody_core::Sha256Hash::of(record.bytes).to_hex(),
        },
        raw_data_size: record.bytes.len(),
        unmapped: Unmapped {
            custody: CustodyFields {
                kind: event.body.kind_name(),
                case_id: event.case_id.as_str(),
                seq: event.seq,
                log_index: record.log_index,
                role: event.role.as_str(),
                occurred_at: event.occurred_at.to_string(),
                recorded_at: event.recorded_at.to_string(),
                causation: event.causation.as_ref().map(|id| id.as_str()),
                actor: ActorFields {
                    principal: event.actor.principal.as_str(),
                    kind: event.actor.kind.as_str(),
                    on_behalf_of: event.actor.on_behalf_of.as_deref(),
                    delegation_grant: event.actor.delegation_grant.as_deref(),
                    via: event.actor.via.to_string(),
                },
                requester: roles.requester.as_ref(),
                approvers: roles.approvers.iter().collect(),
                executor: roles.executor.as_ref(),
                reviewer: roles.reviewer.as_ref(),
                change: change.map(change_fields),
            },
        },
    };
    let without_nulls = |mut value: Value| {
        crate::strip_nulls(&mut value);
        value
    };
    match target {
        Target::Entity { entity, comment } => {
            document.entity = Some(if entity.is_null() {
                without_nulls(json!({
                    "uid": event.case_id.as_str(),
                    "name": event.case_id.as_str(),
                    "type": "case",
                    "type_id": 99,
                    "data": change.map(change_json),
                }))
            } else {
                without_nulls(entity)
            });
            document.comment = comment;
        }
        Target::Privileges {
            user,
            privileges,
            resource,
        } => {
            document.user = Some(without_nulls(user));
            document.privileges = Some(privileges);
            document.resource = resource.map(without_nulls);
        }
        Target::Group {
            group,
            user,
            privileges,
        } => {
            document.group = Some(without_nulls(group));
            document.user = user.map(without_nulls);
            if !privileges.is_empty() {
                document.privileges = Some(privileges);
            }
        }
        Target::Account { user } => document.user = Some(without_nulls(user)),
    }
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

fn failure_detail(body: &EventBody) -> Option<&str> {
    match body {
        EventBody::ExecutionFailed(execution) => execution.comment.as_deref(),
        EventBody::ApprovalDenied(decision) => decision.comment.as_deref(),
        EventBody::EvidenceUnverified(failure) => Some(&failure.error),
        EventBody::EvidenceRechecked(recheck) => recheck.error.as_deref(),
        EventBody::NotificationAttempted(attempt) => attempt.error.as_deref(),
        _ => None,
    }
}

fn evidence_observables<'a>(body: &'a EventBody, observables: &mut Vec<Observable<'a>>) {
    const SHA256: &str = "unmapped.custody.evidence.sha256";
    const URL: &str = "unmapped.custody.evidence.url";
    let evidence = |evidence: &'a custody_core::event::Evidence,
                    observables: &mut Vec<Observable<'a>>| {
        observables.push(observable(SHA256, HASH, evidence.sha256.to_hex()));
        if let Some(link) = &evidence.link {
            observables.push(observable(URL, URL_STRING, link.url.as_str()));
        }
    };
    match body {
        EventBody::EvidenceAttached(attached) => evidence(attached, observables),
        EventBody::EvidenceHeld(held) => evidence(&held.evidence, observables),
        EventBody::EvidenceJoined(join) => {
            for joined in &join.evidence {
                evidence(joined, observables);
            }
        }
        EventBody::EvidenceRechecked(recheck) => {
            observables.push(observable(SHA256, HASH, recheck.previous.to_hex()));
            if let Some(now) = recheck.sha256 {
                observables.push(observable(SHA256, HASH, now.to_hex()));
            }
            observables.push(observable(URL, URL_STRING, recheck.url.as_str()));
        }
        EventBody::EvidenceUnverified(failure) => {
            observables.push(observable(URL, URL_STRING, failure.url.as_str()));
        }
        _ => {}
    }
}
