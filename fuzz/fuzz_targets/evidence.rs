//! Evidence from outside: the media-type sniffer run on the first bytes of
//! every uploaded file and captured link (custody-evidence's
//! `sniff_media_type`), SHA-256 digests as clients send them, and the
//! `[evidence.fetch]` allow rules of the config file.
#![no_main]

use std::str::FromStr;

use custody_evidence::{sniff_media_type, AllowRule, Sha256Digest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let media_type = sniff_media_type(data);
    assert!(!media_type.is_empty());
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Sha256Digest::from_str(text);
        if let Ok(rule) = AllowRule::from_str(text) {
            let _ = rule.allows_host("example.com");
            let _ = rule.allows_address(std::net::IpAddr::from([10, 0, 0, 1]));
        }
    }
});
