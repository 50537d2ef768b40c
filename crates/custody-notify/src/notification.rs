//! What a notification says, independent of the channel that carries it.

use serde::{Deserialize, Serialize};

/// One message to deliver: what happened to which case, who did it, and
/// where to look.
///
/// The same value is rendered differently by each channel (a CloudEvent for
/// webhooks and NATS, a multipart mail, a chat card). It serialises to JSON,
/// so an outbox can store it as it is and hand it back on every attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique per message and stable across retries: receivers drop
    /// duplicates on it. It becomes the CloudEvents `id`, the NATS
    /// `Nats-Msg-Id` and the mail's `Message-ID`, so it must be 1 to 200
    /// characters of RFC 5322 `dot-atom-text` (letters, digits and
    /// ``!#$%&'*+-/=?^_`{|}~``, with single dots between them), which UUIDs
    /// and ULIDs are.
    pub delivery_id: String,
    /// The case the notification is about (`AC-...`).
    pub case_id: String,
    /// The ledger event that owes the notification.
    pub event_id: String,
    /// What happened, in lower snake case: `approval_needed`,
    /// `case_approved`, `case_denied`, `execution_completed`,
    /// `review_needed`, `break_glass_used`, `revocation_due`,
    /// `access_expiring`, `escalation`, ... It becomes the CloudEvents type
    /// `dev.custody.<kind>`.
    pub kind: String,
    /// One line: the mail subject and the chat headline.
    pub title: String,
    /// The plain-text body.
    pub text: String,
    /// A link back to the case in the web console (`http` or `https`).
    #[serde(default)]
    pub case_url: Option<String>,
    /// When the event happened, RFC 3339 in UTC (`2026-01-02T03:04:05Z`).
    pub occurred_at: String,
    /// Who did what, for whom, and how it came in.
    pub actor: NotificationActor,
    /// Extra structured fields, merged into the CloudEvents `data` object.
    #[serde(default)]
    pub data: serde_json::Value,
}

/// The principal behind the event that owes the notification, as receivers
/// see it: plain strings, flattened from the ledger's `custody_core::Actor`
/// (which this is not, hence the name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationActor {
    /// The acting principal's stable identifier.
    pub principal: String,
    /// What kind of principal it is.
    pub kind: ActorKind,
    /// Its organisation, when known.
    #[serde(default)]
    pub org: Option<String>,
    /// The principal or organisation it acted for, when not itself.
    #[serde(default)]
    pub on_behalf_of: Option<String>,
    /// How the action came in (`api`, `cli`, `web`, `chat`, a connector
    /// name, `system`).
    pub via: String,
}

/// What kind of principal acted; the same four kinds as Custody's
/// principals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A person.
    Human,
    /// A workload or service account acting on its own behalf.
    Service,
    /// A provisioning bot, connector or timer.
    Automation,
    /// A third-party operator acting for us under a delegation grant.
    Vendor,
}

impl ActorKind {
    /// The lower-case name used in configuration and JSON (`human`,
    /// `service`, `automation`, `vendor`).
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Human => "human",
            ActorKind::Service => "service",
            ActorKind::Automation => "automation",
            ActorKind::Vendor => "vendor",
        }
    }

    /// The CloudEvents `authcontext` extension's `authtype` for this kind.
    ///
    /// Humans and vendor operators are `user` (accounts of people registered
    /// in the infrastructure); services are `service_account`; automation
    /// (timers, connectors, provisioning bots) is `system`, the value the
    /// extension gives for "a cloud platform or other system service
    /// triggers an event", such as an expiry coming due.
    pub fn authtype(self) -> &'static str {
        match self {
            ActorKind::Human | ActorKind::Vendor => "user",
            ActorKind::Service => "service_account",
            ActorKind::Automation => "system",
        }
    }
}

/// The longest `delivery_id` accepted (a mail `Message-ID` line must stay
/// well under the 998-character limit).
const MAX_DELIVERY_ID_LEN: usize = 200;

/// Why a notification cannot be sent on any channel.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("notification field {field}: {reason}")]
pub struct InvalidNotification {
    /// The field at fault (`delivery_id`, `kind`, `case_url`, ...).
    pub field: &'static str,
    /// What is wrong with it, and what would be right.
    pub reason: String,
}

impl Notification {
    /// Checks what every channel relies on, so that a notification fails
    /// the same way on every channel: a usable `delivery_id`, a `kind` that
    /// forms a valid CloudEvents type, non-empty identifiers and title, an
    /// RFC 3339 `occurred_at`, and an `http(s)` `case_url`.
    ///
    /// [`crate::Channel::deliver`] calls it first; an outbox may call it
    /// before queueing, to refuse a malformed notification at the source.
    pub fn check(&self) -> Result<(), InvalidNotification> {
        let invalid = |field, reason: String| Err(InvalidNotification { field, reason });
        if let Err(reason) = check_delivery_id(&self.delivery_id) {
            return invalid("delivery_id", reason);
        }
        if self.kind.is_empty()
            || !self
                .kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return invalid(
                "kind",
                format!(
                    "`{}` is not lower snake case (letters a-z, digits and `_`), so it cannot form the CloudEvents type dev.custody.<kind>",
                    self.kind.escape_debug()
                ),
            );
        }
        for (field, value) in [
            ("case_id", &self.case_id),
            ("event_id", &self.event_id),
            ("title", &self.title),
            ("actor.principal", &self.actor.principal),
        ] {
            if value.trim().is_empty() {
                return invalid(field, "is empty".to_string());
            }
        }
        if !is_rfc3339(&self.occurred_at) {
            return invalid(
                "occurred_at",
                format!(
                    "`{}` is not an RFC 3339 timestamp such as 2026-01-02T03:04:05Z",
                    self.occurred_at.escape_debug()
                ),
            );
        }
        if let Some(url) = &self.case_url {
            let problem = match reqwest::Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => None,
                Ok(parsed) => Some(format!(
                    "has the scheme `{}`; only http and https links are put in front of people",
                    parsed.scheme()
                )),
                Err(error) => Some(format!("`{}` is not a URL: {error}", url.escape_debug())),
            };
            if let Some(reason) = problem {
                return invalid("case_url", reason);
            }
        }
        Ok(())
    }
}

/// Checks that a delivery ID is RFC 5322 `dot-atom-text` of a sane length.
fn check_delivery_id(delivery_id: &str) -> Result<(), String> {
    fn is_atext(c: char) -> bool {
        c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
    }
    if delivery_id.is_empty() || delivery_id.len() > MAX_DELIVERY_ID_LEN {
        return Err(format!(
            "must be 1 to {MAX_DELIVERY_ID_LEN} characters long (it has {})",
            delivery_id.len()
        ));
    }
    let well_formed = delivery_id
        .split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(is_atext));
    if !well_formed {
        return Err(format!(
            "`{}` is not usable as a message ID: use letters, digits and -_+=~ (single dots between them), as UUIDs and ULIDs do",
            delivery_id.escape_debug()
        ));
    }
    Ok(())
}

/// A shape check for RFC 3339 date-times: `YYYY-MM-DDTHH:MM:SS`, an
/// optional fraction, then `Z` or `±HH:MM`, with fields in range.
fn is_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let slice = bytes.get(range)?;
        if slice.iter().all(u8::is_ascii_digit) {
            Some(
                slice
                    .iter()
                    .fold(0, |acc, b| acc * 10 + u32::from(b - b'0')),
            )
        } else {
            None
        }
    };
    let fixed = (|| {
        let month = digits(5..7)?;
        let day = digits(8..10)?;
        let hour = digits(11..13)?;
        let minute = digits(14..16)?;
        let second = digits(17..19)?;
        digits(0..4)?;
        let separators = bytes.get(4) == Some(&b'-')
            && bytes.get(7) == Some(&b'-')
            && matches!(bytes.get(10), Some(b'T' | b't'))
            && bytes.get(13) == Some(&b':')
            && bytes.get(16) == Some(&b':');
        Some(
            separators
                && (1..=12).contains(&month)
                && (1..=31).contains(&day)
                && hour < 24
                && minute < 60
                && second <= 60,
        )
    })();
    if fixed != Some(true) {
        return false;
    }
    let mut rest = &bytes[19..];
    if rest.first() == Some(&b'.') {
        let fraction = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if fraction == 0 {
            return false;
        }
        rest = &rest[1 + fraction..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit())
                && (h1 - b'0') * 10 + (h2 - b'0') < 24
                && (m1 - b'0') * 10 + (m2 - b'0') < 60
        }
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn sample() -> Notification {
        Notification {
            delivery_id: "01JABCDEF0123456789.email".to_string(),
            case_id: "AC-0190f0c1d2e37b4a8c9d0e1f2a3b4c5d".to_string(),
            event_id: "ev-7".to_string(),
            kind: "approval_needed".to_string(),
            title: "Approval needed".to_string(),
            text: "Grant admin".to_string(),
            case_url: Some("https://custody.example/cases/AC-1".to_string()),
            occurred_at: "2026-01-02T03:04:05Z".to_string(),
            actor: NotificationActor {
                principal: "alice".to_string(),
                kind: ActorKind::Human,
                org: None,
                on_behalf_of: None,
                via: "web".to_string(),
            },
            data: json!({}),
        }
    }

    #[test]
    fn authtype_mapping_follows_the_authcontext_extension() {
        assert_eq!(ActorKind::Human.authtype(), "user");
        assert_eq!(ActorKind::Vendor.authtype(), "user");
        assert_eq!(ActorKind::Service.authtype(), "service_account");
        assert_eq!(ActorKind::Automation.authtype(), "system");
    }

    #[test]
    fn actor_kind_round_trips_as_snake_case() {
        for kind in [
            ActorKind::Human,
            ActorKind::Service,
            ActorKind::Automation,
            ActorKind::Vendor,
        ] {
            let text = serde_json::to_string(&kind).unwrap();
            assert_eq!(text, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ActorKind>(&text).unwrap(), kind);
        }
    }

    #[test]
    fn a_well_formed_notification_passes() {
        assert_eq!(sample().check(), Ok(()));
    }

    #[test]
    fn delivery_ids_must_be_dot_atoms() {
        for good in [
            "0190f0c1-d2e3-7b4a-8c9d-0e1f2a3b4c5d",
            "01JABCDEF0123456789",
            "AC-1.ev-7.email",
            "a",
        ] {
            assert_eq!(check_delivery_id(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "has space",
            "a..b",
            ".leading",
            "trailing.",
            "colon:in",
            "angle<",
            "new\nline",
            "ünicode",
        ] {
            assert!(check_delivery_id(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check_delivery_id(&"x".repeat(201)).is_err());
        assert!(check_delivery_id(&"x".repeat(200)).is_ok());
    }

    #[test]
    fn checks_name_the_broken_field() {
        let field_of = |notification: Notification| notification.check().unwrap_err().field;

        let mut n = sample();
        n.kind = "Approval-Needed".to_string();
        assert_eq!(field_of(n), "kind");

        let mut n = sample();
        n.case_id = " ".to_string();
        assert_eq!(field_of(n), "case_id");

        let mut n = sample();
        n.delivery_id = "a b".to_string();
        assert_eq!(field_of(n), "delivery_id");

        let mut n = sample();
        n.case_url = Some("javascript:alert(1)".to_string());
        let error = n.check().unwrap_err();
        assert_eq!(error.field, "case_url");
        assert!(error.to_string().contains("scheme `javascript`"), "{error}");

        let mut n = sample();
        n.occurred_at = "yesterday".to_string();
        assert_eq!(field_of(n), "occurred_at");
    }

    #[test]
    fn rfc3339_shape() {
        for good in [
            "2026-01-02T03:04:05Z",
            "2026-01-02T03:04:05.123456Z",
            "2026-12-31T23:59:60Z",
            "2026-01-02T03:04:05+00:00",
            "2026-01-02t03:04:05-05:30",
        ] {
            assert!(is_rfc3339(good), "{good}");
        }
        for bad in [
            "",
            "2026-01-02",
            "2026-01-02 03:04:05Z",
            "2026-13-02T03:04:05Z",
            "2026-01-02T24:04:05Z",
            "2026-01-02T03:04:05",
            "2026-01-02T03:04:05.Z",
            "2026-01-02T03:04:05+0000",
            "2026-01-02T03:04:05+25:00",
            "2026-01-02T03:04:05Zjunk",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }
}
