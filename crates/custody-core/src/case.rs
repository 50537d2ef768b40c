//! The case: a pure projection of its events.
//!
//! [`CaseView::replay`] folds a case's events, in sequence order, into its
//! current state. The fold never fails and never panics, whatever the events
//! say (the auditor replays tampered trails too); what is wrong with a trail
//! is the audit's business, not the projection's. Replaying the same events
//! always yields the same view.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventBody, ReviewOutcome};
use crate::id::{CaseId, EventId, Sha256Hash};
use crate::model::{Change, PrincipalId, PrincipalKind, Ticket};
use crate::policy::{AppliedRule, StageProgress};
use crate::time::Timestamp;

/// Where a case stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// Requested, waiting for approvals.
    Open,
    /// Approved as required, waiting for execution.
    Approved,
    /// Denied; nothing may be executed.
    Denied,
    /// Executed, waiting for the post-change review.
    Executed,
    /// Reviewed; the trail of this change is complete.
    Reviewed,
    /// A duplicate of another case, which carries the change from here on.
    Merged,
    /// Executed under break-glass, before approval; a post-hoc review is due.
    PendingReview,
    /// An execution was observed before its approval was recorded (a late
    /// record from another system); resolves when the approval arrives.
    ExecutedPendingApproval,
}

/// A principal's part in one event of the case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Participation {
    /// Who.
    pub principal: PrincipalId,
    /// What kind of principal.
    pub kind: PrincipalKind,
    /// The event that records it.
    pub event_id: EventId,
    /// Its position in the case.
    pub seq: u64,
    /// When it happened according to its source.
    pub occurred_at: Timestamp,
}

/// An approval or denial, with the change it covered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecisionRecord {
    /// Who recorded the decision, and where in the trail.
    #[serde(flatten)]
    pub by: Participation,
    /// The change hash the decision covered.
    pub change_hash: Sha256Hash,
    /// Whose decision it is (the recorder, unless attested from chat).
    pub approver: PrincipalId,
    /// Recorded by someone else from a chat message.
    pub attested: bool,
    /// An attested approval the approver confirmed with their own identity.
    pub confirmed: bool,
    /// The approver's groups, as recorded when they acted with their own
    /// identity (the approval, or its confirmation); empty for an attested
    /// approval not yet confirmed. Approval stages are matched against them.
    #[serde(default)]
    pub approver_groups: Vec<String>,
}

/// An execution attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecutionRecord {
    /// Who executed, and where in the trail.
    #[serde(flatten)]
    pub by: Participation,
    /// Whether it completed (`false` for a failed attempt).
    pub completed: bool,
    /// The hash of the change set actually applied, when reported.
    pub change_set_hash: Option<Sha256Hash>,
}

/// A post-change review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewRecord {
    /// Who reviewed, and where in the trail.
    #[serde(flatten)]
    pub by: Participation,
    /// The outcome.
    pub outcome: ReviewOutcome,
}

/// Everything known about a case, derived from its events alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaseView {
    /// The case ID.
    pub case_id: CaseId,
    /// Where the case stands.
    pub state: CaseState,
    /// The requested change.
    pub change: Change,
    /// What approvals bind to.
    pub change_hash: Sha256Hash,
    /// Approvals required before execution, as recorded at request time.
    pub approvals_required: u32,
    /// The policy rule that decided the case.
    pub rule: AppliedRule,
    /// Why the change was requested.
    pub justification: Option<String>,
    /// The external ticket, when there is one.
    pub ticket: Option<Ticket>,
    /// Who requested it.
    pub requester: Participation,
    /// The requester's organisation at request time.
    pub requester_org: Option<String>,
    /// Approvals, in sequence order.
    pub approvals: Vec<DecisionRecord>,
    /// Denials, in sequence order.
    pub denials: Vec<DecisionRecord>,
    /// Execution attempts, in sequence order.
    pub executions: Vec<ExecutionRecord>,
    /// Reviews, in sequence order.
    pub reviews: Vec<ReviewRecord>,
    /// The case this one was merged into, when it is a duplicate.
    pub merged_into: Option<CaseId>,
    /// Duplicates merged into this case, in sequence order.
    pub duplicates: Vec<CaseId>,
    /// When the case was opened by break-glass: when its post-hoc review is due.
    pub break_glass_deadline: Option<Timestamp>,
    /// Escalations raised by the ledger, in sequence order.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub escalations: Vec<crate::event::EscalationReason>,
    /// When the review of the execution is due, if a deadline applies.
    pub review_due: Option<Timestamp>,
    /// When time-bound access ends (execution time plus the duration).
    pub expires_at: Option<Timestamp>,
    /// Whether the ledger recorded that the revocation is due.
    pub revocation_due: bool,
    /// Whether the ledger recorded, before the end of time-bound access,
    /// that it ends soon (and its owner is told).
    #[serde(default)]
    pub expiry_noticed: bool,
    /// Whether the revocation of time-bound access was executed.
    pub revoked: bool,
    /// The revocation case a review with outcome `revoke` opened.
    pub revocation_case: Option<CaseId>,
    /// The case whose review opened this one (a revocation case).
    pub opened_by_review_of: Option<CaseId>,
    /// The change the latest completed execution applied.
    pub applied: Option<Change>,
    /// When the first completed execution happened (its `occurred_at`).
    pub executed_at: Option<Timestamp>,
    /// The first completed execution.
    pub execution_event: Option<EventId>,
    /// The approvals needed were recorded after the execution and occurred
    /// after it too: the change was made before it was approved.
    pub approved_after_execution: bool,
    /// An execution was recorded before the approvals the case needed, and
    /// they have not all been recorded since. Unlike the state, later events
    /// (a review, say) do not clear it: only the approvals do.
    #[serde(default)]
    pub awaiting_approval: bool,
    /// Whether the case was opened by an observed change no request
    /// sanctioned (its requester is the ledger, as `observer`).
    #[serde(default)]
    pub opened_by_observation: bool,
    /// The changes connectors observed for this case, in sequence order.
    #[serde(default)]
    pub observations: Vec<crate::observation::ObservationRecord>,
    /// When the access ended: the recorded revocation's time, or the end of
    /// time-bound access once the ledger recorded its revocation due.
    #[serde(default)]
    pub access_ended_at: Option<Timestamp>,
    /// A drill case (`custody drill`, recorded in its request): left out
    /// of listings, exports and metrics unless asked for.
    #[serde(default)]
    pub drill: bool,
    /// The findings the continuous monitor recorded in this case
    /// (`finding_raised`), so each is raised once.
    #[serde(default)]
    pub findings_raised: Vec<RaisedFinding>,
    /// When the request was recorded.
    pub opened_at: Timestamp,
    /// When the latest event was recorded.
    pub updated_at: Timestamp,
    /// Sequence number of the latest event.
    pub head_seq: u64,
    /// Hash of the latest event's canonical bytes.
    pub head_hash: Sha256Hash,
}

/// The prefix of every subject a drill's case changes (`custody drill`).
pub const DRILL_SUBJECT_PREFIX: &str = "drill-";
/// The prefix of every entitlement a drill's case changes.
pub const DRILL_ENTITLEMENT_PREFIX: &str = "drill:";

/// Whether `change` stays in the drills' namespace: a subject `drill-...`
/// and an entitlement `drill:...`, or, as a source names it, one whose name
/// after its kind is `drill-...` (an Okta `group:drill-...`). Only such a
/// change may be recorded as a drill's, so that marking a case as a drill
/// (which leaves it out of listings and exports) can never hide a real
/// access change.
pub fn is_drill_change(change: &crate::model::Change) -> bool {
    let entitlement = change.entitlement();
    change.subject().id.starts_with(DRILL_SUBJECT_PREFIX)
        && (entitlement.starts_with(DRILL_ENTITLEMENT_PREFIX)
            || entitlement
                .split_once(':')
                .is_some_and(|(_, name)| name.starts_with(DRILL_SUBJECT_PREFIX)))
}

/// A finding the monitor recorded in a case: what identifies it, so the
/// same finding is not raised twice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RaisedFinding {
    /// The finding's code.
    pub code: String,
    /// The event it pointed at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The log index it pointed at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
}

impl CaseState {
    /// The state's name as shown and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Open => "open",
            CaseState::Approved => "approved",
            CaseState::Denied => "denied",
            CaseState::Executed => "executed",
            CaseState::Reviewed => "reviewed",
            CaseState::Merged => "merged",
            CaseState::PendingReview => "pending_review",
            CaseState::ExecutedPendingApproval => "executed_pending_approval",
        }
    }

    /// Whether the change is still in flight: a second request for the same
    /// change would duplicate it.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            CaseState::Open
                | CaseState::Approved
                | CaseState::Executed
                | CaseState::PendingReview
                | CaseState::ExecutedPendingApproval
        )
    }
}

impl fmt::Display for CaseState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for CaseState {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "open" => Ok(CaseState::Open),
            "approved" => Ok(CaseState::Approved),
            "denied" => Ok(CaseState::Denied),
            "executed" => Ok(CaseState::Executed),
            "reviewed" => Ok(CaseState::Reviewed),
            "merged" => Ok(CaseState::Merged),
            "pending_review" => Ok(CaseState::PendingReview),
            "executed_pending_approval" => Ok(CaseState::ExecutedPendingApproval),
            _ => Err(format!(
                "`{text}` is not a case state (expected open, approved, denied, executed, pending_review, executed_pending_approval, reviewed or merged)"
            )),
        }
    }
}

impl Participation {
    /// The participation recorded by `event`.
    pub fn of(event: &Event) -> Participation {
        Participation {
            principal: event.actor.principal.clone(),
            kind: event.actor.kind,
            event_id: event.event_id.clone(),
            seq: event.seq,
            occurred_at: event.occurred_at,
        }
    }
}

impl CaseView {
    /// Starts a view from the case's first event; `None` when it is not a request.
    pub fn open(event: &Event) -> Option<CaseView> {
        CaseView::open_hashed(event, event.hash())
    }

    /// [`CaseView::open`] for a caller that already holds the hash of the
    /// event's canonical bytes.
    pub fn open_hashed(event: &Event, hash: Sha256Hash) -> Option<CaseView> {
        let EventBody::RequestCreated(request) = &event.body else {
            return None;
        };
        Some(CaseView {
            case_id: event.case_id.clone(),
            state: CaseState::Open,
            change: request.change.clone(),
            change_hash: request.change_hash,
            approvals_required: request.rule.approvals,
            rule: request.rule.clone(),
            justification: request.justification.clone(),
            ticket: request.ticket.clone(),
            requester: Participation::of(event),
            requester_org: event.actor.org.clone(),
            approvals: Vec::new(),
            denials: Vec::new(),
            executions: Vec::new(),
            reviews: Vec::new(),
            merged_into: None,
            duplicates: Vec::new(),
            break_glass_deadline: None,
            escalations: Vec::new(),
            review_due: None,
            expires_at: None,
            revocation_due: false,
            expiry_noticed: false,
            revoked: false,
            revocation_case: None,
            opened_by_review_of: None,
            applied: None,
            executed_at: None,
            execution_event: None,
            approved_after_execution: false,
            awaiting_approval: false,
            opened_by_observation: false,
            observations: Vec::new(),
            access_ended_at: None,
            drill: request.drill,
            findings_raised: Vec::new(),
            opened_at: event.recorded_at,
            updated_at: event.recorded_at,
            head_seq: event.seq,
            head_hash: hash,
        })
    }

    /// Folds a case's events, in sequence order, into its view.
    /// `None` when the first event is not a request.
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Option<CaseView> {
        let mut events = events.into_iter();
        let mut view = CaseView::open(events.next()?)?;
        for event in events {
            view.apply(event);
        }
        Some(view)
    }

    /// Applies one more event. Total: any event sequence gives some view.
    pub fn apply(&mut self, event: &Event) {
        self.apply_hashed(event, event.hash());
    }

    /// [`CaseView::apply`] for a caller that already holds the hash of the
    /// event's canonical bytes (the store computes it once per event).
    pub fn apply_hashed(&mut self, event: &Event, hash: Sha256Hash) {
        self.head_seq = event.seq;
        self.head_hash = hash;
        self.updated_at = event.recorded_at;
        let by = Participation::of(event);
        match &event.body {
            // A second request inside a case is an anomaly the audit reports;
            // the projection keeps the first.
            EventBody::RequestCreated(_)
            | EventBody::CommentAdded(_)
            | EventBody::TicketChanged(_) => {}
            // A case has one ticket: the first linked (or requested) stays;
            // a second is refused at write time and a finding after.
            EventBody::TicketLinked(linked) => {
                if self.ticket.is_none() {
                    self.ticket = Some(linked.ticket.clone());
                }
            }
            EventBody::ApprovalGranted(decision) => {
                let approver = decision
                    .chat
                    .as_ref()
                    .map(|chat| chat.approver.clone())
                    .unwrap_or_else(|| by.principal.clone());
                let attested = approver != by.principal;
                self.approvals.push(DecisionRecord {
                    by,
                    change_hash: decision.change_hash,
                    approver,
                    attested,
                    confirmed: false,
                    approver_groups: if attested {
                        Vec::new()
                    } else {
                        event.actor.groups.clone()
                    },
                });
                self.refresh_approval();
            }
            EventBody::ApprovalConfirmed(confirmation) => {
                if let Some(approval) = self.approvals.iter_mut().find(|approval| {
                    approval.by.event_id == confirmation.approval_event
                        && approval.approver == event.actor.principal
                }) {
                    approval.confirmed = true;
                    approval.approver_groups = event.actor.groups.clone();
                }
                self.refresh_approval();
            }
            EventBody::ApprovalDenied(decision) => {
                self.denials.push(DecisionRecord {
                    approver: by.principal.clone(),
                    by,
                    change_hash: decision.change_hash,
                    attested: false,
                    confirmed: false,
                    approver_groups: event.actor.groups.clone(),
                });
                if matches!(self.state, CaseState::Open | CaseState::Approved) {
                    self.state = CaseState::Denied;
                }
            }
            EventBody::ExecutionCompleted(execution) | EventBody::ExecutionFailed(execution) => {
                let completed = matches!(event.body, EventBody::ExecutionCompleted(_));
                if completed {
                    self.applied = execution.applied.clone();
                }
                self.executions.push(ExecutionRecord {
                    by,
                    completed,
                    change_set_hash: execution.change_set_hash,
                });
                if completed
                    && !matches!(
                        self.state,
                        CaseState::Reviewed
                            | CaseState::Merged
                            | CaseState::PendingReview
                            | CaseState::ExecutedPendingApproval
                    )
                {
                    if self.executed_at.is_none() {
                        self.executed_at = Some(event.occurred_at);
                        self.execution_event = Some(event.event_id.clone());
                    }
                    // Break-glass executes before any approval: the case then
                    // waits for its mandatory post-hoc review. An execution
                    // observed before its approval is recorded waits for it.
                    self.state = if self.break_glass_deadline.is_some()
                        && self.state != CaseState::Approved
                    {
                        CaseState::PendingReview
                    } else if self.state == CaseState::Open {
                        self.awaiting_approval = true;
                        CaseState::ExecutedPendingApproval
                    } else {
                        CaseState::Executed
                    };
                    // Obligations start with the execution: time-bound access
                    // ends `duration` after it took effect, and the review is
                    // due by the rule's deadline (24h for automation).
                    self.expires_at = self
                        .change
                        .duration_seconds()
                        .map(|seconds| event.occurred_at.plus_unsigned_seconds(seconds));
                    let review_seconds = self
                        .rule
                        .review_deadline_seconds
                        .or((event.actor.kind == PrincipalKind::Automation)
                            .then_some(crate::policy::DEFAULT_AUTOMATION_REVIEW_SECONDS));
                    if self.state == CaseState::Executed {
                        self.review_due = review_seconds
                            .map(|seconds| event.recorded_at.plus_unsigned_seconds(seconds));
                    }
                }
            }
            EventBody::ReviewCompleted(review) => {
                self.reviews.push(ReviewRecord {
                    by,
                    outcome: review.outcome,
                });
                if self.state != CaseState::Merged {
                    self.state = CaseState::Reviewed;
                }
            }
            EventBody::DuplicateMerged(link) => {
                self.merged_into = Some(link.other_case.clone());
                self.state = CaseState::Merged;
            }
            EventBody::DuplicateLinked(link) => self.duplicates.push(link.other_case.clone()),
            EventBody::BreakGlassInvoked(break_glass) => {
                self.break_glass_deadline = Some(break_glass.review_deadline);
            }
            EventBody::EscalationRaised(escalation) => {
                self.escalations.push(escalation.reason);
            }
            EventBody::RevocationDue(_) => {
                self.revocation_due = true;
                if self.access_ended_at.is_none() {
                    self.access_ended_at = self.expires_at.or(Some(event.occurred_at));
                }
            }
            EventBody::RevocationExecuted(_) => {
                self.revoked = true;
                let ended = self
                    .expires_at
                    .map_or(event.occurred_at, |expires| expires.min(event.occurred_at));
                self.access_ended_at = Some(self.access_ended_at.map_or(ended, |at| at.min(ended)));
            }
            EventBody::FindingRaised(raised) => {
                self.findings_raised.push(RaisedFinding {
                    code: raised.code.clone(),
                    event_id: raised.event_id.clone(),
                    log_index: raised.log_index,
                });
            }
            EventBody::ExecutionObserved(observed) => {
                // The first event after the request of a case an observation
                // opened: it waits for its post-hoc review, like break-glass.
                if let Some(deadline) = observed.review_deadline {
                    if self.head_seq == 2
                        && self.state == CaseState::Open
                        && self.requester.principal.as_str() == crate::model::SYSTEM_PRINCIPAL
                    {
                        self.opened_by_observation = true;
                        self.break_glass_deadline = Some(deadline);
                        self.state = CaseState::PendingReview;
                        self.applied = Some(observed.change.clone());
                        self.executed_at = Some(event.occurred_at);
                        self.execution_event = Some(event.event_id.clone());
                    }
                }
                self.observations
                    .push(crate::observation::ObservationRecord {
                        source: event.source.clone().unwrap_or_default(),
                        external_id: event.external_id.clone().unwrap_or_default(),
                        occurred_at: event.occurred_at,
                        change: observed.change.clone(),
                        actor: observed.actor.id.clone(),
                        principal: observed.actor.principal.clone(),
                        matched_by: observed.matched_by,
                    });
            }
            EventBody::RevocationOpened(link) => {
                self.revocation_case = Some(link.other_case.clone())
            }
            EventBody::OpenedByReview(link) => {
                self.opened_by_review_of = Some(link.other_case.clone())
            }
            // Never part of a request's case; the audit reports one that is.
            EventBody::PolicyAdopted(_) => {}
            // Administration events live in the administration record only.
            EventBody::PrincipalAdded(_)
            | EventBody::PrincipalGroupsChanged(_)
            | EventBody::TokenIssued(_)
            | EventBody::TokenRevoked(_)
            | EventBody::DelegationGranted(_)
            | EventBody::DelegationRevoked(_)
            | EventBody::IdentityMapped(_)
            | EventBody::IdentityUnmapped(_) => {}
            EventBody::NotificationAttempted(_)
            | EventBody::EvidenceAttached(_)
            | EventBody::EvidenceUnverified(_)
            | EventBody::EvidenceRechecked(_)
            | EventBody::EvidenceHeld(_)
            | EventBody::EvidenceJoined(_)
            | EventBody::EvidenceReleased(_) => {}
            EventBody::ExpiryApproaching(_) => self.expiry_noticed = true,
        }
    }

    fn refresh_approval(&mut self) {
        let satisfied = self.stages_complete(None);
        if self.state == CaseState::Open && satisfied {
            self.state = CaseState::Approved;
        }
        let awaited = self.awaiting_approval || self.state == CaseState::ExecutedPendingApproval;
        if awaited && satisfied {
            // The approvals arrived after the execution was recorded. Whether
            // that is a late record or a violation is a question about the
            // real world: did enough approvals *occur* before the execution?
            self.approved_after_execution = !self.stages_complete(self.executed_at);
            self.awaiting_approval = false;
            if self.state == CaseState::ExecutedPendingApproval {
                self.state = CaseState::Executed;
            }
        }
    }

    /// The progress of each approval stage of the case's rule (one stage for
    /// a rule without stages). Approvals count in sequence order, each for
    /// the first stage not yet complete, and only when the approver is in
    /// that stage's groups; an approver counts once. With `occurred_by`, only
    /// approvals that occurred by then count. Deterministic: it depends on
    /// the events alone.
    pub fn stage_progress(&self, occurred_by: Option<Timestamp>) -> Vec<StageProgress> {
        let stages = self.rule.stages();
        let mut progress: Vec<StageProgress> = stages
            .iter()
            .map(|stage| StageProgress {
                name: stage.name.clone(),
                required: stage.approvals,
                approver_groups: stage.approver_groups.clone(),
                approvers: Vec::new(),
            })
            .collect();
        let mut counted: Vec<&PrincipalId> = Vec::new();
        for approval in &self.approvals {
            if !self.approval_counts(approval)
                || counted.contains(&&approval.approver)
                || occurred_by.is_some_and(|by| approval.by.occurred_at > by)
            {
                continue;
            }
            let Some(current) = progress.iter_mut().find(|stage| !stage.is_complete()) else {
                break;
            };
            let qualifies = current.approver_groups.is_empty()
                || approval
                    .approver_groups
                    .iter()
                    .any(|group| current.approver_groups.contains(group));
            if qualifies {
                current.approvers.push(approval.approver.clone());
                counted.push(&approval.approver);
            }
        }
        progress
    }

    /// Whether every approval stage is complete (see [`CaseView::stage_progress`]).
    pub fn stages_complete(&self, occurred_by: Option<Timestamp>) -> bool {
        self.stage_progress(occurred_by)
            .iter()
            .all(StageProgress::is_complete)
    }

    /// Whether an approval counts: given by the approver, or attested from
    /// chat and then confirmed by them (or allowed unconfirmed by the rule).
    pub fn approval_counts(&self, approval: &DecisionRecord) -> bool {
        approval.change_hash == self.change_hash
            && (!approval.attested || approval.confirmed || self.rule.allow_attested_approvals)
    }

    /// Distinct principals whose approval covers the requested change and counts.
    pub fn distinct_approvers(&self) -> Vec<&PrincipalId> {
        let mut approvers: Vec<&PrincipalId> = self
            .approvals
            .iter()
            .filter(|approval| self.approval_counts(approval))
            .map(|approval| &approval.approver)
            .collect();
        approvers.sort();
        approvers.dedup();
        approvers
    }

    /// Principals who completed an execution.
    pub fn executors(&self) -> Vec<&PrincipalId> {
        let mut executors: Vec<&PrincipalId> = self
            .executions
            .iter()
            .filter(|execution| execution.completed)
            .map(|execution| &execution.by.principal)
            .collect();
        executors.sort();
        executors.dedup();
        executors
    }
}

/// The columns the store keeps beside a case's projection (its `cases`
/// row), as the writer fills them from the view: what listings, the
/// console, the timer and the write checks read without decoding the view.
/// One function makes them for the writer, the import and `verify`, which
/// compares the stored row with the row of the view the events rebuild.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseRow {
    /// `state`.
    pub state: &'static str,
    /// `change_key`: one active case per key ([`Change::key`]).
    pub change_key: String,
    /// `ticket`.
    pub ticket: Option<String>,
    /// `requester`: the requester's principal.
    pub requester: String,
    /// `summary`: the change, as listings show it.
    pub summary: String,
    /// `opened_at`.
    pub opened_at: String,
    /// `updated_at`.
    pub updated_at: String,
    /// `head_seq`.
    pub head_seq: u64,
    /// `head_hash` (hex).
    pub head_hash: String,
    /// `next_deadline`: the earliest obligation not acted on.
    pub next_deadline: Option<String>,
    /// `drill`.
    pub drill: bool,
}

impl CaseRow {
    /// The row the store writes for `view`.
    pub fn of(view: &CaseView) -> CaseRow {
        CaseRow {
            state: view.state.as_str(),
            change_key: view.change.key(),
            ticket: view.ticket.as_ref().map(ToString::to_string),
            requester: view.requester.principal.to_string(),
            summary: view.change.to_string(),
            opened_at: view.opened_at.to_string(),
            updated_at: view.updated_at.to_string(),
            head_seq: view.head_seq,
            head_hash: view.head_hash.to_hex(),
            next_deadline: view.next_deadline().map(|deadline| deadline.to_string()),
            drill: view.drill,
        }
    }
}
