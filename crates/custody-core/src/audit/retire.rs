//! Trails the continuous monitor lets go of between scans, and takes back
//! from the rows when their case is written to again ([`super::Watch`]).
//!
//! A request's case whose trail is idle (no row in the last scan) and can
//! fall due for nothing (no deadline of its own can pass any more) is
//! *retired*: the audit drops its trail and keeps, in place of it, a term
//! of a sum over the retired cases' heads and the end-of-trail findings it
//! had (judged without a clock, since no deadline is left). What the
//! monitor then holds grows with the cases still in play, not with every
//! case the ledger ever held.
//!
//! When a retired case is written to again, the monitor reads its rows
//! (checked against the leaves and columns it verified) and rebuilds the
//! trail as it was ([`Auditor::restore_case`]), without judging the rules
//! again; its term and findings leave the sum. The stored case rows of
//! retired cases are checked, at every scan, by the sum alone: a row
//! changed, added or deleted makes it differ, and the scan starts over
//! with a full audit, which names the case.

use super::chain::CaseTrail;
use super::finding::Finding;
use super::{decode_row, observed, rules, Auditor, StoredCaseHead, StoredEvent};
use crate::case::CaseView;
use crate::id::Sha256Hash;
use crate::time::Timestamp;

/// A time after every deadline a case can hold: an obligation still open
/// is overdue by then, so a trail judged at it and without a clock alike
/// has no deadline left.
const END_OF_TIME_MICROS: i64 = 253_402_300_799_000_000; // 9999-12-31T23:59:59Z

/// What the audit keeps of the cases it retired.
#[derive(Clone, Default)]
pub(super) struct Retired {
    /// Wrapping sum of [`head_term`] over the retired cases.
    pub(super) sum: u128,
    /// How many cases are retired.
    pub(super) count: u64,
    /// Their end-of-trail findings.
    pub(super) findings: Vec<Finding>,
}

/// A case's head as one term of the retired sum: the first 16 bytes of the
/// SHA-256 of its ID, head sequence number, head hash, state and drill flag.
pub(super) fn head_term(case_id: &str, seq: &str, hash: &str, state: &str, drill: bool) -> u128 {
    let text = format!("{case_id}\n{seq}\n{hash}\n{state}\n{drill}");
    let digest = Sha256Hash::of(text.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest.0[..16]);
    u128::from_be_bytes(first)
}

/// A stored head's term.
pub(super) fn stored_term(head: &StoredCaseHead) -> u128 {
    head_term(
        &head.case_id,
        &head.head_seq.to_string(),
        &head.head_hash,
        &head.state,
        head.drill,
    )
}

/// The term of the head a trail says its case row must hold.
fn trail_term(case_id: &str, trail: &CaseTrail, view: &CaseView) -> u128 {
    head_term(
        case_id,
        &trail.last_seq.to_string(),
        &trail.last_hash.to_hex(),
        view.state.as_str(),
        view.drill,
    )
}

/// The end-of-trail findings of a trail, as of `now`.
fn end_findings(
    case_id: &str,
    trail: &CaseTrail,
    view: &CaseView,
    now: Option<Timestamp>,
) -> Vec<Finding> {
    let mut found = Vec::new();
    rules::end_of_trail(case_id, trail, view, now, &mut found);
    observed::end_of_trail(
        case_id,
        view,
        trail.opening_observation.as_ref(),
        now,
        &mut found,
    );
    found
}

impl Auditor {
    /// Whether case `case_id`'s trail is held.
    pub(super) fn holds_case(&self, case_id: &str) -> bool {
        self.cases.contains_key(case_id)
    }

    /// Retires every request's case whose latest row is before log index
    /// `before` and that no deadline can fall due for; see the module.
    pub(super) fn retire_idle(&mut self, before: u64, retired: &mut Retired) {
        let end_of_time = Some(Timestamp::from_micros(END_OF_TIME_MICROS));
        let idle: Vec<String> = self
            .cases
            .iter()
            .filter(|(_, trail)| trail.rebuildable() && trail.last_log_index < before)
            .filter_map(|(case_id, trail)| {
                let view = trail.view.as_deref()?;
                (end_findings(case_id, trail, view, end_of_time)
                    == end_findings(case_id, trail, view, None))
                .then(|| case_id.clone())
            })
            .collect();
        for case_id in idle {
            let Some(trail) = self.cases.remove(&case_id) else {
                continue;
            };
            let Some(view) = trail.view.as_deref() else {
                continue;
            };
            retired.sum = retired.sum.wrapping_add(trail_term(&case_id, &trail, view));
            retired.count += 1;
            retired
                .findings
                .extend(end_findings(&case_id, &trail, view, None));
        }
        self.cases.shrink_to(self.cases.len() * 2);
    }

    /// Rebuilds the trail of a retired case from its rows (in log order,
    /// every one verified before), without judging the rules again, and
    /// takes the case out of `retired`. Fails, changing nothing, when the
    /// rows do not rebuild a request's case.
    pub(super) fn restore_case(
        &mut self,
        case_id: &str,
        rows: &[StoredEvent],
        retired: &mut Retired,
    ) -> Result<(), String> {
        let mut trail: Option<CaseTrail> = None;
        for row in rows {
            let decoded = decode_row(row);
            let event = decoded.event.map_err(|error| {
                format!(
                    "the row at log index {} of case {case_id} no longer decodes: {error}",
                    row.log_index
                )
            })?;
            if event.case_id.as_str() != case_id {
                return Err(format!(
                    "the row at log index {} read for case {case_id} holds an event of case {}",
                    row.log_index, event.case_id
                ));
            }
            match &mut trail {
                None => {
                    let view = CaseView::open_hashed(&event, decoded.hash).ok_or_else(|| {
                        format!("case {case_id} does not start with a request any more")
                    })?;
                    trail = Some(CaseTrail::opened(
                        &event,
                        decoded.hash,
                        row.log_index,
                        Some(view),
                    ));
                }
                Some(trail) => {
                    trail.follow(&event, decoded.hash, row.log_index);
                    trail.last_log_index = row.log_index;
                }
            }
        }
        let Some(trail) = trail else {
            return Err(format!("case {case_id} has no stored rows to rebuild"));
        };
        let Some(view) = trail.view.as_deref() else {
            return Err(format!("case {case_id} is not a request's case"));
        };
        retired.sum = retired.sum.wrapping_sub(trail_term(case_id, &trail, view));
        retired.count = retired.count.saturating_sub(1);
        retired
            .findings
            .retain(|finding| finding.case_id.as_deref() != Some(case_id));
        self.cases.insert(case_id.to_string(), trail);
        Ok(())
    }
}
