//! Bearer tokens: issuing one (the only answer that holds its secret), the
//! list and revocation.

use custody_core::Timestamp;
use serde::{Deserialize, Serialize};

/// The body of `POST /v1/principals/{name}/tokens`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// Lifetime such as `30d`; omitted, the token does not expire.
    #[serde(default)]
    pub ttl: Option<String>,
}

/// Query of `GET /v1/tokens`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct TokensQuery {
    /// Only this principal's tokens.
    pub principal: Option<String>,
}

/// The token list.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenList {
    /// Tokens, newest first; never their secrets.
    pub tokens: Vec<TokenInfo>,
}

/// A newly issued bearer token. The secret exists only in this value.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedToken {
    /// The public token ID, recorded in the actor context of events.
    pub token_id: String,
    /// The bearer secret; shown once, stored only as a hash.
    pub token: String,
    /// The principal it authenticates.
    pub principal: String,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
}

/// What is known about an issued token (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    /// The public token ID.
    pub token_id: String,
    /// The principal it authenticates.
    pub principal: String,
    /// When it was issued.
    pub created_at: String,
    /// Who issued it.
    pub created_by: Option<String>,
    /// When it stops working, if ever.
    pub expires_at: Option<String>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}
