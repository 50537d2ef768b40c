//! The writer's decisions, without a database.
//!
//! The writer task (`backend/write.rs`) reads, writes and locks; what it
//! decides is here, as plain functions of what it read. For each job of a
//! batch the backend reads the stored state the planner names (the batch's
//! [`Prefetched`] idempotency records and projections, then a job's
//! [`CaseNeeds`] or the administration record's standing), and the planner
//! decides against that state and the batch's [`Pending`] state (what the
//! batch's earlier jobs decided and the backend has not written yet). What it
//! returns is what to write: events sealed in log order, projections,
//! idempotency records, outbox and evidence-record rows, and the rows of the
//! administration projections.
//!
//! The planner holds no connection, reads no clock and makes no randomness
//! it does not need for an ID: the time comes in as `now`, so a test decides
//! the same write at the same instant every time. The data files of
//! `tests/data/plan` (run by `tests.rs`) drive it without a database.
//!
//! Why here and not in `custody-core`: the rules themselves are the core's
//! (`lifecycle`, `admin`, `delegation`); what this module adds is how a batch
//! of writes becomes rows (log indexes, outbox rows, idempotency records,
//! evidence records), which is the store's business.

mod case;
mod evidence;
pub(crate) mod import;
pub(crate) mod records;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use custody_core::case::CaseView;
use custody_core::event::Event;
use custody_core::lifecycle::{Draft, Placement};
use custody_core::model::Change;
use custody_core::notice::Routing;
use custody_core::{CaseId, CaseState, Code, Sha256Hash, Timestamp};

use crate::{AppendedEvent, CaseWrite, StoreError, WriteOutcome};

pub(crate) use case::{Begun, CaseNeeds, CaseReads};
pub(crate) use evidence::StoredRecord;
pub(crate) use records::{AdminChange, AdminRow, LegacyToken, NewToken, PolicyHead, Standing};

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

/// What the batch will write when it commits, and what its later jobs see.
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
    /// Changes to outbox rows made by the batch (delivery results).
    pub(crate) outbox_updates: Vec<OutboxUpdate>,
    /// Evidence records the batch created or released, by reference: the
    /// record's case and the case it was released to.
    pub(crate) records: HashMap<String, (CaseId, Option<CaseId>)>,
    /// Heads (sequence number, hash) of evidence records appended to by the batch.
    pub(crate) record_heads: HashMap<CaseId, (u64, Sha256Hash)>,
    /// Evidence-record rows to write, in order.
    pub(crate) record_updates: Vec<RecordRow>,
    /// The head of the administration record once the batch appended to it.
    pub(crate) admin_head: Option<AdminHead>,
}

/// The head of the administration record.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// A change to one outbox row: a delivery attempt's result.
pub(crate) struct OutboxUpdate {
    pub(crate) delivery_id: String,
    pub(crate) state: &'static str,
    pub(crate) attempts: u32,
    pub(crate) next_attempt_at: Timestamp,
    pub(crate) last_error: Option<String>,
}

/// An evidence-record row to insert (`new`) or to mark released.
pub(crate) struct RecordRow {
    /// The reference, as `SYSTEM:KEY`.
    pub(crate) ticket: String,
    pub(crate) record: CaseId,
    pub(crate) released_to: Option<CaseId>,
    pub(crate) new: bool,
    /// When the record's first event was recorded: the row's `created_at`
    /// (as an import writes it, and `verify` compares it).
    pub(crate) created_at: Timestamp,
}

pub(crate) struct PendingIdempotency {
    /// Already inserted by an earlier flush of the same batch.
    pub(crate) flushed: bool,
    pub(crate) fingerprint: String,
    pub(crate) outcome: WriteOutcome,
    pub(crate) recorded_at: Timestamp,
}

impl Pending {
    /// The batch's state before its first job: the log continues at
    /// `next_log_index`.
    pub(crate) fn new(next_log_index: u64, merkle_log: bool, routing: Arc<Routing>) -> Pending {
        Pending {
            next_log_index,
            merkle_log,
            routing,
            ..Pending::default()
        }
    }

    /// The case as the batch sees it: its pending projection if an earlier
    /// write of the batch touched it, else the stored one.
    pub(crate) fn current_view(
        &self,
        prefetched: &Prefetched,
        case_id: &CaseId,
    ) -> Result<CaseView, StoreError> {
        if let Some(view) = self.views.get(case_id) {
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
    fn append_draft(
        &mut self,
        write: &CaseWrite,
        mut view: CaseView,
        draft: Draft,
        recorded_at: Timestamp,
    ) -> (AppendedEvent, CaseState) {
        let case_id = view.case_id.clone();
        let routing = self.routing.clone();
        let (event, bytes, hash, outbox) = seal(
            write,
            &routing,
            Some(&view),
            Placement {
                case_id: case_id.clone(),
                seq: view.head_seq + 1,
                prev_hash: Some(view.head_hash),
                recorded_at,
                occurred_at: write.occurred_at,
                idempotency_key: Some(write.idempotency_key.clone()),
                origin: write
                    .connector
                    .as_ref()
                    .map(|connector| connector.origin.clone()),
            },
            draft,
        );
        view.apply_hashed(&event, hash);
        let state = view.state;
        let appended = self.push_event(event, bytes, outbox);
        self.views.insert(case_id, view);
        (appended, state)
    }

    /// Seals `draft` as the first event of the new case `case_id`, which it
    /// opens, with the notifications it owes over `routing`.
    fn open_case(
        &mut self,
        write: &CaseWrite,
        routing: &Routing,
        case_id: &CaseId,
        draft: Draft,
        recorded_at: Timestamp,
    ) -> (AppendedEvent, CaseView) {
        let (event, bytes, hash, outbox) = seal(
            write,
            routing,
            None,
            Placement {
                case_id: case_id.clone(),
                seq: 1,
                prev_hash: None,
                recorded_at,
                occurred_at: write.occurred_at,
                idempotency_key: Some(write.idempotency_key.clone()),
                origin: write
                    .connector
                    .as_ref()
                    .map(|connector| connector.origin.clone()),
            },
            draft,
        );
        // Safe: every caller opens a case with a request event, which always
        // opens a view.
        let view =
            CaseView::open_hashed(&event, hash).expect("a request event always opens a case");
        (self.push_event(event, bytes, outbox), view)
    }

    /// Gives `event` the next log index and keeps it pending.
    fn push_event(
        &mut self,
        event: Event,
        bytes: Vec<u8>,
        outbox: Vec<OutboxRow>,
    ) -> AppendedEvent {
        let log_index = self.next_log_index;
        self.next_log_index += 1;
        let appended = AppendedEvent {
            case_id: event.case_id.to_string(),
            event_id: event.event_id.to_string(),
            kind: event.body.kind_name().to_string(),
            seq: event.seq,
            log_index,
        };
        self.events.push(PendingEvent {
            log_index,
            event,
            bytes,
            outbox,
        });
        appended
    }

    /// Keeps the result of an accepted write under its idempotency key.
    fn remember(
        &mut self,
        key: (String, String),
        fingerprint: String,
        outcome: &WriteOutcome,
        recorded_at: Timestamp,
    ) {
        self.idempotency.insert(
            key,
            PendingIdempotency {
                flushed: false,
                fingerprint,
                outcome: outcome.clone(),
                recorded_at,
            },
        );
    }

    /// Marks everything pending as written by a flush: later flushes of the
    /// same batch must not insert it again. (Projections stay: later writes
    /// of the batch chain on them, and upserting them again is harmless.)
    pub(crate) fn flushed(&mut self) {
        self.total_appended += self.events.len() as u64;
        self.events.clear();
        self.outbox_updates.clear();
        self.record_updates.clear();
        for record in self.idempotency.values_mut() {
            record.flushed = true;
        }
    }
}

/// Seals a draft into its event (with the notifications it owes, given the
/// case `before` it), canonical bytes, hash and outbox rows, each computed once.
fn seal(
    write: &CaseWrite,
    routing: &Routing,
    before: Option<&CaseView>,
    placement: Placement,
    draft: Draft,
) -> (Event, Vec<u8>, Sha256Hash, Vec<OutboxRow>) {
    let mut event = draft.seal(write.actor.clone(), placement);
    let reply = write
        .connector
        .as_ref()
        .and_then(|connector| connector.reply.as_ref());
    let outbox = owe(routing, before, &mut event, reply);
    let bytes = event.canonical_bytes();
    let hash = Sha256Hash::of(&bytes);
    (event, bytes, hash, outbox)
}

/// Records in `event` the notifications it owes over `routing`, and returns
/// their outbox rows.
fn owe(
    routing: &Routing,
    before: Option<&CaseView>,
    event: &mut Event,
    reply: Option<&custody_core::notice::Route>,
) -> Vec<OutboxRow> {
    if routing.is_empty() && reply.is_none() {
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
    let mut owed = routing.owed(before, event, &after);
    if let Some(reply) = reply {
        owed.push(custody_core::notice::Owed {
            delivery_id: format!("{}.{}", event.event_id, owed.len()),
            kind: custody_core::notice::CASE_UPDATE.to_string(),
            audience: custody_core::notice::Audience::Linked,
            channel: reply.channel.clone(),
            recipient: reply.recipient.clone(),
        });
    }
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

/// Whether an operator may make the notification `entry` due again: not
/// once it was delivered, which a retry would send again.
pub(crate) fn may_retry(entry: &crate::OutboxEntry) -> Result<(), StoreError> {
    if entry.state == "delivered" {
        return Err(StoreError::Refused(custody_core::lifecycle::Refusal {
            rule: Code::NotifyAlreadyDelivered,
            message: format!(
                "notification {} was delivered already; a retry would send it again",
                entry.delivery_id
            ),
            hint: Some("`custody notifications CASE` lists its attempts".to_string()),
        }));
    }
    Ok(())
}

/// The key under which at most one case may be active: subject, change kind,
/// entitlement and resource.
pub(crate) fn change_key(change: &Change) -> String {
    change.key()
}
