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
