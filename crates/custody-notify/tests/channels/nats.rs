//! JetStream deliveries against a real NATS server.
//!
//! The server is `$CUSTODY_TEST_NATS_URL`, else the one on 127.0.0.1:4222.
//! When neither answers, each test starts its own `nats-server -js` on a
//! free port (and stops it at the end), so the tests need no running
//! service, only the `nats-server` binary.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use custody_notify::{Channel, ChannelConfig, Secret, NATS_MESSAGE_ID_HEADER};
use serde_json::Value;

use crate::common::{free_port, notification, unique};

/// A NATS server with JetStream: an existing one, or one this test started.
struct NatsServer {
    url: String,
    child: Option<(Child, tempfile::TempDir)>,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some((child, _store)) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn jetstream_answers(url: &str) -> Option<jetstream::Context> {
    let connect = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(1))
        .connect(url);
    let client = tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .ok()?
        .ok()?;
    // A raw account-info request: async-nats's typed `query_account` cannot
    // parse the answer of older servers (Debian ships 2.9), the rest works.
    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        client.request("$JS.API.INFO", "".into()),
    )
    .await
    .ok()?
    .ok()?;
    let info: Value = serde_json::from_slice(&answer.payload).ok()?;
    if info.get("error").is_some() {
        return None;
    }
    Some(jetstream::new(client))
}

async fn nats_server() -> (NatsServer, jetstream::Context) {
    let url = std::env::var("CUSTODY_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string());
    if let Some(context) = jetstream_answers(&url).await {
        return (NatsServer { url, child: None }, context);
    }
    let port = free_port();
    let store = tempfile::tempdir().unwrap();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("no NATS server at {url}, and `nats-server` could not be started: {error}")
        });
    let server = NatsServer {
        url: format!("nats://127.0.0.1:{port}"),
        child: Some((child, store)),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(context) = jetstream_answers(&server.url).await {
            return (server, context);
        }
        assert!(Instant::now() < deadline, "nats-server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn channel(url: &str, subject: &str, timeout_seconds: u64) -> Channel {
    Channel::connect(&ChannelConfig::Nats {
        name: "bus".to_string(),
        url: Secret::new(url),
        subject: subject.to_string(),
        source: "custody/test".to_string(),
        timeout_seconds,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn publishing_twice_stores_one_message_with_headers_and_cloudevent() {
    let (server, context) = nats_server().await;
    let prefix = unique("custody-test");
    let stream_name = prefix.replace('-', "_");
    context
        .create_stream(stream::Config {
            name: stream_name.clone(),
            subjects: vec![format!("{prefix}.>")],
            duplicate_window: Duration::from_secs(120),
            // A run that dies before deleting its stream leaves nothing for long.
            max_age: Duration::from_secs(600),
            ..Default::default()
        })
        .await
        .unwrap();

    let subject = format!("{prefix}.notifications");
    let url = server.url.clone();
    let checks = tokio::spawn({
        let context = context.clone();
        let stream_name = stream_name.clone();
        async move {
            let channel = channel(&url, &subject, 5).await;
            let notification = notification();

            let first = channel.deliver(&notification, None).await.unwrap();
            assert_eq!(first.status, None);
            assert!(first.detail.contains(&stream_name), "{first:?}");
            assert!(!first.detail.contains("duplicate"), "{first:?}");
            let second = channel.deliver(&notification, None).await.unwrap();
            assert!(second.detail.contains("duplicate"), "{second:?}");

            let stream = context.get_stream(&stream_name).await.unwrap();
            let info = stream.get_info().await.unwrap();
            assert_eq!(info.state.messages, 1, "the duplicate was stored");

            let message = stream
                .get_raw_message(info.state.first_sequence)
                .await
                .unwrap();
            assert_eq!(message.subject.as_str(), subject);
            let header = |name: &str| message.headers.get(name).map(|value| value.to_string());
            assert_eq!(
                header(NATS_MESSAGE_ID_HEADER),
                Some(notification.delivery_id.clone())
            );
            assert_eq!(
                header("Custody-Delivery-Id"),
                Some(notification.delivery_id.clone())
            );
            assert_eq!(
                header("Content-Type").as_deref(),
                Some("application/cloudevents+json")
            );
            let event: Value = serde_json::from_slice(&message.payload).unwrap();
            assert_eq!(event["specversion"], "1.0");
            assert_eq!(event["id"], notification.delivery_id.as_str());
            assert_eq!(event["source"], "custody/test");
            assert_eq!(event["type"], "dev.custody.approval_needed");
            assert_eq!(event["subject"], notification.case_id.as_str());
            assert_eq!(event["authtype"], "user");
            assert_eq!(event["authid"], "vendor-ops-7");
            assert_eq!(
                event["data"]["case_url"],
                notification.case_url.clone().unwrap()
            );

            // A different notification is a different message.
            channel
                .deliver(&crate::common::notification(), None)
                .await
                .unwrap();
            let info = stream.get_info().await.unwrap();
            assert_eq!(info.state.messages, 2);
        }
    })
    .await;

    context.delete_stream(&stream_name).await.unwrap();
    drop(server);
    if let Err(failure) = checks {
        std::panic::resume_unwind(failure.into_panic());
    }
}

#[tokio::test]
async fn a_subject_without_a_stream_is_a_clear_permanent_error() {
    let (server, _context) = nats_server().await;
    let subject = format!("{}.nowhere", unique("custody-test-nostream"));
    let channel = channel(&server.url, &subject, 5).await;
    let started = Instant::now();
    let error = channel.deliver(&notification(), None).await.unwrap_err();
    assert!(!error.retryable, "{error:?}");
    assert!(
        error.message.contains("no JetStream stream"),
        "{}",
        error.message
    );
    assert!(error.message.contains(&subject), "{}", error.message);
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_server_that_is_down_is_retryable_within_the_timeout() {
    let url = format!("nats://127.0.0.1:{}", free_port());
    let channel = channel(&url, "custody.notifications", 2).await;
    for _ in 0..2 {
        // The failed connection is not cached: the second delivery tries again.
        let started = Instant::now();
        let error = channel.deliver(&notification(), None).await.unwrap_err();
        assert!(error.retryable, "{error:?}");
        assert!(error.message.contains("NATS"), "{}", error.message);
        assert!(
            started.elapsed() < Duration::from_millis(2_500),
            "took {:?}",
            started.elapsed()
        );
    }
}
