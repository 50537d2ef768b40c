//! Sources of observed changes (Okta, CloudTrail, Entra ID, GitHub, Vault,
//! Kubernetes), wired to the network and the ledger. What each source
//! sends, and how it authenticates, is parsed in `custody-connect`
//! (`observe` and one module per source), IO-free; this module
//!
//! - answers pushes at `/v1/connectors/{name}/{endpoint}` (a source's
//!   handshake on `GET`, records on `POST`), authenticated the source's way;
//! - ingests batch files at `POST /v1/ingest/{name}` (`custody ingest`),
//!   for admins;
//! - polls the sources configured to be polled ([`pull`]), with the cursor
//!   and a lease kept in the store;
//!
//! and records every observed change through the same planner as every
//! write ([`record`]): mapped to a principal when its actor is in the
//! identity map, bound to a case (by case ID, reference or window) or
//! opening a case of its own, and keyed by (source, external ID), so a record
//! delivered twice appends nothing.

pub mod pull;
pub mod s3;
pub mod socket;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use custody_api::{IngestRefusal, IngestSummary};
use custody_connect::observe::{Parsed, Source};
use custody_connect::{Headers, Refusal, Request};
use custody_core::command::{CaseCommand, ClientCommand, Opening};
use custody_core::event::Origin;
use custody_core::observation::ObservedChange;
use custody_core::Actor;
use custody_store::{CaseWrite, ConnectorWrite, StoreError};

use crate::AppState;

/// One configured source.
pub struct SourceEntry {
    /// Its connector name (`via = connector:<name>`, the events' `source`).
    pub name: String,
    /// The source.
    pub source: Box<dyn Source>,
    /// The largest accepted pushed body.
    pub max_body_bytes: usize,
    /// The raw configuration, for workers that need more than the source
    /// (CloudTrail's bucket).
    pub config: custody_connect::config::ConnectorConfig,
}

/// Builds a source from its configuration.
pub fn build(config: &custody_connect::config::ConnectorConfig) -> Result<SourceEntry, String> {
    let name = config.name();
    let source = config
        .build_source()
        .map_err(|error| format!("connector `{name}`: {error}"))?;
    let max_body_bytes = config.max_body_bytes();
    if !(1..=64 * 1024 * 1024).contains(&max_body_bytes) {
        return Err(format!(
            "connector `{name}`: max_body_bytes must be between 1 and 67108864"
        ));
    }
    Ok(SourceEntry {
        name: name.to_string(),
        source,
        max_body_bytes,
        config: config.clone(),
    })
}

fn headers_of(headers: &HeaderMap) -> Headers {
    Headers::new(
        headers
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec())),
    )
}

fn refused(entry: &SourceEntry, refusal: &Refusal) -> Response {
    metrics::counter!(
        "custody_connector_refusals_total",
        "connector" => entry.name.clone(),
        "reason" => refusal.label()
    )
    .increment(1);
    tracing::warn!(connector = %entry.name, reason = refusal.label(), error = %refusal, "refused a source's request");
    crate::connectors::refusal_problem(refusal).into_response()
}

/// `GET /v1/connectors/{name}/{endpoint}` of a source: its handshake.
pub async fn handshake(entry: Arc<SourceEntry>, endpoint: String, headers: HeaderMap) -> Response {
    let headers = headers_of(&headers);
    let request = Request {
        endpoint: &endpoint,
        headers: &headers,
        body: &[],
        tls: false,
    };
    if let Err(refusal) = entry.source.authenticate(&request) {
        return refused(&entry, &refusal);
    }
    match entry.source.handshake(&request) {
        Some(Ok(answer)) => crate::connectors::answer(answer),
        Some(Err(refusal)) => refused(&entry, &refusal),
        None => crate::problem::Problem::new(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            crate::problem::types::METHOD_NOT_ALLOWED,
            "Method not allowed",
            format!(
                "the `{}` source takes records by POST; it has no handshake",
                entry.source.kind()
            ),
        )
        .into_response(),
    }
}

/// `POST /v1/connectors/{name}/{endpoint}` of a source: pushed records.
pub async fn push(
    state: AppState,
    entry: Arc<SourceEntry>,
    endpoint: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers = headers_of(&headers);
    let request = Request {
        endpoint: &endpoint,
        headers: &headers,
        body: &body,
        tls: false,
    };
    let parsed = custody_connect::limits::check_size(body.len(), entry.max_body_bytes)
        .and_then(|()| entry.source.authenticate(&request))
        .and_then(|()| entry.source.parse_push_at(&request, state.clock.now()));
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(refusal) => return refused(&entry, &refusal),
    };
    let summary = record(&state, &entry, parsed).await;
    summary_answer(summary)
}

/// The answer to a batch: 200 with the summary when everything was
/// recorded (or was a duplicate); 503 when the ledger failed for some, so
/// the source retries (what was recorded stays recorded, and its retry
/// appends nothing).
fn summary_answer(summary: IngestSummary) -> Response {
    let status = if summary
        .refused
        .iter()
        .any(|refusal| refusal.error.starts_with(RETRY))
    {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        axum::http::StatusCode::OK
    };
    (status, axum::Json(summary)).into_response()
}

/// The prefix of a refusal the source should retry.
const RETRY: &str = "not recorded, retry: ";

/// How many observations of one batch are in the writer's queue at once:
/// enough for its group commit to take many per transaction.
const IN_FLIGHT: usize = 256;

/// Records every observation of `parsed` through the ledger, in order,
/// and says what happened to each. Observations are submitted together (up
/// to [`IN_FLIGHT`] at a time) so the writer commits many per transaction;
/// they are submitted in input order.
pub async fn record(state: &AppState, entry: &SourceEntry, parsed: Parsed) -> IngestSummary {
    record_marked(state, entry, parsed, false).await
}

/// [`record`], with the cases its unsanctioned observations open marked
/// as drill cases when `drill` is set (`POST /v1/ingest/{name}?drill=true`,
/// what `custody drill` sends).
pub async fn record_marked(
    state: &AppState,
    entry: &SourceEntry,
    parsed: Parsed,
    drill: bool,
) -> IngestSummary {
    use futures_util::StreamExt;
    let mut summary = IngestSummary {
        source: entry.name.clone(),
        observations: parsed.observations.len() as u64,
        skipped: parsed.skipped as u64,
        ..IngestSummary::default()
    };
    // Actors are mapped first (each once), so the writes go out in order.
    let mut principals: std::collections::HashMap<String, Option<custody_core::PrincipalId>> =
        std::collections::HashMap::new();
    let mut writes = Vec::with_capacity(parsed.observations.len());
    for mut observation in parsed.observations {
        let external_id = observation.external_id.clone();
        let principal = match principals.get(&observation.actor.id) {
            Some(principal) => Ok(principal.clone()),
            None => match state
                .store
                .connector_identity(&entry.name, &observation.actor.id)
                .await
            {
                Ok(found) => {
                    let found = found.map(|principal| principal.id);
                    principals.insert(observation.actor.id.clone(), found.clone());
                    Ok(found)
                }
                Err(error) => Err(error),
            },
        };
        writes.push(
            principal
                .map(|principal| {
                    observation.actor.principal = principal;
                    (
                        external_id.clone(),
                        write_of(state, entry, observation, drill),
                    )
                })
                .map_err(|error| (external_id, error)),
        );
    }
    let outcomes: Vec<_> = futures_util::stream::iter(writes)
        .map(|write| async move {
            match write {
                Ok((external_id, write)) => (external_id, state.store.write(write).await),
                Err((external_id, error)) => (external_id, Err(error)),
            }
        })
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    let mut cases = BTreeSet::new();
    for (external_id, outcome) in outcomes {
        match outcome {
            Ok(outcome) => {
                let opened = outcome
                    .appended
                    .first()
                    .is_some_and(|event| event.kind == "request_created");
                let label = if outcome.replayed || outcome.appended.is_empty() {
                    summary.duplicates += 1;
                    "duplicate"
                } else if opened {
                    summary.unsanctioned += 1;
                    "unsanctioned"
                } else {
                    summary.matched += 1;
                    "matched"
                };
                if cases.insert(outcome.case_id.to_string()) {
                    summary.cases.push(outcome.case_id.to_string());
                }
                metrics::counter!(
                    "custody_observations_total",
                    "connector" => entry.name.clone(),
                    "outcome" => label
                )
                .increment(1);
            }
            Err(error) => {
                let retry = !matches!(
                    error,
                    StoreError::Refused(_) | StoreError::InvalidRequest(_)
                );
                tracing::warn!(connector = %entry.name, external_id = %custody_core::text::escape(&external_id), %error, "an observation was not recorded");
                summary.refused.push(IngestRefusal {
                    external_id: custody_core::text::escape(&external_id).into_owned(),
                    error: format!(
                        "{}{}",
                        if retry { RETRY } else { "" },
                        custody_core::text::escape(&error.to_string())
                    ),
                });
            }
        }
    }
    summary
}

/// The write of one observation (its actor already mapped): the policy's
/// rule for its change decides an unsanctioned case's review deadline.
/// `drill` marks the case it opens as a drill case.
fn write_of(
    state: &AppState,
    entry: &SourceEntry,
    observation: ObservedChange,
    drill: bool,
) -> CaseWrite {
    let rule = state.policy.decide(&observation.change);
    let origin = Origin {
        source: entry.name.clone(),
        external_id: observation.external_id.clone(),
    };
    CaseWrite {
        actor: Actor::observer(&entry.name, &observation.actor.id),
        idempotency_key: format!("{}/{}", entry.name, observation.external_id),
        occurred_at: Some(observation.occurred_at),
        command: CaseCommand::Client(ClientCommand::Open(Opening::Observe {
            source_kind: entry.source.kind().to_string(),
            observation,
            rule,
            drill,
        })),
        connector: Some(ConnectorWrite {
            origin,
            reply: None,
        }),
    }
}

/// The query of `POST /v1/ingest/{name}`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestQuery {
    /// Mark the cases unsanctioned observations open as drill cases.
    #[serde(default)]
    pub drill: Option<bool>,
}

/// The largest batch file `POST /v1/ingest/{name}` reads (split a larger
/// export into several files).
pub const MAX_INGEST_BYTES: usize = 256 * 1024 * 1024;

/// `POST /v1/ingest/{name}`: a batch file of a source's records, in the
/// format the source exports (admins only).
#[utoipa::path(post, path = "/v1/ingest/{name}",
    params(("name" = String, Path, description = "the source's connector name"),
        ("drill" = Option<bool>, Query, description = "`true`: the cases opened by unsanctioned observations are drill cases (what `custody drill` sends)")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the file, as the source exports it"),
    responses((status = 200, body = IngestSummary), (status = 400, body = crate::problem::Problem), (status = 403, body = crate::problem::Problem), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = [])))]
pub async fn ingest(
    axum::extract::State(state): axum::extract::State<AppState>,
    who: crate::extract::Caller,
    crate::extract::ApiPath(name): crate::extract::ApiPath<String>,
    crate::extract::ApiQuery(query): crate::extract::ApiQuery<IngestQuery>,
    body: axum::body::Body,
) -> Result<Response, crate::problem::Problem> {
    who.require_admin()?;
    let Some(entry) = state.connectors.source(&name) else {
        return Err(crate::problem::Problem::not_found(format!(
            "no source of observed changes is configured under the name `{}`",
            custody_core::text::escape(&name)
        ))
        .with_hint("sources are the [[connectors]] entries of kind okta, cloudtrail, entra, github, vault or kubernetes (docs/observations.md)"));
    };
    let body = axum::body::to_bytes(body, MAX_INGEST_BYTES)
        .await
        .map_err(|_| {
            crate::problem::Problem::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                crate::problem::types::PAYLOAD_TOO_LARGE,
                "Payload too large",
                format!("a batch file is at most {MAX_INGEST_BYTES} bytes (or the upload was cut)"),
            )
            .with_hint("split the export into several files and ingest each")
        })?;
    let parsed = entry
        .source
        .parse_batch(&body)
        .map_err(|refusal| crate::problem::Problem::invalid(refusal.to_string()))?;
    Ok(summary_answer(
        record_marked(&state, &entry, parsed, query.drill.unwrap_or(false)).await,
    ))
}
