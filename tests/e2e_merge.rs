//! Duplicates across systems: `custody merge DUPLICATE --into CASE` links
//! two cases that describe one change; nothing is deleted, the duplicate is
//! closed into the survivor, and verify follows the link.

mod common;

use common::{assert_refused, assert_verify_ok, Server};

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

    let outcome = server.cli_json(
        &carol,
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
        &carol,
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
