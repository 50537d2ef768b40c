//! The `[oidc]` section of the configuration file (`docs/oidc.md`).

use std::path::PathBuf;

use serde::Deserialize;

use super::jwt::Algorithm;

/// The `[oidc]` section: single sign-on with an OpenID Connect issuer, for
/// API bearer tokens and the console's browser sign-in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer, exactly as its tokens' `iss` says (an `https` URL;
    /// `http` only on a loopback address, for tests).
    pub issuer: String,
    /// The audience API bearer tokens must carry in `aud` (the API's
    /// identifier at the issuer: Okta's authorization server audience,
    /// Entra's application ID URI, Keycloak's client or audience mapper).
    pub audience: String,
    /// The console's client ID at the issuer; ID tokens must carry it in `aud`.
    pub client_id: String,
    /// The name of the environment variable that holds the client secret
    /// (a confidential client: `client_secret_basic`). Never the secret
    /// itself: the file is not a place for secrets. Without it the console
    /// is a public client (PKCE only).
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Where the issuer sends the browser back after sign-in (the
    /// console's callback URL, registered at the issuer). Needed only for
    /// the browser sign-in.
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// A JSON Web Key set file to verify with instead of the issuer's
    /// `jwks_uri` (found by discovery). Re-read when a token names a key it
    /// lacks. The browser sign-in still uses discovery for its endpoints.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The claim whose value is the principal's name. It must be a valid
    /// principal name (`^[a-z0-9][a-z0-9._@-]{0,63}$`), or the sign-in is
    /// refused: Custody never rewrites it (lowercasing an email could join
    /// two people).
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// The claim that carries the groups (a list of strings).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Which of the issuer's groups a principal takes: a name, or a prefix
    /// ending in `*` (`custody-*`). Empty (the default): none, so the issuer
    /// can give nobody a group. `admins` is taken only when listed by its
    /// exact name: no prefix matches it, so an issuer can make someone a
    /// Custody admin only when the configuration says so in as many words.
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    /// Seconds of clock skew tolerated on `exp`, `nbf` and `iat` (0 to 300).
    #[serde(default = "default_leeway_seconds")]
    pub leeway_seconds: u64,
    /// The signature algorithms accepted (default: all that Custody
    /// implements: RS256/384/512, PS256/384/512, ES256, ES384, EdDSA).
    /// `none` and HS* cannot be configured.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<Algorithm>,
    /// Seconds between key set refreshes (60 to 86400): keys rotate at
    /// the issuer without a restart. A token naming an unknown key also
    /// refreshes it, at most once every `unknown_key_refresh_seconds`.
    #[serde(default = "default_jwks_refresh_seconds")]
    pub jwks_refresh_seconds: u64,
    /// The least seconds between two refreshes forced by unknown keys (1 to 3600).
    #[serde(default = "default_unknown_key_refresh_seconds")]
    pub unknown_key_refresh_seconds: u64,
    /// Seconds each request to the issuer may take (1 to 60).
    #[serde(default = "default_http_timeout_seconds")]
    pub http_timeout_seconds: u64,
}

fn default_principal_claim() -> String {
    "preferred_username".to_string()
}

fn default_groups_claim() -> String {
    "groups".to_string()
}

fn default_leeway_seconds() -> u64 {
    60
}

fn default_algorithms() -> Vec<Algorithm> {
    Algorithm::ALL.to_vec()
}

fn default_jwks_refresh_seconds() -> u64 {
    300
}

fn default_unknown_key_refresh_seconds() -> u64 {
    10
}

fn default_http_timeout_seconds() -> u64 {
    10
}

/// Whether `url` is `https`, or `http` to a loopback host.
pub(crate) fn check_url(field: &str, url: &str) -> Result<reqwest::Url, String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|error| format!("oidc.{field} is not a URL: {error}"))?;
    let loopback = match parsed.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback()),
        None => false,
    };
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "oidc.{field} must be an https URL (http is allowed only on a loopback address)"
            ))
        }
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty() {
        return Err(format!(
            "oidc.{field} must have no query, fragment or user information"
        ));
    }
    Ok(parsed)
}

impl OidcConfig {
    /// Checks the section; the error names the key and what to do.
    pub fn validate(&self) -> Result<(), String> {
        check_url("issuer", &self.issuer)?;
        if let Some(redirect) = &self.redirect_url {
            let parsed = check_url("redirect_url", redirect)?;
            if parsed.path() != super::CALLBACK_PATH {
                return Err(format!(
                    "oidc.redirect_url must be this server's URL with the path {} (the console's callback), e.g. https://custody.example.com{}; register the same URL at the issuer",
                    super::CALLBACK_PATH,
                    super::CALLBACK_PATH
                ));
            }
        }
        for (field, value) in [
            ("audience", &self.audience),
            ("client_id", &self.client_id),
            ("principal_claim", &self.principal_claim),
            ("groups_claim", &self.groups_claim),
        ] {
            if value.is_empty() || value.len() > 255 || value.chars().any(char::is_control) {
                return Err(format!(
                    "oidc.{field} must be 1 to 255 characters without control characters"
                ));
            }
        }
        if let Some(name) = &self.client_secret_env {
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err("oidc.client_secret_env names an environment variable (letters, digits and `_`), not the secret itself".to_string());
            }
        }
        for group in &self.allowed_groups {
            let name = group.strip_suffix('*').unwrap_or(group);
            if group.ends_with('*') && name.is_empty() {
                return Err("oidc.allowed_groups: `*` alone would let the issuer give any group (admins excepted); list the groups, or a prefix such as `custody-*`".to_string());
            }
            custody_core::model::validate_name("oidc.allowed_groups", name)
                .map_err(|error| error.to_string())?;
        }
        if self.leeway_seconds > 300 {
            return Err("oidc.leeway_seconds must be between 0 and 300".to_string());
        }
        if self.algorithms.is_empty() {
            return Err("oidc.algorithms must name at least one algorithm".to_string());
        }
        if !(60..=86_400).contains(&self.jwks_refresh_seconds) {
            return Err("oidc.jwks_refresh_seconds must be between 60 and 86400".to_string());
        }
        if !(1..=3600).contains(&self.unknown_key_refresh_seconds) {
            return Err("oidc.unknown_key_refresh_seconds must be between 1 and 3600".to_string());
        }
        if !(1..=60).contains(&self.http_timeout_seconds) {
            return Err("oidc.http_timeout_seconds must be between 1 and 60".to_string());
        }
        Ok(())
    }

    /// The groups of `asserted` a principal takes ([`OidcConfig::allowed_groups`]),
    /// sorted and without duplicates; names that are not valid group names
    /// are left out.
    pub fn admit_groups<'a>(&self, asserted: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut groups: Vec<String> = asserted
            .into_iter()
            .filter(|group| custody_core::model::validate_name("group", group).is_ok())
            .filter(|group| {
                self.allowed_groups.iter().any(|allowed| {
                    match allowed.strip_suffix('*') {
                        // A prefix never admits `admins`: only its exact name does.
                        Some(prefix) => {
                            *group != custody_core::admin::ADMINS_GROUP && group.starts_with(prefix)
                        }
                        None => allowed == group,
                    }
                })
            })
            .map(str::to_string)
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<OidcConfig, String> {
        let text = format!(
            "issuer = \"https://idp.example\"\naudience = \"custody\"\nclient_id = \"console\"\n{extra}"
        );
        let config: OidcConfig = toml::from_str(&text).map_err(|error| error.to_string())?;
        config.validate().map(|()| config)
    }

    #[test]
    fn the_section_is_checked_at_start() {
        assert!(config("").is_ok());
        assert!(config("algorithms = [\"HS256\"]").is_err());
        assert!(config("algorithms = [\"none\"]").is_err());
        assert!(config("client_secret = \"x\"").is_err());
        assert!(config("client_secret_env = \"hunter2 is my secret\"").is_err());
        assert!(config("allowed_groups = [\"*\"]").is_err());
        assert!(config("leeway_seconds = 3600").is_err());
        let http: Result<OidcConfig, String> = toml::from_str::<OidcConfig>(
            "issuer = \"http://idp.example\"\naudience = \"a\"\nclient_id = \"c\"",
        )
        .map_err(|error| error.to_string())
        .and_then(|config| config.validate().map(|()| config));
        assert!(http.expect_err("plain http").contains("https"));
        let loopback = toml::from_str::<OidcConfig>(
            "issuer = \"http://127.0.0.1:9999\"\naudience = \"a\"\nclient_id = \"c\"",
        )
        .expect("parse");
        assert!(loopback.validate().is_ok());
    }

    #[test]
    fn only_allowed_groups_are_taken_and_admins_only_by_name() {
        let prefixed = config("allowed_groups = [\"approvers\", \"a*\"]").expect("config");
        assert_eq!(
            prefixed.admit_groups(["admins", "approvers", "auditors", "other", "Bad Name"]),
            vec!["approvers".to_string(), "auditors".to_string()]
        );
        let named = config("allowed_groups = [\"admins\"]").expect("config");
        assert_eq!(named.admit_groups(["admins"]), vec!["admins".to_string()]);
        let none = config("").expect("config");
        assert!(none.admit_groups(["admins", "approvers"]).is_empty());
    }
}
