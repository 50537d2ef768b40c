//! Times the auditor's per-row work on synthetic events (for profiling).

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use custody_core::audit::{decode_row, StoredEvent};
use custody_core::lifecycle::{self, Placement};
use custody_core::model::{Actor, AuthContext, Change, ChangeKind, PrincipalKind, Subject, Via};
use custody_core::policy::AppliedRule;
use custody_core::{CaseId, Timestamp};

fn main() {
    let actor = Actor {
        principal: "alice".parse().unwrap(),
        kind: PrincipalKind::Human,
        org: None,
        groups: Vec::new(),
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Cli,
        auth: AuthContext::Token {
            token_id: "tok_0123456789abcdef".into(),
        },
    };
    let change = Change::new(
        "user:alice".parse::<Subject>().unwrap(),
        ChangeKind::Grant,
        "admin".into(),
        Some("prod-db".into()),
        None,
    )
    .expect("a valid change");
    let rows: Vec<StoredEvent> = (0..50_000u64)
        .map(|index| {
            let draft = lifecycle::request(
                change.clone(),
                Some("incident".into()),
                None,
                &AppliedRule::brief_default(),
            )
            .unwrap();
            let event = draft.seal(
                actor.clone(),
                Placement {
                    case_id: CaseId::generate(),
                    seq: 1,
                    prev_hash: None,
                    recorded_at: Timestamp::now(),
                    occurred_at: None,
                    idempotency_key: Some(format!("key-{index}")),
                    origin: None,
                },
            );
            StoredEvent {
                log_index: index,
                case_id: event.case_id.to_string(),
                seq: 1,
                bytes: event.canonical_bytes(),
                stored_leaf: None,
            }
        })
        .collect();
    let started = Instant::now();
    let mut ok = 0;
    for row in &rows {
        ok += usize::from(std::hint::black_box(decode_row(row)).is_ok());
    }
    let elapsed = started.elapsed();
    println!(
        "{} rows in {:?}: {:.0} rows/s ({ok} ok)",
        rows.len(),
        elapsed,
        rows.len() as f64 / elapsed.as_secs_f64()
    );
    let started = Instant::now();
    for row in &rows {
        std::hint::black_box(serde_json::from_slice::<custody_core::Event>(&row.bytes).unwrap());
    }
    println!(
        "parse only: {:.0} rows/s",
        rows.len() as f64 / started.elapsed().as_secs_f64()
    );
    let events: Vec<custody_core::Event> = rows
        .iter()
        .map(|row| serde_json::from_slice(&row.bytes).unwrap())
        .collect();
    let started = Instant::now();
    for event in &events {
        std::hint::black_box(event.canonical_bytes());
    }
    println!(
        "canonicalize only: {:.0} rows/s",
        rows.len() as f64 / started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    for row in &rows {
        std::hint::black_box(custody_core::Sha256Hash::of(&row.bytes));
    }
    println!(
        "sha256 only: {:.0} rows/s",
        rows.len() as f64 / started.elapsed().as_secs_f64()
    );
}
