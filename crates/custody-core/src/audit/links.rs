//! Links between cases: a merge, a revocation opened by a review and a join
//! of held evidence each write one event in each of two cases, and the trail
//! reads as one only when both halves are there.

use std::collections::HashMap;

use super::finding::Finding;
use crate::code::Code;
use crate::event::{Event, EventBody};

/// Every half of a link seen.
#[derive(Clone, Default)]
pub(super) struct Links {
    halves: Vec<LinkSeen>,
}

/// One half of a link between two cases; a link is whole when the other
/// case holds the partner kind pointing back.
#[derive(Clone)]
struct LinkSeen {
    case_id: String,
    other_case: String,
    kind: LinkKind,
    event_id: String,
    log_index: u64,
}

/// The kinds of event that are half of a link.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LinkKind {
    DuplicateMerged,
    DuplicateLinked,
    RevocationOpened,
    OpenedByReview,
    EvidenceJoined,
    EvidenceReleased,
}

impl LinkKind {
    /// The event kind, as findings name it.
    fn as_str(self) -> &'static str {
        match self {
            LinkKind::DuplicateMerged => "duplicate_merged",
            LinkKind::DuplicateLinked => "duplicate_linked",
            LinkKind::RevocationOpened => "revocation_opened",
            LinkKind::OpenedByReview => "opened_by_review",
            LinkKind::EvidenceJoined => "evidence_joined",
            LinkKind::EvidenceReleased => "evidence_released",
        }
    }

    /// The kind the other case must hold, pointing back.
    fn partner(self) -> LinkKind {
        match self {
            LinkKind::DuplicateMerged => LinkKind::DuplicateLinked,
            LinkKind::DuplicateLinked => LinkKind::DuplicateMerged,
            LinkKind::RevocationOpened => LinkKind::OpenedByReview,
            LinkKind::OpenedByReview => LinkKind::RevocationOpened,
            LinkKind::EvidenceJoined => LinkKind::EvidenceReleased,
            LinkKind::EvidenceReleased => LinkKind::EvidenceJoined,
        }
    }

    /// The finding when the partner is missing.
    fn unmatched(self) -> Code {
        match self {
            LinkKind::DuplicateMerged | LinkKind::DuplicateLinked => Code::MergeUnmatchedLink,
            LinkKind::EvidenceJoined | LinkKind::EvidenceReleased => Code::EvidenceUnmatchedLink,
            LinkKind::RevocationOpened | LinkKind::OpenedByReview => Code::RevocationUnmatchedLink,
        }
    }
}

impl Links {
    /// Remembers the half of a link `event` is, if it is one. Evidence
    /// records release evidence through [`Links::observe_release`] instead.
    pub(super) fn observe(&mut self, event: &Event, log_index: u64) {
        let link = match &event.body {
            EventBody::DuplicateMerged(link) => {
                Some((link.other_case.to_string(), LinkKind::DuplicateMerged))
            }
            EventBody::DuplicateLinked(link) => {
                Some((link.other_case.to_string(), LinkKind::DuplicateLinked))
            }
            EventBody::RevocationOpened(link) => {
                Some((link.other_case.to_string(), LinkKind::RevocationOpened))
            }
            EventBody::OpenedByReview(link) => {
                Some((link.other_case.to_string(), LinkKind::OpenedByReview))
            }
            EventBody::EvidenceJoined(join) => {
                Some((join.record.to_string(), LinkKind::EvidenceJoined))
            }
            _ => None,
        };
        if let Some((other_case, kind)) = link {
            self.push(event, log_index, other_case, kind);
        }
    }

    /// The evidence record's half of a join: it released its evidence to
    /// `other_case`.
    pub(super) fn observe_release(&mut self, event: &Event, log_index: u64, other_case: String) {
        self.push(event, log_index, other_case, LinkKind::EvidenceReleased);
    }

    fn push(&mut self, event: &Event, log_index: u64, other_case: String, kind: LinkKind) {
        self.halves.push(LinkSeen {
            case_id: event.case_id.to_string(),
            other_case,
            kind,
            event_id: event.event_id.to_string(),
            log_index,
        });
    }

    /// How many halves were followed.
    pub(super) fn len(&self) -> usize {
        self.halves.len()
    }

    /// Every half whose partner is missing. The halves are indexed by their
    /// case, so pairing is linear in the number of links.
    pub(super) fn finish(&self, findings: &mut Vec<Finding>) {
        let mut halves_by_case: HashMap<&str, Vec<&LinkSeen>> = HashMap::new();
        for link in &self.halves {
            halves_by_case
                .entry(link.case_id.as_str())
                .or_default()
                .push(link);
        }
        for link in &self.halves {
            // A case holds a handful of links; the scan of its own is short.
            let matched = halves_by_case
                .get(link.other_case.as_str())
                .is_some_and(|halves| {
                    halves.iter().any(|other| {
                        other.other_case == link.case_id && other.kind == link.kind.partner()
                    })
                });
            if !matched {
                findings.push(
                    Finding::new(
                        link.kind.unmatched(),
                        format!(
                            "{} {} points to {}, which holds no {} pointing back: half of the link was removed or forged",
                            link.case_id,
                            link.kind.as_str(),
                            link.other_case,
                            link.kind.partner().as_str()
                        ),
                    )
                    .case(link.case_id.clone())
                    .event(link.event_id.clone())
                    .log_index(link.log_index),
                );
            }
        }
    }
}
