//! The auditor bundle: one self-contained file an auditor checks offline
//! (`custody verify --bundle`) and a whole-log bundle restores a store from
//! (`custody import --bundle`).
//!
//! The container is JSON lines: one JSON object per line, each with a
//! `type`, in this order (the layout is documented in `docs/bundle.md`):
//!
//! 1. `header`: format and version, the log's origin, the scope (the whole
//!    log, one case, or a range of log indexes), when it was made, and the
//!    size and root of the checkpoint every proof is against;
//! 2. `key`: the log's verifier keys (C2SP vkey), one per line;
//! 3. `checkpoint`: the signed checkpoint note of the header's size;
//! 4. `history`: for a whole-log bundle, every older signed checkpoint the
//!    store holds (its note and when it was stored), so the verifier checks
//!    each against the rebuilt tree and an import keeps them all;
//! 5. `context`: for a case or range bundle, the events of the policy
//!    record and the administration record the events are judged against,
//!    each with its inclusion proof;
//! 6. `event`: one per event in log order, with its log index, its
//!    canonical bytes (base64) and, for a case or range bundle, its
//!    inclusion proof (a whole-log bundle has none: the verifier rebuilds
//!    the tree);
//! 7. `consistency`: for a case or range bundle, the first checkpoint that
//!    covered its last event, when an older one than the bundle's did, and
//!    the consistency proof from it to the bundle's checkpoint (so an
//!    auditor who saved that checkpoint earlier sees the log was extended,
//!    not rewritten); it follows the events because a streaming writer
//!    knows the last one only then;
//! 8. `token`: for a whole-log bundle, one per row of the store's `tokens`
//!    table whose issue the checkpoint covers, with the secret's full
//!    SHA-256 (the events record only its first 16 hex digits), so an
//!    import restores tokens that authenticate;
//! 9. `idempotency`: for a whole-log bundle, the stored result of every
//!    write the checkpoint covers, under its principal and idempotency key,
//!    so a write retried after an import is recognised;
//! 10. `evidence`: one per evidence blob the events reference (SHA-256,
//!     media type, size, and with `--with-evidence` the bytes);
//! 11. `trailer`: the counts of lines, events and evidence, and the SHA-256
//!     of every byte before the trailer line, so a truncated bundle or a
//!     dropped line is detected.
//!
//! [`BundleWriter`] writes a bundle as its parts arrive and
//! [`BundleReader`] reads one line at a time, so neither holds more than a
//! line in memory. Neither does IO of its own beyond the `Write` or
//! `BufRead` it is given; the checks that need keys and proofs are in
//! `custody-verify`.

use base64::Engine;
use serde::{Deserialize, Serialize};

mod reader;
mod writer;

pub use reader::{BundleReader, LineError, ReadLine};
pub use writer::BundleWriter;

/// The `format` of every bundle's header.
pub const BUNDLE_FORMAT: &str = "custody-bundle";

/// The version of the layout this code writes. Version 2 added the
/// whole-log bundle's `token` and `idempotency` lines.
pub const BUNDLE_VERSION: u32 = 2;

/// The oldest version of the layout this code reads: a version 1 bundle is
/// a version 2 bundle without `token` and `idempotency` lines.
pub const OLDEST_BUNDLE_VERSION: u32 = 1;

/// The first version whose whole-log bundles carry a `token` line for every
/// token the log issues (and the idempotency records).
pub const RESTORE_LINES_VERSION: u32 = 2;

/// The longest line a reader accepts (a line holding an evidence blob is the
/// longest), so a corrupt file cannot make it read without end.
pub const MAX_LINE_BYTES: usize = 512 * 1024 * 1024;

/// What a bundle holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scope {
    /// Every event of the log up to the checkpoint: the auditor rebuilds the
    /// tree and runs every check `custody verify` runs on a store.
    Log,
    /// Every event of one case up to the checkpoint.
    Case {
        /// The case.
        case_id: String,
    },
    /// The events at log indexes `since` (inclusive) to `until` (exclusive,
    /// capped at the checkpoint's size).
    Range {
        /// The first log index.
        since: u64,
        /// The log index after the last one, when the range has an end.
        until: Option<u64>,
    },
}

impl Scope {
    /// The scope in words, for reports.
    pub fn describe(&self) -> String {
        match self {
            Scope::Log => "the whole log".to_string(),
            Scope::Case { case_id } => format!("case {case_id}"),
            Scope::Range {
                since,
                until: Some(until),
            } => {
                format!("log indexes {since}..{until}")
            }
            Scope::Range { since, until: None } => format!("log indexes {since}.."),
        }
    }
}

/// The first line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always [`BUNDLE_FORMAT`].
    pub format: String,
    /// Always [`BUNDLE_VERSION`] for this layout.
    pub version: u32,
    /// The log's origin (the checkpoint's first line).
    pub origin: String,
    /// What the bundle holds.
    pub scope: Scope,
    /// When it was made (`YYYY-MM-DDTHH:MM:SS.ffffffZ`); a whole-log
    /// bundle's deadlines are judged as of this time.
    pub created_at: String,
    /// The size of the checkpoint every proof is against.
    pub checkpoint_size: u64,
    /// That checkpoint's root hash, base64 (as in the note).
    pub checkpoint_root: String,
    /// Whether evidence lines carry the blobs.
    pub with_evidence: bool,
}

/// Which record a context event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    /// The deployment's policy record (`policy_adopted` events).
    Policy,
    /// The deployment's administration record.
    Admin,
}

/// An event with where it is in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLine {
    /// Its log index.
    pub log_index: u64,
    /// Its canonical bytes, standard base64.
    pub event: String,
    /// Its inclusion proof against the bundle's checkpoint (base64 hashes,
    /// leaf to root); absent in a whole-log bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Vec<String>>,
}

/// An event of a record the bundle's events are judged against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextLine {
    /// Which record.
    pub record: Record,
    /// Its log index.
    pub log_index: u64,
    /// Its canonical bytes, standard base64.
    pub event: String,
    /// Its inclusion proof against the bundle's checkpoint.
    pub proof: Vec<String>,
}

/// An evidence blob the bundle's events reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceLine {
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
    /// The media type recorded for it (declared, else sniffed).
    pub media_type: String,
    /// Its recorded size in bytes.
    pub size: u64,
    /// The bytes, standard base64, when the bundle carries blobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
}

/// A row of the store's `tokens` table (whole-log bundles): the token as
/// the bundle's checkpoint leaves it, with the full SHA-256 of its secret.
/// The secret is `cust_` and 256 random bits, so its hash does not let
/// anyone authenticate; the bundle is still kept like a database backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenLine {
    /// The public token ID (`tok_...`).
    pub token_id: String,
    /// The principal it authenticates.
    pub principal: String,
    /// The SHA-256 of the whole bearer token, lowercase hex (64 digits).
    pub secret_sha256: String,
    /// When the row was stored.
    pub created_at: String,
    /// When it stops working, if ever.
    pub expires_at: Option<String>,
    /// When it was revoked, if the checkpoint covers its revocation.
    pub revoked_at: Option<String>,
}

/// A row of the store's `idempotency` table (whole-log bundles): the stored
/// result of one write, returned again when the write is retried with the
/// same key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyLine {
    /// The principal who wrote.
    pub principal: String,
    /// The idempotency key the write was made under.
    pub key: String,
    /// The fingerprint of the write's command (a retry must match it).
    pub fingerprint: String,
    /// The write's result as stored (JSON text, verbatim).
    pub response: String,
    /// When it was stored.
    pub created_at: String,
}

/// The last line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trailer {
    /// Lines before the trailer.
    pub lines: u64,
    /// `event` lines.
    pub events: u64,
    /// `evidence` lines.
    pub evidence: u64,
    /// SHA-256 (lowercase hex) of every byte before the trailer line.
    pub sha256: String,
}

/// One line of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Line {
    /// The first line.
    Header(Header),
    /// A verifier key, `name+keyid+base64`.
    Key {
        /// The key.
        vkey: String,
    },
    /// The signed checkpoint note the proofs are against.
    Checkpoint {
        /// The note's text with its signature lines.
        note: String,
    },
    /// An older signed checkpoint of the log (whole-log bundles).
    History {
        /// The note's text with its signature lines.
        note: String,
        /// When the store recorded it.
        created_at: String,
    },
    /// An older signed checkpoint and the proof that the bundle's
    /// checkpoint extends it.
    Consistency {
        /// The older note.
        from: String,
        /// The consistency proof (base64 hashes).
        proof: Vec<String>,
    },
    /// An event of the policy or administration record.
    Context(ContextLine),
    /// An event in the bundle's scope.
    Event(EventLine),
    /// A bearer token's row, with its secret's full hash (whole-log bundles).
    Token(TokenLine),
    /// A write's idempotency record (whole-log bundles).
    Idempotency(IdempotencyLine),
    /// An evidence blob.
    Evidence(EvidenceLine),
    /// The last line.
    Trailer(Trailer),
}

impl Line {
    /// The `type` this line is written with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Line::Header(_) => "header",
            Line::Key { .. } => "key",
            Line::Checkpoint { .. } => "checkpoint",
            Line::History { .. } => "history",
            Line::Consistency { .. } => "consistency",
            Line::Context(_) => "context",
            Line::Event(_) => "event",
            Line::Token(_) => "token",
            Line::Idempotency(_) => "idempotency",
            Line::Evidence(_) => "evidence",
            Line::Trailer(_) => "trailer",
        }
    }

    /// Where the line may stand: lines come in non-decreasing stage order.
    fn stage(&self) -> u8 {
        match self {
            Line::Header(_) => 0,
            Line::Key { .. } => 1,
            Line::Checkpoint { .. } => 2,
            Line::History { .. } => 3,
            Line::Context(_) => 4,
            Line::Event(_) => 5,
            Line::Consistency { .. } => 6,
            Line::Token(_) => 7,
            Line::Idempotency(_) => 8,
            Line::Evidence(_) => 9,
            Line::Trailer(_) => 10,
        }
    }
}

/// Why a bundle could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The output failed.
    #[error("cannot write the bundle: {0}")]
    Io(#[from] std::io::Error),
    /// A part was written out of the layout's order (a bug in the caller).
    #[error("a {line} line cannot follow a {after} line in a bundle")]
    Order {
        /// The line written.
        line: &'static str,
        /// The line before it.
        after: &'static str,
    },
    /// Events were not written in increasing log order (a bug in the caller).
    #[error("event {index} written after event {previous}: a bundle holds events in log order")]
    EventOrder {
        /// The event written.
        index: u64,
        /// The one before it.
        previous: u64,
    },
    /// A line only a whole-log bundle carries was written to a case or
    /// range bundle (a bug in the caller).
    #[error("a {line} line belongs only in a whole-log bundle")]
    NotWholeLog {
        /// The line written.
        line: &'static str,
    },
    /// A line could not be encoded.
    #[error("cannot encode a bundle line: {0}")]
    Encode(String),
}

/// Standard base64, as the bundle writes bytes.
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|error| error.to_string())
}

/// Decodes a list of base64 hashes (a proof).
pub fn decode_hashes(hashes: &[String]) -> Result<Vec<[u8; 32]>, String> {
    hashes
        .iter()
        .enumerate()
        .map(|(position, text)| {
            let bytes = decode_base64(text)
                .map_err(|error| format!("hash {position} is not base64: {error}"))?;
            <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| format!("hash {position} is {} bytes, not 32", bytes.len()))
        })
        .collect()
}

/// Encodes a list of hashes (a proof) as base64.
pub fn encode_hashes(hashes: &[[u8; 32]]) -> Vec<String> {
    hashes.iter().map(|hash| encode_base64(hash)).collect()
}

/// An evidence blob an event references, as an `evidence` line lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceItem {
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
    /// The media type recorded for it: the declared one, else the sniffed one.
    pub media_type: String,
    /// Its recorded size.
    pub size: u64,
}

/// Every evidence blob `event` references (attached, held for a reference,
/// or joined from a reference's record).
pub fn evidence_of(event: &custody_core::Event) -> Vec<EvidenceItem> {
    use custody_core::EventBody;
    let item = |evidence: &custody_core::event::Evidence| EvidenceItem {
        sha256: evidence.sha256.to_hex(),
        media_type: evidence
            .declared_media_type
            .clone()
            .unwrap_or_else(|| evidence.sniffed_media_type.clone()),
        size: evidence.size,
    };
    match &event.body {
        EventBody::EvidenceAttached(evidence) => vec![item(evidence)],
        EventBody::EvidenceHeld(held) => vec![item(&held.evidence)],
        EventBody::EvidenceJoined(join) => join.evidence.iter().map(item).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
