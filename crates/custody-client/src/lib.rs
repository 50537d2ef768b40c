//! A typed HTTP client for Custody's `/v1/` API.
//!
//! Every method sends one of `custody-api`'s bodies and reads one of its
//! answers, the very types the server's handlers take and return, so a
//! field renamed on the server is renamed here too, or fails to compile
//! where it is read. An [`Answer`] keeps the JSON document exactly as the
//! server sent it (what `--json` prints) beside its typed reading
//! ([`Answer::document`]).
//!
//! Writes that carry an idempotency key, and reads, are retried on
//! connection failures and `503`s: the key makes a retried write append
//! nothing new. Every text that came from the server and ends up in an
//! error is escaped for a terminal (see [`problem_text`]).

#![forbid(unsafe_code)]

mod admin;
mod cases;
mod decisions;
mod delegations;
mod evidence;
mod export;
mod identities;
mod log;
mod notifications;
mod policy;
mod principals;
mod tokens;

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub use evidence::{Download, Upload};
pub use export::ExportPage;

/// Why a request failed. Its message is safe to print on a terminal: what
/// the server said is escaped (see [`problem_text`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Refused by the server (`403`, `404`, `409`: policy, separation of
    /// duties, not found, conflict), with its problem document.
    #[error("{}", .0.text())]
    Refused(ErrorAnswer),
    /// The server rejected the request as malformed or unauthorised (any
    /// other `4xx`), with its problem document.
    #[error("{}", .0.text())]
    Rejected(ErrorAnswer),
    /// The server could not be reached, or failed (`5xx`), or broke off.
    #[error("{}", escape_lines(.0))]
    Connection(String),
    /// The client cannot be made as asked: no token, or not an HTTP URL.
    #[error("{}", escape_lines(.0))]
    Configuration(String),
    /// The server answered with a document that is not the one this
    /// client's types describe (a server of another version?).
    #[error("{}", escape_lines(.0))]
    Unreadable(String),
}

impl ClientError {
    /// Whether the server refused the request (as opposed to rejecting it
    /// as malformed, or failing, or not being reached).
    pub fn is_refusal(&self) -> bool {
        matches!(self, ClientError::Refused(_))
    }
}

/// A connection to one Custody server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// Certificate authorities trusted beside the system's
    /// ([`Client::trusting`]), for every connection this client makes.
    roots: Vec<reqwest::Certificate>,
}

/// A JSON answer as the server sent it, and its reading as `T`.
#[derive(Clone, Debug)]
pub struct Answer<T> {
    json: Value,
    document: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Answer<T> {
    fn new(json: Value) -> Answer<T> {
        Answer {
            json,
            document: PhantomData,
        }
    }

    /// The document exactly as the server sent it.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// The document exactly as the server sent it, owned.
    pub fn into_json(self) -> Value {
        self.json
    }

    /// The document read as the API's type for it.
    pub fn document(&self) -> Result<T, ClientError> {
        T::deserialize(&self.json).map_err(|error| {
            ClientError::Unreadable(format!(
                "the server's answer is not the document this client expects ({error})\nhint: is the server running another version of Custody?"
            ))
        })
    }
}

impl Client {
    /// A client for `url`, authenticating with `token`.
    pub fn new(url: &str, token: Option<&str>) -> Result<Client, ClientError> {
        let token = token.ok_or_else(|| {
            ClientError::Configuration(
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
            return Err(ClientError::Configuration(format!(
                "`{url}` is not an http:// URL (set CUSTODY_URL or --url)"
            )));
        }
        let mut client = Client {
            http: reqwest::Client::new(),
            base: url.trim_end_matches('/').to_string(),
            token: token.map(str::to_string),
            roots: Vec::new(),
        };
        client.http = client
            .http_builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|error| ClientError::Connection(error.to_string()))?;
        Ok(client)
    }

    /// This client, trusting the certificate authorities of the PEM file
    /// `ca_cert` beside the system's (`--ca-cert`, `CUSTODY_CA_CERT`): for a
    /// server whose certificate a private CA issued.
    pub fn trusting(mut self, ca_cert: &std::path::Path) -> Result<Client, ClientError> {
        let pem = std::fs::read(ca_cert).map_err(|error| {
            ClientError::Configuration(format!(
                "cannot read the CA certificate file {}: {error}\nhint: --ca-cert (CUSTODY_CA_CERT) names a PEM file of the CA certificates that issued the server's",
                ca_cert.display()
            ))
        })?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|roots| !roots.is_empty())
            .ok_or_else(|| {
                ClientError::Configuration(format!(
                    "the CA certificate file {} holds no PEM certificate\nhint: give a file of `-----BEGIN CERTIFICATE-----` blocks",
                    ca_cert.display()
                ))
            })?;
        self.roots = roots;
        self.http = self
            .http_builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|error| ClientError::Connection(error.to_string()))?;
        Ok(self)
    }

    /// A client for the same server, with the same trusted authorities,
    /// authenticating with `token` instead.
    pub fn as_token(&self, token: Option<&str>) -> Client {
        Client {
            http: self.http.clone(),
            base: self.base.clone(),
            token: token.map(str::to_string),
            roots: self.roots.clone(),
        }
    }

    /// What every HTTP client of this connection starts from: no
    /// redirects, a connect timeout, and the trusted authorities.
    fn http_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .tls_certs_merge(self.roots.iter().cloned())
    }

    /// `GET path`.
    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Answer<T>, ClientError> {
        self.send(reqwest::Method::GET, path, None::<&()>, None)
            .await
            .map(Answer::new)
    }

    /// `POST path` with a JSON body and, for case writes, an idempotency key.
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        idempotency_key: Option<&str>,
    ) -> Result<Answer<T>, ClientError> {
        self.send(reqwest::Method::POST, path, Some(body), idempotency_key)
            .await
            .map(Answer::new)
    }

    /// `PUT path` with a JSON body.
    async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Answer<T>, ClientError> {
        self.send(reqwest::Method::PUT, path, Some(body), None)
            .await
            .map(Answer::new)
    }

    /// `DELETE path`.
    async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<Answer<T>, ClientError> {
        self.send(reqwest::Method::DELETE, path, None::<&()>, None)
            .await
            .map(Answer::new)
    }

    /// `method path` of a text resource (a signed checkpoint).
    async fn send_text(&self, method: reqwest::Method, path: &str) -> Result<String, ClientError> {
        match self.send(method, path, None::<&()>, None).await? {
            Value::String(text) => Ok(text),
            other => Ok(other.to_string()),
        }
    }

    /// Sends a request. Writes that carry an idempotency key are retried on
    /// connection failures and 503s: the key makes a retry append nothing new.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
        idempotency_key: Option<&str>,
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
            if let Some(key) = idempotency_key {
                request = request.header("idempotency-key", key);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    last_error = Some(ClientError::Connection(unreachable(&self.base, &error)));
                    // A certificate that is not trusted stays so: retrying is pointless.
                    if is_certificate_error(&error) {
                        break;
                    }
                    continue;
                }
            };
            match answer(response).await {
                Err(Failure::Unavailable(message)) => {
                    last_error = Some(ClientError::Connection(message));
                    continue;
                }
                other => return other.map_err(ClientError::from),
            }
        }
        Err(last_error
            .unwrap_or_else(|| ClientError::Connection("no attempt was made".to_string())))
    }

    /// A client for streamed bodies: no overall timeout, since evidence can
    /// be large.
    fn streaming_client(&self) -> Result<reqwest::Client, ClientError> {
        self.http_builder()
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| ClientError::Connection(error.to_string()))
    }
}

/// Why the server at `base` could not be reached, with every cause (the
/// TLS reason of a refused certificate is a cause of reqwest's error).
fn unreachable(base: &str, error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    let hint = if is_certificate_error(error) {
        "the server's TLS certificate is not trusted: if a private CA issued it, pass its PEM certificate with --ca-cert (CUSTODY_CA_CERT)"
    } else {
        "is `custody serve` running? set CUSTODY_URL or --url"
    };
    format!("cannot reach the Custody server at {base}: {text}\nhint: {hint}")
}

/// Whether `error` is a refused TLS certificate (unknown issuer, expired,
/// wrong name).
fn is_certificate_error(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        // rustls's error comes wrapped in an `io::Error`, whose `source`
        // skips it: look inside.
        let rustls_error = cause.downcast_ref::<rustls::Error>().or_else(|| {
            cause
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        // rustls says `invalid peer certificate: ...`; the text is the
        // fallback for a wrapper that hides the typed error.
        if matches!(rustls_error, Some(rustls::Error::InvalidCertificate(_)))
            || cause.to_string().contains("invalid peer certificate")
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// How an answer failed: a `503` is told apart, because [`Client::send`]
/// retries it.
enum Failure {
    Unavailable(String),
    Other(ClientError),
}

impl From<Failure> for ClientError {
    fn from(failure: Failure) -> ClientError {
        match failure {
            Failure::Unavailable(message) => ClientError::Connection(message),
            Failure::Other(error) => error,
        }
    }
}

/// The JSON of a response (or its text, when it is not JSON), or the error
/// its status means.
async fn answer(response: reqwest::Response) -> Result<Value, Failure> {
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|error| Failure::Other(ClientError::Connection(error.to_string())))?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        return Ok(value);
    }
    Err(match status.as_u16() {
        403 | 404 | 409 => Failure::Other(ClientError::Refused(ErrorAnswer::from(value))),
        503 => Failure::Unavailable(problem_text(&value)),
        400..=499 => Failure::Other(ClientError::Rejected(ErrorAnswer::from(value))),
        _ => Failure::Other(ClientError::Connection(problem_text(&value))),
    })
}

/// Percent-encodes one URL path segment or query value.
fn path_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'@') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// What the server answered a failed request with: its problem document,
/// typed, or, when the answer is not one (a proxy's error page, a document
/// whose members are not what RFC 9457 says), the answer as it came.
#[derive(Clone, Debug, PartialEq)]
pub enum ErrorAnswer {
    /// A problem document (RFC 9457), as the server writes it (boxed: it
    /// is large beside the other errors).
    Problem(Box<custody_api::Problem>),
    /// Anything else: JSON as it came, or the text of an answer that is
    /// not JSON.
    Other(Value),
}

impl From<Value> for ErrorAnswer {
    fn from(value: Value) -> ErrorAnswer {
        if value.is_object() {
            if let Ok(problem) = serde_json::from_value::<custody_api::Problem>(value.clone()) {
                return ErrorAnswer::Problem(Box::new(problem));
            }
        }
        ErrorAnswer::Other(value)
    }
}

impl From<custody_api::Problem> for ErrorAnswer {
    fn from(problem: custody_api::Problem) -> ErrorAnswer {
        ErrorAnswer::Problem(Box::new(problem))
    }
}

impl ErrorAnswer {
    /// The problem document, when the answer is one.
    pub fn problem(&self) -> Option<&custody_api::Problem> {
        match self {
            ErrorAnswer::Problem(problem) => Some(problem.as_ref()),
            ErrorAnswer::Other(_) => None,
        }
    }

    /// The HTTP status the problem document states.
    pub fn status(&self) -> Option<u16> {
        self.problem().and_then(|problem| problem.status)
    }

    /// The answer for a terminal: the detail (or title), the rule, and a
    /// `hint:` line. Every part the server sent is escaped (see
    /// [`custody_core::text::escape`]): a problem can quote outside input,
    /// such as a refused identifier. An answer that is not a problem
    /// document is still shown, escaped.
    pub fn text(&self) -> String {
        match self {
            ErrorAnswer::Problem(problem) => render_problem(problem),
            ErrorAnswer::Other(value) => value_text(value),
        }
    }
}

/// A problem document for a terminal, as [`ErrorAnswer::text`] shows it:
/// the detail (or title), the rule, and a `hint:` line, each escaped.
pub fn render_problem(problem: &custody_api::Problem) -> String {
    use custody_core::text::escape;
    let mut text = escape(
        problem
            .detail
            .as_deref()
            .or(problem.title.as_deref())
            .unwrap_or("request failed"),
    )
    .into_owned();
    if let Some(rule) = &problem.rule {
        text.push_str(&format!(" [{}]", escape(rule)));
    }
    if let Some(hint) = &problem.hint {
        text.push_str(&format!("\nhint: {}", escape(hint)));
    }
    text
}

/// [`ErrorAnswer::text`] of an answer as it came (JSON, or the text of an
/// answer that is not JSON).
pub fn problem_text(value: &Value) -> String {
    ErrorAnswer::from(value.clone()).text()
}

/// The text of an answer that is not a problem document: an object's
/// string members read as a problem's, anything else escaped line by line.
fn value_text(value: &Value) -> String {
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
        Value::String(text) => escape_lines(text),
        other => escape(&other.to_string()).into_owned(),
    }
}

/// Escapes each line of `text` for a terminal, keeping the line breaks.
pub fn escape_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| custody_core::text::escape(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_segment_keeps_only_unreserved_bytes() {
        assert_eq!(path_segment("AC-019ad2c1"), "AC-019ad2c1");
        assert_eq!(path_segment("jira:SEC 1/2"), "jira%3ASEC%201%2F2");
        assert_eq!(path_segment("a@b.c_d~e"), "a@b.c_d~e");
        assert_eq!(path_segment("é"), "%C3%A9");
    }

    #[test]
    fn a_problem_is_shown_escaped_with_its_rule_and_hint() {
        let problem = serde_json::json!({
            "detail": "no\u{202e}pe\rnow",
            "rule": "sod.self-approval",
            "hint": "ask\u{7}someone else",
        });
        assert_eq!(
            problem_text(&problem),
            "no\\u{202e}pe\\rnow [sod.self-approval]\nhint: ask\\u{7}someone else"
        );
        // Text that is no problem document at all (a proxy's page) is shown
        // line by line, escaped.
        assert_eq!(
            problem_text(&Value::String("bad\u{1b}[2J\ngateway".to_string())),
            "bad\\u{1b}[2J\ngateway"
        );
        let answer = ErrorAnswer::from(problem);
        assert_eq!(
            answer.problem().and_then(|problem| problem.rule.as_deref()),
            Some("sod.self-approval")
        );
        assert_eq!(
            ClientError::Refused(answer).to_string(),
            "no\\u{202e}pe\\rnow [sod.self-approval]\nhint: ask\\u{7}someone else"
        );
        // A document whose members are not a problem's is kept as it came,
        // and shown as before: its string members read as a problem's.
        let odd = serde_json::json!({"detail": 5, "title": "Bad\u{7}", "status": "x"});
        let answer = ErrorAnswer::from(odd.clone());
        assert_eq!(answer, ErrorAnswer::Other(odd));
        assert_eq!(answer.status(), None);
        assert_eq!(answer.text(), "Bad\\u{7}");
    }

    #[test]
    fn an_answer_that_is_not_the_expected_document_is_unreadable() {
        let answer: Answer<custody_api::WriteOutcome> =
            Answer::new(serde_json::json!({"case_id": "AC-1"}));
        assert_eq!(answer.json()["case_id"], "AC-1");
        match answer.document() {
            Err(ClientError::Unreadable(message)) => {
                assert!(message.contains("another version"), "{message}")
            }
            other => panic!("expected Unreadable, got {other:?}"),
        }
    }
}
