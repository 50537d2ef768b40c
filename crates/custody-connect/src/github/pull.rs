//! Polling the organization's audit log (see [`super`]), IO-free.
//!
//! The request: `GET {api_url}/orgs/{org}/audit-log?per_page=100&order=asc`,
//! oldest first, with `Authorization: Bearer <token>` and
//! `X-GitHub-Api-Version`. The first poll searches `created:>=` the
//! look-back; every later one passes the cursor GitHub gave in the answer's
//! `Link: <...>; rel="next"` as `after`. Only the cursor's value is kept,
//! never the link itself, so the URL polled is always built here, on the
//! configured host.
//!
//! The cursor moves only when GitHub gives a next link. An answer without
//! one leaves the cursor where it was, and the next poll reads the same
//! page again: the records already recorded append nothing ((source,
//! external ID) is unique), and the new ones are read as they come.

use custody_core::Timestamp;

use crate::config::Secret;
use crate::observe::{Page, Pull, PullRequest};
use crate::{Headers, Refusal};

use super::GithubConfig;

/// Entries per page (GitHub's largest).
pub const PER_PAGE: u32 = 100;

/// The longest cursor accepted from a `Link` header.
const MAX_CURSOR_BYTES: usize = 1024;

/// How a configured organization's audit log is polled.
#[derive(Debug)]
pub struct AuditLogPull {
    base: String,
    organization: String,
    token: Secret,
    api_version: String,
    phrase: Option<String>,
    interval_seconds: u64,
    lookback_seconds: u64,
}

impl AuditLogPull {
    pub(super) fn new(
        config: &GithubConfig,
        organization: &str,
        token: &Secret,
    ) -> Result<AuditLogPull, String> {
        let problem = |what: String| format!("connector `{}` (github): {what}", config.name);
        let base = config.api_url.trim_end_matches('/');
        let Some(rest) = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
        else {
            return Err(problem(format!(
                "`api_url` = `{}` is not an http(s) URL",
                custody_core::text::escape(&config.api_url)
            )));
        };
        if rest.is_empty() || rest.contains(['?', '#', ' ']) {
            return Err(problem(format!(
                "`api_url` = `{}` is not a base URL (a host, and a path for GitHub Enterprise Server)",
                custody_core::text::escape(&config.api_url)
            )));
        }
        if config.api_version.is_empty()
            || !config
                .api_version
                .bytes()
                .all(|byte| byte.is_ascii_digit() || byte == b'-')
        {
            return Err(problem(
                "`api_version` is not a REST API version (such as 2022-11-28)".into(),
            ));
        }
        if config.interval_seconds == 0 {
            return Err(problem("`interval_seconds` must be more than zero".into()));
        }
        if let Some(phrase) = &config.phrase {
            if phrase.chars().any(char::is_control) {
                return Err(problem("`phrase` holds a control character".into()));
            }
        }
        Ok(AuditLogPull {
            base: base.to_string(),
            organization: organization.to_string(),
            token: token.clone(),
            api_version: config.api_version.clone(),
            phrase: config
                .phrase
                .as_deref()
                .map(str::trim)
                .filter(|phrase| !phrase.is_empty())
                .map(str::to_string),
            interval_seconds: config.interval_seconds,
            lookback_seconds: config.lookback_seconds,
        })
    }
}

impl Pull for AuditLogPull {
    fn request(&self, cursor: Option<&str>, now: Timestamp) -> Result<PullRequest, Refusal> {
        let mut url = format!(
            "{}/orgs/{}/audit-log?per_page={PER_PAGE}&order=asc",
            self.base, self.organization
        );
        let phrase = match cursor {
            Some(after) => {
                check_cursor(after)?;
                url.push_str("&after=");
                url.push_str(&crate::percent_encode(after));
                self.phrase.clone()
            }
            None => {
                let since =
                    now.plus_seconds(-i64::try_from(self.lookback_seconds).unwrap_or(i64::MAX));
                // GitHub's search takes whole seconds.
                let since = format!("{}Z", &since.to_string()[..19]);
                Some(match &self.phrase {
                    Some(phrase) => format!("{phrase} created:>={since}"),
                    None => format!("created:>={since}"),
                })
            }
        };
        if let Some(phrase) = phrase {
            url.push_str("&phrase=");
            url.push_str(&crate::percent_encode(&phrase));
        }
        Ok(PullRequest {
            url,
            headers: vec![
                ("Accept".into(), "application/vnd.github+json".into()),
                (
                    "Authorization".into(),
                    format!("Bearer {}", self.token.expose()),
                ),
                ("X-GitHub-Api-Version".into(), self.api_version.clone()),
                ("User-Agent".into(), "custody".into()),
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
        if status != 200 {
            let hint = match status {
                401 => ": the token is not valid (check `api_token`)",
                403 | 429 => ": the token may not read the audit log (it needs read:audit_log, or organization_administration read for a GitHub App), or the rate limit is reached",
                404 => ": the organization is not found, or the audit log API is not available to it (GitHub Enterprise Cloud)",
                _ => "",
            };
            return Err(Refusal::Malformed(format!(
                "the audit log answered {status}{hint}"
            )));
        }
        let parsed = super::audit_log::parse_page(body, Some(&self.organization))?;
        let next = match headers.get("link") {
            Some(link) => next_cursor(link)?,
            None => None,
        };
        let next = next.filter(|next| Some(next.as_str()) != cursor);
        let read_any = !parsed.observations.is_empty() || parsed.skipped > 0;
        Ok(Page {
            more: next.is_some() && read_any,
            cursor: next,
            parsed,
        })
    }

    fn interval_seconds(&self) -> u64 {
        self.interval_seconds
    }
}

/// The `after` parameter of the `rel="next"` link of a `Link` header, if
/// there is one.
pub fn next_cursor(link: &str) -> Result<Option<String>, Refusal> {
    for part in link.split(',') {
        let mut pieces = part.split(';');
        let Some(target) = pieces.next().map(str::trim) else {
            continue;
        };
        let is_next = pieces.any(|parameter| {
            let parameter = parameter.trim();
            parameter == "rel=\"next\"" || parameter == "rel=next"
        });
        if !is_next {
            continue;
        }
        let Some(url) = target
            .strip_prefix('<')
            .and_then(|target| target.strip_suffix('>'))
        else {
            return Err(Refusal::Malformed(
                "the Link header's next link is not `<URL>`".into(),
            ));
        };
        let query = url.split_once('?').map_or("", |(_, query)| query);
        let query = query.split('#').next().unwrap_or("");
        for pair in query.split('&') {
            if let Some(value) = pair.strip_prefix("after=") {
                let after = percent_decode(value).ok_or_else(|| {
                    Refusal::Malformed("the next link's `after` is not percent-encoded text".into())
                })?;
                if after.is_empty() {
                    return Ok(None);
                }
                check_cursor(&after)?;
                return Ok(Some(after));
            }
        }
        return Ok(None);
    }
    Ok(None)
}

/// A cursor is opaque to Custody, but it is put in a URL and kept in the
/// store: printable ASCII without spaces, at most 1024 bytes.
fn check_cursor(cursor: &str) -> Result<(), Refusal> {
    if cursor.is_empty()
        || cursor.len() > MAX_CURSOR_BYTES
        || !cursor.bytes().all(|byte| byte.is_ascii_graphic())
    {
        return Err(Refusal::Malformed(
            "the audit log cursor is not 1 to 1024 printable ASCII characters".into(),
        ));
    }
    Ok(())
}

/// Decodes `%XX` escapes (and `+` as a space); `None` for a broken escape
/// or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let hex = text.get(index + 1..index + 3)?;
                if !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                    return None;
                }
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                index += 3;
            }
            b'+' => {
                decoded.push(b' ');
                index += 1;
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}
