//! The web console in Debian's Chromium (playwright-core,
//! `tests/browser/console.mjs`), signed in through a real OpenID provider
//! (`oidc-provider`, `tests/oidc/provider.mjs`): four people each click
//! "Sign in with single sign-on", type their account at the provider and
//! come back signed in, then take one case from request to review. The
//! requester's own approval is refused with its rule on the page; the
//! timeline and the browser's own verification of the inclusion proofs are
//! read through the DOM; every page is screenshotted (kept under
//! `target/tmp/browser/console/`) and checked with axe-core.
//!
//! The server is the real `custody serve` binary, on a port chosen before
//! it starts: `[oidc] redirect_url` names it.

use serde_json::{json, Value};

use crate::common::{self, browser};
use crate::oidc::{free_port, keygen, Provider, CLIENT};

const PEOPLE: [(&str, &str, &str); 4] = [
    ("requester", "rita-sub", "rita"),
    ("approver", "arjun-sub", "arjun"),
    ("executor", "eli-sub", "eli"),
    ("reviewer", "vera-sub", "vera"),
];

#[test]
fn four_people_sign_in_with_oidc_and_take_a_case_from_request_to_review_in_a_browser() {
    let key = keygen();
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/oidc/callback");
    let provider = Provider::start_for(
        free_port(),
        &[&key],
        tempfile::tempdir().unwrap(),
        &redirect,
    );
    let mut accounts = serde_json::Map::new();
    for (_, subject, name) in PEOPLE {
        accounts.insert(
            subject.to_string(),
            json!({"preferred_username": name, "name": name, "groups": ["team-payments"]}),
        );
    }
    provider.set_accounts(&Value::Object(accounts));
    let issuer = provider.issuer();

    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let init = common::command()
        .args(["init", "--json", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    common::assert_success(&init, "custody init");
    let admin_token = serde_json::from_slice::<Value>(&init.stdout).unwrap()["admin_token"]
        .as_str()
        .unwrap()
        .to_string();
    let config = root.path().join("custody.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[oidc]
issuer = "{issuer}"
audience = "{CLIENT}"
client_id = "{CLIENT}"
redirect_url = "{redirect}"
allowed_groups = ["team-*"]
"#
        ),
    )
    .unwrap();
    let node =
        common::spawn_serve_listening(&data, None, Some(&config), &format!("127.0.0.1:{port}"))
            .expect("custody serve starts with [oidc]");
    assert_eq!(node.url, format!("http://127.0.0.1:{port}"));

    let people: serde_json::Map<String, Value> = PEOPLE
        .iter()
        .map(|(role, subject, _)| (role.to_string(), json!(subject)))
        .collect();
    let journey = browser::run(
        "console.mjs",
        &node.url,
        "console",
        json!({
            "people": people,
            "request": {"subject": "dana", "entitlement": "payments-admin",
                        "justification": "on-call rotation"},
        }),
    );
    let result = &journey.result;

    // Each person came back from the provider signed in, on the inbox,
    // under the name the provider asserted.
    for (role, _, name) in PEOPLE {
        let signed_in = &result["signed_in"][role];
        assert_eq!(signed_in["path"], "/", "{role}: {signed_in}");
        assert!(
            signed_in["who"].as_str().unwrap().contains(name),
            "{role}: the header does not name {name}: {signed_in}"
        );
    }
    let case = result["case_id"].as_str().unwrap().to_string();
    assert!(common::is_case_id(&case), "{case}");

    // The refused self-approval shows its rule, and changed nothing.
    assert_eq!(
        result["refusal"]["rule"],
        custody_core::Code::SodRequesterCannotApprove.as_str(),
        "{}",
        result["refusal"]
    );
    assert!(
        result["refusal"]["text"]
            .as_str()
            .unwrap()
            .contains("Nothing was recorded"),
        "{}",
        result["refusal"]
    );
    assert!(result["inbox_links"].as_u64().unwrap() >= 1, "{result}");
    assert_eq!(result["after_approval"], "approved");
    assert_eq!(result["after_review"], "reviewed");

    // The timeline, as the DOM shows it: each step by its person, from the
    // web, authenticated by the issuer and subject (never a token).
    let timeline = result["timeline"].as_array().unwrap();
    for ((kind, (_, subject, name)), expected_via) in [
        "request_created",
        "approval_granted",
        "execution_completed",
        "review_completed",
    ]
    .iter()
    .zip(PEOPLE)
    .zip(["web"; 4])
    {
        let row = timeline
            .iter()
            .find(|row| row["kind"] == *kind)
            .unwrap_or_else(|| panic!("no {kind} in the timeline: {timeline:#?}"));
        assert_eq!(row["principal"], name, "{row}");
        assert_eq!(row["via"], expected_via, "{row}");
        assert_eq!(
            row["authentication"],
            format!("OIDC {issuer} / {subject}"),
            "{row}"
        );
    }
    // The browser verified every event's inclusion proof itself.
    let verdict = &result["browser_verdict"];
    assert_eq!(verdict["result"], "ok", "{verdict}");
    let rows = verdict["rows"].as_array().unwrap();
    assert_eq!(rows.len(), timeline.len(), "{verdict}");
    assert!(rows.iter().all(|cell| cell == "included"), "{verdict}");
    assert!(
        result["server_verdict"]
            .as_str()
            .unwrap()
            .contains("Verified by the server"),
        "{}",
        result["server_verdict"]
    );
    // The keyboard's first stop is the skip link to the content.
    assert_eq!(result["first_focus"]["href"], "#main", "{result}");

    for page in ["sign_in", "request", "refusal", "inbox", "case"] {
        browser::assert_no_serious_violations(&result["violations"][page], page);
    }
    assert!(journey.screenshots.len() >= 5, "{:?}", journey.screenshots);
    for screenshot in &journey.screenshots {
        browser::assert_screenshot(screenshot);
    }
    assert!(
        result["page_errors"].as_array().unwrap().is_empty(),
        "{}",
        result["page_errors"]
    );

    // The ledger agrees with the page: the case as the CLI shows it, each
    // person provisioned on the administration record at first sign-in.
    let show = |args: &[&str]| -> Value {
        let output = common::cli_at(&node.url, &admin_token, args);
        common::assert_success(&output, &args.join(" "));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let shown = show(&["show", &case, "--json"]);
    assert_eq!(shown["state"], "reviewed");
    for event in shown["events"].as_array().unwrap() {
        if event["actor"]["via"] == "web" {
            assert_eq!(event["actor"]["auth"]["method"], "oidc", "{event}");
            assert_eq!(event["actor"]["auth"]["issuer"], issuer.as_str(), "{event}");
        }
    }
    let record = show(&["admin", "record", "--json"]);
    for (_, subject, name) in PEOPLE {
        let added = record["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|event| {
                event["kind"] == "principal_added" && event["payload"]["principal"] == name
            })
            .unwrap_or_else(|| panic!("{name} was not provisioned on the record"));
        assert_eq!(added["actor"]["auth"]["subject"], subject, "{added}");
    }
    drop(node);
    common::assert_verify_ok(&data);
}
