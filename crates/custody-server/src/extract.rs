//! Request extractors: the authenticated actor, the idempotency key and JSON
//! bodies, each turning bad input into a problem document.

use std::str::FromStr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use custody_core::model::{Actor, AuthContext, Principal, Via};
use serde::de::DeserializeOwned;

use crate::problem::{types, Problem};
use crate::AppState;

/// The header naming the channel a request came through (`api` or `cli`).
pub const VIA_HEADER: &str = "custody-via";
/// The idempotency header.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// The caller of a request, authenticated by its bearer token: the principal
/// and the actor of every event the request writes, which is built from
/// this, never from the request body.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The principal behind the token.
    pub principal: Principal,
    /// The actor context for events written by this request.
    pub actor: Actor,
}

/// The `Idempotency-Key` of a write; a fresh random key when the client sent none.
#[derive(Clone, Debug)]
pub struct IdempotencyKey(pub String);

/// A JSON body whose rejection is a problem document.
pub struct ApiJson<T>(pub T);

/// Query parameters whose rejection is a problem document.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(query)| ApiQuery(query))
            .map_err(|rejection| Problem::invalid(rejection.body_text()))
    }
}

/// Path parameters whose rejection is a problem document: a path that cannot
/// be decoded (such as `%C0%AE`, which is not UTF-8) names nothing, so it is
/// a `404`.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|rejection| {
                Problem::not_found(format!(
                    "the path {} names nothing: {}",
                    parts.uri.path(),
                    rejection.body_text()
                ))
                .with_hint("path parameters are UTF-8 identifiers; see /v1/openapi.json")
            })
    }
}

impl Caller {
    /// Refuses unless the principal is in the `admins` group.
    pub fn require_admin(&self) -> Result<(), Problem> {
        if self.principal.in_group(crate::ADMINS_GROUP) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "{} is not in the `{}` group, which this operation requires",
                self.principal.id,
                crate::ADMINS_GROUP
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| Problem::unauthorized("the request has no Authorization header"))?;
        let via = via_of(parts)?;
        let raw = bearer_text(header.as_bytes())?;
        // A JWT from the configured OpenID Connect issuer, beside Custody's
        // own tokens (`docs/oidc.md`).
        if let Some(oidc) = state
            .oidc
            .as_ref()
            .filter(|_| !raw.starts_with(TOKEN_PREFIX))
        {
            let (principal, actor) = oidc.authenticate_bearer(raw, via).await?;
            return Ok(Caller { principal, actor });
        }
        let token = custody_token(raw)?;
        let owner = state
            .store
            .authenticate(token)
            .await
            .map_err(Problem::from)?
            .ok_or_else(|| Problem::unauthorized("the bearer token is unknown or has expired"))?;
        let principal = owner.principal;
        let actor = Actor {
            principal: principal.id.clone(),
            kind: principal.kind,
            org: principal.org.clone(),
            groups: principal.groups.clone(),
            on_behalf_of: None,
            delegation_grant: None,
            via,
            auth: AuthContext::Token {
                token_id: owner.token_id,
            },
        };
        Ok(Caller { principal, actor })
    }
}

/// The prefix of every token Custody issues.
pub const TOKEN_PREFIX: &str = "cust_";
/// The longest bearer token looked up; every token Custody issues is shorter.
pub const MAX_TOKEN_LENGTH: usize = 256;

/// The channel a request names in its `custody-via` header (`api` when none).
fn via_of(parts: &Parts) -> Result<Via, Problem> {
    let via = match parts.headers.get(VIA_HEADER) {
        None => Via::Api,
        Some(value) => {
            let text = value.to_str().unwrap_or("");
            match Via::from_str(text) {
                // Only the channels a token holder can truthfully claim; chat
                // and connectors arrive through their own authenticated paths.
                Ok(via @ (Via::Api | Via::Cli)) => via,
                _ => {
                    return Err(Problem::invalid(format!(
                        "the {VIA_HEADER} header must be `api` or `cli`, not `{text}`"
                    )))
                }
            }
        }
    };
    Ok(via)
}

/// The text after `Bearer ` (ASCII).
fn bearer_text(header: &[u8]) -> Result<&str, Problem> {
    let text = std::str::from_utf8(header)
        .ok()
        .filter(|text| text.is_ascii())
        .ok_or_else(|| {
            Problem::unauthorized(
                "the Authorization header holds non-ASCII bytes; a bearer token is ASCII",
            )
        })?;
    text.strip_prefix("Bearer ")
        .map(str::trim)
        .ok_or_else(|| Problem::unauthorized("the Authorization header is not `Bearer <token>`"))
}

/// `token` when it can be a Custody token, refused before any lookup otherwise.
fn custody_token(token: &str) -> Result<&str, Problem> {
    if token.len() > MAX_TOKEN_LENGTH {
        return Err(Problem::unauthorized(format!(
            "the bearer token is longer than {MAX_TOKEN_LENGTH} characters, so it is not a Custody token"
        )));
    }
    if !token.starts_with(TOKEN_PREFIX) {
        return Err(Problem::unauthorized(format!(
            "the bearer token does not start with `{TOKEN_PREFIX}`, so it is not a Custody token"
        )));
    }
    Ok(token)
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        match parts.headers.get(IDEMPOTENCY_HEADER) {
            None => Ok(IdempotencyKey(format!(
                "auto-{}",
                uuid::Uuid::now_v7().simple()
            ))),
            Some(value) => {
                let key = value.to_str().unwrap_or("");
                let valid = !key.is_empty()
                    && key.len() <= 255
                    && key.bytes().all(|b| b.is_ascii_graphic());
                if valid {
                    Ok(IdempotencyKey(key.to_string()))
                } else {
                    Err(Problem::invalid(
                        "the Idempotency-Key header must be 1 to 255 visible ASCII characters",
                    ))
                }
            }
        }
    }
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        if !json_content_type(request.headers()) {
            return Err(Problem::invalid(
                "the request body must be JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = body_bytes(request, state).await?;
        require_object(&bytes)?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

/// Whether the request says its body is JSON (`application/json`, or a
/// `+json` type), as axum's `Json` checks.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

/// The body's bytes, within the server's limit.
async fn body_bytes<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<axum::body::Bytes, Problem> {
    axum::body::Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    types::PAYLOAD_TOO_LARGE,
                    "Payload too large",
                    "the request body is larger than the server's limit",
                )
                .with_hint("raise `max_body_bytes` in the [server] section of the config file if this is legitimate")
            } else {
                Problem::invalid(rejection.body_text())
            }
        })
}

/// Every request body of the API is a JSON object. serde reads a struct
/// from an array too (its fields in order), so `[]` or `["text"]` would be
/// taken for a body the schema does not allow: refused here.
fn require_object(bytes: &[u8]) -> Result<(), Problem> {
    match bytes.iter().find(|byte| !byte.is_ascii_whitespace()) {
        Some(b'{') | None => Ok(()),
        Some(_) => Err(Problem::invalid(
            "the request body must be a JSON object (`{...}`)",
        )),
    }
}

fn json_problem(rejection: JsonRejection) -> Problem {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return Problem::new(
            status,
            types::PAYLOAD_TOO_LARGE,
            "Payload too large",
            "the request body is larger than the server's limit",
        )
        .with_hint("raise `max_body_bytes` in the [server] section of the config file if this is legitimate");
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            Problem::invalid("the request body must be JSON with `Content-Type: application/json`")
        }
        other => Problem::invalid(other.body_text()),
    }
}

/// A JSON body that may be absent: an empty body reads as `T::default()`.
/// Used by writes whose every field is optional (`approve`, `execute`, ...).
pub struct OptionalJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let bytes = body_bytes(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        require_object(&bytes)?;
        serde_json::from_slice(&bytes)
            .map(OptionalJson)
            .map_err(|error| {
                Problem::invalid(format!(
                    "the request body is not valid JSON for this operation: {error}"
                ))
            })
    }
}
