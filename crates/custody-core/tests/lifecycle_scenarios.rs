//! Data-driven lifecycle scenarios: `tests/data/lifecycle/*.txt`.
//!
//! Each file holds scenarios separated by blank lines; each scenario is one
//! case. A line is one of:
//!
//! - `ACTOR request KIND:ID ENTITLEMENT [CHANGE] => ok STATE`
//! - `ACTOR approve|deny|execute|execute-failed|comment|review OUTCOME => ok STATE`
//! - `ACTOR ... => refused RULE`: the step is refused by RULE and appends nothing
//! - `force ACTOR approve|execute|review OUTCOME`: append the event without
//!   the write-time rules, as a foreign tool or a database user could
//! - `verify ok` / `verify finding CODE`: audit the trail so far
//!
//! The runner keeps the events exactly as the store would (sealed, chained,
//! canonical) and audits them with [`custody_core::audit::Auditor`].

use std::path::Path;

use custody_core::audit::{Auditor, Report, StoredCaseHead, StoredEvent};
use custody_core::case::CaseView;
use custody_core::event::{Decision, EventBody, Execution, Review, ReviewOutcome};
use custody_core::lifecycle::{self, Draft, Placement, Policy};
use custody_core::model::{Actor, AuthContext, Change, ChangeKind, PrincipalKind, Subject, Via};
use custody_core::{CaseId, Event, Timestamp};

struct Ledger {
    events: Vec<Event>,
    view: Option<CaseView>,
}

fn actor(name: &str) -> Actor {
    Actor {
        principal: name.parse().unwrap(),
        kind: PrincipalKind::Human,
        org: None,
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Cli,
        auth: AuthContext::Token {
            token_id: format!("tok_{name}"),
        },
    }
}

impl Ledger {
    fn append(&mut self, actor: Actor, draft: Draft) {
        let (case_id, seq, prev_hash) = match &self.view {
            Some(view) => (
                view.case_id.clone(),
                view.head_seq + 1,
                Some(view.head_hash),
            ),
            None => (CaseId::generate(), 1, None),
        };
        let event = draft.seal(
            actor,
            Placement {
                case_id,
                seq,
                prev_hash,
                recorded_at: Timestamp::from_micros(1_800_000_000_000_000 + seq as i64),
                occurred_at: None,
                idempotency_key: Some(format!("key-{seq}")),
            },
        );
        // Round-trip through the canonical bytes, as the store does.
        let event = Event::decode(&event.canonical_bytes()).expect("sealed events decode");
        match &mut self.view {
            Some(view) => view.apply(&event),
            None => self.view = CaseView::open(&event),
        }
        self.events.push(event);
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
        let view = self.view.as_ref().expect("a scenario opens a case");
        auditor.finish([StoredCaseHead {
            case_id: view.case_id.to_string(),
            head_seq: view.head_seq as i64,
            head_hash: view.head_hash.to_hex(),
            state: view.state.as_str().to_string(),
        }])
    }
}

fn run_step(ledger: &mut Ledger, who: &str, words: &[&str]) -> Result<Draft, String> {
    let actor = actor(who);
    if words[0] == "request" {
        let subject: Subject = words[1].parse().map_err(|error| format!("{error}"))?;
        let change = Change {
            subject,
            kind: words
                .get(3)
                .map(|kind| kind.parse::<ChangeKind>().unwrap())
                .unwrap_or(ChangeKind::Grant),
            entitlement: words[2].to_string(),
            resource: None,
            duration_seconds: None,
        };
        return Ok(lifecycle::request(change, None, None, &Policy::default()));
    }
    let view = ledger.view.as_ref().expect("request first");
    let result = match words[0] {
        "approve" => lifecycle::approve(view, &actor, None),
        "deny" => lifecycle::deny(view, &actor, None),
        "execute" => view
            .approved()
            .and_then(|approved| lifecycle::execute(approved, &actor, None, None, true)),
        "execute-failed" => view.approved().and_then(|approved| {
            lifecycle::execute(approved, &actor, None, Some("timeout".into()), false)
        }),
        "review" => view.executed().and_then(|executed| {
            lifecycle::review(
                executed,
                &actor,
                words[1].parse::<ReviewOutcome>().unwrap(),
                None,
            )
        }),
        "comment" => Ok(lifecycle::comment(view, &actor, "note".into())),
        other => panic!("unknown step {other}"),
    };
    result.map_err(|refusal| refusal.rule.to_string())
}

fn forced(ledger: &Ledger, words: &[&str]) -> Draft {
    let view = ledger.view.as_ref().expect("request first");
    let (body, role) = match words[0] {
        "approve" => (
            EventBody::ApprovalGranted(Decision {
                change_hash: view.change_hash,
                comment: None,
            }),
            custody_core::Role::Approver,
        ),
        "execute" => (
            EventBody::ExecutionCompleted(Execution {
                change_set: None,
                change_set_hash: None,
                comment: None,
            }),
            custody_core::Role::Executor,
        ),
        "review" => (
            EventBody::ReviewCompleted(Review {
                outcome: words[1].parse().unwrap(),
                comment: None,
            }),
            custody_core::Role::Reviewer,
        ),
        other => panic!("cannot force {other}"),
    };
    Draft {
        body,
        role,
        causation: None,
    }
}

fn run_scenario(file: &Path, scenario: &str) {
    let mut ledger = Ledger {
        events: Vec::new(),
        view: None,
    };
    for line in scenario.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let context = format!("{}: `{line}`", file.display());
        let (step, expectation) = match line.split_once("=>") {
            Some((step, expectation)) => (step.trim(), Some(expectation.trim())),
            None => (line, None),
        };
        let words: Vec<&str> = step.split_whitespace().collect();
        match words[0] {
            "verify" => {
                let report = ledger.audit();
                match &words[1..] {
                    ["ok"] => assert!(
                        report.ok,
                        "{context}: expected a clean trail, got {:#?}",
                        report.findings
                    ),
                    ["finding", code] => assert!(
                        report.findings.iter().any(|finding| finding.code == *code
                            && finding.case_id.as_deref()
                                == Some(ledger.view.as_ref().unwrap().case_id.as_str())),
                        "{context}: expected finding {code}, got {:#?}",
                        report.findings
                    ),
                    other => panic!("{context}: bad verify line {other:?}"),
                }
            }
            "force" => {
                let draft = forced(&ledger, &words[2..]);
                ledger.append(actor(words[1]), draft);
            }
            who => {
                let before = ledger.events.len();
                let result = run_step(&mut ledger, who, &words[1..]);
                let expectation =
                    expectation.unwrap_or_else(|| panic!("{context}: missing `=> ...`"));
                match (result, expectation.split_once(' ')) {
                    (Ok(draft), Some(("ok", state))) => {
                        ledger.append(actor(who), draft);
                        assert_eq!(
                            ledger.view.as_ref().unwrap().state.as_str(),
                            state,
                            "{context}"
                        );
                    }
                    (Err(rule), Some(("refused", expected))) => {
                        assert_eq!(rule, expected, "{context}");
                        assert_eq!(ledger.events.len(), before, "{context}: a refusal appended");
                    }
                    (Ok(_), _) => {
                        panic!("{context}: expected {expectation}, but the step was allowed")
                    }
                    (Err(rule), _) => {
                        panic!("{context}: expected {expectation}, but it was refused by {rule}")
                    }
                }
            }
        }
    }
}

#[test]
fn lifecycle_scenarios() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lifecycle");
    let mut files: Vec<_> = std::fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 7, "scenario files are missing");
    let mut scenarios = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for scenario in text.split("\n\n") {
            if scenario
                .lines()
                .any(|line| !line.trim().is_empty() && !line.trim().starts_with('#'))
            {
                run_scenario(&file, scenario);
                scenarios += 1;
            }
        }
    }
    assert!(scenarios >= 12, "only {scenarios} scenarios ran");
}

#[test]
fn projection_is_deterministic_and_rebuildable() {
    let mut ledger = Ledger {
        events: Vec::new(),
        view: None,
    };
    for (who, step) in [
        ("alice", vec!["request", "user:alice", "admin"]),
        ("bob", vec!["approve"]),
        ("carol", vec!["execute"]),
        ("dave", vec!["review", "confirmed"]),
    ] {
        let draft = run_step(&mut ledger, who, &step).unwrap();
        ledger.append(actor(who), draft);
    }
    let rebuilt = CaseView::replay(&ledger.events).unwrap();
    assert_eq!(Some(&rebuilt), ledger.view.as_ref());
    let again = CaseView::replay(&ledger.events).unwrap();
    assert_eq!(rebuilt, again);
    // The projection survives its own serialisation (the store caches it).
    let cached: CaseView = serde_json::from_slice(&serde_json::to_vec(&rebuilt).unwrap()).unwrap();
    assert_eq!(cached, rebuilt);
}

#[test]
fn every_event_of_a_case_carries_its_case_id_and_chains() {
    let mut ledger = Ledger {
        events: Vec::new(),
        view: None,
    };
    for (who, step) in [
        ("alice", vec!["request", "token:ci", "publish", "rotate"]),
        ("bob", vec!["approve"]),
        ("carol", vec!["comment"]),
        ("carol", vec!["execute"]),
    ] {
        let draft = run_step(&mut ledger, who, &step).unwrap();
        ledger.append(actor(who), draft);
    }
    let case_id = &ledger.events[0].case_id;
    for (index, event) in ledger.events.iter().enumerate() {
        assert_eq!(&event.case_id, case_id);
        assert_eq!(event.seq, index as u64 + 1);
        let expected_prev = (index > 0).then(|| ledger.events[index - 1].hash());
        assert_eq!(event.prev_hash, expected_prev);
    }
    // Causation: the approval answers the request, the execution the approval.
    let ids: Vec<_> = ledger
        .events
        .iter()
        .map(|event| event.event_id.clone())
        .collect();
    assert_eq!(ledger.events[0].causation, None);
    assert_eq!(ledger.events[1].causation.as_ref(), Some(&ids[0]));
    assert_eq!(ledger.events[2].causation, None);
    assert_eq!(ledger.events[3].causation.as_ref(), Some(&ids[1]));
}

fn ledger() -> Ledger {
    Ledger {
        events: Vec::new(),
        view: None,
    }
}

fn audit_together(ledgers: &[&Ledger]) -> Report {
    let mut events: Vec<&Event> = ledgers.iter().flat_map(|ledger| &ledger.events).collect();
    events.sort_by_key(|event| event.recorded_at);
    let mut auditor = Auditor::new();
    for (index, event) in events.iter().enumerate() {
        auditor.observe_event(&StoredEvent {
            log_index: index as u64,
            case_id: event.case_id.to_string(),
            seq: event.seq as i64,
            bytes: event.canonical_bytes(),
            stored_leaf: None,
        });
    }
    auditor.finish(ledgers.iter().map(|ledger| {
        let view = ledger.view.as_ref().unwrap();
        StoredCaseHead {
            case_id: view.case_id.to_string(),
            head_seq: view.head_seq as i64,
            head_hash: view.head_hash.to_hex(),
            state: view.state.as_str().to_string(),
        }
    }))
}

#[test]
fn merging_a_duplicate_links_both_cases_and_closes_the_duplicate() {
    // Two systems recorded the same need with different words.
    let mut survivor = ledger();
    let draft = run_step(
        &mut survivor,
        "alice",
        &["request", "user:alice", "db-admin"],
    )
    .unwrap();
    survivor.append(actor("alice"), draft);
    let mut duplicate = ledger();
    let draft = run_step(
        &mut duplicate,
        "alice",
        &["request", "user:alice", "prod-db-admin"],
    )
    .unwrap();
    duplicate.append(actor("alice"), draft);

    let refusal = |result: Result<(Draft, Draft), custody_core::lifecycle::Refusal>| {
        result.map(|_| ()).unwrap_err().rule
    };
    let (d, s) = (
        duplicate.view.clone().unwrap(),
        survivor.view.clone().unwrap(),
    );
    assert_eq!(
        refusal(lifecycle::merge(&d, &d, &actor("carol"), None)),
        "merge.same-case"
    );
    let (into_duplicate, into_survivor) =
        lifecycle::merge(&d, &s, &actor("carol"), Some("same ticket twice".into())).unwrap();
    duplicate.append(actor("carol"), into_duplicate);
    survivor.append(actor("carol"), into_survivor);
    let (d, s) = (
        duplicate.view.clone().unwrap(),
        survivor.view.clone().unwrap(),
    );
    assert_eq!(d.state.as_str(), "merged");
    assert_eq!(d.merged_into.as_ref(), Some(&s.case_id));
    assert_eq!(s.duplicates, vec![d.case_id.clone()]);
    assert_eq!(s.state.as_str(), "open");
    assert!(audit_together(&[&survivor, &duplicate]).ok);

    // The duplicate is closed: no decision, execution, review or second merge.
    assert_eq!(
        lifecycle::approve(&d, &actor("bob"), None)
            .unwrap_err()
            .rule,
        "lifecycle.case-merged"
    );
    assert_eq!(d.approved().unwrap_err().rule, "lifecycle.case-merged");
    assert_eq!(
        refusal(lifecycle::merge(&d, &s, &actor("carol"), None)),
        "lifecycle.case-merged"
    );
    assert_eq!(
        refusal(lifecycle::merge(&s, &d, &actor("carol"), None)),
        "lifecycle.case-merged"
    );
    // The survivor carries on.
    let draft = run_step(&mut survivor, "bob", &["approve"]).unwrap();
    survivor.append(actor("bob"), draft);
    let draft = run_step(&mut survivor, "carol", &["execute"]).unwrap();
    survivor.append(actor("carol"), draft);
    assert!(audit_together(&[&survivor, &duplicate]).ok);

    // An executed case cannot be merged away.
    let mut other = ledger();
    let draft = run_step(&mut other, "dave", &["request", "group:ops", "member"]).unwrap();
    other.append(actor("dave"), draft);
    let executed = survivor.view.clone().unwrap();
    assert_eq!(
        refusal(lifecycle::merge(
            &executed,
            other.view.as_ref().unwrap(),
            &actor("carol"),
            None
        )),
        "merge.duplicate-executed"
    );
}

#[test]
fn verify_reports_half_a_merge_and_work_on_a_merged_case() {
    let mut survivor = ledger();
    let draft = run_step(&mut survivor, "alice", &["request", "user:alice", "admin"]).unwrap();
    survivor.append(actor("alice"), draft);
    let mut duplicate = ledger();
    let draft = run_step(&mut duplicate, "alice", &["request", "user:alice", "root"]).unwrap();
    duplicate.append(actor("alice"), draft);
    let (into_duplicate, _into_survivor) = lifecycle::merge(
        duplicate.view.as_ref().unwrap(),
        survivor.view.as_ref().unwrap(),
        &actor("carol"),
        None,
    )
    .unwrap();
    // Only the duplicate's half is recorded (the survivor's was removed).
    duplicate.append(actor("carol"), into_duplicate);
    let report = audit_together(&[&survivor, &duplicate]);
    let codes: Vec<&str> = report.findings.iter().map(|finding| finding.code).collect();
    assert_eq!(
        codes,
        vec!["merge.unmatched-link"],
        "{:#?}",
        report.findings
    );
    assert_eq!(
        report.findings[0].case_id.as_deref(),
        Some(duplicate.view.as_ref().unwrap().case_id.as_str())
    );

    // An execution forced onto the merged duplicate is a finding.
    let draft = forced(&duplicate, &["execute"]);
    duplicate.append(actor("carol"), draft);
    let report = audit_together(&[&survivor, &duplicate]);
    assert!(
        report
            .findings
            .iter()
            .any(|finding| finding.code == "lifecycle.case-merged"),
        "{:#?}",
        report.findings
    );
}
