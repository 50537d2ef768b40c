//! The Vault source end to end: a real `custody serve` with a
//! `[[connectors]]` entry of kind `vault`, audit records shaped as Vault's
//! audit devices write them (every token and secret as
//! `hmac-sha256:<hex>`), read from a file with `custody ingest` and from
//! Vault's `socket` device, which the test plays by connecting to the
//! server's `socket_listen` address and writing lines.

use std::io::Write;
use std::net::TcpStream;

use serde_json::{json, Value};

use super::observed::{
    all_cases, assert_only_findings, assert_unsanctioned_and_escalated, events_per_origin, hex,
    hmac_sha256, ingest, ingest_ok, lines, observed, rfc3339_ms, sanctioned,
};
use crate::common::{wait_until, Server, TestStore};
use custody_core::{Clock, Code};

/// Alice's Vault identity entity: mapped to the principal alice.
const ALICE_ENTITY: &str = "7d2e3d4f-1c2b-4a5e-9f80-0a1b2c3d4e5f";

/// A secret ID as Vault issues it: it must never reach the ledger, not
/// even HMAC'd.
const SECRET_ID: &str = "5c1f0b8e-6a2d-4e3f-9b7c-RAWSECRETID0";

/// A client token in the clear, as an audit device with `log_raw` writes it.
const CLEAR_TOKEN: &str = "hvs.CAESIRAWCLEARTOKEN0000000000";

const CONNECTOR: &str = r#"[[connectors]]
name = "vault"
kind = "vault"
"#;

const POLICY: &str = r#"[workflow]
scan_interval_seconds = 1

[[policy.rules]]
name = "credentials"
subject_kinds = ["api_key", "token", "service_account"]
post_hoc_review_deadline = "1h"
"#;

/// Vault's HMAC of `value` under the audit device's salt (any key does
/// for the test: the point is that only HMACs are written).
fn hmac(value: &str) -> String {
    format!(
        "hmac-sha256:{}",
        hex(&hmac_sha256(b"vault audit salt", value.as_bytes()))
    )
}

/// A response record of `operation` on `path` by alice's token, at `at_ms`.
fn response(
    id: &str,
    at_ms: i64,
    operation: &str,
    path: &str,
    data: Value,
    response: Value,
) -> Value {
    json!({
        "time": rfc3339_ms(at_ms),
        "type": "response",
        "auth": {
            "client_token": hmac("alice's token"),
            "accessor": hmac("alice's accessor"),
            "display_name": "userpass-alice",
            "policies": ["default", "vault-admin"],
            "token_policies": ["default", "vault-admin"],
            "metadata": {"username": "alice"},
            "entity_id": ALICE_ENTITY,
            "token_type": "service",
            "token_ttl": 2_764_800,
            "token_issue_time": "2026-03-01T08:00:00Z",
        },
        "request": {
            "id": id,
            "operation": operation,
            "mount_type": "approle",
            "mount_accessor": "auth_approle_4f2b1c9d",
            "client_token": hmac("alice's token"),
            "client_token_accessor": hmac("alice's accessor"),
            "namespace": {"id": "root"},
            "path": path,
            "data": data,
            "remote_address": "10.0.4.12",
            "remote_port": 51_234,
        },
        "response": response,
        "error": "",
    })
}

/// The request record Vault writes before the response (skipped).
fn request_of(response: &Value) -> Value {
    let mut request = response.clone();
    request["type"] = json!("request");
    request.as_object_mut().unwrap().remove("response");
    request
}

fn secret_id_issued(id: &str, at_ms: i64, role: &str) -> Value {
    response(
        id,
        at_ms,
        "update",
        &format!("auth/approle/role/{role}/secret-id"),
        json!({"metadata": hmac("{}")}),
        json!({"mount_type": "approle", "data": {
            "secret_id": hmac(SECRET_ID),
            "secret_id_accessor": hmac("accessor of the secret id"),
            "secret_id_num_uses": 0, "secret_id_ttl": 0}}),
    )
}

fn policies_set(id: &str, at_ms: i64, user: &str, policies: &str) -> Value {
    response(
        id,
        at_ms,
        "update",
        &format!("auth/userpass/users/{user}"),
        json!({"password": hmac("a password"), "policies": policies}),
        Value::Null,
    )
}

fn now_ms(server: &Server) -> i64 {
    server.clock().now().as_micros() / 1000
}

/// Every byte the ledger keeps: the files of the data directory (the
/// database, its journal) and a JSON-lines export of every event.
fn ledger_bytes(server: &Server) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut directories = vec![server.data.clone()];
    while let Some(directory) = directories.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                directories.push(path);
            } else {
                bytes.extend(std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    let export = tempfile::NamedTempFile::new().unwrap();
    server.cli_ok(
        &server.admin_token,
        &[
            "export",
            "--format",
            "jsonl",
            "--out",
            export.path().to_str().unwrap(),
        ],
    );
    bytes.extend(std::fs::read(export.path()).unwrap());
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn audit_files_are_ingested_in_any_order_and_no_secret_reaches_the_ledger() {
    let (server, _) =
        Server::start_in_process(TestStore::Embedded, Some(&format!("{POLICY}\n{CONNECTOR}")));
    let alice = server.principal("alice");
    let carol = server.principal("carol");
    server.cli_ok(
        &server.admin_token,
        &["connector", "map", "vault", ALICE_ENTITY, "alice"],
    );
    let bob = sanctioned(
        &server,
        &alice,
        &carol,
        &alice,
        &[
            "--subject",
            "user:bob",
            "--change",
            "grant",
            "--entitlement",
            "db-read,default",
            "--resource",
            "auth/userpass",
        ],
    );
    let dana = sanctioned(
        &server,
        &alice,
        &carol,
        &alice,
        &[
            "--subject",
            "user:dana",
            "--change",
            "grant",
            "--entitlement",
            "kv-read",
            "--resource",
            "auth/userpass",
        ],
    );
    // A token for CI, requested by name; Vault's token carries the case ID
    // in its metadata.
    let token_case = sanctioned(
        &server,
        &alice,
        &carol,
        &alice,
        &[
            "--subject",
            "token:token-ci",
            "--change",
            "create",
            "--entitlement",
            "default,deploy",
            "--resource",
            "auth/token",
        ],
    );
    let now = now_ms(&server);
    let bob_record = policies_set("req-bob", now + 1000, "bob", "default,db-read");
    let dana_record = policies_set("req-dana", now + 2000, "dana", "kv-read");
    let token_record = response(
        "req-token",
        now + 3000,
        "update",
        "auth/token/create",
        json!({"policies": hmac("deploy"), "display_name": hmac("ci"), "meta": hmac("case")}),
        json!({"auth": {
            "client_token": hmac("the new token"), "accessor": hmac("the new token's accessor"),
            "display_name": "token-ci", "policies": ["default", "deploy"],
            "token_policies": ["default", "deploy"], "metadata": {"case": token_case},
            "entity_id": "", "token_type": "service", "lease_duration": 3600, "renewable": true}}),
    );
    let unsanctioned = secret_id_issued("req-secret", now + 4000, "ci");
    // The later records first, each response after its request record.
    let file = lines(&[
        request_of(&unsanctioned),
        unsanctioned.clone(),
        request_of(&token_record),
        token_record,
        dana_record,
        bob_record,
    ]);
    let summary = ingest_ok(&server, "vault", &file);
    assert_eq!(summary["observations"], 4, "{summary}");
    assert_eq!(summary["skipped"], 2, "{summary}");
    assert_eq!(summary["matched"], 3, "{summary}");
    assert_eq!(summary["unsanctioned"], 1, "{summary}");
    for (case, id, matched_by) in [
        (&bob, "req-bob", "window"),
        (&dana, "req-dana", "window"),
        (&token_case, "req-token", "case_id"),
    ] {
        let events = observed(&server, case);
        assert_eq!(events.len(), 1, "{case}: {events:?}");
        assert_eq!(events[0]["external_id"], id);
        assert_eq!(events[0]["payload"]["matched_by"], matched_by);
        assert_eq!(events[0]["payload"]["drift"], json!([]), "{events:?}");
        assert_eq!(events[0]["payload"]["actor"]["principal"], "alice");
        assert_eq!(
            events[0]["payload"]["actor"]["session"],
            hmac("alice's accessor")
        );
    }
    // The secret ID issued with no case is unsanctioned: listed, reported,
    // and escalated once its review is overdue.
    let opened = all_cases(&server, true);
    assert_eq!(opened.len(), 1);
    assert_unsanctioned_and_escalated(&server, &opened[0], "vault", "req-secret", true);

    // Ingested again: nothing appended.
    let size = server.log_size();
    let again = ingest_ok(&server, "vault", &file);
    assert_eq!(again["duplicates"], 4, "{again}");
    assert_eq!(server.log_size(), size);

    // A file from a device that logs secrets in the clear is refused
    // whole, naming the record and not the secret.
    let mut raw = secret_id_issued("req-raw", now + 5000, "ci");
    raw["response"]["data"]["secret_id"] = json!(SECRET_ID);
    raw["auth"]["client_token"] = json!(CLEAR_TOKEN);
    let (code, refusal) = ingest(
        &server,
        "vault",
        &lines(&[policies_set("req-ok", now + 5000, "erin", "kv-read"), raw]),
    );
    assert_eq!(code, Some(2), "{refusal}");
    assert_eq!(server.log_size(), size, "a refused file appended");
    assert_eq!(events_per_origin(&server).len(), 4);

    // No secret reaches the ledger: not in the clear, and not even the
    // HMACs of the secret ID or of any client token.
    let kept = ledger_bytes(&server);
    // What Vault wrote as the session (the accessor's HMAC) is kept: the
    // search does see what the ledger holds.
    assert!(contains(&kept, &hmac("alice's accessor")));
    for secret in [
        SECRET_ID,
        CLEAR_TOKEN,
        &hmac(SECRET_ID),
        &hmac("alice's token"),
        &hmac("the new token"),
    ] {
        assert!(!contains(&kept, secret), "the ledger holds {secret}");
    }
}

#[test]
fn the_socket_device_records_each_line_once_and_an_unsanctioned_secret_id_escalates() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "{POLICY}\n{CONNECTOR}socket_listen = \"127.0.0.1:{port}\"\nmax_line_bytes = 4096\n"
    );
    let (server, _) = Server::start_in_process(TestStore::Embedded, Some(&config));
    let now = now_ms(&server);
    let issued = secret_id_issued("sock-1", now + 1000, "deployer");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut written = Vec::new();
    written.extend(lines(&[request_of(&issued)]));
    written.extend(b"this is not JSON\n");
    written.extend(vec![b'x'; 6000]);
    written.push(b'\n');
    written.extend(lines(std::slice::from_ref(&issued)));
    // Vault writes the same record again (a retry after a reconnection).
    written.extend(lines(&[issued.clone(), issued]));
    // Written in pieces, as TCP delivers them.
    for piece in written.chunks(1000) {
        stream.write_all(piece).unwrap();
        stream.flush().unwrap();
    }
    wait_until("the socket's record is recorded", || {
        !all_cases(&server, true).is_empty()
    });
    // A second connection, as after Vault restarts.
    drop(stream);
    let mut again = TcpStream::connect(("127.0.0.1", port)).unwrap();
    again
        .write_all(&lines(&[policies_set(
            "sock-2",
            now + 2000,
            "bob",
            "kv-read",
        )]))
        .unwrap();
    drop(again);
    wait_until("the second connection's record is recorded", || {
        events_per_origin(&server).len() == 2
    });
    let counts = events_per_origin(&server);
    assert!(counts.values().all(|count| *count == 1), "{counts:?}");
    let case = all_cases(&server, true)
        .into_iter()
        .find(|case| observed(&server, case)[0]["external_id"] == "sock-1")
        .unwrap();
    assert_unsanctioned_and_escalated(&server, &case, "vault", "sock-1", true);
    assert_only_findings(
        &server,
        &[
            Code::ChangeUnsanctioned,
            Code::DriftNhiCredentialUnsanctioned,
            Code::BreakGlassReviewOverdue,
        ],
    );
}

#[test]
fn a_socket_address_other_than_loopback_is_refused_unless_the_network_is_trusted() {
    let config = format!("{CONNECTOR}socket_listen = \"0.0.0.0:9201\"\n");
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("custody.toml");
    std::fs::write(&file, config).unwrap();
    let output = crate::common::command()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(directory.path().join("data"))
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}
