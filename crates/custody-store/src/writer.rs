//! The single writer and its group commit.
//!
//! Every write is a [`Job`] sent to one task that owns the only read-write
//! connection. The task takes the first waiting job and every job queued
//! behind it (up to [`MAX_BATCH`]) and runs them in one write transaction
//! (`BEGIN IMMEDIATE` on SQLite; on PostgreSQL, `BEGIN` and a
//! transaction-scoped advisory lock, which serialises the writers of every
//! node):
//!
//! 1. The stored idempotency records and case projections of every write in
//!    the batch are read first (two queries for the whole batch). Then each
//!    case write is *decided* in turn: the lifecycle rules run against its
//!    case, and the resulting event, projection and idempotency record are
//!    kept in the batch's [`Pending`] state. Later writes of the same batch see that state, so two
//!    writes to one case in one batch chain correctly. A refused write leaves
//!    nothing behind.
//! 2. The batch's events, case projections and idempotency records are then
//!    written with one multi-row statement each, and the transaction commits.
//!
//! Replies are sent only after the commit has returned, that is after
//! `synchronous=FULL` has made the batch durable: nothing is acknowledged that
//! a crash could lose. If any statement of the batch fails, the whole batch
//! rolls back and every write in it is answered with an error; clients retry
//! with the same idempotency key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use custody_core::case::CaseView;
use custody_core::delegation::DelegationGrant;
use custody_core::event::Event;
use custody_core::lifecycle::{Draft, Placement};
use custody_core::model::{Actor, Change, Principal, PrincipalId};
use custody_core::notice::Routing;
use custody_core::{CaseId, Sha256Hash, Timestamp};
use custody_log::note::SignerKey;
use tokio::sync::oneshot;

use crate::{
    AppendedEvent, CaseWrite, IssuedToken, StoreError, StoredCheckpoint, TokenInfo, WriteOutcome,
};

/// Most jobs committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// One write waiting for the writer.
pub enum Job {
    /// A case write.
    Case(
        Box<CaseWrite>,
        oneshot::Sender<Result<WriteOutcome, StoreError>>,
    ),
    /// Add a principal (a `principal_added` event in the administration record).
    AddPrincipal {
        /// The new principal.
        principal: Principal,
        /// The admin adding it (from authentication); `None` for `system`,
        /// which may act only while the deployment is set up (`init`).
        by: Option<Actor>,
        /// Where the result goes.
        reply: oneshot::Sender<Result<Principal, StoreError>>,
    },
    /// Set a principal's groups (a `principal_groups_changed` event).
    SetGroups {
        /// The principal.
        principal: PrincipalId,
        /// Its groups from now on, sorted and without duplicates.
        groups: Vec<String>,
        /// The admin changing them.
        by: Actor,
        /// Where the result goes.
        reply: oneshot::Sender<Result<Principal, StoreError>>,
    },
    /// Sign and store a checkpoint of the log as it stands.
    Checkpoint {
        /// The log's origin line.
        origin: String,
        /// The keys that sign it.
        signers: Arc<Vec<SignerKey>>,
        /// Checkpoints held outside the database that the log must extend.
        known: Vec<crate::KnownCheckpoint>,
        /// Where the result goes.
        reply: oneshot::Sender<Result<Option<StoredCheckpoint>, StoreError>>,
    },
    /// Grant a delegation (a `delegation_granted` event).
    GrantDelegation {
        /// The grant; its `granted_at` and `granted_by` are set by the writer.
        grant: DelegationGrant,
        /// The admin granting it.
        by: Actor,
        /// Where the result goes.
        reply: oneshot::Sender<Result<DelegationGrant, StoreError>>,
    },
    /// Revoke a delegation grant (a `delegation_revoked` event), decided
    /// under the write lock against the grant as recorded: a grant revoked
    /// already is returned with its first revocation time, and nothing is
    /// appended.
    RevokeDelegation {
        /// The grant's ID.
        grant_id: String,
        /// The admin revoking it.
        by: Actor,
        /// Where the result goes.
        reply: oneshot::Sender<Result<DelegationGrant, StoreError>>,
    },
    /// Record the principals, tokens and grants of a data directory made
    /// before administration was on the record (by `system`), once.
    RecordLegacyAdmin {
        /// Where the result goes: the number of events appended.
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Revoke a token.
    RevokeToken {
        /// Its public ID.
        token_id: String,
        /// The admin (or owner) revoking it.
        by: Actor,
        /// Where the result goes.
        reply: oneshot::Sender<Result<TokenInfo, StoreError>>,
    },
    /// Record in the policy record that `policy` governs new cases, unless it
    /// is the policy recorded last; reply with the appended event, if any.
    AdoptPolicy {
        /// The policy in force.
        policy: custody_core::policy::Policy,
        /// Where it came from.
        source: String,
        /// Where the result goes.
        reply: oneshot::Sender<Result<Option<AppendedEvent>, StoreError>>,
    },
    /// Lease the outbox rows due by `now` (at most `limit`) to `owner` until `until`.
    ClaimDeliveries {
        /// The worker claiming them.
        owner: String,
        /// The time rows must be due by.
        now: Timestamp,
        /// The end of the lease.
        until: Timestamp,
        /// At most this many.
        limit: u32,
        /// Where the result goes.
        reply: oneshot::Sender<Result<Vec<crate::ClaimedDelivery>, StoreError>>,
    },
    /// Make a notification due again now (an operator's retry).
    RetryDelivery {
        /// Its delivery ID.
        delivery_id: String,
        /// Where the result goes.
        reply: oneshot::Sender<Result<crate::OutboxEntry, StoreError>>,
    },
    /// Read the durability settings in force on the writer's connection.
    Durability {
        /// Where the result goes.
        reply: oneshot::Sender<Result<Vec<(String, String)>, StoreError>>,
    },
    /// Record the log's origin unless one is recorded; reply with the recorded one.
    ClaimOrigin {
        /// The origin this node signs for.
        origin: String,
        /// Where the result goes.
        reply: oneshot::Sender<Result<String, StoreError>>,
    },
    /// Issue a token.
    CreateToken {
        /// Whose token.
        principal: PrincipalId,
        /// Lifetime; `None` never expires.
        ttl_seconds: Option<u64>,
        /// The admin issuing it; `None` for `system` (see `AddPrincipal`).
        by: Option<Actor>,
        /// Where the result goes.
        reply: oneshot::Sender<Result<IssuedToken, StoreError>>,
    },
}

/// Counters shared between the writer and [`crate::Store::commit_counters`].
#[derive(Default)]
pub(crate) struct CommitStats {
    pub(crate) commits: AtomicU64,
    pub(crate) jobs: AtomicU64,
    pub(crate) events: AtomicU64,
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

pub(crate) enum Done {
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
    Checkpoint(
        oneshot::Sender<Result<Option<StoredCheckpoint>, StoreError>>,
        Result<Option<StoredCheckpoint>, StoreError>,
    ),
    Revocation(
        oneshot::Sender<Result<TokenInfo, StoreError>>,
        Result<TokenInfo, StoreError>,
    ),
    Delegation(
        oneshot::Sender<Result<DelegationGrant, StoreError>>,
        Result<DelegationGrant, StoreError>,
    ),
    Legacy(
        oneshot::Sender<Result<u64, StoreError>>,
        Result<u64, StoreError>,
    ),
    Origin(
        oneshot::Sender<Result<String, StoreError>>,
        Result<String, StoreError>,
    ),
    Adopted(
        oneshot::Sender<Result<Option<AppendedEvent>, StoreError>>,
        Result<Option<AppendedEvent>, StoreError>,
    ),
    Claimed(
        oneshot::Sender<Result<Vec<crate::ClaimedDelivery>, StoreError>>,
        Result<Vec<crate::ClaimedDelivery>, StoreError>,
    ),
    Retried(
        oneshot::Sender<Result<crate::OutboxEntry, StoreError>>,
        Result<crate::OutboxEntry, StoreError>,
    ),
    Durability(
        oneshot::Sender<Result<Vec<(String, String)>, StoreError>>,
        Result<Vec<(String, String)>, StoreError>,
    ),
}

/// What the batch will write when it commits.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) next_log_index: u64,
    /// Events in log order, with their canonical bytes.
    pub(crate) events: Vec<PendingEvent>,
    /// The latest projection of every case the batch touched.
    pub(crate) views: HashMap<CaseId, CaseView>,
    /// Idempotency records made by the batch, by (principal, key).
    pub(crate) idempotency: HashMap<(String, String), PendingIdempotency>,
    /// Events already flushed by this batch.
    pub(crate) total_appended: u64,
    /// Whether events become Merkle leaves (always, outside benchmarks).
    pub(crate) merkle_log: bool,
    /// Who is told what (see [`custody_core::notice`]).
    pub(crate) routing: Arc<Routing>,
    /// Changes to outbox rows made by the batch (delivery results, retries).
    pub(crate) outbox_updates: Vec<OutboxUpdate>,
    /// Evidence records the batch created or released, by reference: the
    /// record's case and the case it was released to.
    pub(crate) records: HashMap<String, (CaseId, Option<CaseId>)>,
    /// Heads (sequence number, hash) of evidence records appended to by the batch.
    pub(crate) record_heads: HashMap<CaseId, (u64, Sha256Hash)>,
    /// Record rows to write: (reference, record, released to, new).
    pub(crate) record_updates: Vec<(String, CaseId, Option<CaseId>, bool)>,
    /// The head of the administration record once the batch appended to it.
    pub(crate) admin_head: Option<AdminHead>,
}

/// The head of the administration record.
#[derive(Clone, Debug)]
pub(crate) struct AdminHead {
    pub(crate) case_id: CaseId,
    pub(crate) seq: u64,
    pub(crate) hash: Sha256Hash,
    /// Every event so far is by `system` (see [`custody_core::admin::may_administer`]).
    pub(crate) opening: bool,
}

pub(crate) struct PendingEvent {
    pub(crate) log_index: u64,
    pub(crate) event: Event,
    pub(crate) bytes: Vec<u8>,
    /// The outbox rows of the notifications the event owes.
    pub(crate) outbox: Vec<OutboxRow>,
}

/// A notification owed, as queued in the outbox in the event's transaction.
pub(crate) struct OutboxRow {
    pub(crate) delivery_id: String,
    pub(crate) case_id: String,
    pub(crate) event_id: String,
    pub(crate) kind: String,
    pub(crate) audience: String,
    pub(crate) channel: String,
    pub(crate) recipient: Option<String>,
    pub(crate) created_at: Timestamp,
}

/// A change to one outbox row.
pub(crate) struct OutboxUpdate {
    pub(crate) delivery_id: String,
    pub(crate) state: &'static str,
    pub(crate) attempts: u32,
    pub(crate) next_attempt_at: Timestamp,
    pub(crate) last_error: Option<String>,
}

pub(crate) struct PendingIdempotency {
    /// Already inserted by an earlier flush of the same batch.
    pub(crate) flushed: bool,
    pub(crate) fingerprint: String,
    pub(crate) outcome: WriteOutcome,
    pub(crate) recorded_at: Timestamp,
}

pub(crate) fn reply_all(done: Vec<Done>) {
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
            Done::Checkpoint(reply, result) => {
                let _ = reply.send(result);
            }
            Done::Revocation(reply, result) => {
                let _ = reply.send(result);
            }
            Done::Delegation(reply, result) => {
                let _ = reply.send(result);
            }
            Done::Legacy(reply, result) => {
                let _ = reply.send(result);
            }
            Done::Origin(reply, result) => {
                let _ = reply.send(result);
            }
            Done::Adopted(reply, result) => {
                let _ = reply.send(result);
            }
            Done::Claimed(reply, result) => {
                let _ = reply.send(result);
            }
            Done::Retried(reply, result) => {
                let _ = reply.send(result);
            }
            Done::Durability(reply, result) => {
                let _ = reply.send(result);
            }
        }
    }
}

impl Job {
    pub(crate) fn fail(self, message: &str) -> Done {
        let error = || StoreError::Database(sqlx::Error::Protocol(message.to_string()));
        match self {
            Job::Case(_, reply) => Done::Case(reply, Err(error())),
            Job::AddPrincipal { reply, .. } => Done::Principal(reply, Err(error())),
            Job::SetGroups { reply, .. } => Done::Principal(reply, Err(error())),
            Job::CreateToken { reply, .. } => Done::Token(reply, Err(error())),
            Job::Checkpoint { reply, .. } => Done::Checkpoint(reply, Err(error())),
            Job::RevokeToken { reply, .. } => Done::Revocation(reply, Err(error())),
            Job::GrantDelegation { reply, .. } => Done::Delegation(reply, Err(error())),
            Job::RevokeDelegation { reply, .. } => Done::Delegation(reply, Err(error())),
            Job::RecordLegacyAdmin { reply } => Done::Legacy(reply, Err(error())),
            Job::ClaimOrigin { reply, .. } => Done::Origin(reply, Err(error())),
            Job::AdoptPolicy { reply, .. } => Done::Adopted(reply, Err(error())),
            Job::ClaimDeliveries { reply, .. } => Done::Claimed(reply, Err(error())),
            Job::RetryDelivery { reply, .. } => Done::Retried(reply, Err(error())),
            Job::Durability { reply } => Done::Durability(reply, Err(error())),
        }
    }
}

impl Done {
    /// Turns a success into a failure when the transaction did not commit.
    pub(crate) fn into_failure(self, message: &str) -> Done {
        let error = || StoreError::Database(sqlx::Error::Protocol(message.to_string()));
        match self {
            Done::Case(reply, Ok(_)) => Done::Case(reply, Err(error())),
            Done::Principal(reply, Ok(_)) => Done::Principal(reply, Err(error())),
            Done::Token(reply, Ok(_)) => Done::Token(reply, Err(error())),
            Done::Checkpoint(reply, Ok(_)) => Done::Checkpoint(reply, Err(error())),
            Done::Revocation(reply, Ok(_)) => Done::Revocation(reply, Err(error())),
            Done::Delegation(reply, Ok(_)) => Done::Delegation(reply, Err(error())),
            Done::Legacy(reply, Ok(_)) => Done::Legacy(reply, Err(error())),
            Done::Origin(reply, Ok(_)) => Done::Origin(reply, Err(error())),
            Done::Adopted(reply, Ok(_)) => Done::Adopted(reply, Err(error())),
            Done::Claimed(reply, Ok(_)) => Done::Claimed(reply, Err(error())),
            Done::Retried(reply, Ok(_)) => Done::Retried(reply, Err(error())),
            failed => failed,
        }
    }
}

/// The states in which a case blocks a second request for the same change,
/// as an SQL list; kept equal to [`custody_core::CaseState::is_active`] (a
/// test checks it). A macro so that queries stay `&'static str`.
macro_rules! active_states_sql {
    () => {
        "('open', 'approved', 'executed', 'pending_review', 'executed_pending_approval')"
    };
}
pub(crate) use active_states_sql;

/// What a batch reads before deciding its writes: the stored idempotency
/// records of its keys and the stored projections of its cases, two queries
/// per batch instead of one per write.
#[derive(Default)]
pub(crate) struct Prefetched {
    /// (principal, key) to (fingerprint, response JSON).
    pub(crate) idempotency: HashMap<(String, String), (String, String)>,
    /// Case ID to projection JSON.
    pub(crate) views: HashMap<String, Vec<u8>>,
}

/// The case as the batch sees it: its pending projection if an earlier write
/// of the batch touched it, else the stored one.
pub(crate) fn current_view(
    prefetched: &Prefetched,
    pending: &Pending,
    case_id: &CaseId,
) -> Result<CaseView, StoreError> {
    if let Some(view) = pending.views.get(case_id) {
        return Ok(view.clone());
    }
    let stored_view = prefetched
        .views
        .get(case_id.as_str())
        .ok_or_else(|| StoreError::CaseNotFound(case_id.to_string()))?;
    serde_json::from_slice(stored_view)
        .map_err(|error| StoreError::Corrupt(format!("case {case_id} projection: {error}")))
}

/// Seals `draft` as the next event of `view`'s case and keeps event and
/// projection pending; returns the appended event and the case's new state.
pub(crate) fn append_draft(
    write: &CaseWrite,
    pending: &mut Pending,
    mut view: CaseView,
    draft: Draft,
    recorded_at: Timestamp,
) -> (AppendedEvent, custody_core::CaseState) {
    let case_id = view.case_id.clone();
    let routing = pending.routing.clone();
    let (event, bytes, hash, outbox) = seal(
        write,
        &routing,
        Some(&view),
        &case_id,
        view.head_seq + 1,
        Some(view.head_hash),
        draft,
        recorded_at,
    );
    view.apply_hashed(&event, hash);
    let state = view.state;
    let appended = push_event(pending, event, bytes, outbox);
    pending.views.insert(case_id, view);
    (appended, state)
}

/// Seals a draft into its event (with the notifications it owes, given the
/// case `before` it), canonical bytes, hash and outbox rows, each computed once.
#[allow(clippy::too_many_arguments)]
pub(crate) fn seal(
    write: &CaseWrite,
    routing: &Routing,
    before: Option<&CaseView>,
    case_id: &CaseId,
    seq: u64,
    prev_hash: Option<Sha256Hash>,
    draft: Draft,
    recorded_at: Timestamp,
) -> (Event, Vec<u8>, Sha256Hash, Vec<OutboxRow>) {
    let mut event = draft.seal(
        write.actor.clone(),
        Placement {
            case_id: case_id.clone(),
            seq,
            prev_hash,
            recorded_at,
            occurred_at: write.occurred_at,
            idempotency_key: Some(write.idempotency_key.clone()),
        },
    );
    let outbox = owe(routing, before, &mut event);
    let bytes = event.canonical_bytes();
    let hash = Sha256Hash::of(&bytes);
    (event, bytes, hash, outbox)
}

/// Records in `event` the notifications it owes over `routing`, and returns
/// their outbox rows.
pub(crate) fn owe(
    routing: &Routing,
    before: Option<&CaseView>,
    event: &mut Event,
) -> Vec<OutboxRow> {
    if routing.is_empty() {
        return Vec::new();
    }
    // The state after the event decides what is owed; its head hash does
    // not, so the event is not hashed here (the caller hashes the final bytes).
    let placeholder = Sha256Hash([0; 32]);
    let after = match before {
        Some(view) => {
            let mut after = view.clone();
            after.apply_hashed(event, placeholder);
            after
        }
        None => match CaseView::open_hashed(event, placeholder) {
            Some(view) => view,
            None => return Vec::new(),
        },
    };
    let owed = routing.owed(before, event, &after);
    let rows = owed
        .iter()
        .map(|owed| OutboxRow {
            delivery_id: owed.delivery_id.clone(),
            case_id: event.case_id.to_string(),
            event_id: event.event_id.to_string(),
            kind: owed.kind.clone(),
            audience: owed.audience.as_str().to_string(),
            channel: owed.channel.clone(),
            recipient: owed.recipient.clone(),
            created_at: event.recorded_at,
        })
        .collect();
    event.notify = owed;
    rows
}

pub(crate) fn push_event(
    pending: &mut Pending,
    event: Event,
    bytes: Vec<u8>,
    outbox: Vec<OutboxRow>,
) -> AppendedEvent {
    let log_index = pending.next_log_index;
    pending.next_log_index += 1;
    let appended = AppendedEvent {
        case_id: event.case_id.to_string(),
        event_id: event.event_id.to_string(),
        kind: event.body.kind_name().to_string(),
        seq: event.seq,
        log_index,
    };
    pending.events.push(PendingEvent {
        log_index,
        event,
        bytes,
        outbox,
    });
    appended
}

pub(crate) fn remember(
    pending: &mut Pending,
    key: (String, String),
    fingerprint: String,
    outcome: &WriteOutcome,
    recorded_at: Timestamp,
) {
    pending.idempotency.insert(
        key,
        PendingIdempotency {
            flushed: false,
            fingerprint,
            outcome: outcome.clone(),
            recorded_at,
        },
    );
}

/// The key under which at most one case may be active: subject, change kind,
/// entitlement and resource.
pub(crate) fn change_key(change: &Change) -> String {
    format!(
        "{}|{}|{}|{}",
        change.subject(),
        change.kind().as_str(),
        change.entitlement(),
        change.resource().unwrap_or("")
    )
}

/// Rows per multi-row statement; keeps every statement far below SQLite's
/// limit on bound parameters (32766).
pub(crate) const ROWS_PER_STATEMENT: usize = 256;

pub(crate) fn parse_stored<T: std::str::FromStr>(text: &str) -> Result<T, StoreError>
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
            CaseState::Merged,
            CaseState::PendingReview,
            CaseState::ExecutedPendingApproval,
        ] {
            // Exhaustive on purpose: a new state fails to compile here until
            // it is added to the list above and judged active or not.
            match state {
                CaseState::Open
                | CaseState::Approved
                | CaseState::Denied
                | CaseState::Executed
                | CaseState::Reviewed
                | CaseState::Merged
                | CaseState::PendingReview
                | CaseState::ExecutedPendingApproval => {}
            }
            let listed = sql.contains(&format!("'{}'", state.as_str()));
            assert_eq!(listed, state.is_active(), "{state}");
        }
    }
}
