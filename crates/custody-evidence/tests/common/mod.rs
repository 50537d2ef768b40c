//! Helpers shared by the integration tests: readers that generate content,
//! a directory walk, the blob store scenarios both backends must pass, and a
//! real S3 server (moto).

#![allow(dead_code)]

pub mod moto;
pub mod scenarios;

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// Deterministic pseudo-random bytes (xorshift), different for each `seed`.
pub fn pseudo_random_bytes(length: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = Vec::with_capacity(length + 8);
    while bytes.len() < length {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(length);
    bytes
}

/// A reader over `data` that hands out at most `chunk` bytes per read, so
/// the store sees reads that do not line up with its buffer.
pub struct ChunkedReader {
    data: Vec<u8>,
    position: usize,
    chunk: usize,
}

impl ChunkedReader {
    pub fn new(data: Vec<u8>, chunk: usize) -> Self {
        Self {
            data,
            position: 0,
            chunk,
        }
    }
}

impl AsyncRead for ChunkedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let end = (self.position + self.chunk).min(self.data.len());
        let wanted = (end - self.position).min(buffer.remaining());
        let start = self.position;
        buffer.put_slice(&self.data[start..start + wanted]);
        self.position += wanted;
        Poll::Ready(Ok(()))
    }
}

/// A reader that yields `data` and then either fails (`fail = true`) or
/// never finishes (`fail = false`, for cancellation tests).
pub struct BrokenReader {
    data: Vec<u8>,
    position: usize,
    fail: bool,
}

impl BrokenReader {
    pub fn failing_after(data: Vec<u8>) -> Self {
        Self {
            data,
            position: 0,
            fail: true,
        }
    }

    pub fn stalling_after(data: Vec<u8>) -> Self {
        Self {
            data,
            position: 0,
            fail: false,
        }
    }
}

impl AsyncRead for BrokenReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.position < self.data.len() {
            let wanted = (self.data.len() - self.position).min(buffer.remaining());
            let start = self.position;
            buffer.put_slice(&self.data[start..start + wanted]);
            self.position += wanted;
            return Poll::Ready(Ok(()));
        }
        if self.fail {
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the uploader hung up",
            )))
        } else {
            // Never woken: the put future stays pending until it is dropped.
            Poll::Pending
        }
    }
}

/// Every file (not directory) under `root`, relative paths, sorted.
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            } else {
                files.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    files.sort();
    files
}

/// Reads a whole stream (test content is small).
pub async fn read_all(mut reader: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).await.unwrap();
    bytes
}
