//! `GET /v1/export`: one page of an export, for auditors.
//!
//! Who may export: principals in the `auditors` group ([`AUDITORS_GROUP`])
//! and admins. An export holds every event of the deployment (or of a
//! case), with actor context, so it is not open to every token the way a
//! case's own timeline is to its participants' tools.
//!
//! A page covers at most `limit` log entries from `since`; its body is
//! their encoding, streamed in sub-pages of [`STREAM_SPAN`] entries, so the
//! server's memory stays flat whatever the limit. The headers say where the
//! next page starts ([`NEXT_CURSOR_HEADER`]) and where the whole export
//! ends ([`EXPORT_END_HEADER`]): the log's size when the first page was
//! asked for, which the client then passes as `until`, so a long export is
//! one fixed range however the log grows meanwhile.

use std::str::FromStr;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use custody_api::export::{
    DEFAULT_EXPORT_PAGE, EVENT_COUNT_HEADER, EXPORT_END_HEADER, MAX_EXPORT_PAGE, NEXT_CURSOR_HEADER,
};
use custody_api::ExportQuery;
use custody_core::CaseId;
use custody_export::{Cursor, Encoder, Format};

use crate::exporter::{Exporter, ExporterError};
use crate::extract::{ApiQuery, Caller};
use crate::problem::Problem;
use crate::{AppState, ADMINS_GROUP, AUDITORS_GROUP};

/// How many log entries are encoded at a time into the streamed body.
pub const STREAM_SPAN: u64 = 1000;

/// Export events in a line format (auditors and admins).
#[utoipa::path(get, path = "/v1/export", params(ExportQuery),
    responses(
        (status = 200, description = "The events of the page, encoded: one per line (syslog and CEF: one message per line)",
            content(
                (String = "application/x-ndjson"),
                (String = "text/plain; charset=utf-8"),
            ),
            headers(
                ("custody-next-cursor" = u64, description = "The first log index this page did not cover: `since` of the next page"),
                ("custody-export-end" = u64, description = "Where the whole export ends (exclusive): pass it as `until` for the next pages; the export is complete when the next cursor reaches it"),
                ("custody-event-count" = u64, description = "How many log entries this page covers that the body may hold (with a case filter, an upper bound)"),
            )),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    who: Caller,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, Problem> {
    require_auditor(&who)?;
    let format = parse_format(&query.format)?;
    let case = query
        .case
        .as_deref()
        .map(CaseId::from_str)
        .transpose()
        .map_err(|error| {
            Problem::invalid(error.to_string())
                .with_hint("case IDs look like AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b71")
        })?;
    let limit = query.limit.unwrap_or(DEFAULT_EXPORT_PAGE);
    if !(1..=MAX_EXPORT_PAGE).contains(&limit) {
        return Err(Problem::invalid(format!(
            "limit {limit} is out of range: a page covers 1 to {MAX_EXPORT_PAGE} log entries"
        )));
    }
    let since = query.since.unwrap_or(0);
    let mut exporter = Exporter::start(
        state.store.clone(),
        Encoder::new(format, crate::exporter::host_name()),
        case,
        Cursor(since),
        query.until.map(Cursor),
    )
    .await
    .map_err(exporter_problem)?
    .include_drills(query.include_drills.unwrap_or(false));
    let end = exporter.end().0;
    let stop = end.min(since.saturating_add(limit));
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut buffer = Vec::new();
        while exporter.cursor().0 < stop {
            let span = STREAM_SPAN.min(stop - exporter.cursor().0);
            let chunk = match exporter.next_page(span, &mut buffer).await {
                Ok(_) => Ok(Bytes::from(std::mem::take(&mut buffer))),
                Err(error) => {
                    tracing::error!(%error, "export page failed");
                    // The body breaks off: the client sees an incomplete
                    // response, never a short one that looks whole.
                    Err(std::io::Error::other(error.to_string()))
                }
            };
            let failed = chunk.is_err();
            if sender.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(format)),
    );
    headers.insert(NEXT_CURSOR_HEADER, HeaderValue::from(stop));
    headers.insert(EXPORT_END_HEADER, HeaderValue::from(end));
    headers.insert(
        EVENT_COUNT_HEADER,
        HeaderValue::from(stop - since.min(stop)),
    );
    Ok(response)
}

/// The media type of a format's body.
pub fn content_type(format: Format) -> &'static str {
    match format {
        Format::Syslog | Format::Cef => "text/plain; charset=utf-8",
        _ => "application/x-ndjson",
    }
}

fn require_auditor(who: &Caller) -> Result<(), Problem> {
    if who.principal.in_group(AUDITORS_GROUP) || who.principal.in_group(ADMINS_GROUP) {
        return Ok(());
    }
    Err(Problem::forbidden(format!(
        "{} is in neither the `{AUDITORS_GROUP}` nor the `{ADMINS_GROUP}` group; exports are for auditors",
        who.principal.id
    ))
    .with_hint(format!(
        "an admin can add it: `custody principal set-groups NAME --group {AUDITORS_GROUP}`"
    )))
}

fn parse_format(name: &str) -> Result<Format, Problem> {
    if name == "bundle" {
        return Err(Problem::invalid(
            "bundles are not served over HTTP: `custody export --format bundle --data DIR` makes one from the ledger",
        ));
    }
    Format::from_str(name).map_err(|error| Problem::invalid(error.to_string()))
}

fn exporter_problem(error: ExporterError) -> Problem {
    match error {
        ExporterError::UnknownCase(case) => {
            Problem::not_found(format!("case {case} does not exist"))
                .with_hint("list cases with `custody cases`")
        }
        ExporterError::Store(error) => Problem::from(error),
        error if error.is_usage() => {
            let problem = Problem::invalid(error.to_string());
            match error.hint() {
                Some(hint) => problem.with_hint(hint),
                None => problem,
            }
        }
        error => {
            tracing::error!(%error, "export failed");
            Problem::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                crate::problem::types::INTERNAL,
                "Internal error",
                error.to_string(),
            )
        }
    }
}
