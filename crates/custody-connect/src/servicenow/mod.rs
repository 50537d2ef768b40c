//! The ServiceNow connector: outbound REST messages from a business rule
//! in, Table API calls out.
//!
//! ServiceNow has no webhook of its own, so the shape of what arrives is
//! ours: an after business rule on the request item table (`sc_req_item`)
//! and one on the catalog task table (`sc_task`) post a JSON message
//! ([`message`]) describing the record as it is now and as it was before the
//! update. The message is authenticated either with an HMAC-SHA256 of the
//! body, which the business rule computes with
//! `GlideCertificateEncryption.generateMac`, in the `X-Custody-Signature`
//! header (base64, as `generateMac` returns it), or with basic auth, which
//! is refused over plain HTTP. The window is the record's `sys_updated_on`,
//! inside the signed body.
//!
//! What the messages mean (docs/connectors/servicenow.md has the business
//! rule to paste and the whole table):
//! - a request item carrying the mapped fields opens a case
//!   ([`crate::Action::Request`]) with the ticket
//!   `servicenow:<RITM number>/<sys_id>`: the sys_id is in the ticket key so
//!   the write-back knows which record to patch without a lookup;
//! - its `approval` becoming `approved` is the approver's approval, becoming
//!   `rejected` a denial;
//! - a catalog task closed complete is a completed execution, closed
//!   incomplete a failed one;
//! - mapped fields edited later are a [`crate::Action::TicketUpdated`].
//!
//! Write-back is one `PATCH /api/now/table/{table}/{sys_id}` per state
//! change, setting the case ID in `correlation_id` (configurable) and adding
//! a work note.

mod message;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

use crate::config::{default_max_body_bytes, default_window_seconds, Secret};
use crate::{
    signature, Answer, Call, Connector, Inbound, Outcome, OutcomeKind, Refusal, Request, Signed,
    Update,
};

/// The header carrying the base64 HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "x-custody-signature";

/// The ticket system the connector's tickets are recorded under.
pub const TICKET_SYSTEM: &str = "servicenow";

/// The settings of a `kind = "servicenow"` connector.
///
/// ```toml
/// [[connectors]]
/// name = "servicenow"
/// kind = "servicenow"
/// secret = "..."                                # the HMAC key the business rule signs with
/// instance_url = "https://example.service-now.com"
/// api_username = "custody.integration"          # or api_token = "..." (OAuth bearer)
/// api_password = "..."
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowConfig {
    /// The connector's name.
    pub name: String,
    /// How the business rule authenticates its messages.
    #[serde(default)]
    pub inbound_auth: InboundAuth,
    /// The HMAC key for `inbound_auth = "hmac"`: the text the business rule
    /// passes, base64-encoded, to `generateMac`.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The user name for `inbound_auth = "basic"`.
    #[serde(default)]
    pub inbound_username: Option<String>,
    /// The password for `inbound_auth = "basic"`.
    #[serde(default)]
    pub inbound_password: Option<Secret>,
    /// Whether TLS ends at a trusted proxy in front of Custody, so basic
    /// auth arriving as plain HTTP was encrypted on the network.
    #[serde(default)]
    pub tls_terminated_by_proxy: bool,
    /// Seconds a message stays acceptable after its record's
    /// `sys_updated_on`.
    #[serde(default = "default_window_seconds")]
    pub window_seconds: u64,
    /// The largest accepted body.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// The instance's base URL, e.g. `https://example.service-now.com`.
    pub instance_url: String,
    /// The Table API user for basic auth.
    #[serde(default)]
    pub api_username: Option<String>,
    /// Its password.
    #[serde(default)]
    pub api_password: Option<Secret>,
    /// An OAuth access token for the Table API, instead of basic auth.
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// The table whose records open cases (request items).
    #[serde(default = "default_request_table")]
    pub request_table: String,
    /// The table whose records report executions (catalog tasks).
    #[serde(default = "default_task_table")]
    pub task_table: String,
    /// The field that holds the case ID in ServiceNow, read in and written
    /// back.
    #[serde(default = "default_case_id_field")]
    pub case_id_field: String,
    /// Which of a user's identifiers is the external user the identity map
    /// knows them by.
    #[serde(default)]
    pub identify_users_by: UserKey,
    /// Where the change's parts are in the message's `fields`.
    #[serde(default)]
    pub fields: FieldMapping,
    /// Which values of `approval` and `state` mean what.
    #[serde(default)]
    pub states: StateMapping,
}

/// How inbound messages authenticate.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InboundAuth {
    /// An HMAC-SHA256 of the body under `secret`, in `X-Custody-Signature`.
    #[default]
    Hmac,
    /// HTTP basic auth with `inbound_username` and `inbound_password`,
    /// only over TLS.
    Basic,
}

/// Which identifier of a ServiceNow user is their external user.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UserKey {
    /// The `sys_user` record's sys_id (stable; the default).
    #[default]
    SysId,
    /// The user's email address.
    Email,
}

/// The names, in a message's `fields`, of the parts of the change. An empty
/// name leaves an optional part unmapped.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FieldMapping {
    /// The subject's kind (`user`, `service_account`, ...); `user` when
    /// unmapped or empty.
    pub subject_kind: String,
    /// The subject's ID (required).
    pub subject_id: String,
    /// The entitlement (required).
    pub entitlement: String,
    /// The change (`grant`, `revoke`, ...); `grant` when unmapped or empty.
    pub change: String,
    /// The resource.
    pub resource: String,
    /// How long, as `8h`, `30d`.
    pub duration: String,
    /// The justification.
    pub justification: String,
}

impl Default for FieldMapping {
    fn default() -> FieldMapping {
        FieldMapping {
            subject_kind: "custody_subject_kind".into(),
            subject_id: "custody_subject".into(),
            entitlement: "custody_entitlement".into(),
            change: "custody_change".into(),
            resource: "custody_resource".into(),
            duration: "custody_duration".into(),
            justification: "description".into(),
        }
    }
}

/// The values of the `approval` and `state` fields the connector acts on.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StateMapping {
    /// The request item's `approval` value that is an approval.
    pub approved: String,
    /// The request item's `approval` value that is a denial.
    pub rejected: String,
    /// The catalog task `state` values that are a completed execution
    /// (`3`, Closed Complete).
    pub closed_complete: Vec<String>,
    /// The catalog task `state` values that are a failed execution (`4`,
    /// Closed Incomplete).
    pub closed_incomplete: Vec<String>,
}

impl Default for StateMapping {
    fn default() -> StateMapping {
        StateMapping {
            approved: "approved".into(),
            rejected: "rejected".into(),
            closed_complete: vec!["3".into()],
            closed_incomplete: vec!["4".into()],
        }
    }
}

fn default_request_table() -> String {
    "sc_req_item".into()
}

fn default_task_table() -> String {
    "sc_task".into()
}

fn default_case_id_field() -> String {
    "correlation_id".into()
}

impl ServiceNowConfig {
    /// Checks the settings and builds the connector.
    pub fn build(&self) -> Result<Box<dyn Connector>, String> {
        Ok(Box::new(ServiceNow::new(self)?))
    }
}

/// How the connector checks inbound messages.
#[derive(Clone)]
enum InboundCheck {
    Hmac { key: Vec<u8> },
    Basic { credentials: Vec<u8> },
}

/// The ServiceNow connector, built from a checked [`ServiceNowConfig`].
pub struct ServiceNow {
    inbound: InboundCheck,
    tls_terminated_by_proxy: bool,
    window_seconds: u64,
    api_base: String,
    api_authorization: String,
    request_table: String,
    task_table: String,
    case_id_field: String,
    identify_users_by: UserKey,
    fields: FieldMapping,
    states: StateMapping,
}

impl ServiceNow {
    /// Checks `config` and builds the connector, or says what is wrong.
    pub fn new(config: &ServiceNowConfig) -> Result<ServiceNow, String> {
        let name = &config.name;
        let problem = |what: String| format!("connector `{name}` (servicenow): {what}");
        let inbound = match config.inbound_auth {
            InboundAuth::Hmac => {
                if config.inbound_username.is_some() || config.inbound_password.is_some() {
                    return Err(problem("inbound_username and inbound_password are for inbound_auth = \"basic\"; with hmac, set only secret".into()));
                }
                let secret = config
                    .secret
                    .as_ref()
                    .map(Secret::expose)
                    .unwrap_or_default();
                if secret.len() < 16 {
                    return Err(problem("secret must be at least 16 characters: it is the HMAC key the business rule signs with".into()));
                }
                InboundCheck::Hmac {
                    key: secret.as_bytes().to_vec(),
                }
            }
            InboundAuth::Basic => {
                if config.secret.is_some() {
                    return Err(problem("secret is for inbound_auth = \"hmac\"; with basic, set inbound_username and inbound_password".into()));
                }
                let username = config.inbound_username.as_deref().unwrap_or_default();
                let password = config
                    .inbound_password
                    .as_ref()
                    .map(Secret::expose)
                    .unwrap_or_default();
                if username.is_empty() || username.contains(':') {
                    return Err(problem(
                        "inbound_username must be set and hold no ':'".into(),
                    ));
                }
                if password.len() < 16 {
                    return Err(problem(
                        "inbound_password must be at least 16 characters".into(),
                    ));
                }
                InboundCheck::Basic {
                    credentials: format!("{username}:{password}").into_bytes(),
                }
            }
        };
        let api_base = instance_base(&config.instance_url).map_err(problem)?;
        let api_authorization = match (&config.api_username, &config.api_password, &config.api_token) {
            (Some(user), Some(password), None) if !user.is_empty() && !user.contains(':') && !password.expose().is_empty() => {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password.expose()))
                )
            }
            (None, None, Some(token)) if is_header_safe(token.expose()) => {
                format!("Bearer {}", token.expose())
            }
            _ => {
                return Err(problem(
                    "set either api_username and api_password (basic auth) or api_token (an OAuth bearer token) for the Table API, not both".into(),
                ))
            }
        };
        for (key, value) in [
            ("request_table", &config.request_table),
            ("task_table", &config.task_table),
            ("case_id_field", &config.case_id_field),
        ] {
            if !is_table_or_field_name(value) {
                return Err(problem(format!(
                    "{key} `{}` is not a table or field name (lowercase letters, digits and '_')",
                    custody_core::text::escape(value)
                )));
            }
        }
        if config.request_table == config.task_table {
            return Err(problem("request_table and task_table must differ".into()));
        }
        if config.fields.subject_id.is_empty() || config.fields.entitlement.is_empty() {
            return Err(problem(
                "fields.subject_id and fields.entitlement must name a field".into(),
            ));
        }
        let states = &config.states;
        if states.approved.is_empty()
            || states.rejected.is_empty()
            || states.approved == states.rejected
        {
            return Err(problem(
                "states.approved and states.rejected must be two different values".into(),
            ));
        }
        if states
            .closed_complete
            .iter()
            .any(|state| states.closed_incomplete.contains(state))
        {
            return Err(problem(
                "a state cannot be both closed_complete and closed_incomplete".into(),
            ));
        }
        Ok(ServiceNow {
            inbound,
            tls_terminated_by_proxy: config.tls_terminated_by_proxy,
            window_seconds: config.window_seconds,
            api_base,
            api_authorization,
            request_table: config.request_table.clone(),
            task_table: config.task_table.clone(),
            case_id_field: config.case_id_field.clone(),
            identify_users_by: config.identify_users_by,
            fields: config.fields.clone(),
            states: config.states.clone(),
        })
    }

    fn authenticate(
        &self,
        request: &Request<'_>,
    ) -> Result<(signature::Verified, Vec<u8>), Refusal> {
        match &self.inbound {
            InboundCheck::Hmac { key } => {
                if request.headers.repeated(SIGNATURE_HEADER) {
                    return Err(Refusal::Unauthenticated(
                        "the X-Custody-Signature header is sent more than once".into(),
                    ));
                }
                let header = request.headers.get(SIGNATURE_HEADER).ok_or_else(|| {
                    Refusal::Unauthenticated("the X-Custody-Signature header is missing".into())
                })?;
                let tag = signature::decode_base64_tag(header, "X-Custody-Signature")?;
                let verified = signature::verify(key, &[request.body], &tag)?;
                Ok((verified, tag))
            }
            InboundCheck::Basic { credentials } => {
                if !request.tls && !self.tls_terminated_by_proxy {
                    return Err(Refusal::Unauthenticated(
                        "basic auth over plain HTTP is refused: send it over HTTPS, or set tls_terminated_by_proxy when TLS ends at a trusted proxy".into(),
                    ));
                }
                if request.headers.repeated("authorization") {
                    return Err(Refusal::Unauthenticated(
                        "the Authorization header is sent more than once".into(),
                    ));
                }
                let header = request.headers.get("authorization").ok_or_else(|| {
                    Refusal::Unauthenticated("the Authorization header is missing".into())
                })?;
                let encoded = header
                    .strip_prefix("Basic ")
                    .or_else(|| header.strip_prefix("basic "))
                    .ok_or_else(|| {
                        Refusal::Unauthenticated(
                            "the Authorization header is not basic auth".into(),
                        )
                    })?;
                let given = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| {
                        Refusal::Unauthenticated("the basic auth credentials are not base64".into())
                    })?;
                // Constant time: both sides are hashed under one key and the
                // tags compared with `verify_slice`, so neither the content
                // nor the length of the expected credentials leaks.
                let expected = signature::hmac_sha256(BASIC_AUTH_KEY, &[credentials]);
                let verified =
                    signature::verify(BASIC_AUTH_KEY, &[&given], &expected).map_err(|_| {
                        Refusal::Unauthenticated("the basic auth credentials are wrong".into())
                    })?;
                // Every message carries the same credentials: the body itself
                // (a record's sys_id and update count) identifies the request.
                Ok((
                    verified,
                    custody_core::id::Sha256Hash::of(request.body).0.to_vec(),
                ))
            }
        }
    }

    fn work_note(update: &Update) -> String {
        let mut note = format!(
            "[Custody] {}\nCase {} is {} ({} by {}).",
            update.summary, update.case_id, update.state, update.event, update.actor
        );
        if let Some(url) = &update.case_url {
            note.push('\n');
            note.push_str(url);
        }
        note
    }
}

/// The key both sides of a basic auth comparison are hashed under; it need
/// not be secret, only fixed.
const BASIC_AUTH_KEY: &[u8] = b"custody servicenow basic auth comparison";

impl Connector for ServiceNow {
    fn kind(&self) -> &'static str {
        "servicenow"
    }

    fn ticket_system(&self) -> Option<&str> {
        Some(TICKET_SYSTEM)
    }

    fn verify(&self, request: &Request<'_>, now_unix: u64) -> Result<Signed, Refusal> {
        let (verified, fingerprint) = self.authenticate(request)?;
        // Only an authenticated body is read, for the time it was updated.
        let message = message::Message::from_body(request.body)?;
        let signed_at = message.updated_at()?.unix_seconds;
        signature::check_window(signed_at, now_unix, self.window_seconds)?;
        Ok(Signed {
            verified,
            fingerprint,
            signed_at,
        })
    }

    fn parse(&self, request: &Request<'_>) -> Result<Vec<Inbound>, Refusal> {
        let message = message::Message::from_body(request.body)?;
        message.inbound(&message::Settings {
            request_table: &self.request_table,
            task_table: &self.task_table,
            identify_users_by: self.identify_users_by,
            fields: &self.fields,
            states: &self.states,
        })
    }

    fn answer(&self, outcomes: &[Outcome]) -> Answer {
        // A case not there yet (a task closed before its item's message
        // arrived) or a write that failed is worth sending again: 503 says
        // so in the instance's outbound log, and the server lets the same
        // signed message in again.
        let retry = outcomes.iter().any(|outcome| match &outcome.kind {
            OutcomeKind::NotFound => true,
            OutcomeKind::Refused { rule } => rule == "internal",
            _ => false,
        });
        let outcomes: Vec<serde_json::Value> = outcomes.iter().map(outcome_json).collect();
        if !retry {
            return Answer::json(200, &serde_json::json!({ "outcomes": outcomes }));
        }
        // Every error answer of Custody is RFC 9457 problem+json
        // (docs/api.md); the outcomes ride along as an extension member.
        let problem = serde_json::json!({
            "type": "urn:custody:problem:unavailable",
            "title": "Unavailable",
            "status": 503,
            "detail": "an action of this message could not be recorded yet (its case is not there, or the write failed); send the message again",
            "outcomes": outcomes,
        });
        Answer {
            status: 503,
            content_type: Some("application/problem+json"),
            body: serde_json::to_vec(&problem).unwrap_or_default(),
        }
    }

    fn write_back(&self, update: &Update) -> Vec<Call> {
        let Some(sys_id) = message::sys_id_of_ticket_key(&update.recipient) else {
            // A ticket added by hand (`servicenow:RITM0010001`) names no
            // record the Table API can patch.
            return Vec::new();
        };
        let mut body = BTreeMap::new();
        body.insert(self.case_id_field.as_str(), update.case_id.to_string());
        body.insert("work_notes", Self::work_note(update));
        vec![Call {
            method: "PATCH",
            url: format!(
                "{}/api/now/table/{}/{sys_id}",
                self.api_base, self.request_table
            ),
            headers: vec![
                ("Authorization".into(), self.api_authorization.clone()),
                ("Accept".into(), "application/json".into()),
                ("Content-Type".into(), "application/json".into()),
                // The updated record is not needed back.
                ("X-no-response-body".into(), "true".into()),
            ],
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }]
    }
}

/// One outcome as the business rule's log shows it.
fn outcome_json(outcome: &Outcome) -> serde_json::Value {
    let (kind, detail) = match &outcome.kind {
        OutcomeKind::Recorded { event, state } => (
            "recorded",
            serde_json::json!({"event": event, "state": state}),
        ),
        OutcomeKind::AlreadyRecorded { state } => {
            ("already_recorded", serde_json::json!({"state": state}))
        }
        OutcomeKind::Refused { rule } => ("refused", serde_json::json!({"rule": rule})),
        OutcomeKind::Unmapped => ("unmapped", serde_json::json!({})),
        OutcomeKind::NotFound => ("not_found", serde_json::json!({})),
        OutcomeKind::Ignored => ("ignored", serde_json::json!({})),
    };
    let mut value = serde_json::json!({
        "outcome": kind,
        "case_id": outcome.case_id.as_ref().map(ToString::to_string),
        "principal": outcome.principal,
        "message": outcome.message,
    });
    if let (Some(object), Some(detail)) = (value.as_object_mut(), detail.as_object()) {
        object.extend(detail.clone());
    }
    value
}

/// The API base from the instance URL: HTTPS, or HTTP to a loopback
/// address only (a local test double), with no path, query or credentials.
fn instance_base(url: &str) -> Result<String, String> {
    let url = url.trim_end_matches('/');
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        format!(
            "instance_url `{}` is not a URL",
            custody_core::text::escape(url)
        )
    })?;
    let loopback = rest.starts_with("[::1]")
        || matches!(rest.split(':').next(), Some("127.0.0.1" | "localhost"));
    match scheme {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
            "instance_url `{}` must be https:// (the Table API credentials travel with every call)",
            custody_core::text::escape(url)
        ))
        }
    }
    if rest.is_empty()
        || rest.contains(['/', '?', '#', '@'])
        || !rest.bytes().all(|byte| byte.is_ascii_graphic())
    {
        return Err(format!(
            "instance_url `{}` must be the instance's base URL alone, e.g. https://example.service-now.com",
            custody_core::text::escape(url)
        ));
    }
    Ok(url.to_string())
}

fn is_table_or_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
}

fn is_header_safe(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_graphic())
}
