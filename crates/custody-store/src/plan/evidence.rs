//! Evidence for an external reference: held in the reference's evidence
//! record until a case carries the reference, then joined to that case.

use custody_core::case::CaseView;
use custody_core::event::{CaseLink, Event, Evidence, EvidenceJoin, HeldEvidence};
use custody_core::lifecycle::{self, Draft, Placement};
use custody_core::model::Ticket;
use custody_core::notice::Routing;
use custody_core::{CaseId, CaseState, EventBody, Role, Sha256Hash, Timestamp};

use super::{seal, Pending, RecordRow};
use crate::{AppendedEvent, CaseWrite, StoreError, WriteOutcome};

/// A reference's evidence record as stored.
pub(crate) struct StoredRecord {
    /// The record (a trail in the ID space of cases).
    pub(crate) record: CaseId,
    /// The case it was released to, once one carried the reference.
    pub(crate) released_to: Option<CaseId>,
    /// Its stored events in sequence order, with their hashes.
    pub(crate) events: Vec<(Event, Sha256Hash)>,
}

impl Pending {
    /// Evidence for an external reference: attached to the case that
    /// carries it (the batch's, else `stored_case`), else held in the
    /// reference's evidence record, which is made on first use.
    pub(super) fn hold_evidence(
        &mut self,
        stored_case: Option<CaseView>,
        stored_record: Option<&StoredRecord>,
        write: &CaseWrite,
        ticket: &Ticket,
        evidence: &Evidence,
        recorded_at: Timestamp,
    ) -> Result<WriteOutcome, StoreError> {
        if let Some(view) = self.case_with_ticket(stored_case, ticket) {
            let case_id = view.case_id.clone();
            let draft = lifecycle::evidence(
                &view,
                &write.actor,
                EventBody::EvidenceAttached(evidence.clone()),
            )
            .map_err(StoreError::Refused)?;
            let (appended, state) = self.append_draft(write, view, draft, recorded_at);
            return Ok(WriteOutcome {
                case_id,
                state,
                appended: vec![appended],
                replayed: false,
                existing: true,
            });
        }
        let key = ticket.to_string();
        let record = match self.record_for_ticket(stored_record, &key) {
            Some((record, _)) => record,
            None => {
                let record = CaseId::generate();
                self.records.insert(key.clone(), (record.clone(), None));
                self.record_updates.push(RecordRow {
                    ticket: key.clone(),
                    record: record.clone(),
                    released_to: None,
                    new: true,
                    created_at: recorded_at,
                });
                record
            }
        };
        let draft = Draft {
            body: EventBody::EvidenceHeld(HeldEvidence {
                ticket: ticket.clone(),
                evidence: evidence.clone(),
            }),
            role: Role::Observer,
            causation: None,
        };
        let appended = self.append_to_record(stored_record, write, &record, draft, recorded_at);
        Ok(WriteOutcome {
            case_id: record,
            state: CaseState::Open,
            appended: vec![appended],
            replayed: false,
            existing: false,
        })
    }

    /// A new case carrying `ticket` takes the evidence held for it, unless
    /// the record was released already: an `evidence_joined` event in the
    /// case and `evidence_released` in the record.
    pub(super) fn join_held_evidence(
        &mut self,
        stored_record: Option<&StoredRecord>,
        write: &CaseWrite,
        ticket: &Ticket,
        case_id: &CaseId,
        recorded_at: Timestamp,
    ) -> Result<Vec<AppendedEvent>, StoreError> {
        let key = ticket.to_string();
        let Some((record, None)) = self.record_for_ticket(stored_record, &key) else {
            return Ok(Vec::new());
        };
        let held: Vec<Evidence> = self
            .record_events(stored_record, &record)
            .into_iter()
            .filter_map(|(event, _)| match event.body {
                EventBody::EvidenceHeld(held) => Some(held.evidence),
                _ => None,
            })
            .collect();
        let view = self
            .views
            .get(case_id)
            .cloned()
            .ok_or_else(|| StoreError::CaseNotFound(case_id.to_string()))?;
        let joined = Draft {
            body: EventBody::EvidenceJoined(EvidenceJoin {
                record: record.clone(),
                evidence: held,
            }),
            role: Role::System,
            causation: None,
        };
        let (first, _) = self.append_draft(write, view, joined, recorded_at);
        let released = Draft {
            body: EventBody::EvidenceReleased(CaseLink {
                other_case: case_id.clone(),
            }),
            role: Role::System,
            causation: None,
        };
        let second = self.append_to_record(stored_record, write, &record, released, recorded_at);
        self.records
            .insert(key.clone(), (record.clone(), Some(case_id.clone())));
        self.record_updates.push(RecordRow {
            ticket: key,
            record,
            released_to: Some(case_id.clone()),
            new: false,
            created_at: recorded_at,
        });
        Ok(vec![first, second])
    }

    /// The latest case that carries `ticket` (any state but merged): the
    /// batch's, else `stored` as the batch last changed it.
    fn case_with_ticket(&self, stored: Option<CaseView>, ticket: &Ticket) -> Option<CaseView> {
        if let Some(view) = self
            .views
            .values()
            .find(|view| view.ticket.as_ref() == Some(ticket) && view.state != CaseState::Merged)
        {
            return Some(view.clone());
        }
        let view = stored?;
        Some(self.views.get(&view.case_id).cloned().unwrap_or(view))
    }

    /// The evidence record of `ticket`, from the batch or as `stored`: its
    /// case and the case it was released to.
    fn record_for_ticket(
        &self,
        stored: Option<&StoredRecord>,
        ticket: &str,
    ) -> Option<(CaseId, Option<CaseId>)> {
        if let Some(found) = self.records.get(ticket) {
            return Some(found.clone());
        }
        stored.map(|stored| (stored.record.clone(), stored.released_to.clone()))
    }

    /// The events of the evidence record `record`, stored and pending, in order.
    fn record_events(
        &self,
        stored: Option<&StoredRecord>,
        record: &CaseId,
    ) -> Vec<(Event, Sha256Hash)> {
        let mut events: Vec<(Event, Sha256Hash)> = stored
            .filter(|stored| &stored.record == record)
            .map(|stored| stored.events.clone())
            .unwrap_or_default();
        for pending_event in &self.events {
            if &pending_event.event.case_id == record {
                events.push((
                    pending_event.event.clone(),
                    Sha256Hash::of(&pending_event.bytes),
                ));
            }
        }
        events
    }

    /// Appends `draft` to the evidence record `record`, after the batch's
    /// head of it or its last event.
    fn append_to_record(
        &mut self,
        stored: Option<&StoredRecord>,
        write: &CaseWrite,
        record: &CaseId,
        draft: Draft,
        recorded_at: Timestamp,
    ) -> AppendedEvent {
        let head = match self.record_heads.get(record) {
            Some(head) => Some(*head),
            None => self
                .record_events(stored, record)
                .last()
                .map(|(event, hash)| (event.seq, *hash)),
        };
        let (seq, prev_hash) = match head {
            Some((seq, hash)) => (seq + 1, Some(hash)),
            None => (1, None),
        };
        let (event, bytes, hash, _) = seal(
            write,
            &Routing::default(),
            None,
            Placement {
                case_id: record.clone(),
                seq,
                prev_hash,
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
        self.record_heads.insert(record.clone(), (seq, hash));
        self.push_event(event, bytes, Vec::new())
    }
}
