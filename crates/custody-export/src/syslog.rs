//! `syslog`: RFC 5424 messages with Custody's structured data.
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME custody - MSGID [custody@32473 case_id="AC-…" …] MSG
//! ```
//!
//! - PRI: facility 10 (security/authorization, `authpriv`) and a severity
//!   from the event kind (see [`crate::kinds`]).
//! - TIMESTAMP: the event's `recorded_at`, RFC 3339 in UTC with microseconds.
//! - HOSTNAME: the encoder's host (`-` when it has no printable ASCII name).
//! - APP-NAME `custody`; PROCID `-` (the formatter runs in no process of its
//!   own); MSGID: the event kind, e.g. `approval_granted`.
//! - One SD-ELEMENT, [`SD_ID`], whose parameters are listed in
//!   [`PARAMETERS`] and in `docs/export.md`.
//! - MSG: the event's one-line summary as safe text, with the UTF-8 BOM
//!   RFC 5424 requires when it holds non-ASCII characters.
//!
//! Every PARAM-VALUE is first written as safe text ([`crate::safe`]), then
//! escaped as RFC 5424 §6.3.3 requires (`"`, `\` and `]` preceded by a
//! backslash), so a message never holds a raw newline, NUL or bidi control
//! and the value can be recovered exactly. Files get one message per line;
//! TCP and TLS sinks frame each message with [`frame_octet_counted`].

use std::fmt::Write as _;

use custody_core::model::AuthContext;

use crate::kinds::{self, Severity};
use crate::{safe, Party, Record};

/// The private enterprise number in [`SD_ID`]: 32473, the number IANA
/// reserves for documentation and examples (RFC 5612). A deployment that
/// owns a number can map the SD-ID on its collector.
pub const PRIVATE_ENTERPRISE_NUMBER: u32 = 32473;

/// The structured data element's ID.
pub const SD_ID: &str = "custody@32473";

/// The syslog facility: 10, security/authorization messages (`authpriv`).
pub const FACILITY: u8 = 10;

/// Every parameter name the SD-ELEMENT may hold, in the order written.
/// Parameters without a value are left out; `approver`,
/// `approver_on_behalf_of` and `approver_delegation_grant` repeat, once per
/// approver (RFC 5424 §6.3.3 allows a repeated SD-PARAM), as does
/// `evidence_sha256`, once per piece of evidence the event names.
pub const PARAMETERS: &[&str] = &[
    "case_id",
    "event_id",
    "seq",
    "log_index",
    "role",
    "actor",
    "actor_kind",
    "actor_org",
    "on_behalf_of",
    "delegation_grant",
    "via",
    "auth_method",
    "token_id",
    "oidc_issuer",
    "oidc_subject",
    "connector",
    "external_user",
    "occurred_at",
    "causation",
    "source",
    "external_id",
    "subject",
    "change",
    "entitlement",
    "resource",
    "text",
    "text_truncated",
    "evidence_sha256",
    "requester",
    "requester_on_behalf_of",
    "requester_delegation_grant",
    "approver",
    "approver_on_behalf_of",
    "approver_delegation_grant",
    "executor",
    "executor_on_behalf_of",
    "executor_delegation_grant",
    "reviewer",
    "reviewer_on_behalf_of",
    "reviewer_delegation_grant",
];

/// The most bytes of free text the `text` parameter carries once escaped,
/// so that a message stays within the 8 KiB a syslog receiver should accept
/// (RFC 5425 §4.3.1; rsyslog's default `maxMessageSize`). Longer text is
/// cut at a character and `text_truncated="true"` says so; the summary in
/// MSG and the stored event keep what is cut.
pub const MAX_TEXT_PARAM_BYTES: usize = 2048;

/// The application name in every message.
pub const APP_NAME: &str = "custody";

/// The syslog severity (RFC 5424 table 2) of a severity.
pub fn syslog_severity(severity: Severity) -> u8 {
    match severity {
        // 6: informational.
        Severity::Informational => 6,
        // 5: notice (normal but significant).
        Severity::Low => 5,
        // 4: warning.
        Severity::Medium => 4,
        // 2: critical: break-glass, escalations and mismatching reviews
        // need someone now.
        Severity::High => 2,
    }
}

/// Appends one RFC 5424 message for `record` to `out`, without a trailing
/// newline or framing.
pub fn encode_message(record: &Record<'_>, host: &str, out: &mut Vec<u8>) {
    let event = record.event;
    let priority =
        u32::from(FACILITY) * 8 + u32::from(syslog_severity(kinds::severity(&event.body)));
    let mut text = String::with_capacity(768);
    // Writing to a String cannot fail.
    let _ = write!(
        text,
        "<{priority}>1 {} {} {APP_NAME} - {} [{SD_ID}",
        event.recorded_at,
        header_field(host, 255),
        header_field(event.body.kind_name(), 32),
    );
    let mut sd = StructuredData { text: &mut text };
    sd.param("case_id", event.case_id.as_str());
    sd.param("event_id", event.event_id.as_str());
    sd.param("seq", &event.seq.to_string());
    sd.param("log_index", &record.log_index.to_string());
    sd.param("role", event.role.as_str());
    sd.param("actor", event.actor.principal.as_str());
    sd.param("actor_kind", event.actor.kind.as_str());
    sd.optional("actor_org", event.actor.org.as_deref());
    sd.optional("on_behalf_of", event.actor.on_behalf_of.as_deref());
    sd.optional("delegation_grant", event.actor.delegation_grant.as_deref());
    sd.param("via", &event.actor.via.to_string());
    match &event.actor.auth {
        AuthContext::Token { token_id } => {
            sd.param("auth_method", "token");
            sd.param("token_id", token_id);
        }
        AuthContext::Oidc { issuer, subject } => {
            sd.param("auth_method", "oidc");
            sd.param("oidc_issuer", issuer);
            sd.param("oidc_subject", subject);
        }
        AuthContext::Connector {
            connector,
            external_user,
        } => {
            sd.param("auth_method", "connector");
            sd.param("connector", connector);
            sd.param("external_user", external_user);
        }
        AuthContext::System => sd.param("auth_method", "system"),
    }
    sd.param("occurred_at", &event.occurred_at.to_string());
    sd.optional("causation", event.causation.as_ref().map(|id| id.as_str()));
    sd.optional("source", event.source.as_deref());
    sd.optional("external_id", event.external_id.as_deref());
    if let Some(change) = crate::case_change(record) {
        sd.param("subject", &change.subject().to_string());
        sd.param("change", change.kind().as_str());
        sd.param("entitlement", change.entitlement());
        sd.optional("resource", change.resource());
    }
    if let Some(text) = crate::about::text_of(&event.body) {
        let (kept, truncated) = bounded_text(text, MAX_TEXT_PARAM_BYTES);
        sd.param("text", kept);
        if truncated {
            sd.param("text_truncated", "true");
        }
    }
    for (sha256, _, _) in crate::about::evidence_of(&event.body) {
        sd.param("evidence_sha256", &sha256);
    }
    sd.party("requester", record.roles.requester.as_ref());
    for approver in &record.roles.approvers {
        sd.party("approver", Some(approver));
    }
    sd.party("executor", record.roles.executor.as_ref());
    sd.party("reviewer", record.roles.reviewer.as_ref());
    text.push_str("] ");
    let summary = safe::encode(&event.body.summary()).into_owned();
    if !summary.is_ascii() {
        // RFC 5424 §6.4: a MSG in UTF-8 starts with the BOM.
        text.push('\u{feff}');
    }
    text.push_str(&summary);
    out.extend_from_slice(text.as_bytes());
}

/// Appends `msg` framed by octet counting (RFC 6587 §3.4.1, RFC 5425 §4.3):
/// `MSG-LEN SP SYSLOG-MSG`, with no trailer.
pub fn frame_octet_counted(msg: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(msg.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(msg);
}

/// Writes `value` as an RFC 5424 PARAM-VALUE body (without the quotes):
/// safe text, then `"`, `\` and `]` escaped with a backslash.
pub fn escape_param_value(value: &str, out: &mut String) {
    for c in safe::encode(value).chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// The longest prefix of `text` whose PARAM-VALUE escaping takes at most
/// `max` bytes, and whether it is shorter than `text`.
pub fn bounded_text(text: &str, max: usize) -> (&str, bool) {
    let mut used = 0;
    let mut buffer = [0u8; 4];
    for (index, c) in text.char_indices() {
        let mut escaped = String::new();
        escape_param_value(c.encode_utf8(&mut buffer), &mut escaped);
        used += escaped.len();
        if used > max {
            return (&text[..index], true);
        }
    }
    (text, false)
}

/// Whether `name` is a valid SD-NAME (RFC 5424 §6.3.3): 1 to 32 printable
/// US-ASCII characters other than `=`, space, `]` and `"`.
pub fn is_sd_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|byte| (33..=126).contains(&byte) && !matches!(byte, b'=' | b']' | b'"'))
}

/// A header field (HOSTNAME, MSGID): printable US-ASCII only, at most `max`
/// characters; the NILVALUE `-` when nothing printable is left.
fn header_field(value: &str, max: usize) -> String {
    let kept: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if kept.is_empty() {
        "-".to_owned()
    } else {
        kept
    }
}

struct StructuredData<'a> {
    text: &'a mut String,
}

impl StructuredData<'_> {
    fn param(&mut self, name: &'static str, value: &str) {
        debug_assert!(is_sd_name(name) && PARAMETERS.contains(&name), "{name}");
        self.text.push(' ');
        self.text.push_str(name);
        self.text.push_str("=\"");
        escape_param_value(value, self.text);
        self.text.push('"');
    }

    fn optional(&mut self, name: &'static str, value: Option<&str>) {
        if let Some(value) = value {
            self.param(name, value);
        }
    }

    fn party(&mut self, role: &'static str, party: Option<&Party>) {
        let Some(party) = party else { return };
        let (on_behalf_of, delegation_grant) = match role {
            "requester" => ("requester_on_behalf_of", "requester_delegation_grant"),
            "approver" => ("approver_on_behalf_of", "approver_delegation_grant"),
            "executor" => ("executor_on_behalf_of", "executor_delegation_grant"),
            _ => ("reviewer_on_behalf_of", "reviewer_delegation_grant"),
        };
        self.param(role, &party.principal);
        // The empty string stands for "none", so that repeated approver
        // parameters stay aligned: the n-th `approver_on_behalf_of` belongs
        // to the n-th `approver`.
        let repeated = role == "approver";
        match (&party.on_behalf_of, repeated) {
            (Some(value), _) => self.param(on_behalf_of, value),
            (None, true) => self.param(on_behalf_of, ""),
            (None, false) => {}
        }
        match (&party.delegation_grant, repeated) {
            (Some(value), _) => self.param(delegation_grant, value),
            (None, true) => self.param(delegation_grant, ""),
            (None, false) => {}
        }
    }
}
