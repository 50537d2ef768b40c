//! Custody's HTTP server: the `/v1/` API over the store.
//!
//! Authentication is by bearer token only; the actor of every event is built
//! from the token ([`extract::Authenticated`]), never from a request body.
//! Every error is RFC 9457 problem+json ([`problem`]). The OpenAPI document
//! at `/v1/openapi.json` is generated from the handlers' annotations, so it
//! cannot drift from the code.

pub mod api;
pub mod api_evidence;
pub mod api_log;
pub mod config;
pub mod extract;
pub mod init;
pub mod keys;
pub mod notify;
pub mod problem;
pub mod timer;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use custody_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::problem::{types, Problem};

/// Members of this group may add principals and issue tokens.
pub const ADMINS_GROUP: &str = "admins";

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Renders `/metrics`; `None` when no recorder could be installed.
    pub metrics: Option<PrometheusHandle>,
    /// The keys that sign checkpoints.
    pub log: keys::LogSigner,
    /// The approval policy.
    pub policy: std::sync::Arc<custody_core::policy::Policy>,
    /// The evidence blob store and its limits.
    pub evidence: api_evidence::EvidenceState,
}

/// How the server runs, beyond the store.
#[derive(Clone)]
pub struct ServeOptions {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How often to sign a checkpoint while the log grows.
    pub checkpoint_interval: Duration,
    /// The keys that sign checkpoints.
    pub log: keys::LogSigner,
    /// The approval policy (`[[policy.rules]]` of the config file).
    pub policy: custody_core::policy::Policy,
    /// Where the policy came from, as recorded when it is adopted.
    pub policy_source: String,
    /// How often to look for overdue obligations (post-hoc reviews).
    pub scan_interval: Duration,
    /// Notification channels, routes and delivery settings.
    pub notify: notify::NotifyConfig,
    /// The evidence blob store and its limits.
    pub evidence: api_evidence::EvidenceState,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Custody", description = "System of record for governed access changes."),
    modifiers(&BearerSecurity),
    components(schemas(Problem))
)]
struct ApiDocument;

struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The application's router: the API, health, metrics and the OpenAPI document.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDocument::openapi())
        .routes(routes!(api::create_case, api::list_cases))
        .routes(routes!(api::show_case))
        .routes(routes!(api::approve))
        .routes(routes!(api::deny))
        .routes(routes!(api::execute))
        .routes(routes!(api::review))
        .routes(routes!(api::comment))
        .routes(routes!(api::merge))
        .routes(routes!(api::break_glass))
        .routes(routes!(api::grant_delegation, api::list_delegations))
        .routes(routes!(api::revoke_delegation))
        .routes(routes!(api::add_principal, api::list_principals))
        .routes(routes!(api::create_token))
        .routes(routes!(api::list_tokens))
        .routes(routes!(api::revoke_token))
        .routes(routes!(api::whoami))
        .routes(routes!(api::policy))
        .routes(routes!(api::list_notifications))
        .routes(routes!(api::retry_notification))
        .routes(routes!(api_evidence::upload, api_evidence::list))
        .routes(routes!(api_evidence::capture_link))
        .routes(routes!(api_evidence::upload_for_reference))
        .routes(routes!(api_evidence::download))
        .routes(routes!(api_evidence::recheck))
        .routes(routes!(api_log::checkpoint, api_log::sign_checkpoint))
        .routes(routes!(api_log::keys))
        .routes(routes!(api_log::entries))
        .routes(routes!(api_log::inclusion))
        .routes(routes!(api_log::consistency))
        .routes(routes!(api_log::case_proof))
        .split_for_parts();
    let openapi = std::sync::Arc::new(openapi);
    api.route(
        "/v1/openapi.json",
        get(move || {
            let openapi = openapi.clone();
            async move { Json(openapi.as_ref().clone()) }
        }),
    )
    .route("/healthz", get(healthz))
    .route("/metrics", get(render_metrics))
    .fallback(not_found)
    .method_not_allowed_fallback(method_not_allowed)
    .layer(DefaultBodyLimit::max(max_body_bytes))
    .layer(middleware::from_fn(count_requests))
    .layer(TraceLayer::new_for_http())
    .with_state(state)
}

/// Serves until `shutdown` resolves. Prints `listening on ADDR` to standard
/// error once the socket is bound, so wrappers started with port 0 can find it.
pub async fn serve(
    store: Store,
    listen: SocketAddr,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "listening");
    eprintln!("listening on {local}");
    serve_listener(store, listener, options, shutdown).await
}

/// Serves on an already bound listener until `shutdown` resolves. Signs a
/// checkpoint every `checkpoint_interval` while the log grows.
pub async fn serve_listener(
    store: Store,
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = install_metrics();
    // The policy this node decides with is on the record before any case is
    // decided with it: a policy change is itself an audited event.
    match store
        .adopt_policy(options.policy.clone(), &options.policy_source)
        .await
    {
        Ok(Some(adopted)) => tracing::info!(
            event = %adopted.event_id,
            policy = %options.policy.hash(),
            "recorded the adoption of a new policy"
        ),
        Ok(None) => {}
        Err(error) => {
            return Err(std::io::Error::other(format!(
                "cannot record the policy in force: {error}"
            )))
        }
    }
    let routing = options
        .notify
        .routing(&options.policy)
        .map_err(std::io::Error::other)?;
    if routing.is_empty() {
        tracing::warn!("no notification channels are configured: nobody is told about cases (see [notify] in the configuration)");
    }
    store.set_notification_routing(routing);
    let deliverer = notify::Deliverer::new(store.clone(), options.notify.clone())
        .await
        .map_err(std::io::Error::other)?;
    let deliveries = tokio::spawn(std::sync::Arc::new(deliverer).run());
    let checkpoints = tokio::spawn(sign_checkpoints(
        store.clone(),
        options.log.clone(),
        options.checkpoint_interval,
    ));
    let escalations = tokio::spawn(timer::run(store.clone(), options.scan_interval));
    let state = AppState {
        store,
        metrics,
        log: options.log,
        policy: std::sync::Arc::new(options.policy),
        evidence: options.evidence,
    };
    let served = axum::serve(listener, router(state, options.max_body_bytes))
        .with_graceful_shutdown(shutdown)
        .await;
    checkpoints.abort();
    escalations.abort();
    deliveries.abort();
    served
}

/// Signs a checkpoint whenever the log has grown since the last one.
async fn sign_checkpoints(store: Store, log: keys::LogSigner, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match store.checkpoint(&log.origin, log.signers.clone()).await {
            Ok(Some(checkpoint)) => {
                metrics::gauge!("custody_log_checkpoint_size").set(checkpoint.size as f64);
            }
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "signing a checkpoint failed"),
        }
    }
}

fn install_metrics() -> Option<PrometheusHandle> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(5));
        loop {
            interval.tick().await;
            upkeep.run_upkeep();
        }
    });
    Some(handle)
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.log_size().await {
        Ok(size) => Json(serde_json::json!({"status": "ok", "log_size": size})).into_response(),
        Err(error) => Problem::from(error).into_response(),
    }
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            types::UNAVAILABLE,
            "Unavailable",
            "metrics are not available in this process",
        )
        .into_response(),
    }
}

async fn count_requests(request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let response = next.run(request).await;
    metrics::counter!(
        "custody_http_requests_total",
        "method" => method,
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    response
}

async fn not_found() -> Problem {
    Problem::not_found("no such route").with_hint("the API lives under /v1/; see /v1/openapi.json")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        types::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "this route does not support that method; see /v1/openapi.json",
    )
}
