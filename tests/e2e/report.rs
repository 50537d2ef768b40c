//! `custody verify --report text|json|sarif|html --out FILE` on a real
//! server's ledger: one case reviewed as approved, one whose execution
//! applied another change than the approved one (`review.change-mismatch`,
//! high). The SARIF log must pass the official validator
//! (`@microsoft/sarif-multitool validate`, from `$CUSTODY_SARIF_MULTITOOL`,
//! else where `cargo xtask test` installs it under `target/`); the HTML page
//! is rendered by Debian's headless Chromium, screenshotted (kept under
//! `target/tmp/report/`), and its verdict and charts are asserted in the DOM
//! Chromium dumps. The page is also opened through the browser harness
//! (`common::browser`: playwright-core driving the same Chromium), read
//! through the DOM, screenshotted under `target/tmp/browser/report/`, and
//! checked by axe-core (no serious or critical violation). No tool missing
//! is a skip: the test fails and says how to install it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{self, Server};

/// The SARIF multitool: `$CUSTODY_SARIF_MULTITOOL`, or the one `cargo xtask
/// test` installs under `target/sarif-multitool`.
fn sarif_multitool() -> PathBuf {
    if let Some(path) = std::env::var_os("CUSTODY_SARIF_MULTITOOL") {
        return PathBuf::from(path);
    }
    let installed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/sarif-multitool/node_modules/.bin/sarif-multitool");
    assert!(
        installed.exists(),
        "CUSTODY_SARIF_MULTITOOL is not set and {} does not exist: run `cargo xtask test`, which installs @microsoft/sarif-multitool with npm, or set CUSTODY_SARIF_MULTITOOL to its sarif-multitool",
        installed.display()
    );
    installed
}

/// Debian's `chromium`, or `$CUSTODY_CHROMIUM`.
fn chromium() -> PathBuf {
    let program = std::env::var_os("CUSTODY_CHROMIUM")
        .map_or_else(|| PathBuf::from("chromium"), PathBuf::from);
    let found = Command::new(&program)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "{} does not run: install Debian's chromium (`cargo xtask test` does) or set CUSTODY_CHROMIUM",
        program.display()
    );
    program
}

fn chromium_command(profile: &Path) -> Command {
    let mut command = Command::new(chromium());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .env("HOME", profile);
    command
}

fn verify_report(data: &Path, extra: &[&str]) -> std::process::Output {
    common::command()
        .arg("verify")
        .arg("--data")
        .arg(data)
        .args(extra)
        .output()
        .expect("run custody verify")
}

#[test]
fn the_report_of_a_real_ledger_in_every_format() {
    let mut server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let dave = server.principal("dave");
    let request = |server: &Server, resource: &str| {
        server
            .cli_ok(
                &alice,
                &[
                    "request",
                    "--subject",
                    "user:alice",
                    "--entitlement",
                    "reader",
                    "--resource",
                    resource,
                ],
            )
            .trim()
            .to_string()
    };
    let clean = request(&server, "wiki");
    server.cli_ok(&bob, &["approve", &clean]);
    server.cli_ok(&carol, &["execute", &clean]);
    server.cli_ok(&dave, &["review", &clean, "--outcome", "confirmed"]);
    // A graceful stop signs the last checkpoint and appends it to the
    // data directory's checkpoints file: a checkpoint held outside.
    server.stop();
    let out = tempfile::tempdir().unwrap();

    // A clean trail: ready, exit 0.
    let text = verify_report(&server.data, &["--report", "text"]);
    assert_eq!(
        text.status.code(),
        Some(0),
        "{}{}",
        common::stdout(&text),
        common::stderr(&text)
    );
    assert!(common::stdout(&text).contains("verdict: ready"));

    // `--out` needs `--report`.
    let usage = verify_report(&server.data, &["--out", "x.html"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(!Path::new("x.html").exists());

    server.restart();
    let mismatched = request(&server, "prod-db");
    server.cli_ok(&bob, &["approve", &mismatched]);
    server.cli_ok(
        &carol,
        &["execute", &mismatched, "--applied-entitlement", "admin"],
    );
    server.stop();

    // JSON: the documented fields, and not ready because of the finding.
    let json = verify_report(&server.data, &["--report", "json"]);
    assert_eq!(json.status.code(), Some(1), "{}", common::stderr(&json));
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["verdict"]["ready"], false);
    assert_eq!(
        report["verdict"]["label"],
        "not ready for governed access decisions"
    );
    assert!(report["verdict"]["reasons"][0]
        .as_str()
        .unwrap()
        .contains("review.change-mismatch"));
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == "review.change-mismatch")
        .expect("the mismatch is a finding");
    assert_eq!(finding["case_id"], mismatched.as_str());
    assert_eq!(finding["severity"], "high");
    assert!(finding["log_index"].is_u64() && finding["event_id"].is_string());
    assert_eq!(
        finding["controls"],
        serde_json::json!(["PR.AA-05", "DE.CM-03", "NHI5"])
    );
    let stats = &report["statistics"]["audit"];
    assert_eq!(stats["cases_by_state"]["reviewed"], 1);
    assert_eq!(stats["cases_by_state"]["executed"], 1);
    assert_eq!(stats["request_to_review_seconds"]["count"], 1);
    assert!(report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .any(|case| case["case_id"] == mismatched.as_str()));

    // `verify --bundle` renders the report too: here without `--key`, so
    // the bundle was checked only against the keys it carries.
    let bundle = out.path().join("ledger.bundle");
    let exported = common::command()
        .args(["export", "--format", "bundle", "--data"])
        .arg(&server.data)
        .arg("--out")
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(exported.status.success(), "{}", common::stderr(&exported));
    let bundled = common::command()
        .args(["verify", "--report", "json", "--bundle"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_eq!(
        bundled.status.code(),
        Some(1),
        "{}",
        common::stderr(&bundled)
    );
    let bundled: Value = serde_json::from_slice(&bundled.stdout).unwrap();
    assert!(bundled["subject"].as_str().unwrap().starts_with("bundle "));
    assert!(bundled["verdict"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|reason| reason.as_str().unwrap().contains("keys it carries")));

    // SARIF, checked by the official validator.
    let sarif_path = out.path().join("custody.sarif");
    let sarif = verify_report(
        &server.data,
        &["--report", "sarif", "--out", sarif_path.to_str().unwrap()],
    );
    assert_eq!(sarif.status.code(), Some(1), "{}", common::stderr(&sarif));
    assert!(
        sarif.stdout.is_empty(),
        "--out writes nothing to standard output"
    );
    let log: Value = serde_json::from_slice(&std::fs::read(&sarif_path).unwrap()).unwrap();
    let result = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|result| result["ruleId"] == "review.change-mismatch")
        .expect("a result for the finding");
    assert_eq!(result["level"], "error");
    assert!(
        result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{mismatched}/"))
    );
    let validation = out.path().join("validation.sarif");
    let validator = Command::new(sarif_multitool())
        .arg("validate")
        .arg(&sarif_path)
        .arg("--output")
        .arg(&validation)
        .args(["--log", "ForceOverwrite"])
        .output()
        .expect("run the SARIF multitool");
    let said = format!(
        "{}{}",
        common::stdout(&validator),
        common::stderr(&validator)
    );
    assert!(validator.status.success(), "the validator failed: {said}");
    let verdicts: Value = serde_json::from_slice(&std::fs::read(&validation).unwrap())
        .unwrap_or_else(|error| panic!("the validator's log: {error}\n{said}"));
    let errors: Vec<&Value> = verdicts["runs"][0]["results"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .filter(|result| result["level"] == "error")
                .collect()
        })
        .unwrap_or_default();
    assert!(
        errors.is_empty(),
        "the SARIF validator reports errors: {errors:#?}\n{said}"
    );

    // HTML, in headless Chromium.
    let html_path = out.path().join("readiness.html");
    let html = verify_report(
        &server.data,
        &["--report", "html", "--out", html_path.to_str().unwrap()],
    );
    assert_eq!(html.status.code(), Some(1), "{}", common::stderr(&html));
    let page = std::fs::read_to_string(&html_path).unwrap();
    for forbidden in ["http:", "https:", "src=", "<script", "<link"] {
        assert!(!page.contains(forbidden), "the page holds {forbidden}");
    }
    let artefacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report");
    std::fs::create_dir_all(&artefacts).unwrap();
    let screenshot = artefacts.join("readiness.png");
    let _ = std::fs::remove_file(&screenshot);
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", html_path.display());
    let shot = chromium_command(profile.path())
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--window-size=1280,2400")
        .arg(&url)
        .output()
        .expect("run chromium");
    assert!(shot.status.success(), "{}", common::stderr(&shot));
    let png = std::fs::read(&screenshot).expect("chromium saved the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "a {}-byte screenshot is blank",
        png.len()
    );
    let dump = chromium_command(profile.path())
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("run chromium");
    assert!(dump.status.success(), "{}", common::stderr(&dump));
    let dom = common::stdout(&dump);
    assert!(dom.contains("id=\"verdict\""), "{dom}");
    assert!(dom.contains("data-verdict=\"not-ready\""));
    assert!(dom.contains("not ready for governed access decisions"));
    for chart in [
        "chart-findings-by-control",
        "chart-cases-by-state",
        "chart-request-to-review",
        "chart-notification-latency",
    ] {
        assert!(dom.contains(&format!("id=\"{chart}\"")), "{chart} in {dom}");
    }
    assert!(dom.contains("data-label=\"reviewed\" data-value=\"1\""));
    assert!(dom.contains("data-label=\"NHI5\" data-value=\"1\""));
    assert!(dom.contains(&format!("href=\"#case-{mismatched}\"")));
    assert!(dom.contains(&format!("id=\"case-{mismatched}\"")));

    // The same page through the browser harness (playwright-core driving
    // Chromium, tests/browser/report.mjs): read through the DOM, a link
    // followed, a screenshot, and axe-core with no serious violations.
    let journey = common::browser::run("report.mjs", &url, "report", serde_json::json!({}));
    let page = &journey.result;
    assert_eq!(page["verdict"], "not-ready", "{page:#}");
    assert!(
        page["verdict_text"]
            .as_str()
            .is_some_and(|text| text.contains("not ready for governed access decisions")),
        "{page:#}"
    );
    assert_eq!(page["lang"], "en");
    let bars = |chart: &str| -> Vec<(String, String)> {
        page["charts"][chart]
            .as_array()
            .unwrap_or_else(|| panic!("no {chart} in {page:#}"))
            .iter()
            .map(|bar| {
                (
                    bar["label"].as_str().unwrap_or_default().to_string(),
                    bar["value"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    assert!(bars("chart-cases-by-state").contains(&("reviewed".to_string(), "1".to_string())));
    assert!(bars("chart-findings-by-control").contains(&("NHI5".to_string(), "1".to_string())));
    bars("chart-request-to-review");
    bars("chart-notification-latency");
    let link = format!("#case-{mismatched}");
    assert!(
        page["case_links"]
            .as_array()
            .is_some_and(|links| links.iter().any(|href| href == link.as_str())),
        "{page:#}"
    );
    assert_eq!(page["followed"], page["case_links"][0]);
    assert_eq!(journey.screenshots.len(), 1);
    common::browser::assert_screenshot(&journey.screenshots[0]);
    assert!(
        journey.console_errors.is_empty(),
        "{:?}",
        journey.console_errors
    );
    common::browser::assert_no_serious_violations(&page["violations"], "the readiness report");
}
