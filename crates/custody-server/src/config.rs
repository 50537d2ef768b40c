//! The `--config` TOML file. Every setting has a default, so no file is
//! needed to start; an unknown key is an error rather than silently ignored,
//! because a misspelt security setting must not fall back to a default.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"      # address of the HTTP API
//! max_body_bytes = 1048576       # largest accepted request body
//! header_read_timeout_seconds = 15  # a whole request header must arrive within this
//! request_timeout_seconds = 120     # a request must be read and answered within this
//! max_connections = 512             # concurrent connections; more are answered 503
//! shutdown_grace_seconds = 10       # on SIGTERM, requests in progress get this long
//!
//! [log]
//! checkpoint_interval_seconds = 5   # sign a checkpoint this often while the log grows
//! checkpoints_dir = "/mnt/worm/custody"   # optional: also write every checkpoint here
//! ```

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP server.
    #[serde(default)]
    pub server: ServerConfig,
    /// The Merkle log.
    #[serde(default)]
    pub log: LogConfig,
    /// The approval policy: `[[policy.rules]]`, first match wins.
    #[serde(default)]
    pub policy: custody_core::policy::Policy,
    /// The workflow's timers.
    #[serde(default)]
    pub workflow: WorkflowConfig,
    /// The continuous monitor (`docs/monitor.md`).
    #[serde(default)]
    pub monitor: MonitorConfig,
    /// Notification channels, routes and delivery settings.
    #[serde(default)]
    pub notify: crate::delivery::NotifyConfig,
    /// Evidence: upload limit, blob store, link capture.
    #[serde(default)]
    pub evidence: crate::api::evidence::EvidenceConfig,
    /// Continuous export: the push sinks (`[[export.sinks]]`).
    #[serde(default)]
    pub export: crate::push::ExportConfig,
    /// The connectors (`[[connectors]]`): ITSM and chat systems whose
    /// signed requests become ledger events, and which the ledger writes
    /// back to (`docs/connectors.md`).
    #[serde(default)]
    pub connectors: Vec<custody_connect::config::ConnectorConfig>,
    /// The witnesses every new checkpoint is sent to (`[[witnesses]]`,
    /// `docs/witness.md`).
    #[serde(default)]
    pub witnesses: Vec<crate::witness::WitnessConfig>,
    /// Single sign-on with OpenID Connect (`[oidc]`, `docs/oidc.md`).
    #[serde(default)]
    pub oidc: Option<crate::oidc::OidcConfig>,
    /// The web console (`docs/console.md`).
    #[serde(default)]
    pub console: ConsoleConfig,
}

/// The `[console]` section: the web console's sessions and cookies.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// A session unused this long is over (60 to 86400 seconds).
    #[serde(default = "default_console_idle_timeout_seconds")]
    pub idle_timeout_seconds: u64,
    /// A session is over this long after sign-in, however active (300 to
    /// 604800 seconds, and not shorter than the idle timeout).
    #[serde(default = "default_console_lifetime_seconds")]
    pub lifetime_seconds: u64,
    /// Mark the session cookie `Secure` and name it with the `__Host-`
    /// prefix. Set it when a TLS-terminating proxy serves the console over
    /// HTTPS; a server serving TLS itself sets it regardless.
    #[serde(default)]
    pub secure_cookies: bool,
}

fn default_console_idle_timeout_seconds() -> u64 {
    30 * 60
}

fn default_console_lifetime_seconds() -> u64 {
    8 * 3600
}

impl Default for ConsoleConfig {
    fn default() -> ConsoleConfig {
        ConsoleConfig {
            idle_timeout_seconds: default_console_idle_timeout_seconds(),
            lifetime_seconds: default_console_lifetime_seconds(),
            secure_cookies: false,
        }
    }
}

impl ConsoleConfig {
    fn validate(&self) -> Result<(), String> {
        if !(60..=86_400).contains(&self.idle_timeout_seconds) {
            return Err("console.idle_timeout_seconds must be between 60 and 86400".to_string());
        }
        if !(300..=604_800).contains(&self.lifetime_seconds) {
            return Err("console.lifetime_seconds must be between 300 and 604800".to_string());
        }
        if self.lifetime_seconds < self.idle_timeout_seconds {
            return Err(
                "console.lifetime_seconds must not be shorter than console.idle_timeout_seconds"
                    .to_string(),
            );
        }
        Ok(())
    }
}

/// The `[workflow]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowConfig {
    /// Seconds between scans for overdue obligations (1 to 3600).
    #[serde(default = "default_scan_interval_seconds")]
    pub scan_interval_seconds: u64,
}

fn default_scan_interval_seconds() -> u64 {
    10
}

impl Default for WorkflowConfig {
    fn default() -> WorkflowConfig {
        WorkflowConfig {
            scan_interval_seconds: default_scan_interval_seconds(),
        }
    }
}

/// The `[monitor]` section: the continuous monitor (`docs/monitor.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// Seconds between scans, at the server's clock (0 disables the
    /// monitor; at most 86400).
    #[serde(default = "default_monitor_interval_seconds")]
    pub interval_seconds: u64,
}

fn default_monitor_interval_seconds() -> u64 {
    60
}

impl Default for MonitorConfig {
    fn default() -> MonitorConfig {
        MonitorConfig {
            interval_seconds: default_monitor_interval_seconds(),
        }
    }
}

/// The `[log]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Seconds between checkpoints while the log grows (1 to 3600).
    #[serde(default = "default_checkpoint_interval_seconds")]
    pub checkpoint_interval_seconds: u64,
    /// A directory (ideally on other storage than the database, such as a
    /// mounted write-once bucket) where every signed checkpoint is also
    /// written as a file of its own, beside the data directory's
    /// `checkpoints` file.
    #[serde(default)]
    pub checkpoints_dir: Option<std::path::PathBuf>,
}

fn default_checkpoint_interval_seconds() -> u64 {
    5
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            checkpoint_interval_seconds: default_checkpoint_interval_seconds(),
            checkpoints_dir: None,
        }
    }
}

/// The `[server]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP API; `--listen` overrides it.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Seconds a client has to send a whole request header (1 to 3600); an
    /// idle keep-alive connection is closed after it too.
    #[serde(default = "default_header_read_timeout_seconds")]
    pub header_read_timeout_seconds: u64,
    /// Seconds a request has, from its header, to be read and answered (1 to 86400).
    #[serde(default = "default_request_timeout_seconds")]
    pub request_timeout_seconds: u64,
    /// Most connections open at once (1 to 65536); more are answered `503`.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds requests in progress get to finish after SIGTERM (0 to 3600).
    #[serde(default = "default_shutdown_grace_seconds")]
    pub shutdown_grace_seconds: u64,
    /// PEM certificate chain to serve HTTPS with (`--tls-cert` overrides
    /// it); needs `tls_key`. Without both, the server speaks plain HTTP.
    #[serde(default)]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `tls_cert` (`--tls-key` overrides it).
    #[serde(default)]
    pub tls_key: Option<std::path::PathBuf>,
}

fn default_header_read_timeout_seconds() -> u64 {
    15
}

fn default_request_timeout_seconds() -> u64 {
    120
}

fn default_max_connections() -> usize {
    512
}

fn default_shutdown_grace_seconds() -> u64 {
    10
}

impl ServerConfig {
    /// The limits the connection loop enforces.
    pub fn connection_limits(&self) -> crate::connections::ConnectionLimits {
        crate::connections::ConnectionLimits {
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_seconds),
            request_timeout: std::time::Duration::from_secs(self.request_timeout_seconds),
            max_connections: self.max_connections,
            shutdown_grace: std::time::Duration::from_secs(self.shutdown_grace_seconds),
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.max_body_bytes < 1024 {
            return Err("server.max_body_bytes must be at least 1024".to_string());
        }
        if !(1..=3600).contains(&self.header_read_timeout_seconds) {
            return Err(
                "server.header_read_timeout_seconds must be between 1 and 3600".to_string(),
            );
        }
        if !(1..=86_400).contains(&self.request_timeout_seconds) {
            return Err("server.request_timeout_seconds must be between 1 and 86400".to_string());
        }
        if !(1..=65_536).contains(&self.max_connections) {
            return Err("server.max_connections must be between 1 and 65536".to_string());
        }
        if self.shutdown_grace_seconds > 3600 {
            return Err("server.shutdown_grace_seconds must be at most 3600".to_string());
        }
        Ok(())
    }
}

/// Why the configuration file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid for this version of Custody.
    #[error("config file {path} is invalid: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with its location.
        message: String,
    },
}

/// The default API address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

fn default_listen() -> SocketAddr {
    // Safe: a constant, valid socket address.
    DEFAULT_LISTEN
        .parse()
        .expect("the default listen address is valid")
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: default_listen(),
            max_body_bytes: default_max_body_bytes(),
            header_read_timeout_seconds: default_header_read_timeout_seconds(),
            request_timeout_seconds: default_request_timeout_seconds(),
            max_connections: default_max_connections(),
            shutdown_grace_seconds: default_shutdown_grace_seconds(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses configuration text.
    ///
    /// A TOML error names its line, column and key, never the text of the
    /// line or the value: the file holds secrets (passwords in URLs, SMTP
    /// passwords, signing secrets), and errors end up in logs.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config =
            toml::from_str(text).map_err(|error| describe_toml_error(text, &error))?;
        config.server.validate()?;
        if !(1..=3600).contains(&config.log.checkpoint_interval_seconds) {
            return Err("log.checkpoint_interval_seconds must be between 1 and 3600".to_string());
        }
        config
            .policy
            .validate()
            .map_err(|error| error.to_string())?;
        if !(1..=3600).contains(&config.workflow.scan_interval_seconds) {
            return Err("workflow.scan_interval_seconds must be between 1 and 3600".to_string());
        }
        if config.monitor.interval_seconds > 86_400 {
            return Err("monitor.interval_seconds must be between 0 (off) and 86400\nhint: the monitor scans every interval at the server's clock; 60 is the default".to_string());
        }
        let connectors = crate::connectors::Connectors::build(&config.connectors)?;
        config.notify.routing(&config.policy, &connectors.links())?;
        config.evidence.validate()?;
        config.export.validate()?;
        crate::witness::targets(&config.witnesses)?;
        if let Some(oidc) = &config.oidc {
            oidc.validate()?;
        }
        config.console.validate()?;
        Ok(config)
    }
}

/// Where a TOML error is (line, column, key) and what it is, without the
/// offending line's text or any value from the file.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = without_values(error.message());
    let Some(span) = error.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    let column = before[line_start..].chars().count() + 1;
    match key_at(text, line) {
        Some(key) => format!("line {line}, column {column}, key `{key}`: {message}"),
        None => format!("line {line}, column {column}: {message}"),
    }
}

/// The dotted name of the key set on 1-based `line` (with the table it is
/// in), or of the table a header on that line opens.
fn key_at(text: &str, line: usize) -> Option<String> {
    let is_key = |key: &str| {
        !key.is_empty()
            && key.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '"' | '\'')
            })
    };
    let mut table = String::new();
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with('[') {
            let name = trimmed
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .trim();
            table = if is_key(name) {
                name.to_string()
            } else {
                String::new()
            };
            if index + 1 == line {
                return (!table.is_empty()).then(|| table.clone());
            }
            continue;
        }
        if index + 1 == line {
            let key = trimmed.split_once('=')?.0.trim();
            if !is_key(key) {
                return None;
            }
            return Some(if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            });
        }
    }
    None
}

/// A TOML or serde error message without the values it quotes (`invalid
/// type: string "hunter2", expected u64` becomes `invalid type: string,
/// expected u64`), on one line. Key names (`unknown field `x``) stay.
fn without_values(message: &str) -> String {
    let message = message.trim().replace('\n', "; ");
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (unexpected, expected) = match rest.find(", expected") {
                Some(at) => rest.split_at(at),
                None => (rest, ""),
            };
            let kind = unexpected
                .split(['"', '`', '\''])
                .next()
                .unwrap_or_default()
                .trim();
            return format!("{prefix}{kind}{expected}");
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let expected = rest.split_once('`').map_or("", |(_, after)| after);
        return format!("unknown variant{expected}");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_name_line_column_and_key_but_never_the_text() {
        let secret = "hunter2-s3cret";
        let cases = [
            // A syntax error: an unterminated string.
            format!("[server]\nlisten = \"127.0.0.1:9\"\n\n[[notify.channels]]\ntype = \"nats\"\nname = \"bus\"\nurl = \"nats://u:{secret}@h:4222\n"),
            // A syntax error: a bare value.
            format!("[log]\ncheckpoint_interval_seconds = {secret}\n"),
            // A type error: a string where a number belongs.
            format!("[server]\nmax_body_bytes = \"{secret}\"\n"),
            // An unknown variant.
            format!("[[notify.channels]]\ntype = \"{secret}\"\nname = \"x\"\n"),
            // Two values on one line.
            format!("[server]\nlisten = \"127.0.0.1:9\" {secret} = 1\n"),
        ];
        for text in &cases {
            let error = Config::parse(text).unwrap_err();
            assert!(
                !error.contains("hunter2"),
                "the error echoes the value: {error}"
            );
            assert!(error.contains("line "), "no line: {error}");
            assert!(error.contains("column "), "no column: {error}");
        }
        let error = Config::parse(&cases[0]).unwrap_err();
        assert!(
            error.starts_with("line 7, column 38, key `notify.channels.url`: "),
            "{error}"
        );
        let error = Config::parse(&cases[2]).unwrap_err();
        assert!(
            error.starts_with(
                "line 2, column 18, key `server.max_body_bytes`: invalid type: string, expected"
            ),
            "{error}"
        );
        let error = Config::parse(&cases[3]).unwrap_err();
        assert!(error.contains("key `notify.channels.type`"), "{error}");
    }

    #[test]
    fn a_connector_is_a_channel_routes_may_name_and_the_linked_audience_is_not_routed() {
        let teams = "[[connectors]]\nname = \"teams\"\nkind = \"teams\"\nsecret = \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0\"\n";
        let webhook = |name: &str| {
            format!(
                "[[notify.channels]]\ntype = \"webhook\"\nname = \"{name}\"\nurl = \"https://hooks.example.com/x\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n"
            )
        };
        // A route may name the connector as its channel.
        let routed = format!(
            "{}[notify.routes]\napprovers = [\"teams:19:abc\"]\n{teams}",
            webhook("hook")
        );
        Config::parse(&routed).unwrap();
        // A connector and a channel may not share a name.
        let clash = format!("{}{teams}", webhook("teams"));
        let error = Config::parse(&clash).unwrap_err();
        assert!(error.contains("both named `teams`"), "{error}");
        // The linked audience follows from the connectors.
        let linked = format!(
            "{}[notify.routes]\nlinked = [\"hook\"]\n{teams}",
            webhook("hook")
        );
        let error = Config::parse(&linked).unwrap_err();
        assert!(error.contains("notify.routes.linked"), "{error}");
        // A connector's settings are checked at start-up.
        let unknown = format!("{teams}colour = \"blue\"\n");
        assert!(Config::parse(&unknown).is_err());
        let named = teams.replace("name = \"teams\"", "name = \"te:ams\"");
        assert!(Config::parse(&named).is_err());
    }

    #[test]
    fn the_monitor_scans_every_minute_unless_told_otherwise() {
        assert_eq!(Config::parse("").unwrap().monitor.interval_seconds, 60);
        let off = Config::parse("[monitor]\ninterval_seconds = 0").unwrap();
        assert_eq!(off.monitor.interval_seconds, 0);
        let error = Config::parse("[monitor]\ninterval_seconds = 86401").unwrap_err();
        assert!(error.contains("monitor.interval_seconds"), "{error}");
        assert!(Config::parse("[monitor]\nevery = 5").is_err());
    }

    #[test]
    fn empty_file_gives_defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.server.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.server.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::parse("[server]\nlisten = \"127.0.0.1:9\"\nmax_body_bytes = 4096").is_ok());
        let error = Config::parse("[server]\nlisten_address = \"x\"").unwrap_err();
        assert!(error.contains("listen_address"), "{error}");
        assert!(Config::parse("[server]\nlisten = \"nowhere\"").is_err());
        assert!(Config::parse("[server]\nmax_body_bytes = 10").is_err());
        assert!(Config::parse("[polcy]\n").is_err());
        assert_eq!(
            Config::parse("[log]\ncheckpoint_interval_seconds = 2")
                .unwrap()
                .log
                .checkpoint_interval_seconds,
            2
        );
        assert!(Config::parse("[log]\ncheckpoint_interval_seconds = 0").is_err());
    }

    #[test]
    fn connection_limits_have_documented_defaults_and_bounds() {
        let server = Config::parse("").unwrap().server;
        assert_eq!(server.header_read_timeout_seconds, 15);
        assert_eq!(server.request_timeout_seconds, 120);
        assert_eq!(server.max_connections, 512);
        assert_eq!(server.shutdown_grace_seconds, 10);
        let set = Config::parse(
            "[server]\nheader_read_timeout_seconds = 2\nrequest_timeout_seconds = 3\nmax_connections = 4\nshutdown_grace_seconds = 0",
        )
        .unwrap()
        .server
        .connection_limits();
        assert_eq!(set.header_read_timeout.as_secs(), 2);
        assert_eq!(set.request_timeout.as_secs(), 3);
        assert_eq!(set.max_connections, 4);
        assert_eq!(set.shutdown_grace.as_secs(), 0);
        for (bad, named) in [
            (
                "header_read_timeout_seconds = 0",
                "header_read_timeout_seconds",
            ),
            ("request_timeout_seconds = 0", "request_timeout_seconds"),
            ("max_connections = 0", "max_connections"),
            ("shutdown_grace_seconds = 3601", "shutdown_grace_seconds"),
        ] {
            let error = Config::parse(&format!("[server]\n{bad}")).unwrap_err();
            assert!(error.contains(named), "{bad}: {error}");
        }
    }
}
