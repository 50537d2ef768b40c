//! The report for a terminal: the verdict first, then the findings, the
//! scenarios and the per-control summary. Every string that came from
//! outside (messages, scenario steps, case and source IDs) goes through
//! [`custody_core::text::escape`].

use std::fmt::Write as _;

use custody_core::text::escape;

use crate::{ControlStatus, ReadinessReport};

pub(crate) fn render(report: &ReadinessReport) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, report);
    out
}

fn write_report(out: &mut String, report: &ReadinessReport) -> std::fmt::Result {
    writeln!(
        out,
        "Readiness report for {} ({})",
        escape(&report.subject),
        report.generated_at
    )?;
    writeln!(out, "verdict: {}", report.verdict.label)?;
    for reason in &report.verdict.reasons {
        writeln!(out, "  because {}", escape(reason))?;
    }
    for note in &report.verdict.notes {
        writeln!(out, "  note: {}", escape(note))?;
    }
    if report.scope.verified {
        writeln!(out)?;
        writeln!(out, "findings: {}", report.findings.len())?;
        for finding in &report.findings {
            let mut place = Vec::new();
            if let Some(case_id) = &finding.case_id {
                place.push(format!("case {}", escape(case_id)));
            }
            if let Some(seq) = finding.seq {
                place.push(format!("seq {seq}"));
            }
            if let Some(event_id) = &finding.event_id {
                place.push(format!("event {}", escape(event_id)));
            }
            if let Some(log_index) = finding.log_index {
                place.push(format!("log index {log_index}"));
            }
            if let (Some(source), Some(external_id)) = (&finding.source, &finding.external_id) {
                place.push(format!("{} {}", escape(source), escape(external_id)));
            }
            writeln!(
                out,
                "  {:<8} {} {}",
                finding.severity.as_str(),
                finding.code,
                escape(&finding.message)
            )?;
            if !place.is_empty() {
                writeln!(out, "           at {}", place.join(", "))?;
            }
            writeln!(
                out,
                "           controls: {}",
                control_list(&finding.controls)
            )?;
        }
    }
    if report.scope.drilled {
        writeln!(out)?;
        writeln!(out, "drill scenarios: {}", report.scenarios.len())?;
        for scenario in &report.scenarios {
            let result = &scenario.result;
            writeln!(
                out,
                "  {:<11} {}{}: {}",
                result.status.as_str(),
                escape(&result.id),
                if scenario.required { "" } else { " (optional)" },
                escape(&result.title)
            )?;
            for problem in &result.problems {
                writeln!(out, "              problem: {}", escape(problem))?;
            }
            if !result.case_ids.is_empty() {
                let cases: Vec<String> = result
                    .case_ids
                    .iter()
                    .map(|case_id| escape(case_id).into_owned())
                    .collect();
                writeln!(out, "              cases: {}", cases.join(", "))?;
            }
            writeln!(
                out,
                "              controls: {}",
                control_list(&scenario.controls)
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "controls:")?;
    for control in &report.controls {
        let findings: u64 = control.findings.values().sum();
        let scenarios: u64 = control.scenarios.values().sum();
        let mark = match control.status {
            ControlStatus::Failing => "FAILING",
            ControlStatus::Evidenced => "ok",
            ControlStatus::NotEvidenced => "-",
        };
        writeln!(
            out,
            "  {:<8} {:<28} {findings} finding{}, {scenarios} scenario{}  {}",
            mark,
            control.id.label(),
            if findings == 1 { "" } else { "s" },
            if scenarios == 1 { "" } else { "s" },
            control.title
        )?;
    }
    if let Some(stats) = &report.statistics.audit {
        writeln!(out)?;
        let states: Vec<String> = stats
            .cases_by_state
            .iter()
            .map(|(state, count)| format!("{state} {count}"))
            .collect();
        writeln!(
            out,
            "cases by state: {}",
            if states.is_empty() {
                "none".to_string()
            } else {
                states.join(", ")
            }
        )?;
        let review = &stats.request_to_review_seconds;
        writeln!(
            out,
            "request to review: {} reviewed case{}{}",
            review.count,
            if review.count == 1 { "" } else { "s" },
            review
                .max
                .map(|max| format!(", longest {max} s"))
                .unwrap_or_default()
        )?;
        let latency = &stats.notification_latency_ms;
        writeln!(
            out,
            "notification attempts: {}{}",
            latency.count,
            latency
                .max
                .map(|max| format!(", slowest {max} ms"))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}

fn control_list(controls: &[crate::Control]) -> String {
    if controls.is_empty() {
        return "none".to_string();
    }
    controls
        .iter()
        .map(|control| control.label())
        .collect::<Vec<_>>()
        .join(", ")
}
