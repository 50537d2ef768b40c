//! HashiCorp Vault's audit device: a source of observed changes (see
//! [`crate::observe`]).
//!
//! Vault's `file` and `socket` audit devices write one JSON object per
//! line for every request and every response: `{"time": ..., "type":
//! "response", "auth": {...}, "request": {"id": ..., "operation":
//! "update", "path": "auth/approle/role/ci/secret-id", "data": {...}},
//! "response": {...}, "error": ""}`. Custody reads them from a file
//! (`custody ingest --source NAME FILE`) and from the socket device, which
//! connects to the server's `socket_listen` address and writes the lines
//! (`custody-server/src/observe/socket.rs`). Vault does not push over
//! HTTP: `/v1/connectors/{name}/...` refuses every request.
//!
//! **What is read.** Only `response` records without an `error`: a request
//! record says what was asked, not what was done. Of those ([`record`]):
//! - ACL policies written or deleted (`sys/policy/<name>`,
//!   `sys/policies/acl/<name>`): the policy (`role:<name>`) modified,
//!   created or deleted;
//! - policies attached by a write that sets `policies` or
//!   `token_policies`: to a user or group of an auth method
//!   (`auth/<mount>/users/<name>`, `auth/<mount>/groups/<name>`), a role of
//!   an auth method (`auth/<mount>/role/<name>`: a machine's identity, the
//!   service account `<mount>/<name>`), an identity entity or group
//!   (`identity/entity/name/<name>`, `identity/group/name/<name>`, ...);
//!   the entitlement is the policies the write sets, sorted and
//!   comma-separated;
//! - tokens created (`auth/token/create`, `create-orphan`,
//!   `create/<role>`): the token, named by its display name (`token-ci`
//!   for `-display-name=ci`), else by its accessor as Vault wrote it,
//!   created with its policies;
//! - AppRole secret IDs issued (`auth/<mount>/role/<role>/secret-id`,
//!   `custom-secret-id`) or destroyed: the API key `<mount>/<role>`.
//!
//! **Secrets stay Vault's HMACs.** The audit device writes every token and
//! secret (and, unless a mount is tuned otherwise, every string of request
//! and response data) as `hmac-sha256:<hex>`. Custody keeps what Vault
//! wrote and never asks Vault to unwrap anything. It never reads a client
//! token, a secret ID or any data but `policies`, `token_policies` and
//! `name`; when those are HMAC'd, the HMAC is what is recorded. A record
//! that holds a token in the clear (an audit device with `log_raw`) is
//! refused, naming the record and not the token.
//!
//! **External ID**: the request's `id`, which Vault writes on the request
//! and its response alike.

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use serde::Deserialize;
use serde_json::Value;

use custody_core::model::{ChangeKind, SubjectKind};
use custody_core::observation::{ObservedActor, ObservedChange};

use crate::config::default_max_body_bytes;
use crate::observe::{Fields, Parsed, Source};
use crate::record_json::{at, json_lines, text};
use crate::{Refusal, Request};

/// The prefix of every HMAC the audit device writes.
pub const HMAC_PREFIX: &str = "hmac-sha256:";

/// The settings of a `kind = "vault"` source.
///
/// ```toml
/// [[connectors]]
/// name = "vault"
/// kind = "vault"
/// socket_listen = "127.0.0.1:9201"   # for Vault's socket audit device; none by default
/// # socket_trusted_network = false    # true to listen on an address other than loopback
/// # max_line_bytes = 1048576
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// The connector's name.
    pub name: String,
    /// The TCP address the server listens on for Vault's `socket` audit
    /// device (`vault audit enable socket address=... socket_type=tcp`).
    /// None by default: the records are then read from files only. The
    /// socket is not authenticated: whoever can connect can write records.
    #[serde(default)]
    pub socket_listen: Option<String>,
    /// Whether `socket_listen` may be an address other than loopback; set
    /// it only when the network between Vault and Custody is trusted.
    #[serde(default)]
    pub socket_trusted_network: bool,
    /// The longest line accepted from the socket.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// The largest accepted pushed body: Vault pushes nothing over HTTP,
    /// so it is never used; kept for the settings every source has.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

fn default_max_line_bytes() -> usize {
    1024 * 1024
}

impl VaultConfig {
    /// Checks the settings and builds the source.
    pub fn build_source(&self) -> Result<Box<dyn Source>, String> {
        self.socket_address()?;
        Ok(Box::new(VaultSource))
    }

    /// The socket's address, checked: loopback unless
    /// `socket_trusted_network` says otherwise.
    pub fn socket_address(&self) -> Result<Option<SocketAddr>, String> {
        let problem = |what: String| format!("connector `{}` (vault): {what}", self.name);
        if !(256..=64 * 1024 * 1024).contains(&self.max_line_bytes) {
            return Err(problem(
                "`max_line_bytes` must be between 256 and 67108864".into(),
            ));
        }
        let Some(listen) = &self.socket_listen else {
            return Ok(None);
        };
        let address: SocketAddr = listen.parse().map_err(|_| {
            problem(format!(
                "`socket_listen` = `{}` is not an IP address and port (such as 127.0.0.1:9201)",
                custody_core::text::escape(listen)
            ))
        })?;
        if !address.ip().is_loopback() && !self.socket_trusted_network {
            return Err(problem(format!(
                "`socket_listen` = `{address}` is not a loopback address; the socket is not authenticated, so listen on loopback, or set `socket_trusted_network = true` when only Vault can reach it"
            )));
        }
        Ok(Some(address))
    }
}

/// The Vault source.
#[derive(Debug)]
pub struct VaultSource;

impl Source for VaultSource {
    fn kind(&self) -> &'static str {
        "vault"
    }

    fn authenticate(&self, _request: &Request<'_>) -> Result<(), Refusal> {
        Err(Refusal::Unauthenticated(
            "Vault's audit device writes to a file or a socket, not over HTTP: use `custody ingest` or the connector's `socket_listen`".into(),
        ))
    }

    fn parse_push(&self, _request: &Request<'_>) -> Result<Parsed, Refusal> {
        Err(Refusal::Malformed(
            "Vault's audit device writes to a file or a socket, not over HTTP".into(),
        ))
    }

    fn parse_batch(&self, bytes: &[u8]) -> Result<Parsed, Refusal> {
        let mut parsed = Parsed::default();
        for (raw, value) in json_lines(bytes, "the audit log")? {
            match record(raw, &value)? {
                Some(observation) => parsed.observations.push(observation),
                None => parsed.skipped += 1,
            }
        }
        Ok(parsed)
    }
}

/// One audit record: its observation, `None` when it changes no access
/// (a request record, an error, a read, a login).
pub fn record(raw: &[u8], entry: &Value) -> Result<Option<ObservedChange>, Refusal> {
    if text(entry, &["type"]) != Some("response") {
        return Ok(None);
    }
    if at(entry, &["error"]).is_some_and(|error| !error.is_null() && error != "") {
        return Ok(None);
    }
    let Some(request_id) = text(entry, &["request", "id"]) else {
        return Err(Refusal::Malformed(
            "a response record has no `request.id`".into(),
        ));
    };
    let read = Record { request_id, entry };
    let Some(path) = text(entry, &["request", "path"]) else {
        return Err(read.malformed("`request.path` is missing"));
    };
    let operation = text(entry, &["request", "operation"]).unwrap_or("");
    let Some(change) = classify(path, operation, entry) else {
        return Ok(None);
    };
    read.refuse_clear_text_secrets()?;
    let namespace = text(entry, &["request", "namespace", "path"])
        .map(|namespace| namespace.trim_matches('/'))
        .filter(|namespace| !namespace.is_empty());
    let resource = match namespace {
        Some(namespace) => format!("{namespace}/{}", change.resource),
        None => change.resource.clone(),
    };
    let occurred_at = crate::record_json::time(entry, &["time"], request_id)?;
    let mut hints: Vec<String> = Vec::new();
    let sections: [&[&str]; 2] = [&["auth"], &["response", "auth"]];
    for section in sections {
        let field = |name: &'static str| [section, &[name]].concat();
        if let Some(display) = text(entry, &field("display_name")) {
            hints.push(display.to_string());
        }
        if let Some(metadata) = at(entry, &field("metadata")).and_then(Value::as_object) {
            hints.extend(
                metadata
                    .values()
                    .filter_map(Value::as_str)
                    .map(str::to_string),
            );
        }
    }
    // Request headers the audit device was told to keep
    // (`sys/config/auditing/request-headers`), such as X-Custody-Case.
    if let Some(headers) = at(entry, &["request", "headers"]).and_then(Value::as_object) {
        for values in headers.values() {
            match values {
                Value::String(value) => hints.push(value.clone()),
                Value::Array(values) => {
                    hints.extend(values.iter().filter_map(Value::as_str).map(str::to_string));
                }
                _ => {}
            }
        }
    }
    Fields {
        external_id: request_id,
        action: &format!("{operation} {path}"),
        occurred_at,
        actor: read.actor(),
        subject: (change.subject.0, &change.subject.1),
        kind: change.kind,
        entitlement: &change.entitlement,
        resource: Some(&resource),
        hints: hints.iter().map(String::as_str).collect(),
        references: Vec::new(),
        raw,
    }
    .build()
    .map(Some)
}

/// What a request did, in Custody's terms.
#[derive(Debug, PartialEq, Eq)]
struct Classified {
    subject: (SubjectKind, String),
    kind: ChangeKind,
    entitlement: String,
    resource: String,
}

/// What the request at `path` did, `None` when it changes no access
/// Custody reads.
fn classify(path: &str, operation: &str, entry: &Value) -> Option<Classified> {
    let writes = matches!(operation, "create" | "update");
    let deletes = operation == "delete";
    if !writes && !deletes {
        return None;
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let classified = |kind: SubjectKind,
                      id: String,
                      change: ChangeKind,
                      entitlement: String,
                      resource: String| {
        Some(Classified {
            subject: (kind, id),
            kind: change,
            entitlement,
            resource,
        })
    };
    match parts.as_slice() {
        // ACL policies.
        ["sys", "policy", name] | ["sys", "policies", "acl", name] => classified(
            SubjectKind::Role,
            (*name).to_string(),
            match operation {
                "delete" => ChangeKind::Delete,
                "create" => ChangeKind::Create,
                _ => ChangeKind::Modify,
            },
            "acl-policy".to_string(),
            "sys/policies/acl".to_string(),
        ),
        // Tokens.
        ["auth", "token", "create" | "create-orphan", ..] if writes => {
            // Named as the requester asked for it (`-display-name=ci` is
            // `token-ci`), else by its accessor as Vault wrote it.
            let name = text(entry, &["response", "auth", "display_name"])
                .or_else(|| text(entry, &["response", "auth", "accessor"]))?;
            let role = match parts.as_slice() {
                [_, _, "create", role] => format!("auth/token/roles/{role}"),
                _ => "auth/token".to_string(),
            };
            classified(
                SubjectKind::Token,
                name.to_string(),
                ChangeKind::Create,
                policies(at(entry, &["response", "auth", "policies"]))
                    .unwrap_or_else(|| "no-policies".to_string()),
                role,
            )
        }
        // AppRole secret IDs.
        ["auth", mount, "role", role, "secret-id" | "custom-secret-id"] if writes => classified(
            SubjectKind::ApiKey,
            format!("{mount}/{role}"),
            ChangeKind::Create,
            "secret-id".to_string(),
            format!("auth/{mount}"),
        ),
        ["auth", mount, "role", role, "secret-id" | "secret-id-accessor", "destroy"]
            if writes || deletes =>
        {
            classified(
                SubjectKind::ApiKey,
                format!("{mount}/{role}"),
                ChangeKind::Delete,
                "secret-id".to_string(),
                format!("auth/{mount}"),
            )
        }
        // Policies attached to an auth method's users, groups and roles.
        ["auth", mount, collection @ ("users" | "groups" | "role"), name] => {
            let kind = match *collection {
                "users" => SubjectKind::User,
                "groups" => SubjectKind::Group,
                _ => SubjectKind::ServiceAccount,
            };
            let id = if kind == SubjectKind::ServiceAccount {
                format!("{mount}/{name}")
            } else {
                (*name).to_string()
            };
            attached(entry, deletes, kind, id, format!("auth/{mount}"))
        }
        // Identity entities and groups.
        ["identity", object @ ("entity" | "group"), rest @ ..] => {
            let kind = if *object == "entity" {
                SubjectKind::User
            } else {
                SubjectKind::Group
            };
            let id = match rest {
                ["name", name] => (*name).to_string(),
                ["id", id] => format!("id/{id}"),
                [] => text(entry, &["request", "data", "name"])?.to_string(),
                _ => return None,
            };
            attached(entry, deletes, kind, id, format!("identity/{object}"))
        }
        _ => None,
    }
}

/// A write that sets policies on `subject`, or a delete of it.
fn attached(
    entry: &Value,
    deletes: bool,
    kind: SubjectKind,
    id: String,
    resource: String,
) -> Option<Classified> {
    if deletes {
        return Some(Classified {
            subject: (kind, id),
            kind: ChangeKind::Delete,
            entitlement: "all-policies".to_string(),
            resource,
        });
    }
    let data = at(entry, &["request", "data"])?;
    let set = policies(data.get("token_policies")).or_else(|| policies(data.get("policies")))?;
    Some(Classified {
        subject: (kind, id),
        kind: ChangeKind::Grant,
        entitlement: set,
        resource,
    })
}

/// A `policies` value as Vault's API takes it (a comma-separated string,
/// or a list), sorted and comma-separated; an HMAC'd value stays the HMAC.
/// `None` when it names no policy.
fn policies(value: Option<&Value>) -> Option<String> {
    let mut names: Vec<String> = match value? {
        Value::String(text) if text.starts_with(HMAC_PREFIX) => vec![text.clone()],
        Value::String(text) => text
            .split(',')
            .map(|name| name.trim().to_string())
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|name| name.trim().to_string())
            .collect(),
        _ => return None,
    };
    names.retain(|name| !name.is_empty());
    names.sort();
    names.dedup();
    (!names.is_empty()).then(|| names.join(","))
}

struct Record<'a> {
    request_id: &'a str,
    entry: &'a Value,
}

impl Record<'_> {
    fn malformed(&self, what: &str) -> Refusal {
        Refusal::Malformed(format!(
            "record {}: {what}",
            custody_core::text::escape(self.request_id)
        ))
    }

    /// The token that made the request: its entity, else its display name
    /// (`root`, `token`, `approle`), its accessor (as Vault wrote it) as
    /// the session.
    fn actor(&self) -> ObservedActor {
        let entity = text(self.entry, &["auth", "entity_id"]);
        let display = text(self.entry, &["auth", "display_name"]);
        ObservedActor {
            id: entity.or(display).unwrap_or("unauthenticated").to_string(),
            kind: None,
            display: display.map(str::to_string),
            on_behalf_of: None,
            session: text(self.entry, &["auth", "accessor"]).map(str::to_string),
            source_identity: None,
            principal: None,
        }
    }

    /// Refuses a record that holds a token or secret in the clear (an
    /// audit device with `log_raw = true`), naming the field, never the
    /// value.
    fn refuse_clear_text_secrets(&self) -> Result<(), Refusal> {
        const SECRETS: &[&[&str]] = &[
            &["auth", "client_token"],
            &["request", "client_token"],
            &["response", "auth", "client_token"],
            &["response", "data", "secret_id"],
            &["response", "wrap_info", "token"],
        ];
        for path in SECRETS {
            if let Some(value) = text(self.entry, path) {
                if !value.starts_with(HMAC_PREFIX) {
                    return Err(self.malformed(&format!(
                        "`{}` is not an HMAC: the audit device writes secrets in the clear (log_raw); Custody reads only devices that HMAC them",
                        path.join(".")
                    )));
                }
            }
        }
        Ok(())
    }
}
