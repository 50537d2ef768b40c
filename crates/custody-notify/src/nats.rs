//! CloudEvents published to NATS JetStream.

use std::time::Duration;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::{Client, ConnectOptions};
use tokio::sync::OnceCell;

use crate::cloudevents::{cloud_event_bytes, CLOUDEVENTS_CONTENT_TYPE};
use crate::outcome::error_chain;
use crate::signature::DELIVERY_ID_HEADER;
use crate::{Delivered, DeliveryError, Notification, Secret};

/// The JetStream header that deduplicates publishes within a stream's
/// duplicate window.
pub const NATS_MESSAGE_ID_HEADER: &str = "Nats-Msg-Id";

/// A configured JetStream subject; connects on first use.
pub(crate) struct NatsChannel {
    name: String,
    url: Secret,
    /// `scheme://host:port` of `url`, for messages.
    server: String,
    subject: String,
    source: String,
    timeout: Duration,
    client: OnceCell<Client>,
}

impl NatsChannel {
    /// Builds the channel from validated settings; nothing connects yet, so
    /// a server that is down fails deliveries (retryably), not start-up.
    pub(crate) fn new(
        name: &str,
        url: Secret,
        server: String,
        subject: &str,
        source: &str,
        timeout: Duration,
    ) -> Self {
        NatsChannel {
            name: name.to_string(),
            url,
            server,
            subject: subject.to_string(),
            source: source.to_string(),
            timeout,
            client: OnceCell::new(),
        }
    }

    /// Publishes the CloudEvent with `Nats-Msg-Id: <delivery_id>` and waits
    /// for the stream's acknowledgement.
    pub(crate) async fn deliver(
        &self,
        notification: &Notification,
        recipient: Option<&str>,
    ) -> Result<Delivered, DeliveryError> {
        let prefix = format!("nats channel `{}`", self.name);
        let client = self.client(&prefix).await?;
        let mut jetstream = async_nats::jetstream::new(client.clone());
        jetstream.set_timeout(self.timeout);

        let body = cloud_event_bytes(notification, &self.source, recipient);
        let publish = PublishMessage::build()
            .payload(body.into())
            .message_id(&notification.delivery_id)
            .header(DELIVERY_ID_HEADER, notification.delivery_id.as_str())
            .header("Content-Type", CLOUDEVENTS_CONTENT_TYPE);
        let acknowledgement = jetstream
            .send_publish(self.subject.clone(), publish)
            .await
            .map_err(|error| self.classify(&prefix, &error))?
            .await
            .map_err(|error| self.classify(&prefix, &error))?;

        let duplicate = if acknowledgement.duplicate {
            " (a duplicate of an earlier publish, which the stream kept)"
        } else {
            ""
        };
        Ok(Delivered {
            status: None,
            detail: format!(
                "JetStream stream `{}` stored it at sequence {}{duplicate}",
                acknowledgement.stream, acknowledgement.sequence
            ),
        })
    }

    /// The connection, made on first use; a failed attempt is not cached,
    /// so the next delivery tries again. Once connected, the client
    /// reconnects by itself, and publishes made while it is away time out
    /// waiting for their acknowledgement (retryable).
    async fn client(&self, prefix: &str) -> Result<&Client, DeliveryError> {
        self.client
            .get_or_try_init(|| async {
                let options = ConnectOptions::new()
                    .name("custody-notify")
                    .connection_timeout(self.timeout)
                    .request_timeout(Some(self.timeout));
                match tokio::time::timeout(self.timeout, options.connect(self.url.expose())).await {
                    Ok(Ok(client)) => Ok(client),
                    Ok(Err(error)) => Err(DeliveryError::retryable(format!(
                        "{prefix}: could not connect to NATS at {}: {}; will retry",
                        self.server,
                        error_chain(&error)
                    ))),
                    Err(_elapsed) => Err(DeliveryError::retryable(format!(
                        "{prefix}: timed out after {} s connecting to NATS at {}; will retry",
                        self.timeout.as_secs(),
                        self.server
                    ))),
                }
            })
            .await
    }

    /// A subject no stream captures, and a message over the server's size
    /// limit, are permanent; everything else (no acknowledgement in time, a
    /// lost connection, JetStream refusing for now) is retryable.
    fn classify(&self, prefix: &str, error: &PublishError) -> DeliveryError {
        match error.kind() {
            PublishErrorKind::StreamNotFound => DeliveryError::permanent(format!(
                "{prefix}: no JetStream stream captures the subject `{}` on {} (the server answered \"no responders\"); create a stream whose subjects include it, with a duplicate window at least as long as the outbox retries",
                self.subject, self.server
            )),
            PublishErrorKind::MaxPayloadExceeded => DeliveryError::permanent(format!(
                "{prefix}: the notification is larger than the NATS server's max_payload: {}",
                error_chain(error)
            )),
            PublishErrorKind::TimedOut => DeliveryError::retryable(format!(
                "{prefix}: no JetStream acknowledgement from {} for `{}` within {} s; will retry",
                self.server,
                self.subject,
                self.timeout.as_secs()
            )),
            _ => DeliveryError::retryable(format!(
                "{prefix}: publishing to `{}` on {} failed: {}; will retry",
                self.subject,
                self.server,
                error_chain(error)
            )),
        }
    }
}
