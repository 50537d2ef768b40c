//! Writing a case's state back into its Jira issue (REST API v3).
//!
//! Each update is two calls, in this order:
//! 1. `PUT /rest/api/3/issue/{key}/properties/{property_key}` with the case
//!    ID, its state and its link: the issue entity property, which Jira
//!    answers 201 when it creates it and 200 when it replaces it;
//! 2. `POST /rest/api/3/issue/{key}/comment` with an Atlassian Document
//!    Format body: on the first update the comment names and links the case,
//!    later ones say what was recorded. Jira answers 201.
//!
//! The property goes first because setting it is idempotent: when the
//! comment fails, the attempt is retried whole and the property is merely
//! set again, where the other order would post the comment twice.

use base64::Engine;
use serde_json::{json, Value};

use crate::config::Secret;
use crate::{Call, Update};

use super::JiraConnector;

/// `Basic base64(email:token)`, Jira Cloud's basic authentication.
pub(super) fn basic_authorization(email: &str, token: &Secret) -> Secret {
    let credentials = format!("{}:{}", email.trim(), token.expose().trim());
    Secret::new(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    ))
}

/// The calls for one update; none when the recipient names no issue.
pub(super) fn calls(connector: &JiraConnector, update: &Update) -> Vec<Call> {
    let Some(key) = issue_key(&connector.ticket_system, &update.recipient) else {
        return Vec::new();
    };
    let issue = format!(
        "{}/rest/api/3/issue/{}",
        connector.api_url,
        encode_path_segment(&key)
    );
    let headers = vec![
        (
            "Authorization".to_string(),
            connector.authorization.expose().to_string(),
        ),
        ("Content-Type".to_string(), "application/json".to_string()),
        ("Accept".to_string(), "application/json".to_string()),
    ];
    let link = update
        .case_url
        .as_deref()
        .filter(|url| url.starts_with("https://") || url.starts_with("http://"));
    let mut property = serde_json::Map::new();
    property.insert("case_id".into(), Value::from(update.case_id.as_str()));
    property.insert("state".into(), Value::from(update.state.as_str()));
    if let Some(link) = link {
        property.insert("url".into(), Value::from(link));
    }
    vec![
        Call {
            method: "PUT",
            url: format!(
                "{issue}/properties/{}",
                encode_path_segment(&connector.property_key)
            ),
            headers: headers.clone(),
            body: serde_json::to_vec(&Value::Object(property)).unwrap_or_default(),
        },
        Call {
            method: "POST",
            url: format!("{issue}/comment"),
            headers,
            body: serde_json::to_vec(&json!({ "body": comment(update, link) })).unwrap_or_default(),
        },
    ]
}

/// The issue key a recipient names (`SEC-142`, or `jira:SEC-142`), when it
/// has the shape of a Jira issue key: a project key (a letter, then
/// letters, digits or `_`) and an issue number. Anything else (`..`, a
/// path, a query) is written back to nowhere, so no call carrying the
/// connector's credentials can leave the issue's own path.
fn issue_key(ticket_system: &str, recipient: &str) -> Option<String> {
    let recipient = recipient.trim();
    let key = match recipient.split_once(':') {
        Some((system, key)) if system.eq_ignore_ascii_case(ticket_system) => key,
        _ => recipient,
    };
    let (project, number) = key.rsplit_once('-')?;
    let mut project_chars = project.chars();
    let shaped = project_chars
        .next()
        .is_some_and(|first| first.is_ascii_uppercase())
        && project_chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !number.is_empty()
        && number.len() <= 18
        && number.bytes().all(|byte| byte.is_ascii_digit());
    shaped.then(|| key.to_string())
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so a
/// key can never add a path segment or a query to the URL.
fn encode_path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An ADF text node, with a link mark when `href` is given.
fn text(text: &str, href: Option<&str>) -> Value {
    match href {
        Some(href) => json!({
            "type": "text",
            "text": text,
            "marks": [{ "type": "link", "attrs": { "href": href } }],
        }),
        None => json!({ "type": "text", "text": text }),
    }
}

fn paragraph(content: Vec<Value>) -> Value {
    json!({ "type": "paragraph", "content": content })
}

/// The comment, as an Atlassian Document Format document.
fn comment(update: &Update, link: Option<&str>) -> Value {
    let case = text(update.case_id.as_str(), link);
    let summary = update.summary.trim();
    let said = if summary.is_empty() {
        update.event.as_str()
    } else {
        summary
    };
    let said = format!("{said} (by {}; state: {}).", update.actor, update.state);
    let content = if update.first {
        vec![
            paragraph(vec![
                text("This issue is Custody case ", None),
                case,
                text(". Custody records every decision on it.", None),
            ]),
            paragraph(vec![text(&said, None)]),
        ]
    } else {
        vec![paragraph(vec![
            text("Custody case ", None),
            case,
            text(&format!(": {said}"), None),
        ])]
    };
    json!({ "type": "doc", "version": 1, "content": content })
}
