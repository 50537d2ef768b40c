//! The result of one delivery attempt.

use std::time::Duration;

/// A delivery the channel accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The receiver's status code: the HTTP status for webhooks and chat,
    /// the SMTP reply code for mail, none for NATS.
    pub status: Option<u16>,
    /// What accepted it, for the attempt's record in the trail (for example
    /// `HTTP 202 Accepted from https://hooks.example.com:443`, or the
    /// JetStream stream and sequence).
    pub detail: String,
}

/// A delivery that failed, and whether trying again later may succeed.
///
/// `retryable` is true for timeouts, transport failures, HTTP 408, 425,
/// 429 and 5xx, SMTP 4yz replies and JetStream acknowledgements that did not
/// arrive; it is false for everything a retry cannot fix: other HTTP 4xx,
/// redirects, SMTP 5yz replies, a JetStream subject no stream captures, and
/// a notification or recipient that is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// Whether the same delivery may succeed if tried again later.
    pub retryable: bool,
    /// The receiver's status code, when it answered: HTTP status for
    /// webhooks and chat, SMTP reply code for mail.
    pub status: Option<u16>,
    /// What failed and why, naming the channel; never holds a secret or a
    /// chat webhook URL. It quotes what the receiver said (a redirect's
    /// `Location`, an error body, an SMTP reply), so every control, bidi and
    /// invisible character in it is escaped
    /// (`custody_core::text::escape`): the message is stored in the ledger
    /// and shown on screens.
    pub message: String,
    /// How long the receiver asked us to wait (an HTTP `Retry-After` in
    /// seconds), when it did; an outbox should not retry sooner.
    pub retry_after: Option<Duration>,
}

impl DeliveryError {
    /// A failure that a later attempt may not repeat.
    pub fn retryable(message: impl Into<String>) -> Self {
        DeliveryError {
            retryable: true,
            status: None,
            message: sanitise(message.into()),
            retry_after: None,
        }
    }

    /// A failure that will repeat until someone changes something.
    pub fn permanent(message: impl Into<String>) -> Self {
        DeliveryError {
            retryable: false,
            status: None,
            message: sanitise(message.into()),
            retry_after: None,
        }
    }

    /// The same error with a status code.
    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
}

/// `text` with every control, bidi and invisible character escaped: text a
/// receiver chose reaches the ledger only in this form.
pub(crate) fn sanitise(text: String) -> String {
    match custody_core::text::escape(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(escaped) => escaped,
    }
}

/// Formats an error with its chain of sources, `outer: inner: innermost`.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source's text in their own; skip repeats.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
