//! Delegated administration by vendors: every vendor action carries its
//! grant and the party it acts for; actions outside scope, without a grant,
//! or after the grant ends are refused.

use crate::common;

use common::Server;

fn assert_forbidden(output: &std::process::Output, rule: &str) {
    common::assert_refused(output, rule);
}

#[test]
fn vendors_act_only_within_their_grant_and_the_trail_says_for_whom() {
    let server = Server::start();
    let alice = server.principal_with("alice", &["--org", "acme"]);
    let bob = server.principal_with("bob", &["--org", "acme"]);
    let vera = server.principal_with("vera", &["--kind", "vendor", "--org", "msp-co"]);
    let victor = server.principal_with("victor", &["--kind", "vendor", "--org", "msp-co"]);

    let case = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            "db-reader",
            "--resource",
            "prod-db",
        ],
    );
    let case = case.trim();
    server.cli_ok(&bob, &["approve", case]);

    // No grant yet: the vendor cannot act at all.
    let before = server.log_size();
    assert_forbidden(
        &server.cli(Some(&vera), &["execute", case]),
        "delegation.none",
    );
    assert_eq!(server.log_size(), before);

    // A non-admin cannot grant.
    let output = server.cli(
        Some(&alice),
        &[
            "delegation",
            "grant",
            "--vendor-org",
            "msp-co",
            "--on-behalf-of",
            "dba-team",
            "--valid-for",
            "7d",
        ],
    );
    assert_eq!(output.status.code(), Some(1));

    let grant = server.cli_ok(
        &server.admin_token,
        &[
            "delegation",
            "grant",
            "--vendor-org",
            "msp-co",
            "--on-behalf-of",
            "dba-team",
            "--valid-for",
            "7d",
            "--principal",
            "vera",
            "--entitlement",
            "db-*",
            "--resource",
            "prod-*",
        ],
    );
    let grant = grant.trim().to_string();
    assert!(grant.starts_with("dg_"), "{grant}");

    // Another principal of the vendor is not covered by a grant limited to vera.
    assert_forbidden(
        &server.cli(Some(&victor), &["execute", case]),
        "delegation.none",
    );
    // Outside the scope: another entitlement.
    let other = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            "admin",
            "--resource",
            "prod-db",
        ],
    );
    let other = other.trim();
    server.cli_ok(&bob, &["approve", other]);
    assert_forbidden(
        &server.cli(Some(&vera), &["execute", other]),
        "delegation.out-of-scope",
    );

    // Within scope: the execution records the grant and the party served.
    server.cli_ok(&vera, &["execute", case]);
    let execution = server.events(&alice, case)[2].clone();
    assert_eq!(execution["actor"]["principal"], "vera");
    assert_eq!(execution["actor"]["kind"], "vendor");
    assert_eq!(execution["actor"]["org"], "msp-co");
    assert_eq!(execution["actor"]["delegation_grant"], grant.as_str());
    assert_eq!(execution["actor"]["on_behalf_of"], "dba-team");
    // Internal principals act with no grant and for no one else.
    let approval = server.events(&alice, case)[1].clone();
    assert!(approval["actor"]["delegation_grant"].is_null());
    assert!(approval["actor"]["on_behalf_of"].is_null());

    // A revoked grant covers nothing.
    server.cli_ok(&server.admin_token, &["delegation", "revoke", &grant]);
    let list = server.cli_json(&alice, &["delegation", "list"]);
    assert!(list["delegations"][0]["revoked_at"].is_string(), "{list}");
    assert_forbidden(
        &server.cli(Some(&vera), &["comment", case, "one more thing"]),
        "delegation.expired",
    );

    common::assert_verify_ok(&server.data);
}
