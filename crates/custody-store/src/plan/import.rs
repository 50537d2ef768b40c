//! Rebuilding the projections from the events alone, for `custody import`:
//! given every event of a log in log order, what rows the store holds
//! beside them. The same rows the writer would have written, as far as the
//! events say (see `docs/bundle.md` for what they cannot say).

use std::collections::{BTreeMap, HashMap};

use custody_core::case::CaseView;
use custody_core::delegation::DelegationGrant;
use custody_core::event::{DeliveryOutcome, Event, EventBody};
use custody_core::model::{Principal, PrincipalId};
use custody_core::{CaseId, Sha256Hash, Timestamp};

use super::AdminRow;
use crate::StoreError;

/// What kind of trail a case ID is, once its first event is seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trail {
    /// A request's case: a `cases` row.
    Case,
    /// The policy record.
    Policy,
    /// The administration record.
    Admin,
    /// An evidence record (evidence held for a reference).
    Evidence,
    /// A trail that opens with none of these (the audit reports it); it
    /// gets no row.
    Other,
}

/// An outbox row as the events leave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ImportedDelivery {
    pub(crate) delivery_id: String,
    pub(crate) case_id: String,
    pub(crate) event_id: String,
    pub(crate) kind: String,
    pub(crate) audience: String,
    pub(crate) channel: String,
    pub(crate) recipient: Option<String>,
    pub(crate) state: &'static str,
    pub(crate) attempts: u32,
    pub(crate) last_error: Option<String>,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
}

/// An evidence-record row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ImportedRecord {
    pub(crate) ticket: String,
    pub(crate) record: String,
    pub(crate) released_to: Option<String>,
    pub(crate) created_at: Timestamp,
}

/// A `deployment` fact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeploymentFact {
    pub(crate) key: &'static str,
    pub(crate) value: String,
    pub(crate) created_at: Timestamp,
}

/// A `tokens` row as the events leave it. Written at the end of the
/// import, once the bundle's `token` lines have given the secrets' full
/// hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ImportedToken {
    pub(crate) token_id: String,
    pub(crate) principal: PrincipalId,
    /// The 16 hex digits `token_issued` records of the secret's SHA-256.
    prefix: String,
    /// The full SHA-256, when a `token` line gave it.
    full: Option<Sha256Hash>,
    /// The full SHA-256 its `token_issued` event records, when it does
    /// (tokens issued by versions that recorded only the prefix do not).
    recorded: Option<Sha256Hash>,
    pub(crate) created_at: Timestamp,
    pub(crate) expires_at: Option<Timestamp>,
    pub(crate) created_by: Option<String>,
    /// The first revocation: when, and by whom.
    pub(crate) revoked: Option<(Timestamp, String)>,
}

impl ImportedToken {
    /// The digest to store: the full one a line or the event gives, else
    /// one no secret authenticates against ([`unusable_token_hash`]).
    pub(crate) fn secret_sha256(&self) -> Result<Sha256Hash, StoreError> {
        match self.full.or(self.recorded) {
            Some(full) => Ok(full),
            None => unusable_token_hash(&self.prefix),
        }
    }

    /// Whether a `token` line or the event gave its full digest, and it is
    /// not the unusable one (a store imported from a version 1 bundle,
    /// exported again, carries those).
    pub(crate) fn restored(&self) -> bool {
        self.full.or(self.recorded).is_some_and(|full| {
            unusable_token_hash(&self.prefix).map_or(true, |unusable| unusable != full)
        })
    }
}

/// What the import has rebuilt so far.
#[derive(Default)]
pub(crate) struct ImportState {
    trails: HashMap<String, Trail>,
    views: HashMap<CaseId, CaseView>,
    grants: HashMap<String, DelegationGrant>,
    tokens: BTreeMap<String, ImportedToken>,
    deliveries: BTreeMap<String, ImportedDelivery>,
    records: BTreeMap<String, ImportedRecord>,
    facts: Vec<DeploymentFact>,
}

/// Every row the events rebuild, once all of them are seen.
pub(crate) struct ImportedRows {
    pub(crate) views: Vec<CaseView>,
    pub(crate) tokens: Vec<ImportedToken>,
    pub(crate) deliveries: Vec<ImportedDelivery>,
    pub(crate) records: Vec<ImportedRecord>,
    pub(crate) facts: Vec<DeploymentFact>,
}

impl ImportState {
    /// Folds in the next event of the log (its canonical bytes hash to
    /// `hash`) and returns the administration rows it writes, in order.
    pub(crate) fn observe(
        &mut self,
        event: &Event,
        hash: Sha256Hash,
    ) -> Result<Vec<AdminRow>, StoreError> {
        let case_id = event.case_id.to_string();
        let trail = match self.trails.get(&case_id) {
            Some(trail) => *trail,
            None => {
                let trail = self.open(event, hash);
                self.trails.insert(case_id.clone(), trail);
                trail
            }
        };
        self.observe_notifications(event);
        match trail {
            Trail::Case if event.seq > 1 => {
                if let Some(view) = self.views.get_mut(&event.case_id) {
                    view.apply_hashed(event, hash);
                }
                Ok(Vec::new())
            }
            Trail::Evidence => {
                if let EventBody::EvidenceReleased(link) = &event.body {
                    if let Some(record) = self.records.get_mut(&case_id) {
                        record.released_to = Some(link.other_case.to_string());
                    }
                }
                Ok(Vec::new())
            }
            Trail::Admin => self.admin_rows(event),
            Trail::Case | Trail::Policy | Trail::Other => Ok(Vec::new()),
        }
    }

    /// The first event of a trail: what kind it is, and the rows it starts.
    fn open(&mut self, event: &Event, hash: Sha256Hash) -> Trail {
        let fact = |key: &'static str| DeploymentFact {
            key,
            value: event.case_id.to_string(),
            created_at: event.recorded_at,
        };
        if let Some(view) = CaseView::open_hashed(event, hash) {
            self.views.insert(event.case_id.clone(), view);
            return Trail::Case;
        }
        match &event.body {
            EventBody::PolicyAdopted(_) => {
                if !self.facts.iter().any(|known| known.key == "policy_record") {
                    self.facts.push(fact("policy_record"));
                }
                Trail::Policy
            }
            EventBody::EvidenceHeld(held) => {
                self.records.insert(
                    event.case_id.to_string(),
                    ImportedRecord {
                        ticket: held.ticket.to_string(),
                        record: event.case_id.to_string(),
                        released_to: None,
                        created_at: event.recorded_at,
                    },
                );
                Trail::Evidence
            }
            body if custody_core::admin::is_admin_event(body) => {
                if !self.facts.iter().any(|known| known.key == "admin_record") {
                    self.facts.push(fact("admin_record"));
                }
                Trail::Admin
            }
            _ => Trail::Other,
        }
    }

    /// The outbox rows an event owes, and the attempts it records.
    fn observe_notifications(&mut self, event: &Event) {
        for owed in &event.notify {
            self.deliveries.insert(
                owed.delivery_id.clone(),
                ImportedDelivery {
                    delivery_id: owed.delivery_id.clone(),
                    case_id: event.case_id.to_string(),
                    event_id: event.event_id.to_string(),
                    kind: owed.kind.clone(),
                    audience: owed.audience.as_str().to_string(),
                    channel: owed.channel.clone(),
                    recipient: owed.recipient.clone(),
                    state: "pending",
                    attempts: 0,
                    last_error: None,
                    created_at: event.recorded_at,
                    updated_at: event.recorded_at,
                },
            );
        }
        if let EventBody::NotificationAttempted(attempt) = &event.body {
            if let Some(delivery) = self.deliveries.get_mut(&attempt.delivery_id) {
                delivery.state = match attempt.outcome {
                    DeliveryOutcome::Delivered => "delivered",
                    DeliveryOutcome::Failed => "pending",
                    DeliveryOutcome::Dead => "dead",
                };
                delivery.attempts = attempt.attempt;
                delivery.last_error = attempt.error.clone();
                delivery.updated_at = event.recorded_at;
            }
        }
    }

    /// The projection rows an event of the administration record writes.
    fn admin_rows(&mut self, event: &Event) -> Result<Vec<AdminRow>, StoreError> {
        let by = (event.actor.principal.as_str() != custody_core::model::SYSTEM_PRINCIPAL)
            .then(|| event.actor.principal.to_string());
        let encode = |grant: &DelegationGrant| {
            serde_json::to_string(grant)
                .map_err(|error| StoreError::Corrupt(format!("cannot encode a grant: {error}")))
        };
        let row = match &event.body {
            // A principal an OIDC identity provisioned: the binding is
            // restored with it (`docs/oidc.md`).
            EventBody::PrincipalAdded(added)
                if custody_core::admin::oidc_self_provisioned(&event.actor, &added.principal)
                    .is_some() =>
            {
                let (issuer, subject) =
                    custody_core::admin::oidc_self_provisioned(&event.actor, &added.principal)
                        .unwrap_or_default();
                AdminRow::InsertOidcPrincipal {
                    principal: Principal {
                        id: added.principal.clone(),
                        display_name: added.display_name.clone(),
                        kind: added.kind,
                        groups: added.groups.clone(),
                        org: added.org.clone(),
                    },
                    groups_json: serde_json::to_string(&added.groups)
                        .map_err(|error| StoreError::Corrupt(error.to_string()))?,
                    created_at: event.recorded_at,
                    issuer: issuer.to_string(),
                    subject: subject.to_string(),
                }
            }
            EventBody::PrincipalAdded(added) => AdminRow::InsertPrincipal {
                principal: Principal {
                    id: added.principal.clone(),
                    display_name: added.display_name.clone(),
                    kind: added.kind,
                    groups: added.groups.clone(),
                    org: added.org.clone(),
                },
                groups_json: serde_json::to_string(&added.groups)
                    .map_err(|error| StoreError::Corrupt(error.to_string()))?,
                created_at: event.recorded_at,
                created_by: by,
            },
            EventBody::PrincipalGroupsChanged(changed) => AdminRow::UpdateGroups {
                principal: changed.principal.clone(),
                groups_json: serde_json::to_string(&changed.groups)
                    .map_err(|error| StoreError::Corrupt(error.to_string()))?,
            },
            // Token rows wait for the bundle's `token` lines, which follow
            // the events and give the secrets' full hashes.
            EventBody::TokenIssued(issued) => {
                if !self.tokens.contains_key(&issued.token_id) {
                    self.tokens.insert(
                        issued.token_id.clone(),
                        ImportedToken {
                            token_id: issued.token_id.clone(),
                            principal: issued.principal.clone(),
                            prefix: issued.secret_sha256_prefix.clone(),
                            full: None,
                            recorded: issued.secret_sha256,
                            created_at: event.recorded_at,
                            expires_at: issued.expires_at,
                            created_by: by,
                            revoked: None,
                        },
                    );
                }
                return Ok(Vec::new());
            }
            EventBody::TokenRevoked(revoked) => {
                if let Some(token) = self.tokens.get_mut(&revoked.token_id) {
                    // The first revocation stands, as the writer's does.
                    token.revoked.get_or_insert_with(|| {
                        (event.recorded_at, event.actor.principal.to_string())
                    });
                }
                return Ok(Vec::new());
            }
            EventBody::DelegationGranted(granted) => {
                let grant = DelegationGrant::from(granted);
                let grant_json = encode(&grant)?;
                self.grants.insert(grant.grant_id.clone(), grant);
                AdminRow::InsertGrant {
                    grant_id: granted.grant_id.clone(),
                    vendor_org: granted.vendor_org.clone(),
                    grant_json,
                }
            }
            EventBody::DelegationRevoked(revoked) => {
                let Some(grant) = self.grants.get_mut(&revoked.grant_id) else {
                    return Ok(Vec::new());
                };
                if grant.revoked_at.is_some() {
                    return Ok(Vec::new());
                }
                grant.revoked_at = Some(revoked.revoked_at);
                AdminRow::UpdateGrant {
                    grant_id: revoked.grant_id.clone(),
                    grant_json: encode(grant)?,
                }
            }
            EventBody::IdentityMapped(mapped) => AdminRow::MapIdentity {
                connector: mapped.connector.clone(),
                external_user: mapped.external_user.clone(),
                principal: mapped.principal.clone(),
                mapped_at: event.recorded_at,
                mapped_by: by,
            },
            EventBody::IdentityUnmapped(unmapped) => AdminRow::UnmapIdentity {
                connector: unmapped.connector.clone(),
                external_user: unmapped.external_user.clone(),
            },
            _ => return Ok(Vec::new()),
        };
        Ok(vec![row])
    }

    /// Gives the imported token `token_id` the full SHA-256 of its secret
    /// (a bundle's `token` line): the token must have been issued to
    /// `principal` by an imported event, with a recorded prefix the digest
    /// begins with, and not be given one already.
    pub(crate) fn restore_token(
        &mut self,
        token_id: &str,
        principal: &str,
        secret_sha256: Sha256Hash,
    ) -> Result<(), StoreError> {
        let refused = |why: String| {
            Err(StoreError::InvalidRequest(format!(
                "the bundle's token line for {token_id} {why}, so the token cannot be restored; nothing was imported\nhint: run `custody verify --bundle` on it"
            )))
        };
        let Some(token) = self.tokens.get_mut(token_id) else {
            return refused("names a token no imported token_issued event issues".to_string());
        };
        if token.principal.as_str() != principal {
            return refused(format!(
                "names principal {principal}, but the token was issued to {}",
                token.principal
            ));
        }
        let digest = secret_sha256.to_hex();
        if !digest.starts_with(&token.prefix.to_ascii_lowercase()) || token.prefix.len() != 16 {
            return refused(format!(
                "gives a secret hash that does not begin with the {} its token_issued event records",
                token.prefix
            ));
        }
        if token
            .recorded
            .is_some_and(|recorded| recorded != secret_sha256)
        {
            return refused(format!(
                "gives a secret hash other than the {} its token_issued event records",
                token
                    .recorded
                    .map(|recorded| recorded.to_hex())
                    .unwrap_or_default()
            ));
        }
        if token.full.is_some() {
            return refused("repeats an earlier token line".to_string());
        }
        token.full = Some(secret_sha256);
        Ok(())
    }

    /// Every row rebuilt, once the last event is seen.
    pub(crate) fn finish(self) -> ImportedRows {
        let mut views: Vec<CaseView> = self.views.into_values().collect();
        views.sort_by(|left, right| left.case_id.as_str().cmp(right.case_id.as_str()));
        ImportedRows {
            views,
            tokens: self.tokens.into_values().collect(),
            deliveries: self.deliveries.into_values().collect(),
            records: self.records.into_values().collect(),
            facts: self.facts,
        }
    }
}

/// The `tokens.secret_sha256` of an imported token whose full digest the
/// bundle does not carry (a bundle made before version 2 had no `token`
/// lines). The event records only the first 16 hex digits (8 bytes) of the
/// secret's SHA-256: the row holds those 8 bytes followed by 24 zero bytes.
/// The audit matches a row to its event by the prefix, so the record and
/// the row agree; and no bearer secret authenticates against it, since its
/// SHA-256 would have to end in 192 zero bits. Such tokens are on the
/// record but unusable, and are re-issued after the restore
/// (`docs/bundle.md`).
pub(crate) fn unusable_token_hash(prefix_hex: &str) -> Result<Sha256Hash, StoreError> {
    let prefix = custody_core::hex::decode(prefix_hex)
        .filter(|bytes| bytes.len() == 8)
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "a token_issued event records `{prefix_hex}` as its secret's hash prefix, not 16 hex digits"
            ))
        })?;
    let mut digest = [0_u8; 32];
    digest[..8].copy_from_slice(&prefix);
    Ok(Sha256Hash(digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_core::lifecycle::Placement;
    use custody_core::model::Actor;

    /// A log's one `token_issued` event, recording the whole hash or, as
    /// versions before did, its prefix only.
    fn issued(secret_sha256: &Sha256Hash, whole: bool) -> Event {
        let mut draft = custody_core::admin::token_issued(
            "tok_0001",
            &"alice".parse().expect("name"),
            &secret_sha256.to_hex(),
            None,
            true,
        );
        if !whole {
            if let EventBody::TokenIssued(payload) = &mut draft.body {
                payload.secret_sha256 = None;
            }
        }
        draft.seal(
            Actor::system(),
            Placement {
                case_id: CaseId::generate(),
                seq: 1,
                prev_hash: None,
                recorded_at: Timestamp::from_micros(0),
                occurred_at: None,
                idempotency_key: None,
                origin: None,
            },
        )
    }

    fn imported(event: &Event, line: Option<Sha256Hash>) -> Result<ImportedToken, StoreError> {
        let mut state = ImportState::default();
        state.observe(event, event.hash())?;
        if let Some(line) = line {
            state.restore_token("tok_0001", "alice", line)?;
        }
        Ok(state.finish().tokens.remove(0))
    }

    #[test]
    fn a_token_is_restored_from_its_line_or_the_whole_hash_its_event_records() {
        let secret = Sha256Hash::of(b"cus_the-secret");
        // An event that records the whole hash: restored with or without a
        // line, and a line with another hash of the same prefix is refused.
        let whole = issued(&secret, true);
        for line in [None, Some(secret)] {
            let token = imported(&whole, line).expect("imported");
            assert_eq!(token.secret_sha256().expect("hash"), secret);
            assert!(token.restored());
        }
        let mut other = secret;
        other.0[31] ^= 1;
        let refused = imported(&whole, Some(other)).expect_err("another hash");
        assert!(refused.to_string().contains("other than"), "{refused}");
        // An event of a version that recorded the prefix only: restored by
        // its line, else stored unusable (its prefix and zero bytes).
        let prefix_only = issued(&secret, false);
        let token = imported(&prefix_only, Some(secret)).expect("imported");
        assert_eq!(token.secret_sha256().expect("hash"), secret);
        assert!(token.restored());
        let token = imported(&prefix_only, None).expect("imported");
        let unusable = token.secret_sha256().expect("hash");
        assert_eq!(unusable.0[..8], secret.0[..8]);
        assert_eq!(unusable.0[8..], [0u8; 24]);
        assert!(!token.restored());
    }
}
