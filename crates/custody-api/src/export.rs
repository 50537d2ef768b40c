//! `GET /v1/export`: one page of an export, in one of the line formats.
//!
//! The body is the encoded events, streamed; where the page ends and where
//! the next one starts are in headers, so the body is exactly the bytes a
//! `custody export` to a file would write.

use serde::{Deserialize, Serialize};

/// Most log entries one `GET /v1/export` reads (and, without a case filter,
/// returns).
pub const MAX_EXPORT_PAGE: u64 = 100_000;

/// Log entries one `GET /v1/export` reads when the query names no `limit`.
pub const DEFAULT_EXPORT_PAGE: u64 = 10_000;

/// The header that carries the cursor to ask for next (`since` of the next
/// page): the first log index this page did not cover.
pub const NEXT_CURSOR_HEADER: &str = "custody-next-cursor";

/// The header that carries where the whole export ends (exclusive): the
/// `until` given, or the log's size when the first page was asked for
/// without one. The export is complete once the next cursor reaches it.
pub const EXPORT_END_HEADER: &str = "custody-export-end";

/// The header that carries how many events this page holds.
pub const EVENT_COUNT_HEADER: &str = "custody-event-count";

/// Query of `GET /v1/export`. An unknown parameter is refused (`400`,
/// naming it) rather than ignored: a misspelt `case` or `until` would
/// otherwise export more than was asked for.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct ExportQuery {
    /// The format: `ocsf`, `syslog`, `cef`, `ecs`, `cloudevents` or `jsonl`.
    pub format: String,
    /// Only this case's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// The first log index to export (inclusive) [default: 0]: the cursor a
    /// previous page or export printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// Where to stop (exclusive) [default: the log's size now].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
    /// How many log entries this page covers, at most [default: 10000, at
    /// most 100000]. With a case filter, only the case's events among them
    /// are in the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100_000))]
    pub limit: Option<u64>,
    /// Also the events of drill cases (`custody drill`), which are left
    /// out by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_drills: Option<bool>,
}
