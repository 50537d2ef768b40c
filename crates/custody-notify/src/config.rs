//! Channel configuration, as read from one TOML table per channel, and its
//! validation.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

/// How to reach one notification channel.
///
/// Deserialised from a table with a `type` key, for example:
///
/// ```toml
/// type = "webhook"
/// name = "siem"
/// url = "https://hooks.example.com/custody"
/// secret = "a long random string"
/// ```
///
/// Unknown keys are refused, so a misspelt setting fails at load instead of
/// being silently ignored. Call [`ChannelConfig::validate`] (or
/// [`crate::Channel::connect`], which does) before use.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelConfig {
    /// An HTTP(S) endpoint that receives signed CloudEvents.
    Webhook {
        /// The channel's name, unique in the configuration.
        name: String,
        /// Where to POST (`http` or `https`). Redirects are never followed.
        url: String,
        /// The HMAC-SHA256 key (its UTF-8 bytes) for `Custody-Signature`.
        secret: Secret,
        /// The CloudEvents `source` attribute.
        #[serde(default = "default_source")]
        source: String,
        /// The bound on one delivery, connection included.
        #[serde(default = "default_timeout_seconds")]
        timeout_seconds: u64,
    },
    /// An SMTP relay.
    Email {
        /// The channel's name, unique in the configuration.
        name: String,
        /// The relay's host name or IP address.
        host: String,
        /// The relay's port; defaults to 587 for `starttls`, 465 for
        /// `implicit` and 25 for `none`.
        #[serde(default)]
        port: Option<u16>,
        /// How the connection is encrypted; `starttls` unless set.
        #[serde(default)]
        tls: EmailTls,
        /// The user to authenticate as, if the relay wants one.
        #[serde(default)]
        username: Option<String>,
        /// The password for `username`.
        #[serde(default)]
        password: Option<Secret>,
        /// The sender, `Name <address>` or a bare address.
        from: String,
        /// The default recipients, used when a delivery names none.
        #[serde(default)]
        to: Vec<String>,
        /// The bound on one delivery, connection included.
        #[serde(default = "default_timeout_seconds")]
        timeout_seconds: u64,
    },
    /// A Slack or Microsoft Teams incoming webhook.
    Chat {
        /// The channel's name, unique in the configuration.
        name: String,
        /// The incoming-webhook URL. It carries its credential in the path,
        /// so it is kept out of logs and error messages.
        url: Secret,
        /// Which message shape the webhook expects.
        flavor: ChatFlavor,
        /// The bound on one delivery, connection included.
        #[serde(default = "default_timeout_seconds")]
        timeout_seconds: u64,
    },
    /// A NATS JetStream subject.
    Nats {
        /// The channel's name, unique in the configuration.
        name: String,
        /// The server, `nats://host:port` (or `tls://` to require TLS);
        /// credentials may be given as `nats://user:password@host:port`.
        url: Secret,
        /// The subject to publish to; a JetStream stream must capture it.
        subject: String,
        /// The CloudEvents `source` attribute.
        #[serde(default = "default_source")]
        source: String,
        /// The bound on one delivery, connection and acknowledgement included.
        #[serde(default = "default_timeout_seconds")]
        timeout_seconds: u64,
    },
}

/// How an SMTP connection is encrypted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTls {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No encryption: only allowed to a loopback host (a local relay).
    None,
}

/// Which chat service's incoming-webhook format to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatFlavor {
    /// Slack incoming webhooks (`text` plus Block Kit `blocks`).
    Slack,
    /// Microsoft Teams workflow webhooks (an Adaptive Card attachment).
    Teams,
}

/// A configuration value that must stay out of logs: `Debug` prints
/// `Secret([redacted])`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

/// Why a channel configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A channel has no name.
    #[error("a {kind} channel has an empty name; give every channel a name, which error messages and the trail use")]
    EmptyName {
        /// The channel type (`webhook`, `email`, `chat`, `nats`).
        kind: &'static str,
    },
    /// A URL does not parse, or has no host.
    #[error("{kind} channel `{channel}`: {field} is not a usable URL: {detail}")]
    InvalidUrl {
        /// The channel type.
        kind: &'static str,
        /// The channel's name.
        channel: String,
        /// The setting.
        field: &'static str,
        /// What is wrong (without the URL when it holds a credential).
        detail: String,
    },
    /// A URL has a scheme the channel cannot use.
    #[error("{kind} channel `{channel}`: url has the scheme `{scheme}`; use {expected}")]
    UnsupportedScheme {
        /// The channel type.
        kind: &'static str,
        /// The channel's name.
        channel: String,
        /// The scheme found.
        scheme: String,
        /// The schemes allowed.
        expected: &'static str,
    },
    /// A webhook has an empty secret.
    #[error("webhook channel `{channel}`: secret is empty; set a long random string and give the receiver the same one, which it checks Custody-Signature with")]
    EmptySecret {
        /// The channel's name.
        channel: String,
    },
    /// `tls = "none"` with a host that is not loopback.
    #[error("email channel `{channel}`: tls = \"none\" sends mail (and any password) in clear text, so it is only allowed to a loopback host (localhost, 127.0.0.0/8, ::1), not `{host}`; use tls = \"starttls\" or \"implicit\"")]
    CleartextToRemoteHost {
        /// The channel's name.
        channel: String,
        /// The host that is not loopback.
        host: String,
    },
    /// The SMTP host is empty or not a host name.
    #[error("email channel `{channel}`: host `{host}` is not a host name or IP address (give just the name, without scheme or port)")]
    InvalidHost {
        /// The channel's name.
        channel: String,
        /// The host as configured.
        host: String,
    },
    /// A mail address does not parse.
    #[error(
        "email channel `{channel}`: {field} address `{address}` is not a mail address: {detail}"
    )]
    InvalidAddress {
        /// The channel's name.
        channel: String,
        /// `from` or `to`.
        field: &'static str,
        /// The address as configured.
        address: String,
        /// What the parser said.
        detail: String,
    },
    /// Only one of username and password is set.
    #[error("email channel `{channel}`: username and password must be set together (or neither)")]
    IncompleteCredentials {
        /// The channel's name.
        channel: String,
    },
    /// The timeout is zero or unreasonably long.
    #[error("{kind} channel `{channel}`: timeout_seconds = {value} is out of range; use 1 to {max}", max = MAX_TIMEOUT_SECONDS)]
    InvalidTimeout {
        /// The channel type.
        kind: &'static str,
        /// The channel's name.
        channel: String,
        /// The value found.
        value: u64,
    },
    /// The CloudEvents source is empty.
    #[error("{kind} channel `{channel}`: source is empty; leave it out for the default `custody`")]
    EmptySource {
        /// The channel type.
        kind: &'static str,
        /// The channel's name.
        channel: String,
    },
    /// The NATS subject cannot be published to.
    #[error("nats channel `{channel}`: subject `{subject}` cannot be published to: {detail}")]
    InvalidSubject {
        /// The channel's name.
        channel: String,
        /// The subject as configured.
        subject: String,
        /// What is wrong.
        detail: &'static str,
    },
    /// The HTTP or SMTP client could not be built.
    #[error("{kind} channel `{channel}`: could not set up the client: {detail}")]
    Client {
        /// The channel type.
        kind: &'static str,
        /// The channel's name.
        channel: String,
        /// What failed.
        detail: String,
    },
}

/// The longest delivery bound accepted: an outbox worker holds a lease while
/// it waits, so minutes-long waits would only hide a dead receiver.
pub const MAX_TIMEOUT_SECONDS: u64 = 300;

fn default_timeout_seconds() -> u64 {
    10
}

fn default_source() -> String {
    "custody".to_string()
}

impl ChannelConfig {
    /// The channel's name.
    pub fn name(&self) -> &str {
        match self {
            ChannelConfig::Webhook { name, .. }
            | ChannelConfig::Email { name, .. }
            | ChannelConfig::Chat { name, .. }
            | ChannelConfig::Nats { name, .. } => name,
        }
    }

    /// The channel type as written in `type = "..."`.
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Webhook { .. } => "webhook",
            ChannelConfig::Email { .. } => "email",
            ChannelConfig::Chat { .. } => "chat",
            ChannelConfig::Nats { .. } => "nats",
        }
    }

    /// The bound on one delivery.
    pub fn timeout(&self) -> Duration {
        let seconds = match self {
            ChannelConfig::Webhook {
                timeout_seconds, ..
            }
            | ChannelConfig::Email {
                timeout_seconds, ..
            }
            | ChannelConfig::Chat {
                timeout_seconds, ..
            }
            | ChannelConfig::Nats {
                timeout_seconds, ..
            } => *timeout_seconds,
        };
        Duration::from_secs(seconds)
    }

    /// Checks everything that can be checked without the network: names,
    /// URLs and their schemes, secrets, addresses, the clear-text rule for
    /// mail, the NATS subject and the timeout.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let kind = self.kind();
        let channel = self.name().to_string();
        if channel.trim().is_empty() {
            return Err(ConfigError::EmptyName { kind });
        }
        let seconds = self.timeout().as_secs();
        if seconds == 0 || seconds > MAX_TIMEOUT_SECONDS {
            return Err(ConfigError::InvalidTimeout {
                kind,
                channel,
                value: seconds,
            });
        }
        match self {
            ChannelConfig::Webhook {
                url,
                secret,
                source,
                ..
            } => {
                parse_url(
                    kind,
                    &channel,
                    url,
                    &["http", "https"],
                    "http or https",
                    true,
                )?;
                if secret.expose().is_empty() {
                    return Err(ConfigError::EmptySecret { channel });
                }
                if source.trim().is_empty() {
                    return Err(ConfigError::EmptySource { kind, channel });
                }
            }
            ChannelConfig::Email {
                host,
                tls,
                username,
                password,
                from,
                to,
                ..
            } => {
                if !is_host(host) {
                    return Err(ConfigError::InvalidHost {
                        channel,
                        host: host.clone(),
                    });
                }
                if *tls == EmailTls::None && !is_loopback_host(host) {
                    return Err(ConfigError::CleartextToRemoteHost {
                        channel,
                        host: host.clone(),
                    });
                }
                if username.is_some() != password.is_some() {
                    return Err(ConfigError::IncompleteCredentials { channel });
                }
                parse_mailbox(&channel, "from", from)?;
                for address in to {
                    parse_mailbox(&channel, "to", address)?;
                }
            }
            ChannelConfig::Chat { url, .. } => {
                parse_url(
                    kind,
                    &channel,
                    url.expose(),
                    &["http", "https"],
                    "http or https",
                    false,
                )?;
            }
            ChannelConfig::Nats {
                url,
                subject,
                source,
                ..
            } => {
                parse_url(
                    kind,
                    &channel,
                    url.expose(),
                    &["nats", "tls"],
                    "nats:// (or tls:// to require TLS)",
                    false,
                )?;
                check_subject(&channel, subject)?;
                if source.trim().is_empty() {
                    return Err(ConfigError::EmptySource { kind, channel });
                }
            }
        }
        Ok(())
    }
}

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself; keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Secret([redacted])")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

/// Whether a configured host name is the local machine: `localhost` or a
/// loopback address (127.0.0.0/8, ::1).
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    trimmed.eq_ignore_ascii_case("localhost")
        || trimmed.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a configured SMTP host is an IP address (IPv6 optionally in
/// brackets) or a DNS name, without scheme or port.
fn is_host(host: &str) -> bool {
    let unbracketed = host.trim_start_matches('[').trim_end_matches(']');
    unbracketed.parse::<IpAddr>().is_ok()
        || (!host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
}

/// Parses a URL and checks its scheme and host. `show_url` says whether the
/// URL may appear in the error (it may not when it holds a credential).
pub(crate) fn parse_url(
    kind: &'static str,
    channel: &str,
    url: &str,
    schemes: &[&str],
    expected: &'static str,
    show_url: bool,
) -> Result<reqwest::Url, ConfigError> {
    let invalid = |detail: String| ConfigError::InvalidUrl {
        kind,
        channel: channel.to_string(),
        field: "url",
        detail,
    };
    let parsed = reqwest::Url::parse(url).map_err(|error| {
        if show_url {
            invalid(format!("`{url}`: {error}"))
        } else {
            invalid(error.to_string())
        }
    })?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(ConfigError::UnsupportedScheme {
            kind,
            channel: channel.to_string(),
            scheme: parsed.scheme().to_string(),
            expected,
        });
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it names no host".to_string()));
    }
    Ok(parsed)
}

/// Parses a mail address.
pub(crate) fn parse_mailbox(
    channel: &str,
    field: &'static str,
    address: &str,
) -> Result<lettre::message::Mailbox, ConfigError> {
    address
        .parse::<lettre::message::Mailbox>()
        .map_err(|error| ConfigError::InvalidAddress {
            channel: channel.to_string(),
            field,
            address: address.to_string(),
            detail: error.to_string(),
        })
}

/// Checks that a NATS subject can be published to: dot-separated non-empty
/// tokens of printable characters, with no wildcard tokens.
fn check_subject(channel: &str, subject: &str) -> Result<(), ConfigError> {
    let invalid = |detail| ConfigError::InvalidSubject {
        channel: channel.to_string(),
        subject: subject.to_string(),
        detail,
    };
    if subject.is_empty() {
        return Err(invalid("it is empty"));
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains white space or control characters"));
    }
    for token in subject.split('.') {
        if token.is_empty() {
            return Err(invalid(
                "it has an empty token (a leading, trailing or doubled dot)",
            ));
        }
        if token == "*" || token == ">" {
            return Err(invalid(
                "it has a wildcard token (* or >); publish to one concrete subject",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ChannelConfig, String> {
        toml::from_str::<ChannelConfig>(text).map_err(|error| error.to_string())
    }

    fn webhook(url: &str, secret: &str) -> ChannelConfig {
        ChannelConfig::Webhook {
            name: "hook".to_string(),
            url: url.to_string(),
            secret: Secret::new(secret),
            source: default_source(),
            timeout_seconds: 10,
        }
    }

    fn email(host: &str, tls: EmailTls) -> ChannelConfig {
        ChannelConfig::Email {
            name: "mail".to_string(),
            host: host.to_string(),
            port: None,
            tls,
            username: None,
            password: None,
            from: "Custody <custody@example.com>".to_string(),
            to: vec!["ops@example.com".to_string()],
            timeout_seconds: 10,
        }
    }

    #[test]
    fn every_type_parses_from_toml_with_defaults() {
        let hook = parse(
            r#"type = "webhook"
               name = "siem"
               url = "https://hooks.example.com/custody"
               secret = "s3cret""#,
        )
        .unwrap();
        assert!(matches!(
            &hook,
            ChannelConfig::Webhook { name, source, timeout_seconds: 10, .. }
                if name == "siem" && source == "custody"
        ));
        assert_eq!(hook.validate(), Ok(()));

        let mail = parse(
            r#"type = "email"
               name = "mail"
               host = "smtp.example.com"
               from = "custody@example.com"
               to = ["a@example.com", "B <b@example.com>"]
               username = "u"
               password = "p"
               timeout_seconds = 5"#,
        )
        .unwrap();
        assert!(matches!(
            &mail,
            ChannelConfig::Email { tls: EmailTls::Starttls, port: None, to, timeout_seconds: 5, .. }
                if to.len() == 2
        ));
        assert_eq!(mail.validate(), Ok(()));

        let chat = parse(
            r#"type = "chat"
               name = "ops"
               url = "https://hooks.slack.com/services/T/B/X"
               flavor = "teams""#,
        )
        .unwrap();
        assert!(matches!(
            chat,
            ChannelConfig::Chat {
                flavor: ChatFlavor::Teams,
                ..
            }
        ));
        assert_eq!(chat.validate(), Ok(()));

        let nats = parse(
            r#"type = "nats"
               name = "bus"
               url = "nats://127.0.0.1:4222"
               subject = "custody.notifications""#,
        )
        .unwrap();
        assert_eq!(nats.kind(), "nats");
        assert_eq!(nats.timeout(), Duration::from_secs(10));
        assert_eq!(nats.validate(), Ok(()));
    }

    #[test]
    fn unknown_keys_and_types_are_refused() {
        let error = parse(
            r#"type = "webhook"
               name = "siem"
               url = "https://hooks.example.com/"
               secret = "s"
               sceret = "typo""#,
        )
        .unwrap_err();
        assert!(error.contains("sceret"), "{error}");

        let error = parse(
            r#"type = "pager"
               name = "p""#,
        )
        .unwrap_err();
        assert!(error.contains("pager"), "{error}");

        let error = parse(
            r#"type = "email"
               name = "m"
               host = "localhost"
               from = "a@example.com"
               tls = "ssl""#,
        )
        .unwrap_err();
        assert!(error.contains("ssl"), "{error}");
    }

    #[test]
    fn cleartext_mail_only_to_loopback() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "[::1]",
        ] {
            assert_eq!(email(host, EmailTls::None).validate(), Ok(()), "{host}");
        }
        for host in [
            "smtp.example.com",
            "10.0.0.1",
            "0.0.0.0",
            "localhost.example.com",
        ] {
            let error = email(host, EmailTls::None).validate().unwrap_err();
            assert!(
                matches!(&error, ConfigError::CleartextToRemoteHost { host: h, .. } if h == host),
                "{host}: {error:?}"
            );
            assert!(error.to_string().contains("starttls"), "{error}");
            assert_eq!(email(host, EmailTls::Starttls).validate(), Ok(()));
            assert_eq!(email(host, EmailTls::Implicit).validate(), Ok(()));
        }
    }

    #[test]
    fn email_settings_are_checked() {
        let mut config = email("smtp.example.com", EmailTls::Starttls);
        if let ChannelConfig::Email { from, .. } = &mut config {
            *from = "not an address".to_string();
        }
        assert!(matches!(
            config.validate(),
            Err(ConfigError::InvalidAddress { field: "from", .. })
        ));

        let mut config = email("smtp.example.com", EmailTls::Starttls);
        if let ChannelConfig::Email { to, .. } = &mut config {
            to.push("bad@@example".to_string());
        }
        assert!(matches!(
            config.validate(),
            Err(ConfigError::InvalidAddress { field: "to", .. })
        ));

        let mut config = email("smtp.example.com", EmailTls::Starttls);
        if let ChannelConfig::Email { username, .. } = &mut config {
            *username = Some("user".to_string());
        }
        assert!(matches!(
            config.validate(),
            Err(ConfigError::IncompleteCredentials { .. })
        ));

        for host in ["", "smtp://example.com", "example.com:25", "a b"] {
            assert!(
                matches!(
                    email(host, EmailTls::Starttls).validate(),
                    Err(ConfigError::InvalidHost { .. })
                ),
                "{host:?}"
            );
        }
    }

    #[test]
    fn webhook_urls_secrets_and_names_are_checked() {
        assert_eq!(webhook("http://127.0.0.1:9/x", "s").validate(), Ok(()));
        assert!(matches!(
            webhook("ftp://example.com/", "s").validate(),
            Err(ConfigError::UnsupportedScheme { scheme, .. }) if scheme == "ftp"
        ));
        assert!(matches!(
            webhook("not a url", "s").validate(),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            webhook("https://example.com/", "").validate(),
            Err(ConfigError::EmptySecret { .. })
        ));
        let mut config = webhook("https://example.com/", "s");
        if let ChannelConfig::Webhook { name, .. } = &mut config {
            *name = " ".to_string();
        }
        assert_eq!(
            config.validate(),
            Err(ConfigError::EmptyName { kind: "webhook" })
        );
        for bad in [0, MAX_TIMEOUT_SECONDS + 1] {
            let mut config = webhook("https://example.com/", "s");
            if let ChannelConfig::Webhook {
                timeout_seconds, ..
            } = &mut config
            {
                *timeout_seconds = bad;
            }
            assert!(matches!(
                config.validate(),
                Err(ConfigError::InvalidTimeout { value, .. }) if value == bad
            ));
        }
    }

    #[test]
    fn chat_and_nats_urls_never_appear_in_errors() {
        let chat = ChannelConfig::Chat {
            name: "ops".to_string(),
            url: Secret::new("hooks.slack.com/services/T0/B0/SECRETTOKEN"),
            flavor: ChatFlavor::Slack,
            timeout_seconds: 10,
        };
        let error = chat.validate().unwrap_err().to_string();
        assert!(!error.contains("SECRETTOKEN"), "{error}");
        assert!(!format!("{chat:?}").contains("SECRETTOKEN"));

        let nats = ChannelConfig::Nats {
            name: "bus".to_string(),
            url: Secret::new("http://user:PASSWORD@127.0.0.1:4222"),
            subject: "a.b".to_string(),
            source: default_source(),
            timeout_seconds: 10,
        };
        let error = nats.validate().unwrap_err();
        assert!(
            matches!(&error, ConfigError::UnsupportedScheme { scheme, .. } if scheme == "http")
        );
        assert!(!error.to_string().contains("PASSWORD"));
        assert!(!format!("{nats:?}").contains("PASSWORD"));
    }

    #[test]
    fn nats_subjects_must_be_concrete() {
        for (subject, fragment) in [
            ("", "empty"),
            ("a..b", "empty token"),
            (".a", "empty token"),
            ("a.*", "wildcard"),
            ("a.>", "wildcard"),
            ("a b", "white space"),
        ] {
            let error = check_subject("bus", subject).unwrap_err().to_string();
            assert!(error.contains(fragment), "{subject:?}: {error}");
        }
        assert_eq!(check_subject("bus", "custody.notify.v1"), Ok(()));
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let config = webhook("https://example.com/", "TOPSECRET");
        let debug = format!("{config:?}");
        assert!(!debug.contains("TOPSECRET"), "{debug}");
        assert!(debug.contains("redacted"));
    }
}
