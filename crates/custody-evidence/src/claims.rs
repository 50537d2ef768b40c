//! Blobs stored for writes not yet decided.
//!
//! An upload is stored before the event that records it is written, since
//! the event names the bytes by their hash. When that write is refused (an
//! idempotency key reused for other content, a case that no longer takes
//! evidence, a vendor's grant that does not cover the case), the blob it
//! stored is referenced by nothing, and `custody verify` would report it as
//! `evidence.blob-unreferenced`.
//!
//! Deleting it is only safe when no other write is about to reference the
//! same bytes: two uploads of one file share one blob. [`BlobClaims`]
//! tracks, on this node, the writes in flight for each blob:
//! - every write claims its blob ([`BlobClaims::claim`]) after storing it
//!   and before writing, and ends the claim when the write is decided;
//! - a refused write deletes the blob only if its own upload created it and
//!   no other claim was made on the blob since its own;
//! - a claim on a blob that was already present checks, under the same lock,
//!   that it is still there: if a refused write deleted it in between, the
//!   claim fails with [`ClaimError::Removed`] and the caller asks the client
//!   to send the content again (its write was not made, so its idempotency
//!   key is still free).
//!
//! The claims are per node. With several nodes sharing one blob store, a
//! refused write on one node can still delete a blob that an upload on
//! another node found present a moment before and is about to record; that
//! upload's evidence is then reported missing by `verify`
//! (`evidence.blob-missing`). Refused uploads of content another node is
//! uploading at the same instant are that case's whole window.

use std::collections::HashMap;

use crate::blob::{BlobError, BlobStore, StoredBlob};
use crate::digest::Sha256Digest;

/// The writes in flight for each blob on this node.
#[derive(Debug, Default)]
pub struct BlobClaims {
    claims: tokio::sync::Mutex<HashMap<Sha256Digest, Claims>>,
}

/// The claims on one blob.
#[derive(Debug, Default)]
struct Claims {
    /// Writes in flight; the entry is dropped when none is.
    in_flight: usize,
    /// Claims made on the blob while any was in flight.
    made: u64,
}

/// One write's claim on the blob it is about to record; give it back to
/// [`BlobClaims::recorded`] or [`BlobClaims::refused`].
#[derive(Debug)]
#[must_use = "a claim must be ended, or the blob is never let go of"]
pub struct Claim {
    sha256: Sha256Digest,
    /// The claim count on the blob when this one was made.
    made: u64,
    /// Whether this write's upload stored the blob (it was not present).
    created: bool,
}

/// Why a blob could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The blob was present when the upload was stored, and a refused write
    /// of the same content deleted it before this write could claim it.
    #[error("the evidence {sha256} was removed while this upload was being stored (a refused upload of the same content let it go); nothing was recorded: send it again")]
    Removed {
        /// The blob's digest.
        sha256: Sha256Digest,
    },
    /// The blob store could not say whether the blob is there.
    #[error(transparent)]
    Store(#[from] BlobError),
}

impl BlobClaims {
    /// Claims `stored` (what [`BlobStore::put_stream`] returned, or a
    /// captured link's blob) for a write about to record it.
    pub async fn claim(
        &self,
        blobs: &dyn BlobStore,
        stored: &StoredBlob,
    ) -> Result<Claim, ClaimError> {
        let mut claims = self.claims.lock().await;
        if stored.already_present && !blobs.exists(&stored.sha256).await? {
            return Err(ClaimError::Removed {
                sha256: stored.sha256,
            });
        }
        let entry = claims.entry(stored.sha256).or_default();
        entry.in_flight += 1;
        entry.made += 1;
        Ok(Claim {
            sha256: stored.sha256,
            made: entry.made,
            created: !stored.already_present,
        })
    }

    /// The write recorded the blob (or answered with an earlier write that
    /// did): the claim ends and the blob stays.
    pub async fn recorded(&self, claim: Claim) {
        let mut claims = self.claims.lock().await;
        Self::end(&mut claims, &claim);
    }

    /// The write was refused or failed, so nothing records the blob through
    /// it. The blob is deleted when this write's upload created it and no
    /// other claim was made on it since; returns whether it was deleted.
    pub async fn refused(&self, blobs: &dyn BlobStore, claim: Claim) -> Result<bool, BlobError> {
        let mut claims = self.claims.lock().await;
        let untouched = claims
            .get(&claim.sha256)
            .is_some_and(|entry| entry.made == claim.made);
        Self::end(&mut claims, &claim);
        if !(claim.created && untouched) {
            return Ok(false);
        }
        // Still under the lock: a claim that finds the blob present waits,
        // then sees it gone.
        blobs.delete(&claim.sha256).await
    }

    fn end(claims: &mut HashMap<Sha256Digest, Claims>, claim: &Claim) {
        if let Some(entry) = claims.get_mut(&claim.sha256) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
            if entry.in_flight == 0 {
                claims.remove(&claim.sha256);
            }
        }
    }

    /// Blobs with a write in flight (for tests and metrics).
    pub async fn in_flight(&self) -> usize {
        self.claims.lock().await.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::LocalBlobStore;

    async fn put(blobs: &LocalBlobStore, content: &[u8]) -> StoredBlob {
        let mut reader = content;
        blobs.put_stream(&mut reader, 1 << 20).await.unwrap()
    }

    fn store() -> (tempfile::TempDir, LocalBlobStore) {
        let directory = tempfile::tempdir().unwrap();
        let blobs = LocalBlobStore::new(directory.path().join("evidence"));
        (directory, blobs)
    }

    #[tokio::test]
    async fn a_refused_write_deletes_the_blob_its_upload_created() {
        let (_directory, blobs) = store();
        let claims = BlobClaims::default();
        let stored = put(&blobs, b"refused content").await;
        assert!(!stored.already_present);
        let claim = claims.claim(&blobs, &stored).await.unwrap();
        assert!(claims.refused(&blobs, claim).await.unwrap());
        assert!(!blobs.exists(&stored.sha256).await.unwrap());
        assert_eq!(claims.in_flight().await, 0);
    }

    #[tokio::test]
    async fn a_recorded_write_keeps_its_blob() {
        let (_directory, blobs) = store();
        let claims = BlobClaims::default();
        let stored = put(&blobs, b"recorded content").await;
        let claim = claims.claim(&blobs, &stored).await.unwrap();
        claims.recorded(claim).await;
        assert!(blobs.exists(&stored.sha256).await.unwrap());
        assert_eq!(claims.in_flight().await, 0);
    }

    #[tokio::test]
    async fn a_refused_write_keeps_a_blob_that_was_already_stored() {
        let (_directory, blobs) = store();
        let claims = BlobClaims::default();
        let first = put(&blobs, b"shared content").await;
        let first_claim = claims.claim(&blobs, &first).await.unwrap();
        claims.recorded(first_claim).await;
        // The same bytes again, for a write that is refused.
        let again = put(&blobs, b"shared content").await;
        assert!(again.already_present);
        let claim = claims.claim(&blobs, &again).await.unwrap();
        assert!(!claims.refused(&blobs, claim).await.unwrap());
        assert!(blobs.exists(&first.sha256).await.unwrap());
    }

    #[tokio::test]
    async fn a_refused_write_keeps_a_blob_another_write_claimed_since() {
        let (_directory, blobs) = store();
        let claims = BlobClaims::default();
        let created = put(&blobs, b"raced content").await;
        let refused = claims.claim(&blobs, &created).await.unwrap();
        // Another upload of the same bytes finds them present and claims
        // them, then records them, before the first write is refused.
        let other = put(&blobs, b"raced content").await;
        let other_claim = claims.claim(&blobs, &other).await.unwrap();
        claims.recorded(other_claim).await;
        assert!(!claims.refused(&blobs, refused).await.unwrap());
        assert!(blobs.exists(&created.sha256).await.unwrap());
        // And while the other is still in flight.
        let created = put(&blobs, b"raced again").await;
        let refused = claims.claim(&blobs, &created).await.unwrap();
        let other = put(&blobs, b"raced again").await;
        let other_claim = claims.claim(&blobs, &other).await.unwrap();
        assert!(!claims.refused(&blobs, refused).await.unwrap());
        claims.recorded(other_claim).await;
        assert!(blobs.exists(&created.sha256).await.unwrap());
        assert_eq!(claims.in_flight().await, 0);
    }

    #[tokio::test]
    async fn a_claim_on_a_blob_a_refused_write_deleted_fails_and_records_nothing() {
        let (_directory, blobs) = store();
        let claims = BlobClaims::default();
        let created = put(&blobs, b"let go").await;
        let refused = claims.claim(&blobs, &created).await.unwrap();
        // The other upload stored its bytes while the blob was there...
        let other = put(&blobs, b"let go").await;
        assert!(other.already_present);
        // ...and the refused write let the blob go before it claimed it.
        assert!(claims.refused(&blobs, refused).await.unwrap());
        let error = claims.claim(&blobs, &other).await.unwrap_err();
        assert!(matches!(error, ClaimError::Removed { .. }), "{error}");
        assert!(error.to_string().contains("send it again"));
        assert_eq!(claims.in_flight().await, 0);
    }
}
