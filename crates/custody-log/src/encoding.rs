//! Small strict codecs shared by the text formats.
//!
//! All C2SP formats use standard base64 (RFC 4648 section 4) and canonical
//! ASCII decimals. Decoding here is deliberately strict (canonical padding,
//! no trailing bits, no leading zeroes, no signs) so that every accepted text
//! has exactly one encoding and re-formatting reproduces it byte for byte.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::merkle::{Hash, HASH_SIZE};

/// Encodes bytes as standard, padded base64.
pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard, padded, canonical base64.
pub(crate) fn b64_decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// Decodes a base64 SHA-256 hash; anything but exactly 32 bytes is rejected.
pub(crate) fn b64_decode_hash(text: &str) -> Option<Hash> {
    // 32 bytes always encode to 44 characters; checking first bounds the work
    // done on hostile input.
    if text.len() != 44 {
        return None;
    }
    let bytes = b64_decode(text)?;
    let hash: [u8; HASH_SIZE] = bytes.try_into().ok()?;
    Some(hash)
}

/// Parses an ASCII decimal `u64` with no sign and no leading zeroes (except
/// `0` itself), as tlog-checkpoint and tlog-proof require.
pub(crate) fn parse_canonical_u64(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if text.len() > 1 && text.starts_with('0') {
        return None;
    }
    // Only digits remain, so the sole possible failure is overflow.
    text.parse::<u64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_u64() {
        assert_eq!(parse_canonical_u64("0"), Some(0));
        assert_eq!(parse_canonical_u64("10"), Some(10));
        assert_eq!(parse_canonical_u64("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "00",
            "01",
            "+1",
            "-1",
            " 1",
            "1 ",
            "18446744073709551616",
            "1_0",
        ] {
            assert_eq!(parse_canonical_u64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn strict_base64() {
        assert_eq!(b64_decode("AA=="), Some(vec![0]));
        // Non-zero trailing bits and missing padding are not canonical.
        assert_eq!(b64_decode("AB=="), None);
        assert_eq!(b64_decode("AA"), None);
        assert_eq!(b64_decode_hash(&b64_encode(&[7u8; 32])), Some([7u8; 32]));
        assert_eq!(b64_decode_hash(&b64_encode(&[7u8; 31])), None);
        assert_eq!(b64_decode_hash(&b64_encode(&[7u8; 33])), None);
    }
}
