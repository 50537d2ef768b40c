//! Sources of observed changes: identity providers, clouds and secrets
//! managers (Okta, CloudTrail, Entra ID, GitHub, Vault, Kubernetes).
//!
//! Where a [`crate::Connector`] turns an ITSM or chat request into a Custody
//! *action*, a [`Source`] turns the records of the system that holds the
//! access into [`ObservedChange`]s: what did change, whoever changed it. The
//! ledger binds each to a case (`custody_core::observation`). A source is
//! read three ways, each IO-free here:
//!
//! - **pushed** to `/v1/connectors/{name}/{endpoint}`: [`Source::authenticate`]
//!   checks the request the way the source authenticates (an HMAC, a
//!   shared authorization header), then [`Source::parse_push`];
//!   [`Source::handshake`] answers a source's one-time challenge (Okta's
//!   event hook verification) before any record arrives;
//! - **pulled** by the server with a cursor persisted in the store
//!   ([`Source::pull`], [`Pull`]): the request to make from the cursor, and
//!   each answered page read into records and the next cursor, which the
//!   server persists only after the page's records are recorded (a restart
//!   re-reads at most one page, and (source, external ID) is unique);
//! - **ingested** from a batch file with `custody ingest --source NAME
//!   FILE` ([`Source::parse_batch`]), in the format the source exports.
//!
//! Records that change no access (a sign-in, a read) are counted as
//! skipped, never recorded.

use sha2::{Digest, Sha256};

use custody_core::model::{Change, ChangeKind, Subject, SubjectKind, Ticket};
use custody_core::observation::{ObservedActor, ObservedChange};
use custody_core::{CaseId, Sha256Hash, Timestamp};

use crate::{Answer, Headers, Refusal, Request};

/// What a source's parser read from one body or file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The access changes, in the order the source gave them.
    pub observations: Vec<ObservedChange>,
    /// Records that change no access (or that Custody does not read), counted.
    pub skipped: usize,
}

/// One HTTP request a pull makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    /// The absolute URL.
    pub url: String,
    /// Headers to send (authorization among them: keep them out of logs).
    pub headers: Vec<(String, String)>,
}

/// One page a pull read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// Its records.
    pub parsed: Parsed,
    /// The cursor to persist once they are recorded; `None` keeps the one
    /// used for this page.
    pub cursor: Option<String>,
    /// Whether another page is ready now (follow it at once); `false` waits
    /// for the poll interval.
    pub more: bool,
}

/// How a polled source is read, IO-free: the server makes the requests.
pub trait Pull: Send + Sync {
    /// The request for the page after `cursor` (`None`: the first poll,
    /// starting `now` minus the configured look-back).
    fn request(&self, cursor: Option<&str>, now: Timestamp) -> Result<PullRequest, Refusal>;

    /// Reads the answer to [`Pull::request`].
    fn page(
        &self,
        cursor: Option<&str>,
        status: u16,
        headers: &Headers,
        body: &[u8],
    ) -> Result<Page, Refusal>;

    /// Seconds between polls when no page is ready.
    fn interval_seconds(&self) -> u64 {
        60
    }
}

/// What every source of observed changes does. Implementations are pure.
pub trait Source: Send + Sync {
    /// Its kind (`okta`, `cloudtrail`, `entra`, `github`, `vault`,
    /// `kubernetes`), as in the `kind` of its `[[connectors]]` entry.
    fn kind(&self) -> &'static str;

    /// Authenticates a pushed request, in constant time. A source that is
    /// not pushed to refuses every request.
    fn authenticate(&self, request: &Request<'_>) -> Result<(), Refusal>;

    /// The answer to a source's handshake (a `GET` to the endpoint, such as
    /// Okta's one-time verification challenge), after
    /// [`Source::authenticate`]; `None` when the source has none.
    fn handshake(&self, request: &Request<'_>) -> Option<Result<Answer, Refusal>> {
        let _ = request;
        None
    }

    /// Parses an authenticated pushed body.
    fn parse_push(&self, request: &Request<'_>) -> Result<Parsed, Refusal>;

    /// Parses an authenticated pushed body that the server received at
    /// `received_at` (its clock): what the server calls. A source whose
    /// pushed records carry no time of their own (GitHub's webhook
    /// payloads) dates them by it; the default ignores it.
    fn parse_push_at(
        &self,
        request: &Request<'_>,
        received_at: Timestamp,
    ) -> Result<Parsed, Refusal> {
        let _ = received_at;
        self.parse_push(request)
    }

    /// Parses a batch file, in the format the source exports (what
    /// `custody ingest` reads).
    fn parse_batch(&self, bytes: &[u8]) -> Result<Parsed, Refusal>;

    /// How the source is polled, when it is configured to be.
    fn pull(&self) -> Option<&dyn Pull> {
        None
    }
}

/// SHA-256 of a raw record's bytes.
pub fn raw_hash(raw: &[u8]) -> Sha256Hash {
    Sha256Hash(Sha256::digest(raw).into())
}

/// The fields of one observation, as a source module reads them; checked
/// and normalised by [`Fields::build`].
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    /// The record's ID in the source.
    pub external_id: &'a str,
    /// The source's name for what happened.
    pub action: &'a str,
    /// When it happened (RFC 3339).
    pub occurred_at: Timestamp,
    /// Who did it.
    pub actor: ObservedActor,
    /// Whose access changed.
    pub subject: (SubjectKind, &'a str),
    /// What kind of change.
    pub kind: ChangeKind,
    /// The entitlement (a group, a role, a policy ARN, a scope).
    pub entitlement: &'a str,
    /// The resource, when there is one.
    pub resource: Option<&'a str>,
    /// Text in the record that may carry a case ID (a session name, a
    /// `sourceIdentity`, a tag): the first `AC-...` ID found binds it.
    pub hints: Vec<&'a str>,
    /// References it carries (tickets as `SYSTEM:KEY`).
    pub references: Vec<&'a str>,
    /// The raw record.
    pub raw: &'a [u8],
}

impl Fields<'_> {
    /// The observation, or why the record cannot be one (an identifier
    /// outside the safe character set, say). Identifiers are checked by
    /// Custody's own rules; the actor's display name is escaped.
    pub fn build(self) -> Result<ObservedChange, Refusal> {
        let malformed = |what: &str, error: &dyn std::fmt::Display| {
            Refusal::Malformed(format!(
                "record {}: {what}: {error}",
                custody_core::text::escape(self.external_id)
            ))
        };
        let external_id = custody_core::model::validate_name("external_id", self.external_id)
            .map_err(|error| Refusal::Malformed(format!("a record's ID: {error}")))?;
        let action = custody_core::model::validate_name("action", self.action)
            .map_err(|error| malformed("its action", &error))?;
        let subject_id = custody_core::model::validate_name("subject", self.subject.1)
            .map_err(|error| malformed("its subject", &error))?;
        let change = Change::new(
            Subject {
                kind: self.subject.0,
                id: subject_id,
            },
            self.kind,
            self.entitlement.to_string(),
            self.resource.map(str::to_string),
            None,
        )
        .map_err(|error| malformed("its change", &error))?;
        let mut actor = self.actor;
        actor.id = custody_core::model::validate_name("actor", &actor.id)
            .map_err(|error| malformed("its actor", &error))?;
        actor.display = actor
            .display
            .as_deref()
            .map(|text| custody_core::text::escape(text).into_owned());
        for field in [
            &mut actor.on_behalf_of,
            &mut actor.session,
            &mut actor.source_identity,
        ] {
            *field = field
                .as_deref()
                .map(|text| custody_core::text::escape(text).into_owned());
        }
        actor.principal = None;
        let case_hint = self.hints.iter().find_map(|text| find_case_id(text));
        let references = self
            .references
            .iter()
            .filter_map(|text| text.parse::<Ticket>().ok())
            .collect();
        Ok(ObservedChange {
            external_id,
            action,
            occurred_at: self.occurred_at,
            actor,
            change,
            case_hint,
            references,
            raw_sha256: raw_hash(self.raw),
        })
    }
}

/// The first Custody case ID (`AC-` and 32 lowercase hex digits) in `text`,
/// anywhere in it (`AC-0190...` as a whole session name, or inside
/// `custody-AC-0190...`).
pub fn find_case_id(text: &str) -> Option<CaseId> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(offset) = text[start..].find("AC-") {
        let at = start + offset;
        let end = at + 3 + 32;
        // `get`: the byte `end` may fall inside a multibyte character.
        if let Some(candidate) = text.get(at..end) {
            if let Ok(id) = candidate.parse::<CaseId>() {
                let boundary = bytes
                    .get(end)
                    .is_none_or(|byte| !byte.is_ascii_alphanumeric());
                if boundary {
                    return Some(id);
                }
            }
        }
        start = at + 3;
    }
    None
}

/// Compares a presented shared secret (an authorization header's value)
/// with the configured one in constant time.
pub fn verify_shared_secret(
    expected: &crate::config::Secret,
    presented: Option<&str>,
    header: &str,
) -> Result<(), Refusal> {
    let Some(presented) = presented else {
        return Err(Refusal::Unauthenticated(format!(
            "the {header} header is missing"
        )));
    };
    const LABEL: &[u8] = b"custody shared secret";
    let tag = crate::signature::hmac_sha256(expected.expose().as_bytes(), &[LABEL]);
    crate::signature::verify(presented.as_bytes(), &[LABEL], &tag)
        .map(|_| ())
        .map_err(|_| {
            Refusal::Unauthenticated(format!("the {header} header is not the configured secret"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_id_is_found_inside_a_session_name_but_not_inside_a_longer_word() {
        let id = "AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b";
        assert_eq!(
            find_case_id(&format!("custody-{id}")).map(|id| id.to_string()),
            Some(id.to_string())
        );
        assert_eq!(find_case_id(&format!("{id}0")), None);
        assert_eq!(find_case_id("AC-nothex"), None);
        assert_eq!(find_case_id("no id"), None);
    }

    #[test]
    fn a_hint_with_a_multibyte_character_where_an_id_would_end_does_not_panic() {
        // 31 hex digits, then a two-byte character: the 35th byte after
        // `AC-` falls inside it.
        let hint = format!("AC-{}\u{e9}", "0".repeat(31));
        assert_eq!(find_case_id(&hint), None);
        assert_eq!(
            find_case_id(&format!("AC-{}\u{1f600}", "a".repeat(30))),
            None
        );
    }

    #[test]
    fn a_shared_secret_must_match_exactly() {
        let secret = crate::config::Secret::new("s3cret");
        assert!(verify_shared_secret(&secret, Some("s3cret"), "Authorization").is_ok());
        assert!(verify_shared_secret(&secret, Some("s3cret "), "Authorization").is_err());
        assert!(verify_shared_secret(&secret, Some(""), "Authorization").is_err());
        assert!(verify_shared_secret(&secret, None, "Authorization").is_err());
    }
}
