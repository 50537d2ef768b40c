//! Delegated administration: which vendor may act, for whom, on what, until when.
//!
//! A vendor principal acts only under a [`DelegationGrant`]. Every action it
//! takes carries the grant's ID and the party it acts for in its actor
//! context (`delegation_grant`, `on_behalf_of`), so the trail never blurs a
//! vendor operator with an internal one; an action outside every grant's
//! scope, or after its end, is refused.

use serde::{Deserialize, Serialize};

use crate::code::Code;
use crate::lifecycle::Refusal;
use crate::model::{Change, Principal, PrincipalId, PrincipalKind};
use crate::policy::glob_matches;
use crate::time::Timestamp;

/// A grant letting a vendor organisation (or some of its principals) act for
/// an internal party on a scope, until a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DelegationGrant {
    /// Its ID (`dg_...`), recorded in every action taken under it.
    pub grant_id: String,
    /// The vendor organisation it is given to.
    pub vendor_org: String,
    /// The vendor principals it is limited to (empty: any of the organisation).
    pub principals: Vec<PrincipalId>,
    /// The internal principal or team the vendor acts for.
    pub on_behalf_of: String,
    /// Entitlement patterns it covers (`*` wildcard; empty: any).
    pub entitlements: Vec<String>,
    /// Resource patterns it covers (empty: any, including none).
    pub resources: Vec<String>,
    /// When it ends.
    pub valid_until: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// The admin who granted it.
    pub granted_by: PrincipalId,
    /// When it was granted.
    pub granted_at: Timestamp,
}

impl DelegationGrant {
    /// Whether the grant is given to `principal` (its organisation, and its
    /// name when the grant lists principals).
    pub fn applies_to(&self, principal: &Principal) -> bool {
        principal.org.as_deref() == Some(self.vendor_org.as_str())
            && (self.principals.is_empty() || self.principals.contains(&principal.id))
    }

    /// Whether the grant's scope covers `change`.
    pub fn covers(&self, change: &Change) -> bool {
        (self.entitlements.is_empty()
            || self
                .entitlements
                .iter()
                .any(|pattern| glob_matches(pattern, change.entitlement())))
            && (self.resources.is_empty()
                || change.resource().is_some_and(|resource| {
                    self.resources
                        .iter()
                        .any(|pattern| glob_matches(pattern, resource))
                }))
    }
}

/// The grant under which `principal` may act on `change` at `now`: `None`
/// for principals who are not vendors, a refusal when a vendor has no grant
/// that is in force and covers the change.
pub fn grant_for<'a>(
    grants: &'a [DelegationGrant],
    principal: &Principal,
    change: &Change,
    now: Timestamp,
) -> Result<Option<&'a DelegationGrant>, Refusal> {
    if principal.kind != PrincipalKind::Vendor {
        return Ok(None);
    }
    let applicable: Vec<&DelegationGrant> = grants
        .iter()
        .filter(|grant| grant.applies_to(principal))
        .collect();
    if applicable.is_empty() {
        return Err(Refusal {
            rule: Code::DelegationNone,
            message: format!(
                "{} is a vendor principal of {} and holds no delegation grant; vendors act only under one",
                principal.id,
                principal.org.as_deref().unwrap_or("no organisation")
            ),
            hint: Some("an admin grants one with `custody delegation grant`".to_string()),
        });
    }
    let in_force: Vec<&&DelegationGrant> = applicable
        .iter()
        .filter(|grant| grant.revoked_at.is_none() && now < grant.valid_until)
        .collect();
    if in_force.is_empty() {
        return Err(Refusal {
            rule: Code::DelegationExpired,
            message: format!(
                "every delegation grant of {} has ended or been revoked",
                principal.id
            ),
            hint: Some("an admin grants a new one with `custody delegation grant`".to_string()),
        });
    }
    in_force
        .into_iter()
        .find(|grant| grant.covers(change))
        .map(|grant| Some(*grant))
        .ok_or_else(|| Refusal {
            rule: Code::DelegationOutOfScope,
            message: format!("no delegation grant of {} covers {change}", principal.id),
            hint: Some("ask an internal principal, or an admin to widen the grant".to_string()),
        })
}
