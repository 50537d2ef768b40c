//! Errors over HTTP: RFC 9457 `application/problem+json` with stable types.
//!
//! Every error the API returns is a [`Problem`]. Its `type` is one of the
//! URNs below and never changes meaning; clients branch on `type` (and on
//! `rule` for refusals), never on `title` or `detail`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use custody_core::code::{Answer, Code};
use custody_core::lifecycle::Refusal;
use custody_store::StoreError;
use serde::Serialize;

/// A problem document (RFC 9457).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable problem type, e.g. `urn:custody:problem:separation-of-duties`.
    #[serde(rename = "type")]
    pub problem_type: &'static str,
    /// Short summary of the problem type.
    pub title: &'static str,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// For refusals: the stable code of the rule that refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub rule: Option<Code>,
}

/// Problem types. Stable: documented in `docs/api.md`.
pub mod types {
    /// The request body, a header or a parameter is malformed.
    pub const INVALID_REQUEST: &str = "urn:custody:problem:invalid-request";
    /// No valid bearer token.
    pub const UNAUTHORIZED: &str = "urn:custody:problem:unauthorized";
    /// Authenticated, but not allowed (e.g. not in `admins`).
    pub const FORBIDDEN: &str = "urn:custody:problem:forbidden";
    /// Refused by separation of duties.
    pub const SEPARATION_OF_DUTIES: &str = "urn:custody:problem:separation-of-duties";
    /// Refused because of the case's state or an earlier write.
    pub const CONFLICT: &str = "urn:custody:problem:conflict";
    /// No such case, principal or route.
    pub const NOT_FOUND: &str = "urn:custody:problem:not-found";
    /// The body is larger than the configured limit.
    pub const PAYLOAD_TOO_LARGE: &str = "urn:custody:problem:payload-too-large";
    /// The method is not supported on this route.
    pub const METHOD_NOT_ALLOWED: &str = "urn:custody:problem:method-not-allowed";
    /// The request was not read and answered within `request_timeout_seconds`.
    pub const REQUEST_TIMEOUT: &str = "urn:custody:problem:request-timeout";
    /// The server failed; the write, if any, was not acknowledged.
    pub const INTERNAL: &str = "urn:custody:problem:internal";
    /// The server is shutting down or the store is unavailable.
    pub const UNAVAILABLE: &str = "urn:custody:problem:unavailable";
}

impl Problem {
    /// A problem of `problem_type` with `status`.
    pub fn new(
        status: StatusCode,
        problem_type: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            problem_type,
            title,
            status: status.as_u16(),
            detail: detail.into(),
            hint: None,
            rule: None,
        }
    }

    /// Names the rule behind the problem. A code the table answers
    /// ([`Code::answer`]) sets the status and the problem type, so a code
    /// is answered the same wherever it is refused; the title stays.
    pub fn with_rule(mut self, rule: Code) -> Problem {
        self.rule = Some(rule);
        if let Some(answer) = rule.answer() {
            let (status, problem_type, _) = answered(answer);
            self.status = status.as_u16();
            self.problem_type = problem_type;
        }
        self
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Problem {
        self.hint = Some(hint.into());
        self
    }

    /// A malformed request.
    pub fn invalid(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            types::INVALID_REQUEST,
            "Invalid request",
            detail,
        )
    }

    /// Missing or bad credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, types::UNAUTHORIZED, "Unauthorized", detail)
            .with_hint("send `Authorization: Bearer <token>` with a token from `custody init` or `custody token create`")
    }

    /// Not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, types::FORBIDDEN, "Forbidden", detail)
    }

    /// Not found.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, types::NOT_FOUND, "Not found", detail)
    }

    /// A refusal by a rule, answered as the code table says
    /// ([`Code::answer`]); a code it gives no answer (one no write is
    /// refused under) is a conflict.
    pub fn refused(refusal: Refusal) -> Problem {
        let (status, problem_type, title) =
            answered(refusal.rule.answer().unwrap_or(Answer::Conflict));
        Problem {
            problem_type,
            title,
            status: status.as_u16(),
            detail: refusal.message,
            hint: refusal.hint,
            rule: Some(refusal.rule),
        }
    }
}

/// The HTTP status (the table's, [`Answer::status`]), the problem type and
/// the title of a refusal answered `answer`.
fn answered(answer: Answer) -> (StatusCode, &'static str, &'static str) {
    let status = StatusCode::from_u16(answer.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (problem_type, title) = match answer {
        Answer::Conflict => (types::CONFLICT, "Refused"),
        Answer::SeparationOfDuties => (
            types::SEPARATION_OF_DUTIES,
            "Refused by separation of duties",
        ),
        Answer::NoDelegation => (types::FORBIDDEN, "Refused: no delegation covers this"),
        Answer::Forbidden => (types::FORBIDDEN, "Forbidden"),
        Answer::TooLarge => (types::PAYLOAD_TOO_LARGE, "Payload too large"),
        Answer::Invalid => (types::INVALID_REQUEST, "Invalid request"),
    };
    (status, problem_type, title)
}

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Problem {
        match error {
            StoreError::Refused(refusal) => Problem::refused(refusal),
            StoreError::CaseNotFound(case) => {
                Problem::not_found(format!("case {case} does not exist"))
                    .with_hint("list cases with `custody cases`")
            }
            StoreError::PrincipalNotFound(principal) => {
                Problem::not_found(format!("principal {principal} does not exist"))
                    .with_hint("add it with `custody principal add`")
            }
            StoreError::TokenNotFound(token) => {
                Problem::not_found(format!("token {token} does not exist"))
                    .with_hint("list tokens with `custody token list`")
            }
            StoreError::PrincipalExists(principal) => Problem::refused(Refusal {
                rule: Code::PrincipalExists,
                message: format!("principal {principal} already exists"),
                hint: None,
            }),
            StoreError::IdentityNotMapped {
                connector,
                external_user,
            } => Problem::not_found(format!(
                "{connector} user {} is not mapped to a principal",
                custody_core::text::escape(&external_user)
            ))
            .with_hint(format!(
                "list the mapped users with `custody connector identities {connector}`"
            )),
            StoreError::InvalidRequest(detail) => Problem::invalid(detail),
            StoreError::Closed => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                types::UNAVAILABLE,
                "Unavailable",
                "the server is shutting down; retry with the same Idempotency-Key",
            ),
            other => {
                tracing::error!(error = %other, "store failure");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    types::INTERNAL,
                    "Internal error",
                    "the store failed; the write was not acknowledged. Retry with the same Idempotency-Key",
                )
            }
        }
    }
}

/// The document on the wire: the client reads the same type.
impl From<Problem> for custody_api::Problem {
    fn from(problem: Problem) -> custody_api::Problem {
        custody_api::Problem {
            problem_type: problem.problem_type.to_string(),
            title: Some(problem.title.to_string()),
            status: Some(problem.status),
            detail: Some(problem.detail),
            hint: problem.hint,
            rule: problem.rule.map(|rule| rule.as_str().to_string()),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let unauthorized = status == StatusCode::UNAUTHORIZED;
        let mut response = (status, axum::Json(custody_api::Problem::from(self))).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What goes on the wire is `custody_api::Problem`, the type the client
    /// reads: the same bytes as the server's own `Problem` serialised, with
    /// and without a hint and a rule.
    #[test]
    fn the_wire_document_is_the_servers_problem_member_for_member() {
        let problems = [
            Problem::invalid("the body is not JSON"),
            Problem::unauthorized("the bearer token is unknown or has expired"),
            Problem::refused(Refusal {
                rule: Code::PrincipalExists,
                message: "principal bob already exists".to_string(),
                hint: Some("pick another name".to_string()),
            }),
        ];
        for problem in problems {
            let server = serde_json::to_string(&problem).expect("serialise");
            let wire = serde_json::to_string(&custody_api::Problem::from(problem.clone()))
                .expect("serialise");
            assert_eq!(wire, server);
            let read: custody_api::Problem = serde_json::from_str(&wire).expect("read back");
            assert_eq!(read.status, Some(problem.status));
            assert_eq!(read.rule.as_deref(), problem.rule.map(|rule| rule.as_str()));
        }
    }
}
