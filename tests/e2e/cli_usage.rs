//! Usage and connection errors of the CLI: exit code 2, a clear message on
//! stderr, and nothing on stdout that a script could mistake for a result.

use std::process::Command;

fn custody(args: &[&str], token: Option<&str>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_custody"));
    command
        .args(args)
        .env_remove("CUSTODY_TOKEN")
        .env_remove("CUSTODY_URL")
        .env_remove("CUSTODY_DATA");
    if let Some(token) = token {
        command.env("CUSTODY_TOKEN", token);
    }
    command.output().expect("run custody")
}

fn assert_usage_error(output: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn client_commands_without_a_token_say_how_to_get_one() {
    let output = custody(&["cases"], None);
    assert_usage_error(&output, "CUSTODY_TOKEN");
}

#[test]
fn unreachable_servers_are_connection_errors_over_http_and_https() {
    for url in ["http://127.0.0.1:9", "https://127.0.0.1:9"] {
        let output = custody(&["cases", "--url", url], Some("cust_x"));
        assert_usage_error(&output, "cannot reach the Custody server");
    }
    let output = custody(&["cases", "--url", "ftp://example.com"], Some("cust_x"));
    assert_usage_error(&output, "not an http:// URL");
}

#[test]
fn malformed_arguments_are_refused_before_anything_is_sent() {
    let output = custody(
        &[
            "request",
            "--subject",
            "alice",
            "--entitlement",
            "admin",
            "--url",
            "http://127.0.0.1:9",
        ],
        Some("cust_x"),
    );
    assert_usage_error(&output, "KIND:ID");
    let output = custody(&["verify", "--data", "/nonexistent/custody-data"], None);
    assert_usage_error(&output, "holds no Custody database");
    let output = custody(
        &[
            "log",
            "verify-proof",
            "/nonexistent.json",
            "--key",
            "not-a-key",
        ],
        None,
    );
    assert_usage_error(&output, "not a verifier key");
    // clap's own usage errors use exit code 2 as well.
    let output = custody(&["review", "AC-x"], Some("cust_x"));
    assert_eq!(output.status.code(), Some(2));
}
