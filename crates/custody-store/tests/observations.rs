//! Observed changes through the real writer and the audit: correlation (by
//! case ID, reference, window), drift, unsanctioned cases, replays, and
//! access a source still shows after it ended.

#![allow(clippy::unwrap_used)]

use std::str::FromStr;
use std::sync::Arc;

use custody_core::command::{CaseCommand, CaseStep, Opening};
use custody_core::event::{EventBody, Origin, ReviewOutcome};
use custody_core::model::{
    Actor, AuthContext, Change, ChangeKind, PrincipalId, PrincipalKind, Subject, SubjectKind, Via,
};
use custody_core::observation::{MatchedBy, ObservedActor, ObservedChange};
use custody_core::policy::AppliedRule;
use custody_core::{CaseId, CaseState, Clock, Code, ManualClock, Sha256Hash, Timestamp};
use custody_store::{CaseWrite, ConnectorWrite, ReadOnlyStore, Store, StoreError, StoreOptions};

const START: &str = "2030-01-01T00:00:00Z";

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

fn change(
    subject: (SubjectKind, &str),
    kind: ChangeKind,
    entitlement: &str,
    duration: Option<u64>,
) -> Change {
    Change::new(
        Subject {
            kind: subject.0,
            id: subject.1.to_string(),
        },
        kind,
        entitlement.to_string(),
        Some("prod-db".to_string()),
        duration,
    )
    .unwrap()
}

fn dave(entitlement: &str) -> Change {
    change(
        (SubjectKind::User, "dave"),
        ChangeKind::Grant,
        entitlement,
        None,
    )
}

fn api(name: &str, key: &str, command: CaseCommand) -> CaseWrite {
    CaseWrite {
        actor: actor(name),
        idempotency_key: key.to_string(),
        command,
        occurred_at: None,
        connector: None,
    }
}

struct Seen<'a> {
    source: &'a str,
    id: &'a str,
    at: Timestamp,
    by: &'a str,
    principal: Option<&'a str>,
    change: Change,
    hint: Option<&'a CaseId>,
}

fn observe(seen: Seen<'_>) -> CaseWrite {
    let observation = ObservedChange {
        external_id: seen.id.to_string(),
        action: "group.user_membership.add".to_string(),
        occurred_at: seen.at,
        actor: ObservedActor {
            id: seen.by.to_string(),
            kind: Some(PrincipalKind::Human),
            display: None,
            on_behalf_of: None,
            session: None,
            source_identity: None,
            principal: seen
                .principal
                .map(|name| PrincipalId::from_str(name).unwrap()),
        },
        change: seen.change,
        case_hint: seen.hint.cloned(),
        references: Vec::new(),
        raw_sha256: Sha256Hash::of(seen.id.as_bytes()),
    };
    CaseWrite {
        actor: Actor::observer(seen.source, seen.by),
        idempotency_key: format!("{}/{}", seen.source, seen.id),
        occurred_at: Some(seen.at),
        command: Opening::Observe {
            drill: false,
            source_kind: "okta".to_string(),
            observation,
            rule: AppliedRule::brief_default(),
        }
        .into(),
        connector: Some(ConnectorWrite {
            origin: Origin {
                source: seen.source.to_string(),
                external_id: seen.id.to_string(),
            },
            reply: None,
        }),
    }
}

async fn open() -> (tempfile::TempDir, Store, Arc<ManualClock>) {
    let directory = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::parse(START).unwrap()));
    let store = Store::open_with(
        directory.path(),
        StoreOptions {
            clock: clock.clone(),
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    (directory, store, clock)
}

/// Requests `change` as alice, approves as bob, executes as carol: the case.
async fn approved_and_executed(store: &Store, change: Change, key: &str) -> CaseId {
    let opened = store
        .write(api(
            "alice",
            &format!("{key}-request"),
            Opening::Request {
                drill: false,
                change,
                justification: None,
                ticket: None,
                rule: AppliedRule::brief_default(),
            }
            .into(),
        ))
        .await
        .unwrap();
    let case_id = opened.case_id;
    store
        .write(api(
            "bob",
            &format!("{key}-approve"),
            CaseStep::Approve {
                case_id: case_id.clone(),
                comment: None,
                chat: None,
            }
            .into(),
        ))
        .await
        .unwrap();
    store
        .write(api(
            "carol",
            &format!("{key}-execute"),
            CaseStep::Execute {
                case_id: case_id.clone(),
                change_set: None,
                comment: None,
                completed: true,
                applied: None,
                observed: false,
            }
            .into(),
        ))
        .await
        .unwrap();
    case_id
}

/// The audit as of the store's clock.
async fn audit(store: &Store) -> custody_core::audit::Report {
    store.audit(Vec::new(), None).await.unwrap()
}

/// The audit of a read-only store (what `custody verify` reads), as of the
/// wall clock.
async fn audit_read_only(directory: &tempfile::TempDir) -> custody_core::audit::Report {
    ReadOnlyStore::open(directory.path())
        .await
        .unwrap()
        .audit(Vec::new(), None)
        .await
        .unwrap()
}

fn codes(report: &custody_core::audit::Report) -> Vec<String> {
    report
        .findings
        .iter()
        .map(|finding| finding.code.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sanctioned_change_binds_by_window_and_a_wider_one_is_drift() {
    let (directory, store, clock) = open().await;
    let case_id = approved_and_executed(&store, dave("reader"), "one").await;
    let now = clock.now();
    // Carol made the change she recorded: matched by window, no drift.
    let matched = store
        .write(observe(Seen {
            source: "okta",
            id: "evt-1",
            at: now,
            by: "00u-carol",
            principal: Some("carol"),
            change: dave("reader"),
            hint: None,
        }))
        .await
        .unwrap();
    assert_eq!(matched.case_id, case_id);
    assert_eq!(matched.appended.len(), 1);
    assert_eq!(
        matched.state,
        CaseState::Executed,
        "an observation changes no state"
    );
    let (view, events) = store.case(&case_id).await.unwrap();
    let EventBody::ExecutionObserved(observed) = &events.last().unwrap().body else {
        panic!(
            "expected an observation, got {:?}",
            events.last().unwrap().body
        );
    };
    assert_eq!(observed.matched_by, MatchedBy::Window);
    assert!(observed.drift.is_empty(), "{:?}", observed.drift);
    assert_eq!(events.last().unwrap().source.as_deref(), Some("okta"));
    assert_eq!(events.last().unwrap().external_id.as_deref(), Some("evt-1"));
    assert_eq!(events.last().unwrap().actor.principal.as_str(), "system");
    assert_eq!(view.observations.len(), 1);
    assert!(
        audit(&store).await.ok,
        "a sanctioned observation is no finding"
    );

    // The record names the case, but what was done is wider: drift.
    let wider = store
        .write(observe(Seen {
            source: "okta",
            id: "evt-2",
            at: now,
            by: "00u-carol",
            principal: Some("carol"),
            change: dave("admin"),
            hint: Some(&case_id),
        }))
        .await
        .unwrap();
    assert_eq!(wider.case_id, case_id);
    let (_, events) = store.case(&case_id).await.unwrap();
    let EventBody::ExecutionObserved(observed) = &events.last().unwrap().body else {
        panic!("expected an observation");
    };
    assert_eq!(observed.matched_by, MatchedBy::CaseId);
    assert_eq!(
        observed.drift,
        vec![Code::DriftWiderThanApproved.to_string()]
    );
    let report = audit(&store).await;
    let drift: Vec<_> = report
        .findings
        .iter()
        .filter(|finding| finding.code == Code::DriftWiderThanApproved)
        .collect();
    assert_eq!(drift.len(), 1, "{:#?}", report.findings);
    assert_eq!(drift[0].case_id.as_deref(), Some(case_id.as_str()));
    assert_eq!(drift[0].source.as_deref(), Some("okta"));
    assert_eq!(drift[0].external_id.as_deref(), Some("evt-2"));
    assert_eq!(drift[0].seq, Some(events.last().unwrap().seq));
    assert!(!report.ok);
    let verified = audit_read_only(&directory).await;
    assert_eq!(codes(&verified), codes(&report), "verify reads the same");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_execution_seen_before_the_approval_and_by_someone_else_is_drift() {
    let (_directory, store, clock) = open().await;
    let opened = store
        .write(api(
            "alice",
            "request",
            Opening::Request {
                drill: false,
                change: dave("reader"),
                justification: None,
                ticket: None,
                rule: AppliedRule::brief_default(),
            }
            .into(),
        ))
        .await
        .unwrap();
    let early = clock.now().plus_seconds(10);
    clock.advance_seconds(20);
    let seen = store
        .write(observe(Seen {
            source: "okta",
            id: "early",
            at: early,
            by: "00u-mallory",
            principal: None,
            change: dave("reader"),
            hint: None,
        }))
        .await
        .unwrap();
    assert_eq!(
        seen.case_id, opened.case_id,
        "the open case's window takes it"
    );
    assert_eq!(seen.state, CaseState::Open);
    store
        .write(api(
            "bob",
            "approve",
            CaseStep::Approve {
                case_id: opened.case_id.clone(),
                comment: None,
                chat: None,
            }
            .into(),
        ))
        .await
        .unwrap();
    store
        .write(api(
            "carol",
            "execute",
            CaseStep::Execute {
                case_id: opened.case_id.clone(),
                change_set: None,
                comment: None,
                completed: true,
                applied: None,
                observed: false,
            }
            .into(),
        ))
        .await
        .unwrap();
    // Seen again after the execution, made by someone mapped to another
    // principal than the executor, and by someone mapped to nobody.
    let now = clock.now();
    for (id, principal) in [("by-dan", Some("dan")), ("by-nobody", None)] {
        store
            .write(observe(Seen {
                source: "okta",
                id,
                at: now,
                by: "00u-someone",
                principal,
                change: dave("reader"),
                hint: None,
            }))
            .await
            .unwrap();
    }
    let report = audit(&store).await;
    let found: Vec<(String, String, Option<String>)> = report
        .findings
        .iter()
        .filter(|finding| finding.code.to_string().starts_with("drift."))
        .map(|finding| {
            (
                finding.code.to_string(),
                finding.severity.as_str().to_string(),
                finding.external_id.clone(),
            )
        })
        .collect();
    assert!(
        found.contains(&(
            Code::DriftBeforeApproval.to_string(),
            "high".into(),
            Some("early".into())
        )),
        "{found:?}"
    );
    assert!(
        found.contains(&(
            Code::DriftActorMismatch.to_string(),
            "high".into(),
            Some("by-dan".into())
        )),
        "{found:?}"
    );
    assert!(
        found.contains(&(
            Code::DriftActorMismatch.to_string(),
            "medium".into(),
            Some("by-nobody".into())
        )),
        "{found:?}"
    );
    assert_eq!(found.len(), 3, "{found:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsanctioned_key_opens_a_case_once_joined_by_a_second_source_and_cleared_by_review() {
    let (_directory, store, clock) = open().await;
    let key = change(
        (SubjectKind::ApiKey, "deploy-bot-key-1"),
        ChangeKind::Create,
        "api-key",
        None,
    );
    let now = clock.now();
    let first = store
        .write(observe(Seen {
            source: "okta",
            id: "key-1",
            at: now,
            by: "00u-bot",
            principal: None,
            change: key.clone(),
            hint: None,
        }))
        .await
        .unwrap();
    assert_eq!(first.state, CaseState::PendingReview);
    assert_eq!(
        first
            .appended
            .iter()
            .map(|event| event.kind.as_str())
            .collect::<Vec<_>>(),
        ["request_created", "execution_observed"]
    );
    let unsanctioned = store.cases_filtered(None, 10, true, false).await.unwrap();
    assert_eq!(unsanctioned.len(), 1);
    assert_eq!(unsanctioned[0].case_id, first.case_id.to_string());
    assert_eq!(unsanctioned[0].requester, "system");

    // The same record again: nothing appended, the same case answered.
    let size = store.log_size().await.unwrap();
    for _ in 0..5 {
        let again = store
            .write(observe(Seen {
                source: "okta",
                id: "key-1",
                at: now,
                by: "00u-bot",
                principal: None,
                change: key.clone(),
                hint: None,
            }))
            .await
            .unwrap();
        assert!(again.replayed);
        assert_eq!(again.case_id, first.case_id);
    }
    assert_eq!(store.log_size().await.unwrap(), size);

    // The same change seen by a second source: a second observation in
    // the same case, not a second case.
    let second = store
        .write(observe(Seen {
            source: "cloudtrail",
            id: "key-1",
            at: now,
            by: "arn:aws:iam::123456789012:user/bot",
            principal: None,
            change: key.clone(),
            hint: None,
        }))
        .await
        .unwrap();
    assert_eq!(second.case_id, first.case_id);
    assert_eq!(
        store
            .cases_filtered(None, 10, true, false)
            .await
            .unwrap()
            .len(),
        1
    );

    let report = audit(&store).await;
    let unsanctioned: Vec<_> = report
        .findings
        .iter()
        .filter(|finding| {
            finding.code == Code::ChangeUnsanctioned
                || finding.code == Code::DriftNhiCredentialUnsanctioned
        })
        .map(|finding| {
            (
                finding.code.to_string(),
                finding.severity.as_str().to_string(),
            )
        })
        .collect();
    assert_eq!(
        unsanctioned,
        vec![
            (
                Code::DriftNhiCredentialUnsanctioned.to_string(),
                "critical".into()
            ),
            (Code::ChangeUnsanctioned.to_string(), "high".into()),
        ]
    );
    assert!(!report.ok);

    // Nobody may record an observation through the API.
    let mut forged = observe(Seen {
        source: "okta",
        id: "forged",
        at: now,
        by: "00u-bot",
        principal: None,
        change: dave("admin"),
        hint: None,
    });
    forged.actor = actor("mallory");
    forged.connector = None;
    match store.write(forged).await {
        Err(StoreError::Refused(refusal)) => {
            assert_eq!(refusal.rule, Code::LifecycleSystemEventForged)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // A reviewer confirms it: the case is reviewed, the findings are info.
    clock.advance_seconds(60);
    let reviewed = store
        .write(api(
            "alice",
            "review",
            CaseStep::Review {
                case_id: first.case_id.clone(),
                outcome: ReviewOutcome::Confirmed,
                comment: Some("the deploy bot's rotation".into()),
                revocation_rule: None,
            }
            .into(),
        ))
        .await
        .unwrap();
    assert_eq!(reviewed.state, CaseState::Reviewed);
    let report = audit(&store).await;
    // (A minute passed with no checkpoint signed: `log.no-checkpoint` is
    // the log's business, not this test's.)
    let wrong: Vec<_> = report
        .findings
        .iter()
        .filter(|finding| {
            finding.severity != custody_core::severity::Severity::Info
                && !finding.code.to_string().starts_with("log.")
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(report
        .findings
        .iter()
        .any(|finding| finding.code == Code::ChangeUnsanctioned));
}

#[tokio::test(flavor = "multi_thread")]
async fn access_a_source_still_shows_after_the_expiry_is_drift_until_it_sees_the_revoke() {
    let (_directory, store, clock) = open().await;
    let timed = change(
        (SubjectKind::User, "dave"),
        ChangeKind::Grant,
        "oncall",
        Some(3600),
    );
    let case_id = approved_and_executed(&store, timed.clone(), "timed").await;
    let granted = clock.now();
    store
        .write(observe(Seen {
            source: "okta",
            id: "grant",
            at: granted,
            by: "00u-carol",
            principal: Some("carol"),
            change: change(
                (SubjectKind::User, "dave"),
                ChangeKind::Grant,
                "oncall",
                None,
            ),
            hint: None,
        }))
        .await
        .unwrap();
    assert!(audit(&store).await.ok);

    // An hour and a minute later the access has ended; the source never saw
    // it revoked.
    clock.advance_seconds(3660);
    let report = audit(&store).await;
    let remains: Vec<_> = report
        .findings
        .iter()
        .filter(|finding| finding.code == Code::DriftAccessAfterRevocation)
        .collect();
    assert_eq!(remains.len(), 1, "{:#?}", report.findings);
    assert_eq!(remains[0].case_id.as_deref(), Some(case_id.as_str()));
    assert_eq!(remains[0].source.as_deref(), Some("okta"));
    assert_eq!(remains[0].external_id.as_deref(), Some("grant"));

    // The revoke, seen by the source: bound to the case by its window.
    let revoked = store
        .write(observe(Seen {
            source: "okta",
            id: "revoke",
            at: clock.now(),
            by: "00u-carol",
            principal: Some("carol"),
            change: change(
                (SubjectKind::User, "dave"),
                ChangeKind::Revoke,
                "oncall",
                None,
            ),
            hint: None,
        }))
        .await
        .unwrap();
    assert_eq!(revoked.case_id, case_id);
    let report = audit(&store).await;
    assert!(
        !report
            .findings
            .iter()
            .any(|finding| finding.code == Code::DriftAccessAfterRevocation),
        "{:#?}",
        report.findings
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_change_naming_a_confirmed_unsanctioned_case_is_not_hidden_in_it() {
    let (_directory, store, clock) = open().await;
    let key = change(
        (SubjectKind::ApiKey, "deploy-bot-key-1"),
        ChangeKind::Create,
        "api-key",
        None,
    );
    let now = clock.now();
    let first = store
        .write(observe(Seen {
            source: "okta",
            id: "key-1",
            at: now,
            by: "00u-bot",
            principal: None,
            change: key,
            hint: None,
        }))
        .await
        .unwrap();
    clock.advance_seconds(60);
    store
        .write(api(
            "alice",
            "review",
            CaseStep::Review {
                case_id: first.case_id.clone(),
                outcome: ReviewOutcome::Confirmed,
                comment: None,
                revocation_rule: None,
            }
            .into(),
        ))
        .await
        .unwrap();
    // Someone who knows the confirmed case's ID names it in a session to
    // grant themselves admin: that is not the change the reviewer saw.
    clock.advance_seconds(60);
    store
        .write(observe(Seen {
            source: "okta",
            id: "grab-admin",
            at: clock.now(),
            by: "00u-mallory",
            principal: None,
            change: dave("admin"),
            hint: Some(&first.case_id),
        }))
        .await
        .unwrap();
    let report = audit(&store).await;
    let serious: Vec<_> = report
        .findings
        .iter()
        .filter(|finding| {
            finding.severity != custody_core::severity::Severity::Info
                && !finding.code.to_string().starts_with("log.")
        })
        .map(|finding| finding.code.to_string())
        .collect();
    assert!(
        serious.contains(&Code::DriftWiderThanApproved.to_string())
            || serious.contains(&Code::ChangeUnsanctioned.to_string()),
        "{serious:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_source_dating_an_unsanctioned_change_a_little_earlier_joins_its_case() {
    let (_directory, store, clock) = open().await;
    let key = change(
        (SubjectKind::ApiKey, "deploy-bot-key-1"),
        ChangeKind::Create,
        "api-key",
        None,
    );
    let now = clock.now();
    let first = store
        .write(observe(Seen {
            source: "okta",
            id: "key-1",
            at: now,
            by: "00u-bot",
            principal: None,
            change: key.clone(),
            hint: None,
        }))
        .await
        .unwrap();
    // Sources' clocks and delivery differ: the second one dates the same
    // change a few seconds before the first did.
    let second = store
        .write(observe(Seen {
            source: "cloudtrail",
            id: "key-1",
            at: now.plus_seconds(-5),
            by: "arn:aws:iam::123456789012:user/bot",
            principal: None,
            change: key,
            hint: None,
        }))
        .await
        .unwrap();
    assert_eq!(second.case_id, first.case_id);
    assert_eq!(
        store
            .cases_filtered(None, 10, true, false)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Drill cases (`custody drill`) are left out of listings and exports, so a
/// real change must never be filed into one, whether the record names the
/// drill case, carries its change in its window, or comes in a drill's
/// batch; and a drill's own observation never joins a real case.
#[tokio::test(flavor = "multi_thread")]
async fn a_real_change_never_joins_a_drill_case_nor_a_drill_a_real_one() {
    let (_directory, store, clock) = open().await;
    let drill_change = change(
        (SubjectKind::User, "drill-run-1-ann"),
        ChangeKind::Grant,
        "drill:access",
        None,
    );
    let drill_case = store
        .write(api(
            "admin",
            "drill-request",
            Opening::Request {
                change: drill_change.clone(),
                justification: None,
                ticket: None,
                rule: AppliedRule::brief_default(),
                drill: true,
            }
            .into(),
        ))
        .await
        .unwrap()
        .case_id;
    let real_case = approved_and_executed(&store, dave("db-read"), "real").await;
    let listed = |cases: Vec<custody_store::CaseSummary>| -> Vec<String> {
        cases.into_iter().map(|case| case.case_id).collect()
    };
    clock.advance_seconds(60);
    // A real record naming the drill case, and one carrying its very change.
    for (id, seen_change) in [
        ("names-drill", dave("admin")),
        ("same-change", drill_change.clone()),
    ] {
        let outcome = store
            .write(observe(Seen {
                source: "okta",
                id,
                at: clock.now(),
                by: "00u-mallory",
                principal: None,
                change: seen_change,
                hint: Some(&drill_case),
            }))
            .await
            .unwrap();
        assert_ne!(outcome.case_id, drill_case, "{id} joined the drill case");
        let unsanctioned = listed(store.cases_filtered(None, 50, true, false).await.unwrap());
        assert!(
            unsanctioned.contains(&outcome.case_id.to_string()),
            "{id}: the real change is listed as unsanctioned: {unsanctioned:?}"
        );
    }
    // A drill's batch: its record of a real change is recorded as real (and
    // listed), and its record naming the real case does not join it.
    let mut real_in_drill = observe(Seen {
        source: "okta",
        id: "real-in-drill-batch",
        at: clock.now(),
        by: "00u-drill",
        principal: None,
        change: dave("root"),
        hint: Some(&real_case),
    });
    if let CaseCommand::Client(custody_core::command::ClientCommand::Open(Opening::Observe {
        drill,
        ..
    })) = &mut real_in_drill.command
    {
        *drill = true;
    }
    let outcome = store.write(real_in_drill).await.unwrap();
    assert_ne!(outcome.case_id, real_case);
    let (view, _) = store.case(&outcome.case_id).await.unwrap();
    assert!(!view.drill, "a real change is never recorded as a drill's");
    assert!(
        listed(store.cases_filtered(None, 50, false, false).await.unwrap())
            .contains(&outcome.case_id.to_string())
    );
}
