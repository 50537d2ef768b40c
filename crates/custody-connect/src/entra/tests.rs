use custody_core::model::{ChangeKind, PrincipalKind, SubjectKind};
use custody_core::observation::ObservedChange;
use custody_core::Timestamp;
use serde_json::{json, Value};

use super::pull::cursor_parts;
use super::*;
use crate::config::ConnectorConfig;
use crate::Headers;

const AUDITS: &str = include_str!("../../tests/fixtures/entra/directory-audits.json");
const CASE: &str = "AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b";

fn config(extra: &str) -> EntraConfig {
    let text = format!("[[connectors]]\nname = \"entra\"\nkind = \"entra\"\n{extra}\n");
    #[derive(serde::Deserialize)]
    struct File {
        connectors: Vec<ConnectorConfig>,
    }
    let file: File = toml::from_str(&text).unwrap();
    match file.connectors.into_iter().next().unwrap() {
        ConnectorConfig::Entra(config) => config,
        other => panic!("not entra: {other:?}"),
    }
}

fn entra(extra: &str) -> EntraSource {
    config(extra).source().unwrap()
}

fn summary(observation: &ObservedChange) -> (String, String, String) {
    (
        observation.external_id.clone(),
        observation.change.to_string(),
        observation.actor.id.clone(),
    )
}

fn malformed(result: Result<Parsed, Refusal>) -> String {
    match result {
        Err(Refusal::Malformed(message)) => message,
        other => panic!("expected a malformed-record refusal, got {other:?}"),
    }
}

/// One directoryAudit of `activity` by a user, on `targets`.
fn record(activity: &str, targets: Value, details: Value) -> Value {
    json!({
        "id": "Directory_test_0001",
        "category": "Test",
        "result": "success",
        "resultReason": "",
        "activityDisplayName": activity,
        "activityDateTime": "2026-11-03T09:00:00Z",
        "initiatedBy": {"app": null, "user": {"id": "0a-admin", "userPrincipalName": "admin@contoso.example"}},
        "targetResources": targets,
        "additionalDetails": details
    })
}

fn read(source: &EntraSource, records: &[Value]) -> Result<Parsed, Refusal> {
    source.parse_batch(&serde_json::to_vec(&json!({ "value": records })).unwrap())
}

#[test]
fn graphs_directory_audits_are_read_into_one_change_per_access_change() {
    let parsed = entra("").parse_batch(AUDITS.as_bytes()).unwrap();
    let got: Vec<(String, String, String)> = parsed.observations.iter().map(summary).collect();
    let expected = [
        (
            "Directory_7f3c1a90-1d2e-4b5f-9a6c-0e1d2c3b4a01_K2P4Q_100000001",
            "grant role:fe930be7-5e62-47db-91af-98c3a49a38b1 to user:heidi@contoso.example",
            "a1b2c3d4-0000-4000-8000-00000000ad01",
        ),
        (
            "Directory_7f3c1a90-1d2e-4b5f-9a6c-0e1d2c3b4a02_K2P4Q_100000002",
            "grant group:d4e5f6a7-0000-4000-8000-0000000000a1 to user:heidi@contoso.example",
            "a1b2c3d4-0000-4000-8000-00000000ad01",
        ),
        (
            "Directory_7f3c1a90-1d2e-4b5f-9a6c-0e1d2c3b4a03_K2P4Q_100000003",
            "create client_secret to service_account:e5f6a7b8-0000-4000-8000-0000000000b1",
            "a1b2c3d4-0000-4000-8000-00000000ad02",
        ),
        (
            "Directory_7f3c1a90-1d2e-4b5f-9a6c-0e1d2c3b4a04_K2P4Q_100000004",
            "create certificate to service_account:0e0e0e0e-0000-4000-8000-0000000000d3",
            "0d0d0d0d-0000-4000-8000-0000000000d2",
        ),
        (
            "Directory_7f3c1a90-1d2e-4b5f-9a6c-0e1d2c3b4a05_K2P4Q_100000005",
            "revoke role:9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3 to service_account:0d0d0d0d-0000-4000-8000-0000000000d2",
            "a1b2c3d4-0000-4000-8000-00000000ad01",
        ),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(id, change, actor)| (id.to_string(), change.to_string(), actor.to_string()))
        .collect();
    assert_eq!(got, expected);
    // `Update user` reads no access; a failed attempt changed nothing.
    assert_eq!(parsed.skipped, 2);

    let role = &parsed.observations[0];
    assert_eq!(role.action, "Add member to role");
    assert_eq!(
        role.occurred_at,
        Timestamp::parse("2026-11-03T08:30:12.456789Z").unwrap()
    );
    assert_eq!(role.actor.kind, Some(PrincipalKind::Human));
    assert_eq!(
        role.actor.display.as_deref(),
        Some("grace.admin@contoso.example")
    );
    // The en dash and the trailing space of Entra's activity name are not
    // an identifier's: the action is recorded in ASCII.
    let secret = &parsed.observations[2];
    assert_eq!(
        secret.action,
        "Update application - Certificates and secrets management"
    );
    assert_eq!(secret.change.subject().kind, SubjectKind::ServiceAccount);
    assert!(custody_core::observation::is_non_human_credential(
        &secret.change
    ));
    let by_app = &parsed.observations[3];
    assert_eq!(by_app.actor.kind, Some(PrincipalKind::Service));
    assert_eq!(by_app.actor.display.as_deref(), Some("deploy-pipeline"));
    assert_eq!(parsed.observations[4].change.kind(), ChangeKind::Revoke);
}

#[test]
fn a_bare_array_reads_as_graphs_answer_does() {
    let answer: Value = serde_json::from_str(AUDITS).unwrap();
    let bare = serde_json::to_vec(&answer["value"]).unwrap();
    let source = entra("");
    let from_bare = source.parse_batch(&bare).unwrap();
    let from_answer = source.parse_batch(AUDITS.as_bytes()).unwrap();
    assert_eq!(
        from_bare
            .observations
            .iter()
            .map(summary)
            .collect::<Vec<_>>(),
        from_answer
            .observations
            .iter()
            .map(summary)
            .collect::<Vec<_>>()
    );
    assert_eq!(from_bare.skipped, from_answer.skipped);
    for (body, expected) in [
        (&b"{\"values\": []}"[..], "not Microsoft Graph's list"),
        (&b"[1]"[..], "record 1: not a directoryAudit"),
        (&b"\xff"[..], "not UTF-8"),
    ] {
        let message = malformed(source.parse_batch(body));
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn users_can_be_named_by_object_id_and_changes_can_carry_a_resource() {
    let parsed = entra("subject_ids = \"id\"\nresource = \"contoso\"")
        .parse_batch(AUDITS.as_bytes())
        .unwrap();
    assert_eq!(
        parsed.observations[0].change.to_string(),
        "grant role:fe930be7-5e62-47db-91af-98c3a49a38b1 to user:b2c3d4e5-0000-4000-8000-0000000000e1 on contoso"
    );
}

#[test]
fn keys_added_and_removed_together_are_one_change_each() {
    let key = |id: &str, kind: &str| {
        format!("[KeyIdentifier={id},KeyType={kind},KeyUsage=Verify,DisplayName=k]")
    };
    let old =
        serde_json::to_string(&[key("k1", "Password"), key("k2", "AsymmetricX509Cert")]).unwrap();
    let new = serde_json::to_string(&[
        key("k2", "AsymmetricX509Cert"),
        key("k3", "Password"),
        key("k4", "AsymmetricX509Cert"),
    ])
    .unwrap();
    let parsed = read(
        &entra(""),
        &[record(
            "Update application \u{2013} Certificates and secrets management ",
            json!([{"id": "app-1", "type": "Application", "displayName": "exporter",
                    "modifiedProperties": [{"displayName": "KeyDescription", "oldValue": old, "newValue": new}]}]),
            json!([]),
        )],
    )
    .unwrap();
    let got: Vec<(String, String)> = parsed
        .observations
        .iter()
        .map(|observation| {
            (
                observation.external_id.clone(),
                observation.change.to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "Directory_test_0001/1".to_string(),
                "create client_secret to service_account:app-1".to_string()
            ),
            (
                "Directory_test_0001/2".to_string(),
                "create certificate to service_account:app-1".to_string()
            ),
            (
                "Directory_test_0001/3".to_string(),
                "delete client_secret to service_account:app-1".to_string()
            ),
        ]
    );
    // Keys that cannot be read: one change for the whole record.
    for (activity, expected) in [
        (
            "Update application \u{2013} Certificates and secrets management",
            "modify credential to service_account:app-1",
        ),
        (
            "Add service principal credentials",
            "create credential to service_account:app-1",
        ),
        (
            "Remove service principal credentials",
            "delete credential to service_account:app-1",
        ),
    ] {
        let parsed = read(
            &entra(""),
            &[record(
                activity,
                json!([{"id": "app-1", "type": "ServicePrincipal",
                        "modifiedProperties": [{"displayName": "KeyDescription", "oldValue": "not a list", "newValue": "[1]"}]}]),
                json!([]),
            )],
        )
        .unwrap();
        assert_eq!(parsed.observations.len(), 1, "{activity}");
        assert_eq!(parsed.observations[0].change.to_string(), expected);
        assert_eq!(parsed.observations[0].external_id, "Directory_test_0001");
    }
}

#[test]
fn pim_activations_are_read_with_their_justification_and_ticket_and_eligibility_is_skipped() {
    let source = entra("");
    let mut activation = record(
        "Add member to role completed (PIM activation)",
        json!([
            {"id": "role-obj", "type": "Role", "displayName": "Global Administrator"},
            {"id": "0b-user", "type": "User", "userPrincipalName": "judy@contoso.example",
             "modifiedProperties": [{"displayName": "Role.TemplateId", "newValue": "\"62e90394-69f5-4237-9190-012177145e10\""}]}
        ]),
        json!([
            {"key": "TicketSystem", "value": "jira"},
            {"key": "TicketNumber", "value": "SEC-77"},
            {"key": "RoleDefinitionOriginId", "value": "62e90394-69f5-4237-9190-012177145e10"}
        ]),
    );
    activation["resultReason"] = json!(format!("Incident response for {CASE}"));
    activation["initiatedBy"] = json!({"user": null, "app": {"appId": null, "displayName": "MS-PIM", "servicePrincipalId": "pim-sp"}});
    let parsed = read(&source, &[activation]).unwrap();
    let observation = &parsed.observations[0];
    assert_eq!(
        observation.change.to_string(),
        "grant role:62e90394-69f5-4237-9190-012177145e10 to user:judy@contoso.example"
    );
    assert_eq!(
        observation.action,
        "Add member to role completed (PIM activation)"
    );
    assert_eq!(
        observation.case_hint.as_ref().map(ToString::to_string),
        Some(CASE.to_string())
    );
    assert_eq!(
        observation
            .references
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["jira:SEC-77"]
    );
    assert_eq!(observation.actor.id, "pim-sp");

    let eligible = record(
        "Add eligible member to role in PIM completed (permanent)",
        json!([{"id": "0b-user", "type": "User", "userPrincipalName": "judy@contoso.example"}]),
        json!([]),
    );
    let parsed = read(&source, &[eligible]).unwrap();
    assert_eq!((parsed.observations.len(), parsed.skipped), (0, 1));
}

#[test]
fn a_group_of_a_nested_group_and_a_role_without_template_are_found() {
    let source = entra("");
    let nested = record(
        "Remove member from group",
        json!([
            {"id": "child-group", "type": "Group", "displayName": "Contractors"},
            {"id": "parent-group", "type": "Group", "displayName": "All staff"}
        ]),
        json!([]),
    );
    let role_target = record(
        "Add member to role",
        json!([
            {"id": "0c-device", "type": "Device"},
            {"id": "role-object-id", "type": "Role"}
        ]),
        json!([]),
    );
    let parsed = read(&source, &[nested, role_target]).unwrap();
    let changes: Vec<String> = parsed
        .observations
        .iter()
        .map(|observation| observation.change.to_string())
        .collect();
    assert_eq!(
        changes,
        [
            "revoke group:parent-group to group:child-group",
            "grant role:role-object-id to workload:0c-device"
        ]
    );
}

#[test]
fn records_without_what_their_activity_needs_are_refused_naming_the_record() {
    let source = entra("");
    let user =
        json!([{"id": "0b-user", "type": "User", "userPrincipalName": "judy@contoso.example"}]);
    let in_group = json!([{"id": "0b-user", "type": "User", "userPrincipalName": "judy@contoso.example",
        "modifiedProperties": [{"displayName": "Group.ObjectID", "newValue": "\"g\""}]}]);
    let mut no_initiator = record("Add member to group", in_group.clone(), json!([]));
    no_initiator["initiatedBy"] = Value::Null;
    let mut anonymous = record("Add member to group", in_group.clone(), json!([]));
    anonymous["initiatedBy"] = json!({"user": {"id": null}, "app": null});
    let mut bad_time = record("Add member to group", in_group.clone(), json!([]));
    bad_time["activityDateTime"] = json!("03/11/2026 09:00");
    let mut bad_id = record("Add member to group", in_group.clone(), json!([]));
    bad_id["id"] = json!("Directory\u{7}x");
    let cases: Vec<(Value, &str)> = vec![
        (
            record("Add member to group", user.clone(), json!([])),
            "names no group",
        ),
        (
            record("Add member to group", json!([]), json!([])),
            "no member target",
        ),
        (
            record("Add member to role", user.clone(), json!([])),
            "names no role",
        ),
        (
            record(
                "Add member to role",
                json!([{"id": "r", "type": "Role"}]),
                json!([]),
            ),
            "no member target",
        ),
        (
            record(
                "Add member to role",
                json!([{"id": "x", "type": "Application", "modifiedProperties": [{"displayName": "Role.TemplateId", "newValue": "\"t\""}]}]),
                json!([]),
            ),
            "not a User, ServicePrincipal, Group or Device",
        ),
        (
            record("Add service principal credentials", user.clone(), json!([])),
            "no `Application` or `ServicePrincipal` target",
        ),
        (no_initiator, "no `initiatedBy`"),
        (anonymous, "neither a user nor an app"),
        (bad_time, "its `activityDateTime`"),
        (bad_id, "a record's ID"),
        (
            record(
                "Add member to group",
                json!([{"id": "0b-user", "type": "User", "userPrincipalName": "jüdy@contoso.example",
                        "modifiedProperties": [{"displayName": "Group.ObjectID", "newValue": "\"g\""}]}]),
                json!([]),
            ),
            "its subject",
        ),
    ];
    for (record, expected) in cases {
        let message = malformed(read(&source, std::slice::from_ref(&record)));
        assert!(message.starts_with("record 1: "), "{message}");
        assert!(message.contains(expected), "{record}\n{message}");
    }
}

#[test]
fn entra_takes_no_pushes_and_settings_are_checked() {
    let source = entra("");
    let headers = Headers::new([("authorization", "Bearer x")]);
    let request = Request {
        endpoint: "events",
        headers: &headers,
        body: b"{}",
        tls: true,
    };
    assert!(matches!(
        source.authenticate(&request),
        Err(Refusal::Unauthenticated(_))
    ));
    assert!(source.pull().is_none());
    assert!(entra("bearer_token = \"eyJ0\"").pull().is_some());
    assert!(entra("bearer_token = \"eyJ0\"\npoll = false")
        .pull()
        .is_none());
    for (extra, expected) in [
        ("poll = true", "polling needs `bearer_token`"),
        ("bearer_token = \"a b\"", "`bearer_token` is empty"),
        (
            "bearer_token = \"t\"\ngraph_url = \"http://graph.example\"",
            "plain HTTP",
        ),
        (
            "bearer_token = \"t\"\ngraph_url = \"https://graph.example/v1.0\"",
            "scheme and host only",
        ),
        ("bearer_token = \"t\"\npage_size = 0", "`page_size`"),
        (
            "bearer_token = \"t\"\nlookback_seconds = 0",
            "`lookback_seconds`",
        ),
        (
            "bearer_token = \"t\"\ninterval_seconds = 0",
            "`interval_seconds`",
        ),
        ("resource = \" x\"", "`resource`"),
    ] {
        let error = config(extra).source().unwrap_err();
        assert!(error.contains(expected), "{extra}: {error}");
    }
}

#[test]
fn the_poll_reads_oldest_first_follows_next_links_and_overlaps_the_newest_record() {
    let source = entra("bearer_token = \"eyJ0\"\ngraph_url = \"https://graph.example\"\npage_size = 2\nlookback_seconds = 3600\noverlap_seconds = 600");
    let pull = source.pull().unwrap();
    let now = Timestamp::parse("2026-11-03T10:00:00.5Z").unwrap();
    let first = pull.request(None, now).unwrap();
    assert_eq!(
        first.url,
        "https://graph.example/v1.0/auditLogs/directoryAudits?$filter=activityDateTime%20ge%202026-11-03T09%3A00%3A00Z&$orderby=activityDateTime%20asc&$top=2"
    );
    assert_eq!(
        first.headers[0],
        ("Authorization".to_string(), "Bearer eyJ0".to_string())
    );

    let answer: Value = serde_json::from_str(AUDITS).unwrap();
    let records = answer["value"].as_array().unwrap();
    let next = "https://graph.example/v1.0/auditLogs/directoryAudits?$skiptoken=abc";
    let page_one = json!({"value": &records[..2], "@odata.nextLink": next});
    let page = pull
        .page(
            None,
            200,
            &Headers::default(),
            &serde_json::to_vec(&page_one).unwrap(),
        )
        .unwrap();
    assert!(page.more);
    assert_eq!(page.parsed.observations.len(), 2);
    let cursor = page.cursor.unwrap();
    assert_eq!(
        cursor_parts(&cursor),
        (
            Some(Timestamp::parse("2026-11-03T08:31:00Z").unwrap()),
            Some(next.to_string())
        )
    );
    assert_eq!(pull.request(Some(&cursor), now).unwrap().url, next);

    // The last page: no nextLink; the newest record read is kept, and the
    // next poll starts the overlap before it.
    let page_two = json!({"value": &records[2..]});
    let page = pull
        .page(
            Some(&cursor),
            200,
            &Headers::default(),
            &serde_json::to_vec(&page_two).unwrap(),
        )
        .unwrap();
    assert!(!page.more);
    let cursor = page.cursor.unwrap();
    assert_eq!(
        cursor_parts(&cursor),
        (
            Some(Timestamp::parse("2026-11-03T08:56:00Z").unwrap()),
            None
        )
    );
    assert!(pull
        .request(Some(&cursor), now)
        .unwrap()
        .url
        .contains("ge%202026-11-03T08%3A46%3A00Z"));
    // An empty page keeps the newest record read.
    let page = pull
        .page(Some(&cursor), 200, &Headers::default(), br#"{"value": []}"#)
        .unwrap();
    assert_eq!(page.cursor.as_deref(), Some(cursor.as_str()));

    // A nextLink elsewhere is not followed with the token; errors keep the cursor.
    let elsewhere = json!({"value": [], "@odata.nextLink": "https://attacker.example/v1.0/auditLogs/directoryAudits?x=1"});
    let refusal = pull
        .page(
            None,
            200,
            &Headers::default(),
            &serde_json::to_vec(&elsewhere).unwrap(),
        )
        .unwrap_err();
    assert!(
        refusal.to_string().contains("not this Graph's"),
        "{refusal}"
    );
    let refusal = pull
        .page(
            None,
            429,
            &Headers::new([("retry-after", "30")]),
            br#"{"error":{"code":"TooManyRequests","message":"Too many requests"}}"#,
        )
        .unwrap_err();
    assert!(refusal.to_string().contains("429 to a poll"), "{refusal}");
    assert!(
        refusal.to_string().contains("Retry-After: 30 s"),
        "{refusal}"
    );
    let refusal = pull
        .page(None, 401, &Headers::default(), br#"{"error":{"code":"InvalidAuthenticationToken","message":"Lifetime validation failed, the token is expired."}}"#)
        .unwrap_err();
    assert!(matches!(refusal, Refusal::Unauthenticated(_)));
    assert!(
        refusal.to_string().contains("InvalidAuthenticationToken"),
        "{refusal}"
    );
}
