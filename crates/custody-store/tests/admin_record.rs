//! The administration record through the store's writer, on a real SQLite
//! file: revocations decided under the write lock, vendor writes re-decided
//! against the grants as recorded, and older data directories recorded once.

#![allow(clippy::unwrap_used)]

use std::str::FromStr;

use custody_core::command::{CaseStep, Opening};
use custody_core::delegation::DelegationGrant;
use custody_core::model::{
    Actor, AuthContext, Change, ChangeKind, Principal, PrincipalId, PrincipalKind, Subject,
    SubjectKind, Via,
};
use custody_core::{EventBody, Timestamp};
use custody_store::{CaseWrite, ReadOnlyStore, Store, StoreError};
use sqlx::ConnectOptions;

fn actor(name: &str, kind: PrincipalKind, org: Option<&str>) -> Actor {
    Actor {
        principal: PrincipalId::from_str(name).unwrap(),
        kind,
        org: org.map(str::to_string),
        groups: Vec::new(),
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Api,
        auth: AuthContext::Token {
            token_id: format!("tok_{name}"),
        },
    }
}

fn principal(name: &str, kind: PrincipalKind, groups: &[&str], org: Option<&str>) -> Principal {
    Principal {
        id: PrincipalId::from_str(name).unwrap(),
        display_name: name.to_string(),
        kind,
        groups: groups.iter().map(|group| group.to_string()).collect(),
        org: org.map(str::to_string),
    }
}

fn change() -> Change {
    Change::new(
        Subject {
            kind: SubjectKind::User,
            id: "ann".to_string(),
        },
        ChangeKind::Grant,
        "db-reader".to_string(),
        Some("prod-db".to_string()),
        None,
    )
    .unwrap()
}

fn new_grant(id: &str) -> DelegationGrant {
    DelegationGrant {
        grant_id: id.to_string(),
        vendor_org: "msp-co".to_string(),
        principals: Vec::new(),
        on_behalf_of: "dba-team".to_string(),
        entitlements: vec!["db-*".to_string()],
        resources: Vec::new(),
        valid_until: Timestamp::now().plus_seconds(3600),
        revoked_at: None,
        granted_by: PrincipalId::from_str("admin").unwrap(),
        granted_at: Timestamp::now(),
    }
}

/// A store with an admin (by `system`, as `init` does), alice, vera (a
/// vendor of msp-co), a grant `dg_1` to msp-co, and alice's case.
async fn deployment() -> (tempfile::TempDir, Store, custody_core::CaseId) {
    let directory = tempfile::tempdir().unwrap();
    let store = Store::open(directory.path()).await.unwrap();
    store
        .add_principal(
            principal("admin", PrincipalKind::Human, &["admins"], None),
            None,
        )
        .await
        .unwrap();
    let admin = actor("admin", PrincipalKind::Human, None);
    for added in [
        principal("alice", PrincipalKind::Human, &[], None),
        principal("vera", PrincipalKind::Vendor, &[], Some("msp-co")),
    ] {
        store
            .add_principal(added, Some(admin.clone()))
            .await
            .unwrap();
    }
    store
        .grant_delegation(new_grant("dg_1"), admin)
        .await
        .unwrap();
    let opened = store
        .write(CaseWrite {
            actor: actor("alice", PrincipalKind::Human, None),
            idempotency_key: "open".to_string(),
            command: Opening::Request {
                drill: false,
                change: change(),
                justification: None,
                ticket: None,
                rule: custody_core::policy::AppliedRule::brief_default(),
            }
            .into(),
            occurred_at: None,
            connector: None,
        })
        .await
        .unwrap();
    (directory, store, opened.case_id)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vendor_write_decided_after_a_revocation_sees_the_grant_revoked() {
    let (directory, store, case_id) = deployment().await;
    // The vendor's write carries the grant the server chose before the
    // revocation; both are queued for the writer together.
    let mut vera = actor("vera", PrincipalKind::Vendor, Some("msp-co"));
    vera.delegation_grant = Some("dg_1".to_string());
    vera.on_behalf_of = Some("dba-team".to_string());
    let admin = actor("admin", PrincipalKind::Human, None);
    let (revoked, written) = tokio::join!(
        store.revoke_delegation("dg_1", admin),
        store.write(CaseWrite {
            actor: vera,
            idempotency_key: "late".to_string(),
            command: CaseStep::Comment {
                case_id: case_id.clone(),
                text: "acting anyway".to_string(),
            }
            .into(),
            occurred_at: None,
            connector: None,
        })
    );
    assert!(revoked.unwrap().revoked_at.is_some());
    match written {
        Err(StoreError::Refused(refusal)) => assert_eq!(refusal.rule, "delegation.expired"),
        other => panic!("the vendor's write was not refused: {other:?}"),
    }
    let (_, events) = store.case(&case_id).await.unwrap();
    assert_eq!(events.len(), 1, "nothing was appended to the case");
    drop(store);
    let report = ReadOnlyStore::open(directory.path())
        .await
        .unwrap()
        .audit(Vec::new(), None)
        .await
        .unwrap();
    assert!(report.ok, "{:#?}", report.findings);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_revocations_through_the_writer_keep_the_first_time() {
    let (_directory, store, _) = deployment().await;
    let admin = actor("admin", PrincipalKind::Human, None);
    let (first, second, third) = tokio::join!(
        store.revoke_delegation("dg_1", admin.clone()),
        store.revoke_delegation("dg_1", admin.clone()),
        store.revoke_delegation("dg_1", admin.clone()),
    );
    let first = first.unwrap().revoked_at.expect("revoked");
    assert_eq!(second.unwrap().revoked_at, Some(first));
    assert_eq!(third.unwrap().revoked_at, Some(first));
    let revocations: Vec<_> = store
        .admin_record()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|event| match event.body {
            EventBody::DelegationRevoked(revoked) => Some(revoked),
            _ => None,
        })
        .collect();
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0].revoked_at, first);
    // A non-admin may not revoke; an unknown grant is named.
    let refused = store
        .revoke_delegation("dg_1", actor("alice", PrincipalKind::Human, None))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Refused(refusal)) if refusal.rule == "admin.not-admin")
    );
    assert!(matches!(
        store.revoke_delegation("dg_nope", admin).await,
        Err(StoreError::InvalidRequest(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_data_directory_is_recorded_once_when_it_is_opened() {
    let directory = tempfile::tempdir().unwrap();
    drop(Store::open(directory.path()).await.unwrap());
    // Rows as a version without the administration record wrote them.
    let mut revoked = new_grant("dg_old");
    revoked.revoked_at = Some(Timestamp::now());
    let grant_json = serde_json::to_string(&revoked).unwrap();
    let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(directory.path().join("custody.db"))
        .connect()
        .await
        .unwrap();
    for statement in [
        "INSERT INTO principals (principal_id, display_name, kind, groups_json, org, created_at, created_by) VALUES ('admin', 'Administrator', 'human', '[\"admins\"]', NULL, '2026-01-01T00:00:00.000000Z', NULL)",
        "INSERT INTO principals (principal_id, display_name, kind, groups_json, org, created_at, created_by) VALUES ('vera', 'vera', 'vendor', '[]', 'msp-co', '2026-01-02T00:00:00.000000Z', 'admin')",
        "INSERT INTO tokens (token_id, principal_id, secret_sha256, created_at, revoked_at, revoked_by) VALUES ('tok_old', 'vera', X'0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', '2026-01-02T00:00:00.000000Z', '2026-01-03T00:00:00.000000Z', 'admin')",
    ] {
        sqlx::query(statement).execute(&mut connection).await.unwrap();
    }
    sqlx::query("INSERT INTO delegations (grant_id, vendor_org, grant_json) VALUES ('dg_old', 'msp-co', $1)")
        .bind(&grant_json)
        .execute(&mut connection)
        .await
        .unwrap();
    drop(connection);

    let report = ReadOnlyStore::open(directory.path())
        .await
        .unwrap()
        .audit(Vec::new(), None)
        .await
        .unwrap();
    let codes: Vec<&str> = report
        .findings
        .iter()
        .map(|finding| finding.code.as_str())
        .collect();
    assert_eq!(codes, ["admin.unrecorded-legacy"]);

    // Opening it records every row, by `system`, once.
    let store = Store::open(directory.path()).await.unwrap();
    let kinds = |events: &[custody_core::Event]| {
        events
            .iter()
            .map(|event| (event.body.kind_name(), event.actor.principal.to_string()))
            .collect::<Vec<_>>()
    };
    let record = store.admin_record().await.unwrap();
    let system = "system".to_string();
    assert_eq!(
        kinds(&record),
        [
            ("principal_added", system.clone()),
            ("principal_added", system.clone()),
            ("token_issued", system.clone()),
            ("token_revoked", system.clone()),
            ("delegation_granted", system.clone()),
            ("delegation_revoked", system.clone()),
        ]
    );
    drop(store);
    let store = Store::open(directory.path()).await.unwrap();
    assert_eq!(
        store.admin_record().await.unwrap().len(),
        6,
        "recorded once"
    );
    // The recorded admin administers from now on; `system` no longer may.
    store
        .add_principal(
            principal("alice", PrincipalKind::Human, &[], None),
            Some(actor("admin", PrincipalKind::Human, None)),
        )
        .await
        .unwrap();
    let refused = store
        .add_principal(
            principal("mallory", PrincipalKind::Human, &["admins"], None),
            None,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Refused(refusal)) if refusal.rule == "admin.not-admin")
    );
    drop(store);
    let report = ReadOnlyStore::open(directory.path())
        .await
        .unwrap()
        .audit(Vec::new(), None)
        .await
        .unwrap();
    assert!(report.ok, "{:#?}", report.findings);
}
