//! The deployment's own records: the administration record (principals,
//! tokens, delegation grants, the mappings of connectors' outside users;
//! see [`custody_core::admin`]) and the policy record.
//!
//! Each administrative act is decided here against what the backend read
//! under the write lock (the actor's [`Standing`], the rows it changes) and
//! comes back as an [`AdminChange`]: the projection row to write and the
//! event that records it, which [`Pending::append_admin`] places in the
//! record. An act that changes nothing (groups already set, a token or grant
//! revoked already) comes back without a change, so nothing is appended.

use custody_core::admin;
use custody_core::delegation::DelegationGrant;
use custody_core::event::EventBody;
use custody_core::lifecycle::{self, Draft, Placement};
use custody_core::model::{
    Actor, ConnectorName, ExternalUser, Principal, PrincipalId, SYSTEM_PRINCIPAL,
};
use custody_core::policy::Policy;
use custody_core::{CaseId, Event, Sha256Hash, Timestamp};

use super::{AdminHead, Pending};
use crate::{AppendedEvent, IdentityChange, IdentityMapping, IssuedToken, StoreError, TokenInfo};

/// Where an actor stands as the administration record stands.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Standing {
    /// A member of `admins` in the principals projection.
    pub(crate) is_admin: bool,
    /// Every event of the record so far is by `system` (or there is none).
    pub(crate) opening: bool,
}

/// A row of an administration projection, written in the transaction of
/// the event that records it.
#[derive(Debug)]
pub(crate) enum AdminRow {
    /// A new `principals` row.
    InsertPrincipal {
        principal: Principal,
        groups_json: String,
        created_at: Timestamp,
        /// The admin who added it; `None` for `system`.
        created_by: Option<String>,
    },
    /// A new `principals` row added by its own first OpenID Connect
    /// sign-in, and the `oidc_identities` row that binds the identity to it.
    InsertOidcPrincipal {
        principal: Principal,
        groups_json: String,
        created_at: Timestamp,
        issuer: String,
        subject: String,
    },
    /// A principal's new groups.
    UpdateGroups {
        principal: PrincipalId,
        groups_json: String,
    },
    /// A new `tokens` row (the secret's SHA-256, never the secret).
    InsertToken {
        token_id: String,
        principal: PrincipalId,
        secret_sha256: Sha256Hash,
        created_at: Timestamp,
        expires_at: Option<Timestamp>,
        created_by: Option<String>,
    },
    /// A token revoked (only if it is not revoked yet).
    RevokeToken {
        token_id: String,
        revoked_at: Timestamp,
        revoked_by: String,
    },
    /// A new `delegations` row.
    InsertGrant {
        grant_id: String,
        vendor_org: String,
        grant_json: String,
    },
    /// A grant as it now stands (revoked).
    UpdateGrant {
        grant_id: String,
        grant_json: String,
    },
    /// An outside user mapped to a principal: a new row, or the row of a
    /// remapped user replaced.
    MapIdentity {
        connector: ConnectorName,
        external_user: ExternalUser,
        principal: PrincipalId,
        mapped_at: Timestamp,
        /// The admin who mapped it; `None` for `system`.
        mapped_by: Option<String>,
    },
    /// An outside user's row removed.
    UnmapIdentity {
        connector: ConnectorName,
        external_user: ExternalUser,
    },
}

/// One administrative act: the row it writes and the event that records it.
#[derive(Debug)]
pub(crate) struct AdminChange {
    pub(crate) row: AdminRow,
    pub(crate) draft: Draft,
}

/// A new bearer token, made by the caller from the system's randomness.
pub(crate) struct NewToken {
    /// `cust_` and the secret.
    pub(crate) token: String,
    /// `tok_` and the public part.
    pub(crate) token_id: String,
}

/// A token row of a data directory made before administration was on the record.
pub(crate) struct LegacyToken {
    pub(crate) token_id: String,
    pub(crate) principal: PrincipalId,
    pub(crate) secret_sha256: Vec<u8>,
    pub(crate) expires_at: Option<Timestamp>,
    pub(crate) revoked: bool,
}

/// The policy record as stored: its ID and its latest event (with its hash).
pub(crate) struct PolicyHead {
    pub(crate) record: CaseId,
    pub(crate) latest: Event,
    pub(crate) hash: Sha256Hash,
}

impl Pending {
    /// Whether the backend must read the administration record's stored head:
    /// not once the batch has appended to the record.
    pub(crate) fn needs_admin_head(&self) -> bool {
        self.admin_head.is_none()
    }

    /// The administration record's head: the batch's, else `stored`.
    fn current_admin_head(&self, stored: Option<AdminHead>) -> Option<AdminHead> {
        self.admin_head.clone().or(stored)
    }

    /// Where `actor` stands, given whether the principals projection has it
    /// in `admins` and the record's stored head.
    pub(crate) fn standing(&self, is_admin: bool, stored_head: Option<AdminHead>) -> Standing {
        Standing {
            is_admin,
            opening: self
                .current_admin_head(stored_head)
                .is_none_or(|head| head.opening),
        }
    }

    /// Appends `draft`, acted by `actor` at `now`, to the administration
    /// record. Returns the appended event and, when this event opens the
    /// record, the record's new ID (for the `deployment` table).
    pub(crate) fn append_admin(
        &mut self,
        stored_head: Option<AdminHead>,
        actor: &Actor,
        draft: Draft,
        now: Timestamp,
    ) -> (AppendedEvent, Option<CaseId>) {
        let (case_id, seq, prev_hash, opening, opened) = match self.current_admin_head(stored_head)
        {
            Some(head) => (
                head.case_id,
                head.seq + 1,
                Some(head.hash),
                head.opening,
                None,
            ),
            None => {
                let case_id = CaseId::generate();
                (case_id.clone(), 1, None, true, Some(case_id))
            }
        };
        let event = draft.seal(
            actor.clone(),
            Placement {
                case_id: case_id.clone(),
                seq,
                prev_hash,
                recorded_at: now,
                occurred_at: None,
                idempotency_key: None,
                origin: None,
            },
        );
        let bytes = event.canonical_bytes();
        let hash = Sha256Hash::of(&bytes);
        self.admin_head = Some(AdminHead {
            case_id,
            seq,
            hash,
            opening: opening && is_system(actor),
        });
        (self.push_event(event, bytes, Vec::new()), opened)
    }

    /// Whether a data directory made before administration was on the
    /// record is to be recorded now: only while the record does not exist.
    pub(crate) fn records_legacy_admin(&self, stored_head: Option<AdminHead>) -> bool {
        self.current_admin_head(stored_head).is_none()
    }

    /// Appends a `policy_adopted` event to the policy record (`stored`, or a
    /// new one) unless `policy` is the one it adopted last. Returns the
    /// appended event and, when it opens the record, the record's new ID.
    pub(crate) fn adopt_policy(
        &mut self,
        stored: Option<PolicyHead>,
        policy: &Policy,
        source: &str,
        now: Timestamp,
    ) -> Result<Option<(AppendedEvent, Option<CaseId>)>, StoreError> {
        let (case_id, seq, prev_hash, previous_policy, opened) = match stored {
            Some(head) => {
                let EventBody::PolicyAdopted(adopted) = &head.latest.body else {
                    return Err(StoreError::Corrupt(format!(
                        "the policy record {} ends with a {} event",
                        head.record,
                        head.latest.body.kind_name()
                    )));
                };
                if adopted.policy_hash == policy.hash() {
                    return Ok(None);
                }
                (
                    head.record,
                    head.latest.seq + 1,
                    Some(head.hash),
                    Some(adopted.policy_hash),
                    None,
                )
            }
            None => {
                let case_id = CaseId::generate();
                (case_id.clone(), 1, None, None, Some(case_id))
            }
        };
        let event = lifecycle::adopt_policy(policy, previous_policy, source).seal(
            Actor::system(),
            Placement {
                case_id,
                seq,
                prev_hash,
                recorded_at: now,
                occurred_at: None,
                idempotency_key: None,
                origin: None,
            },
        );
        let bytes = event.canonical_bytes();
        Ok(Some((self.push_event(event, bytes, Vec::new()), opened)))
    }
}

fn is_system(actor: &Actor) -> bool {
    actor.principal.as_str() == SYSTEM_PRINCIPAL
}

/// Who made a row, as its `created_by` column says: `None` for `system`.
fn created_by(actor: &Actor) -> Option<String> {
    (!is_system(actor)).then(|| actor.principal.to_string())
}

fn may_administer(actor: &Actor, standing: Standing) -> Result<(), StoreError> {
    admin::may_administer(actor, standing.is_admin, standing.opening).map_err(StoreError::Refused)
}

/// Adds `principal`, by `actor`, unless a principal of that name `exists`.
pub(crate) fn add_principal(
    standing: Standing,
    exists: bool,
    principal: &Principal,
    actor: &Actor,
    now: Timestamp,
) -> Result<AdminChange, StoreError> {
    may_administer(actor, standing)?;
    if exists {
        return Err(StoreError::PrincipalExists(principal.id.to_string()));
    }
    let groups_json = serde_json::to_string(&principal.groups)
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
    Ok(AdminChange {
        row: AdminRow::InsertPrincipal {
            principal: principal.clone(),
            groups_json,
            created_at: now,
            created_by: created_by(actor),
        },
        draft: admin::principal_added(principal, is_system(actor)),
    })
}

/// What an OpenID Connect sign-in as `claimed` by the identity (`issuer`,
/// `subject`) does, as the record stands: `bound` is the principal the
/// identity is bound to, `stored` the principal named `claimed.id`, and
/// `claimed_bound` whether that principal is bound to some identity.
///
/// - an identity bound to `claimed.id`: its groups, when the issuer now
///   asserts others (`principal_groups_changed`, by the principal itself);
/// - an identity bound to another principal, or a `claimed.id` that exists
///   but is not bound to this identity (an admin's principal, another
///   subject's): refused ([`custody_core::code::Code::OidcIdentityMismatch`]),
///   never merged;
/// - otherwise the principal is added (`principal_added`, by itself) and
///   the identity bound to it.
pub(crate) fn oidc_sign_in(
    bound: Option<PrincipalId>,
    stored: Option<Principal>,
    claimed: &Principal,
    actor: &Actor,
    now: Timestamp,
) -> Result<(Principal, Option<AdminChange>), StoreError> {
    let (issuer, subject) = admin::oidc_self_provisioned(actor, &claimed.id).ok_or_else(|| {
        StoreError::InvalidRequest(
            "an OIDC sign-in must be made by the principal it signs in, authenticated by OIDC"
                .to_string(),
        )
    })?;
    let refuse = |message: String| {
        StoreError::Refused(lifecycle::Refusal {
            rule: custody_core::code::Code::OidcIdentityMismatch,
            message,
            hint: Some("an admin can tell which identity a principal is bound to from its `principal_added` event (`custody admin record`); sign in with that identity, or use another principal name".to_string()),
        })
    };
    match (bound, stored) {
        (Some(bound), _) if bound != claimed.id => Err(refuse(format!(
            "this identity of the issuer is bound to principal {bound}, but the token names {}",
            claimed.id
        ))),
        (Some(_), None) => Err(StoreError::Corrupt(format!(
            "an OIDC identity is bound to principal {}, which is not stored",
            claimed.id
        ))),
        (Some(_), Some(mut principal)) => {
            if principal.groups == claimed.groups {
                return Ok((principal, None));
            }
            let previous = std::mem::replace(&mut principal.groups, claimed.groups.clone());
            let groups_json = serde_json::to_string(&principal.groups)
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
            let draft =
                admin::principal_groups_changed(&principal.id, &previous, &principal.groups, false);
            Ok((
                principal.clone(),
                Some(AdminChange {
                    row: AdminRow::UpdateGroups {
                        principal: principal.id.clone(),
                        groups_json,
                    },
                    draft,
                }),
            ))
        }
        (None, Some(existing)) => Err(refuse(format!(
            "principal {} exists and is not bound to this identity of the issuer (an admin added it, or another subject signed in as it first)",
            existing.id
        ))),
        (None, None) => {
            if claimed.id.as_str() == SYSTEM_PRINCIPAL {
                return Err(StoreError::InvalidRequest(
                    "`system` is reserved for the ledger and cannot sign in".to_string(),
                ));
            }
            let groups_json = serde_json::to_string(&claimed.groups)
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
            Ok((
                claimed.clone(),
                Some(AdminChange {
                    row: AdminRow::InsertOidcPrincipal {
                        principal: claimed.clone(),
                        groups_json,
                        created_at: now,
                        issuer: issuer.to_string(),
                        subject: subject.to_string(),
                    },
                    draft: admin::principal_added(claimed, false),
                }),
            ))
        }
    }
}

/// Sets the groups of the principal `id` (`stored` as the projection has
/// it); setting the groups it has already changes nothing. `another_admin`
/// says whether a principal other than `id` is in `admins`: without one, the
/// last admin is not taken out of the group
/// ([`custody_core::code::Code::AdminLastAdmin`]).
pub(crate) fn set_groups(
    standing: Standing,
    stored: Option<Principal>,
    id: &PrincipalId,
    groups: Vec<String>,
    another_admin: bool,
    by: &Actor,
) -> Result<(Principal, Option<AdminChange>), StoreError> {
    may_administer(by, standing)?;
    let mut principal = stored.ok_or_else(|| StoreError::PrincipalNotFound(id.to_string()))?;
    if principal.groups == groups {
        return Ok((principal, None));
    }
    admin::may_change_groups(id, &principal.groups, &groups, another_admin)
        .map_err(StoreError::Refused)?;
    let previous = std::mem::replace(&mut principal.groups, groups);
    let groups_json = serde_json::to_string(&principal.groups)
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
    let draft = admin::principal_groups_changed(id, &previous, &principal.groups, is_system(by));
    Ok((
        principal,
        Some(AdminChange {
            row: AdminRow::UpdateGroups {
                principal: id.clone(),
                groups_json,
            },
            draft,
        }),
    ))
}

/// Issues `token` to `principal` (which must exist) for `ttl_seconds`.
pub(crate) fn create_token(
    standing: Standing,
    exists: bool,
    principal: &PrincipalId,
    token: NewToken,
    ttl_seconds: Option<u64>,
    actor: &Actor,
    now: Timestamp,
) -> Result<(IssuedToken, AdminChange), StoreError> {
    may_administer(actor, standing)?;
    if !exists {
        return Err(StoreError::PrincipalNotFound(principal.to_string()));
    }
    let expires_at = ttl_seconds.map(|seconds| now.plus_unsigned_seconds(seconds));
    let digest = Sha256Hash::of(token.token.as_bytes());
    let draft = admin::token_issued(
        &token.token_id,
        principal,
        &digest.to_hex(),
        expires_at,
        is_system(actor),
    );
    let change = AdminChange {
        row: AdminRow::InsertToken {
            token_id: token.token_id.clone(),
            principal: principal.clone(),
            secret_sha256: digest,
            created_at: now,
            expires_at,
            created_by: created_by(actor),
        },
        draft,
    };
    Ok((
        IssuedToken {
            token_id: token.token_id,
            token: token.token,
            principal: principal.to_string(),
            expires_at,
        },
        change,
    ))
}

/// Revokes `token` by `by`: its owner, or whoever may administer. A token
/// revoked already changes nothing, whoever asks.
pub(crate) fn revoke_token(
    token: &TokenInfo,
    standing: Standing,
    by: &Actor,
    now: Timestamp,
) -> Result<Option<AdminChange>, StoreError> {
    if token.revoked_at.is_some() {
        return Ok(None);
    }
    let owner: PrincipalId = token
        .principal
        .parse()
        .map_err(|error: custody_core::model::ModelError| StoreError::Corrupt(error.to_string()))?;
    admin::may_revoke_token(by, standing.is_admin, standing.opening, &owner)
        .map_err(StoreError::Refused)?;
    Ok(Some(AdminChange {
        row: AdminRow::RevokeToken {
            token_id: token.token_id.clone(),
            revoked_at: now,
            revoked_by: by.principal.to_string(),
        },
        draft: admin::token_revoked(&token.token_id, &owner, is_system(by)),
    }))
}

/// Grants `grant`, now, by `by`, unless a grant with its ID `exists`.
pub(crate) fn grant_delegation(
    standing: Standing,
    exists: bool,
    mut grant: DelegationGrant,
    by: &Actor,
    now: Timestamp,
) -> Result<(DelegationGrant, AdminChange), StoreError> {
    may_administer(by, standing)?;
    grant.granted_at = now;
    grant.granted_by = by.principal.clone();
    grant.revoked_at = None;
    if exists {
        return Err(StoreError::InvalidRequest(format!(
            "delegation grant {} exists already",
            grant.grant_id
        )));
    }
    let grant_json = serde_json::to_string(&grant)
        .map_err(|error| StoreError::Corrupt(format!("cannot encode a grant: {error}")))?;
    let draft = admin::delegation_granted(&grant, is_system(by));
    let row = AdminRow::InsertGrant {
        grant_id: grant.grant_id.clone(),
        vendor_org: grant.vendor_org.clone(),
        grant_json,
    };
    Ok((grant, AdminChange { row, draft }))
}

/// Revokes the grant `grant_id` (`stored` as recorded), now, by `by`. A
/// grant revoked already keeps its first revocation time and changes nothing.
pub(crate) fn revoke_delegation(
    stored: Option<DelegationGrant>,
    grant_id: &str,
    standing: Standing,
    by: &Actor,
    now: Timestamp,
) -> Result<(DelegationGrant, Option<AdminChange>), StoreError> {
    let mut grant = stored.ok_or_else(|| {
        StoreError::InvalidRequest(format!("delegation grant {grant_id} does not exist"))
    })?;
    may_administer(by, standing)?;
    if grant.revoked_at.is_some() {
        return Ok((grant, None));
    }
    grant.revoked_at = Some(now);
    let grant_json = serde_json::to_string(&grant)
        .map_err(|error| StoreError::Corrupt(format!("cannot encode a grant: {error}")))?;
    let change = AdminChange {
        row: AdminRow::UpdateGrant {
            grant_id: grant_id.to_string(),
            grant_json,
        },
        draft: admin::delegation_revoked(grant_id, now, is_system(by)),
    };
    Ok((grant, Some(change)))
}

/// Maps outside users of `connector` to principals, by `by`, in the order
/// given: all of them or, when one is refused, none. `stored` holds the
/// mappings in force of the users named (as the projection has them) and
/// `known` which of the principals named exist. A user mapped to the
/// principal it is mapped to already changes nothing; one mapped to another
/// principal is remapped, by one event that names the principal it
/// replaces; a user named twice is mapped, then remapped.
pub(crate) fn map_identities(
    standing: Standing,
    connector: &ConnectorName,
    entries: Vec<(ExternalUser, PrincipalId)>,
    stored: &std::collections::BTreeMap<ExternalUser, IdentityMapping>,
    known: &std::collections::BTreeSet<PrincipalId>,
    by: &Actor,
    now: Timestamp,
) -> Result<Vec<(IdentityChange, Option<AdminChange>)>, StoreError> {
    may_administer(by, standing)?;
    // What this call has mapped so far, over what is stored.
    let mut current = stored.clone();
    let mut decided = Vec::with_capacity(entries.len());
    for (external_user, principal) in entries {
        if principal.as_str() == SYSTEM_PRINCIPAL {
            return Err(StoreError::InvalidRequest(format!(
                "{connector} user {external_user} cannot be mapped to `system`: it is the ledger itself and acts for no one\nhint: map the user to the principal of the person it is"
            )));
        }
        if !known.contains(&principal) {
            return Err(StoreError::PrincipalNotFound(principal.to_string()));
        }
        let previous = current.get(&external_user).cloned();
        if let Some(mapping) = previous
            .as_ref()
            .filter(|mapping| mapping.principal == principal.as_str())
        {
            decided.push((
                IdentityChange {
                    mapping: mapping.clone(),
                    previous: None,
                    recorded: false,
                },
                None,
            ));
            continue;
        }
        let previous_principal: Option<PrincipalId> = previous
            .map(|mapping| {
                mapping
                    .principal
                    .parse()
                    .map_err(|error: custody_core::model::ModelError| {
                        StoreError::Corrupt(format!("a stored mapping's principal: {error}"))
                    })
            })
            .transpose()?;
        let mapping = IdentityMapping {
            connector: connector.to_string(),
            external_user: external_user.to_string(),
            principal: principal.to_string(),
            mapped_at: now.to_string(),
            mapped_by: created_by(by),
        };
        current.insert(external_user.clone(), mapping.clone());
        let draft = admin::identity_mapped(
            connector,
            &external_user,
            &principal,
            previous_principal.as_ref(),
            is_system(by),
        );
        let row = AdminRow::MapIdentity {
            connector: connector.clone(),
            external_user,
            principal,
            mapped_at: now,
            mapped_by: created_by(by),
        };
        decided.push((
            IdentityChange {
                mapping,
                previous: previous_principal.map(|principal| principal.to_string()),
                recorded: true,
            },
            Some(AdminChange { row, draft }),
        ));
    }
    Ok(decided)
}

/// Unmaps `external_user` of `connector` (`stored`: its mapping in force),
/// by `by`. A user that is not mapped is refused: there is nothing to
/// record.
pub(crate) fn unmap_identity(
    standing: Standing,
    connector: &ConnectorName,
    external_user: &ExternalUser,
    stored: Option<IdentityMapping>,
    by: &Actor,
) -> Result<(IdentityChange, AdminChange), StoreError> {
    may_administer(by, standing)?;
    let mapping = stored.ok_or_else(|| StoreError::IdentityNotMapped {
        connector: connector.to_string(),
        external_user: external_user.to_string(),
    })?;
    let principal: PrincipalId =
        mapping
            .principal
            .parse()
            .map_err(|error: custody_core::model::ModelError| {
                StoreError::Corrupt(format!("a stored mapping's principal: {error}"))
            })?;
    let draft = admin::identity_unmapped(connector, external_user, &principal, is_system(by));
    Ok((
        IdentityChange {
            mapping,
            previous: None,
            recorded: true,
        },
        AdminChange {
            row: AdminRow::UnmapIdentity {
                connector: connector.clone(),
                external_user: external_user.clone(),
            },
            draft,
        },
    ))
}

/// The events, by `system`, that record the principals, tokens and grants
/// of a data directory made before administration was on the record: each
/// as it was added, then its revocation if it was revoked. A grant keeps
/// its recorded revocation time (never later than `now`).
pub(crate) fn legacy_admin(
    principals: &[Principal],
    tokens: &[LegacyToken],
    grants: &[DelegationGrant],
    now: Timestamp,
) -> Vec<Draft> {
    let mut drafts = Vec::new();
    for principal in principals {
        drafts.push(admin::principal_added(principal, true));
    }
    for token in tokens {
        drafts.push(admin::token_issued(
            &token.token_id,
            &token.principal,
            &custody_core::hex::encode(&token.secret_sha256),
            token.expires_at,
            true,
        ));
        if token.revoked {
            drafts.push(admin::token_revoked(
                &token.token_id,
                &token.principal,
                true,
            ));
        }
    }
    for grant in grants {
        drafts.push(admin::delegation_granted(grant, true));
        if let Some(revoked_at) = grant.revoked_at {
            drafts.push(admin::delegation_revoked(
                &grant.grant_id,
                revoked_at.min(now),
                true,
            ));
        }
    }
    drafts
}
