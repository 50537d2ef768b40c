//! The policy record: every `policy_adopted` event is the ledger's own, its
//! hash is the hash of the policy it carries, it names the policy recorded
//! before it, and every case cites a policy adopted before it was opened.

use std::collections::HashMap;

use super::finding::Finding;
use crate::code::Code;
use crate::event::{Event, PolicyAdopted};
use crate::id::Sha256Hash;

/// The policies adopted, and what the requests that cite one were found to
/// cite.
#[derive(Clone, Default)]
pub(super) struct Policies {
    /// Policies the policy record adopted: hash to the log index of adoption.
    adopted: HashMap<Sha256Hash, u64>,
    /// The log index of the first policy adoption, if the log records any.
    first_adoption: Option<u64>,
    /// Requests that cite a policy the record had not adopted when they
    /// were opened. Rows come in log order, so a request is judged when it
    /// is read: every adoption before it has been seen, and one after it
    /// cannot make it right. Nothing is kept of the requests that pass.
    unrecorded: Vec<Finding>,
    /// The policy record: the first case whose first event is a
    /// `policy_adopted` by `system`, and when that event was recorded (what
    /// the `deployment` table's `policy_record` row must say).
    pub(super) record: Option<(String, crate::time::Timestamp)>,
}

/// What the audit keeps of a policy record while reading it.
#[derive(Clone)]
pub(super) struct PolicyTrail {
    /// The hash of the latest adopted policy.
    pub(super) last_policy: Sha256Hash,
}

impl Policies {
    /// Judges a request by the policy it cites: once the log records
    /// policies, every case must cite one recorded before it was opened (a
    /// policy that decided cases without being recorded is a policy change
    /// nobody can audit). Rows come in log order, so every adoption before
    /// the request has been seen.
    pub(super) fn observe_request(
        &mut self,
        event: &Event,
        log_index: u64,
        rule: &crate::policy::AppliedRule,
    ) {
        let Some(first_adoption) = self.first_adoption else {
            return;
        };
        let recorded_before = self
            .adopted
            .get(&rule.policy_hash)
            .is_some_and(|adopted_at| *adopted_at < log_index);
        if log_index > first_adoption && !recorded_before {
            self.unrecorded.push(
                Finding::new(
                    Code::PolicyUnrecorded,
                    format!(
                        "case {} was decided by rule `{}` of policy {}, which the policy record never adopted before the case was opened",
                        event.case_id, rule.name, rule.policy_hash
                    ),
                )
                .case(event.case_id.to_string())
                .event(event.event_id.to_string())
                .seq(1)
                .log_index(log_index),
            );
        }
    }

    /// Checks one `policy_adopted` event of the policy record and remembers
    /// the policy: the ledger's own actor wrote it, its hash is the hash of
    /// the policy it carries, and it names the policy recorded before it.
    pub(super) fn check_adoption(
        &mut self,
        event: &Event,
        adopted: &PolicyAdopted,
        previous: Option<Sha256Hash>,
        log_index: u64,
    ) -> Vec<Finding> {
        let mut found = Vec::new();
        let finding =
            |code: Code, message: String| Finding::new(code, message).at_event(event, log_index);
        if previous.is_none()
            && self.record.is_none()
            && event.actor.principal.as_str() == crate::model::SYSTEM_PRINCIPAL
        {
            self.record = Some((event.case_id.to_string(), event.recorded_at));
        }
        if event.actor.principal.as_str() != crate::model::SYSTEM_PRINCIPAL {
            found.push(finding(
                Code::PolicyRecordForged,
                format!(
                    "policy {} was recorded by {}, not by the ledger's own actor `system`",
                    adopted.policy_hash, event.actor.principal
                ),
            ));
        }
        let recomputed = Sha256Hash::of(&crate::canonical::to_canonical_bytes(&adopted.policy));
        if recomputed != adopted.policy_hash {
            found.push(finding(
                Code::PolicyRecordMismatch,
                format!(
                    "the policy recorded as {} hashes to {recomputed}: the recorded rules are not the ones cases cite",
                    adopted.policy_hash
                ),
            ));
        }
        if adopted.previous_hash != previous {
            found.push(finding(
                Code::PolicyRecordBroken,
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
        self.adopted.entry(adopted.policy_hash).or_insert(log_index);
        self.first_adoption.get_or_insert(log_index);
        found
    }

    /// The requests that cited a policy the record had not adopted.
    pub(super) fn finish(&self, findings: &mut Vec<Finding>) {
        findings.extend(self.unrecorded.iter().cloned());
    }
}
