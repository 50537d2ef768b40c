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
//! Rows are fed one at a time in log order ([`Auditor::observe_event`]); memory
//! is proportional to the number of cases, not events.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::case::CaseView;
use crate::event::{DecodeError, Event};
use crate::id::Sha256Hash;
use crate::lifecycle::{violations, Severity};

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
}

/// The outcome of an audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// True only when nothing was found.
    pub ok: bool,
    /// What was checked.
    pub checked: Checked,
    /// What was found, most severe first.
    pub findings: Vec<Finding>,
}

/// Streams stored rows through every check.
#[derive(Default)]
pub struct Auditor {
    next_log_index: u64,
    cases: HashMap<String, CaseTrail>,
    findings: Vec<Finding>,
    checked: Checked,
}

struct CaseTrail {
    last_seq: u64,
    last_hash: Sha256Hash,
    last_event_id: String,
    view: Option<CaseView>,
}

impl Auditor {
    /// A fresh auditor.
    pub fn new() -> Auditor {
        Auditor::default()
    }

    /// Checks one stored event. Rows must come in log-index order.
    pub fn observe_event(&mut self, row: &StoredEvent) {
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

        let event = match Event::decode(&row.bytes) {
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
                    trail.last_hash = Sha256Hash::of(&row.bytes);
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

        if row.case_id != event.case_id.as_str() || row.seq != event.seq as i64 {
            self.findings.push(finding(
                "event.index-mismatch",
                Severity::Critical,
                format!(
                    "the row at log index {} claims case {} seq {} but the event inside is case {} seq {}",
                    row.log_index, row.case_id, row.seq, event.case_id, event.seq
                ),
            ));
        }

        let hash = Sha256Hash::of(&row.bytes);
        let key = event.case_id.to_string();
        let Some(trail) = self.cases.get_mut(&key) else {
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
            let view = CaseView::open(&event);
            if view.is_none() {
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
                key,
                CaseTrail {
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
        if let Some(view) = &mut trail.view {
            self.checked.rules += 1;
            for (refusal, severity) in violations(view, &event) {
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
            view.apply(&event);
        }
        trail.last_seq = event.seq;
        trail.last_hash = hash;
        trail.last_event_id = event.event_id.to_string();
    }

    /// Compares the stored case projections with the rebuilt cases and
    /// returns the report.
    pub fn finish(mut self, heads: impl IntoIterator<Item = StoredCaseHead>) -> Report {
        let mut heads_by_case: BTreeMap<String, StoredCaseHead> = heads
            .into_iter()
            .map(|head| (head.case_id.clone(), head))
            .collect();
        let mut case_ids: Vec<&String> = self.cases.keys().collect();
        case_ids.sort();
        for case_id in case_ids {
            let trail = &self.cases[case_id];
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
            if head.head_seq != trail.last_seq as i64 || head.head_hash != trail.last_hash.to_hex()
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
            ok: self.findings.is_empty(),
            checked: self.checked,
            findings: self.findings,
        }
    }
}
