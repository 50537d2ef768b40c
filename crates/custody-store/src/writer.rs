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
//!    job is *decided* in turn by the planner ([`crate::plan`]), against
//!    what the backend read for it and the batch's pending state: the
//!    resulting events, projections and idempotency records stay pending, so
//!    later jobs of the same batch see them and two writes to one case in one
//!    batch chain correctly. A refused write leaves nothing behind.
//! 2. The batch's events, case projections and idempotency records are then
//!    written with one multi-row statement each, and the transaction commits.
//!
//! Replies are sent only after the commit has returned, that is after
//! `synchronous=FULL` has made the batch durable: nothing is acknowledged that
//! a crash could lose. If any statement of the batch fails, the whole batch
//! rolls back and every write in it is answered with an error; clients retry
//! with the same idempotency key.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use custody_core::delegation::DelegationGrant;
use custody_core::model::{Actor, Principal, PrincipalId};
use custody_core::notice::Routing;
use custody_core::{SharedClock, Timestamp};
use custody_log::note::SignerKey;
use tokio::sync::oneshot;

use crate::{
    AppendedEvent, CaseWrite, IdentityChange, IssuedToken, StoreError, StoredCheckpoint, TokenInfo,
    WriteOutcome, TOKEN_PREFIX,
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
    /// Sign in an OpenID Connect identity: add its principal at its first
    /// sign-in, record the groups its issuer asserts at later ones.
    OidcSignIn {
        /// The principal as the token's claims describe it.
        claimed: Principal,
        /// The principal itself, authenticated by its issuer and subject.
        actor: Actor,
        /// Where the result goes: the principal as it now stands.
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
    /// Map outside users of a connector to principals (`identity_mapped`
    /// events), all or none.
    MapIdentities {
        /// The connector.
        connector: custody_core::model::ConnectorName,
        /// Each outside user and the principal it is to act as, in order.
        entries: Vec<(custody_core::model::ExternalUser, PrincipalId)>,
        /// The admin mapping them.
        by: Actor,
        /// Where the result goes: what each mapping did.
        reply: oneshot::Sender<Result<Vec<IdentityChange>, StoreError>>,
    },
    /// Remove an outside user's mapping (an `identity_unmapped` event).
    UnmapIdentity {
        /// The connector.
        connector: custody_core::model::ConnectorName,
        /// The outside user.
        external_user: custody_core::model::ExternalUser,
        /// The admin unmapping it.
        by: Actor,
        /// Where the result goes: the mapping removed.
        reply: oneshot::Sender<Result<IdentityChange, StoreError>>,
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
    /// Take, renew or give up a polled source's lease, or advance its
    /// cursor ([`crate::Store::pull_cursor`]).
    PullCursor {
        /// The source's configured name.
        source: String,
        /// The worker acting.
        owner: String,
        /// What to do.
        operation: crate::PullCursorOperation,
        /// The time leases are judged at.
        now: Timestamp,
        /// The end of the lease taken or renewed.
        until: Timestamp,
        /// Where the result goes.
        reply: oneshot::Sender<Result<crate::PullLease, StoreError>>,
    },
    /// Take, renew or give up a push sink's lease, or advance its cursor
    /// ([`crate::Store::export_cursor`]).
    ExportCursor {
        /// The sink's configured name.
        sink: String,
        /// The worker acting.
        owner: String,
        /// What to do.
        operation: crate::ExportCursorOperation,
        /// The time leases are judged at.
        now: Timestamp,
        /// The end of the lease taken or renewed.
        until: Timestamp,
        /// Where the result goes.
        reply: oneshot::Sender<Result<Option<u64>, StoreError>>,
    },
    /// Store a witness's cosignature of a checkpoint, unless one of that
    /// witness at that size is stored already.
    AddCosignature {
        /// The cosignature.
        cosignature: crate::StoredCosignature,
        /// Where the result goes: whether a row was added.
        reply: oneshot::Sender<Result<bool, StoreError>>,
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
    /// A change to the web console's sessions.
    ConsoleSession {
        /// What to do.
        operation: crate::ConsoleSessionOperation,
        /// Where the result goes: the rows touched.
        reply: oneshot::Sender<Result<u64, StoreError>>,
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

/// What the writer task holds besides its connection and its queue.
pub(crate) struct WriterContext {
    /// Counters shared with [`crate::Store::commit_counters`].
    pub(crate) stats: Arc<CommitStats>,
    /// Who is told what, replaced whole by [`crate::Store::set_notification_routing`].
    pub(crate) routing: Arc<RwLock<Arc<Routing>>>,
    /// Whether events become Merkle leaves (see [`crate::StoreOptions`]).
    pub(crate) merkle_log: bool,
    /// The store's clock: every time the writer records comes from it.
    pub(crate) clock: SharedClock,
}

impl WriterContext {
    /// The routing in force for the next batch.
    pub(crate) fn routing(&self) -> Arc<Routing> {
        // Safe to read a poisoned lock: the routing is replaced whole.
        self.routing
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// A new bearer token from the system's randomness: 32 secret bytes, and 8
/// public ones for its ID.
pub(crate) fn new_token() -> Result<crate::plan::NewToken, StoreError> {
    let mut secret = [0u8; 32];
    let mut public = [0u8; 8];
    getrandom::fill(&mut secret)
        .and_then(|()| getrandom::fill(&mut public))
        .map_err(|error| StoreError::NoRandomness(error.to_string()))?;
    Ok(crate::plan::NewToken {
        token: format!("{TOKEN_PREFIX}{}", custody_core::hex::encode(&secret)),
        token_id: format!("tok_{}", custody_core::hex::encode(&public)),
    })
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
    Identities(
        oneshot::Sender<Result<Vec<IdentityChange>, StoreError>>,
        Result<Vec<IdentityChange>, StoreError>,
    ),
    Identity(
        oneshot::Sender<Result<IdentityChange, StoreError>>,
        Result<IdentityChange, StoreError>,
    ),
    Session(
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
    Cursor(
        oneshot::Sender<Result<Option<u64>, StoreError>>,
        Result<Option<u64>, StoreError>,
    ),
    PullCursor(
        oneshot::Sender<Result<crate::PullLease, StoreError>>,
        Result<crate::PullLease, StoreError>,
    ),
    Cosigned(
        oneshot::Sender<Result<bool, StoreError>>,
        Result<bool, StoreError>,
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
            Done::Identities(reply, result) => {
                let _ = reply.send(result);
            }
            Done::Identity(reply, result) => {
                let _ = reply.send(result);
            }
            Done::Origin(reply, result) => {
                let _ = reply.send(result);
            }
            Done::Session(reply, result) => {
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
            Done::Cosigned(reply, result) => {
                let _ = reply.send(result);
            }
            Done::Cursor(reply, result) => {
                let _ = reply.send(result);
            }
            Done::PullCursor(reply, result) => {
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
            Job::OidcSignIn { reply, .. } => Done::Principal(reply, Err(error())),
            Job::CreateToken { reply, .. } => Done::Token(reply, Err(error())),
            Job::Checkpoint { reply, .. } => Done::Checkpoint(reply, Err(error())),
            Job::RevokeToken { reply, .. } => Done::Revocation(reply, Err(error())),
            Job::GrantDelegation { reply, .. } => Done::Delegation(reply, Err(error())),
            Job::RevokeDelegation { reply, .. } => Done::Delegation(reply, Err(error())),
            Job::RecordLegacyAdmin { reply } => Done::Legacy(reply, Err(error())),
            Job::MapIdentities { reply, .. } => Done::Identities(reply, Err(error())),
            Job::UnmapIdentity { reply, .. } => Done::Identity(reply, Err(error())),
            Job::ClaimOrigin { reply, .. } => Done::Origin(reply, Err(error())),
            Job::ConsoleSession { reply, .. } => Done::Session(reply, Err(error())),
            Job::AdoptPolicy { reply, .. } => Done::Adopted(reply, Err(error())),
            Job::ClaimDeliveries { reply, .. } => Done::Claimed(reply, Err(error())),
            Job::RetryDelivery { reply, .. } => Done::Retried(reply, Err(error())),
            Job::AddCosignature { reply, .. } => Done::Cosigned(reply, Err(error())),
            Job::ExportCursor { reply, .. } => Done::Cursor(reply, Err(error())),
            Job::PullCursor { reply, .. } => Done::PullCursor(reply, Err(error())),
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
            Done::Identities(reply, Ok(_)) => Done::Identities(reply, Err(error())),
            Done::Identity(reply, Ok(_)) => Done::Identity(reply, Err(error())),
            Done::Origin(reply, Ok(_)) => Done::Origin(reply, Err(error())),
            Done::Session(reply, Ok(_)) => Done::Session(reply, Err(error())),
            Done::Adopted(reply, Ok(_)) => Done::Adopted(reply, Err(error())),
            Done::Claimed(reply, Ok(_)) => Done::Claimed(reply, Err(error())),
            Done::Retried(reply, Ok(_)) => Done::Retried(reply, Err(error())),
            Done::Cosigned(reply, Ok(_)) => Done::Cosigned(reply, Err(error())),
            Done::Cursor(reply, Ok(_)) => Done::Cursor(reply, Err(error())),
            Done::PullCursor(reply, Ok(_)) => Done::PullCursor(reply, Err(error())),
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

/// Rows per multi-row statement; keeps every statement far below SQLite's
/// limit on bound parameters (32766).
pub(crate) const ROWS_PER_STATEMENT: usize = 256;

/// Splits `items` into chunks whose lengths are powers of two, largest
/// first, none longer than `most` (itself a power of two): 45 rows go as
/// 32 + 8 + 4 + 1. A multi-row statement's text depends on its number of
/// rows, and the driver keeps prepared statements by their text, so with
/// this at most `log2(most) + 1` texts exist per statement and all of them
/// fit the driver's cache of 100, whatever the batch sizes: statement
/// preparation stays at about 1% of the writer's work (the write-path
/// profile in docs/performance.md) instead of growing with every new size.
pub(crate) fn statement_chunks<T>(items: &[T], most: usize) -> impl Iterator<Item = &[T]> {
    debug_assert!(most.is_power_of_two());
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let length = if rest.len() >= most {
            most
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, after) = rest.split_at(length);
        rest = after;
        Some(chunk)
    })
}

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
    fn statement_chunks_are_powers_of_two_largest_first_and_cover_every_item() {
        let items: Vec<u32> = (0..1000).collect();
        for length in [0usize, 1, 2, 3, 45, 64, 255, 256, 257, 600, 1000] {
            let chunks: Vec<&[u32]> = super::statement_chunks(&items[..length], 256).collect();
            let lengths: Vec<usize> = chunks.iter().map(|chunk| chunk.len()).collect();
            assert!(
                lengths.iter().all(|n| n.is_power_of_two() && *n <= 256),
                "{length}: {lengths:?}"
            );
            assert!(
                lengths.windows(2).all(|pair| pair[0] >= pair[1]),
                "{lengths:?}"
            );
            let joined: Vec<u32> = chunks.concat();
            assert_eq!(joined, items[..length], "every item once, in order");
        }
        let lengths: Vec<usize> = super::statement_chunks(&items[..45], 256)
            .map(<[u32]>::len)
            .collect();
        assert_eq!(lengths, [32, 8, 4, 1]);
    }

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
