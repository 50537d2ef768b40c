//! Delivers one Custody notification to one channel and says how it went.
//!
//! This crate knows nothing of the database or the outbox. The outbox
//! worker builds a [`Channel`] from each configured [`ChannelConfig`], calls
//! [`Channel::deliver`] for one [`Notification`] (and optionally one
//! recipient), and records the [`Delivered`] or [`DeliveryError`] it gets
//! back as an attempt event; retries, leases, backoff and escalation are the
//! outbox's. Every delivery is bounded by the channel's `timeout_seconds`
//! (10 unless configured), connection included.
//!
//! ```no_run
//! # async fn example(notification: custody_notify::Notification) -> Result<(), Box<dyn std::error::Error>> {
//! use custody_notify::{Channel, ChannelConfig};
//!
//! let config: ChannelConfig = toml::from_str(r#"
//!     type = "webhook"
//!     name = "siem"
//!     url = "https://hooks.example.com/custody"
//!     secret = "a long random string"
//! "#)?;
//! let channel = Channel::connect(&config).await?;
//! match channel.deliver(&notification, None).await {
//!     Ok(delivered) => println!("delivered: {}", delivered.detail),
//!     Err(error) if error.retryable => println!("try again later: {error}"),
//!     Err(error) => println!("give up and escalate: {error}"),
//! }
//! # Ok(()) }
//! ```
//!
//! # Deduplication
//!
//! [`Notification::delivery_id`] is unique per message and stays the same
//! across retries. A retry after a lost answer may deliver a message twice,
//! so every format carries the ID where receivers can drop duplicates: the
//! CloudEvents `id` and `Custody-Delivery-Id` header, the mail's
//! `Message-ID: <delivery_id@custody>` and `X-Custody-Delivery-Id`, and
//! JetStream's `Nats-Msg-Id`, which the stream itself deduplicates on
//! within its duplicate window.
//!
//! # Channels and formats
//!
//! ## Webhook (`type = "webhook"`)
//!
//! An HTTP `POST` of a [CloudEvents 1.0] event in structured JSON mode
//! (`Content-Type: application/cloudevents+json`), built by
//! [`cloud_event`]:
//!
//! | attribute | value |
//! |---|---|
//! | `specversion` | `"1.0"` |
//! | `id` | `delivery_id` |
//! | `source` | the channel's `source`, `"custody"` by default |
//! | `type` | `dev.custody.<kind>`, e.g. `dev.custody.approval_needed` |
//! | `subject` | `case_id` |
//! | `time` | `occurred_at` |
//! | `datacontenttype` | `"application/json"` |
//! | `authtype` | `user` (human, vendor), `service_account` (service), `system` (automation) |
//! | `authid` | the acting principal |
//! | `authclaims` | a JSON string: `{"kind", "org", "on_behalf_of", "via"}` |
//! | `data` | `{case_id, event_id, kind, title, text, case_url, recipient?, ...data}` |
//!
//! `authtype`, `authid` and `authclaims` are the CloudEvents [authcontext]
//! extension. Redirects are never followed: a 3xx answer is a permanent
//! failure naming the `Location`, so a receiver cannot bounce signed
//! payloads elsewhere.
//!
//! ### Signature
//!
//! Each request carries three headers:
//!
//! ```text
//! Custody-Delivery-Id: <delivery_id>
//! Custody-Timestamp:   <Unix seconds when signed>
//! Custody-Signature:   v1=<lower-case hex HMAC-SHA256(secret, "<timestamp>.<body bytes>")>
//! ```
//!
//! The key is the UTF-8 bytes of the channel's `secret`. A receiver
//! verifies with [`verify_webhook_signature`] on the raw body bytes before
//! parsing: it recomputes the MAC, compares in constant time, and refuses a
//! timestamp further than its tolerance (300 seconds is a good choice) from
//! its own clock, which bounds replays. The header may hold several
//! comma-separated `v1=` entries (any one matching is enough), so a sender
//! can sign with two secrets during a rotation.
//!
//! ## Email (`type = "email"`)
//!
//! SMTP through a relay, with `tls = "starttls"` (default, port 587),
//! `"implicit"` (port 465) or `"none"` (port 25, only to a loopback host:
//! [`ChannelConfig::validate`] refuses clear text to anything else). The
//! mail is `multipart/alternative`: a plain-text part and an HTML part with
//! every interpolated value HTML-escaped, both with the case link. The
//! subject is the title; `Message-ID` is `<delivery_id@custody>` and
//! `X-Custody-Delivery-Id` repeats the ID. The recipient is the `recipient`
//! argument when given, else the channel's `to` list.
//!
//! ## Chat (`type = "chat"`)
//!
//! An incoming-webhook `POST` of JSON. `flavor = "slack"` sends
//! [`slack_message`]: a `text` fallback plus Block Kit `blocks` (a `mrkdwn`
//! section with the title, body and a `<url|case>` link, a context line with
//! the actor, an "Open case" button), with `&`, `<` and `>` escaped in every
//! interpolated value so text cannot forge links or `<!channel>` mentions.
//! `flavor = "teams"` sends [`teams_message`]: an Adaptive Card 1.4
//! attachment, as Teams Workflows webhooks take, with an `Action.OpenUrl`
//! button to the case. The webhook URL is a credential: it is redacted in
//! `Debug` output and error messages show only its scheme, host and port.
//!
//! ## NATS JetStream (`type = "nats"`)
//!
//! The same CloudEvents JSON as the webhook, published to `subject` with the
//! headers `Nats-Msg-Id: <delivery_id>`, `Custody-Delivery-Id` and
//! `Content-Type: application/cloudevents+json`, waiting for the stream's
//! publish acknowledgement. An acknowledgement marked duplicate counts as
//! delivered: the stream already holds the message. The connection is made
//! on the first delivery, not by [`Channel::connect`], so a server that is
//! down fails deliveries retryably instead of failing start-up. Give the
//! stream a duplicate window at least as long as the outbox's retry
//! horizon; past the window a retry stores a second copy (receivers can
//! still drop it on the CloudEvents `id`).
//!
//! # Outcome classification
//!
//! | outcome | result | `retryable` |
//! |---|---|---|
//! | HTTP 2xx, SMTP 2yz, JetStream ack (also a duplicate ack) | [`Delivered`] | — |
//! | no answer within the timeout; connection refused, reset, DNS, TLS failure | [`DeliveryError`] | yes |
//! | HTTP 408, 425, 429, 5xx (with `retry_after` from `Retry-After` seconds) | [`DeliveryError`] | yes |
//! | SMTP 4yz (transient) | [`DeliveryError`] | yes |
//! | JetStream: no acknowledgement in time, connection lost, other JetStream errors | [`DeliveryError`] | yes |
//! | HTTP 3xx (redirects are never followed), other HTTP 4xx | [`DeliveryError`] | no |
//! | SMTP 5yz (permanent), a malformed recipient, no recipient at all | [`DeliveryError`] | no |
//! | JetStream: no stream captures the subject ("no responders"), message over `max_payload` | [`DeliveryError`] | no |
//! | a malformed notification (see [`Notification::check`]) | [`DeliveryError`] | no |
//!
//! A subject that no stream captures is permanent on purpose: it is a
//! configuration gap that retries cannot close, and failing at once lets
//! the outbox escalate to a person instead of spending its retry schedule.
//!
//! [CloudEvents 1.0]: https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md
//! [authcontext]: https://github.com/cloudevents/spec/blob/main/cloudevents/extensions/authcontext.md

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod chat;
mod cloudevents;
mod config;
pub mod connector;
mod email;
mod http;
mod nats;
mod notification;
mod outcome;
mod signature;
pub mod sink;
mod webhook;

use std::time::Duration;

pub use chat::{slack_message, teams_message};
pub use cloudevents::{cloud_event, CLOUDEVENTS_CONTENT_TYPE, EVENT_TYPE_PREFIX};
pub use config::{ChannelConfig, ChatFlavor, ConfigError, EmailTls, Secret, MAX_TIMEOUT_SECONDS};
pub use email::{EMAIL_DELIVERY_ID_HEADER, MESSAGE_ID_DOMAIN};
pub use nats::NATS_MESSAGE_ID_HEADER;
pub use notification::{ActorKind, InvalidNotification, Notification, NotificationActor};
pub use outcome::{Delivered, DeliveryError};
pub use signature::{
    sign_webhook, verify_webhook_signature, SignatureError, DELIVERY_ID_HEADER, SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
};

/// A channel ready to deliver: built once from its configuration, then used
/// for any number of deliveries, concurrently if wanted (share it behind an
/// `Arc`).
pub struct Channel {
    name: String,
    kind: &'static str,
    timeout: Duration,
    transport: Transport,
}

/// The channel-specific part of a [`Channel`].
enum Transport {
    Webhook(webhook::WebhookChannel),
    Email(Box<email::EmailChannel>),
    Chat(chat::ChatChannel),
    Nats(nats::NatsChannel),
}

impl Channel {
    /// Validates the configuration and builds the channel's client. Nothing
    /// is sent and no connection is opened yet (NATS connects on the first
    /// delivery), so a receiver that is down does not stop start-up.
    pub async fn connect(config: &ChannelConfig) -> Result<Channel, ConfigError> {
        config.validate()?;
        let name = config.name();
        let timeout = config.timeout();
        let transport = match config {
            ChannelConfig::Webhook {
                url,
                secret,
                source,
                ..
            } => {
                let url = config::parse_url(
                    "webhook",
                    name,
                    url,
                    &["http", "https"],
                    "http or https",
                    true,
                )?;
                Transport::Webhook(webhook::WebhookChannel::new(
                    name,
                    url,
                    secret.clone(),
                    source,
                    timeout,
                )?)
            }
            ChannelConfig::Email {
                host,
                port,
                tls,
                username,
                password,
                from,
                to,
                ..
            } => Transport::Email(Box::new(email::EmailChannel::new(email::EmailSettings {
                name,
                host,
                port: *port,
                tls: *tls,
                credentials: username.as_deref().zip(password.as_ref()),
                from,
                to,
                timeout,
            })?)),
            ChannelConfig::Chat { url, flavor, .. } => {
                let url = config::parse_url(
                    "chat",
                    name,
                    url.expose(),
                    &["http", "https"],
                    "http or https",
                    false,
                )?;
                Transport::Chat(chat::ChatChannel::new(name, url, *flavor, timeout)?)
            }
            ChannelConfig::Nats {
                url,
                subject,
                source,
                ..
            } => {
                let parsed = config::parse_url(
                    "nats",
                    name,
                    url.expose(),
                    &["nats", "tls"],
                    "nats://",
                    false,
                )?;
                Transport::Nats(nats::NatsChannel::new(
                    name,
                    url.clone(),
                    http::origin(&parsed),
                    subject,
                    source,
                    timeout,
                ))
            }
        };
        Ok(Channel {
            name: name.to_string(),
            kind: config.kind(),
            timeout,
            transport,
        })
    }

    /// The channel's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The channel type: `webhook`, `email`, `chat` or `nats`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The bound on one delivery.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Delivers one notification, within the channel's timeout.
    ///
    /// `recipient` is the mail address for email channels (the configured
    /// `to` list when `None`); webhook and NATS channels put it in the
    /// event's `data.recipient`, and chat channels show it as "For:".
    ///
    /// The result says whether the channel accepted the message, and if not
    /// whether to try again; see the crate documentation for the
    /// classification. This never panics on input and never waits longer
    /// than the timeout.
    pub async fn deliver(
        &self,
        notification: &Notification,
        recipient: Option<&str>,
    ) -> Result<Delivered, DeliveryError> {
        if let Err(invalid) = notification.check() {
            return Err(DeliveryError::permanent(format!(
                "{} channel `{}`: {invalid}; retrying will not help, the notification must be corrected",
                self.kind, self.name
            )));
        }
        let attempt = async {
            match &self.transport {
                Transport::Webhook(channel) => channel.deliver(notification, recipient).await,
                Transport::Email(channel) => channel.deliver(notification, recipient).await,
                Transport::Chat(channel) => channel.deliver(notification, recipient).await,
                Transport::Nats(channel) => channel.deliver(notification, recipient).await,
            }
        };
        let outcome = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => Err(DeliveryError::retryable(format!(
                "{} channel `{}`: timed out: no answer within {} s; will retry",
                self.kind,
                self.name,
                self.timeout.as_secs()
            ))),
        };
        match &outcome {
            Ok(delivered) => tracing::debug!(
                channel = %self.name,
                delivery_id = %notification.delivery_id,
                detail = %delivered.detail,
                "notification delivered"
            ),
            Err(error) => tracing::debug!(
                channel = %self.name,
                delivery_id = %notification.delivery_id,
                retryable = error.retryable,
                error = %error.message,
                "notification not delivered"
            ),
        }
        outcome
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Channel")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The outbox worker shares channels between tasks and spawns
    /// deliveries, so both must stay `Send` (and channels `Sync`).
    #[test]
    fn channels_and_deliveries_can_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>(_: &T) {}
        send_sync::<Channel>();
        send_sync::<DeliveryError>();
        let config = ChannelConfig::Nats {
            name: "bus".to_string(),
            url: Secret::new("nats://127.0.0.1:4222"),
            subject: "a.b".to_string(),
            source: "custody".to_string(),
            timeout_seconds: 1,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let channel = runtime.block_on(Channel::connect(&config)).unwrap();
        let notification = notification::tests::sample();
        send(&channel.deliver(&notification, None));
        assert_eq!(channel.kind(), "nats");
        assert_eq!(channel.name(), "bus");
    }
}
