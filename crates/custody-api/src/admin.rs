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

/// What a deployment is made of (`GET /v1/admin/components`, admins): the
/// notification channels, export sinks and connectors it is configured
/// with, by name and kind, and its evidence store's kind. Never a secret,
/// an address or a URL: `custody drill` reads it to know which scenarios it
/// can cover.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComponentsDocument {
    /// The notification channels (`[[notify.channels]]`).
    pub notification_channels: Vec<Component>,
    /// The push export sinks (`[[export.sinks]]`), each with its cursor.
    pub export_sinks: Vec<ExportSinkStatus>,
    /// The connectors (`[[connectors]]`): chat, ITSM and sources of
    /// observed changes.
    pub connectors: Vec<ConnectorComponent>,
    /// The evidence store's backend: `local` or `s3`.
    pub evidence_store: String,
    /// The log's size now: with a sink's cursor, how far behind it is.
    pub log_size: u64,
}

/// A configured component, by name and kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Component {
    /// Its name in the configuration.
    pub name: String,
    /// Its kind: `webhook`, `email`, `chat`, `nats` for channels.
    pub kind: String,
}

/// A configured connector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectorComponent {
    /// Its name (`/v1/connectors/{name}/...`, `/v1/ingest/{name}`).
    pub name: String,
    /// Its kind: `jira`, `servicenow`, `slack`, `teams`, `okta`, ...
    pub kind: String,
    /// Whether it is a source of observed changes (`POST /v1/ingest/{name}`).
    pub source: bool,
}

/// A push export sink and how far it has pushed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportSinkStatus {
    /// Its name in the configuration.
    pub name: String,
    /// Its kind: `syslog`, `hec`, `webhook` or `file`.
    pub kind: String,
    /// The log index of the first event the sink has not accepted (`None`
    /// before its first batch): every event below it reached the sink.
    pub cursor: Option<u64>,
}
