//! Entra ID `directoryAudit` records read into observed changes.
//!
//! - **Roles**: `Add member to role` and `Remove member from role`, and the
//!   Privileged Identity Management activities that begin with them
//!   (`Add member to role completed (PIM activation)`, ...). The member is
//!   the target that is not the role (a `User`, a `ServicePrincipal`, a
//!   `Group`); the role is its `Role.TemplateId` modified property (the
//!   same in every tenant: `62e90394-...` is Global Administrator), else
//!   its `Role.ObjectID`, else the `Role` target's ID. Eligible assignments
//!   (`Add eligible member to role ...`) give no access until activated and
//!   are skipped; their activation is read.
//! - **Groups**: `Add member to group` and `Remove member from group`. The
//!   member is the first target; the group its `Group.ObjectID` modified
//!   property, else the other `Group` target.
//! - **Application credentials**: `Update application – Certificates and
//!   secrets management` (on an `Application` target) and `Add` / `Remove
//!   service principal credentials` (on a `ServicePrincipal`). The keys are
//!   the `KeyDescription` modified property's lists before and after: each
//!   key only after is created, each key only before deleted, as
//!   `client_secret` (`KeyType=Password`) or `certificate` (any other key
//!   type). When the lists cannot be read, the record is one change:
//!   `create` (`delete`) `credential` for the `Add` (`Remove`) activity,
//!   `modify credential` for the update.
//!
//! A member is named by its kind: a user `user:<userPrincipalName>` (or its
//! object ID, with `subject_ids = "id"`, or when it has no UPN), a service
//! principal `service_account:<object ID>`, a group `group:<object ID>`, a
//! device `workload:<object ID>`.
//!
//! The actor is `initiatedBy.user` (a human, by object ID) or
//! `initiatedBy.app` (a service, by service principal ID, else app ID).
//! Case-ID hints are `resultReason` (where PIM keeps the justification),
//! the values of `additionalDetails` and the targets' names; a ticket PIM
//! recorded (`additionalDetails` `TicketSystem` and `TicketNumber`, or any
//! detail whose key names a ticket and whose value is `SYSTEM:KEY`) is a
//! reference. The external ID is the record's `id`, with `/1`, `/2`, ...
//! when one record is several changes (several keys).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use custody_core::model::{ChangeKind, PrincipalKind, SubjectKind};
use custody_core::observation::ObservedActor;
use custody_core::Timestamp;

use super::SubjectIds;
use crate::observe::{Fields, Parsed};
use crate::Refusal;

/// How records are read into changes.
#[derive(Clone, Debug)]
pub(super) struct Reader {
    /// How users are named.
    pub subject_ids: SubjectIds,
    /// The resource of every change, when the deployment names one.
    pub resource: Option<String>,
}

/// What an activity Custody reads changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// A member added to or removed from a directory role.
    Role(ChangeKind),
    /// A member added to or removed from a group.
    Group(ChangeKind),
    /// An application's or a service principal's credentials changed; the
    /// kind when the keys cannot be told apart.
    Credentials(ChangeKind),
}

impl Read {
    fn of(activity: &str) -> Option<Read> {
        let activity = normalise_activity(activity).to_ascii_lowercase();
        Some(if activity.starts_with("add member to role") {
            Read::Role(ChangeKind::Grant)
        } else if activity.starts_with("remove member from role") {
            Read::Role(ChangeKind::Revoke)
        } else if activity == "add member to group" {
            Read::Group(ChangeKind::Grant)
        } else if activity == "remove member from group" {
            Read::Group(ChangeKind::Revoke)
        } else if activity == "update application - certificates and secrets management" {
            Read::Credentials(ChangeKind::Modify)
        } else if activity == "add service principal credentials" {
            Read::Credentials(ChangeKind::Create)
        } else if activity == "remove service principal credentials" {
            Read::Credentials(ChangeKind::Delete)
        } else {
            return None;
        })
    }
}

/// An activity's name in ASCII, as recorded in the observation: Entra ID
/// writes some with an en dash and a trailing space.
fn normalise_activity(activity: &str) -> String {
    let replaced = activity.trim().replace(['\u{2013}', '\u{2014}'], "-");
    replaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A `directoryAudit`, as much of it as Custody reads. Graph adds fields
/// over time: unknown ones are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirectoryAudit {
    id: String,
    activity_date_time: String,
    activity_display_name: String,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    result_reason: Option<String>,
    #[serde(default)]
    initiated_by: Option<Initiator>,
    #[serde(default)]
    target_resources: Option<Vec<Target>>,
    #[serde(default)]
    additional_details: Option<Vec<KeyValue>>,
}

#[derive(Debug, Deserialize)]
struct Initiator {
    #[serde(default)]
    user: Option<UserIdentity>,
    #[serde(default)]
    app: Option<AppIdentity>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserIdentity {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppIdentity {
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    service_principal_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    modified_properties: Option<Vec<ModifiedProperty>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModifiedProperty {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    old_value: Option<String>,
    #[serde(default)]
    new_value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct KeyValue {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

/// Graph's answer to a list: `{"value": [...], "@odata.nextLink": ...}`.
#[derive(Deserialize)]
pub(super) struct Collection<'a> {
    #[serde(borrow)]
    pub value: Vec<&'a RawValue>,
    #[serde(default, rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

/// Text that is there.
fn present(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|text| !text.is_empty())
}

/// A modified property's value: Graph writes each as JSON text (a string
/// in quotes, a list in brackets); a bare value is taken as it is.
fn property_text(value: Option<&str>) -> Option<String> {
    let value = present(value)?;
    match serde_json::from_str::<Value>(value) {
        Ok(Value::String(text)) => present(Some(&text)).map(str::to_string),
        Ok(Value::Null) => None,
        _ => Some(value.to_string()),
    }
}

impl Target {
    fn is(&self, kind: &str) -> bool {
        self.kind
            .as_deref()
            .is_some_and(|own| own.eq_ignore_ascii_case(kind))
    }

    fn property(&self, name: &str) -> Option<&ModifiedProperty> {
        self.modified_properties.iter().flatten().find(|property| {
            property
                .display_name
                .as_deref()
                .is_some_and(|own| own.eq_ignore_ascii_case(name))
        })
    }

    /// The value of the modified property `name`: the new one, else (a
    /// removal) the old one.
    fn property_value(&self, name: &str) -> Option<String> {
        let property = self.property(name)?;
        property_text(property.new_value.as_deref())
            .or_else(|| property_text(property.old_value.as_deref()))
    }
}

/// A refusal of the `number`th `what` (record, line) of a body, saying so.
fn within(refusal: Refusal, what: &str, number: usize) -> Refusal {
    match refusal {
        Refusal::Malformed(message) => Refusal::Malformed(format!("{what} {number}: {message}")),
        other => other,
    }
}

/// One credential in a `KeyDescription` list.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    identifier: String,
    entitlement: &'static str,
}

/// The keys of a `KeyDescription` value: a JSON list of strings such as
/// `[KeyIdentifier=...,KeyType=Password,KeyUsage=Verify,DisplayName=...]`.
/// `None` when the value is not such a list.
fn keys(value: Option<&str>) -> Option<Vec<Key>> {
    let Some(value) = present(value) else {
        return Some(Vec::new());
    };
    let list: Vec<String> = match serde_json::from_str::<Value>(value).ok()? {
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Some(text),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?,
        Value::Null => Vec::new(),
        _ => return None,
    };
    list.iter()
        .map(|description| {
            let inner = description.trim().strip_prefix('[')?.strip_suffix(']')?;
            let mut identifier = None;
            let mut key_type = None;
            for part in inner.split(',') {
                if let Some((name, value)) = part.split_once('=') {
                    match name.trim() {
                        "KeyIdentifier" => identifier = Some(value.trim().to_string()),
                        "KeyType" => key_type = Some(value.trim().to_string()),
                        _ => {}
                    }
                }
            }
            Some(Key {
                identifier: identifier?,
                entitlement: if key_type.as_deref() == Some("Password") {
                    "client_secret"
                } else {
                    "certificate"
                },
            })
        })
        .collect()
}

impl Reader {
    /// Reads a batch file: Graph's answer (`{"value": [...]}`) or a bare
    /// JSON array of directoryAudits.
    pub fn read_batch(&self, bytes: &[u8]) -> Result<Parsed, Refusal> {
        let mut parsed = Parsed::default();
        let text = std::str::from_utf8(bytes)
            .map_err(|error| Refusal::Malformed(format!("the file is not UTF-8: {error}")))?;
        if text.trim_start().starts_with('[') {
            let records: Vec<&RawValue> = serde_json::from_str(text).map_err(|error| {
                Refusal::Malformed(format!(
                    "the file is not a JSON array of directoryAudits: {error}"
                ))
            })?;
            self.read_records(&records, &mut parsed)?;
        } else {
            let collection: Collection<'_> = serde_json::from_str(text).map_err(|error| {
                Refusal::Malformed(format!(
                    "the file is not Microsoft Graph's list of directoryAudits (`{{\"value\": [...]}}`) nor an array of them: {error}"
                ))
            })?;
            self.read_records(&collection.value, &mut parsed)?;
        }
        Ok(parsed)
    }

    /// Reads records into `parsed`, refusing all of them if one is refused.
    pub fn read_records(&self, records: &[&RawValue], parsed: &mut Parsed) -> Result<(), Refusal> {
        for (index, record) in records.iter().enumerate() {
            self.read_record(record.get(), parsed)
                .map_err(|refusal| within(refusal, "record", index + 1))?;
        }
        Ok(())
    }

    /// Reads one directoryAudit into `parsed`.
    fn read_record(&self, raw: &str, parsed: &mut Parsed) -> Result<(), Refusal> {
        let record: DirectoryAudit = serde_json::from_str(raw)
            .map_err(|error| Refusal::Malformed(format!("not a directoryAudit: {error}")))?;
        let Some(read) = Read::of(&record.activity_display_name) else {
            parsed.skipped += 1;
            return Ok(());
        };
        // A failed attempt changed nothing. A record without a result is
        // taken as done: better a change reported than missed.
        if let Some(result) = present(record.result.as_deref()) {
            if !result.eq_ignore_ascii_case("success") {
                parsed.skipped += 1;
                return Ok(());
            }
        }
        let action = normalise_activity(&record.activity_display_name);
        let malformed = |what: String| {
            Refusal::Malformed(format!(
                "record {} ({}): {what}",
                custody_core::text::escape(&record.id),
                custody_core::text::escape(&action)
            ))
        };
        let occurred_at = Timestamp::parse(&record.activity_date_time)
            .map_err(|error| malformed(format!("its `activityDateTime`: {error}")))?;
        let actor = actor(&record).map_err(&malformed)?;
        let changes = self.changes(&record, read).map_err(&malformed)?;
        let targets: &[Target] = record.target_resources.as_deref().unwrap_or_default();
        let details: &[KeyValue] = record.additional_details.as_deref().unwrap_or_default();
        let mut hints: Vec<&str> = Vec::new();
        hints.extend(present(record.result_reason.as_deref()));
        hints.extend(
            details
                .iter()
                .filter_map(|detail| present(detail.value.as_deref())),
        );
        hints.extend(
            targets
                .iter()
                .filter_map(|target| present(target.display_name.as_deref())),
        );
        let references = references(details);
        let several = changes.len() > 1;
        for (index, (subject_kind, subject, kind, entitlement)) in changes.iter().enumerate() {
            let external_id = if several {
                format!("{}/{}", record.id, index + 1)
            } else {
                record.id.clone()
            };
            parsed.observations.push(
                Fields {
                    external_id: &external_id,
                    action: &action,
                    occurred_at,
                    actor: actor.clone(),
                    subject: (*subject_kind, subject.as_str()),
                    kind: *kind,
                    entitlement,
                    resource: self.resource.as_deref(),
                    hints: hints.clone(),
                    references: references.iter().map(String::as_str).collect(),
                    raw: raw.as_bytes(),
                }
                .build()?,
            );
        }
        Ok(())
    }

    /// The member of a role or group change, as a subject.
    fn member(&self, target: &Target) -> Result<(SubjectKind, String), String> {
        let kind = target.kind.as_deref().unwrap_or_default();
        let id = present(target.id.as_deref())
            .map(str::to_string)
            .ok_or_else(|| format!("its `{kind}` target has no `id`"))?;
        Ok(if target.is("User") {
            let login = present(target.user_principal_name.as_deref());
            match (self.subject_ids, login) {
                (SubjectIds::Login, Some(login)) => (SubjectKind::User, login.to_string()),
                _ => (SubjectKind::User, id),
            }
        } else if target.is("ServicePrincipal") {
            (SubjectKind::ServiceAccount, id)
        } else if target.is("Group") {
            (SubjectKind::Group, id)
        } else if target.is("Device") {
            (SubjectKind::Workload, id)
        } else {
            return Err(format!(
                "its member target is a `{}`, not a User, ServicePrincipal, Group or Device",
                custody_core::text::escape(kind)
            ));
        })
    }

    /// The changes a record describes: (subject kind, subject ID, change
    /// kind, entitlement).
    fn changes(
        &self,
        record: &DirectoryAudit,
        read: Read,
    ) -> Result<Vec<(SubjectKind, String, ChangeKind, String)>, String> {
        let targets: &[Target] = record.target_resources.as_deref().unwrap_or_default();
        Ok(match read {
            Read::Role(kind) => {
                let member = targets
                    .iter()
                    .find(|target| !target.is("Role"))
                    .ok_or_else(|| {
                        "it has no member target (a User, ServicePrincipal or Group)".to_string()
                    })?;
                let role = member
                    .property_value("Role.TemplateId")
                    .or_else(|| member.property_value("Role.ObjectID"))
                    .or_else(|| {
                        targets
                            .iter()
                            .find(|target| target.is("Role"))
                            .and_then(|target| present(target.id.as_deref()))
                            .map(str::to_string)
                    })
                    .ok_or_else(|| {
                        "it names no role (no `Role.TemplateId` or `Role.ObjectID` property, no `Role` target)".to_string()
                    })?;
                let (subject_kind, subject) = self.member(member)?;
                vec![(subject_kind, subject, kind, format!("role:{role}"))]
            }
            Read::Group(kind) => {
                let member = targets
                    .first()
                    .ok_or_else(|| "it has no member target".to_string())?;
                let group = member
                    .property_value("Group.ObjectID")
                    .or_else(|| {
                        targets[1..]
                            .iter()
                            .find(|target| target.is("Group"))
                            .and_then(|target| present(target.id.as_deref()))
                            .map(str::to_string)
                    })
                    .ok_or_else(|| {
                        "it names no group (no `Group.ObjectID` property, no second `Group` target)"
                            .to_string()
                    })?;
                let (subject_kind, subject) = self.member(member)?;
                vec![(subject_kind, subject, kind, format!("group:{group}"))]
            }
            Read::Credentials(whole) => {
                let owner = targets
                    .iter()
                    .find(|target| target.is("Application") || target.is("ServicePrincipal"))
                    .ok_or_else(|| {
                        "it has no `Application` or `ServicePrincipal` target".to_string()
                    })?;
                let id = present(owner.id.as_deref())
                    .map(str::to_string)
                    .ok_or_else(|| "its application target has no `id`".to_string())?;
                let description = owner.property("KeyDescription");
                let before = keys(description.and_then(|property| property.old_value.as_deref()));
                let after = keys(description.and_then(|property| property.new_value.as_deref()));
                let mut changes = Vec::new();
                if let (Some(before), Some(after)) = (before, after) {
                    for key in &after {
                        if !before.iter().any(|old| old.identifier == key.identifier) {
                            changes.push((
                                SubjectKind::ServiceAccount,
                                id.clone(),
                                ChangeKind::Create,
                                key.entitlement.to_string(),
                            ));
                        }
                    }
                    for key in &before {
                        if !after.iter().any(|new| new.identifier == key.identifier) {
                            changes.push((
                                SubjectKind::ServiceAccount,
                                id.clone(),
                                ChangeKind::Delete,
                                key.entitlement.to_string(),
                            ));
                        }
                    }
                }
                if changes.is_empty() {
                    changes.push((
                        SubjectKind::ServiceAccount,
                        id,
                        whole,
                        "credential".to_string(),
                    ));
                }
                changes
            }
        })
    }
}

/// The record's actor: the user or the app that initiated it.
fn actor(record: &DirectoryAudit) -> Result<ObservedActor, String> {
    let initiator = record
        .initiated_by
        .as_ref()
        .ok_or_else(|| "it has no `initiatedBy`".to_string())?;
    if let Some(user) = &initiator.user {
        if let Some(id) = present(user.id.as_deref()) {
            return Ok(ObservedActor {
                id: id.to_string(),
                kind: Some(PrincipalKind::Human),
                display: present(user.user_principal_name.as_deref())
                    .or_else(|| present(user.display_name.as_deref()))
                    .map(str::to_string),
                on_behalf_of: None,
                session: None,
                source_identity: None,
                principal: None,
            });
        }
    }
    if let Some(app) = &initiator.app {
        if let Some(id) =
            present(app.service_principal_id.as_deref()).or_else(|| present(app.app_id.as_deref()))
        {
            return Ok(ObservedActor {
                id: id.to_string(),
                kind: Some(PrincipalKind::Service),
                display: present(app.display_name.as_deref()).map(str::to_string),
                on_behalf_of: None,
                session: None,
                source_identity: None,
                principal: None,
            });
        }
    }
    Err("its `initiatedBy` names neither a user nor an app with an ID".to_string())
}

/// Tickets a record's `additionalDetails` carry: PIM's `TicketSystem` and
/// `TicketNumber`, and any detail whose key names a ticket and whose value
/// is `SYSTEM:KEY` (whatever does not parse as a ticket is dropped by
/// [`Fields::build`]).
fn references(details: &[KeyValue]) -> Vec<String> {
    let value = |name: &str| {
        details
            .iter()
            .find(|detail| {
                detail
                    .key
                    .as_deref()
                    .is_some_and(|key| key.eq_ignore_ascii_case(name))
            })
            .and_then(|detail| present(detail.value.as_deref()))
    };
    let mut references = Vec::new();
    if let (Some(system), Some(number)) = (value("TicketSystem"), value("TicketNumber")) {
        references.push(format!("{system}:{number}"));
    }
    for detail in details {
        let is_ticket = detail
            .key
            .as_deref()
            .is_some_and(|key| key.to_ascii_lowercase().contains("ticket"));
        if let (true, Some(value)) = (is_ticket, present(detail.value.as_deref())) {
            if value.contains(':') {
                references.push(value.to_string());
            }
        }
    }
    references
}
