//! Mail through an SMTP relay.

use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::parse_mailbox;
use crate::outcome::error_chain;
use crate::{ConfigError, Delivered, DeliveryError, EmailTls, Notification, Secret};

/// The header repeating the delivery ID, for receivers that filter on it.
pub const EMAIL_DELIVERY_ID_HEADER: &str = "X-Custody-Delivery-Id";

/// The domain part of every `Message-ID`: `<delivery_id@custody>`.
pub const MESSAGE_ID_DOMAIN: &str = "custody";

/// A configured SMTP relay.
pub(crate) struct EmailChannel {
    name: String,
    relay: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

/// Validated SMTP settings.
pub(crate) struct EmailSettings<'a> {
    pub name: &'a str,
    pub host: &'a str,
    pub port: Option<u16>,
    pub tls: EmailTls,
    pub credentials: Option<(&'a str, &'a Secret)>,
    pub from: &'a str,
    pub to: &'a [String],
    pub timeout: Duration,
}

impl EmailChannel {
    /// Builds the transport; nothing is sent until the first delivery.
    pub(crate) fn new(settings: EmailSettings<'_>) -> Result<Self, ConfigError> {
        crate::http::install_crypto_provider();
        let host = settings.host.trim_start_matches('[').trim_end_matches(']');
        let client_error = |error: lettre::transport::smtp::Error| ConfigError::Client {
            kind: "email",
            channel: settings.name.to_string(),
            detail: error_chain(&error),
        };
        let (tls, default_port) = match settings.tls {
            EmailTls::Starttls => (
                Tls::Required(TlsParameters::new_rustls(host.to_string()).map_err(client_error)?),
                587,
            ),
            EmailTls::Implicit => (
                Tls::Wrapper(TlsParameters::new_rustls(host.to_string()).map_err(client_error)?),
                465,
            ),
            EmailTls::None => (Tls::None, 25),
        };
        let port = settings.port.unwrap_or(default_port);
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(settings.timeout));
        if let Some((username, password)) = settings.credentials {
            builder = builder.credentials(Credentials::new(
                username.to_string(),
                password.expose().to_string(),
            ));
        }
        let from = parse_mailbox(settings.name, "from", settings.from)?;
        let to = settings
            .to
            .iter()
            .map(|address| parse_mailbox(settings.name, "to", address))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EmailChannel {
            name: settings.name.to_string(),
            relay: format!("{host}:{port}"),
            transport: builder.build(),
            from,
            to,
        })
    }

    /// Sends the mail to `recipient`, or to the configured `to` list.
    pub(crate) async fn deliver(
        &self,
        notification: &Notification,
        recipient: Option<&str>,
    ) -> Result<Delivered, DeliveryError> {
        let prefix = format!("email channel `{}`", self.name);
        let recipients = match recipient {
            Some(address) => vec![address.parse::<Mailbox>().map_err(|error| {
                DeliveryError::permanent(format!(
                    "{prefix}: recipient `{}` is not a mail address: {error}",
                    address.escape_debug()
                ))
            })?],
            None if self.to.is_empty() => {
                return Err(DeliveryError::permanent(format!(
                    "{prefix}: the delivery names no recipient and the channel has no default `to` list; configure `to` or pass a recipient"
                )))
            }
            None => self.to.clone(),
        };
        let message = build_message(notification, self.from.clone(), recipients)
            .map_err(|error| DeliveryError::permanent(format!("{prefix}: {error}")))?;

        match self.transport.send(message).await {
            Ok(response) => {
                let code = response.code().to_string();
                let text = response.message().collect::<Vec<_>>().join(" ");
                Ok(Delivered {
                    status: code.parse().ok(),
                    detail: crate::outcome::sanitise(format!(
                        "SMTP relay {} accepted it: {code} {text}",
                        self.relay
                    )),
                })
            }
            Err(error) => Err(classify_smtp_error(&prefix, &self.relay, &error)),
        }
    }
}

/// Builds the mail: `multipart/alternative` with a plain-text part and an
/// HTML part (every interpolated value escaped), `Message-ID:
/// <delivery_id@custody>`, an `X-Custody-Delivery-Id` header, and the title
/// (on one line) as the subject.
pub(crate) fn build_message(
    notification: &Notification,
    from: Mailbox,
    to: Vec<Mailbox>,
) -> Result<Message, String> {
    let mut builder = Message::builder()
        .from(from)
        .subject(one_line(&notification.title))
        .message_id(Some(format!(
            "<{}@{MESSAGE_ID_DOMAIN}>",
            notification.delivery_id
        )))
        .date_now()
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(EMAIL_DELIVERY_ID_HEADER),
            notification.delivery_id.clone(),
        ));
    for mailbox in to {
        builder = builder.to(mailbox);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            plain_text(notification),
            html(notification),
        ))
        .map_err(|error| format!("could not build the mail: {error}"))
}

/// The plain-text part.
pub(crate) fn plain_text(notification: &Notification) -> String {
    let mut text = format!("{}\n\n{}\n\n", notification.title, notification.text);
    text.push_str(&format!("Case: {}\n", notification.case_id));
    if let Some(url) = &notification.case_url {
        text.push_str(&format!("Open the case: {url}\n"));
    }
    text.push_str(&format!(
        "\nWhat: {}\nBy: {}\nWhen: {}\nEvent: {}\nDelivery: {}\n",
        notification.kind,
        actor_description(notification),
        notification.occurred_at,
        notification.event_id,
        notification.delivery_id
    ));
    text
}

/// The HTML part; every interpolated value goes through [`escape_html`].
pub(crate) fn html(notification: &Notification) -> String {
    let paragraphs: String = notification
        .text
        .split("\n\n")
        .map(|paragraph| {
            format!(
                "<p>{}</p>\n",
                escape_html(paragraph).replace('\n', "<br>\n")
            )
        })
        .collect();
    let case = match &notification.case_url {
        Some(url) => format!(
            "<p><a href=\"{url}\">Open case {case_id}</a></p>\n",
            url = escape_html(url),
            case_id = escape_html(&notification.case_id)
        ),
        None => format!("<p>Case {}</p>\n", escape_html(&notification.case_id)),
    };
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>\n\
         <h1>{title}</h1>\n{paragraphs}{case}\
         <table>\n\
         <tr><th align=\"left\">What</th><td>{kind}</td></tr>\n\
         <tr><th align=\"left\">By</th><td>{actor}</td></tr>\n\
         <tr><th align=\"left\">When</th><td>{when}</td></tr>\n\
         <tr><th align=\"left\">Event</th><td>{event}</td></tr>\n\
         <tr><th align=\"left\">Delivery</th><td>{delivery}</td></tr>\n\
         </table>\n</body></html>\n",
        title = escape_html(&notification.title),
        kind = escape_html(&notification.kind),
        actor = escape_html(&actor_description(notification)),
        when = escape_html(&notification.occurred_at),
        event = escape_html(&notification.event_id),
        delivery = escape_html(&notification.delivery_id),
    )
}

pub(crate) use custody_core::text::escape_html;

/// `alice (vendor, org acme, for it-ops) via api`.
fn actor_description(notification: &Notification) -> String {
    let actor = &notification.actor;
    let mut qualifiers = vec![actor.kind.as_str().to_string()];
    if let Some(org) = &actor.org {
        qualifiers.push(format!("org {org}"));
    }
    if let Some(on_behalf_of) = &actor.on_behalf_of {
        qualifiers.push(format!("for {on_behalf_of}"));
    }
    format!(
        "{} ({}) via {}",
        actor.principal,
        qualifiers.join(", "),
        actor.via
    )
}

/// The text with line breaks and other control characters turned into
/// spaces, for a header.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// SMTP 4yz replies, timeouts and connection or TLS failures are retryable;
/// 5yz replies and errors in what we sent are not.
fn classify_smtp_error(
    prefix: &str,
    relay: &str,
    error: &lettre::transport::smtp::Error,
) -> DeliveryError {
    let detail = error_chain(error);
    let status = error
        .status()
        .and_then(|code| code.to_string().parse::<u16>().ok());
    let failure = if error.is_permanent() {
        DeliveryError::permanent(format!(
            "{prefix}: SMTP relay {relay} refused the mail permanently: {detail}; retrying will not help, check the addresses and the relay's rules"
        ))
    } else if error.is_transient() {
        DeliveryError::retryable(format!(
            "{prefix}: SMTP relay {relay} deferred the mail: {detail}; will retry"
        ))
    } else if error.is_client() {
        DeliveryError::permanent(format!(
            "{prefix}: the mail could not be sent to {relay}: {detail}"
        ))
    } else if error.is_timeout() {
        DeliveryError::retryable(format!(
            "{prefix}: timed out talking to SMTP relay {relay}: {detail}; will retry"
        ))
    } else {
        DeliveryError::retryable(format!(
            "{prefix}: could not talk to SMTP relay {relay}: {detail}; will retry"
        ))
    };
    match status {
        Some(code) => failure.with_status(code),
        None => failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::tests::sample;

    #[test]
    fn html_escaping() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape_html("plain"), "plain");
    }

    #[test]
    fn html_part_escapes_every_interpolated_value() {
        let mut notification = sample();
        notification.title = "<b>bold</b>".to_string();
        notification.text = "<script>alert('x')</script>\n\nline & more".to_string();
        notification.actor.principal = "<img src=x>".to_string();
        notification.case_url = Some("https://custody.example/cases/AC-1?a=1&b=\"2\"".to_string());
        let html = html(&notification);
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>bold"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(html.contains("<p>line &amp; more</p>"));
        assert!(html
            .contains("<a href=\"https://custody.example/cases/AC-1?a=1&amp;b=&quot;2&quot;\">"));
    }

    #[test]
    fn plain_text_carries_the_link_and_identifiers() {
        let notification = sample();
        let text = plain_text(&notification);
        assert!(text.starts_with("Approval needed\n\nGrant admin\n"));
        assert!(text.contains("Open the case: https://custody.example/cases/AC-1\n"));
        assert!(text.contains(&format!("Delivery: {}", notification.delivery_id)));
        assert!(text.contains("By: alice (human) via web"));
    }

    #[test]
    fn message_headers() {
        let mut notification = sample();
        notification.title = "two\r\nlines".to_string();
        let from: Mailbox = "Custody <custody@example.com>".parse().unwrap();
        let to: Mailbox = "ops@example.com".parse().unwrap();
        let message = build_message(&notification, from, vec![to]).unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(
            raw.contains(&format!(
                "Message-ID: <{}@custody>\r\n",
                notification.delivery_id
            )),
            "{raw}"
        );
        assert!(raw.contains(&format!(
            "X-Custody-Delivery-Id: {}\r\n",
            notification.delivery_id
        )));
        assert!(raw.contains("Subject: two  lines\r\n"), "{raw}");
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain"));
        assert!(raw.contains("text/html"));
    }
}
