//! Proof generation over stored complete-subtree nodes.
//!
//! A log stores, for every complete subtree, the node `(level, index)`
//! covering leaves `[index * 2^level, (index + 1) * 2^level)`; level 0 holds
//! the leaf hashes. Nodes never change once written, so the same rows serve
//! roots and proofs for *every* past tree size.
//!
//! Any subtree the RFC 6962 algorithms need — `MTH(D[start:end])` with
//! `start` aligned to a power of two at least `end - start` — is a right fold
//! over at most 64 stored nodes (the binary digits of `end - start`), and
//! only the rightmost subtree of a proof is ever incomplete. So a root, an
//! inclusion proof or a consistency proof costs `O(log n)` node reads.
//!
//! The generators are synchronous and read through [`NodeReader`]. Because
//! which nodes they read depends only on the sizes and indices involved, the
//! [`nodes_for_root`], [`nodes_for_inclusion`], [`nodes_for_consistency`] and
//! [`nodes_for_append`] functions list them in advance: an async storage
//! layer fetches that list (one query), puts the rows in a
//! `HashMap<NodeId, Hash>` (which implements [`NodeReader`]) and runs the
//! generator on the map.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;

use crate::merkle::{self, empty_root, node_hash, Hash, MerkleError};

/// Position of a complete subtree node: the Merkle Tree Hash of leaves
/// `[index * 2^level, (index + 1) * 2^level)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height of the subtree; 0 for leaf hashes. At most 63.
    pub level: u8,
    /// Index of the node among the nodes of its level.
    pub index: u64,
}

/// A stored node: its position and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// Where the node sits in the tree.
    pub id: NodeId,
    /// The node's Merkle Tree Hash.
    pub hash: Hash,
}

/// Read access to stored complete-subtree nodes.
///
/// Implementations return the hash stored for `id`, or an error if it is
/// missing or cannot be read. Generators only ask for nodes that exist in a
/// tree of the size they were given.
pub trait NodeReader {
    /// The error a failed read reports.
    type Error;

    /// Returns the hash of the complete subtree node `id`.
    ///
    /// # Errors
    ///
    /// Whatever the storage reports: a missing node, an IO failure, ...
    fn node(&self, id: NodeId) -> Result<Hash, Self::Error>;
}

/// Error of proof or root generation: either the request itself is invalid
/// or the [`NodeReader`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProveError<E> {
    /// The sizes or indices asked for are invalid (for example an index past
    /// the tree size, or a consistency proof from size 0).
    #[error(transparent)]
    Invalid(#[from] MerkleError),
    /// The node reader failed.
    #[error("reading a tree node failed")]
    Reader(#[source] E),
}

/// An in-memory tree that keeps every complete node, so roots and proofs for
/// any size it has reached cost `O(log n)`. Used by tests, tools and as the
/// reference for storage-backed trees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryTree {
    /// `levels[l][i]` is node `(l, i)`; `levels[l].len() == size >> l`.
    levels: Vec<Vec<Hash>>,
}

impl NodeId {
    /// Creates a node position.
    pub fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }

    /// The leaf range `[start, end)` this node covers, or `None` if it does
    /// not fit in `u64` leaf indices.
    pub fn leaf_range(&self) -> Option<(u64, u64)> {
        let start = self
            .index
            .checked_mul(1u64.checked_shl(self.level.into())?)?;
        let end = self
            .index
            .checked_add(1)?
            .checked_mul(1u64.checked_shl(self.level.into())?)?;
        Some((start, end))
    }
}

impl<R: NodeReader + ?Sized> NodeReader for &R {
    type Error = R::Error;

    fn node(&self, id: NodeId) -> Result<Hash, Self::Error> {
        (**self).node(id)
    }
}

impl<S: std::hash::BuildHasher> NodeReader for HashMap<NodeId, Hash, S> {
    type Error = MerkleError;

    fn node(&self, id: NodeId) -> Result<Hash, MerkleError> {
        self.get(&id).copied().ok_or(MerkleError::MissingNode {
            level: id.level,
            index: id.index,
        })
    }
}

impl NodeReader for BTreeMap<NodeId, Hash> {
    type Error = MerkleError;

    fn node(&self, id: NodeId) -> Result<Hash, MerkleError> {
        self.get(&id).copied().ok_or(MerkleError::MissingNode {
            level: id.level,
            index: id.index,
        })
    }
}

impl NodeReader for MemoryTree {
    type Error = MerkleError;

    fn node(&self, id: NodeId) -> Result<Hash, MerkleError> {
        self.get_node(id).ok_or(MerkleError::MissingNode {
            level: id.level,
            index: id.index,
        })
    }
}

/// Computes `MTH(D[start:end])` from stored complete nodes.
///
/// `start` must be a multiple of the largest power of two not above
/// `end - start`, which holds for every subtree RFC 6962 proofs use.
///
/// # Errors
///
/// [`MerkleError::InvalidRange`] for an empty or unaligned range, or the
/// reader's error.
pub fn subtree_root<R: NodeReader + ?Sized>(
    reader: &R,
    start: u64,
    end: u64,
) -> Result<Hash, ProveError<R::Error>> {
    if end <= start {
        return Err(MerkleError::InvalidRange { start, end }.into());
    }
    // Collect the complete nodes left to right: one per binary digit of the
    // range length, largest first. RFC 6962's split at the largest power of
    // two below n yields exactly this decomposition.
    let mut chunks: Vec<Hash> = Vec::with_capacity(64);
    let mut pos = start;
    while pos < end {
        let remaining = end - pos;
        let level = u64::BITS - 1 - remaining.leading_zeros();
        let width = 1u64 << level;
        // `width` is a power of two, so the mask tests alignment.
        if pos & (width - 1) != 0 {
            return Err(MerkleError::InvalidRange { start, end }.into());
        }
        // Below 64, so it always fits; no panic on the way if it did not.
        let node_level =
            u8::try_from(level).map_err(|_| MerkleError::InvalidRange { start, end })?;
        let id = NodeId::new(node_level, pos >> level);
        chunks.push(reader.node(id).map_err(ProveError::Reader)?);
        pos += width;
    }
    // Fold from the right: the smaller trailing subtrees combine first.
    let mut iter = chunks.into_iter().rev();
    let mut acc = match iter.next() {
        Some(last) => last,
        None => return Err(MerkleError::InvalidRange { start, end }.into()),
    };
    for left in iter {
        acc = node_hash(&left, &acc);
    }
    Ok(acc)
}

/// Computes the root of the tree's first `size` leaves; size 0 gives the
/// empty root without any read.
///
/// # Errors
///
/// The reader's error.
pub fn tree_root<R: NodeReader + ?Sized>(
    reader: &R,
    size: u64,
) -> Result<Hash, ProveError<R::Error>> {
    if size == 0 {
        return Ok(empty_root());
    }
    subtree_root(reader, 0, size)
}

/// Generates the RFC 6962 inclusion proof (audit path) of leaf `index` in
/// the tree of the first `size` leaves, ordered from the leaf's sibling up
/// to the root's child.
///
/// # Errors
///
/// [`MerkleError::IndexOutOfRange`] if `index >= size`, or the reader's
/// error.
pub fn inclusion_proof<R: NodeReader + ?Sized>(
    reader: &R,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProveError<R::Error>> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size }.into());
    }
    // Iterative PATH(m, D[start:start+n]) from RFC 6962 section 2.1.1,
    // collected top-down and reversed at the end.
    let mut proof = Vec::new();
    let (mut start, mut n, mut m) = (0u64, size, index);
    while n > 1 {
        let k = largest_power_of_two_below(n);
        if m < k {
            proof.push(subtree_root(reader, start + k, start + n)?);
            n = k;
        } else {
            proof.push(subtree_root(reader, start, start + k)?);
            start += k;
            m -= k;
            n -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Generates the RFC 6962 consistency proof from the tree of the first
/// `old_size` leaves to that of the first `new_size` leaves.
///
/// Equal sizes give an empty proof. Old size 0 with a non-zero new size is
/// rejected (see the crate docs).
///
/// # Errors
///
/// [`MerkleError::SizeOrder`], [`MerkleError::ConsistencyFromEmpty`], or
/// the reader's error.
pub fn consistency_proof<R: NodeReader + ?Sized>(
    reader: &R,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProveError<R::Error>> {
    merkle::check_consistency_sizes(old_size, new_size)?;
    if old_size == new_size {
        return Ok(Vec::new());
    }
    // Iterative SUBPROOF(m, D[start:start+n], b) from RFC 6962 section
    // 2.1.2, collected top-down and reversed at the end.
    let mut proof = Vec::new();
    let (mut start, mut n, mut m, mut whole_old_tree) = (0u64, new_size, old_size, true);
    loop {
        if m == n {
            if !whole_old_tree {
                proof.push(subtree_root(reader, start, start + n)?);
            }
            break;
        }
        let k = largest_power_of_two_below(n);
        if m <= k {
            proof.push(subtree_root(reader, start + k, start + n)?);
            n = k;
        } else {
            proof.push(subtree_root(reader, start, start + k)?);
            start += k;
            m -= k;
            n -= k;
            whole_old_tree = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Computes the nodes created by appending `leaf_hashes` to a tree of
/// `size` leaves: for each leaf, the leaf node itself and every parent it
/// completes. Store all of them in the same transaction as the leaves.
///
/// Reads only the left siblings that already exist (at most one per level
/// per leaf, see [`nodes_for_append`]); siblings created earlier in the same
/// batch are taken from the batch itself.
///
/// # Errors
///
/// [`MerkleError::TreeFull`] if the size would overflow, or the reader's
/// error.
pub fn append_leaves<R: NodeReader + ?Sized>(
    reader: &R,
    size: u64,
    leaf_hashes: &[Hash],
) -> Result<Vec<Node>, ProveError<R::Error>> {
    let mut created: Vec<Node> = Vec::new();
    let mut batch: HashMap<NodeId, Hash> = HashMap::new();
    for (offset, leaf) in leaf_hashes.iter().enumerate() {
        // A leaf at index u64::MAX would make the size u64::MAX + 1.
        let next_index = u64::try_from(offset)
            .ok()
            .and_then(|offset| size.checked_add(offset))
            .filter(|index| *index != u64::MAX)
            .ok_or(MerkleError::TreeFull)?;
        let mut id = NodeId::new(0, next_index);
        let mut hash = *leaf;
        loop {
            created.push(Node { id, hash });
            batch.insert(id, hash);
            // A node at an odd index completes its parent with the left
            // sibling at index - 1.
            if id.index & 1 == 0 {
                break;
            }
            let sibling = NodeId::new(id.level, id.index - 1);
            let left = match batch.get(&sibling) {
                Some(h) => *h,
                None => reader.node(sibling).map_err(ProveError::Reader)?,
            };
            hash = node_hash(&left, &hash);
            id = NodeId::new(id.level + 1, id.index >> 1);
        }
    }
    Ok(created)
}

/// Lists the nodes [`tree_root`] reads for `size`.
pub fn nodes_for_root(size: u64) -> Vec<NodeId> {
    let recorder = Recorder::default();
    // The recorder cannot fail and tree_root has no invalid inputs, so the
    // result carries no information beyond the recorded reads.
    let _ = tree_root(&recorder, size);
    recorder.into_ids()
}

/// Lists the nodes [`inclusion_proof`] reads for `index` and `size`.
///
/// # Errors
///
/// [`MerkleError::IndexOutOfRange`] if `index >= size`.
pub fn nodes_for_inclusion(index: u64, size: u64) -> Result<Vec<NodeId>, MerkleError> {
    let recorder = Recorder::default();
    inclusion_proof(&recorder, index, size).map_err(flatten_infallible)?;
    Ok(recorder.into_ids())
}

/// Lists the nodes [`consistency_proof`] reads for the two sizes.
///
/// # Errors
///
/// [`MerkleError::SizeOrder`] or [`MerkleError::ConsistencyFromEmpty`].
pub fn nodes_for_consistency(old_size: u64, new_size: u64) -> Result<Vec<NodeId>, MerkleError> {
    let recorder = Recorder::default();
    consistency_proof(&recorder, old_size, new_size).map_err(flatten_infallible)?;
    Ok(recorder.into_ids())
}

/// Lists the existing nodes [`append_leaves`] reads when appending `count`
/// leaves to a tree of `size` leaves.
///
/// # Errors
///
/// [`MerkleError::TreeFull`] if the size would overflow.
pub fn nodes_for_append(size: u64, count: u64) -> Result<Vec<NodeId>, MerkleError> {
    if size.checked_add(count).is_none() {
        return Err(MerkleError::TreeFull);
    }
    // Appending leaf n reads the left siblings on the path from n upward
    // while the index is odd; those created within the batch are not reads
    // of existing rows. Every existing node read has its range below `size`.
    let mut ids = Vec::new();
    for n in size..size + count {
        let mut id = NodeId::new(0, n);
        while id.index & 1 == 1 {
            let sibling = NodeId::new(id.level, id.index - 1);
            match sibling.leaf_range() {
                Some((_, end)) if end <= size => ids.push(sibling),
                _ => {}
            }
            id = NodeId::new(id.level + 1, id.index >> 1);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

impl MemoryTree {
    /// Creates an empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a tree by appending every leaf hash in order.
    pub fn from_leaf_hashes<I: IntoIterator<Item = Hash>>(leaf_hashes: I) -> Self {
        let mut tree = Self::new();
        for leaf in leaf_hashes {
            tree.append_leaf_hash(leaf);
        }
        tree
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.size() == 0
    }

    /// Appends a leaf hash and returns the nodes this created: the leaf node
    /// and every parent it completed, bottom up.
    pub fn append_leaf_hash(&mut self, leaf_hash: Hash) -> Vec<Node> {
        let mut created = Vec::new();
        let mut level: usize = 0;
        let mut hash = leaf_hash;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            let Some(nodes) = self.levels.get_mut(level) else {
                break;
            };
            // A tree of u64 leaves has at most 64 levels, so this holds.
            let Ok(node_level) = u8::try_from(level) else {
                break;
            };
            let index = nodes.len() as u64;
            nodes.push(hash);
            created.push(Node {
                id: NodeId::new(node_level, index),
                hash,
            });
            if index & 1 == 0 {
                break;
            }
            // Odd index: the left sibling is the node just before this one.
            let left = match nodes.len().checked_sub(2).and_then(|i| nodes.get(i)) {
                Some(left) => *left,
                None => break,
            };
            hash = node_hash(&left, &hash);
            level += 1;
        }
        created
    }

    /// Hashes `data` as a leaf and appends it; see [`Self::append_leaf_hash`].
    pub fn append_data(&mut self, data: &[u8]) -> Vec<Node> {
        self.append_leaf_hash(merkle::leaf_hash(data))
    }

    /// The hash of leaf `index`, if the tree has it.
    pub fn leaf_hash(&self, index: u64) -> Option<Hash> {
        self.get_node(NodeId::new(0, index))
    }

    /// The stored complete node `id`, if it exists.
    pub fn get_node(&self, id: NodeId) -> Option<Hash> {
        let index = usize::try_from(id.index).ok()?;
        self.levels.get(usize::from(id.level))?.get(index).copied()
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        self.root_at(self.size()).unwrap_or_else(|_| empty_root())
    }

    /// The root of the tree's first `size` leaves.
    ///
    /// # Errors
    ///
    /// [`MerkleError::SizeExceedsTree`] if the tree is smaller than `size`.
    pub fn root_at(&self, size: u64) -> Result<Hash, MerkleError> {
        self.check_size(size)?;
        tree_root(self, size).map_err(flatten_merkle)
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size`
    /// leaves; see [`inclusion_proof`].
    ///
    /// # Errors
    ///
    /// [`MerkleError::SizeExceedsTree`] or [`MerkleError::IndexOutOfRange`].
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, MerkleError> {
        self.check_size(size)?;
        inclusion_proof(self, index, size).map_err(flatten_merkle)
    }

    /// The consistency proof between two sizes; see [`consistency_proof`].
    ///
    /// # Errors
    ///
    /// [`MerkleError::SizeExceedsTree`], [`MerkleError::SizeOrder`] or
    /// [`MerkleError::ConsistencyFromEmpty`].
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, MerkleError> {
        self.check_size(new_size)?;
        consistency_proof(self, old_size, new_size).map_err(flatten_merkle)
    }

    fn check_size(&self, size: u64) -> Result<(), MerkleError> {
        if size > self.size() {
            return Err(MerkleError::SizeExceedsTree {
                requested: size,
                available: self.size(),
            });
        }
        Ok(())
    }
}

/// Largest power of two strictly below `n`; requires `n >= 2`.
fn largest_power_of_two_below(n: u64) -> u64 {
    1u64 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// A reader that answers every read with zeroes and records the position,
/// used to list a generator's reads without running storage.
#[derive(Default)]
struct Recorder {
    ids: RefCell<Vec<NodeId>>,
}

impl Recorder {
    fn into_ids(self) -> Vec<NodeId> {
        self.ids.into_inner()
    }
}

impl NodeReader for Recorder {
    type Error = Infallible;

    fn node(&self, id: NodeId) -> Result<Hash, Infallible> {
        self.ids.borrow_mut().push(id);
        Ok([0u8; 32])
    }
}

fn flatten_infallible(e: ProveError<Infallible>) -> MerkleError {
    match e {
        ProveError::Invalid(e) => e,
        ProveError::Reader(never) => match never {},
    }
}

fn flatten_merkle(e: ProveError<MerkleError>) -> MerkleError {
    match e {
        ProveError::Invalid(e) | ProveError::Reader(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, root_from_leaf_hashes, verify_consistency, verify_inclusion};

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn memory_tree_matches_flat_root() {
        let all = leaves(70);
        let tree = MemoryTree::from_leaf_hashes(all.iter().copied());
        for size in 0..=70u64 {
            let flat = root_from_leaf_hashes(&all[..usize::try_from(size).unwrap()]);
            assert_eq!(tree.root_at(size), Ok(flat), "size {size}");
        }
        assert_eq!(
            tree.root_at(71),
            Err(MerkleError::SizeExceedsTree {
                requested: 71,
                available: 70
            })
        );
    }

    #[test]
    fn proofs_verify_for_all_small_sizes() {
        let all = leaves(40);
        let tree = MemoryTree::from_leaf_hashes(all.iter().copied());
        for size in 1..=40u64 {
            let root = tree.root_at(size).unwrap();
            for index in 0..size {
                let proof = tree.inclusion_proof(index, size).unwrap();
                let leaf = &all[usize::try_from(index).unwrap()];
                verify_inclusion(leaf, index, size, &proof, &root).unwrap();
            }
            for old in 1..=size {
                let old_root = tree.root_at(old).unwrap();
                let proof = tree.consistency_proof(old, size).unwrap();
                verify_consistency(old, size, &old_root, &root, &proof).unwrap();
            }
        }
    }

    #[test]
    fn append_leaves_matches_memory_tree() {
        let all = leaves(50);
        // Append in uneven batches against a map-backed store.
        let mut store: BTreeMap<NodeId, Hash> = BTreeMap::new();
        let mut size = 0u64;
        for batch in all.chunks(7) {
            let wanted = nodes_for_append(size, batch.len() as u64).unwrap();
            for id in &wanted {
                assert!(store.contains_key(id), "planned read {id:?} not stored");
            }
            let created = append_leaves(&store, size, batch).unwrap();
            for node in created {
                assert!(store.insert(node.id, node.hash).is_none());
            }
            size += batch.len() as u64;
        }
        let tree = MemoryTree::from_leaf_hashes(all.iter().copied());
        for (id, hash) in &store {
            assert_eq!(tree.get_node(*id), Some(*hash));
        }
        // Every complete node is present: level l holds size >> l nodes.
        let total: u64 = (0..8).map(|l| size >> l).sum();
        assert_eq!(store.len() as u64, total);
        assert_eq!(tree_root(&store, size).unwrap(), tree.root());
    }

    #[test]
    fn planned_reads_are_exactly_the_reads() {
        let tree = MemoryTree::from_leaf_hashes(leaves(37));
        for size in 1..=37u64 {
            let ids = nodes_for_root(size);
            let map: HashMap<NodeId, Hash> = ids
                .iter()
                .map(|id| (*id, tree.get_node(*id).unwrap()))
                .collect();
            assert_eq!(tree_root(&map, size).unwrap(), tree.root_at(size).unwrap());
            assert!(ids.len() <= 64);
            for index in 0..size {
                let ids = nodes_for_inclusion(index, size).unwrap();
                let map: HashMap<NodeId, Hash> = ids
                    .iter()
                    .map(|id| (*id, tree.get_node(*id).unwrap()))
                    .collect();
                assert_eq!(
                    inclusion_proof(&map, index, size).unwrap(),
                    tree.inclusion_proof(index, size).unwrap()
                );
            }
            for old in 1..=size {
                let ids = nodes_for_consistency(old, size).unwrap();
                let map: HashMap<NodeId, Hash> = ids
                    .iter()
                    .map(|id| (*id, tree.get_node(*id).unwrap()))
                    .collect();
                assert_eq!(
                    consistency_proof(&map, old, size).unwrap(),
                    tree.consistency_proof(old, size).unwrap()
                );
            }
        }
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        // Only planning: no storage holds 2^64 leaves, but the arithmetic
        // must stay in range.
        assert!(nodes_for_inclusion(u64::MAX - 1, u64::MAX).unwrap().len() <= 128);
        assert!(nodes_for_inclusion(0, u64::MAX).unwrap().len() <= 128);
        assert!(nodes_for_consistency(u64::MAX - 1, u64::MAX).is_ok());
        assert!(nodes_for_consistency(3, u64::MAX).is_ok());
        assert_eq!(nodes_for_root(u64::MAX).len(), 64);
        assert_eq!(nodes_for_append(u64::MAX, 1), Err(MerkleError::TreeFull));
        let store: BTreeMap<NodeId, Hash> = BTreeMap::new();
        assert!(matches!(
            append_leaves(&store, u64::MAX, &[[0; 32]]),
            Err(ProveError::Invalid(MerkleError::TreeFull))
        ));
    }

    #[test]
    fn invalid_ranges_are_errors() {
        let tree = MemoryTree::from_leaf_hashes(leaves(8));
        assert!(matches!(
            subtree_root(&tree, 3, 3),
            Err(ProveError::Invalid(MerkleError::InvalidRange { .. }))
        ));
        assert!(matches!(
            subtree_root(&tree, 1, 3),
            Err(ProveError::Invalid(MerkleError::InvalidRange { .. }))
        ));
        assert!(matches!(
            subtree_root(&tree, 8, 9),
            Err(ProveError::Reader(MerkleError::MissingNode { .. }))
        ));
        assert_eq!(
            tree.inclusion_proof(8, 8),
            Err(MerkleError::IndexOutOfRange { index: 8, size: 8 })
        );
        assert_eq!(
            tree.consistency_proof(0, 8),
            Err(MerkleError::ConsistencyFromEmpty)
        );
    }
}
