//! Witnesses (C2SP tlog-witness and tlog-cosignature): the server's push of
//! each new checkpoint to the configured witnesses ([`push`]), and the
//! minimal witness `custody witness serve` runs ([`service`]).
//!
//! ```toml
//! [[witnesses]]
//! name = "audit-team"                            # names it in logs, metrics and the store
//! url = "https://witness.example/custody"        # the submission prefix; /add-checkpoint is appended
//! key = "witness.example/w1+1a2b3c4d+BK..."       # the witness's verifier key (type 0x04)
//! ```

pub mod push;
pub mod service;

use custody_log::CosignatureVerifier;
use serde::Deserialize;

/// One `[[witnesses]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// The witness's name in this deployment (letters, digits, `.`, `_`,
    /// `-`; at most 64 characters).
    pub name: String,
    /// The witness's submission prefix (`http://` or `https://`);
    /// `/add-checkpoint` is appended.
    pub url: String,
    /// The witness's verifier key, `name+keyid+base64(0x04 || key)`, as
    /// `custody witness key` prints it.
    pub key: String,
}

/// A configured witness, checked.
#[derive(Debug, Clone)]
pub struct WitnessTarget {
    /// Its configured name.
    pub name: String,
    /// Where `add-checkpoint` is posted.
    pub url: reqwest::Url,
    /// Its key.
    pub key: CosignatureVerifier,
}

/// Checks every `[[witnesses]]` entry: a unique, plain name, an HTTP(S)
/// URL and a witness key.
pub fn targets(witnesses: &[WitnessConfig]) -> Result<Vec<WitnessTarget>, String> {
    let mut targets: Vec<WitnessTarget> = Vec::new();
    for (i, witness) in witnesses.iter().enumerate() {
        let at = format!("witnesses[{i}]");
        let name = witness.name.as_str();
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(format!(
                "{at}.name must be 1 to 64 letters, digits, `.`, `_` or `-`"
            ));
        }
        if targets.iter().any(|t| t.name == name) {
            return Err(format!("{at}.name `{name}` names two witnesses"));
        }
        let base = reqwest::Url::parse(&witness.url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
            .ok_or_else(|| {
                format!("{at}.url (witness `{name}`) is not an http:// or https:// URL")
            })?;
        let url = reqwest::Url::parse(&format!(
            "{}{}",
            base.as_str().trim_end_matches('/'),
            custody_log::witness::ADD_CHECKPOINT_PATH
        ))
        .map_err(|_| format!("{at}.url (witness `{name}`) is not a valid URL"))?;
        let key = CosignatureVerifier::parse(witness.key.trim()).map_err(|error| {
            format!("{at}.key (witness `{name}`) is not a witness verifier key: {error}\nhint: use the key `custody witness key --data DIR` prints on the witness's machine")
        })?;
        if targets.iter().any(|t| t.key == key) {
            return Err(format!(
                "{at}.key (witness `{name}`) is the key of another configured witness"
            ));
        }
        targets.push(WitnessTarget {
            name: name.to_string(),
            url,
            key,
        });
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        custody_log::CosignerKey::from_seed("w.example/1", &[3; 32])
            .unwrap()
            .verifier()
            .to_string()
    }

    #[test]
    fn entries_are_checked() {
        let good = WitnessConfig {
            name: "a".into(),
            url: "http://127.0.0.1:9/prefix/".into(),
            key: key(),
        };
        let targets = targets(std::slice::from_ref(&good)).unwrap();
        assert_eq!(
            targets[0].url.as_str(),
            "http://127.0.0.1:9/prefix/add-checkpoint"
        );
        for (bad, says) in [
            (
                WitnessConfig {
                    name: "a b".into(),
                    ..good.clone()
                },
                "name",
            ),
            (
                WitnessConfig {
                    url: "ftp://x".into(),
                    ..good.clone()
                },
                "url",
            ),
            (
                WitnessConfig {
                    key: "nonsense".into(),
                    ..good.clone()
                },
                "key",
            ),
        ] {
            let error = super::targets(&[bad]).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
        let error = super::targets(&[good.clone(), good]).unwrap_err();
        assert!(error.contains("two witnesses"), "{error}");
    }
}
