//! Differential: `is_canonical(x)` against the canonicaliser. The promise
//! (custody-core's `canonical.rs`): `x` is canonical exactly when it is the
//! RFC 8785 serialisation of some float-free JSON value, integers of
//! magnitude at most 2^53, nested at most `MAX_DEPTH` deep. So for every
//! input: `is_canonical(x) == (x parses as such a value v and
//! to_canonical_bytes(v) == x)`.
#![no_main]

use custody_core::canonical::{is_canonical, to_canonical_bytes, MAX_DEPTH};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const MAX_SAFE_INTEGER: u64 = 1 << 53;

/// Whether every number is an integer of magnitude at most 2^53 and no
/// value is deeper than `MAX_DEPTH` (the root is at depth 0).
fn within_limits(value: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match value {
        Value::Number(number) => match (number.as_u64(), number.as_i64()) {
            (Some(unsigned), _) => unsigned <= MAX_SAFE_INTEGER,
            (None, Some(signed)) => signed.unsigned_abs() <= MAX_SAFE_INTEGER,
            (None, None) => false,
        },
        Value::Array(items) => items.iter().all(|item| within_limits(item, depth + 1)),
        Value::Object(map) => map.values().all(|item| within_limits(item, depth + 1)),
        Value::Null | Value::Bool(_) | Value::String(_) => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let claimed = is_canonical(data);
    let expected = match serde_json::from_slice::<Value>(data) {
        Ok(value) => within_limits(&value, 0) && to_canonical_bytes(&value) == data,
        Err(_) => false,
    };
    assert_eq!(
        claimed,
        expected,
        "is_canonical disagrees with the canonicaliser on {:?}",
        String::from_utf8_lossy(data)
    );
});
