//! The GitHub source end to end: a real `custody serve` with a
//! `[[connectors]]` entry of kind `github`, organization webhooks shaped as
//! GitHub documents them and signed as GitHub signs them
//! (`X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the body, computed
//! here by an implementation of our own), the audit log polled from a local
//! fake of the REST API ([`super::github_fake`]), and audit log files
//! ingested with `custody ingest`.

use serde_json::{json, Value};

use super::github_fake::{FakeGithub, TOKEN};
use super::observed::{
    all_cases, assert_only_findings, assert_unsanctioned_and_escalated, events_per_origin,
    findings, hex, hmac_sha256, ingest, ingest_ok, now_ms, observed, post, rfc3339_ms, sanctioned,
};
use crate::common::{wait_until, Server, TestStore, STORES};
use custody_core::{Clock, Code};

const SECRET: &str = "github webhook secret, e2e";

const CONNECTOR: &str = r#"[[connectors]]
name = "github"
kind = "github"
secret = "github webhook secret, e2e"
organization = "acme"
"#;

/// A policy whose rule for keys and tokens gives an unsanctioned one an
/// hour to be reviewed, and the timer scanning every second.
const POLICY: &str = r#"[workflow]
scan_interval_seconds = 1

[[policy.rules]]
name = "credentials"
subject_kinds = ["api_key", "token", "service_account"]
post_hoc_review_deadline = "1h"
"#;

fn sign(body: &[u8]) -> String {
    format!("sha256={}", hex(&hmac_sha256(SECRET.as_bytes(), body)))
}

/// Posts `payload` as the webhook delivery `delivery` of `event`, signed.
fn deliver(
    server: &Server,
    event: &str,
    delivery: &str,
    payload: &Value,
) -> crate::common::Response {
    let body = serde_json::to_vec(payload).unwrap();
    let signature = sign(&body);
    post(
        server,
        "github",
        &[
            ("X-GitHub-Event", event),
            ("X-GitHub-Delivery", delivery),
            ("X-Hub-Signature-256", &signature),
            ("User-Agent", "GitHub-Hookshot/5a3c1b2"),
        ],
        &body,
    )
}

fn user(login: &str) -> Value {
    json!({"login": login, "id": 583_231, "node_id": "MDQ6VXNlcjU4MzIzMQ==", "type": "User", "site_admin": false})
}

fn organization() -> Value {
    json!({"login": "acme", "id": 9919, "node_id": "MDEyOk9yZ2FuaXphdGlvbjk5MTk="})
}

fn repository() -> Value {
    json!({"id": 1_296_269, "name": "api", "full_name": "acme/api", "private": true, "owner": organization()})
}

fn team_membership(action: &str, member: &str) -> Value {
    json!({
        "action": action, "scope": "team", "member": user(member), "sender": user("alice"),
        "team": {"name": "Platform", "slug": "platform", "id": 7, "permission": "pull"},
        "organization": organization(),
    })
}

fn deploy_key(key_id: u64, title: &str, read_only: bool, created_at: &str) -> Value {
    json!({
        "action": "created",
        "key": {"id": key_id, "key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOm2", "title": title,
                "verified": true, "created_at": created_at, "read_only": read_only,
                "added_by": "alice", "last_used": null, "enabled": true},
        "repository": repository(), "organization": organization(), "sender": user("alice"),
    })
}

fn collaborator(action: &str, member: &str, permission: &str) -> Value {
    json!({
        "action": action, "member": user(member), "sender": user("alice"),
        "changes": {"permission": {"to": permission}},
        "repository": repository(), "organization": organization(),
    })
}

/// An audit log entry of `action` at `at_ms`.
fn entry(document_id: &str, action: &str, at_ms: i64, fields: Value) -> Value {
    let mut entry = json!({
        "@timestamp": at_ms, "created_at": at_ms, "_document_id": document_id,
        "action": action, "actor": "alice", "actor_id": 583_231, "org": "acme", "org_id": 9919,
        "actor_location": {"country_code": "NL"},
    });
    entry
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    entry
}

#[test]
fn webhooks_are_recorded_only_when_signed_with_the_secret_and_a_replay_storm_appends_nothing() {
    for store in STORES {
        let (server, _) = Server::start_on(store, None, Some(CONNECTOR));
        let before = server.log_size();

        // GitHub's ping when the webhook is created: 200, nothing recorded.
        let ping = deliver(
            &server,
            "ping",
            "d3a1f0e0-0c4e-11f0-8000-000000000001",
            &json!({"zen": "Practicality beats purity.", "hook_id": 42, "hook": {"type": "Organization"}}),
        );
        assert_eq!(ping.status, 200, "{}", ping.text);
        assert_eq!(server.log_size(), before);

        // Refused: no signature, a signature of another body, a signature
        // under another secret. Each changes nothing.
        let payload = team_membership("added", "bob");
        let body = serde_json::to_vec(&payload).unwrap();
        let other_secret = format!("sha256={}", hex(&hmac_sha256(b"not the secret", &body)));
        let other_body = sign(b"{}");
        for signature in [None, Some(other_body.as_str()), Some(other_secret.as_str())] {
            let mut headers = vec![
                ("X-GitHub-Event", "membership"),
                ("X-GitHub-Delivery", "d3a1f0e0-0c4e-11f0-8000-000000000002"),
            ];
            if let Some(signature) = signature {
                headers.push(("X-Hub-Signature-256", signature));
            }
            let refused = post(&server, "github", &headers, &body);
            assert_eq!(refused.status, 401, "{signature:?}: {}", refused.text);
            assert_eq!(server.log_size(), before, "a refused delivery appended");
        }

        // Signed: recorded, as an unsanctioned change.
        let delivery = "d3a1f0e0-0c4e-11f0-8000-000000000003";
        let accepted = deliver(&server, "membership", delivery, &payload);
        assert_eq!(accepted.status, 200, "{}", accepted.text);
        assert_eq!(accepted.json["unsanctioned"], 1, "{}", accepted.text);
        let case = accepted.json["cases"][0].as_str().unwrap().to_string();
        let event = observed(&server, &case).remove(0);
        assert_eq!(event["source"], "github");
        assert_eq!(event["external_id"], delivery);
        assert_eq!(event["actor"]["via"], "connector:github");
        assert_eq!(event["payload"]["action"], "membership.added");
        assert_eq!(event["payload"]["change"]["entitlement"], "member");
        assert_eq!(event["payload"]["change"]["resource"], "team:acme/platform");
        let after = server.log_size();

        // A replay storm: GitHub's redeliveries keep the delivery's GUID,
        // and a deploy key is named by its own ID whatever the GUID.
        for _ in 0..25 {
            let again = deliver(&server, "membership", delivery, &payload);
            assert_eq!(again.status, 200, "{}", again.text);
            assert_eq!(again.json["duplicates"], 1, "{}", again.text);
        }
        let key = deploy_key(8812, "ci", true, &rfc3339_ms(now_ms()));
        for round in 0..25 {
            let guid = format!("aa{round:02x}f0e0-0c4e-11f0-8000-000000000009");
            assert_eq!(deliver(&server, "deploy_key", &guid, &key).status, 200);
        }
        assert_eq!(
            server.log_size(),
            after + 2,
            "the storm appended more than one deploy key"
        );
        let counts = events_per_origin(&server);
        assert!(counts.values().all(|count| *count == 1), "{counts:?}");
        assert_eq!(counts.len(), 2);
        assert_only_findings(
            &server,
            &[
                Code::ChangeUnsanctioned,
                Code::DriftNhiCredentialUnsanctioned,
            ],
        );
    }
}

#[test]
fn the_audit_log_is_polled_and_its_cursor_survives_a_restart_with_no_gap_and_no_duplicate() {
    let fake = FakeGithub::start();
    let start = now_ms() - 10 * 60 * 1000;
    let member = |index: usize| {
        entry(
            &format!("DoC-{index:04}_x"),
            "team.add_member",
            start + i64::try_from(index).unwrap() * 1000,
            json!({"team": "acme/platform", "user": format!("user{index:03}")}),
        )
    };
    // Entries Custody skips are among them (a repository created).
    fake.append((0..120).map(|index| {
        if index % 40 == 39 {
            entry(
                &format!("DoC-{index:04}_x"),
                "repo.create",
                start,
                json!({"repo": "acme/new"}),
            )
        } else {
            member(index)
        }
    }));
    let config = format!(
        "{CONNECTOR}api_url = \"{}\"\napi_token = \"{TOKEN}\"\ninterval_seconds = 1\n",
        fake.url
    );
    let (mut server, _) = Server::start_on(TestStore::Embedded, None, Some(&config));
    wait_until("the first 120 entries are read", || fake.caught_up());
    let first = fake.seen();
    // The first poll searched from the look-back; the next pages followed
    // the Link header's cursor (on GitHub's host, never the link's own).
    assert!(first[0].param("after").is_none());
    assert!(first[0]
        .param("phrase")
        .is_some_and(|phrase| phrase.starts_with("created:>=")));
    assert!(first[1].param("after").is_some(), "{first:?}");
    assert!(first
        .iter()
        .all(|seen| seen.api_version.as_deref() == Some("2022-11-28")));
    assert!(first.iter().all(|seen| seen.status == 200), "{first:?}");

    server.stop();
    fake.append((120..150).map(member));
    let polled_before_restart = fake.seen().len();
    server.restart_configured();
    wait_until("the 30 new entries are read after the restart", || {
        fake.caught_up()
    });
    let after_restart = &fake.seen()[polled_before_restart..];
    assert!(
        after_restart[0].param("after").is_some(),
        "the restarted node started over instead of from its cursor: {after_restart:?}"
    );
    assert_eq!(after_restart[0].start, 120, "{after_restart:?}");

    // Every entry that changes access is recorded once: no gap, no
    // duplicate.
    let counts = events_per_origin(&server);
    let expected: Vec<String> = (0..150)
        .filter(|index| index % 40 != 39 || *index >= 120)
        .map(|index| format!("DoC-{index:04}_x"))
        .collect();
    let recorded: Vec<String> = counts.keys().map(|(_, id)| id.clone()).collect();
    assert_eq!(recorded, expected);
    assert!(counts.values().all(|count| *count == 1), "{counts:?}");
    assert!(counts.keys().all(|(source, _)| source == "github"));
}

#[test]
fn out_of_order_entries_bind_to_their_case_and_access_left_after_the_expiry_is_drift() {
    let (server, _) =
        Server::start_in_process(TestStore::Embedded, Some(&format!("{POLICY}\n{CONNECTOR}")));
    let alice = server.principal("alice");
    let carol = server.principal("carol");
    server.cli_ok(
        &server.admin_token,
        &["connector", "map", "github", "alice", "alice"],
    );
    let case = sanctioned(
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
            "member",
            "--resource",
            "team:acme/platform",
            "--duration",
            "1h",
        ],
    );
    let now = server.clock().now().as_micros() / 1000;
    // The grant and its revoke half an hour later, the later one first.
    let removed = entry(
        "Rm-1",
        "team.remove_member",
        now + 30 * 60 * 1000,
        json!({"team": "acme/platform", "user": "bob"}),
    );
    let added = entry(
        "Add-1",
        "team.add_member",
        now + 1000,
        json!({"team": "acme/platform", "user": "bob"}),
    );
    let file = serde_json::to_vec(&[&removed, &added]).unwrap();
    let summary = ingest_ok(&server, "github", &file);
    assert_eq!(summary["matched"], 2, "{summary}");
    let events = observed(&server, &case);
    let ids: Vec<&str> = events
        .iter()
        .map(|event| event["external_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["Rm-1", "Add-1"], "recorded in arrival order");
    assert!(events
        .iter()
        .all(|event| event["payload"]["matched_by"] == "window"));
    assert!(
        events
            .iter()
            .all(|event| event["payload"]["drift"] == json!([])),
        "{events:?}"
    );
    // The same file again, many times: nothing appended.
    let size = server.log_size();
    for _ in 0..10 {
        let again = ingest_ok(&server, "github", &file);
        assert_eq!(again["duplicates"], 2, "{again}");
    }
    assert_eq!(server.log_size(), size);

    // Another case's grant is seen, and never revoked: once its hour is
    // over, the access left is drift.
    let dana_case = sanctioned(
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
            "member",
            "--resource",
            "team:acme/platform",
            "--duration",
            "1h",
        ],
    );
    let now = server.clock().now().as_micros() / 1000;
    let dana_added = entry(
        "Add-2",
        "team.add_member",
        now + 1000,
        json!({"team": "acme/platform", "user": "dana"}),
    );
    ingest_ok(
        &server,
        "github",
        &serde_json::to_vec(&[&dana_added]).unwrap(),
    );
    server.advance(2 * 3600);
    let (_, report) = server.verify_with(&[]);
    let left = findings(&report, Code::DriftAccessAfterRevocation);
    let finding = left
        .iter()
        .find(|finding| finding["case_id"] == dana_case.as_str())
        .unwrap_or_else(|| panic!("no access-after-revocation finding: {report:#}"));
    assert_eq!(finding["source"], "github");
    assert_eq!(finding["external_id"], "Add-2");
    // Bob's access was seen revoked: no finding for his case.
    assert!(
        !left
            .iter()
            .any(|finding| finding["case_id"] == case.as_str()),
        "{left:?}"
    );
}

#[test]
fn an_unsanctioned_deploy_key_opens_a_case_that_escalates_when_nobody_reviews_it() {
    let (server, _) =
        Server::start_in_process(TestStore::Embedded, Some(&format!("{POLICY}\n{CONNECTOR}")));
    let created_at = rfc3339_ms(server.clock().now().as_micros() / 1000);
    let response = deliver(
        &server,
        "deploy_key",
        "c0ffee00-0c4e-11f0-8000-000000000001",
        &deploy_key(9901, "exfil", false, &created_at),
    );
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.json["unsanctioned"], 1, "{}", response.text);
    let case = response.json["cases"][0].as_str().unwrap();
    let event = observed(&server, case).remove(0);
    assert_eq!(event["payload"]["change"]["subject"]["kind"], "api_key");
    assert_eq!(
        event["payload"]["change"]["subject"]["id"],
        "acme/api/exfil"
    );
    let escalation = assert_unsanctioned_and_escalated(
        &server,
        case,
        "github",
        "deploy_key.created:1296269:9901",
        true,
    );
    assert_eq!(
        escalation["payload"]["reason"],
        Code::BreakGlassReviewOverdue.to_string()
    );
}

#[test]
fn a_deploy_key_wider_than_approved_is_drift_and_a_repository_role_wider_than_approved_is_unsanctioned(
) {
    let (server, _) = Server::start_on(TestStore::Embedded, None, Some(CONNECTOR));
    let alice = server.principal("alice");
    let carol = server.principal("carol");
    server.cli_ok(
        &server.admin_token,
        &["connector", "map", "github", "alice", "alice"],
    );

    // A read-only deploy key was approved; a read-write one was added,
    // its title naming the case.
    let case = sanctioned(
        &server,
        &alice,
        &carol,
        &alice,
        &[
            "--subject",
            "api_key:acme/api/ci",
            "--change",
            "create",
            "--entitlement",
            "deploy-key:read",
            "--resource",
            "repo:acme/api",
        ],
    );
    let response = deliver(
        &server,
        "deploy_key",
        "0b6f3a40-0c4e-11f0-8e2a-3c1d7a9b2f10",
        &deploy_key(8813, &format!("ci {case}"), false, &rfc3339_ms(now_ms())),
    );
    assert_eq!(response.json["matched"], 1, "{}", response.text);
    let event = observed(&server, &case).remove(0);
    assert_eq!(event["payload"]["matched_by"], "case_id");
    assert_eq!(
        event["payload"]["change"]["entitlement"],
        "deploy-key:write"
    );
    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let wider = findings(&report, Code::DriftWiderThanApproved);
    assert_eq!(wider.len(), 1, "{report:#}");
    assert_eq!(wider[0]["case_id"], case.as_str());
    assert_eq!(wider[0]["source"], "github");
    assert_eq!(wider[0]["external_id"], "deploy_key.created:1296269:8813");

    // Write on the repository was approved for erin; GitHub shows it
    // (bound by the window), then her role raised to admin, which no case
    // sanctioned: a case of its own.
    let erin_case = sanctioned(
        &server,
        &alice,
        &carol,
        &alice,
        &[
            "--subject",
            "user:erin",
            "--change",
            "grant",
            "--entitlement",
            "write",
            "--resource",
            "repo:acme/api",
        ],
    );
    let write = deliver(
        &server,
        "member",
        "0b6f3a40-0c4e-11f0-8e2a-3c1d7a9b2f11",
        &collaborator("added", "erin", "write"),
    );
    assert_eq!(write.json["matched"], 1, "{}", write.text);
    assert_eq!(
        observed(&server, &erin_case)[0]["payload"]["matched_by"],
        "window"
    );
    let admin = deliver(
        &server,
        "member",
        "0b6f3a40-0c4e-11f0-8e2a-3c1d7a9b2f12",
        &collaborator("edited", "erin", "admin"),
    );
    assert_eq!(admin.json["unsanctioned"], 1, "{}", admin.text);
    let opened = admin.json["cases"][0].as_str().unwrap();
    assert_ne!(opened, erin_case);
    assert!(all_cases(&server, true).contains(&opened.to_string()));
    assert_eq!(observed(&server, &erin_case).len(), 1);

    // A malformed or foreign file changes nothing.
    let size = server.log_size();
    let (code, _) = ingest(
        &server,
        "github",
        b"[{\"action\": \"team.add_member\", \"team\": \"a/b\", \"user\": \"x\"}]",
    );
    assert_eq!(code, Some(2));
    assert_eq!(server.log_size(), size);
}
