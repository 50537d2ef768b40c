//! Every error is problem+json with a stable `type` and a consistent status:
//! path and query rejections, bad bodies, wrong content types, unknown
//! routes and methods, and identifiers in a path that name nothing (404,
//! never 400). A table of bad requests against the real server; none of
//! them may write anything.

use crate::common;

use common::{Body, Server};
use serde_json::json;

const INVALID: &str = "urn:custody:problem:invalid-request";
const NOT_FOUND: &str = "urn:custody:problem:not-found";
const METHOD_NOT_ALLOWED: &str = "urn:custody:problem:method-not-allowed";
const UNAUTHORIZED: &str = "urn:custody:problem:unauthorized";

#[test]
fn every_error_is_problem_json_with_a_stable_type_and_status() {
    let server = Server::start();
    let admin = server.admin_token.clone();
    let open = server
        .cli_ok(
            &admin,
            &[
                "request",
                "--subject",
                "user:yan",
                "--entitlement",
                "reader",
            ],
        )
        .trim()
        .to_string();
    let json_body =
        || Body::Json(json!({"subject": {"kind": "user", "id": "zoe"}, "entitlement": "admin"}));
    // (name, method, path, body, status, type)
    let table: Vec<(&str, &str, String, Body, u16, &str)> = vec![
        (
            "non-UTF-8 case ID in a path",
            "GET",
            "/v1/cases/%C0%AE".into(),
            Body::None,
            404,
            NOT_FOUND,
        ),
        (
            "non-UTF-8 case ID on a write",
            "POST",
            "/v1/cases/%C0%AE/approvals".into(),
            Body::None,
            404,
            NOT_FOUND,
        ),
        (
            "non-UTF-8 case ID in the evidence list",
            "GET",
            "/v1/cases/%C0%AE/evidence".into(),
            Body::None,
            404,
            NOT_FOUND,
        ),
        (
            "malformed case ID in the evidence list",
            "GET",
            "/v1/cases/AC-nope/evidence".into(),
            Body::None,
            404,
            NOT_FOUND,
        ),
        (
            "malformed case ID in a link capture",
            "POST",
            "/v1/cases/AC-nope/evidence/links".into(),
            Body::Json(json!({"url": "https://example.com/"})),
            404,
            NOT_FOUND,
        ),
        (
            "malformed case ID in an upload",
            "POST",
            "/v1/cases/AC-nope/evidence".into(),
            Body::Raw(b"x".to_vec(), Some("application/octet-stream")),
            404,
            NOT_FOUND,
        ),
        (
            "malformed case ID in a proof",
            "GET",
            "/v1/cases/AC-nope/proof".into(),
            Body::None,
            404,
            NOT_FOUND,
        ),
        (
            "a blob name that is not a SHA-256",
            "GET",
            format!("/v1/cases/{open}/evidence/not-hex"),
            Body::None,
            404,
            NOT_FOUND,
        ),
        (
            "non-UTF-8 blob name",
            "GET",
            format!("/v1/cases/{open}/evidence/%ff"),
            Body::None,
            404,
            NOT_FOUND,
        ),
        (
            "unknown delegation grant",
            "DELETE",
            "/v1/delegations/dg_0000000000000000".into(),
            Body::None,
            404,
            NOT_FOUND,
        ),
        (
            "non-UTF-8 delegation grant",
            "DELETE",
            "/v1/delegations/%C0%AE".into(),
            Body::None,
            404,
            NOT_FOUND,
        ),
        (
            "malformed principal name in a path",
            "POST",
            "/v1/principals/NOT%20A%20NAME/tokens".into(),
            Body::None,
            404,
            NOT_FOUND,
        ),
        (
            "unknown principal in a path",
            "POST",
            "/v1/principals/nobody/tokens".into(),
            Body::None,
            404,
            NOT_FOUND,
        ),
        (
            "unknown token",
            "DELETE",
            "/v1/tokens/tok_nothing".into(),
            Body::None,
            404,
            NOT_FOUND,
        ),
        (
            "unknown notification",
            "POST",
            "/v1/notifications/nothing/retry".into(),
            Body::None,
            404,
            NOT_FOUND,
        ),
        (
            "unknown route",
            "GET",
            "/v1/nothing-here".into(),
            Body::None,
            404,
            NOT_FOUND,
        ),
        (
            "unknown route outside /v1",
            "GET",
            "/admin".into(),
            Body::None,
            404,
            NOT_FOUND,
        ),
        (
            "method not allowed",
            "DELETE",
            "/v1/cases".into(),
            Body::None,
            405,
            METHOD_NOT_ALLOWED,
        ),
        (
            "method not allowed on a case",
            "PUT",
            format!("/v1/cases/{open}"),
            Body::None,
            405,
            METHOD_NOT_ALLOWED,
        ),
        (
            "evidence for a reference without `ticket`",
            "POST",
            "/v1/evidence".into(),
            Body::Raw(b"x".to_vec(), Some("application/octet-stream")),
            400,
            INVALID,
        ),
        (
            "evidence for a reference with a bad `ticket`",
            "POST",
            "/v1/evidence?ticket=nonsense".into(),
            Body::Raw(b"x".to_vec(), Some("application/octet-stream")),
            400,
            INVALID,
        ),
        (
            "a non-UTF-8 query",
            "POST",
            "/v1/evidence?ticket=%C0%AE".into(),
            Body::Raw(b"x".to_vec(), Some("application/octet-stream")),
            400,
            INVALID,
        ),
        (
            "a fractional limit",
            "GET",
            "/v1/cases?limit=1.5".into(),
            Body::None,
            400,
            INVALID,
        ),
        (
            "a negative limit",
            "GET",
            "/v1/notifications?limit=-1".into(),
            Body::None,
            400,
            INVALID,
        ),
        (
            "log entries without a range",
            "GET",
            "/v1/log/entries".into(),
            Body::None,
            400,
            INVALID,
        ),
        (
            "an inclusion proof of a word",
            "GET",
            "/v1/log/proof/inclusion?index=a&size=1".into(),
            Body::None,
            400,
            INVALID,
        ),
        (
            "bad JSON",
            "POST",
            "/v1/cases".into(),
            Body::Raw(b"{\"subject\":".to_vec(), Some("application/json")),
            400,
            INVALID,
        ),
        (
            "JSON of the wrong shape",
            "POST",
            "/v1/cases".into(),
            Body::Json(json!({"subject": "user:zoe"})),
            400,
            INVALID,
        ),
        (
            "wrong content type",
            "POST",
            "/v1/cases".into(),
            Body::Raw(b"{}".to_vec(), Some("text/plain")),
            400,
            INVALID,
        ),
        (
            "no content type",
            "POST",
            "/v1/cases".into(),
            Body::Raw(b"{}".to_vec(), None),
            400,
            INVALID,
        ),
        (
            "bad JSON on an optional body",
            "POST",
            format!("/v1/cases/{open}/approvals"),
            Body::Raw(b"{".to_vec(), Some("application/json")),
            400,
            INVALID,
        ),
        (
            "bad JSON on a recheck",
            "POST",
            "/v1/evidence/recheck".into(),
            Body::Raw(b"[".to_vec(), Some("application/json")),
            400,
            INVALID,
        ),
        (
            "a malformed case ID in a body is invalid input",
            "POST",
            "/v1/evidence/recheck".into(),
            Body::Json(json!({"case": "AC-nope"})),
            400,
            INVALID,
        ),
        (
            "good JSON, no token",
            "POST",
            "/v1/cases".into(),
            json_body(),
            401,
            UNAUTHORIZED,
        ),
    ];
    let before = server.log_size();
    let mut failures = Vec::new();
    for (name, method, path, body, status, problem_type) in table {
        let token = (status != 401).then_some(admin.as_str());
        let response = server.http(method, &path, token, &[], body);
        let mut wrong = Vec::new();
        if response.status != status {
            wrong.push(format!("status {} (expected {status})", response.status));
        }
        if response.content_type.as_deref() != Some("application/problem+json") {
            wrong.push(format!("content type {:?}", response.content_type));
        }
        if response.json["type"] != problem_type {
            wrong.push(format!(
                "type {} (expected {problem_type})",
                response.json["type"]
            ));
        }
        if response.json["status"] != json!(status) {
            wrong.push(format!("problem status {}", response.json["status"]));
        }
        if response.json["detail"]
            .as_str()
            .is_none_or(|detail| detail.trim().is_empty())
        {
            wrong.push("no detail".to_string());
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{name} ({method} {path}): {}\n    {}",
                wrong.join("; "),
                response.text
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "errors that are not the right problem:\n{}",
        failures.join("\n")
    );
    assert_eq!(server.log_size(), before, "bad requests wrote something");
    server.assert_verify_ok();
}

#[test]
fn method_not_allowed_keeps_the_allow_header() {
    let server = Server::start();
    let response = server.http(
        "DELETE",
        "/v1/whoami",
        Some(&server.admin_token),
        &[],
        Body::None,
    );
    assert_eq!(response.status, 405, "{}", response.text);
    assert_eq!(
        response.content_type.as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(response.json["type"], METHOD_NOT_ALLOWED);
    let allow = response.header("allow").unwrap_or_default();
    assert!(allow.contains("GET"), "Allow: {allow:?}");
}

#[test]
fn an_integral_number_written_with_a_fraction_is_that_integer_in_a_change_set() {
    // The document says change-set numbers are integers; in JSON Schema (and
    // RFC 8785) 226.0 is the integer 226, so the server takes it as 226.
    let server = Server::start();
    let alice = server.principal("alice");
    let body = |value: serde_json::Value| {
        Body::Json(json!({
            "subject": {"kind": "user", "id": "zoe"},
            "entitlement": "admin",
            "justification": "outage",
            "change_set": {"replicas": value},
        }))
    };
    let accepted = server.http(
        "POST",
        "/v1/break-glass",
        Some(&alice),
        &[],
        Body::Raw(
            br#"{"subject":{"kind":"user","id":"zoe"},"entitlement":"admin","justification":"outage","change_set":{"replicas":226.0,"nested":[-3.0]}}"#.to_vec(),
            Some("application/json"),
        ),
    );
    assert_eq!(accepted.status, 201, "{}", accepted.text);
    let case_id = accepted.json["case_id"].as_str().expect("case").to_string();
    let case = server.get_json(&format!("/v1/cases/{case_id}"));
    let text = case.to_string();
    assert!(
        text.contains(r#""replicas":226"#) && !text.contains("226.0"),
        "{text}"
    );
    let refused = server.http(
        "POST",
        "/v1/break-glass",
        Some(&alice),
        &[],
        body(json!(1.5)),
    );
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.json["type"], INVALID);
    server.assert_verify_ok();
}
