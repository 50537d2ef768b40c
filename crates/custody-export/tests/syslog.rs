//! The RFC 5424 syslog format: every kind, read back by a strict parser
//! written from the RFC's ABNF, and hostile values escaped exactly.

#![allow(clippy::unwrap_used)]

mod support;

use custody_export::{safe, syslog, Encoder, Format};
use support::{exported, HOSTILE};

/// A message parsed by the RFC 5424 grammar.
#[derive(Debug)]
struct Message {
    priority: u32,
    timestamp: String,
    hostname: String,
    app_name: String,
    procid: String,
    msgid: String,
    sd_id: String,
    /// The parameters in order, values un-escaped (RFC 5424) and decoded
    /// (safe text).
    params: Vec<(String, String)>,
    msg: String,
}

impl Message {
    fn get<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        let mut values = self.all(name);
        let first = values.next();
        assert!(values.next().is_none(), "{name} is repeated");
        first
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
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
fn parse(line: &[u8]) -> Message {
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

#[test]
fn every_kind_is_one_rfc5424_line_that_keeps_case_and_roles() {
    let encoder = Encoder::new(Format::Syslog, "ledger-1.example");
    for record in exported(HOSTILE) {
        let mut out = Vec::new();
        encoder.encode(&record.record(), &mut out).unwrap();
        let line = out.strip_suffix(b"\n").expect("newline-terminated");
        assert!(!line.contains(&b'\n'));
        let message = parse(line);
        let event = &record.event;
        assert_eq!(message.priority / 8, 10, "facility authpriv");
        assert_eq!(message.timestamp, event.recorded_at.to_string());
        assert_eq!(message.hostname, "ledger-1.example");
        assert_eq!(message.app_name, "custody");
        assert_eq!(message.procid, "-");
        assert_eq!(message.msgid, event.body.kind_name());
        assert_eq!(message.sd_id, "custody@32473");
        assert_eq!(message.get("case_id"), Some(event.case_id.as_str()));
        assert_eq!(message.get("event_id"), Some(event.event_id.as_str()));
        assert_eq!(message.get("seq"), Some(event.seq.to_string().as_str()));
        assert_eq!(
            message.get("log_index"),
            Some(record.log_index.to_string().as_str())
        );
        assert_eq!(message.get("role"), Some(event.role.as_str()));
        assert_eq!(message.get("actor"), Some(event.actor.principal.as_str()));
        assert_eq!(
            message.get("on_behalf_of"),
            event.actor.on_behalf_of.as_deref()
        );
        assert_eq!(
            message.get("delegation_grant"),
            event.actor.delegation_grant.as_deref()
        );
        assert_eq!(
            message.get("via"),
            Some(event.actor.via.to_string().as_str())
        );
        let roles = &record.roles;
        assert_eq!(
            message.get("requester"),
            roles.requester.as_ref().map(|p| p.principal.as_str())
        );
        let approvers: Vec<&str> = message.all("approver").collect();
        let expected: Vec<&str> = roles
            .approvers
            .iter()
            .map(|p| p.principal.as_str())
            .collect();
        assert_eq!(approvers, expected);
        let on_behalf: Vec<&str> = message.all("approver_on_behalf_of").collect();
        let expected: Vec<&str> = roles
            .approvers
            .iter()
            .map(|p| p.on_behalf_of.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(on_behalf, expected);
        assert_eq!(
            message.get("executor"),
            roles.executor.as_ref().map(|p| p.principal.as_str())
        );
        assert_eq!(
            message.get("executor_on_behalf_of"),
            roles
                .executor
                .as_ref()
                .and_then(|p| p.on_behalf_of.as_deref())
        );
        assert_eq!(
            message.get("reviewer"),
            roles.reviewer.as_ref().map(|p| p.principal.as_str())
        );
        assert_eq!(message.get("subject"), Some("user:bob"));
        assert_eq!(message.msg, event.body.summary());
        for (name, _) in &message.params {
            assert!(syslog::PARAMETERS.contains(&name.as_str()), "{name}");
        }
    }
}

#[test]
fn the_last_event_carries_all_four_roles() {
    let records = exported(HOSTILE);
    let last = records.last().unwrap();
    let encoder = Encoder::new(Format::Syslog, "h");
    let mut out = Vec::new();
    encoder.encode(&last.record(), &mut out).unwrap();
    let message = parse(out.strip_suffix(b"\n").unwrap());
    assert_eq!(message.get("requester"), Some("alice"));
    assert_eq!(
        message.all("approver").collect::<Vec<_>>(),
        ["carol", "dave@acme", "erin"]
    );
    assert_eq!(
        message.all("approver_on_behalf_of").collect::<Vec<_>>(),
        ["", &format!("platform-team {HOSTILE}"), ""]
    );
    assert_eq!(
        message.all("approver_delegation_grant").collect::<Vec<_>>(),
        ["", "dg_0001", ""]
    );
    assert_eq!(message.get("executor"), Some("vic"));
    assert_eq!(message.get("reviewer"), Some("rita"));
}

#[test]
fn hostile_values_are_escaped_exactly() {
    let mut out = String::new();
    syslog::escape_param_value(HOSTILE, &mut out);
    assert_eq!(
        out,
        r#"a|b=c\\\\d\"e\]f[g\\nh\\ri\\u{0}j\\u{202e}k\\u{7}l naïve 日本 =| \\\\n end"#
    );
    // Nothing a terminal or a line-based reader would act on is left raw.
    assert!(!out.chars().any(custody_core::text::is_unsafe_char));
}

#[test]
fn the_host_is_reduced_to_printable_ascii() {
    let records = exported("x");
    for (host, expected) in [
        ("ledger 1\n", "ledger1"),
        ("", "-"),
        ("日本", "-"),
        (&"h".repeat(300) as &str, &"h".repeat(255) as &str),
    ] {
        let mut out = Vec::new();
        Encoder::new(Format::Syslog, host)
            .encode(&records[0].record(), &mut out)
            .unwrap();
        assert_eq!(parse(out.strip_suffix(b"\n").unwrap()).hostname, expected);
    }
}

#[test]
fn octet_counting_frames_the_message_length() {
    let mut out = Vec::new();
    syslog::frame_octet_counted("<86>1 - - - - - - é".as_bytes(), &mut out);
    assert_eq!(out, "20 <86>1 - - - - - - é".as_bytes());
    let records = exported(HOSTILE);
    let encoder = Encoder::new(Format::Syslog, "h");
    let mut message = Vec::new();
    encoder.encode_syslog_message(&records[1].record(), &mut message);
    let mut framed = Vec::new();
    syslog::frame_octet_counted(&message, &mut framed);
    let (length, body) = std::str::from_utf8(&framed)
        .unwrap()
        .split_once(' ')
        .unwrap();
    assert_eq!(length.parse::<usize>().unwrap(), body.len());
    parse(body.as_bytes());
}

#[test]
fn every_parameter_name_is_an_sd_name() {
    for name in syslog::PARAMETERS {
        assert!(syslog::is_sd_name(name), "{name}");
    }
    for bad in ["", "a=b", "a b", "a]", "a\"", &"n".repeat(33), "é"] {
        assert!(!syslog::is_sd_name(bad), "{bad:?}");
    }
}
