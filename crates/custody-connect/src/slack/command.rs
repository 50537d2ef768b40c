//! The `/custody` slash command.
//!
//! Slack posts a slash command form-encoded, with the text after the command
//! in `text` (`&`, `<` and `>` escaped as HTML entities). The grammar stays
//! close to `custody request`'s flags:
//!
//! ```text
//! /custody request SUBJECT ENTITLEMENT [--change KIND] [--resource RESOURCE]
//!                  [--duration DURATION] [--ticket SYSTEM:KEY] [--justification TEXT]
//! /custody request --subject SUBJECT --entitlement ENTITLEMENT [...]
//! /custody help
//! ```
//!
//! - `SUBJECT` is `KIND:ID` (`user:alice`, `service_account:ci`, ...);
//! - `--change` is grant (the default), revoke, create, rotate, delete or
//!   modify; `--duration` is a whole number and a unit (`30m`, `8h`, `7d`);
//! - a flag's value follows it (`--ticket jira:SEC-1`) or an `=`
//!   (`--ticket=jira:SEC-1`); a value with spaces is quoted with `"` or `'`,
//!   or with the typographic quotes Slack's clients often substitute
//!   (`“...”`, `‘...’`);
//! - each flag is given at most once.
//!
//! A command that does not parse is refused as malformed, with what is
//! wrong and the usage, and records nothing.

use std::str::FromStr;

use custody_core::model::{parse_duration, validate_text, Change, ChangeKind, Subject, Ticket};

use crate::{Action, Refusal};

/// What `/custody help` and every refused command show.
pub const USAGE: &str = "Usage: `/custody request SUBJECT ENTITLEMENT [--change grant|revoke|create|rotate|delete|modify] [--resource RESOURCE] [--duration 8h] [--ticket SYSTEM:KEY] [--justification \"why\"]`, e.g. `/custody request user:alice admins-prod --ticket jira:SEC-1 --justification \"incident 4711\"`.";

/// The flags `request` takes, as the CLI spells them.
const FLAGS: [&str; 7] = [
    "subject",
    "entitlement",
    "change",
    "resource",
    "duration",
    "ticket",
    "justification",
];

/// Parses a command's text (as Slack sent it, entities and all) into the
/// action it asks for.
pub(crate) fn parse_text(text: &str) -> Result<Action, Refusal> {
    let text = unescape_entities(text);
    let words = split_words(&text)?;
    let Some((verb, arguments)) = words.split_first() else {
        return Err(refuse("no subcommand was given"));
    };
    match verb.as_str() {
        "request" => parse_request(arguments),
        "help" => Err(Refusal::Malformed(USAGE.to_string())),
        other => Err(refuse(&format!(
            "`{}` is not a subcommand (the subcommands are request and help)",
            shown(other)
        ))),
    }
}

fn parse_request(arguments: &[String]) -> Result<Action, Refusal> {
    let mut positional: Vec<&str> = Vec::new();
    let mut flags: Vec<(&'static str, String)> = Vec::new();
    let mut index = 0;
    while index < arguments.len() {
        let word = &arguments[index];
        index += 1;
        let Some(flag) = word.strip_prefix("--") else {
            positional.push(word);
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (flag, None),
        };
        let Some(name) = FLAGS.iter().copied().find(|known| *known == name) else {
            return Err(refuse(&format!(
                "`--{}` is not a flag of request (the flags are --{})",
                shown(name),
                FLAGS.join(", --")
            )));
        };
        let value = match inline {
            Some(value) => value,
            None => {
                let value = arguments
                    .get(index)
                    .ok_or_else(|| refuse(&format!("`--{name}` needs a value")))?;
                index += 1;
                value.clone()
            }
        };
        if flags.iter().any(|(known, _)| *known == name) {
            return Err(refuse(&format!("`--{name}` is given more than once")));
        }
        flags.push((name, value));
    }
    let flag = |name: &str| {
        flags
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| value.as_str())
    };
    // The SUBJECT and ENTITLEMENT not given as flags are the positional
    // words, in that order.
    let expected =
        usize::from(flag("subject").is_none()) + usize::from(flag("entitlement").is_none());
    if positional.len() < expected {
        return Err(refuse("request needs a SUBJECT and an ENTITLEMENT"));
    }
    if positional.len() > expected {
        let extra: Vec<String> = positional[expected..]
            .iter()
            .map(|word| format!("`{}`", shown(word)))
            .collect();
        return Err(refuse(&format!(
            "request takes one SUBJECT and one ENTITLEMENT; these words are left over: {}",
            extra.join(", ")
        )));
    }
    let mut words = positional.into_iter();
    let (Some(subject), Some(entitlement)) = (
        flag("subject").or_else(|| words.next()),
        flag("entitlement").or_else(|| words.next()),
    ) else {
        return Err(refuse("request needs a SUBJECT and an ENTITLEMENT"));
    };
    let subject = Subject::from_str(subject).map_err(|error| refuse(&error.to_string()))?;
    let kind = match flag("change") {
        Some(kind) => ChangeKind::from_str(kind).map_err(|error| refuse(&error.to_string()))?,
        None => ChangeKind::Grant,
    };
    let duration = flag("duration")
        .map(parse_duration)
        .transpose()
        .map_err(|error| refuse(&error.to_string()))?;
    let change = Change::new(
        subject,
        kind,
        entitlement.to_string(),
        flag("resource").map(str::to_string),
        duration,
    )
    .map_err(|error| refuse(&error.to_string()))?;
    let ticket = flag("ticket")
        .map(Ticket::from_str)
        .transpose()
        .map_err(|error| refuse(&error.to_string()))?;
    let justification = flag("justification")
        .map(|text| validate_text("justification", text))
        .transpose()
        .map_err(|error| refuse(&error.to_string()))?;
    Ok(Action::Request {
        change,
        justification,
        ticket,
        case: None,
    })
}

/// A refusal saying what is wrong, then the usage.
fn refuse(problem: &str) -> Refusal {
    Refusal::Malformed(format!("The command was not recorded: {problem}. {USAGE}"))
}

/// A word of the user's, quoted in a refusal: escaped, and cut short.
fn shown(word: &str) -> String {
    let cut: String = word.chars().take(64).collect();
    custody_core::text::escape(&cut).into_owned()
}

/// Undoes the three entities Slack escapes in a command's text (`&amp;`
/// last, so `&amp;lt;` stays the text `&lt;`).
fn unescape_entities(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Splits the text into words at whitespace, keeping quoted runs together.
fn split_words(text: &str) -> Result<Vec<String>, Refusal> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut closing: Option<char> = None;
    for character in text.chars() {
        if let Some(close) = closing {
            if character == close {
                closing = None;
            } else {
                current.push(character);
            }
            continue;
        }
        match character {
            '"' => (closing, in_word) = (Some('"'), true),
            '\'' => (closing, in_word) = (Some('\''), true),
            '\u{201c}' => (closing, in_word) = (Some('\u{201d}'), true),
            '\u{2018}' => (closing, in_word) = (Some('\u{2019}'), true),
            whitespace if whitespace.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            other => {
                current.push(other);
                in_word = true;
            }
        }
    }
    if let Some(close) = closing {
        return Err(refuse(&format!(
            "a quote is not closed (expected `{close}`)"
        )));
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> (Change, Option<String>, Option<Ticket>) {
        match parse_text(text) {
            Ok(Action::Request {
                change,
                justification,
                ticket,
                case: None,
            }) => (change, justification, ticket),
            other => panic!("{text}: {other:?}"),
        }
    }

    fn refused(text: &str) -> String {
        match parse_text(text) {
            Err(Refusal::Malformed(message)) => message,
            other => panic!("{text}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_documented_example_parses() {
        let (change, justification, ticket) = request(
            "request user:alice admins-prod --ticket jira:SEC-1 --justification \"incident 4711, db down\"",
        );
        assert_eq!(change.subject().to_string(), "user:alice");
        assert_eq!(change.entitlement(), "admins-prod");
        assert_eq!(change.kind(), ChangeKind::Grant);
        assert_eq!(change.resource(), None);
        assert_eq!(change.duration_seconds(), None);
        assert_eq!(justification.as_deref(), Some("incident 4711, db down"));
        assert_eq!(ticket.unwrap().to_string(), "jira:SEC-1");
    }

    #[test]
    fn every_flag_and_spelling() {
        let (change, justification, ticket) = request(
            "  request   --subject=service_account:ci  --entitlement deploy --change=rotate --resource “prod db” --duration 8h --justification ‘key leaked’ ",
        );
        assert_eq!(change.subject().to_string(), "service_account:ci");
        assert_eq!(change.entitlement(), "deploy");
        assert_eq!(change.kind(), ChangeKind::Rotate);
        assert_eq!(change.resource(), Some("prod db"));
        assert_eq!(change.duration_seconds(), Some(8 * 3600));
        assert_eq!(justification.as_deref(), Some("key leaked"));
        assert_eq!(ticket, None);
        // The subject as a flag, the entitlement positional.
        let (change, _, _) = request("request admins --subject group:ops");
        assert_eq!(change.subject().to_string(), "group:ops");
        assert_eq!(change.entitlement(), "admins");
        // Slack escapes &, < and > in the text.
        let (_, justification, _) =
            request("request user:a b --justification \"R&amp;D &lt;urgent&gt; &amp;lt;\"");
        assert_eq!(justification.as_deref(), Some("R&D <urgent> &lt;"));
        // A non-breaking space separates words like a space.
        let (change, _, _) = request("request\u{a0}user:a\u{a0}b");
        assert_eq!(change.entitlement(), "b");
    }

    #[test]
    fn refusals_say_what_is_wrong_and_show_the_usage() {
        for (text, expected) in [
            ("", "no subcommand"),
            ("approve AC-1", "`approve` is not a subcommand"),
            ("request", "needs a SUBJECT and an ENTITLEMENT"),
            ("request user:alice", "needs a SUBJECT and an ENTITLEMENT"),
            ("request user:alice a b", "left over: `b`"),
            ("request user:alice a --subject user:bob", "left over: `a`"),
            ("request alice admins", "is not a subject"),
            (
                "request user:alice admins --change borrow",
                "is not a change",
            ),
            (
                "request user:alice admins --duration 8hours",
                "is not a duration",
            ),
            (
                "request user:alice admins --duration 8 hours",
                "left over: `hours`",
            ),
            (
                "request user:alice admins --ticket SEC-1",
                "is not a ticket reference",
            ),
            (
                "request user:alice admins --ticket",
                "`--ticket` needs a value",
            ),
            (
                "request user:alice admins --tikcet jira:S-1",
                "`--tikcet` is not a flag",
            ),
            (
                "request user:alice admins --ticket jira:A-1 --ticket=jira:A-2",
                "more than once",
            ),
            (
                "request user:alice admins --justification \"unclosed",
                "quote is not closed",
            ),
            (
                "request user:alice admins --justification \"\"",
                "justification must not be empty",
            ),
            ("request user:alice \"two  spaces\"", "entitlement"),
        ] {
            let message = refused(text);
            assert!(message.contains(expected), "{text}: {message}");
            assert!(
                message.contains("Usage: `/custody request"),
                "{text}: {message}"
            );
        }
        assert_eq!(refused("help"), USAGE);
    }
}
