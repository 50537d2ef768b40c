//! Custody's domain, with no IO.
//!
//! This crate knows nothing of SQL, HTTP or async runtimes. It defines what an
//! access change is ([`model`]), the facts recorded about it ([`event`]), how
//! those facts are encoded for hashing ([`canonical`]), how a case's state is
//! derived from its facts ([`case`]), which steps are allowed
//! ([`lifecycle`]) and how a stored trail is checked ([`audit`]).

#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod canonical;
pub mod case;
pub mod change_set;
pub mod code;
pub mod command;
pub mod delegation;
pub mod event;
pub mod hex;
pub mod id;
pub mod lifecycle;
pub mod model;
pub mod notice;
pub mod obligation;
pub mod observation;
pub mod outbox;
pub mod policy;
pub mod proof;
pub mod severity;
pub mod text;
pub mod time;

pub use case::{is_drill_change, CaseState, CaseView, RaisedFinding};
pub use code::Code;
pub use event::{Event, EventBody};
pub use id::{CaseId, EventId, Sha256Hash};
pub use model::{Actor, Principal, PrincipalId, PrincipalKind, Role};
pub use time::{Clock, ManualClock, SharedClock, SystemClock, Timestamp};
