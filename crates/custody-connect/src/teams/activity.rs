//! The Bot Framework activity an outgoing webhook posts, and the command in
//! its text.

use std::str::FromStr;

use custody_core::event::ChatApproval;
use custody_core::id::Sha256Hash;
use custody_core::model::{validate_text, PrincipalId};
use custody_core::{CaseId, Timestamp};
use serde::Deserialize;

use crate::{Action, Inbound, Refusal, Target};

/// The parts of an activity the connector reads; the rest (conversation,
/// recipient, entities, channelData, ...) is allowed and ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Activity {
    /// `message` for a message that @mentions the webhook.
    #[serde(rename = "type")]
    kind: String,
    /// The activity's ID, unique in the channel.
    id: String,
    /// When Teams sent it, ISO 8601 in UTC.
    timestamp: String,
    /// The sender.
    from: Account,
    /// The message text, with the mention as `<at>Name</at>`.
    #[serde(default)]
    text: Option<String>,
    /// The channel thread: `19:…@thread.tacv2;messageid=…`.
    #[serde(default)]
    conversation: Option<Conversation>,
    /// Teams' own details: the channel and the tenant.
    #[serde(default)]
    channel_data: Option<ChannelData>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conversation {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChannelData {
    #[serde(default)]
    teams_channel_id: Option<String>,
    #[serde(default)]
    tenant: Option<Tenant>,
}

#[derive(Debug, Deserialize)]
struct Tenant {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Account {
    /// The sender's Microsoft Entra (Azure AD) object ID.
    #[serde(default)]
    aad_object_id: Option<String>,
}

/// When the activity was sent.
pub(super) struct Sent {
    pub timestamp: Timestamp,
    pub unix_seconds: u64,
}

fn malformed(text: impl Into<String>) -> Refusal {
    Refusal::Malformed(text.into())
}

impl Activity {
    /// Reads a body, or says how it differs from an activity.
    pub fn from_body(body: &[u8]) -> Result<Activity, Refusal> {
        serde_json::from_slice(body).map_err(|error| {
            malformed(format!("the body is not a Bot Framework activity: {error}"))
        })
    }

    /// The activity's `timestamp`.
    pub fn sent_at(&self) -> Result<Sent, Refusal> {
        let timestamp = Timestamp::parse(self.timestamp.trim())
            .map_err(|_| malformed("the activity's timestamp is not an ISO 8601 date-time"))?;
        let unix_seconds = u64::try_from(timestamp.as_micros() / 1_000_000)
            .map_err(|_| malformed("the activity's timestamp is before 1970"))?;
        Ok(Sent {
            timestamp,
            unix_seconds,
        })
    }

    /// The command the message holds: none for a message that is not one
    /// (answered with the usage).
    pub fn inbound(&self) -> Result<Vec<Inbound>, Refusal> {
        if self.kind != "message" {
            return Ok(Vec::new());
        }
        let sent = self.sent_at()?;
        if self.id.trim().is_empty() {
            return Err(malformed("the activity has no id"));
        }
        let Some(command) = Command::parse(self.text.as_deref().unwrap_or_default())? else {
            return Ok(Vec::new());
        };
        let external_user = self
            .from
            .aad_object_id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| malformed("the activity's sender has no aadObjectId"))?
            .to_string();
        let action = match command {
            Command::Approve { case, comment } => Action::Approve {
                target: Target::Case(case),
                comment,
                chat: Some(self.chat_approval()),
            },
            Command::Deny { case, reason } => Action::Deny {
                target: Target::Case(case),
                comment: reason,
            },
        };
        Ok(vec![Inbound {
            external_id: self.id.trim().to_string(),
            external_user,
            occurred_at: Some(sent.timestamp),
            action,
            reply_to: None,
        }])
    }
}

impl Activity {
    /// Where the approval was typed, recorded as `approve --chat-*` records
    /// it: the channel, a link to the message and the SHA-256 of its text.
    fn chat_approval(&self) -> ChatApproval {
        let conversation_id = self
            .conversation
            .as_ref()
            .and_then(|conversation| conversation.id.as_deref())
            .unwrap_or_default();
        let (conversation_channel, thread) = match conversation_id.split_once(";messageid=") {
            Some((channel, thread)) => (channel, Some(thread)),
            None => (conversation_id, None),
        };
        let channel = self
            .channel_data
            .as_ref()
            .and_then(|data| data.teams_channel_id.as_deref())
            .filter(|channel| !channel.is_empty())
            .unwrap_or(conversation_channel);
        let tenant = self
            .channel_data
            .as_ref()
            .and_then(|data| data.tenant.as_ref())
            .and_then(|tenant| tenant.id.as_deref())
            .or_else(|| {
                self.conversation
                    .as_ref()
                    .and_then(|conversation| conversation.tenant_id.as_deref())
            })
            .unwrap_or_default();
        let message = self.id.trim();
        // Teams' deep link to a channel message (a reply links through its
        // thread's first message).
        let mut permalink = format!(
            "https://teams.microsoft.com/l/message/{}/{}?tenantId={}",
            crate::percent_encode(channel),
            crate::percent_encode(message),
            crate::percent_encode(tenant)
        );
        if let Some(thread) = thread {
            permalink.push_str("&parentMessageId=");
            permalink.push_str(&crate::percent_encode(thread));
        }
        ChatApproval {
            channel: format!("teams:{channel}"),
            permalink,
            message_sha256: Sha256Hash::of(self.text.as_deref().unwrap_or_default().as_bytes()),
            // The server records the approval as the principal the sender
            // is mapped to, and sets the approver to that principal
            // whatever is here; the connector cannot know it.
            approver: PrincipalId::from_str(UNMAPPED_APPROVER)
                .expect("`unmapped` is a valid principal name"),
        }
    }
}

/// The approver of a chat approval before the server maps the sender.
pub(super) const UNMAPPED_APPROVER: &str = "unmapped";

/// A command typed after the mention.
#[derive(Debug, PartialEq)]
pub(super) enum Command {
    /// `approve AC-... [comment]`
    Approve {
        case: CaseId,
        comment: Option<String>,
    },
    /// `deny AC-... [reason]`
    Deny {
        case: CaseId,
        reason: Option<String>,
    },
}

impl Command {
    /// The command in a message's text: `None` for text that starts with
    /// no command word (answered with the usage); refused when a command
    /// word is followed by no case ID or a bad one.
    pub fn parse(text: &str) -> Result<Option<Command>, Refusal> {
        let plain = plain_text(text);
        let mut words = plain.trim().splitn(2, char::is_whitespace);
        let verb = words.next().unwrap_or_default().to_ascii_lowercase();
        let rest = words.next().unwrap_or_default().trim_start();
        if verb != "approve" && verb != "deny" {
            return Ok(None);
        }
        let mut words = rest.splitn(2, char::is_whitespace);
        let case_text = words.next().unwrap_or_default();
        if case_text.is_empty() {
            return Err(malformed(format!("`{verb}` needs a case ID: {verb} AC-…")));
        }
        let case = CaseId::from_str(case_text).map_err(|error| malformed(error.to_string()))?;
        let comment = match words.next().map(str::trim).unwrap_or_default() {
            "" => None,
            text => {
                Some(validate_text("comment", text).map_err(|error| malformed(error.to_string()))?)
            }
        };
        Ok(Some(if verb == "approve" {
            Command::Approve { case, comment }
        } else {
            Command::Deny {
                case,
                reason: comment,
            }
        }))
    }
}

/// The text of a Teams message without its markup: `<at>…</at>` mentions
/// removed whole, other tags dropped, the common entities decoded and
/// runs of white space (`&nbsp;` included) made one space.
pub(super) fn plain_text(text: &str) -> String {
    let mut without_mentions = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_ignoring_case(rest, "<at>") {
        without_mentions.push_str(&rest[..start]);
        let after = &rest[start..];
        match find_ignoring_case(after, "</at>") {
            Some(end) => rest = &after[end + "</at>".len()..],
            None => {
                rest = "";
            }
        }
    }
    without_mentions.push_str(rest);
    let mut tagless = String::with_capacity(without_mentions.len());
    let mut in_tag = false;
    for character in without_mentions.chars() {
        match character {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                tagless.push(' ');
            }
            _ if !in_tag => tagless.push(character),
            _ => {}
        }
    }
    let decoded = tagless
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn find_ignoring_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}
