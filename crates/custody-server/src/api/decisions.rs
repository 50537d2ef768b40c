//! The steps of a case after its request: approve (or record or confirm a
//! chat approval), deny, execute, review, comment and merge.

use std::str::FromStr;

use axum::extract::State;
use axum::Json;
use custody_api::{CommentBody, DecisionBody, ExecutionBody, MergeBody, ReviewBody};
use custody_core::change_set::ChangeSet;
use custody_core::command::{CaseStep, Merge};
use custody_core::event::ReviewOutcome;
use custody_core::model::{
    validate_name, validate_text, Change, ChangeKind, PrincipalId, Subject, SubjectKind,
};
use custody_store::WriteOutcome;

use super::{invalid, optional_text, parse_case_id, write};
use crate::extract::{ApiJson, ApiPath, Caller, IdempotencyKey, OptionalJson};
use crate::problem::Problem;
use crate::AppState;

/// Approve a case.
#[utoipa::path(post, path = "/v1/cases/{case_id}/approvals", request_body = DecisionBody,
    params(("case_id" = String, Path, description = "AC-..."), ("Idempotency-Key" = Option<String>, Header, description = "Retry key")),
    responses((status = 200, body = WriteOutcome), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn approve(
    State(state): State<AppState>,
    who: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(case_id): ApiPath<String>,
    OptionalJson(body): OptionalJson<DecisionBody>,
) -> Result<Json<WriteOutcome>, Problem> {
    let case_id = parse_case_id(&case_id)?;
    if let Some(event) = body.confirm {
        if body.chat.is_some() {
            return Err(Problem::invalid(
                "an approval confirms a chat approval or records one, not both",
            ));
        }
        let approval_event = custody_core::EventId::from_str(&event).map_err(invalid)?;
        let command = CaseStep::ConfirmApproval {
            case_id,
            approval_event,
        }
        .into();
        return write(&state, who, key, command, None).await;
    }
    let (chat, occurred_at) = match body.chat {
        None => (None, body.occurred_at),
        Some(chat) => {
            let approver = match chat.approver {
                Some(name) => {
                    let approver = PrincipalId::from_str(&name).map_err(invalid)?;
                    // Only a known principal can ever confirm the attestation.
                    if state.store.principal(&approver).await?.is_none() {
                        return Err(Problem::not_found(format!(
                            "principal {approver} does not exist"
                        )));
                    }
                    approver
                }
                None => who.principal.id.clone(),
            };
            let provenance = custody_core::event::ChatApproval {
                channel: validate_name("chat.channel", &chat.channel).map_err(invalid)?,
                permalink: validate_name("chat.permalink", &chat.permalink).map_err(invalid)?,
                message_sha256: custody_core::Sha256Hash::of(
                    validate_text("chat.message_text", &chat.message_text)
                        .map_err(invalid)?
                        .as_bytes(),
                ),
                approver,
            };
            // The message's own time is when the approval happened.
            (Some(provenance), Some(chat.message_time))
        }
    };
    let command = CaseStep::Approve {
        case_id,
        comment: optional_text("comment", body.comment)?,
        chat,
    }
    .into();
    write(&state, who, key, command, occurred_at).await
}

/// Deny a case.
#[utoipa::path(post, path = "/v1/cases/{case_id}/denials", request_body = DecisionBody,
    params(("case_id" = String, Path, description = "AC-..."), ("Idempotency-Key" = Option<String>, Header, description = "Retry key")),
    responses((status = 200, body = WriteOutcome), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn deny(
    State(state): State<AppState>,
    who: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(case_id): ApiPath<String>,
    OptionalJson(body): OptionalJson<DecisionBody>,
) -> Result<Json<WriteOutcome>, Problem> {
    let case_id = parse_case_id(&case_id)?;
    let command = CaseStep::Deny {
        case_id,
        comment: optional_text("comment", body.comment)?,
    }
    .into();
    write(&state, who, key, command, body.occurred_at).await
}

/// Record the execution of an approved case.
#[utoipa::path(post, path = "/v1/cases/{case_id}/executions", request_body = ExecutionBody,
    params(("case_id" = String, Path, description = "AC-..."), ("Idempotency-Key" = Option<String>, Header, description = "Retry key")),
    responses((status = 200, body = WriteOutcome), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn execute(
    State(state): State<AppState>,
    who: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(case_id): ApiPath<String>,
    OptionalJson(body): OptionalJson<ExecutionBody>,
) -> Result<Json<WriteOutcome>, Problem> {
    let case_id = parse_case_id(&case_id)?;
    let change_set = body
        .change_set
        .map(|text| ChangeSet::from_json(text.get()))
        .transpose()
        .map_err(invalid)?;
    let comment = optional_text("comment", body.comment)?;
    let applied = match body.applied {
        None => None,
        Some(applied) => {
            // Fields left out are the approved values; the approved change
            // never changes, so reading it before the write is safe.
            let approved = state.store.case_view(&case_id).await?.change;
            let subject = match applied.subject {
                Some(subject) => Subject {
                    kind: SubjectKind::from_str(&subject.kind).map_err(invalid)?,
                    id: validate_name("applied.subject.id", &subject.id).map_err(invalid)?,
                },
                None => approved.subject().clone(),
            };
            let kind = match applied.change {
                Some(kind) => ChangeKind::from_str(&kind).map_err(invalid)?,
                None => approved.kind(),
            };
            let entitlement = applied
                .entitlement
                .unwrap_or_else(|| approved.entitlement().to_string());
            let resource = applied
                .resource
                .or_else(|| approved.resource().map(str::to_string));
            Some(
                Change::new(
                    subject,
                    kind,
                    entitlement,
                    resource,
                    approved.duration_seconds(),
                )
                .map_err(invalid)?,
            )
        }
    };
    let command = match body.status.as_deref() {
        None | Some("completed") | Some("failed") => CaseStep::Execute {
            case_id,
            change_set,
            comment,
            completed: body.status.as_deref() != Some("failed"),
            applied,
            observed: body.observed,
        }
        .into(),
        Some("revocation") => CaseStep::ExecuteRevocation {
            case_id,
            change_set,
            comment,
        }
        .into(),
        Some(other) => {
            return Err(Problem::invalid(format!(
                "`{other}` is not an execution status (expected completed, failed or revocation)"
            )))
        }
    };
    write(&state, who, key, command, body.occurred_at).await
}

/// Record the post-change review of an executed case.
#[utoipa::path(post, path = "/v1/cases/{case_id}/reviews", request_body = ReviewBody,
    params(("case_id" = String, Path, description = "AC-..."), ("Idempotency-Key" = Option<String>, Header, description = "Retry key")),
    responses((status = 200, body = WriteOutcome), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn review(
    State(state): State<AppState>,
    who: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(case_id): ApiPath<String>,
    ApiJson(body): ApiJson<ReviewBody>,
) -> Result<Json<WriteOutcome>, Problem> {
    let case_id = parse_case_id(&case_id)?;
    let outcome = ReviewOutcome::from_str(&body.outcome).map_err(Problem::invalid)?;
    // A review with outcome `revoke` opens a revocation case; the server
    // decides its rule, as for any request.
    let revocation_rule = if outcome == ReviewOutcome::Revoke {
        let view = state.store.case_view(&case_id).await?;
        Some(state.policy.decide(&view.change.revocation()))
    } else {
        None
    };
    let command = CaseStep::Review {
        case_id,
        outcome,
        comment: optional_text("comment", body.comment)?,
        revocation_rule,
    }
    .into();
    write(&state, who, key, command, None).await
}

/// Comment on a case.
#[utoipa::path(post, path = "/v1/cases/{case_id}/comments", request_body = CommentBody,
    params(("case_id" = String, Path, description = "AC-..."), ("Idempotency-Key" = Option<String>, Header, description = "Retry key")),
    responses((status = 200, body = WriteOutcome), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn comment(
    State(state): State<AppState>,
    who: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(case_id): ApiPath<String>,
    ApiJson(body): ApiJson<CommentBody>,
) -> Result<Json<WriteOutcome>, Problem> {
    let case_id = parse_case_id(&case_id)?;
    let text = validate_text("text", &body.text).map_err(invalid)?;
    write(
        &state,
        who,
        key,
        CaseStep::Comment { case_id, text }.into(),
        None,
    )
    .await
}

/// Merge a duplicate case (the one in the path) into the surviving case.
/// Nothing is deleted: both cases record the link, the duplicate is closed.
#[utoipa::path(post, path = "/v1/cases/{case_id}/merge", request_body = MergeBody,
    params(("case_id" = String, Path, description = "the duplicate AC-..."), ("Idempotency-Key" = Option<String>, Header, description = "Retry key")),
    responses((status = 200, body = WriteOutcome), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn merge(
    State(state): State<AppState>,
    who: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(case_id): ApiPath<String>,
    ApiJson(body): ApiJson<MergeBody>,
) -> Result<Json<WriteOutcome>, Problem> {
    let duplicate = parse_case_id(&case_id)?;
    let into = parse_case_id(&body.into)?;
    let command = Merge {
        duplicate,
        into,
        comment: Some(validate_text("comment", &body.comment).map_err(invalid)?),
    }
    .into();
    write(&state, who, key, command, None).await
}
