//! The `/v1/log/` handlers: checkpoints, entries, proofs. Shapes are fixed:
//! monitors and scripts depend on them.
//!
//! Checkpoints, proofs and verifier keys hold only hashes and are served
//! without a token, so witnesses and monitors can follow the log. Entries and
//! case proofs hold the events themselves and need a token.

use std::str::FromStr;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use custody_api::log::MAX_ENTRIES_PER_PAGE;
use custody_api::{
    ConsistencyDocument, ConsistencyQuery, EntriesDocument, EntriesQuery, EntryDocument,
    InclusionDocument, InclusionQuery, KeysDocument,
};
use custody_core::proof::{CaseProofBundle, CaseProofEvent, CASE_PROOF_FORMAT};
use custody_core::CaseId;
use custody_store::StoredCheckpoint;

use crate::extract::{ApiPath, ApiQuery, Caller};
use crate::problem::{types, Problem};
use crate::AppState;

/// The latest signed checkpoint, exactly the note bytes, with the
/// cosignatures of its witnesses appended as further signature lines.
#[utoipa::path(get, path = "/v1/log/checkpoint",
    responses((status = 200, description = "C2SP signed checkpoint note", content_type = "text/plain"),
        (status = 404, body = Problem)))]
pub async fn checkpoint(State(state): State<AppState>) -> Result<Response, Problem> {
    let latest = state
        .store
        .latest_cosigned_checkpoint()
        .await?
        .ok_or_else(|| Problem::not_found("the log is empty: no checkpoint has been signed yet"))?;
    Ok(note_response(&latest))
}

/// Sign a checkpoint now, covering every acknowledged write (admins only).
#[utoipa::path(post, path = "/v1/log/checkpoint",
    responses((status = 200, description = "the new (or unchanged latest) checkpoint", content_type = "text/plain"),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn sign_checkpoint(
    State(state): State<AppState>,
    who: Caller,
) -> Result<Response, Problem> {
    who.require_admin()?;
    let signed = state
        .checkpoint_copies
        .sign(&state.store, &state.log)
        .await?
        .ok_or_else(|| Problem::not_found("the log is empty: there is nothing to sign yet"))?;
    let signed = state.store.with_cosignatures(signed).await?;
    Ok(note_response(&signed))
}

/// The log's verifier keys.
#[utoipa::path(get, path = "/v1/log/keys", responses((status = 200, body = KeysDocument)))]
pub async fn keys(State(state): State<AppState>) -> Json<KeysDocument> {
    Json(KeysDocument {
        origin: state.log.origin.clone(),
        verifier_keys: state
            .log
            .verifier_keys()
            .iter()
            .map(ToString::to_string)
            .collect(),
    })
}

/// Log entries `[start, end)`.
#[utoipa::path(get, path = "/v1/log/entries", params(EntriesQuery),
    responses((status = 200, body = EntriesDocument), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn entries(
    State(state): State<AppState>,
    _who: Caller,
    ApiQuery(query): ApiQuery<EntriesQuery>,
) -> Result<Json<EntriesDocument>, Problem> {
    let entries = state
        .store
        .entries(query.start, query.end, MAX_ENTRIES_PER_PAGE)
        .await?;
    Ok(Json(EntriesDocument {
        entries: entries
            .into_iter()
            .map(|entry| EntryDocument {
                index: entry.index,
                leaf: base64::engine::general_purpose::STANDARD.encode(&entry.leaf),
                case_id: entry.case_id,
            })
            .collect(),
    }))
}

/// Inclusion proof of one leaf.
#[utoipa::path(get, path = "/v1/log/proof/inclusion", params(InclusionQuery),
    responses((status = 200, body = InclusionDocument), (status = 400, body = Problem)))]
pub async fn inclusion(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<InclusionQuery>,
) -> Result<Json<InclusionDocument>, Problem> {
    let proof = state.store.inclusion_proof(query.index, query.size).await?;
    Ok(Json(InclusionDocument {
        index: query.index,
        size: query.size,
        proof: encode_hashes(&proof),
    }))
}

/// Consistency proof between two tree sizes.
#[utoipa::path(get, path = "/v1/log/proof/consistency", params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyDocument), (status = 400, body = Problem)))]
pub async fn consistency(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ConsistencyQuery>,
) -> Result<Json<ConsistencyDocument>, Problem> {
    let proof = state.store.consistency_proof(query.from, query.to).await?;
    Ok(Json(ConsistencyDocument {
        from: query.from,
        to: query.to,
        proof: encode_hashes(&proof),
    }))
}

/// Every event of a case with a C2SP tlog-proof against the latest
/// checkpoint (signed now if the latest does not yet cover the case).
#[utoipa::path(get, path = "/v1/cases/{case_id}/proof",
    params(("case_id" = String, Path, description = "AC-...")),
    responses((status = 200, body = CaseProofBundle), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn case_proof(
    State(state): State<AppState>,
    _who: Caller,
    ApiPath(case_id): ApiPath<String>,
) -> Result<Json<CaseProofBundle>, Problem> {
    let case_id =
        CaseId::from_str(&case_id).map_err(|error| Problem::not_found(error.to_string()))?;
    let (checkpoint, proofs) = case_proofs(&state, &case_id).await?;
    let mut events = Vec::with_capacity(proofs.len());
    for (entry, proof) in proofs {
        let tlog_proof = custody_log::TlogProof::new(entry.index, proof, &checkpoint.note)
            .map_err(|error| {
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    types::INTERNAL,
                    "Internal error",
                    format!(
                        "cannot assemble the proof of log entry {}: {error}",
                        entry.index
                    ),
                )
            })?;
        events.push(CaseProofEvent {
            index: entry.index,
            leaf: base64::engine::general_purpose::STANDARD.encode(&entry.leaf),
            proof: tlog_proof.to_text(),
        });
    }
    Ok(Json(CaseProofBundle {
        format: CASE_PROOF_FORMAT.to_string(),
        case_id: case_id.to_string(),
        checkpoint: checkpoint.note,
        events,
    }))
}

/// The latest checkpoint, with the witnesses' cosignatures of it, and every
/// event of `case_id` with its inclusion proof against it: what
/// `GET /v1/cases/{id}/proof` and the console's case page show.
///
/// # Errors
///
/// Not found when the log is empty; the store's errors.
pub async fn case_proofs(
    state: &AppState,
    case_id: &CaseId,
) -> Result<
    (
        StoredCheckpoint,
        Vec<(custody_store::LogEntry, Vec<[u8; 32]>)>,
    ),
    Problem,
> {
    // Signing covers every acknowledged write, so the case's events are all
    // in the checkpoint; when the log has not grown, the latest is reused.
    let checkpoint = state
        .checkpoint_copies
        .sign(&state.store, &state.log)
        .await?
        .ok_or_else(|| Problem::not_found(format!("case {case_id} does not exist")))?;
    // The witnesses' cosignatures of it travel with the proof.
    let checkpoint = state.store.with_cosignatures(checkpoint).await?;
    let proofs = state.store.case_proofs(case_id, &checkpoint).await?;
    Ok((checkpoint, proofs))
}

fn note_response(checkpoint: &StoredCheckpoint) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        checkpoint.note.clone(),
    )
        .into_response()
}

fn encode_hashes(hashes: &[[u8; 32]]) -> Vec<String> {
    hashes
        .iter()
        .map(|hash| base64::engine::general_purpose::STANDARD.encode(hash))
        .collect()
}
