//! The `--config` TOML file. Every setting has a default, so no file is
//! needed to start; an unknown key is an error rather than silently ignored,
//! because a misspelt security setting must not fall back to a default.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"      # address of the HTTP API
//! max_body_bytes = 1048576       # largest accepted request body
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
    /// Notification channels, routes and delivery settings.
    #[serde(default)]
    pub notify: crate::notify::NotifyConfig,
    /// Evidence: upload limit, blob store, link capture.
    #[serde(default)]
    pub evidence: crate::api_evidence::EvidenceConfig,
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
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|error| error.to_string())?;
        if config.server.max_body_bytes < 1024 {
            return Err("server.max_body_bytes must be at least 1024".to_string());
        }
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
        config.notify.routing(&config.policy)?;
        config.evidence.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
