//! JetStream deliveries against a real NATS server.
//!
//! The server is `$CUSTODY_TEST_NATS_URL`, else the one on 127.0.0.1:4222.
//! When neither answers, each test starts its own `nats-server -js` on a
//! free port (and stops it at the end), so the tests need no running
//! service, only the `nats-server` binary (see `support::nats`).

use std::time::{Duration, Instant};

use custody_notify::{Channel, ChannelConfig, Secret, NATS_MESSAGE_ID_HEADER};
use serde_json::Value;

use crate::common::{free_port, notification, unique};
use crate::support::nats::{NatsServer, UniqueStream};

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
    let (server, context) = NatsServer::start().await;
    let unique_stream = UniqueStream::create(&server, &context, "custody-test").await;
    let stream_name = unique_stream.name.clone();

    let subject = unique_stream.subject("notifications");
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

    unique_stream.delete().await.unwrap();
    drop(server);
    if let Err(failure) = checks {
        std::panic::resume_unwind(failure.into_panic());
    }
}

#[tokio::test]
async fn a_subject_without_a_stream_is_a_clear_permanent_error() {
    let (server, _context) = NatsServer::start().await;
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
