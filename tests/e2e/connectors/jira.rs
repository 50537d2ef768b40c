//! The Jira connector end to end: a real `custody serve` with a
//! `[[connectors]]` entry of kind `jira`, webhooks shaped as Atlassian
//! documents them and signed as Jira signs them (HMAC-SHA256 of the body in
//! `X-Hub-Signature: sha256=<hex>`, computed here by an implementation of
//! our own), and the write-back landing in a local fake of the Jira Cloud
//! REST API ([`super::jira_fake`]).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::jira_fake::{FakeJira, EMAIL, TOKEN};
use crate::common::{wait_until, Body, Response, Server, TestStore, STORES};

pub(crate) const SECRET: &str = "jira webhook secret, e2e";
/// Alice's Jira accountId: she asks.
const ALICE: &str = "5b10ac8d82e05b22cc7d4ef5";
/// Bob's: he approves.
pub(crate) const BOB: &str = "712020:2d5c1f3e-8a4b-4c2d-9e6f-0a1b2c3d4e5f";
/// Carol's: she approves too.
const CAROL: &str = "712020:0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9";
/// Someone nobody mapped.
const MALLORY: &str = "712020:ffffffff-0000-4000-8000-000000000000";

/// HMAC-SHA256 (RFC 2104), written here so the test does not share the
/// connector's implementation.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block.iter().map(|byte| byte ^ 0x36).collect();
    let outer: Vec<u8> = block.iter().map(|byte| byte ^ 0x5c).collect();
    let inner_hash = Sha256::new()
        .chain_update(&inner)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&outer)
        .chain_update(inner_hash)
        .finalize()
        .into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub(crate) fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn config(api_url: &str) -> String {
    format!(
        r#"[workflow]
scan_interval_seconds = 1

[notify]
backoff_initial_ms = 100
backoff_max_ms = 400
poll_interval_ms = 50
lease_seconds = 10
max_attempts = 8
case_url = "https://custody.example.com/cases/{{case}}"

{}"#,
        connector_entry(api_url)
    )
}

/// The `[[connectors]]` entry of the Jira connector writing back to
/// `api_url` (last in a configuration: its sub-tables follow it).
pub(crate) fn connector_entry(api_url: &str) -> String {
    format!(
        r#"[[connectors]]
name = "jira"
kind = "jira"
secret = "{SECRET}"
projects = ["SEC"]
approved_status = "Approved"
denied_status = "Rejected"
api_url = "{api_url}"
api_email = "{EMAIL}"
api_token = "{TOKEN}"

[connectors.fields]
subject = "customfield_10040"
entitlement = "customfield_10041"
resource = "customfield_10042"
duration = "customfield_10043"
justification = "description"
case_id = "customfield_10044"

[connectors.fixed]
change = "grant"
"#
    )
}

/// A server with the Jira connector writing back to `fake`, and alice, bob
/// and carol mapped from their accountIds.
fn start(store: TestStore, fake: &FakeJira) -> Server {
    let (server, _) = Server::start_on(store, None, Some(&config(&fake.url)));
    for (principal, account) in [("alice", ALICE), ("bob", BOB), ("carol", CAROL)] {
        server.principal(principal);
        server.cli_ok(
            &server.admin_token,
            &["connector", "map", "jira", account, principal],
        );
    }
    server
}

/// The issue's fields, as Jira sends them: the system fields Custody reads
/// and the custom fields of the mapping.
fn fields(key_number: u32, entitlement: &str, status: &str) -> Value {
    json!({
        "summary": "Read access to the billing database for the audit",
        "issuetype": { "id": "10001", "name": "Access request" },
        "project": {
            "self": "https://example.atlassian.net/rest/api/2/project/10000",
            "id": "10000",
            "key": "SEC",
            "name": "Security",
        },
        "status": { "id": if status == "Approved" { "10001" } else { "10000" }, "name": status },
        "description": format!("Quarterly audit, issue {key_number}."),
        "customfield_10040": "user:alice",
        "customfield_10041": { "self": "https://example.atlassian.net/rest/api/2/customFieldOption/10100", "value": entitlement, "id": "10100" },
        "customfield_10042": "billing-db",
        "customfield_10043": "8h",
        "customfield_10044": null,
    })
}

fn user(account_id: &str) -> Value {
    json!({
        "self": format!("https://example.atlassian.net/rest/api/2/user?accountId={account_id}"),
        "accountId": account_id,
        "displayName": account_id,
        "active": true,
        "accountType": "atlassian",
    })
}

fn issue(key_number: u32, fields: Value) -> Value {
    json!({
        "id": (10_000 + key_number).to_string(),
        "self": format!("https://example.atlassian.net/rest/api/2/issue/{}", 10_000 + key_number),
        "key": format!("SEC-{key_number}"),
        "fields": fields,
    })
}

pub(crate) fn created(key_number: u32, by: &str, at_ms: u64) -> Value {
    json!({
        "timestamp": at_ms,
        "webhookEvent": "jira:issue_created",
        "issue_event_type_name": "issue_created",
        "user": user(by),
        "issue": issue(key_number, fields(key_number, "db-read", "To Do")),
    })
}

fn transitioned(key_number: u32, changelog: u32, to: &str, by: &str, at_ms: u64) -> Value {
    json!({
        "timestamp": at_ms,
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "user": user(by),
        "issue": issue(key_number, fields(key_number, "db-read", to)),
        "changelog": {
            "id": changelog.to_string(),
            "items": [{
                "field": "status", "fieldtype": "jira", "fieldId": "status",
                "from": "10000", "fromString": "To Do",
                "to": if to == "Approved" { "10001" } else { "10002" }, "toString": to,
            }],
        },
    })
}

pub(crate) fn edited(
    key_number: u32,
    changelog: u32,
    entitlement: &str,
    by: &str,
    at_ms: u64,
) -> Value {
    json!({
        "timestamp": at_ms,
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_updated",
        "user": user(by),
        "issue": issue(key_number, fields(key_number, entitlement, "Approved")),
        "changelog": {
            "id": changelog.to_string(),
            "items": [{
                "field": "Entitlement", "fieldtype": "custom", "fieldId": "customfield_10041",
                "from": "10100", "fromString": "db-read",
                "to": "10101", "toString": entitlement,
            }],
        },
    })
}

/// Posts `body` to the connector, signed with `secret`.
fn post_signed(server: &Server, body: &[u8], secret: &str) -> Response {
    let signature = format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), body)));
    post(server, body, Some(&signature))
}

fn post(server: &Server, body: &[u8], signature: Option<&str>) -> Response {
    let mut headers = vec![
        (
            "X-Atlassian-Webhook-Identifier",
            "0c8a7c9e-3c5f-4a1e-9a7b-2f6d1e0b9c11",
        ),
        ("X-Atlassian-Webhook-Flow", "Primary"),
    ];
    if let Some(signature) = signature {
        headers.push(("X-Hub-Signature", signature));
    }
    server.http(
        "POST",
        "/v1/connectors/jira/webhook",
        None,
        &headers,
        Body::Raw(body.to_vec(), Some("application/json")),
    )
}

pub(crate) fn deliver(server: &Server, webhook: &Value) -> Response {
    post_signed(server, &serde_json::to_vec(webhook).unwrap(), SECRET)
}

/// The outcomes of an answer.
fn outcomes(response: &Response) -> Vec<Value> {
    response.json["outcomes"]
        .as_array()
        .unwrap_or_else(|| {
            panic!(
                "no outcomes in the answer {}: {}",
                response.status, response.text
            )
        })
        .clone()
}

fn only_outcome(response: &Response) -> Value {
    let outcomes = outcomes(response);
    assert_eq!(outcomes.len(), 1, "{}", response.text);
    outcomes[0].clone()
}

/// Delivers the creation of SEC-`key_number` by alice; returns the case ID.
fn open(server: &Server, key_number: u32) -> String {
    let answer = deliver(server, &created(key_number, ALICE, now_ms()));
    assert_eq!(answer.status, 200, "{}", answer.text);
    let outcome = only_outcome(&answer);
    assert_eq!(outcome["outcome"], "recorded", "{outcome}");
    assert_eq!(outcome["event"], "request_created", "{outcome}");
    assert_eq!(outcome["principal"], "alice", "{outcome}");
    outcome["case_id"].as_str().unwrap().to_string()
}

fn events_of_kind(server: &Server, case: &str, kind: &str) -> Vec<Value> {
    server
        .events(&server.admin_token, case)
        .into_iter()
        .filter(|event| event["kind"] == kind)
        .collect()
}

/// Waits until the fake holds `count` comments on `key`.
fn wait_comments(fake: &FakeJira, key: &str, count: usize) -> Vec<String> {
    wait_until(&format!("{count} comments on {key}"), || {
        fake.comments(key).len() >= count
    });
    fake.comment_texts(key)
}

#[test]
fn a_jira_issue_opens_a_case_its_transition_approves_and_the_case_is_written_back() {
    for store in STORES {
        lifecycle(store);
    }
}

fn lifecycle(store: TestStore) {
    let fake = FakeJira::start(&["SEC-142"]);
    let server = start(store, &fake);
    let created_at = now_ms();
    let answer = deliver(&server, &created(142, ALICE, created_at));
    assert_eq!(answer.status, 200, "{}", answer.text);
    let outcome = only_outcome(&answer);
    assert_eq!(outcome["outcome"], "recorded", "{outcome}");
    let case = outcome["case_id"].as_str().unwrap().to_string();
    let shown = server.show(&server.admin_token, &case);
    assert_eq!(shown["state"], "open", "{shown}");

    // The request is recorded as what it is: by alice, through the
    // connector, under the issue's external ID, when Jira says.
    let requested = &events_of_kind(&server, &case, "request_created")[0];
    assert_eq!(requested["actor"]["principal"], "alice");
    assert_eq!(requested["actor"]["via"], "connector:jira");
    assert_eq!(requested["actor"]["auth"]["method"], "connector");
    assert_eq!(requested["actor"]["auth"]["external_user"], ALICE);
    assert_eq!(requested["source"], "jira");
    assert_eq!(requested["external_id"], "jira:issue_created:10142");
    let occurred = requested["occurred_at"].as_str().unwrap();
    let expected_second = i64::try_from(created_at / 1000).unwrap();
    let occurred_second = custody_core::Timestamp::parse(occurred)
        .unwrap()
        .as_micros()
        / 1_000_000;
    assert_eq!(occurred_second, expected_second, "{occurred}");
    assert_eq!(
        requested["payload"]["ticket"],
        json!({"system": "jira", "key": "SEC-142"})
    );
    assert_eq!(requested["payload"]["change"]["entitlement"], "db-read");
    assert_eq!(requested["payload"]["change"]["resource"], "billing-db");
    assert_eq!(requested["payload"]["change"]["duration_seconds"], 8 * 3600);

    // The case ID and link go back into the issue.
    let comments = wait_comments(&fake, "SEC-142", 1);
    assert!(
        comments[0].starts_with(&format!("This issue is Custody case {case}.")),
        "{comments:?}"
    );
    let link = format!("https://custody.example.com/cases/{case}");
    let first = &fake.comments("SEC-142")[0]["body"]["content"][0]["content"][1];
    assert_eq!(first["text"], case.as_str());
    assert_eq!(first["marks"][0]["attrs"]["href"], link.as_str());
    assert_eq!(
        fake.property("SEC-142", "custody"),
        Some(json!({ "case_id": case, "state": "open", "url": link }))
    );

    // Bob moves the issue to Approved: his approval.
    let answer = deliver(
        &server,
        &transitioned(142, 20001, "Approved", BOB, now_ms()),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    let outcome = only_outcome(&answer);
    assert_eq!(outcome["outcome"], "recorded", "{outcome}");
    assert_eq!(outcome["event"], "approval_granted", "{outcome}");
    assert_eq!(outcome["principal"], "bob", "{outcome}");
    assert_eq!(outcome["case_id"], case.as_str());
    let approved = &events_of_kind(&server, &case, "approval_granted")[0];
    assert_eq!(approved["actor"]["principal"], "bob");
    assert_eq!(
        approved["external_id"],
        "jira:issue_updated:10142:20001:approve"
    );
    let comments = wait_comments(&fake, "SEC-142", 2);
    assert_eq!(
        comments[1],
        format!("Custody case {case}: approved (by bob; state: approved).")
    );
    wait_until("the property to say approved", || {
        fake.property("SEC-142", "custody").unwrap()["state"] == "approved"
    });

    // Carol executes through the CLI: the issue hears of it too.
    let carol = server.cli_ok(&server.admin_token, &["token", "create", "carol"]);
    server.cli_ok(carol.trim(), &["execute", &case]);
    let comments = wait_comments(&fake, "SEC-142", 3);
    assert!(
        comments[2].starts_with(&format!("Custody case {case}: executed")),
        "{comments:?}"
    );
    assert!(
        comments[2].ends_with("(by carol; state: executed)."),
        "{comments:?}"
    );

    // Every write-back was made with the account's basic authentication
    // and recorded as a delivered attempt.
    assert!(
        fake.calls().iter().all(|call| call.status < 300),
        "{:?}",
        fake.calls()
    );
    let delivered = events_of_kind(&server, &case, "notification_attempted")
        .into_iter()
        .filter(|attempt| attempt["payload"]["channel"] == "jira")
        .filter(|attempt| attempt["payload"]["outcome"] == "delivered")
        .count();
    assert!(delivered >= 3, "{delivered}");
    server.assert_verify_ok();
}

#[test]
fn valid_invalid_expired_and_replayed_signatures() {
    let fake = FakeJira::start(&["SEC-1", "SEC-2"]);
    let server = start(TestStore::Embedded, &fake);
    let body = serde_json::to_vec(&created(1, ALICE, now_ms())).unwrap();
    let before = server.log_size();

    // Wrong secret, missing header, another scheme, a tampered body.
    let wrong = post_signed(&server, &body, "not the secret");
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    assert!(wrong.text.contains("does not match"), "{}", wrong.text);
    // A problem document whose detail is the reason itself.
    assert_eq!(
        wrong.content_type.as_deref(),
        Some("application/problem+json"),
        "{}",
        wrong.text
    );
    let detail = wrong.json["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("the signature does not match"),
        "{detail}"
    );
    // A connector nobody configured.
    let unknown = server.http(
        "POST",
        "/v1/connectors/nobody/webhook",
        None,
        &[],
        Body::Raw(body.clone(), Some("application/json")),
    );
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert!(unknown.json["detail"]
        .as_str()
        .unwrap()
        .contains("`nobody`"));
    let missing = post(&server, &body, None);
    assert_eq!(missing.status, 401, "{}", missing.text);
    let good = format!("sha256={}", hex(&hmac_sha256(SECRET.as_bytes(), &body)));
    let sha1 = post(&server, &body, Some(&good.replace("sha256=", "sha1=")));
    assert_eq!(sha1.status, 401, "{}", sha1.text);
    let mut tampered = body.clone();
    let at = tampered.windows(7).position(|w| w == b"db-read").unwrap();
    tampered[at..at + 7].copy_from_slice(b"db-admn");
    let tampered = post(&server, &tampered, Some(&good));
    assert_eq!(tampered.status, 401, "{}", tampered.text);

    // Signed correctly, but raised longer ago than the window (30 minutes)
    // or ahead of it.
    for skew in [-31 * 60_000_i64, 31 * 60_000] {
        let at = now_ms().checked_add_signed(skew).unwrap();
        let stale = serde_json::to_vec(&created(2, ALICE, at)).unwrap();
        let answer = post_signed(&server, &stale, SECRET);
        assert_eq!(answer.status, 401, "{}", answer.text);
        assert!(answer.text.contains("window"), "{}", answer.text);
    }
    assert_eq!(server.log_size(), before, "a refused webhook was recorded");
    assert_eq!(server.case_count(), 0);

    // Valid: recorded once. The same signed request again is a replay.
    let answer = post_signed(&server, &body, SECRET);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(only_outcome(&answer)["outcome"], "recorded");
    let after = server.log_size();
    let replay = post_signed(&server, &body, SECRET);
    assert_eq!(replay.status, 401, "{}", replay.text);
    assert!(replay.text.contains("replay"), "{}", replay.text);
    assert_eq!(server.log_size(), after);
    assert_eq!(server.case_count(), 1);

    // A body over the limit is refused before its MAC.
    let huge = vec![b' '; 300 * 1024];
    assert_eq!(post_signed(&server, &huge, SECRET).status, 413);

    // The refusals are counted by reason.
    let metrics = server.http("GET", "/metrics", None, &[], Body::None).text;
    for reason in ["signature", "stale", "replayed", "too_large"] {
        assert!(
            metrics
                .lines()
                .any(|line| line.starts_with("custody_connector_refusals_total")
                    && line.contains("connector=\"jira\"")
                    && line.contains(&format!("reason=\"{reason}\""))),
            "no {reason} refusal counted:\n{metrics}"
        );
    }
}

#[test]
fn an_unmapped_jira_user_is_refused_and_told_how_to_be_mapped() {
    let fake = FakeJira::start(&["SEC-3"]);
    let server = start(TestStore::Embedded, &fake);
    let before = server.log_size();
    let answer = deliver(&server, &created(3, MALLORY, now_ms()));
    assert_eq!(answer.status, 200, "{}", answer.text);
    let outcome = only_outcome(&answer);
    assert_eq!(outcome["outcome"], "unmapped", "{outcome}");
    let message = outcome["message"].as_str().unwrap();
    assert!(message.contains(MALLORY), "{message}");
    assert!(message.contains("custody connector map jira"), "{message}");
    assert_eq!(server.case_count(), 0);
    assert_eq!(server.log_size(), before);

    // Nor can an unmapped user approve an existing case.
    let case = open(&server, 3);
    let answer = deliver(
        &server,
        &transitioned(3, 30001, "Approved", MALLORY, now_ms()),
    );
    assert_eq!(
        only_outcome(&answer)["outcome"],
        "unmapped",
        "{}",
        answer.text
    );
    assert_eq!(server.show(&server.admin_token, &case)["state"], "open");
    // The requester cannot approve her own request from Jira either.
    let answer = deliver(
        &server,
        &transitioned(3, 30002, "Approved", ALICE, now_ms()),
    );
    let outcome = only_outcome(&answer);
    assert_eq!(outcome["outcome"], "refused", "{outcome}");
    assert_eq!(outcome["rule"], "sod.requester-cannot-approve", "{outcome}");
    assert_eq!(server.show(&server.admin_token, &case)["state"], "open");
}

#[test]
fn webhooks_delivered_twice_and_out_of_order_record_each_change_once() {
    let fake = FakeJira::start(&["SEC-4"]);
    let mut server = start(TestStore::Embedded, &fake);
    let created_at = now_ms();

    // The approval overtakes the creation: no case yet, 409 so that Jira
    // tries again, nothing recorded.
    let early = transitioned(4, 40001, "Approved", BOB, created_at + 1_000);
    let answer = deliver(&server, &early);
    assert_eq!(answer.status, 409, "{}", answer.text);
    assert_eq!(only_outcome(&answer)["outcome"], "not_found");
    assert_eq!(server.case_count(), 0);

    // The creation arrives and opens the case.
    let creation = created(4, ALICE, created_at);
    let answer = deliver(&server, &creation);
    assert_eq!(
        only_outcome(&answer)["outcome"],
        "recorded",
        "{}",
        answer.text
    );
    let case = only_outcome(&answer)["case_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Jira delivers the approval again after a restart (the in-memory
    // replay guard is empty, the signature is still in the window): it is
    // recorded now, once.
    server.restart_configured();
    let answer = deliver(&server, &early);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        only_outcome(&answer)["outcome"],
        "recorded",
        "{}",
        answer.text
    );
    assert_eq!(server.show(&server.admin_token, &case)["state"], "approved");

    // Both delivered again (another restart): the ledger holds each
    // (source, external ID) once, so nothing is appended.
    server.restart_configured();
    let size = server.log_size();
    for webhook in [&creation, &early] {
        let answer = deliver(&server, webhook);
        assert_eq!(answer.status, 200, "{}", answer.text);
        let outcome = only_outcome(&answer);
        assert_eq!(outcome["outcome"], "already_recorded", "{outcome}");
        assert_eq!(outcome["case_id"], case.as_str());
    }
    assert_eq!(server.log_size(), size);
    assert_eq!(server.case_count(), 1);
    assert_eq!(events_of_kind(&server, &case, "request_created").len(), 1);
    assert_eq!(events_of_kind(&server, &case, "approval_granted").len(), 1);

    server.assert_verify_ok();
}

#[test]
fn two_approvers_at_once_and_one_approver_twice() {
    // Bob's and Carol's transitions racing (two changes of one issue, two
    // deliveries at once): each is recorded once, as that approver's.
    let fake = FakeJira::start(&["SEC-5"]);
    let server = start(TestStore::Embedded, &fake);
    let case = open(&server, 5);
    let at = now_ms();
    let bodies = [
        serde_json::to_vec(&transitioned(5, 50001, "Approved", BOB, at)).unwrap(),
        serde_json::to_vec(&transitioned(5, 50002, "Approved", CAROL, at)).unwrap(),
    ];
    let client = server.client();
    let url = format!("{}/v1/connectors/jira/webhook", server.url);
    let send = |body: &Vec<u8>| {
        let signature = format!("sha256={}", hex(&hmac_sha256(SECRET.as_bytes(), body)));
        let request = client
            .post(&url)
            .header("X-Hub-Signature", signature)
            .header("Content-Type", "application/json")
            .body(body.clone());
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (first, second) = server
        .runtime()
        .block_on(async { tokio::join!(send(&bodies[0]), send(&bodies[1])) });
    let mut approvers = Vec::new();
    for (status, body) in [first, second] {
        assert_eq!(status, 200, "{body}");
        let outcome = &body["outcomes"][0];
        assert_eq!(outcome["outcome"], "recorded", "{body}");
        approvers.push(outcome["principal"].as_str().unwrap().to_string());
    }
    approvers.sort();
    assert_eq!(approvers, ["bob", "carol"]);
    let mut recorded: Vec<String> = events_of_kind(&server, &case, "approval_granted")
        .iter()
        .map(|event| event["actor"]["principal"].as_str().unwrap().to_string())
        .collect();
    recorded.sort();
    assert_eq!(recorded, ["bob", "carol"]);

    // Bob moves the issue out of Approved and back: a new change, but he
    // has approved already, so it does not count twice.
    let answer = deliver(&server, &transitioned(5, 50003, "Approved", BOB, now_ms()));
    assert_eq!(answer.status, 200, "{}", answer.text);
    let outcome = only_outcome(&answer);
    assert_eq!(outcome["outcome"], "refused", "{outcome}");
    assert_eq!(outcome["rule"], "approval.already-approved", "{outcome}");
    assert_eq!(events_of_kind(&server, &case, "approval_granted").len(), 2);
    assert_eq!(server.show(&server.admin_token, &case)["state"], "approved");
    server.assert_verify_ok();
}

#[test]
fn jira_down_during_write_back_is_retried_and_each_attempt_recorded() {
    let fake = FakeJira::start(&["SEC-6"]);
    let server = start(TestStore::Embedded, &fake);
    // The next two calls fail: the first attempt's property, the second
    // attempt's property. The third attempt goes through.
    fake.fail_next(2);
    let case = open(&server, 6);
    let comments = wait_comments(&fake, "SEC-6", 1);
    assert!(comments[0].contains(&case), "{comments:?}");
    wait_until("the attempts to be recorded", || {
        events_of_kind(&server, &case, "notification_attempted")
            .iter()
            .any(|attempt| attempt["payload"]["outcome"] == "delivered")
    });
    let attempts: Vec<Value> = events_of_kind(&server, &case, "notification_attempted")
        .into_iter()
        .map(|attempt| attempt["payload"].clone())
        .filter(|payload| payload["channel"] == "jira")
        .collect();
    let summary: Vec<(u64, String, Option<u64>)> = attempts
        .iter()
        .map(|payload| {
            (
                payload["attempt"].as_u64().unwrap(),
                payload["outcome"].as_str().unwrap().to_string(),
                payload["status"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "failed".to_string(), Some(503)),
            (2, "failed".to_string(), Some(503)),
            (3, "delivered".to_string(), Some(201)),
        ],
        "{attempts:#?}"
    );
    assert!(attempts
        .iter()
        .all(|payload| payload["recipient"] == "SEC-6"));
    // The property went first, so no comment was posted twice.
    assert_eq!(fake.comments("SEC-6").len(), 1);
    let calls: Vec<(String, u16)> = fake
        .calls()
        .iter()
        .map(|call| (call.method.clone(), call.status))
        .collect();
    assert_eq!(
        calls,
        [
            ("PUT".to_string(), 503),
            ("PUT".to_string(), 503),
            ("PUT".to_string(), 201),
            ("POST".to_string(), 201),
        ]
    );
    server.assert_verify_ok();
}

#[test]
fn a_ticket_edited_after_approval_is_a_drift_finding() {
    let fake = FakeJira::start(&["SEC-7"]);
    let server = start(TestStore::Embedded, &fake);
    let case = open(&server, 7);
    let answer = deliver(&server, &transitioned(7, 70001, "Approved", BOB, now_ms()));
    assert_eq!(
        only_outcome(&answer)["event"],
        "approval_granted",
        "{}",
        answer.text
    );
    server.assert_verify_ok();

    // Alice widens the entitlement in Jira after the approval.
    let answer = deliver(&server, &edited(7, 70002, "db-admin", ALICE, now_ms()));
    assert_eq!(answer.status, 200, "{}", answer.text);
    let outcome = only_outcome(&answer);
    assert_eq!(outcome["outcome"], "recorded", "{outcome}");
    assert_eq!(outcome["event"], "ticket_changed", "{outcome}");
    let changed = &events_of_kind(&server, &case, "ticket_changed")[0];
    assert_eq!(changed["payload"]["change"]["entitlement"], "db-admin");
    assert_eq!(
        changed["external_id"],
        "jira:issue_updated:10007:70002:fields"
    );

    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == "connector.ticket-drift")
        .unwrap_or_else(|| panic!("no drift finding: {report:#}"));
    assert_eq!(finding["case_id"], case.as_str());
}

/// A case opened elsewhere (here, by the CLI) gets its Jira issue later:
/// the issue carries the case ID in its field, so it opens no case but is
/// linked to that one (`ticket_linked`), the case ID and state are written
/// into it, and its transition approves that case. A second issue naming
/// the same case is refused (`ticket.already-linked`) and changes nothing.
#[test]
fn an_issue_carrying_a_case_id_is_linked_to_that_case_and_written_back() {
    let fake = FakeJira::start(&["SEC-31", "SEC-32"]);
    let server = start(TestStore::Embedded, &fake);
    let dave = server.principal("dave");
    let case = server
        .cli_ok(
            &dave,
            &[
                "request",
                "--subject",
                "user:alice",
                "--entitlement",
                "db-read",
                "--resource",
                "billing-db",
                "--duration",
                "8h",
            ],
        )
        .trim()
        .to_string();
    // Nobody but the Jira connector binds a Jira ticket: a request naming
    // one (even one not created yet) is refused and opens nothing.
    let claimed = server.cli(
        Some(&server.principal("erin")),
        &[
            "request",
            "--subject",
            "user:erin",
            "--entitlement",
            "db-admin",
            "--ticket",
            "jira:SEC-32",
        ],
    );
    assert!(!claimed.status.success());
    let stderr = String::from_utf8_lossy(&claimed.stderr);
    assert!(stderr.contains("ticket.connector-owned"), "{stderr}");
    assert_eq!(server.case_count(), 1);

    // An issue naming the case but describing another change is not
    // linked: its approver would approve what the issue does not show.
    let mut other_change = created(31, ALICE, now_ms());
    other_change["issue"]["fields"]["customfield_10041"]["value"] = json!("db-admin");
    other_change["issue"]["fields"]["customfield_10044"] = json!(case);
    let refused = only_outcome(&deliver(&server, &other_change));
    assert_eq!(refused["outcome"], "refused", "{refused}");
    assert_eq!(refused["rule"], "connector.ticket-drift", "{refused}");
    assert!(events_of_kind(&server, &case, "ticket_linked").is_empty());

    let mut webhook = created(31, ALICE, now_ms() + 1);
    webhook["issue"]["fields"]["customfield_10044"] = json!(case);
    let answer = deliver(&server, &webhook);
    assert_eq!(answer.status, 200, "{}", answer.text);
    let outcome = only_outcome(&answer);
    assert_eq!(outcome["outcome"], "recorded", "{outcome}");
    assert_eq!(outcome["event"], "ticket_linked", "{outcome}");
    assert_eq!(outcome["case_id"], case.as_str(), "{outcome}");
    assert_eq!(
        server.case_count(),
        1,
        "an issue carrying a case ID opened a case"
    );
    let linked = events_of_kind(&server, &case, "ticket_linked");
    assert_eq!(linked.len(), 1);
    assert_eq!(
        linked[0]["payload"]["ticket"],
        json!({"system": "jira", "key": "SEC-31"}),
        "{}",
        linked[0]
    );
    assert_eq!(linked[0]["source"], "jira");

    // Written back: the case ID is in the issue.
    let comments = wait_comments(&fake, "SEC-31", 1);
    assert!(comments[0].contains(&case), "{comments:?}");
    wait_until("the custody property on SEC-31", || {
        fake.property("SEC-31", "custody")
            .is_some_and(|value| value.to_string().contains(&case))
    });

    // The issue's transition approves the linked case.
    let approved = deliver(&server, &transitioned(31, 501, "Approved", BOB, now_ms()));
    assert_eq!(
        only_outcome(&approved)["outcome"],
        "recorded",
        "{}",
        approved.text
    );
    assert_eq!(server.show(&server.admin_token, &case)["state"], "approved");

    // SEC-31's case-ID field edited to point at another case: the next
    // decision on SEC-31 still decides SEC-31's case, not the one named.
    let other_case = server
        .cli_ok(
            &dave,
            &[
                "request",
                "--subject",
                "user:dave",
                "--entitlement",
                "db-root",
            ],
        )
        .trim()
        .to_string();
    let mut pointed = transitioned(31, 502, "Rejected", CAROL, now_ms());
    pointed["issue"]["fields"]["customfield_10044"] = json!(other_case);
    let answer = deliver(&server, &pointed);
    assert_eq!(
        only_outcome(&answer)["case_id"],
        case.as_str(),
        "{}",
        answer.text
    );
    assert_eq!(
        server.show(&server.admin_token, &other_case)["state"],
        "open"
    );

    // Another issue naming the same case: refused, nothing appended (the
    // log may still grow meanwhile by the write-back attempts in flight,
    // so the case's own steps are compared).
    let steps = |server: &Server| -> Vec<Value> {
        server
            .events(&server.admin_token, &case)
            .into_iter()
            .filter(|event| event["kind"] != "notification_attempted")
            .collect()
    };
    let before = steps(&server);
    let cases = server.case_count();
    let mut other = created(32, ALICE, now_ms());
    other["issue"]["fields"]["customfield_10044"] = json!(case);
    let refused = only_outcome(&deliver(&server, &other));
    assert_eq!(refused["outcome"], "refused", "{refused}");
    assert_eq!(refused["rule"], "ticket.already-linked", "{refused}");
    assert_eq!(steps(&server), before);
    assert_eq!(server.case_count(), cases);
    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
}
