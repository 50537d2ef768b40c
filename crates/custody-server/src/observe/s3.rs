//! Reading CloudTrail's log files from an S3 bucket.
//!
//! One worker per CloudTrail source with a `bucket`, on every node; it reads
//! only while it holds the source's lease in the store (`pull_cursors`, as
//! [`super::pull`] does), so several nodes on one database read a trail
//! once. The cursor is the key of the last file recorded. Each poll lists
//! the keys under the prefix after the cursor (`ListObjectsV2` with
//! `start-after`; S3 lists in lexicographic order, which is delivery order
//! within one account and region's folder), and for each log file, in
//! order: GET, gunzip and parse (`custody_connect::cloudtrail`), record
//! every observation ([`super::record`]), and only then move the cursor to
//! that key. A node killed between recording a file and moving the cursor
//! reads that file again after a restart, and the ledger's (source,
//! external ID) keeps the second reading from appending anything: no gap,
//! no duplicate.
//!
//! A minute's files are read once the minute has settled
//! (`settle_seconds`, see `custody_connect::cloudtrail::keys`). Digest and
//! Insights files are passed over (the cursor moves past them). A file that
//! cannot be read (not gzip, not a log file, an identifier outside the safe
//! set) stops the pull at that file, logged and counted in
//! `custody_pull_errors_total`, and is tried again at every poll: nothing
//! after it is skipped silently. A file that vanished between the listing
//! and the GET is passed over with a warning.

use std::sync::Arc;
use std::time::Duration;

use custody_connect::cloudtrail::keys::{self, KeyKind};
use custody_connect::cloudtrail::S3Settings;
use custody_connect::config::ConnectorConfig;
use custody_evidence::{S3BlobStore, S3Config};
use custody_store::{PullCursorOperation, PullLease};

use super::SourceEntry;
use crate::AppState;

/// How long a worker's lease lasts without renewal (each file renews it):
/// how long a trail goes unread after its node died.
const LEASE_SECONDS: i64 = 120;

/// Keys asked for per listing.
const LIST_PAGE: u32 = 1000;

/// The S3 client of a CloudTrail source's settings.
pub fn bucket(settings: &S3Settings) -> Result<S3BlobStore, String> {
    S3BlobStore::new(S3Config {
        endpoint: settings.endpoint.clone(),
        bucket: settings.bucket.clone(),
        region: settings.region.clone(),
        access_key_id: settings.access_key_id.clone(),
        secret_access_key: settings.secret_access_key.expose().to_string(),
        prefix: None,
        path_style: settings.path_style,
        staging_directory: None,
    })
    .map_err(|error| error.to_string())
}

/// Starts a worker for every CloudTrail source with a bucket; returns their
/// handles, to abort at shutdown.
pub fn start(state: &AppState, owner: &str) -> Vec<(String, tokio::task::JoinHandle<()>)> {
    let mut workers = Vec::new();
    for entry in state.connectors.sources() {
        let ConnectorConfig::Cloudtrail(config) = &entry.config else {
            continue;
        };
        let settings = match config.s3_settings() {
            Ok(Some(settings)) => settings,
            Ok(None) => continue,
            Err(error) => {
                tracing::error!(connector = %entry.name, %error, "cannot read the trail's bucket");
                continue;
            }
        };
        let bucket = match bucket(&settings) {
            Ok(bucket) => bucket,
            Err(error) => {
                tracing::error!(connector = %entry.name, %error, "cannot read the trail's bucket");
                continue;
            }
        };
        workers.push((
            entry.name.clone(),
            tokio::spawn(run(
                state.clone(),
                entry.clone(),
                settings,
                bucket,
                owner.to_string(),
            )),
        ));
    }
    workers
}

/// Reads one trail until aborted.
async fn run(
    state: AppState,
    entry: Arc<SourceEntry>,
    settings: S3Settings,
    bucket: S3BlobStore,
    owner: String,
) {
    let interval = Duration::from_secs(settings.poll_interval_seconds.max(1));
    let mut failures: u32 = 0;
    loop {
        let wait = match poll_once(&state, &entry, &settings, &bucket, &owner).await {
            Ok(true) => {
                failures = 0;
                Duration::ZERO
            }
            Ok(false) => {
                failures = 0;
                interval
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                metrics::counter!("custody_pull_errors_total", "connector" => entry.name.clone())
                    .increment(1);
                tracing::warn!(connector = %entry.name, error = %custody_core::text::escape(&error), "reading the trail's log files failed; they are read again");
                interval.saturating_mul(failures.min(10))
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// One poll: takes the lease, lists the keys after the cursor, reads and
/// records each log file in order, moving the cursor past each. `Ok(true)`
/// when more keys are listed now.
pub async fn poll_once(
    state: &AppState,
    entry: &SourceEntry,
    settings: &S3Settings,
    bucket: &S3BlobStore,
    owner: &str,
) -> Result<bool, String> {
    let now = state.clock.now();
    let cursor = match state
        .store
        .pull_cursor(
            &entry.name,
            owner,
            PullCursorOperation::Lease,
            now,
            now.plus_seconds(LEASE_SECONDS),
        )
        .await
        .map_err(|error| error.to_string())?
    {
        PullLease::Held(cursor) => cursor,
        PullLease::NotHeld => return Ok(false),
    };
    let start_after = cursor.or_else(|| settings.start_after.clone());
    let page = bucket
        .list_keys_after(&settings.prefix, start_after.as_deref(), LIST_PAGE)
        .await
        .map_err(|error| error.to_string())?;
    metrics::counter!("custody_pull_pages_total", "connector" => entry.name.clone()).increment(1);
    for key in page.keys {
        if !key.starts_with(&settings.prefix)
            || start_after
                .as_deref()
                .is_some_and(|start| key.as_str() <= start)
        {
            // S3 answered outside what was asked: never move backwards.
            continue;
        }
        if keys::kind(&key) == KeyKind::LogFile {
            if !keys::settled(&key, state.clock.now(), settings.settle_seconds) {
                // This minute's files may still arrive out of key order;
                // so may every later key.
                return Ok(false);
            }
            read_file(state, entry, settings, bucket, &key).await?;
        }
        advance(state, entry, owner, key).await?;
    }
    Ok(page.truncated)
}

/// Reads and records one log file.
async fn read_file(
    state: &AppState,
    entry: &SourceEntry,
    settings: &S3Settings,
    bucket: &S3BlobStore,
    key: &str,
) -> Result<(), String> {
    let escaped = custody_core::text::escape(key);
    // The compressed file is never larger than the decompressed limit
    // allows (gzip does not expand incompressible data by more than a
    // little).
    let limit = u64::try_from(settings.max_file_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(64 * 1024);
    let Some(bytes) = bucket
        .get_object_bytes(key, limit)
        .await
        .map_err(|error| format!("reading log file {escaped}: {error}"))?
    else {
        tracing::warn!(connector = %entry.name, key = %escaped, "a listed log file was gone when it was read; it is passed over");
        return Ok(());
    };
    let parsed = entry.source.parse_batch(&bytes).map_err(|refusal| {
        format!("log file {escaped} cannot be read ({refusal}); the trail is read no further until it is fixed or removed")
    })?;
    let summary = super::record(state, entry, parsed).await;
    if let Some(refusal) = summary
        .refused
        .iter()
        .find(|refusal| refusal.error.starts_with(super::RETRY))
    {
        return Err(format!(
            "record {} of log file {escaped} was not recorded ({}); the file is read again",
            refusal.external_id, refusal.error
        ));
    }
    metrics::counter!("custody_cloudtrail_files_total", "connector" => entry.name.clone())
        .increment(1);
    Ok(())
}

async fn advance(
    state: &AppState,
    entry: &SourceEntry,
    owner: &str,
    key: String,
) -> Result<(), String> {
    let now = state.clock.now();
    let held = state
        .store
        .pull_cursor(
            &entry.name,
            owner,
            PullCursorOperation::Advance { to: key },
            now,
            now.plus_seconds(LEASE_SECONDS),
        )
        .await
        .map_err(|error| error.to_string())?;
    if held == PullLease::NotHeld {
        return Err(
            "the lease was lost while a log file was recorded; another node reads the trail now"
                .to_string(),
        );
    }
    Ok(())
}
