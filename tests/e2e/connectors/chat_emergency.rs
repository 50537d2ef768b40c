//! The chat-emergency story, end to end across two connectors: during an
//! incident an on-call engineer asks for access in Slack, naming the Jira
//! ticket; an approver clicks Approve in the channel; the change is
//! executed; the next day the Jira ticket catches up (its creation webhook
//! arrives late, then it is transitioned to Approved). One case, one ID
//! everywhere: in the Slack message and in the ticket, whose comments and
//! property carry the case ID written back by the ledger.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::jira_fake::{FakeJira, EMAIL, TOKEN};
use super::slack_fake::{self, SlackApi, BOT_TOKEN, SIGNING_SECRET};
use crate::common::{wait_until, Body, Response, Server};

const JIRA_SECRET: &str = "jira webhook secret, chat emergency";
const CHANNEL: &str = "C0INCIDENT";
/// Slack user IDs.
const SLACK_ALICE: &str = "U0ALICE";
const SLACK_BOB: &str = "U0BOB";
/// Jira accountIds.
const JIRA_ALICE: &str = "5b10ac8d82e05b22cc7d4ef5";
const JIRA_BOB: &str = "712020:2d5c1f3e-8a4b-4c2d-9e6f-0a1b2c3d4e5f";

fn config(slack_api: &str, jira_api: &str) -> String {
    format!(
        r#"[notify]
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
api_url = "{slack_api}"

[[connectors]]
name = "jira"
kind = "jira"
secret = "{JIRA_SECRET}"
projects = ["SEC"]
approved_status = "Approved"
denied_status = "Rejected"
api_url = "{jira_api}"
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

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn now_ms() -> u64 {
    now() * 1000
}

/// SEC-7 as Jira sends it in a webhook: the fields of the mapping describe
/// the same change the engineer typed in Slack.
fn issue(status: &str) -> Value {
    json!({
        "id": "10007",
        "self": "https://example.atlassian.net/rest/api/2/issue/10007",
        "key": "SEC-7",
        "fields": {
            "summary": "Emergency admin access for the failover",
            "issuetype": {"id": "10001", "name": "Access request"},
            "project": {
                "self": "https://example.atlassian.net/rest/api/2/project/10000",
                "id": "10000",
                "key": "SEC",
                "name": "Security",
            },
            "status": {"id": if status == "Approved" { "10001" } else { "10000" }, "name": status},
            "description": "incident 4711: database failover",
            "customfield_10040": "user:alice",
            "customfield_10041": {
                "self": "https://example.atlassian.net/rest/api/2/customFieldOption/10100",
                "value": "admins-prod",
                "id": "10100",
            },
            "customfield_10042": "prod-db",
            "customfield_10043": "8h",
            "customfield_10044": null,
        },
    })
}

fn jira_user(account_id: &str) -> Value {
    json!({
        "self": format!("https://example.atlassian.net/rest/api/2/user?accountId={account_id}"),
        "accountId": account_id,
        "displayName": account_id,
        "active": true,
        "accountType": "atlassian",
    })
}

/// Delivers a Jira webhook, signed as Jira signs it.
fn deliver_jira(server: &Server, webhook: &Value) -> Response {
    let body = serde_json::to_vec(webhook).unwrap();
    let tag = custody_connect::signature::hmac_sha256(JIRA_SECRET.as_bytes(), &[&body]);
    let signature = format!("sha256={}", custody_core::hex::encode(&tag));
    server.http(
        "POST",
        "/v1/connectors/jira/webhook",
        None,
        &[
            (
                "X-Atlassian-Webhook-Identifier",
                "9f0e7b1c-5d2a-4c3b-8e1f-0a9b8c7d6e5f",
            ),
            ("X-Atlassian-Webhook-Flow", "Primary"),
            ("X-Hub-Signature", &signature),
        ],
        Body::Raw(body, Some("application/json")),
    )
}

fn only_outcome(response: &Response) -> Value {
    let outcomes = response.json["outcomes"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: {}", response.status, response.text));
    assert_eq!(outcomes.len(), 1, "{}", response.text);
    outcomes[0].clone()
}

fn posted_to_slack(server: &Server, endpoint: &str, body: Vec<u8>) -> Response {
    let headers = slack_fake::signed_headers(SIGNING_SECRET, now(), &body);
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    server.http(
        "POST",
        &format!("/v1/connectors/slack/{endpoint}"),
        None,
        &headers,
        Body::Raw(body, None),
    )
}

#[test]
fn approved_in_slack_during_an_incident_executed_and_formalised_in_jira_the_next_day() {
    let jira = FakeJira::start(&["SEC-7"]);
    let slack = SlackApi::start();
    let (server, _) = Server::start_configured(None, Some(&config(&slack.url, &jira.url)));
    let alice = server.principal("alice");
    server.principal("bob");
    let carol = server.principal("carol");
    for (connector, user, principal) in [
        ("slack", SLACK_ALICE, "alice"),
        ("slack", SLACK_BOB, "bob"),
        ("jira", JIRA_ALICE, "alice"),
        ("jira", JIRA_BOB, "bob"),
    ] {
        server.cli_ok(
            &server.admin_token,
            &["connector", "map", connector, user, principal],
        );
    }

    // 03:12, the incident: alice asks in Slack. She names no Jira ticket:
    // Jira's tickets are the Jira connector's to bind (a ticket named in
    // chat could be claimed before it exists).
    let answer = posted_to_slack(
        &server,
        "commands",
        slack_fake::slash_command(
            SLACK_ALICE,
            CHANNEL,
            "request user:alice admins-prod --resource prod-db --duration 8h --justification \"incident 4711: database failover\"",
            "4711.0312.incident",
        ),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    let text = answer.json["text"].as_str().unwrap();
    assert!(text.starts_with("Opened case *AC-"), "{text}");
    let case = text["Opened case *".len().."Opened case *".len() + 35].to_string();

    // A Slack request naming a Jira ticket is refused: nothing opened.
    let claimed = posted_to_slack(
        &server,
        "commands",
        slack_fake::slash_command(
            SLACK_ALICE,
            CHANNEL,
            "request user:alice admins-prod --resource other-db --ticket jira:SEC-8",
            "4711.0312.claim",
        ),
    );
    let claimed_text = claimed.json["text"].as_str().unwrap_or_default();
    assert!(
        claimed_text.contains("ticket.connector-owned"),
        "{}",
        claimed.text
    );
    assert_eq!(server.case_count(), 1);

    // She files the Jira issue with the case ID in its field: its creation
    // webhook links the issue to the case (`ticket_linked`), opening
    // nothing, and the case is written back to it from then on.
    let mut created_issue = issue("To Do");
    created_issue["fields"]["customfield_10044"] = json!(case);
    let created = deliver_jira(
        &server,
        &json!({
            "timestamp": now_ms(),
            "webhookEvent": "jira:issue_created",
            "issue_event_type_name": "issue_created",
            "user": jira_user(JIRA_ALICE),
            "issue": created_issue,
        }),
    );
    assert_eq!(created.status, 200, "{}", created.text);
    let outcome = only_outcome(&created);
    assert_eq!(outcome["case_id"], case.as_str(), "{outcome}");
    assert_eq!(outcome["outcome"], "recorded", "{outcome}");
    assert_eq!(outcome["event"], "ticket_linked", "{outcome}");
    assert_eq!(server.case_count(), 1);

    // 03:14: bob clicks Approve in the channel.
    let mut approval = None;
    wait_until("the approval message", || {
        approval = slack
            .messages_in(CHANNEL)
            .into_iter()
            .find(|(_, message)| message.text.contains(&case));
        approval.is_some()
    });
    let (ts, message) = approval.unwrap();
    let click_ts = format!("{}.000314", now());
    let clicked = posted_to_slack(
        &server,
        "actions",
        slack_fake::click(
            SLACK_BOB,
            CHANNEL,
            &ts,
            &message,
            custody_connect::slack::interaction::APPROVE_ACTION,
            &click_ts,
        ),
    );
    assert_eq!(clicked.status, 200, "{}", clicked.text);
    assert_eq!(server.show(&alice, &case)["state"], "approved");

    // 03:20: carol executes.
    server.cli_ok(&carol, &["execute", &case]);

    // The next day, the ticket is transitioned to Approved by bob: it is
    // bound to the same case, which is executed already, so nothing is
    // appended (the approval it formalises is on the record since 03:14).
    let steps = |server: &Server| -> Vec<String> {
        server
            .events(&alice, &case)
            .iter()
            .map(|event| event["kind"].as_str().unwrap().to_string())
            .filter(|kind| kind != "notification_attempted")
            .collect()
    };
    let before = steps(&server);
    let transitioned = deliver_jira(
        &server,
        &json!({
            "timestamp": now_ms(),
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_generic",
            "user": jira_user(JIRA_BOB),
            "issue": issue("Approved"),
            "changelog": {
                "id": "30007",
                "items": [{
                    "field": "status", "fieldtype": "jira", "fieldId": "status",
                    "from": "10000", "fromString": "To Do",
                    "to": "10001", "toString": "Approved",
                }],
            },
        }),
    );
    let outcomes = transitioned.json["outcomes"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: {}", transitioned.status, transitioned.text))
        .clone();
    assert!(!outcomes.is_empty(), "{}", transitioned.text);
    for outcome in &outcomes {
        assert_eq!(outcome["case_id"], case.as_str(), "{}", transitioned.text);
    }
    // The workflow's answer: the case is executed, too late for another
    // approval; Jira is told so.
    let decision = outcomes
        .iter()
        .find(|outcome| outcome["outcome"] != "recorded")
        .unwrap_or_else(|| panic!("{}", transitioned.text));
    assert_eq!(decision["outcome"], "refused", "{decision}");
    assert_eq!(decision["rule"], "lifecycle.already-executed", "{decision}");
    assert_eq!(server.case_count(), 1, "one case");
    let after = steps(&server);
    assert!(
        after.starts_with(&before)
            && after[before.len()..]
                .iter()
                .all(|kind| kind == "ticket_changed"),
        "no decision appended: {before:?} then {after:?}"
    );
    assert_eq!(
        after
            .iter()
            .filter(|kind| *kind == "approval_granted")
            .count(),
        1
    );

    // One ID everywhere: the approval's chat provenance, the Slack message,
    // and the ticket's comments and property.
    let document = server.show(&alice, &case);
    assert_eq!(document["state"], "executed");
    let granted = document["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["kind"] == "approval_granted")
        .unwrap()
        .clone();
    assert_eq!(granted["source"], "slack");
    assert_eq!(
        granted["payload"]["chat"]["channel"],
        format!("slack:{CHANNEL}")
    );
    assert_eq!(granted["payload"]["chat"]["approver"], "bob");
    wait_until("the Slack message to show the approval", || {
        slack.message(CHANNEL, &ts).is_some_and(|message| {
            message
                .text
                .contains(&format!("Case {case}: Approved by bob"))
        })
    });
    wait_until("the execution to reach the ticket", || {
        jira.property("SEC-7", "custody")
            .is_some_and(|property| property["state"] == "executed")
    });
    let property = jira.property("SEC-7", "custody").unwrap();
    assert_eq!(property["case_id"], case.as_str());
    let comments = jira.comment_texts("SEC-7");
    // Write-backs are delivered concurrently: the link's comment and the
    // approval's may land in either order.
    assert!(
        comments
            .iter()
            .any(|comment| comment.starts_with(&format!("This issue is Custody case {case}."))),
        "{comments:?}"
    );
    assert!(
        comments.iter().all(|comment| comment.contains(&case)),
        "{comments:?}"
    );
    assert!(
        comments
            .iter()
            .any(|comment| comment.contains("approved in chat for bob")),
        "{comments:?}"
    );
    server.assert_verify_ok();
}
