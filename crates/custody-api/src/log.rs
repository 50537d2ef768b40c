//! The log: entries and proofs. Shapes are fixed: monitors and scripts
//! depend on them. Checkpoints are served as their note text, and a case's
//! proof is [`custody_core::proof::CaseProofBundle`].

use serde::{Deserialize, Serialize};

/// Most entries one `GET /v1/log/entries` returns.
pub const MAX_ENTRIES_PER_PAGE: u64 = 1000;

/// Query of `GET /v1/log/entries`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct EntriesQuery {
    /// First index (inclusive).
    pub start: u64,
    /// Last index (exclusive); at most 1000 entries are returned.
    pub end: u64,
}

/// One log entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntryDocument {
    /// Its index.
    pub index: u64,
    /// Standard base64 of the exact leaf bytes (the event's canonical bytes).
    pub leaf: String,
    /// The case it belongs to.
    pub case_id: String,
}

/// The answer of `GET /v1/log/entries`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntriesDocument {
    /// The entries, in index order.
    pub entries: Vec<EntryDocument>,
}

/// Query of `GET /v1/log/proof/inclusion`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct InclusionQuery {
    /// The leaf index.
    pub index: u64,
    /// The tree size.
    pub size: u64,
}

/// An inclusion proof.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionDocument {
    /// The leaf index.
    pub index: u64,
    /// The tree size.
    pub size: u64,
    /// Standard base64 hashes, leaf to root.
    pub proof: Vec<String>,
}

/// Query of `GET /v1/log/proof/consistency`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct ConsistencyQuery {
    /// The old tree size.
    pub from: u64,
    /// The new tree size.
    pub to: u64,
}

/// A consistency proof.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyDocument {
    /// The old tree size.
    pub from: u64,
    /// The new tree size.
    pub to: u64,
    /// Standard base64 hashes.
    pub proof: Vec<String>,
}

/// The log's verifier keys.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeysDocument {
    /// The origin line of the log's checkpoints.
    pub origin: String,
    /// Verifier keys of the current signers.
    pub verifier_keys: Vec<String>,
}
