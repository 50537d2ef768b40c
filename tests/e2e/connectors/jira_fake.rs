//! A local fake of the Jira Cloud REST API v3, as much of it as Custody's
//! write-back uses, shaped as Atlassian documents it:
//!
//! - `POST /rest/api/3/issue/{issueIdOrKey}/comment`: a body whose `body` is
//!   an Atlassian Document Format document (`type` `doc`, `version` 1, block
//!   content); answered 201 with the created comment (`id`, `self`,
//!   `author`, `body`, `created`, `updated`);
//! - `GET /rest/api/3/issue/{issueIdOrKey}/comment`: the page of comments
//!   (`startAt`, `maxResults`, `total`, `comments`);
//! - `PUT /rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}`: any
//!   non-empty JSON value of at most 32768 characters, under a key of at
//!   most 255; answered 201 when the property is created and 200 when it is
//!   replaced, with no body;
//! - `GET /rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}`:
//!   `{"key": ..., "value": ...}`.
//!
//! Every call needs basic authentication with the configured email and API
//! token (else 401), JSON bodies need `Content-Type: application/json`
//! (else 415), and an unknown issue is 404 with Jira's error collection
//! (`errorMessages`, `errors`). The fake records every call it received,
//! answered or not, and answers 503 to the next `n` calls on demand (an
//! outage).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};

use crate::common::HttpStub;

/// The account the fake accepts.
pub const EMAIL: &str = "custody-bot@example.com";
/// Its API token.
pub const TOKEN: &str = "ATATT3xFfGF0-fake-token";

/// One call the fake received.
#[derive(Clone, Debug)]
pub struct ReceivedCall {
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The `Authorization` header, as sent.
    pub authorization: Option<String>,
    /// The body, as JSON (`Null` when empty or not JSON).
    pub body: Value,
    /// What the fake answered.
    pub status: u16,
}

#[derive(Default)]
struct Site {
    issues: BTreeSet<String>,
    comments: BTreeMap<String, Vec<Value>>,
    properties: BTreeMap<(String, String), Value>,
    calls: Vec<ReceivedCall>,
    failing: usize,
    next_comment_id: u64,
}

type Shared = Arc<Mutex<Site>>;

/// The fake Jira site, on its own thread and runtime.
pub struct FakeJira {
    /// `http://127.0.0.1:PORT`, the connector's `api_url`.
    pub url: String,
    site: Shared,
    _stub: HttpStub,
}

impl FakeJira {
    /// Starts a site holding the issues `keys`.
    pub fn start(keys: &[&str]) -> FakeJira {
        let site = Shared::default();
        let app = axum::Router::new()
            .route(
                "/rest/api/3/issue/{issue}/comment",
                get(list_comments).post(add_comment),
            )
            .route(
                "/rest/api/3/issue/{issue}/properties/{property}",
                get(get_property).put(set_property),
            )
            .with_state(site.clone());
        let stub = HttpStub::serve(app, 1);
        let fake = FakeJira {
            url: stub.base.clone(),
            site,
            _stub: stub,
        };
        for key in keys {
            fake.add_issue(key);
        }
        fake
    }

    /// Adds an issue.
    pub fn add_issue(&self, key: &str) {
        self.site.lock().unwrap().issues.insert(key.to_string());
    }

    /// Answers 503 to the next `count` calls.
    pub fn fail_next(&self, count: usize) {
        self.site.lock().unwrap().failing = count;
    }

    /// Every call received, in order.
    pub fn calls(&self) -> Vec<ReceivedCall> {
        self.site.lock().unwrap().calls.clone()
    }

    /// The comments an issue holds, as Jira stores them.
    pub fn comments(&self, key: &str) -> Vec<Value> {
        self.site
            .lock()
            .unwrap()
            .comments
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    /// An issue's entity property.
    pub fn property(&self, key: &str, property: &str) -> Option<Value> {
        self.site
            .lock()
            .unwrap()
            .properties
            .get(&(key.to_string(), property.to_string()))
            .cloned()
    }

    /// The text of an issue's comments, one string per comment.
    pub fn comment_texts(&self, key: &str) -> Vec<String> {
        self.comments(key)
            .iter()
            .map(|comment| adf_text(&comment["body"]))
            .collect()
    }
}

/// The text of an ADF document, its text nodes concatenated.
pub fn adf_text(node: &Value) -> String {
    let mut out = node["text"].as_str().unwrap_or_default().to_string();
    if let Some(children) = node["content"].as_array() {
        for child in children {
            out.push_str(&adf_text(child));
        }
    }
    out
}

/// An answer: the status and, unless empty, a JSON body.
type Answer = (StatusCode, Option<Value>);

fn error_collection(status: StatusCode, message: &str) -> Answer {
    (
        status,
        Some(json!({ "errorMessages": [message], "errors": {} })),
    )
}

/// One received call: the checks every call goes through, then `handle`,
/// and the call recorded with the status it got.
fn serve(
    site: &Shared,
    method: &Method,
    path: String,
    headers: &HeaderMap,
    body: &Bytes,
    issue: &str,
    handle: impl FnOnce(&mut Site) -> Answer,
) -> Response {
    let mut site = site.lock().unwrap();
    let authorization = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{TOKEN}"))
    );
    let json_body = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    let (status, answer) = if site.failing > 0 {
        site.failing -= 1;
        error_collection(
            StatusCode::SERVICE_UNAVAILABLE,
            "Jira is unavailable (the fake's simulated outage).",
        )
    } else if authorization.as_deref() != Some(expected.as_str()) {
        error_collection(
            StatusCode::UNAUTHORIZED,
            "Client must be authenticated to access this resource.",
        )
    } else if *method != Method::GET && !json_body {
        error_collection(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type")
    } else if !site.issues.contains(issue) {
        error_collection(
            StatusCode::NOT_FOUND,
            "Issue does not exist or you do not have permission to see it.",
        )
    } else {
        handle(&mut site)
    };
    site.calls.push(ReceivedCall {
        method: method.to_string(),
        path,
        authorization,
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        status: status.as_u16(),
    });
    match answer {
        Some(answer) => (status, Json(answer)).into_response(),
        None => status.into_response(),
    }
}

/// Whether `value` is an ADF document as the comment endpoint takes it.
fn check_document(value: &Value) -> Result<(), String> {
    fn text_nodes_ok(node: &Value) -> bool {
        if node["type"] == "text" && node["text"].as_str().is_none_or(str::is_empty) {
            return false;
        }
        node["content"]
            .as_array()
            .is_none_or(|children| children.iter().all(text_nodes_ok))
    }
    if value["type"] != "doc" || value["version"] != 1 {
        return Err(
            "the comment body is not an Atlassian Document Format document (type doc, version 1)"
                .into(),
        );
    }
    match value["content"].as_array() {
        None => Err("the document has no content array".into()),
        Some(content) if content.is_empty() => Err("Comment body can not be empty!".into()),
        Some(content) if !content.iter().all(text_nodes_ok) => Err("a text node is empty".into()),
        Some(_) => Ok(()),
    }
}

async fn add_comment(
    State(site): State<Shared>,
    Path(issue): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let host = headers
        .get("host")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let path = format!("/rest/api/3/issue/{issue}/comment");
    serve(&site, &method, path, &headers, &body, &issue, |site| {
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if let Err(problem) = check_document(&request["body"]) {
            return (
                StatusCode::BAD_REQUEST,
                Some(json!({ "errorMessages": [], "errors": { "comment": problem } })),
            );
        }
        site.next_comment_id += 1;
        let id = (10_000 + site.next_comment_id).to_string();
        let comment = json!({
            "self": format!("http://{host}/rest/api/3/issue/{issue}/comment/{id}"),
            "id": id,
            "author": {
                "accountId": "5b10a2844c20165700ede21g",
                "displayName": "Custody",
                "active": true,
            },
            "body": request["body"],
            "created": "2026-11-30T12:00:00.000+0000",
            "updated": "2026-11-30T12:00:00.000+0000",
            "jsdPublic": true,
        });
        site.comments
            .entry(issue.clone())
            .or_default()
            .push(comment.clone());
        (StatusCode::CREATED, Some(comment))
    })
}

async fn list_comments(
    State(site): State<Shared>,
    Path(issue): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let path = format!("/rest/api/3/issue/{issue}/comment");
    serve(
        &site,
        &method,
        path,
        &headers,
        &Bytes::new(),
        &issue,
        |site| {
            let comments = site.comments.get(&issue).cloned().unwrap_or_default();
            (
                StatusCode::OK,
                Some(json!({
                    "startAt": 0,
                    "maxResults": 5000,
                    "total": comments.len(),
                    "comments": comments,
                })),
            )
        },
    )
}

async fn set_property(
    State(site): State<Shared>,
    Path((issue, property)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/rest/api/3/issue/{issue}/properties/{property}");
    serve(&site, &method, path, &headers, &body, &issue, |site| {
        let Ok(value) = serde_json::from_slice::<Value>(&body) else {
            return error_collection(
                StatusCode::BAD_REQUEST,
                "The property value must be valid JSON.",
            );
        };
        if body.len() > 32_768 {
            return error_collection(
                StatusCode::BAD_REQUEST,
                "The property value is longer than 32768 characters.",
            );
        }
        if property.is_empty() || property.len() > 255 {
            return error_collection(
                StatusCode::BAD_REQUEST,
                "The property key must be 1 to 255 characters.",
            );
        }
        let created = site
            .properties
            .insert((issue.clone(), property.clone()), value)
            .is_none();
        if created {
            (StatusCode::CREATED, None)
        } else {
            (StatusCode::OK, None)
        }
    })
}

async fn get_property(
    State(site): State<Shared>,
    Path((issue, property)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let path = format!("/rest/api/3/issue/{issue}/properties/{property}");
    serve(
        &site,
        &method,
        path,
        &headers,
        &Bytes::new(),
        &issue,
        |site| match site.properties.get(&(issue.clone(), property.clone())) {
            Some(value) => (
                StatusCode::OK,
                Some(json!({ "key": property, "value": value })),
            ),
            None => error_collection(
                StatusCode::NOT_FOUND,
                &format!("The property with key '{property}' does not exist."),
            ),
        },
    )
}

/// The fake answers as documented: a test that it can fail.
#[test]
fn the_fake_jira_answers_as_the_rest_api_documents() {
    let fake = FakeJira::start(&["SEC-1"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = crate::common::http_client();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>, auth: bool| {
        let mut request = client.request(method, format!("{}{path}", fake.url));
        if auth {
            request = request.basic_auth(EMAIL, Some(TOKEN));
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&body).unwrap());
        }
        runtime.block_on(async {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            )
        })
    };
    let document = json!({ "type": "doc", "version": 1, "content": [
        { "type": "paragraph", "content": [{ "type": "text", "text": "hello" }] }
    ]});
    let put = reqwest::Method::PUT;
    let post = reqwest::Method::POST;
    let property = "/rest/api/3/issue/SEC-1/properties/custody";
    let comment = "/rest/api/3/issue/SEC-1/comment";
    assert_eq!(
        call(put.clone(), property, Some(json!({ "a": 1 })), false).0,
        401
    );
    assert_eq!(
        call(put.clone(), property, Some(json!({ "a": 1 })), true).0,
        201
    );
    assert_eq!(
        call(put.clone(), property, Some(json!({ "a": 2 })), true).0,
        200
    );
    assert_eq!(fake.property("SEC-1", "custody"), Some(json!({ "a": 2 })));
    assert_eq!(
        call(reqwest::Method::GET, property, None, true),
        (200, json!({ "key": "custody", "value": { "a": 2 } }))
    );
    let (status, created) = call(
        post.clone(),
        comment,
        Some(json!({ "body": document })),
        true,
    );
    assert_eq!(status, 201);
    assert_eq!(created["body"], document);
    assert!(created["self"]
        .as_str()
        .unwrap()
        .ends_with("/rest/api/3/issue/SEC-1/comment/10001"));
    let (status, error) = call(
        post.clone(),
        comment,
        Some(json!({ "body": "plain text" })),
        true,
    );
    assert_eq!(status, 400, "{error}");
    assert!(error["errors"]["comment"].is_string());
    let (status, error) = call(
        post.clone(),
        "/rest/api/3/issue/SEC-2/comment",
        Some(json!({ "body": document })),
        true,
    );
    assert_eq!(status, 404);
    assert_eq!(
        error["errorMessages"][0],
        "Issue does not exist or you do not have permission to see it."
    );
    fake.fail_next(1);
    assert_eq!(
        call(
            post.clone(),
            comment,
            Some(json!({ "body": document })),
            true
        )
        .0,
        503
    );
    assert_eq!(
        call(post, comment, Some(json!({ "body": document })), true).0,
        201
    );
    let (status, page) = call(reqwest::Method::GET, comment, None, true);
    assert_eq!(status, 200);
    assert_eq!(page["total"], 2);
    assert_eq!(fake.comment_texts("SEC-1"), ["hello", "hello"]);
    let statuses: Vec<u16> = fake.calls().iter().map(|call| call.status).collect();
    assert_eq!(statuses, [401, 201, 200, 200, 201, 400, 404, 503, 201, 200]);
}
