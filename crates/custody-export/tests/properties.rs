//! Any text at all, put where an event holds free text, comes back exactly
//! from every format (through each format's own parser) and never reaches a
//! line raw.

#![allow(clippy::unwrap_used)]

mod support;

use custody_core::event::{Comment, EventBody};
use custody_export::{safe, Encoder, Format};
use proptest::prelude::*;
use support::{exported, parse};

/// Text from the whole of Unicode, weighted towards what escaping is about.
fn text() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '|',
        '=',
        '\\',
        '"',
        ']',
        '[',
        '\n',
        '\r',
        '\t',
        '\0',
        '\u{7}',
        '\u{1b}',
        '\u{7f}',
        '\u{85}',
        '\u{9b}',
        '\u{202e}',
        '\u{2066}',
        '\u{200b}',
        '\u{feff}',
        '\u{2028}',
        'é',
        '日',
        '\u{1f600}',
        '\u{e0041}',
        ' ',
        'n',
        'u',
        '{',
        '}',
    ]);
    prop::collection::vec(prop_oneof![3 => special, 1 => any::<char>()], 0..64)
        .prop_map(|chars| chars.into_iter().collect())
}

fn comment_record(text: &str) -> support::Exported {
    let mut record = exported("x")
        .into_iter()
        .find(|record| record.event.body.kind_name() == "comment_added")
        .unwrap();
    record.event.body = EventBody::CommentAdded(Comment {
        text: text.to_owned(),
    });
    record.bytes = record.event.canonical_bytes();
    record
}

fn encode(format: Format, record: &support::Exported) -> Vec<u8> {
    let mut out = Vec::new();
    Encoder::new(format, "h")
        .encode(&record.record(), &mut out)
        .unwrap();
    let line = out.strip_suffix(b"\n").unwrap().to_vec();
    assert!(!line.contains(&b'\n'));
    line
}

fn no_raw_unsafe(line: &[u8]) -> bool {
    let text = std::str::from_utf8(line)
        .unwrap()
        .replacen("] \u{feff}", "] ", 1);
    !text.chars().any(custody_core::text::is_unsafe_char)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn safe_text_round_trips(text in text()) {
        let encoded = safe::encode(&text);
        prop_assert!(!encoded.chars().any(custody_core::text::is_unsafe_char));
        prop_assert_eq!(safe::decode(&encoded).unwrap(), text);
    }

    #[test]
    fn syslog_returns_any_text(text in text()) {
        let record = comment_record(&text);
        let line = encode(Format::Syslog, &record);
        prop_assert!(no_raw_unsafe(&line));
        let message = parse::syslog(&line);
        prop_assert_eq!(message.get("text"), Some(text.as_str()));
        prop_assert_eq!(message.msg, record.event.body.summary());
    }

    #[test]
    fn cef_returns_any_text(text in text()) {
        let record = comment_record(&text);
        let line = encode(Format::Cef, &record);
        prop_assert!(no_raw_unsafe(&line));
        let cef = parse::cef(&line);
        prop_assert_eq!(cef.get("reason"), Some(text.as_str()));
        let summary = record.event.body.summary();
        prop_assert_eq!(cef.get("msg"), Some(summary.as_str()));
    }

    #[test]
    fn json_formats_return_any_text(text in text()) {
        let record = comment_record(&text);
        for format in [Format::Ocsf, Format::Ecs, Format::CloudEvents] {
            let line = encode(format, &record);
            prop_assert!(no_raw_unsafe(&line), "{}", format);
            let document: serde_json::Value = serde_json::from_slice(&line).unwrap();
            let carried = match format {
                Format::Ocsf => document["comment"].clone(),
                Format::Ecs => document["event"]["reason"].clone(),
                _ => document["data"]["event"]["payload"]["text"].clone(),
            };
            prop_assert_eq!(carried.as_str(), Some(text.as_str()), "{}", format);
        }
    }
}

/// Regression: DEL is ASCII, and a fast path that skipped the escaping of
/// all-ASCII JSON lines let it through raw (found by the property above).
#[test]
fn del_is_escaped_in_json_lines() {
    let record = comment_record("del\u{7f}");
    for format in [Format::Ocsf, Format::Ecs, Format::CloudEvents] {
        let line = String::from_utf8(encode(format, &record)).unwrap();
        assert!(!line.contains('\u{7f}'), "{format}: {line}");
        assert!(line.contains("del\\u007f"), "{format}: {line}");
    }
}
