//! The audit: everything `custody verify` checks, as a pure function of the
//! stored rows.
//!
//! The auditor never trusts what the store says about an event: it decodes the
//! stored canonical bytes, recomputes every hash, rebuilds every case from its
//! events and re-checks every lifecycle rule. Columns the store keeps beside
//! the bytes (case ID, sequence number) and the stored case projections are
//! compared with what the bytes say, so editing either behind the store's back
//! is reported.
//!
//! Rows are fed one at a time in log order ([`Auditor::observe_event`]); the
//! events themselves are never kept. What the auditor keeps grows with:
//! - the cases: one trail per case (its head, its rebuilt view);
//! - the links between cases: two halves per merge, review-opened revocation
//!   or evidence join, paired in linear time through an index by case ID;
//! - the events that owe notifications: one entry per owed notification and
//!   one per delivery ID attempted (IDs and timestamps, no payloads), since
//!   whether a notification was delivered is known only at the end; this is
//!   the part that grows with the number of events, about a hundred bytes per
//!   notification owed;
//! - evidence references, requests and captured links: one small entry each;
//! - the checkpoints (stored and held outside) and the Merkle frontier, whose
//!   size is logarithmic in the log.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::case::CaseView;
use crate::event::{DecodeError, Event, EventBody};
use crate::id::Sha256Hash;
use crate::lifecycle::{judge_request, violations_with, Severity};
use custody_log::{leaf_hash, verify_checkpoint, Frontier, Hash, VerifierKey};

/// One row of the event table, as stored.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    /// Position in the deployment-wide log (0-based, gapless).
    pub log_index: u64,
    /// The case ID column.
    pub case_id: String,
    /// The sequence number column.
    pub seq: i64,
    /// The canonical event bytes.
    pub bytes: Vec<u8>,
    /// The stored Merkle leaf hash (level-0 node) at this index, if any.
    pub stored_leaf: Option<Vec<u8>>,
}

/// One stored signed checkpoint.
#[derive(Clone, Debug)]
pub struct StoredCheckpointRow {
    /// The size column.
    pub size: u64,
    /// The root column.
    pub root: Vec<u8>,
    /// The signed note.
    pub note: String,
}

/// A signed checkpoint held outside the database: an entry of a node's
/// `checkpoints` file, a file of a configured checkpoints directory, or any
/// checkpoint an auditor kept (`verify --checkpoints`).
#[derive(Clone, Debug)]
pub struct OutsideCheckpoint {
    /// The signed note.
    pub note: String,
    /// Where it was found (a path, and the entry's number in a file), for messages.
    pub source: String,
}

/// The server's default `log.checkpoint_interval_seconds`, which `verify`
/// assumes when it is given no configuration file.
pub const DEFAULT_CHECKPOINT_INTERVAL_SECONDS: u64 = 5;

/// How many checkpoint intervals log entries may wait for a checkpoint before
/// their lack of one is an error rather than the normal tail of a live log.
pub const UNCOVERED_TAIL_INTERVALS: u64 = 3;

/// What the auditor needs to check the Merkle log and its checkpoints.
#[derive(Clone, Debug, Default)]
pub struct LogAudit {
    /// Checkpoints held outside the database, checked like stored ones and
    /// required to be in the database.
    pub outside: Vec<OutsideCheckpoint>,
    /// The server's checkpoint interval (0: [`DEFAULT_CHECKPOINT_INTERVAL_SECONDS`]);
    /// entries no checkpoint covers are an error once the oldest of them is
    /// [`UNCOVERED_TAIL_INTERVALS`] intervals old.
    pub checkpoint_interval_seconds: u64,
    /// The log's verifier keys, current and retired.
    pub trusted_keys: Vec<VerifierKey>,
    /// Every stored checkpoint.
    pub checkpoints: Vec<StoredCheckpointRow>,
    /// A checkpoint an auditor saved earlier: the log must extend it.
    pub since: Option<String>,
    /// Number of stored leaves (level-0 nodes).
    pub stored_leaves: u64,
    /// The time of the audit, for deadline checks (post-hoc reviews).
    pub now: Option<crate::Timestamp>,
}

/// One row of the case projection table, as stored.
#[derive(Clone, Debug)]
pub struct StoredCaseHead {
    /// The case ID.
    pub case_id: String,
    /// The stored sequence number of the case's latest event.
    pub head_seq: i64,
    /// The stored hash of the case's latest event (hex).
    pub head_hash: String,
    /// The stored state.
    pub state: String,
}

/// Something wrong with the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable code, documented in `docs/findings.md`.
    pub code: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// The case it concerns.
    pub case_id: Option<String>,
    /// What is wrong, in a sentence.
    pub message: String,
    /// The event it points at.
    pub event_id: Option<String>,
    /// The event's sequence number in its case.
    pub seq: Option<u64>,
    /// The event's index in the log.
    pub log_index: Option<u64>,
}

/// What was checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// Log entries (stored event rows) read.
    pub log_entries: u64,
    /// Events decoded and re-hashed.
    pub events: u64,
    /// Cases rebuilt from their events.
    pub cases: u64,
    /// Links between consecutive events of a case checked.
    pub chain_links: u64,
    /// Lifecycle and separation-of-duties rules evaluated.
    pub rules: u64,
    /// Merkle leaves recomputed from event bytes.
    pub leaves: u64,
    /// Signed checkpoints whose signatures and roots were checked.
    pub checkpoints: u64,
    /// Checkpoints held outside the database (checkpoints files and
    /// directories, a saved checkpoint) that were checked.
    pub outside_checkpoints: u64,
    /// Log entries that a valid checkpoint covers.
    pub covered_entries: u64,
    /// Halves of links between cases followed (merges, revocations opened by reviews).
    pub case_links: u64,
    /// Evidence blobs re-hashed (checked by the caller, which holds the blobs).
    pub evidence_blobs: u64,
    /// Events of the administration record re-checked.
    pub admin_events: u64,
    /// Actions taken under delegation grants re-checked against the grant.
    pub delegated_actions: u64,
}

/// The outcome of an audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// True only when nothing above [`Severity::Info`] was found.
    pub ok: bool,
    /// What was checked.
    pub checked: Checked,
    /// What was found, most severe first.
    pub findings: Vec<Finding>,
    /// Every evidence blob an event references, for the caller to check
    /// against the blob store (the audit itself does no IO).
    #[serde(skip)]
    pub evidence: Vec<EvidenceRef>,
}

/// An evidence blob referenced by an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceRef {
    /// The case.
    pub case_id: String,
    /// The event that references it.
    pub event_id: String,
    /// Its position in the case.
    pub seq: u64,
    /// Its position in the log.
    pub log_index: u64,
    /// The blob's SHA-256.
    pub sha256: Sha256Hash,
    /// Its recorded size, when the event records one.
    pub size: Option<u64>,
}

impl Report {
    /// Adds findings made outside the pure audit (the blob store's), keeping
    /// the order (most severe first) and `ok` right.
    pub fn add_findings(&mut self, findings: impl IntoIterator<Item = Finding>) {
        self.findings.extend(findings);
        self.findings.sort_by(|left, right| {
            right
                .severity
                .cmp(&left.severity)
                .then_with(|| left.log_index.cmp(&right.log_index))
        });
        self.ok = nothing_wrong(&self.findings);
    }
}

/// Whether `findings` hold nothing above [`Severity::Info`]: an info finding
/// says something worth knowing, never that something is wrong.
fn nothing_wrong(findings: &[Finding]) -> bool {
    findings
        .iter()
        .all(|finding| finding.severity == Severity::Info)
}

/// The work on one row that does not depend on any other row: decoding,
/// the canonical-form check and both hashes. [`decode_row`] makes it; callers
/// may run it on several threads and feed the results in log order to
/// [`Auditor::observe_decoded`].
pub struct DecodedRow {
    event: Result<Event, DecodeError>,
    hash: Sha256Hash,
    leaf: Hash,
}

impl DecodedRow {
    /// Whether the row decoded into a canonical event.
    pub fn is_ok(&self) -> bool {
        self.event.is_ok()
    }
}

/// Decodes and hashes one stored row; see [`DecodedRow`].
pub fn decode_row(row: &StoredEvent) -> DecodedRow {
    DecodedRow {
        event: Event::decode(&row.bytes),
        hash: Sha256Hash::of(&row.bytes),
        leaf: leaf_hash(&row.bytes),
    }
}

/// Streams stored rows through every check.
#[derive(Default)]
pub struct Auditor {
    next_log_index: u64,
    cases: HashMap<String, CaseTrail>,
    findings: Vec<Finding>,
    checked: Checked,
    /// The recomputed tree, leaf by leaf, from the stored event bytes.
    frontier: Frontier,
    /// Checkpoints (signature-checked or not) waiting for the tree to reach their size.
    pending_checkpoints: Vec<ExpectedRoot>,
    stored_leaves: u64,
    /// Whether stored leaves are compared (only with [`Auditor::with_log`]).
    log_checks: bool,
    /// The time of the audit, for deadline checks.
    now: Option<crate::Timestamp>,
    /// Halves of links between cases seen (merges, revocations opened by reviews).
    case_links: Vec<LinkSeen>,
    /// The largest size a valid checkpoint (stored, held outside or saved) signs.
    covered: u64,
    /// The oldest entry no checkpoint covers: its index and, when it
    /// decoded, its `recorded_at`.
    first_uncovered: Option<(u64, Option<crate::Timestamp>)>,
    /// Checkpoints held outside the database that were given.
    outside_given: u64,
    checkpoint_interval_seconds: u64,
    /// Policies the policy record adopted: hash to the log index of adoption.
    adopted_policies: HashMap<Sha256Hash, u64>,
    /// The log index of the first policy adoption, if the log records any.
    first_adoption: Option<u64>,
    /// Every request: its case, event, log index and the policy it cites.
    requests: Vec<RequestSeen>,
    /// Notifications owed, in log order.
    owed: Vec<OwedSeen>,
    /// Delivery attempts by delivery ID: when it was delivered, whether it died.
    deliveries: HashMap<String, DeliverySeen>,
    /// Deliveries escalated after they died.
    escalated_deliveries: std::collections::HashSet<String>,
    /// Per case, the delivery IDs of the notices owed to reviewers so far.
    reviewer_notices: HashMap<String, Vec<String>>,
    /// Executions by automation, with the reviewer notices owed before them.
    automated_executions: Vec<AutomatedExecution>,
    /// Every evidence blob referenced.
    evidence: Vec<EvidenceRef>,
    /// The latest state of every captured link, by (case, URL).
    links: BTreeMap<(String, String), LinkState>,
    /// The administration record and the actions taken under delegation grants.
    admin: crate::admin::AdminAudit,
}

/// The latest word on a captured link.
struct LinkState {
    state: &'static str,
    event_id: String,
    seq: u64,
    log_index: u64,
    detail: String,
}

struct OwedSeen {
    case_id: String,
    event_id: String,
    log_index: u64,
    seq: u64,
    recorded_at: crate::Timestamp,
    owed: crate::notify::Owed,
}

#[derive(Default)]
struct DeliverySeen {
    delivered_at: Option<crate::Timestamp>,
    dead: bool,
}

struct AutomatedExecution {
    case_id: String,
    event_id: String,
    log_index: u64,
    seq: u64,
    occurred_at: crate::Timestamp,
    reviewer_notices: Vec<String>,
}

/// A request and the policy version that decided it.
struct RequestSeen {
    case_id: String,
    event_id: String,
    log_index: u64,
    policy_hash: Sha256Hash,
    rule: String,
}

/// One half of a link between two cases; a link is whole when the other
/// case holds the partner kind pointing back.
struct LinkSeen {
    case_id: String,
    other_case: String,
    kind: &'static str,
    partner: &'static str,
    event_id: String,
    log_index: u64,
}

/// A root the recomputed tree must have at a size.
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

struct CaseTrail {
    /// The deployment's administration record (see [`crate::admin`]).
    admin_record: bool,
    /// The deployment's policy record (its events are `policy_adopted`, by
    /// `system`), not a request's case.
    policy_record: Option<PolicyTrail>,
    /// An external reference's evidence record (`evidence_held` events until
    /// `evidence_released`), not a request's case.
    evidence_record: Option<EvidenceRecordTrail>,
    last_seq: u64,
    last_hash: Sha256Hash,
    last_event_id: String,
    view: Option<CaseView>,
    /// Sequence number and log index of the case's first completed execution,
    /// so end-of-case findings about it can point at it.
    first_execution: Option<(u64, u64)>,
}

/// What the audit keeps of an evidence record while reading it.
struct EvidenceRecordTrail {
    ticket: String,
    first_recorded_at: crate::Timestamp,
    first_event: String,
    first_log_index: u64,
    released: bool,
}

/// How long evidence may wait for a case carrying its reference before
/// `verify` reports it unattached.
pub const EVIDENCE_GRACE_SECONDS: i64 = 24 * 3600;

/// What the audit keeps of a policy record while reading it.
struct PolicyTrail {
    /// The hash of the latest adopted policy.
    last_policy: Sha256Hash,
}

impl Auditor {
    /// A fresh auditor that checks the events only.
    pub fn new() -> Auditor {
        Auditor::default()
    }

    /// Also checks deadlines (reviews, revocations) as of `now`.
    pub fn at(mut self, now: crate::Timestamp) -> Auditor {
        self.now = Some(now);
        self
    }

    /// A fresh auditor that also recomputes the Merkle log and checks every
    /// stored checkpoint (signature and root) and, when given, the auditor's
    /// own saved checkpoint.
    pub fn with_log(log: LogAudit) -> Auditor {
        let mut auditor = Auditor {
            stored_leaves: log.stored_leaves,
            log_checks: true,
            now: log.now,
            checkpoint_interval_seconds: if log.checkpoint_interval_seconds == 0 {
                DEFAULT_CHECKPOINT_INTERVAL_SECONDS
            } else {
                log.checkpoint_interval_seconds
            },
            outside_given: log.outside.len() as u64 + u64::from(log.since.is_some()),
            ..Auditor::default()
        };
        let checkpoint_finding = |code: &'static str, message: String| Finding {
            code,
            severity: Severity::Critical,
            case_id: None,
            message,
            event_id: None,
            seq: None,
            log_index: None,
        };
        for row in &log.checkpoints {
            auditor.checked.checkpoints += 1;
            match verify_checkpoint(row.note.as_bytes(), &log.trusted_keys) {
                Ok(verified) => {
                    if verified.size() != row.size || verified.root_hash().as_slice() != row.root.as_slice() {
                        auditor.findings.push(checkpoint_finding(
                            "checkpoint.row-mismatch",
                            format!(
                                "the checkpoint stored at size {} signs size {} with a different root: the row was edited",
                                row.size,
                                verified.size()
                            ),
                        ));
                    }
                    auditor.pending_checkpoints.push(ExpectedRoot {
                        size: verified.size(),
                        root: *verified.root_hash(),
                        source: RootSource::Stored,
                    });
                }
                Err(error) => auditor.findings.push(checkpoint_finding(
                    "checkpoint.bad-signature",
                    format!(
                        "the checkpoint stored at size {} is not signed by a configured log key: {error}",
                        row.size
                    ),
                )),
            }
        }
        auditor.check_outside(&log);
        if let Some(since) = &log.since {
            auditor.checked.outside_checkpoints += 1;
            match verify_checkpoint(since.as_bytes(), &log.trusted_keys) {
                Ok(verified) => auditor.pending_checkpoints.push(ExpectedRoot {
                    size: verified.size(),
                    root: *verified.root_hash(),
                    source: RootSource::Since,
                }),
                Err(error) => auditor.findings.push(checkpoint_finding(
                    "since.bad-signature",
                    format!("the saved checkpoint is not signed by a configured log key: {error}"),
                )),
            }
        }
        // Checked in size order as the tree grows.
        auditor
            .pending_checkpoints
            .sort_by_key(|expected| std::cmp::Reverse(expected.size));
        auditor.covered = auditor
            .pending_checkpoints
            .first()
            .map_or(0, |largest| largest.size);
        auditor
    }

    /// Checks the checkpoints held outside the database: each must be signed
    /// by a trusted key and be in the database (same size, same root); its
    /// root is then checked against the rebuilt tree like a stored one. A
    /// copy identical to a stored row adds no second report of that row.
    fn check_outside(&mut self, log: &LogAudit) {
        let stored_notes: std::collections::HashSet<&str> = log
            .checkpoints
            .iter()
            .map(|row| row.note.as_str())
            .collect();
        let stored_roots: HashMap<u64, &[u8]> = log
            .checkpoints
            .iter()
            .map(|row| (row.size, row.root.as_slice()))
            .collect();
        let mut seen = std::collections::HashSet::new();
        for outside in &log.outside {
            self.checked.outside_checkpoints += 1;
            if stored_notes.contains(outside.note.as_str()) || !seen.insert(outside.note.as_str()) {
                // The stored row (or an earlier copy) is checked already.
                continue;
            }
            let finding = |code: &'static str, message: String| Finding {
                code,
                severity: Severity::Critical,
                case_id: None,
                message,
                event_id: None,
                seq: None,
                log_index: None,
            };
            let verified = match verify_checkpoint(outside.note.as_bytes(), &log.trusted_keys) {
                Ok(verified) => verified,
                Err(error) => {
                    self.findings.push(finding(
                        "checkpoint.bad-signature",
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
                stored => self.findings.push(Finding {
                    log_index: size.checked_sub(1),
                    ..finding(
                        "checkpoint.missing-from-database",
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
                }),
            }
            self.pending_checkpoints.push(ExpectedRoot {
                size,
                root: *verified.root_hash(),
                source: RootSource::Outside(outside.source.clone()),
            });
        }
    }

    /// Remembers what `event` owes, and the delivery attempts and escalations
    /// it records.
    fn observe_notifications(&mut self, event: &Event, log_index: u64) {
        for owed in &event.notify {
            if owed.audience == crate::notify::Audience::Reviewers
                && owed.kind == crate::notify::CHANGE_APPROVED_FOR_REVIEW
            {
                self.reviewer_notices
                    .entry(event.case_id.to_string())
                    .or_default()
                    .push(owed.delivery_id.clone());
            }
            self.owed.push(OwedSeen {
                case_id: event.case_id.to_string(),
                event_id: event.event_id.to_string(),
                log_index,
                seq: event.seq,
                recorded_at: event.recorded_at,
                owed: owed.clone(),
            });
        }
        self.observe_evidence(event, log_index);
        match &event.body {
            EventBody::NotificationAttempted(attempt) => {
                let seen = self
                    .deliveries
                    .entry(attempt.delivery_id.clone())
                    .or_default();
                match attempt.outcome {
                    crate::event::DeliveryOutcome::Delivered => {
                        let at = event.occurred_at;
                        seen.delivered_at =
                            Some(seen.delivered_at.map_or(at, |first| first.min(at)));
                    }
                    crate::event::DeliveryOutcome::Dead => seen.dead = true,
                    crate::event::DeliveryOutcome::Failed => {}
                }
            }
            EventBody::EscalationRaised(escalation) => {
                if let Some(delivery) = &escalation.delivery_id {
                    self.escalated_deliveries.insert(delivery.clone());
                }
            }
            _ => {}
        }
    }

    fn observe_evidence(&mut self, event: &Event, log_index: u64) {
        let mut reference = |sha256: Sha256Hash, size: Option<u64>| {
            self.evidence.push(EvidenceRef {
                case_id: event.case_id.to_string(),
                event_id: event.event_id.to_string(),
                seq: event.seq,
                log_index,
                sha256,
                size,
            })
        };
        let link = match &event.body {
            EventBody::EvidenceAttached(evidence) => {
                reference(evidence.sha256, Some(evidence.size));
                evidence.link.as_ref().map(|link| {
                    (
                        link.url.clone(),
                        "verified",
                        format!("captured {}", evidence.sha256),
                    )
                })
            }
            EventBody::EvidenceHeld(held) => {
                reference(held.evidence.sha256, Some(held.evidence.size));
                None
            }
            EventBody::EvidenceJoined(join) => {
                for evidence in &join.evidence {
                    reference(evidence.sha256, Some(evidence.size));
                }
                None
            }
            EventBody::EvidenceUnverified(failure) => {
                Some((failure.url.clone(), "unverified", failure.error.clone()))
            }
            EventBody::EvidenceRechecked(recheck) => {
                if let Some(sha256) = recheck.sha256 {
                    reference(sha256, None);
                }
                Some(if recheck.drifted {
                    (
                        recheck.url.clone(),
                        "drifted",
                        match (&recheck.sha256, &recheck.error) {
                            (Some(now), _) => format!("it serves {now}, not {}", recheck.previous),
                            (None, Some(error)) => format!("it no longer answers: {error}"),
                            (None, None) => "it no longer answers".to_string(),
                        },
                    )
                } else {
                    (recheck.url.clone(), "verified", "unchanged".to_string())
                })
            }
            _ => None,
        };
        if let Some((url, state, detail)) = link {
            self.links.insert(
                (event.case_id.to_string(), url),
                LinkState {
                    state,
                    event_id: event.event_id.to_string(),
                    seq: event.seq,
                    log_index,
                    detail,
                },
            );
        }
    }

    /// Link findings: the latest word on each captured link.
    fn finish_links(&mut self) {
        for ((case_id, url), seen) in &self.links {
            let (code, message) = match seen.state {
                "unverified" => (
                    "evidence.link-unverified",
                    format!(
                        "the link {url} of case {case_id} could not be captured, so nothing proves what it said: {}",
                        seen.detail
                    ),
                ),
                "drifted" => (
                    "evidence.link-drifted",
                    format!(
                        "the link {url} of case {case_id} changed since it was captured: {}",
                        seen.detail
                    ),
                ),
                _ => continue,
            };
            self.findings.push(Finding {
                code,
                severity: Severity::High,
                case_id: Some(case_id.clone()),
                message,
                event_id: Some(seen.event_id.clone()),
                seq: Some(seen.seq),
                log_index: Some(seen.log_index),
            });
        }
    }

    /// Notification findings, once every event has been seen.
    fn finish_notifications(&mut self) {
        for seen in &self.owed {
            let delivery = self.deliveries.get(&seen.owed.delivery_id);
            if delivery.is_some_and(|delivery| delivery.delivered_at.is_some())
                || self.escalated_deliveries.contains(&seen.owed.delivery_id)
            {
                continue;
            }
            let dead = delivery.is_some_and(|delivery| delivery.dead);
            let overdue = self.now.is_some_and(|now| {
                seen.recorded_at
                    .plus_seconds(crate::notify::DELIVERY_GRACE_SECONDS)
                    <= now
            });
            if !dead && !overdue {
                // Still being retried: not wrong yet.
                continue;
            }
            let to = seen
                .owed
                .recipient
                .as_ref()
                .map(|recipient| format!(" ({recipient})"))
                .unwrap_or_default();
            self.findings.push(Finding {
                code: "notify.undelivered",
                severity: Severity::High,
                case_id: Some(seen.case_id.clone()),
                message: format!(
                    "notification {} ({} to {} via {}{to}) owed by event {} was {}",
                    seen.owed.delivery_id,
                    seen.owed.kind,
                    seen.owed.audience,
                    seen.owed.channel,
                    seen.event_id,
                    if dead {
                        "given up on and never escalated"
                    } else {
                        "neither delivered nor escalated within an hour"
                    }
                ),
                event_id: Some(seen.event_id.clone()),
                seq: Some(seen.seq),
                log_index: Some(seen.log_index),
            });
        }
        for execution in &self.automated_executions {
            if execution.reviewer_notices.is_empty() {
                // No route tells reviewers of approved changes: nothing was owed.
                continue;
            }
            let told_before = execution.reviewer_notices.iter().any(|delivery| {
                self.deliveries
                    .get(delivery)
                    .and_then(|seen| seen.delivered_at)
                    .is_some_and(|at| at <= execution.occurred_at)
            });
            if !told_before {
                self.findings.push(Finding {
                    code: "notify.reviewer-not-notified",
                    severity: Severity::Medium,
                    case_id: Some(execution.case_id.clone()),
                    message: format!(
                        "automation executed case {} at {} before any reviewer had been told of the approved change ({} notice(s) owed: {})",
                        execution.case_id,
                        execution.occurred_at,
                        execution.reviewer_notices.len(),
                        execution.reviewer_notices.join(", ")
                    ),
                    event_id: Some(execution.event_id.clone()),
                    seq: Some(execution.seq),
                    log_index: Some(execution.log_index),
                });
            }
        }
    }

    /// Checks one `policy_adopted` event of the policy record and remembers
    /// the policy: the ledger's own actor wrote it, its hash is the hash of
    /// the policy it carries, and it names the policy recorded before it.
    fn check_adoption(
        &mut self,
        event: &Event,
        adopted: &crate::event::PolicyAdopted,
        previous: Option<Sha256Hash>,
        log_index: u64,
    ) -> Vec<Finding> {
        let mut found = Vec::new();
        let finding = |code: &'static str, message: String| Finding {
            code,
            severity: Severity::High,
            case_id: Some(event.case_id.to_string()),
            message,
            event_id: Some(event.event_id.to_string()),
            seq: Some(event.seq),
            log_index: Some(log_index),
        };
        if event.actor.principal.as_str() != crate::model::SYSTEM_PRINCIPAL {
            found.push(finding(
                "policy.record-forged",
                format!(
                    "policy {} was recorded by {}, not by the ledger's own actor `system`",
                    adopted.policy_hash, event.actor.principal
                ),
            ));
        }
        let recomputed = Sha256Hash::of(&crate::canonical::to_canonical_bytes(&adopted.policy));
        if recomputed != adopted.policy_hash {
            found.push(finding(
                "policy.record-mismatch",
                format!(
                    "the policy recorded as {} hashes to {recomputed}: the recorded rules are not the ones cases cite",
                    adopted.policy_hash
                ),
            ));
        }
        if adopted.previous_hash != previous {
            found.push(finding(
                "policy.record-broken",
                format!(
                    "policy {} says it replaced {}, but the policy recorded before it is {}",
                    adopted.policy_hash,
                    adopted
                        .previous_hash
                        .map(|hash| hash.to_hex())
                        .unwrap_or_else(|| "none".to_string()),
                    previous
                        .map(|hash| hash.to_hex())
                        .unwrap_or_else(|| "none".to_string())
                ),
            ));
        }
        self.adopted_policies
            .entry(adopted.policy_hash)
            .or_insert(log_index);
        self.first_adoption.get_or_insert(log_index);
        found
    }

    /// Compares the stored projections of the administration record
    /// (principals, tokens, delegation grants) with the record. Call after
    /// every event has been observed, before [`Auditor::finish`].
    pub fn check_admin_rows(&mut self, rows: &crate::admin::AdminRows) {
        self.admin.check_rows(rows);
    }

    /// Administration findings, once every event has been seen.
    fn finish_admin(&mut self) {
        let admin = std::mem::take(&mut self.admin);
        self.checked.admin_events = admin.events;
        self.checked.delegated_actions = admin.delegated_actions;
        self.findings.extend(admin.finish());
    }

    fn check_roots_at_current_size(&mut self) {
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
                let (code, message) = match expected.source {
                    RootSource::Stored => (
                        "checkpoint.root-mismatch",
                        format!(
                            "the signed checkpoint at size {} has a root that the stored events do not reproduce: history was rewritten after it was signed",
                            expected.size
                        ),
                    ),
                    RootSource::Since => (
                        "since.not-extended",
                        format!(
                            "the log does not extend the saved checkpoint at size {}: the first {} entries changed since it was signed",
                            expected.size, expected.size
                        ),
                    ),
                    RootSource::Outside(source) => (
                        "checkpoint.root-mismatch",
                        format!(
                            "the signed checkpoint at size {} held outside the database in {source} has a root that the stored events do not reproduce: history was rewritten after it was signed",
                            expected.size
                        ),
                    ),
                };
                self.findings.push(Finding {
                    code,
                    severity: Severity::Critical,
                    case_id: None,
                    message,
                    event_id: None,
                    seq: None,
                    log_index: Some(expected.size.saturating_sub(1)),
                });
            }
        }
    }

    /// Coverage findings, once the log's size is known: a log with entries
    /// but no checkpoint, entries after the newest checkpoint, and whether
    /// any checkpoint held outside the database was checked at all.
    fn finish_coverage(&mut self, log_size: u64) {
        if !self.log_checks {
            return;
        }
        self.checked.covered_entries = self.covered.min(log_size);
        if let Some((first, recorded_at)) = self.first_uncovered {
            let uncovered = log_size.saturating_sub(first);
            let grace = self
                .checkpoint_interval_seconds
                .saturating_mul(UNCOVERED_TAIL_INTERVALS);
            // An entry that does not decode has no trustworthy time: it is
            // judged as old (and reported on its own).
            let young = match (recorded_at, self.now) {
                (Some(at), Some(now)) => {
                    now < at.plus_seconds(i64::try_from(grace).unwrap_or(i64::MAX))
                }
                (None, _) => false,
                (Some(_), None) => true,
            };
            let since = recorded_at
                .map(|at| format!("recorded at {at}"))
                .unwrap_or_else(|| "whose time cannot be read".to_string());
            let (code, what) = if self.covered == 0 {
                (
                    "log.no-checkpoint",
                    format!("the log holds {log_size} entries but no signed checkpoint"),
                )
            } else {
                (
                    "log.uncovered-tail",
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
            self.findings.push(Finding {
                code,
                severity,
                case_id: None,
                message: format!("{what}; {judgement}"),
                event_id: None,
                seq: None,
                log_index: Some(first),
            });
        }
        if self.outside_given == 0 && log_size > 0 {
            self.findings.push(Finding {
                code: "checkpoint.none-outside",
                severity: Severity::Info,
                case_id: None,
                message: "no checkpoint held outside the database was checked, so whoever can write to the database could have rewritten or truncated the log together with its stored checkpoints; pass --data DIR (a node's data directory, with its checkpoints file), --checkpoints FILE|DIR or --since-checkpoint FILE".to_string(),
                event_id: None,
                seq: None,
                log_index: None,
            });
        }
    }

    /// Checks one stored event. Rows must come in log-index order.
    pub fn observe_event(&mut self, row: &StoredEvent) {
        let decoded = decode_row(row);
        self.observe_decoded(row, decoded);
    }

    /// Checks one stored event whose independent work ([`decode_row`]) was
    /// done already, possibly on another thread. Rows must come in
    /// log-index order.
    pub fn observe_decoded(&mut self, row: &StoredEvent, decoded: DecodedRow) {
        self.checked.log_entries += 1;
        if row.log_index != self.next_log_index {
            if row.log_index > self.next_log_index {
                self.findings.push(Finding {
                    code: "log.index-gap",
                    severity: Severity::Critical,
                    case_id: None,
                    message: format!(
                        "log entries {}..{} are missing: events were deleted behind the store's back",
                        self.next_log_index, row.log_index
                    ),
                    event_id: None,
                    seq: None,
                    log_index: Some(self.next_log_index),
                });
            } else {
                self.findings.push(Finding {
                    code: "log.index-duplicate",
                    severity: Severity::Critical,
                    case_id: Some(row.case_id.clone()),
                    message: format!("log index {} appears more than once", row.log_index),
                    event_id: None,
                    seq: None,
                    log_index: Some(row.log_index),
                });
            }
        }
        self.next_log_index = self.next_log_index.max(row.log_index + 1);

        // The Merkle leaf is recomputed from the stored bytes, never trusted.
        let leaf = decoded.leaf;
        self.checked.leaves += 1;
        match &row.stored_leaf {
            _ if !self.log_checks => {}
            Some(stored) if stored.as_slice() == leaf.as_slice() => {}
            Some(_) => self.findings.push(Finding {
                code: "log.leaf-mismatch",
                severity: Severity::Critical,
                case_id: Some(row.case_id.clone()),
                message: format!(
                    "the stored Merkle leaf at log index {} does not hash the stored event: the event or the log was altered",
                    row.log_index
                ),
                event_id: None,
                seq: u64::try_from(row.seq).ok(),
                log_index: Some(row.log_index),
            }),
            None => self.findings.push(Finding {
                code: "log.leaf-missing",
                severity: Severity::Critical,
                case_id: Some(row.case_id.clone()),
                message: format!("the event at log index {} has no Merkle leaf", row.log_index),
                event_id: None,
                seq: u64::try_from(row.seq).ok(),
                log_index: Some(row.log_index),
            }),
        }
        self.frontier.push(leaf);
        self.check_roots_at_current_size();
        if self.log_checks && self.first_uncovered.is_none() && row.log_index >= self.covered {
            let recorded_at = decoded.event.as_ref().ok().map(|event| event.recorded_at);
            self.first_uncovered = Some((row.log_index, recorded_at));
        }

        let hash = decoded.hash;
        let event = match decoded.event {
            Ok(event) => event,
            Err(error) => {
                let code = match error {
                    DecodeError::NotCanonical => "event.not-canonical",
                    _ => "event.malformed",
                };
                self.findings.push(Finding {
                    code,
                    severity: Severity::Critical,
                    case_id: Some(row.case_id.clone()),
                    message: format!(
                        "the event at log index {} (case {}, seq {}) was altered: {error}",
                        row.log_index, row.case_id, row.seq
                    ),
                    event_id: None,
                    seq: u64::try_from(row.seq).ok(),
                    log_index: Some(row.log_index),
                });
                // The case's chain is now unverifiable from here; the next
                // event's link will be reported against the stored hash.
                if let Some(trail) = self.cases.get_mut(&row.case_id) {
                    trail.last_seq = u64::try_from(row.seq).unwrap_or(trail.last_seq);
                    trail.last_hash = hash;
                    trail.last_event_id = String::new();
                }
                return;
            }
        };
        self.checked.events += 1;
        let finding = |code: &'static str, severity: Severity, message: String| Finding {
            code,
            severity,
            case_id: Some(event.case_id.to_string()),
            message,
            event_id: Some(event.event_id.to_string()),
            seq: Some(event.seq),
            log_index: Some(row.log_index),
        };

        if row.case_id != event.case_id.as_str() || i64::try_from(event.seq) != Ok(row.seq) {
            self.findings.push(finding(
                "event.index-mismatch",
                Severity::Critical,
                format!(
                    "the row at log index {} claims case {} seq {} but the event inside is case {} seq {}",
                    row.log_index, row.case_id, row.seq, event.case_id, event.seq
                ),
            ));
        }

        self.observe_notifications(&event, row.log_index);

        // A merge is judged with the surviving case as it stood before it
        // (its half of the link comes after this one in the log).
        let merge_partner = match &event.body {
            EventBody::DuplicateMerged(link) => self
                .cases
                .get(link.other_case.as_str())
                .and_then(|other| other.view.clone()),
            _ => None,
        };
        let Some(trail) = self.cases.get_mut(event.case_id.as_str()) else {
            // The first event of a case.
            let mut new_findings = Vec::new();
            if event.seq != 1 || event.prev_hash.is_some() {
                new_findings.push(finding(
                    "chain.missing-start",
                    Severity::Critical,
                    format!(
                        "the first stored event of case {} has seq {}: the events before it are missing",
                        event.case_id, event.seq
                    ),
                ));
            }
            let view = CaseView::open_hashed(&event, hash);
            self.checked.rules += 1;
            for broken in judge_request(&event) {
                new_findings.push(finding(
                    broken.refusal.rule,
                    broken.severity,
                    broken.refusal.message,
                ));
            }
            let policy_record = match &event.body {
                EventBody::PolicyAdopted(adopted) => {
                    new_findings.extend(self.check_adoption(&event, adopted, None, row.log_index));
                    Some(PolicyTrail {
                        last_policy: adopted.policy_hash,
                    })
                }
                _ => None,
            };
            if let EventBody::RequestCreated(request) = &event.body {
                self.requests.push(RequestSeen {
                    case_id: event.case_id.to_string(),
                    event_id: event.event_id.to_string(),
                    log_index: row.log_index,
                    policy_hash: request.rule.policy_hash,
                    rule: request.rule.name.clone(),
                });
            }
            let admin_record = self.admin.opens_record(&event, row.log_index);
            if admin_record {
                self.admin.observe_record_event(&event, row.log_index);
            }
            if let Some(view) = &view {
                self.admin
                    .observe_delegated_action(&event, &view.change, row.log_index);
            }
            let evidence_record = match &event.body {
                EventBody::EvidenceHeld(held) => Some(EvidenceRecordTrail {
                    ticket: held.ticket.to_string(),
                    first_recorded_at: event.recorded_at,
                    first_event: event.event_id.to_string(),
                    first_log_index: row.log_index,
                    released: false,
                }),
                _ => None,
            };
            if view.is_none()
                && policy_record.is_none()
                && evidence_record.is_none()
                && !admin_record
            {
                new_findings.push(finding(
                    "case.no-request",
                    Severity::Critical,
                    format!(
                        "case {} does not start with a request (its first event is {})",
                        event.case_id,
                        event.body.kind_name()
                    ),
                ));
            }
            self.findings.extend(new_findings);
            self.checked.cases += 1;
            self.cases.insert(
                event.case_id.to_string(),
                CaseTrail {
                    admin_record,
                    policy_record,
                    evidence_record,
                    first_execution: None,
                    last_seq: event.seq,
                    last_hash: hash,
                    last_event_id: event.event_id.to_string(),
                    view,
                },
            );
            return;
        };

        self.checked.chain_links += 1;
        if event.seq <= trail.last_seq {
            self.findings.push(finding(
                "chain.out-of-order",
                Severity::Critical,
                format!(
                    "event seq {} of case {} is stored after seq {}: events were reordered",
                    event.seq, event.case_id, trail.last_seq
                ),
            ));
        } else if event.seq != trail.last_seq + 1 {
            self.findings.push(finding(
                "chain.seq-gap",
                Severity::Critical,
                format!(
                    "case {} jumps from seq {} to seq {}: events are missing",
                    event.case_id, trail.last_seq, event.seq
                ),
            ));
        }
        if event.prev_hash != Some(trail.last_hash) {
            self.findings.push(finding(
                "chain.prev-hash-mismatch",
                Severity::Critical,
                format!(
                    "event seq {} of case {} does not link to the event stored before it (expected previous hash {}, event says {})",
                    event.seq,
                    event.case_id,
                    trail.last_hash,
                    event
                        .prev_hash
                        .map(|hash| hash.to_hex())
                        .unwrap_or_else(|| "none".to_string())
                ),
            ));
        }
        if event.actor.kind == crate::PrincipalKind::Vendor
            && event.actor.delegation_grant.is_none()
        {
            self.findings.push(finding(
                "delegation.missing",
                Severity::High,
                format!(
                    "vendor principal {} acted on case {} without a delegation grant",
                    event.actor.principal, event.case_id
                ),
            ));
        }
        let link = match &event.body {
            EventBody::DuplicateMerged(link) => Some((
                link.other_case.to_string(),
                "duplicate_merged",
                "duplicate_linked",
            )),
            EventBody::DuplicateLinked(link) => Some((
                link.other_case.to_string(),
                "duplicate_linked",
                "duplicate_merged",
            )),
            EventBody::RevocationOpened(link) => Some((
                link.other_case.to_string(),
                "revocation_opened",
                "opened_by_review",
            )),
            EventBody::OpenedByReview(link) => Some((
                link.other_case.to_string(),
                "opened_by_review",
                "revocation_opened",
            )),
            EventBody::EvidenceJoined(join) => Some((
                join.record.to_string(),
                "evidence_joined",
                "evidence_released",
            )),
            _ => None,
        };
        if let Some((other_case, kind, partner)) = link {
            self.case_links.push(LinkSeen {
                case_id: event.case_id.to_string(),
                other_case,
                kind,
                partner,
                event_id: event.event_id.to_string(),
                log_index: row.log_index,
            });
        }
        if trail.admin_record {
            trail.last_seq = event.seq;
            trail.last_hash = hash;
            trail.last_event_id = event.event_id.to_string();
            self.admin.observe_record_event(&event, row.log_index);
            return;
        }
        if let Some(view) = &trail.view {
            self.admin
                .observe_delegated_action(&event, &view.change, row.log_index);
        }
        if let Some(record) = &mut trail.evidence_record {
            trail.last_seq = event.seq;
            trail.last_hash = hash;
            trail.last_event_id = event.event_id.to_string();
            match &event.body {
                EventBody::EvidenceHeld(_) => {}
                EventBody::EvidenceReleased(link) => {
                    record.released = true;
                    self.case_links.push(LinkSeen {
                        case_id: event.case_id.to_string(),
                        other_case: link.other_case.to_string(),
                        kind: "evidence_released",
                        partner: "evidence_joined",
                        event_id: event.event_id.to_string(),
                        log_index: row.log_index,
                    });
                }
                _ => self.findings.push(finding(
                    "evidence.record-misplaced",
                    Severity::High,
                    format!(
                        "the evidence record {} holds a {} event; it may hold only held evidence and its release",
                        event.case_id,
                        event.body.kind_name()
                    ),
                )),
            }
            return;
        }
        if let Some(policy) = &mut trail.policy_record {
            let previous = policy.last_policy;
            let adopted = match &event.body {
                EventBody::PolicyAdopted(adopted) => {
                    policy.last_policy = adopted.policy_hash;
                    Some(adopted.clone())
                }
                _ => None,
            };
            trail.last_seq = event.seq;
            trail.last_hash = hash;
            trail.last_event_id = event.event_id.to_string();
            self.checked.rules += 1;
            let found = match &adopted {
                Some(adopted) => self.check_adoption(&event, adopted, Some(previous), row.log_index),
                None => vec![finding(
                    "policy.record-misplaced",
                    Severity::High,
                    format!(
                        "the policy record {} holds a {} event; it may hold only policy_adopted events",
                        event.case_id,
                        event.body.kind_name()
                    ),
                )],
            };
            self.findings.extend(found);
            return;
        }
        if let (Some(view), EventBody::ExecutionCompleted(_)) = (&trail.view, &event.body) {
            // Break-glass executes before anyone can be told; it has its own
            // post-hoc review.
            if event.actor.kind == crate::PrincipalKind::Automation
                && view.break_glass_deadline.is_none()
            {
                self.automated_executions.push(AutomatedExecution {
                    case_id: event.case_id.to_string(),
                    event_id: event.event_id.to_string(),
                    log_index: row.log_index,
                    seq: event.seq,
                    occurred_at: event.occurred_at,
                    reviewer_notices: self
                        .reviewer_notices
                        .get(event.case_id.as_str())
                        .cloned()
                        .unwrap_or_default(),
                });
            }
        }
        if let Some(view) = &mut trail.view {
            self.checked.rules += 1;
            for (refusal, severity) in violations_with(view, &event, merge_partner.as_ref()) {
                self.findings.push(Finding {
                    code: refusal.rule,
                    severity,
                    case_id: Some(event.case_id.to_string()),
                    message: refusal.message,
                    event_id: Some(event.event_id.to_string()),
                    seq: Some(event.seq),
                    log_index: Some(row.log_index),
                });
            }
            view.apply_hashed(&event, hash);
            if trail.first_execution.is_none()
                && matches!(event.body, EventBody::ExecutionCompleted(_))
            {
                trail.first_execution = Some((event.seq, row.log_index));
            }
        }
        trail.last_seq = event.seq;
        trail.last_hash = hash;
        trail.last_event_id = event.event_id.to_string();
    }

    /// Compares the stored case projections with the rebuilt cases and
    /// returns the report.
    pub fn finish(mut self, heads: impl IntoIterator<Item = StoredCaseHead>) -> Report {
        let log_size = self.frontier.size();
        for expected in std::mem::take(&mut self.pending_checkpoints) {
            let (code, message) = match expected.source {
                RootSource::Stored => (
                    "checkpoint.beyond-log",
                    format!(
                        "a signed checkpoint commits to {} entries but only {log_size} are stored: the tail of the log was truncated",
                        expected.size
                    ),
                ),
                RootSource::Since => (
                    "since.beyond-log",
                    format!(
                        "the saved checkpoint commits to {} entries but only {log_size} are stored: the log was truncated or rewritten",
                        expected.size
                    ),
                ),
                RootSource::Outside(source) => (
                    "checkpoint.beyond-log",
                    format!(
                        "a signed checkpoint held outside the database in {source} commits to {} entries but only {log_size} are stored: the tail of the log was truncated",
                        expected.size
                    ),
                ),
            };
            self.findings.push(Finding {
                code,
                severity: Severity::Critical,
                case_id: None,
                message,
                event_id: None,
                seq: None,
                log_index: Some(log_size),
            });
        }
        self.finish_coverage(log_size);
        // A link writes one event in each case; the trail reads as one only
        // when both halves of every link are there. The halves are indexed
        // by their case, so pairing is linear in the number of links.
        let mut halves_by_case: HashMap<&str, Vec<&LinkSeen>> = HashMap::new();
        for link in &self.case_links {
            halves_by_case
                .entry(link.case_id.as_str())
                .or_default()
                .push(link);
        }
        for link in &self.case_links {
            // A case holds a handful of links; the scan of its own is short.
            let matched = halves_by_case
                .get(link.other_case.as_str())
                .is_some_and(|halves| {
                    halves
                        .iter()
                        .any(|other| other.other_case == link.case_id && other.kind == link.partner)
                });
            if !matched {
                let code = if link.kind.starts_with("duplicate") {
                    "merge.unmatched-link"
                } else if link.kind.starts_with("evidence") {
                    "evidence.unmatched-link"
                } else {
                    "revocation.unmatched-link"
                };
                self.findings.push(Finding {
                    code,
                    severity: Severity::Critical,
                    case_id: Some(link.case_id.clone()),
                    message: format!(
                        "{} {} points to {}, which holds no {} pointing back: half of the link was removed or forged",
                        link.case_id, link.kind, link.other_case, link.partner
                    ),
                    event_id: Some(link.event_id.clone()),
                    seq: None,
                    log_index: Some(link.log_index),
                });
            }
        }
        self.checked.case_links = self.case_links.len() as u64;
        self.finish_admin();
        self.finish_notifications();
        self.finish_links();
        // Once the log records policies, every case must cite one recorded
        // before it was opened: a policy that decided cases without being
        // recorded is a policy change nobody can audit.
        if let Some(first_adoption) = self.first_adoption {
            for request in &self.requests {
                let recorded_before = self
                    .adopted_policies
                    .get(&request.policy_hash)
                    .is_some_and(|adopted_at| *adopted_at < request.log_index);
                if request.log_index > first_adoption && !recorded_before {
                    self.findings.push(Finding {
                        code: "policy.unrecorded",
                        severity: Severity::High,
                        case_id: Some(request.case_id.clone()),
                        message: format!(
                            "case {} was decided by rule `{}` of policy {}, which the policy record never adopted before the case was opened",
                            request.case_id, request.rule, request.policy_hash
                        ),
                        event_id: Some(request.event_id.clone()),
                        seq: Some(1),
                        log_index: Some(request.log_index),
                    });
                }
            }
        }
        if self.stored_leaves > log_size {
            self.findings.push(Finding {
                code: "log.leaf-without-event",
                severity: Severity::Critical,
                case_id: None,
                message: format!(
                    "the log holds {} leaves but only {log_size} events: events were removed behind the store's back",
                    self.stored_leaves
                ),
                event_id: None,
                seq: None,
                log_index: Some(log_size),
            });
        }
        let mut heads_by_case: BTreeMap<String, StoredCaseHead> = heads
            .into_iter()
            .map(|head| (head.case_id.clone(), head))
            .collect();
        let mut case_ids: Vec<&String> = self.cases.keys().collect();
        case_ids.sort();
        for case_id in case_ids {
            let trail = &self.cases[case_id];
            if trail.policy_record.is_some() || trail.admin_record {
                // The policy record has no case row; its tail is covered by
                // the log (index gaps, leaves, signed checkpoints).
                continue;
            }
            if let Some(record) = &trail.evidence_record {
                // No case row either; held evidence must find its case.
                let waited_too_long = self.now.is_some_and(|now| {
                    record
                        .first_recorded_at
                        .plus_seconds(EVIDENCE_GRACE_SECONDS)
                        <= now
                });
                if !record.released && waited_too_long {
                    self.findings.push(Finding {
                        code: "evidence.unattached",
                        severity: Severity::Medium,
                        case_id: Some(case_id.clone()),
                        message: format!(
                            "evidence held for {} since {} never joined a case: no case carries that reference",
                            record.ticket, record.first_recorded_at
                        ),
                        event_id: Some(record.first_event.clone()),
                        seq: Some(1),
                        log_index: Some(record.first_log_index),
                    });
                }
                continue;
            }
            let Some(head) = heads_by_case.remove(case_id) else {
                self.findings.push(Finding {
                    code: "case.missing-head",
                    severity: Severity::High,
                    case_id: Some(case_id.clone()),
                    message: format!("case {case_id} has events but no case record"),
                    event_id: None,
                    seq: None,
                    log_index: None,
                });
                continue;
            };
            if i64::try_from(trail.last_seq) != Ok(head.head_seq)
                || head.head_hash != trail.last_hash.to_hex()
            {
                self.findings.push(Finding {
                    code: "chain.head-mismatch",
                    severity: Severity::Critical,
                    case_id: Some(case_id.clone()),
                    message: format!(
                        "case {case_id} was last written at seq {} with hash {}, but its stored events end at seq {} with hash {}: the latest events were altered or deleted",
                        head.head_seq,
                        head.head_hash,
                        trail.last_seq,
                        trail.last_hash
                    ),
                    event_id: (!trail.last_event_id.is_empty()).then(|| trail.last_event_id.clone()),
                    seq: Some(trail.last_seq),
                    log_index: None,
                });
            }
            if let (Some(view), Some(now)) = (&trail.view, self.now) {
                if let Some(deadline) = view.break_glass_deadline {
                    if view.reviews.is_empty() && deadline <= now {
                        let escalated = view
                            .escalations
                            .iter()
                            .any(|reason| reason == crate::lifecycle::BREAK_GLASS_REVIEW_OVERDUE);
                        self.findings.push(Finding {
                            code: crate::lifecycle::BREAK_GLASS_REVIEW_OVERDUE,
                            severity: Severity::High,
                            case_id: Some(case_id.clone()),
                            message: format!(
                                "case {case_id} was executed under break-glass and its post-hoc review was due {deadline}; it has not been reviewed ({})",
                                if escalated { "escalated by the ledger" } else { "and no escalation is recorded" }
                            ),
                            event_id: None,
                            seq: None,
                            log_index: None,
                        });
                    }
                }
            }
            if let (Some(view), Some(now)) = (&trail.view, self.now) {
                if let Some(due) = view.review_due {
                    if view.reviews.is_empty() && due <= now {
                        self.findings.push(Finding {
                            code: crate::lifecycle::REVIEW_OVERDUE,
                            severity: Severity::Medium,
                            case_id: Some(case_id.clone()),
                            message: format!(
                                "case {case_id} was executed and its review was due {due}; it has not been reviewed"
                            ),
                            event_id: None,
                            seq: None,
                            log_index: None,
                        });
                    }
                }
                if let Some(expires_at) = view.expires_at {
                    let grace_end =
                        expires_at.plus_seconds(crate::lifecycle::REVOCATION_GRACE_SECONDS);
                    if !view.revoked && grace_end <= now {
                        self.findings.push(Finding {
                            code: "expiry.revocation-overdue",
                            severity: Severity::High,
                            case_id: Some(case_id.clone()),
                            message: format!(
                                "the time-bound access of case {case_id} ended at {expires_at} and no revocation is recorded{}",
                                if view.revocation_due { " (the ledger recorded it as due)" } else { "" }
                            ),
                            event_id: None,
                            seq: None,
                            log_index: None,
                        });
                    }
                }
            }
            if let Some(view) = &trail.view {
                let execution_finding = |code: &'static str, message: String| Finding {
                    code,
                    severity: Severity::Critical,
                    case_id: Some(case_id.clone()),
                    message,
                    event_id: view.execution_event.as_ref().map(ToString::to_string),
                    seq: trail.first_execution.map(|(seq, _)| seq),
                    log_index: trail.first_execution.map(|(_, index)| index),
                };
                // Judged from the whole trail, not the final state: a later
                // event (a review refused at write time, say) must not hide
                // an execution whose approvals never came.
                if view.awaiting_approval || view.state == crate::CaseState::ExecutedPendingApproval
                {
                    self.findings.push(execution_finding(
                        "lifecycle.execution-without-approval",
                        format!(
                            "case {case_id} was executed without the {} approval(s) it needed, and none has been recorded since",
                            view.approvals_required
                        ),
                    ));
                }
                if view.approved_after_execution {
                    self.findings.push(execution_finding(
                        "lifecycle.approved-after-execution",
                        format!(
                            "case {case_id} was executed at {} and its approvals were given only afterwards",
                            view.executed_at.map(|at| at.to_string()).unwrap_or_default()
                        ),
                    ));
                }
                for approval in &view.approvals {
                    if approval.attested
                        && !approval.confirmed
                        && !view.rule.allow_attested_approvals
                    {
                        self.findings.push(Finding {
                            code: "approval.unconfirmed-attestation",
                            severity: Severity::Medium,
                            case_id: Some(case_id.clone()),
                            message: format!(
                                "{} recorded a chat approval for {} on case {} that {} never confirmed; it does not count",
                                approval.by.principal, approval.approver, case_id, approval.approver
                            ),
                            event_id: Some(approval.by.event_id.to_string()),
                            seq: Some(approval.by.seq),
                            log_index: None,
                        });
                    }
                }
            }
            if let Some(view) = &trail.view {
                if head.state != view.state.as_str() {
                    self.findings.push(Finding {
                        code: "case.projection-mismatch",
                        severity: Severity::Medium,
                        case_id: Some(case_id.clone()),
                        message: format!(
                            "case {case_id} is stored as {} but its events rebuild to {}",
                            head.state, view.state
                        ),
                        event_id: None,
                        seq: None,
                        log_index: None,
                    });
                }
            }
        }
        for (case_id, head) in heads_by_case {
            self.findings.push(Finding {
                code: "case.events-missing",
                severity: Severity::Critical,
                case_id: Some(case_id.clone()),
                message: format!(
                    "case {case_id} was written up to seq {} but none of its events are stored",
                    head.head_seq
                ),
                event_id: None,
                seq: None,
                log_index: None,
            });
        }
        self.findings.sort_by(|left, right| {
            right
                .severity
                .cmp(&left.severity)
                .then_with(|| left.log_index.cmp(&right.log_index))
        });
        Report {
            ok: nothing_wrong(&self.findings),
            checked: self.checked,
            findings: self.findings,
            evidence: self.evidence,
        }
    }
}
