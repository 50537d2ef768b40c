//! The mapping of connectors' outside users to principals through the
//! store's writer, on both backends (a SQLite file and a PostgreSQL
//! database made for the test, on the server `CUSTODY_TEST_DATABASE_URL`
//! names, which `cargo xtask test` sets): every mapping is an event of the
//! administration record written with its row, decided under the write
//! lock; the lookup connectors call answers the principal as it is now;
//! and `verify` finds a mapping added behind the store's back.

#![allow(clippy::unwrap_used)]

mod common;

use std::str::FromStr;

use common::{actor, Backend};
use custody_core::model::{ConnectorName, ExternalUser, Principal, PrincipalId, PrincipalKind};
use custody_core::EventBody;
use custody_store::{Store, StoreError, StoreOptions};

fn principal(name: &str, groups: &[&str], org: Option<&str>) -> Principal {
    Principal {
        id: PrincipalId::from_str(name).unwrap(),
        display_name: name.to_string(),
        kind: PrincipalKind::Human,
        groups: groups.iter().map(|group| group.to_string()).collect(),
        org: org.map(str::to_string),
    }
}

fn slack() -> ConnectorName {
    "slack".parse().unwrap()
}

fn user(id: &str) -> ExternalUser {
    id.parse().unwrap()
}

fn id(name: &str) -> PrincipalId {
    name.parse().unwrap()
}

/// A store with an admin (by `system`, as `init` does), alice (in `sre`,
/// of acme) and bob.
async fn deployment(backend: &Backend) -> Store {
    let store = Store::open_at(&backend.location(), StoreOptions::default())
        .await
        .unwrap();
    store
        .add_principal(principal("admin", &["admins"], None), None)
        .await
        .unwrap();
    for added in [
        principal("alice", &["sre"], Some("acme")),
        principal("bob", &[], None),
    ] {
        store
            .add_principal(added, Some(actor("admin")))
            .await
            .unwrap();
    }
    store
}

fn mappings_in(record: &[custody_core::Event]) -> Vec<(String, String, String, Option<String>)> {
    record
        .iter()
        .filter_map(|event| match &event.body {
            EventBody::IdentityMapped(mapped) => Some((
                "mapped".to_string(),
                mapped.external_user.to_string(),
                mapped.principal.to_string(),
                mapped.previous.as_ref().map(ToString::to_string),
            )),
            EventBody::IdentityUnmapped(unmapped) => Some((
                "unmapped".to_string(),
                unmapped.external_user.to_string(),
                unmapped.principal.to_string(),
                None,
            )),
            _ => None,
        })
        .collect()
}

async fn maps_record_and_resolve(postgres: bool) {
    let backend = Backend::new(postgres, "custody_identities").await;
    let store = deployment(&backend).await;
    let admin = actor("admin");

    let changes = store
        .map_identities(
            slack(),
            vec![(user("U01ALICE"), id("alice"))],
            admin.clone(),
        )
        .await
        .unwrap();
    assert!(changes[0].recorded && changes[0].previous.is_none());
    assert_eq!(changes[0].mapping.mapped_by.as_deref(), Some("admin"));
    let found = store
        .connector_identity("slack", "U01ALICE")
        .await
        .unwrap()
        .expect("mapped");
    assert_eq!(found, principal("alice", &["sre"], Some("acme")));

    // Exact: another case, another connector, text no ID could be.
    for (connector, external_user) in [
        ("slack", "u01alice"),
        ("teams", "U01ALICE"),
        ("slack", "U01ALICE "),
        ("slack", "U01\u{200b}ALICE"),
        ("not a connector", "U01ALICE"),
    ] {
        assert_eq!(
            store
                .connector_identity(connector, external_user)
                .await
                .unwrap(),
            None,
            "{connector} {external_user:?}"
        );
    }

    // The principal as it is now: a group change shows at once.
    store
        .set_groups(
            id("alice"),
            vec!["admins".to_string(), "sre".to_string()],
            admin.clone(),
        )
        .await
        .unwrap();
    let found = store
        .connector_identity("slack", "U01ALICE")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.groups, ["admins", "sre"]);

    // Mapped again to the same principal: nothing recorded. Remapped: one
    // event naming the principal it replaces.
    let length = store.admin_record().await.unwrap().len();
    let again = store
        .map_identities(
            slack(),
            vec![(user("U01ALICE"), id("alice"))],
            admin.clone(),
        )
        .await
        .unwrap();
    assert!(!again[0].recorded);
    assert_eq!(again[0].mapping, changes[0].mapping);
    assert_eq!(store.admin_record().await.unwrap().len(), length);
    let remapped = store
        .map_identities(slack(), vec![(user("U01ALICE"), id("bob"))], admin.clone())
        .await
        .unwrap();
    assert_eq!(remapped[0].previous.as_deref(), Some("alice"));
    assert_eq!(
        store
            .connector_identity("slack", "U01ALICE")
            .await
            .unwrap()
            .unwrap()
            .id,
        id("bob")
    );

    // One refused mapping of several refuses them all.
    let length = store.admin_record().await.unwrap().len();
    for (entries, expected) in [
        (
            vec![(user("U02"), id("alice")), (user("U03"), id("ghost"))],
            "principal ghost does not exist",
        ),
        (
            vec![(user("U02"), id("alice")), (user("U03"), id("system"))],
            "cannot be mapped to `system`",
        ),
    ] {
        let error = store
            .map_identities(slack(), entries, admin.clone())
            .await
            .unwrap_err();
        assert!(error.to_string().contains(expected), "{error}");
    }
    let refused = store
        .map_identities(slack(), vec![(user("U02"), id("alice"))], actor("bob"))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Refused(refusal)) if refusal.rule == "admin.not-admin")
    );
    assert_eq!(store.admin_record().await.unwrap().len(), length);
    assert_eq!(
        store.connector_identity("slack", "U02").await.unwrap(),
        None
    );

    // Unmapped: trusted no more; unmapping again is refused.
    let unmapped = store
        .unmap_identity(slack(), user("U01ALICE"), admin.clone())
        .await
        .unwrap();
    assert_eq!(unmapped.mapping.principal, "bob");
    assert_eq!(
        store.connector_identity("slack", "U01ALICE").await.unwrap(),
        None
    );
    assert!(matches!(
        store
            .unmap_identity(slack(), user("U01ALICE"), admin.clone())
            .await,
        Err(StoreError::IdentityNotMapped { .. })
    ));

    // Several at once, in order, a user named twice remapped.
    let changes = store
        .map_identities(
            slack(),
            vec![
                (user("U02"), id("alice")),
                (user("U03"), id("bob")),
                (user("U02"), id("bob")),
            ],
            admin.clone(),
        )
        .await
        .unwrap();
    assert_eq!(
        changes
            .iter()
            .map(|change| (change.recorded, change.previous.as_deref()))
            .collect::<Vec<_>>(),
        [(true, None), (true, None), (true, Some("alice"))]
    );
    let listed: Vec<(String, String)> = store
        .connector_identities(&slack())
        .await
        .unwrap()
        .into_iter()
        .map(|mapping| (mapping.external_user, mapping.principal))
        .collect();
    assert_eq!(
        listed,
        [
            ("U02".to_string(), "bob".to_string()),
            ("U03".to_string(), "bob".to_string())
        ]
    );
    let record = store.admin_record().await.unwrap();
    let some = |text: &str| Some(text.to_string());
    assert_eq!(
        mappings_in(&record),
        [
            ("mapped".into(), "U01ALICE".into(), "alice".into(), None),
            (
                "mapped".into(),
                "U01ALICE".into(),
                "bob".into(),
                some("alice")
            ),
            ("unmapped".into(), "U01ALICE".into(), "bob".into(), None),
            ("mapped".into(), "U02".into(), "alice".into(), None),
            ("mapped".into(), "U03".into(), "bob".into(), None),
            ("mapped".into(), "U02".into(), "bob".into(), some("alice")),
        ]
    );

    // Mapped by sixteen admins at once: one event, the others find it mapped.
    let results = futures_join(
        (0..16)
            .map(|_| {
                let (store, admin) = (store.clone(), admin.clone());
                async move {
                    store
                        .map_identities(slack(), vec![(user("U04"), id("alice"))], admin)
                        .await
                }
            })
            .collect(),
    )
    .await;
    let recorded = results
        .into_iter()
        .map(|result| result.unwrap()[0].recorded)
        .filter(|recorded| *recorded)
        .count();
    assert_eq!(recorded, 1);

    let report = store.audit(Vec::new(), None).await.unwrap();
    assert!(report.ok, "{:#?}", report.findings);

    // A mapping inserted behind the store's back is found.
    drop(store);
    backend
        .tamper(
            "INSERT INTO connector_identities (connector, external_user, principal_id, mapped_at, mapped_by)
             VALUES ('slack', 'U09MALLORY', 'admin', '2026-01-01T00:00:00.000000Z', 'admin');
             UPDATE connector_identities SET principal_id = 'admin' WHERE external_user = 'U03'",
        )
        .await;
    let store = Store::open_at(&backend.location(), StoreOptions::default())
        .await
        .unwrap();
    let report = store.audit(Vec::new(), None).await.unwrap();
    // Besides the info findings of a log no checkpoint covers yet.
    let mut codes: Vec<&str> = report
        .findings
        .iter()
        .filter(|finding| finding.severity != custody_core::lifecycle::Severity::Info)
        .map(|finding| finding.code.as_str())
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        ["admin.identity-mismatch", "admin.identity-unrecorded"],
        "{:#?}",
        report.findings
    );
    drop(store);
    backend.drop_database().await;
}

/// Awaits every future, concurrently, in order.
async fn futures_join<T: Send + 'static>(
    futures: Vec<impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_users_are_mapped_on_the_record_on_sqlite() {
    maps_record_and_resolve(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_users_are_mapped_on_the_record_on_postgres() {
    maps_record_and_resolve(true).await;
}
