//! GitHub: a source of observed changes (see [`crate::observe`]) read from
//! an organization's audit log and its webhooks.
//!
//! **Pushed.** An organization (or a GitHub App) webhook posts to
//! `/v1/connectors/{name}/webhook`, signed with the webhook's secret:
//! `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the body, compared
//! in constant time ([`crate::signature::verify`]). `X-GitHub-Event` names
//! the event and `X-GitHub-Delivery` the delivery. `ping` (sent when the
//! webhook is created) is answered 200 and records nothing. The events
//! read ([`webhook`]): `membership` (team members added, removed),
//! `organization` (`member_added`, `member_removed`, `member_invited`),
//! `member` (repository collaborators added, their role edited, removed),
//! `team` (a team added to or removed from a repository, its role there
//! edited), `deploy_key` (created, deleted) and
//! `personal_access_token_request` (approved). Every other event and
//! action is counted as skipped.
//!
//! **Polled.** With `api_token` and `organization` set, the server polls
//! `GET {api_url}/orgs/{organization}/audit-log?per_page=100&order=asc`
//! ([`pull`]) with `Authorization: Bearer <token>` and
//! `X-GitHub-Api-Version`; the cursor is the `after` parameter of the
//! answer's `Link: <...>; rel="next"`, and the first poll starts
//! `lookback_seconds` ago (`phrase=created:>=...`).
//!
//! **Batch.** `custody ingest --source NAME FILE` reads the audit log as
//! the REST API answers it or the web UI exports it as JSON (an array of
//! entries), or as JSON lines (audit log streaming).
//!
//! **What a record becomes** ([`audit_log`], [`webhook`]; the table is in
//! docs/observations/github.md): team membership is `member` of
//! `team:<org>/<team>`; organization membership is its role (`member`,
//! `admin`) on `org:<org>`; a repository role (`read`, `triage`, `write`,
//! `maintain`, `admin`, or a custom role's name) is granted to a user, or
//! to a team (`group:<org>/<team>`), on `repo:<owner>/<repo>`; a deploy key
//! is the API key `<owner>/<repo>/<title>`, created or deleted with
//! `deploy-key:read` or `deploy-key:write` on its repository; a fine-grained
//! personal access token approved for the organization is the token
//! `<owner>/pat-<token id>` granted the permissions it holds.
//!
//! **External IDs.** An audit log entry's `_document_id`. A webhook's
//! payload names its change uniquely for a deploy key (its repository and
//! key ID) and a token request (its ID): those are the external ID,
//! whatever delivery carried them, so a redelivery and a replay of the
//! same signed body with another delivery header append nothing. The other
//! webhook events name no change of their own (adding, removing and adding
//! a member again sends the same body three times), so their external ID is
//! the `X-GitHub-Delivery` GUID, which GitHub keeps across redeliveries;
//! the header is outside the signature, so a captured body replayed under a
//! fresh GUID is recorded again (docs/observations/github.md, Limits).

pub mod audit_log;
pub mod pull;
pub mod webhook;

#[cfg(test)]
mod tests;

use serde::Deserialize;

use custody_core::model::{ChangeKind, PrincipalKind, SubjectKind};
use custody_core::observation::{ObservedActor, ObservedChange};
use custody_core::Timestamp;

use crate::config::{default_max_body_bytes, Secret};
use crate::observe::{Fields, Parsed, Pull, Source};
use crate::{signature, Refusal, Request};

/// The header GitHub puts the body's signature in.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

/// The header naming the event.
pub const EVENT_HEADER: &str = "X-GitHub-Event";

/// The header naming the delivery (a GUID).
pub const DELIVERY_HEADER: &str = "X-GitHub-Delivery";

/// The REST API version polled by default.
pub const DEFAULT_API_VERSION: &str = "2022-11-28";

/// The settings of a `kind = "github"` source.
///
/// ```toml
/// [[connectors]]
/// name = "github"
/// kind = "github"
/// secret = "the webhook's secret"        # to take webhooks
/// organization = "acme"                  # to poll, with api_token
/// api_token = "a token with read:audit_log"
/// # api_url = "https://api.github.com"
/// # api_version = "2022-11-28"
/// # phrase = "action:team action:repo"    # narrows the audit log search
/// # interval_seconds = 60
/// # lookback_seconds = 3600
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// The connector's name.
    pub name: String,
    /// The secret the webhook was created with; webhooks are refused
    /// without it.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The organization's login: webhooks of another organization are
    /// skipped, and the audit log polled is this organization's.
    #[serde(default)]
    pub organization: Option<String>,
    /// The REST API's base URL (GitHub Enterprise Server:
    /// `https://HOST/api/v3`).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// A token that may read the organization's audit log (an owner's
    /// token with `read:audit_log`, or a GitHub App's with the
    /// `organization_administration` read permission); the audit log is
    /// polled only when it is set.
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// The `X-GitHub-Api-Version` sent.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Search qualifiers that narrow the polled audit log (GitHub's
    /// `phrase` syntax, e.g. `action:team action:repo`); every entry is
    /// read by default and what changes no access is skipped.
    #[serde(default)]
    pub phrase: Option<String>,
    /// Seconds between polls when no page is waiting.
    #[serde(default = "default_interval_seconds")]
    pub interval_seconds: u64,
    /// How far back the first poll starts, in seconds.
    #[serde(default = "default_lookback_seconds")]
    pub lookback_seconds: u64,
    /// The largest accepted body.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

fn default_api_url() -> String {
    "https://api.github.com".to_string()
}

fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_string()
}

fn default_interval_seconds() -> u64 {
    60
}

fn default_lookback_seconds() -> u64 {
    3600
}

impl GithubConfig {
    /// Checks the settings and builds the source.
    pub fn build_source(&self) -> Result<Box<dyn Source>, String> {
        self.source()
            .map(|source| Box::new(source) as Box<dyn Source>)
    }

    /// Checks the settings and builds the source, as its own type.
    pub fn source(&self) -> Result<GithubSource, String> {
        let problem = |what: String| format!("connector `{}` (github): {what}", self.name);
        if self
            .secret
            .as_ref()
            .is_some_and(|secret| secret.expose().is_empty())
        {
            return Err(problem(
                "`secret` is empty; set the webhook's secret, or leave `secret` out to take no webhooks".into(),
            ));
        }
        if let Some(organization) = &self.organization {
            if !is_login(organization) {
                return Err(problem(format!(
                    "`organization` = `{}` is not a GitHub login (letters, digits and single hyphens)",
                    custody_core::text::escape(organization)
                )));
            }
        }
        let pull = match &self.api_token {
            None => None,
            Some(token) => {
                if token.expose().is_empty() || token.expose().contains(['\r', '\n']) {
                    return Err(problem(
                        "`api_token` is empty or holds a line break; set a token that may read the audit log".into(),
                    ));
                }
                let Some(organization) = &self.organization else {
                    return Err(problem(
                        "`api_token` is set but `organization` is not; name the organization whose audit log is polled".into(),
                    ));
                };
                Some(pull::AuditLogPull::new(self, organization, token)?)
            }
        };
        Ok(GithubSource {
            secret: self.secret.clone(),
            organization: self.organization.clone(),
            pull,
        })
    }
}

/// Whether `text` is a GitHub login: ASCII letters, digits and hyphens,
/// not starting or ending with a hyphen, at most 39 characters.
pub fn is_login(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 39
        && !text.starts_with('-')
        && !text.ends_with('-')
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
}

/// A configured GitHub source.
#[derive(Debug)]
pub struct GithubSource {
    secret: Option<Secret>,
    organization: Option<String>,
    pull: Option<pull::AuditLogPull>,
}

impl Source for GithubSource {
    fn kind(&self) -> &'static str {
        "github"
    }

    fn authenticate(&self, request: &Request<'_>) -> Result<(), Refusal> {
        let Some(secret) = &self.secret else {
            return Err(Refusal::Unauthenticated(
                "this source takes no webhooks: its `secret` is not configured".into(),
            ));
        };
        if request.headers.repeated(SIGNATURE_HEADER) {
            return Err(Refusal::Unauthenticated(format!(
                "the {SIGNATURE_HEADER} header is sent more than once"
            )));
        }
        let Some(header) = request.headers.get(SIGNATURE_HEADER) else {
            return Err(Refusal::Unauthenticated(format!(
                "the {SIGNATURE_HEADER} header is missing; GitHub signs webhooks that have a secret"
            )));
        };
        let Some(hex) = header.trim().strip_prefix("sha256=") else {
            return Err(Refusal::Unauthenticated(format!(
                "the {SIGNATURE_HEADER} header is not `sha256=<hex>`"
            )));
        };
        let tag = signature::decode_hex_tag(hex, SIGNATURE_HEADER)?;
        signature::verify(secret.expose().as_bytes(), &[request.body], &tag).map(|_| ())
    }

    fn parse_push(&self, request: &Request<'_>) -> Result<Parsed, Refusal> {
        webhook::parse(request, None, self.organization.as_deref())
    }

    fn parse_push_at(
        &self,
        request: &Request<'_>,
        received_at: Timestamp,
    ) -> Result<Parsed, Refusal> {
        webhook::parse(request, Some(received_at), self.organization.as_deref())
    }

    fn parse_batch(&self, bytes: &[u8]) -> Result<Parsed, Refusal> {
        audit_log::parse_file(bytes, self.organization.as_deref())
    }

    fn pull(&self) -> Option<&dyn Pull> {
        self.pull.as_ref().map(|pull| pull as &dyn Pull)
    }
}

/// One GitHub change, before [`Fields::build`] checks it.
pub(crate) struct Observation<'a> {
    pub external_id: String,
    pub action: String,
    pub occurred_at: Timestamp,
    pub actor: ObservedActor,
    pub subject: (SubjectKind, String),
    pub kind: ChangeKind,
    pub entitlement: String,
    pub resource: Option<String>,
    pub hints: Vec<String>,
    pub raw: &'a [u8],
}

impl Observation<'_> {
    pub(crate) fn build(self) -> Result<ObservedChange, Refusal> {
        Fields {
            external_id: &self.external_id,
            action: &self.action,
            occurred_at: self.occurred_at,
            actor: self.actor,
            subject: (self.subject.0, &self.subject.1),
            kind: self.kind,
            entitlement: &self.entitlement,
            resource: self.resource.as_deref(),
            hints: self.hints.iter().map(String::as_str).collect(),
            references: Vec::new(),
            raw: self.raw,
        }
        .build()
    }
}

/// The actor of a GitHub record: its login, an automation when GitHub
/// says it is a bot (`[bot]` logins, `actor_is_bot`).
pub(crate) fn actor(login: &str, bot: bool) -> ObservedActor {
    let bot = bot || login.ends_with("[bot]");
    ObservedActor {
        id: login.to_string(),
        kind: bot.then_some(PrincipalKind::Automation),
        display: None,
        on_behalf_of: None,
        session: None,
        source_identity: None,
        principal: None,
    }
}

/// A repository role as Custody records it: the names GitHub shows
/// (`read`, `triage`, `write`, `maintain`, `admin`), from the REST API's
/// older names too (`pull`, `push`); a custom role keeps its name.
pub fn repository_role(permission: &str) -> String {
    match permission {
        "pull" | "read" => "read".to_string(),
        "push" | "write" => "write".to_string(),
        other => other.to_string(),
    }
}

/// An organization role as Custody records it: `member` or `admin`
/// (GitHub's `direct_member` and `read` are `member`); another role (a
/// billing manager) keeps its name.
pub fn organization_role(role: &str) -> String {
    match role {
        "direct_member" | "read" | "member" => "member".to_string(),
        other => other.to_string(),
    }
}

/// The entitlement of a deploy key: what it may do to its repository.
pub fn deploy_key_entitlement(read_only: bool) -> &'static str {
    if read_only {
        "deploy-key:read"
    } else {
        "deploy-key:write"
    }
}

/// A deploy key's title without the case ID it carries (`ci AC-0190...`
/// names the key `ci`), so that the key is named as it was requested while
/// the ID binds it to its case; a title that is only a case ID is kept.
pub fn without_case_id(title: &str) -> String {
    let Some(case) = crate::observe::find_case_id(title) else {
        return title.to_string();
    };
    let case = case.to_string();
    let enclosed = [format!("({case})"), format!("[{case}]"), case];
    let Some(found) = enclosed.iter().find(|form| title.contains(form.as_str())) else {
        return title.to_string();
    };
    let stripped = title.replacen(found.as_str(), " ", 1);
    let stripped = stripped.split_whitespace().collect::<Vec<_>>().join(" ");
    let stripped = stripped.trim_matches(|c: char| " -_:;,#()[]{}".contains(c));
    if stripped.is_empty() {
        title.to_string()
    } else {
        stripped.to_string()
    }
}

/// `name` qualified by the organization when it is not already
/// (`acme/platform` for the team `platform` of `acme`).
pub(crate) fn qualified(organization: Option<&str>, name: &str) -> String {
    match organization {
        Some(organization) if !name.contains('/') => format!("{organization}/{name}"),
        _ => name.to_string(),
    }
}

/// The permissions of a fine-grained token as one entitlement:
/// `name:level` pairs, sorted, comma-separated, from a flat object
/// (`{"contents": "read"}`) or one grouped by kind
/// (`{"repository": {"contents": "read"}}`). `None` when there are none.
pub(crate) fn permissions_entitlement(value: Option<&serde_json::Value>) -> Option<String> {
    let mut pairs = Vec::new();
    let mut collect = |object: &serde_json::Map<String, serde_json::Value>| {
        for (name, level) in object {
            if let Some(level) = level.as_str() {
                pairs.push(format!("{name}:{level}"));
            }
        }
    };
    let object = value?.as_object()?;
    collect(object);
    for nested in object.values().filter_map(serde_json::Value::as_object) {
        collect(nested);
    }
    pairs.sort();
    pairs.dedup();
    (!pairs.is_empty()).then(|| pairs.join(","))
}
