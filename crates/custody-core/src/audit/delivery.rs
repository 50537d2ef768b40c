//! The notifications events owe: each must be delivered or escalated, and
//! automation must not execute before reviewers were told of the approved
//! change. Whether a notification was delivered is known only at the end,
//! so this part of the audit grows with the notifications not delivered
//! yet: what can no longer make a finding (a notification delivered or
//! escalated, an automated execution its reviewers heard of in time) is
//! dropped whenever what is kept has doubled ([`Deliveries::prune`]).

use std::collections::{HashMap, HashSet};

use super::finding::Finding;
use crate::code::Code;
use crate::event::{DeliveryOutcome, Event, EventBody};
use crate::time::Timestamp;

/// The deliveries seen so far.
#[derive(Clone, Default)]
pub(super) struct Deliveries {
    /// Notifications owed, in log order.
    owed: Vec<OwedSeen>,
    /// Delivery attempts by delivery ID: when it was delivered, whether it died.
    attempts: HashMap<String, DeliverySeen>,
    /// Deliveries escalated after they died.
    escalated: HashSet<String>,
    /// Per case, the delivery IDs of the notices owed to reviewers so far.
    reviewer_notices: HashMap<String, Vec<String>>,
    /// Executions by automation, with the reviewer notices owed before them.
    automated_executions: Vec<AutomatedExecution>,
    /// Notifications owed kept at which the next [`Deliveries::prune`] runs.
    prune_at: usize,
}

/// The fewest notifications owed kept before any is dropped.
const PRUNE_FLOOR: usize = 4096;

#[derive(Clone)]
struct OwedSeen {
    case_id: String,
    event_id: String,
    log_index: u64,
    seq: u64,
    recorded_at: Timestamp,
    owed: crate::notice::Owed,
}

#[derive(Clone, Default)]
struct DeliverySeen {
    delivered_at: Option<Timestamp>,
    dead: bool,
}

#[derive(Clone)]
struct AutomatedExecution {
    case_id: String,
    event_id: String,
    log_index: u64,
    seq: u64,
    occurred_at: Timestamp,
    reviewer_notices: Vec<String>,
}

impl Deliveries {
    /// Remembers what `event` owes, and the delivery attempts and escalations
    /// it records.
    pub(super) fn observe(&mut self, event: &Event, log_index: u64) {
        for owed in &event.notify {
            if owed.audience == crate::notice::Audience::Reviewers
                && owed.kind == crate::notice::CHANGE_APPROVED_FOR_REVIEW
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
        if self.owed.len() >= self.prune_at.max(PRUNE_FLOOR) {
            self.prune();
            self.prune_at = self.owed.len().saturating_mul(2);
        }
        match &event.body {
            EventBody::NotificationAttempted(attempt) => {
                let seen = self
                    .attempts
                    .entry(attempt.delivery_id.clone())
                    .or_default();
                match attempt.outcome {
                    DeliveryOutcome::Delivered => {
                        let at = event.occurred_at;
                        seen.delivered_at =
                            Some(seen.delivered_at.map_or(at, |first| first.min(at)));
                    }
                    DeliveryOutcome::Dead => seen.dead = true,
                    DeliveryOutcome::Failed => {}
                }
            }
            EventBody::EscalationRaised(escalation) => {
                if let Some(delivery) = &escalation.delivery_id {
                    self.escalated.insert(delivery.clone());
                }
            }
            _ => {}
        }
    }

    /// Remembers an execution by automation (not break-glass, which executes
    /// before anyone can be told and has its own post-hoc review), with the
    /// reviewer notices its case owed before it.
    pub(super) fn observe_automated_execution(&mut self, event: &Event, log_index: u64) {
        self.automated_executions.push(AutomatedExecution {
            case_id: event.case_id.to_string(),
            event_id: event.event_id.to_string(),
            log_index,
            seq: event.seq,
            occurred_at: event.occurred_at,
            reviewer_notices: self
                .reviewer_notices
                .get(event.case_id.as_str())
                .cloned()
                .unwrap_or_default(),
        });
    }

    /// Drops what no later event can turn into a finding: a notification
    /// delivered (a later attempt only makes its first delivery earlier) or
    /// escalated, an automated execution whose reviewers were told before
    /// it, and the attempts nothing kept refers to any more. What
    /// [`Deliveries::finish`] reports is the same with or without it.
    pub(super) fn prune(&mut self) {
        let attempts = &self.attempts;
        let escalated = &self.escalated;
        self.owed.retain(|seen| {
            let id = &seen.owed.delivery_id;
            !(attempts
                .get(id)
                .is_some_and(|delivery| delivery.delivered_at.is_some())
                || escalated.contains(id))
        });
        self.automated_executions.retain(|execution| {
            !execution.reviewer_notices.is_empty() && !execution.told_before(attempts)
        });
        let referred: HashSet<&str> = self
            .owed
            .iter()
            .map(|seen| seen.owed.delivery_id.as_str())
            .chain(
                self.automated_executions
                    .iter()
                    .flat_map(|execution| execution.reviewer_notices.iter().map(String::as_str)),
            )
            .chain(self.reviewer_notices.values().flatten().map(String::as_str))
            .collect();
        let kept: HashMap<String, DeliverySeen> = self
            .attempts
            .iter()
            .filter(|(id, _)| referred.contains(id.as_str()))
            .map(|(id, seen)| (id.clone(), seen.clone()))
            .collect();
        self.attempts = kept;
        self.owed.shrink_to_fit();
    }

    /// Notification findings, once every event has been seen.
    pub(super) fn finish(&self, now: Option<Timestamp>, findings: &mut Vec<Finding>) {
        for seen in &self.owed {
            let delivery = self.attempts.get(&seen.owed.delivery_id);
            if delivery.is_some_and(|delivery| delivery.delivered_at.is_some())
                || self.escalated.contains(&seen.owed.delivery_id)
            {
                continue;
            }
            let dead = delivery.is_some_and(|delivery| delivery.dead);
            let overdue = now.is_some_and(|now| {
                seen.recorded_at
                    .plus_seconds(crate::notice::DELIVERY_GRACE_SECONDS)
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
            findings.push(
                Finding::new(
                    Code::NotifyUndelivered,
                    format!(
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
                )
                .case(seen.case_id.clone())
                .event(seen.event_id.clone())
                .seq(seen.seq)
                .log_index(seen.log_index),
            );
        }
        for execution in &self.automated_executions {
            if execution.reviewer_notices.is_empty() {
                // No route tells reviewers of approved changes: nothing was owed.
                continue;
            }
            if !execution.told_before(&self.attempts) {
                findings.push(
                    Finding::new(
                        Code::NotifyReviewerNotNotified,
                        format!(
                            "automation executed case {} at {} before any reviewer had been told of the approved change ({} notice(s) owed: {})",
                            execution.case_id,
                            execution.occurred_at,
                            execution.reviewer_notices.len(),
                            execution.reviewer_notices.join(", ")
                        ),
                    )
                    .case(execution.case_id.clone())
                    .event(execution.event_id.clone())
                    .seq(execution.seq)
                    .log_index(execution.log_index),
                );
            }
        }
    }
}

impl AutomatedExecution {
    /// Whether one of its reviewer notices was delivered before it.
    fn told_before(&self, attempts: &HashMap<String, DeliverySeen>) -> bool {
        self.reviewer_notices.iter().any(|delivery| {
            attempts
                .get(delivery)
                .and_then(|seen| seen.delivered_at)
                .is_some_and(|at| at <= self.occurred_at)
        })
    }
}
