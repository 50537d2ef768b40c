//! The `/v1/` handlers, one module per resource. Each parses its input into
//! domain values at the edge, hands one command to the store and returns the
//! store's result. The bodies, queries and answers are `custody-api`'s types,
//! which the clients share.

pub mod admin;
pub mod cases;
pub mod decisions;
pub mod delegations;
pub mod evidence;
pub mod export;
pub mod identities;
pub mod log;
pub mod notifications;
pub mod policy;
pub mod principals;
pub mod tokens;

use std::str::FromStr;

use axum::Json;
use custody_core::command::CaseCommand;
use custody_core::model::{validate_text, Change};
use custody_core::{CaseId, Timestamp};
use custody_store::{CaseWrite, WriteOutcome};

use crate::extract::Caller;
use crate::problem::Problem;
use crate::AppState;

/// Writes `command` to a case as the caller: the one path every case write
/// of the handlers takes, so a vendor's write always names the grant it acts
/// under (and is refused when none covers the case's change), and a client's
/// `occurred_at` is never in the future.
pub(crate) async fn write(
    state: &AppState,
    who: Caller,
    idempotency_key: String,
    command: CaseCommand,
    occurred_at: Option<String>,
) -> Result<Json<WriteOutcome>, Problem> {
    let occurred_at = parse_occurred_at(occurred_at, state.clock.now())?;
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
            connector: None,
        })
        .await?;
    Ok(Json(outcome))
}

/// The actor of a write on `change`: for a vendor principal, the delegation
/// grant it acts under and the party it acts for, or a refusal when no grant
/// in force covers the change.
async fn acting_for(
    state: &AppState,
    who: Caller,
    change: &Change,
) -> Result<custody_core::Actor, Problem> {
    if who.principal.kind != custody_core::PrincipalKind::Vendor {
        return Ok(who.actor);
    }
    let grants = state.store.delegations().await?;
    let grant =
        custody_core::delegation::grant_for(&grants, &who.principal, change, state.clock.now())
            .map_err(Problem::refused)?;
    let mut actor = who.actor;
    if let Some(grant) = grant {
        actor.delegation_grant = Some(grant.grant_id.clone());
        actor.on_behalf_of = Some(grant.on_behalf_of.clone());
    }
    Ok(actor)
}

/// Clients may say a step happened earlier than it is recorded (a late
/// record), never later: an `occurred_at` in the future is refused, with a
/// minute of tolerance for clock skew. `now` is the server's clock.
fn parse_occurred_at(
    occurred_at: Option<String>,
    now: Timestamp,
) -> Result<Option<Timestamp>, Problem> {
    let Some(text) = occurred_at else {
        return Ok(None);
    };
    let occurred_at = Timestamp::parse(&text).map_err(invalid)?;
    if occurred_at > now.plus_seconds(60) {
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
