//! The Merkle log and its checkpoints: every leaf recomputed from the stored
//! bytes, the tree rebuilt in a [`Frontier`], every checkpoint (stored, held
//! outside the database, saved by an auditor) checked against it, and the
//! entries no checkpoint covers.

use std::collections::{HashMap, HashSet, VecDeque};

use custody_log::{verify_checkpoint, Frontier, Hash, MemoryTree, VerifierKey};

use super::finding::Finding;
use super::{Checked, DecodedRow, LogAudit, StoredEvent};
use crate::code::Code;
use crate::severity::Severity;
use crate::time::Timestamp;

/// The server's default `log.checkpoint_interval_seconds`, which `verify`
/// assumes when it is given no configuration file.
pub const DEFAULT_CHECKPOINT_INTERVAL_SECONDS: u64 = 5;

/// How many checkpoint intervals log entries may wait for a checkpoint before
/// their lack of one is an error rather than the normal tail of a live log.
pub const UNCOVERED_TAIL_INTERVALS: u64 = 3;

/// How long after an entry is signed its witnesses may take to cosign it
/// before `witness.uncovered-tail` is an error: the push worker's poll and
/// retries (backing off to 10 s, 15 s a request) with room to spare.
pub const WITNESS_GRACE_SECONDS: u64 = 60;

/// What the audit keeps of the log while reading it: the rebuilt tree and
/// the roots it must have.
#[derive(Clone, Default)]
pub(super) struct LogState {
    next_log_index: u64,
    /// The recomputed tree, leaf by leaf, from the stored event bytes.
    frontier: Frontier,
    /// Checkpoints (signature-checked or not) waiting for the tree to reach
    /// their size, largest first.
    pending_checkpoints: Vec<ExpectedRoot>,
    stored_leaves: u64,
    /// Whether stored leaves and checkpoints are checked (only with
    /// [`super::Auditor::with_log`]).
    log_checks: bool,
    /// The largest size a valid checkpoint (stored, held outside or saved) signs.
    covered: u64,
    /// The oldest entry no checkpoint covers: its index and, when it
    /// decoded, its `recorded_at`.
    first_uncovered: Option<(u64, Option<Timestamp>)>,
    /// Checkpoints held outside the database that were given.
    outside_given: u64,
    checkpoint_interval_seconds: u64,
    /// The whole tree, kept by an incremental audit ([`super::Watch`]) that
    /// learns of checkpoints after it read the entries they sign, and must
    /// check the root at any size it read.
    tree: Option<MemoryTree>,
    /// With `tree`: each entry no checkpoint covers yet, with its
    /// `recorded_at` when it decoded, so that the oldest one is known again
    /// when a new checkpoint covers some of them.
    uncovered: VecDeque<(u64, Option<Timestamp>)>,

    /// With a witness policy: the newest size enough witnesses cosigned,
    /// and who.
    witnessed: Option<(u64, Vec<String>)>,
    /// The oldest entry after it: its index and `recorded_at`.
    first_unwitnessed: Option<(u64, Option<Timestamp>)>,
}

/// A root the recomputed tree must have at a size.
#[derive(Clone)]
struct ExpectedRoot {
    size: u64,
    root: Hash,
    /// `since` for the auditor's own checkpoint, else a stored checkpoint.
    source: RootSource,
}

#[derive(Clone, PartialEq, Eq)]
enum RootSource {
    Stored,
    Since,
    /// Held outside the database, at this place.
    Outside(String),
}

impl LogState {
    /// The checks of `log`'s checkpoints that need no event: signatures,
    /// rows against their notes, outside checkpoints against the database.
    pub(super) fn new(
        log: &LogAudit,
        checked: &mut Checked,
        findings: &mut Vec<Finding>,
    ) -> LogState {
        let mut state = LogState {
            stored_leaves: log.stored_leaves,
            log_checks: true,
            checkpoint_interval_seconds: if log.checkpoint_interval_seconds == 0 {
                DEFAULT_CHECKPOINT_INTERVAL_SECONDS
            } else {
                log.checkpoint_interval_seconds
            },
            outside_given: log.outside.len() as u64 + u64::from(log.since.is_some()),
            witnessed: log.witnessed.clone(),
            ..LogState::default()
        };
        for row in &log.checkpoints {
            if let Some(expected) = verify_stored(row, &log.trusted_keys, checked, findings) {
                state.pending_checkpoints.push(expected);
            }
        }
        state.check_outside(log, checked, findings);
        if let Some(since) = &log.since {
            checked.outside_checkpoints += 1;
            match verify_checkpoint(since.as_bytes(), &log.trusted_keys) {
                Ok(verified) => state.pending_checkpoints.push(ExpectedRoot {
                    size: verified.size(),
                    root: *verified.root_hash(),
                    source: RootSource::Since,
                }),
                Err(error) => findings.push(Finding::new(
                    Code::SinceBadSignature,
                    format!("the saved checkpoint is not signed by a configured log key: {error}"),
                )),
            }
        }
        // Checked in size order as the tree grows.
        state
            .pending_checkpoints
            .sort_by_key(|expected| std::cmp::Reverse(expected.size));
        state.covered = state
            .pending_checkpoints
            .first()
            .map_or(0, |largest| largest.size);
        state
    }

    /// Keeps the whole tree from now on (call before the first row), so
    /// that [`LogState::add_stored_checkpoint`] can check a checkpoint of a
    /// size already read.
    pub(super) fn keep_tree(&mut self) {
        self.tree = Some(MemoryTree::new());
    }

    /// A copy for concluding a report: everything but the kept tree and
    /// the entries it tracks, which the end-of-log checks do not read.
    pub(super) fn without_tree(&self) -> LogState {
        LogState {
            next_log_index: self.next_log_index,
            frontier: self.frontier.clone(),
            pending_checkpoints: self.pending_checkpoints.clone(),
            stored_leaves: self.stored_leaves,
            log_checks: self.log_checks,
            covered: self.covered,
            first_uncovered: self.first_uncovered,
            outside_given: self.outside_given,
            checkpoint_interval_seconds: self.checkpoint_interval_seconds,
            tree: None,
            uncovered: VecDeque::new(),
            witnessed: self.witnessed.clone(),
            first_unwitnessed: self.first_unwitnessed,
        }
    }

    /// The kept tree ([`LogState::keep_tree`]).
    pub(super) fn tree(&self) -> Option<&MemoryTree> {
        self.tree.as_ref()
    }

    /// The number of stored leaves, as read again by a later scan.
    pub(super) fn set_stored_leaves(&mut self, stored_leaves: u64) {
        self.stored_leaves = stored_leaves;
    }

    /// Counts a place that checkpoints are held outside the database (the
    /// monitor's own memory of the checkpoints it saw).
    pub(super) fn add_outside_place(&mut self) {
        self.outside_given = self.outside_given.max(1);
    }

    /// Checks a stored checkpoint the audit learns of after it started (a
    /// checkpoint signed since the last scan): its signature, its row, and
    /// its root against the tree, now if the tree has reached its size
    /// (which needs the kept tree) or when it does.
    pub(super) fn add_stored_checkpoint(
        &mut self,
        row: &super::StoredCheckpointRow,
        trusted_keys: &[VerifierKey],
        checked: &mut Checked,
        findings: &mut Vec<Finding>,
    ) {
        let Some(expected) = verify_stored(row, trusted_keys, checked, findings) else {
            return;
        };
        let covered = self.covered.max(expected.size);
        if expected.size <= self.frontier.size() {
            let root = self
                .tree
                .as_ref()
                .and_then(|tree| tree.root_at(expected.size).ok());
            if root != Some(expected.root) {
                findings.push(root_mismatch(&expected));
            }
        } else {
            self.pending_checkpoints.push(expected);
            self.pending_checkpoints
                .sort_by_key(|expected| std::cmp::Reverse(expected.size));
        }
        self.cover(covered);
    }

    /// Moves the covered size to `covered`; with the kept tree, the oldest
    /// uncovered entry is then the first at or after it.
    fn cover(&mut self, covered: u64) {
        self.covered = covered;
        if self.tree.is_none() {
            return;
        }
        while self
            .uncovered
            .front()
            .is_some_and(|(index, _)| *index < covered)
        {
            self.uncovered.pop_front();
        }
        self.first_uncovered = self.uncovered.front().copied();
    }

    /// Checks the checkpoints held outside the database: each must be signed
    /// by a trusted key and be in the database (same size, same root); its
    /// root is then checked against the rebuilt tree like a stored one. A
    /// copy identical to a stored row adds no second report of that row.
    fn check_outside(
        &mut self,
        log: &LogAudit,
        checked: &mut Checked,
        findings: &mut Vec<Finding>,
    ) {
        let stored_notes: HashSet<&str> = log
            .checkpoints
            .iter()
            .map(|row| row.note.as_str())
            .collect();
        let stored_roots: HashMap<u64, &[u8]> = log
            .checkpoints
            .iter()
            .map(|row| (row.size, row.root.as_slice()))
            .collect();
        let mut seen = HashSet::new();
        for outside in &log.outside {
            checked.outside_checkpoints += 1;
            if stored_notes.contains(outside.note.as_str()) || !seen.insert(outside.note.as_str()) {
                // The stored row (or an earlier copy) is checked already.
                continue;
            }
            let verified = match verify_checkpoint(outside.note.as_bytes(), &log.trusted_keys) {
                Ok(verified) => verified,
                Err(error) => {
                    findings.push(Finding::new(
                        Code::CheckpointBadSignature,
                        format!(
                            "the checkpoint held outside the database in {} is not signed by a configured log key: {error}",
                            outside.source
                        ),
                    ));
                    continue;
                }
            };
            let size = verified.size();
            match stored_roots.get(&size) {
                Some(root) if *root == verified.root_hash().as_slice() => {}
                stored => findings.push(
                    Finding::new(
                        Code::CheckpointMissingFromDatabase,
                        format!(
                            "the log signed a checkpoint at size {size} (held outside the database in {}), but the database {}: checkpoints were deleted or replaced behind the store's back",
                            outside.source,
                            if stored.is_some() {
                                "holds another root at that size"
                            } else {
                                "holds no checkpoint at that size"
                            }
                        ),
                    )
                    .log_index(size.checked_sub(1)),
                ),
            }
            self.pending_checkpoints.push(ExpectedRoot {
                size,
                root: *verified.root_hash(),
                source: RootSource::Outside(outside.source.clone()),
            });
        }
    }

    /// Checks one row's place in the log and its leaf, and grows the tree
    /// by it: index gaps and duplicates, the stored leaf against the one
    /// recomputed from the bytes, and every checkpoint of the new size.
    pub(super) fn observe_row(
        &mut self,
        row: &StoredEvent,
        decoded: &DecodedRow,
        checked: &mut Checked,
        findings: &mut Vec<Finding>,
    ) {
        if row.log_index != self.next_log_index {
            if row.log_index > self.next_log_index {
                findings.push(
                    Finding::new(
                        Code::LogIndexGap,
                        format!(
                            "log entries {}..{} are missing: events were deleted behind the store's back",
                            self.next_log_index, row.log_index
                        ),
                    )
                    .log_index(self.next_log_index),
                );
            } else {
                findings.push(
                    Finding::new(
                        Code::LogIndexDuplicate,
                        format!("log index {} appears more than once", row.log_index),
                    )
                    .case(row.case_id.clone())
                    .log_index(row.log_index),
                );
            }
        }
        self.next_log_index = self.next_log_index.max(row.log_index + 1);

        // The Merkle leaf is recomputed from the stored bytes, never trusted.
        let leaf = decoded.leaf;
        checked.leaves += 1;
        let leaf_finding = |code: Code, message: String| {
            Finding::new(code, message)
                .case(row.case_id.clone())
                .seq(u64::try_from(row.seq).ok())
                .log_index(row.log_index)
        };
        match &row.stored_leaf {
            _ if !self.log_checks => {}
            Some(stored) if stored.as_slice() == leaf.as_slice() => {}
            Some(_) => findings.push(leaf_finding(
                Code::LogLeafMismatch,
                format!(
                    "the stored Merkle leaf at log index {} does not hash the stored event: the event or the log was altered",
                    row.log_index
                ),
            )),
            None => findings.push(leaf_finding(
                Code::LogLeafMissing,
                format!("the event at log index {} has no Merkle leaf", row.log_index),
            )),
        }
        self.frontier.push(leaf);
        if let Some(tree) = &mut self.tree {
            tree.append_leaf_hash(leaf);
        }
        self.check_roots_at_current_size(findings);
        if self.log_checks && row.log_index >= self.covered {
            let recorded_at = decoded.event.as_ref().ok().map(|event| event.recorded_at);
            if self.first_uncovered.is_none() {
                self.first_uncovered = Some((row.log_index, recorded_at));
            }
            if self.tree.is_some() {
                self.uncovered.push_back((row.log_index, recorded_at));
            }
        }
        if let Some((witnessed, _)) = &self.witnessed {
            if self.first_unwitnessed.is_none() && row.log_index >= *witnessed {
                let recorded_at = decoded.event.as_ref().ok().map(|event| event.recorded_at);
                self.first_unwitnessed = Some((row.log_index, recorded_at));
            }
        }
    }

    fn check_roots_at_current_size(&mut self, findings: &mut Vec<Finding>) {
        while let Some(expected) = self.pending_checkpoints.last() {
            if expected.size != self.frontier.size() {
                break;
            }
            // Safe: `last()` just returned an element.
            let expected = self
                .pending_checkpoints
                .pop()
                .expect("a pending checkpoint");
            if self.frontier.root() != expected.root {
                findings.push(root_mismatch(&expected));
            }
        }
    }

    /// The size of the rebuilt log.
    pub(super) fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Once every row is read: the checkpoints that sign more entries than
    /// the log holds, then the coverage findings.
    pub(super) fn finish(
        &mut self,
        now: Option<Timestamp>,
        checked: &mut Checked,
        findings: &mut Vec<Finding>,
    ) {
        let log_size = self.size();
        for expected in std::mem::take(&mut self.pending_checkpoints) {
            let (code, message) = match expected.source {
                RootSource::Stored => (
                    Code::CheckpointBeyondLog,
                    format!(
                        "a signed checkpoint commits to {} entries but only {log_size} are stored: the tail of the log was truncated",
                        expected.size
                    ),
                ),
                RootSource::Since => (
                    Code::SinceBeyondLog,
                    format!(
                        "the saved checkpoint commits to {} entries but only {log_size} are stored: the log was truncated or rewritten",
                        expected.size
                    ),
                ),
                RootSource::Outside(source) => (
                    Code::CheckpointBeyondLog,
                    format!(
                        "a signed checkpoint held outside the database in {source} commits to {} entries but only {log_size} are stored: the tail of the log was truncated",
                        expected.size
                    ),
                ),
            };
            findings.push(Finding::new(code, message).log_index(log_size));
        }
        self.finish_coverage(log_size, now, checked, findings);
    }

    /// `witness.uncovered-tail`: the entries after the newest checkpoint
    /// enough witnesses cosigned. Info while the oldest of them is younger
    /// than signing and cosigning take; high after that, because the
    /// witnesses then were down or refusing for that long, or the
    /// cosignatures of a rewritten tail were deleted.
    fn finish_witnessed(&self, log_size: u64, now: Option<Timestamp>, findings: &mut Vec<Finding>) {
        let (Some((size, names)), Some((first, recorded_at))) =
            (&self.witnessed, self.first_unwitnessed)
        else {
            return;
        };
        let grace = self
            .checkpoint_interval_seconds
            .saturating_mul(UNCOVERED_TAIL_INTERVALS)
            .saturating_add(WITNESS_GRACE_SECONDS);
        let since = recorded_at
            .map(|at| format!("recorded at {at}"))
            .unwrap_or_else(|| "whose time cannot be read".to_string());
        let (severity, judgement) = if younger_than(recorded_at, now, grace) {
            (
                Severity::Info,
                format!("the oldest of them ({since}) is younger than {grace} s: the witnesses cosign them soon"),
            )
        } else {
            (
                Severity::High,
                format!("the oldest of them ({since}) is older than {grace} s: the witnesses were down or refused this log's checkpoints for that long, or the cosignatures that covered these entries were deleted (check the witnesses' logs, or pass the checkpoint a witness holds with --checkpoints)"),
            )
        };
        findings.push(
            Finding::new(
                Code::WitnessUncoveredTail,
                format!(
                    "the newest checkpoint cosigned by {} of the given witnesses ({}) covers {size} of the log's {log_size} entries; the {} after it are not witnessed; {judgement}",
                    names.len(),
                    names.join(", "),
                    log_size.saturating_sub(*size)
                ),
            )
            .severity(severity)
            .log_index(first),
        );
    }

    /// Coverage findings, once the log's size is known: a log with entries
    /// but no checkpoint, entries after the newest checkpoint, and whether
    /// any checkpoint held outside the database was checked at all.
    fn finish_coverage(
        &mut self,
        log_size: u64,
        now: Option<Timestamp>,
        checked: &mut Checked,
        findings: &mut Vec<Finding>,
    ) {
        if !self.log_checks {
            return;
        }
        checked.covered_entries = self.covered.min(log_size);
        self.finish_witnessed(log_size, now, findings);
        if let Some((first, recorded_at)) = self.first_uncovered {
            let uncovered = log_size.saturating_sub(first);
            let grace = self
                .checkpoint_interval_seconds
                .saturating_mul(UNCOVERED_TAIL_INTERVALS);
            let young = younger_than(recorded_at, now, grace);
            let since = recorded_at
                .map(|at| format!("recorded at {at}"))
                .unwrap_or_else(|| "whose time cannot be read".to_string());
            let (code, what) = if self.covered == 0 {
                (
                    Code::LogNoCheckpoint,
                    format!("the log holds {log_size} entries but no signed checkpoint"),
                )
            } else {
                (
                    Code::LogUncoveredTail,
                    format!(
                        "the newest signed checkpoint covers {} of the log's {log_size} entries; {uncovered} are covered by none",
                        self.covered
                    ),
                )
            };
            let (severity, judgement) = if young {
                (
                    Severity::Info,
                    format!(
                        "the oldest uncovered entry ({since}) is younger than {UNCOVERED_TAIL_INTERVALS} checkpoint intervals of {} s: the server signs them soon",
                        self.checkpoint_interval_seconds
                    ),
                )
            } else {
                (
                    Severity::High,
                    format!(
                        "the oldest uncovered entry ({since}) is older than {UNCOVERED_TAIL_INTERVALS} checkpoint intervals of {} s: its checkpoints were deleted, or no server signed them (start one: it signs as it starts; pass --config if the interval is not the default)",
                        self.checkpoint_interval_seconds
                    ),
                )
            };
            findings.push(
                Finding::new(code, format!("{what}; {judgement}"))
                    .severity(severity)
                    .log_index(first),
            );
        }
        if self.outside_given == 0 && log_size > 0 {
            findings.push(Finding::new(
                Code::CheckpointNoneOutside,
                "no checkpoint held outside the database was checked, so whoever can write to the database could have rewritten or truncated the log together with its stored checkpoints; pass --data DIR (a node's data directory, with its checkpoints file), --checkpoints FILE|DIR or --since-checkpoint FILE",
            ));
        }
    }

    /// A log that holds more leaves than events lost events.
    pub(super) fn finish_leaves(&self, findings: &mut Vec<Finding>) {
        let log_size = self.size();
        if self.stored_leaves > log_size {
            findings.push(
                Finding::new(
                    Code::LogLeafWithoutEvent,
                    format!(
                        "the log holds {} leaves but only {log_size} events: events were removed behind the store's back",
                        self.stored_leaves
                    ),
                )
                .log_index(log_size),
            );
        }
    }
}

/// Checks a stored checkpoint's signature and its row against its note;
/// returns the root the tree must have at its size when it is signed by a
/// trusted key.
fn verify_stored(
    row: &super::StoredCheckpointRow,
    trusted_keys: &[VerifierKey],
    checked: &mut Checked,
    findings: &mut Vec<Finding>,
) -> Option<ExpectedRoot> {
    checked.checkpoints += 1;
    match verify_checkpoint(row.note.as_bytes(), trusted_keys) {
        Ok(verified) => {
            if verified.size() != row.size || verified.root_hash().as_slice() != row.root.as_slice()
            {
                findings.push(Finding::new(
                    Code::CheckpointRowMismatch,
                    format!(
                        "the checkpoint stored at size {} signs size {} with a different root: the row was edited",
                        row.size,
                        verified.size()
                    ),
                ));
            }
            Some(ExpectedRoot {
                size: verified.size(),
                root: *verified.root_hash(),
                source: RootSource::Stored,
            })
        }
        Err(error) => {
            findings.push(Finding::new(
                Code::CheckpointBadSignature,
                format!(
                    "the checkpoint stored at size {} is not signed by a configured log key: {error}",
                    row.size
                ),
            ));
            None
        }
    }
}

/// The finding for a checkpoint whose root the stored events do not reproduce.
fn root_mismatch(expected: &ExpectedRoot) -> Finding {
    let (code, message) = match &expected.source {
        RootSource::Stored => (
            Code::CheckpointRootMismatch,
            format!(
                "the signed checkpoint at size {} has a root that the stored events do not reproduce: history was rewritten after it was signed",
                expected.size
            ),
        ),
        RootSource::Since => (
            Code::SinceNotExtended,
            format!(
                "the log does not extend the saved checkpoint at size {}: the first {} entries changed since it was signed",
                expected.size, expected.size
            ),
        ),
        RootSource::Outside(source) => (
            Code::CheckpointRootMismatch,
            format!(
                "the signed checkpoint at size {} held outside the database in {source} has a root that the stored events do not reproduce: history was rewritten after it was signed",
                expected.size
            ),
        ),
    };
    Finding::new(code, message).log_index(expected.size.saturating_sub(1))
}

/// Whether an entry recorded at `recorded_at` is younger than `grace`
/// seconds at `now`. An entry that does not decode has no trustworthy
/// time: it is judged as old (and reported on its own). Without a clock
/// every entry is young.
fn younger_than(recorded_at: Option<Timestamp>, now: Option<Timestamp>, grace: u64) -> bool {
    match (recorded_at, now) {
        (Some(at), Some(now)) => now < at.plus_seconds(i64::try_from(grace).unwrap_or(i64::MAX)),
        (None, _) => false,
        (Some(_), None) => true,
    }
}
