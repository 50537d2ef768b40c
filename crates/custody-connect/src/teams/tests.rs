//! The Teams connector, IO-free: the HMAC scheme, the window, the commands
//! and the answer card.

use std::str::FromStr;

use base64::Engine;
use custody_core::event::ChatApproval;
use custody_core::id::Sha256Hash;
use custody_core::model::PrincipalId;
use custody_core::{CaseId, Timestamp};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::activity::{plain_text, Command};
use super::*;
use crate::config::ConnectorConfig;
use crate::{Action, Headers, Target};

/// A security token as Teams shows it: 32 random bytes in base64.
const TOKEN: &str = "q0Z9n3kXvJt6m5yB1cR8eW2aL4sD7fG0hJ3kP6uY9iE=";
const CASE: &str = "AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b71";
const SENDER: &str = "6d1c2e3f-4a5b-4c6d-8e7f-90a1b2c3d4e5";
/// 2026-11-30T10:15:07.123Z.
const SENT_UNIX: u64 = 1_796_033_707;

fn connector() -> Teams {
    let config: ConnectorConfig = toml::from_str(&format!(
        "name = \"teams\"\nkind = \"teams\"\nsecret = \"{TOKEN}\"\n"
    ))
    .unwrap();
    let ConnectorConfig::Teams(config) = config else {
        unreachable!()
    };
    Teams::new(&config).unwrap()
}

fn key() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(TOKEN)
        .unwrap()
}

/// A channel message that @mentions the webhook, shaped as the Bot
/// Framework activity an outgoing webhook posts.
fn activity(text: &str) -> Value {
    json!({
        "type": "message",
        "id": "1796033707123",
        "timestamp": "2026-11-30T10:15:07.1230000Z",
        "localTimestamp": "2026-11-30T11:15:07.1230000+01:00",
        "serviceUrl": "https://smba.trafficmanager.net/emea/",
        "channelId": "msteams",
        "from": {
            "id": "29:1kqs7Hy3x0DkPq2pVZr8cNw",
            "name": "Bob Approver",
            "aadObjectId": SENDER
        },
        "conversation": {
            "isGroup": true,
            "id": "19:c0ffee00d15ea5e0@thread.tacv2;messageid=1796033707123",
            "name": null,
            "conversationType": "channel",
            "tenantId": "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9"
        },
        "recipient": null,
        "textFormat": "plain",
        "attachmentLayout": null,
        "membersAdded": [],
        "membersRemoved": [],
        "topicName": null,
        "historyDisclosed": null,
        "locale": "en-GB",
        "text": text,
        "speak": null,
        "inputHint": null,
        "summary": null,
        "suggestedActions": null,
        "attachments": [{
            "contentType": "text/html",
            "contentUrl": null,
            "content": format!("<div><div>{text}</div></div>"),
            "name": null,
            "thumbnailUrl": null
        }],
        "entities": [{
            "type": "clientInfo",
            "locale": "en-GB",
            "country": "GB",
            "platform": "Web"
        }],
        "channelData": {
            "teamsChannelId": "19:c0ffee00d15ea5e0@thread.tacv2",
            "teamsTeamId": "19:0ddba11c0ffee@thread.tacv2",
            "channel": {"id": "19:c0ffee00d15ea5e0@thread.tacv2"},
            "team": {"id": "19:0ddba11c0ffee@thread.tacv2"},
            "tenant": {"id": "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9"}
        },
        "replyToId": null,
        "value": null,
        "name": null,
        "relatesTo": null,
        "action": null
    })
}

fn body(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

fn authorization(body: &[u8]) -> String {
    format!(
        "HMAC {}",
        base64::engine::general_purpose::STANDARD.encode(signature::hmac_sha256(&key(), &[body]))
    )
}

fn request<'a>(headers: &'a Headers, body: &'a [u8]) -> Request<'a> {
    Request {
        endpoint: "webhook",
        headers,
        body,
        tls: true,
    }
}

fn parse_text(text: &str) -> Result<Vec<Inbound>, Refusal> {
    let body = body(&activity(text));
    let headers = Headers::new([("Authorization", authorization(&body))]);
    connector().parse(&request(&headers, &body))
}

fn case() -> CaseId {
    CaseId::from_str(CASE).unwrap()
}

#[test]
fn a_token_that_is_not_base64_or_too_short_is_refused() {
    for (secret, expected) in [
        ("not base64!", "not base64"),
        ("c2hvcnQ=", "decodes to 5 bytes"),
    ] {
        let config = TeamsConfig {
            name: "teams".into(),
            secret: Secret::new(secret),
            window_seconds: 300,
            max_body_bytes: 1024,
        };
        let error = config.build().err().unwrap();
        assert!(
            error.contains(expected) && error.starts_with("connector `teams` (teams)"),
            "{error}"
        );
    }
    assert_eq!(connector().kind(), "teams");
    assert_eq!(connector().ticket_system(), None);
}

#[test]
fn a_valid_signature_inside_the_window_is_accepted_with_a_stable_fingerprint() {
    let body = body(&activity(&format!("<at>Custody</at> approve {CASE}")));
    let headers = Headers::new([("Authorization", authorization(&body))]);
    let signed = connector()
        .verify(&request(&headers, &body), SENT_UNIX + 2)
        .unwrap();
    assert_eq!(signed.signed_at, SENT_UNIX);
    assert_eq!(
        signed.fingerprint,
        signature::hmac_sha256(&key(), &[&body]).to_vec()
    );
    let again = connector()
        .verify(&request(&headers, &body), SENT_UNIX + 3)
        .unwrap();
    assert_eq!(again, signed);
}

#[test]
fn the_key_is_the_decoded_token_not_its_text() {
    let body = body(&activity("approve"));
    let with_text_key = format!(
        "HMAC {}",
        base64::engine::general_purpose::STANDARD
            .encode(signature::hmac_sha256(TOKEN.as_bytes(), &[&body]))
    );
    let headers = Headers::new([("Authorization", with_text_key)]);
    assert!(matches!(
        connector().verify(&request(&headers, &body), SENT_UNIX),
        Err(Refusal::Unauthenticated(_))
    ));
}

#[test]
fn a_wrong_missing_or_doubled_signature_is_refused() {
    let body = body(&activity(&format!("approve {CASE}")));
    let good = authorization(&body);
    let mut tampered = body.clone();
    let position = tampered.iter().position(|byte| *byte == b'7').unwrap();
    tampered[position] = b'8';
    let bare = good.trim_start_matches("HMAC ").to_string();
    let cases: Vec<(Headers, &[u8], &str)> = vec![
        (Headers::default(), &body, "missing"),
        (
            Headers::new([("Authorization", good.as_str())]),
            &tampered,
            "does not match",
        ),
        (
            Headers::new([("Authorization", bare.as_str())]),
            &body,
            "not `HMAC <signature>`",
        ),
        (
            Headers::new([("Authorization", "Bearer abc")]),
            &body,
            "not `HMAC <signature>`",
        ),
        (
            Headers::new([("Authorization", "HMAC ***")]),
            &body,
            "not base64",
        ),
        (
            Headers::new([
                ("Authorization", good.as_str()),
                ("authorization", good.as_str()),
            ]),
            &body,
            "more than once",
        ),
    ];
    for (headers, body, expected) in cases {
        match connector().verify(&request(&headers, body), SENT_UNIX) {
            Err(Refusal::Unauthenticated(text)) => {
                assert!(text.contains(expected), "{expected}: {text}")
            }
            other => panic!("{expected}: {other:?}"),
        }
    }
}

#[test]
fn an_activity_outside_the_window_is_stale() {
    let body = body(&activity(&format!("approve {CASE}")));
    let headers = Headers::new([("Authorization", authorization(&body))]);
    for now in [SENT_UNIX + 301, SENT_UNIX - 301] {
        assert!(matches!(
            connector().verify(&request(&headers, &body), now),
            Err(Refusal::Stale {
                signed_at: SENT_UNIX,
                ..
            })
        ));
    }
    let mut undated = activity("approve");
    undated["timestamp"] = "last tuesday".into();
    let body = self::body(&undated);
    let headers = Headers::new([("Authorization", authorization(&body))]);
    assert!(matches!(
        connector().verify(&request(&headers, &body), SENT_UNIX),
        Err(Refusal::Malformed(_))
    ));
}

#[test]
fn the_size_limit_comes_from_the_configuration() {
    let config: ConnectorConfig = toml::from_str(&format!(
        "name = \"t\"\nkind = \"teams\"\nsecret = \"{TOKEN}\"\nmax_body_bytes = 4096\n"
    ))
    .unwrap();
    assert_eq!(config.max_body_bytes(), 4096);
    assert_eq!(
        crate::limits::check_size(4097, config.max_body_bytes())
            .unwrap_err()
            .status(),
        413
    );
}

/// The chat provenance of an approval typed as `text` in the test channel.
fn chat(text: &str) -> Option<ChatApproval> {
    Some(ChatApproval {
        channel: "teams:19:c0ffee00d15ea5e0@thread.tacv2".into(),
        permalink: "https://teams.microsoft.com/l/message/19%3Ac0ffee00d15ea5e0%40thread.tacv2/1796033707123?tenantId=0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9&parentMessageId=1796033707123".into(),
        message_sha256: Sha256Hash::of(text.as_bytes()),
        approver: PrincipalId::from_str("unmapped").unwrap(),
    })
}

#[test]
fn approve_and_deny_commands_become_actions_on_the_case() {
    let occurred_at = Some(Timestamp::parse("2026-11-30T10:15:07.123Z").unwrap());
    let text = format!("<at>Custody</at> approve {CASE}\n");
    assert_eq!(
        parse_text(&text).unwrap(),
        vec![Inbound {
            external_id: "1796033707123".into(),
            external_user: SENDER.into(),
            occurred_at,
            action: Action::Approve {
                target: Target::Case(case()),
                comment: None,
                chat: chat(&text),
            },
            reply_to: None,
        }]
    );
    assert_eq!(
        parse_text(&format!(
            "<at>Custody</at>&nbsp;Deny {CASE} not during the freeze &amp; not without a ticket"
        ))
        .unwrap()[0]
            .action,
        Action::Deny {
            target: Target::Case(case()),
            comment: Some("not during the freeze & not without a ticket".into()),
        }
    );
    let text = format!("<at>Custody</at> APPROVE {CASE} ok for the incident");
    assert_eq!(
        parse_text(&text).unwrap()[0].action,
        Action::Approve {
            target: Target::Case(case()),
            comment: Some("ok for the incident".into()),
            chat: chat(&text),
        }
    );
}

#[test]
fn the_chat_provenance_falls_back_to_the_conversation() {
    // Without channelData, the channel and tenant come from the
    // conversation; a message that starts no thread has no parent.
    let mut message = activity(&format!("approve {CASE}"));
    message.as_object_mut().unwrap().remove("channelData");
    message["conversation"]["id"] = "19:abc@thread.skype".into();
    let body = body(&message);
    let headers = Headers::new([("Authorization", authorization(&body))]);
    let inbound = connector().parse(&request(&headers, &body)).unwrap();
    let Action::Approve {
        chat: Some(chat), ..
    } = &inbound[0].action
    else {
        panic!("{inbound:?}")
    };
    assert_eq!(chat.channel, "teams:19:abc@thread.skype");
    assert_eq!(
        chat.permalink,
        "https://teams.microsoft.com/l/message/19%3Aabc%40thread.skype/1796033707123?tenantId=0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9"
    );
}

#[test]
fn text_that_is_no_command_is_answered_with_the_usage() {
    for text in [
        "<at>Custody</at> help",
        "<at>Custody</at>",
        "",
        "approved AC-1",
        "<at>approve</at> hello",
    ] {
        assert_eq!(parse_text(text).unwrap(), vec![], "{text}");
    }
    let mut typing = activity("approve");
    typing["type"] = "typing".into();
    let body = body(&typing);
    let headers = Headers::new([("Authorization", authorization(&body))]);
    assert_eq!(
        connector().parse(&request(&headers, &body)).unwrap(),
        vec![]
    );
    let answer = connector().answer(&[]);
    let text = String::from_utf8(answer.body).unwrap();
    assert!(
        text.contains("Usage: `approve AC-… [comment]` or `deny AC-… [reason]`"),
        "{text}"
    );
}

#[test]
fn a_command_with_a_bad_case_id_or_no_sender_is_malformed() {
    let cases: Vec<(String, &str)> = vec![
        ("<at>Custody</at> approve".into(), "needs a case ID"),
        ("<at>Custody</at> deny AC-123".into(), "is not a case ID"),
        (
            format!("<at>Custody</at> approve {CASE} \u{1b}[31m"),
            "control characters",
        ),
    ];
    for (text, expected) in cases {
        match parse_text(&text) {
            Err(Refusal::Malformed(message)) => {
                assert!(message.contains(expected), "{expected}: {message}")
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    let mut anonymous = activity(&format!("approve {CASE}"));
    anonymous["from"] = json!({"id": "29:abc", "name": "Someone"});
    let body = body(&anonymous);
    let headers = Headers::new([("Authorization", authorization(&body))]);
    match connector().parse(&request(&headers, &body)) {
        Err(Refusal::Malformed(message)) => assert!(message.contains("aadObjectId"), "{message}"),
        other => panic!("{other:?}"),
    }
    for bad in [&b"not json"[..], b"{}", b"{\"type\":\"message\"}"] {
        let headers = Headers::new([("Authorization", authorization(bad))]);
        assert!(matches!(
            connector().parse(&request(&headers, bad)),
            Err(Refusal::Malformed(_))
        ));
    }
}

#[test]
fn a_command_that_does_not_parse_is_answered_in_the_thread() {
    let refusal = parse_text("<at>Custody</at> deny AC-123").unwrap_err();
    let answer = connector().refused(&refusal).expect("a card");
    assert_eq!(
        (answer.status, answer.content_type),
        (200, Some("application/json"))
    );
    let reply: Value = serde_json::from_slice(&answer.body).unwrap();
    let texts: Vec<&str> = reply["attachments"][0]["content"]["body"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|block| block["text"].as_str())
        .collect();
    assert_eq!(texts[0], "Refused: Custody could not read that command.");
    assert!(texts[1].contains("`AC-123` is not a case ID"), "{texts:?}");
    assert!(texts[2].starts_with("Usage: "), "{texts:?}");
    // Refusals before the signature is known are answered by status alone.
    assert_eq!(
        connector().refused(&Refusal::Unauthenticated("x".into())),
        None
    );
    assert_eq!(connector().refused(&Refusal::Replayed), None);
}

#[test]
fn markup_is_reduced_to_plain_text() {
    assert_eq!(
        plain_text("<at>Custody</at> approve <b>AC-1</b>"),
        "approve AC-1"
    );
    assert_eq!(
        plain_text("<AT>Custody Bot</AT>&nbsp;deny&nbsp; x"),
        "deny x"
    );
    assert_eq!(plain_text("<at>unterminated approve"), "");
    assert_eq!(
        plain_text("a &lt;b&gt; &quot;c&quot; &#39;d&#39; &amp;amp;"),
        "a <b> \"c\" 'd' &amp;"
    );
    assert_eq!(plain_text("line one\nline\ttwo"), "line one line two");
    assert_eq!(Command::parse("deny   AC-1").unwrap_err().status(), 400);
}

#[test]
fn the_answer_card_states_each_outcome() {
    let outcomes = [
        Outcome {
            case_id: Some(case()),
            kind: OutcomeKind::Recorded {
                event: "approved".into(),
                state: "approved".into(),
            },
            principal: Some("bob".into()),
            message: "bob approved the case".into(),
        },
        Outcome {
            case_id: Some(case()),
            kind: OutcomeKind::AlreadyRecorded {
                state: "approved".into(),
            },
            principal: Some("bob".into()),
            message: String::new(),
        },
        Outcome {
            case_id: Some(case()),
            kind: OutcomeKind::Refused {
                rule: custody_core::code::Code::SodRequesterCannotApprove.to_string(),
            },
            principal: Some("alice".into()),
            message: "the requester may not approve".into(),
        },
        Outcome {
            case_id: Some(case()),
            kind: OutcomeKind::Unmapped,
            principal: None,
            message: String::new(),
        },
    ];
    let answer = connector().answer(&outcomes);
    assert_eq!(
        (answer.status, answer.content_type),
        (200, Some("application/json"))
    );
    let reply: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(reply["type"], "message");
    let attachment = &reply["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(attachment["content"]["type"], "AdaptiveCard");
    let body = attachment["content"]["body"].as_array().unwrap();
    let texts: Vec<&str> = body
        .iter()
        .filter_map(|block| block["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "Recorded.",
            "bob approved the case",
            "Already recorded: nothing new was added.",
            "Refused.",
            "the requester may not approve",
            "Refused: your Teams account is not mapped to a Custody principal. Ask an administrator to run `custody connector map`.",
        ]
    );
    let facts: Vec<Vec<(String, String)>> = body
        .iter()
        .filter(|block| block["type"] == "FactSet")
        .map(|block| {
            block["facts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|fact| {
                    (
                        fact["title"].as_str().unwrap().into(),
                        fact["value"].as_str().unwrap().into(),
                    )
                })
                .collect()
        })
        .collect();
    let pair = |title: &str, value: &str| (title.to_string(), value.to_string());
    assert_eq!(
        facts,
        vec![
            vec![
                pair("Case", CASE),
                pair("Recorded", "approved"),
                pair("State", "approved"),
                pair("As", "bob")
            ],
            vec![
                pair("Case", CASE),
                pair("State", "approved"),
                pair("As", "bob")
            ],
            vec![
                pair("Case", CASE),
                pair(
                    "Rule",
                    custody_core::code::Code::SodRequesterCannotApprove.as_ref()
                ),
                pair("As", "alice")
            ],
            vec![pair("Case", CASE)],
        ]
    );
}

proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let headers = Headers::new([("Authorization", authorization(&body))]);
        let _ = connector().verify(&request(&headers, &body), SENT_UNIX);
        let _ = connector().parse(&request(&headers, &body));
    }

    #[test]
    fn arbitrary_texts_never_panic(text in "\\PC{0,200}", markup in "[<>a-z/&;# ]{0,60}") {
        let _ = parse_text(&text);
        let _ = parse_text(&format!("{markup}{text}"));
        let _ = plain_text(&format!("{text}{markup}"));
    }
}
