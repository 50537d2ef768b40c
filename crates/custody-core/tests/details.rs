//! Details of recorded behaviour that the broader tests leave loose: the
//! instant a grant ends, the role an event records its actor in, the names
//! things are printed by. A mutation-testing run (docs/mutants.md) showed
//! that changing any of these changed no outcome of the other tests of this
//! crate; each test here states the behaviour and checks it from both sides.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use custody_core::change_set::ChangeSet;
use custody_core::delegation::{grant_for, DelegationGrant};
use custody_core::event::{ChatApproval, EscalationReason, Event, EventBody, ReviewOutcome};
use custody_core::lifecycle::{
    self, pending_obligations, Draft, Obligation, Placement, Severity, APPROVAL_OVERDUE,
    BREAK_GLASS_REVIEW_OVERDUE, EXPIRY_NOTICE, EXPIRY_REVOCATION_DUE, REVIEW_OVERDUE,
};
use custody_core::model::{
    Actor, AuthContext, Change, ChangeKind, Principal, PrincipalKind, Role, Via,
};
use custody_core::policy::{glob_matches, AppliedRule, Policy, PolicyError};
use custody_core::{CaseId, CaseState, CaseView, Sha256Hash, Timestamp};
use serde_json::json;

fn vendor() -> Principal {
    Principal {
        id: "vera".parse().unwrap(),
        display_name: "Vera".into(),
        kind: PrincipalKind::Vendor,
        groups: Vec::new(),
        org: Some("acme".into()),
    }
}

fn change() -> Change {
    change_with("role/db", None, None)
}

/// Alice's grant of `entitlement`, on `resource`, for `duration_seconds`.
fn change_with(entitlement: &str, resource: Option<&str>, duration_seconds: Option<u64>) -> Change {
    Change::new(
        "user:alice".parse().unwrap(),
        ChangeKind::Grant,
        entitlement.into(),
        resource.map(Into::into),
        duration_seconds,
    )
    .unwrap()
}

fn grant(valid_until: Timestamp) -> DelegationGrant {
    DelegationGrant {
        grant_id: "dg_1".into(),
        vendor_org: "acme".into(),
        principals: Vec::new(),
        on_behalf_of: "team:platform".into(),
        entitlements: Vec::new(),
        resources: Vec::new(),
        valid_until,
        revoked_at: None,
        granted_by: "root".parse().unwrap(),
        granted_at: Timestamp::from_micros(1_000_000),
    }
}

/// A grant is in force strictly before `valid_until`: at that instant the
/// vendor is refused as expired (the audit's `delegation` check agrees: an
/// action at `valid_until` or later is outside the grant).
#[test]
fn a_delegation_grant_ends_at_its_valid_until_instant() {
    let end = Timestamp::from_micros(1_800_000_000_000_000);
    let grants = [grant(end)];
    let before = Timestamp::from_micros(end.as_micros() - 1);
    let found = grant_for(&grants, &vendor(), &change(), before)
        .expect("in force a microsecond before its end")
        .expect("a vendor acts under a grant");
    assert_eq!(found.grant_id, "dg_1");
    for at in [end, Timestamp::from_micros(end.as_micros() + 1)] {
        let refusal = grant_for(&grants, &vendor(), &change(), at).unwrap_err();
        assert_eq!(refusal.rule, "delegation.expired", "at {at}");
    }
}

/// The accessor hands back the value that was checked, unchanged.
#[test]
fn a_parsed_change_set_is_the_value_given() {
    let value = json!({"users": [{"id": 7, "name": "alice"}], "dry_run": false});
    let change_set = ChangeSet::parse(value.clone()).unwrap();
    assert_eq!(change_set.as_value(), &value);
    assert_eq!(change_set.into_value(), value);
}

fn actor(name: &str) -> Actor {
    Actor {
        principal: name.parse().unwrap(),
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

/// A case written step by step as the store writes it.
struct Trail {
    case_id: CaseId,
    view: CaseView,
}

impl Trail {
    /// Alice requests `change()` under the brief's default rule.
    fn requested() -> Trail {
        Trail::requested_with(change(), &AppliedRule::brief_default())
    }

    /// Alice requests `change` under `rule`.
    fn requested_with(change: Change, rule: &AppliedRule) -> Trail {
        let draft = lifecycle::request(change, None, None, rule).unwrap();
        Trail::opened("alice", draft)
    }

    /// A case whose first event is `draft` by `name`.
    fn opened(name: &str, draft: Draft) -> Trail {
        let case_id = CaseId::generate();
        let event = draft.seal(actor(name), Trail::place(&case_id, 1, None));
        Trail {
            case_id,
            view: CaseView::open(&event).unwrap(),
        }
    }

    fn place(case_id: &CaseId, seq: u64, prev_hash: Option<Sha256Hash>) -> Placement {
        Placement {
            case_id: case_id.clone(),
            seq,
            prev_hash,
            recorded_at: Timestamp::from_micros(1_800_000_000_000_000 + seq as i64),
            occurred_at: None,
            idempotency_key: None,
            origin: None,
        }
    }

    /// Appends `draft` by `name`; returns the role it recorded.
    fn append(&mut self, name: &str, draft: Draft) -> Role {
        self.append_as(actor(name), draft).role
    }

    /// Appends `draft` by `actor`; returns the sealed event.
    fn append_as(&mut self, actor: Actor, draft: Draft) -> Event {
        let place = Trail::place(
            &self.case_id,
            self.view.head_seq + 1,
            Some(self.view.head_hash),
        );
        let event = draft.seal(actor, place);
        self.view.apply(&event);
        event
    }

    /// The role a comment by `name` records.
    fn comment_role(&mut self, name: &str) -> Role {
        let draft = lifecycle::comment(&self.view, &actor(name), format!("from {name}"));
        self.append(name, draft)
    }

    /// Bob approves and Carol executes.
    fn approve_and_execute(&mut self) {
        let approval = lifecycle::approve(&self.view, &actor("bob"), None).unwrap();
        self.append("bob", approval);
        let execution = lifecycle::execute(
            self.view.approved().unwrap(),
            &actor("carol"),
            None,
            None,
            true,
            None,
        )
        .unwrap();
        self.append("carol", execution);
    }

    /// The ledger acts on the pending obligation `reason` (what the
    /// scheduler writes once it is overdue).
    fn escalate(&mut self, reason: Obligation) {
        let deadline = pending_obligations(&self.view)
            .into_iter()
            .find(|(code, _)| *code == reason)
            .map(|(_, deadline)| deadline)
            .unwrap_or_else(|| panic!("{reason} is not pending"));
        self.append_as(Actor::system(), lifecycle::escalate(reason, deadline));
    }
}

/// An event that is not one role's (a comment, evidence, a merge) records
/// the strongest role its actor holds in the case: reviewer, then executor,
/// then approver (approving or denying), then requester; anyone else is an
/// observer.
#[test]
fn an_event_records_the_role_its_actor_holds_in_the_case() {
    let mut trail = Trail::requested();
    let approval = lifecycle::approve(&trail.view, &actor("bob"), None).unwrap();
    assert_eq!(trail.append("bob", approval), Role::Approver);
    let execution = lifecycle::execute(
        trail.view.approved().unwrap(),
        &actor("carol"),
        None,
        None,
        true,
        None,
    )
    .unwrap();
    assert_eq!(trail.append("carol", execution), Role::Executor);
    let review = lifecycle::review(
        trail.view.executed().unwrap(),
        &actor("erin"),
        ReviewOutcome::Confirmed,
        None,
    )
    .unwrap();
    assert_eq!(trail.append("erin", review), Role::Reviewer);
    for (name, role) in [
        ("erin", Role::Reviewer),
        ("carol", Role::Executor),
        ("bob", Role::Approver),
        ("alice", Role::Requester),
        ("zed", Role::Observer),
    ] {
        assert_eq!(trail.comment_role(name), role, "a comment by {name}");
    }

    // A denial makes its author an approver of the case too.
    let mut denied = Trail::requested();
    let denial = lifecycle::deny(&denied.view, &actor("dave"), None).unwrap();
    assert_eq!(denied.append("dave", denial), Role::Approver);
    for (name, role) in [
        ("dave", Role::Approver),
        ("alice", Role::Requester),
        ("zed", Role::Observer),
    ] {
        assert_eq!(denied.comment_role(name), role, "a comment by {name}");
    }
}

fn chat(approver: &str) -> ChatApproval {
    ChatApproval {
        channel: "slack:#access-requests".into(),
        permalink: "https://chat.example.com/p/1".into(),
        message_sha256: Sha256Hash::of(b"approved"),
        approver: approver.parse().unwrap(),
    }
}

/// An approval someone records from chat for another principal is an
/// attestation: its author is an observer until the approver confirms. The
/// approver recording their own chat message approves.
#[test]
fn a_chat_approval_recorded_for_someone_else_is_an_observers_attestation() {
    let trail = Trail::requested();
    let attested =
        lifecycle::approve_with(&trail.view, &actor("bob"), None, Some(chat("dave"))).unwrap();
    assert_eq!(attested.role, Role::Observer);
    let own =
        lifecycle::approve_with(&trail.view, &actor("dave"), None, Some(chat("dave"))).unwrap();
    assert_eq!(own.role, Role::Approver);
}

/// A severity prints under the name its JSON carries (`docs/findings.md`
/// uses both).
#[test]
fn a_severity_prints_as_its_json_name() {
    for severity in [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ] {
        assert_eq!(
            serde_json::to_value(severity).unwrap(),
            json!(severity.as_str()),
            "{severity:?}"
        );
    }
    assert_eq!(Severity::Critical.as_str(), "critical");
}

/// A refusal printed names its message and its rule code.
#[test]
fn a_refusal_prints_its_message_and_rule() {
    let refusal = lifecycle::deny(&Trail::requested().view, &actor("alice"), None).unwrap_err();
    let printed = refusal.to_string();
    assert!(printed.starts_with(&refusal.message), "{printed}");
    assert!(
        printed.ends_with(&format!("[{}]", refusal.rule)),
        "{printed}"
    );
}

/// A break-glass case owes its post-hoc review by the deadline the
/// invocation set, while it waits in `pending_review`; once the ledger has
/// escalated the overdue review, or the review is done, nothing is owed.
#[test]
fn a_break_glass_case_owes_its_review_until_escalated_or_reviewed() {
    let rule = AppliedRule::brief_default();
    let now = Timestamp::from_micros(1_800_000_000_000_000);
    let deadline = now.plus_seconds(rule.post_hoc_review_seconds as i64);
    let glass = || {
        let [request, invoked, execution] =
            lifecycle::break_glass(change(), "outage".into(), None, &rule, None, now).unwrap();
        let mut trail = Trail::opened("carol", request);
        trail.append("carol", invoked);
        trail.append("carol", execution);
        assert_eq!(trail.view.state, CaseState::PendingReview);
        assert_eq!(
            pending_obligations(&trail.view),
            [(BREAK_GLASS_REVIEW_OVERDUE, deadline)]
        );
        trail
    };
    let mut escalated = glass();
    escalated.escalate(BREAK_GLASS_REVIEW_OVERDUE);
    assert_eq!(escalated.view.state, CaseState::PendingReview);
    assert_eq!(pending_obligations(&escalated.view), []);

    let mut reviewed = glass();
    let review = lifecycle::review(
        reviewed.view.executed().unwrap(),
        &actor("erin"),
        ReviewOutcome::Confirmed,
        None,
    )
    .unwrap();
    reviewed.append("erin", review);
    assert_eq!(pending_obligations(&reviewed.view), []);
}

/// An executed case under a rule with a review deadline owes the review
/// until it is reviewed or the ledger escalates it.
#[test]
fn an_executed_case_owes_its_review_until_escalated() {
    let mut rule = AppliedRule::brief_default();
    rule.review_deadline_seconds = Some(86_400);
    let mut trail = Trail::requested_with(change(), &rule);
    assert_eq!(pending_obligations(&trail.view), []);
    trail.approve_and_execute();
    assert_eq!(trail.view.state, CaseState::Executed);
    let executed_at = trail.view.executed_at.unwrap();
    assert_eq!(
        pending_obligations(&trail.view),
        [(REVIEW_OVERDUE, executed_at.plus_seconds(86_400))]
    );
    trail.escalate(REVIEW_OVERDUE);
    assert_eq!(trail.view.state, CaseState::Executed);
    assert_eq!(pending_obligations(&trail.view), []);
}

/// An open request under a rule with an approval deadline owes an answer
/// until it is answered or the ledger escalates it.
#[test]
fn an_open_request_owes_an_answer_until_escalated_or_answered() {
    let mut rule = AppliedRule::brief_default();
    rule.approval_deadline_seconds = Some(3600);
    let mut trail = Trail::requested_with(change(), &rule);
    let due = trail.view.opened_at.plus_seconds(3600);
    assert_eq!(pending_obligations(&trail.view), [(APPROVAL_OVERDUE, due)]);
    trail.escalate(APPROVAL_OVERDUE);
    assert_eq!(trail.view.state, CaseState::Open);
    assert_eq!(pending_obligations(&trail.view), []);

    let mut answered = Trail::requested_with(change(), &rule);
    let approval = lifecycle::approve(&answered.view, &actor("bob"), None).unwrap();
    answered.append("bob", approval);
    assert_eq!(pending_obligations(&answered.view), []);
}

/// An obligation names the escalation the ledger raises when it is missed,
/// and `escalate` records exactly that reason; the end of time-bound access
/// and the notice before it are events of their own, not escalations.
#[test]
fn an_obligation_names_the_escalation_the_ledger_records_for_it() {
    let deadline = Timestamp::from_micros(1_800_000_000_000_000);
    let expected = [
        (
            Obligation::BreakGlassReview,
            Some(EscalationReason::BreakGlassReviewOverdue),
        ),
        (Obligation::Review, Some(EscalationReason::ReviewOverdue)),
        (
            Obligation::Approval,
            Some(EscalationReason::ApprovalOverdue),
        ),
        (Obligation::Revocation, None),
        (Obligation::ExpiryNotice, None),
    ];
    assert_eq!(expected.map(|(obligation, _)| obligation), Obligation::ALL);
    for (obligation, reason) in expected {
        assert_eq!(obligation.escalation(), reason, "{obligation:?}");
        let recorded = match lifecycle::escalate(obligation, deadline).body {
            EventBody::EscalationRaised(escalation) => {
                assert_eq!(escalation.deadline, deadline, "{obligation:?}");
                Some(escalation.reason)
            }
            EventBody::RevocationDue(_) | EventBody::ExpiryApproaching(_) => None,
            other => panic!("{obligation:?} recorded as {other:?}"),
        };
        assert_eq!(recorded, reason, "{obligation:?}");
    }
}

/// Time-bound access of two hours or more gets a notice an hour before it
/// ends; shorter access only its revocation.
#[test]
fn access_of_two_hours_or_more_is_noticed_an_hour_before_it_ends() {
    for (seconds, noticed) in [(7200, true), (7199, false), (86_400, true), (3600, false)] {
        let timed = change_with("role/db", None, Some(seconds));
        let mut trail = Trail::requested_with(timed, &AppliedRule::brief_default());
        trail.approve_and_execute();
        let expires_at = trail.view.expires_at.unwrap();
        assert_eq!(
            expires_at,
            trail.view.executed_at.unwrap().plus_seconds(seconds as i64)
        );
        let mut expected = vec![(EXPIRY_REVOCATION_DUE, expires_at)];
        if noticed {
            expected.push((EXPIRY_NOTICE, expires_at.plus_seconds(-3600)));
        }
        assert_eq!(pending_obligations(&trail.view), expected, "{seconds} s");
    }
}

/// Time-bound access owes its revocation (and the notice before it) until
/// the revocation is executed or the ledger records it as due; either one
/// ends the obligation.
#[test]
fn time_bound_access_owes_nothing_once_revoked_or_recorded_due() {
    let owing = || {
        let timed = change_with("role/db", None, Some(7200));
        let mut trail = Trail::requested_with(timed, &AppliedRule::brief_default());
        trail.approve_and_execute();
        let expires_at = trail.view.expires_at.unwrap();
        assert_eq!(
            pending_obligations(&trail.view),
            [
                (EXPIRY_REVOCATION_DUE, expires_at),
                (EXPIRY_NOTICE, expires_at.plus_seconds(-3600))
            ]
        );
        trail
    };

    let mut revoked = owing();
    let revocation =
        lifecycle::execute_revocation(&revoked.view, &actor("carol"), None, None).unwrap();
    revoked.append("carol", revocation);
    assert!(revoked.view.revoked && !revoked.view.revocation_due);
    assert_eq!(pending_obligations(&revoked.view), []);

    let mut due = owing();
    due.escalate(EXPIRY_REVOCATION_DUE);
    assert!(due.view.revocation_due && !due.view.revoked);
    assert_eq!(pending_obligations(&due.view), []);
}

/// A change set may take up to 256 KiB in canonical form (docs/api.md):
/// exactly that much is accepted, one byte more is refused and says how
/// many bytes it had.
#[test]
fn a_change_set_of_exactly_256_kib_is_accepted_and_one_byte_more_refused() {
    let limit = 256 * 1024;
    // `{"blob":"` and `"}` around the string: 11 bytes.
    let blob = |bytes: usize| json!({ "blob": "x".repeat(bytes - 11) });
    assert_eq!(
        custody_core::canonical::to_canonical_bytes(&blob(limit)).len(),
        limit
    );
    let at_limit = ChangeSet::parse(blob(limit)).expect("256 KiB is allowed");
    assert_eq!(at_limit.as_value(), &blob(limit));
    assert_eq!(
        ChangeSet::parse(blob(limit + 1)).unwrap_err(),
        custody_core::change_set::ChangeSetError::TooLarge { bytes: limit + 1 }
    );
}

/// Only the approver an attested chat approval names confirms it, once:
/// confirming another event, an approval that was not attested, one already
/// confirmed, or one recorded for someone else is refused.
#[test]
fn only_the_named_approver_confirms_an_attested_approval_once() {
    let refused = |trail: &Trail, name: &str, event: &custody_core::EventId| {
        let refusal = lifecycle::confirm_approval(&trail.view, &actor(name), event)
            .expect_err("nothing to confirm");
        assert_eq!(
            refusal.rule, "approval.nothing-to-confirm",
            "{name} confirming {event}"
        );
    };
    let mut trail = Trail::requested();
    let request_id = trail.view.requester.event_id.clone();
    let attested =
        lifecycle::approve_with(&trail.view, &actor("bob"), None, Some(chat("dave"))).unwrap();
    let attested = trail.append_as(actor("bob"), attested).event_id;
    refused(&trail, "erin", &attested);
    refused(&trail, "dave", &request_id);
    let confirmation = lifecycle::confirm_approval(&trail.view, &actor("dave"), &attested)
        .expect("the named approver confirms");
    assert_eq!(trail.append("dave", confirmation), Role::Approver);
    refused(&trail, "dave", &attested);

    // An approver's own chat approval is not attested: nothing to confirm.
    let mut own = Trail::requested();
    let approval =
        lifecycle::approve_with(&own.view, &actor("dave"), None, Some(chat("dave"))).unwrap();
    let approval = own.append_as(actor("dave"), approval).event_id;
    refused(&own, "dave", &approval);
}

/// A review that decides to revoke opens a request to revoke the same
/// entitlement of the same subject: a revocation, with no duration of its
/// own, bound to its own change hash.
#[test]
fn a_revoking_review_requests_the_revocation_of_the_same_access() {
    let timed = change_with("role/db", Some("db/prod"), Some(7200));
    let rule = AppliedRule::brief_default();
    let mut trail = Trail::requested_with(timed.clone(), &rule);
    trail.approve_and_execute();
    let review = lifecycle::review(
        trail.view.executed().unwrap(),
        &actor("erin"),
        ReviewOutcome::Revoke,
        None,
    )
    .unwrap();
    trail.append("erin", review);
    let new_case = CaseId::generate();
    let (request, _, _) = lifecycle::open_revocation(&trail.view, &rule, &new_case).unwrap();
    let EventBody::RequestCreated(created) = request.body else {
        panic!("{:?}", request.body);
    };
    let expected = Change::new(
        "user:alice".parse().unwrap(),
        ChangeKind::Revoke,
        "role/db".into(),
        Some("db/prod".into()),
        None,
    )
    .unwrap();
    assert_eq!(created.change, expected);
    assert_eq!(created.change_hash, expected.digest());
    assert_eq!(request.role, Role::Requester);
}

/// A rule's duration cap is the longest access it grants: a request for
/// exactly the cap is accepted, one second more is refused, none at all is
/// refused too.
#[test]
fn a_request_may_last_exactly_the_rules_maximum() {
    let mut rule = AppliedRule::brief_default();
    rule.max_duration_seconds = Some(3600);
    let asking = |seconds: Option<u64>| {
        let timed = change_with("role/db", None, seconds);
        lifecycle::request(timed, None, None, &rule).map(|_| ())
    };
    assert_eq!(asking(Some(3600)), Ok(()));
    assert_eq!(asking(Some(1)), Ok(()));
    assert_eq!(
        asking(Some(3601)).unwrap_err().rule,
        "policy.duration-too-long"
    );
    assert_eq!(asking(None).unwrap_err().rule, "policy.duration-required");
}

/// An execution observed before its approval (a record from another
/// system): its executor may add an approval beside another approver's,
/// but may not become the case's only approver.
#[test]
fn an_observed_executor_approves_only_beside_another_approver() {
    let mut rule = AppliedRule::brief_default();
    rule.approvals = 2;
    let observed = || {
        let mut trail = Trail::requested_with(change(), &rule);
        let execution =
            lifecycle::execute_observed(&trail.view, &actor("carol"), None, None, None).unwrap();
        trail.append("carol", execution);
        trail
    };
    let alone = observed();
    let refusal = lifecycle::approve(&alone.view, &actor("carol"), None).unwrap_err();
    assert_eq!(refusal.rule, "sod.executor-sole-approver");

    let mut beside = observed();
    let approval = lifecycle::approve(&beside.view, &actor("bob"), None).unwrap();
    beside.append("bob", approval);
    let approval =
        lifecycle::approve(&beside.view, &actor("carol"), None).expect("carol approves beside bob");
    assert_eq!(beside.append("carol", approval), Role::Approver);
}

/// A refused executor is told who may execute: the rule's groups, its
/// principal kinds, or both.
#[test]
fn a_refused_executor_is_told_who_may_execute() {
    let refusal = |groups: &[&str], kinds: &[PrincipalKind]| {
        let mut rule = AppliedRule::brief_default();
        rule.executor_groups = groups.iter().map(|group| group.to_string()).collect();
        rule.executor_kinds = kinds.to_vec();
        let mut trail = Trail::requested_with(change(), &rule);
        let approval = lifecycle::approve(&trail.view, &actor("bob"), None).unwrap();
        trail.append("bob", approval);
        let refusal = lifecycle::execute(
            trail.view.approved().unwrap(),
            &actor("carol"),
            None,
            None,
            true,
            None,
        )
        .unwrap_err();
        assert_eq!(refusal.rule, "policy.executor-not-allowed");
        refusal.message
    };
    let by_group = refusal(&["ops", "sre"], &[]);
    assert!(
        by_group.contains("lets only a member of ops or sre execute"),
        "{by_group}"
    );
    let by_kind = refusal(&[], &[PrincipalKind::Service]);
    assert!(
        by_kind.contains("lets only a principal of kind service execute"),
        "{by_kind}"
    );
    let both = refusal(&["ops"], &[PrincipalKind::Service]);
    assert!(
        both.contains("lets only a member of ops and a principal of kind service execute"),
        "{both}"
    );
}

/// A rule's deadlines are recorded in every case it decides, in seconds;
/// a rule that sets none records the defaults (break-glass allowed, its
/// review within 24 hours, no review or approval deadline). A deadline that
/// is not a duration makes the policy invalid.
#[test]
fn a_rule_records_its_deadlines_and_defaults_in_the_case() {
    let policy: Policy = serde_json::from_value(json!({"rules": [
        {
            "name": "timed",
            "entitlements": ["role/db"],
            "post_hoc_review_deadline": "2h",
            "review_deadline": "3d",
            "approval_deadline": "4h"
        },
        {"name": "plain"}
    ]}))
    .unwrap();
    policy.validate().unwrap();
    let decided = |entitlement: &str| {
        let asked = change_with(entitlement, None, None);
        let rule = policy.decide(&asked);
        (
            rule.name,
            rule.break_glass,
            rule.post_hoc_review_seconds,
            rule.review_deadline_seconds,
            rule.approval_deadline_seconds,
        )
    };
    assert_eq!(
        decided("role/db"),
        ("timed".into(), true, 7200, Some(3 * 86_400), Some(4 * 3600))
    );
    assert_eq!(
        decided("role/web"),
        ("plain".into(), true, 24 * 3600, None, None)
    );
    for field in [
        "post_hoc_review_deadline",
        "review_deadline",
        "approval_deadline",
    ] {
        let policy: Policy =
            serde_json::from_value(json!({"rules": [{"name": "bad", field: "soon"}]})).unwrap();
        assert!(
            matches!(policy.validate(), Err(PolicyError::Duration { ref rule, .. }) if rule == "bad"),
            "{field}: {:?}",
            policy.validate()
        );
    }
}

/// A pattern's literal parts match in order and never share characters: the
/// text after one part is where the next is looked for, and the text must
/// end with the last.
#[test]
fn glob_parts_match_in_order_without_overlapping() {
    for (pattern, text, expected) in [
        ("*ab*b", "ab", false),
        ("*ab*b", "abb", true),
        ("a*bc*c", "abc", false),
        ("a*bc*c", "abcc", true),
        ("*-admin", "prod-admins", false),
        ("*-admin", "prod-admin", true),
        ("db-*-ro", "db-main-rw", false),
        ("db-*-ro", "db-main-ro", true),
    ] {
        assert_eq!(glob_matches(pattern, text), expected, "{pattern} ~ {text}");
    }
}

/// A code compares equal to its own spelling, in every direction and through
/// every string type, and unequal to another code's; `as_ref` is the
/// spelling. (Kills cargo-mutants' survivors in `code.rs`: each comparison
/// replaced by `true` or `false`, `as_ref` by a constant.)
#[test]
fn a_code_equals_its_spelling_and_no_other_through_every_string_type() {
    use custody_core::event::EscalationReason;
    use custody_core::obligation::Obligation;
    use custody_core::Code;

    let all = Code::ALL;
    assert!(all.len() > 2);
    for (index, &code) in all.iter().enumerate() {
        let other = all[(index + 1) % all.len()];
        let spelling: &str = code.as_str();
        let owned = spelling.to_string();
        let wrong = other.as_str();
        let wrong_owned = wrong.to_string();
        assert!(code == *spelling, "{spelling}");
        assert!(code == spelling, "{spelling}");
        assert!(code == owned, "{spelling}");
        assert!(spelling == code, "{spelling}");
        assert!(*spelling == code, "{spelling}");
        assert!(code != *wrong, "{spelling} vs {wrong}");
        assert!(code != wrong, "{spelling} vs {wrong}");
        assert!(code != wrong_owned, "{spelling} vs {wrong}");
        assert!(wrong != code, "{spelling} vs {wrong}");
        assert!(*wrong != code, "{spelling} vs {wrong}");
        assert_eq!(AsRef::<str>::as_ref(&code), spelling);
    }
    for (index, &reason) in EscalationReason::ALL.iter().enumerate() {
        let other = EscalationReason::ALL[(index + 1) % EscalationReason::ALL.len()];
        let (own, others) = (reason.as_str().to_string(), other.as_str().to_string());
        assert!(reason == reason.as_str());
        assert!(reason == own);
        assert!(reason != other.as_str());
        assert!(reason != others);
    }
    for (index, &obligation) in Obligation::ALL.iter().enumerate() {
        let other = Obligation::ALL[(index + 1) % Obligation::ALL.len()];
        let (own, others) = (obligation.as_str().to_string(), other.as_str().to_string());
        assert!(obligation == obligation.as_str());
        assert!(obligation == own);
        assert!(obligation != other.as_str());
        assert!(obligation != others);
    }
}
