//! The local-disk blob store.

use std::io;
use std::path::{Path, PathBuf};

use tokio::io::AsyncRead;

use crate::blob::{
    copy_hashing, hash_reader, BlobError, BlobFuture, BlobReader, BlobStore, StoredBlob,
    TemporaryFile, VerifyOutcome,
};
use crate::digest::Sha256Digest;

/// Blobs as files under a root directory:
/// `<root>/sha256/<first two hex digits>/<64 hex digits>`.
///
/// Uploads are written to `<root>/tmp/incoming-*.part` (the same file system,
/// so the final rename is atomic), fsynced, renamed into place, and the
/// containing directory is fsynced, so an acknowledged blob survives a power
/// loss. A crash mid-upload can leave a `.part` file in `<root>/tmp`; nothing
/// reads that directory, and it is safe to empty while the server is stopped.
/// Directories are created on first use, with mode 0700; blobs are 0600
/// (on Unix), so evidence is readable by the server's user only.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    /// A store rooted at `root`. No file system access happens until the first
    /// operation.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest is (or would be) stored.
    pub fn blob_path(&self, sha256: &Sha256Digest) -> PathBuf {
        let hex = sha256.to_hex();
        self.root.join("sha256").join(&hex[..2]).join(hex)
    }

    /// The directory where uploads are staged before the rename.
    pub fn temporary_directory(&self) -> PathBuf {
        self.root.join("tmp")
    }

    async fn put_impl(
        &self,
        reader: &mut (dyn AsyncRead + Unpin + Send),
        limit: u64,
    ) -> Result<StoredBlob, BlobError> {
        let temporary_directory = self.temporary_directory();
        create_directory(&temporary_directory).await?;
        let (temporary, mut file) = TemporaryFile::create_in(&temporary_directory).await?;
        let copied = copy_hashing(reader, &mut file, temporary.path(), limit).await?;
        drop(file);
        make_private(temporary.path()).await?;

        let final_path = self.blob_path(&copied.sha256);
        let mut stored = StoredBlob {
            sha256: copied.sha256,
            size: copied.size,
            already_present: false,
            sniffed_media_type: copied.sniffed_media_type.to_string(),
        };
        match tokio::fs::metadata(&final_path).await {
            Ok(existing) if existing.len() == copied.size => {
                // Same name means same content (SHA-256); the temporary copy
                // is dropped and removed.
                stored.already_present = true;
                return Ok(stored);
            }
            Ok(existing) => {
                // A stored copy of the wrong length is damaged: replace it with
                // the good bytes we have in hand.
                tracing::warn!(
                    sha256 = %copied.sha256,
                    stored_size = existing.len(),
                    expected_size = copied.size,
                    "replacing a damaged evidence blob with a fresh upload of the same content"
                );
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(BlobError::Io {
                    action: "check for an existing blob at",
                    path: final_path,
                    source,
                })
            }
        }

        // Safe: blob_path always has the root and two more components above it.
        let shard_directory = final_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        let shard_is_new = !tokio::fs::try_exists(&shard_directory)
            .await
            .unwrap_or(false);
        create_directory(&shard_directory).await?;
        if shard_is_new {
            // The new shard directory's own entry must be durable too.
            sync_directory(&self.root.join("sha256")).await?;
            sync_directory(&self.root).await?;
        }
        tokio::fs::rename(temporary.path(), &final_path)
            .await
            .map_err(|source| BlobError::Io {
                action: "move the finished upload into place at",
                path: final_path.clone(),
                source,
            })?;
        temporary.keep();
        sync_directory(&shard_directory).await?;
        Ok(stored)
    }

    async fn get_impl(&self, sha256: &Sha256Digest) -> Result<BlobReader, BlobError> {
        let path = self.blob_path(sha256);
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(Box::pin(file)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                Err(BlobError::NotFound { sha256: *sha256 })
            }
            Err(source) => Err(BlobError::Io {
                action: "open the blob",
                path,
                source,
            }),
        }
    }

    async fn exists_impl(&self, sha256: &Sha256Digest) -> Result<bool, BlobError> {
        let path = self.blob_path(sha256);
        tokio::fs::try_exists(&path)
            .await
            .map_err(|source| BlobError::Io {
                action: "check for the blob",
                path,
                source,
            })
    }

    async fn list_impl(&self) -> Result<Vec<Sha256Digest>, BlobError> {
        let blobs_directory = self.root.join("sha256");
        let mut digests = Vec::new();
        let mut shards = match tokio::fs::read_dir(&blobs_directory).await {
            Ok(shards) => shards,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(digests),
            Err(source) => return Err(list_error(&blobs_directory, source)),
        };
        while let Some(shard) = shards
            .next_entry()
            .await
            .map_err(|source| list_error(&blobs_directory, source))?
        {
            let shard_path = shard.path();
            let Some(shard_name) = shard.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let is_directory = shard.file_type().await.is_ok_and(|kind| kind.is_dir());
            if shard_name.len() != 2 || !is_directory {
                continue;
            }
            let mut entries = tokio::fs::read_dir(&shard_path)
                .await
                .map_err(|source| list_error(&shard_path, source))?;
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(|source| list_error(&shard_path, source))?
            {
                // Anything that is not a well-formed digest in its right shard
                // is not a blob of this store and is skipped.
                let name = entry.file_name();
                let Some(digest) = name
                    .to_str()
                    .and_then(|name| name.parse::<Sha256Digest>().ok())
                else {
                    continue;
                };
                if digest.to_hex().starts_with(&shard_name) {
                    digests.push(digest);
                }
            }
        }
        digests.sort();
        Ok(digests)
    }

    async fn verify_impl(&self, sha256: &Sha256Digest) -> Result<VerifyOutcome, BlobError> {
        let path = self.blob_path(sha256);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(VerifyOutcome::Missing)
            }
            Err(source) => {
                return Err(BlobError::Io {
                    action: "open the blob",
                    path,
                    source,
                })
            }
        };
        let (actual, size) = hash_reader(&mut file)
            .await
            .map_err(|source| BlobError::Io {
                action: "read the blob",
                path,
                source,
            })?;
        Ok(if actual == *sha256 {
            VerifyOutcome::Intact { size }
        } else {
            VerifyOutcome::Corrupt {
                actual_sha256: actual,
                actual_size: size,
            }
        })
    }

    async fn delete_impl(&self, sha256: &Sha256Digest) -> Result<bool, BlobError> {
        let path = self.blob_path(sha256);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                if let Some(parent) = path.parent() {
                    sync_directory(parent).await?;
                }
                Ok(true)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(BlobError::Io {
                action: "remove the blob",
                path,
                source,
            }),
        }
    }
}

impl BlobStore for LocalBlobStore {
    fn put_stream<'a>(
        &'a self,
        reader: &'a mut (dyn AsyncRead + Unpin + Send),
        limit: u64,
    ) -> BlobFuture<'a, StoredBlob> {
        Box::pin(self.put_impl(reader, limit))
    }

    fn get<'a>(&'a self, sha256: &'a Sha256Digest) -> BlobFuture<'a, BlobReader> {
        Box::pin(self.get_impl(sha256))
    }

    fn exists<'a>(&'a self, sha256: &'a Sha256Digest) -> BlobFuture<'a, bool> {
        Box::pin(self.exists_impl(sha256))
    }

    fn list(&self) -> BlobFuture<'_, Vec<Sha256Digest>> {
        Box::pin(self.list_impl())
    }

    fn verify<'a>(&'a self, sha256: &'a Sha256Digest) -> BlobFuture<'a, VerifyOutcome> {
        Box::pin(self.verify_impl(sha256))
    }

    fn delete<'a>(&'a self, sha256: &'a Sha256Digest) -> BlobFuture<'a, bool> {
        Box::pin(self.delete_impl(sha256))
    }
}

/// Creates `path` and its missing parents with mode 0700.
async fn create_directory(path: &Path) -> Result<(), BlobError> {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(path).await.map_err(|source| BlobError::Io {
        action: "create the directory",
        path: path.to_path_buf(),
        source,
    })
}

/// Gives a file mode 0600 (on Unix): owner read and write only.
async fn make_private(path: &Path) -> Result<(), BlobError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .await
            .map_err(|source| BlobError::Io {
                action: "restrict the permissions of",
                path: path.to_path_buf(),
                source,
            })?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Fsyncs a directory so that the entries created or renamed in it survive a
/// crash (on Linux a rename is only durable once its directory is synced).
async fn sync_directory(path: &Path) -> Result<(), BlobError> {
    let error = |source| BlobError::Io {
        action: "fsync the directory",
        path: path.to_path_buf(),
        source,
    };
    let directory = tokio::fs::File::open(path).await.map_err(error)?;
    directory.sync_all().await.map_err(error)
}

fn list_error(path: &Path, source: io::Error) -> BlobError {
    BlobError::Io {
        action: "list the directory",
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn blobs_are_0600_and_the_directories_made_for_them_0700() {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path().join("data").join("evidence");
        let store = LocalBlobStore::new(root.clone());
        let mut bytes: &[u8] = b"the screenshot of the change";
        let stored = store.put_stream(&mut bytes, 1 << 20).await.unwrap();
        let blob = store.blob_path(&stored.sha256);
        assert_eq!(mode(&blob), 0o600, "blob {}", blob.display());
        for made in [
            root.clone(),
            root.join("sha256"),
            blob.parent().unwrap().to_path_buf(),
            store.temporary_directory(),
        ] {
            assert_eq!(mode(&made), 0o700, "directory {}", made.display());
        }
    }
}
