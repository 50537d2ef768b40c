//! Approvals granted in chat, formalised later: provenance is recorded
//! (channel, permalink, the message's time, the hash of its text); an
//! approval attested by someone else counts only once the approver confirms
//! it with their own identity, or where the rule allows attested approvals.

use crate::common;

use common::{assert_refused, Server};

const MESSAGE_TIME: &str = "2026-11-28T22:15:00Z";

fn chat_args<'a>(case: &'a str, text: &'a str) -> Vec<&'a str> {
    vec![
        "approve",
        case,
        "--chat-channel",
        "slack:#access",
        "--chat-permalink",
        "https://chat.example/archives/C1/p1",
        "--chat-time",
        MESSAGE_TIME,
        "--chat-text",
        text,
    ]
}

#[test]
fn chat_approvals_record_provenance_and_attestations_need_confirmation() {
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let dave = server.principal("dave");
    let erin = server.principal("erin");

    // The approver formalises their own chat approval: it counts at once.
    let own = server.cli_ok(
        &alice,
        &["request", "--subject", "user:alice", "--entitlement", "a"],
    );
    let own = own.trim();
    server.cli_ok(&bob, &chat_args(own, "ok from me, go ahead"));
    let document = server.show(&alice, own);
    assert_eq!(document["state"], "approved");
    let approval = &document["events"][1];
    assert_eq!(approval["occurred_at"], "2026-11-28T22:15:00.000000Z");
    assert_eq!(approval["payload"]["chat"]["channel"], "slack:#access");
    assert_eq!(approval["payload"]["chat"]["approver"], "bob");
    assert_eq!(
        approval["payload"]["chat"]["message_sha256"]
            .as_str()
            .unwrap(),
        custody_core::Sha256Hash::of(b"ok from me, go ahead").to_hex()
    );
    assert!(
        !approval.to_string().contains("go ahead"),
        "the message text is not kept"
    );

    // Carol attests that dave approved in chat: recorded, but it does not count.
    let case = server.cli_ok(
        &alice,
        &["request", "--subject", "user:alice", "--entitlement", "b"],
    );
    let case = case.trim();
    let mut attest = chat_args(case, "dave: approved");
    attest.extend(["--for", "dave"]);
    server.cli_ok(&carol, &attest);
    let document = server.show(&alice, case);
    assert_eq!(document["state"], "open");
    assert_eq!(document["events"][1]["role"], "observer");
    assert_eq!(document["view"]["approvals"][0]["attested"], true);
    assert_eq!(document["view"]["approvals"][0]["confirmed"], false);
    assert_refused(
        &server.cli(Some(&erin), &["execute", case]),
        "lifecycle.not-approved",
    );
    let (output, report) = common::verify_dir(&server.data);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        report
            .to_string()
            .contains("approval.unconfirmed-attestation"),
        "{report}"
    );

    // Only dave can confirm it, with his own identity.
    let approval_event = document["events"][1]["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_refused(
        &server.cli(
            Some(&carol),
            &["approve", case, "--confirm", &approval_event],
        ),
        "approval.nothing-to-confirm",
    );
    server.cli_ok(&dave, &["approve", case, "--confirm", &approval_event]);
    let document = server.show(&alice, case);
    assert_eq!(document["state"], "approved");
    assert_eq!(document["events"][2]["kind"], "approval_confirmed");
    assert_eq!(document["events"][2]["actor"]["principal"], "dave");
    server.cli_ok(&erin, &["execute", case]);
    // Carol only recorded the attestation: she may review.
    server.cli_ok(&carol, &["review", case, "--outcome", "confirmed"]);

    // The requester can neither attest for others nor be attested as approver.
    let third = server.cli_ok(
        &alice,
        &["request", "--subject", "user:alice", "--entitlement", "c"],
    );
    let third = third.trim();
    let mut by_requester = chat_args(third, "dave said yes");
    by_requester.extend(["--for", "dave"]);
    assert_refused(
        &server.cli(Some(&alice), &by_requester),
        "sod.requester-cannot-attest",
    );
    let mut for_requester = chat_args(third, "alice said yes");
    for_requester.extend(["--for", "alice"]);
    assert_refused(
        &server.cli(Some(&carol), &for_requester),
        "sod.requester-cannot-approve",
    );
    let mut unknown = chat_args(third, "x");
    unknown.extend(["--for", "nobody"]);
    let output = server.cli(Some(&carol), &unknown);
    assert_eq!(output.status.code(), Some(1));

    let (output, report) = common::verify_dir(&server.data);
    assert_eq!(output.status.code(), Some(0), "{report}");
}

#[test]
fn a_rule_may_accept_attested_approvals_without_confirmation() {
    let config = "[[policy.rules]]\nname = \"chat-ok\"\nentitlements = [\"chat-*\"]\nallow_attested_approvals = true\n";
    let (server, _) = Server::start_configured(None, Some(config));
    let alice = server.principal("alice");
    let carol = server.principal("carol");
    server.principal("dave");
    let case = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            "chat-room",
        ],
    );
    let case = case.trim();
    let mut attest = chat_args(case, "dave: fine");
    attest.extend(["--for", "dave"]);
    server.cli_ok(&carol, &attest);
    assert_eq!(server.show(&alice, case)["state"], "approved");
    common::assert_verify_ok(&server.data);
}
