//! Signed CloudEvents over HTTP.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Url};

use crate::cloudevents::{cloud_event_bytes, CLOUDEVENTS_CONTENT_TYPE};
use crate::http::{self, Target};
use crate::signature::{sign_webhook, DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::{ConfigError, Delivered, DeliveryError, Notification, Secret};

/// A configured webhook endpoint.
pub(crate) struct WebhookChannel {
    name: String,
    url: Url,
    secret: Secret,
    source: String,
    client: Client,
}

impl WebhookChannel {
    /// Builds the channel from validated settings.
    pub(crate) fn new(
        name: &str,
        url: Url,
        secret: Secret,
        source: &str,
        timeout: Duration,
    ) -> Result<Self, ConfigError> {
        Ok(WebhookChannel {
            name: name.to_string(),
            url,
            secret,
            source: source.to_string(),
            client: http::client("webhook", name, timeout)?,
        })
    }

    /// POSTs the signed CloudEvent.
    pub(crate) async fn deliver(
        &self,
        notification: &Notification,
        recipient: Option<&str>,
    ) -> Result<Delivered, DeliveryError> {
        let body = cloud_event_bytes(notification, &self.source, recipient);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or(0);
        let signature = sign_webhook(self.secret.expose().as_bytes(), timestamp, &body);

        let mut headers = HeaderMap::new();
        for (name, value) in [
            (DELIVERY_ID_HEADER, notification.delivery_id.clone()),
            (TIMESTAMP_HEADER, timestamp.to_string()),
            (SIGNATURE_HEADER, signature),
        ] {
            // The delivery ID was checked to be printable ASCII and the other
            // values are digits and hex, so this fails only on a broken
            // invariant; report it rather than panic.
            let header = HeaderName::from_bytes(name.as_bytes())
                .ok()
                .zip(HeaderValue::from_str(&value).ok())
                .ok_or_else(|| {
                    DeliveryError::permanent(format!(
                        "webhook channel `{}`: {name}: `{}` is not a valid HTTP header value",
                        self.name,
                        value.escape_debug()
                    ))
                })?;
            headers.insert(header.0, header.1);
        }
        let target = Target {
            kind: "webhook channel",
            channel: &self.name,
            url: &self.url,
        };
        http::post(
            &self.client,
            &target,
            CLOUDEVENTS_CONTENT_TYPE,
            headers,
            body,
        )
        .await
    }
}
