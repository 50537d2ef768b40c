//! Evidence storage and capture for Custody: the primitives behind "evidence
//! that cannot come disconnected". An attachment or a link snapshot is stored
//! as an immutable blob named by its SHA-256, and the ledger's events carry
//! that digest; whoever holds the event can check the bytes, and the bytes
//! cannot be swapped without the digest changing. This crate knows nothing of
//! the database: the server records the [`StoredBlob`] or [`Snapshot`] it gets
//! back in an event.
//!
//! # Blob stores
//!
//! [`BlobStore`] is a content-addressed store with two backends, chosen by
//! [`BlobStoreConfig`] (`backend = "local"` or `backend = "s3"` in TOML).
//! Uploads are streamed through one 64 KiB buffer ([`COPY_BUFFER_SIZE`]) while
//! SHA-256 and size are computed, so a blob of any size is stored with a small,
//! constant amount of memory. The caller's byte limit is enforced while
//! streaming: the moment it is exceeded the upload is abandoned with
//! [`BlobError::TooLarge`] and nothing is left behind. Identical content is
//! stored once; a second upload reports [`StoredBlob::already_present`].
//!
//! ## Local disk ([`LocalBlobStore`], the default)
//!
//! ```text
//! <root>/
//!   sha256/
//!     ab/
//!       ab3f…(64 hex digits)     one file per blob, named by its SHA-256
//!   tmp/
//!     incoming-<pid>-<time>-<n>.part   uploads in progress
//! ```
//!
//! Durability: an upload is written to a temporary file in `<root>/tmp` (same
//! file system as the final place), `fsync`ed, renamed to
//! `<root>/sha256/<first 2 hex>/<hex>`, and then the shard directory is
//! `fsync`ed (and its parents, when the shard directory is new), because on
//! Linux a rename is only durable once the directory holding it is synced.
//! So once `put_stream` returns, the blob survives a crash or power loss; and
//! a blob file is never visible half-written. A temporary file is removed on
//! any error and when the upload future is dropped (a cancelled request or a
//! timeout); only a crash of the process can leave a `.part` file, which
//! nothing reads.
//!
//! ## S3-compatible object storage ([`S3BlobStore`])
//!
//! Objects are stored under `<prefix>sha256/<first 2 hex>/<hex>`, the same
//! layout. The crate signs requests itself with AWS Signature Version 4
//! ([`sigv4`], checked against the AWS documentation's examples and the
//! RFC 4231 HMAC vectors) rather than pulling in the AWS SDK, which would
//! multiply the build. An upload is first streamed to a local staging file
//! while it is hashed and counted: that is how the object key can be the hash
//! and how the size limit is enforced before any byte reaches S3. Then a
//! `HEAD` skips the upload when the object already exists, and a single `PUT`
//! sends the file with `x-amz-content-sha256` set to its real SHA-256, which
//! S3 checks against the bytes it receives. Limits: one `PUT` carries at most
//! 5 GiB ([`MAX_SINGLE_PUT_SIZE`]; multipart upload is not implemented), and
//! the staging directory needs room for the uploads in flight. Durability is
//! the object store's.
//!
//! # Media type sniffing
//!
//! [`sniff_media_type`] names the content from its first bytes (PDF, PNG,
//! JPEG, GIF, ZIP and so DOCX/XLSX, gzip, HTML, JSON, UTF-8 text, else
//! `application/octet-stream`). It is a hint for display, never a security
//! decision.
//!
//! # Link snapshots and SSRF
//!
//! [`fetch_snapshot`] stores what a link serves, without letting a link reach
//! inside the network Custody runs in (server-side request forgery):
//!
//! - Only `http` and `https`; URLs with a user name or password are refused.
//! - The host is resolved by this crate, and the capture is refused
//!   ([`FetchError::Refused`], naming the [`AddressClass`]) if **any** address
//!   is loopback, private (RFC 1918, `fc00::/7`), link-local, a cloud metadata
//!   service (`169.254.169.254`, `fd00:ec2::254`, `metadata.google.internal`
//!   and kin, refused by name before DNS), unspecified, carrier-grade NAT
//!   (`100.64.0.0/10`), multicast, broadcast, documentation or otherwise
//!   reserved. IPv4-mapped (`::ffff:127.0.0.1`), IPv4-compatible, NAT64
//!   (`64:ff9b::/96`) and 6to4 forms are judged by the IPv4 address they
//!   carry. Odd IPv4 spellings (`http://2130706433/`, `http://0x7f.1/`) are
//!   normalised by the URL parser first, so they are caught too.
//! - [`FetchPolicy::allow`] lists addresses, networks or host names that are
//!   allowed anyway (an intranet wiki, a test server).
//! - The connection goes only to the addresses that were checked: a client is
//!   built for each hop with those addresses pinned (`resolve_to_addrs`), a
//!   resolver that refuses every other name, and no proxy. A DNS answer that
//!   changes between the check and the connection (DNS rebinding) is never
//!   used.
//! - Redirects are followed by hand, at most [`FetchPolicy::max_redirects`],
//!   and every hop is checked again like the first URL.
//! - [`FetchPolicy::timeout`] bounds the whole capture, DNS to last byte;
//!   [`FetchPolicy::max_bytes`] bounds the body (checked against
//!   `Content-Length` first, then while streaming). A refused, failed or
//!   abandoned capture stores nothing.
//! - A non-2xx final answer is not stored: it is [`FetchError::ErrorStatus`]
//!   with its status, so the caller records the link as unverified and no
//!   blob is left that no record references. Error statuses, unreachable
//!   hosts and timeouts are errors for which
//!   [`FetchError::leaves_link_unverified`] is true.
//! - Host names are resolved by a [`HostResolver`]: the system's
//!   ([`SystemResolver`]) for [`fetch_snapshot`], or one the caller gives to
//!   [`fetch_snapshot_with`]. A name that resolves to a public address and a
//!   private one is refused: every address is checked.
//! - Text the remote side chooses (a redirect's `Location`, error details) is
//!   escaped with `custody_core::text::escape` before it is put into an
//!   error, so a server cannot put control or bidi characters into the
//!   ledger through a capture.
//!
//! # TLS
//!
//! HTTPS (to S3 and to captured links) uses rustls with the *ring* provider,
//! installed as the process default by [`install_crypto_provider`] (called
//! by this crate before it builds a client; an already installed provider is
//! kept), and the platform's certificate verifier.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

mod blob;
pub mod claims;
mod digest;
mod fetch;
mod local;
pub mod netclass;
mod s3;
pub mod sigv4;
pub mod sniff;
mod time;

pub use blob::{
    BlobError, BlobFuture, BlobReader, BlobStore, StoredBlob, VerifyOutcome, COPY_BUFFER_SIZE,
};
pub use claims::{BlobClaims, Claim, ClaimError};
pub use digest::{DigestParseError, Sha256Digest};
pub use fetch::{
    fetch_snapshot, fetch_snapshot_with, FetchError, FetchPolicy, HostResolver, Snapshot,
    SystemResolver, USER_AGENT,
};
pub use local::LocalBlobStore;
pub use netclass::{classify, AddressClass, AllowRule, AllowRuleParseError, IpNetwork};
pub use s3::{KeyPage, S3BlobStore, S3Config, MAX_SINGLE_PUT_SIZE};
pub use sniff::sniff_media_type;

/// Which blob store to use, as written in the server's TOML configuration:
/// the one place that knows both backends. It lives here, above them, so
/// `blob` (the trait and what both backends share) depends on neither.
///
/// ```toml
/// [evidence.store]
/// backend = "local"
/// path = "/var/lib/custody/evidence"   # optional
/// ```
///
/// ```toml
/// [evidence.store]
/// backend = "s3"
/// endpoint = "https://s3.eu-west-1.amazonaws.com"
/// bucket = "custody-evidence"
/// region = "eu-west-1"
/// access_key_id = "AKIA..."
/// secret_access_key = "..."
/// prefix = "prod/"            # optional
/// path_style = true           # optional, default true
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
pub enum BlobStoreConfig {
    /// Files under a local directory (the default).
    Local {
        /// The store's root directory; when absent, the caller's default
        /// (normally `<data dir>/evidence`).
        #[serde(default)]
        path: Option<PathBuf>,
    },
    /// An S3-compatible object store.
    S3(S3Config),
}

impl Default for BlobStoreConfig {
    fn default() -> Self {
        Self::Local { path: None }
    }
}

impl BlobStoreConfig {
    /// Checks the settings without touching the disk or the network.
    pub fn validate(&self) -> Result<(), BlobError> {
        match self {
            Self::Local { path: Some(path) } if path.as_os_str().is_empty() => {
                Err(BlobError::InvalidConfig {
                    field: "path",
                    problem:
                        "it is empty; remove it to use the default directory, or name a directory"
                            .into(),
                })
            }
            Self::Local { .. } => Ok(()),
            Self::S3(config) => config.validate(),
        }
    }

    /// Builds the configured store. `default_local_root` is used when the
    /// local backend has no `path`.
    pub fn open(&self, default_local_root: &Path) -> Result<Arc<dyn BlobStore>, BlobError> {
        self.validate()?;
        Ok(match self {
            Self::Local { path } => Arc::new(LocalBlobStore::new(
                path.clone()
                    .unwrap_or_else(|| default_local_root.to_path_buf()),
            )),
            Self::S3(config) => Arc::new(S3BlobStore::new(config.clone())?),
        })
    }
}

/// Installs rustls's *ring* crypto provider as the process default, unless a
/// provider is already installed (then that one is kept). Safe to call any
/// number of times, from any thread.
pub fn install_crypto_provider() {
    // An error only means another provider was installed first, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
