//! Media type sniffing from the first bytes of a blob.
//!
//! The result is a hint for display and triage, never a security decision:
//! anyone can write `%PDF-` at the start of a file.

/// How many leading bytes the blob stores keep for [`sniff_media_type`].
pub const SNIFF_LENGTH: usize = 512;

/// `application/pdf`
pub const PDF: &str = "application/pdf";
/// `image/png`
pub const PNG: &str = "image/png";
/// `image/jpeg`
pub const JPEG: &str = "image/jpeg";
/// `image/gif`
pub const GIF: &str = "image/gif";
/// `application/zip` (also DOCX, XLSX, ODT and other ZIP containers)
pub const ZIP: &str = "application/zip";
/// `application/gzip`
pub const GZIP: &str = "application/gzip";
/// `text/html`
pub const HTML: &str = "text/html";
/// `application/json`
pub const JSON: &str = "application/json";
/// `text/plain; charset=utf-8`
pub const TEXT: &str = "text/plain; charset=utf-8";
/// `application/octet-stream`: anything else, including empty content.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The media type that the leading bytes `head` suggest.
///
/// `head` is the start of the content (blob stores pass the first
/// [`SNIFF_LENGTH`] bytes). A UTF-8 sequence cut off at the end of `head` is
/// not held against it, since the rest may follow. Checks, in order: magic
/// numbers (PDF, PNG, JPEG, GIF, ZIP, gzip); then, for UTF-8 without NUL or
/// other binary control bytes,
/// HTML (`<!doctype html` or `<html`, any case, after leading whitespace),
/// JSON (`{` or `[` after leading whitespace) and plain text. Empty content is
/// `application/octet-stream`.
pub fn sniff_media_type(head: &[u8]) -> &'static str {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"%PDF-", PDF),
        (b"\x89PNG\r\n\x1a\n", PNG),
        (b"\xff\xd8\xff", JPEG),
        (b"GIF87a", GIF),
        (b"GIF89a", GIF),
        (b"PK\x03\x04", ZIP),
        (b"PK\x05\x06", ZIP),
        (b"\x1f\x8b", GZIP),
    ];
    if head.is_empty() {
        return OCTET_STREAM;
    }
    if let Some((_, media_type)) = MAGIC.iter().find(|(magic, _)| head.starts_with(magic)) {
        return media_type;
    }
    if !is_utf8_prefix(head) || head.iter().any(|&byte| is_binary_control_byte(byte)) {
        return OCTET_STREAM;
    }
    let text = head.strip_prefix("\u{feff}".as_bytes()).unwrap_or(head);
    let start = text
        .iter()
        .position(|byte| !byte.is_ascii_whitespace())
        .unwrap_or(text.len());
    let trimmed = &text[start..];
    if starts_with_ignoring_case(trimmed, b"<!doctype html")
        || starts_with_ignoring_case(trimmed, b"<html")
    {
        return HTML;
    }
    if trimmed.starts_with(b"{") || trimmed.starts_with(b"[") {
        return JSON;
    }
    TEXT
}

/// Whether `bytes` is valid UTF-8, or valid UTF-8 followed by the start of a
/// multi-byte sequence that was cut off.
fn is_utf8_prefix(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        // `error_len() == None` means the input ended in the middle of a
        // sequence, which is what a cut-off head looks like.
        Err(error) => error.error_len().is_none(),
    }
}

/// The control bytes that do not occur in text (the WHATWG MIME Sniffing
/// "binary data bytes"): NUL and the others except tab, line feed, form feed,
/// carriage return and escape.
fn is_binary_control_byte(byte: u8) -> bool {
    matches!(byte, 0x00..=0x08 | 0x0b | 0x0e..=0x1a | 0x1c..=0x1f)
}

fn starts_with_ignoring_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.len() >= needle.len() && haystack[..needle.len()].eq_ignore_ascii_case(needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], &str)] = &[
            (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", PDF),
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", PNG),
            (b"\xff\xd8\xff\xe0\0\x10JFIF", JPEG),
            (b"GIF89a\x01\0\x01\0", GIF),
            (b"GIF87a", GIF),
            (b"PK\x03\x04\x14\0\x06\0[Content_Types].xml", ZIP),
            (b"\x1f\x8b\x08\0", GZIP),
            (b"<!DOCTYPE html><html>", HTML),
            (b"\n  <!doctype HTML>", HTML),
            (b"<HTML lang=en>", HTML),
            (b"  {\"a\": 1}", JSON),
            (b"[1, 2]", JSON),
            (b"\xef\xbb\xbf{\"bom\": true}", JSON),
            (b"hello, world\n", TEXT),
            ("gr\u{fc}\u{df}e \u{2014} \u{1F600}".as_bytes(), TEXT),
            (b"<?xml version=\"1.0\"?>", TEXT),
            (b"text with a \0 NUL", OCTET_STREAM),
            (b"\xff\xfe not utf-8", OCTET_STREAM),
            (b"\x7fELF\x02\x01\x01", OCTET_STREAM),
            (b"tab\tand\r\nform\x0cfeed and \x1b[1m escape", TEXT),
            (b"", OCTET_STREAM),
            (b"PK", TEXT),
        ];
        for (head, expected) in cases {
            assert_eq!(
                sniff_media_type(head),
                *expected,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn a_multi_byte_character_cut_at_the_end_is_still_text() {
        let text = "caf\u{e9}".as_bytes();
        assert_eq!(sniff_media_type(&text[..text.len() - 1]), TEXT);
        // An invalid byte in the middle is not excused.
        assert_eq!(sniff_media_type(b"caf\xc3 latte"), OCTET_STREAM);
    }
}
