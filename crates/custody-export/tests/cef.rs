//! ArcSight CEF: every kind read back by a strict parser, hostile values
//! escaped exactly (header and extension) and recovered.

#![allow(clippy::unwrap_used)]

mod support;

use custody_export::{cef, Encoder, Format};
use support::parse::cef as parse;
use support::{exported, HOSTILE};

#[test]
fn hostile_values_are_escaped_exactly() {
    let mut header = String::new();
    cef::escape_header(HOSTILE, &mut header);
    assert_eq!(
        header,
        r#"a\|b=c\\\\d"e]f[g\\nh\\ri\\u{0}j\\u{202e}k\\u{7}l naïve 日本 =\| \\\\n end"#
    );
    let mut extension = String::new();
    cef::escape_extension(HOSTILE, &mut extension);
    assert_eq!(
        extension,
        r#"a|b\=c\\\\d"e]f[g\nh\ri\\u{0}j\\u{202e}k\\u{7}l naïve 日本 \=| \\\\n end"#
    );
    for escaped in [&header, &extension] {
        assert!(!escaped.chars().any(custody_core::text::is_unsafe_char));
    }
}

#[test]
fn every_kind_is_one_cef_line_that_keeps_case_roles_and_text() {
    let encoder = Encoder::new(Format::Cef, "ledger|1=x");
    for record in exported(HOSTILE) {
        let mut out = Vec::new();
        encoder.encode(&record.record(), &mut out).unwrap();
        let line = out.strip_suffix(b"\n").expect("newline-terminated");
        let parsed = parse(line);
        let event = &record.event;
        assert_eq!(
            parsed.header,
            [
                "0",
                "Custody",
                "Custody",
                env!("CARGO_PKG_VERSION"),
                event.body.kind_name(),
                &event.body.kind_name().replace('_', " "),
                parsed.header[6].as_str(),
            ]
        );
        let severity: u8 = parsed.header[6].parse().unwrap();
        assert!(severity <= 10);
        for (key, _) in &parsed.pairs {
            assert!(cef::EXTENSION_KEYS.contains(&key.as_str()), "{key}");
        }
        assert_eq!(parsed.get("dvchost"), Some("ledger|1=x"));
        assert_eq!(parsed.get("externalId"), Some(event.event_id.as_str()));
        assert_eq!(parsed.labelled("caseId"), Some(event.case_id.as_str()));
        assert_eq!(parsed.get("suser"), Some(event.actor.principal.as_str()));
        assert_eq!(parsed.get("spriv"), Some(event.role.as_str()));
        assert_eq!(
            parsed.labelled("onBehalfOf"),
            event.actor.on_behalf_of.as_deref()
        );
        assert_eq!(
            parsed.labelled("delegationGrant"),
            event.actor.delegation_grant.as_deref()
        );
        assert_eq!(
            parsed.labelled("via"),
            Some(event.actor.via.to_string().as_str())
        );
        let roles = &record.roles;
        assert_eq!(
            parsed.labelled("requester"),
            roles.requester.as_ref().map(|p| p.principal.as_str())
        );
        let approvers: Vec<&str> = roles
            .approvers
            .iter()
            .map(|p| p.principal.as_str())
            .collect();
        assert_eq!(
            parsed.labelled("approvers"),
            (!approvers.is_empty())
                .then(|| approvers.join(","))
                .as_deref()
        );
        assert_eq!(
            parsed.labelled("executor"),
            roles.executor.as_ref().map(|p| p.principal.as_str())
        );
        assert_eq!(
            parsed.labelled("reviewer"),
            roles.reviewer.as_ref().map(|p| p.principal.as_str())
        );
        assert_eq!(
            parsed.labelled("logIndex"),
            Some(record.log_index.to_string().as_str())
        );
        assert_eq!(parsed.get("msg"), Some(event.body.summary().as_str()));
        assert_eq!(
            parsed.get("rt"),
            Some((event.recorded_at.as_micros() / 1000).to_string().as_str())
        );
    }
}

#[test]
fn free_text_survives_exactly() {
    let encoder = Encoder::new(Format::Cef, "h");
    let records = exported(HOSTILE);
    // The comment, the justification, the error: all in `reason`.
    let mut reasons = 0;
    for record in &records {
        let mut out = Vec::new();
        encoder.encode(&record.record(), &mut out).unwrap();
        let parsed = parse(out.strip_suffix(b"\n").unwrap());
        if let Some(reason) = parsed.get("reason") {
            assert_eq!(reason, HOSTILE, "{}", record.event.body.kind_name());
            reasons += 1;
        }
    }
    assert!(reasons >= 10, "only {reasons} events carried their text");
    // The evidence's file name, hostile too.
    let evidence = records
        .iter()
        .find(|record| record.event.body.kind_name() == "evidence_attached")
        .unwrap();
    let mut out = Vec::new();
    encoder.encode(&evidence.record(), &mut out).unwrap();
    let parsed = parse(out.strip_suffix(b"\n").unwrap());
    assert_eq!(
        parsed.get("fname"),
        Some(format!("report {HOSTILE}.pdf").as_str())
    );
    assert_eq!(
        parsed.get("fileHash"),
        Some(custody_core::Sha256Hash::of(b"blob").to_hex().as_str())
    );
}
