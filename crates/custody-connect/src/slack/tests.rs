//! The Slack connector's unit tests. The payloads are written here from
//! Slack's public documentation of each shape (slash command fields,
//! `block_actions` payload, Web API answers), not copied from samples.

use std::str::FromStr;

use proptest::prelude::*;
use serde_json::{json, Value};

use custody_core::model::ChangeKind;
use custody_core::{CaseId, Sha256Hash};

use super::form::encode;
use super::*;
use crate::config::ConnectorConfig;
use crate::{Action, Headers, OutcomeKind, Target};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const TOKEN: &str = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy";
const NOW: u64 = 1_700_000_000;
const CASE: &str = "AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b";

fn config() -> Value {
    json!({
        "name": "slack",
        "kind": "slack",
        "secret": SECRET,
        "bot_token": TOKEN,
        "api_url": "https://slack.example/api",
    })
}

fn connector_from(config: Value) -> Result<Box<dyn Connector>, String> {
    let config: ConnectorConfig =
        serde_json::from_value(config).map_err(|error| error.to_string())?;
    config.build()
}

fn build_error(config: Value) -> String {
    match connector_from(config) {
        Ok(_) => panic!("the settings were accepted"),
        Err(error) => error,
    }
}

fn connector() -> Box<dyn Connector> {
    connector_from(config()).unwrap()
}

/// The headers Slack sends with `body` signed at `timestamp` under `secret`.
fn signed_headers(secret: &str, timestamp: &str, body: &[u8]) -> Headers {
    let tag = crate::signature::hmac_sha256(
        secret.as_bytes(),
        &[b"v0:", timestamp.as_bytes(), b":", body],
    );
    Headers::new([
        (
            "Content-Type",
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("X-Slack-Request-Timestamp", timestamp.to_string()),
        (
            "X-Slack-Signature",
            format!("v0={}", custody_core::hex::encode(&tag)),
        ),
    ])
}

fn request<'a>(endpoint: &'a str, headers: &'a Headers, body: &'a [u8]) -> Request<'a> {
    Request {
        endpoint,
        headers,
        body,
        tls: true,
    }
}

/// A slash command as Slack documents its fields.
fn command_body(text: &str) -> Vec<u8> {
    [
        ("token", "gIkuvaNzQIHg97ATvDxqgjtO"),
        ("team_id", "T0001"),
        ("team_domain", "example"),
        ("enterprise_id", "E0001"),
        ("enterprise_name", "Globular Construct Inc"),
        ("channel_id", "C2147483705"),
        ("channel_name", "access-requests"),
        ("user_id", "U2147483697"),
        ("user_name", "Steve"),
        ("command", "/custody"),
        ("text", text),
        ("api_app_id", "A123456"),
        ("is_enterprise_install", "false"),
        ("response_url", "https://hooks.slack.com/commands/1234/5678"),
        ("trigger_id", "13345224609.738474920.8088930838d88f008e0"),
    ]
    .iter()
    .map(|(name, value)| format!("{name}={}", encode(value)))
    .collect::<Vec<_>>()
    .join("&")
    .into_bytes()
}

/// A `block_actions` payload for a click on `action_id` of the message
/// `message_text`, as Slack documents it.
fn click_payload(action_id: &str, value: &str, user: &str, message_text: &str) -> Value {
    json!({
        "type": "block_actions",
        "user": {"id": user, "username": "bob", "name": "bob", "team_id": "T0001"},
        "api_app_id": "A123456",
        "token": "gIkuvaNzQIHg97ATvDxqgjtO",
        "container": {
            "type": "message",
            "message_ts": "1700000000.000100",
            "channel_id": "C0123ACCESS",
            "is_ephemeral": false
        },
        "trigger_id": "12466734323.1395872398.2b9f3b2e4d7a1c0f",
        "team": {"id": "T0001", "domain": "acme"},
        "enterprise": null,
        "is_enterprise_install": false,
        "channel": {"id": "C0123ACCESS", "name": "access-requests"},
        "message": {
            "type": "message",
            "subtype": "bot_message",
            "text": message_text,
            "ts": "1700000000.000100",
            "bot_id": "B0001",
            "blocks": []
        },
        "state": {"values": {}},
        "response_url": "https://hooks.slack.com/actions/T0001/1234/abcd",
        "actions": [{
            "action_id": action_id,
            "block_id": "custody-0123456789abcdef",
            "text": {"type": "plain_text", "text": "Approve", "emoji": true},
            "value": value,
            "style": "primary",
            "type": "button",
            "action_ts": "1700000012.345678"
        }]
    })
}

fn actions_body(payload: &Value) -> Vec<u8> {
    format!("payload={}", encode(&payload.to_string())).into_bytes()
}

fn parse(endpoint: &str, body: &[u8]) -> Result<Vec<Inbound>, Refusal> {
    let headers = signed_headers(SECRET, &NOW.to_string(), body);
    connector().parse(&request(endpoint, &headers, body))
}

fn malformed(result: Result<Vec<Inbound>, Refusal>) -> String {
    match result {
        Err(Refusal::Malformed(message)) => message,
        other => panic!("expected a malformed refusal, got {other:?}"),
    }
}

fn update(recipient: &str, event: &str, state: &str) -> Update {
    Update {
        case_id: CaseId::from_str(CASE).unwrap(),
        case_url: Some(format!("https://custody.example/cases/{CASE}")),
        recipient: recipient.to_string(),
        event: event.to_string(),
        state: state.to_string(),
        actor: "bob".to_string(),
        summary:
            "requested grant admins-prod to user:alice (ticket jira:SEC-1): db <down> & burning"
                .to_string(),
        first: true,
    }
}

// --- signatures ---

#[test]
fn a_valid_signature_is_accepted_and_its_fingerprint_is_the_signature() {
    let connector = connector();
    let body = command_body("request user:alice admins");
    let headers = signed_headers(SECRET, "1700000000", &body);
    let signed = connector
        .verify(&request("commands", &headers, &body), NOW + 299)
        .unwrap();
    assert_eq!(signed.signed_at, 1_700_000_000);
    let header = headers.get("x-slack-signature").unwrap();
    assert_eq!(
        custody_core::hex::encode(&signed.fingerprint),
        header.strip_prefix("v0=").unwrap()
    );
    // Stable: the same request gives the same fingerprint (what the replay
    // guard remembers), and the guard refuses it the second time.
    let again = connector
        .verify(&request("commands", &headers, &body), NOW)
        .unwrap();
    assert_eq!(again, signed);
    let mut guard = crate::replay::ReplayGuard::new(300, 100);
    guard.admit(&signed.fingerprint, NOW).unwrap();
    assert_eq!(guard.admit(&again.fingerprint, NOW), Err(Refusal::Replayed));
    // Upper-case hex is the same signature.
    let upper = Headers::new([
        ("X-Slack-Request-Timestamp", "1700000000".to_string()),
        (
            "X-Slack-Signature",
            format!("v0={}", header[3..].to_ascii_uppercase()),
        ),
    ]);
    assert_eq!(
        connector
            .verify(&request("commands", &upper, &body), NOW)
            .unwrap()
            .fingerprint,
        signed.fingerprint
    );
}

#[test]
fn an_invalid_signature_is_refused() {
    let connector = connector();
    let body = command_body("request user:alice admins");
    let unauthenticated = |headers: &Headers, body: &[u8]| {
        let refusal = connector
            .verify(&request("commands", headers, body), NOW)
            .unwrap_err();
        assert_eq!(refusal.status(), 401, "{refusal}");
        assert!(
            matches!(refusal, Refusal::Unauthenticated(_)),
            "{refusal:?}"
        );
        refusal.to_string()
    };
    // Another secret.
    unauthenticated(
        &signed_headers("another secret", "1700000000", &body),
        &body,
    );
    // The body changed after signing.
    let headers = signed_headers(SECRET, "1700000000", &body);
    let mut tampered = body.clone();
    tampered[0] ^= 1;
    assert!(unauthenticated(&headers, &tampered).contains("does not match"));
    // The timestamp changed after signing (it is signed too).
    let tag = headers.get("x-slack-signature").unwrap().to_string();
    let moved = Headers::new([
        ("X-Slack-Request-Timestamp", "1700000001".to_string()),
        ("X-Slack-Signature", tag.clone()),
    ]);
    unauthenticated(&moved, &body);
    // Missing headers, another version, not hex, short, sent twice.
    let missing_signature = Headers::new([("X-Slack-Request-Timestamp", "1700000000")]);
    assert!(
        unauthenticated(&missing_signature, &body).contains("X-Slack-Signature header is missing")
    );
    let missing_timestamp = Headers::new([("X-Slack-Signature", tag.as_str())]);
    assert!(unauthenticated(&missing_timestamp, &body)
        .contains("X-Slack-Request-Timestamp header is missing"));
    for signature in [
        tag.replace("v0=", "v1="),
        tag.replace("v0=", ""),
        format!("v0={}", "zz".repeat(32)),
        tag[..tag.len() - 2].to_string(),
    ] {
        let headers = Headers::new([
            ("X-Slack-Request-Timestamp", "1700000000".to_string()),
            ("X-Slack-Signature", signature),
        ]);
        unauthenticated(&headers, &body);
    }
    let twice = Headers::new([
        ("X-Slack-Request-Timestamp", "1700000000"),
        ("X-Slack-Signature", tag.as_str()),
        ("x-slack-signature", tag.as_str()),
    ]);
    assert!(unauthenticated(&twice, &body).contains("more than once"));
    let bad_time = signed_headers(SECRET, "17e8", &body);
    assert!(unauthenticated(&bad_time, &body).contains("Unix seconds"));
}

#[test]
fn a_timestamp_more_than_five_minutes_away_is_refused_either_side() {
    let connector = connector();
    let body = command_body("request user:alice admins");
    for (signed_at, now) in [(NOW, NOW + 301), (NOW + 301, NOW), (NOW - 86_400, NOW)] {
        let headers = signed_headers(SECRET, &signed_at.to_string(), &body);
        let refusal = connector
            .verify(&request("commands", &headers, &body), now)
            .unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Stale {
                signed_at,
                skew_seconds: signed_at.abs_diff(now),
                window_seconds: 300
            }
        );
        assert_eq!(refusal.status(), 401);
    }
    // The edges are inside.
    for (signed_at, now) in [(NOW, NOW + 300), (NOW + 300, NOW)] {
        let headers = signed_headers(SECRET, &signed_at.to_string(), &body);
        connector
            .verify(&request("commands", &headers, &body), now)
            .unwrap();
    }
    // A narrower window is honoured.
    let mut narrow = config();
    narrow["window_seconds"] = json!(60);
    let headers = signed_headers(SECRET, &NOW.to_string(), &body);
    assert!(matches!(
        connector_from(narrow)
            .unwrap()
            .verify(&request("commands", &headers, &body), NOW + 61),
        Err(Refusal::Stale { .. })
    ));
}

#[test]
fn the_size_is_checked_before_the_signature() {
    let mut small = config();
    small["max_body_bytes"] = json!(64);
    let connector = connector_from(small).unwrap();
    let body = command_body("request user:alice admins");
    // Even a correctly signed body over the limit is refused for its size,
    // and so is one with a wrong signature: no MAC is computed for either.
    for headers in [
        signed_headers(SECRET, "1700000000", &body),
        signed_headers("wrong", "1700000000", &body),
        Headers::default(),
    ] {
        let refusal = connector
            .verify(&request("commands", &headers, &body), NOW)
            .unwrap_err();
        assert_eq!(
            refusal,
            Refusal::TooLarge {
                size: body.len(),
                limit: 64
            }
        );
        assert_eq!(refusal.status(), 413);
    }
}

// --- the slash command ---

#[test]
fn a_slash_command_opens_a_case() {
    let inbound = parse(
        "commands",
        &command_body(
            "request user:alice admins-prod --ticket jira:SEC-1 --justification \"incident 4711\"",
        ),
    )
    .unwrap();
    assert_eq!(inbound.len(), 1);
    let inbound = &inbound[0];
    assert_eq!(
        inbound.external_id,
        "13345224609.738474920.8088930838d88f008e0"
    );
    assert_eq!(inbound.external_user, "U2147483697");
    assert_eq!(
        inbound.occurred_at,
        Some(custody_core::Timestamp::from_micros(1_700_000_000_000_000))
    );
    assert_eq!(inbound.reply_to, None);
    match &inbound.action {
        Action::Request {
            change,
            justification,
            ticket,
            case,
        } => {
            assert_eq!(change.subject().to_string(), "user:alice");
            assert_eq!(change.entitlement(), "admins-prod");
            assert_eq!(change.kind(), ChangeKind::Grant);
            assert_eq!(justification.as_deref(), Some("incident 4711"));
            assert_eq!(ticket.as_ref().unwrap().to_string(), "jira:SEC-1");
            assert_eq!(*case, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bad_slash_command_is_refused_with_what_is_wrong_and_the_usage() {
    let message = malformed(parse("commands", &command_body("request alice admins")));
    assert!(message.contains("`alice` is not a subject"), "{message}");
    assert!(message.contains("Usage:"), "{message}");
    // The refusal is shown to the person as a 200 ephemeral message, since
    // Slack shows nothing else; signature refusals stay 401s.
    let connector = connector();
    let answer = connector
        .refused(&Refusal::Malformed(message.clone()))
        .unwrap();
    assert_eq!(answer.status, 200);
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(body["response_type"], "ephemeral");
    assert!(body["text"].as_str().unwrap().contains("is not a subject"));
    for refusal in [
        Refusal::Unauthenticated("x".into()),
        Refusal::Replayed,
        Refusal::TooLarge { size: 2, limit: 1 },
        Refusal::Stale {
            signed_at: 1,
            skew_seconds: 1000,
            window_seconds: 300,
        },
    ] {
        assert_eq!(connector.refused(&refusal), None, "{refusal:?}");
    }
    // Help answers the usage.
    assert_eq!(
        malformed(parse("commands", &command_body("help"))),
        command::USAGE
    );
}

#[test]
fn a_malformed_command_body_is_refused() {
    for (body, expected) in [
        (
            b"user_id=U1&text=request+user%3Aa+b&trigger_id=1.2".to_vec(),
            "no `command`",
        ),
        (
            b"command=%2Fcustody&text=request+user%3Aa+b&trigger_id=1.2".to_vec(),
            "no `user_id`",
        ),
        (
            b"command=%2Fcustody&user_id=U1&text=request+user%3Aa+b".to_vec(),
            "no `trigger_id`",
        ),
        (
            b"command=%2Fcustody&user_id=U1&trigger_id=1.2".to_vec(),
            "no `text`",
        ),
        (
            b"command=%2Fother&user_id=U1&text=x&trigger_id=1.2".to_vec(),
            "answers the slash command `/custody`",
        ),
        (
            b"command=%2Fcustody&user_id=U%3C1%3E&text=x&trigger_id=1.2".to_vec(),
            "not a Slack ID",
        ),
        (
            b"command=%2Fcustody&user_id=U1&text=x&trigger_id=a+b".to_vec(),
            "trigger_id",
        ),
        (
            b"command=%2Fcustody&command=%2Fcustody".to_vec(),
            "more than once",
        ),
        (b"command=%ZZ".to_vec(), "hexadecimal"),
        (b"text=%FF%FE".to_vec(), "UTF-8"),
    ] {
        let message = malformed(parse("commands", &body));
        assert!(
            message.contains(expected),
            "{}: {message}",
            String::from_utf8_lossy(&body)
        );
    }
    // JSON is not what Slack sends.
    let body = command_body("request user:a b");
    let mut headers = signed_headers(SECRET, "1700000000", &body);
    headers = Headers::new([
        ("Content-Type", "application/json".to_string()),
        (
            "X-Slack-Request-Timestamp",
            headers
                .get("x-slack-request-timestamp")
                .unwrap()
                .to_string(),
        ),
        (
            "X-Slack-Signature",
            headers.get("x-slack-signature").unwrap().to_string(),
        ),
    ]);
    assert!(
        malformed(connector().parse(&request("commands", &headers, &body)))
            .contains("application/json")
    );
    // An endpoint Slack does not have.
    assert!(malformed(parse("events", &body)).contains("not an endpoint"));
}

#[test]
fn a_configured_workspace_refuses_another() {
    let mut only = config();
    only["team_id"] = json!("T0002");
    let connector = connector_from(only).unwrap();
    let body = command_body("request user:a b");
    let headers = signed_headers(SECRET, "1700000000", &body);
    assert!(malformed(connector.parse(&request("commands", &headers, &body))).contains("`T0001`"));
    let body = actions_body(&click_payload(
        super::interaction::APPROVE_ACTION,
        CASE,
        "U1",
        "x",
    ));
    let headers = signed_headers(SECRET, "1700000000", &body);
    assert!(malformed(connector.parse(&request("actions", &headers, &body))).contains("`T0001`"));
    // The right workspace passes.
    let mut right = config();
    right["team_id"] = json!("T0001");
    let connector = connector_from(right).unwrap();
    assert_eq!(
        connector
            .parse(&request("actions", &headers, &body))
            .unwrap()
            .len(),
        1
    );
}

// --- the buttons ---

#[test]
fn an_approve_click_is_an_approval_with_chat_provenance() {
    let text = "Approval needed for case AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b";
    let payload = click_payload(super::interaction::APPROVE_ACTION, CASE, "U0BOB", text);
    let inbound = parse("actions", &actions_body(&payload)).unwrap();
    assert_eq!(inbound.len(), 1);
    let inbound = &inbound[0];
    assert_eq!(inbound.external_id, "1700000012.345678:U0BOB");
    assert_eq!(inbound.external_user, "U0BOB");
    assert_eq!(
        inbound.occurred_at,
        Some(custody_core::Timestamp::from_micros(1_700_000_012_345_678))
    );
    assert_eq!(
        inbound.reply_to.as_deref(),
        Some("C0123ACCESS/1700000000.000100")
    );
    match &inbound.action {
        Action::Approve {
            target,
            comment,
            chat: Some(chat),
        } => {
            assert_eq!(*target, Target::Case(CaseId::from_str(CASE).unwrap()));
            assert_eq!(*comment, None);
            assert_eq!(chat.channel, "slack:C0123ACCESS");
            assert_eq!(
                chat.permalink,
                "https://acme.slack.com/archives/C0123ACCESS/p1700000000000100"
            );
            assert_eq!(chat.message_sha256, Sha256Hash::of(text.as_bytes()));
            // The connector cannot know the mapping: the server puts the
            // mapped principal here.
            assert_eq!(
                chat.approver.as_str(),
                super::interaction::APPROVER_PLACEHOLDER
            );
        }
        other => panic!("{other:?}"),
    }
    // A configured workspace URL is the permalink's base.
    let mut with_url = config();
    with_url["workspace_url"] = json!("https://acme-corp.enterprise.slack.com/");
    let body = actions_body(&payload);
    let headers = signed_headers(SECRET, "1700000000", &body);
    let inbound = connector_from(with_url)
        .unwrap()
        .parse(&request("actions", &headers, &body))
        .unwrap();
    match &inbound[0].action {
        Action::Approve {
            chat: Some(chat), ..
        } => assert_eq!(
            chat.permalink,
            "https://acme-corp.enterprise.slack.com/archives/C0123ACCESS/p1700000000000100"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_deny_click_is_a_denial_and_each_click_has_its_own_id() {
    let mut payload = click_payload(super::interaction::DENY_ACTION, CASE, "U0CAROL", "text");
    let first = parse("actions", &actions_body(&payload)).unwrap();
    assert_eq!(
        first[0].action,
        Action::Deny {
            target: Target::Case(CaseId::from_str(CASE).unwrap()),
            comment: None
        }
    );
    payload["actions"][0]["action_ts"] = json!("1700000013.000001");
    let second = parse("actions", &actions_body(&payload)).unwrap();
    assert_ne!(first[0].external_id, second[0].external_id);
    // The same instant by another user is another click too.
    payload["user"]["id"] = json!("U0DAVE");
    let third = parse("actions", &actions_body(&payload)).unwrap();
    assert_ne!(third[0].external_id, second[0].external_id);
}

#[test]
fn other_interactions_are_acknowledged_and_ignored() {
    // Another app button, a view submission, a shortcut: not for Custody.
    let other_button = click_payload("open_case", "https://x", "U1", "text");
    assert_eq!(
        parse("actions", &actions_body(&other_button)).unwrap(),
        Vec::new()
    );
    for kind in [
        "view_submission",
        "message_action",
        "shortcut",
        "view_closed",
    ] {
        let payload = json!({"type": kind, "user": {"id": "U1"}, "view": {"id": "V1"}});
        assert_eq!(
            parse("actions", &actions_body(&payload)).unwrap(),
            Vec::new(),
            "{kind}"
        );
    }
}

#[test]
fn a_malformed_interaction_is_refused() {
    let approve = || click_payload(super::interaction::APPROVE_ACTION, CASE, "U1", "text");
    let mut cases: Vec<(Vec<u8>, &str)> = vec![
        (b"payload=not+json".to_vec(), "not JSON"),
        (b"nothing=here".to_vec(), "no `payload`"),
        (actions_body(&json!({"user": {"id": "U1"}})), "no `type`"),
        (
            actions_body(&json!({"type": "block_actions", "actions": "many"})),
            "documented shape",
        ),
    ];
    let mut no_value = approve();
    no_value["actions"][0]
        .as_object_mut()
        .unwrap()
        .remove("value");
    cases.push((actions_body(&no_value), "no `value`"));
    let mut not_a_case = approve();
    not_a_case["actions"][0]["value"] = json!("AC-1; drop table");
    cases.push((actions_body(&not_a_case), "not a case ID"));
    let mut no_text = approve();
    no_text["message"].as_object_mut().unwrap().remove("text");
    cases.push((actions_body(&no_text), "no `text`"));
    let mut no_user = approve();
    no_user.as_object_mut().unwrap().remove("user");
    cases.push((actions_body(&no_user), "no `user.id`"));
    let mut bad_channel = approve();
    bad_channel["container"]["channel_id"] = json!("C1/../x");
    cases.push((actions_body(&bad_channel), "not a Slack ID"));
    let mut bad_ts = approve();
    bad_ts["actions"][0]["action_ts"] = json!("soon");
    cases.push((actions_body(&bad_ts), "not a Slack timestamp"));
    let mut no_ts = approve();
    no_ts["container"]
        .as_object_mut()
        .unwrap()
        .remove("message_ts");
    no_ts["message"].as_object_mut().unwrap().remove("ts");
    cases.push((actions_body(&no_ts), "no `container.message_ts`"));
    let mut in_a_view = approve();
    in_a_view["container"]["type"] = json!("view");
    cases.push((actions_body(&in_a_view), "came from a `view`"));
    let mut no_domain = approve();
    no_domain["team"] = Value::Null;
    cases.push((actions_body(&no_domain), "workspace_url"));
    let mut odd_domain = approve();
    odd_domain["team"]["domain"] = json!("evil.example/x?");
    cases.push((actions_body(&odd_domain), "not a workspace domain"));
    for (body, expected) in cases {
        let message = malformed(parse("actions", &body));
        assert!(
            message.contains(expected),
            "{}: {message}",
            String::from_utf8_lossy(&body)
        );
    }
}

// --- answers ---

fn outcome(kind: OutcomeKind, message: &str) -> Outcome {
    Outcome {
        case_id: Some(CaseId::from_str(CASE).unwrap()),
        kind,
        principal: Some("bob".into()),
        message: message.into(),
    }
}

fn answer_text(answer: &Answer) -> String {
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, Some("application/json"));
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(body["response_type"], "ephemeral");
    body["text"].as_str().unwrap().to_string()
}

#[test]
fn the_answer_says_what_was_recorded_or_why_not() {
    let connector = connector();
    let text = |kind, message| answer_text(&connector.answer(&[outcome(kind, message)]));
    assert_eq!(
        text(
            OutcomeKind::Recorded {
                event: "requested".into(),
                state: "open".into()
            },
            ""
        ),
        format!("Opened case *{CASE}*; it is open.")
    );
    assert_eq!(
        text(
            OutcomeKind::Recorded {
                event: "approved".into(),
                state: "approved".into()
            },
            ""
        ),
        format!("Recorded: approved of case *{CASE}* as bob; the case is approved.")
    );
    assert_eq!(
        text(
            OutcomeKind::AlreadyRecorded {
                state: "denied".into()
            },
            ""
        ),
        format!("Already recorded: case *{CASE}* is denied. Nothing was added.")
    );
    // The server's message carries the rule and its hint; it is escaped
    // for Slack.
    assert_eq!(
        text(
            OutcomeKind::Refused {
                rule: custody_core::code::Code::SodRequesterCannotApprove.to_string()
            },
            "you requested this change <!channel> [a rule] Hint: another approver must approve it."
        ),
        "Not recorded: you requested this change &lt;!channel&gt; [a rule] Hint: another approver must approve it."
    );
    assert_eq!(
        text(
            OutcomeKind::Unmapped,
            "U0EVE is not mapped to a Custody principal, so this action was not recorded; ask an administrator to run `custody connector map slack U0EVE PRINCIPAL`"
        ),
        "Not recorded: U0EVE is not mapped to a Custody principal, so this action was not recorded; ask an administrator to run `custody connector map slack U0EVE PRINCIPAL`"
    );
    assert_eq!(
        text(OutcomeKind::NotFound, "case AC-1 does not exist"),
        "Not recorded: case AC-1 does not exist"
    );
    assert_eq!(
        text(OutcomeKind::Ignored, "ticket jira:X-1 is bound to no case"),
        "Nothing to record: ticket jira:X-1 is bound to no case"
    );
    // One line per outcome.
    assert_eq!(
        answer_text(&connector.answer(&[
            outcome(
                OutcomeKind::AlreadyRecorded {
                    state: "approved".into()
                },
                ""
            ),
            outcome(OutcomeKind::Ignored, ""),
        ])),
        format!(
            "Already recorded: case *{CASE}* is approved. Nothing was added.\nNothing to record."
        )
    );
    assert_eq!(text(OutcomeKind::Ignored, ""), "Nothing to record.");
    assert_eq!(answer_text(&connector.answer(&[])), "Nothing to record.");
}

#[test]
fn the_buttons_decide_only_open_cases() {
    // A click once the case is decided is answered with the decision by
    // the server, not taken as a veto or an extra approval.
    assert!(connector().decisions_on_open_cases_only());
}

#[test]
fn a_click_is_answered_to_the_clicker_with_chat_post_ephemeral() {
    let connector = connector();
    let body = actions_body(&click_payload(
        super::interaction::APPROVE_ACTION,
        CASE,
        "U0EVE",
        "t",
    ));
    let headers = signed_headers(SECRET, "1700000000", &body);
    let calls = connector.follow_up(
        &request("actions", &headers, &body),
        &[outcome(
            OutcomeKind::Unmapped,
            "U0EVE is not mapped to a Custody principal, so this action was not recorded",
        )],
    );
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.url, "https://slack.example/api/chat.postEphemeral");
    assert_eq!(
        call.headers,
        vec![
            ("Authorization".to_string(), format!("Bearer {TOKEN}")),
            (
                "Content-Type".to_string(),
                "application/json; charset=utf-8".to_string()
            ),
        ]
    );
    let sent: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(sent["channel"], "C0123ACCESS");
    assert_eq!(sent["user"], "U0EVE");
    let text = sent["text"].as_str().unwrap();
    assert_eq!(
        text,
        "Not recorded: U0EVE is not mapped to a Custody principal, so this action was not recorded"
    );
    // A slash command's answer is shown already; no follow-up.
    let body = command_body("request user:a b");
    assert!(connector
        .follow_up(
            &request("commands", &headers, &body),
            &[outcome(OutcomeKind::Unmapped, "")]
        )
        .is_empty());
    // Nor for what is not a Custody click.
    let body = actions_body(&click_payload("other", CASE, "U0EVE", "t"));
    assert!(connector
        .follow_up(&request("actions", &headers, &body), &[])
        .is_empty());
}

// --- write-back ---

fn sent(call: &Call) -> Value {
    serde_json::from_slice(&call.body).unwrap()
}

#[test]
fn an_approval_notice_to_a_channel_posts_a_message_with_the_buttons() {
    let calls = connector().write_back(&update("C0123ACCESS", "requested", "open"));
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.url, "https://slack.example/api/chat.postMessage");
    assert_eq!(
        call.headers,
        vec![
            ("Authorization".to_string(), format!("Bearer {TOKEN}")),
            (
                "Content-Type".to_string(),
                "application/json; charset=utf-8".to_string()
            ),
        ]
    );
    let body = sent(call);
    assert_eq!(body["channel"], "C0123ACCESS");
    let escaped = "requested grant admins-prod to user:alice (ticket jira:SEC-1): db &lt;down&gt; &amp; burning";
    assert_eq!(
        body["text"],
        format!("Approval needed for case {CASE}: {escaped} (requested by bob)")
    );
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(
        blocks[0],
        json!({"type": "header", "text": {"type": "plain_text", "text": "Approval needed"}})
    );
    assert_eq!(
        blocks[1]["text"]["text"],
        format!("*Case:* <https://custody.example/cases/{CASE}|{CASE}>\n*Request:* {escaped}\n*Requested by:* bob\n*State:* open")
    );
    let buttons = &blocks[2];
    assert_eq!(buttons["type"], "actions");
    assert!(buttons["block_id"]
        .as_str()
        .unwrap()
        .starts_with("custody-"));
    let elements = buttons["elements"].as_array().unwrap();
    assert_eq!(elements.len(), 2);
    for (element, (action, label, style)) in elements.iter().zip([
        (super::interaction::APPROVE_ACTION, "Approve", "primary"),
        (super::interaction::DENY_ACTION, "Deny", "danger"),
    ]) {
        assert_eq!(
            *element,
            json!({
                "type": "button",
                "action_id": action,
                "text": {"type": "plain_text", "text": label},
                "style": style,
                "value": CASE,
            })
        );
    }
}

#[test]
fn the_posted_message_round_trips_through_a_click() {
    // The text Slack returns in the click is the text posted: its SHA-256 is
    // the approval's message hash, and the button's value is the case.
    let body = sent(&connector().write_back(&update("C0123ACCESS", "requested", "open"))[0]);
    let text = body["text"].as_str().unwrap();
    let value = body["blocks"][2]["elements"][0]["value"].as_str().unwrap();
    let action = body["blocks"][2]["elements"][0]["action_id"]
        .as_str()
        .unwrap();
    let inbound = parse(
        "actions",
        &actions_body(&click_payload(action, value, "U0BOB", text)),
    )
    .unwrap();
    match &inbound[0].action {
        Action::Approve {
            target: Target::Case(case),
            chat: Some(chat),
            ..
        } => {
            assert_eq!(case.to_string(), CASE);
            assert_eq!(chat.message_sha256, Sha256Hash::of(text.as_bytes()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_clicked_message_is_updated_with_what_was_recorded_and_by_whom() {
    let connector = connector();
    let mut approved = update("C0123ACCESS/1700000000.000100", "approved", "approved");
    approved.summary = "approved in chat for bob (slack:C0123ACCESS, https://acme.slack.com/archives/C0123ACCESS/p1700000000000100)".into();
    let calls = connector.write_back(&approved);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].url, "https://slack.example/api/chat.update");
    let body = sent(&calls[0]);
    assert_eq!(body["channel"], "C0123ACCESS");
    assert_eq!(body["ts"], "1700000000.000100");
    assert_eq!(
        body["text"],
        format!(
            "Case {CASE}: Approved by bob: {}. The case is approved.",
            approved.summary
        )
    );
    let blocks = body["blocks"].as_array().unwrap();
    // Decided: the buttons are gone.
    assert_eq!(blocks.len(), 1);
    assert_eq!(
        blocks[0]["text"]["text"],
        format!(
            "*Approved* by bob\n{}\n*Case:* <https://custody.example/cases/{CASE}|{CASE}> · *State:* approved",
            approved.summary
        )
    );
    // Still open (a rule that needs two approvals): the buttons stay, under
    // a new block ID.
    let first = connector.write_back(&update("C0123ACCESS/1700000000.000100", "approved", "open"));
    let blocks = sent(&first[0])["blocks"].as_array().unwrap().clone();
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[1]["elements"][0]["value"], CASE);
    let posted = sent(&connector.write_back(&update("C0123ACCESS", "requested", "open"))[0]);
    assert_ne!(blocks[1]["block_id"], posted["blocks"][2]["block_id"]);
    // The event kind's own name reads the same.
    let denied = connector.write_back(&update(
        "C0123ACCESS/1700000000.000100",
        "approval_denied",
        "denied",
    ));
    assert!(sent(&denied[0])["text"]
        .as_str()
        .unwrap()
        .contains(": Denied by bob"));
}

#[test]
fn other_notices_to_a_channel_carry_no_buttons() {
    let calls = connector().write_back(&update("C0123ACCESS", "executed", "executed"));
    let body = sent(&calls[0]);
    assert_eq!(calls[0].url, "https://slack.example/api/chat.postMessage");
    assert_eq!(body["blocks"].as_array().unwrap().len(), 1);
    assert!(body["text"].as_str().unwrap().contains("Executed by bob"));
    // Without a case URL the case is named, not linked.
    let mut unlinked = update("C0123ACCESS", "requested", "open");
    unlinked.case_url = None;
    let body = sent(&connector().write_back(&unlinked)[0]);
    assert!(body["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap()
        .starts_with(&format!("*Case:* {CASE}\n")));
}

#[test]
fn a_recipient_of_neither_shape_writes_nothing() {
    for recipient in [
        "",
        "#access",
        "C0123/",
        "C0123/now",
        "C 1",
        "C0123/1.2/3",
        "jira:SEC-1",
    ] {
        assert!(
            connector()
                .write_back(&update(recipient, "requested", "open"))
                .is_empty(),
            "{recipient}"
        );
    }
}

#[test]
fn slack_refusals_inside_a_200_are_failed_attempts() {
    let connector = connector();
    let call = connector
        .write_back(&update("C0123ACCESS", "requested", "open"))
        .remove(0);
    let accepted = |status: u16, body: &[u8]| connector.accepted(&call, status, body);
    accepted(200, br#"{"ok": true, "channel": "C1", "ts": "1.2"}"#).unwrap();
    assert_eq!(
        accepted(200, br#"{"ok": false, "error": "channel_not_found"}"#),
        Err("Slack refused the call: channel_not_found".to_string())
    );
    assert!(accepted(200, b"<html>").unwrap_err().contains("not JSON"));
    assert!(accepted(200, b"{}").unwrap_err().contains("no `ok`"));
    assert_eq!(
        accepted(503, br#"{"ok": true}"#),
        Err("Slack answered HTTP 503".to_string())
    );
    assert!(accepted(429, b"").is_err());
}

// --- settings ---

#[test]
fn settings_are_checked() {
    connector_from(config()).unwrap();
    let mut loopback = config();
    loopback["api_url"] = json!("http://127.0.0.1:8080/api/");
    connector_from(loopback).unwrap();
    for (key, value, expected) in [
        ("secret", json!(""), "secret is empty"),
        ("bot_token", json!("xoxp-user-token"), "not a bot token"),
        ("bot_token", json!(SECRET), "not a bot token"),
        ("api_url", json!("http://slack.example/api"), "plain http"),
        ("api_url", json!("ftp://slack.example"), "not an https URL"),
        (
            "api_url",
            json!("https://slack.example/api?x=1"),
            "not a plain URL",
        ),
        (
            "workspace_url",
            json!("https://acme slack.com"),
            "not a plain URL",
        ),
        ("command", json!("custody"), "not a slash command"),
        ("team_id", json!("T-1"), "not a Slack team ID"),
        ("window_seconds", json!(301), "at most 300"),
        ("window_seconds", json!(0), "accepts none"),
        ("max_body_bytes", json!(0), "accepts no request"),
        ("bot_tokn", json!(TOKEN), "unknown field"),
    ] {
        let mut broken = config();
        broken[key] = value;
        let error = build_error(broken);
        assert!(error.contains(expected), "{key}: {error}");
    }
    let mut missing = config();
    missing.as_object_mut().unwrap().remove("bot_token");
    assert!(build_error(missing).contains("bot_token"));
    // The secrets never show in a debug print.
    let config: ConnectorConfig = serde_json::from_value(config()).unwrap();
    let printed = format!("{config:?}");
    assert!(
        !printed.contains(SECRET) && !printed.contains(TOKEN),
        "{printed}"
    );
}

// --- never a panic ---

proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048), signed in any::<bool>()) {
        let connector = connector();
        let headers = if signed { signed_headers(SECRET, "1700000000", &body) } else { Headers::default() };
        for endpoint in ["commands", "actions", "other"] {
            let request = request(endpoint, &headers, &body);
            let _ = connector.verify(&request, NOW);
            let _ = connector.parse(&request);
            let _ = connector.follow_up(&request, &[]);
        }
        let call = crate::Call { method: "POST", url: String::new(), headers: Vec::new(), body: Vec::new() };
        let _ = connector.accepted(&call, 200, &body);
    }

    #[test]
    fn arbitrary_command_texts_never_panic(text in "\\PC{0,200}") {
        let _ = parse("commands", &command_body(&text));
        let _ = parse("commands", &command_body(&format!("request {text}")));
    }

    #[test]
    fn arbitrary_payload_fields_never_panic(
        user in "\\PC{0,20}", value in "\\PC{0,60}", ts in "[0-9.]{0,24}", text in "\\PC{0,40}", domain in "\\PC{0,20}",
    ) {
        let mut payload = click_payload(super::interaction::APPROVE_ACTION, &value, &user, &text);
        payload["actions"][0]["action_ts"] = json!(ts);
        payload["container"]["message_ts"] = json!(ts);
        payload["team"]["domain"] = json!(domain);
        let _ = parse("actions", &actions_body(&payload));
    }

    #[test]
    fn arbitrary_updates_never_panic(recipient in "\\PC{0,40}", event in "\\PC{0,20}", state in "\\PC{0,20}", summary in "\\PC{0,300}") {
        let mut update = update(&recipient, &event, &state);
        update.summary = summary;
        for call in connector().write_back(&update) {
            let body: Value = serde_json::from_slice(&call.body).unwrap();
            prop_assert!(body["text"].is_string());
        }
    }
}
