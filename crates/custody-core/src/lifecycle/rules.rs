//! The rule table ([`judge`]) and the checks it is made of: what the write
//! path refuses ([`admit`]) and what the audit reports ([`violations`]).

use super::*;

/// One rule an event breaks, as the rule table reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    /// The rule's code, message and hint.
    pub refusal: Refusal,
    /// How bad it is when a stored event breaks it.
    pub severity: Severity,
    /// Whether the write path refuses an event that breaks it. A rule that
    /// does not refuse is recorded and reported (`review.change-mismatch`:
    /// the trail must say what was really applied).
    pub refuses: bool,
}

/// The write path's use of the rule table: the first rule `body` breaks
/// that refuses, as the refusal.
pub(super) fn admit(
    case: &CaseView,
    actor: &Actor,
    body: &EventBody,
    other: Option<&CaseView>,
) -> Result<(), Refusal> {
    match judge(case, actor, body, other)
        .into_iter()
        .find(|broken| broken.refuses)
    {
        Some(broken) => Err(broken.refusal),
        None => Ok(()),
    }
}

/// The rule table of the lifecycle: every rule an event with `body`, acted
/// by `actor`, breaks on `case` as it stood before the event. `other` is the
/// other case of a merge as it stood before it (the survivor for
/// `duplicate_merged`, the duplicate for `duplicate_linked`).
///
/// It is the one place the rules live. The write path runs it on the event
/// it is about to append and refuses with the first rule that refuses (the
/// step functions above); the audit runs it on every stored event and
/// reports every rule broken, with the same code, at that event
/// ([`violations`]). The order of the rules of a kind is the order in which
/// the write path reports them.
///
/// Two judgements are left to the end of the trail, by design: an execution
/// recorded while the case is still `open` (observed before its approval, a
/// late record) is judged once every approval is read
/// (`lifecycle.execution-without-approval`,
/// `lifecycle.approved-after-execution`), and an attested chat approval by
/// whether its approver ever confirmed it.
pub fn judge(
    case: &CaseView,
    actor: &Actor,
    body: &EventBody,
    other: Option<&CaseView>,
) -> Vec<Broken> {
    let mut broken = Vec::new();
    let mut refuse = |result: Result<(), Refusal>, severity: Severity| {
        if let Err(refusal) = result {
            broken.push(Broken {
                refusal,
                severity,
                refuses: true,
            });
        }
    };
    let state = |rule: Option<(Refusal, Severity)>| match rule {
        Some((refusal, severity)) => (Err(refusal), severity),
        None => (Ok(()), Severity::Info),
    };
    let principal = &actor.principal;
    match body {
        EventBody::RequestCreated(_) => refuse(
            Err(Refusal::new(
                Code::CaseSecondRequest,
                format!("case {} holds a second request event", case.case_id),
                "a case has exactly one request; investigate how this event was written",
            )),
            Severity::High,
        ),
        EventBody::ApprovalGranted(decision) => {
            let approver = decision
                .chat
                .as_ref()
                .map(|chat| &chat.approver)
                .unwrap_or(principal);
            let attested = approver != principal;
            let (result, severity) = state(decision_state(case, "approve"));
            refuse(result, severity);
            refuse(
                check_requester_cannot_approve(case, approver),
                Severity::Critical,
            );
            // An execution observed before its approval: its executor may
            // not become the only approver afterwards, the rule an execution
            // after the approval breaks.
            if case.executors().contains(&approver) {
                refuse(
                    check_approver_not_sole_executor(case, approver),
                    Severity::High,
                );
            }
            if case
                .approvals
                .iter()
                .any(|approval| &approval.approver == approver)
            {
                refuse(
                    Err(Refusal::new(
                        Code::ApprovalAlreadyApproved,
                        format!("{approver} has already approved case {}", case.case_id),
                        "each approver counts once; ask another approver if more approvals are needed",
                    )),
                    Severity::Low,
                );
            }
            if attested {
                // The requester may not put approvals in anyone's mouth.
                if &case.requester.principal == principal {
                    refuse(
                        Err(Refusal::new(
                            Code::SodRequesterCannotAttest,
                            format!(
                                "{principal} requested case {} and cannot record approvals for others",
                                case.case_id
                            ),
                            "ask the approver to approve with their own identity",
                        )),
                        Severity::High,
                    );
                }
            } else {
                refuse(check_approver_allowed(case, actor), Severity::High);
            }
            refuse(check_change_hash(case, decision), Severity::High);
        }
        EventBody::ApprovalDenied(decision) => {
            let (result, severity) = state(decision_state(case, "deny"));
            refuse(result, severity);
            if &case.requester.principal == principal {
                refuse(
                    Err(Refusal::new(
                        Code::SodRequesterCannotDeny,
                        format!(
                            "{principal} requested case {} and cannot also decide on it",
                            case.case_id
                        ),
                        "add a comment explaining that the request is withdrawn, or ask an approver to deny it",
                    )),
                    Severity::High,
                );
            }
            refuse(check_change_hash(case, decision), Severity::High);
        }
        EventBody::ApprovalConfirmed(confirmation) => {
            let pending = case.approvals.iter().any(|approval| {
                approval.by.event_id == confirmation.approval_event
                    && approval.attested
                    && !approval.confirmed
                    && &approval.approver == principal
            });
            if !pending {
                refuse(
                    Err(Refusal::new(
                        Code::ApprovalNothingToConfirm,
                        format!(
                            "case {} holds no unconfirmed approval {} recorded for {principal}",
                            case.case_id, confirmation.approval_event
                        ),
                        "`custody show CASE` lists approvals; only the named approver can confirm one",
                    )),
                    Severity::Medium,
                );
            }
            refuse(check_approver_allowed(case, actor), Severity::High);
        }
        EventBody::ExecutionCompleted(execution) | EventBody::ExecutionFailed(execution) => {
            let completed = matches!(body, EventBody::ExecutionCompleted(_));
            let (result, severity) = state(execution_state(case, completed));
            refuse(result, severity);
            let break_glass = completed
                && case.state == CaseState::Open
                && case.break_glass_deadline.is_some();
            if case.state == CaseState::Approved {
                refuse(
                    check_executor_not_sole_approver(case, principal),
                    Severity::High,
                );
            }
            // Break-glass is executed by whoever invoked it (judged at the
            // invocation); every other execution by an allowed executor.
            if !break_glass {
                refuse(check_executor_allowed(case, actor), Severity::High);
            }
            // What was applied is compared with what was approved on its
            // own: recorded, never refused, so it never hides another rule.
            if let Some(applied) = &execution.applied {
                if completed && applied.digest() != case.change_hash {
                    broken.push(Broken {
                        refusal: Refusal::new(
                            Code::ReviewChangeMismatch,
                            format!(
                                "case {} approved `{}` but the execution applied `{applied}`",
                                case.case_id, case.change
                            ),
                            "review the difference; revoke what was not approved",
                        ),
                        severity: Severity::High,
                        refuses: false,
                    });
                }
            }
        }
        EventBody::ReviewCompleted(_) => {
            let (result, severity) = state(review_state(case));
            refuse(result, severity);
            refuse(check_reviewer_independent(case, principal), Severity::High);
        }
        EventBody::DuplicateMerged(link) => {
            if link.other_case == case.case_id {
                refuse(
                    Err(Refusal::new(
                        Code::MergeSameCase,
                        format!("case {} cannot be merged into itself", case.case_id),
                        "name the duplicate first and the surviving case with --into",
                    )),
                    Severity::High,
                );
            }
            if case.state == CaseState::Merged {
                refuse(Err(case.merged_refusal("merge")), Severity::High);
            }
            if let Some(survivor) = other.filter(|survivor| survivor.state == CaseState::Merged) {
                refuse(Err(survivor.merged_refusal("merge")), Severity::High);
            }
            if !case.executors().is_empty() {
                refuse(
                    Err(Refusal::new(
                        Code::MergeDuplicateExecuted,
                        format!(
                            "case {} has a recorded execution; merging it away would hide that execution",
                            case.case_id
                        ),
                        "merge the other case into this one instead (swap the arguments)",
                    )),
                    Severity::High,
                );
            }
            refuse(check_may_merge(case, other, actor), Severity::High);
        }
        EventBody::TicketLinked(linked) => {
            if let Some(ticket) = case.ticket.as_ref().filter(|ticket| **ticket != linked.ticket) {
                refuse(
                    Err(Refusal::new(
                        Code::TicketAlreadyLinked,
                        format!(
                            "case {} already carries ticket {ticket}; {} cannot be linked to it too",
                            case.case_id, linked.ticket
                        ),
                        "a case carries one ticket: record the other ticket's number in a comment, or merge its case into this one",
                    )),
                    Severity::Medium,
                );
            }
            if case.state == CaseState::Merged {
                refuse(Err(case.merged_refusal("link a ticket to")), Severity::Medium);
            }
        }
        EventBody::DuplicateLinked(_) => {
            if case.state == CaseState::Merged {
                refuse(Err(case.merged_refusal("merge")), Severity::High);
            }
        }
        EventBody::EvidenceAttached(_)
        | EventBody::EvidenceUnverified(_)
        | EventBody::EvidenceRechecked(_) => {
            if case.state == CaseState::Merged {
                refuse(
                    Err(case.merged_refusal("attach evidence to")),
                    Severity::Medium,
                );
            }
        }
        EventBody::RevocationExecuted(_) => {
            if case.expires_at.is_none() {
                refuse(
                    Err(Refusal::new(
                        Code::LifecycleNotTimeBound,
                        format!(
                            "case {} grants no time-bound access that has been executed; there is nothing to revoke on expiry",
                            case.case_id
                        ),
                        "to take other access away, request a change with --change revoke",
                    )),
                    Severity::Medium,
                );
            } else if case.revoked {
                refuse(
                    Err(Refusal::new(
                        Code::LifecycleAlreadyRevoked,
                        format!(
                            "the access of case {} has already been revoked",
                            case.case_id
                        ),
                        "nothing more to do",
                    )),
                    Severity::Low,
                );
            }
            refuse(check_executor_allowed(case, actor), Severity::High);
        }
        EventBody::BreakGlassInvoked(_) => {
            // Break-glass opens its case: request, invocation and execution
            // are written together, by one actor, before anything else.
            if case.head_seq != 1 || &case.requester.principal != principal {
                refuse(
                    Err(Refusal::new(
                        Code::LifecycleBreakGlassMisplaced,
                        format!(
                            "case {} records a break-glass invocation by {principal} after its request was already underway (seq {}); break-glass opens a case of its own",
                            case.case_id,
                            case.head_seq + 1
                        ),
                        "investigate how this event was written; judge any execution after it as unapproved",
                    )),
                    Severity::Critical,
                );
            }
            if !case.rule.break_glass {
                refuse(
                    Err(Refusal::new(
                        Code::PolicyBreakGlassNotAllowed,
                        format!(
                            "case {} was opened under break-glass, which its rule `{}` does not allow",
                            case.case_id, case.rule.name
                        ),
                        "review the change now and revoke it if it was not legitimate",
                    )),
                    Severity::Critical,
                );
            }
        }
        EventBody::ExecutionObserved(observed) => {
            // Observations are the ledger's record of what a connector saw:
            // no principal writes one through the API.
            refuse(check_system_actor(case, actor, body), Severity::High);
            if case.state == CaseState::Merged {
                refuse(Err(case.merged_refusal("observe")), Severity::Medium);
            }
            if observed.review_deadline.is_some()
                && (case.head_seq != 1 || case.requester.principal.as_str() != crate::model::SYSTEM_PRINCIPAL)
            {
                refuse(
                    Err(Refusal::new(
                        Code::ChangeUnsanctionedMisplaced,
                        format!(
                            "case {} holds an observation that claims to have opened it, but it is not the case's first step after a request by the ledger",
                            case.case_id
                        ),
                        "investigate how this event was written",
                    )),
                    Severity::High,
                );
            }
        }
        EventBody::EscalationRaised(_)
        | EventBody::RevocationDue(_)
        | EventBody::ExpiryApproaching(_)
        | EventBody::NotificationAttempted(_)
        | EventBody::FindingRaised(_) => {
            refuse(check_system_actor(case, actor, body), Severity::High);
        }
        EventBody::PrincipalAdded(_)
        | EventBody::PrincipalGroupsChanged(_)
        | EventBody::TokenIssued(_)
        | EventBody::TokenRevoked(_)
        | EventBody::DelegationGranted(_)
        | EventBody::DelegationRevoked(_)
        | EventBody::IdentityMapped(_)
        | EventBody::IdentityUnmapped(_) => refuse(
            Err(Refusal::new(
                Code::AdminRecordMisplaced,
                format!(
                    "case {} holds a {} event, which belongs only in the deployment's administration record",
                    case.case_id,
                    body.kind_name()
                ),
                "investigate how this event was written",
            )),
            Severity::High,
        ),
        EventBody::PolicyAdopted(_) => refuse(
            Err(Refusal::new(
                Code::PolicyRecordMisplaced,
                format!(
                    "case {} holds a policy_adopted event, which belongs only in the deployment's policy record",
                    case.case_id
                ),
                "investigate how this event was written",
            )),
            Severity::High,
        ),
        // Written by the store itself, each beside its partner event (the
        // audit checks the pairs), or anyone's to write (comments).
        EventBody::CommentAdded(_)
        | EventBody::TicketChanged(_)
        | EventBody::RevocationOpened(_)
        | EventBody::OpenedByReview(_)
        | EventBody::EvidenceHeld(_)
        | EventBody::EvidenceJoined(_)
        | EventBody::EvidenceReleased(_) => {}
    }
    broken
}

/// The rules a request breaks: the first event of a case, judged without a
/// case before it.
pub fn judge_request(event: &Event) -> Vec<Broken> {
    match &event.body {
        EventBody::RequestCreated(request) => check_duration(&request.change, &request.rule)
            .err()
            .map(|refusal| Broken {
                refusal,
                severity: Severity::High,
                refuses: true,
            })
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// The rules an already-stored event breaks, given the case as it stood
/// before the event: the rule table ([`judge`]), as the audit reports it.
pub fn violations(case_before: &CaseView, event: &Event) -> Vec<(Refusal, Severity)> {
    violations_with(case_before, event, None)
}

/// [`violations`] with the other case of a merge as it stood before the
/// event (see [`judge`]).
pub fn violations_with(
    case_before: &CaseView,
    event: &Event,
    other: Option<&CaseView>,
) -> Vec<(Refusal, Severity)> {
    judge(case_before, &event.actor, &event.body, other)
        .into_iter()
        .map(|broken| (broken.refusal, broken.severity))
        .collect()
}

/// Whether the case's state allows an execution (`completed`: a completed
/// one, else a failed attempt). `None` also for a completed execution of an
/// `open` case: an execution observed before its approval, or break-glass,
/// judged at the end of the trail and at the invocation.
pub(super) fn execution_state(case: &CaseView, completed: bool) -> Option<(Refusal, Severity)> {
    match case.state {
        CaseState::Approved => None,
        CaseState::Open if completed => None,
        CaseState::Open => Some((
            Refusal::new(
                Code::LifecycleNotApproved,
                format!(
                    "case {} is not approved, so it cannot be executed: {}",
                    case.case_id,
                    case.stage_progress(None)
                        .iter()
                        .map(|stage| format!(
                            "stage `{}` has {} of {} approvals",
                            stage.name,
                            stage.approvers.len(),
                            stage.required
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                "wait for an approver to run `custody approve`",
            ),
            Severity::Medium,
        )),
        CaseState::Denied => Some((
            Refusal::new(
                Code::LifecycleCaseDenied,
                format!("case {} was denied, so it cannot be executed", case.case_id),
                "open a new request if the change is still needed",
            ),
            Severity::Critical,
        )),
        CaseState::Executed
        | CaseState::Reviewed
        | CaseState::PendingReview
        | CaseState::ExecutedPendingApproval => Some((
            Refusal::new(
                Code::LifecycleAlreadyExecuted,
                format!("case {} has already been executed", case.case_id),
                "record a follow-up change as a new request",
            ),
            Severity::High,
        )),
        CaseState::Merged => Some((case.merged_refusal("execute"), Severity::Critical)),
    }
}

/// Whether the case's state allows a review.
pub(super) fn review_state(case: &CaseView) -> Option<(Refusal, Severity)> {
    match case.state {
        CaseState::Executed | CaseState::PendingReview => None,
        CaseState::Reviewed => Some((
            Refusal::new(
                Code::LifecycleAlreadyReviewed,
                format!("case {} has already been reviewed", case.case_id),
                "add a comment to record further observations",
            ),
            Severity::Medium,
        )),
        CaseState::Merged => Some((case.merged_refusal("review"), Severity::High)),
        CaseState::ExecutedPendingApproval => Some((
            Refusal::new(
                Code::LifecycleApprovalNotRecorded,
                format!(
                    "case {} was executed but its approval is not recorded yet; a review compares an execution with its approval",
                    case.case_id
                ),
                "record the approval (with --occurred-at when it was given earlier), then review",
            ),
            Severity::High,
        )),
        CaseState::Open | CaseState::Approved | CaseState::Denied => Some((
            Refusal::new(
                Code::LifecycleNotExecuted,
                format!(
                    "case {} is {} and has no completed execution to review",
                    case.case_id, case.state
                ),
                "a review compares what was approved with what was executed; wait for `custody execute`",
            ),
            Severity::High,
        )),
    }
}

/// Whether the case's state allows a decision (approval or denial).
fn decision_state(case: &CaseView, verb: &str) -> Option<(Refusal, Severity)> {
    match case.state {
        // A late approval may still arrive for an execution observed first.
        CaseState::Open | CaseState::Approved | CaseState::ExecutedPendingApproval => None,
        CaseState::Denied => Some((
            Refusal::new(
                Code::LifecycleCaseDenied,
                format!(
                    "case {} was denied; there is nothing left to {verb}",
                    case.case_id
                ),
                "open a new request if the change is still needed",
            ),
            Severity::Medium,
        )),
        CaseState::Executed | CaseState::Reviewed | CaseState::PendingReview => Some((
            Refusal::new(
                Code::LifecycleAlreadyExecuted,
                format!(
                    "case {} has already been executed; it is too late to {verb} it",
                    case.case_id
                ),
                "record your view with `custody comment` or in the review",
            ),
            Severity::Medium,
        )),
        CaseState::Merged => Some((case.merged_refusal(verb), Severity::High)),
    }
}

fn check_change_hash(case: &CaseView, decision: &Decision) -> Result<(), Refusal> {
    if decision.change_hash != case.change_hash {
        return Err(Refusal::new(
            Code::ApprovalChangeMismatch,
            format!(
                "the decision covers change {} but case {} requested change {}",
                decision.change_hash, case.case_id, case.change_hash
            ),
            "the approval does not cover what was requested; `custody show CASE` prints the change hash to approve",
        ));
    }
    Ok(())
}

/// Who may merge: the requester of the duplicate (the case merged away and
/// closed), an admin (a member of [`ADMINS_GROUP`]), or a principal in the
/// approver groups of the surviving case's rule. The requester of only the
/// survivor may not: anyone can open a case of their own, and merging
/// someone else's request into it would close that request. A rule without
/// approver groups names no approvers beyond "anyone but the requester",
/// which would let anyone close anyone's request; so under it only the
/// duplicate's requester and admins merge. Judged from the groups recorded
/// in the actor, so `verify` re-checks it.
fn check_may_merge(
    duplicate: &CaseView,
    survivor: Option<&CaseView>,
    actor: &Actor,
) -> Result<(), Refusal> {
    let principal = &actor.principal;
    // A drill's case and a real one never merge: the merge would hide the
    // real request with the drill's, or show the drill as real.
    if let Some(survivor) = survivor.filter(|survivor| survivor.drill != duplicate.drill) {
        return Err(Refusal::new(
            Code::MergeNotAllowed,
            format!(
                "case {} is {} and case {} is {}: a drill's case and a real one are never merged",
                duplicate.case_id,
                if duplicate.drill { "a drill's" } else { "real" },
                survivor.case_id,
                if survivor.drill { "a drill's" } else { "real" },
            ),
            "merge real cases with real cases; drill cases are closed by the drill itself",
        ));
    }
    let requester = &duplicate.requester.principal == principal;
    let admin = actor.groups.iter().any(|group| group == ADMINS_GROUP);
    let approver = survivor.is_some_and(|survivor| {
        survivor.rule.stages().iter().any(|stage| {
            stage
                .approver_groups
                .iter()
                .any(|group| actor.groups.contains(group))
        })
    });
    if requester || admin || approver {
        return Ok(());
    }
    let survivor_id = survivor
        .map(|survivor| survivor.case_id.to_string())
        .unwrap_or_else(|| "the surviving case".to_string());
    Err(Refusal::new(
        Code::MergeNotAllowed,
        format!(
            "{principal} may not merge case {} into {survivor_id}: a merge closes a request, so only the requester of the duplicate, an approver of the surviving case's rule or an admin may merge",
            duplicate.case_id
        ),
        "ask the requester of the case merged away, or an admin, to merge them",
    ))
}

/// The ledger's own events (escalations, revocations due, expiry notices,
/// delivery attempts) are written only by its `system` actor.
fn check_system_actor(case: &CaseView, actor: &Actor, body: &EventBody) -> Result<(), Refusal> {
    if actor.principal.as_str() == crate::model::SYSTEM_PRINCIPAL {
        return Ok(());
    }
    Err(Refusal::new(
        Code::LifecycleSystemEventForged,
        format!(
            "{} recorded a {} event in case {}; only the ledger's own `system` actor records those",
            actor.principal,
            body.kind_name(),
            case.case_id
        ),
        "investigate how this event was written",
    ))
}

pub(super) fn check_duration(change: &Change, rule: &AppliedRule) -> Result<(), Refusal> {
    let Some(max) = rule.max_duration_seconds else {
        return Ok(());
    };
    match change.duration_seconds() {
        None => Err(Refusal::new(
            Code::PolicyDurationRequired,
            format!(
                "policy rule `{}` grants this access only for a limited time, at most {}",
                rule.name,
                crate::model::format_duration(max)
            ),
            "request it again with --duration",
        )),
        Some(seconds) if seconds > max => Err(Refusal::new(
            Code::PolicyDurationTooLong,
            format!(
                "policy rule `{}` allows at most {}, not {}",
                rule.name,
                crate::model::format_duration(max),
                crate::model::format_duration(seconds)
            ),
            "request a shorter --duration",
        )),
        Some(_) => Ok(()),
    }
}

fn check_approver_allowed(case: &CaseView, actor: &Actor) -> Result<(), Refusal> {
    let rule = &case.rule;
    let progress = case.stage_progress(None);
    // The stage this approval would count for: the first not yet complete.
    // (Once every stage is complete, further approvals change nothing.)
    if let Some(stage) = progress.iter().find(|stage| !stage.is_complete()) {
        let in_stage = stage.approver_groups.is_empty()
            || actor
                .groups
                .iter()
                .any(|group| stage.approver_groups.contains(group));
        if !in_stage && progress.len() == 1 {
            return Err(Refusal::new(
                Code::PolicyApproverNotInGroup,
                format!(
                    "policy rule `{}` of case {} needs approvers from {}; {} is in none of them",
                    rule.name,
                    case.case_id,
                    stage.approver_groups.join(", "),
                    actor.principal
                ),
                "ask a member of one of those groups to approve",
            ));
        }
        if !in_stage {
            let later = progress
                .iter()
                .skip_while(|other| other.name != stage.name)
                .skip(1)
                .any(|other| {
                    other.approver_groups.is_empty()
                        || actor
                            .groups
                            .iter()
                            .any(|group| other.approver_groups.contains(group))
                });
            return Err(Refusal::new(
                Code::PolicyApproverNotInStage,
                format!(
                    "case {} is in approval stage `{}` of policy rule `{}`, which needs {} more approval(s) from {}; {} is in none of those groups{}",
                    case.case_id,
                    stage.name,
                    rule.name,
                    stage.required as usize - stage.approvers.len(),
                    stage.approver_groups.join(", "),
                    actor.principal,
                    if later { " (their approval belongs to a later stage)" } else { "" }
                ),
                "stages are approved in order: ask a member of the current stage's groups to approve first",
            ));
        }
    }
    if rule.approver_not_in_requester_org {
        // Unknown organisations cannot be shown to differ, so they do not pass.
        let same_or_unknown = match (&case.requester_org, &actor.org) {
            (Some(requester), Some(approver)) => requester == approver,
            _ => true,
        };
        if same_or_unknown {
            return Err(Refusal::new(
                Code::SodApproverSameOrg,
                format!(
                    "policy rule `{}` of case {} needs an approver outside the requester's organisation ({}); {} is in {}",
                    rule.name,
                    case.case_id,
                    case.requester_org.as_deref().unwrap_or("unknown"),
                    actor.principal,
                    actor.org.as_deref().unwrap_or("no recorded organisation")
                ),
                "ask an approver from another organisation",
            ));
        }
    }
    Ok(())
}

fn check_executor_allowed(case: &CaseView, actor: &Actor) -> Result<(), Refusal> {
    let rule = &case.rule;
    let group_ok = rule.executor_groups.is_empty()
        || actor
            .groups
            .iter()
            .any(|group| rule.executor_groups.contains(group));
    let kind_ok = rule.executor_kinds.is_empty() || rule.executor_kinds.contains(&actor.kind);
    if group_ok && kind_ok {
        return Ok(());
    }
    let mut needed = Vec::new();
    if !rule.executor_groups.is_empty() {
        needed.push(format!("a member of {}", rule.executor_groups.join(" or ")));
    }
    if !rule.executor_kinds.is_empty() {
        let kinds: Vec<&str> = rule
            .executor_kinds
            .iter()
            .map(|kind| kind.as_str())
            .collect();
        needed.push(format!("a principal of kind {}", kinds.join(" or ")));
    }
    Err(Refusal::new(
        Code::PolicyExecutorNotAllowed,
        format!(
            "policy rule `{}` of case {} lets only {} execute; {} ({}) may not",
            rule.name,
            case.case_id,
            needed.join(" and "),
            actor.principal,
            actor.kind.as_str()
        ),
        "ask an allowed executor to record the execution",
    ))
}

fn check_requester_cannot_approve(case: &CaseView, principal: &PrincipalId) -> Result<(), Refusal> {
    if &case.requester.principal == principal {
        return Err(Refusal::new(
            Code::SodRequesterCannotApprove,
            format!(
                "{principal} requested case {} and cannot approve it (separation of duties)",
                case.case_id
            ),
            "ask another principal to approve",
        ));
    }
    Ok(())
}

fn check_executor_not_sole_approver(
    case: &CaseView,
    principal: &PrincipalId,
) -> Result<(), Refusal> {
    let approvers = case.distinct_approvers();
    if !approvers.is_empty() && approvers.iter().all(|approver| *approver == principal) {
        return Err(Refusal::new(
            Code::SodExecutorSoleApprover,
            format!(
                "{principal} is the only approver of case {} and cannot also execute it (separation of duties)",
                case.case_id
            ),
            "ask another principal to execute, or obtain another approval first",
        ));
    }
    Ok(())
}

/// [`check_executor_not_sole_approver`] from the other side: `principal`,
/// who executed the case, approves it, and would be its only approver.
fn check_approver_not_sole_executor(
    case: &CaseView,
    principal: &PrincipalId,
) -> Result<(), Refusal> {
    if case
        .distinct_approvers()
        .iter()
        .all(|approver| *approver == principal)
    {
        return Err(Refusal::new(
            Code::SodExecutorSoleApprover,
            format!(
                "{principal} executed case {} and cannot also be its only approver (separation of duties)",
                case.case_id
            ),
            "ask another principal to approve",
        ));
    }
    Ok(())
}

fn check_reviewer_independent(case: &CaseView, principal: &PrincipalId) -> Result<(), Refusal> {
    if &case.requester.principal == principal {
        return Err(Refusal::new(
            Code::SodReviewerIsRequester,
            format!(
                "{principal} requested case {} and cannot review it (separation of duties)",
                case.case_id
            ),
            "ask a principal who neither requested nor executed the change to review it",
        ));
    }
    if case.executors().contains(&principal) {
        return Err(Refusal::new(
            Code::SodReviewerIsExecutor,
            format!(
                "{principal} executed case {} and cannot review it (separation of duties)",
                case.case_id
            ),
            "ask a principal who neither requested nor executed the change to review it",
        ));
    }
    Ok(())
}
