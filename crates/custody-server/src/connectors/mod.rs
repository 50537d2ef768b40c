//! The connectors' inbound endpoints and their write-back, wired to the
//! network and the ledger. Everything vendor-specific (signatures, payloads,
//! answers, REST calls) is in `custody-connect`, IO-free; this module runs
//! its steps in order for every request (see the crate's documentation):
//! size, signature, replay, parse, identity, write, answer.
//!
//! `POST /v1/connectors/{name}/{endpoint}` takes what the source sends. It
//! carries no bearer token: the source's own signature is the
//! authentication, and the principal is the one the external user is mapped
//! to (`custody connector map`), never anyone else. A request whose size,
//! signature, freshness or novelty fails is answered 413 or 401 and recorded
//! nowhere but the metrics (`custody_connector_refusals_total{connector,
//! reason}`) and the log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use custody_connect::config::ConnectorConfig;
use custody_connect::replay::ReplayGuard;
use custody_connect::{
    Action, Answer, Connector, Headers, Inbound, Outcome, OutcomeKind, Refusal, Request, Target,
    Update,
};
use custody_core::command::{CaseCommand, CaseStep, Opening};
use custody_core::event::Origin;
use custody_core::model::{AuthContext, Via};
use custody_core::notice::Route;
use custody_core::{Actor, CaseId};
use custody_notify::connector::CallSender;
use custody_notify::{Delivered, DeliveryError};
use custody_store::{CaseWrite, ConnectorWrite, StoreError};

use crate::problem::Problem;
use crate::AppState;

/// How many signatures each connector remembers against replay at most.
const REPLAY_CAPACITY: usize = 100_000;

/// How long one write-back call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The configured connectors, by name.
#[derive(Clone, Default)]
pub struct Connectors {
    entries: Arc<HashMap<String, Arc<Entry>>>,
    sources: Arc<HashMap<String, Arc<crate::observe::SourceEntry>>>,
}

/// One configured connector.
struct Entry {
    name: String,
    connector: Box<dyn Connector>,
    window_seconds: u64,
    max_body_bytes: usize,
    guard: Mutex<ReplayGuard>,
    sender: CallSender,
}

impl Connectors {
    /// Checks every `[[connectors]]` entry and builds it: names are
    /// identifiers and unique, each kind's settings valid. Nothing is
    /// contacted.
    pub fn build(configs: &[ConnectorConfig]) -> Result<Connectors, String> {
        let mut entries = HashMap::new();
        let mut sources = HashMap::new();
        for config in configs {
            let name = config.name();
            custody_core::model::validate_name("connector name", name)
                .map_err(|error| format!("connectors: {error}"))?;
            if name.contains(':') || name.contains('/') {
                return Err(format!(
                    "connectors: the name `{name}` holds a `:` or a `/`; it is the channel of the connector's write-back, where `:` separates the recipient, and a segment of its endpoints' paths"
                ));
            }
            if entries.contains_key(name) || sources.contains_key(name) {
                return Err(format!(
                    "two connectors are named `{name}`; connector names must be unique"
                ));
            }
            if config.is_source() {
                sources.insert(name.to_string(), Arc::new(crate::observe::build(config)?));
                continue;
            }
            let connector = config
                .build()
                .map_err(|error| format!("connector `{name}`: {error}"))?;
            let window_seconds = config.window_seconds();
            if !(1..=86_400).contains(&window_seconds) {
                return Err(format!(
                    "connector `{name}`: window_seconds must be between 1 and 86400"
                ));
            }
            let max_body_bytes = config.max_body_bytes();
            if !(1..=16 * 1024 * 1024).contains(&max_body_bytes) {
                return Err(format!(
                    "connector `{name}`: max_body_bytes must be between 1 and 16777216"
                ));
            }
            let sender = CallSender::new(name, CALL_TIMEOUT)
                .map_err(|error| format!("connector `{name}`: {error}"))?;
            let entry = Entry {
                name: name.to_string(),
                connector,
                window_seconds,
                max_body_bytes,
                guard: Mutex::new(ReplayGuard::new(window_seconds, REPLAY_CAPACITY)),
                sender,
            };
            if entries.insert(name.to_string(), Arc::new(entry)).is_some() {
                return Err(format!(
                    "two connectors are named `{name}`; connector names must be unique"
                ));
            }
        }
        Ok(Connectors {
            entries: Arc::new(entries),
            sources: Arc::new(sources),
        })
    }

    /// The source of observed changes named `name`, if one is configured.
    pub fn source(&self, name: &str) -> Option<Arc<crate::observe::SourceEntry>> {
        self.sources.get(name).cloned()
    }

    /// Every configured source of observed changes.
    pub fn sources(&self) -> Vec<Arc<crate::observe::SourceEntry>> {
        let mut sources: Vec<_> = self.sources.values().cloned().collect();
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        sources
    }

    /// Each connector's name and the ticket system it writes back to, for
    /// the notification routing.
    pub fn links(&self) -> Vec<(String, Option<String>)> {
        let mut links: Vec<_> = self
            .entries
            .values()
            .map(|entry| {
                (
                    entry.name.clone(),
                    entry.connector.ticket_system().map(str::to_string),
                )
            })
            .collect();
        links.sort();
        links
    }

    /// The connector that owns the ticket system `system` (its
    /// `ticket_system()`), if one does: only it binds that system's tickets
    /// to cases (`ticket.connector-owned`).
    pub fn owner_of(&self, system: &str) -> Option<&str> {
        self.entries
            .values()
            .find(|entry| entry.connector.ticket_system() == Some(system))
            .map(|entry| entry.name.as_str())
    }

    /// The refusal of a ticket named by `by` (a connector's name, or `None`
    /// for the API) when another connector owns its system.
    pub fn check_ticket(
        &self,
        ticket: &custody_core::model::Ticket,
        by: Option<&str>,
    ) -> Result<(), custody_core::lifecycle::Refusal> {
        match self.owner_of(&ticket.system) {
            Some(owner) if by != Some(owner) => Err(custody_core::lifecycle::Refusal {
                rule: custody_core::code::Code::TicketConnectorOwned,
                message: format!(
                    "ticket {ticket} belongs to the `{owner}` connector: only it binds {} tickets to cases",
                    ticket.system
                ),
                hint: Some(format!(
                    "leave the ticket out; create the {} ticket with the case ID in its case ID field, and the `{owner}` connector links it to the case",
                    ticket.system
                )),
            }),
            _ => Ok(()),
        }
    }

    /// Whether `name` is a connector or a source (a channel may not take
    /// its name).
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name) || self.sources.contains_key(name)
    }

    /// Writes `update` back through the connector `name`: every call the
    /// connector asks for, in order; the first that fails fails the attempt
    /// (the next attempt makes them all again, so each must be safe to
    /// repeat: a comment may appear twice, a property is overwritten).
    pub async fn write_back(
        &self,
        name: &str,
        update: &Update,
    ) -> Result<Delivered, DeliveryError> {
        let Some(entry) = self.entries.get(name) else {
            return Err(DeliveryError::permanent(format!(
                "no connector is named `{name}` in the configuration any more"
            )));
        };
        let calls = entry.connector.write_back(update);
        if calls.is_empty() {
            return Ok(Delivered {
                status: None,
                detail: format!(
                    "connector `{name}` writes nothing back for {}",
                    update.event
                ),
            });
        }
        let mut last = None;
        for call in calls {
            let (delivered, body) = entry
                .sender
                .send(call.method, &call.url, &call.headers, call.body.clone())
                .await?;
            if let Err(message) =
                entry
                    .connector
                    .accepted(&call, delivered.status.unwrap_or(200), &body)
            {
                return Err(DeliveryError::retryable(format!(
                    "connector `{name}`: {}",
                    custody_core::text::escape(&message)
                )));
            }
            last = Some(delivered);
        }
        Ok(last.expect("at least one call was made"))
    }
}

/// `POST /v1/connectors/{name}/{endpoint}`: what an outside system sends.
pub async fn inbound(
    State(state): State<AppState>,
    Path((name, endpoint)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(source) = state.connectors.source(&name) {
        return crate::observe::push(state, source, endpoint, headers, body).await;
    }
    let Some(entry) = state.connectors.entries.get(&name).cloned() else {
        return Problem::not_found(format!(
            "no connector is configured under the name `{}`",
            custody_core::text::escape(&name)
        ))
        .with_hint("connectors are the [[connectors]] entries of the --config file")
        .into_response();
    };
    let headers = Headers::new(
        headers
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec())),
    );
    let request = Request {
        endpoint: &endpoint,
        headers: &headers,
        body: &body,
        tls: false,
    };
    let now = state.clock.now();
    let now_unix = u64::try_from(now.as_micros() / 1_000_000).unwrap_or(0);
    let (fingerprint, inbounds) = match admit(&entry, &request, now_unix) {
        Ok(admitted) => admitted,
        Err(refusal) => {
            metrics::counter!(
                "custody_connector_refusals_total",
                "connector" => entry.name.clone(),
                "reason" => refusal.label()
            )
            .increment(1);
            tracing::warn!(connector = %entry.name, endpoint = %custody_core::text::escape(&endpoint), reason = refusal.label(), error = %refusal, "refused a connector request");
            // A malformed body got past the signature, so it came from the
            // source: where the source shows the person only a 200's body
            // (a Slack slash command), the connector answers it its way.
            let reply = match &refusal {
                Refusal::Malformed(_) => entry.connector.refused(&refusal),
                _ => None,
            };
            return match reply {
                Some(reply) => answer(reply),
                None => refusal_problem(&refusal).into_response(),
            };
        }
    };
    let mut outcomes = Vec::with_capacity(inbounds.len());
    for inbound in inbounds {
        let outcome = record(&state, &entry, inbound).await;
        metrics::counter!(
            "custody_connector_inbound_total",
            "connector" => entry.name.clone(),
            "outcome" => outcome_label(&outcome.kind)
        )
        .increment(1);
        outcomes.push(outcome);
    }
    // An answer that asks the source to retry (the case is not there yet,
    // or the write failed) must let the same signed request in again: the
    // ledger's (source, external ID) still keeps it from counting twice.
    if outcomes.iter().any(retry_expected) {
        if let Ok(mut guard) = entry.guard.lock() {
            guard.forget(&fingerprint);
        }
    }
    follow_up(&entry, entry.connector.follow_up(&request, &outcomes));
    answer(entry.connector.answer(&outcomes))
}

/// `GET /v1/connectors/{name}/{endpoint}`: a source's handshake (Okta's
/// one-time verification of an event hook).
pub async fn handshake(
    State(state): State<AppState>,
    Path((name, endpoint)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match state.connectors.source(&name) {
        Some(source) => crate::observe::handshake(source, endpoint, headers).await,
        None => Problem::not_found(format!(
            "no source of observed changes is configured under the name `{}`",
            custody_core::text::escape(&name)
        ))
        .with_hint("only a source with a handshake (Okta's event hooks) answers GET")
        .into_response(),
    }
}

/// A refusal before the ledger, as problem+json (the answer the source
/// gets is for its logs; nobody is shown it).
pub(crate) fn refusal_problem(refusal: &Refusal) -> Problem {
    match refusal {
        Refusal::TooLarge { .. } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            crate::problem::types::PAYLOAD_TOO_LARGE,
            "Payload too large",
            refusal.to_string(),
        ),
        Refusal::Malformed(_) => Problem::invalid(refusal.to_string()),
        Refusal::Unauthenticated(_) | Refusal::Stale { .. } | Refusal::Replayed => Problem::new(
            StatusCode::UNAUTHORIZED,
            crate::problem::types::UNAUTHORIZED,
            "Unauthorized",
            refusal.to_string(),
        )
        .with_hint(
            "the source must sign the request with the connector's secret, within its window, once",
        ),
    }
}

/// Makes a connector's follow-up calls (a message only the person who
/// acted sees) after the answer, best effort: they record nothing, and a
/// failure is only logged.
fn follow_up(entry: &Arc<Entry>, calls: Vec<custody_connect::Call>) {
    if calls.is_empty() {
        return;
    }
    let entry = Arc::clone(entry);
    tokio::spawn(async move {
        for call in calls {
            let result = entry
                .sender
                .send(call.method, &call.url, &call.headers, call.body.clone())
                .await
                .map_err(|error| error.to_string())
                .and_then(|(delivered, body)| {
                    entry
                        .connector
                        .accepted(&call, delivered.status.unwrap_or(200), &body)
                });
            if let Err(error) = result {
                tracing::warn!(connector = %entry.name, error = %custody_core::text::escape(&error), "a connector's follow-up call failed");
            }
        }
    });
}

/// Whether an outcome is one a source retries: its case does not exist
/// (yet: a transition delivered before its issue's creation), or Custody
/// could not write.
fn retry_expected(outcome: &Outcome) -> bool {
    match &outcome.kind {
        OutcomeKind::NotFound => true,
        OutcomeKind::Refused { rule } => rule == INTERNAL,
        _ => false,
    }
}

/// The rule of an outcome Custody could not write (not a workflow rule).
const INTERNAL: &str = "internal";

/// Size, signature, replay and parse: everything before the ledger.
/// Returns the signature's fingerprint with the actions.
fn admit(
    entry: &Entry,
    request: &Request<'_>,
    now_unix: u64,
) -> Result<(Vec<u8>, Vec<Inbound>), Refusal> {
    custody_connect::limits::check_size(request.body.len(), entry.max_body_bytes)?;
    let signed = entry.connector.verify(request, now_unix)?;
    custody_connect::signature::check_window(signed.signed_at, now_unix, entry.window_seconds)?;
    entry
        .guard
        .lock()
        .map_err(|_| Refusal::Unauthenticated("the replay guard is unavailable".into()))?
        .admit(&signed.fingerprint, now_unix)?;
    Ok((signed.fingerprint, entry.connector.parse(request)?))
}

/// Maps the external user, binds the case and writes the action.
async fn record(state: &AppState, entry: &Entry, inbound: Inbound) -> Outcome {
    let principal = match state
        .store
        .connector_identity(&entry.name, &inbound.external_user)
        .await
    {
        Ok(Some(principal)) => principal,
        Ok(None) => {
            tracing::warn!(connector = %entry.name, external_user = %custody_core::text::escape(&inbound.external_user), "refused an action by an unmapped external user");
            return Outcome {
                case_id: target_case(&inbound.action),
                kind: OutcomeKind::Unmapped,
                principal: None,
                message: format!(
                    "{} is not mapped to a Custody principal, so this action was not recorded; ask an administrator to run `custody connector map {} {} PRINCIPAL`",
                    custody_core::text::escape(&inbound.external_user),
                    entry.name,
                    custody_core::text::escape(&inbound.external_user)
                ),
            };
        }
        Err(error) => return failed(None, &error.to_string()),
    };
    let actor = Actor {
        principal: principal.id.clone(),
        kind: principal.kind,
        org: principal.org.clone(),
        groups: principal.groups.clone(),
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Connector(entry.name.clone()),
        auth: AuthContext::Connector {
            connector: entry.name.clone(),
            external_user: inbound.external_user.clone(),
        },
    };
    // A ticket of a system another connector owns is that connector's to
    // bind (a Slack request naming `jira:SEC-1000` before the issue exists
    // would otherwise claim the decisions).
    if let Some(ticket) = named_ticket(&inbound.action) {
        if let Err(refusal) = state.connectors.check_ticket(ticket, Some(&entry.name)) {
            return Outcome {
                case_id: target_case(&inbound.action),
                kind: OutcomeKind::Refused {
                    rule: refusal.rule.to_string(),
                },
                principal: Some(principal.id.to_string()),
                message: format!(
                    "{} [{}] Hint: {}.",
                    refusal.message,
                    refusal.rule,
                    refusal.hint.unwrap_or_default()
                ),
            };
        }
    }
    let decision = matches!(inbound.action, Action::Approve { .. } | Action::Deny { .. });
    let command = match command(state, &actor, inbound.action).await {
        Ok(Bound::Command(command)) => command,
        Ok(Bound::Existing(case_id)) => {
            return match state.store.case_view(&case_id).await {
                Ok(view) => Outcome {
                    message: format!(
                        "case {case_id} is already recorded for this ticket ({})",
                        view.state
                    ),
                    case_id: Some(case_id),
                    kind: OutcomeKind::AlreadyRecorded {
                        state: view.state.to_string(),
                    },
                    principal: Some(principal.id.to_string()),
                },
                Err(error) => failed(Some(case_id), &error.to_string()),
            }
        }
        Ok(Bound::Nothing(message)) => {
            return Outcome {
                case_id: None,
                kind: OutcomeKind::Ignored,
                principal: Some(principal.id.to_string()),
                message,
            }
        }
        Err(outcome) => return *outcome,
    };
    let case_id = command.case_id().cloned();
    if let (true, Some(case_id)) = (
        decision && entry.connector.decisions_on_open_cases_only(),
        &case_id,
    ) {
        // A button on a message that asked for a decision: once the case
        // is decided, a click (a second one, a stale client's) answers with
        // the decision and appends nothing. Clicks that arrive together
        // are decisions taken together on an open case, and each counts.
        match state.store.case_view(case_id).await {
            Ok(view) if !awaits_decision(view.state) => {
                return Outcome {
                    message: format!(
                        "case {case_id} is already decided ({}); nothing was added",
                        view.state
                    ),
                    case_id: Some(case_id.clone()),
                    kind: OutcomeKind::AlreadyRecorded {
                        state: view.state.to_string(),
                    },
                    principal: Some(principal.id.to_string()),
                }
            }
            Ok(_) | Err(StoreError::CaseNotFound(_)) => {}
            Err(error) => return failed(Some(case_id.clone()), &error.to_string()),
        }
    }
    let occurred_at = inbound
        .occurred_at
        .filter(|at| *at <= state.clock.now().plus_seconds(60));
    let write = CaseWrite {
        actor,
        idempotency_key: inbound.external_id.clone(),
        command,
        occurred_at,
        connector: Some(ConnectorWrite {
            origin: Origin {
                source: entry.name.clone(),
                external_id: inbound.external_id,
            },
            reply: inbound.reply_to.map(|recipient| Route {
                channel: entry.name.clone(),
                recipient: Some(recipient),
            }),
        }),
    };
    match state.store.write(write).await {
        Ok(outcome) => {
            let event = outcome
                .appended
                .first()
                .map(|event| event.kind.clone())
                .unwrap_or_default();
            let kind = if outcome.replayed || outcome.appended.is_empty() {
                OutcomeKind::AlreadyRecorded {
                    state: outcome.state.to_string(),
                }
            } else {
                OutcomeKind::Recorded {
                    event: event.clone(),
                    state: outcome.state.to_string(),
                }
            };
            let message = match &kind {
                OutcomeKind::Recorded { .. } => format!(
                    "recorded {event} by {} on case {} (now {})",
                    principal.id, outcome.case_id, outcome.state
                ),
                _ => format!(
                    "already recorded on case {} (now {})",
                    outcome.case_id, outcome.state
                ),
            };
            Outcome {
                case_id: Some(outcome.case_id),
                kind,
                principal: Some(principal.id.to_string()),
                message,
            }
        }
        Err(StoreError::Refused(refusal)) => {
            let state_now = match &case_id {
                Some(case_id) => state
                    .store
                    .case_view(case_id)
                    .await
                    .ok()
                    .map(|view| format!(" The case is {}.", view.state)),
                None => None,
            };
            Outcome {
                case_id,
                kind: OutcomeKind::Refused {
                    rule: refusal.rule.to_string(),
                },
                principal: Some(principal.id.to_string()),
                message: format!(
                    "{} [{}]{}{}",
                    refusal.message,
                    refusal.rule,
                    refusal
                        .hint
                        .as_deref()
                        .map(|hint| format!(" Hint: {hint}."))
                        .unwrap_or_default(),
                    state_now.unwrap_or_default()
                ),
            }
        }
        Err(StoreError::CaseNotFound(case)) => Outcome {
            case_id,
            kind: OutcomeKind::NotFound,
            principal: Some(principal.id.to_string()),
            message: format!("case {case} does not exist"),
        },
        Err(error) => failed(case_id, &error.to_string()),
    }
}

/// Whether a case in `state` still waits for approvals or denials (a case
/// whose execution was observed first waits for its late approval).
fn awaits_decision(state: custody_core::CaseState) -> bool {
    matches!(
        state,
        custody_core::CaseState::Open | custody_core::CaseState::ExecutedPendingApproval
    )
}

/// What an action becomes once its case is bound.
#[allow(
    clippy::large_enum_variant,
    reason = "one per inbound action, moved once"
)]
enum Bound {
    /// A write.
    Command(CaseCommand),
    /// A request for a case that exists already (its ID carried, or its
    /// ticket's): nothing to write.
    Existing(CaseId),
    /// Nothing to do, and why.
    Nothing(String),
}

/// Binds an action to its case and makes the command: a case ID carried is
/// that case; a ticket is the case carrying it; a request whose ticket maps
/// to no case opens one.
async fn command(state: &AppState, actor: &Actor, action: Action) -> Result<Bound, Box<Outcome>> {
    Ok(Bound::Command(match action {
        Action::Request {
            change,
            justification,
            ticket,
            case,
        } => {
            if let Some(case_id) = case {
                // The record carries the case's ID: it is that case's. The
                // ticket it names is linked to a case that has none, so the
                // case is written back to it from now on.
                let view = match state.store.case_view(&case_id).await {
                    Ok(view) => view,
                    Err(StoreError::CaseNotFound(_)) => {
                        return Err(Box::new(Outcome {
                            message: format!("case {case_id} does not exist; nothing recorded"),
                            case_id: Some(case_id),
                            kind: OutcomeKind::NotFound,
                            principal: None,
                        }))
                    }
                    Err(error) => return Err(Box::new(failed(Some(case_id), &error.to_string()))),
                };
                return match ticket {
                    // A new ticket describing another change than the
                    // case's is not linked: its approver would approve what
                    // the ticket does not show. (The case's own ticket,
                    // edited, is a `ticket_changed`, judged by `verify`.)
                    Some(ticket)
                        if view.ticket.as_ref() != Some(&ticket) && change != view.change =>
                    {
                        Err(Box::new(Outcome {
                        message: format!(
                            "ticket {ticket} describes {change}, but case {case_id} is for {}; the ticket was not linked [{}]",
                            view.change,
                            custody_core::code::Code::ConnectorTicketDrift
                        ),
                        case_id: Some(case_id),
                        kind: OutcomeKind::Refused {
                            rule: custody_core::code::Code::ConnectorTicketDrift.to_string(),
                        },
                        principal: None,
                    }))
                    }
                    // Another ticket than the case's is refused by the
                    // writer (`ticket.already-linked`), which says so.
                    Some(ticket) if view.ticket.as_ref() != Some(&ticket) => {
                        Ok(Bound::Command(CaseStep::LinkTicket { case_id, ticket }.into()))
                    }
                    _ => Ok(Bound::Existing(case_id)),
                };
            }
            if let Some(ticket) = &ticket {
                if let Some(case_id) = find(state, ticket).await? {
                    return Ok(Bound::Existing(case_id));
                }
            }
            Opening::Request {
                rule: state.policy.decide(&change),
                change,
                justification,
                ticket,
                drill: false,
            }
            .into()
        }
        Action::Approve {
            target,
            comment,
            mut chat,
        } => {
            // The approval is the clicker's own: whatever the source said,
            // the approver is the principal the clicker maps to.
            if let Some(chat) = chat.as_mut() {
                chat.approver = actor.principal.clone();
            }
            CaseStep::Approve {
                case_id: resolve(state, target).await?,
                comment,
                chat,
            }
            .into()
        }
        Action::Deny { target, comment } => CaseStep::Deny {
            case_id: resolve(state, target).await?,
            comment,
        }
        .into(),
        Action::Execute {
            target,
            comment,
            completed,
        } => CaseStep::Execute {
            case_id: resolve(state, target).await?,
            change_set: None,
            comment,
            completed,
            applied: None,
            observed: false,
        }
        .into(),
        Action::Comment { target, text } => CaseStep::Comment {
            case_id: resolve(state, target).await?,
            text,
        }
        .into(),
        Action::TicketUpdated { ticket, change } => {
            let Some(case_id) = find(state, &ticket).await? else {
                return Ok(Bound::Nothing(format!(
                    "ticket {ticket} is bound to no case; nothing recorded"
                )));
            };
            CaseStep::RecordTicketChange {
                case_id,
                ticket,
                change,
            }
            .into()
        }
    }))
}

async fn find(
    state: &AppState,
    ticket: &custody_core::model::Ticket,
) -> Result<Option<CaseId>, Box<Outcome>> {
    state
        .store
        .case_for_ticket(ticket)
        .await
        .map_err(|error| Box::new(failed(None, &error.to_string())))
}

async fn resolve(state: &AppState, target: Target) -> Result<CaseId, Box<Outcome>> {
    match target {
        Target::Case(case_id) => Ok(case_id),
        Target::Ticket(ticket) => match find(state, &ticket).await? {
            Some(case_id) => Ok(case_id),
            None => Err(Box::new(Outcome {
                case_id: None,
                kind: OutcomeKind::NotFound,
                principal: None,
                message: format!("no case carries ticket {ticket}; nothing recorded"),
            })),
        },
    }
}

/// The ticket an action names, if any.
fn named_ticket(action: &Action) -> Option<&custody_core::model::Ticket> {
    match action {
        Action::Request { ticket, .. } => ticket.as_ref(),
        Action::TicketUpdated { ticket, .. }
        | Action::Approve {
            target: Target::Ticket(ticket),
            ..
        }
        | Action::Deny {
            target: Target::Ticket(ticket),
            ..
        }
        | Action::Execute {
            target: Target::Ticket(ticket),
            ..
        }
        | Action::Comment {
            target: Target::Ticket(ticket),
            ..
        } => Some(ticket),
        _ => None,
    }
}

fn target_case(action: &Action) -> Option<CaseId> {
    match action {
        Action::Approve {
            target: Target::Case(case_id),
            ..
        }
        | Action::Deny {
            target: Target::Case(case_id),
            ..
        }
        | Action::Execute {
            target: Target::Case(case_id),
            ..
        }
        | Action::Comment {
            target: Target::Case(case_id),
            ..
        } => Some(case_id.clone()),
        Action::Request { case, .. } => case.clone(),
        _ => None,
    }
}

fn failed(case_id: Option<CaseId>, error: &str) -> Outcome {
    tracing::error!(%error, "a connector's write failed");
    Outcome {
        case_id,
        kind: OutcomeKind::Refused {
            rule: INTERNAL.to_string(),
        },
        principal: None,
        message: "Custody could not record this action; try again later".to_string(),
    }
}

fn outcome_label(kind: &OutcomeKind) -> &'static str {
    match kind {
        OutcomeKind::Recorded { .. } => "recorded",
        OutcomeKind::AlreadyRecorded { .. } => "already_recorded",
        OutcomeKind::Refused { .. } => "refused",
        OutcomeKind::Unmapped => "unmapped",
        OutcomeKind::NotFound => "not_found",
        OutcomeKind::Ignored => "ignored",
    }
}

pub(crate) fn answer(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    if let Some(content_type) = answer.content_type {
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static(content_type),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A connector that counts the MACs it is asked to check.
    struct Counting {
        verified: Arc<AtomicUsize>,
    }

    impl Connector for Counting {
        fn kind(&self) -> &'static str {
            "counting"
        }

        fn verify(
            &self,
            request: &Request<'_>,
            now_unix: u64,
        ) -> Result<custody_connect::Signed, Refusal> {
            self.verified.fetch_add(1, Ordering::SeqCst);
            let tag = custody_connect::signature::hmac_sha256(b"key", &[request.body]);
            Ok(custody_connect::Signed {
                verified: custody_connect::signature::verify(b"key", &[request.body], &tag)?,
                fingerprint: tag.to_vec(),
                signed_at: now_unix,
            })
        }

        fn parse(&self, _request: &Request<'_>) -> Result<Vec<Inbound>, Refusal> {
            Ok(Vec::new())
        }

        fn answer(&self, _outcomes: &[Outcome]) -> Answer {
            Answer::empty(200)
        }
    }

    fn entry(verified: &Arc<AtomicUsize>, max_body_bytes: usize) -> Entry {
        Entry {
            name: "counting".into(),
            connector: Box::new(Counting {
                verified: Arc::clone(verified),
            }),
            window_seconds: 300,
            max_body_bytes,
            guard: Mutex::new(ReplayGuard::new(300, 16)),
            sender: CallSender::new("counting", CALL_TIMEOUT).unwrap(),
        }
    }

    #[test]
    fn a_body_over_the_limit_is_refused_before_any_mac_is_computed() {
        let verified = Arc::new(AtomicUsize::new(0));
        let entry = entry(&verified, 64);
        let headers = Headers::default();
        let request = |body: &'static [u8]| Request {
            endpoint: "webhook",
            headers: &headers,
            body,
            tls: false,
        };
        let refused = admit(&entry, &request(&[b'x'; 65]), 1_000).unwrap_err();
        assert_eq!(
            refused,
            Refusal::TooLarge {
                size: 65,
                limit: 64
            }
        );
        assert_eq!(verified.load(Ordering::SeqCst), 0, "a MAC was computed");

        // At the limit it is checked, once; the same request again is a
        // replay, refused after its MAC.
        admit(&entry, &request(&[b'x'; 64]), 1_000).unwrap();
        assert_eq!(verified.load(Ordering::SeqCst), 1);
        assert_eq!(
            admit(&entry, &request(&[b'x'; 64]), 1_001).unwrap_err(),
            Refusal::Replayed
        );
    }
}
