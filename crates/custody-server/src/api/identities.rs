//! The mapping of connectors' outside users to principals (admins only):
//! list, map (one user, or several together), unmap. Each change is an
//! event of the administration record, by the caller. The connectors
//! themselves look a user up with `Store::connector_identity`.

use std::str::FromStr;

use axum::extract::State;
use axum::Json;
use custody_api::{IdentitiesBody, IdentityBody, IdentityChange, IdentityChanges, IdentityList};
use custody_core::model::{ConnectorName, ExternalUser, PrincipalId, SYSTEM_PRINCIPAL};

use super::invalid;
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::problem::Problem;
use crate::AppState;

/// List the outside users of a connector mapped to principals (admins only).
#[utoipa::path(get, path = "/v1/connectors/{name}/identities",
    params(("name" = String, Path, description = "the connector's name")),
    responses((status = 200, body = IdentityList), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_identities(
    State(state): State<AppState>,
    who: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<IdentityList>, Problem> {
    who.require_admin()?;
    let connector = connector(&name)?;
    Ok(Json(IdentityList {
        identities: state.store.connector_identities(&connector).await?,
        connector: connector.to_string(),
    }))
}

/// Map an outside user of a connector to a principal (admins only),
/// recorded as `identity_mapped` by the caller; mapping it to the principal
/// it is mapped to already records nothing, and mapping it to another
/// records the remap, naming the principal it replaces.
#[utoipa::path(put, path = "/v1/connectors/{name}/identities/{external_user}",
    request_body = IdentityBody,
    params(
        ("name" = String, Path, description = "the connector's name"),
        ("external_user" = String, Path, description = "the user's ID in the outside system, exactly (percent-encoded)")
    ),
    responses((status = 200, body = IdentityChange), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn map_identity(
    State(state): State<AppState>,
    who: Caller,
    ApiPath((name, external_user)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<IdentityBody>,
) -> Result<Json<IdentityChange>, Problem> {
    who.require_admin()?;
    let connector = connector(&name)?;
    let external_user = ExternalUser::from_str(&external_user).map_err(invalid)?;
    let principal = principal("principal", &body.principal)?;
    let changes = state
        .store
        .map_identities(connector, vec![(external_user, principal)], who.actor)
        .await?;
    // The store answers one change per mapping asked for.
    changes.into_iter().next().map(Json).ok_or_else(|| {
        Problem::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            crate::problem::types::INTERNAL,
            "Internal error",
            "the store answered no change for the mapping",
        )
    })
}

/// Map several outside users of a connector at once (admins only), in
/// order, each recorded as its own event: all of them, or none when one is
/// refused.
#[utoipa::path(post, path = "/v1/connectors/{name}/identities",
    request_body = IdentitiesBody,
    params(("name" = String, Path, description = "the connector's name")),
    responses((status = 200, body = IdentityChanges), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn map_identities(
    State(state): State<AppState>,
    who: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<IdentitiesBody>,
) -> Result<Json<IdentityChanges>, Problem> {
    who.require_admin()?;
    let connector = connector(&name)?;
    let entries = body
        .identities
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let external_user = ExternalUser::from_str(&entry.external_user).map_err(|error| {
                Problem::invalid(format!("identities[{index}].external_user: {error}"))
            })?;
            let principal = principal("principal", &entry.principal).map_err(|problem| {
                Problem::invalid(format!("identities[{index}].{}", problem.detail))
            })?;
            Ok((external_user, principal))
        })
        .collect::<Result<Vec<_>, Problem>>()?;
    Ok(Json(IdentityChanges {
        changes: state
            .store
            .map_identities(connector, entries, who.actor)
            .await?,
    }))
}

/// Remove an outside user's mapping (admins only), recorded as
/// `identity_unmapped` by the caller: from then on the connector refuses
/// what that user does.
#[utoipa::path(delete, path = "/v1/connectors/{name}/identities/{external_user}",
    params(
        ("name" = String, Path, description = "the connector's name"),
        ("external_user" = String, Path, description = "the user's ID in the outside system, exactly (percent-encoded)")
    ),
    responses((status = 200, body = IdentityChange), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn unmap_identity(
    State(state): State<AppState>,
    who: Caller,
    ApiPath((name, external_user)): ApiPath<(String, String)>,
) -> Result<Json<IdentityChange>, Problem> {
    who.require_admin()?;
    let connector = connector(&name)?;
    let external_user = ExternalUser::from_str(&external_user).map_err(invalid)?;
    Ok(Json(
        state
            .store
            .unmap_identity(connector, external_user, who.actor)
            .await?,
    ))
}

fn connector(name: &str) -> Result<ConnectorName, Problem> {
    ConnectorName::from_str(name).map_err(invalid)
}

/// A principal an outside user may be mapped to: a principal's name, not
/// `system`.
fn principal(field: &str, name: &str) -> Result<PrincipalId, Problem> {
    let principal = PrincipalId::from_str(name)
        .map_err(|error| Problem::invalid(format!("{field}: {error}")))?;
    if principal.as_str() == SYSTEM_PRINCIPAL {
        return Err(Problem::invalid(format!(
            "{field}: `system` is the ledger itself and acts for no one; map the outside user to the principal of the person it is"
        )));
    }
    Ok(principal)
}
