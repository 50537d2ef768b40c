//! HashiCorp Vault's audit device: a source of observed changes (see [`crate::observe`]).
//!
//! Placeholder while the module is written: it builds, and refuses every
//! record, so no deployment can mistake it for a working source.

use serde::Deserialize;

use crate::observe::{Parsed, Source};
use crate::{Refusal, Request};

/// The `[[connectors]]` settings of a `vault` source.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// The connector's name.
    pub name: String,
    /// The largest accepted body.
    #[serde(default = "crate::config::default_max_body_bytes")]
    pub max_body_bytes: usize,
}

impl VaultConfig {
    /// Checks the settings and builds the source.
    pub fn build_source(&self) -> Result<Box<dyn Source>, String> {
        Err(format!(
            "the `vault` source is not available yet (connector `{}`)",
            self.name
        ))
    }
}

#[allow(dead_code)]
struct Unavailable;

impl Source for Unavailable {
    fn kind(&self) -> &'static str {
        "vault"
    }
    fn authenticate(&self, _request: &Request<'_>) -> Result<(), Refusal> {
        Err(Refusal::Unauthenticated("not available".into()))
    }
    fn parse_push(&self, _request: &Request<'_>) -> Result<Parsed, Refusal> {
        Err(Refusal::Malformed("not available".into()))
    }
    fn parse_batch(&self, _bytes: &[u8]) -> Result<Parsed, Refusal> {
        Err(Refusal::Malformed("not available".into()))
    }
}
