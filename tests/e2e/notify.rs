//! Notifications through the real server and real receivers: a webhook
//! receiver that fails and recovers, one that never answers, `kill -9` in the
//! middle of deliveries, escalations, and what `custody verify` says about
//! notifications that were owed. Each runs on both stores.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{wait_until, HttpStub, Server, TestStore, STORES};
use serde_json::Value;

const SECRET: &str = "webhook secret for the tests";

/// What one receiver saw.
#[derive(Default)]
struct Seen {
    /// Every request: delivery ID, whether the signature verified, the body.
    requests: Mutex<Vec<(String, bool, Value)>>,
    /// Requests still to fail with 503.
    fail_remaining: AtomicUsize,
    /// Answer nothing useful: 503 forever.
    down: AtomicBool,
    /// Hold each request this long before answering.
    delay_ms: AtomicUsize,
    /// Every request's delivery ID as it arrived, before any delay or
    /// answer (a request cut off by a crash of the sender is here only),
    /// with the time it arrived.
    arrivals: Mutex<Vec<(String, SystemTime)>>,
    /// While set, requests that arrive hang unanswered; when it is cleared
    /// they are answered 503 (never accepted), as a receiver that stalled.
    stall: AtomicBool,
}

impl Seen {
    fn requests(&self) -> Vec<(String, bool, Value)> {
        self.requests.lock().unwrap().clone()
    }

    fn arrivals(&self) -> Vec<String> {
        self.arrivals_at().into_iter().map(|(id, _)| id).collect()
    }

    fn arrivals_at(&self) -> Vec<(String, SystemTime)> {
        self.arrivals.lock().unwrap().clone()
    }

    /// Distinct delivery IDs accepted (what a deduplicating receiver keeps).
    fn delivered_ids(&self) -> BTreeSet<String> {
        self.requests().into_iter().map(|(id, _, _)| id).collect()
    }
}

/// A real HTTP receiver on 127.0.0.1, on its own thread and runtime.
struct Receiver {
    url: String,
    seen: Arc<Seen>,
    _stub: HttpStub,
}

impl Receiver {
    fn start() -> Receiver {
        let seen = Arc::new(Seen::default());
        let app = axum::Router::new()
            .route("/hook", post(hook))
            .with_state(seen.clone());
        let stub = HttpStub::serve(app, 2);
        Receiver {
            url: format!("{}/hook", stub.base),
            seen,
            _stub: stub,
        }
    }
}

async fn hook(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    seen.arrivals.lock().unwrap().push((
        header(custody_notify::DELIVERY_ID_HEADER),
        SystemTime::now(),
    ));
    if seen.stall.load(Ordering::SeqCst) {
        while seen.stall.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let delay = seen.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed = custody_notify::verify_webhook_signature(
        SECRET.as_bytes(),
        &header(custody_notify::TIMESTAMP_HEADER),
        &body,
        &header(custody_notify::SIGNATURE_HEADER),
        now,
        300,
    )
    .is_ok();
    if seen.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let failing = seen
        .fail_remaining
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    if failing {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.requests
        .lock()
        .unwrap()
        .push((header(custody_notify::DELIVERY_ID_HEADER), signed, json));
    StatusCode::ACCEPTED
}

/// A config with one webhook channel per `(name, url)`, the given routes and
/// fast retries.
fn config(channels: &[(&str, &str)], routes: &str, extra: &str) -> String {
    config_timed(channels, routes, extra, 3, 1)
}

/// [`config`] with the given lease and per-channel timeout.
fn config_timed(
    channels: &[(&str, &str)],
    routes: &str,
    extra: &str,
    lease_seconds: u64,
    timeout_seconds: u64,
) -> String {
    let mut text = format!(
        "[workflow]\nscan_interval_seconds = 1\n\n[notify]\nbackoff_initial_ms = 100\nbackoff_max_ms = 400\npoll_interval_ms = 50\nlease_seconds = {lease_seconds}\nmax_attempts = 5\ncase_url = \"https://custody.example.com/cases/{{case}}\"\n\n",
    );
    text.push_str(extra);
    for (name, url) in channels {
        text.push_str(&format!(
            "\n[[notify.channels]]\ntype = \"webhook\"\nname = \"{name}\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\ntimeout_seconds = {timeout_seconds}\n"
        ));
    }
    text.push_str("\n[notify.routes]\n");
    text.push_str(routes);
    text
}

fn request(server: &Server, token: &str, entitlement: &str) -> String {
    server
        .cli_ok(
            token,
            &[
                "request",
                "--subject",
                "user:alice",
                "--entitlement",
                entitlement,
                "--justification",
                "on call",
            ],
        )
        .trim()
        .to_string()
}

fn notifications(server: &Server, case: &str) -> Vec<Value> {
    server.cli_json(&server.admin_token, &["notifications", case])["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn attempts(server: &Server, case: &str) -> Vec<Value> {
    server
        .events(&server.admin_token, case)
        .into_iter()
        .filter(|event| event["kind"] == "notification_attempted")
        .collect()
}

/// The codes of the findings that are more than notes (a live log's young
/// tail waiting for its checkpoint is a note).
fn finding_codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|finding| finding["severity"] != "info")
        .map(|finding| finding["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn deliveries_retry_until_the_receiver_recovers_and_every_attempt_is_in_the_case() {
    for store in STORES {
        retry_until_recovery(store);
    }
}

fn retry_until_recovery(store: TestStore) {
    let receiver = Receiver::start();
    receiver.seen.fail_remaining.store(3, Ordering::SeqCst);
    let text = config(
        &[("hooks", &receiver.url)],
        "approvers = [\"hooks:approvers@example.com\"]\nrequester = [\"hooks\"]\n",
        "",
    );
    let (server, _) = Server::start_on(store, None, Some(&text));
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let case = request(&server, &alice, "role/admin");

    // The request owes the approvers a notification; it is in the event itself.
    let events = server.events(&alice, &case);
    let owed = events[0]["notify"]
        .as_array()
        .expect("the request owes a notification");
    assert_eq!(owed.len(), 1, "{owed:?}");
    assert_eq!(owed[0]["kind"], "approval_needed");
    assert_eq!(owed[0]["audience"], "approvers");
    assert_eq!(owed[0]["recipient"], "approvers@example.com");
    let delivery = owed[0]["delivery_id"].as_str().unwrap().to_string();

    wait_until("the approval notice to be delivered", || {
        receiver.seen.delivered_ids().contains(&delivery)
    });
    wait_until("the delivery to be recorded", || {
        attempts(&server, &case)
            .iter()
            .any(|attempt| attempt["payload"]["outcome"] == "delivered")
    });
    // Three failures (503), then delivered: four attempts, each in the case.
    let recorded = attempts(&server, &case);
    let outcomes: Vec<(u64, &str)> = recorded
        .iter()
        .map(|attempt| {
            (
                attempt["payload"]["attempt"].as_u64().unwrap(),
                attempt["payload"]["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (1, "failed"),
            (2, "failed"),
            (3, "failed"),
            (4, "delivered")
        ],
        "{store:?}"
    );
    for attempt in &recorded {
        assert_eq!(attempt["actor"]["principal"], "system");
        assert_eq!(attempt["payload"]["delivery_id"], delivery.as_str());
        assert_eq!(attempt["payload"]["channel"], "hooks");
    }
    assert_eq!(recorded[0]["payload"]["status"], 503);
    assert_eq!(recorded[3]["payload"]["status"], 202);

    // What the receiver got: signed CloudEvents with the actor and a link.
    let requests = receiver.seen.requests();
    let (id, signed, body) = &requests[0];
    assert_eq!(id, &delivery);
    assert!(signed, "the signature verifies");
    assert_eq!(body["specversion"], "1.0");
    assert_eq!(body["id"], delivery.as_str());
    assert_eq!(body["type"], "dev.custody.approval_needed");
    assert_eq!(body["subject"], case.as_str());
    assert_eq!(body["authid"], "alice");
    assert_eq!(
        body["data"]["case_url"],
        format!("https://custody.example.com/cases/{case}")
    );
    let listed = notifications(&server, &case);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["state"], "delivered");
    assert_eq!(listed[0]["attempts"], 4);

    // The approval tells the requester; nothing is owed twice.
    server.cli_ok(&bob, &["approve", &case]);
    wait_until("the approval to reach the requester", || {
        receiver.seen.requests().iter().any(|(_, _, body)| {
            body["type"] == "dev.custody.case_approved" && body["subject"] == case.as_str()
        })
    });
    server.assert_verify_ok();
    let failed = server.cli_json(&server.admin_token, &["notifications", "--failed"]);
    assert_eq!(failed["notifications"], serde_json::json!([]), "{failed}");
}

#[test]
fn a_receiver_down_for_good_is_escalated_and_an_unanswered_request_too() {
    for store in STORES {
        escalations(store);
    }
}

fn escalations(store: TestStore) {
    let down = Receiver::start();
    down.seen.down.store(true, Ordering::SeqCst);
    let pager = Receiver::start();
    let text = config(
        &[("approvals", &down.url), ("pager", &pager.url)],
        "approvers = [\"approvals\"]\nescalation = [\"pager:on-call\"]\n",
        "[[policy.rules]]\nname = \"urgent\"\nentitlements = [\"urgent-*\"]\napproval_deadline = \"2s\"\n\n",
    );
    // In this process, on a test clock (`common::in_process`), so the
    // approval deadline passes when the test says.
    let (server, _) = Server::start_in_process(store, Some(&text));
    let alice = server.principal("alice");

    // The approvers' receiver never recovers: five attempts, then dead and escalated.
    let case = request(&server, &alice, "role/admin");
    wait_until("the dead letter to be escalated", || {
        // A retry falls due when the test clock passes its backoff (at
        // most `backoff_max_ms`, 400 ms): the clock moves a second a poll.
        server.clock().advance_seconds(1);
        server
            .events(&alice, &case)
            .iter()
            .any(|event| event["kind"] == "escalation_raised")
    });
    let events = server.events(&alice, &case);
    let dead_delivery = events[0]["notify"][0]["delivery_id"].as_str().unwrap();
    let outcomes: Vec<&str> = events
        .iter()
        .filter(|event| {
            event["kind"] == "notification_attempted"
                && event["payload"]["delivery_id"] == dead_delivery
        })
        .map(|event| event["payload"]["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["failed", "failed", "failed", "failed", "dead"]);
    let escalation = events
        .iter()
        .find(|event| event["kind"] == "escalation_raised")
        .unwrap();
    assert_eq!(escalation["payload"]["reason"], "notify.dead-letter");
    assert_eq!(escalation["actor"]["principal"], "system");
    assert_eq!(escalation["payload"]["delivery_id"], dead_delivery);
    // The escalation itself is owed to the pager, and delivered there.
    assert_eq!(escalation["notify"][0]["audience"], "escalation");
    assert_eq!(escalation["notify"][0]["recipient"], "on-call");
    wait_until("the pager to hear of the dead letter", || {
        pager.seen.requests().iter().any(|(_, signed, body)| {
            *signed && body["type"] == "dev.custody.escalation" && body["subject"] == case.as_str()
        })
    });
    let failed = server.cli_json(&server.admin_token, &["notifications", "--failed"]);
    let failed = failed["notifications"].as_array().unwrap();
    assert!(
        failed
            .iter()
            .any(|entry| entry["delivery_id"] == dead_delivery && entry["state"] == "dead"),
        "{failed:?}"
    );

    // A request nobody answers within its rule's deadline is escalated too:
    // the test clock passes the deadline, a minute of scans.
    let urgent = request(&server, &alice, "urgent-fix");
    server.advance(60);
    wait_until("the unanswered request to be escalated", || {
        server.events(&alice, &urgent).iter().any(|event| {
            event["kind"] == "escalation_raised" && event["payload"]["reason"] == "approval.overdue"
        })
    });
    wait_until("the pager to hear of the unanswered request", || {
        pager.seen.requests().iter().any(|(_, _, body)| {
            body["type"] == "dev.custody.escalation" && body["subject"] == urgent.as_str()
        })
    });
    // Dead letters that were escalated are not findings (info ones, such as
    // the live log's young tail, say nothing is wrong).
    let report = server.assert_verify_ok();
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|finding| finding["severity"] == "info"),
        "{report:#}"
    );

    // An operator can retry a dead notification once the receiver is back.
    down.seen.down.store(false, Ordering::SeqCst);
    let retried = server.cli_json(
        &server.admin_token,
        &["notifications", "retry", dead_delivery],
    );
    assert_eq!(retried["state"], "pending");
    wait_until("the retried notification to be delivered", || {
        down.seen.delivered_ids().contains(dead_delivery)
    });
    let bob = server.principal("bob");
    let refused = server.cli(Some(&bob), &["notifications", "retry", dead_delivery]);
    assert_eq!(refused.status.code(), Some(1), "only admins retry");
}

#[test]
fn kill_9_during_deliveries_loses_nothing_and_a_deduplicating_receiver_sees_each_once() {
    for store in STORES {
        kill_during_delivery(store);
    }
}

fn kill_during_delivery(store: TestStore) {
    let receiver = Receiver::start();
    // Slow answers, so the kill lands while deliveries are in flight.
    receiver.seen.delay_ms.store(400, Ordering::SeqCst);
    let text = config(&[("hooks", &receiver.url)], "approvers = [\"hooks\"]\n", "");
    let (mut server, _) = Server::start_on(store, None, Some(&text));
    let alice = server.principal("alice");
    let mut owed = BTreeSet::new();
    for index in 0..12 {
        let case = request(&server, &alice, &format!("role/r{index}"));
        let events = server.events(&alice, &case);
        owed.insert(
            events[0]["notify"][0]["delivery_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    wait_until("the first deliveries to arrive", || {
        !receiver.seen.requests().is_empty()
    });
    server.kill9();
    let before_restart = receiver.seen.delivered_ids().len();
    assert!(
        before_restart < owed.len(),
        "the kill came too late to test anything"
    );
    // What the killed server sent, and what it had recorded (the log's size
    // at the kill, read offline).
    let sent_before_kill = count_by_id(receiver.seen.arrivals());
    let (_, report) = server.verify_with(&[]);
    let log_size_at_kill = report["checked"]["log_entries"]
        .as_u64()
        .unwrap_or_else(|| panic!("verify reports no checked.log_entries: {report:#}"));
    server.restart();
    wait_until("every owed notification to arrive", || {
        receiver.seen.delivered_ids() == owed
    });
    wait_until("every delivery to be recorded", || {
        let failed = server.cli_json(&server.admin_token, &["notifications", "--failed"]);
        failed["notifications"].as_array().unwrap().is_empty()
    });
    let sent = count_by_id(receiver.seen.arrivals());
    // Every attempt in the ledger, by delivery ID: (recorded before the
    // kill, recorded after it, delivered).
    let at_index = log_event_ids(&server);
    let mut recorded: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for event in at_index
        .iter()
        .filter(|event| event["kind"] == "notification_attempted")
    {
        let id = event["payload"]["delivery_id"]
            .as_str()
            .unwrap()
            .to_string();
        let entry = recorded.entry(id).or_default();
        if (event["index"].as_u64().unwrap()) < log_size_at_kill {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
        if event["payload"]["outcome"] == "delivered" {
            entry.2 += 1;
        }
    }
    assert_eq!(recorded.keys().cloned().collect::<BTreeSet<_>>(), owed);
    for id in &owed {
        let (before, after, delivered) = recorded[id];
        let sent_before = sent_before_kill.get(id).copied().unwrap_or(0);
        let sent_after = sent[id] - sent_before;
        // Exactly once in the ledger; every send after the restart is an
        // attempt recorded after it; before the kill, at most one send (the
        // one in flight) was cut off before its attempt was recorded.
        assert_eq!(delivered, 1, "{id}: delivered attempts recorded");
        assert_eq!(
            sent_after, after,
            "{id}: sends after the restart vs attempts recorded"
        );
        assert!(
            sent_before == before || sent_before == before + 1,
            "{id}: {sent_before} sends before the kill, {before} attempts recorded"
        );
    }
    // A deduplicating receiver keeps each delivery ID exactly once; the
    // receiver saw an ID more than once only for a send the killed server
    // never recorded, or an attempt recorded as failed (a timeout).
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for (id, signed, _) in receiver.seen.requests() {
        assert!(signed);
        *per_id.entry(id).or_default() += 1;
    }
    assert_eq!(per_id.keys().cloned().collect::<BTreeSet<_>>(), owed);
    for (id, count) in &per_id {
        let (before, after, delivered) = recorded[id];
        let failed = before + after - delivered;
        let unrecorded = sent_before_kill.get(id).copied().unwrap_or(0) - before;
        assert!(
            *count <= 1 + failed + unrecorded,
            "{id} reached the receiver {count} times: {failed} failed attempts recorded, \
             {unrecorded} sends cut off by the kill"
        );
    }
    server.assert_verify_ok();
}

#[test]
fn a_backlog_is_delivered_slot_by_slot_not_one_batch_per_poll_interval() {
    for store in STORES {
        backlog_without_waiting(store);
    }
}

/// One delivery slot and a poll interval of a minute: the worker used to
/// claim at most `concurrency` notifications per poll, so a backlog of six
/// took six minutes. A worker that finds as many rows due as it has free
/// slots claims again as soon as a slot frees.
fn backlog_without_waiting(store: TestStore) {
    let receiver = Receiver::start();
    let text = format!(
        "[notify]\npoll_interval_ms = 60000\nconcurrency = 1\n\n\
         [[notify.channels]]\ntype = \"webhook\"\nname = \"hooks\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\ntimeout_seconds = 5\n\n\
         [notify.routes]\napprovers = [\"hooks\"]\n",
        receiver.url
    );
    let (mut server, _) = Server::start_on(store, None, Some(&text));
    // The worker polled as the node started and waits a minute: these six
    // wait in the outbox (at most one of them, if the first poll came late,
    // is delivered now).
    let alice = server.principal("alice");
    let mut owed = BTreeSet::new();
    for index in 0..6 {
        let case = request(&server, &alice, &format!("role/backlog{index}"));
        for event in server.events(&alice, &case) {
            for owes in event["notify"].as_array().into_iter().flatten() {
                owed.insert(owes["delivery_id"].as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(
        owed.len(),
        6,
        "one notification per request to the approvers"
    );
    // A restarted node polls at once and finds the six due: it delivers
    // them one after the other, well inside a single poll interval.
    server.restart();
    wait_until("the whole backlog to be delivered", || {
        receiver.seen.delivered_ids() == owed
    });
    wait_until("every delivery to be recorded", || {
        let pending = server.cli_json(&server.admin_token, &["notifications", "--failed"]);
        pending["notifications"].as_array().unwrap().is_empty()
    });
    server.assert_verify_ok();
}

fn count_by_id(ids: Vec<String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for id in ids {
        *counts.entry(id).or_default() += 1;
    }
    counts
}

/// Every event of the log, decoded, with its log index as `index`.
fn log_event_ids(server: &Server) -> Vec<Value> {
    use base64::Engine;
    let size = server.log_size();
    let mut events = Vec::new();
    while (events.len() as u64) < size {
        let page = server.get_json(&format!(
            "/v1/log/entries?start={}&end={size}",
            events.len()
        ));
        let entries = page["entries"].as_array().unwrap();
        assert!(!entries.is_empty());
        for entry in entries {
            let leaf = base64::engine::general_purpose::STANDARD
                .decode(entry["leaf"].as_str().unwrap())
                .unwrap();
            let mut event: Value = serde_json::from_slice(&leaf).unwrap();
            event["index"] = entry["index"].clone();
            events.push(event);
        }
    }
    events
}

#[test]
fn two_nodes_on_one_postgres_share_the_outbox_without_sending_twice() {
    let receiver = Receiver::start();
    // Two deliveries in flight per node. The channel timeout (4 s) is well
    // inside the lease (5 s), and both are long enough that a node stalled
    // on its receiver still holds its leases when the test kills it.
    let text = config_timed(
        &[("hooks", &receiver.url)],
        "approvers = [\"hooks\"]\n",
        "concurrency = 2\n",
        5,
        4,
    );
    let (mut server, _) = Server::start_on(TestStore::Postgres, None, Some(&text));
    let url = server.database.as_ref().unwrap().url.clone();
    let second = server.root.path().join("second");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::copy(
        server.data.join("log-signing.key"),
        second.join("log-signing.key"),
    )
    .unwrap();
    let config_path = server.config_path().unwrap();
    let alice = server.principal("alice");
    let owe = |server: &Server, entitlement: &str| {
        let case = request(server, &alice, entitlement);
        server.events(&alice, &case)[0]["notify"][0]["delivery_id"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // 1. The first node, alone, claims two deliveries (as many as it may
    // have in flight) and sends them to a receiver that stalls; it dies
    // holding their leases, having recorded nothing.
    receiver.seen.stall.store(true, Ordering::SeqCst);
    let held: BTreeSet<String> = (0..2)
        .map(|index| owe(&server, &format!("role/held{index}")))
        .collect();
    wait_until("the first node to send both", || {
        receiver
            .seen
            .arrivals()
            .into_iter()
            .collect::<BTreeSet<_>>()
            == held
    });
    server.kill9();
    let leases = outbox_rows(&url);
    assert_eq!(leases.keys().cloned().collect::<BTreeSet<_>>(), held);
    let owners: BTreeSet<_> = leases.values().map(|row| row.lease_owner.clone()).collect();
    assert_eq!(owners.len(), 1, "one worker leased both: {leases:?}");
    for (id, row) in &leases {
        assert_eq!(
            (row.state.as_str(), row.attempts),
            ("pending", 0),
            "{id}: the first node died before recording an attempt"
        );
        assert!(
            row.lease_owner.is_some() && row.lease_until.is_some(),
            "{id}: {row:?}"
        );
    }

    // The second node takes them over once the leases run out, not before,
    // and delivers each once.
    receiver.seen.stall.store(false, Ordering::SeqCst);
    let node = common::spawn_serve_configured(&second, Some(&url), Some(&config_path))
        .expect("the second node starts");
    wait_until("the second node to deliver both", || {
        receiver.seen.delivered_ids() == held
    });
    let arrivals = receiver.seen.arrivals_at();
    for (id, row) in &leases {
        let sent: Vec<i64> = arrivals
            .iter()
            .filter(|(arrived, _)| arrived == id)
            .map(|(_, at)| {
                at.duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_micros() as i64
            })
            .collect();
        assert_eq!(
            sent.len(),
            2,
            "{id}: sent by the first node, then by the second"
        );
        let lease_until = custody_core::Timestamp::parse(row.lease_until.as_deref().unwrap())
            .unwrap()
            .as_micros();
        assert!(
            sent[1] >= lease_until,
            "{id}: the second node sent it {} ms before the first node's lease ran out",
            (lease_until - sent[1]) / 1000
        );
    }
    wait_until("the second node to record both", || {
        outbox_rows(&url)
            .values()
            .all(|row| row.state == "delivered")
    });
    assert_eq!(
        attempts_metric(&server, &node.url),
        held.len() as u64,
        "the second node made exactly the attempts it took over"
    );

    // 2. Both nodes at once, with slow answers so both have deliveries in
    // flight. Which node leases which row here is a race (SKIP LOCKED lets
    // whichever node polls first take every due row), so the split is not
    // asserted; the sum is.
    server.restart();
    receiver.seen.delay_ms.store(100, Ordering::SeqCst);
    let shared: BTreeSet<String> = (0..24)
        .map(|index| owe(&server, &format!("role/shared{index}")))
        .collect();
    let owed: BTreeSet<String> = held.union(&shared).cloned().collect();
    wait_until("every owed notification to arrive", || {
        receiver.seen.delivered_ids() == owed
    });
    wait_until("every delivery to be recorded", || {
        let failed = server.cli_json(&server.admin_token, &["notifications", "--failed"]);
        failed["notifications"].as_array().unwrap().is_empty()
    });
    // Leases (FOR UPDATE SKIP LOCKED) split the work: each notification was
    // accepted once, and sent once but for the two the dead node had sent.
    let accepted = count_by_id(
        receiver
            .seen
            .requests()
            .into_iter()
            .map(|(id, _, _)| id)
            .collect(),
    );
    assert_eq!(accepted, owed.iter().map(|id| (id.clone(), 1)).collect());
    let sent = count_by_id(receiver.seen.arrivals());
    let expected: BTreeMap<String, usize> = owed
        .iter()
        .map(|id| (id.clone(), if held.contains(id) { 2 } else { 1 }))
        .collect();
    assert_eq!(sent, expected);
    // The restarted first node counts from zero; the second node counts the
    // two it took over too.
    let first = attempts_metric(&server, &server.url);
    let second_attempts = attempts_metric(&server, &node.url);
    assert_eq!(first + second_attempts, owed.len() as u64);
    // The ledger holds exactly one attempt per notification: the first, delivered.
    let recorded = count_by_id(
        log_event_ids(&server)
            .into_iter()
            .filter(|event| event["kind"] == "notification_attempted")
            .map(|event| {
                assert_eq!(event["payload"]["outcome"], "delivered", "{event}");
                assert_eq!(event["payload"]["attempt"], 1, "{event}");
                event["payload"]["delivery_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect(),
    );
    assert_eq!(recorded, owed.iter().map(|id| (id.clone(), 1)).collect());
    server.assert_verify_ok();
    drop(node);
}

/// An outbox row as PostgreSQL holds it.
#[derive(Debug)]
struct OutboxRow {
    state: String,
    attempts: i64,
    lease_owner: Option<String>,
    lease_until: Option<String>,
}

/// Every outbox row by delivery ID, read directly from the database (the
/// API does not show leases).
fn outbox_rows(database_url: &str) -> BTreeMap<String, OutboxRow> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::{Connection, Row};
        let mut connection = sqlx::PgConnection::connect(database_url).await.unwrap();
        let rows = sqlx::query(
            "SELECT delivery_id, state, attempts, lease_owner, lease_until FROM outbox",
        )
        .fetch_all(&mut connection)
        .await
        .unwrap();
        rows.into_iter()
            .map(|row| {
                (
                    row.get("delivery_id"),
                    OutboxRow {
                        state: row.get("state"),
                        attempts: row.get("attempts"),
                        lease_owner: row.get("lease_owner"),
                        lease_until: row.get("lease_until"),
                    },
                )
            })
            .collect()
    })
}

/// `custody_notify_attempts_total{channel="hooks"}` from a node's `/metrics`.
fn attempts_metric(server: &Server, url: &str) -> u64 {
    let text = server
        .runtime()
        .block_on(async {
            server
                .client()
                .get(format!("{url}/metrics"))
                .send()
                .await?
                .text()
                .await
        })
        .expect("GET /metrics");
    let name = "custody_notify_attempts_total{channel=\"hooks\"}";
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .map(|value| {
            value
                .trim()
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("{name}: {value}")) as u64
        })
        .unwrap_or(0)
}

#[test]
fn verify_reports_automation_ahead_of_the_reviewer_and_undelivered_escalations() {
    for store in STORES {
        verify_notifications(store);
    }
}

fn verify_notifications(store: TestStore) {
    let reviewers = Receiver::start();
    let pager = Receiver::start();
    pager.seen.down.store(true, Ordering::SeqCst);
    let text = config(
        &[("reviewers", &reviewers.url), ("pager", &pager.url)],
        "reviewers = [\"reviewers\"]\nescalation = [\"pager\"]\n",
        "[[policy.rules]]\nname = \"paged\"\nentitlements = [\"paged-*\"]\n\n[notify.rules.paged]\napprovers = [\"pager\"]\n\n",
    );
    let (server, _) = Server::start_on(store, None, Some(&text));
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let robot = server.principal_with("provisioner", &["--kind", "automation"]);
    let rita = server.principal("rita");

    // Told first: the reviewer hears of the approved change, then automation runs.
    let told = request(&server, &alice, "role/a");
    server.cli_ok(&bob, &["approve", &told]);
    wait_until("the reviewer to be told", || {
        reviewers.seen.requests().iter().any(|(_, _, body)| {
            body["type"] == "dev.custody.change_approved" && body["subject"] == told.as_str()
        })
    });
    wait_until("the notice to be recorded", || {
        attempts(&server, &told)
            .iter()
            .any(|attempt| attempt["payload"]["outcome"] == "delivered")
    });
    server.cli_ok(&robot, &["execute", &told]);
    server.cli_ok(&rita, &["review", &told, "--outcome", "confirmed"]);

    // Not told: the reviewers' receiver is slow and automation runs at once.
    reviewers.seen.delay_ms.store(1500, Ordering::SeqCst);
    let ahead = request(&server, &alice, "role/b");
    server.cli_ok(&bob, &["approve", &ahead]);
    server.cli_ok(&robot, &["execute", &ahead]);
    server.cli_ok(&rita, &["review", &ahead, "--outcome", "confirmed"]);
    // The reviewers' receiver recovers: its notices arrive, after the fact.
    reviewers.seen.delay_ms.store(0, Ordering::SeqCst);

    // The pager is down for good: the approvers' notice of a paged request
    // dies and is escalated, and the escalation notice (to the same pager)
    // dies too. It is not escalated in a loop; verify reports it.
    let paged = request(&server, &alice, "paged-db");
    wait_until("the escalation notice to die", || {
        attempts(&server, &paged)
            .iter()
            .filter(|attempt| attempt["payload"]["outcome"] == "dead")
            .count()
            == 2
    });
    wait_until("the reviewers' notices to be recorded", || {
        let failed = server.cli_json(&server.admin_token, &["notifications", "--failed"]);
        failed["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .all(|entry| entry["channel"] != "reviewers")
    });
    let escalations = server
        .events(&alice, &paged)
        .into_iter()
        .filter(|event| event["kind"] == "escalation_raised")
        .count();
    assert_eq!(
        escalations, 1,
        "a dead escalation notice is not escalated again"
    );
    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let mut found: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|finding| finding["severity"] != "info")
        .map(|finding| {
            (
                finding["code"].as_str().unwrap().to_string(),
                finding["case_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    found.sort();
    let mut expected = vec![
        ("notify.reviewer-not-notified".to_string(), ahead.clone()),
        ("notify.undelivered".to_string(), paged.clone()),
    ];
    expected.sort();
    assert_eq!(found, expected, "{report:#}");
    let mut codes = finding_codes(&report);
    codes.sort();
    assert_eq!(
        codes,
        ["notify.reviewer-not-notified", "notify.undelivered"],
        "{report:#}"
    );
}

#[test]
fn the_owner_hears_before_access_ends_and_operators_see_the_queue() {
    let receiver = Receiver::start();
    let text = config(
        &[("hooks", &receiver.url)],
        "owner = [\"hooks:{principal}\"]\n",
        "",
    );
    // In this process, on a test clock (`common::in_process`): the timer's
    // scans are stepped, not waited for.
    let (server, _) = Server::start_in_process(TestStore::Embedded, Some(&text));
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let case = server
        .cli_ok(
            &alice,
            &[
                "request",
                "--subject",
                "user:alice",
                "--entitlement",
                "oncall-admin",
                "--duration",
                "3h",
            ],
        )
        .trim()
        .to_string();
    server.cli_ok(&bob, &["approve", &case]);
    // Executed two and a half hours ago: the access ends in half an hour, so
    // the hour's notice before the end is due now.
    let executed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 9000;
    let executed = format_unix(executed);
    server.cli_ok(&carol, &["execute", &case, "--occurred-at", &executed]);
    wait_until("the expiry notice", || {
        server
            .events(&alice, &case)
            .iter()
            .any(|event| event["kind"] == "expiry_approaching")
    });
    let events = server.events(&alice, &case);
    let notice = events
        .iter()
        .find(|event| event["kind"] == "expiry_approaching")
        .unwrap();
    assert_eq!(notice["actor"]["principal"], "system");
    assert_eq!(notice["notify"][0]["kind"], "access_expiring");
    assert_eq!(notice["notify"][0]["recipient"], "alice");
    assert!(
        !events.iter().any(|event| event["kind"] == "revocation_due"),
        "the access has not ended yet"
    );
    wait_until("the owner to be told", || {
        receiver.seen.requests().iter().any(|(_, signed, body)| {
            *signed
                && body["type"] == "dev.custody.access_expiring"
                && body["subject"] == case.as_str()
        })
    });
    // Told once, however often the timer runs: 25 more minutes of scans a
    // minute apart on the test clock (a second node's, and the server's
    // own timer meanwhile), up to five minutes before the access ends,
    // add nothing.
    let acted = server.advance(25 * 60);
    assert!(acted.is_empty(), "acted again: {acted:?}");
    let notices = server
        .events(&alice, &case)
        .iter()
        .filter(|event| event["kind"] == "expiry_approaching")
        .count();
    assert_eq!(notices, 1);

    // The queue's health is exported.
    let metrics = server.http("GET", "/metrics", None, &[], common::Body::None);
    for name in [
        "custody_outbox_pending",
        "custody_outbox_oldest_seconds",
        "custody_notify_attempts_total{channel=\"hooks\"}",
    ] {
        assert!(
            metrics.text.contains(name),
            "{name} missing:\n{}",
            metrics.text
        );
    }
    let text = server.cli_ok(&server.admin_token, &["notifications", &case]);
    assert!(text.contains("DELIVERED"), "{text}");
    assert!(
        text.contains("access_expiring to owner via hooks alice"),
        "{text}"
    );
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (civil-from-days, UTC).
fn format_unix(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
