//! Invariant 3 on PostgreSQL: the writer's own session commits with
//! `synchronous_commit` on, read from the live session the store writes
//! through. (The embedded store's settings are
//! checked in `custody-store/tests/store.rs`.)

use crate::common;

use custody_store::{Location, Store, StoreOptions};

#[test]
fn the_postgres_writer_commits_with_synchronous_commit_on() {
    let database = common::TestDatabase::create();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let settings = runtime.block_on(async {
        let store = Store::open_at(
            &Location::Postgres(database.url.clone()),
            StoreOptions::default(),
        )
        .await
        .unwrap();
        store.durability().await.unwrap()
    });
    let settings: Vec<(&str, &str)> = settings
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    // The store's own promise is `synchronous_commit`; `fsync` and
    // `full_page_writes` belong to the server's configuration (the tests'
    // server keeps PostgreSQL's defaults, both on).
    assert_eq!(
        settings.first(),
        Some(&("synchronous_commit", "on")),
        "{settings:?}"
    );
    let names: Vec<&str> = settings.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["synchronous_commit", "fsync", "full_page_writes"]);
}
