//! Token lifecycle: listing never shows secrets, revocation takes effect at
//! once, and only admins (or the token's owner) may revoke.

use crate::common;

use common::{Body, Server};

#[test]
fn revoked_tokens_stop_authenticating_at_once() {
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let alice_second = server.cli_ok(&server.admin_token, &["token", "create", "alice"]);
    let alice_second = alice_second.trim().to_string();

    // Listing: admins see every token, never a secret.
    let list = server.cli_json(&server.admin_token, &["token", "list"]);
    let tokens = list["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 4, "{list}");
    let text = list.to_string();
    for secret in [&alice, &bob, &alice_second, &server.admin_token] {
        assert!(!text.contains(secret.as_str()), "a secret is listed");
    }
    let alice_tokens = server.cli_json(&server.admin_token, &["token", "list", "alice"]);
    assert_eq!(alice_tokens["tokens"].as_array().unwrap().len(), 2);

    // A non-admin sees only their own tokens and cannot list another's.
    let own = server.cli_json(&bob, &["token", "list"]);
    let own = own["tokens"].as_array().unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["principal"], "bob");
    let output = server.cli(Some(&bob), &["token", "list", "alice"]);
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));

    let whoami = server.cli_json(&alice, &["whoami"]);
    let alice_token_id = whoami["token_id"].as_str().unwrap().to_string();

    // Bob may not revoke Alice's token; nothing changes.
    let output = server.cli(Some(&bob), &["token", "revoke", &alice_token_id]);
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    assert!(common::stderr(&output).contains("admins"));
    server.cli_ok(&alice, &["whoami"]);

    // The admin revokes it: it stops working at once, the other token of Alice does not.
    let revoked = server.cli_json(&server.admin_token, &["token", "revoke", &alice_token_id]);
    assert_eq!(revoked["token_id"], alice_token_id.as_str());
    assert_eq!(revoked["revoked_by"], "admin");
    assert!(revoked["revoked_at"].is_string());
    let response = server.http("GET", "/v1/whoami", Some(&alice), &[], Body::None);
    assert_eq!(response.status, 401, "{}", response.text);
    assert_eq!(response.json["type"], "urn:custody:problem:unauthorized");
    let output = server.cli(Some(&alice), &["cases"]);
    assert_eq!(output.status.code(), Some(2));
    server.cli_ok(&alice_second, &["whoami"]);

    // Revoking again changes nothing; an unknown token is not found.
    let again = server.cli_json(&server.admin_token, &["token", "revoke", &alice_token_id]);
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);
    let output = server.cli(
        Some(&server.admin_token),
        &["token", "revoke", "tok_0000000000000000"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(common::stderr(&output).contains("does not exist"));

    // Bob may revoke his own token.
    let bob_id = server.cli_json(&bob, &["whoami"])["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.cli_ok(&bob, &["token", "revoke", &bob_id]);
    let response = server.http("GET", "/v1/whoami", Some(&bob), &[], Body::None);
    assert_eq!(response.status, 401);

    // The listing shows who revoked what.
    let list = server.cli_json(&server.admin_token, &["token", "list"]);
    let revoked_count = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|token| token["revoked_at"].is_string())
        .count();
    assert_eq!(revoked_count, 2, "{list}");
    let table = server.cli_ok(&server.admin_token, &["token", "list"]);
    assert!(
        table.contains("revoked") && table.contains("active"),
        "{table}"
    );
}
