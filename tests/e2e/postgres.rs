//! The ledger on PostgreSQL: the same lifecycle, verification and tamper
//! evidence as the embedded store, several `custody serve` nodes sharing one
//! database and one gapless log, and a deployment that refuses a node
//! signing for another log.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{
    assert_refused, assert_success, cli_at, command, spawn_serve, stderr, Server, TestStore,
};
use serde_json::Value;

/// Takes one grant through every stage; returns the case ID.
fn lifecycle(server: &Server, requester: &str, approver: &str, executor: &str) -> String {
    let case = server
        .cli_ok(
            requester,
            &[
                "request",
                "--subject",
                "user:alice",
                "--entitlement",
                "role/admin",
                "--justification",
                "on call",
            ],
        )
        .trim()
        .to_string();
    server.cli_ok(approver, &["approve", &case]);
    server.cli_ok(executor, &["execute", &case]);
    server.cli_ok(approver, &["review", &case, "--outcome", "confirmed"]);
    case
}

fn codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| finding["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_lifecycle_verifies_on_postgres_and_tampering_is_refused_or_found() {
    let (server, init) = Server::start_on(TestStore::Postgres, None, None);
    let database = server.database.as_ref().expect("a PostgreSQL server");
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let case = lifecycle(&server, &alice, &bob, &carol);
    assert_eq!(server.show(&alice, &case)["state"], "reviewed");
    // The requester still cannot approve: the rules are the store's, not the backend's.
    let second = server
        .cli_ok(
            &alice,
            &[
                "request",
                "--subject",
                "user:alice",
                "--entitlement",
                "role/reader",
                "--justification",
                "read",
            ],
        )
        .trim()
        .to_string();
    assert_refused(
        &server.cli(Some(&alice), &["approve", &second]),
        "sod.requester-cannot-approve",
    );
    server.sign_checkpoint();
    // Both cases' events and the adoption of the policy; the checkpoint the
    // server signed at start (of its policy's adoption) and the one just signed.
    // The administration record holds init's admin, alice, bob and carol,
    // each with a token.
    let report = server.assert_verify_ok();
    assert_eq!(report["checked"]["events"], 14, "{report:#}");
    assert_eq!(report["checked"]["admin_events"], 8, "{report:#}");
    assert_eq!(report["checked"]["checkpoints"], 2, "{report:#}");

    // Without the data directory, the verifier key alone is enough...
    let key = init["verifier_key"].as_str().unwrap();
    let output = command()
        .args([
            "verify",
            "--json",
            "--database-url",
            &database.url,
            "--key",
            key,
        ])
        .output()
        .unwrap();
    assert_success(&output, "verify --database-url --key");
    // ...but no key at all is refused: the database never vouches for itself.
    let output = command()
        .args(["verify", "--database-url", &database.url])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--key"), "{}", stderr(&output));

    // The database refuses edits of the ledger.
    for sql in [
        "UPDATE events SET kind = 'x'",
        "DELETE FROM events",
        "TRUNCATE events",
        "DELETE FROM log_nodes",
        "TRUNCATE checkpoints",
        "UPDATE deployment SET value = 'other'",
    ] {
        let refused = database.execute(sql).expect_err(sql);
        assert!(refused.contains("custody:"), "{sql}: {refused}");
    }

    // An owner who disables the triggers can edit, and verify names it. The
    // target is the first request case's request (the log's first entry is
    // the policy record's).
    database
        .execute(
            "ALTER TABLE events DISABLE TRIGGER USER;
             UPDATE events SET bytes = convert_to(replace(convert_from(bytes, 'UTF8'), 'on call', 'on kall'), 'UTF8')
              WHERE kind = 'request_created' AND seq = 1 AND case_id = (SELECT case_id FROM events WHERE kind = 'request_created' ORDER BY log_index LIMIT 1);",
        )
        .expect("tamper with the triggers off");
    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let found = codes(&report);
    for expected in [
        "chain.prev-hash-mismatch",
        "log.leaf-mismatch",
        "checkpoint.root-mismatch",
    ] {
        assert!(
            found.iter().any(|code| code == expected),
            "{expected} in {found:?}"
        );
    }
}

#[test]
fn verify_compares_the_rows_the_server_reads_instead_of_the_log_on_postgres() {
    // The deployment facts, the evidence-record rows, the case rows' listing
    // columns and the administration rows' authors are read by the same
    // queries on both backends (docs/tamper.md); the honest store has no
    // finding, and each rewrite is named.
    let (server, _) = Server::start_on(TestStore::Postgres, None, None);
    let database = server.database.as_ref().expect("a PostgreSQL server");
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let case = lifecycle(&server, &alice, &bob, &carol);
    server.sign_checkpoint();
    server.assert_verify_ok();
    database
        .execute(&format!(
            "ALTER TABLE deployment DISABLE TRIGGER USER;
             UPDATE deployment SET value = '{case}' WHERE key = 'policy_record';
             UPDATE cases SET summary = 'grant role/reader to user:alice' WHERE case_id = '{case}';
             UPDATE principals SET created_by = 'carol' WHERE principal_id = 'alice';
             INSERT INTO evidence_records (ticket, case_id, released_to, created_at)
               VALUES ('jira:OPS-1', '{case}', NULL, '2026-01-01T00:00:00Z');"
        ))
        .expect("tamper with the triggers off");
    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let found = codes(&report);
    for expected in [
        "deployment.mismatch",
        "case.projection-mismatch",
        "admin.principal-mismatch",
        "evidence.record-mismatch",
    ] {
        assert!(
            found.iter().any(|code| code == expected),
            "{expected} in {found:?}"
        );
    }
}

#[test]
fn nodes_share_one_database_and_one_gapless_log() {
    let (server, _) = Server::start_on(TestStore::Postgres, None, None);
    let url = server.database.as_ref().unwrap().url.clone();
    let scratch = tempfile::tempdir().unwrap();

    // A node with a new data directory has no key for this log: refused, with the fix.
    let fresh = scratch.path().join("fresh");
    let refused = match spawn_serve(&fresh, Some(&url)) {
        Ok(_) => panic!("a node without the log's key started"),
        Err(stderr) => stderr,
    };
    assert!(refused.contains("exit Some(2)"), "{refused}");
    assert!(
        refused.contains("already holds the ledger of log"),
        "{refused}"
    );
    assert!(refused.contains("log-signing.key"), "{refused}");
    // ...and nothing was created on its behalf.
    assert!(!fresh.join("log-signing.key").exists());

    // A node of another deployment (another key, another origin): refused.
    let other = scratch.path().join("other");
    let output = command()
        .args(["init", "--data"])
        .arg(&other)
        .output()
        .unwrap();
    assert_success(&output, "init another deployment");
    let refused = match spawn_serve(&other, Some(&url)) {
        Ok(_) => panic!("a node signing for another log started"),
        Err(stderr) => stderr,
    };
    assert!(refused.contains("signs for log"), "{refused}");

    // With the deployment's key copied, a second node joins.
    let second = scratch.path().join("second");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::copy(
        server.data.join("log-signing.key"),
        second.join("log-signing.key"),
    )
    .unwrap();
    let node = spawn_serve(&second, Some(&url)).expect("the second node starts");

    let requester = server.principal("requester");
    // Both nodes append at once; the log is one log.
    let per_node = 25;
    std::thread::scope(|scope| {
        for (base, prefix) in [(server.url.clone(), "a"), (node.url.clone(), "b")] {
            let requester = requester.clone();
            scope.spawn(move || {
                for index in 0..per_node {
                    let output = cli_at(
                        &base,
                        &requester,
                        &[
                            "request",
                            "--subject",
                            &format!("user:{prefix}{index}"),
                            "--entitlement",
                            "role/reader",
                            "--justification",
                            "load",
                        ],
                    );
                    assert_success(&output, "request through a node");
                }
            });
        }
    });
    // The requests and the policy's one adoption: the second node runs the
    // same policy and the refused nodes never started, so none recorded it again.
    // Before them: init's admin and token, the policy, the requester and
    // its token.
    let size = 2 * per_node + 5;
    assert_eq!(server.log_size(), size);
    let entries = server.get_json(&format!("/v1/log/entries?start=0&end={size}"));
    let entries = entries["entries"].as_array().unwrap();
    let indexes: Vec<u64> = entries
        .iter()
        .map(|entry| entry["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, (0..size).collect::<Vec<_>>());
    let policy = server.cli_json(&server.admin_token, &["policy"]);
    assert_eq!(
        policy["history"].as_array().map(Vec::len),
        Some(1),
        "{policy:#}"
    );
    assert_eq!(entries[2]["case_id"], policy["record"], "{policy:#}");
    // Checkpoints signed by either node are checkpoints of the same log.
    cli_at(
        &node.url,
        &server.admin_token,
        &["log", "checkpoint", "--new"],
    );
    server.sign_checkpoint();
    let report = server.assert_verify_ok();
    assert_eq!(report["checked"]["events"], size);
}

#[test]
fn an_unreachable_database_fails_at_once_naming_why() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://custody@127.0.0.1:{port}/custody");
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let output = command()
        .arg("init")
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert_success(&output, "custody init");
    let bundle = root.path().join("ledger.bundle");
    for args in [
        vec!["verify", "--database-url", &url],
        vec!["export", "--format", "jsonl", "--database-url", &url],
        vec![
            "export",
            "--format",
            "bundle",
            "--database-url",
            &url,
            "--out",
            bundle.to_str().unwrap(),
        ],
    ] {
        let output = command()
            .args(&args)
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap();
        let what = args.join(" ");
        assert_eq!(output.status.code(), Some(2), "{what}: {}", stderr(&output));
        // The connection's own error, from one attempt: not a pool that
        // retried until its acquire timeout and then said only that.
        let message = stderr(&output);
        assert!(
            message.contains(&format!("cannot connect to {url}"))
                && message.contains("Connection refused")
                && !message.contains("timed out"),
            "{what}: {message}"
        );
        assert!(
            message.contains("hint: check the host, port"),
            "{what}: {message}"
        );
    }
    assert!(!bundle.exists());
}
