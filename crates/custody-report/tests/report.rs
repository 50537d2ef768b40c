//! The readiness report: the mapping covers every code and scenario and
//! agrees with `docs/report.md`, each branch of the verdict rule, and what
//! each renderer must hold (escaping, the JSON schema, SARIF's shape).

#![allow(clippy::unwrap_used)]

use custody_core::audit::{Checked, Finding, Report, Stats};
use custody_core::severity::Severity;
use custody_core::{Code, Timestamp};
use custody_report::controls::{self, Framework, SCENARIOS};
use custody_report::{build, render, Control, Format, Input, ScenarioResult, ScenarioStatus};

const SCENARIO_IDS: &[&str] = &[
    "lifecycle",
    "duplicates",
    "notification-failure",
    "disconnected-attachment",
    "break-glass",
    "chat-approval",
    "automation-first",
    "vendor-delegation",
    "late-records",
    "export",
    "unsanctioned-change",
];

fn audit(findings: Vec<Finding>) -> Report {
    let ok = findings.iter().all(|f| f.severity == Severity::Info);
    let mut stats = Stats::default();
    stats.cases_by_state.insert("reviewed".into(), 3);
    stats.cases_by_state.insert("open".into(), 1);
    stats.request_to_review_seconds.record(30);
    stats.request_to_review_seconds.record(7_200);
    stats.notification_latency_ms.record(42);
    // A drill's report charts the drill's cases: the same figures here.
    stats.drill_cases = 4;
    stats.drill_cases_by_state = stats.cases_by_state.clone();
    stats.drill_request_to_review_seconds = stats.request_to_review_seconds.clone();
    Report {
        ok,
        checked: Checked::default(),
        findings,
        stats,
        evidence: Vec::new(),
    }
}

fn scenario(id: &str, status: ScenarioStatus) -> ScenarioResult {
    ScenarioResult {
        id: id.to_string(),
        title: format!("the {id} scenario"),
        status,
        did: vec!["did a thing".into()],
        trail_shows: vec!["the trail shows it".into()],
        problems: Vec::new(),
        case_ids: vec![format!("AC-{}", id.replace('-', ""))],
    }
}

fn all_passed() -> Vec<ScenarioResult> {
    SCENARIO_IDS
        .iter()
        .map(|id| scenario(id, ScenarioStatus::Passed))
        .collect()
}

fn input<'a>(verify: Option<&'a Report>, drill: Option<&'a [ScenarioResult]>) -> Input<'a> {
    Input {
        subject: "ledger ./custody-data",
        generated_at: Timestamp::from_micros(1_800_000_000_000_000),
        verify,
        drill,
    }
}

#[test]
fn every_code_verify_can_report_is_mapped_and_the_others_are_not() {
    for &code in Code::ALL {
        let mapped = controls::for_code(code);
        if code.severities().is_empty() {
            assert!(mapped.is_empty(), "{code} is never a finding but is mapped");
        } else {
            assert!(
                !mapped.is_empty(),
                "{code} can be a finding and has no control"
            );
        }
        let mut seen = Vec::new();
        for control in mapped {
            assert!(!seen.contains(control), "{code} lists {control:?} twice");
            seen.push(*control);
        }
    }
}

#[test]
fn every_drill_scenario_is_mapped() {
    let known: Vec<&str> = SCENARIOS.iter().map(|scenario| scenario.id).collect();
    assert_eq!(known, SCENARIO_IDS);
    for id in SCENARIO_IDS {
        assert!(!controls::for_scenario(id).is_empty(), "{id}");
    }
    assert!(controls::for_scenario("no-such-scenario").is_empty());
}

#[test]
fn ai_rmf_tags_only_what_automation_did() {
    let codes: Vec<Code> = Code::ALL
        .iter()
        .copied()
        .filter(|&code| {
            controls::for_code(code)
                .iter()
                .any(|control| control.framework() == Framework::NistAiRmf1)
        })
        .collect();
    assert_eq!(codes, vec![Code::NotifyReviewerNotNotified]);
    let scenarios: Vec<&str> = SCENARIOS
        .iter()
        .filter(|s| {
            s.controls
                .iter()
                .any(|c| c.framework() == Framework::NistAiRmf1)
        })
        .map(|s| s.id)
        .collect();
    assert_eq!(scenarios, vec!["automation-first"]);
}

#[test]
fn pr_aa_05_carries_csf_1_1_pr_ac_4() {
    assert_eq!(Control::CsfPrAa05.csf_1_1(), Some("PR.AC-4"));
    assert_eq!(
        Control::CsfPrAa05.tags(),
        vec!["nist-csf-2.0/PR.AA-05", "nist-csf-1.1/PR.AC-4"]
    );
    for control in Control::ALL {
        assert_eq!(Control::parse(control.id()), Some(*control));
        if *control != Control::CsfPrAa05 {
            assert_eq!(control.csf_1_1(), None);
        }
    }
}

/// The mapping table of `docs/report.md`, between its markers, as the code
/// has it. `UPDATE_EXPECT=1` rewrites the doc's table.
fn mapping_table() -> String {
    let list = |controls: &[Control]| {
        controls
            .iter()
            .map(|control| format!("`{}`", control.label()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut table = String::from("| finding code | severity | controls |\n|---|---|---|\n");
    for &code in Code::ALL {
        if code.severities().is_empty() {
            continue;
        }
        let severities: Vec<&str> = code.severities().iter().map(|s| s.as_str()).collect();
        table.push_str(&format!(
            "| `{}` | {} | {} |\n",
            code.as_str(),
            severities.join(", "),
            list(controls::for_code(code))
        ));
    }
    table.push_str("\n| drill scenario | required | controls |\n|---|---|---|\n");
    for scenario in SCENARIOS {
        table.push_str(&format!(
            "| `{}` | {} | {} |\n",
            scenario.id,
            if scenario.required { "yes" } else { "no" },
            list(scenario.controls)
        ));
    }
    table
}

#[test]
fn the_documented_mapping_table_is_the_mapping() {
    const BEGIN: &str =
        "<!-- mapping table: begin (generated; UPDATE_EXPECT=1 cargo test -p custody-report) -->\n";
    const END: &str = "<!-- mapping table: end -->";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/report.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let start = doc
        .find(BEGIN)
        .expect("docs/report.md has the begin marker")
        + BEGIN.len();
    let end = doc.find(END).expect("docs/report.md has the end marker");
    let expected = mapping_table();
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        let updated = format!("{}{expected}{}", &doc[..start], &doc[end..]);
        std::fs::write(path, updated).unwrap();
        return;
    }
    assert_eq!(
        doc[start..end],
        expected,
        "docs/report.md's mapping table differs from the code: UPDATE_EXPECT=1 cargo test -p custody-report"
    );
    // Every control of the summary is described in the doc.
    for control in Control::ALL {
        assert!(
            doc.contains(control.id()),
            "{} is not in docs/report.md",
            control.id()
        );
    }
}

#[test]
fn ready_when_the_trail_is_clean_and_every_scenario_passed() {
    let report = audit(vec![Finding::new(Code::CheckpointOutsideTorn, "torn")]);
    let drill = all_passed();
    let built = build(input(Some(&report), Some(&drill)));
    assert!(built.verdict.ready, "{:?}", built.verdict);
    assert_eq!(built.verdict.label, "ready");
    assert!(built.verdict.reasons.is_empty());
}

#[test]
fn not_ready_on_a_high_or_critical_finding() {
    let drill = all_passed();
    for (code, severity) in [
        (Code::ChainPrevHashMismatch, Severity::Critical),
        (Code::DelegationMissing, Severity::High),
    ] {
        let report = audit(vec![Finding::new(code, "bad").severity(severity)]);
        let verdict = build(input(Some(&report), Some(&drill))).verdict;
        assert!(!verdict.ready);
        assert_eq!(verdict.label, "not ready for governed access decisions");
        assert_eq!(verdict.reasons.len(), 1, "{verdict:?}");
        assert!(verdict.reasons[0].contains(code.as_str()), "{verdict:?}");
    }
}

#[test]
fn medium_and_low_findings_are_notes_not_reasons() {
    let drill = all_passed();
    let report = audit(vec![
        Finding::new(Code::ReviewOverdue, "late"),
        Finding::new(Code::ApprovalAlreadyApproved, "twice"),
    ]);
    let verdict = build(input(Some(&report), Some(&drill))).verdict;
    assert!(verdict.ready, "{verdict:?}");
    assert!(verdict
        .notes
        .iter()
        .any(|note| note.contains("review.overdue") && note.contains("approval.already-approved")));
}

#[test]
fn not_ready_without_a_checkpoint_held_outside_or_trusted() {
    let drill = all_passed();
    for (code, says) in [
        (Code::CheckpointNoneOutside, "outside the database"),
        (Code::LogNoCheckpoint, "no valid signed checkpoint"),
        (Code::BundleKeysUntrusted, "keys it carries"),
        (Code::BundlePartial, "only part of the trail"),
    ] {
        // Each of them is an info finding here: the verdict still turns on it.
        let report = audit(vec![Finding::new(code, "x").severity(Severity::Info)]);
        let verdict = build(input(Some(&report), Some(&drill))).verdict;
        assert!(!verdict.ready, "{code}");
        assert!(
            verdict.reasons.iter().any(|r| r.contains(says)),
            "{verdict:?}"
        );
    }
}

#[test]
fn not_ready_when_the_evidence_was_not_rehashed() {
    let drill = all_passed();
    let mut report = audit(Vec::new());
    report.evidence.push(custody_core::audit::EvidenceRef {
        case_id: "AC-1".into(),
        event_id: "EV-1".into(),
        seq: 2,
        log_index: 1,
        sha256: custody_core::Sha256Hash::of(b"screenshot"),
        size: Some(10),
    });
    let verdict = build(input(Some(&report), Some(&drill))).verdict;
    assert!(!verdict.ready, "{verdict:?}");
    assert!(
        verdict.reasons.iter().any(|r| r.contains("not re-hashed")),
        "{verdict:?}"
    );
    report.checked.evidence_blobs = 1;
    assert!(build(input(Some(&report), Some(&drill))).verdict.ready);
}

#[test]
fn not_ready_when_a_scenario_failed() {
    let report = audit(Vec::new());
    let mut drill = all_passed();
    drill[1].status = ScenarioStatus::Failed;
    let verdict = build(input(Some(&report), Some(&drill))).verdict;
    assert!(!verdict.ready);
    assert_eq!(verdict.reasons, vec!["drill scenario failed: duplicates"]);
}

#[test]
fn not_ready_when_a_required_scenario_is_not_covered_or_missing() {
    let report = audit(Vec::new());
    let mut drill = all_passed();
    drill[2].status = ScenarioStatus::NotCovered; // notification-failure
    let verdict = build(input(Some(&report), Some(&drill))).verdict;
    assert!(!verdict.ready);
    assert_eq!(
        verdict.reasons,
        vec!["required drill scenario not covered: notification-failure"]
    );

    let drill: Vec<ScenarioResult> = all_passed()
        .into_iter()
        .filter(|s| s.id != "break-glass")
        .collect();
    let verdict = build(input(Some(&report), Some(&drill))).verdict;
    assert!(!verdict.ready);
    assert_eq!(
        verdict.reasons,
        vec!["required drill scenario not reported by the drill: break-glass"]
    );
}

#[test]
fn optional_scenarios_not_covered_leave_it_ready_with_a_note() {
    let report = audit(Vec::new());
    let mut drill = all_passed();
    for scenario in &mut drill {
        if scenario.id == "export" || scenario.id == "chat-approval" {
            scenario.status = ScenarioStatus::NotCovered;
        }
    }
    let verdict = build(input(Some(&report), Some(&drill))).verdict;
    assert!(verdict.ready, "{verdict:?}");
    assert!(verdict
        .notes
        .iter()
        .any(|note| note.contains("chat-approval, export")));
}

#[test]
fn without_a_drill_the_verdict_rests_on_the_trail_and_says_so() {
    let report = audit(Vec::new());
    let verdict = build(input(Some(&report), None)).verdict;
    assert!(verdict.ready);
    assert!(verdict
        .notes
        .iter()
        .any(|note| note.contains("no drill ran")));
    let verdict = build(input(None, None)).verdict;
    assert!(!verdict.ready);
    assert!(verdict.reasons[0].contains("nothing was checked"));
}

fn hostile_report() -> Report {
    audit(vec![
        Finding::new(
            Code::SodRequesterCannotApprove,
            "justification <script>alert(1)</script> \u{202e}evil\u{202c} & 'quoted\"",
        )
        .case("AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b")
        .event(Some("EV-1".to_string()))
        .seq(2)
        .log_index(7),
        Finding::new(Code::CaseMissingHead, "a case id column edited")
            .case("AC-\"><script>x</script>"),
    ])
}

#[test]
fn html_keeps_hostile_text_inert_and_links_every_finding_to_its_case() {
    let report = hostile_report();
    let drill = all_passed();
    let built = build(input(Some(&report), Some(&drill)));
    let html = render(&built, Format::Html);
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains('\u{202e}') && !html.contains('\u{202c}'));
    assert!(html.contains("\\u{202e}evil\\u{202c}"));
    assert!(html.contains("&amp; &#39;quoted&quot;"));
    // Self-contained: no URL, no resource, no script.
    for forbidden in ["http:", "https:", "src=", "<link", "url(", "@import"] {
        assert!(!html.contains(forbidden), "the page holds {forbidden}");
    }
    assert!(html.contains("default-src 'none'"));
    assert!(html.contains("data-verdict=\"not-ready\""));
    for chart in [
        "chart-findings-by-control",
        "chart-cases-by-state",
        "chart-request-to-review",
        "chart-notification-latency",
    ] {
        assert!(html.contains(&format!("id=\"{chart}\"")), "{chart}");
    }
    // Each finding links to its case's section, which lists it back.
    assert!(html.contains("href=\"#case-AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b\""));
    assert!(html.contains("id=\"case-AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b\""));
    let odd = "case-x".to_string()
        + &"AC-\"><script>x</script>"
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
    assert!(html.contains(&format!("href=\"#{odd}\"")));
    assert!(html.contains(&format!("id=\"{odd}\"")));
    // A scenario's case has its section too; the chart bars carry values.
    assert!(html.contains("id=\"case-AC-breakglass\""));
    assert!(html.contains("data-label=\"reviewed\" data-value=\"3\""));
}

#[test]
fn text_escapes_control_and_bidi_characters() {
    let built = build(input(Some(&hostile_report()), None));
    let text = render(&built, Format::Text);
    assert!(!text.contains('\u{202e}'));
    assert!(text.contains("\\u{202e}evil"));
    assert!(text.starts_with("Readiness report for ledger ./custody-data"));
    assert!(text.contains("verdict: not ready for governed access decisions"));
}

#[test]
fn json_holds_the_documented_fields() {
    let drill = all_passed();
    let built = build(input(Some(&hostile_report()), Some(&drill)));
    let json: serde_json::Value = serde_json::from_str(&render(&built, Format::Json)).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["subject"], "ledger ./custody-data");
    assert_eq!(json["generated_at"], "2027-01-15T08:00:00.000000Z");
    assert_eq!(json["verdict"]["ready"], false);
    assert_eq!(
        json["verdict"]["label"],
        "not ready for governed access decisions"
    );
    assert!(json["verdict"]["reasons"].as_array().unwrap().len() == 1);
    assert_eq!(json["scope"]["verified"], true);
    assert_eq!(json["scope"]["drilled"], true);
    let finding = &json["findings"][0];
    assert_eq!(finding["code"], "sod.requester-cannot-approve");
    assert_eq!(finding["severity"], "critical");
    assert_eq!(finding["case_id"], "AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b");
    assert_eq!(finding["event_id"], "EV-1");
    assert_eq!(finding["seq"], 2);
    assert_eq!(finding["log_index"], 7);
    assert_eq!(finding["controls"], serde_json::json!(["PR.AA-05"]));
    let scenario = &json["scenarios"][0];
    for field in [
        "id",
        "title",
        "status",
        "did",
        "trail_shows",
        "case_ids",
        "required",
        "controls",
    ] {
        assert!(!scenario[field].is_null(), "scenario.{field}");
    }
    assert_eq!(scenario["status"], "passed");
    let control = &json["controls"][4];
    assert_eq!(control["id"], "PR.AA-05");
    assert_eq!(control["csf_1_1"], "PR.AC-4");
    assert_eq!(control["framework"], "nist-csf-2.0");
    assert_eq!(control["status"], "failing");
    assert_eq!(control["findings"]["critical"], 1);
    let stats = &json["statistics"];
    assert_eq!(stats["findings_by_severity"]["critical"], 1);
    assert_eq!(stats["findings_by_control"]["PR.AA-05"], 1);
    assert_eq!(stats["scenarios_by_status"]["passed"], 11);
    assert_eq!(stats["audit"]["cases_by_state"]["reviewed"], 3);
    assert_eq!(stats["audit"]["request_to_review_seconds"]["count"], 2);
    assert_eq!(stats["audit"]["notification_latency_ms"]["max"], 42);
    assert!(json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .any(
            |case| case["case_id"] == "AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b"
                && case["findings"] == serde_json::json!([0])
        ));
    // Bidi controls are escaped in the JSON text itself.
    let raw = render(&built, Format::Json);
    assert!(!raw.contains('\u{202e}'));
}

#[test]
fn sarif_has_one_run_with_rules_results_and_locations() {
    let mut drill = all_passed();
    drill[0].status = ScenarioStatus::Failed;
    drill[9].status = ScenarioStatus::NotCovered; // export, optional
    let built = build(input(Some(&hostile_report()), Some(&drill)));
    let sarif: serde_json::Value = serde_json::from_str(&render(&built, Format::Sarif)).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let runs = sarif["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run["tool"]["driver"]["name"], "custody");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let rule_ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(rule_ids.contains(&"sod.requester-cannot-approve"));
    assert!(rule_ids.contains(&"drill.automation-first"));
    let sod = rules
        .iter()
        .find(|r| r["id"] == "sod.requester-cannot-approve")
        .unwrap();
    assert_eq!(
        sod["properties"]["tags"],
        serde_json::json!(["nist-csf-2.0/PR.AA-05", "nist-csf-1.1/PR.AC-4"])
    );
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 2 + 11);
    for result in results {
        let index = usize::try_from(result["ruleIndex"].as_u64().unwrap()).unwrap();
        assert_eq!(rules[index]["id"], result["ruleId"]);
        assert!(!result["locations"].as_array().unwrap().is_empty());
    }
    assert_eq!(results[0]["level"], "error");
    assert_eq!(
        results[0]["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
        "AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b/EV-1"
    );
    let by_rule = |id: &str| results.iter().find(|r| r["ruleId"] == id).unwrap();
    assert_eq!(by_rule("drill.lifecycle")["kind"], "fail");
    assert_eq!(by_rule("drill.export")["kind"], "notApplicable");
    assert_eq!(by_rule("drill.duplicates")["kind"], "pass");
    assert_eq!(run["properties"]["ready"], false);
}

#[test]
fn a_drill_report_charts_the_drill_cases_and_any_other_the_real_ones() {
    let mut verify = audit(Vec::new());
    verify.stats.drill_cases = 2;
    verify.stats.drill_cases_by_state = [("denied".to_string(), 2)].into();
    verify.stats.drill_request_to_review_seconds =
        custody_core::audit::Histogram::with_bounds(&[60]);
    verify.stats.drill_request_to_review_seconds.record(5);
    let chart = |report: &custody_report::ReadinessReport| {
        let json: serde_json::Value = serde_json::from_str(&render(report, Format::Json)).unwrap();
        json["statistics"]["audit"].clone()
    };
    let plain = chart(&build(input(Some(&verify), None)));
    assert_eq!(
        plain["cases_by_state"],
        serde_json::json!({"open": 1, "reviewed": 3})
    );
    assert_eq!(plain["request_to_review_seconds"]["count"], 2);
    let drilled = all_passed();
    let drill = chart(&build(input(Some(&verify), Some(&drilled))));
    assert_eq!(drill["cases_by_state"], serde_json::json!({"denied": 2}));
    assert_eq!(drill["request_to_review_seconds"]["count"], 1);
    assert_eq!(drill["drill_cases"], 2);
}
