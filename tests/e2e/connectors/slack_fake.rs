//! A local fake of Slack: the Web API methods the connector calls
//! (`chat.postMessage`, `chat.update`, `chat.postEphemeral`), shaped as
//! Slack documents them, and the requests Slack sends the app (a slash
//! command, a `block_actions` click), signed as Slack signs them.
//!
//! The Web API answers as Slack does: HTTP 200 with `{"ok": true, ...}`,
//! or HTTP 200 with `{"ok": false, "error": "..."}` for a call it refuses
//! (`not_authed`, `invalid_auth`, `channel_not_found`, `message_not_found`,
//! `no_text`). It records every call, keeps the messages (so an update
//! changes what a later click carries) and can be taken down, one method at
//! a time: HTTP 503, or `ok: false` with `internal_error`, for its next N
//! calls.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use serde_json::{json, Value};

use crate::common::HttpStub;

/// The bot token the fake accepts.
pub const BOT_TOKEN: &str = "xoxb-1111111111-2222222222-fakeFakeFakeFakeFake";
/// The app's signing secret.
pub const SIGNING_SECRET: &str = "e2e-slack-signing-secret-0123456789";
/// The workspace.
pub const TEAM_ID: &str = "T0CUSTODY";
/// The workspace's domain (`acme.slack.com`).
pub const TEAM_DOMAIN: &str = "acme";

/// One Web API call as the fake received it.
#[derive(Clone, Debug)]
pub struct ApiCall {
    /// `chat.postMessage`, `chat.update`, `chat.postEphemeral`, ...
    pub method: String,
    /// Whether it carried `Authorization: Bearer <BOT_TOKEN>`.
    pub authorized: bool,
    /// Its JSON body.
    pub body: Value,
    /// What the fake answered: the HTTP status and `ok`.
    pub answered: (u16, bool),
}

/// A message in a channel, as the fake keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// `text`.
    pub text: String,
    /// `blocks`.
    pub blocks: Value,
}

#[derive(Default)]
struct World {
    calls: Mutex<Vec<ApiCall>>,
    /// (channel, ts) -> message.
    messages: Mutex<BTreeMap<(String, String), Message>>,
    /// Per method, the failures still to answer with, in order.
    failures: Mutex<BTreeMap<String, Vec<Failure>>>,
    /// The last message timestamp handed out (microseconds).
    clock: AtomicU64,
}

/// How the fake fails a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 503, no body.
    Unavailable,
    /// HTTP 200 with `{"ok": false, "error": "internal_error"}`.
    OkFalse,
}

/// The fake Web API on 127.0.0.1.
pub struct SlackApi {
    /// `http://127.0.0.1:PORT/api`, the connector's `api_url`.
    pub url: String,
    world: Arc<World>,
    _stub: HttpStub,
}

impl SlackApi {
    /// Starts the fake.
    pub fn start() -> SlackApi {
        let world = Arc::new(World {
            clock: AtomicU64::new(1_700_000_000_000_100),
            ..World::default()
        });
        let app = axum::Router::new()
            .route("/api/{method}", post(web_api))
            .with_state(world.clone());
        let stub = HttpStub::serve(app, 2);
        SlackApi {
            url: format!("{}/api", stub.base),
            world,
            _stub: stub,
        }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.world.calls.lock().unwrap().clone()
    }

    /// The calls of one method.
    pub fn calls_of(&self, method: &str) -> Vec<ApiCall> {
        self.calls()
            .into_iter()
            .filter(|call| call.method == method)
            .collect()
    }

    /// The message `ts` in `channel`.
    pub fn message(&self, channel: &str, ts: &str) -> Option<Message> {
        self.world
            .messages
            .lock()
            .unwrap()
            .get(&(channel.to_string(), ts.to_string()))
            .cloned()
    }

    /// The messages of `channel`, oldest first, with their timestamps.
    pub fn messages_in(&self, channel: &str) -> Vec<(String, Message)> {
        self.world
            .messages
            .lock()
            .unwrap()
            .iter()
            .filter(|((in_channel, _), _)| in_channel == channel)
            .map(|((_, ts), message)| (ts.clone(), message.clone()))
            .collect()
    }

    /// Answers the next calls of `method` with `failures`, in order.
    pub fn fail(&self, method: &str, failures: &[Failure]) {
        self.world
            .failures
            .lock()
            .unwrap()
            .insert(method.to_string(), failures.to_vec());
    }
}

async fn web_api(
    State(world): State<Arc<World>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorized = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        == Some(&format!("Bearer {BOT_TOKEN}"));
    let json_body = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let record = |status: u16, ok: bool| {
        world.calls.lock().unwrap().push(ApiCall {
            method: method.clone(),
            authorized,
            body: body.clone(),
            answered: (status, ok),
        });
    };
    let refuse = |error: &str| {
        record(200, false);
        Json(json!({"ok": false, "error": error})).into_response()
    };
    let failure = {
        let mut failures = world.failures.lock().unwrap();
        failures
            .get_mut(&method)
            .filter(|queued| !queued.is_empty())
            .map(|queued| queued.remove(0))
    };
    match failure {
        Some(Failure::Unavailable) => {
            record(503, false);
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        Some(Failure::OkFalse) => return refuse("internal_error"),
        None => {}
    }
    if headers.get("authorization").is_none() {
        return refuse("not_authed");
    }
    if !authorized {
        return refuse("invalid_auth");
    }
    if !json_body || !body.is_object() {
        return refuse("invalid_arguments");
    }
    let text = body["text"].as_str().unwrap_or_default().to_string();
    let blocks = body.get("blocks").cloned().unwrap_or(Value::Null);
    let Some(channel) = body["channel"]
        .as_str()
        .filter(|channel| channel.starts_with('C') && channel.len() > 1)
        .map(str::to_string)
    else {
        return refuse("channel_not_found");
    };
    match method.as_str() {
        "chat.postMessage" => {
            if text.is_empty() && blocks.is_null() {
                return refuse("no_text");
            }
            let micros = world.clock.fetch_add(100, Ordering::SeqCst) + 100;
            let ts = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
            world.messages.lock().unwrap().insert(
                (channel.clone(), ts.clone()),
                Message {
                    text: text.clone(),
                    blocks: blocks.clone(),
                },
            );
            record(200, true);
            Json(json!({
                "ok": true,
                "channel": channel,
                "ts": ts,
                "message": {
                    "type": "message",
                    "subtype": "bot_message",
                    "text": text,
                    "ts": ts,
                    "bot_id": "B0FAKE",
                    "blocks": blocks,
                },
            }))
            .into_response()
        }
        "chat.update" => {
            let ts = body["ts"].as_str().unwrap_or_default().to_string();
            let mut messages = world.messages.lock().unwrap();
            let Some(message) = messages.get_mut(&(channel.clone(), ts.clone())) else {
                drop(messages);
                return refuse("message_not_found");
            };
            *message = Message {
                text: text.clone(),
                blocks: blocks.clone(),
            };
            drop(messages);
            record(200, true);
            Json(json!({
                "ok": true,
                "channel": channel,
                "ts": ts,
                "text": text,
                "message": {"text": text, "blocks": blocks},
            }))
            .into_response()
        }
        "chat.postEphemeral" => {
            if body["user"].as_str().is_none_or(str::is_empty) {
                return refuse("user_not_in_channel");
            }
            let micros = world.clock.fetch_add(100, Ordering::SeqCst) + 100;
            record(200, true);
            Json(json!({
                "ok": true,
                "message_ts": format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000),
            }))
            .into_response()
        }
        _ => refuse("unknown_method"),
    }
}

/// The headers Slack sends with `body`, signed at `timestamp` (Unix
/// seconds) under `secret`.
pub fn signed_headers(secret: &str, timestamp: u64, body: &[u8]) -> Vec<(String, String)> {
    let timestamp = timestamp.to_string();
    let tag = custody_connect::signature::hmac_sha256(
        secret.as_bytes(),
        &[b"v0:", timestamp.as_bytes(), b":", body],
    );
    vec![
        (
            "Content-Type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("X-Slack-Request-Timestamp".to_string(), timestamp),
        (
            "X-Slack-Signature".to_string(),
            format!("v0={}", custody_core::hex::encode(&tag)),
        ),
    ]
}

/// Form-encodes `value` as Slack does.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// A slash command's body, with the fields Slack documents.
pub fn slash_command(user: &str, channel: &str, text: &str, trigger_id: &str) -> Vec<u8> {
    [
        ("token", "deprecated-verification-token"),
        ("team_id", TEAM_ID),
        ("team_domain", TEAM_DOMAIN),
        ("channel_id", channel),
        ("channel_name", "incident"),
        ("user_id", user),
        ("user_name", "someone"),
        ("command", "/custody"),
        ("text", text),
        ("api_app_id", "A0CUSTODY"),
        ("is_enterprise_install", "false"),
        (
            "response_url",
            "https://hooks.slack.com/commands/T0CUSTODY/1/abc",
        ),
        ("trigger_id", trigger_id),
    ]
    .iter()
    .map(|(name, value)| format!("{name}={}", form_encode(value)))
    .collect::<Vec<_>>()
    .join("&")
    .into_bytes()
}

/// A `block_actions` body for `user` clicking the button `action_id` of the
/// message `ts` in `channel` (its text and blocks as the fake holds them),
/// at `action_ts`.
pub fn click(
    user: &str,
    channel: &str,
    ts: &str,
    message: &Message,
    action_id: &str,
    action_ts: &str,
) -> Vec<u8> {
    let value = message.blocks.as_array().and_then(|blocks| {
        blocks.iter().find_map(|block| {
            block["elements"].as_array()?.iter().find_map(|element| {
                (element["action_id"] == action_id).then(|| element["value"].clone())
            })
        })
    });
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": "someone", "name": "someone", "team_id": TEAM_ID},
        "api_app_id": "A0CUSTODY",
        "token": "deprecated-verification-token",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false},
        "trigger_id": format!("{action_ts}.trigger"),
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": null,
        "is_enterprise_install": false,
        "channel": {"id": channel, "name": "incident"},
        "message": {
            "type": "message",
            "subtype": "bot_message",
            "text": message.text,
            "ts": ts,
            "bot_id": "B0FAKE",
            "blocks": message.blocks,
        },
        "state": {"values": {}},
        "response_url": format!("https://hooks.slack.com/actions/{TEAM_ID}/1/abc"),
        "actions": [{
            "action_id": action_id,
            "block_id": "custody-block",
            "text": {"type": "plain_text", "text": action_id, "emoji": true},
            "value": value.unwrap_or(Value::Null),
            "type": "button",
            "action_ts": action_ts,
        }],
    });
    format!("payload={}", form_encode(&payload.to_string())).into_bytes()
}
