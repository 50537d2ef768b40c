//! The Jira connector (being built: see issue 13).

use serde::Deserialize;

use crate::config::{default_max_body_bytes, default_window_seconds, Secret};
use crate::Connector;

/// The settings of a `kind = "jira"` connector.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    /// The connector's name.
    pub name: String,
    /// What the source signs with.
    pub secret: Secret,
    /// Seconds a signed request stays acceptable.
    #[serde(default = "default_window_seconds")]
    pub window_seconds: u64,
    /// The largest accepted body.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

impl JiraConfig {
    /// Checks the settings and builds the connector.
    pub fn build(&self) -> Result<Box<dyn Connector>, String> {
        Err(format!(
            "connector `{}`: the jira connector is not built yet",
            self.name
        ))
    }
}
