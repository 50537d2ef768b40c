//! A local ServiceNow instance for the connector's end-to-end tests.
//!
//! Two halves, both shaped by ServiceNow's public documentation:
//! - the **Table API** Custody writes back to: `GET` and `PATCH
//!   /api/now/table/{tableName}/{sys_id}` and `GET
//!   /api/now/table/{tableName}?sysparm_query=number=...`, basic auth,
//!   answers `{"result": ...}` or `{"error": {"message", "detail"},
//!   "status": "failure"}`, `X-no-response-body` honoured, journal fields
//!   (`work_notes`) appended rather than replaced, `sys_mod_count` counted;
//!   every call it receives is recorded, and it answers `503` on demand (an
//!   outage);
//! - the **business rules** that post to Custody: [`Instance::submit`],
//!   [`Instance::decide`], [`Instance::edit`] and [`Instance::close_task`]
//!   change a record the way the platform would and return the message the
//!   rule in docs/connectors/servicenow.md builds for that change, signed as
//!   `GlideCertificateEncryption.generateMac` signs it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::common::HttpStub;

/// The Table API user Custody writes back as.
pub const API_USER: &str = "custody.integration";
/// Its password.
pub const API_PASSWORD: &str = "integration-password";
/// The HMAC key of the business rules.
pub const HMAC_KEY: &str = "servicenow-business-rule-key-0123456789";

/// One Table API call the fake received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The status it answered.
    pub status: u16,
}

/// A user of the instance.
#[derive(Clone, Debug)]
pub struct User {
    pub sys_id: String,
    pub email: String,
}

impl User {
    pub fn new(sys_id: &str, email: &str) -> User {
        User {
            sys_id: sys_id.into(),
            email: email.into(),
        }
    }

    fn json(&self) -> Value {
        json!({"sys_id": self.sys_id, "email": self.email})
    }
}

#[derive(Default)]
struct Tables {
    /// Records by table, then sys_id; every value a string as the Table
    /// API returns them, `work_notes` as the journal's entries joined.
    records: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
    received: Vec<Received>,
    next_id: u64,
}

#[derive(Default)]
struct Shared {
    tables: Mutex<Tables>,
    /// How many of the next Table API calls answer 503.
    outage: AtomicUsize,
}

/// The fake instance; serves until dropped.
pub struct Instance {
    stub: HttpStub,
    shared: Arc<Shared>,
}

fn failure(status: StatusCode, message: &str, detail: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "detail": detail}, "status": "failure"})),
    )
        .into_response()
}

fn authorised(headers: &HeaderMap) -> bool {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{API_USER}:{API_PASSWORD}"))
    );
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        == Some(expected.as_str())
}

/// The Table API's answer for one call, before it is recorded.
fn table_api(
    shared: &Shared,
    method: &Method,
    table: &str,
    sys_id: Option<&str>,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if shared
        .outage
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok()
    {
        return failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "The instance is unavailable",
        );
    }
    if !authorised(headers) {
        return failure(
            StatusCode::UNAUTHORIZED,
            "User Not Authenticated",
            "Required to provide Auth information",
        );
    }
    let mut tables = shared.tables.lock().unwrap();
    let Some(records) = tables.records.get_mut(table) else {
        return failure(
            StatusCode::BAD_REQUEST,
            "Invalid table",
            &format!("Invalid table {table}"),
        );
    };
    match (method.as_str(), sys_id) {
        ("GET", None) => {
            // Only `sysparm_query=number=<value>` is supported: what the tests ask.
            let number = query
                .get("sysparm_query")
                .and_then(|text| text.strip_prefix("number="))
                .unwrap_or_default();
            let found: Vec<Value> = records
                .values()
                .filter(|record| record.get("number").and_then(Value::as_str) == Some(number))
                .map(|record| Value::Object(record.clone()))
                .collect();
            Json(json!({"result": found})).into_response()
        }
        ("GET", Some(sys_id)) => match records.get(sys_id) {
            Some(record) => Json(json!({"result": record})).into_response(),
            None => failure(
                StatusCode::NOT_FOUND,
                "No Record found",
                "Record doesn't exist or ACL restricts the record retrieval",
            ),
        },
        ("PATCH", Some(sys_id)) => {
            let Some(record) = records.get_mut(sys_id) else {
                return failure(
                    StatusCode::NOT_FOUND,
                    "No Record found",
                    "Record doesn't exist or ACL restricts the record retrieval",
                );
            };
            let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
                return failure(
                    StatusCode::BAD_REQUEST,
                    "Exception while reading request",
                    "The payload is not valid JSON.",
                );
            };
            for (name, value) in fields {
                let text = match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                if name == "work_notes" {
                    // A journal field: each write adds an entry.
                    let mut journal: Vec<Value> = record
                        .get("work_notes_journal")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    journal.push(Value::String(text));
                    record.insert("work_notes_journal".into(), Value::Array(journal));
                } else if !name.starts_with("sys_") {
                    record.insert(name, Value::String(text));
                }
            }
            let count: u64 = record["sys_mod_count"].as_str().unwrap().parse().unwrap();
            record.insert(
                "sys_mod_count".into(),
                Value::String((count + 1).to_string()),
            );
            if headers
                .get("x-no-response-body")
                .and_then(|value| value.to_str().ok())
                == Some("true")
            {
                StatusCode::OK.into_response()
            } else {
                Json(json!({"result": record})).into_response()
            }
        }
        _ => failure(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not Supported",
            "The method is not supported",
        ),
    }
}

async fn record_call(
    shared: &Shared,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    response: Response,
) -> Response {
    shared.tables.lock().unwrap().received.push(Received {
        method: method.to_string(),
        path,
        headers,
        body: body.to_vec(),
        status: response.status().as_u16(),
    });
    response
}

async fn one_record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    Path((table, sys_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = table_api(
        &shared,
        &method,
        &table,
        Some(&sys_id),
        &BTreeMap::new(),
        &headers,
        &body,
    );
    record_call(
        &shared,
        method,
        format!("/api/now/table/{table}/{sys_id}"),
        headers,
        body,
        response,
    )
    .await
}

async fn many_records(
    State(shared): State<Arc<Shared>>,
    method: Method,
    Path(table): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = table_api(&shared, &method, &table, None, &query, &headers, &body);
    record_call(
        &shared,
        method,
        format!("/api/now/table/{table}"),
        headers,
        body,
        response,
    )
    .await
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, as `getValue` gives a date-time.
pub fn glide_now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    glide_time(seconds)
}

/// A Unix time as ServiceNow writes it.
pub fn glide_time(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap();
    let rest = unix % 86_400;
    // Howard Hinnant's days-from-civil, inverted.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// A signed business rule message.
pub struct Message {
    pub body: Vec<u8>,
    /// `X-Custody-Signature`: the base64 HMAC-SHA256 of the body.
    pub signature: String,
}

impl Message {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The same message re-signed after `edit` (a different update, or a
    /// forgery when signed with another key).
    pub fn edited(&self, edit: impl FnOnce(&mut Value)) -> Message {
        let mut value = self.json();
        edit(&mut value);
        Message::signed(&value, HMAC_KEY)
    }

    pub fn signed(value: &Value, key: &str) -> Message {
        let body = serde_json::to_vec(value).unwrap();
        let signature = base64::engine::general_purpose::STANDARD.encode(
            custody_connect::signature::hmac_sha256(key.as_bytes(), &[&body]),
        );
        Message { body, signature }
    }
}

/// The mapped fields of an access request item, by the default names.
pub fn access_fields(subject: &str, entitlement: &str, justification: &str) -> Value {
    json!({
        "custody_subject_kind": "user",
        "custody_subject": subject,
        "custody_entitlement": entitlement,
        "custody_change": "grant",
        "custody_resource": "",
        "custody_duration": "",
        "description": justification,
    })
}

impl Instance {
    pub fn start() -> Instance {
        let shared = Arc::new(Shared::default());
        shared
            .tables
            .lock()
            .unwrap()
            .records
            .extend(["sc_req_item", "sc_task"].map(|table| (table.to_string(), BTreeMap::new())));
        let app = Router::new()
            .route("/api/now/table/{table}", get(many_records))
            .route(
                "/api/now/table/{table}/{sys_id}",
                get(one_record).patch(one_record),
            )
            .with_state(shared.clone());
        Instance {
            stub: HttpStub::serve(app, 2),
            shared,
        }
    }

    /// `http://127.0.0.1:PORT`: the connector's `instance_url`.
    pub fn url(&self) -> &str {
        &self.stub.base
    }

    /// The next `count` Table API calls answer 503.
    pub fn outage(&self, count: usize) {
        self.shared.outage.store(count, Ordering::SeqCst);
    }

    /// Every Table API call received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.tables.lock().unwrap().received.clone()
    }

    /// A record as the Table API would return it.
    pub fn record(&self, table: &str, sys_id: &str) -> Map<String, Value> {
        self.shared.tables.lock().unwrap().records[table][sys_id].clone()
    }

    /// The work notes written to a record, oldest first.
    pub fn work_notes(&self, table: &str, sys_id: &str) -> Vec<String> {
        self.record(table, sys_id)
            .get("work_notes_journal")
            .and_then(Value::as_array)
            .map(|notes| {
                notes
                    .iter()
                    .map(|note| note.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn new_sys_id(&self) -> String {
        let mut tables = self.shared.tables.lock().unwrap();
        tables.next_id += 1;
        format!(
            "{:032x}",
            0x5e5_0000_0000_0000_0000_0000_0000_0000_u128 + u128::from(tables.next_id)
        )
    }

    fn number(&self, prefix: &str) -> String {
        format!(
            "{prefix}{:07}",
            10_000 + self.shared.tables.lock().unwrap().next_id
        )
    }

    /// The message the business rule posts for the record as it is now,
    /// with `previous` as it was (an update) or none (an insert).
    fn message(
        &self,
        table: &str,
        sys_id: &str,
        previous: Option<&Map<String, Value>>,
        updated_by: &User,
        approver: Option<&User>,
    ) -> Message {
        let record = self.record(table, sys_id);
        let text = |record: &Map<String, Value>, name: &str| {
            record
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let is_task = table == "sc_task";
        let item = if is_task {
            self.record("sc_req_item", &text(&record, "request_item"))
        } else {
            record.clone()
        };
        let user = |name: &str| -> Value {
            let sys_id = text(&record, name);
            let email = text(&record, &format!("{name}_email"));
            if sys_id.is_empty() {
                Value::Null
            } else {
                json!({"sys_id": sys_id, "email": email})
            }
        };
        let fields = |record: &Map<String, Value>| {
            record
                .get("variables")
                .cloned()
                .unwrap_or_else(|| json!({}))
        };
        let value = json!({
            "table": table,
            "operation": if previous.is_some() { "update" } else { "insert" },
            "sys_id": sys_id,
            "number": text(&record, "number"),
            "state": text(&record, "state"),
            "approval": text(&record, "approval"),
            "sys_created_on": text(&record, "sys_created_on"),
            "sys_updated_on": text(&record, "sys_updated_on"),
            "sys_mod_count": text(&record, "sys_mod_count"),
            "correlation_id": text(&item, "correlation_id"),
            "opened_by": user("opened_by"),
            "updated_by": updated_by.json(),
            "approver": approver.map(User::json),
            "request_item": if is_task { json!({"sys_id": text(&item, "sys_id"), "number": text(&item, "number")}) } else { Value::Null },
            "close_notes": text(&record, "close_notes"),
            "fields": if is_task { json!({}) } else { fields(&record) },
            "previous": previous.map(|previous| json!({
                "state": text(previous, "state"),
                "approval": text(previous, "approval"),
                "fields": if is_task { json!({}) } else { fields(previous) },
            })),
        });
        Message::signed(&value, HMAC_KEY)
    }

    /// Changes a record as an update by `user` would, returning it before.
    fn update(
        &self,
        table: &str,
        sys_id: &str,
        user: &User,
        change: impl FnOnce(&mut Map<String, Value>),
    ) -> Map<String, Value> {
        let mut tables = self.shared.tables.lock().unwrap();
        let record = tables
            .records
            .get_mut(table)
            .unwrap()
            .get_mut(sys_id)
            .unwrap();
        let before = record.clone();
        change(record);
        let count: u64 = record["sys_mod_count"].as_str().unwrap().parse().unwrap();
        record.insert(
            "sys_mod_count".into(),
            Value::String((count + 1).to_string()),
        );
        record.insert("sys_updated_on".into(), Value::String(glide_now()));
        record.insert("sys_updated_by".into(), Value::String(user.email.clone()));
        before
    }

    /// A request item submitted by `requester` from a catalog item with
    /// the given mapped variables; returns its sys_id, number and the
    /// insert's message.
    pub fn submit(&self, requester: &User, variables: Value) -> (String, String, Message) {
        let sys_id = self.new_sys_id();
        let number = self.number("RITM");
        let now = glide_now();
        let record: Map<String, Value> = json!({
            "sys_id": sys_id,
            "number": number,
            "state": "1",
            "approval": "requested",
            "sys_created_on": now,
            "sys_updated_on": now,
            "sys_mod_count": "0",
            "correlation_id": "",
            "opened_by": requester.sys_id,
            "opened_by_email": requester.email,
            "variables": variables,
        })
        .as_object()
        .unwrap()
        .clone();
        self.shared
            .tables
            .lock()
            .unwrap()
            .records
            .get_mut("sc_req_item")
            .unwrap()
            .insert(sys_id.clone(), record);
        let message = self.message("sc_req_item", &sys_id, None, requester, None);
        (sys_id, number, message)
    }

    /// The approver approves (`approved`) or rejects (`rejected`) the item.
    pub fn decide(&self, sys_id: &str, approver: &User, approval: &str) -> Message {
        let before = self.update("sc_req_item", sys_id, approver, |record| {
            record.insert("approval".into(), approval.into());
            if approval == "approved" {
                record.insert("state".into(), "2".into());
            }
        });
        self.message(
            "sc_req_item",
            sys_id,
            Some(&before),
            approver,
            Some(approver),
        )
    }

    /// Someone edits a mapped variable of the item.
    pub fn edit(&self, sys_id: &str, editor: &User, variable: &str, value: &str) -> Message {
        let before = self.update("sc_req_item", sys_id, editor, |record| {
            record.get_mut("variables").unwrap()[variable] = value.into();
        });
        self.message("sc_req_item", sys_id, Some(&before), editor, None)
    }

    /// A catalog task of the item, opened by the fulfilment flow; returns
    /// its sys_id.
    pub fn add_task(&self, item_sys_id: &str) -> String {
        let sys_id = self.new_sys_id();
        let number = self.number("SCTASK");
        let now = glide_now();
        let record: Map<String, Value> = json!({
            "sys_id": sys_id,
            "number": number,
            "state": "1",
            "approval": "not requested",
            "sys_created_on": now,
            "sys_updated_on": now,
            "sys_mod_count": "0",
            "request_item": item_sys_id,
            "close_notes": "",
        })
        .as_object()
        .unwrap()
        .clone();
        self.shared
            .tables
            .lock()
            .unwrap()
            .records
            .get_mut("sc_task")
            .unwrap()
            .insert(sys_id.clone(), record);
        sys_id
    }

    /// The fulfiller closes the task in `state` (`3` complete, `4`
    /// incomplete) with close notes.
    pub fn close_task(
        &self,
        task_sys_id: &str,
        fulfiller: &User,
        state: &str,
        notes: &str,
    ) -> Message {
        let before = self.update("sc_task", task_sys_id, fulfiller, |record| {
            record.insert("state".into(), state.into());
            record.insert("close_notes".into(), notes.into());
        });
        self.message("sc_task", task_sys_id, Some(&before), fulfiller, None)
    }
}

/// The fake answers as the Table API documents, so the connector's tests
/// exercise what a real instance would do.
#[test]
fn the_fake_table_api_answers_as_documented() {
    assert_eq!(glide_time(1_796_032_960), "2026-11-30 10:02:40");
    assert_eq!(glide_time(951_782_400), "2000-02-29 00:00:00");
    let instance = Instance::start();
    let requester = User::new("62826bf03710200044e0bfc8bcbe5df1", "alice@example.com");
    let (sys_id, number, message) =
        instance.submit(&requester, access_fields("alice", "admins-prod", "on call"));
    let sent = message.json();
    assert_eq!(
        (sent["operation"].as_str(), sent["number"].as_str()),
        (Some("insert"), Some(number.as_str()))
    );
    let client = crate::common::http_client();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = format!("{}/api/now/table/sc_req_item/{sys_id}", instance.url());
    let patch = |authorised: bool, body: Value, quiet: bool| {
        let mut request = client.patch(&url).json(&body);
        if authorised {
            request = request.basic_auth(API_USER, Some(API_PASSWORD));
        }
        if quiet {
            request = request.header("X-no-response-body", "true");
        }
        runtime.block_on(async {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        })
    };
    let (status, body) = patch(false, json!({"work_notes": "x"}), false);
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "failure"
    );
    let (status, body) = patch(
        true,
        json!({"correlation_id": "AC-1", "work_notes": "first"}),
        false,
    );
    assert_eq!(status, 200);
    let result: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(result["result"]["correlation_id"], "AC-1");
    assert_eq!(result["result"]["sys_mod_count"], "1");
    let (status, body) = patch(true, json!({"work_notes": "second"}), true);
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(
        instance.work_notes("sc_req_item", &sys_id),
        ["first", "second"]
    );
    instance.outage(1);
    assert_eq!(patch(true, json!({"work_notes": "lost"}), true).0, 503);
    assert_eq!(patch(true, json!({"work_notes": "third"}), true).0, 200);
    let missing = runtime.block_on(async {
        client
            .patch(format!(
                "{}/api/now/table/sc_req_item/{:032x}",
                instance.url(),
                1
            ))
            .basic_auth(API_USER, Some(API_PASSWORD))
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(missing, 404);
    let found: Value = runtime.block_on(async {
        client
            .get(format!(
                "{}/api/now/table/sc_req_item?sysparm_query=number%3D{number}",
                instance.url()
            ))
            .basic_auth(API_USER, Some(API_PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(found["result"][0]["sys_id"], sys_id.as_str());
    let statuses: Vec<u16> = instance.received().iter().map(|call| call.status).collect();
    assert_eq!(statuses, [401, 200, 200, 503, 200, 404, 200]);
    let decided = instance
        .decide(
            &sys_id,
            &User::new("46d44a23a9fe19810012d100cca80666", "bob@example.com"),
            "approved",
        )
        .json();
    assert_eq!(decided["previous"]["approval"], "requested");
    assert_eq!(decided["approval"], "approved");
    assert_eq!(decided["correlation_id"], "AC-1");
}
