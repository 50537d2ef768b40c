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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use custody_store::checkpoint_file::{self, CheckpointFile};
use custody_store::StoredCheckpoint;

/// Where this node keeps copies of the checkpoints it signs.
#[derive(Debug, Default)]
pub struct CheckpointCopies {
    file: Option<Mutex<CheckpointFile>>,
    dir: Option<PathBuf>,
}

impl CheckpointCopies {
    /// No copies (tools and benchmarks that serve without a data directory).
    pub fn none() -> Arc<CheckpointCopies> {
        Arc::new(CheckpointCopies::default())
    }

    /// Copies into `data_dir`'s `checkpoints` file and, when given, into
    /// `dir`. Refuses a file that cannot be opened for appending or a
    /// directory that does not exist.
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
        Ok(Arc::new(CheckpointCopies {
            file: Some(Mutex::new(file)),
            dir: dir.map(Path::to_path_buf),
        }))
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
