//! Kubernetes API server audit events (placeholder while written).

use serde::Deserialize;

/// The `[[connectors]]` settings of a `kubernetes` source.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The connector's name.
    pub name: String,
    /// The largest accepted body.
    #[serde(default = "crate::config::default_max_body_bytes")]
    pub max_body_bytes: usize,
}

impl KubernetesConfig {
    /// Checks the settings and builds the source.
    pub fn build_source(&self) -> Result<Box<dyn crate::observe::Source>, String> {
        Err(format!(
            "the `kubernetes` source is not available yet (connector `{}`)",
            self.name
        ))
    }
}
