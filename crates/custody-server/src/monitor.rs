//! The continuous monitor: every `monitor.interval_seconds` of the server's
//! clock, one node (the holder of the `@monitor` lease) re-verifies the
//! ledger incrementally ([`custody_core::audit::Watch`] through
//! [`Store::watch`]), exposes the outcome as metrics, and records each new
//! finding once as a `finding_raised` event of the `system` actor in the
//! case it concerns (`docs/monitor.md`).
//!
//! A finding without a case (the log's, a checkpoint's), or in a record
//! (the policy or administration record) or a case the ledger cannot write
//! to any more, is logged at `error` once and counted in the metrics: it is
//! never lost, and never stops the server.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use custody_core::audit::{Finding, Report, Watch, WatchOptions};
use custody_core::command::LedgerCommand;
use custody_core::event::FindingRaised;
use custody_core::severity::Severity;
use custody_core::time::SharedClock;
use custody_core::{Actor, CaseId};
use custody_log::VerifierKey;
use custody_store::{CaseWrite, PullCursorOperation, PullLease, Store, StoreError};

/// The name of the monitor's lease in the store's `pull_cursors` (no
/// connector name starts with `@`).
pub const LEASE: &str = "@monitor";

/// How the monitor runs.
#[derive(Clone, Debug)]
pub struct MonitorOptions {
    /// Seconds of the server's clock between scans; 0 turns the monitor off.
    pub interval_seconds: u64,
    /// How often (real time) the task looks at the clock to see whether a
    /// scan is due: a test's clock jumps, a deployment's does not.
    pub poll: Duration,
    /// The log's verifier keys, current and retired (from the data
    /// directory, never from the database).
    pub trusted_keys: Vec<VerifierKey>,
    /// The servers' checkpoint interval, which decides when entries no
    /// checkpoint covers are a finding.
    pub checkpoint_interval_seconds: u64,
    /// Log entries after which a case no row touched is let go of between
    /// reads (0: [`custody_core::audit::IDLE_AFTER_ENTRIES`]).
    pub idle_after_entries: u64,
}

/// What one scan did.
#[derive(Clone, Debug, Default)]
pub struct ScanOutcome {
    /// The audit's report (every finding so far, not only the new ones).
    pub report: Option<Report>,
    /// Findings recorded as `finding_raised` events by this scan.
    pub recorded: Vec<Finding>,
    /// New findings only logged (no case to record them in).
    pub logged: Vec<Finding>,
    /// False when another node holds the lease and this one did not scan.
    pub scanned: bool,
}

/// The monitor's state on one node.
pub struct Monitor {
    store: Store,
    options: MonitorOptions,
    clock: SharedClock,
    owner: String,
    watch: Watch,
    /// The findings this node raised (or found raised already), so a
    /// finding is raised once however often it is found.
    raised: HashSet<RaisedKey>,
}

/// What makes a finding the same one: its code, case, event and log index.
type RaisedKey = (String, Option<String>, Option<String>, Option<u64>);

impl Monitor {
    /// A monitor that has scanned nothing yet; `owner` names it in the lease.
    pub fn new(
        store: Store,
        options: MonitorOptions,
        clock: SharedClock,
        owner: String,
    ) -> Monitor {
        let watch = Watch::new(WatchOptions {
            trusted_keys: options.trusted_keys.clone(),
            checkpoint_interval_seconds: options.checkpoint_interval_seconds,
            outside: Vec::new(),
            idle_after_entries: options.idle_after_entries,
        });
        Monitor {
            store,
            options,
            clock,
            owner,
            watch,
            raised: HashSet::new(),
        }
    }

    /// The cases whose trails the monitor holds between scans, and those it
    /// let go of ([`custody_core::audit::Watch`]).
    pub fn cases(&self) -> (u64, u64) {
        (self.watch.held_cases(), self.watch.retired_cases())
    }

    /// Scans once, if this node holds (or takes) the lease: audits what is
    /// new, re-checks what was verified, records new findings, sets the
    /// metrics.
    pub async fn scan_once(&mut self) -> Result<ScanOutcome, StoreError> {
        let now = self.clock.now();
        let lease_seconds = i64::try_from(self.options.interval_seconds.saturating_mul(3))
            .unwrap_or(i64::MAX)
            .max(60);
        let lease = self
            .store
            .pull_cursor(
                LEASE,
                &self.owner,
                PullCursorOperation::Lease,
                now,
                now.plus_seconds(lease_seconds),
            )
            .await?;
        if lease == PullLease::NotHeld {
            return Ok(ScanOutcome::default());
        }
        let started = Instant::now();
        let report = self.store.watch(&mut self.watch).await?;
        let duration = started.elapsed().as_secs_f64();
        if let Some(change) = self.watch.last_change() {
            tracing::error!(change, "the monitor found entries it had verified changed behind the store's back; it audited the whole log again");
        }
        let mut outcome = ScanOutcome {
            scanned: true,
            ..ScanOutcome::default()
        };
        for finding in report
            .findings
            .iter()
            .filter(|finding| finding.severity > Severity::Info)
        {
            // The case is part of what a finding is: the same code with no
            // event (a projection, a case's missing events) in two cases is
            // two findings.
            let key = (
                finding.code.as_str().to_string(),
                finding.case_id.clone(),
                finding.event_id.clone(),
                finding.log_index,
            );
            if self.raised.contains(&key) {
                continue;
            }
            match self.record(finding).await {
                Recorded::Written => {
                    outcome.recorded.push(finding.clone());
                    self.raised.insert(key);
                }
                Recorded::AlreadyThere => {
                    self.raised.insert(key);
                }
                Recorded::Logged => {
                    outcome.logged.push(finding.clone());
                    self.raised.insert(key);
                }
                // Tried again at the next scan.
                Recorded::Failed => {}
            }
        }
        set_metrics(
            &report,
            self.watch.verified(),
            now.as_micros() as f64 / 1e6,
            duration,
        );
        // What the monitor holds between scans: the trails of the cases in
        // play; the others are a sum over their case rows.
        metrics::gauge!("custody_monitor_cases_held").set(self.watch.held_cases() as f64);
        metrics::gauge!("custody_monitor_cases_retired").set(self.watch.retired_cases() as f64);
        metrics::counter!("custody_monitor_findings_raised_total")
            .increment(outcome.recorded.len() as u64 + outcome.logged.len() as u64);
        outcome.report = Some(report);
        Ok(outcome)
    }

    /// Records one new finding in its case, or logs it.
    async fn record(&self, finding: &Finding) -> Recorded {
        let log_it = || {
            tracing::error!(
                code = finding.code.as_str(),
                severity = finding.severity.as_str(),
                case = finding.case_id.as_deref().unwrap_or(""),
                log_index = finding.log_index,
                message = %custody_core::text::escape(&finding.message),
                "the monitor found something wrong with the ledger"
            );
            Recorded::Logged
        };
        let Some(case_id) = finding
            .case_id
            .as_deref()
            .and_then(|case| case.parse::<CaseId>().ok())
        else {
            return log_it();
        };
        // Raised before (by this node before a restart, or by another):
        // the case's projection says so.
        match self.store.case_view(&case_id).await {
            Ok(view) => {
                let already = view.findings_raised.iter().any(|raised| {
                    raised.code == finding.code.as_str()
                        && raised.event_id == finding.event_id
                        && raised.log_index == finding.log_index
                });
                if already {
                    return Recorded::AlreadyThere;
                }
            }
            // A record (policy, administration, evidence) or a case the
            // store cannot read: the finding is still seen, in the log.
            Err(_) => return log_it(),
        }
        let write = CaseWrite {
            actor: Actor::system(),
            idempotency_key: idempotency_key(&case_id, finding),
            command: LedgerCommand::RaiseFinding {
                case_id: case_id.clone(),
                finding: FindingRaised {
                    code: finding.code.as_str().to_string(),
                    severity: finding.severity.as_str().to_string(),
                    message: finding.message.clone(),
                    event_id: finding.event_id.clone(),
                    log_index: finding.log_index,
                    scanned_to: self.watch.verified(),
                },
            }
            .into(),
            occurred_at: None,
            connector: None,
        };
        match self.store.write(write).await {
            Ok(outcome) if outcome.replayed => Recorded::AlreadyThere,
            Ok(_) => {
                tracing::warn!(case = %case_id, code = finding.code.as_str(), "the monitor recorded a finding in the case");
                Recorded::Written
            }
            Err(StoreError::Refused(refusal)) => {
                tracing::warn!(case = %case_id, code = refusal.rule.as_str(), "the case refused the monitor's finding; it is logged instead");
                log_it()
            }
            Err(error) => {
                tracing::error!(%error, case = %case_id, "recording the monitor's finding failed; it is tried again at the next scan");
                Recorded::Failed
            }
        }
    }

    /// Gives the lease up (at shutdown), so another node scans at once.
    pub async fn release(&self) {
        let now = self.clock.now();
        if let Err(error) = self
            .store
            .pull_cursor(LEASE, &self.owner, PullCursorOperation::Release, now, now)
            .await
        {
            tracing::warn!(%error, "could not give up the monitor's lease; another node takes it when it runs out");
        }
    }
}

enum Recorded {
    Written,
    AlreadyThere,
    Logged,
    Failed,
}

/// The idempotency key of the `finding_raised` write: one per case and
/// finding, however many scans or nodes find it.
pub fn idempotency_key(case_id: &CaseId, finding: &Finding) -> String {
    format!(
        "monitor:{case_id}:{}:{}:{}",
        finding.code.as_str(),
        finding.event_id.as_deref().unwrap_or("-"),
        finding
            .log_index
            .map_or_else(|| "-".to_string(), |index| index.to_string())
    )
}

fn set_metrics(report: &Report, verified: u64, now_seconds: f64, duration: f64) {
    metrics::counter!("custody_monitor_scans_total").increment(1);
    metrics::gauge!("custody_monitor_entries_verified").set(verified as f64);
    metrics::gauge!("custody_monitor_last_scan_timestamp_seconds").set(now_seconds);
    metrics::gauge!("custody_monitor_scan_duration_seconds").set(duration);
    metrics::gauge!("custody_monitor_ok").set(if report.ok { 1.0 } else { 0.0 });
    for severity in [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ] {
        let count = report
            .findings
            .iter()
            .filter(|finding| finding.severity == severity)
            .count();
        metrics::gauge!("custody_monitor_findings", "severity" => severity.as_str())
            .set(count as f64);
    }
}

/// The monitor's task: a scan every `interval_seconds` of `clock`'s time
/// (the first one interval after start), looked for every `poll` of real
/// time, until aborted. A failed scan is logged and tried at the next.
pub async fn run(mut monitor: Monitor) {
    let interval = i64::try_from(monitor.options.interval_seconds).unwrap_or(i64::MAX);
    let mut ticks = tokio::time::interval(monitor.options.poll);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next = monitor.clock.now().plus_seconds(interval);
    loop {
        ticks.tick().await;
        let now = monitor.clock.now();
        if now < next {
            continue;
        }
        next = now.plus_seconds(interval);
        if let Err(error) = monitor.scan_once().await {
            metrics::counter!("custody_monitor_scan_errors_total").increment(1);
            tracing::error!(%error, "the monitor's scan failed; it scans again at the next interval");
        }
    }
}
