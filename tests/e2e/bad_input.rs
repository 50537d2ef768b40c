//! Invariant 10: bad input gets a clear error and changes nothing. Every case
//! below is sent over real HTTP to a real server; each must answer with the
//! right status and problem type, append nothing, open no case and leave the
//! server alive.

use crate::common;

use common::{assert_verify_ok, Body, Server};
use serde_json::{json, Value};

const INVALID: &str = "urn:custody:problem:invalid-request";
const UNAUTHORIZED: &str = "urn:custody:problem:unauthorized";
const NOT_FOUND: &str = "urn:custody:problem:not-found";
const TOO_LARGE: &str = "urn:custody:problem:payload-too-large";

struct Bad {
    name: &'static str,
    method: &'static str,
    path: String,
    token: Option<String>,
    headers: Vec<(&'static str, &'static str)>,
    body: Body,
    status: u16,
    problem_type: &'static str,
    /// A word the `detail` must contain, when the cause can be named.
    detail_mentions: Option<String>,
}

fn valid_request() -> Value {
    json!({"subject": {"kind": "user", "id": "zoe"}, "entitlement": "admin"})
}

#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");

    // A case at each stage, so the refusals below are about the input alone.
    let open = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:yan",
            "--entitlement",
            "reader",
        ],
    );
    let open = open.trim().to_string();
    let executed = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:xia",
            "--entitlement",
            "writer",
        ],
    );
    let executed = executed.trim().to_string();
    server.cli_ok(&bob, &["approve", &executed]);
    let approved = server.cli_ok(
        &alice,
        &["request", "--subject", "user:wu", "--entitlement", "writer"],
    );
    let approved = approved.trim().to_string();
    server.cli_ok(&bob, &["approve", &approved]);
    server.cli_ok(&carol, &["execute", &executed]);

    let unknown_case = custody_core::CaseId::generate().to_string();
    let a = Some(alice.clone());
    let b = Some(bob.clone());
    let c = Some(carol.clone());
    let mut huge = valid_request();
    huge["justification"] = json!("x".repeat(1024 * 1024 + 16));
    let mut cases = vec![
        Bad {
            name: "malformed JSON",
            method: "POST",
            path: "/v1/cases".into(),
            token: a.clone(),
            headers: vec![],
            body: Body::Raw(
                br#"{"subject": {"kind": "user", "id": "zoe"}, "entitlement": "#.to_vec(),
                Some("application/json"),
            ),
            status: 400,
            problem_type: INVALID,
            detail_mentions: None,
        },
        Bad {
            name: "not JSON at all",
            method: "POST",
            path: "/v1/cases".into(),
            token: a.clone(),
            headers: vec![],
            body: Body::Raw(b"subject=user:zoe".to_vec(), Some("application/json")),
            status: 400,
            problem_type: INVALID,
            detail_mentions: None,
        },
        Bad {
            name: "JSON without a JSON content type",
            method: "POST",
            path: "/v1/cases".into(),
            token: a.clone(),
            headers: vec![],
            body: Body::Raw(valid_request().to_string().into_bytes(), Some("text/plain")),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("Content-Type".into()),
        },
        Bad {
            name: "unknown subject kind",
            method: "POST",
            path: "/v1/cases".into(),
            token: a.clone(),
            headers: vec![],
            body: Body::Json(
                json!({"subject": {"kind": "robot", "id": "r2"}, "entitlement": "admin"}),
            ),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("robot".into()),
        },
        Bad {
            name: "missing entitlement",
            method: "POST",
            path: "/v1/cases".into(),
            token: a.clone(),
            headers: vec![],
            body: Body::Json(json!({"subject": {"kind": "user", "id": "zoe"}})),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("entitlement".into()),
        },
        Bad {
            name: "unknown field",
            method: "POST",
            path: "/v1/cases".into(),
            token: a.clone(),
            headers: vec![],
            body: Body::Json(
                json!({"subject": {"kind": "user", "id": "zoe"}, "entitlement": "admin", "actor": "mallory"}),
            ),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("actor".into()),
        },
        Bad {
            name: "unknown change kind",
            method: "POST",
            path: "/v1/cases".into(),
            token: a.clone(),
            headers: vec![],
            body: Body::Json(
                json!({"subject": {"kind": "user", "id": "zoe"}, "entitlement": "admin", "change": "steal"}),
            ),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("steal".into()),
        },
        Bad {
            name: "control characters in the justification",
            method: "POST",
            path: "/v1/cases".into(),
            token: a.clone(),
            headers: vec![],
            body: Body::Json(
                json!({"subject": {"kind": "user", "id": "zoe"}, "entitlement": "admin", "justification": "ok\u{0007}bell"}),
            ),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("justification".into()),
        },
        Bad {
            name: "malformed ticket",
            method: "POST",
            path: "/v1/cases".into(),
            token: a.clone(),
            headers: vec![],
            body: Body::Json(
                json!({"subject": {"kind": "user", "id": "zoe"}, "entitlement": "admin", "ticket": "no-colon"}),
            ),
            status: 400,
            problem_type: INVALID,
            detail_mentions: None,
        },
        Bad {
            name: "float in an execution change set",
            method: "POST",
            path: format!("/v1/cases/{approved}/executions"),
            token: c.clone(),
            headers: vec![],
            body: Body::Json(json!({"change_set": {"added": ["role/writer"], "ratio": 0.5}})),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("0.5".into()),
        },
        Bad {
            name: "integer beyond 2^53 in an execution change set",
            method: "POST",
            path: format!("/v1/cases/{approved}/executions"),
            token: c.clone(),
            headers: vec![],
            body: Body::Raw(
                br#"{"change_set": {"id": 9007199254740993}}"#.to_vec(),
                Some("application/json"),
            ),
            status: 400,
            problem_type: INVALID,
            detail_mentions: None,
        },
        Bad {
            name: "a key given twice in an execution change set",
            method: "POST",
            path: format!("/v1/cases/{approved}/executions"),
            token: c.clone(),
            headers: vec![],
            body: Body::Raw(
                br#"{"change_set": {"added": ["role/writer"], "added": []}}"#.to_vec(),
                Some("application/json"),
            ),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("twice".into()),
        },
        Bad {
            name: "an execution change set that is not an object",
            method: "POST",
            path: format!("/v1/cases/{approved}/executions"),
            token: c.clone(),
            headers: vec![],
            body: Body::Json(json!({"change_set": ["role/writer"]})),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("must be a JSON object".into()),
        },
        Bad {
            name: "unknown execution status",
            method: "POST",
            path: format!("/v1/cases/{approved}/executions"),
            token: c.clone(),
            headers: vec![],
            body: Body::Json(json!({"status": "maybe"})),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("maybe".into()),
        },
        Bad {
            name: "occurred_at in the future",
            method: "POST",
            path: format!("/v1/cases/{approved}/executions"),
            token: c.clone(),
            headers: vec![],
            body: Body::Json(json!({"occurred_at": "2999-01-01T00:00:00Z"})),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("future".into()),
        },
        Bad {
            name: "oversized body",
            method: "POST",
            path: "/v1/cases".into(),
            token: a.clone(),
            headers: vec![],
            body: Body::Json(huge),
            status: 413,
            problem_type: TOO_LARGE,
            detail_mentions: None,
        },
        Bad {
            name: "oversized body on an optional-body write",
            method: "POST",
            path: format!("/v1/cases/{open}/approvals"),
            token: b.clone(),
            headers: vec![],
            body: Body::Json(json!({"comment": "y".repeat(1024 * 1024 + 16)})),
            status: 413,
            problem_type: TOO_LARGE,
            detail_mentions: None,
        },
        Bad {
            name: "unknown case ID (GET)",
            method: "GET",
            path: format!("/v1/cases/{unknown_case}"),
            token: a.clone(),
            headers: vec![],
            body: Body::None,
            status: 404,
            problem_type: NOT_FOUND,
            detail_mentions: Some(unknown_case.clone()),
        },
        Bad {
            name: "unknown case ID (approve)",
            method: "POST",
            path: format!("/v1/cases/{unknown_case}/approvals"),
            token: b.clone(),
            headers: vec![],
            body: Body::None,
            status: 404,
            problem_type: NOT_FOUND,
            detail_mentions: Some(unknown_case.clone()),
        },
        Bad {
            name: "unknown case ID (comment)",
            method: "POST",
            path: format!("/v1/cases/{unknown_case}/comments"),
            token: a.clone(),
            headers: vec![],
            body: Body::Json(json!({"text": "hello?"})),
            status: 404,
            problem_type: NOT_FOUND,
            detail_mentions: Some(unknown_case.clone()),
        },
        Bad {
            // A malformed ID names no case: not found, with a hint at the format.
            name: "malformed case ID",
            method: "POST",
            path: "/v1/cases/AC-not-a-case/approvals".into(),
            token: b.clone(),
            headers: vec![],
            body: Body::None,
            status: 404,
            problem_type: NOT_FOUND,
            detail_mentions: Some("AC-not-a-case".into()),
        },
        Bad {
            name: "missing Authorization",
            method: "POST",
            path: "/v1/cases".into(),
            token: None,
            headers: vec![],
            body: Body::Json(valid_request()),
            status: 401,
            problem_type: UNAUTHORIZED,
            detail_mentions: Some("Authorization".into()),
        },
        Bad {
            name: "unknown bearer token",
            method: "POST",
            path: "/v1/cases".into(),
            token: Some(
                "cust_0000000000000000000000000000000000000000000000000000000000000000".into(),
            ),
            headers: vec![],
            body: Body::Json(valid_request()),
            status: 401,
            problem_type: UNAUTHORIZED,
            detail_mentions: None,
        },
        Bad {
            name: "wrong authorization scheme",
            method: "POST",
            path: "/v1/cases".into(),
            token: None,
            headers: vec![("authorization", "Basic x")],
            body: Body::Json(valid_request()),
            status: 401,
            problem_type: UNAUTHORIZED,
            detail_mentions: Some("Bearer".into()),
        },
        Bad {
            name: "invalid Idempotency-Key",
            method: "POST",
            path: "/v1/cases".into(),
            token: a.clone(),
            headers: vec![("idempotency-key", "two words")],
            body: Body::Json(valid_request()),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("Idempotency-Key".into()),
        },
        Bad {
            name: "empty Idempotency-Key",
            method: "POST",
            path: format!("/v1/cases/{open}/comments"),
            token: a.clone(),
            headers: vec![("idempotency-key", "")],
            body: Body::Json(json!({"text": "hello"})),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("Idempotency-Key".into()),
        },
        Bad {
            name: "invalid custody-via",
            method: "POST",
            path: "/v1/cases".into(),
            token: a.clone(),
            headers: vec![("custody-via", "chat")],
            body: Body::Json(valid_request()),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("custody-via".into()),
        },
        Bad {
            name: "invalid review outcome",
            method: "POST",
            path: format!("/v1/cases/{executed}/reviews"),
            token: b.clone(),
            headers: vec![],
            body: Body::Json(json!({"outcome": "fine"})),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("fine".into()),
        },
        Bad {
            name: "empty comment",
            method: "POST",
            path: format!("/v1/cases/{open}/comments"),
            token: a.clone(),
            headers: vec![],
            body: Body::Json(json!({"text": "   "})),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("text".into()),
        },
        // serde reads a struct from an array of its fields in order, so
        // these were taken as `{"text": "an array"}` and `{}` (a token
        // issued): schemathesis found the second.
        Bad {
            name: "an array for the comment object",
            method: "POST",
            path: format!("/v1/cases/{open}/comments"),
            token: a.clone(),
            headers: vec![],
            body: Body::Json(json!(["an array"])),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("JSON object".into()),
        },
        Bad {
            name: "an array for the token object",
            method: "POST",
            path: "/v1/principals/alice/tokens".into(),
            token: Some(server.admin_token.clone()),
            headers: vec![],
            body: Body::Json(json!([])),
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("JSON object".into()),
        },
        Bad {
            name: "unknown state filter",
            method: "GET",
            path: "/v1/cases?state=limbo".into(),
            token: a.clone(),
            headers: vec![],
            body: Body::None,
            status: 400,
            problem_type: INVALID,
            detail_mentions: Some("limbo".into()),
        },
    ];

    let log_size = server.log_size();
    let case_count = server.case_count();
    let mut failures = Vec::new();
    for bad in cases.drain(..) {
        let response = server.try_http(
            bad.method,
            &bad.path,
            bad.token.as_deref(),
            &bad.headers,
            bad.body,
        );
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                failures.push(format!("{}: no HTTP response: {error}", bad.name));
                continue;
            }
        };
        let mut problems = Vec::new();
        if response.status != bad.status {
            problems.push(format!(
                "status {} (expected {})",
                response.status, bad.status
            ));
        }
        if response.content_type.as_deref() != Some("application/problem+json") {
            problems.push(format!("content-type {:?}", response.content_type));
        }
        if response.json["type"] != bad.problem_type {
            problems.push(format!(
                "type {} (expected {})",
                response.json["type"], bad.problem_type
            ));
        }
        if response.json["status"] != json!(bad.status) {
            problems.push(format!("problem status {}", response.json["status"]));
        }
        let detail = response.json["detail"].as_str().unwrap_or("");
        if detail.trim().is_empty() {
            problems.push("empty detail".to_string());
        }
        if let Some(word) = &bad.detail_mentions {
            let hint = response.json["hint"].as_str().unwrap_or("");
            if !detail.contains(word.as_str()) && !hint.contains(word.as_str()) {
                problems.push(format!("detail does not mention {word:?}"));
            }
        }
        if bad.status == 401 && response.header("www-authenticate") != Some("Bearer") {
            problems.push(format!(
                "WWW-Authenticate {:?}",
                response.header("www-authenticate")
            ));
        }
        // Nothing appended, no case opened, by this request.
        let now = server.log_size();
        if now != log_size {
            problems.push(format!("the log grew from {log_size} to {now}"));
        }
        let cases_now = server.case_count();
        if cases_now != case_count {
            problems.push(format!("case count went from {case_count} to {cases_now}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n    body: {}",
                bad.name,
                problems.join("; "),
                response.text
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "bad input handled wrongly:\n{}",
        failures.join("\n")
    );

    // The cases used above are exactly as they were.
    for (case, state, events) in [
        (&open, "open", 1),
        (&approved, "approved", 2),
        (&executed, "executed", 3),
    ] {
        let document = server.show(&alice, case);
        assert_eq!(document["state"], state, "{case}");
        assert_eq!(
            document["events"].as_array().map(Vec::len),
            Some(events),
            "{case}"
        );
    }

    // Still alive, still whole.
    let health = server.http("GET", "/healthz", None, &[], Body::None);
    assert_eq!(health.status, 200);
    assert!(
        !server.log().contains("panicked"),
        "the server panicked:\n{}",
        server.log()
    );
    assert_verify_ok(&server.data);

    // And it still takes good input.
    let ok = server.http(
        "POST",
        "/v1/cases",
        Some(&alice),
        &[],
        Body::Json(valid_request()),
    );
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(server.log_size(), log_size + 1);
    assert_verify_ok(&server.data);
}

#[test]
fn unknown_routes_and_methods_are_problems_too() {
    let server = Server::start();
    let alice = server.principal("alice");
    let log_size = server.log_size();

    let response = server.http("GET", "/v1/nothing-here", Some(&alice), &[], Body::None);
    assert_eq!(response.status, 404, "{}", response.text);
    assert_eq!(
        response.content_type.as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(response.json["type"], NOT_FOUND);

    let response = server.http("DELETE", "/v1/cases", Some(&alice), &[], Body::None);
    assert_eq!(response.status, 405, "{}", response.text);
    assert_eq!(
        response.content_type.as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(
        response.json["type"],
        "urn:custody:problem:method-not-allowed"
    );

    assert_eq!(server.log_size(), log_size);
    assert_verify_ok(&server.data);
}
