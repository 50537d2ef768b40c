//! The ledger's records beside cases, at the level of the pure domain: the
//! policy record (a policy change is itself an audited event) with approval
//! stages, and evidence records (evidence held for a ticket before its case).
//! What the audit accepts, and every way a forged, missing or stranded
//! record is named.

#![allow(clippy::unwrap_used, clippy::cast_possible_wrap)]

use custody_core::audit::{Auditor, Report, StoredCaseHead, StoredEvent};
use custody_core::case::CaseView;
use custody_core::lifecycle::{self, Draft, Placement};
use custody_core::model::{Actor, AuthContext, Change, ChangeKind, PrincipalKind, Via};
use custody_core::policy::{Policy, PolicyError};
use custody_core::{CaseId, Event, Sha256Hash, Timestamp};

fn actor(name: &str, groups: &[&str]) -> Actor {
    Actor {
        principal: name.parse().unwrap(),
        kind: PrincipalKind::Human,
        org: None,
        groups: groups.iter().map(|group| group.to_string()).collect(),
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Cli,
        auth: AuthContext::Token {
            token_id: format!("tok_{name}"),
        },
    }
}

fn policy(json: serde_json::Value) -> Policy {
    let policy: Policy = serde_json::from_value(json).unwrap();
    policy.validate().unwrap();
    policy
}

fn stage_policy() -> Policy {
    policy(serde_json::json!({"rules": [{
        "name": "api-key-create",
        "subject_kinds": ["api_key"],
        "stages": [
            {"name": "owner", "approver_groups": ["key-owners"]},
            {"name": "security", "approvals": 2, "approver_groups": ["security"]}
        ]
    }]}))
}

fn key_change() -> Change {
    Change::new(
        "api_key:deploy".parse().unwrap(),
        ChangeKind::Create,
        "deploy".to_string(),
        None,
        None,
    )
    .unwrap()
}

/// A log: events of several cases, in log order, sealed and chained as the store does.
#[derive(Default)]
struct Log {
    events: Vec<Event>,
}

impl Log {
    /// Appends `draft` to `case` (a new case when `None`); returns the case ID.
    fn append(&mut self, case: Option<&CaseId>, actor: Actor, draft: Draft) -> CaseId {
        let previous = case.and_then(|case| {
            self.events
                .iter()
                .rev()
                .find(|event| &event.case_id == case)
        });
        let (case_id, seq, prev_hash) = match previous {
            Some(event) => (event.case_id.clone(), event.seq + 1, Some(event.hash())),
            None => (case.cloned().unwrap_or_else(CaseId::generate), 1, None),
        };
        let index = self.events.len() as i64;
        let event = draft.seal(
            actor,
            Placement {
                case_id: case_id.clone(),
                seq,
                prev_hash,
                recorded_at: Timestamp::from_micros(1_800_000_000_000_000 + index),
                occurred_at: None,
                idempotency_key: None,
                origin: None,
            },
        );
        self.events
            .push(Event::decode(&event.canonical_bytes()).expect("sealed events decode"));
        case_id
    }

    fn audit(&self) -> Report {
        self.audit_at(None)
    }

    fn audit_at(&self, now: Option<Timestamp>) -> Report {
        let mut auditor = match now {
            Some(now) => Auditor::new().at(now),
            None => Auditor::new(),
        };
        for (index, event) in self.events.iter().enumerate() {
            auditor.observe_event(&StoredEvent {
                log_index: index as u64,
                case_id: event.case_id.to_string(),
                seq: event.seq as i64,
                bytes: event.canonical_bytes(),
                stored_leaf: None,
            });
        }
        // Case rows for the request cases, as the store writes them.
        let mut heads = Vec::new();
        let mut case_ids: Vec<&CaseId> = self.events.iter().map(|event| &event.case_id).collect();
        case_ids.dedup();
        for case_id in case_ids {
            let events: Vec<&Event> = self
                .events
                .iter()
                .filter(|event| &event.case_id == case_id)
                .collect();
            if let Some(view) = CaseView::replay(events.iter().copied()) {
                heads.push(StoredCaseHead {
                    drill: false,
                    case_id: view.case_id.to_string(),
                    head_seq: view.head_seq as i64,
                    head_hash: view.head_hash.to_hex(),
                    state: view.state.as_str().to_string(),
                });
            }
        }
        auditor.finish(heads)
    }

    fn view(&self, case: &CaseId) -> CaseView {
        CaseView::replay(self.events.iter().filter(|event| &event.case_id == case)).unwrap()
    }
}

fn codes(report: &Report) -> Vec<&'static str> {
    report
        .findings
        .iter()
        .map(|finding| finding.code.as_str())
        .collect()
}

#[test]
fn adopted_policies_chain_and_cases_cite_them() {
    let first = Policy::default();
    let second = stage_policy();
    let mut log = Log::default();
    let record = log.append(
        None,
        Actor::system(),
        lifecycle::adopt_policy(&first, None, "built-in default"),
    );
    let rule = second.decide(&key_change());
    // A case decided under a policy not yet adopted...
    let early = log.append(
        None,
        actor("ci", &[]),
        lifecycle::request(key_change(), None, None, &rule).unwrap(),
    );
    log.append(
        Some(&record),
        Actor::system(),
        lifecycle::adopt_policy(&second, Some(first.hash()), "/etc/custody.toml"),
    );
    // ...and one decided after it was adopted.
    let other = Change::new(
        "api_key:other".parse().unwrap(),
        ChangeKind::Create,
        "deploy".to_string(),
        None,
        None,
    )
    .unwrap();
    let late = log.append(
        None,
        actor("ci", &[]),
        lifecycle::request(other, None, None, &rule).unwrap(),
    );
    let report = log.audit();
    let unrecorded: Vec<_> = report
        .findings
        .iter()
        .filter(|finding| finding.code == "policy.unrecorded")
        .collect();
    assert_eq!(unrecorded.len(), 1, "{:#?}", report.findings);
    assert_eq!(unrecorded[0].case_id.as_deref(), Some(early.as_str()));
    assert_eq!(
        codes(&report),
        ["policy.unrecorded"],
        "{:#?}",
        report.findings
    );
    assert!(log.view(&late).rule.policy_hash == second.hash());
}

#[test]
fn a_forged_altered_or_misplaced_policy_record_is_named() {
    let first = Policy::default();
    let second = stage_policy();

    // Written by someone other than the ledger.
    let mut log = Log::default();
    log.append(
        None,
        actor("mallory", &[]),
        lifecycle::adopt_policy(&first, None, "x"),
    );
    assert_eq!(codes(&log.audit()), ["policy.record-forged"]);

    // Claims the hash of another policy than the one it carries.
    let mut log = Log::default();
    let mut draft = lifecycle::adopt_policy(&first, None, "x");
    if let custody_core::event::EventBody::PolicyAdopted(adopted) = &mut draft.body {
        adopted.policy_hash = second.hash();
    }
    log.append(None, Actor::system(), draft);
    assert_eq!(codes(&log.audit()), ["policy.record-mismatch"]);

    // Names a predecessor that is not the policy recorded before it.
    let mut log = Log::default();
    let record = log.append(
        None,
        Actor::system(),
        lifecycle::adopt_policy(&first, None, "x"),
    );
    log.append(
        Some(&record),
        Actor::system(),
        lifecycle::adopt_policy(&second, Some(Sha256Hash::of(b"elsewhere")), "y"),
    );
    assert_eq!(codes(&log.audit()), ["policy.record-broken"]);

    // A policy record holding anything but adoptions, and an adoption inside a request's case.
    let mut log = Log::default();
    let record = log.append(
        None,
        Actor::system(),
        lifecycle::adopt_policy(&first, None, "x"),
    );
    log.append(
        Some(&record),
        actor("mallory", &[]),
        Draft {
            body: custody_core::event::EventBody::CommentAdded(custody_core::event::Comment {
                text: "hidden".to_string(),
            }),
            role: custody_core::model::Role::Observer,
            causation: None,
        },
    );
    let case = log.append(
        None,
        actor("alice", &[]),
        lifecycle::request(key_change(), None, None, &first.decide(&key_change())).unwrap(),
    );
    log.append(
        Some(&case),
        Actor::system(),
        lifecycle::adopt_policy(&second, Some(first.hash()), "z"),
    );
    let report = log.audit();
    assert_eq!(
        codes(&report),
        ["policy.record-misplaced", "policy.record-misplaced"],
        "{:#?}",
        report.findings
    );
}

#[test]
fn stages_fill_in_order_from_their_own_groups() {
    let policy = stage_policy();
    let rule = policy.decide(&key_change());
    assert_eq!(rule.approvals, 3, "the stages' approvals add up");
    let mut log = Log::default();
    let case = log.append(
        None,
        actor("ci", &["platform"]),
        lifecycle::request(key_change(), None, None, &rule).unwrap(),
    );
    // Security cannot go first; an outsider cannot fill the owner's stage.
    let view = log.view(&case);
    let refused = lifecycle::approve(&view, &actor("sam", &["security"]), None).unwrap_err();
    assert_eq!(refused.rule, "policy.approver-not-in-stage");
    assert!(
        refused.message.contains("stage `owner`"),
        "{}",
        refused.message
    );
    assert!(
        refused.message.contains("later stage"),
        "{}",
        refused.message
    );
    let refused = lifecycle::approve(&view, &actor("eve", &["eng"]), None).unwrap_err();
    assert_eq!(refused.rule, "policy.approver-not-in-stage");
    assert!(
        !refused.message.contains("later stage"),
        "{}",
        refused.message
    );

    let owner = actor("paula", &["key-owners"]);
    log.append(
        Some(&case),
        owner.clone(),
        lifecycle::approve(&view, &owner, None).unwrap(),
    );
    let sam = actor("sam", &["security"]);
    let view = log.view(&case);
    log.append(
        Some(&case),
        sam.clone(),
        lifecycle::approve(&view, &sam, None).unwrap(),
    );
    let view = log.view(&case);
    assert_eq!(
        view.state,
        custody_core::CaseState::Open,
        "security needs two"
    );
    let progress = view.stage_progress(None);
    assert_eq!(progress[0].approvers.len(), 1);
    assert_eq!(progress[1].approvers.len(), 1);
    assert!(
        lifecycle::approve(&view, &owner, None).is_err(),
        "counts once"
    );
    let sue = actor("sue", &["security"]);
    log.append(
        Some(&case),
        sue.clone(),
        lifecycle::approve(&view, &sue, None).unwrap(),
    );
    assert_eq!(log.view(&case).state, custody_core::CaseState::Approved);
    assert!(
        log.audit().findings.is_empty(),
        "{:#?}",
        log.audit().findings
    );

    // An approval forced in out of order (by a foreign tool) is a finding and does not count.
    let mut log = Log::default();
    let case = log.append(
        None,
        actor("ci", &["platform"]),
        lifecycle::request(key_change(), None, None, &rule).unwrap(),
    );
    let forced = Draft {
        body: custody_core::event::EventBody::ApprovalGranted(custody_core::event::Decision {
            change_hash: log.view(&case).change_hash,
            comment: None,
            chat: None,
        }),
        role: custody_core::model::Role::Approver,
        causation: None,
    };
    log.append(Some(&case), sam.clone(), forced);
    let view = log.view(&case);
    assert!(view.stage_progress(None)[0].approvers.is_empty());
    assert!(view.stage_progress(None)[1].approvers.is_empty());
    assert_eq!(codes(&log.audit()), ["policy.approver-not-in-stage"]);
}

#[test]
fn stages_are_validated() {
    let bad = |rule: serde_json::Value| {
        let policy: Policy =
            serde_json::from_value(serde_json::json!({ "rules": [rule] })).unwrap();
        policy.validate().unwrap_err()
    };
    let mixed = bad(serde_json::json!({
        "name": "r", "approvals": 2, "stages": [{"name": "a"}]
    }));
    assert!(matches!(mixed, PolicyError::Stages { .. }), "{mixed}");
    let zero = bad(serde_json::json!({
        "name": "r", "stages": [{"name": "a", "approvals": 0}]
    }));
    assert!(zero.to_string().contains("0 approvals"), "{zero}");
    let twice = bad(serde_json::json!({
        "name": "r", "stages": [{"name": "a"}, {"name": "a"}]
    }));
    assert!(twice.to_string().contains("two stages"), "{twice}");
    // A rule without stages records none, so its events keep their old encoding.
    let plain = Policy::default().decide(&key_change());
    let bytes = custody_core::canonical::to_canonical_bytes(&plain);
    assert!(!String::from_utf8(bytes).unwrap().contains("stages"));
}

fn held(ticket: &str, bytes: &[u8]) -> Draft {
    Draft {
        body: custody_core::event::EventBody::EvidenceHeld(custody_core::event::HeldEvidence {
            ticket: ticket.parse().unwrap(),
            evidence: custody_core::event::Evidence {
                sha256: Sha256Hash::of(bytes),
                size: bytes.len() as u64,
                file_name: Some("screenshot.png".to_string()),
                declared_media_type: None,
                sniffed_media_type: "image/png".to_string(),
                link: None,
            },
        }),
        role: custody_core::model::Role::Observer,
        causation: None,
    }
}

#[test]
fn held_evidence_must_join_a_case_within_a_day_and_both_halves_must_exist() {
    let recorded = Timestamp::from_micros(1_800_000_000_000_000);
    let mut log = Log::default();
    let record = log.append(None, actor("bob", &[]), held("jira:SEC-9", b"shot"));
    // Within the grace period, held evidence is no finding.
    let report = log.audit_at(Some(recorded.plus_seconds(3600)));
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    assert_eq!(report.evidence.len(), 1, "held blobs are checked too");
    // A day later with no case carrying the ticket, it is.
    let report = log.audit_at(Some(recorded.plus_seconds(25 * 3600)));
    assert_eq!(codes(&report), ["evidence.unattached"]);
    assert_eq!(report.findings[0].case_id.as_deref(), Some(record.as_str()));

    // Released to a case that holds the other half: whole, no finding.
    let policy = Policy::default();
    let case = log.append(
        None,
        actor("alice", &[]),
        lifecycle::request(key_change(), None, None, &policy.decide(&key_change())).unwrap(),
    );
    let join = |record: &CaseId| Draft {
        body: custody_core::event::EventBody::EvidenceJoined(custody_core::event::EvidenceJoin {
            record: record.clone(),
            evidence: Vec::new(),
        }),
        role: custody_core::model::Role::System,
        causation: None,
    };
    let release = |case: &CaseId| Draft {
        body: custody_core::event::EventBody::EvidenceReleased(custody_core::event::CaseLink {
            other_case: case.clone(),
        }),
        role: custody_core::model::Role::System,
        causation: None,
    };
    log.append(Some(&case), Actor::system(), join(&record));
    let mut whole = Log {
        events: log.events.clone(),
    };
    whole.append(Some(&record), Actor::system(), release(&case));
    let report = whole.audit_at(Some(recorded.plus_seconds(25 * 3600)));
    assert!(report.findings.is_empty(), "{:#?}", report.findings);

    // The case claims evidence the record never released: half a link.
    let report = log.audit_at(Some(recorded.plus_seconds(3600)));
    assert_eq!(codes(&report), ["evidence.unmatched-link"]);
}
