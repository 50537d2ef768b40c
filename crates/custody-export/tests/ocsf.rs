//! The OCSF 1.8.0 format: every event kind, and executed changes of every
//! shape, validate against the OCSF schemas with the `jsonschema` Python
//! package (a maintained Draft 2020-12 validator); classes, activities and
//! the actor context are checked against the mapping documented in
//! docs/export.md.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use custody_core::event::{EventBody, Execution};
use custody_core::model::ChangeKind;
use custody_export::{Encoder, Format};
use serde_json::Value;
use support::{exported, Exported, HOSTILE};

fn schema_dir() -> PathBuf {
    // ../shared/testdata relative to the project root (see tests/README.md).
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/ocsf-1.8.0")
}

/// Runs the Python validator over `lines`; returns its verdict and output.
fn validate(lines: &[u8]) -> (bool, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/validate_ocsf.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(schema_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (cargo xtask test installs what the OCSF test needs)");
    child.stdin.take().unwrap().write_all(lines).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !text.contains("ModuleNotFoundError"),
        "the Python package jsonschema is missing: run `cargo xtask test` (it installs it) \
         or `pip install --user jsonschema`\n{text}"
    );
    assert!(
        output.status.code() == Some(0) || output.status.code() == Some(1),
        "the validator failed to run:\n{text}"
    );
    (output.status.success(), text)
}

fn encode(records: &[Exported]) -> (Vec<u8>, Vec<Value>) {
    let encoder = Encoder::new(Format::Ocsf, "ledger-1");
    let mut out = Vec::new();
    let mut documents = Vec::new();
    for record in records {
        let start = out.len();
        encoder.encode(&record.record(), &mut out).unwrap();
        let line = &out[start..];
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|&&byte| byte == b'\n').count(), 1);
        documents.push(serde_json::from_slice(line).unwrap());
    }
    (out, documents)
}

/// Executions of every change kind on every subject shape, so that every
/// branch of the class mapping is exported.
fn executions() -> Vec<Exported> {
    let mut records = Vec::new();
    let subjects = [
        "user:bob",
        "service_account:ci",
        "api_key:deploy",
        "token:pat-1",
        "role:auditor",
        "group:ops",
        "workload:spiffe-x",
    ];
    let mut template = exported(HOSTILE).swap_remove(4);
    assert!(matches!(
        template.event.body,
        EventBody::ExecutionCompleted(_)
    ));
    for subject in subjects {
        for kind in [
            ChangeKind::Grant,
            ChangeKind::Revoke,
            ChangeKind::Create,
            ChangeKind::Rotate,
            ChangeKind::Delete,
            ChangeKind::Modify,
        ] {
            let mut change = support::change(kind, subject);
            if subject == "user:bob" && kind == ChangeKind::Revoke {
                // A membership: the entitlement names a group.
                change = custody_core::model::Change::new(
                    subject.parse().unwrap(),
                    kind,
                    "group:admins".into(),
                    None,
                    None,
                )
                .unwrap();
            }
            template.event.body = EventBody::ExecutionCompleted(Execution {
                change_set: None,
                change_set_hash: None,
                comment: None,
                applied: Some(change),
            });
            template.bytes = template.event.canonical_bytes();
            records.push(Exported {
                log_index: template.log_index,
                event: template.event.clone(),
                bytes: template.bytes.clone(),
                roles: template.roles.clone(),
            });
        }
    }
    records
}

#[test]
fn every_event_validates_against_the_ocsf_schemas() {
    let mut records = exported(HOSTILE);
    records.extend(exported("plain text"));
    records.extend(executions());
    let (lines, documents) = encode(&records);
    let (valid, report) = validate(&lines);
    assert!(valid, "OCSF schema violations:\n{report}");
    assert!(
        report.contains(&format!("checked {} events, 0 errors", records.len())),
        "{report}"
    );
    let classes: std::collections::BTreeSet<u64> = documents
        .iter()
        .map(|document| document["class_uid"].as_u64().unwrap())
        .collect();
    assert_eq!(
        classes.into_iter().collect::<Vec<_>>(),
        [3001, 3004, 3005, 3006]
    );
}

/// A named way to break a document.
type Breakage = (&'static str, fn(&mut Value));

#[test]
fn the_validator_rejects_what_breaks_the_schema() {
    let (lines, documents) = encode(&exported("x")[..1]);
    assert!(validate(&lines).0);
    let breakages: [Breakage; 5] = [
        ("unknown attribute", |d| d["not_ocsf"] = Value::from(1)),
        ("a null", |d| d["message"] = Value::Null),
        ("a missing required object", |d| {
            d.as_object_mut().unwrap().remove("entity");
        }),
        ("a wrong activity", |d| d["activity_id"] = Value::from(42)),
        ("an unknown metadata attribute", |d| {
            d["metadata"]["custody"] = Value::from("x")
        }),
    ];
    // One run for all of them: line 1 is the valid document, line n + 2 the
    // n-th breakage; each broken line must be reported, the valid one not.
    let mut input = format!("{}\n", documents[0]);
    for (_, breakage) in &breakages {
        let mut document = documents[0].clone();
        breakage(&mut document);
        input.push_str(&format!("{document}\n"));
    }
    let (valid, report) = validate(input.as_bytes());
    assert!(!valid, "{report}");
    assert!(
        !report.lines().any(|line| line.starts_with("1:")),
        "{report}"
    );
    for (index, (what, _)) in breakages.iter().enumerate() {
        let prefix = format!("{}:", index + 2);
        assert!(
            report.lines().any(|line| line.starts_with(&prefix)),
            "{what} was accepted:\n{report}"
        );
    }
}

/// The mapping table of docs/export.md, written out independently of the code.
fn expected_class(kind: &str) -> (u64, u64) {
    match kind {
        "request_created" => (3004, 1),
        // The template grants role:admin to user:bob: privileges assigned.
        "execution_completed" | "execution_failed" => (3005, 1),
        "revocation_executed" => (3005, 2),
        // What a connector saw done: the template's grant, like an execution.
        "execution_observed" => (3005, 1),
        "principal_added" => (3001, 1),
        // dev → admins, dev: a membership added.
        "principal_groups_changed" => (3006, 3),
        "token_issued" | "token_revoked" => (3001, 99),
        "identity_mapped" | "identity_unmapped" => (3001, 99),
        "delegation_granted" => (3005, 1),
        "delegation_revoked" => (3004, 4),
        // The fixture's policy has a predecessor: an update.
        "policy_adopted" => (3004, 3),
        _ => (3004, 3),
    }
}

#[test]
fn classes_activities_and_ids_are_consistent() {
    let records = exported(HOSTILE);
    let (_, documents) = encode(&records);
    for (record, document) in records.iter().zip(&documents) {
        let kind = record.event.body.kind_name();
        let class = document["class_uid"].as_u64().unwrap();
        let activity = document["activity_id"].as_u64().unwrap();
        assert_eq!((class, activity), expected_class(kind), "{kind}");
        assert_eq!(
            document["type_uid"].as_u64().unwrap(),
            class * 100 + activity
        );
        assert_eq!(document["category_uid"].as_u64().unwrap(), class / 1000);
        assert_eq!(document["category_name"], "Identity & Access Management");
        let class_name = match class {
            3001 => "Account Change",
            3004 => "Entity Management",
            3005 => "User Access Management",
            3006 => "Group Management",
            other => panic!("unexpected class {other}"),
        };
        assert_eq!(document["class_name"], class_name);
        assert_eq!(
            document["type_name"],
            format!(
                "{class_name}: {}",
                document["activity_name"].as_str().unwrap()
            )
        );
    }
    // Executed changes of each shape land in the class that fits.
    let expected: &[(&str, ChangeKind, u64, u64)] = &[
        ("user:bob", ChangeKind::Grant, 3005, 1),
        ("user:bob", ChangeKind::Revoke, 3006, 4),
        ("user:bob", ChangeKind::Create, 3001, 1),
        ("user:bob", ChangeKind::Delete, 3001, 6),
        ("api_key:deploy", ChangeKind::Rotate, 3001, 99),
        ("token:pat-1", ChangeKind::Create, 3001, 1),
        ("service_account:ci", ChangeKind::Modify, 3001, 99),
        ("group:ops", ChangeKind::Grant, 3006, 1),
        ("group:ops", ChangeKind::Revoke, 3006, 2),
        ("group:ops", ChangeKind::Create, 3006, 6),
        ("group:ops", ChangeKind::Delete, 3006, 5),
        ("role:auditor", ChangeKind::Create, 3004, 1),
        ("role:auditor", ChangeKind::Grant, 3005, 1),
    ];
    let records = executions();
    let (_, documents) = encode(&records);
    for (subject, kind, class, activity) in expected {
        let document = records
            .iter()
            .zip(&documents)
            .find(|(record, _)| match &record.event.body {
                EventBody::ExecutionCompleted(execution) => {
                    let applied = execution.applied.as_ref().unwrap();
                    applied.subject().to_string() == *subject && applied.kind() == *kind
                }
                _ => false,
            })
            .unwrap()
            .1;
        assert_eq!(
            (
                document["class_uid"].as_u64().unwrap(),
                document["activity_id"].as_u64().unwrap()
            ),
            (*class, *activity),
            "{subject} {kind:?}"
        );
        assert_eq!(
            document["type_uid"].as_u64().unwrap(),
            class * 100 + activity
        );
    }
}

#[test]
fn case_event_and_actor_context_survive() {
    let records = exported(HOSTILE);
    let (_, documents) = encode(&records);
    for (record, document) in records.iter().zip(&documents) {
        let event = &record.event;
        let metadata = &document["metadata"];
        assert_eq!(metadata["uid"], event.event_id.as_str());
        assert_eq!(metadata["correlation_uid"], event.case_id.as_str());
        assert_eq!(metadata["sequence"], record.log_index);
        assert_eq!(metadata["version"], "1.8.0");
        assert_eq!(
            document["actor"]["user"]["uid"],
            event.actor.principal.as_str()
        );
        assert_eq!(document["actor"]["invoked_by"], event.actor.via.to_string());
        let tags = metadata["tags"].as_array().unwrap();
        let tag = |name: &str| {
            tags.iter()
                .find(|tag| tag["name"] == name)
                .map(|tag| tag.get("value").or(tag.get("values")).unwrap().clone())
        };
        assert_eq!(tag("role"), Some(Value::from(event.role.as_str())));
        assert_eq!(
            tag("on_behalf_of"),
            event.actor.on_behalf_of.clone().map(Value::from)
        );
        let roles = &record.roles;
        assert_eq!(
            tag("requester"),
            roles
                .requester
                .as_ref()
                .map(|p| Value::from(p.principal.clone()))
        );
        assert_eq!(
            tag("executor"),
            roles
                .executor
                .as_ref()
                .map(|p| Value::from(p.principal.clone()))
        );
        assert_eq!(
            tag("reviewer"),
            roles
                .reviewer
                .as_ref()
                .map(|p| Value::from(p.principal.clone()))
        );
        let unmapped = &document["unmapped"]["custody"];
        assert_eq!(
            unmapped["approvers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|party| party["principal"].as_str().unwrap())
                .collect::<Vec<_>>(),
            roles
                .approvers
                .iter()
                .map(|party| party.principal.as_str())
                .collect::<Vec<_>>()
        );
        if let Some(executor) = &roles.executor {
            assert_eq!(
                unmapped["executor"]["on_behalf_of"],
                executor
                    .on_behalf_of
                    .clone()
                    .map_or(Value::Null, Value::from)
            );
        }
        // The event's own bytes travel with it, hash included.
        assert_eq!(
            document["raw_data"].as_str().unwrap().as_bytes(),
            record.bytes.as_slice()
        );
        assert_eq!(
            document["raw_data_hash"]["value"],
            custody_core::Sha256Hash::of(&record.bytes).to_hex()
        );
    }
    // The vendor's delegation: grant and on-behalf-of in the actor.
    let vendor = &documents[4];
    let authorization = &vendor["actor"]["authorizations"][0]["policy"];
    assert_eq!(authorization["uid"], "dg_0001");
    assert_eq!(authorization["type"], "delegation_grant");
    assert_eq!(
        authorization["name"],
        format!("on behalf of platform-team {HOSTILE}")
    );
    assert_eq!(vendor["user"]["uid"], "user:bob");
    assert_eq!(vendor["privileges"][0], "role:admin");
}

#[test]
fn no_raw_control_or_bidi_character_leaves_in_a_line() {
    let (lines, _) = encode(&exported(HOSTILE));
    let text = std::str::from_utf8(&lines).unwrap();
    for line in text.lines() {
        assert!(
            !line.chars().any(custody_core::text::is_unsafe_char),
            "{line}"
        );
    }
    // Escaped, not dropped: the JSON means the hostile text exactly.
    assert!(text.contains("\\u202e"));
}
