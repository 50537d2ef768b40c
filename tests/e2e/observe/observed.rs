//! What the GitHub, Vault and Kubernetes end-to-end tests share: a real
//! `custody serve` with a source configured, records posted or ingested as
//! the vendor sends them, and what the ledger made of them (the cases, the
//! `execution_observed` events, `verify`'s findings).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{Body, Response, Server};

/// HMAC-SHA256 (RFC 2104), written here so the tests do not share the
/// connector's implementation.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block.iter().map(|byte| byte ^ 0x36).collect();
    let outer: Vec<u8> = block.iter().map(|byte| byte ^ 0x5c).collect();
    let inner_hash = Sha256::new()
        .chain_update(&inner)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&outer)
        .chain_update(inner_hash)
        .finalize()
        .into()
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// RFC 3339 of `ms` milliseconds since the epoch.
pub fn rfc3339_ms(ms: i64) -> String {
    custody_core::Timestamp::from_micros(ms * 1000).to_string()
}

/// POSTs `body` to the source's endpoint with `headers`.
pub fn post(server: &Server, source: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    server.http(
        "POST",
        &format!("/v1/connectors/{source}/webhook"),
        None,
        headers,
        Body::Raw(body.to_vec(), Some("application/json")),
    )
}

/// `custody ingest --source SOURCE FILE --json` as the admin, the file
/// holding `bytes`: the exit code and the printed summary.
pub fn ingest(server: &Server, source: &str, bytes: &[u8]) -> (Option<i32>, Value) {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("records");
    std::fs::write(&file, bytes).unwrap();
    let output = server.cli(
        Some(&server.admin_token),
        &[
            "ingest",
            "--source",
            source,
            file.to_str().unwrap(),
            "--json",
        ],
    );
    let summary = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output.status.code(), summary)
}

/// [`ingest`] that must succeed.
#[track_caller]
pub fn ingest_ok(server: &Server, source: &str, bytes: &[u8]) -> Value {
    let (code, summary) = ingest(server, source, bytes);
    assert_eq!(code, Some(0), "custody ingest: {summary}");
    summary
}

/// JSON lines of `records`.
pub fn lines(records: &[Value]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for record in records {
        bytes.extend(serde_json::to_vec(record).unwrap());
        bytes.push(b'\n');
    }
    bytes
}

/// The `execution_observed` events of a case.
pub fn observed(server: &Server, case: &str) -> Vec<Value> {
    server
        .events(&server.admin_token, case)
        .into_iter()
        .filter(|event| event["kind"] == "execution_observed")
        .collect()
}

/// Every case ID (newest first, up to 1000).
pub fn all_cases(server: &Server, unsanctioned_only: bool) -> Vec<String> {
    let mut args = vec!["cases", "--limit", "1000"];
    if unsanctioned_only {
        args.push("--unsanctioned");
    }
    server.cli_json(&server.admin_token, &args)["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| case["case_id"].as_str().unwrap().to_string())
        .collect()
}

/// How many events of every case carry each (source, external ID).
pub fn events_per_origin(server: &Server) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for case in all_cases(server, false) {
        for event in server.events(&server.admin_token, &case) {
            if event["kind"] != "execution_observed" {
                continue;
            }
            let key = (
                event["source"].as_str().unwrap_or_default().to_string(),
                event["external_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            *counts.entry(key).or_insert(0) += 1;
        }
    }
    counts
}

/// The findings of a `verify --json` report with `code`.
pub fn findings(report: &Value, code: custody_core::Code) -> Vec<Value> {
    let code = code.to_string();
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|finding| finding["code"] == code.as_str())
        .cloned()
        .collect()
}

/// Opens a case for `change` (the arguments after `request`) as
/// `requester`, approved by `approver` and executed by `executor`; returns
/// its ID.
pub fn sanctioned(
    server: &Server,
    requester: &str,
    approver: &str,
    executor: &str,
    change: &[&str],
) -> String {
    let mut args = vec!["request"];
    args.extend_from_slice(change);
    let case = server.cli_ok(requester, &args).trim().to_string();
    server.cli_ok(approver, &["approve", &case]);
    server.cli_ok(executor, &["execute", &case]);
    case
}

/// The case's `escalation_raised` event, once the server's timer recorded
/// it (polled for at most 20 s).
pub fn escalation(server: &Server, case: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = server.events(&server.admin_token, case);
        if let Some(event) = events
            .iter()
            .find(|event| event["kind"] == "escalation_raised")
        {
            return event.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no escalation was recorded: {events:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts that an unsanctioned case opened by an observation is listed by
/// `custody cases --unsanctioned`, waits for review, is reported by
/// `verify` (`change.unsanctioned`, and `drift.nhi-credential-unsanctioned`
/// for a credential), and is escalated by the ledger once its review
/// deadline passes on the test clock. Returns the escalation.
pub fn assert_unsanctioned_and_escalated(
    server: &Server,
    case: &str,
    source: &str,
    external_id: &str,
    credential: bool,
) -> Value {
    assert!(
        all_cases(server, true).contains(&case.to_string()),
        "{case} is not listed by cases --unsanctioned"
    );
    let document = server.show(&server.admin_token, case);
    assert_eq!(document["state"], "pending_review", "{document:#}");
    let observation = observed(server, case).remove(0);
    assert_eq!(observation["payload"]["matched_by"], "unmatched");
    assert_eq!(observation["source"], source);
    assert_eq!(observation["external_id"], external_id);
    assert_eq!(observation["role"], "observer");
    let (_, report) = server.verify_with(&[]);
    let mut codes = vec![custody_core::Code::ChangeUnsanctioned];
    if credential {
        codes.push(custody_core::Code::DriftNhiCredentialUnsanctioned);
    }
    for code in codes {
        let found = findings(&report, code);
        let finding = found
            .iter()
            .find(|finding| finding["case_id"] == case)
            .unwrap_or_else(|| panic!("no {code} finding for {case}: {report:#}"));
        assert_eq!(finding["source"], source, "{finding}");
        assert_eq!(finding["external_id"], external_id, "{finding}");
    }
    let deadline = custody_core::Timestamp::parse(
        observation["payload"]["review_deadline"]
            .as_str()
            .unwrap_or_else(|| panic!("no review deadline: {observation}")),
    )
    .unwrap();
    server.clock().set(deadline.plus_seconds(1));
    let escalation = escalation(server, case);
    assert_eq!(escalation["actor"]["principal"], "system");
    escalation
}

/// Asserts that `verify` finds nothing but findings of `codes` (the
/// unsanctioned changes a test made on purpose) and information (the
/// checkpoint that is about to cover the newest entries).
#[track_caller]
pub fn assert_only_findings(server: &Server, codes: &[custody_core::Code]) {
    let (_, report) = server.verify_with(&[]);
    let allowed: Vec<String> = codes.iter().map(ToString::to_string).collect();
    for finding in report["findings"].as_array().unwrap() {
        assert!(
            finding["severity"] == "info"
                || allowed.iter().any(|code| finding["code"] == code.as_str()),
            "unexpected finding: {finding:#}"
        );
    }
}
