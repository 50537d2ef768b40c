//! The policy a node decides new cases with, and the policy record.

use axum::extract::State;
use axum::Json;
use custody_api::{PolicyAdoption, PolicyDocument};

use crate::extract::Caller;
use crate::problem::Problem;
use crate::AppState;

/// The policy in force and the record of every policy change.
#[utoipa::path(get, path = "/v1/policy", responses((status = 200, body = PolicyDocument), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn policy(
    State(state): State<AppState>,
    _who: Caller,
) -> Result<Json<PolicyDocument>, Problem> {
    let events = state.store.policy_history().await?;
    let record = events.first().map(|event| event.case_id.to_string());
    let history = events
        .iter()
        .filter_map(|event| match &event.body {
            custody_core::event::EventBody::PolicyAdopted(adopted) => Some(PolicyAdoption {
                event_id: event.event_id.to_string(),
                seq: event.seq,
                recorded_at: event.recorded_at.to_string(),
                policy_hash: adopted.policy_hash.to_hex(),
                previous_hash: adopted.previous_hash.map(|hash| hash.to_hex()),
                source: adopted.source.clone(),
                rules: adopted.policy["rules"]
                    .as_array()
                    .map(|rules| {
                        rules
                            .iter()
                            .filter_map(|rule| rule["name"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            _ => None,
        })
        .collect();
    Ok(Json(PolicyDocument {
        policy_hash: state.policy.hash().to_hex(),
        policy: (*state.policy).clone(),
        record,
        history,
    }))
}
