//! Strict test-side parsers for the line formats, written from the specs
//! (RFC 5424 §6, the CEF specification), not from the encoders.

use custody_export::safe;

/// A message parsed by the RFC 5424 grammar.
#[derive(Debug)]
pub struct Message {
    pub priority: u32,
    pub timestamp: String,
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
    pub msgid: String,
    pub sd_id: String,
    /// The parameters in order, values un-escaped (RFC 5424) and decoded
    /// (safe text).
    pub params: Vec<(String, String)>,
    pub msg: String,
}

impl Message {
    pub fn get<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        let mut values = self.all(name);
        let first = values.next();
        assert!(values.next().is_none(), "{name} is repeated");
        first
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

fn header_token<'a>(rest: &mut &'a str, max: usize) -> &'a str {
    let (token, tail) = rest.split_once(' ').expect("a header field and a space");
    assert!(
        !token.is_empty() && token.len() <= max && token.bytes().all(|b| (33..=126).contains(&b)),
        "bad header field {token:?}"
    );
    *rest = tail;
    token
}

/// Parses one message strictly: any deviation from RFC 5424 panics.
pub fn syslog(line: &[u8]) -> Message {
    let text = std::str::from_utf8(line).expect("the message is UTF-8");
    assert!(
        !text.contains(['\n', '\r', '\0']),
        "raw control in message: {text:?}"
    );
    let rest = text.strip_prefix('<').expect("PRI starts with <");
    let (priority, rest) = rest.split_once('>').unwrap();
    assert!(priority.len() <= 3 && priority.bytes().all(|b| b.is_ascii_digit()));
    let priority: u32 = priority.parse().unwrap();
    assert!(priority <= 191);
    let mut rest = rest.strip_prefix("1 ").expect("VERSION 1");
    let timestamp = header_token(&mut rest, 64).to_owned();
    let hostname = header_token(&mut rest, 255).to_owned();
    let app_name = header_token(&mut rest, 48).to_owned();
    let procid = header_token(&mut rest, 128).to_owned();
    let msgid = header_token(&mut rest, 32).to_owned();
    // One SD-ELEMENT.
    let mut chars = rest
        .strip_prefix('[')
        .expect("an SD-ELEMENT")
        .chars()
        .peekable();
    let mut sd_id = String::new();
    while let Some(&c) = chars.peek() {
        if c == ' ' || c == ']' {
            break;
        }
        assert!(c.is_ascii_graphic() && !matches!(c, '=' | '"'));
        sd_id.push(c);
        chars.next();
    }
    let mut params = Vec::new();
    loop {
        match chars.next() {
            Some(']') => break,
            Some(' ') => {}
            other => panic!("expected SP or ] in SD-ELEMENT, got {other:?}"),
        }
        let mut name = String::new();
        loop {
            let c = chars.next().expect("PARAM-NAME ends with =");
            if c == '=' {
                break;
            }
            assert!(c.is_ascii_graphic() && !matches!(c, ']' | '"'), "{c:?}");
            name.push(c);
        }
        assert!((1..=32).contains(&name.len()), "SD-NAME {name:?}");
        assert_eq!(chars.next(), Some('"'));
        let mut value = String::new();
        loop {
            match chars.next().expect("PARAM-VALUE ends with a quote") {
                '"' => break,
                ']' => panic!("raw ] inside PARAM-VALUE"),
                '\\' => match chars.peek() {
                    // RFC 5424 §6.3.3: these three are escaped; any other
                    // backslash is a backslash.
                    Some(&escaped @ ('"' | '\\' | ']')) => {
                        value.push(escaped);
                        chars.next();
                    }
                    _ => value.push('\\'),
                },
                c => value.push(c),
            }
        }
        params.push((name, safe::decode(&value).unwrap()));
    }
    let msg: String = chars.collect();
    let msg = msg.strip_prefix(' ').expect("SP before MSG").to_owned();
    let msg = msg
        .strip_prefix('\u{feff}')
        .map_or(msg.clone(), str::to_owned);
    Message {
        priority,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        sd_id,
        params,
        msg: safe::decode(&msg).unwrap(),
    }
}

/// A CEF event: the header's seven fields and the extension's pairs, all
/// unescaped (CEF) and decoded (safe text).
#[derive(Debug)]
pub struct Cef {
    pub header: Vec<String>,
    pub pairs: Vec<(String, String)>,
}

impl Cef {
    pub fn get(&self, key: &str) -> Option<&str> {
        let mut values = self
            .pairs
            .iter()
            .filter(|(name, _)| name == key)
            .map(|(_, value)| value.as_str());
        let first = values.next();
        assert!(values.next().is_none(), "{key} is repeated");
        first
    }

    /// The value of the custom field labelled `label` (`csN` with `csNLabel`).
    pub fn labelled(&self, label: &str) -> Option<&str> {
        let (label_key, _) = self
            .pairs
            .iter()
            .find(|(key, value)| key.ends_with("Label") && value == label)?;
        self.get(label_key.strip_suffix("Label").unwrap())
    }
}

/// Parses one CEF line strictly: the prefix, seven header fields separated
/// by unescaped pipes (only `\|` and `\\` escapes), then `key=value` pairs
/// whose values allow only the `\=`, `\\`, `\n` and `\r` escapes.
pub fn cef(line: &[u8]) -> Cef {
    let text = std::str::from_utf8(line).expect("UTF-8");
    assert!(
        !text.contains(['\n', '\r', '\0']),
        "raw control in {text:?}"
    );
    let rest = text.strip_prefix("CEF:").expect("CEF: prefix");
    let mut header = Vec::new();
    let mut field = String::new();
    let mut chars = rest.chars();
    while header.len() < 7 {
        match chars.next().expect("seven header fields") {
            '\\' => match chars.next() {
                Some(c @ ('|' | '\\')) => field.push(c),
                other => panic!("invalid header escape \\{other:?} in {text:?}"),
            },
            '|' => header.push(safe::decode(&std::mem::take(&mut field)).unwrap()),
            c => field.push(c),
        }
    }
    let extension: String = chars.collect();
    // Split at unescaped `=`: the key is the word before it.
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut raw_values: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in extension.chars() {
        if escaped {
            current.push('\\');
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' {
            let (value, key) = match current.rfind(' ') {
                Some(space) => (current[..space].to_owned(), current[space + 1..].to_owned()),
                None => (String::new(), current.clone()),
            };
            assert!(
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()),
                "bad key {key:?} in {text:?}"
            );
            if let Some(last) = raw_values.last_mut() {
                *last = value;
            } else {
                assert!(value.is_empty(), "text before the first key: {value:?}");
            }
            pairs.push((key, String::new()));
            raw_values.push(String::new());
            current.clear();
        } else {
            current.push(c);
        }
    }
    assert!(!escaped, "dangling backslash");
    if let Some(last) = raw_values.last_mut() {
        *last = current;
    }
    for ((_, value), raw) in pairs.iter_mut().zip(raw_values) {
        let mut unescaped = String::new();
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('\\') => unescaped.push('\\'),
                    Some('=') => unescaped.push('='),
                    Some('n') => unescaped.push('\n'),
                    Some('r') => unescaped.push('\r'),
                    other => panic!("invalid extension escape \\{other:?} in {raw:?}"),
                }
            } else {
                unescaped.push(c);
            }
        }
        *value = safe::decode(&unescaped).unwrap();
    }
    Cef { header, pairs }
}
