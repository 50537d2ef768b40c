//! Microsoft Entra ID's directory audit log end to end, ingested with
//! `custody ingest` as Microsoft Graph's `directoryAudits` returns it: an
//! application credential added with no case opens a case that escalates,
//! a role wider than the approved one is drift, and the same file ingested
//! again records nothing.

use custody_core::code::Code;
use custody_core::time::Clock;
use custody_core::Timestamp;
use serde_json::{json, Value};

use crate::common::{Server, TestStore, STORES};

const CONNECTOR: &str = "entra";

/// The role template ID of User Administrator, the same in every tenant.
const USER_ADMINISTRATOR: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";
/// The role template ID of Global Administrator.
const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";

fn config(extra: &str) -> String {
    format!("{extra}\n[[connectors]]\nname = \"{CONNECTOR}\"\nkind = \"entra\"\n")
}

/// A directoryAudit as Graph returns it.
fn audit(
    id: &str,
    activity: &str,
    at: Timestamp,
    initiated_by: Value,
    targets: Value,
    reason: &str,
) -> Value {
    json!({
        "id": id,
        "category": "Test",
        "correlationId": format!("corr-{id}"),
        "result": "success",
        "resultReason": reason,
        "activityDisplayName": activity,
        "activityDateTime": at.to_string(),
        "loggedByService": "Core Directory",
        "operationType": "Assign",
        "initiatedBy": initiated_by,
        "targetResources": targets,
        "additionalDetails": []
    })
}

fn admin_user() -> Value {
    json!({"app": null, "user": {"id": "0a0a0a0a-e2e0-4000-8000-00000000ad01", "displayName": null, "userPrincipalName": "grace.admin@contoso.example", "ipAddress": "203.0.113.15"}})
}

fn role_grant(id: &str, at: Timestamp, upn: &str, template: &str, reason: &str) -> Value {
    audit(
        id,
        "Add member to role",
        at,
        admin_user(),
        json!([
            {"id": format!("user-{upn}"), "displayName": null, "type": "User", "userPrincipalName": upn, "groupType": null,
             "modifiedProperties": [
                {"displayName": "Role.ObjectID", "oldValue": null, "newValue": "\"role-object-e2e\""},
                {"displayName": "Role.TemplateId", "oldValue": null, "newValue": format!("\"{template}\"")}
             ]},
            {"id": "role-object-e2e", "displayName": null, "type": "Role", "userPrincipalName": null, "groupType": null, "modifiedProperties": []}
        ]),
        reason,
    )
}

fn credential_added(id: &str, at: Timestamp, service_principal: &str) -> Value {
    let keys = json!(["[KeyIdentifier=9e9e9e9e-e2e0-4000-8000-000000000c01,KeyType=Password,KeyUsage=Verify,DisplayName=backdoor]"]).to_string();
    audit(
        id,
        "Add service principal credentials",
        at,
        admin_user(),
        json!([{"id": service_principal, "displayName": "reporting-api", "type": "ServicePrincipal", "userPrincipalName": null,
                "modifiedProperties": [{"displayName": "KeyDescription", "oldValue": "[]", "newValue": keys}]}]),
        "",
    )
}

/// `custody ingest --source entra FILE --json` of Graph's answer holding
/// `records`; the summary.
fn ingest(server: &Server, records: &[Value]) -> Value {
    let path = server.root.path().join(format!(
        "directory-audits-{}.json",
        crate::common::uuid_like()
    ));
    let answer = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/directoryAudits",
        "value": records
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&answer).unwrap()).unwrap();
    server.cli_json(
        &server.admin_token,
        &["ingest", "--source", CONNECTOR, path.to_str().unwrap()],
    )
}

#[track_caller]
fn finding(report: &Value, code: Code, case: &str) -> Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == code.to_string() && finding["case_id"] == case)
        .cloned()
        .unwrap_or_else(|| panic!("no {code} finding about {case}: {report:#}"))
}

#[test]
fn an_unsanctioned_application_credential_opens_a_case_that_escalates() {
    let config = config(
        "[workflow]\nscan_interval_seconds = 1\n\n[[policy.rules]]\nname = \"workload-credentials\"\nsubject_kinds = [\"service_account\"]\npost_hoc_review_deadline = \"2s\"\n",
    );
    let (server, _) = Server::start_in_process(TestStore::Embedded, Some(&config));
    let summary = ingest(
        &server,
        &[credential_added(
            "Directory_e2e_cred_0001",
            server.clock().now(),
            "sp-reporting-api",
        )],
    );
    assert_eq!(summary["unsanctioned"], 1, "{summary}");
    let case = summary["cases"][0].as_str().unwrap().to_string();
    let listed = server.cli_json(&server.admin_token, &["cases", "--unsanctioned"]);
    assert_eq!(listed["cases"][0]["case_id"], case.as_str(), "{listed}");

    let document = server.show(&server.admin_token, &case);
    assert_eq!(document["state"], "pending_review");
    let observed = &document["events"][1];
    assert_eq!(observed["kind"], "execution_observed");
    assert_eq!(observed["source"], CONNECTOR);
    assert_eq!(observed["payload"]["source_kind"], "entra");
    assert_eq!(
        observed["payload"]["change"]["subject"],
        json!({"kind": "service_account", "id": "sp-reporting-api"})
    );
    assert_eq!(observed["payload"]["change"]["kind"], "create");
    assert_eq!(
        observed["payload"]["change"]["entitlement"],
        "client_secret"
    );

    let deadline =
        Timestamp::parse(observed["payload"]["review_deadline"].as_str().unwrap()).unwrap();
    server.clock().set(deadline.plus_seconds(1));
    let started = std::time::Instant::now();
    let escalation = loop {
        if let Some(event) = server
            .events(&server.admin_token, &case)
            .into_iter()
            .find(|event| event["kind"] == "escalation_raised")
        {
            break event;
        }
        assert!(
            started.elapsed().as_secs() < 20,
            "no escalation was recorded"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(
        escalation["payload"]["reason"],
        Code::BreakGlassReviewOverdue.to_string()
    );

    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let credential = finding(&report, Code::DriftNhiCredentialUnsanctioned, &case);
    assert_eq!(credential["source"], CONNECTOR);
    assert_eq!(credential["external_id"], "Directory_e2e_cred_0001");
    finding(&report, Code::ChangeUnsanctioned, &case);
}

#[test]
fn a_role_wider_than_the_approved_one_is_drift() {
    let (server, _) = Server::start_on(TestStore::Embedded, None, Some(&config("")));
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let case = server
        .cli_ok(
            &alice,
            &[
                "request",
                "--subject",
                "user:heidi@contoso.example",
                "--entitlement",
                &format!("role:{USER_ADMINISTRATOR}"),
            ],
        )
        .trim()
        .to_string();
    server.cli_ok(&bob, &["approve", &case]);

    // The administrator gives Global Administrator instead, quoting the
    // case in the PIM justification.
    let summary = ingest(
        &server,
        &[role_grant(
            "Directory_e2e_role_0001",
            Timestamp::now(),
            "heidi@contoso.example",
            GLOBAL_ADMINISTRATOR,
            &format!("As approved in {case}"),
        )],
    );
    assert_eq!(summary["matched"], 1, "{summary}");
    let observed = server
        .events(&alice, &case)
        .into_iter()
        .find(|event| event["kind"] == "execution_observed")
        .unwrap();
    assert_eq!(observed["payload"]["matched_by"], "case_id");
    assert!(
        observed["payload"]["drift"]
            .as_array()
            .unwrap()
            .contains(&json!(Code::DriftWiderThanApproved.to_string())),
        "{observed}"
    );

    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let wider = finding(&report, Code::DriftWiderThanApproved, &case);
    assert_eq!(wider["source"], CONNECTOR);
    assert_eq!(wider["external_id"], "Directory_e2e_role_0001");
    assert_eq!(wider["event_id"], observed["event_id"]);
}

#[test]
fn the_same_file_ingested_again_records_nothing() {
    for store in STORES {
        let (server, _) = Server::start_on(store, None, Some(&config("")));
        let now = Timestamp::now();
        let records = [
            role_grant(
                "Directory_e2e_replay_0001",
                now,
                "ivan@contoso.example",
                USER_ADMINISTRATOR,
                "",
            ),
            credential_added(
                "Directory_e2e_replay_0002",
                now.plus_seconds(1),
                "sp-exporter",
            ),
            audit(
                "Directory_e2e_replay_0003",
                "Update user",
                now,
                admin_user(),
                json!([]),
                "",
            ),
        ];
        let first = ingest(&server, &records);
        assert_eq!(first["observations"], 2, "{first}");
        assert_eq!(first["skipped"], 1, "{first}");
        assert_eq!(first["unsanctioned"], 2, "{first}");
        let log_size = server.log_size();
        for _ in 0..3 {
            let again = ingest(&server, &records);
            assert_eq!(again["duplicates"], 2, "{again}");
            assert_eq!(again["unsanctioned"], 0, "{again}");
        }
        assert_eq!(
            server.log_size(),
            log_size,
            "a replayed file appends nothing ({store:?})"
        );
        assert_eq!(server.case_count(), 2);
    }
}

/// A file that is not Graph's answer is refused whole, and records nothing.
#[test]
fn a_file_with_a_record_that_cannot_be_read_records_nothing() {
    let (server, _) = Server::start_on(TestStore::Embedded, None, Some(&config("")));
    let log_size = server.log_size();
    let mut broken = role_grant(
        "Directory_e2e_bad_0002",
        Timestamp::now(),
        "judy@contoso.example",
        USER_ADMINISTRATOR,
        "",
    );
    broken["activityDateTime"] = json!("yesterday");
    let path = server.root.path().join("bad.json");
    std::fs::write(
        &path,
        serde_json::to_vec(&json!({"value": [
            role_grant("Directory_e2e_bad_0001", Timestamp::now(), "ivan@contoso.example", USER_ADMINISTRATOR, ""),
            broken
        ]}))
        .unwrap(),
    )
    .unwrap();
    let output = server.cli(
        Some(&server.admin_token),
        &["ingest", "--source", CONNECTOR, path.to_str().unwrap()],
    );
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        crate::common::stderr(&output)
    );
    let stderr = crate::common::stderr(&output);
    assert!(stderr.contains("record 2"), "{stderr}");
    assert!(stderr.contains("Directory_e2e_bad_0002"), "{stderr}");
    assert_eq!(server.log_size(), log_size);
}

/// A local fake of Microsoft Graph's `GET /v1.0/auditLogs/directoryAudits`:
/// a bearer token (else 401 with Graph's error object), `$filter` on
/// `activityDateTime ge`, oldest first, `$top` a page and an
/// `@odata.nextLink` (`$skiptoken`) while records remain. It records every
/// query it was sent.
mod fake_graph {
    use std::sync::{Arc, Mutex};

    use axum::extract::{RawQuery, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use custody_core::Timestamp;
    use serde_json::{json, Value};

    use crate::common::HttpStub;

    pub const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.fake-graph-token";

    #[derive(Default)]
    struct Tenant {
        base: String,
        records: Vec<Value>,
        queries: Vec<String>,
    }

    pub struct FakeGraph {
        pub url: String,
        tenant: Arc<Mutex<Tenant>>,
        _stub: HttpStub,
    }

    impl FakeGraph {
        pub fn start() -> FakeGraph {
            let tenant = Arc::new(Mutex::new(Tenant::default()));
            let app = axum::Router::new()
                .route(
                    "/v1.0/auditLogs/directoryAudits",
                    axum::routing::get(audits),
                )
                .with_state(tenant.clone());
            let stub = HttpStub::serve(app, 1);
            tenant.lock().unwrap().base = stub.base.clone();
            FakeGraph {
                url: stub.base.clone(),
                tenant,
                _stub: stub,
            }
        }

        /// Publishes records (Graph shows them in `activityDateTime` order,
        /// whenever they were published).
        pub fn publish(&self, records: &[Value]) {
            let mut tenant = self.tenant.lock().unwrap();
            tenant.records.extend_from_slice(records);
            tenant.records.sort_by_key(|record| {
                Timestamp::parse(record["activityDateTime"].as_str().unwrap()).unwrap()
            });
        }

        pub fn queries(&self) -> Vec<String> {
            self.tenant.lock().unwrap().queries.clone()
        }
    }

    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut index = 0;
        while index < bytes.len() {
            if bytes[index] == b'%' && index + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                index += 3;
            } else {
                out.push(bytes[index]);
                index += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn param(query: &str, name: &str) -> Option<String> {
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| decode(value))
        })
    }

    async fn audits(
        State(tenant): State<Arc<Mutex<Tenant>>>,
        RawQuery(query): RawQuery,
        headers: HeaderMap,
    ) -> Response {
        let query = query.unwrap_or_default();
        let mut tenant = tenant.lock().unwrap();
        tenant.queries.push(query.clone());
        if headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            != Some(&format!("Bearer {TOKEN}"))
        {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty."}})),
            )
                .into_response();
        }
        let top: usize = param(&query, "$top")
            .and_then(|top| top.parse().ok())
            .unwrap_or(100);
        let start = match param(&query, "$skiptoken") {
            Some(token) => token.parse::<usize>().unwrap(),
            None => {
                let filter = param(&query, "$filter").unwrap_or_default();
                let since = filter
                    .strip_prefix("activityDateTime ge ")
                    .map(|since| Timestamp::parse(since).unwrap())
                    .unwrap();
                tenant
                    .records
                    .iter()
                    .position(|record| {
                        Timestamp::parse(record["activityDateTime"].as_str().unwrap()).unwrap()
                            >= since
                    })
                    .unwrap_or(tenant.records.len())
            }
        };
        let end = (start + top).min(tenant.records.len());
        let mut answer = json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/directoryAudits",
            "value": tenant.records[start..end].to_vec()
        });
        if end < tenant.records.len() {
            answer["@odata.nextLink"] = json!(format!(
                "{}/v1.0/auditLogs/directoryAudits?$top={top}&$skiptoken={end}",
                tenant.base
            ));
        }
        axum::Json(answer).into_response()
    }
}

/// Graph polled with a bearer token: every page followed to the end, and
/// a record Entra ID published late (older than the newest one read) is
/// still read by the next poll's overlap, across a restart, once.
#[test]
fn graph_is_polled_to_the_end_and_a_late_record_is_read_by_the_overlap() {
    let graph = fake_graph::FakeGraph::start();
    let base = Timestamp::now().plus_seconds(-600);
    graph.publish(&[
        role_grant(
            "Directory_e2e_poll_0001",
            base,
            "p1@contoso.example",
            USER_ADMINISTRATOR,
            "",
        ),
        role_grant(
            "Directory_e2e_poll_0002",
            base.plus_seconds(10),
            "p2@contoso.example",
            USER_ADMINISTRATOR,
            "",
        ),
        credential_added("Directory_e2e_poll_0003", base.plus_seconds(20), "sp-poll"),
    ]);
    // The settings of the entra entry, which `config` writes last.
    let config = format!(
        "{}graph_url = \"{}\"\nbearer_token = \"{}\"\ninterval_seconds = 1\npage_size = 2\nlookback_seconds = 3600\noverlap_seconds = 300\n",
        config(""),
        graph.url,
        fake_graph::TOKEN
    );
    let (mut server, _) = Server::start_on(TestStore::Embedded, None, Some(&config));
    crate::common::wait_until("three records to be recorded", || server.case_count() == 3);
    let queries = graph.queries();
    assert!(
        queries[0].starts_with("$filter=activityDateTime%20ge%20"),
        "{queries:?}"
    );
    assert!(
        queries[0].contains("$orderby=activityDateTime%20asc"),
        "{queries:?}"
    );
    assert!(
        queries.iter().any(|query| query.contains("$skiptoken=2")),
        "{queries:?}"
    );

    // Stopped; meanwhile Entra ID publishes a record of an activity older
    // than the newest read. The restarted poll starts the overlap before
    // the newest record it read, and finds it.
    server.stop();
    graph.publish(&[role_grant(
        "Directory_e2e_poll_0004",
        base.plus_seconds(15),
        "p4@contoso.example",
        USER_ADMINISTRATOR,
        "",
    )]);
    let asked = graph.queries().len();
    server.restart_configured();
    crate::common::wait_until("the late record to be recorded", || {
        server.case_count() == 4
    });
    // A stop between recording the last page and storing the cursor
    // leaves the last nextLink as the cursor, which the restarted poll
    // follows; every new query of a result set starts at the overlap,
    // never at the look-back.
    crate::common::wait_until("a poll after the end of the result set", || {
        graph.queries()[asked..]
            .iter()
            .any(|query| query.starts_with("$filter="))
    });
    let after = &graph.queries()[asked..];
    let overlap_start = base.plus_seconds(20 - 300).to_string();
    let expected = format!(
        "$filter=activityDateTime%20ge%20{}Z",
        overlap_start[..19].replace(':', "%3A")
    );
    let fresh: Vec<&String> = after
        .iter()
        .filter(|query| query.starts_with("$filter="))
        .collect();
    assert!(!fresh.is_empty(), "{after:?}");
    for query in fresh {
        assert!(query.starts_with(&expected), "{expected} in {after:?}");
    }
    // Each record once, however many polls read it again.
    let cases = server.get_json("/v1/cases?limit=1000")["cases"]
        .as_array()
        .unwrap()
        .clone();
    let mut external_ids: Vec<String> = Vec::new();
    for case in cases {
        let id = case["case_id"].as_str().unwrap();
        for event in server.get_json(&format!("/v1/cases/{id}"))["events"]
            .as_array()
            .unwrap()
        {
            if event["kind"] == "execution_observed" {
                external_ids.push(event["external_id"].as_str().unwrap().to_string());
            }
        }
    }
    external_ids.sort();
    assert_eq!(
        external_ids,
        [
            "Directory_e2e_poll_0001",
            "Directory_e2e_poll_0002",
            "Directory_e2e_poll_0003",
            "Directory_e2e_poll_0004"
        ]
    );
}
