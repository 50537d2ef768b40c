//! Duplicates across systems: `custody merge DUPLICATE --into CASE` links
//! two cases that describe one change; nothing is deleted, the duplicate is
//! closed into the survivor, and verify follows the link.

use crate::common;

use common::{assert_refused, assert_verify_ok, Body, Server};

#[test]
fn a_duplicate_merges_into_its_survivor_and_the_trail_reads_as_one() {
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");

    // The same need, filed through two systems in different words.
    let survivor = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            "db-admin",
            "--ticket",
            "jira:SEC-9",
        ],
    );
    let survivor = survivor.trim();
    let duplicate = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            "prod-db-admin",
            "--ticket",
            "snow:INC-77",
        ],
    );
    let duplicate = duplicate.trim();

    // Refusals first: nothing is appended by any of them.
    let before = server.log_size();
    assert_refused(
        &server.cli(
            Some(&carol),
            &["merge", duplicate, "--into", duplicate, "--comment", "x"],
        ),
        "merge.same-case",
    );
    let missing = "AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b71";
    let output = server.cli(
        Some(&carol),
        &["merge", duplicate, "--into", missing, "--comment", "x"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    assert!(common::stderr(&output).contains("does not exist"));
    let output = server.cli(Some(&carol), &["merge", duplicate, "--into", survivor]);
    assert_eq!(output.status.code(), Some(2), "a merge needs a reason");
    assert_eq!(server.log_size(), before);

    // Alice requested both: she may merge them.
    let outcome = server.cli_json(
        &alice,
        &[
            "merge",
            duplicate,
            "--into",
            survivor,
            "--comment",
            "SEC-9 and INC-77 are one request",
            "--idempotency-key",
            "merge-1",
        ],
    );
    assert_eq!(outcome["state"], "merged");
    let appended = outcome["appended"].as_array().unwrap();
    assert_eq!(appended.len(), 2);
    assert_eq!(appended[0]["case_id"], duplicate);
    assert_eq!(appended[0]["kind"], "duplicate_merged");
    assert_eq!(appended[1]["case_id"], survivor);
    assert_eq!(appended[1]["kind"], "duplicate_linked");
    // A retried merge appends nothing.
    let size = server.log_size();
    let again = server.cli_json(
        &alice,
        &[
            "merge",
            duplicate,
            "--into",
            survivor,
            "--comment",
            "SEC-9 and INC-77 are one request",
            "--idempotency-key",
            "merge-1",
        ],
    );
    assert_eq!(again["replayed"], true);
    assert_eq!(server.log_size(), size);

    // Both cases keep their whole trail and point at each other.
    let duplicate_doc = server.show(&carol, duplicate);
    assert_eq!(duplicate_doc["state"], "merged");
    assert_eq!(duplicate_doc["view"]["merged_into"], survivor);
    assert_eq!(duplicate_doc["events"].as_array().unwrap().len(), 2);
    let survivor_doc = server.show(&carol, survivor);
    assert_eq!(survivor_doc["state"], "open");
    assert_eq!(survivor_doc["view"]["duplicates"][0], duplicate);
    let timeline = server.cli_ok(&carol, &["show", duplicate]);
    assert!(
        timeline.contains(&format!("duplicate of {survivor}")),
        "{timeline}"
    );

    // The duplicate is closed; the survivor carries the change.
    assert_refused(
        &server.cli(Some(&bob), &["approve", duplicate]),
        "lifecycle.case-merged",
    );
    assert_refused(
        &server.cli(
            Some(&carol),
            &["merge", survivor, "--into", duplicate, "--comment", "x"],
        ),
        "lifecycle.case-merged",
    );
    server.cli_ok(&bob, &["approve", survivor]);
    server.cli_ok(&carol, &["execute", survivor]);
    // An executed case cannot be merged away into another.
    let third = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            "other",
        ],
    );
    assert_refused(
        &server.cli(
            Some(&carol),
            &["merge", survivor, "--into", third.trim(), "--comment", "x"],
        ),
        "merge.duplicate-executed",
    );
    // A new request for the duplicate's wording is not blocked by the merged case.
    server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            "prod-db-admin",
        ],
    );

    let merged = server.cli_json(&carol, &["cases", "--state", "merged"]);
    assert_eq!(merged["cases"].as_array().unwrap().len(), 1);

    let report = assert_verify_ok(&server.data);
    assert_eq!(report["checked"]["case_links"], 2, "{report}");
}

#[test]
fn only_the_duplicates_requester_an_approver_of_the_survivor_or_an_admin_may_merge() {
    // Issue 10, item 6: a merge closes a request, so a principal unrelated to
    // both cases may not close someone else's request by merging it away;
    // nor may the requester of the surviving case alone, or anyone could
    // open a case of their own and merge someone else's request into it.
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let mallory = server.principal("mallory");
    let erin = server.principal_with("erin", &["--group", "admins"]);
    let request = |token: &str, entitlement: &str| {
        server
            .cli_ok(
                token,
                &[
                    "request",
                    "--subject",
                    "user:alice",
                    "--entitlement",
                    entitlement,
                ],
            )
            .trim()
            .to_string()
    };
    let alices = request(&alice, "db-admin");
    let bobs = request(&bob, "db-reader");

    // Mallory requested neither, and the default rule names no approver
    // groups: refused at write time through the CLI, and nothing is written.
    let before = server.log_size();
    assert_refused(
        &server.cli(
            Some(&mallory),
            &["merge", &bobs, "--into", &alices, "--comment", "same thing"],
        ),
        "merge.not-allowed",
    );
    // Through the API: a problem+json naming the rule.
    let response = server.http(
        "POST",
        &format!("/v1/cases/{bobs}/merge"),
        Some(&mallory),
        &[("idempotency-key", "mallory-merge")],
        Body::Json(serde_json::json!({"into": alices, "comment": "same thing"})),
    );
    assert_eq!(response.status, 409, "{}", response.text);
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json"),
        "{}",
        response.text
    );
    assert_eq!(
        response.json["rule"], "merge.not-allowed",
        "{}",
        response.text
    );
    assert_eq!(server.log_size(), before, "a refused merge wrote something");
    for case in [&alices, &bobs] {
        let document = server.show(&alice, case);
        assert_eq!(document["state"], "open", "{document}");
        assert_eq!(document["events"].as_array().unwrap().len(), 1);
    }

    // The attack: mallory opens a case of her own and merges alice's open
    // request into it, which would close alice's request. Refused, through
    // the CLI and the API, and nothing is written.
    let malloris = request(&mallory, "db-owner");
    let before = server.log_size();
    assert_refused(
        &server.cli(
            Some(&mallory),
            &[
                "merge",
                &alices,
                "--into",
                &malloris,
                "--comment",
                "same thing",
            ],
        ),
        "merge.not-allowed",
    );
    let response = server.http(
        "POST",
        &format!("/v1/cases/{alices}/merge"),
        Some(&mallory),
        &[("idempotency-key", "mallory-merge-into-her-own")],
        Body::Json(serde_json::json!({"into": malloris, "comment": "same thing"})),
    );
    assert_eq!(response.status, 409, "{}", response.text);
    assert_eq!(
        response.json["rule"], "merge.not-allowed",
        "{}",
        response.text
    );
    assert_eq!(server.log_size(), before, "a refused merge wrote something");
    for case in [&alices, &malloris] {
        let document = server.show(&alice, case);
        assert_eq!(document["state"], "open", "{document}");
        assert_eq!(document["events"].as_array().unwrap().len(), 1);
    }
    // The same holds for alice: requesting the survivor does not let her
    // close bob's request.
    assert_refused(
        &server.cli(
            Some(&alice),
            &["merge", &bobs, "--into", &alices, "--comment", "one change"],
        ),
        "merge.not-allowed",
    );
    assert_eq!(server.log_size(), before, "a refused merge wrote something");

    // The requester of the duplicate may merge it away (bob closes his own
    // request into alice's).
    let merged = server.cli_json(
        &bob,
        &["merge", &bobs, "--into", &alices, "--comment", "one change"],
    );
    assert_eq!(merged["state"], "merged");

    // An admin (a member of `admins`, as recorded in the actor) may merge
    // cases it did not request.
    let first = request(&alice, "ops-admin");
    let second = request(&bob, "ops-reader");
    let merged = server.cli_json(
        &erin,
        &[
            "merge",
            &second,
            "--into",
            &first,
            "--comment",
            "one change",
        ],
    );
    assert_eq!(merged["state"], "merged");
    let events = server.events(&erin, &second);
    let merge_event = events.last().unwrap();
    assert_eq!(merge_event["kind"], "duplicate_merged");
    assert!(
        merge_event["actor"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|group| group == "admins"),
        "{merge_event}"
    );

    // verify re-checks every merge from the recorded actor: all allowed.
    assert_verify_ok(&server.data);
}

#[test]
fn an_approver_of_the_surviving_cases_rule_may_merge_into_it() {
    let policy = r#"
[[policy.rules]]
name = "db"
entitlements = ["db-*"]
approver_groups = ["dba"]
"#;
    let (server, _) = Server::start_configured(None, Some(policy));
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let dana = server.principal_with("dana", &["--group", "dba"]);
    let mallory = server.principal_with("mallory", &["--group", "sre"]);
    let request = |token: &str, entitlement: &str| {
        server
            .cli_ok(
                token,
                &[
                    "request",
                    "--subject",
                    "user:alice",
                    "--entitlement",
                    entitlement,
                ],
            )
            .trim()
            .to_string()
    };
    let survivor = request(&alice, "db-admin");
    let duplicate = request(&bob, "db-owner");
    assert_refused(
        &server.cli(
            Some(&mallory),
            &["merge", &duplicate, "--into", &survivor, "--comment", "x"],
        ),
        "merge.not-allowed",
    );
    let merged = server.cli_json(
        &dana,
        &[
            "merge",
            &duplicate,
            "--into",
            &survivor,
            "--comment",
            "one change",
        ],
    );
    assert_eq!(merged["state"], "merged");
    assert_verify_ok(&server.data);
}
