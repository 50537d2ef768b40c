//! The ServiceNow connector, IO-free: authentication, the window, every
//! documented message, and the Table API calls of the write-back.

use std::str::FromStr;

use base64::Engine;
use custody_core::model::{Change, ChangeKind, Subject, SubjectKind, Ticket};
use custody_core::{CaseId, Timestamp};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::config::ConnectorConfig;
use crate::{Action, Headers, Target};

const SECRET: &str = "business-rule-hmac-key-0123456789";
const RITM_SYS_ID: &str = "8d4c1a2b3c4d5e6f708192a3b4c5d6e7";
const TASK_SYS_ID: &str = "1f2e3d4c5b6a79880716253443526170";
const ALICE: &str = "62826bf03710200044e0bfc8bcbe5df1";
const BOB: &str = "46d44a23a9fe19810012d100cca80666";
const FULFILLER: &str = "5137153cc611227c000bbd1bd8cd2005";
/// 2026-11-30 10:02:40 UTC.
const UPDATED_UNIX: u64 = 1_796_032_960;
const CASE: &str = "AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b71";

fn config_toml(extra: &str) -> String {
    format!(
        r#"
name = "snow"
kind = "servicenow"
secret = "{SECRET}"
instance_url = "https://example.service-now.com"
api_username = "custody.integration"
api_password = "api-password"
{extra}
"#
    )
}

fn config(extra: &str) -> ServiceNowConfig {
    match toml::from_str::<ConnectorConfig>(&config_toml(extra)).unwrap() {
        ConnectorConfig::Servicenow(config) => config,
        other => panic!("not a servicenow config: {other:?}"),
    }
}

fn connector(extra: &str) -> ServiceNow {
    ServiceNow::new(&config(extra)).unwrap()
}

fn user(sys_id: &str, email: &str) -> Value {
    json!({"sys_id": sys_id, "email": email})
}

fn access_fields() -> Value {
    json!({
        "custody_subject_kind": "user",
        "custody_subject": "alice",
        "custody_entitlement": "admins-prod",
        "custody_change": "grant",
        "custody_resource": "",
        "custody_duration": "8h",
        "description": "on-call rotation"
    })
}

/// A request item just submitted, as the business rule posts it on insert.
fn ritm_insert() -> Value {
    json!({
        "table": "sc_req_item",
        "operation": "insert",
        "sys_id": RITM_SYS_ID,
        "number": "RITM0010001",
        "state": "1",
        "approval": "requested",
        "sys_created_on": "2026-11-30 09:58:12",
        "sys_updated_on": "2026-11-30 09:58:12",
        "sys_mod_count": "0",
        "correlation_id": "",
        "opened_by": user(ALICE, "alice@example.com"),
        "updated_by": user(ALICE, "alice@example.com"),
        "approver": null,
        "request_item": null,
        "close_notes": "",
        "fields": access_fields(),
        "previous": null
    })
}

/// The same item once its approver approved it.
fn ritm_approved() -> Value {
    let mut message = ritm_insert();
    message["operation"] = "update".into();
    message["approval"] = "approved".into();
    message["sys_updated_on"] = "2026-11-30 10:02:40".into();
    message["sys_mod_count"] = "2".into();
    message["updated_by"] = user(BOB, "bob@example.com");
    message["approver"] = user(BOB, "bob@example.com");
    message["previous"] = json!({"state": "1", "approval": "requested", "fields": access_fields()});
    message
}

/// A catalog task of the item, closed by the fulfiller.
fn task_closed(state: &str) -> Value {
    json!({
        "table": "sc_task",
        "operation": "update",
        "sys_id": TASK_SYS_ID,
        "number": "SCTASK0010001",
        "state": state,
        "approval": "not requested",
        "sys_created_on": "2026-11-30 10:02:41",
        "sys_updated_on": "2026-11-30 10:02:40",
        "sys_mod_count": 4,
        "correlation_id": "",
        "opened_by": user(BOB, "bob@example.com"),
        "updated_by": user(FULFILLER, "fulfiller@example.com"),
        "approver": null,
        "request_item": {"sys_id": RITM_SYS_ID, "number": "RITM0010001"},
        "close_notes": "added to admins-prod",
        "fields": {},
        "previous": {"state": "2", "approval": "not requested", "fields": {}}
    })
}

fn body(message: &Value) -> Vec<u8> {
    serde_json::to_vec(message).unwrap()
}

fn sign(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(signature::hmac_sha256(SECRET.as_bytes(), &[body]))
}

fn signed_headers(body: &[u8]) -> Headers {
    Headers::new([
        ("X-Custody-Signature", sign(body)),
        ("Content-Type", "application/json".into()),
    ])
}

fn request<'a>(headers: &'a Headers, body: &'a [u8]) -> Request<'a> {
    Request {
        endpoint: "webhook",
        headers,
        body,
        tls: true,
    }
}

fn parse(connector: &ServiceNow, message: &Value) -> Result<Vec<Inbound>, Refusal> {
    let body = body(message);
    let headers = signed_headers(&body);
    connector.parse(&request(&headers, &body))
}

fn ticket() -> Ticket {
    Ticket::from_str(&format!("servicenow:RITM0010001/{RITM_SYS_ID}")).unwrap()
}

fn change() -> Change {
    Change::new(
        Subject {
            kind: SubjectKind::User,
            id: "alice".into(),
        },
        ChangeKind::Grant,
        "admins-prod".into(),
        None,
        Some(8 * 3600),
    )
    .unwrap()
}

fn at(text: &str) -> Option<Timestamp> {
    Some(Timestamp::parse(text).unwrap())
}

fn the_request() -> Inbound {
    Inbound {
        external_id: format!("{RITM_SYS_ID}:request"),
        external_user: ALICE.into(),
        occurred_at: at("2026-11-30T09:58:12Z"),
        action: Action::Request {
            change: change(),
            justification: Some("on-call rotation".into()),
            ticket: Some(ticket()),
            case: None,
        },
        reply_to: None,
    }
}

fn malformed(result: Result<Vec<Inbound>, Refusal>) -> String {
    match result {
        Err(Refusal::Malformed(text)) => text,
        other => panic!("expected a malformed refusal, got {other:?}"),
    }
}

// --- configuration ---

#[test]
fn the_documented_configuration_builds_and_is_a_servicenow_ticket_system() {
    let built = ConnectorConfig::Servicenow(config("")).build().unwrap();
    assert_eq!(built.kind(), "servicenow");
    assert_eq!(built.ticket_system(), Some("servicenow"));
    let config = config("");
    assert_eq!(config.request_table, "sc_req_item");
    assert_eq!(config.task_table, "sc_task");
    assert_eq!(config.case_id_field, "correlation_id");
    assert_eq!(config.window_seconds, 300);
    assert_eq!(config.fields, FieldMapping::default());
}

#[test]
fn bad_settings_are_refused_naming_the_setting() {
    let cases: &[(&str, &str)] = &[
        ("secret = \"short\"", "secret must be at least 16"),
        (
            "instance_url = \"http://example.service-now.com\"",
            "must be https://",
        ),
        (
            "instance_url = \"https://example.service-now.com/api\"",
            "base URL alone",
        ),
        (
            "instance_url = \"https://user@example.service-now.com\"",
            "base URL alone",
        ),
        ("api_token = \"tok\"", "not both"),
        ("request_table = \"sc-req-item\"", "request_table"),
        ("task_table = \"sc_req_item\"", "must differ"),
        ("case_id_field = \"Correlation ID\"", "case_id_field"),
        (
            "inbound_auth = \"basic\"",
            "secret is for inbound_auth = \"hmac\"",
        ),
        (
            "inbound_username = \"x\"",
            "are for inbound_auth = \"basic\"",
        ),
        ("[states]\napproved = \"rejected\"", "two different values"),
        (
            "[states]\nclosed_incomplete = [\"3\"]",
            "both closed_complete and closed_incomplete",
        ),
        ("[fields]\nsubject_id = \"\"", "fields.subject_id"),
    ];
    for (extra, expected) in cases {
        // A key given twice is a TOML error, so replace the default line.
        let text = config_toml("");
        let key = extra.split([' ', '\n']).next().unwrap();
        let text = if text.contains(&format!("\n{key} = ")) {
            text.lines()
                .map(|line| {
                    if line.starts_with(&format!("{key} = ")) {
                        *extra
                    } else {
                        line
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            format!("{text}\n{extra}\n")
        };
        let config = match toml::from_str::<ConnectorConfig>(&text) {
            Ok(ConnectorConfig::Servicenow(config)) => config,
            other => panic!("{extra}: {other:?}"),
        };
        let error = ServiceNow::new(&config)
            .err()
            .unwrap_or_else(|| panic!("{extra} was accepted"));
        assert!(error.contains(expected), "{extra}: {error}");
        assert!(
            error.starts_with("connector `snow` (servicenow): "),
            "{error}"
        );
    }
    // A misspelt key is refused rather than ignored.
    assert!(
        toml::from_str::<ConnectorConfig>(&config_toml("tls_terminated_by_prxy = true")).is_err()
    );
    assert!(toml::from_str::<ConnectorConfig>(&config_toml("[fields]\nsubjet = \"x\"")).is_err());
}

#[test]
fn loopback_instances_may_use_plain_http() {
    for url in [
        "http://127.0.0.1:8080",
        "http://localhost:9",
        "http://[::1]:80",
    ] {
        let text = config_toml("").replace("https://example.service-now.com", url);
        let ConnectorConfig::Servicenow(config) = toml::from_str(&text).unwrap() else {
            unreachable!()
        };
        ServiceNow::new(&config).unwrap_or_else(|error| panic!("{url}: {error}"));
    }
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let config = config("");
    let debug = format!("{config:?}");
    assert!(
        !debug.contains(SECRET) && !debug.contains("api-password"),
        "{debug}"
    );
}

// --- authentication and the window ---

#[test]
fn a_valid_signature_inside_the_window_is_accepted_with_a_stable_fingerprint() {
    let connector = connector("");
    let body = body(&ritm_approved());
    let headers = signed_headers(&body);
    let signed = connector
        .verify(&request(&headers, &body), UPDATED_UNIX + 10)
        .unwrap();
    assert_eq!(signed.signed_at, UPDATED_UNIX);
    assert_eq!(
        signed.fingerprint,
        signature::hmac_sha256(SECRET.as_bytes(), &[&body]).to_vec()
    );
    // The same request again gives the same fingerprint, which the replay
    // guard refuses the second time.
    let again = connector
        .verify(&request(&headers, &body), UPDATED_UNIX + 20)
        .unwrap();
    assert_eq!(again.fingerprint, signed.fingerprint);
    let mut guard = crate::replay::ReplayGuard::new(300, 100);
    guard.admit(&signed.fingerprint, UPDATED_UNIX + 10).unwrap();
    assert_eq!(
        guard.admit(&again.fingerprint, UPDATED_UNIX + 20),
        Err(Refusal::Replayed)
    );
}

#[test]
fn a_wrong_missing_or_doubled_signature_is_refused() {
    let connector = connector("");
    let body = body(&ritm_approved());
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let good = sign(&body);
    let other_key = base64::engine::general_purpose::STANDARD
        .encode(signature::hmac_sha256(b"another-key-0123456789", &[&body]));
    let cases: Vec<(Headers, &[u8], &str)> = vec![
        (Headers::default(), &body, "missing"),
        (
            Headers::new([("X-Custody-Signature", good.as_str())]),
            &tampered,
            "does not match",
        ),
        (
            Headers::new([("X-Custody-Signature", other_key.as_str())]),
            &body,
            "does not match",
        ),
        (
            Headers::new([("X-Custody-Signature", "not base64!")]),
            &body,
            "not base64",
        ),
        (
            Headers::new([("X-Custody-Signature", "c2hvcnQ=")]),
            &body,
            "32 bytes",
        ),
        (
            Headers::new([
                ("X-Custody-Signature", good.as_str()),
                ("x-custody-signature", good.as_str()),
            ]),
            &body,
            "more than once",
        ),
    ];
    for (headers, body, expected) in cases {
        match connector.verify(&request(&headers, body), UPDATED_UNIX) {
            Err(Refusal::Unauthenticated(text)) => {
                assert!(text.contains(expected), "{expected}: {text}")
            }
            other => panic!("{expected}: {other:?}"),
        }
    }
}

#[test]
fn a_message_outside_the_window_is_stale_on_either_side() {
    let connector = connector("");
    let body = body(&ritm_approved());
    let headers = signed_headers(&body);
    for now in [UPDATED_UNIX + 301, UPDATED_UNIX - 301] {
        let refusal = connector
            .verify(&request(&headers, &body), now)
            .unwrap_err();
        assert!(
            matches!(
                refusal,
                Refusal::Stale {
                    signed_at: UPDATED_UNIX,
                    ..
                }
            ),
            "{refusal:?}"
        );
        assert_eq!(refusal.status(), 401);
    }
    connector
        .verify(&request(&headers, &body), UPDATED_UNIX + 300)
        .unwrap();
    // The window is configurable.
    let patient = self::connector("window_seconds = 3600");
    patient
        .verify(&request(&headers, &body), UPDATED_UNIX + 3000)
        .unwrap();
}

#[test]
fn a_signed_body_that_is_not_a_message_is_malformed_not_accepted() {
    let connector = connector("");
    let body = b"{\"hello\": 1}".to_vec();
    let headers = signed_headers(&body);
    let refusal = connector
        .verify(&request(&headers, &body), UPDATED_UNIX)
        .unwrap_err();
    assert!(matches!(refusal, Refusal::Malformed(_)), "{refusal:?}");
}

fn basic_connector(extra: &str) -> ServiceNow {
    let text = config_toml(extra).replace(
        &format!("secret = \"{SECRET}\""),
        "inbound_auth = \"basic\"\ninbound_username = \"servicenow\"\ninbound_password = \"inbound-password-0123\"",
    );
    let ConnectorConfig::Servicenow(config) = toml::from_str(&text).unwrap() else {
        unreachable!()
    };
    ServiceNow::new(&config).unwrap()
}

fn basic(credentials: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

#[test]
fn basic_auth_is_accepted_over_tls_only() {
    let connector = basic_connector("");
    let body = body(&ritm_approved());
    let headers = Headers::new([("Authorization", basic("servicenow:inbound-password-0123"))]);
    let over_tls = request(&headers, &body);
    let signed = connector.verify(&over_tls, UPDATED_UNIX).unwrap();
    // Every message carries the same credentials, so the fingerprint is
    // the body's digest: two updates differ, a replay does not.
    assert_eq!(
        signed.fingerprint,
        custody_core::id::Sha256Hash::of(&body).0.to_vec()
    );
    let plain = Request {
        tls: false,
        ..over_tls
    };
    match connector.verify(&plain, UPDATED_UNIX) {
        Err(Refusal::Unauthenticated(text)) => assert!(text.contains("plain HTTP"), "{text}"),
        other => panic!("{other:?}"),
    }
    // Unless the deployment says TLS ends at a trusted proxy.
    basic_connector("tls_terminated_by_proxy = true")
        .verify(&plain, UPDATED_UNIX)
        .unwrap();
    for wrong in [
        basic("servicenow:inbound-password-0124"),
        basic("servicenow:inbound-password-012"),
        basic("servicenow"),
        basic("other:inbound-password-0123"),
        "Bearer inbound-password-0123".into(),
        "Basic %%%".into(),
    ] {
        let headers = Headers::new([("Authorization", wrong.as_str())]);
        let refusal = connector
            .verify(&request(&headers, &body), UPDATED_UNIX)
            .unwrap_err();
        assert!(
            matches!(refusal, Refusal::Unauthenticated(_)),
            "{wrong}: {refusal:?}"
        );
    }
    // An HMAC signature is no substitute for the configured basic auth.
    let headers = signed_headers(&body);
    assert!(connector
        .verify(&request(&headers, &body), UPDATED_UNIX)
        .is_err());
}

#[test]
fn the_size_limit_comes_from_the_configuration_and_refuses_before_any_mac() {
    let config = ConnectorConfig::Servicenow(config("max_body_bytes = 1024"));
    assert_eq!(config.max_body_bytes(), 1024);
    let refusal = crate::limits::check_size(1025, config.max_body_bytes()).unwrap_err();
    assert_eq!(refusal.status(), 413);
    crate::limits::check_size(1024, config.max_body_bytes()).unwrap();
}

// --- what each message means ---

#[test]
fn a_new_request_item_opens_a_case_with_its_ticket() {
    assert_eq!(
        parse(&connector(""), &ritm_insert()).unwrap(),
        vec![the_request()]
    );
}

#[test]
fn an_approval_by_the_approver_is_an_approve_of_the_items_ticket() {
    let inbound = parse(&connector(""), &ritm_approved()).unwrap();
    assert_eq!(
        inbound,
        vec![
            // The request again, under the item's one request ID: already
            // recorded unless this update overtook the insert.
            the_request(),
            Inbound {
                external_id: format!("{RITM_SYS_ID}@2:approval"),
                external_user: BOB.into(),
                occurred_at: at("2026-11-30T10:02:40Z"),
                action: Action::Approve {
                    target: Target::Ticket(ticket()),
                    comment: None,
                    chat: None,
                },
                reply_to: None,
            },
        ]
    );
}

#[test]
fn a_rejection_is_a_deny() {
    let mut message = ritm_approved();
    message["approval"] = "rejected".into();
    let inbound = parse(&connector(""), &message).unwrap();
    assert_eq!(inbound.len(), 2);
    assert_eq!(
        inbound[1].action,
        Action::Deny {
            target: Target::Ticket(ticket()),
            comment: None
        }
    );
    assert_eq!(inbound[1].external_user, BOB);
}

#[test]
fn an_update_that_leaves_the_approval_as_it_was_decides_nothing() {
    let mut message = ritm_approved();
    message["previous"]["approval"] = "approved".into();
    assert_eq!(
        parse(&connector(""), &message).unwrap(),
        vec![the_request()]
    );
    // Nor does a change to a value that is neither approved nor rejected.
    let mut message = ritm_approved();
    message["approval"] = "cancelled".into();
    assert_eq!(
        parse(&connector(""), &message).unwrap(),
        vec![the_request()]
    );
}

#[test]
fn without_an_approver_the_updater_is_the_one_who_decided() {
    let mut message = ritm_approved();
    message["approver"] = Value::Null;
    message["updated_by"] = user(FULFILLER, "fulfiller@example.com");
    let inbound = parse(&connector(""), &message).unwrap();
    assert_eq!(inbound[1].external_user, FULFILLER);
}

#[test]
fn users_can_be_known_by_email() {
    let inbound = parse(
        &connector("identify_users_by = \"email\""),
        &ritm_approved(),
    )
    .unwrap();
    assert_eq!(inbound[0].external_user, "alice@example.com");
    assert_eq!(inbound[1].external_user, "bob@example.com");
    let mut message = ritm_approved();
    message["approver"]["email"] = "".into();
    let text = malformed(parse(&connector("identify_users_by = \"email\""), &message));
    assert!(text.contains("`approver` has no email"), "{text}");
}

#[test]
fn a_case_id_in_the_correlation_field_links_the_item_but_decisions_bind_by_the_item() {
    let mut message = ritm_approved();
    message["correlation_id"] = CASE.into();
    message["previous"]["approval"] = "requested".into();
    let inbound = parse(&connector(""), &message).unwrap();
    let case = CaseId::from_str(CASE).unwrap();
    match &inbound[0].action {
        Action::Request {
            case: Some(bound),
            ticket: Some(_),
            ..
        } => assert_eq!(bound, &case),
        other => panic!("{other:?}"),
    }
    // The decision is the item's, whatever `correlation_id` says: anyone
    // who can write the field could otherwise point it at another case.
    assert_eq!(
        inbound[1].action,
        Action::Approve {
            target: Target::Ticket(ticket()),
            comment: None,
            chat: None
        }
    );
    // Another integration's correlation ID is no case either.
    message["correlation_id"] = "INC-ext-42".into();
    let inbound = parse(&connector(""), &message).unwrap();
    assert!(matches!(
        &inbound[1].action,
        Action::Approve {
            target: Target::Ticket(_),
            ..
        }
    ));
}

#[test]
fn mapped_fields_edited_later_are_a_ticket_update_with_the_change_they_describe() {
    let mut message = ritm_approved();
    message["previous"]["approval"] = "approved".into();
    message["sys_mod_count"] = "5".into();
    message["updated_by"] = user(FULFILLER, "fulfiller@example.com");
    message["fields"]["custody_entitlement"] = "root-prod".into();
    message["fields"]["custody_duration"] = "".into();
    let inbound = parse(&connector(""), &message).unwrap();
    let edited = Change::new(
        Subject {
            kind: SubjectKind::User,
            id: "alice".into(),
        },
        ChangeKind::Grant,
        "root-prod".into(),
        None,
        None,
    )
    .unwrap();
    assert_eq!(inbound.len(), 2, "{inbound:?}");
    assert_eq!(
        inbound[1],
        Inbound {
            external_id: format!("{RITM_SYS_ID}@5:fields"),
            external_user: FULFILLER.into(),
            occurred_at: at("2026-11-30T10:02:40Z"),
            action: Action::TicketUpdated {
                ticket: ticket(),
                change: edited,
            },
            reply_to: None,
        }
    );
    // An edit of the justification alone changes no change.
    let mut message = ritm_approved();
    message["previous"]["approval"] = "approved".into();
    message["fields"]["description"] = "reworded".into();
    assert_eq!(parse(&connector(""), &message).unwrap().len(), 1);
    // Spacing and a field that was absent and is now empty are no edit.
    let mut message = ritm_approved();
    message["previous"]["approval"] = "approved".into();
    message["fields"]["custody_subject"] = " alice ".into();
    message["previous"]["fields"]
        .as_object_mut()
        .unwrap()
        .remove("custody_resource");
    assert_eq!(parse(&connector(""), &message).unwrap().len(), 1);
}

#[test]
fn a_task_closed_complete_or_incomplete_is_an_execution_of_the_items_case() {
    let connector = connector("");
    for (state, completed) in [("3", true), ("4", false)] {
        assert_eq!(
            parse(&connector, &task_closed(state)).unwrap(),
            vec![Inbound {
                external_id: format!("{TASK_SYS_ID}@4:execution"),
                external_user: FULFILLER.into(),
                occurred_at: at("2026-11-30T10:02:40Z"),
                action: Action::Execute {
                    target: Target::Ticket(ticket()),
                    comment: Some("added to admins-prod".into()),
                    completed,
                },
                reply_to: None,
            }]
        );
    }
    // Closed skipped, a task still open, a task whose state did not change
    // and a task just created execute nothing.
    assert_eq!(parse(&connector, &task_closed("7")).unwrap(), vec![]);
    assert_eq!(parse(&connector, &task_closed("2")).unwrap(), vec![]);
    let mut unchanged = task_closed("3");
    unchanged["previous"]["state"] = "3".into();
    assert_eq!(parse(&connector, &unchanged).unwrap(), vec![]);
    let mut created = task_closed("3");
    created["operation"] = "insert".into();
    created["previous"] = Value::Null;
    assert_eq!(parse(&connector, &created).unwrap(), vec![]);
    // A case ID carried through from the item does not redirect the
    // execution: it is the item's.
    let mut carried = task_closed("3");
    carried["correlation_id"] = CASE.into();
    carried["close_notes"] = "".into();
    assert_eq!(
        parse(&connector, &carried).unwrap()[0].action,
        Action::Execute {
            target: Target::Ticket(ticket()),
            comment: None,
            completed: true
        }
    );
}

#[test]
fn states_and_tables_are_configurable() {
    let connector = connector(
        "request_table = \"u_access_request\"\ntask_table = \"u_access_task\"\n[states]\nclosed_complete = [\"10\"]\nclosed_incomplete = [\"11\", \"12\"]\napproved = \"ok\"\nrejected = \"no\"",
    );
    let mut task = task_closed("12");
    task["table"] = "u_access_task".into();
    assert!(matches!(
        parse(&connector, &task).unwrap()[0].action,
        Action::Execute {
            completed: false,
            ..
        }
    ));
    let mut item = ritm_approved();
    item["table"] = "u_access_request".into();
    item["approval"] = "ok".into();
    assert!(matches!(
        parse(&connector, &item).unwrap()[1].action,
        Action::Approve { .. }
    ));
    // The default tables are now other tables: not for Custody.
    assert_eq!(parse(&connector, &ritm_approved()).unwrap(), vec![]);
}

#[test]
fn the_field_mapping_is_configurable() {
    let connector = connector(
        "[fields]\nsubject_kind = \"\"\nsubject_id = \"u_account\"\nentitlement = \"u_role\"\nchange = \"\"\nresource = \"u_system\"\nduration = \"\"\njustification = \"\"",
    );
    let mut message = ritm_insert();
    message["fields"] = json!({"u_account": "svc-deploy", "u_role": "deployer", "u_system": "prod", "custody_change": "revoke"});
    let inbound = parse(&connector, &message).unwrap();
    let expected = Change::new(
        Subject {
            kind: SubjectKind::User,
            id: "svc-deploy".into(),
        },
        ChangeKind::Grant,
        "deployer".into(),
        Some("prod".into()),
        None,
    )
    .unwrap();
    match &inbound[0].action {
        Action::Request {
            change,
            justification,
            ..
        } => {
            assert_eq!(change, &expected);
            assert_eq!(justification, &None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_item_without_mapped_fields_is_not_for_custody() {
    let mut message = ritm_approved();
    message["fields"] = json!({"description": "a new laptop"});
    message["previous"]["fields"] = json!({});
    assert_eq!(parse(&connector(""), &message).unwrap(), vec![]);
    let mut other_table = ritm_insert();
    other_table["table"] = "incident".into();
    assert_eq!(parse(&connector(""), &other_table).unwrap(), vec![]);
}

#[test]
fn kinds_are_read_in_any_case() {
    let mut message = ritm_insert();
    message["fields"]["custody_subject_kind"] = "Service_Account".into();
    message["fields"]["custody_change"] = "REVOKE".into();
    match &parse(&connector(""), &message).unwrap()[0].action {
        Action::Request { change, .. } => {
            assert_eq!(change.subject().kind, SubjectKind::ServiceAccount);
            assert_eq!(change.kind(), ChangeKind::Revoke);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_messages_are_refused_saying_what_is_wrong() {
    let connector = connector("");
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut message = ritm_approved();
        edit(&mut message);
        message
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!([1, 2]), "not the documented ServiceNow message"),
        (
            with(&|m| m["operation"] = "delete".into()),
            "unknown variant `delete`",
        ),
        (
            with(&|m| m["sys_id"] = "not-a-sys-id".into()),
            "sys_id is not 32 hexadecimal digits",
        ),
        (
            with(&|m| m["sys_updated_on"] = "yesterday".into()),
            "sys_updated_on is not a date-time",
        ),
        (
            with(&|m| m["sys_created_on"] = "2026-13-01 00:00:00".into()),
            "sys_created_on is not a date-time",
        ),
        (
            with(&|m| m["sys_mod_count"] = "two".into()),
            "sys_mod_count is not a whole number",
        ),
        (with(&|m| m["previous"] = Value::Null), "carries `previous`"),
        (
            with(&|m| m["aproval"] = "approved".into()),
            "unknown field `aproval`",
        ),
        (
            with(&|m| m["fields"]["custody_subject"] = "".into()),
            "`custody_subject` (the subject) is empty",
        ),
        (
            with(&|m| m["fields"]["custody_entitlement"] = Value::Null),
            "`custody_entitlement` (the entitlement) is empty",
        ),
        (
            with(&|m| m["fields"]["custody_subject_kind"] = "person".into()),
            "the field `custody_subject_kind`",
        ),
        (
            with(&|m| m["fields"]["custody_change"] = "borrow".into()),
            "the field `custody_change`",
        ),
        (
            with(&|m| m["fields"]["custody_duration"] = "forever".into()),
            "the field `custody_duration`",
        ),
        (
            with(&|m| m["fields"]["custody_subject"] = "alice\u{7}".into()),
            "do not make a change",
        ),
        (
            with(&|m| m["fields"]["custody_subject"] = 42.into()),
            "not the documented ServiceNow message",
        ),
        (
            with(&|m| m["number"] = "RITM 1".into()),
            "does not make a ticket key",
        ),
        (with(&|m| m["number"] = " ".into()), "number is empty"),
        (
            with(&|m| m["opened_by"] = Value::Null),
            "names no `opened_by`",
        ),
        (
            with(&|m| m["approver"]["sys_id"] = "".into()),
            "`approver` has no sys_id",
        ),
    ];
    for (message, expected) in cases {
        let text = malformed(parse(&connector, &message));
        assert!(text.contains(expected), "{expected}: {text}");
    }
    let mut task = task_closed("3");
    task["request_item"] = Value::Null;
    assert!(malformed(parse(&connector, &task)).contains("carries `request_item`"));
    let mut task = task_closed("3");
    task["request_item"]["sys_id"] = "RITM0010001".into();
    assert!(malformed(parse(&connector, &task)).contains("request_item.sys_id"));
    let mut task = task_closed("3");
    task["close_notes"] = "done\u{0}".into();
    assert!(malformed(parse(&connector, &task)).contains("close_notes"));
    let not_utf8 = [0xff, 0xfe, b'{'];
    let headers = signed_headers(&not_utf8);
    assert!(matches!(
        connector.parse(&request(&headers, &not_utf8)),
        Err(Refusal::Malformed(_))
    ));
}

#[test]
fn the_glide_date_format_and_rfc_3339_are_both_read() {
    let mut message = ritm_insert();
    message["sys_created_on"] = "2026-11-30T09:58:12Z".into();
    assert_eq!(
        parse(&connector(""), &message).unwrap(),
        vec![the_request()]
    );
}

proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let connector = connector("");
        let headers = signed_headers(&body);
        let _ = connector.verify(&request(&headers, &body), UPDATED_UNIX);
        let _ = connector.parse(&request(&headers, &body));
    }

    #[test]
    fn arbitrary_field_values_never_panic(
        subject in ".{0,80}",
        entitlement in ".{0,80}",
        kind in ".{0,20}",
        duration in ".{0,12}",
        updated in ".{0,30}",
        count in ".{0,8}",
    ) {
        let mut message = ritm_approved();
        message["fields"]["custody_subject"] = subject.into();
        message["fields"]["custody_entitlement"] = entitlement.into();
        message["fields"]["custody_change"] = kind.into();
        message["fields"]["custody_duration"] = duration.into();
        message["sys_updated_on"] = updated.into();
        message["sys_mod_count"] = count.into();
        let _ = parse(&connector(""), &message);
    }
}

// --- write-back ---

fn update(first: bool) -> Update {
    Update {
        case_id: CaseId::from_str(CASE).unwrap(),
        case_url: Some(format!("https://custody.example.com/cases/{CASE}")),
        recipient: ticket().key,
        event: "approved".into(),
        state: "approved".into(),
        actor: "bob".into(),
        summary: "bob approved grant admins-prod to user:alice for 8h".into(),
        first,
    }
}

#[test]
fn write_back_patches_the_item_with_the_case_id_and_a_work_note() {
    let calls = connector("").write_back(&update(true));
    let expected_body = json!({
        "correlation_id": CASE,
        "work_notes": format!(
            "[Custody] bob approved grant admins-prod to user:alice for 8h\nCase {CASE} is approved (approved by bob).\nhttps://custody.example.com/cases/{CASE}"
        ),
    });
    assert_eq!(
        calls,
        vec![Call {
            method: "PATCH",
            url: format!("https://example.service-now.com/api/now/table/sc_req_item/{RITM_SYS_ID}"),
            headers: vec![
                (
                    "Authorization".into(),
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD
                            .encode("custody.integration:api-password")
                    )
                ),
                ("Accept".into(), "application/json".into()),
                ("Content-Type".into(), "application/json".into()),
                ("X-no-response-body".into(), "true".into()),
            ],
            body: serde_json::to_vec(&expected_body).unwrap(),
        }]
    );
    // Later updates write the same field again (idempotent) and a note.
    let later = connector("").write_back(&update(false));
    assert_eq!(later.len(), 1);
    let body: Value = serde_json::from_slice(&later[0].body).unwrap();
    assert_eq!(body["correlation_id"], CASE);
}

#[test]
fn write_back_uses_the_configured_table_field_and_bearer_token() {
    let text =
        config_toml("request_table = \"u_access_request\"\ncase_id_field = \"u_custody_case\"")
            .replace(
                "api_username = \"custody.integration\"\napi_password = \"api-password\"",
                "api_token = \"oauth-access-token\"",
            );
    let ConnectorConfig::Servicenow(config) = toml::from_str(&text).unwrap() else {
        unreachable!()
    };
    let calls = ServiceNow::new(&config).unwrap().write_back(&update(true));
    assert_eq!(
        calls[0].url,
        format!("https://example.service-now.com/api/now/table/u_access_request/{RITM_SYS_ID}")
    );
    assert_eq!(
        calls[0].headers[0],
        ("Authorization".into(), "Bearer oauth-access-token".into())
    );
    let body: Value = serde_json::from_slice(&calls[0].body).unwrap();
    assert_eq!(body["u_custody_case"], CASE);
    assert!(body.get("correlation_id").is_none());
}

#[test]
fn a_ticket_without_a_sys_id_is_not_written_back() {
    let connector = connector("");
    for recipient in [
        "RITM0010001",
        "RITM0010001/",
        "RITM0010001/XYZ",
        "C0123/1700000000.000100",
    ] {
        let mut update = update(true);
        update.recipient = recipient.into();
        assert_eq!(connector.write_back(&update), vec![], "{recipient}");
    }
    // With the system prefix, the sys_id is still found.
    let mut update = update(true);
    update.recipient = format!(
        "servicenow:RITM0010001/{}",
        RITM_SYS_ID.to_ascii_uppercase()
    );
    assert!(connector.write_back(&update)[0].url.ends_with(RITM_SYS_ID));
}

#[test]
fn a_case_not_there_yet_or_a_failed_write_asks_for_the_message_again() {
    let connector = connector("");
    let outcome = |kind| Outcome {
        case_id: None,
        kind,
        principal: None,
        message: String::new(),
    };
    for (kinds, status) in [
        (vec![OutcomeKind::NotFound], 503),
        (
            vec![
                OutcomeKind::AlreadyRecorded {
                    state: "open".into(),
                },
                OutcomeKind::Refused {
                    rule: "internal".into(),
                },
            ],
            503,
        ),
        (
            vec![OutcomeKind::Refused {
                rule: custody_core::code::Code::SodRequesterCannotApprove.to_string(),
            }],
            200,
        ),
        (vec![OutcomeKind::Ignored, OutcomeKind::Unmapped], 200),
        (vec![], 200),
    ] {
        let answer = connector.answer(&kinds.iter().cloned().map(outcome).collect::<Vec<_>>());
        assert_eq!(answer.status, status, "{kinds:?}");
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["outcomes"].as_array().unwrap().len(), kinds.len());
        if status == 503 {
            assert_eq!(answer.content_type, Some("application/problem+json"));
            assert_eq!(body["type"], "urn:custody:problem:unavailable");
            assert_eq!(body["status"], 503);
        } else {
            assert_eq!(answer.content_type, Some("application/json"));
        }
    }
    assert_eq!(connector.refused(&Refusal::Malformed("x".into())), None);
}

#[test]
fn the_answer_lists_every_outcome_for_the_business_rules_log() {
    let case = CaseId::from_str(CASE).unwrap();
    let answer = connector("").answer(&[
        Outcome {
            case_id: Some(case.clone()),
            kind: OutcomeKind::AlreadyRecorded {
                state: "open".into(),
            },
            principal: Some("alice".into()),
            message: "already recorded".into(),
        },
        Outcome {
            case_id: Some(case),
            kind: OutcomeKind::Refused {
                rule: custody_core::code::Code::SodRequesterCannotApprove.to_string(),
            },
            principal: Some("alice".into()),
            message: "an approver may not approve their own request".into(),
        },
        Outcome {
            case_id: None,
            kind: OutcomeKind::Unmapped,
            principal: None,
            message: "not mapped".into(),
        },
    ]);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, Some("application/json"));
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        body,
        json!({"outcomes": [
            {"outcome": "already_recorded", "case_id": CASE, "principal": "alice", "message": "already recorded", "state": "open"},
            {"outcome": "refused", "case_id": CASE, "principal": "alice", "message": "an approver may not approve their own request", "rule": custody_core::code::Code::SodRequesterCannotApprove.to_string()},
            {"outcome": "unmapped", "case_id": null, "principal": null, "message": "not mapped"},
        ]})
    );
}
