//! Elastic Common Schema: categorization within ECS's allowed values,
//! actor and case context in `user`, `labels`, `related` and `custody`,
//! hostile text recovered exactly from the JSON and never raw on a line.

#![allow(clippy::unwrap_used)]

mod support;

use custody_export::{Encoder, Format};
use serde_json::Value;
use support::{exported, Exported, HOSTILE};

fn documents(records: &[Exported]) -> Vec<(String, Value)> {
    let encoder = Encoder::new(Format::Ecs, "ledger-1");
    records
        .iter()
        .map(|record| {
            let mut out = Vec::new();
            encoder.encode(&record.record(), &mut out).unwrap();
            let line = String::from_utf8(out).unwrap();
            assert_eq!(line.matches('\n').count(), 1);
            assert!(line.ends_with('\n'));
            let document = serde_json::from_str(&line).unwrap();
            (line, document)
        })
        .collect()
}

/// ECS 8.x allowed values (ecs-allowed-values-event-category / -type), and
/// the types each category allows.
fn allowed(category: &str, kind: &str) -> bool {
    match category {
        "iam" => matches!(
            kind,
            "admin" | "change" | "creation" | "deletion" | "group" | "info" | "user"
        ),
        "configuration" => matches!(kind, "access" | "change" | "creation" | "deletion" | "info"),
        _ => false,
    }
}

#[test]
fn every_kind_is_categorized_with_allowed_values() {
    let records = exported(HOSTILE);
    for (record, (_, document)) in records.iter().zip(documents(&records)) {
        let event = &document["event"];
        let categories = event["category"].as_array().unwrap();
        let types = event["type"].as_array().unwrap();
        assert!(!types.is_empty());
        for category in categories {
            for kind in types {
                assert!(
                    allowed(category.as_str().unwrap(), kind.as_str().unwrap()),
                    "{}: {category} / {kind}",
                    record.event.body.kind_name()
                );
            }
        }
        assert_eq!(event["kind"], "event");
        assert_eq!(event["action"], record.event.body.kind_name());
        assert_eq!(event["id"], record.event.event_id.as_str());
        assert_eq!(event["sequence"], record.log_index);
        assert!(matches!(
            event["outcome"].as_str(),
            Some("success" | "failure")
        ));
        assert_eq!(event["created"], record.event.recorded_at.to_string());
        assert_eq!(document["@timestamp"], record.event.occurred_at.to_string());
        assert_eq!(document["ecs"]["version"], "8.17.0");
        // The stored bytes travel with the event, and their hash.
        assert_eq!(
            event["original"].as_str().unwrap().as_bytes(),
            record.bytes.as_slice()
        );
        assert_eq!(
            event["hash"],
            custody_core::Sha256Hash::of(&record.bytes).to_hex()
        );
    }
}

#[test]
fn actor_roles_and_case_survive() {
    let records = exported(HOSTILE);
    for (record, (_, document)) in records.iter().zip(documents(&records)) {
        let event = &record.event;
        let labels = &document["labels"];
        assert_eq!(document["user"]["name"], event.actor.principal.as_str());
        assert_eq!(labels["case_id"], event.case_id.as_str());
        assert_eq!(document["custody"]["case_id"], event.case_id.as_str());
        assert_eq!(labels["role"], event.role.as_str());
        assert_eq!(labels["via"], event.actor.via.to_string());
        assert_eq!(
            labels.get("on_behalf_of").and_then(Value::as_str),
            event.actor.on_behalf_of.as_deref()
        );
        let roles = &record.roles;
        let related: Vec<&str> = document["related"]["user"]
            .as_array()
            .unwrap()
            .iter()
            .map(|user| user.as_str().unwrap())
            .collect();
        for party in roles
            .requester
            .iter()
            .chain(&roles.approvers)
            .chain(&roles.executor)
            .chain(&roles.reviewer)
        {
            assert!(related.contains(&party.principal.as_str()));
        }
        assert_eq!(
            labels.get("requester").and_then(Value::as_str),
            roles.requester.as_ref().map(|p| p.principal.as_str())
        );
        assert_eq!(
            labels.get("executor").and_then(Value::as_str),
            roles.executor.as_ref().map(|p| p.principal.as_str())
        );
        assert_eq!(
            labels.get("reviewer").and_then(Value::as_str),
            roles.reviewer.as_ref().map(|p| p.principal.as_str())
        );
        let approvers: Vec<&str> = document["custody"]["approvers"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|p| p["principal"].as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        let expected: Vec<&str> = roles
            .approvers
            .iter()
            .map(|p| p.principal.as_str())
            .collect();
        assert_eq!(approvers, expected);
        if let Some(executor) = &roles.executor {
            assert_eq!(
                document["custody"]["executor"]
                    .get("on_behalf_of")
                    .and_then(Value::as_str),
                executor.on_behalf_of.as_deref()
            );
        }
        // Labels are flat strings, as ECS requires.
        for (name, value) in labels.as_object().unwrap() {
            assert!(value.is_string(), "{name}");
            assert!(!name.contains('.'), "{name}");
        }
    }
}

#[test]
fn hostile_text_is_recovered_and_never_raw() {
    let records = exported(HOSTILE);
    for (record, (line, document)) in records.iter().zip(documents(&records)) {
        assert!(
            !line
                .trim_end_matches('\n')
                .chars()
                .any(custody_core::text::is_unsafe_char),
            "{line}"
        );
        if let Some(reason) = document["event"].get("reason") {
            assert_eq!(reason, HOSTILE, "{}", record.event.body.kind_name());
        }
        if let Some(on_behalf_of) = document["labels"].get("on_behalf_of") {
            assert_eq!(
                on_behalf_of.as_str().unwrap(),
                format!("platform-team {HOSTILE}")
            );
        }
    }
}

#[test]
fn hostile_text_is_escaped_exactly() {
    let records = exported(HOSTILE);
    let (line, _) = &documents(&records[7..8])[0];
    assert_eq!(records[7].event.body.kind_name(), "comment_added");
    // JSON's own escapes for C0 controls, `\uXXXX` for the bidi override;
    // printable non-ASCII stays as it is.
    assert!(
        line.contains(
            r#""reason":"a|b=c\\d\"e]f[g\nh\ri\u0000j\u202ek\u0007l naïve 日本 =| \\n end""#
        ),
        "{line}"
    );
}

#[test]
fn an_executed_grant_names_its_target_and_a_membership_its_group() {
    let records = exported(HOSTILE);
    let documents = documents(&records);
    let execution = &documents[4].1;
    assert_eq!(
        execution["event"]["type"],
        serde_json::json!(["user", "change"])
    );
    assert_eq!(execution["user"]["target"]["name"], "bob");
    assert_eq!(execution["user"]["target"]["id"], "user:bob");
    assert_eq!(execution["labels"]["entitlement"], "role:admin");
    let groups = documents
        .iter()
        .find(|(_, document)| document["event"]["action"] == "principal_groups_changed")
        .unwrap();
    assert_eq!(
        groups.1["event"]["type"],
        serde_json::json!(["user", "group", "change"])
    );
    assert_eq!(groups.1["user"]["target"]["name"], "bob");
    assert_eq!(groups.1["group"]["name"], "admins,dev");
}
