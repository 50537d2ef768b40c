//! Export sinks: where `custody serve` pushes the ledger's events as they
//! are appended (`[[export.sinks]]` in the configuration).
//!
//! A [`Sink`] takes a batch of records already encoded by `custody-export`
//! and hands it to one receiver: an RFC 5424 syslog collector over TCP or
//! TLS (octet-counting framing, RFC 6587 / RFC 5425), a Splunk HTTP Event
//! Collector, a webhook signed like the notification webhooks, or a file
//! with size-based rotation. It says whether the batch was accepted; the
//! server's worker advances its cursor only then, and otherwise retries the
//! same events later, so a batch is delivered at least once. Every record
//! carries its event ID for the receiver to drop duplicates.
//!
//! What "accepted" means differs by kind, and bounds what at-least-once
//! can promise:
//!
//! | kind | accepted when |
//! |---|---|
//! | `hec`, `webhook` | the receiver answered HTTP 2xx to the batch |
//! | `file` | the bytes are written and (with `fsync = true`) on disk |
//! | `syslog` | the bytes are written to the connection (TCP has no receipt) |
//!
//! Syslog over TCP or TLS has no application-level acknowledgement: bytes a
//! collector took into its socket buffer and then lost (killed before it
//! read them) cannot be told apart from bytes it stored. The sink narrows
//! that window by checking, before each batch, that the collector has not
//! closed the connection (and reconnecting if it has), but it cannot close
//! it; use `hec` or `webhook` where a lost record is unacceptable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use reqwest::{Client, Url};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::http::{self, Target};
use crate::signature::{sign_webhook, DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::{Delivered, DeliveryError, Secret, MAX_TIMEOUT_SECONDS};

/// The header naming the export sink a webhook batch comes from.
pub const EXPORT_SINK_HEADER: &str = "Custody-Export-Sink";
/// The header giving a webhook batch's log indexes, `FIRST-LAST` (inclusive).
pub const EXPORT_RANGE_HEADER: &str = "Custody-Export-Range";
/// The path a `hec` sink posts to when its `url` gives none.
pub const HEC_EVENT_PATH: &str = "/services/collector/event";

/// How to reach one export sink, from one `[[export.sinks]]` table with a
/// `kind` key. Unknown keys are refused. Call [`Sink::connect`] (which
/// validates) before use.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// An RFC 5424 syslog collector over TCP or TLS.
    Syslog {
        /// The sink's name, unique in the configuration; it names the cursor.
        name: String,
        /// The export format; only `syslog` (the default) travels over syslog.
        #[serde(default)]
        format: Option<String>,
        /// The collector, `host:port`.
        address: String,
        /// `tls` (the default) or `tcp` (clear text).
        #[serde(default)]
        transport: SyslogTransport,
        /// PEM file of the certificate authorities to trust for `tls`; the
        /// system's roots when absent.
        #[serde(default)]
        ca_file: Option<PathBuf>,
        /// The name the collector's certificate must carry; the host part of
        /// `address` when absent.
        #[serde(default)]
        server_name: Option<String>,
        /// PEM certificate chain presented to a collector that asks for a
        /// client certificate (mutual TLS); with `client_key_file`.
        #[serde(default)]
        client_cert_file: Option<PathBuf>,
        /// PEM private key of `client_cert_file`.
        #[serde(default)]
        client_key_file: Option<PathBuf>,
        /// The bound on connecting and on writing one batch.
        #[serde(default = "default_timeout_seconds")]
        timeout_seconds: u64,
    },
    /// A Splunk HTTP Event Collector.
    Hec {
        /// The sink's name.
        name: String,
        /// The export format; `ocsf` unless set.
        #[serde(default)]
        format: Option<String>,
        /// The collector, `https://host:8088` (the sink posts to
        /// [`HEC_EVENT_PATH`]) or the full endpoint URL.
        url: String,
        /// The HEC token, sent as `Authorization: Splunk <token>`.
        token: Secret,
        /// The envelope's `source`.
        #[serde(default = "default_source")]
        source: String,
        /// The envelope's `sourcetype`; `custody:<format>` unless set.
        #[serde(default)]
        sourcetype: Option<String>,
        /// The envelope's `index`; the token's default index when absent.
        #[serde(default)]
        index: Option<String>,
        /// The envelope's `host`; this machine's host name when absent.
        #[serde(default)]
        host: Option<String>,
        /// The bound on one batch's request.
        #[serde(default = "default_timeout_seconds")]
        timeout_seconds: u64,
    },
    /// An HTTP(S) endpoint receiving batches signed like notification webhooks.
    Webhook {
        /// The sink's name.
        name: String,
        /// The export format; `jsonl` unless set.
        #[serde(default)]
        format: Option<String>,
        /// Where to POST. Redirects are never followed.
        url: String,
        /// The HMAC-SHA256 key of `Custody-Signature`.
        secret: Secret,
        /// The bound on one batch's request.
        #[serde(default = "default_timeout_seconds")]
        timeout_seconds: u64,
    },
    /// A local file, appended to and rotated by size.
    File {
        /// The sink's name.
        name: String,
        /// The export format; `jsonl` unless set.
        #[serde(default)]
        format: Option<String>,
        /// The file written; rotated files are `<path>.1` (newest) to `<path>.<keep>`.
        path: PathBuf,
        /// Rotate before a record would take the file past this size.
        #[serde(default = "default_max_bytes")]
        max_bytes: u64,
        /// How many rotated files to keep (1 to 1000); older ones are deleted.
        #[serde(default = "default_keep")]
        keep: u32,
        /// Whether each batch is flushed to disk before the cursor moves.
        #[serde(default = "default_fsync")]
        fsync: bool,
    },
}

/// How a syslog sink's connection is carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogTransport {
    /// TLS (RFC 5425), verified against `ca_file` or the system's roots.
    #[default]
    Tls,
    /// Clear-text TCP (RFC 6587).
    Tcp,
}

/// Why a sink's configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("export sink `{sink}`: {message}")]
pub struct SinkConfigError {
    /// The sink's name.
    pub sink: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// One record of a batch: its bytes as the format encoded them, and what
/// envelopes need beside them.
#[derive(Clone, Copy, Debug)]
pub struct SinkRecord<'a> {
    /// Its index in the log.
    pub log_index: u64,
    /// The event's ID, for receivers to drop duplicates.
    pub event_id: &'a str,
    /// The case it belongs to.
    pub case_id: &'a str,
    /// When it happened, in microseconds since the Unix epoch (HEC `time`).
    pub time_micros: i64,
    /// The encoded record: one line (a trailing newline is ignored).
    pub encoded: &'a [u8],
}

/// How a sink's records are shaped: whether each encoded record is a JSON
/// document (and carried as JSON by `hec` and labelled NDJSON by `webhook`)
/// or text (syslog, CEF).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordShape {
    /// One JSON document per record.
    Json,
    /// One line of text per record.
    Text,
}

/// A sink ready to send, built once from its configuration.
pub struct Sink {
    name: String,
    kind: &'static str,
    timeout: Duration,
    transport: Transport,
}

enum Transport {
    Syslog(SyslogSink),
    Hec(HecSink),
    Webhook(WebhookSink),
    File(FileSink),
}

fn default_timeout_seconds() -> u64 {
    10
}

fn default_source() -> String {
    "custody".to_string()
}

fn default_max_bytes() -> u64 {
    100 * 1024 * 1024
}

fn default_keep() -> u32 {
    5
}

fn default_fsync() -> bool {
    true
}

impl SinkConfig {
    /// The sink's name.
    pub fn name(&self) -> &str {
        match self {
            SinkConfig::Syslog { name, .. }
            | SinkConfig::Hec { name, .. }
            | SinkConfig::Webhook { name, .. }
            | SinkConfig::File { name, .. } => name,
        }
    }

    /// The kind as written in `kind = "..."`.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Syslog { .. } => "syslog",
            SinkConfig::Hec { .. } => "hec",
            SinkConfig::Webhook { .. } => "webhook",
            SinkConfig::File { .. } => "file",
        }
    }

    /// The export format's name: the configured one, or the kind's default
    /// (`syslog` for syslog, `ocsf` for hec, `jsonl` for webhook and file).
    pub fn format_name(&self) -> &str {
        let (configured, default) = match self {
            SinkConfig::Syslog { format, .. } => (format, "syslog"),
            SinkConfig::Hec { format, .. } => (format, "ocsf"),
            SinkConfig::Webhook { format, .. } | SinkConfig::File { format, .. } => {
                (format, "jsonl")
            }
        };
        configured.as_deref().unwrap_or(default)
    }

    /// The bound on sending one batch (files have none: a local write).
    pub fn timeout(&self) -> Option<Duration> {
        match self {
            SinkConfig::Syslog {
                timeout_seconds, ..
            }
            | SinkConfig::Hec {
                timeout_seconds, ..
            }
            | SinkConfig::Webhook {
                timeout_seconds, ..
            } => Some(Duration::from_secs(*timeout_seconds)),
            SinkConfig::File { .. } => None,
        }
    }

    /// Checks the settings themselves, touching neither the network nor
    /// the file system (so a configuration can be checked on another
    /// machine): the name, the address or URL, the secrets, the timeout,
    /// the rotation settings. [`SinkConfig::check_files`] checks the files
    /// it names. The format is the caller's to check.
    pub fn validate(&self) -> Result<(), SinkConfigError> {
        let name = self.name();
        let refuse = |message: String| SinkConfigError {
            sink: name.to_string(),
            message,
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
        {
            return Err(refuse(
                "the name must be 1 or more of A-Z a-z 0-9 - _ . (it names the sink's cursor in the database)"
                    .to_string(),
            ));
        }
        if let Some(timeout) = self.timeout() {
            if timeout.is_zero() || timeout.as_secs() > MAX_TIMEOUT_SECONDS {
                return Err(refuse(format!(
                    "timeout_seconds = {} is out of range; use 1 to {MAX_TIMEOUT_SECONDS}",
                    timeout.as_secs()
                )));
            }
        }
        match self {
            SinkConfig::Syslog {
                address,
                transport,
                server_name,
                client_cert_file,
                client_key_file,
                ..
            } => {
                let host = syslog_host(address).ok_or_else(|| {
                    refuse(format!(
                        "address `{address}` is not host:port (for example `siem.example.com:6514`)"
                    ))
                })?;
                if *transport == SyslogTransport::Tls {
                    let name = server_name.as_deref().unwrap_or(host);
                    rustls::pki_types::ServerName::try_from(name.to_string()).map_err(|_| {
                        refuse(format!(
                            "`{name}` is not a DNS name or IP address a certificate can be checked against; set server_name"
                        ))
                    })?;
                    if client_cert_file.is_some() != client_key_file.is_some() {
                        return Err(refuse(
                            "client_cert_file and client_key_file must be set together (or neither)"
                                .to_string(),
                        ));
                    }
                } else if server_name.is_some()
                    || client_cert_file.is_some()
                    || client_key_file.is_some()
                    || matches!(
                        self,
                        SinkConfig::Syslog {
                            ca_file: Some(_),
                            ..
                        }
                    )
                {
                    return Err(refuse(
                        "ca_file, server_name, client_cert_file and client_key_file apply to transport = \"tls\" only; remove them or use TLS"
                            .to_string(),
                    ));
                }
            }
            SinkConfig::Hec {
                url,
                token,
                source,
                sourcetype,
                index,
                host,
                ..
            } => {
                hec_url(name, url).map_err(refuse)?;
                if token.expose().trim().is_empty() {
                    return Err(refuse(
                        "token is empty; set the HEC token Splunk issued for this input"
                            .to_string(),
                    ));
                }
                if source.is_empty()
                    || host.as_deref().is_some_and(str::is_empty)
                    || sourcetype.as_deref().is_some_and(str::is_empty)
                    || index.as_deref().is_some_and(str::is_empty)
                {
                    return Err(refuse(
                        "source, sourcetype, index and host must not be empty; leave them out for the defaults"
                            .to_string(),
                    ));
                }
            }
            SinkConfig::Webhook { url, secret, .. } => {
                crate::config::parse_url(
                    "webhook",
                    name,
                    url,
                    &["http", "https"],
                    "http or https",
                    true,
                )
                .map_err(|error| refuse(error.to_string()))?;
                if secret.expose().is_empty() {
                    return Err(refuse(
                        "secret is empty; set a long random string and give the receiver the same one, which it checks Custody-Signature with"
                            .to_string(),
                    ));
                }
            }
            SinkConfig::File {
                path,
                max_bytes,
                keep,
                ..
            } => {
                if path.as_os_str().is_empty() || path.file_name().is_none() {
                    return Err(refuse("path must name a file".to_string()));
                }
                if *max_bytes < 4096 {
                    return Err(refuse(format!(
                        "max_bytes = {max_bytes} is too small; use at least 4096"
                    )));
                }
                if !(1..=1000).contains(keep) {
                    return Err(refuse(format!(
                        "keep = {keep} is out of range; use 1 to 1000"
                    )));
                }
            }
        }
        Ok(())
    }
}

impl SinkConfig {
    /// Checks the files the sink names, on this machine: that the TLS
    /// files of a syslog sink can be read and fit together, and that a file
    /// sink's directory exists. [`Sink::connect`] does it too; call it
    /// before anything else at start-up to fail before changing anything.
    pub fn check_files(&self) -> Result<(), SinkConfigError> {
        let refuse = |message: String| SinkConfigError {
            sink: self.name().to_string(),
            message,
        };
        match self {
            SinkConfig::Syslog {
                transport: SyslogTransport::Tls,
                ..
            } => tls_config(self).map(|_| ()).map_err(refuse),
            SinkConfig::File { path, .. } => {
                let directory = path
                    .parent()
                    .filter(|parent| !parent.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                if std::fs::metadata(directory).is_ok_and(|metadata| metadata.is_dir()) {
                    Ok(())
                } else {
                    Err(refuse(format!(
                        "the directory {} of path does not exist; create it first",
                        directory.display()
                    )))
                }
            }
            _ => Ok(()),
        }
    }
}

impl Sink {
    /// Validates the configuration, checks its files and builds the sink. Nothing is sent and
    /// no connection is opened (a syslog sink connects on its first batch),
    /// so a receiver that is down does not stop start-up.
    pub async fn connect(config: &SinkConfig) -> Result<Sink, SinkConfigError> {
        config.validate()?;
        config.check_files()?;
        let name = config.name().to_string();
        let refuse = |message: String| SinkConfigError {
            sink: name.clone(),
            message,
        };
        let timeout = config
            .timeout()
            .unwrap_or(Duration::from_secs(MAX_TIMEOUT_SECONDS));
        let transport = match config {
            SinkConfig::Syslog {
                address, transport, ..
            } => Transport::Syslog(SyslogSink {
                address: address.clone(),
                tls: match transport {
                    SyslogTransport::Tcp => None,
                    SyslogTransport::Tls => Some(tls_config(config).map_err(refuse)?),
                },
                connection: None,
            }),
            SinkConfig::Hec {
                url,
                token,
                source,
                sourcetype,
                index,
                host,
                ..
            } => Transport::Hec(HecSink {
                host: host.clone().unwrap_or_else(hostname_or_unknown),
                url: hec_url(&name, url).map_err(refuse)?,
                token: token.clone(),
                source: source.clone(),
                sourcetype: sourcetype
                    .clone()
                    .unwrap_or_else(|| format!("custody:{}", config.format_name())),
                index: index.clone(),
                client: http::client("hec sink", &name, timeout)
                    .map_err(|error| refuse(error.to_string()))?,
            }),
            SinkConfig::Webhook { url, secret, .. } => Transport::Webhook(WebhookSink {
                url: crate::config::parse_url(
                    "webhook",
                    &name,
                    url,
                    &["http", "https"],
                    "http or https",
                    true,
                )
                .map_err(|error| refuse(error.to_string()))?,
                secret: secret.clone(),
                client: http::client("webhook sink", &name, timeout)
                    .map_err(|error| refuse(error.to_string()))?,
            }),
            SinkConfig::File {
                path,
                max_bytes,
                keep,
                fsync,
                ..
            } => Transport::File(FileSink {
                path: path.clone(),
                max_bytes: *max_bytes,
                keep: *keep,
                fsync: *fsync,
            }),
        };
        Ok(Sink {
            name: config.name().to_string(),
            kind: config.kind(),
            timeout,
            transport,
        })
    }

    /// The sink's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `syslog`, `hec`, `webhook` or `file`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Sends one batch, in order, within the sink's timeout; `Ok` only when
    /// the whole batch was accepted (see the module documentation for what
    /// that means per kind). An error leaves the sink ready to try again.
    pub async fn send(
        &mut self,
        records: &[SinkRecord<'_>],
        shape: RecordShape,
    ) -> Result<Delivered, DeliveryError> {
        if records.is_empty() {
            return Ok(Delivered {
                status: None,
                detail: "nothing to send".to_string(),
            });
        }
        let name = self.name.clone();
        let kind = self.kind;
        let attempt = async {
            match &mut self.transport {
                Transport::Syslog(sink) => sink.send(&name, records).await,
                Transport::Hec(sink) => sink.send(&name, records, shape).await,
                Transport::Webhook(sink) => sink.send(&name, records, shape).await,
                Transport::File(sink) => sink.send(&name, records).await,
            }
        };
        let outcome = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => Err(DeliveryError::retryable(format!(
                "{kind} sink `{name}`: timed out: the batch was not accepted within {} s; will retry",
                self.timeout.as_secs()
            ))),
        };
        if outcome.is_err() {
            // A connection a batch failed on may hold half a frame: start over.
            if let Transport::Syslog(sink) = &mut self.transport {
                sink.connection = None;
            }
        }
        outcome
    }
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Sink")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// One encoded record without its line ending.
fn line<'a>(record: &SinkRecord<'a>) -> &'a [u8] {
    let encoded = record.encoded;
    let encoded = encoded.strip_suffix(b"\n").unwrap_or(encoded);
    encoded.strip_suffix(b"\r").unwrap_or(encoded)
}

// --- syslog ---------------------------------------------------------------

struct SyslogSink {
    address: String,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    connection: Option<SyslogConnection>,
}

enum SyslogConnection {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl SyslogConnection {
    fn socket(&self) -> &TcpStream {
        match self {
            SyslogConnection::Tcp(stream) => stream,
            SyslogConnection::Tls(stream) => stream.get_ref().0,
        }
    }

    /// Whether the collector is still there: it never sends anything, so
    /// any byte, end of stream or error on the socket means the connection
    /// is over (a collector that stopped, or a TLS close).
    fn is_open(&self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            self.socket().try_read(&mut byte),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock
        )
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            SyslogConnection::Tcp(stream) => {
                stream.write_all(bytes).await?;
                stream.flush().await
            }
            SyslogConnection::Tls(stream) => {
                stream.write_all(bytes).await?;
                stream.flush().await
            }
        }
    }
}

impl SyslogSink {
    async fn send(
        &mut self,
        name: &str,
        records: &[SinkRecord<'_>],
    ) -> Result<Delivered, DeliveryError> {
        let mut frames = Vec::new();
        for record in records {
            custody_export::syslog::frame_octet_counted(line(record), &mut frames);
        }
        if self
            .connection
            .as_ref()
            .is_some_and(|connection| !connection.is_open())
        {
            tracing::info!(sink = name, address = %self.address, "the syslog collector closed the connection; reconnecting");
            self.connection = None;
        }
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => self.open(name).await?,
        };
        connection.write_all(&frames).await.map_err(|error| {
            DeliveryError::retryable(format!(
                "syslog sink `{name}`: writing to {} failed: {error}; will reconnect and retry",
                self.address
            ))
        })?;
        self.connection = Some(connection);
        Ok(Delivered {
            status: None,
            detail: format!(
                "{} messages ({} bytes) written to {}",
                records.len(),
                frames.len(),
                self.address
            ),
        })
    }

    async fn open(&self, name: &str) -> Result<SyslogConnection, DeliveryError> {
        let stream = TcpStream::connect(&self.address).await.map_err(|error| {
            DeliveryError::retryable(format!(
                "syslog sink `{name}`: could not connect to {}: {error}; will retry",
                self.address
            ))
        })?;
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => Ok(SyslogConnection::Tcp(stream)),
            Some((config, server_name)) => {
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let stream = connector
                    .connect(server_name.clone(), stream)
                    .await
                    .map_err(|error| {
                        DeliveryError::retryable(format!(
                            "syslog sink `{name}`: TLS with {} failed: {}; check ca_file and server_name; will retry",
                            self.address,
                            crate::outcome::error_chain(&error)
                        ))
                    })?;
                Ok(SyslogConnection::Tls(Box::new(stream)))
            }
        }
    }
}

/// The host part of `host:port` (`[v6]:port` too), when the port is a number.
fn syslog_host(address: &str) -> Option<&str> {
    let (host, port) = address.rsplit_once(':')?;
    port.parse::<u16>().ok().filter(|port| *port != 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

/// The TLS client configuration of a syslog sink, and the name checked.
#[allow(clippy::type_complexity, reason = "a pair used in one place")]
fn tls_config(
    config: &SinkConfig,
) -> Result<
    (
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    ),
    String,
> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let SinkConfig::Syslog {
        address,
        ca_file,
        server_name,
        client_cert_file,
        client_key_file,
        ..
    } = config
    else {
        return Err("only syslog sinks use TLS settings".to_string());
    };
    http::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|error| {
                    format!(
                        "cannot read ca_file {}: {error}; give a PEM file of CA certificates",
                        path.display()
                    )
                })?;
            if certificates.is_empty() {
                return Err(format!(
                    "ca_file {} holds no PEM certificate",
                    path.display()
                ));
            }
            for certificate in certificates {
                roots.add(certificate).map_err(|error| {
                    format!(
                        "ca_file {}: a certificate is unusable: {error}",
                        path.display()
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "no ca_file is set and the system has no usable CA certificates; set ca_file"
                        .to_string(),
                );
            }
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let client = match (client_cert_file, client_key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|error| {
                    format!("cannot read client_cert_file {}: {error}", cert.display())
                })?;
            let private = PrivateKeyDer::from_pem_file(key).map_err(|error| {
                format!("cannot read client_key_file {}: {error}", key.display())
            })?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|error| format!("the client certificate and key do not fit: {error}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    let host =
        syslog_host(address).ok_or_else(|| format!("address `{address}` is not host:port"))?;
    let name = server_name.clone().unwrap_or_else(|| host.to_string());
    let name = ServerName::try_from(name.clone())
        .map_err(|_| format!("`{name}` is not a DNS name or IP address; set server_name"))?;
    Ok((Arc::new(client), name))
}

// --- HEC ------------------------------------------------------------------

struct HecSink {
    url: Url,
    token: Secret,
    source: String,
    sourcetype: String,
    index: Option<String>,
    host: String,
    client: Client,
}

/// The endpoint a `hec` sink posts to: `url` itself when it has a path,
/// else `url` + [`HEC_EVENT_PATH`].
fn hec_url(name: &str, url: &str) -> Result<Url, String> {
    let mut parsed =
        crate::config::parse_url("hec", name, url, &["http", "https"], "http or https", true)
            .map_err(|error| error.to_string())?;
    if parsed.path().is_empty() || parsed.path() == "/" {
        parsed.set_path(HEC_EVENT_PATH);
    }
    Ok(parsed)
}

impl HecSink {
    /// The HEC JSON event protocol: one envelope per record, concatenated
    /// (HEC's batch form), each
    /// `{"time", "host", "source", "sourcetype", "index"?, "fields", "event"}`.
    async fn send(
        &self,
        name: &str,
        records: &[SinkRecord<'_>],
        shape: RecordShape,
    ) -> Result<Delivered, DeliveryError> {
        let mut body = Vec::new();
        for record in records {
            body.extend_from_slice(&self.envelope(name, record, shape)?);
            body.push(b'\n');
        }
        let mut headers = HeaderMap::new();
        let authorization = HeaderValue::from_str(&format!("Splunk {}", self.token.expose()))
            .map_err(|_| {
                DeliveryError::permanent(format!(
                    "hec sink `{name}`: the token is not a valid HTTP header value"
                ))
            })?;
        headers.insert(AUTHORIZATION, authorization);
        let target = Target {
            kind: "hec sink",
            channel: name,
            url: &self.url,
        };
        http::post(&self.client, &target, "application/json", headers, body).await
    }

    fn envelope(
        &self,
        name: &str,
        record: &SinkRecord<'_>,
        shape: RecordShape,
    ) -> Result<Vec<u8>, DeliveryError> {
        let line = line(record);
        let event: Box<serde_json::value::RawValue> = match shape {
            RecordShape::Json => serde_json::from_slice::<&serde_json::value::RawValue>(line)
                .map(|raw| raw.to_owned())
                .map_err(|error| {
                    DeliveryError::permanent(format!(
                        "hec sink `{name}`: the record at log index {} is not JSON: {error}",
                        record.log_index
                    ))
                })?,
            RecordShape::Text => {
                let text = String::from_utf8_lossy(line);
                serde_json::value::to_raw_value(&text).map_err(|error| {
                    DeliveryError::permanent(format!("hec sink `{name}`: {error}"))
                })?
            }
        };
        // HEC's `time` is epoch seconds with a fraction; written from the
        // integer microseconds so that no float rounding moves it.
        let seconds = record.time_micros.div_euclid(1_000_000);
        let micros = record.time_micros.rem_euclid(1_000_000);
        let time = serde_json::value::RawValue::from_string(format!("{seconds}.{micros:06}"))
            .map_err(|error| DeliveryError::permanent(format!("hec sink `{name}`: {error}")))?;
        #[derive(serde::Serialize)]
        struct Envelope<'a> {
            time: &'a serde_json::value::RawValue,
            host: &'a str,
            source: &'a str,
            sourcetype: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            index: Option<&'a str>,
            fields: Fields<'a>,
            event: &'a serde_json::value::RawValue,
        }
        #[derive(serde::Serialize)]
        struct Fields<'a> {
            case_id: &'a str,
            event_id: &'a str,
            log_index: String,
        }
        serde_json::to_vec(&Envelope {
            time: &time,
            host: &self.host,
            source: &self.source,
            sourcetype: &self.sourcetype,
            index: self.index.as_deref(),
            fields: Fields {
                case_id: record.case_id,
                event_id: record.event_id,
                log_index: record.log_index.to_string(),
            },
            event: &event,
        })
        .map_err(|error| DeliveryError::permanent(format!("hec sink `{name}`: {error}")))
    }
}

/// This machine's host name, for HEC's `host`.
pub fn hostname_or_unknown() -> String {
    hostname::get()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

// --- webhook --------------------------------------------------------------

struct WebhookSink {
    url: Url,
    secret: Secret,
    client: Client,
}

impl WebhookSink {
    /// POSTs the batch, the encoded records one per line, signed like the
    /// notification webhooks (`Custody-Timestamp`, `Custody-Signature`).
    async fn send(
        &self,
        name: &str,
        records: &[SinkRecord<'_>],
        shape: RecordShape,
    ) -> Result<Delivered, DeliveryError> {
        let mut body = Vec::new();
        for record in records {
            body.extend_from_slice(line(record));
            body.push(b'\n');
        }
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or(0);
        let signature = sign_webhook(self.secret.expose().as_bytes(), timestamp, &body);
        let first = records.first().map_or(0, |record| record.log_index);
        let last = records.last().map_or(0, |record| record.log_index);
        let mut headers = HeaderMap::new();
        for (header, value) in [
            (DELIVERY_ID_HEADER, format!("export:{name}:{first}-{last}")),
            (EXPORT_SINK_HEADER, name.to_string()),
            (EXPORT_RANGE_HEADER, format!("{first}-{last}")),
            (TIMESTAMP_HEADER, timestamp.to_string()),
            (SIGNATURE_HEADER, signature),
        ] {
            let pair = HeaderName::from_bytes(header.as_bytes())
                .ok()
                .zip(HeaderValue::from_str(&value).ok())
                .ok_or_else(|| {
                    DeliveryError::permanent(format!(
                        "webhook sink `{name}`: {header}: `{}` is not a valid HTTP header value",
                        value.escape_debug()
                    ))
                })?;
            headers.insert(pair.0, pair.1);
        }
        let content_type = match shape {
            RecordShape::Json => "application/x-ndjson",
            RecordShape::Text => "text/plain; charset=utf-8",
        };
        let target = Target {
            kind: "webhook sink",
            channel: name,
            url: &self.url,
        };
        http::post(&self.client, &target, content_type, headers, body).await
    }
}

// --- file -----------------------------------------------------------------

struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    fsync: bool,
}

impl FileSink {
    /// Appends the records, one per line, rotating before a record would
    /// take the file past `max_bytes` (a record longer than that gets a
    /// file of its own), and syncs the file when `fsync` is set.
    async fn send(
        &self,
        name: &str,
        records: &[SinkRecord<'_>],
    ) -> Result<Delivered, DeliveryError> {
        let failed = |what: &str, path: &Path, error: std::io::Error| {
            DeliveryError::retryable(format!(
                "file sink `{name}`: {what} {} failed: {error}; will retry",
                path.display()
            ))
        };
        let open = || async {
            tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .await
                .map_err(|error| failed("opening", &self.path, error))
        };
        let mut file = open().await?;
        let mut size = file
            .metadata()
            .await
            .map_err(|error| failed("reading the size of", &self.path, error))?
            .len();
        let mut written = 0usize;
        let mut pending = Vec::new();
        for record in records {
            let length = u64::try_from(line(record).len().saturating_add(1)).unwrap_or(u64::MAX);
            if size > 0 && size.saturating_add(length) > self.max_bytes {
                file.write_all(&pending)
                    .await
                    .map_err(|error| failed("writing", &self.path, error))?;
                pending.clear();
                self.finish(&mut file, name).await?;
                drop(file);
                self.rotate(name).await?;
                file = open().await?;
                size = 0;
            }
            pending.extend_from_slice(line(record));
            pending.push(b'\n');
            size = size.saturating_add(length);
            written += 1;
        }
        file.write_all(&pending)
            .await
            .map_err(|error| failed("writing", &self.path, error))?;
        self.finish(&mut file, name).await?;
        Ok(Delivered {
            status: None,
            detail: format!("{written} records appended to {}", self.path.display()),
        })
    }

    async fn finish(&self, file: &mut tokio::fs::File, name: &str) -> Result<(), DeliveryError> {
        file.flush().await.map_err(|error| {
            DeliveryError::retryable(format!(
                "file sink `{name}`: writing {} failed: {error}; will retry",
                self.path.display()
            ))
        })?;
        if self.fsync {
            file.sync_data().await.map_err(|error| {
                DeliveryError::retryable(format!(
                    "file sink `{name}`: syncing {} to disk failed: {error}; will retry",
                    self.path.display()
                ))
            })?;
        }
        Ok(())
    }

    /// `<path>.<keep>` is deleted, `<path>.N` becomes `<path>.N+1`, and the
    /// file becomes `<path>.1`.
    async fn rotate(&self, name: &str) -> Result<(), DeliveryError> {
        let numbered = |number: u32| {
            let mut text = self.path.clone().into_os_string();
            text.push(format!(".{number}"));
            PathBuf::from(text)
        };
        let failed = |path: &Path, error: std::io::Error| {
            DeliveryError::retryable(format!(
                "file sink `{name}`: rotating {} failed: {error}; will retry",
                path.display()
            ))
        };
        let oldest = numbered(self.keep);
        match tokio::fs::remove_file(&oldest).await {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(failed(&oldest, error)),
        }
        for number in (1..self.keep).rev() {
            let from = numbered(number);
            match tokio::fs::rename(&from, numbered(number + 1)).await {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(failed(&from, error)),
            }
        }
        tokio::fs::rename(&self.path, numbered(1))
            .await
            .map_err(|error| failed(&self.path, error))?;
        if self.fsync {
            // The renames are durable once the directory is synced.
            if let Some(directory) = self
                .path
                .parent()
                .filter(|parent| !parent.as_os_str().is_empty())
            {
                if let Ok(handle) = tokio::fs::File::open(directory).await {
                    let _ = handle.sync_all().await;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SinkConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_and_refusals() {
        let sink = parse("kind = \"file\"\nname = \"f\"\npath = \"/tmp/x.log\"");
        assert_eq!(sink.format_name(), "jsonl");
        let SinkConfig::File {
            max_bytes,
            keep,
            fsync,
            ..
        } = &sink
        else {
            panic!("{sink:?}")
        };
        assert_eq!((*max_bytes, *keep, *fsync), (100 * 1024 * 1024, 5, true));
        sink.validate().unwrap();
        let hec =
            parse("kind = \"hec\"\nname = \"h\"\nurl = \"https://splunk:8088\"\ntoken = \"t\"");
        assert_eq!(hec.format_name(), "ocsf");
        assert_eq!(
            hec_url("h", "https://splunk:8088").unwrap().as_str(),
            "https://splunk:8088/services/collector/event"
        );
        assert_eq!(
            hec_url("h", "https://splunk:8088/custom/path")
                .unwrap()
                .as_str(),
            "https://splunk:8088/custom/path"
        );
        let syslog = parse(
            "kind = \"syslog\"\nname = \"s\"\naddress = \"127.0.0.1:514\"\ntransport = \"tcp\"",
        );
        assert_eq!(syslog.format_name(), "syslog");
        syslog.validate().unwrap();
        for (text, expected) in [
            ("kind = \"syslog\"\nname = \"s\"\naddress = \"nowhere\"\ntransport = \"tcp\"", "is not host:port"),
            ("kind = \"syslog\"\nname = \"s\"\naddress = \"h:1\"\ntransport = \"tcp\"\nca_file = \"/x\"", "apply to transport = \"tls\" only"),
            ("kind = \"hec\"\nname = \"h\"\nurl = \"https://s:8088\"\ntoken = \" \"", "token is empty"),
            ("kind = \"webhook\"\nname = \"w\"\nurl = \"ftp://s\"\nsecret = \"k\"", "scheme `ftp`"),
            ("kind = \"webhook\"\nname = \"w\"\nurl = \"https://s\"\nsecret = \"\"", "secret is empty"),
            ("kind = \"file\"\nname = \"f\"\npath = \"/tmp/x\"\nkeep = 0", "keep = 0"),
            ("kind = \"file\"\nname = \"f\"\npath = \"/tmp/x\"\nmax_bytes = 10", "max_bytes = 10"),
            ("kind = \"file\"\nname = \"a b\"\npath = \"/tmp/x\"", "the name must be"),
            ("kind = \"hec\"\nname = \"h\"\nurl = \"https://s\"\ntoken = \"t\"\ntimeout_seconds = 0", "timeout_seconds = 0"),
        ] {
            let error = parse(text).validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
        // Files are checked apart, on the machine that runs the sink.
        for (text, expected) in [
            (
                "kind = \"syslog\"\nname = \"s\"\naddress = \"h:1\"\nca_file = \"/nonexistent/ca.pem\"",
                "export sink `s`: cannot read ca_file /nonexistent/ca.pem",
            ),
            (
                "kind = \"file\"\nname = \"f\"\npath = \"/nonexistent/dir/x.log\"",
                "export sink `f`: the directory /nonexistent/dir of path does not exist",
            ),
        ] {
            let config = parse(text);
            config.validate().unwrap();
            let error = config.check_files().unwrap_err().to_string();
            assert!(error.starts_with(expected), "{text}: {error}");
        }
        assert!(toml::from_str::<SinkConfig>(
            "kind = \"file\"\nname = \"f\"\npath = \"/x\"\nmax_size = 1"
        )
        .is_err());
    }
}
