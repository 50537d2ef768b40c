//! Okta `LogEvent`s read into observed changes.
//!
//! | `eventType` | subject | change | entitlement |
//! |---|---|---|---|
//! | `group.user_membership.add` / `.remove` | `user:` the `User` target | grant / revoke | `group:<group ID>` |
//! | `application.user_membership.add` / `.remove` | `user:` the `User` (else `AppUser`) target | grant / revoke | `app:<app instance ID>` |
//! | `group.application_assignment.add` / `.remove` | `group:<group ID>` | grant / revoke | `app:<app instance ID>` |
//! | `user.account.privilege.grant` / `.revoke` | `user:` the `User` target | grant / revoke | `role:<role>`, one per role |
//! | `group.privilege.grant` / `.revoke` | `group:<group ID>` | grant / revoke | `role:<role>`, one per role |
//! | `system.api_token.create` / `.revoke` | `token:` the `Token` target | create / delete | `api_token` |
//!
//! A user is named by its login (`alternateId`) or its ID, an API token by
//! its name (`displayName`) or its ID, as the source's `subject_ids` says;
//! groups and applications always by their Okta IDs, which do not change
//! when they are renamed. Administrator roles come from
//! `debugContext.debugData.privilegeGranted` (`privilegeRevoked`), a list
//! of role names: the standard roles are written as Okta's role types
//! (`role:SUPER_ADMIN`, `role:APP_ADMIN`, ...), any other role by its name
//! as Okta writes it. An event naming several roles is one observation per
//! role, with the external IDs `<uuid>/1`, `<uuid>/2`, ...; every other
//! event's external ID is its `uuid`.
//!
//! The actor is `actor.id`: a `User` is a human, Okta itself
//! (`SystemPrincipal`, such as a group rule) automation, anything else (an
//! OAuth client, an app) a service. Its session is
//! `authenticationContext.externalSessionId`. The case-ID hints are the
//! targets' names and every text value of `debugContext.debugData` (the
//! request's URL among them).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use custody_core::model::{ChangeKind, PrincipalKind, SubjectKind};
use custody_core::observation::ObservedActor;
use custody_core::Timestamp;

use super::SubjectIds;
use crate::observe::{Fields, Parsed};
use crate::Refusal;

/// The event types Custody reads (every other one is skipped); the poll
/// asks Okta for these only.
pub const READ_EVENT_TYPES: [&str; 12] = [
    "group.user_membership.add",
    "group.user_membership.remove",
    "application.user_membership.add",
    "application.user_membership.remove",
    "group.application_assignment.add",
    "group.application_assignment.remove",
    "user.account.privilege.grant",
    "user.account.privilege.revoke",
    "group.privilege.grant",
    "group.privilege.revoke",
    "system.api_token.create",
    "system.api_token.revoke",
];

/// The `eventType` of an event hook's body.
const HOOK_EVENT_TYPE: &str = "com.okta.event_hook";

/// How records are read into changes.
#[derive(Clone, Debug)]
pub(super) struct Reader {
    /// How users and tokens are named.
    pub subject_ids: SubjectIds,
    /// The resource of every change, when the deployment names one.
    pub resource: Option<String>,
}

/// What an event Custody reads changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// A user added to or removed from a group.
    GroupMembership(ChangeKind),
    /// A user assigned to or unassigned from an application.
    AppAssignment(ChangeKind),
    /// A group assigned to or unassigned from an application.
    GroupAppAssignment(ChangeKind),
    /// Administrator roles granted to or revoked from a user.
    UserPrivilege(ChangeKind),
    /// Administrator roles granted to or revoked from a group.
    GroupPrivilege(ChangeKind),
    /// An API token created or revoked.
    ApiToken(ChangeKind),
}

impl Read {
    fn of(event_type: &str) -> Option<Read> {
        Some(match event_type {
            "group.user_membership.add" => Read::GroupMembership(ChangeKind::Grant),
            "group.user_membership.remove" => Read::GroupMembership(ChangeKind::Revoke),
            "application.user_membership.add" => Read::AppAssignment(ChangeKind::Grant),
            "application.user_membership.remove" => Read::AppAssignment(ChangeKind::Revoke),
            "group.application_assignment.add" => Read::GroupAppAssignment(ChangeKind::Grant),
            "group.application_assignment.remove" => Read::GroupAppAssignment(ChangeKind::Revoke),
            "user.account.privilege.grant" => Read::UserPrivilege(ChangeKind::Grant),
            "user.account.privilege.revoke" => Read::UserPrivilege(ChangeKind::Revoke),
            "group.privilege.grant" => Read::GroupPrivilege(ChangeKind::Grant),
            "group.privilege.revoke" => Read::GroupPrivilege(ChangeKind::Revoke),
            "system.api_token.create" => Read::ApiToken(ChangeKind::Create),
            "system.api_token.revoke" => Read::ApiToken(ChangeKind::Delete),
            _ => return None,
        })
    }
}

/// A `LogEvent`, as much of it as Custody reads. Okta adds fields over
/// time: unknown ones are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogEvent {
    uuid: String,
    published: String,
    event_type: String,
    #[serde(default)]
    actor: Option<Party>,
    #[serde(default)]
    target: Option<Vec<Party>>,
    #[serde(default)]
    outcome: Option<Outcome>,
    #[serde(default)]
    authentication_context: Option<AuthenticationContext>,
    #[serde(default)]
    debug_context: Option<DebugContext>,
}

/// An actor or a target.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Party {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    alternate_id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Outcome {
    #[serde(default)]
    result: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthenticationContext {
    #[serde(default)]
    external_session_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DebugContext {
    #[serde(default)]
    debug_data: Option<Map<String, Value>>,
}

/// An event hook's body, as much of it as Custody reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HookBody<'a> {
    #[serde(default)]
    event_type: Option<String>,
    #[serde(borrow)]
    data: HookData<'a>,
}

#[derive(Deserialize)]
struct HookData<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// A refusal of the `number`th `what` (event, line) of a body, saying so.
fn within(refusal: Refusal, what: &str, number: usize) -> Refusal {
    match refusal {
        Refusal::Malformed(message) => Refusal::Malformed(format!("{what} {number}: {message}")),
        other => other,
    }
}

/// Text Okta writes where it has no value.
fn known(text: Option<&str>) -> Option<&str> {
    text.map(str::trim)
        .filter(|text| !text.is_empty() && !text.eq_ignore_ascii_case("unknown"))
}

impl Party {
    fn is(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }
}

impl Reader {
    /// Reads an event hook's body.
    pub fn read_hook(&self, body: &[u8]) -> Result<Parsed, Refusal> {
        let hook: HookBody<'_> = serde_json::from_slice(body).map_err(|error| {
            Refusal::Malformed(format!(
                "the body is not an Okta event hook (`{{\"eventType\": \"{HOOK_EVENT_TYPE}\", \"data\": {{\"events\": [...]}}}}`): {error}"
            ))
        })?;
        if let Some(event_type) = hook.event_type.as_deref() {
            if event_type != HOOK_EVENT_TYPE {
                return Err(Refusal::Malformed(format!(
                    "the event hook's eventType is `{}`, not `{HOOK_EVENT_TYPE}`",
                    custody_core::text::escape(event_type)
                )));
            }
        }
        let mut parsed = Parsed::default();
        for (index, event) in hook.data.events.iter().enumerate() {
            self.read_event(event.get(), &mut parsed)
                .map_err(|refusal| within(refusal, "event", index + 1))?;
        }
        Ok(parsed)
    }

    /// Reads a page of `/api/v1/logs` (a JSON array of LogEvents, the
    /// body `what` names in a refusal) into `parsed`; returns how many
    /// events it held.
    pub fn read_array(
        &self,
        body: &[u8],
        what: &str,
        parsed: &mut Parsed,
    ) -> Result<usize, Refusal> {
        let events: Vec<&RawValue> = serde_json::from_slice(body).map_err(|error| {
            Refusal::Malformed(format!("{what} is not a JSON array of LogEvents: {error}"))
        })?;
        for (index, event) in events.iter().enumerate() {
            self.read_event(event.get(), parsed)
                .map_err(|refusal| within(refusal, "event", index + 1))?;
        }
        Ok(events.len())
    }

    /// Reads a batch file: a JSON array of LogEvents (what `/api/v1/logs`
    /// returns), or JSON lines of LogEvents.
    pub fn read_batch(&self, bytes: &[u8]) -> Result<Parsed, Refusal> {
        let text = std::str::from_utf8(bytes)
            .map_err(|error| Refusal::Malformed(format!("the file is not UTF-8: {error}")))?;
        let mut parsed = Parsed::default();
        if text.trim_start().starts_with('[') {
            self.read_array(bytes, "the file", &mut parsed)?;
            return Ok(parsed);
        }
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            self.read_event(line, &mut parsed)
                .map_err(|refusal| within(refusal, "line", number + 1))?;
        }
        Ok(parsed)
    }

    /// Reads one LogEvent into `parsed`.
    fn read_event(&self, raw: &str, parsed: &mut Parsed) -> Result<(), Refusal> {
        let event: LogEvent = serde_json::from_str(raw)
            .map_err(|error| Refusal::Malformed(format!("not an Okta LogEvent: {error}")))?;
        let Some(read) = Read::of(&event.event_type) else {
            parsed.skipped += 1;
            return Ok(());
        };
        // A failed or denied attempt changed nothing. An event without an
        // outcome is taken as done: better a change reported than missed.
        if let Some(result) = event.outcome.as_ref().and_then(|o| o.result.as_deref()) {
            if result != "SUCCESS" {
                parsed.skipped += 1;
                return Ok(());
            }
        }
        let uuid = event.uuid.as_str();
        let malformed = |what: String| {
            Refusal::Malformed(format!(
                "record {} ({}): {what}",
                custody_core::text::escape(uuid),
                custody_core::text::escape(&event.event_type)
            ))
        };
        let occurred_at = Timestamp::parse(&event.published)
            .map_err(|error| malformed(format!("its `published`: {error}")))?;
        let actor = self.actor(&event).map_err(&malformed)?;
        let changes = self.changes(&event, read).map_err(&malformed)?;
        let mut hints: Vec<&str> = Vec::new();
        for target in event.target.iter().flatten() {
            hints.extend(target.display_name.as_deref());
            hints.extend(target.alternate_id.as_deref());
        }
        if let Some(data) = event
            .debug_context
            .as_ref()
            .and_then(|context| context.debug_data.as_ref())
        {
            hints.extend(data.values().filter_map(Value::as_str));
        }
        let several = changes.len() > 1;
        for (index, (subject_kind, subject, kind, entitlement)) in changes.iter().enumerate() {
            let external_id = if several {
                format!("{uuid}/{}", index + 1)
            } else {
                uuid.to_string()
            };
            let observation = Fields {
                external_id: &external_id,
                action: &event.event_type,
                occurred_at,
                actor: actor.clone(),
                subject: (*subject_kind, subject.as_str()),
                kind: *kind,
                entitlement,
                resource: self.resource.as_deref(),
                hints: hints.clone(),
                references: Vec::new(),
                raw: raw.as_bytes(),
            }
            .build()?;
            parsed.observations.push(observation);
        }
        Ok(())
    }

    /// The event's actor, as Okta names it.
    fn actor(&self, event: &LogEvent) -> Result<ObservedActor, String> {
        let actor = event
            .actor
            .as_ref()
            .ok_or_else(|| "it has no `actor`".to_string())?;
        let id = actor
            .id
            .as_deref()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| "its `actor` has no `id`".to_string())?;
        let kind = match actor.kind.as_deref() {
            Some("User") => PrincipalKind::Human,
            Some("SystemPrincipal") => PrincipalKind::Automation,
            _ => PrincipalKind::Service,
        };
        let display = known(actor.display_name.as_deref())
            .or_else(|| known(actor.alternate_id.as_deref()))
            .map(str::to_string);
        let session = event
            .authentication_context
            .as_ref()
            .and_then(|context| known(context.external_session_id.as_deref()))
            .map(str::to_string);
        Ok(ObservedActor {
            id: id.to_string(),
            kind: Some(kind),
            display,
            on_behalf_of: None,
            session,
            source_identity: None,
            principal: None,
        })
    }

    /// The changes the event records: (subject kind, subject ID, change
    /// kind, entitlement), one per role for privilege events.
    fn changes(
        &self,
        event: &LogEvent,
        read: Read,
    ) -> Result<Vec<(SubjectKind, String, ChangeKind, String)>, String> {
        let targets: &[Party] = event.target.as_deref().unwrap_or_default();
        let target = |kinds: &[&str]| -> Result<&Party, String> {
            kinds
                .iter()
                .find_map(|kind| targets.iter().find(|target| target.is(kind)))
                .ok_or_else(|| format!("it has no `{}` target", kinds.join("` or `")))
        };
        let id_of = |party: &Party, kind: &str| -> Result<String, String> {
            known(party.id.as_deref())
                .map(str::to_string)
                .ok_or_else(|| format!("its `{kind}` target has no `id`"))
        };
        let user = |kinds: &[&str]| -> Result<String, String> {
            let party = target(kinds)?;
            let kind = party.kind.as_deref().unwrap_or_default();
            match self.subject_ids {
                SubjectIds::Login => known(party.alternate_id.as_deref())
                    .map(str::to_string)
                    .map_or_else(|| id_of(party, kind), Ok),
                SubjectIds::Id => id_of(party, kind),
            }
        };
        let group = || target(&["UserGroup"]).and_then(|party| id_of(party, "UserGroup"));
        let app = || {
            target(&["AppInstance"])
                .and_then(|party| id_of(party, "AppInstance"))
                .map(|id| format!("app:{id}"))
        };
        let roles = |kind: ChangeKind| -> Result<Vec<String>, String> {
            let field = if kind == ChangeKind::Grant {
                "privilegeGranted"
            } else {
                "privilegeRevoked"
            };
            let names = event
                .debug_context
                .as_ref()
                .and_then(|context| context.debug_data.as_ref())
                .and_then(|data| data.get(field))
                .and_then(Value::as_str)
                .ok_or_else(|| format!("it has no `debugContext.debugData.{field}`"))?;
            let mut roles: Vec<String> = Vec::new();
            for name in names
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
            {
                let role = role_entitlement(name);
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
            if roles.is_empty() {
                return Err(format!(
                    "its `debugContext.debugData.{field}` names no role"
                ));
            }
            Ok(roles)
        };
        Ok(match read {
            Read::GroupMembership(kind) => vec![(
                SubjectKind::User,
                user(&["User"])?,
                kind,
                format!("group:{}", group()?),
            )],
            Read::AppAssignment(kind) => {
                vec![(SubjectKind::User, user(&["User", "AppUser"])?, kind, app()?)]
            }
            Read::GroupAppAssignment(kind) => vec![(SubjectKind::Group, group()?, kind, app()?)],
            Read::UserPrivilege(kind) => {
                let subject = user(&["User"])?;
                roles(kind)?
                    .into_iter()
                    .map(|role| (SubjectKind::User, subject.clone(), kind, role))
                    .collect()
            }
            Read::GroupPrivilege(kind) => {
                let subject = group()?;
                roles(kind)?
                    .into_iter()
                    .map(|role| (SubjectKind::Group, subject.clone(), kind, role))
                    .collect()
            }
            Read::ApiToken(kind) => {
                let token = target(&["Token"])?;
                let subject = match self.subject_ids {
                    SubjectIds::Login => known(token.display_name.as_deref())
                        .map(str::to_string)
                        .map_or_else(|| id_of(token, "Token"), Ok)?,
                    SubjectIds::Id => id_of(token, "Token")?,
                };
                vec![(SubjectKind::Token, subject, kind, "api_token".to_string())]
            }
        })
    }
}

/// The entitlement of an administrator role named `name` in a privilege
/// event: `role:<TYPE>` for Okta's standard roles (their display names,
/// any case, with or without the `(all)` scope Okta appends), else
/// `role:<name>` as Okta writes it.
pub(super) fn role_entitlement(name: &str) -> String {
    let name = name.trim();
    let unscoped = name
        .strip_suffix("(all)")
        .map_or(name, str::trim_end)
        .to_ascii_lowercase()
        .replace(['-', '_'], " ");
    let role_type = match unscoped.as_str() {
        "super administrator" | "super admin" => Some("SUPER_ADMIN"),
        "organization administrator" | "organizational administrator" | "org admin" => {
            Some("ORG_ADMIN")
        }
        "application administrator" | "app admin" => Some("APP_ADMIN"),
        "user administrator" | "group administrator" | "user admin" => Some("USER_ADMIN"),
        "help desk administrator" | "help desk admin" => Some("HELP_DESK_ADMIN"),
        "read only administrator" | "read only admin" => Some("READ_ONLY_ADMIN"),
        "mobile administrator" | "mobile admin" => Some("MOBILE_ADMIN"),
        "api access management administrator" | "api access management admin" => {
            Some("API_ACCESS_MANAGEMENT_ADMIN")
        }
        "report administrator" | "report admin" => Some("REPORT_ADMIN"),
        "group membership administrator" | "group membership admin" => {
            Some("GROUP_MEMBERSHIP_ADMIN")
        }
        _ => None,
    };
    format!("role:{}", role_type.unwrap_or(name))
}
