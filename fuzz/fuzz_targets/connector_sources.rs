//! The sources of observed changes (Okta, CloudTrail, Entra ID, GitHub,
//! Vault, Kubernetes): the shared-secret check of a pushed request
//! (`Source::authenticate`), the handshake, the pushed body's parse
//! (`Source::parse_push_at`), the batch file's parse (`Source::parse_batch`,
//! what `custody ingest` reads) and a polled page's parse (`Pull::page`,
//! the vendor's HTTP answer). The first byte picks the source (low bits)
//! and the parser (high bits); the rest is the request in
//! `custody_fuzz::FuzzRequest`'s framing (a batch file is the whole rest).
#![no_main]

use custody_core::Timestamp;
use custody_fuzz::{sources, split_selector, FuzzRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((selector, input)) = split_selector(data) else {
        return;
    };
    let sources = sources();
    let source = &sources[usize::from(selector & 0x0f) % sources.len()];
    let received = Timestamp::parse("2026-11-30T10:02:40Z").expect("a timestamp");
    match (selector >> 4) % 4 {
        0 => {
            let framed = FuzzRequest::parse(input);
            let request = framed.request(true);
            let _ = source.authenticate(&request);
            if let Some(Ok(answer)) = source.handshake(&request) {
                let _ = answer.status;
            }
            let _ = source.parse_push_at(&request, received);
        }
        1 => {
            let _ = source.parse_batch(input);
        }
        2 => {
            if let Some(pull) = source.pull() {
                let framed = FuzzRequest::parse(input);
                // The endpoint line stands for the stored cursor.
                let cursor = Some(framed.endpoint.as_str()).filter(|cursor| !cursor.is_empty());
                if let Ok(page) = pull.page(cursor, 200, &framed.headers, framed.body) {
                    if let Some(next) = &page.cursor {
                        let _ = pull.request(Some(next), received);
                    }
                }
            }
        }
        _ => {
            if let Some(pull) = source.pull() {
                let cursor = std::str::from_utf8(input).ok();
                let _ = pull.request(cursor, received);
            }
        }
    }
});
