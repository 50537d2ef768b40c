//! Polling Microsoft Graph's `GET /v1.0/auditLogs/directoryAudits`.
//!
//! Graph has no delta query for audit logs, so the poll asks for the
//! records with `activityDateTime ge <since>`, oldest first, `page_size` at
//! a time, and follows each page's `@odata.nextLink` to the end. The cursor
//! says where it is: `newest=<time>` (the newest `activityDateTime` read so
//! far) and, in the middle of a result set, `next=<the nextLink>`. A poll
//! after the end starts again `overlap_seconds` before the newest record
//! read: Entra ID publishes a record minutes after its activity, and not in
//! order, so a record older than the newest one read may still appear; the
//! overlap reads it, and a record read twice is recorded once. The first
//! poll starts `lookback_seconds` ago.
//!
//! The cursor is fetched with the bearer token, so only a `nextLink` to the
//! configured Graph's `directoryAudits` is followed. An answer other than
//! a page (429 and 503 with `Retry-After`, 401 when the token expired) is
//! an error the server's worker backs off from, keeping its cursor.

use serde::Deserialize;

use crate::config::Secret;
use crate::observe::{Page, Parsed, Pull, PullRequest};
use crate::{Headers, Refusal};
use custody_core::Timestamp;

use super::audit::{Collection, Reader};

/// The path of the directory audit log.
pub const AUDITS_PATH: &str = "/v1.0/auditLogs/directoryAudits";

/// How the audit log is polled.
#[derive(Debug)]
pub(super) struct AuditPoller {
    /// Graph's base URL, without a trailing slash.
    pub graph_url: String,
    /// `Bearer <token>`.
    pub authorization: Secret,
    /// Seconds between polls at the end of the log.
    pub interval_seconds: u64,
    /// How far back the first poll starts.
    pub lookback_seconds: u64,
    /// How far before the newest record a later poll starts.
    pub overlap_seconds: u64,
    /// Records per page.
    pub page_size: u32,
    /// How records are read.
    pub reader: Reader,
}

/// Where the poll is.
#[derive(Debug, Default, PartialEq, Eq)]
struct Cursor {
    /// The newest `activityDateTime` read.
    newest: Option<Timestamp>,
    /// The next page of the result set being read.
    next: Option<String>,
}

impl Cursor {
    fn parse(text: &str) -> Cursor {
        let mut cursor = Cursor::default();
        for part in text.split(' ') {
            if let Some(time) = part.strip_prefix("newest=") {
                cursor.newest = Timestamp::parse(time).ok();
            } else if let Some(next) = part.strip_prefix("next=") {
                cursor.next = Some(next.to_string());
            }
        }
        cursor
    }

    fn render(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(newest) = self.newest {
            parts.push(format!("newest={newest}"));
        }
        if let Some(next) = &self.next {
            parts.push(format!("next={next}"));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// The time of a record, read apart from the rest.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Dated {
    activity_date_time: String,
}

impl AuditPoller {
    /// Whether `url` is a URL of this Graph's directory audit log, which
    /// may be fetched with the token.
    fn is_audits_url(&self, url: &str) -> bool {
        url.strip_prefix(&self.graph_url)
            .and_then(|rest| rest.strip_prefix(AUDITS_PATH))
            .is_some_and(|rest| {
                (rest.is_empty() || rest.starts_with('?'))
                    && !rest.contains('#')
                    && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
            })
    }

    /// The first page of the records since `since`.
    fn since_url(&self, since: Timestamp) -> String {
        // Whole seconds, rounded down: `ge` then reads a little more.
        let text = since.to_string();
        let since = text
            .get(..19)
            .map_or(text.clone(), |seconds| format!("{seconds}Z"));
        format!(
            "{}{AUDITS_PATH}?$filter={}&$orderby={}&$top={}",
            self.graph_url,
            crate::percent_encode(&format!("activityDateTime ge {since}")),
            crate::percent_encode("activityDateTime asc"),
            self.page_size
        )
    }
}

impl Pull for AuditPoller {
    fn request(&self, cursor: Option<&str>, now: Timestamp) -> Result<PullRequest, Refusal> {
        let cursor = cursor.map(Cursor::parse).unwrap_or_default();
        let url = match (&cursor.next, cursor.newest) {
            (Some(next), _) if self.is_audits_url(next) => next.clone(),
            (_, Some(newest)) => self.since_url(
                newest.plus_seconds(-i64::try_from(self.overlap_seconds).unwrap_or(i64::MAX)),
            ),
            _ => self.since_url(
                now.plus_seconds(-i64::try_from(self.lookback_seconds).unwrap_or(i64::MAX)),
            ),
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
        match status {
            200 => {}
            401 | 403 => {
                return Err(Refusal::Unauthenticated(format!(
                    "Microsoft Graph refused the bearer token with {status}{}; a token lasts about an hour: set a fresh `bearer_token` with AuditLog.Read.All",
                    graph_error(body)
                )))
            }
            other => {
                let retry = headers
                    .get("retry-after")
                    .map(|seconds| format!(" (Retry-After: {} s)", custody_core::text::escape(seconds.trim())))
                    .unwrap_or_default();
                return Err(Refusal::Malformed(format!(
                    "Microsoft Graph answered {other} to a poll of {AUDITS_PATH}{retry}{}; the page is read again",
                    graph_error(body)
                )));
            }
        }
        let collection: Collection<'_> = serde_json::from_slice(body).map_err(|error| {
            Refusal::Malformed(format!(
                "the answer of {AUDITS_PATH} is not a list of directoryAudits: {error}"
            ))
        })?;
        let mut parsed = Parsed::default();
        self.reader.read_records(&collection.value, &mut parsed)?;
        let mut newest = cursor.map(Cursor::parse).unwrap_or_default().newest;
        for record in &collection.value {
            let time = serde_json::from_str::<Dated>(record.get())
                .ok()
                .and_then(|dated| Timestamp::parse(&dated.activity_date_time).ok());
            if time > newest {
                newest = time;
            }
        }
        let next = match collection.next_link {
            Some(next) if self.is_audits_url(&next) => Some(next),
            Some(next) => {
                return Err(Refusal::Malformed(format!(
                    "the nextLink `{}` is not this Graph's {AUDITS_PATH}; it is not followed with the token",
                    custody_core::text::escape(&next)
                )))
            }
            None => None,
        };
        let more = next.is_some();
        Ok(Page {
            parsed,
            cursor: Cursor { newest, next }.render(),
            more,
        })
    }

    fn interval_seconds(&self) -> u64 {
        self.interval_seconds
    }
}

/// ` (code: message)` of a Graph error body, escaped, when it has one.
fn graph_error(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|error| {
            let code = error["error"]["code"].as_str()?.to_string();
            let message = error["error"]["message"].as_str().unwrap_or_default();
            let message: String = message.chars().take(200).collect();
            Some(format!(
                " ({}: {})",
                custody_core::text::escape(&code),
                custody_core::text::escape(&message)
            ))
        })
        .unwrap_or_default()
}

/// Graph's base URL without a trailing slash: HTTPS, or HTTP to the
/// loopback interface only (a local fake), since the token travels in it.
pub(super) fn check_graph_url(text: &str) -> Result<String, String> {
    let url = text.trim().trim_end_matches('/');
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        let loopback = host == "localhost" || host == "127.0.0.1" || rest.starts_with("[::1]");
        if !loopback {
            return Err(format!(
                "`graph_url` `{}` is plain HTTP; the token would travel in the clear (use https://, or http:// to localhost for a local test)",
                custody_core::text::escape(text)
            ));
        }
        rest
    } else {
        return Err(format!(
            "`graph_url` `{}` is not an https:// URL (e.g. https://graph.microsoft.com)",
            custody_core::text::escape(text)
        ));
    };
    if rest.is_empty()
        || rest.contains(['/', '?', '#', '@', '%'])
        || rest.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "`graph_url` `{}` is not a base URL (scheme and host only, e.g. https://graph.microsoft.com)",
            custody_core::text::escape(text)
        ));
    }
    Ok(url.to_string())
}

#[cfg(test)]
pub(super) fn cursor_parts(text: &str) -> (Option<Timestamp>, Option<String>) {
    let cursor = Cursor::parse(text);
    (cursor.newest, cursor.next)
}
