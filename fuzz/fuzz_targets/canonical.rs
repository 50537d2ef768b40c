//! The canonical-form validator (`custody_core::canonical::is_canonical`)
//! and the event decoder that runs it on every stored event
//! (`Event::decode`): neither may panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let canonical = custody_core::canonical::is_canonical(data);
    if let Ok(event) = custody_core::Event::decode(data) {
        // An event decodes only from canonical bytes.
        assert!(canonical, "Event::decode accepted non-canonical bytes");
        let _ = event.body.summary();
        let _ = event.hash();
    }
});
