//! Reading the ledger for an export: the one loop behind `custody export`
//! (reading a data directory or a database directly), `GET /v1/export` and
//! the push sinks.
//!
//! An [`Exporter`] walks a fixed range of the deployment-wide log,
//! `[since, end)`, page by page, so memory stays flat however large the log
//! is. `end` is fixed when the export starts: the `--until` cursor, or the
//! size of the log at that moment when there is none (or when `--until` lies
//! beyond it). The log is append-only and gapless and its indices are
//! assigned in commit order, so every event below `end` is already readable
//! when the export starts, and an export resumed at `end` (the cursor it
//! reports) has no gap and no duplicate, with or without a case filter.
//!
//! Each event passes through a [`CaseRoles`] tracker, which attaches who
//! requested, approved, executed and reviewed the case so far. When the
//! tracker does not hold an event's case (the case began before `since`, or
//! was evicted to keep memory bounded), the case's earlier events are read
//! from the store and fed to it first.

use std::future::Future;

use custody_core::event::Event;
use custody_core::CaseId;
use custody_export::{CaseRoles, Cursor, Encoder, ExportError, Record};
use custody_store::{LogEntry, ReadOnlyStore, Store, StoreError};

/// How many cases an export keeps the roles of; older ones are read back
/// from the store when they show up again.
pub const ROLES_CAPACITY: usize = 16_384;

/// Where an export reads its pages: the server's store, or a read-only view
/// of one (`custody export --data`, `--database-url`).
pub trait ExportSource: Send + Sync {
    /// The entries from log index `since` (inclusive) to `until`
    /// (exclusive), of `case_id` or of every case, in log order, at most
    /// `limit` of them.
    fn export_page(
        &self,
        since: u64,
        until: Option<u64>,
        case_id: Option<&CaseId>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<LogEntry>, StoreError>> + Send;

    /// The number of events in the log now.
    fn log_size(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

impl ExportSource for Store {
    fn export_page(
        &self,
        since: u64,
        until: Option<u64>,
        case_id: Option<&CaseId>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<LogEntry>, StoreError>> + Send {
        Store::export_page(self, since, until, case_id, limit)
    }

    fn log_size(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        Store::log_size(self)
    }
}

impl ExportSource for ReadOnlyStore {
    fn export_page(
        &self,
        since: u64,
        until: Option<u64>,
        case_id: Option<&CaseId>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<LogEntry>, StoreError>> + Send {
        ReadOnlyStore::export_page(self, since, until, case_id, limit)
    }

    fn log_size(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        ReadOnlyStore::log_size(self)
    }
}

/// Why an export could not start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExporterError {
    /// `--since` names a position the log has not reached: a cursor of
    /// another deployment, or a typo. Nothing is exported.
    #[error("cursor {since} is beyond the end of the log, which holds {size} events")]
    SinceBeyondLog {
        /// The cursor given.
        since: u64,
        /// The log's size.
        size: u64,
    },
    /// `until` before `since`.
    #[error("until {until} is before since {since}: the range is empty the wrong way round")]
    UntilBeforeSince {
        /// The start.
        since: u64,
        /// The end.
        until: u64,
    },
    /// The case filter names a case the ledger does not hold.
    #[error("the ledger holds no case {0}")]
    UnknownCase(CaseId),
    /// The store could not be read.
    #[error("cannot read the ledger: {0}")]
    Store(#[from] StoreError),
    /// A stored event does not decode: the store was tampered with or
    /// damaged (`custody verify` says more).
    #[error("the event at log index {index} does not decode ({reason})")]
    Undecodable {
        /// Its log index.
        index: u64,
        /// Why.
        reason: String,
    },
    /// An event could not be encoded in the format.
    #[error(transparent)]
    Encode(#[from] ExportError),
}

impl ExporterError {
    /// Whether the error is the caller's (a bad range or case), as opposed
    /// to the ledger's.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ExporterError::SinceBeyondLog { .. } | ExporterError::UntilBeforeSince { .. }
        )
    }

    /// What to do about it, kept apart from the message so that the CLI
    /// prints it on its own `hint:` line and the server puts it in the
    /// problem's `hint` member (never a raw newline inside `detail`).
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            ExporterError::SinceBeyondLog { .. } => {
                Some("resume with the cursor the previous export printed (`next cursor: N`)")
            }
            ExporterError::UnknownCase(_) => Some("list cases with `custody cases`"),
            ExporterError::Undecodable { .. } => Some("run `custody verify` on this ledger"),
            _ => None,
        }
    }
}

/// One export in progress over a fixed range of the log.
pub struct Exporter<S> {
    source: S,
    encoder: Encoder,
    roles: CaseRoles,
    case: Option<CaseId>,
    since: u64,
    cursor: u64,
    end: u64,
    exported: u64,
    include_drills: bool,
}

impl<S: ExportSource> Exporter<S> {
    /// Checks the range and the case and fixes the end of the export (see
    /// the module doc). Reads nothing else.
    pub async fn start(
        source: S,
        encoder: Encoder,
        case: Option<CaseId>,
        since: Cursor,
        until: Option<Cursor>,
    ) -> Result<Exporter<S>, ExporterError> {
        let size = source.log_size().await?;
        if since.0 > size {
            return Err(ExporterError::SinceBeyondLog {
                since: since.0,
                size,
            });
        }
        if let Some(until) = until {
            if until.0 < since.0 {
                return Err(ExporterError::UntilBeforeSince {
                    since: since.0,
                    until: until.0,
                });
            }
        }
        if let Some(case_id) = &case {
            if source
                .export_page(0, None, Some(case_id), 1)
                .await?
                .is_empty()
            {
                return Err(ExporterError::UnknownCase(case_id.clone()));
            }
        }
        let end = until.map_or(size, |until| until.0.min(size));
        Ok(Exporter {
            source,
            encoder,
            roles: CaseRoles::new(ROLES_CAPACITY),
            case,
            since: since.0,
            cursor: since.0,
            end,
            exported: 0,
            include_drills: false,
        })
    }

    /// Also exports the events of drill cases (`custody drill`), which are
    /// left out by default; a bundle always holds them (it is the trail).
    pub fn include_drills(mut self, include: bool) -> Exporter<S> {
        self.include_drills = include;
        self
    }

    /// Where the export started.
    pub fn since(&self) -> Cursor {
        Cursor(self.since)
    }

    /// The cursor to resume from: the first log index not yet exported
    /// (with a case filter, not yet scanned).
    pub fn cursor(&self) -> Cursor {
        Cursor(self.cursor)
    }

    /// Where the export stops (exclusive).
    pub fn end(&self) -> Cursor {
        Cursor(self.end)
    }

    /// Whether the whole range has been read.
    pub fn is_done(&self) -> bool {
        self.cursor >= self.end
    }

    /// Events exported so far.
    pub fn exported(&self) -> u64 {
        self.exported
    }

    /// The encoder's format.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Reads the next at most `span` log entries (fewer with a case filter:
    /// only the case's) and appends their encoding to `out`. Returns how
    /// many events it encoded; the cursor moves past the whole span only
    /// once every one of them is in `out`, so on an error the cursor still
    /// names the first event not delivered.
    pub async fn next_page(&mut self, span: u64, out: &mut Vec<u8>) -> Result<u64, ExporterError> {
        if self.is_done() {
            return Ok(0);
        }
        let written = out.len();
        let stop = self.end.min(self.cursor.saturating_add(span.max(1)));
        match self.encode_range(stop, out).await {
            Ok(count) => {
                self.cursor = stop;
                self.exported += count;
                Ok(count)
            }
            Err(error) => {
                // Nothing of a page that failed is handed on.
                out.truncate(written);
                Err(error)
            }
        }
    }

    async fn encode_range(&mut self, stop: u64, out: &mut Vec<u8>) -> Result<u64, ExporterError> {
        let entries = self
            .source
            .export_page(
                self.cursor,
                Some(stop),
                self.case.as_ref(),
                stop - self.cursor,
            )
            .await?;
        let mut count = 0;
        for entry in &entries {
            let event = decode(entry)?;
            if self.roles.missing(&event) {
                self.seed(&event, entry.index).await?;
            }
            let roles = self.roles.observe(&event);
            if roles.drill && !self.include_drills {
                continue;
            }
            self.encoder.encode(
                &Record {
                    log_index: entry.index,
                    event: &event,
                    bytes: &entry.leaf,
                    roles,
                },
                out,
            )?;
            count += 1;
        }
        Ok(count)
    }

    /// Feeds the tracker the events of `event`'s case before log index
    /// `index`, a page at a time (a case can be long: the administration
    /// record holds every principal and token).
    async fn seed(&mut self, event: &Event, index: u64) -> Result<(), ExporterError> {
        self.roles.seed(event.case_id.as_str(), []);
        let mut from = 0;
        loop {
            let earlier = self
                .source
                .export_page(from, Some(index), Some(&event.case_id), SEED_PAGE)
                .await?;
            for entry in &earlier {
                self.roles.observe(&decode(entry)?);
            }
            match earlier.last() {
                Some(last) if u64::try_from(earlier.len()).unwrap_or(u64::MAX) >= SEED_PAGE => {
                    from = last.index + 1;
                }
                _ => return Ok(()),
            }
        }
    }
}

/// How many of a case's earlier events are read at once to seed its roles.
const SEED_PAGE: u64 = 4096;

fn decode(entry: &LogEntry) -> Result<Event, ExporterError> {
    Event::decode(&entry.leaf).map_err(|error| ExporterError::Undecodable {
        index: entry.index,
        reason: error.to_string(),
    })
}

/// This machine's host name, which syslog and CEF name as the origin of the
/// messages (`localhost` when it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
