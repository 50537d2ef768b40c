//! How bad a finding is, for a rule broken in a stored trail or anything
//! else `verify` reports.

use serde::Serialize;

/// The severity of a rule broken in a stored trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing is wrong.
    Info,
    /// A weakness in the trail.
    Low,
    /// A rule was bent.
    Medium,
    /// A control was bypassed.
    High,
    /// The trail itself cannot be trusted.
    Critical,
}

impl Severity {
    /// The severity's name as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}
