//! The CloudEvents 1.0 JSON form of a notification, shared by the webhook
//! and NATS channels.

use serde_json::{json, Map, Value};

use crate::Notification;

/// The media type of a CloudEvent in structured JSON mode.
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json";

/// The prefix of every event type: `dev.custody.<kind>`.
pub const EVENT_TYPE_PREFIX: &str = "dev.custody.";

/// Builds the CloudEvents 1.0 structured-mode JSON for a notification.
///
/// Context attributes: `specversion` `"1.0"`, `id` = `delivery_id`, `source`
/// as given, `type` = `dev.custody.<kind>`, `subject` = `case_id`, `time` =
/// `occurred_at`, `datacontenttype` `"application/json"`, and the
/// `authcontext` extension: `authtype` (see [`crate::ActorKind::authtype`]),
/// `authid` = the principal, `authclaims` = a JSON string
/// `{"kind","org","on_behalf_of","via"}`.
///
/// `data` holds `case_id`, `event_id`, `kind`, `title`, `text`, `case_url`,
/// `recipient` when one was named, and the keys of [`Notification::data`]
/// when it is an object (the fixed keys win a clash); any other non-null
/// `Notification::data` is kept under `extra`.
pub fn cloud_event(notification: &Notification, source: &str, recipient: Option<&str>) -> Value {
    let actor = &notification.actor;
    let mut data = Map::new();
    match &notification.data {
        Value::Object(extra) => data.extend(extra.clone()),
        Value::Null => {}
        other => {
            data.insert("extra".to_string(), other.clone());
        }
    }
    for (key, value) in [
        ("case_id", json!(notification.case_id)),
        ("event_id", json!(notification.event_id)),
        ("kind", json!(notification.kind)),
        ("title", json!(notification.title)),
        ("text", json!(notification.text)),
        ("case_url", json!(notification.case_url)),
    ] {
        data.insert(key.to_string(), value);
    }
    if let Some(recipient) = recipient {
        data.insert("recipient".to_string(), json!(recipient));
    }
    let claims = json!({
        "kind": actor.kind.as_str(),
        "org": actor.org,
        "on_behalf_of": actor.on_behalf_of,
        "via": actor.via,
    });
    json!({
        "specversion": "1.0",
        "id": notification.delivery_id,
        "source": source,
        "type": format!("{EVENT_TYPE_PREFIX}{}", notification.kind),
        "subject": notification.case_id,
        "time": notification.occurred_at,
        "datacontenttype": "application/json",
        "authtype": actor.kind.authtype(),
        "authid": actor.principal,
        "authclaims": claims.to_string(),
        "data": Value::Object(data),
    })
}

/// Serialises a CloudEvent to the bytes that are sent and signed.
pub(crate) fn cloud_event_bytes(
    notification: &Notification,
    source: &str,
    recipient: Option<&str>,
) -> Vec<u8> {
    // `Value`'s `Display` writes compact JSON and cannot fail (every key is a
    // string), unlike the fallible generic `to_vec`.
    cloud_event(notification, source, recipient)
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::tests::sample;
    use crate::ActorKind;

    #[test]
    fn structured_mode_attributes() {
        let mut notification = sample();
        notification.actor.kind = ActorKind::Vendor;
        notification.actor.org = Some("acme-support".to_string());
        notification.actor.on_behalf_of = Some("it-ops".to_string());
        notification.actor.via = "api".to_string();
        let event = cloud_event(&notification, "custody/prod", Some("bob@example.com"));

        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["id"], notification.delivery_id.as_str());
        assert_eq!(event["source"], "custody/prod");
        assert_eq!(event["type"], "dev.custody.approval_needed");
        assert_eq!(event["subject"], notification.case_id.as_str());
        assert_eq!(event["time"], "2026-01-02T03:04:05Z");
        assert_eq!(event["datacontenttype"], "application/json");
        assert_eq!(event["authtype"], "user");
        assert_eq!(event["authid"], "alice");
        let claims: Value = serde_json::from_str(event["authclaims"].as_str().unwrap()).unwrap();
        assert_eq!(
            claims,
            json!({"kind": "vendor", "org": "acme-support", "on_behalf_of": "it-ops", "via": "api"})
        );
        assert_eq!(event["data"]["recipient"], "bob@example.com");
        assert_eq!(event["data"]["event_id"], "ev-7");
        assert_eq!(
            event["data"]["case_url"],
            "https://custody.example/cases/AC-1"
        );
        // CloudEvents attribute names are lower-case letters and digits only.
        for name in event.as_object().unwrap().keys() {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{name}"
            );
        }
    }

    #[test]
    fn extra_data_is_merged_but_cannot_override_fixed_fields() {
        let mut notification = sample();
        notification.data = json!({"approvers": ["bob"], "case_id": "forged"});
        let event = cloud_event(&notification, "custody", None);
        assert_eq!(event["data"]["approvers"], json!(["bob"]));
        assert_eq!(event["data"]["case_id"], notification.case_id.as_str());
        assert!(event["data"].get("recipient").is_none());

        notification.data = json!([1, 2]);
        let event = cloud_event(&notification, "custody", None);
        assert_eq!(event["data"]["extra"], json!([1, 2]));

        notification.data = Value::Null;
        let event = cloud_event(&notification, "custody", None);
        assert!(event["data"].get("extra").is_none());
    }

    #[test]
    fn absent_optional_claims_are_null_and_missing_case_url_is_null() {
        let mut notification = sample();
        notification.case_url = None;
        notification.actor.kind = ActorKind::Automation;
        let event = cloud_event(&notification, "custody", None);
        assert_eq!(event["authtype"], "system");
        assert_eq!(event["data"]["case_url"], Value::Null);
        let claims: Value = serde_json::from_str(event["authclaims"].as_str().unwrap()).unwrap();
        assert_eq!(claims["org"], Value::Null);
        assert_eq!(claims["kind"], "automation");
    }

    #[test]
    fn bytes_are_the_compact_json_of_the_event() {
        let notification = sample();
        let bytes = cloud_event_bytes(&notification, "custody", None);
        let parsed: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed, cloud_event(&notification, "custody", None));
        assert!(!bytes.contains(&b'\n'));
    }
}
