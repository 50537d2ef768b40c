//! Brief invariant 12: text from outside never reaches a screen raw.
//! Identifiers have a documented safe character set (everything else is
//! refused with a 400 naming the field and the character); ticket keys are
//! normalised so a look-alike cannot evade the same-ticket check; free text
//! is stored as given and every terminal renderer escapes control, bidi and
//! invisible characters. (Remote strings: `tests/e2e/evidence.rs`.)

use crate::common;

use common::{stderr, stdout, Body, Server};
use custody_core::text::is_unsafe_char;
use serde_json::{json, Value};

/// Whether `text` holds an unsafe character other than the line breaks
/// that separate printed lines.
fn holds_raw_unsafe(text: &str) -> bool {
    text.chars().any(|c| c != '\n' && is_unsafe_char(c))
}

// Free text may hold newlines, tabs and carriage returns, and any printable
// character, bidi and invisible ones included; other controls are refused at
// the edge (`tests/e2e/bad_input.rs`).
const HOSTILE_JUSTIFICATION: &str =
    "approved by my manager\rEVERYTHING IS FINE\t\u{2066}ok\u{2069}";
const HOSTILE_COMMENT: &str = "see attached \u{202e}fdp.exe\u{200b} \u{feff}done";

/// Justifications and comments are stored exactly as given, and `show`,
/// `cases`, `show --json` and errors print them with every control, bidi
/// and invisible character escaped: a carriage return cannot overwrite the
/// line before it, and `\u{202e}fdp.exe` cannot show as `exe.pdf`.
#[test]
fn free_text_is_stored_as_given_and_printed_escaped() {
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let case = server
        .cli_ok(
            &alice,
            &[
                "request",
                "--subject",
                "user:alice",
                "--entitlement",
                "role/reader",
                "--justification",
                HOSTILE_JUSTIFICATION,
            ],
        )
        .trim()
        .to_string();
    server.cli_ok(&bob, &["comment", &case, HOSTILE_COMMENT]);

    // Stored as given (read over the API, not through the CLI).
    let document = server.get_json(&format!("/v1/cases/{case}"));
    let events = document["events"].as_array().unwrap();
    assert_eq!(events[0]["payload"]["justification"], HOSTILE_JUSTIFICATION);
    assert_eq!(events[1]["payload"]["text"], HOSTILE_COMMENT);

    // The timeline shows the escapes, and not one raw unsafe character.
    let shown = server.cli_ok(&alice, &["show", &case]);
    assert!(
        !holds_raw_unsafe(&shown),
        "show printed raw text: {shown:?}"
    );
    assert!(
        shown.contains(r"approved by my manager\rEVERYTHING IS FINE\t\u{2066}ok\u{2069}"),
        "{shown}"
    );
    assert!(
        shown.contains(r"comment: see attached \u{202e}fdp.exe\u{200b} \u{feff}done"),
        "{shown}"
    );
    assert_eq!(
        shown.lines().filter(|line| line.contains("#1")).count(),
        1,
        "{shown}"
    );

    // JSON output escapes what JSON would leave raw, and still means the same.
    let output = server.cli(Some(&alice), &["show", &case, "--json"]);
    let text = stdout(&output);
    assert!(
        !holds_raw_unsafe(&text),
        "show --json printed raw text: {text:?}"
    );
    assert!(
        text.contains(r"\u202e") && text.contains(r"\u2066") && text.contains(r"\r"),
        "{text}"
    );
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        parsed["events"][0]["payload"]["justification"],
        HOSTILE_JUSTIFICATION
    );
    assert_eq!(parsed["events"][1]["payload"]["text"], HOSTILE_COMMENT);

    let listed = server.cli_ok(&alice, &["cases"]);
    assert!(!holds_raw_unsafe(&listed), "{listed:?}");

    // Notifications list, verify findings and errors print through the same
    // escaping; an error that quotes outside input is escaped too.
    let refused = server.cli(Some(&alice), &["show", "AC-\u{202e}\u{9b}31m"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        !holds_raw_unsafe(&stderr(&refused)),
        "{:?}",
        stderr(&refused)
    );
    assert!(
        stderr(&refused).contains(r"\u{202e}"),
        "{}",
        stderr(&refused)
    );
}

/// Every identifier outside the safe set is refused with a 400
/// problem+json naming the field and the character, and nothing is written.
#[test]
fn identifiers_outside_the_safe_set_are_refused_naming_field_and_character() {
    let server = Server::start();
    let alice = server.principal("alice");
    let before = server.log_size();
    let request =
        |subject: &str, entitlement: &str, resource: Option<&str>, ticket: Option<&str>| {
            json!({
                "subject": {"kind": "user", "id": subject},
                "entitlement": entitlement,
                "resource": resource,
                "ticket": ticket,
                "justification": "text safety",
            })
        };
    for (body, expected) in [
        (
            request("ali\u{202e}ce", "role/admin", None, None),
            r"subject.id holds the character `\u{202e}` (U+202E) at position 4",
        ),
        (
            request("alice", "role/\u{200b}admin", None, None),
            r"entitlement holds the character `\u{200b}` (U+200B) at position 6",
        ),
        (
            request("alice", "role/admin", Some("prod-\u{430}pi"), None),
            r"resource holds the character `\u{430}` (U+0430) at position 6",
        ),
        (
            request("alice", "role/admin", None, Some("jira:SEC-\u{ff11}")),
            r"ticket key holds the character `\u{ff11}` (U+FF11) at position 5",
        ),
        (
            request("alice", "role/\u{9b}admin", None, None),
            r"entitlement holds the character `\u{9b}` (U+009B) at position 6",
        ),
        (
            request("alice", "<script>", None, None),
            "entitlement holds the character `<` (U+003C) at position 1",
        ),
    ] {
        let response = server.http(
            "POST",
            "/v1/cases",
            Some(&alice),
            &[("idempotency-key", &common::uuid_like())],
            Body::Json(body.clone()),
        );
        assert_eq!(response.status, 400, "{body}: {}", response.text);
        assert_eq!(
            response.content_type.as_deref(),
            Some("application/problem+json")
        );
        let detail = response.json["detail"].as_str().unwrap();
        assert!(detail.contains(expected), "{body}: {detail}");
        assert!(!holds_raw_unsafe(detail), "{detail:?}");
    }
    for (body, expected) in [
        (
            json!({"name": "carol", "groups": ["ops\u{202e}"]}),
            r"group holds the character `\u{202e}`",
        ),
        (
            json!({"name": "dave", "org": "acme\u{200d}"}),
            r"org holds the character `\u{200d}`",
        ),
    ] {
        let response = server.http(
            "POST",
            "/v1/principals",
            Some(&server.admin_token),
            &[],
            Body::Json(body.clone()),
        );
        assert_eq!(response.status, 400, "{body}: {}", response.text);
        let detail = response.json["detail"].as_str().unwrap();
        assert!(detail.contains(expected), "{body}: {detail}");
    }
    // Through the CLI: exit 2, and the message names the escaped character.
    let output = server.cli(
        Some(&alice),
        &[
            "request",
            "--subject",
            "user:\u{202e}ecila",
            "--entitlement",
            "role/admin",
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(r"subject.id holds the character `\u{202e}`"),
        "{}",
        stderr(&output)
    );
    assert!(!holds_raw_unsafe(&stderr(&output)), "{:?}", stderr(&output));
    assert_eq!(
        server.log_size(),
        before,
        "a refused identifier writes nothing"
    );
}

/// Ticket keys are normalised (system lowercase, key uppercase) before the
/// same-ticket check, so `JIRA:sec-1` finds the case opened for
/// `jira:SEC-1`; a fullwidth spelling is refused rather than becoming a
/// second ticket.
#[test]
fn ticket_keys_differing_in_case_or_width_cannot_open_a_second_case() {
    let server = Server::start();
    let alice = server.principal("alice");
    let open = |ticket: &str| {
        server.cli(
            Some(&alice),
            &[
                "request",
                "--subject",
                "user:alice",
                "--entitlement",
                "db-admin",
                "--ticket",
                ticket,
                "--justification",
                "migration",
                "--json",
            ],
        )
    };
    let first = open("jira:SEC-1");
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let first: Value = serde_json::from_str(&stdout(&first)).unwrap();
    let case = first["case_id"].as_str().unwrap().to_string();
    let document = server.get_json(&format!("/v1/cases/{case}"));
    assert_eq!(
        document["events"][0]["payload"]["ticket"],
        json!({"system": "jira", "key": "SEC-1"})
    );
    for same in ["JIRA:sec-1", "Jira:Sec-1"] {
        let again = open(same);
        assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
        let again: Value = serde_json::from_str(&stdout(&again)).unwrap();
        assert_eq!(
            again["case_id"],
            case.as_str(),
            "{same} must reach the same case"
        );
        assert_eq!(again["existing"], true, "{same}");
    }
    let cases_before = server.case_count();
    for look_alike in [
        "jira:\u{ff33}\u{ff25}\u{ff23}-1",
        "\u{ff2a}IRA:SEC-1",
        "jira:\u{421}EC-1",
    ] {
        let refused = open(look_alike);
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{look_alike}: {}",
            stderr(&refused)
        );
        let message = stderr(&refused);
        assert!(message.contains("holds the character `\\u{"), "{message}");
        assert!(message.contains("ticket"), "{message}");
    }
    assert_eq!(server.case_count(), cases_before);
}

/// The OpenAPI document states the identifier and ticket rules as patterns,
/// the same ones the parsers are tested against.
#[test]
fn the_openapi_document_carries_the_identifier_patterns() {
    let server = Server::start();
    let document = server.get_json("/v1/openapi.json");
    fn pattern_of(value: &Value) -> Option<String> {
        match value {
            Value::Object(fields) => fields
                .get("pattern")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| fields.values().find_map(pattern_of)),
            Value::Array(items) => items.iter().find_map(pattern_of),
            _ => None,
        }
    }
    let schemas = &document["components"]["schemas"];
    let identifier = custody_core::model::IDENTIFIER_PATTERN;
    let ticket = custody_core::model::TICKET_PATTERN;
    for (schema, property, expected) in [
        ("SubjectBody", "id", identifier),
        ("RequestBody", "entitlement", identifier),
        ("RequestBody", "resource", identifier),
        ("RequestBody", "ticket", ticket),
        ("BreakGlassBody", "entitlement", identifier),
        ("BreakGlassBody", "ticket", ticket),
        ("PrincipalBody", "org", identifier),
    ] {
        let found = pattern_of(&schemas[schema]["properties"][property]);
        assert_eq!(found.as_deref(), Some(expected), "{schema}.{property}");
    }
    let upload = &document["paths"]["/v1/evidence"]["post"]["parameters"];
    let parameter = |name: &str| {
        upload
            .as_array()
            .unwrap()
            .iter()
            .find(|parameter| parameter["name"] == name)
            .map(pattern_of)
            .unwrap_or_default()
    };
    assert_eq!(parameter("name").as_deref(), Some(identifier));
    assert_eq!(parameter("ticket").as_deref(), Some(ticket));
}
