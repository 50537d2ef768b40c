//! `custody verify` as a library: the CLI renders what [`verify`] returns,
//! and the server (for the drill and the web console) and tests can call it
//! the same way.
//!
//! [`verify`] decides what to check and whom to trust, then lets the pure
//! auditor of `custody-core` (through the store's read-only snapshot) check
//! every row, and re-hashes every evidence blob the ledger references
//! ([`audit_evidence`]). It returns the auditor's [`Report`] with those
//! findings added, or a [`VerifyError`] when it could not check at all.
//!
//! The trust policy:
//! - the trusted log keys never come from the database, because whoever can
//!   write to it could add their own: they are the keys of the data
//!   directory (current and retired) and those given explicitly;
//! - on the embedded store the data directory is required (it holds the
//!   ledger); on PostgreSQL it is optional and only supplies keys, the
//!   checkpoints file and local evidence blobs, so without it keys must be
//!   given;
//! - every checkpoint held outside the database is checked: the data
//!   directory's `checkpoints` file (which every server appends to) and
//!   every file or directory the auditor names.

#![forbid(unsafe_code)]

pub mod bundle;

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use custody_core::audit::{Finding, Report};
use custody_core::time::SharedClock;
use custody_core::Code;
use custody_evidence::{BlobError, BlobStore, BlobStoreConfig, Sha256Digest, VerifyOutcome};
use custody_log::VerifierKey;
use custody_store::keys::{self, KeyError};
use custody_store::{AuditOptions, Location, ReadOnlyStore, StoreError};

/// The data directory used when none is given for the embedded store.
pub const DEFAULT_DATA_DIR: &str = "./custody-data";

/// What to check, and with which trust.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// A node's data directory. On the embedded store it holds the ledger
    /// (default [`DEFAULT_DATA_DIR`]); with `database_url` it is optional
    /// and only supplies the trusted keys, the `checkpoints` file and local
    /// evidence blobs.
    pub data_dir: Option<PathBuf>,
    /// Check the ledger in this PostgreSQL database instead.
    pub database_url: Option<String>,
    /// A checkpoint an auditor saved earlier: the log must extend it.
    pub since_checkpoint: Option<PathBuf>,
    /// Files (checkpoints files or saved notes) and directories of them,
    /// checked beside the data directory's `checkpoints` file.
    pub checkpoints: Vec<PathBuf>,
    /// Verifier keys trusted beside the data directory's, as text
    /// (`name+keyid+base64`).
    pub keys: Vec<String>,
    /// Where the evidence blobs are (`[evidence.store]` of the servers'
    /// configuration); the default is `evidence/` in the data directory.
    pub evidence_store: BlobStoreConfig,
    /// The servers' checkpoint interval in seconds (0: the default), which
    /// decides when entries no checkpoint covers are an error.
    pub checkpoint_interval_seconds: u64,
    /// Told how many events the audit has checked, of how many.
    pub progress: Option<custody_store::AuditProgress>,
    /// Witness verifier keys (`name+keyid+base64(0x04 || key)`) the auditor
    /// trusts (`--witness`); empty: no witness policy.
    pub witnesses: Vec<String>,
    /// How many of `witnesses` must have cosigned a checkpoint the log
    /// extends (`--min-witnesses`; 0 with witnesses given means 1).
    pub min_witnesses: usize,
    /// The time the check is made at: what is overdue, and how old the
    /// entries no checkpoint covers are. `None` (the CLI's) is the system
    /// clock; a test gives the clock its server ran on.
    pub clock: Option<SharedClock>,
}

/// The outcome of a check that ran to the end.
#[derive(Clone, Debug)]
pub struct Verification {
    /// The ledger that was checked.
    pub location: Location,
    /// Everything checked and found; `report.ok` is false when a finding is
    /// above `info`.
    pub report: Report,
}

/// Why the check could not be made. Each message says what failed and, where
/// there is one, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The database URL names no ledger this version can read.
    #[error("{0}")]
    Location(StoreError),
    /// No key to trust: neither a data directory nor a `--key`.
    #[error("cannot verify {location} without trusted log keys\nhint: pass --key VKEY (the verifier key `custody init` printed) or --data DIR (a node's data directory)")]
    NoTrustedKeys {
        /// The ledger that was to be checked.
        location: Location,
    },
    /// A given key is not a verifier key.
    #[error(transparent)]
    Key(#[from] KeyParseError),
    /// A `--witness` is not a witness verifier key, or the witness policy
    /// asks for more witnesses than it names.
    #[error("{0}")]
    WitnessPolicy(String),
    /// The ledger could not be opened.
    #[error("{0}")]
    Open(StoreError),
    /// The data directory's log keys could not be read.
    #[error("cannot read the log's keys in {}: {source}", directory.display())]
    Keys {
        /// The data directory.
        directory: PathBuf,
        /// What failed.
        source: KeyError,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A checkpoints file or directory could not be read.
    #[error("cannot read the checkpoints in {}: {message}\nhint: --checkpoints takes a checkpoints file (a data directory's `checkpoints`), a saved checkpoint, or a directory of them", path.display())]
    Checkpoints {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// Reading the ledger failed part way.
    #[error("cannot read {location}: {source}")]
    Audit {
        /// The ledger.
        location: Location,
        /// What failed.
        source: StoreError,
    },
    /// The evidence store could not be opened.
    #[error("cannot open the evidence store: {0}")]
    EvidenceStore(BlobError),
    /// The evidence store failed while its blobs were read.
    #[error("cannot read the evidence store: {0}")]
    EvidenceRead(BlobError),
    /// The ledger references evidence blobs, and no evidence store was
    /// given to check them in.
    #[error("cannot check the {blobs} evidence blob(s) the ledger references: no evidence store was given\nhint: pass --data DIR (a node's data directory) or --config FILE (the server's configuration with [evidence.store])")]
    NoEvidenceStore {
        /// How many blobs the ledger references.
        blobs: usize,
    },
}

impl VerifyError {
    /// Whether the check failed in the ledger's database (opening or reading
    /// it), as opposed to the request or the files around it.
    pub fn is_database(&self) -> bool {
        matches!(
            self,
            VerifyError::Location(_) | VerifyError::Open(_) | VerifyError::Audit { .. }
        )
    }

    /// Whether the check failed reading a file or the evidence store.
    pub fn is_io(&self) -> bool {
        matches!(
            self,
            VerifyError::Keys { .. }
                | VerifyError::Read { .. }
                | VerifyError::Checkpoints { .. }
                | VerifyError::EvidenceStore(_)
                | VerifyError::EvidenceRead(_)
        )
    }
}

/// A text that is not a verifier key.
#[derive(Debug, thiserror::Error)]
#[error("`{key}` is not a verifier key (expected name+keyid+base64, as printed by `custody log keys`): {message}")]
pub struct KeyParseError {
    /// The text given.
    pub key: String,
    /// Why it is not a key.
    pub message: String,
}

/// Parses verifier keys given as text (`name+keyid+base64`, surrounding
/// white space ignored).
pub fn parse_keys(keys: &[String]) -> Result<Vec<VerifierKey>, KeyParseError> {
    keys.iter()
        .map(|key| {
            VerifierKey::parse(key.trim()).map_err(|error| KeyParseError {
                key: key.clone(),
                message: error.to_string(),
            })
        })
        .collect()
}

/// The witness policy of `--witness KEY` (repeatable) and
/// `--min-witnesses N`: `None` without witnesses.
pub fn witness_policy(
    witnesses: &[String],
    min: usize,
) -> Result<Option<custody_core::audit::witness::WitnessPolicy>, VerifyError> {
    if witnesses.is_empty() {
        if min > 0 {
            return Err(VerifyError::WitnessPolicy(
                "--min-witnesses needs the witnesses' keys\nhint: pass --witness VKEY for each witness (the key `custody witness key` prints)".into(),
            ));
        }
        return Ok(None);
    }
    let mut keys: Vec<custody_log::CosignatureVerifier> = Vec::new();
    for text in witnesses {
        let key = custody_log::CosignatureVerifier::parse(text.trim()).map_err(|error| {
            VerifyError::WitnessPolicy(format!(
                "`{}` is not a witness verifier key (expected name+keyid+base64 with type 0x04, as `custody witness key` prints): {error}",
                custody_core::text::escape(text)
            ))
        })?;
        // Each witness counts once, however often it is given.
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let min = min.max(1);
    if min > keys.len() {
        return Err(VerifyError::WitnessPolicy(format!(
            "--min-witnesses {min} asks for more witnesses than the {} given with --witness",
            keys.len()
        )));
    }
    Ok(Some(custody_core::audit::witness::WitnessPolicy {
        witnesses: keys,
        min,
    }))
}

/// Checks the whole ledger offline: every event, chain and rule, the Merkle
/// log against every signed checkpoint (in the database and outside it),
/// the administration record and its projections, and every evidence blob.
pub async fn verify(request: Request) -> Result<Verification, VerifyError> {
    // On PostgreSQL the data directory is optional: it only supplies the
    // trusted keys, which --key can give instead. The database never does:
    // whoever can write to it could add their own key.
    let (location, key_dir) = match (&request.database_url, request.data_dir) {
        (None, data) => {
            let directory = data.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
            (Location::Embedded(directory.clone()), Some(directory))
        }
        (Some(url), data) => (
            Location::choose(Path::new("."), Some(url)).map_err(VerifyError::Location)?,
            data,
        ),
    };
    if key_dir.is_none() && request.keys.is_empty() {
        return Err(VerifyError::NoTrustedKeys { location });
    }
    let mut store = ReadOnlyStore::open_at(&location)
        .await
        .map_err(VerifyError::Open)?;
    if let Some(clock) = request.clock {
        store = store.with_clock(clock);
    }
    let mut trusted = match &key_dir {
        Some(directory) => keys::trusted_keys(directory).map_err(|source| VerifyError::Keys {
            directory: directory.clone(),
            source,
        })?,
        None => Vec::new(),
    };
    trusted.extend(parse_keys(&request.keys)?);
    let policy = witness_policy(&request.witnesses, request.min_witnesses)?;
    let since = request
        .since_checkpoint
        .map(|path| {
            std::fs::read_to_string(&path).map_err(|source| VerifyError::Read { path, source })
        })
        .transpose()?;
    // Checkpoints held outside the database: the data directory's
    // checkpoints file (which every server appends to), and whatever the
    // auditor points at.
    let mut outside_paths = Vec::new();
    if let Some(directory) = &key_dir {
        let file = directory.join(custody_store::checkpoint_file::CHECKPOINTS_FILE);
        if file.is_file() {
            outside_paths.push(file);
        }
    }
    outside_paths.extend(request.checkpoints);
    let mut outside = Vec::new();
    let mut outside_findings = Vec::new();
    for path in outside_paths {
        let (checkpoints, findings) =
            custody_store::checkpoint_file::read_outside(&path).map_err(|error| {
                VerifyError::Checkpoints {
                    message: error.to_string(),
                    path,
                }
            })?;
        outside.extend(checkpoints);
        outside_findings.extend(findings);
    }
    // The checkpoints enough of the given witnesses cosigned are checked
    // like checkpoints held outside: the log must have their roots.
    let witnessed = match &policy {
        Some(policy) => {
            let read = |source| VerifyError::Audit {
                location: location.clone(),
                source,
            };
            let rows: Vec<custody_core::audit::witness::CosignatureRow> = store
                .cosignatures(None)
                .await
                .map_err(read)?
                .into_iter()
                .map(|row| custody_core::audit::witness::CosignatureRow {
                    witness: row.witness,
                    size: row.size,
                    note: row.note,
                    line: row.line,
                })
                .collect();
            let log_size = store.log_size().await.map_err(read)?;
            let outcome = custody_core::audit::witness::check(&rows, policy, log_size);
            outside.extend(outcome.cosigned);
            (outcome.findings, outcome.newest)
        }
        None => (Vec::new(), None),
    };
    let (witnessed, newest_witnessed) = witnessed;
    let options = AuditOptions {
        trusted_keys: trusted,
        since,
        outside,
        checkpoint_interval_seconds: request.checkpoint_interval_seconds,
        progress: request.progress,
        witnessed: newest_witnessed,
        settle_after_entries: 0,
    };
    let mut report = match store.audit_with(options).await {
        Ok(report) => report,
        Err(source) => return Err(VerifyError::Audit { location, source }),
    };
    report.add_findings(outside_findings);
    report.add_findings(witnessed);
    // Without a data directory, only an evidence store configured
    // elsewhere (a path or S3) can be checked.
    let blobs = match (&request.evidence_store, &key_dir) {
        (BlobStoreConfig::Local { path: None }, None) => None,
        (store, directory) => Some(
            store
                .open(&directory.clone().unwrap_or_default().join("evidence"))
                .map_err(VerifyError::EvidenceStore)?,
        ),
    };
    match blobs {
        Some(blobs) => audit_evidence(&mut report, blobs.as_ref()).await?,
        None if !report.evidence.is_empty() => {
            return Err(VerifyError::NoEvidenceStore {
                blobs: report.evidence.len(),
            })
        }
        None => {}
    }
    Ok(Verification { location, report })
}

/// Checks every evidence blob the report's ledger references (it exists and
/// hashes to the recorded digest and size) and reports blobs no event
/// references, adding the findings to `report`.
pub async fn audit_evidence(report: &mut Report, blobs: &dyn BlobStore) -> Result<(), VerifyError> {
    let mut findings = Vec::new();
    let mut checked = BTreeMap::new();
    for reference in &report.evidence {
        let digest = Sha256Digest::from_bytes(reference.sha256.0);
        if let Entry::Vacant(entry) = checked.entry(digest) {
            entry.insert(
                blobs
                    .verify(&digest)
                    .await
                    .map_err(VerifyError::EvidenceRead)?,
            );
        }
        let finding = |code: Code, message: String| reference.finding(code, message);
        match &checked[&digest] {
            VerifyOutcome::Missing => findings.push(finding(
                Code::EvidenceBlobMissing,
                format!(
                    "case {} references evidence {} that is not in the evidence store: it was deleted or never stored",
                    reference.case_id, reference.sha256
                ),
            )),
            VerifyOutcome::Corrupt {
                actual_sha256,
                actual_size,
            } => findings.push(finding(
                Code::EvidenceBlobAltered,
                format!(
                    "the evidence {} of case {} was altered: the stored bytes ({actual_size} bytes) hash to {actual_sha256}",
                    reference.sha256, reference.case_id
                ),
            )),
            VerifyOutcome::Intact { size } => {
                if reference.size.is_some_and(|recorded| recorded != *size) {
                    findings.push(finding(
                        Code::EvidenceBlobAltered,
                        format!(
                            "the evidence {} of case {} was recorded with {} bytes but {size} are stored",
                            reference.sha256,
                            reference.case_id,
                            reference.size.unwrap_or_default()
                        ),
                    ));
                }
            }
        }
    }
    for stored in blobs.list().await.map_err(VerifyError::EvidenceRead)? {
        if !checked.contains_key(&stored) {
            findings.push(Finding::new(
                Code::EvidenceBlobUnreferenced,
                format!(
                    "the evidence store holds blob {stored}, which no event references (an upload whose event was never written, or a blob put there by hand)"
                ),
            ));
        }
    }
    report.checked.evidence_blobs = checked.len() as u64;
    report.add_findings(findings);
    Ok(())
}
