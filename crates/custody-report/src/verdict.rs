//! The verdict rule (`docs/report.md`, "The verdict").
//!
//! The workflow is **not ready for governed access decisions** when any of
//! these holds, and **ready** otherwise:
//! 1. nothing was checked: neither `verify` nor a drill ran;
//! 2. `verify` found anything high or critical;
//! 3. no checkpoint held outside the database was checked
//!    (`checkpoint.none-outside`), the log has no valid checkpoint at all
//!    (`log.no-checkpoint`, even while young), or a bundle was checked only
//!    against the keys it carries (`bundle.keys-untrusted`): whoever holds
//!    the database could have rewritten the trail, and nothing could tell;
//! 4. a drill scenario failed;
//! 5. a required drill scenario was not covered, or not reported at all.
//!
//! Medium and low findings, optional scenarios not covered and a report
//! without a drill (or without `verify`) are written as notes: they are worth
//! reading, and they do not change the verdict.

use custody_core::audit::Report;
use custody_core::severity::Severity;
use custody_core::Code;
use serde::Serialize;

use crate::controls::{self, SCENARIOS};
use crate::{ScenarioResult, ScenarioStatus};

/// What the verdict says when the workflow is ready.
pub const READY: &str = "ready";
/// What the verdict says when it is not.
pub const NOT_READY: &str = "not ready for governed access decisions";

/// Ready or not, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Whether the workflow is ready for governed access decisions.
    pub ready: bool,
    /// [`READY`] or [`NOT_READY`].
    pub label: &'static str,
    /// Why it is not ready, one sentence each (empty when ready).
    pub reasons: Vec<String>,
    /// What else a reader should know: what the verdict did not rest on,
    /// findings and scenarios that do not change it.
    pub notes: Vec<String>,
}

/// Decides the verdict from `verify`'s report and the drill's scenarios.
pub fn decide(verify: Option<&Report>, drill: Option<&[ScenarioResult]>) -> Verdict {
    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    if verify.is_none() && drill.is_none() {
        reasons.push("nothing was checked: neither verify nor a drill ran".to_string());
    }
    match verify {
        Some(report) => judge_trail(report, &mut reasons, &mut notes),
        None => notes.push(
            "the trail was not verified (`custody verify`): the verdict rests on the drill alone"
                .to_string(),
        ),
    }
    match drill {
        Some(results) => judge_drill(results, &mut reasons, &mut notes),
        None => notes.push(
            "no drill ran (`custody drill`): the scenarios were not exercised, and the verdict rests on the trail alone"
                .to_string(),
        ),
    }
    let ready = reasons.is_empty();
    Verdict {
        ready,
        label: if ready { READY } else { NOT_READY },
        reasons,
        notes,
    }
}

fn judge_trail(report: &Report, reasons: &mut Vec<String>, notes: &mut Vec<String>) {
    let serious: Vec<&custody_core::audit::Finding> = report
        .findings
        .iter()
        .filter(|finding| finding.severity >= Severity::High)
        .collect();
    if !serious.is_empty() {
        reasons.push(format!(
            "verify found {} high or critical finding{}: {}",
            serious.len(),
            plural(serious.len()),
            distinct_codes(serious.iter().map(|finding| finding.code))
        ));
    }
    let minor: Vec<&custody_core::audit::Finding> = report
        .findings
        .iter()
        .filter(|finding| matches!(finding.severity, Severity::Medium | Severity::Low))
        .collect();
    if !minor.is_empty() {
        notes.push(format!(
            "verify found {} medium or low finding{} ({}): rules were bent, and the verdict does not turn on them",
            minor.len(),
            plural(minor.len()),
            distinct_codes(minor.iter().map(|finding| finding.code))
        ));
    }
    let has = |code: Code| report.findings.iter().any(|finding| finding.code == code);
    if has(Code::CheckpointNoneOutside) {
        reasons.push(
            "no checkpoint held outside the database was checked: whoever can write to the database could have rewritten the trail together with its checkpoints (keep the checkpoints file, pass --checkpoints or --since-checkpoint, or use witnesses)"
                .to_string(),
        );
    }
    if has(Code::LogNoCheckpoint) {
        reasons.push("no valid signed checkpoint covers the log".to_string());
    }
    if has(Code::BundlePartial) {
        reasons.push(
            "a case or range bundle proves only part of the trail: the verdict needs the whole ledger (verify the data directory or database, or a whole-log bundle)"
                .to_string(),
        );
    }
    let unchecked = report
        .evidence
        .len()
        .saturating_sub(usize::try_from(report.checked.evidence_blobs).unwrap_or(usize::MAX));
    if report.checked.evidence_blobs == 0 && unchecked > 0 {
        reasons.push(format!(
            "the {unchecked} evidence blob reference{} of the trail were not re-hashed: nothing shows the attachments are still connected (give the evidence store, or a bundle made --with-evidence)",
            plural(unchecked)
        ));
    }
    if has(Code::BundleKeysUntrusted) {
        reasons.push(
            "the bundle was checked only against the keys it carries: pass --key with the log's key, obtained independently"
                .to_string(),
        );
    }
}

fn judge_drill(results: &[ScenarioResult], reasons: &mut Vec<String>, notes: &mut Vec<String>) {
    let with_status = |status: ScenarioStatus| -> Vec<&str> {
        results
            .iter()
            .filter(|result| result.status == status)
            .map(|result| result.id.as_str())
            .collect()
    };
    let failed = with_status(ScenarioStatus::Failed);
    if !failed.is_empty() {
        reasons.push(format!(
            "drill scenario{} failed: {}",
            plural(failed.len()),
            failed.join(", ")
        ));
    }
    let not_covered = with_status(ScenarioStatus::NotCovered);
    let (required, optional): (Vec<&str>, Vec<&str>) = not_covered
        .iter()
        .partition(|id| controls::scenario(id).is_some_and(|scenario| scenario.required));
    if !required.is_empty() {
        reasons.push(format!(
            "required drill scenario{} not covered: {}",
            plural(required.len()),
            required.join(", ")
        ));
    }
    if !optional.is_empty() {
        notes.push(format!(
            "optional drill scenario{} not covered (the deployment lacks what {} need{}): {}",
            plural(optional.len()),
            if optional.len() == 1 { "it" } else { "they" },
            if optional.len() == 1 { "s" } else { "" },
            optional.join(", ")
        ));
    }
    let missing: Vec<&str> = SCENARIOS
        .iter()
        .filter(|scenario| scenario.required)
        .filter(|scenario| !results.iter().any(|result| result.id == scenario.id))
        .map(|scenario| scenario.id)
        .collect();
    if !missing.is_empty() {
        reasons.push(format!(
            "required drill scenario{} not reported by the drill: {}",
            plural(missing.len()),
            missing.join(", ")
        ));
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

/// The codes, each once, in the order they first appear.
fn distinct_codes(codes: impl Iterator<Item = Code>) -> String {
    let mut seen: Vec<Code> = Vec::new();
    for code in codes {
        if !seen.contains(&code) {
            seen.push(code);
        }
    }
    seen.iter()
        .map(|code| code.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
