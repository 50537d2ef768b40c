//! The notifications the workflow owes and their delivery (the outbox).

use serde::{Deserialize, Serialize};

/// Query of `GET /v1/notifications`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct NotificationsQuery {
    /// Only the notifications of this case.
    pub case: Option<String>,
    /// Only those not delivered (pending or dead).
    #[serde(default)]
    pub failed: bool,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// Notifications in the outbox.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationList {
    /// Newest first.
    pub notifications: Vec<OutboxEntry>,
}

/// A notification in the outbox, for operators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutboxEntry {
    /// Its delivery ID.
    pub delivery_id: String,
    /// The case that owes it.
    pub case_id: String,
    /// The event that owes it.
    pub event_id: String,
    /// What it says.
    pub kind: String,
    /// Who it is for.
    pub audience: String,
    /// The channel.
    pub channel: String,
    /// The recipient, if the route names one.
    pub recipient: Option<String>,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it is (or was) due next.
    pub next_attempt_at: String,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}
