//! Data-driven lifecycle scenarios: `tests/data/lifecycle/*.txt`.
//!
//! Each file holds scenarios separated by blank lines; each scenario is one
//! case. A line is one of:
//!
//! - `ACTOR request KIND:ID ENTITLEMENT [CHANGE] => ok STATE`
//! - `ACTOR approve|deny|execute|execute-failed|execute-observed|comment|review OUTCOME => ok STATE`
//! - `ACTOR ... => refused RULE`: the step is refused by RULE; the case is
//!   left as it was (same head), and the event the step would have written,
//!   forced into the trail anyway, is reported by the audit at that event
//!   with the same code (the write path and the audit share one rule table)
//! - `force ACTOR approve|deny|execute|review OUTCOME`: append the event
//!   without the write-time rules, as a foreign tool or a database user could
//! - `verify ok` / `verify findings CODE@SEQ...`: audit the trail so far; the
//!   findings must be exactly those listed (code and sequence number), no
//!   more and no fewer
//!
//! The runner keeps the events exactly as the store would (sealed, chained,
//! canonical) and audits them with [`custody_core::audit::Auditor`].

#![allow(clippy::unwrap_used, clippy::cast_possible_wrap)]

use std::path::Path;

use custody_core::audit::{Auditor, Report, StoredCaseHead, StoredEvent};
use custody_core::case::CaseView;
use custody_core::event::{Decision, EventBody, Execution, Review, ReviewOutcome};
use custody_core::lifecycle::{self, Draft, Placement};
use custody_core::model::{Actor, AuthContext, Change, ChangeKind, PrincipalKind, Subject, Via};
use custody_core::policy::AppliedRule;
use custody_core::{CaseId, Event, Timestamp};

#[derive(Clone)]
struct Ledger {
    events: Vec<Event>,
    view: Option<CaseView>,
}

fn actor(name: &str) -> Actor {
    Actor {
        principal: name.parse().unwrap(),
        kind: PrincipalKind::Human,
        org: None,
        groups: Vec::new(),
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
                origin: None,
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
            drill: false,
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
        let change = Change::new(
            subject,
            words
                .get(3)
                .map(|kind| kind.parse::<ChangeKind>().unwrap())
                .unwrap_or(ChangeKind::Grant),
            words[2].to_string(),
            None,
            None,
        )
        .unwrap();
        return lifecycle::request(change, None, None, &AppliedRule::brief_default())
            .map_err(|refusal| refusal.rule.to_string());
    }
    let view = ledger.view.as_ref().expect("request first");
    let result = match words[0] {
        "approve" => lifecycle::approve(view, &actor, None),
        "deny" => lifecycle::deny(view, &actor, None),
        "execute" => view
            .approved()
            .and_then(|approved| lifecycle::execute(approved, &actor, None, None, true, None)),
        "execute-failed" => view.approved().and_then(|approved| {
            lifecycle::execute(approved, &actor, None, Some("timeout".into()), false, None)
        }),
        "execute-observed" => lifecycle::execute_observed(view, &actor, None, None, None),
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
                chat: None,
            }),
            custody_core::Role::Approver,
        ),
        "deny" => (
            EventBody::ApprovalDenied(Decision {
                change_hash: view.change_hash,
                comment: None,
                chat: None,
            }),
            custody_core::Role::Approver,
        ),
        "execute" | "execute-observed" => (
            EventBody::ExecutionCompleted(Execution {
                change_set: None,
                change_set_hash: None,
                comment: None,
                applied: None,
            }),
            custody_core::Role::Executor,
        ),
        "execute-failed" => (
            EventBody::ExecutionFailed(Execution {
                change_set: None,
                change_set_hash: None,
                comment: Some("timeout".into()),
                applied: None,
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
                let case_id = ledger.view.as_ref().unwrap().case_id.to_string();
                let mut found: Vec<String> = report
                    .findings
                    .iter()
                    .map(|finding| {
                        assert_eq!(
                            finding.case_id.as_deref(),
                            Some(case_id.as_str()),
                            "{context}: a finding about another case: {finding:#?}"
                        );
                        match finding.seq {
                            Some(seq) => format!("{}@{seq}", finding.code),
                            None => finding.code.to_string(),
                        }
                    })
                    .collect();
                found.sort();
                let mut expected: Vec<String> = match &words[1..] {
                    ["ok"] => Vec::new(),
                    ["findings", codes @ ..] if !codes.is_empty() => {
                        codes.iter().map(|code| code.to_string()).collect()
                    }
                    other => panic!("{context}: bad verify line {other:?}"),
                };
                expected.sort();
                assert_eq!(
                    found, expected,
                    "{context}: the audit found exactly these, in {:#?}",
                    report.findings
                );
            }
            "force" => {
                let draft = forced(&ledger, &words[2..]);
                ledger.append(actor(words[1]), draft);
            }
            who => {
                let head = ledger
                    .view
                    .as_ref()
                    .map(|view| (view.head_seq, view.head_hash, view.state));
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
                        let now = ledger
                            .view
                            .as_ref()
                            .map(|view| (view.head_seq, view.head_hash, view.state));
                        assert_eq!(now, head, "{context}: a refused step changed the case");
                        assert_refusal_is_a_finding(&ledger, who, &words[1..], &rule, &context);
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

/// The audit's code for the event of a step the write path refused with
/// `rule`, had it been written anyway. The same code, except for an
/// execution refused as `lifecycle.not-approved` on an open case: the same
/// event is what an execution observed before its approval looks like, so
/// the audit judges it once the whole trail is read, at the same event.
fn audit_code_for(rule: &str, step: &str) -> String {
    match (rule, step) {
        ("lifecycle.not-approved", "execute") => "lifecycle.execution-without-approval".into(),
        _ => rule.to_string(),
    }
}

/// Forces the event a refused step would have written onto a copy of the
/// trail and checks that the audit reports the refusal's rule at that event.
fn assert_refusal_is_a_finding(
    ledger: &Ledger,
    who: &str,
    words: &[&str],
    rule: &str,
    context: &str,
) {
    if words[0] == "request" {
        return;
    }
    let mut forced_trail = ledger.clone();
    let draft = forced(&forced_trail, words);
    forced_trail.append(actor(who), draft);
    let seq = forced_trail.view.as_ref().unwrap().head_seq;
    let expected = audit_code_for(rule, words[0]);
    let report = forced_trail.audit();
    assert!(
        report
            .findings
            .iter()
            .any(|finding| finding.code == *expected && finding.seq == Some(seq)),
        "{context}: refused as {rule}, but the audit of the same event forced into the trail reports no {expected} at seq {seq}: {:#?}",
        report.findings
    );
}

#[test]
fn lifecycle_scenarios() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lifecycle");
    let mut files: Vec<_> = std::fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 8, "scenario files are missing");
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
            drill: false,
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
        refusal(lifecycle::merge(&d, &d, &admin("carol"), None)),
        "merge.same-case"
    );
    let (into_duplicate, into_survivor) =
        lifecycle::merge(&d, &s, &admin("carol"), Some("same ticket twice".into())).unwrap();
    duplicate.append(admin("carol"), into_duplicate);
    survivor.append(admin("carol"), into_survivor);
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
        refusal(lifecycle::merge(&d, &s, &admin("carol"), None)),
        "lifecycle.case-merged"
    );
    assert_eq!(
        refusal(lifecycle::merge(&s, &d, &admin("carol"), None)),
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
            &admin("carol"),
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
        &actor("alice"),
        None,
    )
    .unwrap();
    // Only the duplicate's half is recorded (the survivor's was removed).
    duplicate.append(actor("alice"), into_duplicate);
    let report = audit_together(&[&survivor, &duplicate]);
    let codes: Vec<&str> = report
        .findings
        .iter()
        .map(|finding| finding.code.as_str())
        .collect();
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

/// A member of the `admins` group, as the server records it in the actor.
fn admin(name: &str) -> Actor {
    actor_in(name, PrincipalKind::Human, None, &[lifecycle::ADMINS_GROUP])
}

/// The audit pairs the two halves of every link between cases (indexed by
/// case, so in linear time): a half is matched only by the other case's half
/// of the partner kind pointing back at it, whatever else either case holds.
#[test]
fn verify_pairs_every_case_link_with_its_other_half_among_many_cases() {
    const PAIRS: usize = 40;
    let mut survivors: Vec<Ledger> = Vec::new();
    let mut duplicates: Vec<Ledger> = Vec::new();
    for index in 0..PAIRS {
        for (ledgers, entitlement) in [(&mut survivors, "admin"), (&mut duplicates, "root")] {
            let mut case = ledger();
            let subject = format!("user:u{index}");
            let draft = run_step(&mut case, "alice", &["request", &subject, entitlement]).unwrap();
            case.append(actor("alice"), draft);
            ledgers.push(case);
        }
    }
    let view = |case: &Ledger| case.view.clone().unwrap();
    // Duplicate 1 is also "merged" into survivor 2 by a forged half in
    // survivor 2 alone; it is computed before duplicate 1 is closed.
    let (_, forged) = lifecycle::merge(
        &view(&duplicates[1]),
        &view(&survivors[2]),
        &actor("alice"),
        None,
    )
    .unwrap();
    for index in 0..PAIRS {
        let (into_duplicate, into_survivor) = lifecycle::merge(
            &view(&duplicates[index]),
            &view(&survivors[index]),
            &actor("alice"),
            None,
        )
        .unwrap();
        duplicates[index].append(actor("alice"), into_duplicate);
        // Survivor 0's half is removed.
        if index != 0 {
            survivors[index].append(actor("alice"), into_survivor);
        }
    }
    survivors[2].append(actor("alice"), forged);

    let all: Vec<&Ledger> = survivors.iter().chain(duplicates.iter()).collect();
    let report = audit_together(&all);
    assert_eq!(report.checked.case_links, (2 * PAIRS) as u64);
    let mut unmatched: Vec<(String, String)> = report
        .findings
        .iter()
        .filter(|finding| finding.code == "merge.unmatched-link")
        .map(|finding| {
            (
                finding.case_id.clone().unwrap_or_default(),
                finding.message.clone(),
            )
        })
        .collect();
    unmatched.sort();
    let case_of = |case: &Ledger| view(case).case_id.to_string();
    let mut expected = vec![case_of(&duplicates[0]), case_of(&survivors[2])];
    expected.sort();
    assert_eq!(
        unmatched
            .iter()
            .map(|(case, _)| case.clone())
            .collect::<Vec<_>>(),
        expected,
        "{:#?}",
        report.findings
    );
    for (case, message) in &unmatched {
        let points_to = if *case == case_of(&duplicates[0]) {
            case_of(&survivors[0])
        } else {
            case_of(&duplicates[1])
        };
        assert!(message.contains(&points_to), "{message}");
    }

    // Whole again (survivor 0's half back, the forged half never written),
    // every link pairs.
    let mut survivors_whole: Vec<Ledger> = Vec::new();
    let mut duplicates_whole: Vec<Ledger> = Vec::new();
    for index in 0..PAIRS {
        let mut survivor = ledger();
        let subject = format!("user:w{index}");
        let draft = run_step(&mut survivor, "alice", &["request", &subject, "admin"]).unwrap();
        survivor.append(actor("alice"), draft);
        let mut duplicate = ledger();
        let draft = run_step(&mut duplicate, "alice", &["request", &subject, "root"]).unwrap();
        duplicate.append(actor("alice"), draft);
        let (into_duplicate, into_survivor) =
            lifecycle::merge(&view(&duplicate), &view(&survivor), &actor("alice"), None).unwrap();
        duplicate.append(actor("alice"), into_duplicate);
        survivor.append(actor("alice"), into_survivor);
        survivors_whole.push(survivor);
        duplicates_whole.push(duplicate);
    }
    let all: Vec<&Ledger> = survivors_whole
        .iter()
        .chain(duplicates_whole.iter())
        .collect();
    let report = audit_together(&all);
    assert!(report.ok, "{:#?}", report.findings);
    assert_eq!(report.checked.case_links, (2 * PAIRS) as u64);
}

fn actor_in(name: &str, kind: PrincipalKind, org: Option<&str>, groups: &[&str]) -> Actor {
    Actor {
        kind,
        org: org.map(str::to_string),
        groups: groups.iter().map(|group| group.to_string()).collect(),
        ..actor(name)
    }
}

fn production_policy() -> custody_core::policy::Policy {
    let text = r#"
        [[rules]]
        name = "prod-admin"
        subject_kinds = ["user"]
        entitlements = ["admin", "db-*"]
        resources = ["prod-*"]
        changes = ["grant"]
        approvals = 2
        approver_groups = ["security"]
        approver_not_in_requester_org = true
        executor_kinds = ["automation"]
        max_duration = "8h"

        [[rules]]
        name = "api-keys"
        subject_kinds = ["api_key"]
        approver_groups = ["key-owners", "security"]
    "#;
    let policy: custody_core::policy::Policy = toml_like(text);
    policy.validate().unwrap();
    policy
}

/// The tests read policies as the server does, through serde (TOML there;
/// JSON here keeps custody-core free of a TOML dependency).
fn toml_like(text: &str) -> custody_core::policy::Policy {
    let mut rules = Vec::new();
    for block in text.split("[[rules]]").skip(1) {
        let mut rule = serde_json::Map::new();
        for line in block.lines().map(str::trim).filter(|line| !line.is_empty()) {
            let (key, value) = line.split_once('=').unwrap();
            let value: serde_json::Value = serde_json::from_str(value.trim()).unwrap();
            rule.insert(key.trim().to_string(), value);
        }
        rules.push(serde_json::Value::Object(rule));
    }
    serde_json::from_value(serde_json::json!({ "rules": rules })).unwrap()
}

fn change(
    subject: &str,
    entitlement: &str,
    resource: Option<&str>,
    duration: Option<u64>,
) -> Change {
    Change::new(
        subject.parse().unwrap(),
        ChangeKind::Grant,
        entitlement.to_string(),
        resource.map(str::to_string),
        duration,
    )
    .unwrap()
}

#[test]
fn the_first_matching_rule_decides_and_is_recorded() {
    let policy = production_policy();
    let decided = policy.decide(&change(
        "user:alice",
        "db-admin",
        Some("prod-eu"),
        Some(3600),
    ));
    assert_eq!(decided.name, "prod-admin");
    assert_eq!(decided.approvals, 2);
    assert_eq!(decided.policy_hash, policy.hash());
    assert_eq!(decided.max_duration_seconds, Some(8 * 3600));
    // No resource, a different resource, another kind: not this rule.
    assert_eq!(
        policy
            .decide(&change("user:alice", "admin", None, None))
            .name,
        "default"
    );
    assert_eq!(
        policy
            .decide(&change("user:alice", "admin", Some("staging"), None))
            .name,
        "default"
    );
    assert_eq!(
        policy
            .decide(&change("api_key:ci", "scope:deploy", None, None))
            .name,
        "api-keys"
    );
    // The default rule is the brief's.
    let default =
        custody_core::policy::Policy::default().decide(&change("user:x", "y", None, None));
    assert_eq!((default.name.as_str(), default.approvals), ("default", 1));
    // A policy that changes has another hash.
    let mut changed = policy.clone();
    changed.rules[0].approvals = 3;
    assert_ne!(changed.hash(), policy.hash());

    // Invalid policies are refused with a clear reason.
    for (mutate, expected) in [
        (
            (|policy: &mut custody_core::policy::Policy| policy.rules[1].name = "prod-admin".into())
                as fn(&mut custody_core::policy::Policy),
            "named `prod-admin`",
        ),
        (|policy| policy.rules[0].approvals = 0, "0 approvals"),
        (
            |policy| policy.rules[0].max_duration = Some("forever".into()),
            "not a duration",
        ),
        (|policy| policy.rules[0].name = "default".into(), "reserved"),
    ] {
        let mut broken = production_policy();
        mutate(&mut broken);
        let error = broken.validate().unwrap_err().to_string();
        assert!(error.contains(expected), "{error}");
    }
}

#[test]
fn a_rule_binds_approvers_executors_and_durations_and_verify_rechecks_it() {
    let policy = production_policy();
    let requester = actor_in(
        "alice",
        PrincipalKind::Human,
        Some("acme"),
        &["engineering"],
    );
    let sec_outside = actor_in("sam", PrincipalKind::Human, Some("audit-co"), &["security"]);
    let sec_inside = actor_in("sara", PrincipalKind::Human, Some("acme"), &["security"]);
    let sec_second = actor_in("sid", PrincipalKind::Human, Some("audit-co"), &["security"]);
    let outsider = actor_in(
        "otto",
        PrincipalKind::Human,
        Some("audit-co"),
        &["engineering"],
    );
    let robot = actor_in(
        "provisioner",
        PrincipalKind::Automation,
        Some("acme"),
        &["bots"],
    );

    let rule = policy.decide(&change("user:alice", "admin", Some("prod-db"), None));
    let refused = lifecycle::request(
        change("user:alice", "admin", Some("prod-db"), None),
        None,
        None,
        &rule,
    )
    .unwrap_err();
    assert_eq!(refused.rule, "policy.duration-required");
    let too_long = change("user:alice", "admin", Some("prod-db"), Some(9 * 3600));
    assert_eq!(
        lifecycle::request(too_long, None, None, &rule)
            .unwrap_err()
            .rule,
        "policy.duration-too-long"
    );

    let mut case = ledger();
    let wanted = change("user:alice", "admin", Some("prod-db"), Some(3600));
    let draft = lifecycle::request(wanted, None, None, &rule).unwrap();
    case.append(requester.clone(), draft);
    let view = case.view.clone().unwrap();
    assert_eq!(view.rule.name, "prod-admin");
    assert_eq!(view.approvals_required, 2);

    assert_eq!(
        lifecycle::approve(&view, &outsider, None).unwrap_err().rule,
        "policy.approver-not-in-group"
    );
    assert_eq!(
        lifecycle::approve(&view, &sec_inside, None)
            .unwrap_err()
            .rule,
        "sod.approver-same-org"
    );
    let draft = lifecycle::approve(&view, &sec_outside, None).unwrap();
    case.append(sec_outside.clone(), draft);
    let view = case.view.clone().unwrap();
    assert_eq!(view.state.as_str(), "open", "one of two approvals");
    assert_eq!(view.approved().unwrap_err().rule, "lifecycle.not-approved");
    let draft = lifecycle::approve(&view, &sec_second, None).unwrap();
    case.append(sec_second.clone(), draft);
    let view = case.view.clone().unwrap();
    assert_eq!(view.state.as_str(), "approved");

    let human_executor = actor_in("carol", PrincipalKind::Human, Some("acme"), &["sre"]);
    assert_eq!(
        lifecycle::execute(
            view.approved().unwrap(),
            &human_executor,
            None,
            None,
            true,
            None
        )
        .unwrap_err()
        .rule,
        "policy.executor-not-allowed"
    );
    let draft =
        lifecycle::execute(view.approved().unwrap(), &robot, None, None, true, None).unwrap();
    case.append(robot.clone(), draft);
    assert!(case.audit().ok, "{:#?}", case.audit().findings);

    // Events that bypass the rule are reported by verify from the events alone.
    let mut forced_case = ledger();
    let draft = lifecycle::request(
        change("user:alice", "admin", Some("prod-db"), Some(3600)),
        None,
        None,
        &rule,
    )
    .unwrap();
    forced_case.append(requester, draft);
    let draft = forced(&forced_case, &["approve"]);
    forced_case.append(outsider, draft);
    let draft = forced(&forced_case, &["approve"]);
    forced_case.append(sec_inside, draft);
    let draft = forced(&forced_case, &["execute"]);
    forced_case.append(human_executor, draft);
    let codes: Vec<&str> = forced_case
        .audit()
        .findings
        .iter()
        .map(|finding| finding.code.as_str())
        .collect();
    for expected in [
        "policy.approver-not-in-group",
        "sod.approver-same-org",
        "policy.executor-not-allowed",
    ] {
        assert!(
            codes.contains(&expected),
            "{expected} missing from {codes:?}"
        );
    }
}

#[test]
fn break_glass_waits_for_review_and_overdue_reviews_are_reported() {
    let now = Timestamp::from_micros(1_800_000_000_000_000);
    let rule = AppliedRule::brief_default();
    let drafts = lifecycle::break_glass(
        change("user:oncall", "db-admin", None, None),
        "database down".into(),
        None,
        &rule,
        None,
        now,
    )
    .unwrap();
    let mut case = ledger();
    for draft in drafts {
        case.append(actor("oncall"), draft);
    }
    let view = case.view.clone().unwrap();
    assert_eq!(view.state.as_str(), "pending_review");
    assert_eq!(view.break_glass_deadline, Some(now.plus_seconds(24 * 3600)));
    assert!(case.audit().ok, "{:#?}", case.audit().findings);
    // Not overdue before the deadline, overdue after, not again once escalated.
    assert!(lifecycle::overdue(&view, now).is_empty());
    let later = now.plus_seconds(25 * 3600);
    let due = lifecycle::overdue(&view, later);
    assert_eq!(
        due,
        vec![(
            lifecycle::BREAK_GLASS_REVIEW_OVERDUE,
            now.plus_seconds(24 * 3600)
        )]
    );
    case.append(Actor::system(), lifecycle::escalate(due[0].0, due[0].1));
    let view = case.view.clone().unwrap();
    assert!(lifecycle::overdue(&view, later).is_empty());
    assert_eq!(
        view.escalations,
        vec![lifecycle::BREAK_GLASS_REVIEW_OVERDUE.to_string()]
    );
    // The actor cannot review it; someone else can.
    assert_eq!(
        lifecycle::review(
            view.executed().unwrap(),
            &actor("oncall"),
            ReviewOutcome::Confirmed,
            None
        )
        .unwrap_err()
        .rule,
        "sod.reviewer-is-requester"
    );
    let draft = lifecycle::review(
        view.executed().unwrap(),
        &actor("dave"),
        ReviewOutcome::Confirmed,
        None,
    )
    .unwrap();
    case.append(actor("dave"), draft);
    assert_eq!(case.view.as_ref().unwrap().state.as_str(), "reviewed");

    // A rule without break-glass refuses it, and verify reports a forced one.
    let strict = AppliedRule {
        break_glass: false,
        ..AppliedRule::brief_default()
    };
    let refused = lifecycle::break_glass(
        change("user:x", "y", None, None),
        "z".into(),
        None,
        &strict,
        None,
        now,
    );
    assert_eq!(refused.unwrap_err().rule, "policy.break-glass-not-allowed");
    let mut forced_case = ledger();
    let [request, invoked, execution] = lifecycle::break_glass(
        change("user:x", "y", None, None),
        "z".into(),
        None,
        &AppliedRule::brief_default(),
        None,
        now,
    )
    .unwrap();
    // The same events, but under a request whose recorded rule forbids break-glass.
    let request = match request.body {
        EventBody::RequestCreated(mut created) => {
            created.rule = strict.clone();
            Draft {
                body: EventBody::RequestCreated(created),
                ..request
            }
        }
        _ => unreachable!("break-glass starts with a request"),
    };
    for draft in [request, invoked, execution] {
        forced_case.append(actor("oncall"), draft);
    }
    let codes: Vec<&str> = forced_case
        .audit()
        .findings
        .iter()
        .map(|finding| finding.code.as_str())
        .collect();
    assert_eq!(codes, vec!["policy.break-glass-not-allowed"]);
}

#[test]
fn verify_reports_missed_reviews_and_revocations_as_of_its_own_time() {
    let robot = actor_in("provisioner", PrincipalKind::Automation, None, &[]);
    let mut case = ledger();
    let rule = AppliedRule::brief_default();
    let draft = lifecycle::request(
        change("user:alice", "admin", None, Some(3600)),
        None,
        None,
        &rule,
    )
    .unwrap();
    case.append(actor("alice"), draft);
    let draft = run_step(&mut case, "bob", &["approve"]).unwrap();
    case.append(actor("bob"), draft);
    let view = case.view.clone().unwrap();
    let draft =
        lifecycle::execute(view.approved().unwrap(), &robot, None, None, true, None).unwrap();
    case.append(robot.clone(), draft);
    let view = case.view.clone().unwrap();
    let executed = case.events.last().unwrap().recorded_at;
    assert_eq!(
        view.expires_at,
        Some(case.events.last().unwrap().occurred_at.plus_seconds(3600))
    );
    assert_eq!(view.review_due, Some(executed.plus_seconds(24 * 3600)));
    assert_eq!(view.next_deadline(), view.expires_at);

    let audit_at = |case: &Ledger, seconds: i64| {
        let mut auditor = Auditor::new().at(executed.plus_seconds(seconds));
        for (index, event) in case.events.iter().enumerate() {
            auditor.observe_event(&StoredEvent {
                log_index: index as u64,
                case_id: event.case_id.to_string(),
                seq: event.seq as i64,
                bytes: event.canonical_bytes(),
                stored_leaf: None,
            });
        }
        let view = case.view.as_ref().unwrap();
        let report = auditor.finish([StoredCaseHead {
            drill: false,
            case_id: view.case_id.to_string(),
            head_seq: view.head_seq as i64,
            head_hash: view.head_hash.to_hex(),
            state: view.state.as_str().to_string(),
        }]);
        report
            .findings
            .iter()
            .map(|finding| finding.code.as_str())
            .collect::<Vec<_>>()
    };
    assert!(audit_at(&case, 60).is_empty());
    // Past the end of the access plus the grace hour, no revocation recorded.
    assert_eq!(
        audit_at(&case, 2 * 3600 + 1),
        vec!["expiry.revocation-overdue"]
    );
    // Past the review deadline too.
    let codes = audit_at(&case, 25 * 3600);
    assert!(codes.contains(&"review.overdue") && codes.contains(&"expiry.revocation-overdue"));
    // The ledger's timer records the revocation as due; the executor revokes.
    let due = lifecycle::overdue(&view, executed.plus_seconds(3601));
    assert_eq!(
        due,
        vec![(lifecycle::EXPIRY_REVOCATION_DUE, view.expires_at.unwrap())]
    );
    case.append(Actor::system(), lifecycle::escalate(due[0].0, due[0].1));
    assert!(case.view.as_ref().unwrap().revocation_due);
    let view = case.view.clone().unwrap();
    let draft = lifecycle::execute_revocation(&view, &robot, None, None).unwrap();
    case.append(robot, draft);
    assert_eq!(audit_at(&case, 25 * 3600), vec!["review.overdue"]);
    let draft = run_step(&mut case, "dave", &["review", "confirmed"]).unwrap();
    case.append(actor("dave"), draft);
    assert!(audit_at(&case, 25 * 3600).is_empty());
    assert_eq!(case.view.as_ref().unwrap().next_deadline(), None);
}

#[test]
fn vendor_actions_without_a_grant_are_findings_and_grants_bound_scope_and_time() {
    use custody_core::delegation::{grant_for, DelegationGrant};
    use custody_core::model::Principal;
    let vendor = actor_in("vera", PrincipalKind::Vendor, Some("msp-co"), &[]);
    let mut case = ledger();
    let draft = run_step(&mut case, "alice", &["request", "user:alice", "db-reader"]).unwrap();
    case.append(actor("alice"), draft);
    let draft = forced(&case, &["approve"]);
    case.append(vendor.clone(), draft);
    let codes: Vec<&str> = case
        .audit()
        .findings
        .iter()
        .map(|finding| finding.code.as_str())
        .collect();
    assert_eq!(codes, vec!["delegation.missing"]);

    let now = Timestamp::from_micros(1_800_000_000_000_000);
    let principal = Principal {
        id: "vera".parse().unwrap(),
        display_name: "Vera".into(),
        kind: PrincipalKind::Vendor,
        groups: vec![],
        org: Some("msp-co".into()),
    };
    let grant = DelegationGrant {
        grant_id: "dg_1".into(),
        vendor_org: "msp-co".into(),
        principals: vec![],
        on_behalf_of: "dba-team".into(),
        entitlements: vec!["db-*".into()],
        resources: vec![],
        valid_until: now.plus_seconds(60),
        revoked_at: None,
        granted_by: "admin".parse().unwrap(),
        granted_at: now,
    };
    let grants = vec![grant];
    let db = change("user:alice", "db-reader", None, None);
    assert_eq!(
        grant_for(&grants, &principal, &db, now)
            .unwrap()
            .unwrap()
            .grant_id,
        "dg_1"
    );
    let admin = change("user:alice", "admin", None, None);
    assert_eq!(
        grant_for(&grants, &principal, &admin, now)
            .unwrap_err()
            .rule,
        "delegation.out-of-scope"
    );
    assert_eq!(
        grant_for(&grants, &principal, &db, now.plus_seconds(61))
            .unwrap_err()
            .rule,
        "delegation.expired"
    );
    let other_org = Principal {
        org: Some("other".into()),
        ..principal.clone()
    };
    assert_eq!(
        grant_for(&grants, &other_org, &db, now).unwrap_err().rule,
        "delegation.none"
    );
    // Internal principals need no grant.
    let internal = Principal {
        kind: PrincipalKind::Human,
        ..principal
    };
    assert!(grant_for(&grants, &internal, &admin, now)
        .unwrap()
        .is_none());
}
