//! Every event kind, exported in every format; and a check that fails when
//! `EventBody` gains a kind the fixtures (and so these tests) do not build.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use custody_export::{CaseRoles, Encoder, Format, Record};
use support::{all_kind_names, bodies, exported, parse, HOSTILE};

#[test]
fn every_kind_is_built_by_the_fixtures() {
    let every: BTreeSet<String> = all_kind_names().into_iter().collect();
    assert!(every.len() >= 31, "serde listed {every:?}");
    let built: BTreeSet<String> = bodies(HOSTILE)
        .iter()
        .map(|(body, _, _)| body.kind_name().to_owned())
        .collect();
    let missing: Vec<&String> = every.difference(&built).collect();
    assert!(
        missing.is_empty(),
        "EventBody kinds with no fixture in tests/support/mod.rs (add one, and map it in every format): {missing:?}"
    );
    assert_eq!(built.len(), bodies(HOSTILE).len(), "a kind is built twice");
}

#[test]
fn every_kind_encodes_in_every_format() {
    let records = exported(HOSTILE);
    for format in Format::ALL {
        let encoder = Encoder::new(format, "ledger-1");
        let mut stream = Vec::new();
        for record in &records {
            let before = stream.len();
            encoder
                .encode(&record.record(), &mut stream)
                .unwrap_or_else(|error| panic!("{format}: {error}"));
            let line = &stream[before..];
            assert_eq!(
                line.iter().filter(|&&byte| byte == b'\n').count(),
                1,
                "{format} {}: one line, newline-terminated",
                record.event.body.kind_name()
            );
            assert_eq!(line.last(), Some(&b'\n'));
            assert!(!line.contains(&b'\r') && !line.contains(&0));
            let text = std::str::from_utf8(line).unwrap();
            // The case ID is in every format, in clear.
            assert!(
                text.contains(record.event.case_id.as_str()),
                "{format} lost the case ID"
            );
            if format != Format::Jsonl {
                // Only jsonl keeps the stored bytes as they are (bidi
                // controls included, escaped by canonical JSON's rules).
                // Syslog starts a UTF-8 MSG with the BOM, as RFC 5424
                // §6.4 requires; nothing else may be invisible.
                let text = text.replacen("] \u{feff}", "] ", 1);
                assert!(
                    !text
                        .trim_end()
                        .chars()
                        .any(custody_core::text::is_unsafe_char),
                    "{format}: {text}"
                );
            }
        }
        assert_eq!(
            String::from_utf8(stream).unwrap().lines().count(),
            records.len()
        );
    }
}

#[test]
fn jsonl_lines_are_the_stored_bytes() {
    let records = exported(HOSTILE);
    let encoder = Encoder::new(Format::Jsonl, "ignored");
    let mut stream = Vec::new();
    for record in &records {
        encoder.encode(&record.record(), &mut stream).unwrap();
    }
    for (line, record) in stream.split(|&byte| byte == b'\n').zip(&records) {
        assert_eq!(line, record.bytes.as_slice());
        // An auditor's check: the line hashes to what the next event links to.
        assert_eq!(custody_core::Sha256Hash::of(line), record.event.hash());
        assert_eq!(custody_core::Event::decode(line).unwrap(), record.event);
    }
    // Bytes that hold a raw line break are refused: they are not an event.
    let mut broken = records[0].bytes.clone();
    broken.insert(1, b'\n');
    let record = Record {
        log_index: 7,
        event: &records[0].event,
        bytes: &broken,
        roles: &records[0].roles,
    };
    let error = encoder.encode(&record, &mut Vec::new()).unwrap_err();
    assert!(error.to_string().contains("log index 7"), "{error}");
}

/// Brief invariant 9: the requester, the approvers, the executor, the
/// reviewer, the on-behalf-of and the case ID survive every format that can
/// carry them; read back with each format's own parser.
#[test]
fn the_actor_context_survives_every_format() {
    let records = exported(HOSTILE);
    let last = records.last().unwrap();
    let on_behalf_of = format!("platform-team {HOSTILE}");
    let expected_approvers = ["carol", "dave@acme", "erin"];
    for format in Format::ALL {
        let mut out = Vec::new();
        Encoder::new(format, "h")
            .encode(&last.record(), &mut out)
            .unwrap();
        let line = out.strip_suffix(b"\n").unwrap();
        let (requester, approvers, executor, reviewer, executor_on_behalf_of, case): (
            String,
            Vec<String>,
            String,
            String,
            Option<String>,
            String,
        ) = match format {
            Format::Syslog => {
                let message = parse::syslog(line);
                (
                    message.get("requester").unwrap().to_owned(),
                    message.all("approver").map(str::to_owned).collect(),
                    message.get("executor").unwrap().to_owned(),
                    message.get("reviewer").unwrap().to_owned(),
                    message.get("executor_on_behalf_of").map(str::to_owned),
                    message.get("case_id").unwrap().to_owned(),
                )
            }
            Format::Cef => {
                let cef = parse::cef(line);
                (
                    cef.labelled("requester").unwrap().to_owned(),
                    cef.labelled("approvers")
                        .unwrap()
                        .split(',')
                        .map(str::to_owned)
                        .collect(),
                    cef.labelled("executor").unwrap().to_owned(),
                    cef.labelled("reviewer").unwrap().to_owned(),
                    // CEF has no room for the roles' on-behalf-of (docs/export.md).
                    None,
                    cef.labelled("caseId").unwrap().to_owned(),
                )
            }
            Format::Ocsf | Format::Ecs | Format::CloudEvents => {
                let document: serde_json::Value = serde_json::from_slice(line).unwrap();
                let roles = match format {
                    Format::Ocsf => document["unmapped"]["custody"].clone(),
                    Format::Ecs => document["custody"].clone(),
                    _ => document["data"]["roles"].clone(),
                };
                let case = match format {
                    Format::Ocsf => document["metadata"]["correlation_uid"].clone(),
                    Format::Ecs => document["labels"]["case_id"].clone(),
                    _ => document["subject"].clone(),
                };
                (
                    roles["requester"]["principal"].as_str().unwrap().to_owned(),
                    roles["approvers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|party| party["principal"].as_str().unwrap().to_owned())
                        .collect(),
                    roles["executor"]["principal"].as_str().unwrap().to_owned(),
                    roles["reviewer"]["principal"].as_str().unwrap().to_owned(),
                    roles["executor"]["on_behalf_of"]
                        .as_str()
                        .map(str::to_owned),
                    case.as_str().unwrap().to_owned(),
                )
            }
            Format::Jsonl => {
                // The stored event only: its own actor and role. The case's
                // other roles are in its other events (docs/export.md).
                let event = custody_core::Event::decode(line).unwrap();
                assert_eq!(event.case_id.as_str(), support::CASE);
                continue;
            }
        };
        assert_eq!(case, support::CASE, "{format}");
        assert_eq!(requester, "alice", "{format}");
        assert_eq!(approvers, expected_approvers, "{format}");
        assert_eq!(executor, "vic", "{format}");
        assert_eq!(reviewer, "rita", "{format}");
        if format != Format::Cef {
            // The last execution was vic's own (no vendor): check the
            // vendor's instead on the approver, where formats carry it.
            assert_eq!(executor_on_behalf_of, None, "{format}");
        }
    }
    // The vendor's on-behalf-of, at its own event, in every format.
    let vendor = &records[4];
    for format in Format::ALL {
        let mut out = Vec::new();
        Encoder::new(format, "h")
            .encode(&vendor.record(), &mut out)
            .unwrap();
        let line = out.strip_suffix(b"\n").unwrap();
        let carried = match format {
            Format::Syslog => parse::syslog(line).get("on_behalf_of").unwrap().to_owned(),
            Format::Cef => parse::cef(line).labelled("onBehalfOf").unwrap().to_owned(),
            Format::Jsonl => custody_core::Event::decode(line)
                .unwrap()
                .actor
                .on_behalf_of
                .unwrap(),
            Format::Ocsf => {
                let document: serde_json::Value = serde_json::from_slice(line).unwrap();
                document["unmapped"]["custody"]["actor"]["on_behalf_of"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            Format::Ecs => {
                let document: serde_json::Value = serde_json::from_slice(line).unwrap();
                document["labels"]["on_behalf_of"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            Format::CloudEvents => {
                let document: serde_json::Value = serde_json::from_slice(line).unwrap();
                let claims: serde_json::Value =
                    serde_json::from_str(document["authclaims"].as_str().unwrap()).unwrap();
                claims["on_behalf_of"].as_str().unwrap().to_owned()
            }
        };
        assert_eq!(carried, on_behalf_of, "{format}");
    }
}

#[test]
fn roles_tracked_across_a_resumed_export_are_the_same() {
    // A tracker seeded with the earlier events (as a resumed export seeds
    // it) gives the same roles as one that saw them all.
    let events = support::events(HOSTILE);
    let mut whole = CaseRoles::new(4);
    let mut expected = Vec::new();
    for event in &events {
        expected.push(whole.observe(event).clone());
    }
    let split = 10;
    let mut resumed = CaseRoles::new(4);
    assert!(resumed.missing(&events[split]));
    resumed.seed(events[split].case_id.as_str(), &events[..split]);
    for (event, expected) in events[split..].iter().zip(&expected[split..]) {
        assert!(!resumed.missing(event));
        assert_eq!(resumed.observe(event), expected);
    }
}
