//! Change sets (`custody execute --change-set`, the `change_set` of API
//! bodies): `ChangeSet::from_json` and the serde path the API bodies take.
//! A change set that parses has canonical bytes that the canonical-form
//! validator accepts, and it parses again from them to the same value.
#![no_main]

use custody_core::canonical::{is_canonical, to_canonical_bytes};
use custody_core::change_set::ChangeSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let from_serde = serde_json::from_slice::<ChangeSet>(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = ChangeSet::from_json(text);
    assert_eq!(
        parsed.is_ok(),
        from_serde.is_ok(),
        "from_json and Deserialize disagree: {parsed:?} / {from_serde:?}"
    );
    if let Ok(change_set) = parsed {
        let bytes = to_canonical_bytes(change_set.as_value());
        assert!(
            is_canonical(&bytes),
            "a change set's canonical bytes are not canonical"
        );
        let again =
            ChangeSet::from_json(std::str::from_utf8(&bytes).expect("canonical JSON is UTF-8"))
                .expect("a change set's canonical form parses");
        assert_eq!(again.hash(), change_set.hash());
    }
});
