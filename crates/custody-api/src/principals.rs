//! Principals: adding one, setting its groups, the list, and who the caller is.

use custody_core::model::Principal;
use serde::{Deserialize, Serialize};

/// The body of `POST /v1/principals`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PrincipalBody {
    /// The stable name: 1 to 64 of a-z, 0-9, `.`, `_`, `-`, `@`.
    pub name: String,
    /// `human` (default), `service`, `automation` or `vendor`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Display name; defaults to the name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Organisation.
    #[serde(default)]
    pub org: Option<String>,
}

/// The body of `PUT /v1/principals/{name}/groups`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GroupsBody {
    /// The principal's groups from now on (`admins` makes an admin).
    pub groups: Vec<String>,
}

/// The principal list.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrincipalList {
    /// Principals, by name.
    pub principals: Vec<Principal>,
}

/// Who the caller is.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhoAmI {
    /// The authenticated principal.
    pub principal: Principal,
    /// The token used.
    pub token_id: String,
}
