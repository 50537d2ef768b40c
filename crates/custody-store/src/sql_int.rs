//! The ledger's unsigned integers (log indexes, sequence numbers, sizes,
//! counts) as the signed 64-bit columns both backends store them in.
//!
//! The two functions are exact inverses: they reinterpret the bits, so a
//! value read back is written back unchanged. Every value the writer makes
//! counts rows and is far below 2^63, where both are the identity. A
//! database edited by hand may hold a negative index; it reads as a value
//! near 2^64, which matches no real index or size, so `verify` reports the
//! row where it stands instead of stopping (and nothing panics on it).

/// `value` as the `BIGINT` that stores it.
pub(crate) fn to_sql(value: u64) -> i64 {
    value.cast_signed()
}

/// A `BIGINT` column holding a count or an index, read back.
pub(crate) fn from_sql(value: i64) -> u64 {
    value.cast_unsigned()
}
