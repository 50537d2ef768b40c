//! The ServiceNow connector end to end: a real `custody serve` receiving
//! the business rules' messages from the fake instance
//! ([`super::fake_servicenow`]) and writing back to its Table API.

use std::time::Duration;

use serde_json::{json, Value};

use super::fake_servicenow::{
    access_fields, glide_time, Instance, Message, User, API_PASSWORD, API_USER, HMAC_KEY,
};
use crate::common::{wait_until, Body, Response, Server, TestStore, STORES};

const CONNECTOR: &str = "servicenow";

fn alice() -> User {
    User::new("62826bf03710200044e0bfc8bcbe5df1", "alice@example.com")
}

fn bob() -> User {
    User::new("46d44a23a9fe19810012d100cca80666", "bob@example.com")
}

fn carol() -> User {
    User::new("5137153cc611227c000bbd1bd8cd2005", "carol@example.com")
}

/// A server with the connector writing back to `instance`, fast retries,
/// and alice (requester), bob (approver) and carol (executor) mapped.
fn start(instance: &Instance) -> Server {
    start_on(TestStore::Embedded, instance)
}

fn start_on(store: TestStore, instance: &Instance) -> Server {
    let config = format!(
        r#"[workflow]
scan_interval_seconds = 1

[notify]
backoff_initial_ms = 100
backoff_max_ms = 400
poll_interval_ms = 50
lease_seconds = 10
max_attempts = 8
case_url = "https://custody.example.com/cases/{{case}}"

[[connectors]]
name = "{CONNECTOR}"
kind = "servicenow"
secret = "{HMAC_KEY}"
instance_url = "{url}"
api_username = "{API_USER}"
api_password = "{API_PASSWORD}"
"#,
        url = instance.url()
    );
    let (server, _) = Server::start_on(store, None, Some(&config));
    for (user, principal) in [(alice(), "alice"), (bob(), "bob"), (carol(), "carol")] {
        server.principal(principal);
        map(&server, &user, principal);
    }
    server
}

fn map(server: &Server, user: &User, principal: &str) {
    server.cli_ok(
        &server.admin_token,
        &["connector", "map", CONNECTOR, &user.sys_id, principal],
    );
}

/// Posts a business rule message as the instance does.
fn post(server: &Server, message: &Message) -> Response {
    post_signed(server, &message.body, &message.signature)
}

fn post_signed(server: &Server, body: &[u8], signature: &str) -> Response {
    server.http(
        "POST",
        &format!("/v1/connectors/{CONNECTOR}/webhook"),
        None,
        &[("x-custody-signature", signature)],
        Body::Raw(body.to_vec(), Some("application/json")),
    )
}

/// The outcomes of an answer, as `(outcome, case_id)`.
fn outcomes(response: &Response) -> Vec<(String, Option<String>)> {
    assert_eq!(response.status, 200, "{}", response.text);
    response.json["outcomes"]
        .as_array()
        .unwrap_or_else(|| panic!("no outcomes: {}", response.text))
        .iter()
        .map(|outcome| {
            (
                outcome["outcome"].as_str().unwrap().to_string(),
                outcome["case_id"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// The kinds of a case's events, without the write-back's bookkeeping.
fn kinds(server: &Server, case: &str) -> Vec<String> {
    server
        .events(&server.admin_token, case)
        .iter()
        .map(|event| event["kind"].as_str().unwrap().to_string())
        .filter(|kind| kind != "notification_attempted")
        .collect()
}

/// The case events a connector wrote, as `(kind, external_id, principal)`.
fn connector_events(server: &Server, case: &str) -> Vec<(String, String, String)> {
    server
        .events(&server.admin_token, case)
        .iter()
        .filter(|event| event["source"] == CONNECTOR)
        .map(|event| {
            assert_eq!(
                event["actor"]["via"],
                format!("connector:{CONNECTOR}"),
                "{event}"
            );
            (
                event["kind"].as_str().unwrap().to_string(),
                event["external_id"].as_str().unwrap().to_string(),
                event["actor"]["principal"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Opens a case from a new request item; returns its sys_id and case ID.
fn open(server: &Server, instance: &Instance) -> (String, String) {
    let (sys_id, _, message) = instance.submit(
        &alice(),
        access_fields("alice", "admins-prod", "on-call rotation"),
    );
    let answer = outcomes(&post(server, &message));
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(answer[0].0, "recorded");
    (sys_id, answer[0].1.clone().unwrap())
}

/// Waits until the item's work notes hold `count` notes; returns them.
fn wait_notes(instance: &Instance, sys_id: &str, count: usize) -> Vec<String> {
    let mut notes = Vec::new();
    wait_until(&format!("{count} work notes on the request item"), || {
        notes = instance.work_notes("sc_req_item", sys_id);
        notes.len() >= count
    });
    notes
}

#[test]
fn a_request_item_is_requested_approved_executed_and_written_back() {
    for store in STORES {
        lifecycle(store);
    }
}

fn lifecycle(store: TestStore) {
    let instance = Instance::start();
    let server = start_on(store, &instance);
    let (sys_id, case) = open(&server, &instance);
    let shown = server.show(&server.admin_token, &case);
    let number = instance.record("sc_req_item", &sys_id)["number"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        shown["view"]["ticket"],
        json!({"system": "servicenow", "key": format!("{number}/{}", sys_id.to_ascii_uppercase())}),
        "{shown}"
    );
    // The case ID goes into correlation_id with the first work note.
    let notes = wait_notes(&instance, &sys_id, 1);
    assert_eq!(
        instance.record("sc_req_item", &sys_id)["correlation_id"],
        case.as_str()
    );
    assert!(
        notes[0].starts_with("[Custody] ") && notes[0].contains(&case),
        "{notes:?}"
    );

    // The approver approves in ServiceNow.
    let decision = instance.decide(&sys_id, &bob(), "approved");
    // The write-back updated the item too, so its update count moved on.
    let count = decision.json()["sys_mod_count"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(count, "2");
    let answer = outcomes(&post(&server, &decision));
    assert_eq!(
        answer
            .iter()
            .map(|(kind, _)| kind.as_str())
            .collect::<Vec<_>>(),
        ["already_recorded", "recorded"]
    );
    assert!(answer
        .iter()
        .all(|(_, bound)| bound.as_deref() == Some(case.as_str())));
    wait_notes(&instance, &sys_id, 2);

    // The fulfiller closes the catalog task.
    let task = instance.add_task(&sys_id);
    let answer = outcomes(&post(
        &server,
        &instance.close_task(&task, &carol(), "3", "added alice to admins-prod"),
    ));
    assert_eq!(answer, [("recorded".to_string(), Some(case.clone()))]);
    let notes = wait_notes(&instance, &sys_id, 3);
    assert!(notes[2].contains("executed"), "{notes:?}");

    assert_eq!(
        kinds(&server, &case),
        ["request_created", "approval_granted", "execution_completed"]
    );
    assert_eq!(
        connector_events(&server, &case),
        [
            (
                "request_created".to_string(),
                format!("{sys_id}:request"),
                "alice".to_string()
            ),
            (
                "approval_granted".to_string(),
                format!("{sys_id}@{count}:approval"),
                "bob".to_string()
            ),
            (
                "execution_completed".to_string(),
                format!("{task}@1:execution"),
                "carol".to_string()
            ),
        ]
    );
    let events: Vec<Value> = server
        .events(&server.admin_token, &case)
        .into_iter()
        .filter(|event| event["source"] == CONNECTOR)
        .collect();
    assert_eq!(
        events[0]["actor"]["auth"],
        json!({"method": "connector", "connector": CONNECTOR, "external_user": alice().sys_id})
    );
    assert_eq!(
        events[2]["payload"]["comment"],
        "added alice to admins-prod"
    );
    // Every Table API call was a PATCH of the item with the case ID.
    let calls = instance.received();
    assert!(calls.len() >= 3, "{calls:?}");
    for call in &calls {
        assert_eq!(
            (call.method.as_str(), call.path.as_str()),
            (
                "PATCH",
                format!("/api/now/table/sc_req_item/{sys_id}").as_str()
            )
        );
        let body: Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(body["correlation_id"], case.as_str());
        assert_eq!(call.headers["x-no-response-body"], "true");
        assert!(call.headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic "));
    }
    server.assert_verify_ok();
}

#[test]
fn wrong_expired_and_replayed_signatures_are_refused_and_record_nothing() {
    let instance = Instance::start();
    let server = start(&instance);
    let (_, _, message) = instance.submit(&alice(), access_fields("alice", "admins-prod", "x"));
    let before = server.log_size();
    let forged = Message::signed(&message.json(), "another-key-entirely-0123456789");
    let stale = message.edited(|value| {
        let ten_minutes_ago = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 600;
        value["sys_updated_on"] = glide_time(ten_minutes_ago).into();
    });
    let cases: Vec<(&[u8], &str, &str)> = vec![
        (&message.body, "", "missing"),
        (&message.body, &forged.signature, "does not match"),
        (&stale.body, &stale.signature, "outside the 300 s window"),
        (b"{}", &message.signature, "does not match"),
    ];
    for (body, signature, expected) in cases {
        let response = if signature.is_empty() {
            server.http(
                "POST",
                &format!("/v1/connectors/{CONNECTOR}/webhook"),
                None,
                &[],
                Body::Raw(body.to_vec(), Some("application/json")),
            )
        } else {
            post_signed(&server, body, signature)
        };
        assert_eq!(response.status, 401, "{expected}: {}", response.text);
        assert!(
            response.text.contains(expected),
            "{expected}: {}",
            response.text
        );
    }
    assert_eq!(
        server.log_size(),
        before,
        "a refused message recorded something"
    );
    // The valid message is accepted once; the same signed request again is a replay.
    assert_eq!(outcomes(&post(&server, &message))[0].0, "recorded");
    let size = server.log_size();
    let replay = post(&server, &message);
    assert_eq!(replay.status, 401, "{}", replay.text);
    assert!(replay.text.contains("replay"), "{}", replay.text);
    assert_eq!(server.log_size(), size);
    // A body over the limit is refused before any MAC.
    let large = vec![b' '; 300 * 1024];
    assert_eq!(post_signed(&server, &large, &message.signature).status, 413);
    let metrics = server.http("GET", "/metrics", None, &[], Body::None).text;
    for reason in ["signature", "stale", "replayed", "too_large"] {
        assert!(
            metrics.contains(&format!(
                "custody_connector_refusals_total{{connector=\"{CONNECTOR}\",reason=\"{reason}\"}}"
            )),
            "{reason}: {metrics}"
        );
    }
}

#[test]
fn an_unmapped_user_is_refused_and_told_so() {
    let instance = Instance::start();
    let server = start(&instance);
    let stranger = User::new("0000000000000000000000000000beef", "mallory@example.com");
    let before = server.case_count();
    let (_, _, message) = instance.submit(&stranger, access_fields("mallory", "admins-prod", "x"));
    let response = post(&server, &message);
    assert_eq!(outcomes(&response), [("unmapped".to_string(), None)]);
    let text = response.json["outcomes"][0]["message"].as_str().unwrap();
    assert!(
        text.contains(&stranger.sys_id) && text.contains("custody connector map"),
        "{text}"
    );
    assert_eq!(server.case_count(), before);
    // A mapped requester's item, approved by an unmapped approver: the
    // approval is refused, the case stays requested.
    let (sys_id, case) = open(&server, &instance);
    let answer = outcomes(&post(
        &server,
        &instance.decide(&sys_id, &stranger, "approved"),
    ));
    assert_eq!(answer[1].0, "unmapped");
    assert_eq!(kinds(&server, &case), ["request_created"]);
}

#[test]
fn messages_delivered_out_of_order_and_twice_record_once() {
    let instance = Instance::start();
    let server = start(&instance);
    let (sys_id, _, insert) = instance.submit(&alice(), access_fields("alice", "admins-prod", "x"));
    let approval = instance.decide(&sys_id, &bob(), "approved");
    // The approval overtakes the insert: it opens the case and approves it.
    let answer = outcomes(&post(&server, &approval));
    assert_eq!(
        answer
            .iter()
            .map(|(kind, _)| kind.as_str())
            .collect::<Vec<_>>(),
        ["recorded", "recorded"]
    );
    let case = answer[0].1.clone().unwrap();
    assert_eq!(answer[1].1.as_deref(), Some(case.as_str()));
    // The insert arrives late: already recorded.
    assert_eq!(
        outcomes(&post(&server, &insert)),
        [("already_recorded".to_string(), Some(case.clone()))]
    );
    // The approval again, as a retry that is not byte for byte the same
    // request (so the replay window does not catch it): the ledger's
    // (source, external ID) holds.
    let spaced = {
        let mut body = approval.body.clone();
        body.push(b'\n');
        body
    };
    let signature = base64_hmac(&spaced);
    let answer = outcomes(&post_signed(&server, &spaced, &signature));
    assert_eq!(
        answer
            .iter()
            .map(|(kind, _)| kind.as_str())
            .collect::<Vec<_>>(),
        ["already_recorded", "already_recorded"]
    );
    assert_eq!(
        kinds(&server, &case),
        ["request_created", "approval_granted"]
    );
    server.assert_verify_ok();

    // A task closed before its approved item reached Custody: 503,
    // nothing recorded; once the approval's message is in (opening the case
    // as it goes), the same signed task message again is let in and
    // recorded.
    let (other, _, _) = instance.submit(&alice(), access_fields("alice", "db-prod", "y"));
    let other_approval = instance.decide(&other, &bob(), "approved");
    let task = instance.add_task(&other);
    let closed = instance.close_task(&task, &carol(), "3", "done");
    let early = post(&server, &closed);
    assert_eq!(early.status, 503, "{}", early.text);
    assert_eq!(
        early.json["outcomes"][0]["outcome"], "not_found",
        "{}",
        early.text
    );
    let opened = outcomes(&post(&server, &other_approval));
    let other_case = opened[0].1.clone().unwrap();
    assert_eq!(
        outcomes(&post(&server, &closed)),
        [("recorded".to_string(), Some(other_case.clone()))]
    );
    assert_eq!(
        kinds(&server, &other_case),
        ["request_created", "approval_granted", "execution_completed"]
    );
    server.assert_verify_ok();
}

fn base64_hmac(body: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(custody_connect::signature::hmac_sha256(
        HMAC_KEY.as_bytes(),
        &[body],
    ))
}

#[test]
fn the_instance_down_during_write_back_is_retried_until_it_answers() {
    let instance = Instance::start();
    instance.outage(3);
    let server = start(&instance);
    let (sys_id, case) = open(&server, &instance);
    let notes = wait_notes(&instance, &sys_id, 1);
    assert_eq!(notes.len(), 1, "one note despite the retries: {notes:?}");
    let statuses: Vec<u16> = instance.received().iter().map(|call| call.status).collect();
    assert_eq!(statuses[..4], [503, 503, 503, 200], "{statuses:?}");
    // Every attempt is on the record.
    let mut attempts = Vec::new();
    wait_until("the delivered attempt to be recorded", || {
        attempts = server
            .events(&server.admin_token, &case)
            .into_iter()
            .filter(|event| {
                event["kind"] == "notification_attempted"
                    && event["payload"]["channel"] == CONNECTOR
            })
            .map(|event| {
                event["payload"]["outcome"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        attempts.iter().any(|outcome| outcome == "delivered")
    });
    assert_eq!(
        attempts[..4],
        ["failed", "failed", "failed", "delivered"],
        "{attempts:?}"
    );
    server.assert_verify_ok();
}

#[test]
fn an_item_edited_after_approval_is_a_ticket_drift_finding() {
    let instance = Instance::start();
    let server = start(&instance);
    let (sys_id, case) = open(&server, &instance);
    outcomes(&post(
        &server,
        &instance.decide(&sys_id, &bob(), "approved"),
    ));
    wait_notes(&instance, &sys_id, 2);
    server.assert_verify_ok();
    let answer = outcomes(&post(
        &server,
        &instance.edit(&sys_id, &carol(), "custody_entitlement", "root-prod"),
    ));
    assert_eq!(
        answer
            .iter()
            .map(|(kind, _)| kind.as_str())
            .collect::<Vec<_>>(),
        ["already_recorded", "recorded"]
    );
    let events = server.events(&server.admin_token, &case);
    let changed = events
        .iter()
        .find(|event| event["kind"] == "ticket_changed")
        .expect("a ticket_changed event");
    assert_eq!(
        changed["payload"]["change"]["entitlement"], "root-prod",
        "{changed}"
    );
    let (output, report) = server.verify_with(&[]);
    assert_ne!(output.status.code(), Some(0), "{report:#}");
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|finding| finding["code"].as_str())
        .collect();
    assert!(codes.contains(&"connector.ticket-drift"), "{report:#}");
    // The edit is not written back to the ticket that reported it.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(instance.work_notes("sc_req_item", &sys_id).len(), 2);
}
