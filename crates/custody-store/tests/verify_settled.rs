//! `verify` lets go of the cases no row touched for a while (a digest of
//! each one's case row in place of its trail) and rebuilds a case from the
//! snapshot when a later row writes to it: its report must be the same
//! whatever the threshold, on an honest store and on one whose case rows
//! were edited or deleted behind the store's back. On both backends.

#![allow(clippy::unwrap_used)]

mod common;

use common::{actor, Backend};
use custody_core::audit::Report;
use custody_core::command::{CaseStep, Opening};
use custody_core::model::{Change, ChangeKind, Subject, SubjectKind};
use custody_core::{CaseId, Code};
use custody_store::{AuditOptions, CaseWrite, ReadOnlyStore, Store, StoreOptions};

fn write(actor_name: &str, key: String, command: custody_core::command::CaseCommand) -> CaseWrite {
    CaseWrite {
        actor: actor(actor_name),
        idempotency_key: key,
        command,
        occurred_at: None,
        connector: None,
    }
}

/// Twelve cases written in turns (each touched again long after it was
/// opened), some denied, one written to once more at the very end, and one
/// merged into another at the end.
async fn ledger(backend: &Backend) -> Vec<CaseId> {
    let store = Store::open_at(&backend.location(), StoreOptions::default())
        .await
        .unwrap();
    let mut cases = Vec::new();
    for index in 0..12 {
        let change = Change::new(
            Subject {
                kind: SubjectKind::User,
                id: format!("u{index}"),
            },
            ChangeKind::Grant,
            format!("role{index}"),
            None,
            None,
        )
        .unwrap();
        let opened = store
            .write(write(
                "alice",
                format!("open-{index}"),
                Opening::Request {
                    drill: false,
                    change,
                    justification: None,
                    ticket: None,
                    rule: custody_core::policy::AppliedRule::brief_default(),
                }
                .into(),
            ))
            .await
            .unwrap();
        cases.push(opened.case_id);
    }
    for round in 0..3 {
        for (index, case_id) in cases.iter().enumerate() {
            let command = if round == 2 && index % 3 == 0 {
                CaseStep::Deny {
                    case_id: case_id.clone(),
                    comment: None,
                }
            } else {
                CaseStep::Comment {
                    case_id: case_id.clone(),
                    text: format!("round {round}"),
                }
            };
            store
                .write(write(
                    "bob",
                    format!("step-{round}-{index}"),
                    command.into(),
                ))
                .await
                .unwrap();
        }
    }
    store
        .write(write(
            "bob",
            "late".to_string(),
            CaseStep::Comment {
                case_id: cases[1].clone(),
                text: "much later".to_string(),
            }
            .into(),
        ))
        .await
        .unwrap();
    // A merge into a case idle since the first rounds: judged with the
    // survivor as it stood, which the audit must read back first.
    store
        .write(write(
            "alice",
            "merge".to_string(),
            custody_core::command::Merge {
                duplicate: cases[2].clone(),
                into: cases[5].clone(),
                comment: Some("one change".to_string()),
            }
            .into(),
        ))
        .await
        .unwrap();
    cases
}

async fn audit(backend: &Backend, settle_after_entries: u64) -> Report {
    ReadOnlyStore::open_at(&backend.location())
        .await
        .unwrap()
        .audit_with(AuditOptions {
            settle_after_entries,
            ..AuditOptions::default()
        })
        .await
        .unwrap()
}

/// The report with every trail held (a threshold past the log's end) and
/// with cases let go of after 1, 2 and 5 entries: all the same.
async fn same_report_whatever_the_threshold(backend: &Backend) -> Report {
    let held = audit(backend, 1 << 40).await;
    for settle in [1, 2, 5] {
        let settled = audit(backend, settle).await;
        assert_eq!(settled, held, "letting go of cases after {settle} entries");
    }
    held
}

fn names(report: &Report, code: Code, case_id: &CaseId) -> bool {
    report
        .findings
        .iter()
        .any(|finding| finding.code == code && finding.case_id.as_deref() == Some(case_id.as_str()))
}

async fn settled_cases_are_checked_as_held_ones(postgres: bool) {
    let backend = Backend::new(postgres, "custody_verify_settled").await;
    let cases = ledger(&backend).await;
    let honest = same_report_whatever_the_threshold(&backend).await;
    assert!(honest.ok, "{:#?}", honest.findings);
    assert_eq!(honest.checked.cases, 12);
    assert_eq!(honest.stats.cases_by_state.values().sum::<u64>(), 12);

    // A column of an early case's row, its state, and a whole row.
    backend
        .tamper(&format!(
            "UPDATE cases SET summary = 'grant nothing' WHERE case_id = '{}'",
            cases[0]
        ))
        .await;
    backend
        .tamper(&format!(
            "UPDATE cases SET state = 'approved' WHERE case_id = '{}'",
            cases[4]
        ))
        .await;
    backend
        .tamper(&format!("DELETE FROM cases WHERE case_id = '{}'", cases[7]))
        .await;
    let tampered = same_report_whatever_the_threshold(&backend).await;
    assert!(!tampered.ok);
    assert!(
        names(&tampered, Code::CaseProjectionMismatch, &cases[0]),
        "{tampered:#?}"
    );
    assert!(
        names(&tampered, Code::CaseProjectionMismatch, &cases[4]),
        "{tampered:#?}"
    );
    assert!(
        names(&tampered, Code::CaseMissingHead, &cases[7]),
        "{tampered:#?}"
    );
    backend.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_lets_go_of_settled_cases_and_reports_the_same_on_sqlite() {
    settled_cases_are_checked_as_held_ones(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_lets_go_of_settled_cases_and_reports_the_same_on_postgres() {
    settled_cases_are_checked_as_held_ones(true).await;
}
