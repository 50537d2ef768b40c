//! The server's configuration file (`custody serve --config FILE`):
//! TOML parsing and every check of `Config::parse`, then the settings
//! of every `[[connectors]]` entry it holds, built as the server builds
//! them at start-up.
#![no_main]

use custody_server::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse(text) {
        for connector in &config.connectors {
            let _ = connector.name();
            let _ = connector.window_seconds();
            let _ = connector.max_body_bytes();
            if connector.is_source() {
                let _ = connector.build_source();
            } else {
                let _ = connector.build();
            }
        }
    }
});
