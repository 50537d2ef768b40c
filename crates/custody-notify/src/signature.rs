//! The webhook signature scheme, shared by the sender and by receivers.
//!
//! `Custody-Signature: v1=<hex>` where `<hex>` is the lower-case hex
//! HMAC-SHA256, keyed with the channel's secret (its UTF-8 bytes), of the
//! ASCII decimal `Custody-Timestamp`, one `.`, and the exact body bytes.
//! Binding the timestamp into the MAC lets a receiver refuse replays older
//! than its tolerance; binding the raw bytes means a receiver must verify
//! before it parses.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header carrying the notification's delivery ID (also the CloudEvents
/// `id`), for deduplication before the body is parsed.
pub const DELIVERY_ID_HEADER: &str = "Custody-Delivery-Id";
/// The header carrying the signing time in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "Custody-Timestamp";
/// The header carrying the signature(s), `v1=<hex>`.
pub const SIGNATURE_HEADER: &str = "Custody-Signature";

/// Why a webhook signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The receiver was configured with an empty secret, which would accept
    /// a MAC anyone can compute.
    #[error(
        "the webhook secret is empty; configure the same non-empty secret as the sending channel"
    )]
    EmptySecret,
    /// The timestamp header is not a decimal number of Unix seconds.
    #[error("the {TIMESTAMP_HEADER} header `{0}` is not a decimal number of Unix seconds")]
    MalformedTimestamp(String),
    /// The timestamp is further from the receiver's clock than the tolerance.
    #[error("the {TIMESTAMP_HEADER} {timestamp} is {skew_seconds} s away from now ({now}), more than the tolerated {tolerance_seconds} s; a replayed or long-delayed request, or a clock out of sync")]
    StaleTimestamp {
        /// The timestamp the request carried.
        timestamp: u64,
        /// The receiver's clock.
        now: u64,
        /// How far apart they are.
        skew_seconds: u64,
        /// The tolerance that was exceeded.
        tolerance_seconds: u64,
    },
    /// The signature header holds no `v1=` entry.
    #[error("the {SIGNATURE_HEADER} header holds no v1= signature")]
    MissingSignature,
    /// A `v1=` entry is not 64 hexadecimal digits.
    #[error("the {SIGNATURE_HEADER} entry `{0}` is not v1= followed by 64 hexadecimal digits")]
    MalformedSignature(String),
    /// No `v1=` entry matches the body, timestamp and secret.
    #[error("the {SIGNATURE_HEADER} does not match the body and timestamp under this secret; the body was altered, or the secrets differ")]
    Mismatch,
}

/// Signs a webhook body: returns the `Custody-Signature` header value,
/// `v1=<lower-case hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn sign_webhook(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let tag = signing_mac(secret, timestamp, body).finalize().into_bytes();
    format!("v1={}", custody_core::hex::encode(&tag))
}

/// Verifies a webhook request the way receivers should: the timestamp is
/// within `tolerance_seconds` of `now_unix` (either side), and one of the
/// comma-separated `v1=` entries of `signature_header` is the HMAC of
/// `"<timestamp>.<body>"` under `secret`, compared in constant time.
///
/// Several entries are allowed so that a sender can sign with an old and a
/// new secret while a rotation is under way; entries of other schemes are
/// ignored. Pass the body bytes exactly as received, before any parsing.
pub fn verify_webhook_signature(
    secret: &[u8],
    timestamp_header: &str,
    body: &[u8],
    signature_header: &str,
    now_unix: u64,
    tolerance_seconds: u64,
) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::EmptySecret);
    }
    let timestamp_text = timestamp_header.trim();
    if timestamp_text.is_empty()
        || timestamp_text.len() > 19
        || !timestamp_text.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(SignatureError::MalformedTimestamp(
            timestamp_header.escape_debug().to_string(),
        ));
    }
    let timestamp: u64 = timestamp_text
        .parse()
        .map_err(|_| SignatureError::MalformedTimestamp(timestamp_text.to_string()))?;
    let skew_seconds = timestamp.abs_diff(now_unix);
    if skew_seconds > tolerance_seconds {
        return Err(SignatureError::StaleTimestamp {
            timestamp,
            now: now_unix,
            skew_seconds,
            tolerance_seconds,
        });
    }

    let mut candidates = Vec::new();
    for entry in signature_header.split(',').map(str::trim) {
        let Some(hex) = entry.strip_prefix("v1=") else {
            continue;
        };
        let tag = hex_decode_32(hex)
            .ok_or_else(|| SignatureError::MalformedSignature(entry.escape_debug().to_string()))?;
        candidates.push(tag);
    }
    if candidates.is_empty() {
        return Err(SignatureError::MissingSignature);
    }
    let mac = signing_mac(secret, timestamp, body);
    // Check every candidate, so the time taken does not tell which one
    // matched; `verify_slice` itself compares in constant time.
    let matched = candidates.iter().fold(false, |found, tag| {
        mac.clone().verify_slice(tag).is_ok() | found
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The MAC over `"<timestamp>.<body>"`, not yet finalised.
fn signing_mac(secret: &[u8], timestamp: u64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = hmac_sha256(secret);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// An HMAC-SHA256 instance keyed with `key`.
fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    // Safe: HMAC accepts keys of every length (long keys are hashed, short
    // ones padded), so `new_from_slice` cannot fail for it.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// Decodes exactly 64 hexadecimal digits (either case) into 32 bytes.
fn hex_decode_32(text: &str) -> Option<[u8; 32]> {
    custody_core::hex::decode(text)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use custody_core::hex;

    fn hmac_hex(key: &[u8], data: &[u8]) -> String {
        let mut mac = hmac_sha256(key);
        mac.update(data);
        hex::encode(&mac.finalize().into_bytes())
    }

    /// RFC 4231 section 4: the HMAC-SHA-256 results of test cases 1-4, 6
    /// and 7 (case 5 checks truncated output, which we never use).
    #[test]
    fn hmac_sha256_matches_rfc4231() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                hex::decode("0102030405060708090a0b0c0d0e0f10111213141516171819").unwrap(),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, expected) in cases {
            assert_eq!(hmac_hex(&key, &data), expected);
        }
    }

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // Computed independently:
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        assert_eq!(
            sign_webhook(b"s3cret", 1_700_000_000, br#"{"a":1}"#),
            "v1=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }

    #[test]
    fn verification_accepts_a_fresh_signature_and_rejects_every_alteration() {
        let secret = b"webhook-secret";
        let body = br#"{"specversion":"1.0"}"#;
        let signature = sign_webhook(secret, 1_000, body);
        let verify = |secret: &[u8], ts: &str, body: &[u8], sig: &str, now| {
            verify_webhook_signature(secret, ts, body, sig, now, 300)
        };

        assert_eq!(verify(secret, "1000", body, &signature, 1_000), Ok(()));
        assert_eq!(verify(secret, "1000", body, &signature, 1_300), Ok(()));
        assert_eq!(verify(secret, "1000", body, &signature, 700), Ok(()));
        let upper = format!("v1={}", signature[3..].to_uppercase());
        assert_eq!(verify(secret, "1000", body, &upper, 1_000), Ok(()));

        assert_eq!(
            verify(
                secret,
                "1000",
                br#"{"specversion":"1.1"}"#,
                &signature,
                1_000
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other-secret", "1000", body, &signature, 1_000),
            Err(SignatureError::Mismatch)
        );
        // Moving the timestamp breaks the MAC even inside the tolerance.
        assert_eq!(
            verify(secret, "1001", body, &signature, 1_000),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify(secret, "1000", body, &signature, 1_301),
            Err(SignatureError::StaleTimestamp {
                skew_seconds: 301,
                ..
            })
        ));
        assert!(matches!(
            verify(secret, "1000", body, &signature, 699),
            Err(SignatureError::StaleTimestamp { .. })
        ));
        assert_eq!(
            verify(b"", "1000", body, &signature, 1_000),
            Err(SignatureError::EmptySecret)
        );
        for bad_timestamp in ["", "-1000", "1e3", "1000.0", "99999999999999999999"] {
            assert!(matches!(
                verify(secret, bad_timestamp, body, &signature, 1_000),
                Err(SignatureError::MalformedTimestamp(_))
            ));
        }
        assert_eq!(
            verify(secret, "1000", body, "v0=abcd", 1_000),
            Err(SignatureError::MissingSignature)
        );
        assert!(matches!(
            verify(secret, "1000", body, &signature[..60], 1_000),
            Err(SignatureError::MalformedSignature(_))
        ));
    }

    #[test]
    fn any_listed_v1_signature_may_match() {
        let body = b"payload";
        let old = sign_webhook(b"old", 50, body);
        let new = sign_webhook(b"new", 50, body);
        let header = format!("{old}, v2=ignored, {new}");
        assert_eq!(
            verify_webhook_signature(b"new", "50", body, &header, 50, 0),
            Ok(())
        );
        assert_eq!(
            verify_webhook_signature(b"old", "50", body, &header, 50, 0),
            Ok(())
        );
        assert_eq!(
            verify_webhook_signature(b"neither", "50", body, &header, 50, 0),
            Err(SignatureError::Mismatch)
        );
    }
}
