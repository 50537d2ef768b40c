//! Evidence: every blob an event references (for the caller to check against
//! the blob store, since the audit does no IO), the latest word on every
//! captured link, and the evidence records that hold evidence for a
//! reference until a case carries it.

use std::collections::BTreeMap;

use super::finding::Finding;
use super::EvidenceRef;
use crate::code::Code;
use crate::event::{Event, EventBody};
use crate::id::Sha256Hash;
use crate::time::Timestamp;

/// How long evidence may wait for a case carrying its reference before
/// `verify` reports it unattached.
pub const EVIDENCE_GRACE_SECONDS: i64 = 24 * 3600;

/// The evidence seen so far.
#[derive(Clone, Default)]
pub(super) struct EvidenceSeen {
    /// Every evidence blob referenced.
    pub(super) references: Vec<EvidenceRef>,
    /// The latest state of every captured link, by (case, URL).
    links: BTreeMap<(String, String), LinkState>,
}

/// The latest word on a captured link.
#[derive(Clone)]
struct LinkState {
    state: LinkWord,
    event_id: String,
    seq: u64,
    log_index: u64,
    detail: String,
}

/// What the latest event about a link says of it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LinkWord {
    Verified,
    Unverified,
    Drifted,
}

/// What the audit keeps of an evidence record while reading it.
#[derive(Clone)]
pub(super) struct EvidenceRecordTrail {
    pub(super) ticket: String,
    pub(super) first_recorded_at: Timestamp,
    first_event: String,
    first_log_index: u64,
    pub(super) released: bool,
    /// The case the latest `evidence_released` names (what the
    /// `evidence_records` row's `released_to` must say).
    pub(super) released_to: Option<String>,
}

impl EvidenceRecordTrail {
    /// The record `event` opens, when it holds evidence for a reference.
    pub(super) fn opened_by(event: &Event, log_index: u64) -> Option<EvidenceRecordTrail> {
        match &event.body {
            EventBody::EvidenceHeld(held) => Some(EvidenceRecordTrail {
                ticket: held.ticket.to_string(),
                first_recorded_at: event.recorded_at,
                first_event: event.event_id.to_string(),
                first_log_index: log_index,
                released: false,
                released_to: None,
            }),
            _ => None,
        }
    }

    /// Held evidence must find its case within [`EVIDENCE_GRACE_SECONDS`].
    pub(super) fn finish(&self, case_id: &str, now: Option<Timestamp>) -> Option<Finding> {
        let waited_too_long = now
            .is_some_and(|now| self.first_recorded_at.plus_seconds(EVIDENCE_GRACE_SECONDS) <= now);
        (!self.released && waited_too_long).then(|| {
            Finding::new(
                Code::EvidenceUnattached,
                format!(
                    "evidence held for {} since {} never joined a case: no case carries that reference",
                    self.ticket, self.first_recorded_at
                ),
            )
            .case(case_id)
            .event(self.first_event.clone())
            .seq(1)
            .log_index(self.first_log_index)
        })
    }
}

impl EvidenceRef {
    /// A finding about the blob behind this reference, pointing at the
    /// event that references it (the caller checks the blobs; see
    /// [`super::Report::evidence`]).
    pub fn finding(&self, code: Code, message: String) -> Finding {
        Finding::new(code, message)
            .case(self.case_id.clone())
            .event(self.event_id.clone())
            .seq(self.seq)
            .log_index(self.log_index)
    }
}

impl EvidenceSeen {
    /// Remembers the blobs `event` references and what it says of a link.
    pub(super) fn observe(&mut self, event: &Event, log_index: u64) {
        let mut reference = |sha256: Sha256Hash, size: Option<u64>| {
            self.references.push(EvidenceRef {
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
                        LinkWord::Verified,
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
            EventBody::EvidenceUnverified(failure) => Some((
                failure.url.clone(),
                LinkWord::Unverified,
                failure.error.clone(),
            )),
            EventBody::EvidenceRechecked(recheck) => {
                if let Some(sha256) = recheck.sha256 {
                    reference(sha256, None);
                }
                Some(if recheck.drifted {
                    (
                        recheck.url.clone(),
                        LinkWord::Drifted,
                        match (&recheck.sha256, &recheck.error) {
                            (Some(now), _) => format!("it serves {now}, not {}", recheck.previous),
                            (None, Some(error)) => format!("it no longer answers: {error}"),
                            (None, None) => "it no longer answers".to_string(),
                        },
                    )
                } else {
                    (
                        recheck.url.clone(),
                        LinkWord::Verified,
                        "unchanged".to_string(),
                    )
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
    pub(super) fn finish_links(&self, findings: &mut Vec<Finding>) {
        for ((case_id, url), seen) in &self.links {
            let (code, message) = match seen.state {
                LinkWord::Unverified => (
                    Code::EvidenceLinkUnverified,
                    format!(
                        "the link {url} of case {case_id} could not be captured, so nothing proves what it said: {}",
                        seen.detail
                    ),
                ),
                LinkWord::Drifted => (
                    Code::EvidenceLinkDrifted,
                    format!(
                        "the link {url} of case {case_id} changed since it was captured: {}",
                        seen.detail
                    ),
                ),
                LinkWord::Verified => continue,
            };
            findings.push(
                Finding::new(code, message)
                    .case(case_id.clone())
                    .event(seen.event_id.clone())
                    .seq(seen.seq)
                    .log_index(seen.log_index),
            );
        }
    }
}
