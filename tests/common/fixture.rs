//! The ledger both tamper suites (`tests/e2e/tamper.rs`,
//! `tests/e2e/log_tamper.rs`) start from, built through the real CLI: four
//! principals and three cases whose events are interleaved, so that the
//! cases' events are spread over the log. Each test tampers with a fresh
//! copy of its data directory ([`super::tamper::copy_of`]).

use serde_json::{json, Value};

use super::Server;

/// The stopped server's ledger and what the tests need to know of it.
pub struct TamperLedger {
    /// The stopped server (it keeps the data directory alive).
    pub server: Server,
    /// What `custody init --json` printed (its `verifier_key`, ...).
    pub init: Value,
    /// Full lifecycle plus a comment: request, comment, approval,
    /// execution, review; log indices 1, 3, 5, 7, 9 of the cases' events.
    pub full: String,
    /// Request and approval.
    pub approved: String,
    /// Request and comment.
    pub open: String,
    /// The checkpoints signed with `custody log checkpoint --new` when
    /// [`build`] was asked to: at 16 entries and at 20 (the end).
    pub checkpoints: Vec<String>,
}

/// Builds the ledger on a server started with `config`, signing a
/// checkpoint at 16 entries and at the end when `sign_checkpoints`, then
/// stops the server and checks that `custody verify` passes.
pub fn build(config: Option<&str>, sign_checkpoints: bool) -> TamperLedger {
    let (mut server, init) = Server::start_configured(None, config);
    // The first admin and its token, and the adoption of the server's
    // policy (the policy record's seq 1).
    assert_eq!(server.log_size(), 3);
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let dave = server.principal("dave");
    let request = |token: &str, args: &[&str]| {
        let mut all = vec!["request"];
        all.extend_from_slice(args);
        server.cli_ok(token, &all).trim().to_string()
    };
    let full = request(
        &alice,
        &[
            "--subject",
            "user:ann",
            "--entitlement",
            "admin",
            "--justification",
            "quarterly access review for ann",
        ],
    ); // full seq 1
    let approved = request(
        &alice,
        &["--subject", "user:ben", "--entitlement", "reader"],
    );
    server.cli_ok(&bob, &["comment", &full, "looks fine to me"]); // full seq 2
    let open = request(
        &alice,
        &[
            "--subject",
            "user:cat",
            "--entitlement",
            "writer",
            "--justification",
            "temporary",
        ],
    );
    server.cli_ok(&bob, &["approve", &full]); // full seq 3
    assert_eq!(server.log_size(), 16);
    let mut checkpoints = Vec::new();
    if sign_checkpoints {
        checkpoints.push(server.sign_checkpoint());
    }
    server.cli_ok(&bob, &["approve", &approved]);
    let change_set = server.root.path().join("change-set.json");
    std::fs::write(&change_set, json!({"added": ["role/admin"]}).to_string()).unwrap();
    server.cli_ok(
        &carol,
        &[
            "execute",
            &full,
            "--change-set",
            change_set.to_str().unwrap(),
        ],
    ); // full seq 4
    server.cli_ok(&alice, &["comment", &open, "waiting for the manager"]);
    server.cli_ok(
        &dave,
        &[
            "review",
            &full,
            "--outcome",
            "confirmed",
            "--comment",
            "all good",
        ],
    ); // full seq 5
    assert_eq!(server.log_size(), 20);
    if sign_checkpoints {
        checkpoints.push(server.sign_checkpoint());
    }
    server.stop();
    super::assert_verify_ok(&server.data);
    TamperLedger {
        server,
        init,
        full,
        approved,
        open,
        checkpoints,
    }
}
