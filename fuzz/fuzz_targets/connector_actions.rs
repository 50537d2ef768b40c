//! The connectors of actions (Jira, ServiceNow, Slack, Teams), as the
//! server runs them on a request: the signature check with arbitrary
//! headers and body (`Connector::verify`), then the body's parse
//! (`Connector::parse`, which the server runs only on a verified request;
//! it is run here on every body, since a forged MAC is not what keeps a
//! parser safe), the answer and the refusal. The first byte picks the
//! connector and whether the request came over TLS; the rest is the
//! request in `custody_fuzz::FuzzRequest`'s framing.
#![no_main]

use custody_fuzz::{action_connectors, split_selector, FuzzRequest, NOW_UNIX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((selector, input)) = split_selector(data) else {
        return;
    };
    let connectors = action_connectors();
    let connector = &connectors[usize::from(selector) % connectors.len()];
    let framed = FuzzRequest::parse(input);
    let request = framed.request(selector & 0x80 == 0);
    let _ = connector.verify(&request, NOW_UNIX);
    match connector.parse(&request) {
        Ok(inbound) => {
            let _ = connector.answer(&[]);
            for action in &inbound {
                let _ = format!("{action:?}");
            }
        }
        Err(refusal) => {
            let _ = connector.refused(&refusal);
            let _ = refusal.status();
        }
    }
});
