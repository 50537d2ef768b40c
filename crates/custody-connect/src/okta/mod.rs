//! Okta's System Log: a source of observed changes (see [`crate::observe`]).
//!
//! Okta records every administrative change in its System Log as a
//! `LogEvent`. Custody reads them three ways, all parsed here:
//!
//! - **event hooks** (push) at `/v1/connectors/{name}/events`. Okta first
//!   verifies the endpoint with a one-time `GET` carrying the
//!   `X-Okta-Verification-Challenge` header, answered with
//!   `{"verification": "<the header's value>"}` ([`Source::handshake`]);
//!   then it `POST`s `{"eventType": "com.okta.event_hook", ..., "data":
//!   {"events": [LogEvent, ...]}}`. Okta signs nothing: every request, the
//!   verification included, carries the authorization header configured on
//!   the hook (`Authorization` unless set otherwise), whose value is the
//!   connector's `secret`, compared in constant time
//!   ([`crate::observe::verify_shared_secret`]);
//! - **polling** `GET {org_url}/api/v1/logs` with an API token
//!   (`Authorization: SSWS <token>`), oldest first, starting `lookback_seconds`
//!   before the first poll; the cursor is the `next` link Okta returns in the
//!   `Link` header ([`pull`]);
//! - **batch files** (`custody ingest`): what `/api/v1/logs` returns (a JSON
//!   array of LogEvents) or JSON lines of LogEvents.
//!
//! What is read, and how each record maps onto a Custody change, is in
//! [`event`] and docs/observations/okta.md: group memberships, application
//! assignments, administrator roles granted to users and groups, and API
//! tokens created and revoked. Every other event, and every event whose
//! `outcome.result` is not `SUCCESS`, is counted as skipped.

mod event;
mod pull;

#[cfg(test)]
mod tests;

use serde::Deserialize;

use crate::config::{default_max_body_bytes, Secret};
use crate::observe::{Parsed, Pull, Source};
use crate::{Answer, Refusal, Request};

pub use event::READ_EVENT_TYPES;

/// The endpoint below `/v1/connectors/{name}/` an Okta event hook calls.
pub const EVENTS_ENDPOINT: &str = "events";

/// The header of Okta's one-time verification request.
pub const VERIFICATION_HEADER: &str = "X-Okta-Verification-Challenge";

/// The largest verification challenge echoed back.
const MAX_CHALLENGE_BYTES: usize = 1024;

/// The most events Okta returns in one page of `/api/v1/logs`.
pub const MAX_LIMIT: u32 = 1000;

/// The longest look-back: Okta keeps the System Log for 90 days.
pub const MAX_LOOKBACK_SECONDS: u64 = 90 * 24 * 3600;

/// The settings of a `kind = "okta"` source.
///
/// ```toml
/// [[connectors]]
/// name = "okta"
/// kind = "okta"
/// # Event hooks: the value of the authorization header set on the hook.
/// secret = "a long random value"
/// authorization_header = "Authorization"     # the header's name on the hook
/// # Polling /api/v1/logs:
/// org_url = "https://example.okta.com"
/// api_token = "an API token of a read-only administrator"
/// poll = true                                # default: true when api_token is set
/// interval_seconds = 60
/// lookback_seconds = 3600
/// limit = 1000
/// # How changes are named:
/// subject_ids = "login"                      # or "id"
/// resource = "okta"                          # default: none
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaConfig {
    /// The connector's name.
    pub name: String,
    /// The largest accepted body.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// The value of the event hook's authorization header. Without it the
    /// source takes no event hooks.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The name of the event hook's authorization header.
    #[serde(default = "default_authorization_header")]
    pub authorization_header: String,
    /// The org's base URL (`https://example.okta.com`), for polling.
    #[serde(default)]
    pub org_url: Option<String>,
    /// An Okta API token (sent as `Authorization: SSWS <token>`), for polling.
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// Whether to poll `/api/v1/logs` (default: when `api_token` is set).
    #[serde(default)]
    pub poll: Option<bool>,
    /// Seconds between polls once the log is read to its end.
    #[serde(default = "default_interval_seconds")]
    pub interval_seconds: u64,
    /// How far back the first poll starts, in seconds.
    #[serde(default = "default_lookback_seconds")]
    pub lookback_seconds: u64,
    /// Events per page (Okta's `limit`, at most 1000).
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// How users and API tokens are named in subjects: by their login and
    /// name (`login`), or by their Okta IDs (`id`).
    #[serde(default)]
    pub subject_ids: SubjectIds,
    /// The resource every change of this org is recorded on (none by
    /// default): set it when requests name one (`--resource okta`).
    #[serde(default)]
    pub resource: Option<String>,
}

/// How the subjects of Okta's changes are named.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SubjectIds {
    /// A user by the login Okta shows (`alternateId`, such as
    /// `alice@example.com`), an API token by its name: what people type in
    /// a request.
    #[default]
    Login,
    /// A user by its Okta ID (`00u...`), an API token by its ID (`00T...`):
    /// stable when logins are renamed.
    Id,
}

fn default_authorization_header() -> String {
    "Authorization".to_string()
}

fn default_interval_seconds() -> u64 {
    60
}

fn default_lookback_seconds() -> u64 {
    3600
}

fn default_limit() -> u32 {
    MAX_LIMIT
}

impl OktaConfig {
    /// Checks the settings and builds the source.
    pub fn build_source(&self) -> Result<Box<dyn Source>, String> {
        self.source()
            .map(|source| Box::new(source) as Box<dyn Source>)
    }

    /// Checks the settings and builds the source, as its own type.
    pub fn source(&self) -> Result<OktaSource, String> {
        let problem = |what: String| format!("connector `{}` (okta): {what}", self.name);
        if let Some(secret) = &self.secret {
            if secret.expose().is_empty() {
                return Err(problem(
                    "`secret` is empty; set the value of the event hook's authorization header, or leave `secret` out to take no event hooks".into(),
                ));
            }
            if secret.expose().chars().any(|c| c.is_control()) {
                return Err(problem(
                    "`secret` holds control characters, which an HTTP header cannot carry".into(),
                ));
            }
        }
        let header = self.authorization_header.trim();
        if header.is_empty() || !header.bytes().all(is_header_name_byte) {
            return Err(problem(format!(
                "`authorization_header` `{}` is not an HTTP header name",
                custody_core::text::escape(&self.authorization_header)
            )));
        }
        let resource = match &self.resource {
            Some(resource) => Some(
                custody_core::model::validate_name("resource", resource)
                    .map_err(|error| problem(format!("`resource`: {error}")))?,
            ),
            None => None,
        };
        let reader = event::Reader {
            subject_ids: self.subject_ids,
            resource,
        };
        let poll = self.poll.unwrap_or(self.api_token.is_some());
        let pull = if poll {
            let Some(org_url) = &self.org_url else {
                return Err(problem(
                    "polling needs `org_url` (e.g. https://example.okta.com); set it, or `poll = false`".into(),
                ));
            };
            let org_url = check_org_url(org_url).map_err(problem)?;
            let Some(api_token) = &self.api_token else {
                return Err(problem(
                    "polling needs `api_token`, an Okta API token allowed to read the System Log; set it, or `poll = false`".into(),
                ));
            };
            let token = api_token.expose().trim();
            if token.is_empty() || token.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(problem(
                    "`api_token` is empty or holds spaces or control characters; paste the token Okta showed once".into(),
                ));
            }
            if self.interval_seconds == 0 {
                return Err(problem("`interval_seconds` must be more than zero".into()));
            }
            if !(1..=MAX_LOOKBACK_SECONDS).contains(&self.lookback_seconds) {
                return Err(problem(format!(
                    "`lookback_seconds` must be between 1 and {MAX_LOOKBACK_SECONDS} (Okta keeps the System Log for 90 days)"
                )));
            }
            if !(1..=MAX_LIMIT).contains(&self.limit) {
                return Err(problem(format!(
                    "`limit` must be between 1 and {MAX_LIMIT}"
                )));
            }
            Some(pull::LogPoller {
                org_url,
                authorization: Secret::new(format!("SSWS {token}")),
                interval_seconds: self.interval_seconds,
                lookback_seconds: self.lookback_seconds,
                limit: self.limit,
                reader: reader.clone(),
            })
        } else {
            None
        };
        Ok(OktaSource {
            secret: self.secret.clone(),
            authorization_header: header.to_string(),
            reader,
            pull,
        })
    }
}

/// A byte of an HTTP header name (RFC 9110 `tchar`).
fn is_header_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// The org URL without a trailing slash: HTTPS, or HTTP to the loopback
/// interface only (a local fake), since the API token travels with it.
fn check_org_url(text: &str) -> Result<String, String> {
    let url = text.trim().trim_end_matches('/');
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        let loopback = host == "localhost" || host == "127.0.0.1" || rest.starts_with("[::1]");
        if !loopback {
            return Err(format!(
                "`org_url` `{}` is plain HTTP; the API token would travel in the clear (use https://, or http:// to localhost for a local test)",
                custody_core::text::escape(text)
            ));
        }
        rest
    } else {
        return Err(format!(
            "`org_url` `{}` is not an https:// URL (e.g. https://example.okta.com)",
            custody_core::text::escape(text)
        ));
    };
    if rest.is_empty()
        || rest.contains(['/', '?', '#', '@', '%'])
        || rest.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "`org_url` `{}` is not an org URL (scheme and host only, e.g. https://example.okta.com)",
            custody_core::text::escape(text)
        ));
    }
    Ok(url.to_string())
}

/// The Okta source, built from a checked [`OktaConfig`].
#[derive(Debug)]
pub struct OktaSource {
    secret: Option<Secret>,
    authorization_header: String,
    reader: event::Reader,
    pull: Option<pull::LogPoller>,
}

impl OktaSource {
    fn check_endpoint(request: &Request<'_>) -> Result<(), Refusal> {
        if request.endpoint == EVENTS_ENDPOINT {
            Ok(())
        } else {
            Err(Refusal::Malformed(format!(
                "the okta source takes event hooks at its `{EVENTS_ENDPOINT}` endpoint, not `{}`",
                custody_core::text::escape(request.endpoint)
            )))
        }
    }
}

impl Source for OktaSource {
    fn kind(&self) -> &'static str {
        "okta"
    }

    fn authenticate(&self, request: &Request<'_>) -> Result<(), Refusal> {
        let Some(secret) = &self.secret else {
            return Err(Refusal::Unauthenticated(
                "this okta source takes no event hooks: it has no `secret` configured".into(),
            ));
        };
        let header = self.authorization_header.as_str();
        if request.headers.repeated(header) {
            return Err(Refusal::Unauthenticated(format!(
                "the {header} header is sent more than once"
            )));
        }
        crate::observe::verify_shared_secret(secret, request.headers.get(header), header)
    }

    fn handshake(&self, request: &Request<'_>) -> Option<Result<Answer, Refusal>> {
        Some(Self::check_endpoint(request).and_then(|()| {
            if request.headers.repeated(VERIFICATION_HEADER) {
                return Err(Refusal::Malformed(format!(
                    "the {VERIFICATION_HEADER} header is sent more than once"
                )));
            }
            let challenge = request.headers.get(VERIFICATION_HEADER).ok_or_else(|| {
                Refusal::Malformed(format!(
                    "a GET to an Okta event hook is its one-time verification, which carries the {VERIFICATION_HEADER} header; it is missing"
                ))
            })?;
            if challenge.is_empty() || challenge.len() > MAX_CHALLENGE_BYTES {
                return Err(Refusal::Malformed(format!(
                    "the {VERIFICATION_HEADER} header must be 1 to {MAX_CHALLENGE_BYTES} bytes"
                )));
            }
            Ok(Answer::json(
                200,
                &serde_json::json!({ "verification": challenge }),
            ))
        }))
    }

    fn parse_push(&self, request: &Request<'_>) -> Result<Parsed, Refusal> {
        Self::check_endpoint(request)?;
        self.reader.read_hook(request.body)
    }

    fn parse_batch(&self, bytes: &[u8]) -> Result<Parsed, Refusal> {
        self.reader.read_batch(bytes)
    }

    fn pull(&self) -> Option<&dyn Pull> {
        self.pull.as_ref().map(|pull| pull as &dyn Pull)
    }
}
