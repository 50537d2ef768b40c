//! The ledger's timer acts on each overdue obligation exactly once, over many
//! scan intervals, without sleeping: the scan (`custody_server::timer::
//! scan_overdue`, which the server runs with the system clock) is driven
//! here with a test clock that advances hours past every deadline, against
//! a real store on both backends. Two scans run at every tick, as two nodes
//! sharing one database would.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeMap;
use std::str::FromStr;

use custody_core::command::{CaseCommand, CaseStep, Opening};
use custody_core::model::{
    Actor, AuthContext, Change, ChangeKind, PrincipalKind, Subject, SubjectKind, Via,
};
use custody_core::policy::AppliedRule;
use custody_core::{CaseId, EventBody, PrincipalId, Timestamp};
use custody_server::timer::{scan_overdue, Acted};
use custody_store::{CaseWrite, Location, Store, StoreOptions};

/// The test clock's step: the scan interval it simulates.
const STEP_SECONDS: i64 = 60;
/// How far the test clock runs: past every deadline below.
const HORIZON_SECONDS: i64 = 5 * 3600;

fn actor(name: &str) -> Actor {
    Actor {
        principal: PrincipalId::from_str(name).unwrap(),
        kind: PrincipalKind::Human,
        org: None,
        groups: Vec::new(),
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Api,
        auth: AuthContext::Token {
            token_id: format!("tok_{name}"),
        },
    }
}

fn change(subject: &str, duration_seconds: Option<u64>) -> Change {
    Change::new(
        Subject {
            kind: SubjectKind::User,
            id: subject.to_string(),
        },
        ChangeKind::Grant,
        "admin".to_string(),
        Some("prod-db".to_string()),
        duration_seconds,
    )
    .unwrap()
}

async fn write(store: &Store, who: &str, key: &str, command: CaseCommand) -> CaseId {
    store
        .write(CaseWrite {
            actor: actor(who),
            idempotency_key: key.to_string(),
            command,
            occurred_at: None,
            connector: None,
        })
        .await
        .unwrap_or_else(|error| panic!("{key}: {error}"))
        .case_id
}

async fn approve_and_execute(store: &Store, case: &CaseId, key: &str) {
    write(
        store,
        "bob",
        &format!("{key}-approve"),
        CaseStep::Approve {
            case_id: case.clone(),
            comment: None,
            chat: None,
        }
        .into(),
    )
    .await;
    write(
        store,
        "carol",
        &format!("{key}-execute"),
        CaseStep::Execute {
            case_id: case.clone(),
            change_set: None,
            comment: None,
            completed: true,
            applied: None,
            observed: false,
        }
        .into(),
    )
    .await;
}

/// One case per obligation the timer acts on, with the deadline the case's
/// projection holds for it.
struct Obligations {
    /// (case, reason, deadline, the event kind the ledger writes for it).
    expected: Vec<(CaseId, &'static str, Timestamp, &'static str)>,
}

async fn open_cases(store: &Store) -> Obligations {
    let default = AppliedRule::brief_default();
    // Break-glass, never reviewed: escalated once its post-hoc review is late.
    let mut emergency = default.clone();
    emergency.post_hoc_review_seconds = 600;
    let break_glass = write(
        store,
        "oncall",
        "break-glass",
        Opening::BreakGlass {
            drill: false,
            change: change("oncall", None),
            justification: "INC-1".to_string(),
            ticket: None,
            rule: emergency,
            change_set: None,
        }
        .into(),
    )
    .await;
    // A request nobody answers: escalated once its approval deadline passes.
    let mut answered_soon = default.clone();
    answered_soon.approval_deadline_seconds = Some(900);
    let unanswered = write(
        store,
        "alice",
        "unanswered",
        Opening::Request {
            drill: false,
            change: change("alice", None),
            justification: None,
            ticket: None,
            rule: answered_soon,
        }
        .into(),
    )
    .await;
    // Executed, never reviewed: escalated once its review deadline passes.
    let mut reviewed_soon = default.clone();
    reviewed_soon.review_deadline_seconds = Some(1200);
    let unreviewed = write(
        store,
        "alice",
        "unreviewed",
        Opening::Request {
            drill: false,
            change: change("dave", None),
            justification: None,
            ticket: None,
            rule: reviewed_soon,
        }
        .into(),
    )
    .await;
    approve_and_execute(store, &unreviewed, "unreviewed").await;
    // Time-bound access for three hours: a notice an hour before the end,
    // then its revocation due at the end.
    let time_bound = write(
        store,
        "alice",
        "time-bound",
        Opening::Request {
            drill: false,
            change: change("erin", Some(3 * 3600)),
            justification: None,
            ticket: None,
            rule: default,
        }
        .into(),
    )
    .await;
    approve_and_execute(store, &time_bound, "time-bound").await;

    let view = |case: &CaseId| {
        let case = case.clone();
        async move { store.case_view(&case).await.unwrap() }
    };
    let break_glass_deadline = view(&break_glass).await.break_glass_deadline.unwrap();
    let unanswered_view = view(&unanswered).await;
    let approval_deadline = unanswered_view.opened_at.plus_seconds(900);
    let review_due = view(&unreviewed).await.review_due.unwrap();
    let expires_at = view(&time_bound).await.expires_at.unwrap();
    Obligations {
        expected: vec![
            (
                break_glass,
                "break-glass.review-overdue",
                break_glass_deadline,
                "escalation_raised",
            ),
            (
                unanswered,
                "approval.overdue",
                approval_deadline,
                "escalation_raised",
            ),
            (
                unreviewed,
                "review.overdue",
                review_due,
                "escalation_raised",
            ),
            (
                time_bound.clone(),
                "expiry.notice",
                expires_at.plus_seconds(-3600),
                "expiry_approaching",
            ),
            (
                time_bound,
                "expiry.revocation-due",
                expires_at,
                "revocation_due",
            ),
        ],
    }
}

async fn acts_once_over_many_scans(store: Store) {
    let obligations = open_cases(&store).await;
    let start = Timestamp::now();
    let log_before = store.log_size().await.unwrap();
    // (case, reason) → the test clock's time of every scan that acted on
    // it, and the events each of those writes appended.
    let mut acted: BTreeMap<(String, &'static str), Vec<(Timestamp, usize)>> = BTreeMap::new();
    let mut scans = 0;
    for tick in 0..=HORIZON_SECONDS / STEP_SECONDS {
        let now = start.plus_seconds(tick * STEP_SECONDS);
        // Two nodes scan at the same moment.
        let (first, second) = tokio::join!(scan_overdue(&store, now), scan_overdue(&store, now));
        scans += 2;
        for Acted {
            case_id,
            reason,
            deadline,
            appended,
        } in first.unwrap().into_iter().chain(second.unwrap())
        {
            assert!(
                deadline <= now,
                "{case_id} {reason}: acted before {deadline}"
            );
            acted
                .entry((case_id.to_string(), reason.as_str()))
                .or_default()
                .push((now, appended));
        }
    }
    assert!(scans > 500, "only {scans} scans");

    for (case, reason, deadline, kind) in &obligations.expected {
        let writes = acted
            .remove(&(case.to_string(), *reason))
            .unwrap_or_else(|| panic!("{case}: {reason} was never acted on"));
        // Acted on at the first tick at or after its deadline, by one scan
        // or by both at that tick (one appends, the other is replayed), and
        // never again: the projection records what the ledger did.
        let first_tick = writes[0].0;
        assert!(
            first_tick >= *deadline && first_tick < deadline.plus_seconds(STEP_SECONDS),
            "{case} {reason}: first acted on at {first_tick}, deadline {deadline}"
        );
        assert!(
            writes.iter().all(|(at, _)| *at == first_tick),
            "{case} {reason}: acted on at several ticks: {writes:?}"
        );
        assert_eq!(
            writes.iter().map(|(_, appended)| appended).sum::<usize>(),
            1,
            "{case} {reason}: {writes:?}"
        );
        // The case holds exactly one such event, by `system`.
        let (_, events) = store.case(case).await.unwrap();
        let written: Vec<_> = events
            .iter()
            .filter(|event| event.body.kind_name() == *kind)
            .filter(|event| match &event.body {
                EventBody::EscalationRaised(escalation) => escalation.reason == *reason,
                _ => true,
            })
            .collect();
        assert_eq!(written.len(), 1, "{case}: {kind} for {reason}: {events:#?}");
        assert_eq!(written[0].actor.principal.as_str(), "system");
    }
    assert!(
        acted.is_empty(),
        "acted on unexpected obligations: {acted:?}"
    );
    assert_eq!(
        store.log_size().await.unwrap(),
        log_before + obligations.expected.len() as u64,
        "the scans appended exactly one event per obligation"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_timer_acts_on_each_overdue_obligation_once_over_many_scans_embedded() {
    let directory = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = Store::open(directory.path()).await.unwrap();
        acts_once_over_many_scans(store).await;
    });
}

#[test]
fn the_timer_acts_on_each_overdue_obligation_once_over_many_scans_postgres() {
    let database = common::TestDatabase::create();
    runtime().block_on(async {
        let store = Store::open_at(
            &Location::Postgres(database.url.clone()),
            StoreOptions::default(),
        )
        .await
        .unwrap();
        acts_once_over_many_scans(store).await;
    });
}
