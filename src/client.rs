//! The HTTP client behind the client commands.

use std::time::Duration;

use serde_json::Value;

/// Why a client command failed, mapped to the brief's exit codes.
#[derive(Debug)]
pub enum ClientError {
    /// Refused by the server (policy, separation of duties, not found, conflict): exit 1.
    Refused(Value),
    /// Bad usage, bad input or bad credentials: exit 2.
    Usage(String),
    /// The server rejected the request as malformed or unauthorised: exit 2.
    Rejected(Value),
    /// The server could not be reached or failed: exit 2.
    Connection(String),
}

impl ClientError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Refused(_) => 1,
            ClientError::Usage(_) | ClientError::Rejected(_) | ClientError::Connection(_) => 2,
        }
    }
}

/// A connection to one Custody server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client for `url`, authenticating with `token`.
    pub fn new(url: &str, token: Option<&str>) -> Result<Client, ClientError> {
        let token = token.ok_or_else(|| {
            ClientError::Usage(
                "no bearer token: set CUSTODY_TOKEN or pass --token\nhint: `custody init` prints the first admin token; `custody token create NAME` issues more".to_string(),
            )
        })?;
        Client::build(url, Some(token))
    }

    /// A client for the routes that need no token (checkpoints, proofs).
    pub fn public(url: &str) -> Result<Client, ClientError> {
        Client::build(url, None)
    }

    fn build(url: &str, token: Option<&str>) -> Result<Client, ClientError> {
        // reqwest is built with rustls and no default crypto provider: the
        // ring provider is lighter to build than aws-lc-rs. Installing twice
        // is harmless (the first one stays).
        let _ = rustls::crypto::ring::default_provider().install_default();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ClientError::Usage(format!(
                "`{url}` is not an http:// URL (set CUSTODY_URL or --url)"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| ClientError::Connection(error.to_string()))?;
        Ok(Client {
            http,
            base: url.trim_end_matches('/').to_string(),
            token: token.map(str::to_string),
        })
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.send(reqwest::Method::DELETE, path, None, None).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(reqwest::Method::PUT, path, Some(body), None)
            .await
    }

    /// `GET path` of a text resource (a signed checkpoint).
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        self.send_text(reqwest::Method::GET, path).await
    }

    /// `POST path` without a body, answered with text.
    pub async fn post_text(&self, path: &str) -> Result<String, ClientError> {
        self.send_text(reqwest::Method::POST, path).await
    }

    async fn send_text(&self, method: reqwest::Method, path: &str) -> Result<String, ClientError> {
        match self.send(method, path, None, None).await? {
            Value::String(text) => Ok(text),
            other => Ok(other.to_string()),
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(reqwest::Method::GET, path, None, None).await
    }

    /// `POST path` with a JSON body and, for case writes, an idempotency key.
    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        idempotency_key: Option<String>,
    ) -> Result<Value, ClientError> {
        self.send(reqwest::Method::POST, path, Some(body), idempotency_key)
            .await
    }

    /// Sends a request. Writes that carry an idempotency key are retried on
    /// connection failures and 503s: the key makes a retry append nothing new.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<String>,
    ) -> Result<Value, ClientError> {
        let attempts = if idempotency_key.is_some() || method == reqwest::Method::GET {
            3
        } else {
            1
        };
        let mut last_error = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250 * (1 << attempt))).await;
            }
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .header("custody-via", "cli");
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            if let Some(key) = &idempotency_key {
                request = request.header("idempotency-key", key);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    last_error = Some(ClientError::Connection(format!(
                        "cannot reach the Custody server at {}: {error}\nhint: is `custody serve` running? set CUSTODY_URL or --url",
                        self.base
                    )));
                    continue;
                }
            };
            match answer(response).await {
                Err(ClientError::Connection(message)) if message.starts_with(UNAVAILABLE) => {
                    last_error = Some(ClientError::Connection(
                        message.trim_start_matches(UNAVAILABLE).to_string(),
                    ));
                    continue;
                }
                other => return other,
            }
        }
        Err(last_error
            .unwrap_or_else(|| ClientError::Connection("no attempt was made".to_string())))
    }

    /// Streams `file` (of `length` bytes) as the body of `POST path`; no
    /// overall timeout, since evidence can be large.
    pub async fn upload(
        &self,
        path: &str,
        file: tokio::fs::File,
        length: u64,
        content_type: Option<&str>,
        idempotency_key: String,
    ) -> Result<Value, ClientError> {
        let http = self.streaming_client()?;
        let mut request = http
            .post(format!("{}{path}", self.base))
            .header("custody-via", "cli")
            .header("idempotency-key", idempotency_key)
            .header(reqwest::header::CONTENT_LENGTH, length)
            .body(reqwest::Body::wrap_stream(
                tokio_util::io::ReaderStream::new(file),
            ));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(content_type) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        let response = request.send().await.map_err(|error| {
            ClientError::Connection(format!(
                "cannot upload to the Custody server at {}: {error}\nhint: the server closes the connection when an upload is larger than its [evidence] max_upload_bytes",
                self.base
            ))
        })?;
        answer(response).await.map_err(strip_unavailable)
    }

    /// `GET path` as a stream of bytes (an evidence download).
    pub async fn download(&self, path: &str) -> Result<reqwest::Response, ClientError> {
        let http = self.streaming_client()?;
        let mut request = http
            .get(format!("{}{path}", self.base))
            .header("custody-via", "cli");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|error| {
            ClientError::Connection(format!(
                "cannot reach the Custody server at {}: {error}",
                self.base
            ))
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(answer(response)
            .await
            .map(|value| ClientError::Connection(problem_text(&value)))
            .unwrap_or_else(strip_unavailable))
    }

    fn streaming_client(&self) -> Result<reqwest::Client, ClientError> {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| ClientError::Connection(error.to_string()))
    }
}

/// Marks a 503 answer, which `send` retries.
const UNAVAILABLE: &str = "\u{0}unavailable:";

fn strip_unavailable(error: ClientError) -> ClientError {
    match error {
        ClientError::Connection(message) => {
            ClientError::Connection(message.trim_start_matches(UNAVAILABLE).to_string())
        }
        other => other,
    }
}

/// The JSON of a response, or the error its status means.
async fn answer(response: reqwest::Response) -> Result<Value, ClientError> {
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|error| ClientError::Connection(error.to_string()))?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        return Ok(value);
    }
    match status.as_u16() {
        403 | 404 | 409 => Err(ClientError::Refused(value)),
        503 => Err(ClientError::Connection(format!(
            "{UNAVAILABLE}{}",
            problem_text(&value)
        ))),
        400..=499 => Err(ClientError::Rejected(value)),
        _ => Err(ClientError::Connection(problem_text(&value))),
    }
}

/// Rendering of a problem document for a terminal: the detail (or title),
/// the rule, and a `hint:` line. Every part the server sent is escaped (see
/// [`custody_core::text::escape`]): a problem can quote outside input, such
/// as a refused identifier.
pub fn problem_text(value: &Value) -> String {
    use custody_core::text::escape;
    match value {
        Value::Object(_) => {
            let mut text = escape(
                value["detail"]
                    .as_str()
                    .or_else(|| value["title"].as_str())
                    .unwrap_or("request failed"),
            )
            .into_owned();
            if let Some(rule) = value["rule"].as_str() {
                text.push_str(&format!(" [{}]", escape(rule)));
            }
            if let Some(hint) = value["hint"].as_str() {
                text.push_str(&format!("\nhint: {}", escape(hint)));
            }
            text
        }
        Value::String(text) => crate::output::escape_lines(text),
        other => escape(&other.to_string()).into_owned(),
    }
}
