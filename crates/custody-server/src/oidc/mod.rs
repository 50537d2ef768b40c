//! Single sign-on with OpenID Connect (`docs/oidc.md`).
//!
//! Two ways in, one rule for who comes in:
//! - **API bearer tokens**: a JWT from the issuer, beside Custody's own
//!   `cust_` tokens ([`Oidc::authenticate_bearer`], called by the
//!   [`crate::extract::Caller`] extractor). Its `aud` must name
//!   [`OidcConfig::audience`].
//! - **Browser sign-in** for the console: the authorization code flow with
//!   PKCE (S256), `state` and `nonce` ([`Oidc::begin_login`],
//!   [`Oidc::finish_login`]). The ID token's `aud` must name the client.
//!
//! Either way the token's signature is verified with the issuer's keys
//! ([`jwt`], with `ring`), its claims judged, and the identity (issuer,
//! subject) signed in through the store ([`custody_store::Store::oidc_sign_in`]):
//! the first sign-in adds the principal (`principal_added`, by the
//! principal itself, authenticated by its issuer and subject) and binds the
//! identity to it; later ones record the groups the issuer asserts
//! (`principal_groups_changed`). A principal not bound to the identity is
//! refused, never merged. The actor of every event is
//! `AuthContext::Oidc { issuer, subject }`: the token itself is never kept,
//! logged or echoed.
//!
//! Keys rotate at the issuer without a restart: the key set is fetched
//! again every [`OidcConfig::jwks_refresh_seconds`], and when a token names
//! a key it lacks (at most once every
//! [`OidcConfig::unknown_key_refresh_seconds`], so forged `kid`s cannot make
//! Custody hammer the issuer).

pub mod config;
pub mod jwt;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use custody_core::model::{Actor, AuthContext, Principal, PrincipalId, PrincipalKind, Via};
use custody_core::time::SharedClock;
use custody_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use config::OidcConfig;
use jwt::{Expectations, JwtError, KeySet, Verified};

use crate::problem::{types, Problem};

/// The largest discovery document, key set or token response read.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// How long a [`PendingLogin`] may wait for the browser to come back.
pub const LOGIN_TTL_SECONDS: i64 = 600;

/// The console's path the issuer sends the browser back to: the path of
/// `[oidc] redirect_url`.
pub const CALLBACK_PATH: &str = "/oidc/callback";
/// The most groups a token may assert.
pub const MAX_GROUPS: usize = 1024;

/// The issuer's endpoints, from `{issuer}/.well-known/openid-configuration`.
#[derive(Clone, Debug, Deserialize)]
pub struct Discovery {
    /// The issuer; must be the configured one exactly.
    pub issuer: String,
    /// Where the browser signs in.
    pub authorization_endpoint: String,
    /// Where the code is exchanged.
    pub token_endpoint: String,
    /// The key set.
    pub jwks_uri: String,
}

/// The OpenID Connect relying party: configuration, the issuer's keys and
/// endpoints (cached), and the store principals are signed in through.
#[derive(Clone)]
pub struct Oidc {
    inner: Arc<Inner>,
}

struct Inner {
    config: OidcConfig,
    client_secret: Option<String>,
    http: reqwest::Client,
    store: Store,
    clock: SharedClock,
    keys: tokio::sync::Mutex<KeyCache>,
    discovery: tokio::sync::Mutex<Option<Discovery>>,
}

struct KeyCache {
    set: Arc<KeySet>,
    fetched: Option<Instant>,
    /// How long the keys fetched last are fresh: the key set's
    /// `Cache-Control: max-age` when it is shorter than
    /// `jwks_refresh_seconds` (never under a minute), else that.
    fresh_for: Duration,
    forced: Option<Instant>,
}

/// What the console keeps between [`Oidc::begin_login`] and
/// [`Oidc::finish_login`]. It holds secrets (the PKCE verifier, the nonce):
/// keep it server-side, keyed by a random value in a `HttpOnly`,
/// `SameSite=Lax` cookie (so it is bound to the browser that began), and
/// remove it when the browser comes back, whatever the outcome (single
/// use). [`Oidc::finish_login`] refuses one older than [`LOGIN_TTL_SECONDS`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingLogin {
    /// The `state` sent to the issuer; the callback must return it.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier (its S256 challenge was sent).
    pub code_verifier: String,
    /// The console path to go back to after sign-in (a local path).
    pub return_to: String,
    /// When the login began, unix seconds at the server's clock.
    pub created_at: i64,
}

/// A browser signed in.
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// The principal, as it now stands (its groups as the issuer asserted them).
    pub principal: Principal,
    /// `AuthContext::Oidc { issuer, subject }`, for the session's actor.
    pub auth: AuthContext,
    /// Where to send the browser ([`PendingLogin::return_to`]).
    pub return_to: String,
    /// The ID token's `exp`: the issuer's word on how long this sign-in
    /// holds. The console ends the session then at the latest.
    pub expires_at: Option<custody_core::Timestamp>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Oidc")
            .field("issuer", &self.inner.config.issuer)
            .finish_non_exhaustive()
    }
}

/// A refused token: `401` with the reason and never the token.
fn refused(error: &JwtError) -> Problem {
    metrics::counter!("custody_oidc_refusals_total").increment(1);
    Problem::new(
        StatusCode::UNAUTHORIZED,
        types::UNAUTHORIZED,
        "Unauthorized",
        format!("the OpenID Connect token is refused: {error}"),
    )
    .with_hint("sign in again at the issuer for a fresh token meant for this server, or use a Custody token (`cust_...`)")
}

fn unavailable(detail: String) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        types::UNAVAILABLE,
        "Unavailable",
        detail,
    )
    .with_hint("check that the issuer is reachable from the server; retry later")
}

fn random_text() -> Result<String, Problem> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| {
        unavailable(format!(
            "the system has no randomness to sign in with: {error}"
        ))
    })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether two secrets are equal, compared by their SHA-256 so that the
/// time taken says nothing about where they differ.
fn same_secret(given: &str, expected: &str) -> bool {
    let digest = |text: &str| ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    !expected.is_empty() && digest(given).as_ref() == digest(expected).as_ref()
}

/// `application/x-www-form-urlencoded` text of `pairs`.
fn form(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://form.invalid/").expect("a constant URL parses");
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_string()
}

impl Oidc {
    /// The relying party for `config` (checked here too): reads the client
    /// secret from its environment variable and, with `jwks_file`, the key
    /// set, so that a bad setting stops start-up.
    pub fn new(config: OidcConfig, store: Store, clock: SharedClock) -> Result<Oidc, String> {
        let client_secret = match &config.client_secret_env {
            None => None,
            Some(name) => Some(std::env::var(name).map_err(|_| {
                format!("oidc.client_secret_env names the environment variable {name}, which is not set (or not UTF-8)")
            })?),
        };
        Oidc::with_client_secret(config, client_secret, store, clock)
    }

    /// [`Oidc::new`] with the client secret given rather than read from
    /// the environment (`None`: a public client).
    pub fn with_client_secret(
        config: OidcConfig,
        client_secret: Option<String>,
        store: Store,
        clock: SharedClock,
    ) -> Result<Oidc, String> {
        config.validate()?;
        custody_evidence::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.http_timeout_seconds))
            .connect_timeout(Duration::from_secs(config.http_timeout_seconds))
            // A redirect could lead off the issuer; its documents are fetched
            // where it says they are, or not at all.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| format!("cannot build the OIDC HTTP client: {error}"))?;
        let mut keys = KeyCache {
            set: Arc::new(KeySet::default()),
            fetched: None,
            fresh_for: Duration::from_secs(config.jwks_refresh_seconds),
            forced: None,
        };
        if let Some(path) = &config.jwks_file {
            keys.set = Arc::new(read_key_file(path)?);
            keys.fetched = Some(Instant::now());
        }
        Ok(Oidc {
            inner: Arc::new(Inner {
                config,
                client_secret,
                http,
                store,
                clock,
                keys: tokio::sync::Mutex::new(keys),
                discovery: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.inner.config
    }

    /// Authenticates an API bearer token issued by the issuer for
    /// [`OidcConfig::audience`], and signs its identity in: the principal
    /// and the actor (`via`, `AuthContext::Oidc`) of the request.
    pub async fn authenticate_bearer(
        &self,
        token: &str,
        via: Via,
    ) -> Result<(Principal, Actor), Problem> {
        let config = &self.inner.config;
        let verified = self.verified(token).await?;
        verified
            .check(&Expectations {
                issuer: &config.issuer,
                audience: &config.audience,
                authorized_parties: None,
                now: self.now(),
                leeway: i64::try_from(config.leeway_seconds).unwrap_or(0),
            })
            .map_err(|error| refused(&error))?;
        self.sign_in(&verified, via).await
    }

    /// Begins a browser sign-in: the issuer's authorization URL to send the
    /// browser to, and what to keep until it comes back ([`PendingLogin`]).
    /// `return_to` is the console path to go back to afterwards: a local
    /// path (`/cases/AC-...`), never another site.
    ///
    /// `login_hint` (OIDC Core 3.1.2.1), when given, is passed to the
    /// issuer: who is expected to sign in.
    pub async fn begin_login(
        &self,
        return_to: &str,
        login_hint: Option<&str>,
    ) -> Result<(String, PendingLogin), Problem> {
        let config = &self.inner.config;
        let redirect = config.redirect_url.as_deref().ok_or_else(|| {
            Problem::invalid("the browser sign-in needs `redirect_url` in the [oidc] section")
        })?;
        let local = return_to.starts_with('/')
            && !return_to.starts_with("//")
            && !return_to.contains('\\')
            && return_to.len() <= 2048
            && !return_to.chars().any(char::is_control);
        if !local {
            return Err(Problem::invalid(
                "return_to must be a path of this site, starting with a single `/`",
            ));
        }
        let discovery = self.discovery().await?;
        let pending = PendingLogin {
            state: random_text()?,
            nonce: random_text()?,
            code_verifier: random_text()?,
            return_to: return_to.to_string(),
            created_at: self.now(),
        };
        let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            pending.code_verifier.as_bytes(),
        ));
        let mut url = reqwest::Url::parse(&discovery.authorization_endpoint).map_err(|error| {
            unavailable(format!(
                "the issuer's authorization endpoint is not a URL: {error}"
            ))
        })?;
        url.query_pairs_mut().extend_pairs([
            ("response_type", "code"),
            ("client_id", config.client_id.as_str()),
            ("redirect_uri", redirect),
            ("scope", "openid profile email"),
            ("state", pending.state.as_str()),
            ("nonce", pending.nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]);
        if let Some(hint) = login_hint {
            if hint.is_empty() || hint.len() > 255 || hint.chars().any(char::is_control) {
                return Err(Problem::invalid(
                    "login_hint must be 1 to 255 characters without control characters",
                ));
            }
            url.query_pairs_mut().append_pair("login_hint", hint);
        }
        Ok((url.to_string(), pending))
    }

    /// Finishes a browser sign-in when the issuer sends the browser back
    /// with `code` and `state`: refuses a `state` that is not the pending
    /// login's (or a login that waited too long) before anything is sent,
    /// exchanges the code at the token endpoint (with the PKCE verifier;
    /// `client_secret_basic` when a secret is configured), verifies the ID
    /// token (signature, `iss`, `aud` = the client, `azp`, `exp`/`nbf`/`iat`,
    /// and the `nonce`), and signs the identity in as for an API token.
    pub async fn finish_login(
        &self,
        pending: PendingLogin,
        code: &str,
        state: &str,
    ) -> Result<SignedIn, Problem> {
        let config = &self.inner.config;
        let login_refused = |detail: &str| {
            metrics::counter!("custody_oidc_refusals_total").increment(1);
            Problem::new(
                StatusCode::UNAUTHORIZED,
                types::UNAUTHORIZED,
                "Unauthorized",
                format!("the sign-in is refused: {detail}"),
            )
            .with_hint("start the sign-in again from the console")
        };
        if !same_secret(state, &pending.state) {
            return Err(login_refused(
                "the `state` the issuer sent back is not the one this browser's sign-in began with",
            ));
        }
        let age = self.now().saturating_sub(pending.created_at);
        if !(0..=LOGIN_TTL_SECONDS).contains(&age) {
            return Err(login_refused("the sign-in began too long ago"));
        }
        if code.is_empty() || code.len() > 4096 {
            return Err(login_refused("the authorization code is empty or too long"));
        }
        let redirect = config.redirect_url.as_deref().ok_or_else(|| {
            Problem::invalid("the browser sign-in needs `redirect_url` in the [oidc] section")
        })?;
        let discovery = self.discovery().await?;
        let body = form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", pending.code_verifier.as_str()),
            ("client_id", config.client_id.as_str()),
        ]);
        let mut request = self
            .inner
            .http
            .post(&discovery.token_endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body);
        if let Some(secret) = &self.inner.client_secret {
            // RFC 6749 2.3.1: both form-encoded before they are joined.
            let encoded = |value: &str| form(&[("v", value)])[2..].to_string();
            request = request.basic_auth(encoded(&config.client_id), Some(encoded(secret)));
        }
        let response = request.send().await.map_err(|error| {
            unavailable(format!(
                "the issuer's token endpoint cannot be reached: {}",
                error.without_url()
            ))
        })?;
        let status = response.status();
        let bytes = read_limited(response).await.map_err(unavailable)?;
        if !status.is_success() {
            // The issuer's error code only (`invalid_grant`, ...): its
            // description may repeat what was sent.
            let error = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|value| {
                    value
                        .get("error")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_default();
            let shown: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(login_refused(&format!(
                "the issuer refused the authorization code ({status}{})",
                if shown.is_empty() {
                    String::new()
                } else {
                    format!(", {shown}")
                }
            )));
        }
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|_| login_refused("the issuer's token response is not JSON"))?;
        let id_token = answer
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| login_refused("the issuer's token response has no ID token"))?;
        let mut signed_in = self.accept_id_token(id_token, &pending.nonce).await?;
        signed_in.return_to = pending.return_to;
        Ok(signed_in)
    }

    /// Verifies an ID token as [`Oidc::finish_login`] does after the code
    /// exchange (signature, `iss`, `aud` = the client, `azp`,
    /// `exp`/`nbf`/`iat`, and `nonce`), and signs its identity in. Public so
    /// that each refusal can be tested with a token crafted for it.
    pub async fn accept_id_token(&self, id_token: &str, nonce: &str) -> Result<SignedIn, Problem> {
        let config = &self.inner.config;
        let verified = self.verified(id_token).await?;
        let parties = [config.client_id.clone()];
        verified
            .check(&Expectations {
                issuer: &config.issuer,
                audience: &config.client_id,
                authorized_parties: Some(&parties),
                now: self.now(),
                leeway: i64::try_from(config.leeway_seconds).unwrap_or(0),
            })
            .map_err(|error| refused(&error))?;
        let claimed = verified
            .claims
            .get("nonce")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !same_secret(claimed, nonce) {
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                types::UNAUTHORIZED,
                "Unauthorized",
                "the sign-in is refused: the ID token's `nonce` is not the one this browser's sign-in began with",
            ));
        }
        let (principal, actor) = self.sign_in(&verified, Via::Web).await?;
        let expires_at = verified
            .claims
            .get("exp")
            .and_then(Value::as_i64)
            .and_then(|exp| exp.checked_mul(1_000_000))
            .map(custody_core::Timestamp::from_micros);
        Ok(SignedIn {
            principal,
            auth: actor.auth,
            return_to: "/".to_string(),
            expires_at,
        })
    }

    fn now(&self) -> i64 {
        self.inner.clock.now().as_micros().div_euclid(1_000_000)
    }

    /// A token parsed, its algorithm allowed, its signature verified with
    /// the issuer's key (the key set refreshed first when it is due, or
    /// when the token names a key it lacks).
    async fn verified(&self, token: &str) -> Result<Verified, Problem> {
        let parsed = jwt::parse(token).map_err(|error| refused(&error))?;
        if !self.inner.config.algorithms.contains(&parsed.algorithm) {
            return Err(refused(&JwtError::Algorithm(
                parsed.algorithm.name().to_string(),
            )));
        }
        let keys = self.key_set(parsed.kid.as_deref()).await?;
        parsed.verify(&keys).map_err(|error| refused(&error))
    }

    /// The principal and actor of a verified identity, signed in through
    /// the store.
    async fn sign_in(&self, verified: &Verified, via: Via) -> Result<(Principal, Actor), Problem> {
        let config = &self.inner.config;
        let name = verified
            .claims
            .get(&config.principal_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Problem::forbidden(format!(
                    "the token has no `{}` claim (a string), which names the principal",
                    config.principal_claim
                ))
                .with_hint("set oidc.principal_claim to a claim the issuer puts in its tokens")
            })?;
        let id = PrincipalId::from_str(name).map_err(|_| {
            Problem::forbidden(format!(
                "the token's `{}` claim is not a valid principal name (lowercase letters, digits, `.`, `_`, `-` and `@`, at most 64)",
                config.principal_claim
            ))
            .with_hint("configure the issuer to emit a lowercase username, or choose another oidc.principal_claim")
        })?;
        if id.as_str() == custody_core::model::SYSTEM_PRINCIPAL {
            return Err(Problem::forbidden(
                "the token names `system`, which is the ledger itself and cannot sign in",
            ));
        }
        let asserted: Vec<&str> = match verified.claims.get(&config.groups_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) if list.len() <= MAX_GROUPS => {
                list.iter().filter_map(Value::as_str).collect()
            }
            Some(_) => {
                return Err(Problem::forbidden(format!(
                    "the token's `{}` claim is not a list of at most {MAX_GROUPS} groups",
                    config.groups_claim
                )))
            }
        };
        let groups = config.admit_groups(asserted);
        let display_name = verified
            .claims
            .get("name")
            .and_then(Value::as_str)
            .and_then(|name| custody_core::model::validate_label("display_name", name).ok())
            .unwrap_or_else(|| id.to_string());
        let claimed = Principal {
            id: id.clone(),
            display_name,
            kind: PrincipalKind::Human,
            groups: groups.clone(),
            org: None,
        };
        let mut actor = Actor {
            principal: id,
            kind: PrincipalKind::Human,
            org: None,
            groups,
            on_behalf_of: None,
            delegation_grant: None,
            via,
            auth: AuthContext::Oidc {
                issuer: config.issuer.clone(),
                subject: verified.subject().to_string(),
            },
        };
        // The common case, a sign-in that changes nothing, is read without
        // the writer; anything else is decided under the write lock.
        let bound = self
            .inner
            .store
            .oidc_identity(&config.issuer, verified.subject())
            .await
            .map_err(Problem::from)?;
        let principal = match bound {
            Some(principal) if principal.id == claimed.id && principal.groups == claimed.groups => {
                principal
            }
            _ => self
                .inner
                .store
                .oidc_sign_in(claimed, actor.clone())
                .await
                .map_err(Problem::from)?,
        };
        actor.kind = principal.kind;
        actor.org = principal.org.clone();
        actor.groups = principal.groups.clone();
        Ok((principal, actor))
    }

    /// The issuer's discovery document, fetched once and kept.
    pub async fn discovery(&self) -> Result<Discovery, Problem> {
        let mut cached = self.inner.discovery.lock().await;
        if let Some(discovery) = cached.as_ref() {
            return Ok(discovery.clone());
        }
        let issuer = self.inner.config.issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let bytes = self.get(&url).await.map_err(|error| {
            unavailable(format!(
                "the issuer's discovery document cannot be read: {error}"
            ))
        })?;
        let discovery: Discovery = serde_json::from_slice(&bytes).map_err(|error| {
            unavailable(format!(
                "the issuer's discovery document is not valid: {error}"
            ))
        })?;
        if discovery.issuer != self.inner.config.issuer {
            return Err(unavailable(
                "the issuer's discovery document names another issuer than oidc.issuer (they must be equal, character for character)".to_string(),
            ));
        }
        for (field, url) in [
            ("authorization_endpoint", &discovery.authorization_endpoint),
            ("token_endpoint", &discovery.token_endpoint),
            ("jwks_uri", &discovery.jwks_uri),
        ] {
            config::check_url(field, url).map_err(|error| {
                unavailable(format!("the issuer's discovery document: {error}"))
            })?;
        }
        *cached = Some(discovery.clone());
        Ok(discovery)
    }

    /// The key set, fetched again when it is due or when it lacks `kid`
    /// (rate-limited). A failed refresh keeps the keys held.
    async fn key_set(&self, kid: Option<&str>) -> Result<Arc<KeySet>, Problem> {
        let config = &self.inner.config;
        let mut cache = self.inner.keys.lock().await;
        let stale = cache
            .fetched
            .is_none_or(|at| at.elapsed() >= cache.fresh_for);
        let missing = kid.is_some_and(|kid| !cache.set.has(kid));
        let may_force = cache.forced.is_none_or(|at| {
            at.elapsed() >= Duration::from_secs(config.unknown_key_refresh_seconds)
        });
        if stale || (missing && may_force) {
            if missing {
                cache.forced = Some(Instant::now());
            }
            match self.fetch_keys().await {
                Ok((set, max_age)) => {
                    cache.set = Arc::new(set);
                    cache.fetched = Some(Instant::now());
                    let configured = Duration::from_secs(config.jwks_refresh_seconds);
                    cache.fresh_for = max_age.map_or(configured, |max_age| {
                        max_age.max(Duration::from_secs(60)).min(configured)
                    });
                    metrics::counter!("custody_oidc_key_refreshes_total").increment(1);
                }
                Err(problem) => {
                    if cache.fetched.is_none() {
                        return Err(problem);
                    }
                    tracing::warn!(detail = %problem.detail, "refreshing the OIDC key set failed; keeping the keys held");
                    cache.fetched = Some(Instant::now());
                }
            }
        }
        Ok(cache.set.clone())
    }

    /// The key set, and its `Cache-Control: max-age` when it has one.
    async fn fetch_keys(&self) -> Result<(KeySet, Option<Duration>), Problem> {
        if let Some(path) = &self.inner.config.jwks_file {
            return read_key_file(path)
                .map(|set| (set, None))
                .map_err(unavailable);
        }
        let discovery = self.discovery().await?;
        let (bytes, max_age) =
            self.get_with_max_age(&discovery.jwks_uri)
                .await
                .map_err(|error| {
                    unavailable(format!("the issuer's key set cannot be read: {error}"))
                })?;
        let set = KeySet::parse(&bytes)
            .map_err(|error| unavailable(format!("the issuer's key set is refused: {error}")))?;
        Ok((set, max_age))
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        self.get_with_max_age(url).await.map(|(bytes, _)| bytes)
    }

    async fn get_with_max_age(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>), String> {
        let response = self
            .inner
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|error| error.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("the issuer answered {}", response.status()));
        }
        let max_age = response
            .headers()
            .get("cache-control")
            .and_then(|value| value.to_str().ok())
            .and_then(max_age);
        Ok((read_limited(response).await?, max_age))
    }
}

/// The `max-age` of a `Cache-Control` header (`no-store` and `no-cache`
/// read as zero).
fn max_age(header: &str) -> Option<Duration> {
    header.split(',').map(str::trim).find_map(|directive| {
        let directive = directive.to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            return Some(Duration::ZERO);
        }
        directive
            .strip_prefix("max-age=")
            .and_then(|seconds| seconds.trim_matches('"').parse::<u64>().ok())
            .map(Duration::from_secs)
    })
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| error.without_url().to_string())?
    {
        if bytes.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "the issuer's answer is larger than {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn read_key_file(path: &std::path::Path) -> Result<KeySet, String> {
    let metadata = std::fs::metadata(path)
        .map_err(|error| format!("oidc.jwks_file {}: {error}", path.display()))?;
    if metadata.len() > MAX_DOCUMENT_BYTES as u64 {
        return Err(format!(
            "oidc.jwks_file {} is larger than {MAX_DOCUMENT_BYTES} bytes",
            path.display()
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|error| format!("oidc.jwks_file {}: {error}", path.display()))?;
    KeySet::parse(&bytes).map_err(|error| format!("oidc.jwks_file {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_sets_cache_control_sets_its_freshness() {
        assert_eq!(
            max_age("public, max-age=3600"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            max_age("Max-Age=90, must-revalidate"),
            Some(Duration::from_secs(90))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("private"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
