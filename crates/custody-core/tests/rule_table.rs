//! The write path and the audit judge by one rule table
//! (`custody_core::lifecycle::judge`).
//!
//! A differential property test drives random sequences of steps (every
//! kind of event, every principal and role, steps out of order, actors
//! swapped, approvals bound to another change, forged merges and ledger
//! events) through the real write path (`CaseCommand::decide`,
//! `lifecycle::merge`, `lifecycle::request`, `lifecycle::break_glass`).
//! Whenever the write path refuses a step, the event the step would have
//! written is forced into the trail anyway, and the auditor must report the
//! refusal's rule at that event: same case, same sequence number, same log
//! index, same code. Conversely, a trail built only from accepted steps
//! audits clean, except for the judgements the design leaves to the end of
//! the trail (an execution still waiting for its approval, approvals given
//! after the execution, an attested approval never confirmed).

#![allow(clippy::unwrap_used, clippy::cast_possible_wrap)]

use custody_core::audit::{Auditor, Report, StoredCaseHead, StoredEvent};
use custody_core::command::{CaseStep, LedgerCommand};
use custody_core::event::{
    ChatApproval, Confirmation, Decision, EventBody, Evidence, Execution, MergeLink, Review,
    ReviewOutcome,
};
use custody_core::lifecycle::{self, Draft, Placement, Refusal};
use custody_core::model::{Actor, AuthContext, Change, ChangeKind, PrincipalKind, Role, Via};
use custody_core::policy::{AppliedRule, Stage};
use custody_core::{CaseId, CaseView, Event, EventId, Sha256Hash, Timestamp};
use proptest::prelude::*;

fn person(name: &str, kind: PrincipalKind, org: Option<&str>, groups: &[&str]) -> Actor {
    Actor {
        principal: name.parse().unwrap(),
        kind,
        org: org.map(str::to_string),
        groups: groups.iter().map(|group| group.to_string()).collect(),
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Cli,
        auth: AuthContext::Token {
            token_id: format!("tok_{name}"),
        },
    }
}

/// Everyone who may act: humans in and out of the requester's organisation
/// and groups, an automation, an admin, and the ledger itself.
fn cast() -> Vec<Actor> {
    vec![
        person(
            "alice",
            PrincipalKind::Human,
            Some("acme"),
            &["engineering"],
        ),
        person("bob", PrincipalKind::Human, Some("audit-co"), &["security"]),
        person("carol", PrincipalKind::Human, Some("acme"), &["sre"]),
        person(
            "dave",
            PrincipalKind::Automation,
            Some("acme"),
            &["bots", "sre"],
        ),
        person(
            "erin",
            PrincipalKind::Human,
            Some("audit-co"),
            &["security", "admins"],
        ),
        person("frank", PrincipalKind::Human, None, &[]),
        Actor::system(),
        person("sara", PrincipalKind::Human, Some("acme"), &["security"]),
    ]
}

const ALICE: usize = 0;
const FRANK: usize = 5;

/// Rules of every shape the table reads.
fn rules() -> Vec<AppliedRule> {
    let default = AppliedRule::brief_default();
    vec![
        default.clone(),
        AppliedRule {
            name: "prod-admin".into(),
            approvals: 2,
            approver_groups: vec!["security".into()],
            approver_not_in_requester_org: true,
            executor_kinds: vec![PrincipalKind::Automation],
            max_duration_seconds: Some(8 * 3600),
            break_glass: false,
            ..default.clone()
        },
        AppliedRule {
            name: "staged".into(),
            stages: vec![
                Stage {
                    name: "team".into(),
                    approvals: 1,
                    approver_groups: vec!["sre".into()],
                },
                Stage {
                    name: "security".into(),
                    approvals: 1,
                    approver_groups: vec!["security".into()],
                },
            ],
            executor_groups: vec!["bots".into(), "sre".into()],
            allow_attested_approvals: true,
            ..default.clone()
        },
        AppliedRule {
            name: "short".into(),
            max_duration_seconds: Some(3600),
            break_glass: false,
            ..default
        },
    ]
}

fn roles() -> [Role; 6] {
    [
        Role::Requester,
        Role::Approver,
        Role::Executor,
        Role::Reviewer,
        Role::System,
        Role::Observer,
    ]
}

/// One step of a generated sequence.
#[derive(Clone, Debug)]
struct Step {
    op: u8,
    actor: usize,
    param: u8,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0u8..21, 0usize..8, any::<u8>()).prop_map(|(op, actor, param)| Step { op, actor, param }),
        1..28,
    )
}

/// How a sequence opens its main case.
#[derive(Clone, Debug)]
struct Opening {
    rule: usize,
    duration: u8,
    break_glass: bool,
}

fn opening() -> impl Strategy<Value = Opening> {
    (0usize..4, 0u8..3, any::<bool>()).prop_map(|(rule, duration, break_glass)| Opening {
        rule,
        duration,
        break_glass,
    })
}

/// A finding the audit owes: the rule, where the write path refused it.
#[derive(Debug)]
struct Expected {
    code: &'static str,
    case_id: CaseId,
    seq: u64,
    log_index: u64,
    step: String,
}

/// The ledger of a sequence: every event in log order, and the cases.
struct World {
    events: Vec<Event>,
    cases: Vec<Option<CaseView>>,
    /// Refused steps are forced into the trail (the differential test) or
    /// dropped (the converse).
    force_refused: bool,
    expected: Vec<Expected>,
}

impl World {
    fn new(force_refused: bool) -> World {
        World {
            events: Vec::new(),
            cases: vec![None, None],
            force_refused,
            expected: Vec::new(),
        }
    }

    fn view(&self, case: usize) -> &CaseView {
        self.cases[case].as_ref().expect("the case is open")
    }

    /// Appends `draft` to case `case` (opening it with a request), as the
    /// store does: sealed, chained, round-tripped through canonical bytes.
    fn append(&mut self, case: usize, actor: &Actor, draft: Draft) -> (CaseId, u64, u64) {
        let log_index = self.events.len() as u64;
        let (case_id, seq, prev_hash) = match &self.cases[case] {
            Some(view) => (
                view.case_id.clone(),
                view.head_seq + 1,
                Some(view.head_hash),
            ),
            None => (CaseId::generate(), 1, None),
        };
        let event = draft.seal(
            actor.clone(),
            Placement {
                case_id: case_id.clone(),
                seq,
                prev_hash,
                recorded_at: Timestamp::from_micros(1_800_000_000_000_000 + log_index as i64),
                occurred_at: None,
                idempotency_key: Some(format!("key-{log_index}")),
                origin: None,
            },
        );
        let event = Event::decode(&event.canonical_bytes()).expect("sealed events decode");
        match &mut self.cases[case] {
            Some(view) => view.apply(&event),
            None => self.cases[case] = CaseView::open(&event),
        }
        self.events.push(event);
        (case_id, seq, log_index)
    }

    /// The write path's verdict on a step: accepted drafts are appended;
    /// a refusal is forced in (and the audit's finding expected) or dropped.
    fn settle(
        &mut self,
        case: usize,
        actor: &Actor,
        verdict: Result<Draft, Refusal>,
        forged: Draft,
        step: &str,
    ) {
        match verdict {
            Ok(draft) => {
                self.append(case, actor, draft);
            }
            Err(refusal) if self.force_refused => {
                let (case_id, seq, log_index) = self.append(case, actor, forged);
                self.expected.push(Expected {
                    code: refusal.rule.as_str(),
                    case_id,
                    seq,
                    log_index,
                    step: step.to_string(),
                });
            }
            Err(_) => {}
        }
    }

    fn audit(&self) -> Report {
        let mut auditor = Auditor::new();
        for (index, event) in self.events.iter().enumerate() {
            auditor.observe_event(&StoredEvent {
                log_index: index as u64,
                case_id: event.case_id.to_string(),
                seq: event.seq as i64,
                bytes: event.canonical_bytes(),
                stored_leaf: None,
            });
        }
        auditor.finish(self.cases.iter().flatten().map(|view| StoredCaseHead {
            drill: false,
            case_id: view.case_id.to_string(),
            head_seq: view.head_seq as i64,
            head_hash: view.head_hash.to_hex(),
            state: view.state.as_str().to_string(),
        }))
    }
}

fn draft(body: EventBody, role: Role) -> Draft {
    Draft {
        body,
        role,
        causation: None,
    }
}

fn change(entitlement: &str, duration_seconds: Option<u64>) -> Change {
    Change::new(
        "user:alice".parse().unwrap(),
        ChangeKind::Grant,
        entitlement.into(),
        Some("prod-db".into()),
        duration_seconds,
    )
    .unwrap()
}

fn evidence() -> Evidence {
    Evidence {
        sha256: Sha256Hash::of(b"screenshot"),
        size: 10,
        file_name: Some("screenshot.png".into()),
        declared_media_type: None,
        sniffed_media_type: "image/png".into(),
        link: None,
    }
}

/// Opens the main case (by request or break-glass) and the other case,
/// through the write path.
fn open_cases(world: &mut World, opening: &Opening, cast: &[Actor]) {
    open_main_case(world, opening, cast);
    // The other case, for merges: someone else's request.
    let frank = &cast[FRANK];
    let other = lifecycle::request(
        change("db-reader", None),
        None,
        None,
        &AppliedRule::brief_default(),
    )
    .unwrap();
    world.append(1, frank, other);
}

fn open_main_case(world: &mut World, opening: &Opening, cast: &[Actor]) {
    let rule = &rules()[opening.rule];
    let duration = [None, Some(1800), Some(9 * 3600)][opening.duration as usize];
    let alice = &cast[ALICE];
    let wanted = change("admin", duration);
    let now = Timestamp::from_micros(1_800_000_000_000_000);
    if opening.break_glass {
        match lifecycle::break_glass(wanted.clone(), "outage".into(), None, rule, None, now) {
            Ok(drafts) => {
                for draft in drafts {
                    world.append(0, alice, draft);
                }
            }
            Err(refusal) if world.force_refused && refusal.rule != "policy.duration-required" => {
                // Forced anyway: the same three events under the rule that
                // forbids break-glass; the invocation is where it broke.
                let allowed = AppliedRule {
                    break_glass: true,
                    ..rule.clone()
                };
                let drafts = match lifecycle::break_glass(
                    wanted.clone(),
                    "outage".into(),
                    None,
                    &allowed,
                    None,
                    now,
                ) {
                    Ok(drafts) => drafts,
                    // The duration rule refused too: judged at the request.
                    Err(_) => return open_by_request(world, rule, wanted, alice),
                };
                let [request, invoked, execution] = drafts;
                let request = match request.body {
                    EventBody::RequestCreated(mut created) => {
                        created.rule = rule.clone();
                        draft(EventBody::RequestCreated(created), Role::Requester)
                    }
                    _ => unreachable!("break-glass opens with a request"),
                };
                world.append(0, alice, request);
                let (case_id, seq, log_index) = world.append(0, alice, invoked);
                world.expected.push(Expected {
                    code: refusal.rule.as_str(),
                    case_id,
                    seq,
                    log_index,
                    step: "break-glass".into(),
                });
                world.append(0, alice, execution);
            }
            Err(_) => open_by_request(world, rule, change("admin", Some(1800)), alice),
        }
    } else {
        open_by_request(world, rule, wanted, alice);
    }
}

fn open_by_request(world: &mut World, rule: &AppliedRule, wanted: Change, alice: &Actor) {
    match lifecycle::request(wanted.clone(), None, None, rule) {
        Ok(draft) => {
            world.append(0, alice, draft);
        }
        Err(refusal) if world.force_refused => {
            // The request the rule refuses, written anyway.
            let allowed = AppliedRule {
                max_duration_seconds: None,
                ..rule.clone()
            };
            let mut forged = lifecycle::request(wanted, None, None, &allowed).unwrap();
            if let EventBody::RequestCreated(created) = &mut forged.body {
                created.rule = rule.clone();
            }
            let (case_id, seq, log_index) = world.append(0, alice, forged);
            world.expected.push(Expected {
                code: refusal.rule.as_str(),
                case_id,
                seq,
                log_index,
                step: "request".into(),
            });
        }
        Err(_) => {
            let draft = lifecycle::request(change("admin", Some(1800)), None, None, rule).unwrap();
            world.append(0, alice, draft);
        }
    }
}

/// Whether a refusal names a command rather than the event: the same event
/// is what the other way of recording an execution writes.
fn command_gate(refusal: &Refusal) -> bool {
    matches!(
        refusal.rule.as_str(),
        "lifecycle.not-approved" | "lifecycle.not-open"
    )
}

/// Runs one step through the write path.
fn run(world: &mut World, step: &Step, cast: &[Actor]) {
    let actor = &cast[step.actor];
    let param = step.param as usize;
    // Decisions, executions and reviews come more often than merges.
    let op = match step.op {
        16 | 17 => 0,
        18 | 19 => 5,
        20 => 7,
        op => op,
    };
    let role = roles()[param % roles().len()];
    // Most steps act on the main case; some on the other one.
    let case = if op < 14 && param % 7 == 6 { 1 } else { 0 };
    let view = world.view(case).clone();
    let case_id = view.case_id.clone();
    let decide = |command: CaseStep| command.decide(&view, actor);
    let label = format!("{step:?} on case {case} ({})", view.state);
    match op {
        // Approve, as oneself.
        0 => {
            let verdict = decide(CaseStep::Approve {
                case_id,
                comment: None,
                chat: None,
            });
            let forged = draft(
                EventBody::ApprovalGranted(Decision {
                    change_hash: view.change_hash,
                    comment: None,
                    chat: None,
                }),
                role,
            );
            world.settle(case, actor, verdict, forged, &label);
        }
        // Approve from chat, for someone (possibly someone else).
        1 => {
            let chat = ChatApproval {
                channel: "slack:#access".into(),
                permalink: "https://chat.example/p/1".into(),
                message_sha256: Sha256Hash::of(b"lgtm"),
                approver: cast[param % 6].principal.clone(),
            };
            let verdict = decide(CaseStep::Approve {
                case_id,
                comment: None,
                chat: Some(chat.clone()),
            });
            let forged = draft(
                EventBody::ApprovalGranted(Decision {
                    change_hash: view.change_hash,
                    comment: None,
                    chat: Some(chat),
                }),
                role,
            );
            world.settle(case, actor, verdict, forged, &label);
        }
        // An approval bound to another change than the one requested.
        2 => {
            let other_change = Sha256Hash::of(&[step.param]);
            let verdict = lifecycle::approve_binding(&view, actor, None, None, other_change);
            let forged = draft(
                EventBody::ApprovalGranted(Decision {
                    change_hash: other_change,
                    comment: None,
                    chat: None,
                }),
                role,
            );
            world.settle(case, actor, verdict, forged, &label);
        }
        // Confirm an approval (one of the case's, or one that does not exist).
        3 => {
            let approval_event = view
                .approvals
                .get(param % (view.approvals.len() + 1))
                .map(|approval| approval.by.event_id.clone())
                .unwrap_or_else(EventId::generate);
            let verdict = decide(CaseStep::ConfirmApproval {
                case_id,
                approval_event: approval_event.clone(),
            });
            let forged = draft(
                EventBody::ApprovalConfirmed(Confirmation { approval_event }),
                role,
            );
            world.settle(case, actor, verdict, forged, &label);
        }
        4 => {
            let verdict = decide(CaseStep::Deny {
                case_id,
                comment: None,
            });
            let forged = draft(
                EventBody::ApprovalDenied(Decision {
                    change_hash: view.change_hash,
                    comment: None,
                    chat: None,
                }),
                role,
            );
            world.settle(case, actor, verdict, forged, &label);
        }
        // Execute: an ordinary execution, or one observed before its
        // approval; the event is the same, so either way may record it.
        5 => {
            let execute = |observed: bool| {
                decide(CaseStep::Execute {
                    case_id: case_id.clone(),
                    change_set: None,
                    comment: None,
                    completed: true,
                    applied: None,
                    observed,
                })
            };
            let verdict = match (execute(false), execute(true)) {
                (Ok(draft), _) | (_, Ok(draft)) => Ok(draft),
                (Err(ordinary), Err(observed)) if command_gate(&ordinary) => Err(observed),
                (Err(ordinary), Err(_)) => Err(ordinary),
            };
            let forged = draft(
                EventBody::ExecutionCompleted(Execution {
                    change_set: None,
                    change_set_hash: None,
                    comment: None,
                    applied: Some(view.change.clone()),
                }),
                role,
            );
            world.settle(case, actor, verdict, forged, &label);
        }
        6 => {
            let verdict = decide(CaseStep::Execute {
                case_id,
                change_set: None,
                comment: Some("timeout".into()),
                completed: false,
                applied: None,
                observed: false,
            });
            let forged = draft(
                EventBody::ExecutionFailed(Execution {
                    change_set: None,
                    change_set_hash: None,
                    comment: Some("timeout".into()),
                    applied: None,
                }),
                role,
            );
            world.settle(case, actor, verdict, forged, &label);
        }
        7 => {
            let outcome = [
                ReviewOutcome::Confirmed,
                ReviewOutcome::Mismatch,
                ReviewOutcome::Revoke,
            ][param % 3];
            let verdict = decide(CaseStep::Review {
                case_id,
                outcome,
                comment: None,
                revocation_rule: None,
            });
            let forged = draft(
                EventBody::ReviewCompleted(Review {
                    outcome,
                    comment: None,
                }),
                role,
            );
            world.settle(case, actor, verdict, forged, &label);
        }
        8 => {
            let verdict = decide(CaseStep::Comment {
                case_id,
                text: "note".into(),
            });
            let forged = lifecycle::comment(&view, actor, "note".into());
            world.settle(case, actor, verdict, forged, &label);
        }
        9 => {
            let verdict = decide(CaseStep::AttachEvidence {
                case_id,
                evidence: evidence(),
            });
            let forged = draft(EventBody::EvidenceAttached(evidence()), role);
            world.settle(case, actor, verdict, forged, &label);
        }
        10 => {
            let verdict = decide(CaseStep::ExecuteRevocation {
                case_id,
                change_set: None,
                comment: None,
            });
            let forged = draft(
                EventBody::RevocationExecuted(Execution {
                    change_set: None,
                    change_set_hash: None,
                    comment: None,
                    applied: None,
                }),
                role,
            );
            world.settle(case, actor, verdict, forged, &label);
        }
        // The ledger's own events, by whoever acts.
        11 => {
            let deadline = Timestamp::from_micros(1_700_000_000_000_000);
            let reason = [
                lifecycle::REVIEW_OVERDUE,
                lifecycle::EXPIRY_REVOCATION_DUE,
                lifecycle::EXPIRY_NOTICE,
            ][param % 3];
            // The ledger's command decides one event: the escalation.
            let verdict = LedgerCommand::Escalate {
                case_id,
                reason,
                deadline,
            }
            .decide(&view, actor, deadline)
            .map(|mut drafts| drafts.remove(0));
            let forged = lifecycle::escalate(reason, deadline);
            world.settle(case, actor, verdict, forged, &label);
        }
        // Merges, either way round.
        12 | 13 => {
            let (duplicate, survivor) = if op == 12 { (0, 1) } else { (1, 0) };
            let duplicate_view = world.view(duplicate).clone();
            let survivor_view = world.view(survivor).clone();
            match lifecycle::merge(&duplicate_view, &survivor_view, actor, None) {
                Ok((into_duplicate, into_survivor)) => {
                    world.append(duplicate, actor, into_duplicate);
                    world.append(survivor, actor, into_survivor);
                }
                Err(refusal) if world.force_refused => {
                    let merged = draft(
                        EventBody::DuplicateMerged(MergeLink {
                            other_case: survivor_view.case_id.clone(),
                            comment: None,
                        }),
                        role,
                    );
                    let (case_id, seq, log_index) = world.append(duplicate, actor, merged);
                    let linked = draft(
                        EventBody::DuplicateLinked(MergeLink {
                            other_case: duplicate_view.case_id.clone(),
                            comment: None,
                        }),
                        role,
                    );
                    world.append(survivor, actor, linked);
                    world.expected.push(Expected {
                        code: refusal.rule.as_str(),
                        case_id,
                        seq,
                        log_index,
                        step: label,
                    });
                }
                Err(_) => {}
            }
        }
        // Forgeries no command can write: a second request, a break-glass
        // invocation in a case already underway.
        14 if world.force_refused => {
            let second = lifecycle::request(
                view.change.clone(),
                None,
                None,
                &AppliedRule::brief_default(),
            )
            .unwrap();
            let (case_id, seq, log_index) = world.append(case, actor, second);
            world.expected.push(Expected {
                code: "case.second-request",
                case_id,
                seq,
                log_index,
                step: label,
            });
        }
        15 if world.force_refused && view.head_seq > 1 => {
            let [_, invoked, _] = lifecycle::break_glass(
                view.change.clone(),
                "outage".into(),
                None,
                &AppliedRule::brief_default(),
                None,
                Timestamp::from_micros(1_800_000_000_000_000),
            )
            .unwrap();
            let (case_id, seq, log_index) = world.append(case, actor, invoked);
            world.expected.push(Expected {
                code: "lifecycle.break-glass-misplaced",
                case_id,
                seq,
                log_index,
                step: label,
            });
        }
        _ => {}
    }
}

fn run_sequence(opening: &Opening, steps: &[Step], force_refused: bool) -> (World, Report) {
    let cast = cast();
    let mut world = World::new(force_refused);
    open_cases(&mut world, opening, &cast);
    for step in steps {
        run(&mut world, step, &cast);
    }
    let report = world.audit();
    (world, report)
}

/// The findings the design leaves to the end of the trail, from the final
/// state of each case.
fn end_of_trail_findings(world: &World) -> Vec<(String, &'static str)> {
    let mut owed = Vec::new();
    for view in world.cases.iter().flatten() {
        let case_id = view.case_id.to_string();
        if view.awaiting_approval {
            owed.push((case_id.clone(), "lifecycle.execution-without-approval"));
        }
        if view.approved_after_execution {
            owed.push((case_id.clone(), "lifecycle.approved-after-execution"));
        }
        for approval in &view.approvals {
            if approval.attested && !approval.confirmed && !view.rule.allow_attested_approvals {
                owed.push((case_id.clone(), "approval.unconfirmed-attestation"));
            }
        }
    }
    owed.sort();
    owed
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 320, ..ProptestConfig::default() })]

    /// Every step the write path refuses, forced into the trail anyway, is
    /// reported by the audit at that event with the refusal's code.
    #[test]
    fn every_refused_step_is_a_finding_at_its_event(opening in opening(), steps in steps()) {
        let (world, report) = run_sequence(&opening, &steps, true);
        for expected in &world.expected {
            let found = report.findings.iter().any(|finding| {
                finding.code == expected.code
                    && finding.case_id.as_deref() == Some(expected.case_id.as_str())
                    && finding.seq == Some(expected.seq)
                    && finding.log_index == Some(expected.log_index)
            });
            prop_assert!(
                found,
                "the write path refused `{}` ({}) at case {} seq {} (log index {}), but the audit reports {:#?}",
                expected.step,
                expected.code,
                expected.case_id,
                expected.seq,
                expected.log_index,
                report.findings
            );
        }
    }

    /// A trail built only from steps the write path accepted audits clean,
    /// but for the judgements left to the end of the trail.
    #[test]
    fn a_trail_of_accepted_steps_audits_clean(opening in opening(), steps in steps()) {
        let (world, report) = run_sequence(&opening, &steps, false);
        prop_assert!(world.expected.is_empty());
        let mut found: Vec<(String, &'static str)> = report
            .findings
            .iter()
            .map(|finding| (finding.case_id.clone().unwrap_or_default(), finding.code.as_str()))
            .collect();
        found.sort();
        prop_assert_eq!(found, end_of_trail_findings(&world), "{:#?}", report.findings);
    }
}

/// Audits `world` and returns the findings at `seq` of `case`.
fn findings_at(report: &Report, case_id: &CaseId, seq: u64) -> Vec<&'static str> {
    report
        .findings
        .iter()
        .filter(|finding| {
            finding.case_id.as_deref() == Some(case_id.as_str()) && finding.seq == Some(seq)
        })
        .map(|finding| finding.code.as_str())
        .collect()
}

#[test]
fn a_review_of_an_execution_whose_approval_is_not_recorded_is_a_finding_at_the_review() {
    // Issue 10, item 3: request, execution, review, and no approval.
    let cast = cast();
    let (alice, carol, erin) = (&cast[0], &cast[2], &cast[4]);
    let mut world = World::new(true);
    let request = lifecycle::request(
        change("admin", None),
        None,
        None,
        &AppliedRule::brief_default(),
    )
    .unwrap();
    world.append(0, alice, request);
    let view = world.view(0).clone();
    let executed = lifecycle::execute_observed(&view, carol, None, None, None).unwrap();
    let (case_id, execution_seq, _) = world.append(0, carol, executed);
    let view = world.view(0).clone();
    let refused = CaseStep::Review {
        case_id: case_id.clone(),
        outcome: ReviewOutcome::Confirmed,
        comment: None,
        revocation_rule: None,
    }
    .decide(&view, erin)
    .unwrap_err();
    assert_eq!(refused.rule, "lifecycle.approval-not-recorded");
    let forged = draft(
        EventBody::ReviewCompleted(Review {
            outcome: ReviewOutcome::Confirmed,
            comment: None,
        }),
        Role::Reviewer,
    );
    let (_, review_seq, _) = world.append(0, erin, forged);
    let report = world.audit();
    assert_eq!(
        findings_at(&report, &case_id, review_seq),
        vec!["lifecycle.approval-not-recorded"],
        "{:#?}",
        report.findings
    );
    // The review does not hide that the execution never got its approval.
    assert_eq!(
        findings_at(&report, &case_id, execution_seq),
        vec!["lifecycle.execution-without-approval"],
        "{:#?}",
        report.findings
    );
    assert_eq!(report.findings.len(), 2, "{:#?}", report.findings);
}

#[test]
fn an_approval_bound_to_another_change_is_refused_and_reported_at_its_event() {
    // Issue 18: the approval's change-hash check, at write time and in verify.
    let cast = cast();
    let (alice, bob) = (&cast[0], &cast[1]);
    let mut world = World::new(true);
    let request = lifecycle::request(
        change("admin", None),
        None,
        None,
        &AppliedRule::brief_default(),
    )
    .unwrap();
    let (case_id, _, _) = world.append(0, alice, request);
    let view = world.view(0).clone();
    let other_change = change("root", None).digest();
    assert_ne!(other_change, view.change_hash);
    let refused = lifecycle::approve_binding(&view, bob, None, None, other_change).unwrap_err();
    assert_eq!(refused.rule, "approval.change-mismatch");
    assert!(
        refused.message.contains(&other_change.to_hex()),
        "{}",
        refused.message
    );
    // The same approver binding the change actually requested is accepted.
    assert!(lifecycle::approve_binding(&view, bob, None, None, view.change_hash).is_ok());

    // Written anyway (by another tool, or behind the store's back): verify
    // names the rule, the case, the event and its place in the log.
    let forged = draft(
        EventBody::ApprovalGranted(Decision {
            change_hash: other_change,
            comment: None,
            chat: None,
        }),
        Role::Approver,
    );
    let (_, seq, log_index) = world.append(0, bob, forged);
    let event_id = world.events.last().unwrap().event_id.to_string();
    let report = world.audit();
    let mismatches: Vec<_> = report
        .findings
        .iter()
        .filter(|finding| finding.code == "approval.change-mismatch")
        .collect();
    assert_eq!(mismatches.len(), 1, "{:#?}", report.findings);
    let finding = mismatches[0];
    assert_eq!(finding.case_id.as_deref(), Some(case_id.as_str()));
    assert_eq!(finding.seq, Some(seq));
    assert_eq!(finding.log_index, Some(log_index));
    assert_eq!(finding.event_id.as_deref(), Some(event_id.as_str()));
    assert_eq!(
        finding.severity,
        custody_core::lifecycle::Severity::High,
        "{finding:#?}"
    );
    // Such an approval does not count: the case is still open.
    assert_eq!(world.view(0).state.as_str(), "open");
    // And nothing else is reported: the other findings name the other rules.
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);

    // A denial bound to another change is reported the same way.
    let forged = draft(
        EventBody::ApprovalDenied(Decision {
            change_hash: other_change,
            comment: None,
            chat: None,
        }),
        Role::Approver,
    );
    let (_, seq, _) = world.append(0, &cast[2], forged);
    let report = world.audit();
    assert_eq!(
        findings_at(&report, &case_id, seq),
        vec!["approval.change-mismatch"]
    );
}

#[test]
fn a_merge_by_an_unrelated_principal_is_refused_and_found_in_a_forged_trail() {
    // Issue 10, item 6: who may merge.
    let cast = cast();
    let (alice, bob, carol, erin, frank) = (&cast[0], &cast[1], &cast[2], &cast[4], &cast[5]);
    let mut world = World::new(true);
    for (case, requester, entitlement) in [(0, alice, "admin"), (1, frank, "db-reader")] {
        let request = lifecycle::request(
            change(entitlement, None),
            None,
            None,
            &AppliedRule::brief_default(),
        )
        .unwrap();
        world.append(case, requester, request);
    }
    let (duplicate, survivor) = (world.view(1).clone(), world.view(0).clone());
    // Unrelated principals may not close someone else's request, whatever
    // the default rule lets them approve.
    for outsider in [bob, carol] {
        let refused = lifecycle::merge(&duplicate, &survivor, outsider, None).unwrap_err();
        assert_eq!(refused.rule, "merge.not-allowed", "{}", outsider.principal);
    }
    // The requester of only the surviving case may not: anyone can open a
    // case of their own, and merging someone else's request into it would
    // close that request.
    let refused = lifecycle::merge(&duplicate, &survivor, alice, None).unwrap_err();
    assert_eq!(refused.rule, "merge.not-allowed");
    // The requester of the duplicate, or an admin, may.
    for allowed in [frank, erin] {
        assert!(
            lifecycle::merge(&duplicate, &survivor, allowed, None).is_ok(),
            "{}",
            allowed.principal
        );
    }
    // An approver of the surviving case's rule may too.
    let mut guarded = survivor.clone();
    guarded.rule.approver_groups = vec!["security".into()];
    assert!(lifecycle::merge(&duplicate, &guarded, bob, None).is_ok());
    assert_eq!(
        lifecycle::merge(&duplicate, &guarded, carol, None)
            .unwrap_err()
            .rule,
        "merge.not-allowed"
    );

    // Forced by carol anyway: verify re-checks it from the recorded actor.
    let merged = draft(
        EventBody::DuplicateMerged(MergeLink {
            other_case: survivor.case_id.clone(),
            comment: None,
        }),
        Role::Observer,
    );
    let (duplicate_id, seq, log_index) = world.append(1, carol, merged);
    let linked = draft(
        EventBody::DuplicateLinked(MergeLink {
            other_case: duplicate.case_id.clone(),
            comment: None,
        }),
        Role::Observer,
    );
    world.append(0, carol, linked);
    let report = world.audit();
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!(finding.code, "merge.not-allowed");
    assert_eq!(finding.case_id.as_deref(), Some(duplicate_id.as_str()));
    assert_eq!(finding.seq, Some(seq));
    assert_eq!(finding.log_index, Some(log_index));
}

#[test]
fn ledger_events_by_anyone_but_system_are_refused_and_found() {
    let cast = cast();
    let (alice, carol) = (&cast[0], &cast[2]);
    let mut world = World::new(true);
    let request = lifecycle::request(
        change("admin", None),
        None,
        None,
        &AppliedRule::brief_default(),
    )
    .unwrap();
    let (case_id, _, _) = world.append(0, alice, request);
    let deadline = Timestamp::from_micros(1_700_000_000_000_000);
    let command = LedgerCommand::Escalate {
        case_id: case_id.clone(),
        reason: lifecycle::REVIEW_OVERDUE,
        deadline,
    };
    assert_eq!(
        command
            .decide(world.view(0), carol, deadline)
            .unwrap_err()
            .rule,
        "lifecycle.system-event-forged"
    );
    assert!(command
        .decide(world.view(0), &Actor::system(), deadline)
        .is_ok());
    let (_, seq, _) = world.append(
        0,
        carol,
        lifecycle::escalate(lifecycle::REVIEW_OVERDUE, deadline),
    );
    let report = world.audit();
    assert_eq!(
        findings_at(&report, &case_id, seq),
        vec!["lifecycle.system-event-forged"]
    );
}
