//! What the connector says in Slack: the approval message with its Approve
//! and Deny buttons, the updates of a clicked message, and the ephemeral
//! answers to the person who acted.
//!
//! Every text that comes from a case (summaries, principals, messages) is
//! escaped for Slack's mrkdwn (`&`, `<`, `>`), so it cannot forge a link or
//! a mention such as `<!channel>`.

use serde_json::{json, Value};

use custody_core::Sha256Hash;

use super::interaction::{is_slack_ts, slack_id, APPROVE_ACTION, DENY_ACTION};
use crate::{Call, Outcome, OutcomeKind, Update};

/// Slack's limit on a section's text is 3,000 characters; a summary is cut
/// well before, so the case and state lines always fit.
const SUMMARY_LIMIT: usize = 2_000;

/// Where and how the Web API is called.
pub(crate) struct WebApi<'a> {
    /// `https://slack.com/api`, without a trailing slash.
    pub url: &'a str,
    /// The bot token (`xoxb-...`).
    pub token: &'a str,
}

impl WebApi<'_> {
    /// A JSON POST to the Web API method `method`.
    fn call(&self, method: &str, body: &Value) -> Call {
        Call {
            method: "POST",
            url: format!("{}/{method}", self.url),
            headers: vec![
                (
                    "Authorization".to_string(),
                    format!("Bearer {}", self.token),
                ),
                (
                    "Content-Type".to_string(),
                    "application/json; charset=utf-8".to_string(),
                ),
            ],
            body: body.to_string().into_bytes(),
        }
    }
}

/// The calls that write `update` back: to a channel (`C0123`, a route
/// naming the connector), a new message with `chat.postMessage`, with the
/// Approve and Deny buttons while a request waits for approval; to a
/// message (`C0123/1700000000.000100`, the one whose button was clicked),
/// its update with `chat.update`. A recipient of neither shape writes
/// nothing (the server's configuration check names it).
pub(crate) fn write_back(api: &WebApi<'_>, update: &Update) -> Vec<Call> {
    match update.recipient.split_once('/') {
        None => match slack_id(Some(&update.recipient), "recipient") {
            Ok(channel) => vec![api.call("chat.postMessage", &post_message(&channel, update))],
            Err(_) => Vec::new(),
        },
        Some((channel, ts)) => match slack_id(Some(channel), "recipient") {
            Ok(channel) if is_slack_ts(ts) => {
                vec![api.call("chat.update", &update_message(&channel, ts, update))]
            }
            _ => Vec::new(),
        },
    }
}

/// A message only `user` sees in `channel` (`chat.postEphemeral`).
pub(crate) fn post_ephemeral(api: &WebApi<'_>, channel: &str, user: &str, text: &str) -> Call {
    api.call(
        "chat.postEphemeral",
        &json!({"channel": channel, "user": user, "text": text}),
    )
}

/// The body of `chat.postMessage` for `update` posted to `channel`.
pub fn post_message(channel: &str, update: &Update) -> Value {
    let (text, blocks) = if is_request(&update.event) && awaits_approval(&update.state) {
        approval_request(update)
    } else {
        status(update)
    };
    json!({"channel": channel, "text": text, "blocks": blocks})
}

/// The body of `chat.update` for the message `ts` in `channel`.
pub fn update_message(channel: &str, ts: &str, update: &Update) -> Value {
    let (text, blocks) = status(update);
    json!({"channel": channel, "ts": ts, "text": text, "blocks": blocks})
}

/// The approval message: the case, the change requested (subject and
/// entitlement, in the request's summary), who asked, and the buttons.
fn approval_request(update: &Update) -> (String, Vec<Value>) {
    let summary = escape(&cut(&update.summary));
    let actor = escape(&update.actor);
    let text = format!(
        "Approval needed for case {}: {summary} (requested by {actor})",
        update.case_id
    );
    let section = format!(
        "*Case:* {}\n*Request:* {summary}\n*Requested by:* {actor}\n*State:* {}",
        case_link(update),
        escape(&update.state)
    );
    let blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": "Approval needed"}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": section}}),
        buttons(update),
    ];
    (text, blocks)
}

/// A message saying what was recorded and by whom, with the buttons kept
/// while the case still waits for approvals (a rule that needs two).
fn status(update: &Update) -> (String, Vec<Value>) {
    let title = title(&update.event);
    let summary = escape(&cut(&update.summary));
    let actor = escape(&update.actor);
    let state = escape(&update.state);
    let text = format!(
        "Case {}: {title} by {actor}: {summary}. The case is {state}.",
        update.case_id
    );
    let section = format!(
        "*{title}* by {actor}\n{summary}\n*Case:* {} · *State:* {state}",
        case_link(update)
    );
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": section}})];
    if awaits_approval(&update.state) {
        blocks.push(buttons(update));
    }
    (text, blocks)
}

/// The Approve and Deny buttons, each carrying the case ID. The block ID
/// changes with every version of the message, as Slack asks of an updated
/// message.
fn buttons(update: &Update) -> Value {
    let version = Sha256Hash::of(
        format!(
            "{}\n{}\n{}\n{}\n{}",
            update.case_id, update.event, update.state, update.actor, update.summary
        )
        .as_bytes(),
    )
    .to_hex();
    json!({
        "type": "actions",
        "block_id": format!("custody-{}", &version[..16]),
        "elements": [
            {
                "type": "button",
                "action_id": APPROVE_ACTION,
                "text": {"type": "plain_text", "text": "Approve"},
                "style": "primary",
                "value": update.case_id.to_string(),
            },
            {
                "type": "button",
                "action_id": DENY_ACTION,
                "text": {"type": "plain_text", "text": "Deny"},
                "style": "danger",
                "value": update.case_id.to_string(),
            },
        ],
    })
}

/// The text for the person who acted, one line per outcome: what was
/// recorded, or why nothing was (the server's message carries the rule and
/// its hint, or the mapping to ask an administrator for).
pub(crate) fn outcome_text(outcomes: &[Outcome]) -> String {
    if outcomes.is_empty() {
        return "Nothing to record.".to_string();
    }
    let lines: Vec<String> = outcomes
        .iter()
        .map(|outcome| {
            let case = match &outcome.case_id {
                Some(case_id) => format!("case *{case_id}*"),
                None => "the case".to_string(),
            };
            let message = escape(&outcome.message);
            match &outcome.kind {
                OutcomeKind::Recorded { event, state } if is_request(event) => {
                    format!("Opened {case}; it is {}.", escape(state))
                }
                OutcomeKind::Recorded { event, state } => format!(
                    "Recorded: {} of {case}{}; the case is {}.",
                    title(event).to_lowercase(),
                    outcome
                        .principal
                        .as_deref()
                        .map(|principal| format!(" as {}", escape(principal)))
                        .unwrap_or_default(),
                    escape(state)
                ),
                OutcomeKind::AlreadyRecorded { state } => format!(
                    "Already recorded: {case} is {}. Nothing was added.",
                    escape(state)
                ),
                OutcomeKind::Refused { .. } | OutcomeKind::Unmapped | OutcomeKind::NotFound => {
                    format!("Not recorded: {message}")
                }
                OutcomeKind::Ignored if message.is_empty() => "Nothing to record.".to_string(),
                OutcomeKind::Ignored => format!("Nothing to record: {message}"),
            }
        })
        .collect();
    lines.join("\n")
}

/// The answer body Slack shows only to the person who acted.
pub(crate) fn ephemeral(text: &str) -> Value {
    json!({"response_type": "ephemeral", "text": text})
}

/// Whether `event` is a request (the outbox's and the outcomes' names).
fn is_request(event: &str) -> bool {
    matches!(event, "requested" | "request_created")
}

/// Whether a case in `state` still waits for approvals (an execution
/// observed first waits for its late approval).
fn awaits_approval(state: &str) -> bool {
    matches!(state, "open" | "executed_pending_approval")
}

/// A heading for an event kind, in either naming (`approved` or
/// `approval_granted`).
fn title(event: &str) -> String {
    let known = match event {
        "requested" | "request_created" => "Requested",
        "approved" | "approval_granted" => "Approved",
        "denied" | "approval_denied" => "Denied",
        "approval_confirmed" => "Approval confirmed",
        "executed" | "execution_completed" => "Executed",
        "execution_failed" => "Execution failed",
        "reviewed" | "review_completed" => "Reviewed",
        "commented" | "comment_added" => "Comment",
        "break_glass_invoked" => "Break-glass invoked",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    let words = escape(&event.replace('_', " "));
    let mut characters = words.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => "Updated".to_string(),
    }
}

/// The case ID, linked to the case when the server knows its URL.
fn case_link(update: &Update) -> String {
    match &update.case_url {
        Some(url)
            if !url.is_empty()
                && !url.chars().any(|c| {
                    c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '|')
                }) =>
        {
            format!("<{url}|{}>", update.case_id)
        }
        _ => update.case_id.to_string(),
    }
}

/// Text cut to [`SUMMARY_LIMIT`] characters, marked when cut.
fn cut(text: &str) -> String {
    if text.chars().count() <= SUMMARY_LIMIT {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(SUMMARY_LIMIT).collect();
    cut.push('…');
    cut
}

/// Escapes Slack's three control characters in mrkdwn and plain text.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
