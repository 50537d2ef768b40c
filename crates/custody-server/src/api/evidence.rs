//! Evidence: uploads streamed into the content-addressed blob store, links
//! captured as snapshots (with the SSRF rules of `custody-evidence`),
//! rechecks of captured links, and downloads.
//!
//! A blob is durable (temporary file, fsync, rename) before the event that
//! records it is written, so an event never names bytes that are not stored.
//! An upload over the size limit is refused before anything is written
//! (`Content-Length`) or while streaming (the partial file is removed). A
//! write refused after its upload was stored lets go of the blob when
//! nothing else on this node claimed it ([`custody_evidence::claims`]), so
//! bad input leaves no unreferenced blob behind.

use custody_core::Code;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use custody_api::evidence::MAX_FILE_NAME_BYTES;
use custody_api::{
    EvidenceItem, EvidenceList, EvidenceRecordView, LinkBody, RecheckBody, RecheckReport,
    RecheckResult, ReferenceUploadOutcome, ReferenceUploadQuery, UploadQuery,
};
use custody_core::command::{CaseStep, Opening};
use custody_core::event::{EventBody, Evidence, LinkCapture, LinkFailure, Recheck};
use custody_core::{CaseId, Sha256Hash, Timestamp};
use custody_evidence::{
    BlobClaims, BlobError, BlobStore, ClaimError, FetchError, FetchPolicy, Sha256Digest, StoredBlob,
};
use futures_util::TryStreamExt;
use serde::Deserialize;

use crate::extract::{ApiJson, ApiPath, Caller, IdempotencyKey};
use crate::problem::{types, Problem};
use crate::AppState;

/// The `[evidence]` section of the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceConfig {
    /// The largest upload accepted, in bytes (default 100 MiB).
    #[serde(default = "default_max_upload_bytes")]
    pub max_upload_bytes: u64,
    /// Where blobs are stored: `{ backend = "local", path = "..." }` (default:
    /// `evidence/` in the data directory) or `{ backend = "s3", ... }`, which
    /// every node can reach.
    #[serde(default)]
    pub store: custody_evidence::BlobStoreConfig,
    /// How links are captured: `timeout_seconds`, `max_bytes`,
    /// `max_redirects`, and `allow` (addresses, networks or host names that
    /// may be fetched although they are loopback, private or link-local).
    #[serde(default)]
    pub fetch: FetchPolicy,
}

fn default_max_upload_bytes() -> u64 {
    100 * 1024 * 1024
}

impl Default for EvidenceConfig {
    fn default() -> EvidenceConfig {
        EvidenceConfig {
            max_upload_bytes: default_max_upload_bytes(),
            store: custody_evidence::BlobStoreConfig::default(),
            fetch: FetchPolicy::default(),
        }
    }
}

impl EvidenceConfig {
    /// Checks the section.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_upload_bytes == 0 {
            return Err("evidence.max_upload_bytes must be above 0".to_string());
        }
        self.store
            .validate()
            .map_err(|error| format!("evidence.store: {error}"))?;
        self.fetch
            .validate()
            .map_err(|error| format!("evidence.fetch: {error}"))
    }
}

/// What the evidence handlers need beside the store.
#[derive(Clone)]
pub struct EvidenceState {
    /// The blob store.
    pub blobs: Arc<dyn BlobStore>,
    /// Limits and the link policy.
    pub config: Arc<EvidenceConfig>,
    /// The writes in flight for each blob stored on this node.
    pub claims: Arc<BlobClaims>,
}

impl EvidenceState {
    /// Evidence handling over `blobs` with `config`.
    pub fn new(blobs: Arc<dyn BlobStore>, config: EvidenceConfig) -> EvidenceState {
        EvidenceState {
            blobs,
            config: Arc::new(config),
            claims: Arc::new(BlobClaims::default()),
        }
    }

    /// Runs `write`, which records `stored` (a blob stored just before it):
    /// a write refused or failed lets go of a blob only its own upload
    /// stored and nothing else claimed since ([`custody_evidence::claims`]).
    async fn recording<T>(
        &self,
        stored: Option<&StoredBlob>,
        write: impl std::future::Future<Output = Result<T, Problem>>,
    ) -> Result<T, Problem> {
        let Some(stored) = stored else {
            return write.await;
        };
        let claim = self
            .claims
            .claim(self.blobs.as_ref(), stored)
            .await
            .map_err(|error| match error {
                ClaimError::Store(error) => blob_problem(error),
                removed @ ClaimError::Removed { .. } => Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    types::UNAVAILABLE,
                    "Evidence removed while stored",
                    removed.to_string(),
                ),
            })?;
        let mut guard = ClaimGuard {
            claims: self.claims.clone(),
            claim: Some(claim),
        };
        let outcome = write.await;
        let claim = guard.claim.take().expect("the claim is taken only here");
        match &outcome {
            Ok(_) => self.claims.recorded(claim).await,
            Err(_) => {
                if let Err(error) = self.claims.refused(self.blobs.as_ref(), claim).await {
                    // Left behind, `verify` reports it as unreferenced.
                    tracing::warn!(%error, sha256 = %stored.sha256, "could not remove the blob of a refused write");
                }
            }
        }
        outcome
    }
}

/// Ends a claim whose request was dropped before its write was decided (the
/// client went away): as recorded, since the write may have been made, so
/// the blob stays, and the claim does not outlive the request.
struct ClaimGuard {
    claims: Arc<BlobClaims>,
    claim: Option<custody_evidence::Claim>,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            let claims = self.claims.clone();
            tokio::spawn(async move { claims.recorded(claim).await });
        }
    }
}

/// Upload a file as evidence of a case: the body is streamed into the blob
/// store by its SHA-256 before the event that records it is written.
#[utoipa::path(post, path = "/v1/cases/{case_id}/evidence",
    params(("case_id" = String, Path, description = "The case ID"), UploadQuery,
        ("Idempotency-Key" = String, Header, description = "Retrying with the same key is safe")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = custody_store::WriteOutcome), (status = 404, body = Problem), (status = 413, body = Problem)),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    who: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(case_id): ApiPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<custody_store::WriteOutcome>, Problem> {
    let case_id = parse_case(&case_id)?;
    let query = QueryParameters::parse(query.as_deref())?;
    let name = file_name(&query)?;
    // The case must exist, and take evidence, before a byte is stored.
    let view = state.store.case_view(&case_id).await?;
    if view.state == custody_core::CaseState::Merged {
        return Err(Problem::refused(view.merged_refusal("attach evidence to")));
    }
    let (evidence, stored) = store_upload(&state, name, &headers, body).await?;
    state
        .evidence
        .recording(
            Some(&stored),
            super::write(
                &state,
                who,
                key,
                CaseStep::AttachEvidence { case_id, evidence }.into(),
                None,
            ),
        )
        .await
}

/// Upload evidence for an external reference (a ticket): it joins the case
/// that carries the reference, or is held in the reference's evidence record
/// until a case with that ticket is requested.
#[utoipa::path(post, path = "/v1/evidence",
    params(ReferenceUploadQuery,
        ("Idempotency-Key" = String, Header, description = "Retrying with the same key is safe")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = ReferenceUploadOutcome), (status = 400, body = Problem), (status = 413, body = Problem)),
    security(("bearer" = [])))]
pub async fn upload_for_reference(
    State(state): State<AppState>,
    who: Caller,
    IdempotencyKey(key): IdempotencyKey,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ReferenceUploadOutcome>, Problem> {
    let query = QueryParameters::parse(query.as_deref())?;
    let Some(ticket) = query.get("ticket") else {
        return Err(Problem::invalid(
            "the query names no reference: give `ticket=SYSTEM:KEY`, such as `?ticket=jira:SEC-142`",
        ));
    };
    let ticket: custody_core::model::Ticket = ticket
        .parse()
        .map_err(|error: custody_core::model::ModelError| Problem::invalid(error.to_string()))?;
    let name = file_name(&query)?;
    let (evidence, stored) = store_upload(&state, name, &headers, body).await?;
    let write = async {
        Ok(state
            .store
            .write(custody_store::CaseWrite {
                actor: who.actor,
                idempotency_key: key,
                command: Opening::HoldEvidence {
                    ticket: ticket.clone(),
                    evidence,
                }
                .into(),
                occurred_at: None,
                connector: None,
            })
            .await?)
    };
    let outcome = state.evidence.recording(Some(&stored), write).await?;
    let held = outcome
        .appended
        .first()
        .is_some_and(|event| event.kind == "evidence_held");
    let (record_id, message) = if held {
        (
            Some(outcome.case_id.to_string()),
            format!(
                "no case carries {ticket} yet: the evidence is held in the evidence record {} (`custody show {}`) and joins the first case requested with that ticket",
                outcome.case_id, outcome.case_id
            ),
        )
    } else {
        (
            None,
            format!(
                "attached to case {}, which carries {ticket}",
                outcome.case_id
            ),
        )
    };
    Ok(Json(ReferenceUploadOutcome {
        outcome,
        held,
        record_id,
        message,
    }))
}

/// Show an evidence record by its ID (the `record_id` of a held upload).
#[utoipa::path(get, path = "/v1/evidence/records/{record_id}",
    params(("record_id" = String, Path, description = "The evidence record's ID (AC-...)")),
    responses((status = 200, body = EvidenceRecordView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn record(
    State(state): State<AppState>,
    _who: Caller,
    ApiPath(record_id): ApiPath<String>,
) -> Result<Json<EvidenceRecordView>, Problem> {
    let not_found = || {
        Problem::not_found(format!("there is no evidence record {record_id}"))
            .with_hint("a record's ID is the `record_id` of an upload held for a ticket (`custody attach --ticket SYSTEM:KEY FILE`)")
    };
    let id: CaseId = record_id.parse().map_err(|_| not_found())?;
    let Some(record) = state.store.evidence_record(&id).await? else {
        return Err(not_found());
    };
    Ok(Json(EvidenceRecordView {
        kind: "evidence_record".to_string(),
        record_id: record.record_id,
        ticket: record.ticket,
        released_to: record.released_to,
        events: record.events,
    }))
}

/// The query parameters of a request, percent-decoded as UTF-8. Unlike a
/// form decoder, which turns bytes that are not UTF-8 into U+FFFD, a
/// parameter that does not decode to UTF-8 is refused, naming it.
struct QueryParameters(Vec<(String, String)>);

impl QueryParameters {
    fn parse(query: Option<&str>) -> Result<QueryParameters, Problem> {
        let mut parameters = Vec::new();
        for pair in query.unwrap_or_default().split('&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name).ok_or_else(|| {
                Problem::invalid("a query parameter's name is not percent-encoded UTF-8")
            })?;
            let value = percent_decode(value).ok_or_else(|| {
                Problem::invalid(format!(
                    "the query parameter `{}` is not percent-encoded UTF-8; nothing was stored",
                    custody_core::text::escape(&name)
                ))
                .with_hint("encode the value as UTF-8 before percent-encoding it")
            })?;
            parameters.push((name, value));
        }
        Ok(QueryParameters(parameters))
    }

    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Percent-decodes `text` (`+` is a space, as in forms) and insists on
/// UTF-8; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let high = (*bytes.get(index + 1)? as char).to_digit(16)?;
                let low = (*bytes.get(index + 2)? as char).to_digit(16)?;
                // Two hex digits: at most 255.
                decoded.push(u8::try_from(high * 16 + low).ok()?);
                index += 3;
            }
            b'+' => {
                decoded.push(b' ');
                index += 1;
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

/// The upload's file name, checked by the identifier rules (at most 255
/// bytes): no control, bidi, zero-width or look-alike character can make a
/// name such as `\u{202e}fdp.exe` show as `exe.pdf`.
fn file_name(query: &QueryParameters) -> Result<Option<String>, Problem> {
    let Some(name) = query.get("name") else {
        return Ok(None);
    };
    let name = custody_core::model::validate_name("name", name)
        .map_err(|error| Problem::invalid(error.to_string()))?;
    if name.len() > MAX_FILE_NAME_BYTES {
        return Err(Problem::invalid(format!(
            "name is longer than {MAX_FILE_NAME_BYTES} bytes"
        )));
    }
    Ok(Some(name))
}

/// Streams an upload into the blob store (refusing it over the limit, with
/// nothing stored) and describes what was stored.
async fn store_upload(
    state: &AppState,
    name: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Evidence, StoredBlob), Problem> {
    let limit = state.evidence.config.max_upload_bytes;
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > limit) {
        // Read (and drop) a bounded part of what the client is still sending,
        // so it reads this answer instead of a reset connection; nothing is
        // stored.
        drain(body).await;
        return Err(too_large(limit));
    }
    let declared_media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let mut reader =
        tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    let stored = state
        .evidence
        .blobs
        .put_stream(&mut reader, limit)
        .await
        .map_err(blob_problem)?;
    let evidence = Evidence {
        sha256: digest(stored.sha256),
        size: stored.size,
        file_name: name,
        declared_media_type,
        sniffed_media_type: stored.sniffed_media_type.clone(),
        link: None,
    };
    Ok((evidence, stored))
}

/// Capture a link as evidence: its content is fetched (never from loopback,
/// private, link-local or metadata addresses unless allowed), stored by its
/// SHA-256 and recorded with the final URL, status and fetch time. A link
/// that cannot be fetched is recorded as unverified.
#[utoipa::path(post, path = "/v1/cases/{case_id}/evidence/links", request_body = LinkBody,
    params(("case_id" = String, Path, description = "The case ID"),
        ("Idempotency-Key" = String, Header, description = "Retrying with the same key is safe")),
    responses((status = 200, body = custody_store::WriteOutcome), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn capture_link(
    State(state): State<AppState>,
    who: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiPath(case_id): ApiPath<String>,
    ApiJson(body): ApiJson<LinkBody>,
) -> Result<Json<custody_store::WriteOutcome>, Problem> {
    let case_id = parse_case(&case_id)?;
    state.store.case_view(&case_id).await?;
    let mut stored = None;
    let command = match custody_evidence::fetch_snapshot(
        &body.url,
        &state.evidence.config.fetch,
        state.evidence.blobs.as_ref(),
    )
    .await
    {
        Ok(snapshot) if snapshot.is_success() => {
            stored = Some(snapshot.blob.clone());
            CaseStep::AttachEvidence {
                case_id,
                evidence: Evidence {
                    sha256: digest(snapshot.blob.sha256),
                    size: snapshot.blob.size,
                    file_name: None,
                    declared_media_type: snapshot.content_type.clone(),
                    sniffed_media_type: snapshot.blob.sniffed_media_type.clone(),
                    link: Some(LinkCapture {
                        url: body.url.clone(),
                        final_url: snapshot.final_url.clone(),
                        status: snapshot.status,
                        fetched_at: Timestamp::parse(&snapshot.fetched_at)
                            .unwrap_or_else(|_| state.clock.now()),
                    }),
                },
            }
            .into()
        }
        // A non-2xx answer is `FetchError::ErrorStatus` (nothing stored);
        // this arm only guards the `Snapshot` contract.
        Ok(snapshot) => CaseStep::RecordLinkFailure {
            case_id,
            failure: LinkFailure {
                url: body.url.clone(),
                error: format!("{} answered HTTP {}", snapshot.final_url, snapshot.status),
            },
        }
        .into(),
        Err(error) => match refusal(&error) {
            Some(problem) => return Err(problem),
            None => CaseStep::RecordLinkFailure {
                case_id,
                failure: LinkFailure {
                    url: body.url.clone(),
                    error: error.to_string(),
                },
            }
            .into(),
        },
    };
    state
        .evidence
        .recording(
            stored.as_ref(),
            super::write(&state, who, key, command, None),
        )
        .await
}

/// Fetch every captured link again and record, in its case, whether it
/// still serves what was captured (admins only).
#[utoipa::path(post, path = "/v1/evidence/recheck", request_body = RecheckBody,
    responses((status = 200, body = RecheckReport), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn recheck(
    State(state): State<AppState>,
    who: Caller,
    ApiJson(body): ApiJson<RecheckBody>,
) -> Result<Json<RecheckReport>, Problem> {
    who.require_admin()?;
    let cases: Vec<CaseId> = match &body.case {
        Some(case) => vec![parse_body_case(case)?],
        None => state
            .store
            .cases(None, 1000)
            .await?
            .into_iter()
            .filter_map(|summary| summary.case_id.parse().ok())
            .collect(),
    };
    let mut rechecked = Vec::new();
    for case_id in cases {
        let (_, events) = state.store.case(&case_id).await?;
        // The latest snapshot of each link.
        let mut links: Vec<(String, Sha256Hash)> = Vec::new();
        for event in &events {
            let latest = match &event.body {
                EventBody::EvidenceAttached(Evidence {
                    sha256,
                    link: Some(link),
                    ..
                }) => Some((link.url.clone(), *sha256)),
                EventBody::EvidenceRechecked(Recheck {
                    url,
                    sha256: Some(sha256),
                    ..
                }) => Some((url.clone(), *sha256)),
                _ => None,
            };
            if let Some((url, sha256)) = latest {
                links.retain(|(known, _)| known != &url);
                links.push((url, sha256));
            }
        }
        for (url, previous) in links {
            let outcome = custody_evidence::fetch_snapshot(
                &url,
                &state.evidence.config.fetch,
                state.evidence.blobs.as_ref(),
            )
            .await;
            let mut stored = None;
            let recheck = match outcome {
                Ok(snapshot) if snapshot.is_success() => {
                    stored = Some(snapshot.blob.clone());
                    let now = digest(snapshot.blob.sha256);
                    Recheck {
                        url: url.clone(),
                        previous,
                        sha256: Some(now),
                        status: Some(snapshot.status),
                        drifted: now != previous,
                        error: None,
                    }
                }
                Ok(snapshot) => Recheck {
                    url: url.clone(),
                    previous,
                    sha256: None,
                    status: Some(snapshot.status),
                    drifted: true,
                    error: Some(format!("answered HTTP {}", snapshot.status)),
                },
                Err(FetchError::ErrorStatus { status, .. }) => Recheck {
                    url: url.clone(),
                    previous,
                    sha256: None,
                    status: Some(status),
                    drifted: true,
                    error: Some(format!("answered HTTP {status}")),
                },
                Err(error) => Recheck {
                    url: url.clone(),
                    previous,
                    sha256: None,
                    status: None,
                    drifted: true,
                    error: Some(error.to_string()),
                },
            };
            let drifted = recheck.drifted;
            // The wall clock's microseconds only make the key unique per
            // recheck (a test clock that stands still would replay the
            // first); no decision reads them.
            let key = format!(
                "recheck:{case_id}:{}:{}",
                Sha256Hash::of(url.as_bytes()).to_hex(),
                Timestamp::now().as_micros()
            );
            let write = super::write(
                &state,
                who.clone(),
                key,
                CaseStep::RecordRecheck {
                    case_id: case_id.clone(),
                    recheck,
                }
                .into(),
                None,
            );
            let outcome = state.evidence.recording(stored.as_ref(), write).await?;
            rechecked.push(RecheckResult {
                case_id: case_id.to_string(),
                url,
                drifted,
                event_id: outcome
                    .appended
                    .first()
                    .map(|event| event.event_id.clone())
                    .unwrap_or_default(),
            });
        }
    }
    Ok(Json(RecheckReport { rechecked }))
}

/// The evidence recorded in a case.
#[utoipa::path(get, path = "/v1/cases/{case_id}/evidence",
    params(("case_id" = String, Path, description = "The case ID")),
    responses((status = 200, body = EvidenceList), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _who: Caller,
    ApiPath(case_id): ApiPath<String>,
) -> Result<Json<EvidenceList>, Problem> {
    let case_id = parse_case(&case_id)?;
    let (_, events) = state.store.case(&case_id).await?;
    let evidence = events
        .into_iter()
        .filter(|event| {
            matches!(
                event.body,
                EventBody::EvidenceAttached(_)
                    | EventBody::EvidenceUnverified(_)
                    | EventBody::EvidenceRechecked(_)
                    | EventBody::EvidenceJoined(_)
            )
        })
        .map(|event| {
            let encoded = serde_json::to_value(&event).unwrap_or_default();
            EvidenceItem {
                event_id: event.event_id.to_string(),
                kind: event.body.kind_name().to_string(),
                by: event.actor.principal.to_string(),
                recorded_at: event.recorded_at.to_string(),
                payload: encoded["payload"].clone(),
            }
        })
        .collect();
    Ok(Json(EvidenceList { evidence }))
}

/// Download a blob the case references, streamed; `Custody-Sha256` names the
/// hash the client must find (`custody evidence get` re-checks it).
#[utoipa::path(get, path = "/v1/cases/{case_id}/evidence/{sha256}",
    params(("case_id" = String, Path, description = "The case ID"),
        ("sha256" = String, Path, description = "The blob's SHA-256, 64 hex digits")),
    responses((status = 200, description = "The blob, with the media type sniffed from it", content_type = "*/*"), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn download(
    State(state): State<AppState>,
    _who: Caller,
    ApiPath((case_id, sha256)): ApiPath<(String, String)>,
) -> Result<Response, Problem> {
    let case_id = parse_case(&case_id)?;
    let wanted: Sha256Digest = sha256.parse().map_err(|_| {
        Problem::not_found(format!(
            "`{sha256}` is not a SHA-256 in hex, so case {case_id} holds no such evidence"
        ))
    })?;
    let (_, events) = state.store.case(&case_id).await?;
    let recorded = events.iter().rev().find_map(|event| match &event.body {
        EventBody::EvidenceAttached(evidence) if evidence.sha256.0 == *wanted.as_bytes() => Some((
            evidence.file_name.clone(),
            evidence.sniffed_media_type.clone(),
        )),
        EventBody::EvidenceRechecked(Recheck {
            sha256: Some(now), ..
        }) if now.0 == *wanted.as_bytes() => Some((None, "application/octet-stream".to_string())),
        EventBody::EvidenceJoined(join) => join
            .evidence
            .iter()
            .find(|evidence| evidence.sha256.0 == *wanted.as_bytes())
            .map(|evidence| {
                (
                    evidence.file_name.clone(),
                    evidence.sniffed_media_type.clone(),
                )
            }),
        _ => None,
    });
    let Some((file_name, media_type)) = recorded else {
        return Err(Problem::not_found(format!(
            "case {case_id} holds no evidence with SHA-256 {sha256}"
        )));
    };
    let reader = state
        .evidence
        .blobs
        .get(&wanted)
        .await
        .map_err(blob_problem)?;
    let stream = tokio_util::io::ReaderStream::new(reader);
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&media_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&wanted.to_hex()) {
        headers.insert("custody-sha256", value);
    }
    let name = file_name.unwrap_or_else(|| wanted.to_hex());
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Reads and drops up to 16 MiB of a refused upload, for at most 5 seconds.
async fn drain(body: Body) {
    const MOST: usize = 16 * 1024 * 1024;
    let mut stream = body.into_data_stream();
    let mut seen = 0;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Ok(Some(chunk)) = stream.try_next().await {
            seen += chunk.len();
            if seen > MOST {
                break;
            }
        }
    })
    .await;
}

/// A case ID from a path: a malformed one names no case, so it is a `404`.
fn parse_case(text: &str) -> Result<CaseId, Problem> {
    text.parse().map_err(|error| {
        Problem::not_found(format!(
            "`{text}` is not a case ID, so no such case exists: {error}"
        ))
        .with_hint("case IDs look like AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b71")
    })
}

/// A case ID from a request body: a malformed one is invalid input.
fn parse_body_case(text: &str) -> Result<CaseId, Problem> {
    text.parse()
        .map_err(|error| Problem::invalid(format!("`{text}` is not a case ID: {error}")))
}

fn digest(sha: Sha256Digest) -> Sha256Hash {
    Sha256Hash(*sha.as_bytes())
}

fn too_large(limit: u64) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        types::PAYLOAD_TOO_LARGE,
        "Evidence too large",
        format!("the upload is larger than the limit of {limit} bytes; nothing was stored"),
    )
    .with_rule(Code::EvidenceTooLarge)
    .with_hint(
        "raise [evidence] max_upload_bytes in the server's configuration, or attach a smaller file",
    )
}

fn blob_problem(error: BlobError) -> Problem {
    match error {
        BlobError::TooLarge { limit } => too_large(limit),
        BlobError::NotFound { sha256 } => Problem::not_found(format!(
            "the blob {sha256} is missing from the evidence store: `custody verify` reports it"
        )),
        BlobError::Read { source } => Problem::invalid(format!(
            "the upload was interrupted: {source}; nothing was stored"
        )),
        other => {
            tracing::error!(error = %other, "the evidence store failed");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                types::UNAVAILABLE,
                "Evidence store unavailable",
                format!("the evidence store failed: {other}"),
            )
        }
    }
}

/// A capture refused for the caller's URL (bad input changes nothing); `None`
/// when the link itself failed and is recorded as unverified.
fn refusal(error: &FetchError) -> Option<Problem> {
    match error {
        FetchError::Refused { .. } | FetchError::UrlNotAllowed { .. } => Some(
            Problem::forbidden(format!("{error}; nothing was fetched or recorded"))
                .with_rule(Code::EvidenceAddressRefused)
                .with_hint("links to loopback, private, link-local and metadata addresses are refused unless [evidence.fetch] allow lists them"),
        ),
        FetchError::InvalidUrl { .. } => {
            Some(Problem::invalid(format!("{error}")).with_rule(Code::EvidenceInvalidUrl))
        }
        FetchError::Store(store) => {
            tracing::error!(error = %store, "the evidence store failed during a capture");
            Some(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                types::UNAVAILABLE,
                "Evidence store unavailable",
                format!("the evidence store failed: {store}; nothing was recorded"),
            ))
        }
        _ => None,
    }
}
