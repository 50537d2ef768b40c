//! Invariant 2: the store refuses to update or delete an event, and when
//! someone edits the database behind its back anyway, `custody verify` says
//! exactly what was done and to which case.
//!
//! One store is built through the real CLI; each scenario tampers with a fresh
//! copy of its data directory and runs the real `custody verify` on it.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::Path;
use std::str::FromStr;

use common::tamper::{self, replace, Db, EVENT_TRIGGERS};
use common::{assert_verify_ok, Server};
use custody_core::{CaseId, Event, EventId, Sha256Hash};
use serde_json::Value;
use tempfile::TempDir;

/// The store every scenario starts from.
struct Fixture {
    /// Keeps the stopped server's data directory alive.
    server: Server,
    /// Full lifecycle plus a comment: request, comment, approval, execution, review.
    full: String,
    /// Request and approval.
    approved: String,
    /// Request and comment.
    open: String,
}

fn build_fixture() -> Fixture {
    let ledger = common::fixture::build(None, false);
    Fixture {
        server: ledger.server,
        full: ledger.full,
        approved: ledger.approved,
        open: ledger.open,
    }
}

/// A fresh copy of the fixture's data directory.
fn fresh_copy(fixture: &Fixture) -> TempDir {
    tamper::copy_of(&fixture.server.data)
}

/// Runs `verify --json`, asserts it failed, and returns the findings.
#[track_caller]
fn verify_fails(data: &Path) -> (Value, Vec<Value>) {
    tamper::verify_fails(data, &[])
}

/// The findings with `code` about `case` (any case when `None`).
fn with_code<'a>(findings: &'a [Value], code: &str, case: Option<&str>) -> Vec<&'a Value> {
    findings
        .iter()
        .filter(|finding| finding["code"] == code)
        .filter(|finding| case.is_none_or(|case| finding["case_id"] == case))
        .collect()
}

#[test]
fn the_store_refuses_and_verify_detects_tampering() {
    let fixture = build_fixture();
    let full = fixture.full.as_str();

    // Invariant 2, first half: the store itself refuses updates and deletes.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.assert_append_only(&[
            "UPDATE events SET kind = 'x'",
            "UPDATE events SET bytes = X'00' WHERE log_index = 1",
            "DELETE FROM events",
            "DELETE FROM events WHERE log_index = 9",
            "DELETE FROM events WHERE log_index = 0",
        ]);
        assert_eq!(db.count("SELECT COUNT(*) FROM events"), 20);
        assert_eq!(db.count("SELECT COUNT(*) FROM events WHERE kind = 'x'"), 0);
        db.close();
        assert_verify_ok(copy.path());
    }

    // (a) One byte changed inside a middle event: the next event no longer links to it.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&EVENT_TRIGGERS);
        let (log_index, _, bytes) = db.event_with_id(full, 2);
        db.set_bytes(log_index, &replace(&bytes, "looks fine", "looks fino"));
        let (_, next_id, _) = db.event_with_id(full, 3);
        db.close();
        let (report, findings) = verify_fails(copy.path());
        let hits = with_code(&findings, "chain.prev-hash-mismatch", Some(full));
        assert!(
            hits.iter()
                .any(|finding| finding["event_id"] == next_id.as_str()
                    && finding["seq"] == 3
                    && finding["log_index"] == 15),
            "expected chain.prev-hash-mismatch at {full} seq 3: {report:#}"
        );
        assert!(
            findings
                .iter()
                .all(|finding| finding["case_id"] == full || finding["case_id"].is_null()),
            "only {full} is affected: {report:#}"
        );
    }

    // (b) The last event of a case changed: only the case's head can tell.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&EVENT_TRIGGERS);
        let (log_index, event_id, bytes) = db.event_with_id(full, 5);
        db.set_bytes(log_index, &replace(&bytes, "all good", "all gold"));
        db.close();
        let (report, findings) = verify_fails(copy.path());
        let hits = with_code(&findings, "chain.head-mismatch", Some(full));
        assert_eq!(
            hits.len(),
            1,
            "expected chain.head-mismatch for {full}: {report:#}"
        );
        assert_eq!(hits[0]["event_id"], event_id.as_str(), "{report:#}");
        assert_eq!(hits[0]["seq"], 5, "{report:#}");
    }

    // (c) A middle event deleted: a hole in the log and in the case's sequence.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&EVENT_TRIGGERS);
        let (log_index, _, _) = db.event_with_id(full, 3);
        assert_eq!(
            db.execute(&format!("DELETE FROM events WHERE log_index = {log_index}")),
            Ok(1)
        );
        db.close();
        let (report, findings) = verify_fails(copy.path());
        let gaps = with_code(&findings, "log.index-gap", None);
        assert!(
            gaps.iter().any(|finding| finding["log_index"] == log_index),
            "expected log.index-gap at {log_index}: {report:#}"
        );
        let seq_gaps = with_code(&findings, "chain.seq-gap", Some(full));
        assert!(
            seq_gaps.iter().any(|finding| finding["seq"] == 4),
            "expected chain.seq-gap for {full} at seq 4: {report:#}"
        );
    }

    // (d) Two events of a case swapped: the order is broken.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&EVENT_TRIGGERS);
        let (second_index, _, second) = db.event_with_id(full, 2);
        let (third_index, _, third) = db.event_with_id(full, 3);
        db.set_bytes(second_index, &third);
        db.set_bytes(third_index, &second);
        db.close();
        let (report, findings) = verify_fails(copy.path());
        // The design's finding for reordered events is chain.out-of-order:
        // the auditor reads the log in index order and follows each case's
        // sequence, so seq 2, now stored after seq 3, is out of order.
        let out_of_order = with_code(&findings, "chain.out-of-order", Some(full));
        assert_eq!(
            out_of_order
                .iter()
                .map(|finding| (finding["seq"].clone(), finding["log_index"].clone()))
                .collect::<Vec<_>>(),
            [(serde_json::json!(2), serde_json::json!(third_index))],
            "expected chain.out-of-order for {full} seq 2 at log index {third_index}: {report:#}"
        );
    }

    // (e) A forged execution appended to a case nobody approved. The forger
    // keeps the chain and the case's head consistent and needs no trigger
    // dropped (INSERT is allowed), so only the lifecycle re-check can see it.
    {
        let copy = fresh_copy(&fixture);
        let open = fixture.open.as_str();
        let mut db = Db::open(copy.path());
        let (_, _, execution) = db.event_with_id(full, 4);
        let (_, _, previous) = db.event_with_id(open, 2);
        let mut forged = Event::decode(&execution).expect("stored events decode");
        forged.event_id = EventId::generate();
        forged.case_id = CaseId::from_str(open).unwrap();
        forged.seq = 3;
        forged.prev_hash = Some(Sha256Hash::of(&previous));
        forged.idempotency_key = Some("forged-1".to_string());
        let bytes = forged.canonical_bytes();
        let hash = Sha256Hash::of(&bytes).to_hex();
        let (runtime, connection) = db.connection();
        runtime
            .block_on(
                sqlx::query(
                    "INSERT INTO events (log_index, event_id, case_id, seq, kind, recorded_at, bytes) VALUES (20, ?, ?, 3, 'execution_completed', ?, ?)",
                )
                .bind(forged.event_id.as_str())
                .bind(open)
                .bind(forged.recorded_at.to_string())
                .bind(&bytes)
                .execute(&mut *connection),
            )
            .expect("insert forged event");
        runtime
            .block_on(
                sqlx::query("UPDATE cases SET head_seq = 3, head_hash = ?, state = 'executed' WHERE case_id = ?")
                    .bind(&hash)
                    .bind(open)
                    .execute(&mut *connection),
            )
            .expect("move the case's head");
        db.close();
        let (report, findings) = verify_fails(copy.path());
        let hits = with_code(
            &findings,
            "lifecycle.execution-without-approval",
            Some(open),
        );
        assert_eq!(
            hits.len(),
            1,
            "expected lifecycle.execution-without-approval for {open}: {report:#}"
        );
        assert_eq!(hits[0]["event_id"], forged.event_id.as_str());
        assert_eq!(hits[0]["seq"], 3);
        assert_eq!(hits[0]["log_index"], 20);
        assert!(
            findings
                .iter()
                .all(|finding| !finding["code"].as_str().unwrap_or("").starts_with("chain.")),
            "the forgery is chain-consistent; only the rule should fire: {report:#}"
        );
    }

    // (f) An event re-encoded non-canonically (one extra space).
    {
        let copy = fresh_copy(&fixture);
        let approved = fixture.approved.as_str();
        let mut db = Db::open(copy.path());
        db.drop_triggers(&EVENT_TRIGGERS);
        let (log_index, _, bytes) = db.event_with_id(approved, 1);
        assert_eq!(bytes[0], b'{');
        let mut spaced = b"{ ".to_vec();
        spaced.extend_from_slice(&bytes[1..]);
        assert!(
            serde_json::from_slice::<Value>(&spaced).is_ok(),
            "the re-encoded event is still JSON"
        );
        db.set_bytes(log_index, &spaced);
        db.close();
        let (report, findings) = verify_fails(copy.path());
        let hits = with_code(&findings, "event.not-canonical", Some(approved));
        assert_eq!(
            hits.len(),
            1,
            "expected event.not-canonical for {approved}: {report:#}"
        );
        assert_eq!(hits[0]["log_index"], log_index, "{report:#}");
    }

    // (g) The case projection edited: the events say otherwise.
    {
        let copy = fresh_copy(&fixture);
        let approved = fixture.approved.as_str();
        let mut db = Db::open(copy.path());
        assert_eq!(
            db.execute(&format!(
                "UPDATE cases SET state = 'reviewed' WHERE case_id = '{approved}'"
            )),
            Ok(1)
        );
        db.close();
        let (report, findings) = verify_fails(copy.path());
        assert_eq!(
            with_code(&findings, "case.projection-mismatch", Some(approved)).len(),
            1,
            "{report:#}"
        );
    }

    // (h) Every event of a case deleted: the case record remembers it.
    {
        let copy = fresh_copy(&fixture);
        let open = fixture.open.as_str();
        let mut db = Db::open(copy.path());
        db.drop_triggers(&EVENT_TRIGGERS);
        assert_eq!(
            db.execute(&format!("DELETE FROM events WHERE case_id = '{open}'")),
            Ok(2)
        );
        db.close();
        let (report, findings) = verify_fails(copy.path());
        assert_eq!(
            with_code(&findings, "case.events-missing", Some(open)).len(),
            1,
            "{report:#}"
        );
        assert!(
            !with_code(&findings, "log.index-gap", None).is_empty(),
            "{report:#}"
        );
    }

    // The human-readable verify fails the same way.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&EVENT_TRIGGERS);
        let (log_index, _, bytes) = db.event_with_id(full, 1);
        db.set_bytes(log_index, &replace(&bytes, "quarterly", "quarterlz"));
        db.close();
        let output = common::command()
            .args(["verify", "--data"])
            .arg(copy.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", common::stdout(&output));
        let text = format!("{}{}", common::stdout(&output), common::stderr(&output));
        assert!(text.contains("chain.prev-hash-mismatch"), "{text}");
        assert!(text.contains(full), "{text}");
    }

    // The original is untouched by all of this.
    assert_verify_ok(&fixture.server.data);
}
