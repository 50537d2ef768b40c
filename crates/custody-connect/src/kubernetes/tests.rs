//! The Kubernetes source: the bearer token, bindings at each audit level,
//! token requests, what is skipped and refused. Events are written here
//! from the audit.k8s.io/v1 documented shape.

use serde_json::{json, Value};

use custody_core::model::{ChangeKind, PrincipalKind, SubjectKind};
use custody_core::Timestamp;

use super::*;
use crate::observe::raw_hash;
use crate::Headers;

const TOKEN: &str = "audit webhook token, unit";

fn source() -> KubernetesSource {
    toml::from_str::<KubernetesConfig>(&format!(
        "name = \"k8s\"\nsecret = \"{TOKEN}\"\ncluster = \"prod\""
    ))
    .unwrap()
    .source()
    .unwrap()
}

fn binding_object(
    kind: &str,
    namespace: Option<&str>,
    role: (&str, &str),
    subjects: Value,
) -> Value {
    let mut metadata = json!({"name": "alice-edit", "annotations": {"custody.example.com/case": "AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b"}});
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
    }
    json!({
        "kind": kind, "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role.0, "name": role.1},
        "subjects": subjects,
    })
}

fn event(
    verb: &str,
    object_ref: Value,
    request: Option<Value>,
    response: Option<Value>,
    code: u64,
) -> Value {
    let mut event = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": "9f2c6b1e-4d3a-4e8f-a1b2-c3d4e5f60718", "stage": "ResponseComplete",
        "requestURI": "/apis/rbac.authorization.k8s.io/v1/namespaces/dev/rolebindings",
        "verb": verb,
        "user": {"username": "alice@example.com", "uid": "u-1", "groups": ["system:authenticated"],
                 "extra": {"authentication.kubernetes.io/credential-id": ["JTI=4f2a"]}},
        "sourceIPs": ["10.0.0.8"], "userAgent": "kubectl/v1.31.0",
        "objectRef": object_ref,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": "2026-03-02T10:00:00.000100Z",
        "stageTimestamp": "2026-03-02T10:00:00.004200Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
    });
    if let Some(request) = request {
        event["requestObject"] = request;
    }
    if let Some(response) = response {
        event["responseObject"] = response;
    }
    event
}

fn rolebinding_ref() -> Value {
    json!({"resource": "rolebindings", "namespace": "dev", "name": "alice-edit",
           "apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1"})
}

fn read(event: &Value) -> Vec<ObservedChange> {
    let raw = serde_json::to_vec(event).unwrap();
    let observed = source().event(&raw, event).unwrap();
    for observation in &observed {
        assert_eq!(observation.raw_sha256, raw_hash(&raw));
    }
    observed
}

fn summary(observed: &ObservedChange) -> (SubjectKind, &str, ChangeKind, &str, Option<&str>) {
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
fn a_rolebinding_created_grants_its_role_to_each_subject() {
    let object = binding_object(
        "RoleBinding",
        Some("dev"),
        ("ClusterRole", "edit"),
        json!([
            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob@example.com"},
            {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "dev-team"},
            {"kind": "ServiceAccount", "name": "ci"},
        ]),
    );
    let observed = read(&event(
        "create",
        rolebinding_ref(),
        Some(object.clone()),
        Some(object),
        201,
    ));
    assert_eq!(observed.len(), 3);
    assert_eq!(
        summary(&observed[0]),
        (
            SubjectKind::User,
            "bob@example.com",
            ChangeKind::Grant,
            "clusterrole:edit",
            Some("prod/dev")
        )
    );
    assert_eq!(summary(&observed[1]).0, SubjectKind::Group);
    assert_eq!(
        summary(&observed[2]),
        (
            SubjectKind::ServiceAccount,
            "dev/ci",
            ChangeKind::Grant,
            "clusterrole:edit",
            Some("prod/dev")
        )
    );
    let ids: Vec<&str> = observed.iter().map(|o| o.external_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "9f2c6b1e-4d3a-4e8f-a1b2-c3d4e5f60718/1",
            "9f2c6b1e-4d3a-4e8f-a1b2-c3d4e5f60718/2",
            "9f2c6b1e-4d3a-4e8f-a1b2-c3d4e5f60718/3"
        ]
    );
    let first = &observed[0];
    assert_eq!(first.action, "create rolebindings");
    assert_eq!(
        first.occurred_at,
        Timestamp::parse("2026-03-02T10:00:00.004200Z").unwrap()
    );
    assert_eq!(first.actor.id, "alice@example.com");
    assert_eq!(first.actor.session.as_deref(), Some("JTI=4f2a"));
    assert_eq!(
        first
            .case_hint
            .as_ref()
            .map(|case| case.to_string())
            .as_deref(),
        Some("AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b")
    );
}

#[test]
fn a_clusterrolebinding_is_on_the_cluster_and_one_subject_keeps_the_audit_id() {
    let object = binding_object(
        "ClusterRoleBinding",
        None,
        ("ClusterRole", "cluster-admin"),
        json!([{"kind": "User", "name": "bob@example.com"}]),
    );
    let reference = json!({"resource": "clusterrolebindings", "name": "bob-admin", "apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1"});
    // At the Request level only the request object is there.
    let observed = read(&event(
        "update",
        reference.clone(),
        Some(object.clone()),
        None,
        200,
    ));
    assert_eq!(observed.len(), 1);
    assert_eq!(
        observed[0].external_id,
        "9f2c6b1e-4d3a-4e8f-a1b2-c3d4e5f60718"
    );
    assert_eq!(
        summary(&observed[0]),
        (
            SubjectKind::User,
            "bob@example.com",
            ChangeKind::Grant,
            "clusterrole:cluster-admin",
            Some("prod")
        )
    );
    // A delete that returns the binding revokes it from its subjects.
    let observed = read(&event("delete", reference.clone(), None, Some(object), 200));
    assert_eq!(observed[0].change.kind(), ChangeKind::Revoke);
    // A delete answered with a Status, or any write at the Metadata level:
    // only the binding is known.
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": "bob-admin"}});
    let observed = read(&event("delete", reference.clone(), None, Some(status), 200));
    assert_eq!(
        summary(&observed[0]),
        (
            SubjectKind::Role,
            "clusterrolebinding:bob-admin",
            ChangeKind::Delete,
            "binding",
            Some("prod")
        )
    );
    let observed = read(&event(
        "patch",
        rolebinding_ref(),
        Some(json!({"subjects": []})),
        None,
        200,
    ));
    assert_eq!(
        summary(&observed[0]),
        (
            SubjectKind::Role,
            "rolebinding:dev/alice-edit",
            ChangeKind::Modify,
            "binding",
            Some("prod/dev")
        )
    );
}

#[test]
fn a_service_account_token_request_creates_a_token() {
    let reference = json!({"resource": "serviceaccounts", "subresource": "token", "namespace": "dev", "name": "deployer", "apiVersion": "v1"});
    let request = json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": {"creationTimestamp": null},
                         "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600}});
    let mut token_event = event("create", reference, Some(request), None, 201);
    token_event["impersonatedUser"] = json!({"username": "system:serviceaccount:dev:builder", "groups": ["system:serviceaccounts"]});
    let observed = read(&token_event);
    assert_eq!(
        summary(&observed[0]),
        (
            SubjectKind::ServiceAccount,
            "dev/deployer",
            ChangeKind::Create,
            "token",
            Some("prod/dev")
        )
    );
    assert!(custody_core::observation::is_non_human_credential(
        &observed[0].change
    ));
    assert_eq!(observed[0].action, "create serviceaccounts/token");
    assert_eq!(
        observed[0].actor.on_behalf_of.as_deref(),
        Some("system:serviceaccount:dev:builder")
    );
    // The kubelet's own requests are skipped; a service account acting is a service.
    token_event
        .as_object_mut()
        .unwrap()
        .remove("impersonatedUser");
    token_event["user"] = json!({"username": "system:node:worker-1", "groups": ["system:nodes"]});
    assert!(read(&token_event).is_empty());
    token_event["user"] = json!({"username": "system:serviceaccount:dev:builder"});
    assert_eq!(
        read(&token_event)[0].actor.kind,
        Some(PrincipalKind::Service)
    );
}

#[test]
fn other_stages_failures_reads_and_resources_are_skipped() {
    let object = binding_object(
        "RoleBinding",
        Some("dev"),
        ("Role", "view"),
        json!([{"kind": "User", "name": "bob"}]),
    );
    let mut started = event("create", rolebinding_ref(), Some(object.clone()), None, 201);
    started["stage"] = json!("RequestReceived");
    let forbidden = event("create", rolebinding_ref(), Some(object.clone()), None, 403);
    let get = event("get", rolebinding_ref(), None, Some(object.clone()), 200);
    let pods = event(
        "create",
        json!({"resource": "pods", "namespace": "dev", "name": "p"}),
        None,
        None,
        201,
    );
    let other_group = event(
        "create",
        json!({"resource": "rolebindings", "namespace": "dev", "apiGroup": "example.com"}),
        None,
        None,
        201,
    );
    let lines: Vec<u8> = [started, forbidden, get, pods, other_group]
        .iter()
        .flat_map(|event| {
            let mut line = serde_json::to_vec(event).unwrap();
            line.push(b'\n');
            line
        })
        .collect();
    let parsed = source().parse_batch(&lines).unwrap();
    assert_eq!((parsed.observations.len(), parsed.skipped), (0, 5));
}

#[test]
fn the_webhook_posts_an_event_list_with_the_bearer_token() {
    let object = binding_object(
        "RoleBinding",
        Some("dev"),
        ("Role", "view"),
        json!([{"kind": "User", "name": "bob"}]),
    );
    let list = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {},
                      "items": [event("create", rolebinding_ref(), Some(object), None, 201),
                                event("get", rolebinding_ref(), None, None, 200)]});
    let body = serde_json::to_vec(&list).unwrap();
    let source = source();
    let request = |authorization: Option<&str>| {
        let headers = Headers::new(authorization.map(|value| ("Authorization", value.to_string())));
        source
            .authenticate(&Request {
                endpoint: "webhook",
                headers: &headers,
                body: &body,
                tls: true,
            })
            .and_then(|()| {
                source.parse_push(&Request {
                    endpoint: "webhook",
                    headers: &headers,
                    body: &body,
                    tls: true,
                })
            })
    };
    let parsed = request(Some(&format!("Bearer {TOKEN}"))).unwrap();
    assert_eq!((parsed.observations.len(), parsed.skipped), (1, 1));
    // The item's own bytes are its raw record.
    let item = serde_json::to_vec(&list["items"][0]).unwrap();
    assert_eq!(parsed.observations[0].raw_sha256, raw_hash(&item));
    for wrong in [
        None,
        Some(TOKEN),
        Some("Bearer wrong"),
        Some(&*format!("bearer {TOKEN}")),
    ] {
        assert!(
            matches!(request(wrong), Err(Refusal::Unauthenticated(_))),
            "{wrong:?}"
        );
    }
    // The same list is a batch file too, and so are its events as lines.
    assert_eq!(source.parse_batch(&body).unwrap(), parsed);
    // A body that is not an EventList is refused.
    let headers = Headers::new([("Authorization", format!("Bearer {TOKEN}"))]);
    for body in [&b"{\"kind\":\"Event\"}"[..], b"[]", b"nope"] {
        assert!(source
            .parse_push(&Request {
                endpoint: "webhook",
                headers: &headers,
                body,
                tls: true
            })
            .is_err());
    }
    let unsecured = toml::from_str::<KubernetesConfig>("name = \"k\"")
        .unwrap()
        .source()
        .unwrap();
    assert!(unsecured
        .authenticate(&Request {
            endpoint: "webhook",
            headers: &headers,
            body: &body,
            tls: true
        })
        .is_err());
}

#[test]
fn malformed_events_are_refused_naming_the_event() {
    let object = binding_object(
        "RoleBinding",
        Some("dev"),
        ("Role", "view"),
        json!([{"kind": "Robot", "name": "r2"}]),
    );
    let bad_subject = event("create", rolebinding_ref(), Some(object), None, 201);
    let error = source()
        .parse_batch(&serde_json::to_vec(&bad_subject).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("9f2c6b1e") && error.contains("User, Group or ServiceAccount"),
        "{error}"
    );
    let object = binding_object(
        "RoleBinding",
        Some("dev"),
        ("Role", "view"),
        json!([{"kind": "User", "name": "b\u{0}b"}]),
    );
    assert!(matches!(
        source().parse_batch(
            &serde_json::to_vec(&event("create", rolebinding_ref(), Some(object), None, 201))
                .unwrap()
        ),
        Err(Refusal::Malformed(_))
    ));
    let mut no_id = event("delete", rolebinding_ref(), None, None, 200);
    no_id.as_object_mut().unwrap().remove("auditID");
    assert!(source()
        .parse_batch(&serde_json::to_vec(&no_id).unwrap())
        .unwrap_err()
        .to_string()
        .contains("auditID"));
    let mut no_time = event("delete", rolebinding_ref(), None, None, 200);
    no_time.as_object_mut().unwrap().remove("stageTimestamp");
    no_time["requestReceivedTimestamp"] = json!("soon");
    assert!(source()
        .parse_batch(&serde_json::to_vec(&no_time).unwrap())
        .is_err());
}

#[test]
fn settings_are_checked() {
    let config =
        |text: &str| toml::from_str::<KubernetesConfig>(&format!("name = \"k\"\n{text}")).unwrap();
    assert!(config("secret = \"\"")
        .source()
        .unwrap_err()
        .contains("`secret` is empty"));
    assert!(config("cluster = \"a/b\"").source().is_err());
    assert!(config("cluster = \"bad\u{202e}\"").source().is_err());
    assert!(toml::from_str::<KubernetesConfig>("name = \"k\"\ntoken = \"x\"").is_err());
    assert_eq!(config("").ignored_users, default_ignored_users());
    assert_eq!(config("").max_body_bytes, 8 * 1024 * 1024);
    assert_eq!(source().kind(), "kubernetes");
}
