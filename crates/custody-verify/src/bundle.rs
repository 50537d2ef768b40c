//! Auditor bundles: making one from a store (`custody export --format
//! bundle`) and checking one with no server and no database (`custody verify
//! --bundle`). The layout, writer and reader are `custody_export::bundle`'s;
//! this module does what needs keys, proofs, the store and the blob store.
//!
//! What each scope lets the check prove (also in `docs/bundle.md`):
//! - the whole log: everything `custody verify` checks on a store except
//!   the stored projections (the bundle has none): the tree rebuilt from
//!   every event against the signed checkpoint, and the full [`Auditor`];
//! - a case: that each event is in the log (its inclusion proof against
//!   the signed checkpoint), the case's chain from its request, every rule
//!   judged against the policy and administration records (carried as
//!   context, also proven); not that the case has no later events, nor the
//!   other half of links to other cases;
//! - a range: each event's proof and decoding, that the range is whole
//!   (no index missing), and the chains of the cases within it; not the
//!   chains or rules reaching outside it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::{BufRead, Write};

use custody_core::audit::{
    Auditor, Checked, EvidenceRef, Finding, LogAudit, Report, StoredCheckpointRow, StoredEvent,
};
use custody_core::event::{DecodeError, Event, EventBody};
use custody_core::{CaseId, Code, Sha256Hash, Timestamp};
use custody_evidence::{BlobError, BlobStore, Sha256Digest};
pub use custody_export::bundle::Scope;
use custody_export::bundle::{
    decode_base64, decode_hashes, encode_base64, evidence_of, BundleError, BundleReader,
    BundleWriter, EvidenceItem, EvidenceLine, Header, IdempotencyLine, Line, LineError, Record,
    TokenLine, BUNDLE_FORMAT, BUNDLE_VERSION, OLDEST_BUNDLE_VERSION, RESTORE_LINES_VERSION,
};
use custody_log::{leaf_hash, verify_checkpoint, verify_inclusion, Checkpoint, VerifierKey};
use custody_store::{DeploymentRecord, LogEntry, ReadOnlyStore, StoreError};
use serde::Serialize;

mod restore;

/// Events read from the store per page while a bundle is written.
const PAGE: u64 = 4096;

/// What bundle to make.
#[derive(Clone, Debug)]
pub struct MakeRequest {
    /// What it holds.
    pub scope: Scope,
    /// Whether evidence lines carry the blobs.
    pub with_evidence: bool,
    /// The log's verifier keys (from the data directory): carried in the
    /// bundle, and the newest checkpoint must verify with them.
    pub keys: Vec<VerifierKey>,
}

/// What was written.
#[derive(Clone, Debug, Serialize)]
pub struct MadeBundle {
    /// What it holds.
    pub scope: Scope,
    /// The size of the checkpoint its proofs are against.
    pub checkpoint_size: u64,
    /// Event lines.
    pub events: u64,
    /// Evidence lines.
    pub evidence: u64,
    /// Token lines (whole-log bundles): the tokens, with their secrets'
    /// full hashes.
    pub tokens: u64,
    /// Idempotency lines (whole-log bundles).
    pub idempotency_records: u64,
    /// The trailer's digest of the bundle.
    pub sha256: String,
}

/// Why a bundle could not be made. Nothing half-written is meant to be used:
/// a bundle without its trailer is reported truncated by `verify`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MakeError {
    /// The log has no signed checkpoint to make proofs against.
    #[error("the log has no signed checkpoint yet, so no bundle can prove anything\nhint: start `custody serve` on the ledger (a server signs a checkpoint as it starts and every few seconds while the log grows), then export again")]
    NoCheckpoint,
    /// The newest checkpoint does not verify with the keys given.
    #[error("the newest checkpoint (size {size}) is not signed by the log keys of the data directory: {message}\nhint: pass --data DIR, the data directory of a node of this log")]
    Untrusted {
        /// Its size.
        size: u64,
        /// Why.
        message: String,
    },
    /// No key to carry.
    #[error("no verifier key to put in the bundle\nhint: pass --data DIR (a node's data directory, which holds the log's keys)")]
    NoKeys,
    /// The case has no event the checkpoint covers.
    #[error("case {case_id} has no event covered by the newest checkpoint (size {size})\nhint: check the case ID with `custody cases`; a case opened in the last few seconds waits for the next checkpoint")]
    CaseNotFound {
        /// The case.
        case_id: String,
        /// The checkpoint's size.
        size: u64,
    },
    /// The range holds no event the checkpoint covers.
    #[error("the range {since}.. starts at or beyond the newest checkpoint's size {size}: there is nothing to prove yet")]
    EmptyRange {
        /// The range's start.
        since: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The store failed.
    #[error("cannot read the ledger: {0}")]
    Store(#[from] StoreError),
    /// A stored event does not decode.
    #[error("the event at log index {index} does not decode ({message}); the store is damaged\nhint: run `custody verify` on it")]
    Corrupt {
        /// Its log index.
        index: u64,
        /// Why.
        message: String,
    },
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] BundleError),
    /// An evidence blob could not be read.
    #[error("cannot read evidence blob {sha256}: {message}\nhint: run `custody verify` on the ledger; without --with-evidence the bundle lists the blobs' hashes only")]
    Evidence {
        /// The blob.
        sha256: String,
        /// What failed.
        message: String,
    },
}

/// Writes a bundle of `request.scope` from `store` to `out`, against the
/// newest signed checkpoint, reading `blobs` for `--with-evidence`.
/// `progress` is told the events written so far and how many there are at
/// most.
pub async fn make_bundle<W: Write>(
    store: &ReadOnlyStore,
    request: &MakeRequest,
    blobs: Option<&dyn BlobStore>,
    now: Timestamp,
    out: W,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(W, MadeBundle), MakeError> {
    if request.keys.is_empty() {
        return Err(MakeError::NoKeys);
    }
    let checkpoint = store
        .latest_cosigned_checkpoint()
        .await?
        .ok_or(MakeError::NoCheckpoint)?;
    let size = checkpoint.size;
    let verified =
        verify_checkpoint(checkpoint.note.as_bytes(), &request.keys).map_err(|error| {
            MakeError::Untrusted {
                size,
                message: error.to_string(),
            }
        })?;
    let partial = request.scope != Scope::Log;
    let (since, until, case_id) = match &request.scope {
        Scope::Log => (0, size, None),
        Scope::Case { case_id } => (
            0,
            size,
            Some(
                case_id
                    .parse::<CaseId>()
                    .map_err(|_| MakeError::CaseNotFound {
                        case_id: case_id.clone(),
                        size,
                    })?,
            ),
        ),
        Scope::Range { since, until } => {
            if *since >= size {
                return Err(MakeError::EmptyRange {
                    since: *since,
                    size,
                });
            }
            (*since, until.map_or(size, |until| until.min(size)), None)
        }
    };
    let header = Header {
        format: BUNDLE_FORMAT.to_string(),
        version: BUNDLE_VERSION,
        origin: verified.origin().to_string(),
        scope: request.scope.clone(),
        created_at: now.to_string(),
        checkpoint_size: size,
        checkpoint_root: encode_base64(verified.root_hash()),
        with_evidence: request.with_evidence,
    };
    let mut writer = BundleWriter::new(out, header)?;
    for key in &request.keys {
        writer.key(&key.to_string())?;
    }
    writer.checkpoint(&checkpoint.note)?;
    if !partial {
        for older in store.checkpoints_below(size).await? {
            writer.history(&older.note, &older.created_at)?;
        }
    }
    if partial {
        // The records every event is judged against, in log order.
        let mut context: Vec<(Record, LogEntry)> = Vec::new();
        for (record, which) in [
            (Record::Policy, DeploymentRecord::Policy),
            (Record::Admin, DeploymentRecord::Admin),
        ] {
            for entry in store.record_entries(which, size).await? {
                context.push((record, entry));
            }
        }
        context.sort_by_key(|(_, entry)| entry.index);
        for (record, entry) in context {
            let proof = store.inclusion_proof(entry.index, size).await?;
            writer.context(record, entry.index, &entry.leaf, &proof)?;
        }
    }
    let mut evidence: BTreeMap<String, EvidenceItem> = BTreeMap::new();
    // The tokens the bundle's events issue and revoke (a whole-log
    // bundle's token lines are the rows of those, as the checkpoint leaves
    // them).
    let mut issued: BTreeSet<String> = BTreeSet::new();
    let mut revoked: BTreeSet<String> = BTreeSet::new();
    let mut next = since;
    let mut last = None;
    loop {
        let page = store
            .export_page(next, Some(until), case_id.as_ref(), PAGE)
            .await?;
        let Some(tail) = page.last() else { break };
        next = tail.index + 1;
        for entry in &page {
            let event = Event::decode(&entry.leaf).map_err(|error| MakeError::Corrupt {
                index: entry.index,
                message: error.to_string(),
            })?;
            for item in evidence_of(&event) {
                evidence.entry(item.sha256.clone()).or_insert(item);
            }
            match &event.body {
                EventBody::TokenIssued(token) => {
                    issued.insert(token.token_id.clone());
                }
                EventBody::TokenRevoked(token) => {
                    revoked.insert(token.token_id.clone());
                }
                _ => {}
            }
            if partial {
                let proof = store.inclusion_proof(entry.index, size).await?;
                writer.event(entry.index, &entry.leaf, Some(&proof))?;
            } else {
                writer.event(entry.index, &entry.leaf, None)?;
            }
            last = Some(entry.index);
        }
        progress(writer.events_written(), until - since);
    }
    if let Scope::Case { case_id } = &request.scope {
        if last.is_none() {
            return Err(MakeError::CaseNotFound {
                case_id: case_id.clone(),
                size,
            });
        }
    }
    if let (true, Some(last)) = (partial, last) {
        // The first checkpoint that covered the bundle's last event: an
        // auditor may hold it already, and the proof shows the bundle's
        // checkpoint extends it.
        if let Some(first) = store.checkpoint_at_least(last + 1).await? {
            if first.size < size {
                let proof = store.consistency_proof(first.size, size).await?;
                writer.consistency(&first.note, &proof)?;
            }
        }
    }
    if !partial {
        write_restore_lines(store, &mut writer, &issued, &revoked, size).await?;
    }
    for item in evidence.values() {
        let blob = match (request.with_evidence, blobs) {
            (true, Some(blobs)) => Some(read_blob(blobs, &item.sha256).await?),
            _ => None,
        };
        writer.evidence(&item.sha256, &item.media_type, item.size, blob.as_deref())?;
    }
    let events = writer.events_written();
    let tokens = writer.tokens_written();
    let idempotency_records = writer.idempotency_written();
    let (out, trailer) = writer.finish()?;
    Ok((
        out,
        MadeBundle {
            scope: request.scope.clone(),
            checkpoint_size: size,
            events,
            evidence: trailer.evidence,
            tokens,
            idempotency_records,
            sha256: trailer.sha256,
        },
    ))
}

/// Writes a whole-log bundle's `token` and `idempotency` lines: the rows an
/// import restores beside what the events rebuild, as the bundle's
/// checkpoint (of `size` entries) leaves them. A token is carried when the
/// bundle's events issue it (`issued`), revoked when they revoke it
/// (`revoked`); a write's result when every event it appended is below
/// `size`, or, when it appended none (a request that found its ticket's
/// case open), when that case is.
async fn write_restore_lines<W: Write>(
    store: &ReadOnlyStore,
    writer: &mut BundleWriter<W>,
    issued: &BTreeSet<String>,
    revoked: &BTreeSet<String>,
    size: u64,
) -> Result<(), MakeError> {
    for token in store.token_rows().await? {
        if !issued.contains(&token.token_id) {
            continue;
        }
        let revoked_at = if revoked.contains(&token.token_id) {
            token.revoked_at
        } else {
            None
        };
        writer.token(TokenLine {
            token_id: token.token_id,
            principal: token.principal,
            secret_sha256: token.secret_sha256.to_hex(),
            created_at: token.created_at,
            expires_at: token.expires_at,
            revoked_at,
        })?;
    }
    let mut after: Option<(String, String)> = None;
    loop {
        let page = store
            .idempotency_page(
                after
                    .as_ref()
                    .map(|(principal, key)| (principal.as_str(), key.as_str())),
                PAGE,
            )
            .await?;
        let Some(tail) = page.last() else { break };
        after = Some((tail.principal.clone(), tail.key.clone()));
        for record in page {
            // A response that does not parse is carried as it is, for
            // `verify --bundle` to report.
            if let Ok(outcome) =
                serde_json::from_str::<custody_store::WriteOutcome>(&record.response)
            {
                let covered = if outcome.appended.is_empty() {
                    !store
                        .export_page(0, Some(size), Some(&outcome.case_id), 1)
                        .await?
                        .is_empty()
                } else {
                    outcome
                        .appended
                        .iter()
                        .all(|appended| appended.log_index < size)
                };
                if !covered {
                    continue;
                }
            }
            writer.idempotency(IdempotencyLine {
                principal: record.principal,
                key: record.key,
                fingerprint: record.fingerprint,
                response: record.response,
                created_at: record.created_at,
            })?;
        }
    }
    Ok(())
}

async fn read_blob(blobs: &dyn BlobStore, sha256: &str) -> Result<Vec<u8>, MakeError> {
    use tokio::io::AsyncReadExt;
    let failed = |message: String| MakeError::Evidence {
        sha256: sha256.to_string(),
        message,
    };
    let digest: Sha256Digest = sha256
        .parse()
        .map_err(|error: custody_evidence::DigestParseError| failed(error.to_string()))?;
    let mut reader = blobs
        .get(&digest)
        .await
        .map_err(|error: BlobError| failed(error.to_string()))?;
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .await
        .map_err(|error| failed(error.to_string()))?;
    Ok(bytes)
}

/// What `custody verify --bundle` found, beside the report: what the
/// bundle says it is, and how far its keys are trusted.
#[derive(Clone, Debug, Serialize)]
pub struct BundleFacts {
    /// What it holds, when its header could be read.
    pub scope: Option<Scope>,
    /// The log's origin.
    pub origin: Option<String>,
    /// When it was made.
    pub created_at: Option<String>,
    /// The size of the checkpoint its proofs are against.
    pub checkpoint_size: Option<u64>,
    /// Whether the checkpoint was checked against keys given to `verify`
    /// (`true`) or only against those the bundle carries.
    pub keys_given: bool,
    /// Inclusion proofs checked.
    pub inclusion_proofs: u64,
    /// Consistency proofs checked.
    pub consistency_proofs: u64,
    /// Token lines checked against the log.
    pub token_lines: u64,
    /// Idempotency lines checked against the log.
    pub idempotency_lines: u64,
    /// What the bundle cannot prove, in words.
    pub cannot_prove: Vec<String>,
}

/// The outcome of checking a bundle: the report (`ok`, `checked`,
/// `findings`, as `custody verify` prints it) and the bundle's facts.
#[derive(Clone, Debug, Serialize)]
pub struct BundleVerification {
    /// What was checked and found.
    #[serde(flatten)]
    pub report: Report,
    /// What the bundle is.
    pub bundle: BundleFacts,
}

/// Why a bundle could not be checked at all (its problems are findings).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// Reading failed.
    #[error("cannot read the bundle: {0}")]
    Io(std::io::Error),
}

/// The checkpoint a bundle's proofs are against.
struct BundleCheckpoint {
    size: u64,
    root: [u8; 32],
    note: String,
}

enum Mode {
    /// No event or context line seen yet.
    Waiting,
    /// A whole-log bundle: the full auditor, rebuilding the tree.
    Log(Box<Auditor>),
    /// A case bundle: the auditor over the case and its context.
    Case {
        auditor: Box<Auditor>,
        case_id: String,
        context: VecDeque<(u64, Vec<u8>)>,
    },
    /// A range bundle: proofs, decoding, completeness and the chains within.
    Range {
        since: u64,
        end: Option<u64>,
        expected: u64,
        chains: HashMap<String, (u64, Sha256Hash)>,
        checked: Checked,
        evidence: Vec<EvidenceRef>,
    },
}

struct Checker {
    findings: Vec<Finding>,
    header: Option<Header>,
    bundle_keys: Vec<VerifierKey>,
    given_keys: Vec<VerifierKey>,
    checkpoint: Option<BundleCheckpoint>,
    mode: Mode,
    last_index: Option<u64>,
    listed: BTreeMap<String, u64>,
    blobs_checked: u64,
    history: Vec<StoredCheckpointRow>,
    facts: BundleFacts,
    events: u64,
    restore: restore::RestoreCheck,
}

/// Checks the bundle read from `input`, trusting `given_keys` (or, when
/// none are given, the keys the bundle carries, which is reported).
/// `progress` is told the events checked so far.
pub fn verify_bundle<R: BufRead>(
    input: R,
    given_keys: &[VerifierKey],
    progress: &mut dyn FnMut(u64),
) -> Result<BundleVerification, CheckError> {
    let mut checker = Checker {
        findings: Vec::new(),
        header: None,
        bundle_keys: Vec::new(),
        given_keys: given_keys.to_vec(),
        checkpoint: None,
        mode: Mode::Waiting,
        last_index: None,
        listed: BTreeMap::new(),
        blobs_checked: 0,
        history: Vec::new(),
        facts: BundleFacts {
            scope: None,
            origin: None,
            created_at: None,
            checkpoint_size: None,
            keys_given: !given_keys.is_empty(),
            inclusion_proofs: 0,
            consistency_proofs: 0,
            token_lines: 0,
            idempotency_lines: 0,
            cannot_prove: Vec::new(),
        },
        events: 0,
        restore: restore::RestoreCheck::default(),
    };
    for item in BundleReader::new(input) {
        match item {
            Ok(read) => checker.line(read.number, read.line),
            Err(LineError::Io(error)) => return Err(CheckError::Io(error)),
            Err(error) => checker.line_error(&error),
        }
        if checker.events.is_multiple_of(4096) {
            progress(checker.events);
        }
    }
    progress(checker.events);
    Ok(checker.finish())
}

impl Checker {
    fn line_error(&mut self, error: &LineError) {
        let code = match error {
            LineError::DigestMismatch { .. } | LineError::CountMismatch { .. } => {
                Code::BundleDigestMismatch
            }
            LineError::Truncated { .. } | LineError::AfterTrailer { .. } => Code::BundleTruncated,
            _ => Code::BundleMalformed,
        };
        self.findings.push(Finding::new(code, error.to_string()));
    }

    fn malformed(&mut self, number: u64, message: String) {
        self.findings.push(Finding::new(
            Code::BundleMalformed,
            format!("line {number}: {message}"),
        ));
    }

    fn line(&mut self, number: u64, line: Line) {
        if self.header.is_none() && !matches!(line, Line::Header(_)) {
            // Reported by the reader as out of place; without a header
            // nothing else can be judged.
            return;
        }
        match line {
            Line::Header(header) => self.header(number, header),
            Line::Key { vkey } => match VerifierKey::parse(vkey.trim()) {
                Ok(key) => self.bundle_keys.push(key),
                Err(error) => {
                    self.malformed(number, format!("the key `{vkey}` does not parse: {error}"))
                }
            },
            Line::Checkpoint { note } => self.checkpoint(number, note),
            Line::History { note, .. } => self.history(number, note),
            Line::Consistency { from, proof } => self.consistency(number, &from, &proof),
            Line::Context(context) => {
                self.start();
                let Some(bytes) = self.proven_bytes(
                    number,
                    context.log_index,
                    &context.event,
                    Some(&context.proof),
                ) else {
                    return;
                };
                if let Mode::Case { context: queue, .. } = &mut self.mode {
                    queue.push_back((context.log_index, bytes));
                }
            }
            Line::Event(event) => {
                self.start();
                self.event(
                    number,
                    event.log_index,
                    &event.event,
                    event.proof.as_deref(),
                );
            }
            Line::Token(token) => self.token(number, &token),
            Line::Idempotency(record) => self.idempotency(number, &record),
            Line::Evidence(evidence) => self.evidence(number, evidence),
            Line::Trailer(_) => {}
        }
    }

    fn header(&mut self, number: u64, header: Header) {
        if self.header.is_some() {
            return;
        }
        if header.format != BUNDLE_FORMAT
            || !(OLDEST_BUNDLE_VERSION..=BUNDLE_VERSION).contains(&header.version)
        {
            self.malformed(
                number,
                format!(
                    "the header names format {} version {}; this version of Custody reads {BUNDLE_FORMAT} versions {OLDEST_BUNDLE_VERSION} to {BUNDLE_VERSION}",
                    header.format, header.version
                ),
            );
        }
        if Timestamp::parse(&header.created_at).is_err() {
            self.malformed(
                number,
                format!(
                    "the header's created_at `{}` is not a time",
                    header.created_at
                ),
            );
        }
        self.facts.scope = Some(header.scope.clone());
        self.facts.origin = Some(header.origin.clone());
        self.facts.created_at = Some(header.created_at.clone());
        self.facts.checkpoint_size = Some(header.checkpoint_size);
        self.header = Some(header);
    }

    fn trusted(&self) -> &[VerifierKey] {
        if self.given_keys.is_empty() {
            &self.bundle_keys
        } else {
            &self.given_keys
        }
    }

    fn checkpoint(&mut self, number: u64, note: String) {
        let Some(header) = &self.header else { return };
        let (header_size, header_root) = (header.checkpoint_size, header.checkpoint_root.clone());
        let origin = header.origin.clone();
        let whole_log = header.scope == Scope::Log;
        let parsed = custody_log::note::Note::parse(note.as_bytes())
            .map_err(|error| error.to_string())
            .and_then(|parsed| Checkpoint::parse(parsed.text()).map_err(|error| error.to_string()));
        let checkpoint = match parsed {
            Ok(checkpoint) => checkpoint,
            Err(error) => {
                self.malformed(
                    number,
                    format!("the checkpoint note does not parse: {error}"),
                );
                return;
            }
        };
        if checkpoint.size() != header_size
            || encode_base64(checkpoint.root_hash()) != header_root
            || checkpoint.origin() != origin
        {
            self.malformed(
                number,
                format!(
                    "the header names a checkpoint of {origin} at size {header_size} with root {header_root}, but the note signs {} at size {} with root {}",
                    checkpoint.origin(),
                    checkpoint.size(),
                    encode_base64(checkpoint.root_hash())
                ),
            );
        }
        // A whole-log bundle's checkpoint is checked by the auditor, with
        // the tree it rebuilds; a partial one's here.
        if !whole_log {
            if let Err(error) = verify_checkpoint(note.as_bytes(), self.trusted()) {
                self.findings.push(Finding::new(
                    Code::CheckpointBadSignature,
                    format!("the bundle's checkpoint (size {}) is not signed by a trusted log key: {error}", checkpoint.size()),
                ));
            }
        }
        self.checkpoint = Some(BundleCheckpoint {
            size: checkpoint.size(),
            root: *checkpoint.root_hash(),
            note,
        });
    }

    /// An older checkpoint of a whole-log bundle: the auditor checks its
    /// signature and its root against the rebuilt tree.
    fn history(&mut self, number: u64, note: String) {
        let parsed = custody_log::note::Note::parse(note.as_bytes())
            .map_err(|error| error.to_string())
            .and_then(|parsed| Checkpoint::parse(parsed.text()).map_err(|error| error.to_string()));
        match parsed {
            Ok(checkpoint) => self.history.push(StoredCheckpointRow {
                size: checkpoint.size(),
                root: checkpoint.root_hash().to_vec(),
                note,
            }),
            Err(error) => self.malformed(
                number,
                format!("the older checkpoint does not parse: {error}"),
            ),
        }
    }

    fn consistency(&mut self, number: u64, from: &str, proof: &[String]) {
        let Some(checkpoint) = &self.checkpoint else {
            self.malformed(
                number,
                "a consistency line without the bundle's checkpoint".to_string(),
            );
            return;
        };
        self.facts.consistency_proofs += 1;
        let (size, root) = (checkpoint.size, checkpoint.root);
        let older = match verify_checkpoint(from.as_bytes(), self.trusted()) {
            Ok(older) => older,
            Err(error) => {
                self.findings.push(Finding::new(
                    Code::BundleConsistencyInvalid,
                    format!("line {number}: the older checkpoint is not signed by a trusted log key: {error}"),
                ));
                return;
            }
        };
        let hashes = match decode_hashes(proof) {
            Ok(hashes) => hashes,
            Err(error) => {
                self.malformed(
                    number,
                    format!("the consistency proof does not decode: {error}"),
                );
                return;
            }
        };
        if let Err(error) =
            custody_log::verify_consistency(older.size(), size, older.root_hash(), &root, &hashes)
        {
            self.findings.push(
                Finding::new(
                    Code::BundleConsistencyInvalid,
                    format!(
                        "line {number}: the consistency proof from the checkpoint at size {} to the bundle's at size {size} does not verify: {error}",
                        older.size()
                    ),
                )
                .log_index(older.size().checked_sub(1)),
            );
        }
    }

    /// Sets up the checks of the header's scope once the first context or
    /// event line arrives.
    fn start(&mut self) {
        if !matches!(self.mode, Mode::Waiting) {
            return;
        }
        let Some(header) = &self.header else { return };
        let now = Timestamp::parse(&header.created_at).ok();
        self.mode = match &header.scope {
            Scope::Log => {
                let mut checkpoints = std::mem::take(&mut self.history);
                checkpoints.extend(self.checkpoint.as_ref().map(|checkpoint| {
                    StoredCheckpointRow {
                        size: header.checkpoint_size,
                        root: decode_base64(&header.checkpoint_root).unwrap_or_default(),
                        note: checkpoint.note.clone(),
                    }
                }));
                Mode::Log(Box::new(Auditor::with_log(LogAudit {
                    trusted_keys: self.trusted().to_vec(),
                    checkpoints,
                    now,
                    ..LogAudit::default()
                })))
            }
            Scope::Case { case_id } => {
                let auditor = match now {
                    Some(now) => Auditor::new().at(now),
                    None => Auditor::new(),
                };
                Mode::Case {
                    auditor: Box::new(auditor),
                    case_id: case_id.clone(),
                    context: VecDeque::new(),
                }
            }
            Scope::Range { since, until } => Mode::Range {
                since: *since,
                end: self.checkpoint.as_ref().map(|checkpoint| {
                    until.map_or(checkpoint.size, |until| until.min(checkpoint.size))
                }),
                expected: *since,
                chains: HashMap::new(),
                checked: Checked::default(),
                evidence: Vec::new(),
            },
        };
    }

    /// The bytes of a context or event line, after its inclusion proof was
    /// checked (when it has or needs one). `None` when they do not decode.
    fn proven_bytes(
        &mut self,
        number: u64,
        log_index: u64,
        event: &str,
        proof: Option<&[String]>,
    ) -> Option<Vec<u8>> {
        let bytes = match decode_base64(event) {
            Ok(bytes) => bytes,
            Err(error) => {
                self.malformed(
                    number,
                    format!("the event at log index {log_index} is not base64: {error}"),
                );
                return None;
            }
        };
        let whole_log = matches!(self.mode, Mode::Log(_));
        let Some(checkpoint) = &self.checkpoint else {
            return Some(bytes);
        };
        let (size, root) = (checkpoint.size, checkpoint.root);
        if log_index >= size {
            self.findings.push(
                Finding::new(
                    Code::BundleOutsideScope,
                    format!("line {number}: the event at log index {log_index} is beyond the bundle's checkpoint (size {size}), which cannot prove it"),
                )
                .log_index(log_index),
            );
            return None;
        }
        match proof {
            None if whole_log => {}
            None => self.findings.push(
                Finding::new(
                    Code::BundleInclusionInvalid,
                    format!(
                        "line {number}: the event at log index {log_index} has no inclusion proof"
                    ),
                )
                .log_index(log_index),
            ),
            Some(proof) => {
                self.facts.inclusion_proofs += 1;
                let verdict = decode_hashes(proof).and_then(|hashes| {
                    verify_inclusion(&leaf_hash(&bytes), log_index, size, &hashes, &root)
                        .map_err(|error| error.to_string())
                });
                if let Err(error) = verdict {
                    let mut finding = Finding::new(
                        Code::BundleInclusionInvalid,
                        format!(
                            "line {number}: the event at log index {log_index} is not proven in the checkpoint at size {size}: {error}; the event or its proof was altered"
                        ),
                    )
                    .log_index(log_index);
                    if let Ok(event) = Event::decode(&bytes) {
                        finding = finding.at_event(&event, log_index);
                    }
                    self.findings.push(finding);
                }
            }
        }
        Some(bytes)
    }

    fn event(&mut self, number: u64, log_index: u64, event: &str, proof: Option<&[String]>) {
        if let Some(last) = self.last_index {
            if log_index <= last {
                self.findings.push(
                    Finding::new(
                        Code::BundleOutOfOrder,
                        format!("line {number}: the event at log index {log_index} follows the one at {last}; a bundle holds events in increasing log order, so events were swapped or repeated"),
                    )
                    .log_index(log_index),
                );
                return;
            }
        }
        self.last_index = Some(log_index);
        let Some(bytes) = self.proven_bytes(number, log_index, event, proof) else {
            return;
        };
        self.events += 1;
        let decoded = Event::decode(&bytes);
        if let (Mode::Log(_), Ok(event)) = (&self.mode, &decoded) {
            self.restore.observe(event, log_index);
        }
        let (case_id, seq) = match &decoded {
            Ok(event) => (
                event.case_id.to_string(),
                i64::try_from(event.seq).unwrap_or(i64::MAX),
            ),
            Err(_) => (String::new(), 0),
        };
        let row = StoredEvent {
            log_index,
            case_id,
            seq,
            stored_leaf: Some(leaf_hash(&bytes).to_vec()),
            bytes,
        };
        match &mut self.mode {
            Mode::Waiting => {}
            Mode::Log(auditor) => auditor.observe_event(&row),
            Mode::Case {
                auditor,
                case_id,
                context,
            } => {
                if decoded.is_ok() && row.case_id != *case_id {
                    self.findings.push(
                        Finding::new(
                            Code::BundleOutsideScope,
                            format!("line {number}: the event at log index {log_index} belongs to case {}, not to the bundle's case {case_id}", row.case_id),
                        )
                        .case(row.case_id.clone())
                        .log_index(log_index),
                    );
                    return;
                }
                while context.front().is_some_and(|(index, _)| *index < log_index) {
                    if let Some((index, bytes)) = context.pop_front() {
                        auditor.observe_event(&context_row(index, bytes));
                    }
                }
                auditor.observe_event(&row);
            }
            Mode::Range {
                since,
                end,
                expected,
                chains,
                checked,
                evidence,
            } => {
                if log_index < *since || end.is_some_and(|end| log_index >= end) {
                    self.findings.push(
                        Finding::new(
                            Code::BundleOutsideScope,
                            format!("line {number}: the event at log index {log_index} is outside the bundle's range"),
                        )
                        .log_index(log_index),
                    );
                    return;
                }
                if log_index > *expected {
                    self.findings.push(
                        Finding::new(
                            Code::LogIndexGap,
                            format!("log entries {expected}..{log_index} of the range are missing from the bundle"),
                        )
                        .log_index(*expected),
                    );
                }
                *expected = log_index + 1;
                checked.log_entries += 1;
                checked.leaves += 1;
                range_event(&mut self.findings, checked, chains, evidence, &row, decoded);
            }
        }
    }

    /// Whether the header says the bundle is of the whole log.
    fn whole_log(&self) -> bool {
        self.header
            .as_ref()
            .is_some_and(|header| header.scope == Scope::Log)
    }

    fn token(&mut self, number: u64, line: &TokenLine) {
        if !self.whole_log() {
            self.findings.push(Finding::new(
                Code::BundleTokenUnrecorded,
                format!("line {number}: a token line ({}) in a bundle that is not of the whole log, which carries no tokens", line.token_id),
            ));
            return;
        }
        let findings = self.restore.token(number, line);
        self.findings.extend(findings);
    }

    fn idempotency(&mut self, number: u64, line: &IdempotencyLine) {
        if !self.whole_log() {
            self.findings.push(Finding::new(
                Code::BundleIdempotencyUnrecorded,
                format!("line {number}: an idempotency line in a bundle that is not of the whole log, which carries none"),
            ));
            return;
        }
        let findings = self.restore.idempotency(number, line);
        self.findings.extend(findings);
    }

    fn evidence(&mut self, number: u64, line: EvidenceLine) {
        let with_evidence = self
            .header
            .as_ref()
            .is_some_and(|header| header.with_evidence);
        self.listed.insert(line.sha256.clone(), line.size);
        match &line.blob {
            Some(blob) => {
                let bytes = match decode_base64(blob) {
                    Ok(bytes) => bytes,
                    Err(error) => {
                        self.malformed(number, format!("the blob of evidence {} is not base64: {error}", line.sha256));
                        return;
                    }
                };
                self.blobs_checked += 1;
                let actual = Sha256Hash::of(&bytes).to_hex();
                if actual != line.sha256 {
                    self.findings.push(Finding::new(
                        Code::EvidenceBlobAltered,
                        format!("line {number}: the bundle's copy of evidence {} was altered: its {} bytes hash to {actual}", line.sha256, bytes.len()),
                    ));
                } else if u64::try_from(bytes.len()).ok() != Some(line.size) {
                    self.findings.push(Finding::new(
                        Code::EvidenceBlobAltered,
                        format!("line {number}: evidence {} is listed with {} bytes but the bundle carries {}", line.sha256, line.size, bytes.len()),
                    ));
                }
            }
            None if with_evidence => self.findings.push(Finding::new(
                Code::EvidenceBlobMissing,
                format!("line {number}: the bundle was made with its evidence but carries no bytes for {}", line.sha256),
            )),
            None => {}
        }
    }

    fn finish(mut self) -> BundleVerification {
        self.start();
        let mode = std::mem::replace(&mut self.mode, Mode::Waiting);
        let (mut report, references) = match mode {
            Mode::Waiting => (empty_report(), Vec::new()),
            Mode::Log(auditor) => {
                // A bundle of version 2 on carries a token line for every
                // token the log issues; an older one carries none.
                let expect_tokens = self.restore.token_lines > 0
                    || self
                        .header
                        .as_ref()
                        .is_some_and(|header| header.version >= RESTORE_LINES_VERSION);
                let restore = std::mem::take(&mut self.restore);
                self.facts.token_lines = restore.token_lines;
                self.facts.idempotency_lines = restore.idempotency_lines;
                self.findings.extend(restore.finish(expect_tokens));
                let mut report = auditor.finish_without_projections();
                // The bundle's checkpoint is held outside any database: the
                // auditor's "none outside" does not apply.
                report
                    .findings
                    .retain(|finding| finding.code != Code::CheckpointNoneOutside);
                let references = std::mem::take(&mut report.evidence);
                (report, references)
            }
            Mode::Case {
                mut auditor,
                case_id,
                context,
            } => {
                for (index, bytes) in context {
                    auditor.observe_event(&context_row(index, bytes));
                }
                let mut report = auditor.finish_without_projections();
                let mut partial = Vec::new();
                report.findings.retain(|finding| match finding.code {
                    // Log indexes of a case are sparse by nature; their
                    // order is the bundle's own check.
                    Code::LogIndexGap | Code::LogIndexDuplicate => false,
                    Code::MergeUnmatchedLink
                    | Code::RevocationUnmatchedLink
                    | Code::EvidenceUnmatchedLink => {
                        partial.push(
                            Finding::new(
                                Code::BundlePartial,
                                format!(
                                    "the other half of a link is in a case outside the bundle, so it is not checked: {}",
                                    finding.message
                                ),
                            )
                            .case(finding.case_id.clone().unwrap_or_default())
                            .seq(finding.seq)
                            .log_index(finding.log_index),
                        );
                        false
                    }
                    _ => true,
                });
                let size = self
                    .checkpoint
                    .as_ref()
                    .map_or(0, |checkpoint| checkpoint.size);
                let cannot = format!(
                    "a case bundle proves the events of case {case_id} up to the checkpoint at size {size} and judges them against the policy and administration records; it cannot prove that the case has no events after that checkpoint (export a newer bundle, or a whole-log bundle, to see them), nor check the other cases it links to or the rest of the log"
                );
                partial.push(Finding::new(Code::BundlePartial, cannot.clone()).case(case_id));
                self.facts.cannot_prove.push(cannot);
                report.add_findings(partial);
                let references = std::mem::take(&mut report.evidence);
                (report, references)
            }
            Mode::Range {
                since,
                end,
                expected,
                checked,
                evidence,
                ..
            } => {
                if let Some(end) = end {
                    if expected < end {
                        self.findings.push(
                            Finding::new(
                                Code::LogIndexGap,
                                format!("log entries {expected}..{end} of the range are missing from the bundle: it was truncated or events were dropped"),
                            )
                            .log_index(expected),
                        );
                    }
                }
                let cannot = format!(
                    "a range bundle proves each event of log indexes {since}..{} is in the log and that the range is whole; it cannot check chains that reach outside the range (a case's events before or after it), the rules that depend on them, or anything outside the range",
                    end.map_or_else(String::new, |end| end.to_string())
                );
                self.findings
                    .push(Finding::new(Code::BundlePartial, cannot.clone()));
                self.facts.cannot_prove.push(cannot);
                let mut report = empty_report();
                report.checked = checked;
                (report, evidence)
            }
        };
        for reference in references {
            if !self.listed.contains_key(&reference.sha256.to_hex()) {
                self.findings.push(
                    Finding::new(
                        Code::BundleEvidenceUnlisted,
                        format!(
                            "case {} references evidence {} that the bundle does not list",
                            reference.case_id, reference.sha256
                        ),
                    )
                    .case(reference.case_id.clone())
                    .event(Some(reference.event_id.clone()))
                    .seq(reference.seq)
                    .log_index(reference.log_index),
                );
            }
        }
        if !self.facts.keys_given && self.header.is_some() {
            self.findings.push(Finding::new(
                Code::BundleKeysUntrusted,
                "the checkpoint was checked only against the verifier keys the bundle carries, which whoever made the bundle chose; pass --key VKEY with the log's key obtained independently (from `custody init`, `custody log keys` or the operator)",
            ));
        }
        if self.header.is_none() {
            self.findings.push(Finding::new(
                Code::BundleMalformed,
                "the file has no bundle header: it is not a Custody bundle",
            ));
        }
        report.checked.evidence_blobs = self.blobs_checked;
        report.add_findings(self.findings);
        BundleVerification {
            report,
            bundle: self.facts,
        }
    }
}

/// A context event as the auditor reads it.
fn context_row(log_index: u64, bytes: Vec<u8>) -> StoredEvent {
    let (case_id, seq) = match Event::decode(&bytes) {
        Ok(event) => (
            event.case_id.to_string(),
            i64::try_from(event.seq).unwrap_or(i64::MAX),
        ),
        Err(_) => (String::new(), 0),
    };
    StoredEvent {
        log_index,
        case_id,
        seq,
        stored_leaf: None,
        bytes,
    }
}

fn empty_report() -> Report {
    Report {
        ok: true,
        checked: Checked::default(),
        findings: Vec::new(),
        stats: custody_core::audit::Stats::default(),
        evidence: Vec::new(),
    }
}

/// A range bundle's checks of one event: it decodes, and it continues its
/// case's chain when the case's previous event is in the range too.
fn range_event(
    findings: &mut Vec<Finding>,
    checked: &mut Checked,
    chains: &mut HashMap<String, (u64, Sha256Hash)>,
    evidence: &mut Vec<EvidenceRef>,
    row: &StoredEvent,
    decoded: Result<Event, DecodeError>,
) {
    let event = match decoded {
        Ok(event) => event,
        Err(error) => {
            let code = match error {
                DecodeError::NotCanonical => Code::EventNotCanonical,
                _ => Code::EventMalformed,
            };
            findings.push(
                Finding::new(
                    code,
                    format!(
                        "the event at log index {} was altered: {error}",
                        row.log_index
                    ),
                )
                .log_index(row.log_index),
            );
            return;
        }
    };
    checked.events += 1;
    let hash = Sha256Hash::of(&row.bytes);
    for item in evidence_of(&event) {
        if let Ok(sha256) = item.sha256.parse() {
            evidence.push(EvidenceRef {
                case_id: event.case_id.to_string(),
                event_id: event.event_id.to_string(),
                seq: event.seq,
                log_index: row.log_index,
                sha256,
                size: Some(item.size),
            });
        }
    }
    let case_id = event.case_id.to_string();
    if let Some((last_seq, last_hash)) = chains.get(&case_id) {
        checked.chain_links += 1;
        let broken = if event.seq <= *last_seq {
            Some((
                Code::ChainOutOfOrder,
                format!("case {case_id} has seq {} after seq {last_seq}", event.seq),
            ))
        } else if event.seq > last_seq + 1 {
            Some((
                Code::ChainSeqGap,
                format!(
                    "case {case_id} jumps from seq {last_seq} to {}: events are missing",
                    event.seq
                ),
            ))
        } else if event.prev_hash != Some(*last_hash) {
            Some((
                Code::ChainPrevHashMismatch,
                format!(
                    "event seq {} of case {case_id} does not link to the event before it",
                    event.seq
                ),
            ))
        } else {
            None
        };
        if let Some((code, message)) = broken {
            findings.push(Finding::new(code, message).at_event(&event, row.log_index));
        }
    } else {
        checked.cases += 1;
    }
    chains.insert(case_id, (event.seq, hash));
}

/// What [`import_bundle`] did.
#[derive(Clone, Debug, Serialize)]
pub struct Imported {
    /// What was written.
    #[serde(flatten)]
    pub summary: custody_store::ImportSummary,
    /// The log's origin.
    pub origin: String,
    /// The signed checkpoint stored (its size and note).
    pub checkpoint_size: u64,
    /// Its note, for a copy outside the database.
    pub checkpoint_note: String,
    /// Evidence blobs the bundle carried, written to the evidence store.
    pub evidence_restored: u64,
    /// Evidence blobs the bundle lists but were not written (it carried
    /// only their hashes, or no evidence store was given).
    pub evidence_not_restored: u64,
    /// Tokens on the record that the bundle gave no full secret hash for
    /// (a bundle of version 1 has no token lines): they do not
    /// authenticate and must be re-issued.
    pub tokens_not_restored: u64,
}

/// Why an import failed; the store is left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Reading the bundle failed.
    #[error("cannot read the bundle: {0}")]
    Io(std::io::Error),
    /// The bundle is not a whole-log bundle.
    #[error("the bundle holds {0}, not the whole log: only a whole-log bundle can rebuild a store\nhint: make one with `custody export --format bundle` without --case, --since or --until")]
    Partial(String),
    /// The bundle is not as checked (it changed, or was never checked).
    #[error("the bundle is not what was checked: {0}\nhint: run `custody verify --bundle` on it")]
    Changed(String),
    /// The store refused or failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// An evidence blob could not be written.
    #[error("cannot write an evidence blob: {0}")]
    Evidence(String),
}

/// Writes the whole-log bundle read from `input` into the empty store the
/// import was begun on, then commits. Check the bundle first
/// ([`verify_bundle`]): this only refuses what would make the store
/// inconsistent (a partial bundle, a line that does not read, an event out
/// of place, a checkpoint whose root the imported events do not have).
pub async fn import_bundle<R: BufRead>(
    input: R,
    mut import: custody_store::Import,
    blobs: Option<&dyn BlobStore>,
    now: Timestamp,
    progress: &mut dyn FnMut(u64),
) -> Result<Imported, ImportError> {
    let mut evidence_restored = 0;
    let mut evidence_not_restored = 0;
    let mut header = None;
    let mut checkpoint = None;
    let mut history = Vec::new();
    let mut events = 0_u64;
    for item in BundleReader::new(input) {
        let read = match item {
            Ok(read) => read,
            Err(LineError::Io(error)) => return Err(ImportError::Io(error)),
            Err(error) => return Err(ImportError::Changed(error.to_string())),
        };
        match read.line {
            Line::Header(read_header) => {
                if read_header.scope != Scope::Log {
                    return Err(ImportError::Partial(read_header.scope.describe()));
                }
                header = Some(read_header);
            }
            Line::Checkpoint { note } => checkpoint = Some(note),
            Line::History { note, created_at } => history.push((note, created_at)),
            Line::Event(event) => {
                let bytes = decode_base64(&event.event).map_err(|error| {
                    ImportError::Changed(format!("line {}: {error}", read.number))
                })?;
                import.event(event.log_index, bytes).await?;
                events += 1;
                if events.is_multiple_of(4096) {
                    progress(events);
                }
            }
            Line::Token(token) => {
                let digest = custody_core::hex::decode(&token.secret_sha256)
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
                    .ok_or_else(|| {
                        ImportError::Changed(format!(
                            "line {}: the secret hash of token {} is not 64 hex digits",
                            read.number, token.token_id
                        ))
                    })?;
                import
                    .token(&token.token_id, &token.principal, Sha256Hash(digest))
                    .await?;
            }
            Line::Idempotency(record) => {
                import
                    .idempotency(custody_store::StoredIdempotency {
                        principal: record.principal,
                        key: record.key,
                        fingerprint: record.fingerprint,
                        response: record.response,
                        created_at: record.created_at,
                    })
                    .await?;
            }
            Line::Evidence(evidence) => match (&evidence.blob, blobs) {
                (Some(blob), Some(blobs)) => {
                    let bytes = decode_base64(blob).map_err(|error| {
                        ImportError::Changed(format!("line {}: {error}", read.number))
                    })?;
                    let limit = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
                    let stored = blobs
                        .put_stream(&mut &bytes[..], limit)
                        .await
                        .map_err(|error| ImportError::Evidence(error.to_string()))?;
                    if stored.sha256.to_hex() != evidence.sha256 {
                        return Err(ImportError::Changed(format!(
                            "line {}: evidence {} carries bytes that hash to {}",
                            read.number,
                            evidence.sha256,
                            stored.sha256.to_hex()
                        )));
                    }
                    evidence_restored += 1;
                }
                _ => evidence_not_restored += 1,
            },
            _ => {}
        }
    }
    progress(events);
    let header = header.ok_or_else(|| ImportError::Changed("it has no header".to_string()))?;
    let note =
        checkpoint.ok_or_else(|| ImportError::Changed("it has no checkpoint".to_string()))?;
    let root: [u8; 32] = decode_base64(&header.checkpoint_root)
        .ok()
        .and_then(|root| root.try_into().ok())
        .ok_or_else(|| {
            ImportError::Changed(
                "the header's checkpoint root is not 32 bytes of base64".to_string(),
            )
        })?;
    for (older, created_at) in history {
        let parsed = custody_log::note::Note::parse(older.as_bytes())
            .map_err(|error| error.to_string())
            .and_then(|parsed| Checkpoint::parse(parsed.text()).map_err(|error| error.to_string()))
            .map_err(|error| ImportError::Changed(format!("an older checkpoint: {error}")))?;
        import
            .checkpoint(parsed.size(), *parsed.root_hash(), &older, &created_at)
            .await?;
    }
    import
        .checkpoint(header.checkpoint_size, root, &note, &header.created_at)
        .await?;
    let summary = import.commit(&header.origin, now).await?;
    Ok(Imported {
        tokens_not_restored: summary.tokens - summary.tokens_restored,
        summary,
        origin: header.origin,
        checkpoint_size: header.checkpoint_size,
        checkpoint_note: note,
        evidence_restored,
        evidence_not_restored,
    })
}
