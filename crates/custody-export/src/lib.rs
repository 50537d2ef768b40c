//! Custody's exports, with no IO: bytes and types in, bytes out.
//!
//! The CLI (`custody export`), the server (`GET /v1/export` and the push
//! sinks) read events from the store page by page, feed each through a
//! [`CaseRoles`] tracker (who requested, approved, executed and reviewed the
//! case so far) and an [`Encoder`], and write the bytes where they go. The
//! formats and the fields each one can and cannot carry are documented in
//! `docs/export.md`.
#![forbid(unsafe_code)]

pub mod bundle;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;

use custody_core::event::{Event, EventBody};
use custody_core::model::{Actor, Change, Role};

mod about;
pub mod cef;
pub mod cloudevents;
pub mod ecs;
pub mod jsonl;
pub mod kinds;
pub mod ocsf;
pub mod safe;
pub mod syslog;

/// A line-oriented export format (the bundle is not one: see `bundle`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// OCSF 1.8.0 JSON lines.
    Ocsf,
    /// RFC 5424 syslog messages with structured data.
    Syslog,
    /// ArcSight Common Event Format.
    Cef,
    /// Elastic Common Schema JSON lines.
    Ecs,
    /// CloudEvents 1.0 structured JSON with the authcontext extension.
    CloudEvents,
    /// Custody's own event JSON, one event per line.
    Jsonl,
}

impl Format {
    /// Every line format, in the order the docs list them.
    pub const ALL: [Format; 6] = [
        Format::Ocsf,
        Format::Syslog,
        Format::Cef,
        Format::Ecs,
        Format::CloudEvents,
        Format::Jsonl,
    ];

    /// The name on the command line and in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Format::Ocsf => "ocsf",
            Format::Syslog => "syslog",
            Format::Cef => "cef",
            Format::Ecs => "ecs",
            Format::CloudEvents => "cloudevents",
            Format::Jsonl => "jsonl",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = ExportError;

    fn from_str(name: &str) -> Result<Format, ExportError> {
        Format::ALL
            .into_iter()
            .find(|format| format.name() == name)
            .ok_or_else(|| ExportError::UnknownFormat(name.to_owned()))
    }
}

/// Why an export could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A format name nobody knows.
    #[error("unknown export format {0:?}; expected one of ocsf, syslog, cef, ecs, cloudevents, jsonl, bundle")]
    UnknownFormat(String),
    /// A cursor that is not a log index.
    #[error("invalid cursor {0:?}: a cursor is a log index (a whole number), as printed by the previous export")]
    InvalidCursor(String),
    /// An event that could not be encoded.
    #[error("cannot encode event at log index {index}: {reason}")]
    Encode {
        /// Its log index.
        index: u64,
        /// Why.
        reason: String,
    },
}

/// Where an export starts or stops: a position in the deployment-wide log.
///
/// `--since N` exports the events at log index `N` and after; the cursor an
/// export prints is the index of the first event it did not export, so the
/// next export started there has no gap and no duplicate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor(pub u64);

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Cursor {
    type Err = ExportError;

    fn from_str(text: &str) -> Result<Cursor, ExportError> {
        if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(ExportError::InvalidCursor(text.to_owned()));
        }
        text.parse()
            .map(Cursor)
            .map_err(|_| ExportError::InvalidCursor(text.to_owned()))
    }
}

/// One party to a case, as an export names it. Serialised as the JSON
/// formats (OCSF's `unmapped`, ECS's `custody`) carry it: absent options
/// are left out.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Party {
    /// The acting principal.
    pub principal: String,
    /// Whom it acted for, when not itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// The delegation grant it acted under, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegation_grant: Option<String>,
    /// How the action came in (`api`, `cli`, `chat`, `connector:<name>`, ...).
    pub via: String,
}

impl Party {
    /// The party an actor is.
    pub fn of(actor: &Actor) -> Party {
        Party {
            principal: actor.principal.as_str().to_owned(),
            on_behalf_of: actor.on_behalf_of.clone(),
            delegation_grant: actor.delegation_grant.clone(),
            via: actor.via.to_string(),
        }
    }
}

/// Who requested, approved, executed and reviewed a case, as known at one
/// event: what an export attaches to each event beside its own actor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    /// Who asked for the change.
    pub requester: Option<Party>,
    /// Who approved it, in order (each approver once).
    pub approvers: Vec<Party>,
    /// Who carried it out (the latest execution).
    pub executor: Option<Party>,
    /// Who reviewed it (the latest review).
    pub reviewer: Option<Party>,
    /// The change the case asks for (from its `request_created`), so that
    /// every event of the case can name its subject and entitlement.
    pub change: Option<Change>,
    /// Whether the case is a drill's (`custody drill`, recorded in its
    /// request): exports leave its events out unless asked for.
    pub drill: bool,
}

impl Roles {
    /// Folds one event of the case into the roles.
    pub fn observe(&mut self, event: &Event) {
        if let (EventBody::RequestCreated(request), None) = (&event.body, &self.change) {
            self.change = Some(request.change.clone());
            self.drill = request.drill;
        }
        let party = Party::of(&event.actor);
        match event.role {
            Role::Requester if self.requester.is_none() => self.requester = Some(party),
            Role::Approver
                if !self
                    .approvers
                    .iter()
                    .any(|known| known.principal == party.principal) =>
            {
                self.approvers.push(party);
            }
            Role::Executor => self.executor = Some(party),
            Role::Reviewer => self.reviewer = Some(party),
            _ => {}
        }
    }
}

/// The roles of recently seen cases, bounded so that an export's memory
/// stays flat however many cases the log holds.
///
/// A case it does not hold (evicted, or begun before the export's cursor)
/// is reported by [`CaseRoles::missing`]; the reader then fetches the case's
/// earlier events and passes them to [`CaseRoles::seed`].
#[derive(Debug)]
pub struct CaseRoles {
    capacity: usize,
    roles: HashMap<String, Roles>,
    order: VecDeque<String>,
}

impl CaseRoles {
    /// A tracker that holds at most `capacity` cases (at least one).
    pub fn new(capacity: usize) -> CaseRoles {
        CaseRoles {
            capacity: capacity.max(1),
            roles: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether the roles before `event` are unknown: its case is not held
    /// and the event is not the case's first.
    pub fn missing(&self, event: &Event) -> bool {
        event.seq > 1 && !self.roles.contains_key(event.case_id.as_str())
    }

    /// Records a case's events before the one about to be exported.
    pub fn seed<'a>(&mut self, case_id: &str, earlier: impl IntoIterator<Item = &'a Event>) {
        let mut roles = Roles::default();
        for event in earlier {
            roles.observe(event);
        }
        self.insert(case_id.to_owned(), roles);
    }

    /// Folds `event` in and returns its case's roles as of that event.
    pub fn observe(&mut self, event: &Event) -> &Roles {
        let case_id = event.case_id.as_str();
        if !self.roles.contains_key(case_id) {
            self.insert(case_id.to_owned(), Roles::default());
        }
        let roles = self
            .roles
            .get_mut(case_id)
            .expect("the case was inserted just above");
        roles.observe(event);
        roles
    }

    fn insert(&mut self, case_id: String, roles: Roles) {
        if self.roles.insert(case_id.clone(), roles).is_none() {
            self.order.push_back(case_id);
            while self.order.len() > self.capacity {
                if let Some(oldest) = self.order.pop_front() {
                    self.roles.remove(&oldest);
                }
            }
        }
    }
}

/// One event to export, with what the formats need beside it.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// Its index in the deployment-wide log (the cursor).
    pub log_index: u64,
    /// The event, decoded.
    pub event: &'a Event,
    /// Its canonical bytes, exactly as stored and hashed.
    pub bytes: &'a [u8],
    /// The case's roles as of this event (this event included).
    pub roles: &'a Roles,
}

/// Turns records into one format's bytes.
#[derive(Clone, Debug)]
pub struct Encoder {
    format: Format,
    /// The host name syslog and CEF write as the origin.
    host: String,
}

impl Encoder {
    /// An encoder for `format`, naming `host` as the origin where the
    /// format has room for one.
    pub fn new(format: Format, host: impl Into<String>) -> Encoder {
        Encoder {
            format,
            host: host.into(),
        }
    }

    /// The format it writes.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Appends `record`, encoded, to `out`: one line ending in `\n`. (Syslog
    /// over TCP is framed by octet counting instead, by the sink.)
    pub fn encode(&self, record: &Record<'_>, out: &mut Vec<u8>) -> Result<(), ExportError> {
        match self.format {
            Format::Jsonl => jsonl::encode(record, out),
            Format::Syslog => {
                syslog::encode_message(record, &self.host, out);
                out.push(b'\n');
                Ok(())
            }
            Format::Ocsf => ocsf::write(record, out),
            Format::Cef => {
                cef::encode(record, &self.host, out);
                Ok(())
            }
            Format::Ecs => ecs::write(record, &self.host, out),
            Format::CloudEvents => {
                write_json_line(&cloudevents::cloud_event(record), record.log_index, out)
            }
        }
    }

    /// Appends one syslog message for `record` to `out`, without a newline,
    /// for a sink that frames it ([`syslog::frame_octet_counted`]). Uses
    /// the encoder's host whatever its format.
    pub fn encode_syslog_message(&self, record: &Record<'_>, out: &mut Vec<u8>) {
        syslog::encode_message(record, &self.host, out);
    }
}

/// Removes every `null` member from the objects in `value`, recursively:
/// the JSON formats leave out what they have no value for.
pub(crate) fn strip_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(members) => {
            members.retain(|_, member| !member.is_null());
            members.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Appends `value` as one line of JSON: serde_json escapes every C0
/// control (so no raw newline), and [`custody_core::text::escape_json_text`]
/// every other character a terminal must not receive raw (DEL, C1, bidi and
/// invisible format characters), as `\uXXXX` escapes that mean the same to
/// every JSON reader.
pub(crate) fn write_json_line<T: serde::Serialize>(
    value: &T,
    index: u64,
    out: &mut Vec<u8>,
) -> Result<(), ExportError> {
    let start = out.len();
    if let Err(error) = serde_json::to_writer(&mut *out, value) {
        // Nothing of a line that could not be written stays in the output.
        out.truncate(start);
        return Err(ExportError::Encode {
            index,
            reason: error.to_string(),
        });
    }
    // Only DEL and non-ASCII characters can need escaping beyond what JSON
    // does (it escapes the C0 controls itself).
    if out[start..].iter().any(|&byte| byte >= 0x7f) {
        let escaped = std::str::from_utf8(&out[start..])
            .map(|text| custody_core::text::escape_json_text(text).into_owned());
        match escaped {
            Ok(escaped) => {
                out.truncate(start);
                out.extend_from_slice(escaped.as_bytes());
            }
            Err(error) => {
                out.truncate(start);
                return Err(ExportError::Encode {
                    index,
                    reason: error.to_string(),
                });
            }
        }
    }
    out.push(b'\n');
    Ok(())
}

/// The change a record's case asks for: the event's own when it is the
/// request, otherwise the one the roles tracker saw.
pub(crate) fn case_change<'a>(record: &'a Record<'_>) -> Option<&'a Change> {
    match &record.event.body {
        EventBody::RequestCreated(request) => Some(&request.change),
        _ => record.roles.change.as_ref(),
    }
}
