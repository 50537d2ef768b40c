//! The approval policy from the `--config` file, end to end: the rule is
//! decided by the server, recorded in the case, and enforced on every step.

use crate::common;

use base64::Engine;
use common::{assert_refused, assert_verify_ok, Body, Server};
use serde_json::{json, Value};

const CONFIG: &str = r#"
[[policy.rules]]
name = "prod-admin"
subject_kinds = ["user"]
entitlements = ["admin", "db-*"]
resources = ["prod-*"]
approvals = 2
approver_groups = ["security"]
approver_not_in_requester_org = true
executor_kinds = ["automation"]
max_duration = "8h"
"#;

#[test]
fn a_configured_rule_is_recorded_and_enforced() {
    let (server, _) = Server::start_configured(None, Some(CONFIG));
    let alice = server.principal_with("alice", &["--org", "acme"]);
    let sam = server.principal_with("sam", &["--org", "audit-co", "--group", "security"]);
    let sid = server.principal_with("sid", &["--org", "audit-co", "--group", "security"]);
    let sara = server.principal_with("sara", &["--org", "acme", "--group", "security"]);
    let carol = server.principal_with("carol", &["--org", "acme", "--group", "sre"]);
    let robot = server.principal_with("provisioner", &["--kind", "automation", "--org", "acme"]);
    // Besides the administration record (init's admin and token, then six
    // principals with a token each), the adoption of the configured policy
    // is the log's only entry.
    let log_size = server.log_size();
    assert_eq!(
        log_size, 15,
        "a fresh server records its policy and its administration, nothing else"
    );

    let base = [
        "request",
        "--subject",
        "user:alice",
        "--entitlement",
        "db-admin",
        "--resource",
        "prod-eu",
    ];
    assert_refused(&server.cli(Some(&alice), &base), "policy.duration-required");
    let mut too_long = base.to_vec();
    too_long.extend(["--duration", "2d"]);
    assert_refused(
        &server.cli(Some(&alice), &too_long),
        "policy.duration-too-long",
    );
    assert_eq!(
        server.log_size(),
        log_size,
        "refused requests append nothing"
    );

    let mut good = base.to_vec();
    good.extend(["--duration", "4h"]);
    let case = server.cli_ok(&alice, &good);
    let case = case.trim();
    let document = server.show(&alice, case);
    let rule = &document["view"]["rule"];
    assert_eq!(rule["name"], "prod-admin");
    assert_eq!(rule["approvals"], 2);
    assert_eq!(rule["policy_hash"].as_str().map(str::len), Some(64));
    // The rule is in the hashed request event itself, not only in the projection.
    assert_eq!(
        document["events"][0]["payload"]["rule"]["name"],
        "prod-admin"
    );

    assert_refused(
        &server.cli(Some(&carol), &["approve", case]),
        "policy.approver-not-in-group",
    );
    assert_refused(
        &server.cli(Some(&sara), &["approve", case]),
        "sod.approver-same-org",
    );
    server.cli_ok(&sam, &["approve", case]);
    assert_refused(
        &server.cli(Some(&robot), &["execute", case]),
        "lifecycle.not-approved",
    );
    server.cli_ok(&sid, &["approve", case]);
    assert_refused(
        &server.cli(Some(&carol), &["execute", case]),
        "policy.executor-not-allowed",
    );
    server.cli_ok(&robot, &["execute", case]);
    server.cli_ok(&carol, &["review", case, "--outcome", "confirmed"]);

    // Requests no rule matches fall back to the default rule.
    let other = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            "reader",
        ],
    );
    let other = server.show(&alice, other.trim());
    assert_eq!(other["view"]["rule"]["name"], "default");
    assert_eq!(other["view"]["rule"]["approvals"], 1);

    assert_verify_ok(&server.data);
}

#[test]
fn an_invalid_policy_stops_the_server_from_starting() {
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("custody.toml");
    std::fs::write(&config, "[[policy.rules]]\nname = \"x\"\napprovals = 0\n").unwrap();
    let output = common::command()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(directory.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("0 approvals"), "{stderr}");
    std::fs::write(&config, "[[policy.rules]]\nname = \"x\"\napprovers = 2\n").unwrap();
    let output = common::command()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(directory.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("approvers"));
}

/// The policy the first server of `policy_changes_are_recorded_and_verified` runs.
const ONE_RULE: &str = r#"
[[policy.rules]]
name = "prod-write"
resources = ["prod-*"]
approvals = 2
"#;

/// The policy it is restarted with: another rule set.
const TWO_RULES: &str = r#"
[[policy.rules]]
name = "prod-write-strict"
resources = ["prod-*"]
approvals = 3

[[policy.rules]]
name = "staging"
resources = ["staging-*"]
approvals = 1
"#;

/// The event at `index` of the log, decoded from its leaf bytes.
fn log_entry(server: &Server, index: u64) -> Value {
    let response = server.http(
        "GET",
        &format!("/v1/log/entries?start={index}&end={}", index + 1),
        Some(&server.admin_token),
        &[],
        Body::None,
    );
    assert_eq!(response.status, 200, "{}", response.text);
    let leaf = response.json["entries"][0]["leaf"]
        .as_str()
        .unwrap_or_else(|| panic!("no entry {index}: {}", response.text));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(leaf)
        .expect("a base64 leaf");
    serde_json::from_slice(&bytes).expect("a leaf is an event's JSON")
}

/// The `history` of `custody policy --json`.
fn history(server: &Server) -> Vec<Value> {
    let policy = server.cli_json(&server.admin_token, &["policy"]);
    policy["history"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no history: {policy:#}"))
}

#[test]
fn policy_changes_are_recorded_and_verified() {
    let (mut server, _) = Server::start_configured(None, Some(ONE_RULE));
    let config = server.config_path().expect("the server has a config file");
    let source = std::fs::canonicalize(&config)
        .expect("the config file exists")
        .display()
        .to_string();
    let alice = server.principal("alice");

    // Started once: one adoption, of the configured policy, from the config file.
    let policy = server.cli_json(&alice, &["policy"]);
    let first_hash = policy["policy_hash"]
        .as_str()
        .filter(|hash| hash.len() == 64)
        .unwrap_or_else(|| panic!("no policy hash: {policy:#}"))
        .to_string();
    assert_eq!(
        policy["policy"]["rules"][0]["name"], "prod-write",
        "{policy:#}"
    );
    let record = policy["record"]
        .as_str()
        .unwrap_or_else(|| panic!("no policy record: {policy:#}"))
        .to_string();
    let adoptions = policy["history"].as_array().expect("history");
    assert_eq!(adoptions.len(), 1, "{policy:#}");
    assert_eq!(adoptions[0]["seq"], 1, "{policy:#}");
    assert_eq!(adoptions[0]["policy_hash"], first_hash.as_str());
    assert_eq!(adoptions[0]["previous_hash"], Value::Null);
    assert_eq!(adoptions[0]["source"], source.as_str());
    assert_eq!(adoptions[0]["rules"], json!(["prod-write"]));
    // It is the log's first entry after init's administration record (the
    // first admin and its token), written by the ledger itself; alice and
    // her token follow.
    assert_eq!(server.log_size(), 5);
    let adopted = log_entry(&server, 2);
    assert_eq!(adopted["kind"], "policy_adopted", "{adopted:#}");
    assert_eq!(adopted["case_id"], record.as_str(), "{adopted:#}");
    assert_eq!(adopted["event_id"], adoptions[0]["event_id"], "{adopted:#}");
    assert_eq!(adopted["actor"]["principal"], "system", "{adopted:#}");
    assert_eq!(
        adopted["payload"]["policy_hash"],
        first_hash.as_str(),
        "{adopted:#}"
    );

    // A new case records the hash of the policy that decided it.
    let old_case = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            "writer",
            "--resource",
            "prod-eu",
        ],
    );
    let old_case = old_case.trim().to_string();
    let shown = server.show(&alice, &old_case);
    assert_eq!(shown["view"]["rule"]["name"], "prod-write", "{shown:#}");
    assert_eq!(shown["view"]["rule"]["approvals"], 2, "{shown:#}");
    assert_eq!(
        shown["view"]["rule"]["policy_hash"],
        first_hash.as_str(),
        "{shown:#}"
    );
    // The policy record is not a case anyone lists.
    let listed = server.cli_json(&alice, &["cases"]);
    let listed: Vec<&str> = listed["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter_map(|row| row["case_id"].as_str())
        .collect();
    assert_eq!(listed, vec![old_case.as_str()]);

    // Restarted with the same config: nothing new to record.
    // (Init's admin and token, the policy, alice and her token, the case.)
    let size = server.log_size();
    assert_eq!(size, 6);
    server.restart_configured();
    assert_eq!(
        server.log_size(),
        size,
        "an unchanged policy is not re-recorded"
    );
    let unchanged = history(&server);
    assert_eq!(unchanged.len(), 1, "{unchanged:#?}");
    assert_eq!(unchanged[0]["policy_hash"], first_hash.as_str());

    // Restarted with another rule set: its adoption is recorded after the first.
    std::fs::write(&config, TWO_RULES).expect("rewrite the config file");
    server.restart_configured();
    assert_eq!(server.log_size(), size + 1);
    let policy = server.cli_json(&alice, &["policy"]);
    let second_hash = policy["policy_hash"]
        .as_str()
        .expect("policy hash")
        .to_string();
    assert_ne!(second_hash, first_hash, "another policy, another hash");
    assert_eq!(policy["record"], record.as_str(), "{policy:#}");
    let changed = policy["history"].as_array().expect("history");
    assert_eq!(changed.len(), 2, "{policy:#}");
    assert_eq!(changed[0]["policy_hash"], first_hash.as_str(), "{policy:#}");
    assert_eq!(changed[1]["seq"], 2, "{policy:#}");
    assert_eq!(
        changed[1]["policy_hash"],
        second_hash.as_str(),
        "{policy:#}"
    );
    assert_eq!(
        changed[1]["previous_hash"], changed[0]["policy_hash"],
        "{policy:#}"
    );
    assert_eq!(changed[1]["source"], source.as_str(), "{policy:#}");
    assert_eq!(
        changed[1]["rules"],
        json!(["prod-write-strict", "staging"]),
        "{policy:#}"
    );
    let adopted = log_entry(&server, size);
    assert_eq!(adopted["kind"], "policy_adopted", "{adopted:#}");
    assert_eq!(adopted["case_id"], record.as_str(), "{adopted:#}");
    assert_eq!(adopted["seq"], 2, "{adopted:#}");

    // The old case keeps the rule it was decided with; a new one gets the new rule.
    let shown = server.show(&alice, &old_case);
    assert_eq!(shown["view"]["rule"]["name"], "prod-write", "{shown:#}");
    assert_eq!(shown["view"]["rule"]["approvals"], 2, "{shown:#}");
    assert_eq!(
        shown["view"]["rule"]["policy_hash"],
        first_hash.as_str(),
        "{shown:#}"
    );
    let new_case = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:bob",
            "--entitlement",
            "writer",
            "--resource",
            "prod-us",
        ],
    );
    let shown = server.show(&alice, new_case.trim());
    assert_eq!(
        shown["view"]["rule"]["name"], "prod-write-strict",
        "{shown:#}"
    );
    assert_eq!(shown["view"]["rule"]["approvals"], 3, "{shown:#}");
    assert_eq!(
        shown["view"]["rule"]["policy_hash"],
        second_hash.as_str(),
        "{shown:#}"
    );

    // The auditor accepts the records (policy, and administration: init's
    // admin, alice, and their tokens) and both cases.
    let report = server.assert_verify_ok();
    assert_eq!(report["checked"]["events"], 8, "{report:#}");
    assert_eq!(report["checked"]["log_entries"], 8, "{report:#}");
    assert_eq!(report["checked"]["cases"], 4, "{report:#}");
    assert_eq!(report["checked"]["admin_events"], 4, "{report:#}");
    // Nothing above info (the live log's young tail may wait for its checkpoint).
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|finding| finding["severity"] == "info"),
        "{report:#}"
    );
}
