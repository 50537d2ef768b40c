//! Kubernetes API server audit events: a source of observed changes (see
//! [`crate::observe`]).
//!
//! The API server writes an `audit.k8s.io/v1` `Event` per request and
//! stage. Its **webhook backend** POSTs them, batched as an `EventList`, to
//! `/v1/connectors/{name}/webhook`, with `Authorization: Bearer <token>`
//! from the webhook's kubeconfig; the token is this connector's `secret`,
//! compared in constant time ([`crate::observe::verify_shared_secret`]).
//! Its **log backend** writes one `Event` per line to a file, read with
//! `custody ingest --source NAME FILE` (an `EventList` document is read
//! too).
//!
//! **What is read** ([`event`]): only events at stage `ResponseComplete`
//! whose `responseStatus.code` is 2xx (a refused or failed request changed
//! nothing), and of those:
//! - RoleBindings and ClusterRoleBindings created, updated, patched or
//!   deleted: at the `RequestResponse` level (or `Request`, for a create
//!   or an update) the binding's `roleRef` and `subjects` are known, and
//!   each subject is one observation: a `User` (`user:<name>`), a `Group`
//!   (`group:<name>`) or a `ServiceAccount`
//!   (`service_account:<namespace>/<name>`) granted (revoked, for a
//!   delete that returns the binding) `clusterrole:<name>` or
//!   `role:<name>` on `<cluster>` (a ClusterRoleBinding) or
//!   `<cluster>/<namespace>` (a RoleBinding). At the `Metadata` level only
//!   the binding is known: the binding itself (`role:rolebinding:<ns>/<name>`
//!   or `role:clusterrolebinding:<name>`) is created, modified or deleted,
//!   with the entitlement `binding`;
//! - ServiceAccount tokens requested (`serviceaccounts/token`, `create`):
//!   the service account `<namespace>/<name>` creates a `token`.
//!
//! Requests made by the users in `ignored_users` (by default the kubelets
//! and the control plane's own components, which request tokens for every
//! pod) are skipped, unless they impersonate someone.
//!
//! **Actor**: `user.username`; whom it impersonated (`impersonatedUser`)
//! is the actor's `on_behalf_of`.
//!
//! **External ID**: the event's `auditID`; a binding with several subjects
//! gives `<auditID>/1`, `<auditID>/2`, ... in the order of its subjects.

#[cfg(test)]
mod tests;

use serde::Deserialize;
use serde_json::Value;

use custody_core::model::{ChangeKind, PrincipalKind, SubjectKind};
use custody_core::observation::{ObservedActor, ObservedChange};

use crate::config::Secret;
use crate::observe::{verify_shared_secret, Fields, Parsed, Source};
use crate::record_json::{at, json_lines, text};
use crate::{Refusal, Request};

/// The settings of a `kind = "kubernetes"` source.
///
/// ```toml
/// [[connectors]]
/// name = "k8s-prod"
/// kind = "kubernetes"
/// secret = "the bearer token in the audit webhook's kubeconfig"
/// cluster = "prod"        # names the cluster in resources; "kubernetes" by default
/// # ignored_users = ["system:node:*", "system:kube-controller-manager", "system:kube-scheduler", "system:apiserver"]
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The connector's name.
    pub name: String,
    /// The bearer token the audit webhook sends (`users[].user.token` in
    /// its kubeconfig); webhooks are refused without it.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The cluster's name, the start of every resource.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// Users whose requests are skipped (`*` at the end matches any rest).
    #[serde(default = "default_ignored_users")]
    pub ignored_users: Vec<String>,
    /// The largest accepted body: a batch of events (the API server sends
    /// up to 400 by default), 8 MiB by default.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

fn default_max_body_bytes() -> usize {
    8 * 1024 * 1024
}

fn default_cluster() -> String {
    "kubernetes".to_string()
}

/// The users skipped by default: the kubelets (which request a token for
/// every pod's projected volume, and renew it) and the control plane.
pub fn default_ignored_users() -> Vec<String> {
    [
        "system:node:*",
        "system:kube-controller-manager",
        "system:kube-scheduler",
        "system:apiserver",
    ]
    .map(str::to_string)
    .to_vec()
}

impl KubernetesConfig {
    /// Checks the settings and builds the source.
    pub fn build_source(&self) -> Result<Box<dyn Source>, String> {
        self.source()
            .map(|source| Box::new(source) as Box<dyn Source>)
    }

    /// Checks the settings and builds the source, as its own type.
    pub fn source(&self) -> Result<KubernetesSource, String> {
        let problem = |what: String| format!("connector `{}` (kubernetes): {what}", self.name);
        let authorization = match &self.secret {
            None => None,
            Some(secret) if secret.expose().is_empty() => {
                return Err(problem(
                    "`secret` is empty; set the bearer token of the audit webhook's kubeconfig, or leave `secret` out to take no webhooks".into(),
                ))
            }
            Some(secret) => Some(Secret::new(format!("Bearer {}", secret.expose()))),
        };
        custody_core::model::validate_name("cluster", &self.cluster)
            .map_err(|error| problem(format!("`cluster`: {error}")))?;
        if self.cluster.contains('/') {
            return Err(problem("`cluster` must not hold a `/`".into()));
        }
        Ok(KubernetesSource {
            authorization,
            cluster: self.cluster.clone(),
            ignored_users: self.ignored_users.clone(),
        })
    }
}

/// A configured Kubernetes source.
#[derive(Debug)]
pub struct KubernetesSource {
    authorization: Option<Secret>,
    cluster: String,
    ignored_users: Vec<String>,
}

impl Source for KubernetesSource {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn authenticate(&self, request: &Request<'_>) -> Result<(), Refusal> {
        let Some(expected) = &self.authorization else {
            return Err(Refusal::Unauthenticated(
                "this source takes no webhooks: its `secret` is not configured".into(),
            ));
        };
        if request.headers.repeated("Authorization") {
            return Err(Refusal::Unauthenticated(
                "the Authorization header is sent more than once".into(),
            ));
        }
        verify_shared_secret(
            expected,
            request.headers.get("Authorization"),
            "Authorization",
        )
    }

    fn parse_push(&self, request: &Request<'_>) -> Result<Parsed, Refusal> {
        let list: EventList<'_> = serde_json::from_slice(request.body).map_err(|error| {
            Refusal::Malformed(format!(
                "the webhook's body is not an audit.k8s.io EventList: {error}"
            ))
        })?;
        if list.kind != "EventList" {
            return Err(Refusal::Malformed(format!(
                "the webhook's body is a `{}`, not an EventList",
                custody_core::text::escape(&list.kind)
            )));
        }
        let mut events = Vec::with_capacity(list.items.len());
        for item in list.items {
            let value: Value = serde_json::from_str(item.get())
                .map_err(|error| Refusal::Malformed(format!("an event of the list: {error}")))?;
            events.push((item.get().as_bytes(), value));
        }
        self.read(&events)
    }

    fn parse_batch(&self, bytes: &[u8]) -> Result<Parsed, Refusal> {
        // One document (an EventList, or a single Event), else JSON lines.
        if let Ok(list) = serde_json::from_slice::<EventList<'_>>(bytes) {
            if list.kind == "EventList" {
                let request = Request {
                    endpoint: "",
                    headers: &crate::Headers::default(),
                    body: bytes,
                    tls: false,
                };
                return self.parse_push(&request);
            }
        }
        self.read(&json_lines(bytes, "the audit log")?)
    }
}

#[derive(Deserialize)]
struct EventList<'a> {
    #[serde(default)]
    kind: String,
    #[serde(borrow, default)]
    items: Vec<&'a serde_json::value::RawValue>,
}

impl KubernetesSource {
    fn read(&self, events: &[(&[u8], Value)]) -> Result<Parsed, Refusal> {
        let mut parsed = Parsed::default();
        for (raw, value) in events {
            let observations = self.event(raw, value)?;
            if observations.is_empty() {
                parsed.skipped += 1;
            }
            parsed.observations.extend(observations);
        }
        Ok(parsed)
    }

    fn ignored(&self, event: &Value) -> bool {
        if at(event, &["impersonatedUser"]).is_some_and(|user| !user.is_null()) {
            return false;
        }
        let Some(username) = text(event, &["user", "username"]) else {
            return false;
        };
        self.ignored_users
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => username.starts_with(prefix),
                None => username == pattern,
            })
    }

    /// One event's observations: none when it changes no access.
    pub fn event(&self, raw: &[u8], event: &Value) -> Result<Vec<ObservedChange>, Refusal> {
        if text(event, &["stage"]) != Some("ResponseComplete") {
            return Ok(Vec::new());
        }
        let code = at(event, &["responseStatus", "code"]).and_then(Value::as_u64);
        if !code.is_some_and(|code| (200..300).contains(&code)) {
            return Ok(Vec::new());
        }
        let Some(audit_id) = text(event, &["auditID"]) else {
            return Err(Refusal::Malformed("an audit event has no `auditID`".into()));
        };
        let read = Event {
            audit_id,
            event,
            cluster: &self.cluster,
        };
        let resource = text(event, &["objectRef", "resource"]);
        let subresource = text(event, &["objectRef", "subresource"]);
        let verb = text(event, &["verb"]).unwrap_or("");
        let api_group = text(event, &["objectRef", "apiGroup"]);
        let changes = match (resource, subresource, verb) {
            (
                Some(kind @ ("rolebindings" | "clusterrolebindings")),
                None,
                "create" | "update" | "patch" | "delete",
            ) if api_group.is_none_or(|group| group == "rbac.authorization.k8s.io") => {
                read.binding(kind == "clusterrolebindings", verb)?
            }
            (Some("serviceaccounts"), Some("token"), "create")
                if api_group.is_none_or(str::is_empty) =>
            {
                read.token_request()?
            }
            _ => return Ok(Vec::new()),
        };
        if changes.is_empty() || self.ignored(event) {
            return Ok(Vec::new());
        }
        let occurred_at = match text(event, &["stageTimestamp"]) {
            Some(_) => crate::record_json::time(event, &["stageTimestamp"], audit_id)?,
            None => crate::record_json::time(event, &["requestReceivedTimestamp"], audit_id)?,
        };
        let actor = read.actor()?;
        let action = format!(
            "{verb} {}{}",
            resource.unwrap_or(""),
            subresource.map(|sub| format!("/{sub}")).unwrap_or_default()
        );
        let several = changes.len() > 1;
        changes
            .into_iter()
            .enumerate()
            .map(|(index, change)| {
                let external_id = if several {
                    format!("{audit_id}/{}", index + 1)
                } else {
                    audit_id.to_string()
                };
                Fields {
                    external_id: &external_id,
                    action: &action,
                    occurred_at,
                    actor: actor.clone(),
                    subject: (change.subject.0, &change.subject.1),
                    kind: change.kind,
                    entitlement: &change.entitlement,
                    resource: Some(&change.resource),
                    hints: change.hints.iter().map(String::as_str).collect(),
                    references: Vec::new(),
                    raw,
                }
                .build()
            })
            .collect()
    }
}

struct Change {
    subject: (SubjectKind, String),
    kind: ChangeKind,
    entitlement: String,
    resource: String,
    hints: Vec<String>,
}

struct Event<'a> {
    audit_id: &'a str,
    event: &'a Value,
    cluster: &'a str,
}

impl Event<'_> {
    fn malformed(&self, what: &str) -> Refusal {
        Refusal::Malformed(format!(
            "event {}: {what}",
            custody_core::text::escape(self.audit_id)
        ))
    }

    fn actor(&self) -> Result<ObservedActor, Refusal> {
        let username = text(self.event, &["user", "username"])
            .ok_or_else(|| self.malformed("`user.username` is missing"))?;
        let kind = username
            .starts_with("system:serviceaccount:")
            .then_some(PrincipalKind::Service);
        let session = at(
            self.event,
            &[
                "user",
                "extra",
                "authentication.kubernetes.io/credential-id",
            ],
        )
        .and_then(Value::as_array)
        .and_then(|values| values.first())
        .and_then(Value::as_str)
        .map(str::to_string);
        Ok(ObservedActor {
            id: username.to_string(),
            kind,
            display: None,
            on_behalf_of: text(self.event, &["impersonatedUser", "username"]).map(str::to_string),
            session,
            source_identity: None,
            principal: None,
        })
    }

    fn namespace(&self) -> Option<&str> {
        text(self.event, &["objectRef", "namespace"])
    }

    /// The resource of a namespaced object, or of the cluster.
    fn resource(&self, namespaced: bool) -> Result<String, Refusal> {
        if !namespaced {
            return Ok(self.cluster.to_string());
        }
        let namespace = self
            .namespace()
            .ok_or_else(|| self.malformed("`objectRef.namespace` is missing"))?;
        Ok(format!("{}/{namespace}", self.cluster))
    }

    /// Text of an object's metadata that may carry a case ID: its name,
    /// its annotations and labels.
    fn hints(object: Option<&Value>) -> Vec<String> {
        let Some(metadata) = object.and_then(|object| object.get("metadata")) else {
            return Vec::new();
        };
        let mut hints: Vec<String> = text(metadata, &["name"])
            .map(str::to_string)
            .into_iter()
            .collect();
        for map in ["annotations", "labels"] {
            if let Some(map) = metadata.get(map).and_then(Value::as_object) {
                hints.extend(map.values().filter_map(Value::as_str).map(str::to_string));
            }
        }
        hints
    }

    /// A RoleBinding or ClusterRoleBinding written: one change per subject
    /// when its content is known, else the binding itself.
    fn binding(&self, cluster_wide: bool, verb: &str) -> Result<Vec<Change>, Refusal> {
        let resource = self.resource(!cluster_wide)?;
        let has_role_ref = |object: &&Value| object.get("roleRef").is_some_and(Value::is_object);
        let response = at(self.event, &["responseObject"]).filter(has_role_ref);
        let request = at(self.event, &["requestObject"]).filter(has_role_ref);
        let object = match verb {
            "create" | "update" => response.or(request),
            _ => response,
        };
        let Some(object) = object else {
            let name = text(self.event, &["objectRef", "name"])
                .or_else(|| text(self.event, &["requestObject", "metadata", "name"]))
                .ok_or_else(|| self.malformed("the binding's name is not in `objectRef.name`"))?;
            let binding = if cluster_wide {
                format!("clusterrolebinding:{name}")
            } else {
                format!(
                    "rolebinding:{}/{name}",
                    self.namespace().unwrap_or_default()
                )
            };
            return Ok(vec![Change {
                subject: (SubjectKind::Role, binding),
                kind: match verb {
                    "create" => ChangeKind::Create,
                    "delete" => ChangeKind::Delete,
                    _ => ChangeKind::Modify,
                },
                entitlement: "binding".to_string(),
                resource,
                hints: Event::hints(at(self.event, &["requestObject"])),
            }]);
        };
        let role_kind = text(object, &["roleRef", "kind"])
            .ok_or_else(|| self.malformed("`roleRef.kind` is missing"))?;
        let role_name = text(object, &["roleRef", "name"])
            .ok_or_else(|| self.malformed("`roleRef.name` is missing"))?;
        let entitlement = format!("{}:{role_name}", role_kind.to_ascii_lowercase());
        let kind = if verb == "delete" {
            ChangeKind::Revoke
        } else {
            ChangeKind::Grant
        };
        let hints = Event::hints(Some(object));
        let subjects = object
            .get("subjects")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        subjects
            .iter()
            .map(|subject| {
                let name = text(subject, &["name"])
                    .ok_or_else(|| self.malformed("a subject has no `name`"))?;
                let subject = match text(subject, &["kind"]) {
                    Some("User") => (SubjectKind::User, name.to_string()),
                    Some("Group") => (SubjectKind::Group, name.to_string()),
                    Some("ServiceAccount") => {
                        let namespace = text(subject, &["namespace"])
                            .or_else(|| self.namespace())
                            .ok_or_else(|| {
                                self.malformed("a ServiceAccount subject has no `namespace`")
                            })?;
                        (SubjectKind::ServiceAccount, format!("{namespace}/{name}"))
                    }
                    _ => {
                        return Err(self
                            .malformed("a subject's `kind` is not User, Group or ServiceAccount"))
                    }
                };
                Ok(Change {
                    subject,
                    kind,
                    entitlement: entitlement.clone(),
                    resource: resource.clone(),
                    hints: hints.clone(),
                })
            })
            .collect()
    }

    /// A ServiceAccount token requested (TokenRequest).
    fn token_request(&self) -> Result<Vec<Change>, Refusal> {
        let name = text(self.event, &["objectRef", "name"])
            .ok_or_else(|| self.malformed("`objectRef.name` is missing"))?;
        let namespace = self
            .namespace()
            .ok_or_else(|| self.malformed("`objectRef.namespace` is missing"))?;
        Ok(vec![Change {
            subject: (SubjectKind::ServiceAccount, format!("{namespace}/{name}")),
            kind: ChangeKind::Create,
            entitlement: "token".to_string(),
            resource: self.resource(true)?,
            hints: Event::hints(at(self.event, &["requestObject"])),
        }])
    }
}
