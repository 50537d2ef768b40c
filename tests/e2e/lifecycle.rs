//! End to end through the real binary: a case from request to review driven by
//! four principals over the CLI, with every separation-of-duties and lifecycle
//! refusal, idempotency, ticket deduplication and the public JSON shapes.

use crate::common;

use common::{
    assert_refused, assert_success, assert_verify_ok, is_case_id, stderr, stdout, Body, Server,
};
use serde_json::{json, Value};

/// Runs `request` and checks that stdout is exactly one case ID and a newline.
#[track_caller]
fn request(server: &Server, token: &str, args: &[&str]) -> String {
    let mut all = vec!["request"];
    all.extend_from_slice(args);
    let output = server.cli(Some(token), &all);
    assert_success(&output, &format!("custody {}", all.join(" ")));
    let out = stdout(&output);
    let case = out
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("request stdout must end with a newline: {out:?}"));
    assert!(
        is_case_id(case),
        "request must print only the case ID (^AC-[0-9a-f]{{32}}$), got {out:?}"
    );
    case.to_string()
}

#[track_caller]
fn event_count(server: &Server, case: &str) -> usize {
    server.events(&server.admin_token, case).len()
}

/// Runs a refused command and checks the refusal, that the case gained no
/// event and that the log did not grow.
#[track_caller]
fn assert_refused_unchanged(server: &Server, token: &str, args: &[&str], rule: &str, case: &str) {
    let events_before = event_count(server, case);
    let log_before = server.log_size();
    let output = server.cli(Some(token), args);
    assert_refused(&output, rule);
    assert!(
        stdout(&output).trim().is_empty(),
        "a refused command prints nothing on stdout: {}",
        stdout(&output)
    );
    assert_eq!(
        event_count(server, case),
        events_before,
        "`custody {}` was refused but the case gained an event",
        args.join(" ")
    );
    assert_eq!(
        server.log_size(),
        log_before,
        "`custody {}` was refused but the log grew",
        args.join(" ")
    );
}

#[test]
fn four_principals_drive_a_case_from_request_to_review() {
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let dave = server.principal("dave");

    let case = request(
        &server,
        &alice,
        &[
            "--subject",
            "user:erin",
            "--entitlement",
            "db-admin",
            "--resource",
            "prod-db",
            "--justification",
            "on-call rotation needs write access",
        ],
    );

    // Execution before approval, review before execution.
    assert_refused_unchanged(
        &server,
        &carol,
        &["execute", &case],
        "lifecycle.not-approved",
        &case,
    );
    assert_refused_unchanged(
        &server,
        &dave,
        &["review", &case, "--outcome", "confirmed"],
        "lifecycle.not-executed",
        &case,
    );
    // The requester cannot approve its own case.
    assert_refused_unchanged(
        &server,
        &alice,
        &["approve", &case],
        "sod.requester-cannot-approve",
        &case,
    );

    let approved = server.cli_json(&bob, &["approve", &case, "--comment", "ok for one week"]);
    assert_eq!(approved["case_id"], case.as_str());
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["replayed"], false);
    assert_eq!(
        approved["appended"].as_array().map(Vec::len),
        Some(1),
        "{approved}"
    );

    // The only approver cannot execute; nobody can review before execution.
    assert_refused_unchanged(
        &server,
        &bob,
        &["execute", &case],
        "sod.executor-sole-approver",
        &case,
    );
    assert_refused_unchanged(
        &server,
        &dave,
        &["review", &case, "--outcome", "confirmed"],
        "lifecycle.not-executed",
        &case,
    );

    let change_set = json!({"added": ["role/db-admin"], "resource": "prod-db", "members": 1});
    let change_set_file = server.root.path().join("change-set.json");
    std::fs::write(&change_set_file, change_set.to_string()).unwrap();
    let executed = server.cli_ok(
        &carol,
        &[
            "execute",
            &case,
            "--change-set",
            change_set_file.to_str().unwrap(),
        ],
    );
    assert!(
        executed.contains(&case),
        "execute output names the case: {executed}"
    );

    // The executor and the requester cannot review.
    assert_refused_unchanged(
        &server,
        &carol,
        &["review", &case, "--outcome", "confirmed"],
        "sod.reviewer-is-executor",
        &case,
    );
    assert_refused_unchanged(
        &server,
        &alice,
        &["review", &case, "--outcome", "confirmed"],
        "sod.reviewer-is-requester",
        &case,
    );

    server.cli_ok(
        &dave,
        &[
            "review",
            &case,
            "--outcome",
            "confirmed",
            "--comment",
            "matches",
        ],
    );

    // The whole timeline: one case ID, seq 1..=4, roles and actors from the tokens.
    let document = server.show(&bob, &case);
    assert_eq!(document["case_id"], case.as_str());
    assert_eq!(document["state"], "reviewed");
    let events = document["events"].as_array().expect("events array");
    let expected = [
        ("request_created", "requester", "alice"),
        ("approval_granted", "approver", "bob"),
        ("execution_completed", "executor", "carol"),
        ("review_completed", "reviewer", "dave"),
    ];
    assert_eq!(events.len(), expected.len(), "events: {document:#}");
    for (index, (event, (kind, role, principal))) in events.iter().zip(expected).enumerate() {
        assert_eq!(
            event["case_id"],
            case.as_str(),
            "invariant 1: event {index} carries another case ID"
        );
        assert_eq!(
            event["seq"],
            json!(index + 1),
            "events must be in sequence order"
        );
        assert_eq!(event["kind"], kind);
        assert_eq!(event["role"], role);
        assert_eq!(
            event["actor"]["principal"], principal,
            "actor comes from the token"
        );
        assert_eq!(event["actor"]["kind"], "human");
        assert_eq!(event["actor"]["via"], "cli");
        assert!(
            event["actor"].get("on_behalf_of").is_some(),
            "actor.on_behalf_of is present"
        );
        assert!(event["event_id"].as_str().is_some_and(|id| !id.is_empty()));
        assert!(event["occurred_at"]
            .as_str()
            .is_some_and(|at| !at.is_empty()));
        assert!(event["recorded_at"]
            .as_str()
            .is_some_and(|at| !at.is_empty()));
    }
    let ids: std::collections::HashSet<&str> = events
        .iter()
        .filter_map(|event| event["event_id"].as_str())
        .collect();
    assert_eq!(ids.len(), events.len(), "event IDs are unique");
    assert_eq!(
        events[2]["payload"]["change_set"], change_set,
        "the applied change set is recorded"
    );
    assert_eq!(events[3]["payload"]["outcome"], "confirmed");
    let shown = document.to_string();
    for secret in [&alice, &bob, &carol, &dave] {
        assert!(
            !shown.contains(secret.as_str()),
            "a bearer secret leaked into the timeline"
        );
    }

    // Listing by state.
    let reviewed = server.cli_json(&alice, &["cases", "--state", "reviewed"]);
    let listed: Vec<&str> = reviewed["cases"]
        .as_array()
        .expect("cases array")
        .iter()
        .filter_map(|row| row["case_id"].as_str())
        .collect();
    assert_eq!(
        listed,
        vec![case.as_str()],
        "cases --state reviewed: {reviewed:#}"
    );
    let open = server.cli_json(&alice, &["cases", "--state", "open"]);
    assert_eq!(open["cases"].as_array().map(Vec::len), Some(0), "{open:#}");

    // The auditor's verdict while the server is still running.
    // The case's four events, the policy record's one adoption and the
    // administration record's ten (init's admin and four principals, each
    // with a token): three trails.
    let report = assert_verify_ok(&server.data);
    assert_eq!(report["checked"]["events"], 15, "{report:#}");
    assert_eq!(report["checked"]["cases"], 3, "{report:#}");
    assert!(
        report["checked"]["rules"]
            .as_u64()
            .is_some_and(|rules| rules > 0),
        "{report:#}"
    );
}

#[test]
fn idempotency_ticket_dedupe_and_duplicate_open() {
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");

    // Same key, same arguments: the same case, nothing appended.
    let args = [
        "--subject",
        "user:frank",
        "--entitlement",
        "reader",
        "--idempotency-key",
        "retry-me-1",
    ];
    let first = request(&server, &alice, &args);
    let log_size = server.log_size();
    let cases = server.case_count();
    let again = request(&server, &alice, &args);
    assert_eq!(again, first, "a retried request returns the first case ID");
    assert_eq!(
        server.log_size(),
        log_size,
        "a retried request appends nothing"
    );
    assert_eq!(server.case_count(), cases);

    // The JSON of a replay says so.
    let mut json_args = vec!["request"];
    json_args.extend_from_slice(&args);
    let replay = server.cli_json(&alice, &json_args);
    assert_eq!(replay["case_id"], first.as_str());
    assert_eq!(replay["replayed"], true, "{replay}");

    // Same key for a different write: refused, nothing appended.
    let output = server.cli(
        Some(&alice),
        &[
            "request",
            "--subject",
            "user:frank",
            "--entitlement",
            "writer",
            "--idempotency-key",
            "retry-me-1",
        ],
    );
    assert_refused(&output, "idempotency.key-reused");
    assert_eq!(server.log_size(), log_size);

    // Same key on an approval: one approval event.
    let events = server.events(&bob, &first).len();
    server.cli_ok(&bob, &["approve", &first, "--idempotency-key", "approve-1"]);
    let replayed = server.cli_ok(&bob, &["approve", &first, "--idempotency-key", "approve-1"]);
    assert!(
        replayed.contains("already recorded"),
        "replayed approval says so: {replayed}"
    );
    assert_eq!(server.events(&bob, &first).len(), events + 1);

    // A second request for the same ticket returns the open case.
    let ticket_args = [
        "--subject",
        "user:gina",
        "--entitlement",
        "ops",
        "--ticket",
        "JIRA:SEC-42",
    ];
    let ticketed = request(&server, &alice, &ticket_args);
    assert_ne!(ticketed, first);
    let log_size = server.log_size();
    let cases = server.case_count();
    let output = server.cli(Some(&alice), &[&["request"][..], &ticket_args[..]].concat());
    assert_success(&output, "second request with the same ticket");
    assert_eq!(
        stdout(&output),
        format!("{ticketed}\n"),
        "the ticket's case is returned"
    );
    assert_eq!(server.log_size(), log_size, "ticket dedupe appends nothing");
    assert_eq!(server.case_count(), cases, "ticket dedupe opens no case");
    let dedupe = server.cli_json(&alice, &[&["request"][..], &ticket_args[..]].concat());
    assert_eq!(dedupe["case_id"], ticketed.as_str());
    assert_eq!(dedupe["existing"], true, "{dedupe}");
    // The ticket system is case-insensitive.
    let lower = server.cli_json(
        &bob,
        &[
            "request",
            "--subject",
            "user:gina",
            "--entitlement",
            "ops",
            "--ticket",
            "jira:SEC-42",
        ],
    );
    assert_eq!(lower["case_id"], ticketed.as_str(), "{lower}");
    assert_eq!(server.log_size(), log_size);

    // A second open case for the same change is refused, naming the open case.
    let output = server.cli(
        Some(&bob),
        &[
            "request",
            "--subject",
            "user:frank",
            "--entitlement",
            "reader",
        ],
    );
    assert_refused(&output, "case.duplicate-open");
    assert!(
        stderr(&output).contains(&first),
        "the refusal names the open case {first}: {}",
        stderr(&output)
    );
    assert_eq!(server.log_size(), log_size);
    assert_eq!(server.case_count(), cases);

    // Same subject and entitlement on another resource is another change.
    let other = request(
        &server,
        &bob,
        &[
            "--subject",
            "user:frank",
            "--entitlement",
            "reader",
            "--resource",
            "staging",
        ],
    );
    assert_ne!(other, first);

    assert_verify_ok(&server.data);
}

#[test]
fn only_admins_manage_principals() {
    let server = Server::start();
    let alice = server.principal("alice");
    let log_size = server.log_size();

    let output = server.cli(Some(&alice), &["principal", "add", "mallory"]);
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    assert!(
        stderr(&output).contains("admins"),
        "stderr: {}",
        stderr(&output)
    );
    let output = server.cli(Some(&alice), &["token", "create", "alice"]);
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    assert!(
        stdout(&output).is_empty(),
        "no token printed: {}",
        stdout(&output)
    );

    let response = server.http(
        "POST",
        "/v1/principals",
        Some(&alice),
        &[],
        Body::Json(json!({"name": "mallory"})),
    );
    assert_eq!(response.status, 403, "{}", response.text);
    assert_eq!(response.json["type"], "urn:custody:problem:forbidden");
    let principals = server.cli_json(&server.admin_token, &["principal", "list"]);
    let names: Vec<&str> = principals["principals"]
        .as_array()
        .expect("principals")
        .iter()
        .filter_map(|principal| principal["id"].as_str())
        .collect();
    assert!(
        !names.contains(&"mallory"),
        "mallory was added: {principals}"
    );
    assert_eq!(server.log_size(), log_size);

    // A usage error is exit 2; no token at all is exit 2.
    let output = server.cli(None, &["cases"]);
    assert_eq!(output.status.code(), Some(2), "stderr: {}", stderr(&output));
    let output = server.cli(Some("cust_not-a-real-token"), &["cases"]);
    assert_eq!(output.status.code(), Some(2), "stderr: {}", stderr(&output));
}

#[test]
fn a_non_human_subject_runs_the_whole_lifecycle() {
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let robot = server.principal_with("deploy-bot", &["--kind", "automation"]);
    let dave = server.principal("dave");

    let created = server.cli_json(
        &alice,
        &[
            "request",
            "--subject",
            "api_key:ci-deploy",
            "--entitlement",
            "deploy:write",
            "--change",
            "create",
            "--ticket",
            "JIRA:OPS-7",
        ],
    );
    let case = created["case_id"].as_str().expect("case_id").to_string();
    assert!(is_case_id(&case), "{created}");
    assert_eq!(created["state"], "open");
    assert_eq!(created["appended"][0]["kind"], "request_created");

    let approved = server.cli_json(&bob, &["approve", &case]);
    assert_eq!(approved["state"], "approved");
    let executed = server.cli_json(&robot, &["execute", &case, "--comment", "key created"]);
    assert_eq!(executed["state"], "executed");
    let reviewed = server.cli_json(&dave, &["review", &case, "--outcome", "confirmed"]);
    assert_eq!(reviewed["state"], "reviewed");
    let commented = server.cli_json(&dave, &["comment", &case, "rotation due in 90 days"]);
    assert_eq!(commented["appended"][0]["kind"], "comment_added");

    let document = server.show(&alice, &case);
    assert_eq!(document["state"], "reviewed");
    let events = document["events"].as_array().expect("events");
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|event| event["case_id"] == case.as_str()));
    let seqs: Vec<u64> = events
        .iter()
        .filter_map(|event| event["seq"].as_u64())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    let change = &events[0]["payload"]["change"];
    assert_eq!(change["subject"]["kind"], "api_key");
    assert_eq!(change["subject"]["id"], "ci-deploy");
    assert_eq!(change["kind"], "create");
    assert_eq!(events[2]["actor"]["principal"], "deploy-bot");
    assert_eq!(events[2]["actor"]["kind"], "automation");
    assert_eq!(events[2]["role"], "executor");

    let listed = server.cli_json(&alice, &["cases"]);
    let row = listed["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|row| row["case_id"] == case.as_str())
        .cloned()
        .expect("the case is listed");
    assert_eq!(row["state"], "reviewed");
    // The ticket system is case-insensitive and stored lowercase; the key is kept as given.
    assert_eq!(row["ticket"], "jira:OPS-7");

    assert_verify_ok(&server.data);
}

#[test]
fn openapi_metrics_and_health_are_published() {
    let server = Server::start();
    let openapi = server.http("GET", "/v1/openapi.json", None, &[], Body::None);
    assert_eq!(openapi.status, 200, "{}", openapi.text);
    let document: Value = serde_json::from_str(&openapi.text).expect("openapi.json is JSON");
    let paths = document["paths"].as_object().expect("paths object");
    for path in [
        "/v1/cases",
        "/v1/cases/{case_id}",
        "/v1/cases/{case_id}/approvals",
        "/v1/cases/{case_id}/executions",
        "/v1/cases/{case_id}/reviews",
        "/v1/policy",
    ] {
        assert!(paths.contains_key(path), "openapi lacks {path}");
    }

    // One request so the counter exists, then the exposition. A fresh
    // server's log holds three entries: init's first admin and its token
    // (the administration record), and the adoption of its policy.
    assert_eq!(server.log_size(), 3);
    let metrics = server.http("GET", "/metrics", None, &[], Body::None);
    assert_eq!(metrics.status, 200, "{}", metrics.text);
    assert!(
        metrics.text.contains("custody_http_requests_total"),
        "/metrics: {}",
        metrics.text
    );
}
