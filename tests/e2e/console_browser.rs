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

/// A `custody serve` with `[oidc]` on a port chosen before it starts, and
/// the OpenID provider its console signs people in at.
struct SingleSignOn {
    node: common::Node,
    _provider: Provider,
    issuer: String,
    data: std::path::PathBuf,
    admin_token: String,
    _root: tempfile::TempDir,
}

impl SingleSignOn {
    fn start() -> SingleSignOn {
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
        SingleSignOn {
            node,
            _provider: provider,
            issuer,
            data,
            admin_token,
            _root: root,
        }
    }
}

#[test]
fn four_people_sign_in_with_oidc_and_take_a_case_from_request_to_review_in_a_browser() {
    let sso = SingleSignOn::start();
    let (node, issuer, admin_token) = (&sso.node, &sso.issuer, &sso.admin_token);
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
        let output = common::cli_at(&node.url, admin_token, args);
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
    let SingleSignOn { node, data, .. } = sso;
    drop(node);
    common::assert_verify_ok(&data);
}

/// A cookie-keeping HTTP client that follows no redirect by itself.
struct Agent {
    client: reqwest::Client,
    cookies: Vec<(String, String)>,
    runtime: tokio::runtime::Runtime,
}

/// One answer: status, `Location`, the `Set-Cookie` lines, the body.
struct Answer {
    status: u16,
    location: String,
    set_cookies: Vec<String>,
    body: String,
}

impl Agent {
    fn new() -> Agent {
        Agent {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
            runtime: tokio::runtime::Runtime::new().unwrap(),
        }
    }

    fn get(&mut self, url: &str) -> Answer {
        let cookie = self
            .cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = self
            .client
            .get(url)
            .header("accept", "text/html")
            .header("cookie", cookie);
        let answer = self.runtime.block_on(async {
            let response = request.send().await.unwrap();
            let location = response
                .headers()
                .get("location")
                .map(|value| value.to_str().unwrap().to_string())
                .unwrap_or_default();
            let set_cookies: Vec<String> = response
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|value| value.to_str().unwrap().to_string())
                .collect();
            Answer {
                status: response.status().as_u16(),
                location,
                set_cookies,
                body: response.text().await.unwrap(),
            }
        });
        for line in &answer.set_cookies {
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(known, _)| known != name);
            if !value.is_empty() && !line.contains("Max-Age=0") {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
        answer
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.clone())
    }

    /// Begins a sign-in as `account` at the console and follows the
    /// provider's redirects; returns the callback URL the provider sent the
    /// browser to (not yet visited).
    fn sign_in_until_callback(&mut self, console: &str, account: &str) -> String {
        let begun = self.get(&format!(
            "{console}/oidc/sign-in?return_to=/cases&login_hint={account}"
        ));
        assert_eq!(begun.status, 303, "{}", begun.body);
        let login = begun
            .set_cookies
            .iter()
            .find(|line| line.starts_with("custody_oidc_login="))
            .unwrap_or_else(|| panic!("no sign-in cookie: {:?}", begun.set_cookies));
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=600"] {
            assert!(login.contains(attribute), "{login}");
        }
        let mut next = begun.location;
        for _ in 0..10 {
            if next.starts_with(&format!("{console}/oidc/callback")) {
                return next;
            }
            let answer = self.get(&next);
            assert!(
                (300..400).contains(&answer.status),
                "{next}: {} {}",
                answer.status,
                answer.body
            );
            next = reqwest::Url::parse(&next)
                .unwrap()
                .join(&answer.location)
                .unwrap()
                .to_string();
        }
        panic!("the provider never sent the browser back to the console");
    }
}

fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut parsed = reqwest::Url::parse(url).unwrap();
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(key, _)| key != name)
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    parsed
        .query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(name, value);
    parsed.to_string()
}

#[test]
fn the_sign_in_callback_is_single_use_bound_to_its_browser_and_refuses_a_wrong_state() {
    let sso = SingleSignOn::start();
    let console = sso.node.url.clone();
    let record_size = || {
        let output = common::cli_at(&console, &sso.admin_token, &["admin", "record", "--json"]);
        common::assert_success(&output, "admin record");
        serde_json::from_slice::<Value>(&output.stdout).unwrap()["events"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = record_size();

    // A callback from a browser that did not begin the sign-in (no cookie)
    // signs nothing in, and leaves the sign-in to its own browser.
    let mut rita = Agent::new();
    let callback = rita.sign_in_until_callback(&console, "rita-sub");
    let mut stranger = Agent::new();
    let stolen = stranger.get(&callback);
    assert_eq!(stolen.status, 400, "{}", stolen.body);
    assert!(
        stolen.body.contains("did not begin in this browser"),
        "{}",
        stolen.body
    );
    assert!(stranger.cookie("custody_session").is_none());

    // The browser that began finishes it: a session, back where it began.
    let rita_login = rita
        .cookie("custody_oidc_login")
        .expect("the sign-in cookie");
    let finished = rita.get(&callback);
    assert_eq!(finished.status, 303, "{}", finished.body);
    assert_eq!(finished.location, "/cases");
    assert!(
        rita.cookie("custody_session").is_some(),
        "{:?}",
        finished.set_cookies
    );
    assert!(
        rita.cookie("custody_oidc_login").is_none(),
        "the sign-in cookie outlived its use: {:?}",
        finished.set_cookies
    );
    let inbox = rita.get(&format!("{console}/"));
    assert_eq!(inbox.status, 200);
    assert!(
        inbox.body.contains("Signed in as <strong>rita</strong>"),
        "{}",
        inbox.body
    );
    assert_eq!(
        record_size(),
        before + 1,
        "rita's first sign-in adds her principal"
    );

    // Replayed with the sign-in cookie kept (a copied request): the sign-in
    // is spent on the server, whatever the cookie says.
    let mut replayer = Agent::new();
    replayer
        .cookies
        .push(("custody_oidc_login".into(), rita_login));
    let replayed = replayer.get(&callback);
    assert_eq!(replayed.status, 400, "{}", replayed.body);
    assert!(replayed.body.contains("already used"), "{}", replayed.body);
    assert!(replayer.cookie("custody_session").is_none());

    // A `state` that is not the one this browser began with is refused
    // before the code is used, and the sign-in is spent with it.
    let mut arjun = Agent::new();
    let callback_b = arjun.sign_in_until_callback(&console, "arjun-sub");
    let arjun_login = arjun.cookie("custody_oidc_login").unwrap();
    let tampered = arjun.get(&with_param(&callback_b, "state", "not-the-state"));
    assert_eq!(tampered.status, 401, "{}", tampered.body);
    assert!(tampered.body.contains("`state`"), "{}", tampered.body);
    assert!(arjun.cookie("custody_session").is_none());
    arjun
        .cookies
        .push(("custody_oidc_login".into(), arjun_login));
    let late = arjun.get(&callback_b);
    assert_eq!(late.status, 400, "{}", late.body);
    assert!(arjun.cookie("custody_session").is_none());

    // The issuer's refusal is shown by its code, and signs nothing in.
    let mut denied = Agent::new();
    let callback_d = denied.sign_in_until_callback(&console, "vera-sub");
    let refused = denied.get(&with_param(&callback_d, "error", "access_denied"));
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("(access_denied)"), "{}", refused.body);
    assert!(denied.cookie("custody_session").is_none());

    // Only rita finished a sign-in: arjun and vera are not principals.
    assert_eq!(record_size(), before + 1);
}

#[test]
fn single_sign_on_needs_oidc_and_a_redirect_url_with_the_callback_path() {
    // Without [oidc], the console offers no single sign-on.
    let server = common::Server::start();
    let mut agent = Agent::new();
    let sign_in = agent.get(&format!("{}/sign-in", server.url));
    assert_eq!(sign_in.status, 200);
    assert!(!sign_in.body.contains("single sign-on"), "{}", sign_in.body);
    let begun = agent.get(&format!("{}/oidc/sign-in", server.url));
    assert_eq!(begun.status, 404, "{}", begun.body);
    assert!(begun.body.contains("not configured"), "{}", begun.body);

    // A redirect_url with another path stops the server at start, saying why.
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    common::assert_success(
        &common::command()
            .args(["init", "--data"])
            .arg(&data)
            .output()
            .unwrap(),
        "custody init",
    );
    let config = root.path().join("custody.toml");
    std::fs::write(
        &config,
        r#"
[oidc]
issuer = "http://127.0.0.1:9"
audience = "console"
client_id = "console"
redirect_url = "http://127.0.0.1:8080/callback"
"#,
    )
    .unwrap();
    let refused = common::spawn_serve_configured(&data, None, Some(&config))
        .err()
        .expect("the server refuses the redirect_url");
    assert!(
        refused
            .contains("oidc.redirect_url must be this server's URL with the path /oidc/callback"),
        "{refused}"
    );
}
