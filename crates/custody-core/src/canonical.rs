//! The canonical encoding of hashed content: RFC 8785 (JSON Canonicalization Scheme).
//!
//! Every hashed value is serialised with `serde_json_canonicalizer`, which
//! sorts object keys by UTF-16 code units and writes numbers and strings in
//! the one form RFC 8785 allows. Hashed content never holds floats: numbers
//! are integers of at most 2^53, timestamps are fixed-width strings, and
//! change sets with floats are refused at the edge (see
//! [`crate::change_set`]).
//!
//! [`is_canonical`] checks stored bytes without re-serialising them: a
//! single allocation-free pass that accepts exactly the RFC 8785 form of
//! float-free JSON. The auditor runs it on every stored event.

use serde::Serialize;

/// Deepest nesting [`is_canonical`] accepts; deeper input is refused rather
/// than risking the stack.
pub const MAX_DEPTH: usize = 64;

/// The RFC 8785 bytes of `value`.
///
/// Serialising the crate's own types cannot fail: they hold only strings,
/// integers, booleans, arrays and maps with string keys.
///
/// The fast path serialises `value` into a `serde_json::Value`, whose maps
/// keep their keys sorted by code point, and writes it compactly; when
/// [`is_canonical`] accepts those bytes they are *the* RFC 8785 form of the
/// value (a float-free JSON value has exactly one canonical spelling, and
/// the tree holds the same value). Otherwise (a key outside the Basic
/// Multilingual Plane sorts differently in UTF-16, a float) the bytes come
/// from `serde_json_canonicalizer`, the reference. The reference's
/// property buffering cost a quarter of every append's CPU (the write-path
/// profile in docs/performance.md); the fast path about a third of it.
pub fn to_canonical_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    if let Ok(tree) = serde_json::to_value(value) {
        if let Ok(bytes) = serde_json::to_vec(&tree) {
            if is_canonical(&bytes) {
                return bytes;
            }
        }
    }
    reference_canonical_bytes(value)
}

/// The RFC 8785 bytes of `value` from `serde_json_canonicalizer` alone.
pub fn reference_canonical_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    // Safe to expect: every hashed type is built from strings, integers and
    // string-keyed maps, which serde_json always serialises.
    serde_json_canonicalizer::to_vec(value).expect("hashed types always serialise to JSON")
}

/// Whether `bytes` are exactly the RFC 8785 serialisation of some float-free
/// JSON value: no insignificant whitespace, object keys strictly increasing in
/// UTF-16 code-unit order, strings with only the escapes RFC 8785 writes,
/// integers in shortest form and of magnitude at most 2^53.
pub fn is_canonical(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let mut parser = Parser {
        bytes: text.as_bytes(),
        text,
        position: 0,
    };
    parser.value(0).is_some() && parser.position == parser.bytes.len()
}

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    position: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.position.checked_add(word.len())?;
        (self.bytes.get(self.position..end)? == word.as_bytes()).then(|| self.position = end)
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => self.string().map(|_| ()),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'-' | b'0'..=b'9' => self.integer(),
            _ => None,
        }
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        self.position += 1;
        if self.peek()? == b'}' {
            self.position += 1;
            return Some(());
        }
        let mut previous: Option<(usize, usize)> = None;
        loop {
            let key = self.string()?;
            if let Some(previous) = previous {
                if !self.key_less(previous, key) {
                    return None;
                }
            }
            previous = Some(key);
            if self.peek()? != b':' {
                return None;
            }
            self.position += 1;
            self.value(depth + 1)?;
            match self.peek()? {
                b',' => self.position += 1,
                b'}' => {
                    self.position += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        self.position += 1;
        if self.peek()? == b']' {
            self.position += 1;
            return Some(());
        }
        loop {
            self.value(depth + 1)?;
            match self.peek()? {
                b',' => self.position += 1,
                b']' => {
                    self.position += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Parses a string; returns the byte range of its contents (between the quotes).
    fn string(&mut self) -> Option<(usize, usize)> {
        if self.peek()? != b'"' {
            return None;
        }
        self.position += 1;
        let start = self.position;
        loop {
            match self.peek()? {
                b'"' => {
                    let end = self.position;
                    self.position += 1;
                    return Some((start, end));
                }
                b'\\' => {
                    self.position += 1;
                    match self.peek()? {
                        // The only two-character escapes RFC 8785 writes.
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => self.position += 1,
                        b'u' => {
                            // \u00XX, lowercase hex, only for control
                            // characters without a short escape.
                            let digits = self.bytes.get(self.position + 1..self.position + 5)?;
                            if &digits[..2] != b"00" {
                                return None;
                            }
                            let value = hex_value(digits[2])? << 4 | hex_value(digits[3])?;
                            if value >= 0x20 || matches!(value, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return None;
                            }
                            self.position += 5;
                        }
                        _ => return None,
                    }
                }
                // Raw control characters must be escaped.
                0x00..=0x1f => return None,
                _ => self.position += 1,
            }
        }
    }

    fn integer(&mut self) -> Option<()> {
        let negative = self.peek()? == b'-';
        if negative {
            self.position += 1;
        }
        let digits_start = self.position;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.position += 1;
        }
        let digits = self.text.get(digits_start..self.position)?;
        if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
            return None;
        }
        // Fractions and exponents are floats, which hashed content never holds.
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let magnitude: u64 = digits.parse().ok()?;
        // "-0" is written "0"; beyond 2^53 an IEEE double cannot hold the value.
        if (negative && magnitude == 0) || magnitude > 1 << 53 {
            return None;
        }
        Some(())
    }

    /// Whether the key at `left` sorts strictly before the key at `right` in
    /// UTF-16 code-unit order, as RFC 8785 requires.
    fn key_less(&self, left: (usize, usize), right: (usize, usize)) -> bool {
        let (Some(left), Some(right)) = (
            self.text.get(left.0..left.1),
            self.text.get(right.0..right.1),
        ) else {
            return false;
        };
        // Escapes inside keys are rare; compare decoded text when present.
        let order = if left.contains('\\') || right.contains('\\') {
            match (unescape(left), unescape(right)) {
                (Some(left), Some(right)) => left.encode_utf16().cmp(right.encode_utf16()),
                _ => return false,
            }
        } else {
            left.encode_utf16().cmp(right.encode_utf16())
        };
        order == std::cmp::Ordering::Less
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

fn unescape(text: &str) -> Option<String> {
    serde_json::from_str(&format!("\"{text}\"")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_and_strips_whitespace() {
        let value = serde_json::json!({"b": 1, "a": [true, null, "x"], "é": "\u{2028}"});
        assert_eq!(
            String::from_utf8(to_canonical_bytes(&value)).unwrap(),
            "{\"a\":[true,null,\"x\"],\"b\":1,\"é\":\"\u{2028}\"}"
        );
    }

    /// A deterministic spread of float-free JSON values: nested maps and
    /// arrays, keys and strings with escapes, non-ASCII and astral
    /// characters, integers up to 2^53 and beyond.
    fn random_value(state: &mut u64, depth: usize) -> serde_json::Value {
        fn next(state: &mut u64) -> u64 {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state
        }
        fn text(state: &mut u64, count: u64) -> String {
            const PIECES: [&str; 15] = [
                "a", "B", "é", "\u{FB01}", "😀", "\n", "\"", "\\", "/", "\u{1}", "\u{7f}",
                "\u{2028}", "key", "Z9", "",
            ];
            (0..count)
                .map(|_| PIECES[usize::try_from(next(state)).unwrap_or(0) % PIECES.len()])
                .collect()
        }
        let choice = next(state) % if depth > 3 { 5 } else { 7 };
        match choice {
            0 => serde_json::Value::Null,
            1 => serde_json::Value::Bool(next(state).is_multiple_of(2)),
            2 => serde_json::json!(i64::try_from(next(state) % (1 << 54)).unwrap_or(0) - (1 << 53)),
            3 => serde_json::json!(next(state) % 1000),
            4 => {
                let count = next(state) % 6;
                serde_json::Value::String(text(state, count))
            }
            5 => {
                let count = next(state) % 5;
                serde_json::Value::Array(
                    (0..count).map(|_| random_value(state, depth + 1)).collect(),
                )
            }
            _ => {
                let mut map = serde_json::Map::new();
                for _ in 0..next(state) % 6 {
                    let count = 1 + next(state) % 3;
                    let key = text(state, count);
                    map.insert(key, random_value(state, depth + 1));
                }
                serde_json::Value::Object(map)
            }
        }
    }

    #[test]
    fn the_fast_path_writes_exactly_what_the_reference_writes() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut fallbacks = 0;
        for _ in 0..5_000 {
            let value = random_value(&mut state, 0);
            let fast = to_canonical_bytes(&value);
            let reference = reference_canonical_bytes(&value);
            assert_eq!(
                String::from_utf8_lossy(&fast),
                String::from_utf8_lossy(&reference)
            );
            let compact = serde_json::to_vec(&value).unwrap();
            if !is_canonical(&compact) {
                fallbacks += 1;
            }
        }
        // Both paths were taken: astral keys and big integers fall back.
        assert!(fallbacks > 20, "{fallbacks}");
        // Structs serialise through the same path.
        #[derive(Serialize)]
        struct Unsorted {
            zebra: u32,
            apple: &'static str,
            middle: Vec<Option<bool>>,
        }
        let value = Unsorted {
            zebra: 1,
            apple: "😀\u{1}",
            middle: vec![Some(true), None],
        };
        assert_eq!(
            to_canonical_bytes(&value),
            reference_canonical_bytes(&value)
        );
        assert_eq!(
            String::from_utf8(to_canonical_bytes(&value)).unwrap(),
            "{\"apple\":\"😀\\u0001\",\"middle\":[true,null],\"zebra\":1}"
        );
    }

    #[test]
    fn accepts_what_the_canonicalizer_writes() {
        let values = [
            serde_json::json!({}),
            serde_json::json!([]),
            serde_json::json!({"a": {"b": [1, -2, 0, 9_007_199_254_740_992u64]}, "z": ""}),
            serde_json::json!({"text": "tab\there \"quoted\" back\\slash \u{1} \u{1f} \u{7f} / é 😀"}),
            // U+FB01 sorts after U+1F600 in UTF-8 but before it in UTF-16.
            serde_json::json!({"\u{1F600}": 1, "\u{FB01}": 2, "a\nb": 3}),
        ];
        for value in values {
            let bytes = to_canonical_bytes(&value);
            assert!(is_canonical(&bytes), "{}", String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn refuses_every_other_form() {
        for text in [
            "",
            " {}",
            "{} ",
            "{ }",
            "{\"a\": 1}",
            "{\"b\":1,\"a\":2}",
            "{\"a\":1,\"a\":2}",
            "[1 ,2]",
            "01",
            "-0",
            "1.0",
            "1e3",
            "9007199254740993",
            "\"\\u0041\"",
            "\"\\u000a\"",
            "\"\\u001F\"",
            "\"\\/\"",
            "\"\u{1}\"",
            "\"unterminated",
            "tru",
            "{\"a\":1,}",
            "[1,]",
            "nul",
            "{\"\u{FB01}\":1,\"\u{1F600}\":2}",
        ] {
            assert!(!is_canonical(text.as_bytes()), "accepted {text:?}");
        }
        assert!(!is_canonical(&[b'"', 0xff, b'"']));
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert!(!is_canonical(deep.as_bytes()));
    }
}
