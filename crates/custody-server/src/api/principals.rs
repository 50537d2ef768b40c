//! Principals (admins add them and set their groups) and who the caller is.

use std::str::FromStr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use custody_api::{GroupsBody, PrincipalBody, PrincipalList, WhoAmI};
use custody_core::model::{validate_name, Principal, PrincipalId, PrincipalKind};

use super::invalid;
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::problem::Problem;
use crate::AppState;

/// Add a principal (admins only).
#[utoipa::path(post, path = "/v1/principals", request_body = PrincipalBody,
    responses((status = 201, body = Principal), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn add_principal(
    State(state): State<AppState>,
    who: Caller,
    ApiJson(body): ApiJson<PrincipalBody>,
) -> Result<(StatusCode, Json<Principal>), Problem> {
    who.require_admin()?;
    let id = PrincipalId::from_str(&body.name).map_err(invalid)?;
    if id.as_str() == custody_core::model::SYSTEM_PRINCIPAL {
        return Err(Problem::invalid(
            "`system` is reserved for the ledger's own events (timers, escalations)",
        ));
    }
    let kind = match &body.kind {
        Some(kind) => PrincipalKind::from_str(kind).map_err(invalid)?,
        None => PrincipalKind::Human,
    };
    let mut groups = body
        .groups
        .iter()
        .map(|group| validate_name("group", group))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    groups.sort();
    groups.dedup();
    let principal = Principal {
        display_name: match body.display_name {
            Some(name) => {
                custody_core::model::validate_label("display_name", &name).map_err(invalid)?
            }
            None => id.to_string(),
        },
        id,
        kind,
        groups,
        org: body
            .org
            .map(|org| validate_name("org", &org))
            .transpose()
            .map_err(invalid)?,
    };
    // The actor of the `principal_added` event is the authenticated admin.
    let principal = state
        .store
        .add_principal(principal, Some(who.actor))
        .await?;
    Ok((StatusCode::CREATED, Json(principal)))
}

/// Set a principal's groups (admins only); recorded in the administration
/// record as `principal_groups_changed` by the caller.
#[utoipa::path(put, path = "/v1/principals/{name}/groups", request_body = GroupsBody,
    params(("name" = String, Path, description = "principal name")),
    responses((status = 200, body = Principal), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_groups(
    State(state): State<AppState>,
    who: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<GroupsBody>,
) -> Result<Json<Principal>, Problem> {
    who.require_admin()?;
    let principal =
        PrincipalId::from_str(&name).map_err(|error| Problem::not_found(error.to_string()))?;
    let mut groups = body
        .groups
        .iter()
        .map(|group| validate_name("group", group))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    groups.sort();
    groups.dedup();
    Ok(Json(
        state.store.set_groups(principal, groups, who.actor).await?,
    ))
}

/// List principals.
#[utoipa::path(get, path = "/v1/principals", responses((status = 200, body = PrincipalList)),
    security(("bearer" = [])))]
pub async fn list_principals(
    State(state): State<AppState>,
    _who: Caller,
) -> Result<Json<PrincipalList>, Problem> {
    Ok(Json(PrincipalList {
        principals: state.store.principals().await?,
    }))
}

/// The authenticated caller.
#[utoipa::path(get, path = "/v1/whoami", responses((status = 200, body = WhoAmI), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn whoami(who: Caller) -> Json<WhoAmI> {
    let token_id = match &who.actor.auth {
        custody_core::model::AuthContext::Token { token_id } => token_id.clone(),
        _ => String::new(),
    };
    Json(WhoAmI {
        principal: who.principal,
        token_id,
    })
}
