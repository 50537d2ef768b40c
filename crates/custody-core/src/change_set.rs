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
//! - **an object**, what was changed by name (the API documents a change set
//!   as a JSON object), whose keys are unique at every level: RFC 8259 leaves
//!   what a duplicate key means to the reader, and a change set must mean one
//!   thing to every reader of the trail.
//!
//! An integral number written with a fraction (`226.0`) is that integer
//! (`226`), as JSON Schema and RFC 8785 read it: a client cannot tell them
//! apart, so neither does the change set.
//!
//! Parse it from its JSON text ([`ChangeSet::from_json`], or as a field of a
//! body with serde): only the text shows a duplicate key, which a
//! [`serde_json::Value`] has already dropped.

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
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
    /// Not a JSON object.
    NotAnObject {
        /// What it is instead (`an array`, `a string`, ...).
        found: &'static str,
    },
    /// An object that holds a key twice.
    DuplicateKey {
        /// The object.
        path: String,
        /// The key.
        key: String,
    },
    /// Not JSON at all.
    Syntax(String),
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
            ChangeSetError::NotAnObject { found } => write!(
                formatter,
                "the change set is {found}; it must be a JSON object naming what was changed, e.g. {{\"added\": [\"role/admin\"]}}"
            ),
            ChangeSetError::DuplicateKey { path, key } => write!(
                formatter,
                "{path} holds the key {key:?} twice; a change set's keys are unique, so that it means one thing to every reader"
            ),
            ChangeSetError::Syntax(error) => write!(formatter, "the change set is not JSON: {error}"),
        }
    }
}

impl std::error::Error for ChangeSetError {}

impl ChangeSet {
    /// Parses a change set from its JSON text: every limit of the module
    /// documentation, duplicate keys included.
    pub fn from_json(text: &str) -> Result<ChangeSet, ChangeSetError> {
        let found = RefCell::new(None);
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let value = Strict::root(&found)
            .deserialize(&mut deserializer)
            .and_then(|value| deserializer.end().map(|()| value));
        match (value, found.into_inner()) {
            (_, Some(error)) => Err(error),
            (Ok(value), None) => ChangeSet::parse(value),
            (Err(error), None) => Err(ChangeSetError::Syntax(error.to_string())),
        }
    }

    /// Checks `value` against every limit. A [`serde_json::Value`] cannot
    /// show a duplicate key (it kept one of them): parse the text with
    /// [`ChangeSet::from_json`] when you have it.
    pub fn parse(mut value: serde_json::Value) -> Result<ChangeSet, ChangeSetError> {
        let found = match &value {
            serde_json::Value::Object(_) => None,
            serde_json::Value::Array(_) => Some("an array"),
            serde_json::Value::String(_) => Some("a string"),
            serde_json::Value::Number(_) => Some("a number"),
            serde_json::Value::Bool(_) => Some("a boolean"),
            serde_json::Value::Null => Some("null"),
        };
        if let Some(found) = found {
            return Err(ChangeSetError::NotAnObject { found });
        }
        integral_numbers(&mut value, 0);
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

/// As [`ChangeSet::from_json`], from any serde deserializer.
impl<'de> Deserialize<'de> for ChangeSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let found = RefCell::new(None);
        let value = Strict::root(&found).deserialize(deserializer);
        if let Some(error) = found.into_inner() {
            return Err(serde::de::Error::custom(error));
        }
        ChangeSet::parse(value?).map_err(serde::de::Error::custom)
    }
}

/// Reads a JSON value as [`serde_json::Value`] does, but refuses an object
/// that holds a key twice (recording why in `found`, since a serde error
/// carries only text). The deserializer bounds the nesting (serde_json's
/// recursion limit); [`check`] applies the change set's own.
struct Strict<'found> {
    path: String,
    found: &'found RefCell<Option<ChangeSetError>>,
}

impl<'found> Strict<'found> {
    fn root(found: &'found RefCell<Option<ChangeSetError>>) -> Strict<'found> {
        Strict {
            path: String::from("change_set"),
            found,
        }
    }

    fn at(&self, step: String) -> Strict<'found> {
        Strict {
            path: format!("{}{step}", self.path),
            found: self.found,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = serde_json::Value;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = serde_json::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        // Not finite only from a non-JSON source; `null`, as serde_json does.
        Ok(serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Self::Value, A::Error> {
        let mut values = Vec::new();
        while let Some(value) = items.next_element_seed(self.at(format!("[{}]", values.len())))? {
            values.push(value);
        }
        Ok(serde_json::Value::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            if object.contains_key(&key) {
                let error = ChangeSetError::DuplicateKey {
                    path: self.path.clone(),
                    key,
                };
                let message = error.to_string();
                *self.found.borrow_mut() = Some(error);
                return Err(serde::de::Error::custom(message));
            }
            let value = entries.next_value_seed(self.at(format!(".{key}")))?;
            object.insert(key, value);
        }
        Ok(serde_json::Value::Object(object))
    }
}

/// Writes every integral number given with a fraction (`226.0`) as the
/// integer it is (`226`), within ±2^53; other fractions, and integers
/// beyond, stay for [`check`] to refuse. Stops where [`check`] refuses the
/// nesting, so it is bounded whatever the value.
fn integral_numbers(value: &mut serde_json::Value, depth: usize) {
    use serde_json::Value;
    const LIMIT: f64 = (1u64 << 53) as f64;
    match value {
        Value::Number(number) if number.is_f64() => {
            if let Some(float) = number.as_f64() {
                if float.fract() == 0.0 && float.abs() <= LIMIT {
                    #[allow(
                        clippy::cast_possible_truncation,
                        reason = "integral and within ±2^53, so exact"
                    )]
                    let integer = float as i64;
                    *value = Value::from(integer);
                }
            }
        }
        Value::Array(_) | Value::Object(_) if depth >= MAX_DEPTH => {}
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| integral_numbers(item, depth + 1)),
        Value::Object(members) => members
            .values_mut()
            .for_each(|item| integral_numbers(item, depth + 1)),
        _ => {}
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

    /// A change set of `levels` levels: an object around `levels - 1`
    /// nested arrays around an integer.
    pub(crate) fn nested(levels: usize) -> serde_json::Value {
        let mut value = json!(1);
        for _ in 1..levels {
            value = json!([value]);
        }
        json!({ "k": value })
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
        assert!(ChangeSet::parse(json!({"added": ["a", 1, {"n": -3}]})).is_ok());
        let error = ChangeSet::parse(json!({"ratio": {"x": [1, 0.5]}})).unwrap_err();
        assert!(
            error.to_string().contains("change_set.ratio.x[1]"),
            "{error}"
        );
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
    fn integral_numbers_written_with_a_fraction_are_integers() {
        let parsed =
            ChangeSet::from_json(r#"{"port": 226.0, "deep": [[-3.0]], "zero": -0.0}"#).unwrap();
        assert_eq!(
            parsed.as_value(),
            &json!({"port": 226, "deep": [[-3]], "zero": 0})
        );
        // 2^53 is an integer, but not one a double holds with its neighbours.
        let error = ChangeSet::from_json(r#"{"n": 9007199254740992.0}"#).unwrap_err();
        assert!(
            matches!(error, ChangeSetError::IntegerOutOfRange { .. }),
            "{error}"
        );
        assert!(matches!(
            ChangeSet::from_json(r#"{"n": 2.5}"#).unwrap_err(),
            ChangeSetError::Float { .. }
        ));
    }

    #[test]
    fn size_is_limited() {
        let big = "x".repeat(MAX_BYTES);
        let error = ChangeSet::parse(json!({ "blob": big })).unwrap_err();
        assert!(matches!(error, ChangeSetError::TooLarge { .. }), "{error}");
        assert!(ChangeSet::parse(json!({ "blob": "x".repeat(MAX_BYTES - 100) })).is_ok());
    }

    #[test]
    fn a_change_set_is_an_object() {
        for (value, found) in [
            (json!([1]), "an array"),
            (json!("x"), "a string"),
            (json!(7), "a number"),
            (json!(true), "a boolean"),
            (json!(null), "null"),
        ] {
            assert_eq!(
                ChangeSet::parse(value).unwrap_err(),
                ChangeSetError::NotAnObject { found }
            );
        }
        assert!(ChangeSet::parse(json!({})).is_ok());
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth() {
        for (text, path, twice) in [
            (r#"{"a": 1, "a": 2}"#, "change_set", "a"),
            (
                r#"{"users": [{"id": 1}, {"id": 2, "id": 3}]}"#,
                "change_set.users[1]",
                "id",
            ),
        ] {
            let error = ChangeSet::from_json(text).unwrap_err();
            assert!(
                matches!(&error, ChangeSetError::DuplicateKey { path: at, key } if at == path && key == twice),
                "{text}: {error:?}"
            );
            // The same through serde, as a field of a body.
            let error = serde_json::from_str::<ChangeSet>(text).unwrap_err();
            assert!(error.to_string().contains("twice"), "{error}");
        }
        assert!(ChangeSet::from_json(r#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}"#).is_ok());
        assert!(matches!(
            ChangeSet::from_json(r#"{"a": 1"#).unwrap_err(),
            ChangeSetError::Syntax(_)
        ));
        assert!(matches!(
            ChangeSet::from_json(r#"{"a": 1} {}"#).unwrap_err(),
            ChangeSetError::Syntax(_)
        ));
    }

    #[test]
    fn deserializing_checks_the_limits_and_serializing_is_transparent() {
        let parsed: ChangeSet = serde_json::from_str(r#"{"b":[1,2],"a":"x"}"#).unwrap();
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            json!({"a": "x", "b": [1, 2]})
        );
        assert!(serde_json::from_str::<ChangeSet>(r#"{"a": [1.5]}"#).is_err());
        assert!(serde_json::from_str::<ChangeSet>("[1]").is_err());
        // An integral number with a fraction is the integer.
        let parsed: ChangeSet = serde_json::from_str("{\"a\": [1.0]}").unwrap();
        assert_eq!(parsed.as_value(), &json!({"a": [1]}));
    }
}
