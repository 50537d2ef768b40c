//! Okta's System Log: a source of observed changes (see [`crate::observe`]).
//!
//! Placeholder while the module is written: it builds, and refuses every
//! record, so no deployment can mistake it for a working source.

use serde::Deserialize;

use crate::observe::{Parsed, Source};
use crate::{Refusal, Request};

/// The `[[connectors]]` settings of a `okta` source.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaConfig {
    /// The connector's name.
    pub name: String,
    /// The largest accepted body.
    #[serde(default = "crate::config::default_max_body_bytes")]
    pub max_body_bytes: usize,
}

impl OktaConfig {
    /// Checks the settings and builds the source.
    pub fn build_source(&self) -> Result<Box<dyn Source>, String> {
        Err(format!(
            "the `okta` source is not available yet (connector `{}`)",
            self.name
        ))
    }
}

#[allow(dead_code)]
struct Unavailable;

impl Source for Unavailable {
    fn kind(&self) -> &'static str {
        "okta"
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
