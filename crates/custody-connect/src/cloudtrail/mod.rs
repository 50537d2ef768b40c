//! AWS CloudTrail: a source of observed changes (see [`crate::observe`]).
//!
//! CloudTrail reaches Custody two ways, both read here, IO-free:
//!
//! - **log files** a trail delivers to an S3 bucket (`{"Records": [...]}`,
//!   gzipped), which the server lists and reads after a cursor
//!   (`custody-server/src/observe/s3.rs`, with [`S3Settings`] and the key
//!   helpers of [`keys`]) and `custody ingest` takes as a file
//!   ([`Source::parse_batch`], gzipped or not);
//! - **EventBridge events** (`"detail-type": "AWS API Call via
//!   CloudTrail"`, the CloudTrail record in `detail`) pushed to
//!   `/v1/connectors/{name}/events` by an EventBridge API destination whose
//!   connection uses API key authorization: the header it sends is compared
//!   with the configured secret in constant time.
//!
//! Each record is read by [`record`]: which API calls are access changes,
//! and how each maps onto a Custody [`custody_core::model::Change`], is the
//! table in that module (and in docs/observations/cloudtrail.md). A record's
//! external ID is its `eventID`, the same in a log file and in an
//! EventBridge event, so a record seen both ways by one connector is
//! recorded once.

pub mod keys;
pub mod record;

use std::io::Read;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::{default_max_body_bytes, Secret};
use crate::observe::{Parsed, Source};
use crate::{Refusal, Request};

/// The `[[connectors]]` settings of a `cloudtrail` source.
///
/// ```toml
/// [[connectors]]
/// name = "aws-prod"
/// kind = "cloudtrail"
/// # EventBridge pushes (API destination, API key authorization):
/// header = "x-api-key"          # the connection's API key name
/// secret = "..."                # its value
/// # S3 log files:
/// bucket = "org-trail-logs"
/// prefix = "AWSLogs/o-abc123/111122223333/CloudTrail/eu-west-1/"
/// region = "eu-west-1"
/// access_key_id = "AKIA..."
/// secret_access_key = "..."
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudTrailConfig {
    /// The connector's name.
    pub name: String,
    /// The largest accepted pushed body.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// The header an EventBridge connection's API key authorization sends
    /// (its "API key name"). Default `x-api-key`.
    #[serde(default = "default_header")]
    pub header: String,
    /// The API key's value. Without it, pushes are refused.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The bucket the trail delivers its log files to. Without it, no log
    /// file is read.
    #[serde(default)]
    pub bucket: Option<String>,
    /// The key prefix of one account and region's log files
    /// (`AWSLogs/<account>/CloudTrail/<region>/`, or with an organization
    /// trail `AWSLogs/<org ID>/<account>/CloudTrail/<region>/`): keys are
    /// read in lexicographic order, which is time order within one such
    /// folder only.
    #[serde(default)]
    pub prefix: String,
    /// The bucket's region, what requests are signed for. Default `us-east-1`.
    #[serde(default = "default_region")]
    pub region: String,
    /// The S3 endpoint; default `https://s3.<region>.amazonaws.com` (set it
    /// for an S3-compatible store or a test server).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`). Default: `true` with
    /// an `endpoint`, `false` (virtual-hosted) with AWS's.
    #[serde(default)]
    pub path_style: Option<bool>,
    /// The access key ID that reads the bucket (`s3:ListBucket` and
    /// `s3:GetObject` on the prefix).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Its secret.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// Seconds between listings once every file is read. Default 60.
    #[serde(default = "default_poll_interval_seconds")]
    pub poll_interval_seconds: u64,
    /// How long after the minute a file's name says it was delivered it is
    /// read (files delivered in the same minute may land out of key order).
    /// Default 300.
    #[serde(default = "default_settle_seconds")]
    pub settle_seconds: u64,
    /// The key to start after on the very first listing (no cursor yet);
    /// default: the beginning of the prefix.
    #[serde(default)]
    pub start_after: Option<String>,
    /// The largest log file read, after decompression. Default 256 MiB.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: usize,
}

/// The S3 side of a CloudTrail source, resolved and checked: what the
/// server's log-file reader needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Settings {
    /// `https://s3.<region>.amazonaws.com` or the configured endpoint.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The key prefix (may be empty).
    pub prefix: String,
    /// The region requests are signed for.
    pub region: String,
    /// Path-style addressing.
    pub path_style: bool,
    /// The access key ID.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: Secret,
    /// Seconds between listings once every file is read.
    pub poll_interval_seconds: u64,
    /// See [`CloudTrailConfig::settle_seconds`].
    pub settle_seconds: u64,
    /// See [`CloudTrailConfig::start_after`].
    pub start_after: Option<String>,
    /// The largest log file read, after decompression.
    pub max_file_bytes: usize,
}

fn default_header() -> String {
    "x-api-key".to_string()
}

fn default_region() -> String {
    "us-east-1".to_string()
}

fn default_poll_interval_seconds() -> u64 {
    60
}

fn default_settle_seconds() -> u64 {
    300
}

fn default_max_file_bytes() -> usize {
    256 * 1024 * 1024
}

impl CloudTrailConfig {
    /// Checks the settings and builds the source.
    pub fn build_source(&self) -> Result<Box<dyn Source>, String> {
        if self.secret.is_none() && self.bucket.is_none() {
            return Err(format!(
                "connector `{}` reads nothing: set `secret` (EventBridge pushes), `bucket` (S3 log files), or both",
                self.name
            ));
        }
        if self.header.is_empty()
            || !self
                .header
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        {
            return Err(format!(
                "connector `{}`: `header` must be a header name (letters, digits, `-`, `_`), not `{}`",
                self.name,
                custody_core::text::escape(&self.header)
            ));
        }
        if self
            .secret
            .as_ref()
            .is_some_and(|secret| secret.expose().len() < 16)
        {
            return Err(format!(
                "connector `{}`: `secret` must be at least 16 characters (a random API key)",
                self.name
            ));
        }
        if !(1..=1024 * 1024 * 1024).contains(&self.max_file_bytes) {
            return Err(format!(
                "connector `{}`: `max_file_bytes` must be between 1 and 1073741824",
                self.name
            ));
        }
        self.s3_settings()?;
        Ok(Box::new(CloudTrailSource {
            header: self.header.to_ascii_lowercase(),
            secret: self.secret.clone(),
            max_file_bytes: self.max_file_bytes,
        }))
    }

    /// The S3 settings, when a bucket is configured; an error names what
    /// is missing or wrong.
    pub fn s3_settings(&self) -> Result<Option<S3Settings>, String> {
        let Some(bucket) = &self.bucket else {
            return Ok(None);
        };
        let name = &self.name;
        let access_key_id = self
            .access_key_id
            .clone()
            .filter(|key| !key.trim().is_empty())
            .ok_or_else(|| {
                format!("connector `{name}` reads bucket `{bucket}`: set `access_key_id` and `secret_access_key`")
            })?;
        let secret_access_key = self
            .secret_access_key
            .clone()
            .filter(|secret| !secret.expose().is_empty())
            .ok_or_else(|| {
                format!("connector `{name}` reads bucket `{bucket}`: set `secret_access_key`")
            })?;
        if self.poll_interval_seconds == 0 {
            return Err(format!(
                "connector `{name}`: `poll_interval_seconds` must be at least 1"
            ));
        }
        if let Some(start) = &self.start_after {
            if !start.starts_with(&self.prefix) {
                return Err(format!(
                    "connector `{name}`: `start_after` must be a key under `prefix` (`{}`)",
                    custody_core::text::escape(&self.prefix)
                ));
            }
        }
        Ok(Some(S3Settings {
            endpoint: self
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", self.region)),
            bucket: bucket.clone(),
            prefix: self.prefix.clone(),
            region: self.region.clone(),
            path_style: self.path_style.unwrap_or(self.endpoint.is_some()),
            access_key_id,
            secret_access_key,
            poll_interval_seconds: self.poll_interval_seconds,
            settle_seconds: self.settle_seconds,
            start_after: self.start_after.clone(),
            max_file_bytes: self.max_file_bytes,
        }))
    }
}

/// The endpoint EventBridge pushes to: `/v1/connectors/{name}/events`.
pub const PUSH_ENDPOINT: &str = "events";

/// The `detail-type` of the EventBridge events that carry a CloudTrail
/// record of an API call.
pub const API_CALL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

struct CloudTrailSource {
    /// Lower-cased.
    header: String,
    secret: Option<Secret>,
    max_file_bytes: usize,
}

impl Source for CloudTrailSource {
    fn kind(&self) -> &'static str {
        "cloudtrail"
    }

    fn authenticate(&self, request: &Request<'_>) -> Result<(), Refusal> {
        let Some(secret) = &self.secret else {
            return Err(Refusal::Unauthenticated(
                "this CloudTrail source takes no pushes: no `secret` is configured".into(),
            ));
        };
        if request.headers.repeated(&self.header) {
            return Err(Refusal::Unauthenticated(format!(
                "the {} header is sent more than once",
                self.header
            )));
        }
        crate::observe::verify_shared_secret(
            secret,
            request.headers.get(&self.header),
            &self.header,
        )
    }

    fn parse_push(&self, request: &Request<'_>) -> Result<Parsed, Refusal> {
        if request.endpoint != PUSH_ENDPOINT {
            return Err(Refusal::Malformed(format!(
                "a CloudTrail source takes EventBridge events at /v1/connectors/{{name}}/{PUSH_ENDPOINT}, not at `{}`",
                custody_core::text::escape(request.endpoint)
            )));
        }
        parse_events(request.body)
    }

    fn parse_batch(&self, bytes: &[u8]) -> Result<Parsed, Refusal> {
        let json = gunzip_if_gzipped(bytes, self.max_file_bytes)?;
        parse_any(&json)
    }
}

/// Parses a log file (`{"Records": [...]}`), or EventBridge events (one
/// object or an array): what `custody ingest` reads, after
/// [`gunzip_if_gzipped`].
pub fn parse_any(json: &[u8]) -> Result<Parsed, Refusal> {
    if starts_an_array(json) {
        return parse_events(json);
    }
    let top: Top<'_> = serde_json::from_slice(json).map_err(|error| {
        Refusal::Malformed(format!(
            "not a CloudTrail log file (`{{\"Records\": [...]}}`) or an EventBridge event: {error}"
        ))
    })?;
    match top.records {
        Some(records) => read_records(&records),
        None => one_event(top, json),
    }
}

/// Parses one CloudTrail log file's JSON (`{"Records": [...]}`).
pub fn parse_log_file(json: &[u8]) -> Result<Parsed, Refusal> {
    let top: Top<'_> = serde_json::from_slice(json).map_err(|error| {
        Refusal::Malformed(format!(
            "not a CloudTrail log file (a JSON object with `Records`): {error}"
        ))
    })?;
    let Some(records) = top.records else {
        return Err(Refusal::Malformed(
            "not a CloudTrail log file: the object has no `Records`".into(),
        ));
    };
    read_records(&records)
}

/// Parses EventBridge events: one event object, or an array of them.
pub fn parse_events(json: &[u8]) -> Result<Parsed, Refusal> {
    if !starts_an_array(json) {
        let top: Top<'_> = serde_json::from_slice(json).map_err(|error| {
            Refusal::Malformed(format!("not an EventBridge event (a JSON object): {error}"))
        })?;
        return one_event(top, json);
    }
    let events: Vec<&RawValue> = serde_json::from_slice(json).map_err(|error| {
        Refusal::Malformed(format!("not an array of EventBridge events: {error}"))
    })?;
    let mut parsed = Parsed::default();
    for (index, raw) in events.iter().enumerate() {
        let top: Top<'_> = serde_json::from_str(raw.get()).map_err(|error| {
            Refusal::Malformed(format!("event {index}: not an EventBridge event: {error}"))
        })?;
        let one = one_event(top, raw.get().as_bytes()).map_err(|refusal| match refusal {
            Refusal::Malformed(message) => Refusal::Malformed(format!("event {index}: {message}")),
            other => other,
        })?;
        parsed.observations.extend(one.observations);
        parsed.skipped += one.skipped;
    }
    Ok(parsed)
}

/// The top level of what CloudTrail sends: a log file's `Records`, or an
/// EventBridge event's `detail-type` and `detail`. Other fields are ignored.
#[derive(Deserialize)]
struct Top<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Option<Vec<&'a RawValue>>,
    #[serde(rename = "detail-type", borrow, default)]
    detail_type: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    detail: Option<&'a RawValue>,
}

fn starts_an_array(json: &[u8]) -> bool {
    json.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[')
}

fn read_records(records: &[&RawValue]) -> Result<Parsed, Refusal> {
    let mut parsed = Parsed::default();
    for (index, raw) in records.iter().enumerate() {
        let text = raw.get();
        let record: record::Record<'_> = serde_json::from_str(text).map_err(|error| {
            Refusal::Malformed(format!("record {index} of the log file: {error}"))
        })?;
        match record::read(&record, text.as_bytes())? {
            Some(observation) => parsed.observations.push(observation),
            None => parsed.skipped += 1,
        }
    }
    Ok(parsed)
}

/// Reads one EventBridge event (`raw`, as sent); skipped when it is not an
/// access change (another `detail-type`, a read, a failed call).
fn one_event(event: Top<'_>, raw: &[u8]) -> Result<Parsed, Refusal> {
    let mut parsed = Parsed::default();
    let Some(detail_type) = event.detail_type else {
        return Err(Refusal::Malformed(
            "not an EventBridge event: it has no `detail-type`".into(),
        ));
    };
    if detail_type != API_CALL_DETAIL_TYPE {
        // A console sign-in, a service event: no API call, no access change.
        parsed.skipped = 1;
        return Ok(parsed);
    }
    let Some(detail) = event.detail else {
        return Err(Refusal::Malformed(
            "an EventBridge event of a CloudTrail API call has no `detail`".into(),
        ));
    };
    let record: record::Record<'_> = serde_json::from_str(detail.get()).map_err(|error| {
        Refusal::Malformed(format!(
            "the `detail` of an EventBridge event is not a CloudTrail record: {error}"
        ))
    })?;
    // The raw record is the event as EventBridge sent it.
    match record::read(&record, raw)? {
        Some(observation) => parsed.observations.push(observation),
        None => parsed.skipped = 1,
    }
    Ok(parsed)
}

/// The gzip magic number (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// `bytes` decompressed when they are gzip (CloudTrail's `.json.gz`), as
/// they are otherwise; refused past `limit` bytes decompressed (a small
/// file may inflate to gigabytes).
pub fn gunzip_if_gzipped(
    bytes: &[u8],
    limit: usize,
) -> Result<std::borrow::Cow<'_, [u8]>, Refusal> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        if bytes.len() > limit {
            return Err(Refusal::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    let mut decoder = flate2::read::MultiGzDecoder::new(bytes)
        .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1));
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(8).min(limit));
    decoder
        .read_to_end(&mut out)
        .map_err(|error| Refusal::Malformed(format!("the gzip stream is damaged: {error}")))?;
    if out.len() > limit {
        return Err(Refusal::TooLarge {
            size: out.len(),
            limit,
        });
    }
    Ok(std::borrow::Cow::Owned(out))
}

#[cfg(test)]
mod tests;
