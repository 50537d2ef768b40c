//! Polling the sources configured to be polled (Okta's `/api/v1/logs`,
//! GitHub's audit log, Microsoft Graph's `directoryAudits`).
//!
//! One worker per source and node. It polls only while it holds the
//! source's lease in the store (`pull_cursors`), so several nodes on one
//! database poll a source once. For each page it records the page's
//! observations and only then moves the cursor, so a node killed between
//! the two re-reads that page after a restart, and the ledger's (source,
//! external ID) keeps the second reading from appending anything: no gap,
//! no duplicate. A page the ledger could not record in full (a database
//! error) leaves the cursor where it was, and the page is read again.

use std::sync::Arc;
use std::time::Duration;

use custody_connect::observe::Pull;
use custody_connect::Headers;
use custody_notify::connector::CallSender;
use custody_store::{PullCursorOperation, PullLease};

use super::SourceEntry;
use crate::AppState;

/// How long a worker's lease lasts without renewal.
const LEASE_SECONDS: i64 = 120;

/// The largest answer page read.
const PAGE_LIMIT: usize = 32 * 1024 * 1024;

/// The running poll workers of this node, and the owner name of their
/// leases.
pub struct Pullers {
    owner: String,
    workers: Vec<(String, tokio::task::JoinHandle<()>)>,
}

impl Pullers {
    /// Stops the workers and gives their leases up, so a node started in
    /// this one's place (a restart, another node) polls at once instead of
    /// waiting for the leases to run out. A page being recorded is cut
    /// short: its cursor did not move, so it is read again, appending
    /// nothing it already appended.
    pub async fn stop(self, state: &AppState) {
        for (_, worker) in &self.workers {
            worker.abort();
        }
        let now = state.clock.now();
        for (source, worker) in self.workers {
            let _ = worker.await;
            if let Err(error) = state
                .store
                .pull_cursor(&source, &self.owner, PullCursorOperation::Release, now, now)
                .await
            {
                tracing::warn!(connector = %source, %error, "could not give up the poll's lease; another node takes it when it runs out");
            }
        }
    }
}

/// Starts a worker for every source configured to be polled.
pub fn start(state: &AppState) -> Pullers {
    let mut suffix = [0u8; 6];
    if let Err(error) = getrandom::fill(&mut suffix) {
        tracing::error!(%error, "no randomness available: no source is polled");
        return Pullers {
            owner: String::new(),
            workers: Vec::new(),
        };
    }
    let owner = format!(
        "puller-{}-{}",
        std::process::id(),
        custody_core::hex::encode(&suffix)
    );
    let mut workers = Vec::new();
    for entry in state.connectors.sources() {
        if entry.source.pull().is_some() {
            let sender = match CallSender::new(&entry.name, Duration::from_secs(30)) {
                Ok(sender) => sender,
                Err(error) => {
                    tracing::error!(connector = %entry.name, %error, "cannot poll the source");
                    continue;
                }
            };
            let name = entry.name.clone();
            workers.push((
                name,
                tokio::spawn(run(state.clone(), entry, sender, owner.clone())),
            ));
        }
    }
    // CloudTrail's log files are read from S3 by a worker of their own.
    workers.extend(super::s3::start(state, &owner));
    Pullers { owner, workers }
}

/// Polls one source until aborted.
async fn run(state: AppState, entry: Arc<SourceEntry>, sender: CallSender, owner: String) {
    let Some(pull) = entry.source.pull() else {
        return;
    };
    let interval = Duration::from_secs(pull.interval_seconds().max(1));
    let mut failures: u32 = 0;
    loop {
        let wait = match poll_once(&state, &entry, pull, &sender, &owner).await {
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
                tracing::warn!(connector = %entry.name, error = %custody_core::text::escape(&error), "polling a source failed; it is polled again");
                // Back off up to ten intervals, never hammering a source
                // that refuses.
                interval.saturating_mul(failures.min(10))
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// One poll: takes the lease, fetches the page after the cursor, records
/// it, moves the cursor. `Ok(true)` when another page is ready now.
pub async fn poll_once(
    state: &AppState,
    entry: &SourceEntry,
    pull: &dyn Pull,
    sender: &CallSender,
    owner: &str,
) -> Result<bool, String> {
    let now = state.clock.now();
    let until = now.plus_seconds(LEASE_SECONDS);
    let cursor = match state
        .store
        .pull_cursor(&entry.name, owner, PullCursorOperation::Lease, now, until)
        .await
        .map_err(|error| error.to_string())?
    {
        PullLease::Held(cursor) => cursor,
        PullLease::NotHeld => return Ok(false),
    };
    let request = pull
        .request(cursor.as_deref(), now)
        .map_err(|refusal| refusal.to_string())?;
    let fetched = sender
        .fetch(&request.url, &request.headers, PAGE_LIMIT)
        .await
        .map_err(|error| error.to_string())?;
    let headers = Headers::new(fetched.headers);
    let page = pull
        .page(cursor.as_deref(), fetched.status, &headers, &fetched.body)
        .map_err(|refusal| refusal.to_string())?;
    metrics::counter!("custody_pull_pages_total", "connector" => entry.name.clone()).increment(1);
    let summary = super::record(state, entry, page.parsed).await;
    if let Some(refusal) = summary
        .refused
        .iter()
        .find(|refusal| refusal.error.starts_with(super::RETRY))
    {
        return Err(format!(
            "record {} of the page was not recorded ({}); the page is read again",
            refusal.external_id, refusal.error
        ));
    }
    if let Some(next) = page.cursor {
        if Some(&next) != cursor.as_ref() {
            let now = state.clock.now();
            let held = state
                .store
                .pull_cursor(
                    &entry.name,
                    owner,
                    PullCursorOperation::Advance { to: next },
                    now,
                    now.plus_seconds(LEASE_SECONDS),
                )
                .await
                .map_err(|error| error.to_string())?;
            if held == PullLease::NotHeld {
                return Err("the lease was lost while the page was recorded; another node polls the source now".to_string());
            }
        }
    }
    Ok(page.more)
}
