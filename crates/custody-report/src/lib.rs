//! The readiness report: does the identity chain of a deployment stay
//! intact, with evidence, and is the workflow ready for governed access
//! decisions?
//!
//! IO-free: `custody verify` gives its findings ([`custody_core::audit::Report`]),
//! `custody drill` its scenario results ([`ScenarioResult`]); this crate
//! maps each to the controls it evidences, decides the verdict, and renders
//! the report as text, JSON, SARIF 2.1.0 or one self-contained HTML page.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// How a drill scenario went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioStatus {
    /// It ran, and the trail shows what it should.
    Passed,
    /// It ran, and the trail does not show what it should.
    Failed,
    /// The deployment lacks a component it needs (no notification channel,
    /// no export sink, no connector): never counted as passed.
    NotCovered,
}

impl ScenarioStatus {
    /// The status as printed: `passed`, `failed`, `not covered`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioStatus::Passed => "passed",
            ScenarioStatus::Failed => "failed",
            ScenarioStatus::NotCovered => "not covered",
        }
    }
}

/// One scenario of `custody drill`, run in cases of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Stable ID, e.g. `lifecycle`, `duplicates`, `break-glass`
    /// (docs/drill.md lists them).
    pub id: String,
    /// One line saying what the scenario tests.
    pub title: String,
    /// How it went.
    pub status: ScenarioStatus,
    /// What the drill did, step by step.
    pub did: Vec<String>,
    /// What the trail shows, as read back from the deployment.
    pub trail_shows: Vec<String>,
    /// Why it failed or is not covered (empty when it passed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// The drill cases it opened.
    pub case_ids: Vec<String>,
}

/// A report's output format (`--report text|json|sarif|html`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// For a terminal.
    Text,
    /// The documented schema (docs/report.md).
    Json,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
    /// One self-contained page that works offline.
    Html,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Format, String> {
        match text {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            "html" => Ok(Format::Html),
            other => Err(format!(
                "`{other}` is not a report format: use text, json, sarif or html"
            )),
        }
    }
}

/// What a report is made from: `verify`'s audit, the drill's scenarios, or
/// both.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// What was checked, for the title: `ledger ./custody-data`,
    /// `deployment https://custody.example`.
    pub subject: &'a str,
    /// When the report was made.
    pub generated_at: custody_core::Timestamp,
    /// `verify`'s report, when the ledger was verified.
    pub verify: Option<&'a custody_core::audit::Report>,
    /// The drill's scenario results, when a drill ran.
    pub drill: Option<&'a [ScenarioResult]>,
}

// placeholder until the report branch merges: the report engineer's
// `ReadinessReport`, `build` and `render` replace everything below.

/// A readiness report (placeholder: the drill's scenarios and verify's
/// findings as they are).
#[derive(Clone, Debug, Serialize)]
pub struct ReadinessReport {
    /// What was checked.
    pub subject: String,
    /// When the report was made.
    pub generated_at: String,
    /// Whether every scenario passed and verify found nothing above info.
    pub ready: bool,
    /// `verify`'s report, when the ledger was verified.
    pub verify: Option<custody_core::audit::Report>,
    /// The drill's scenario results, when a drill ran.
    pub drill: Vec<ScenarioResult>,
}

/// Builds the report from its input (placeholder).
pub fn build(input: Input) -> ReadinessReport {
    let drill = input
        .drill
        .map(<[ScenarioResult]>::to_vec)
        .unwrap_or_default();
    let ready = drill
        .iter()
        .all(|scenario| scenario.status == ScenarioStatus::Passed)
        && input.verify.is_none_or(|report| report.ok);
    ReadinessReport {
        subject: input.subject.to_string(),
        generated_at: input.generated_at.to_string(),
        ready,
        verify: input.verify.cloned(),
        drill,
    }
}

/// Renders the report (placeholder: plain JSON whatever the format).
pub fn render(report: &ReadinessReport, _format: Format) -> String {
    serde_json::to_string_pretty(report)
        .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
}
