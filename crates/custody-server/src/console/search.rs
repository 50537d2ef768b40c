//! Case search (`/cases?subject=&entitlement=&principal=&ticket=&state=&from=&to=`),
//! newest first, a page at a time.
//!
//! State, ticket and opening time filter in SQL; subject, entitlement and
//! principal (anyone who requested, approved, executed or reviewed) are
//! matched on the projections SQL returns, a batch at a time, until a page
//! is full. The next page starts after the last case shown (a keyset, so
//! pages never repeat or skip a case while new ones are opened).

use std::str::FromStr;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custody_core::case::CaseView;
use custody_core::{CaseState, Timestamp};
use custody_store::CaseViewFilter;
use maud::html;
use serde::Deserialize;

use super::escape::{attr, text};
use super::layout::{self, Nav, Page};
use super::session::{percent_encode, Session};
use crate::problem::Problem;
use crate::AppState;

/// Cases per page.
pub const PAGE_SIZE: usize = 50;
/// Projections read per query while filling a page.
const BATCH: u32 = 500;

/// The search form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    entitlement: String,
    #[serde(default)]
    principal: String,
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// The last case of the previous page: `opened_at|case_id`.
    #[serde(default)]
    after: String,
}

/// A date (`2026-12-01`, midnight UTC) or a timestamp.
fn parse_time(field: &str, value: &str) -> Result<Option<Timestamp>, Problem> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let full = if value.len() == 10 {
        format!("{value}T00:00:00Z")
    } else {
        value.to_string()
    };
    Timestamp::parse(&full).map(Some).map_err(|error| {
        Problem::invalid(format!(
            "`{field}` is not a date (2026-12-01) or a timestamp (2026-12-01T09:30:00Z): {error}"
        ))
    })
}

fn matches(view: &CaseView, query: &SearchQuery) -> bool {
    let subject = query.subject.trim();
    if !subject.is_empty() {
        let full = view.change.subject().to_string();
        if full != subject && view.change.subject().id != subject {
            return false;
        }
    }
    let entitlement = query.entitlement.trim();
    if !entitlement.is_empty() && view.change.entitlement() != entitlement {
        return false;
    }
    let principal = query.principal.trim();
    if !principal.is_empty() {
        let mut people = std::iter::once(&view.requester.principal)
            .chain(view.approvals.iter().map(|record| &record.by.principal))
            .chain(view.denials.iter().map(|record| &record.by.principal))
            .chain(view.executions.iter().map(|record| &record.by.principal))
            .chain(view.reviews.iter().map(|record| &record.by.principal));
        if !people.any(|person| person.as_str() == principal) {
            return false;
        }
    }
    true
}

/// `GET /cases`.
pub async fn search(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => {
            return page(
                &session,
                &SearchQuery::default(),
                Err(Problem::invalid(rejection.body_text())),
                None,
            )
        }
    };
    let found = find(&state, &query).await;
    match found {
        Ok((cases, next)) => page(&session, &query, Ok(cases), next),
        Err(problem) => page(&session, &query, Err(problem), None),
    }
}

async fn find(
    state: &AppState,
    query: &SearchQuery,
) -> Result<(Vec<(String, CaseView)>, Option<String>), Problem> {
    let case_state = match query.state.trim() {
        "" => None,
        text => Some(CaseState::from_str(text).map_err(Problem::invalid)?),
    };
    let mut filter = CaseViewFilter {
        state: case_state,
        // Stored as the ticket's canonical text (`Ticket`'s Display).
        ticket: match query.ticket.trim() {
            "" => None,
            text => Some(
                custody_core::model::Ticket::from_str(text)
                    .map_err(|error| Problem::invalid(error.to_string()))?
                    .to_string(),
            ),
        },
        opened_from: parse_time("from", &query.from)?,
        opened_to: parse_time("to", &query.to)?,
        before: query
            .after
            .split_once('|')
            .map(|(opened_at, case_id)| (opened_at.to_string(), case_id.to_string())),
        limit: Some(BATCH),
        ..CaseViewFilter::default()
    };
    let mut found = Vec::new();
    loop {
        let batch = state.store.case_views(&filter).await?;
        let exhausted = batch.len() < BATCH as usize;
        let last = batch
            .last()
            .map(|listed| (listed.opened_at.clone(), listed.view.case_id.to_string()));
        for listed in batch {
            if matches(&listed.view, query) {
                found.push((listed.opened_at, listed.view));
                if found.len() > PAGE_SIZE {
                    break;
                }
            }
        }
        if found.len() > PAGE_SIZE || exhausted {
            break;
        }
        filter.before = last;
    }
    let next = if found.len() > PAGE_SIZE {
        found.truncate(PAGE_SIZE);
        found
            .last()
            .map(|(opened_at, view)| format!("{opened_at}|{}", view.case_id))
    } else {
        None
    };
    Ok((found, next))
}

fn page(
    session: &Session,
    query: &SearchQuery,
    result: Result<Vec<(String, CaseView)>, Problem>,
    next: Option<String>,
) -> Response {
    let states = [
        "",
        "open",
        "approved",
        "denied",
        "executed",
        "reviewed",
        "merged",
        "pending_review",
        "executed_pending_approval",
    ];
    let next_link = next.map(|after| {
        let fields = [
            ("subject", &query.subject),
            ("entitlement", &query.entitlement),
            ("principal", &query.principal),
            ("ticket", &query.ticket),
            ("state", &query.state),
            ("from", &query.from),
            ("to", &query.to),
            ("after", &after),
        ];
        let pairs: Vec<String> = fields
            .iter()
            .map(|(name, value)| format!("{name}={}", percent_encode(value)))
            .collect();
        format!("/cases?{}", pairs.join("&"))
    });
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(problem) => StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST),
    };
    let body = html! {
        h1 { "Cases" }
        form method="get" action="/cases" role="search" aria-label="Search cases" {
            div.filters {
                p { label for="q-subject" { "Subject" } input #q-subject type="search" name="subject" value=(attr(&query.subject)) placeholder="user:alice or alice"; }
                p { label for="q-entitlement" { "Entitlement" } input #q-entitlement type="search" name="entitlement" value=(attr(&query.entitlement)); }
                p { label for="q-principal" { "Principal (any role)" } input #q-principal type="search" name="principal" value=(attr(&query.principal)); }
                p { label for="q-ticket" { "Ticket" } input #q-ticket type="search" name="ticket" value=(attr(&query.ticket)) placeholder="JIRA:SEC-1"; }
                p { label for="q-state" { "State" }
                    select #q-state name="state" {
                        @for state in states {
                            option value=(state) selected[query.state == state] { @if state.is_empty() { "any" } @else { (state) } }
                        }
                    }
                }
                p { label for="q-from" { "Opened from" } input #q-from type="text" name="from" value=(attr(&query.from)) placeholder="2026-12-01"; }
                p { label for="q-to" { "Opened before" } input #q-to type="text" name="to" value=(attr(&query.to)) placeholder="2026-12-31"; }
                p { button type="submit" { "Search" } }
            }
        }
        @match &result {
            Err(problem) => (super::case::refusal_box(problem)),
            Ok(cases) if cases.is_empty() => p #no-results { "No case matches." },
            Ok(cases) => {
                table #results {
                    thead { tr { th scope="col" { "Case" } th scope="col" { "Change" } th scope="col" { "Requester" } th scope="col" { "State" } th scope="col" { "Ticket" } th scope="col" { "Opened" } } }
                    tbody {
                        @for (opened_at, case) in cases {
                            tr {
                                td { a.mono href=(format!("/cases/{}", case.case_id)) { (case.case_id.as_str()) } }
                                td { (text(&case.change.to_string())) }
                                td { (text(case.requester.principal.as_str())) }
                                td { (case.state.to_string()) }
                                td { (text(&case.ticket.as_ref().map(ToString::to_string).unwrap_or_default())) }
                                td { (text(opened_at)) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(link) = &next_link {
            nav.pager aria-label="Pages" { a rel="next" href=(link) { "Next page" } }
        }
    };
    let mut response = layout::respond(
        status,
        Page {
            title: "Cases",
            session: Some(session),
            current: Some(Nav::Cases),
            body,
        },
    );
    if status != StatusCode::OK {
        *response.status_mut() = status;
    }
    response.into_response()
}
