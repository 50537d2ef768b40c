//! The web console, served at `/` beside `/v1/` (`docs/console.md`).
//!
//! Pages are rendered on the server with maud; reading works without
//! JavaScript, and the one script (`/static/console.js`) only enhances
//! (the in-browser proof check). Every action goes through the code path
//! the API's handler takes, with the actor built from the session
//! (`via: web`), so policy, separation of duties and idempotency apply
//! unchanged; a refusal shows its rule, detail and hint.
//!
//! Architecture invariant: nothing here talks HTTP to the server itself,
//! nothing is loaded from another origin, and no page carries inline script
//! or style (the CSP forbids both).

pub mod actions;
pub mod audit;
pub mod case;
pub mod escape;
pub mod inbox;
pub mod layout;
pub mod readiness;
pub mod search;
pub mod session;
pub mod sso;

pub use session::start_session;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

/// The console's Content-Security-Policy: scripts and styles only from this
/// origin (no inline script or style anywhere), images from here or `data:`
/// (the readiness charts are inline SVG, which needs neither), forms only to
/// this origin, and never inside a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The policy of an evidence preview: nothing runs, nothing loads, and the
/// document is sandboxed even when opened on its own.
pub const PREVIEW_CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; img-src 'self' data:; sandbox";

const CONSOLE_JS: &str = include_str!("static/console.js");
const CONSOLE_CSS: &str = include_str!("static/console.css");

/// What the console caches between requests.
#[derive(Default)]
pub struct ConsoleCache {
    /// The readiness report.
    pub readiness: readiness::Cache,
    /// The active cases' projections, for the inbox.
    pub views: inbox::ViewCache,
}

/// The console's routes; [`crate::router`] merges them beside the API.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(inbox::inbox))
        .route(
            "/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/sign-out", post(session::sign_out))
        .route("/oidc/sign-in", get(sso::begin))
        .route(crate::oidc::CALLBACK_PATH, get(sso::callback))
        .route(
            "/request",
            get(actions::request_page).post(actions::request),
        )
        .route("/cases", get(search::search))
        .route(
            "/readiness",
            get(readiness::readiness).post(readiness::recompute),
        )
        .route("/audit", get(audit::audit))
        .route("/audit/export", get(audit::export))
        .route("/audit/proof", get(audit::proof))
        .route("/cases/{case_id}", get(case::case_page))
        .route(
            "/cases/{case_id}/evidence/{sha256}",
            get(case::evidence_file),
        )
        .route("/cases/{case_id}/{action}", post(actions::act))
        .route("/static/console.js", get(console_js))
        .route("/static/console.css", get(console_css))
        .layer(middleware::from_fn(security_headers))
}

/// Whether a request the API's routes do not know is the console's to
/// answer (with an HTML page): a browser's request outside `/v1/`.
pub fn wants_page(request: &axum::http::request::Parts) -> bool {
    !request.uri.path().starts_with("/v1/")
        && request
            .headers
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

/// The 404 page of a path nothing serves, with the security headers.
pub fn not_found_page() -> Response {
    let mut response = layout::not_found(None, "Nothing is served at this address.");
    add_security_headers(&mut response, false);
    response
}

async fn console_js() -> Response {
    asset(CONSOLE_JS, "text/javascript; charset=utf-8")
}

async fn console_css() -> Response {
    asset(CONSOLE_CSS, "text/css; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `response` with the console's security headers (an answer made outside
/// the console's routes for one of its paths).
pub fn with_security_headers(mut response: Response) -> Response {
    add_security_headers(&mut response, false);
    response
}

/// Adds the security headers to every console response.
async fn security_headers(request: Request, next: Next) -> Response {
    let asset = request.uri().path().starts_with("/static/");
    let mut response = next.run(request).await;
    add_security_headers(&mut response, asset);
    response
}

fn add_security_headers(response: &mut Response, asset: bool) {
    let headers = response.headers_mut();
    // A route with a stricter policy of its own (the evidence preview) keeps it.
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: under `no-referrer` a browser sends
    // `Origin: null` with the console's own form posts, which the CSRF
    // check (rightly) refuses. Other sites still get no referrer.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !asset {
        // Pages show who is signed in and what they may see: no cache keeps them.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
