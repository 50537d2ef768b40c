//! Text from outside, made safe to show (brief invariant 12).
//!
//! Free text (justifications, comments, chat messages) is stored exactly as
//! given, and identifiers are refused unless they use the safe character set
//! of [`crate::model::validate_name`]. What reaches a screen goes through
//! [`escape`]: every character that could move the cursor, rewrite a line,
//! reorder or hide text is written as a visible escape instead, so what an
//! auditor reads is what is stored.
//!
//! Strings that come from remote servers (a redirect's `Location`, an error
//! a webhook receiver or a mail relay answered) are passed through [`escape`]
//! where they enter, before they are stored.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must never reach a terminal raw:
///
/// - C0 controls (U+0000 to U+001F, so also newline, tab and carriage
///   return), DEL (U+007F) and C1 controls (U+0080 to U+009F, among them
///   U+009B, the 8-bit CSI that starts a terminal escape sequence);
/// - the Unicode format characters (general category Cf): bidirectional
///   controls such as U+202E RIGHT-TO-LEFT OVERRIDE and the isolates U+2066
///   to U+2069, zero-width characters (U+200B to U+200D, U+2060, U+FEFF), the
///   soft hyphen, invisible operators, tags (U+E0000 to U+E007F), ...;
/// - the line and paragraph separators U+2028 and U+2029;
/// - characters that draw nothing but are not spaces: the combining grapheme
///   joiner U+034F, the Hangul fillers and the variation selectors.
pub fn is_unsafe_char(c: char) -> bool {
    matches!(
        c as u32,
        0x00..=0x1F
            | 0x7F..=0x9F
            | 0xAD
            | 0x034F
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// Writes `c` as its visible escape: `\n`, `\r` and `\t` for those three,
/// `\u{hex}` (lowercase hex, as Rust writes it) for every other unsafe
/// character.
pub fn escape_char(c: char) -> String {
    match c {
        '\n' => "\\n".to_string(),
        '\r' => "\\r".to_string(),
        '\t' => "\\t".to_string(),
        other => format!("\\u{{{:x}}}", other as u32),
    }
}

/// A character as an error message names it: printable ASCII as itself,
/// anything else as `\u{hex}`, so a refused character is always visible.
pub fn code_point(c: char) -> String {
    if c.is_ascii_graphic() {
        c.to_string()
    } else {
        format!("\\u{{{:x}}}", c as u32)
    }
}

/// `text` with every unsafe character (see [`is_unsafe_char`]) replaced by its
/// visible escape (see [`escape_char`]); every other character, including a
/// backslash, is kept as it is. Borrowed when nothing needed escaping.
///
/// This is the one function every terminal renderer uses for text that came
/// from outside, and what remote strings pass through before they are stored.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe_char(c) {
            escaped.push_str(&escape_char(c));
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// Escapes text for HTML element content and double- or single-quoted
/// attribute values: `&`, `<`, `>`, `"` and `'` become character
/// references. It escapes nothing else: text from outside goes through
/// [`escape`] first, so control and bidi characters show as visible escapes.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// JSON text (as `serde_json` writes it) with every unsafe character that
/// JSON leaves raw (DEL, C1 controls, format characters; C0 controls are
/// already escaped by every JSON writer) written as a `\uXXXX` escape
/// instead, surrogate pairs for characters beyond U+FFFF. The document means
/// the same to every JSON reader, and a terminal shows it safely.
///
/// Such characters can only appear inside JSON strings, so replacing them
/// anywhere in the text is exact.
pub fn escape_json_text(json: &str) -> Cow<'_, str> {
    // C0 controls outside strings are the document's own whitespace; inside
    // strings a JSON writer has already escaped them.
    let needs_escape = |c: char| c > '\u{7e}' && is_unsafe_char(c);
    if !json.chars().any(needs_escape) {
        return Cow::Borrowed(json);
    }
    let mut escaped = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if needs_escape(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                // Writing to a String cannot fail.
                let _ = write!(escaped, "\\u{unit:04x}");
            }
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One table for the escaping every screen relies on.
    #[test]
    fn escape_writes_every_unsafe_character_visibly() {
        let table: &[(&str, &str)] = &[
            ("plain text, stays", "plain text, stays"),
            ("", ""),
            ("naïve café — 日本語 ok", "naïve café — 日本語 ok"),
            (r"CORP\alice", r"CORP\alice"),
            ("line one\rOVERWRITTEN", "line one\\rOVERWRITTEN"),
            ("two\nlines", "two\\nlines"),
            ("tab\there", "tab\\there"),
            ("nul\u{0}", "nul\\u{0}"),
            ("bell\u{7}", "bell\\u{7}"),
            ("\u{1b}[31mred\u{1b}[0m", "\\u{1b}[31mred\\u{1b}[0m"),
            ("del\u{7f}", "del\\u{7f}"),
            ("c1 csi \u{9b}31m", "c1 csi \\u{9b}31m"),
            ("c1 nel \u{85}", "c1 nel \\u{85}"),
            (
                "c1 first \u{80} last \u{9f}",
                "c1 first \\u{80} last \\u{9f}",
            ),
            ("attached \u{202e}fdp.exe", "attached \\u{202e}fdp.exe"),
            ("lre \u{202a} pdf \u{202c}", "lre \\u{202a} pdf \\u{202c}"),
            ("isolate \u{2066}x\u{2069}", "isolate \\u{2066}x\\u{2069}"),
            (
                "lrm \u{200e} rlm \u{200f} alm \u{61c}",
                "lrm \\u{200e} rlm \\u{200f} alm \\u{61c}",
            ),
            (
                "zw\u{200b}sp\u{200c}nj\u{200d}j",
                "zw\\u{200b}sp\\u{200c}nj\\u{200d}j",
            ),
            ("word\u{2060}joiner", "word\\u{2060}joiner"),
            ("\u{feff}bom", "\\u{feff}bom"),
            ("soft\u{ad}hyphen", "soft\\u{ad}hyphen"),
            ("line\u{2028}sep\u{2029}", "line\\u{2028}sep\\u{2029}"),
            ("cgj\u{34f}", "cgj\\u{34f}"),
            ("filler\u{3164}", "filler\\u{3164}"),
            ("vs16\u{fe0f}", "vs16\\u{fe0f}"),
            ("tag\u{e0041}", "tag\\u{e0041}"),
        ];
        for (input, expected) in table {
            assert_eq!(escape(input), *expected, "escaping {input:?}");
            assert!(
                !escape(input).chars().any(is_unsafe_char),
                "{input:?} still holds an unsafe character"
            );
        }
        assert!(matches!(escape("nothing to do"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_text_keeps_its_meaning_and_loses_raw_controls() {
        let value = serde_json::json!({
            "error": "redirected to `/a\u{9b}31m`",
            "name": "\u{202e}fdp.exe",
            "del": "x\u{7f}",
            "tag": "\u{e0041}",
            "ok": "café\n",
        });
        let text = serde_json::to_string_pretty(&value).unwrap();
        let escaped = escape_json_text(&text);
        assert!(
            !escaped.chars().any(|c| c > '\u{7e}' && is_unsafe_char(c)),
            "{escaped}"
        );
        assert!(escaped.contains("\\u009b"), "{escaped}");
        assert!(escaped.contains("\\u202e"), "{escaped}");
        assert!(escaped.contains("\\udb40\\udc41"), "{escaped}");
        let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back, value);
    }
}
