//! OpenID Connect bearer tokens (custody-server's `oidc::jwt`): the
//! issuer's JSON Web Key set and a JWT checked against it. The input is the
//! key set document, a newline, then the token.
#![no_main]

use custody_server::oidc::jwt::{parse, KeySet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (keys, token) = match data.iter().position(|byte| *byte == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&b"{\"keys\":[]}"[..], data),
    };
    let keys = KeySet::parse(keys).unwrap_or_default();
    let Ok(token) = std::str::from_utf8(token) else {
        return;
    };
    if let Ok(parsed) = parse(token) {
        let _ = parsed.verify(&keys);
    }
});
