//! A local fake of an Okta org's System Log API, as much of it as Custody's
//! poll uses, shaped as Okta documents it:
//!
//! - `GET /api/v1/logs` with `Authorization: SSWS <token>` (else 401 with
//!   Okta's error object: `errorCode`, `errorSummary`, `errorLink`,
//!   `errorId`, `errorCauses`);
//! - a poll (no `until`) starts at `since`, or continues `after` the
//!   position a previous `next` link named, returns at most `limit` events
//!   oldest first as a JSON array, and always answers with two `Link`
//!   headers, `rel="self"` and `rel="next"` (on an empty page too);
//! - 429 with `X-Rate-Limit-*` headers on demand (a spent rate limit).
//!
//! The fake records every request it received, answered or not.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use custody_core::Timestamp;
use serde_json::{json, Value};

use crate::common::HttpStub;

/// The API token the fake accepts.
pub const TOKEN: &str = "00fakeSSWStoken-okta";

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct ReceivedRequest {
    /// The query string, as sent.
    pub query: String,
    /// What the fake answered.
    pub status: u16,
    /// How many events it returned.
    pub returned: usize,
}

#[derive(Default)]
struct Org {
    base: String,
    events: Vec<Value>,
    requests: Vec<ReceivedRequest>,
    rate_limited: usize,
}

type Shared = Arc<Mutex<Org>>;

/// The fake org, on its own thread and runtime.
pub struct FakeOkta {
    /// `http://127.0.0.1:PORT`, the source's `org_url`.
    pub url: String,
    org: Shared,
    _stub: HttpStub,
}

impl FakeOkta {
    /// Starts an org whose System Log is empty.
    pub fn start() -> FakeOkta {
        let org = Shared::default();
        let app = axum::Router::new()
            .route("/api/v1/logs", get(logs))
            .with_state(org.clone());
        let stub = HttpStub::serve(app, 1);
        org.lock().unwrap().base = stub.base.clone();
        FakeOkta {
            url: stub.base.clone(),
            org,
            _stub: stub,
        }
    }

    /// Appends events to the System Log (in `published` order).
    pub fn publish(&self, events: &[Value]) {
        self.org.lock().unwrap().events.extend_from_slice(events);
    }

    /// Answers 429 to the next `count` requests.
    pub fn rate_limit_next(&self, count: usize) {
        self.org.lock().unwrap().rate_limited = count;
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.org.lock().unwrap().requests.clone()
    }
}

/// The value of `name` in a query string (the fake's own parameters are
/// plain; `since` is percent-decoded for its colons).
fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.replace("%3A", ":").replace("%3a", ":"))
    })
}

fn okta_error(status: StatusCode, code: &str, summary: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": "oae-fake-error",
            "errorCauses": []
        })),
    )
        .into_response()
}

async fn logs(
    State(org): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let mut org = org.lock().unwrap();
    let authorization = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    let (response, status, returned) = if authorization != Some(&format!("SSWS {TOKEN}")) {
        (
            okta_error(
                StatusCode::UNAUTHORIZED,
                "E0000011",
                "Invalid token provided",
            ),
            401,
            0,
        )
    } else if org.rate_limited > 0 {
        org.rate_limited -= 1;
        let reset = Timestamp::now().as_micros() / 1_000_000 + 1;
        let mut response = okta_error(
            StatusCode::TOO_MANY_REQUESTS,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
        );
        let headers = response.headers_mut();
        headers.insert("x-rate-limit-limit", "60".parse().unwrap());
        headers.insert("x-rate-limit-remaining", "0".parse().unwrap());
        headers.insert("x-rate-limit-reset", reset.to_string().parse().unwrap());
        (response, 429, 0)
    } else {
        let limit: usize = param(&query, "limit")
            .and_then(|limit| limit.parse().ok())
            .unwrap_or(100)
            .min(1000);
        let start = match param(&query, "after") {
            Some(after) => after.parse::<usize>().unwrap_or(0),
            None => {
                let since = param(&query, "since")
                    .and_then(|since| Timestamp::parse(&since).ok())
                    .unwrap_or_else(|| Timestamp::now().plus_seconds(-7 * 24 * 3600));
                org.events
                    .iter()
                    .position(|event| {
                        Timestamp::parse(event["published"].as_str().unwrap()).unwrap() >= since
                    })
                    .unwrap_or(org.events.len())
            }
        };
        let start = start.min(org.events.len());
        let end = (start + limit).min(org.events.len());
        let page: Vec<Value> = org.events[start..end].to_vec();
        let base = format!("{}/api/v1/logs", org.base);
        let mut response = (StatusCode::OK, axum::Json(page)).into_response();
        let headers = response.headers_mut();
        headers.append(
            "link",
            format!("<{base}?{query}>; rel=\"self\"").parse().unwrap(),
        );
        headers.append(
            "link",
            format!("<{base}?after={end}&limit={limit}&sortOrder=ASCENDING>; rel=\"next\"")
                .parse()
                .unwrap(),
        );
        (response, 200, end - start)
    };
    org.requests.push(ReceivedRequest {
        query,
        status,
        returned,
    });
    response
}

/// A LogEvent as Okta writes it, of `event_type` by the user `actor` at
/// `published`, with `target`s and `debugData`.
pub fn log_event(
    uuid: &str,
    event_type: &str,
    published: Timestamp,
    actor: &str,
    target: Value,
    debug_data: Value,
) -> Value {
    json!({
        "uuid": uuid,
        "published": published.to_string(),
        "eventType": event_type,
        "version": "0",
        "severity": "INFO",
        "displayMessage": event_type,
        "actor": {
            "id": actor,
            "type": "User",
            "alternateId": format!("{actor}@example.com"),
            "displayName": actor,
            "detailEntry": null
        },
        "client": {
            "userAgent": {"rawUserAgent": "custody-e2e", "os": "Unknown", "browser": "UNKNOWN"},
            "zone": "null",
            "device": "Unknown",
            "ipAddress": "198.51.100.7"
        },
        "authenticationContext": {"authenticationStep": 0, "externalSessionId": "102e2eSession"},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": target,
        "transaction": {"type": "WEB", "id": format!("txn-{uuid}"), "detail": {}},
        "debugContext": {"debugData": debug_data},
        "request": {"ipChain": []}
    })
}

/// The targets of a group membership change: the user and the group.
pub fn user_and_group(login: &str, group: &str) -> Value {
    json!([
        {"id": format!("00u-{login}"), "type": "User", "alternateId": login, "displayName": login},
        {"id": group, "type": "UserGroup", "alternateId": "unknown", "displayName": format!("group {group}")}
    ])
}

/// An event hook's body carrying `events`.
pub fn hook_body(events: &[Value]) -> Value {
    json!({
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "cloudEventsVersion": "0.1",
        "source": "https://example.okta.com/api/v1/eventHooks/whoe2e0000000000",
        "eventId": format!("hook-{}", crate::common::uuid_like()),
        "data": {"events": events},
        "eventTime": Timestamp::now().to_string(),
        "contentType": "application/json"
    })
}
