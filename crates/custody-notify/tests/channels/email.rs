//! Mail deliveries against a real SMTP server: Python's aiosmtpd, installed
//! by the test itself when missing (see `support::smtp`). It answers
//! `RCPT TO:<reject@...>` with 550 and `<defer@...>` with 451.

use std::time::{Duration, Instant};

use custody_notify::{Channel, ChannelConfig, EmailTls};

use crate::common::{free_port, notification};
use crate::support::smtp::{part, SmtpServer};

async fn channel(port: u16, to: &[&str]) -> Channel {
    Channel::connect(&ChannelConfig::Email {
        name: "mail".to_string(),
        host: "127.0.0.1".to_string(),
        port: Some(port),
        tls: EmailTls::None,
        username: None,
        password: None,
        from: "Custody <custody@example.com>".to_string(),
        to: to.iter().map(|address| address.to_string()).collect(),
        timeout_seconds: 5,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn mail_arrives_with_text_and_html_parts_and_dedup_headers() {
    let server = SmtpServer::start();
    let channel = channel(server.port, &["ops@example.com", "sec@example.com"]).await;
    let mut notification = notification();
    notification.text = "Bob asks for <admin> on billing-db & prod.".to_string();

    let delivered = channel.deliver(&notification, None).await.unwrap();
    assert_eq!(delivered.status, Some(250));
    assert!(
        delivered.detail.contains("Message accepted"),
        "{delivered:?}"
    );

    let mails = server.mails();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail["mail_from"], "custody@example.com");
    assert_eq!(
        mail["rcpt_tos"],
        serde_json::json!(["ops@example.com", "sec@example.com"])
    );
    assert_eq!(mail["content_type"], "multipart/alternative");
    let headers = &mail["headers"];
    assert_eq!(
        headers["message-id"],
        format!("<{}@custody>", notification.delivery_id)
    );
    assert_eq!(
        headers["x-custody-delivery-id"],
        notification.delivery_id.as_str()
    );
    assert_eq!(headers["subject"], notification.title.as_str());

    let case_url = notification.case_url.clone().unwrap();
    let text = part(mail, "text/plain");
    assert!(text.contains(&case_url), "{text}");
    assert!(text.contains("Bob asks for <admin> on billing-db & prod."));
    let html = part(mail, "text/html");
    assert!(html.contains(&format!("href=\"{case_url}\"")), "{html}");
    assert!(html.contains("Bob asks for &lt;admin&gt; on billing-db &amp; prod."));
    assert!(!html.contains("<admin>"));
}

#[tokio::test]
async fn the_recipient_argument_replaces_the_default_list() {
    let server = SmtpServer::start();
    let channel = channel(server.port, &["ops@example.com"]).await;
    channel
        .deliver(&notification(), Some("Carol <carol@example.com>"))
        .await
        .unwrap();
    let mails = server.mails();
    assert_eq!(
        mails[0]["rcpt_tos"],
        serde_json::json!(["carol@example.com"])
    );
    assert!(mails[0]["headers"]["to"]
        .as_str()
        .unwrap()
        .contains("carol@example.com"));
}

#[tokio::test]
async fn smtp_replies_are_classified() {
    let server = SmtpServer::start();
    let channel = channel(server.port, &[]).await;

    let error = channel
        .deliver(&notification(), Some("reject@example.com"))
        .await
        .unwrap_err();
    assert!(!error.retryable, "{error:?}");
    assert_eq!(error.status, Some(550));

    let error = channel
        .deliver(&notification(), Some("defer@example.com"))
        .await
        .unwrap_err();
    assert!(error.retryable, "{error:?}");
    assert_eq!(error.status, Some(451));

    let error = channel
        .deliver(&notification(), Some("not an address"))
        .await
        .unwrap_err();
    assert!(!error.retryable);
    assert!(
        error.message.contains("not a mail address"),
        "{}",
        error.message
    );

    let error = channel.deliver(&notification(), None).await.unwrap_err();
    assert!(!error.retryable);
    assert!(error.message.contains("no recipient"), "{}", error.message);

    assert!(server.mails().is_empty());
}

#[tokio::test]
async fn a_relay_that_is_down_is_retryable_within_the_timeout() {
    let channel = channel(free_port(), &["ops@example.com"]).await;
    let started = Instant::now();
    let error = channel.deliver(&notification(), None).await.unwrap_err();
    assert!(error.retryable, "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
}
