//! The administration record.

use custody_core::Event;
use serde::{Deserialize, Serialize};

/// The deployment's administration record: every principal added (with
/// its groups), token issued or revoked and delegation granted or revoked,
/// oldest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminRecordDocument {
    /// The record's ID (prove it with `custody log prove ID`).
    pub record: Option<String>,
    /// Its events, in sequence order, exactly as stored.
    pub events: Vec<Event>,
}
