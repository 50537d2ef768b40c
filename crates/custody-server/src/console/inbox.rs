//! The inbox (`/`): what waits for the signed-in principal.
//!
//! Every active case is judged in memory by the lifecycle's own step
//! functions (the ones the writer decides with), with the principal's
//! actor. So the inbox lists exactly the cases the principal may act on, by
//! the policy's stages and groups and by separation of duties, without a
//! query per case.
//!
//! The projections come from a [`ViewCache`]: one query lists the active
//! cases with their heads (the latest event's hash), and only projections
//! whose head moved since the last inbox are read and deserialised again.
//! A projection is a function of its case's events, so one read at a head
//! stays right until the head moves; the check is against the database at
//! every request, so nodes sharing a PostgreSQL database stay right too.
//! With 10,000 active cases this keeps the inbox's p99 under 50 ms
//! (`docs/console.md`, "Performance").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custody_core::case::CaseView;
use custody_core::event::ReviewOutcome;
use custody_core::lifecycle as steps;
use custody_core::model::Actor;
use custody_core::{CaseId, CaseState, Sha256Hash, Timestamp};
use custody_store::{CaseViewFilter, Store, StoreError};
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
    pub approvals: Vec<Arc<CaseView>>,
    /// Approved cases the principal may execute.
    pub executions: Vec<Arc<CaseView>>,
    /// Executed cases the principal may review.
    pub reviews: Vec<Arc<CaseView>>,
    /// Of those, post-hoc reviews (break-glass) and reviews past their deadline.
    pub overdue: Vec<Arc<CaseView>>,
    /// Cases the principal may act on that the ledger escalated.
    pub escalated: Vec<Arc<CaseView>>,
}

/// The projections of the active cases as the last inbox read them, each
/// with the head it was read at.
#[derive(Default)]
pub struct ViewCache {
    views: Mutex<HashMap<CaseId, (Sha256Hash, Arc<CaseView>)>>,
}

impl ViewCache {
    /// The projections of the active cases (drills left out), newest first:
    /// those whose head has not moved from the cache, the others read from
    /// the store. The cache then holds exactly these cases.
    pub async fn active(&self, store: &Store) -> Result<Vec<Arc<CaseView>>, StoreError> {
        let heads = store
            .case_heads(&CaseViewFilter {
                active_only: true,
                ..CaseViewFilter::default()
            })
            .await?;
        let stale: Vec<CaseId> = {
            let cached = self.lock();
            heads
                .iter()
                .filter(|head| {
                    cached
                        .get(&head.case_id)
                        .is_none_or(|(hash, _)| *hash != head.head_hash)
                })
                .map(|head| head.case_id.clone())
                .collect()
        };
        // Read after the heads: a case written since is read at its newer
        // head, which the next inbox checks again.
        let fresh = if stale.is_empty() {
            Vec::new()
        } else {
            store.case_views_by_id(&stale).await?
        };
        let mut fresh: HashMap<CaseId, (Sha256Hash, Arc<CaseView>)> = fresh
            .into_iter()
            .map(|listed| {
                let view = listed.view;
                (view.case_id.clone(), (view.head_hash, Arc::new(view)))
            })
            .collect();
        let mut cached = self.lock();
        let mut kept = HashMap::with_capacity(heads.len());
        let mut views = Vec::with_capacity(heads.len());
        for head in heads {
            let entry = match fresh.remove(&head.case_id) {
                Some(entry) => entry,
                None => match cached.remove(&head.case_id) {
                    Some(entry) => entry,
                    // Stale, and gone before it could be read: not listed.
                    None => continue,
                },
            };
            views.push(Arc::clone(&entry.1));
            kept.insert(head.case_id, entry);
        }
        *cached = kept;
        Ok(views)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CaseId, (Sha256Hash, Arc<CaseView>)>> {
        // A panic while the lock was held left a map that is only a cache.
        self.views
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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
pub fn sort(cases: Vec<Arc<CaseView>>, actor: &Actor, now: Timestamp) -> Inbox {
    let mut inbox = Inbox::default();
    for case in cases {
        let Some(waiting) = waiting_for(&case, actor) else {
            continue;
        };
        if !case.escalations.is_empty() {
            inbox.escalated.push(Arc::clone(&case));
        }
        match waiting {
            Waiting::Approve => inbox.approvals.push(case),
            Waiting::Execute => inbox.executions.push(case),
            Waiting::Review => {
                if overdue_since(&case, now).is_some() || case.state == CaseState::PendingReview {
                    inbox.overdue.push(Arc::clone(&case));
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
    let cases = state.console_cache.views.active(&state.store).await?;
    let now = state.clock.now();
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

fn section(id: &str, title: &str, help: &str, cases: &[Arc<CaseView>], now: Timestamp) -> Markup {
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
