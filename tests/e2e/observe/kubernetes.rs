//! The Kubernetes source end to end: a real `custody serve` with a
//! `[[connectors]]` entry of kind `kubernetes`, the API server's audit
//! webhook played by the test (an `audit.k8s.io/v1` `EventList` POSTed with
//! `Authorization: Bearer <token>`, as the webhook's kubeconfig makes it),
//! and the log backend's lines ingested with `custody ingest`.

use serde_json::{json, Value};

use super::observed::{
    all_cases, assert_only_findings, assert_unsanctioned_and_escalated, events_per_origin,
    findings, ingest_ok, lines, observed, post, rfc3339_ms, sanctioned,
};
use crate::common::{Server, TestStore, STORES};
use custody_core::{Clock, Code};

const TOKEN: &str = "audit-webhook-bearer-token-e2e";

const CONNECTOR: &str = r#"[[connectors]]
name = "k8s-prod"
kind = "kubernetes"
secret = "audit-webhook-bearer-token-e2e"
cluster = "prod"
"#;

const POLICY: &str = r#"[workflow]
scan_interval_seconds = 1

[[policy.rules]]
name = "credentials"
subject_kinds = ["api_key", "token", "service_account"]
post_hoc_review_deadline = "1h"
"#;

/// An event at stage ResponseComplete, by `username`, at `at_ms`.
fn event(
    audit_id: &str,
    at_ms: i64,
    username: &str,
    verb: &str,
    object_ref: Value,
    code: u64,
) -> Value {
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": audit_id, "stage": "ResponseComplete",
        "requestURI": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        "verb": verb,
        "user": {"username": username, "uid": "3f1c", "groups": ["system:authenticated", "platform-admins"]},
        "sourceIPs": ["10.0.0.8"], "userAgent": "kubectl/v1.31.0 (linux/amd64)",
        "objectRef": object_ref,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": rfc3339_ms(at_ms - 3),
        "stageTimestamp": rfc3339_ms(at_ms),
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding \"platform-admins\""},
    })
}

/// A binding created: its object as request and response, at the
/// RequestResponse level.
fn binding(
    audit_id: &str,
    at_ms: i64,
    namespace: Option<&str>,
    name: &str,
    role: (&str, &str),
    user: &str,
    annotations: Value,
) -> Value {
    let (resource, kind) = match namespace {
        Some(_) => ("rolebindings", "RoleBinding"),
        None => ("clusterrolebindings", "ClusterRoleBinding"),
    };
    let mut metadata = json!({"name": name, "annotations": annotations});
    let mut object_ref = json!({"resource": resource, "name": name, "apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1"});
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
        object_ref["namespace"] = json!(namespace);
    }
    let object = json!({
        "kind": kind, "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role.0, "name": role.1},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}],
    });
    let mut event = event(
        audit_id,
        at_ms,
        "alice@example.com",
        "create",
        object_ref,
        201,
    );
    event["requestObject"] = object.clone();
    event["responseObject"] = object;
    event
}

fn token_request(
    audit_id: &str,
    at_ms: i64,
    username: &str,
    namespace: &str,
    account: &str,
) -> Value {
    let mut event = event(
        audit_id,
        at_ms,
        username,
        "create",
        json!({"resource": "serviceaccounts", "subresource": "token", "namespace": namespace, "name": account, "apiVersion": "v1"}),
        201,
    );
    event["requestObject"] = json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null}, "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600}});
    event
}

fn event_list(items: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items})).unwrap()
}

fn now_ms() -> i64 {
    super::observed::now_ms()
}

#[test]
fn the_webhook_is_taken_only_with_the_bearer_token_and_a_replay_storm_appends_nothing() {
    for store in STORES {
        let (server, _) = Server::start_on(store, None, Some(CONNECTOR));
        let before = server.log_size();
        let now = now_ms();
        let mut read = event(
            "a1",
            now,
            "alice@example.com",
            "get",
            json!({"resource": "pods", "namespace": "dev", "name": "web-0", "apiVersion": "v1"}),
            200,
        );
        read["level"] = json!("Metadata");
        let body = event_list(&[
            binding(
                "b7e1c2d3-0000-4000-8000-000000000001",
                now,
                Some("dev"),
                "bob-edit",
                ("ClusterRole", "edit"),
                "bob@example.com",
                json!({}),
            ),
            read,
        ]);
        for authorization in [
            None,
            Some("Bearer wrong"),
            Some(TOKEN),
            Some("Basic YWxpY2U6cHc="),
        ] {
            let mut headers = Vec::new();
            if let Some(authorization) = authorization {
                headers.push(("Authorization", authorization));
            }
            let refused = post(&server, "k8s-prod", &headers, &body);
            assert_eq!(refused.status, 401, "{authorization:?}: {}", refused.text);
            assert_eq!(server.log_size(), before, "a refused list appended");
        }
        let bearer = format!("Bearer {TOKEN}");
        let accepted = post(&server, "k8s-prod", &[("Authorization", &bearer)], &body);
        assert_eq!(accepted.status, 200, "{}", accepted.text);
        assert_eq!(accepted.json["unsanctioned"], 1, "{}", accepted.text);
        assert_eq!(accepted.json["skipped"], 1, "{}", accepted.text);
        let case = accepted.json["cases"][0].as_str().unwrap();
        let recorded = observed(&server, case).remove(0);
        assert_eq!(
            recorded["external_id"],
            "b7e1c2d3-0000-4000-8000-000000000001"
        );
        assert_eq!(
            recorded["payload"]["change"]["entitlement"],
            "clusterrole:edit"
        );
        assert_eq!(recorded["payload"]["change"]["resource"], "prod/dev");
        let after = server.log_size();
        // The API server retries a batch it thinks failed: a storm of it.
        for _ in 0..25 {
            let again = post(&server, "k8s-prod", &[("Authorization", &bearer)], &body);
            assert_eq!(again.status, 200, "{}", again.text);
            assert_eq!(again.json["duplicates"], 1, "{}", again.text);
        }
        assert_eq!(server.log_size(), after);
        assert_only_findings(&server, &[Code::ChangeUnsanctioned]);
    }
}

#[test]
fn a_clusterrolebinding_wider_than_approved_is_drift_and_late_events_bind_in_any_order() {
    let (server, _) = Server::start_on(TestStore::Embedded, None, Some(CONNECTOR));
    let alice = server.principal("alice");
    let carol = server.principal("carol");
    server.cli_ok(
        &server.admin_token,
        &["connector", "map", "k8s-prod", "alice@example.com", "alice"],
    );
    // View on the cluster was approved for bob; cluster-admin was bound,
    // the binding's annotation naming the case.
    let case = sanctioned(
        &server,
        &alice,
        &carol,
        &alice,
        &[
            "--subject",
            "user:bob@example.com",
            "--change",
            "grant",
            "--entitlement",
            "clusterrole:view",
            "--resource",
            "prod",
        ],
    );
    let wide = binding(
        "c1a2b3c4-0000-4000-8000-0000000000aa",
        now_ms(),
        None,
        "bob-view",
        ("ClusterRole", "cluster-admin"),
        "bob@example.com",
        json!({"custody.example.com/case": case}),
    );
    let bearer = format!("Bearer {TOKEN}");
    let response = post(
        &server,
        "k8s-prod",
        &[("Authorization", &bearer)],
        &event_list(&[wide]),
    );
    assert_eq!(response.json["matched"], 1, "{}", response.text);
    let recorded = observed(&server, &case).remove(0);
    assert_eq!(recorded["payload"]["matched_by"], "case_id");
    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let wider = findings(&report, Code::DriftWiderThanApproved);
    assert_eq!(wider.len(), 1, "{report:#}");
    assert_eq!(wider[0]["case_id"], case.as_str());
    assert_eq!(wider[0]["source"], "k8s-prod");
    assert_eq!(
        wider[0]["external_id"],
        "c1a2b3c4-0000-4000-8000-0000000000aa"
    );

    // Two approved RoleBindings, seen in the log backend's file with the
    // later one first: each binds to its own case by the window.
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
            "clusterrole:edit",
            "--resource",
            "prod/dev",
        ],
    );
    let erin = sanctioned(
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
            "role:log-reader",
            "--resource",
            "prod/dev",
        ],
    );
    let now = now_ms();
    let file = lines(&[
        binding(
            "late-2",
            now + 2000,
            Some("dev"),
            "erin-logs",
            ("Role", "log-reader"),
            "erin",
            json!({}),
        ),
        binding(
            "late-1",
            now + 1000,
            Some("dev"),
            "dana-edit",
            ("ClusterRole", "edit"),
            "dana",
            json!({}),
        ),
    ]);
    let summary = ingest_ok(&server, "k8s-prod", &file);
    assert_eq!(summary["matched"], 2, "{summary}");
    for (case, id) in [(&dana, "late-1"), (&erin, "late-2")] {
        let events = observed(&server, case);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["external_id"], id);
        assert_eq!(events[0]["payload"]["matched_by"], "window");
        assert_eq!(events[0]["payload"]["drift"], json!([]));
    }
}

#[test]
fn an_unsanctioned_service_account_token_escalates_and_access_left_after_the_expiry_is_drift() {
    let (server, _) =
        Server::start_in_process(TestStore::Embedded, Some(&format!("{POLICY}\n{CONNECTOR}")));
    let alice = server.principal("alice");
    let carol = server.principal("carol");
    server.cli_ok(
        &server.admin_token,
        &["connector", "map", "k8s-prod", "alice@example.com", "alice"],
    );
    let now = server.clock().now().as_micros() / 1000;
    let bearer = format!("Bearer {TOKEN}");
    // A kubelet's token request for a pod is skipped; alice's for the
    // deployer account is unsanctioned.
    let body = event_list(&[
        token_request("kubelet-1", now, "system:node:worker-1", "dev", "web"),
        token_request(
            "d4e5f6a7-0000-4000-8000-000000000001",
            now,
            "alice@example.com",
            "dev",
            "deployer",
        ),
    ]);
    let response = post(&server, "k8s-prod", &[("Authorization", &bearer)], &body);
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(
        (
            response.json["unsanctioned"].as_u64(),
            response.json["skipped"].as_u64()
        ),
        (Some(1), Some(1)),
        "{}",
        response.text
    );
    let case = response.json["cases"][0].as_str().unwrap().to_string();
    assert_eq!(all_cases(&server, true), std::slice::from_ref(&case));
    assert_unsanctioned_and_escalated(
        &server,
        &case,
        "k8s-prod",
        "d4e5f6a7-0000-4000-8000-000000000001",
        true,
    );

    // Edit in dev for an hour; the binding is seen, never its deletion:
    // once the hour is over, the access left is drift.
    let frank = sanctioned(
        &server,
        &alice,
        &carol,
        &alice,
        &[
            "--subject",
            "user:frank",
            "--change",
            "grant",
            "--entitlement",
            "clusterrole:edit",
            "--resource",
            "prod/dev",
            "--duration",
            "1h",
        ],
    );
    let now = server.clock().now().as_micros() / 1000;
    let bound = binding(
        "frank-1",
        now + 1000,
        Some("dev"),
        "frank-edit",
        ("ClusterRole", "edit"),
        "frank",
        json!({}),
    );
    let response = post(
        &server,
        "k8s-prod",
        &[("Authorization", &bearer)],
        &event_list(&[bound]),
    );
    assert_eq!(response.json["matched"], 1, "{}", response.text);
    server.advance(2 * 3600);
    let (_, report) = server.verify_with(&[]);
    let left = findings(&report, Code::DriftAccessAfterRevocation);
    let finding = left
        .iter()
        .find(|finding| finding["case_id"] == frank.as_str())
        .unwrap_or_else(|| panic!("no access-after-revocation finding: {report:#}"));
    assert_eq!(finding["source"], "k8s-prod");
    assert_eq!(finding["external_id"], "frank-1");
    let counts = events_per_origin(&server);
    assert!(counts.values().all(|count| *count == 1), "{counts:?}");
}
