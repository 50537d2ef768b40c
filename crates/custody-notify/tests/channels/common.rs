//! Shared pieces of the real-server tests: a sample notification and a real
//! HTTP receiver (axum on 127.0.0.1:0). Unique names and free ports come
//! from `support`, with the SMTP and NATS servers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use custody_notify::{
    verify_webhook_signature, ActorKind, Notification, NotificationActor, SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
};
use serde_json::json;

pub use crate::support::{free_port, unique};

/// The secret the test receiver checks signatures with.
pub const SECRET: &str = "test-webhook-secret-0123456789";

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A realistic notification with a fresh delivery ID.
pub fn notification() -> Notification {
    Notification {
        delivery_id: unique("dlv"),
        case_id: "AC-0190f0c1d2e37b4a8c9d0e1f2a3b4c5d".to_string(),
        event_id: "ev-0190f0c1d2e37b4a".to_string(),
        kind: "approval_needed".to_string(),
        title: "Approval needed: admin on billing-db".to_string(),
        text: "Bob asks for admin on billing-db for 4 hours.\nReason: incident INC-42.".to_string(),
        case_url: Some(
            "https://custody.example/cases/AC-0190f0c1d2e37b4a8c9d0e1f2a3b4c5d".to_string(),
        ),
        occurred_at: "2026-03-04T05:06:07Z".to_string(),
        actor: NotificationActor {
            principal: "vendor-ops-7".to_string(),
            kind: ActorKind::Vendor,
            org: Some("acme-support".to_string()),
            on_behalf_of: Some("it-ops".to_string()),
            via: "api".to_string(),
        },
        data: json!({"approvers": ["carol", "dave"], "risk": "high"}),
    }
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// The path it was posted to.
    pub path: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its raw body.
    pub body: Bytes,
    /// Whether `verify_webhook_signature` accepted it.
    pub signature_valid: bool,
}

/// What the receiver's handlers share.
#[derive(Default)]
pub struct ReceiverState {
    /// How many more `/hook` requests to answer with 503.
    pub fail_remaining: AtomicUsize,
    /// Every request to `/hook` and `/chat/...`.
    pub received: Mutex<Vec<Received>>,
    /// Requests that reached `/target` (only a followed redirect would).
    pub target_hits: AtomicUsize,
}

/// A real HTTP server on 127.0.0.1 with these routes:
///
/// - `POST /hook`: verifies the signature; answers 503 (with `Retry-After:
///   7`) while `fail_remaining` > 0, then 401 for a bad signature or 202.
/// - `POST /bad`: 400.
/// - `POST /slow`: answers 200 after 3 seconds.
/// - `POST /redirect`: 307 to `/target`.
/// - `ANY /target`: counts the hit, 200.
/// - `POST /chat/{token}`: records, 200 `ok` (Slack's answer).
/// - `POST /gone/{token}`: 404 `no_service`.
pub struct Receiver {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The shared state, for assertions.
    pub state: Arc<ReceiverState>,
}

impl Receiver {
    /// Starts the server on the current runtime.
    pub async fn start() -> Receiver {
        let state = Arc::new(ReceiverState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let base = format!("http://{address}");
        let redirect_to = format!("{base}/target");
        let app = Router::new()
            .route("/hook", post(hook))
            .route(
                "/bad",
                post(|| async { (StatusCode::BAD_REQUEST, "unknown case") }),
            )
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    "late"
                }),
            )
            .route(
                "/redirect",
                post(move || {
                    let location = redirect_to.clone();
                    async move {
                        (
                            StatusCode::TEMPORARY_REDIRECT,
                            [(axum::http::header::LOCATION, location)],
                        )
                    }
                }),
            )
            .route(
                "/redirect-c1",
                post(|| async {
                    // A Location and a body with a C1 CSI (U+009B), a bidi
                    // override and a zero-width space.
                    let mut response =
                        (StatusCode::FOUND, "moved\u{9b}2J \u{202e}kcah").into_response();
                    response.headers_mut().insert(
                        axum::http::header::LOCATION,
                        axum::http::HeaderValue::from_bytes(
                            "/elsewhere\u{9b}31m\u{202e}\u{200b}".as_bytes(),
                        )
                        .unwrap(),
                    );
                    response
                }),
            )
            .route("/target", any(target))
            .route("/chat/{token}", post(chat))
            .route(
                "/gone/{token}",
                post(|| async { (StatusCode::NOT_FOUND, "no_service") }),
            )
            .with_state(state.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { base, state }
    }

    /// A copy of everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }
}

fn check_signature(headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    verify_webhook_signature(
        SECRET.as_bytes(),
        &header(TIMESTAMP_HEADER),
        body,
        &header(SIGNATURE_HEADER),
        now_unix(),
        300,
    )
    .is_ok()
}

async fn hook(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature_valid = check_signature(&headers, &body);
    state.received.lock().unwrap().push(Received {
        path: "/hook".to_string(),
        headers,
        body,
        signature_valid,
    });
    let failing = state
        .fail_remaining
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    if failing {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "7")],
            "overloaded, try later",
        )
            .into_response()
    } else if !signature_valid {
        (StatusCode::UNAUTHORIZED, "bad signature").into_response()
    } else {
        StatusCode::ACCEPTED.into_response()
    }
}

async fn target(State(state): State<Arc<ReceiverState>>) -> &'static str {
    state.target_hits.fetch_add(1, Ordering::SeqCst);
    "followed"
}

async fn chat(
    State(state): State<Arc<ReceiverState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    state.received.lock().unwrap().push(Received {
        path: format!("/chat/{token}"),
        headers,
        body,
        signature_valid: false,
    });
    "ok"
}
