//! One CloudTrail record, read into an [`ObservedChange`] when it is an
//! access change.
//!
//! | `eventSource` | `eventName` | subject | change | entitlement |
//! |---|---|---|---|---|
//! | `iam` | `AttachUserPolicy` / `DetachUserPolicy` | `user:<userName>` | grant / revoke | the `policyArn` |
//! | `iam` | `AttachRolePolicy` / `DetachRolePolicy` | `role:<roleName>` | grant / revoke | the `policyArn` |
//! | `iam` | `PutRolePolicy` / `DeleteRolePolicy` | `role:<roleName>` | grant / revoke | `inline-policy/<policyName>` |
//! | `iam` | `AddUserToGroup` / `RemoveUserFromGroup` | `user:<userName>` | grant / revoke | `group/<groupName>` |
//! | `iam` | `CreateAccessKey` | `api_key:<userName>` | create | `access-key` |
//! | `iam` | `UpdateAccessKey` | `api_key:<userName>` | grant (`Active`) / revoke (`Inactive`) | `access-key` |
//! | `iam` | `DeleteAccessKey` | `api_key:<userName>` | delete | `access-key` |
//! | `iam` | `CreateLoginProfile` | `user:<userName>` | create | `console-login` |
//! | `sts` | `AssumeRole` with a `sourceIdentity` | `user:<sourceIdentity>` | grant | the `roleArn` |
//!
//! (`iam` is `iam.amazonaws.com`, `sts` is `sts.amazonaws.com`.) The
//! resource is the account the call was made in, `aws:<recipientAccountId>`.
//! An access key's `userName` is the request's, else the response's, else
//! the caller's own (IAM lets a user manage its own keys without naming
//! itself).
//!
//! Skipped, counted and never recorded: records with an `errorCode` (the
//! call failed, no access changed), read-only records (but `AssumeRole`,
//! which CloudTrail marks read-only, is read), `AssumeRole` without
//! a `sourceIdentity` (the many sessions services and automation open), and
//! every other event.
//!
//! The actor is the record's `userIdentity`: an IAM user, the root user or
//! a federated user by its `arn`; an assumed role by its session issuer's
//! ARN (the role, stable across sessions, so it can be mapped to a
//! principal), with the session's name (from the assumed-role ARN) and its
//! `sourceIdentity`; an AWS service by `invokedBy`; and `onBehalfOf`'s
//! `userId` (IAM Identity Center) as whom it acted for.
//!
//! A case ID is looked for in, in order: the new session's `roleSessionName`,
//! `sourceIdentity` and tag values (an `AssumeRole`), then the caller's
//! `sourceIdentity` and session name. Set the session name to the case ID
//! (`AC-...`, or `custody-AC-...`) when a change is made for a case.

use std::borrow::Cow;

use serde::Deserialize;

use custody_core::model::{ChangeKind, PrincipalKind, SubjectKind};
use custody_core::observation::{ObservedActor, ObservedChange};
use custody_core::Timestamp;

use crate::observe::Fields;
use crate::Refusal;

/// The fields of a CloudTrail record that Custody reads; the others are
/// ignored (the record's hash covers them all).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record<'a> {
    /// The record's unique ID.
    #[serde(rename = "eventID", borrow, default)]
    pub event_id: Option<Cow<'a, str>>,
    /// When the call was made.
    #[serde(borrow, default)]
    pub event_time: Option<Cow<'a, str>>,
    /// The service (`iam.amazonaws.com`).
    #[serde(borrow, default)]
    pub event_source: Option<Cow<'a, str>>,
    /// The API call (`AttachRolePolicy`).
    #[serde(borrow, default)]
    pub event_name: Option<Cow<'a, str>>,
    /// Set when the call failed.
    #[serde(borrow, default)]
    pub error_code: Option<Cow<'a, str>>,
    /// Whether the call only reads.
    #[serde(default)]
    pub read_only: Option<bool>,
    /// The account the call was made in.
    #[serde(borrow, default)]
    pub recipient_account_id: Option<Cow<'a, str>>,
    /// Who made it.
    #[serde(borrow, default)]
    pub user_identity: Option<UserIdentity<'a>>,
    /// The call's parameters (`null` for some calls).
    #[serde(borrow, default)]
    pub request_parameters: Option<Parameters<'a>>,
    /// Its answer (`null` for most IAM calls).
    #[serde(borrow, default)]
    pub response_elements: Option<Response<'a>>,
}

/// `userIdentity`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity<'a> {
    /// `IAMUser`, `AssumedRole`, `Root`, `FederatedUser`, `AWSService`, ...
    #[serde(rename = "type", borrow, default)]
    pub identity_type: Option<Cow<'a, str>>,
    /// The principal's unique ID.
    #[serde(borrow, default)]
    pub principal_id: Option<Cow<'a, str>>,
    /// Its ARN (an assumed role's holds the session name).
    #[serde(borrow, default)]
    pub arn: Option<Cow<'a, str>>,
    /// Its account.
    #[serde(borrow, default)]
    pub account_id: Option<Cow<'a, str>>,
    /// An IAM user's name.
    #[serde(borrow, default)]
    pub user_name: Option<Cow<'a, str>>,
    /// The service that made the call for the principal.
    #[serde(borrow, default)]
    pub invoked_by: Option<Cow<'a, str>>,
    /// The session, for temporary credentials.
    #[serde(borrow, default)]
    pub session_context: Option<SessionContext<'a>>,
    /// Whom it acted for (IAM Identity Center).
    #[serde(borrow, default)]
    pub on_behalf_of: Option<OnBehalfOf<'a>>,
}

/// `userIdentity.sessionContext`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionContext<'a> {
    /// What issued the session (the role).
    #[serde(borrow, default)]
    pub session_issuer: Option<SessionIssuer<'a>>,
    /// The identity the session was started for.
    #[serde(borrow, default)]
    pub source_identity: Option<Cow<'a, str>>,
}

/// `userIdentity.sessionContext.sessionIssuer`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionIssuer<'a> {
    /// The role's ARN.
    #[serde(borrow, default)]
    pub arn: Option<Cow<'a, str>>,
    /// The role's name.
    #[serde(borrow, default)]
    pub user_name: Option<Cow<'a, str>>,
}

/// `userIdentity.onBehalfOf`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnBehalfOf<'a> {
    /// The Identity Center user's ID.
    #[serde(borrow, default)]
    pub user_id: Option<Cow<'a, str>>,
}

/// The `requestParameters` of the calls read (all optional: each call has
/// some of them).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parameters<'a> {
    /// IAM user.
    #[serde(borrow, default)]
    pub user_name: Option<Cow<'a, str>>,
    /// IAM role.
    #[serde(borrow, default)]
    pub role_name: Option<Cow<'a, str>>,
    /// Managed policy.
    #[serde(borrow, default)]
    pub policy_arn: Option<Cow<'a, str>>,
    /// Inline policy.
    #[serde(borrow, default)]
    pub policy_name: Option<Cow<'a, str>>,
    /// IAM group.
    #[serde(borrow, default)]
    pub group_name: Option<Cow<'a, str>>,
    /// `UpdateAccessKey`'s new status (`Active`, `Inactive`).
    #[serde(borrow, default)]
    pub status: Option<Cow<'a, str>>,
    /// `AssumeRole`'s role.
    #[serde(borrow, default)]
    pub role_arn: Option<Cow<'a, str>>,
    /// `AssumeRole`'s session name.
    #[serde(borrow, default)]
    pub role_session_name: Option<Cow<'a, str>>,
    /// `AssumeRole`'s source identity.
    #[serde(borrow, default)]
    pub source_identity: Option<Cow<'a, str>>,
    /// `AssumeRole`'s session tags.
    #[serde(borrow, default)]
    pub tags: Option<Vec<Tag<'a>>>,
}

/// A session tag.
#[derive(Debug, Deserialize)]
pub struct Tag<'a> {
    /// Its key.
    #[serde(borrow, default)]
    pub key: Option<Cow<'a, str>>,
    /// Its value.
    #[serde(borrow, default)]
    pub value: Option<Cow<'a, str>>,
}

/// The `responseElements` read.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response<'a> {
    /// `CreateAccessKey`'s new key.
    #[serde(borrow, default)]
    pub access_key: Option<AccessKey<'a>>,
    /// `AssumeRole`'s source identity, as STS set it.
    #[serde(borrow, default)]
    pub source_identity: Option<Cow<'a, str>>,
}

/// `responseElements.accessKey`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKey<'a> {
    /// Whose key it is.
    #[serde(borrow, default)]
    pub user_name: Option<Cow<'a, str>>,
}

/// IAM's event source.
const IAM: &str = "iam.amazonaws.com";
/// STS's event source.
const STS: &str = "sts.amazonaws.com";

/// Reads one record (`raw`: its bytes as the source sent them, hashed into
/// the observation). `Ok(None)`: not an access change (skipped).
pub fn read<'r>(record: &'r Record<'_>, raw: &[u8]) -> Result<Option<ObservedChange>, Refusal> {
    if record.error_code.is_some() {
        return Ok(None);
    }
    let (Some(source), Some(name)) = (&record.event_source, &record.event_name) else {
        return Ok(None);
    };
    let Some(mapping) = map(source, name) else {
        return Ok(None);
    };
    // CloudTrail marks `AssumeRole` read-only (it changes no stored
    // policy), yet the session it opens is access; every IAM call read is
    // a write, and one marked read-only is not trusted to have changed
    // anything.
    if record.read_only == Some(true) && mapping != Mapping::AssumeRole {
        return Ok(None);
    }
    let external_id = record.event_id.as_deref().unwrap_or_default();
    let malformed = |what: &str| {
        Refusal::Malformed(format!(
            "CloudTrail record {} ({name}): {what}",
            if external_id.is_empty() {
                "without an eventID".into()
            } else {
                custody_core::text::escape(external_id)
            }
        ))
    };
    if external_id.is_empty() {
        return Err(malformed("it has no `eventID`"));
    }
    let parameters = record.request_parameters.as_ref();
    let parameter = |value: Option<&'r str>, label: &str| {
        value
            .filter(|value| !value.is_empty())
            .ok_or_else(|| malformed(&format!("its requestParameters have no `{label}`")))
    };
    let identity = record
        .user_identity
        .as_ref()
        .ok_or_else(|| malformed("it has no `userIdentity`"))?;
    let time = record
        .event_time
        .as_deref()
        .ok_or_else(|| malformed("it has no `eventTime`"))?;
    let occurred_at =
        Timestamp::parse(time).map_err(|error| malformed(&format!("its `eventTime`: {error}")))?;

    let mut hints: Vec<&str> = Vec::new();
    let (subject_kind, subject, kind, entitlement): (SubjectKind, &str, ChangeKind, Cow<'_, str>) =
        match mapping {
            Mapping::UserPolicy(kind) => (
                SubjectKind::User,
                parameter(parameters.and_then(|p| p.user_name.as_deref()), "userName")?,
                kind,
                Cow::Borrowed(parameter(
                    parameters.and_then(|p| p.policy_arn.as_deref()),
                    "policyArn",
                )?),
            ),
            Mapping::RolePolicy(kind) => (
                SubjectKind::Role,
                parameter(parameters.and_then(|p| p.role_name.as_deref()), "roleName")?,
                kind,
                Cow::Borrowed(parameter(
                    parameters.and_then(|p| p.policy_arn.as_deref()),
                    "policyArn",
                )?),
            ),
            Mapping::InlineRolePolicy(kind) => (
                SubjectKind::Role,
                parameter(parameters.and_then(|p| p.role_name.as_deref()), "roleName")?,
                kind,
                Cow::Owned(format!(
                    "inline-policy/{}",
                    parameter(
                        parameters.and_then(|p| p.policy_name.as_deref()),
                        "policyName"
                    )?
                )),
            ),
            Mapping::GroupMembership(kind) => (
                SubjectKind::User,
                parameter(parameters.and_then(|p| p.user_name.as_deref()), "userName")?,
                kind,
                Cow::Owned(format!(
                    "group/{}",
                    parameter(
                        parameters.and_then(|p| p.group_name.as_deref()),
                        "groupName"
                    )?
                )),
            ),
            Mapping::AccessKey(kind) => {
                let kind = match kind {
                    Some(kind) => kind,
                    None => {
                        match parameter(parameters.and_then(|p| p.status.as_deref()), "status")? {
                            "Active" => ChangeKind::Grant,
                            "Inactive" => ChangeKind::Revoke,
                            other => {
                                return Err(malformed(&format!(
                                    "its status `{}` is neither Active nor Inactive",
                                    custody_core::text::escape(other)
                                )))
                            }
                        }
                    }
                };
                let user = parameters
                    .and_then(|p| p.user_name.as_deref())
                    .or_else(|| {
                        record
                            .response_elements
                            .as_ref()
                            .and_then(|r| r.access_key.as_ref())
                            .and_then(|key| key.user_name.as_deref())
                    })
                    .or(identity.user_name.as_deref())
                    .filter(|user| !user.is_empty())
                    .ok_or_else(|| malformed("it names no user (no `userName` in the request, the response or the caller)"))?;
                (SubjectKind::ApiKey, user, kind, Cow::Borrowed("access-key"))
            }
            Mapping::LoginProfile => (
                SubjectKind::User,
                parameter(parameters.and_then(|p| p.user_name.as_deref()), "userName")?,
                ChangeKind::Create,
                Cow::Borrowed("console-login"),
            ),
            Mapping::AssumeRole => {
                let source_identity = parameters
                    .and_then(|p| p.source_identity.as_deref())
                    .or_else(|| {
                        record
                            .response_elements
                            .as_ref()
                            .and_then(|r| r.source_identity.as_deref())
                    })
                    .filter(|identity| !identity.is_empty());
                let Some(source_identity) = source_identity else {
                    // Without a source identity the session names no person:
                    // services and automation assume roles all day.
                    return Ok(None);
                };
                let role = parameter(parameters.and_then(|p| p.role_arn.as_deref()), "roleArn")?;
                if let Some(session) = parameters.and_then(|p| p.role_session_name.as_deref()) {
                    hints.push(session);
                }
                hints.push(source_identity);
                for tag in parameters
                    .and_then(|p| p.tags.as_ref())
                    .into_iter()
                    .flatten()
                {
                    if let Some(value) = tag.value.as_deref() {
                        hints.push(value);
                    }
                }
                (
                    SubjectKind::User,
                    source_identity,
                    ChangeKind::Grant,
                    Cow::Borrowed(role),
                )
            }
        };
    let actor = actor(identity);
    if let Some(identity) = actor.source_identity.as_deref() {
        hints.push(identity);
    }
    if let Some(session) = actor.session.as_deref() {
        hints.push(session);
    }
    let resource = record
        .recipient_account_id
        .as_deref()
        .or(identity.account_id.as_deref())
        .filter(|account| !account.is_empty())
        .map(|account| format!("aws:{account}"));
    // `hints` borrows from the record and the actor; build needs them only
    // while it runs, so the actor's are copied out first.
    let owned_hints: Vec<String> = hints.iter().map(|hint| (*hint).to_string()).collect();
    Fields {
        external_id,
        action: name,
        occurred_at,
        actor,
        subject: (subject_kind, subject),
        kind,
        entitlement: &entitlement,
        resource: resource.as_deref(),
        hints: owned_hints.iter().map(String::as_str).collect(),
        references: Vec::new(),
        raw,
    }
    .build()
    .map(Some)
}

/// What a read call is, in Custody's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mapping {
    UserPolicy(ChangeKind),
    RolePolicy(ChangeKind),
    InlineRolePolicy(ChangeKind),
    GroupMembership(ChangeKind),
    /// `None`: by the request's `status` (`UpdateAccessKey`).
    AccessKey(Option<ChangeKind>),
    LoginProfile,
    AssumeRole,
}

fn map(source: &str, name: &str) -> Option<Mapping> {
    use ChangeKind::{Create, Delete, Grant, Revoke};
    Some(match (source, name) {
        (IAM, "AttachUserPolicy") => Mapping::UserPolicy(Grant),
        (IAM, "DetachUserPolicy") => Mapping::UserPolicy(Revoke),
        (IAM, "AttachRolePolicy") => Mapping::RolePolicy(Grant),
        (IAM, "DetachRolePolicy") => Mapping::RolePolicy(Revoke),
        (IAM, "PutRolePolicy") => Mapping::InlineRolePolicy(Grant),
        (IAM, "DeleteRolePolicy") => Mapping::InlineRolePolicy(Revoke),
        (IAM, "AddUserToGroup") => Mapping::GroupMembership(Grant),
        (IAM, "RemoveUserFromGroup") => Mapping::GroupMembership(Revoke),
        (IAM, "CreateAccessKey") => Mapping::AccessKey(Some(Create)),
        (IAM, "UpdateAccessKey") => Mapping::AccessKey(None),
        (IAM, "DeleteAccessKey") => Mapping::AccessKey(Some(Delete)),
        (IAM, "CreateLoginProfile") => Mapping::LoginProfile,
        (STS, "AssumeRole") => Mapping::AssumeRole,
        _ => return None,
    })
}

/// The actor of a record, from its `userIdentity`.
fn actor(identity: &UserIdentity<'_>) -> ObservedActor {
    let identity_type = identity.identity_type.as_deref().unwrap_or_default();
    let issuer = identity
        .session_context
        .as_ref()
        .and_then(|context| context.session_issuer.as_ref());
    let non_empty = |text: Option<&str>| text.filter(|text| !text.is_empty()).map(str::to_string);
    let id = match identity_type {
        "AssumedRole" => non_empty(issuer.and_then(|issuer| issuer.arn.as_deref()))
            .or_else(|| non_empty(identity.arn.as_deref())),
        "AWSService" => non_empty(identity.invoked_by.as_deref()),
        _ => non_empty(identity.arn.as_deref()),
    }
    .or_else(|| non_empty(identity.principal_id.as_deref()))
    .unwrap_or_else(|| {
        if identity_type.is_empty() {
            "unknown".to_string()
        } else {
            identity_type.to_string()
        }
    });
    // arn:aws:sts::<account>:assumed-role/<role>/<session>
    let session = (identity_type == "AssumedRole")
        .then_some(identity.arn.as_deref())
        .flatten()
        .and_then(|arn| arn.split_once(":assumed-role/"))
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, session)| session.to_string())
        .filter(|session| !session.is_empty());
    let display = match identity_type {
        "AssumedRole" => issuer
            .and_then(|issuer| issuer.user_name.as_deref())
            .map(|role| match &session {
                Some(session) => format!("{role}/{session}"),
                None => role.to_string(),
            }),
        _ => non_empty(identity.user_name.as_deref()),
    };
    ObservedActor {
        id,
        kind: (identity_type == "AWSService").then_some(PrincipalKind::Automation),
        display,
        on_behalf_of: identity
            .on_behalf_of
            .as_ref()
            .and_then(|on_behalf_of| non_empty(on_behalf_of.user_id.as_deref())),
        session,
        source_identity: identity
            .session_context
            .as_ref()
            .and_then(|context| non_empty(context.source_identity.as_deref())),
        principal: None,
    }
}
