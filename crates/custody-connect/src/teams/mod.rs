//! The Microsoft Teams connector: outgoing webhook commands in, the answer
//! card out.
//!
//! A Teams outgoing webhook posts every message that @mentions it in a
//! channel as a Bot Framework activity, signed with
//! `Authorization: HMAC <base64 HMAC-SHA256 of the body>` under the
//! base64-decoded security token Teams shows when the webhook is created.
//! The connector reads two commands from the message text:
//!
//! ```text
//! @Custody approve AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b71 [comment]
//! @Custody deny AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b71 [reason]
//! ```
//!
//! The external user is the sender's `from.aadObjectId`, the external ID
//! the activity's `id`, and the window the activity's `timestamp`. Teams
//! waits five seconds for a synchronous answer, which appears as a reply in
//! the thread: an Adaptive Card stating what was recorded (or why not). An
//! outgoing webhook can call no Teams API, so nothing is written back.

mod activity;

#[cfg(test)]
mod tests;

use base64::Engine;
use serde::Deserialize;

use crate::config::{default_max_body_bytes, default_window_seconds, Secret};
use crate::{
    signature, Answer, Connector, Inbound, Outcome, OutcomeKind, Refusal, Request, Signed,
};

/// The settings of a `kind = "teams"` connector.
///
/// ```toml
/// [[connectors]]
/// name = "teams"
/// kind = "teams"
/// secret = "vqF0En..."    # the security token Teams shows, base64 as shown
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// The connector's name.
    pub name: String,
    /// The outgoing webhook's security token, base64 as Teams shows it.
    pub secret: Secret,
    /// Seconds a signed request stays acceptable after its `timestamp`.
    #[serde(default = "default_window_seconds")]
    pub window_seconds: u64,
    /// The largest accepted body.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

impl TeamsConfig {
    /// Checks the settings and builds the connector.
    pub fn build(&self) -> Result<Box<dyn Connector>, String> {
        Ok(Box::new(Teams::new(self)?))
    }
}

/// The Teams connector, built from a checked [`TeamsConfig`].
pub struct Teams {
    key: Vec<u8>,
    window_seconds: u64,
}

impl Teams {
    /// Checks `config` and builds the connector, or says what is wrong.
    pub fn new(config: &TeamsConfig) -> Result<Teams, String> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(config.secret.expose().trim())
            .map_err(|_| {
                format!(
                    "connector `{}` (teams): secret is not base64; paste the security token exactly as Teams shows it when the outgoing webhook is created",
                    config.name
                )
            })?;
        if key.len() < 16 {
            return Err(format!(
                "connector `{}` (teams): secret decodes to {} bytes; the security token Teams issues is 32",
                config.name,
                key.len()
            ));
        }
        Ok(Teams {
            key,
            window_seconds: config.window_seconds,
        })
    }
}

impl Connector for Teams {
    fn kind(&self) -> &'static str {
        "teams"
    }

    fn verify(&self, request: &Request<'_>, now_unix: u64) -> Result<Signed, Refusal> {
        if request.headers.repeated("authorization") {
            return Err(Refusal::Unauthenticated(
                "the Authorization header is sent more than once".into(),
            ));
        }
        let header = request.headers.get("authorization").ok_or_else(|| {
            Refusal::Unauthenticated("the Authorization header is missing".into())
        })?;
        let encoded = header.strip_prefix("HMAC ").ok_or_else(|| {
            Refusal::Unauthenticated("the Authorization header is not `HMAC <signature>`".into())
        })?;
        let tag = signature::decode_base64_tag(encoded, "Authorization")?;
        let verified = signature::verify(&self.key, &[request.body], &tag)?;
        // Only a signed body is read, for the time Teams sent it.
        let signed_at = activity::Activity::from_body(request.body)?
            .sent_at()?
            .unix_seconds;
        signature::check_window(signed_at, now_unix, self.window_seconds)?;
        Ok(Signed {
            verified,
            fingerprint: tag,
            signed_at,
        })
    }

    fn parse(&self, request: &Request<'_>) -> Result<Vec<Inbound>, Refusal> {
        activity::Activity::from_body(request.body)?.inbound()
    }

    fn answer(&self, outcomes: &[Outcome]) -> Answer {
        Answer::json(200, &card::reply(outcomes))
    }

    /// A command that does not parse is answered in the thread, with the
    /// reason and the usage: Teams shows only a generic error for anything
    /// but a 200.
    fn refused(&self, refusal: &Refusal) -> Option<Answer> {
        match refusal {
            Refusal::Malformed(reason) => Some(Answer::json(200, &card::refusal(reason))),
            _ => None,
        }
    }
}

/// The reply: a message activity with one Adaptive Card.
mod card {
    use super::{Outcome, OutcomeKind};

    /// The usage, for a message that is no command.
    pub const USAGE: &str = "Usage: `approve AC-… [comment]` or `deny AC-… [reason]`";

    pub fn reply(outcomes: &[Outcome]) -> serde_json::Value {
        let mut body = Vec::new();
        if outcomes.is_empty()
            || outcomes
                .iter()
                .all(|outcome| outcome.kind == OutcomeKind::Ignored)
        {
            body.push(text_block("Custody did not understand that.", true));
            body.push(text_block(USAGE, false));
        }
        for outcome in outcomes {
            if outcome.kind == OutcomeKind::Ignored {
                continue;
            }
            body.push(text_block(headline(outcome), true));
            let mut facts = Vec::new();
            if let Some(case_id) = &outcome.case_id {
                facts.push(fact("Case", case_id.as_str()));
            }
            match &outcome.kind {
                OutcomeKind::Recorded { event, state } => {
                    facts.push(fact("Recorded", event));
                    facts.push(fact("State", state));
                }
                OutcomeKind::AlreadyRecorded { state } => facts.push(fact("State", state)),
                OutcomeKind::Refused { rule } => facts.push(fact("Rule", rule)),
                OutcomeKind::Unmapped | OutcomeKind::NotFound | OutcomeKind::Ignored => {}
            }
            if let Some(principal) = &outcome.principal {
                facts.push(fact("As", principal));
            }
            if !facts.is_empty() {
                body.push(serde_json::json!({"type": "FactSet", "facts": facts}));
            }
            if !outcome.message.is_empty() {
                body.push(text_block(&outcome.message, false));
            }
        }
        message(body)
    }

    /// The answer to a command that does not parse.
    pub fn refusal(reason: &str) -> serde_json::Value {
        message(vec![
            text_block("Refused: Custody could not read that command.", true),
            text_block(reason, false),
            text_block(USAGE, false),
        ])
    }

    fn message(body: Vec<serde_json::Value>) -> serde_json::Value {
        serde_json::json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "type": "AdaptiveCard",
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "version": "1.4",
                    "body": body,
                },
            }],
        })
    }

    fn headline(outcome: &Outcome) -> &'static str {
        match outcome.kind {
            OutcomeKind::Recorded { .. } => "Recorded.",
            OutcomeKind::AlreadyRecorded { .. } => "Already recorded: nothing new was added.",
            OutcomeKind::Refused { .. } => "Refused.",
            OutcomeKind::Unmapped => {
                "Refused: your Teams account is not mapped to a Custody principal. Ask an administrator to run `custody connector map`."
            }
            OutcomeKind::NotFound => "Not found: there is no such case.",
            OutcomeKind::Ignored => "Nothing to do.",
        }
    }

    fn text_block(text: &str, bold: bool) -> serde_json::Value {
        let mut block = serde_json::json!({"type": "TextBlock", "text": text, "wrap": true});
        if bold {
            block["weight"] = "Bolder".into();
        }
        block
    }

    fn fact(title: &str, value: &str) -> serde_json::Value {
        serde_json::json!({"title": title, "value": value})
    }
}
