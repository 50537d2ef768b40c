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

use custody_core::event::Event;
use custody_core::model::{Actor, Role};

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

/// One party to a case, as an export names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Party {
    /// The acting principal.
    pub principal: String,
    /// Whom it acted for, when not itself.
    pub on_behalf_of: Option<String>,
    /// The delegation grant it acted under, when there is one.
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
}

impl Roles {
    /// Folds one event of the case into the roles.
    pub fn observe(&mut self, event: &Event) {
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
        let _ = (&self.host, out);
        Err(ExportError::Encode {
            index: record.log_index,
            reason: format!("the {} formatter is not written yet", self.format),
        })
    }
}
