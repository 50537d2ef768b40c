//! The Teams connector end to end: a real `custody serve` receiving
//! outgoing webhook activities, signed as Teams signs them, and answering
//! with the card Teams shows in the thread.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{json, Value};

use super::fake_servicenow::glide_time;
use crate::common::{Body, Response, Server};

const CONNECTOR: &str = "teams";
/// The outgoing webhook's security token, base64 as Teams shows it.
const TOKEN: &str = "q0Z9n3kXvJt6m5yB1cR8eW2aL4sD7fG0hJ3kP6uY9iE=";
const BOB: &str = "6d1c2e3f-4a5b-4c6d-8e7f-90a1b2c3d4e5";
const DAVE: &str = "7e2d3f40-5b6c-4d7e-9f80-a1b2c3d4e5f6";
const ALICE: &str = "8f3e4051-6c7d-4e8f-a091-b2c3d4e5f607";
const CHANNEL: &str = "19:c0ffee00d15ea5e0@thread.tacv2";

struct Teams {
    server: Server,
    alice: String,
}

fn start() -> Teams {
    let config =
        format!("[[connectors]]\nname = \"{CONNECTOR}\"\nkind = \"teams\"\nsecret = \"{TOKEN}\"\n");
    let (server, _) = Server::start_configured(None, Some(&config));
    let alice = server.principal("alice");
    for (external, principal) in [(BOB, "bob"), (DAVE, "dave"), (ALICE, "alice")] {
        if principal != "alice" {
            server.principal(principal);
        }
        server.cli_ok(
            &server.admin_token,
            &["connector", "map", CONNECTOR, external, principal],
        );
    }
    Teams { server, alice }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An activity's timestamp as Teams writes it (seven fractional digits).
fn timestamp(unix: u64) -> String {
    format!("{}.1234567Z", glide_time(unix).replace(' ', "T"))
}

/// The activity an outgoing webhook posts for `text` typed by `sender`.
fn activity(id: &str, sender: &str, text: &str, sent: u64) -> Value {
    json!({
        "type": "message",
        "id": id,
        "timestamp": timestamp(sent),
        "localTimestamp": timestamp(sent).replace('Z', "+00:00"),
        "serviceUrl": "https://smba.trafficmanager.net/emea/",
        "channelId": "msteams",
        "from": {"id": format!("29:{id}"), "name": "Someone", "aadObjectId": sender},
        "conversation": {
            "isGroup": true,
            "id": format!("{CHANNEL};messageid={id}"),
            "name": null,
            "conversationType": "channel",
            "tenantId": "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9"
        },
        "recipient": null,
        "textFormat": "plain",
        "text": format!("<at>Custody</at> {text}\n"),
        "attachments": [{"contentType": "text/html", "content": format!("<div><at>Custody</at> {text}</div>")}],
        "entities": [{"type": "clientInfo", "locale": "en-GB", "country": "GB", "platform": "Web"}],
        "channelData": {
            "teamsChannelId": CHANNEL,
            "teamsTeamId": "19:0ddba11c0ffee@thread.tacv2",
            "channel": {"id": CHANNEL},
            "team": {"id": "19:0ddba11c0ffee@thread.tacv2"},
            "tenant": {"id": "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9"}
        },
        "locale": "en-GB"
    })
}

fn sign(body: &[u8], token: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(token)
        .unwrap();
    format!(
        "HMAC {}",
        base64::engine::general_purpose::STANDARD
            .encode(custody_connect::signature::hmac_sha256(&key, &[body]))
    )
}

fn post_raw(server: &Server, body: &[u8], authorization: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = authorization
        .map(|value| ("authorization", value))
        .into_iter()
        .collect();
    server.http(
        "POST",
        &format!("/v1/connectors/{CONNECTOR}/webhook"),
        None,
        &headers,
        Body::Raw(body.to_vec(), Some("application/json")),
    )
}

/// Posts `text` typed by `sender` now, signed as Teams signs; returns the
/// card's text blocks and facts.
fn say(
    server: &Server,
    id: &str,
    sender: &str,
    text: &str,
) -> (Vec<String>, Vec<(String, String)>) {
    let body = serde_json::to_vec(&activity(id, sender, text, unix_now())).unwrap();
    card(&post_raw(server, &body, Some(&sign(&body, TOKEN))))
}

fn card(response: &Response) -> (Vec<String>, Vec<(String, String)>) {
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.json["type"], "message", "{}", response.text);
    let attachment = &response.json["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let blocks = attachment["content"]["body"].as_array().unwrap();
    let texts = blocks
        .iter()
        .filter_map(|block| block["text"].as_str().map(str::to_string))
        .collect();
    let facts = blocks
        .iter()
        .filter_map(|block| block["facts"].as_array())
        .flatten()
        .map(|fact| {
            (
                fact["title"].as_str().unwrap().to_string(),
                fact["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (texts, facts)
}

fn request(teams: &Teams) -> String {
    teams
        .server
        .cli_ok(
            &teams.alice,
            &[
                "request",
                "--subject",
                "user:alice",
                "--entitlement",
                "admins-prod",
                "--justification",
                "incident 4711",
            ],
        )
        .trim()
        .to_string()
}

fn decisions(server: &Server, case: &str) -> Vec<Value> {
    server
        .events(&server.admin_token, case)
        .into_iter()
        .filter(|event| {
            matches!(
                event["kind"].as_str(),
                Some("approval_granted" | "approval_denied")
            )
        })
        .collect()
}

fn fact<'a>(facts: &'a [(String, String)], title: &str) -> Option<&'a str> {
    facts
        .iter()
        .find(|(name, _)| name == title)
        .map(|(_, value)| value.as_str())
}

#[test]
fn an_approval_typed_in_teams_is_the_approvers_and_the_card_says_so() {
    let teams = start();
    let server = &teams.server;
    let case = request(&teams);
    let sent = unix_now();
    let body = serde_json::to_vec(&activity(
        "1796033707123",
        BOB,
        &format!("approve {case} fine for the incident"),
        sent,
    ))
    .unwrap();
    let (texts, facts) = card(&post_raw(server, &body, Some(&sign(&body, TOKEN))));
    assert_eq!(texts[0], "Recorded.");
    assert_eq!(fact(&facts, "Case"), Some(case.as_str()));
    assert_eq!(fact(&facts, "Recorded"), Some("approval_granted"));
    assert_eq!(fact(&facts, "State"), Some("approved"));
    assert_eq!(fact(&facts, "As"), Some("bob"));

    let events = decisions(server, &case);
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event["kind"], "approval_granted");
    assert_eq!(event["source"], CONNECTOR);
    assert_eq!(event["external_id"], "1796033707123");
    assert_eq!(event["actor"]["principal"], "bob");
    assert_eq!(event["actor"]["via"], "connector:teams");
    assert_eq!(
        event["actor"]["auth"],
        json!({"method": "connector", "connector": CONNECTOR, "external_user": BOB})
    );
    assert_eq!(
        event["occurred_at"],
        format!("{}.123456Z", glide_time(sent).replace(' ', "T"))
    );
    assert_eq!(event["payload"]["comment"], "fine for the incident");
    let chat = &event["payload"]["chat"];
    assert_eq!(chat["channel"], format!("teams:{CHANNEL}"));
    assert_eq!(
        chat["approver"], "bob",
        "the server records the mapped principal as the approver"
    );
    assert!(chat["permalink"].as_str().unwrap().starts_with(
        "https://teams.microsoft.com/l/message/19%3Ac0ffee00d15ea5e0%40thread.tacv2/1796033707123?"
    ));

    // The same message delivered again, not byte for byte (so past the
    // replay window's reach): already decided, nothing appended.
    let mut again = body.clone();
    again.push(b' ');
    let (texts, facts) = card(&post_raw(server, &again, Some(&sign(&again, TOKEN))));
    assert_eq!(texts[0], "Already recorded: nothing new was added.");
    assert_eq!(fact(&facts, "State"), Some("approved"));
    assert_eq!(decisions(server, &case).len(), 1);
    server.assert_verify_ok();
}

#[test]
fn wrong_expired_and_replayed_signatures_are_refused_and_record_nothing() {
    let teams = start();
    let server = &teams.server;
    let case = request(&teams);
    let body =
        serde_json::to_vec(&activity("1", BOB, &format!("approve {case}"), unix_now())).unwrap();
    let stale = serde_json::to_vec(&activity(
        "2",
        BOB,
        &format!("approve {case}"),
        unix_now() - 600,
    ))
    .unwrap();
    let other_token = base64::engine::general_purpose::STANDARD.encode([7_u8; 32]);
    let before = server.log_size();
    let cases: Vec<(&[u8], Option<String>, &str)> = vec![
        (&body, None, "missing"),
        (&body, Some(sign(&body, &other_token)), "does not match"),
        (
            &body,
            Some(sign(&body, TOKEN).replace("HMAC ", "Bearer ")),
            "not `HMAC <signature>`",
        ),
        (
            &stale,
            Some(sign(&stale, TOKEN)),
            "outside the 300 s window",
        ),
    ];
    for (body, authorization, expected) in cases {
        let response = post_raw(server, body, authorization.as_deref());
        assert_eq!(response.status, 401, "{expected}: {}", response.text);
        assert!(
            response.text.contains(expected),
            "{expected}: {}",
            response.text
        );
    }
    assert_eq!(server.log_size(), before);
    let signature = sign(&body, TOKEN);
    assert_eq!(
        card(&post_raw(server, &body, Some(&signature))).0[0],
        "Recorded."
    );
    let size = server.log_size();
    let replay = post_raw(server, &body, Some(&signature));
    assert_eq!(replay.status, 401, "{}", replay.text);
    assert_eq!(server.log_size(), size);
    assert_eq!(decisions(server, &case).len(), 1);
}

#[test]
fn an_unmapped_sender_is_refused_and_told_so() {
    let teams = start();
    let server = &teams.server;
    let case = request(&teams);
    let (texts, _) = say(
        server,
        "11",
        "00000000-0000-4000-8000-00000000beef",
        &format!("approve {case}"),
    );
    assert!(
        texts[0].starts_with("Refused: your Teams account is not mapped"),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|text| text.contains("custody connector map teams")),
        "{texts:?}"
    );
    assert!(decisions(server, &case).is_empty());
}

#[test]
fn two_approvers_at_once_and_a_message_delivered_twice_at_once_record_once_each() {
    let teams = start();
    let server = &teams.server;
    let case = request(&teams);
    let now = unix_now();
    let bobs = serde_json::to_vec(&activity("21", BOB, &format!("approve {case}"), now)).unwrap();
    let daves = serde_json::to_vec(&activity("22", DAVE, &format!("approve {case}"), now)).unwrap();
    // Bob's message a second time, as a redelivery that is not byte for
    // byte the first (so the replay window does not catch it).
    let mut bobs_again = bobs.clone();
    bobs_again.push(b'\n');
    let url = format!("{}/v1/connectors/{CONNECTOR}/webhook", server.url);
    let client = server.client();
    let answers: Vec<Value> = server.runtime().block_on(async {
        let sends = [&bobs, &daves, &bobs_again].map(|body| {
            client
                .post(&url)
                .header("authorization", sign(body, TOKEN))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
        });
        let mut answers = Vec::new();
        for response in futures_util::future::join_all(sends).await {
            let response = response.unwrap();
            assert_eq!(response.status(), 200);
            answers.push(response.json().await.unwrap());
        }
        answers
    });
    let headline = |answer: &Value| {
        answer["attachments"][0]["content"]["body"][0]["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut bob_headlines = vec![headline(&answers[0]), headline(&answers[2])];
    bob_headlines.sort();
    assert_eq!(
        bob_headlines,
        ["Already recorded: nothing new was added.", "Recorded."]
    );
    assert_eq!(headline(&answers[1]), "Recorded.");
    // One approval each: bob's once, dave's once.
    let mut approvers: Vec<String> = decisions(server, &case)
        .iter()
        .map(|event| event["actor"]["principal"].as_str().unwrap().to_string())
        .collect();
    approvers.sort();
    assert_eq!(approvers, ["bob", "dave"]);
    assert_eq!(server.show(&server.admin_token, &case)["state"], "approved");
    server.assert_verify_ok();
}

#[test]
fn denials_refusals_and_bad_commands_are_answered() {
    let teams = start();
    let server = &teams.server;
    // The requester cannot approve her own request, from Teams either.
    let case = request(&teams);
    let (texts, facts) = say(server, "31", ALICE, &format!("approve {case}"));
    assert_eq!(texts[0], "Refused.", "{texts:?}");
    assert_eq!(fact(&facts, "Rule"), Some("sod.requester-cannot-approve"));
    assert!(decisions(server, &case).is_empty());
    // A denial with its reason.
    let (texts, facts) = say(
        server,
        "32",
        BOB,
        &format!("deny {case} not during the freeze"),
    );
    assert_eq!(
        (texts[0].as_str(), fact(&facts, "Recorded")),
        ("Recorded.", Some("approval_denied"))
    );
    let denial = &decisions(server, &case)[0];
    assert_eq!(denial["payload"]["comment"], "not during the freeze");
    // A case that does not exist.
    let (texts, _) = say(
        server,
        "33",
        BOB,
        "approve AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b71",
    );
    assert_eq!(texts[0], "Not found: there is no such case.");
    // Not a command: the usage.
    let (texts, _) = say(server, "34", BOB, "what can you do?");
    assert!(
        texts.iter().any(|text| text.starts_with("Usage: ")),
        "{texts:?}"
    );
    // A malformed case ID: refused in the thread, with the reason.
    let body = serde_json::to_vec(&activity("35", BOB, "approve AC-123", unix_now())).unwrap();
    let (texts, _) = card(&post_raw(server, &body, Some(&sign(&body, TOKEN))));
    assert_eq!(texts[0], "Refused: Custody could not read that command.");
    assert!(texts[1].contains("is not a case ID"), "{texts:?}");
    server.assert_verify_ok();
}
