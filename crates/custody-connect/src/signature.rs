//! HMAC-SHA256 signatures as the sources compute them, compared in
//! constant time, and the timestamp window.
//!
//! Every scheme here is HMAC-SHA256 over bytes the source chooses:
//! Jira's `X-Hub-Signature: sha256=<hex>` over the body, Slack's
//! `X-Slack-Signature: v0=<hex>` over `v0:<timestamp>:<body>`, Teams'
//! `Authorization: HMAC <base64>` over the body with the base64-decoded
//! secret. The comparison is `hmac`'s `verify_slice`, which is constant
//! time in the tag; a signature that does not decode to 32 bytes is refused
//! before any comparison.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::Refusal;

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    mac(key, parts).finalize().into_bytes().into()
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts a key of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// The proof that a request's MAC was compared in constant time: only
/// [`verify`] makes one, and a connector's [`crate::Signed`] must hold one,
/// so no connector can accept a request it compared any other way.
///
/// ```compile_fail
/// let forged = custody_connect::signature::Verified(());
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct Verified(());

/// Whether `tag` is the HMAC-SHA256 of `parts` under `key`, compared in
/// constant time. An empty key is refused: it would accept a MAC anyone
/// can compute.
pub fn verify(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> Result<Verified, Refusal> {
    if key.is_empty() {
        return Err(Refusal::Unauthenticated(
            "the connector's secret is empty; configure the secret the source signs with".into(),
        ));
    }
    if tag.len() != 32 {
        return Err(Refusal::Unauthenticated(
            "the signature is not an HMAC-SHA256 (32 bytes)".into(),
        ));
    }
    mac(key, parts)
        .verify_slice(tag)
        .map(|()| Verified(()))
        .map_err(|_| {
            Refusal::Unauthenticated(
                "the signature does not match the body under the connector's secret".into(),
            )
        })
}

/// Decodes 64 hexadecimal digits (either case) into a tag.
pub fn decode_hex_tag(text: &str, header: &str) -> Result<Vec<u8>, Refusal> {
    let text = text.trim();
    if text.len() != 64 {
        return Err(Refusal::Unauthenticated(format!(
            "the {header} signature is not 64 hexadecimal digits"
        )));
    }
    custody_core::hex::decode(&text.to_ascii_lowercase()).ok_or_else(|| {
        Refusal::Unauthenticated(format!("the {header} signature is not hexadecimal"))
    })
}

/// Decodes a standard base64 tag.
pub fn decode_base64_tag(text: &str, header: &str) -> Result<Vec<u8>, Refusal> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| Refusal::Unauthenticated(format!("the {header} signature is not base64")))
}

/// Refuses a `signed_at` further than `window_seconds` from `now_unix`
/// (either side: a clock ahead is as suspect as one behind).
pub fn check_window(signed_at: u64, now_unix: u64, window_seconds: u64) -> Result<(), Refusal> {
    let skew_seconds = signed_at.abs_diff(now_unix);
    if skew_seconds > window_seconds {
        return Err(Refusal::Stale {
            signed_at,
            skew_seconds,
            window_seconds,
        });
    }
    Ok(())
}

/// Parses a decimal Unix-seconds timestamp header.
pub fn parse_unix_seconds(text: &str, header: &str) -> Result<u64, Refusal> {
    let text = text.trim();
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(Refusal::Unauthenticated(format!(
            "the {header} header is not a decimal number of Unix seconds"
        )));
    }
    text.parse()
        .map_err(|_| Refusal::Unauthenticated(format!("the {header} header is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let tag = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            custody_core::hex::encode(&tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        verify(b"Jefe", &[b"what do ya want for nothing?"], &tag).unwrap();
        let mut wrong = tag;
        wrong[31] ^= 1;
        assert!(verify(b"Jefe", &[b"what do ya want for nothing?"], &wrong).is_err());
        assert!(verify(b"", &[b"x"], &hmac_sha256(b"", &[b"x"])).is_err());
        assert!(verify(b"Jefe", &[b"x"], &tag[..31]).is_err());
    }

    #[test]
    fn the_window_is_both_sides() {
        check_window(1000, 1300, 300).unwrap();
        check_window(1300, 1000, 300).unwrap();
        assert_eq!(
            check_window(1000, 1301, 300),
            Err(Refusal::Stale {
                signed_at: 1000,
                skew_seconds: 301,
                window_seconds: 300
            })
        );
        assert!(check_window(1302, 1001, 300).is_err());
    }

    #[test]
    fn timestamps_and_tags_parse_strictly() {
        assert_eq!(
            parse_unix_seconds(" 1700000000 ", "t").unwrap(),
            1_700_000_000
        );
        for bad in ["", "-1", "1e9", "0x10", "99999999999999999999"] {
            assert!(parse_unix_seconds(bad, "t").is_err(), "{bad}");
        }
        assert!(decode_hex_tag(&"ab".repeat(32), "h").is_ok());
        assert!(decode_hex_tag(&"AB".repeat(32), "h").is_ok());
        assert!(decode_hex_tag(&"zz".repeat(32), "h").is_err());
        assert!(decode_hex_tag(&"ab".repeat(31), "h").is_err());
        assert!(decode_base64_tag("not base64!", "h").is_err());
    }
}
