//! The ledger's own timer: obligations whose deadline passed become events of
//! the `system` actor. A review nobody did in time is escalated, a request
//! nobody answered in time is escalated, time-bound access gets its notice
//! before it ends and its `revocation_due` when it ends.
//!
//! The scan is a function of the time it is given ([`scan_overdue`]); the
//! server's task ([`run`]) calls it with the server's clock
//! (`ServeOptions::clock`: the system clock in production, a test's
//! `ManualClock` in tests) every `workflow.scan_interval_seconds`. Each obligation is acted on once,
//! however often and on however many nodes the scan runs: the case's
//! projection records what the ledger already did, and the write's
//! idempotency key names the case and the reason.

use std::time::Duration;

use custody_core::command::LedgerCommand;
use custody_core::obligation::Obligation;
use custody_core::time::SharedClock;
use custody_core::{Actor, CaseId, Timestamp};
use custody_store::{CaseWrite, Store, StoreError};

/// One obligation a scan acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acted {
    /// The case.
    pub case_id: CaseId,
    /// The obligation (written as its code: `break-glass.review-overdue`,
    /// `expiry.revocation-due`, ...).
    pub reason: Obligation,
    /// The deadline that passed.
    pub deadline: Timestamp,
    /// How many events the write appended: 0 when another scan (another
    /// node) wrote it first and this write was replayed.
    pub appended: usize,
}

/// The idempotency key of the ledger's write for `reason` on `case`: one
/// per case and reason, so the obligation is acted on once.
pub fn idempotency_key(case: &CaseId, reason: Obligation) -> String {
    format!("escalation:{case}:{reason}")
}

/// Scans once: acts, as the `system` actor, on every obligation overdue at
/// `now`. Returns what it wrote; a write that failed is logged and left for
/// the next scan. Fails only when the due cases cannot be read.
pub async fn scan_overdue(store: &Store, now: Timestamp) -> Result<Vec<Acted>, StoreError> {
    let cases = store.cases_due(now).await?;
    let mut acted = Vec::new();
    for case in cases {
        for (reason, deadline) in custody_core::lifecycle::overdue(&case, now) {
            let write = CaseWrite {
                actor: Actor::system(),
                idempotency_key: idempotency_key(&case.case_id, reason),
                command: LedgerCommand::Escalate {
                    case_id: case.case_id.clone(),
                    reason,
                    deadline,
                }
                .into(),
                occurred_at: None,
                connector: None,
            };
            match store.write(write).await {
                Ok(outcome) => {
                    // A replay answers with the first write's result.
                    let appended = if outcome.replayed {
                        0
                    } else {
                        outcome.appended.len()
                    };
                    if appended > 0 {
                        tracing::warn!(case = %case.case_id, reason = reason.as_str(), "escalated an overdue obligation");
                        // A drill's escalations are left out of the metrics.
                        if !case.drill {
                            metrics::counter!("custody_escalations_total", "reason" => reason.as_str())
                                .increment(1);
                        }
                    }
                    acted.push(Acted {
                        case_id: case.case_id.clone(),
                        reason,
                        deadline,
                        appended,
                    });
                }
                Err(error) => {
                    tracing::error!(%error, case = %case.case_id, "escalation failed")
                }
            }
        }
    }
    Ok(acted)
}

/// The server's timer task: [`scan_overdue`] at `clock`'s time, every
/// `interval` (real time: how often to look, not what time it is), until
/// the task is aborted.
pub async fn run(store: Store, interval: Duration, clock: SharedClock) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = scan_overdue(&store, clock.now()).await {
            tracing::error!(%error, "scanning for overdue obligations failed");
        }
    }
}
