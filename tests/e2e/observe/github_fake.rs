//! A local fake of GitHub's REST API for an organization's audit log,
//! shaped as GitHub documents `GET /orgs/{org}/audit-log`:
//!
//! - `Authorization: Bearer <token>` with the fake's token (else 401 with
//!   `{"message": "Bad credentials"}`), the organization `acme` (else 404);
//! - `per_page` (at most 100, 30 by default), `order=asc` (the only order
//!   the fake keeps), `phrase` (only its `created:>=` qualifier is applied)
//!   and `after`, a cursor as given in the `Link` header;
//! - the answer is a JSON array of entries, oldest first, with
//!   `Link: <...?after=CURSOR&before=>; rel="next"` whenever it returned
//!   any: the cursor is opaque base64 (with `+`, `/` and `=` to
//!   percent-encode) naming the position after the last entry returned.
//!
//! The fake records every request and what it answered.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::{json, Value};

use crate::common::HttpStub;

/// The token the fake accepts.
pub const TOKEN: &str = "ghs_fakeAuditLogReaderToken0001";

/// One request the fake answered.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Its query parameters, decoded.
    pub query: Vec<(String, String)>,
    /// The `X-GitHub-Api-Version` header.
    pub api_version: Option<String>,
    /// The status answered.
    pub status: u16,
    /// Where the page answered started, and how many entries it held.
    pub start: usize,
    /// How many entries it held.
    pub returned: usize,
}

impl Seen {
    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Default)]
struct Log {
    entries: Vec<Value>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Log>>;

/// The fake, serving until dropped.
pub struct FakeGithub {
    /// `http://127.0.0.1:PORT`, the source's `api_url`.
    pub url: String,
    log: Shared,
    _stub: HttpStub,
}

impl FakeGithub {
    /// Starts the fake with no entries.
    pub fn start() -> FakeGithub {
        let log: Shared = Arc::default();
        let app = axum::Router::new()
            .route("/orgs/{org}/audit-log", get(audit_log))
            .with_state(log.clone());
        let stub = HttpStub::serve(app, 2);
        FakeGithub {
            url: stub.base.clone(),
            log,
            _stub: stub,
        }
    }

    /// Appends entries to the organization's audit log.
    pub fn append(&self, entries: impl IntoIterator<Item = Value>) {
        self.log.lock().unwrap().entries.extend(entries);
    }

    /// The requests answered so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().seen.clone()
    }

    /// Whether a poll has read past the end of the log as it is (a page
    /// starting at its length answered): everything was read.
    pub fn caught_up(&self) -> bool {
        let log = self.log.lock().unwrap();
        let end = log.entries.len();
        log.seen
            .iter()
            .any(|seen| seen.status == 200 && seen.start == end && seen.returned == 0)
    }
}

fn cursor(position: usize) -> String {
    // Padding and the alphabet's `+` and `/` make the cursor need
    // percent-encoding, as GitHub's can.
    base64::engine::general_purpose::STANDARD.encode(format!("{position}?>~"))
}

fn position(cursor: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_suffix("?>~")?
        .parse()
        .ok()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

async fn audit_log(
    State(log): State<Shared>,
    Path(org): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let mut log = log.lock().unwrap();
    let mut seen = Seen {
        query: query.clone(),
        api_version: headers
            .get("x-github-api-version")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string),
        status: 200,
        start: 0,
        returned: 0,
    };
    let param = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let authorized = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    let refuse = |log: &mut Log, mut seen: Seen, status: StatusCode, message: &str| {
        seen.status = status.as_u16();
        log.seen.push(seen);
        (
            status,
            axum::Json(
                json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
            ),
        )
            .into_response()
    };
    if !authorized {
        return refuse(&mut log, seen, StatusCode::UNAUTHORIZED, "Bad credentials");
    }
    if org != "acme" {
        return refuse(&mut log, seen, StatusCode::NOT_FOUND, "Not Found");
    }
    if param("order").as_deref() != Some("asc") {
        return refuse(
            &mut log,
            seen,
            StatusCode::UNPROCESSABLE_ENTITY,
            "the fake keeps order=asc only",
        );
    }
    let per_page = param("per_page")
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(30)
        .min(100);
    let start = match param("after") {
        Some(after) => match position(&after) {
            Some(position) => position,
            None => {
                return refuse(
                    &mut log,
                    seen,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad cursor",
                )
            }
        },
        None => {
            // Only the `created:>=` qualifier of the phrase is applied.
            let since = param("phrase").and_then(|phrase| {
                phrase
                    .split(' ')
                    .find_map(|part| part.strip_prefix("created:>="))
                    .and_then(|since| custody_core::Timestamp::parse(since).ok())
            });
            let since_ms = since.map_or(0, |since| since.as_micros() / 1000);
            log.entries
                .iter()
                .position(|entry| entry["@timestamp"].as_i64().unwrap_or(0) >= since_ms)
                .unwrap_or(log.entries.len())
        }
    };
    let end = (start + per_page).min(log.entries.len()).max(start);
    let page: Vec<Value> = log.entries.get(start..end).unwrap_or_default().to_vec();
    seen.start = start;
    seen.returned = page.len();
    log.seen.push(seen);
    let mut response = axum::Json(page.clone()).into_response();
    if !page.is_empty() {
        let next = format!(
            "<http://github.invalid/organizations/9919/audit-log?per_page={per_page}&order=asc&after={}&before=>; rel=\"next\"",
            encode(&cursor(end))
        );
        response.headers_mut().insert("link", next.parse().unwrap());
    }
    response
}
