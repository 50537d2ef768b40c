//! Property tests over random trees: generated proofs verify, and any
//! single-bit flip, truncation or extension of a proof is rejected. Also
//! checks that the parsers never panic on arbitrary input.

use custody_log::note::Note;
use custody_log::tree::{append_leaves, consistency_proof, inclusion_proof, tree_root};
use custody_log::{
    leaf_hash, verify_checkpoint, verify_consistency, verify_inclusion, Checkpoint, Hash,
    MemoryTree, NodeId, SignerKey, TlogProof, VerifierKey,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// A random tree of 1..=300 distinct random leaves.
fn tree() -> impl Strategy<Value = (MemoryTree, Vec<Hash>)> {
    prop::collection::vec(any::<[u8; 8]>(), 1..=300).prop_map(|leaves| {
        let hashes: Vec<Hash> = leaves
            .iter()
            .enumerate()
            // Prefix the index so leaves are distinct even if the bytes repeat.
            .map(|(i, l)| leaf_hash(&[&(i as u64).to_be_bytes()[..], l].concat()))
            .collect();
        (MemoryTree::from_leaf_hashes(hashes.iter().copied()), hashes)
    })
}

/// Every way of breaking a proof we check: each single-bit flip, dropping
/// each element, and inserting an extra hash at each position.
fn mutations(proof: &[Hash], extra: Hash) -> Vec<(String, Vec<Hash>)> {
    let mut out = Vec::new();
    for i in 0..proof.len() {
        for bit in [0usize, 7, 100, 255] {
            let mut p = proof.to_vec();
            p[i][bit / 8] ^= 1 << (bit % 8);
            out.push((format!("flip element {i} bit {bit}"), p));
        }
        let mut p = proof.to_vec();
        p.remove(i);
        out.push((format!("drop element {i}"), p));
    }
    if !proof.is_empty() {
        out.push(("truncate to empty".into(), Vec::new()));
    }
    for i in 0..=proof.len() {
        let mut p = proof.to_vec();
        p.insert(i, extra);
        out.push((format!("insert at {i}"), p));
        if let Some(dup) = proof.get(i) {
            let mut p = proof.to_vec();
            p.insert(i, *dup);
            out.push((format!("duplicate {i}"), p));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn inclusion_proofs_verify_and_mutations_fail(
        (tree, leaves) in tree(),
        size_pick in any::<prop::sample::Index>(),
        index_pick in any::<prop::sample::Index>(),
        extra in any::<[u8; 32]>(),
    ) {
        let size = size_pick.index(usize::try_from(tree.size()).unwrap()) as u64 + 1;
        let index = index_pick.index(usize::try_from(size).unwrap()) as u64;
        let root = tree.root_at(size).unwrap();
        let leaf = leaves[usize::try_from(index).unwrap()];
        let proof = tree.inclusion_proof(index, size).unwrap();
        prop_assert_eq!(verify_inclusion(&leaf, index, size, &proof, &root), Ok(()));

        for (what, bad) in mutations(&proof, extra) {
            prop_assert!(
                verify_inclusion(&leaf, index, size, &bad, &root).is_err(),
                "accepted proof after {}", what
            );
        }
        // The wrong leaf or root, or an index past the size, must fail too.
        let mut bad_leaf = leaf;
        bad_leaf[0] ^= 1;
        prop_assert!(verify_inclusion(&bad_leaf, index, size, &proof, &root).is_err());
        let mut bad_root = root;
        bad_root[31] ^= 0x80;
        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &bad_root).is_err());
        prop_assert!(verify_inclusion(&leaf, size, size, &proof, &root).is_err());
    }

    #[test]
    fn consistency_proofs_verify_and_mutations_fail(
        (tree, _leaves) in tree(),
        new_pick in any::<prop::sample::Index>(),
        old_pick in any::<prop::sample::Index>(),
        extra in any::<[u8; 32]>(),
    ) {
        let new_size = new_pick.index(usize::try_from(tree.size()).unwrap()) as u64 + 1;
        let old_size = old_pick.index(usize::try_from(new_size).unwrap()) as u64 + 1;
        let old_root = tree.root_at(old_size).unwrap();
        let new_root = tree.root_at(new_size).unwrap();
        let proof = tree.consistency_proof(old_size, new_size).unwrap();
        prop_assert_eq!(
            verify_consistency(old_size, new_size, &old_root, &new_root, &proof),
            Ok(())
        );
        for (what, bad) in mutations(&proof, extra) {
            prop_assert!(
                verify_consistency(old_size, new_size, &old_root, &new_root, &bad).is_err(),
                "accepted proof after {}", what
            );
        }
        // Swapped roots and size 0 are rejected.
        if old_root != new_root {
            prop_assert!(verify_consistency(old_size, new_size, &new_root, &old_root, &proof).is_err());
        }
        prop_assert!(verify_consistency(0, new_size, &old_root, &new_root, &proof).is_err());
        prop_assert!(verify_consistency(0, new_size, &old_root, &new_root, &[]).is_err());
    }

    #[test]
    fn storage_backed_generation_matches_memory_tree(
        (tree, leaves) in tree(),
        batch in 1usize..20,
        pick in any::<prop::sample::Index>(),
    ) {
        // A store fed only through append_leaves, in batches.
        let mut store: BTreeMap<NodeId, Hash> = BTreeMap::new();
        let mut size = 0u64;
        for chunk in leaves.chunks(batch) {
            for node in append_leaves(&store, size, chunk).unwrap() {
                prop_assert!(store.insert(node.id, node.hash).is_none());
            }
            size += chunk.len() as u64;
        }
        let n = tree.size();
        prop_assert_eq!(tree_root(&store, n).unwrap(), tree.root());
        let index = pick.index(usize::try_from(n).unwrap()) as u64;
        prop_assert_eq!(
            inclusion_proof(&store, index, n).unwrap(),
            tree.inclusion_proof(index, n).unwrap()
        );
        prop_assert_eq!(
            consistency_proof(&store, index + 1, n).unwrap(),
            tree.consistency_proof(index + 1, n).unwrap()
        );
    }

    #[test]
    fn tlog_proof_single_byte_mutations_never_verify(
        (tree, leaves) in tree(),
        pick in any::<prop::sample::Index>(),
        pos_pick in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let origin = "custody.example/log";
        let key = SignerKey::from_seed(origin, &[42; 32]).unwrap();
        let index = pick.index(usize::try_from(tree.size()).unwrap()) as u64;
        let signed = Checkpoint::new(origin, tree.size(), tree.root())
            .unwrap()
            .sign(&[&key])
            .unwrap();
        let proof = TlogProof::new(index, tree.inclusion_proof(index, tree.size()).unwrap(), &signed)
            .unwrap();
        let text = proof.to_text();
        let trusted = [key.verifier_key()];
        let leaf = leaves[usize::try_from(index).unwrap()];
        prop_assert!(TlogProof::parse(text.as_bytes()).unwrap().verify_leaf_hash(&leaf, &trusted).is_ok());

        let mut bytes = text.into_bytes();
        let pos = pos_pick.index(bytes.len());
        prop_assume!(bytes[pos] != byte);
        bytes[pos] = byte;
        let accepted = TlogProof::parse(&bytes)
            .map(|p| p.verify_leaf_hash(&leaf, &trusted).is_ok())
            .unwrap_or(false);
        prop_assert!(!accepted, "mutation at {} accepted", pos);
    }

    #[test]
    fn parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Note::parse(&bytes);
        let _ = TlogProof::parse(&bytes);
        let _ = verify_checkpoint(&bytes, &[]);
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = Checkpoint::parse(s);
            let _ = VerifierKey::parse(s);
            let _ = SignerKey::parse(s);
        }
    }

    #[test]
    fn structured_garbage_never_panics(
        lines in prop::collection::vec(
            prop_oneof![
                Just("c2sp.org/tlog-proof@v1".to_string()),
                Just(String::new()),
                Just("index 0".to_string()),
                Just("extra AA==".to_string()),
                Just("\u{2014} k AAAAAAAAAAAAAAAA".to_string()),
                "[A-Za-z0-9+/=]{0,48}",
                "[0-9]{1,22}",
                ".{0,20}",
            ],
            0..12,
        ),
    ) {
        let text = lines.join("\n") + "\n";
        let _ = TlogProof::parse(text.as_bytes());
        let _ = Note::parse(text.as_bytes());
        let _ = Checkpoint::parse(&text);
    }

    #[test]
    fn verifying_arbitrary_sizes_never_panics(
        index in any::<u64>(),
        size in any::<u64>(),
        old in any::<u64>(),
        proof in prop::collection::vec(any::<[u8; 32]>(), 0..70),
    ) {
        let h = [0u8; 32];
        let _ = verify_inclusion(&h, index, size, &proof, &h);
        let _ = verify_consistency(old, size, &h, &h, &proof);
    }
}
