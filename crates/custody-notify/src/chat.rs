//! Slack and Microsoft Teams incoming webhooks.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Client, Url};
use serde_json::{json, Value};

use crate::http::{self, Target};
use crate::{ChatFlavor, ConfigError, Delivered, DeliveryError, Notification};

/// Slack's limit on a section block's text is 3,000 characters; the body is
/// cut well before it so the case line always fits.
const SLACK_BODY_LIMIT: usize = 2_500;

/// A configured chat webhook.
pub(crate) struct ChatChannel {
    name: String,
    url: Url,
    flavor: ChatFlavor,
    client: Client,
}

impl ChatChannel {
    /// Builds the channel from validated settings.
    pub(crate) fn new(
        name: &str,
        url: Url,
        flavor: ChatFlavor,
        timeout: Duration,
    ) -> Result<Self, ConfigError> {
        Ok(ChatChannel {
            name: name.to_string(),
            url,
            flavor,
            client: http::client("chat", name, timeout)?,
        })
    }

    /// POSTs the message in the configured flavour.
    pub(crate) async fn deliver(
        &self,
        notification: &Notification,
        recipient: Option<&str>,
    ) -> Result<Delivered, DeliveryError> {
        let body = match self.flavor {
            ChatFlavor::Slack => slack_message(notification, recipient),
            ChatFlavor::Teams => teams_message(notification, recipient),
        };
        let target = Target {
            kind: "chat channel",
            channel: &self.name,
            url: &self.url,
        };
        http::post(
            &self.client,
            &target,
            "application/json",
            HeaderMap::new(),
            body.to_string().into_bytes(),
        )
        .await
    }
}

/// A Slack incoming-webhook message: a `text` fallback (used in push
/// notifications) and Block Kit `blocks` with the title, body, who did it,
/// and a button (plus an inline link) to the case.
///
/// All interpolated text is escaped for Slack's mrkdwn (`&`, `<`, `>`), so
/// text cannot forge links or mentions such as `<!channel>`.
pub fn slack_message(notification: &Notification, recipient: Option<&str>) -> Value {
    let title = escape_mrkdwn(&notification.title);
    let case_id = escape_mrkdwn(&notification.case_id);
    let case_line = match &notification.case_url {
        Some(url) => format!("*Case:* <{}|{case_id}>", mrkdwn_link_target(url)),
        None => format!("*Case:* {case_id}"),
    };
    let body: String = notification.text.chars().take(SLACK_BODY_LIMIT).collect();
    let ellipsis = if body.len() < notification.text.len() {
        "…"
    } else {
        ""
    };
    let mut section = format!("*{title}*\n{}{ellipsis}\n{case_line}", escape_mrkdwn(&body));
    if let Some(recipient) = recipient {
        section.push_str(&format!("\n*For:* {}", escape_mrkdwn(recipient)));
    }
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": section}}),
        json!({"type": "context", "elements": [
            {"type": "mrkdwn", "text": escape_mrkdwn(&actor_line(notification))}
        ]}),
    ];
    if let Some(url) = &notification.case_url {
        blocks.push(json!({"type": "actions", "elements": [{
            "type": "button",
            "text": {"type": "plain_text", "text": "Open case"},
            "url": url,
            "action_id": "open_case",
        }]}));
    }
    json!({
        "text": format!("{title} ({case_id})"),
        "blocks": blocks,
    })
}

/// A Microsoft Teams message for a Workflows ("When a Teams webhook request
/// is received") webhook: one Adaptive Card 1.4 attachment with the title,
/// body, who did it, and an `Action.OpenUrl` button to the case.
///
/// Adaptive Cards render text as plain text with a small Markdown subset
/// and never as HTML, and JSON encoding keeps the structure intact, so the
/// text is passed as it is.
pub fn teams_message(notification: &Notification, recipient: Option<&str>) -> Value {
    let mut body = vec![
        json!({"type": "TextBlock", "text": notification.title, "weight": "Bolder", "size": "Medium", "wrap": true}),
        json!({"type": "TextBlock", "text": notification.text, "wrap": true}),
    ];
    let mut facts = vec![json!({"title": "Case", "value": notification.case_id})];
    if let Some(recipient) = recipient {
        facts.push(json!({"title": "For", "value": recipient}));
    }
    facts.push(json!({"title": "By", "value": actor_line(notification)}));
    body.push(json!({"type": "FactSet", "facts": facts}));
    let actions: Vec<Value> = notification
        .case_url
        .iter()
        .map(|url| json!({"type": "Action.OpenUrl", "title": "Open case", "url": url}))
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions,
            },
        }],
    })
}

/// Escapes the three characters Slack's mrkdwn gives meaning to.
pub(crate) fn escape_mrkdwn(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// A URL made safe inside `<url|label>`: mrkdwn-escaped, and `|` (which
/// would end the URL early) percent-encoded.
fn mrkdwn_link_target(url: &str) -> String {
    escape_mrkdwn(url).replace('|', "%7C")
}

/// `approval_needed by alice (human, org acme, for bob) via web at <time>`.
fn actor_line(notification: &Notification) -> String {
    let actor = &notification.actor;
    let mut qualifiers = vec![actor.kind.as_str().to_string()];
    if let Some(org) = &actor.org {
        qualifiers.push(format!("org {org}"));
    }
    if let Some(on_behalf_of) = &actor.on_behalf_of {
        qualifiers.push(format!("for {on_behalf_of}"));
    }
    format!(
        "{} by {} ({}) via {} at {}",
        notification.kind,
        actor.principal,
        qualifiers.join(", "),
        actor.via,
        notification.occurred_at
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::tests::sample;

    #[test]
    fn mrkdwn_escaping() {
        assert_eq!(
            escape_mrkdwn("<script>a & b</script> <!channel>"),
            "&lt;script&gt;a &amp; b&lt;/script&gt; &lt;!channel&gt;"
        );
        assert_eq!(
            mrkdwn_link_target("https://x/a?b=1&c=2|3"),
            "https://x/a?b=1&amp;c=2%7C3"
        );
    }

    #[test]
    fn slack_message_escapes_text_and_links_the_case() {
        let mut notification = sample();
        notification.title = "Approve <@U123> & co".to_string();
        notification.text = "<script>alert(1)</script>".to_string();
        let message = slack_message(&notification, Some("<!here>"));
        let rendered = message.to_string();
        assert!(!rendered.contains("<script>"), "{rendered}");
        assert!(!rendered.contains("<@U123>"), "{rendered}");
        assert!(!rendered.contains("<!here>"), "{rendered}");
        let section = message["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(section.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(section.contains("*Approve &lt;@U123&gt; &amp; co*"));
        assert!(section.contains(&format!(
            "<https://custody.example/cases/AC-1|{}>",
            notification.case_id
        )));
        assert_eq!(
            message["blocks"][2]["elements"][0]["url"],
            "https://custody.example/cases/AC-1"
        );
        assert_eq!(
            message["text"],
            format!("Approve &lt;@U123&gt; &amp; co ({})", notification.case_id)
        );
    }

    #[test]
    fn slack_message_without_link_has_no_button_and_long_text_is_cut() {
        let mut notification = sample();
        notification.case_url = None;
        notification.text = "x".repeat(10_000);
        let message = slack_message(&notification, None);
        let blocks = message["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 2);
        let section = blocks[0]["text"]["text"].as_str().unwrap();
        assert!(section.chars().count() < 3_000);
        assert!(section.contains('…'));
    }

    #[test]
    fn teams_message_is_an_adaptive_card_with_an_open_url_action() {
        let notification = sample();
        let message = teams_message(&notification, None);
        assert_eq!(message["type"], "message");
        let attachment = &message["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
        assert_eq!(
            card["actions"][0]["url"],
            "https://custody.example/cases/AC-1"
        );
        assert_eq!(card["body"][0]["text"], notification.title.as_str());
        assert_eq!(
            card["body"][2]["facts"][0]["value"],
            notification.case_id.as_str()
        );
    }
}
