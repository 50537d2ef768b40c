//! Deciding one case write: idempotency, a vendor's grant, then the command.

use custody_core::case::CaseView;
use custody_core::command::{CaseCommand, CaseStep, ClientCommand, LedgerCommand, Opening};
use custody_core::delegation::DelegationGrant;
use custody_core::event::{DeliveryOutcome, ReviewOutcome};
use custody_core::lifecycle::{self, Refusal};
use custody_core::model::{Actor, Change, Principal, PrincipalKind, Ticket};
use custody_core::notice::Routing;
use custody_core::{CaseId, CaseState, Code, Timestamp};

use super::{change_key, OutboxUpdate, Pending, Prefetched, StoredRecord};
use crate::{CaseWrite, StoreError, WriteOutcome};

/// A case write whose idempotency key is new. Only [`Pending::begin_case`]
/// makes one, and [`Pending::decide_case`] takes nothing else, so no write is
/// decided without its key checked first.
pub(crate) struct FreshWrite<'a> {
    write: &'a CaseWrite,
    key: (String, String),
    fingerprint: String,
}

/// What [`Pending::begin_case`] found.
// One per write, matched at once and never stored: the size difference
// between the variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Begun<'a> {
    /// The key was used before for the same write: its result, replayed.
    Replayed(WriteOutcome),
    /// A new write: read what it needs, then decide it.
    Fresh(FreshWrite<'a>, CaseNeeds),
}

/// What the backend reads for one case write before it is decided, beyond
/// the batch's [`Prefetched`] records. Each field names what to look up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CaseNeeds {
    /// A request's ticket: the oldest stored active case carrying it.
    pub(crate) active_case_with_ticket: Option<Ticket>,
    /// A request's change key ([`change_key`]): a stored active case for it.
    pub(crate) active_case_for_change: Option<String>,
    /// A vendor's organisation: its delegation grants as recorded now.
    pub(crate) grants_of: Option<String>,
    /// Held evidence's reference: the newest stored case carrying it, unless merged.
    pub(crate) case_with_ticket: Option<Ticket>,
    /// A reference whose evidence record (and its stored events) may be used.
    pub(crate) evidence_record: Option<Ticket>,
    /// An observation's case ID: that case's projection.
    pub(crate) observed_case: Option<CaseId>,
    /// An observation's change keys: the newest stored cases of each.
    pub(crate) cases_for_change_keys: Vec<String>,
}

/// What the backend read for [`CaseNeeds`], field by field.
#[derive(Default)]
pub(crate) struct CaseReads {
    pub(crate) active_case_with_ticket: Option<CaseView>,
    pub(crate) active_case_for_change: Option<CaseId>,
    /// Ordered by grant ID.
    pub(crate) grants: Vec<DelegationGrant>,
    pub(crate) case_with_ticket: Option<CaseView>,
    pub(crate) evidence_record: Option<StoredRecord>,
    pub(crate) observed_case: Option<CaseView>,
    /// Newest first.
    pub(crate) cases_for_change_keys: Vec<CaseView>,
}

impl Pending {
    /// Checks a case write's idempotency key against the batch and the
    /// stored records: the same key for the same write replays its result,
    /// for another write it is refused. Otherwise says what to read.
    pub(crate) fn begin_case<'a>(
        &self,
        prefetched: &Prefetched,
        write: &'a CaseWrite,
    ) -> Result<Begun<'a>, StoreError> {
        let fingerprint = write.command.fingerprint().to_hex();
        let principal = write.actor.principal.as_str();
        let key = write.idempotency_scope();
        let previous = match self.idempotency.get(&key) {
            Some(record) => Some((record.fingerprint.clone(), record.outcome.clone())),
            None => match prefetched.idempotency.get(&key) {
                Some((stored_fingerprint, response)) => {
                    let outcome: WriteOutcome =
                        serde_json::from_str(response).map_err(|error| {
                            StoreError::Corrupt(format!("idempotency record: {error}"))
                        })?;
                    Some((stored_fingerprint.clone(), outcome))
                }
                None => None,
            },
        };
        if let Some((stored_fingerprint, mut outcome)) = previous {
            // (source, external ID) is unique for an observation whatever
            // else differs: the same record pushed and pulled (its envelope,
            // and so its raw hash, differ) is one record.
            let observation = matches!(
                write.command,
                CaseCommand::Client(ClientCommand::Open(Opening::Observe { .. }))
            );
            if stored_fingerprint != fingerprint && !observation {
                return Err(StoreError::Refused(Refusal {
                    rule: Code::IdempotencyKeyReused,
                    message: match &write.connector {
                        Some(connector) => format!(
                            "record `{}` of `{}` was already recorded as a different write",
                            custody_core::text::escape(&connector.origin.external_id),
                            connector.origin.source
                        ),
                        None => format!(
                            "idempotency key `{}` was already used by {principal} for a different write",
                            write.idempotency_key
                        ),
                    },
                    hint: Some("use a new idempotency key for a new write".to_string()),
                }));
            }
            outcome.replayed = true;
            return Ok(Begun::Replayed(outcome));
        }
        let needs = needs(write);
        Ok(Begun::Fresh(
            FreshWrite {
                write,
                key,
                fingerprint,
            },
            needs,
        ))
    }

    /// Decides one new case write against the stored state (`prefetched`
    /// and `reads`) and the batch's pending state, at `now`. On success the
    /// write's events, projections and idempotency record are pending.
    pub(crate) fn decide_case(
        &mut self,
        prefetched: &Prefetched,
        fresh: FreshWrite<'_>,
        reads: CaseReads,
        now: Timestamp,
    ) -> Result<WriteOutcome, StoreError> {
        let FreshWrite {
            write,
            key,
            fingerprint,
        } = fresh;
        let recorded_at = now;
        // A vendor acts only under a delegation grant in force now, as
        // recorded: re-decided here, under the write lock, so a revocation
        // decided before (even earlier in this batch) is never missed.
        let vendor_write;
        let write = if write.actor.kind == PrincipalKind::Vendor {
            let change = match &write.command {
                CaseCommand::Client(ClientCommand::Open(
                    Opening::Request { change, .. } | Opening::BreakGlass { change, .. },
                )) => Some(change.clone()),
                command => match command.case_ids().first() {
                    Some(case_id) => Some(self.current_view(prefetched, case_id)?.change),
                    None => None,
                },
            };
            match change {
                Some(change) => {
                    vendor_write = CaseWrite {
                        actor: vendor_actor(&reads.grants, &write.actor, &change, recorded_at)?,
                        ..write.clone()
                    };
                    &vendor_write
                }
                None => write,
            }
        } else {
            write
        };
        let outcome = match &write.command {
            CaseCommand::Client(ClientCommand::Open(Opening::Request {
                change,
                justification,
                ticket,
                rule,
                drill,
            })) => {
                if let Some(ticket) = ticket {
                    // A drill's case never answers for a real request (nor
                    // the other way round): it would swallow it unseen.
                    if let Some(existing) = self
                        .active_case_with_ticket(reads.active_case_with_ticket, ticket)
                        .filter(|existing| existing.drill == *drill)
                    {
                        let outcome = WriteOutcome {
                            case_id: existing.case_id.clone(),
                            state: existing.state,
                            appended: Vec::new(),
                            replayed: false,
                            existing: true,
                        };
                        self.remember(key, fingerprint, &outcome, recorded_at);
                        return Ok(outcome);
                    }
                }
                if let Some(duplicate) =
                    self.active_case_for_change(reads.active_case_for_change, change)
                {
                    return Err(StoreError::Refused(Refusal {
                        rule: Code::CaseDuplicateOpen,
                        message: format!(
                            "case {duplicate} is already open for {change}; a second request would split the trail"
                        ),
                        hint: Some(format!(
                            "follow case {duplicate} (`custody show {duplicate}`), or wait until it is reviewed or denied"
                        )),
                    }));
                }
                let draft =
                    lifecycle::request(change.clone(), justification.clone(), ticket.clone(), rule)
                        .map_err(StoreError::Refused)?
                        .drill(*drill);
                let case_id = CaseId::generate();
                let routing = self.routing.clone();
                let (first, view) = self.open_case(write, &routing, &case_id, draft, recorded_at);
                let state = view.state;
                let mut appended = vec![first];
                self.views.insert(case_id.clone(), view);
                if let Some(ticket) = ticket {
                    appended.extend(self.join_held_evidence(
                        reads.evidence_record.as_ref(),
                        write,
                        ticket,
                        &case_id,
                        recorded_at,
                    )?);
                }
                WriteOutcome {
                    case_id,
                    state,
                    appended,
                    replayed: false,
                    existing: false,
                }
            }
            CaseCommand::Client(ClientCommand::Open(Opening::BreakGlass {
                change,
                justification,
                ticket,
                rule,
                change_set,
                drill,
            })) => {
                // An emergency is never refused as a duplicate: an open request
                // for the same change may be exactly what could not wait.
                let [request, invoked, execution] = lifecycle::break_glass(
                    change.clone(),
                    justification.clone(),
                    ticket.clone(),
                    rule,
                    change_set.clone(),
                    recorded_at,
                )
                .map_err(StoreError::Refused)?;
                let request = request.drill(*drill);
                let case_id = CaseId::generate();
                // The emergency's request asks nobody to approve: the invocation
                // tells security and the reviewers instead.
                let (first, view) =
                    self.open_case(write, &Routing::default(), &case_id, request, recorded_at);
                let mut appended = vec![first];
                let (second, _) = self.append_draft(write, view, invoked, recorded_at);
                appended.push(second);
                let view = self.current_view(prefetched, &case_id)?;
                let (third, state) = self.append_draft(write, view, execution, recorded_at);
                appended.push(third);
                WriteOutcome {
                    case_id,
                    state,
                    appended,
                    replayed: false,
                    existing: false,
                }
            }
            CaseCommand::Client(ClientCommand::Merge(merge)) => {
                let duplicate = &merge.duplicate;
                let duplicate_view = self.current_view(prefetched, duplicate)?;
                let survivor_view = self.current_view(prefetched, &merge.into)?;
                let (duplicate_draft, survivor_draft) = merge
                    .decide(&duplicate_view, &survivor_view, &write.actor)
                    .map_err(StoreError::Refused)?;
                // Both halves of the link in one job, so they commit together.
                let first = self.append_draft(write, duplicate_view, duplicate_draft, recorded_at);
                let second = self.append_draft(write, survivor_view, survivor_draft, recorded_at);
                WriteOutcome {
                    case_id: duplicate.clone(),
                    state: first.1,
                    appended: vec![first.0, second.0],
                    replayed: false,
                    existing: false,
                }
            }
            CaseCommand::Client(ClientCommand::Step(
                step @ CaseStep::Review {
                    case_id,
                    outcome: ReviewOutcome::Revoke,
                    revocation_rule: Some(rule),
                    ..
                },
            )) => {
                // The review, then the revocation case it opens, linked both
                // ways, all in this one job.
                let view = self.current_view(prefetched, case_id)?;
                let review = step
                    .decide(&view, &write.actor)
                    .map_err(StoreError::Refused)?;
                let (reviewed, _) = self.append_draft(write, view, review, recorded_at);
                let new_case = CaseId::generate();
                let (request, opened_by, opened) = lifecycle::open_revocation(
                    &self.current_view(prefetched, case_id)?,
                    rule,
                    &new_case,
                )
                .map_err(StoreError::Refused)?;
                let routing = self.routing.clone();
                let (opened_request, new_view) =
                    self.open_case(write, &routing, &new_case, request, recorded_at);
                let (linked_back, _) = self.append_draft(write, new_view, opened_by, recorded_at);
                let view = self.current_view(prefetched, case_id)?;
                let (linked, state) = self.append_draft(write, view, opened, recorded_at);
                WriteOutcome {
                    case_id: case_id.clone(),
                    state,
                    appended: vec![reviewed, opened_request, linked_back, linked],
                    replayed: false,
                    existing: false,
                }
            }
            CaseCommand::Client(ClientCommand::Open(Opening::Observe {
                source_kind,
                observation,
                rule,
                drill,
            })) => self.observe(
                prefetched,
                write,
                source_kind,
                observation,
                rule,
                *drill,
                reads,
                recorded_at,
            )?,
            CaseCommand::Client(ClientCommand::Open(Opening::HoldEvidence {
                ticket,
                evidence,
            })) => self.hold_evidence(
                reads.case_with_ticket,
                reads.evidence_record.as_ref(),
                write,
                ticket,
                evidence,
                recorded_at,
            )?,
            CaseCommand::Client(ClientCommand::Step(step)) => {
                let case_id = step.case_id();
                let view = self.current_view(prefetched, case_id)?;
                let draft = step
                    .decide(&view, &write.actor)
                    .map_err(StoreError::Refused)?;
                let (appended, state) = self.append_draft(write, view, draft, recorded_at);
                WriteOutcome {
                    case_id: case_id.clone(),
                    state,
                    appended: vec![appended],
                    replayed: false,
                    existing: false,
                }
            }
            CaseCommand::Ledger(command) => {
                let case_id = command.case_id();
                if let LedgerCommand::RecordDelivery {
                    attempt,
                    next_attempt_at,
                    ..
                } = command
                {
                    let outbox_state = match attempt.outcome {
                        DeliveryOutcome::Delivered => "delivered",
                        DeliveryOutcome::Failed => "pending",
                        DeliveryOutcome::Dead => "dead",
                    };
                    self.outbox_updates.push(OutboxUpdate {
                        delivery_id: attempt.delivery_id.clone(),
                        state: outbox_state,
                        attempts: attempt.attempt,
                        next_attempt_at: next_attempt_at.unwrap_or(recorded_at),
                        last_error: attempt.error.clone(),
                    });
                }
                let view = self.current_view(prefetched, case_id)?;
                let mut state = view.state;
                let drafts = command
                    .decide(&view, &write.actor, recorded_at)
                    .map_err(StoreError::Refused)?;
                let mut appended = Vec::new();
                for draft in drafts {
                    let view = self.current_view(prefetched, case_id)?;
                    let (event, new_state) = self.append_draft(write, view, draft, recorded_at);
                    appended.push(event);
                    state = new_state;
                }
                WriteOutcome {
                    case_id: case_id.clone(),
                    state,
                    appended,
                    replayed: false,
                    existing: false,
                }
            }
        };
        self.remember(key, fingerprint, &outcome, recorded_at);
        Ok(outcome)
    }

    /// The active case carrying `ticket`, looking at the batch's pending
    /// cases before the `stored` one (the oldest active stored case carrying
    /// it), which may have changed state in this batch.
    fn active_case_with_ticket(
        &self,
        stored: Option<CaseView>,
        ticket: &Ticket,
    ) -> Option<CaseView> {
        if let Some(view) = self
            .views
            .values()
            .find(|view| view.state.is_active() && view.ticket.as_ref() == Some(ticket))
        {
            return Some(view.clone());
        }
        let view = stored?;
        match self.views.get(&view.case_id) {
            Some(newer) if !newer.state.is_active() => None,
            Some(newer) => Some(newer.clone()),
            None => Some(view),
        }
    }

    /// The active case for the same change, if any (see [`change_key`]):
    /// pending first, then the `stored` one unless the batch closed it.
    fn active_case_for_change(&self, stored: Option<CaseId>, change: &Change) -> Option<CaseId> {
        let key = change_key(change);
        if let Some(view) = self
            .views
            .values()
            .find(|view| view.state.is_active() && change_key(&view.change) == key)
        {
            return Some(view.case_id.clone());
        }
        let case_id = stored?;
        match self.views.get(&case_id) {
            Some(newer) if !newer.state.is_active() => None,
            _ => Some(case_id),
        }
    }
}

impl Pending {
    /// Records an observed change in the case it correlates to, or opens a
    /// case of its own for it (see `custody_core::observation`).
    #[allow(clippy::too_many_arguments)]
    fn observe(
        &mut self,
        prefetched: &Prefetched,
        write: &CaseWrite,
        source_kind: &str,
        observation: &custody_core::observation::ObservedChange,
        rule: &custody_core::policy::AppliedRule,
        drill: bool,
        reads: CaseReads,
        recorded_at: Timestamp,
    ) -> Result<WriteOutcome, StoreError> {
        use custody_core::observation::{self as observe, MatchedBy, Observed};
        let latest =
            |view: CaseView| -> CaseView { self.views.get(&view.case_id).cloned().unwrap_or(view) };
        // 1. The case ID the record carries.
        let by_id = observation.case_hint.as_ref().and_then(|case_id| {
            self.views
                .get(case_id)
                .cloned()
                .or_else(|| {
                    reads
                        .observed_case
                        .clone()
                        .filter(|view| &view.case_id == case_id)
                })
                .filter(|view| view.state != CaseState::Merged)
                // A real change never joins a drill's case (which listings
                // and exports leave out), nor a drill's a real case.
                .filter(|view| view.drill == drill)
        });
        // 2. A reference the case carries.
        let by_reference = || {
            let ticket = observation.references.first()?;
            self.views
                .values()
                .filter(|view| {
                    view.state != CaseState::Merged && view.ticket.as_ref() == Some(ticket)
                })
                .max_by_key(|view| view.opened_at)
                .cloned()
                .or_else(|| reads.case_with_ticket.clone().map(latest))
                .filter(|view| view.state != CaseState::Merged && view.drill == drill)
                .map(|view| (view, ticket.to_string()))
        };
        // 3. The same change inside a case's window: the batch's cases
        // first, then the stored ones as the batch left them.
        let by_window = || {
            let keys = observation_keys(&observation.change);
            let mut candidates: Vec<CaseView> = self
                .views
                .values()
                .filter(|view| keys.contains(&change_key(&view.change)) && view.drill == drill)
                .cloned()
                .collect();
            for view in &reads.cases_for_change_keys {
                if !self.views.contains_key(&view.case_id) && view.drill == drill {
                    candidates.push(view.clone());
                }
            }
            observe::by_window(&candidates, &observation.change, observation.occurred_at).cloned()
        };
        let matched = match by_id {
            Some(view) => Some((
                view.clone(),
                MatchedBy::CaseId,
                Some(view.case_id.to_string()),
            )),
            None => match by_reference() {
                Some((view, ticket)) => Some((view, MatchedBy::Reference, Some(ticket))),
                None => by_window().map(|view| (view, MatchedBy::Window, None)),
            },
        };
        let mut observed = Observed {
            source_kind: source_kind.to_string(),
            action: observation.action.clone(),
            raw_sha256: observation.raw_sha256,
            actor: observation.actor.clone(),
            change: observation.change.clone(),
            matched_by: MatchedBy::Unmatched,
            matched_on: None,
            review_deadline: None,
            drift: Vec::new(),
        };
        let Some((view, matched_by, matched_on)) = matched else {
            observed.drift.push(Code::ChangeUnsanctioned.to_string());
            if observe::is_non_human_credential(&observation.change) {
                observed
                    .drift
                    .push(Code::DriftNhiCredentialUnsanctioned.to_string());
            }
            let [request, observation_draft] =
                custody_core::lifecycle::unsanctioned(&write.actor, observed, rule, recorded_at)
                    .map_err(StoreError::Refused)?;
            // Only a change in the drills' namespace opens a drill case: a
            // real change in a drill's batch is recorded as real.
            let request =
                request.drill(drill && custody_core::is_drill_change(&observation.change));
            let case_id = CaseId::generate();
            // Nobody is asked to approve what already happened: the
            // observation tells security and the reviewers.
            let (first, view) =
                self.open_case(write, &Routing::default(), &case_id, request, recorded_at);
            let (second, state) = self.append_draft(write, view, observation_draft, recorded_at);
            return Ok(WriteOutcome {
                case_id,
                state,
                appended: vec![first, second],
                replayed: false,
                existing: false,
            });
        };
        let view = self.current_view(prefetched, &view.case_id).unwrap_or(view);
        observed.matched_by = matched_by;
        observed.matched_on = matched_on;
        observed.drift = observe::drift(
            &view,
            &observation.change,
            &observation.actor,
            observation.occurred_at,
        )
        .into_iter()
        .map(|drift| drift.code.to_string())
        .collect();
        let case_id = view.case_id.clone();
        let draft = custody_core::lifecycle::observe(&view, &write.actor, observed)
            .map_err(StoreError::Refused)?;
        let (appended, state) = self.append_draft(write, view, draft, recorded_at);
        Ok(WriteOutcome {
            case_id,
            state,
            appended: vec![appended],
            replayed: false,
            existing: false,
        })
    }
}

/// The change keys an observation of `change` may belong to: its own, and
/// for a revoke the grant it ends (a time-bound grant's case records its
/// revocation).
fn observation_keys(change: &Change) -> Vec<String> {
    let mut keys = vec![change_key(change)];
    if change.kind() == custody_core::model::ChangeKind::Revoke {
        keys.push(format!(
            "{}|grant|{}|{}",
            change.subject(),
            change.entitlement(),
            change.resource().unwrap_or("")
        ));
    }
    keys
}

/// What to read for `write` before deciding it.
fn needs(write: &CaseWrite) -> CaseNeeds {
    let mut needs = CaseNeeds::default();
    match &write.command {
        CaseCommand::Client(ClientCommand::Open(Opening::Request { change, ticket, .. })) => {
            needs.active_case_with_ticket = ticket.clone();
            needs.active_case_for_change = Some(change_key(change));
            needs.evidence_record = ticket.clone();
        }
        CaseCommand::Client(ClientCommand::Open(Opening::HoldEvidence { ticket, .. })) => {
            needs.case_with_ticket = Some(ticket.clone());
            needs.evidence_record = Some(ticket.clone());
        }
        CaseCommand::Client(ClientCommand::Open(Opening::Observe { observation, .. })) => {
            needs.observed_case = observation.case_hint.clone();
            needs.case_with_ticket = observation.references.first().cloned();
            needs.cases_for_change_keys = observation_keys(&observation.change);
        }
        _ => {}
    }
    let acts_on_a_change = matches!(
        write.command,
        CaseCommand::Client(ClientCommand::Open(
            Opening::Request { .. } | Opening::BreakGlass { .. }
        ))
    ) || !write.command.case_ids().is_empty();
    if write.actor.kind == PrincipalKind::Vendor && acts_on_a_change {
        needs.grants_of = Some(write.actor.org.clone().unwrap_or_default());
    }
    needs
}

/// The actor of a vendor's case write: the delegation grant in force `now`
/// among `grants` (its organisation's, as recorded) that covers `change`,
/// and the party it acts for; or the refusal.
fn vendor_actor(
    grants: &[DelegationGrant],
    actor: &Actor,
    change: &Change,
    now: Timestamp,
) -> Result<Actor, StoreError> {
    let principal = Principal {
        id: actor.principal.clone(),
        display_name: actor.principal.to_string(),
        kind: actor.kind,
        groups: actor.groups.clone(),
        org: actor.org.clone(),
    };
    // The grant the server chose, if it is still in force and covers the
    // change; else whichever grant does.
    let chosen = actor
        .delegation_grant
        .as_ref()
        .and_then(|id| grants.iter().find(|grant| &grant.grant_id == id))
        .filter(|grant| {
            grant.revoked_at.is_none()
                && now < grant.valid_until
                && grant.applies_to(&principal)
                && grant.covers(change)
        });
    let grant = match chosen {
        Some(grant) => grant,
        None => match custody_core::delegation::grant_for(grants, &principal, change, now)
            .map_err(StoreError::Refused)?
        {
            Some(grant) => grant,
            None => return Ok(actor.clone()),
        },
    };
    let mut actor = actor.clone();
    actor.delegation_grant = Some(grant.grant_id.clone());
    actor.on_behalf_of = Some(grant.on_behalf_of.clone());
    Ok(actor)
}
