//! The notifications the workflow owes and their delivery.

use axum::extract::State;
use axum::Json;
use custody_api::{NotificationList, NotificationsQuery};

use super::parse_case_id;
use crate::extract::{ApiPath, ApiQuery, Caller};
use crate::problem::Problem;
use crate::AppState;

/// The notifications the workflow owes and their delivery state, newest first.
#[utoipa::path(get, path = "/v1/notifications", params(NotificationsQuery),
    responses((status = 200, body = NotificationList), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_notifications(
    State(state): State<AppState>,
    _who: Caller,
    ApiQuery(query): ApiQuery<NotificationsQuery>,
) -> Result<Json<NotificationList>, Problem> {
    let case_id = query.case.as_deref().map(parse_case_id).transpose()?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let notifications = state
        .store
        .notifications(case_id.as_ref(), query.failed, limit)
        .await?;
    Ok(Json(NotificationList { notifications }))
}

/// Make a pending or dead notification due now (admins only).
#[utoipa::path(post, path = "/v1/notifications/{delivery_id}/retry",
    params(("delivery_id" = String, Path, description = "The delivery ID")),
    responses((status = 200, body = custody_store::OutboxEntry), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn retry_notification(
    State(state): State<AppState>,
    who: Caller,
    ApiPath(delivery_id): ApiPath<String>,
) -> Result<Json<custody_store::OutboxEntry>, Problem> {
    who.require_admin()?;
    match state.store.retry_delivery(&delivery_id).await {
        Ok(entry) => Ok(Json(entry)),
        Err(custody_store::StoreError::InvalidRequest(message)) => Err(Problem::not_found(message)),
        Err(error) => Err(error.into()),
    }
}
