//! The right edge of a growing tree: enough to compute the root of every
//! prefix while streaming leaves, in `O(log n)` memory.
//!
//! An auditor that re-hashes a whole log cannot afford to keep every node of
//! a ten-million-leaf tree; it only needs the maximal complete subtrees of the
//! prefix read so far (at most one per level), which is what a [`Frontier`]
//! holds.

use crate::merkle::{empty_root, node_hash, Hash};

/// The maximal complete subtrees of a tree prefix, largest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    /// `(level, hash)`, levels strictly decreasing from left to right.
    subtrees: Vec<(u8, Hash)>,
    size: u64,
}

impl Frontier {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves appended.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf_hash: Hash) {
        let mut level = 0u8;
        let mut hash = leaf_hash;
        // Merge with the previous subtree while it has the same height: the
        // same carry as incrementing a binary counter.
        while let Some(&(last_level, last_hash)) = self.subtrees.last() {
            if last_level != level {
                break;
            }
            self.subtrees.pop();
            hash = node_hash(&last_hash, &hash);
            level = level.saturating_add(1);
        }
        self.subtrees.push((level, hash));
        self.size = self.size.saturating_add(1);
    }

    /// The RFC 6962 root of the leaves appended so far.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.subtrees.iter().rev();
        let Some(&(_, mut hash)) = subtrees.next() else {
            return empty_root();
        };
        for (_, left) in subtrees {
            hash = node_hash(left, &hash);
        }
        hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, root_from_leaf_hashes};

    #[test]
    fn roots_match_the_reference_for_every_prefix() {
        let leaves: Vec<Hash> = (0u32..300).map(|n| leaf_hash(&n.to_be_bytes())).collect();
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), empty_root());
        for (count, leaf) in leaves.iter().enumerate() {
            frontier.push(*leaf);
            assert_eq!(frontier.size(), count as u64 + 1);
            assert_eq!(frontier.root(), root_from_leaf_hashes(&leaves[..=count]));
        }
    }
}
