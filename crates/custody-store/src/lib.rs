//! Custody's store: the case ledger on the embedded SQLite file or on
//! PostgreSQL, behind one API.
//!
//! Durability and ordering:
//! - A write is acknowledged only after its transaction has committed
//!   durably: SQLite runs in WAL mode with `synchronous=FULL`; PostgreSQL
//!   with its default `synchronous_commit`.
//! - All writes of a process go through one writer task (`writer`), which
//!   groups the writes waiting for it into one transaction (group commit):
//!   one flush covers many appends, and a refused write never takes its
//!   neighbours down with it. Several processes may share one database: each
//!   writer takes the database's write lock (SQLite's, or a PostgreSQL
//!   advisory lock) for its transaction, so the log stays one gapless log.
//! - Events, log nodes and checkpoints are append-only: triggers refuse
//!   `UPDATE` and `DELETE` (and `TRUNCATE` on PostgreSQL), and
//!   `custody verify` detects edits made behind the store's back.
//!
//! - What the writer decides (the lifecycle rules applied to a batch, the
//!   evidence held for a reference, the administration record) is decided
//!   by a planner without IO (`plan`), from what the writer read; the
//!   backends hold only SQL.
//!
//! Readers (queries, `custody verify`) use separate connections and see
//! consistent snapshots while the writer works. The SQL is shared by both
//! backends; see `backend`. Every time the store records or judges by comes
//! from its clock ([`StoreOptions::clock`]).

#![forbid(unsafe_code)]

mod backend;
pub mod checkpoint_file;
pub mod keys;
mod plan;
mod sql_int;
mod writer;

/// The Merkle log's stored tree on the embedded store: roots and proofs, for
/// the benchmarks, which work on a database directly. Not part of the
/// store's API: it exists only with the `bench` feature.
#[cfg(feature = "bench")]
pub mod log {
    pub use crate::backend::sqlite::{
        append_leaves, consistency_proof, fetch_nodes, inclusion_proof, latest_checkpoint,
        tree_root,
    };
}

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use custody_core::audit::{decode_row, DecodedRow, Report, StoredEvent};
use custody_core::command::CaseCommand;
use custody_core::lifecycle::Refusal;
use custody_core::model::{Actor, ConnectorName, ExternalUser, Principal, PrincipalId};
use custody_core::{
    CaseId, CaseState, CaseView, Event, Sha256Hash, SharedClock, SystemClock, Timestamp,
};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::ConnectOptions;
use tokio::sync::{mpsc, oneshot};

// What the store answers with is what the API sends: one definition, in the
// crate the server and its clients share.
pub use custody_api::{
    AppendedEvent, CaseSummary, IdentityChange, IdentityMapping, IssuedToken, OutboxEntry,
    TokenInfo, WriteOutcome,
};

/// Where a store keeps its ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The embedded single-file store in a data directory.
    Embedded(PathBuf),
    /// A PostgreSQL database, by URL (`postgres://user@host/db`).
    Postgres(String),
}

impl Location {
    /// The store for `--database-url` when given, else the data directory's
    /// embedded file. Refuses URLs of databases Custody cannot use.
    pub fn choose(data_dir: &Path, database_url: Option<&str>) -> Result<Location, StoreError> {
        match database_url {
            None => Ok(Location::Embedded(data_dir.to_path_buf())),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                PgConnectOptions::from_str(url).map_err(|error| {
                    StoreError::Postgres(format!(
                        "cannot use database URL {}: {error}",
                        redact_url(url)
                    ))
                })?;
                Ok(Location::Postgres(url.to_string()))
            }
            Some(url) => {
                let scheme = url.split(':').next().unwrap_or(url);
                Err(StoreError::Postgres(format!(
                    "cannot use database URL scheme `{scheme}`: Custody runs on PostgreSQL (postgres://...) or on the embedded store\nhint: omit --database-url to use the embedded store in --data"
                )))
            }
        }
    }
}

impl std::fmt::Display for Location {
    /// The data directory, or the URL without its password.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Embedded(path) => write!(formatter, "{}", path.display()),
            Location::Postgres(url) => formatter.write_str(&redact_url(url)),
        }
    }
}

/// `url` with the password of its user part, if any, replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The pools readers use, by backend.
#[derive(Clone)]
enum Readers {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$ops` naming the backend module of `$readers` and
/// `$pool` its pool.
macro_rules! on_backend {
    ($readers:expr, $ops:ident, $pool:ident => $body:expr) => {
        match $readers {
            Readers::Sqlite($pool) => {
                use crate::backend::sqlite as $ops;
                $body
            }
            Readers::Postgres($pool) => {
                use crate::backend::postgres as $ops;
                $body
            }
        }
    };
}

/// The file name of the embedded database inside a data directory.
pub const DATABASE_FILE: &str = "custody.db";

/// The prefix of every bearer token, so secret scanners can recognise one.
pub const TOKEN_PREFIX: &str = "cust_";

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    writer: mpsc::Sender<writer::Job>,
    readers: Readers,
    location: Location,
    stats: std::sync::Arc<writer::CommitStats>,
    routing: std::sync::Arc<std::sync::RwLock<std::sync::Arc<custody_core::notice::Routing>>>,
    clock: SharedClock,
}

/// What [`Store::pull_cursor`] does to a polled source's cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullCursorOperation {
    /// Take the lease (free, run out, or already the worker's own) or
    /// renew it; a source seen for the first time has no cursor yet.
    Lease,
    /// Move the cursor to `to` (after the records before it are recorded)
    /// and renew the lease, only if the worker holds it.
    Advance {
        /// The cursor to poll from next.
        to: String,
    },
    /// Give the lease up (at shutdown), so another node takes over at once.
    Release,
}

/// What [`Store::pull_cursor`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullLease {
    /// The worker holds the lease; the cursor (`None` before the first poll).
    Held(Option<String>),
    /// Another worker holds it (or, after a release, nobody this worker
    /// knows of).
    NotHeld,
}

/// What [`Store::export_cursor`] does to a push sink's cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportCursorOperation {
    /// Take the lease (free, run out, or already the worker's own) or
    /// renew it; a sink seen for the first time starts at log index 0.
    Lease,
    /// Move the cursor from `from` to `to` and renew the lease, only if the
    /// worker holds the lease and the cursor is still at `from`.
    Advance {
        /// Where the worker read the cursor.
        from: u64,
        /// The first log index not pushed yet.
        to: u64,
    },
    /// Give the lease up (at shutdown), so another node takes over at once.
    Release,
}

/// A notification leased to a delivery worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// Its delivery ID (the same across retries).
    pub delivery_id: String,
    /// The case that owes it.
    pub case_id: String,
    /// The event that owes it (the notification is rendered from it).
    pub event_id: String,
    /// What it says, such as `approval_needed`.
    pub kind: String,
    /// The configured channel that carries it.
    pub channel: String,
    /// The recipient on that channel, if the route names one.
    pub recipient: Option<String>,
    /// Attempts made so far.
    pub attempts: u32,
}

/// Counters of the group commit since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CommitCounters {
    /// Transactions committed.
    pub commits: u64,
    /// Jobs (writes) they carried, accepted or refused.
    pub jobs: u64,
    /// Events appended.
    pub events: u64,
}

/// One of the deployment's records: trails of their own in the log, which
/// every case is judged against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeploymentRecord {
    /// The policy record (`policy_adopted` events).
    Policy,
    /// The administration record (principals, tokens, delegation grants).
    Admin,
}

impl DeploymentRecord {
    fn key(self) -> &'static str {
        match self {
            DeploymentRecord::Policy => "policy_record",
            DeploymentRecord::Admin => "admin_record",
        }
    }
}

/// What [`Import::commit`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Events imported (the log's size).
    pub events: u64,
    /// Case projections rebuilt.
    pub cases: u64,
    /// Outbox rows rebuilt from the notifications the events owe.
    pub notifications: u64,
    /// Token rows rebuilt from the `token_issued` events.
    pub tokens: u64,
    /// Of those, the tokens stored with their secret's full SHA-256 (given
    /// by [`Import::token`]): they authenticate on the imported store.
    pub tokens_restored: u64,
    /// Idempotency records stored ([`Import::idempotency`]).
    pub idempotency_records: u64,
}

/// A row of the `tokens` table with its secret's SHA-256, as a whole-log
/// bundle carries it ([`ReadOnlyStore::token_rows`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredToken {
    /// The public token ID (`tok_...`).
    pub token_id: String,
    /// The principal it authenticates.
    pub principal: String,
    /// The SHA-256 of the whole bearer token.
    pub secret_sha256: custody_core::Sha256Hash,
    /// When the row was stored.
    pub created_at: String,
    /// When it stops working, if ever.
    pub expires_at: Option<String>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// A row of the `idempotency` table: the stored result of one write under
/// its principal and idempotency key ([`ReadOnlyStore::idempotency_page`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredIdempotency {
    /// The principal who wrote.
    pub principal: String,
    /// The idempotency key.
    pub key: String,
    /// The fingerprint of the write's command.
    pub fingerprint: String,
    /// The write's result, JSON text as stored (a [`WriteOutcome`]).
    pub response: String,
    /// When it was stored.
    pub created_at: String,
}

/// An import of a whole log into an empty store (`custody import`): every
/// event verbatim in log order with the Merkle nodes it completes, the
/// signed checkpoints as they are, and every projection rebuilt from the
/// events (cases, principals, tokens, delegation grants, evidence records,
/// the outbox). Everything happens in one write transaction, schema
/// included: [`Import::commit`] makes it visible, and an import dropped or
/// failed before it leaves the store as it was.
pub struct Import {
    inner: ImportBackend,
}

enum ImportBackend {
    Sqlite(backend::sqlite::Importer),
    Postgres(backend::postgres::Importer),
}

impl Import {
    /// Opens the store at `location` for an import: the embedded database
    /// file in the data directory (created if missing; the directory must
    /// exist) or the PostgreSQL database. Refuses a store that holds
    /// anything.
    pub async fn begin(location: &Location) -> Result<Import, StoreError> {
        let inner = match location {
            Location::Embedded(data_dir) => {
                let path = data_dir.join(DATABASE_FILE);
                let connection = connect_options(&path)
                    .create_if_missing(true)
                    .synchronous(SqliteSynchronous::Full)
                    .connect()
                    .await?;
                ImportBackend::Sqlite(backend::sqlite::import_begin(connection).await?)
            }
            Location::Postgres(url) => {
                let connection = connect_postgres(location, &postgres_options(url)?).await?;
                ImportBackend::Postgres(backend::postgres::import_begin(connection).await?)
            }
        };
        Ok(Import { inner })
    }

    /// Appends the next event (log index `log_index`, its canonical bytes).
    pub async fn event(&mut self, log_index: u64, bytes: Vec<u8>) -> Result<(), StoreError> {
        match &mut self.inner {
            ImportBackend::Sqlite(importer) => importer.event(log_index, bytes).await,
            ImportBackend::Postgres(importer) => importer.event(log_index, bytes).await,
        }
    }

    /// Stores a signed checkpoint note as it is, after checking that the
    /// imported tree has its root at its size.
    pub async fn checkpoint(
        &mut self,
        size: u64,
        root: [u8; 32],
        note: &str,
        created_at: &str,
    ) -> Result<(), StoreError> {
        match &mut self.inner {
            ImportBackend::Sqlite(importer) => {
                importer.checkpoint(size, root, note, created_at).await
            }
            ImportBackend::Postgres(importer) => {
                importer.checkpoint(size, root, note, created_at).await
            }
        }
    }

    /// Gives the token `token_id`, issued to `principal` by an imported
    /// `token_issued` event, the full SHA-256 of its secret, so it
    /// authenticates on the imported store. Call it after the events. The
    /// digest must begin with the 16 hex digits the event records; a token
    /// the events never issued, or issued to another principal, is refused.
    /// Tokens given no digest keep an unusable one (see `docs/bundle.md`).
    pub async fn token(
        &mut self,
        token_id: &str,
        principal: &str,
        secret_sha256: custody_core::Sha256Hash,
    ) -> Result<(), StoreError> {
        match &mut self.inner {
            ImportBackend::Sqlite(importer) => importer.token(token_id, principal, secret_sha256),
            ImportBackend::Postgres(importer) => importer.token(token_id, principal, secret_sha256),
        }
    }

    /// Stores a write's idempotency record as it is, so a write retried
    /// after the import returns its first result.
    pub async fn idempotency(&mut self, record: StoredIdempotency) -> Result<(), StoreError> {
        match &mut self.inner {
            ImportBackend::Sqlite(importer) => importer.idempotency(record).await,
            ImportBackend::Postgres(importer) => importer.idempotency(record).await,
        }
    }

    /// Writes the projections and the log's `origin`, and commits.
    pub async fn commit(self, origin: &str, now: Timestamp) -> Result<ImportSummary, StoreError> {
        match self.inner {
            ImportBackend::Sqlite(importer) => importer.commit(origin, now).await,
            ImportBackend::Postgres(importer) => importer.commit(origin, now).await,
        }
    }
}

/// A read-only view of a store, for auditors. Never writes.
pub struct ReadOnlyStore {
    readers: Readers,
    clock: SharedClock,
}

/// A write against the ledger, with the identity and key it was made under.
#[derive(Clone, Debug)]
pub struct CaseWrite {
    /// Who is writing; taken from authentication.
    pub actor: Actor,
    /// The idempotency key: retrying with the same key and command is safe.
    pub idempotency_key: String,
    /// What to do.
    pub command: CaseCommand,
    /// When the step happened according to the client, if earlier than now.
    pub occurred_at: Option<Timestamp>,
    /// For a connector's write: where it came from, and what to write back.
    pub connector: Option<ConnectorWrite>,
}

/// What a connector's write carries besides the command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorWrite {
    /// The connector's name and the record's ID there: set as the events'
    /// `source` and `external_id`. (source, external ID) is the write's
    /// idempotency key, whoever the record maps to: a replayed record
    /// returns the first write's outcome and appends nothing.
    pub origin: custody_core::event::Origin,
    /// The outside record to write the outcome back to (a chat message),
    /// when it is not the case's ticket: the events written owe it a
    /// write-back (audience `linked`).
    pub reply: Option<custody_core::notice::Route>,
}

impl CaseWrite {
    /// The key the write's idempotency record is stored under: the
    /// principal and its key, or for a connector's write
    /// `connector:<name>` and the record's external ID (principal IDs never
    /// hold a `:`, so the two spaces cannot meet).
    pub fn idempotency_scope(&self) -> (String, String) {
        match &self.connector {
            Some(connector) => (
                format!("connector:{}", connector.origin.source),
                connector.origin.external_id.clone(),
            ),
            None => (
                self.actor.principal.to_string(),
                self.idempotency_key.clone(),
            ),
        }
    }
}

/// An external reference's evidence record: evidence held for a ticket
/// until a case carries it (a trail of its own in the log, without a case).
#[derive(Clone, Debug)]
pub struct EvidenceRecord {
    /// The record's ID (`AC-...`, the ID space of cases).
    pub record_id: String,
    /// The reference, as `SYSTEM:KEY`.
    pub ticket: String,
    /// The case it was released to, once one carries the ticket.
    pub released_to: Option<String>,
    /// Its events (`evidence_held`, then `evidence_released`), in order.
    pub events: Vec<Event>,
}

/// A signed checkpoint as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCheckpoint {
    /// The tree size it commits to.
    pub size: u64,
    /// The root hash at that size.
    pub root: [u8; 32],
    /// The signed note (C2SP tlog-checkpoint text with signature lines).
    pub note: String,
    /// When it was signed.
    pub created_at: String,
}

/// A witness's cosignature of one of the log's checkpoints, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCosignature {
    /// The witness's configured name (`[[witnesses]]` `name`).
    pub witness: String,
    /// The size of the checkpoint it cosigned.
    pub size: u64,
    /// That checkpoint's root.
    pub root: [u8; 32],
    /// The checkpoint as the log signed it (no cosignature in it).
    pub note: String,
    /// The witness's cosignature line, without its newline.
    pub line: String,
    /// When the witness cosigned (the cosignature's timestamp, POSIX seconds).
    pub cosigned_at: u64,
    /// When the cosignature was stored; set by the store.
    pub recorded_at: String,
}

impl StoredCosignature {
    /// The checkpoint note with every cosignature of `cosignatures` made on
    /// it (same size and root) appended as a signature line: a C2SP note
    /// with several signatures.
    pub fn append_to(
        note: &str,
        size: u64,
        root: &[u8; 32],
        cosignatures: &[StoredCosignature],
    ) -> String {
        let mut out = note.to_string();
        for cosignature in cosignatures {
            if cosignature.size == size
                && &cosignature.root == root
                && !out.contains(&cosignature.line)
            {
                out.push_str(&cosignature.line);
                out.push('\n');
            }
        }
        out
    }
}

/// A signed checkpoint the server knows of from outside the database (the
/// data directory's `checkpoints` file, `log.checkpoints_dir`). Before it
/// signs, the store checks that the log still has this checkpoint's root at
/// its size: see [`Store::checkpoint_checked`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownCheckpoint {
    /// The tree size it commits to.
    pub size: u64,
    /// The root hash at that size.
    pub root: [u8; 32],
    /// Where it is held, for messages (a file path).
    pub held_in: String,
}

/// The stored log does not extend a checkpoint that was signed for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// Where the checkpoint is held (`the database`, or a file).
    pub held_in: String,
    /// The checkpoint's size.
    pub size: u64,
    /// The checkpoint's root.
    pub checkpoint_root: [u8; 32],
    /// The stored tree's root at that size; `None` when the stored log is
    /// shorter than the checkpoint.
    pub stored_root: Option<[u8; 32]>,
    /// The stored log's size.
    pub log_size: u64,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let checkpoint_root = custody_core::hex::encode(&self.checkpoint_root);
        match &self.stored_root {
            Some(stored) => write!(
                f,
                "the log stored in the database does not match the signed checkpoint at size {} held in {}: the checkpoint's root is {checkpoint_root}, the stored log's root at size {} is {}",
                self.size,
                self.held_in,
                self.size,
                custody_core::hex::encode(stored)
            )?,
            None => write!(
                f,
                "the log stored in the database is shorter than the signed checkpoint at size {} held in {} (root {checkpoint_root}): it holds {} entries",
                self.size, self.held_in, self.log_size
            )?,
        }
        write!(
            f,
            "; the stored history was changed after it was signed, and signing it would sign a second history with the same key, so no checkpoint is signed\nhint: run `custody verify` to see what changed, and restore the database from a backup that matches the signed checkpoints"
        )
    }
}

/// One leaf of the log: the canonical bytes of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Its index in the log.
    pub index: u64,
    /// The exact leaf bytes (the event's canonical bytes).
    pub leaf: Vec<u8>,
    /// The case the event belongs to.
    pub case_id: String,
}

/// The owner of a bearer token that authenticates: what
/// [`Store::authenticate`] finds for a token that is known, unexpired and
/// not revoked.
#[derive(Clone, Debug)]
pub struct TokenOwner {
    /// The principal.
    pub principal: Principal,
    /// The public ID of the token that authenticated it.
    pub token_id: String,
}

/// A web console session as stored (`console_sessions`): keyed by the
/// SHA-256 of the random session ID, which only the browser's cookie holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleSession {
    /// SHA-256 of the session ID.
    pub session_sha256: Sha256Hash,
    /// The principal signed in.
    pub principal: PrincipalId,
    /// How it authenticated (a token ID, an OIDC issuer and subject).
    pub auth: custody_core::model::AuthContext,
    /// The secret every form of the session carries (CSRF), hex.
    pub csrf_secret: String,
    /// When the session began.
    pub created_at: Timestamp,
    /// The last request seen with it (the idle timeout counts from here).
    pub last_seen_at: Timestamp,
    /// Its absolute end, whatever the activity.
    pub expires_at: Timestamp,
}

/// At most this many browser sign-ins may be in progress at once
/// ([`ConsoleSessionOperation::BeginLogin`] touches no row beyond it).
pub const MAX_CONSOLE_LOGINS: i64 = 10_000;

/// A change to the console's sessions ([`Store::console_session_write`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ConsoleSessionOperation {
    /// Store a new session.
    Create(ConsoleSession),
    /// Move a session's `last_seen_at` forward to `at` (never back).
    Touch {
        /// The session.
        session_sha256: Sha256Hash,
        /// The request's time.
        at: Timestamp,
    },
    /// Remove a session (sign-out, or found expired).
    Delete {
        /// The session.
        session_sha256: Sha256Hash,
    },
    /// Remove every session past its absolute end at `now` or idle since
    /// before `idle_before`, and every sign-in in progress past its end.
    Purge {
        /// The time.
        now: Timestamp,
        /// Sessions last seen at or before this are idle.
        idle_before: Timestamp,
    },
    /// Keep a browser sign-in in progress (OIDC) until the browser comes
    /// back or `expires_at`; purges the sign-ins already past their end.
    /// Touches no row (keeps nothing) when [`MAX_CONSOLE_LOGINS`] are in
    /// progress.
    BeginLogin {
        /// SHA-256 of the random value in the browser's cookie.
        login_sha256: Sha256Hash,
        /// What the sign-in keeps (JSON, opaque to the store).
        pending: String,
        /// When it may no longer be finished.
        expires_at: Timestamp,
        /// The time.
        now: Timestamp,
    },
    /// Remove a sign-in in progress: it is single use. One row touched
    /// means this caller took it; zero, that another request did (or it
    /// never was).
    EndLogin {
        /// SHA-256 of the random value in the browser's cookie.
        login_sha256: Sha256Hash,
    },
}

/// Which cases [`Store::case_views`] lists.
#[derive(Clone, Debug, Default)]
pub struct CaseViewFilter {
    /// Only cases in an active state (open, approved, executed, pending
    /// review, executed pending approval).
    pub active_only: bool,
    /// Only cases in this state.
    pub state: Option<CaseState>,
    /// Only cases carrying this ticket (`SYSTEM:KEY`).
    pub ticket: Option<String>,
    /// Only cases opened at or after this time.
    pub opened_from: Option<Timestamp>,
    /// Only cases opened before this time.
    pub opened_to: Option<Timestamp>,
    /// Only cases after this one in the listing's order (newest first): its
    /// `opened_at` as stored and its case ID.
    pub before: Option<(String, String)>,
    /// At most this many; all when `None`.
    pub limit: Option<u32>,
}

/// A case as [`Store::case_views`] lists it.
#[derive(Clone, Debug)]
pub struct ListedCase {
    /// When the case was opened, as stored (the listing's keyset).
    pub opened_at: String,
    /// Its projection as stored with its latest event.
    pub view: CaseView,
}

/// A case as [`Store::case_heads`] lists it: its ID and its head, which
/// changes with every event, so a projection read at one head is the
/// projection until the head moves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseHead {
    /// The case.
    pub case_id: CaseId,
    /// The sequence number of its latest event.
    pub head_seq: u64,
    /// The hash of its latest event.
    pub head_hash: Sha256Hash,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A rule refused the write; nothing was appended.
    #[error("{0}")]
    Refused(Refusal),
    /// The case does not exist.
    #[error("case {0} does not exist")]
    CaseNotFound(String),
    /// The principal does not exist.
    #[error("principal {0} does not exist")]
    PrincipalNotFound(String),
    /// No token has that ID.
    #[error("token {0} does not exist")]
    TokenNotFound(String),
    /// A principal with that name already exists.
    #[error("principal {0} already exists")]
    PrincipalExists(String),
    /// The outside user is not mapped to any principal (nothing to unmap).
    #[error("{connector} user {external_user} is not mapped to a principal")]
    IdentityNotMapped {
        /// The connector.
        connector: String,
        /// The outside user's ID.
        external_user: String,
    },
    /// The database failed; the write was not acknowledged.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The data directory could not be used (created, or found holding a
    /// ledger).
    #[error("{0}")]
    DataDirectory(String),
    /// PostgreSQL could not be used: its URL is not one Custody can use, the
    /// server cannot be reached, or the database holds no Custody ledger.
    /// The message names the database without its password.
    #[error("{0}")]
    Postgres(String),
    /// Stored data could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The operating system gave no randomness for a new token's secret;
    /// nothing was issued.
    #[error("no randomness available: {0}")]
    NoRandomness(String),
    /// A log query asked for sizes or indexes the log cannot answer.
    #[error("{0}")]
    InvalidRequest(String),
    /// The writer task has stopped (the server is shutting down).
    #[error("the store is shutting down")]
    Closed,
    /// The stored log no longer extends a checkpoint signed for it (someone
    /// rewrote or truncated the database): nothing is signed.
    #[error("{0}")]
    Diverged(Box<Divergence>),
}

/// Options of [`Store::open_with`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Append every event to the Merkle log (the default). Turning it off
    /// exists only so that `cargo xtask bench` can measure what the log
    /// costs: a store written without it fails `custody verify`
    /// (`log.leaf-missing`).
    pub merkle_log: bool,
    /// Where the store reads the time: every `recorded_at`, token expiry
    /// and deadline it writes or judges. The system clock by default; a
    /// test gives a [`custody_core::ManualClock`] and moves it itself.
    pub clock: SharedClock,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            merkle_log: true,
            clock: SystemClock::shared(),
        }
    }
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir`, migrates it and
    /// starts the writer task. Needs a Tokio runtime.
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(data_dir, StoreOptions::default()).await
    }

    /// [`Store::open`] with options.
    pub async fn open_with(
        data_dir: &Path,
        store_options: StoreOptions,
    ) -> Result<Store, StoreError> {
        Store::open_at(&Location::Embedded(data_dir.to_path_buf()), store_options).await
    }

    /// Opens (creating the embedded file, or the schema in an existing
    /// PostgreSQL database, if needed) the store at `location`, migrates it
    /// and starts the writer task. Needs a Tokio runtime.
    pub async fn open_at(
        location: &Location,
        store_options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let (sender, receiver) = mpsc::channel(4096);
        let stats = std::sync::Arc::new(writer::CommitStats::default());
        let routing = std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(
            custody_core::notice::Routing::default(),
        )));
        let writer_context = || writer::WriterContext {
            stats: stats.clone(),
            routing: routing.clone(),
            merkle_log: store_options.merkle_log,
            clock: store_options.clock.clone(),
        };
        let readers = match location {
            Location::Embedded(data_dir) => {
                std::fs::create_dir_all(data_dir).map_err(|error| {
                    StoreError::DataDirectory(format!(
                        "cannot create data directory {}: {error}",
                        data_dir.display()
                    ))
                })?;
                let path = data_dir.join(DATABASE_FILE);
                let options = connect_options(&path)
                    .create_if_missing(true)
                    .synchronous(SqliteSynchronous::Full);
                let mut writer_connection = options.connect().await?;
                backend::sqlite::migrate(&mut writer_connection).await?;
                let readers = SqlitePoolOptions::new()
                    .max_connections(8)
                    .connect_with(connect_options(&path).read_only(true))
                    .await?;
                tokio::spawn(backend::sqlite::run(
                    writer_connection,
                    options,
                    receiver,
                    writer_context(),
                ));
                Readers::Sqlite(readers)
            }
            Location::Postgres(url) => {
                let options = postgres_options(url)?;
                let mut writer_connection = connect_postgres(location, &options).await?;
                backend::postgres::migrate(&mut writer_connection).await?;
                let readers = PgPoolOptions::new()
                    .max_connections(8)
                    .connect_with(options.clone())
                    .await?;
                tokio::spawn(backend::postgres::run(
                    writer_connection,
                    options,
                    receiver,
                    writer_context(),
                ));
                Readers::Postgres(readers)
            }
        };
        let store = Store {
            writer: sender,
            readers,
            location: location.clone(),
            stats,
            routing,
            clock: store_options.clock,
        };
        // A data directory made before administration was on the record:
        // its principals, tokens and grants are recorded now, once.
        let recorded = store
            .submit(|reply| writer::Job::RecordLegacyAdmin { reply })
            .await?;
        if recorded > 0 {
            tracing::warn!(
                events = recorded,
                "recorded the principals, tokens and delegation grants of an older data directory in the administration record"
            );
        }
        Ok(store)
    }

    /// Records `origin` as the origin of this store's log unless one is
    /// recorded already, and returns the recorded one: every node of a
    /// deployment must sign checkpoints for the same origin.
    pub async fn claim_log_origin(&self, origin: &str) -> Result<String, StoreError> {
        let origin = origin.to_string();
        self.submit(|reply| writer::Job::ClaimOrigin { origin, reply })
            .await
    }

    /// Records in the deployment's policy record that `policy` (read from
    /// `source`) decides new cases from now on, unless it is the policy
    /// recorded last. Returns the appended `policy_adopted` event, if any.
    pub async fn adopt_policy(
        &self,
        policy: custody_core::policy::Policy,
        source: &str,
    ) -> Result<Option<AppendedEvent>, StoreError> {
        let source = source.to_string();
        self.submit(|reply| writer::Job::AdoptPolicy {
            policy,
            source,
            reply,
        })
        .await
    }

    /// The policies the deployment adopted, oldest first.
    pub async fn policy_history(&self) -> Result<Vec<Event>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::policy_history(readers).await)
    }

    /// Sets who is told what from now on: every event written after this
    /// returns records the notifications it owes under `routing`, and queues
    /// them in the outbox in its own transaction.
    pub fn set_notification_routing(&self, routing: custody_core::notice::Routing) {
        *self
            .routing
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = std::sync::Arc::new(routing);
    }

    /// Leases up to `limit` notifications due by `now` to `owner` until `until`.
    pub async fn claim_deliveries(
        &self,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let owner = owner.to_string();
        self.submit(|reply| writer::Job::ClaimDeliveries {
            owner,
            now,
            until,
            limit,
            reply,
        })
        .await
    }

    /// A push sink's cursor and lease, kept in the ledger database so that
    /// a restarted node resumes where the sink stopped and several nodes on
    /// one database push each event once. `owner` names the worker; leases
    /// are judged at `now` and taken or renewed until `until`.
    ///
    /// Answers the cursor (the log index of the first event not pushed yet)
    /// when `owner` holds the lease after the operation; `None` when
    /// another worker holds it, when an `Advance` found the cursor moved or
    /// the lease taken, and after a `Release`.
    pub async fn export_cursor(
        &self,
        sink: &str,
        owner: &str,
        operation: ExportCursorOperation,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        let sink = sink.to_string();
        let owner = owner.to_string();
        self.submit(|reply| writer::Job::ExportCursor {
            sink,
            owner,
            operation,
            now,
            until,
            reply,
        })
        .await
    }

    /// A polled source's cursor and lease, kept in the ledger database so a
    /// restarted node resumes where the source's poll stopped and several
    /// nodes on one database poll it once. See [`PullCursorOperation`].
    pub async fn pull_cursor(
        &self,
        source: &str,
        owner: &str,
        operation: PullCursorOperation,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<PullLease, StoreError> {
        let source = source.to_string();
        let owner = owner.to_string();
        self.submit(|reply| writer::Job::PullCursor {
            source,
            owner,
            operation,
            now,
            until,
            reply,
        })
        .await
    }

    /// Makes a pending or dead notification due now (an operator's retry).
    pub async fn retry_delivery(&self, delivery_id: &str) -> Result<OutboxEntry, StoreError> {
        let delivery_id = delivery_id.to_string();
        self.submit(|reply| writer::Job::RetryDelivery { delivery_id, reply })
            .await
    }

    /// Notifications in the outbox, newest first: of one case or all; only
    /// the undelivered ones when `undelivered_only`.
    pub async fn notifications(
        &self,
        case_id: Option<&CaseId>,
        undelivered_only: bool,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::notifications(readers, case_id.map(CaseId::as_str), undelivered_only, limit).await)
    }

    /// How many notifications wait for delivery, and when the oldest was queued.
    pub async fn outbox_backlog(&self) -> Result<(u64, Option<String>), StoreError> {
        on_backend!(&self.readers, ops, readers => ops::outbox_backlog(readers).await)
    }

    /// The origin recorded for this store's log, if any.
    pub async fn log_origin(&self) -> Result<Option<String>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::log_origin(readers).await)
    }

    /// The durability settings in force on the writer's own connection, as
    /// the database reports them: on the embedded store `synchronous` (`2`
    /// is FULL), `journal_mode` (`wal`) and `foreign_keys`; on PostgreSQL
    /// `synchronous_commit`, `fsync` and `full_page_writes`. A write is
    /// acknowledged after a commit under these settings.
    pub async fn durability(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.submit(|reply| writer::Job::Durability { reply }).await
    }

    /// How the group commit has batched writes so far.
    pub fn commit_counters(&self) -> CommitCounters {
        self.stats.snapshot()
    }

    /// Where the ledger is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The clock the store reads the time from ([`StoreOptions::clock`]).
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Applies a case write. Returns once the result is durable.
    pub async fn write(&self, write: CaseWrite) -> Result<WriteOutcome, StoreError> {
        self.submit(|reply| writer::Job::Case(Box::new(write), reply))
            .await
    }

    /// Adds a principal, recording a `principal_added` event in the
    /// administration record (see [`custody_core::admin`]) in the same
    /// transaction. `by` is the authenticated admin; `None` acts as
    /// `system`, which is allowed only while the deployment is set up.
    pub async fn add_principal(
        &self,
        principal: Principal,
        by: Option<Actor>,
    ) -> Result<Principal, StoreError> {
        self.submit(|reply| writer::Job::AddPrincipal {
            principal,
            by,
            reply,
        })
        .await
    }

    /// Issues a new bearer token for `principal`, recording `token_issued`
    /// (its ID and hash prefix, never the secret). `by` as for
    /// [`Store::add_principal`].
    pub async fn create_token(
        &self,
        principal: PrincipalId,
        ttl_seconds: Option<u64>,
        by: Option<Actor>,
    ) -> Result<IssuedToken, StoreError> {
        self.submit(|reply| writer::Job::CreateToken {
            principal,
            ttl_seconds,
            by,
            reply,
        })
        .await
    }

    /// Sets a principal's groups (sorted, without duplicates), recording
    /// `principal_groups_changed` by the admin `by`; the groups it has
    /// already record nothing.
    pub async fn set_groups(
        &self,
        principal: PrincipalId,
        groups: Vec<String>,
        by: Actor,
    ) -> Result<Principal, StoreError> {
        self.submit(|reply| writer::Job::SetGroups {
            principal,
            groups,
            by,
            reply,
        })
        .await
    }

    /// Signs in an OpenID Connect identity as the principal `claimed` (its
    /// name, kind and groups from the token's claims), decided under the
    /// write lock: the first sign-in of an identity adds the principal and
    /// binds the identity to it (`principal_added`, by `actor`); a later
    /// one records the groups the issuer now asserts
    /// (`principal_groups_changed`), or nothing when they are the same. A
    /// principal that is not bound to this identity is refused
    /// (`oidc.identity-mismatch`), never merged. `actor` is the principal
    /// itself, authenticated by `AuthContext::Oidc`.
    pub async fn oidc_sign_in(
        &self,
        claimed: Principal,
        actor: Actor,
    ) -> Result<Principal, StoreError> {
        self.submit(|reply| writer::Job::OidcSignIn {
            claimed,
            actor,
            reply,
        })
        .await
    }

    /// Maps outside users of `connector` to principals (`identity_mapped`
    /// events in the administration record, by the admin `by`), in order,
    /// all in one transaction: when one mapping is refused (an unknown
    /// principal, `system`), none is recorded. A user mapped to the
    /// principal it is mapped to already records nothing; one mapped to
    /// another principal is remapped by one event naming the one it
    /// replaces. Returns what each did.
    pub async fn map_identities(
        &self,
        connector: ConnectorName,
        entries: Vec<(ExternalUser, PrincipalId)>,
        by: Actor,
    ) -> Result<Vec<IdentityChange>, StoreError> {
        self.submit(|reply| writer::Job::MapIdentities {
            connector,
            entries,
            by,
            reply,
        })
        .await
    }

    /// Removes the mapping of an outside user (`identity_unmapped`, by the
    /// admin `by`): from then on the connector trusts it no more. Refused
    /// ([`StoreError::IdentityNotMapped`]) when it is not mapped.
    pub async fn unmap_identity(
        &self,
        connector: ConnectorName,
        external_user: ExternalUser,
        by: Actor,
    ) -> Result<IdentityChange, StoreError> {
        self.submit(|reply| writer::Job::UnmapIdentity {
            connector,
            external_user,
            by,
            reply,
        })
        .await
    }

    /// The principal, as it is now (kind, groups, organisation), that the
    /// outside user `external_user` of `connector` is mapped to, or `None`:
    /// an unmapped user is never trusted. The ID is compared exactly
    /// (case-sensitive); text that could not be an outside user's ID (see
    /// [`ExternalUser`]) is mapped to no one.
    pub async fn connector_identity(
        &self,
        connector: &str,
        external_user: &str,
    ) -> Result<Option<custody_core::model::Principal>, StoreError> {
        let (Ok(connector), Ok(external_user)) = (
            connector.parse::<ConnectorName>(),
            external_user.parse::<ExternalUser>(),
        ) else {
            return Ok(None);
        };
        on_backend!(&self.readers, ops, readers => ops::connector_identity(readers, &connector, &external_user).await)
    }

    /// The principal, as it is now, that the OpenID Connect identity
    /// (`issuer`, `subject`) is bound to, or `None`: read without the
    /// writer, so a sign-in that changes nothing writes nothing.
    pub async fn oidc_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<custody_core::model::Principal>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::oidc_identity(readers, issuer, subject).await)
    }

    /// The mapped outside users of `connector`, by ID.
    pub async fn connector_identities(
        &self,
        connector: &ConnectorName,
    ) -> Result<Vec<IdentityMapping>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::connector_identities(readers, connector).await)
    }

    /// The events of the administration record, oldest first.
    pub async fn admin_record(&self) -> Result<Vec<Event>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::admin_record(readers).await)
    }

    /// Signs and stores a checkpoint of the log as it stands now (all
    /// acknowledged writes included), unless the latest checkpoint already
    /// covers the whole log. `None` while the log is empty.
    ///
    /// Refuses ([`StoreError::Diverged`]) when the stored log does not have
    /// the root of the newest stored checkpoint at its size: a history
    /// rewritten in the database is never signed.
    pub async fn checkpoint(
        &self,
        origin: &str,
        signers: std::sync::Arc<Vec<custody_log::SignerKey>>,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.checkpoint_checked(origin, signers, Vec::new()).await
    }

    /// [`Store::checkpoint`], refusing also when the stored log does not
    /// extend one of the `known` checkpoints (held outside the database):
    /// its root at each one's size must be that checkpoint's root. The check
    /// and the signing are one transaction of the writer.
    pub async fn checkpoint_checked(
        &self,
        origin: &str,
        signers: std::sync::Arc<Vec<custody_log::SignerKey>>,
        known: Vec<KnownCheckpoint>,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let origin = origin.to_string();
        self.submit(|reply| writer::Job::Checkpoint {
            origin,
            signers,
            known,
            reply,
        })
        .await
    }

    /// Checks, without signing or writing anything, that the stored log
    /// extends the newest stored checkpoint and every one of `known`
    /// ([`StoreError::Diverged`] if not).
    pub async fn check_signed_history(&self, known: &[KnownCheckpoint]) -> Result<(), StoreError> {
        on_backend!(&self.readers, ops, readers => ops::check_signed_history(readers, known).await)
    }

    /// The newest stored checkpoint.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::read_latest_checkpoint(readers).await)
    }

    /// [`Store::latest_checkpoint`] with its witnesses' cosignatures
    /// appended to the note.
    pub async fn latest_cosigned_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let Some(latest) = self.latest_checkpoint().await? else {
            return Ok(None);
        };
        self.with_cosignatures(latest).await.map(Some)
    }

    /// `checkpoint` with the stored cosignatures of it appended to its note.
    pub async fn with_cosignatures(
        &self,
        mut checkpoint: StoredCheckpoint,
    ) -> Result<StoredCheckpoint, StoreError> {
        let cosignatures = self.cosignatures(Some(checkpoint.size)).await?;
        checkpoint.note = StoredCosignature::append_to(
            &checkpoint.note,
            checkpoint.size,
            &checkpoint.root,
            &cosignatures,
        );
        Ok(checkpoint)
    }

    /// Stores a witness's cosignature (verified by the caller); `false`
    /// when one of that witness at that size is stored already.
    pub async fn add_cosignature(
        &self,
        cosignature: StoredCosignature,
    ) -> Result<bool, StoreError> {
        self.submit(|reply| writer::Job::AddCosignature { cosignature, reply })
            .await
    }

    /// The stored cosignatures at checkpoint size `size`, or of every size.
    pub async fn cosignatures(
        &self,
        size: Option<u64>,
    ) -> Result<Vec<StoredCosignature>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::cosignatures(readers, size).await)
    }

    /// Where push sink `sink` stands: the log index of the first event it
    /// has not accepted, or `None` before its first batch. A read: it takes
    /// no lease (see [`Store::export_cursor`] for the worker's side).
    pub async fn export_position(&self, sink: &str) -> Result<Option<u64>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::export_position(readers, sink).await)
    }

    /// One page of an export: the log entries from index `since` (inclusive)
    /// to `until` (exclusive; `None` for the end of the log), of `case_id`
    /// or of every case, in log order, at most `limit` (capped at 2^20).
    pub async fn export_page(
        &self,
        since: u64,
        until: Option<u64>,
        case_id: Option<&CaseId>,
        limit: u64,
    ) -> Result<Vec<LogEntry>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::export_page(readers, since, until, case_id.map(CaseId::as_str), limit).await)
    }

    /// Log entries `[start, end)`, at most `limit` of them.
    pub async fn entries(
        &self,
        start: u64,
        end: u64,
        limit: u64,
    ) -> Result<Vec<LogEntry>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::entries(readers, start, end, limit).await)
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves.
    pub async fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::read_inclusion_proof(readers, index, size).await)
    }

    /// The consistency proof from the tree of `old_size` to that of `new_size` leaves.
    pub async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::read_consistency_proof(readers, old_size, new_size).await)
    }

    /// Every event of a case that `checkpoint` covers, with its leaf bytes and
    /// inclusion proof against that checkpoint, in sequence order.
    pub async fn case_proofs(
        &self,
        case_id: &CaseId,
        checkpoint: &StoredCheckpoint,
    ) -> Result<Vec<(LogEntry, Vec<[u8; 32]>)>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::case_proofs(readers, case_id, checkpoint).await)
    }

    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> writer::Job,
    ) -> Result<T, StoreError> {
        let (reply, response) = oneshot::channel();
        self.writer
            .send(job(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        response.await.map_err(|_| StoreError::Closed)?
    }

    /// Revokes a token: it authenticates nothing from the moment this returns.
    /// Revoking a revoked token returns it unchanged. `by` is its owner or
    /// an admin; the revocation is a `token_revoked` event.
    pub async fn revoke_token(&self, token_id: &str, by: Actor) -> Result<TokenInfo, StoreError> {
        let token_id = token_id.to_string();
        self.submit(|reply| writer::Job::RevokeToken {
            token_id,
            by,
            reply,
        })
        .await
    }

    /// Stores a new delegation grant, granted now by the admin `by`, and
    /// records it (`delegation_granted`) in the same transaction.
    pub async fn grant_delegation(
        &self,
        grant: custody_core::delegation::DelegationGrant,
        by: Actor,
    ) -> Result<custody_core::delegation::DelegationGrant, StoreError> {
        self.submit(|reply| writer::Job::GrantDelegation { grant, by, reply })
            .await
    }

    /// Revokes a delegation grant now (`delegation_revoked`), decided under
    /// the write lock: revoking a revoked grant returns it with its first
    /// revocation time and appends nothing.
    pub async fn revoke_delegation(
        &self,
        grant_id: &str,
        by: Actor,
    ) -> Result<custody_core::delegation::DelegationGrant, StoreError> {
        let grant_id = grant_id.to_string();
        self.submit(|reply| writer::Job::RevokeDelegation {
            grant_id,
            by,
            reply,
        })
        .await
    }

    /// Every delegation grant, in force or not.
    pub async fn delegations(
        &self,
    ) -> Result<Vec<custody_core::delegation::DelegationGrant>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::delegations(readers).await)
    }

    /// Issued tokens, optionally of one principal, newest first.
    pub async fn tokens(
        &self,
        principal: Option<&PrincipalId>,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::tokens(readers, principal).await)
    }

    /// One token's record.
    pub async fn token(&self, token_id: &str) -> Result<Option<TokenInfo>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::token(readers, token_id).await)
    }

    /// The principal a bearer token authenticates, or `None` when the token
    /// is unknown, expired or revoked.
    pub async fn authenticate(&self, token: &str) -> Result<Option<TokenOwner>, StoreError> {
        let now = self.clock.now();
        on_backend!(&self.readers, ops, readers => ops::authenticate(readers, token, now).await)
    }

    /// Case projections, newest first, as `filter` selects them, drill
    /// cases left out: one query, whatever the number of cases.
    pub async fn case_views(&self, filter: &CaseViewFilter) -> Result<Vec<ListedCase>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::case_views(readers, filter).await)
    }

    /// What [`Store::case_views`] lists, in the same order, without the
    /// projections: each case's ID and head. A reader that keeps
    /// projections reads again only those whose head moved
    /// ([`Store::case_views_by_id`]).
    pub async fn case_heads(&self, filter: &CaseViewFilter) -> Result<Vec<CaseHead>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::case_heads(readers, filter).await)
    }

    /// The projections of the cases named (those that exist), in no
    /// particular order.
    pub async fn case_views_by_id(
        &self,
        case_ids: &[CaseId],
    ) -> Result<Vec<ListedCase>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::case_views_by_id(readers, case_ids).await)
    }

    /// Applies `operation` to the console's sessions (on the writer, so
    /// every node sharing the database sees it); answers the rows touched.
    pub async fn console_session_write(
        &self,
        operation: ConsoleSessionOperation,
    ) -> Result<u64, StoreError> {
        self.submit(|reply| writer::Job::ConsoleSession { operation, reply })
            .await
    }

    /// The console session whose ID hashes to `session_sha256`, expired or
    /// not: the caller judges expiry with its timeouts.
    pub async fn console_session(
        &self,
        session_sha256: &Sha256Hash,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::console_session(readers, session_sha256).await)
    }

    /// The browser sign-in in progress whose cookie value hashes to
    /// `login_sha256`, with its end ([`ConsoleSessionOperation::BeginLogin`]).
    pub async fn console_login(
        &self,
        login_sha256: &Sha256Hash,
    ) -> Result<Option<(String, Timestamp)>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::console_login(readers, login_sha256).await)
    }

    /// One principal.
    pub async fn principal(&self, id: &PrincipalId) -> Result<Option<Principal>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::principal(readers, id).await)
    }

    /// The case carrying `ticket` (not merged away), for a connector whose
    /// record names the ticket and not the case.
    pub async fn case_for_ticket(
        &self,
        ticket: &custody_core::model::Ticket,
    ) -> Result<Option<CaseId>, StoreError> {
        let found = on_backend!(&self.readers, ops, readers => ops::case_for_ticket(readers, &ticket.to_string()).await)?;
        found
            .map(|case_id| {
                case_id
                    .parse()
                    .map_err(|error| StoreError::Corrupt(format!("cases row {case_id}: {error}")))
            })
            .transpose()
    }

    /// All principals, by name.
    pub async fn principals(&self) -> Result<Vec<Principal>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::principals(readers).await)
    }

    /// A case's events in sequence order, and the view rebuilt from them.
    pub async fn case(&self, case_id: &CaseId) -> Result<(CaseView, Vec<Event>), StoreError> {
        on_backend!(&self.readers, ops, readers => ops::case(readers, case_id).await)
    }

    /// An evidence record by its ID (the ID a held upload answered with), or
    /// `None` when no record has that ID.
    pub async fn evidence_record(
        &self,
        record: &CaseId,
    ) -> Result<Option<EvidenceRecord>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::evidence_record(readers, record).await)
    }

    /// A case's projection as stored with its latest event, without reading
    /// its events: for decisions that need only the requested change, which
    /// never changes. [`Store::case`] rebuilds the view from the events.
    pub async fn case_view(&self, case_id: &CaseId) -> Result<CaseView, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::case_view(readers, case_id).await)
    }

    /// Cases, newest first, optionally only those in `state`.
    pub async fn cases(
        &self,
        state: Option<CaseState>,
        limit: u32,
    ) -> Result<Vec<CaseSummary>, StoreError> {
        self.cases_filtered(state, limit, false, true).await
    }

    /// [`Store::cases`], only those an observed change no case sanctioned
    /// opened when `unsanctioned`, and drill cases (`custody drill`) only
    /// when `include_drills`.
    pub async fn cases_filtered(
        &self,
        state: Option<CaseState>,
        limit: u32,
        unsanctioned: bool,
        include_drills: bool,
    ) -> Result<Vec<CaseSummary>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::cases(readers, state, limit, unsanctioned, include_drills).await)
    }

    /// How the embedded store plans each case listing (`EXPLAIN QUERY
    /// PLAN`, one text per listing: all cases, by state, unsanctioned, both)
    /// and then the delivery worker's backlog read; `None` on PostgreSQL.
    /// For the test that keeps these reads on their indexes.
    #[doc(hidden)]
    pub async fn read_plans(&self) -> Result<Option<Vec<String>>, StoreError> {
        let Readers::Sqlite(pool) = &self.readers else {
            return Ok(None);
        };
        let mut plans = Vec::new();
        for statement in backend::sqlite::CASE_LISTINGS
            .into_iter()
            .chain([backend::sqlite::OUTBOX_BACKLOG])
        {
            let explain = format!("EXPLAIN QUERY PLAN {statement}");
            let query = sqlx::query(sqlx::AssertSqlSafe(explain));
            let query = if statement.contains("$1") {
                query.bind("open").bind(100_i64).bind(false)
            } else {
                query
            };
            let rows = query.fetch_all(pool).await?;
            let details: Vec<String> = rows
                .iter()
                .map(|row| sqlx::Row::try_get::<String, _>(row, "detail"))
                .collect::<Result<_, _>>()?;
            plans.push(details.join("; "));
        }
        Ok(Some(plans))
    }

    /// Cases with an obligation due by `now` that the ledger has not acted on
    /// (see [`custody_core::lifecycle::pending_obligations`]); an index on the
    /// earliest deadline keeps the scan to the cases that are due.
    pub async fn cases_due(&self, now: Timestamp) -> Result<Vec<CaseView>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::cases_due(readers, now).await)
    }

    /// Number of events in the log.
    pub async fn log_size(&self) -> Result<u64, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::log_size(readers).await)
    }

    /// One scan of the continuous monitor ([`custody_core::audit::Watch`]):
    /// the rows appended since its last scan are audited, the rows and
    /// checkpoints it verified before are re-checked, in one consistent
    /// snapshot; deadlines are judged at the store's clock.
    pub async fn watch(
        &self,
        watch: &mut custody_core::audit::Watch,
    ) -> Result<Report, StoreError> {
        let now = self.clock.now();
        on_backend!(&self.readers, ops, readers => ops::watch_pool(readers, watch, now).await)
    }

    /// Audits the whole store (see [`ReadOnlyStore::audit`]).
    pub async fn audit(
        &self,
        trusted_keys: Vec<custody_log::VerifierKey>,
        since: Option<String>,
    ) -> Result<Report, StoreError> {
        let options = AuditOptions {
            trusted_keys,
            since,
            ..AuditOptions::default()
        };
        let now = self.clock.now();
        on_backend!(&self.readers, ops, readers => ops::audit_pool(readers, options, now).await)
    }
}

/// What an audit checks the store against, beyond the store itself.
#[derive(Clone, Debug, Default)]
pub struct AuditOptions {
    /// The log's verifier keys (never from the database).
    pub trusted_keys: Vec<custody_log::VerifierKey>,
    /// A checkpoint an auditor saved earlier: the log must extend it.
    pub since: Option<String>,
    /// Checkpoints held outside the database ([`checkpoint_file`]).
    pub outside: Vec<custody_core::audit::OutsideCheckpoint>,
    /// The servers' checkpoint interval in seconds (0: the default), which
    /// decides when entries without a checkpoint are an error.
    pub checkpoint_interval_seconds: u64,
    /// Told how far the audit is, after each page of events.
    pub progress: Option<AuditProgress>,
    /// With `verify --witness`: the newest size enough witnesses cosigned
    /// and who ([`custody_core::audit::LogAudit::witnessed`]).
    pub witnessed: Option<(u64, Vec<String>)>,
    /// Log entries after which the audit lets go of a case no row touched
    /// (0: 32,768), keeping a digest of its case row instead of its trail
    /// ([`custody_core::audit::Retirement::Settled`]). The report is the
    /// same whatever it is; a smaller one holds less and reads back more.
    pub settle_after_entries: u64,
}

/// A callback told, as an audit reads the log, how many events it has
/// checked and how many the log holds (`custody verify`'s progress bar).
#[derive(Clone)]
pub struct AuditProgress(pub std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>);

impl std::fmt::Debug for AuditProgress {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("AuditProgress")
    }
}

impl ReadOnlyStore {
    /// Opens an existing data directory without the ability to write. Works
    /// while a server is running on the same directory.
    pub async fn open(data_dir: &Path) -> Result<ReadOnlyStore, StoreError> {
        ReadOnlyStore::open_at(&Location::Embedded(data_dir.to_path_buf())).await
    }

    /// Opens an existing store without the ability to write (on PostgreSQL,
    /// every transaction is read-only). Works while servers are running.
    pub async fn open_at(location: &Location) -> Result<ReadOnlyStore, StoreError> {
        let readers = match location {
            Location::Embedded(data_dir) => {
                let path = data_dir.join(DATABASE_FILE);
                if !path.is_file() {
                    return Err(StoreError::DataDirectory(format!(
                        "{} holds no Custody database ({} is missing); pass the directory given to `custody init` or `custody serve`",
                        data_dir.display(),
                        path.display()
                    )));
                }
                // The audit streams every row: a deep row buffer lets SQLite's
                // worker thread run ahead instead of waking the reader every 50 rows.
                Readers::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect_with(connect_options(&path).read_only(true).row_buffer_size(8192))
                        .await?,
                )
            }
            Location::Postgres(url) => {
                let options =
                    postgres_options(url)?.options([("default_transaction_read_only", "on")]);
                // One bounded attempt first: a pool retries a refused
                // connection until its 30-second acquire timeout and then
                // reports only that it timed out, not why.
                let probe = connect_postgres(location, &options).await?;
                let _ = sqlx::Connection::close(probe).await;
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                    .map_err(|error| unreachable_database(location, error))?;
                let ledger: bool = sqlx::query_scalar("SELECT to_regclass('events') IS NOT NULL")
                    .fetch_one(&pool)
                    .await?;
                if !ledger {
                    return Err(StoreError::Postgres(format!(
                        "{location} holds no Custody ledger; pass the database given to `custody init` or `custody serve`"
                    )));
                }
                Readers::Postgres(pool)
            }
        };
        Ok(ReadOnlyStore {
            readers,
            clock: SystemClock::shared(),
        })
    }

    /// Checks every event, chain, case and rule, recomputes the Merkle log
    /// and checks every stored checkpoint against `trusted_keys`, and, given
    /// `since`, that the log extends that saved checkpoint; see
    /// [`custody_core::audit`].
    pub async fn audit(
        &self,
        trusted_keys: Vec<custody_log::VerifierKey>,
        since: Option<String>,
    ) -> Result<Report, StoreError> {
        self.audit_with(AuditOptions {
            trusted_keys,
            since,
            ..AuditOptions::default()
        })
        .await
    }

    /// Audits the whole store as [`ReadOnlyStore::audit`] does, also against
    /// the checkpoints held outside the database in `options`, judging
    /// entries no checkpoint covers by the servers' checkpoint interval.
    pub async fn audit_with(&self, options: AuditOptions) -> Result<Report, StoreError> {
        let now = self.clock.now();
        on_backend!(&self.readers, ops, readers => ops::audit_pool(readers, options, now).await)
    }

    /// One page of an export: the log entries from index `since` (inclusive)
    /// to `until` (exclusive; `None` for the end of the log), of `case_id`
    /// or of every case, in log order, at most `limit` (capped at 2^20).
    pub async fn export_page(
        &self,
        since: u64,
        until: Option<u64>,
        case_id: Option<&CaseId>,
        limit: u64,
    ) -> Result<Vec<LogEntry>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::export_page(readers, since, until, case_id.map(CaseId::as_str), limit).await)
    }

    /// Number of events in the log: the end of what an export started now
    /// can read.
    pub async fn log_size(&self) -> Result<u64, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::log_size(readers).await)
    }

    /// The newest stored checkpoint.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::read_latest_checkpoint(readers).await)
    }

    /// [`Store::latest_checkpoint`] with its witnesses' cosignatures
    /// appended to the note.
    pub async fn latest_cosigned_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let Some(latest) = self.latest_checkpoint().await? else {
            return Ok(None);
        };
        self.with_cosignatures(latest).await.map(Some)
    }

    /// `checkpoint` with the stored cosignatures of it appended to its note.
    pub async fn with_cosignatures(
        &self,
        mut checkpoint: StoredCheckpoint,
    ) -> Result<StoredCheckpoint, StoreError> {
        let cosignatures = self.cosignatures(Some(checkpoint.size)).await?;
        checkpoint.note = StoredCosignature::append_to(
            &checkpoint.note,
            checkpoint.size,
            &checkpoint.root,
            &cosignatures,
        );
        Ok(checkpoint)
    }

    /// The stored cosignatures at checkpoint size `size`, or of every size.
    pub async fn cosignatures(
        &self,
        size: Option<u64>,
    ) -> Result<Vec<StoredCosignature>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::cosignatures(readers, size).await)
    }

    /// The smallest stored checkpoint of at least `size` entries: the first
    /// one that covered the entries below `size`.
    pub async fn checkpoint_at_least(
        &self,
        size: u64,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::checkpoint_at_least(readers, size).await)
    }

    /// Every stored checkpoint smaller than `size`, smallest first.
    pub async fn checkpoints_below(&self, size: u64) -> Result<Vec<StoredCheckpoint>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::checkpoints_below(readers, size).await)
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves.
    pub async fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::read_inclusion_proof(readers, index, size).await)
    }

    /// The consistency proof from the tree of `old_size` to that of `new_size` leaves.
    pub async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::read_consistency_proof(readers, old_size, new_size).await)
    }

    /// The log's recorded origin, if any.
    pub async fn log_origin(&self) -> Result<Option<String>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::log_origin(readers).await)
    }

    /// The events of a deployment record (the policy or administration
    /// record) below log index `until`, in log order.
    pub async fn record_entries(
        &self,
        record: DeploymentRecord,
        until: u64,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let key = record.key();
        on_backend!(&self.readers, ops, readers => ops::record_entries(readers, key, until).await)
    }

    /// Every row of the `tokens` table with its secret's SHA-256, by token
    /// ID (a deployment has few tokens), for a whole-log bundle.
    pub async fn token_rows(&self) -> Result<Vec<StoredToken>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::token_rows(readers).await)
    }

    /// One page of the `idempotency` table, ordered by principal and key:
    /// the records after `after` (a principal and key), at most `limit`
    /// (capped at 2^16).
    pub async fn idempotency_page(
        &self,
        after: Option<(&str, &str)>,
        limit: u64,
    ) -> Result<Vec<StoredIdempotency>, StoreError> {
        on_backend!(&self.readers, ops, readers => ops::idempotency_page(readers, after, limit).await)
    }

    /// The same store, judging deadlines in its audits by `clock` instead of
    /// the system clock.
    pub fn with_clock(self, clock: SharedClock) -> ReadOnlyStore {
        ReadOnlyStore { clock, ..self }
    }
}

pub(crate) fn decode_in_parallel(page: &[StoredEvent]) -> Vec<DecodedRow> {
    let threads = std::thread::available_parallelism()
        .map(|count| count.get())
        .unwrap_or(1)
        .clamp(1, 16);
    if threads == 1 || page.len() < 64 {
        return page.iter().map(decode_row).collect();
    }
    let chunk = page.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = page
            .chunks(chunk)
            .map(|rows| scope.spawn(move || rows.iter().map(decode_row).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            // Safe: a decoding thread cannot panic on input; decode_row is total.
            .flat_map(|worker| worker.join().expect("decoding thread panicked"))
            .collect()
    })
}

fn postgres_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(|error| {
            StoreError::Postgres(format!(
                "cannot use database URL {}: {error}",
                redact_url(url)
            ))
        })?
        .application_name("custody"))
}

/// How long the first connection to PostgreSQL may take (a host that drops
/// packets would otherwise hold a command for the system's TCP timeout).
const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection to the PostgreSQL database at `location`, in one attempt
/// of at most [`POSTGRES_CONNECT_TIMEOUT`]: a refused port, an unknown
/// host or a refused login fails at once with its cause.
async fn connect_postgres(
    location: &Location,
    options: &PgConnectOptions,
) -> Result<sqlx::PgConnection, StoreError> {
    match tokio::time::timeout(POSTGRES_CONNECT_TIMEOUT, options.connect()).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(unreachable_database(location, error)),
        Err(_) => Err(StoreError::Postgres(format!(
            "cannot connect to {location}: no answer within {} seconds\nhint: check the host and port of the database URL, and that PostgreSQL runs there and is reachable from this machine",
            POSTGRES_CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

fn unreachable_database(location: &Location, error: sqlx::Error) -> StoreError {
    StoreError::Postgres(format!(
        "cannot connect to {location}: {error}\nhint: check the host, port, user and password of the database URL, and that PostgreSQL runs there"
    ))
}

fn connect_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
}

/// The columns [`token_from_row`] reads. A macro so that queries stay `&'static str`.
macro_rules! token_select {
    () => {
        "SELECT token_id, principal_id, created_at, created_by, expires_at, revoked_at, revoked_by FROM tokens"
    };
}
pub(crate) use token_select;

/// The columns `identity_from_row` reads. A macro so that queries stay `&'static str`.
macro_rules! identity_columns {
    () => {
        "connector, external_user, principal_id, mapped_at, mapped_by"
    };
}
pub(crate) use identity_columns;
