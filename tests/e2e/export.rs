//! `custody export` and `GET /v1/export` against real stores: every event
//! kind a ledger holds, in every line format; resumed exports with no gap
//! and no duplicate (with and without a case filter, on both stores);
//! exports over HTTP for auditors only; bad input that writes nothing; and
//! the progress bar, drawn on a terminal and never in a pipe.

use crate::common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use common::{stderr, stdout, Server, TestStore, STORES};
use custody_export::Format;
use serde_json::Value;

/// Where an export reads the ledger directly.
fn ledger_args(server: &Server) -> Vec<String> {
    match &server.database {
        Some(database) => vec!["--database-url".into(), database.url.clone()],
        None => vec!["--data".into(), server.data.display().to_string()],
    }
}

/// Runs `custody export` on the server's ledger, directly.
fn export_direct(server: &Server, args: &[&str]) -> Output {
    let mut command = common::command();
    command.arg("export").args(ledger_args(server)).args(args);
    command.output().expect("run custody export")
}

/// An export that must succeed: its standard output and the cursor it
/// printed to resume from.
#[track_caller]
fn exported(output: &Output) -> (String, u64) {
    common::assert_success(output, "custody export");
    let text = stderr(output);
    let cursor = text
        .lines()
        .find_map(|line| line.strip_prefix("next cursor: "))
        .unwrap_or_else(|| panic!("no `next cursor:` line in {text:?}"))
        .parse()
        .unwrap();
    (stdout(output), cursor)
}

/// Opens cases whose events interleave in the log, so that a cut anywhere
/// falls inside some case's trail. Returns the case IDs.
fn interleaved_cases(server: &Server) -> Vec<String> {
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let dave = server.principal("dave");
    let mut cases = Vec::new();
    for index in 0..3 {
        let case = server.cli_ok(
            &alice,
            &[
                "request",
                "--subject",
                &format!("user:subject{index}"),
                "--entitlement",
                "db-admin",
            ],
        );
        cases.push(case.trim().to_string());
    }
    for case in &cases {
        server.cli_ok(&bob, &["approve", case]);
    }
    for case in &cases {
        server.cli_ok(&carol, &["execute", case]);
        server.cli_ok(
            &alice,
            &["comment", case, "executed | as=planned \\ \"ok\""],
        );
    }
    for case in &cases {
        server.cli_ok(&dave, &["review", case, "--outcome", "confirmed"]);
    }
    cases
}

#[test]
fn a_resumed_export_has_no_gap_and_no_duplicate() {
    for store in STORES {
        let server = Server::start_on(store, None, None).0;
        let cases = interleaved_cases(&server);
        let size = server.log_size();
        for format in Format::ALL {
            let format = format.name();
            let (whole, end) = exported(&export_direct(&server, &["--format", format]));
            assert_eq!(
                end, size,
                "{store:?} {format}: the cursor after a whole export"
            );
            assert_eq!(
                whole.lines().count() as u64,
                size,
                "{store:?} {format}: one line per event"
            );
            // Every cut: the export up to it, then the one resumed from the
            // cursor it printed, is the whole export, byte for byte. The
            // resumed part attaches the roles of cases begun before the cut
            // from the store, so the lines are the same too.
            // Every cut for the formats that carry the case's roles (the
            // resumed half must find them in the store); a few for the rest.
            let every = if matches!(format, "ocsf" | "syslog") {
                1
            } else {
                5
            };
            for cut in (0..=size).filter(|cut| cut % every == 0 || *cut == size) {
                let (head, cursor) = exported(&export_direct(
                    &server,
                    &["--format", format, "--until", &cut.to_string()],
                ));
                assert_eq!(cursor, cut);
                let (tail, end) = exported(&export_direct(
                    &server,
                    &["--format", format, "--since", &cursor.to_string()],
                ));
                assert_eq!(end, size);
                assert_eq!(
                    format!("{head}{tail}"),
                    whole,
                    "{store:?} {format}: cut at {cut}"
                );
            }
            // The same with a case filter: one case's trail, cut anywhere.
            let case = &cases[1];
            let (trail, end) = exported(&export_direct(
                &server,
                &["--format", format, "--case", case],
            ));
            assert_eq!(end, size);
            assert_eq!(
                trail.lines().count(),
                5,
                "{format}: request, approval, execution, comment, review"
            );
            assert!(trail.lines().all(|line| line.contains(case.as_str())));
            for cut in (0..=size).filter(|cut| cut % every == 0 || *cut == size) {
                let (head, cursor) = exported(&export_direct(
                    &server,
                    &[
                        "--format",
                        format,
                        "--case",
                        case,
                        "--until",
                        &cut.to_string(),
                    ],
                ));
                let (tail, _) = exported(&export_direct(
                    &server,
                    &[
                        "--format",
                        format,
                        "--case",
                        case,
                        "--since",
                        &cursor.to_string(),
                    ],
                ));
                assert_eq!(
                    format!("{head}{tail}"),
                    trail,
                    "{format}: case cut at {cut}"
                );
            }
        }
    }
}

#[test]
fn a_resumed_export_misses_nothing_appended_meanwhile() {
    let server = Server::start();
    let cases = interleaved_cases(&server);
    let (first, cursor) = exported(&export_direct(&server, &["--format", "jsonl"]));
    // The log grows after the first export; the resumed one has exactly
    // what was appended since.
    let alice_token = server.principal("erin");
    server.cli_ok(&alice_token, &["comment", &cases[0], "later"]);
    let (second, end) = exported(&export_direct(
        &server,
        &["--format", "jsonl", "--since", &cursor.to_string()],
    ));
    assert_eq!(end, server.log_size());
    let (whole, _) = exported(&export_direct(&server, &["--format", "jsonl"]));
    assert_eq!(format!("{first}{second}"), whole);
    assert!(second.contains("\"later\""), "{second}");
}

/// One page of `GET /v1/export` as `token`.
fn export_page(server: &Server, token: Option<&str>, query: &str) -> common::Response {
    server.http(
        "GET",
        &format!("/v1/export?{query}"),
        token,
        &[],
        common::Body::None,
    )
}

#[test]
fn exports_over_http_are_for_auditors() {
    let server = Server::start();
    let cases = interleaved_cases(&server);
    let auditor = server.principal_with("audrey", &["--group", "auditors"]);
    let outsider = server.principal("oscar");
    let size = server.log_size();
    let (direct, _) = exported(&export_direct(&server, &["--format", "ocsf"]));

    // Pages of three log entries, followed by their cursors, make up the
    // direct export byte for byte.
    let mut body = String::new();
    let mut cursor = 0;
    let mut until: Option<u64> = None;
    loop {
        let mut query = format!("format=ocsf&limit=3&since={cursor}");
        if let Some(until) = until {
            query.push_str(&format!("&until={until}"));
        }
        let page = export_page(&server, Some(&auditor), &query);
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(page.content_type.as_deref(), Some("application/x-ndjson"));
        let next: u64 = page.header("custody-next-cursor").unwrap().parse().unwrap();
        let end: u64 = page.header("custody-export-end").unwrap().parse().unwrap();
        assert_eq!(end, size);
        assert_eq!(next, (cursor + 3).min(size));
        assert_eq!(page.text.lines().count() as u64, next - cursor);
        body.push_str(&page.text);
        cursor = next;
        until = Some(end);
        if next == end {
            break;
        }
    }
    assert_eq!(body, direct);

    // The CLI over HTTP writes the same bytes as the direct export, for
    // an auditor and for an admin.
    for token in [&auditor, &server.admin_token] {
        let output = server.cli(Some(token), &["export", "--format", "ocsf"]);
        let (text, next) = exported(&output);
        assert_eq!(text, direct);
        assert_eq!(next, size);
    }
    let output = server.cli(
        Some(&auditor),
        &["export", "--format", "syslog", "--case", &cases[2]],
    );
    let (text, _) = exported(&output);
    let (direct_case, _) = exported(&export_direct(
        &server,
        &["--format", "syslog", "--case", &cases[2]],
    ));
    assert_eq!(text, direct_case);

    // Anyone else: 403, no token: 401, both as problem+json; the CLI exits 1
    // (refused) and writes nothing.
    let refused = export_page(&server, Some(&outsider), "format=jsonl");
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(
        refused.content_type.as_deref(),
        Some("application/problem+json")
    );
    assert!(
        refused.json["detail"]
            .as_str()
            .unwrap()
            .contains("auditors"),
        "{}",
        refused.text
    );
    let anonymous = export_page(&server, None, "format=jsonl");
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.content_type.as_deref(),
        Some("application/problem+json")
    );
    let output = server.cli(Some(&outsider), &["export", "--format", "jsonl"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(output.stdout.is_empty());

    // Bad queries are 400s (a case that does not exist, 404).
    for query in [
        "format=xml",
        "format=bundle",
        "format=jsonl&since=999999",
        "format=jsonl&since=3&until=2",
        "format=jsonl&limit=0",
        "format=jsonl&case=AC-nope",
    ] {
        let page = export_page(&server, Some(&auditor), query);
        assert_eq!(page.status, 400, "{query}: {}", page.text);
        assert_eq!(
            page.content_type.as_deref(),
            Some("application/problem+json")
        );
    }
    // An unknown parameter is refused, by name, not ignored: a misspelt
    // filter would otherwise export every case.
    for (query, name) in [
        (
            "format=jsonl&cases=AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b71",
            "cases",
        ),
        ("format=jsonl&sinse=5", "sinse"),
    ] {
        let page = export_page(&server, Some(&auditor), query);
        assert_eq!(page.status, 400, "{query}: {}", page.text);
        assert_eq!(
            page.content_type.as_deref(),
            Some("application/problem+json")
        );
        let detail = page.json["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("unknown field `{name}`")),
            "{query}: {}",
            page.text
        );
    }
    let unknown = export_page(
        &server,
        Some(&auditor),
        "format=jsonl&case=AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b71",
    );
    assert_eq!(unknown.status, 404, "{}", unknown.text);

    // A problem's detail is one line in the API's own words; the hint is
    // its own member, and the CLI over HTTP prints it on its own line.
    let beyond = export_page(&server, Some(&auditor), "format=jsonl&since=999999");
    let detail = beyond.json["detail"].as_str().unwrap();
    assert!(!detail.contains('\n'), "{}", beyond.text);
    assert!(
        detail.contains("cursor 999999 is beyond the end of the log"),
        "{}",
        beyond.text
    );
    assert!(
        beyond.json["hint"]
            .as_str()
            .unwrap()
            .contains("next cursor"),
        "{}",
        beyond.text
    );
    let wrong_way = export_page(&server, Some(&auditor), "format=jsonl&since=3&until=2");
    let detail = wrong_way.json["detail"].as_str().unwrap();
    assert!(!detail.contains("--"), "{}", wrong_way.text);
    let output = server.cli(
        Some(&auditor),
        &["export", "--format", "jsonl", "--since", "999999"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("\nhint: resume with the cursor"),
        "{}",
        stderr(&output)
    );
}

/// Every file in `directory` with its bytes.
fn files(directory: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap_or_default(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn bad_input_writes_nothing_and_exits_2() {
    let server = Server::start();
    let cases = interleaved_cases(&server);
    let size = server.log_size();
    let directory = tempfile::tempdir().unwrap();
    let out = directory.path().join("export.jsonl");
    std::fs::write(&out, b"an earlier export\n").unwrap();
    let before = files(directory.path());
    let out_arg = out.display().to_string();
    let beyond = (size + 1).to_string();
    let unknown_case = "AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b71";
    let cases_and_codes: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["--format", "xml"], 2, "unknown export format"),
        (vec!["--format", "jsonl", "--since=-1"], 2, "invalid cursor"),
        (
            vec!["--format", "jsonl", "--since", "1e3"],
            2,
            "invalid cursor",
        ),
        (
            vec!["--format", "jsonl", "--until", "x"],
            2,
            "invalid cursor",
        ),
        (
            vec!["--format", "jsonl", "--since", &beyond],
            2,
            "beyond the end of the log",
        ),
        (
            vec!["--format", "jsonl", "--since", "3", "--until", "2"],
            2,
            "before --since",
        ),
        (vec!["--format", "jsonl", "--case", "AC-nope"], 2, "--case"),
        (
            vec!["--format", "jsonl", "--case", unknown_case],
            1,
            "holds no case",
        ),
        (
            vec!["--format", "bundle", "--case", unknown_case, "--since", "1"],
            2,
            "not both",
        ),
        (
            vec!["--format", "jsonl", "--with-evidence"],
            2,
            "--format bundle",
        ),
    ];
    for (args, code, message) in &cases_and_codes {
        let mut args = args.clone();
        args.extend(["--out", out_arg.as_str()]);
        let output = export_direct(&server, &args);
        assert_eq!(
            output.status.code(),
            Some(*code),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(output.stdout.is_empty(), "{args:?}");
        assert_eq!(
            files(directory.path()),
            before,
            "{args:?} changed the directory"
        );
        // The same to standard output: nothing on it.
        let output = export_direct(&server, &args[..args.len() - 2]);
        assert_eq!(output.status.code(), Some(*code), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    // An --out that is a symbolic link is refused: renaming over it would
    // replace the link instead of writing its target.
    let link = directory.path().join("link.jsonl");
    std::os::unix::fs::symlink(directory.path().join("target.jsonl"), &link).unwrap();
    let output = export_direct(
        &server,
        &["--format", "jsonl", "--out", link.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("symbolic link"),
        "{}",
        stderr(&output)
    );
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!directory.path().join("target.jsonl").exists());
    // A new export file is owner-only, like the ledger it comes from.
    let fresh = directory.path().join("fresh.jsonl");
    exported(&export_direct(
        &server,
        &["--format", "jsonl", "--out", fresh.to_str().unwrap()],
    ));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&fresh).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    std::fs::remove_file(&fresh).unwrap();
    std::fs::remove_file(&link).unwrap();
    // An --out inside the data directory is refused before anything is
    // written: `--out DATA/custody.db` would put the export in place of the
    // ledger.
    let ledger_file = server.data.join("custody.db");
    let names = || {
        let mut names: Vec<String> = std::fs::read_dir(&server.data)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let ledger_identity = || {
        std::fs::metadata(&ledger_file)
            .ok()
            .map(|metadata| std::os::unix::fs::MetadataExt::ino(&metadata))
    };
    let (names_before, ledger_before) = (names(), ledger_identity());
    for (format, target) in [
        ("jsonl", ledger_file.clone()),
        ("jsonl", server.data.join("export.jsonl")),
        ("bundle", ledger_file.clone()),
        ("bundle", server.data.join("export.bundle")),
    ] {
        let output = common::command()
            .args(["export", "--format", format, "--data"])
            .arg(&server.data)
            .arg("--out")
            .arg(&target)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("inside the data directory"),
            "{}",
            stderr(&output)
        );
        assert_eq!(names(), names_before, "{target:?}");
        assert_eq!(
            ledger_identity(),
            ledger_before,
            "{target:?} replaced the ledger"
        );
    }

    // An --out that is a directory is refused before the export runs.
    let output = export_direct(
        &server,
        &[
            "--format",
            "jsonl",
            "--out",
            &directory.path().display().to_string(),
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is a directory"),
        "{}",
        stderr(&output)
    );
    // (Not the rename's failure after a whole export: "cannot write".)
    assert!(
        stderr(&output).starts_with("error: --out "),
        "{}",
        stderr(&output)
    );
    assert_eq!(files(directory.path()), before);

    // A data directory that holds no ledger.
    let output = common::command()
        .args(["export", "--format", "jsonl", "--data"])
        .arg(directory.path())
        .args(["--out", &out_arg])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(files(directory.path()), before);

    // A good export replaces the file whole, and leaves nothing beside it.
    let output = export_direct(
        &server,
        &["--format", "jsonl", "--case", &cases[0], "--out", &out_arg],
    );
    common::assert_success(&output, "export --out");
    let names: Vec<String> = files(directory.path())
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["export.jsonl"]);
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 5);
    assert!(output.stdout.is_empty());

    // A file replaced keeps its permissions: an owner-only export does not
    // come back readable by everyone.
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600)).unwrap();
    let output = export_direct(&server, &["--format", "jsonl", "--out", &out_arg]);
    common::assert_success(&output, "export --out over an owner-only file");
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the export's permissions were {mode:o}");
}

#[test]
fn progress_is_drawn_on_a_terminal_and_never_in_a_pipe() {
    let server = Server::start();
    interleaved_cases(&server);
    let size = server.log_size();
    // In a pipe (the test captures both streams): the summary and nothing
    // else, no carriage return, no escape sequence.
    let output = export_direct(&server, &["--format", "ecs"]);
    common::assert_success(&output, "export");
    assert_eq!(
        stderr(&output),
        format!("exported {size} events (ecs) to standard output\nnext cursor: {size}\n")
    );
    let output = export_direct(&server, &["--format", "ecs", "--json"]);
    let summary: Value = serde_json::from_str(stderr(&output).trim()).unwrap();
    assert_eq!(summary["next_cursor"], size);
    assert_eq!(summary["events"], size);
    let verify = common::command()
        .args(["verify", "--data"])
        .arg(&server.data)
        .output()
        .unwrap();
    for output in [&output, &verify] {
        let text = stderr(output);
        assert!(!text.contains('\r') && !text.contains('\u{1b}'), "{text:?}");
    }

    // On a terminal (`script` gives the command a pseudo-terminal): the bar
    // is drawn on standard error, then erased.
    let command = format!(
        "{} export --format ecs --data {} --out {}",
        common::bin(),
        server.data.display(),
        server.root.path().join("tty.ndjson").display()
    );
    let tty = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("run script (util-linux)");
    let text = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{text}");
    assert!(text.contains("\r\u{1b}[2Kexport ["), "{text:?}");
    assert!(text.contains("entries/s ETA"), "{text:?}");
    assert!(
        text.contains("\r\u{1b}[2Kexported "),
        "the bar is erased before the summary: {text:?}"
    );
    // With --json, even on a terminal, no bar.
    let tty = std::process::Command::new("script")
        .args(["-qec", &format!("{command} --json"), "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&tty.stdout);
    assert!(!text.contains("export ["), "{text:?}");
}

/// Every kind `EventBody` has, as serde knows them: its error for an
/// unknown kind lists them all, straight from the enum's definition, so a
/// new kind that [`every_kind_ledger`] does not write fails the test.
fn all_kinds() -> BTreeSet<String> {
    let error = serde_json::from_value::<custody_core::event::EventBody>(
        serde_json::json!({"kind": "no_such_kind", "payload": null}),
    )
    .unwrap_err()
    .to_string();
    let list = error.split_once("expected one of ").unwrap().1;
    let list = list.split(" at line").next().unwrap();
    list.split(", ")
        .map(|name| name.trim().trim_matches('`').to_owned())
        .collect()
}

/// The configuration of [`every_kind_ledger`]'s server: a webhook channel
/// (every audience is told on it), links on loopback allowed, and deadlines
/// a test clock passes.
fn every_kind_config(receiver: &str, jira: &str) -> String {
    format!(
        r#"
[evidence.fetch]
timeout_seconds = 3
allow = ["127.0.0.1"]

[workflow]
scan_interval_seconds = 1

[notify]
poll_interval_ms = 50

[[notify.channels]]
type = "webhook"
name = "hook"
url = "{receiver}/hook"
secret = "export-test-secret-0123456789abcdef"

[[policy.rules]]
name = "on-call"
entitlements = ["oncall-*"]
review_deadline = "1s"
post_hoc_review_deadline = "2s"

[[connectors]]
name = "okta"
kind = "okta"

{}"#,
        crate::connectors::jira::connector_entry(jira)
    )
}

/// A real ledger (an in-process server on a test clock) holding at least
/// every kind of event; returns it and the case whose four roles
/// are all filled, with its requester, approver, executor and reviewer.
fn every_kind_ledger() -> (
    Server,
    String,
    (common::HttpStub, crate::connectors::jira_fake::FakeJira),
    [&'static str; 4],
) {
    let receiver = common::HttpStub::serve(
        axum::Router::new()
            .route("/hook", axum::routing::post(|| async { "ok" }))
            .route(
                "/page",
                axum::routing::get(|| async { "<html>access policy</html>" }),
            ),
        1,
    );
    // Jira, for what only a connector records (a ticket edited), and the
    // write-back of the cases that carry Jira tickets.
    let jira = crate::connectors::jira_fake::FakeJira::start(&["SEC-40"]);
    let config = every_kind_config(&receiver.base, &jira.url);
    let (server, _) = Server::start_in_process(TestStore::Embedded, Some(&config));
    let admin = server.admin_token.clone();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let dave = server.principal("dave");
    let request = |token: &str, entitlement: &str, extra: &[&str]| {
        let mut args = vec![
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            entitlement,
        ];
        args.extend_from_slice(extra);
        server.cli_ok(token, &args).trim().to_string()
    };
    // A whole case, with a chat approval formalised and confirmed, a
    // failed attempt, a comment and evidence.
    let main = request(&alice, "db-admin", &["--ticket", "itsm:SEC-1"]);
    let attested = server.cli_json(
        &carol,
        &[
            "approve",
            &main,
            "--chat-channel",
            "slack:#access",
            "--chat-permalink",
            "https://chat.example.com/p/1",
            "--chat-time",
            "2024-01-01T00:00:00Z",
            "--chat-text",
            "ok from bob",
            "--for",
            "bob",
        ],
    );
    let attestation = attested["appended"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.cli_ok(&bob, &["approve", &main, "--confirm", &attestation]);
    server.cli_ok(
        &carol,
        &["execute", &main, "--failed", "--comment", "timeout"],
    );
    server.cli_ok(&carol, &["execute", &main]);
    server.cli_ok(
        &alice,
        &["comment", &main, "pipes | equals = backslash \\ ]"],
    );
    let file = server.root.path().join("evidence.txt");
    std::fs::write(&file, b"screenshot").unwrap();
    server.cli_ok(&alice, &["attach", &main, file.to_str().unwrap()]);
    server.cli_ok(
        &alice,
        &[
            "attach",
            &main,
            "--url",
            "http://127.0.0.1:9/nothing-listens-here",
        ],
    );
    server.cli_ok(
        &alice,
        &["attach", &main, "--url", &format!("{}/page", receiver.base)],
    );
    server.cli_ok(&admin, &["evidence", "recheck", &main]);
    server.cli_ok(&dave, &["review", &main, "--outcome", "confirmed"]);
    // A Jira issue created later for a case opened without a ticket,
    // carrying its ID: `ticket_linked`; then the issue edited:
    // `ticket_changed`, observed as dave (mapped from a Jira accountId).
    // (Jira tickets are the Jira connector's to bind: the CLI names none.)
    server.cli_ok(
        &admin,
        &[
            "connector",
            "map",
            "jira",
            crate::connectors::jira::BOB,
            "dave",
        ],
    );
    let unticketed = request(
        &alice,
        "db-read",
        &["--resource", "billing-db", "--duration", "8h"],
    );
    let mut created = crate::connectors::jira::created(
        40,
        crate::connectors::jira::BOB,
        crate::connectors::jira::now_ms(),
    );
    created["issue"]["fields"]["customfield_10044"] = serde_json::json!(unticketed);
    let linked = crate::connectors::jira::deliver(&server, &created);
    assert_eq!(linked.status, 200, "{}", linked.text);
    assert!(linked.text.contains("ticket_linked"), "{}", linked.text);
    let edited = crate::connectors::jira::deliver(
        &server,
        &crate::connectors::jira::edited(
            40,
            7,
            "db-admin-all",
            crate::connectors::jira::BOB,
            crate::connectors::jira::now_ms(),
        ),
    );
    assert_eq!(edited.status, 200, "{}", edited.text);
    assert!(edited.text.contains("ticket_changed"), "{}", edited.text);
    // Denied.
    let denied = request(&alice, "denied-admin", &[]);
    server.cli_ok(&bob, &["deny", &denied]);
    // Duplicates merged.
    let first = request(&alice, "merged-admin", &["--ticket", "itsm:SEC-2"]);
    let second = request(&alice, "merged-prod-admin", &["--ticket", "snow:INC-3"]);
    server.cli_ok(
        &alice,
        &[
            "merge",
            &second,
            "--into",
            &first,
            "--comment",
            "one change",
        ],
    );
    // A review that revokes opens a revocation case.
    let revoked = request(&alice, "revoked-admin", &[]);
    server.cli_ok(&bob, &["approve", &revoked]);
    server.cli_ok(&carol, &["execute", &revoked]);
    server.cli_ok(&dave, &["review", &revoked, "--outcome", "revoke"]);
    // Evidence held for a ticket, then joined by the request that carries it.
    server.cli_ok(
        &bob,
        &["attach", "--ticket", "itsm:SEC-9", file.to_str().unwrap()],
    );
    request(&alice, "held-admin", &["--ticket", "itsm:SEC-9"]);
    // What an identity provider saw change (`execution_observed`), from
    // Okta's System Log as its API returns it.
    let okta_log = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/custody-connect/tests/fixtures/okta/logs-page.json");
    server.cli_ok(
        &admin,
        &["ingest", "--source", "okta", okta_log.to_str().unwrap()],
    );
    // Time-bound access and break-glass, then the clock passes their deadlines.
    let bound = server
        .cli_ok(
            &alice,
            &[
                "request",
                "--subject",
                "user:alice",
                "--entitlement",
                "oncall-admin",
                "--duration",
                "3h",
            ],
        )
        .trim()
        .to_string();
    server.cli_ok(&bob, &["approve", &bound]);
    server.cli_ok(&carol, &["execute", &bound]);
    server.cli_ok(
        &carol,
        &[
            "break-glass",
            "--subject",
            "user:carol",
            "--entitlement",
            "oncall-root",
            "--justification",
            "INC-1",
        ],
    );
    // An hour before the end of the access, the owner is told; at its end,
    // the revocation is due; the reviews are overdue long before.
    server.advance(3 * 3600 + 120);
    server.cli_ok(&carol, &["execute", &bound, "--revocation"]);
    // Administration: groups, a revoked token, a delegation granted and
    // revoked, an outside user's mapping.
    server.cli_ok(
        &admin,
        &["principal", "set-groups", "dave", "--group", "reviewers"],
    );
    let tokens = server.cli_json(&admin, &["token", "list", "dave"]);
    let token_id = tokens["tokens"][0]["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.cli_ok(&admin, &["token", "revoke", &token_id]);
    let grant = server.cli_json(
        &admin,
        &[
            "delegation",
            "grant",
            "--vendor-org",
            "acme",
            "--on-behalf-of",
            "it-team",
            "--valid-for",
            "30d",
        ],
    );
    let grant_id = grant["grant_id"].as_str().unwrap().to_string();
    server.cli_ok(&admin, &["delegation", "revoke", &grant_id]);
    // An outside user mapped to a principal, remapped and unmapped.
    server.cli_ok(&admin, &["connector", "map", "slack", "U01ALICE", "alice"]);
    server.cli_ok(&admin, &["connector", "map", "slack", "U01ALICE", "bob"]);
    server.cli_ok(&admin, &["connector", "unmap", "slack", "U01ALICE"]);
    // The continuous monitor records the overdue reviews as findings in
    // their cases (`finding_raised`): one scan, as a second node runs it.
    let mut monitor = custody_server::monitor::Monitor::new(
        server.store(),
        custody_server::monitor::MonitorOptions {
            interval_seconds: 60,
            poll: std::time::Duration::from_millis(25),
            trusted_keys: custody_server::keys::trusted_keys(&server.data).unwrap(),
            checkpoint_interval_seconds: 24 * 3600,
            idle_after_entries: 0,
        },
        server.shared_clock(),
        "export-test-monitor".to_string(),
    );
    server.clock().advance_seconds(60);
    let scan = server.block_on(monitor.scan_once()).unwrap();
    assert!(scan.scanned);
    // The webhook deliveries are recorded as they happen.
    common::wait_until("a notification attempt", || {
        let (jsonl, _) = exported(&export_direct(&server, &["--format", "jsonl"]));
        jsonl.contains("\"kind\":\"notification_attempted\"")
    });
    (
        server,
        main,
        (receiver, jira),
        ["alice", "bob", "carol", "dave"],
    )
}

#[test]
fn every_event_kind_is_exported_in_every_line_format() {
    let (server, main, _receiver, roles) = every_kind_ledger();
    let size = server.log_size();
    // The ledger's events, as Custody's own JSON lines.
    let (jsonl, _) = exported(&export_direct(&server, &["--format", "jsonl"]));
    let events: Vec<Value> = jsonl
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events.len() as u64, size);
    let kinds: BTreeSet<String> = events
        .iter()
        .map(|event| event["kind"].as_str().unwrap().to_string())
        .collect();
    let all = all_kinds();
    let missing: Vec<&String> = all.difference(&kinds).collect();
    assert!(missing.is_empty(), "the ledger holds no {missing:?}");
    for format in Format::ALL {
        let (text, cursor) = exported(&export_direct(&server, &["--format", format.name()]));
        assert_eq!(cursor, size);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), events.len(), "{format}: one line per event");
        for (line, event) in lines.iter().zip(&events) {
            // Every format carries the case ID and the event ID (invariant 9).
            for field in ["case_id", "event_id"] {
                let value = event[field].as_str().unwrap();
                assert!(
                    line.contains(value),
                    "{format}: {field} {value} missing from {line}"
                );
            }
        }
        // On the review of the fully staffed case, the formats that carry
        // the case's roles name all four parties.
        if matches!(format, Format::Jsonl | Format::Cef) {
            continue;
        }
        let review = events
            .iter()
            .position(|event| {
                event["case_id"] == main.as_str() && event["kind"] == "review_completed"
            })
            .unwrap();
        for party in roles {
            assert!(
                lines[review].contains(party),
                "{format}: {party} missing from {}",
                lines[review]
            );
        }
    }
}
