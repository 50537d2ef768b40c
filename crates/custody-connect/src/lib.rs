//! Custody's connectors, IO-free.
//!
//! A connector turns what an outside system sends (a Jira webhook, a Slack
//! button click, a ServiceNow outbound REST message, a Teams outgoing
//! webhook) into an [`Inbound`]: who did it there, when, under which ID, and
//! which Custody action it is. It also says how to answer the request and
//! which HTTP calls write a case's state back into the outside system
//! ([`writeback::Call`]). Nothing here opens a socket, reads a clock or
//! touches the store: bytes and types in, types and bytes out. The server
//! (`custody-server/src/connectors`) wires a connector to the network and the
//! ledger, in this order, for every request:
//!
//! 1. the body's size is checked against the limit **before** any MAC is
//!    computed ([`limits::check_size`]);
//! 2. the signature is verified the way the source signs, in constant time,
//!    with the source's timestamp inside the window ([`Connector::verify`]);
//! 3. the signature is remembered for the window, so the same signed
//!    request is refused the second time ([`replay::ReplayGuard`]);
//! 4. the body is parsed into inbound actions ([`Connector::parse`]);
//! 5. the external user is mapped to a principal through the deployment's
//!    identity map (never trusted unmapped);
//! 6. the action is written through the same planner as every API write,
//!    with `via = connector:<name>`, `source` and `external_id` set, and
//!    `occurred_at` from the source; (source, external ID) is unique in the
//!    ledger, so a replayed record appends nothing;
//! 7. the answer is rendered the way the source expects ([`Connector::answer`]).
//!
//! A request refused at steps 1 to 3 is answered 401 (413 for size) and
//! recorded nowhere but the metrics and the log.

#![forbid(unsafe_code)]

pub mod cloudtrail;
pub mod config;
pub mod entra;
pub mod github;
pub mod jira;
pub mod kubernetes;
pub mod limits;
pub mod observe;
pub mod okta;
mod record_json;
pub mod replay;
pub mod servicenow;
pub mod signature;
pub mod slack;
pub mod teams;
pub mod vault;
pub mod writeback;

mod inbound;

pub use inbound::{
    Action, Answer, Headers, Inbound, Outcome, OutcomeKind, Refusal, Request, Target,
};
pub use writeback::{Call, Update};

/// Percent-encodes everything but RFC 3986's unreserved characters: a
/// query value or a path segment of a vendor's API.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// What every connector does. Implementations are pure: they read the
/// request and their configuration and return values.
pub trait Connector: Send + Sync {
    /// The connector's kind (`jira`, `servicenow`, `slack`, `teams`), as in
    /// the `kind` of its `[[connectors]]` entry.
    fn kind(&self) -> &'static str;

    /// The ticket system the connector's tickets are recorded under
    /// (`jira`, `servicenow`), so a case carrying a ticket of that system is
    /// written back to. `None` for chat connectors.
    fn ticket_system(&self) -> Option<&str> {
        None
    }

    /// Verifies the request's signature and freshness. Returns the bytes to
    /// remember in the replay window (the signature itself) and the time
    /// the source signed at, in Unix seconds.
    fn verify(&self, request: &Request<'_>, now_unix: u64) -> Result<Signed, Refusal>;

    /// Parses a verified request into what it asks Custody to do. An empty
    /// list is a request that is valid but not for Custody (another project,
    /// a status nobody configured): it is acknowledged and records nothing.
    fn parse(&self, request: &Request<'_>) -> Result<Vec<Inbound>, Refusal>;

    /// The answer the source expects for what was done (a Slack message, a
    /// Teams card, an empty 200 for Jira).
    fn answer(&self, outcomes: &[Outcome]) -> Answer;

    /// The HTTP calls that write one case update back into the outside
    /// system (a comment, an entity property, a work note, a message update).
    /// An empty list writes nothing for this update.
    fn write_back(&self, update: &Update) -> Vec<Call> {
        let _ = update;
        Vec::new()
    }

    /// Whether a write-back call's 2xx answer really accepted it: some
    /// vendors answer 200 with an error inside (Slack's `"ok": false`).
    /// An `Err` is a failed attempt, retried like any other.
    fn accepted(&self, call: &Call, status: u16, body: &[u8]) -> Result<(), String> {
        let _ = (call, status, body);
        Ok(())
    }

    /// The answer to a request refused after its signature was verified
    /// (a malformed body, a command that does not parse), when the source
    /// shows the person nothing but a 200's body (a Slack slash command).
    /// `None`, the default, answers with [`Refusal::status`]; a size or
    /// signature refusal never reaches this (413 or 401 for every source).
    fn refused(&self, refusal: &Refusal) -> Option<Answer> {
        let _ = refusal;
        None
    }

    /// Whether this connector's approvals and denials are answers to a
    /// question about a case still waiting for a decision (a Slack message's
    /// Approve and Deny buttons): when set, a decision that arrives once the
    /// case is decided (a second click, a stale client's) is answered with
    /// the recorded decision (`AlreadyRecorded`) and appends nothing, where
    /// the workflow alone would record a later denial as a veto and an
    /// extra approval. The default leaves decisions to the workflow.
    fn decisions_on_open_cases_only(&self) -> bool {
        false
    }

    /// Calls to make once the request is answered, outside the outbox and
    /// recorded nowhere (best effort): a message only the person who acted
    /// sees, where the source ignores the answer's body (Slack ignores the
    /// body of the answer to a button click, so the outcome is posted with
    /// `chat.postEphemeral`). The default makes none.
    fn follow_up(&self, request: &Request<'_>, outcomes: &[Outcome]) -> Vec<Call> {
        let _ = (request, outcomes);
        Vec::new()
    }
}

/// What a verified signature gives: what to remember against replay, and
/// when the source signed.
#[derive(Debug, PartialEq, Eq)]
pub struct Signed {
    /// The proof the MAC was compared in constant time
    /// ([`signature::verify`]).
    pub verified: signature::Verified,
    /// The bytes that identify this signed request (its MAC).
    pub fingerprint: Vec<u8>,
    /// When the source says it signed or sent it, in Unix seconds.
    pub signed_at: u64,
}
