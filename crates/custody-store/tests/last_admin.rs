//! The last admin stays an admin: a change of groups that would take the
//! last principal in `admins` out of the group is refused
//! (`admin.last-admin`) and changes nothing, whoever asks (another admin or
//! the admin itself), decided under the writer's lock so that two admins
//! taking each other out at once cannot both succeed. On both backends (a
//! SQLite file and a PostgreSQL database made for the test, on the server
//! `CUSTODY_TEST_DATABASE_URL` names).

#![allow(clippy::unwrap_used)]

mod common;

use std::str::FromStr;

use common::{actor, Backend};
use custody_core::model::{Principal, PrincipalId, PrincipalKind};
use custody_store::{ReadOnlyStore, Store, StoreError, StoreOptions};

fn principal(name: &str, groups: &[&str]) -> Principal {
    Principal {
        id: PrincipalId::from_str(name).unwrap(),
        display_name: name.to_string(),
        kind: PrincipalKind::Human,
        groups: groups.iter().map(|group| group.to_string()).collect(),
        org: None,
    }
}

fn id(name: &str) -> PrincipalId {
    name.parse().unwrap()
}

fn groups(list: &[&str]) -> Vec<String> {
    list.iter().map(|group| group.to_string()).collect()
}

fn assert_last_admin_refused(result: Result<Principal, StoreError>, who: &str) {
    match result {
        Err(StoreError::Refused(refusal)) => {
            assert_eq!(refusal.rule, "admin.last-admin", "{refusal:?}");
            assert!(refusal.message.contains(who), "{}", refusal.message);
        }
        other => panic!("taking the last admin {who} out of admins was not refused: {other:?}"),
    }
}

async fn the_last_admin_stays(postgres: bool) {
    let backend = Backend::new(postgres, "custody_last_admin").await;
    let store = Store::open_at(&backend.location(), StoreOptions::default())
        .await
        .unwrap();
    // The first admin, by `system`, as `init` makes it; alice, not an admin.
    store
        .add_principal(principal("root", &["admins", "sre"]), None)
        .await
        .unwrap();
    store
        .add_principal(principal("alice", &["sre"]), Some(actor("root")))
        .await
        .unwrap();

    // The only admin cannot take itself out of admins; nothing is recorded.
    let length = store.admin_record().await.unwrap().len();
    assert_last_admin_refused(
        store
            .set_groups(id("root"), groups(&["sre"]), actor("root"))
            .await,
        "root",
    );
    assert_last_admin_refused(
        store
            .set_groups(id("root"), Vec::new(), actor("root"))
            .await,
        "root",
    );
    assert_eq!(store.admin_record().await.unwrap().len(), length);
    assert_eq!(
        store.principal(&id("root")).await.unwrap().unwrap().groups,
        ["admins", "sre"]
    );
    // Other changes of its groups that keep it in admins are made.
    let root = store
        .set_groups(id("root"), groups(&["admins"]), actor("root"))
        .await
        .unwrap();
    assert_eq!(root.groups, ["admins"]);

    // With a second admin, one admin may take the other out; then the one
    // left is the last, whoever asks.
    store
        .set_groups(id("alice"), groups(&["admins", "sre"]), actor("root"))
        .await
        .unwrap();
    store
        .set_groups(id("root"), groups(&["sre"]), actor("alice"))
        .await
        .unwrap();
    assert_last_admin_refused(
        store
            .set_groups(id("alice"), groups(&["sre"]), actor("alice"))
            .await,
        "alice",
    );

    // Two admins leaving `admins` at once: the writer decides one after the
    // other, so exactly one leaves and the other, the last, is refused.
    store
        .set_groups(id("root"), groups(&["admins"]), actor("alice"))
        .await
        .unwrap();
    let (first, second) = tokio::join!(
        store.set_groups(id("root"), Vec::new(), actor("root")),
        store.set_groups(id("alice"), Vec::new(), actor("alice")),
    );
    let refused = [&first, &second]
        .iter()
        .filter(|result| {
            matches!(result, Err(StoreError::Refused(refusal)) if refusal.rule == "admin.last-admin")
        })
        .count();
    assert_eq!(refused, 1, "{first:?} {second:?}");
    let admins: Vec<String> = store
        .principals()
        .await
        .unwrap()
        .into_iter()
        .filter(|principal| principal.in_group("admins"))
        .map(|principal| principal.id.to_string())
        .collect();
    assert_eq!(admins.len(), 1, "{admins:?}");

    // The record is whole and its rules hold.
    drop(store);
    let report = ReadOnlyStore::open_at(&backend.location())
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
    assert!(
        !codes.iter().any(|code| code.starts_with("admin.")),
        "{:#?}",
        report.findings
    );
    backend.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_admin_is_never_taken_out_of_admins_on_sqlite() {
    the_last_admin_stays(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_admin_is_never_taken_out_of_admins_on_postgres() {
    the_last_admin_stays(true).await;
}
