//! The administration record.

use axum::extract::State;
use axum::Json;
use custody_api::AdminRecordDocument;

use crate::extract::Caller;
use crate::problem::Problem;
use crate::AppState;

/// The administration record: who added whom (with which groups), who
/// issued and revoked which token, who granted and revoked which delegation.
#[utoipa::path(get, path = "/v1/admin/record",
    responses((status = 200, body = AdminRecordDocument), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn admin_record(
    State(state): State<AppState>,
    _who: Caller,
) -> Result<Json<AdminRecordDocument>, Problem> {
    let events = state.store.admin_record().await?;
    Ok(Json(AdminRecordDocument {
        record: events.first().map(|event| event.case_id.to_string()),
        events,
    }))
}
