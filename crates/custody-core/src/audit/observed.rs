//! Observed changes (`execution_observed`): drift at each observation, and
//! what only the end of a case's trail tells (an unsanctioned change still
//! unreviewed, access a source still shows after it ended).
//!
//! The judgements are [`crate::observation::drift`]'s, the function the
//! writer records in the event: the audit makes it again from the case as
//! it stood before the event, never trusting the `drift` the event claims.

use crate::audit::finding::Finding;
use crate::case::CaseView;
use crate::code::Code;
use crate::event::{Event, EventBody, ReviewOutcome};
use crate::observation::{self, ObservationRecord};
use crate::severity::Severity;
use crate::text;
use crate::time::Timestamp;

/// Drift findings of an `execution_observed` event, judged against the case
/// as it stood before it.
pub(super) fn at_event(view: &CaseView, event: &Event, log_index: u64) -> Vec<Finding> {
    let EventBody::ExecutionObserved(observed) = &event.body else {
        return Vec::new();
    };
    // The observation that opened its case is judged as unsanctioned at
    // the end of the trail, not against the request it wrote itself.
    if observed.review_deadline.is_some() {
        return Vec::new();
    }
    observation::drift(view, &observed.change, &observed.actor, event.occurred_at)
        .into_iter()
        .map(|drift| {
            Finding::new(
                drift.code,
                format!(
                    "{} (observed by {} as record {})",
                    drift.message,
                    event.source.as_deref().unwrap_or("?"),
                    text::escape(event.external_id.as_deref().unwrap_or("?"))
                ),
            )
            .severity(drift.severity)
            .at_event(event, log_index)
            .origin(event.source.as_deref(), event.external_id.as_deref())
        })
        .collect()
}

/// What the end of a case's trail tells about what was observed: a change
/// no case sanctioned (until a reviewer confirmed it), and access that a
/// source saw granted and never saw end although the case's access ended.
/// `opening` is the observation that opened the case: its event ID,
/// sequence number and log index.
pub(super) fn end_of_trail(
    case_id: &str,
    view: &CaseView,
    opening: Option<&(String, u64, u64)>,
    now: Option<Timestamp>,
    findings: &mut Vec<Finding>,
) {
    if view.opened_by_observation {
        let confirmed = view
            .reviews
            .iter()
            .any(|review| review.outcome == ReviewOutcome::Confirmed);
        let first = view.observations.first();
        let at = |finding: Finding| {
            let finding = finding.case(case_id.to_string()).origin(
                first.map(|record| record.source.as_str()),
                first.map(|record| record.external_id.as_str()),
            );
            match opening {
                Some((event_id, seq, log_index)) => finding
                    .event(event_id.clone())
                    .seq(*seq)
                    .log_index(*log_index),
                None => finding,
            }
        };
        let state = if confirmed {
            "a reviewer confirmed it since"
        } else if view.reviews.is_empty() {
            "it is not reviewed"
        } else {
            "its review did not confirm it"
        };
        let seen = first
            .map(|record| {
                format!(
                    "{} saw {} make `{}` at {} (record {})",
                    record.source,
                    text::escape(&record.actor),
                    record.change,
                    record.occurred_at,
                    text::escape(&record.external_id)
                )
            })
            .unwrap_or_default();
        let severity = if confirmed {
            Severity::Info
        } else {
            Severity::High
        };
        findings.push(at(Finding::new(
            Code::ChangeUnsanctioned,
            format!("case {case_id} records a change no case sanctioned: {seen}; {state}"),
        )
        .severity(severity)));
        if observation::is_non_human_credential(&view.change) {
            findings.push(at(Finding::new(
                Code::DriftNhiCredentialUnsanctioned,
                format!(
                    "case {case_id}: a credential of a non-human identity (`{}`) was created or rotated with no case: {seen}; {state}",
                    view.change
                ),
            )
            .severity(if confirmed { Severity::Info } else { Severity::Critical })));
        }
    }
    access_remains(case_id, view, now, findings);
}

/// Access a source saw granted and never saw revoked, although the case's
/// access ended (its revocation recorded, or its time-bound access past
/// its end as of `now`).
fn access_remains(
    case_id: &str,
    view: &CaseView,
    now: Option<Timestamp>,
    findings: &mut Vec<Finding>,
) {
    let ended = view.access_ended_at.or_else(|| {
        view.expires_at
            .filter(|expires| now.is_some_and(|now| *expires <= now))
    });
    let Some(ended) = ended else { return };
    let mut sources: Vec<&ObservationRecord> = Vec::new();
    for record in &view.observations {
        let grant = observation::same_change(&view.change, &record.change)
            && record.change.kind() == crate::model::ChangeKind::Grant;
        if grant && !sources.iter().any(|seen| seen.source == record.source) {
            sources.push(record);
        }
    }
    for granted in sources {
        let revoked = view.observations.iter().any(|record| {
            record.source == granted.source
                && observation::revokes(&view.change, &record.change)
                && record.occurred_at >= granted.occurred_at
        });
        if !revoked {
            findings.push(
                Finding::new(
                    Code::DriftAccessAfterRevocation,
                    format!(
                        "case {case_id}'s access ended at {ended}, but {} saw `{}` granted at {} (record {}) and has not seen it revoked: the access is still there",
                        granted.source,
                        granted.change,
                        granted.occurred_at,
                        text::escape(&granted.external_id)
                    ),
                )
                .case(case_id.to_string())
                .origin(Some(&granted.source), Some(&granted.external_id)),
            );
        }
    }
}
