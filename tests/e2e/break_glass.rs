//! Break-glass: access granted in an emergency before approval leaves a
//! complete trace, a mandatory post-hoc review by someone else, and an
//! escalation by the ledger itself when nobody reviews in time.
//!
//! The server runs in the test's process on a test clock
//! (`common::in_process`): the deadline passes when the test moves the
//! clock, and hours of the timer's scans take no waiting.

use crate::common;

use std::time::{Duration, Instant};

use common::{assert_refused, Server, TestStore};
use custody_core::Timestamp;

const CONFIG: &str = r#"
[workflow]
scan_interval_seconds = 1

[[policy.rules]]
name = "no-emergency-on-keys"
subject_kinds = ["api_key"]
break_glass = false

[[policy.rules]]
name = "prod"
resources = ["prod-*"]
post_hoc_review_deadline = "2s"
"#;

#[test]
fn break_glass_is_executed_at_once_reviewed_after_and_escalated_when_late() {
    let (server, _) = Server::start_in_process(TestStore::Embedded, Some(CONFIG));
    let oncall = server.principal("oncall");
    let reviewer = server.principal("reviewer");
    // The policy's adoption is the only entry so far besides the
    // administration record (init's admin and token, two principals and
    // their tokens).
    let log_size = server.log_size();
    assert_eq!(
        log_size, 7,
        "a fresh server's log holds the policy and administration records"
    );

    // Not allowed by its rule: refused, nothing appended.
    assert_refused(
        &server.cli(
            Some(&oncall),
            &[
                "break-glass",
                "--subject",
                "api_key:ci",
                "--entitlement",
                "deploy",
                "--justification",
                "outage",
            ],
        ),
        "policy.break-glass-not-allowed",
    );
    assert_eq!(
        server.log_size(),
        log_size,
        "a refused break-glass appends nothing"
    );

    let case = break_glass_on_prod_db(&server, &oncall, "INC-4711: database down");
    let document = server.show(&oncall, &case);
    assert_eq!(document["state"], "pending_review");
    let kinds: Vec<&str> = document["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "request_created",
            "break_glass_invoked",
            "execution_completed"
        ]
    );
    assert_eq!(document["view"]["rule"]["name"], "prod");
    assert!(document["view"]["break_glass_deadline"].is_string());
    // The emergency change is in flight: an ordinary request for it is a duplicate.
    assert_refused(
        &server.cli(
            Some(&reviewer),
            &[
                "request",
                "--subject",
                "user:oncall",
                "--entitlement",
                "db-admin",
                "--resource",
                "prod-db",
            ],
        ),
        "case.duplicate-open",
    );

    // The actor cannot review their own emergency; approving after the fact is refused.
    assert_refused(
        &server.cli(Some(&oncall), &["review", &case, "--outcome", "confirmed"]),
        "sod.reviewer-is-requester",
    );
    assert_refused(
        &server.cli(Some(&reviewer), &["approve", &case]),
        "lifecycle.already-executed",
    );

    // Nobody reviews in time: the test clock passes the deadline, and the
    // server's timer, which reads it, escalates, once, as the system actor.
    let review_deadline =
        Timestamp::parse(document["view"]["break_glass_deadline"].as_str().unwrap()).unwrap();
    server.clock().set(review_deadline.plus_seconds(1));
    let escalation = escalation(&server, &oncall, &case);
    assert_eq!(escalation["actor"]["principal"], "system");
    assert_eq!(escalation["actor"]["via"], "system");
    assert_eq!(escalation["role"], "system");
    assert_eq!(
        escalation["payload"]["reason"],
        "break-glass.review-overdue"
    );
    // Five more hours of scans a minute apart on the test clock (a second
    // node's, and the server's own timer meanwhile) add nothing. (Every
    // kind of obligation on both stores: tests/e2e/ledger_timer.rs.)
    let acted = server.advance(5 * 3600);
    assert!(acted.is_empty(), "acted again: {acted:?}");
    let escalations = server
        .events(&oncall, &case)
        .iter()
        .filter(|event| event["kind"] == "escalation_raised")
        .count();
    assert_eq!(escalations, 1, "escalated more than once");

    // verify reports the overdue review while it is missing (at the test
    // clock, past the deadline).
    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == "break-glass.review-overdue")
        .unwrap_or_else(|| panic!("no overdue finding: {report}"));
    assert_eq!(finding["case_id"], case.as_str());
    assert!(finding["message"].as_str().unwrap().contains("escalated"));
    // No execution-without-approval finding: break-glass is not silent.
    assert!(!report
        .to_string()
        .contains("lifecycle.execution-without-approval"));

    // The late review closes the case and the trail is whole.
    server.cli_ok(
        &reviewer,
        &[
            "review",
            &case,
            "--outcome",
            "confirmed",
            "--comment",
            "justified",
        ],
    );
    assert_eq!(server.show(&reviewer, &case)["state"], "reviewed");
    server.assert_verify_ok();
}

/// The server's timer judges deadlines by the server's clock
/// (`ServeOptions::clock`), not the wall clock: a review due in an hour is
/// escalated as soon as the test clock passes it, long before the wall
/// clock does.
#[test]
fn the_timer_escalates_by_the_servers_clock() {
    let config = "[[policy.rules]]\nname = \"prod\"\nresources = [\"prod-*\"]\npost_hoc_review_deadline = \"1h\"\n";
    let (server, _) = Server::start_in_process(TestStore::Embedded, Some(config));
    let oncall = server.principal("oncall");
    let case = break_glass_on_prod_db(&server, &oncall, "INC-4713");
    let case = case.as_str();
    let review_deadline = Timestamp::parse(
        server.show(&oncall, case)["view"]["break_glass_deadline"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    server.clock().set(review_deadline.plus_seconds(1));
    let escalation = escalation(&server, &oncall, case);
    // Escalated while the wall clock is still short of the deadline, and
    // recorded at the test clock's time, which the store reads too.
    let wall_clock = Timestamp::now();
    assert!(
        wall_clock < review_deadline,
        "escalated at {wall_clock} by the wall clock, not before it reached {review_deadline}"
    );
    let recorded_at = Timestamp::parse(escalation["recorded_at"].as_str().unwrap()).unwrap();
    assert_eq!(recorded_at, review_deadline.plus_seconds(1), "{escalation}");
    assert_eq!(
        escalation["payload"]["reason"],
        "break-glass.review-overdue"
    );
}

/// `custody break-glass` for `user:oncall` on `db-admin` of `prod-db`, as
/// `token`; returns the case.
fn break_glass_on_prod_db(server: &Server, token: &str, justification: &str) -> String {
    let case = server.cli_ok(
        token,
        &[
            "break-glass",
            "--subject",
            "user:oncall",
            "--entitlement",
            "db-admin",
            "--resource",
            "prod-db",
            "--justification",
            justification,
        ],
    );
    case.trim().to_string()
}

/// The case's escalation, once the server's timer has recorded it (polled
/// for at most 20 s: the timer scans every few milliseconds).
fn escalation(server: &Server, token: &str, case: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = server.events(token, case);
        if let Some(event) = events
            .iter()
            .find(|event| event["kind"] == "escalation_raised")
        {
            return event.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no escalation was recorded: {events:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
