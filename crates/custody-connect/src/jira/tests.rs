//! The Jira connector, IO-free. The payloads are written from Atlassian's
//! description of the issue webhook (`timestamp`, `webhookEvent`, `user`,
//! `issue` with its `fields`, `changelog` with its `items`), with values of
//! our own.

use std::str::FromStr;

use proptest::prelude::*;
use serde_json::{json, Value};

use custody_core::model::{ChangeKind, SubjectKind, Ticket};
use custody_core::{CaseId, Timestamp};

use super::*;
use crate::config::ConnectorConfig;
use crate::{limits, Call, Headers, Update};

const SECRET: &str = "It's a Secret to Everybody";
/// 2026-11-30T12:00:00Z, in milliseconds.
const NOW_MS: u64 = 1_795_003_200_000;
const NOW: u64 = NOW_MS / 1000;
const ALICE: &str = "5b10ac8d82e05b22cc7d4ef5";
const BOB: &str = "712020:2d5c1f3e-8a4b-4c2d-9e6f-0a1b2c3d4e5f";
const CASE: &str = "AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b71";

fn settings() -> Value {
    json!({
        "name": "jira",
        "kind": "jira",
        "secret": SECRET,
        "projects": ["SEC"],
        "approved_status": "Approved",
        "denied_status": "Rejected",
        "api_url": "https://example.atlassian.net/",
        "api_email": "custody-bot@example.com",
        "api_token": "ATATT3xFfGF0-token",
        "fields": {
            "subject": "customfield_10040",
            "entitlement": "customfield_10041",
            "resource": "customfield_10042",
            "duration": "customfield_10043",
            "justification": "description",
            "case_id": "customfield_10044",
        },
        "fixed": { "change": "grant" },
    })
}

fn config_from(settings: Value) -> Result<JiraConfig, String> {
    match serde_json::from_value::<ConnectorConfig>(settings).map_err(|e| e.to_string())? {
        ConnectorConfig::Jira(config) => Ok(*config),
        other => Err(format!("not a jira config: {other:?}")),
    }
}

fn connector() -> JiraConnector {
    config_from(settings()).unwrap().connector().unwrap()
}

fn build_error(change: impl FnOnce(&mut Value)) -> String {
    let mut settings = settings();
    change(&mut settings);
    match config_from(settings) {
        Err(error) => error,
        Ok(config) => config.connector().map(|_| ()).unwrap_err(),
    }
}

fn user(account_id: &str) -> Value {
    json!({
        "self": format!("https://example.atlassian.net/rest/api/2/user?accountId={account_id}"),
        "accountId": account_id,
        "displayName": "Alice Example",
        "active": true,
        "timeZone": "Europe/Paris",
        "accountType": "atlassian",
    })
}

fn issue_fields() -> Value {
    json!({
        "summary": "Read access to the billing database for the audit",
        "issuetype": { "id": "10001", "name": "Access request" },
        "project": {
            "self": "https://example.atlassian.net/rest/api/2/project/10000",
            "id": "10000",
            "key": "SEC",
            "name": "Security",
        },
        "status": { "id": "10000", "name": "To Do" },
        "description": "Quarterly audit of invoices.",
        "customfield_10040": "user:alice",
        "customfield_10041": { "self": "https://example.atlassian.net/rest/api/2/customFieldOption/10100", "value": "db-read", "id": "10100" },
        "customfield_10042": "billing-db",
        "customfield_10043": "8h",
        "customfield_10044": null,
    })
}

fn issue(fields: Value) -> Value {
    json!({
        "id": "10042",
        "self": "https://example.atlassian.net/rest/api/2/issue/10042",
        "key": "SEC-142",
        "fields": fields,
    })
}

fn created(fields: Value) -> Value {
    json!({
        "timestamp": NOW_MS,
        "webhookEvent": "jira:issue_created",
        "issue_event_type_name": "issue_created",
        "user": user(ALICE),
        "issue": issue(fields),
    })
}

fn status_item(from: (&str, &str), to: (&str, &str)) -> Value {
    json!({
        "field": "status",
        "fieldtype": "jira",
        "fieldId": "status",
        "from": from.0,
        "fromString": from.1,
        "to": to.0,
        "toString": to.1,
    })
}

fn updated(fields: Value, items: Vec<Value>, by: &str) -> Value {
    json!({
        "timestamp": NOW_MS + 60_000,
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "user": user(by),
        "issue": issue(fields),
        "changelog": { "id": "10124", "items": items },
    })
}

fn approved_fields() -> Value {
    let mut fields = issue_fields();
    fields["status"] = json!({ "id": "10001", "name": "Approved" });
    fields
}

fn sign(body: &[u8]) -> String {
    format!(
        "sha256={}",
        custody_core::hex::encode(&signature::hmac_sha256(SECRET.as_bytes(), &[body]))
    )
}

fn headers_for(body: &[u8]) -> Headers {
    Headers::new([
        ("X-Hub-Signature", sign(body)),
        ("Content-Type", "application/json".to_string()),
        (
            "X-Atlassian-Webhook-Identifier",
            "c1b2a3d4-0000-4000-8000-000000000001".to_string(),
        ),
    ])
}

fn request<'a>(headers: &'a Headers, body: &'a [u8]) -> Request<'a> {
    Request {
        endpoint: WEBHOOK_ENDPOINT,
        headers,
        body,
        tls: true,
    }
}

fn parse(body: &Value) -> Result<Vec<Inbound>, Refusal> {
    let bytes = serde_json::to_vec(body).unwrap();
    let headers = headers_for(&bytes);
    connector().parse(&request(&headers, &bytes))
}

fn sec_142() -> Ticket {
    Ticket::from_str("jira:SEC-142").unwrap()
}

// ---------------------------------------------------------------- settings

#[test]
fn the_documented_settings_build() {
    let connector = connector();
    assert_eq!(connector.kind(), "jira");
    assert_eq!(connector.ticket_system(), Some("jira"));
    assert_eq!(connector.api_url, "https://example.atlassian.net");
    let config = config_from(settings()).unwrap();
    assert_eq!(config.window_seconds, DEFAULT_WINDOW_SECONDS);
    assert_eq!(config.max_body_bytes, limits::DEFAULT_MAX_BODY_BYTES);
    assert!(config.build().is_ok());
    // The secrets stay out of Debug output.
    let printed = format!("{config:?} {connector:?}");
    assert!(!printed.contains(SECRET), "{printed}");
    assert!(!printed.contains("ATATT3xFfGF0-token"), "{printed}");
}

#[test]
fn bad_settings_are_refused_naming_the_setting() {
    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("`secret` is empty", Box::new(|s| s["secret"] = json!(""))),
        (
            "`projects` is empty",
            Box::new(|s| s["projects"] = json!([])),
        ),
        (
            "is not a Jira project key",
            Box::new(|s| s["projects"] = json!(["sec"])),
        ),
        (
            "`approved_status` is empty",
            Box::new(|s| s["approved_status"] = json!(" ")),
        ),
        (
            "`denied_status` is the same as `approved_status`",
            Box::new(|s| s["denied_status"] = json!("approved")),
        ),
        (
            "plain HTTP",
            Box::new(|s| s["api_url"] = json!("http://example.atlassian.net")),
        ),
        (
            "is not an https:// URL",
            Box::new(|s| s["api_url"] = json!("example.atlassian.net")),
        ),
        (
            "`api_email` holds ':'",
            Box::new(|s| s["api_email"] = json!("a:b@example.com")),
        ),
        (
            "`api_token` is empty",
            Box::new(|s| s["api_token"] = json!("")),
        ),
        (
            "`property_key` must be",
            Box::new(|s| s["property_key"] = json!("custody/state")),
        ),
        (
            "`change` is in both [fields] and [fixed]",
            Box::new(|s| s["fields"]["change"] = json!("customfield_10045")),
        ),
        (
            "no source for `entitlement`",
            Box::new(|s| {
                s["fields"].as_object_mut().unwrap().remove("entitlement");
            }),
        ),
        (
            "`subject_kind` and `subject_id` go together",
            Box::new(|s| {
                s["fields"].as_object_mut().unwrap().remove("subject");
                s["fields"]["subject_id"] = json!("customfield_10046");
            }),
        ),
        (
            "no source for the subject",
            Box::new(|s| {
                s["fields"].as_object_mut().unwrap().remove("subject");
            }),
        ),
        (
            "`fixed.change` = `borrow` is refused",
            Box::new(|s| s["fixed"]["change"] = json!("borrow")),
        ),
        (
            "`fixed.duration` = `forever` is refused",
            Box::new(|s| {
                s["fields"].as_object_mut().unwrap().remove("duration");
                s["fixed"]["duration"] = json!("forever");
            }),
        ),
        (
            "is not a Jira field ID",
            Box::new(|s| s["fields"]["resource"] = json!("custom field")),
        ),
        (
            "unknown field `aproved_status`",
            Box::new(|s| s["aproved_status"] = json!("x")),
        ),
        (
            "unknown field `chnage`",
            Box::new(|s| s["fixed"]["chnage"] = json!("grant")),
        ),
    ];
    for (expected, change) in cases {
        let error = build_error(change);
        assert!(
            error.contains(expected),
            "expected `{expected}` in: {error}"
        );
    }
}

#[test]
fn plain_http_is_allowed_to_the_loopback_interface_only() {
    for url in [
        "http://127.0.0.1:8080",
        "http://localhost:1",
        "http://[::1]:9/",
    ] {
        let mut settings = settings();
        settings["api_url"] = json!(url);
        assert!(config_from(settings).unwrap().connector().is_ok(), "{url}");
    }
    for url in [
        "http://127.0.0.1.example.com",
        "http://10.0.0.1",
        "https://x?y",
    ] {
        let mut settings = settings();
        settings["api_url"] = json!(url);
        assert!(config_from(settings).unwrap().connector().is_err(), "{url}");
    }
}

// --------------------------------------------------------------- signature

#[test]
fn a_valid_signature_verifies_and_its_tag_is_the_fingerprint() {
    let body = serde_json::to_vec(&created(issue_fields())).unwrap();
    let headers = headers_for(&body);
    let signed = connector().verify(&request(&headers, &body), NOW).unwrap();
    assert_eq!(signed.signed_at, NOW);
    assert_eq!(
        signed.fingerprint,
        signature::hmac_sha256(SECRET.as_bytes(), &[&body]).to_vec()
    );
    // The same request gives the same fingerprint, whichever case the hex
    // digits are in, so the replay guard recognises it.
    let upper = Headers::new([(
        "x-hub-signature",
        format!(
            "sha256={}",
            sign(&body)["sha256=".len()..].to_ascii_uppercase()
        ),
    )]);
    let again = connector()
        .verify(&request(&upper, &body), NOW + 10)
        .unwrap();
    assert_eq!(again.fingerprint, signed.fingerprint);
}

#[test]
fn a_wrong_or_missing_signature_is_refused_401() {
    let body = serde_json::to_vec(&created(issue_fields())).unwrap();
    let connector = connector();
    let other_secret = format!(
        "sha256={}",
        custody_core::hex::encode(&signature::hmac_sha256(b"another secret", &[&body]))
    );
    let mut tampered = body.clone();
    let at = tampered.iter().position(|&b| b == b'8').unwrap();
    tampered[at] = b'9';
    let good = sign(&body);
    let cases: Vec<(Headers, Vec<u8>, &str)> = vec![
        (Headers::default(), body.clone(), "missing"),
        (
            Headers::new([("X-Hub-Signature", other_secret.as_str())]),
            body.clone(),
            "does not match",
        ),
        (
            Headers::new([("X-Hub-Signature", good.as_str())]),
            tampered,
            "does not match",
        ),
        (
            Headers::new([("X-Hub-Signature", good.replace("sha256", "sha1").as_str())]),
            body.clone(),
            "not sha256",
        ),
        (
            Headers::new([("X-Hub-Signature", &good["sha256=".len()..])]),
            body.clone(),
            "method=signature",
        ),
        (
            Headers::new([("X-Hub-Signature", "sha256=zz")]),
            body.clone(),
            "64 hexadecimal digits",
        ),
        (
            Headers::new([
                ("X-Hub-Signature", good.as_str()),
                ("x-hub-signature", good.as_str()),
            ]),
            body.clone(),
            "more than once",
        ),
    ];
    for (headers, body, expected) in cases {
        let refusal = connector
            .verify(&request(&headers, &body), NOW)
            .unwrap_err();
        assert_eq!(refusal.status(), 401, "{refusal}");
        assert!(
            refusal.to_string().contains(expected),
            "expected `{expected}`: {refusal}"
        );
    }
}

#[test]
fn the_mac_is_checked_before_the_body_is_read() {
    // Not JSON, and unsigned: refused for the signature (401), not for the
    // shape (400), so nothing reads a body the MAC does not vouch for.
    let body = b"{not json";
    let headers = Headers::new([("X-Hub-Signature", format!("sha256={}", "00".repeat(32)))]);
    let refusal = connector()
        .verify(&request(&headers, body), NOW)
        .unwrap_err();
    assert_eq!(refusal.status(), 401);
    // Signed, but without the timestamp the window needs: 400.
    let body = br#"{"webhookEvent":"jira:issue_created"}"#;
    let headers = headers_for(body);
    let refusal = connector()
        .verify(&request(&headers, body), NOW)
        .unwrap_err();
    assert!(matches!(refusal, Refusal::Malformed(_)), "{refusal:?}");
    let body = br#"{"timestamp":"soon","webhookEvent":"jira:issue_created"}"#;
    let headers = headers_for(body);
    let refusal = connector()
        .verify(&request(&headers, body), NOW)
        .unwrap_err();
    assert!(matches!(refusal, Refusal::Malformed(_)), "{refusal:?}");
}

#[test]
fn a_timestamp_outside_the_window_is_refused_either_side() {
    let body = serde_json::to_vec(&created(issue_fields())).unwrap();
    let headers = headers_for(&body);
    let connector = connector();
    let window = DEFAULT_WINDOW_SECONDS;
    connector
        .verify(&request(&headers, &body), NOW + window)
        .unwrap();
    connector
        .verify(&request(&headers, &body), NOW - window)
        .unwrap();
    for now in [NOW + window + 1, NOW - window - 1] {
        let refusal = connector
            .verify(&request(&headers, &body), now)
            .unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Stale {
                signed_at: NOW,
                skew_seconds: window + 1,
                window_seconds: window,
            }
        );
        assert_eq!(refusal.status(), 401);
    }
}

#[test]
fn a_replayed_delivery_is_caught_by_the_guard_on_its_fingerprint() {
    let body = serde_json::to_vec(&created(issue_fields())).unwrap();
    let headers = headers_for(&body);
    let connector = connector();
    let mut guard = crate::replay::ReplayGuard::new(DEFAULT_WINDOW_SECONDS, 100);
    let first = connector.verify(&request(&headers, &body), NOW).unwrap();
    guard.admit(&first.fingerprint, NOW).unwrap();
    // Jira's retry header is not signed: a replay that changes it is still
    // the same signed request.
    let retried = Headers::new([
        ("X-Hub-Signature", sign(&body)),
        ("X-Atlassian-Webhook-Retry", "1".to_string()),
        ("X-Atlassian-Webhook-Identifier", "another".to_string()),
    ]);
    let second = connector
        .verify(&request(&retried, &body), NOW + 5)
        .unwrap();
    assert_eq!(
        guard.admit(&second.fingerprint, NOW + 5),
        Err(Refusal::Replayed)
    );
    // And the inbound it would record carries the same external ID.
    assert_eq!(
        connector.parse(&request(&headers, &body)).unwrap()[0].external_id,
        connector.parse(&request(&retried, &body)).unwrap()[0].external_id
    );
}

#[test]
fn the_size_limit_comes_before_any_mac() {
    // The server's order (lib.rs): check_size, then verify. A body one
    // byte over the configured limit is refused 413 without a MAC.
    let mut settings = settings();
    settings["max_body_bytes"] = json!(1024);
    let config = ConnectorConfig::Jira(Box::new(config_from(settings).unwrap()));
    let body = vec![b' '; 1025];
    let refusal = limits::check_size(body.len(), config.max_body_bytes()).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::TooLarge {
            size: 1025,
            limit: 1024
        }
    );
    assert_eq!(refusal.status(), 413);
    limits::check_size(1024, config.max_body_bytes()).unwrap();
    assert_eq!(config.window_seconds(), DEFAULT_WINDOW_SECONDS);
}

// ------------------------------------------------------------------- parse

#[test]
fn an_issue_created_in_a_configured_project_requests_the_mapped_change() {
    let inbounds = parse(&created(issue_fields())).unwrap();
    assert_eq!(inbounds.len(), 1);
    let inbound = &inbounds[0];
    assert_eq!(inbound.external_id, "jira:issue_created:10042");
    assert_eq!(inbound.external_user, ALICE);
    assert_eq!(
        inbound.occurred_at,
        Some(Timestamp::from_micros(
            i64::try_from(NOW_MS).unwrap() * 1000
        ))
    );
    assert_eq!(inbound.reply_to, None);
    let Action::Request {
        change,
        justification,
        ticket,
        case,
    } = &inbound.action
    else {
        panic!("not a request: {:?}", inbound.action);
    };
    assert_eq!(change.subject().kind, SubjectKind::User);
    assert_eq!(change.subject().id, "alice");
    assert_eq!(change.kind(), ChangeKind::Grant);
    assert_eq!(change.entitlement(), "db-read");
    assert_eq!(change.resource(), Some("billing-db"));
    assert_eq!(change.duration_seconds(), Some(8 * 3600));
    assert_eq!(
        justification.as_deref(),
        Some("Quarterly audit of invoices.")
    );
    assert_eq!(ticket.as_ref(), Some(&sec_142()));
    assert_eq!(case, &None);
}

#[test]
fn a_case_id_in_the_case_field_binds_the_issue_to_that_case() {
    let mut fields = issue_fields();
    fields["customfield_10044"] = json!(CASE);
    let inbounds = parse(&created(fields)).unwrap();
    let Action::Request { case, ticket, .. } = &inbounds[0].action else {
        panic!("not a request");
    };
    assert_eq!(case, &Some(CaseId::from_str(CASE).unwrap()));
    assert_eq!(ticket.as_ref(), Some(&sec_142()));
}

#[test]
fn jira_field_shapes_are_read_as_text() {
    // A rich-text (ADF) description, a one-element multi-select, a numeric
    // field and an optional field left empty.
    let mut fields = issue_fields();
    fields["description"] = json!({
        "type": "doc",
        "version": 1,
        "content": [
            { "type": "paragraph", "content": [
                { "type": "text", "text": "Quarterly audit" },
                { "type": "text", "text": " of invoices.", "marks": [{ "type": "strong" }] },
            ]},
            { "type": "paragraph", "content": [{ "type": "text", "text": "Ends Friday." }] },
        ],
    });
    fields["customfield_10041"] = json!([{ "value": "db-read", "id": "10100" }]);
    fields["customfield_10042"] = json!(42);
    fields["customfield_10043"] = json!("  ");
    let inbounds = parse(&created(fields)).unwrap();
    let Action::Request {
        change,
        justification,
        ..
    } = &inbounds[0].action
    else {
        panic!("not a request");
    };
    assert_eq!(
        justification.as_deref(),
        Some("Quarterly audit of invoices.\nEnds Friday.")
    );
    assert_eq!(change.entitlement(), "db-read");
    assert_eq!(change.resource(), Some("42"));
    assert_eq!(change.duration_seconds(), None);
}

#[test]
fn subject_kind_and_id_may_come_from_two_fields() {
    let mut settings = settings();
    settings["fields"]
        .as_object_mut()
        .unwrap()
        .remove("subject");
    settings["fields"]["subject_kind"] = json!("customfield_10050");
    settings["fields"]["subject_id"] = json!("customfield_10051");
    let connector = config_from(settings).unwrap().connector().unwrap();
    let mut fields = issue_fields();
    fields["customfield_10050"] = json!({ "value": "Service_Account" });
    fields["customfield_10051"] = json!("ci-deploy");
    let body = serde_json::to_vec(&created(fields)).unwrap();
    let headers = headers_for(&body);
    let inbounds = connector.parse(&request(&headers, &body)).unwrap();
    let Action::Request { change, .. } = &inbounds[0].action else {
        panic!("not a request");
    };
    assert_eq!(change.subject().kind, SubjectKind::ServiceAccount);
    assert_eq!(change.subject().id, "ci-deploy");
}

#[test]
fn an_issue_whose_fields_do_not_describe_a_change_is_refused_naming_the_field() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "customfield_10041",
            Value::Null,
            "field customfield_10041 (entitlement) is empty",
        ),
        (
            "customfield_10040",
            json!("alice"),
            "field customfield_10040 (subject) is refused",
        ),
        (
            "customfield_10043",
            json!("forever"),
            "field customfield_10043 (duration) is refused",
        ),
        (
            "customfield_10041",
            json!([{ "value": "a" }, { "value": "b" }]),
            "holds 2 values",
        ),
        ("customfield_10041", json!(true), "is a boolean"),
        (
            "customfield_10041",
            json!({ "id": "1" }),
            "without a value or a name",
        ),
        (
            "customfield_10041",
            json!("db\u{202e}read"),
            "do not describe a valid change",
        ),
        (
            "customfield_10044",
            json!("AC-123"),
            "field customfield_10044 (case_id) is refused",
        ),
    ];
    for (field, value, expected) in cases {
        let mut fields = issue_fields();
        fields[field] = value;
        let refusal = parse(&created(fields)).unwrap_err();
        assert_eq!(refusal.status(), 400, "{refusal}");
        let text = refusal.to_string();
        assert!(text.starts_with("issue SEC-142: "), "{text}");
        assert!(text.contains(expected), "expected `{expected}` in: {text}");
    }
}

#[test]
fn issues_of_other_projects_and_other_events_record_nothing() {
    let mut fields = issue_fields();
    fields["project"]["key"] = json!("OPS");
    assert_eq!(parse(&created(fields)).unwrap(), Vec::new());
    for event in ["jira:issue_deleted", "comment_created", "sprint_started"] {
        let mut body = created(issue_fields());
        body["webhookEvent"] = json!(event);
        assert_eq!(parse(&body).unwrap(), Vec::new(), "{event}");
    }
    // An update that is a comment only carries no changelog.
    let mut comment = updated(issue_fields(), Vec::new(), BOB);
    comment.as_object_mut().unwrap().remove("changelog");
    comment["issue_event_type_name"] = json!("issue_commented");
    assert_eq!(parse(&comment).unwrap(), Vec::new());
    // An edit of an unmapped field, a transition to another status.
    let summary = json!({ "field": "summary", "fieldtype": "jira", "fieldId": "summary",
        "from": null, "fromString": "Old", "to": null, "toString": "New" });
    assert_eq!(
        parse(&updated(issue_fields(), vec![summary], BOB)).unwrap(),
        Vec::new()
    );
    let progress = status_item(("10000", "To Do"), ("3", "In Progress"));
    assert_eq!(
        parse(&updated(issue_fields(), vec![progress], BOB)).unwrap(),
        Vec::new()
    );
}

#[test]
fn a_transition_to_the_approved_status_approves_as_the_webhook_user() {
    let item = status_item(("10000", "To Do"), ("10001", "Approved"));
    let inbounds = parse(&updated(approved_fields(), vec![item], BOB)).unwrap();
    assert_eq!(
        inbounds,
        vec![Inbound {
            external_id: "jira:issue_updated:10042:10124:approve".into(),
            external_user: BOB.into(),
            occurred_at: Some(Timestamp::from_micros(
                i64::try_from(NOW_MS + 60_000).unwrap() * 1000
            )),
            action: Action::Approve {
                target: Target::Ticket(sec_142()),
                comment: None,
                chat: None,
            },
            reply_to: None,
        }]
    );
    // By name in any case, or by status ID.
    for to in [("10001", "APPROVED"), ("10001", "Approved ")] {
        let item = status_item(("10000", "To Do"), to);
        let inbounds = parse(&updated(approved_fields(), vec![item], BOB)).unwrap();
        assert!(
            matches!(inbounds[0].action, Action::Approve { .. }),
            "{to:?}"
        );
    }
    let mut settings = settings();
    settings["approved_status"] = json!("10001");
    let by_id = config_from(settings).unwrap().connector().unwrap();
    let body = serde_json::to_vec(&updated(
        approved_fields(),
        vec![status_item(("1", "To Do"), ("10001", "Genehmigt"))],
        BOB,
    ))
    .unwrap();
    let headers = headers_for(&body);
    let inbounds = by_id.parse(&request(&headers, &body)).unwrap();
    assert!(matches!(inbounds[0].action, Action::Approve { .. }));
}

#[test]
fn a_transition_to_the_denied_status_denies() {
    let item = status_item(("10000", "To Do"), ("10002", "Rejected"));
    let inbounds = parse(&updated(issue_fields(), vec![item], BOB)).unwrap();
    assert_eq!(inbounds.len(), 1);
    assert_eq!(
        inbounds[0].external_id,
        "jira:issue_updated:10042:10124:deny"
    );
    assert_eq!(
        inbounds[0].action,
        Action::Deny {
            target: Target::Ticket(sec_142()),
            comment: None,
        }
    );
}

#[test]
fn a_decision_binds_to_the_issues_case_whatever_its_case_id_field_says() {
    // The field could be edited by anyone who can edit the issue: a
    // decision is the issue's, bound by its ticket.
    let mut fields = approved_fields();
    fields["customfield_10044"] = json!(CASE);
    let item = status_item(("10000", "To Do"), ("10001", "Approved"));
    let inbounds = parse(&updated(fields, vec![item], BOB)).unwrap();
    assert_eq!(
        inbounds[0].action,
        Action::Approve {
            target: Target::Ticket(sec_142()),
            comment: None,
            chat: None,
        }
    );
}

#[test]
fn an_edit_of_a_mapped_field_reports_the_change_the_issue_now_describes() {
    let mut fields = issue_fields();
    fields["customfield_10041"] = json!({ "value": "db-admin", "id": "10101" });
    let item = json!({ "field": "Entitlement", "fieldtype": "custom", "fieldId": "customfield_10041",
        "from": "10100", "fromString": "db-read", "to": "10101", "toString": "db-admin" });
    let inbounds = parse(&updated(fields, vec![item], ALICE)).unwrap();
    assert_eq!(inbounds.len(), 1);
    assert_eq!(
        inbounds[0].external_id,
        "jira:issue_updated:10042:10124:fields"
    );
    assert_eq!(inbounds[0].external_user, ALICE);
    let Action::TicketUpdated { ticket, change } = &inbounds[0].action else {
        panic!("not a ticket update: {:?}", inbounds[0].action);
    };
    assert_eq!(ticket, &sec_142());
    assert_eq!(change.entitlement(), "db-admin");
    assert_eq!(change.subject().id, "alice");
    // A system field mapped by its ID (no fieldId in older payloads).
    let mut settings = settings();
    settings["fields"]["resource"] = json!("summary");
    let connector = config_from(settings).unwrap().connector().unwrap();
    let summary = json!({ "field": "summary", "fieldtype": "jira",
        "from": null, "fromString": "a", "to": null, "toString": "prod-db" });
    let mut fields = issue_fields();
    fields["summary"] = json!("prod-db");
    let body = serde_json::to_vec(&updated(fields, vec![summary], ALICE)).unwrap();
    let headers = headers_for(&body);
    let inbounds = connector.parse(&request(&headers, &body)).unwrap();
    let Action::TicketUpdated { change, .. } = &inbounds[0].action else {
        panic!("not a ticket update");
    };
    assert_eq!(change.resource(), Some("prod-db"));
}

#[test]
fn an_approval_with_an_edit_in_the_same_update_records_the_edit_after_it() {
    let mut fields = approved_fields();
    fields["customfield_10042"] = json!("payroll-db");
    let items = vec![
        json!({ "field": "Resource", "fieldtype": "custom", "fieldId": "customfield_10042",
            "from": null, "fromString": "billing-db", "to": null, "toString": "payroll-db" }),
        status_item(("10000", "To Do"), ("10001", "Approved")),
    ];
    let inbounds = parse(&updated(fields, items, BOB)).unwrap();
    let kinds: Vec<&str> = inbounds
        .iter()
        .map(|inbound| match &inbound.action {
            Action::Approve { .. } => "approve",
            Action::TicketUpdated { .. } => "fields",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["approve", "fields"]);
    assert_ne!(inbounds[0].external_id, inbounds[1].external_id);
}

#[test]
fn external_ids_are_stable_and_distinct() {
    // A numeric changelog ID is the same ID as its string.
    let item = status_item(("10000", "To Do"), ("10001", "Approved"));
    let mut numeric = updated(approved_fields(), vec![item.clone()], BOB);
    numeric["changelog"]["id"] = json!(10124);
    numeric["issue"]["id"] = json!(10042);
    let string = updated(approved_fields(), vec![item.clone()], BOB);
    assert_eq!(parse(&numeric).unwrap(), parse(&string).unwrap());
    // Another change of the same issue is another record.
    let mut later = updated(approved_fields(), vec![item.clone()], BOB);
    later["changelog"]["id"] = json!("10125");
    assert_ne!(
        parse(&later).unwrap()[0].external_id,
        parse(&string).unwrap()[0].external_id
    );
    // Without a changelog ID, the event's time tells two changes apart.
    let mut untimed = updated(approved_fields(), vec![item], BOB);
    untimed["changelog"].as_object_mut().unwrap().remove("id");
    assert_eq!(
        parse(&untimed).unwrap()[0].external_id,
        format!("jira:issue_updated:10042:at-{}:approve", NOW_MS + 60_000)
    );
}

#[test]
fn malformed_bodies_are_refused_400_with_a_reason() {
    let no_user = {
        let mut body = created(issue_fields());
        body.as_object_mut().unwrap().remove("user");
        body
    };
    let no_issue = {
        let mut body = created(issue_fields());
        body.as_object_mut().unwrap().remove("issue");
        body
    };
    let no_project = {
        let mut fields = issue_fields();
        fields.as_object_mut().unwrap().remove("project");
        created(fields)
    };
    let bad_key = {
        let mut body = created(issue_fields());
        body["issue"]["key"] = json!("SEC 142");
        body
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "not a Jira webhook"),
        (b"[]".to_vec(), "not a Jira webhook"),
        (br#"{"timestamp":1}"#.to_vec(), "not a Jira webhook"),
        (
            br#"{"timestamp":-1,"webhookEvent":"x"}"#.to_vec(),
            "not a Jira webhook",
        ),
        (serde_json::to_vec(&no_user).unwrap(), "names no user"),
        (serde_json::to_vec(&no_issue).unwrap(), "carries no issue"),
        (
            serde_json::to_vec(&no_project).unwrap(),
            "no fields.project.key",
        ),
        (serde_json::to_vec(&bad_key).unwrap(), "not a ticket key"),
    ];
    let connector = connector();
    for (body, expected) in cases {
        let headers = headers_for(&body);
        let refusal = connector.parse(&request(&headers, &body)).unwrap_err();
        assert_eq!(refusal.status(), 400);
        assert!(
            refusal.to_string().contains(expected),
            "expected `{expected}`: {refusal}"
        );
    }
    let body = serde_json::to_vec(&created(issue_fields())).unwrap();
    let headers = headers_for(&body);
    let refusal = connector
        .parse(&Request {
            endpoint: "actions",
            ..request(&headers, &body)
        })
        .unwrap_err();
    assert!(
        refusal.to_string().contains("`webhook` endpoint"),
        "{refusal}"
    );
}

// ------------------------------------------------------------------ answer

#[test]
fn the_answer_is_200_and_says_what_was_recorded() {
    let case = CaseId::from_str(CASE).unwrap();
    let outcomes = vec![
        Outcome {
            case_id: Some(case.clone()),
            kind: OutcomeKind::Recorded {
                event: "approval_granted".into(),
                state: "approved".into(),
            },
            principal: Some("bob".into()),
            message: "approved as bob".into(),
        },
        Outcome {
            case_id: None,
            kind: OutcomeKind::Unmapped,
            principal: None,
            message: "Jira user 712020:x maps to no principal".into(),
        },
        Outcome {
            case_id: Some(case),
            kind: OutcomeKind::Refused {
                rule: custody_core::code::Code::SodRequesterCannotApprove.to_string(),
            },
            principal: Some("alice".into()),
            message: "refused".into(),
        },
    ];
    let answer = connector().answer(&outcomes);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, Some("application/json"));
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        body,
        json!({ "outcomes": [
            { "case_id": CASE, "principal": "bob", "outcome": "recorded",
              "event": "approval_granted", "state": "approved", "message": "approved as bob" },
            { "outcome": "unmapped", "message": "Jira user 712020:x maps to no principal" },
            { "case_id": CASE, "principal": "alice", "outcome": "refused",
              "rule": custody_core::code::Code::SodRequesterCannotApprove.to_string(), "message": "refused" },
        ]})
    );
}

#[test]
fn a_failed_write_is_503_and_a_missing_case_409_so_jira_retries() {
    let outcome = |kind: OutcomeKind| Outcome {
        case_id: None,
        kind,
        principal: None,
        message: "m".into(),
    };
    let recorded = outcome(OutcomeKind::Recorded {
        event: "approved".into(),
        state: "approved".into(),
    });
    let not_found = outcome(OutcomeKind::NotFound);
    let internal = outcome(OutcomeKind::Refused {
        rule: "internal".into(),
    });
    let refused = outcome(OutcomeKind::Refused {
        rule: custody_core::code::Code::SodRequesterCannotApprove.to_string(),
    });
    let connector = connector();
    let status = |outcomes: &[Outcome]| connector.answer(outcomes).status;
    assert_eq!(status(&[]), 200);
    assert_eq!(status(&[recorded.clone(), refused.clone()]), 200);
    assert_eq!(status(&[outcome(OutcomeKind::Unmapped)]), 200);
    assert_eq!(status(&[recorded.clone(), not_found.clone()]), 409);
    assert_eq!(status(&[not_found.clone(), internal.clone()]), 503);
    assert_eq!(status(&[refused, internal]), 503);
    // Error answers are problem documents carrying the outcomes.
    let answer = connector.answer(&[not_found]);
    assert_eq!(answer.content_type, Some("application/problem+json"));
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(body["status"], 409);
    assert_eq!(body["type"], "urn:custody:problem:conflict");
    assert_eq!(body["outcomes"][0]["outcome"], "not_found");
    let body: Value = serde_json::from_slice(
        &connector
            .answer(&[outcome(OutcomeKind::Refused {
                rule: "internal".into(),
            })])
            .body,
    )
    .unwrap();
    assert_eq!(body["type"], "urn:custody:problem:unavailable");
    assert_eq!(body["outcomes"][0]["rule"], "internal");
}

// -------------------------------------------------------------- write-back

fn update(first: bool) -> Update {
    Update {
        case_id: CaseId::from_str(CASE).unwrap(),
        case_url: Some(format!("https://custody.example.com/v1/cases/{CASE}")),
        recipient: "SEC-142".into(),
        event: if first { "request_created" } else { "approval_granted" }.into(),
        state: if first { "open" } else { "approved" }.into(),
        actor: if first { "alice" } else { "bob" }.into(),
        summary: if first {
            "requested grant db-read to user:alice on billing-db for 8h (ticket jira:SEC-142): Quarterly audit"
        } else {
            "approved"
        }
        .into(),
        first,
    }
}

fn expected_headers() -> Vec<(String, String)> {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD
        .encode("custody-bot@example.com:ATATT3xFfGF0-token");
    vec![
        ("Authorization".into(), format!("Basic {basic}")),
        ("Content-Type".into(), "application/json".into()),
        ("Accept".into(), "application/json".into()),
    ]
}

fn body_of(call: &Call) -> Value {
    serde_json::from_slice(&call.body).unwrap()
}

#[test]
fn the_first_write_back_sets_the_property_and_comments_with_the_case_link() {
    let update = update(true);
    let calls = connector().write_back(&update);
    assert_eq!(calls.len(), 2);
    let link = update.case_url.clone().unwrap();
    assert_eq!(calls[0].method, "PUT");
    assert_eq!(
        calls[0].url,
        "https://example.atlassian.net/rest/api/3/issue/SEC-142/properties/custody"
    );
    assert_eq!(calls[0].headers, expected_headers());
    assert_eq!(
        body_of(&calls[0]),
        json!({ "case_id": CASE, "state": "open", "url": link })
    );
    assert_eq!(calls[1].method, "POST");
    assert_eq!(
        calls[1].url,
        "https://example.atlassian.net/rest/api/3/issue/SEC-142/comment"
    );
    assert_eq!(calls[1].headers, expected_headers());
    assert_eq!(
        body_of(&calls[1]),
        json!({ "body": { "type": "doc", "version": 1, "content": [
            { "type": "paragraph", "content": [
                { "type": "text", "text": "This issue is Custody case " },
                { "type": "text", "text": CASE,
                  "marks": [{ "type": "link", "attrs": { "href": link } }] },
                { "type": "text", "text": ". Custody records every decision on it." },
            ]},
            { "type": "paragraph", "content": [
                { "type": "text", "text":
                  "requested grant db-read to user:alice on billing-db for 8h (ticket jira:SEC-142): Quarterly audit (by alice; state: open)." },
            ]},
        ]}})
    );
}

#[test]
fn later_write_backs_comment_the_state_change_and_keep_the_property_current() {
    let update = update(false);
    let calls = connector().write_back(&update);
    assert_eq!(calls.len(), 2);
    assert_eq!(body_of(&calls[0])["state"], "approved");
    assert_eq!(
        body_of(&calls[1]),
        json!({ "body": { "type": "doc", "version": 1, "content": [
            { "type": "paragraph", "content": [
                { "type": "text", "text": "Custody case " },
                { "type": "text", "text": CASE, "marks": [{ "type": "link",
                  "attrs": { "href": update.case_url.clone().unwrap() } }] },
                { "type": "text", "text": ": approved (by bob; state: approved)." },
            ]},
        ]}})
    );
}

#[test]
fn write_back_recipients_are_issue_keys_kept_inside_their_path_segment() {
    let connector = connector();
    let mut update = update(false);
    update.recipient = "jira:SEC-7".into();
    assert_eq!(
        connector.write_back(&update)[1].url,
        "https://example.atlassian.net/rest/api/3/issue/SEC-7/comment"
    );
    // What is not an issue key is written back to nowhere: no call with
    // the connector's credentials leaves the issue's own path.
    for recipient in [
        "SEC-7/../../admin?x=1",
        "..",
        "jira:..",
        " ",
        "SEC-",
        "-7",
        "sec-7",
        "SEC-7x",
        "SE C-7",
    ] {
        update.recipient = recipient.into();
        assert_eq!(connector.write_back(&update), Vec::new(), "{recipient}");
    }
    update.recipient = "AB_2-10".into();
    assert_eq!(
        connector.write_back(&update)[1].url,
        "https://example.atlassian.net/rest/api/3/issue/AB_2-10/comment"
    );
    // Without a case URL, the comment names the case without a link.
    update.recipient = "SEC-7".into();
    update.case_url = None;
    let calls = connector.write_back(&update);
    assert_eq!(
        body_of(&calls[0]),
        json!({ "case_id": CASE, "state": "approved" })
    );
    assert_eq!(
        body_of(&calls[1])["body"]["content"][0]["content"][1],
        json!({ "type": "text", "text": CASE })
    );
}

// --------------------------------------------------------------- proptest

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let connector = connector();
        let headers = headers_for(&body);
        let request = request(&headers, &body);
        let _ = connector.verify(&request, NOW);
        let _ = connector.parse(&request);
    }

    #[test]
    fn arbitrary_webhook_shapes_never_panic(
        event in prop_oneof![Just("jira:issue_created".to_string()), Just("jira:issue_updated".to_string()), ".{0,20}"],
        key in ".{0,12}",
        project in prop_oneof![Just("SEC".to_string()), ".{0,5}"],
        field in prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            ".{0,40}".prop_map(Value::from),
            ".{0,10}".prop_map(|text| json!({ "value": text })),
            ".{0,10}".prop_map(|text| json!([{ "name": text }, text])),
            ".{0,10}".prop_map(|text| json!({ "type": "doc", "content": [{ "content": [{ "text": text }] }] })),
        ],
        item_field in prop_oneof![Just("status".to_string()), Just("customfield_10041".to_string()), ".{0,10}"],
        to in prop_oneof![Just(Value::Null), ".{0,10}".prop_map(Value::from), any::<u32>().prop_map(Value::from)],
        timestamp in prop_oneof![Just(Value::from(NOW_MS)), any::<u64>().prop_map(Value::from), Just(Value::from(-1))],
    ) {
        let mut fields = issue_fields();
        fields["project"]["key"] = json!(project);
        fields["customfield_10041"] = field.clone();
        fields["customfield_10044"] = field;
        let body = json!({
            "timestamp": timestamp,
            "webhookEvent": event,
            "user": user(ALICE),
            "issue": { "id": "1", "key": key, "fields": fields },
            "changelog": { "id": 1, "items": [
                { "field": item_field, "fieldId": item_field, "to": to, "toString": "Approved" }
            ]},
        });
        let bytes = serde_json::to_vec(&body).unwrap();
        let headers = headers_for(&bytes);
        let request = request(&headers, &bytes);
        let connector = connector();
        let _ = connector.verify(&request, NOW);
        if let Ok(inbounds) = connector.parse(&request) {
            for inbound in inbounds {
                prop_assert!(!inbound.external_id.is_empty());
                prop_assert_eq!(inbound.external_user.as_str(), ALICE);
            }
        }
    }
}
