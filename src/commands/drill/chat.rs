//! The signed Slack interaction the drill posts as its approver would
//! click Approve on an approval message (docs/connectors/slack.md): a
//! `block_actions` payload, form-encoded as Slack sends it, signed with
//! the app's signing secret (`X-Slack-Signature: v0=<hex HMAC-SHA256>` of
//! `v0:<timestamp>:<body>`).

use custody_connect::slack::interaction::APPROVE_ACTION;
use serde_json::json;

/// What the drill needs to sign a Slack connector's requests.
#[derive(Clone)]
pub struct SlackSigning {
    /// The connector these are of, when known (embedded: from the
    /// configuration); else the deployment's first Slack connector.
    pub connector: Option<String>,
    /// The app's signing secret (the connector's `secret`).
    pub secret: String,
    /// The workspace the connector accepts (`team_id`), when it names one.
    pub team_id: Option<String>,
}

impl std::fmt::Debug for SlackSigning {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SlackSigning")
            .field("connector", &self.connector)
            .field("secret", &"<redacted>")
            .field("team_id", &self.team_id)
            .finish()
    }
}

/// The channel the drill's approval message is said to be in.
pub const CHANNEL: &str = "C0CUSTODYDRILL";

/// The workspace domain the drill's click names (the permalink's host when
/// the connector has no `workspace_url`).
pub const TEAM_DOMAIN: &str = "custody-drill";

/// A click on Approve of case `case_id` by Slack user `user`, on the
/// message `message_ts` reading `text`, at `action_ts`: the request's
/// headers and body, signed at `now` (Unix seconds).
pub fn approve_click(
    signing: &SlackSigning,
    user: &str,
    case_id: &str,
    text: &str,
    message_ts: &str,
    action_ts: &str,
    now: i64,
) -> (Vec<(String, String)>, Vec<u8>) {
    let team_id = signing.team_id.as_deref().unwrap_or("T0CUSTODYDRILL");
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": "custody-drill", "name": "custody-drill", "team_id": team_id},
        "api_app_id": "A0CUSTODYDRILL",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": CHANNEL, "is_ephemeral": false},
        "trigger_id": format!("{action_ts}.drill"),
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "channel": {"id": CHANNEL, "name": "custody-drill"},
        "message": {"type": "message", "text": text, "ts": message_ts},
        "actions": [{
            "action_id": APPROVE_ACTION,
            "block_id": "custody-drill",
            "type": "button",
            "value": case_id,
            "action_ts": action_ts,
        }],
    });
    let body = format!("payload={}", form_encode(&payload.to_string())).into_bytes();
    let timestamp = now.to_string();
    let tag = custody_connect::signature::hmac_sha256(
        signing.secret.as_bytes(),
        &[b"v0:", timestamp.as_bytes(), b":", &body],
    );
    let headers = vec![
        (
            "Content-Type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("X-Slack-Request-Timestamp".to_string(), timestamp),
        (
            "X-Slack-Signature".to_string(),
            format!("v0={}", custody_core::hex::encode(&tag)),
        ),
    ];
    (headers, body)
}

/// `application/x-www-form-urlencoded` encoding of a field's value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(other >> 4)]));
                out.push(char::from(HEX[usize::from(other & 0x0f)]));
            }
        }
    }
    out
}

/// A Slack timestamp (`seconds.micros`) of `micros` since the epoch.
pub fn slack_ts(micros: i64) -> String {
    format!(
        "{}.{:06}",
        micros.div_euclid(1_000_000),
        micros.rem_euclid(1_000_000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_is_what_slack_sends() {
        assert_eq!(
            form_encode("a b&c=d{\"é\"}"),
            "a+b%26c%3Dd%7B%22%C3%A9%22%7D"
        );
    }

    #[test]
    fn slack_timestamps_have_six_digits_of_micros() {
        assert_eq!(slack_ts(1_700_000_000_000_042), "1700000000.000042");
    }
}
