//! The GitHub source: webhooks (signature, each event read, what is
//! skipped and refused), audit log entries, and the poll's requests and
//! pages. Payloads are written here from GitHub's documented shapes.

use serde_json::{json, Value};

use custody_core::model::{ChangeKind, PrincipalKind, SubjectKind};
use custody_core::Timestamp;

use super::pull::next_cursor;
use super::*;
use crate::observe::{raw_hash, Source};
use crate::{Headers, Request};

const SECRET: &str = "github webhook secret, unit";

fn config(extra: &str) -> GithubConfig {
    toml::from_str(&format!(
        "name = \"github\"\nsecret = \"{SECRET}\"\n{extra}"
    ))
    .unwrap()
}

fn source() -> GithubSource {
    config("organization = \"acme\"").source().unwrap()
}

fn received() -> Timestamp {
    Timestamp::parse("2026-03-02T10:00:00Z").unwrap()
}

fn sign(body: &[u8]) -> String {
    format!(
        "sha256={}",
        custody_core::hex::encode(&crate::signature::hmac_sha256(SECRET.as_bytes(), &[body]))
    )
}

fn headers(event: &str, delivery: &str, body: &[u8]) -> Headers {
    Headers::new([
        ("X-GitHub-Event", event.to_string()),
        ("X-GitHub-Delivery", delivery.to_string()),
        ("X-Hub-Signature-256", sign(body)),
        ("Content-Type", "application/json".to_string()),
    ])
}

fn push(event: &str, payload: &Value) -> Result<crate::observe::Parsed, crate::Refusal> {
    let body = serde_json::to_vec(payload).unwrap();
    let headers = headers(event, "0b6f3a40-0c4e-11f0-8e2a-3c1d7a9b2f10", &body);
    let request = Request {
        endpoint: "webhook",
        headers: &headers,
        body: &body,
        tls: true,
    };
    let source = source();
    source.authenticate(&request)?;
    source.parse_push_at(&request, received())
}

fn one(event: &str, payload: &Value) -> custody_core::observation::ObservedChange {
    let mut parsed = push(event, payload).unwrap();
    assert_eq!(parsed.skipped, 0, "{event}: {payload}");
    assert_eq!(parsed.observations.len(), 1);
    parsed.observations.remove(0)
}

fn user(login: &str) -> Value {
    json!({"login": login, "id": 583231, "node_id": "MDQ6VXNlcjU4MzIzMQ==", "type": "User", "site_admin": false})
}

fn organization() -> Value {
    json!({"login": "acme", "id": 9919, "node_id": "MDEyOk9yZ2FuaXphdGlvbjk5MTk="})
}

fn repository() -> Value {
    json!({"id": 1296269, "name": "api", "full_name": "acme/api", "private": true, "owner": organization()})
}

#[test]
fn the_signature_is_hmac_sha256_of_the_body_in_constant_time() {
    let source = source();
    let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let good = headers("ping", "0b6f3a40", body);
    let request = |headers: &'_ Headers, body: &'_ [u8]| {
        source.authenticate(&Request {
            endpoint: "webhook",
            headers,
            body,
            tls: true,
        })
    };
    request(&good, body).unwrap();
    assert!(request(&good, b"{\"zen\":\"tampered\"}").is_err());
    let missing = Headers::new([("X-GitHub-Event", "ping")]);
    assert!(request(&missing, body)
        .unwrap_err()
        .to_string()
        .contains("missing"));
    let sha1 = Headers::new([("X-Hub-Signature-256", format!("sha1={}", "ab".repeat(20)))]);
    assert!(request(&sha1, body).is_err());
    let twice = Headers::new([
        ("X-Hub-Signature-256", sign(body)),
        ("X-Hub-Signature-256", sign(body)),
    ]);
    assert!(request(&twice, body)
        .unwrap_err()
        .to_string()
        .contains("more than once"));
    // Without a secret, no webhook is taken.
    let unsigned = GithubConfig {
        secret: None,
        ..config("")
    }
    .source()
    .unwrap();
    assert!(unsigned
        .authenticate(&Request {
            endpoint: "webhook",
            headers: &good,
            body,
            tls: true
        })
        .is_err());
}

#[test]
fn ping_records_nothing_and_unread_events_are_skipped() {
    let parsed = push(
        "ping",
        &json!({"zen": "Design for failure.", "hook_id": 42}),
    )
    .unwrap();
    assert_eq!(parsed, crate::observe::Parsed::default());
    let parsed = push(
        "issues",
        &json!({"action": "opened", "sender": user("alice"), "organization": organization()}),
    )
    .unwrap();
    assert_eq!((parsed.observations.len(), parsed.skipped), (0, 1));
    // Another organization's delivery is not this source's.
    let parsed = push(
        "membership",
        &json!({"action": "added", "scope": "team", "member": user("bob"), "sender": user("alice"),
                "team": {"slug": "platform", "id": 7}, "organization": {"login": "other"}}),
    )
    .unwrap();
    assert_eq!((parsed.observations.len(), parsed.skipped), (0, 1));
}

#[test]
fn a_team_membership_is_member_of_the_team() {
    let payload = json!({
        "action": "added", "scope": "team", "member": user("bob"), "sender": user("alice"),
        "team": {"name": "Platform", "slug": "platform", "id": 7, "permission": "pull"},
        "organization": organization(),
    });
    let observed = one("membership", &payload);
    assert_eq!(observed.external_id, "0b6f3a40-0c4e-11f0-8e2a-3c1d7a9b2f10");
    assert_eq!(observed.action, "membership.added");
    assert_eq!(observed.occurred_at, received());
    assert_eq!(observed.actor.id, "alice");
    assert_eq!(observed.actor.kind, None);
    assert_eq!(
        observed.change.to_string(),
        one_line("grant", "user:bob", "member", "team:acme/platform")
    );
    assert_eq!(
        observed.raw_sha256,
        raw_hash(&serde_json::to_vec(&payload).unwrap())
    );
    let mut removed = payload.clone();
    removed["action"] = json!("removed");
    assert_eq!(
        one("membership", &removed).change.kind(),
        ChangeKind::Revoke
    );
}

/// How a change prints: `kind subject entitlement on resource`, as
/// `Change`'s Display does.
fn one_line(kind: &str, subject: &str, entitlement: &str, resource: &str) -> String {
    let (subject_kind, id) = subject.split_once(':').unwrap();
    custody_core::model::Change::new(
        custody_core::model::Subject {
            kind: subject_kind.parse().unwrap(),
            id: id.to_string(),
        },
        kind.parse().unwrap(),
        entitlement.to_string(),
        Some(resource.to_string()),
        None,
    )
    .unwrap()
    .to_string()
}

#[test]
fn organization_membership_is_its_role_on_the_organization() {
    let added = json!({
        "action": "member_added", "sender": user("alice"), "organization": organization(),
        "membership": {"user": user("carol"), "role": "admin", "state": "active"},
    });
    let observed = one("organization", &added);
    assert_eq!(
        observed.change.to_string(),
        one_line("grant", "user:carol", "admin", "org:acme")
    );
    let removed = json!({
        "action": "member_removed", "sender": user("alice"), "organization": organization(),
        "membership": {"user": user("carol"), "role": "member", "state": "active"},
    });
    assert_eq!(
        one("organization", &removed).change.to_string(),
        one_line("revoke", "user:carol", "member", "org:acme")
    );
    let invited = json!({
        "action": "member_invited", "sender": user("alice"), "organization": organization(),
        "invitation": {"id": 1, "login": null, "email": "dana@example.com", "role": "direct_member"},
        "user": null,
    });
    assert_eq!(
        one("organization", &invited).change.to_string(),
        one_line("grant", "user:dana@example.com", "member", "org:acme")
    );
    let renamed =
        json!({"action": "renamed", "sender": user("alice"), "organization": organization()});
    assert_eq!(push("organization", &renamed).unwrap().skipped, 1);
}

#[test]
fn a_collaborator_gets_their_repository_role() {
    let added = json!({
        "action": "added", "member": user("erin"), "sender": user("alice"),
        "changes": {"permission": {"to": "write"}}, "repository": repository(), "organization": organization(),
    });
    assert_eq!(
        one("member", &added).change.to_string(),
        one_line("grant", "user:erin", "write", "repo:acme/api")
    );
    let edited = json!({
        "action": "edited", "member": user("erin"), "sender": user("alice"),
        "changes": {"old_permission": {"from": "write"}, "permission": {"to": "admin"}},
        "repository": repository(), "organization": organization(),
    });
    assert_eq!(
        one("member", &edited).change.to_string(),
        one_line("grant", "user:erin", "admin", "repo:acme/api")
    );
    let removed = json!({
        "action": "removed", "member": user("erin"), "sender": user("alice"),
        "repository": repository(), "organization": organization(),
    });
    assert_eq!(
        one("member", &removed).change.to_string(),
        one_line("revoke", "user:erin", "collaborator", "repo:acme/api")
    );
}

#[test]
fn a_team_on_a_repository_gets_its_highest_role() {
    let mut with_permissions = repository();
    with_permissions["permissions"] =
        json!({"admin": false, "maintain": true, "push": true, "triage": true, "pull": true});
    let added = json!({
        "action": "added_to_repository", "sender": user("alice"), "organization": organization(),
        "team": {"slug": "platform", "id": 7}, "repository": with_permissions,
    });
    assert_eq!(
        one("team", &added).change.to_string(),
        one_line("grant", "group:acme/platform", "maintain", "repo:acme/api")
    );
    // An edit of the team itself changes no access.
    let renamed = json!({
        "action": "edited", "sender": user("alice"), "organization": organization(),
        "team": {"slug": "platform", "id": 7}, "changes": {"name": {"from": "Plat"}},
    });
    assert_eq!(push("team", &renamed).unwrap().skipped, 1);
}

fn deploy_key(action: &str, read_only: bool) -> Value {
    json!({
        "action": action,
        "key": {"id": 8812, "key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOm2", "title": "ci AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b",
                "verified": true, "created_at": "2026-03-02T09:59:58Z", "read_only": read_only,
                "added_by": "alice", "last_used": null, "enabled": true},
        "repository": repository(), "organization": organization(), "sender": user("alice"),
    })
}

#[test]
fn a_deploy_key_is_an_api_key_named_by_its_repository_and_title() {
    let observed = one("deploy_key", &deploy_key("created", false));
    assert_eq!(observed.external_id, "deploy_key.created:1296269:8812");
    assert_eq!(
        observed.occurred_at,
        Timestamp::parse("2026-03-02T09:59:58Z").unwrap()
    );
    assert_eq!(observed.change.subject().kind, SubjectKind::ApiKey);
    assert_eq!(
        observed.change.to_string(),
        one_line(
            "create",
            "api_key:acme/api/ci",
            "deploy-key:write",
            "repo:acme/api"
        )
    );
    // The title carries the case ID.
    assert_eq!(
        observed.case_hint.map(|case| case.to_string()).as_deref(),
        Some("AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b")
    );
    let deleted = one("deploy_key", &deploy_key("deleted", true));
    assert_eq!(deleted.external_id, "deploy_key.deleted:1296269:8812");
    assert_eq!(deleted.change.kind(), ChangeKind::Delete);
    assert_eq!(deleted.change.entitlement(), "deploy-key:read");
    assert_eq!(deleted.occurred_at, received());
}

#[test]
fn a_case_id_in_a_title_is_not_part_of_the_name() {
    let id = "AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b";
    assert_eq!(without_case_id(&format!("ci {id}")), "ci");
    assert_eq!(without_case_id(&format!("ci ({id}) deploy")), "ci deploy");
    assert_eq!(without_case_id(&format!("[{id}] ci")), "ci");
    assert_eq!(without_case_id(id), id);
    assert_eq!(without_case_id("ci"), "ci");
}

#[test]
fn a_token_request_approved_grants_its_permissions() {
    let payload = json!({
        "action": "approved", "organization": organization(), "sender": user("alice"),
        "personal_access_token_request": {
            "id": 451, "owner": user("bob"), "token_id": 9021, "token_name": "release bot",
            "permissions_added": {"repository": {"contents": "write"}},
            "permissions_result": {"organization": {"members": "read"}, "repository": {"contents": "write", "metadata": "read"}},
            "repository_selection": "subset", "repository_count": 1,
            "created_at": "2026-03-02T09:00:00Z", "token_expired": false,
        },
    });
    let observed = one("personal_access_token_request", &payload);
    assert_eq!(
        observed.external_id,
        "personal_access_token_request.approved:451"
    );
    assert_eq!(
        observed.change.to_string(),
        one_line(
            "grant",
            "token:bob/pat-9021",
            "contents:write,members:read,metadata:read",
            "org:acme"
        )
    );
    let mut denied = payload.clone();
    denied["action"] = json!("denied");
    assert_eq!(
        push("personal_access_token_request", &denied)
            .unwrap()
            .skipped,
        1
    );
}

#[test]
fn a_bot_sender_is_automation() {
    let mut payload = deploy_key("created", true);
    payload["sender"] = json!({"login": "release-app[bot]", "id": 1, "type": "Bot"});
    let observed = one("deploy_key", &payload);
    assert_eq!(observed.actor.id, "release-app[bot]");
    assert_eq!(observed.actor.kind, Some(PrincipalKind::Automation));
}

#[test]
fn malformed_deliveries_are_refused_naming_what_is_wrong() {
    // No delivery header; a header sent twice; a delivery that is not a GUID.
    let body = serde_json::to_vec(&deploy_key("created", true)).unwrap();
    let source = source();
    let parse = |headers: Headers| {
        source.parse_push_at(
            &Request {
                endpoint: "webhook",
                headers: &headers,
                body: &body,
                tls: true,
            },
            received(),
        )
    };
    assert!(parse(Headers::new([("X-GitHub-Event", "deploy_key")]))
        .unwrap_err()
        .to_string()
        .contains("X-GitHub-Delivery"));
    assert!(parse(Headers::new([
        ("X-GitHub-Event", "deploy_key"),
        ("X-GitHub-Event", "ping"),
        ("X-GitHub-Delivery", "ab"),
    ]))
    .is_err());
    assert!(parse(Headers::new([
        ("X-GitHub-Event", "deploy_key"),
        ("X-GitHub-Delivery", "../../x"),
    ]))
    .is_err());
    // A field the event needs is missing.
    let mut payload = deploy_key("created", true);
    payload["key"].as_object_mut().unwrap().remove("id");
    assert!(push("deploy_key", &payload)
        .unwrap_err()
        .to_string()
        .contains("`key.id` is missing"));
    // An identifier outside the safe set is refused, never mangled.
    let mut payload = deploy_key("created", true);
    payload["key"]["title"] = json!("ci\u{202e}yek");
    let refusal = push("deploy_key", &payload).unwrap_err();
    assert!(matches!(refusal, crate::Refusal::Malformed(_)), "{refusal}");
    assert!(
        refusal
            .to_string()
            .contains("deploy_key.created:1296269:8812"),
        "{refusal}"
    );
    // Not JSON.
    let body = b"not json".to_vec();
    let member_headers = headers("member", "ab12", &body);
    assert!(source
        .parse_push_at(
            &Request {
                endpoint: "webhook",
                headers: &member_headers,
                body: &body,
                tls: true
            },
            received()
        )
        .is_err());
    // A membership with no time of receipt (parse_push alone) is refused.
    let payload = json!({
        "action": "added", "scope": "team", "member": user("bob"), "sender": user("alice"),
        "team": {"slug": "platform"}, "organization": organization(),
    });
    let body = serde_json::to_vec(&payload).unwrap();
    let headers = headers("membership", "ab12", &body);
    assert!(source
        .parse_push(&Request {
            endpoint: "webhook",
            headers: &headers,
            body: &body,
            tls: true
        })
        .unwrap_err()
        .to_string()
        .contains("no time"));
}

fn entry(action: &str, fields: Value) -> Value {
    let mut entry = json!({
        "@timestamp": 1_772_445_600_000_i64, "created_at": 1_772_445_600_000_i64,
        "_document_id": format!("doc-{}", action.replace('.', "-")),
        "action": action, "actor": "alice", "actor_id": 583231, "org": "acme", "org_id": 9919,
    });
    entry
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    entry
}

#[test]
fn audit_log_entries_map_to_changes() {
    let at = Timestamp::parse("2026-03-02T10:00:00Z").unwrap();
    let cases = [
        (
            entry(
                "team.add_member",
                json!({"team": "acme/platform", "user": "bob"}),
            ),
            one_line("grant", "user:bob", "member", "team:acme/platform"),
        ),
        (
            entry(
                "team.remove_member",
                json!({"team": "platform", "user": "bob"}),
            ),
            one_line("revoke", "user:bob", "member", "team:acme/platform"),
        ),
        (
            entry(
                "org.add_member",
                json!({"user": "carol", "permission": "read"}),
            ),
            one_line("grant", "user:carol", "member", "org:acme"),
        ),
        (
            entry(
                "org.update_member",
                json!({"user": "carol", "permission": "admin"}),
            ),
            one_line("grant", "user:carol", "admin", "org:acme"),
        ),
        (
            entry("org.remove_member", json!({"user": "carol"})),
            one_line("revoke", "user:carol", "member", "org:acme"),
        ),
        (
            entry("org.invite_member", json!({"user": "dana"})),
            one_line("grant", "user:dana", "member", "org:acme"),
        ),
        (
            entry(
                "repo.add_member",
                json!({"repo": "acme/api", "user": "erin", "permission": "push"}),
            ),
            one_line("grant", "user:erin", "write", "repo:acme/api"),
        ),
        (
            entry(
                "repo.update_member",
                json!({"repo": "acme/api", "user": "erin", "old_permission": "write", "permission": "admin"}),
            ),
            one_line("grant", "user:erin", "admin", "repo:acme/api"),
        ),
        (
            entry(
                "repo.remove_member",
                json!({"repo": "acme/api", "user": "erin", "old_permission": "admin"}),
            ),
            one_line("revoke", "user:erin", "admin", "repo:acme/api"),
        ),
        (
            entry(
                "team.add_repository",
                json!({"team": "acme/platform", "repo": "acme/api", "permission": "pull"}),
            ),
            one_line("grant", "group:acme/platform", "read", "repo:acme/api"),
        ),
        (
            entry(
                "team.remove_repository",
                json!({"team": "acme/platform", "repo": "acme/api"}),
            ),
            one_line(
                "revoke",
                "group:acme/platform",
                "collaborator",
                "repo:acme/api",
            ),
        ),
        (
            entry(
                "public_key.create",
                json!({"repo": "acme/api", "title": "ci", "read_only": "false", "fingerprint": "SHA256:x"}),
            ),
            one_line(
                "create",
                "api_key:acme/api/ci",
                "deploy-key:write",
                "repo:acme/api",
            ),
        ),
        (
            entry(
                "public_key.delete",
                json!({"repo": "acme/api", "title": "ci", "read_only": true}),
            ),
            one_line(
                "delete",
                "api_key:acme/api/ci",
                "deploy-key:read",
                "repo:acme/api",
            ),
        ),
        (
            entry(
                "personal_access_token.access_granted",
                json!({"user": "bob", "token_id": 9021, "permissions": {"contents": "read"}}),
            ),
            one_line("grant", "token:bob/pat-9021", "contents:read", "org:acme"),
        ),
        (
            entry(
                "personal_access_token.access_revoked",
                json!({"user": "bob", "token_id": 9021}),
            ),
            one_line("revoke", "token:bob/pat-9021", "access", "org:acme"),
        ),
    ];
    for (entry, expected) in cases {
        let bytes = serde_json::to_vec(&vec![&entry]).unwrap();
        let parsed = audit_log::parse_file(&bytes, Some("acme")).unwrap();
        assert_eq!(parsed.skipped, 0, "{entry}");
        let observed = &parsed.observations[0];
        assert_eq!(observed.change.to_string(), expected, "{entry}");
        assert_eq!(
            observed.external_id,
            entry["_document_id"].as_str().unwrap()
        );
        assert_eq!(observed.action, entry["action"].as_str().unwrap());
        assert_eq!(observed.occurred_at, at);
        assert_eq!(observed.actor.id, "alice");
        assert_eq!(
            observed.raw_sha256,
            raw_hash(&serde_json::to_vec(&entry).unwrap())
        );
    }
}

#[test]
fn audit_log_files_are_arrays_or_json_lines_and_skip_what_they_do_not_read() {
    let entries = [
        entry(
            "team.add_member",
            json!({"team": "acme/platform", "user": "bob"}),
        ),
        entry("repo.create", json!({"repo": "acme/new"})),
        entry("public_key.create", json!({"title": "laptop"})),
        entry(
            "team.add_member",
            json!({"team": "other/x", "user": "bob", "org": "other"}),
        ),
        json!({"no": "action"}),
    ];
    let array = serde_json::to_vec(&entries).unwrap();
    let lines: Vec<u8> = entries
        .iter()
        .flat_map(|entry| {
            let mut line = serde_json::to_vec(entry).unwrap();
            line.push(b'\n');
            line
        })
        .collect();
    for bytes in [array, lines] {
        let parsed = audit_log::parse_file(&bytes, Some("acme")).unwrap();
        assert_eq!((parsed.observations.len(), parsed.skipped), (1, 4));
    }
    // Bad entries refuse the file, naming the entry.
    let missing_id =
        serde_json::to_vec(&[json!({"action": "team.add_member", "team": "a/b", "user": "bob"})])
            .unwrap();
    assert!(audit_log::parse_file(&missing_id, None)
        .unwrap_err()
        .to_string()
        .contains("_document_id"));
    let mut no_time = entry(
        "team.add_member",
        json!({"team": "acme/platform", "user": "bob"}),
    );
    no_time.as_object_mut().unwrap().remove("@timestamp");
    no_time["created_at"] = json!("yesterday");
    let refusal =
        audit_log::parse_file(&serde_json::to_vec(&[no_time]).unwrap(), None).unwrap_err();
    assert!(
        refusal.to_string().contains("doc-team-add_member"),
        "{refusal}"
    );
    assert!(audit_log::parse_file(b"{\"a\":", None).is_err());
    assert!(source().parse_batch(b"[]").unwrap() == crate::observe::Parsed::default());
}

fn pulling(extra: &str) -> GithubSource {
    config(&format!(
        "organization = \"acme\"\napi_token = \"ghp_unit\"\napi_url = \"http://127.0.0.1:9/api/\"\n{extra}"
    ))
    .source()
    .unwrap()
}

#[test]
fn the_first_poll_starts_the_lookback_ago_and_later_ones_after_the_cursor() {
    let source = pulling("phrase = \"action:team\"\nlookback_seconds = 600");
    let pull = source.pull().unwrap();
    let now = Timestamp::parse("2026-03-02T10:00:00.5Z").unwrap();
    let first = pull.request(None, now).unwrap();
    assert_eq!(
        first.url,
        "http://127.0.0.1:9/api/orgs/acme/audit-log?per_page=100&order=asc&phrase=action%3Ateam%20created%3A%3E%3D2026-03-02T09%3A50%3A00Z"
    );
    assert!(first
        .headers
        .contains(&("Authorization".into(), "Bearer ghp_unit".into())));
    assert!(first
        .headers
        .contains(&("X-GitHub-Api-Version".into(), "2022-11-28".into())));
    let later = pull.request(Some("MS42OTk+/Q=="), now).unwrap();
    assert_eq!(
        later.url,
        "http://127.0.0.1:9/api/orgs/acme/audit-log?per_page=100&order=asc&after=MS42OTk%2B%2FQ%3D%3D&phrase=action%3Ateam"
    );
    assert!(pull.request(Some("has space"), now).is_err());
    assert_eq!(pull.interval_seconds(), 60);
}

#[test]
fn a_page_moves_the_cursor_only_to_the_next_link() {
    let source = pulling("");
    let pull = source.pull().unwrap();
    let body = serde_json::to_vec(&[entry(
        "team.add_member",
        json!({"team": "acme/platform", "user": "bob"}),
    )])
    .unwrap();
    let link = Headers::new([(
        "Link",
        "<https://api.github.com/organizations/9919/audit-log?per_page=100&order=asc&after=MS42OTk%2B&before=>; rel=\"next\"",
    )]);
    let page = pull.page(None, 200, &link, &body).unwrap();
    assert_eq!(page.parsed.observations.len(), 1);
    assert_eq!(page.cursor.as_deref(), Some("MS42OTk+"));
    assert!(page.more);
    // No next link: the cursor stays, and the page is read again later.
    let page = pull
        .page(Some("MS42OTk+"), 200, &Headers::default(), b"[]")
        .unwrap();
    assert_eq!(page.cursor, None);
    assert!(!page.more);
    // A next link to the same cursor is no progress.
    let page = pull.page(Some("MS42OTk+"), 200, &link, &body).unwrap();
    assert_eq!((page.cursor, page.more), (None, false));
    // An error answer is a refusal that says what to check.
    assert!(pull
        .page(None, 403, &Headers::default(), b"{\"message\":\"no\"}")
        .unwrap_err()
        .to_string()
        .contains("read:audit_log"));
    assert!(pull.page(None, 200, &Headers::default(), b"{}").is_err());
}

#[test]
fn link_headers_are_read_strictly() {
    assert_eq!(
        next_cursor(
            "<https://x/a?after=abc>; rel=\"prev\", <https://x/a?page=2&after=def>; rel=\"next\""
        )
        .unwrap(),
        Some("def".to_string())
    );
    assert_eq!(
        next_cursor("<https://x/a?after=abc>; rel=\"last\"").unwrap(),
        None
    );
    assert_eq!(
        next_cursor("<https://x/a?after=>; rel=\"next\"").unwrap(),
        None
    );
    assert!(next_cursor("https://x/a?after=abc; rel=\"next\"").is_err());
    assert!(next_cursor("<https://x/a?after=%zz>; rel=\"next\"").is_err());
    assert!(next_cursor("<https://x/a?after=a%20b>; rel=\"next\"").is_err());
}

#[test]
fn settings_are_checked() {
    for (extra, problem) in [
        ("api_token = \"t\"", "`organization` is not"),
        ("organization = \"-acme\"", "not a GitHub login"),
        (
            "organization = \"acme\"\napi_token = \"\"",
            "`api_token` is empty",
        ),
        (
            "organization = \"acme\"\napi_token = \"t\"\napi_url = \"ftp://x\"",
            "not an http(s) URL",
        ),
        (
            "organization = \"acme\"\napi_token = \"t\"\ninterval_seconds = 0",
            "interval_seconds",
        ),
    ] {
        let error = config(extra).source().unwrap_err();
        assert!(error.contains(problem), "{extra}: {error}");
    }
    let error = toml::from_str::<GithubConfig>("name = \"g\"\nsecret = \"\"")
        .unwrap()
        .source()
        .unwrap_err();
    assert!(error.contains("`secret` is empty"), "{error}");
    assert!(toml::from_str::<GithubConfig>("name = \"g\"\nsecrte = \"x\"").is_err());
    assert!(source().pull().is_none());
    assert_eq!(source().kind(), "github");
}
