//! The text encoding every non-JSON format writes values in.
//!
//! Syslog structured data and CEF are read by people and by parsers that do
//! one layer of unescaping, so a value must never hold a raw control, bidi or
//! invisible character (brief invariant 12), and an auditor must be able to
//! get the exact stored value back. [`encode`] writes a value as
//! *safe text*: every character [`custody_core::text::is_unsafe_char`] names
//! is written as its visible escape ([`custody_core::text::escape_char`]:
//! `\n`, `\r`, `\t`, or `\u{hex}`), and a backslash is doubled, so the
//! encoding is reversible by [`decode`]. Each format then applies its own
//! escaping (RFC 5424 `PARAM-VALUE`, CEF header or extension) on top.

use std::borrow::Cow;

use custody_core::text::{escape_char, is_unsafe_char};

/// Why safe text could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SafeTextError {
    /// A backslash not followed by `\`, `n`, `r`, `t` or `u{hex}`.
    #[error("invalid escape at byte {0}: expected \\\\, \\n, \\r, \\t or \\u{{hex}}")]
    Escape(usize),
}

/// `text` as safe text: unsafe characters escaped visibly, backslashes
/// doubled. Borrowed when nothing needed escaping.
pub fn encode(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if needs_escape(c) {
            out.push_str(&escape_char(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether safe text writes `c` as an escape: a backslash, or a character
/// [`is_unsafe_char`] names. Printable ASCII, the bulk of every value, is
/// decided without the table.
fn needs_escape(c: char) -> bool {
    if (' '..='~').contains(&c) {
        c == '\\'
    } else {
        is_unsafe_char(c)
    }
}

/// The text [`encode`] was given, from its output.
pub fn decode(text: &str) -> Result<String, SafeTextError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text.char_indices().peekable();
    while let Some((position, c)) = rest.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match rest.next() {
            Some((_, '\\')) => out.push('\\'),
            Some((_, 'n')) => out.push('\n'),
            Some((_, 'r')) => out.push('\r'),
            Some((_, 't')) => out.push('\t'),
            Some((_, 'u')) => {
                if rest.next().map(|(_, c)| c) != Some('{') {
                    return Err(SafeTextError::Escape(position));
                }
                let mut hex = String::new();
                loop {
                    match rest.next() {
                        Some((_, '}')) => break,
                        Some((_, digit)) if digit.is_ascii_hexdigit() && hex.len() < 6 => {
                            hex.push(digit);
                        }
                        _ => return Err(SafeTextError::Escape(position)),
                    }
                }
                let decoded = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or(SafeTextError::Escape(position))?;
                out.push(decoded);
            }
            _ => return Err(SafeTextError::Escape(position)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_leaves_nothing_unsafe() {
        let table: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("naïve 日本", "naïve 日本"),
            (r"CORP\alice", r"CORP\\alice"),
            ("a\nb", r"a\nb"),
            (r"a\nb", r"a\\nb"),
            ("nul\u{0}", r"nul\u{0}"),
            ("\u{202e}fdp.exe", r"\u{202e}fdp.exe"),
            ("tag\u{e0041}", r"tag\u{e0041}"),
        ];
        for (input, expected) in table {
            assert_eq!(encode(input), *expected);
            assert!(!encode(input).chars().any(is_unsafe_char));
            assert_eq!(decode(&encode(input)).unwrap(), *input);
        }
        assert!(decode(r"bad\x").is_err());
        assert!(decode(r"bad\u{110000}").is_err());
        assert!(decode("trailing\\").is_err());
    }
}
