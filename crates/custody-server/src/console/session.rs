//! Console sessions: the cookie, the session extractor, CSRF checks, and
//! sign-in and sign-out with a Custody token.
//!
//! The cookie holds a random 256-bit session ID; the database holds only
//! its SHA-256 (`console_sessions`), so several nodes on one PostgreSQL
//! share sessions and a copy of the database signs no one in. A session
//! ends at sign-out (its row is deleted), after the idle timeout, after its
//! absolute lifetime, or when the token it was opened with is revoked or
//! expires.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use custody_core::model::{Actor, AuthContext, Principal, PrincipalId, Via};
use custody_core::{Sha256Hash, Timestamp};
use custody_store::{ConsoleSession, ConsoleSessionOperation};
use maud::html;
use serde::Deserialize;

use super::escape::{attr, text};
use super::layout::{self, Page};
use crate::extract::{MAX_TOKEN_LENGTH, TOKEN_PREFIX};
use crate::problem::Problem;
use crate::AppState;

/// The session cookie's name over plain HTTP.
pub const COOKIE: &str = "custody_session";
/// The session cookie's name when cookies are `Secure` (`__Host-` binds it
/// to this host, path `/`, HTTPS).
pub const SECURE_COOKIE: &str = "__Host-custody_session";
/// The sign-in form's own CSRF cookie (double submit: no session exists yet).
pub const SIGN_IN_COOKIE: &str = "custody_sign_in";
/// The sign-in form's CSRF cookie when cookies are `Secure`.
pub const SECURE_SIGN_IN_COOKIE: &str = "__Host-custody_sign_in";
/// A session's `last_seen_at` is written at most this often (or a quarter
/// of the idle timeout, when that is shorter): each write is a commit.
pub const TOUCH_EVERY_SECONDS: i64 = 60;

/// A signed-in principal, with the actor every event it writes from the
/// console carries (`via: web`, the session's authentication).
#[derive(Clone, Debug)]
pub struct Session {
    /// The principal, as stored now (its current groups).
    pub principal: Principal,
    /// The actor of the console's writes.
    pub actor: Actor,
    /// The session's CSRF token: every form carries it.
    pub csrf: String,
    /// SHA-256 of the session ID.
    pub session_sha256: Sha256Hash,
}

impl Session {
    /// The caller of the API's code paths: the same principal and actor
    /// an API request would carry, with `via: web`.
    pub fn caller(&self) -> crate::extract::Caller {
        crate::extract::Caller {
            principal: self.principal.clone(),
            actor: self.actor.clone(),
        }
    }

    /// Whether the principal is an admin.
    pub fn is_admin(&self) -> bool {
        self.principal.in_group(crate::ADMINS_GROUP)
    }

    /// Whether the principal may use the auditor view.
    pub fn is_auditor(&self) -> bool {
        self.is_admin() || self.principal.in_group(crate::AUDITORS_GROUP)
    }
}

/// The actor of a console write, built as [`crate::extract::Caller`] builds
/// an API caller's, with `via: web`.
pub fn actor_of(principal: &Principal, auth: AuthContext) -> Actor {
    Actor {
        principal: principal.id.clone(),
        kind: principal.kind,
        org: principal.org.clone(),
        groups: principal.groups.clone(),
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Web,
        auth,
    }
}

/// Opens a session for `principal`, authenticated by `auth`, sets its
/// cookie and redirects to `return_to` (a path of this site; anything else
/// goes to the inbox). Sign-in with a token calls it; so does the OIDC
/// callback, with `ends_by` the ID token's expiry: the session lasts
/// `[console] lifetime_seconds`, or until `ends_by` when that is sooner.
pub async fn start_session(
    state: &AppState,
    principal: PrincipalId,
    auth: AuthContext,
    return_to: Option<&str>,
    ends_by: Option<Timestamp>,
) -> Result<Response, Problem> {
    let now = state.clock.now();
    let settings = &state.console;
    // Expired sessions are purged whenever someone signs in: often enough
    // that the table holds only live sessions and a few idle ones.
    state
        .store
        .console_session_write(ConsoleSessionOperation::Purge {
            now,
            idle_before: now.plus_seconds(-idle_seconds(state)),
        })
        .await?;
    let session_id = random_hex()?;
    let csrf_secret = random_hex()?;
    let mut expires_at = now.plus_unsigned_seconds(settings.lifetime_seconds);
    if let Some(ends_by) = ends_by {
        expires_at = expires_at.min(ends_by);
    }
    if expires_at <= now {
        return Err(Problem::unauthorized(
            "the sign-in has already expired (the identity provider's token is past its end)",
        )
        .with_hint(
            "sign in again; if this repeats, check the server's and the provider's clocks",
        ));
    }
    let max_age = u64::try_from((expires_at.as_micros() - now.as_micros()) / 1_000_000)
        .unwrap_or(0)
        .max(1);
    state
        .store
        .console_session_write(ConsoleSessionOperation::Create(ConsoleSession {
            session_sha256: Sha256Hash::of(session_id.as_bytes()),
            principal,
            auth,
            csrf_secret,
            created_at: now,
            last_seen_at: now,
            expires_at,
        }))
        .await?;
    let cookie = session_cookie(state, &session_id, Some(max_age));
    let mut response = Redirect::to(safe_return_to(return_to)).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
        .headers_mut()
        .append(header::SET_COOKIE, sign_in_cookie(state, "", Some(0)));
    Ok(response)
}

/// A path of this site to return to after sign-in, or `/`: never another
/// site (`//evil`, `/\evil`, `https://...`).
pub fn safe_return_to(return_to: Option<&str>) -> &str {
    match return_to {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && path.len() <= 2048
                && path.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            path
        }
        _ => "/",
    }
}

fn idle_seconds(state: &AppState) -> i64 {
    i64::try_from(state.console.idle_timeout_seconds).unwrap_or(i64::MAX / 2)
}

/// Whether cookies are `Secure` (and `__Host-` named): `[console]
/// secure_cookies` behind a TLS-terminating proxy, or this server serving
/// TLS itself.
pub(super) fn secure(state: &AppState) -> bool {
    state.console.secure_cookies || state.tls
}

fn cookie_name(state: &AppState) -> &'static str {
    if secure(state) {
        SECURE_COOKIE
    } else {
        COOKIE
    }
}

fn sign_in_cookie_name(state: &AppState) -> &'static str {
    if secure(state) {
        SECURE_SIGN_IN_COOKIE
    } else {
        SIGN_IN_COOKIE
    }
}

pub(super) fn build_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    max_age: Option<u64>,
) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(max_age) = max_age {
        cookie.push_str(&format!("; Max-Age={max_age}"));
    }
    if secure(state) {
        cookie.push_str("; Secure");
    }
    // Safe: the name is a constant and the value is hex or empty.
    HeaderValue::from_str(&cookie).expect("a cookie of ASCII letters, digits and `=; -`")
}

fn session_cookie(state: &AppState, value: &str, max_age: Option<u64>) -> HeaderValue {
    build_cookie(state, cookie_name(state), value, max_age)
}

fn sign_in_cookie(state: &AppState, value: &str, max_age: Option<u64>) -> HeaderValue {
    build_cookie(state, sign_in_cookie_name(state), value, max_age)
}

/// 32 random bytes as hex.
pub(super) fn random_hex() -> Result<String, Problem> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| {
        tracing::error!(%error, "no randomness for a console session");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            crate::problem::types::UNAVAILABLE,
            "Unavailable",
            "the operating system gave no randomness; no session was opened",
        )
    })?;
    Ok(custody_core::hex::encode(&bytes))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Compares two secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a state-changing request comes from this site: `Sec-Fetch-Site`,
/// when the browser sends it, must be `same-origin`, and `Origin`, when
/// sent, must name the host the request was sent to. A client that sends
/// neither (not a browser) is judged by the CSRF token alone.
pub fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        if site.as_bytes() != b"same-origin" {
            return Err(format!(
                "the browser says the form was sent from another site (Sec-Fetch-Site: {})",
                String::from_utf8_lossy(site.as_bytes())
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .unwrap_or("");
        let matches = !host.is_empty()
            && (origin == format!("http://{host}") || origin == format!("https://{host}"));
        if !matches {
            return Err(format!(
                "the form was sent from {}, not from this site",
                attr(origin)
            ));
        }
    }
    Ok(())
}

/// Checks a form's CSRF token against the session's and the request's
/// origin: `None` when they pass, or the 403 page (nothing is changed).
pub fn check_csrf(session: &Session, form_token: &str, headers: &HeaderMap) -> Option<Response> {
    if let Err(reason) = same_origin(headers) {
        return Some(forbidden_page(Some(session), &reason));
    }
    if !constant_time_eq(session.csrf.as_bytes(), form_token.as_bytes()) {
        return Some(forbidden_page(
            Some(session),
            "the form's CSRF token is missing or does not match this session",
        ));
    }
    None
}

/// The 403 page: the request was refused and nothing was changed.
pub fn forbidden_page(session: Option<&Session>, reason: &str) -> Response {
    let body = html! {
        h1 { "Refused" }
        p role="alert" { "This request was refused and nothing was changed: " (text(reason)) "." }
        p { "Reload the page you came from and try again. If this keeps happening, sign out and sign in again." }
    };
    layout::respond(
        StatusCode::FORBIDDEN,
        Page {
            title: "Refused",
            session,
            current: None,
            body,
        },
    )
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_sign_in = |expired: bool| {
            // After signing in the browser GETs `return_to`: a form's
            // target (POST only) is sent back to its case page instead.
            let path = if parts.method == axum::http::Method::GET {
                parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| "/".to_string(), |path| path.as_str().to_string())
            } else {
                let path = parts.uri.path();
                match path
                    .strip_prefix("/cases/")
                    .and_then(|rest| rest.split_once('/'))
                {
                    Some((case, _action)) => format!("/cases/{case}"),
                    None => "/".to_string(),
                }
            };
            let path = path.as_str();
            let mut location = format!("/sign-in?return_to={}", percent_encode(path));
            if expired {
                location.push_str("&expired=1");
            }
            let mut response = Redirect::to(&location).into_response();
            if expired {
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, session_cookie(state, "", Some(0)));
            }
            response
        };
        let Some(session_id) = cookie_value(&parts.headers, cookie_name(state)) else {
            return Err(to_sign_in(false));
        };
        if session_id.len() != 64 {
            return Err(to_sign_in(true));
        }
        let session_sha256 = Sha256Hash::of(session_id.as_bytes());
        let stored = state
            .store
            .console_session(&session_sha256)
            .await
            .map_err(|error| Problem::from(error).into_response())?;
        let Some(stored) = stored else {
            return Err(to_sign_in(true));
        };
        let now = state.clock.now();
        let idle_limit = stored.last_seen_at.plus_seconds(idle_seconds(state));
        let live = now < stored.expires_at
            && now < idle_limit
            && auth_still_valid(state, &stored.auth, now).await;
        let principal = if live {
            state
                .store
                .principal(&stored.principal)
                .await
                .map_err(|error| Problem::from(error).into_response())?
        } else {
            None
        };
        let Some(principal) = principal else {
            // Over: the row goes now rather than at the next purge.
            let _ = state
                .store
                .console_session_write(ConsoleSessionOperation::Delete { session_sha256 })
                .await;
            return Err(to_sign_in(true));
        };
        // Often enough that an active session never looks idle: at most a
        // quarter of the idle timeout between writes.
        let touch_every = TOUCH_EVERY_SECONDS.min(idle_seconds(state) / 4).max(1);
        if now.as_micros() - stored.last_seen_at.as_micros() >= touch_every * 1_000_000 {
            state
                .store
                .console_session_write(ConsoleSessionOperation::Touch {
                    session_sha256,
                    at: now,
                })
                .await
                .map_err(|error| Problem::from(error).into_response())?;
        }
        Ok(Session {
            actor: actor_of(&principal, stored.auth),
            principal,
            csrf: stored.csrf_secret,
            session_sha256,
        })
    }
}

/// A session opened with a token ends when the token is revoked or expires.
async fn auth_still_valid(state: &AppState, auth: &AuthContext, now: Timestamp) -> bool {
    match auth {
        AuthContext::Token { token_id } => match state.store.token(token_id).await {
            Ok(Some(token)) => {
                token.revoked_at.is_none()
                    && token
                        .expires_at
                        .as_deref()
                        .map(|expires| Timestamp::parse(expires).is_ok_and(|expires| now < expires))
                        .unwrap_or(true)
            }
            _ => false,
        },
        _ => true,
    }
}

/// Percent-encodes everything but unreserved characters and `/`.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `GET /sign-in`.
#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    return_to: Option<String>,
    expired: Option<String>,
}

/// The sign-in form (`POST /sign-in`).
#[derive(Debug, Default, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    return_to: Option<String>,
}

/// The form a token holder signs in with.
pub async fn sign_in_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<SignInQuery>,
) -> Response {
    let note = query.expired.is_some().then_some(
        "Your session has ended (signed out, idle too long, or too old). Sign in again.",
    );
    sign_in_form_reusing(
        &state,
        StatusCode::OK,
        query.return_to.as_deref(),
        note,
        cookie_value(&headers, sign_in_cookie_name(&state)),
    )
}

pub(super) fn sign_in_form(
    state: &AppState,
    status: StatusCode,
    return_to: Option<&str>,
    note: Option<&str>,
) -> Response {
    sign_in_form_reusing(state, status, return_to, note, None)
}

/// [`sign_in_form`] keeping the browser's sign-in CSRF cookie when it has
/// a well-formed one, so that another tab's sign-in form stays valid.
fn sign_in_form_reusing(
    state: &AppState,
    status: StatusCode,
    return_to: Option<&str>,
    note: Option<&str>,
    existing: Option<&str>,
) -> Response {
    let reused = existing
        .filter(|value| value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string);
    let csrf = match reused.map_or_else(random_hex, Ok) {
        Ok(csrf) => csrf,
        Err(problem) => return problem.into_response(),
    };
    let return_to = safe_return_to(return_to).to_string();
    let single_sign_on = state
        .oidc
        .is_some()
        .then(|| format!("/oidc/sign-in?return_to={}", percent_encode(&return_to)));
    let body = html! {
        h1 { "Sign in" }
        @if let Some(note) = note {
            p.notice role="alert" { (note) }
        }
        @if let Some(href) = &single_sign_on {
            p { a #sso .button href=(href) { "Sign in with single sign-on" } }
            p.help { "Or with a Custody token:" }
        }
        form method="post" action="/sign-in" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="return_to" value=(attr(&return_to));
            p {
                label for="token" { "Custody token" }
                input #token type="password" name="token" required autocomplete="off"
                    spellcheck="false" aria-describedby="token-help" maxlength=(MAX_TOKEN_LENGTH);
                span #token-help .help { "A token from " code { "custody token create" } ", starting with " code { (TOKEN_PREFIX) } "." }
            }
            p { button type="submit" { "Sign in" } }
        }
    };
    let mut response = layout::respond(
        status,
        Page {
            title: "Sign in",
            session: None,
            current: None,
            body,
        },
    );
    response
        .headers_mut()
        .append(header::SET_COOKIE, sign_in_cookie(state, &csrf, Some(3600)));
    response
}

/// Signs in with a Custody token, authenticated exactly as the API
/// authenticates a bearer token ([`custody_store::Store::authenticate`]).
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let expected = cookie_value(&headers, sign_in_cookie_name(&state)).unwrap_or("");
    if let Err(reason) = same_origin(&headers) {
        return forbidden_page(None, &reason);
    }
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), form.csrf.as_bytes()) {
        return forbidden_page(
            None,
            "the sign-in form's CSRF token is missing or does not match its cookie",
        );
    }
    let token = form.token.trim();
    let owner = if token.starts_with(TOKEN_PREFIX) && token.len() <= MAX_TOKEN_LENGTH {
        match state.store.authenticate(token).await {
            Ok(owner) => owner,
            Err(error) => return Problem::from(error).into_response(),
        }
    } else {
        None
    };
    let Some(owner) = owner else {
        return sign_in_form(
            &state,
            StatusCode::UNAUTHORIZED,
            form.return_to.as_deref(),
            Some("That token is unknown, expired or revoked, or is not a Custody token (they start with cust_)."),
        );
    };
    let auth = AuthContext::Token {
        token_id: owner.token_id,
    };
    match start_session(
        &state,
        owner.principal.id,
        auth,
        form.return_to.as_deref(),
        None,
    )
    .await
    {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

/// The sign-out form (`POST /sign-out`).
#[derive(Debug, Default, Deserialize)]
pub struct CsrfForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
}

/// Signs out: the session's row is deleted, so the cookie opens nothing
/// any more, on any node.
pub async fn sign_out(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = check_csrf(&session, &form.csrf, &headers) {
        return refused;
    }
    if let Err(error) = state
        .store
        .console_session_write(ConsoleSessionOperation::Delete {
            session_sha256: session.session_sha256,
        })
        .await
    {
        return Problem::from(error).into_response();
    }
    let mut response = Redirect::to("/sign-in").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session_cookie(&state, "", Some(0)));
    response
}
