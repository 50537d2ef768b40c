//! Custody's embedded store: one SQLite file holding the case ledger.
//!
//! Durability and ordering:
//! - The database runs in WAL mode with `synchronous=FULL`, so a committed
//!   transaction has been fsynced before the commit returns; a write is
//!   acknowledged only after its commit returns.
//! - All writes go through one writer task ([`writer`]), which groups the
//!   writes waiting for it into one `BEGIN IMMEDIATE` transaction (group
//!   commit): one fsync covers many appends, and each write runs in its own
//!   savepoint so a refused write never takes its neighbours down with it.
//! - Events are append-only: triggers refuse `UPDATE` and `DELETE` on the
//!   events table, and `custody verify` detects edits made behind the store's
//!   back.
//!
//! Readers (queries, `custody verify`) use separate read-only connections and
//! see consistent snapshots while the writer works.

pub mod log;
mod migrate;
pub mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use custody_core::audit::{
    decode_row, Auditor, DecodedRow, LogAudit, Report, StoredCaseHead, StoredCheckpointRow,
    StoredEvent,
};
use custody_core::command::CaseCommand;
use custody_core::lifecycle::Refusal;
use custody_core::model::{Actor, Principal, PrincipalId, PrincipalKind};
use custody_core::{CaseId, CaseState, CaseView, Event, Sha256Hash, Timestamp};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};
use tokio::sync::{mpsc, oneshot};

/// The file name of the embedded database inside a data directory.
pub const DATABASE_FILE: &str = "custody.db";

/// The prefix of every bearer token, so secret scanners can recognise one.
pub const TOKEN_PREFIX: &str = "cust_";

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    writer: mpsc::Sender<writer::Job>,
    readers: SqlitePool,
    path: PathBuf,
    stats: std::sync::Arc<writer::CommitStats>,
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

/// A read-only view of a store, for auditors. Never writes.
pub struct ReadOnlyStore {
    readers: SqlitePool,
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
}

/// The result of a write, as returned to the client and replayed for retries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WriteOutcome {
    /// The case written to.
    pub case_id: CaseId,
    /// The case's state after the write.
    pub state: CaseState,
    /// Events appended by this write (empty when nothing new was appended).
    pub appended: Vec<AppendedEvent>,
    /// True when this result was replayed for a repeated idempotency key.
    pub replayed: bool,
    /// True when a request matched an open case with the same ticket and that case was returned.
    pub existing: bool,
}

/// One appended event, as reported to the writer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppendedEvent {
    /// The case it belongs to (a merge appends to two cases).
    pub case_id: String,
    /// The event ID.
    pub event_id: String,
    /// Its kind.
    pub kind: String,
    /// Its sequence number in the case.
    pub seq: u64,
    /// Its index in the log.
    pub log_index: u64,
}

/// A row of the case list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaseSummary {
    /// The case ID.
    pub case_id: String,
    /// Its state.
    pub state: String,
    /// A one-line description of the change.
    pub summary: String,
    /// The requester.
    pub requester: String,
    /// The external ticket.
    pub ticket: Option<String>,
    /// When it was opened.
    pub opened_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// A newly issued bearer token. The secret exists only in this value.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedToken {
    /// The public token ID, recorded in the actor context of events.
    pub token_id: String,
    /// The bearer secret; shown once, stored only as a hash.
    pub token: String,
    /// The principal it authenticates.
    pub principal: String,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
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

/// What is known about an issued token (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    /// The public token ID.
    pub token_id: String,
    /// The principal it authenticates.
    pub principal: String,
    /// When it was issued.
    pub created_at: String,
    /// Who issued it.
    pub created_by: Option<String>,
    /// When it stops working, if ever.
    pub expires_at: Option<String>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

/// A principal authenticated by a token.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// The principal.
    pub principal: Principal,
    /// The public ID of the token that authenticated it.
    pub token_id: String,
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
    /// The database failed; the write was not acknowledged.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The data directory could not be used.
    #[error("{0}")]
    DataDirectory(String),
    /// Stored data could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A log query asked for sizes or indexes the log cannot answer.
    #[error("{0}")]
    InvalidRequest(String),
    /// The writer task has stopped (the server is shutting down).
    #[error("the store is shutting down")]
    Closed,
}

/// Options of [`Store::open_with`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Append every event to the Merkle log (the default). Turning it off
    /// exists only so that `cargo xtask bench` can measure what the log
    /// costs: a store written without it fails `custody verify`
    /// (`log.leaf-missing`).
    pub merkle_log: bool,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions { merkle_log: true }
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
        migrate::run(&mut writer_connection).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(connect_options(&path).read_only(true))
            .await?;
        let (sender, receiver) = mpsc::channel(4096);
        let stats = std::sync::Arc::new(writer::CommitStats::default());
        tokio::spawn(writer::run(
            writer_connection,
            receiver,
            stats.clone(),
            store_options.merkle_log,
        ));
        Ok(Store {
            writer: sender,
            readers,
            path,
            stats,
        })
    }

    /// How the group commit has batched writes so far.
    pub fn commit_counters(&self) -> CommitCounters {
        self.stats.snapshot()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies a case write. Returns once the result is durable.
    pub async fn write(&self, write: CaseWrite) -> Result<WriteOutcome, StoreError> {
        self.submit(|reply| writer::Job::Case(Box::new(write), reply))
            .await
    }

    /// Adds a principal.
    pub async fn add_principal(
        &self,
        principal: Principal,
        created_by: Option<PrincipalId>,
    ) -> Result<Principal, StoreError> {
        self.submit(|reply| writer::Job::AddPrincipal {
            principal,
            created_by,
            reply,
        })
        .await
    }

    /// Issues a new bearer token for `principal`.
    pub async fn create_token(
        &self,
        principal: PrincipalId,
        ttl_seconds: Option<u64>,
        created_by: Option<PrincipalId>,
    ) -> Result<IssuedToken, StoreError> {
        self.submit(|reply| writer::Job::CreateToken {
            principal,
            ttl_seconds,
            created_by,
            reply,
        })
        .await
    }

    /// Signs and stores a checkpoint of the log as it stands now (all
    /// acknowledged writes included), unless the latest checkpoint already
    /// covers the whole log. `None` while the log is empty.
    pub async fn checkpoint(
        &self,
        origin: &str,
        signers: std::sync::Arc<Vec<custody_log::SignerKey>>,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let origin = origin.to_string();
        self.submit(|reply| writer::Job::Checkpoint {
            origin,
            signers,
            reply,
        })
        .await
    }

    /// The newest stored checkpoint.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let mut connection = self.readers.acquire().await?;
        log::latest_checkpoint(&mut connection).await
    }

    /// Log entries `[start, end)`, at most `limit` of them.
    pub async fn entries(
        &self,
        start: u64,
        end: u64,
        limit: u64,
    ) -> Result<Vec<LogEntry>, StoreError> {
        if start > end {
            return Err(StoreError::InvalidRequest(format!(
                "start {start} is after end {end}"
            )));
        }
        let end = end.min(start.saturating_add(limit));
        let rows = sqlx::query(
            "SELECT log_index, case_id, bytes FROM events WHERE log_index >= ? AND log_index < ? ORDER BY log_index",
        )
        .bind(start as i64)
        .bind(end as i64)
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                let index: i64 = row.try_get("log_index")?;
                Ok(LogEntry {
                    index: index as u64,
                    leaf: row.try_get("bytes")?,
                    case_id: row.try_get("case_id")?,
                })
            })
            .collect()
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves.
    pub async fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut connection = self.readers.acquire().await?;
        self.check_size(&mut connection, size).await?;
        log::inclusion_proof(&mut connection, index, size).await
    }

    /// The consistency proof from the tree of `old_size` to that of `new_size` leaves.
    pub async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut connection = self.readers.acquire().await?;
        self.check_size(&mut connection, new_size).await?;
        log::consistency_proof(&mut connection, old_size, new_size).await
    }

    /// Every event of a case that `checkpoint` covers, with its leaf bytes and
    /// inclusion proof against that checkpoint, in sequence order.
    pub async fn case_proofs(
        &self,
        case_id: &CaseId,
        checkpoint: &StoredCheckpoint,
    ) -> Result<Vec<(LogEntry, Vec<[u8; 32]>)>, StoreError> {
        let mut connection = self.readers.acquire().await?;
        let rows =
            sqlx::query("SELECT log_index, bytes FROM events WHERE case_id = ? ORDER BY seq")
                .bind(case_id.as_str())
                .fetch_all(&mut *connection)
                .await?;
        if rows.is_empty() {
            return Err(StoreError::CaseNotFound(case_id.to_string()));
        }
        let mut proofs = Vec::with_capacity(rows.len());
        for row in rows {
            let index: i64 = row.try_get("log_index")?;
            let index = index as u64;
            if index >= checkpoint.size {
                continue;
            }
            let proof = log::inclusion_proof(&mut connection, index, checkpoint.size).await?;
            proofs.push((
                LogEntry {
                    index,
                    leaf: row.try_get("bytes")?,
                    case_id: case_id.to_string(),
                },
                proof,
            ));
        }
        Ok(proofs)
    }

    async fn check_size(
        &self,
        connection: &mut sqlx::SqliteConnection,
        size: u64,
    ) -> Result<(), StoreError> {
        let log_size: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(log_index) + 1, 0) FROM events")
                .fetch_one(&mut *connection)
                .await?;
        if size > log_size as u64 {
            return Err(StoreError::InvalidRequest(format!(
                "the log has {log_size} entries; size {size} does not exist yet"
            )));
        }
        Ok(())
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
    /// Revoking a revoked token returns it unchanged.
    pub async fn revoke_token(
        &self,
        token_id: &str,
        revoked_by: PrincipalId,
    ) -> Result<TokenInfo, StoreError> {
        let token_id = token_id.to_string();
        self.submit(|reply| writer::Job::RevokeToken {
            token_id,
            revoked_by,
            reply,
        })
        .await
    }

    /// Stores a new delegation grant.
    pub async fn grant_delegation(
        &self,
        grant: custody_core::delegation::DelegationGrant,
    ) -> Result<custody_core::delegation::DelegationGrant, StoreError> {
        self.submit(|reply| writer::Job::Delegation {
            grant,
            new: true,
            reply,
        })
        .await
    }

    /// Marks a delegation grant revoked at `at`; revoking a revoked grant
    /// keeps its first revocation time.
    pub async fn revoke_delegation(
        &self,
        grant_id: &str,
        at: Timestamp,
    ) -> Result<custody_core::delegation::DelegationGrant, StoreError> {
        let mut grant = self
            .delegations()
            .await?
            .into_iter()
            .find(|grant| grant.grant_id == grant_id)
            .ok_or_else(|| {
                StoreError::InvalidRequest(format!("delegation grant {grant_id} does not exist"))
            })?;
        if grant.revoked_at.is_some() {
            return Ok(grant);
        }
        grant.revoked_at = Some(at);
        self.submit(|reply| writer::Job::Delegation {
            grant,
            new: false,
            reply,
        })
        .await
    }

    /// Every delegation grant, in force or not.
    pub async fn delegations(
        &self,
    ) -> Result<Vec<custody_core::delegation::DelegationGrant>, StoreError> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT grant_json FROM delegations ORDER BY grant_id")
                .fetch_all(&self.readers)
                .await?;
        rows.iter()
            .map(|json| {
                serde_json::from_str(json)
                    .map_err(|error| StoreError::Corrupt(format!("delegation grant: {error}")))
            })
            .collect()
    }

    /// Issued tokens, optionally of one principal, newest first.
    pub async fn tokens(
        &self,
        principal: Option<&PrincipalId>,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        let rows = sqlx::query(concat!(
            token_select!(),
            " WHERE (?1 IS NULL OR principal_id = ?1) ORDER BY created_at DESC, token_id"
        ))
        .bind(principal.map(PrincipalId::as_str))
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// One token's record.
    pub async fn token(&self, token_id: &str) -> Result<Option<TokenInfo>, StoreError> {
        let row = sqlx::query(concat!(token_select!(), " WHERE token_id = ?"))
            .bind(token_id)
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// The principal a bearer token authenticates, or `None` when the token
    /// is unknown, expired or revoked.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Authenticated>, StoreError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 256 {
            return Ok(None);
        }
        let digest = Sha256Hash::of(token.as_bytes());
        let row = sqlx::query(
            "SELECT t.token_id, t.expires_at, p.principal_id, p.display_name, p.kind, p.groups_json, p.org
             FROM tokens t JOIN principals p ON p.principal_id = t.principal_id
             WHERE t.secret_sha256 = ? AND t.revoked_at IS NULL",
        )
        .bind(digest.0.to_vec())
        .fetch_optional(&self.readers)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let expires_at: Option<String> = row.try_get("expires_at")?;
        if let Some(expires_at) = expires_at {
            let expires_at = Timestamp::parse(&expires_at)
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
            if expires_at <= Timestamp::now() {
                return Ok(None);
            }
        }
        Ok(Some(Authenticated {
            token_id: row.try_get("token_id")?,
            principal: principal_from_row(&row)?,
        }))
    }

    /// One principal.
    pub async fn principal(&self, id: &PrincipalId) -> Result<Option<Principal>, StoreError> {
        let row = sqlx::query(
            "SELECT principal_id, display_name, kind, groups_json, org FROM principals WHERE principal_id = ?",
        )
        .bind(id.as_str())
        .fetch_optional(&self.readers)
        .await?;
        row.map(|row| principal_from_row(&row)).transpose()
    }

    /// All principals, by name.
    pub async fn principals(&self) -> Result<Vec<Principal>, StoreError> {
        let rows = sqlx::query(
            "SELECT principal_id, display_name, kind, groups_json, org FROM principals ORDER BY principal_id",
        )
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(principal_from_row).collect()
    }

    /// A case's events in sequence order, and the view rebuilt from them.
    pub async fn case(&self, case_id: &CaseId) -> Result<(CaseView, Vec<Event>), StoreError> {
        let rows = sqlx::query("SELECT bytes FROM events WHERE case_id = ? ORDER BY seq")
            .bind(case_id.as_str())
            .fetch_all(&self.readers)
            .await?;
        let events = rows
            .iter()
            .map(|row| {
                let bytes: Vec<u8> = row.try_get("bytes")?;
                Event::decode(&bytes).map_err(|error| StoreError::Corrupt(error.to_string()))
            })
            .collect::<Result<Vec<Event>, StoreError>>()?;
        let view = CaseView::replay(&events)
            .ok_or_else(|| StoreError::CaseNotFound(case_id.to_string()))?;
        Ok((view, events))
    }

    /// A case's projection as stored with its latest event, without reading
    /// its events: for decisions that need only the requested change, which
    /// never changes. [`Store::case`] rebuilds the view from the events.
    pub async fn case_view(&self, case_id: &CaseId) -> Result<CaseView, StoreError> {
        let view: Option<Vec<u8>> = sqlx::query_scalar("SELECT view FROM cases WHERE case_id = ?")
            .bind(case_id.as_str())
            .fetch_optional(&self.readers)
            .await?;
        let view = view.ok_or_else(|| StoreError::CaseNotFound(case_id.to_string()))?;
        serde_json::from_slice(&view)
            .map_err(|error| StoreError::Corrupt(format!("case {case_id} projection: {error}")))
    }

    /// Cases, newest first, optionally only those in `state`.
    pub async fn cases(
        &self,
        state: Option<CaseState>,
        limit: u32,
    ) -> Result<Vec<CaseSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT case_id, state, summary, requester, ticket, opened_at, updated_at FROM cases
             WHERE (?1 IS NULL OR state = ?1) ORDER BY opened_at DESC, case_id DESC LIMIT ?2",
        )
        .bind(state.map(CaseState::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(CaseSummary {
                    case_id: row.try_get("case_id")?,
                    state: row.try_get("state")?,
                    summary: row.try_get("summary")?,
                    requester: row.try_get("requester")?,
                    ticket: row.try_get("ticket")?,
                    opened_at: row.try_get("opened_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Cases with an obligation due by `now` that the ledger has not acted on
    /// (see [`custody_core::lifecycle::pending_obligations`]); an index on the
    /// earliest deadline keeps the scan to the cases that are due.
    pub async fn cases_due(&self, now: Timestamp) -> Result<Vec<CaseView>, StoreError> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT view FROM cases WHERE next_deadline IS NOT NULL AND next_deadline <= ? ORDER BY next_deadline",
        )
        .bind(now.to_string())
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|view| {
                serde_json::from_slice(view)
                    .map_err(|error| StoreError::Corrupt(format!("case projection: {error}")))
            })
            .collect()
    }

    /// Number of events in the log.
    pub async fn log_size(&self) -> Result<u64, StoreError> {
        let size: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(log_index) + 1, 0) FROM events")
            .fetch_one(&self.readers)
            .await?;
        Ok(size as u64)
    }

    /// Audits the whole store (see [`ReadOnlyStore::audit`]).
    pub async fn audit(
        &self,
        trusted_keys: Vec<custody_log::VerifierKey>,
        since: Option<String>,
    ) -> Result<Report, StoreError> {
        audit_pool(&self.readers, trusted_keys, since).await
    }
}

impl ReadOnlyStore {
    /// Opens an existing data directory without the ability to write. Works
    /// while a server is running on the same directory.
    pub async fn open(data_dir: &Path) -> Result<ReadOnlyStore, StoreError> {
        let path = data_dir.join(DATABASE_FILE);
        if !path.is_file() {
            return Err(StoreError::DataDirectory(format!(
                "{} holds no Custody database ({} is missing); pass the directory given to `custody init` or `custody serve`",
                data_dir.display(),
                path.display()
            )));
        }
        // The audit streams every row: a deep row buffer lets SQLite's worker
        // thread run ahead instead of waking the reader every 50 rows.
        let readers = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect_options(&path).read_only(true).row_buffer_size(8192))
            .await?;
        Ok(ReadOnlyStore { readers })
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
        audit_pool(&self.readers, trusted_keys, since).await
    }
}

/// Rows are read in pages inside one read transaction, so the audit sees one
/// consistent snapshot even while the server appends.
async fn audit_pool(
    pool: &SqlitePool,
    trusted_keys: Vec<custody_log::VerifierKey>,
    since: Option<String>,
) -> Result<Report, StoreError> {
    const PAGE: i64 = 16_384;
    let mut connection = pool.acquire().await?;
    sqlx::query("BEGIN").execute(&mut *connection).await?;
    let checkpoints = sqlx::query("SELECT size, root, note FROM checkpoints ORDER BY size")
        .fetch_all(&mut *connection)
        .await?
        .iter()
        .map(|row| {
            let size: i64 = row.try_get("size")?;
            Ok(StoredCheckpointRow {
                size: size as u64,
                root: row.try_get("root")?,
                note: row.try_get("note")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let stored_leaves: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM log_nodes WHERE level = 0")
        .fetch_one(&mut *connection)
        .await?;
    let mut auditor = Auditor::with_log(LogAudit {
        trusted_keys,
        checkpoints,
        since,
        stored_leaves: stored_leaves as u64,
        now: Some(Timestamp::now()),
    });
    // Fetching the next page overlaps with decoding the current one: the
    // database work runs on sqlx's worker thread, the decoding on the others.
    let mut page = fetch_audit_page(&mut connection, -1, PAGE).await?;
    loop {
        let full = page.len() as i64 == PAGE;
        let last = page.last().map(|row| row.log_index as i64).unwrap_or(-1);
        let decoding = tokio::task::spawn_blocking(move || {
            let decoded = decode_in_parallel(&page);
            (page, decoded)
        });
        let next = if full {
            Some(fetch_audit_page(&mut connection, last, PAGE).await?)
        } else {
            None
        };
        let (decoded_page, decoded) = decoding
            .await
            .map_err(|error| StoreError::Corrupt(format!("decoding failed: {error}")))?;
        for (row, decoded) in decoded_page.iter().zip(decoded) {
            auditor.observe_decoded(row, decoded);
        }
        match next {
            Some(next) => page = next,
            None => break,
        }
    }
    let heads = sqlx::query("SELECT case_id, head_seq, head_hash, state FROM cases")
        .fetch_all(&mut *connection)
        .await?
        .iter()
        .map(|row| {
            Ok(StoredCaseHead {
                case_id: row.try_get("case_id")?,
                head_seq: row.try_get("head_seq")?,
                head_hash: row.try_get("head_hash")?,
                state: row.try_get("state")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    sqlx::query("COMMIT").execute(&mut *connection).await?;
    Ok(auditor.finish(heads))
}

async fn fetch_audit_page(
    connection: &mut sqlx::SqliteConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT e.log_index, e.case_id, e.seq, e.bytes, n.hash AS leaf FROM events e
         LEFT JOIN log_nodes n ON n.level = 0 AND n.idx = e.log_index
         WHERE e.log_index > ? ORDER BY e.log_index LIMIT ?",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *connection)
    .await?;
    rows.iter()
        .map(|row| {
            let log_index: i64 = row.try_get("log_index")?;
            Ok(StoredEvent {
                log_index: log_index as u64,
                case_id: row.try_get("case_id")?,
                seq: row.try_get("seq")?,
                bytes: row.try_get("bytes")?,
                stored_leaf: row.try_get("leaf")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(StoreError::from)
}

fn decode_in_parallel(page: &[StoredEvent]) -> Vec<DecodedRow> {
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

pub(crate) fn token_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<TokenInfo, StoreError> {
    Ok(TokenInfo {
        token_id: row.try_get("token_id")?,
        principal: row.try_get("principal_id")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        revoked_by: row.try_get("revoked_by")?,
    })
}

fn principal_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Principal, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(what);
    let id: String = row.try_get("principal_id")?;
    let kind: String = row.try_get("kind")?;
    let groups: String = row.try_get("groups_json")?;
    Ok(Principal {
        id: PrincipalId::from_str(&id).map_err(|error| corrupt(error.to_string()))?,
        display_name: row.try_get("display_name")?,
        kind: PrincipalKind::from_str(&kind).map_err(|error| corrupt(error.to_string()))?,
        groups: serde_json::from_str(&groups).map_err(|error| corrupt(error.to_string()))?,
        org: row.try_get("org")?,
    })
}
