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
//! - the cases: one trail per case (its head, its rebuilt view); the
//!   continuous monitor lets go of idle ones between scans (`retire.rs`);
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

use std::collections::HashMap;

use serde::Serialize;

use crate::case::CaseView;
use crate::code::Code;
use crate::event::{DecodeError, Event, EventBody};
use crate::id::Sha256Hash;
use custody_log::{leaf_hash, Hash, VerifierKey};

mod admin;
mod chain;
mod delivery;
mod evidence;
mod finding;
mod links;
mod log;
mod made;
pub mod nodes;
mod observed;
mod policy;
mod projections;
mod retire;
mod rules;
mod stats;
mod watch;
pub mod witness;

use chain::CaseTrail;
pub use evidence::EVIDENCE_GRACE_SECONDS;
pub use finding::Finding;
pub use log::{DEFAULT_CHECKPOINT_INTERVAL_SECONDS, UNCOVERED_TAIL_INTERVALS};
pub use projections::{StoredCaseRow, StoredDeploymentRow, StoredEvidenceRecordRow};
pub use retire::{RetiredRow, Retirement};
pub use stats::{
    Bucket, Histogram, Stats, NOTIFICATION_LATENCY_BOUNDS_MS, REQUEST_TO_REVIEW_BOUNDS_SECONDS,
};
pub use watch::{Watch, WatchOptions, IDLE_AFTER_ENTRIES};

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
    /// With a witness policy (`verify --witness`): the size of the newest
    /// checkpoint enough of the witnesses cosigned, and their keys
    /// ([`witness::WitnessOutcome::newest`]). The entries after it are
    /// `witness.uncovered-tail`, judged by their age like
    /// `log.uncovered-tail`.
    pub witnessed: Option<(u64, Vec<String>)>,
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
    /// The stored drill flag (what listings and exports leave out).
    pub drill: bool,
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
    /// Counts for the readiness report's charts: cases by state, time from
    /// request to review, notification latency.
    pub stats: Stats,
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
        finding::sort(&mut self.findings);
        self.ok = finding::nothing_wrong(&self.findings);
    }
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

    /// The event, when the row decoded into a canonical one.
    pub fn event(&self) -> Option<&Event> {
        self.event.as_ref().ok()
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
#[derive(Clone, Default)]
pub struct Auditor {
    findings: Vec<Finding>,
    checked: Checked,
    /// The time of the audit, for deadline checks.
    now: Option<crate::Timestamp>,
    /// The log, its leaves and its checkpoints.
    log: log::LogState,
    /// One trail per case.
    cases: HashMap<String, CaseTrail>,
    /// Halves of links between cases seen (merges, revocations opened by
    /// reviews, evidence joined).
    links: links::Links,
    /// Notifications owed and what became of them.
    deliveries: delivery::Deliveries,
    /// The policy record and the policies requests cite.
    policies: policy::Policies,
    /// Evidence referenced and links captured.
    evidence: evidence::EvidenceSeen,
    /// The administration record and the actions taken under delegation grants.
    admin: admin::AdminAudit,
    /// Each (source, external ID) seen, with the case and sequence number of
    /// the last event carrying it: one write's events carry it in a row,
    /// anything else is a record recorded twice. Grows with connector events.
    origins: HashMap<(String, String), (String, u64)>,
    /// Counts and histograms for the readiness report.
    stats: Stats,
    /// The cases whose trails were let go of (`retire.rs`).
    retired: retire::Retired,
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
            now: log.now,
            ..Auditor::default()
        };
        auditor.log = log::LogState::new(&log, &mut auditor.checked, &mut auditor.findings);
        auditor
    }

    /// Compares the stored projections of the administration record
    /// (principals, tokens, delegation grants) with the record. Call after
    /// every event has been observed, before [`Auditor::finish`].
    pub fn check_admin_rows(&mut self, rows: &crate::admin::AdminRows) {
        self.admin.check_rows(rows);
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
        self.log
            .observe_row(row, &decoded, &mut self.checked, &mut self.findings);

        let hash = decoded.hash;
        let event = match decoded.event {
            Ok(event) => event,
            Err(error) => {
                let code = match error {
                    DecodeError::NotCanonical => Code::EventNotCanonical,
                    _ => Code::EventMalformed,
                };
                self.findings.push(
                    Finding::new(
                        code,
                        format!(
                            "the event at log index {} (case {}, seq {}) was altered: {error}",
                            row.log_index, row.case_id, row.seq
                        ),
                    )
                    .case(row.case_id.clone())
                    .seq(u64::try_from(row.seq).ok())
                    .log_index(row.log_index),
                );
                // The case's chain is now unverifiable from here; the next
                // event's link will be reported against the stored hash.
                if let Some(trail) = self.cases.get_mut(&row.case_id) {
                    trail.last_seq = u64::try_from(row.seq).unwrap_or(trail.last_seq);
                    trail.last_hash = hash;
                    trail.last_event_id = String::new();
                    trail.last_log_index = row.log_index;
                    trail.undecodable = true;
                }
                return;
            }
        };
        self.checked.events += 1;
        let log_index = row.log_index;

        if row.case_id != event.case_id.as_str() || i64::try_from(event.seq) != Ok(row.seq) {
            self.findings.push(
                Finding::new(
                    Code::EventIndexMismatch,
                    format!(
                        "the row at log index {} claims case {} seq {} but the event inside is case {} seq {}",
                        row.log_index, row.case_id, row.seq, event.case_id, event.seq
                    ),
                )
                .at_event(&event, log_index),
            );
        }

        self.deliveries.observe(&event, log_index);
        self.stats.observe(&event);
        self.evidence.observe(&event, log_index);
        self.observe_origin(&event, log_index);

        if self.cases.contains_key(event.case_id.as_str()) {
            self.observe_next(&event, hash, log_index);
        } else {
            self.observe_first(&event, hash, log_index);
        }
        if let Some(trail) = self.cases.get_mut(event.case_id.as_str()) {
            trail.last_log_index = log_index;
        }
    }

    /// (source, external ID) is unique to one write: the events of that
    /// write follow each other in one case; any other repeat is a finding.
    fn observe_origin(&mut self, event: &Event, log_index: u64) {
        let (Some(source), Some(external_id)) = (&event.source, &event.external_id) else {
            return;
        };
        let key = (source.clone(), external_id.clone());
        let here = (event.case_id.to_string(), event.seq);
        if let Some((case, seq)) = self.origins.get(&key) {
            if !(case == &here.0 && seq.checked_add(1) == Some(here.1)) {
                self.findings.push(
                    Finding::new(
                        Code::EventExternalIdRepeated,
                        format!(
                            "record `{}` of `{}` was recorded again: first in case {case} (seq {seq}), again in case {} (seq {})",
                            crate::text::escape(external_id),
                            crate::text::escape(source),
                            here.0,
                            here.1
                        ),
                    )
                    .at_event(event, log_index),
                );
            }
        }
        self.origins.insert(key, here);
    }

    /// The first event of a case: it opens a request's case, or one of the
    /// records (policy, administration, evidence held for a reference).
    fn observe_first(&mut self, event: &Event, hash: Sha256Hash, log_index: u64) {
        let mut new_findings = Vec::new();
        new_findings.extend(CaseTrail::check_start(event, log_index));
        let view = CaseView::open_hashed(event, hash);
        self.checked.rules += 1;
        new_findings.extend(rules::at_request(event, log_index));
        let policy_record = match &event.body {
            EventBody::PolicyAdopted(adopted) => {
                new_findings.extend(
                    self.policies
                        .check_adoption(event, adopted, None, log_index),
                );
                Some(policy::PolicyTrail {
                    last_policy: adopted.policy_hash,
                })
            }
            _ => None,
        };
        if let EventBody::RequestCreated(request) = &event.body {
            self.policies
                .observe_request(event, log_index, &request.rule);
        }
        let admin_record = self.admin.opens_record(event, log_index);
        if admin_record {
            self.admin.observe_record_event(event, log_index);
        }
        if let Some(view) = &view {
            self.admin
                .observe_delegated_action(event, &view.change, log_index);
        }
        let evidence_record = evidence::EvidenceRecordTrail::opened_by(event, log_index);
        if view.is_none() && policy_record.is_none() && evidence_record.is_none() && !admin_record {
            new_findings.push(
                Finding::new(
                    Code::CaseNoRequest,
                    format!(
                        "case {} does not start with a request (its first event is {})",
                        event.case_id,
                        event.body.kind_name()
                    ),
                )
                .at_event(event, log_index),
            );
        }
        self.findings.extend(new_findings);
        self.checked.cases += 1;
        let mut trail = CaseTrail::opened(event, hash, log_index, view);
        trail.admin_record = admin_record;
        trail.policy_record = policy_record;
        trail.evidence_record = evidence_record;
        self.cases.insert(event.case_id.to_string(), trail);
    }

    /// An event of a case already seen: its link in the chain, then what
    /// the kind of case it belongs to checks.
    fn observe_next(&mut self, event: &Event, hash: Sha256Hash, log_index: u64) {
        // A merge is judged with the surviving case as it stood before it
        // (its half of the link comes after this one in the log).
        let merge_partner = match &event.body {
            EventBody::DuplicateMerged(link) => self
                .cases
                .get(link.other_case.as_str())
                .and_then(|other| other.view.as_deref().cloned()),
            _ => None,
        };
        let Some(trail) = self.cases.get_mut(event.case_id.as_str()) else {
            return;
        };
        self.checked.chain_links += 1;
        self.findings.extend(trail.check_link(event, log_index));
        self.findings
            .extend(rules::delegation_missing(event, log_index));
        self.links.observe(event, log_index);
        if trail.admin_record {
            trail.advance(event, hash);
            self.admin.observe_record_event(event, log_index);
            return;
        }
        if let Some(view) = &trail.view {
            self.admin
                .observe_delegated_action(event, &view.change, log_index);
        }
        if trail.evidence_record.is_some() {
            trail.advance(event, hash);
            match &event.body {
                EventBody::EvidenceHeld(_) => {}
                EventBody::EvidenceReleased(link) => {
                    if let Some(record) = &mut trail.evidence_record {
                        record.released = true;
                        record.released_to = Some(link.other_case.to_string());
                    }
                    self.links
                        .observe_release(event, log_index, link.other_case.to_string());
                }
                _ => self.findings.push(
                    Finding::new(
                        Code::EvidenceRecordMisplaced,
                        format!(
                            "the evidence record {} holds a {} event; it may hold only held evidence and its release",
                            event.case_id,
                            event.body.kind_name()
                        ),
                    )
                    .at_event(event, log_index),
                ),
            }
            return;
        }
        if let Some(policy) = &mut trail.policy_record {
            let previous = policy.last_policy;
            let adopted = match &event.body {
                EventBody::PolicyAdopted(adopted) => {
                    policy.last_policy = adopted.policy_hash;
                    Some(adopted)
                }
                _ => None,
            };
            trail.advance(event, hash);
            self.checked.rules += 1;
            let found = match adopted {
                Some(adopted) => {
                    self.policies
                        .check_adoption(event, adopted, Some(previous), log_index)
                }
                None => vec![Finding::new(
                    Code::PolicyRecordMisplaced,
                    format!(
                        "the policy record {} holds a {} event; it may hold only policy_adopted events",
                        event.case_id,
                        event.body.kind_name()
                    ),
                )
                .at_event(event, log_index)],
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
                self.deliveries
                    .observe_automated_execution(event, log_index);
            }
        }
        if let Some(view) = &trail.view {
            self.checked.rules += 1;
            self.findings.extend(rules::at_event(
                view,
                event,
                merge_partner.as_ref(),
                log_index,
            ));
        }
        trail.follow(event, hash, log_index);
    }

    /// Returns the report of events that come without stored projections
    /// (an auditor's bundle): what only the end of each trail tells is
    /// judged as [`Auditor::finish`] does, and there are no case rows to
    /// compare the rebuilt cases with.
    pub fn finish_without_projections(self) -> Report {
        let heads: Vec<StoredCaseHead> = self
            .cases
            .iter()
            .filter(|(_, trail)| {
                trail.policy_record.is_none()
                    && !trail.admin_record
                    && trail.evidence_record.is_none()
            })
            .map(|(case_id, trail)| StoredCaseHead {
                case_id: case_id.clone(),
                head_seq: i64::try_from(trail.last_seq).unwrap_or(i64::MAX),
                head_hash: trail.last_hash.to_hex(),
                state: trail
                    .view
                    .as_ref()
                    .map_or_else(String::new, |view| view.state.as_str().to_string()),
                drill: trail.view.as_ref().is_some_and(|view| view.drill),
            })
            .collect();
        self.finish(heads)
    }

    /// Compares the stored case projections with the rebuilt cases and
    /// returns the report.
    pub fn finish(mut self, heads: impl IntoIterator<Item = StoredCaseHead>) -> Report {
        let parts = Conclusion {
            log: std::mem::take(&mut self.log),
            admin: std::mem::take(&mut self.admin),
            checked: std::mem::take(&mut self.checked),
            findings: std::mem::take(&mut self.findings),
            stats: std::mem::take(&mut self.stats),
            references: std::mem::take(&mut self.evidence.references),
        };
        self.conclude(parts, self.now, heads)
    }

    /// The report of the rows observed so far, as [`Auditor::finish`] makes
    /// it, as of `now`, without consuming the auditor: only what the
    /// end-of-log checks change is copied (the log's position, the
    /// administration record, the counts and findings so far), never the
    /// per-case trails, the per-event records or the kept tree, so a long
    /// incremental audit ([`Watch`]) does not hold its state twice.
    pub fn report_so_far(
        &self,
        now: Option<crate::Timestamp>,
        heads: impl IntoIterator<Item = StoredCaseHead>,
    ) -> Report {
        self.conclude(self.conclusion_copy(), now, heads)
    }

    /// A copy of what concluding a report changes.
    fn conclusion_copy(&self) -> Conclusion {
        Conclusion {
            log: self.log.without_tree(),
            admin: self.admin.clone(),
            checked: self.checked.clone(),
            findings: self.findings.clone(),
            stats: self.stats.clone(),
            references: self.evidence.references.clone(),
        }
    }

    /// What only the end of the log tells, judged on `parts` (taken from
    /// the auditor or copied from it) and the auditor's other state, read
    /// only.
    fn conclude(
        &self,
        parts: Conclusion,
        now: Option<crate::Timestamp>,
        heads: impl IntoIterator<Item = StoredCaseHead>,
    ) -> Report {
        let Conclusion {
            mut log,
            admin,
            mut checked,
            mut findings,
            mut stats,
            references,
        } = parts;
        log.finish(now, &mut checked, &mut findings);
        // A link writes one event in each case; the trail reads as one only
        // when both halves of every link are there.
        self.links.finish(&mut findings);
        checked.case_links = self.links.len() as u64;
        checked.admin_events = admin.events;
        checked.delegated_actions = admin.delegated_actions;
        findings.extend(admin.finish());
        self.deliveries.finish(now, &mut findings);
        self.evidence.finish_links(&mut findings);
        self.policies.finish(&mut findings);
        log.finish_leaves(&mut findings);
        chain::finish_cases(&self.cases, heads, now, &mut findings);
        findings.extend(self.retired.findings.iter().cloned());
        for view in self
            .cases
            .values()
            .filter_map(|trail| trail.view.as_deref())
        {
            stats.count_case(view);
        }
        finding::sort(&mut findings);
        Report {
            ok: finding::nothing_wrong(&findings),
            checked,
            findings,
            stats,
            evidence: references,
        }
    }
}

/// The parts of an [`Auditor`] that concluding a report changes.
struct Conclusion {
    log: log::LogState,
    admin: admin::AdminAudit,
    checked: Checked,
    findings: Vec<Finding>,
    stats: Stats,
    references: Vec<EvidenceRef>,
}
