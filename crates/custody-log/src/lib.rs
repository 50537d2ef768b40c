//! Custody's transparency-log primitives, free of any IO.
//!
//! This crate holds the cryptographic core of the Custody ledger. It never
//! touches a database, a file, a socket or an async runtime: a storage layer
//! feeds it hashes and stores what it returns, and a server formats what it
//! produces.
//!
//! | module | what it implements |
//! |---|---|
//! | [`merkle`] | RFC 6962 / RFC 9162 hashing, roots, inclusion and consistency proof verification |
//! | [`tree`] | proof generation over stored complete-subtree nodes ([`NodeReader`]), the append rule, and [`MemoryTree`] |
//! | [`note`] | C2SP signed notes with Ed25519 keys (<https://c2sp.org/signed-note>) |
//! | [`checkpoint`] | C2SP checkpoints (<https://c2sp.org/tlog-checkpoint>) and [`VerifiedCheckpoint`] |
//! | [`tlog_proof`] | C2SP offline proofs (<https://c2sp.org/tlog-proof>) |
//! | [`cosignature`] | C2SP witness cosignatures, `cosignature/v1` (<https://c2sp.org/tlog-cosignature>) |
//! | [`witness`] | the C2SP witness protocol's bodies and the witness's decision (<https://c2sp.org/tlog-witness>) |
//!
//! # Storage model
//!
//! A tree is stored as its *complete* subtree nodes: the node at level `L`
//! and index `i` ([`NodeId`]) is the Merkle Tree Hash of leaves
//! `[i * 2^L, (i + 1) * 2^L)`, level 0 being the leaf hashes. Such a node
//! never changes once its last leaf is appended, so a log only ever inserts
//! rows. [`tree::append_leaves`] returns exactly the nodes an append creates,
//! and every root or proof for any tree size needs `O(log n)` of them.
//! Because the reads a proof needs depend only on sizes and indices, the
//! `nodes_for_*` functions list them up front so an async storage layer can
//! fetch them in one query and hand the result (a `HashMap<NodeId, Hash>`
//! implements [`NodeReader`]) to the synchronous generator.
//!
//! # Consistency from size 0
//!
//! A consistency proof from tree size 0 to a non-zero size is **rejected**,
//! both when generating and when verifying ([`MerkleError::ConsistencyFromEmpty`]).
//! This is the rule of the RFC 6962 test vectors this crate is checked
//! against. (C2SP tlog-witness instead accepts old size 0 with an empty
//! proof; a caller that wants that behaviour must special-case a missing or
//! empty previous checkpoint itself, since nothing is proven by such a
//! "proof".) Consistency between two equal sizes, including `0 -> 0`, needs
//! an empty proof and equal roots.
//!
//! # Failure model
//!
//! Every function that takes outside input returns an error instead of
//! panicking; arithmetic on sizes and indices is checked.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod checkpoint;
pub mod cosignature;
pub mod frontier;
pub mod merkle;
pub mod note;
pub mod tlog_proof;
pub mod tree;
pub mod witness;

mod encoding;

pub use checkpoint::{verify_checkpoint, Checkpoint, CheckpointError, VerifiedCheckpoint};
pub use cosignature::{Cosignature, CosignatureError, CosignatureVerifier, CosignerKey};
pub use frontier::Frontier;
pub use merkle::{
    empty_root, leaf_hash, node_hash, root_from_inclusion_proof, root_from_leaf_hashes,
    verify_consistency, verify_inclusion, Hash, MerkleError, HASH_SIZE,
};
pub use note::{
    open_note, sign_note, Note, NoteError, NoteSignature, SignerKey, VerifiedNote, VerifierKey,
};
pub use tlog_proof::{TlogProof, TlogProofError};
pub use tree::{MemoryTree, Node, NodeId, NodeReader, ProveError};
