//! Custody's HTTP server: the `/v1/` API over the store.
//!
//! Authentication is by bearer token only; the actor of every event is built
//! from the token ([`extract::Caller`]), never from a request body.
//! Every error is RFC 9457 problem+json ([`problem`]). The OpenAPI document
//! at `/v1/openapi.json` is generated from the handlers' annotations, so it
//! cannot drift from the code.

#![forbid(unsafe_code)]

pub mod api;
pub mod checkpoint_copies;
pub mod config;
pub mod connections;
pub mod connectors;
pub mod console;
pub mod delivery;
pub mod exporter;
pub mod extract;
pub mod init;
pub mod monitor;
pub mod observe;
pub mod oidc;
pub mod openapi;
pub mod problem;
pub mod push;
pub mod timer;
pub mod tls;
pub mod witness;

/// The log's signing keys live with the rest of the data directory, in the
/// store, so that `custody-verify` reads the trusted keys without the server.
pub use custody_store::keys;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use custody_core::time::{SharedClock, SystemClock};
use custody_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::problem::{types, Problem};

/// Members of this group may add principals and issue tokens.
pub const ADMINS_GROUP: &str = custody_core::admin::ADMINS_GROUP;

/// Members of this group (and admins) may export the ledger
/// (`GET /v1/export`).
pub const AUDITORS_GROUP: &str = "auditors";

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
    pub evidence: api::evidence::EvidenceState,
    /// Where every signed checkpoint is copied outside the database.
    pub checkpoint_copies: std::sync::Arc<checkpoint_copies::CheckpointCopies>,
    /// The time the server's decisions are made at ([`ServeOptions::clock`]).
    pub clock: SharedClock,
    /// The configured connectors (`[[connectors]]`).
    pub connectors: connectors::Connectors,
    /// What the deployment is configured with (`GET /v1/admin/components`).
    pub components: std::sync::Arc<api::admin::Components>,
    /// Whether this server speaks HTTPS itself ([`ServeOptions::tls`]):
    /// what decides a cookie's `Secure` flag when no proxy is in front.
    pub tls: bool,
    /// Single sign-on with OpenID Connect (`[oidc]`), when configured.
    pub oidc: Option<oidc::Oidc>,
    /// The web console's session and cookie settings.
    pub console: std::sync::Arc<config::ConsoleConfig>,
    /// What the web console caches (the readiness report).
    pub console_cache: std::sync::Arc<console::ConsoleCache>,
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
    pub notify: delivery::NotifyConfig,
    /// The push sinks (`[[export.sinks]]`) and how they are driven.
    pub export: push::ExportConfig,
    /// The connectors (`[[connectors]]`).
    pub connectors: Vec<custody_connect::config::ConnectorConfig>,
    /// The witnesses every new checkpoint is sent to (`[[witnesses]]`).
    pub witnesses: Vec<witness::WitnessConfig>,
    /// The evidence blob store and its limits.
    pub evidence: api::evidence::EvidenceState,
    /// Where every signed checkpoint is copied outside the database (the
    /// data directory's `checkpoints` file, `log.checkpoints_dir`).
    pub checkpoint_copies: std::sync::Arc<checkpoint_copies::CheckpointCopies>,
    /// The continuous monitor (`[monitor]`, `docs/monitor.md`).
    pub monitor: monitor::MonitorOptions,
    /// Where the server reads the time its decisions are made at: which
    /// obligations are overdue (the timer), whether a delegation grant is in
    /// force, how far ahead a client's `occurred_at` may be, when a console
    /// session has expired. `SystemClock`
    /// in production; a test gives a `ManualClock` and moves it, so deadline
    /// scenarios never sleep. The outbox's schedule is not among them: its
    /// times are written by the store, so the deliverer reads the store's
    /// clock (the system's).
    pub clock: SharedClock,
    /// The certificate and key HTTPS is served with (`--tls-cert`,
    /// `--tls-key`, `docs/tls.md`); `None` serves plain HTTP.
    pub tls: Option<tls::Tls>,
    /// Single sign-on with OpenID Connect (`[oidc]`, `docs/oidc.md`).
    pub oidc: Option<oidc::OidcConfig>,
    /// The web console (`[console]`, `docs/console.md`).
    pub console: config::ConsoleConfig,
}

impl ServeOptions {
    /// The options `custody serve` runs with: the configuration file's
    /// settings, the data directory's signing keys, checkpoint copies and
    /// evidence store, and the system clock. `policy_source` is where the
    /// policy came from, as its adoption records it.
    pub fn from_config(
        config: config::Config,
        data: &std::path::Path,
        policy_source: String,
    ) -> Result<ServeOptions, String> {
        let log = keys::LogSigner::load(data).map_err(|error| error.to_string())?;
        let checkpoint_copies =
            checkpoint_copies::CheckpointCopies::open(data, config.log.checkpoints_dir.as_deref())?;
        let blobs = config
            .evidence
            .store
            .open(&data.join("evidence"))
            .map_err(|error| format!("cannot open the evidence store: {error}"))?;
        let trusted_keys = keys::trusted_keys(data).map_err(|error| error.to_string())?;
        let clock = SystemClock::shared();
        let tls = tls::TlsFiles::pair(
            config.server.tls_cert.clone(),
            config.server.tls_key.clone(),
        )
        .and_then(|files| {
            files
                .map(|files| tls::Tls::load(files, clock.now()))
                .transpose()
        })
        .map_err(|error| error.to_string())?;
        Ok(ServeOptions {
            tls,
            monitor: monitor::MonitorOptions {
                interval_seconds: config.monitor.interval_seconds,
                poll: Duration::from_secs(1),
                trusted_keys,
                checkpoint_interval_seconds: config.log.checkpoint_interval_seconds,
                idle_after_entries: 0,
            },
            checkpoint_copies,
            max_body_bytes: config.server.max_body_bytes,
            checkpoint_interval: Duration::from_secs(config.log.checkpoint_interval_seconds),
            log,
            policy: config.policy,
            policy_source,
            scan_interval: Duration::from_secs(config.workflow.scan_interval_seconds),
            notify: config.notify,
            export: config.export,
            connectors: config.connectors,
            witnesses: config.witnesses,
            evidence: api::evidence::EvidenceState::new(blobs, config.evidence),
            clock,
            oidc: config.oidc,
            console: config.console,
        })
    }
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
        .routes(routes!(api::cases::create_case, api::cases::list_cases))
        .routes(routes!(api::cases::show_case))
        .routes(routes!(api::decisions::approve))
        .routes(routes!(api::decisions::deny))
        .routes(routes!(api::decisions::execute))
        .routes(routes!(api::decisions::review))
        .routes(routes!(api::decisions::comment))
        .routes(routes!(api::decisions::merge))
        .routes(routes!(api::cases::break_glass))
        .routes(routes!(
            api::delegations::grant_delegation,
            api::delegations::list_delegations
        ))
        .routes(routes!(api::delegations::revoke_delegation))
        .routes(routes!(api::admin::admin_record))
        .routes(routes!(api::admin::components))
        .routes(routes!(
            api::identities::list_identities,
            api::identities::map_identities
        ))
        .routes(routes!(
            api::identities::map_identity,
            api::identities::unmap_identity
        ))
        .routes(routes!(api::principals::set_groups))
        .routes(routes!(
            api::principals::add_principal,
            api::principals::list_principals
        ))
        .routes(routes!(api::tokens::create_token))
        .routes(routes!(api::tokens::list_tokens))
        .routes(routes!(api::tokens::revoke_token))
        .routes(routes!(api::principals::whoami))
        .routes(routes!(api::policy::policy))
        .routes(routes!(api::notifications::list_notifications))
        .routes(routes!(api::notifications::retry_notification))
        .routes(routes!(api::evidence::upload, api::evidence::list))
        .routes(routes!(api::evidence::capture_link))
        .routes(routes!(api::evidence::upload_for_reference))
        .routes(routes!(api::evidence::download))
        .routes(routes!(api::evidence::recheck))
        .routes(routes!(api::evidence::record))
        .routes(routes!(api::log::checkpoint, api::log::sign_checkpoint))
        .routes(routes!(api::log::keys))
        .routes(routes!(api::log::entries))
        .routes(routes!(api::log::inclusion))
        .routes(routes!(api::log::consistency))
        .routes(routes!(api::log::case_proof))
        .routes(routes!(api::export::export))
        .routes(routes!(observe::ingest))
        .split_for_parts();
    let mut openapi = openapi;
    // After the routes are in: constraints and the error answers of every operation.
    openapi::Truthful.modify(&mut openapi);
    let openapi = std::sync::Arc::new(openapi::document(&openapi));
    api.route(
        "/v1/openapi.json",
        get(move || {
            let openapi = openapi.clone();
            async move { Json(openapi.as_ref().clone()) }
        }),
    )
    // Vendor-facing: authenticated by each source's own signature, not a
    // bearer token, and answered in the source's shape (docs/connectors.md).
    .route(
        "/v1/connectors/{name}/{endpoint}",
        axum::routing::post(connectors::inbound).get(connectors::handshake),
    )
    .merge(console::routes())
    .route("/healthz", get(healthz))
    .route("/metrics", get(render_metrics))
    .fallback(not_found)
    .method_not_allowed_fallback(method_not_allowed)
    .layer(middleware::from_fn_with_state(
        state.clone(),
        strict_transport_security,
    ))
    .layer(DefaultBodyLimit::max(max_body_bytes))
    .layer(middleware::from_fn(problems_only))
    .layer(middleware::from_fn(count_requests))
    .layer(TraceLayer::new_for_http())
    .with_state(state)
}

/// Serves until `shutdown` resolves, with the connection `limits` (timeouts,
/// connection limit, shutdown deadline). Prints `listening on ADDR` to
/// standard error once the node is ready (the socket bound, start-up done,
/// the log's tail signed), so wrappers started with port 0 can find it.
pub async fn serve(
    store: Store,
    listen: SocketAddr,
    options: ServeOptions,
    limits: connections::ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    serve_announced(store, listener, options, limits, shutdown, Some(local)).await
}

/// Serves on an already bound listener until `shutdown` resolves, with the
/// default connection limits.
pub async fn serve_listener(
    store: Store,
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_listener_with(
        store,
        listener,
        options,
        connections::ConnectionLimits::default(),
        shutdown,
    )
    .await
}

/// Serves on an already bound listener until `shutdown` resolves, then
/// finishes the requests in progress within the shutdown deadline. Signs a
/// checkpoint every `checkpoint_interval` while the log grows.
pub async fn serve_listener_with(
    store: Store,
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    limits: connections::ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_announced(store, listener, options, limits, shutdown, None).await
}

/// [`serve_listener_with`], printing `listening on ADDR` once the node is
/// ready: after start-up has signed the log's tail.
async fn serve_announced(
    store: Store,
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    limits: connections::ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    announce: Option<SocketAddr>,
) -> std::io::Result<()> {
    // Nothing is written or signed on a log that no longer extends the
    // checkpoints signed for it (a history rewritten in the database).
    options
        .checkpoint_copies
        .check(&store)
        .await
        .map_err(|error| std::io::Error::other(format!("refusing to start: {error}")))?;
    let witness_targets = witness::targets(&options.witnesses).map_err(std::io::Error::other)?;
    let (metrics, upkeep) = install_metrics();
    // The sinks are built (their files read) before anything is written, so
    // a bad sink stops start-up having changed nothing.
    let mut pushers = push::Pushers::prepare(store.clone(), &options.export, options.clock.clone())
        .await
        .map_err(std::io::Error::other)?;
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
    let connectors =
        connectors::Connectors::build(&options.connectors).map_err(std::io::Error::other)?;
    // Vault's socket audit device: bound before anything starts, so an
    // address in use stops start-up having changed nothing.
    let sockets = observe::socket::bind(&connectors)
        .await
        .map_err(std::io::Error::other)?;
    let routing = options
        .notify
        .routing(&options.policy, &connectors.links())
        .map_err(std::io::Error::other)?;
    if routing.is_empty() {
        tracing::warn!("no notification channels are configured: nobody is told about cases (see [notify] in the configuration)");
    }
    store.set_notification_routing(routing);
    let deliverer =
        delivery::Deliverer::new(store.clone(), options.notify.clone(), connectors.clone())
            .await
            .map_err(std::io::Error::other)?;
    let deliveries = tokio::spawn(std::sync::Arc::new(deliverer).run());
    pushers.start();
    // The tail a crashed predecessor left unsigned (and this start's policy
    // adoption) is signed before the node says it listens: a node killed
    // again and again just after it listened never signed it (the crash
    // campaign, docs/crash.md). The timer's first tick then finds nothing new.
    sign_checkpoint_once(&store, &options.log, &options.checkpoint_copies).await;
    if let Some(local) = announce {
        // Printed once, plainly (not as a log event), so that wrappers can
        // find the address whatever CUSTODY_LOG and CUSTODY_LOG_FORMAT say.
        eprintln!("listening on {local}");
    }
    let checkpoints = tokio::spawn(sign_checkpoints(
        store.clone(),
        options.log.clone(),
        options.checkpoint_interval,
        options.checkpoint_copies.clone(),
    ));
    let escalations = tokio::spawn(timer::run(
        store.clone(),
        options.scan_interval,
        options.clock.clone(),
    ));
    let components = std::sync::Arc::new(api::admin::Components::of(&options));
    let oidc = options
        .oidc
        .clone()
        .map(|config| oidc::Oidc::new(config, store.clone(), options.clock.clone()))
        .transpose()
        .map_err(std::io::Error::other)?;
    let state = AppState {
        oidc,
        console: std::sync::Arc::new(options.console.clone()),
        console_cache: std::sync::Arc::default(),
        components,
        store: store.clone(),
        metrics,
        log: options.log.clone(),
        policy: std::sync::Arc::new(options.policy),
        evidence: options.evidence,
        checkpoint_copies: options.checkpoint_copies.clone(),
        clock: options.clock.clone(),
        connectors,
        tls: options.tls.is_some(),
    };
    // Whether the monitor runs is a metric of its own, so an alert can tell
    // a monitor turned off from one that is behind.
    metrics::gauge!("custody_monitor_enabled").set(if options.monitor.interval_seconds > 0 {
        1.0
    } else {
        tracing::warn!("the continuous monitor is off ([monitor] interval_seconds = 0): nothing re-verifies the log while the server runs");
        0.0
    });
    let monitoring = (options.monitor.interval_seconds > 0).then(|| {
        let owner = format!("monitor-{}-{}", std::process::id(), local_owner_suffix());
        tokio::spawn(monitor::run(monitor::Monitor::new(
            store.clone(),
            options.monitor.clone(),
            options.clock.clone(),
            owner,
        )))
    });
    let pulls = observe::pull::start(&state);
    let witnesses = witness::push::start(&store, &witness_targets, &options.clock);
    let pull_state = state.clone();
    let sockets = observe::socket::start(&state, sockets);
    let served = connections::serve(
        listener,
        router(state, options.max_body_bytes),
        limits,
        options.tls.as_ref().map(tls::Tls::acceptor),
        shutdown,
    )
    .await;
    checkpoints.abort();
    escalations.abort();
    if let Some(monitoring) = monitoring {
        monitoring.abort();
    }
    deliveries.abort();
    pulls.stop(&pull_state).await;
    witnesses.stop(&store, &options.clock).await;
    for socket in sockets {
        socket.abort();
    }
    pushers.stop().await;
    if let Some(upkeep) = upkeep {
        upkeep.abort();
    }
    // The last writes get their checkpoint before the process ends, so a
    // stopped node leaves no tail that no checkpoint covers.
    sign_checkpoint_once(&store, &options.log, &options.checkpoint_copies).await;
    served
}

/// A random suffix that tells this server's leases from another's in the
/// same process (tests run several).
fn local_owner_suffix() -> String {
    let mut suffix = [0u8; 6];
    // Without randomness the process ID alone names the owner.
    let _ = getrandom::fill(&mut suffix);
    custody_core::hex::encode(&suffix)
}

/// Signs a checkpoint whenever the log has grown since the last one (the
/// first at start), and copies it outside the database.
async fn sign_checkpoints(
    store: Store,
    log: keys::LogSigner,
    interval: Duration,
    copies: std::sync::Arc<checkpoint_copies::CheckpointCopies>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        sign_checkpoint_once(&store, &log, &copies).await;
    }
}

/// Signs a checkpoint of the log as it stands (unless the latest covers it)
/// and copies it outside the database; signs nothing when the log does not
/// extend the checkpoints signed before (`checkpoint_copies`).
async fn sign_checkpoint_once(
    store: &Store,
    log: &keys::LogSigner,
    copies: &std::sync::Arc<checkpoint_copies::CheckpointCopies>,
) {
    match copies.sign(store, log).await {
        Ok(Some(checkpoint)) => {
            metrics::gauge!("custody_log_checkpoint_size").set(checkpoint.size as f64);
        }
        Ok(None) => {}
        Err(error @ custody_store::StoreError::Diverged(_)) => {
            metrics::counter!("custody_checkpoint_refusals_total").increment(1);
            tracing::error!(%error, "refused to sign a checkpoint");
        }
        Err(error) => tracing::error!(%error, "signing a checkpoint failed"),
    }
}

/// The process's Prometheus recorder, and its upkeep task for this server.
/// A process has one recorder: it is installed by the first server and
/// shared by any later one in the same process (a test or a benchmark that
/// runs several), whose `/metrics` then shows the counters of all of them.
fn install_metrics() -> (
    Option<PrometheusHandle>,
    Option<tokio::task::JoinHandle<()>>,
) {
    static RECORDER: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    let Some(handle) = RECORDER
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .ok()
        })
        .clone()
    else {
        return (None, None);
    };
    let upkeep = handle.clone();
    let task = tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(5));
        loop {
            interval.tick().await;
            upkeep.run_upkeep();
        }
    });
    (Some(handle), Some(task))
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

/// Every error is problem+json. The handlers' own errors already are; an
/// error answered in another form (a framework rejection the extractors did
/// not see) is rewritten here as the problem its status implies, keeping its
/// text as the detail and its other headers (such as `Allow`).
async fn problems_only(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // The console's own error pages (403, 404, a refused action) are HTML
    // for people; the API's errors stay problem documents.
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/html"));
    if is_page {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .unwrap_or_default();
    let (status, problem_type, title) = match status {
        StatusCode::UNAUTHORIZED => (status, types::UNAUTHORIZED, "Unauthorized"),
        StatusCode::FORBIDDEN => (status, types::FORBIDDEN, "Forbidden"),
        StatusCode::NOT_FOUND => (status, types::NOT_FOUND, "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => (status, types::METHOD_NOT_ALLOWED, "Method not allowed"),
        StatusCode::REQUEST_TIMEOUT => (status, types::REQUEST_TIMEOUT, "Request timeout"),
        StatusCode::CONFLICT => (status, types::CONFLICT, "Refused"),
        StatusCode::PAYLOAD_TOO_LARGE => (status, types::PAYLOAD_TOO_LARGE, "Payload too large"),
        StatusCode::SERVICE_UNAVAILABLE => (status, types::UNAVAILABLE, "Unavailable"),
        status if status.is_server_error() => (status, types::INTERNAL, "Internal error"),
        // 400, 415, 422 and the rest: the request is malformed.
        _ => (
            StatusCode::BAD_REQUEST,
            types::INVALID_REQUEST,
            "Invalid request",
        ),
    };
    let detail = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_string()
    } else {
        text
    };
    let mut problem = Problem::new(status, problem_type, title, detail).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}

/// A server that serves HTTPS itself tells browsers to use nothing else
/// (`Strict-Transport-Security`, a year); behind a proxy, the proxy does.
async fn strict_transport_security(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    if state.tls {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

async fn not_found(request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if console::wants_page(&parts) {
        return console::not_found_page();
    }
    Problem::not_found("no such route")
        .with_hint("the API lives under /v1/; see /v1/openapi.json")
        .into_response()
}

async fn method_not_allowed(request: Request) -> Response {
    let problem = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        types::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "this route does not support that method; see /v1/openapi.json",
    );
    if request.uri().path().starts_with("/v1/") {
        problem.into_response()
    } else {
        // A console path: the console's security headers, as on its pages.
        console::with_security_headers(problem.into_response())
    }
}
