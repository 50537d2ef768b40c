//! The `[[connectors]]` entries of the `--config` file, one per connector:
//!
//! ```toml
//! [[connectors]]
//! name = "jira"               # the connector's name: /v1/connectors/jira/..., via = connector:jira
//! kind = "jira"               # jira | servicenow | slack | teams | okta | cloudtrail | entra | github | vault | kubernetes
//! secret = "..."              # what the source signs with (each kind documents its own settings)
//! ```
//!
//! Every kind's settings are its own struct, with unknown keys refused (a
//! misspelt security setting must not fall back to a default).

use serde::Deserialize;

use crate::Connector;

/// One configured connector.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "read once at start-up; each kind's settings are as large as they need to be"
)]
pub enum ConnectorConfig {
    /// Jira Cloud (webhooks in, REST v3 out). Boxed: its field mapping
    /// makes it several times the size of the other variants.
    Jira(Box<crate::jira::JiraConfig>),
    /// ServiceNow (outbound REST messages in, Table API out).
    Servicenow(crate::servicenow::ServiceNowConfig),
    /// Slack (slash command and Block Kit buttons in, Web API out).
    Slack(crate::slack::SlackConfig),
    /// Microsoft Teams (outgoing webhook commands in, answer cards out).
    Teams(crate::teams::TeamsConfig),
    /// Okta's System Log (event hooks in, `/api/v1/logs` polled): a source
    /// of observed changes ([`crate::observe::Source`]).
    Okta(crate::okta::OktaConfig),
    /// AWS CloudTrail (log files read from S3, EventBridge events pushed).
    Cloudtrail(crate::cloudtrail::CloudTrailConfig),
    /// Microsoft Entra ID (Microsoft Graph `directoryAudits`).
    Entra(crate::entra::EntraConfig),
    /// GitHub's organization audit log (webhooks in, REST polled).
    Github(crate::github::GithubConfig),
    /// HashiCorp Vault's audit device (JSON lines from a file or a socket).
    Vault(crate::vault::VaultConfig),
    /// The Kubernetes API server's audit events (webhook backend or log file).
    Kubernetes(crate::kubernetes::KubernetesConfig),
}

/// Runs `$body` with `$config` bound to the settings of whichever source
/// kind `$self` is, or evaluates `$otherwise` for a connector kind.
macro_rules! each_source {
    ($self:expr, $config:ident => $body:expr, _ => $otherwise:expr) => {
        match $self {
            ConnectorConfig::Okta($config) => $body,
            ConnectorConfig::Cloudtrail($config) => $body,
            ConnectorConfig::Entra($config) => $body,
            ConnectorConfig::Github($config) => $body,
            ConnectorConfig::Vault($config) => $body,
            ConnectorConfig::Kubernetes($config) => $body,
            _ => $otherwise,
        }
    };
}

impl ConnectorConfig {
    /// The connector's name.
    pub fn name(&self) -> &str {
        each_source!(self, config => &config.name, _ => match self {
            ConnectorConfig::Jira(config) => &config.name,
            ConnectorConfig::Servicenow(config) => &config.name,
            ConnectorConfig::Slack(config) => &config.name,
            ConnectorConfig::Teams(config) => &config.name,
            _ => unreachable!("every source kind is matched above"),
        })
    }

    /// The kind as written in `kind = "..."`.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorConfig::Jira(_) => "jira",
            ConnectorConfig::Servicenow(_) => "servicenow",
            ConnectorConfig::Slack(_) => "slack",
            ConnectorConfig::Teams(_) => "teams",
            ConnectorConfig::Okta(_) => "okta",
            ConnectorConfig::Cloudtrail(_) => "cloudtrail",
            ConnectorConfig::Entra(_) => "entra",
            ConnectorConfig::Github(_) => "github",
            ConnectorConfig::Vault(_) => "vault",
            ConnectorConfig::Kubernetes(_) => "kubernetes",
        }
    }

    /// Whether the entry is a source of observed changes (Okta, CloudTrail,
    /// ...) rather than a connector of actions (Jira, Slack, ...).
    pub fn is_source(&self) -> bool {
        each_source!(self, _config => true, _ => false)
    }

    /// Checks the settings and builds the connector, or says what is wrong
    /// (a source kind is built with [`ConnectorConfig::build_source`]).
    pub fn build(&self) -> Result<Box<dyn Connector>, String> {
        match self {
            ConnectorConfig::Jira(config) => config.build(),
            ConnectorConfig::Servicenow(config) => config.build(),
            ConnectorConfig::Slack(config) => config.build(),
            ConnectorConfig::Teams(config) => config.build(),
            _ => Err(format!(
                "connector `{}` is a source of observed changes, not a connector of actions",
                self.name()
            )),
        }
    }

    /// Checks a source's settings and builds it, or says what is wrong.
    pub fn build_source(&self) -> Result<Box<dyn crate::observe::Source>, String> {
        each_source!(self, config => config.build_source(), _ => Err(format!(
            "connector `{}` is a connector of actions, not a source of observed changes",
            self.name()
        )))
    }

    /// Seconds a signed request stays acceptable (the replay window).
    pub fn window_seconds(&self) -> u64 {
        match self {
            ConnectorConfig::Jira(config) => config.window_seconds,
            ConnectorConfig::Servicenow(config) => config.window_seconds,
            ConnectorConfig::Slack(config) => config.window_seconds,
            ConnectorConfig::Teams(config) => config.window_seconds,
            _ => default_window_seconds(),
        }
    }

    /// The largest accepted body, refused before any MAC.
    pub fn max_body_bytes(&self) -> usize {
        each_source!(self, config => config.max_body_bytes, _ => match self {
            ConnectorConfig::Jira(config) => config.max_body_bytes,
            ConnectorConfig::Servicenow(config) => config.max_body_bytes,
            ConnectorConfig::Slack(config) => config.max_body_bytes,
            ConnectorConfig::Teams(config) => config.max_body_bytes,
            _ => unreachable!("every source kind is matched above"),
        })
    }
}

/// The default replay window: five minutes, Slack's documented limit.
pub fn default_window_seconds() -> u64 {
    300
}

/// The default body limit.
pub fn default_max_body_bytes() -> usize {
    crate::limits::DEFAULT_MAX_BODY_BYTES
}

/// A secret from the configuration: never printed.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself; keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Secret(<redacted>)")
    }
}
