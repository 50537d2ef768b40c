//! The people and machines in a change, and what changes.
//!
//! Every type here is parsed from outside input at the edge (API bodies, CLI
//! arguments) and is valid by construction afterwards: a [`PrincipalId`]
//! always matches its grammar, a [`Subject`] always has a known kind.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a piece of input could not become a domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A principal name breaks the naming rule.
    #[error("`{0}` is not a valid principal name: use 1 to 64 characters from a-z, 0-9, '.', '_', '-' and '@', starting with a letter or digit")]
    PrincipalName(String),
    /// A principal kind other than human, service, automation or vendor.
    #[error("`{0}` is not a principal kind (expected human, service, automation or vendor)")]
    PrincipalKind(String),
    /// A subject kind other than the documented ones.
    #[error("`{0}` is not a subject kind (expected one of user, service_account, api_key, token, role, group, workload)")]
    SubjectKind(String),
    /// A subject not written as `KIND:ID`.
    #[error("`{0}` is not a subject (expected KIND:ID, e.g. user:alice or api_key:ci-deploy)")]
    Subject(String),
    /// A change kind other than the documented ones.
    #[error(
        "`{0}` is not a change (expected one of grant, revoke, create, rotate, delete, modify)"
    )]
    ChangeKind(String),
    /// A ticket reference not written as `SYSTEM:KEY`.
    #[error("`{0}` is not a ticket reference (expected SYSTEM:KEY, e.g. jira:SEC-142)")]
    Ticket(String),
    /// A duration not written as a number and a unit.
    #[error("`{0}` is not a duration (expected a whole number followed by s, m, h, d or w, e.g. 8h or 30d)")]
    Duration(String),
    /// A connector name breaks the naming rule.
    #[error("`{0}` is not a connector name: use 1 to 64 ASCII letters, digits, '-' and '_' (its events say `via` connector:NAME)")]
    ConnectorName(String),
    /// A channel other than api, cli, web, chat or connector:NAME.
    #[error("`{0}` is not a channel (expected api, cli, web, chat or connector:NAME)")]
    Via(String),
    /// A free-text field that is empty, too long or holds control characters.
    #[error("{field} {problem}")]
    Text {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// An identifier (or label) holding a character outside its safe set.
    #[error("{field} holds the character `{}` (U+{:04X}) at position {position}, which is not allowed: {allowed}", crate::text::code_point(*character), *character as u32)]
    Character {
        /// The field's name.
        field: &'static str,
        /// The first character that is not allowed.
        character: char,
        /// Its position in the field, counting characters from 1.
        position: usize,
        /// What the field may hold.
        allowed: &'static str,
    },
}

/// A principal's stable, immutable identifier: the name it was created with.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrincipalId(String);

/// What kind of actor a principal is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person.
    Human,
    /// A workload or service account acting on its own behalf.
    Service,
    /// A provisioning bot or connector.
    Automation,
    /// A third-party operator acting for us under a delegation grant.
    Vendor,
}

/// Anyone or anything that acts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Principal {
    /// Stable identifier.
    pub id: PrincipalId,
    /// Human-readable name for screens.
    pub display_name: String,
    /// What kind of actor this is.
    pub kind: PrincipalKind,
    /// Group memberships, sorted and without duplicates.
    pub groups: Vec<String>,
    /// The organisation the principal belongs to.
    pub org: Option<String>,
}

/// The role a principal acted in for one event of one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Asked for the change.
    Requester,
    /// Approved or denied it.
    Approver,
    /// Carried it out.
    Executor,
    /// Reviewed it after execution.
    Reviewer,
    /// The ledger itself (timers, escalations).
    System,
    /// A connector or participant that saw something and recorded it.
    Observer,
    /// An admin administering the deployment (principals, tokens,
    /// delegation grants), in the administration record.
    Admin,
}

/// How an action came in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Via {
    /// The HTTP API directly.
    Api,
    /// The `custody` command line.
    Cli,
    /// The web console.
    Web,
    /// A chat approval.
    Chat,
    /// A named connector.
    Connector(String),
    /// The ledger itself (timers, escalations).
    System,
}

/// The authentication behind an action: never the secret itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum AuthContext {
    /// A Custody bearer token, by its public ID.
    Token {
        /// The token's public identifier (`tok_...`).
        token_id: String,
    },
    /// An OpenID Connect identity.
    Oidc {
        /// The issuer URL.
        issuer: String,
        /// The subject claim.
        subject: String,
    },
    /// A connector: the outside system signed the request, and its user was
    /// mapped to the principal through the deployment's identity map.
    Connector {
        /// The connector's name (`via` is `connector:<name>`).
        connector: String,
        /// The user as the outside system names them (a Slack user ID, a
        /// Jira accountId, ...).
        external_user: String,
    },
    /// The ledger itself.
    System,
}

/// Who did something, in which capacity, for whom, and how we know.
///
/// The actor is taken from authentication, never from a request body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Actor {
    /// The acting principal.
    pub principal: PrincipalId,
    /// Its kind at the time of the action.
    pub kind: PrincipalKind,
    /// Its organisation at the time of the action.
    #[serde(deserialize_with = "Option::deserialize")]
    pub org: Option<String>,
    /// Its groups at the time of the action, so that group rules can be
    /// re-checked from the event alone.
    pub groups: Vec<String>,
    /// The principal or organisation it acted for, when not itself.
    #[serde(deserialize_with = "Option::deserialize")]
    pub on_behalf_of: Option<String>,
    /// The delegation grant that allowed the action, when there is one.
    #[serde(deserialize_with = "Option::deserialize")]
    pub delegation_grant: Option<String>,
    /// How the action came in.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub via: Via,
    /// The authentication behind it.
    pub auth: AuthContext,
}

/// What kind of identity a subject is. Non-human kinds are first-class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A person's account.
    User,
    /// A service account.
    ServiceAccount,
    /// An API key.
    ApiKey,
    /// A token (personal access token, bot token, ...).
    Token,
    /// A role.
    Role,
    /// A group.
    Group,
    /// A workload identity.
    Workload,
}

/// The identity whose access changes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Subject {
    /// What kind of identity.
    pub kind: SubjectKind,
    /// Its identifier in the system that owns it.
    pub id: String,
}

/// What happens to the access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Give an entitlement.
    Grant,
    /// Take it away.
    Revoke,
    /// Create the subject (a service account, a key).
    Create,
    /// Rotate a credential.
    Rotate,
    /// Delete the subject.
    Delete,
    /// Change it otherwise.
    Modify,
}

/// A requested change: the thing approvals bind to.
///
/// A change from outside input is made by [`Change::new`], which refuses
/// what breaks a rule, so a change in hand is valid and nothing checks it
/// again. A change read back from a stored event is taken as recorded: the
/// audit judges the trail as it is, by the rules of the events, and never
/// refuses to read it because a newer version would have refused the input.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    /// Whose access.
    subject: Subject,
    /// What kind of change.
    kind: ChangeKind,
    /// The entitlement (role, group, permission, key scope).
    entitlement: String,
    /// The resource the entitlement applies to, when there is one.
    #[serde(deserialize_with = "Option::deserialize")]
    resource: Option<String>,
    /// For time-bound access, how long it lasts, in whole seconds.
    #[serde(deserialize_with = "Option::deserialize")]
    duration_seconds: Option<u64>,
}

/// A reference to a ticket in another system.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ticket {
    /// The system, e.g. `jira` or `servicenow`.
    pub system: String,
    /// The key in that system, e.g. `SEC-142`.
    pub key: String,
}

/// Longest accepted free text (justifications, comments), in bytes.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;
/// Longest accepted short identifier (entitlements, resources, subject IDs), in bytes.
pub const MAX_NAME_BYTES: usize = 512;

impl PrincipalId {
    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PrincipalId {
    type Err = ModelError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let valid = !text.is_empty()
            && text.len() <= 64
            && text.as_bytes()[0].is_ascii_alphanumeric()
            && text
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'@'));
        if valid {
            Ok(PrincipalId(text.to_string()))
        } else {
            Err(ModelError::PrincipalName(text.to_string()))
        }
    }
}

/// The OpenAPI pattern of a principal name (`PrincipalId::from_str`).
pub const PRINCIPAL_PATTERN: &str = "^[a-z0-9][a-z0-9._@-]{0,63}$";

impl fmt::Display for PrincipalId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl Serialize for PrincipalId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PrincipalId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for PrincipalId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(PRINCIPAL_PATTERN))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for PrincipalId {}

/// A connector's configured name: what its events say as `via`
/// (`connector:NAME`) and what its routes are under (`/v1/connectors/NAME/`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectorName(String);

/// The OpenAPI pattern of a connector's name (`ConnectorName::from_str`).
pub const CONNECTOR_NAME_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

impl ConnectorName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ConnectorName {
    type Err = ModelError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let valid = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(ConnectorName(text.to_string()))
        } else {
            Err(ModelError::ConnectorName(text.to_string()))
        }
    }
}

/// A user of an outside system as a connector receives it: a Slack user ID,
/// a Jira `accountId`, a ServiceNow `sys_id` or email, a Teams (Azure AD)
/// object ID. Opaque text kept exactly as given (case and all: Slack's IDs
/// are case-sensitive), 1 to [`MAX_EXTERNAL_USER_BYTES`] bytes, with no
/// character that [`crate::text::is_unsafe_char`] names (control, bidi,
/// zero-width and other invisible characters, so two IDs can never look
/// alike on a screen while differing) and no white space at either end
/// (which no system's IDs have, and which hides in a listing). Nor is it
/// `.` or `..`, which no system uses as an ID and which a URL cannot carry
/// as a path segment (`PUT /v1/connectors/{name}/identities/{external_user}`):
/// clients resolve them as the current and the parent directory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExternalUser(String);

/// Longest accepted outside user ID, in bytes of UTF-8.
pub const MAX_EXTERNAL_USER_BYTES: usize = 256;

/// What an outside user's ID may hold, as error messages say it.
pub const EXTERNAL_USER_ALLOWED: &str = "an outside user's ID may hold any character but control, bidi, zero-width and other invisible ones";

impl ExternalUser {
    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ExternalUser {
    type Err = ModelError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const FIELD: &str = "external_user";
        check_charset(FIELD, text, EXTERNAL_USER_ALLOWED, |c| {
            !crate::text::is_unsafe_char(c)
        })?;
        if text.len() > MAX_EXTERNAL_USER_BYTES {
            return Err(ModelError::Text {
                field: FIELD,
                problem: "is longer than 256 bytes",
            });
        }
        if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
            return Err(ModelError::Text {
                field: FIELD,
                problem: "must not begin or end with white space",
            });
        }
        if text == "." || text == ".." {
            return Err(ModelError::Text {
                field: FIELD,
                problem: "must not be `.` or `..`",
            });
        }
        Ok(ExternalUser(text.to_string()))
    }
}

/// Text, serde and OpenAPI for a string newtype parsed by `FromStr`.
macro_rules! string_newtype {
    ($name:ident, $pattern:expr, $max_length:expr) => {
        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some($pattern))
                    .min_length(Some(1))
                    .max_length(Some($max_length))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

string_newtype!(ConnectorName, CONNECTOR_NAME_PATTERN, 64);
string_newtype!(ExternalUser, EXTERNAL_USER_PATTERN, MAX_EXTERNAL_USER_BYTES);

impl PrincipalKind {
    /// The kind's name as written in events.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Human => "human",
            PrincipalKind::Service => "service",
            PrincipalKind::Automation => "automation",
            PrincipalKind::Vendor => "vendor",
        }
    }
}

impl FromStr for PrincipalKind {
    type Err = ModelError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "human" => Ok(PrincipalKind::Human),
            "service" => Ok(PrincipalKind::Service),
            "automation" => Ok(PrincipalKind::Automation),
            "vendor" => Ok(PrincipalKind::Vendor),
            _ => Err(ModelError::PrincipalKind(text.to_string())),
        }
    }
}

/// The principal ID the ledger itself acts under (timers, escalations).
pub const SYSTEM_PRINCIPAL: &str = "system";

impl Actor {
    /// The ledger itself, acting on a timer.
    pub fn system() -> Actor {
        Actor {
            // Safe: a constant that satisfies the naming rule.
            principal: SYSTEM_PRINCIPAL
                .parse()
                .expect("`system` is a valid principal name"),
            kind: PrincipalKind::Service,
            org: None,
            groups: Vec::new(),
            on_behalf_of: None,
            delegation_grant: None,
            via: Via::System,
            auth: AuthContext::System,
        }
    }
}

impl Actor {
    /// The ledger recording what connector `connector` observed, done in
    /// the outside system by `external_user` (as the source names them):
    /// the `system` principal in the `observer` role, `via` the connector.
    pub fn observer(connector: &str, external_user: &str) -> Actor {
        Actor {
            via: Via::Connector(connector.to_string()),
            auth: AuthContext::Connector {
                connector: connector.to_string(),
                external_user: external_user.to_string(),
            },
            ..Actor::system()
        }
    }
}

impl Principal {
    /// Whether the principal is a member of `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|member_of| member_of == group)
    }
}

impl Role {
    /// The role's name as written in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Requester => "requester",
            Role::Approver => "approver",
            Role::Executor => "executor",
            Role::Reviewer => "reviewer",
            Role::System => "system",
            Role::Observer => "observer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Via::Api => formatter.write_str("api"),
            Via::Cli => formatter.write_str("cli"),
            Via::Web => formatter.write_str("web"),
            Via::Chat => formatter.write_str("chat"),
            Via::Connector(name) => write!(formatter, "connector:{name}"),
            Via::System => formatter.write_str("system"),
        }
    }
}

impl FromStr for Via {
    type Err = ModelError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "api" => Ok(Via::Api),
            "cli" => Ok(Via::Cli),
            "web" => Ok(Via::Web),
            "chat" => Ok(Via::Chat),
            "system" => Ok(Via::System),
            _ => match text.strip_prefix("connector:") {
                Some(name) if name.parse::<ConnectorName>().is_ok() => {
                    Ok(Via::Connector(name.to_string()))
                }
                _ => Err(ModelError::Via(text.to_string())),
            },
        }
    }
}

impl Serialize for Via {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Via {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl SubjectKind {
    /// The kind's name as written in events.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::User => "user",
            SubjectKind::ServiceAccount => "service_account",
            SubjectKind::ApiKey => "api_key",
            SubjectKind::Token => "token",
            SubjectKind::Role => "role",
            SubjectKind::Group => "group",
            SubjectKind::Workload => "workload",
        }
    }
}

impl FromStr for SubjectKind {
    type Err = ModelError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "user" => Ok(SubjectKind::User),
            "service_account" => Ok(SubjectKind::ServiceAccount),
            "api_key" => Ok(SubjectKind::ApiKey),
            "token" => Ok(SubjectKind::Token),
            "role" => Ok(SubjectKind::Role),
            "group" => Ok(SubjectKind::Group),
            "workload" => Ok(SubjectKind::Workload),
            _ => Err(ModelError::SubjectKind(text.to_string())),
        }
    }
}

impl FromStr for Subject {
    type Err = ModelError;
    /// Parses `KIND:ID`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, id) = text
            .split_once(':')
            .ok_or_else(|| ModelError::Subject(text.to_string()))?;
        let kind = kind.parse()?;
        let id = validate_name("subject ID", id)?;
        Ok(Subject { kind, id })
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.kind.as_str(), self.id)
    }
}

impl ChangeKind {
    /// The change's name as written in events.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Grant => "grant",
            ChangeKind::Revoke => "revoke",
            ChangeKind::Create => "create",
            ChangeKind::Rotate => "rotate",
            ChangeKind::Delete => "delete",
            ChangeKind::Modify => "modify",
        }
    }
}

impl FromStr for ChangeKind {
    type Err = ModelError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "grant" => Ok(ChangeKind::Grant),
            "revoke" => Ok(ChangeKind::Revoke),
            "create" => Ok(ChangeKind::Create),
            "rotate" => Ok(ChangeKind::Rotate),
            "delete" => Ok(ChangeKind::Delete),
            "modify" => Ok(ChangeKind::Modify),
            _ => Err(ModelError::ChangeKind(text.to_string())),
        }
    }
}

impl Change {
    /// The SHA-256 of the change's canonical encoding: what an approval binds to.
    pub fn digest(&self) -> crate::id::Sha256Hash {
        crate::id::Sha256Hash::of(&crate::canonical::to_canonical_bytes(self))
    }

    /// A change from outside input: the subject ID, the entitlement and the
    /// resource are identifiers ([`validate_name`]), and time-bound access
    /// lasts longer than zero. Refused naming the field otherwise.
    pub fn new(
        subject: Subject,
        kind: ChangeKind,
        entitlement: String,
        resource: Option<String>,
        duration_seconds: Option<u64>,
    ) -> Result<Change, ModelError> {
        validate_name("subject ID", &subject.id)?;
        validate_name("entitlement", &entitlement)?;
        if let Some(resource) = &resource {
            validate_name("resource", resource)?;
        }
        if duration_seconds == Some(0) {
            return Err(ModelError::Text {
                field: "duration",
                problem: "must be longer than zero",
            });
        }
        Ok(Change {
            subject,
            kind,
            entitlement,
            resource,
            duration_seconds,
        })
    }

    /// Whose access.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// What kind of change.
    pub fn kind(&self) -> ChangeKind {
        self.kind
    }

    /// The entitlement (role, group, permission, key scope).
    pub fn entitlement(&self) -> &str {
        &self.entitlement
    }

    /// The resource the entitlement applies to, when there is one.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// The key one active case at a time may hold (the `cases` row's
    /// `change_key`): subject, kind, entitlement and resource.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.subject(),
            self.kind().as_str(),
            self.entitlement(),
            self.resource().unwrap_or("")
        )
    }

    /// For time-bound access, how long it lasts, in whole seconds.
    pub fn duration_seconds(&self) -> Option<u64> {
        self.duration_seconds
    }

    /// The change that takes this one's access away: the same subject,
    /// entitlement and resource, revoked, for no set time. Made from a
    /// change already accepted, so it needs no check.
    pub fn revocation(&self) -> Change {
        Change {
            kind: ChangeKind::Revoke,
            duration_seconds: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} {} to {}",
            self.kind.as_str(),
            self.entitlement,
            self.subject
        )?;
        if let Some(resource) = &self.resource {
            write!(formatter, " on {resource}")?;
        }
        if let Some(seconds) = self.duration_seconds {
            write!(formatter, " for {}", format_duration(seconds))?;
        }
        Ok(())
    }
}

impl FromStr for Ticket {
    type Err = ModelError;
    /// Parses `SYSTEM:KEY` and normalises it: the system to lowercase, the key
    /// to uppercase, so `jira:SEC-1`, `JIRA:sec-1` and `Jira:Sec-1` are one
    /// ticket. Both parts are ASCII only (see [`TICKET_SYSTEM_ALLOWED`] and
    /// [`TICKET_KEY_ALLOWED`]), so no Unicode compatibility form (fullwidth
    /// `ＳＥＣ-1`, a Cyrillic `С`) can spell the same ticket differently: such
    /// characters are refused, naming the first one.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((system, key)) = text.split_once(':') else {
            // A look-alike colon (`：`) is named rather than reported as a
            // missing separator.
            check_charset("ticket", text, TICKET_KEY_ALLOWED, |c| {
                is_ticket_key_char(c) || c == ':'
            })?;
            return Err(ModelError::Ticket(crate::text::escape(text).into_owned()));
        };
        check_charset(
            "ticket system",
            system,
            TICKET_SYSTEM_ALLOWED,
            is_ticket_system_char,
        )?;
        check_length("ticket system", system, 64)?;
        check_charset("ticket key", key, TICKET_KEY_ALLOWED, is_ticket_key_char)?;
        check_length("ticket key", key, 128)?;
        Ok(Ticket {
            system: system.to_ascii_lowercase(),
            key: key.to_ascii_uppercase(),
        })
    }
}

/// What a ticket system may hold.
pub const TICKET_SYSTEM_ALLOWED: &str =
    "a ticket system is 1 to 64 ASCII letters, digits, '-' and '_' (see Identifiers in docs/api.md)";
/// What a ticket key may hold.
pub const TICKET_KEY_ALLOWED: &str =
    "a ticket key is 1 to 128 ASCII letters, digits, '-', '_', '.', '/' and '#' (see Identifiers in docs/api.md)";
/// The OpenAPI pattern of a ticket reference (`SYSTEM:KEY`).
pub const TICKET_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}:[A-Za-z0-9_./#-]{1,128}$";

fn is_ticket_system_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn is_ticket_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '#')
}

impl fmt::Display for Ticket {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.system, self.key)
    }
}

/// Parses a duration such as `90s`, `30m`, `8h`, `7d` or `2w` into seconds.
pub fn parse_duration(text: &str) -> Result<u64, ModelError> {
    let error = || ModelError::Duration(text.to_string());
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(error)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| error())?;
    let multiplier = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(error()),
    };
    let seconds = number.checked_mul(multiplier).ok_or_else(error)?;
    // Ten years is longer than any sane grant and keeps deadlines far from overflow.
    if seconds == 0 || seconds > 10 * 366 * 86_400 {
        return Err(error());
    }
    Ok(seconds)
}

/// Writes seconds in the largest unit that divides them exactly (`8h`, `90s`).
pub fn format_duration(seconds: u64) -> String {
    for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if seconds >= size && seconds.is_multiple_of(size) {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// The punctuation an identifier may hold, besides ASCII letters, digits and
/// single spaces between words.
pub const IDENTIFIER_PUNCTUATION: &str = r"!#$%&'()*+,-./:;=?@[\]^_{|}~";

/// What an identifier may hold, as error messages say it.
pub const IDENTIFIER_ALLOWED: &str = r"identifiers use ASCII letters, digits, single spaces between words and the punctuation !#$%&'()*+,-./:;=?@[\]^_{|}~ (see Identifiers in docs/api.md)";

/// The OpenAPI pattern of an identifier: the same rule as [`validate_name`]
/// (the length limit of 512 bytes is a separate `maxLength`).
pub const IDENTIFIER_PATTERN: &str =
    r"^[A-Za-z0-9!#$%&'()*+,./:;=?@\[\\\]^_{|}~-]+( [A-Za-z0-9!#$%&'()*+,./:;=?@\[\\\]^_{|}~-]+)*$";

/// Whether `c` may appear in an identifier (spaces are checked apart).
pub fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || IDENTIFIER_PUNCTUATION.contains(c)
}

/// The first character of `text` that `allowed` refuses, as an error naming
/// `field`, the character and its position.
fn check_charset(
    field: &'static str,
    text: &str,
    allowed_text: &'static str,
    allowed: impl Fn(char) -> bool,
) -> Result<(), ModelError> {
    if text.is_empty() {
        return Err(ModelError::Text {
            field,
            problem: "must not be empty",
        });
    }
    match text.chars().enumerate().find(|(_, c)| !allowed(*c)) {
        Some((index, character)) => Err(ModelError::Character {
            field,
            character,
            position: index + 1,
            allowed: allowed_text,
        }),
        None => Ok(()),
    }
}

fn check_length(field: &'static str, text: &str, most: usize) -> Result<(), ModelError> {
    if text.len() > most {
        return Err(ModelError::Text {
            field,
            problem: match most {
                64 => "is longer than 64 characters",
                128 => "is longer than 128 characters",
                _ => "is too long",
            },
        });
    }
    Ok(())
}

/// Checks an identifier (subject IDs, entitlements, resources, groups, orgs,
/// delegation patterns, evidence file names): 1 to 512 bytes of ASCII letters,
/// digits, the punctuation in [`IDENTIFIER_PUNCTUATION`] and single spaces
/// between words (none leading, trailing or doubled).
///
/// Everything else is refused, naming the field and the first offending
/// character: control characters, the quoting characters `"`, `` ` ``, `<`
/// and `>`, and every non-ASCII character, so that no bidi override,
/// zero-width character or look-alike letter (a Cyrillic `а` for a Latin
/// `a`, a fullwidth `Ａ`) can make two identifiers look alike or make one
/// render as something else. Being ASCII, identifiers need no Unicode
/// normalisation.
pub fn validate_name(field: &'static str, text: &str) -> Result<String, ModelError> {
    check_charset(field, text, IDENTIFIER_ALLOWED, |c| {
        c == ' ' || is_identifier_char(c)
    })?;
    if text.len() > MAX_NAME_BYTES {
        return Err(ModelError::Text {
            field,
            problem: "is longer than 512 bytes",
        });
    }
    if text.starts_with(' ') || text.ends_with(' ') {
        return Err(ModelError::Text {
            field,
            problem: "must not begin or end with a space",
        });
    }
    if text.contains("  ") {
        return Err(ModelError::Text {
            field,
            problem: "must not hold two spaces in a row",
        });
    }
    Ok(text.to_string())
}

/// Checks a label meant for people rather than matching (display names, chat
/// channel names): 1 to 512 bytes of any text on one line, in any script, but
/// without the characters [`crate::text::is_unsafe_char`] names (control,
/// bidi, zero-width and other invisible characters), which are refused naming
/// the first one.
pub fn validate_label(field: &'static str, text: &str) -> Result<String, ModelError> {
    if text.trim().is_empty() {
        return Err(ModelError::Text {
            field,
            problem: "must not be empty",
        });
    }
    check_charset(field, text, LABEL_ALLOWED, |c| {
        !crate::text::is_unsafe_char(c)
    })?;
    if text.len() > MAX_NAME_BYTES {
        return Err(ModelError::Text {
            field,
            problem: "is longer than 512 bytes",
        });
    }
    Ok(text.to_string())
}

/// What a label may hold, as error messages say it.
pub const LABEL_ALLOWED: &str = "labels may use any script but no control, bidi, zero-width or other invisible characters (see Identifiers in docs/api.md)";

/// The characters [`crate::text::is_unsafe_char`] names, as the body of a
/// regular-expression class: `\uXXXX` escapes in the Basic Multilingual Plane,
/// the characters themselves above it (`\u{...}` is not understood alike by
/// every engine). `model::tests::the_documented_patterns_agree_with_the_parsers`
/// checks it against `is_unsafe_char` on every code point.
macro_rules! unsafe_class {
    () => {
        "\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u034f\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u115f-\\u1160\\u17b4-\\u17b5\\u180b-\\u180f\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f\\u3164\\ufe00-\\ufe0f\\ufeff\\uffa0\\ufff9-\\ufffb\u{110bd}\u{110cd}\u{13430}-\u{1343f}\u{1bca0}-\u{1bca3}\u{1d173}-\u{1d17a}\u{e0000}-\u{e0fff}"
    };
}

/// The white space (`char::is_whitespace`) that is neither a control
/// character nor unsafe: what `trim` removes from a label.
macro_rules! label_space {
    () => {
        " \\u00a0\\u1680\\u2000-\\u200a\\u202f\\u205f\\u3000"
    };
}

/// The OpenAPI pattern of a label ([`validate_label`]): no unsafe character
/// and at least one that is not white space (the limit of 512 bytes is a
/// separate `maxLength`).
pub const LABEL_PATTERN: &str = concat!(
    "^[^",
    unsafe_class!(),
    "]*[^",
    unsafe_class!(),
    label_space!(),
    "][^",
    unsafe_class!(),
    "]*$"
);

/// The OpenAPI pattern of an outside user's ID ([`ExternalUser`]): no unsafe
/// character, none that is white space at either end, and not `.` or `..`
/// (the limit of 256 bytes is a separate `maxLength`). Without lookahead,
/// which not every engine has: one character but `.`; two, not both `.`;
/// or three or more.
pub const EXTERNAL_USER_PATTERN: &str = concat!(
    "^(?:[^",
    unsafe_class!(),
    label_space!(),
    ".]|[^",
    unsafe_class!(),
    label_space!(),
    ".][^",
    unsafe_class!(),
    label_space!(),
    "]|[.][^",
    unsafe_class!(),
    label_space!(),
    ".]|[^",
    unsafe_class!(),
    label_space!(),
    "][^",
    unsafe_class!(),
    "]+[^",
    unsafe_class!(),
    label_space!(),
    "])$"
);

/// The control characters (`char::is_control`) as a class body.
macro_rules! control_class {
    () => {
        "\\u0000-\\u001f\\u007f-\\u009f"
    };
}

/// The OpenAPI pattern of free text ([`validate_text`]): no control character
/// but tab, newline and carriage return, and at least one character that is
/// not white space (the limit of 16 KiB is a separate `maxLength`).
pub const TEXT_PATTERN: &str = concat!(
    "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*[^",
    control_class!(),
    " \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000",
    "][^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"
);

/// Checks free text (justifications, comments): non-empty, bounded, no control
/// characters other than newlines and tabs.
pub fn validate_text(field: &'static str, text: &str) -> Result<String, ModelError> {
    if text.trim().is_empty() {
        return Err(ModelError::Text {
            field,
            problem: "must not be empty",
        });
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(ModelError::Text {
            field,
            problem: "is longer than 16 KiB",
        });
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(ModelError::Text {
            field,
            problem: "must not contain control characters other than newlines and tabs",
        });
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_subjects_of_every_kind() {
        for kind in [
            "user",
            "service_account",
            "api_key",
            "token",
            "role",
            "group",
            "workload",
        ] {
            let subject: Subject = format!("{kind}:x-1").parse().unwrap();
            assert_eq!(subject.to_string(), format!("{kind}:x-1"));
        }
        assert!(matches!(
            "robot:x".parse::<Subject>(),
            Err(ModelError::SubjectKind(_))
        ));
        assert!("user".parse::<Subject>().is_err());
        assert!("user:".parse::<Subject>().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), 90);
        assert_eq!(parse_duration("8h").unwrap(), 28_800);
        assert_eq!(parse_duration("2w").unwrap(), 1_209_600);
        for bad in [
            "",
            "h",
            "8",
            "8x",
            "-1h",
            "0h",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "accepted {bad:?}");
        }
        assert_eq!(format_duration(28_800), "8h");
        assert_eq!(format_duration(90), "90s");
    }

    #[test]
    fn principal_names() {
        for good in ["alice", "svc.deploy", "bob@example.com", "0day"] {
            assert!(good.parse::<PrincipalId>().is_ok(), "{good}");
        }
        for bad in ["", "Alice", "-x", "a b", "a/b", &"a".repeat(65)] {
            assert!(bad.parse::<PrincipalId>().is_err(), "{bad}");
        }
    }

    /// Identifiers: the documented safe set is accepted, everything else is
    /// refused naming the field, the character (escaped) and its position.
    #[test]
    fn identifiers_accept_the_safe_set_and_name_the_first_refused_character() {
        for good in [
            "alice",
            "role/admin",
            "arn:aws:iam::123456789012:role/Deploy",
            "CN=Admins,OU=Groups,DC=corp",
            r"CORP\alice",
            "Domain Admins",
            "db-*",
            "roles/storage.objectViewer",
            "a!#$%&'()*+,-./:;=?@[]^_{|}~z",
        ] {
            assert_eq!(validate_name("entitlement", good).unwrap(), good);
        }
        let refused = |text: &str| match validate_name("subject.id", text) {
            Err(ModelError::Character {
                field,
                character,
                position,
                ..
            }) => (field, character, position),
            other => panic!("{text:?}: expected a refused character, got {other:?}"),
        };
        // Bidi override, zero-width, look-alikes, controls, quoting characters.
        assert_eq!(
            refused("attached \u{202e}fdp.exe"),
            ("subject.id", '\u{202e}', 10)
        );
        assert_eq!(refused("ali\u{200b}ce"), ("subject.id", '\u{200b}', 4));
        assert_eq!(refused("\u{430}lice"), ("subject.id", '\u{430}', 1)); // Cyrillic a
        assert_eq!(refused("\u{ff21}dmin"), ("subject.id", '\u{ff21}', 1)); // fullwidth A
        assert_eq!(refused("a\rb"), ("subject.id", '\r', 2));
        assert_eq!(refused("a\u{9b}b"), ("subject.id", '\u{9b}', 2));
        assert_eq!(refused("a\u{7f}"), ("subject.id", '\u{7f}', 2));
        for quoting in ['"', '`', '<', '>'] {
            assert_eq!(refused(&format!("x{quoting}")).1, quoting);
        }
        let message = validate_name("subject.id", "attached \u{202e}fdp.exe")
            .unwrap_err()
            .to_string();
        assert!(
            message
                .starts_with("subject.id holds the character `\\u{202e}` (U+202E) at position 10"),
            "{message}"
        );
        assert!(
            !message.contains('\u{202e}'),
            "the message itself is safe: {message}"
        );
        for (bad, problem) in [
            ("", "must not be empty"),
            (" lead", "must not begin or end with a space"),
            ("trail ", "must not begin or end with a space"),
            ("two  spaces", "must not hold two spaces in a row"),
        ] {
            assert_eq!(
                validate_name("entitlement", bad).unwrap_err(),
                ModelError::Text {
                    field: "entitlement",
                    problem
                },
                "{bad:?}"
            );
        }
        assert!(validate_name("entitlement", &"a".repeat(512)).is_ok());
        assert!(validate_name("entitlement", &"a".repeat(513)).is_err());
    }

    #[test]
    fn labels_take_any_script_but_no_invisible_characters() {
        assert!(validate_label("display_name", "José García").is_ok());
        assert!(validate_label("display_name", "山田 太郎").is_ok());
        for bad in ["a\u{202e}b", "a\u{200d}b", "a\nb", "a\u{9b}b"] {
            assert!(
                matches!(
                    validate_label("display_name", bad),
                    Err(ModelError::Character { .. })
                ),
                "{bad:?}"
            );
        }
    }

    /// An outside user's ID is kept exactly as given, and refused when it
    /// is empty, too long, padded with white space or holds a character
    /// that could make two IDs look alike.
    #[test]
    fn outside_user_ids_are_exact_and_visible() {
        for kept in [
            "U012AB3CD",
            "u012ab3cd",
            "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077",
            "6a1d2c5e8f9b4a7c9d0e1f2a3b4c5d6e",
            "ann.lee@example.com",
            "José García",
            "a b",
        ] {
            assert_eq!(kept.parse::<ExternalUser>().unwrap().as_str(), kept);
        }
        assert_ne!(
            "U012AB3CD".parse::<ExternalUser>().unwrap(),
            "u012ab3cd".parse::<ExternalUser>().unwrap()
        );
        assert!("x"
            .repeat(MAX_EXTERNAL_USER_BYTES)
            .parse::<ExternalUser>()
            .is_ok());
        for (refused, problem) in [
            ("", "must not be empty"),
            (" U1", "must not begin or end with white space"),
            (".", "must not be `.` or `..`"),
            ("..", "must not be `.` or `..`"),
            ("U1\u{3000}", "must not begin or end with white space"),
        ] {
            match refused.parse::<ExternalUser>() {
                Err(ModelError::Text {
                    field,
                    problem: said,
                }) => {
                    assert_eq!((field, said), ("external_user", problem), "{refused:?}")
                }
                other => panic!("{refused:?}: {other:?}"),
            }
        }
        assert!(matches!(
            "é".repeat(129).parse::<ExternalUser>(),
            Err(ModelError::Text {
                problem: "is longer than 256 bytes",
                ..
            })
        ));
        for invisible in ["U1\nU2", "U1\u{200b}", "\u{202e}U1", "U1\u{0}", "U1\u{9b}"] {
            assert!(
                matches!(
                    invisible.parse::<ExternalUser>(),
                    Err(ModelError::Character {
                        field: "external_user",
                        ..
                    })
                ),
                "{invisible:?}"
            );
        }
    }

    #[test]
    fn connector_names_are_what_via_names() {
        for name in ["slack", "jira-cloud", "SN_prod", "a", &"x".repeat(64)] {
            let parsed: ConnectorName = name.parse().unwrap();
            assert_eq!(
                format!("connector:{parsed}").parse::<Via>().unwrap(),
                Via::Connector(name.to_string())
            );
        }
        for name in [
            "",
            "slack main",
            "slack/main",
            "slack.main",
            "ſlack",
            &"x".repeat(65),
        ] {
            assert!(
                matches!(
                    name.parse::<ConnectorName>(),
                    Err(ModelError::ConnectorName(_))
                ),
                "{name:?}"
            );
            assert!(
                format!("connector:{name}").parse::<Via>().is_err(),
                "{name:?}"
            );
        }
    }

    /// The same-ticket check compares normalised tickets: a change of case
    /// cannot evade it, and look-alike (fullwidth, Cyrillic) spellings are
    /// refused rather than becoming a second ticket.
    #[test]
    fn ticket_keys_are_normalised_and_look_alikes_refused() {
        let canonical: Ticket = "jira:SEC-1".parse().unwrap();
        for same in ["JIRA:sec-1", "Jira:Sec-1", "jira:sec-1"] {
            assert_eq!(same.parse::<Ticket>().unwrap(), canonical, "{same}");
        }
        assert_eq!(canonical.to_string(), "jira:SEC-1");
        assert_eq!(
            "github:acme/api#12".parse::<Ticket>().unwrap().to_string(),
            "github:ACME/API#12"
        );
        let refused = |text: &str| match text.parse::<Ticket>() {
            Err(ModelError::Character {
                field, character, ..
            }) => (field, character),
            other => panic!("{text:?}: expected a refused character, got {other:?}"),
        };
        assert_eq!(refused("jira:\u{ff33}EC-1"), ("ticket key", '\u{ff33}')); // fullwidth S
        assert_eq!(refused("jira:\u{421}EC-1"), ("ticket key", '\u{421}')); // Cyrillic Es
        assert_eq!(refused("jira:SEC\u{2011}1"), ("ticket key", '\u{2011}')); // non-breaking hyphen
        assert_eq!(refused("jira:SEC-1\u{200b}"), ("ticket key", '\u{200b}'));
        assert_eq!(refused("\u{ff4a}ira:SEC-1"), ("ticket system", '\u{ff4a}'));
        assert_eq!(refused("jira\u{ff1a}SEC-1"), ("ticket", '\u{ff1a}')); // fullwidth colon
        assert_eq!(refused("jira:SEC 1"), ("ticket key", ' '));
        assert!(matches!(
            "no-colon".parse::<Ticket>(),
            Err(ModelError::Ticket(_))
        ));
        assert!("jira:".parse::<Ticket>().is_err());
        assert!(":SEC-1".parse::<Ticket>().is_err());
        assert!(format!("jira:{}", "K".repeat(129))
            .parse::<Ticket>()
            .is_err());
        assert!(format!("jira:{}", "K".repeat(128))
            .parse::<Ticket>()
            .is_ok());
    }

    /// The OpenAPI patterns say exactly what the parsers accept: every
    /// pattern the served document uses for identifiers, tickets, labels,
    /// free text and principal names, on hand-picked samples and on every
    /// Unicode code point.
    #[test]
    fn the_documented_patterns_agree_with_the_parsers() {
        let identifier = regex::Regex::new(IDENTIFIER_PATTERN).unwrap();
        let ticket = regex::Regex::new(TICKET_PATTERN).unwrap();
        let label = regex::Regex::new(LABEL_PATTERN).unwrap();
        let text = regex::Regex::new(TEXT_PATTERN).unwrap();
        let principal = regex::Regex::new(PRINCIPAL_PATTERN).unwrap();
        let connector = regex::Regex::new(CONNECTOR_NAME_PATTERN).unwrap();
        let external_user = regex::Regex::new(EXTERNAL_USER_PATTERN).unwrap();
        let mut samples: Vec<String> = [
            "alice",
            "Domain Admins",
            "a  b",
            " a",
            "a ",
            "",
            " ",
            "\t",
            "\n",
            " \u{3000}\u{a0}",
            "a\"b",
            "a`b",
            "a<b",
            "a>b",
            "a\u{202e}",
            "\u{ff21}",
            "José García",
            "山田 太郎",
            "line one\nline two\r\n\tindented",
            "\u{202e}fdp.exe",
            "a\u{e0041}",
            "a\u{1d173}",
            r"x\y",
            "jira:SEC-1",
            "JIRA:sec-1",
            "jira:",
            ":x",
            "jira:a b",
            "jira:a#1/b.c_d-e",
            "jira:a:b",
            "j_i-r:a",
            "alice@example.com",
            "Alice",
            "-alice",
            "0",
        ]
        .iter()
        .map(|text| text.to_string())
        .collect();
        samples.push("a".repeat(64));
        samples.push("a".repeat(65));
        samples.push("U".repeat(256));
        samples.push(format!("{}é", "a".repeat(254)));
        samples.push("557058:f58131cb-b67d-43c7-b30d-6b58d40bd077".to_string());
        for dots in [".", "..", "...", ".a", "a.", ". .", ".. ", "a", "ab", "abc"] {
            samples.push(dots.to_string());
        }
        samples.push(format!("jira:{}", "K".repeat(128)));
        samples.push(format!("jira:{}", "K".repeat(129)));
        samples.push(format!("{}:K", "j".repeat(64)));
        samples.push(format!("{}:K", "j".repeat(65)));
        // Code points: every one where a parser's view of a character
        // changes (and its neighbours), and one in 97 besides.
        let view = |c: char| {
            (
                crate::text::is_unsafe_char(c),
                c.is_whitespace(),
                c.is_control(),
                is_identifier_char(c),
            )
        };
        let mut previous = None;
        for code in 0u32..=0x10_ffff {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let changed = previous != Some(view(c));
            previous = Some(view(c));
            if !changed && code % 97 != 0 {
                continue;
            }
            for near in [code.saturating_sub(1), code, code + 1] {
                let Some(c) = char::from_u32(near) else {
                    continue;
                };
                samples.push(c.to_string());
                samples.push(format!("a{c}b"));
                samples.push(format!("jira:K{c}"));
                samples.push(format!("j{c}:K"));
                samples.push(format!("a{c}"));
            }
        }
        for sample in &samples {
            assert_eq!(
                identifier.is_match(sample),
                validate_name("x", sample).is_ok(),
                "identifier {sample:?}"
            );
            assert_eq!(
                ticket.is_match(sample),
                sample.parse::<Ticket>().is_ok(),
                "ticket {sample:?}"
            );
            assert_eq!(
                label.is_match(sample),
                validate_label("x", sample).is_ok(),
                "label {sample:?}"
            );
            assert_eq!(
                text.is_match(sample),
                validate_text("x", sample).is_ok(),
                "text {sample:?}"
            );
            assert_eq!(
                principal.is_match(sample),
                sample.parse::<PrincipalId>().is_ok(),
                "principal {sample:?}"
            );
            assert_eq!(
                connector.is_match(sample),
                sample.parse::<ConnectorName>().is_ok(),
                "connector {sample:?}"
            );
            // The schema bounds characters, the parser bytes: they agree
            // on text of at most 256 bytes.
            if sample.len() <= MAX_EXTERNAL_USER_BYTES {
                assert_eq!(
                    external_user.is_match(sample),
                    sample.parse::<ExternalUser>().is_ok(),
                    "external user {sample:?}"
                );
            }
        }
    }
}
