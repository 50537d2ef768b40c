//! The report as one self-contained HTML page: inline CSS, inline SVG
//! charts, no script, no font, no image and no URL of any kind, so it works
//! offline and from a mail attachment. A Content-Security-Policy of
//! `default-src 'none'` keeps it so even if a string slipped through.
//!
//! Every string from outside goes through [`custody_core::text::escape`]
//! (control and bidi characters become visible escapes) and then
//! [`escape_html`]. Elements tests find by: `#verdict` (with `data-verdict`
//! `ready` or `not-ready`), `#verdict-reasons`, `#chart-findings-by-control`,
//! `#chart-cases-by-state`, `#chart-request-to-review`,
//! `#chart-notification-latency` (each an `svg.chart` holding one
//! `rect.bar` per bar, with `data-label` and `data-value`), `#findings`
//! (rows `tr.finding` linking to `#case-...`), `#scenarios`, `#controls`,
//! and one `section.case` per case, `id="case-AC-..."`.

use std::fmt::Write as _;

use custody_core::audit::Histogram;
use custody_core::text::{escape, escape_html};

use crate::{ControlStatus, ReadinessReport, ScenarioStatus};

/// Text from outside, made inert for a page.
fn safe(text: &str) -> String {
    escape_html(&escape(text))
}

/// The anchor of a case's section: `case-` and the case ID when it is made
/// of letters, digits, `-`, `_` and `.` (every real case ID is), else of
/// the ID's bytes in hex, so no stored string can break out of the `id`.
pub(crate) fn case_anchor(case_id: &str) -> String {
    if !case_id.is_empty()
        && case_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        format!("case-{case_id}")
    } else {
        let hex: String = case_id.bytes().map(|byte| format!("{byte:02x}")).collect();
        format!("case-x{hex}")
    }
}

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9;line-height:1.4}
main{max-width:1100px;margin:0 auto;padding:1.5rem}
h1,h2,h3{margin:.2em 0 .4em}
.verdict{padding:1.2rem 1.5rem;border-radius:8px;color:#fff}
.verdict.ready{background:#1f7a44}
.verdict.not-ready{background:#b3261e}
.verdict p,.verdict li{margin:.2em 0}
.notes{color:#3b4252;background:#fff;border-radius:8px;padding:.6rem 1.5rem;margin-top:.6rem}
section{margin-top:1.6rem}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1rem}
figure{margin:0;background:#fff;border-radius:8px;padding:.8rem}
figcaption{font-weight:600;margin-bottom:.4rem}
svg.chart text{font-size:12px;fill:#1d2330}
svg.chart rect.bar{fill:#3b6fd4}
svg.chart.findings rect.bar{fill:#c0392b}
table{border-collapse:collapse;width:100%;background:#fff;border-radius:8px;overflow:hidden}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e3e6eb;vertical-align:top;font-size:14px}
th{background:#eef1f5}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;word-break:break-all}
.sev-critical,.sev-high,.st-failed,.st-failing{color:#b3261e;font-weight:600}
.sev-medium,.st-not-covered{color:#a05a00;font-weight:600}
.sev-low,.sev-info,.st-not-evidenced{color:#59606d}
.st-passed,.st-evidenced{color:#1f7a44;font-weight:600}
.case{background:#fff;border-radius:8px;padding:.6rem 1rem;margin-top:.6rem}
.case:target{outline:3px solid #3b6fd4}
"#;

pub(crate) fn render(report: &ReadinessReport) -> String {
    let mut out = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail.
    let _ = write_page(&mut out, report);
    out
}

fn write_page(out: &mut String, report: &ReadinessReport) -> std::fmt::Result {
    writeln!(out, "<!DOCTYPE html>")?;
    writeln!(out, "<html lang=\"en\"><head><meta charset=\"utf-8\">")?;
    writeln!(
        out,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
    )?;
    writeln!(
        out,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    )?;
    writeln!(
        out,
        "<title>Custody readiness report: {}</title>",
        safe(&report.subject)
    )?;
    writeln!(out, "<style>{STYLE}</style></head><body><main>")?;
    write_body(out, report)?;
    writeln!(out, "</main></body></html>")
}

/// The report's content without the page around it: what [`write_page`]
/// puts in `<main>`, for a page that brings its own head and style sheet
/// (the web console, whose CSP forbids inline style). The charts are inline
/// SVG styled by class only.
pub(crate) fn render_body(report: &ReadinessReport) -> String {
    let mut out = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail.
    let _ = write_body(&mut out, report);
    out
}

fn write_body(out: &mut String, report: &ReadinessReport) -> std::fmt::Result {
    let verdict_class = if report.verdict.ready {
        "ready"
    } else {
        "not-ready"
    };
    // The verdict, and why.
    writeln!(
        out,
        "<header id=\"verdict\" class=\"verdict {verdict_class}\" data-verdict=\"{verdict_class}\">"
    )?;
    writeln!(
        out,
        "<h1 id=\"verdict-label\">{}</h1>",
        report.verdict.label
    )?;
    writeln!(
        out,
        "<p>Readiness report for <strong>{}</strong>, made {}.</p>",
        safe(&report.subject),
        report.generated_at
    )?;
    if report.verdict.reasons.is_empty() {
        writeln!(
            out,
            "<p id=\"verdict-reasons\">Nothing that makes it not ready was found.</p>"
        )?;
    } else {
        writeln!(out, "<p>Why:</p><ul id=\"verdict-reasons\">")?;
        for reason in &report.verdict.reasons {
            writeln!(out, "<li class=\"reason\">{}</li>", safe(reason))?;
        }
        writeln!(out, "</ul>")?;
    }
    writeln!(out, "</header>")?;
    if !report.verdict.notes.is_empty() {
        writeln!(out, "<div class=\"notes\"><ul id=\"verdict-notes\">")?;
        for note in &report.verdict.notes {
            writeln!(out, "<li class=\"note\">{}</li>", safe(note))?;
        }
        writeln!(out, "</ul></div>")?;
    }

    // The charts.
    writeln!(
        out,
        "<section id=\"charts\"><h2>At a glance</h2><div class=\"charts\">"
    )?;
    let by_control: Vec<(String, u64)> = report
        .statistics
        .findings_by_control
        .iter()
        .filter(|(_, &count)| count > 0)
        .map(|(id, &count)| (id.clone(), count))
        .collect();
    write_chart(
        out,
        "chart-findings-by-control",
        "findings",
        "Findings by control",
        &by_control,
        "no findings",
    )?;
    let by_state: Vec<(String, u64)> = report
        .statistics
        .audit
        .as_ref()
        .map(|stats| {
            stats
                .cases_by_state
                .iter()
                .map(|(state, &count)| (state.clone(), count))
                .collect()
        })
        .unwrap_or_default();
    write_chart(
        out,
        "chart-cases-by-state",
        "cases",
        "Cases by state",
        &by_state,
        if report.scope.verified {
            "no cases"
        } else {
            "the trail was not verified"
        },
    )?;
    let empty = |what: &str| {
        if report.scope.verified {
            format!("no {what}")
        } else {
            "the trail was not verified".to_string()
        }
    };
    let review = report
        .statistics
        .audit
        .as_ref()
        .map(|stats| histogram_bars(&stats.request_to_review_seconds, duration_label))
        .unwrap_or_default();
    write_chart(
        out,
        "chart-request-to-review",
        "review",
        "Time from request to review",
        &review,
        &empty("reviewed cases"),
    )?;
    let latency = report
        .statistics
        .audit
        .as_ref()
        .map(|stats| histogram_bars(&stats.notification_latency_ms, |ms| format!("{ms} ms")))
        .unwrap_or_default();
    write_chart(
        out,
        "chart-notification-latency",
        "latency",
        "Notification delivery latency",
        &latency,
        &empty("notification attempts"),
    )?;
    writeln!(out, "</div></section>")?;

    // The findings, each linked to its case.
    writeln!(
        out,
        "<section id=\"findings\"><h2>Findings ({})</h2>",
        report.findings.len()
    )?;
    if !report.scope.verified {
        writeln!(out, "<p>The trail was not verified.</p>")?;
    } else if report.findings.is_empty() {
        writeln!(out, "<p>verify found nothing.</p>")?;
    } else {
        writeln!(
            out,
            "<table><thead><tr><th>severity</th><th>code</th><th>what</th><th>where</th><th>controls</th></tr></thead><tbody>"
        )?;
        for (index, finding) in report.findings.iter().enumerate() {
            let severity = finding.severity.as_str();
            let mut place = String::new();
            if let Some(case_id) = &finding.case_id {
                write!(
                    place,
                    "<a class=\"case-link\" href=\"#{}\"><code>{}</code></a>",
                    case_anchor(case_id),
                    safe(case_id)
                )?;
            }
            if let Some(seq) = finding.seq {
                write!(place, " seq {seq}")?;
            }
            if let Some(event_id) = &finding.event_id {
                write!(place, "<br>event <code>{}</code>", safe(event_id))?;
            }
            if let Some(log_index) = finding.log_index {
                write!(place, "<br>log index {log_index}")?;
            }
            if let (Some(source), Some(external_id)) = (&finding.source, &finding.external_id) {
                write!(
                    place,
                    "<br>{} <code>{}</code>",
                    safe(source),
                    safe(external_id)
                )?;
            }
            writeln!(
                out,
                "<tr class=\"finding\" id=\"finding-{index}\" data-code=\"{code}\" data-severity=\"{severity}\"><td class=\"sev-{severity}\">{severity}</td><td><code>{code}</code></td><td>{message}</td><td>{place}</td><td>{controls}</td></tr>",
                code = finding.code,
                message = safe(&finding.message),
                controls = control_labels(&finding.controls),
            )?;
        }
        writeln!(out, "</tbody></table>")?;
    }
    writeln!(out, "</section>")?;

    // The drill.
    writeln!(
        out,
        "<section id=\"scenarios\"><h2>Drill scenarios ({})</h2>",
        report.scenarios.len()
    )?;
    if !report.scope.drilled {
        writeln!(out, "<p>No drill ran.</p>")?;
    } else {
        writeln!(
            out,
            "<table><thead><tr><th>status</th><th>scenario</th><th>what the drill did and what the trail shows</th><th>cases</th><th>controls</th></tr></thead><tbody>"
        )?;
        for scenario in &report.scenarios {
            let result = &scenario.result;
            let status_class = status_class(result.status);
            let mut details = String::new();
            for (label, lines) in [
                ("did", &result.did),
                ("the trail shows", &result.trail_shows),
                ("problems", &result.problems),
            ] {
                if lines.is_empty() {
                    continue;
                }
                write!(details, "<p>{label}:</p><ul>")?;
                for line in lines {
                    write!(details, "<li>{}</li>", safe(line))?;
                }
                write!(details, "</ul>")?;
            }
            let cases: Vec<String> = result
                .case_ids
                .iter()
                .map(|case_id| {
                    format!(
                        "<a class=\"case-link\" href=\"#{}\"><code>{}</code></a>",
                        case_anchor(case_id),
                        safe(case_id)
                    )
                })
                .collect();
            writeln!(
                out,
                "<tr class=\"scenario\" data-scenario=\"{id}\" data-status=\"{status_class}\"><td class=\"st-{status_class}\">{status}</td><td><code>{id}</code>{optional}<br>{title}</td><td>{details}</td><td>{cases}</td><td>{controls}</td></tr>",
                id = safe(&result.id),
                status = result.status.as_str(),
                optional = if scenario.required { "" } else { " (optional)" },
                title = safe(&result.title),
                cases = cases.join("<br>"),
                controls = control_labels(&scenario.controls),
            )?;
        }
        writeln!(out, "</tbody></table>")?;
    }
    writeln!(out, "</section>")?;

    // The per-control summary.
    writeln!(
        out,
        "<section id=\"controls\"><h2>Controls</h2><table><thead><tr><th>control</th><th>framework</th><th>status</th><th>findings</th><th>scenarios</th><th>title</th></tr></thead><tbody>"
    )?;
    for control in &report.controls {
        let status = match control.status {
            ControlStatus::Failing => "failing",
            ControlStatus::Evidenced => "evidenced",
            ControlStatus::NotEvidenced => "not-evidenced",
        };
        let findings: u64 = control.findings.values().sum();
        let scenarios: Vec<String> = control
            .scenarios
            .iter()
            .map(|(status, count)| format!("{count} {}", status.as_str()))
            .collect();
        writeln!(
            out,
            "<tr class=\"control\" data-control=\"{id}\" data-status=\"{status}\"><td><code>{label}</code></td><td>{framework}</td><td class=\"st-{status}\">{status_text}</td><td>{findings}</td><td>{scenarios}</td><td>{title}</td></tr>",
            id = control.id.id(),
            label = control.id.label(),
            framework = control.framework.title(),
            status_text = control.status.as_str(),
            scenarios = scenarios.join(", "),
            title = control.title,
        )?;
    }
    writeln!(out, "</tbody></table></section>")?;

    // One section per case, listing its findings and scenarios.
    writeln!(
        out,
        "<section id=\"cases\"><h2>Cases ({})</h2>",
        report.cases.len()
    )?;
    for case in &report.cases {
        writeln!(
            out,
            "<section class=\"case\" id=\"{}\"><h3><code>{}</code></h3>",
            case_anchor(&case.case_id),
            safe(&case.case_id)
        )?;
        if !case.scenarios.is_empty() {
            let scenarios: Vec<String> = case.scenarios.iter().map(|id| safe(id)).collect();
            writeln!(
                out,
                "<p>Opened by the drill scenario {}.</p>",
                scenarios.join(", ")
            )?;
        }
        if case.findings.is_empty() {
            writeln!(out, "<p>No findings.</p>")?;
        } else {
            writeln!(out, "<ul>")?;
            for &index in &case.findings {
                if let Some(finding) = report.findings.get(index) {
                    writeln!(
                        out,
                        "<li class=\"case-finding\"><a href=\"#finding-{index}\"><span class=\"sev-{severity}\">{severity}</span> <code>{code}</code></a>: {message}</li>",
                        severity = finding.severity.as_str(),
                        code = finding.code,
                        message = safe(&finding.message),
                    )?;
                }
            }
            writeln!(out, "</ul>")?;
        }
        writeln!(out, "</section>")?;
    }
    writeln!(out, "</section>")
}

fn status_class(status: ScenarioStatus) -> &'static str {
    match status {
        ScenarioStatus::Passed => "passed",
        ScenarioStatus::Failed => "failed",
        ScenarioStatus::NotCovered => "not-covered",
    }
}

fn control_labels(controls: &[crate::Control]) -> String {
    controls
        .iter()
        .map(|control| format!("<code>{}</code>", control.label()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One bar per bucket: `≤ 1 min`, ..., `> 7 d`.
fn histogram_bars(histogram: &Histogram, label: impl Fn(u64) -> String) -> Vec<(String, u64)> {
    if histogram.count == 0 {
        return Vec::new();
    }
    let mut previous = None;
    histogram
        .buckets
        .iter()
        .map(|bucket| {
            let text = match bucket.le {
                Some(le) => {
                    previous = Some(le);
                    format!("≤ {}", label(le))
                }
                None => format!("> {}", previous.map_or_else(|| "0".to_string(), &label)),
            };
            (text, bucket.count)
        })
        .collect()
}

fn duration_label(seconds: u64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3_600 == 0 => format!("{} h", s / 3_600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// A horizontal bar chart as inline SVG: one `rect.bar` per bar, its
/// label and value written beside it.
fn write_chart(
    out: &mut String,
    id: &str,
    class: &str,
    title: &str,
    bars: &[(String, u64)],
    empty: &str,
) -> std::fmt::Result {
    const LABEL_WIDTH: u64 = 130;
    const BAR_SPACE: u64 = 300;
    const ROW: u64 = 22;
    let rows = u64::try_from(bars.len().max(1)).unwrap_or(1);
    let height = rows * ROW + 8;
    let width = LABEL_WIDTH + BAR_SPACE + 60;
    writeln!(out, "<figure><figcaption>{title}</figcaption>")?;
    writeln!(
        out,
        "<svg id=\"{id}\" class=\"chart {class}\" role=\"img\" aria-label=\"{title}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    )?;
    if bars.is_empty() {
        writeln!(
            out,
            "<text class=\"empty\" x=\"4\" y=\"18\">{}</text>",
            escape_html(empty)
        )?;
    }
    let max = bars
        .iter()
        .map(|(_, value)| *value)
        .max()
        .unwrap_or(0)
        .max(1);
    for (row, (label, value)) in (0u64..).zip(bars) {
        let y = row * ROW + 4;
        let length = value.saturating_mul(BAR_SPACE) / max;
        let label = escape_html(&escape(label));
        writeln!(
            out,
            "<text x=\"{x}\" y=\"{ty}\" text-anchor=\"end\">{label}</text><rect class=\"bar\" data-label=\"{label}\" data-value=\"{value}\" x=\"{LABEL_WIDTH}\" y=\"{y}\" width=\"{length}\" height=\"{bar}\"></rect><text x=\"{vx}\" y=\"{ty}\">{value}</text>",
            x = LABEL_WIDTH - 6,
            ty = y + 13,
            bar = ROW - 6,
            vx = LABEL_WIDTH + length + 4,
        )?;
    }
    writeln!(out, "</svg></figure>")
}
