//! The single writer and its group commit.
//!
//! Every write is a [`Job`] sent to one task that owns the only read-write
//! connection. The task takes the first waiting job and every job queued
//! behind it (up to [`MAX_BATCH`]), runs them in one `BEGIN IMMEDIATE`
//! transaction, one savepoint each, and commits once. Replies are sent only
//! after the commit has returned, that is after `synchronous=FULL` has made the
//! batch durable: nothing is acknowledged that a crash could lose.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use custody_core::case::CaseView;
use custody_core::command::CaseCommand;
use custody_core::event::Event;
use custody_core::lifecycle::{self, Draft, Placement, Policy, Refusal};
use custody_core::model::{Change, Principal, PrincipalId};
use custody_core::{CaseId, Sha256Hash, Timestamp};
use sqlx::{Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::{AppendedEvent, CaseWrite, IssuedToken, StoreError, WriteOutcome, TOKEN_PREFIX};

/// Most jobs committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// One write waiting for the writer.
pub enum Job {
    /// A case write.
    Case(
        Box<CaseWrite>,
        oneshot::Sender<Result<WriteOutcome, StoreError>>,
    ),
    /// Add a principal.
    AddPrincipal {
        /// The new principal.
        principal: Principal,
        /// The admin adding it, if any (none during `init`).
        created_by: Option<PrincipalId>,
        /// Where the result goes.
        reply: oneshot::Sender<Result<Principal, StoreError>>,
    },
    /// Issue a token.
    CreateToken {
        /// Whose token.
        principal: PrincipalId,
        /// Lifetime; `None` never expires.
        ttl_seconds: Option<u64>,
        /// The admin issuing it, if any.
        created_by: Option<PrincipalId>,
        /// Where the result goes.
        reply: oneshot::Sender<Result<IssuedToken, StoreError>>,
    },
}

enum Done {
    Case(
        oneshot::Sender<Result<WriteOutcome, StoreError>>,
        Result<WriteOutcome, StoreError>,
    ),
    Principal(
        oneshot::Sender<Result<Principal, StoreError>>,
        Result<Principal, StoreError>,
    ),
    Token(
        oneshot::Sender<Result<IssuedToken, StoreError>>,
        Result<IssuedToken, StoreError>,
    ),
}

/// Counters shared between the writer and [`crate::Store::commit_counters`].
#[derive(Default)]
pub(crate) struct CommitStats {
    commits: AtomicU64,
    jobs: AtomicU64,
    events: AtomicU64,
}

impl CommitStats {
    pub(crate) fn snapshot(&self) -> crate::CommitCounters {
        crate::CommitCounters {
            commits: self.commits.load(Ordering::Relaxed),
            jobs: self.jobs.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
        }
    }
}

/// Runs the writer until every [`crate::Store`] handle is dropped.
pub(crate) async fn run(
    mut connection: SqliteConnection,
    mut jobs: mpsc::Receiver<Job>,
    stats: Arc<CommitStats>,
) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut connection, batch, &stats).await;
    }
}

async fn commit_batch(connection: &mut SqliteConnection, batch: Vec<Job>, stats: &CommitStats) {
    let started = Instant::now();
    let batch_size = batch.len();
    let mut done = Vec::with_capacity(batch_size);
    if let Err(error) = sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut *connection)
        .await
    {
        let message = error.to_string();
        for job in batch {
            done.push(job.fail(&message));
        }
        reply_all(done);
        return;
    }
    let mut next_log_index = match next_log_index(connection).await {
        Ok(index) => index,
        Err(error) => {
            let message = error.to_string();
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *connection).await;
            reply_all(batch.into_iter().map(|job| job.fail(&message)).collect());
            return;
        }
    };
    let mut appended = 0u64;
    for job in batch {
        if let Err(error) = sqlx::raw_sql("SAVEPOINT job")
            .execute(&mut *connection)
            .await
        {
            done.push(job.fail(&error.to_string()));
            continue;
        }
        let before = next_log_index;
        let finished = match job {
            Job::Case(write, reply) => {
                let result = write_case(connection, &write, &mut next_log_index).await;
                Done::Case(reply, result)
            }
            Job::AddPrincipal {
                principal,
                created_by,
                reply,
            } => Done::Principal(
                reply,
                add_principal(connection, principal, created_by).await,
            ),
            Job::CreateToken {
                principal,
                ttl_seconds,
                created_by,
                reply,
            } => Done::Token(
                reply,
                create_token(connection, principal, ttl_seconds, created_by).await,
            ),
        };
        let succeeded = finished.succeeded();
        let end = if succeeded {
            "RELEASE job"
        } else {
            // Undo whatever the failed job wrote, keep its neighbours.
            next_log_index = before;
            "ROLLBACK TO job; RELEASE job"
        };
        let finished = match sqlx::raw_sql(end).execute(&mut *connection).await {
            Ok(_) => finished,
            Err(error) => finished.into_failure(&error.to_string()),
        };
        appended += next_log_index - before;
        done.push(finished);
    }
    let committed = match sqlx::raw_sql("COMMIT").execute(&mut *connection).await {
        Ok(_) => true,
        Err(error) => {
            tracing::error!(%error, "group commit failed; no write of this batch is acknowledged");
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *connection).await;
            done = done
                .into_iter()
                .map(|finished| finished.into_failure(&format!("commit failed: {error}")))
                .collect();
            false
        }
    };
    if committed {
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.jobs.fetch_add(batch_size as u64, Ordering::Relaxed);
        stats.events.fetch_add(appended, Ordering::Relaxed);
        metrics::counter!("custody_events_appended_total").increment(appended);
    }
    metrics::histogram!("custody_group_commit_jobs").record(batch_size as f64);
    metrics::histogram!("custody_group_commit_seconds").record(started.elapsed().as_secs_f64());
    reply_all(done);
}

fn reply_all(done: Vec<Done>) {
    for finished in done {
        // A client that gave up waiting is not an error: its write's fate is
        // decided by the commit, and a retry with the same key finds it.
        match finished {
            Done::Case(reply, result) => {
                let _ = reply.send(result);
            }
            Done::Principal(reply, result) => {
                let _ = reply.send(result);
            }
            Done::Token(reply, result) => {
                let _ = reply.send(result);
            }
        }
    }
}

impl Job {
    fn fail(self, message: &str) -> Done {
        let error = || StoreError::Database(sqlx::Error::Protocol(message.to_string()));
        match self {
            Job::Case(_, reply) => Done::Case(reply, Err(error())),
            Job::AddPrincipal { reply, .. } => Done::Principal(reply, Err(error())),
            Job::CreateToken { reply, .. } => Done::Token(reply, Err(error())),
        }
    }
}

impl Done {
    fn succeeded(&self) -> bool {
        match self {
            Done::Case(_, result) => result.is_ok(),
            Done::Principal(_, result) => result.is_ok(),
            Done::Token(_, result) => result.is_ok(),
        }
    }

    /// Turns a success into a failure when the transaction did not commit.
    fn into_failure(self, message: &str) -> Done {
        let error = || StoreError::Database(sqlx::Error::Protocol(message.to_string()));
        match self {
            Done::Case(reply, Ok(_)) => Done::Case(reply, Err(error())),
            Done::Principal(reply, Ok(_)) => Done::Principal(reply, Err(error())),
            Done::Token(reply, Ok(_)) => Done::Token(reply, Err(error())),
            failed => failed,
        }
    }
}

async fn next_log_index(connection: &mut SqliteConnection) -> Result<u64, sqlx::Error> {
    let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(log_index) + 1, 0) FROM events")
        .fetch_one(&mut *connection)
        .await?;
    Ok(next as u64)
}

/// The states in which a case blocks a second request for the same change,
/// as an SQL list; kept equal to [`custody_core::CaseState::is_active`] (a
/// test checks it). A macro so that queries stay `&'static str`.
macro_rules! active_states_sql {
    () => {
        "('open', 'approved', 'executed')"
    };
}

async fn write_case(
    connection: &mut SqliteConnection,
    write: &CaseWrite,
    next_log_index: &mut u64,
) -> Result<WriteOutcome, StoreError> {
    let fingerprint = write.command.fingerprint().to_hex();
    let principal = write.actor.principal.as_str();
    let previous = sqlx::query(
        "SELECT fingerprint, response FROM idempotency WHERE principal_id = ? AND key = ?",
    )
    .bind(principal)
    .bind(&write.idempotency_key)
    .fetch_optional(&mut *connection)
    .await?;
    if let Some(previous) = previous {
        let stored_fingerprint: String = previous.try_get("fingerprint")?;
        if stored_fingerprint != fingerprint {
            return Err(StoreError::Refused(Refusal {
                rule: "idempotency.key-reused",
                message: format!(
                    "idempotency key `{}` was already used by {principal} for a different write",
                    write.idempotency_key
                ),
                hint: Some("use a new idempotency key for a new write".to_string()),
            }));
        }
        let response: String = previous.try_get("response")?;
        let mut outcome: WriteOutcome = serde_json::from_str(&response)
            .map_err(|error| StoreError::Corrupt(format!("idempotency record: {error}")))?;
        outcome.replayed = true;
        return Ok(outcome);
    }

    let recorded_at = Timestamp::now();
    let outcome = match &write.command {
        CaseCommand::Request {
            change,
            justification,
            ticket,
        } => {
            if let Some(ticket) = ticket {
                let existing = sqlx::query(concat!(
                    "SELECT case_id, state FROM cases WHERE ticket = ? AND state IN ",
                    active_states_sql!(),
                    " ORDER BY opened_at LIMIT 1"
                ))
                .bind(ticket.to_string())
                .fetch_optional(&mut *connection)
                .await?;
                if let Some(existing) = existing {
                    let case_id: String = existing.try_get("case_id")?;
                    let state: String = existing.try_get("state")?;
                    let outcome = WriteOutcome {
                        case_id: parse_stored(&case_id)?,
                        state: parse_stored(&state)?,
                        appended: Vec::new(),
                        replayed: false,
                        existing: true,
                    };
                    remember(connection, write, &fingerprint, &outcome, recorded_at).await?;
                    return Ok(outcome);
                }
            }
            let key = change_key(change);
            let duplicate: Option<String> = sqlx::query_scalar(concat!(
                "SELECT case_id FROM cases WHERE change_key = ? AND state IN ",
                active_states_sql!(),
                " LIMIT 1"
            ))
            .bind(&key)
            .fetch_optional(&mut *connection)
            .await?;
            if let Some(duplicate) = duplicate {
                return Err(StoreError::Refused(Refusal {
                    rule: "case.duplicate-open",
                    message: format!(
                        "case {duplicate} is already open for {change}; a second request would split the trail"
                    ),
                    hint: Some(format!(
                        "follow case {duplicate} (`custody show {duplicate}`), or wait until it is reviewed or denied"
                    )),
                }));
            }
            let draft = lifecycle::request(
                change.clone(),
                justification.clone(),
                ticket.clone(),
                &Policy::default(),
            );
            let case_id = CaseId::generate();
            let event = build_event(write, &case_id, 1, None, draft, recorded_at);
            // Safe: `build_event` made a request event, which always opens a view.
            let view = CaseView::open(&event).expect("a request event always opens a case");
            let appended = insert_event(connection, &event, next_log_index).await?;
            upsert_case(connection, &view, Some(&key)).await?;
            WriteOutcome {
                case_id,
                state: view.state,
                appended: vec![appended],
                replayed: false,
                existing: false,
            }
        }
        command => {
            // Safe: every command other than a request names its case.
            let case_id = command.case_id().expect("non-request commands name a case");
            let mut view = load_view(connection, case_id).await?;
            let draft = command
                .decide(&view, &write.actor)
                .map_err(StoreError::Refused)?;
            let event = build_event(
                write,
                case_id,
                view.head_seq + 1,
                Some(view.head_hash),
                draft,
                recorded_at,
            );
            view.apply(&event);
            let appended = insert_event(connection, &event, next_log_index).await?;
            upsert_case(connection, &view, None).await?;
            WriteOutcome {
                case_id: case_id.clone(),
                state: view.state,
                appended: vec![appended],
                replayed: false,
                existing: false,
            }
        }
    };
    remember(connection, write, &fingerprint, &outcome, recorded_at).await?;
    Ok(outcome)
}

fn build_event(
    write: &CaseWrite,
    case_id: &CaseId,
    seq: u64,
    prev_hash: Option<Sha256Hash>,
    draft: Draft,
    recorded_at: Timestamp,
) -> Event {
    draft.seal(
        write.actor.clone(),
        Placement {
            case_id: case_id.clone(),
            seq,
            prev_hash,
            recorded_at,
            occurred_at: write.occurred_at,
            idempotency_key: Some(write.idempotency_key.clone()),
        },
    )
}

/// The key under which at most one case may be active: subject, change kind,
/// entitlement and resource.
pub(crate) fn change_key(change: &Change) -> String {
    format!(
        "{}|{}|{}|{}",
        change.subject,
        change.kind.as_str(),
        change.entitlement,
        change.resource.as_deref().unwrap_or("")
    )
}

async fn load_view(
    connection: &mut SqliteConnection,
    case_id: &CaseId,
) -> Result<CaseView, StoreError> {
    let view: Option<Vec<u8>> = sqlx::query_scalar("SELECT view FROM cases WHERE case_id = ?")
        .bind(case_id.as_str())
        .fetch_optional(&mut *connection)
        .await?;
    let view = view.ok_or_else(|| StoreError::CaseNotFound(case_id.to_string()))?;
    serde_json::from_slice(&view)
        .map_err(|error| StoreError::Corrupt(format!("case {case_id} projection: {error}")))
}

async fn insert_event(
    connection: &mut SqliteConnection,
    event: &Event,
    next_log_index: &mut u64,
) -> Result<AppendedEvent, StoreError> {
    let log_index = *next_log_index;
    sqlx::query(
        "INSERT INTO events (log_index, event_id, case_id, seq, kind, recorded_at, bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(log_index as i64)
    .bind(event.event_id.as_str())
    .bind(event.case_id.as_str())
    .bind(event.seq as i64)
    .bind(event.body.kind_name())
    .bind(event.recorded_at.to_string())
    .bind(event.canonical_bytes())
    .execute(&mut *connection)
    .await?;
    *next_log_index += 1;
    Ok(AppendedEvent {
        event_id: event.event_id.to_string(),
        kind: event.body.kind_name().to_string(),
        seq: event.seq,
        log_index,
    })
}

async fn upsert_case(
    connection: &mut SqliteConnection,
    view: &CaseView,
    change_key: Option<&str>,
) -> Result<(), StoreError> {
    let view_json = serde_json::to_vec(view)
        .map_err(|error| StoreError::Corrupt(format!("cannot encode case projection: {error}")))?;
    match change_key {
        Some(change_key) => {
            sqlx::query(
                "INSERT INTO cases (case_id, state, change_key, ticket, requester, summary, opened_at, updated_at, head_seq, head_hash, view)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(view.case_id.as_str())
            .bind(view.state.as_str())
            .bind(change_key)
            .bind(view.ticket.as_ref().map(ToString::to_string))
            .bind(view.requester.principal.as_str())
            .bind(view.change.to_string())
            .bind(view.opened_at.to_string())
            .bind(view.updated_at.to_string())
            .bind(view.head_seq as i64)
            .bind(view.head_hash.to_hex())
            .bind(view_json)
            .execute(&mut *connection)
            .await?;
        }
        None => {
            sqlx::query(
                "UPDATE cases SET state = ?, updated_at = ?, head_seq = ?, head_hash = ?, view = ? WHERE case_id = ?",
            )
            .bind(view.state.as_str())
            .bind(view.updated_at.to_string())
            .bind(view.head_seq as i64)
            .bind(view.head_hash.to_hex())
            .bind(view_json)
            .bind(view.case_id.as_str())
            .execute(&mut *connection)
            .await?;
        }
    }
    Ok(())
}

async fn remember(
    connection: &mut SqliteConnection,
    write: &CaseWrite,
    fingerprint: &str,
    outcome: &WriteOutcome,
    recorded_at: Timestamp,
) -> Result<(), StoreError> {
    let response = serde_json::to_string(outcome)
        .map_err(|error| StoreError::Corrupt(format!("cannot encode write result: {error}")))?;
    sqlx::query(
        "INSERT INTO idempotency (principal_id, key, fingerprint, response, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(write.actor.principal.as_str())
    .bind(&write.idempotency_key)
    .bind(fingerprint)
    .bind(response)
    .bind(recorded_at.to_string())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

async fn add_principal(
    connection: &mut SqliteConnection,
    principal: Principal,
    created_by: Option<PrincipalId>,
) -> Result<Principal, StoreError> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT principal_id FROM principals WHERE principal_id = ?")
            .bind(principal.id.as_str())
            .fetch_optional(&mut *connection)
            .await?;
    if exists.is_some() {
        return Err(StoreError::PrincipalExists(principal.id.to_string()));
    }
    let groups = serde_json::to_string(&principal.groups)
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
    sqlx::query(
        "INSERT INTO principals (principal_id, display_name, kind, groups_json, org, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(principal.id.as_str())
    .bind(&principal.display_name)
    .bind(principal.kind.as_str())
    .bind(groups)
    .bind(&principal.org)
    .bind(Timestamp::now().to_string())
    .bind(created_by.as_ref().map(PrincipalId::as_str))
    .execute(&mut *connection)
    .await?;
    Ok(principal)
}

async fn create_token(
    connection: &mut SqliteConnection,
    principal: PrincipalId,
    ttl_seconds: Option<u64>,
    created_by: Option<PrincipalId>,
) -> Result<IssuedToken, StoreError> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT principal_id FROM principals WHERE principal_id = ?")
            .bind(principal.as_str())
            .fetch_optional(&mut *connection)
            .await?;
    if exists.is_none() {
        return Err(StoreError::PrincipalNotFound(principal.to_string()));
    }
    let mut secret = [0u8; 32];
    let mut public = [0u8; 8];
    getrandom::fill(&mut secret)
        .and_then(|()| getrandom::fill(&mut public))
        .map_err(|error| StoreError::Corrupt(format!("no randomness available: {error}")))?;
    let token = format!("{TOKEN_PREFIX}{}", custody_core::hex::encode(&secret));
    let token_id = format!("tok_{}", custody_core::hex::encode(&public));
    let now = Timestamp::now();
    let expires_at = ttl_seconds.map(|seconds| now.plus_seconds(seconds as i64));
    sqlx::query(
        "INSERT INTO tokens (token_id, principal_id, secret_sha256, created_at, expires_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&token_id)
    .bind(principal.as_str())
    .bind(Sha256Hash::of(token.as_bytes()).0.to_vec())
    .bind(now.to_string())
    .bind(expires_at.map(|at| at.to_string()))
    .bind(created_by.as_ref().map(PrincipalId::as_str))
    .execute(&mut *connection)
    .await?;
    Ok(IssuedToken {
        token_id,
        token,
        principal: principal.to_string(),
        expires_at,
    })
}

fn parse_stored<T: std::str::FromStr>(text: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|error: T::Err| StoreError::Corrupt(error.to_string()))
}

#[cfg(test)]
mod tests {
    use custody_core::CaseState;

    #[test]
    fn active_states_in_sql_match_the_domain() {
        let sql: &str = active_states_sql!();
        for state in [
            CaseState::Open,
            CaseState::Approved,
            CaseState::Denied,
            CaseState::Executed,
            CaseState::Reviewed,
        ] {
            let listed = sql.contains(&format!("'{}'", state.as_str()));
            assert_eq!(listed, state.is_active(), "{state}");
        }
    }
}
