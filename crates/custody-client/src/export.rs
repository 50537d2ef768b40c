//! Exports: `GET /v1/export`, one page at a time, streamed.

use custody_api::export::{EXPORT_END_HEADER, NEXT_CURSOR_HEADER};
use custody_api::ExportQuery;

use crate::{answer, path_segment, Client, ClientError};

/// One page of an export being received.
pub struct ExportPage {
    /// The cursor to ask for next: the first log index this page did not
    /// cover.
    pub next_cursor: u64,
    /// Where the whole export ends (exclusive): pass it as `until` for the
    /// next pages. The export is complete once `next_cursor` reaches it.
    pub end: u64,
    response: reqwest::Response,
}

impl ExportPage {
    /// The next part of the page's body, or `None` at its end. A body that
    /// breaks off (the server failed while encoding) is an error, never a
    /// short page.
    pub async fn chunk(&mut self) -> Result<Option<impl AsRef<[u8]>>, ClientError> {
        self.response
            .chunk()
            .await
            .map_err(|error| ClientError::Connection(format!("the export broke off: {error}")))
    }

    /// Whether this is the last page.
    pub fn is_last(&self) -> bool {
        self.next_cursor >= self.end
    }
}

impl Client {
    /// `GET /v1/export` (auditors and admins): one page of an export, its
    /// body streamed.
    pub async fn export_page(&self, query: &ExportQuery) -> Result<ExportPage, ClientError> {
        let mut path = format!("/v1/export?format={}", path_segment(&query.format));
        if let Some(case) = &query.case {
            path.push_str(&format!("&case={}", path_segment(case)));
        }
        for (name, value) in [
            ("since", query.since),
            ("until", query.until),
            ("limit", query.limit),
        ] {
            if let Some(value) = value {
                path.push_str(&format!("&{name}={value}"));
            }
        }
        if let Some(include) = query.include_drills {
            path.push_str(&format!("&include_drills={include}"));
        }
        let http = self.streaming_client()?;
        let mut request = http
            .get(format!("{}{path}", self.base))
            .header("custody-via", "cli");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|error| {
            ClientError::Connection(format!(
                "cannot reach the Custody server at {}: {error}\nhint: is `custody serve` running? set CUSTODY_URL or --url",
                self.base
            ))
        })?;
        if !response.status().is_success() {
            return Err(match answer(response).await {
                Ok(value) => {
                    ClientError::Unreadable(format!("the server answered the export with {value}"))
                }
                Err(failure) => failure.into(),
            });
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<u64>().ok())
                .ok_or_else(|| {
                    ClientError::Unreadable(format!(
                        "the server's export page has no `{name}` header\nhint: is the server running another version of Custody?"
                    ))
                })
        };
        let next_cursor = header(NEXT_CURSOR_HEADER)?;
        let end = header(EXPORT_END_HEADER)?;
        Ok(ExportPage {
            next_cursor,
            end,
            response,
        })
    }
}
