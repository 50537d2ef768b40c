//! Approval binds to what was asked: the execution records what was
//! actually applied, the case shows both, a difference is a finding whatever
//! the reviewer says, and a review with outcome `revoke` opens a linked
//! revocation case.

use crate::common;

use common::{assert_verify_ok, Server};

#[test]
fn a_different_applied_change_is_a_finding_whatever_the_review_says() {
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let dave = server.principal("dave");

    // As approved: the execution records the approved change as applied.
    let exact = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            "reader",
            "--resource",
            "wiki",
        ],
    );
    let exact = exact.trim();
    server.cli_ok(&bob, &["approve", exact]);
    server.cli_ok(&carol, &["execute", exact]);
    let view = server.show(&alice, exact)["view"].clone();
    assert_eq!(view["applied"], view["change"]);
    assert_verify_ok(&server.data);

    // Something else was applied: recorded, never refused.
    let case = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            "reader",
            "--resource",
            "prod-db",
        ],
    );
    let case = case.trim();
    server.cli_ok(&bob, &["approve", case]);
    server.cli_ok(&carol, &["execute", case, "--applied-entitlement", "admin"]);
    let document = server.show(&alice, case);
    assert_eq!(document["view"]["change"]["entitlement"], "reader");
    assert_eq!(document["view"]["applied"]["entitlement"], "admin");
    assert_eq!(
        document["events"][2]["payload"]["applied"]["entitlement"],
        "admin"
    );
    let timeline = server.cli_ok(&alice, &["show", case]);
    assert!(
        timeline.contains("DIFFERS FROM THE APPROVED CHANGE"),
        "{timeline}"
    );

    // The reviewer confirms anyway: verify still reports the difference.
    server.cli_ok(&dave, &["review", case, "--outcome", "confirmed"]);
    let (output, report) = common::verify_dir(&server.data);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == "review.change-mismatch")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(finding["case_id"], case);
    assert_eq!(finding["seq"], 3);
}

#[test]
fn a_review_with_outcome_revoke_opens_a_linked_revocation_case() {
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let dave = server.principal("dave");

    let case = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            "admin",
            "--resource",
            "prod-db",
        ],
    );
    let case = case.trim();
    server.cli_ok(&bob, &["approve", case]);
    server.cli_ok(&carol, &["execute", case]);
    let outcome = server.cli_json(
        &dave,
        &[
            "review",
            case,
            "--outcome",
            "revoke",
            "--comment",
            "not needed any more",
        ],
    );
    let appended = outcome["appended"].as_array().unwrap();
    let kinds: Vec<&str> = appended
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "review_completed",
            "request_created",
            "opened_by_review",
            "revocation_opened"
        ]
    );
    let revocation = appended[1]["case_id"].as_str().unwrap().to_string();
    assert_ne!(revocation, case);

    let reviewed = server.show(&dave, case);
    assert_eq!(reviewed["state"], "reviewed");
    assert_eq!(reviewed["view"]["revocation_case"], revocation.as_str());
    let opened = server.show(&dave, &revocation);
    assert_eq!(opened["state"], "open");
    assert_eq!(opened["view"]["opened_by_review_of"], case);
    assert_eq!(opened["view"]["change"]["kind"], "revoke");
    assert_eq!(opened["view"]["change"]["entitlement"], "admin");
    assert_eq!(opened["view"]["change"]["resource"], "prod-db");
    assert_eq!(opened["events"][0]["actor"]["principal"], "dave");

    // The revocation case follows the ordinary lifecycle.
    server.cli_ok(&bob, &["approve", &revocation]);
    server.cli_ok(&carol, &["execute", &revocation]);
    server.cli_ok(&alice, &["review", &revocation, "--outcome", "confirmed"]);
    let report = assert_verify_ok(&server.data);
    assert_eq!(
        report["checked"]["case_links"], 2,
        "both halves of the link were followed"
    );
}
