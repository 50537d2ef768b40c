//! Cross-checks our Merkle trees and proofs against the independent
//! `ct-merkle` crate on random trees.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use custody_log::{leaf_hash, Hash, MemoryTree};
use proptest::prelude::*;
use sha2::Sha256;

fn concat(proof: &[Hash]) -> Vec<u8> {
    proof.iter().flatten().copied().collect()
}

fn ct_root(root: &Hash, size: u64) -> RootHash<Sha256> {
    RootHash::new((*root).into(), size)
}

/// Random trees: 1..=150 leaves of 0..=24 random bytes each.
fn leaves() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..=24), 1..=150)
}

fn build(leaves: &[Vec<u8>]) -> (MemoryTree, MemoryBackedTree<Sha256, Vec<u8>>) {
    let mut ours = MemoryTree::new();
    let mut theirs = MemoryBackedTree::<Sha256, Vec<u8>>::new();
    for leaf in leaves {
        ours.append_data(leaf);
        // ct-merkle hashes 0x00 || value itself, so it gets the raw bytes.
        theirs.push(leaf.clone());
    }
    (ours, theirs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn roots_match(leaves in leaves()) {
        let (ours, theirs) = build(&leaves);
        let their_root = theirs.root();
        prop_assert_eq!(their_root.num_leaves(), ours.size());
        prop_assert_eq!(their_root.as_bytes().to_vec(), ours.root().to_vec());
    }

    #[test]
    fn ct_merkle_accepts_our_inclusion_proofs(
        leaves in leaves(),
        picks in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..8),
    ) {
        let (ours, theirs) = build(&leaves);
        let n = usize::try_from(ours.size()).unwrap();
        for (size_pick, index_pick) in picks {
            // Any size up to the whole tree, any index below it.
            let size = size_pick.index(n) + 1;
            let index = index_pick.index(size);
            let proof = ours.inclusion_proof(index as u64, size as u64).unwrap();
            let root = ct_root(&ours.root_at(size as u64).unwrap(), size as u64);
            let ct_proof = InclusionProof::<Sha256>::try_from_bytes(concat(&proof)).unwrap();
            prop_assert!(root.verify_inclusion(&leaves[index], index as u64, &ct_proof).is_ok());
            if size == n {
                // For the whole tree ct-merkle generates proofs too; they
                // must be identical to ours.
                prop_assert_eq!(theirs.prove_inclusion(index).as_bytes().to_vec(), concat(&proof));
            }
            // And the leaf hash ct-merkle implies is ours.
            prop_assert_eq!(ours.leaf_hash(index as u64), Some(leaf_hash(&leaves[index])));
        }
    }

    #[test]
    fn ct_merkle_accepts_our_consistency_proofs(
        leaves in leaves(),
        picks in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..8),
    ) {
        let (ours, theirs) = build(&leaves);
        let n = usize::try_from(ours.size()).unwrap();
        for (new_pick, old_pick) in picks {
            let new_size = new_pick.index(n) + 1;
            // Old size 1..=new_size: size 0 is rejected by both.
            let old_size = old_pick.index(new_size) + 1;
            let proof = ours.consistency_proof(old_size as u64, new_size as u64).unwrap();
            let old_root = ct_root(&ours.root_at(old_size as u64).unwrap(), old_size as u64);
            let new_root = ct_root(&ours.root_at(new_size as u64).unwrap(), new_size as u64);
            let ct_proof = ConsistencyProof::<Sha256>::try_from_bytes(concat(&proof)).unwrap();
            prop_assert!(new_root.verify_consistency(&old_root, &ct_proof).is_ok());
            if new_size == n {
                let theirs_proof = theirs.prove_consistency(n - old_size);
                prop_assert_eq!(theirs_proof.as_bytes().to_vec(), concat(&proof));
            }
        }
    }

    #[test]
    fn we_accept_ct_merkle_proofs(leaves in leaves(), pick in any::<prop::sample::Index>()) {
        let (ours, theirs) = build(&leaves);
        let n = usize::try_from(ours.size()).unwrap();
        let index = pick.index(n);
        let root = ours.root();
        let proof: Vec<Hash> = theirs
            .prove_inclusion(index)
            .as_bytes()
            .chunks(32)
            .map(|c| c.try_into().unwrap())
            .collect();
        prop_assert!(custody_log::verify_inclusion(
            &leaf_hash(&leaves[index]), index as u64, n as u64, &proof, &root
        ).is_ok());
        let old_size = pick.index(n) + 1;
        let proof: Vec<Hash> = theirs
            .prove_consistency(n - old_size)
            .as_bytes()
            .chunks(32)
            .map(|c| c.try_into().unwrap())
            .collect();
        prop_assert!(custody_log::verify_consistency(
            old_size as u64, n as u64, &ours.root_at(old_size as u64).unwrap(), &root, &proof
        ).is_ok());
    }
}
