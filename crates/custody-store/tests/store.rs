//! The embedded store against a real SQLite file.

#![allow(clippy::unwrap_used)]

use std::str::FromStr;

use custody_core::command::{CaseCommand, CaseStep, Opening};
use custody_core::model::{
    Actor, AuthContext, Change, ChangeKind, Principal, PrincipalId, PrincipalKind, Subject,
    SubjectKind, Via,
};
use custody_core::{CaseState, ManualClock, Timestamp};
use custody_store::{CaseWrite, ReadOnlyStore, Store, StoreError, StoreOptions};
use sqlx::ConnectOptions;

fn actor(name: &str) -> Actor {
    Actor {
        principal: PrincipalId::from_str(name).unwrap(),
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

fn request(subject: &str, ticket: Option<&str>) -> CaseCommand {
    Opening::Request {
        drill: false,
        change: Change::new(
            Subject {
                kind: SubjectKind::User,
                id: subject.to_string(),
            },
            ChangeKind::Grant,
            "admin".to_string(),
            Some("prod-db".to_string()),
            None,
        )
        .unwrap(),
        justification: None,
        ticket: ticket.map(|ticket| ticket.parse().unwrap()),
        rule: custody_core::policy::AppliedRule::brief_default(),
    }
    .into()
}

fn write(name: &str, key: &str, command: CaseCommand) -> CaseWrite {
    CaseWrite {
        actor: actor(name),
        idempotency_key: key.to_string(),
        command,
        occurred_at: None,
        connector: None,
    }
}

async fn open() -> (tempfile::TempDir, Store) {
    let directory = tempfile::tempdir().unwrap();
    let store = Store::open(directory.path()).await.unwrap();
    (directory, store)
}

#[tokio::test(flavor = "multi_thread")]
async fn events_table_refuses_update_and_delete() {
    let (directory, store) = open().await;
    store
        .write(write("alice", "k1", request("alice", None)))
        .await
        .unwrap();
    let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(directory.path().join("custody.db"))
        .connect()
        .await
        .unwrap();
    for statement in [
        "UPDATE events SET kind = 'approval_granted'",
        "UPDATE events SET bytes = x'00'",
        "DELETE FROM events",
    ] {
        let error = sqlx::query(statement)
            .execute(&mut connection)
            .await
            .expect_err(statement);
        assert!(
            error.to_string().contains("events are append-only"),
            "{statement}: {error}"
        );
    }
    assert_eq!(store.log_size().await.unwrap(), 1);
    assert!(store.audit(Vec::new(), None).await.unwrap().ok);
}

#[tokio::test(flavor = "multi_thread")]
async fn same_idempotency_key_replays_and_appends_nothing() {
    let (_directory, store) = open().await;
    let first = store
        .write(write("alice", "key-1", request("alice", None)))
        .await
        .unwrap();
    assert!(!first.replayed);
    let again = store
        .write(write("alice", "key-1", request("alice", None)))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.case_id, first.case_id);
    assert_eq!(again.appended, first.appended);
    assert_eq!(store.log_size().await.unwrap(), 1);

    // The same key for a different write is refused and changes nothing.
    let error = store
        .write(write("alice", "key-1", request("bob", None)))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Refused(refusal) if refusal.rule == "idempotency.key-reused"),
        "{error}"
    );
    // Keys are per principal: bob may use the same key for his own write.
    store
        .write(write("bob", "key-1", request("bob", None)))
        .await
        .unwrap();
    assert_eq!(store.log_size().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_records_join_one_case() {
    let (_directory, store) = open().await;
    let first = store
        .write(write("alice", "a", request("alice", Some("jira:SEC-1"))))
        .await
        .unwrap();
    // A second record of the same ticket, from another tool and principal.
    let second = store
        .write(write("bob", "b", request("alice", Some("JIRA:SEC-1"))))
        .await
        .unwrap();
    assert!(second.existing);
    assert_eq!(second.case_id, first.case_id);
    assert_eq!(store.log_size().await.unwrap(), 1);

    // The same change without the ticket is refused while the first is open.
    let error = store
        .write(write("carol", "c", request("alice", None)))
        .await
        .unwrap_err();
    match error {
        StoreError::Refused(refusal) => {
            assert_eq!(refusal.rule, "case.duplicate-open");
            assert!(refusal.message.contains(first.case_id.as_str()));
        }
        other => panic!("expected a refusal, got {other}"),
    }

    // Once the first case is denied, the change may be requested again.
    store
        .write(write(
            "bob",
            "d",
            CaseStep::Deny {
                case_id: first.case_id.clone(),
                comment: None,
            }
            .into(),
        ))
        .await
        .unwrap();
    let third = store
        .write(write("carol", "e", request("alice", Some("jira:SEC-1"))))
        .await
        .unwrap();
    assert!(!third.existing);
    assert_ne!(third.case_id, first.case_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_share_commits_and_keep_the_chain() {
    let (directory, store) = open().await;
    let writers = 32;
    let per_writer = 25;
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("w{writer}");
            let opened = store
                .write(write(&name, "open", request(&name, None)))
                .await
                .unwrap();
            for index in 0..per_writer {
                // Interleave refused writes with accepted ones: a refusal in a
                // batch must not take its neighbours down.
                let refused = store
                    .write(write(
                        &name,
                        &format!("approve-{index}"),
                        CaseStep::Approve {
                            case_id: opened.case_id.clone(),
                            comment: None,
                            chat: None,
                        }
                        .into(),
                    ))
                    .await;
                assert!(matches!(refused, Err(StoreError::Refused(_))));
                store
                    .write(write(
                        &name,
                        &format!("comment-{index}"),
                        CaseStep::Comment {
                            case_id: opened.case_id.clone(),
                            text: format!("note {index}"),
                        }
                        .into(),
                    ))
                    .await
                    .unwrap();
            }
            opened.case_id
        }));
    }
    let mut case_ids = Vec::new();
    for task in tasks {
        case_ids.push(task.await.unwrap());
    }
    let expected = (writers * (per_writer + 1)) as u64;
    assert_eq!(store.log_size().await.unwrap(), expected);
    for case_id in &case_ids {
        let (view, events) = store.case(case_id).await.unwrap();
        assert_eq!(events.len(), per_writer + 1);
        assert_eq!(view.state, CaseState::Open);
    }
    let report = ReadOnlyStore::open(directory.path())
        .await
        .unwrap()
        .audit(Vec::new(), None)
        .await
        .unwrap();
    assert!(report.ok, "{:#?}", report.findings);
    assert_eq!(report.checked.events, expected);
    assert_eq!(report.checked.cases, writers as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_case_and_refusals_append_nothing() {
    let (_directory, store) = open().await;
    let missing = custody_core::CaseId::generate();
    let error = store
        .write(write(
            "alice",
            "x",
            CaseStep::Comment {
                case_id: missing.clone(),
                text: "hello".into(),
            }
            .into(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::CaseNotFound(id) if id == missing.to_string()));
    assert_eq!(store.log_size().await.unwrap(), 0);
    assert!(store.cases(None, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_stored_only_as_hashes_and_expire() {
    let (directory, store) = open().await;
    store
        .add_principal(
            Principal {
                id: PrincipalId::from_str("alice").unwrap(),
                display_name: "Alice".into(),
                kind: PrincipalKind::Human,
                groups: vec![],
                org: Some("acme".into()),
            },
            None,
        )
        .await
        .unwrap();
    let issued = store
        .create_token(PrincipalId::from_str("alice").unwrap(), None, None)
        .await
        .unwrap();
    assert!(issued.token.starts_with("cust_") && issued.token.len() == 69);
    let authenticated = store.authenticate(&issued.token).await.unwrap().unwrap();
    assert_eq!(authenticated.principal.id.as_str(), "alice");
    assert_eq!(authenticated.token_id, issued.token_id);
    assert!(store.authenticate("cust_0000").await.unwrap().is_none());
    drop(store);

    let database = std::fs::read(directory.path().join("custody.db")).unwrap();
    let wal = std::fs::read(directory.path().join("custody.db-wal")).unwrap_or_default();
    let secret = issued.token.as_bytes();
    for bytes in [&database, &wal] {
        assert!(
            !bytes.windows(secret.len()).any(|window| window == secret),
            "the bearer secret is stored in clear"
        );
    }

    // Expiry is judged by the store's clock: a test clock moved past the
    // token's lifetime, not a sleep.
    let clock = std::sync::Arc::new(ManualClock::new(Timestamp::now()));
    let store = Store::open_with(
        directory.path(),
        StoreOptions {
            clock: clock.clone(),
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    let expired = store
        .create_token(PrincipalId::from_str("alice").unwrap(), Some(1), None)
        .await
        .unwrap();
    assert!(store.authenticate(&expired.token).await.unwrap().is_some());
    clock.advance_seconds(1);
    assert!(store.authenticate(&expired.token).await.unwrap().is_none());
    assert!(matches!(
        store
            .create_token(PrincipalId::from_str("nobody").unwrap(), None, None)
            .await,
        Err(StoreError::PrincipalNotFound(_))
    ));
}

/// Every time the store records comes from its clock: events, the
/// administration record, the writer's own rows and checkpoints.
#[tokio::test(flavor = "multi_thread")]
async fn recorded_times_follow_the_store_clock() {
    let directory = tempfile::tempdir().unwrap();
    let start = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
    let clock = std::sync::Arc::new(ManualClock::new(start));
    let store = Store::open_with(
        directory.path(),
        StoreOptions {
            clock: clock.clone(),
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(store.clock().now(), start);
    store
        .add_principal(
            Principal {
                id: PrincipalId::from_str("alice").unwrap(),
                display_name: "Alice".into(),
                kind: PrincipalKind::Human,
                groups: vec!["admins".into()],
                org: None,
            },
            None,
        )
        .await
        .unwrap();
    let opened = store
        .write(write("alice", "k1", request("alice", None)))
        .await
        .unwrap();
    clock.advance_seconds(3600);
    store
        .write(write(
            "bob",
            "k2",
            CaseStep::Approve {
                case_id: opened.case_id.clone(),
                comment: None,
                chat: None,
            }
            .into(),
        ))
        .await
        .unwrap();
    let (view, events) = store.case(&opened.case_id).await.unwrap();
    let recorded: Vec<Timestamp> = events.iter().map(|event| event.recorded_at).collect();
    assert_eq!(recorded, vec![start, start.plus_seconds(3600)]);
    assert_eq!(view.opened_at, start);
    assert_eq!(view.updated_at, start.plus_seconds(3600));
    let admin = store.admin_record().await.unwrap();
    assert_eq!(admin.len(), 1);
    assert_eq!(admin[0].recorded_at, start);

    clock.advance_seconds(60);
    let key = custody_log::note::SignerKey::generate("custody.test/log").unwrap();
    let checkpoint = store
        .checkpoint("custody.test/log", std::sync::Arc::new(vec![key]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(checkpoint.created_at, start.plus_seconds(3660).to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_to_one_case_in_one_batch_chain_and_deduplicate() {
    let (directory, store) = open().await;
    let opened = store
        .write(write("alice", "open", request("alice", Some("jira:OPS-1"))))
        .await
        .unwrap();
    // Submitted together, these land in the same group commit: each must see
    // the pending state of the ones before it.
    let mut tasks = Vec::new();
    for index in 0..60 {
        let store = store.clone();
        let case_id = opened.case_id.clone();
        tasks.push(tokio::spawn(async move {
            // Every third write repeats the key of the one before it.
            let key = format!("comment-{}", index - index % 3 / 2);
            store
                .write(write(
                    "bob",
                    &key,
                    CaseStep::Comment {
                        case_id,
                        text: format!("note {}", index - index % 3 / 2),
                    }
                    .into(),
                ))
                .await
        }));
    }
    // A second record of the same ticket and a duplicate open request, in the same rush.
    let same_ticket = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write(write("carol", "t", request("alice", Some("jira:OPS-1"))))
                .await
        })
    };
    let mut replayed = 0;
    for task in tasks {
        let outcome = task.await.unwrap().unwrap();
        replayed += usize::from(outcome.replayed);
    }
    let same_ticket = same_ticket.await.unwrap().unwrap();
    assert!(same_ticket.existing);
    assert_eq!(same_ticket.case_id, opened.case_id);
    assert_eq!(replayed, 20);
    let (view, events) = store.case(&opened.case_id).await.unwrap();
    assert_eq!(events.len(), 41);
    assert_eq!(view.head_seq, 41);
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.seq, index as u64 + 1);
    }
    let counters = store.commit_counters();
    assert!(
        counters.commits < counters.jobs,
        "no write shared a commit: {counters:?}"
    );
    let report = ReadOnlyStore::open(directory.path())
        .await
        .unwrap()
        .audit(Vec::new(), None)
        .await
        .unwrap();
    assert!(report.ok, "{:#?}", report.findings);
}

/// Invariant 3 needs every commit on disk before its write is acknowledged:
/// the writer's own connection (the one that commits) runs with
/// `synchronous=FULL` (2) in WAL mode. Read from the live connection, not
/// from the options that should have set it.
#[tokio::test(flavor = "multi_thread")]
async fn the_writer_commits_with_synchronous_full_in_wal_mode() {
    let (_directory, store) = open().await;
    store
        .write(write("alice", "k1", request("alice", None)))
        .await
        .unwrap();
    let settings = store.durability().await.unwrap();
    let settings: Vec<(&str, &str)> = settings
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    assert_eq!(
        settings,
        [
            ("synchronous", "2"),
            ("journal_mode", "wal"),
            ("foreign_keys", "1")
        ]
    );
}

/// The writer signs nothing on a log that does not extend a checkpoint
/// signed for it: the newest in the database, or one known from outside it
/// (`Store::checkpoint_checked`). Every signing path of a running server
/// (the periodic one, on request, at shutdown) goes through this check.
#[tokio::test(flavor = "multi_thread")]
async fn no_checkpoint_is_signed_on_a_log_that_does_not_extend_a_signed_one() {
    let (directory, store) = open().await;
    let signers = std::sync::Arc::new(vec![custody_log::note::SignerKey::generate(
        "example.com/log",
    )
    .unwrap()]);
    let sign = |known: Vec<custody_store::KnownCheckpoint>| {
        store.checkpoint_checked("example.com/log", signers.clone(), known)
    };
    store
        .write(write("alice", "k1", request("alice", None)))
        .await
        .unwrap();
    let first = sign(Vec::new()).await.unwrap().unwrap();
    assert_eq!(first.size, 1);
    store
        .write(write("bob", "k2", request("bob", None)))
        .await
        .unwrap();
    let known = |size: u64, root: [u8; 32]| custody_store::KnownCheckpoint {
        size,
        root,
        held_in: "/elsewhere/checkpoints".to_string(),
    };

    // A checkpoint held outside with another root at size 1.
    let diverged = sign(vec![known(1, [7; 32])]).await.unwrap_err();
    let StoreError::Diverged(divergence) = &diverged else {
        panic!("{diverged}");
    };
    assert_eq!(
        (
            divergence.held_in.as_str(),
            divergence.size,
            divergence.stored_root
        ),
        ("/elsewhere/checkpoints", 1, Some(first.root))
    );
    assert!(
        diverged.to_string().contains("hint: run `custody verify`"),
        "{diverged}"
    );
    // One longer than the log.
    let shorter = sign(vec![known(5, first.root)]).await.unwrap_err();
    assert!(
        shorter.to_string().contains(
            "is shorter than the signed checkpoint at size 5 held in /elsewhere/checkpoints"
        ),
        "{shorter}"
    );
    assert_eq!(
        store.latest_checkpoint().await.unwrap(),
        Some(first.clone())
    );
    // The honest one: signed.
    let second = sign(vec![known(1, first.root)]).await.unwrap().unwrap();
    assert_eq!(second.size, 2);

    // The newest stored checkpoint's root changed behind the writer's back.
    let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(directory.path().join("custody.db"))
        .connect()
        .await
        .unwrap();
    for statement in [
        "DROP TRIGGER checkpoints_refuse_update",
        "UPDATE checkpoints SET root = zeroblob(32) WHERE size = 2",
    ] {
        sqlx::query(statement)
            .execute(&mut connection)
            .await
            .expect(statement);
    }
    store
        .write(write("carol", "k3", request("carol", None)))
        .await
        .unwrap();
    let diverged = store
        .checkpoint("example.com/log", signers.clone())
        .await
        .unwrap_err();
    assert!(
        diverged.to_string().contains(
            "does not match the signed checkpoint at size 2 held in the database: the checkpoint's root is 0000"
        ),
        "{diverged}"
    );
    assert!(store.check_signed_history(&[]).await.is_err());
    assert_eq!(store.latest_checkpoint().await.unwrap().unwrap().size, 2);
}

/// A push sink's cursor: one lease holder at a time, taken over only when
/// the lease has run out or was given up, and moved only forward, only by
/// the holder, only from the value it read.
#[tokio::test(flavor = "multi_thread")]
async fn export_cursors_are_leased_and_moved_by_compare_and_set() {
    use custody_store::ExportCursorOperation::{Advance, Lease, Release};
    let (_directory, store) = open().await;
    let at = |seconds: u64| {
        Timestamp::parse("2030-01-01T00:00:00Z")
            .unwrap()
            .plus_unsigned_seconds(seconds)
    };
    // A new sink starts at the beginning of the log, leased to the first taker.
    assert_eq!(
        store
            .export_cursor("siem", "a", Lease, at(0), at(30))
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        store
            .export_cursor("siem", "b", Lease, at(10), at(40))
            .await
            .unwrap(),
        None
    );
    // Only the holder moves it, only from where it is, never back.
    assert_eq!(
        store
            .export_cursor("siem", "b", Advance { from: 0, to: 5 }, at(11), at(41))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .export_cursor("siem", "a", Advance { from: 3, to: 5 }, at(11), at(41))
            .await
            .unwrap(),
        None
    );
    assert!(store
        .export_cursor("siem", "a", Advance { from: 0, to: 0 }, at(11), at(41))
        .await
        .is_ok());
    assert!(matches!(
        store
            .export_cursor("siem", "a", Advance { from: 5, to: 4 }, at(11), at(41))
            .await,
        Err(StoreError::InvalidRequest(_))
    ));
    assert_eq!(
        store
            .export_cursor("siem", "a", Advance { from: 0, to: 5 }, at(12), at(42))
            .await
            .unwrap(),
        Some(5)
    );
    // The advance renewed the lease to 42: b waits until it runs out.
    assert_eq!(
        store
            .export_cursor("siem", "b", Lease, at(41), at(71))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .export_cursor("siem", "b", Lease, at(42), at(72))
            .await
            .unwrap(),
        Some(5)
    );
    // The old holder cannot move it any more.
    assert_eq!(
        store
            .export_cursor("siem", "a", Advance { from: 5, to: 9 }, at(43), at(73))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .export_cursor("siem", "a", Lease, at(43), at(73))
            .await
            .unwrap(),
        None
    );
    // Given up, it is free at once; a release by a non-holder changes nothing.
    assert_eq!(
        store
            .export_cursor("siem", "a", Release, at(44), at(44))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .export_cursor("siem", "a", Lease, at(44), at(74))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .export_cursor("siem", "b", Release, at(45), at(45))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .export_cursor("siem", "a", Lease, at(45), at(75))
            .await
            .unwrap(),
        Some(5)
    );
    // Sinks are independent.
    assert_eq!(
        store
            .export_cursor("archive", "b", Lease, at(45), at(75))
            .await
            .unwrap(),
        Some(0)
    );
}

/// A connector's record is keyed by (source, external ID), not by who it
/// maps to: replayed, even mapped to someone else since, it returns the
/// first outcome and appends nothing; a different write under the same
/// record ID is refused; the events carry the origin; and `verify` passes.
#[tokio::test(flavor = "multi_thread")]
async fn a_connector_record_is_written_once_whoever_it_maps_to() {
    let (directory, store) = open().await;
    let opened = store
        .write(write("alice", "open", request("user:dave", None)))
        .await
        .unwrap();
    let from_jira = |name: &str, text: &str| CaseWrite {
        connector: Some(custody_store::ConnectorWrite {
            origin: custody_core::event::Origin {
                source: "jira".into(),
                external_id: "10001-1700000000000".into(),
            },
            reply: None,
        }),
        ..write(
            name,
            "10001-1700000000000",
            CaseStep::Comment {
                case_id: opened.case_id.clone(),
                text: text.into(),
            }
            .into(),
        )
    };
    let first = store.write(from_jira("bob", "edited")).await.unwrap();
    assert!(!first.replayed);
    assert_eq!(first.appended.len(), 1);
    let size = store.log_size().await.unwrap();

    let replayed = store.write(from_jira("carol", "edited")).await.unwrap();
    assert!(replayed.replayed);
    assert_eq!(replayed.appended, first.appended);
    assert_eq!(store.log_size().await.unwrap(), size);

    let refused = store.write(from_jira("bob", "something else")).await;
    match refused {
        Err(StoreError::Refused(refusal)) => {
            assert_eq!(refusal.rule.to_string(), "idempotency.key-reused");
            assert!(refusal.message.contains("10001-1700000000000"), "{refusal}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(store.log_size().await.unwrap(), size);

    // The same key by the same principal through the API is another space.
    let api = store
        .write(write(
            "bob",
            "10001-1700000000000",
            CaseStep::Comment {
                case_id: opened.case_id.clone(),
                text: "through the API".into(),
            }
            .into(),
        ))
        .await
        .unwrap();
    assert!(!api.replayed);

    let (_, events) = store.case(&opened.case_id).await.unwrap();
    let from = &events[1];
    assert_eq!(from.source.as_deref(), Some("jira"));
    assert_eq!(from.external_id.as_deref(), Some("10001-1700000000000"));
    assert_eq!(events[2].source, None);
    let report = ReadOnlyStore::open(directory.path())
        .await
        .unwrap()
        .audit(Vec::new(), None)
        .await
        .unwrap();
    assert!(report.ok, "{:#?}", report.findings);
}

#[tokio::test]
async fn browser_sign_ins_in_progress_are_single_use_expire_and_are_bounded() {
    use custody_store::{ConsoleSessionOperation, MAX_CONSOLE_LOGINS};
    let (_directory, store) = open().await;
    let now = custody_core::Timestamp::now();
    let key = |n: i64| custody_core::Sha256Hash::of(format!("login-{n}").as_bytes());
    let begin = |n: i64, expires_at: custody_core::Timestamp, now: custody_core::Timestamp| {
        ConsoleSessionOperation::BeginLogin {
            login_sha256: key(n),
            pending: format!("{{\"n\":{n}}}"),
            expires_at,
            now,
        }
    };
    // Kept, and read back as written.
    assert_eq!(
        store
            .console_session_write(begin(0, now.plus_seconds(600), now))
            .await
            .unwrap(),
        1
    );
    let (pending, expires_at) = store.console_login(&key(0)).await.unwrap().unwrap();
    assert_eq!(pending, "{\"n\":0}");
    assert_eq!(expires_at, now.plus_seconds(600));
    // Single use: the first delete takes it, the second finds nothing.
    let end = || ConsoleSessionOperation::EndLogin {
        login_sha256: key(0),
    };
    assert_eq!(store.console_session_write(end()).await.unwrap(), 1);
    assert_eq!(store.console_session_write(end()).await.unwrap(), 0);
    assert!(store.console_login(&key(0)).await.unwrap().is_none());

    // Bounded: past the limit nothing more is kept...
    for n in 1..=MAX_CONSOLE_LOGINS {
        let kept = store
            .console_session_write(begin(n, now.plus_seconds(600), now))
            .await
            .unwrap();
        assert_eq!(kept, 1, "sign-in {n} of {MAX_CONSOLE_LOGINS}");
    }
    let refused = store
        .console_session_write(begin(-1, now.plus_seconds(600), now))
        .await
        .unwrap();
    assert_eq!(refused, 0);
    assert!(store.console_login(&key(-1)).await.unwrap().is_none());
    // ...until they expire: the next begin purges them and is kept.
    let later = now.plus_seconds(601);
    assert_eq!(
        store
            .console_session_write(begin(-1, later.plus_seconds(600), later))
            .await
            .unwrap(),
        1
    );
    assert!(store.console_login(&key(1)).await.unwrap().is_none());
    assert!(store.console_login(&key(-1)).await.unwrap().is_some());
}

/// Case listings walk an index newest first and stop at the limit: a plan
/// that scans the table or sorts it reads every case row with its stored
/// view (550 ms a listing at 100,000 cases; docs/performance.md). The
/// delivery worker's backlog gauges read one index, not every pending row.
#[tokio::test]
async fn case_listings_read_an_index_newest_first() {
    let (_directory, store) = open().await;
    for index in 0..20 {
        store
            .write(write(
                "alice",
                &format!("listing-{index}"),
                request(&format!("user:listed{index}"), None),
            ))
            .await
            .unwrap();
    }
    let plans = store.read_plans().await.unwrap().unwrap();
    assert_eq!(plans.len(), 5);
    for (plan, index) in plans.iter().zip([
        "USING INDEX cases_by_time",
        "USING INDEX cases_by_state",
        "USING INDEX cases_unsanctioned",
        "USING INDEX cases_by_state",
        // The delivery worker's backlog: both halves on one index.
        "USING COVERING INDEX outbox_by_age",
    ]) {
        assert!(plan.contains(index), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        // A step that reads a table without an index.
        assert!(
            !plan
                .split("; ")
                .any(|step| step == "SCAN cases" || step == "SCAN outbox"),
            "{plan}"
        );
    }
    // And they list what they listed before: newest first, filtered.
    let listed = store.cases(None, 5).await.unwrap();
    assert_eq!(listed.len(), 5);
    assert!(listed.windows(2).all(
        |pair| (&pair[0].opened_at, &pair[0].case_id) >= (&pair[1].opened_at, &pair[1].case_id)
    ));
    assert_eq!(
        store
            .cases(Some(custody_core::CaseState::Open), 100)
            .await
            .unwrap()
            .len(),
        20
    );
    assert!(store
        .cases(Some(custody_core::CaseState::Reviewed), 100)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .cases_filtered(None, 100, true, false)
        .await
        .unwrap()
        .is_empty());
}
