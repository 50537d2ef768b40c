//! Invariant 3: nothing acknowledged is lost. Many clients write concurrently,
//! the server is killed with SIGKILL in the middle of the load, and every write
//! that was answered with success must be in the ledger: verifiable offline
//! without a restart, visible after a restart, and replayable by its
//! idempotency key without appending anything.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use crate::common;

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use common::load::{Ack, Load};
use common::{assert_verify_ok, Body, Server};
use serde_json::{json, Value};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

const WORKERS: usize = 12;
const COMMENTS_PER_CASE: usize = 3;

#[test]
fn acknowledged_writes_survive_kill_9_under_concurrent_load() {
    let mut server = Server::start();
    let tokens: Vec<String> = ["w1", "w2", "w3", "w4"]
        .iter()
        .map(|name| server.principal(name))
        .collect();

    // Events written before the load (the policy record, administration).
    let before_load = server.log_size() as usize;
    let load = Load::start(&server, &tokens, WORKERS, COMMENTS_PER_CASE, "crash");

    // Let the load run: at least a second and a few hundred acknowledged
    // writes, then kill the server while the workers are still writing.
    let load_time = load.wait_until(
        &mut server,
        Duration::from_secs(180),
        |_, acked, elapsed| acked >= 400 && elapsed >= Duration::from_millis(1500),
    );
    server.kill9();
    let acked = load.finish(&server);
    // Every acknowledged write was a first write, answered as such: a new
    // case is 201 Created, a comment 200, and neither is a replay.
    for ack in &acked {
        let expected = if ack.path == "/v1/cases" { 201 } else { 200 };
        assert_eq!(
            (ack.status, &ack.response["replayed"]),
            (expected, &json!(false)),
            "{} {}: {}",
            ack.path,
            ack.key,
            ack.response
        );
    }
    let acked_events: Vec<String> = acked.iter().flat_map(Ack::event_ids).collect();
    let acked_cases: HashSet<String> = acked.iter().map(|ack| ack.case_id().to_string()).collect();
    assert_eq!(
        acked_events.len(),
        acked.len(),
        "every acknowledged write appended exactly one event"
    );
    assert_eq!(
        acked.iter().filter(|ack| ack.path == "/v1/cases").count(),
        acked_cases.len()
    );

    // Without a restart: the crashed directory verifies, and holds every acknowledged event.
    let report = assert_verify_ok(&server.data);
    let checked = report["checked"]["events"]
        .as_u64()
        .expect("checked.events");
    assert!(
        checked >= acked_events.len() as u64,
        "verify checked {checked} events but {} were acknowledged",
        acked_events.len()
    );
    let (stored_events, stored_cases) = {
        let runtime = server.runtime();
        let options = SqliteConnectOptions::new()
            .filename(server.data.join("custody.db"))
            .read_only(true);
        runtime.block_on(async {
            let mut connection = options.connect().await.expect("open the crashed database");
            let events: Vec<String> = sqlx::query_scalar("SELECT event_id FROM events")
                .fetch_all(&mut connection)
                .await
                .expect("read events");
            let cases: Vec<String> = sqlx::query_scalar("SELECT case_id FROM cases")
                .fetch_all(&mut connection)
                .await
                .expect("read cases");
            connection.close().await.expect("close");
            (
                events.into_iter().collect::<HashSet<_>>(),
                cases.into_iter().collect::<HashSet<_>>(),
            )
        })
    };
    let lost_events: Vec<&String> = acked_events
        .iter()
        .filter(|id| !stored_events.contains(*id))
        .collect();
    assert!(
        lost_events.is_empty(),
        "{} of {} acknowledged events are missing after kill -9: {:?}",
        lost_events.len(),
        acked_events.len(),
        &lost_events[..lost_events.len().min(10)]
    );
    let lost_cases: Vec<&String> = acked_cases
        .iter()
        .filter(|id| !stored_cases.contains(*id))
        .collect();
    assert!(
        lost_cases.is_empty(),
        "acknowledged cases lost: {lost_cases:?}"
    );

    eprintln!(
        "{} writes ({} cases) acknowledged in {:?} of load before kill -9; {} events stored",
        acked.len(),
        acked_cases.len(),
        load_time,
        stored_events.len()
    );

    // After a restart on the same directory: every acknowledged event is in its case's timeline.
    server.restart();
    let log_size = server.log_size();
    assert_eq!(log_size, stored_events.len() as u64, "the log is gapless");
    // At most one write per worker was in flight when the server died, so
    // at most that many events were committed without an acknowledgement.
    assert!(
        stored_events.len() <= before_load + acked_events.len() + WORKERS,
        "{} events stored but only {before_load} before the load, {} acknowledged and \
         {WORKERS} in flight",
        stored_events.len(),
        acked_events.len()
    );
    // Every acknowledged event is at the log index and case sequence number
    // it was acknowledged with.
    let mut at_index: Vec<(String, String)> = Vec::new();
    while (at_index.len() as u64) < log_size {
        let start = at_index.len() as u64;
        let page = server.get_json(&format!("/v1/log/entries?start={start}&end={log_size}"));
        let entries = page["entries"].as_array().expect("entries");
        assert!(!entries.is_empty(), "no log entries from {start}");
        for entry in entries {
            assert_eq!(entry["index"], json!(at_index.len()), "{entry}");
            let leaf = base64::engine::general_purpose::STANDARD
                .decode(entry["leaf"].as_str().expect("leaf"))
                .expect("leaf is base64");
            let event: Value = serde_json::from_slice(&leaf).expect("leaf is JSON");
            at_index.push((
                event["event_id"].as_str().expect("event_id").to_string(),
                event["case_id"].as_str().expect("case_id").to_string(),
            ));
        }
    }
    let mut timelines: std::collections::HashMap<String, Vec<Value>> = Default::default();
    for ack in &acked {
        for appended in ack.response["appended"].as_array().expect("appended") {
            let index = appended["log_index"].as_u64().expect("log_index") as usize;
            let event_id = appended["event_id"].as_str().expect("event_id");
            assert_eq!(
                at_index.get(index),
                Some(&(event_id.to_string(), ack.case_id().to_string())),
                "acknowledged event {event_id} is not at log index {index}"
            );
            let case = appended["case_id"].as_str().expect("case_id");
            let timeline = timelines.entry(case.to_string()).or_insert_with(|| {
                server.get_json(&format!("/v1/cases/{case}"))["events"]
                    .as_array()
                    .cloned()
                    .expect("events")
            });
            let seq = appended["seq"].as_u64().expect("seq") as usize;
            let stored = timeline
                .get(seq.wrapping_sub(1))
                .unwrap_or_else(|| panic!("case {case} has no event {seq} after restart"));
            assert_eq!(
                (&stored["event_id"], &stored["kind"]),
                (&appended["event_id"], &appended["kind"]),
                "case {case} event {seq} after restart"
            );
        }
    }
    let mut seen = HashSet::new();
    for case in &acked_cases {
        let document = server.get_json(&format!("/v1/cases/{case}"));
        let events = document["events"].as_array().expect("events");
        for (index, event) in events.iter().enumerate() {
            assert_eq!(event["case_id"], case.as_str());
            assert_eq!(event["seq"], json!(index + 1), "case {case} is gapless");
            seen.insert(event["event_id"].as_str().unwrap_or_default().to_string());
        }
    }
    let unseen: Vec<&String> = acked_events
        .iter()
        .filter(|id| !seen.contains(*id))
        .collect();
    assert!(
        unseen.is_empty(),
        "acknowledged events not shown after restart: {unseen:?}"
    );
    // Sanity: the store's case IDs parse as case IDs.
    for case in &acked_cases {
        custody_core::CaseId::from_str(case).expect("case ID");
    }

    // Replaying every acknowledged write with its key returns the first
    // result and appends nothing.
    let last_comment = acked
        .iter()
        .rev()
        .find(|ack| ack.path.ends_with("/comments"))
        .expect("an acknowledged comment");
    for ack in &acked {
        let response = server.http(
            "POST",
            &ack.path,
            Some(&ack.token),
            &[("idempotency-key", ack.key.as_str())],
            Body::Json(ack.body.clone()),
        );
        assert_eq!(
            response.status, 200,
            "replay of {}: {}",
            ack.key, response.text
        );
        assert_eq!(response.json["replayed"], true, "{}", response.text);
        assert_eq!(response.json["case_id"], ack.case_id(), "{}", response.text);
        assert_eq!(
            response.json["appended"], ack.response["appended"],
            "{}",
            response.text
        );
    }
    assert_eq!(server.log_size(), log_size, "a replay appended an event");

    // The restarted server takes new writes and the trail is still whole.
    let fresh = server.http(
        "POST",
        &last_comment.path,
        Some(&last_comment.token),
        &[("idempotency-key", "after-restart-1")],
        Body::Json(json!({"text": "after the crash"})),
    );
    assert_eq!(fresh.status, 200, "{}", fresh.text);
    assert_eq!(fresh.json["replayed"], false);
    assert_eq!(server.log_size(), log_size + 1);
    assert_verify_ok(&server.data);
}
