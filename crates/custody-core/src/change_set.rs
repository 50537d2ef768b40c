//! The change set an execution reports: what was actually changed, as JSON
//! from outside (a provisioning tool's output, say).
//!
//! A [`ChangeSet`] is parsed once, at the edge, and every limit it must meet
//! is here, in one place, so that anything accepted can be hashed and stored
//! canonically and read back as the same event:
//!
//! - **depth**: at most [`MAX_DEPTH`] levels of arrays and objects. A change
//!   set sits [`ENVELOPE_DEPTH`] levels deep in its event (`payload`, then
//!   `change_set`), and a stored event is accepted only when it nests at most
//!   [`crate::canonical::MAX_DEPTH`] levels; the limit leaves a margin beyond
//!   that (checked at compile time), so an honest write always reads back.
//! - **integers only**, each within ±(2^53 − 1) ([`MAX_SAFE_INTEGER`]): RFC
//!   8785 writes numbers as IEEE doubles, which hold exactly only those.
//!   Floats never appear in hashed content.
//! - **size**: at most [`MAX_BYTES`] bytes in canonical form.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::Sha256Hash;

/// Most levels of arrays and objects a change set may nest.
pub const MAX_DEPTH: usize = 32;

/// Levels of the event around its change set: the event object holds
/// `payload`, which holds `change_set`.
pub const ENVELOPE_DEPTH: usize = 2;

/// The largest integer magnitude accepted: 2^53 − 1, the largest an IEEE
/// double holds exactly together with all its neighbours.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Most bytes of a change set in canonical form.
pub const MAX_BYTES: usize = 256 * 1024;

// Anything accepted decodes: the innermost value of a change set of
// MAX_DEPTH levels sits at ENVELOPE_DEPTH + MAX_DEPTH in its event. The
// margin left is for envelopes that grow.
const _: () = assert!(ENVELOPE_DEPTH + MAX_DEPTH + 16 <= crate::canonical::MAX_DEPTH);

/// A change set that meets every limit (see the module documentation).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ChangeSet(serde_json::Value);

/// Why a change set was refused; `path` names the offending value
/// (`change_set.users[2].id`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeSetError {
    /// A number with a fraction or an exponent.
    Float {
        /// Where.
        path: String,
        /// The number as given.
        number: String,
    },
    /// An integer beyond ±(2^53 − 1).
    IntegerOutOfRange {
        /// Where.
        path: String,
        /// The number as given.
        number: String,
    },
    /// Nested more than [`MAX_DEPTH`] levels.
    TooDeep {
        /// Where the nesting went beyond the limit.
        path: String,
    },
    /// More than [`MAX_BYTES`] in canonical form.
    TooLarge {
        /// Its canonical size.
        bytes: usize,
    },
}

impl fmt::Display for ChangeSetError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeSetError::Float { path, number } => write!(
                formatter,
                "{path} is {number}, a number with a fraction or exponent; change sets hold only integers (hashed content never holds floats): write it as a string"
            ),
            ChangeSetError::IntegerOutOfRange { path, number } => write!(
                formatter,
                "{path} is {number}, beyond ±{MAX_SAFE_INTEGER} (2^53 − 1), the integers a canonical hash keeps exact: write it as a string"
            ),
            ChangeSetError::TooDeep { path } => write!(
                formatter,
                "the change set nests more than {MAX_DEPTH} levels of arrays and objects (at {path}); flatten it"
            ),
            ChangeSetError::TooLarge { bytes } => write!(
                formatter,
                "the change set is {bytes} bytes in canonical form; at most {MAX_BYTES} are accepted: attach the full output as evidence and record a summary"
            ),
        }
    }
}

impl std::error::Error for ChangeSetError {}

impl ChangeSet {
    /// Checks `value` against every limit.
    pub fn parse(value: serde_json::Value) -> Result<ChangeSet, ChangeSetError> {
        let mut path = String::from("change_set");
        check(&value, 0, &mut path)?;
        let bytes = crate::canonical::to_canonical_bytes(&value).len();
        if bytes > MAX_BYTES {
            return Err(ChangeSetError::TooLarge { bytes });
        }
        Ok(ChangeSet(value))
    }

    /// The JSON value.
    pub fn as_value(&self) -> &serde_json::Value {
        &self.0
    }

    /// The JSON value, as events hold it.
    pub fn into_value(self) -> serde_json::Value {
        self.0
    }

    /// The SHA-256 of its canonical bytes.
    pub fn hash(&self) -> Sha256Hash {
        Sha256Hash::of(&crate::canonical::to_canonical_bytes(&self.0))
    }
}

impl<'de> Deserialize<'de> for ChangeSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        ChangeSet::parse(value).map_err(serde::de::Error::custom)
    }
}

/// Walks `value`, at `depth` levels of nesting, refusing what breaks a
/// limit. The recursion stops at the depth limit, so it is bounded whatever
/// the value.
fn check(value: &serde_json::Value, depth: usize, path: &mut String) -> Result<(), ChangeSetError> {
    use serde_json::Value;
    let nested = |path: &mut String, step: &str, item: &Value| {
        let length = path.len();
        path.push_str(step);
        let result = check(item, depth + 1, path);
        path.truncate(length);
        result
    };
    match value {
        Value::Array(_) | Value::Object(_) if depth >= MAX_DEPTH => {
            Err(ChangeSetError::TooDeep { path: path.clone() })
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                nested(path, &format!("[{index}]"), item)?;
            }
            Ok(())
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                nested(path, &format!(".{key}"), item)?;
            }
            Ok(())
        }
        Value::Number(number) => {
            let magnitude = number
                .as_i64()
                .map(i64::unsigned_abs)
                .or_else(|| number.as_u64());
            match magnitude {
                Some(magnitude) if magnitude <= MAX_SAFE_INTEGER => Ok(()),
                Some(_) => Err(ChangeSetError::IntegerOutOfRange {
                    path: path.clone(),
                    number: number.to_string(),
                }),
                None => Err(ChangeSetError::Float {
                    path: path.clone(),
                    number: number.to_string(),
                }),
            }
        }
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `levels` nested arrays around an integer.
    pub(crate) fn nested(levels: usize) -> serde_json::Value {
        let mut value = json!(1);
        for _ in 0..levels {
            value = json!([value]);
        }
        value
    }

    #[test]
    fn depth_is_limited_at_max_depth() {
        assert!(ChangeSet::parse(nested(MAX_DEPTH)).is_ok());
        let error = ChangeSet::parse(nested(MAX_DEPTH + 1)).unwrap_err();
        assert!(matches!(error, ChangeSetError::TooDeep { .. }), "{error}");
        assert!(error.to_string().contains("more than 32 levels"), "{error}");
    }

    #[test]
    fn integers_are_limited_to_the_exact_doubles() {
        let limit = i64::try_from(MAX_SAFE_INTEGER).unwrap();
        assert!(ChangeSet::parse(json!({"n": limit, "m": -limit})).is_ok());
        for bad in [json!(limit + 1), json!(-limit - 1), json!(u64::MAX)] {
            let error = ChangeSet::parse(json!({"n": bad})).unwrap_err();
            assert!(
                matches!(&error, ChangeSetError::IntegerOutOfRange { path, .. } if path == "change_set.n"),
                "{error:?}"
            );
        }
        let error = ChangeSet::parse(json!({"a": [0, 1.5]})).unwrap_err();
        assert_eq!(
            error,
            ChangeSetError::Float {
                path: "change_set.a[1]".into(),
                number: "1.5".into()
            }
        );
    }

    #[test]
    fn size_is_limited() {
        let big = "x".repeat(MAX_BYTES);
        let error = ChangeSet::parse(json!({ "blob": big })).unwrap_err();
        assert!(matches!(error, ChangeSetError::TooLarge { .. }), "{error}");
        assert!(ChangeSet::parse(json!({ "blob": "x".repeat(MAX_BYTES - 100) })).is_ok());
    }

    #[test]
    fn deserializing_checks_the_limits_and_serializing_is_transparent() {
        let parsed: ChangeSet = serde_json::from_str(r#"{"b":[1,2],"a":"x"}"#).unwrap();
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            json!({"a": "x", "b": [1, 2]})
        );
        assert!(serde_json::from_str::<ChangeSet>("[1.0]").is_err());
    }
}
