//! The approval policy from the `--config` file, end to end: the rule is
//! decided by the server, recorded in the case, and enforced on every step.

mod common;

use common::{assert_refused, assert_verify_ok, Server};

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
    assert_eq!(server.log_size(), 0, "refused requests append nothing");

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
