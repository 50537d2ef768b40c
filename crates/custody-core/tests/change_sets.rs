//! Whatever `ChangeSet::parse` accepts is stored canonically and decodes
//! again (issue 10, item 6 "Nesting depth"): the limits of the edge and the
//! limits of the stored event agree.

#![allow(clippy::unwrap_used, clippy::cast_possible_wrap)]

use custody_core::change_set::{ChangeSet, ChangeSetError, MAX_DEPTH, MAX_SAFE_INTEGER};
use custody_core::event::{Event, EventBody};
use custody_core::lifecycle::{self, Placement};
use custody_core::model::{Actor, AuthContext, Change, ChangeKind, PrincipalKind, Via};
use custody_core::policy::AppliedRule;
use custody_core::{CaseId, CaseView, Timestamp};
use serde_json::{json, Value};

/// `levels` levels around `leaf`: an object, then arrays (a change set is
/// an object).
fn nested(levels: usize, leaf: Value) -> Value {
    let mut value = leaf;
    for _ in 1..levels {
        value = json!([value]);
    }
    json!({ "k": value })
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

/// The bytes of the execution event that records `change_set`, sealed as
/// the store seals it.
fn execution_bytes(change_set: ChangeSet) -> Vec<u8> {
    let change = Change::new(
        "user:alice".parse().unwrap(),
        ChangeKind::Grant,
        "admin".into(),
        None,
        None,
    )
    .unwrap();
    let now = Timestamp::from_micros(1_800_000_000_000_000);
    let place = |seq: u64, prev| Placement {
        case_id: CaseId::generate(),
        seq,
        prev_hash: prev,
        recorded_at: now,
        occurred_at: None,
        idempotency_key: None,
        origin: None,
    };
    let request = lifecycle::request(change, None, None, &AppliedRule::brief_default())
        .unwrap()
        .seal(actor("alice"), place(1, None));
    let mut view = CaseView::open(&request).unwrap();
    let approval = lifecycle::approve(&view, &actor("bob"), None)
        .unwrap()
        .seal(actor("bob"), place(2, Some(view.head_hash)));
    view.apply(&approval);
    let execution = lifecycle::execute(
        view.approved().unwrap(),
        &actor("carol"),
        Some(change_set),
        None,
        true,
        None,
    )
    .unwrap()
    .seal(actor("carol"), place(3, Some(view.head_hash)));
    execution.canonical_bytes()
}

#[test]
fn a_change_set_at_every_limit_is_stored_canonically_and_decodes() {
    let limit = MAX_SAFE_INTEGER as i64;
    for leaf in [json!(limit), json!(-limit), json!({"k": "v"}), json!([])] {
        // `MAX_DEPTH` levels in all, the leaf's own included when it is a
        // container.
        let levels = if leaf.is_array() || leaf.is_object() {
            MAX_DEPTH - 1
        } else {
            MAX_DEPTH
        };
        let value = nested(levels, leaf);
        let change_set = ChangeSet::parse(value.clone()).expect("at the limit");
        let bytes = execution_bytes(change_set);
        let event = Event::decode(&bytes).expect("an accepted change set decodes");
        match event.body {
            EventBody::ExecutionCompleted(execution) => {
                assert_eq!(execution.change_set, Some(value));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn change_sets_that_would_not_decode_are_refused_at_the_edge() {
    // 63 levels was accepted by the old edge check and then refused by the
    // canonical decoder: an honest write read back as tampered.
    let deep = nested(63, json!(1));
    let error = ChangeSet::parse(deep).unwrap_err();
    assert!(error.to_string().contains("more than 32 levels"), "{error}");
    assert!(ChangeSet::parse(nested(MAX_DEPTH + 1, json!(1))).is_err());
    // 2^53 is not exact as a neighbourless double: refused, as floats are.
    assert!(matches!(
        ChangeSet::parse(json!({"n": 1u64 << 53})),
        Err(ChangeSetError::IntegerOutOfRange { .. })
    ));
    assert!(matches!(
        ChangeSet::parse(json!({"n": 0.5})),
        Err(ChangeSetError::Float { .. })
    ));
}
