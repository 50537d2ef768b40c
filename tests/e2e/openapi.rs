//! The OpenAPI document tells the truth, checked by schemathesis (PyPI)
//! against a live server:
//!
//! - `st run --checks all` over every operation (bounded in time) must find
//!   no server error and no conformance failure: no undocumented status or
//!   content type, no schema-valid request refused, no schema-violating
//!   request accepted, answers that match their schemas;
//! - requests drawn from the document reach the whole workflow (request,
//!   approval, execution, review), one principal per step as separation of
//!   duties requires (`tests/openapi/workflow.py`), every answer checked
//!   against the document.
//!
//! schemathesis is used from the system Python if importable there;
//! otherwise from `$CUSTODY_SCHEMATHESIS_DIR` (default
//! `/tmp/custody-schemathesis`), where it is installed with `python3 -m pip
//! install --target` on first use and reused afterwards.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::Server;

/// What the schema cannot say, allowed per operation (schemathesis'
/// documented way): a rule about the log's current size or a relation
/// between two parameters is state, not shape. Nothing else is allowed.
const CONFIG: &str = r#"
# GET /v1/log/entries: `start` after `end`, or beyond the log, is a 400.
[[operations]]
include-name = "GET /v1/log/entries"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

# A proof for a tree size the log has not reached, or an index outside it, is a 400.
[[operations]]
include-name = "GET /v1/log/proof/inclusion"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

[[operations]]
include-name = "GET /v1/log/proof/consistency"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

# GET /v1/export: a cursor beyond the log, or `until` before `since`, is a 400.
[[operations]]
include-name = "GET /v1/export"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]
"#;

/// The directory to put on `PYTHONPATH` for schemathesis (`None`: the system
/// Python has it), installing it there on first use.
fn find_or_install_schemathesis() -> Option<PathBuf> {
    let importable = |python_path: Option<&PathBuf>| {
        let mut command = Command::new("python3");
        command
            .args(["-c", "import schemathesis, schemathesis.cli"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match python_path {
            Some(path) => command.env("PYTHONPATH", path),
            None => command.env_remove("PYTHONPATH"),
        };
        command.status().is_ok_and(|status| status.success())
    };
    if importable(None) {
        return None;
    }
    let directory = std::env::var_os("CUSTODY_SCHEMATHESIS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/custody-schemathesis"));
    if importable(Some(&directory)) {
        return Some(directory);
    }
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&directory)
        .arg("schemathesis")
        .output()
        .expect("run python3 -m pip");
    assert!(
        output.status.success() && importable(Some(&directory)),
        "installing schemathesis into {} failed: {}",
        directory.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(directory)
}

fn python(schemathesis: &Option<PathBuf>) -> Command {
    let mut command = Command::new("python3");
    match schemathesis {
        Some(path) => command.env("PYTHONPATH", path),
        None => command.env_remove("PYTHONPATH"),
    };
    command.env("NO_COLOR", "1").stdin(Stdio::null());
    command
}

#[test]
fn schemathesis_finds_no_server_error_and_no_conformance_failure() {
    let schemathesis = find_or_install_schemathesis();
    let server = Server::start();
    // Real identifiers, so that operations on a case reach their logic
    // rather than 404: a case requested by someone else than the admin the
    // run acts as, with a piece of evidence.
    let alice = server.principal("alice");
    let case_id = server
        .cli_ok(
            &alice,
            &[
                "request",
                "--subject",
                "user:yan",
                "--entitlement",
                "reader",
            ],
        )
        .trim()
        .to_string();
    let upload = server.http(
        "POST",
        &format!("/v1/cases/{case_id}/evidence?name=ticket.txt"),
        Some(&alice),
        &[("idempotency-key", "schemathesis-evidence")],
        common::Body::Raw(b"approved in the change board".to_vec(), Some("text/plain")),
    );
    assert_eq!(upload.status, 200, "{}", upload.text);
    let evidence = server.get_json(&format!("/v1/cases/{case_id}/evidence"));
    let sha256 = evidence["evidence"][0]["payload"]["sha256"]
        .as_str()
        .unwrap_or_else(|| panic!("no evidence hash in {evidence}"))
        .to_string();
    let config = server.root.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!("[parameters]\ncase_id = \"{case_id}\"\nsha256 = \"{sha256}\"\n{CONFIG}"),
    )
    .expect("write the schemathesis config");
    let output = python(&schemathesis)
        .current_dir(server.root.path())
        .args(["-m", "schemathesis.cli", "--no-color", "--config-file"])
        .arg(&config)
        .args(["run", &format!("{}/v1/openapi.json", server.url)])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", server.admin_token),
        ])
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "10", "--max-time", "90", "--no-shrink"])
        .args(["--seed", "20261130"])
        // Revoking the run's own token would end the run; revocation is
        // checked in tests/e2e/tokens.rs.
        .args(["--exclude-operation-id", "revoke_token"])
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures (exit {:?}):\n{report}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains("Test cases:") && !report.contains("Failures:"),
        "schemathesis did not report a clean run:\n{report}"
    );
    // Still up, and the trail it left is whole. Two findings are about the
    // data the run sent, not the trail: links to made-up hosts stay
    // unverified, and uploads refused after their bytes were stored (a
    // reused Idempotency-Key, say) leave blobs no event references. Info
    // findings are not faults (the young tail of the live log that the next
    // checkpoint covers).
    server.log_size();
    assert!(!server.log().contains("panicked"), "{}", server.log());
    let (_, report) = server.verify_with(&[]);
    let unexpected: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|finding| {
            finding["severity"] != "info"
                && !matches!(
                    finding["code"].as_str(),
                    Some("evidence.link-unverified" | "evidence.blob-unreferenced")
                )
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "verify after the run: {unexpected:#?}"
    );
}

#[test]
fn requests_drawn_from_the_document_reach_request_approval_execution_and_review() {
    let schemathesis = find_or_install_schemathesis();
    let server = Server::start();
    let tokens: Vec<String> = ["alice", "bob", "carol", "dave"]
        .iter()
        .map(|name| server.principal(name))
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi/workflow.py");
    let output = python(&schemathesis)
        .arg(&script)
        .arg(&server.url)
        .args(&tokens)
        .output()
        .expect("run the workflow script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the drawn workflow failed (exit {:?}):\n{stdout}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("the workflow printed no JSON ({error}):\n{stdout}"));
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|step| step["step"].as_str())
        .collect();
    assert_eq!(
        steps,
        ["request", "approval", "execution", "review"],
        "{report:#}"
    );
    let case_id = report["case_id"].as_str().expect("the case");
    let case = server.get_json(&format!("/v1/cases/{case_id}"));
    assert_eq!(case["state"], "reviewed", "{case:#}");
    let kinds: Vec<&str> = case["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|event| event["kind"].as_str())
        .collect();
    for kind in [
        "request_created",
        "approval_granted",
        "execution_completed",
        "review_completed",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    // The trail is whole. Two findings are about what the drawn data says,
    // not the trail, each only when the data says it: an execution that
    // reports, in `applied`, another change than the one approved is
    // recorded (never refused) and reported as a mismatch; and time-bound
    // access executed at a drawn past time (the schema admits 1971 to 2025)
    // has long ended without a revocation.
    let applied = &report["steps"][2]["body"]["applied"];
    let duration = &report["steps"][0]["body"]["duration"];
    let (_, verified) = server.verify_with(&[]);
    let findings: Vec<&serde_json::Value> = verified["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|finding| finding["severity"] != "info")
        .collect();
    for finding in &findings {
        let explained = finding["case_id"] == case_id
            && match finding["code"].as_str() {
                Some("review.change-mismatch") => !applied.is_null(),
                Some("expiry.revocation-overdue") => !duration.is_null(),
                _ => false,
            };
        assert!(
            explained,
            "verify after the workflow: {finding:#} (applied: {applied}, duration: {duration})"
        );
    }
    if findings.is_empty() {
        assert_eq!(verified["ok"], true, "{verified:#}");
    }
}

/// Every pattern in the served document, with where it is.
fn patterns(value: &serde_json::Value, at: String, found: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, item) in fields {
                match (key.as_str(), item) {
                    ("pattern", serde_json::Value::String(pattern)) => {
                        found.push((at.clone(), pattern.clone()))
                    }
                    _ => patterns(item, format!("{at}/{key}"), found),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                patterns(item, format!("{at}/{index}"), found);
            }
        }
        _ => {}
    }
}

/// The served document states the rules the server enforces, from the one
/// place they are written: every identifier, label, ticket, free text and
/// principal name has the pattern `custody_core::model` checks against its
/// parser, and no pattern in the document is written anywhere else.
#[test]
fn the_document_states_the_patterns_of_custody_core() {
    use custody_core::model::{
        CONNECTOR_NAME_PATTERN, EXTERNAL_USER_PATTERN, IDENTIFIER_PATTERN, LABEL_PATTERN,
        MAX_EXTERNAL_USER_BYTES, MAX_NAME_BYTES, MAX_TEXT_BYTES, PRINCIPAL_PATTERN, TEXT_PATTERN,
        TICKET_PATTERN,
    };
    use custody_server::openapi::{
        duration_pattern, CASE_ID_PATTERN, EVENT_ID_PATTERN, IDEMPOTENCY_KEY_PATTERN,
        PAST_TIMESTAMP_PATTERN,
    };
    let server = Server::start();
    let document = server.get_json("/v1/openapi.json");
    let schemas = &document["components"]["schemas"];
    // The one name the principal pattern admits that the server refuses.
    for (schema, name) in [
        ("PrincipalBody", "name"),
        ("IdentityBody", "principal"),
        ("IdentityEntry", "principal"),
    ] {
        assert_eq!(
            schemas[schema]["properties"][name]["not"],
            serde_json::json!({"const": "system"}),
            "{:#}",
            schemas[schema]
        );
    }
    let property = |schema: &str, name: &str| {
        let property = &schemas[schema]["properties"][name];
        match property.get("items") {
            Some(items) => items.clone(),
            None => property.clone(),
        }
    };
    let identifiers = [
        ("SubjectBody", "id"),
        ("RequestBody", "entitlement"),
        ("RequestBody", "resource"),
        ("BreakGlassBody", "entitlement"),
        ("BreakGlassBody", "resource"),
        ("AppliedBody", "entitlement"),
        ("AppliedBody", "resource"),
        ("ChatBody", "channel"),
        ("ChatBody", "permalink"),
        ("PrincipalBody", "groups"),
        ("PrincipalBody", "org"),
        ("DelegationBody", "vendor_org"),
        ("DelegationBody", "on_behalf_of"),
        ("DelegationBody", "entitlements"),
        ("DelegationBody", "resources"),
    ];
    let texts = [
        ("RequestBody", "justification"),
        ("BreakGlassBody", "justification"),
        ("DecisionBody", "comment"),
        ("ChatBody", "message_text"),
        ("ExecutionBody", "comment"),
        ("ReviewBody", "comment"),
        ("CommentBody", "text"),
        ("MergeBody", "comment"),
    ];
    let mut expected: Vec<(&str, &str, &str, Option<usize>)> = Vec::new();
    for (schema, name) in identifiers {
        expected.push((schema, name, IDENTIFIER_PATTERN, Some(MAX_NAME_BYTES)));
    }
    for (schema, name) in texts {
        expected.push((schema, name, TEXT_PATTERN, Some(MAX_TEXT_BYTES)));
    }
    expected.push((
        "PrincipalBody",
        "display_name",
        LABEL_PATTERN,
        Some(MAX_NAME_BYTES),
    ));
    for (schema, name) in [("RequestBody", "ticket"), ("BreakGlassBody", "ticket")] {
        expected.push((schema, name, TICKET_PATTERN, None));
    }
    for (schema, name) in [
        ("ChatBody", "approver"),
        ("PrincipalBody", "name"),
        ("DelegationBody", "principals"),
        ("IdentityBody", "principal"),
        ("IdentityEntry", "principal"),
    ] {
        expected.push((schema, name, PRINCIPAL_PATTERN, None));
    }
    expected.push((
        "IdentityEntry",
        "external_user",
        EXTERNAL_USER_PATTERN,
        Some(MAX_EXTERNAL_USER_BYTES),
    ));
    for (schema, name, pattern, most) in expected {
        let property = property(schema, name);
        assert_eq!(
            property["pattern"].as_str(),
            Some(pattern),
            "{schema}.{name}: {property:#}"
        );
        if let Some(most) = most {
            assert_eq!(
                property["maxLength"].as_u64(),
                Some(most as u64),
                "{schema}.{name}: {property:#}"
            );
        }
    }
    // Query parameters: the upload's file name and the reference's ticket.
    let parameter = |path: &str, name: &str| {
        document["paths"][path]["post"]["parameters"]
            .as_array()
            .and_then(|parameters| parameters.iter().find(|p| p["name"] == name))
            .map(|parameter| parameter["schema"].clone())
            .unwrap_or_else(|| panic!("no parameter {name} of POST {path}"))
    };
    for path in ["/v1/cases/{case_id}/evidence", "/v1/evidence"] {
        let name = parameter(path, "name");
        assert_eq!(
            name["pattern"].as_str(),
            Some(IDENTIFIER_PATTERN),
            "{name:#}"
        );
        assert_eq!(name["maxLength"].as_u64(), Some(255), "{name:#}");
    }
    // Path parameters: a connector's name, an outside user's ID.
    let connectors = "/v1/connectors/{name}/identities";
    for (path, method, name, pattern) in [
        (connectors, "get", "name", CONNECTOR_NAME_PATTERN),
        (connectors, "post", "name", CONNECTOR_NAME_PATTERN),
        (
            "/v1/connectors/{name}/identities/{external_user}",
            "put",
            "name",
            CONNECTOR_NAME_PATTERN,
        ),
        (
            "/v1/connectors/{name}/identities/{external_user}",
            "put",
            "external_user",
            EXTERNAL_USER_PATTERN,
        ),
        (
            "/v1/connectors/{name}/identities/{external_user}",
            "delete",
            "external_user",
            EXTERNAL_USER_PATTERN,
        ),
    ] {
        let schema = document["paths"][path][method]["parameters"]
            .as_array()
            .and_then(|parameters| parameters.iter().find(|p| p["name"] == name))
            .map(|parameter| parameter["schema"].clone())
            .unwrap_or_else(|| panic!("no parameter {name} of {method} {path}"));
        assert_eq!(schema["pattern"].as_str(), Some(pattern), "{schema:#}");
    }
    // Elsewhere `name` is a principal's, and keeps no connector's pattern.
    let principal_name = document["paths"]["/v1/principals/{name}/groups"]["put"]["parameters"]
        .as_array()
        .and_then(|parameters| parameters.iter().find(|p| p["name"] == "name"))
        .map(|parameter| parameter["schema"].clone())
        .unwrap();
    assert_ne!(
        principal_name["pattern"].as_str(),
        Some(CONNECTOR_NAME_PATTERN),
        "{principal_name:#}"
    );
    let ticket = parameter("/v1/evidence", "ticket");
    assert_eq!(
        ticket["pattern"].as_str(),
        Some(TICKET_PATTERN),
        "{ticket:#}"
    );
    // No pattern comes from anywhere else.
    let known = [
        IDENTIFIER_PATTERN.to_string(),
        LABEL_PATTERN.to_string(),
        TEXT_PATTERN.to_string(),
        TICKET_PATTERN.to_string(),
        PRINCIPAL_PATTERN.to_string(),
        CONNECTOR_NAME_PATTERN.to_string(),
        EXTERNAL_USER_PATTERN.to_string(),
        CASE_ID_PATTERN.to_string(),
        EVENT_ID_PATTERN.to_string(),
        PAST_TIMESTAMP_PATTERN.to_string(),
        IDEMPOTENCY_KEY_PATTERN.to_string(),
        duration_pattern(),
    ];
    let mut found = Vec::new();
    patterns(&document, String::new(), &mut found);
    let strays: Vec<&(String, String)> = found
        .iter()
        .filter(|(_, pattern)| !known.contains(pattern))
        .collect();
    assert!(strays.is_empty(), "patterns from elsewhere: {strays:#?}");
}
