//! Details of recorded behaviour that the broader tests leave loose: the
//! instant a grant ends, the role an event records its actor in, the names
//! things are printed by. A mutation-testing run (docs/mutants.md) showed
//! that changing any of these changed no outcome of the other tests of this
//! crate; each test here states the behaviour and checks it from both sides.

use custody_core::change_set::ChangeSet;
use custody_core::delegation::{grant_for, DelegationGrant};
use custody_core::event::{ChatApproval, ReviewOutcome};
use custody_core::lifecycle::{self, Draft, Placement, Severity};
use custody_core::model::{
    Actor, AuthContext, Change, ChangeKind, Principal, PrincipalKind, Role, Via,
};
use custody_core::policy::AppliedRule;
use custody_core::{CaseId, CaseView, Sha256Hash, Timestamp};
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
    Change {
        subject: "user:alice".parse().unwrap(),
        kind: ChangeKind::Grant,
        entitlement: "role/db".into(),
        resource: None,
        duration_seconds: None,
    }
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
        let case_id = CaseId::generate();
        let draft =
            lifecycle::request(change(), None, None, &AppliedRule::brief_default()).unwrap();
        let event = draft.seal(actor("alice"), Trail::place(&case_id, 1, None));
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
        }
    }

    /// Appends `draft` by `name`; returns the role it recorded.
    fn append(&mut self, name: &str, draft: Draft) -> Role {
        let event = draft.seal(
            actor(name),
            Trail::place(
                &self.case_id,
                self.view.head_seq + 1,
                Some(self.view.head_hash),
            ),
        );
        self.view.apply(&event);
        event.role
    }

    /// The role a comment by `name` records.
    fn comment_role(&mut self, name: &str) -> Role {
        let draft = lifecycle::comment(&self.view, &actor(name), format!("from {name}"));
        self.append(name, draft)
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
