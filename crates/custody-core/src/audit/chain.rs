//! Each case's chain: gapless sequence numbers, every event linked to the
//! hash of the one before it, and the stored case rows (head and state)
//! against the trail the events rebuild.

use std::collections::{BTreeMap, HashMap};

use super::evidence::EvidenceRecordTrail;
use super::finding::Finding;
use super::policy::PolicyTrail;
use super::StoredCaseHead;
use crate::case::CaseView;
use crate::code::Code;
use crate::event::{Event, EventBody};
use crate::id::Sha256Hash;
use crate::time::Timestamp;

/// What the audit keeps of one case while reading it.
#[derive(Clone)]
pub(super) struct CaseTrail {
    /// The deployment's administration record (see [`crate::admin`]).
    pub(super) admin_record: bool,
    /// The deployment's policy record (its events are `policy_adopted`, by
    /// `system`), not a request's case.
    pub(super) policy_record: Option<PolicyTrail>,
    /// An external reference's evidence record (`evidence_held` events until
    /// `evidence_released`), not a request's case.
    pub(super) evidence_record: Option<EvidenceRecordTrail>,
    pub(super) last_seq: u64,
    pub(super) last_hash: Sha256Hash,
    pub(super) last_event_id: String,
    /// Boxed: a view is about a kilobyte inline, and the map of trails
    /// would otherwise hold that much per slot, used or not.
    pub(super) view: Option<Box<CaseView>>,
    /// Sequence number and log index of the case's first completed execution,
    /// so end-of-case findings about it can point at it.
    pub(super) first_execution: Option<(u64, u64)>,
    /// Event ID, sequence number and log index of the observation that
    /// opened the case, when one did (an unsanctioned change).
    pub(super) opening_observation: Option<(String, u64, u64)>,
    /// The log index of the case's latest stored row.
    pub(super) last_log_index: u64,
    /// A stored row of the case did not decode: its trail cannot be
    /// rebuilt from the rows alone, so the monitor keeps it ([`super::Watch`]).
    pub(super) undecodable: bool,
    /// The monitor found a deadline still to come when it last looked at
    /// letting the trail go: it does not look again until the case's next
    /// event (`retire.rs`).
    pub(super) held_for_deadline: bool,
}

impl CaseTrail {
    /// The trail of a case `event` opens, with `view` (a request's case) or
    /// without (the records).
    pub(super) fn opened(
        event: &Event,
        hash: Sha256Hash,
        log_index: u64,
        view: Option<CaseView>,
    ) -> CaseTrail {
        CaseTrail {
            admin_record: false,
            policy_record: None,
            evidence_record: None,
            first_execution: None,
            opening_observation: None,
            last_seq: event.seq,
            last_hash: hash,
            last_event_id: event.event_id.to_string(),
            view: view.map(Box::new),
            last_log_index: log_index,
            undecodable: false,
            held_for_deadline: false,
        }
    }

    /// Makes `event`, whose bytes hash to `hash`, the case's latest.
    pub(super) fn advance(&mut self, event: &Event, hash: Sha256Hash) {
        self.last_seq = event.seq;
        self.last_hash = hash;
        self.last_event_id = event.event_id.to_string();
    }

    /// Applies the next `event` of a request's case to its view, and notes
    /// the case's first execution and opening observation. The rules are
    /// judged by the caller before; a trail rebuilt from rows verified
    /// already ([`super::Auditor::restore_case`]) calls this alone.
    pub(super) fn follow(&mut self, event: &Event, hash: Sha256Hash, log_index: u64) {
        self.held_for_deadline = false;
        if let Some(view) = &mut self.view {
            view.apply_hashed(event, hash);
            if let EventBody::ExecutionObserved(observed) = &event.body {
                if observed.review_deadline.is_some() && self.opening_observation.is_none() {
                    self.opening_observation =
                        Some((event.event_id.to_string(), event.seq, log_index));
                }
            }
            if self.first_execution.is_none()
                && matches!(event.body, EventBody::ExecutionCompleted(_))
            {
                self.first_execution = Some((event.seq, log_index));
            }
        }
        self.advance(event, hash);
    }

    /// Whether the trail is a request's case whose rows all decoded: one
    /// that can be rebuilt from its rows.
    pub(super) fn rebuildable(&self) -> bool {
        self.view.is_some()
            && !self.admin_record
            && self.policy_record.is_none()
            && self.evidence_record.is_none()
            && !self.undecodable
    }

    /// The case's first event, when it is not seq 1 or claims a predecessor.
    pub(super) fn check_start(event: &Event, log_index: u64) -> Option<Finding> {
        (event.seq != 1 || event.prev_hash.is_some()).then(|| {
            Finding::new(
                Code::ChainMissingStart,
                format!(
                    "the first stored event of case {} has seq {}: the events before it are missing",
                    event.case_id, event.seq
                ),
            )
            .at_event(event, log_index)
        })
    }

    /// How `event` links to the case's latest event: its sequence number
    /// follows, and its previous hash is that event's hash.
    pub(super) fn check_link(&self, event: &Event, log_index: u64) -> Vec<Finding> {
        let finding =
            |code: Code, message: String| Finding::new(code, message).at_event(event, log_index);
        let mut found = Vec::new();
        if event.seq <= self.last_seq {
            found.push(finding(
                Code::ChainOutOfOrder,
                format!(
                    "event seq {} of case {} is stored after seq {}: events were reordered",
                    event.seq, event.case_id, self.last_seq
                ),
            ));
        } else if event.seq != self.last_seq + 1 {
            found.push(finding(
                Code::ChainSeqGap,
                format!(
                    "case {} jumps from seq {} to seq {}: events are missing",
                    event.case_id, self.last_seq, event.seq
                ),
            ));
        }
        if event.prev_hash != Some(self.last_hash) {
            found.push(finding(
                Code::ChainPrevHashMismatch,
                format!(
                    "event seq {} of case {} does not link to the event stored before it (expected previous hash {}, event says {})",
                    event.seq,
                    event.case_id,
                    self.last_hash,
                    event
                        .prev_hash
                        .map(|hash| hash.to_hex())
                        .unwrap_or_else(|| "none".to_string())
                ),
            ));
        }
        found
    }
}

/// Compares the stored case rows with the rebuilt cases, and judges what
/// only the end of each trail can tell ([`super::rules::end_of_trail`]).
pub(super) fn finish_cases(
    cases: &HashMap<String, CaseTrail>,
    heads: impl IntoIterator<Item = StoredCaseHead>,
    now: Option<Timestamp>,
    findings: &mut Vec<Finding>,
) {
    let mut heads_by_case: BTreeMap<String, StoredCaseHead> = heads
        .into_iter()
        .map(|head| (head.case_id.clone(), head))
        .collect();
    let mut case_ids: Vec<&String> = cases.keys().collect();
    case_ids.sort();
    for case_id in case_ids {
        let trail = &cases[case_id];
        if trail.policy_record.is_some() || trail.admin_record {
            // The policy record has no case row; its tail is covered by
            // the log (index gaps, leaves, signed checkpoints).
            continue;
        }
        if let Some(record) = &trail.evidence_record {
            // No case row either; held evidence must find its case.
            findings.extend(record.finish(case_id, now));
            continue;
        }
        let Some(head) = heads_by_case.remove(case_id) else {
            findings.push(
                Finding::new(
                    Code::CaseMissingHead,
                    format!("case {case_id} has events but no case record"),
                )
                .case(case_id.clone()),
            );
            continue;
        };
        if i64::try_from(trail.last_seq) != Ok(head.head_seq)
            || head.head_hash != trail.last_hash.to_hex()
        {
            findings.push(
                Finding::new(
                    Code::ChainHeadMismatch,
                    format!(
                        "case {case_id} was last written at seq {} with hash {}, but its stored events end at seq {} with hash {}: the latest events were altered or deleted",
                        head.head_seq,
                        head.head_hash,
                        trail.last_seq,
                        trail.last_hash
                    ),
                )
                .case(case_id.clone())
                .event((!trail.last_event_id.is_empty()).then(|| trail.last_event_id.clone()))
                .seq(trail.last_seq),
            );
        }
        if let Some(view) = &trail.view {
            super::rules::end_of_trail(case_id, trail, view, now, findings);
            super::observed::end_of_trail(
                case_id,
                view,
                trail.opening_observation.as_ref(),
                now,
                findings,
            );
            if head.state != view.state.as_str() {
                findings.push(
                    Finding::new(
                        Code::CaseProjectionMismatch,
                        format!(
                            "case {case_id} is stored as {} but its events rebuild to {}",
                            head.state, view.state
                        ),
                    )
                    .case(case_id.clone()),
                );
            }
            // The flag listings and exports leave drill cases out by: set
            // on a real case, it would hide it from them.
            if head.drill != view.drill {
                findings.push(
                    Finding::new(
                        Code::CaseProjectionMismatch,
                        format!(
                            "case {case_id} is stored as {} but its request {}: listings and exports would {} it",
                            if head.drill { "a drill" } else { "not a drill" },
                            if view.drill { "marks it as a drill" } else { "does not mark it as a drill" },
                            if head.drill { "leave out" } else { "include" },
                        ),
                    )
                    .severity(crate::severity::Severity::High)
                    .case(case_id.clone()),
                );
            }
        }
    }
    for (case_id, head) in heads_by_case {
        findings.push(
            Finding::new(
                Code::CaseEventsMissing,
                format!(
                    "case {case_id} was written up to seq {} but none of its events are stored",
                    head.head_seq
                ),
            )
            .case(case_id),
        );
    }
}
