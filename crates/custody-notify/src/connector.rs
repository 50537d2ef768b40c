//! The HTTP calls of a connector's write-back (a Jira comment, a ServiceNow
//! work note, a Slack `chat.update`), classified like every delivery: 2xx
//! is delivered; 408, 425, 429, 5xx and transport failures are retried;
//! redirects and other 4xx are not. The calls themselves are built by the
//! connector (`custody-connect`, IO-free); this only sends them.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, Url};

use crate::http::{client, exchange, Target};
use crate::{ConfigError, Delivered, DeliveryError};

/// Sends a connector's calls.
#[derive(Clone, Debug)]
pub struct CallSender {
    client: Client,
    name: String,
}

impl CallSender {
    /// A sender for the connector `name`, giving up on a call after `timeout`.
    pub fn new(name: &str, timeout: Duration) -> Result<CallSender, ConfigError> {
        Ok(CallSender {
            client: client("connector", name, timeout)?,
            name: name.to_string(),
        })
    }

    /// The HTTP client itself (no redirects, the timeout given), for a
    /// caller that reads every answer's status, headers and body itself.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends one call; on success returns the answer's status and the start
    /// of its body.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<(Delivered, Vec<u8>), DeliveryError> {
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| {
            DeliveryError::permanent(format!(
                "connector `{}`: `{method}` is not an HTTP method",
                self.name
            ))
        })?;
        let url = Url::parse(url).map_err(|error| {
            DeliveryError::permanent(format!(
                "connector `{}`: the write-back URL is not valid: {error}",
                self.name
            ))
        })?;
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                DeliveryError::permanent(format!(
                    "connector `{}`: `{}` is not a header name",
                    self.name,
                    custody_core::text::escape(name)
                ))
            })?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                DeliveryError::permanent(format!(
                    "connector `{}`: the value of header `{name}` is not valid",
                    self.name
                ))
            })?;
            map.append(header, value);
        }
        let target = Target {
            kind: "connector",
            channel: &self.name,
            url: &url,
        };
        exchange(&self.client, &target, method, map, body).await
    }
}

/// One page a poll fetched: the status, the headers (names lower-cased)
/// and the body, whatever the status.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The HTTP status.
    pub status: u16,
    /// The headers, names lower-cased.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body (at most `limit` bytes).
    pub body: Vec<u8>,
}

impl CallSender {
    /// A `GET` of `url` for a polled source, returning the answer whatever
    /// its status (the source decides what a status means), with the body
    /// read up to `limit` bytes; a longer body is an error, never cut.
    /// Redirects are not followed.
    pub async fn fetch(
        &self,
        url: &str,
        headers: &[(String, String)],
        limit: usize,
    ) -> Result<Fetched, DeliveryError> {
        let url = Url::parse(url).map_err(|error| {
            DeliveryError::permanent(format!(
                "connector `{}`: the poll URL is not valid: {error}",
                self.name
            ))
        })?;
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                DeliveryError::permanent(format!(
                    "connector `{}`: `{}` is not a header name",
                    self.name,
                    custody_core::text::escape(name)
                ))
            })?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                DeliveryError::permanent(format!(
                    "connector `{}`: the value of header `{name}` is not valid",
                    self.name
                ))
            })?;
            map.append(header, value);
        }
        let mut response = self
            .client
            .get(url.clone())
            .headers(map)
            .send()
            .await
            .map_err(|error| {
                DeliveryError::retryable(format!(
                    "connector `{}`: polling {} failed: {}",
                    self.name,
                    url.origin().ascii_serialization(),
                    custody_core::text::escape(&error.to_string())
                ))
            })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    value.as_bytes().to_vec(),
                )
            })
            .collect();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(DeliveryError::retryable(format!(
                            "connector `{}`: the answer to a poll is larger than {limit} bytes",
                            self.name
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(error) => {
                    return Err(DeliveryError::retryable(format!(
                        "connector `{}`: reading the answer to a poll failed: {}",
                        self.name,
                        custody_core::text::escape(&error.to_string())
                    )))
                }
            }
        }
        Ok(Fetched {
            status,
            headers,
            body,
        })
    }
}
