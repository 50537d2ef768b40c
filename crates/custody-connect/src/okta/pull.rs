//! Polling Okta's System Log (`GET /api/v1/logs`).
//!
//! The first poll asks for the events published since `lookback_seconds`
//! before it, oldest first (`sortOrder=ASCENDING`), at most `limit` a page,
//! and only the event types Custody reads (a `filter` on `eventType`). Okta
//! answers a poll with no `until` with a `Link` header whose `rel="next"`
//! URL continues after the last event returned, on an empty page too: that
//! URL is the cursor, persisted by the server once the page is recorded,
//! and the next poll is a `GET` of it. A page with fewer events than
//! `limit` is the end of the log for now: the next page is fetched after
//! `interval_seconds`; a full page is followed at once.
//!
//! The cursor is fetched with the API token, so it must point at the
//! configured org's `/api/v1/logs`: a `next` link elsewhere is refused (the
//! page is not recorded), and a stored cursor for another org (after
//! `org_url` changed) is dropped for a first poll from the look-back.
//!
//! Okta's rate limit answers 429; that, a 5xx or any other answer but 200
//! is an error the server's worker backs off from, keeping the cursor.

use crate::config::Secret;
use crate::observe::{Page, Parsed, Pull, PullRequest};
use crate::{Headers, Refusal};
use custody_core::Timestamp;

use super::event::{Reader, READ_EVENT_TYPES};

/// The path of the System Log API.
pub const LOGS_PATH: &str = "/api/v1/logs";

/// How the System Log is polled.
#[derive(Debug)]
pub(super) struct LogPoller {
    /// The org's base URL, without a trailing slash.
    pub org_url: String,
    /// `SSWS <api token>`.
    pub authorization: Secret,
    /// Seconds between polls at the end of the log.
    pub interval_seconds: u64,
    /// How far back the first poll starts.
    pub lookback_seconds: u64,
    /// Events per page.
    pub limit: u32,
    /// How records are read.
    pub reader: Reader,
}

impl LogPoller {
    /// Whether `url` is a URL of this org's System Log API, which may be
    /// fetched with the API token.
    fn is_logs_url(&self, url: &str) -> bool {
        url.strip_prefix(&self.org_url)
            .and_then(|rest| rest.strip_prefix(LOGS_PATH))
            .is_some_and(|rest| {
                (rest.is_empty() || rest.starts_with('?'))
                    && !rest.contains('#')
                    && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
            })
    }

    /// The URL of a first poll at `now`.
    pub fn first_url(&self, now: Timestamp) -> String {
        let since =
            okta_time(now.plus_seconds(-i64::try_from(self.lookback_seconds).unwrap_or(i64::MAX)));
        let filter = READ_EVENT_TYPES
            .iter()
            .map(|event_type| format!("eventType eq \"{event_type}\""))
            .collect::<Vec<_>>()
            .join(" or ");
        format!(
            "{}{LOGS_PATH}?since={}&sortOrder=ASCENDING&limit={}&filter={}",
            self.org_url,
            crate::percent_encode(&since),
            self.limit,
            crate::percent_encode(&filter)
        )
    }
}

impl Pull for LogPoller {
    fn request(&self, cursor: Option<&str>, now: Timestamp) -> Result<PullRequest, Refusal> {
        let url = match cursor {
            Some(cursor) if self.is_logs_url(cursor) => cursor.to_string(),
            _ => self.first_url(now),
        };
        Ok(PullRequest {
            url,
            headers: vec![
                (
                    "Authorization".to_string(),
                    self.authorization.expose().to_string(),
                ),
                ("Accept".to_string(), "application/json".to_string()),
            ],
        })
    }

    fn page(
        &self,
        cursor: Option<&str>,
        status: u16,
        headers: &Headers,
        body: &[u8],
    ) -> Result<Page, Refusal> {
        let _ = cursor;
        match status {
            200 => {}
            401 | 403 => {
                return Err(Refusal::Unauthenticated(format!(
                    "Okta refused the API token with {status}{}; check `api_token` (a token of an administrator allowed to read the System Log)",
                    error_summary(body)
                )))
            }
            429 => {
                let reset = headers
                    .get("x-rate-limit-reset")
                    .and_then(|reset| reset.trim().parse::<i64>().ok())
                    .map(|seconds| {
                        format!(
                            " until {}",
                            Timestamp::from_micros(seconds.saturating_mul(1_000_000))
                        )
                    })
                    .unwrap_or_default();
                return Err(Refusal::Malformed(format!(
                    "Okta answered 429 Too Many Requests: the org's rate limit for {LOGS_PATH} is spent{reset}; the poll backs off and the page is read again"
                )));
            }
            other => {
                return Err(Refusal::Malformed(format!(
                    "Okta answered {other} to a poll of {LOGS_PATH}{}; the page is read again",
                    error_summary(body)
                )))
            }
        }
        let mut parsed = Parsed::default();
        let count = self
            .reader
            .read_array(body, "the answer of /api/v1/logs", &mut parsed)?;
        let next = match next_link(headers) {
            Some(next) if self.is_logs_url(&next) => Some(next),
            Some(next) => {
                return Err(Refusal::Malformed(format!(
                    "the next link `{}` is not this org's {LOGS_PATH}; it is not followed with the API token",
                    custody_core::text::escape(&next)
                )))
            }
            None => None,
        };
        let full = u32::try_from(count).is_ok_and(|count| count >= self.limit);
        Ok(Page {
            parsed,
            more: full && next.is_some(),
            cursor: next,
        })
    }

    fn interval_seconds(&self) -> u64 {
        self.interval_seconds
    }
}

/// ` (errorSummary)` of an Okta error body, escaped, when it has one.
fn error_summary(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|error| error["errorSummary"].as_str().map(str::to_string))
        .map(|summary| {
            let summary: String = summary.chars().take(200).collect();
            format!(" ({})", custody_core::text::escape(&summary))
        })
        .unwrap_or_default()
}

/// A time as Okta's `since` takes it: RFC 3339 in UTC with milliseconds.
fn okta_time(time: Timestamp) -> String {
    // `Timestamp` writes six fractional digits: keep three.
    let text = time.to_string();
    match text.get(..23) {
        Some(millis) => format!("{millis}Z"),
        None => text,
    }
}

/// The URL of the `rel="next"` link among the `Link` headers (RFC 8288),
/// whether Okta sends one header per link or several in one.
pub(super) fn next_link(headers: &Headers) -> Option<String> {
    for value in headers.get_all("link") {
        let mut rest = value;
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let close = after.find('>')?;
            let url = &after[..close];
            let params_and_rest = &after[close + 1..];
            // The parameters run to the next link (a `,` before a `<`).
            let end = params_and_rest.find('<').unwrap_or(params_and_rest.len());
            let params = &params_and_rest[..end];
            let is_next = params.split(';').any(|param| {
                let Some((name, value)) = param.split_once('=') else {
                    return false;
                };
                name.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_end_matches(',')
                        .trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            });
            if is_next {
                return Some(url.to_string());
            }
            rest = &params_and_rest[end..];
        }
    }
    None
}
