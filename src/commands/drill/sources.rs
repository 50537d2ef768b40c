//! The batch files the drill sends to a source of observed changes
//! (`POST /v1/ingest/{name}?drill=true`), each in the source's own export
//! format, each about a drill subject only. Okta is the one written so far
//! (docs/drill.md says what the others need).

use serde_json::json;

/// The kinds of source whose batch format the drill writes.
pub const WRITTEN: &[&str] = &["okta"];

/// One observed change the drill stages: a drill user added to a drill
/// group, by an outside administrator no identity map knows.
pub struct StagedChange {
    /// The record's ID in the source (fresh per run).
    pub external_id: String,
    /// The subject Custody names (`user:...`).
    pub subject: String,
    /// The entitlement Custody names (`group:...`).
    pub entitlement: String,
    /// The batch file, as the source exports it.
    pub batch: Vec<u8>,
}

/// An Okta System Log export (what `GET /api/v1/logs` returns: a JSON array
/// of LogEvents) holding one `group.user_membership.add`: user
/// `drill-<run>-unsanctioned` added to group `drill-<run>-group`, now.
/// The user's login and ID are the same, so the subject is the same
/// whichever `subject_ids` the connector uses.
pub fn okta(run: &str) -> StagedChange {
    let external_id = uuid::Uuid::now_v7().hyphenated().to_string();
    let user = format!("drill-{run}-unsanctioned");
    let group = format!("drill-{run}-group");
    let published = custody_core::Timestamp::now().to_string();
    let event = json!({
        "uuid": external_id,
        "published": published,
        "eventType": "group.user_membership.add",
        "version": "0",
        "severity": "INFO",
        "legacyEventType": "core.user_group_member.user_add",
        "displayMessage": "Add user to group membership",
        "actor": {
            "id": format!("drill-{run}-admin"),
            "type": "User",
            "alternateId": format!("drill-{run}-admin"),
            "displayName": "custody drill (an administrator no case names)",
        },
        "authenticationContext": {"externalSessionId": format!("drill-{run}")},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": [
            {"id": user, "type": "User", "alternateId": user, "displayName": "custody drill subject"},
            {"id": group, "type": "UserGroup", "alternateId": "unknown", "displayName": "custody drill group"},
        ],
        "transaction": {"type": "WEB", "id": format!("drill-{run}"), "detail": {}},
        "debugContext": {"debugData": {"requestUri": format!("/api/v1/groups/{group}/users/{user}")}},
    });
    StagedChange {
        external_id,
        subject: format!("user:{user}"),
        entitlement: format!("group:{group}"),
        batch: serde_json::to_vec(&json!([event])).unwrap_or_default(),
    }
}
