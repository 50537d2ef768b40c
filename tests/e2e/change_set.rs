//! Change sets are parsed once, at the edge, into a `ChangeSet` with every
//! limit in one place (issue 10, item 6 "Nesting depth"): anything accepted
//! is stored canonically, reads back and verifies; anything beyond a limit
//! is refused with a 400 problem+json and nothing is written.

use crate::common;

use common::{assert_verify_ok, Body, Server};
use custody_core::change_set::{MAX_DEPTH, MAX_SAFE_INTEGER};
use serde_json::{json, Value};

/// A change set of `levels` levels: an object around nested arrays around
/// an object, the shape a tool's nested output takes.
fn nested(levels: usize) -> Value {
    let mut value = json!({"id": 7});
    // The objects inside and around count as one level each.
    for _ in 2..levels {
        value = json!([value]);
    }
    json!({ "changes": value })
}

/// A case approved by bob, ready to execute; returns its ID.
fn approved_case(server: &Server, alice: &str, bob: &str, entitlement: &str) -> String {
    let case = server.cli_ok(
        alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            entitlement,
        ],
    );
    let case = case.trim().to_string();
    server.cli_ok(bob, &["approve", &case]);
    case
}

fn execute(
    server: &Server,
    token: &str,
    case: &str,
    change_set: Value,
    key: &str,
) -> common::Response {
    server.http(
        "POST",
        &format!("/v1/cases/{case}/executions"),
        Some(token),
        &[("idempotency-key", key)],
        Body::Json(json!({ "change_set": change_set })),
    )
}

#[track_caller]
fn assert_bad_request(response: &common::Response, says: &str) {
    assert_eq!(response.status, 400, "{}", response.text);
    assert_eq!(
        response.content_type.as_deref(),
        Some("application/problem+json"),
        "{}",
        response.text
    );
    let detail = response.json["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(says),
        "detail should say {says:?}: {}",
        response.text
    );
}

#[test]
fn a_change_set_at_the_depth_limit_is_stored_reads_back_and_verifies() {
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");

    let case = approved_case(&server, &alice, &bob, "db-admin");
    let deepest = nested(MAX_DEPTH);
    let response = execute(&server, &carol, &case, deepest.clone(), "deep-ok");
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.json["state"], "executed");

    // It reads back through `show` (which decodes the stored bytes) as sent.
    let document = server.show(&carol, &case);
    let execution = document["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["kind"] == "execution_completed")
        .unwrap_or_else(|| panic!("no execution in {document}"));
    assert_eq!(execution["payload"]["change_set"], deepest);
    assert_verify_ok(&server.data);
}

#[test]
fn a_change_set_beyond_a_limit_is_refused_and_nothing_is_written() {
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let case = approved_case(&server, &alice, &bob, "db-admin");
    let before = server.log_size();

    // One level too deep; and 63 levels, which was accepted before and then
    // read back as tampered (`event.not-canonical`).
    for levels in [MAX_DEPTH + 1, 63] {
        let response = execute(
            &server,
            &carol,
            &case,
            nested(levels),
            &format!("deep-{levels}"),
        );
        assert_bad_request(&response, &format!("more than {MAX_DEPTH} levels"));
    }
    let response = execute(&server, &carol, &case, json!({"ratio": 0.5}), "float");
    assert_bad_request(&response, "change_set.ratio is 0.5");
    let response = execute(
        &server,
        &carol,
        &case,
        json!({"n": MAX_SAFE_INTEGER + 1}),
        "too-big",
    );
    assert_bad_request(&response, "beyond ±9007199254740991");
    let response = execute(
        &server,
        &carol,
        &case,
        json!({"blob": "x".repeat(custody_core::change_set::MAX_BYTES)}),
        "too-large",
    );
    assert_bad_request(&response, "bytes in canonical form");
    // Break-glass takes change sets too, with the same limits.
    let response = server.http(
        "POST",
        "/v1/break-glass",
        Some(&carol),
        &[("idempotency-key", "bg-deep")],
        Body::Json(json!({
            "subject": {"kind": "user", "id": "oncall"},
            "entitlement": "db-admin",
            "justification": "outage",
            "change_set": nested(MAX_DEPTH + 1),
        })),
    );
    assert_bad_request(&response, "more than 32 levels");

    // Nothing was written: same log, the case still waits for its execution.
    assert_eq!(server.log_size(), before);
    assert_eq!(server.show(&carol, &case)["state"], "approved");

    // Through the CLI, a change-set file beyond the limit fails the same way.
    let file = server.data.join("deep.json");
    std::fs::write(&file, serde_json::to_vec(&nested(MAX_DEPTH + 1)).unwrap()).unwrap();
    let output = server.cli(
        Some(&carol),
        &["execute", &case, "--change-set", file.to_str().unwrap()],
    );
    assert_ne!(output.status.code(), Some(0));
    assert!(
        common::stderr(&output).contains(&format!("more than {MAX_DEPTH} levels")),
        "{}",
        common::stderr(&output)
    );
    assert_eq!(server.log_size(), before);
    assert_verify_ok(&server.data);
}

#[test]
fn a_change_set_must_be_one_object_with_each_key_once() {
    // The API documents a change set as a JSON object; a key given twice
    // would mean whatever each reader's parser makes of it, so it is
    // refused, through the API and through the CLI, and nothing is written.
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let case = approved_case(&server, &alice, &bob, "db-admin");
    let before = server.log_size();

    for (index, change_set) in [json!([{"id": 7}]), json!("role/admin"), json!(7)]
        .into_iter()
        .enumerate()
    {
        let response = execute(
            &server,
            &carol,
            &case,
            change_set,
            &format!("shape-{index}"),
        );
        assert_bad_request(&response, "it must be a JSON object");
    }
    let response = server.http(
        "POST",
        &format!("/v1/cases/{case}/executions"),
        Some(&carol),
        &[("idempotency-key", "twice")],
        Body::Raw(
            br#"{"change_set": {"added": ["role/admin"], "users": [{"id": 1, "id": 2}]}}"#.to_vec(),
            Some("application/json"),
        ),
    );
    assert_bad_request(&response, "change_set.users[0] holds the key \"id\" twice");

    let file = server.data.join("twice.json");
    std::fs::write(&file, br#"{"added": ["role/admin"], "added": []}"#).unwrap();
    let output = server.cli(
        Some(&carol),
        &["execute", &case, "--change-set", file.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(2), "{}", common::stderr(&output));
    assert!(
        common::stderr(&output).contains("holds the key \"added\" twice"),
        "{}",
        common::stderr(&output)
    );

    assert_eq!(server.log_size(), before);
    assert_eq!(server.show(&carol, &case)["state"], "approved");
    // An object with each key once is accepted.
    let response = execute(
        &server,
        &carol,
        &case,
        json!({"added": ["role/admin"]}),
        "ok",
    );
    assert_eq!(response.status, 200, "{}", response.text);
    assert_verify_ok(&server.data);
}
