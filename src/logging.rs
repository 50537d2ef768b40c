//! The server's log on standard error: `CUSTODY_LOG` (an `EnvFilter`, default
//! `info,sqlx=warn,tower_http=info`), `CUSTODY_LOG_FORMAT=json`, colour only
//! on a terminal (and never with `NO_COLOR`), and no secrets at any level.
//!
//! Secrets: dependencies log connection details at debug level (async-nats
//! prints its server address with the password from the URL). Two guards
//! keep them out whatever `CUSTODY_LOG` says:
//! - async-nats is capped at `info`; below that it logs server addresses;
//! - every line is scrubbed before it is written: the user information of a
//!   URL (`scheme://user:password@host` becomes `scheme://user:***@host`,
//!   `scheme://token@host` becomes `scheme://***@host`), and the password of
//!   a URL printed with `Debug` (`password: Some("...")`).

use std::io::{IsTerminal, Write};

use tracing::Level;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The filter when `CUSTODY_LOG` is unset or invalid.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_http=info";

/// Crates whose events below `info` carry connection secrets.
const CAPPED_AT_INFO: &[&str] = &["async_nats"];

/// Installs the global subscriber for `custody serve`.
pub fn init() {
    let filter =
        EnvFilter::try_from_env("CUSTODY_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = std::env::var("CUSTODY_LOG_FORMAT").is_ok_and(|format| format == "json");
    let cap = filter_fn(|metadata| {
        !(*metadata.level() > Level::INFO
            && CAPPED_AT_INFO.iter().any(|name| {
                metadata.target() == *name
                    || metadata
                        .target()
                        .strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with("::"))
            }))
    });
    let layer = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(ScrubbedStderr)
            .with_filter(cap)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(use_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ))
            .with_writer(ScrubbedStderr)
            .with_filter(cap)
            .boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
}

/// Colour only on a terminal, and not when `NO_COLOR` is set to anything
/// but the empty string (<https://no-color.org>).
fn use_colour(terminal: bool, no_colour: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_colour.is_none_or(|value| value.is_empty())
}

/// Standard error, with [`scrub`] applied to every line.
struct ScrubbedStderr;

impl<'a> MakeWriter<'a> for ScrubbedStderr {
    type Writer = ScrubbingWriter;

    fn make_writer(&'a self) -> ScrubbingWriter {
        ScrubbingWriter
    }
}

/// Writes scrubbed text to standard error. The formatter hands over one
/// whole event per write, so a secret is never split between two calls.
struct ScrubbingWriter;

impl Write for ScrubbingWriter {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buffer);
        std::io::stderr()
            .lock()
            .write_all(scrub(&text).as_bytes())?;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `text` with the secrets of URLs replaced by `***`: the user information
/// of every `scheme://user:password@host` (the password) or
/// `scheme://token@host` (the token), and every `password: Some("...")`
/// (a URL's `Debug` form).
pub fn scrub(text: &str) -> String {
    let text = scrub_debug_passwords(text);
    let mut scrubbed = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        scrubbed.push_str(head);
        // The authority ends where the path, query or fragment begins, or at
        // anything that cannot be part of a URL in a log line.
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>' | '\\')
                    || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(user_end) => {
                let user_info = &authority[..user_end];
                match user_info.split_once(':') {
                    Some((user, _password)) => {
                        scrubbed.push_str(user);
                        scrubbed.push_str(":***");
                    }
                    None => scrubbed.push_str("***"),
                }
                scrubbed.push_str(&authority[user_end..]);
            }
            None => scrubbed.push_str(authority),
        }
        rest = &tail[end..];
    }
    scrubbed.push_str(rest);
    scrubbed
}

fn scrub_debug_passwords(text: &str) -> String {
    // As printed, and as escaped inside a JSON string (CUSTODY_LOG_FORMAT=json).
    const PLAIN: &str = "password: Some(\"";
    const ESCAPED: &str = "password: Some(\\\"";
    let mut scrubbed = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = [PLAIN, ESCAPED]
            .into_iter()
            .filter_map(|marker| rest.find(marker).map(|at| (at, marker)))
            .min_by_key(|(at, _)| *at);
        let Some((at, marker)) = next else { break };
        let (head, tail) = rest.split_at(at + marker.len());
        scrubbed.push_str(head);
        scrubbed.push_str("***");
        let end = if marker == ESCAPED {
            tail.find("\\\"").unwrap_or(tail.len())
        } else {
            // Up to the closing quote, skipping escaped characters.
            let mut escaped = false;
            let mut end = tail.len();
            for (index, c) in tail.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        end = index;
                        break;
                    }
                    _ => {}
                }
            }
            end
        };
        rest = &tail[end..];
    }
    scrubbed.push_str(rest);
    scrubbed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_url_passwords_and_tokens_and_keeps_the_rest() {
        assert_eq!(
            scrub("connecting to nats://custody:s3cret@127.0.0.1:4222 now"),
            "connecting to nats://custody:***@127.0.0.1:4222 now"
        );
        assert_eq!(
            scrub("url=\"postgres://app:p@ss:word@db:5432/custody?sslmode=require\""),
            "url=\"postgres://app:***@db:5432/custody?sslmode=require\""
        );
        assert_eq!(
            scrub("nats://TOKENVALUE@nats.example.com"),
            "nats://***@nats.example.com"
        );
        assert_eq!(
            scrub("see https://example.com/a@b and http://h:1/x"),
            "see https://example.com/a@b and http://h:1/x"
        );
        assert_eq!(scrub("no urls at all"), "no urls at all");
    }

    #[test]
    fn scrub_hides_the_password_of_a_debug_printed_url() {
        let debug = r#"server=ServerAddr(Url { scheme: "nats", username: "custody", password: Some("s3\"cret"), host: Some(Ipv4(127.0.0.1)) })"#;
        let scrubbed = scrub(debug);
        assert!(!scrubbed.contains("s3"), "{scrubbed}");
        assert!(scrubbed.contains(r#"password: Some("***")"#), "{scrubbed}");
        assert!(scrubbed.contains(r#"username: "custody""#), "{scrubbed}");
        // The same inside a JSON log line.
        let json = r#"{"fields":{"server":"ServerAddr(Url { username: \"custody\", password: Some(\"s3cret\"), port: Some(4222) })"}}"#;
        let scrubbed = scrub(json);
        assert!(!scrubbed.contains("s3cret"), "{scrubbed}");
        assert!(
            scrubbed.contains(r#"password: Some(\"***\")"#),
            "{scrubbed}"
        );
        assert!(scrubbed.contains(r#"port: Some(4222)"#), "{scrubbed}");
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
    }
}
