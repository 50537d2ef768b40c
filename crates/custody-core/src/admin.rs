//! The administration record: principals, groups, tokens and delegation
//! grants as ledger events.
//!
//! Every administrative act is an event of one case of its own, the
//! deployment's *administration record* (its ID is kept in the store's
//! `deployment` table under `admin_record`): `principal_added` (with the
//! principal's groups, so "who made this principal an admin" is an event),
//! `token_issued` and `token_revoked` (the token ID and a prefix of its
//! SHA-256, never the secret), `delegation_granted` and `delegation_revoked`,
//! `identity_mapped` and `identity_unmapped` (which outside user, as a
//! connector names it, acts as which principal: a mapping gives an outside
//! user a principal's power, as a token does). The store's `principals`,
//! `tokens`, `delegations` and `connector_identities` tables are
//! projections of this record, written in the same transaction as its events.
//!
//! The actor of each event is the authenticated admin. The one exception is
//! the record's *opening*: the events `custody init` writes (the first admin
//! and its token) and those recorded from a data directory made before
//! administration was on the record are by `system`, and `system` may act
//! only while every event before it is its own.
//!
//! [`AdminState`] is the record replayed; the writer and the audit judge by
//! the same rule functions ([`may_administer`], [`may_revoke_token`],
//! [`AdminState::violations`], [`check_delegated_action`]).

use std::collections::BTreeMap;

use crate::code::Code;
use crate::delegation::DelegationGrant;
use crate::event::{
    DelegationGranted, DelegationRevoked, Event, EventBody, IdentityMapped, IdentityUnmapped,
    PrincipalAdded, PrincipalGroupsChanged, TokenIssued, TokenRevoked,
};
use crate::id::Sha256Hash;
use crate::lifecycle::{Draft, Refusal};
use crate::model::{
    Actor, Change, ConnectorName, ExternalUser, Principal, PrincipalId, Role, SYSTEM_PRINCIPAL,
};
use crate::severity::Severity;
use crate::time::Timestamp;

/// The group whose members administer the deployment.
pub const ADMINS_GROUP: &str = "admins";

/// How many hex digits of a token's SHA-256 the record keeps.
pub const TOKEN_HASH_PREFIX_HEX: usize = 16;

/// Whether `body` is an administration event (it belongs in the
/// administration record only).
pub fn is_admin_event(body: &EventBody) -> bool {
    matches!(
        body,
        EventBody::PrincipalAdded(_)
            | EventBody::PrincipalGroupsChanged(_)
            | EventBody::TokenIssued(_)
            | EventBody::TokenRevoked(_)
            | EventBody::DelegationGranted(_)
            | EventBody::DelegationRevoked(_)
            | EventBody::IdentityMapped(_)
            | EventBody::IdentityUnmapped(_)
    )
}

/// The prefix of a token's SHA-256 (lowercase hex) that the record keeps.
pub fn token_hash_prefix(secret_sha256_hex: &str) -> String {
    secret_sha256_hex
        .chars()
        .take(TOKEN_HASH_PREFIX_HEX)
        .collect()
}

fn is_system(actor: &Actor) -> bool {
    actor.principal.as_str() == SYSTEM_PRINCIPAL
}

fn role_of(by_system: bool) -> Role {
    if by_system {
        Role::System
    } else {
        Role::Admin
    }
}

fn draft(body: EventBody, by_system: bool) -> Draft {
    Draft {
        body,
        role: role_of(by_system),
        causation: None,
    }
}

/// The `principal_added` event of `principal`.
pub fn principal_added(principal: &Principal, by_system: bool) -> Draft {
    draft(
        EventBody::PrincipalAdded(PrincipalAdded {
            principal: principal.id.clone(),
            display_name: principal.display_name.clone(),
            kind: principal.kind,
            groups: principal.groups.clone(),
            org: principal.org.clone(),
        }),
        by_system,
    )
}

/// The `principal_groups_changed` event of `principal`.
pub fn principal_groups_changed(
    principal: &PrincipalId,
    previous: &[String],
    groups: &[String],
    by_system: bool,
) -> Draft {
    draft(
        EventBody::PrincipalGroupsChanged(PrincipalGroupsChanged {
            principal: principal.clone(),
            previous: previous.to_vec(),
            groups: groups.to_vec(),
        }),
        by_system,
    )
}

/// The `token_issued` event of a token.
pub fn token_issued(
    token_id: &str,
    principal: &PrincipalId,
    secret_sha256_hex: &str,
    expires_at: Option<Timestamp>,
    by_system: bool,
) -> Draft {
    draft(
        EventBody::TokenIssued(TokenIssued {
            token_id: token_id.to_string(),
            principal: principal.clone(),
            secret_sha256_prefix: token_hash_prefix(secret_sha256_hex),
            secret_sha256: secret_sha256_hex.to_ascii_lowercase().parse().ok(),
            expires_at,
        }),
        by_system,
    )
}

/// The `token_revoked` event of a token.
pub fn token_revoked(token_id: &str, principal: &PrincipalId, by_system: bool) -> Draft {
    draft(
        EventBody::TokenRevoked(TokenRevoked {
            token_id: token_id.to_string(),
            principal: principal.clone(),
        }),
        by_system,
    )
}

/// The `delegation_granted` event of `grant`.
pub fn delegation_granted(grant: &DelegationGrant, by_system: bool) -> Draft {
    draft(
        EventBody::DelegationGranted(DelegationGranted {
            grant_id: grant.grant_id.clone(),
            vendor_org: grant.vendor_org.clone(),
            principals: grant.principals.clone(),
            on_behalf_of: grant.on_behalf_of.clone(),
            entitlements: grant.entitlements.clone(),
            resources: grant.resources.clone(),
            valid_until: grant.valid_until,
            granted_by: grant.granted_by.clone(),
            granted_at: grant.granted_at,
        }),
        by_system,
    )
}

/// The `delegation_revoked` event of a grant.
pub fn delegation_revoked(grant_id: &str, revoked_at: Timestamp, by_system: bool) -> Draft {
    draft(
        EventBody::DelegationRevoked(DelegationRevoked {
            grant_id: grant_id.to_string(),
            revoked_at,
        }),
        by_system,
    )
}

/// The `identity_mapped` event of `external_user` of `connector`, mapped
/// to `principal` (from `previous`, for a remap).
pub fn identity_mapped(
    connector: &ConnectorName,
    external_user: &ExternalUser,
    principal: &PrincipalId,
    previous: Option<&PrincipalId>,
    by_system: bool,
) -> Draft {
    draft(
        EventBody::IdentityMapped(IdentityMapped {
            connector: connector.clone(),
            external_user: external_user.clone(),
            principal: principal.clone(),
            previous: previous.cloned(),
        }),
        by_system,
    )
}

/// The `identity_unmapped` event of `external_user` of `connector`, which
/// was mapped to `principal`.
pub fn identity_unmapped(
    connector: &ConnectorName,
    external_user: &ExternalUser,
    principal: &PrincipalId,
    by_system: bool,
) -> Draft {
    draft(
        EventBody::IdentityUnmapped(IdentityUnmapped {
            connector: connector.clone(),
            external_user: external_user.clone(),
            principal: principal.clone(),
        }),
        by_system,
    )
}

impl From<&DelegationGranted> for DelegationGrant {
    fn from(granted: &DelegationGranted) -> DelegationGrant {
        DelegationGrant {
            grant_id: granted.grant_id.clone(),
            vendor_org: granted.vendor_org.clone(),
            principals: granted.principals.clone(),
            on_behalf_of: granted.on_behalf_of.clone(),
            entitlements: granted.entitlements.clone(),
            resources: granted.resources.clone(),
            valid_until: granted.valid_until,
            revoked_at: None,
            granted_by: granted.granted_by.clone(),
            granted_at: granted.granted_at,
        }
    }
}

/// Whether `actor` may administer now: an admin (`is_admin`: a member of
/// [`ADMINS_GROUP`] as the record stands), or `system` while the record is
/// still in its `opening` (every event so far by `system`).
pub fn may_administer(actor: &Actor, is_admin: bool, opening: bool) -> Result<(), Refusal> {
    if is_system(actor) {
        if opening {
            return Ok(());
        }
        return Err(Refusal {
            rule: Code::AdminNotAdmin,
            message: "`system` administers only while a deployment is set up; once an admin has acted, every administrative act is an admin's".to_string(),
            hint: Some("act as an admin with an admin's token".to_string()),
        });
    }
    if is_admin {
        Ok(())
    } else {
        Err(Refusal {
            rule: Code::AdminNotAdmin,
            message: format!(
                "{} is not in the `{ADMINS_GROUP}` group as the administration record stands, which this act requires",
                actor.principal
            ),
            hint: Some("ask an admin".to_string()),
        })
    }
}

/// Whether `actor` may revoke a token of `owner`: its owner, or whoever may
/// administer.
pub fn may_revoke_token(
    actor: &Actor,
    is_admin: bool,
    opening: bool,
    owner: &PrincipalId,
) -> Result<(), Refusal> {
    if &actor.principal == owner {
        return Ok(());
    }
    may_administer(actor, is_admin, opening)
}

/// Whether the groups of `principal` may change from `previous` to
/// `groups` when `another_admin` says whether some other principal is in
/// [`ADMINS_GROUP`]: a change that takes the last admin out of the group is
/// refused ([`Code::AdminLastAdmin`]), since nobody could administer the
/// deployment afterwards (add principals, issue tokens, set groups), and no
/// act through the API or the CLI could undo it.
pub fn may_change_groups(
    principal: &PrincipalId,
    previous: &[String],
    groups: &[String],
    another_admin: bool,
) -> Result<(), Refusal> {
    let in_admins = |groups: &[String]| groups.iter().any(|group| group == ADMINS_GROUP);
    if another_admin || !in_admins(previous) || in_admins(groups) {
        return Ok(());
    }
    Err(Refusal {
        rule: Code::AdminLastAdmin,
        message: format!(
            "{principal} is the last principal in `{ADMINS_GROUP}`; taking it out would leave nobody who can administer the deployment"
        ),
        hint: Some(format!(
            "put another principal in `{ADMINS_GROUP}` first (`custody principal set-groups NAME --group {ADMINS_GROUP}`), then take {principal} out"
        )),
    })
}

/// A token as the record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenState {
    /// The principal it authenticates.
    pub principal: PrincipalId,
    /// The recorded prefix of its SHA-256.
    pub secret_sha256_prefix: String,
    /// Its whole recorded SHA-256, when the record holds it.
    pub secret_sha256: Option<Sha256Hash>,
    /// When it expires, if ever.
    pub expires_at: Option<Timestamp>,
    /// Whether it was revoked.
    pub revoked: bool,
}

impl TokenState {
    /// Whether a stored secret hash (lowercase hex) is the one the record
    /// holds: the whole hash when the record has it, else its prefix (a
    /// token issued by a version that recorded only the prefix).
    pub fn hash_matches(&self, secret_sha256_hex: &str) -> bool {
        token_hash_prefix(secret_sha256_hex) == self.secret_sha256_prefix
            && self
                .secret_sha256
                .as_ref()
                .is_none_or(|recorded| recorded.to_hex() == secret_sha256_hex)
    }
}

/// A delegation grant as the record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantState {
    /// The grant, with `revoked_at` set once it is revoked.
    pub grant: DelegationGrant,
    /// Recorded by `system` from a data directory made before grants were
    /// events: actions taken under it before it was recorded are judged by
    /// its recorded times instead of the log's order.
    pub legacy: bool,
}

/// The administration record replayed.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// Principals, by ID.
    pub principals: BTreeMap<PrincipalId, Principal>,
    /// Tokens, by ID.
    pub tokens: BTreeMap<String, TokenState>,
    /// Delegation grants, by ID.
    pub grants: BTreeMap<String, GrantState>,
    /// The outside users mapped to principals: by connector and the user's
    /// ID there, the principal it acts as.
    pub identities: BTreeMap<(ConnectorName, ExternalUser), PrincipalId>,
    /// The OpenID Connect identities bound to principals: by issuer and
    /// subject, the principal it signed in as first (see
    /// [`oidc_self_provisioned`]).
    pub oidc: BTreeMap<(String, String), PrincipalId>,
    /// Whether every event so far was by `system` (see [`may_administer`]).
    pub opening: bool,
}

/// The OpenID Connect identity (issuer, subject) of `actor` when it acts on
/// itself: its authentication is OIDC and `principal` is its own principal.
///
/// OIDC sign-in provisions principals: the first sign-in of an identity
/// adds its principal (`principal_added`, by that principal, authenticated
/// by its issuer and subject), which binds the identity to the principal
/// for good; later sign-ins record the groups the issuer asserts
/// (`principal_groups_changed`, by the same principal and identity). These
/// are the only administration events a non-admin may be the actor of, and
/// only on itself: [`AdminState::violations`] accepts a `principal_added`
/// whose identity is not bound yet, and a `principal_groups_changed` whose
/// identity is bound to that very principal.
pub fn oidc_self_provisioned<'a>(
    actor: &'a Actor,
    principal: &PrincipalId,
) -> Option<(&'a str, &'a str)> {
    match &actor.auth {
        crate::model::AuthContext::Oidc { issuer, subject } if &actor.principal == principal => {
            Some((issuer.as_str(), subject.as_str()))
        }
        _ => None,
    }
}

impl Default for AdminState {
    fn default() -> AdminState {
        AdminState {
            principals: BTreeMap::new(),
            tokens: BTreeMap::new(),
            grants: BTreeMap::new(),
            identities: BTreeMap::new(),
            oidc: BTreeMap::new(),
            opening: true,
        }
    }
}

impl AdminState {
    /// Whether `principal` is an admin as the record stands.
    pub fn is_admin(&self, principal: &PrincipalId) -> bool {
        self.principals
            .get(principal)
            .is_some_and(|principal| principal.in_group(ADMINS_GROUP))
    }

    /// The rules an administration event breaks, judged against the record
    /// as it stood before it.
    pub fn violations(&self, event: &Event) -> Vec<(Refusal, Severity)> {
        let mut broken = Vec::new();
        let actor = &event.actor;
        let is_admin = self.is_admin(&actor.principal);
        let invalid = |message: String| {
            (
                Refusal {
                    rule: Code::AdminRecordInvalid,
                    message,
                    hint: Some("investigate how this event was written".to_string()),
                },
                Severity::High,
            )
        };
        let permitted = match &event.body {
            EventBody::TokenRevoked(revoked) => {
                may_revoke_token(actor, is_admin, self.opening, &revoked.principal)
            }
            // An OIDC identity provisions its own principal (see
            // `oidc_self_provisioned`): a first sign-in of an unbound
            // identity, or the groups of the principal it is bound to.
            EventBody::PrincipalAdded(added)
                if oidc_self_provisioned(actor, &added.principal).is_some_and(
                    |(issuer, subject)| {
                        !self
                            .oidc
                            .contains_key(&(issuer.to_string(), subject.to_string()))
                    },
                ) =>
            {
                Ok(())
            }
            EventBody::PrincipalGroupsChanged(changed)
                if oidc_self_provisioned(actor, &changed.principal).is_some_and(
                    |(issuer, subject)| {
                        self.oidc.get(&(issuer.to_string(), subject.to_string()))
                            == Some(&changed.principal)
                    },
                ) =>
            {
                Ok(())
            }
            _ => may_administer(actor, is_admin, self.opening),
        };
        if let Err(refusal) = permitted {
            broken.push((refusal, Severity::High));
        }
        match &event.body {
            EventBody::PrincipalAdded(added) => {
                if self.principals.contains_key(&added.principal) {
                    broken.push(invalid(format!(
                        "principal {} is added a second time",
                        added.principal
                    )));
                }
                if added.principal.as_str() == SYSTEM_PRINCIPAL {
                    broken.push(invalid(
                        "`system` is reserved for the ledger and cannot be added as a principal"
                            .to_string(),
                    ));
                }
            }
            EventBody::PrincipalGroupsChanged(changed) => {
                match self.principals.get(&changed.principal) {
                    None => broken.push(invalid(format!(
                        "the groups of {} are changed, but the record never added it",
                        changed.principal
                    ))),
                    Some(recorded) if recorded.groups != changed.previous => {
                        broken.push(invalid(format!(
                            "the groups of {} are changed from [{}], but the record says [{}]",
                            changed.principal,
                            changed.previous.join(", "),
                            recorded.groups.join(", ")
                        )))
                    }
                    Some(_) => {}
                }
            }
            EventBody::TokenIssued(issued) => {
                if !self.principals.contains_key(&issued.principal) {
                    broken.push(invalid(format!(
                        "token {} is issued for {}, whom the record never added",
                        issued.token_id, issued.principal
                    )));
                }
                if self.tokens.contains_key(&issued.token_id) {
                    broken.push(invalid(format!(
                        "token {} is issued a second time",
                        issued.token_id
                    )));
                }
            }
            EventBody::TokenRevoked(revoked) => match self.tokens.get(&revoked.token_id) {
                None => broken.push(invalid(format!(
                    "token {} is revoked but was never issued",
                    revoked.token_id
                ))),
                Some(token) if token.principal != revoked.principal => broken.push(invalid(
                    format!(
                        "token {} is revoked as {}'s but was issued for {}",
                        revoked.token_id, revoked.principal, token.principal
                    ),
                )),
                Some(token) if token.revoked => broken.push(invalid(format!(
                    "token {} is revoked a second time",
                    revoked.token_id
                ))),
                Some(_) => {}
            },
            EventBody::DelegationGranted(granted) => {
                if self.grants.contains_key(&granted.grant_id) {
                    broken.push(invalid(format!(
                        "delegation grant {} is granted a second time",
                        granted.grant_id
                    )));
                }
                if !is_system(actor) && granted.granted_by != actor.principal {
                    broken.push(invalid(format!(
                        "delegation grant {} says {} granted it, but {} recorded it",
                        granted.grant_id, granted.granted_by, actor.principal
                    )));
                }
                if granted.granted_at > event.recorded_at {
                    broken.push(invalid(format!(
                        "delegation grant {} says it was granted at {}, after it was recorded",
                        granted.grant_id, granted.granted_at
                    )));
                }
            }
            EventBody::DelegationRevoked(revoked) => {
                match self.grants.get(&revoked.grant_id) {
                    None => broken.push(invalid(format!(
                        "delegation grant {} is revoked but was never granted",
                        revoked.grant_id
                    ))),
                    Some(state) => {
                        if let Some(first) = state.grant.revoked_at {
                            broken.push(invalid(format!(
                                "delegation grant {} is revoked a second time; it was revoked at {first}",
                                revoked.grant_id
                            )));
                        }
                    }
                }
                if revoked.revoked_at > event.recorded_at {
                    broken.push(invalid(format!(
                        "delegation grant {} says it was revoked at {}, after it was recorded",
                        revoked.grant_id, revoked.revoked_at
                    )));
                }
            }
            EventBody::IdentityMapped(mapped) => {
                if mapped.principal.as_str() == SYSTEM_PRINCIPAL {
                    broken.push(invalid(format!(
                        "{} user {} is mapped to `system`, which is the ledger itself and acts for no one",
                        mapped.connector, mapped.external_user
                    )));
                } else if !self.principals.contains_key(&mapped.principal) {
                    broken.push(invalid(format!(
                        "{} user {} is mapped to {}, whom the record never added",
                        mapped.connector, mapped.external_user, mapped.principal
                    )));
                }
                let key = (mapped.connector.clone(), mapped.external_user.clone());
                let recorded = self.identities.get(&key);
                if recorded != mapped.previous.as_ref() {
                    broken.push(invalid(format!(
                        "{} user {} is mapped to {} in place of {}, but the record says it was {}",
                        mapped.connector,
                        mapped.external_user,
                        mapped.principal,
                        mapped
                            .previous
                            .as_ref()
                            .map_or("no one", PrincipalId::as_str),
                        recorded.map_or("mapped to no one", PrincipalId::as_str)
                    )));
                } else if recorded == Some(&mapped.principal) {
                    broken.push(invalid(format!(
                        "{} user {} is mapped to {}, which it was mapped to already",
                        mapped.connector, mapped.external_user, mapped.principal
                    )));
                }
            }
            EventBody::IdentityUnmapped(unmapped) => {
                let key = (unmapped.connector.clone(), unmapped.external_user.clone());
                match self.identities.get(&key) {
                    None => broken.push(invalid(format!(
                        "{} user {} is unmapped but was not mapped",
                        unmapped.connector, unmapped.external_user
                    ))),
                    Some(recorded) if recorded != &unmapped.principal => {
                        broken.push(invalid(format!(
                            "{} user {} is unmapped from {}, but the record maps it to {}",
                            unmapped.connector, unmapped.external_user, unmapped.principal, recorded
                        )))
                    }
                    Some(_) => {}
                }
            }
            other => broken.push((
                Refusal {
                    rule: Code::AdminRecordMisplaced,
                    message: format!(
                        "the administration record {} holds a {} event; it may hold only administration events",
                        event.case_id,
                        other.kind_name()
                    ),
                    hint: Some("investigate how this event was written".to_string()),
                },
                Severity::High,
            )),
        }
        broken
    }

    /// Applies an administration event (others change nothing).
    pub fn apply(&mut self, event: &Event) {
        self.opening = self.opening && is_system(&event.actor);
        match &event.body {
            EventBody::PrincipalAdded(added) => {
                if let Some((issuer, subject)) =
                    oidc_self_provisioned(&event.actor, &added.principal)
                {
                    self.oidc
                        .entry((issuer.to_string(), subject.to_string()))
                        .or_insert_with(|| added.principal.clone());
                }
                self.principals
                    .entry(added.principal.clone())
                    .or_insert_with(|| Principal {
                        id: added.principal.clone(),
                        display_name: added.display_name.clone(),
                        kind: added.kind,
                        groups: added.groups.clone(),
                        org: added.org.clone(),
                    });
            }
            EventBody::PrincipalGroupsChanged(changed) => {
                if let Some(principal) = self.principals.get_mut(&changed.principal) {
                    principal.groups = changed.groups.clone();
                }
            }
            EventBody::TokenIssued(issued) => {
                self.tokens
                    .entry(issued.token_id.clone())
                    .or_insert_with(|| TokenState {
                        principal: issued.principal.clone(),
                        secret_sha256_prefix: issued.secret_sha256_prefix.clone(),
                        secret_sha256: issued.secret_sha256,
                        expires_at: issued.expires_at,
                        revoked: false,
                    });
            }
            EventBody::TokenRevoked(revoked) => {
                if let Some(token) = self.tokens.get_mut(&revoked.token_id) {
                    token.revoked = true;
                }
            }
            EventBody::DelegationGranted(granted) => {
                self.grants
                    .entry(granted.grant_id.clone())
                    .or_insert_with(|| GrantState {
                        grant: granted.into(),
                        legacy: is_system(&event.actor),
                    });
            }
            EventBody::DelegationRevoked(revoked) => {
                if let Some(state) = self.grants.get_mut(&revoked.grant_id) {
                    // The first revocation stands.
                    state.grant.revoked_at.get_or_insert(revoked.revoked_at);
                }
            }
            EventBody::IdentityMapped(mapped) => {
                self.identities.insert(
                    (mapped.connector.clone(), mapped.external_user.clone()),
                    mapped.principal.clone(),
                );
            }
            EventBody::IdentityUnmapped(unmapped) => {
                let key = (unmapped.connector.clone(), unmapped.external_user.clone());
                // Only the mapping the event names is removed.
                if self.identities.get(&key) == Some(&unmapped.principal) {
                    self.identities.remove(&key);
                }
            }
            _ => {}
        }
    }
}

/// Re-checks an action a vendor took under `grant` (as the record stood
/// when the action was recorded; `revoked`: whether a revocation was
/// recorded before it): the grant must not be revoked, must still be valid
/// at `at`, must be given to the actor's organisation (and principal), the
/// actor must act for the party it names, and it must cover `change`.
pub fn check_delegated_action(
    grant: &DelegationGrant,
    revoked: bool,
    actor: &Actor,
    change: &Change,
    at: Timestamp,
) -> Result<(), Refusal> {
    let refusal = |rule: Code, message: String| Refusal {
        rule,
        message,
        hint: Some("investigate how this action was recorded".to_string()),
    };
    if revoked {
        return Err(refusal(
            Code::DelegationGrantRevoked,
            format!(
                "{} acted under delegation grant {} after it was revoked{}",
                actor.principal,
                grant.grant_id,
                grant
                    .revoked_at
                    .map(|at| format!(" (at {at})"))
                    .unwrap_or_default()
            ),
        ));
    }
    if at >= grant.valid_until {
        return Err(refusal(
            Code::DelegationGrantExpired,
            format!(
                "{} acted under delegation grant {} at {at}, after it ended at {}",
                actor.principal, grant.grant_id, grant.valid_until
            ),
        ));
    }
    let principal = Principal {
        id: actor.principal.clone(),
        display_name: String::new(),
        kind: actor.kind,
        groups: actor.groups.clone(),
        org: actor.org.clone(),
    };
    if !grant.applies_to(&principal)
        || actor.on_behalf_of.as_deref() != Some(grant.on_behalf_of.as_str())
    {
        return Err(refusal(
            Code::DelegationGrantMismatch,
            format!(
                "{} of {} acted for {} under delegation grant {}, which is given to {}{} for {}",
                actor.principal,
                actor.org.as_deref().unwrap_or("no organisation"),
                actor.on_behalf_of.as_deref().unwrap_or("nobody"),
                grant.grant_id,
                grant.vendor_org,
                if grant.principals.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        grant
                            .principals
                            .iter()
                            .map(PrincipalId::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                grant.on_behalf_of
            ),
        ));
    }
    if !grant.covers(change) {
        return Err(refusal(
            Code::DelegationGrantOutOfScope,
            format!(
                "{} acted on {change} under delegation grant {}, which does not cover it",
                actor.principal, grant.grant_id
            ),
        ));
    }
    Ok(())
}

/// A stored token row, as the audit compares it with the record.
#[derive(Clone, Debug)]
pub struct TokenRow {
    /// The token ID.
    pub token_id: String,
    /// The principal column.
    pub principal: String,
    /// The stored SHA-256 of the secret, as lowercase hex.
    pub secret_sha256_hex: String,
    /// The expiry column.
    pub expires_at: Option<String>,
    /// Whether the row is revoked.
    pub revoked: bool,
}

/// A stored `connector_identities` row, as the audit compares it with the
/// record. Text, as stored: a row that no event could have written (an ID
/// with a control character, say) is compared all the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityRow {
    /// The connector column.
    pub connector: String,
    /// The outside user's ID.
    pub external_user: String,
    /// The principal it maps to.
    pub principal: String,
}

/// The stored projections of the administration record.
#[derive(Clone, Debug, Default)]
pub struct AdminRows {
    /// The `principals` table.
    pub principals: Vec<Principal>,
    /// The `tokens` table.
    pub tokens: Vec<TokenRow>,
    /// The `delegations` table.
    pub grants: Vec<DelegationGrant>,
    /// The `connector_identities` table.
    pub identities: Vec<IdentityRow>,
    /// The `oidc_identities` table.
    pub oidc: Vec<OidcIdentityRow>,
    /// When and by whom each row of those tables says it was made (and a
    /// token revoked). Rows not listed here are not compared on these
    /// columns.
    pub made: Vec<RowMade>,
}

/// Which stored administration row a [`RowMade`] is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MadeKey {
    /// A `principals` row, by principal ID.
    Principal(String),
    /// A `tokens` row, by token ID.
    Token(String),
    /// A `connector_identities` row, by connector and outside user.
    Identity(String, String),
    /// An `oidc_identities` row, by issuer and subject.
    Oidc(String, String),
}

/// The columns of a stored administration row that say when and by whom
/// it was made: no decision reads them, but the console and the CLI show
/// them to people, and the record's events fix them (`created_at` is the
/// time the event was recorded, `created_by` its actor, `NULL` for
/// `system`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowMade {
    /// The row.
    pub key: MadeKey,
    /// `created_at` (`mapped_at`, `bound_at`).
    pub at: String,
    /// `created_by` (`mapped_by`); `None` for `oidc_identities`, which has
    /// no such column.
    pub by: Option<String>,
    /// For a token: `revoked_at` and `revoked_by` (both `None` for other
    /// rows).
    pub revoked: (Option<String>, Option<String>),
}

/// A stored `oidc_identities` row, as the audit compares it with the
/// record: which OpenID Connect identity is bound to which principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcIdentityRow {
    /// The issuer column.
    pub issuer: String,
    /// The subject column.
    pub subject: String,
    /// The principal it is bound to.
    pub principal: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AuthContext, PrincipalKind, Via};
    use crate::{CaseId, EventId};

    fn actor(principal: &str, auth: AuthContext) -> Actor {
        Actor {
            principal: principal.parse().expect("name"),
            kind: PrincipalKind::Human,
            org: None,
            groups: Vec::new(),
            on_behalf_of: None,
            delegation_grant: None,
            via: Via::Web,
            auth,
        }
    }

    fn oidc(subject: &str) -> AuthContext {
        AuthContext::Oidc {
            issuer: "https://idp.example".to_string(),
            subject: subject.to_string(),
        }
    }

    fn event(body: EventBody, actor: Actor) -> Event {
        Event {
            v: crate::event::EVENT_FORMAT_VERSION,
            event_id: EventId::generate(),
            case_id: CaseId::generate(),
            seq: 1,
            prev_hash: None,
            body,
            actor,
            role: Role::Admin,
            occurred_at: Timestamp::from_micros(0),
            recorded_at: Timestamp::from_micros(0),
            source: None,
            external_id: None,
            causation: None,
            idempotency_key: None,
            notify: Vec::new(),
        }
    }

    fn added(name: &str, groups: &[&str]) -> EventBody {
        let principal = Principal {
            id: name.parse().expect("name"),
            display_name: name.to_string(),
            kind: PrincipalKind::Human,
            groups: groups.iter().map(|group| group.to_string()).collect(),
            org: None,
        };
        principal_added(&principal, false).body
    }

    fn groups_changed(name: &str, previous: &[&str], groups: &[&str]) -> EventBody {
        let owned = |list: &[&str]| list.iter().map(|g| g.to_string()).collect::<Vec<_>>();
        principal_groups_changed(
            &name.parse().expect("name"),
            &owned(previous),
            &owned(groups),
            false,
        )
        .body
    }

    fn not_admin(state: &AdminState, event: &Event) -> bool {
        state
            .violations(event)
            .iter()
            .any(|(refusal, _)| refusal.rule == Code::AdminNotAdmin)
    }

    /// A stored hash matches the record whole when the record holds the
    /// whole hash, and by its prefix only for a token recorded before it did.
    #[test]
    fn a_token_hash_matches_the_record_whole_or_by_the_old_prefix() {
        let hash = Sha256Hash::of(b"cus_secret").to_hex();
        let issued = token_issued("tok_1", &"alice".parse().expect("name"), &hash, None, false);
        let EventBody::TokenIssued(payload) = &issued.body else {
            panic!("not a token_issued body");
        };
        assert_eq!(
            payload.secret_sha256.map(|hash| hash.to_hex()),
            Some(hash.clone())
        );
        let mut state = AdminState::default();
        state.apply(&event(issued.body.clone(), actor("admin", oidc("s-admin"))));
        let token = state.tokens.get("tok_1").expect("issued").clone();
        assert!(token.hash_matches(&hash));
        // The last hex digit changed: past the prefix, still caught.
        let mut past_prefix = hash.clone();
        past_prefix.replace_range(63.., if hash.ends_with('0') { "1" } else { "0" });
        assert!(!token.hash_matches(&past_prefix));
        let mut in_prefix = hash.clone();
        in_prefix.replace_range(..1, if hash.starts_with('0') { "1" } else { "0" });
        assert!(!token.hash_matches(&in_prefix));
        // A token recorded with its prefix only (an older version).
        let old = TokenState {
            secret_sha256: None,
            ..token
        };
        assert!(old.hash_matches(&past_prefix));
        assert!(!old.hash_matches(&in_prefix));
    }

    /// An OIDC identity provisions its own principal and nothing else:
    /// the forgeries `verify` must report are each refused here.
    #[test]
    fn an_oidc_identity_administers_only_its_own_principal() {
        let mut state = AdminState::default();
        let first = event(
            added("alice", &["approvers"]),
            actor("alice", oidc("s-alice")),
        );
        assert!(
            !not_admin(&state, &first),
            "a first sign-in provisions itself"
        );
        state.apply(&first);
        assert_eq!(
            state
                .oidc
                .get(&("https://idp.example".to_string(), "s-alice".to_string())),
            Some(&"alice".parse().expect("name"))
        );
        // Its later group change, by the bound identity.
        let change = event(
            groups_changed("alice", &["approvers"], &[]),
            actor("alice", oidc("s-alice")),
        );
        assert!(!not_admin(&state, &change));
        let forgeries = [
            // Adding someone else.
            event(added("bob", &[]), actor("alice", oidc("s-alice"))),
            // The bound identity adding a second principal of its own name.
            event(added("carol", &[]), actor("carol", oidc("s-alice"))),
            // Another identity changing alice's groups while naming her.
            event(
                groups_changed("alice", &["approvers"], &["admins"]),
                actor("alice", oidc("s-mallory")),
            ),
            // A token holder (not OIDC) adding itself.
            event(
                added("dave", &[]),
                actor(
                    "dave",
                    AuthContext::Token {
                        token_id: "tok_1".to_string(),
                    },
                ),
            ),
        ];
        for forgery in &forgeries {
            assert!(not_admin(&state, forgery), "{forgery:?}");
        }
    }

    #[test]
    fn only_a_change_that_takes_the_last_admin_out_of_admins_is_refused() {
        let alice: PrincipalId = "alice".parse().expect("name");
        let list = |groups: &[&str]| groups.iter().map(|g| g.to_string()).collect::<Vec<_>>();
        // (previous groups, new groups, another admin exists, refused)
        let table: &[(&[&str], &[&str], bool, bool)] = &[
            (&["admins"], &[], false, true),
            (&["admins", "sre"], &["sre"], false, true),
            (&["admins"], &[], true, false),
            (&["admins"], &["admins", "sre"], false, false),
            (&["sre"], &[], false, false),
            (&[], &["admins"], false, false),
        ];
        for (previous, groups, another_admin, refused) in table {
            let answer = may_change_groups(&alice, &list(previous), &list(groups), *another_admin);
            match answer {
                Err(refusal) => {
                    assert!(refused, "{previous:?} -> {groups:?}: {refusal:?}");
                    assert_eq!(refusal.rule, Code::AdminLastAdmin);
                    assert!(refusal.message.contains("alice"), "{}", refusal.message);
                }
                Ok(()) => assert!(!refused, "{previous:?} -> {groups:?} was allowed"),
            }
        }
    }
}
