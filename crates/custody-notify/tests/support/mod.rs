//! Real servers for the channel tests, started (or found) by the test itself:
//! an SMTP server ([`smtp`], Python's aiosmtpd) and NATS JetStream
//! ([`nats`]).
//!
//! Shared by this crate's tests (`tests/channels`) and the workspace's
//! end-to-end tests, which include it with
//! `#[path = "../crates/custody-notify/tests/support/mod.rs"] mod support;`.
//! It relies only on what both test crates have: `tokio`, `serde_json`,
//! `tempfile` and `async-nats`.

// Each test crate uses a different part of the harness.
#![allow(dead_code)]

pub mod nats;
pub mod smtp;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A name no other test run uses: `prefix-<pid>-<nanos>-<counter>`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
