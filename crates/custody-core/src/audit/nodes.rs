//! The stored Merkle nodes above the leaves.
//!
//! The store keeps the hash of every complete subtree (`log_nodes`), and it
//! serves roots, inclusion proofs and consistency proofs from them. The
//! audit rebuilds the tree from the events' bytes and never trusts a stored
//! node for its own verdict, but a node that is wrong makes every proof
//! served from it wrong, and a node that is missing makes proofs fail: so
//! each stored node is checked too. A node is right when it hashes its two
//! children (RFC 6962 interior hashing); the leaves (level 0) are checked
//! against the events one by one ([`Code::LogLeafMismatch`]), so by
//! induction every checked node is the hash of the events under it. And the
//! nodes stored must be exactly the complete subtrees of the log: at level
//! `l`, indexes `0 .. size >> l`.
//!
//! The check is fed one level at a time, in ranges of parent indexes, so
//! that a store reads the nodes in bounded pages.

use custody_log::{node_hash, Hash};

use crate::code::Code;

use super::Finding;

/// A stored node: its index in its level, and its hash as stored.
pub type StoredNode = (u64, Vec<u8>);

/// Checks the stored nodes of `level` (≥ 1) whose indexes are in
/// `first .. end` (`parents`, sorted by index) against their children at
/// `level - 1` (`children`, sorted, the indexes `2 * first .. 2 * end`),
/// for a log of `size` leaves. A child already known to be wrong
/// (`bad_children`: leaves that do not hash their events, nodes reported at
/// the level below) makes its parent uncheckable rather than wrong: only
/// the lowest altered node is named. Returns the findings, and adds the
/// indexes of the nodes found wrong to `bad`.
pub fn check_node_range(
    size: u64,
    level: u32,
    (first, end): (u64, u64),
    parents: &[StoredNode],
    children: &[StoredNode],
    bad_children: &std::collections::BTreeSet<u64>,
    bad: &mut std::collections::BTreeSet<u64>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let complete = if level >= 64 { 0 } else { size >> level };
    let child = |index: u64| -> Option<Hash> {
        children
            .binary_search_by_key(&index, |(stored, _)| *stored)
            .ok()
            .and_then(|position| <Hash>::try_from(children[position].1.as_slice()).ok())
    };
    let mut parents = parents.iter().peekable();
    for index in first..end.min(complete.max(first)) {
        // Stored rows below the expected index were reported as extra
        // already; skip to this one.
        let stored = match parents.peek() {
            Some((stored, _)) if *stored == index => parents.next().map(|(_, hash)| hash),
            _ => None,
        };
        let Some(stored) = stored else {
            bad.insert(index);
            findings.push(node_finding(
                level,
                index,
                format!(
                    "the log's Merkle node at level {level}, index {index} is missing: the store cannot serve proofs through it"
                ),
            ));
            continue;
        };
        if bad_children.contains(&(2 * index)) || bad_children.contains(&(2 * index + 1)) {
            bad.insert(index);
            continue;
        }
        let expected = match (child(2 * index), child(2 * index + 1)) {
            (Some(left), Some(right)) => node_hash(&left, &right),
            // A missing or malformed child is reported at its own level;
            // this node cannot be checked against it.
            _ => continue,
        };
        if stored.as_slice() != expected.as_slice() {
            bad.insert(index);
            findings.push(node_finding(
                level,
                index,
                format!(
                    "the log's Merkle node at level {level}, index {index} does not hash its two children: it was altered, and every proof served through it is wrong"
                ),
            ));
        }
    }
    for (index, _) in parents {
        if *index >= complete {
            findings.push(node_finding(
                level,
                *index,
                format!(
                    "the log stores a Merkle node at level {level}, index {index}, which no complete subtree of its {size} leaves has: it was added or moved behind the store's back"
                ),
            ));
        }
    }
    findings
}

fn node_finding(level: u32, index: u64, message: String) -> Finding {
    // The node's first leaf: where in the log the damage starts.
    let first_leaf = if level >= 64 {
        u64::MAX
    } else {
        index << level
    };
    Finding::new(Code::LogNodeMismatch, message).log_index(first_leaf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_log::leaf_hash;

    fn tree(size: u64) -> Vec<Vec<StoredNode>> {
        let mut levels: Vec<Vec<StoredNode>> = vec![(0..size)
            .map(|index| (index, leaf_hash(&index.to_be_bytes()).to_vec()))
            .collect()];
        while levels.last().map_or(0, Vec::len) > 1 {
            let below = levels.last().cloned().unwrap_or_default();
            levels.push(
                below
                    .chunks_exact(2)
                    .enumerate()
                    .map(|(index, pair)| {
                        let left = <Hash>::try_from(pair[0].1.as_slice()).unwrap_or_default();
                        let right = <Hash>::try_from(pair[1].1.as_slice()).unwrap_or_default();
                        (
                            u64::try_from(index).unwrap_or(u64::MAX),
                            node_hash(&left, &right).to_vec(),
                        )
                    })
                    .collect(),
            );
        }
        levels
    }

    fn check_all(size: u64, levels: &[Vec<StoredNode>]) -> Vec<Finding> {
        let mut bad_children = std::collections::BTreeSet::new();
        let mut findings = Vec::new();
        for level in 1..levels.len() {
            let mut bad = std::collections::BTreeSet::new();
            findings.extend(check_node_range(
                size,
                u32::try_from(level).unwrap_or(u32::MAX),
                (0, u64::MAX >> 1),
                &levels[level],
                &levels[level - 1],
                &bad_children,
                &mut bad,
            ));
            bad_children = bad;
        }
        findings
    }

    #[test]
    fn an_honest_tree_has_no_finding() {
        for size in [1, 2, 3, 7, 8, 13] {
            assert!(check_all(size, &tree(size)).is_empty(), "size {size}");
        }
    }

    #[test]
    fn an_altered_missing_or_extra_node_is_named() {
        let mut levels = tree(13);
        levels[2][1].1[0] ^= 1;
        let findings = check_all(13, &levels);
        // The altered node only: its parent hashes the altered bytes, but
        // is itself right.
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].code, Code::LogNodeMismatch);
        assert_eq!(findings[0].log_index, Some(4));

        // A leaf known to be wrong (log.leaf-mismatch) does not make its
        // parent wrong.
        let mut levels = tree(13);
        levels[0][5].1[0] ^= 1;
        let mut bad = std::collections::BTreeSet::new();
        let findings = check_node_range(
            13,
            1,
            (0, 1 << 20),
            &levels[1],
            &levels[0],
            &[5].into_iter().collect(),
            &mut bad,
        );
        assert!(findings.is_empty(), "{findings:?}");
        assert!(bad.contains(&2));

        let mut levels = tree(13);
        levels[1].remove(3);
        let findings = check_all(13, &levels);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.contains("index 3 is missing"));

        let mut levels = tree(13);
        levels[2].push((3, vec![0; 32]));
        let findings = check_all(13, &levels);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.contains("no complete subtree"));
    }
}
