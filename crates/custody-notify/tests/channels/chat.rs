//! Slack- and Teams-shaped chat webhooks against a real HTTP receiver.

use custody_notify::{Channel, ChannelConfig, ChatFlavor, Secret};
use serde_json::Value;

use crate::common::{notification, Receiver};

async fn chat(url: String, flavor: ChatFlavor) -> Channel {
    Channel::connect(&ChannelConfig::Chat {
        name: "ops-chat".to_string(),
        url: Secret::new(url),
        flavor,
        timeout_seconds: 5,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn slack_body_links_the_case_and_escapes_text() {
    let receiver = Receiver::start().await;
    let channel = chat(
        format!("{}/chat/T0-B0-slack", receiver.base),
        ChatFlavor::Slack,
    )
    .await;
    let mut notification = notification();
    notification.title = "Approve <!channel> & escalate".to_string();
    notification.text = "<script>alert('x')</script> R&D access".to_string();

    let delivered = channel.deliver(&notification, None).await.unwrap();
    assert_eq!(delivered.status, Some(200));

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/chat/T0-B0-slack");
    assert_eq!(
        received[0].headers.get("content-type").unwrap(),
        "application/json"
    );
    let raw = String::from_utf8(received[0].body.to_vec()).unwrap();
    assert!(!raw.contains("<script>"), "{raw}");
    assert!(!raw.contains("<!channel>"), "{raw}");
    let body: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        body["text"],
        format!(
            "Approve &lt;!channel&gt; &amp; escalate ({})",
            notification.case_id
        )
    );
    let section = body["blocks"][0]["text"]["text"].as_str().unwrap();
    assert_eq!(body["blocks"][0]["type"], "section");
    assert!(section.contains("&lt;script&gt;alert('x')&lt;/script&gt; R&amp;D access"));
    let case_url = notification.case_url.clone().unwrap();
    assert!(section.contains(&format!("<{case_url}|{}>", notification.case_id)));
    let button = &body["blocks"][2]["elements"][0];
    assert_eq!(button["type"], "button");
    assert_eq!(button["url"], case_url.as_str());
}

#[tokio::test]
async fn teams_body_is_an_adaptive_card_with_an_open_url_action() {
    let receiver = Receiver::start().await;
    let channel = chat(
        format!("{}/chat/teams-flow", receiver.base),
        ChatFlavor::Teams,
    )
    .await;
    let notification = notification();
    channel
        .deliver(&notification, Some("carol@example.com"))
        .await
        .unwrap();

    let received = receiver.received();
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["type"], "message");
    let attachment = &body["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["body"][0]["text"], notification.title.as_str());
    assert_eq!(card["body"][1]["text"], notification.text.as_str());
    let facts = card["body"][2]["facts"].as_array().unwrap();
    assert!(facts
        .iter()
        .any(|fact| fact["value"] == "carol@example.com"));
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(
        card["actions"][0]["url"],
        notification.case_url.clone().unwrap()
    );
}

#[tokio::test]
async fn errors_do_not_reveal_the_webhook_token() {
    let receiver = Receiver::start().await;
    let channel = chat(
        format!("{}/gone/SECRET-TOKEN-123", receiver.base),
        ChatFlavor::Slack,
    )
    .await;
    let error = channel.deliver(&notification(), None).await.unwrap_err();
    assert_eq!(error.status, Some(404));
    assert!(!error.retryable);
    assert!(error.message.contains("no_service"), "{}", error.message);
    assert!(
        !error.message.contains("SECRET-TOKEN-123"),
        "{}",
        error.message
    );
    assert!(!format!("{channel:?}").contains("SECRET-TOKEN-123"));
}
