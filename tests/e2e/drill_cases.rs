//! Drill cases (`custody drill`, the `drill` flag recorded in the case's
//! request) are left out of listings, line exports (over HTTP and read
//! directly) and push sinks unless asked for, are always in bundles (the
//! trail is whole), and a flag flipped behind the store's back is found by
//! `verify`.

use crate::common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use common::tamper::{self, Db};
use common::{stdout, wait_until, Body, Server, TestStore};
use serde_json::{json, Value};

/// Opens a drill case over HTTP as the admin and returns its ID.
fn drill_case(server: &Server, subject: &str) -> String {
    let response = server.http(
        "POST",
        "/v1/cases",
        Some(&server.admin_token),
        &[],
        Body::Json(json!({
            "subject": {"kind": "user", "id": subject},
            "entitlement": "drill:db-read",
            "justification": "readiness drill",
            "drill": true,
        })),
    );
    assert_eq!(response.status, 201, "{}", response.text);
    response.json["case_id"].as_str().unwrap().to_string()
}

/// The case IDs of the lines of a JSON-lines export.
fn case_ids(lines: &str) -> Vec<String> {
    lines
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap();
            value["case_id"].as_str().unwrap().to_string()
        })
        .collect()
}

fn export(server: &Server, args: &[&str]) -> String {
    let output = common::command()
        .arg("export")
        .args(["--format", "jsonl"])
        .args(args)
        .output()
        .unwrap();
    common::assert_success(&output, "custody export");
    let _ = server;
    stdout(&output)
}

fn lines_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn drill_cases_are_left_out_of_listings_exports_and_sinks_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("events.jsonl");
    // A webhook channel whose receiver keeps every notification (a
    // CloudEvent, the notification in its `data`).
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = seen.clone();
    let receiver = common::HttpStub::serve(
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    kept.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    "ok"
                }
            }),
        ),
        1,
    );
    let config = format!(
        "[notify]\npoll_interval_ms = 50\n\
         [[notify.channels]]\ntype = \"webhook\"\nname = \"hooks\"\nurl = \"{}/hook\"\nsecret = \"a long random webhook secret\"\n\
         [notify.routes]\napprovers = [\"hooks\"]\n\
         [export]\npoll_interval_ms = 50\n\
         [[export.sinks]]\nkind = \"file\"\nname = \"archive\"\npath = \"{}\"\n",
        receiver.base,
        sink.display()
    );
    let (server, _) = Server::start_on(TestStore::Embedded, None, Some(&config));
    let alice = server.principal("alice");
    let request = |subject: &str| {
        server
            .cli_ok(
                &alice,
                &["request", "--subject", subject, "--entitlement", "db-read"],
            )
            .trim()
            .to_string()
    };
    let before = request("user:ann");
    let drill = drill_case(&server, "drill-run-1-ann");
    let after = request("user:bob");

    // The request records the flag; a real one does not carry it at all.
    let events = server.events(&server.admin_token, &drill);
    assert_eq!(events[0]["payload"]["drill"], true, "{:?}", events[0]);
    let real = server.events(&server.admin_token, &before);
    assert!(real[0]["payload"].get("drill").is_none(), "{:?}", real[0]);
    assert_eq!(
        server.show(&server.admin_token, &drill)["view"]["drill"],
        true
    );

    // Its notifications are real, and say first that it is a drill.
    let about = |case: &str| -> Value {
        let mut found = Value::Null;
        wait_until("the notification", || {
            found = seen
                .lock()
                .unwrap()
                .iter()
                .find(|sent| sent["data"]["case_id"] == case)
                .map(|sent| sent["data"].clone())
                .unwrap_or(Value::Null);
            !found.is_null()
        });
        found
    };
    let drill_notice = about(&drill);
    assert!(
        drill_notice["title"]
            .as_str()
            .unwrap()
            .starts_with("[DRILL] "),
        "{drill_notice}"
    );
    assert_eq!(drill_notice["drill"], true, "{drill_notice}");
    let real_notice = about(&before);
    assert!(!real_notice["title"].as_str().unwrap().contains("DRILL"));
    assert!(real_notice.get("drill").is_none(), "{real_notice}");

    // Listings.
    let listed = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["cases"];
        args.extend_from_slice(extra);
        server.cli_json(&alice, &args)["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|case| case["case_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(listed(&[]), vec![after.clone(), before.clone()]);
    assert_eq!(
        listed(&["--include-drills"]),
        vec![after.clone(), drill.clone(), before.clone()]
    );
    let table = server.cli_ok(&alice, &["cases", "--include-drills"]);
    let drill_row = table.lines().find(|line| line.contains(&drill)).unwrap();
    assert!(drill_row.contains("[drill]"), "{table}");
    assert!(!server.cli_ok(&alice, &["cases"]).contains(&drill));

    // Line exports, over HTTP and read directly.
    let data = server.data.display().to_string();
    for source in [
        vec![
            "--url",
            server.url.as_str(),
            "--token",
            server.admin_token.as_str(),
        ],
        vec!["--data", data.as_str()],
    ] {
        let plain = case_ids(&export(&server, &source));
        assert!(!plain.contains(&drill), "{source:?}: {plain:?}");
        assert!(plain.contains(&before) && plain.contains(&after));
        let mut with = source.clone();
        with.push("--include-drills");
        let all = case_ids(&export(&server, &with));
        assert!(all.contains(&drill), "{source:?}: {all:?}");
        let without: Vec<String> = all.iter().filter(|id| **id != drill).cloned().collect();
        assert_eq!(without, plain, "only the drill's events are left out");
        // A page that starts after the drill's request still knows it.
        let mut only = source.clone();
        only.extend(["--case", drill.as_str()]);
        assert!(export(&server, &only).is_empty());
    }

    // The push sink: the real cases' events, before and after the drill's,
    // and nothing of the drill's.
    let last = server.events(&alice, &after)[0]["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until("the last request in the sink", || {
        lines_of(&sink)
            .iter()
            .any(|line| line["event_id"] == last.as_str())
    });
    let pushed: Vec<String> = lines_of(&sink)
        .iter()
        .map(|line| line["case_id"].as_str().unwrap().to_string())
        .collect();
    assert!(!pushed.contains(&drill), "{pushed:?}");
    assert!(pushed.contains(&before));

    // A bundle is the whole trail: it holds the drill case.
    server.sign_checkpoint();
    let bundle = dir.path().join("all.bundle");
    let output = common::command()
        .args(["export", "--format", "bundle", "--data", &data, "--out"])
        .arg(&bundle)
        .output()
        .unwrap();
    common::assert_success(&output, "export bundle");
    use base64::Engine as _;
    let bundled: Vec<String> = std::fs::read_to_string(&bundle)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["type"] == "event")
        .map(|line| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(line["event"].as_str().unwrap())
                .unwrap();
            serde_json::from_slice::<Value>(&bytes).unwrap()["case_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(bundled.contains(&drill), "{bundled:?}");
    // The readiness statistics count the two real requests as cases, and
    // the drill's case apart: a drill never skews the real figures.
    let report = server.assert_verify_ok();
    let stats = &report["stats"];
    let total = |counts: &Value| -> u64 {
        counts
            .as_object()
            .unwrap()
            .values()
            .map(|count| count.as_u64().unwrap())
            .sum()
    };
    assert_eq!(total(&stats["cases_by_state"]), 2, "{stats:#}");
    assert_eq!(stats["drill_cases"], 1, "{stats:#}");
    assert_eq!(total(&stats["drill_cases_by_state"]), 1, "{stats:#}");
}

#[test]
fn a_drill_flag_flipped_behind_the_store_is_found_by_verify() {
    let mut server = Server::start();
    let alice = server.principal("alice");
    let real = server
        .cli_ok(
            &alice,
            &[
                "request",
                "--subject",
                "user:ann",
                "--entitlement",
                "db-read",
            ],
        )
        .trim()
        .to_string();
    let drill = drill_case(&server, "drill-run-2-ann");
    server.stop();
    for (case, flag) in [(&real, 1), (&drill, 0)] {
        let copy = tamper::copy_of(&server.data);
        // Hiding a real case from listings and exports, or showing a drill
        // as real, both rewrite only the projection's column.
        Db::open(copy.path()).run(&format!(
            "UPDATE cases SET drill = {flag} WHERE case_id = '{case}'"
        ));
        let (_, findings) = tamper::verify_fails(copy.path(), &[]);
        assert!(
            findings
                .iter()
                .any(|finding| finding["code"] == "case.projection-mismatch"
                    && finding["case_id"] == case.as_str()),
            "{findings:?}"
        );
    }
}

/// A drill case changes only the drills' namespace, so marking a case as a
/// drill can never hide a real access change; a drill's case never answers
/// for a real request with the same ticket, and never merges with a real
/// case.
#[test]
fn a_drill_case_cannot_carry_a_real_change_nor_swallow_a_real_request() {
    let server = Server::start();
    let admin = server.admin_token.clone();
    let mallory = server.principal_with("mallory", &["--group", "drills"]);
    let before = server.log_size();
    for (path, token, body) in [
        (
            "/v1/cases",
            &admin,
            json!({"subject": {"kind": "user", "id": "alice"}, "entitlement": "prod:admin", "drill": true}),
        ),
        (
            "/v1/break-glass",
            &mallory,
            json!({"subject": {"kind": "user", "id": "mallory"}, "entitlement": "prod:root",
                   "justification": "drill", "drill": true}),
        ),
        (
            "/v1/cases",
            &mallory,
            json!({"subject": {"kind": "user", "id": "drill-x"}, "entitlement": "prod:root", "drill": true}),
        ),
    ] {
        let response = server.http("POST", path, Some(token), &[], Body::Json(body));
        assert_eq!(response.status, 403, "{path}: {}", response.text);
        assert_eq!(
            response.json["rule"], "drill.not-allowed",
            "{}",
            response.text
        );
    }
    assert_eq!(server.log_size(), before, "a refused drill records nothing");

    // The same ticket: a real request opens its own case.
    let drill = server.http(
        "POST",
        "/v1/cases",
        Some(&mallory),
        &[],
        Body::Json(json!({"subject": {"kind": "user", "id": "drill-run-3-ann"},
            "entitlement": "drill:access", "ticket": "itsm:SEC-9", "drill": true})),
    );
    assert_eq!(drill.status, 201, "{}", drill.text);
    let drill = drill.json["case_id"].as_str().unwrap().to_string();
    let alice = server.principal("alice");
    let real = server.cli_json(
        &alice,
        &[
            "request",
            "--subject",
            "user:bob",
            "--entitlement",
            "db-read",
            "--ticket",
            "itsm:SEC-9",
        ],
    );
    let real = real["case_id"].as_str().unwrap().to_string();
    assert_ne!(
        real, drill,
        "the real request was swallowed by the drill's case"
    );
    // Never merged, either way.
    for (duplicate, into) in [(&real, &drill), (&drill, &real)] {
        let output = server.cli(
            Some(&admin),
            &["merge", duplicate, "--into", into, "--comment", "same need"],
        );
        common::assert_refused(&output, "merge.not-allowed");
    }
}
