//! The continuous monitor of `custody serve` (`docs/monitor.md`): it
//! audits new entries, re-checks what it verified, and records each new
//! finding once as `finding_raised` in the case it concerns.
//!
//! The server runs in this process on a test clock. One test drives the
//! monitor's scans itself (a second node's [`Monitor`], with the server's
//! own monitor off), to assert exactly what each scan finds; the other lets
//! the server's own monitor find a tamper one interval after it was done.

use std::time::{Duration, Instant};

use custody_core::audit::Finding;
use custody_server::monitor::{Monitor, MonitorOptions, ScanOutcome};
use serde_json::Value;

use crate::common::tamper::{Db, EVENT_TRIGGERS, TRIGGERS};
use crate::common::{Server, TestStore};

/// Checkpoints every second of real time, so the log's tail is covered
/// before the test moves the clock; the server's own monitor is off.
const DRIVEN: &str = "[log]\ncheckpoint_interval_seconds = 1\n";

/// The server's own monitor scans every minute of its clock.
const MONITORED: &str =
    "[log]\ncheckpoint_interval_seconds = 1\n[monitor]\ninterval_seconds = 60\n";

fn request(server: &Server, token: &str, subject: &str, entitlement: &str) -> String {
    server
        .cli_ok(
            token,
            &[
                "request",
                "--subject",
                subject,
                "--entitlement",
                entitlement,
            ],
        )
        .trim()
        .to_string()
}

/// A monitor as a second node runs it, on the server's store and clock.
fn monitor(server: &Server) -> Monitor {
    Monitor::new(
        server.store(),
        MonitorOptions {
            interval_seconds: 60,
            poll: Duration::from_millis(25),
            trusted_keys: custody_server::keys::trusted_keys(&server.data).unwrap(),
            // The tail's age is judged by a day, as `Server::verify_with`
            // does: the server signs by real time, the test moves its clock.
            checkpoint_interval_seconds: 24 * 3600,
            idle_after_entries: 1,
        },
        server.shared_clock(),
        "test-monitor".to_string(),
    )
}

fn scan(server: &Server, monitor: &mut Monitor) -> ScanOutcome {
    server.clock().advance_seconds(60);
    let outcome = server.block_on(monitor.scan_once()).unwrap();
    assert!(outcome.scanned, "the only monitor holds the lease");
    outcome
}

fn codes(findings: &[Finding]) -> Vec<&str> {
    findings
        .iter()
        .map(|finding| finding.code.as_str())
        .collect()
}

/// The `finding_raised` events of `case`.
fn raised(server: &Server, token: &str, case: &str) -> Vec<Value> {
    server.show(token, case)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"] == "finding_raised")
        .cloned()
        .collect()
}

/// Waits (for the server's real-time signer) until a checkpoint covers the log.
fn wait_for_checkpoint(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let size = server.log_size();
        let checkpoint = server.http(
            "GET",
            "/v1/log/checkpoint",
            None,
            &[],
            crate::common::Body::None,
        );
        // A signed note: the origin, then the size.
        let signed = checkpoint
            .text
            .lines()
            .nth(1)
            .and_then(|line| line.parse::<u64>().ok());
        if checkpoint.status == 200 && signed == Some(size) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint covers the log: {}",
            checkpoint.text
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_monitor_audits_new_entries_and_raises_each_tamper_once() {
    let (server, _) = Server::start_in_process(TestStore::Embedded, Some(DRIVEN));
    let alice = server.principal("alice");
    let tampered_case = request(&server, &alice, "user:bob", "reader");
    let other_case = request(&server, &alice, "user:carol", "writer");
    wait_for_checkpoint(&server);

    // A healthy ledger raises nothing, however often it is scanned.
    let mut first = monitor(&server);
    for _ in 0..3 {
        let outcome = scan(&server, &mut first);
        let report = outcome.report.unwrap();
        assert!(report.ok, "{:#?}", report.findings);
        assert!(outcome.recorded.is_empty() && outcome.logged.is_empty());
    }

    // New entries between scans are audited.
    let log_size = server.log_size();
    let third_case = request(&server, &alice, "user:dan", "reader");
    wait_for_checkpoint(&server);
    let outcome = scan(&server, &mut first);
    assert!(outcome.report.unwrap().checked.log_entries > 0);
    assert!(server.log_size() > log_size);
    assert!(outcome.recorded.is_empty(), "{:#?}", outcome.recorded);
    assert!(raised(&server, &alice, &third_case).is_empty());

    // A byte of an entry already verified, changed behind the store's back.
    let mut db = Db::open(&server.data);
    db.drop_triggers(&EVENT_TRIGGERS);
    let (log_index, bytes) = db.event(&tampered_case, 1);
    db.set_bytes(
        log_index,
        &crate::common::tamper::replace(&bytes, "reader", "readex"),
    );
    let outcome = scan(&server, &mut first);
    let recorded = codes(&outcome.recorded);
    assert!(
        recorded.contains(&"log.leaf-mismatch"),
        "{recorded:?} {:#?} {:#?}",
        outcome.logged,
        outcome.report
    );
    let events = raised(&server, &alice, &tampered_case);
    let leaf = |events: &[Value]| {
        events
            .iter()
            .filter(|event| event["payload"]["code"] == "log.leaf-mismatch")
            .count()
    };
    assert_eq!(leaf(&events), 1, "{events:#?}");
    let event = events
        .iter()
        .find(|event| event["payload"]["code"] == "log.leaf-mismatch")
        .unwrap();
    let payload = &event["payload"];
    assert_eq!(event["actor"]["principal"], "system", "{event:#}");
    assert_eq!(payload["log_index"], log_index, "{payload}");
    assert!(payload["scanned_to"].as_u64().unwrap() > 0, "{payload}");
    // The case-less findings of the same tamper (a checkpoint's root) are
    // only logged; the untouched case gets nothing.
    assert!(
        codes(&outcome.logged).contains(&"checkpoint.root-mismatch"),
        "{:?}",
        codes(&outcome.logged)
    );
    assert!(raised(&server, &alice, &other_case).is_empty());

    // Raised once: not again by later scans, nor by a monitor that starts
    // afresh (a restart, another node), which finds it in the case.
    // The first `finding_raised` links to the event as it was written, not
    // as it was edited: the next scan finds that link broken, once.
    let outcome = scan(&server, &mut first);
    assert_eq!(codes(&outcome.recorded), ["chain.prev-hash-mismatch"]);
    let own = outcome.recorded[0].event_id.clone().unwrap();
    assert!(events.iter().any(|event| event["event_id"] == own.as_str()));
    for _ in 0..2 {
        let outcome = scan(&server, &mut first);
        assert!(outcome.recorded.is_empty(), "{:#?}", outcome.recorded);
    }
    drop(first);
    let mut restarted = monitor(&server);
    let outcome = scan(&server, &mut restarted);
    assert!(
        !codes(&outcome.report.unwrap().findings).is_empty(),
        "the tamper is still found"
    );
    assert!(
        !codes(&outcome.recorded).contains(&"log.leaf-mismatch"),
        "{:?}",
        codes(&outcome.recorded)
    );
    assert_eq!(leaf(&raised(&server, &alice, &tampered_case)), 1);

    // A deleted checkpoint the monitor had seen.
    wait_for_checkpoint(&server);
    scan(&server, &mut restarted);
    db.drop_triggers(&TRIGGERS[4..]);
    db.run("DELETE FROM checkpoints WHERE size = (SELECT MIN(size) FROM checkpoints)");
    let outcome = scan(&server, &mut restarted);
    assert!(
        codes(&outcome.logged).contains(&"checkpoint.missing-from-database"),
        "{:?}",
        codes(&outcome.logged)
    );
}

/// Between scans the monitor lets go of idle cases (it keeps a sum over
/// their case rows): a case written to again is taken back without a false
/// finding, and a retired case's row edited behind the store's back is
/// still found and raised in its case.
#[test]
fn the_monitor_lets_go_of_idle_cases_and_still_checks_their_rows() {
    let (server, _) = Server::start_in_process(TestStore::Embedded, Some(DRIVEN));
    let alice = server.principal("alice");
    let cases: Vec<String> = (0..3)
        .map(|index| request(&server, &alice, &format!("user:u{index}"), "reader"))
        .collect();
    wait_for_checkpoint(&server);
    let mut monitor = monitor(&server);
    for _ in 0..2 {
        let outcome = scan(&server, &mut monitor);
        assert!(outcome.report.unwrap().ok);
    }
    // This monitor lets go of a case one entry after its latest row: all
    // but the request written last.
    let (held, retired) = monitor.cases();
    assert!(
        retired >= 2,
        "the idle requests are let go of: {held} held, {retired} retired"
    );

    // Written to again: rebuilt from its rows, nothing found.
    server.cli_ok(&alice, &["comment", &cases[0], "still needed"]);
    wait_for_checkpoint(&server);
    let outcome = scan(&server, &mut monitor);
    let report = outcome.report.unwrap();
    assert!(report.ok, "{:#?}", report.findings);
    assert!(outcome.recorded.is_empty(), "{:#?}", outcome.recorded);

    // A retired case's row edited: the scan starts over and names it.
    let mut db = Db::open(&server.data);
    db.run(&format!(
        "UPDATE cases SET state = 'approved' WHERE case_id = '{}'",
        cases[1]
    ));
    let outcome = scan(&server, &mut monitor);
    let recorded = codes(&outcome.recorded);
    assert!(
        recorded.contains(&"case.projection-mismatch"),
        "{recorded:?} {:#?}",
        outcome.logged
    );
    assert!(outcome
        .recorded
        .iter()
        .all(|finding| finding.case_id.as_deref() == Some(cases[1].as_str())));
    assert_eq!(raised(&server, &alice, &cases[1]).len(), 1);
    assert!(raised(&server, &alice, &cases[2]).is_empty());
}

#[test]
fn the_servers_monitor_finds_a_tamper_within_one_interval() {
    let (server, _) = Server::start_in_process(TestStore::Embedded, Some(MONITORED));
    let alice = server.principal("alice");
    let case = request(&server, &alice, "user:bob", "reader");
    wait_for_checkpoint(&server);
    let mut db = Db::open(&server.data);
    db.drop_triggers(&EVENT_TRIGGERS);
    let (log_index, bytes) = db.event(&case, 1);
    db.set_bytes(
        log_index,
        &crate::common::tamper::replace(&bytes, "reader", "readex"),
    );
    server.clock().advance_seconds(60);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = raised(&server, &alice, &case);
        if let Some(event) = events
            .iter()
            .find(|event| event["payload"]["code"] == "log.leaf-mismatch")
        {
            assert_eq!(event["payload"]["log_index"], log_index, "{event:#}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no finding_raised one interval after the tamper: {events:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The metrics show the monitor at work. (Their values are the
    // process's, which other servers of this test binary share: only
    // that they are exposed is asserted here.)
    let metrics = server.http("GET", "/metrics", None, &[], crate::common::Body::None);
    assert_eq!(metrics.status, 200);
    for name in [
        "custody_monitor_scans_total",
        "custody_monitor_entries_verified",
        "custody_monitor_ok",
        "custody_monitor_findings{severity=\"critical\"}",
        "custody_monitor_last_scan_timestamp_seconds",
    ] {
        assert!(
            metrics.text.contains(name),
            "{name} missing:\n{}",
            metrics.text
        );
    }
}
