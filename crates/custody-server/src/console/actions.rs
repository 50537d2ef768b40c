//! The console's actions: request, approve, deny, execute, review and
//! comment. Each calls the function the API's handler is (or calls), with
//! the caller built from the session (`via: web`): the same policy,
//! separation of duties and idempotency as `POST /v1/...`. A refusal is
//! shown on the case page with its rule, detail and hint; nothing is
//! recorded.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use custody_api::{CommentBody, DecisionBody, ExecutionBody, RequestBody, ReviewBody, SubjectBody};
use custody_core::case::CaseView;
use maud::{html, Markup};
use serde::Deserialize;

use super::inbox::Waiting;
use super::layout::{self, Nav, Page};
use super::session::{check_csrf, Session};
use crate::api;
use crate::extract::{ApiJson, ApiPath, IdempotencyKey, OptionalJson};
use crate::problem::Problem;
use crate::AppState;

/// The fields of every action form.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    /// Rendered with the form, so a form sent twice records one step.
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    outcome: String,
}

/// A fresh idempotency key for a form.
fn form_key() -> String {
    format!("web-{}", uuid::Uuid::now_v7().simple())
}

fn key_of(form_key: &str) -> Result<String, Problem> {
    let valid = !form_key.is_empty()
        && form_key.len() <= 255
        && form_key.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(form_key.to_string())
    } else {
        Err(Problem::invalid(
            "the form's idempotency key must be 1 to 255 visible ASCII characters; reload the page",
        ))
    }
}

/// A textarea's text as recorded: browsers send its line breaks as CRLF
/// (HTML's form encoding), which is recorded as the LF that was typed; a
/// lone CR is kept (and shown escaped). `None` when blank.
fn non_empty(text: &str) -> Option<String> {
    let text = text.replace("\r\n", "\n");
    let trimmed = text.trim_end_matches(['\r', '\n']);
    (!trimmed.trim().is_empty()).then(|| trimmed.to_string())
}

fn hidden(session: &Session) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(session.csrf);
        input type="hidden" name="idempotency_key" value=(form_key());
    }
}

/// The forms of the steps `waiting` allows, and a comment form, on the case page.
pub fn forms(session: &Session, view: &CaseView, waiting: Option<Waiting>) -> Markup {
    let base = format!("/cases/{}", view.case_id);
    html! {
        section aria-labelledby="actions-title" {
            h2 #actions-title { "Actions" }
            div.actions {
                @if waiting == Some(Waiting::Approve) || waiting.is_none() {
                    form method="post" action=(format!("{base}/approve")) #approve-form {
                        (hidden(session))
                        label for="approve-comment" { "Approval comment" }
                        textarea #approve-comment name="comment" {}
                        button type="submit" { "Approve" }
                    }
                    form method="post" action=(format!("{base}/deny")) #deny-form {
                        (hidden(session))
                        label for="deny-comment" { "Reason for denial" }
                        textarea #deny-comment name="comment" {}
                        button.secondary type="submit" { "Deny" }
                    }
                }
                @if waiting == Some(Waiting::Execute) || waiting.is_none() {
                    form method="post" action=(format!("{base}/execute")) #execute-form {
                        (hidden(session))
                        label for="execute-comment" { "What was changed" }
                        textarea #execute-comment name="comment" {}
                        button type="submit" { "Record execution" }
                    }
                }
                @if waiting == Some(Waiting::Review) || waiting.is_none() {
                    form method="post" action=(format!("{base}/review")) #review-form {
                        (hidden(session))
                        label for="review-outcome" { "Review outcome" }
                        select #review-outcome name="outcome" {
                            option value="confirmed" { "Confirmed: the change is as approved" }
                            option value="mismatch" { "Mismatch: it differs" }
                            option value="revoke" { "Revoke: take it back" }
                        }
                        label for="review-comment" { "Review comment" }
                        textarea #review-comment name="comment" {}
                        button type="submit" { "Record review" }
                    }
                }
                form method="post" action=(format!("{base}/comment")) #comment-form {
                    (hidden(session))
                    label for="comment-text" { "Comment" }
                    textarea #comment-text name="comment" required {}
                    button.secondary type="submit" { "Add comment" }
                }
            }
            @if waiting.is_none() {
                p.help { "Nothing on this case waits for you; the rules will say why if you try a step." }
            }
        }
    }
}

/// `POST /cases/{id}/{action}`.
pub async fn act(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    ApiPath((case_id, action)): ApiPath<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = check_csrf(&session, &form.csrf, &headers) {
        return refused;
    }
    let result = run(&state, &session, &case_id, &action, form).await;
    match result {
        Ok(()) => Redirect::to(&format!(
            "/cases/{}",
            super::session::percent_encode(&case_id)
        ))
        .into_response(),
        Err(problem) if problem.status == StatusCode::NOT_FOUND.as_u16() => {
            layout::not_found(Some(&session), &problem.detail)
        }
        Err(problem) => match super::case::render(&state, &session, &case_id, Some(&problem)).await
        {
            Ok(response) | Err(response) => response,
        },
    }
}

async fn run(
    state: &AppState,
    session: &Session,
    case_id: &str,
    action: &str,
    form: ActionForm,
) -> Result<(), Problem> {
    let key = IdempotencyKey(key_of(&form.idempotency_key)?);
    let path = ApiPath(case_id.to_string());
    let comment = non_empty(&form.comment);
    let state = State(state.clone());
    let caller = session.caller();
    // The write's outcome: the page is re-read after the redirect.
    let _written = match action {
        "approve" => {
            api::decisions::approve(
                state,
                caller,
                key,
                path,
                OptionalJson(DecisionBody {
                    comment,
                    ..DecisionBody::default()
                }),
            )
            .await?
        }
        "deny" => {
            api::decisions::deny(
                state,
                caller,
                key,
                path,
                OptionalJson(DecisionBody {
                    comment,
                    ..DecisionBody::default()
                }),
            )
            .await?
        }
        "execute" => {
            api::decisions::execute(
                state,
                caller,
                key,
                path,
                OptionalJson(ExecutionBody {
                    comment,
                    ..ExecutionBody::default()
                }),
            )
            .await?
        }
        "review" => {
            api::decisions::review(
                state,
                caller,
                key,
                path,
                ApiJson(ReviewBody {
                    outcome: form.outcome,
                    comment,
                }),
            )
            .await?
        }
        "comment" => {
            let text = comment.ok_or_else(|| Problem::invalid("a comment needs some text"))?;
            api::decisions::comment(state, caller, key, path, ApiJson(CommentBody { text })).await?
        }
        other => {
            return Err(Problem::not_found(format!(
                "`{}` is not an action of the console",
                custody_core::text::escape(other)
            )))
        }
    };
    Ok(())
}

/// The request form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct RequestForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    subject_kind: String,
    #[serde(default)]
    subject_id: String,
    #[serde(default)]
    entitlement: String,
    #[serde(default)]
    change: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    duration: String,
    #[serde(default)]
    justification: String,
    #[serde(default)]
    ticket: String,
}

/// `GET /request`.
pub async fn request_page(session: Session) -> Response {
    request_form(&session, &RequestForm::default(), None)
}

fn request_form(session: &Session, values: &RequestForm, refusal: Option<&Problem>) -> Response {
    let kinds = [
        "user",
        "service_account",
        "api_key",
        "token",
        "role",
        "group",
        "workload",
    ];
    let changes = ["grant", "revoke", "create", "rotate", "delete", "modify"];
    let body = html! {
        h1 { "Request an access change" }
        @if let Some(problem) = refusal { (super::case::refusal_box(problem)) }
        form method="post" action="/request" #request-form {
            (hidden(session))
            p {
                label for="subject-kind" { "Subject kind" }
                select #subject-kind name="subject_kind" {
                    @for kind in kinds {
                        @let name = kind;
                        option value=(name) selected[values.subject_kind == name] { (name) }
                    }
                }
            }
            p { label for="subject-id" { "Subject" } input #subject-id type="text" name="subject_id" required value=(values.subject_id); }
            p { label for="entitlement" { "Entitlement" } input #entitlement type="text" name="entitlement" required value=(values.entitlement); }
            p {
                label for="change" { "Change" }
                select #change name="change" {
                    @for change in changes { option value=(change) selected[values.change == change] { (change) } }
                }
            }
            p { label for="resource" { "Resource (optional)" } input #resource type="text" name="resource" value=(values.resource); }
            p { label for="duration" { "Duration (optional, e.g. 8h)" } input #duration type="text" name="duration" value=(values.duration); }
            p { label for="ticket" { "Ticket (optional, SYSTEM:KEY)" } input #ticket type="text" name="ticket" value=(values.ticket); }
            p { label for="justification" { "Justification" } textarea #justification name="justification" { (values.justification) } }
            p { button type="submit" { "Request" } }
        }
    };
    let status = refusal
        .and_then(|problem| StatusCode::from_u16(problem.status).ok())
        .unwrap_or(StatusCode::OK);
    layout::respond(
        status,
        Page {
            title: "New request",
            session: Some(session),
            current: Some(Nav::Request),
            body,
        },
    )
}

/// `POST /request`: opens a case through `POST /v1/cases`'s code path.
pub async fn request(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<RequestForm>,
) -> Response {
    if let Some(refused) = check_csrf(&session, &form.csrf, &headers) {
        return refused;
    }
    let opened = async {
        let key = key_of(&form.idempotency_key)?;
        let body = RequestBody {
            subject: SubjectBody {
                kind: form.subject_kind.clone(),
                id: form.subject_id.trim().to_string(),
            },
            entitlement: form.entitlement.trim().to_string(),
            change: non_empty(&form.change),
            resource: non_empty(form.resource.trim()),
            duration: non_empty(form.duration.trim()),
            justification: non_empty(&form.justification),
            ticket: non_empty(form.ticket.trim()),
            drill: false,
        };
        api::cases::open_request(&state, session.caller(), key, body).await
    }
    .await;
    match opened {
        Ok(outcome) => Redirect::to(&format!("/cases/{}", outcome.case_id)).into_response(),
        Err(problem) => request_form(&session, &form, Some(&problem)),
    }
}
