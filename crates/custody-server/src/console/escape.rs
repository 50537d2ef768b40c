//! The one way text from outside reaches a page.
//!
//! maud escapes `&`, `<`, `>` and quotes. That keeps markup out, but a
//! right-to-left override (U+202E), an isolate (U+2066 to U+2069), a
//! carriage return or a zero-width character would still reach the reader
//! raw and could make a justification or a subject read as something it is
//! not. [`text`] renders every such character (the set of
//! [`custody_core::text::is_unsafe_char`], which the terminal renderers use
//! too) as its visible escape, `\u{202e}`, in a marked `<span class="esc">`,
//! so it is inert and seen. [`attr`] does the same for attribute values and
//! form fields, where no markup may appear: the escape is written as plain
//! text there.

use std::borrow::Cow;

use custody_core::text::{escape, escape_char, is_unsafe_char};
use maud::Render;

/// Text from outside, for element content.
pub struct Text<'a>(&'a str);

/// Renders `value` (anything that came from outside: names, justifications,
/// comments, remote strings) for element content.
pub fn text(value: &str) -> Text<'_> {
    Text(value)
}

/// Multi-line text from outside, for a `<pre>`: each line as [`text`]
/// renders it, the line feeds between them kept (a carriage return, or any
/// other control, is still shown escaped).
pub struct Lines<'a>(&'a str);

/// Renders `value` line by line ([`Lines`]).
pub fn lines(value: &str) -> Lines<'_> {
    Lines(value)
}

impl Render for Lines<'_> {
    fn render_to(&self, buffer: &mut String) {
        for (index, line) in self.0.split('\n').enumerate() {
            if index > 0 {
                buffer.push('\n');
            }
            Text(line).render_to(buffer);
        }
    }
}

/// Renders `value` for an attribute or a form field's value: unsafe
/// characters as their visible escapes, as plain text (maud then escapes
/// the quotes and markup characters).
pub fn attr(value: &str) -> Cow<'_, str> {
    escape(value)
}

impl Render for Text<'_> {
    fn render_to(&self, buffer: &mut String) {
        for c in self.0.chars() {
            if is_unsafe_char(c) {
                buffer.push_str("<span class=\"esc\" title=\"a control or direction character, shown escaped\">");
                // The escape is ASCII letters, digits, `\`, `{` and `}`: no markup.
                buffer.push_str(&escape_char(c));
                buffer.push_str("</span>");
                continue;
            }
            match c {
                '&' => buffer.push_str("&amp;"),
                '<' => buffer.push_str("&lt;"),
                '>' => buffer.push_str("&gt;"),
                '"' => buffer.push_str("&quot;"),
                '\'' => buffer.push_str("&#39;"),
                other => buffer.push(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_controls_and_direction_characters_are_inert_and_visible() {
        let cases = [
            ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
            ("a\u{202e}b", "a<span class=\"esc\" title=\"a control or direction character, shown escaped\">\\u{202e}</span>b"),
            ("\r", "<span class=\"esc\" title=\"a control or direction character, shown escaped\">\\r</span>"),
            ("\"x\" & 'y'", "&quot;x&quot; &amp; &#39;y&#39;"),
            ("plain", "plain"),
        ];
        for (input, expected) in cases {
            assert_eq!(text(input).render().into_string(), expected, "{input:?}");
        }
        for raw in [
            '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{200e}', '\u{200f}', '\u{61c}',
            '\r', '\u{1b}',
        ] {
            let input = format!("x{raw}y");
            let html = text(&input).render().into_string();
            assert!(!html.contains(raw), "{raw:?} reached the page raw: {html}");
            assert!(
                !attr(&input).contains(raw),
                "{raw:?} reached an attribute raw"
            );
        }
    }

    #[test]
    fn lines_keep_line_feeds_and_escape_everything_else() {
        assert_eq!(
            lines("origin\n11\r\n<root>").render().into_string(),
            "origin\n11<span class=\"esc\" title=\"a control or direction character, shown escaped\">\\r</span>\n&lt;root&gt;"
        );
        assert_eq!(lines("").render().into_string(), "");
        assert_eq!(lines("a\n").render().into_string(), "a\n");
    }
}
