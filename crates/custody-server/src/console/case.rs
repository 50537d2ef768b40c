//! The case page (`/cases/{id}`): the ID, the timeline of every event with
//! its actor context, notifications and their attempts, evidence with a
//! safe preview, the approved, executed and observed changes side by side,
//! the inclusion proof of every event against a signed checkpoint (checked
//! by the server, and again in the browser by `console.js`), and the forms
//! of the steps the principal may take.

use std::str::FromStr;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use custody_core::case::CaseView;
use custody_core::event::{Event, EventBody, Evidence};
use custody_core::model::Change;
use custody_core::CaseId;
use custody_evidence::Sha256Digest;
use maud::{html, Markup};
use tokio::io::AsyncReadExt;

use super::escape::{attr, lines, text};
use super::inbox::waiting_for;
use super::layout::{self, Page};
use super::session::Session;
use crate::extract::ApiPath;
use crate::problem::Problem;
use crate::AppState;

/// How much of a text blob the case page previews.
pub const TEXT_PREVIEW_BYTES: u64 = 4096;

/// Media types previewed as images, inline. SVG is not among them: it can
/// carry script.
pub const IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// A refusal to show above the case (an action the rules refused).
pub struct Shown<'a> {
    /// The refusal.
    pub problem: Option<&'a Problem>,
}

/// `GET /cases/{id}`.
pub async fn case_page(
    State(state): State<AppState>,
    session: Session,
    ApiPath(case_id): ApiPath<String>,
) -> Response {
    match render(&state, &session, &case_id, None).await {
        Ok(response) => response,
        Err(response) => response,
    }
}

/// The case page, with `refusal` shown above it when an action was refused
/// (its status is the refusal's).
pub async fn render(
    state: &AppState,
    session: &Session,
    case_id: &str,
    refusal: Option<&Problem>,
) -> Result<Response, Response> {
    let Ok(case_id) = CaseId::from_str(case_id) else {
        return Err(layout::not_found(
            Some(session),
            "That is not a case ID (they look like AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b71).",
        ));
    };
    let (view, events) = match state.store.case(&case_id).await {
        Ok(found) => found,
        Err(custody_store::StoreError::CaseNotFound(_)) => {
            return Err(layout::not_found(Some(session), "No case has that ID."))
        }
        Err(error) => return Err(Problem::from(error).into_response()),
    };
    let notifications = state
        .store
        .notifications(Some(&case_id), false, 500)
        .await
        .map_err(|error| Problem::from(error).into_response())?;
    let proof = proof_section(state, &case_id).await;
    let evidence = evidence_section(state, &case_id, &events).await;
    let waiting = waiting_for(&view, &session.actor);
    let body = html! {
        h1 { "Case " span.mono #case-id { (case_id.as_str()) } }
        @if let Some(problem) = refusal {
            (refusal_box(problem))
        }
        (facts(&view))
        (super::actions::forms(session, &view, waiting))
        (changes(&view))
        (timeline(&events))
        section aria-labelledby="notifications-title" {
            h2 #notifications-title { "Notifications" }
            @if notifications.is_empty() {
                p { "No notification was owed for this case, or no channel is configured." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Delivery" } th scope="col" { "Kind" } th scope="col" { "Audience" } th scope="col" { "Channel" } th scope="col" { "Recipient" } th scope="col" { "State" } th scope="col" { "Attempts" } th scope="col" { "Last error" } } }
                    tbody {
                        @for entry in &notifications {
                            tr {
                                td.mono { (text(&entry.delivery_id)) }
                                td { (text(&entry.kind)) }
                                td { (text(&entry.audience)) }
                                td { (text(&entry.channel)) }
                                td { (text(entry.recipient.as_deref().unwrap_or(""))) }
                                td { (text(&entry.state)) }
                                td { (entry.attempts) }
                                td { (text(entry.last_error.as_deref().unwrap_or(""))) }
                            }
                        }
                    }
                }
                p.help { "Every delivery attempt is also an event of the case: see the timeline (notification_attempted, notification_delivered, notification_failed, escalation_raised)." }
            }
        }
        (evidence)
        (proof)
    };
    let status = refusal
        .and_then(|problem| StatusCode::from_u16(problem.status).ok())
        .unwrap_or(StatusCode::OK);
    Ok(layout::respond(
        status,
        Page {
            title: case_id.as_str(),
            session: Some(session),
            current: None,
            body,
        },
    ))
}

/// A refusal's rule, detail and hint (the problem document's fields).
pub fn refusal_box(problem: &Problem) -> Markup {
    html! {
        div.refusal role="alert" #refusal {
            h2 { "Refused: " (problem.title) }
            dl {
                @if let Some(rule) = problem.rule {
                    dt { "Rule" } dd.mono #refusal-rule { (rule.as_str()) }
                }
                dt { "Why" } dd { (text(&problem.detail)) }
                @if let Some(hint) = &problem.hint {
                    dt { "What to do" } dd { (text(hint)) }
                }
                dt { "Problem type" } dd.mono { (problem.problem_type) }
            }
            p { "Nothing was recorded." }
        }
    }
}

fn facts(view: &CaseView) -> Markup {
    html! {
        dl.facts {
            dt { "State" } dd #case-state { (view.state.to_string()) }
            dt { "Change" } dd { (text(&view.change.to_string())) }
            dt { "Requester" } dd { (text(view.requester.principal.as_str())) }
            dt { "Justification" } dd #justification { (lines(view.justification.as_deref().unwrap_or("(none)"))) }
            dt { "Ticket" } dd { (text(&view.ticket.as_ref().map(ToString::to_string).unwrap_or_default())) }
            dt { "Policy rule" } dd { (text(&serde_json::to_string(&view.rule).unwrap_or_default())) }
            dt { "Approvals" } dd {
                (view.approvals.len()) " recorded, " (view.approvals_required) " required"
                @for stage in view.stage_progress(None) {
                    br; "stage " (text(&stage.name)) ": " (stage.approvers.len()) " of " (stage.required)
                    @if !stage.approver_groups.is_empty() { " (groups: " (text(&stage.approver_groups.join(", "))) ")" }
                }
            }
            @if let Some(deadline) = view.break_glass_deadline {
                dt { "Post-hoc review due" } dd { (deadline.to_string()) }
            }
            @if let Some(due) = view.review_due {
                dt { "Review due" } dd { (due.to_string()) }
            }
            @if let Some(into) = &view.merged_into {
                dt { "Merged into" } dd { a.mono href=(format!("/cases/{into}")) { (into.as_str()) } }
            }
        }
    }
}

fn change_facts(change: &Change) -> Markup {
    html! {
        dl.facts {
            dt { "Subject" } dd { (text(&change.subject().to_string())) }
            dt { "Change" } dd { (change.kind().as_str()) }
            dt { "Entitlement" } dd { (text(change.entitlement())) }
            dt { "Resource" } dd { (text(change.resource().unwrap_or(""))) }
            dt { "Duration" } dd { (change.duration_seconds().map(|seconds| format!("{seconds} s")).unwrap_or_default()) }
        }
    }
}

fn changes(view: &CaseView) -> Markup {
    html! {
        section aria-labelledby="changes-title" {
            h2 #changes-title { "Approved, executed and observed" }
            div.changes {
                section aria-label="Approved change" {
                    h3 { "Approved (requested)" }
                    (change_facts(&view.change))
                }
                section aria-label="Executed change" {
                    h3 { "Executed" }
                    @match &view.applied {
                        Some(applied) => {
                            (change_facts(applied))
                            @if applied != &view.change { p.bad { "Differs from the approved change." } }
                        }
                        None => p { "Not executed yet." },
                    }
                }
                section aria-label="Observed change" {
                    h3 { "Observed" }
                    @if view.observations.is_empty() {
                        p { "No connector observed this change." }
                    }
                    @for observation in &view.observations {
                        p { "By " (text(&observation.source)) " (" (text(&observation.external_id)) ") at " (observation.occurred_at.to_string()) }
                        (change_facts(&observation.change))
                    }
                }
            }
        }
    }
}

fn json_field(value: &serde_json::Value, field: &str) -> String {
    match value.get(field) {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

fn timeline(events: &[Event]) -> Markup {
    html! {
        section aria-labelledby="timeline-title" {
            h2 #timeline-title { "Timeline" }
            p.help { "Every event of the case, from every source, in sequence order." }
            table #timeline {
                thead { tr {
                    th scope="col" { "#" } th scope="col" { "Event" } th scope="col" { "Principal" } th scope="col" { "Role" }
                    th scope="col" { "On behalf of" } th scope="col" { "Delegation grant" } th scope="col" { "Via" } th scope="col" { "Authentication" }
                    th scope="col" { "Occurred" } th scope="col" { "Recorded" } th scope="col" { "Source" }
                } }
                tbody {
                    @for event in events {
                        @let actor = serde_json::to_value(&event.actor).unwrap_or_default();
                        @let auth = actor.get("auth").cloned().unwrap_or_default();
                        tr id=(format!("event-{}", event.seq)) data-kind=(event.body.kind_name()) data-via=(json_field(&actor, "via")) {
                            td { (event.seq) }
                            td {
                                strong { (event.body.kind_name()) }
                                br; span.mono { (event.event_id.as_str()) }
                                details {
                                    summary { "Details" }
                                    pre { (lines(&serde_json::to_string_pretty(&event.body).unwrap_or_default())) }
                                }
                            }
                            td { (text(&json_field(&actor, "principal"))) " " span.badge { (text(&json_field(&actor, "kind"))) } }
                            td { (text(&serde_json::to_value(event.role).ok().map(|role| role.as_str().unwrap_or("").to_string()).unwrap_or_default())) }
                            td { (text(&json_field(&actor, "on_behalf_of"))) }
                            td { (text(&json_field(&actor, "delegation_grant"))) }
                            td.via { (text(&json_field(&actor, "via"))) }
                            td {
                                @match json_field(&auth, "method").as_str() {
                                    "token" => { "token " span.mono { (text(&json_field(&auth, "token_id"))) } }
                                    "oidc" => { "OIDC " (text(&json_field(&auth, "issuer"))) " / " (text(&json_field(&auth, "subject"))) }
                                    "connector" => { (text(&json_field(&auth, "connector"))) ": " (text(&json_field(&auth, "external_user"))) }
                                    other => { (text(other)) }
                                }
                            }
                            td { (event.occurred_at.to_string()) }
                            td { (event.recorded_at.to_string()) }
                            td { (text(event.source.as_deref().unwrap_or(""))) " " (text(event.external_id.as_deref().unwrap_or(""))) }
                        }
                    }
                }
            }
        }
    }
}

fn evidence_of(events: &[Event]) -> Vec<Evidence> {
    let mut found: Vec<Evidence> = Vec::new();
    for event in events {
        let items: Vec<&Evidence> = match &event.body {
            EventBody::EvidenceAttached(evidence) => vec![evidence],
            EventBody::EvidenceJoined(join) => join.evidence.iter().collect(),
            _ => Vec::new(),
        };
        for item in items {
            if !found.iter().any(|known| known.sha256 == item.sha256) {
                found.push(item.clone());
            }
        }
    }
    found
}

/// Whether a media type is previewed as text.
fn is_text(media_type: &str) -> bool {
    let base = media_type.split(';').next().unwrap_or("").trim();
    (base.starts_with("text/") && base != "text/html")
        || matches!(base, "application/json" | "application/x-ndjson")
}

async fn evidence_section(state: &AppState, case_id: &CaseId, events: &[Event]) -> Markup {
    let items = evidence_of(events);
    let mut previews = Vec::with_capacity(items.len());
    for item in &items {
        let preview = if is_text(&item.sniffed_media_type) {
            text_preview(state, &item.sha256.to_hex()).await
        } else {
            None
        };
        previews.push(preview);
    }
    html! {
        section aria-labelledby="evidence-title" {
            h2 #evidence-title { "Evidence" }
            @if items.is_empty() { p { "No evidence is attached." } }
            @for (item, preview) in items.iter().zip(previews) {
                @let hex = item.sha256.to_hex();
                @let href = format!("/cases/{case_id}/evidence/{hex}");
                article.evidence aria-label=(format!("Evidence {hex}")) {
                    dl.facts {
                        dt { "SHA-256" } dd.mono { (hex) }
                        dt { "File name" } dd { (text(item.file_name.as_deref().unwrap_or(""))) }
                        dt { "Media type" } dd { (text(&item.sniffed_media_type))
                            @if let Some(declared) = &item.declared_media_type { " (declared " (text(declared)) ")" } }
                        dt { "Size" } dd { (item.size) " bytes" }
                        @if let Some(link) = &item.link {
                            dt { "Captured from" } dd { (text(&link.url)) " at " (link.fetched_at.to_string()) }
                        }
                    }
                    @if IMAGE_TYPES.contains(&item.sniffed_media_type.as_str()) {
                        img src=(href) alt=(format!("Evidence image {}", attr(item.file_name.as_deref().unwrap_or(&hex))));
                    }
                    @if let Some(preview) = preview {
                        pre.preview { (lines(&preview)) }
                    }
                    p { a href=(href) download { "Download" } }
                }
            }
        }
    }
}

async fn text_preview(state: &AppState, hex: &str) -> Option<String> {
    let digest: Sha256Digest = hex.parse().ok()?;
    let reader = state.evidence.blobs.get(&digest).await.ok()?;
    let mut bytes = Vec::new();
    reader
        .take(TEXT_PREVIEW_BYTES)
        .read_to_end(&mut bytes)
        .await
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// `GET /cases/{id}/evidence/{sha256}`: a blob of the case, never as a page.
/// Images (PNG, JPEG, GIF, WebP) are served inline; everything else is an
/// attachment, text as `text/plain` and the rest as
/// `application/octet-stream`, so HTML or SVG evidence never renders. The
/// CSP sandboxes the response even if a browser would render it.
pub async fn evidence_file(
    State(state): State<AppState>,
    session: Session,
    ApiPath((case_id, sha256)): ApiPath<(String, String)>,
) -> Response {
    let download = crate::api::evidence::download(
        State(state),
        session.caller(),
        ApiPath((case_id, sha256.clone())),
    )
    .await;
    let mut response = match download {
        Ok(response) => response,
        Err(problem) => return layout::not_found(Some(&session), &problem.detail),
    };
    let media_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let headers = response.headers_mut();
    let safe_name: String = sha256.chars().filter(char::is_ascii_hexdigit).collect();
    if IMAGE_TYPES.contains(&media_type.as_str()) {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("inline"),
        );
    } else {
        let served = if is_text(&media_type) {
            "text/plain; charset=utf-8"
        } else {
            "application/octet-stream"
        };
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(served));
        if let Ok(value) =
            HeaderValue::from_str(&format!("attachment; filename=\"evidence-{safe_name}\""))
        {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(super::PREVIEW_CONTENT_SECURITY_POLICY),
    );
    response
}

async fn proof_section(state: &AppState, case_id: &CaseId) -> Markup {
    let (checkpoint, proofs) = match crate::api::log::case_proofs(state, case_id).await {
        Ok(found) => found,
        Err(problem) => {
            return html! {
                section aria-labelledby="proof-title" {
                    h2 #proof-title { "Inclusion proof" }
                    p.bad { "No proof is available: " (text(&problem.detail)) }
                }
            }
        }
    };
    // The checkpoint's signature is checked once; each event's proof is
    // then walked to its root (as `TlogProof::verify` does for each alone).
    let verified =
        custody_log::verify_checkpoint(checkpoint.note.as_bytes(), &state.log.verifier_keys())
            .map_err(|error| error.to_string());
    let mut events = Vec::with_capacity(proofs.len());
    let mut results: Vec<Result<&[[u8; 32]], String>> = Vec::with_capacity(proofs.len());
    for (entry, proof) in &proofs {
        let verdict = match &verified {
            Ok(checkpoint) => custody_log::merkle::verify_inclusion(
                &custody_log::merkle::leaf_hash(&entry.leaf),
                entry.index,
                checkpoint.size(),
                proof,
                checkpoint.root_hash(),
            )
            .map(|()| proof.as_slice())
            .map_err(|error| error.to_string()),
            Err(error) => Err(error.clone()),
        };
        events.push((
            entry.index,
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &entry.leaf),
        ));
        results.push(verdict);
    }
    let all_ok = results.iter().all(Result::is_ok);
    html! {
        section aria-labelledby="proof-title" #proof {
            h2 #proof-title { "Inclusion proof" }
            p { "Every event of the case is a leaf of the deployment's Merkle log (RFC 6962). The server checked each leaf's inclusion proof against this signed checkpoint, and the checkpoint's signature against the log's key:" }
            p #server-verdict {
                @if all_ok {
                    span.ok { "Verified by the server: " (events.len()) " events included." }
                } @else {
                    span.bad { "The server could NOT verify every event." }
                }
            }
            // Line by line: `text` shows a newline as a marked escape, and
            // the note's lines are what the browser's check reads.
            pre #checkpoint { (lines(&checkpoint.note)) }
            table #proofs {
                thead { tr { th scope="col" { "Log index" } th scope="col" { "Server" } th scope="col" { "Browser" } } }
                tbody {
                    @for ((index, leaf), verdict) in events.iter().zip(&results) {
                        @let hashes = verdict.as_ref().map(|hashes| hashes.iter().map(|hash| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, hash)).collect::<Vec<_>>().join(" ")).unwrap_or_default();
                        tr.proof data-index=(index) data-leaf=(leaf) data-proof=(hashes) {
                            td { (index) }
                            td { @match verdict { Ok(_) => span.ok { "included" }, Err(error) => span.bad { (text(error)) } } }
                            td.browser { "not checked" }
                        }
                    }
                }
            }
            p { button type="button" #verify-in-browser hidden { "Verify in this browser" } }
            p #browser-verdict aria-live="polite" {}
            p.help { "The browser check recomputes each leaf hash with SHA-256 and walks its proof to the checkpoint's root, as crates/custody-log does; it needs JavaScript. The signature is checked by the server; check it offline with " code { "custody verify --bundle" } "." }
        }
    }
}
