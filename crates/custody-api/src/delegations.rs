//! Vendor delegation grants. A grant itself is
//! [`custody_core::delegation::DelegationGrant`].

use serde::{Deserialize, Serialize};

/// The body of `POST /v1/delegations`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DelegationBody {
    /// The vendor organisation.
    pub vendor_org: String,
    /// Limit the grant to these vendor principals (default: any of the organisation).
    #[serde(default)]
    pub principals: Vec<String>,
    /// The internal principal or team the vendor acts for.
    pub on_behalf_of: String,
    /// Entitlement patterns covered (`*` wildcard; default: any).
    #[serde(default)]
    pub entitlements: Vec<String>,
    /// Resource patterns covered (default: any).
    #[serde(default)]
    pub resources: Vec<String>,
    /// How long the grant lasts, such as `30d`.
    pub valid_for: String,
}

/// The list of delegation grants.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DelegationList {
    /// Every grant, in force or not.
    pub delegations: Vec<custody_core::delegation::DelegationGrant>,
}
