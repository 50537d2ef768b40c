//! Copies of every signed checkpoint, outside the database.
//!
//! Whoever can write to the database could delete its checkpoints together
//! with the history they cover. So every checkpoint this node signs (the
//! periodic ones, `POST /v1/log/checkpoint`, the one at shutdown) is also
//! appended to the `checkpoints` file of its data directory and, when
//! `log.checkpoints_dir` is configured, written there as a file of its own;
//! `custody verify` checks the log against them. The copies are made after
//! the checkpoint's transaction commits, so a copy is always of a checkpoint
//! the database held. A failed copy is logged and counted
//! (`custody_checkpoint_copy_failures_total`); it never fails the signing.
//!
//! The copies also keep the node from signing a second history. Before it
//! signs ([`CheckpointCopies::sign`]) and as it starts
//! ([`CheckpointCopies::check`]), the log in the database must extend the
//! newest checkpoint of the database, of the `checkpoints` file and of
//! `log.checkpoints_dir`: someone who rewrote events with their Merkle nodes
//! and deleted the checkpoint rows above them would otherwise have the real
//! key sign the rewritten history. This protects against whoever can write
//! only to the database (PostgreSQL's writers, say), not against whoever can
//! also rewrite the data directory: for that, the copies that count are on
//! other storage (`log.checkpoints_dir`) or kept by auditors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use custody_log::note::VerifierKey;
use custody_store::checkpoint_file::{self, CheckpointFile};
use custody_store::{KnownCheckpoint, Store, StoreError, StoredCheckpoint};

use crate::keys::LogSigner;

/// Where this node keeps copies of the checkpoints it signs.
#[derive(Debug, Default)]
pub struct CheckpointCopies {
    file: Option<Mutex<CheckpointFile>>,
    dir: Option<PathBuf>,
    /// The newest checkpoint held in each place outside the database (by the
    /// place's path), read as the node starts and raised as it signs.
    newest: Mutex<BTreeMap<String, KnownCheckpoint>>,
}

impl CheckpointCopies {
    /// No copies (tools and benchmarks that serve without a data directory).
    pub fn none() -> Arc<CheckpointCopies> {
        Arc::new(CheckpointCopies::default())
    }

    /// Copies into `data_dir`'s `checkpoints` file and, when given, into
    /// `dir`. Refuses a file that cannot be opened for appending or a
    /// directory that does not exist. Reads the newest checkpoint each holds
    /// that one of the data directory's keys (current or retired) signed.
    pub fn open(data_dir: &Path, dir: Option<&Path>) -> Result<Arc<CheckpointCopies>, String> {
        let path = data_dir.join(checkpoint_file::CHECKPOINTS_FILE);
        let file = CheckpointFile::open(&path).map_err(|error| {
            format!(
                "cannot open the checkpoints file {}: {error}\nhint: the data directory must be writable by the server",
                path.display()
            )
        })?;
        if let Some(dir) = dir {
            if !dir.is_dir() {
                return Err(format!(
                    "log.checkpoints_dir {} is not a directory\nhint: create it (writable by the server) or remove log.checkpoints_dir from the configuration",
                    dir.display()
                ));
            }
        }
        let trusted = crate::keys::trusted_keys(data_dir).map_err(|error| {
            format!(
                "cannot read the log's keys in {}: {error}",
                data_dir.display()
            )
        })?;
        let mut newest = BTreeMap::new();
        for place in std::iter::once(path.as_path()).chain(dir) {
            if let Some(checkpoint) = newest_held(place, &trusted)? {
                newest.insert(place.display().to_string(), checkpoint);
            }
        }
        Ok(Arc::new(CheckpointCopies {
            file: Some(Mutex::new(file)),
            dir: dir.map(Path::to_path_buf),
            newest: Mutex::new(newest),
        }))
    }

    /// The newest checkpoint held in each place outside the database.
    pub fn known(&self) -> Vec<KnownCheckpoint> {
        let newest = match self.newest.lock() {
            Ok(newest) => newest,
            Err(poisoned) => poisoned.into_inner(),
        };
        newest.values().cloned().collect()
    }

    /// Checks that the log in `store` extends the newest checkpoint of the
    /// database and of every place outside it ([`StoreError::Diverged`] if
    /// not), writing nothing.
    pub async fn check(&self, store: &Store) -> Result<(), StoreError> {
        store.check_signed_history(&self.known()).await
    }

    /// Signs a checkpoint of the log as it stands (unless the latest covers
    /// it) and copies it outside the database; refuses, signing nothing,
    /// when the log does not extend a checkpoint signed before
    /// ([`StoreError::Diverged`]).
    pub async fn sign(
        self: &Arc<Self>,
        store: &Store,
        log: &LogSigner,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let signed = store
            .checkpoint_checked(&log.origin, log.signers.clone(), self.known())
            .await?;
        if let Some(checkpoint) = &signed {
            self.keep(checkpoint).await;
        }
        Ok(signed)
    }

    /// Copies `checkpoint` (best effort: failures are logged and counted).
    pub async fn keep(self: &Arc<Self>, checkpoint: &StoredCheckpoint) {
        if self.file.is_none() && self.dir.is_none() {
            return;
        }
        let copies = Arc::clone(self);
        let checkpoint = checkpoint.clone();
        let done = tokio::task::spawn_blocking(move || copies.keep_now(&checkpoint)).await;
        if let Err(error) = done {
            tracing::error!(%error, "copying a checkpoint failed");
        }
    }

    fn keep_now(&self, checkpoint: &StoredCheckpoint) {
        {
            let mut newest = match self.newest.lock() {
                Ok(newest) => newest,
                Err(poisoned) => poisoned.into_inner(),
            };
            let places = self
                .file
                .iter()
                .map(|file| match file.lock() {
                    Ok(file) => file.path().display().to_string(),
                    Err(poisoned) => poisoned.into_inner().path().display().to_string(),
                })
                .chain(self.dir.iter().map(|dir| dir.display().to_string()));
            for place in places {
                let known = KnownCheckpoint {
                    size: checkpoint.size,
                    root: checkpoint.root,
                    held_in: place.clone(),
                };
                match newest.get(&place) {
                    Some(held) if held.size >= checkpoint.size => {}
                    _ => {
                        newest.insert(place, known);
                    }
                }
            }
        }
        let failed = |place: &Path, error: std::io::Error| {
            metrics::counter!("custody_checkpoint_copy_failures_total").increment(1);
            tracing::error!(
                %error,
                size = checkpoint.size,
                place = %place.display(),
                "cannot keep a copy of the signed checkpoint outside the database"
            );
        };
        if let Some(file) = &self.file {
            let mut file = match file.lock() {
                Ok(file) => file,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Err(error) = file.append(checkpoint.size, &checkpoint.note) {
                failed(file.path(), error);
            }
        }
        if let Some(dir) = &self.dir {
            if let Err(error) =
                checkpoint_file::write_to_dir(dir, checkpoint.size, &checkpoint.note)
            {
                failed(dir, error);
            }
        }
    }
}

/// The largest checkpoint at `place` (a checkpoints file or a directory of
/// them) that one of `trusted` signed. Entries that do not verify are left
/// to `custody verify`, which reports them.
fn newest_held(place: &Path, trusted: &[VerifierKey]) -> Result<Option<KnownCheckpoint>, String> {
    if !place.exists() {
        return Ok(None);
    }
    let (held, _) = checkpoint_file::read_outside(place).map_err(|error| {
        format!(
            "cannot read the checkpoints in {}: {error}\nhint: the server checks the log against them before it signs",
            place.display()
        )
    })?;
    let mut newest: Option<KnownCheckpoint> = None;
    for checkpoint in held {
        match custody_log::verify_checkpoint(checkpoint.note.as_bytes(), trusted) {
            Ok(verified) => {
                if newest
                    .as_ref()
                    .is_none_or(|newest| verified.size() > newest.size)
                {
                    newest = Some(KnownCheckpoint {
                        size: verified.size(),
                        root: *verified.root_hash(),
                        held_in: place.display().to_string(),
                    });
                }
            }
            Err(error) => tracing::warn!(
                %error,
                place = %checkpoint.source,
                "a checkpoint held outside the database does not verify with this log's keys; ignored (custody verify reports it)"
            ),
        }
    }
    Ok(newest)
}
