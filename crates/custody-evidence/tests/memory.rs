//! A large upload is streamed: the process's peak memory barely moves.
//!
//! Alone in its own test binary so that no other test's allocations count.
//! Runs in about a second in a debug build because the crate's manifest
//! compiles `sha2` with `opt-level = 3` even in dev builds; without that
//! (unoptimised SHA-256 runs at about 20 MB/s) it takes 15 s or more.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::pin::Pin;
use std::task::{Context, Poll};

use custody_evidence::{BlobStore, LocalBlobStore, VerifyOutcome};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

const MIB: u64 = 1024 * 1024;
const CONTENT_SIZE: u64 = 256 * MIB;
const ALLOWED_GROWTH: u64 = 64 * MIB;

/// Generates `remaining` bytes on the fly (never materialised), hashing them
/// as they are handed out so the test knows the expected digest.
struct GeneratedContent {
    remaining: u64,
    block: Vec<u8>,
    counter: u64,
    hasher: Sha256,
}

impl GeneratedContent {
    fn new(size: u64) -> Self {
        Self {
            remaining: size,
            block: (0..64 * 1024)
                .map(|index| (index * 31 % 251) as u8)
                .collect(),
            counter: 0,
            hasher: Sha256::new(),
        }
    }
}

impl AsyncRead for GeneratedContent {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let wanted = (buffer.remaining() as u64)
            .min(this.remaining)
            .min(this.block.len() as u64) as usize;
        if wanted == 0 {
            return Poll::Ready(Ok(()));
        }
        // Vary every block so the content is not one block repeated.
        this.counter += 1;
        this.block[..8].copy_from_slice(&this.counter.to_le_bytes());
        buffer.put_slice(&this.block[..wanted]);
        this.hasher.update(&this.block[..wanted]);
        this.remaining -= wanted as u64;
        Poll::Ready(Ok(()))
    }
}

/// The process's peak resident set size (VmHWM), in bytes.
fn peak_resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    let kilobytes: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kilobytes * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_generated_stream_is_stored_with_little_memory() {
    let directory = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(directory.path().to_path_buf());
    let before = peak_resident_bytes();
    let started = std::time::Instant::now();

    let mut content = GeneratedContent::new(CONTENT_SIZE);
    let stored = store.put_stream(&mut content, CONTENT_SIZE).await.unwrap();

    let elapsed = started.elapsed();
    let after = peak_resident_bytes();
    let growth = after.saturating_sub(before);
    println!(
        "stored {} MiB in {elapsed:?}; VmHWM before {} KiB, after {} KiB, growth {} KiB",
        CONTENT_SIZE / MIB,
        before / 1024,
        after / 1024,
        growth / 1024
    );
    assert_eq!(stored.size, CONTENT_SIZE);
    let expected: [u8; 32] = content.hasher.clone().finalize().into();
    assert_eq!(stored.sha256.as_bytes(), &expected);
    assert_eq!(
        std::fs::metadata(store.blob_path(&stored.sha256))
            .unwrap()
            .len(),
        CONTENT_SIZE
    );
    assert!(
        growth < ALLOWED_GROWTH,
        "storing {} MiB raised peak memory by {} MiB (limit {} MiB): the upload is being buffered",
        CONTENT_SIZE / MIB,
        growth / MIB,
        ALLOWED_GROWTH / MIB
    );
    assert_eq!(
        store.verify(&stored.sha256).await.unwrap(),
        VerifyOutcome::Intact { size: CONTENT_SIZE }
    );
}
