//! Microsoft Entra ID's directory audit log: a source of observed changes
//! (see [`crate::observe`]).
//!
//! Entra ID records every change to its directory as a `directoryAudit`,
//! which Microsoft Graph lists at `GET /v1.0/auditLogs/directoryAudits`
//! (`{"value": [directoryAudit, ...], "@odata.nextLink": ...}`). Custody
//! reads them from batch files (`custody ingest`: that answer, or a bare
//! array of directoryAudits) and, when configured, by polling Graph
//! ([`pull`]). Entra ID has no push Custody can take: every push is
//! refused.
//!
//! What is read ([`audit`] has the details, docs/observations/entra.md the
//! user's view):
//!
//! | `activityDisplayName` | subject | change | entitlement |
//! |---|---|---|---|
//! | `Add member to role` (and PIM's `Add member to role ...`) / `Remove member from role ...` | the member | grant / revoke | `role:<role template ID>` |
//! | `Add member to group` / `Remove member from group` | the member | grant / revoke | `group:<group object ID>` |
//! | `Update application – Certificates and secrets management` | `service_account:<application object ID>` | create / delete, per key | `client_secret`, `certificate` |
//! | `Add service principal credentials` / `Remove service principal credentials` | `service_account:<service principal object ID>` | create / delete, per key | `client_secret`, `certificate` |
//!
//! Every other activity, and every record whose `result` is not `success`,
//! is counted as skipped.

mod audit;
mod pull;

#[cfg(test)]
mod tests;

use serde::Deserialize;

use crate::config::{default_max_body_bytes, Secret};
use crate::observe::{Parsed, Pull, Source};
use crate::{Refusal, Request};

/// The default Microsoft Graph endpoint (the global cloud).
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com";

/// The most records Graph returns in one page of `directoryAudits`.
pub const MAX_PAGE_SIZE: u32 = 999;

/// The longest look-back: Entra ID keeps audit logs for 30 days (with a
/// P1 or P2 licence; 7 days without).
pub const MAX_LOOKBACK_SECONDS: u64 = 30 * 24 * 3600;

/// The settings of a `kind = "entra"` source.
///
/// ```toml
/// [[connectors]]
/// name = "entra"
/// kind = "entra"
/// subject_ids = "login"            # or "id"
/// resource = "entra"               # default: none
/// # Polling Microsoft Graph (optional):
/// bearer_token = "eyJ0eXAi..."     # a token with AuditLog.Read.All
/// graph_url = "https://graph.microsoft.com"
/// interval_seconds = 300
/// lookback_seconds = 3600
/// overlap_seconds = 900
/// page_size = 999
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntraConfig {
    /// The connector's name.
    pub name: String,
    /// The largest accepted body.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How users are named in subjects: by their user principal name
    /// (`login`) or by their object ID (`id`).
    #[serde(default)]
    pub subject_ids: SubjectIds,
    /// The resource every change of this tenant is recorded on (none by
    /// default).
    #[serde(default)]
    pub resource: Option<String>,
    /// Microsoft Graph's base URL, for polling (a national cloud's, or a
    /// local fake's).
    #[serde(default)]
    pub graph_url: Option<String>,
    /// A bearer token for Microsoft Graph with `AuditLog.Read.All`, for
    /// polling.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// Whether to poll (default: when `bearer_token` is set).
    #[serde(default)]
    pub poll: Option<bool>,
    /// Seconds between polls once the log is read to its end.
    #[serde(default = "default_interval_seconds")]
    pub interval_seconds: u64,
    /// How far back the first poll starts, in seconds.
    #[serde(default = "default_lookback_seconds")]
    pub lookback_seconds: u64,
    /// How far before the newest record read each later poll starts again:
    /// Entra ID publishes records minutes late and not in order, and a
    /// record read twice is recorded once.
    #[serde(default = "default_overlap_seconds")]
    pub overlap_seconds: u64,
    /// Records per page (Graph's `$top`).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

/// How users are named in subjects.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SubjectIds {
    /// By their user principal name (`alice@contoso.com`).
    #[default]
    Login,
    /// By their object ID.
    Id,
}

fn default_interval_seconds() -> u64 {
    300
}

fn default_lookback_seconds() -> u64 {
    3600
}

fn default_overlap_seconds() -> u64 {
    900
}

fn default_page_size() -> u32 {
    MAX_PAGE_SIZE
}

impl EntraConfig {
    /// Checks the settings and builds the source.
    pub fn build_source(&self) -> Result<Box<dyn Source>, String> {
        self.source()
            .map(|source| Box::new(source) as Box<dyn Source>)
    }

    /// Checks the settings and builds the source, as its own type.
    pub fn source(&self) -> Result<EntraSource, String> {
        let problem = |what: String| format!("connector `{}` (entra): {what}", self.name);
        let resource = match &self.resource {
            Some(resource) => Some(
                custody_core::model::validate_name("resource", resource)
                    .map_err(|error| problem(format!("`resource`: {error}")))?,
            ),
            None => None,
        };
        let reader = audit::Reader {
            subject_ids: self.subject_ids,
            resource,
        };
        let poll = self.poll.unwrap_or(self.bearer_token.is_some());
        let pull = if poll {
            let graph_url =
                pull::check_graph_url(self.graph_url.as_deref().unwrap_or(DEFAULT_GRAPH_URL))
                    .map_err(problem)?;
            let Some(token) = &self.bearer_token else {
                return Err(problem(
                    "polling needs `bearer_token`, a Microsoft Graph token with AuditLog.Read.All; set it, or `poll = false`".into(),
                ));
            };
            let token = token.expose().trim();
            if token.is_empty() || token.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(problem(
                    "`bearer_token` is empty or holds spaces or control characters".into(),
                ));
            }
            if self.interval_seconds == 0 {
                return Err(problem("`interval_seconds` must be more than zero".into()));
            }
            if !(1..=MAX_LOOKBACK_SECONDS).contains(&self.lookback_seconds) {
                return Err(problem(format!(
                    "`lookback_seconds` must be between 1 and {MAX_LOOKBACK_SECONDS} (Entra ID keeps audit logs for 30 days)"
                )));
            }
            if self.overlap_seconds > MAX_LOOKBACK_SECONDS {
                return Err(problem(format!(
                    "`overlap_seconds` must be at most {MAX_LOOKBACK_SECONDS}"
                )));
            }
            if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
                return Err(problem(format!(
                    "`page_size` must be between 1 and {MAX_PAGE_SIZE}"
                )));
            }
            Some(pull::AuditPoller {
                graph_url,
                authorization: Secret::new(format!("Bearer {token}")),
                interval_seconds: self.interval_seconds,
                lookback_seconds: self.lookback_seconds,
                overlap_seconds: self.overlap_seconds,
                page_size: self.page_size,
                reader: reader.clone(),
            })
        } else {
            None
        };
        Ok(EntraSource { reader, pull })
    }
}

/// The Entra ID source, built from a checked [`EntraConfig`].
#[derive(Debug)]
pub struct EntraSource {
    reader: audit::Reader,
    pull: Option<pull::AuditPoller>,
}

impl Source for EntraSource {
    fn kind(&self) -> &'static str {
        "entra"
    }

    fn authenticate(&self, _request: &Request<'_>) -> Result<(), Refusal> {
        Err(Refusal::Unauthenticated(
            "the entra source takes no pushes: ingest Graph's directoryAudits with `custody ingest`, or let Custody poll Graph (`bearer_token`)".into(),
        ))
    }

    fn parse_push(&self, _request: &Request<'_>) -> Result<Parsed, Refusal> {
        Err(Refusal::Malformed(
            "the entra source takes no pushes".into(),
        ))
    }

    fn parse_batch(&self, bytes: &[u8]) -> Result<Parsed, Refusal> {
        self.reader.read_batch(bytes)
    }

    fn pull(&self) -> Option<&dyn Pull> {
        self.pull.as_ref().map(|pull| pull as &dyn Pull)
    }
}
