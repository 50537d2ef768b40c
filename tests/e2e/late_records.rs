//! Late and out-of-order records: an execution observed before its approval
//! is recorded shows as `executed_pending_approval` and resolves when the
//! approval arrives, judged by when things occurred: a late record if the
//! approval was given before the execution, a violation if after.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{assert_refused, Server};

fn codes(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| finding["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_execution_observed_first_resolves_by_when_the_approval_occurred() {
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let dave = server.principal("dave");

    // In order: approval, then execution. The reference outcome.
    let in_order = server.cli_ok(
        &alice,
        &["request", "--subject", "user:alice", "--entitlement", "a"],
    );
    let in_order = in_order.trim();
    server.cli_ok(
        &bob,
        &["approve", in_order, "--occurred-at", "2026-11-28T09:00:00Z"],
    );
    server.cli_ok(
        &carol,
        &["execute", in_order, "--occurred-at", "2026-11-28T10:00:00Z"],
    );

    // Out of order: the execution is reported first, the approval arrives late.
    let late = server.cli_ok(
        &alice,
        &["request", "--subject", "user:alice", "--entitlement", "b"],
    );
    let late = late.trim();
    assert_refused(
        &server.cli(Some(&carol), &["execute", late]),
        "lifecycle.not-approved",
    );
    server.cli_ok(
        &carol,
        &[
            "execute",
            late,
            "--observed",
            "--occurred-at",
            "2026-11-28T10:00:00Z",
        ],
    );
    assert_eq!(
        server.show(&alice, late)["state"],
        "executed_pending_approval"
    );
    assert_refused(
        &server.cli(Some(&dave), &["review", late, "--outcome", "confirmed"]),
        "lifecycle.approval-not-recorded",
    );
    let (output, report) = common::verify_dir(&server.data);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        codes(&report).contains(&"lifecycle.execution-without-approval".to_string()),
        "{report}"
    );

    // The approval, given at 09:00 and recorded now: a late record, not a violation.
    server.cli_ok(
        &bob,
        &["approve", late, "--occurred-at", "2026-11-28T09:00:00Z"],
    );
    let resolved = server.show(&alice, late);
    assert_eq!(resolved["state"], "executed");
    assert_eq!(resolved["view"]["approved_after_execution"], false);
    // The same facts in either arrival order give the same state.
    assert_eq!(resolved["state"], server.show(&alice, in_order)["state"]);
    server.cli_ok(&dave, &["review", late, "--outcome", "confirmed"]);
    server.cli_ok(&dave, &["review", in_order, "--outcome", "confirmed"]);
    common::assert_verify_ok(&server.data);

    // An approval given after the execution: the case resolves, verify reports it.
    let after = server.cli_ok(
        &alice,
        &["request", "--subject", "user:alice", "--entitlement", "c"],
    );
    let after = after.trim();
    server.cli_ok(
        &carol,
        &[
            "execute",
            after,
            "--observed",
            "--occurred-at",
            "2026-11-28T10:00:00Z",
        ],
    );
    server.cli_ok(
        &bob,
        &["approve", after, "--occurred-at", "2026-11-28T11:00:00Z"],
    );
    let document = server.show(&alice, after);
    assert_eq!(document["state"], "executed");
    assert_eq!(document["view"]["approved_after_execution"], true);
    let (output, report) = common::verify_dir(&server.data);
    assert_eq!(output.status.code(), Some(1));
    let found = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == "lifecycle.approved-after-execution")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(found["case_id"], after);

    // An observed execution is only for a case whose approval is missing:
    // on an approved case, an ordinary execution is the way.
    let approved = server.cli_ok(
        &alice,
        &["request", "--subject", "user:alice", "--entitlement", "d"],
    );
    let approved = approved.trim();
    server.cli_ok(&bob, &["approve", approved]);
    assert_refused(
        &server.cli(Some(&carol), &["execute", approved, "--observed"]),
        "lifecycle.not-open",
    );
    // On an executed case it is refused by the rule the audit would report
    // for that event (one rule table for both).
    assert_refused(
        &server.cli(Some(&carol), &["execute", in_order, "--observed"]),
        "lifecycle.already-executed",
    );
}

#[test]
fn the_executor_of_an_observed_execution_cannot_become_its_only_approver() {
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let dave = server.principal("dave");

    let case = server.cli_ok(
        &alice,
        &["request", "--subject", "user:alice", "--entitlement", "a"],
    );
    let case = case.trim();
    server.cli_ok(&carol, &["execute", case, "--observed"]);
    assert_eq!(
        server.show(&alice, case)["state"],
        "executed_pending_approval"
    );

    // Carol executed it: her approval would make the executor the only
    // approver, the rule an execution after the approval breaks.
    let before = server.log_size();
    assert_refused(
        &server.cli(Some(&carol), &["approve", case]),
        "sod.executor-sole-approver",
    );
    assert_eq!(
        server.log_size(),
        before,
        "a refused approval writes nothing"
    );
    let document = server.show(&alice, case);
    assert_eq!(document["state"], "executed_pending_approval");
    assert_eq!(document["events"].as_array().unwrap().len(), 2);
    // Nor can the review slip in before an independent approval.
    assert_refused(
        &server.cli(Some(&dave), &["review", case, "--outcome", "confirmed"]),
        "lifecycle.approval-not-recorded",
    );

    // Another principal's approval resolves the case.
    server.cli_ok(&bob, &["approve", case]);
    assert_eq!(server.show(&alice, case)["state"], "executed");
    server.cli_ok(&dave, &["review", case, "--outcome", "confirmed"]);
    let (_, report) = common::verify_dir(&server.data);
    assert!(
        !codes(&report).contains(&"sod.executor-sole-approver".to_string()),
        "{report}"
    );
}
