//! Run statistics for the readiness report's charts: cases by state, the
//! time from request to review, and how long notification attempts took.
//!
//! The auditor feeds them as it folds events, and they stay small whatever
//! the size of the log: counts and fixed histograms, never a list of events.
//! The time from request to review is read from the rebuilt cases at the end
//! (the auditor keeps one view per case anyway); the latency of each
//! `notification_attempted` event is counted as it is read.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::case::CaseView;
use crate::event::{DeliveryOutcome, Event, EventBody};

/// The upper bounds, in seconds, of the buckets of the time from request to
/// review: a minute, ten minutes, an hour, four hours, a day, three days, a
/// week; a last bucket holds everything longer.
pub const REQUEST_TO_REVIEW_BOUNDS_SECONDS: &[u64] =
    &[60, 600, 3_600, 14_400, 86_400, 259_200, 604_800];

/// The upper bounds, in milliseconds, of the buckets of notification
/// delivery latency; a last bucket holds everything slower.
pub const NOTIFICATION_LATENCY_BOUNDS_MS: &[u64] =
    &[50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

/// What the audit counted while it read the log (`verify --json`'s `stats`).
///
/// The drill's cases (`custody drill`, recorded in the request) are counted
/// apart, so that a drill never skews the figures of the real workflow; a
/// report made by a drill charts them instead ([`Stats::drill_view`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Real request cases by the state their events rebuild to (`open`,
    /// `reviewed`, ...); the ledger's own records (policy, administration,
    /// evidence held) are not cases and are not counted, nor are drill cases.
    pub cases_by_state: BTreeMap<String, u64>,
    /// Seconds from a request (its `occurred_at`) to its case's first review,
    /// for every reviewed real case.
    pub request_to_review_seconds: Histogram,
    /// How many drill cases there are.
    pub drill_cases: u64,
    /// The drill's cases by state.
    pub drill_cases_by_state: BTreeMap<String, u64>,
    /// Seconds from request to first review of every reviewed drill case.
    pub drill_request_to_review_seconds: Histogram,
    /// Milliseconds each notification attempt took (`latency_ms` of
    /// `notification_attempted`), whatever its outcome and whichever case it
    /// was for: this measures the channels, which a drill exercises too.
    pub notification_latency_ms: Histogram,
    /// Notification attempts by outcome: `delivered`, `failed`, `dead`.
    pub notification_attempts: BTreeMap<String, u64>,
}

/// A histogram with fixed bucket bounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Histogram {
    /// The buckets, in increasing order; the last has no upper bound.
    pub buckets: Vec<Bucket>,
    /// How many values were counted.
    pub count: u64,
    /// Their sum (saturating).
    pub sum: u64,
    /// The largest, when any was counted.
    pub max: Option<u64>,
}

/// One bucket of a [`Histogram`]: the values above the previous bucket's
/// bound, up to and including `le`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// The upper bound (inclusive); `None` for the last bucket.
    pub le: Option<u64>,
    /// How many values fell in it.
    pub count: u64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (increasing), and one more
    /// bucket without bound.
    pub fn with_bounds(bounds: &[u64]) -> Histogram {
        Histogram {
            buckets: bounds
                .iter()
                .map(|&bound| Some(bound))
                .chain([None])
                .map(|le| Bucket { le, count: 0 })
                .collect(),
            count: 0,
            sum: 0,
            max: None,
        }
    }

    /// Counts `value`.
    pub fn record(&mut self, value: u64) {
        let bucket = self
            .buckets
            .iter_mut()
            .find(|bucket| bucket.le.is_none_or(|le| value <= le));
        if let Some(bucket) = bucket {
            bucket.count += 1;
        }
        self.count += 1;
        self.sum = self.sum.saturating_add(value);
        self.max = Some(self.max.map_or(value, |max| max.max(value)));
    }

    /// Takes back one [`Histogram::record`] of `value` (its maximum stays).
    pub fn unrecord(&mut self, value: u64) {
        let bucket = self
            .buckets
            .iter_mut()
            .find(|bucket| bucket.le.is_none_or(|le| value <= le));
        if let Some(bucket) = bucket {
            bucket.count = bucket.count.saturating_sub(1);
        }
        self.count = self.count.saturating_sub(1);
        self.sum = self.sum.saturating_sub(value);
        if self.count == 0 {
            self.max = None;
        }
    }
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            cases_by_state: BTreeMap::new(),
            request_to_review_seconds: Histogram::with_bounds(REQUEST_TO_REVIEW_BOUNDS_SECONDS),
            drill_cases: 0,
            drill_cases_by_state: BTreeMap::new(),
            drill_request_to_review_seconds: Histogram::with_bounds(
                REQUEST_TO_REVIEW_BOUNDS_SECONDS,
            ),
            notification_latency_ms: Histogram::with_bounds(NOTIFICATION_LATENCY_BOUNDS_MS),
            notification_attempts: BTreeMap::new(),
        }
    }
}

impl Stats {
    /// Counts what one event adds: a notification attempt's latency and outcome.
    pub(super) fn observe(&mut self, event: &Event) {
        if let EventBody::NotificationAttempted(attempt) = &event.body {
            self.notification_latency_ms.record(attempt.latency_ms);
            let outcome = match attempt.outcome {
                DeliveryOutcome::Delivered => "delivered",
                DeliveryOutcome::Failed => "failed",
                DeliveryOutcome::Dead => "dead",
            };
            *self
                .notification_attempts
                .entry(outcome.to_string())
                .or_default() += 1;
        }
    }

    /// The same statistics with the drill's cases in place of the real ones:
    /// what a report made by `custody drill` charts, since its cases are the
    /// drill's.
    pub fn drill_view(&self) -> Stats {
        Stats {
            cases_by_state: self.drill_cases_by_state.clone(),
            request_to_review_seconds: self.drill_request_to_review_seconds.clone(),
            ..self.clone()
        }
    }

    /// Counts one request case as its events rebuilt it, with the real cases
    /// or with the drill's.
    pub(super) fn count_case(&mut self, view: &CaseView) {
        self.tally_case(view, true);
    }

    /// Takes back [`Stats::count_case`] of `view` (a retired case's trail
    /// taken back to be counted again when its events end). A case's first
    /// review never changes once recorded, so the histograms' maxima stay
    /// right.
    pub(super) fn uncount_case(&mut self, view: &CaseView) {
        self.tally_case(view, false);
    }

    fn tally_case(&mut self, view: &CaseView, add: bool) {
        let step = |count: &mut u64| {
            *count = if add {
                count.saturating_add(1)
            } else {
                count.saturating_sub(1)
            }
        };
        let (by_state, to_review) = if view.drill {
            step(&mut self.drill_cases);
            (
                &mut self.drill_cases_by_state,
                &mut self.drill_request_to_review_seconds,
            )
        } else {
            (
                &mut self.cases_by_state,
                &mut self.request_to_review_seconds,
            )
        };
        let state = view.state.as_str();
        step(by_state.entry(state.to_string()).or_default());
        if by_state.get(state) == Some(&0) {
            by_state.remove(state);
        }
        if let Some(review) = view.reviews.first() {
            let micros = review
                .by
                .occurred_at
                .as_micros()
                .saturating_sub(view.requester.occurred_at.as_micros());
            // A review dated before its request (a late record with a wrong
            // clock) counts as no time at all, not as a negative one.
            let seconds = u64::try_from(micros / 1_000_000).unwrap_or(0);
            if add {
                to_review.record(seconds);
            } else {
                to_review.unrecord(seconds);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_in_the_first_bucket_whose_bound_holds_them() {
        let mut histogram = Histogram::with_bounds(&[10, 100]);
        for value in [0, 10, 11, 100, 101, 5_000] {
            histogram.record(value);
        }
        let counts: Vec<(Option<u64>, u64)> = histogram
            .buckets
            .iter()
            .map(|bucket| (bucket.le, bucket.count))
            .collect();
        assert_eq!(counts, vec![(Some(10), 2), (Some(100), 2), (None, 2)]);
        assert_eq!(histogram.count, 6);
        assert_eq!(histogram.sum, 5_222);
        assert_eq!(histogram.max, Some(5_000));
    }

    #[test]
    fn the_sum_saturates() {
        let mut histogram = Histogram::with_bounds(&[1]);
        histogram.record(u64::MAX);
        histogram.record(u64::MAX);
        assert_eq!(histogram.sum, u64::MAX);
        assert_eq!(histogram.buckets[1].count, 2);
    }
}
