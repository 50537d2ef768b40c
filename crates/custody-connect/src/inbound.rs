//! The types a connector reads and returns.

use custody_core::event::ChatApproval;
use custody_core::model::{Change, Ticket};
use custody_core::{CaseId, Timestamp};

/// A request's headers, names lower-cased, values as received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, Vec<u8>)>);

impl Headers {
    /// Headers from `(name, value)` pairs; names are lower-cased.
    pub fn new<I, N, V>(pairs: I) -> Headers
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        Headers(
            pairs
                .into_iter()
                .map(|(name, value)| (name.as_ref().to_ascii_lowercase(), value.as_ref().to_vec()))
                .collect(),
        )
    }

    /// The first value of `name` (any case), as UTF-8; `None` when absent
    /// or not UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    /// Every value of `name` (any case) that is UTF-8, in the order
    /// received: for a header a source may send more than once (`Link`).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .filter_map(|(_, value)| std::str::from_utf8(value).ok())
    }

    /// Whether `name` occurs more than once: a signature header sent twice
    /// is refused rather than guessed at.
    pub fn repeated(&self, name: &str) -> bool {
        self.0
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .count()
            > 1
    }
}

/// One inbound HTTP request, as the server received it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The endpoint below `/v1/connectors/{name}/` (`webhook`, `actions`,
    /// `commands`, ...).
    pub endpoint: &'a str,
    /// Its headers.
    pub headers: &'a Headers,
    /// The body, exactly as received.
    pub body: &'a [u8],
    /// Whether it arrived over TLS (for basic auth, which is refused in the
    /// clear unless the deployment says its TLS ends at a proxy).
    pub tls: bool,
}

/// What an outside system asks Custody to do, with its provenance.
#[derive(Clone, Debug, PartialEq)]
pub struct Inbound {
    /// The record's ID in the source, unique there (a webhook's delivery ID,
    /// a Slack action's trigger, a ServiceNow sys_id plus its update count).
    /// With the connector's name it is the event's (source, external ID).
    pub external_id: String,
    /// Who did it, as the source names them (Slack user ID, Jira accountId,
    /// ServiceNow sys_id or email, Teams AAD object ID).
    pub external_user: String,
    /// When the source says it happened.
    pub occurred_at: Option<Timestamp>,
    /// What it is.
    pub action: Action,
    /// The outside record to write the result back to, when it is not a
    /// ticket the case carries (a Slack message `CHANNEL/TS` whose button
    /// was clicked): the event written owes a write-back to it.
    pub reply_to: Option<String>,
}

/// Which case an action is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The case ID it carries (a ticket field, a button value, an argument).
    Case(CaseId),
    /// The ticket it carries; bound to the case that carries the ticket.
    Ticket(Ticket),
}

/// A Custody action an inbound record asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Open a case (or find the one the ticket already opened).
    Request {
        /// The change asked for.
        change: Change,
        /// Why.
        justification: Option<String>,
        /// The ticket it came from.
        ticket: Option<Ticket>,
        /// A case ID the record already carries (a ticket created from a
        /// case); the request binds to it instead of opening another.
        case: Option<CaseId>,
    },
    /// Approve a case.
    Approve {
        /// The case.
        target: Target,
        /// Optional comment.
        comment: Option<String>,
        /// Where in chat, for an approval clicked or typed in chat.
        chat: Option<ChatApproval>,
    },
    /// Deny a case.
    Deny {
        /// The case.
        target: Target,
        /// Optional comment.
        comment: Option<String>,
    },
    /// Record an execution the source reports (a task closed complete).
    Execute {
        /// The case.
        target: Target,
        /// Optional comment.
        comment: Option<String>,
        /// `false` for a failed execution.
        completed: bool,
    },
    /// Add a comment.
    Comment {
        /// The case.
        target: Target,
        /// The text.
        text: String,
    },
    /// The ticket's fields as they are now, for a ticket already bound to a
    /// case: compared with the case's change, a mismatch is recorded as a
    /// comment and is a finding of `verify` (`connector.ticket-drift`).
    TicketUpdated {
        /// The ticket.
        ticket: Ticket,
        /// The change the ticket's fields describe now.
        change: Change,
    },
}

/// Why a connector refused a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The body is over the limit (checked before any MAC).
    #[error("the body is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The signature or authentication is missing, malformed or wrong.
    #[error("{0}")]
    Unauthenticated(String),
    /// The source's timestamp is outside the window.
    #[error("the request was signed at {signed_at}, {skew_seconds} s from now, outside the {window_seconds} s window")]
    Stale {
        /// When it was signed (Unix seconds).
        signed_at: u64,
        /// How far from now.
        skew_seconds: u64,
        /// The window.
        window_seconds: u64,
    },
    /// The same signed request was seen inside the window.
    #[error("this signed request was already received; a replay is refused")]
    Replayed,
    /// The body does not have the shape the source documents.
    #[error("{0}")]
    Malformed(String),
}

impl Refusal {
    /// The HTTP status the server answers with.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::TooLarge { .. } => 413,
            Refusal::Unauthenticated(_) | Refusal::Stale { .. } | Refusal::Replayed => 401,
            Refusal::Malformed(_) => 400,
        }
    }

    /// The label for the refusal metric.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::TooLarge { .. } => "too_large",
            Refusal::Unauthenticated(_) => "signature",
            Refusal::Stale { .. } => "stale",
            Refusal::Replayed => "replayed",
            Refusal::Malformed(_) => "malformed",
        }
    }
}

/// What happened to one inbound action, for the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The case it was bound to, when there is one.
    pub case_id: Option<CaseId>,
    /// What happened.
    pub kind: OutcomeKind,
    /// The principal it was recorded as, when mapped.
    pub principal: Option<String>,
    /// A sentence for the person who acted (safe text: already escaped).
    pub message: String,
}

/// What happened to an inbound action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutcomeKind {
    /// Recorded: its event kind and the case's state after it.
    Recorded {
        /// The event kind recorded (`approved`, `requested`, ...).
        event: String,
        /// The case's state after it.
        state: String,
    },
    /// Already recorded (a replay, a second click): the recorded decision.
    AlreadyRecorded {
        /// The case's state.
        state: String,
    },
    /// Refused by the workflow (its rule code, such as `approval.self-approval`).
    Refused {
        /// The rule.
        rule: String,
    },
    /// The external user maps to no principal: never trusted.
    Unmapped,
    /// The case it names, or the case of the ticket it names, does not
    /// exist.
    NotFound,
    /// Nothing to do (not for Custody).
    Ignored,
}

/// The HTTP answer to give the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The content type, when there is a body.
    pub content_type: Option<&'static str>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// An empty answer with `status`.
    pub fn empty(status: u16) -> Answer {
        Answer {
            status,
            content_type: None,
            body: Vec::new(),
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> Answer {
        Answer {
            status,
            content_type: Some("application/json"),
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }
}
