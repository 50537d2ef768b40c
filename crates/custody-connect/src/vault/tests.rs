//! The Vault source: each record kind read, what is skipped, what is
//! refused, and secrets kept as Vault's HMACs. Records are written here
//! from the audit device's documented shape.

use serde_json::{json, Value};

use custody_core::model::{ChangeKind, SubjectKind};
use custody_core::Timestamp;

use super::*;
use crate::observe::raw_hash;

fn hmac(seed: &str) -> String {
    format!(
        "{HMAC_PREFIX}{}",
        custody_core::hex::encode(&crate::signature::hmac_sha256(b"unit", &[seed.as_bytes()]))
    )
}

/// A response record of `operation` on `path` by alice's token.
fn response(id: &str, operation: &str, path: &str, data: Value, response: Value) -> Value {
    json!({
        "time": "2026-03-02T10:00:00.123456789Z",
        "type": "response",
        "auth": {
            "client_token": hmac("alice token"),
            "accessor": hmac("alice accessor"),
            "display_name": "userpass-alice",
            "policies": ["default", "vault-admin"],
            "token_policies": ["default", "vault-admin"],
            "metadata": {"username": "alice"},
            "entity_id": "7d2e3d4f-1c2b-4a5e-9f80-0a1b2c3d4e5f",
            "token_type": "service",
            "token_ttl": 2_764_800,
        },
        "request": {
            "id": id,
            "operation": operation,
            "mount_type": "approle",
            "client_token": hmac("alice token"),
            "client_token_accessor": hmac("alice accessor"),
            "namespace": {"id": "root"},
            "path": path,
            "data": data,
            "remote_address": "127.0.0.1",
        },
        "response": response,
        "error": "",
    })
}

fn read(record: &Value) -> Option<ObservedChange> {
    let raw = serde_json::to_vec(record).unwrap();
    let observed = super::record(&raw, record).unwrap();
    if let Some(observed) = &observed {
        assert_eq!(observed.raw_sha256, raw_hash(&raw));
        assert_eq!(
            observed.occurred_at,
            Timestamp::parse("2026-03-02T10:00:00.123456Z").unwrap()
        );
        assert_eq!(observed.actor.id, "7d2e3d4f-1c2b-4a5e-9f80-0a1b2c3d4e5f");
        assert_eq!(observed.actor.display.as_deref(), Some("userpass-alice"));
        assert_eq!(observed.actor.session, Some(hmac("alice accessor")));
    }
    observed
}

fn change(observed: &ObservedChange) -> (SubjectKind, &str, ChangeKind, &str, Option<&str>) {
    let change = &observed.change;
    (
        change.subject().kind,
        change.subject().id.as_str(),
        change.kind(),
        change.entitlement(),
        change.resource(),
    )
}

#[test]
fn an_approle_secret_id_is_an_api_key_of_the_role() {
    let record = response(
        "5d0a4c1e-2f3b-4c5d-8e9f-0a1b2c3d4e5f",
        "update",
        "auth/approle/role/ci/secret-id",
        json!({"metadata": hmac("{}")}),
        json!({"mount_type": "approle", "data": {
            "secret_id": hmac("the secret id"), "secret_id_accessor": hmac("the accessor"),
            "secret_id_num_uses": 0, "secret_id_ttl": 0}}),
    );
    let observed = read(&record).unwrap();
    assert_eq!(observed.external_id, "5d0a4c1e-2f3b-4c5d-8e9f-0a1b2c3d4e5f");
    assert_eq!(observed.action, "update auth/approle/role/ci/secret-id");
    assert_eq!(
        change(&observed),
        (
            SubjectKind::ApiKey,
            "approle/ci",
            ChangeKind::Create,
            "secret-id",
            Some("auth/approle")
        )
    );
    assert!(custody_core::observation::is_non_human_credential(
        &observed.change
    ));
    let destroyed = response(
        "6e1b",
        "update",
        "auth/approle/role/ci/secret-id-accessor/destroy",
        json!({"secret_id_accessor": hmac("the accessor")}),
        Value::Null,
    );
    assert_eq!(read(&destroyed).unwrap().change.kind(), ChangeKind::Delete);
}

#[test]
fn a_token_is_created_with_its_policies_and_named_by_its_display_name() {
    let record = response(
        "0c7e",
        "update",
        "auth/token/create",
        json!({"policies": hmac("deploy"), "display_name": hmac("ci")}),
        json!({"auth": {
            "client_token": hmac("new token"), "accessor": hmac("new accessor"),
            "display_name": "token-ci",
            "policies": ["deploy", "default"], "token_policies": ["deploy", "default"],
            "metadata": {"case": "AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b"},
            "entity_id": "", "token_type": "service"}}),
    );
    let observed = read(&record).unwrap();
    assert_eq!(
        change(&observed),
        (
            SubjectKind::Token,
            "token-ci",
            ChangeKind::Create,
            "default,deploy",
            Some("auth/token")
        )
    );
    assert_eq!(
        observed.case_hint.map(|case| case.to_string()).as_deref(),
        Some("AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b")
    );
    let with_role = response(
        "0c7f",
        "update",
        "auth/token/create/deployer",
        json!({}),
        json!({"auth": {"client_token": hmac("t2"), "accessor": hmac("a2"), "policies": ["deploy"]}}),
    );
    let with_role = read(&with_role).unwrap();
    assert_eq!(
        with_role.change.resource(),
        Some("auth/token/roles/deployer")
    );
    // Without a display name, the accessor names it, HMAC'd as Vault wrote it.
    assert_eq!(with_role.change.subject().id, hmac("a2"));
}

#[test]
fn policies_attached_are_the_set_the_write_gives() {
    let cases = [
        (
            "auth/userpass/users/bob",
            json!({"password": hmac("pw"), "policies": "db-read, default"}),
            (SubjectKind::User, "bob", "db-read,default", "auth/userpass"),
        ),
        (
            "auth/ldap/groups/dba",
            json!({"policies": ["db-admin"]}),
            (SubjectKind::Group, "dba", "db-admin", "auth/ldap"),
        ),
        (
            "auth/approle/role/ci",
            json!({"token_policies": ["deploy", "default"], "policies": ["ignored"]}),
            (
                SubjectKind::ServiceAccount,
                "approle/ci",
                "default,deploy",
                "auth/approle",
            ),
        ),
        (
            "identity/entity/name/bob",
            json!({"policies": ["kv-read"]}),
            (SubjectKind::User, "bob", "kv-read", "identity/entity"),
        ),
        (
            "identity/group/id/4f1e",
            json!({"policies": ["kv-read"]}),
            (SubjectKind::Group, "id/4f1e", "kv-read", "identity/group"),
        ),
    ];
    for (path, data, (kind, id, entitlement, resource)) in cases {
        let observed = read(&response("r1", "update", path, data, Value::Null)).unwrap();
        assert_eq!(
            change(&observed),
            (kind, id, ChangeKind::Grant, entitlement, Some(resource)),
            "{path}"
        );
    }
    // An HMAC'd list is recorded as Vault wrote it.
    let hidden = hmac("db-read,default");
    let observed = read(&response(
        "r2",
        "update",
        "auth/userpass/users/bob",
        json!({"policies": hidden}),
        Value::Null,
    ))
    .unwrap();
    assert_eq!(observed.change.entitlement(), hidden);
    // A write that sets no policy (a password change) changes no access.
    assert!(read(&response(
        "r3",
        "update",
        "auth/userpass/users/bob/password",
        json!({"password": hmac("pw")}),
        Value::Null
    ))
    .is_none());
    assert!(read(&response(
        "r4",
        "update",
        "auth/userpass/users/bob",
        json!({"password": hmac("pw")}),
        Value::Null
    ))
    .is_none());
    // Deleting the user takes its policies away.
    let deleted = read(&response(
        "r5",
        "delete",
        "auth/userpass/users/bob",
        Value::Null,
        Value::Null,
    ))
    .unwrap();
    assert_eq!(deleted.change.kind(), ChangeKind::Delete);
}

#[test]
fn an_acl_policy_written_is_modified_and_namespaces_prefix_the_resource() {
    let mut record = response(
        "p1",
        "update",
        "sys/policies/acl/db-admin",
        json!({"policy": hmac("path \"db/*\" {}")}),
        Value::Null,
    );
    let observed = read(&record).unwrap();
    assert_eq!(
        change(&observed),
        (
            SubjectKind::Role,
            "db-admin",
            ChangeKind::Modify,
            "acl-policy",
            Some("sys/policies/acl")
        )
    );
    record["request"]["namespace"] = json!({"id": "Zx1", "path": "team-a/"});
    record["request"]["operation"] = json!("delete");
    let observed = read(&record).unwrap();
    assert_eq!(observed.change.kind(), ChangeKind::Delete);
    assert_eq!(observed.change.resource(), Some("team-a/sys/policies/acl"));
}

#[test]
fn requests_errors_reads_and_logins_are_skipped() {
    let mut request = response(
        "s1",
        "update",
        "auth/approle/role/ci/secret-id",
        json!({}),
        Value::Null,
    );
    request["type"] = json!("request");
    let mut failed = response(
        "s2",
        "update",
        "auth/approle/role/ci/secret-id",
        json!({}),
        Value::Null,
    );
    failed["error"] = json!("permission denied");
    let read_op = response(
        "s3",
        "read",
        "sys/policies/acl/db-admin",
        json!({}),
        Value::Null,
    );
    let login = response(
        "s4",
        "update",
        "auth/userpass/login/alice",
        json!({"password": hmac("pw")}),
        Value::Null,
    );
    let secret = response(
        "s5",
        "update",
        "secret/data/app",
        json!({"data": hmac("x")}),
        Value::Null,
    );
    let lines: Vec<u8> = [request, failed, read_op, login, secret]
        .iter()
        .flat_map(|record| {
            let mut line = serde_json::to_vec(record).unwrap();
            line.push(b'\n');
            line
        })
        .collect();
    let parsed = VaultSource.parse_batch(&lines).unwrap();
    assert_eq!((parsed.observations.len(), parsed.skipped), (0, 5));
}

#[test]
fn a_secret_in_the_clear_refuses_the_record_without_repeating_it() {
    let record = response(
        "raw-1",
        "update",
        "auth/approle/role/ci/secret-id",
        json!({}),
        json!({"data": {"secret_id": "8d2a1c3e-clear-text-secret", "secret_id_accessor": "a1"}}),
    );
    let line = serde_json::to_vec(&record).unwrap();
    let refusal = VaultSource.parse_batch(&line).unwrap_err();
    let message = refusal.to_string();
    assert!(
        message.contains("raw-1") && message.contains("response.data.secret_id"),
        "{message}"
    );
    assert!(!message.contains("clear-text-secret"), "{message}");
    let mut token = response(
        "raw-2",
        "update",
        "auth/token/create",
        json!({}),
        json!({"auth": {"accessor": "acc", "client_token": "hvs.CAESIclear"}}),
    );
    assert!(VaultSource
        .parse_batch(&serde_json::to_vec(&token).unwrap())
        .is_err());
    token["response"]["auth"]["client_token"] = json!(hmac("t"));
    token["auth"]["client_token"] = json!("hvs.clear");
    assert!(VaultSource
        .parse_batch(&serde_json::to_vec(&token).unwrap())
        .is_err());
}

#[test]
fn malformed_records_are_refused() {
    let mut no_id = response(
        "x",
        "update",
        "auth/approle/role/ci/secret-id",
        json!({}),
        Value::Null,
    );
    no_id["request"].as_object_mut().unwrap().remove("id");
    assert!(VaultSource
        .parse_batch(&serde_json::to_vec(&no_id).unwrap())
        .unwrap_err()
        .to_string()
        .contains("request.id"));
    let mut bad_time = response(
        "t1",
        "update",
        "auth/approle/role/ci/secret-id",
        json!({}),
        Value::Null,
    );
    bad_time["time"] = json!("yesterday");
    assert!(VaultSource
        .parse_batch(&serde_json::to_vec(&bad_time).unwrap())
        .unwrap_err()
        .to_string()
        .contains("t1"));
    // A role name outside the identifier set is refused, not mangled.
    let odd = response(
        "o1",
        "update",
        "auth/approle/role/c\u{7}i/secret-id",
        json!({}),
        Value::Null,
    );
    assert!(matches!(
        VaultSource.parse_batch(&serde_json::to_vec(&odd).unwrap()),
        Err(Refusal::Malformed(_))
    ));
    assert!(VaultSource.parse_batch(b"{\"type\":").is_err());
    assert_eq!(VaultSource.parse_batch(b"\n\n").unwrap(), Parsed::default());
}

#[test]
fn http_is_refused_and_the_socket_listens_on_loopback_unless_trusted() {
    let headers = crate::Headers::default();
    let request = Request {
        endpoint: "webhook",
        headers: &headers,
        body: b"{}",
        tls: true,
    };
    assert!(VaultSource.authenticate(&request).is_err());
    assert!(VaultSource.parse_push(&request).is_err());
    let config =
        |extra: &str| toml::from_str::<VaultConfig>(&format!("name = \"vault\"\n{extra}")).unwrap();
    assert_eq!(config("").socket_address().unwrap(), None);
    assert_eq!(
        config("socket_listen = \"127.0.0.1:9201\"")
            .socket_address()
            .unwrap(),
        Some("127.0.0.1:9201".parse().unwrap())
    );
    assert!(config("socket_listen = \"0.0.0.0:9201\"")
        .socket_address()
        .unwrap_err()
        .contains("not a loopback address"));
    assert!(
        config("socket_listen = \"10.0.0.5:9201\"\nsocket_trusted_network = true")
            .socket_address()
            .is_ok()
    );
    assert!(config("socket_listen = \"vault:9201\"")
        .build_source()
        .is_err());
    assert!(config("max_line_bytes = 10").build_source().is_err());
    assert!(toml::from_str::<VaultConfig>("name = \"v\"\nsocket = \"x\"").is_err());
}
