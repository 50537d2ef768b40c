//! Reading vendor records as JSON values: the small helpers the GitHub,
//! Vault and Kubernetes sources share.
//!
//! Vendor records are read as [`serde_json::Value`] rather than typed
//! structs: each vendor adds fields over time and documents many as
//! optional, and a record Custody does not read must be counted as
//! skipped, not refused for a field it never needed. What Custody does read
//! is checked here, field by field, with a refusal naming the record.

use serde_json::Value;

use custody_core::Timestamp;

use crate::Refusal;

/// The value at `path` (object keys), if every step exists.
pub(crate) fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, key| value.get(key))
}

/// The string at `path`, if it is one and not empty.
pub(crate) fn text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// The string or integer at `path`, as text (vendors write IDs as either).
pub(crate) fn id_text(value: &Value, path: &[&str]) -> Option<String> {
    match at(value, path)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) if number.is_u64() || number.is_i64() => Some(number.to_string()),
        _ => None,
    }
}

/// A boolean written as `true`/`false` or as the strings `"true"`/`"false"`.
pub(crate) fn flag(value: &Value, path: &[&str]) -> Option<bool> {
    match at(value, path)? {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) if text == "true" => Some(true),
        Value::String(text) if text == "false" => Some(false),
        _ => None,
    }
}

/// The string at `path`, or a refusal naming `record` and the field.
pub(crate) fn require<'a>(
    value: &'a Value,
    path: &[&str],
    record: &str,
) -> Result<&'a str, Refusal> {
    text(value, path).ok_or_else(|| {
        Refusal::Malformed(format!(
            "record {}: `{}` is missing or not a string",
            custody_core::text::escape(record),
            path.join(".")
        ))
    })
}

/// An RFC 3339 time at `path`, or a refusal naming `record`.
pub(crate) fn time(value: &Value, path: &[&str], record: &str) -> Result<Timestamp, Refusal> {
    let text = require(value, path, record)?;
    Timestamp::parse(text).map_err(|error| {
        Refusal::Malformed(format!(
            "record {}: `{}`: {error}",
            custody_core::text::escape(record),
            path.join(".")
        ))
    })
}

/// Milliseconds since the Unix epoch as a timestamp (GitHub's audit log
/// writes `@timestamp` and `created_at` so); `None` when not an integer
/// in range.
pub(crate) fn from_epoch_millis(value: &Value) -> Option<Timestamp> {
    let millis = value.as_i64()?;
    // Years 1970 to 9999, the range `Timestamp::parse` accepts.
    if !(0..=253_402_300_799_999).contains(&millis) {
        return None;
    }
    Some(Timestamp::from_micros(millis.saturating_mul(1000)))
}

/// Parses a body as one JSON value, refusing with what it is (`what`).
pub(crate) fn parse(bytes: &[u8], what: &str) -> Result<Value, Refusal> {
    serde_json::from_slice(bytes)
        .map_err(|error| Refusal::Malformed(format!("{what} is not JSON: {error}")))
}

/// The lines of a JSON-lines body (blank lines skipped), each parsed, with
/// its bytes: the raw record whose hash the observation keeps.
pub(crate) fn json_lines<'a>(
    bytes: &'a [u8],
    what: &str,
) -> Result<Vec<(&'a [u8], Value)>, Refusal> {
    let mut records = Vec::new();
    for (index, line) in bytes.split(|byte| *byte == b'\n').enumerate() {
        let line = trim_ascii(line);
        if line.is_empty() {
            continue;
        }
        let value = serde_json::from_slice(line).map_err(|error| {
            Refusal::Malformed(format!("{what}, line {}: not JSON: {error}", index + 1))
        })?;
        records.push((line, value));
    }
    Ok(records)
}

/// `bytes` without leading and trailing ASCII whitespace (a `\r` of CRLF
/// lines among it).
pub(crate) fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|byte| !byte.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|byte| !byte.is_ascii_whitespace())
        .map_or(start, |at| at + 1);
    &bytes[start..end]
}

/// The bytes of each element of a top-level JSON array, as the source sent
/// them (for the raw hash), with its value.
pub(crate) fn array_elements<'a>(
    bytes: &'a [u8],
    what: &str,
) -> Result<Vec<(&'a [u8], Value)>, Refusal> {
    let raw: Vec<&serde_json::value::RawValue> = serde_json::from_slice(bytes)
        .map_err(|error| Refusal::Malformed(format!("{what} is not a JSON array: {error}")))?;
    raw.into_iter()
        .map(|element| {
            let text = element.get();
            serde_json::from_str(text)
                .map(|value| (text.as_bytes(), value))
                .map_err(|error| Refusal::Malformed(format!("{what}: {error}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_read_by_path_and_type() {
        let value = json!({"a": {"b": "x", "n": 7, "t": "true", "e": ""}});
        assert_eq!(text(&value, &["a", "b"]), Some("x"));
        assert_eq!(text(&value, &["a", "e"]), None);
        assert_eq!(text(&value, &["a", "n"]), None);
        assert_eq!(id_text(&value, &["a", "n"]).as_deref(), Some("7"));
        assert_eq!(flag(&value, &["a", "t"]), Some(true));
        assert!(require(&value, &["a", "z"], "r1")
            .unwrap_err()
            .to_string()
            .contains("record r1: `a.z`"));
    }

    #[test]
    fn epoch_milliseconds_in_range_only() {
        assert_eq!(
            from_epoch_millis(&json!(1_700_000_000_123_i64))
                .unwrap()
                .to_string(),
            "2023-11-14T22:13:20.123000Z"
        );
        assert_eq!(from_epoch_millis(&json!(-1)), None);
        assert_eq!(from_epoch_millis(&json!(1.5)), None);
        assert_eq!(from_epoch_millis(&json!("1700000000000")), None);
        assert_eq!(from_epoch_millis(&json!(i64::MAX)), None);
    }

    #[test]
    fn json_lines_and_arrays_keep_each_records_bytes() {
        let lines = json_lines(b"{\"a\":1}\r\n\n  {\"a\":2}\n", "file").unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].0, b"{\"a\":1}");
        assert_eq!(lines[1].0, b"{\"a\":2}");
        assert!(json_lines(b"{\"a\":1}\nnot json\n", "file")
            .unwrap_err()
            .to_string()
            .contains("line 2"));
        let elements = array_elements(b"[ {\"a\": 1} , {\"b\":2}]", "page").unwrap();
        assert_eq!(elements[0].0, b"{\"a\": 1}");
        assert_eq!(elements[1].1, json!({"b": 2}));
        assert!(array_elements(b"{}", "page").is_err());
    }
}
