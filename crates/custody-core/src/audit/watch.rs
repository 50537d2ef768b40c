//! The continuous monitor's audit: [`Watch`] keeps an [`Auditor`] between
//! scans and feeds it only what was appended since, while re-checking what
//! it already verified against what it kept.
//!
//! Each scan reads the stored checkpoints and every stored row, in one
//! consistent snapshot:
//! - a row already verified is only re-hashed: its Merkle leaf and a
//!   fingerprint of the columns stored beside it (log index, case ID,
//!   sequence number, stored leaf) must be the ones kept (72 bytes per entry:
//!   the tree's nodes and the fingerprint);
//! - a row past the verified end is fed to the auditor, which checks it as
//!   `custody verify` does;
//! - a checkpoint seen before must still be stored as it was; a new one is
//!   checked (signature, row, root at its size against the kept tree).
//!
//! As it reads, the watch lets go of the trails of idle cases that no
//! deadline can fall due for, keeping a digest of their case rows instead, and
//! rebuilds a trail from its verified rows when its case is written to
//! again (`retire.rs`): what it holds grows with the cases in play and the
//! log's entries, not with every case. Before a page of rows is observed,
//! the caller reads the rows of the cases it needs back
//! ([`Watch::cases_to_restore`], [`Watch::restore`]); the stored case rows
//! are given to [`Watch::observe_head`], and [`Watch::heads_changed`] says
//! whether a retired case's row changed.
//!
//! When anything already verified changed (a row edited, deleted or
//! swapped, a checkpoint deleted or replaced, a retired case's row
//! changed), the scan starts over with a
//! fresh auditor over the rows as they now stand, given every checkpoint the
//! watch saw as held outside the database: the full audit then reports what
//! was done with the codes `verify` uses (`event.malformed`,
//! `log.leaf-mismatch`, `log.index-gap`, `checkpoint.missing-from-database`,
//! `checkpoint.root-mismatch`...). A tampered ledger costs one full audit;
//! a healthy one a re-hash of its rows and an audit of its new rows.

use std::collections::BTreeMap;

use custody_log::{leaf_hash, VerifierKey};

use super::retire::{RetiredRow, Retirement};
use super::{
    Auditor, Finding, LogAudit, OutsideCheckpoint, Report, StoredCaseHead, StoredCheckpointRow,
    StoredEvent,
};
use crate::admin::AdminRows;
use crate::code::Code;
use crate::id::Sha256Hash;
use crate::time::Timestamp;

/// What a [`Watch`] checks against, beyond the store itself.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    /// The log's verifier keys (never from the database).
    pub trusted_keys: Vec<VerifierKey>,
    /// The servers' checkpoint interval (0: the default).
    pub checkpoint_interval_seconds: u64,
    /// Checkpoints held outside the database when the watch starts (a
    /// node's checkpoints file), checked by the first scan.
    pub outside: Vec<OutsideCheckpoint>,
    /// Log entries after which a case no row touched is let go of, if no
    /// deadline can fall due for it (0: [`IDLE_AFTER_ENTRIES`]).
    pub idle_after_entries: u64,
}

/// The log entries after which the monitor lets go of a case no row
/// touched (and no deadline can fall due for), by default: what it holds
/// is the cases written to in about this many entries, plus those waiting
/// for a deadline.
pub const IDLE_AFTER_ENTRIES: u64 = 16_384;

/// An audit kept between scans; see the module's documentation.
pub struct Watch {
    options: WatchOptions,
    /// `None` before the first scan and after a change was found.
    auditor: Option<Auditor>,
    /// Per verified entry, in log order: a fingerprint of its columns.
    columns: Vec<[u8; 8]>,
    /// The stored checkpoints seen, by size.
    checkpoints: BTreeMap<u64, StoredCheckpointRow>,
    /// Entries verified before this scan.
    verified: u64,
    /// Rows read by this scan.
    position: u64,
    /// Why this scan must start over, when something verified changed.
    changed: Option<String>,
    /// What made this scan start over, once it did.
    restarted_because: Option<String>,
    /// Scans completed.
    scans: u64,
    /// Every row read so far sat at the position its log index names:
    /// only then are rows found by case ID and checked by position.
    aligned: bool,
    /// The stored case rows of this scan whose trail is held.
    live_heads: Vec<StoredCaseHead>,
    /// The other stored case rows of this scan found as they were retired.
    heads_matched: u64,
    /// The first of them that was not.
    heads_wrong: Option<String>,
    /// [`Watch::heads_changed`] ran on this scan's rows.
    heads_checked: bool,
    /// A report found a retired case's row changed: the next scan starts over.
    start_over: Option<String>,
    /// This scan started over: it audits every row and lets go of nothing,
    /// so that what changed is named.
    starting_over: bool,
}

impl Watch {
    /// A watch that has verified nothing yet.
    pub fn new(options: WatchOptions) -> Watch {
        Watch {
            options,
            auditor: None,
            columns: Vec::new(),
            checkpoints: BTreeMap::new(),
            verified: 0,
            position: 0,
            changed: None,
            restarted_because: None,
            scans: 0,
            aligned: true,
            live_heads: Vec::new(),
            heads_matched: 0,
            heads_wrong: None,
            heads_checked: false,
            start_over: None,
            starting_over: false,
        }
    }

    /// Cases whose trails were let go of ([`Watch`]), and are held as a
    /// digest of their case rows.
    pub fn retired_cases(&self) -> u64 {
        self.auditor.as_ref().map_or(0, Auditor::retired_cases)
    }

    /// The rows [`Watch::restore`] takes are those before this log index
    /// (the entries verified before the page about to be observed).
    pub fn restore_before(&self) -> u64 {
        self.position.max(self.verified)
    }

    /// [`WatchOptions::idle_after_entries`], or its default.
    fn idle_after(&self) -> u64 {
        match self.options.idle_after_entries {
            0 => IDLE_AFTER_ENTRIES,
            entries => entries,
        }
    }

    /// Cases whose trails are held.
    pub fn held_cases(&self) -> u64 {
        self.auditor.as_ref().map_or(0, Auditor::held_cases)
    }

    /// Log entries verified so far.
    pub fn verified(&self) -> u64 {
        self.columns.len() as u64
    }

    /// Scans completed.
    pub fn scans(&self) -> u64 {
        self.scans
    }

    /// What made the last scan start over, if anything did.
    pub fn last_change(&self) -> Option<&str> {
        self.restarted_because.as_deref()
    }

    /// Starts a scan of a snapshot holding `checkpoints` (every stored one)
    /// and `stored_leaves` leaves; feed its rows to [`Watch::observe`] in log
    /// order next.
    pub fn begin_scan(&mut self, checkpoints: &[StoredCheckpointRow], stored_leaves: u64) {
        self.position = 0;
        self.starting_over = false;
        self.changed = self.start_over.take();
        self.restarted_because = None;
        self.verified = self.verified();
        self.clear_heads();
        let Some(auditor) = &mut self.auditor else {
            self.start(checkpoints, stored_leaves, Vec::new());
            return;
        };
        let stored: BTreeMap<u64, &StoredCheckpointRow> =
            checkpoints.iter().map(|row| (row.size, row)).collect();
        for (size, seen) in &self.checkpoints {
            let now = stored.get(size);
            if now.is_none_or(|row| row.note != seen.note || row.root != seen.root) {
                self.changed = Some(format!(
                    "the checkpoint stored at size {size} was {} since the last scan",
                    if now.is_some() { "replaced" } else { "deleted" }
                ));
                return;
            }
        }
        for row in checkpoints {
            if self.checkpoints.contains_key(&row.size) {
                continue;
            }
            auditor.log.add_stored_checkpoint(
                row,
                &self.options.trusted_keys,
                &mut auditor.checked,
                &mut auditor.findings,
            );
            self.checkpoints.insert(row.size, row.clone());
        }
        auditor.log.set_stored_leaves(stored_leaves);
    }

    /// Reads one row of the scan (rows in log order). Returns false once
    /// the scan must start over ([`Watch::finish_pass`]): the rest of the
    /// rows need not be read.
    pub fn observe(&mut self, row: &StoredEvent) -> bool {
        if self.changed.is_some() {
            return false;
        }
        let position = self.position;
        self.position += 1;
        if row.log_index != position {
            self.aligned = false;
        }
        let fingerprint = fingerprint(row);
        if position < self.verified {
            let index = usize::try_from(position).unwrap_or(usize::MAX);
            let kept_leaf = self
                .auditor
                .as_ref()
                .and_then(|auditor| auditor.log.tree())
                .and_then(|tree| tree.leaf_hash(position));
            if kept_leaf != Some(leaf_hash(&row.bytes))
                || self.columns.get(index) != Some(&fingerprint)
            {
                self.changed = Some(format!(
                    "the entry read at position {position} (log index {}, case {}) is not the one verified there: rows were edited, deleted or swapped",
                    row.log_index, row.case_id
                ));
                return false;
            }
            return true;
        }
        if let Some(auditor) = &mut self.auditor {
            auditor.observe_event(row);
            self.columns.push(fingerprint);
        }
        true
    }

    /// The retired cases that rows of `page` (the next page of the scan,
    /// in log order) write to or merge into: their trails must be rebuilt
    /// ([`Watch::restore`]) before the page is observed.
    ///
    /// Cases no row touched in the last entries are let go of here first,
    /// at every page: through a long scan (the first one of a large
    /// ledger) too, what is held follows the cases in play.
    pub fn cases_to_restore(&mut self, page: &[StoredEvent]) -> Vec<String> {
        let idle_before = self.position.saturating_sub(self.idle_after());
        let (aligned, verified, position) = (self.aligned, self.verified, self.position);
        if self.changed.is_some() {
            return Vec::new();
        }
        let Some(auditor) = &mut self.auditor else {
            return Vec::new();
        };
        if aligned && position > verified && !self.starting_over {
            auditor.retire(idle_before, Retirement::Idle);
        }
        // Rows verified before this scan are only re-hashed.
        let skip = usize::try_from(verified.saturating_sub(position)).unwrap_or(usize::MAX);
        auditor.cases_to_restore(page.iter().skip(skip).map(|row| (row, None)))
    }

    /// Rebuilds retired case `case_id`'s trail from its stored rows before
    /// the scan's new rows (log order), each of which must be the row
    /// verified at its position; otherwise the scan starts over. Rows of a
    /// case never retired are left alone.
    pub fn restore(&mut self, case_id: &str, rows: &[StoredEvent]) {
        let restore_before = self.restore_before();
        let Some(auditor) = &mut self.auditor else {
            return;
        };
        if rows.is_empty() || auditor.holds_case(case_id) || self.changed.is_some() {
            return;
        }
        for row in rows {
            let kept_leaf = auditor
                .log
                .tree()
                .and_then(|tree| tree.leaf_hash(row.log_index));
            let index = usize::try_from(row.log_index).unwrap_or(usize::MAX);
            if row.log_index >= restore_before
                || kept_leaf != Some(leaf_hash(&row.bytes))
                || self.columns.get(index) != Some(&fingerprint(row))
            {
                self.changed = Some(format!(
                    "the row read back for case {case_id} at log index {} is not the one verified there: rows were edited, deleted or swapped",
                    row.log_index
                ));
                return;
            }
        }
        if let Err(why) = auditor.restore_case(case_id, rows) {
            self.changed = Some(why);
        }
    }

    /// Takes in one stored case row of the scan's snapshot (any order),
    /// after the scan's rows.
    pub fn observe_head(&mut self, head: StoredCaseHead) {
        let Some(auditor) = &self.auditor else {
            self.live_heads.push(head);
            return;
        };
        match auditor.check_retired_head(&head) {
            // A row of no case seen is compared like a held case's: the
            // report names it (`case.events-missing`).
            RetiredRow::Held | RetiredRow::Unknown => self.live_heads.push(head),
            RetiredRow::Matched => self.heads_matched += 1,
            RetiredRow::Differs => {
                self.heads_wrong.get_or_insert_with(|| {
                    format!(
                        "the stored row of case {}, verified in an earlier scan, is not the one verified: a case row was edited",
                        head.case_id
                    )
                });
            }
        }
    }

    /// After the case rows: true when the rows of the retired cases are
    /// not the ones retired (one changed, was added or deleted), in which
    /// case the scan must start over ([`Watch::restart`]) to name it.
    pub fn heads_changed(&mut self) -> bool {
        if std::mem::replace(&mut self.heads_checked, true) {
            return false;
        }
        let retired = self.retired_cases();
        let wrong = self.heads_wrong.take().or_else(|| {
            (self.heads_matched != retired).then(|| {
                format!(
                    "{} of the stored rows of the {retired} cases verified in earlier scans are gone: case rows were deleted",
                    retired - self.heads_matched.min(retired),
                )
            })
        });
        self.heads_matched = 0;
        match wrong {
            None => false,
            Some(why) => {
                self.changed = Some(why);
                true
            }
        }
    }

    fn clear_heads(&mut self) {
        self.live_heads.clear();
        self.heads_matched = 0;
        self.heads_wrong = None;
        self.heads_checked = false;
    }

    /// Ends the reading of the rows. Returns true when something already
    /// verified changed: call [`Watch::restart`] and read every row again.
    pub fn finish_pass(&mut self) -> bool {
        if self.changed.is_none() && self.position < self.verified {
            self.changed = Some(format!(
                "{} verified entries at the end of the log are gone",
                self.verified - self.position
            ));
        }
        self.changed.is_some() && self.verified > 0
    }

    /// Starts over after a change: a fresh auditor over the snapshot,
    /// given every checkpoint seen so far as held outside the database.
    pub fn restart(&mut self, checkpoints: &[StoredCheckpointRow], stored_leaves: u64) {
        let scan = self.scans;
        let memory = std::mem::take(&mut self.checkpoints)
            .into_values()
            .map(|row| OutsideCheckpoint {
                note: row.note,
                source: format!("the monitor's memory (seen by scan {scan} or before)"),
            })
            .collect();
        self.start(checkpoints, stored_leaves, memory);
        self.restarted_because = self.changed.take();
        self.verified = 0;
        self.position = 0;
        self.starting_over = true;
    }

    fn start(
        &mut self,
        checkpoints: &[StoredCheckpointRow],
        stored_leaves: u64,
        memory: Vec<OutsideCheckpoint>,
    ) {
        let mut outside = self.options.outside.clone();
        outside.extend(memory);
        let mut auditor = Auditor::with_log(LogAudit {
            outside,
            checkpoint_interval_seconds: self.options.checkpoint_interval_seconds,
            trusted_keys: self.options.trusted_keys.clone(),
            checkpoints: checkpoints.to_vec(),
            since: None,
            stored_leaves,
            now: None,
            // The monitor holds no witness policy: `verify --witness` does.
            witnessed: None,
        });
        auditor.log.keep_tree();
        if self.scans > 0 {
            auditor.log.add_outside_place();
        }
        self.auditor = Some(auditor);
        self.aligned = true;
        self.clear_heads();
        self.columns.clear();
        self.checkpoints = checkpoints
            .iter()
            .map(|row| (row.size, row.clone()))
            .collect();
    }

    /// The report of the scan, as of `now`: the auditor's findings so far
    /// and what only the end of the log tells ([`Auditor::report_so_far`]:
    /// the auditor goes on from here at the next scan, and is not copied).
    ///
    /// `heads` are stored case rows not given to [`Watch::observe_head`]
    /// already. When the rows of retired cases were not checked with
    /// [`Watch::heads_changed`] and changed, the report says so and the
    /// next scan starts over. After the report, the trails of the cases no
    /// row touched in the last entries, and that no deadline can fall due
    /// for, are let go of (the module's documentation).
    pub fn report(
        &mut self,
        heads: Vec<StoredCaseHead>,
        admin_rows: Option<&AdminRows>,
        now: Timestamp,
    ) -> Report {
        self.scans += 1;
        if self.auditor.is_none() {
            return Auditor::new().at(now).finish(heads);
        }
        for head in heads {
            self.observe_head(head);
        }
        let mut extra = Vec::new();
        if self.heads_changed() {
            let why = self.changed.take().unwrap_or_default();
            extra.push(Finding::new(
                Code::ChainHeadMismatch,
                format!("{why}; the next scan audits every row again and names the case"),
            ));
            self.start_over = Some(why);
        }
        let heads = std::mem::take(&mut self.live_heads);
        self.clear_heads();
        let idle_before = self.position.saturating_sub(self.idle_after());
        let Some(auditor) = &mut self.auditor else {
            return Auditor::new().at(now).finish(heads);
        };
        // From now on the watch's memory of the checkpoints is held outside
        // the database.
        auditor.log.add_outside_place();
        let mut parts = auditor.conclusion_copy();
        if let Some(rows) = admin_rows {
            // The rows' findings belong to this scan's report only.
            parts.admin.check_rows(rows);
        }
        parts.findings.extend(extra);
        let report = auditor.conclude(parts, Some(now), heads);
        if self.aligned && self.start_over.is_none() && !self.starting_over {
            // Cases no row touched in the last entries.
            auditor.retire(idle_before, Retirement::Idle);
        }
        report
    }
}

impl Auditor {
    /// The report of the rows observed so far, as [`Auditor::finish`]
    /// makes it, without consuming the auditor: the end-of-log checks run
    /// on a copy, so more rows can be observed after.
    pub fn snapshot(&self, heads: impl IntoIterator<Item = StoredCaseHead>) -> Report {
        self.report_so_far(self.now, heads)
    }
}

/// The columns stored beside a row's bytes, which the leaf does not cover.
fn fingerprint(row: &StoredEvent) -> [u8; 8] {
    let mut text = Vec::with_capacity(row.case_id.len() + 80);
    text.extend_from_slice(&row.log_index.to_be_bytes());
    text.extend_from_slice(&row.seq.to_be_bytes());
    text.extend_from_slice(row.case_id.as_bytes());
    text.push(0);
    if let Some(leaf) = &row.stored_leaf {
        text.extend_from_slice(leaf);
    }
    let digest = Sha256Hash::of(&text);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest.0[..8]);
    out
}
