//! What the fuzz targets share: the log key the signed seeds were made with,
//! one configured instance of every connector and source, and the framing
//! that turns fuzzer bytes into an HTTP request.
//!
//! The targets are in `fuzz_targets/`, one per parser of outside input; the
//! table in `docs/fuzzing.md` says which parser each covers.

use std::sync::OnceLock;

use custody_connect::config::ConnectorConfig;
use custody_connect::observe::Source;
use custody_connect::{Connector, Headers};
use custody_log::VerifierKey;

/// The verifier key of the deployment `fuzz/seeds/generate.sh` made the
/// signed seeds with (checkpoints, case proofs, bundles): the targets
/// trust it, so a seed passes the signature check and the mutations reach
/// the code behind it.
pub const LOG_VKEY: &str = include_str!("../corpus/log.vkey");

/// The connectors' settings: every kind, with the secrets of the crate's
/// own unit tests.
pub const CONNECTORS_TOML: &str = include_str!("../connectors.toml");

/// Unix seconds the connectors' signature checks take as now.
pub const NOW_UNIX: u64 = 1_796_032_960;

/// [`LOG_VKEY`], parsed.
pub fn trusted_keys() -> &'static [VerifierKey] {
    static KEYS: OnceLock<Vec<VerifierKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        vec![VerifierKey::parse(LOG_VKEY.trim()).expect("fuzz/corpus/log.vkey is a verifier key")]
    })
}

#[derive(serde::Deserialize)]
struct ConnectorsFile {
    connectors: Vec<ConnectorConfig>,
}

fn configs() -> &'static [ConnectorConfig] {
    static CONFIGS: OnceLock<Vec<ConnectorConfig>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        toml::from_str::<ConnectorsFile>(CONNECTORS_TOML)
            .expect("fuzz/connectors.toml parses")
            .connectors
    })
}

/// One connector of actions per kind (Jira, ServiceNow, Slack, Teams).
pub fn action_connectors() -> &'static [Box<dyn Connector>] {
    static BUILT: OnceLock<Vec<Box<dyn Connector>>> = OnceLock::new();
    BUILT.get_or_init(|| {
        configs()
            .iter()
            .filter(|config| !config.is_source())
            .map(|config| {
                config
                    .build()
                    .expect("the fuzz connector settings are valid")
            })
            .collect()
    })
}

/// One source of observed changes per kind (Okta, CloudTrail, Entra ID,
/// GitHub, Vault, Kubernetes).
pub fn sources() -> &'static [Box<dyn Source>] {
    static BUILT: OnceLock<Vec<Box<dyn Source>>> = OnceLock::new();
    BUILT.get_or_init(|| {
        configs()
            .iter()
            .filter(|config| config.is_source())
            .map(|config| {
                config
                    .build_source()
                    .expect("the fuzz source settings are valid")
            })
            .collect()
    })
}

/// The first byte (a selector: which type, connector or mode) and the rest.
pub fn split_selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(first, rest)| (*first, rest))
}

/// An HTTP request in the fuzzer's framing: the endpoint on the first line,
/// then `name: value` header lines, an empty line, and the body (the same
/// shape as an HTTP/1.1 request, so seeds are readable and libFuzzer's
/// mutations of one header stay in that header).
pub struct FuzzRequest<'a> {
    /// The endpoint (the path after `/v1/connectors/NAME/`).
    pub endpoint: String,
    /// The headers.
    pub headers: Headers,
    /// The body.
    pub body: &'a [u8],
}

impl<'a> FuzzRequest<'a> {
    /// Splits `data` as the type documentation says; input without the empty
    /// line is all body.
    pub fn parse(data: &'a [u8]) -> FuzzRequest<'a> {
        let (head, body) = match data.windows(2).position(|pair| pair == b"\n\n") {
            Some(at) => (&data[..at], &data[at + 2..]),
            None => (&[][..], data),
        };
        let head = String::from_utf8_lossy(head);
        let mut lines = head.split('\n');
        let endpoint = lines.next().unwrap_or_default().to_string();
        let headers = Headers::new(lines.filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_string(), value.trim().as_bytes().to_vec()))
        }));
        FuzzRequest {
            endpoint,
            headers,
            body,
        }
    }

    /// The request a connector reads.
    pub fn request(&self, tls: bool) -> custody_connect::Request<'_> {
        custody_connect::Request {
            endpoint: &self.endpoint,
            headers: &self.headers,
            body: self.body,
            tls,
        }
    }
}
