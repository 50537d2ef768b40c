//! The web console over HTTP (`docs/console.md`): sign-in with a token,
//! sessions kept in the database and their expiry, CSRF, the security
//! headers, escaping of text from outside, the actions taken through the
//! console's forms (the API's code paths, `via: web`), the evidence
//! preview, and the inbox. A browser drives the console in other tests; an
//! HTTP client that keeps cookies is enough here.

use std::collections::BTreeMap;

use crate::common::{Body, Server, TestStore};

/// A client that keeps cookies and does not follow redirects.
struct Browser<'a> {
    server: &'a Server,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    fn location(&self) -> &str {
        self.header("location")
    }

    /// The value of the first hidden field `name` after `after` in the page.
    fn field_after(&self, after: &str, name: &str) -> String {
        let start = self
            .text
            .find(after)
            .unwrap_or_else(|| panic!("{after} not in page:\n{}", self.text));
        let rest = &self.text[start..];
        let needle = format!("name=\"{name}\" value=\"");
        let at = rest
            .find(&needle)
            .unwrap_or_else(|| panic!("no field {name} after {after}"));
        let value = &rest[at + needle.len()..];
        value[..value.find('"').expect("closing quote")].to_string()
    }
}

fn form_encode(fields: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (index, (name, value)) in fields.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        for part in [name, value] {
            for byte in part.bytes() {
                if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
                    out.push(byte as char);
                } else {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
            if std::ptr::eq(part, name) {
                out.push('=');
            }
        }
    }
    out
}

impl<'a> Browser<'a> {
    fn new(server: &'a Server) -> Browser<'a> {
        Browser {
            server,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Page {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.server.url))
            .header("accept", "text/html");
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header("cookie", cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let page = self.server.runtime().block_on(async {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap();
            Page {
                status,
                headers,
                text,
            }
        });
        for value in page.headers.get_all("set-cookie") {
            let value = value.to_str().unwrap();
            let pair = value.split(';').next().unwrap();
            let (name, cookie) = pair.split_once('=').unwrap();
            if cookie.is_empty() || value.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), cookie.to_string());
            }
        }
        page
    }

    fn get(&mut self, path: &str) -> Page {
        self.send("GET", path, None, &[])
    }

    fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.send("POST", path, Some(form_encode(fields)), &[])
    }

    fn sign_in(&mut self, token: &str) {
        let form = self.get("/sign-in");
        assert_eq!(form.status, 200, "{}", form.text);
        let csrf = form.field_after("action=\"/sign-in\"", "csrf");
        let signed_in = self.post(
            "/sign-in",
            &[("token", token), ("csrf", &csrf), ("return_to", "/")],
        );
        assert_eq!(signed_in.status, 303, "{}", signed_in.text);
        assert_eq!(signed_in.location(), "/");
        assert!(
            self.cookies.contains_key("custody_session"),
            "no session cookie: {:?}",
            signed_in.headers
        );
    }

    /// Posts a case page's form `form_id` with `fields` (its CSRF token and
    /// idempotency key are the page's).
    fn submit(&mut self, case: &str, form_id: &str, fields: &[(&str, &str)]) -> Page {
        let page = self.get(&format!("/cases/{case}"));
        assert_eq!(page.status, 200, "{}", page.text);
        let anchor = format!("id=\"{form_id}\"");
        let csrf = page.field_after(&anchor, "csrf");
        let key = page.field_after(&anchor, "idempotency_key");
        let action = form_id.trim_end_matches("-form");
        let mut all = vec![("csrf", csrf.as_str()), ("idempotency_key", key.as_str())];
        all.extend_from_slice(fields);
        self.post(&format!("/cases/{case}/{action}"), &all)
    }

    /// Requests a change through the request form; returns the case ID.
    fn request(&mut self, subject: &str, entitlement: &str, justification: &str) -> String {
        let form = self.get("/request");
        assert_eq!(form.status, 200, "{}", form.text);
        let csrf = form.field_after("id=\"request-form\"", "csrf");
        let key = form.field_after("id=\"request-form\"", "idempotency_key");
        let opened = self.post(
            "/request",
            &[
                ("csrf", &csrf),
                ("idempotency_key", &key),
                ("subject_kind", "user"),
                ("subject_id", subject),
                ("entitlement", entitlement),
                ("change", "grant"),
                ("justification", justification),
            ],
        );
        assert_eq!(opened.status, 303, "{}", opened.text);
        opened
            .location()
            .strip_prefix("/cases/")
            .expect("redirect to the case")
            .to_string()
    }
}

fn start() -> Server {
    Server::start_in_process(TestStore::Embedded, None).0
}

#[test]
fn a_page_without_a_session_redirects_to_sign_in() {
    let server = start();
    let mut browser = Browser::new(&server);
    for path in ["/", "/cases", "/request", "/readiness"] {
        let page = browser.get(path);
        assert_eq!(page.status, 303, "{path}");
        assert!(
            page.location().starts_with("/sign-in?return_to="),
            "{path}: {}",
            page.location()
        );
    }
}

#[test]
fn sign_in_with_a_token_and_sign_out_invalidates_the_session_on_the_server() {
    let server = start();
    let alice = server.principal("alice");
    let mut browser = Browser::new(&server);
    // A wrong token opens nothing.
    let form = browser.get("/sign-in");
    let csrf = form.field_after("action=\"/sign-in\"", "csrf");
    let refused = browser.post("/sign-in", &[("token", "cust_wrong"), ("csrf", &csrf)]);
    assert_eq!(refused.status, 401);
    assert!(!browser.cookies.contains_key("custody_session"));

    browser.sign_in(&alice);
    let inbox = browser.get("/");
    assert_eq!(inbox.status, 200, "{}", inbox.text);
    assert!(
        inbox.text.contains("Signed in as <strong>alice</strong>"),
        "{}",
        inbox.text
    );
    let stolen = browser.cookies["custody_session"].clone();

    let csrf = inbox.field_after("action=\"/sign-out\"", "csrf");
    let out = browser.post("/sign-out", &[("csrf", &csrf)]);
    assert_eq!(out.status, 303);
    assert!(!browser.cookies.contains_key("custody_session"));
    // The old cookie, replayed, opens nothing: the row is gone.
    browser
        .cookies
        .insert("custody_session".to_string(), stolen);
    let after = browser.get("/");
    assert_eq!(after.status, 303);
    assert!(after.location().starts_with("/sign-in"));
}

#[test]
fn csrf_missing_wrong_or_cross_origin_is_refused_and_records_nothing() {
    let server = start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let case = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:carol",
            "--entitlement",
            "db-read",
        ],
    );
    let case = case.trim();
    let mut browser = Browser::new(&server);
    browser.sign_in(&bob);
    let page = browser.get(&format!("/cases/{case}"));
    let csrf = page.field_after("id=\"approve-form\"", "csrf");
    let key = page.field_after("id=\"approve-form\"", "idempotency_key");
    let before = server.log_size();
    let path = format!("/cases/{case}/approve");
    let missing = browser.post(&path, &[("idempotency_key", &key)]);
    assert_eq!(missing.status, 403, "{}", missing.text);
    assert!(
        missing.text.contains("nothing was changed"),
        "{}",
        missing.text
    );
    let wrong = browser.post(
        &path,
        &[("csrf", &"0".repeat(64)), ("idempotency_key", &key)],
    );
    assert_eq!(wrong.status, 403);
    let body = form_encode(&[("csrf", &csrf), ("idempotency_key", &key)]);
    let cross = browser.send(
        "POST",
        &path,
        Some(body.clone()),
        &[("origin", "http://evil.example")],
    );
    assert_eq!(cross.status, 403, "{}", cross.text);
    let cross_site = browser.send(
        "POST",
        &path,
        Some(body.clone()),
        &[("sec-fetch-site", "cross-site")],
    );
    assert_eq!(cross_site.status, 403);
    // A sign-in form without its cookie is refused too (login CSRF).
    let mut stranger = Browser::new(&server);
    let login = stranger.post("/sign-in", &[("token", &bob), ("csrf", &"a".repeat(64))]);
    assert_eq!(login.status, 403);
    assert_eq!(
        server.log_size(),
        before,
        "a refused form recorded something"
    );
    assert_eq!(server.show(&alice, case)["state"], "open");
    // The same form with its token and from this origin is accepted.
    let origin = server.url.clone();
    let accepted = browser.send(
        "POST",
        &path,
        Some(body),
        &[("origin", &origin), ("sec-fetch-site", "same-origin")],
    );
    assert_eq!(accepted.status, 303, "{}", accepted.text);
    assert_eq!(server.show(&alice, case)["state"], "approved");
}

#[test]
fn sessions_expire_when_idle_and_at_their_absolute_lifetime() {
    let server = start();
    let alice = server.principal("alice");
    let mut browser = Browser::new(&server);
    browser.sign_in(&alice);
    // Activity keeps a session: 20 minutes, a request, 20 minutes more.
    server.clock().advance_seconds(20 * 60);
    assert_eq!(browser.get("/").status, 200);
    server.clock().advance_seconds(20 * 60);
    assert_eq!(browser.get("/").status, 200);
    // 31 idle minutes end it (the default idle timeout is 30).
    server.clock().advance_seconds(31 * 60);
    let idle = browser.get("/");
    assert_eq!(idle.status, 303);
    assert!(idle.location().contains("expired=1"), "{}", idle.location());

    // However active, a session ends 8 hours after sign-in.
    browser.sign_in(&alice);
    for _ in 0..16 {
        server.clock().advance_seconds(29 * 60);
        assert_eq!(browser.get("/").status, 200);
    }
    server.clock().advance_seconds(29 * 60);
    let old = browser.get("/");
    assert_eq!(
        old.status, 303,
        "a session older than 8 hours still opened a page"
    );
}

#[test]
fn every_page_carries_the_csp_and_frame_headers() {
    let server = start();
    let alice = server.principal("alice");
    let case = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:carol",
            "--entitlement",
            "db-read",
        ],
    );
    let mut browser = Browser::new(&server);
    let signed_out = ["/sign-in", "/", "/no-such-page"];
    for path in signed_out {
        check_headers(&browser.get(path), path);
    }
    browser.sign_in(&alice);
    let case_path = format!("/cases/{}", case.trim());
    for path in [
        "/",
        "/cases",
        "/request",
        case_path.as_str(),
        "/no-such-page",
        "/cases/AC-nonsense",
    ] {
        let page = browser.get(path);
        check_headers(&page, path);
        assert_eq!(page.header("cache-control"), "no-store", "{path}");
    }
    let script = browser.get("/static/console.js");
    assert_eq!(script.status, 200);
    assert!(script.header("content-type").starts_with("text/javascript"));
    check_headers(&script, "/static/console.js");
}

fn check_headers(page: &Page, path: &str) {
    let csp = page.header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ] {
        assert!(
            csp.contains(directive),
            "{path}: CSP {csp:?} lacks {directive}"
        );
    }
    assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
    assert_eq!(page.header("x-frame-options"), "DENY", "{path}");
    assert_eq!(page.header("x-content-type-options"), "nosniff", "{path}");
    assert_eq!(page.header("referrer-policy"), "same-origin", "{path}");
    if page.header("content-type").starts_with("text/html") {
        assert!(!page.text.contains("<script>"), "{path}: inline script");
        assert!(!page.text.contains(" style=\""), "{path}: inline style");
    }
}

#[test]
fn a_justification_with_markup_bidi_controls_and_a_carriage_return_renders_inert() {
    let server = start();
    let alice = server.principal("alice");
    let mut browser = Browser::new(&server);
    browser.sign_in(&alice);
    let hostile = "<script>alert(1)</script> \u{202e}gnp.exe \u{2066}x\u{2069} line\rfeed";
    let case = browser.request("carol", "db-read", hostile);
    let page = browser.get(&format!("/cases/{case}"));
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        !page.text.contains("<script>alert"),
        "markup reached the page"
    );
    assert!(
        page.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        page.text
    );
    for raw in ['\u{202e}', '\u{2066}', '\u{2069}', '\r'] {
        assert!(!page.text.contains(raw), "{raw:?} reached the page raw");
    }
    for escaped in ["\\u{202e}", "\\u{2066}", "\\u{2069}", "\\r"] {
        assert!(page.text.contains(&format!("<span class=\"esc\" title=\"a control or direction character, shown escaped\">{escaped}</span>")), "{escaped} not shown marked");
    }
}

#[test]
fn request_approve_execute_review_through_the_console_by_four_principals() {
    let server = start();
    let tokens: Vec<String> = ["requester", "approver", "executor", "reviewer"]
        .iter()
        .map(|name| server.principal(name))
        .collect();
    let mut requester = Browser::new(&server);
    requester.sign_in(&tokens[0]);
    let case = requester.request("dana", "payments-admin", "on-call rotation");
    let mut approver = Browser::new(&server);
    approver.sign_in(&tokens[1]);
    assert!(
        approver.get("/").text.contains(&case),
        "the approver's inbox lacks the case"
    );
    assert_eq!(
        approver
            .submit(&case, "approve-form", &[("comment", "ok")])
            .status,
        303
    );
    // The inbox keeps projections between requests: the one read before the
    // approval must not be shown after it.
    assert!(
        !approver
            .get("/")
            .text
            .contains(&format!("id=\"approvals-{case}\"")),
        "the approver's inbox still offers the approved case"
    );
    let mut executor = Browser::new(&server);
    executor.sign_in(&tokens[2]);
    assert!(
        executor
            .get("/")
            .text
            .contains(&format!("id=\"executions-{case}\"")),
        "the executor's inbox lacks the approved case"
    );
    assert_eq!(
        executor
            .submit(&case, "execute-form", &[("comment", "added to group")])
            .status,
        303
    );
    let mut reviewer = Browser::new(&server);
    reviewer.sign_in(&tokens[3]);
    let reviewed = reviewer.submit(
        &case,
        "review-form",
        &[("outcome", "confirmed"), ("comment", "matches")],
    );
    assert_eq!(reviewed.status, 303, "{}", reviewed.text);
    let shown = server.show(&server.admin_token, &case);
    assert_eq!(shown["state"], "reviewed");
    let events = shown["events"].as_array().unwrap();
    let steps: Vec<(&str, &str, &str)> = events
        .iter()
        .filter(|event| {
            [
                "request_created",
                "approval_granted",
                "execution_completed",
                "review_completed",
            ]
            .contains(&event["kind"].as_str().unwrap_or(""))
        })
        .map(|event| {
            (
                event["kind"].as_str().unwrap(),
                event["actor"]["principal"].as_str().unwrap(),
                event["actor"]["via"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(steps.len(), 4, "{events:#?}");
    for ((_, principal, via), expected) in
        steps
            .iter()
            .zip(["requester", "approver", "executor", "reviewer"])
    {
        assert_eq!(*principal, expected);
        assert_eq!(*via, "web");
    }
    for event in events.iter().filter(|event| event["actor"]["via"] == "web") {
        assert_eq!(event["actor"]["auth"]["method"], "token", "{event}");
    }
    // The page shows the whole timeline and the proof, verified by the server.
    let page = reviewer.get(&format!("/cases/{case}"));
    assert!(
        page.text.contains("Verified by the server"),
        "{}",
        page.text
    );
    assert_eq!(
        page.text.matches("<tr class=\"proof\"").count(),
        events.len()
    );
    assert_eq!(page.text.matches("data-via=\"web\"").count(), 4);
    // A form sent twice (its idempotency key) records one step.
    let comment_page = reviewer.get(&format!("/cases/{case}"));
    let csrf = comment_page.field_after("id=\"comment-form\"", "csrf");
    let key = comment_page.field_after("id=\"comment-form\"", "idempotency_key");
    let path = format!("/cases/{case}/comment");
    let size = server.log_size();
    for _ in 0..2 {
        assert_eq!(
            reviewer
                .post(
                    &path,
                    &[
                        ("csrf", &csrf),
                        ("idempotency_key", &key),
                        ("comment", "twice")
                    ]
                )
                .status,
            303
        );
    }
    assert_eq!(server.log_size(), size + 1);
}

#[test]
fn a_self_approval_is_refused_with_its_rule_shown() {
    let server = start();
    let alice = server.principal("alice");
    let mut browser = Browser::new(&server);
    browser.sign_in(&alice);
    let case = browser.request("carol", "db-read", "needed");
    let before = server.log_size();
    let refused = browser.submit(&case, "approve-form", &[]);
    assert_eq!(refused.status, 403, "{}", refused.text);
    let rule = custody_core::Code::SodRequesterCannotApprove.as_str();
    assert!(
        refused
            .text
            .contains(&format!("id=\"refusal-rule\">{rule}<")),
        "{}",
        refused.text
    );
    assert!(refused.text.contains("Nothing was recorded."));
    assert_eq!(server.log_size(), before);
}

#[test]
fn the_evidence_preview_never_serves_html_inline() {
    let server = start();
    let alice = server.principal("alice");
    let case = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:carol",
            "--entitlement",
            "db-read",
        ],
    );
    let case = case.trim();
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("page.html");
    std::fs::write(
        &html,
        "<!doctype html><html><body><script>alert(1)</script></body></html>",
    )
    .unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "plain notes \u{202e} here").unwrap();
    server.cli_ok(&alice, &["attach", case, html.to_str().unwrap()]);
    server.cli_ok(&alice, &["attach", case, text.to_str().unwrap()]);
    let mut browser = Browser::new(&server);
    browser.sign_in(&alice);
    let page = browser.get(&format!("/cases/{case}"));
    assert!(
        page.text.contains("plain notes <span class=\"esc\""),
        "{}",
        page.text
    );
    let links: Vec<String> = page
        .text
        .match_indices(&format!("href=\"/cases/{case}/evidence/"))
        .map(|(at, _)| {
            let rest = &page.text[at + 6..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect();
    assert_eq!(links.len(), 2, "{}", page.text);
    for link in links {
        let blob = browser.get(&link);
        assert_eq!(blob.status, 200, "{link}: {}", blob.text);
        let content_type = blob.header("content-type");
        assert!(
            !content_type.contains("html"),
            "{link} served as {content_type}"
        );
        assert!(
            blob.header("content-disposition").starts_with("attachment"),
            "{link}"
        );
        assert!(
            blob.header("content-security-policy").contains("sandbox"),
            "{link}"
        );
        assert_eq!(blob.header("x-content-type-options"), "nosniff");
    }
}

#[test]
fn the_inbox_lists_exactly_what_the_principal_may_act_on() {
    let server = start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let request = |token: &str, subject: &str| {
        server
            .cli_ok(
                token,
                &[
                    "request",
                    "--subject",
                    &format!("user:{subject}"),
                    "--entitlement",
                    "db-read",
                ],
            )
            .trim()
            .to_string()
    };
    let alices = request(&alice, "x1");
    let bobs = request(&bob, "x2");
    let approved = request(&alice, "x3");
    server.cli_ok(&bob, &["approve", &approved]);
    let executed = request(&alice, "x4");
    server.cli_ok(&carol, &["approve", &executed]);
    server.cli_ok(&bob, &["execute", &executed]);
    let inbox = |token: &str| {
        let mut browser = Browser::new(&server);
        browser.sign_in(token);
        browser.get("/").text
    };
    let listed =
        |html: &str, section: &str, case: &str| html.contains(&format!("id=\"{section}-{case}\""));
    let for_alice = inbox(&alice);
    assert!(
        !listed(&for_alice, "approvals", &alices),
        "alice may not approve her own request"
    );
    assert!(listed(&for_alice, "approvals", &bobs));
    assert!(
        listed(&for_alice, "executions", &approved),
        "the requester may execute a case someone else approved"
    );
    assert!(
        !listed(&for_alice, "reviews", &executed),
        "the requester may not review"
    );
    let for_bob = inbox(&bob);
    assert!(listed(&for_bob, "approvals", &alices));
    assert!(!listed(&for_bob, "approvals", &bobs));
    assert!(
        !listed(&for_bob, "executions", &approved),
        "bob, the only approver, may not execute"
    );
    assert!(
        !listed(&for_bob, "reviews", &executed),
        "the executor may not review"
    );
    let for_carol = inbox(&carol);
    assert!(listed(&for_carol, "approvals", &alices));
    assert!(listed(&for_carol, "approvals", &bobs));
    assert!(listed(&for_carol, "executions", &approved));
    assert!(
        listed(&for_carol, "reviews", &executed),
        "an approver who neither requested nor executed may review"
    );
    assert!(
        !listed(&for_carol, "approvals", &executed),
        "an executed case needs no more approvals"
    );
}

#[test]
fn api_paths_still_answer_problem_documents() {
    let server = start();
    let response = server.http(
        "GET",
        "/v1/nothing-here",
        None,
        &[("accept", "text/html")],
        Body::None,
    );
    assert_eq!(response.status, 404);
    assert_eq!(
        response.content_type.as_deref(),
        Some("application/problem+json")
    );
}

#[test]
fn search_filters_by_subject_entitlement_principal_ticket_and_state_and_pages() {
    let server = start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let mut cases = Vec::new();
    for index in 0..55 {
        let subject = format!("user:s{index}");
        let case = server.cli_ok(
            &alice,
            &[
                "request",
                "--subject",
                &subject,
                "--entitlement",
                "wiki-read",
            ],
        );
        cases.push(case.trim().to_string());
    }
    let ticketed = server
        .cli_ok(
            &bob,
            &[
                "request",
                "--subject",
                "user:zed",
                "--entitlement",
                "db-admin",
                "--ticket",
                "JIRA:SEC-7",
            ],
        )
        .trim()
        .to_string();
    server.cli_ok(&alice, &["approve", &ticketed]);
    let mut browser = Browser::new(&server);
    browser.sign_in(&alice);
    let count = |page: &Page| {
        page.text
            .matches("<td><a class=\"mono\" href=\"/cases/")
            .count()
    };
    let first = browser.get("/cases?entitlement=wiki-read");
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(count(&first), 50);
    let next = first
        .text
        .split("rel=\"next\" href=\"")
        .nth(1)
        .map(|rest| rest[..rest.find('"').unwrap()].replace("&amp;", "&"))
        .expect("a next page");
    let second = browser.get(&next);
    assert_eq!(count(&second), 5, "{}", second.text);
    for (query, expected) in [
        ("subject=s7", 1),
        ("subject=user:s7", 1),
        ("principal=bob", 1),
        ("principal=alice&state=approved", 1),
        ("ticket=JIRA:SEC-7", 1),
        ("state=approved", 1),
        ("entitlement=db-admin&principal=nobody", 0),
        ("from=2000-01-01&to=2100-01-01&entitlement=db-admin", 1),
    ] {
        let page = browser.get(&format!("/cases?{query}"));
        assert_eq!(page.status, 200, "{query}: {}", page.text);
        assert_eq!(count(&page), expected, "{query}");
        if expected == 1 && !query.contains("subject") {
            assert!(page.text.contains(&ticketed), "{query}");
        }
    }
    let bad = browser.get("/cases?from=yesterday");
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("is not a date"), "{}", bad.text);
}

#[test]
fn the_readiness_dashboard_shows_the_reports_verdict_and_charts() {
    let server = start();
    let alice = server.principal("alice");
    server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:carol",
            "--entitlement",
            "db-read",
        ],
    );
    let mut browser = Browser::new(&server);
    browser.sign_in(&alice);
    let page = browser.get("/readiness");
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("id=\"verdict\""), "{}", page.text);
    assert!(
        page.text.contains("<svg id=\"chart-findings-by-control\""),
        "{}",
        page.text
    );
    assert!(page.text.contains("Computed at "));
    check_headers(&page, "/readiness");
}

#[test]
fn the_auditor_view_is_for_auditors_and_downloads_exports_and_proofs() {
    let server = start();
    let alice = server.principal("alice");
    let auditor = server.principal_with("audrey", &["--group", "auditors"]);
    let case = server
        .cli_ok(
            &alice,
            &[
                "request",
                "--subject",
                "user:carol",
                "--entitlement",
                "db-read",
            ],
        )
        .trim()
        .to_string();
    let mut outsider = Browser::new(&server);
    outsider.sign_in(&alice);
    assert_eq!(outsider.get("/audit").status, 403);
    assert_eq!(outsider.get("/audit/export?format=jsonl").status, 403);
    assert!(!outsider.get("/").text.contains("href=\"/audit\""));
    let mut browser = Browser::new(&server);
    browser.sign_in(&auditor);
    assert_eq!(browser.get("/audit").status, 200);
    let export = browser.get(&format!("/audit/export?format=jsonl&case={case}&since=0"));
    assert_eq!(export.status, 200, "{}", export.text);
    assert!(export
        .header("content-disposition")
        .starts_with("attachment"));
    let lines: Vec<serde_json::Value> = export
        .text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(!lines.is_empty());
    assert!(export.text.contains(&case));
    let proof = browser.get(&format!("/audit/proof?case={case}"));
    assert_eq!(proof.status, 200);
    let bundle: serde_json::Value = serde_json::from_str(&proof.text).unwrap();
    assert_eq!(bundle["case_id"], case.as_str());
    assert!(!bundle["events"].as_array().unwrap().is_empty());
}

#[test]
fn sessions_inbox_and_search_hold_on_postgres_too() {
    let server = Server::start_in_process(TestStore::Postgres, None).0;
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let mut requester = Browser::new(&server);
    requester.sign_in(&alice);
    let case = requester.request("carol", "db-read", "postgres");
    let mut approver = Browser::new(&server);
    approver.sign_in(&bob);
    assert!(approver
        .get("/")
        .text
        .contains(&format!("id=\"approvals-{case}\"")));
    assert_eq!(approver.submit(&case, "approve-form", &[]).status, 303);
    let found = approver.get("/cases?principal=bob&state=approved");
    assert!(found.text.contains(&case), "{}", found.text);
    let inbox = approver.get("/");
    let csrf = inbox.field_after("action=\"/sign-out\"", "csrf");
    let stolen = approver.cookies["custody_session"].clone();
    assert_eq!(approver.post("/sign-out", &[("csrf", &csrf)]).status, 303);
    approver
        .cookies
        .insert("custody_session".to_string(), stolen);
    assert_eq!(approver.get("/").status, 303);
}

#[test]
fn a_refused_request_form_comes_back_as_typed_and_line_breaks_are_recorded_as_typed() {
    let server = start();
    let alice = server.principal("alice");
    let mut browser = Browser::new(&server);
    browser.sign_in(&alice);
    let form = browser.get("/request");
    let csrf = form.field_after("id=\"request-form\"", "csrf");
    let key = form.field_after("id=\"request-form\"", "idempotency_key");
    let typed = "first line\r\nsecond \u{200f}line\tend";
    let fields = |ticket: &'static str| -> [(&'static str, String); 8] {
        [
            ("csrf", csrf.clone()),
            ("idempotency_key", key.clone()),
            ("subject_kind", "user".to_string()),
            ("subject_id", "dana".to_string()),
            ("entitlement", "db-read".to_string()),
            ("change", "grant".to_string()),
            ("ticket", ticket.to_string()),
            ("justification", typed.to_string()),
        ]
    };
    let borrowed =
        |fields: &[(&'static str, String)]| -> Vec<(&'static str, String)> { fields.to_vec() };
    let before = server.log_size();
    let bad = borrowed(&fields("not a ticket"));
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = browser.post("/request", &bad);
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(server.log_size(), before);
    // The form holds exactly what was typed (HTML-escaped by the template,
    // never rewritten into visible escapes that would then be recorded).
    assert!(
        refused
            .text
            .contains(&format!("name=\"justification\">{typed}</textarea>")),
        "{}",
        refused.text
    );
    assert!(
        refused.text.contains("value=\"not a ticket\""),
        "{}",
        refused.text
    );
    // Sent again with the ticket fixed: the justification is recorded as
    // typed, its CRLF (HTML's form encoding of a line break) as LF.
    let good = borrowed(&fields("jira:SEC-1"));
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let opened = browser.post("/request", &good);
    assert_eq!(opened.status, 303, "{}", opened.text);
    let case = opened
        .location()
        .strip_prefix("/cases/")
        .unwrap()
        .to_string();
    let shown = server.show(&server.admin_token, &case);
    assert_eq!(
        shown["events"][0]["payload"]["justification"],
        "first line\nsecond \u{200f}line\tend"
    );
    // The case page keeps the line break and shows the mark escaped.
    let page = browser.get(&format!("/cases/{case}"));
    assert!(
        page.text.contains("first line\nsecond <span class=\"esc\""),
        "{}",
        page.text
    );
}

#[test]
fn a_form_posted_after_the_session_ended_returns_to_its_case_page() {
    let server = start();
    let mut browser = Browser::new(&server);
    let answer = browser.post("/cases/AC-0123/comment", &[("comment", "hi")]);
    assert_eq!(answer.status, 303);
    assert_eq!(answer.location(), "/sign-in?return_to=/cases/AC-0123");
    let answer = browser.post("/request", &[]);
    assert_eq!(answer.location(), "/sign-in?return_to=/");
}

#[test]
fn a_wrong_method_on_a_console_path_carries_the_security_headers() {
    let server = start();
    let mut browser = Browser::new(&server);
    for path in ["/cases/AC-0123/approve", "/sign-out"] {
        let page = browser.get(path);
        assert_eq!(page.status, 405, "{path}");
        check_headers(&page, path);
    }
}

#[test]
fn a_second_sign_in_tab_does_not_invalidate_the_first() {
    let server = start();
    let alice = server.principal("alice");
    let mut browser = Browser::new(&server);
    let first = browser.get("/sign-in");
    let first_csrf = first.field_after("action=\"/sign-in\"", "csrf");
    let second = browser.get("/sign-in");
    assert_eq!(
        second.field_after("action=\"/sign-in\"", "csrf"),
        first_csrf
    );
    let signed_in = browser.post(
        "/sign-in",
        &[("token", &alice), ("csrf", &first_csrf), ("return_to", "/")],
    );
    assert_eq!(signed_in.status, 303, "{}", signed_in.text);
}

#[test]
fn a_short_idle_timeout_keeps_an_active_session() {
    let (server, _) = Server::start_in_process(
        TestStore::Embedded,
        Some("[console]\nidle_timeout_seconds = 60\nlifetime_seconds = 300\n"),
    );
    let alice = server.principal("alice");
    let mut browser = Browser::new(&server);
    browser.sign_in(&alice);
    // A request every 30 s keeps it for longer than the idle timeout.
    for _ in 0..6 {
        server.clock().advance_seconds(30);
        assert_eq!(browser.get("/").status, 200);
    }
    server.clock().advance_seconds(61);
    assert_eq!(browser.get("/").status, 303);
}

#[test]
fn recompute_now_runs_one_audit_for_clicks_close_together() {
    let server = start();
    let alice = server.principal("alice");
    let mut browser = Browser::new(&server);
    browser.sign_in(&alice);
    let made_at = |browser: &mut Browser| {
        let page = browser.get("/readiness");
        assert_eq!(page.status, 200);
        page.field_after("action=\"/readiness\"", "csrf");
        let start = page
            .text
            .find("id=\"made-at\"")
            .expect("the report says when it was made");
        page.text[start..start + 120].to_string()
    };
    let before = made_at(&mut browser);
    server.clock().advance_seconds(10);
    let page = browser.get("/readiness");
    let csrf = page.field_after("action=\"/readiness\"", "csrf");
    assert_eq!(browser.post("/readiness", &[("csrf", &csrf)]).status, 303);
    assert_eq!(made_at(&mut browser), before, "recomputed within 30 s");
    server.clock().advance_seconds(31);
    assert_eq!(browser.post("/readiness", &[("csrf", &csrf)]).status, 303);
    assert_ne!(made_at(&mut browser), before, "not recomputed after 30 s");
}
