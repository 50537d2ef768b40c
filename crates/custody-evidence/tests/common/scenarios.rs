//! The behaviour every blob store backend must show, written once and run
//! against the local store and against S3 (moto).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use custody_evidence::{BlobError, BlobStore, Sha256Digest, VerifyOutcome};
use tokio::io::{AsyncRead, ReadBuf};

use super::{pseudo_random_bytes, read_all, BrokenReader, ChunkedReader};

/// Access to a backend's storage behind the store's back.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// The store under test.
    fn store(&self) -> &dyn BlobStore;
    /// Deletes the stored bytes of `digest` without the store's help.
    async fn remove_behind_the_back(&self, digest: &Sha256Digest);
    /// Replaces the stored bytes of `digest` without the store's help.
    async fn overwrite_behind_the_back(&self, digest: &Sha256Digest, bytes: &[u8]);
    /// Everything the backend holds: stored objects or files and staging
    /// files, found without the store's help.
    async fn everything_stored(&self) -> Vec<PathBuf>;
}

const MIB: u64 = 1024 * 1024;

/// A put of content longer than the copy buffer, in reads that do not line
/// up with it, stores exactly those bytes under their SHA-256.
pub async fn streaming_put_larger_than_buffer(backend: &impl Backend) {
    let store = backend.store();
    let data = pseudo_random_bytes(3 * 64 * 1024 + 12_345, 1);
    let expected = Sha256Digest::of(&data);
    let stored = store
        .put_stream(&mut ChunkedReader::new(data.clone(), 10_000), 10 * MIB)
        .await
        .unwrap();
    assert_eq!(stored.sha256, expected);
    assert_eq!(stored.size, data.len() as u64);
    assert!(!stored.already_present);
    assert_eq!(stored.sniffed_media_type, "application/octet-stream");
    assert!(store.exists(&expected).await.unwrap());
    assert_eq!(read_all(store.get(&expected).await.unwrap()).await, data);
    assert_eq!(
        store.verify(&expected).await.unwrap(),
        VerifyOutcome::Intact {
            size: data.len() as u64
        }
    );

    // The first bytes are sniffed even when they arrive in small reads.
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend(pseudo_random_bytes(100_000, 2));
    let stored = store
        .put_stream(&mut ChunkedReader::new(pdf, 3), 10 * MIB)
        .await
        .unwrap();
    assert_eq!(stored.sniffed_media_type, "application/pdf");
}

/// The same content put twice is stored once, and the second put says so.
pub async fn identical_content_stored_once(backend: &impl Backend) {
    let store = backend.store();
    let data = b"{\"ticket\": \"CHG-1042\", \"approved\": true}".to_vec();
    let first = store.put_stream(&mut data.as_slice(), MIB).await.unwrap();
    let second = store
        .put_stream(&mut ChunkedReader::new(data.clone(), 7), MIB)
        .await
        .unwrap();
    assert!(!first.already_present);
    assert!(
        second.already_present,
        "the second identical put must report already_present"
    );
    assert_eq!(first.sha256, second.sha256);
    assert_eq!(second.size, data.len() as u64);
    assert_eq!(second.sniffed_media_type, "application/json");
    assert_eq!(store.list().await.unwrap(), vec![first.sha256]);
    let stored = backend.everything_stored().await;
    assert_eq!(
        stored.len(),
        1,
        "exactly one copy must be stored, found {stored:?}"
    );
}

/// Content over the limit is refused and leaves nothing behind; content of
/// exactly the limit is accepted.
pub async fn limit_exceeded_leaves_nothing(backend: &impl Backend) {
    let store = backend.store();
    let limit = 100_000;
    let too_long = pseudo_random_bytes(limit as usize + 1, 3);
    let error = store
        .put_stream(&mut ChunkedReader::new(too_long.clone(), 8192), limit)
        .await
        .unwrap_err();
    assert!(
        matches!(error, BlobError::TooLarge { limit: 100_000 }),
        "{error:?}"
    );
    assert!(error.to_string().contains("100000 bytes"), "{error}");
    assert!(!store.exists(&Sha256Digest::of(&too_long)).await.unwrap());

    // An endless input is cut off at the limit instead of being read to the end.
    let error = store
        .put_stream(&mut EndlessReader::default(), limit)
        .await
        .unwrap_err();
    assert!(matches!(error, BlobError::TooLarge { .. }), "{error:?}");

    assert_eq!(store.list().await.unwrap(), Vec::<Sha256Digest>::new());
    assert_eq!(
        backend.everything_stored().await,
        Vec::<PathBuf>::new(),
        "a refused upload left something behind"
    );

    let exact = pseudo_random_bytes(limit as usize, 4);
    let stored = store
        .put_stream(&mut exact.as_slice(), limit)
        .await
        .unwrap();
    assert_eq!(stored.size, limit);
}

/// An upload whose input fails, or whose future is dropped half-way (a
/// cancelled request, a timeout), leaves nothing behind.
pub async fn failed_and_cancelled_uploads_leave_nothing(backend: &impl Backend) {
    let store = backend.store();
    let error = store
        .put_stream(
            &mut BrokenReader::failing_after(pseudo_random_bytes(200_000, 5)),
            10 * MIB,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, BlobError::Read { .. }), "{error:?}");

    let mut stalling = BrokenReader::stalling_after(pseudo_random_bytes(200_000, 6));
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        store.put_stream(&mut stalling, 10 * MIB),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the stalled upload should still be pending"
    );

    assert_eq!(store.list().await.unwrap(), Vec::<Sha256Digest>::new());
    assert_eq!(
        backend.everything_stored().await,
        Vec::<PathBuf>::new(),
        "an abandoned upload left something behind"
    );
}

/// verify reports Intact for good bytes, Corrupt (with the real hash) after
/// one byte changed, and Missing after the bytes were deleted.
pub async fn verify_detects_missing_and_corrupt(backend: &impl Backend) {
    let store = backend.store();
    let original = pseudo_random_bytes(150_000, 7);
    let stored = store
        .put_stream(&mut original.as_slice(), MIB)
        .await
        .unwrap();
    assert_eq!(
        store.verify(&stored.sha256).await.unwrap(),
        VerifyOutcome::Intact { size: 150_000 }
    );

    let mut altered = original.clone();
    altered[75_000] ^= 0x01;
    backend
        .overwrite_behind_the_back(&stored.sha256, &altered)
        .await;
    assert_eq!(
        store.verify(&stored.sha256).await.unwrap(),
        VerifyOutcome::Corrupt {
            actual_sha256: Sha256Digest::of(&altered),
            actual_size: 150_000,
        }
    );

    let other = store
        .put_stream(&mut &b"second blob"[..], MIB)
        .await
        .unwrap();
    backend.remove_behind_the_back(&other.sha256).await;
    assert_eq!(
        store.verify(&other.sha256).await.unwrap(),
        VerifyOutcome::Missing
    );
    assert!(!store.exists(&other.sha256).await.unwrap());
    match store.get(&other.sha256).await {
        Err(BlobError::NotFound { sha256 }) => assert_eq!(sha256, other.sha256),
        Err(error) => panic!("expected NotFound, got {error:?}"),
        Ok(_) => panic!("expected NotFound, got a reader"),
    }
    let never_stored = Sha256Digest::of(b"never stored");
    assert_eq!(
        store.verify(&never_stored).await.unwrap(),
        VerifyOutcome::Missing
    );
}

/// list returns every stored blob, so the ones no event refers to (orphans)
/// can be found and deleted.
pub async fn list_finds_orphans(backend: &impl Backend) {
    let store = backend.store();
    let mut digests = Vec::new();
    for seed in 10..13 {
        let data = pseudo_random_bytes(5_000 + seed as usize, seed);
        digests.push(
            store
                .put_stream(&mut data.as_slice(), MIB)
                .await
                .unwrap()
                .sha256,
        );
    }
    let referenced: BTreeSet<Sha256Digest> = [digests[0], digests[2]].into();
    let listed = store.list().await.unwrap();
    let mut sorted = digests.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    let orphans: Vec<Sha256Digest> = listed
        .into_iter()
        .filter(|digest| !referenced.contains(digest))
        .collect();
    assert_eq!(orphans, vec![digests[1]]);

    assert!(store.delete(&digests[1]).await.unwrap());
    assert!(
        !store.delete(&digests[1]).await.unwrap(),
        "a second delete finds nothing"
    );
    assert_eq!(
        store.list().await.unwrap(),
        referenced.into_iter().collect::<Vec<_>>()
    );
}

/// An input that never ends.
#[derive(Default)]
struct EndlessReader {
    produced: u64,
}

impl AsyncRead for EndlessReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let wanted = buffer.remaining().min(4096);
        buffer.put_slice(&[0x5a; 4096][..wanted]);
        self.produced += wanted as u64;
        assert!(
            self.produced < 64 * MIB,
            "the store kept reading far past its limit"
        );
        Poll::Ready(Ok(()))
    }
}
