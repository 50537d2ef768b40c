//! The SHA-256 digest that names every blob, and its lower-case hex form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A SHA-256 digest: the name of a blob in every [`crate::BlobStore`].
///
/// It is written as 64 lower-case hex characters (`Display`, serde) and parsed
/// from that form only ([`FromStr`]), so a digest that came from outside is
/// valid by construction.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Digest([u8; 32]);

/// Why a string is not a SHA-256 digest in hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a SHA-256 digest: {problem}; write it as 64 lower-case hex characters")]
pub struct DigestParseError {
    /// The text that was given (cut to 80 characters).
    pub input: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl Sha256Digest {
    /// The digest with these 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The SHA-256 of `data`, computed in one go (for small inputs; blob
    /// stores hash while streaming).
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// The 32 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lower-case hex characters.
    pub fn to_hex(&self) -> String {
        custody_core::hex::encode(&self.0)
    }
}

impl From<[u8; 32]> for Sha256Digest {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Sha256Digest({})", self.to_hex())
    }
}

impl FromStr for Sha256Digest {
    type Err = DigestParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = |problem| DigestParseError {
            input: input.chars().take(80).collect(),
            problem,
        };
        if input.len() != 64 {
            return Err(error("it is not 64 characters long"));
        }
        // Upper case is refused so that one digest has exactly one spelling
        // (it is also a file name and an object key).
        let not_hex = || error("it has a character that is not lower-case hex");
        if !input
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(not_hex());
        }
        let bytes = custody_core::hex::decode(input).ok_or_else(not_hex)?;
        Ok(Self(bytes.try_into().map_err(|_| not_hex())?))
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_known_value() {
        let digest = Sha256Digest::of(b"abc");
        assert_eq!(
            digest.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(digest.to_hex().parse::<Sha256Digest>().unwrap(), digest);
    }

    #[test]
    fn parse_refuses_wrong_length_upper_case_and_non_hex() {
        let good = Sha256Digest::of(b"abc").to_hex();
        assert!(good[..63].parse::<Sha256Digest>().is_err());
        assert!(good.to_uppercase().parse::<Sha256Digest>().is_err());
        let mut bad = good.clone();
        bad.replace_range(10..11, "g");
        let error = bad.parse::<Sha256Digest>().unwrap_err();
        assert!(error.to_string().contains("not lower-case hex"), "{error}");
        assert!("../../etc/passwd".parse::<Sha256Digest>().is_err());
    }

    #[test]
    fn serde_uses_the_hex_form() {
        let digest = Sha256Digest::of(b"");
        let json = format!("\"{digest}\"");
        let value: Sha256Digest =
            toml::from_str::<std::collections::BTreeMap<String, Sha256Digest>>(&format!(
                "d = {json}"
            ))
            .unwrap()["d"];
        assert_eq!(value, digest);
    }
}
