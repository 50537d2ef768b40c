//! The auditor view (`/audit`): read-only, for principals in the
//! `auditors` group and admins. Export downloads in the formats of
//! `GET /v1/export` (one page at a time, through its handler), and each
//! case's offline proof bundle (`GET /v1/cases/{id}/proof`).

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use custody_api::export::MAX_EXPORT_PAGE;
use custody_api::ExportQuery;
use maud::html;
use serde::Deserialize;

use super::layout::{self, Nav, Page};
use super::session::{forbidden_page, Session};
use crate::extract::{ApiPath, ApiQuery};
use crate::AppState;

/// The formats of `GET /v1/export`.
pub const FORMATS: &[&str] = &["jsonl", "ocsf", "ecs", "cloudevents", "cef", "syslog"];

fn refuse(session: &Session) -> Option<Response> {
    (!session.is_auditor()).then(|| {
        forbidden_page(
            Some(session),
            &format!(
                "{} is in neither the `{}` nor the `{}` group; the auditor view is for auditors",
                session.principal.id,
                crate::AUDITORS_GROUP,
                crate::ADMINS_GROUP
            ),
        )
    })
}

/// `GET /audit`.
pub async fn audit(State(state): State<AppState>, session: Session) -> Response {
    if let Some(refused) = refuse(&session) {
        return refused;
    }
    let size = state.store.log_size().await.unwrap_or(0);
    let body = html! {
        h1 { "Audit" }
        p { "Read-only. The log holds " (size) " events. Every export keeps the actor context (requester, approver, executor, reviewer, on-behalf-of, case ID) as "
            code { "docs/export.md" } " describes." }
        section aria-labelledby="export-title" {
            h2 #export-title { "Export" }
            form method="get" action="/audit/export" {
                div.filters {
                    p { label for="format" { "Format" }
                        select #format name="format" { @for format in FORMATS { option value=(format) { (format) } } } }
                    p { label for="case" { "Case (optional)" } input #case type="text" name="case"; }
                    p { label for="since" { "From log index" } input #since type="text" name="since" value="0"; }
                    p { button type="submit" { "Download" } }
                }
            }
            p.help { "A download holds at most " (MAX_EXPORT_PAGE) " log entries from the index given; the "
                code { "custody-next-cursor" } " header, and " code { "custody export" } ", continue from there." }
        }
        section aria-labelledby="bundle-title" {
            h2 #bundle-title { "Proof bundle of a case" }
            form method="get" action="/audit/proof" {
                p { label for="proof-case" { "Case" } input #proof-case type="text" name="case" required; }
                p { button type="submit" { "Download" } }
            }
            p.help { "Every event of the case with its C2SP tlog-proof against a signed checkpoint, for offline checking. The whole-ledger auditor bundle ("
                code { "custody export --format bundle" } ") reads the database directly and is made with the CLI." }
        }
    };
    layout::respond(
        StatusCode::OK,
        Page {
            title: "Audit",
            session: Some(&session),
            current: Some(Nav::Audit),
            body,
        },
    )
}

/// The export form.
#[derive(Debug, Default, Deserialize)]
pub struct ExportForm {
    #[serde(default)]
    format: String,
    #[serde(default)]
    case: String,
    #[serde(default)]
    since: String,
}

/// `GET /audit/export`: one page of `GET /v1/export`, as a download.
pub async fn export(
    State(state): State<AppState>,
    session: Session,
    Query(form): Query<ExportForm>,
) -> Response {
    if let Some(refused) = refuse(&session) {
        return refused;
    }
    let since = match form.since.trim() {
        "" => None,
        text => match text.parse::<u64>() {
            Ok(since) => Some(since),
            Err(_) => {
                return layout::not_found(Some(&session), "`From log index` is not a number.")
            }
        },
    };
    let query = ExportQuery {
        format: form.format.clone(),
        case: Some(form.case.trim().to_string()).filter(|case| !case.is_empty()),
        since,
        until: None,
        limit: Some(MAX_EXPORT_PAGE),
        include_drills: None,
    };
    match crate::api::export::export(State(state), session.caller(), ApiQuery(query)).await {
        Ok(mut response) => {
            let name: String = form
                .format
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect();
            if let Ok(value) =
                HeaderValue::from_str(&format!("attachment; filename=\"custody-export.{name}\""))
            {
                response
                    .headers_mut()
                    .insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
        Err(problem) => {
            let body = html! { h1 { "Export refused" } (super::case::refusal_box(&problem)) };
            let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
            layout::respond(
                status,
                Page {
                    title: "Export refused",
                    session: Some(&session),
                    current: Some(Nav::Audit),
                    body,
                },
            )
        }
    }
}

/// The proof form.
#[derive(Debug, Default, Deserialize)]
pub struct ProofForm {
    #[serde(default)]
    case: String,
}

/// `GET /audit/proof`: a case's proof bundle as a download.
pub async fn proof(
    State(state): State<AppState>,
    session: Session,
    Query(form): Query<ProofForm>,
) -> Response {
    if let Some(refused) = refuse(&session) {
        return refused;
    }
    let case = form.case.trim().to_string();
    match crate::api::log::case_proof(State(state), session.caller(), ApiPath(case)).await {
        Ok(axum::Json(bundle)) => {
            let name: String = bundle
                .case_id
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect();
            let mut response = axum::Json(bundle).into_response();
            if let Ok(value) =
                HeaderValue::from_str(&format!("attachment; filename=\"{name}-proof.json\""))
            {
                response
                    .headers_mut()
                    .insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
        Err(problem) => layout::not_found(Some(&session), &problem.detail),
    }
}
