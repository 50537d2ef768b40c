//! Auditor bundles (`custody verify --bundle`, `custody import`): the line
//! reader of custody-export (`BundleReader`) over every line, then the
//! whole offline check of custody-verify (`verify_bundle`), trusting the
//! seeds' log key, and trusting only the keys the bundle carries.
#![no_main]

use custody_export::bundle::BundleReader;
use custody_fuzz::trusted_keys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in BundleReader::new(data) {
        if line.is_err() {
            break;
        }
    }
    let _ = custody_verify::bundle::verify_bundle(data, trusted_keys(), &mut |_| {});
    let _ = custody_verify::bundle::verify_bundle(data, &[], &mut |_| {});
});
