//! `cef`: ArcSight Common Event Format, one event per line.
//!
//! ```text
//! CEF:0|Custody|Custody|<version>|<kind>|<kind, in words>|<severity 0-10>|<extension>
//! ```
//!
//! Header fields are safe text ([`crate::safe`]) with `\` and `|` escaped
//! by a backslash. Extension values are safe text except that newlines and
//! carriage returns are kept for CEF's own `\n` and `\r` escapes, then `\`
//! and `=` are escaped by a backslash. The keys come from the CEF
//! dictionary (see [`EXTENSION_KEYS`]); the six custom strings carry the
//! case ID and the four roles and the actor's on-behalf-of. What CEF has
//! no room for is listed field by field in `docs/export.md`.

use crate::about::{about, evidence_of, text_of};
use crate::kinds::{self, Outcome, Severity};
use crate::{ocsf, safe, Record};

/// The extension keys written, in order (each `csN`, `cnN` and
/// `flexStringN` with its `...Label`).
pub const EXTENSION_KEYS: &[&str] = &[
    "rt",
    "start",
    "externalId",
    "dvchost",
    "cat",
    "act",
    "outcome",
    "suser",
    "spriv",
    "duser",
    "duid",
    "dpriv",
    "destinationServiceName",
    "cs1Label",
    "cs1",
    "cs2Label",
    "cs2",
    "cs3Label",
    "cs3",
    "cs4Label",
    "cs4",
    "cs5Label",
    "cs5",
    "cs6Label",
    "cs6",
    "flexString1Label",
    "flexString1",
    "flexString2Label",
    "flexString2",
    "cn1Label",
    "cn1",
    "cn2Label",
    "cn2",
    "fileHash",
    "fname",
    "request",
    "reason",
    "msg",
];

/// The CEF severity (0 to 10) of a severity.
pub fn cef_severity(severity: Severity) -> u8 {
    match severity {
        Severity::Informational => 1,
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
    }
}

/// Writes `value` as a CEF header field: safe text, `\` and `|` escaped.
pub fn escape_header(value: &str, out: &mut String) {
    for c in safe::encode(value).chars() {
        if matches!(c, '\\' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Writes `value` as a CEF extension value: safe text (newlines and
/// carriage returns kept), then `\` and `=` escaped and line breaks written
/// as `\n` and `\r`.
pub fn escape_extension(value: &str, out: &mut String) {
    for line_piece in split_keeping_breaks(value) {
        match line_piece {
            Piece::Text(text) => {
                for c in safe::encode(text).chars() {
                    if matches!(c, '\\' | '=') {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
            Piece::Newline => out.push_str("\\n"),
            Piece::CarriageReturn => out.push_str("\\r"),
        }
    }
}

enum Piece<'a> {
    Text(&'a str),
    Newline,
    CarriageReturn,
}

fn split_keeping_breaks(value: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (index, c) in value.char_indices() {
        if c == '\n' || c == '\r' {
            if start < index {
                pieces.push(Piece::Text(&value[start..index]));
            }
            pieces.push(if c == '\n' {
                Piece::Newline
            } else {
                Piece::CarriageReturn
            });
            start = index + 1;
        }
    }
    if start < value.len() {
        pieces.push(Piece::Text(&value[start..]));
    }
    pieces
}

/// Appends one CEF line for `record`.
pub fn encode(record: &Record<'_>, host: &str, out: &mut Vec<u8>) {
    let event = record.event;
    let kind = event.body.kind_name();
    let mut line = String::with_capacity(1024);
    line.push_str("CEF:0|Custody|Custody|");
    escape_header(env!("CARGO_PKG_VERSION"), &mut line);
    line.push('|');
    escape_header(kind, &mut line);
    line.push('|');
    escape_header(&kind.replace('_', " "), &mut line);
    line.push('|');
    line.push_str(&cef_severity(kinds::severity(&event.body)).to_string());
    line.push('|');

    let mut extension = Extension {
        line: &mut line,
        first: true,
    };
    let millis =
        |timestamp: custody_core::Timestamp| timestamp.as_micros().div_euclid(1000).to_string();
    extension.pair("rt", &millis(event.recorded_at));
    extension.pair("start", &millis(event.occurred_at));
    extension.pair("externalId", event.event_id.as_str());
    if !host.is_empty() {
        extension.pair("dvchost", host);
    }
    let (class, _) = ocsf::class_and_activity(&event.body, crate::case_change(record));
    extension.pair("cat", class.name);
    let about = about(record);
    if let Some(change) = about.change {
        extension.pair("act", change);
    }
    extension.pair(
        "outcome",
        match kinds::outcome(&event.body) {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        },
    );
    extension.pair("suser", event.actor.principal.as_str());
    extension.pair("spriv", event.role.as_str());
    if let Some(name) = &about.user_name {
        extension.pair("duser", name);
    }
    if let Some(id) = &about.user_id {
        extension.pair("duid", id);
    }
    if let Some(privilege) = &about.privilege {
        extension.pair("dpriv", privilege);
    }
    if let Some(resource) = &about.resource {
        extension.pair("destinationServiceName", resource);
    }
    let roles = record.roles;
    extension.labelled("cs1", "caseId", Some(event.case_id.as_str()));
    extension.labelled(
        "cs2",
        "requester",
        roles
            .requester
            .as_ref()
            .map(|party| party.principal.as_str()),
    );
    let approvers: Vec<&str> = roles
        .approvers
        .iter()
        .map(|party| party.principal.as_str())
        .collect();
    extension.labelled(
        "cs3",
        "approvers",
        (!approvers.is_empty())
            .then(|| approvers.join(","))
            .as_deref(),
    );
    extension.labelled(
        "cs4",
        "executor",
        roles
            .executor
            .as_ref()
            .map(|party| party.principal.as_str()),
    );
    extension.labelled(
        "cs5",
        "reviewer",
        roles
            .reviewer
            .as_ref()
            .map(|party| party.principal.as_str()),
    );
    extension.labelled("cs6", "onBehalfOf", event.actor.on_behalf_of.as_deref());
    extension.labelled(
        "flexString1",
        "delegationGrant",
        event.actor.delegation_grant.as_deref(),
    );
    extension.labelled("flexString2", "via", Some(&event.actor.via.to_string()));
    extension.labelled("cn1", "seq", Some(&event.seq.to_string()));
    extension.labelled("cn2", "logIndex", Some(&record.log_index.to_string()));
    if let Some((hash, file_name, url)) = evidence_of(&event.body).into_iter().next() {
        extension.pair("fileHash", &hash);
        if let Some(file_name) = file_name {
            extension.pair("fname", file_name);
        }
        if let Some(url) = url {
            extension.pair("request", url);
        }
    }
    if let Some(text) = text_of(&event.body) {
        extension.pair("reason", text);
    }
    extension.pair("msg", &event.body.summary());
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
}

struct Extension<'a> {
    line: &'a mut String,
    first: bool,
}

impl Extension<'_> {
    fn pair(&mut self, key: &'static str, value: &str) {
        debug_assert!(EXTENSION_KEYS.contains(&key), "{key}");
        if !self.first {
            self.line.push(' ');
        }
        self.first = false;
        self.line.push_str(key);
        self.line.push('=');
        escape_extension(value, self.line);
    }

    fn labelled(&mut self, key: &'static str, label: &str, value: Option<&str>) {
        let Some(value) = value else { return };
        let label_key = match key {
            "cs1" => "cs1Label",
            "cs2" => "cs2Label",
            "cs3" => "cs3Label",
            "cs4" => "cs4Label",
            "cs5" => "cs5Label",
            "cs6" => "cs6Label",
            "flexString1" => "flexString1Label",
            "flexString2" => "flexString2Label",
            "cn1" => "cn1Label",
            _ => "cn2Label",
        };
        self.pair(label_key, label);
        self.pair(key, value);
    }
}
