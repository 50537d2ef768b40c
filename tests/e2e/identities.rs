//! The outside users a connector trusts (`custody connector map`, `unmap`,
//! `identities`): admins map them to principals, one at a time or from a
//! CSV file (all its lines or none), each mapping an event of the
//! administration record; `verify` passes after, and finds a mapping
//! inserted behind the store's back. On both stores, through the real CLI
//! and server.

use crate::common;

use common::{Server, TestStore, STORES};
use serde_json::Value;

/// The administration record's identity events, as (kind, user, principal,
/// previous).
fn identity_events(server: &Server) -> Vec<(String, String, String, Value)> {
    let record = server.cli_json(&server.admin_token, &["admin", "record"]);
    record["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"] == "identity_mapped" || event["kind"] == "identity_unmapped")
        .map(|event| {
            assert_eq!(event["actor"]["principal"], "admin", "{event:#}");
            let payload = &event["payload"];
            (
                event["kind"].as_str().unwrap().to_string(),
                payload["external_user"].as_str().unwrap().to_string(),
                payload["principal"].as_str().unwrap().to_string(),
                payload.get("previous").cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// `custody connector identities NAME --json`, as (user, principal).
fn identities(server: &Server, connector: &str) -> Vec<(String, String)> {
    let list = server.cli_json(&server.admin_token, &["connector", "identities", connector]);
    assert_eq!(list["connector"], connector);
    list["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|mapping| {
            (
                mapping["external_user"].as_str().unwrap().to_string(),
                mapping["principal"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(user, principal)| (user.to_string(), principal.to_string()))
        .collect()
}

fn write_file(server: &Server, name: &str, text: &str) -> String {
    let path = server.root.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn admins_map_outside_users_on_the_record_and_verify_checks_the_table() {
    for store in STORES {
        mapping_on(store);
    }
}

fn mapping_on(store: TestStore) {
    let (mut server, _) = Server::start_on(store, None, None);
    let alice = server.principal("alice");
    server.principal("bob");
    let admin = server.admin_token.clone();

    let mapped = server.cli_ok(&admin, &["connector", "map", "slack", "U01ALICE", "alice"]);
    assert_eq!(mapped.trim(), "mapped slack user U01ALICE to alice");
    // Mapped again: nothing recorded, and it says so.
    let again = server.cli_json(&admin, &["connector", "map", "slack", "U01ALICE", "alice"]);
    assert_eq!(again["recorded"], false, "{again:#}");
    assert_eq!(again["mapping"]["mapped_by"], "admin", "{again:#}");
    // IDs are exact, and carried whole through the URL.
    server.cli_ok(&admin, &["connector", "map", "slack", "u01alice", "bob"]);
    server.cli_ok(
        &admin,
        &[
            "connector",
            "map",
            "servicenow",
            "Ann Lee/Ops é?#%",
            "alice",
        ],
    );
    assert_eq!(
        identities(&server, "servicenow"),
        pairs(&[("Ann Lee/Ops é?#%", "alice")])
    );

    // A principal that is not an admin maps, unmaps and lists nothing.
    for args in [
        &["connector", "map", "slack", "U09", "alice"][..],
        &["connector", "unmap", "slack", "U01ALICE"][..],
        &["connector", "identities", "slack"][..],
    ] {
        let output = server.cli(Some(&alice), args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            common::stderr(&output)
        );
        assert!(
            common::stderr(&output).contains("admins"),
            "{}",
            common::stderr(&output)
        );
    }
    // Mapping to `system` or to nobody is refused.
    for (principal, exit) in [("system", 2), ("ghost", 1)] {
        let output = server.cli(
            Some(&admin),
            &["connector", "map", "slack", "U09", principal],
        );
        assert_eq!(
            output.status.code(),
            Some(exit),
            "{}",
            common::stderr(&output)
        );
    }

    // A file with bad lines is refused whole, naming them; nothing is recorded.
    let before = identity_events(&server).len();
    let bad = write_file(
        &server,
        "bad.csv",
        "external_user,principal\nU02BOB,bob\nU03,ghost\nU04\nU05,system\n",
    );
    let output = server.cli(Some(&admin), &["connector", "map", "slack", "--file", &bad]);
    assert_eq!(output.status.code(), Some(2), "{}", common::stderr(&output));
    let said = common::stderr(&output);
    for expected in ["nothing was recorded", "line 4:", "line 5:"] {
        assert!(said.contains(expected), "{expected}: {said}");
    }
    assert!(!said.contains("line 2:"), "{said}");
    // An unknown principal is named by its line too.
    let unknown = write_file(&server, "unknown.csv", "U02BOB,bob\nU03,ghost\n");
    let output = server.cli(
        Some(&admin),
        &["connector", "map", "slack", "--file", &unknown],
    );
    assert_eq!(output.status.code(), Some(2), "{}", common::stderr(&output));
    assert!(
        common::stderr(&output).contains("line 2: principal ghost does not exist"),
        "{}",
        common::stderr(&output)
    );
    assert_eq!(identity_events(&server).len(), before);
    assert_eq!(
        identities(&server, "slack"),
        pairs(&[("U01ALICE", "alice"), ("u01alice", "bob")])
    );

    // A good file: each line its own event; a user mapped to someone else
    // is remapped, one mapped so already is left as it is.
    let good = write_file(
        &server,
        "good.csv",
        "# from the Slack admin export\r\nexternal_user,principal\r\nU01ALICE,bob\r\nu01alice,bob\r\n\"U02,B\",alice\r\n",
    );
    let printed = server.cli_ok(&admin, &["connector", "map", "slack", "--file", &good]);
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        [
            "remapped slack user U01ALICE to bob (was alice)",
            "slack user u01alice is mapped to bob already: nothing recorded",
            "mapped slack user U02,B to alice",
            "2 mapping(s) recorded, 1 unchanged",
        ]
    );

    // Unmapped: gone from the list; unmapping again is refused.
    let unmapped = server.cli_ok(&admin, &["connector", "unmap", "slack", "U01ALICE"]);
    assert_eq!(unmapped.trim(), "unmapped slack user U01ALICE (was bob)");
    let output = server.cli(Some(&admin), &["connector", "unmap", "slack", "U01ALICE"]);
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    assert!(
        common::stderr(&output).contains("slack user U01ALICE is not mapped"),
        "{}",
        common::stderr(&output)
    );
    assert_eq!(
        identities(&server, "slack"),
        pairs(&[("U02,B", "alice"), ("u01alice", "bob")])
    );

    let text = |value: &str| value.to_string();
    assert_eq!(
        identity_events(&server),
        [
            (
                text("identity_mapped"),
                text("U01ALICE"),
                text("alice"),
                Value::Null
            ),
            (
                text("identity_mapped"),
                text("u01alice"),
                text("bob"),
                Value::Null
            ),
            (
                text("identity_mapped"),
                text("Ann Lee/Ops é?#%"),
                text("alice"),
                Value::Null
            ),
            (
                text("identity_mapped"),
                text("U01ALICE"),
                text("bob"),
                Value::from("alice")
            ),
            (
                text("identity_mapped"),
                text("U02,B"),
                text("alice"),
                Value::Null
            ),
            (
                text("identity_unmapped"),
                text("U01ALICE"),
                text("bob"),
                Value::Null
            ),
        ]
    );
    let shown = server.cli_ok(&admin, &["admin", "record"]);
    assert!(
        shown.contains("mapped slack user U01ALICE to bob (was alice)"),
        "{shown}"
    );

    server.stop();
    let report = server.assert_verify_ok();
    assert_eq!(report["checked"]["admin_events"], 12, "{report:#}");
    if server.database.is_none() {
        restored_from_a_bundle(&server);
    }

    // A mapping inserted behind the store's back is a finding.
    let insert = "INSERT INTO connector_identities (connector, external_user, principal_id, mapped_at, mapped_by)
         VALUES ('slack', 'U66MALLORY', 'admin', '2026-01-01T00:00:00.000000Z', 'admin')";
    let (output, report) = match &server.database {
        Some(database) => {
            database.execute(insert).unwrap();
            server.verify_with(&[])
        }
        None => {
            let copy = common::tamper::copy_of(&server.data);
            let mut db = common::tamper::Db::open(copy.path());
            db.run(insert);
            drop(db);
            common::verify_dir(copy.path())
        }
    };
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let critical: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|finding| finding["severity"] != "info")
        .collect();
    assert_eq!(critical.len(), 1, "{report:#}");
    assert_eq!(critical[0]["code"], "admin.identity-unrecorded");
    assert!(
        critical[0]["message"]
            .as_str()
            .unwrap()
            .contains("U66MALLORY"),
        "{report:#}"
    );
}

/// A whole-log bundle carries the mappings: an import rebuilds the table
/// from the events (its `verify` compares the two), and the lookup the
/// connectors make answers on the restored store as on the original.
fn restored_from_a_bundle(server: &Server) {
    let root = tempfile::tempdir().unwrap();
    let bundle = root.path().join("whole.jsonl");
    let output = common::command()
        .args(["export", "--format", "bundle", "--data"])
        .arg(&server.data)
        .arg("--out")
        .arg(&bundle)
        .output()
        .unwrap();
    common::assert_success(&output, "custody export --format bundle");
    let imported = root.path().join("imported");
    let key = server.log_keys()[0].clone();
    let output = common::command()
        .args(["import", "--bundle"])
        .arg(&bundle)
        .arg("--data")
        .arg(&imported)
        .args(["--key", &key])
        .output()
        .unwrap();
    common::assert_success(&output, "custody import --data");
    std::fs::copy(
        server.data.join("log-signing.key"),
        imported.join("log-signing.key"),
    )
    .unwrap();
    common::assert_verify_ok(&imported);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let found = runtime.block_on(async {
        let store = custody_store::Store::open(&imported).await.unwrap();
        let mut found = Vec::new();
        for (connector, user) in [
            ("slack", "U02,B"),
            ("slack", "u01alice"),
            ("slack", "U01ALICE"),
            ("servicenow", "Ann Lee/Ops é?#%"),
        ] {
            found.push(
                store
                    .connector_identity(connector, user)
                    .await
                    .unwrap()
                    .map(|principal| principal.id.to_string()),
            );
        }
        found
    });
    assert_eq!(
        found,
        [
            Some("alice".to_string()),
            Some("bob".to_string()),
            None,
            Some("alice".to_string())
        ]
    );
}
