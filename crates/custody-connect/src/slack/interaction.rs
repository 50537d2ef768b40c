//! `block_actions` payloads: the Approve and Deny buttons of the approval
//! messages this connector posts.
//!
//! Slack posts an interaction form-encoded as one field, `payload`, holding
//! JSON. Of its documented fields these are read:
//!
//! | field | used for |
//! |---|---|
//! | `type` | only `block_actions` is for Custody; other interactions are acknowledged and ignored |
//! | `user.id` | who clicked (the identity map's external user) |
//! | `team.id`, `team.domain` | the workspace (checked against `team_id` when configured; the permalink's host) |
//! | `container.channel_id` / `channel.id` | the channel of the message |
//! | `container.message_ts` / `message.ts` | the message (with the channel, the `reply_to` the result is written back to) |
//! | `message.text` | the message's text, whose SHA-256 the approval records |
//! | `actions[].action_id` | `custody_approve` or `custody_deny` (other actions are ignored) |
//! | `actions[].value` | the case ID |
//! | `actions[].action_ts` | when the click happened; with the user, the event's external ID |

use std::str::FromStr;

use custody_core::event::ChatApproval;
use custody_core::{CaseId, PrincipalId, Sha256Hash, Timestamp};
use serde::Deserialize;

use crate::{Action, Inbound, Refusal, Target};

/// The `action_id` of the Approve button.
pub const APPROVE_ACTION: &str = "custody_approve";
/// The `action_id` of the Deny button.
pub const DENY_ACTION: &str = "custody_deny";

/// The principal an approval's chat provenance names until the server
/// replaces it with the principal the clicking Slack user maps to: the
/// connector cannot know the mapping. `system` can never be a principal's
/// name, so an approval that kept it would be an attestation for nobody,
/// which nobody can confirm and which never counts.
pub const APPROVER_PLACEHOLDER: &str = "system";

/// The parts of a `block_actions` payload this connector reads.
#[derive(Debug, Deserialize)]
struct BlockActions {
    user: Option<User>,
    team: Option<Team>,
    container: Option<Container>,
    channel: Option<Channel>,
    message: Option<Message>,
    #[serde(default)]
    actions: Vec<Element>,
}

#[derive(Debug, Deserialize)]
struct User {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Team {
    id: Option<String>,
    domain: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Container {
    #[serde(rename = "type")]
    kind: Option<String>,
    channel_id: Option<String>,
    message_ts: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Channel {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Message {
    ts: Option<String>,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Element {
    action_id: Option<String>,
    value: Option<String>,
    action_ts: Option<String>,
}

/// Where a click happened: enough to answer the clicker in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClickPlace {
    /// The channel ID.
    pub channel: String,
    /// The Slack user ID of who clicked.
    pub user: String,
}

/// What the connector's settings say about interactions.
pub(crate) struct Settings<'a> {
    /// `https://WORKSPACE.slack.com`, when configured (else built from the
    /// payload's `team.domain`).
    pub workspace_url: Option<&'a str>,
    /// The only workspace accepted, when configured.
    pub team_id: Option<&'a str>,
}

/// Parses the `payload` field of an interaction into inbound actions.
pub(crate) fn parse(payload: &str, settings: &Settings<'_>) -> Result<Vec<Inbound>, Refusal> {
    let Some(payload) = block_actions(payload)? else {
        return Ok(Vec::new());
    };
    check_team(payload.team.as_ref(), settings.team_id)?;
    let ours: Vec<&Element> = payload
        .actions
        .iter()
        .filter(|element| {
            matches!(
                element.action_id.as_deref(),
                Some(APPROVE_ACTION | DENY_ACTION)
            )
        })
        .collect();
    if ours.is_empty() {
        return Ok(Vec::new());
    }
    let user = slack_id(
        payload.user.as_ref().map(|user| user.id.as_str()),
        "user.id",
    )?;
    if let Some(kind) = payload
        .container
        .as_ref()
        .and_then(|container| container.kind.as_deref())
    {
        if kind != "message" {
            return Err(Refusal::Malformed(format!(
                "the Custody buttons live in messages, and this click came from a `{}`",
                custody_core::text::escape(kind)
            )));
        }
    }
    let channel = slack_id(
        payload
            .container
            .as_ref()
            .and_then(|container| container.channel_id.as_deref())
            .or(payload.channel.as_ref().map(|channel| channel.id.as_str())),
        "container.channel_id",
    )?;
    let message_ts = message_ts_text(
        payload
            .container
            .as_ref()
            .and_then(|container| container.message_ts.as_deref())
            .or(payload
                .message
                .as_ref()
                .and_then(|message| message.ts.as_deref())),
        "container.message_ts",
    )?;
    let mut inbound = Vec::with_capacity(ours.len());
    for element in ours {
        let action_ts = message_ts_text(element.action_ts.as_deref(), "actions[].action_ts")?;
        let occurred_at = slack_time(action_ts, "actions[].action_ts")?;
        let case = element
            .value
            .as_deref()
            .ok_or_else(|| Refusal::Malformed("a Custody button's action has no `value`".into()))
            .and_then(|value| {
                CaseId::from_str(value).map_err(|_| {
                    Refusal::Malformed(format!(
                        "a Custody button's value `{}` is not a case ID",
                        custody_core::text::escape(value)
                    ))
                })
            })?;
        let action = if element.action_id.as_deref() == Some(APPROVE_ACTION) {
            let text = payload
                .message
                .as_ref()
                .and_then(|message| message.text.as_deref())
                .ok_or_else(|| {
                    Refusal::Malformed(
                        "the approval's message has no `text`, whose SHA-256 the approval records"
                            .into(),
                    )
                })?;
            let permalink = permalink(
                settings.workspace_url,
                payload
                    .team
                    .as_ref()
                    .and_then(|team| team.domain.as_deref()),
                &channel,
                message_ts,
            )?;
            Action::Approve {
                target: Target::Case(case),
                comment: None,
                chat: Some(ChatApproval {
                    channel: format!("slack:{channel}"),
                    permalink,
                    message_sha256: Sha256Hash::of(text.as_bytes()),
                    approver: PrincipalId::from_str(APPROVER_PLACEHOLDER)
                        .expect("`system` follows the principal naming rule"),
                }),
            }
        } else {
            Action::Deny {
                target: Target::Case(case),
                comment: None,
            }
        };
        inbound.push(Inbound {
            external_id: format!("{action_ts}:{user}"),
            external_user: user.clone(),
            occurred_at: Some(occurred_at),
            action,
            reply_to: Some(format!("{channel}/{message_ts}")),
        });
    }
    Ok(inbound)
}

/// The channel and user of a click, for answering the clicker; `None` when
/// the payload is not a click on a Custody button.
pub(crate) fn click_place(payload: &str) -> Option<ClickPlace> {
    let payload = block_actions(payload).ok()??;
    let ours = payload.actions.iter().any(|element| {
        matches!(
            element.action_id.as_deref(),
            Some(APPROVE_ACTION | DENY_ACTION)
        )
    });
    if !ours {
        return None;
    }
    let user = slack_id(
        payload.user.as_ref().map(|user| user.id.as_str()),
        "user.id",
    )
    .ok()?;
    let channel = slack_id(
        payload
            .container
            .as_ref()
            .and_then(|container| container.channel_id.as_deref())
            .or(payload.channel.as_ref().map(|channel| channel.id.as_str())),
        "container.channel_id",
    )
    .ok()?;
    Some(ClickPlace { channel, user })
}

/// The payload as `block_actions`, or `None` for another interaction type.
fn block_actions(payload: &str) -> Result<Option<BlockActions>, Refusal> {
    let value: serde_json::Value = serde_json::from_str(payload).map_err(|error| {
        Refusal::Malformed(format!("the interaction payload is not JSON: {error}"))
    })?;
    let kind = value
        .get("type")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| Refusal::Malformed("the interaction payload has no `type`".into()))?;
    if kind != "block_actions" {
        return Ok(None);
    }
    serde_json::from_value(value).map(Some).map_err(|error| {
        Refusal::Malformed(format!(
            "the block_actions payload does not have Slack's documented shape: {error}"
        ))
    })
}

fn check_team(team: Option<&Team>, expected: Option<&str>) -> Result<(), Refusal> {
    let Some(expected) = expected else {
        return Ok(());
    };
    match team.and_then(|team| team.id.as_deref()) {
        Some(id) if id == expected => Ok(()),
        Some(id) => Err(Refusal::Malformed(format!(
            "the interaction comes from workspace `{}`, and this connector accepts only `{expected}` (team_id)",
            custody_core::text::escape(id)
        ))),
        None => Err(Refusal::Malformed(format!(
            "the interaction names no workspace (`team.id`), and this connector accepts only `{expected}` (team_id)"
        ))),
    }
}

/// A Slack ID (user, channel, team): 1 to 64 ASCII letters and digits.
pub(crate) fn slack_id(id: Option<&str>, field: &str) -> Result<String, Refusal> {
    let id = id.ok_or_else(|| Refusal::Malformed(format!("the payload has no `{field}`")))?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|byte| byte.is_ascii_alphanumeric()) {
        return Err(Refusal::Malformed(format!(
            "the payload's `{field}` is not a Slack ID (ASCII letters and digits)"
        )));
    }
    Ok(id.to_string())
}

/// A Slack timestamp (`1700000000.000100`): seconds, a dot, digits.
fn message_ts_text<'a>(ts: Option<&'a str>, field: &str) -> Result<&'a str, Refusal> {
    let ts = ts.ok_or_else(|| Refusal::Malformed(format!("the payload has no `{field}`")))?;
    if is_slack_ts(ts) {
        Ok(ts)
    } else {
        Err(Refusal::Malformed(format!(
            "the payload's `{field}` is not a Slack timestamp (seconds, a dot, digits)"
        )))
    }
}

/// Whether `ts` is a Slack timestamp: 1 to 12 digits, a dot, 1 to 9 digits.
pub(crate) fn is_slack_ts(ts: &str) -> bool {
    let Some((seconds, fraction)) = ts.split_once('.') else {
        return false;
    };
    (1..=12).contains(&seconds.len())
        && (1..=9).contains(&fraction.len())
        && seconds.bytes().all(|byte| byte.is_ascii_digit())
        && fraction.bytes().all(|byte| byte.is_ascii_digit())
}

/// A Slack timestamp as an instant (microseconds; finer digits dropped).
fn slack_time(ts: &str, field: &str) -> Result<Timestamp, Refusal> {
    let out_of_range = || Refusal::Malformed(format!("the payload's `{field}` is out of range"));
    let (seconds, fraction) = ts.split_once('.').ok_or_else(out_of_range)?;
    let seconds: i64 = seconds.parse().map_err(|_| out_of_range())?;
    let mut micros = String::from(fraction);
    micros.truncate(6);
    while micros.len() < 6 {
        micros.push('0');
    }
    let micros: i64 = micros.parse().map_err(|_| out_of_range())?;
    seconds
        .checked_mul(1_000_000)
        .and_then(|whole| whole.checked_add(micros))
        .map(Timestamp::from_micros)
        .ok_or_else(out_of_range)
}

/// The message's permalink, as Slack forms it:
/// `https://WORKSPACE.slack.com/archives/CHANNEL/pTS` with the timestamp's
/// dot removed.
fn permalink(
    workspace_url: Option<&str>,
    team_domain: Option<&str>,
    channel: &str,
    message_ts: &str,
) -> Result<String, Refusal> {
    let base = match (workspace_url, team_domain) {
        (Some(url), _) => url.to_string(),
        (None, Some(domain)) if is_workspace_domain(domain) => format!("https://{domain}.slack.com"),
        (None, Some(_)) => {
            return Err(Refusal::Malformed(
                "the payload's `team.domain` is not a workspace domain (letters, digits and '-')"
                    .into(),
            ))
        }
        (None, None) => {
            return Err(Refusal::Malformed(
                "the payload names no workspace domain (`team.domain`) to build the message's permalink; set workspace_url in the connector's settings".into(),
            ))
        }
    };
    Ok(format!(
        "{base}/archives/{channel}/p{}",
        message_ts.replace('.', "")
    ))
}

/// A workspace's subdomain: 1 to 63 lowercase ASCII letters, digits and
/// `-`.
pub(crate) fn is_workspace_domain(domain: &str) -> bool {
    (1..=63).contains(&domain.len())
        && domain
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
}
