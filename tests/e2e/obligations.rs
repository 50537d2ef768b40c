//! Obligations that start with an execution: the review deadline (always for
//! automation) and the end of time-bound access. The ledger acts on each
//! when it falls due, as the `system` actor, and the trail shows it. The
//! deadlines pass on a test clock (`common::in_process`).

use crate::common;

use std::time::{Duration, Instant};

use common::{assert_refused, Server, TestStore};
use custody_core::time::Clock;
use custody_core::Timestamp;
use serde_json::Value;

const CONFIG: &str = r#"
[workflow]
scan_interval_seconds = 1

[[policy.rules]]
name = "on-call"
entitlements = ["oncall-*"]
review_deadline = "1s"
"#;

fn wait_for_kinds(server: &Server, token: &str, case: &str, kinds: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = server.events(token, case);
        if kinds
            .iter()
            .all(|kind| events.iter().any(|event| event["kind"] == *kind))
        {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{kinds:?} never appeared: {events:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn time_bound_access_gets_its_revocation_due_and_late_reviews_are_escalated() {
    let (server, _) = Server::start_in_process(TestStore::Embedded, Some(CONFIG));
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
            "oncall-admin",
            "--duration",
            "2s",
        ],
    );
    let case = case.trim().to_string();
    server.cli_ok(&bob, &["approve", &case]);
    server.cli_ok(&carol, &["execute", &case]);
    let view = server.show(&alice, &case)["view"].clone();
    assert!(view["expires_at"].is_string(), "{view}");
    assert!(view["review_due"].is_string(), "{view}");

    // The test clock passes both deadlines: a minute of scans.
    server.advance(60);
    let events = wait_for_kinds(
        &server,
        &alice,
        &case,
        &["escalation_raised", "revocation_due"],
    );
    for kind in ["escalation_raised", "revocation_due"] {
        let event = events.iter().find(|event| event["kind"] == kind).unwrap();
        assert_eq!(event["actor"]["principal"], "system", "{event}");
        assert_eq!(event["role"], "system");
    }
    let escalation = events
        .iter()
        .find(|event| event["kind"] == "escalation_raised")
        .unwrap();
    assert_eq!(escalation["payload"]["reason"], "review.overdue");

    // The revocation is recorded in the same case; once is enough.
    server.cli_ok(
        &carol,
        &[
            "execute",
            &case,
            "--revocation",
            "--comment",
            "removed from the group",
        ],
    );
    assert_refused(
        &server.cli(Some(&carol), &["execute", &case, "--revocation"]),
        "lifecycle.already-revoked",
    );
    let view = server.show(&alice, &case)["view"].clone();
    assert_eq!(view["revoked"], true);
    // verify still reports the review nobody did (at the test clock, past
    // the review's deadline).
    let review_due = Timestamp::parse(view["review_due"].as_str().unwrap()).unwrap();
    assert!(server.clock().now() > review_due, "{view}");
    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.to_string().contains("review.overdue"), "{report}");
    server.cli_ok(&dave, &["review", &case, "--outcome", "confirmed"]);
    server.assert_verify_ok();

    // Access that is not time-bound has nothing to revoke on expiry.
    let other = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            "reader",
        ],
    );
    let other = other.trim();
    server.cli_ok(&bob, &["approve", other]);
    server.cli_ok(&carol, &["execute", other]);
    assert_refused(
        &server.cli(Some(&carol), &["execute", other, "--revocation"]),
        "lifecycle.not-time-bound",
    );
}

#[test]
fn an_automated_execution_always_owes_a_review() {
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let robot = server.principal_with("provisioner", &["--kind", "automation"]);
    let carol = server.principal("carol");

    let automated = server.cli_ok(
        &alice,
        &["request", "--subject", "user:alice", "--entitlement", "a"],
    );
    let automated = automated.trim();
    server.cli_ok(&bob, &["approve", automated]);
    server.cli_ok(&robot, &["execute", automated]);
    let view = server.show(&alice, automated)["view"].clone();
    let executed_at = server.events(&alice, automated)[2]["recorded_at"]
        .as_str()
        .unwrap()
        .to_string();
    let due = view["review_due"]
        .as_str()
        .expect("a review deadline for automation");
    // 24 hours after the execution: same time of day, next day.
    assert_eq!(&due[11..], &executed_at[11..]);
    assert_ne!(&due[..10], &executed_at[..10]);

    // A human execution under the default rule owes no deadline.
    let manual = server.cli_ok(
        &alice,
        &["request", "--subject", "user:alice", "--entitlement", "b"],
    );
    let manual = manual.trim();
    server.cli_ok(&bob, &["approve", manual]);
    server.cli_ok(&carol, &["execute", manual]);
    assert!(server.show(&alice, manual)["view"]["review_due"].is_null());
}
