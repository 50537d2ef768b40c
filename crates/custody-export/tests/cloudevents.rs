//! CloudEvents 1.0 structured JSON with the authcontext extension.

#![allow(clippy::unwrap_used)]

mod support;

use custody_export::{Encoder, Format};
use serde_json::Value;
use support::{exported, HOSTILE};

#[test]
fn every_kind_is_a_valid_cloudevent_with_its_auth_context() {
    let encoder = Encoder::new(Format::CloudEvents, "ledger-1");
    for record in exported(HOSTILE) {
        let mut out = Vec::new();
        encoder.encode(&record.record(), &mut out).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert_eq!(line.matches('\n').count(), 1);
        assert!(!line
            .trim_end()
            .chars()
            .any(custody_core::text::is_unsafe_char));
        let document: Value = serde_json::from_str(&line).unwrap();
        let event = &record.event;
        // Required context attributes (CloudEvents 1.0 §3.1).
        assert_eq!(document["specversion"], "1.0");
        assert_eq!(document["id"], event.event_id.as_str());
        assert_eq!(document["source"], "custody");
        assert_eq!(
            document["type"],
            format!("dev.custody.event.{}", event.body.kind_name())
        );
        assert_eq!(document["subject"], event.case_id.as_str());
        assert_eq!(document["time"], event.occurred_at.to_string());
        assert_eq!(document["datacontenttype"], "application/json");
        // Attribute names: lowercase letters and digits, at most 20 characters.
        for name in document.as_object().unwrap().keys() {
            assert!(
                name.len() <= 20
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "{name}"
            );
            if name != "data" {
                assert!(
                    !document[name].is_object() && !document[name].is_null(),
                    "{name}"
                );
            }
        }
        // authcontext: authtype from the spec's values, authid, authclaims a JSON string.
        assert!(matches!(
            document["authtype"].as_str(),
            Some("user" | "service_account" | "system")
        ));
        assert_eq!(document["authid"], event.actor.principal.as_str());
        let claims: Value = serde_json::from_str(document["authclaims"].as_str().unwrap()).unwrap();
        assert_eq!(claims["role"], event.role.as_str());
        assert_eq!(claims["via"], event.actor.via.to_string());
        assert_eq!(
            claims["on_behalf_of"].as_str(),
            event.actor.on_behalf_of.as_deref()
        );
        assert_eq!(
            claims["delegation_grant"].as_str(),
            event.actor.delegation_grant.as_deref()
        );
        // The data: the stored event, the log index, the case's roles.
        let stored: Value = serde_json::from_slice(&record.bytes).unwrap();
        assert_eq!(document["data"]["event"], stored);
        assert_eq!(document["data"]["log_index"], record.log_index);
        let roles = &document["data"]["roles"];
        assert_eq!(
            roles["requester"]["principal"].as_str(),
            record
                .roles
                .requester
                .as_ref()
                .map(|p| p.principal.as_str())
        );
        assert_eq!(
            roles["approvers"].as_array().unwrap().len(),
            record.roles.approvers.len()
        );
        assert_eq!(
            roles["executor"]["on_behalf_of"].as_str(),
            record
                .roles
                .executor
                .as_ref()
                .and_then(|p| p.on_behalf_of.as_deref())
        );
        assert_eq!(
            roles["reviewer"]["principal"].as_str(),
            record.roles.reviewer.as_ref().map(|p| p.principal.as_str())
        );
    }
}

#[test]
fn authtype_follows_the_principal_kind() {
    let records = exported("x");
    let encoder = Encoder::new(Format::CloudEvents, "h");
    let authtype = |index: usize| {
        let mut out = Vec::new();
        encoder.encode(&records[index].record(), &mut out).unwrap();
        let document: Value = serde_json::from_slice(&out).unwrap();
        document["authtype"].as_str().unwrap().to_owned()
    };
    // alice (human), vic@acme (vendor), the ledger (system).
    assert_eq!(authtype(0), "user");
    assert_eq!(authtype(4), "user");
    let system = records
        .iter()
        .position(|record| record.event.actor.principal.as_str() == "system")
        .unwrap();
    assert_eq!(authtype(system), "system");
}
