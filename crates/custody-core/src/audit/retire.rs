//! Trails the audit lets go of while it reads, and takes back from the
//! rows when their case is written to again.
//!
//! A request's case whose trail can be rebuilt from its rows and that no
//! row has touched for a while is *retired*: the audit drops its trail
//! (about 1.7 KB and up) and keeps, in place of it, 40 bytes: a 64-bit key
//! of its ID and two 128-bit digests of the case row it must have (its
//! head, and every column with the view), and its end-of-trail findings.
//! Its case is counted in the statistics then. Each stored row is later
//! checked against its own digests: one sum over all of them would let a
//! forger who edits many rows pick edits whose digests cancel out (a
//! generalised birthday search).
//!
//! Two callers, two rules ([`Retirement`]):
//! - the continuous monitor ([`super::Watch`]) retires, after each scan,
//!   the cases no row of that scan wrote to and that no deadline can fall
//!   due for any more (its clock moves), with their findings judged
//!   without a clock;
//! - `verify` (`custody-store`'s audit) retires, as it reads, the cases
//!   whose latest row is far enough behind, with their findings judged at
//!   the audit's time (which does not move).
//!
//! When a row of a retired case comes, the caller reads the case's rows
//! back and the trail is rebuilt as it was ([`Auditor::restore_case`]),
//! without judging the rules again; its digests, findings and count are
//! taken back.

use std::collections::HashMap;

use super::chain::CaseTrail;
use super::finding::Finding;
use super::{decode_row, observed, rules, Auditor, StoredCaseHead, StoredCaseRow, StoredEvent};
use crate::case::{CaseRow, CaseView};
use crate::id::Sha256Hash;
use crate::time::Timestamp;

/// A time after every deadline a case can hold: an obligation still open
/// is overdue by then, so a trail judged at it and without a clock alike
/// has no deadline left.
const END_OF_TIME_MICROS: i64 = 253_402_300_799_000_000; // 9999-12-31T23:59:59Z

/// Which cases are let go of, and how their end-of-trail findings are
/// judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retirement {
    /// The monitor's: only cases no deadline can fall due for any more,
    /// judged without a clock.
    Idle,
    /// `verify`'s: every case that can be rebuilt, judged at the audit's
    /// time.
    Settled,
}

/// What the audit keeps of one retired case.
#[derive(Clone, Copy, PartialEq, Eq)]
struct RetiredCase {
    /// [`head_term`] of the row it must have.
    head: u128,
    /// [`row_term`] of the row it must have.
    row: u128,
}

/// What the audit keeps of the cases it retired.
#[derive(Clone, Default)]
pub(super) struct Retired {
    /// Per retired case, by [`case_key`].
    cases: HashMap<u64, RetiredCase>,
    /// Their end-of-trail findings.
    pub(super) findings: Vec<Finding>,
    /// Retired cases whose rows [`Auditor::check_retired_row`] found as
    /// they must be.
    matched: u64,
}

/// What [`Auditor::check_retired_row`] found of a stored case row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetiredRow {
    /// The case's trail is held: compare the row with it.
    Held,
    /// The row of a retired case, as it must be.
    Matched,
    /// The row of a retired case, not as it must be: rebuild the case
    /// ([`Auditor::restore_case`]) and compare the row with its trail.
    Differs,
    /// No case the audit held or retired: a row without events.
    Unknown,
}

/// A case ID's key among the retired: the first 8 bytes of its SHA-256.
fn case_key(case_id: &str) -> u64 {
    let digest = Sha256Hash::of(case_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.0[..8]);
    u64::from_be_bytes(first)
}

/// The first 16 bytes of the SHA-256 of `parts`, each ended by a newline
/// (no part holds one where it matters: IDs, numbers, hex, and JSON
/// without raw newlines).
fn digest(parts: &[&[u8]]) -> u128 {
    let mut text = Vec::new();
    for part in parts {
        text.extend_from_slice(part);
        text.push(b'\n');
    }
    let digest = Sha256Hash::of(&text);
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest.0[..16]);
    u128::from_be_bytes(first)
}

/// A case's head (ID, head sequence number, head hash, state, drill flag)
/// as a 128-bit digest.
fn head_term(case_id: &str, seq: &str, hash: &str, state: &str, drill: bool) -> u128 {
    digest(&[
        case_id.as_bytes(),
        seq.as_bytes(),
        hash.as_bytes(),
        state.as_bytes(),
        if drill { b"1" } else { b"0" },
    ])
}

/// A case row (every column the audit compares, and the view's bytes) as a
/// 128-bit digest.
#[allow(clippy::too_many_arguments, reason = "one argument per column")]
fn row_term(
    head: u128,
    change_key: &str,
    ticket: Option<&str>,
    requester: &str,
    summary: &str,
    opened_at: &str,
    updated_at: &str,
    next_deadline: Option<&str>,
    view: &[u8],
) -> u128 {
    let head = head.to_be_bytes();
    let optional = |value: Option<&str>| {
        value.map_or_else(|| b"\x00".to_vec(), |v| [b"=", v.as_bytes()].concat())
    };
    digest(&[
        &head,
        change_key.as_bytes(),
        &optional(ticket),
        requester.as_bytes(),
        summary.as_bytes(),
        opened_at.as_bytes(),
        updated_at.as_bytes(),
        &optional(next_deadline),
        view,
    ])
}

/// What a trail says its case row must be.
fn retired_case(case_id: &str, trail: &CaseTrail, view: &CaseView) -> RetiredCase {
    let head = head_term(
        case_id,
        &trail.last_seq.to_string(),
        &trail.last_hash.to_hex(),
        view.state.as_str(),
        view.drill,
    );
    let expected = CaseRow::of(view);
    // The writer stores `serde_json::to_vec` of the view.
    let view_bytes = serde_json::to_vec(view).unwrap_or_default();
    RetiredCase {
        head,
        row: row_term(
            head,
            &expected.change_key,
            expected.ticket.as_deref(),
            &expected.requester,
            &expected.summary,
            &expected.opened_at,
            &expected.updated_at,
            expected.next_deadline.as_deref(),
            &view_bytes,
        ),
    }
}

/// A stored head's digest.
fn stored_head(head: &StoredCaseHead) -> u128 {
    head_term(
        &head.case_id,
        &head.head_seq.to_string(),
        &head.head_hash,
        &head.state,
        head.drill,
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
    pub fn holds_case(&self, case_id: &str) -> bool {
        self.cases.contains_key(case_id)
    }

    /// How many cases' trails are held.
    pub fn held_cases(&self) -> u64 {
        self.cases.len() as u64
    }

    /// How many cases are retired.
    pub fn retired_cases(&self) -> u64 {
        self.retired.cases.len() as u64
    }

    /// Retires the cases whose latest row is before log index `before`, by
    /// the rule `how`; see the module.
    pub fn retire(&mut self, before: u64, how: Retirement) {
        let end_of_time = Some(Timestamp::from_micros(END_OF_TIME_MICROS));
        let judged_at = match how {
            Retirement::Idle => None,
            Retirement::Settled => self.now,
        };
        let mut settled: Vec<String> = Vec::new();
        let mut due_later: Vec<String> = Vec::new();
        for (case_id, trail) in &self.cases {
            let Some(view) = trail.view.as_deref() else {
                continue;
            };
            if !trail.rebuildable() || trail.last_log_index >= before || trail.held_for_deadline {
                continue;
            }
            if how == Retirement::Idle
                && end_findings(case_id, trail, view, end_of_time)
                    != end_findings(case_id, trail, view, None)
            {
                due_later.push(case_id.clone());
            } else {
                settled.push(case_id.clone());
            }
        }
        // Not looked at again until their next event: many cases waiting
        // for a deadline (time-bound access awaiting its revocation) would
        // otherwise be judged again at every page.
        for case_id in due_later {
            if let Some(trail) = self.cases.get_mut(&case_id) {
                trail.held_for_deadline = true;
            }
        }
        if settled.is_empty() {
            return;
        }
        for case_id in settled {
            let key = case_key(&case_id);
            if self.retired.cases.contains_key(&key) {
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
            self.retired
                .cases
                .insert(key, retired_case(&case_id, &trail, view));
            self.retired
                .findings
                .extend(end_findings(&case_id, &trail, view, judged_at));
            self.stats.count_case(view);
        }
        self.cases.shrink_to(self.cases.len().saturating_mul(2));
    }

    /// The retired cases `rows` (in log order, each with its event when the
    /// caller decoded it already) write to or merge into: their trails must
    /// be rebuilt ([`Auditor::restore_case`]) before the rows are observed.
    pub fn cases_to_restore<'a>(
        &self,
        rows: impl IntoIterator<Item = (&'a StoredEvent, Option<&'a crate::event::Event>)>,
    ) -> Vec<String> {
        if self.retired.cases.is_empty() {
            return Vec::new();
        }
        let mut wanted: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut want = |case_id: &str| {
            if !self.holds_case(case_id)
                && self.retired.cases.contains_key(&case_key(case_id))
                && seen.insert(case_id.to_string())
            {
                wanted.push(case_id.to_string());
            }
        };
        for (row, decoded) in rows {
            if row.seq > 1 {
                want(&row.case_id);
            }
            // A merge is judged with the surviving case as it stood. A row
            // not decoded yet is decoded only when it may be one.
            let merged_into = |event: &crate::event::Event| match &event.body {
                crate::event::EventBody::DuplicateMerged(link) => Some(link.other_case.to_string()),
                _ => None,
            };
            let partner = match decoded {
                Some(event) => merged_into(event),
                None if may_be_merge(&row.bytes) => crate::event::Event::decode(&row.bytes)
                    .ok()
                    .as_ref()
                    .and_then(merged_into),
                None => None,
            };
            if let Some(partner) = partner {
                want(&partner);
            }
        }
        wanted
    }

    /// Rebuilds the trail of retired case `case_id` from its stored rows
    /// (in log order, before the rows still to be observed), without
    /// judging the rules again, and takes it back from the retired: its
    /// digests, end-of-trail findings and count. Fails, changing nothing,
    /// when the case is not retired or the rows do not rebuild the trail
    /// that was let go of.
    pub fn restore_case(&mut self, case_id: &str, rows: &[StoredEvent]) -> Result<(), String> {
        let key = case_key(case_id);
        let Some(retired) = self.retired.cases.get(&key).copied() else {
            return Err(format!("case {case_id} was not let go of"));
        };
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
        if retired_case(case_id, &trail, view) != retired {
            return Err(format!(
                "case {case_id}'s rows do not rebuild the trail that was let go of"
            ));
        }
        self.retired.cases.remove(&key);
        self.retired
            .findings
            .retain(|finding| finding.case_id.as_deref() != Some(case_id));
        self.stats.uncount_case(view);
        self.cases.insert(case_id.to_string(), trail);
        Ok(())
    }

    /// Where a stored case head stands: held, a retired case's as it must
    /// be or not, or of no case the audit saw.
    pub(super) fn check_retired_head(&self, head: &StoredCaseHead) -> RetiredRow {
        if self.holds_case(&head.case_id) {
            return RetiredRow::Held;
        }
        match self.retired.cases.get(&case_key(&head.case_id)) {
            None => RetiredRow::Unknown,
            Some(retired) if retired.head == stored_head(head) => RetiredRow::Matched,
            Some(_) => RetiredRow::Differs,
        }
    }

    /// Where a stored case row (with its `state` and `drill` columns)
    /// stands; a row found as it must be is counted
    /// ([`Auditor::retired_rows_missing`]).
    pub fn check_retired_row(
        &mut self,
        row: &StoredCaseRow,
        state: &str,
        drill: bool,
    ) -> RetiredRow {
        if self.holds_case(&row.case_id) {
            return RetiredRow::Held;
        }
        let Some(retired) = self.retired.cases.get(&case_key(&row.case_id)) else {
            return RetiredRow::Unknown;
        };
        let head = head_term(
            &row.case_id,
            &row.head_seq.to_string(),
            &row.head_hash,
            state,
            drill,
        );
        let stored = row_term(
            head,
            &row.change_key,
            row.ticket.as_deref(),
            &row.requester,
            &row.summary,
            &row.opened_at,
            &row.updated_at,
            row.next_deadline.as_deref(),
            &row.view,
        );
        if retired.head == head && retired.row == stored {
            self.retired.matched += 1;
            RetiredRow::Matched
        } else {
            RetiredRow::Differs
        }
    }

    /// How many retired cases [`Auditor::check_retired_row`] did not find
    /// as they must be: their rows are gone (or differ, and their cases
    /// were rebuilt).
    pub fn retired_rows_missing(&self) -> u64 {
        self.retired_cases().saturating_sub(self.retired.matched)
    }
}

/// Whether an event's bytes may be a merge (its kind's name appears in
/// them); only those are decoded ahead to find their partner.
fn may_be_merge(bytes: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"duplicate_merged\"";
    bytes.windows(NEEDLE.len()).any(|window| window == NEEDLE)
}
