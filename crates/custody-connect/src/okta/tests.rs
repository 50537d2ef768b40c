use custody_core::model::{ChangeKind, PrincipalKind, SubjectKind};
use custody_core::observation::ObservedChange;
use custody_core::Timestamp;

use super::event::role_entitlement;
use super::pull::next_link;
use super::*;
use crate::config::ConnectorConfig;
use crate::observe::raw_hash;
use crate::Headers;

const PAGE: &str = include_str!("../../tests/fixtures/okta/logs-page.json");
const HOOK: &str = include_str!("../../tests/fixtures/okta/event-hook.json");
const SECRET: &str = "hook-secret-0f1e2d3c";
const CASE: &str = "AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b";

fn config(extra: &str) -> OktaConfig {
    let text = format!("[[connectors]]\nname = \"okta\"\nkind = \"okta\"\n{extra}\n");
    #[derive(serde::Deserialize)]
    struct File {
        connectors: Vec<ConnectorConfig>,
    }
    let file: File = toml::from_str(&text).unwrap();
    match file.connectors.into_iter().next().unwrap() {
        ConnectorConfig::Okta(config) => config,
        other => panic!("not okta: {other:?}"),
    }
}

fn okta(extra: &str) -> OktaSource {
    config(extra).source().unwrap()
}

fn hook_source() -> OktaSource {
    okta(&format!("secret = \"{SECRET}\""))
}

fn polling_source(extra: &str) -> OktaSource {
    okta(&format!(
        "org_url = \"https://example.okta.com/\"\napi_token = \"00tok3n\"\nlimit = 3\n{extra}"
    ))
}

fn request<'a>(endpoint: &'a str, headers: &'a Headers, body: &'a [u8]) -> Request<'a> {
    Request {
        endpoint,
        headers,
        body,
        tls: true,
    }
}

fn summary(observation: &ObservedChange) -> (String, String, String) {
    (
        observation.external_id.clone(),
        observation.change.to_string(),
        observation.actor.id.clone(),
    )
}

fn event(event_type: &str, target: &str, debug_data: &str) -> String {
    format!(
        r#"{{"uuid":"9d0e0000-0000-4000-8000-000000000001","published":"2026-11-02T11:00:00.000Z","eventType":"{event_type}","actor":{{"id":"00uadm1n","type":"User","alternateId":"dana@example.com","displayName":"Dana"}},"outcome":{{"result":"SUCCESS"}},"target":{target},"debugContext":{{"debugData":{debug_data}}}}}"#
    )
}

fn read_one(source: &OktaSource, line: &str) -> Result<Parsed, Refusal> {
    source.parse_batch(line.as_bytes())
}

fn malformed(result: Result<Parsed, Refusal>) -> String {
    match result {
        Err(Refusal::Malformed(message)) => message,
        other => panic!("expected a malformed-record refusal, got {other:?}"),
    }
}

// --- settings ---

#[test]
fn the_defaults_take_event_hooks_only_and_poll_when_a_token_is_given() {
    let config = config(&format!("secret = \"{SECRET}\""));
    assert_eq!(config.authorization_header, "Authorization");
    assert_eq!(config.interval_seconds, 60);
    assert_eq!(config.lookback_seconds, 3600);
    assert_eq!(config.limit, 1000);
    assert_eq!(config.subject_ids, SubjectIds::Login);
    assert!(config.source().unwrap().pull().is_none());

    let polling = polling_source("");
    assert!(polling.pull().is_some());
    assert_eq!(polling.pull().unwrap().interval_seconds(), 60);
    assert!(polling_source("poll = false").pull().is_none());
    assert_eq!(
        polling_source("interval_seconds = 5")
            .pull()
            .unwrap()
            .interval_seconds(),
        5
    );
}

#[test]
fn settings_that_cannot_work_are_refused_at_start_up() {
    let cases: &[(&str, &str)] = &[
        ("secret = \"\"", "`secret` is empty"),
        ("secret = \"a\\nb\"", "control characters"),
        (
            "authorization_header = \"X Bad\"",
            "not an HTTP header name",
        ),
        ("poll = true", "polling needs `org_url`"),
        (
            "org_url = \"https://example.okta.com\"\npoll = true",
            "polling needs `api_token`",
        ),
        (
            "org_url = \"http://example.okta.com\"\napi_token = \"t\"",
            "plain HTTP",
        ),
        (
            "org_url = \"example.okta.com\"\napi_token = \"t\"",
            "not an https:// URL",
        ),
        (
            "org_url = \"https://example.okta.com/api\"\napi_token = \"t\"",
            "scheme and host only",
        ),
        (
            "org_url = \"https://example.okta.com\"\napi_token = \" \"",
            "`api_token` is empty",
        ),
        (
            "org_url = \"https://example.okta.com\"\napi_token = \"t\"\nlimit = 0",
            "`limit`",
        ),
        (
            "org_url = \"https://example.okta.com\"\napi_token = \"t\"\nlimit = 1001",
            "`limit`",
        ),
        (
            "org_url = \"https://example.okta.com\"\napi_token = \"t\"\nlookback_seconds = 0",
            "`lookback_seconds`",
        ),
        (
            "org_url = \"https://example.okta.com\"\napi_token = \"t\"\ninterval_seconds = 0",
            "`interval_seconds`",
        ),
        ("resource = \"two  spaces\"", "`resource`"),
    ];
    for (extra, expected) in cases {
        let error = config(extra).source().unwrap_err();
        assert!(error.contains(expected), "{extra}: {error}");
        assert!(error.starts_with("connector `okta` (okta): "), "{error}");
    }
    let unknown = toml::from_str::<toml::Value>(
        "[[connectors]]\nname = \"okta\"\nkind = \"okta\"\nsecert = \"x\"\n",
    )
    .unwrap();
    let parsed: Result<ConnectorConfig, _> = unknown["connectors"][0]
        .clone()
        .try_into::<ConnectorConfig>();
    assert!(parsed.is_err(), "a misspelt setting is refused");
    // Plain HTTP to the loopback interface is a local fake's.
    assert!(
        config("org_url = \"http://127.0.0.1:8080\"\napi_token = \"t\"")
            .source()
            .is_ok()
    );
}

// --- authentication and the handshake ---

#[test]
fn every_hook_request_must_carry_the_configured_authorization_header() {
    let source = hook_source();
    let good = Headers::new([("authorization", SECRET)]);
    assert!(source.authenticate(&request("events", &good, b"")).is_ok());
    for headers in [
        Headers::new([("authorization", "hook-secret-0f1e2d3")]),
        Headers::new([("authorization", &format!("Bearer {SECRET}"))]),
        Headers::new([("x-other", SECRET)]),
        Headers::new([("authorization", SECRET), ("authorization", SECRET)]),
    ] {
        let refusal = source
            .authenticate(&request("events", &headers, b""))
            .unwrap_err();
        assert!(
            matches!(refusal, Refusal::Unauthenticated(_)),
            "{refusal:?}"
        );
        assert_eq!(refusal.status(), 401);
    }
    // A custom header name, any case.
    let custom = okta(&format!(
        "secret = \"{SECRET}\"\nauthorization_header = \"X-Okta-Hook-Key\""
    ));
    let headers = Headers::new([("x-okta-hook-key", SECRET)]);
    assert!(custom
        .authenticate(&request("events", &headers, b""))
        .is_ok());
    assert!(custom.authenticate(&request("events", &good, b"")).is_err());
    // No secret: no event hooks at all.
    let refusal = polling_source("")
        .authenticate(&request("events", &good, b""))
        .unwrap_err();
    assert!(
        refusal.to_string().contains("takes no event hooks"),
        "{refusal}"
    );
}

#[test]
fn the_verification_challenge_is_echoed_as_okta_expects() {
    let source = hook_source();
    let headers = Headers::new([
        ("authorization", SECRET),
        ("x-okta-verification-challenge", "c2FtcGxlLWNoYWxsZW5nZQ"),
    ]);
    let answer = source
        .handshake(&request("events", &headers, b""))
        .unwrap()
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"verification": "c2FtcGxlLWNoYWxsZW5nZQ"})
    );

    let missing = Headers::new([("authorization", SECRET)]);
    let refusal = source
        .handshake(&request("events", &missing, b""))
        .unwrap()
        .unwrap_err();
    assert!(
        refusal.to_string().contains(VERIFICATION_HEADER),
        "{refusal}"
    );
    let refusal = source
        .handshake(&request("webhook", &headers, b""))
        .unwrap()
        .unwrap_err();
    assert!(
        refusal.to_string().contains("`events` endpoint"),
        "{refusal}"
    );
    let long = "x".repeat(2000);
    let too_long = Headers::new([("x-okta-verification-challenge", long.as_str())]);
    assert!(source
        .handshake(&request("events", &too_long, b""))
        .unwrap()
        .is_err());
}

// --- what is read ---

#[test]
fn a_page_of_the_system_log_is_read_into_one_change_per_access_change() {
    let parsed = hook_source().parse_batch(PAGE.as_bytes()).unwrap();
    let got: Vec<(String, String, String)> = parsed.observations.iter().map(summary).collect();
    let expected = [
        (
            "5b1f0c2e-8a11-11f1-9d3a-2f6c1e0a0001",
            "grant group:00gpayments00000x7 to user:alice@example.com",
            "00uadm1n0000000000x7",
        ),
        (
            "5b1f0c2e-8a11-11f1-9d3a-2f6c1e0a0003",
            "grant app:0oaledger00000000x7 to user:alice@example.com",
            "00uadm1n0000000000x7",
        ),
        (
            "5b1f0c2e-8a11-11f1-9d3a-2f6c1e0a0004/1",
            "grant role:HELP_DESK_ADMIN to user:bob@example.com",
            "00uadm1n0000000000x7",
        ),
        (
            "5b1f0c2e-8a11-11f1-9d3a-2f6c1e0a0004/2",
            "grant role:REPORT_ADMIN to user:bob@example.com",
            "00uadm1n0000000000x7",
        ),
        (
            "5b1f0c2e-8a11-11f1-9d3a-2f6c1e0a0005",
            "grant role:READ_ONLY_ADMIN to group:00ghelpdesk000000x7",
            "00uadm1n0000000000x7",
        ),
        (
            "5b1f0c2e-8a11-11f1-9d3a-2f6c1e0a0006",
            "create api_token to token:ci-deploy",
            "00usvcci0000000000x7",
        ),
        (
            "5b1f0c2e-8a11-11f1-9d3a-2f6c1e0a0007",
            "revoke group:00gpayments00000x7 to user:carol@example.com",
            "00gr0le0000000000x7",
        ),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(id, change, actor)| (id.to_string(), change.to_string(), actor.to_string()))
        .collect();
    assert_eq!(got, expected);
    // A sign-in and a failed attempt change no access.
    assert_eq!(parsed.skipped, 2);

    let first = &parsed.observations[0];
    assert_eq!(first.action, "group.user_membership.add");
    assert_eq!(
        first.occurred_at,
        Timestamp::parse("2026-11-02T09:14:05.120Z").unwrap()
    );
    assert_eq!(first.actor.kind, Some(PrincipalKind::Human));
    assert_eq!(first.actor.display.as_deref(), Some("Dana Admin"));
    assert_eq!(first.actor.session.as_deref(), Some("102sEssIonX7"));
    assert_eq!(first.actor.principal, None);
    assert_eq!(first.change.subject().kind, SubjectKind::User);
    assert_eq!(first.change.kind(), ChangeKind::Grant);
    assert_eq!(first.change.resource(), None);
    assert_eq!(first.case_hint, None);
    assert!(first.references.is_empty());
    // Okta's rule engine is automation; an unknown session is none.
    let removal = &parsed.observations[6];
    assert_eq!(removal.actor.kind, Some(PrincipalKind::Automation));
    let token = &parsed.observations[5];
    assert_eq!(token.change.subject().kind, SubjectKind::Token);
    assert_eq!(token.change.kind(), ChangeKind::Create);
    assert_eq!(token.actor.session, None);
    assert!(custody_core::observation::is_non_human_credential(
        &token.change
    ));
    // Two roles of one event: two observations, of the same raw record.
    assert_eq!(
        parsed.observations[2].raw_sha256,
        parsed.observations[3].raw_sha256
    );
    assert_ne!(
        parsed.observations[0].raw_sha256,
        parsed.observations[2].raw_sha256
    );
}

#[test]
fn json_lines_read_as_the_array_does_and_each_raw_hash_is_of_its_line() {
    let events: Vec<serde_json::Value> = serde_json::from_str(PAGE).unwrap();
    let lines: Vec<String> = events
        .iter()
        .map(|event| serde_json::to_string(event).unwrap())
        .collect();
    let file = format!("\n{}\n\n", lines.join("\n"));
    let source = hook_source();
    let from_lines = source.parse_batch(file.as_bytes()).unwrap();
    let from_array = source.parse_batch(PAGE.as_bytes()).unwrap();
    assert_eq!(
        from_lines
            .observations
            .iter()
            .map(summary)
            .collect::<Vec<_>>(),
        from_array
            .observations
            .iter()
            .map(summary)
            .collect::<Vec<_>>()
    );
    assert_eq!(from_lines.skipped, from_array.skipped);
    assert_eq!(
        from_lines.observations[0].raw_sha256,
        raw_hash(lines[0].as_bytes())
    );
    // One bad line refuses the file, naming the line.
    let bad = format!("{}\n{{\"uuid\": 1}}\n", lines[0]);
    let message = malformed(source.parse_batch(bad.as_bytes()));
    assert!(message.starts_with("line 2: "), "{message}");
    assert!(malformed(source.parse_batch(b"\xff")).contains("UTF-8"));
    assert!(malformed(source.parse_batch(b"[1, 2")).contains("the file is not a JSON array"));
}

#[test]
fn an_event_hook_carries_events_as_the_system_log_does() {
    let source = hook_source();
    let headers = Headers::new([("authorization", SECRET)]);
    let parsed = source
        .parse_push(&request("events", &headers, HOOK.as_bytes()))
        .unwrap();
    let got: Vec<(String, String, String)> = parsed.observations.iter().map(summary).collect();
    assert_eq!(
        got,
        [
            (
                "7c2d9e10-8a12-11f1-b0a4-4b2d6e8f0101".to_string(),
                "delete api_token to token:ci-deploy".to_string(),
                "00uadm1n0000000000x7".to_string()
            ),
            (
                "7c2d9e10-8a12-11f1-b0a4-4b2d6e8f0102".to_string(),
                "grant app:0oaledger00000000x7 to group:00gpayments00000x7".to_string(),
                "00uadm1n0000000000x7".to_string()
            ),
        ]
    );
    assert_eq!(parsed.skipped, 0);

    for (body, expected) in [
        (&b"not json"[..], "not an Okta event hook"),
        (
            &br#"{"eventType":"com.okta.event_hook"}"#[..],
            "missing field `data`",
        ),
        (
            &br#"{"eventType":"com.okta.inline_hook","data":{"events":[]}}"#[..],
            "not `com.okta.event_hook`",
        ),
    ] {
        let message = malformed(source.parse_push(&request("events", &headers, body)));
        assert!(message.contains(expected), "{message}");
    }
    let refusal = source
        .parse_push(&request("other", &headers, HOOK.as_bytes()))
        .unwrap_err();
    assert!(refusal.to_string().contains("`events` endpoint"));
}

#[test]
fn subjects_can_be_named_by_okta_id_and_every_change_can_carry_a_resource() {
    let source = okta("subject_ids = \"id\"\nresource = \"okta\"");
    let parsed = source.parse_batch(PAGE.as_bytes()).unwrap();
    let changes: Vec<String> = parsed
        .observations
        .iter()
        .map(|observation| observation.change.to_string())
        .collect();
    assert!(
        changes.contains(
            &"grant group:00gpayments00000x7 to user:00ualice000000000x7 on okta".to_string()
        ),
        "{changes:?}"
    );
    assert!(
        changes.contains(&"create api_token to token:00Tdeploy000000000x7 on okta".to_string()),
        "{changes:?}"
    );
    assert!(parsed
        .observations
        .iter()
        .all(|observation| observation.change.resource() == Some("okta")));
}

#[test]
fn app_assignment_falls_back_to_the_app_user_and_a_login_to_the_id() {
    let source = hook_source();
    let parsed = read_one(
        &source,
        &event(
            "application.user_membership.remove",
            r#"[{"id":"0oaapp","type":"AppInstance"},{"id":"00uapp","type":"AppUser","alternateId":"erin@example.com"}]"#,
            "{}",
        ),
    )
    .unwrap();
    assert_eq!(
        parsed.observations[0].change.to_string(),
        "revoke app:0oaapp to user:erin@example.com"
    );
    let parsed = read_one(
        &source,
        &event(
            "group.user_membership.add",
            r#"[{"id":"00ufrank","type":"User","alternateId":"unknown"},{"id":"00gops","type":"UserGroup"}]"#,
            "{}",
        ),
    )
    .unwrap();
    assert_eq!(
        parsed.observations[0].change.to_string(),
        "grant group:00gops to user:00ufrank"
    );
}

#[test]
fn a_case_id_in_a_debug_field_or_a_token_name_binds_the_observation() {
    let source = hook_source();
    let parsed = read_one(
        &source,
        &event(
            "group.user_membership.add",
            r#"[{"id":"00ualice","type":"User","alternateId":"alice@example.com"},{"id":"00gops","type":"UserGroup"}]"#,
            &format!(r#"{{"requestUri":"/api/v1/groups/00gops/users/00ualice?custody={CASE}","count":3}}"#),
        ),
    )
    .unwrap();
    assert_eq!(
        parsed.observations[0]
            .case_hint
            .as_ref()
            .map(ToString::to_string),
        Some(CASE.to_string())
    );
    let parsed = read_one(
        &source,
        &event(
            "system.api_token.create",
            &format!(r#"[{{"id":"00Tnew","type":"Token","displayName":"deploy {CASE}"}}]"#),
            "{}",
        ),
    )
    .unwrap();
    let observation = &parsed.observations[0];
    assert_eq!(
        observation.case_hint.as_ref().map(ToString::to_string),
        Some(CASE.to_string())
    );
    assert_eq!(observation.change.subject().id, format!("deploy {CASE}"));
}

#[test]
fn display_text_from_okta_is_escaped_and_identifiers_outside_the_safe_set_are_refused() {
    let source = hook_source();
    let line = r#"{"uuid":"9d0e0000-0000-4000-8000-000000000002","published":"2026-11-02T11:00:00Z","eventType":"group.user_membership.add","actor":{"id":"00uadm1n","type":"User","displayName":"Dana\u202eAdmin"},"authenticationContext":{"externalSessionId":"sess\u0007ion"},"target":[{"id":"00ualice","type":"User","alternateId":"alice@example.com"},{"id":"00gops","type":"UserGroup"}]}"#;
    let parsed = read_one(&source, line).unwrap();
    let actor = &parsed.observations[0].actor;
    assert_eq!(actor.display.as_deref(), Some("Dana\\u{202e}Admin"));
    assert_eq!(actor.session.as_deref(), Some("sess\\u{7}ion"));

    let refused = read_one(
        &source,
        &event(
            "group.user_membership.add",
            r#"[{"id":"00uzoe","type":"User","alternateId":"zoë@example.com"},{"id":"00gops","type":"UserGroup"}]"#,
            "{}",
        ),
    );
    let message = malformed(refused);
    assert!(
        message.contains("9d0e0000-0000-4000-8000-000000000001"),
        "{message}"
    );
    assert!(message.contains("subject"), "{message}");
}

#[test]
fn records_without_what_their_event_type_needs_are_refused_naming_the_record() {
    let source = hook_source();
    let user_and_group = r#"[{"id":"00ualice","type":"User","alternateId":"alice@example.com"},{"id":"00gops","type":"UserGroup"}]"#;
    let cases: Vec<(String, &str)> = vec![
        (
            event("group.user_membership.add", r#"[{"id":"00ualice","type":"User"}]"#, "{}"),
            "no `UserGroup` target",
        ),
        (
            event("group.user_membership.add", "null", "{}"),
            "no `User` target",
        ),
        (
            event("application.user_membership.add", r#"[{"id":"0oa","type":"AppInstance"}]"#, "{}"),
            "no `User` or `AppUser` target",
        ),
        (
            event("group.user_membership.add", r#"[{"id":"00ualice","type":"User"},{"type":"UserGroup"}]"#, "{}"),
            "`UserGroup` target has no `id`",
        ),
        (
            event("user.account.privilege.grant", r#"[{"id":"00ualice","type":"User"}]"#, "{}"),
            "no `debugContext.debugData.privilegeGranted`",
        ),
        (
            event("user.account.privilege.revoke", r#"[{"id":"00ualice","type":"User"}]"#, r#"{"privilegeRevoked":" , "}"#),
            "names no role",
        ),
        (
            event("system.api_token.create", "[]", "{}"),
            "no `Token` target",
        ),
        (
            event("group.user_membership.add", user_and_group, "{}").replace("2026-11-02T11:00:00.000Z", "yesterday"),
            "its `published`",
        ),
        (
            event("group.user_membership.add", user_and_group, "{}").replace(
                r#""actor":{"id":"00uadm1n","type":"User","alternateId":"dana@example.com","displayName":"Dana"},"#,
                "",
            ),
            "no `actor`",
        ),
        (
            event("group.user_membership.add", user_and_group, "{}").replace(r#""id":"00uadm1n","#, ""),
            "`actor` has no `id`",
        ),
        (
            r#"{"published":"2026-11-02T11:00:00Z","eventType":"group.user_membership.add"}"#.to_string(),
            "missing field `uuid`",
        ),
        (
            event("group.user_membership.add", user_and_group, "{}").replace(
                "9d0e0000-0000-4000-8000-000000000001",
                "bad\\u0007id",
            ),
            "a record's ID",
        ),
    ];
    for (line, expected) in cases {
        let message = malformed(read_one(&source, &line));
        assert!(message.contains(expected), "{line}\n{message}");
    }
    // An event Custody does not read is skipped even when it lacks what a
    // read event would need.
    let parsed = read_one(&source, &event("user.lifecycle.create", "[]", "{}")).unwrap();
    assert_eq!((parsed.observations.len(), parsed.skipped), (0, 1));
}

#[test]
fn okta_role_names_become_role_types_and_other_roles_keep_their_names() {
    for (name, expected) in [
        ("Super administrator", "role:SUPER_ADMIN"),
        ("Super Administrator", "role:SUPER_ADMIN"),
        ("Organization administrator", "role:ORG_ADMIN"),
        ("Application administrator (all)", "role:APP_ADMIN"),
        ("User administrator (all)", "role:USER_ADMIN"),
        ("Group Administrator", "role:USER_ADMIN"),
        ("Help Desk administrator (all)", "role:HELP_DESK_ADMIN"),
        ("Read-only Administrator", "role:READ_ONLY_ADMIN"),
        ("READ_ONLY_ADMIN", "role:READ_ONLY_ADMIN"),
        ("Mobile administrator", "role:MOBILE_ADMIN"),
        (
            "API Access Management administrator",
            "role:API_ACCESS_MANAGEMENT_ADMIN",
        ),
        ("Report administrator", "role:REPORT_ADMIN"),
        (
            "Group Membership administrator",
            "role:GROUP_MEMBERSHIP_ADMIN",
        ),
        (
            "Application administrator (Ledger)",
            "role:Application administrator (Ledger)",
        ),
        (
            "Access Certifications Admin",
            "role:Access Certifications Admin",
        ),
    ] {
        assert_eq!(role_entitlement(name), expected, "{name}");
    }
}

// --- polling ---

#[test]
fn the_first_poll_starts_at_the_look_back_oldest_first_for_the_event_types_read() {
    let source = polling_source("lookback_seconds = 7200");
    let pull = source.pull().unwrap();
    let now = Timestamp::parse("2026-11-02T12:00:00.123456Z").unwrap();
    let request = pull.request(None, now).unwrap();
    let (base, query) = request.url.split_once('?').unwrap();
    assert_eq!(base, "https://example.okta.com/api/v1/logs");
    let params: Vec<&str> = query.split('&').collect();
    assert_eq!(params[0], "since=2026-11-02T10%3A00%3A00.123Z");
    assert_eq!(params[1], "sortOrder=ASCENDING");
    assert_eq!(params[2], "limit=3");
    let filter = params[3].strip_prefix("filter=").unwrap();
    assert!(
        filter.starts_with("eventType%20eq%20%22group.user_membership.add%22%20or%20"),
        "{filter}"
    );
    for event_type in READ_EVENT_TYPES {
        assert!(
            filter.contains(&format!("%22{event_type}%22")),
            "{event_type}"
        );
    }
    assert_eq!(
        request.headers,
        [
            ("Authorization".to_string(), "SSWS 00tok3n".to_string()),
            ("Accept".to_string(), "application/json".to_string())
        ]
    );
    // A stored cursor of this org is fetched as it is; one of another org
    // (org_url changed) is dropped for a first poll.
    let cursor = "https://example.okta.com/api/v1/logs?after=1762077600000_1&limit=3";
    assert_eq!(pull.request(Some(cursor), now).unwrap().url, cursor);
    for foreign in [
        "https://evil.example.com/api/v1/logs?after=1",
        "https://example.okta.com.evil.example/api/v1/logs?after=1",
        "https://example.okta.com/api/v1/users?after=1",
        "https://example.okta.com/api/v1/logsX",
    ] {
        assert_eq!(
            pull.request(Some(foreign), now).unwrap().url,
            request.url,
            "{foreign}"
        );
    }
}

fn link_headers(links: &[&str]) -> Headers {
    Headers::new(links.iter().map(|link| ("link", *link)))
}

#[test]
fn the_next_link_is_the_cursor_and_a_full_page_is_followed_at_once() {
    let source = polling_source("");
    let pull = source.pull().unwrap();
    let events: Vec<serde_json::Value> = serde_json::from_str(PAGE).unwrap();
    let next =
        "https://example.okta.com/api/v1/logs?after=1762077645000_1&limit=3&sortOrder=ASCENDING";
    let headers = link_headers(&[
        "<https://example.okta.com/api/v1/logs?limit=3&sortOrder=ASCENDING>; rel=\"self\"",
        &format!("<{next}>; rel=\"next\""),
    ]);
    let full = serde_json::to_vec(&events[..3]).unwrap();
    let page = pull.page(None, 200, &headers, &full).unwrap();
    assert_eq!(page.cursor.as_deref(), Some(next));
    assert!(page.more, "a full page is followed at once");
    assert_eq!(page.parsed.observations.len(), 2);
    assert_eq!(page.parsed.skipped, 1);

    let short = serde_json::to_vec(&events[3..5]).unwrap();
    let page = pull.page(Some(next), 200, &headers, &short).unwrap();
    assert!(!page.more);
    assert_eq!(page.parsed.observations.len(), 3);

    // Okta gives a next link on an empty page of a poll: the cursor moves
    // (to the same place) and the poll waits.
    let page = pull.page(Some(next), 200, &headers, b"[]").unwrap();
    assert_eq!(page.cursor.as_deref(), Some(next));
    assert!(!page.more);
    assert!(page.parsed.observations.is_empty());

    // Without a next link the cursor stays, and a full page is not
    // followed (it would read itself again).
    let page = pull
        .page(Some(next), 200, &Headers::default(), &full)
        .unwrap();
    assert_eq!(page.cursor, None);
    assert!(!page.more);
}

#[test]
fn answers_other_than_a_page_keep_the_cursor_and_say_why() {
    let source = polling_source("");
    let pull = source.pull().unwrap();
    let refusal = pull
        .page(
            None,
            429,
            &Headers::new([("x-rate-limit-reset", "1793620800")]),
            br#"{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests."}"#,
        )
        .unwrap_err();
    let message = refusal.to_string();
    assert!(message.contains("429"), "{message}");
    assert!(
        message.contains("until 2026-11-02T12:00:00.000000Z"),
        "{message}"
    );
    let refusal = pull
        .page(
            None,
            401,
            &Headers::default(),
            br#"{"errorCode":"E0000011","errorSummary":"Invalid token provided"}"#,
        )
        .unwrap_err();
    assert!(matches!(refusal, Refusal::Unauthenticated(_)));
    assert!(
        refusal.to_string().contains("(Invalid token provided)"),
        "{refusal}"
    );
    let refusal = pull.page(None, 503, &Headers::default(), b"").unwrap_err();
    assert!(refusal.to_string().contains("503"), "{refusal}");
    let refusal = pull
        .page(None, 200, &Headers::default(), br#"{"not":"a page"}"#)
        .unwrap_err();
    assert!(
        refusal
            .to_string()
            .contains("not a JSON array of LogEvents"),
        "{refusal}"
    );
    // A next link to anywhere but this org's System Log is not followed
    // with the API token.
    let refusal = pull
        .page(
            None,
            200,
            &link_headers(&["<https://attacker.example/api/v1/logs?after=1>; rel=\"next\""]),
            b"[]",
        )
        .unwrap_err();
    assert!(refusal.to_string().contains("not this org's"), "{refusal}");
}

#[test]
fn link_headers_are_read_one_per_header_or_several_in_one() {
    assert_eq!(
        next_link(&link_headers(&[
            "<https://o.example/api/v1/logs?a=1>; rel=\"self\", <https://o.example/api/v1/logs?after=2>; rel=\"next\""
        ])),
        Some("https://o.example/api/v1/logs?after=2".to_string())
    );
    assert_eq!(
        next_link(&link_headers(&["<https://o.example/x?q=a,b>;rel=next"])),
        Some("https://o.example/x?q=a,b".to_string())
    );
    assert_eq!(
        next_link(&link_headers(&[
            "<https://o.example/x>; title=\"n\"; REL=\"prev next\""
        ])),
        Some("https://o.example/x".to_string())
    );
    assert_eq!(
        next_link(&link_headers(&["<https://o.example/x>; rel=\"self\""])),
        None
    );
    assert_eq!(next_link(&link_headers(&["<broken; rel=\"next\""])), None);
    assert_eq!(next_link(&Headers::default()), None);
}
