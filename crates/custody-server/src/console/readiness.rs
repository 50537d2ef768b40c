//! The readiness dashboard (`/readiness`): the readiness report of
//! `custody verify --report html` (crates/custody-report: the same verdict,
//! tables and inline SVG charts), computed from the audit of the server's
//! store and its evidence blobs. The audit reads the whole log, so its
//! result is cached for [`MAX_AGE_SECONDS`]; the page says when it was made.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use custody_core::Timestamp;
use maud::{html, PreEscaped};
use tokio::sync::Mutex;

use super::layout::{self, Nav, Page};
use super::session::{check_csrf, CsrfForm, Session};
use crate::problem::Problem;
use crate::AppState;

/// How old a cached report may be before a visit recomputes it.
pub const MAX_AGE_SECONDS: i64 = 300;

/// The cached report: when it was made, its verdict and its HTML.
#[derive(Default)]
pub struct Cache {
    report: Mutex<Option<Cached>>,
}

struct Cached {
    made_at: Timestamp,
    ready: bool,
    body: Arc<String>,
}

async fn compute(state: &AppState) -> Result<Cached, Problem> {
    let now = state.clock.now();
    let mut audit = state.store.audit(state.log.verifier_keys(), None).await?;
    custody_verify::audit_evidence(&mut audit, state.evidence.blobs.as_ref())
        .await
        .map_err(|error| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                crate::problem::types::INTERNAL,
                "Internal error",
                format!("the evidence store could not be audited: {error}"),
            )
        })?;
    let report = custody_report::build(custody_report::Input {
        subject: "this deployment",
        generated_at: now,
        verify: Some(&audit),
        drill: None,
    });
    Ok(Cached {
        made_at: now,
        ready: audit.ok && report.verdict.ready,
        body: Arc::new(custody_report::render_html_body(&report)),
    })
}

/// `GET /readiness`.
pub async fn readiness(State(state): State<AppState>, session: Session) -> Response {
    let now = state.clock.now();
    let mut cache = state.console_cache.readiness.report.lock().await;
    let stale = cache.as_ref().is_none_or(|cached| {
        now.as_micros() - cached.made_at.as_micros() > MAX_AGE_SECONDS * 1_000_000
    });
    if stale {
        match compute(&state).await {
            Ok(fresh) => *cache = Some(fresh),
            Err(problem) => return problem.into_response(),
        }
    }
    let Some(cached) = cache.as_ref() else {
        return Problem::invalid("no report").into_response();
    };
    let body = html! {
        h1 { "Readiness" }
        p.notice {
            "Computed at " time #made-at datetime=(cached.made_at.to_string()) { (cached.made_at.to_string()) } " from the audit "
            code { "custody verify" } " makes, over this server's store and evidence; "
            "it is recomputed when older than " (MAX_AGE_SECONDS / 60) " minutes. "
            "The offline check against checkpoints held outside the database is "
            code { "custody verify --report html" } "."
        }
        form method="post" action="/readiness" {
            input type="hidden" name="csrf" value=(session.csrf);
            button.secondary type="submit" { "Recompute now" }
        }
        p #readiness-verdict data-ready=(cached.ready) { @if cached.ready { span.ok { "Ready" } } @else { span.bad { "Not ready" } } }
        div.readiness {
            // The report's renderer escapes every string from outside
            // (custody_core::text::escape, then HTML escaping).
            (PreEscaped(cached.body.as_str()))
        }
    };
    layout::respond(
        StatusCode::OK,
        Page {
            title: "Readiness",
            session: Some(&session),
            current: Some(Nav::Readiness),
            body,
        },
    )
}

/// `POST /readiness`: recomputes the report now.
pub async fn recompute(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = check_csrf(&session, &form.csrf, &headers) {
        return refused;
    }
    // One audit at a time (the cache's lock is held while it runs, as the
    // page's own refresh does), and none when the report is fresher than
    // RECOMPUTE_AFTER_SECONDS: a full audit reads the whole log, so repeated
    // clicks, or a script, must not queue up audits behind each other.
    let now = state.clock.now();
    let mut cache = state.console_cache.readiness.report.lock().await;
    let fresh_enough = cache.as_ref().is_some_and(|cached| {
        now.as_micros() - cached.made_at.as_micros() < RECOMPUTE_AFTER_SECONDS * 1_000_000
    });
    if !fresh_enough {
        match compute(&state).await {
            Ok(fresh) => *cache = Some(fresh),
            Err(problem) => return problem.into_response(),
        }
    }
    Redirect::to("/readiness").into_response()
}

/// *Recompute now* recomputes a report at most this old only once: a
/// second click within it shows the report just made.
pub const RECOMPUTE_AFTER_SECONDS: i64 = 30;
