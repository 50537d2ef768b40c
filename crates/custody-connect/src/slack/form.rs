//! `application/x-www-form-urlencoded` bodies, decoded strictly.
//!
//! Slack sends slash commands and interaction payloads form-encoded. A
//! lenient decoder would pass a broken escape through or replace invalid
//! UTF-8, so two different bodies could decode to one value; here either is
//! refused, and so is a field sent twice (which of the two would count is a
//! guess an attacker could exploit).

use crate::Refusal;

/// The fields of a form body, in order, names and values decoded.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    /// Decodes `body`, refusing broken escapes, invalid UTF-8 and repeated
    /// field names.
    pub(crate) fn parse(body: &[u8]) -> Result<Form, Refusal> {
        let mut fields: Vec<(String, String)> = Vec::new();
        for pair in body.split(|byte| *byte == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match pair.iter().position(|byte| *byte == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            let name = decode(name)?;
            let value = decode(value)?;
            if fields.iter().any(|(known, _)| *known == name) {
                return Err(Refusal::Malformed(format!(
                    "the form field `{}` is sent more than once",
                    custody_core::text::escape(&name)
                )));
            }
            fields.push((name, value));
        }
        Ok(Form(fields))
    }

    /// The value of `name`, if sent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of `name`, or a refusal naming the missing field.
    pub(crate) fn require(&self, name: &str, what: &str) -> Result<&str, Refusal> {
        self.get(name)
            .ok_or_else(|| Refusal::Malformed(format!("the {what} has no `{name}` field")))
    }
}

/// Decodes one name or value: `+` is a space, `%XX` a byte, and the bytes
/// must be UTF-8.
fn decode(text: &[u8]) -> Result<String, Refusal> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut index = 0;
    while index < text.len() {
        match text[index] {
            b'+' => {
                bytes.push(b' ');
                index += 1;
            }
            b'%' => {
                let high = text.get(index + 1).and_then(|digit| hex_value(*digit));
                let low = text.get(index + 2).and_then(|digit| hex_value(*digit));
                match (high, low) {
                    (Some(high), Some(low)) => bytes.push(high << 4 | low),
                    _ => {
                        return Err(Refusal::Malformed(
                            "the form body holds a `%` not followed by two hexadecimal digits"
                                .into(),
                        ))
                    }
                }
                index += 3;
            }
            byte => {
                bytes.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(bytes)
        .map_err(|_| Refusal::Malformed("the form body does not decode to UTF-8".into()))
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Encodes `value` for a form body (the inverse of the decoder: unreserved
/// characters as they are, a space as `+`, every other byte as `%XX`).
#[cfg(test)]
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_form_encoding() {
        let form = Form::parse(b"a=1&text=user%3Aalice+admins&empty=&flag&x=%E2%80%9Chi%E2%80%9D")
            .unwrap();
        assert_eq!(form.get("a"), Some("1"));
        assert_eq!(form.get("text"), Some("user:alice admins"));
        assert_eq!(form.get("empty"), Some(""));
        assert_eq!(form.get("flag"), Some(""));
        assert_eq!(form.get("x"), Some("\u{201c}hi\u{201d}"));
        assert_eq!(form.get("missing"), None);
        assert_eq!(Form::parse(b"").unwrap(), Form::default());
    }

    #[test]
    fn refuses_what_a_lenient_decoder_would_guess_at() {
        for bad in [
            &b"a=%"[..],
            b"a=%4",
            b"a=%zz",
            b"a=%FF",
            b"a=\xff",
            b"a=1&a=2",
            b"a%3D=1&a%3d=2",
        ] {
            assert!(
                matches!(Form::parse(bad), Err(Refusal::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Two names that decode alike are one name sent twice.
        assert!(Form::parse(b"te%78t=1&text=2").is_err());
    }

    #[test]
    fn encoding_round_trips() {
        for value in [
            "",
            "plain",
            "a b+c&d=e%f",
            "“smart” — quotes",
            "{\"json\": [1]}",
        ] {
            let body = format!("v={}", encode(value));
            assert_eq!(Form::parse(body.as_bytes()).unwrap().get("v"), Some(value));
        }
    }
}
