//! The Slack connector end to end: a real `custody serve` with a
//! `[[connectors]]` entry of kind slack, Slack's signed requests (a slash
//! command, button clicks) sent to it as Slack sends them, and the Web API
//! it writes back to played by a local fake (`slack_fake`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::slack_fake::{self, Failure, SlackApi, BOT_TOKEN, SIGNING_SECRET, TEAM_DOMAIN};
use crate::common::{wait_until, Body, Response, Server, TestStore, STORES};

/// The channel approval messages go to.
const CHANNEL: &str = "C0INCIDENT";
/// Slack user IDs.
const ALICE: &str = "U0ALICE";
const BOB: &str = "U0BOB";
const CAROL: &str = "U0CAROL";
const MALLORY: &str = "U0MALLORY";

/// A running server with a Slack connector named `slack` and its fake.
struct Slack {
    server: Server,
    api: SlackApi,
    alice: String,
    carol: String,
}

/// Starts the server with the connector, `policy` (TOML, may be empty),
/// principals alice, bob and carol (carol in group `security`), and their
/// Slack users mapped; mallory's Slack user is mapped to no one.
fn start(policy: &str) -> Slack {
    start_on(TestStore::Embedded, policy)
}

/// [`start`] with the ledger in `store`.
fn start_on(store: TestStore, policy: &str) -> Slack {
    let api = SlackApi::start();
    let config = format!(
        r#"{policy}
[notify]
backoff_initial_ms = 100
backoff_max_ms = 400
poll_interval_ms = 50
max_attempts = 8
case_url = "https://custody.example.com/cases/{{case}}"

[notify.routes]
approvers = ["slack:{CHANNEL}"]

[[connectors]]
name = "slack"
kind = "slack"
secret = "{SIGNING_SECRET}"
bot_token = "{BOT_TOKEN}"
api_url = "{}"
team_id = "{}"
"#,
        api.url,
        slack_fake::TEAM_ID,
    );
    let (server, _) = Server::start_on(store, None, Some(&config));
    let alice = server.principal("alice");
    server.principal("bob");
    let carol = server.principal_with("carol", &["--group", "security"]);
    for (user, principal) in [(ALICE, "alice"), (BOB, "bob"), (CAROL, "carol")] {
        server.cli_ok(
            &server.admin_token,
            &["connector", "map", "slack", user, principal],
        );
    }
    Slack {
        server,
        api,
        alice,
        carol,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A click's `action_ts`: now, with a fraction no other click of this
/// process has (Slack's are unique per click).
fn action_ts() -> String {
    static CLICKS: AtomicU32 = AtomicU32::new(0);
    let micros = CLICKS.fetch_add(1, Ordering::SeqCst) % 1_000_000;
    format!("{}.{micros:06}", now())
}

/// The instant a Slack timestamp names, as the ledger writes it.
fn slack_time(ts: &str) -> String {
    let (seconds, micros) = ts.split_once('.').unwrap();
    let micros: i64 = seconds.parse::<i64>().unwrap() * 1_000_000 + micros.parse::<i64>().unwrap();
    custody_core::Timestamp::from_micros(micros).to_string()
}

impl Slack {
    /// POSTs `body` to the connector's `endpoint` with `headers`.
    fn post(&self, endpoint: &str, headers: &[(String, String)], body: Vec<u8>) -> Response {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        self.server.http(
            "POST",
            &format!("/v1/connectors/slack/{endpoint}"),
            None,
            &headers,
            Body::Raw(body, None),
        )
    }

    /// POSTs `body` signed now, as Slack does.
    fn signed(&self, endpoint: &str, body: Vec<u8>) -> Response {
        let headers = slack_fake::signed_headers(SIGNING_SECRET, now(), &body);
        self.post(endpoint, &headers, body)
    }

    /// `/custody TEXT` typed by `user`; returns the ephemeral answer's text.
    fn command(&self, user: &str, text: &str, trigger: &str) -> String {
        let response = self.signed(
            "commands",
            slack_fake::slash_command(user, CHANNEL, text, trigger),
        );
        ephemeral(&response)
    }

    /// The approval message posted for `case` (waiting for it), as
    /// (ts, message).
    fn approval_message(&self, case: &str) -> (String, slack_fake::Message) {
        let mut found = None;
        wait_until("the approval message to be posted", || {
            found = self
                .api
                .messages_in(CHANNEL)
                .into_iter()
                .find(|(_, message)| {
                    message.text.contains(case) && message.text.starts_with("Approval needed")
                });
            found.is_some()
        });
        found.unwrap()
    }

    /// `user` clicks `action_id` on the message `ts` at `action_ts`, the
    /// message as the fake holds it now; returns the answer.
    fn click(&self, user: &str, ts: &str, action_id: &str, action_ts: &str) -> Response {
        let message = self.api.message(CHANNEL, ts).expect("the message exists");
        self.click_on(user, ts, &message, action_id, action_ts)
    }

    /// `user` clicks `action_id` on `message` as their client showed it
    /// (before an update reached it).
    fn click_on(
        &self,
        user: &str,
        ts: &str,
        message: &slack_fake::Message,
        action_id: &str,
        action_ts: &str,
    ) -> Response {
        let response = self.signed(
            "actions",
            slack_fake::click(user, CHANNEL, ts, message, action_id, action_ts),
        );
        assert_eq!(response.status, 200, "{}", response.text);
        response
    }

    /// The ephemeral messages posted to `user` so far.
    fn ephemerals_to(&self, user: &str) -> Vec<String> {
        self.api
            .calls_of("chat.postEphemeral")
            .into_iter()
            .filter(|call| call.body["user"] == user && call.answered.1)
            .map(|call| call.body["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits for the `count`th ephemeral to `user`, and returns it.
    fn ephemeral_to(&self, user: &str, count: usize) -> String {
        wait_until("the answer to the clicker", || {
            self.ephemerals_to(user).len() >= count
        });
        self.ephemerals_to(user)[count - 1].clone()
    }

    fn events(&self, case: &str) -> Vec<Value> {
        self.server.events(&self.alice, case)
    }

    /// The kinds of the case's events, but for the write-back attempts
    /// (which the outbox records in the background).
    fn steps(&self, case: &str) -> Vec<String> {
        self.events(case)
            .iter()
            .map(|event| event["kind"].as_str().unwrap().to_string())
            .filter(|kind| kind != "notification_attempted")
            .collect()
    }
}

/// The text of an ephemeral answer (200, JSON, `response_type` ephemeral).
fn ephemeral(response: &Response) -> String {
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(
        response.content_type.as_deref(),
        Some("application/json"),
        "{}",
        response.text
    );
    assert_eq!(
        response.json["response_type"], "ephemeral",
        "{}",
        response.text
    );
    response.json["text"].as_str().unwrap().to_string()
}

/// The case ID in an answer (`Opened case *AC-...*; ...`).
fn case_in(text: &str) -> String {
    let start = text
        .find("AC-")
        .unwrap_or_else(|| panic!("no case ID in {text}"));
    text[start..start + 35].to_string()
}

fn approve() -> &'static str {
    custody_connect::slack::interaction::APPROVE_ACTION
}

fn deny() -> &'static str {
    custody_connect::slack::interaction::DENY_ACTION
}

#[test]
fn a_request_typed_and_approved_in_slack_is_one_case_written_back_to_the_message() {
    for store in STORES {
        lifecycle(store);
    }
}

fn lifecycle(store: TestStore) {
    let slack = start_on(store, "");
    let server = &slack.server;

    // Alice requests in Slack; she is told the case ID, and only she.
    let answer = slack.command(
        ALICE,
        "request user:alice admins-prod --justification \"incident 4711: failover\"",
        "111.222.aaa",
    );
    assert!(answer.starts_with("Opened case *AC-"), "{answer}");
    assert!(answer.ends_with("; it is open."), "{answer}");
    let case = case_in(&answer);
    let document = server.show(&slack.alice, &case);
    assert_eq!(document["state"], "open");
    let request = &document["events"][0];
    assert_eq!(request["kind"], "request_created");
    assert_eq!(request["source"], "slack");
    assert_eq!(request["external_id"], "111.222.aaa");
    assert_eq!(request["actor"]["principal"], "alice");
    assert_eq!(request["actor"]["via"], "connector:slack");
    assert_eq!(request["actor"]["auth"]["external_user"], ALICE);
    assert_eq!(
        request["payload"]["justification"],
        "incident 4711: failover"
    );

    // The approval message: the case, the change, the requester, and the
    // buttons carrying the case ID, posted with the bot token.
    let (ts, message) = slack.approval_message(&case);
    assert!(
        message.text.contains("grant admins-prod to user:alice"),
        "{}",
        message.text
    );
    assert!(
        message.text.contains("requested by alice"),
        "{}",
        message.text
    );
    let post = &slack.api.calls_of("chat.postMessage")[0];
    assert!(post.authorized);
    let buttons = message.blocks[2]["elements"].as_array().unwrap();
    assert_eq!(buttons[0]["action_id"], approve());
    assert_eq!(buttons[0]["value"], case.as_str());
    assert_eq!(buttons[1]["action_id"], deny());
    assert_eq!(buttons[1]["value"], case.as_str());

    // Bob clicks Approve: his approval, with the message's provenance.
    let clicked = action_ts();
    let response = slack.click(BOB, &ts, approve(), &clicked);
    assert_eq!(response.status, 200, "{}", response.text);
    let document = server.show(&slack.alice, &case);
    assert_eq!(document["state"], "approved");
    let approval = document["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["kind"] == "approval_granted")
        .expect("an approval is recorded");
    assert_eq!(approval["actor"]["principal"], "bob");
    assert_eq!(approval["actor"]["via"], "connector:slack");
    assert_eq!(approval["source"], "slack");
    assert_eq!(approval["external_id"], format!("{clicked}:{BOB}"));
    assert_eq!(approval["occurred_at"], slack_time(&clicked));
    let chat = &approval["payload"]["chat"];
    assert_eq!(chat["channel"], format!("slack:{CHANNEL}"));
    assert_eq!(
        chat["permalink"],
        format!(
            "https://{TEAM_DOMAIN}.slack.com/archives/{CHANNEL}/p{}",
            ts.replace('.', "")
        )
    );
    assert_eq!(
        chat["message_sha256"],
        custody_core::Sha256Hash::of(message.text.as_bytes()).to_hex()
    );
    assert_eq!(chat["approver"], "bob");

    // Bob is told, and only he; the message says what was recorded and by
    // whom, and its buttons are gone.
    let told = slack.ephemeral_to(BOB, 1);
    assert_eq!(
        told,
        format!("Recorded: approved of case *{case}* as bob; the case is approved.")
    );
    wait_until("the message to be updated", || {
        slack
            .api
            .message(CHANNEL, &ts)
            .is_some_and(|message| message.text.contains("Approved by bob"))
    });
    let updated = slack.api.message(CHANNEL, &ts).unwrap();
    assert!(
        updated.text.contains("The case is approved."),
        "{}",
        updated.text
    );
    assert_eq!(
        updated.blocks.as_array().unwrap().len(),
        1,
        "{}",
        updated.blocks
    );
    let update = slack.api.calls_of("chat.update");
    assert_eq!(update[0].body["ts"], ts.as_str());

    // The execution follows; the trail verifies.
    server.cli_ok(&slack.carol, &["execute", &case]);
    server.assert_verify_ok();
}

#[test]
fn signatures_that_fail_are_refused_with_401_and_record_nothing() {
    let slack = start("");
    let server = &slack.server;
    let body = slack_fake::slash_command(ALICE, CHANNEL, "request user:alice a", "1.1.sig");
    let size = server.log_size();
    let refused = |headers: Vec<(String, String)>, body: Vec<u8>| {
        let response = slack.post("commands", &headers, body);
        assert_eq!(response.status, 401, "{}", response.text);
    };
    // Another secret, a tampered body, a stale timestamp (either side), no
    // signature at all.
    refused(
        slack_fake::signed_headers("not the secret", now(), &body),
        body.clone(),
    );
    let headers = slack_fake::signed_headers(SIGNING_SECRET, now(), &body);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b"+--duration+8h");
    refused(headers.clone(), tampered);
    refused(
        slack_fake::signed_headers(SIGNING_SECRET, now() - 301, &body),
        body.clone(),
    );
    refused(
        slack_fake::signed_headers(SIGNING_SECRET, now() + 400, &body),
        body.clone(),
    );
    refused(headers[..1].to_vec(), body.clone());
    assert_eq!(server.log_size(), size, "nothing is recorded");
    assert_eq!(server.case_count(), 0);

    // The valid request is accepted once; the same signed request again is
    // a replay.
    let accepted = ephemeral(&slack.post("commands", &headers, body.clone()));
    assert!(accepted.starts_with("Opened case"), "{accepted}");
    let case = case_in(&accepted);
    assert_eq!(server.case_count(), 1);
    refused(headers, body.clone());
    // Re-signed later, the same command (the same trigger) appends nothing:
    // (source, external ID) is unique.
    let resigned = slack_fake::signed_headers(SIGNING_SECRET, now() - 2, &body);
    let again = slack.post("commands", &resigned, body);
    assert!(
        ephemeral(&again).starts_with("Already recorded"),
        "{}",
        again.text
    );
    assert_eq!(slack.steps(&case), vec!["request_created"]);
    assert_eq!(server.case_count(), 1);

    // A body over the limit is refused for its size.
    let large = vec![b'a'; 300 * 1024];
    let response = slack.post(
        "commands",
        &slack_fake::signed_headers(SIGNING_SECRET, now(), &large),
        large,
    );
    assert_eq!(response.status, 413);
}

#[test]
fn an_unmapped_user_is_refused_and_told_so() {
    let slack = start("");
    let server = &slack.server;
    // A command: the refusal is the answer.
    let answer = slack.command(MALLORY, "request user:mallory admins", "1.2.unmapped");
    assert!(
        answer.starts_with("Not recorded: U0MALLORY is not mapped"),
        "{answer}"
    );
    assert!(
        answer.contains("custody connector map slack U0MALLORY PRINCIPAL"),
        "{answer}"
    );
    assert_eq!(server.case_count(), 0);

    // A click: Slack shows nothing of the answer, so the refusal goes to
    // the clicker alone with chat.postEphemeral.
    let case = case_in(&slack.command(ALICE, "request user:alice admins", "1.2.request"));
    let (ts, _) = slack.approval_message(&case);
    slack.click(MALLORY, &ts, approve(), &action_ts());
    let told = slack.ephemeral_to(MALLORY, 1);
    assert!(
        told.starts_with("Not recorded: U0MALLORY is not mapped"),
        "{told}"
    );
    let call = slack
        .api
        .calls_of("chat.postEphemeral")
        .into_iter()
        .find(|call| call.body["user"] == MALLORY)
        .unwrap();
    assert_eq!(call.body["channel"], CHANNEL);
    assert_eq!(
        slack.steps(&case),
        vec!["request_created"],
        "nothing is recorded"
    );
    assert_eq!(server.show(&slack.alice, &case)["state"], "open");
}

#[test]
fn a_command_that_does_not_parse_is_answered_with_the_reason_and_the_usage() {
    let slack = start("");
    let answer = slack.command(ALICE, "request alice admins --ticket SEC-1", "1.3.bad");
    assert!(answer.contains("`alice` is not a subject"), "{answer}");
    assert!(answer.contains("Usage: `/custody request"), "{answer}");
    let help = slack.command(ALICE, "help", "1.3.help");
    assert!(help.starts_with("Usage: `/custody request"), "{help}");
    assert_eq!(slack.server.case_count(), 0);
}

#[test]
fn a_second_click_and_a_late_click_answer_with_the_recorded_decision() {
    let slack = start("");
    let server = &slack.server;
    let case = case_in(&slack.command(ALICE, "request user:alice admins", "1.4.request"));
    let (ts, message) = slack.approval_message(&case);
    // Bob clicks Approve twice (a double click: two clicks, two action_ts,
    // both on the message as his client showed it).
    slack.click_on(BOB, &ts, &message, approve(), &action_ts());
    slack.click_on(BOB, &ts, &message, approve(), &action_ts());
    let second = slack.ephemeral_to(BOB, 2);
    assert_eq!(
        second,
        format!("Already recorded: case *{case}* is approved. Nothing was added.")
    );
    // Carol clicks Deny on the message her client still shows with its
    // buttons: the case is decided, so she is told the decision, and her
    // click is not a veto.
    slack.click_on(CAROL, &ts, &message, deny(), &action_ts());
    let late = slack.ephemeral_to(CAROL, 1);
    assert_eq!(
        late,
        format!("Already recorded: case *{case}* is approved. Nothing was added.")
    );
    assert_eq!(server.show(&slack.alice, &case)["state"], "approved");
    assert_eq!(
        slack.steps(&case),
        vec!["request_created", "approval_granted"],
        "one decision is recorded"
    );
    server.assert_verify_ok();
}

#[test]
fn two_approvers_clicking_at_once_each_count_or_are_told_the_decision() {
    // A rule that needs two approvals: the first click keeps the buttons,
    // the second decides.
    let slack = start(
        r#"[[policy.rules]]
name = "two-keys"
entitlements = ["admins-prod"]
approvals = 2
"#,
    );
    let server = &slack.server;
    server.principal("dave");
    server.cli_ok(
        &server.admin_token,
        &["connector", "map", "slack", "U0DAVE", "dave"],
    );
    let case = case_in(&slack.command(ALICE, "request user:alice admins-prod", "1.5.two"));
    let (ts, _) = slack.approval_message(&case);
    // Bob and carol click at the same moment.
    let message = slack.api.message(CHANNEL, &ts).unwrap();
    let bodies: Vec<Vec<u8>> = [(BOB, action_ts()), (CAROL, action_ts())]
        .iter()
        .map(|(user, action_ts)| {
            slack_fake::click(user, CHANNEL, &ts, &message, approve(), action_ts)
        })
        .collect();
    let client = server.client();
    let url = format!("{}/v1/connectors/slack/actions", server.url);
    let statuses = server.runtime().block_on(async {
        let sends = bodies.into_iter().map(|body| {
            let headers = slack_fake::signed_headers(SIGNING_SECRET, now(), &body);
            let mut request = client.post(&url).body(body);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            async move { request.send().await.unwrap().status().as_u16() }
        });
        futures_util::future::join_all(sends).await
    });
    assert_eq!(statuses, vec![200, 200]);
    let document = server.show(&slack.alice, &case);
    assert_eq!(document["state"], "approved");
    let approvers: BTreeSet<String> = document["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"] == "approval_granted")
        .map(|event| event["actor"]["principal"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        approvers,
        BTreeSet::from(["bob".to_string(), "carol".to_string()])
    );
    // Once decided, the message has no buttons.
    wait_until("the message to show the decision", || {
        slack.api.message(CHANNEL, &ts).is_some_and(|message| {
            message.text.contains("The case is approved.")
                && message
                    .blocks
                    .as_array()
                    .is_some_and(|blocks| blocks.len() == 1)
        })
    });

    // With one approval needed, two at once decide once: one approval, the
    // other click told the recorded decision.
    let case = case_in(&slack.command(ALICE, "request user:alice other", "1.5.one"));
    let (ts, message) = slack.approval_message(&case);
    let bodies: Vec<Vec<u8>> = [(BOB, action_ts()), ("U0DAVE", action_ts())]
        .iter()
        .map(|(user, action_ts)| {
            slack_fake::click(user, CHANNEL, &ts, &message, approve(), action_ts)
        })
        .collect();
    let statuses = server.runtime().block_on(async {
        let sends = bodies.into_iter().map(|body| {
            let headers = slack_fake::signed_headers(SIGNING_SECRET, now(), &body);
            let mut request = client.post(&url).body(body);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            async move { request.send().await.unwrap().status().as_u16() }
        });
        futures_util::future::join_all(sends).await
    });
    assert_eq!(statuses, vec![200, 200]);
    // Each click is answered, and the answers agree with the trail: every
    // click recorded is one approval by its own approver; a click that
    // arrived once the case was decided was told so.
    let answers: Vec<String> = [BOB, "U0DAVE"]
        .iter()
        .map(|user| slack.ephemeral_to(user, if *user == BOB { 2 } else { 1 }))
        .collect();
    let recorded = answers
        .iter()
        .filter(|answer| answer.starts_with("Recorded: approved"))
        .count();
    let told = answers
        .iter()
        .filter(|answer| answer.starts_with("Already recorded"))
        .count();
    assert_eq!(recorded + told, 2, "{answers:?}");
    assert!(recorded >= 1, "{answers:?}");
    let approvers: Vec<String> = slack
        .events(&case)
        .iter()
        .filter(|event| event["kind"] == "approval_granted")
        .map(|event| event["actor"]["principal"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(approvers.len(), recorded, "{approvers:?} {answers:?}");
    assert_eq!(
        approvers.iter().collect::<BTreeSet<_>>().len(),
        approvers.len()
    );
    assert_eq!(server.show(&slack.alice, &case)["state"], "approved");
    server.assert_verify_ok();
}

#[test]
fn slack_down_during_write_back_is_retried_and_every_attempt_recorded() {
    let slack = start("");
    let server = &slack.server;
    // chat.postMessage: two 503s, then Slack is back.
    slack.api.fail(
        "chat.postMessage",
        &[Failure::Unavailable, Failure::Unavailable],
    );
    let case = case_in(&slack.command(ALICE, "request user:alice admins", "1.6.down"));
    let (ts, _) = slack.approval_message(&case);
    slack.api.fail("chat.update", &[Failure::OkFalse]);
    let posts = slack.api.calls_of("chat.postMessage");
    assert_eq!(
        posts.iter().map(|call| call.answered).collect::<Vec<_>>(),
        vec![(503, false), (503, false), (200, true)]
    );
    // Every attempt is in the trail: two failures, then the delivery.
    let attempted = || -> Vec<Value> {
        slack
            .events(&case)
            .into_iter()
            .filter(|event| event["kind"] == "notification_attempted")
            .collect()
    };
    wait_until("the third attempt to be recorded", || {
        attempted().len() == 3
    });
    let attempts = attempted();
    assert_eq!(attempts[2]["payload"]["outcome"], "delivered");
    assert_eq!(attempts[0]["payload"]["channel"], "slack");
    assert_eq!(attempts[0]["payload"]["status"], 503);
    // The click's write-back meets `ok: false` once, is retried, and lands.
    slack.click(BOB, &ts, approve(), &action_ts());
    wait_until("the message to be updated after the refusal", || {
        slack
            .api
            .message(CHANNEL, &ts)
            .is_some_and(|message| message.text.contains("Approved by bob"))
    });
    let updates = slack.api.calls_of("chat.update");
    assert_eq!(updates[0].answered, (200, false));
    assert_eq!(updates.last().unwrap().answered, (200, true));
    wait_until("the update's attempts to be recorded", || {
        attempted().len() == 5
    });
    let attempts = attempted();
    let failed = attempts
        .iter()
        .filter(|event| {
            event["payload"]["error"]
                .as_str()
                .is_some_and(|error| error.contains("internal_error"))
        })
        .count();
    assert_eq!(failed, 1, "{attempts:?}");
    server.assert_verify_ok();
}
