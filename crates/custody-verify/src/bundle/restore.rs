//! The whole-log bundle's `token` and `idempotency` lines, checked against
//! the log the bundle's events rebuild. An import writes these rows as they
//! are, so each must be borne out by the events: a token line by the
//! `token_issued` event of its token (principal, the first 16 hex digits of
//! the secret's hash, expiry, revocation), an idempotency line by the
//! events its principal appended under its key.
//!
//! Memory: the tokens the log issues (a deployment has few), and for each
//! write made under an idempotency key 16 bytes of its principal and key
//! and 32 of the events it appended, chained; the idempotency lines follow
//! the events, so they are checked one at a time against that.

use std::collections::{BTreeMap, HashMap, HashSet};

use custody_core::audit::Finding;
use custody_core::event::{Event, EventBody};
use custody_core::{Code, Sha256Hash, Timestamp};
use custody_export::bundle::{IdempotencyLine, TokenLine};
use custody_store::WriteOutcome;

/// What the log's events say about the rows a whole-log bundle carries.
#[derive(Default)]
pub(super) struct RestoreCheck {
    tokens: BTreeMap<String, RecordedToken>,
    writes: HashMap<[u8; 16], KeyedWrite>,
    /// The cases a request opened (their IDs' digests).
    cases: HashSet<[u8; 16]>,
    /// `token` lines read.
    pub(super) token_lines: u64,
    /// `idempotency` lines read.
    pub(super) idempotency_lines: u64,
}

/// A token as the log records it.
struct RecordedToken {
    principal: String,
    /// The first 16 hex digits of the secret's SHA-256.
    prefix: String,
    /// The whole SHA-256, when the event records it (lowercase hex).
    full: Option<String>,
    expires_at: Option<Timestamp>,
    issued_at: Timestamp,
    log_index: u64,
    /// The first revocation's time.
    revoked_at: Option<Timestamp>,
    /// Whether a `token` line named it.
    line: bool,
}

/// The events the log holds under one principal and idempotency key: one
/// write's (a key is used once per principal).
struct KeyedWrite {
    /// [`link`] over the events, in log order.
    chain: [u8; 32],
    events: u64,
    /// Whether an `idempotency` line named it.
    line: bool,
}

impl RestoreCheck {
    /// Takes in the next event of the log (at `log_index`).
    pub(super) fn observe(&mut self, event: &Event, log_index: u64) {
        match &event.body {
            EventBody::TokenIssued(issued) => {
                // The first issue of a token ID stands, as in the store.
                self.tokens
                    .entry(issued.token_id.clone())
                    .or_insert_with(|| RecordedToken {
                        principal: issued.principal.to_string(),
                        prefix: issued.secret_sha256_prefix.to_ascii_lowercase(),
                        full: issued.secret_sha256.map(|hash| hash.to_hex()),
                        expires_at: issued.expires_at,
                        issued_at: event.recorded_at,
                        log_index,
                        revoked_at: None,
                        line: false,
                    });
            }
            EventBody::TokenRevoked(revoked) => {
                if let Some(token) = self.tokens.get_mut(&revoked.token_id) {
                    token.revoked_at.get_or_insert(event.recorded_at);
                }
            }
            EventBody::RequestCreated(_) => {
                self.cases.insert(short_digest(&[event.case_id.as_str()]));
            }
            _ => {}
        }
        if let Some(key) = &event.idempotency_key {
            // A connector's write is keyed by its source, whoever the
            // record maps to (`CaseWrite::idempotency_scope`).
            let scope = match &event.source {
                Some(source) => format!("connector:{source}"),
                None => event.actor.principal.to_string(),
            };
            let write = self
                .writes
                .entry(short_digest(&[scope.as_str(), key]))
                .or_insert(KeyedWrite {
                    chain: [0; 32],
                    events: 0,
                    line: false,
                });
            write.chain = link(
                write.chain,
                log_index,
                &event.event_id.to_string(),
                event.case_id.as_str(),
                event.seq,
                event.body.kind_name(),
            );
            write.events += 1;
        }
    }

    /// Checks a `token` line (line `number`) against the log's record.
    pub(super) fn token(&mut self, number: u64, line: &TokenLine) -> Vec<Finding> {
        self.token_lines += 1;
        let malformed = |message: String| {
            vec![Finding::new(
                Code::BundleMalformed,
                format!("line {number}: {message}"),
            )]
        };
        let token_id = &line.token_id;
        if line.secret_sha256.len() != 64
            || !line
                .secret_sha256
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
        {
            return malformed(format!(
                "the secret hash of token {token_id} is not 64 lowercase hex digits"
            ));
        }
        let times = (
            Timestamp::parse(&line.created_at),
            line.expires_at.as_deref().map(Timestamp::parse).transpose(),
            line.revoked_at.as_deref().map(Timestamp::parse).transpose(),
        );
        let (Ok(created_at), Ok(expires_at), Ok(revoked_at)) = times else {
            return malformed(format!(
                "a time of token {token_id} is not a time (created_at, expires_at, revoked_at)"
            ));
        };
        let Some(recorded) = self.tokens.get_mut(token_id) else {
            return vec![Finding::new(
                Code::BundleTokenUnrecorded,
                format!(
                    "line {number}: token {token_id} of {} was never issued by a token_issued event of the log: an import would make a token nobody issued authenticate",
                    line.principal
                ),
            )];
        };
        let log_index = recorded.log_index;
        let mismatch = |what: String| {
            Finding::new(
                Code::BundleTokenMismatch,
                format!("line {number}: token {token_id} (issued at log index {log_index}) {what}"),
            )
            .log_index(log_index)
        };
        if recorded.line {
            return vec![mismatch("has a second token line".to_string())];
        }
        recorded.line = true;
        let mut findings = Vec::new();
        if line.principal != recorded.principal {
            findings.push(mismatch(format!(
                "is for {} in the line but was issued to {}",
                line.principal, recorded.principal
            )));
        }
        if recorded.prefix.len() != 16 || !line.secret_sha256.starts_with(&recorded.prefix) {
            findings.push(mismatch(format!(
                "has a secret hash that does not begin with the {} its token_issued event records: the hash was altered, and the restored token would not be the one issued",
                recorded.prefix
            )));
        }
        if recorded
            .full
            .as_ref()
            .is_some_and(|full| *full != line.secret_sha256)
        {
            findings.push(mismatch(
                "has a secret hash other than the one its token_issued event records: the hash was altered, and the restored token would not be the one issued".to_string(),
            ));
        }
        if expires_at != recorded.expires_at {
            findings.push(mismatch(format!(
                "expires {} in the line but {} in the log",
                describe(expires_at),
                describe(recorded.expires_at)
            )));
        }
        // A row is written with the event that records it, or before it
        // (tokens recorded after the fact, by `system`): never after.
        if created_at > recorded.issued_at {
            findings.push(mismatch(format!(
                "was created at {created_at} in the line, after the event that issued it at {}",
                recorded.issued_at
            )));
        }
        match (revoked_at, recorded.revoked_at) {
            (None, Some(at)) => findings.push(mismatch(format!(
                "is active in the line, but the log revokes it at {at}"
            ))),
            (Some(at), None) => findings.push(mismatch(format!(
                "is revoked at {at} in the line, but the log never revokes it"
            ))),
            (Some(line_at), Some(at)) if line_at > at => findings.push(mismatch(format!(
                "was revoked at {line_at} in the line, after the event that revoked it at {at}"
            ))),
            _ => {}
        }
        findings
    }

    /// Checks an `idempotency` line (line `number`) against the events its
    /// principal appended under its key.
    pub(super) fn idempotency(&mut self, number: u64, line: &IdempotencyLine) -> Vec<Finding> {
        self.idempotency_lines += 1;
        if Timestamp::parse(&line.created_at).is_err() {
            return vec![Finding::new(
                Code::BundleMalformed,
                format!(
                    "line {number}: the idempotency record's created_at `{}` is not a time",
                    line.created_at
                ),
            )];
        }
        let unrecorded = |why: String| {
            vec![Finding::new(
                Code::BundleIdempotencyUnrecorded,
                format!(
                    "line {number}: the idempotency record of {} under key `{}` {why}; an import would answer a retry of that write with it",
                    line.principal, line.key
                ),
            )]
        };
        let outcome: WriteOutcome = match serde_json::from_str(&line.response) {
            Ok(outcome) => outcome,
            Err(error) => {
                return unrecorded(format!(
                    "has a response that is not a write's result ({error})"
                ))
            }
        };
        let case_id = outcome.case_id.as_str();
        let write = self
            .writes
            .entry(short_digest(&[&line.principal, &line.key]))
            .or_insert(KeyedWrite {
                chain: [0; 32],
                events: 0,
                line: false,
            });
        if write.line {
            return unrecorded("repeats an earlier idempotency line".to_string());
        }
        write.line = true;
        if outcome.appended.is_empty() {
            // A request that found a case open with its ticket appends
            // nothing and answers with that case.
            if write.events > 0 {
                return unrecorded(format!(
                    "says the write appended nothing, but the log holds {} events by that principal under that key",
                    write.events
                ));
            }
            if !self.cases.contains(&short_digest(&[case_id])) {
                return unrecorded(format!("names case {case_id}, which the log does not hold"));
            }
            return Vec::new();
        }
        if write.events == 0 {
            return unrecorded(
                "names events, but no event of the log carries that principal and key".to_string(),
            );
        }
        let chain = outcome.appended.iter().fold([0; 32], |chain, appended| {
            link(
                chain,
                appended.log_index,
                &appended.event_id,
                &appended.case_id,
                appended.seq,
                &appended.kind,
            )
        });
        if chain != write.chain {
            let indexes: Vec<String> = outcome
                .appended
                .iter()
                .map(|appended| appended.log_index.to_string())
                .collect();
            return unrecorded(format!(
                "names events (log indexes {}) that are not the {} events the log holds by that principal under that key",
                indexes.join(", "),
                write.events
            ));
        }
        if !outcome
            .appended
            .iter()
            .any(|appended| appended.case_id == case_id)
        {
            return unrecorded(format!(
                "answers with case {case_id}, to which none of its events belongs"
            ));
        }
        Vec::new()
    }

    /// The tokens the log issues that no `token` line named, when the
    /// bundle is expected to carry a line for each.
    pub(super) fn finish(self, expect_tokens: bool) -> Vec<Finding> {
        if !expect_tokens {
            return Vec::new();
        }
        self.tokens
            .iter()
            .filter(|(_, token)| !token.line)
            .map(|(token_id, token)| {
                Finding::new(
                    Code::BundleTokenMismatch,
                    format!(
                        "token {token_id} of {}, issued at log index {}, has no token line: an import could not restore it, so it would not authenticate (the line was dropped)",
                        token.principal, token.log_index
                    ),
                )
                .log_index(token.log_index)
            })
            .collect()
    }
}

/// The first 16 bytes of the SHA-256 of `parts`, each followed by a zero
/// byte: a key for a map that must not hold every string whole.
fn short_digest(parts: &[&str]) -> [u8; 16] {
    let mut bytes = Vec::new();
    for part in parts {
        bytes.extend_from_slice(part.as_bytes());
        bytes.push(0);
    }
    let digest = Sha256Hash::of(&bytes).0;
    let mut short = [0; 16];
    short.copy_from_slice(&digest[..16]);
    short
}

/// `chain` extended by one appended event, as a write's result reports it
/// (its log index, event ID, case, sequence number and kind).
fn link(
    chain: [u8; 32],
    log_index: u64,
    event_id: &str,
    case_id: &str,
    seq: u64,
    kind: &str,
) -> [u8; 32] {
    let mut bytes = Vec::with_capacity(32 + 16 + event_id.len() + case_id.len() + kind.len() + 3);
    bytes.extend_from_slice(&chain);
    bytes.extend_from_slice(&log_index.to_be_bytes());
    bytes.extend_from_slice(&seq.to_be_bytes());
    for part in [event_id, case_id, kind] {
        bytes.extend_from_slice(part.as_bytes());
        bytes.push(0);
    }
    Sha256Hash::of(&bytes).0
}

fn describe(time: Option<Timestamp>) -> String {
    time.map_or_else(|| "never".to_string(), |time| format!("at {time}"))
}
