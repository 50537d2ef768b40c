//! The steps: each builds the event it would append ([`Draft`]) and refuses
//! with the first rule of the table ([`super::judge`]) that event breaks.

use super::*;

use super::rules::{admit, check_duration};

/// Opens a case: the first event of every case.
pub fn request(
    change: Change,
    justification: Option<String>,
    ticket: Option<Ticket>,
    rule: &AppliedRule,
) -> Result<Draft, Refusal> {
    check_duration(&change, rule)?;
    let change_hash = change.digest();
    Ok(Draft {
        body: EventBody::RequestCreated(RequestCreated {
            change,
            change_hash,
            rule: rule.clone(),
            justification,
            ticket,
            drill: false,
        }),
        role: Role::Requester,
        causation: None,
    })
}

/// Approves the case's requested change.
pub fn approve(case: &CaseView, actor: &Actor, comment: Option<String>) -> Result<Draft, Refusal> {
    approve_with(case, actor, comment, None)
}

/// Approves, possibly formalising an approval given in chat. When the chat
/// approver is not the actor, the actor attests to someone else's approval:
/// it is recorded, shown as unconfirmed, and counts only once the approver
/// confirms it ([`confirm_approval`]) or the rule allows attested approvals.
pub fn approve_with(
    case: &CaseView,
    actor: &Actor,
    comment: Option<String>,
    chat: Option<ChatApproval>,
) -> Result<Draft, Refusal> {
    approve_binding(case, actor, comment, chat, case.change_hash)
}

/// [`approve_with`] for an approver who binds the approval to the change
/// hash they saw (`custody show` prints it): when the case requested another
/// change, the approval is refused (`approval.change-mismatch`), so an
/// approval never covers a change its approver did not see.
pub fn approve_binding(
    case: &CaseView,
    actor: &Actor,
    comment: Option<String>,
    chat: Option<ChatApproval>,
    change_hash: Sha256Hash,
) -> Result<Draft, Refusal> {
    let attested = chat
        .as_ref()
        .is_some_and(|chat| chat.approver != actor.principal);
    let body = EventBody::ApprovalGranted(Decision {
        change_hash,
        comment,
        chat,
    });
    admit(case, actor, &body, None)?;
    Ok(Draft {
        body,
        role: if attested {
            Role::Observer
        } else {
            Role::Approver
        },
        causation: Some(case.requester.event_id.clone()),
    })
}

/// The approver confirms, with their own identity, an approval someone else
/// recorded for them from chat.
pub fn confirm_approval(
    case: &CaseView,
    actor: &Actor,
    approval_event: &EventId,
) -> Result<Draft, Refusal> {
    let body = EventBody::ApprovalConfirmed(Confirmation {
        approval_event: approval_event.clone(),
    });
    admit(case, actor, &body, None)?;
    Ok(Draft {
        body,
        role: Role::Approver,
        causation: Some(approval_event.clone()),
    })
}

/// Denies the case's requested change.
pub fn deny(case: &CaseView, actor: &Actor, comment: Option<String>) -> Result<Draft, Refusal> {
    let body = EventBody::ApprovalDenied(Decision {
        change_hash: case.change_hash,
        comment,
        chat: None,
    });
    admit(case, actor, &body, None)?;
    Ok(Draft {
        body,
        role: Role::Approver,
        causation: Some(case.requester.event_id.clone()),
    })
}

/// Records the execution of an approved case, with the change set actually applied.
///
/// `applied` is the change actually applied when it differs from the approved
/// one (`None`: exactly the approved change). A difference is recorded, never
/// refused (the trail must say what happened), and `verify` reports it as
/// `review.change-mismatch` whatever the reviewer says.
pub fn execute(
    case: ApprovedCase<'_>,
    actor: &Actor,
    change_set: Option<ChangeSet>,
    comment: Option<String>,
    completed: bool,
    applied: Option<Change>,
) -> Result<Draft, Refusal> {
    let change_set_hash = change_set.as_ref().map(ChangeSet::hash);
    let change_set = change_set.map(ChangeSet::into_value);
    let execution = Execution {
        change_set,
        change_set_hash,
        comment,
        applied: completed.then(|| applied.unwrap_or_else(|| case.case.change.clone())),
    };
    let body = if completed {
        EventBody::ExecutionCompleted(execution)
    } else {
        EventBody::ExecutionFailed(execution)
    };
    admit(case.case, actor, &body, None)?;
    Ok(Draft {
        body,
        role: Role::Executor,
        causation: Some(
            case.case
                .approvals
                .last()
                .map(|approval| approval.by.event_id.clone())
                .unwrap_or_else(|| case.case.requester.event_id.clone()),
        ),
    })
}

/// Records an execution that was observed before its approval is recorded
/// (a connector or another region reporting a change already made). The case
/// shows as `executed_pending_approval` until the approval arrives; `verify`
/// then judges by when things *occurred*: an approval given before the
/// execution is a late record, one given after it is a violation.
pub fn execute_observed(
    case: &CaseView,
    actor: &Actor,
    change_set: Option<ChangeSet>,
    comment: Option<String>,
    applied: Option<Change>,
) -> Result<Draft, Refusal> {
    let change_set_hash = change_set.as_ref().map(ChangeSet::hash);
    let change_set = change_set.map(ChangeSet::into_value);
    let body = EventBody::ExecutionCompleted(Execution {
        change_set,
        change_set_hash,
        comment,
        applied: Some(applied.unwrap_or_else(|| case.change.clone())),
    });
    // The table first: whatever it refuses, it refuses with the code the
    // audit reports. What is left is a question of which command to use:
    // the same event on an approved case is an ordinary execution.
    admit(case, actor, &body, None)?;
    if case.state != CaseState::Open {
        return Err(Refusal::new(
            Code::LifecycleNotOpen,
            format!(
                "case {} is {}; an observed execution is recorded only while its approval is still missing",
                case.case_id, case.state
            ),
            "record an ordinary execution with `custody execute`",
        ));
    }
    Ok(Draft {
        body,
        role: Role::Executor,
        causation: None,
    })
}

/// Records the post-change review of an executed case.
pub fn review(
    case: ExecutedCase<'_>,
    actor: &Actor,
    outcome: ReviewOutcome,
    comment: Option<String>,
) -> Result<Draft, Refusal> {
    let body = EventBody::ReviewCompleted(Review { outcome, comment });
    admit(case.case, actor, &body, None)?;
    Ok(Draft {
        body,
        role: Role::Reviewer,
        causation: case
            .case
            .executions
            .iter()
            .rev()
            .find(|execution| execution.completed)
            .map(|execution| execution.by.event_id.clone()),
    })
}

/// Merges `duplicate` into `survivor`: two records of one change (two
/// tickets for one request, worded differently by two systems). Whether they
/// are one change is the merging principal's judgement, recorded with their
/// reason; both requests stay in the trail. Nothing is deleted: the duplicate gets a
/// `duplicate_merged` event naming the survivor and is closed, the survivor a
/// `duplicate_linked` event naming the duplicate. Returns the two drafts, for
/// the duplicate and for the survivor, to be written in one transaction.
pub fn merge(
    duplicate: &CaseView,
    survivor: &CaseView,
    actor: &Actor,
    comment: Option<String>,
) -> Result<(Draft, Draft), Refusal> {
    let merged = EventBody::DuplicateMerged(MergeLink {
        other_case: survivor.case_id.clone(),
        comment: comment.clone(),
    });
    admit(duplicate, actor, &merged, Some(survivor))?;
    let linked = EventBody::DuplicateLinked(MergeLink {
        other_case: duplicate.case_id.clone(),
        comment,
    });
    admit(survivor, actor, &linked, Some(duplicate))?;
    let into_duplicate = Draft {
        body: merged,
        role: duplicate.role_of(&actor.principal),
        causation: Some(survivor.requester.event_id.clone()),
    };
    let into_survivor = Draft {
        body: linked,
        role: survivor.role_of(&actor.principal),
        causation: Some(duplicate.requester.event_id.clone()),
    };
    Ok((into_duplicate, into_survivor))
}

/// The group whose members may merge any two cases (the server's
/// administrators, as recorded in the actor of the merge).
pub const ADMINS_GROUP: &str = "admins";

/// Break-glass: the change was (or is being) made in an emergency, before any
/// approval. Returns the three drafts of the new case, written together: the
/// request, the break-glass invocation with its post-hoc review deadline, and
/// the execution. The case then waits in `pending_review`; a principal other
/// than the actor must review it by the deadline, or the ledger escalates.
pub fn break_glass(
    change: Change,
    justification: String,
    ticket: Option<Ticket>,
    rule: &AppliedRule,
    change_set: Option<ChangeSet>,
    now: Timestamp,
) -> Result<[Draft; 3], Refusal> {
    if !rule.break_glass {
        return Err(Refusal::new(
            Code::PolicyBreakGlassNotAllowed,
            format!(
                "policy rule `{}` does not allow break-glass for {change}",
                rule.name
            ),
            "request the change and wait for its approvals",
        ));
    }
    let request = request(change.clone(), Some(justification.clone()), ticket, rule)?;
    let invoked = Draft {
        body: EventBody::BreakGlassInvoked(BreakGlass {
            justification,
            review_deadline: now.plus_unsigned_seconds(rule.post_hoc_review_seconds),
        }),
        role: Role::Executor,
        causation: None,
    };
    let change_set_hash = change_set.as_ref().map(ChangeSet::hash);
    let change_set = change_set.map(ChangeSet::into_value);
    let execution = Draft {
        body: EventBody::ExecutionCompleted(Execution {
            change_set,
            change_set_hash,
            comment: Some("executed under break-glass, before approval".to_string()),
            applied: Some(change),
        }),
        role: Role::Executor,
        causation: None,
    };
    Ok([request, invoked, execution])
}

/// The ledger acts on a deadline that passed (acted by [`Actor::system`]):
/// for time-bound access it records that the revocation is due, or the
/// notice before it ends; for every other obligation it raises an
/// escalation.
pub fn escalate(obligation: Obligation, deadline: Timestamp) -> Draft {
    let escalation = |reason| {
        EventBody::EscalationRaised(Escalation {
            reason,
            deadline,
            delivery_id: None,
        })
    };
    let body = match obligation {
        Obligation::Revocation => EventBody::RevocationDue(RevocationDue {
            expired_at: deadline,
        }),
        Obligation::ExpiryNotice => EventBody::ExpiryApproaching(crate::event::ExpiryApproaching {
            expires_at: deadline.plus_seconds(EXPIRY_NOTICE_SECONDS),
        }),
        Obligation::BreakGlassReview => escalation(EscalationReason::BreakGlassReviewOverdue),
        Obligation::Review => escalation(EscalationReason::ReviewOverdue),
        Obligation::Approval => escalation(EscalationReason::ApprovalOverdue),
    };
    Draft {
        body,
        role: Role::System,
        causation: None,
    }
}

/// [`escalate`] on behalf of `actor`, through the rule table: only the
/// ledger's own `system` actor records escalations.
pub fn escalate_as(
    case: &CaseView,
    actor: &Actor,
    obligation: Obligation,
    deadline: Timestamp,
) -> Result<Draft, Refusal> {
    let draft = escalate(obligation, deadline);
    admit(case, actor, &draft.body, None)?;
    Ok(draft)
}

/// The continuous monitor records a finding in the case it concerns
/// (acted by [`Actor::system`], through the rule table: only the ledger's
/// own `system` actor records findings).
pub fn raise_finding_as(
    case: &CaseView,
    actor: &Actor,
    finding: crate::event::FindingRaised,
) -> Result<Draft, Refusal> {
    let body = EventBody::FindingRaised(finding);
    admit(case, actor, &body, None)?;
    Ok(Draft {
        body,
        role: Role::System,
        causation: None,
    })
}

/// Records that `policy` governs new cases from now on (acted by
/// [`Actor::system`], in the deployment's policy record); `previous` is the
/// hash of the policy recorded before it.
pub fn adopt_policy(
    policy: &crate::policy::Policy,
    previous: Option<Sha256Hash>,
    source: &str,
) -> Draft {
    Draft {
        body: EventBody::PolicyAdopted(crate::event::PolicyAdopted {
            policy_hash: policy.hash(),
            // Safe: a policy holds only strings, integers and booleans.
            policy: serde_json::to_value(policy).expect("a policy encodes as JSON"),
            previous_hash: previous,
            source: source.to_string(),
        }),
        role: Role::System,
        causation: None,
    }
}

/// Records evidence (an upload, a link snapshot, a link failure or recheck)
/// in a case; a merged duplicate takes no more: evidence goes to the survivor.
pub fn evidence(case: &CaseView, actor: &Actor, body: EventBody) -> Result<Draft, Refusal> {
    admit(case, actor, &body, None)?;
    Ok(Draft {
        body,
        role: case.role_of(&actor.principal),
        causation: None,
    })
}

/// Records the revocation of time-bound access that reached its end.
pub fn execute_revocation(
    case: &CaseView,
    actor: &Actor,
    change_set: Option<ChangeSet>,
    comment: Option<String>,
) -> Result<Draft, Refusal> {
    let change_set_hash = change_set.as_ref().map(ChangeSet::hash);
    let change_set = change_set.map(ChangeSet::into_value);
    let body = EventBody::RevocationExecuted(Execution {
        change_set,
        change_set_hash,
        comment,
        applied: None,
    });
    admit(case, actor, &body, None)?;
    Ok(Draft {
        body,
        role: Role::Executor,
        causation: None,
    })
}

/// Records one attempt to deliver an owed notification (by `system`). A
/// final failure of a notification also raises an escalation naming the
/// delivery, which owes the escalation route a notice, unless `escalate` is
/// false (the failed notification was itself an escalation notice: it is
/// not escalated in a loop, and verify reports it).
pub fn record_delivery(
    attempt: crate::event::Attempt,
    escalate: bool,
    now: Timestamp,
) -> Vec<Draft> {
    let dead = attempt.outcome == crate::event::DeliveryOutcome::Dead;
    let delivery_id = attempt.delivery_id.clone();
    let mut drafts = vec![Draft {
        body: EventBody::NotificationAttempted(attempt),
        role: Role::System,
        causation: None,
    }];
    if dead && escalate {
        drafts.push(Draft {
            body: EventBody::EscalationRaised(Escalation {
                reason: EscalationReason::DeadLetter,
                deadline: now,
                delivery_id: Some(delivery_id),
            }),
            role: Role::System,
            causation: None,
        });
    }
    drafts
}

/// A review with outcome `revoke` opens a linked revocation case: returns the
/// request of the new case (revoking the same entitlement of the same
/// subject, requested by the reviewer), its `opened_by_review` link, and the
/// `revocation_opened` link for the reviewed case.
pub fn open_revocation(
    reviewed: &CaseView,
    rule: &AppliedRule,
    new_case: &CaseId,
) -> Result<(Draft, Draft, Draft), Refusal> {
    let change = reviewed.change.revocation();
    // Taking access away is never refused for lacking a duration: the
    // rule's duration cap is for grants.
    let change_hash = change.digest();
    let request = Draft {
        body: EventBody::RequestCreated(RequestCreated {
            change,
            change_hash,
            rule: rule.clone(),
            justification: Some(format!(
                "revocation decided by the review of {}",
                reviewed.case_id
            )),
            ticket: None,
            // The revocation a drill's review decides is a drill too.
            drill: reviewed.drill,
        }),
        role: Role::Requester,
        causation: None,
    };
    let opened_by = Draft {
        body: EventBody::OpenedByReview(CaseLink {
            other_case: reviewed.case_id.clone(),
        }),
        role: Role::Requester,
        causation: None,
    };
    let opened = Draft {
        body: EventBody::RevocationOpened(CaseLink {
            other_case: new_case.clone(),
        }),
        role: Role::Reviewer,
        causation: None,
    };
    Ok((request, opened_by, opened))
}

/// Records what a connector saw the case's ticket describe now (see
/// [`EventBody::TicketChanged`]); the connector is an observer.
pub fn ticket_changed(ticket: crate::model::Ticket, change: crate::model::Change) -> Draft {
    Draft {
        body: EventBody::TicketChanged(crate::event::TicketChanged { ticket, change }),
        role: Role::Observer,
        causation: None,
    }
}

/// Records a change a connector observed in the case it was bound to (see
/// [`crate::observation`]); `actor` is the ledger's observer actor for the
/// connector ([`Actor::observer`]).
pub fn observe(
    case: &CaseView,
    actor: &Actor,
    observed: crate::observation::Observed,
) -> Result<Draft, Refusal> {
    let body = EventBody::ExecutionObserved(observed);
    admit(case, actor, &body, None)?;
    Ok(Draft {
        body,
        role: Role::Observer,
        causation: None,
    })
}

/// Opens a case for an observed change no case sanctioned: a request by
/// the ledger as `observer` for the change seen, then the observation with
/// its post-hoc review deadline (the rule's, as for break-glass). The case
/// waits in `pending_review`, escalated when the deadline passes.
pub fn unsanctioned(
    actor: &Actor,
    mut observed: crate::observation::Observed,
    rule: &AppliedRule,
    now: Timestamp,
) -> Result<[Draft; 2], Refusal> {
    if actor.principal.as_str() != crate::model::SYSTEM_PRINCIPAL {
        return Err(Refusal::new(
            Code::LifecycleSystemEventForged,
            format!(
                "{} asked to record an observed change; only the ledger records what a connector observed",
                actor.principal
            ),
            "observed changes come in through a source's connector (docs/observations.md)",
        ));
    }
    // The observed change is what happened; a duration a source does not
    // record is never invented, so the rule's longest duration is not
    // applied to it.
    let change = observed.change.clone();
    let change_hash = change.digest();
    let request = Draft {
        body: EventBody::RequestCreated(RequestCreated {
            change,
            change_hash,
            rule: rule.clone(),
            justification: Some(format!(
                "{} observed {} with no case",
                observed.source_kind, observed.action
            )),
            ticket: None,
            drill: false,
        }),
        role: Role::Observer,
        causation: None,
    };
    observed.matched_by = crate::observation::MatchedBy::Unmatched;
    observed.matched_on = None;
    observed.review_deadline = Some(now.plus_unsigned_seconds(rule.post_hoc_review_seconds));
    let observation = Draft {
        body: EventBody::ExecutionObserved(observed),
        role: Role::Observer,
        causation: None,
    };
    Ok([request, observation])
}

/// Links an outside ticket that carries the case's ID to a case that has
/// no ticket yet (see [`EventBody::TicketLinked`]).
pub fn link_ticket(
    case: &CaseView,
    actor: &Actor,
    ticket: crate::model::Ticket,
) -> Result<Draft, Refusal> {
    let body = EventBody::TicketLinked(crate::event::TicketLinked { ticket });
    admit(case, actor, &body, None)?;
    Ok(Draft {
        body,
        role: Role::Observer,
        causation: None,
    })
}

/// Adds a comment; anyone may comment on any case.
pub fn comment(case: &CaseView, actor: &Actor, text: String) -> Draft {
    Draft {
        body: EventBody::CommentAdded(Comment { text }),
        role: case.role_of(&actor.principal),
        causation: None,
    }
}
