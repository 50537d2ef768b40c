//! RFC 6962 / RFC 9162 Merkle tree hashing and proof verification.
//!
//! * `leaf_hash(d) = SHA-256(0x00 || d)`
//! * `node_hash(l, r) = SHA-256(0x01 || l || r)`
//! * the root of the empty tree is `SHA-256("")`
//! * the root of `n > 1` leaves splits at the largest power of two `k < n`:
//!   `node_hash(root(D[0:k]), root(D[k:n]))`.
//!
//! Proof verification follows RFC 9162 sections 2.1.3.2 (inclusion) and
//! 2.1.4.2 (consistency). Before running those algorithms the proof length is
//! compared with the exact length the sizes imply, so a proof with an extra,
//! missing or garbage element is rejected with a precise error.
//!
//! Consistency from size 0 to a non-zero size is rejected; see the crate
//! documentation for why.

use sha2::{Digest, Sha256};

/// Size in bytes of a SHA-256 hash, the only hash this crate uses.
pub const HASH_SIZE: usize = 32;

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; HASH_SIZE];

/// Domain-separation prefix of a leaf hash (RFC 6962 section 2.1).
pub const LEAF_PREFIX: u8 = 0x00;

/// Domain-separation prefix of an interior node hash (RFC 6962 section 2.1).
pub const NODE_PREFIX: u8 = 0x01;

/// Errors of Merkle proof verification and generation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// A leaf index is not below the tree size it is claimed for.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof was asked for from a larger tree to a smaller one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    SizeOrder {
        /// The old (first) tree size.
        old_size: u64,
        /// The new (second) tree size.
        new_size: u64,
    },
    /// A consistency proof from the empty tree to a non-empty tree was asked
    /// for or presented; this crate rejects those (see the crate docs).
    #[error("consistency proofs from tree size 0 are not accepted")]
    ConsistencyFromEmpty,
    /// The proof does not have the number of hashes its sizes imply.
    #[error("proof has {actual} hashes, expected {expected}")]
    ProofLength {
        /// Hashes the sizes imply.
        expected: usize,
        /// Hashes presented.
        actual: usize,
    },
    /// The proof does not lead to the expected (new) root hash.
    #[error("proof does not match the root hash")]
    RootMismatch,
    /// The consistency proof does not lead to the old root hash.
    #[error("consistency proof does not match the old root hash")]
    OldRootMismatch,
    /// An empty leaf range, or one not aligned to the complete subtrees it is
    /// made of, was asked for.
    #[error("invalid subtree range [{start}, {end})")]
    InvalidRange {
        /// First leaf of the range.
        start: u64,
        /// One past the last leaf of the range.
        end: u64,
    },
    /// A tree size beyond what the tree holds was asked for.
    #[error("tree size {requested} exceeds the tree's {available} leaves")]
    SizeExceedsTree {
        /// The requested size.
        requested: u64,
        /// The leaves the tree holds.
        available: u64,
    },
    /// A node needed for a root or proof is not stored.
    #[error("node at level {level} index {index} is not stored")]
    MissingNode {
        /// Level of the node (0 = leaf hashes).
        level: u8,
        /// Index of the node within its level.
        index: u64,
    },
    /// Appending would exceed the largest representable tree size.
    #[error("the tree is full")]
    TreeFull,
}

/// Hashes a leaf's data: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(data);
    hasher.finalize().into()
}

/// Hashes two children into their parent: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root hash of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Computes the root of a tree from all its leaf hashes, in `O(n)` time.
///
/// Pairs are hashed level by level and an odd last node is carried up
/// unchanged, which yields exactly RFC 6962's split at the largest power of
/// two below the size.
pub fn root_from_leaf_hashes(leaf_hashes: &[Hash]) -> Hash {
    if leaf_hashes.is_empty() {
        return empty_root();
    }
    let mut level: Vec<Hash> = leaf_hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => node_hash(left, right),
                // An odd node is promoted unchanged; `chunks(2)` never yields
                // an empty chunk, the fallback only keeps this total.
                [single] => *single,
                _ => empty_root(),
            })
            .collect();
    }
    level.first().copied().unwrap_or_else(empty_root)
}

/// Number of hashes in an inclusion proof for `index` in a tree of `size`.
///
/// # Errors
///
/// [`MerkleError::IndexOutOfRange`] if `index >= size`.
pub fn inclusion_proof_len(index: u64, size: u64) -> Result<usize, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let (inner, border) = decompose_inclusion(index, size);
    Ok(inner + border)
}

/// Number of hashes in a consistency proof from `old_size` to `new_size`.
///
/// # Errors
///
/// [`MerkleError::SizeOrder`] if `old_size > new_size`, and
/// [`MerkleError::ConsistencyFromEmpty`] if `old_size == 0 < new_size`.
pub fn consistency_proof_len(old_size: u64, new_size: u64) -> Result<usize, MerkleError> {
    check_consistency_sizes(old_size, new_size)?;
    if old_size == new_size {
        return Ok(0);
    }
    // The proof is the inclusion path of the old tree's last leaf, minus the
    // levels below the largest complete subtree that ends the old tree
    // (`shift`), plus that subtree's root unless it is the whole old tree.
    let (inner, border) = decompose_inclusion(old_size - 1, new_size);
    let shift = old_size.trailing_zeros() as usize;
    let seed = usize::from(!old_size.is_power_of_two());
    Ok(seed + inner.saturating_sub(shift) + border)
}

/// Recomputes the root hash implied by an inclusion proof (RFC 9162
/// section 2.1.3.2).
///
/// # Errors
///
/// [`MerkleError::IndexOutOfRange`] if `index >= size`, and
/// [`MerkleError::ProofLength`] if the proof is not exactly as long as the
/// sizes imply.
pub fn root_from_inclusion_proof(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, MerkleError> {
    let expected = inclusion_proof_len(index, size)?;
    if proof.len() != expected {
        return Err(MerkleError::ProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let mut fn_ = index;
    let mut sn = size - 1;
    let mut r = *leaf_hash;
    for p in proof {
        // The length check above makes this unreachable; kept because it is
        // the RFC's own guard against over-long proofs.
        if sn == 0 {
            return Err(MerkleError::ProofLength {
                expected,
                actual: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                // We are the right border: skip the levels where the node
                // has no sibling and is promoted unchanged.
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(MerkleError::ProofLength {
            expected,
            actual: proof.len(),
        });
    }
    Ok(r)
}

/// Verifies that `leaf_hash` is the leaf at `index` of the tree of `size`
/// leaves with root `root`.
///
/// # Errors
///
/// Those of [`root_from_inclusion_proof`], and [`MerkleError::RootMismatch`]
/// if the proof leads to another root.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    let computed = root_from_inclusion_proof(leaf_hash, index, size, proof)?;
    if &computed == root {
        Ok(())
    } else {
        Err(MerkleError::RootMismatch)
    }
}

/// Verifies that the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root` (RFC 9162
/// section 2.1.4.2).
///
/// Equal sizes need an empty proof and equal roots. Old size 0 with a
/// non-zero new size is rejected.
///
/// # Errors
///
/// [`MerkleError::SizeOrder`], [`MerkleError::ConsistencyFromEmpty`],
/// [`MerkleError::ProofLength`], [`MerkleError::OldRootMismatch`] or
/// [`MerkleError::RootMismatch`].
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    let expected = consistency_proof_len(old_size, new_size)?;
    if proof.len() != expected {
        return Err(MerkleError::ProofLength {
            expected,
            actual: proof.len(),
        });
    }
    if old_size == new_size {
        return if old_root == new_root {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }

    // RFC 9162 step 2: when the old tree is a complete subtree its root is
    // the implicit first element of the path.
    let (first, rest) = if old_size.is_power_of_two() {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => {
                return Err(MerkleError::ProofLength {
                    expected,
                    actual: 0,
                })
            }
        }
    };

    // Sizes are non-zero here (old_size > 0 was checked, new_size > old_size).
    let mut fn_ = old_size - 1;
    let mut sn = new_size - 1;
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut fr = first;
    let mut sr = first;
    for c in rest {
        if sn == 0 {
            return Err(MerkleError::ProofLength {
                expected,
                actual: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(MerkleError::ProofLength {
            expected,
            actual: proof.len(),
        });
    }
    if &fr != old_root {
        return Err(MerkleError::OldRootMismatch);
    }
    if &sr != new_root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// Validates the size pair of a consistency proof, shared by generation and
/// verification so both apply the same size-0 rule.
pub(crate) fn check_consistency_sizes(old_size: u64, new_size: u64) -> Result<(), MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::SizeOrder { old_size, new_size });
    }
    if old_size == 0 && new_size > 0 {
        return Err(MerkleError::ConsistencyFromEmpty);
    }
    Ok(())
}

/// Splits an inclusion proof's length into the levels below the point where
/// the leaf's path leaves the right border (`inner`) and the left siblings on
/// the right border above it (`border`). Requires `index < size`.
fn decompose_inclusion(index: u64, size: u64) -> (usize, usize) {
    let last = size.saturating_sub(1);
    let inner = u64::BITS - (index ^ last).leading_zeros();
    // `inner` is at most 64; shifting a u64 by 64 would overflow.
    let border = index.checked_shr(inner).unwrap_or(0).count_ones() as usize;
    (inner as usize, border)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(root_from_leaf_hashes(&[]), empty_root());
    }

    #[test]
    fn single_leaf_root_is_its_hash() {
        let h = leaf_hash(b"x");
        assert_eq!(root_from_leaf_hashes(&[h]), h);
        assert_eq!(verify_inclusion(&h, 0, 1, &[], &h), Ok(()));
    }

    #[test]
    fn lengths_at_extremes_do_not_overflow() {
        assert_eq!(inclusion_proof_len(u64::MAX - 1, u64::MAX), Ok(63));
        assert_eq!(inclusion_proof_len(0, u64::MAX), Ok(64));
        assert!(consistency_proof_len(u64::MAX - 1, u64::MAX).is_ok());
        assert!(consistency_proof_len(1, u64::MAX).is_ok());
        assert_eq!(
            consistency_proof_len(0, 1),
            Err(MerkleError::ConsistencyFromEmpty)
        );
        assert_eq!(consistency_proof_len(0, 0), Ok(0));
    }

    #[test]
    fn consistency_size_rules() {
        let r = empty_root();
        assert_eq!(verify_consistency(0, 0, &r, &r, &[]), Ok(()));
        assert_eq!(
            verify_consistency(0, 3, &r, &r, &[]),
            Err(MerkleError::ConsistencyFromEmpty)
        );
        assert_eq!(
            verify_consistency(3, 2, &r, &r, &[]),
            Err(MerkleError::SizeOrder {
                old_size: 3,
                new_size: 2
            })
        );
        assert_eq!(
            verify_consistency(2, 2, &r, &leaf_hash(b""), &[]),
            Err(MerkleError::RootMismatch)
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
