//! The replay window: a signed request is accepted once.
//!
//! Each connector keeps the fingerprints (MACs) of the requests it accepted
//! inside its timestamp window. A request older than the window is refused
//! by the window itself, so a fingerprint needs remembering only that long,
//! and memory is bounded by the rate of accepted requests times the window,
//! capped at `capacity` (the oldest is forgotten first; a request that old
//! is refused by the window anyway unless the rate exceeds the cap).
//!
//! This guard is per node. Across several nodes on one database, and after
//! a restart, the ledger's own rule is what holds: (source, external ID) is
//! unique, so a replayed record that reaches another node appends nothing.

use std::collections::{HashSet, VecDeque};

use crate::Refusal;

/// Fingerprints of accepted requests, forgotten once out of the window.
#[derive(Debug)]
pub struct ReplayGuard {
    window_seconds: u64,
    capacity: usize,
    seen: HashSet<Vec<u8>>,
    order: VecDeque<(u64, Vec<u8>)>,
}

impl ReplayGuard {
    /// A guard for a window of `window_seconds`, remembering at most
    /// `capacity` fingerprints.
    pub fn new(window_seconds: u64, capacity: usize) -> ReplayGuard {
        ReplayGuard {
            window_seconds,
            capacity: capacity.max(1),
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Accepts `fingerprint` once: refuses it if it was accepted within the
    /// window before `now_unix`, and remembers it otherwise.
    pub fn admit(&mut self, fingerprint: &[u8], now_unix: u64) -> Result<(), Refusal> {
        while let Some((at, _)) = self.order.front() {
            if at.saturating_add(self.window_seconds.saturating_mul(2)) >= now_unix {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if self.seen.contains(fingerprint) {
            return Err(Refusal::Replayed);
        }
        if self.order.len() >= self.capacity {
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(fingerprint.to_vec());
        self.order.push_back((now_unix, fingerprint.to_vec()));
        Ok(())
    }

    /// Forgets `fingerprint`, so the same signed request is admitted once
    /// more: for a request the source was asked to retry.
    pub fn forget(&mut self, fingerprint: &[u8]) {
        if self.seen.remove(fingerprint) {
            self.order
                .retain(|(_, seen)| seen.as_slice() != fingerprint);
        }
    }

    /// How many fingerprints it holds.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_admitted_once_within_the_window() {
        let mut guard = ReplayGuard::new(300, 10);
        guard.admit(b"a", 1000).unwrap();
        assert_eq!(guard.admit(b"a", 1001), Err(Refusal::Replayed));
        assert_eq!(guard.admit(b"a", 1600), Err(Refusal::Replayed));
        guard.admit(b"b", 1001).unwrap();
        // Forgotten only once a request signed then would fail the window
        // on either side (twice the window, since the window is two-sided).
        guard.admit(b"c", 1601).unwrap();
        guard.admit(b"a", 1601).unwrap();
        assert_eq!(guard.admit(b"c", 1602), Err(Refusal::Replayed));
    }

    #[test]
    fn a_forgotten_fingerprint_is_admitted_again_once() {
        let mut guard = ReplayGuard::new(300, 10);
        guard.admit(b"a", 1000).unwrap();
        guard.admit(b"b", 1000).unwrap();
        guard.forget(b"a");
        assert_eq!(guard.len(), 1);
        guard.admit(b"a", 1001).unwrap();
        assert_eq!(guard.admit(b"a", 1002), Err(Refusal::Replayed));
        assert_eq!(guard.admit(b"b", 1002), Err(Refusal::Replayed));
    }

    #[test]
    fn memory_is_capped() {
        let mut guard = ReplayGuard::new(300, 3);
        for byte in 0..10_u8 {
            guard.admit(&[byte], 1000).unwrap();
        }
        assert_eq!(guard.len(), 3);
        assert_eq!(guard.admit(&[9], 1000), Err(Refusal::Replayed));
    }
}
