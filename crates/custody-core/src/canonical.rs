//! The canonical encoding of hashed content: RFC 8785 (JSON Canonicalization Scheme).
//!
//! Every hashed value is serialised with `serde_json_canonicalizer`, which
//! sorts object keys by UTF-16 code units and writes numbers and strings in
//! the one form RFC 8785 allows. Hashed content never holds floats: numbers
//! are integers below 2^53, timestamps are fixed-width strings, and change
//! sets with floats are refused at the edge (see [`crate::model::reject_floats`]).

use serde::Serialize;

/// The RFC 8785 bytes of `value`.
///
/// Serialising the crate's own types cannot fail: they hold only strings,
/// integers, booleans, arrays and maps with string keys.
pub fn to_canonical_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    // Safe to expect: every hashed type is built from strings, integers and
    // string-keyed maps, which serde_json always serialises.
    serde_json_canonicalizer::to_vec(value).expect("hashed types always serialise to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_and_strips_whitespace() {
        let value = serde_json::json!({"b": 1, "a": [true, null, "x"], "é": "\u{2028}"});
        assert_eq!(
            String::from_utf8(to_canonical_bytes(&value)).unwrap(),
            "{\"a\":[true,null,\"x\"],\"b\":1,\"é\":\"\u{2028}\"}"
        );
    }
}
