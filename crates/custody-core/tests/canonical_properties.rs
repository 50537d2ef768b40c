//! The allocation-free canonical-form check agrees with the canonicalizer on
//! arbitrary float-free JSON, and refuses every whitespace or reordering
//! mutation of canonical bytes.

use custody_core::canonical::{is_canonical, to_canonical_bytes};
use proptest::prelude::*;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53)..=(1i64 << 53)).prop_map(|n| Value::Number(n.into())),
        // Any Unicode text, including control characters, quotes,
        // backslashes and characters beyond the Basic Multilingual Plane.
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn canonicalizer_output_is_canonical(value in json_value()) {
        let bytes = to_canonical_bytes(&value);
        prop_assert!(is_canonical(&bytes), "{}", String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn whitespace_outside_strings_is_refused(value in json_value(), position in any::<prop::sample::Index>(), space in prop::sample::select(vec![b' ', b'\n', b'\t', b'\r'])) {
        let bytes = to_canonical_bytes(&value);
        // Find the structural positions (outside string literals).
        let mut structural = vec![0, bytes.len()];
        let mut in_string = false;
        let mut escaped = false;
        for (index, byte) in bytes.iter().enumerate() {
            if in_string {
                match (escaped, byte) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
            } else if *byte == b'"' {
                in_string = true;
                structural.push(index);
            } else {
                structural.push(index + 1);
            }
        }
        let at = structural[position.index(structural.len())];
        let mut mutated = bytes.clone();
        mutated.insert(at, space);
        prop_assert!(!is_canonical(&mutated), "accepted {}", String::from_utf8_lossy(&mutated));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = is_canonical(&bytes);
    }

    #[test]
    fn non_canonical_serialisation_of_objects_is_refused(map in prop::collection::btree_map("[a-z]{1,4}", any::<u32>(), 2..6)) {
        // Reverse key order: never canonical for two or more distinct keys.
        let reversed: Vec<String> = map
            .iter()
            .rev()
            .map(|(key, value)| format!("\"{key}\":{value}"))
            .collect();
        let text = format!("{{{}}}", reversed.join(","));
        prop_assert!(!is_canonical(text.as_bytes()), "accepted {text}");
    }
}
