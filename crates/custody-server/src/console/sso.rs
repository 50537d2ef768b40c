//! Console sign-in with OpenID Connect: the authorization code flow with
//! PKCE ([`crate::oidc`]), ending in a console session
//! ([`super::session::start_session`]).
//!
//! `GET /oidc/sign-in` begins: it keeps what the return needs (state, nonce,
//! PKCE verifier, the path to go back to) in `console_logins`, keyed by the
//! SHA-256 of a random value set in a `HttpOnly`, `SameSite=Lax` cookie, and
//! sends the browser to the issuer. `GET /oidc/callback` (the path of
//! `[oidc] redirect_url`) takes that row (single use: whichever request
//! deletes it finishes the sign-in, on any node), clears the cookie, and
//! finishes: the `state` must be the one this browser began with, the code
//! is exchanged with the verifier, and the ID token's signature, issuer,
//! audience, times and nonce are checked. A failure shows the sign-in page
//! with the reason; nothing is signed in.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use custody_core::Sha256Hash;
use custody_store::ConsoleSessionOperation;
use serde::Deserialize;

use super::session::{
    build_cookie, cookie_value, random_hex, safe_return_to, secure, sign_in_form, start_session,
};
use crate::oidc::{PendingLogin, LOGIN_TTL_SECONDS};
use crate::problem::Problem;
use crate::AppState;

/// The cookie that binds a sign-in in progress to its browser.
pub const LOGIN_COOKIE: &str = "custody_oidc_login";
/// [`LOGIN_COOKIE`] when cookies are `Secure`.
pub const SECURE_LOGIN_COOKIE: &str = "__Host-custody_oidc_login";

fn login_cookie_name(state: &AppState) -> &'static str {
    if secure(state) {
        SECURE_LOGIN_COOKIE
    } else {
        LOGIN_COOKIE
    }
}

/// `GET /oidc/sign-in`.
#[derive(Debug, Default, Deserialize)]
pub struct BeginQuery {
    return_to: Option<String>,
    /// Passed to the issuer: who is expected to sign in.
    login_hint: Option<String>,
}

/// Sends the browser to the issuer to sign in.
pub async fn begin(State(state): State<AppState>, Query(query): Query<BeginQuery>) -> Response {
    let return_to = safe_return_to(query.return_to.as_deref()).to_string();
    let Some(oidc) = state.oidc.clone() else {
        return sign_in_form(
            &state,
            StatusCode::NOT_FOUND,
            Some(&return_to),
            Some("Single sign-on is not configured on this server (no [oidc] section); sign in with a Custody token."),
        );
    };
    let hint = query.login_hint.as_deref().filter(|hint| !hint.is_empty());
    let (url, pending) = match oidc.begin_login(&return_to, hint).await {
        Ok(begun) => begun,
        Err(problem) => return failed(&state, &return_to, &problem),
    };
    let key = match random_hex() {
        Ok(key) => key,
        Err(problem) => return problem.into_response(),
    };
    let now = state.clock.now();
    let pending_json = match serde_json::to_string(&pending) {
        Ok(json) => json,
        Err(error) => {
            return Problem::invalid(format!("the sign-in cannot be kept: {error}")).into_response()
        }
    };
    match state
        .store
        .console_session_write(ConsoleSessionOperation::BeginLogin {
            login_sha256: Sha256Hash::of(key.as_bytes()),
            pending: pending_json,
            expires_at: now.plus_seconds(LOGIN_TTL_SECONDS),
            now,
        })
        .await
    {
        Ok(1) => {}
        Ok(_) => {
            tracing::warn!(
                limit = custody_store::MAX_CONSOLE_LOGINS,
                "a browser sign-in was refused: too many are in progress"
            );
            return sign_in_form(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&return_to),
                Some(
                    "Too many sign-ins are in progress on this server; try again in a few minutes.",
                ),
            );
        }
        Err(error) => return Problem::from(error).into_response(),
    }
    let ttl = u64::try_from(LOGIN_TTL_SECONDS).unwrap_or(600);
    let mut response = Redirect::to(&url).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        build_cookie(&state, login_cookie_name(&state), &key, Some(ttl)),
    );
    response
}

/// What the issuer sends the browser back with.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// The issuer's error code when it did not sign the person in.
    error: Option<String>,
}

/// Finishes the sign-in the issuer sends the browser back from.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let mut response = finish(&state, &headers, query).await;
    // Single use, whatever the outcome: the cookie goes with the row.
    response.headers_mut().append(
        header::SET_COOKIE,
        build_cookie(&state, login_cookie_name(&state), "", Some(0)),
    );
    response
}

async fn finish(state: &AppState, headers: &HeaderMap, query: CallbackQuery) -> Response {
    let Some(oidc) = state.oidc.clone() else {
        return sign_in_form(
            state,
            StatusCode::NOT_FOUND,
            None,
            Some("Single sign-on is not configured on this server (no [oidc] section)."),
        );
    };
    let not_begun = || {
        sign_in_form(
            state,
            StatusCode::BAD_REQUEST,
            None,
            Some("This sign-in did not begin in this browser, was already used, or took longer than ten minutes. Nothing was signed in; start again."),
        )
    };
    let Some(key) = cookie_value(headers, login_cookie_name(state)).filter(|key| key.len() == 64)
    else {
        return not_begun();
    };
    let login_sha256 = Sha256Hash::of(key.as_bytes());
    let stored = match state.store.console_login(&login_sha256).await {
        Ok(stored) => stored,
        Err(error) => return Problem::from(error).into_response(),
    };
    let Some((pending_json, expires_at)) = stored else {
        return not_begun();
    };
    // Whichever request deletes the row finishes the sign-in: a replayed
    // callback (or a second tab) finds nothing to take.
    match state
        .store
        .console_session_write(ConsoleSessionOperation::EndLogin { login_sha256 })
        .await
    {
        Ok(1) => {}
        Ok(_) => return not_begun(),
        Err(error) => return Problem::from(error).into_response(),
    }
    if state.clock.now() >= expires_at {
        return not_begun();
    }
    let Ok(pending) = serde_json::from_str::<PendingLogin>(&pending_json) else {
        return not_begun();
    };
    let return_to = pending.return_to.clone();
    if let Some(error) = query.error {
        // The issuer's error code only, in letters and `_`: its description
        // is the issuer's text, not ours to show.
        let shown: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return sign_in_form(
            state,
            StatusCode::UNAUTHORIZED,
            Some(&return_to),
            Some(&format!(
                "The identity provider did not sign you in ({shown}). Nothing was signed in."
            )),
        );
    }
    let code = query.code.unwrap_or_default();
    let returned_state = query.state.unwrap_or_default();
    match oidc.finish_login(pending, &code, &returned_state).await {
        Ok(signed_in) => match start_session(
            state,
            signed_in.principal.id.clone(),
            signed_in.auth,
            Some(&signed_in.return_to),
            signed_in.expires_at,
        )
        .await
        {
            Ok(response) => response,
            Err(problem) => problem.into_response(),
        },
        Err(problem) => failed(state, &return_to, &problem),
    }
}

/// The sign-in page with a refused or failed sign-in's reason.
fn failed(state: &AppState, return_to: &str, problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut note = format!("Single sign-on failed: {}", problem.detail);
    if let Some(hint) = &problem.hint {
        note.push_str(&format!(" ({hint})"));
    }
    note.push_str(". Nothing was signed in.");
    sign_in_form(state, status, Some(return_to), Some(&note))
}
