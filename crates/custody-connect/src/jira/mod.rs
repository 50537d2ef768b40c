//! The Jira Cloud connector: admin webhooks in, REST API v3 out.
//!
//! **In.** Jira posts an admin webhook, registered with a secret, to
//! `/v1/connectors/{name}/webhook`. Jira signs the raw body with
//! HMAC-SHA256 under the secret and sends `X-Hub-Signature: sha256=<hex>`
//! (the WebSub `method=signature` form); the body's `timestamp` (when Jira
//! raised the event, in milliseconds) is checked against the window once the
//! MAC matches. Then:
//! - `jira:issue_created` in a configured project opens a case
//!   ([`Action::Request`]) with the ticket `jira:<KEY>` and the change the
//!   mapped fields describe; a case ID in the configured case-ID field binds
//!   the ticket to that case instead;
//! - `jira:issue_updated` whose changelog moves `status` to the configured
//!   approved (or denied) status is an approval (a denial) by the webhook's
//!   `user` (its accountId is the external user), of the case the issue's
//!   case-ID field names, or else of the case carrying the ticket;
//! - `jira:issue_updated` whose changelog touches a mapped field reports the
//!   change the issue's fields describe now ([`Action::TicketUpdated`]);
//! - anything else (another event, another project, another status) is
//!   acknowledged and records nothing.
//!
//! **External IDs** come from the signed body, never from the unsigned
//! `X-Atlassian-Webhook-Identifier` header: `jira:issue_created:<issue id>`
//! for a creation, `jira:issue_updated:<issue id>:<changelog id>:<action>`
//! for an update. Both are stable across Jira's retries, unique per change in
//! the site, and cannot be changed by whoever replays a captured delivery,
//! so the ledger's (source, external ID) rule holds on every node and after
//! restarts. See docs/connectors/jira.md.
//!
//! **Out.** Every case update owed to an issue is an entity property
//! (`PUT /rest/api/3/issue/{key}/properties/custody`, the case ID, state and
//! link, kept current) and a comment in Atlassian Document Format
//! (`POST /rest/api/3/issue/{key}/comment`), the first naming and linking
//! the case, with Jira Cloud basic auth (account email and API token).

mod fields;
mod write_back;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::Value;

use custody_core::model::Ticket;
use custody_core::{CaseId, Timestamp};

use crate::config::{default_max_body_bytes, Secret};
use crate::{signature, Action, Answer, Connector, Inbound, Outcome, OutcomeKind, Refusal};
use crate::{Request, Signed, Target};

use fields::{FieldValueError, Mapping};

/// The header Jira puts the body's signature in.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature";

/// The endpoint below `/v1/connectors/{name}/` Jira posts to.
pub const WEBHOOK_ENDPOINT: &str = "webhook";

/// The default window: Jira's `timestamp` is when the event was raised, and
/// Jira retries a failed delivery for up to about thirty minutes with the
/// same body, so a retry is still inside the window.
pub const DEFAULT_WINDOW_SECONDS: u64 = 30 * 60;

/// The settings of a `kind = "jira"` connector.
///
/// ```toml
/// [[connectors]]
/// name = "jira"
/// kind = "jira"
/// secret = "the webhook's secret"
/// projects = ["SEC"]
/// approved_status = "Approved"
/// denied_status = "Rejected"
/// api_url = "https://example.atlassian.net"
/// api_email = "custody-bot@example.com"
/// api_token = "an API token of that account"
///
/// [connectors.fields]
/// subject = "customfield_10040"
/// entitlement = "customfield_10041"
/// resource = "customfield_10042"
/// duration = "customfield_10043"
/// justification = "description"
/// case_id = "customfield_10044"
///
/// [connectors.fixed]
/// change = "grant"
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    /// The connector's name.
    pub name: String,
    /// The secret the admin webhook was registered with.
    pub secret: Secret,
    /// Seconds a signed request stays acceptable, either side of the body's
    /// `timestamp`.
    #[serde(default = "default_window_seconds")]
    pub window_seconds: u64,
    /// The largest accepted body.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// The Jira project keys whose issues are access requests.
    pub projects: Vec<String>,
    /// The status (its name, or its ID) whose transition approves.
    pub approved_status: String,
    /// The status (its name, or its ID) whose transition denies, if any.
    #[serde(default)]
    pub denied_status: Option<String>,
    /// The ticket system tickets are recorded under (`jira:SEC-142`); set
    /// it apart only to tell two Jira sites apart.
    #[serde(default = "default_ticket_system")]
    pub ticket_system: String,
    /// Which issue field gives each part of the change.
    #[serde(default)]
    pub fields: FieldIds,
    /// Parts of the change that are the same for every issue.
    #[serde(default)]
    pub fixed: FixedValues,
    /// The site's base URL (`https://example.atlassian.net`).
    pub api_url: String,
    /// The email of the Atlassian account Custody writes back as.
    pub api_email: String,
    /// That account's API token.
    pub api_token: Secret,
    /// The issue entity property Custody writes (`custody`).
    #[serde(default = "default_property_key")]
    pub property_key: String,
}

/// Issue field IDs (`customfield_10042`, `description`, `summary`, ...)
/// that give each part of the change.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldIds {
    /// The subject as `KIND:ID` (`user:alice`), in one field.
    pub subject: Option<String>,
    /// The subject's kind (`user`, `service_account`, ...), with `subject_id`.
    pub subject_kind: Option<String>,
    /// The subject's ID, with `subject_kind`.
    pub subject_id: Option<String>,
    /// The change kind (`grant`, `revoke`, ...).
    pub change: Option<String>,
    /// The entitlement.
    pub entitlement: Option<String>,
    /// The resource, when there is one.
    pub resource: Option<String>,
    /// How long the access lasts (`8h`, `30d`), when time-bound.
    pub duration: Option<String>,
    /// Why.
    pub justification: Option<String>,
    /// A case ID the issue carries (an issue made from a case).
    pub case_id: Option<String>,
}

/// Parts of the change that are the same for every issue of the connector
/// (`change = "grant"` for a project that only ever grants).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedValues {
    /// The subject as `KIND:ID`.
    pub subject: Option<String>,
    /// The subject's kind.
    pub subject_kind: Option<String>,
    /// The subject's ID.
    pub subject_id: Option<String>,
    /// The change kind.
    pub change: Option<String>,
    /// The entitlement.
    pub entitlement: Option<String>,
    /// The resource.
    pub resource: Option<String>,
    /// How long the access lasts.
    pub duration: Option<String>,
    /// Why.
    pub justification: Option<String>,
}

/// The Jira connector, built from a checked [`JiraConfig`].
#[derive(Debug)]
pub struct JiraConnector {
    secret: Secret,
    window_seconds: u64,
    projects: BTreeSet<String>,
    approved_status: String,
    denied_status: Option<String>,
    ticket_system: String,
    mapping: Mapping,
    api_url: String,
    authorization: Secret,
    property_key: String,
}

fn default_window_seconds() -> u64 {
    DEFAULT_WINDOW_SECONDS
}

fn default_ticket_system() -> String {
    "jira".to_string()
}

fn default_property_key() -> String {
    "custody".to_string()
}

impl JiraConfig {
    /// Checks the settings and builds the connector.
    pub fn build(&self) -> Result<Box<dyn Connector>, String> {
        self.connector()
            .map(|connector| Box::new(connector) as Box<dyn Connector>)
    }

    /// Checks the settings and builds the connector, as its own type.
    pub fn connector(&self) -> Result<JiraConnector, String> {
        let problem = |what: String| format!("connector `{}` (jira): {what}", self.name);
        if self.secret.expose().is_empty() {
            return Err(problem(
                "`secret` is empty; set the secret the Jira webhook was registered with".into(),
            ));
        }
        if self.window_seconds == 0 {
            return Err(problem("`window_seconds` must be more than zero".into()));
        }
        if self.projects.is_empty() {
            return Err(problem(
                "`projects` is empty; name the Jira project keys whose issues are access requests (e.g. [\"SEC\"])".into(),
            ));
        }
        let mut projects = BTreeSet::new();
        for project in &self.projects {
            if !is_project_key(project) {
                return Err(problem(format!(
                    "`{}` in `projects` is not a Jira project key (an uppercase letter, then uppercase letters, digits or '_')",
                    custody_core::text::escape(project)
                )));
            }
            projects.insert(project.clone());
        }
        let approved_status = self.approved_status.trim();
        if approved_status.is_empty() {
            return Err(problem(
                "`approved_status` is empty; name the status whose transition approves".into(),
            ));
        }
        let denied_status = match self.denied_status.as_deref().map(str::trim) {
            None => None,
            Some("") => return Err(problem(
                "`denied_status` is empty; leave it out or name the status whose transition denies"
                    .into(),
            )),
            Some(denied) if denied.eq_ignore_ascii_case(approved_status) => {
                return Err(problem(
                    "`denied_status` is the same as `approved_status`".into(),
                ))
            }
            Some(denied) => Some(denied.to_string()),
        };
        Ticket::from_str(&format!("{}:X-1", self.ticket_system))
            .map_err(|error| problem(format!("`ticket_system` is not a ticket system: {error}")))?;
        let mapping = Mapping::new(&self.fields, &self.fixed).map_err(problem)?;
        let api_url = check_api_url(&self.api_url).map_err(problem)?;
        if self.api_email.trim().is_empty() || self.api_email.chars().any(char::is_control) {
            return Err(problem(
                "`api_email` is empty or holds control characters; set the email of the Atlassian account Custody writes back as".into(),
            ));
        }
        if self.api_email.contains(':') {
            return Err(problem(
                "`api_email` holds ':', which basic authentication cannot carry".into(),
            ));
        }
        if self.api_token.expose().trim().is_empty() {
            return Err(problem(
                "`api_token` is empty; create an API token for that account at id.atlassian.com"
                    .into(),
            ));
        }
        if self.property_key.is_empty()
            || self.property_key.len() > 255
            || !self
                .property_key
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
        {
            return Err(problem(
                "`property_key` must be 1 to 255 ASCII letters, digits, '.', '_' or '-'".into(),
            ));
        }
        Ok(JiraConnector {
            secret: self.secret.clone(),
            window_seconds: self.window_seconds,
            projects,
            approved_status: approved_status.to_string(),
            denied_status,
            ticket_system: self.ticket_system.to_ascii_lowercase(),
            mapping,
            api_url,
            authorization: write_back::basic_authorization(&self.api_email, &self.api_token),
            property_key: self.property_key.clone(),
        })
    }
}

/// A Jira project key: an uppercase letter, then uppercase letters, digits
/// and underscores (Jira's default key rule).
fn is_project_key(text: &str) -> bool {
    let mut bytes = text.bytes();
    matches!(bytes.next(), Some(b'A'..=b'Z'))
        && text.len() <= 255
        && bytes.all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit() || byte == b'_')
}

/// The site URL without a trailing slash: HTTPS, or HTTP to the loopback
/// interface only (a local fake), since the API token travels in it.
fn check_api_url(text: &str) -> Result<String, String> {
    let url = text.trim().trim_end_matches('/');
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        let loopback = host == "localhost" || host == "127.0.0.1" || rest.starts_with("[::1]");
        if !loopback {
            return Err(format!(
                "`api_url` `{}` is plain HTTP; the API token would travel in the clear (use https://, or http:// to localhost for a local test)",
                custody_core::text::escape(text)
            ));
        }
        rest
    } else {
        return Err(format!(
            "`api_url` `{}` is not an https:// URL (e.g. https://example.atlassian.net)",
            custody_core::text::escape(text)
        ));
    };
    if rest.is_empty()
        || rest.contains(['?', '#', '@'])
        || rest.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "`api_url` `{}` is not a site URL (scheme and host, e.g. https://example.atlassian.net)",
            custody_core::text::escape(text)
        ));
    }
    Ok(url.to_string())
}

impl Connector for JiraConnector {
    fn kind(&self) -> &'static str {
        "jira"
    }

    fn ticket_system(&self) -> Option<&str> {
        Some(&self.ticket_system)
    }

    fn verify(&self, request: &Request<'_>, now_unix: u64) -> Result<Signed, Refusal> {
        if request.headers.repeated(SIGNATURE_HEADER) {
            return Err(Refusal::Unauthenticated(
                "the X-Hub-Signature header is sent more than once".into(),
            ));
        }
        let header = request.headers.get(SIGNATURE_HEADER).ok_or_else(|| {
            Refusal::Unauthenticated(
                "the X-Hub-Signature header is missing; register the Jira webhook with a secret"
                    .into(),
            )
        })?;
        let (method, hex) = header.trim().split_once('=').ok_or_else(|| {
            Refusal::Unauthenticated(
                "the X-Hub-Signature header is not method=signature (expected sha256=<hex>)".into(),
            )
        })?;
        if method != "sha256" {
            return Err(Refusal::Unauthenticated(format!(
                "the X-Hub-Signature method is `{}`, not sha256",
                custody_core::text::escape(method)
            )));
        }
        let tag = signature::decode_hex_tag(hex, SIGNATURE_HEADER)?;
        let verified = signature::verify(self.secret.expose().as_bytes(), &[request.body], &tag)?;
        // Only a body the MAC vouches for is read, and only for its time.
        let signed_at = signed_at(request.body)?;
        signature::check_window(signed_at, now_unix, self.window_seconds)?;
        Ok(Signed {
            verified,
            fingerprint: tag,
            signed_at,
        })
    }

    fn parse(&self, request: &Request<'_>) -> Result<Vec<Inbound>, Refusal> {
        if request.endpoint != WEBHOOK_ENDPOINT {
            return Err(Refusal::Malformed(format!(
                "the jira connector receives webhooks at its `{WEBHOOK_ENDPOINT}` endpoint, not `{}`",
                custody_core::text::escape(request.endpoint)
            )));
        }
        let webhook: Webhook = serde_json::from_slice(request.body).map_err(|error| {
            Refusal::Malformed(format!(
                "the body is not a Jira webhook (a JSON object with timestamp and webhookEvent): {error}"
            ))
        })?;
        match webhook.webhook_event.as_str() {
            ISSUE_CREATED => self.issue_created(&webhook),
            ISSUE_UPDATED => self.issue_updated(&webhook),
            _ => Ok(Vec::new()),
        }
    }

    fn answer(&self, outcomes: &[Outcome]) -> Answer {
        answer(outcomes)
    }

    fn write_back(&self, update: &crate::Update) -> Vec<crate::Call> {
        write_back::calls(self, update)
    }
}

const ISSUE_CREATED: &str = "jira:issue_created";
const ISSUE_UPDATED: &str = "jira:issue_updated";

/// The parts of a webhook body the connector reads; the rest is ignored.
#[derive(Debug, Deserialize)]
struct Webhook {
    /// When Jira raised the event, in milliseconds since the epoch.
    timestamp: u64,
    #[serde(rename = "webhookEvent")]
    webhook_event: String,
    /// Who caused it.
    #[serde(default)]
    user: Option<User>,
    /// The issue as it is after the event.
    #[serde(default)]
    issue: Option<Issue>,
    /// What changed, on an update.
    #[serde(default)]
    changelog: Option<Changelog>,
}

#[derive(Debug, Deserialize)]
struct User {
    #[serde(rename = "accountId", default)]
    account_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Issue {
    id: IdText,
    key: String,
    #[serde(default)]
    fields: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct Changelog {
    #[serde(default)]
    id: Option<IdText>,
    #[serde(default)]
    items: Vec<ChangeItem>,
}

#[derive(Debug, Deserialize)]
struct ChangeItem {
    #[serde(default)]
    field: Option<String>,
    #[serde(rename = "fieldId", default)]
    field_id: Option<String>,
    #[serde(default)]
    to: Option<Value>,
    #[serde(rename = "toString", default)]
    to_string: Option<String>,
}

/// An ID Jira writes as a string or as a number (`"10042"` or `10042`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum IdText {
    Text(String),
    Number(u64),
}

impl IdText {
    fn text(&self) -> String {
        match self {
            IdText::Text(text) => text.clone(),
            IdText::Number(number) => number.to_string(),
        }
    }
}

impl ChangeItem {
    /// The field's ID: `fieldId` where Jira sends it, else `field` (system
    /// fields are named by their ID).
    fn id(&self) -> Option<&str> {
        self.field_id.as_deref().or(self.field.as_deref())
    }
}

/// Reads the signed body's `timestamp` (milliseconds) as Unix seconds.
fn signed_at(body: &[u8]) -> Result<u64, Refusal> {
    #[derive(Deserialize)]
    struct Stamp {
        timestamp: Value,
    }
    let stamp: Stamp = serde_json::from_slice(body).map_err(|_| {
        Refusal::Malformed(
            "the signed body is not a JSON object with a timestamp (milliseconds); Jira webhooks carry one".into(),
        )
    })?;
    let milliseconds = stamp.timestamp.as_u64().ok_or_else(|| {
        Refusal::Malformed(
            "the signed body's timestamp is not a whole number of milliseconds since the epoch"
                .into(),
        )
    })?;
    Ok(milliseconds / 1000)
}

/// The webhook's time as a ledger timestamp.
fn occurred_at(milliseconds: u64) -> Result<Timestamp, Refusal> {
    i64::try_from(milliseconds)
        .ok()
        .and_then(|milliseconds| milliseconds.checked_mul(1000))
        .map(Timestamp::from_micros)
        .ok_or_else(|| Refusal::Malformed("the webhook's timestamp is out of range".into()))
}

impl JiraConnector {
    /// The issue, if it is one of the configured projects' (else `None`: not
    /// for Custody).
    fn issue_in_project<'a>(&self, webhook: &'a Webhook) -> Result<Option<&'a Issue>, Refusal> {
        let issue = webhook.issue.as_ref().ok_or_else(|| {
            Refusal::Malformed(format!(
                "the {} webhook carries no issue",
                webhook.webhook_event
            ))
        })?;
        let project = issue
            .fields
            .get("project")
            .and_then(|project| project.get("key"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Refusal::Malformed(format!(
                    "issue {} carries no fields.project.key",
                    custody_core::text::escape(&issue.key)
                ))
            })?;
        if !self.projects.contains(project) {
            return Ok(None);
        }
        Ok(Some(issue))
    }

    fn ticket(&self, issue: &Issue) -> Result<Ticket, Refusal> {
        Ticket::from_str(&format!("{}:{}", self.ticket_system, issue.key)).map_err(|error| {
            Refusal::Malformed(format!("the issue key is not a ticket key: {error}"))
        })
    }

    fn external_user(webhook: &Webhook) -> Result<String, Refusal> {
        webhook
            .user
            .as_ref()
            .and_then(|user| user.account_id.as_deref())
            .map(str::trim)
            .filter(|account| !account.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                Refusal::Malformed(format!(
                    "the {} webhook names no user (user.accountId); Custody records who acted",
                    webhook.webhook_event
                ))
            })
    }

    /// The case ID the issue's case-ID field holds, if any.
    fn case_id(&self, issue: &Issue) -> Result<Option<CaseId>, Refusal> {
        self.mapping
            .case_id(&issue.fields)
            .map_err(|error| field_refusal(issue, &error))
    }

    fn issue_created(&self, webhook: &Webhook) -> Result<Vec<Inbound>, Refusal> {
        let Some(issue) = self.issue_in_project(webhook)? else {
            return Ok(Vec::new());
        };
        let ticket = self.ticket(issue)?;
        let external_user = Self::external_user(webhook)?;
        let change = self
            .mapping
            .change(&issue.fields)
            .map_err(|error| field_refusal(issue, &error))?;
        let justification = self
            .mapping
            .justification(&issue.fields)
            .map_err(|error| field_refusal(issue, &error))?;
        let case = self.case_id(issue)?;
        Ok(vec![Inbound {
            external_id: format!("{ISSUE_CREATED}:{}", issue.id.text()),
            external_user,
            occurred_at: Some(occurred_at(webhook.timestamp)?),
            action: Action::Request {
                change,
                justification,
                ticket: Some(ticket),
                case,
            },
            reply_to: None,
        }])
    }

    fn issue_updated(&self, webhook: &Webhook) -> Result<Vec<Inbound>, Refusal> {
        let Some(issue) = self.issue_in_project(webhook)? else {
            return Ok(Vec::new());
        };
        let Some(changelog) = &webhook.changelog else {
            // A comment or another update without field changes.
            return Ok(Vec::new());
        };
        let decision = changelog
            .items
            .iter()
            .rev()
            .find(|item| item.id() == Some("status"))
            .and_then(|item| self.decision(item));
        let fields_changed = changelog
            .items
            .iter()
            .filter_map(ChangeItem::id)
            .any(|id| self.mapping.maps(id));
        if decision.is_none() && !fields_changed {
            return Ok(Vec::new());
        }
        let ticket = self.ticket(issue)?;
        let external_user = Self::external_user(webhook)?;
        let occurred_at = occurred_at(webhook.timestamp)?;
        let change_id = match &changelog.id {
            Some(id) => id.text(),
            None => format!("at-{}", webhook.timestamp),
        };
        let external_id =
            |what: &str| format!("{ISSUE_UPDATED}:{}:{change_id}:{what}", issue.id.text());
        // A decision is the issue's: it binds to the case that carries this
        // issue, never to a case its case-ID field names (anyone who can
        // edit the field could point an approval at another case). The
        // field counts once, when the issue is created, to link the issue.
        let target = Target::Ticket(ticket.clone());
        let mut inbounds = Vec::new();
        // The decision first: an edit made in the same update as the
        // approval is then recorded after it, where `verify` compares it
        // with the approved change.
        if let Some(decision) = decision {
            let (what, action) = match decision {
                Decision::Approve => (
                    "approve",
                    Action::Approve {
                        target: target.clone(),
                        comment: None,
                        chat: None,
                    },
                ),
                Decision::Deny => (
                    "deny",
                    Action::Deny {
                        target: target.clone(),
                        comment: None,
                    },
                ),
            };
            inbounds.push(Inbound {
                external_id: external_id(what),
                external_user: external_user.clone(),
                occurred_at: Some(occurred_at),
                action,
                reply_to: None,
            });
        }
        if fields_changed {
            let change = self
                .mapping
                .change(&issue.fields)
                .map_err(|error| field_refusal(issue, &error))?;
            inbounds.push(Inbound {
                external_id: external_id("fields"),
                external_user,
                occurred_at: Some(occurred_at),
                action: Action::TicketUpdated { ticket, change },
                reply_to: None,
            });
        }
        Ok(inbounds)
    }

    /// Whether a status change item moves the issue to the approved or the
    /// denied status (by name, any case, or by status ID).
    fn decision(&self, item: &ChangeItem) -> Option<Decision> {
        let name = item.to_string.as_deref().map(str::trim);
        let id = item.to.as_ref().and_then(|to| match to {
            Value::String(text) => Some(text.trim().to_string()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        });
        let is = |status: &str| {
            name.is_some_and(|name| name.eq_ignore_ascii_case(status))
                || id.as_deref() == Some(status)
        };
        if is(&self.approved_status) {
            Some(Decision::Approve)
        } else if self.denied_status.as_deref().is_some_and(is) {
            Some(Decision::Deny)
        } else {
            None
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Approve,
    Deny,
}

fn field_refusal(issue: &Issue, error: &FieldValueError) -> Refusal {
    Refusal::Malformed(format!(
        "issue {}: {error}",
        custody_core::text::escape(&issue.key)
    ))
}

/// The answer Jira gets. Jira reads only the status, and retries a
/// delivery answered 408, 409, 425, 429 or 5xx: a write Custody could not
/// make (`internal`) is 503, and an action whose case does not exist yet
/// (an update that overtook the creation of its issue) is 409, so that a
/// later delivery may find it. Everything else is 200, with a body saying
/// what became of each action, for whoever reads the delivery (an operator,
/// a test).
fn answer(outcomes_in: &[Outcome]) -> Answer {
    let outcomes: Vec<Value> = outcomes_in
        .iter()
        .map(|outcome| {
            let mut entry = serde_json::Map::new();
            if let Some(case_id) = &outcome.case_id {
                entry.insert("case_id".into(), Value::from(case_id.as_str()));
            }
            if let Some(principal) = &outcome.principal {
                entry.insert("principal".into(), Value::from(principal.as_str()));
            }
            match &outcome.kind {
                OutcomeKind::Recorded { event, state } => {
                    entry.insert("outcome".into(), "recorded".into());
                    entry.insert("event".into(), Value::from(event.as_str()));
                    entry.insert("state".into(), Value::from(state.as_str()));
                }
                OutcomeKind::AlreadyRecorded { state } => {
                    entry.insert("outcome".into(), "already_recorded".into());
                    entry.insert("state".into(), Value::from(state.as_str()));
                }
                OutcomeKind::Refused { rule } => {
                    entry.insert("outcome".into(), "refused".into());
                    entry.insert("rule".into(), Value::from(rule.as_str()));
                }
                OutcomeKind::Unmapped => {
                    entry.insert("outcome".into(), "unmapped".into());
                }
                OutcomeKind::NotFound => {
                    entry.insert("outcome".into(), "not_found".into());
                }
                OutcomeKind::Ignored => {
                    entry.insert("outcome".into(), "ignored".into());
                }
            }
            entry.insert("message".into(), Value::from(outcome.message.as_str()));
            Value::Object(entry)
        })
        .collect();
    let status = answer_status(outcomes_in);
    if status == 200 {
        return Answer::json(200, &serde_json::json!({ "outcomes": outcomes }));
    }
    // Every error answer of Custody is RFC 9457 problem+json (docs/api.md):
    // the outcomes ride along as an extension member.
    let (problem_type, title, detail) = if status == 503 {
        (
            "urn:custody:problem:unavailable",
            "Unavailable",
            "Custody could not record an action of this webhook; Jira retries the delivery",
        )
    } else {
        (
            "urn:custody:problem:conflict",
            "Refused",
            "no case carries the issue (or the case ID it names) yet; Jira retries the delivery",
        )
    };
    let problem = serde_json::json!({
        "type": problem_type,
        "title": title,
        "status": status,
        "detail": detail,
        "outcomes": outcomes,
    });
    Answer {
        status,
        content_type: Some("application/problem+json"),
        body: serde_json::to_vec(&problem).unwrap_or_default(),
    }
}

/// The status for a set of outcomes: 503 when a write failed inside
/// Custody, else 409 when a case was not found, else 200.
fn answer_status(outcomes: &[Outcome]) -> u16 {
    let internal = outcomes.iter().any(
        |outcome| matches!(&outcome.kind, OutcomeKind::Refused { rule } if rule == "internal"),
    );
    if internal {
        503
    } else if outcomes
        .iter()
        .any(|outcome| outcome.kind == OutcomeKind::NotFound)
    {
        409
    } else {
        200
    }
}
