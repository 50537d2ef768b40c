//! The Slack connector: the `/custody request` slash command and the
//! Approve/Deny buttons of approval messages in, the Web API out.
//!
//! Two endpoints, both form-encoded and signed by Slack:
//! - `commands` (the slash command's Request URL): `/custody request ...`
//!   opens a case (grammar in [`command`]); the event's external ID is the
//!   command's `trigger_id`;
//! - `actions` (the app's Interactivity Request URL): a `block_actions`
//!   payload from a Custody button ([`interaction`]); Approve is the
//!   mapped principal's approval with the message's chat provenance, Deny
//!   their denial; the external ID is the click's `action_ts` and the
//!   user, and the result is written back to the clicked message.
//!
//! Signatures: `X-Slack-Signature: v0=<hex HMAC-SHA256>` of
//! `v0:<X-Slack-Request-Timestamp>:<body>` under the app's signing secret,
//! refused when the timestamp is more than five minutes (at most; the
//! connector's `window_seconds`) from now, either side. The fingerprint
//! remembered against replay is the signature.
//!
//! Out: approval messages with `chat.postMessage`, updates of the clicked
//! message with `chat.update`, and the outcome of a click shown to the
//! clicker with `chat.postEphemeral` (Slack ignores the body of the answer
//! to a click), all with the bot token. The Web API answers HTTP 200 with
//! `{"ok": false, "error": ...}` when it refuses a call, which
//! [`Connector::accepted`] reports as a failed attempt.
//!
//! The setup on Slack's side, the settings and the field mapping are in
//! `docs/connectors/slack.md`.

pub mod command;
mod form;
pub mod interaction;
pub mod message;

#[cfg(test)]
mod tests;

use serde::Deserialize;

use crate::config::{default_max_body_bytes, default_window_seconds, Secret};
use crate::signature::{check_window, decode_hex_tag, parse_unix_seconds, verify};
use crate::{Answer, Call, Connector, Inbound, Outcome, Refusal, Request, Signed, Update};
use form::Form;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Slack-Signature";
/// The timestamp header, signed with the body.
pub const TIMESTAMP_HEADER: &str = "X-Slack-Request-Timestamp";
/// Slack's documented limit on a request's age: five minutes.
pub const MAX_WINDOW_SECONDS: u64 = 300;

/// The settings of a `kind = "slack"` connector.
///
/// ```toml
/// [[connectors]]
/// name = "slack"
/// kind = "slack"
/// secret = "8f742231b10e8888abcd99yyyzzz85a5"   # the app's Signing Secret
/// bot_token = "xoxb-..."                         # Bot User OAuth Token (chat:write)
/// # api_url = "https://slack.com/api"
/// # command = "/custody"
/// # team_id = "T0123ABCD"                        # accept this workspace only
/// # workspace_url = "https://acme.slack.com"     # for permalinks (default: from team.domain)
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The connector's name.
    pub name: String,
    /// The app's signing secret (Basic Information, App Credentials).
    pub secret: Secret,
    /// The bot token the Web API is called with (`xoxb-...`, scopes
    /// `chat:write` and `commands`).
    pub bot_token: Secret,
    /// The Web API's base URL (a local fake in tests).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// The slash command this connector answers.
    #[serde(default = "default_command")]
    pub command: String,
    /// The workspace (team) ID accepted; a request from another workspace
    /// is refused. Unset: any workspace the app is installed in.
    #[serde(default)]
    pub team_id: Option<String>,
    /// The workspace's URL (`https://acme.slack.com`), for the permalinks
    /// recorded with chat approvals. Unset: built from the payload's
    /// `team.domain`.
    #[serde(default)]
    pub workspace_url: Option<String>,
    /// Seconds a signed request stays acceptable (at most 300, Slack's
    /// five minutes).
    #[serde(default = "default_window_seconds")]
    pub window_seconds: u64,
    /// The largest accepted body.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

fn default_api_url() -> String {
    "https://slack.com/api".to_string()
}

fn default_command() -> String {
    "/custody".to_string()
}

impl SlackConfig {
    /// Checks the settings and builds the connector.
    pub fn build(&self) -> Result<Box<dyn Connector>, String> {
        Ok(Box::new(SlackConnector::new(self)?))
    }
}

/// A configured Slack connector.
#[derive(Debug)]
pub struct SlackConnector {
    signing_secret: Secret,
    bot_token: Secret,
    api_url: String,
    command: String,
    team_id: Option<String>,
    workspace_url: Option<String>,
    window_seconds: u64,
    max_body_bytes: usize,
}

impl SlackConnector {
    /// Checks `config` and builds the connector, or says which setting is
    /// wrong and how to fix it.
    pub fn new(config: &SlackConfig) -> Result<SlackConnector, String> {
        let name = &config.name;
        let fail = |problem: String| format!("connector `{name}` (slack): {problem}");
        if config.secret.expose().trim().is_empty() {
            return Err(fail(
                "secret is empty; set it to the app's Signing Secret (Basic Information, App Credentials)".into(),
            ));
        }
        let token = config.bot_token.expose();
        if !token.starts_with("xoxb-")
            || token.len() <= "xoxb-".len()
            || token.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(fail(
                "bot_token is not a bot token; set it to the Bot User OAuth Token (xoxb-..., OAuth & Permissions)".into(),
            ));
        }
        let api_url = checked_url(&config.api_url, "api_url").map_err(fail)?;
        let workspace_url = config
            .workspace_url
            .as_deref()
            .map(|url| checked_url(url, "workspace_url"))
            .transpose()
            .map_err(fail)?;
        let command = &config.command;
        if command.len() < 2
            || !command.starts_with('/')
            || !command[1..].bytes().all(|byte| {
                byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'-' | b'_')
            })
        {
            return Err(fail(format!(
                "command `{}` is not a slash command (a `/` and lowercase letters, digits, '-' or '_', e.g. /custody)",
                custody_core::text::escape(command)
            )));
        }
        if let Some(team) = &config.team_id {
            interaction::slack_id(Some(team), "team_id").map_err(|_| {
                fail(format!(
                    "team_id `{}` is not a Slack team ID (ASCII letters and digits, e.g. T0123ABCD)",
                    custody_core::text::escape(team)
                ))
            })?;
        }
        if config.window_seconds == 0 || config.window_seconds > MAX_WINDOW_SECONDS {
            return Err(fail(format!(
                "window_seconds is {}; Slack's requests are accepted for at most {MAX_WINDOW_SECONDS} seconds (five minutes), and 0 accepts none",
                config.window_seconds
            )));
        }
        if config.max_body_bytes == 0 {
            return Err(fail("max_body_bytes is 0, which accepts no request".into()));
        }
        Ok(SlackConnector {
            signing_secret: config.secret.clone(),
            bot_token: config.bot_token.clone(),
            api_url,
            command: command.clone(),
            team_id: config.team_id.clone(),
            workspace_url,
            window_seconds: config.window_seconds,
            max_body_bytes: config.max_body_bytes,
        })
    }

    fn web_api(&self) -> message::WebApi<'_> {
        message::WebApi {
            url: &self.api_url,
            token: self.bot_token.expose(),
        }
    }

    fn parse_command(&self, request: &Request<'_>) -> Result<Vec<Inbound>, Refusal> {
        let form = Form::parse(request.body)?;
        let command = form.require("command", "slash command")?;
        if command != self.command {
            return Err(Refusal::Malformed(format!(
                "this connector answers the slash command `{}`, and this request is for `{}`",
                self.command,
                custody_core::text::escape(command)
            )));
        }
        if let Some(expected) = &self.team_id {
            let team = form.get("team_id").unwrap_or_default();
            if team != expected {
                return Err(Refusal::Malformed(format!(
                    "the command comes from workspace `{}`, and this connector accepts only `{expected}` (team_id)",
                    custody_core::text::escape(team)
                )));
            }
        }
        let user = interaction::slack_id(form.get("user_id"), "user_id")?;
        let trigger = form.require("trigger_id", "slash command")?;
        if trigger.is_empty()
            || trigger.len() > 255
            || !trigger.bytes().all(|byte| byte.is_ascii_graphic())
        {
            return Err(Refusal::Malformed(
                "the slash command's `trigger_id` is not a Slack trigger ID".into(),
            ));
        }
        let action = command::parse_text(form.require("text", "slash command")?)?;
        // A command carries no time of its own: Slack's signed request
        // timestamp is when it was sent.
        let occurred_at = request
            .headers
            .get(TIMESTAMP_HEADER)
            .and_then(|text| parse_unix_seconds(text, TIMESTAMP_HEADER).ok())
            .and_then(|seconds| i64::try_from(seconds).ok())
            .and_then(|seconds| seconds.checked_mul(1_000_000))
            .map(custody_core::Timestamp::from_micros);
        Ok(vec![Inbound {
            external_id: trigger.to_string(),
            external_user: user,
            occurred_at,
            action,
            reply_to: None,
        }])
    }

    fn parse_actions(&self, request: &Request<'_>) -> Result<Vec<Inbound>, Refusal> {
        let form = Form::parse(request.body)?;
        let payload = form.require("payload", "interaction")?;
        interaction::parse(
            payload,
            &interaction::Settings {
                workspace_url: self.workspace_url.as_deref(),
                team_id: self.team_id.as_deref(),
            },
        )
    }
}

impl Connector for SlackConnector {
    fn kind(&self) -> &'static str {
        "slack"
    }

    fn verify(&self, request: &Request<'_>, now_unix: u64) -> Result<Signed, Refusal> {
        // The size first: a large body costs no MAC.
        crate::limits::check_size(request.body.len(), self.max_body_bytes)?;
        for header in [SIGNATURE_HEADER, TIMESTAMP_HEADER] {
            if request.headers.repeated(header) {
                return Err(Refusal::Unauthenticated(format!(
                    "the {header} header is sent more than once"
                )));
            }
        }
        let signature = request.headers.get(SIGNATURE_HEADER).ok_or_else(|| {
            Refusal::Unauthenticated(format!(
                "the {SIGNATURE_HEADER} header is missing; Slack signs every request it sends"
            ))
        })?;
        let timestamp = request.headers.get(TIMESTAMP_HEADER).ok_or_else(|| {
            Refusal::Unauthenticated(format!("the {TIMESTAMP_HEADER} header is missing"))
        })?;
        let hex = signature.trim().strip_prefix("v0=").ok_or_else(|| {
            Refusal::Unauthenticated(format!(
                "the {SIGNATURE_HEADER} header is not a version 0 signature (v0=<hex>)"
            ))
        })?;
        let tag = decode_hex_tag(hex, SIGNATURE_HEADER)?;
        let signed_at = parse_unix_seconds(timestamp, TIMESTAMP_HEADER)?;
        // The timestamp is signed as it was sent (the digits of the header).
        let verified = verify(
            self.signing_secret.expose().as_bytes(),
            &[b"v0:", timestamp.trim().as_bytes(), b":", request.body],
            &tag,
        )?;
        check_window(signed_at, now_unix, self.window_seconds)?;
        Ok(Signed {
            verified,
            fingerprint: tag,
            signed_at,
        })
    }

    fn parse(&self, request: &Request<'_>) -> Result<Vec<Inbound>, Refusal> {
        if let Some(content_type) = request.headers.get("content-type") {
            let media_type = content_type.split(';').next().unwrap_or_default().trim();
            if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                return Err(Refusal::Malformed(format!(
                    "Slack posts commands and interactions as application/x-www-form-urlencoded, and this request is `{}`",
                    custody_core::text::escape(media_type)
                )));
            }
        }
        match request.endpoint {
            "commands" => self.parse_command(request),
            "actions" => self.parse_actions(request),
            other => Err(Refusal::Malformed(format!(
                "`{}` is not an endpoint of the Slack connector (commands: the slash command; actions: interactivity)",
                custody_core::text::escape(other)
            ))),
        }
    }

    fn answer(&self, outcomes: &[Outcome]) -> Answer {
        Answer::json(200, &message::ephemeral(&message::outcome_text(outcomes)))
    }

    fn write_back(&self, update: &Update) -> Vec<Call> {
        message::write_back(&self.web_api(), update)
    }

    fn accepted(&self, call: &Call, status: u16, body: &[u8]) -> Result<(), String> {
        let _ = call;
        if !(200..300).contains(&status) {
            return Err(format!("Slack answered HTTP {status}"));
        }
        let answer: serde_json::Value = serde_json::from_slice(body)
            .map_err(|_| format!("Slack answered HTTP {status} with a body that is not JSON"))?;
        match answer.get("ok").and_then(serde_json::Value::as_bool) {
            Some(true) => Ok(()),
            Some(false) => Err(format!(
                "Slack refused the call: {}",
                answer
                    .get("error")
                    .and_then(serde_json::Value::as_str)
                    .map(|error| custody_core::text::escape(error).into_owned())
                    .unwrap_or_else(|| "no error given".to_string())
            )),
            None => Err("Slack's answer has no `ok`".to_string()),
        }
    }

    fn refused(&self, refusal: &Refusal) -> Option<Answer> {
        // Slack shows the person who typed a command only a 200's body; a
        // command that does not parse is answered with what is wrong.
        match refusal {
            Refusal::Malformed(problem) => Some(Answer::json(
                200,
                &message::ephemeral(&message::escape(problem)),
            )),
            Refusal::TooLarge { .. }
            | Refusal::Unauthenticated(_)
            | Refusal::Stale { .. }
            | Refusal::Replayed => None,
        }
    }

    fn decisions_on_open_cases_only(&self) -> bool {
        // The buttons ask for a decision on an open case; a click once it
        // is decided answers with the decision.
        true
    }

    fn follow_up(&self, request: &Request<'_>, outcomes: &[Outcome]) -> Vec<Call> {
        if request.endpoint != "actions" {
            return Vec::new();
        }
        let Some(place) = Form::parse(request.body)
            .ok()
            .and_then(|form| form.get("payload").and_then(interaction::click_place))
        else {
            return Vec::new();
        };
        let text = message::outcome_text(outcomes);
        vec![message::post_ephemeral(
            &self.web_api(),
            &place.channel,
            &place.user,
            &text,
        )]
    }
}

/// An `https://` URL without a trailing slash (`http://` only to this
/// machine, for a local fake: the bot token must not cross a network in
/// the clear).
fn checked_url(url: &str, setting: &str) -> Result<String, String> {
    let url = url.trim_end_matches('/');
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        let host = if rest.starts_with('[') {
            rest.split(']')
                .next()
                .map(|host| &host[1..])
                .unwrap_or_default()
        } else {
            host
        };
        if !matches!(host, "127.0.0.1" | "localhost" | "::1") {
            return Err(format!(
                "{setting} `{}` is plain http to another machine; use https",
                custody_core::text::escape(url)
            ));
        }
        rest
    } else {
        return Err(format!(
            "{setting} `{}` is not an https URL",
            custody_core::text::escape(url)
        ));
    };
    if rest.is_empty()
        || rest.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '|' | '"' | '?' | '#')
        })
    {
        return Err(format!(
            "{setting} `{}` is not a plain URL (no spaces, query or fragment)",
            custody_core::text::escape(url)
        ));
    }
    Ok(url.to_string())
}
