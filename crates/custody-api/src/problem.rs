//! Errors on the wire: RFC 9457 problem documents
//! (`application/problem+json`), as the server writes every error and the
//! client reads it.

use serde::{Deserialize, Serialize};

/// The `type` RFC 9457 gives a problem document that names none: the
/// problem has no semantics beyond its status.
pub const ABOUT_BLANK: &str = "about:blank";

/// A problem document (RFC 9457). The server writes every member but
/// `hint` and `rule` (which it writes when it has them); RFC 9457 makes
/// every member optional, so a reader takes a document without them, and
/// ignores members it does not know (extensions).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The stable problem type (`urn:custody:problem:...`, listed in
    /// `docs/api.md`): clients branch on it and on `rule`, never on
    /// `title` or `detail`. [`ABOUT_BLANK`] when the document names none.
    #[serde(rename = "type", default = "about_blank")]
    pub problem_type: String,
    /// Short summary of the problem type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The HTTP status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong in this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// For refusals: the stable code of the rule that refused
    /// (`docs/findings.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

fn about_blank() -> String {
    ABOUT_BLANK.to_string()
}

impl Problem {
    /// A problem with only a `detail` (type [`ABOUT_BLANK`]), to which a
    /// rule and a hint may be added.
    pub fn detail(detail: impl Into<String>) -> Problem {
        Problem {
            problem_type: about_blank(),
            title: None,
            status: None,
            detail: Some(detail.into()),
            hint: None,
            rule: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_written_in_order_and_absent_ones_are_read_as_none() {
        let problem = Problem {
            problem_type: "urn:custody:problem:conflict".to_string(),
            title: Some("Refused".to_string()),
            status: Some(409),
            detail: Some("the case is closed".to_string()),
            hint: None,
            rule: Some("lifecycle.closed".to_string()),
        };
        assert_eq!(
            serde_json::to_string(&problem).expect("serialise"),
            r#"{"type":"urn:custody:problem:conflict","title":"Refused","status":409,"detail":"the case is closed","rule":"lifecycle.closed"}"#
        );
        let read: Problem =
            serde_json::from_str(r#"{"detail":"no","extension":1}"#).expect("a problem");
        assert_eq!(read, Problem::detail("no"));
        assert_eq!(read.problem_type, ABOUT_BLANK);
    }
}
