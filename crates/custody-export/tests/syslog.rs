//! The RFC 5424 syslog format: every kind, read back by a strict parser
//! written from the RFC's ABNF, and hostile values escaped exactly.

#![allow(clippy::unwrap_used)]

mod support;

use custody_export::{syslog, Encoder, Format};
use support::parse::syslog as parse;
use support::{exported, HOSTILE};

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
        // The free text whole, exactly (the summary has its first line).
        if let Some(text) = message.get("text") {
            assert_eq!(text, HOSTILE, "{}", event.body.kind_name());
        }
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

#[test]
fn long_text_is_cut_at_a_character_and_says_so() {
    let mut records = exported("x");
    let comment = records
        .iter_mut()
        .find(|record| record.event.body.kind_name() == "comment_added")
        .unwrap();
    // 600 bidi overrides, each written `\\u{202e}` (9 bytes): 5400 bytes.
    let long = "\u{202e}".repeat(600);
    comment.event.body =
        custody_core::event::EventBody::CommentAdded(custody_core::event::Comment {
            text: long.clone(),
        });
    let mut out = Vec::new();
    Encoder::new(Format::Syslog, "h")
        .encode(&comment.record(), &mut out)
        .unwrap();
    let message = parse(out.strip_suffix(b"\n").unwrap());
    let text = message.get("text").unwrap();
    assert_eq!(
        text.chars().count(),
        2048 / 9,
        "whole escaped characters only"
    );
    assert!(long.starts_with(text));
    assert_eq!(message.get("text_truncated"), Some("true"));
    assert!(out.len() < 8192, "{} bytes", out.len());
    // Short text is whole, with no marker.
    let (kept, truncated) = syslog::bounded_text("short", syslog::MAX_TEXT_PARAM_BYTES);
    assert_eq!((kept, truncated), ("short", false));
}
