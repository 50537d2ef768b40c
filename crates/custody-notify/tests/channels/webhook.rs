//! Webhook deliveries against a real HTTP receiver.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use custody_notify::{
    verify_webhook_signature, Channel, ChannelConfig, Secret, SignatureError, DELIVERY_ID_HEADER,
    SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use serde_json::{json, Value};

use crate::common::{free_port, notification, now_unix, Receiver, SECRET};

async fn webhook(url: String, timeout_seconds: u64) -> Channel {
    Channel::connect(&ChannelConfig::Webhook {
        name: "siem".to_string(),
        url,
        secret: Secret::new(SECRET),
        source: "custody/test".to_string(),
        timeout_seconds,
    })
    .await
    .unwrap()
}

fn header(received: &crate::common::Received, name: &str) -> String {
    received
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn retryable_503s_then_a_signed_cloudevent_is_accepted() {
    let receiver = Receiver::start().await;
    receiver.state.fail_remaining.store(2, Ordering::SeqCst);
    let channel = webhook(format!("{}/hook", receiver.base), 5).await;
    let notification = notification();

    for _ in 0..2 {
        let error = channel.deliver(&notification, None).await.unwrap_err();
        assert!(error.retryable, "{error:?}");
        assert_eq!(error.status, Some(503));
        assert_eq!(error.retry_after, Some(Duration::from_secs(7)));
        assert!(error.message.contains("siem"), "{}", error.message);
        assert!(
            error.message.contains("overloaded, try later"),
            "{}",
            error.message
        );
    }
    let delivered = channel
        .deliver(&notification, Some("carol@example.com"))
        .await
        .unwrap();
    assert_eq!(delivered.status, Some(202));

    let received = receiver.received();
    assert_eq!(received.len(), 3);
    // Every attempt, failed or not, was signed and carried the same ID.
    for request in &received {
        assert!(request.signature_valid);
        assert_eq!(
            header(request, DELIVERY_ID_HEADER),
            notification.delivery_id
        );
        assert_eq!(
            header(request, "content-type"),
            "application/cloudevents+json"
        );
        let timestamp: u64 = header(request, TIMESTAMP_HEADER).parse().unwrap();
        assert!(timestamp.abs_diff(now_unix()) < 60);
    }

    let last = &received[2];
    let event: Value = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["id"], notification.delivery_id.as_str());
    assert_eq!(event["source"], "custody/test");
    assert_eq!(event["type"], "dev.custody.approval_needed");
    assert_eq!(event["subject"], notification.case_id.as_str());
    assert_eq!(event["time"], "2026-03-04T05:06:07Z");
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(event["authtype"], "user");
    assert_eq!(event["authid"], "vendor-ops-7");
    let claims: Value = serde_json::from_str(event["authclaims"].as_str().unwrap()).unwrap();
    assert_eq!(
        claims,
        json!({"kind": "vendor", "org": "acme-support", "on_behalf_of": "it-ops", "via": "api"})
    );
    let data = &event["data"];
    assert_eq!(data["case_id"], notification.case_id.as_str());
    assert_eq!(data["event_id"], notification.event_id.as_str());
    assert_eq!(data["title"], notification.title.as_str());
    assert_eq!(data["text"], notification.text.as_str());
    assert_eq!(data["case_url"], notification.case_url.clone().unwrap());
    assert_eq!(data["recipient"], "carol@example.com");
    assert_eq!(data["approvers"], json!(["carol", "dave"]));

    // The receiver's rule refuses the same request with one body byte
    // changed, a different secret, or an old timestamp.
    let timestamp = header(last, TIMESTAMP_HEADER);
    let signature = header(last, SIGNATURE_HEADER);
    let mut tampered = last.body.to_vec();
    let position = tampered.iter().position(|&b| b == b'4').unwrap();
    tampered[position] = b'5';
    assert_eq!(
        verify_webhook_signature(
            SECRET.as_bytes(),
            &timestamp,
            &tampered,
            &signature,
            now_unix(),
            300
        ),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_webhook_signature(
            b"another-secret",
            &timestamp,
            &last.body,
            &signature,
            now_unix(),
            300
        ),
        Err(SignatureError::Mismatch)
    );
    assert!(matches!(
        verify_webhook_signature(
            SECRET.as_bytes(),
            &timestamp,
            &last.body,
            &signature,
            now_unix() + 3_600,
            300
        ),
        Err(SignatureError::StaleTimestamp { .. })
    ));
}

#[tokio::test]
async fn a_400_answer_is_not_retryable() {
    let receiver = Receiver::start().await;
    let channel = webhook(format!("{}/bad", receiver.base), 5).await;
    let error = channel.deliver(&notification(), None).await.unwrap_err();
    assert!(!error.retryable, "{error:?}");
    assert_eq!(error.status, Some(400));
    assert!(error.message.contains("unknown case"), "{}", error.message);
}

#[tokio::test]
async fn a_receiver_slower_than_the_timeout_gives_a_retryable_timeout() {
    let receiver = Receiver::start().await;
    let channel = webhook(format!("{}/slow", receiver.base), 1).await;
    let started = Instant::now();
    let error = channel.deliver(&notification(), None).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(error.retryable, "{error:?}");
    assert_eq!(error.status, None);
    assert!(error.message.contains("timed out"), "{}", error.message);
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2_500),
        "took {elapsed:?}"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let receiver = Receiver::start().await;
    let channel = webhook(format!("{}/redirect", receiver.base), 5).await;
    let error = channel.deliver(&notification(), None).await.unwrap_err();
    assert!(!error.retryable, "{error:?}");
    assert_eq!(error.status, Some(307));
    assert!(error.message.contains("/target"), "{}", error.message);
    assert_eq!(receiver.state.target_hits.load(Ordering::SeqCst), 0);
}

/// What a receiver answers reaches the ledger (the attempt's error) only
/// with its control and bidi characters escaped.
#[tokio::test]
async fn a_redirect_with_control_characters_is_reported_escaped() {
    let receiver = Receiver::start().await;
    let channel = webhook(format!("{}/redirect-c1", receiver.base), 5).await;
    let error = channel.deliver(&notification(), None).await.unwrap_err();
    assert_eq!(error.status, Some(302));
    assert!(
        error
            .message
            .contains("redirecting to `/elsewhere\\u{9b}31m\\u{202e}\\u{200b}`"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("moved 2J \\u{202e}kcah"),
        "{}",
        error.message
    );
    assert!(
        !error
            .message
            .chars()
            .any(custody_core::text::is_unsafe_char),
        "{:?}",
        error.message
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_receiver() {
    let receiver = Receiver::start().await;
    let channel = Channel::connect(&ChannelConfig::Webhook {
        name: "siem".to_string(),
        url: format!("{}/hook", receiver.base),
        secret: Secret::new("not-the-receivers-secret"),
        source: "custody".to_string(),
        timeout_seconds: 5,
    })
    .await
    .unwrap();
    let error = channel.deliver(&notification(), None).await.unwrap_err();
    assert_eq!(error.status, Some(401));
    assert!(!error.retryable);
    assert!(!receiver.received()[0].signature_valid);
}

#[tokio::test]
async fn nothing_listening_is_retryable() {
    let channel = webhook(format!("http://127.0.0.1:{}/hook", free_port()), 2).await;
    let error = channel.deliver(&notification(), None).await.unwrap_err();
    assert!(error.retryable, "{error:?}");
    assert_eq!(error.status, None);
    assert!(
        error.message.contains("could not connect"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_malformed_notification_is_refused_before_sending() {
    let receiver = Receiver::start().await;
    let channel = webhook(format!("{}/hook", receiver.base), 5).await;
    let mut bad = notification();
    bad.delivery_id = "two words".to_string();
    let error = channel.deliver(&bad, None).await.unwrap_err();
    assert!(!error.retryable);
    assert!(error.message.contains("delivery_id"), "{}", error.message);
    assert!(receiver.received().is_empty());
}
