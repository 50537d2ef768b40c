//! The content-addressed blob store: the trait, its results and errors, the
//! configuration that picks a backend, and the streaming copy both backends
//! share.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::digest::Sha256Digest;
use crate::sniff::{sniff_media_type, SNIFF_LENGTH};

/// The size of the buffer every copy in this crate streams through.
pub const COPY_BUFFER_SIZE: usize = 64 * 1024;

/// A boxed future returned by [`BlobStore`] methods (the trait is used as
/// `dyn BlobStore`, so its methods cannot be `async fn`).
pub type BlobFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BlobError>> + Send + 'a>>;

/// A stream of a stored blob's bytes, returned by [`BlobStore::get`].
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// A content-addressed store of immutable blobs, named by their SHA-256.
///
/// Every method is safe to call concurrently. A blob is either completely
/// stored under its digest or absent: a failed or cancelled
/// [`put_stream`](BlobStore::put_stream) leaves nothing behind.
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Streams `reader` into the store, hashing and counting as it goes, and
    /// returns where the bytes now live.
    ///
    /// Refuses with [`BlobError::TooLarge`] as soon as more than `limit` bytes
    /// have been read (exactly `limit` bytes is accepted), and then nothing is
    /// stored. Content that is already stored is kept once and reported with
    /// [`StoredBlob::already_present`].
    fn put_stream<'a>(
        &'a self,
        reader: &'a mut (dyn AsyncRead + Unpin + Send),
        limit: u64,
    ) -> BlobFuture<'a, StoredBlob>;

    /// Streams the blob's bytes; [`BlobError::NotFound`] if it is not stored.
    ///
    /// The bytes are not re-hashed on the way out: use
    /// [`verify`](BlobStore::verify) to check them.
    fn get<'a>(&'a self, sha256: &'a Sha256Digest) -> BlobFuture<'a, BlobReader>;

    /// Whether a blob with this digest is stored.
    fn exists<'a>(&'a self, sha256: &'a Sha256Digest) -> BlobFuture<'a, bool>;

    /// Every stored digest, sorted; with the database's references this finds
    /// orphan blobs.
    fn list(&self) -> BlobFuture<'_, Vec<Sha256Digest>>;

    /// Re-reads and re-hashes the stored bytes.
    fn verify<'a>(&'a self, sha256: &'a Sha256Digest) -> BlobFuture<'a, VerifyOutcome>;

    /// Removes the blob; returns whether it was there. Meant for orphans found
    /// with [`list`](BlobStore::list): evidence that an event refers to must
    /// never be deleted.
    fn delete<'a>(&'a self, sha256: &'a Sha256Digest) -> BlobFuture<'a, bool>;
}

/// A blob that [`BlobStore::put_stream`] stored (or found already stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBlob {
    /// The SHA-256 of the content, which is also its name in the store.
    pub sha256: Sha256Digest,
    /// The content's length in bytes.
    pub size: u64,
    /// True when identical content was already stored, so nothing was written.
    pub already_present: bool,
    /// The media type that the first bytes suggest (see
    /// [`crate::sniff_media_type`]); a hint, not a guarantee.
    pub sniffed_media_type: String,
}

/// What [`BlobStore::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum VerifyOutcome {
    /// No blob is stored under that digest.
    Missing,
    /// The stored bytes hash to the digest they are stored under.
    Intact {
        /// The stored length in bytes.
        size: u64,
    },
    /// The stored bytes hash to something else: they were altered or damaged.
    Corrupt {
        /// The SHA-256 of what is actually stored.
        actual_sha256: Sha256Digest,
        /// The length of what is actually stored.
        actual_size: u64,
    },
}

/// Everything that can go wrong in a blob store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The content is longer than the limit the caller set; nothing was stored.
    #[error("the content is larger than the limit of {limit} bytes, so nothing was stored; raise the limit or send a smaller file")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// An object read by key (not a blob) is larger than the caller's limit.
    #[error("the object `{key}` is larger than the limit of {limit} bytes; it was not read")]
    ObjectTooLarge {
        /// Its key.
        key: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// No blob is stored under this digest.
    #[error("no blob {sha256} is stored; check the digest, or run verify to find blobs that went missing")]
    NotFound {
        /// The digest that was asked for.
        sha256: Sha256Digest,
    },
    /// Reading the caller's input failed (for example, a client or upstream
    /// server hung up); nothing was stored.
    #[error("reading the content to store failed, so nothing was stored: {source}")]
    Read {
        /// The reader's error.
        #[source]
        source: io::Error,
    },
    /// A file system operation of the local store (or of the S3 store's
    /// staging directory) failed.
    #[error("could not {action} {}: {source}; check that the directory exists, is writable by this process and the disk is not full", path.display())]
    Io {
        /// What was being done, such as "create the temporary file".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// An S3 request could not be completed (connection, TLS or body error).
    #[error("the S3 {operation} request for `{key}` failed: {source}; check the endpoint URL and that the object store is reachable")]
    S3Request {
        /// The S3 operation, such as "PUT".
        operation: &'static str,
        /// The object key (or bucket) involved.
        key: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The S3 endpoint answered with an unexpected status.
    #[error("the S3 {operation} request for `{key}` was answered with HTTP {status} {code}: {message}; {hint}")]
    S3Status {
        /// The S3 operation, such as "PUT".
        operation: &'static str,
        /// The object key (or bucket) involved.
        key: String,
        /// The HTTP status code.
        status: u16,
        /// The S3 error code from the response body, if any.
        code: String,
        /// The S3 error message from the response body, if any.
        message: String,
        /// What to check.
        hint: &'static str,
    },
    /// The blob store configuration is not usable.
    #[error("invalid blob store setting `{field}`: {problem}")]
    InvalidConfig {
        /// The setting's name.
        field: &'static str,
        /// What is wrong and what to write instead.
        problem: String,
    },
}

/// What [`copy_hashing`] wrote.
pub(crate) struct CopiedContent {
    pub(crate) sha256: Sha256Digest,
    pub(crate) size: u64,
    pub(crate) sniffed_media_type: &'static str,
}

/// Copies `reader` into `file` through one [`COPY_BUFFER_SIZE`] buffer,
/// hashing, counting and keeping the first bytes for sniffing; refuses as
/// soon as more than `limit` bytes arrive. Flushes and fsyncs `file` at the
/// end. The caller removes the file on error.
pub(crate) async fn copy_hashing(
    reader: &mut (dyn AsyncRead + Unpin + Send),
    file: &mut tokio::fs::File,
    file_path: &Path,
    limit: u64,
) -> Result<CopiedContent, BlobError> {
    let write_error = |source| BlobError::Io {
        action: "write the temporary file",
        path: file_path.to_path_buf(),
        source,
    };
    let mut buffer = vec![0u8; COPY_BUFFER_SIZE];
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(SNIFF_LENGTH);
    let mut size: u64 = 0;
    loop {
        let read = reader
            .read(&mut buffer)
            .await
            .map_err(|source| BlobError::Read { source })?;
        if read == 0 {
            break;
        }
        size += read as u64;
        if size > limit {
            return Err(BlobError::TooLarge { limit });
        }
        let chunk = &buffer[..read];
        hasher.update(chunk);
        if head.len() < SNIFF_LENGTH {
            let wanted = (SNIFF_LENGTH - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..wanted]);
        }
        file.write_all(chunk).await.map_err(write_error)?;
    }
    file.flush().await.map_err(write_error)?;
    file.sync_all().await.map_err(|source| BlobError::Io {
        action: "fsync the temporary file",
        path: file_path.to_path_buf(),
        source,
    })?;
    Ok(CopiedContent {
        sha256: Sha256Digest::from_bytes(hasher.finalize().into()),
        size,
        sniffed_media_type: sniff_media_type(&head),
    })
}

/// Hashes everything `reader` yields; returns the digest and the length.
pub(crate) async fn hash_reader(
    reader: &mut (dyn AsyncRead + Unpin + Send),
) -> io::Result<(Sha256Digest, u64)> {
    let mut buffer = vec![0u8; COPY_BUFFER_SIZE];
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    loop {
        let read = reader.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        size += read as u64;
        hasher.update(&buffer[..read]);
    }
    Ok((Sha256Digest::from_bytes(hasher.finalize().into()), size))
}

/// A temporary file that is removed when dropped unless it was kept, so that
/// an error, a panic or a cancelled future (a dropped `put_stream`) leaves
/// nothing behind.
pub(crate) struct TemporaryFile {
    path: PathBuf,
    keep: bool,
}

impl TemporaryFile {
    /// Creates a new, empty file in `directory` with a name no other writer
    /// uses (`create_new`), opened for writing.
    pub(crate) async fn create_in(directory: &Path) -> Result<(Self, tokio::fs::File), BlobError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let mut attempt = 0;
        loop {
            let sequence = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = directory.join(format!(
                "incoming-{}-{nanos:x}-{sequence}.part",
                std::process::id()
            ));
            match tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .await
            {
                Ok(file) => return Ok((Self { path, keep: false }, file)),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => {
                    attempt += 1
                }
                Err(source) => {
                    return Err(BlobError::Io {
                        action: "create the temporary file",
                        path,
                        source,
                    })
                }
            }
        }
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the file from being removed on drop (it was renamed away).
    pub(crate) fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TemporaryFile {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(error) = std::fs::remove_file(&self.path) {
                if error.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.path.display(), %error, "could not remove a temporary evidence file");
                }
            }
        }
    }
}
