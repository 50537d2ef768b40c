//! What the webhook and chat channels share: the HTTP client, one POST,
//! and the classification of its answer.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{Client, StatusCode, Url};

use crate::outcome::error_chain;
use crate::{ConfigError, Delivered, DeliveryError};

/// The `User-Agent` of every request.
const USER_AGENT_VALUE: &str = concat!("custody-notify/", env!("CARGO_PKG_VERSION"));

/// How much of an error response's body is quoted in the error message.
const QUOTED_BODY_LIMIT: usize = 300;

/// Installs rustls's ring provider as the process default unless one is
/// installed already (by us or by the application), which is not an error.
pub(crate) fn install_crypto_provider() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP client that never follows redirects and gives up after `timeout`.
pub(crate) fn client(
    kind: &'static str,
    channel: &str,
    timeout: Duration,
) -> Result<Client, ConfigError> {
    install_crypto_provider();
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(USER_AGENT_VALUE)
        .build()
        .map_err(|error| ConfigError::Client {
            kind,
            channel: channel.to_string(),
            detail: error_chain(&error.without_url()),
        })
}

/// A POST target, described without the parts of its URL that may be
/// secret.
pub(crate) struct Target<'a> {
    /// What it is: `webhook channel`, `chat channel`, `hec sink`, ...
    pub kind: &'static str,
    /// The channel's name.
    pub channel: &'a str,
    /// Where to post.
    pub url: &'a Url,
}

/// POSTs `body` and classifies the answer: 2xx is delivered; 408, 425, 429
/// and 5xx (and anything outside 1xx-5xx) are retryable; redirects and
/// other 4xx are not; transport failures and timeouts are retryable.
pub(crate) async fn post(
    client: &Client,
    target: &Target<'_>,
    content_type: &'static str,
    mut headers: HeaderMap,
    body: Vec<u8>,
) -> Result<Delivered, DeliveryError> {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    let (delivered, _) = exchange(client, target, reqwest::Method::POST, headers, body).await?;
    Ok(delivered)
}

/// Sends one request and classifies the answer as [`post`] does; on
/// success returns the start of the answer's body too (at most 64 KiB),
/// for callers that must read it (a vendor API that answers 200 with an
/// error inside).
pub(crate) async fn exchange(
    client: &Client,
    target: &Target<'_>,
    method: reqwest::Method,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<(Delivered, Vec<u8>), DeliveryError> {
    let origin = origin(target.url);
    let prefix = format!("{} `{}`", target.kind, target.channel);
    let response = client
        .request(method, target.url.clone())
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|error| transport_error(&prefix, &origin, error))?;

    let status = response.status();
    if status.is_success() {
        let mut answer = Vec::new();
        let mut response = response;
        while answer.len() < 64 * 1024 {
            match response.chunk().await {
                Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        return Ok((
            Delivered {
                status: Some(status.as_u16()),
                detail: format!("HTTP {} from {origin}", describe(status)),
            },
            answer,
        ));
    }
    let location = response
        .headers()
        .get(LOCATION)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let quoted = quote_body(response).await;
    let code = status.as_u16();

    let error = if status.is_redirection() {
        DeliveryError::permanent(format!(
            "{prefix}: {origin} answered HTTP {} redirecting to `{}`; redirects are never followed, so set the channel's url to the final address{quoted}",
            describe(status),
            location.as_deref().unwrap_or("(no Location header)"),
        ))
    } else if is_retryable_status(status) {
        DeliveryError {
            retry_after,
            ..DeliveryError::retryable(format!(
                "{prefix}: {origin} answered HTTP {}; will retry{quoted}",
                describe(status)
            ))
        }
    } else {
        DeliveryError::permanent(format!(
            "{prefix}: {origin} refused the notification with HTTP {}; retrying will not help, check the channel's url and the receiver's configuration{quoted}",
            describe(status)
        ))
    };
    Err(error.with_status(code))
}

/// Whether an HTTP status that is not 2xx is worth retrying.
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    match status.as_u16() {
        408 | 425 | 429 => true,
        300..=499 => false,
        // 5xx, and codes outside the standard classes, which only a broken
        // (and perhaps recovering) receiver sends.
        _ => true,
    }
}

/// `scheme://host:port` of a URL: enough to say where a request went,
/// without a path or user info that may hold a credential.
pub(crate) fn origin(url: &Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        _ => format!("{}://", url.scheme()),
    }
}

/// `503 Service Unavailable`, or just the number for unknown codes.
fn describe(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// A transport failure (no HTTP answer): always retryable.
fn transport_error(prefix: &str, origin: &str, error: reqwest::Error) -> DeliveryError {
    let what = if error.is_timeout() {
        "timed out waiting for"
    } else if error.is_connect() {
        "could not connect to"
    } else {
        "failed to exchange the request with"
    };
    // `without_url` keeps chat webhook tokens out of the message.
    let detail = error_chain(&error.without_url());
    DeliveryError::retryable(format!("{prefix}: {what} {origin}: {detail}; will retry"))
}

/// The start of an error response's body, as `; the receiver said: "..."`,
/// or nothing when it is empty or unreadable.
async fn quote_body(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < QUOTED_BODY_LIMIT * 4 {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(QUOTED_BODY_LIMIT)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        String::new()
    } else {
        format!("; the receiver said: \"{cleaned}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification() {
        for code in [408, 425, 429, 500, 502, 503, 504, 599] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(is_retryable_status(status), "{code}");
        }
        for code in [
            300, 301, 302, 307, 308, 400, 401, 403, 404, 405, 409, 410, 413, 422, 499,
        ] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(!is_retryable_status(status), "{code}");
        }
    }

    #[test]
    fn origin_hides_path_query_and_user_info() {
        let url = Url::parse("https://user:pw@hooks.slack.com/services/T/B/TOKEN?x=1").unwrap();
        assert_eq!(origin(&url), "https://hooks.slack.com:443");
        let url = Url::parse("http://127.0.0.1:8080/hook").unwrap();
        assert_eq!(origin(&url), "http://127.0.0.1:8080");
    }
}
