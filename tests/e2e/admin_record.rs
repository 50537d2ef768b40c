//! Invariant 13: administration is on the record. Principals (with their
//! groups), tokens and delegation grants are events of the deployment's
//! administration record, written by the authenticated admin through the
//! store's writer; revocations are decided under the writer's lock; and
//! `custody verify` catches a principal, token or grant changed behind the
//! store's back. Against a real server and the real `custody verify`.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{Body, Server};
use serde_json::{json, Value};

/// Every event of the administration record, via `custody admin record --json`.
fn admin_record(server: &Server) -> Value {
    server.cli_json(&server.admin_token, &["admin", "record"])
}

fn grant(server: &Server) -> String {
    server
        .cli_ok(
            &server.admin_token,
            &[
                "delegation",
                "grant",
                "--vendor-org",
                "msp-co",
                "--on-behalf-of",
                "dba-team",
                "--valid-for",
                "7d",
                "--principal",
                "vera",
            ],
        )
        .trim()
        .to_string()
}

#[test]
fn concurrent_revocations_of_one_grant_keep_the_first_revocation_time() {
    let mut server = Server::start();
    server.principal_with("vera", &["--kind", "vendor", "--org", "msp-co"]);
    let grant_id = grant(&server);
    let path = format!("/v1/delegations/{grant_id}");
    let client = server.client();
    let url = server.url.clone();
    let token = server.admin_token.clone();
    // Sixteen admins' revocations of the same grant, all in flight at once.
    let answers: Vec<(u16, Value)> = server.runtime().block_on(async {
        let requests = (0..16).map(|_| {
            let request = client
                .delete(format!("{url}{path}"))
                .header("authorization", format!("Bearer {token}"));
            async move {
                let response = request.send().await.expect("DELETE");
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.expect("JSON"))
            }
        });
        futures_join_all(requests).await
    });
    let first = answers[0].1["revoked_at"].clone();
    assert!(first.is_string(), "{answers:?}");
    for (status, grant) in &answers {
        assert_eq!(*status, 200, "{grant}");
        assert_eq!(
            grant["revoked_at"], first,
            "every answer gives the first revocation time: {answers:?}"
        );
    }
    // One revocation is recorded, at that time, and the grant says so.
    let record = admin_record(&server);
    let revocations: Vec<&Value> = record["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"] == "delegation_revoked")
        .collect();
    assert_eq!(revocations.len(), 1, "{record:#}");
    assert_eq!(revocations[0]["payload"]["revoked_at"], first);
    assert_eq!(revocations[0]["recorded_at"], first);
    let list = server.cli_json(&server.admin_token, &["delegation", "list"]);
    assert_eq!(list["delegations"][0]["revoked_at"], first, "{list:#}");
    server.stop();
    common::assert_verify_ok(&server.data);
}

/// `futures::future::join_all` without the dependency: runs every future
/// on the current task and collects the results in order.
async fn futures_join_all<
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
>(
    futures: impl Iterator<Item = F>,
) -> Vec<T> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.expect("task"));
    }
    results
}

#[test]
fn a_vendor_acting_while_its_grant_is_revoked_is_never_recorded_after_the_revocation() {
    let mut server = Server::start();
    let alice = server.principal("alice");
    let vera = server.principal_with("vera", &["--kind", "vendor", "--org", "msp-co"]);
    let grant_id = grant(&server);
    let case = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:ann",
            "--entitlement",
            "reader",
        ],
    );
    let case = case.trim().to_string();
    // The vendor comments as fast as it can while an admin revokes the grant.
    let client = server.client();
    let url = server.url.clone();
    let admin = server.admin_token.clone();
    let statuses: Vec<u16> = server.runtime().block_on(async {
        let comments = (0..40).map(|index| {
            let request = client
                .post(format!("{url}/v1/cases/{case}/comments"))
                .header("authorization", format!("Bearer {vera}"))
                .json(&json!({"text": format!("step {index}")}));
            async move { request.send().await.expect("POST").status().as_u16() }
        });
        let revoke = client
            .delete(format!("{url}/v1/delegations/{grant_id}"))
            .header("authorization", format!("Bearer {admin}"));
        let revoked = tokio::spawn(async move { revoke.send().await.expect("DELETE").status() });
        let statuses = futures_join_all(comments).await;
        assert_eq!(revoked.await.unwrap().as_u16(), 200);
        statuses
    });
    for status in &statuses {
        assert!(*status == 200 || *status == 403, "{statuses:?}");
    }
    // After the revocation nothing the vendor does is accepted.
    let refused = server.http(
        "POST",
        &format!("/v1/cases/{case}/comments"),
        Some(&vera),
        &[],
        Body::Json(json!({"text": "one more"})),
    );
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(
        refused.json["rule"], "delegation.expired",
        "{}",
        refused.text
    );
    server.stop();
    // Every vendor comment that was recorded came before the revocation in
    // the log: verify re-checks each against the grant as it stood.
    let report = common::assert_verify_ok(&server.data);
    assert!(
        report["checked"]["delegated_actions"].as_u64().unwrap()
            == statuses.iter().filter(|status| **status == 200).count() as u64,
        "{report:#}"
    );
}

#[test]
fn the_administration_record_shows_and_proves_who_made_whom_an_admin() {
    let (server, init) = Server::start_configured(None, None);
    let verifier_key = init["verifier_key"].as_str().unwrap().to_string();
    let admin_token_id = server.cli_json(&server.admin_token, &["whoami"])["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    let alice = server.principal_with("alice", &["--group", "admins"]);
    let alice_token_id = server.cli_json(&alice, &["whoami"])["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Alice, an admin now, adds bob; a non-admin cannot add anyone.
    server.cli_ok(&alice, &["principal", "add", "bob"]);
    let bob = server.cli_ok(&alice, &["token", "create", "bob"]);
    let output = server.cli(Some(bob.trim()), &["principal", "add", "mallory"]);
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));

    let record = admin_record(&server);
    let record_id = record["record"].as_str().unwrap().to_string();
    let events = record["events"].as_array().unwrap();
    let summary: Vec<(String, String, String)> = events
        .iter()
        .map(|event| {
            (
                event["kind"].as_str().unwrap().to_string(),
                event["actor"]["principal"].as_str().unwrap().to_string(),
                event["payload"]["principal"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("principal_added", "system", "admin"),
        ("token_issued", "system", "admin"),
        ("principal_added", "admin", "alice"),
        ("token_issued", "admin", "alice"),
        ("principal_added", "alice", "bob"),
        ("token_issued", "alice", "bob"),
    ]
    .iter()
    .map(|(kind, by, whom)| (kind.to_string(), by.to_string(), whom.to_string()))
    .collect();
    assert_eq!(summary, expected, "{record:#}");
    // Who made alice an admin: the admin, through its token, with the group.
    assert_eq!(events[2]["payload"]["groups"], json!(["admins"]));
    assert_eq!(
        events[2]["actor"]["auth"]["token_id"],
        admin_token_id.as_str()
    );
    assert_eq!(events[2]["role"], "admin");
    assert_eq!(
        events[4]["actor"]["auth"]["token_id"],
        alice_token_id.as_str()
    );
    // Tokens are recorded by ID and the SHA-256 of their secret (whole,
    // and its first 16 hex digits), never the secret.
    let text = record.to_string();
    assert!(!text.contains(alice.as_str()) && !text.contains(bob.trim()));
    let alice_hash = custody_core::Sha256Hash::of(alice.as_bytes()).to_hex();
    assert_eq!(events[3]["payload"]["secret_sha256"], alice_hash.as_str());
    assert_eq!(
        events[3]["payload"]["secret_sha256_prefix"],
        &alice_hash[..16],
        "{record:#}"
    );
    let shown = server.cli_ok(&server.admin_token, &["admin", "record"]);
    assert!(
        shown.contains("added human principal alice in groups admins"),
        "{shown}"
    );

    // The record is proven offline like a case.
    let proof = server.root.path().join("admin.proof");
    server.cli_ok(
        &server.admin_token,
        &["log", "prove", &record_id, "--out", proof.to_str().unwrap()],
    );
    let output = common::command()
        .args(["log", "verify-proof", "--json", "--key", &verifier_key])
        .arg(&proof)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let verified: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verified["ok"], true, "{verified:#}");
    assert_eq!(verified["proof"]["state"], "administration_record");
    assert_eq!(verified["proof"]["events"], 6);
}

/// Runs SQL on a stopped server's database, triggers and all.
/// The last admin is never taken out of `admins`, through the CLI or the
/// API, whoever asks: refused as `admin.last-admin` (409), nothing recorded,
/// and the admin can still administer afterwards.
#[test]
fn the_last_admin_cannot_be_taken_out_of_admins() {
    let mut server = Server::start();
    let record_length = |server: &Server| admin_record(server)["events"].as_array().unwrap().len();
    let before = record_length(&server);
    let log_before = server.log_size();
    for args in [
        &["principal", "set-groups", "admin"][..],
        &["principal", "set-groups", "admin", "--group", "sre"][..],
    ] {
        let output = server.cli(Some(&server.admin_token), args);
        common::assert_refused(&output, "admin.last-admin");
        assert!(
            common::stdout(&output).trim().is_empty(),
            "{}",
            common::stdout(&output)
        );
        assert!(
            common::stderr(&output).contains("put another principal in `admins` first"),
            "{}",
            common::stderr(&output)
        );
    }
    // Over the API: 409, problem+json with the rule.
    let response = server.http(
        "PUT",
        "/v1/principals/admin/groups",
        Some(&server.admin_token),
        &[],
        Body::Json(json!({ "groups": ["sre"] })),
    );
    assert_eq!(response.status, 409, "{}", response.text);
    assert_eq!(
        response.json["rule"], "admin.last-admin",
        "{}",
        response.text
    );
    assert_eq!(record_length(&server), before, "a refusal records nothing");
    assert_eq!(server.log_size(), log_before);
    // Still an admin: it administers.
    let principals = server.cli_json(&server.admin_token, &["principal", "list"]);
    let admin = principals
        .as_array()
        .or_else(|| principals["principals"].as_array())
        .unwrap()
        .iter()
        .find(|principal| principal["id"] == "admin")
        .unwrap()
        .clone();
    assert_eq!(admin["groups"], json!(["admins"]), "{principals:#}");

    // With a second admin, the first may leave `admins`; then the second is
    // the last, and may not.
    let alice = server.principal_with("alice", &["--group", "admins"]);
    server.cli_ok(
        &alice,
        &["principal", "set-groups", "admin", "--group", "sre"],
    );
    let output = server.cli(Some(&alice), &["principal", "set-groups", "alice"]);
    common::assert_refused(&output, "admin.last-admin");
    server.cli_ok(&alice, &["principal", "add", "bob"]);

    // The trail is verify-clean.
    server.stop();
    common::assert_verify_ok(&server.data);
}

fn tamper(data: &std::path::Path, sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::ConnectOptions;
        let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(data.join("custody.db"))
            .connect()
            .await
            .expect("open custody.db");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut connection)
            .await
            .expect("tamper");
    });
}

fn finding_codes(report: &Value) -> Vec<String> {
    let mut codes: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| finding["code"].as_str().unwrap().to_string())
        .collect();
    codes.sort();
    codes
}

#[test]
fn verify_names_principals_tokens_and_grants_changed_behind_the_stores_back() {
    let mut server = Server::start();
    server.principal("alice");
    server.principal_with("vera", &["--kind", "vendor", "--org", "msp-co"]);
    let grant_id = grant(&server);
    server.cli_ok(&server.admin_token, &["delegation", "revoke", &grant_id]);
    server.stop();
    common::assert_verify_ok(&server.data);

    // A principal made an admin by a direct insert, with a token of its own.
    let copy = tempfile::tempdir().unwrap();
    common::copy_dir(&server.data, copy.path());
    tamper(
        copy.path(),
        "INSERT INTO principals (principal_id, display_name, kind, groups_json, org, created_at, created_by)
         VALUES ('mallory', 'mallory', 'human', '[\"admins\"]', NULL, '2026-01-01T00:00:00.000000Z', 'admin');
         INSERT INTO tokens (token_id, principal_id, secret_sha256, created_at)
         VALUES ('tok_mallory', 'mallory', X'00', '2026-01-01T00:00:00.000000Z')",
    );
    let (output, report) = common::verify_dir(copy.path());
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(
        finding_codes(&report),
        ["admin.principal-unrecorded", "admin.token-unrecorded"],
        "{report:#}"
    );

    // An existing principal's groups widened, and the revoked grant made whole.
    let copy = tempfile::tempdir().unwrap();
    common::copy_dir(&server.data, copy.path());
    tamper(
        copy.path(),
        &format!(
            "UPDATE principals SET groups_json = '[\"admins\"]' WHERE principal_id = 'alice';
             UPDATE delegations SET grant_json = json_set(grant_json, '$.revoked_at', json('null')) WHERE grant_id = '{grant_id}'"
        ),
    );
    let (output, report) = common::verify_dir(copy.path());
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(
        finding_codes(&report),
        ["admin.grant-mismatch", "admin.principal-mismatch"],
        "{report:#}"
    );

    // The grant's vendor column moved to another organisation, its JSON
    // left alone: the server finds a vendor's grants by that column, so the
    // grant it would apply differs from the record (the tamper campaign,
    // docs/tamper.md).
    let copy = tempfile::tempdir().unwrap();
    common::copy_dir(&server.data, copy.path());
    tamper(
        copy.path(),
        &format!("UPDATE delegations SET vendor_org = 'evil-co' WHERE grant_id = '{grant_id}'"),
    );
    let (output, report) = common::verify_dir(copy.path());
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(
        finding_codes(&report),
        ["admin.grant-mismatch"],
        "{report:#}"
    );

    // The grant's JSON and a principal's kind edited into text that does not
    // parse: findings (the store cannot use either row), not a failed check.
    let copy = tempfile::tempdir().unwrap();
    common::copy_dir(&server.data, copy.path());
    tamper(
        copy.path(),
        &format!(
            "UPDATE delegations SET grant_json = '{{\"gsant_id\": 1}}' WHERE grant_id = '{grant_id}';
             UPDATE principals SET kind = 'humam' WHERE principal_id = 'alice'"
        ),
    );
    let (output, report) = common::verify_dir(copy.path());
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(
        finding_codes(&report),
        ["admin.grant-mismatch", "admin.principal-mismatch"],
        "{report:#}"
    );
}

#[test]
fn promoting_and_demoting_an_admin_is_recorded_and_takes_effect_at_once() {
    let mut server = Server::start();
    let bob = server.principal("bob");
    let output = server.cli(Some(&bob), &["principal", "add", "carol"]);
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    server.cli_ok(
        &server.admin_token,
        &["principal", "set-groups", "bob", "--group", "admins"],
    );
    server.cli_ok(&bob, &["principal", "add", "carol"]);
    server.cli_ok(&server.admin_token, &["principal", "set-groups", "bob"]);
    let output = server.cli(Some(&bob), &["principal", "add", "dave"]);
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));

    let record = admin_record(&server);
    let events = record["events"].as_array().unwrap();
    let tail: Vec<Value> = events[events.len() - 3..]
        .iter()
        .map(|event| {
            json!([
                event["kind"],
                event["actor"]["principal"],
                event["payload"]["principal"],
                event["payload"]["groups"]
            ])
        })
        .collect();
    assert_eq!(
        tail,
        vec![
            json!(["principal_groups_changed", "admin", "bob", ["admins"]]),
            json!(["principal_added", "bob", "carol", []]),
            json!(["principal_groups_changed", "admin", "bob", []]),
        ],
        "{record:#}"
    );
    server.stop();
    let report = common::assert_verify_ok(&server.data);
    assert_eq!(report["checked"]["admin_events"], 7, "{report:#}");
}
