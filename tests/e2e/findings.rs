//! Findings and refusal codes that depend on the real store, server or CLI,
//! each asserted with its exact code, case and log index (see
//! `crates/custody-core/tests/findings_coverage.rs`, which names these tests
//! for the codes only they produce).
//!
//! One store is built through the real CLI; each tampering edits a fresh
//! copy of its data directory the way someone with file access could, and
//! runs the real `custody verify --json` on it.

#![allow(clippy::unwrap_used, clippy::cast_possible_wrap)]

use crate::common;

use std::path::Path;
use std::str::FromStr;

use common::tamper::{self, Db};
use common::{assert_refused, assert_verify_ok, stderr, Body, Server};
use custody_core::event::{CaseLink, EventBody};
use custody_core::{CaseId, Event, EventId, Sha256Hash};
use serde_json::{json, Value};
use tempfile::TempDir;

/// The store every tampering starts from. Logs 0 and 1 are init's admin and
/// its token (the administration record), log 2 the server's adoption of its
/// policy, logs 3 to 6 alice and bob with their tokens; then `first` (request, comment), `second` (request) and
/// `record`, the evidence record of a ticket no case carries yet.
struct Fixture {
    server: Server,
    first: String,
    second: String,
    record: String,
}

fn build_fixture() -> Fixture {
    let mut server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let first = server
        .cli_ok(
            &alice,
            &["request", "--subject", "user:ann", "--entitlement", "admin"],
        )
        .trim()
        .to_string(); // log 7, seq 1
    server.cli_ok(&bob, &["comment", &first, "looks fine to me"]); // log 8, seq 2
    let second = server
        .cli_ok(
            &alice,
            &[
                "request",
                "--subject",
                "user:ben",
                "--entitlement",
                "reader",
            ],
        )
        .trim()
        .to_string(); // log 9, seq 1
    let file = server.root.path().join("screenshot.png");
    std::fs::write(&file, b"an approval screenshot").unwrap();
    let held = server.cli_json(
        &bob,
        &["attach", "--ticket", "jira:SEC-9", file.to_str().unwrap()],
    ); // log 10, the record's seq 1
    assert_eq!(held["appended"][0]["kind"], "evidence_held", "{held:#}");
    let record = held["case_id"].as_str().unwrap().to_string();
    assert_eq!(server.log_size(), 11);
    server.stop();
    assert_verify_ok(&server.data);
    Fixture {
        server,
        first,
        second,
        record,
    }
}

fn fresh_copy(fixture: &Fixture) -> TempDir {
    tamper::copy_of(&fixture.server.data)
}

/// Runs `verify --json`, asserts it failed, and returns the report.
#[track_caller]
fn verify_fails(data: &Path) -> Value {
    tamper::verify_fails(data, &[]).0
}

/// The one finding with `code`, asserting it names `case`, `seq` and `log_index`.
#[track_caller]
fn assert_finding(report: &Value, code: &str, case: &str, seq: Value, log_index: Value) {
    let hits: Vec<&Value> = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|finding| finding["code"] == code)
        .collect();
    assert_eq!(hits.len(), 1, "expected one {code}: {report:#}");
    assert_eq!(hits[0]["case_id"], case, "{code}: {report:#}");
    assert_eq!(hits[0]["seq"], seq, "{code}: {report:#}");
    assert_eq!(hits[0]["log_index"], log_index, "{code}: {report:#}");
}

/// The codes of the report's findings, sorted.
/// Adds the Merkle nodes of the events inserted behind the store's back, as
/// a careful forger would: the tree only grows, so the stored nodes stay and
/// the missing ones are added (no trigger dropped).
fn add_missing_log_nodes(db: &mut Db) {
    let mut tree = custody_log::MemoryTree::new();
    for (_, _, _, bytes) in db.events() {
        for node in tree.append_data(&bytes) {
            db.run(&format!(
                "INSERT OR IGNORE INTO log_nodes (level, idx, hash) VALUES ({}, {}, X'{}')",
                node.id.level,
                node.id.index,
                custody_core::hex::encode(&node.hash)
            ));
        }
    }
}

fn codes(report: &Value) -> Vec<String> {
    let mut codes: Vec<String> = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        // Notes (an inserted entry no checkpoint covers yet) are not findings.
        .filter(|finding| finding["severity"] != "info")
        .filter_map(|finding| finding["code"].as_str().map(str::to_string))
        .collect();
    codes.sort();
    codes
}

#[test]
fn verify_names_tampering_only_the_store_makes_possible() {
    let fixture = build_fixture();
    let first = fixture.first.as_str();
    let second = fixture.second.as_str();

    // case.missing-head: a case's row deleted; its events remain.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        assert_eq!(
            db.run(&format!("DELETE FROM cases WHERE case_id = '{second}'")),
            1
        );
        db.close();
        let report = verify_fails(copy.path());
        assert_finding(
            &report,
            "case.missing-head",
            second,
            Value::Null,
            Value::Null,
        );
        assert_eq!(codes(&report), ["case.missing-head"], "{report:#}");
    }

    // event.malformed: an event's bytes replaced by bytes that are not an event.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.run("DROP TRIGGER events_refuse_update");
        let (log_index, _) = db.event(first, 2);
        assert_eq!(log_index, 8);
        db.run("UPDATE events SET bytes = X'00FF00' WHERE log_index = 8");
        db.close();
        let report = verify_fails(copy.path());
        assert_finding(&report, "event.malformed", first, json!(2), json!(8));
        // The Merkle leaf and the case's head no longer match the bytes
        // either, nor the root of the checkpoint signed as the server stopped.
        assert_eq!(
            codes(&report),
            [
                "chain.head-mismatch",
                "checkpoint.root-mismatch",
                "event.malformed",
                "log.leaf-mismatch"
            ],
            "{report:#}"
        );
    }

    // log.index-duplicate: the events table rebuilt without its primary key,
    // and a second row stored under an index already taken.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.run(
            "CREATE TABLE events_copy AS SELECT * FROM events;
             DROP TABLE events;
             ALTER TABLE events_copy RENAME TO events;",
        );
        let (_, bytes) = db.event(first, 2);
        let mut forged = Event::decode(&bytes).expect("stored events decode");
        forged.event_id = EventId::generate();
        forged.seq = 3;
        forged.prev_hash = Some(Sha256Hash::of(&bytes));
        db.insert(8, &forged);
        db.run(&format!(
            "UPDATE cases SET head_seq = 3, head_hash = '{}' WHERE case_id = '{first}'",
            forged.hash()
        ));
        db.close();
        let report = verify_fails(copy.path());
        assert_finding(&report, "log.index-duplicate", first, Value::Null, json!(8));
    }

    // chain.missing-start and case.no-request: a case's request deleted, the
    // log renumbered, so the case starts at its comment.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.run("DROP TRIGGER events_refuse_delete; DROP TRIGGER events_refuse_update");
        assert_eq!(db.run("DELETE FROM events WHERE log_index = 7"), 1);
        db.run("UPDATE events SET log_index = -log_index WHERE log_index > 7");
        db.run("UPDATE events SET log_index = -log_index - 1 WHERE log_index < 0");
        db.close();
        let report = verify_fails(copy.path());
        assert_finding(&report, "chain.missing-start", first, json!(2), json!(7));
        assert_finding(&report, "case.no-request", first, json!(2), json!(7));
    }

    // case.second-request: a second request appended to a case, chain and
    // head kept consistent, with no trigger dropped.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        let (_, request) = db.event(second, 1);
        let mut forged = Event::decode(&request).expect("stored events decode");
        forged.event_id = EventId::generate();
        forged.seq = 2;
        forged.prev_hash = Some(Sha256Hash::of(&request));
        forged.idempotency_key = Some("forged-request".to_string());
        db.insert(11, &forged);
        // The case row as the writer would make it: head and view.
        db.fix_case_heads();
        add_missing_log_nodes(&mut db);
        db.close();
        let report = verify_fails(copy.path());
        assert_finding(&report, "case.second-request", second, json!(2), json!(11));
        // The forgery is chain-consistent: only the rule can see it.
        assert_eq!(codes(&report), ["case.second-request"], "{report:#}");
    }

    // chain.missing-start alone: a forged first event at seq 2 for a case of
    // its own, with its case row.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        let (_, request) = db.event(second, 1);
        let mut forged = Event::decode(&request).expect("stored events decode");
        forged.event_id = EventId::generate();
        forged.case_id = CaseId::generate();
        forged.seq = 2;
        forged.prev_hash = Some(Sha256Hash::of(b"an event that is not stored"));
        forged.idempotency_key = Some("forged-start".to_string());
        db.insert(11, &forged);
        db.run(&format!(
            "INSERT INTO cases (case_id, state, change_key, ticket, requester, summary, opened_at, updated_at, head_seq, head_hash, next_deadline, view) \
             SELECT '{case}', state, change_key, ticket, requester, summary, opened_at, updated_at, 2, '{hash}', next_deadline, view FROM cases WHERE case_id = '{second}'",
            case = forged.case_id,
            hash = forged.hash(),
        ));
        // The row's columns and view as the writer would make them.
        db.fix_case_heads();
        add_missing_log_nodes(&mut db);
        db.close();
        let report = verify_fails(copy.path());
        assert_finding(
            &report,
            "chain.missing-start",
            forged.case_id.as_str(),
            json!(2),
            json!(11),
        );
        assert_eq!(codes(&report), ["chain.missing-start"], "{report:#}");
    }

    // revocation.unmatched-link: a review's link to the revocation case it
    // opened, forged into a case; the revocation case holds no link back.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        let (_, comment) = db.event(first, 2);
        let mut forged = Event::decode(&comment).expect("stored events decode");
        forged.event_id = EventId::generate();
        forged.seq = 3;
        forged.prev_hash = Some(Sha256Hash::of(&comment));
        forged.body = EventBody::RevocationOpened(CaseLink {
            other_case: CaseId::generate(),
        });
        db.insert(11, &forged);
        // The case row as the writer would make it: head and view.
        db.fix_case_heads();
        add_missing_log_nodes(&mut db);
        db.close();
        let report = verify_fails(copy.path());
        assert_finding(
            &report,
            "revocation.unmatched-link",
            first,
            Value::Null,
            json!(11),
        );
        assert_eq!(codes(&report), ["revocation.unmatched-link"], "{report:#}");
    }

    // evidence.record-misplaced: a comment slipped into an evidence record,
    // chained to the held evidence.
    {
        let record = fixture.record.as_str();
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        let (_, held) = db.event(record, 1);
        let (_, comment) = db.event(first, 2);
        let mut forged = Event::decode(&comment).expect("stored events decode");
        forged.event_id = EventId::generate();
        forged.case_id = CaseId::from_str(record).unwrap();
        forged.seq = 2;
        forged.prev_hash = Some(Sha256Hash::of(&held));
        db.insert(11, &forged);
        add_missing_log_nodes(&mut db);
        db.close();
        let report = verify_fails(copy.path());
        assert_finding(
            &report,
            "evidence.record-misplaced",
            record,
            json!(2),
            json!(11),
        );
        assert_eq!(codes(&report), ["evidence.record-misplaced"], "{report:#}");
    }

    assert_verify_ok(&fixture.server.data);
}

#[test]
fn a_link_that_is_not_a_url_is_refused_as_evidence_invalid_url() {
    let server = Server::start();
    let alice = server.principal("alice");
    let case = server
        .cli_ok(
            &alice,
            &["request", "--subject", "user:ann", "--entitlement", "admin"],
        )
        .trim()
        .to_string();
    let before = server.log_size();
    for url in ["not a url", "http://"] {
        let response = server.http(
            "POST",
            &format!("/v1/cases/{case}/evidence/links"),
            Some(&alice),
            &[],
            Body::Json(json!({ "url": url })),
        );
        assert_eq!(response.status, 400, "{url}: {}", response.text);
        assert_eq!(
            response.json["rule"], "evidence.invalid-url",
            "{url}: {}",
            response.text
        );
    }
    assert_eq!(server.log_size(), before, "a refused link records nothing");
}

#[test]
fn adding_a_principal_twice_is_refused_as_principal_exists() {
    let server = Server::start();
    server.principal("alice");
    let output = server.cli(Some(&server.admin_token), &["principal", "add", "alice"]);
    assert_refused(&output, "principal.exists");
    assert!(stderr(&output).contains("alice"), "{}", stderr(&output));
}
