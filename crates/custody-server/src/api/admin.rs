//! The administration record.

use axum::extract::State;
use axum::Json;
use custody_api::{
    AdminRecordDocument, Component, ComponentsDocument, ConnectorComponent, ExportSinkStatus,
};

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

/// What the deployment is configured with, by name and kind (never a
/// secret, a URL or an address), read once at start-up.
#[derive(Clone, Debug, Default)]
pub struct Components {
    channels: Vec<Component>,
    sinks: Vec<Component>,
    connectors: Vec<ConnectorComponent>,
    evidence_store: String,
}

impl Components {
    /// The components of a server run with `options`.
    pub fn of(options: &crate::ServeOptions) -> Components {
        Components {
            channels: options
                .notify
                .channels
                .iter()
                .map(|channel| Component {
                    name: channel.name().to_string(),
                    kind: channel.kind().to_string(),
                })
                .collect(),
            sinks: options
                .export
                .sinks
                .iter()
                .map(|sink| Component {
                    name: sink.name().to_string(),
                    kind: sink.kind().to_string(),
                })
                .collect(),
            connectors: options
                .connectors
                .iter()
                .map(|connector| ConnectorComponent {
                    name: connector.name().to_string(),
                    kind: connector.kind().to_string(),
                    source: connector.is_source(),
                })
                .collect(),
            evidence_store: match options.evidence.config.store {
                custody_evidence::BlobStoreConfig::Local { .. } => "local",
                custody_evidence::BlobStoreConfig::S3(_) => "s3",
            }
            .to_string(),
        }
    }
}

/// The deployment's components (admins): its notification channels, its
/// export sinks with their cursors, its connectors and its evidence store,
/// by name and kind, never with a secret or an address. `custody drill`
/// reads it to know which scenarios the deployment can cover.
#[utoipa::path(get, path = "/v1/admin/components",
    responses((status = 200, body = ComponentsDocument), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn components(
    State(state): State<AppState>,
    who: Caller,
) -> Result<Json<ComponentsDocument>, Problem> {
    who.require_admin()?;
    let components = &state.components;
    let mut export_sinks = Vec::with_capacity(components.sinks.len());
    for sink in &components.sinks {
        export_sinks.push(ExportSinkStatus {
            name: sink.name.clone(),
            kind: sink.kind.clone(),
            cursor: state.store.export_position(&sink.name).await?,
        });
    }
    Ok(Json(ComponentsDocument {
        notification_channels: components.channels.clone(),
        export_sinks,
        connectors: components.connectors.clone(),
        evidence_store: components.evidence_store.clone(),
        log_size: state.store.log_size().await?,
    }))
}
