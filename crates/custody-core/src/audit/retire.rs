//! Trails the continuous monitor lets go of between scans, and takes back
//! from the rows when their case is written to again ([`super::Watch`]).
//!
//! A request's case whose trail is idle (no row in the last scan) and can
//! fall due for nothing (no deadline of its own can pass any more) is
//! *retired*: the audit drops its trail (about 1.7 KB and up) and keeps, in
//! place of it, 24 bytes: a 64-bit key of its ID and a 128-bit digest of
//! the case row it must have (ID, head, state, drill flag), and the
//! end-of-trail findings it had (judged without a clock, since no deadline
//! is left). Each stored row is checked against its own digest: a sum over
//! all of them would let a forger who edits many rows pick edits whose
//! digests cancel out (a generalised birthday search).
//!
//! When a retired case is written to again, the monitor reads its rows
//! (checked against the leaves and columns it verified) and rebuilds the
//! trail as it was ([`Auditor::restore_case`]), without judging the rules
//! again; its digest and findings are dropped. The stored case rows of
//! retired cases are checked at every scan against their digests: a row
//! changed, added or deleted makes the scan start over with a full audit,
//! which names the case.

use std::collections::HashMap;

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
    /// Per retired case, by [`case_key`]: the [`head_term`] of the row it
    /// must have.
    pub(super) heads: HashMap<u64, u128>,
    /// Their end-of-trail findings.
    pub(super) findings: Vec<Finding>,
}

impl Retired {
    /// How many cases are retired.
    pub(super) fn count(&self) -> u64 {
        self.heads.len() as u64
    }
}

/// A case ID's key among the retired: the first 8 bytes of its SHA-256.
pub(super) fn case_key(case_id: &str) -> u64 {
    let digest = Sha256Hash::of(case_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.0[..8]);
    u64::from_be_bytes(first)
}

/// A case's head as a 128-bit digest: the first 16 bytes of the SHA-256 of
/// its ID, head sequence number, head hash, state and drill flag.
pub(super) fn head_term(case_id: &str, seq: &str, hash: &str, state: &str, drill: bool) -> u128 {
    let text = format!("{case_id}\n{seq}\n{hash}\n{state}\n{drill}");
    let digest = Sha256Hash::of(text.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest.0[..16]);
    u128::from_be_bytes(first)
}

/// A stored head's digest.
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
            let key = case_key(&case_id);
            if retired.heads.contains_key(&key) {
                // Two IDs with one key (about one chance in 2^64 per
                // pair): the second stays held.
                continue;
            }
            let Some(trail) = self.cases.remove(&case_id) else {
                continue;
            };
            let Some(view) = trail.view.as_deref() else {
                continue;
            };
            retired
                .heads
                .insert(key, trail_term(&case_id, &trail, view));
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
        if retired.heads.remove(&case_key(case_id)) != Some(trail_term(case_id, &trail, view)) {
            return Err(format!(
                "case {case_id}'s rows do not rebuild the trail that was let go of"
            ));
        }
        retired
            .findings
            .retain(|finding| finding.case_id.as_deref() != Some(case_id));
        self.cases.insert(case_id.to_string(), trail);
        Ok(())
    }
}
