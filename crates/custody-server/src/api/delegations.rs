//! Vendor delegation grants: granted and revoked by admins, listed by anyone.

use std::str::FromStr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use custody_api::{DelegationBody, DelegationList};
use custody_core::model::{parse_duration, validate_name, PrincipalId};

use super::invalid;
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::problem::Problem;
use crate::AppState;

/// Grant a vendor organisation the right to act for an internal party (admins only).
#[utoipa::path(post, path = "/v1/delegations", request_body = DelegationBody,
    responses((status = 201, body = custody_core::delegation::DelegationGrant), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn grant_delegation(
    State(state): State<AppState>,
    who: Caller,
    ApiJson(body): ApiJson<DelegationBody>,
) -> Result<(StatusCode, Json<custody_core::delegation::DelegationGrant>), Problem> {
    who.require_admin()?;
    let seconds = parse_duration(&body.valid_for).map_err(invalid)?;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|error| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            crate::problem::types::INTERNAL,
            "Internal error",
            format!("no randomness available: {error}"),
        )
    })?;
    let now = state.clock.now();
    let grant = custody_core::delegation::DelegationGrant {
        grant_id: format!("dg_{}", custody_core::hex::encode(&suffix)),
        vendor_org: validate_name("vendor_org", &body.vendor_org).map_err(invalid)?,
        principals: body
            .principals
            .iter()
            .map(|name| PrincipalId::from_str(name))
            .collect::<Result<_, _>>()
            .map_err(invalid)?,
        on_behalf_of: validate_name("on_behalf_of", &body.on_behalf_of).map_err(invalid)?,
        entitlements: body
            .entitlements
            .iter()
            .map(|pattern| validate_name("entitlements", pattern))
            .collect::<Result<_, _>>()
            .map_err(invalid)?,
        resources: body
            .resources
            .iter()
            .map(|pattern| validate_name("resources", pattern))
            .collect::<Result<_, _>>()
            .map_err(invalid)?,
        valid_until: now.plus_unsigned_seconds(seconds),
        revoked_at: None,
        granted_by: who.principal.id.clone(),
        granted_at: now,
    };
    let grant = state.store.grant_delegation(grant, who.actor).await?;
    Ok((StatusCode::CREATED, Json(grant)))
}

/// List delegation grants.
#[utoipa::path(get, path = "/v1/delegations", responses((status = 200, body = DelegationList)),
    security(("bearer" = [])))]
pub async fn list_delegations(
    State(state): State<AppState>,
    _who: Caller,
) -> Result<Json<DelegationList>, Problem> {
    Ok(Json(DelegationList {
        delegations: state.store.delegations().await?,
    }))
}

/// Revoke a delegation grant (admins only): from then on it covers nothing.
#[utoipa::path(delete, path = "/v1/delegations/{grant_id}",
    params(("grant_id" = String, Path, description = "dg_...")),
    responses((status = 200, body = custody_core::delegation::DelegationGrant), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke_delegation(
    State(state): State<AppState>,
    who: Caller,
    ApiPath(grant_id): ApiPath<String>,
) -> Result<Json<custody_core::delegation::DelegationGrant>, Problem> {
    who.require_admin()?;
    match state.store.revoke_delegation(&grant_id, who.actor).await {
        Ok(grant) => Ok(Json(grant)),
        Err(custody_store::StoreError::InvalidRequest(message)) => Err(Problem::not_found(message)
            .with_hint("list delegation grants with `custody delegation list`")),
        Err(error) => Err(error.into()),
    }
}
