//! The report as a SARIF 2.1.0 log, for code-scanning dashboards: one run
//! of the tool `custody`, whose rules are the finding codes (every code that
//! can be a finding) and the drill scenarios, each with its help text and
//! its controls as tags; one result per finding and per scenario.
//!
//! A trail has no source files: a result's location is logical, the event
//! (`AC-.../EV-...`) or the case it concerns, or the log itself. Scenario
//! results are `pass`, `fail` or, for an optional scenario not covered,
//! `notApplicable` (SARIF 2.1.0 §3.27.9); a required scenario not covered is
//! a `fail` at level `warning`, as the verdict counts it.

use custody_core::severity::Severity;
use custody_core::text::{escape, escape_json_text};
use custody_core::Code;
use serde_json::{json, Map, Value};

use crate::controls::{self, Control, SCENARIOS};
use crate::{ReadinessReport, ReportScenario, ScenarioStatus};

/// The schema every SARIF 2.1.0 log names.
const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

pub(crate) fn render(report: &ReadinessReport) -> String {
    let mut rules: Vec<Value> = Vec::new();
    let mut rule_ids: Vec<String> = Vec::new();
    for &code in Code::ALL {
        if code.severities().is_empty() {
            continue;
        }
        rule_ids.push(code.as_str().to_string());
        rules.push(code_rule(code));
    }
    for scenario in SCENARIOS {
        rule_ids.push(scenario_rule_id(scenario.id));
        rules.push(scenario_rule(scenario.id, None, scenario.controls));
    }
    // A scenario of a newer drill that the mapping does not know yet.
    for scenario in &report.scenarios {
        let id = scenario_rule_id(&scenario.result.id);
        if !rule_ids.contains(&id) {
            rule_ids.push(id);
            rules.push(scenario_rule(
                &scenario.result.id,
                Some(&scenario.result.title),
                &scenario.controls,
            ));
        }
    }
    let rule_index = |id: &str| rule_ids.iter().position(|rule| rule == id);

    let mut results = Vec::new();
    for finding in &report.findings {
        let id = finding.code.as_str();
        let mut properties = Map::new();
        properties.insert("severity".into(), json!(finding.severity.as_str()));
        for (key, value) in [
            ("case_id", &finding.case_id),
            ("event_id", &finding.event_id),
            ("source", &finding.source),
            ("external_id", &finding.external_id),
        ] {
            if let Some(value) = value {
                properties.insert(key.into(), json!(escape(value)));
            }
        }
        if let Some(seq) = finding.seq {
            properties.insert("seq".into(), json!(seq));
        }
        if let Some(log_index) = finding.log_index {
            properties.insert("log_index".into(), json!(log_index));
        }
        properties.insert("controls".into(), json!(finding.controls));
        properties.insert("tags".into(), json!(tags(&finding.controls)));
        let mut result = json!({
            "ruleId": id,
            "kind": "fail",
            "level": level(finding.severity),
            "message": {"text": sentence(&escape(&finding.message))},
            "locations": [finding_location(
                finding.case_id.as_deref(),
                finding.event_id.as_deref(),
                finding.log_index,
            )],
            "properties": properties,
        });
        if let Some(index) = rule_index(id) {
            result["ruleIndex"] = json!(index);
        }
        results.push(result);
    }
    for scenario in &report.scenarios {
        let id = scenario_rule_id(&scenario.result.id);
        let mut result = scenario_result(scenario);
        result["ruleId"] = json!(id);
        if let Some(index) = rule_index(&id) {
            result["ruleIndex"] = json!(index);
        }
        results.push(result);
    }

    let log = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "custody",
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": true,
                "endTimeUtc": report.generated_at.to_string(),
            }],
            "results": results,
            "properties": {
                "schema_version": report.schema_version,
                "subject": escape(&report.subject),
                "verdict": report.verdict.label,
                "ready": report.verdict.ready,
                "reasons": report.verdict.reasons.iter().map(|r| escape(r)).collect::<Vec<_>>(),
                "notes": report.verdict.notes.iter().map(|n| escape(n)).collect::<Vec<_>>(),
            },
        }],
    });
    let text = serde_json::to_string_pretty(&log)
        // A tree of JSON values always serializes.
        .unwrap_or_default();
    let mut text = escape_json_text(&text).into_owned();
    text.push('\n');
    text
}

/// SARIF's level for a finding's severity.
fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// The validator wants messages to be sentences that end with a period.
fn sentence(text: &str) -> String {
    let trimmed = text.trim_end();
    if trimmed.ends_with(['.', '!', '?']) {
        trimmed.to_string()
    } else {
        format!("{trimmed}.")
    }
}

fn tags(controls: &[Control]) -> Vec<String> {
    controls.iter().flat_map(|control| control.tags()).collect()
}

fn control_text(controls: &[Control]) -> String {
    if controls.is_empty() {
        "Controls: none.".to_string()
    } else {
        let labels: Vec<String> = controls
            .iter()
            .map(|control| format!("{} {}", control.framework().title(), control.label()))
            .collect();
        format!("Controls: {}.", labels.join("; "))
    }
}

fn code_rule(code: Code) -> Value {
    let doc = code.doc();
    // The doc row is `severity | meaning`; the meaning is the description.
    let meaning = doc.split_once(" | ").map_or(doc, |(_, meaning)| meaning);
    let controls = controls::for_code(code);
    json!({
        "id": code.as_str(),
        "name": code.name(),
        "shortDescription": {"text": sentence(first_clause(meaning))},
        "fullDescription": {"text": sentence(meaning)},
        "help": {"text": format!(
            "{} See docs/findings.md for the code and docs/report.md for the control mapping. {}",
            sentence(meaning),
            control_text(controls)
        )},
        "defaultConfiguration": {"level": level(code.severity())},
        "properties": {
            "tags": tags(controls),
            "controls": controls,
            "kind": "finding",
        },
    })
}

fn scenario_rule_id(id: &str) -> String {
    format!("drill.{}", escape(id))
}

fn scenario_rule(id: &str, title: Option<&str>, controls: &[Control]) -> Value {
    let description = title.map_or_else(
        || format!("The drill scenario `{}` (docs/drill.md).", escape(id)),
        |title| sentence(&escape(title)),
    );
    json!({
        "id": scenario_rule_id(id),
        "name": pascal_case(id),
        "shortDescription": {"text": description},
        "fullDescription": {"text": description},
        "help": {"text": format!(
            "{description} It passes when the trail shows what the scenario did; a scenario that needs a component the deployment lacks is not covered, never passed. {}",
            control_text(controls)
        )},
        "defaultConfiguration": {"level": "error"},
        "properties": {
            "tags": tags(controls),
            "controls": controls,
            "kind": "scenario",
        },
    })
}

fn scenario_result(scenario: &ReportScenario) -> Value {
    let result = &scenario.result;
    let (kind, level) = match (result.status, scenario.required) {
        (ScenarioStatus::Passed, _) => ("pass", "none"),
        (ScenarioStatus::Failed, _) => ("fail", "error"),
        (ScenarioStatus::NotCovered, true) => ("fail", "warning"),
        (ScenarioStatus::NotCovered, false) => ("notApplicable", "none"),
    };
    let mut text = format!(
        "Drill scenario {} {}",
        escape(&result.id),
        result.status.as_str()
    );
    if !result.problems.is_empty() {
        let problems: Vec<String> = result
            .problems
            .iter()
            .map(|p| escape(p).into_owned())
            .collect();
        text.push_str(": ");
        text.push_str(&problems.join("; "));
    }
    let locations: Vec<Value> = if result.case_ids.is_empty() {
        vec![json!({"logicalLocations": [{
            "name": format!("drill/{}", escape(&result.id)),
            "kind": "module",
        }]})]
    } else {
        result
            .case_ids
            .iter()
            .map(|case_id| finding_location(Some(case_id), None, None))
            .collect()
    };
    json!({
        "kind": kind,
        "level": level,
        "message": {"text": sentence(&text)},
        "locations": locations,
        "properties": {
            "status": result.status,
            "required": scenario.required,
            "did": result.did.iter().map(|s| escape(s)).collect::<Vec<_>>(),
            "trail_shows": result.trail_shows.iter().map(|s| escape(s)).collect::<Vec<_>>(),
            "case_ids": result.case_ids.iter().map(|s| escape(s)).collect::<Vec<_>>(),
            "controls": scenario.controls,
            "tags": tags(&scenario.controls),
        },
    })
}

/// Where a finding points: the event in its case, the case, a log index, or
/// the log.
fn finding_location(
    case_id: Option<&str>,
    event_id: Option<&str>,
    log_index: Option<u64>,
) -> Value {
    let logical = match (case_id, event_id) {
        (Some(case_id), Some(event_id)) => json!({
            "name": escape(event_id),
            "fullyQualifiedName": format!("{}/{}", escape(case_id), escape(event_id)),
            "kind": "object",
        }),
        (Some(case_id), None) => json!({"name": escape(case_id), "kind": "object"}),
        (None, Some(event_id)) => json!({"name": escape(event_id), "kind": "object"}),
        (None, None) => match log_index {
            Some(index) => json!({"name": format!("log/{index}"), "kind": "object"}),
            None => json!({"name": "log", "kind": "module"}),
        },
    };
    json!({"logicalLocations": [logical]})
}

/// The part of a description before its first colon or semicolon.
fn first_clause(text: &str) -> &str {
    text.split([':', ';']).next().unwrap_or(text).trim()
}

/// `notification-failure` as `NotificationFailure`.
fn pascal_case(id: &str) -> String {
    id.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}
