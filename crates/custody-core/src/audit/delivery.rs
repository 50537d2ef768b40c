//! The notifications events owe: each must be delivered or escalated, and
//! automation must not execute before reviewers were told of the approved
//! change. Whether a notification was delivered is known only at the end,
//! so this is the part of the audit that grows with the number of events.

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
}

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
            let told_before = execution.reviewer_notices.iter().any(|delivery| {
                self.attempts
                    .get(delivery)
                    .and_then(|seen| seen.delivered_at)
                    .is_some_and(|at| at <= execution.occurred_at)
            });
            if !told_before {
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
