//! Bearer tokens: issued by admins, listed without their secrets, revoked by
//! an admin or their owner.

use std::str::FromStr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use custody_api::{TokenBody, TokenList, TokensQuery};
use custody_core::model::{parse_duration, PrincipalId};
use custody_store::{IssuedToken, TokenInfo};

use super::invalid;
use crate::extract::{ApiPath, ApiQuery, Caller, OptionalJson};
use crate::problem::Problem;
use crate::AppState;

/// Issue a bearer token for a principal (admins only). The secret is returned once.
#[utoipa::path(post, path = "/v1/principals/{name}/tokens", request_body = TokenBody,
    params(("name" = String, Path, description = "principal name")),
    responses((status = 201, body = IssuedToken), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    who: Caller,
    ApiPath(name): ApiPath<String>,
    OptionalJson(body): OptionalJson<TokenBody>,
) -> Result<(StatusCode, Json<IssuedToken>), Problem> {
    who.require_admin()?;
    // A malformed name names no principal.
    let principal = PrincipalId::from_str(&name)
        .map_err(|error| Problem::not_found(format!("principal {name} does not exist: {error}")))?;
    let ttl = body
        .ttl
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(invalid)?;
    let issued = state
        .store
        .create_token(principal, ttl, Some(who.actor))
        .await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// List issued tokens (admins see all; others see their own).
#[utoipa::path(get, path = "/v1/tokens", params(TokensQuery),
    responses((status = 200, body = TokenList), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    who: Caller,
    ApiQuery(query): ApiQuery<TokensQuery>,
) -> Result<Json<TokenList>, Problem> {
    let principal = query
        .principal
        .as_deref()
        .map(PrincipalId::from_str)
        .transpose()
        .map_err(invalid)?;
    let principal = if who.require_admin().is_ok() {
        principal
    } else {
        match principal {
            Some(other) if other != who.principal.id => {
                return Err(Problem::forbidden(format!(
                    "only members of `{}` may list another principal's tokens",
                    crate::ADMINS_GROUP
                )))
            }
            _ => Some(who.principal.id.clone()),
        }
    };
    Ok(Json(TokenList {
        tokens: state.store.tokens(principal.as_ref()).await?,
    }))
}

/// Revoke a token (admins, or the token's own principal). From the moment
/// this returns, the token authenticates nothing.
#[utoipa::path(delete, path = "/v1/tokens/{token_id}",
    params(("token_id" = String, Path, description = "tok_...")),
    responses((status = 200, body = TokenInfo), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    who: Caller,
    ApiPath(token_id): ApiPath<String>,
) -> Result<Json<TokenInfo>, Problem> {
    let token = state
        .store
        .token(&token_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("token {token_id} does not exist")))?;
    if token.principal != who.principal.id.as_str() {
        who.require_admin()?;
    }
    Ok(Json(state.store.revoke_token(&token_id, who.actor).await?))
}
