//! Identifiers: the case ID, event IDs and the hashes that link events.
//!
//! A case ID is `AC-` followed by a UUIDv7 in lowercase hex without dashes.
//! UUIDv7 puts a millisecond timestamp first, so IDs sort by creation time,
//! and its 74 random bits make IDs unique without coordination between nodes.
//! Ordering between nodes is only approximate: the ledger's order comes from
//! the database, never from IDs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The one immutable identifier of an access change, e.g.
/// `AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b71`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaseId(String);

/// The identifier of one event, e.g. `EV-019ad2c1a7f37c3e8b1f4d2a9c0e5b71`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(String);

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Hash(pub [u8; 32]);

/// Why an identifier could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Not a case ID: `AC-` and 32 lowercase hex digits of a UUIDv7.
    #[error(
        "`{0}` is not a case ID (expected AC- followed by 32 lowercase hex digits of a UUIDv7)"
    )]
    Case(String),
    /// Not an event ID: `EV-` and 32 lowercase hex digits of a UUIDv7.
    #[error("`{0}` is not an event ID (expected EV- followed by 32 lowercase hex digits)")]
    Event(String),
    /// Not a SHA-256 digest in lowercase hex.
    #[error("`{0}` is not a SHA-256 digest (expected 64 lowercase hex digits)")]
    Hash(String),
}

const CASE_PREFIX: &str = "AC-";
const EVENT_PREFIX: &str = "EV-";

fn is_uuid_v7_hex(text: &str) -> bool {
    text.len() == 32
        && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        // The version nibble of a UUIDv7 is 7.
        && text.as_bytes()[12] == b'7'
}

impl CaseId {
    /// A fresh case ID from the system clock and random bits.
    pub fn generate() -> CaseId {
        CaseId(format!("{CASE_PREFIX}{}", uuid::Uuid::now_v7().simple()))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl EventId {
    /// A fresh event ID.
    pub fn generate() -> EventId {
        EventId(format!("{EVENT_PREFIX}{}", uuid::Uuid::now_v7().simple()))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CaseId {
    type Err = IdError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.strip_prefix(CASE_PREFIX) {
            Some(rest) if is_uuid_v7_hex(rest) => Ok(CaseId(text.to_string())),
            _ => Err(IdError::Case(text.to_string())),
        }
    }
}

impl FromStr for EventId {
    type Err = IdError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.strip_prefix(EVENT_PREFIX) {
            Some(rest) if is_uuid_v7_hex(rest) => Ok(EventId(text.to_string())),
            _ => Err(IdError::Event(text.to_string())),
        }
    }
}

impl Sha256Hash {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha256Hash {
        Sha256Hash(Sha256::digest(bytes).into())
    }

    /// The digest as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }
}

impl FromStr for Sha256Hash {
    type Err = IdError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || IdError::Hash(text.to_string());
        if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(error());
        }
        let bytes = crate::hex::decode(text).ok_or_else(error)?;
        let array: [u8; 32] = bytes.try_into().map_err(|_| error())?;
        Ok(Sha256Hash(array))
    }
}

impl fmt::Debug for Sha256Hash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Sha256Hash({})", self.to_hex())
    }
}

macro_rules! text_identifier {
    ($type:ty) => {
        impl fmt::Display for $type {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $type {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .into()
            }
        }
        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $type {}
    };
}

text_identifier!(CaseId);
text_identifier!(EventId);

impl fmt::Display for Sha256Hash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_hex())
    }
}

impl Serialize for Sha256Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Sha256Hash {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("SHA-256 digest, 64 lowercase hex digits"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Sha256Hash {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_case_ids_parse_and_sort_by_time() {
        let first = CaseId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = CaseId::generate();
        assert_eq!(first.as_str().parse::<CaseId>().unwrap(), first);
        assert!(first < second);
        assert_eq!(first.as_str().len(), 35);
    }

    #[test]
    fn rejects_malformed_case_ids() {
        for text in [
            "",
            "AC-",
            "ac-019ad2c1a7f37c3e8b1f4d2a9c0e5b71",
            "AC-019AD2C1A7F37C3E8B1F4D2A9C0E5B71",
            "AC-019ad2c1a7f34c3e8b1f4d2a9c0e5b71",
            "AC-019ad2c1-a7f3-7c3e-8b1f-4d2a9c0e5b71",
            "AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b7",
        ] {
            assert!(text.parse::<CaseId>().is_err(), "accepted {text:?}");
        }
    }

    #[test]
    fn hash_hex_round_trips() {
        let hash = Sha256Hash::of(b"custody");
        assert_eq!(hash.to_hex().parse::<Sha256Hash>().unwrap(), hash);
        assert!("AB".repeat(32).parse::<Sha256Hash>().is_err());
    }
}
