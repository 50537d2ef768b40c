//! Continuous export: the workers that push the ledger's events to the
//! sinks of `[[export.sinks]]` (syslog, Splunk HEC, webhook, file) as they
//! are appended.
//!
//! Each sink has one cursor in the ledger database (`export_cursors`): the
//! log index of the first event it has not been sent. A node's worker for a
//! sink pushes only while it holds the sink's lease there, and moves the
//! cursor only from the value it read, after the sink accepted the batch:
//!
//! 1. take or renew the lease (answered with the cursor);
//! 2. read the events from the cursor (at most `batch_size`), in log order;
//! 3. encode each with its case's roles as of that event (`CaseRoles`,
//!    seeded from the case's earlier events when they are not held);
//! 4. send the batch; on success advance the cursor past it (and renew the
//!    lease), on failure keep the cursor and wait (capped exponential
//!    backoff), so the same events go again, in the same order.
//!
//! So the push is at least once: a node that dies between the sink's
//! acceptance and the cursor's move, or a send that outlives its lease,
//! sends a batch twice; every record carries its event ID for the receiver
//! to drop the duplicate. Nodes on one PostgreSQL never push one batch at
//! the same time while leases hold (`lease_seconds` is longer than any
//! sink's timeout), so in normal operation each event is pushed once.

use std::collections::HashSet;
use std::time::Duration;

use custody_core::event::Event;
use custody_core::time::SharedClock;
use custody_core::Timestamp;
use custody_export::{CaseRoles, Encoder, Format, Record};
use custody_notify::sink::{RecordShape, Sink, SinkConfig, SinkRecord};
use custody_store::{ExportCursorOperation, Store};
use serde::Deserialize;

/// The `[export]` section: the push sinks and how they are driven.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// The sinks, `[[export.sinks]]`; none by default.
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    /// Most events sent in one batch (1 to 10000).
    #[serde(default = "default_batch_size")]
    pub batch_size: u64,
    /// Milliseconds between looks for new events once a sink is caught up
    /// (10 to 60000).
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Seconds a node holds a sink's lease after each renewal; longer than
    /// every sink's `timeout_seconds` (and at most 3600).
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
    /// First wait after a failed batch, in milliseconds (doubled after each
    /// further failure).
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// Longest wait between attempts while a sink is down, in milliseconds.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// The host name syslog messages name as their origin; this machine's
    /// when absent.
    #[serde(default)]
    pub host: Option<String>,
}

fn default_batch_size() -> u64 {
    500
}

fn default_poll_interval_ms() -> u64 {
    1000
}

fn default_lease_seconds() -> u64 {
    30
}

fn default_backoff_initial_ms() -> u64 {
    500
}

fn default_backoff_max_ms() -> u64 {
    60_000
}

/// How many cases' roles a worker keeps in memory; a case it does not hold
/// is seeded again from the store, so this bounds memory, not correctness.
const ROLES_CACHE_CASES: usize = 4096;

impl Default for ExportConfig {
    fn default() -> ExportConfig {
        ExportConfig {
            sinks: Vec::new(),
            batch_size: default_batch_size(),
            poll_interval_ms: default_poll_interval_ms(),
            lease_seconds: default_lease_seconds(),
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            host: None,
        }
    }
}

impl ExportConfig {
    /// Checks every setting and every sink (names unique, formats known and
    /// fit for the kind), without the network or the file system.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=10_000).contains(&self.batch_size) {
            return Err("export.batch_size must be between 1 and 10000".to_string());
        }
        if !(10..=60_000).contains(&self.poll_interval_ms) {
            return Err("export.poll_interval_ms must be between 10 and 60000".to_string());
        }
        if self.backoff_initial_ms == 0 || self.backoff_max_ms < self.backoff_initial_ms {
            return Err(
                "export.backoff_initial_ms must be above 0 and at most export.backoff_max_ms"
                    .to_string(),
            );
        }
        if self.backoff_max_ms > 3_600_000 {
            return Err("export.backoff_max_ms must be at most 3600000 (an hour)".to_string());
        }
        if self.host.as_deref().is_some_and(str::is_empty) {
            return Err("export.host is empty; leave it out for this machine's name".to_string());
        }
        let mut names = HashSet::new();
        for sink in &self.sinks {
            sink.validate().map_err(|error| error.to_string())?;
            if !names.insert(sink.name()) {
                return Err(format!(
                    "two export sinks are named `{}`; sink names must be unique (each names a cursor)",
                    sink.name()
                ));
            }
            sink_format(sink)?;
        }
        let longest_timeout = self
            .sinks
            .iter()
            .filter_map(SinkConfig::timeout)
            .map(|timeout| timeout.as_secs())
            .max()
            .unwrap_or(0);
        if self.lease_seconds <= longest_timeout || self.lease_seconds > 3600 {
            return Err(format!(
                "export.lease_seconds ({}) must be longer than the longest sink timeout ({longest_timeout}s) and at most 3600, or a slow batch could be pushed by two nodes at once",
                self.lease_seconds
            ));
        }
        Ok(())
    }
}

impl ExportConfig {
    /// Checks the files the sinks name (TLS certificates and keys, a file
    /// sink's directory) on this machine; `custody serve` does it before it
    /// changes anything. [`ExportConfig::validate`] touches no file.
    pub fn check_files(&self) -> Result<(), String> {
        for sink in &self.sinks {
            sink.check_files().map_err(|error| error.to_string())?;
        }
        Ok(())
    }
}

/// A sink's export format, checked against what its kind can carry.
fn sink_format(sink: &SinkConfig) -> Result<Format, String> {
    let format: Format = sink
        .format_name()
        .parse()
        .map_err(|error| format!("export sink `{}`: format: {error}", sink.name()))?;
    if matches!(sink, SinkConfig::Syslog { .. }) && format != Format::Syslog {
        return Err(format!(
            "export sink `{}`: a syslog sink sends RFC 5424 messages, so its format must be `syslog`, not `{format}`",
            sink.name()
        ));
    }
    Ok(format)
}

/// Whether a format's records are JSON documents.
fn shape(format: Format) -> RecordShape {
    match format {
        Format::Syslog | Format::Cef => RecordShape::Text,
        Format::Ocsf | Format::Ecs | Format::CloudEvents | Format::Jsonl => RecordShape::Json,
    }
}

/// The push workers of one node, one per sink.
pub struct Pushers {
    store: Store,
    owner: String,
    names: Vec<String>,
    /// Built by [`Pushers::prepare`], moved into tasks by [`Pushers::start`].
    workers: Vec<Pusher>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    clock: SharedClock,
}

impl Pushers {
    /// Builds every sink, refusing a configuration that cannot work (its
    /// files included), and nothing more: no task runs and nothing is
    /// written until [`Pushers::start`]. Leases and lag are judged by `clock`.
    pub async fn prepare(
        store: Store,
        config: &ExportConfig,
        clock: SharedClock,
    ) -> Result<Pushers, String> {
        config.validate()?;
        let host = config
            .host
            .clone()
            .unwrap_or_else(custody_notify::sink::hostname_or_unknown);
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix)
            .map_err(|error| format!("no randomness available: {error}"))?;
        let owner = format!(
            "pusher-{}-{}",
            std::process::id(),
            custody_core::hex::encode(&suffix)
        );
        let mut workers = Vec::new();
        for sink_config in &config.sinks {
            let format = sink_format(sink_config)?;
            let sink = Sink::connect(sink_config)
                .await
                .map_err(|error| error.to_string())?;
            workers.push(Pusher {
                store: store.clone(),
                name: sink_config.name().to_string(),
                sink,
                encoder: Encoder::new(format, host.clone()),
                shape: shape(format),
                owner: owner.clone(),
                clock: clock.clone(),
                batch_size: config.batch_size,
                poll_interval: Duration::from_millis(config.poll_interval_ms),
                lease: config.lease_seconds,
                backoff_initial_ms: config.backoff_initial_ms,
                backoff_max_ms: config.backoff_max_ms,
            });
        }
        let names = workers.iter().map(|worker| worker.name.clone()).collect();
        Ok(Pushers {
            store,
            owner,
            names,
            workers,
            tasks: Vec::new(),
            clock,
        })
    }

    /// Starts one worker per sink.
    pub fn start(&mut self) {
        self.tasks.extend(
            self.workers
                .drain(..)
                .map(|worker| tokio::spawn(worker.run())),
        );
    }

    /// Stops the workers and gives their leases up, so another node takes
    /// the sinks over at once instead of when the leases run out.
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        let now = self.clock.now();
        for name in &self.names {
            if let Err(error) = self
                .store
                .export_cursor(name, &self.owner, ExportCursorOperation::Release, now, now)
                .await
            {
                tracing::warn!(sink = %name, %error, "could not give up the export sink's lease");
            }
        }
    }
}

/// The worker of one sink.
struct Pusher {
    store: Store,
    name: String,
    sink: Sink,
    encoder: Encoder,
    shape: RecordShape,
    owner: String,
    clock: SharedClock,
    batch_size: u64,
    poll_interval: Duration,
    lease: u64,
    backoff_initial_ms: u64,
    backoff_max_ms: u64,
}

/// What a worker knows of its lease between rounds.
#[derive(Default)]
struct Held {
    /// Where this worker left the cursor; `None` when it does not know
    /// (never held it, lost it, or failed since).
    left_at: Option<u64>,
    /// Until when it holds the lease, as last taken or renewed.
    until: Option<Timestamp>,
}

/// What one round of a worker did, which decides how long it waits.
enum Round {
    /// A whole batch went out: there may be more at once.
    Full,
    /// Caught up, or another node holds the lease.
    Idle,
    /// The batch did not go out.
    Failed,
}

impl Pusher {
    async fn run(mut self) {
        // The cases' roles as of the cursor, valid only while the cursor is
        // where this worker left it: another node may have pushed in
        // between (then the cache is dropped and seeded again).
        let mut roles = CaseRoles::new(ROLES_CACHE_CASES);
        let mut lease = Held::default();
        let mut failures: u32 = 0;
        loop {
            let round = self.round(&mut roles, &mut lease).await;
            let wait = match round {
                Round::Full => {
                    failures = 0;
                    Duration::ZERO
                }
                Round::Idle => {
                    failures = 0;
                    self.poll_interval
                }
                Round::Failed => {
                    failures = failures.saturating_add(1);
                    self.backoff(failures)
                }
            };
            if wait.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// One lease, read, encode, send and advance.
    async fn round(&mut self, roles: &mut CaseRoles, lease: &mut Held) -> Round {
        let sink = self.name.clone();
        let now = self.clock.now();
        // While more than half of the lease is left, the cursor is where
        // this worker left it (nobody else may move it), so the lease is
        // renewed only past half-time: an idle sink costs the database one
        // write per half lease, not one per poll.
        let half = i64::try_from(self.lease.saturating_mul(500_000)).unwrap_or(i64::MAX);
        let cursor = match (lease.left_at, lease.until) {
            (Some(cursor), Some(until))
                if now.as_micros().saturating_add(half) < until.as_micros() =>
            {
                cursor
            }
            _ => {
                let until = now.plus_unsigned_seconds(self.lease);
                match self
                    .store
                    .export_cursor(&sink, &self.owner, ExportCursorOperation::Lease, now, until)
                    .await
                {
                    Ok(Some(cursor)) => {
                        if lease.left_at != Some(cursor) {
                            *roles = CaseRoles::new(ROLES_CACHE_CASES);
                        }
                        lease.until = Some(until);
                        cursor
                    }
                    Ok(None) => {
                        metrics::gauge!("custody_export_lease_held", "sink" => sink).set(0.0);
                        *lease = Held::default();
                        return Round::Idle;
                    }
                    Err(error) => {
                        tracing::error!(sink = %sink, %error, "taking the export sink's lease failed");
                        *lease = Held::default();
                        return Round::Failed;
                    }
                }
            }
        };
        metrics::gauge!("custody_export_lease_held", "sink" => sink.clone()).set(1.0);
        metrics::gauge!("custody_export_cursor", "sink" => sink.clone()).set(cursor as f64);
        let left_at = &mut lease.left_at;
        let page = match self
            .store
            .export_page(cursor, None, None, self.batch_size)
            .await
        {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(sink = %sink, %error, "reading events to push failed");
                *left_at = None;
                return Round::Failed;
            }
        };
        if let Ok(size) = self.store.log_size().await {
            metrics::gauge!("custody_export_lag_events", "sink" => sink.clone())
                .set(size.saturating_sub(cursor) as f64);
        }
        let Some(last) = page.last().map(|entry| entry.index) else {
            metrics::gauge!("custody_export_lag_seconds", "sink" => sink).set(0.0);
            *left_at = Some(cursor);
            return Round::Idle;
        };
        let full = u64::try_from(page.len()).unwrap_or(u64::MAX) >= self.batch_size;
        let mut events = Vec::with_capacity(page.len());
        for entry in &page {
            match Event::decode(&entry.leaf) {
                Ok(event) => events.push(event),
                Err(error) => {
                    // Never skipped: a sink that misses an event is a gap
                    // in someone's audit trail. `custody verify` names it.
                    tracing::error!(sink = %sink, log_index = entry.index, %error, "an event to push does not decode; the sink waits until it is repaired");
                    *left_at = None;
                    return Round::Failed;
                }
            }
        }
        if let Some(first) = events.first() {
            let age = (now.as_micros() - first.recorded_at.as_micros()).max(0) as f64 / 1e6;
            metrics::gauge!("custody_export_lag_seconds", "sink" => sink.clone()).set(age);
        }
        // `None` for a drill's event (`custody drill`): sinks never get
        // them, and the cursor moves past them with the rest of the page.
        let mut encoded: Vec<Option<Vec<u8>>> = Vec::with_capacity(events.len());
        for (entry, event) in page.iter().zip(&events) {
            if roles.missing(event) {
                match self.earlier_events(event, entry.index).await {
                    Ok(earlier) => roles.seed(event.case_id.as_str(), &earlier),
                    Err(error) => {
                        tracing::error!(sink = %sink, %error, "reading a case's earlier events failed");
                        *left_at = None;
                        return Round::Failed;
                    }
                }
            }
            let roles = roles.observe(event);
            if roles.drill {
                encoded.push(None);
                continue;
            }
            let record = Record {
                log_index: entry.index,
                event,
                bytes: &entry.leaf,
                roles,
            };
            let mut bytes = Vec::new();
            if let Err(error) = self.encoder.encode(&record, &mut bytes) {
                tracing::error!(sink = %sink, %error, "an event to push cannot be encoded; the sink waits");
                *left_at = None;
                return Round::Failed;
            }
            encoded.push(Some(bytes));
        }
        let records: Vec<SinkRecord<'_>> = page
            .iter()
            .zip(&events)
            .zip(&encoded)
            .filter_map(|((entry, event), bytes)| Some((entry, event, bytes.as_ref()?)))
            .map(|(entry, event, bytes)| SinkRecord {
                log_index: entry.index,
                event_id: event.event_id.as_str(),
                case_id: event.case_id.as_str(),
                time_micros: event.occurred_at.as_micros(),
                encoded: bytes,
            })
            .collect();
        let sent = if records.is_empty() {
            Ok(())
        } else {
            self.sink.send(&records, self.shape).await.map(|_| ())
        };
        match sent {
            Ok(()) => {}
            Err(error) => {
                metrics::counter!("custody_export_failures_total", "sink" => sink.clone())
                    .increment(1);
                tracing::warn!(sink = %sink, cursor, error = %error.message, "export batch not accepted; will retry from the same cursor");
                // The roles were folded past the cursor: start again from it.
                *left_at = None;
                return Round::Failed;
            }
        }
        let next = last.saturating_add(1);
        let now = self.clock.now();
        let until = now.plus_unsigned_seconds(self.lease);
        match self
            .store
            .export_cursor(
                &sink,
                &self.owner,
                ExportCursorOperation::Advance {
                    from: cursor,
                    to: next,
                },
                now,
                until,
            )
            .await
        {
            Ok(Some(_)) => {
                lease.until = Some(until);
                metrics::counter!("custody_export_pushed_total", "sink" => sink.clone())
                    .increment(u64::try_from(records.len()).unwrap_or(u64::MAX));
                metrics::gauge!("custody_export_cursor", "sink" => sink.clone()).set(next as f64);
                if let Ok(size) = self.store.log_size().await {
                    metrics::gauge!("custody_export_lag_events", "sink" => sink.clone())
                        .set(size.saturating_sub(next) as f64);
                }
                *left_at = Some(next);
                if full {
                    Round::Full
                } else {
                    metrics::gauge!("custody_export_lag_seconds", "sink" => sink).set(0.0);
                    Round::Idle
                }
            }
            Ok(None) => {
                tracing::warn!(sink = %sink, cursor, "lost the export sink's lease while pushing; the batch may be pushed again by the node that took it");
                *left_at = None;
                Round::Idle
            }
            Err(error) => {
                tracing::error!(sink = %sink, %error, "moving the export cursor failed; the batch will be pushed again");
                *left_at = None;
                Round::Failed
            }
        }
    }

    /// The events of `event`'s case before log index `before`, to know who
    /// requested, approved, executed and reviewed it so far.
    async fn earlier_events(&self, event: &Event, before: u64) -> Result<Vec<Event>, String> {
        let page = self
            .store
            .export_page(0, Some(before), Some(&event.case_id), 1 << 20)
            .await
            .map_err(|error| error.to_string())?;
        page.iter()
            .map(|entry| Event::decode(&entry.leaf).map_err(|error| error.to_string()))
            .collect()
    }

    /// The wait after the `failures`-th failure in a row.
    fn backoff(&self, failures: u32) -> Duration {
        let mut random = [0u8; 2];
        let permille = match getrandom::fill(&mut random) {
            Ok(()) => u64::from(u16::from_le_bytes(random) % 1001),
            Err(_) => 500,
        };
        backoff(
            self.backoff_initial_ms,
            self.backoff_max_ms,
            failures,
            permille,
        )
    }
}

/// Capped exponential backoff with jitter: the initial wait doubled after
/// each failure but the first, capped at `max_ms`, then scaled to between
/// half of it (`permille` 0) and the whole of it (`permille` 1000).
fn backoff(initial_ms: u64, max_ms: u64, failures: u32, permille: u64) -> Duration {
    let doubled = initial_ms
        .saturating_mul(1u64 << failures.saturating_sub(1).min(32))
        .min(max_ms);
    let jittered = doubled / 2 + doubled.saturating_mul(permille.min(1000)) / 2000;
    Duration::from_millis(jittered.clamp(1, max_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ExportConfig, String> {
        let config: ExportConfig = toml::from_str(text).map_err(|error| error.to_string())?;
        config.validate().map(|()| config)
    }

    #[test]
    fn defaults_are_documented_values() {
        let config = parse("").unwrap();
        assert!(config.sinks.is_empty());
        assert_eq!(
            (
                config.batch_size,
                config.poll_interval_ms,
                config.lease_seconds,
                config.backoff_initial_ms,
                config.backoff_max_ms
            ),
            (500, 1000, 30, 500, 60_000)
        );
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let file = "[[sinks]]\nkind = \"file\"\nname = \"f\"\npath = \"/tmp/custody-x.log\"\n";
        for (text, expected) in [
            (format!("{file}{file}"), "two export sinks are named `f`"),
            (
                "[[sinks]]\nkind = \"syslog\"\nname = \"s\"\naddress = \"h:514\"\ntransport = \"tcp\"\nformat = \"jsonl\"\n".to_string(),
                "its format must be `syslog`",
            ),
            (
                "[[sinks]]\nkind = \"file\"\nname = \"f\"\npath = \"/tmp/x\"\nformat = \"xml\"\n".to_string(),
                "unknown export format",
            ),
            (
                "lease_seconds = 5\n[[sinks]]\nkind = \"webhook\"\nname = \"w\"\nurl = \"http://h\"\nsecret = \"k\"\ntimeout_seconds = 10\n".to_string(),
                "export.lease_seconds (5) must be longer than the longest sink timeout (10s)",
            ),
            ("batch_size = 0".to_string(), "export.batch_size"),
            ("backoff_initial_ms = 10\nbackoff_max_ms = 5".to_string(), "backoff_initial_ms"),
        ] {
            let error = parse(&text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    /// The example in docs/configuration.md uses only settings that exist,
    /// with the types they have (validation is left out: its files and
    /// hosts are examples).
    #[test]
    fn the_documented_example_parses() {
        let docs = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md"),
        )
        .unwrap();
        let section = docs.split("## Export sinks").nth(1).unwrap();
        let example = section
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap();
        let config: crate::config::Config = toml::from_str(example).unwrap();
        let kinds: Vec<&str> = config.export.sinks.iter().map(SinkConfig::kind).collect();
        assert_eq!(kinds, ["syslog", "hec", "webhook", "file"]);
        let defaults = ExportConfig::default();
        assert_eq!(
            (
                config.export.batch_size,
                config.export.poll_interval_ms,
                config.export.lease_seconds,
                config.export.backoff_initial_ms,
                config.export.backoff_max_ms
            ),
            (
                defaults.batch_size,
                defaults.poll_interval_ms,
                defaults.lease_seconds,
                defaults.backoff_initial_ms,
                defaults.backoff_max_ms
            ),
            "the example shows the defaults"
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let whole: Vec<Duration> = (1..=8)
            .map(|failures| backoff(500, 10_000, failures, 1000))
            .collect();
        let expected: Vec<Duration> = [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]
            .into_iter()
            .map(Duration::from_millis)
            .collect();
        assert_eq!(whole, expected);
        assert_eq!(backoff(500, 10_000, 3, 0), Duration::from_millis(1000));
        assert_eq!(
            backoff(500, 10_000, 200, 1000),
            Duration::from_millis(10_000)
        );
    }
}
