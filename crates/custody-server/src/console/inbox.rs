//! The inbox (`/`): what waits for the signed-in principal.
//!
//! One query reads the projections of every active case; each is then
//! judged in memory by the lifecycle's own step functions (the ones the
//! writer decides with), with the principal's actor. So the inbox lists
//! exactly the cases the principal may act on, by the policy's stages and
//! groups and by separation of duties, without a query per case.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custody_core::case::CaseView;
use custody_core::event::ReviewOutcome;
use custody_core::lifecycle as steps;
use custody_core::model::Actor;
use custody_core::{CaseState, Timestamp};
use custody_store::CaseViewFilter;
use maud::{html, Markup};

use super::escape::text;
use super::layout::{self, Nav, Page};
use super::session::Session;
use crate::problem::Problem;
use crate::AppState;

/// What the principal may do on one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// Approve (or deny) it.
    Approve,
    /// Record its execution.
    Execute,
    /// Review it.
    Review,
}

/// The inbox's sections.
#[derive(Debug, Default)]
pub struct Inbox {
    /// Cases the principal may approve or deny.
    pub approvals: Vec<CaseView>,
    /// Approved cases the principal may execute.
    pub executions: Vec<CaseView>,
    /// Executed cases the principal may review.
    pub reviews: Vec<CaseView>,
    /// Of those, post-hoc reviews (break-glass) and reviews past their deadline.
    pub overdue: Vec<CaseView>,
    /// Cases the principal may act on that the ledger escalated.
    pub escalated: Vec<CaseView>,
}

/// What `actor` may do on `case`, judged by the lifecycle's step functions.
pub fn waiting_for(case: &CaseView, actor: &Actor) -> Option<Waiting> {
    match case.state {
        CaseState::Open | CaseState::ExecutedPendingApproval => steps::approve(case, actor, None)
            .ok()
            .map(|_| Waiting::Approve),
        CaseState::Approved => case
            .approved()
            .ok()
            .and_then(|approved| steps::execute(approved, actor, None, None, true, None).ok())
            .map(|_| Waiting::Execute),
        CaseState::Executed | CaseState::PendingReview => case
            .executed()
            .ok()
            .and_then(|executed| {
                steps::review(executed, actor, ReviewOutcome::Confirmed, None).ok()
            })
            .map(|_| Waiting::Review),
        _ => None,
    }
}

/// The deadline `case` has passed at `now`: its post-hoc review's or its review's.
pub fn overdue_since(case: &CaseView, now: Timestamp) -> Option<Timestamp> {
    [case.break_glass_deadline, case.review_due]
        .into_iter()
        .flatten()
        .filter(|deadline| *deadline <= now)
        .min()
}

/// Sorts the active cases into the inbox's sections for `actor`.
pub fn sort(cases: Vec<CaseView>, actor: &Actor, now: Timestamp) -> Inbox {
    let mut inbox = Inbox::default();
    for case in cases {
        let Some(waiting) = waiting_for(&case, actor) else {
            continue;
        };
        if !case.escalations.is_empty() {
            inbox.escalated.push(case.clone());
        }
        match waiting {
            Waiting::Approve => inbox.approvals.push(case),
            Waiting::Execute => inbox.executions.push(case),
            Waiting::Review => {
                if overdue_since(&case, now).is_some() || case.state == CaseState::PendingReview {
                    inbox.overdue.push(case.clone());
                }
                inbox.reviews.push(case)
            }
        }
    }
    inbox
}

/// `GET /`.
pub async fn inbox(State(state): State<AppState>, session: Session) -> Response {
    match render(&state, &session).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

async fn render(state: &AppState, session: &Session) -> Result<Response, Problem> {
    let cases = state
        .store
        .case_views(&CaseViewFilter {
            active_only: true,
            ..CaseViewFilter::default()
        })
        .await?;
    let now = state.clock.now();
    let cases = cases.into_iter().map(|listed| listed.view).collect();
    let inbox = sort(cases, &session.actor, now);
    let total = inbox.approvals.len() + inbox.executions.len() + inbox.reviews.len();
    let body = html! {
        h1 { "Inbox" }
        p { (total) " cases wait for you. "
            a href="/request" { "Request a change" } "." }
        (section("approvals", "Approvals you may give", "Approve or deny: the policy's stages and groups, and separation of duties, allow you to.", &inbox.approvals, now))
        (section("executions", "Approved changes you may execute", "Record what was actually changed.", &inbox.executions, now))
        (section("reviews", "Reviews", "Confirm the executed change, report a mismatch, or revoke.", &inbox.reviews, now))
        (section("overdue", "Post-hoc and overdue reviews", "Break-glass changes wait for a post-hoc review; these are past or near their deadline.", &inbox.overdue, now))
        (section("escalated", "Escalated", "The ledger escalated these: someone owed a step did not take it in time.", &inbox.escalated, now))
    };
    Ok(layout::respond(
        StatusCode::OK,
        Page {
            title: "Inbox",
            session: Some(session),
            current: Some(Nav::Inbox),
            body,
        },
    ))
}

/// Rows shown per section; the count above says how many wait in all.
pub const SECTION_ROWS: usize = 200;

fn section(id: &str, title: &str, help: &str, cases: &[CaseView], now: Timestamp) -> Markup {
    let shown = &cases[..cases.len().min(SECTION_ROWS)];
    html! {
        section aria-labelledby=(format!("{id}-title")) {
            h2 id=(format!("{id}-title")) { (title) " " span.badge { (cases.len()) } }
            p.help { (help) }
            @if cases.is_empty() {
                p { "Nothing waits for you here." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Case" } th scope="col" { "Change" } th scope="col" { "Requester" } th scope="col" { "State" } th scope="col" { "Opened" } th scope="col" { "Deadline" } } }
                    tbody {
                        @for case in shown {
                            tr id=(format!("{id}-{}", case.case_id)) {
                                td { a.mono href=(format!("/cases/{}", case.case_id)) { (case.case_id.as_str()) } }
                                td { (text(&case.change.to_string())) }
                                td { (text(case.requester.principal.as_str())) }
                                td { (case.state.to_string()) }
                                td { (case.requester.occurred_at.to_string()) }
                                td {
                                    @match [case.break_glass_deadline, case.review_due].into_iter().flatten().min() {
                                        Some(deadline) if deadline <= now => span.bad { "overdue since " (deadline.to_string()) },
                                        Some(deadline) => (deadline.to_string()),
                                        None => "",
                                    }
                                }
                            }
                        }
                    }
                }
                @if cases.len() > shown.len() {
                    p { "The " (shown.len()) " newest of " (cases.len()) " are shown; "
                        a href="/cases" { "search" } " to find the others." }
                }
            }
        }
    }
}
