//! Opening cases (a request, or break-glass), one case's timeline and the
//! case list.

use std::str::FromStr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use custody_api::{BreakGlassBody, CaseDocument, CaseList, CasesQuery, RequestBody, SubjectBody};
use custody_core::change_set::ChangeSet;
use custody_core::command::Opening;
use custody_core::model::{
    parse_duration, validate_name, validate_text, Change, ChangeKind, Subject, SubjectKind, Ticket,
};
use custody_core::CaseState;
use custody_store::{CaseWrite, WriteOutcome};

use super::{acting_for, invalid, optional_text, parse_case_id};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller, IdempotencyKey};
use crate::problem::Problem;
use crate::AppState;

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
    who: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<RequestBody>,
) -> Result<impl IntoResponse, Problem> {
    let outcome = open_request(&state, who, key, body).await?;
    let status = if outcome.replayed || outcome.existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(outcome)))
}

/// Opens a case for a request: the code path of `POST /v1/cases`, which
/// the web console's request form takes too.
pub(crate) async fn open_request(
    state: &AppState,
    who: Caller,
    key: String,
    body: RequestBody,
) -> Result<WriteOutcome, Problem> {
    let (change, ticket) = parse_change(&body)?;
    may_open_drill(&who, body.drill, &change)?;
    if let Some(ticket) = &ticket {
        state
            .connectors
            .check_ticket(ticket, None)
            .map_err(Problem::refused)?;
    }
    let justification = optional_text("justification", body.justification)?;
    let actor = acting_for(state, who, &change).await?;
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
                drill: body.drill,
            }
            .into(),
            occurred_at: None,
            connector: None,
        })
        .await?;
    Ok(outcome)
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
    who: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<BreakGlassBody>,
) -> Result<impl IntoResponse, Problem> {
    let drill = body.drill;
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
        drill: body.drill,
    })?;
    may_open_drill(&who, drill, &change)?;
    if let Some(ticket) = &ticket {
        state
            .connectors
            .check_ticket(ticket, None)
            .map_err(Problem::refused)?;
    }
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
                drill: body.drill,
            }
            .into(),
            occurred_at: None,
            connector: None,
        })
        .await?;
    let status = if outcome.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(outcome)))
}

/// Members of this group (and admins) may open drill cases.
pub const DRILLS_GROUP: &str = "drills";

/// Only admins and members of [`DRILLS_GROUP`] open drill cases: a drill
/// case is left out of listings, exports and metrics, so letting anyone
/// mark a case as a drill would let anyone hide a real change.
///
/// And a drill case changes only the drills' namespace (a subject
/// `drill-...`, an entitlement `drill:...`): otherwise a member of `drills`
/// could record a real change as a drill and hide it.
fn may_open_drill(who: &Caller, drill: bool, change: &Change) -> Result<(), Problem> {
    if drill && !custody_core::is_drill_change(change) {
        return Err(Problem::refused(custody_core::lifecycle::Refusal {
            rule: custody_core::Code::DrillNotAllowed,
            message: format!(
                "{change} is not a drill's change: a drill case changes only subjects named `{}...` and entitlements named `{}...`",
                custody_core::case::DRILL_SUBJECT_PREFIX,
                custody_core::case::DRILL_ENTITLEMENT_PREFIX
            ),
            hint: Some(
                "leave `drill` out to record a real change (it is then listed and exported), or use a drill subject and entitlement"
                    .to_string(),
            ),
        }));
    }
    if !drill || who.principal.in_group(crate::ADMINS_GROUP) || who.principal.in_group(DRILLS_GROUP)
    {
        return Ok(());
    }
    Err(Problem::refused(custody_core::lifecycle::Refusal {
        rule: custody_core::Code::DrillNotAllowed,
        message: format!(
            "{} may not open a drill case: it is in neither `{}` nor `{DRILLS_GROUP}`",
            who.principal.id,
            crate::ADMINS_GROUP
        ),
        hint: Some(format!(
            "ask an admin to add the principal to the `{DRILLS_GROUP}` group, or leave `drill` out to open a real case"
        )),
    }))
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

/// One case with its whole timeline.
#[utoipa::path(get, path = "/v1/cases/{case_id}",
    params(("case_id" = String, Path, description = "AC-...")),
    responses((status = 200, body = CaseDocument), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn show_case(
    State(state): State<AppState>,
    _who: Caller,
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
    _who: Caller,
    ApiQuery(query): ApiQuery<CasesQuery>,
) -> Result<Json<CaseList>, Problem> {
    let case_state = query
        .state
        .as_deref()
        .map(CaseState::from_str)
        .transpose()
        .map_err(Problem::invalid)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let cases = state
        .store
        .cases_filtered(
            case_state,
            limit,
            query.unsanctioned.unwrap_or(false),
            query.include_drills.unwrap_or(false),
        )
        .await?;
    Ok(Json(CaseList { cases }))
}
