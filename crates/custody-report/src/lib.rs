//! The readiness report: does the identity chain of a deployment stay
//! intact, with evidence, and is the workflow ready for governed access
//! decisions?
//!
//! IO-free: `custody verify` gives its findings ([`custody_core::audit::Report`]),
//! `custody drill` its scenario results ([`ScenarioResult`]); this crate
//! maps each to the controls it evidences, decides the verdict, and renders
//! the report as text, JSON, SARIF 2.1.0 or one self-contained HTML page.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use custody_core::audit::{Checked, Stats};
use custody_core::severity::Severity;
use custody_core::{Code, Timestamp};
use serde::{Deserialize, Serialize};

pub mod controls;
mod html;
mod sarif;
mod text;
pub mod verdict;

pub use controls::{Control, Framework};
pub use verdict::Verdict;

/// The version of the JSON document (`schema_version`); it changes only
/// when a field changes meaning or goes away, never for an added field.
pub const SCHEMA_VERSION: u32 = 1;

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

/// The readiness report: everything [`render`] shows, in every format. Its
/// JSON form is the documented schema (`docs/report.md`).
#[derive(Clone, Debug, Serialize)]
pub struct ReadinessReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// What was checked (`ledger ./custody-data`).
    pub subject: String,
    /// When the report was made.
    pub generated_at: Timestamp,
    /// Ready or not, and why.
    pub verdict: Verdict,
    /// What the report rests on.
    pub scope: Scope,
    /// Every finding of `verify`, most severe first.
    pub findings: Vec<ReportFinding>,
    /// Every drill scenario, in the drill's order.
    pub scenarios: Vec<ReportScenario>,
    /// One row per control of the mapping, in its order.
    pub controls: Vec<ControlSummary>,
    /// Every case a finding or a scenario names, by case ID.
    pub cases: Vec<CaseSummary>,
    /// Counts for the charts.
    pub statistics: Statistics,
}

/// What a report rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Scope {
    /// Whether `verify` checked the trail.
    pub verified: bool,
    /// Whether a drill ran.
    pub drilled: bool,
}

/// One finding of `verify`, with the controls it evidences.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReportFinding {
    /// The stable code (`docs/findings.md`).
    pub code: Code,
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong, in a sentence (escaped for a terminal already by
    /// `verify`; every renderer escapes it again for its own format).
    pub message: String,
    /// The case it concerns.
    pub case_id: Option<String>,
    /// The event it points at.
    pub event_id: Option<String>,
    /// The event's sequence number in its case.
    pub seq: Option<u64>,
    /// The event's index in the log.
    pub log_index: Option<u64>,
    /// The connector that saw it, for an observed change.
    pub source: Option<String>,
    /// The record's ID in that source.
    pub external_id: Option<String>,
    /// The controls it evidences (IDs, `docs/report.md`).
    pub controls: Vec<Control>,
}

/// One drill scenario, with the controls it evidences.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReportScenario {
    /// What the drill reported.
    #[serde(flatten)]
    pub result: ScenarioResult,
    /// Whether the verdict needs it (see [`controls::Scenario::required`]).
    pub required: bool,
    /// The controls it evidences.
    pub controls: Vec<Control>,
}

/// How a control stands in this report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlStatus {
    /// A finding above `info`, or a failed scenario, maps to it.
    Failing,
    /// Something that ran checks it, and nothing failed: `verify` ran and
    /// has checks that map to it, or a scenario that maps to it passed.
    Evidenced,
    /// Nothing in this report checks it.
    NotEvidenced,
}

impl ControlStatus {
    /// As printed: `failing`, `evidenced`, `not evidenced`.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlStatus::Failing => "failing",
            ControlStatus::Evidenced => "evidenced",
            ControlStatus::NotEvidenced => "not evidenced",
        }
    }
}

/// One row of the per-control summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ControlSummary {
    /// The control's ID (`PR.AA-05`).
    pub id: Control,
    /// Its framework.
    pub framework: Framework,
    /// Its title.
    pub title: &'static str,
    /// The CSF 1.1 subcategory shown beside it (PR.AC-4 beside PR.AA-05).
    pub csf_1_1: Option<&'static str>,
    /// How it stands.
    pub status: ControlStatus,
    /// Findings that map to it, by severity (only severities with findings).
    pub findings: BTreeMap<Severity, u64>,
    /// Scenarios that map to it, by status (only statuses with scenarios).
    pub scenarios: BTreeMap<ScenarioStatus, u64>,
}

/// A case some finding or scenario names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseSummary {
    /// The case ID.
    pub case_id: String,
    /// Its findings' indexes in [`ReadinessReport::findings`].
    pub findings: Vec<usize>,
    /// The worst severity among them.
    pub worst_severity: Option<Severity>,
    /// The scenarios that opened it.
    pub scenarios: Vec<String>,
}

/// Counts for the charts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Statistics {
    /// Findings by severity (every severity, zero included).
    pub findings_by_severity: BTreeMap<Severity, u64>,
    /// Findings by control ID (every control, zero included; a finding
    /// counts once under each control it maps to).
    pub findings_by_control: BTreeMap<String, u64>,
    /// Scenarios by status (every status, zero included).
    pub scenarios_by_status: BTreeMap<ScenarioStatus, u64>,
    /// What `verify` checked, when it ran.
    pub checked: Option<Checked>,
    /// What the audit counted (cases by state, request to review,
    /// notification latency), when `verify` ran.
    pub audit: Option<Stats>,
}

/// Builds the report from `verify`'s audit and the drill's scenarios:
/// maps each finding and scenario to its controls and decides the verdict
/// ([`verdict::decide`]).
pub fn build(input: Input) -> ReadinessReport {
    let findings: Vec<ReportFinding> = input
        .verify
        .map(|report| {
            report
                .findings
                .iter()
                .map(|finding| ReportFinding {
                    code: finding.code,
                    severity: finding.severity,
                    message: finding.message.clone(),
                    case_id: finding.case_id.clone(),
                    event_id: finding.event_id.clone(),
                    seq: finding.seq,
                    log_index: finding.log_index,
                    source: finding.source.clone(),
                    external_id: finding.external_id.clone(),
                    controls: controls::for_code(finding.code).to_vec(),
                })
                .collect()
        })
        .unwrap_or_default();
    let scenarios: Vec<ReportScenario> = input
        .drill
        .unwrap_or_default()
        .iter()
        .map(|result| ReportScenario {
            required: controls::scenario(&result.id).is_some_and(|known| known.required),
            controls: controls::for_scenario(&result.id).to_vec(),
            result: result.clone(),
        })
        .collect();
    let scope = Scope {
        verified: input.verify.is_some(),
        drilled: input.drill.is_some(),
    };
    let verdict = verdict::decide(input.verify, input.drill);
    let controls = summarise_controls(&findings, &scenarios, scope);
    let cases = summarise_cases(&findings, &scenarios);
    let statistics = Statistics {
        findings_by_severity: [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
            Severity::Info,
        ]
        .into_iter()
        .map(|severity| {
            let count = findings
                .iter()
                .filter(|finding| finding.severity == severity)
                .count();
            (severity, count_u64(count))
        })
        .collect(),
        findings_by_control: Control::ALL
            .iter()
            .map(|&control| {
                let count = findings
                    .iter()
                    .filter(|finding| finding.controls.contains(&control))
                    .count();
                (control.id().to_string(), count_u64(count))
            })
            .collect(),
        scenarios_by_status: [
            ScenarioStatus::Passed,
            ScenarioStatus::Failed,
            ScenarioStatus::NotCovered,
        ]
        .into_iter()
        .map(|status| {
            let count = scenarios
                .iter()
                .filter(|scenario| scenario.result.status == status)
                .count();
            (status, count_u64(count))
        })
        .collect(),
        checked: input.verify.map(|report| report.checked.clone()),
        // A drill's report charts the drill's cases; any other charts the
        // real ones, and a drill never skews them.
        audit: input.verify.map(|report| {
            if input.drill.is_some() {
                report.stats.drill_view()
            } else {
                report.stats.clone()
            }
        }),
    };
    ReadinessReport {
        schema_version: SCHEMA_VERSION,
        subject: input.subject.to_string(),
        generated_at: input.generated_at,
        verdict,
        scope,
        findings,
        scenarios,
        controls,
        cases,
        statistics,
    }
}

/// Renders the report in `format`: text for a terminal (every string from
/// outside escaped), the JSON document, a SARIF 2.1.0 log, or one
/// self-contained HTML page.
/// The HTML report's content without its page (no head, no inline style):
/// for the web console, which serves it inside its own layout under a CSP
/// that forbids inline style. The same verdict, tables and SVG charts as
/// [`Format::Html`].
pub fn render_html_body(report: &ReadinessReport) -> String {
    html::render_body(report)
}

pub fn render(report: &ReadinessReport, format: Format) -> String {
    match format {
        Format::Text => text::render(report),
        Format::Json => {
            let json = serde_json::to_string_pretty(report)
                // The report holds strings, numbers and maps with string
                // keys only, which always serialize.
                .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"));
            let mut json = custody_core::text::escape_json_text(&json).into_owned();
            json.push('\n');
            json
        }
        Format::Sarif => sarif::render(report),
        Format::Html => html::render(report),
    }
}

/// A count as the report's numbers are: `usize` always fits in `u64` on the
/// platforms Custody builds for.
fn count_u64(count: usize) -> u64 {
    u64::try_from(count).unwrap_or(u64::MAX)
}

fn summarise_controls(
    findings: &[ReportFinding],
    scenarios: &[ReportScenario],
    scope: Scope,
) -> Vec<ControlSummary> {
    Control::ALL
        .iter()
        .map(|&control| {
            let mut by_severity: BTreeMap<Severity, u64> = BTreeMap::new();
            for finding in findings.iter().filter(|f| f.controls.contains(&control)) {
                *by_severity.entry(finding.severity).or_default() += 1;
            }
            let mut by_status: BTreeMap<ScenarioStatus, u64> = BTreeMap::new();
            for scenario in scenarios.iter().filter(|s| s.controls.contains(&control)) {
                *by_status.entry(scenario.result.status).or_default() += 1;
            }
            let failing = by_severity
                .keys()
                .any(|&severity| severity > Severity::Info)
                || by_status.contains_key(&ScenarioStatus::Failed);
            let checked_by_verify = scope.verified
                && Code::ALL
                    .iter()
                    .any(|&code| controls::for_code(code).contains(&control));
            let status = if failing {
                ControlStatus::Failing
            } else if checked_by_verify || by_status.contains_key(&ScenarioStatus::Passed) {
                ControlStatus::Evidenced
            } else {
                ControlStatus::NotEvidenced
            };
            ControlSummary {
                id: control,
                framework: control.framework(),
                title: control.title(),
                csf_1_1: control.csf_1_1(),
                status,
                findings: by_severity,
                scenarios: by_status,
            }
        })
        .collect()
}

fn summarise_cases(findings: &[ReportFinding], scenarios: &[ReportScenario]) -> Vec<CaseSummary> {
    let mut cases: BTreeMap<String, CaseSummary> = BTreeMap::new();
    for (index, finding) in findings.iter().enumerate() {
        if let Some(case_id) = &finding.case_id {
            let case = case_entry(&mut cases, case_id);
            case.findings.push(index);
            case.worst_severity = case.worst_severity.max(Some(finding.severity));
        }
    }
    for scenario in scenarios {
        for case_id in &scenario.result.case_ids {
            let case = case_entry(&mut cases, case_id);
            if !case.scenarios.contains(&scenario.result.id) {
                case.scenarios.push(scenario.result.id.clone());
            }
        }
    }
    cases.into_values().collect()
}

fn case_entry<'a>(
    cases: &'a mut BTreeMap<String, CaseSummary>,
    case_id: &str,
) -> &'a mut CaseSummary {
    cases
        .entry(case_id.to_string())
        .or_insert_with(|| CaseSummary {
            case_id: case_id.to_string(),
            findings: Vec::new(),
            worst_severity: None,
            scenarios: Vec::new(),
        })
}
