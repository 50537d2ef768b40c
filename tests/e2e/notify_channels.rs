//! Notifications through the real server to the real channels other than
//! webhooks: mail to an SMTP server (Python's aiosmtpd), CloudEvents on a
//! NATS JetStream stream, and a Slack-shaped chat webhook. Each runs on both
//! stores. The SMTP and NATS servers come from custody-notify's test
//! harness (`crates/custody-notify/tests/support`), which finds or starts
//! them.

#![allow(clippy::unwrap_used)]

use crate::common;
#[path = "../../crates/custody-notify/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use common::{assert_refused, wait_until, HttpStub, Server, TestStore, STORES};
use custody_notify::{Channel, ChannelConfig, Notification, Secret, NATS_MESSAGE_ID_HEADER};
use serde_json::{json, Value};
use support::nats::{NatsServer, UniqueStream};
use support::smtp::{part, SmtpServer};

/// The bound on every wait.
const WAIT: Duration = Duration::from_secs(30);

/// The link to a case in every notification.
fn case_url(case: &str) -> String {
    format!("https://custody.example.com/cases/{case}")
}

/// A config with the given channel tables, the given routes (none: every
/// audience on every channel) and fast retries.
fn config(channels: &str, routes: &str) -> String {
    format!(
        "[workflow]\nscan_interval_seconds = 1\n\n[notify]\nbackoff_initial_ms = 100\nbackoff_max_ms = 400\npoll_interval_ms = 50\nlease_seconds = 10\nmax_attempts = 5\ncase_url = \"https://custody.example.com/cases/{{case}}\"\n\n{channels}\n[notify.routes]\n{routes}"
    )
}

fn request(server: &Server, token: &str, entitlement: &str, justification: &str) -> String {
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
                justification,
            ],
        )
        .trim()
        .to_string()
}

fn attempts(server: &Server, case: &str) -> Vec<Value> {
    server
        .events(&server.admin_token, case)
        .into_iter()
        .filter(|event| event["kind"] == "notification_attempted")
        .collect()
}

/// Every notification the case's events owe, in event order.
fn owed(server: &Server, case: &str) -> Vec<Value> {
    server
        .events(&server.admin_token, case)
        .iter()
        .flat_map(|event| event["notify"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// `(kind, audience, recipient)` of each owed notification, sorted.
fn owed_summary(owed: &[Value]) -> Vec<(String, String, Option<String>)> {
    let mut summary: Vec<_> = owed
        .iter()
        .map(|entry| {
            (
                entry["kind"].as_str().unwrap().to_string(),
                entry["audience"].as_str().unwrap().to_string(),
                entry["recipient"].as_str().map(str::to_string),
            )
        })
        .collect();
    summary.sort();
    summary
}

fn delivery_ids(owed: &[Value]) -> BTreeSet<String> {
    owed.iter()
        .map(|entry| entry["delivery_id"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until every owed delivery has a `delivered` attempt in the case;
/// returns those attempts' payloads by delivery ID.
fn wait_delivered(server: &Server, case: &str, owed: &[Value]) -> BTreeMap<String, Value> {
    let wanted = delivery_ids(owed);
    let mut delivered = BTreeMap::new();
    wait_until(
        "every owed notification to be recorded as delivered",
        || {
            delivered = attempts(server, case)
                .into_iter()
                .filter(|attempt| attempt["payload"]["outcome"] == "delivered")
                .map(|attempt| {
                    (
                        attempt["payload"]["delivery_id"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                        attempt["payload"].clone(),
                    )
                })
                .collect();
            wanted.iter().all(|id| delivered.contains_key(id))
        },
    );
    delivered
}

fn owned(entries: &[(&str, &str, Option<&str>)]) -> Vec<(String, String, Option<String>)> {
    entries
        .iter()
        .map(|(kind, audience, recipient)| {
            (
                kind.to_string(),
                audience.to_string(),
                recipient.map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn mail_reaches_a_real_smtp_server_with_both_parts_the_case_link_and_the_delivery_id() {
    for store in STORES {
        mail(store);
    }
}

fn mail(store: TestStore) {
    let smtp = SmtpServer::start();
    let channels = format!(
        "[[notify.channels]]\ntype = \"email\"\nname = \"mail\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"Custody <custody@example.com>\"\nto = [\"reviewers@example.com\"]\ntimeout_seconds = 5\n",
        smtp.port
    );
    let routes = "approvers = [\"mail:approvers@example.com\"]\nrequester = [\"mail:{principal}@example.com\"]\nreviewers = [\"mail\"]\n";
    let (server, _) = Server::start_on(store, None, Some(&config(&channels, routes)));
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let justification = "failover <primary> & replica";
    let case = request(&server, &alice, "role/admin", justification);
    server.cli_ok(&bob, &["approve", &case]);

    // The request owes the approvers; the approval owes the requester (her
    // own address, from the template) and the reviewers (the channel's `to`).
    let owed = owed(&server, &case);
    assert_eq!(
        owed_summary(&owed),
        owned(&[
            (
                "approval_needed",
                "approvers",
                Some("approvers@example.com")
            ),
            ("case_approved", "requester", Some("alice@example.com")),
            ("change_approved", "reviewers", None),
        ]),
        "{store:?}: {owed:#?}"
    );
    let delivered = wait_delivered(&server, &case, &owed);
    let mails = smtp.wait_for_mails(owed.len(), WAIT);
    assert_eq!(mails.len(), owed.len(), "one mail per notice: {mails:#?}");

    let url = case_url(&case);
    for entry in &owed {
        let id = entry["delivery_id"].as_str().unwrap();
        let message_id = format!("<{id}@custody>");
        let mail = mails
            .iter()
            .find(|mail| mail["headers"]["message-id"] == message_id.as_str())
            .unwrap_or_else(|| panic!("no mail has Message-ID {message_id}: {mails:#?}"));
        let recipient = entry["recipient"]
            .as_str()
            .unwrap_or("reviewers@example.com");
        assert_eq!(mail["rcpt_tos"], json!([recipient]), "{mail:#}");
        assert_eq!(mail["mail_from"], "custody@example.com");
        assert!(
            mail["headers"]["to"].as_str().unwrap().contains(recipient),
            "{mail:#}"
        );
        assert_eq!(mail["headers"]["x-custody-delivery-id"], id);
        let title = match entry["kind"].as_str().unwrap() {
            "approval_needed" => "Approval needed: ",
            "case_approved" => "Approved: ",
            _ => "Approved, to be executed: ",
        };
        assert!(
            mail["headers"]["subject"]
                .as_str()
                .unwrap()
                .starts_with(title),
            "{mail:#}"
        );
        assert_eq!(mail["content_type"], "multipart/alternative", "{mail:#}");
        let types: Vec<&str> = mail["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|part| part["content_type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["text/plain", "text/html"], "{mail:#}");
        let text = part(mail, "text/plain");
        assert!(text.contains(&url), "{text}");
        assert!(text.contains(&case), "{text}");
        assert!(
            text.contains(&format!("Justification: {justification}")),
            "{text}"
        );
        let html = part(mail, "text/html");
        assert!(html.contains(&format!("href=\"{url}\"")), "{html}");
        assert!(
            html.contains("failover &lt;primary&gt; &amp; replica"),
            "{html}"
        );
        assert!(!html.contains("<primary>"), "{html}");

        // The delivery is in the case, with the relay's answer.
        let attempt = &delivered[id];
        assert_eq!(attempt["channel"], "mail");
        assert_eq!(attempt["recipient"], entry["recipient"]);
        assert_eq!(attempt["attempt"], 1, "{attempt}");
        assert_eq!(attempt["status"], 250, "{attempt}");
    }
    server.assert_verify_ok();
}

/// The notification a CloudEvent was built from (all but `data`'s extra
/// keys), so it can be published again as it was.
fn notification_of(event: &Value) -> Notification {
    let claims: Value = serde_json::from_str(event["authclaims"].as_str().unwrap()).unwrap();
    serde_json::from_value(json!({
        "delivery_id": event["id"],
        "case_id": event["subject"],
        "event_id": event["data"]["event_id"],
        "kind": event["data"]["kind"],
        "title": event["data"]["title"],
        "text": event["data"]["text"],
        "case_url": event["data"]["case_url"],
        "occurred_at": event["time"],
        "actor": {
            "principal": event["authid"],
            "kind": claims["kind"],
            "org": claims["org"],
            "on_behalf_of": claims["on_behalf_of"],
            "via": claims["via"],
        },
    }))
    .unwrap()
}

#[test]
fn jetstream_holds_one_cloudevent_per_owed_delivery_and_drops_a_second_publish() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (nats, context) = runtime.block_on(NatsServer::start());
    for store in STORES {
        jetstream(&runtime, &nats, &context, store);
    }
}

fn jetstream(
    runtime: &tokio::runtime::Runtime,
    nats: &NatsServer,
    context: &async_nats::jetstream::Context,
    store: TestStore,
) {
    // Deleted when dropped, also when an assertion fails.
    let stream = runtime.block_on(UniqueStream::create(nats, context, "custody-e2e"));
    let subject = stream.subject("events");
    let channel = ChannelConfig::Nats {
        name: "bus".to_string(),
        url: Secret::new(nats.url.as_str()),
        subject: subject.clone(),
        source: "custody/e2e".to_string(),
        timeout_seconds: 5,
    };
    let channels = format!(
        "[[notify.channels]]\ntype = \"nats\"\nname = \"bus\"\nurl = \"{}\"\nsubject = \"{subject}\"\nsource = \"custody/e2e\"\ntimeout_seconds = 5\n",
        nats.url
    );
    // No routes: every audience on every channel.
    let (server, _) = Server::start_on(store, None, Some(&config(&channels, "")));
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let case = request(&server, &alice, "role/admin", "on call");
    server.cli_ok(&bob, &["approve", &case]);
    server.cli_ok(&carol, &["execute", &case]);

    let owed = owed(&server, &case);
    assert_eq!(
        owed_summary(&owed),
        owned(&[
            ("approval_needed", "approvers", None),
            ("case_approved", "executor", None),
            ("case_approved", "requester", None),
            ("change_approved", "reviewers", None),
            ("execution_completed", "requester", None),
            ("review_needed", "reviewers", None),
        ]),
        "{store:?}: {owed:#?}"
    );
    assert!(owed.iter().all(|entry| entry["channel"] == "bus"));
    let kinds: BTreeMap<String, String> = owed
        .iter()
        .map(|entry| {
            (
                entry["delivery_id"].as_str().unwrap().to_string(),
                entry["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let delivered = wait_delivered(&server, &case, &owed);
    for (id, attempt) in &delivered {
        assert_eq!(attempt["channel"], "bus", "{id}: {attempt}");
        assert_eq!(attempt["attempt"], 1, "{id}: {attempt}");
    }

    // Exactly one message per delivery ID, each a CloudEvent about the case.
    let messages = runtime.block_on(stream.messages());
    let mut ids = BTreeSet::new();
    for message in &messages {
        let header = |name: &str| message.headers.get(name).map(|value| value.to_string());
        let id = header(NATS_MESSAGE_ID_HEADER).expect("every message has a Nats-Msg-Id");
        assert!(ids.insert(id.clone()), "{id} is stored twice");
        assert_eq!(message.subject.as_str(), subject);
        assert_eq!(header("Custody-Delivery-Id"), Some(id.clone()));
        assert_eq!(
            header("Content-Type").as_deref(),
            Some("application/cloudevents+json")
        );
        let event: Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["id"], id.as_str());
        assert_eq!(event["subject"], case.as_str());
        assert_eq!(event["source"], "custody/e2e");
        let kind = kinds
            .get(&id)
            .unwrap_or_else(|| panic!("{id} was not owed: {event:#}"));
        assert_eq!(event["type"], format!("dev.custody.{kind}"));
        assert_eq!(event["data"]["case_url"], case_url(&case));
    }
    assert_eq!(ids, delivery_ids(&owed), "{store:?}");

    // A delivered notification is not sent again on request...
    let first = owed[0]["delivery_id"].as_str().unwrap();
    let refused = server.cli(
        Some(&server.admin_token),
        &["notifications", "retry", first],
    );
    assert_refused(&refused, "notify.already-delivered");

    // ...and when a delivery happens twice anyway (a lost acknowledgement),
    // the stream keeps one copy: publish the same notification again.
    let event: Value = serde_json::from_slice(&messages[0].payload).unwrap();
    let again = notification_of(&event);
    let republished = runtime.block_on(async {
        let channel = Channel::connect(&channel).await.unwrap();
        channel.deliver(&again, None).await
    });
    let republished = republished.expect("the second publish is acknowledged");
    assert!(republished.detail.contains("duplicate"), "{republished:?}");
    assert_eq!(
        runtime.block_on(stream.message_count()),
        owed.len() as u64,
        "the duplicate was stored"
    );
    server.assert_verify_ok();
    runtime.block_on(stream.delete()).unwrap();
}

/// What the Slack receiver got: each request's content type and body.
type Requests = Arc<Mutex<Vec<(String, Bytes)>>>;

/// A Slack incoming webhook on 127.0.0.1 at `/slack/T000`, on its own
/// thread and runtime, recording each request's content type and body.
struct SlackReceiver {
    url: String,
    seen: Requests,
    _stub: HttpStub,
}

impl SlackReceiver {
    fn start() -> SlackReceiver {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/slack/T000", post(slack))
            .with_state(seen.clone());
        let stub = HttpStub::serve(app, 1);
        SlackReceiver {
            url: format!("{}/slack/T000", stub.base),
            seen,
            _stub: stub,
        }
    }

    fn seen(&self) -> Vec<(String, Bytes)> {
        self.seen.lock().unwrap().clone()
    }
}

async fn slack(State(seen): State<Requests>, headers: HeaderMap, body: Bytes) -> &'static str {
    let content_type = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    seen.lock().unwrap().push((content_type, body));
    "ok"
}

#[test]
fn slack_gets_the_case_link_and_escaped_text_and_the_delivery_is_in_the_case() {
    for store in STORES {
        chat(store);
    }
}

fn chat(store: TestStore) {
    let receiver = SlackReceiver::start();
    let channels = format!(
        "[[notify.channels]]\ntype = \"chat\"\nname = \"slack\"\nurl = \"{}\"\nflavor = \"slack\"\ntimeout_seconds = 5\n",
        receiver.url
    );
    let (server, _) = Server::start_on(
        store,
        None,
        Some(&config(&channels, "approvers = [\"slack\"]\n")),
    );
    let alice = server.principal("alice");
    let case = request(
        &server,
        &alice,
        "role/admin",
        "restart <script>alert(1)</script> & <!channel> failover",
    );
    let owed = owed(&server, &case);
    assert_eq!(
        owed_summary(&owed),
        owned(&[("approval_needed", "approvers", None)])
    );
    let id = owed[0]["delivery_id"].as_str().unwrap().to_string();
    let delivered = wait_delivered(&server, &case, &owed);
    assert_eq!(delivered[&id]["channel"], "slack");
    assert_eq!(delivered[&id]["status"], 200);
    assert_eq!(delivered[&id]["attempt"], 1);

    let seen = receiver.seen();
    assert_eq!(seen.len(), 1, "{store:?}");
    let (content_type, raw) = &seen[0];
    assert_eq!(content_type, "application/json");
    let raw = String::from_utf8(raw.to_vec()).unwrap();
    assert!(!raw.contains("<script>"), "{raw}");
    assert!(!raw.contains("<!channel>"), "{raw}");
    let body: Value = serde_json::from_str(&raw).unwrap();
    let fallback = body["text"].as_str().unwrap();
    assert!(
        fallback.starts_with("Approval needed: ") && fallback.ends_with(&format!("({case})")),
        "{fallback}"
    );
    assert_eq!(body["blocks"][0]["type"], "section");
    let section = body["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        section.contains(
            "Justification: restart &lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;!channel&gt; failover"
        ),
        "{section}"
    );
    let url = case_url(&case);
    assert!(section.contains(&format!("<{url}|{case}>")), "{section}");
    let actor = body["blocks"][1]["elements"][0]["text"].as_str().unwrap();
    assert!(actor.contains("alice"), "{actor}");
    let button = &body["blocks"][2]["elements"][0];
    assert_eq!(button["type"], "button");
    assert_eq!(button["url"], url.as_str());
    server.assert_verify_ok();
}
