//! The `/v1/` handlers. Each parses its input into domain values at the edge,
//! hands one command to the store and returns the store's result.

use std::str::FromStr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use custody_core::change_set::ChangeSet;
use custody_core::command::{CaseCommand, CaseStep, Merge, Opening};
use custody_core::event::ReviewOutcome;
use custody_core::model::{
    parse_duration, validate_name, validate_text, Change, ChangeKind, Principal, PrincipalId,
    PrincipalKind, Subject, SubjectKind, Ticket,
};
use custody_core::{CaseId, CaseState, CaseView, Event, Timestamp};
use custody_store::{CaseSummary, CaseWrite, IssuedToken, TokenInfo, WriteOutcome};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::{ApiJson, ApiPath, ApiQuery, Authenticated, IdempotencyKey, OptionalJson};
use crate::problem::Problem;
use crate::AppState;

/// The body of `POST /v1/cases`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    /// Whose access changes.
    pub subject: SubjectBody,
    /// The entitlement (role, group, permission, key scope).
    pub entitlement: String,
    /// `grant` (default), `revoke`, `create`, `rotate`, `delete` or `modify`.
    #[serde(default)]
    pub change: Option<String>,
    /// The resource the entitlement applies to.
    #[serde(default)]
    pub resource: Option<String>,
    /// For time-bound access: `30m`, `8h`, `7d`, ...
    #[serde(default)]
    pub duration: Option<String>,
    /// Why the change is needed.
    #[serde(default)]
    pub justification: Option<String>,
    /// The external ticket, as `SYSTEM:KEY`; the system is stored in
    /// lowercase and the key in uppercase.
    #[serde(default)]
    pub ticket: Option<String>,
}

/// A subject in a request body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectBody {
    /// `user`, `service_account`, `api_key`, `token`, `role`, `group` or `workload`.
    pub kind: String,
    /// Its identifier in the system that owns it (an identifier: see
    /// "Identifiers" in docs/api.md).
    pub id: String,
}

/// The body of approvals, denials and reviews' optional comments.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Optional comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// When the decision was taken, if earlier than now (RFC 3339).
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// Approvals only: the approval was given in a chat message.
    #[serde(default)]
    pub chat: Option<ChatBody>,
    /// Approvals only: confirm, as the approver, the chat approval with this event ID.
    #[serde(default)]
    pub confirm: Option<String>,
}

/// An approval given in chat.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatBody {
    /// The channel, e.g. `slack:#access-requests`.
    pub channel: String,
    /// The message's permalink.
    pub permalink: String,
    /// When the message was posted (RFC 3339); recorded as `occurred_at`.
    pub message_time: String,
    /// The message text; only its SHA-256 is kept.
    pub message_text: String,
    /// Whose approval it is, when not the caller's own (an attestation).
    #[serde(default)]
    pub approver: Option<String>,
}

/// The body of `POST /v1/cases/{id}/executions`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionBody {
    /// What was actually changed: a JSON object without floats, kept as
    /// sent so that [`ChangeSet::from_json`] parses it once and sees every key.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub change_set: Option<Box<serde_json::value::RawValue>>,
    /// Optional comment; for a failed execution, the error.
    #[serde(default)]
    pub comment: Option<String>,
    /// `completed` (default), `failed` or `revocation`.
    #[serde(default)]
    pub status: Option<String>,
    /// The execution was observed before its approval is recorded (give
    /// `occurred_at`); the case waits for the approval.
    #[serde(default)]
    pub observed: bool,
    /// When the change was applied, if earlier than now (RFC 3339).
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// What was applied, where it differs from the approved change; every
    /// field left out is the approved value. Recorded, never refused; a
    /// difference is reported by `verify` as `review.change-mismatch`.
    #[serde(default)]
    pub applied: Option<AppliedBody>,
}

/// The change actually applied, field by field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppliedBody {
    /// The subject, when another one was changed.
    #[serde(default)]
    pub subject: Option<SubjectBody>,
    /// The change kind, when another one was applied.
    #[serde(default)]
    pub change: Option<String>,
    /// The entitlement, when another one was given.
    #[serde(default)]
    pub entitlement: Option<String>,
    /// The resource, when another one was touched.
    #[serde(default)]
    pub resource: Option<String>,
}

/// The body of `POST /v1/cases/{id}/reviews`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// `confirmed`, `mismatch` or `revoke`.
    pub outcome: String,
    /// Optional comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// The body of `POST /v1/cases/{id}/comments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    /// The comment.
    pub text: String,
}

/// The body of `POST /v1/cases/{id}/merge`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The surviving case (`AC-...`); the case in the path is the duplicate.
    pub into: String,
    /// Why the two cases are one change (required: a merge is a judgement).
    pub comment: String,
}

/// The body of `POST /v1/principals`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrincipalBody {
    /// The stable name: 1 to 64 of a-z, 0-9, `.`, `_`, `-`, `@`.
    pub name: String,
    /// `human` (default), `service`, `automation` or `vendor`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Display name; defaults to the name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Organisation.
    #[serde(default)]
    pub org: Option<String>,
}

/// The body of `POST /v1/principals/{name}/tokens`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// Lifetime such as `30d`; omitted, the token does not expire.
    #[serde(default)]
    pub ttl: Option<String>,
}

/// Query of `GET /v1/cases`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CasesQuery {
    /// Only cases in this state.
    pub state: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// One case with its whole timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseDocument {
    /// The case ID.
    pub case_id: CaseId,
    /// Its state.
    pub state: CaseState,
    /// Everything derived from the events.
    pub view: CaseView,
    /// The approval stages of the case's rule and who counts for each.
    pub stages: Vec<custody_core::policy::StageProgress>,
    /// The events, in sequence order, exactly as stored.
    pub events: Vec<Event>,
}

/// The case list.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseList {
    /// Cases, newest first.
    pub cases: Vec<CaseSummary>,
}

/// The principal list.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrincipalList {
    /// Principals, by name.
    pub principals: Vec<Principal>,
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// The authenticated principal.
    pub principal: Principal,
    /// The token used.
    pub token_id: String,
}

/// Open a case for an access change.
#[utoipa::path(post, path = "/v1/cases", request_body = RequestBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key returns the first result")),
    responses(
        (status = 201, description = "Case opened", body = WriteOutcome),
        (status = 200, description = "Replayed, or an open case with the same ticket", body = WriteOutcome),
        (status = 409, description = "Refused", body = Problem, content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn create_case(
    State(state): State<AppState>,
    who: Authenticated,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<RequestBody>,
) -> Result<impl IntoResponse, Problem> {
    let (change, ticket) = parse_change(&body)?;
    let justification = optional_text("justification", body.justification)?;
    let actor = acting_for(&state, who, &change).await?;
    let outcome = state
        .store
        .write(CaseWrite {
            actor,
            idempotency_key: key,
            command: Opening::Request {
                // The server decides the rule from its policy; the client cannot.
                rule: state.policy.decide(&change),
                change,
                justification,
                ticket,
            }
            .into(),
            occurred_at: None,
        })
        .await?;
    let status = if outcome.replayed || outcome.existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(outcome)))
}

/// The body of `POST /v1/break-glass`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassBody {
    /// Whose access changed.
    pub subject: SubjectBody,
    /// The entitlement.
    pub entitlement: String,
    /// `grant` (default), `revoke`, `create`, `rotate`, `delete` or `modify`.
    #[serde(default)]
    pub change: Option<String>,
    /// The resource.
    #[serde(default)]
    pub resource: Option<String>,
    /// For time-bound access.
    #[serde(default)]
    pub duration: Option<String>,
    /// The emergency (required).
    pub justification: String,
    /// The external ticket, as `SYSTEM:KEY`; the system is stored in
    /// lowercase and the key in uppercase.
    #[serde(default)]
    pub ticket: Option<String>,
    /// What was actually changed: a JSON object without floats, kept as
    /// sent so that [`ChangeSet::from_json`] parses it once and sees every key.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub change_set: Option<Box<serde_json::value::RawValue>>,
}

/// Break-glass: record a change made in an emergency, before approval. The
/// case is executed at once and waits for a mandatory post-hoc review by
/// someone else before its deadline; a missed deadline is escalated.
#[utoipa::path(post, path = "/v1/break-glass", request_body = BreakGlassBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry key")),
    responses(
        (status = 201, body = WriteOutcome),
        (status = 200, description = "Replayed: the same Idempotency-Key and body as an earlier break-glass", body = WriteOutcome),
        (status = 409, body = Problem)
    ),
    security(("bearer" = [])))]
pub async fn break_glass(
    State(state): State<AppState>,
    who: Authenticated,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<BreakGlassBody>,
) -> Result<impl IntoResponse, Problem> {
    let (change, ticket) = parse_change(&RequestBody {
        subject: SubjectBody {
            kind: body.subject.kind,
            id: body.subject.id,
        },
        entitlement: body.entitlement,
        change: body.change,
        resource: body.resource,
        duration: body.duration,
        justification: None,
        ticket: body.ticket,
    })?;
    let justification = validate_text("justification", &body.justification).map_err(invalid)?;
    let change_set = body
        .change_set
        .map(|text| ChangeSet::from_json(text.get()))
        .transpose()
        .map_err(invalid)?;
    let actor = acting_for(&state, who, &change).await?;
    let outcome = state
        .store
        .write(CaseWrite {
            actor,
            idempotency_key: key,
            command: Opening::BreakGlass {
                rule: state.policy.decide(&change),
                change,
                justification,
                ticket,
                change_set,
            }
            .into(),
            occurred_at: None,
        })
        .await?;
    let status = if outcome.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(outcome)))
}

fn parse_change(body: &RequestBody) -> Result<(Change, Option<Ticket>), Problem> {
    let subject = Subject {
        kind: SubjectKind::from_str(&body.subject.kind).map_err(invalid)?,
        id: validate_name("subject.id", &body.subject.id).map_err(invalid)?,
    };
    let kind = match &body.change {
        Some(kind) => ChangeKind::from_str(kind).map_err(invalid)?,
        None => ChangeKind::Grant,
    };
    let duration_seconds = body
        .duration
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(invalid)?;
    let change = Change::new(
        subject,
        kind,
        body.entitlement.clone(),
        body.resource.clone(),
        duration_seconds,
    )
    .map_err(invalid)?;
    let ticket = body
        .ticket
        .as_deref()
        .map(Ticket::from_str)
        .transpose()
        .map_err(invalid)?;
    Ok((change, ticket))
}

/// Approve a case.
#[utoipa::path(post, path = "/v1/cases/{case_id}/approvals", request_body = DecisionBody,
    params(("case_id" = String, Path, description = "AC-..."), ("Idempotency-Key" = Option<String>, Header, description = "Retry key")),
    responses((status = 200, body = WriteOutcome), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn approve(
    State(state): State<AppState>,
    who: Authenticated,
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
    who: Authenticated,
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
    who: Authenticated,
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
    who: Authenticated,
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
    who: Authenticated,
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
    who: Authenticated,
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

/// One case with its whole timeline.
#[utoipa::path(get, path = "/v1/cases/{case_id}",
    params(("case_id" = String, Path, description = "AC-...")),
    responses((status = 200, body = CaseDocument), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn show_case(
    State(state): State<AppState>,
    _who: Authenticated,
    ApiPath(case_id): ApiPath<String>,
) -> Result<Json<CaseDocument>, Problem> {
    let case_id = parse_case_id(&case_id)?;
    let (view, events) = state.store.case(&case_id).await?;
    Ok(Json(CaseDocument {
        case_id,
        state: view.state,
        stages: view.stage_progress(None),
        view,
        events,
    }))
}

/// List cases, newest first.
#[utoipa::path(get, path = "/v1/cases", params(CasesQuery),
    responses((status = 200, body = CaseList), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_cases(
    State(state): State<AppState>,
    _who: Authenticated,
    ApiQuery(query): ApiQuery<CasesQuery>,
) -> Result<Json<CaseList>, Problem> {
    let case_state = query
        .state
        .as_deref()
        .map(CaseState::from_str)
        .transpose()
        .map_err(Problem::invalid)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let cases = state.store.cases(case_state, limit).await?;
    Ok(Json(CaseList { cases }))
}

/// Add a principal (admins only).
#[utoipa::path(post, path = "/v1/principals", request_body = PrincipalBody,
    responses((status = 201, body = Principal), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn add_principal(
    State(state): State<AppState>,
    who: Authenticated,
    ApiJson(body): ApiJson<PrincipalBody>,
) -> Result<(StatusCode, Json<Principal>), Problem> {
    who.require_admin()?;
    let id = PrincipalId::from_str(&body.name).map_err(invalid)?;
    if id.as_str() == custody_core::model::SYSTEM_PRINCIPAL {
        return Err(Problem::invalid(
            "`system` is reserved for the ledger's own events (timers, escalations)",
        ));
    }
    let kind = match &body.kind {
        Some(kind) => PrincipalKind::from_str(kind).map_err(invalid)?,
        None => PrincipalKind::Human,
    };
    let mut groups = body
        .groups
        .iter()
        .map(|group| validate_name("group", group))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    groups.sort();
    groups.dedup();
    let principal = Principal {
        display_name: match body.display_name {
            Some(name) => {
                custody_core::model::validate_label("display_name", &name).map_err(invalid)?
            }
            None => id.to_string(),
        },
        id,
        kind,
        groups,
        org: body
            .org
            .map(|org| validate_name("org", &org))
            .transpose()
            .map_err(invalid)?,
    };
    // The actor of the `principal_added` event is the authenticated admin.
    let principal = state
        .store
        .add_principal(principal, Some(who.actor))
        .await?;
    Ok((StatusCode::CREATED, Json(principal)))
}

/// The body of `PUT /v1/principals/{name}/groups`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupsBody {
    /// The principal's groups from now on (`admins` makes an admin).
    pub groups: Vec<String>,
}

/// Set a principal's groups (admins only); recorded in the administration
/// record as `principal_groups_changed` by the caller.
#[utoipa::path(put, path = "/v1/principals/{name}/groups", request_body = GroupsBody,
    params(("name" = String, Path, description = "principal name")),
    responses((status = 200, body = Principal), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_groups(
    State(state): State<AppState>,
    who: Authenticated,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<GroupsBody>,
) -> Result<Json<Principal>, Problem> {
    who.require_admin()?;
    let principal =
        PrincipalId::from_str(&name).map_err(|error| Problem::not_found(error.to_string()))?;
    let mut groups = body
        .groups
        .iter()
        .map(|group| validate_name("group", group))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    groups.sort();
    groups.dedup();
    Ok(Json(
        state.store.set_groups(principal, groups, who.actor).await?,
    ))
}

/// List principals.
#[utoipa::path(get, path = "/v1/principals", responses((status = 200, body = PrincipalList)),
    security(("bearer" = [])))]
pub async fn list_principals(
    State(state): State<AppState>,
    _who: Authenticated,
) -> Result<Json<PrincipalList>, Problem> {
    Ok(Json(PrincipalList {
        principals: state.store.principals().await?,
    }))
}

/// Issue a bearer token for a principal (admins only). The secret is returned once.
#[utoipa::path(post, path = "/v1/principals/{name}/tokens", request_body = TokenBody,
    params(("name" = String, Path, description = "principal name")),
    responses((status = 201, body = IssuedToken), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    who: Authenticated,
    ApiPath(name): ApiPath<String>,
    OptionalJson(body): OptionalJson<TokenBody>,
) -> Result<(StatusCode, Json<IssuedToken>), Problem> {
    who.require_admin()?;
    // A malformed name names no principal.
    let principal = PrincipalId::from_str(&name)
        .map_err(|error| Problem::not_found(format!("principal {name} does not exist: {error}")))?;
    let ttl = body
        .ttl
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(invalid)?;
    let issued = state
        .store
        .create_token(principal, ttl, Some(who.actor))
        .await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// Query of `GET /v1/tokens`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokensQuery {
    /// Only this principal's tokens.
    pub principal: Option<String>,
}

/// The token list.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Tokens, newest first; never their secrets.
    pub tokens: Vec<TokenInfo>,
}

/// List issued tokens (admins see all; others see their own).
#[utoipa::path(get, path = "/v1/tokens", params(TokensQuery),
    responses((status = 200, body = TokenList), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    who: Authenticated,
    ApiQuery(query): ApiQuery<TokensQuery>,
) -> Result<Json<TokenList>, Problem> {
    let principal = query
        .principal
        .as_deref()
        .map(PrincipalId::from_str)
        .transpose()
        .map_err(invalid)?;
    let principal = if who.require_admin().is_ok() {
        principal
    } else {
        match principal {
            Some(other) if other != who.principal.id => {
                return Err(Problem::forbidden(format!(
                    "only members of `{}` may list another principal's tokens",
                    crate::ADMINS_GROUP
                )))
            }
            _ => Some(who.principal.id.clone()),
        }
    };
    Ok(Json(TokenList {
        tokens: state.store.tokens(principal.as_ref()).await?,
    }))
}

/// Revoke a token (admins, or the token's own principal). From the moment
/// this returns, the token authenticates nothing.
#[utoipa::path(delete, path = "/v1/tokens/{token_id}",
    params(("token_id" = String, Path, description = "tok_...")),
    responses((status = 200, body = TokenInfo), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    who: Authenticated,
    ApiPath(token_id): ApiPath<String>,
) -> Result<Json<TokenInfo>, Problem> {
    let token = state
        .store
        .token(&token_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("token {token_id} does not exist")))?;
    if token.principal != who.principal.id.as_str() {
        who.require_admin()?;
    }
    Ok(Json(state.store.revoke_token(&token_id, who.actor).await?))
}

/// Query of `GET /v1/notifications`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationsQuery {
    /// Only the notifications of this case.
    pub case: Option<String>,
    /// Only those not delivered (pending or dead).
    #[serde(default)]
    pub failed: bool,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// Notifications in the outbox.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    /// Newest first.
    pub notifications: Vec<custody_store::OutboxEntry>,
}

/// The notifications the workflow owes and their delivery state, newest first.
#[utoipa::path(get, path = "/v1/notifications", params(NotificationsQuery),
    responses((status = 200, body = NotificationList), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_notifications(
    State(state): State<AppState>,
    _who: Authenticated,
    ApiQuery(query): ApiQuery<NotificationsQuery>,
) -> Result<Json<NotificationList>, Problem> {
    let case_id = query.case.as_deref().map(parse_case_id).transpose()?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let notifications = state
        .store
        .notifications(case_id.as_ref(), query.failed, limit)
        .await?;
    Ok(Json(NotificationList { notifications }))
}

/// Make a pending or dead notification due now (admins only).
#[utoipa::path(post, path = "/v1/notifications/{delivery_id}/retry",
    params(("delivery_id" = String, Path, description = "The delivery ID")),
    responses((status = 200, body = custody_store::OutboxEntry), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn retry_notification(
    State(state): State<AppState>,
    who: Authenticated,
    ApiPath(delivery_id): ApiPath<String>,
) -> Result<Json<custody_store::OutboxEntry>, Problem> {
    who.require_admin()?;
    match state.store.retry_delivery(&delivery_id).await {
        Ok(entry) => Ok(Json(entry)),
        Err(custody_store::StoreError::InvalidRequest(message)) => Err(Problem::not_found(message)),
        Err(error) => Err(error.into()),
    }
}

/// The policy a node decides new cases with, and every policy the
/// deployment adopted (the policy record), oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyDocument {
    /// SHA-256 of the policy this node decides new cases with.
    pub policy_hash: String,
    /// That policy (its rules, in order).
    pub policy: custody_core::policy::Policy,
    /// The ID of the deployment's policy record.
    pub record: Option<String>,
    /// Every adoption recorded, oldest first.
    pub history: Vec<PolicyAdoption>,
}

/// One recorded adoption of a policy.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyAdoption {
    /// The `policy_adopted` event.
    pub event_id: String,
    /// Its position in the log's policy record.
    pub seq: u64,
    /// When it was recorded.
    pub recorded_at: String,
    /// The policy's hash.
    pub policy_hash: String,
    /// The policy replaced.
    pub previous_hash: Option<String>,
    /// Where it came from.
    pub source: String,
    /// The rule names, in order.
    pub rules: Vec<String>,
}

/// The policy in force and the record of every policy change.
#[utoipa::path(get, path = "/v1/policy", responses((status = 200, body = PolicyDocument), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn policy(
    State(state): State<AppState>,
    _who: Authenticated,
) -> Result<Json<PolicyDocument>, Problem> {
    let events = state.store.policy_history().await?;
    let record = events.first().map(|event| event.case_id.to_string());
    let history = events
        .iter()
        .filter_map(|event| match &event.body {
            custody_core::event::EventBody::PolicyAdopted(adopted) => Some(PolicyAdoption {
                event_id: event.event_id.to_string(),
                seq: event.seq,
                recorded_at: event.recorded_at.to_string(),
                policy_hash: adopted.policy_hash.to_hex(),
                previous_hash: adopted.previous_hash.map(|hash| hash.to_hex()),
                source: adopted.source.clone(),
                rules: adopted.policy["rules"]
                    .as_array()
                    .map(|rules| {
                        rules
                            .iter()
                            .filter_map(|rule| rule["name"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            _ => None,
        })
        .collect();
    Ok(Json(PolicyDocument {
        policy_hash: state.policy.hash().to_hex(),
        policy: (*state.policy).clone(),
        record,
        history,
    }))
}

/// The authenticated caller.
#[utoipa::path(get, path = "/v1/whoami", responses((status = 200, body = WhoAmI), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn whoami(who: Authenticated) -> Json<WhoAmI> {
    let token_id = match &who.actor.auth {
        custody_core::model::AuthContext::Token { token_id } => token_id.clone(),
        _ => String::new(),
    };
    Json(WhoAmI {
        principal: who.principal,
        token_id,
    })
}

pub(crate) async fn write(
    state: &AppState,
    who: Authenticated,
    idempotency_key: String,
    command: CaseCommand,
    occurred_at: Option<String>,
) -> Result<Json<WriteOutcome>, Problem> {
    let occurred_at = parse_occurred_at(occurred_at)?;
    let actor = if who.principal.kind == custody_core::PrincipalKind::Vendor {
        // A vendor's grant must cover the case's change; the change of a case
        // never changes, so reading it before the write is safe.
        let case_id = command
            .case_id()
            .ok_or_else(|| Problem::invalid("this write names no case"))?;
        let view = state.store.case_view(case_id).await?;
        acting_for(state, who, &view.change).await?
    } else {
        who.actor
    };
    let outcome = state
        .store
        .write(CaseWrite {
            actor,
            idempotency_key,
            command,
            occurred_at,
        })
        .await?;
    Ok(Json(outcome))
}

/// The actor of a write on `change`: for a vendor principal, the delegation
/// grant it acts under and the party it acts for, or a refusal when no grant
/// in force covers the change.
async fn acting_for(
    state: &AppState,
    who: Authenticated,
    change: &Change,
) -> Result<custody_core::Actor, Problem> {
    if who.principal.kind != custody_core::PrincipalKind::Vendor {
        return Ok(who.actor);
    }
    let grants = state.store.delegations().await?;
    let grant =
        custody_core::delegation::grant_for(&grants, &who.principal, change, Timestamp::now())
            .map_err(Problem::refused)?;
    let mut actor = who.actor;
    if let Some(grant) = grant {
        actor.delegation_grant = Some(grant.grant_id.clone());
        actor.on_behalf_of = Some(grant.on_behalf_of.clone());
    }
    Ok(actor)
}

/// The body of `POST /v1/delegations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegationBody {
    /// The vendor organisation.
    pub vendor_org: String,
    /// Limit the grant to these vendor principals (default: any of the organisation).
    #[serde(default)]
    pub principals: Vec<String>,
    /// The internal principal or team the vendor acts for.
    pub on_behalf_of: String,
    /// Entitlement patterns covered (`*` wildcard; default: any).
    #[serde(default)]
    pub entitlements: Vec<String>,
    /// Resource patterns covered (default: any).
    #[serde(default)]
    pub resources: Vec<String>,
    /// How long the grant lasts, such as `30d`.
    pub valid_for: String,
}

/// The list of delegation grants.
#[derive(Debug, Serialize, ToSchema)]
pub struct DelegationList {
    /// Every grant, in force or not.
    pub delegations: Vec<custody_core::delegation::DelegationGrant>,
}

/// Grant a vendor organisation the right to act for an internal party (admins only).
#[utoipa::path(post, path = "/v1/delegations", request_body = DelegationBody,
    responses((status = 201, body = custody_core::delegation::DelegationGrant), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn grant_delegation(
    State(state): State<AppState>,
    who: Authenticated,
    ApiJson(body): ApiJson<DelegationBody>,
) -> Result<(StatusCode, Json<custody_core::delegation::DelegationGrant>), Problem> {
    who.require_admin()?;
    let seconds = parse_duration(&body.valid_for).map_err(invalid)?;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|error| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            crate::problem::types::INTERNAL,
            "Internal error",
            format!("no randomness available: {error}"),
        )
    })?;
    let now = Timestamp::now();
    let grant = custody_core::delegation::DelegationGrant {
        grant_id: format!("dg_{}", custody_core::hex::encode(&suffix)),
        vendor_org: validate_name("vendor_org", &body.vendor_org).map_err(invalid)?,
        principals: body
            .principals
            .iter()
            .map(|name| PrincipalId::from_str(name))
            .collect::<Result<_, _>>()
            .map_err(invalid)?,
        on_behalf_of: validate_name("on_behalf_of", &body.on_behalf_of).map_err(invalid)?,
        entitlements: body
            .entitlements
            .iter()
            .map(|pattern| validate_name("entitlements", pattern))
            .collect::<Result<_, _>>()
            .map_err(invalid)?,
        resources: body
            .resources
            .iter()
            .map(|pattern| validate_name("resources", pattern))
            .collect::<Result<_, _>>()
            .map_err(invalid)?,
        valid_until: now.plus_seconds(seconds as i64),
        revoked_at: None,
        granted_by: who.principal.id.clone(),
        granted_at: now,
    };
    let grant = state.store.grant_delegation(grant, who.actor).await?;
    Ok((StatusCode::CREATED, Json(grant)))
}

/// List delegation grants.
#[utoipa::path(get, path = "/v1/delegations", responses((status = 200, body = DelegationList)),
    security(("bearer" = [])))]
pub async fn list_delegations(
    State(state): State<AppState>,
    _who: Authenticated,
) -> Result<Json<DelegationList>, Problem> {
    Ok(Json(DelegationList {
        delegations: state.store.delegations().await?,
    }))
}

/// Revoke a delegation grant (admins only): from then on it covers nothing.
#[utoipa::path(delete, path = "/v1/delegations/{grant_id}",
    params(("grant_id" = String, Path, description = "dg_...")),
    responses((status = 200, body = custody_core::delegation::DelegationGrant), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke_delegation(
    State(state): State<AppState>,
    who: Authenticated,
    ApiPath(grant_id): ApiPath<String>,
) -> Result<Json<custody_core::delegation::DelegationGrant>, Problem> {
    who.require_admin()?;
    match state.store.revoke_delegation(&grant_id, who.actor).await {
        Ok(grant) => Ok(Json(grant)),
        Err(custody_store::StoreError::InvalidRequest(message)) => Err(Problem::not_found(message)
            .with_hint("list delegation grants with `custody delegation list`")),
        Err(error) => Err(error.into()),
    }
}

/// The deployment's administration record: every principal added (with
/// its groups), token issued or revoked and delegation granted or revoked,
/// oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminRecordDocument {
    /// The record's ID (prove it with `custody log prove ID`).
    pub record: Option<String>,
    /// Its events, in sequence order, exactly as stored.
    pub events: Vec<Event>,
}

/// The administration record: who added whom (with which groups), who
/// issued and revoked which token, who granted and revoked which delegation.
#[utoipa::path(get, path = "/v1/admin/record",
    responses((status = 200, body = AdminRecordDocument), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn admin_record(
    State(state): State<AppState>,
    _who: Authenticated,
) -> Result<Json<AdminRecordDocument>, Problem> {
    let events = state.store.admin_record().await?;
    Ok(Json(AdminRecordDocument {
        record: events.first().map(|event| event.case_id.to_string()),
        events,
    }))
}

/// Clients may say a step happened earlier than it is recorded (a late
/// record), never later: an `occurred_at` in the future is refused, with a
/// minute of tolerance for clock skew.
fn parse_occurred_at(occurred_at: Option<String>) -> Result<Option<Timestamp>, Problem> {
    let Some(text) = occurred_at else {
        return Ok(None);
    };
    let occurred_at = Timestamp::parse(&text).map_err(invalid)?;
    if occurred_at > Timestamp::now().plus_seconds(60) {
        return Err(Problem::invalid(format!(
            "occurred_at {occurred_at} is in the future"
        )));
    }
    Ok(Some(occurred_at))
}

fn parse_case_id(text: &str) -> Result<CaseId, Problem> {
    CaseId::from_str(text).map_err(|error| {
        Problem::not_found(error.to_string())
            .with_hint("case IDs look like AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b71")
    })
}

fn optional_text(field: &'static str, text: Option<String>) -> Result<Option<String>, Problem> {
    text.map(|text| validate_text(field, &text))
        .transpose()
        .map_err(invalid)
}

fn invalid(error: impl std::fmt::Display) -> Problem {
    Problem::invalid(error.to_string())
}
