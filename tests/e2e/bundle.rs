//! Auditor bundles through the real binary: `custody export --format
//! bundle`, `custody verify --bundle` and `custody import --bundle` (see
//! `docs/bundle.md`). A ledger with cases of many kinds is exported, checked
//! offline, imported into a new data directory and into a fresh PostgreSQL
//! database, and tampered with in every way the issue names; each tampering
//! must fail `verify --bundle` with the code that names it.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine;
use common::{assert_success, command, stderr, Server, TestDatabase};
use custody_core::Event;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A stopped server's ledger with cases of many kinds, and its key.
struct Ledger {
    server: Server,
    key: String,
    /// approved, executed, reviewed, with evidence attached.
    reviewed: String,
    /// denied.
    denied: String,
    /// merged into `survivor`.
    duplicate: String,
    /// Survives the merge.
    survivor: String,
    /// Alice's bearer token (not an admin's).
    alice: String,
    /// Dave's bearer token, revoked before any export.
    revoked: String,
    /// The case Alice's write under [`RETRIED_KEY`] opened.
    retried: String,
}

/// The idempotency key of a write made before every export, retried after
/// the imports with [`RETRIED_WRITE`].
const RETRIED_KEY: &str = "made-before-the-restore";

/// The write made under [`RETRIED_KEY`] (by Alice).
const RETRIED_WRITE: &[&str] = &[
    "request",
    "--subject",
    "user:zed",
    "--entitlement",
    "admin",
    "--idempotency-key",
    RETRIED_KEY,
];

fn build_ledger() -> Ledger {
    let mut server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let request = |token: &str, subject: &str, ticket: Option<&str>| {
        let mut args = vec!["request", "--subject", subject, "--entitlement", "admin"];
        if let Some(ticket) = ticket {
            args.extend(["--ticket", ticket]);
        }
        server.cli_ok(token, &args).trim().to_string()
    };
    let reviewed = request(&alice, "user:ann", None);
    server.cli_ok(&bob, &["approve", &reviewed, "--comment", "ok"]);
    server.cli_ok(&carol, &["execute", &reviewed]);
    server.cli_ok(&bob, &["review", &reviewed, "--outcome", "confirmed"]);
    let file = server.root.path().join("screenshot.png");
    std::fs::write(&file, b"the approval, as a screenshot").unwrap();
    server.cli_ok(&alice, &["attach", &reviewed, file.to_str().unwrap()]);
    server.cli_ok(&bob, &["comment", &reviewed, "done \u{202e} and reviewed"]);
    let denied = request(&alice, "service_account:ci", None);
    server.cli_ok(&bob, &["deny", &denied, "--comment", "no"]);
    let survivor = request(&alice, "api_key:deploy", Some("jira:SEC-1"));
    let duplicate = request(&alice, "api_key:deploy2", Some("jira:SEC-2"));
    server.cli_ok(
        &alice,
        &[
            "merge",
            &duplicate,
            "--into",
            &survivor,
            "--comment",
            "one request",
        ],
    );
    let held = server.root.path().join("held.txt");
    std::fs::write(&held, b"evidence for a ticket no case carries yet").unwrap();
    server.cli_ok(
        &bob,
        &["attach", "--ticket", "jira:SEC-9", held.to_str().unwrap()],
    );
    let dave_token = server.principal("dave");
    let listed = server.cli_json(&server.admin_token, &["token", "list"]);
    let dave_token_id = listed
        .as_array()
        .or_else(|| listed["tokens"].as_array())
        .unwrap()
        .iter()
        .find(|token| token["principal"] == "dave")
        .unwrap()["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.cli_ok(&server.admin_token, &["token", "revoke", &dave_token_id]);
    let retried = server.cli_ok(&alice, RETRIED_WRITE).trim().to_string();
    // A request carrying the ticket of an open case appends nothing and
    // answers with that case: an idempotency record without events.
    let existing = request(&alice, "user:yan", Some("jira:SEC-1"));
    assert_eq!(existing, survivor);
    server.stop();
    let key = server.log_keys()[0].clone();
    common::assert_verify_ok(&server.data);
    Ledger {
        server,
        key,
        reviewed,
        denied,
        duplicate,
        survivor,
        alice,
        revoked: dave_token,
        retried,
    }
}

/// `custody export --format bundle --data DIR --out FILE` with `extra`.
fn export(data: &Path, out: &Path, extra: &[&str]) {
    let output = command()
        .args(["export", "--format", "bundle", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert_success(&output, "custody export --format bundle");
    assert!(!PathBuf::from(format!("{}.partial", out.display())).exists());
}

/// `custody verify --bundle FILE --json` with `extra`.
fn verify_bundle(file: &Path, extra: &[&str]) -> (Output, Value) {
    let output = command()
        .args(["verify", "--json", "--bundle"])
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "verify --bundle --json printed no JSON ({error}); stderr: {}",
            stderr(&output)
        )
    });
    (output, report)
}

fn codes(report: &Value) -> Vec<String> {
    let mut codes: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| finding["code"].as_str().unwrap().to_string())
        .collect();
    codes.sort();
    codes.dedup();
    codes
}

/// Asserts `verify --bundle` fails (exit 1) with exactly `expected` codes
/// (besides the info codes it always adds).
#[track_caller]
fn assert_fails_with(file: &Path, key: &str, expected: &[&str]) -> Value {
    let (output, report) = verify_bundle(file, &["--key", key]);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(report["ok"], false);
    let found: Vec<String> = codes(&report)
        .into_iter()
        .filter(|code| code != "bundle.partial")
        .collect();
    let mut expected: Vec<String> = expected.iter().map(ToString::to_string).collect();
    expected.sort();
    assert_eq!(found, expected, "{report:#}");
    report
}

/// Asserts `verify --bundle` fails (exit 1) with at least `expected` codes
/// among its findings.
#[track_caller]
fn assert_fails_including(file: &Path, key: &str, expected: &[&str]) -> Value {
    let (output, report) = verify_bundle(file, &["--key", key]);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let found = codes(&report);
    for code in expected {
        assert!(
            found.iter().any(|found| found == code),
            "{code} missing: {report:#}"
        );
    }
    report
}

fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Writes `lines` as a bundle with a trailer recomputed for them: what
/// someone who edits a bundle and covers their tracks writes.
fn write_with_fixed_trailer(file: &Path, lines: &[String]) {
    let body: Vec<&String> = lines
        .iter()
        .filter(|line| line_type(line) != "trailer")
        .collect();
    let mut text = String::new();
    for line in &body {
        text.push_str(line);
        text.push('\n');
    }
    let events = body
        .iter()
        .filter(|line| line_type(line) == "event")
        .count();
    let evidence = body
        .iter()
        .filter(|line| line_type(line) == "evidence")
        .count();
    let digest: String = Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    text.push_str(&format!(
        "{{\"type\":\"trailer\",\"lines\":{},\"events\":{events},\"evidence\":{evidence},\"sha256\":\"{digest}\"}}\n",
        body.len()
    ));
    std::fs::write(file, text).unwrap();
}

fn write_raw(file: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(file, text).unwrap();
}

fn line_json(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

/// A line's `type`, or "" when it is not JSON.
fn line_type(line: &str) -> String {
    serde_json::from_str::<Value>(line)
        .ok()
        .and_then(|value| value["type"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn event_of(line: &str) -> Event {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line_json(line)["event"].as_str().unwrap())
        .unwrap();
    Event::decode(&bytes).unwrap()
}

fn event_line_positions(lines: &[String]) -> Vec<usize> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line_type(line) == "event")
        .map(|(position, _)| position)
        .collect()
}

/// The root of a store's log, recomputed from its events (not read from
/// its Merkle nodes), and its size.
fn recomputed_root(location: &custody_store::Location) -> ([u8; 32], u64) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = custody_store::ReadOnlyStore::open_at(location)
            .await
            .unwrap();
        let mut frontier = custody_log::Frontier::new();
        let mut next = 0;
        loop {
            let page = store.export_page(next, None, None, 1000).await.unwrap();
            let Some(last) = page.last() else { break };
            next = last.index + 1;
            for entry in &page {
                frontier.push(custody_log::leaf_hash(&entry.leaf));
            }
        }
        (frontier.root(), frontier.size())
    })
}

fn header_root(file: &Path) -> ([u8; 32], u64) {
    let header = line_json(&lines(file)[0]);
    let root = base64::engine::general_purpose::STANDARD
        .decode(header["checkpoint_root"].as_str().unwrap())
        .unwrap();
    (
        root.try_into().unwrap(),
        header["checkpoint_size"].as_u64().unwrap(),
    )
}

#[test]
fn a_whole_log_bundle_verifies_and_rebuilds_a_store_on_both_backends() {
    let ledger = build_ledger();
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.jsonl");
    export(&ledger.server.data, &whole, &["--with-evidence"]);

    let (output, report) = verify_bundle(&whole, &["--key", &ledger.key]);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(codes(&report), Vec::<String>::new(), "{report:#}");
    let (root, size) = header_root(&whole);
    assert_eq!(report["checked"]["log_entries"], size);
    assert_eq!(report["checked"]["evidence_blobs"], 2);
    assert_eq!(report["bundle"]["keys_given"], true);

    // Without --key the keys come from the bundle itself: said, not failed.
    let (output, report) = verify_bundle(&whole, &[]);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(codes(&report), ["bundle.keys-untrusted"]);

    // Into a new data directory.
    let imported = dir.path().join("imported");
    let output = command()
        .args(["import", "--json", "--bundle"])
        .arg(&whole)
        .arg("--data")
        .arg(&imported)
        .args(["--key", &ledger.key])
        .output()
        .unwrap();
    assert_success(&output, "custody import --data");
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["events"], size);
    assert_eq!(summary["cases"], 5, "{summary:#}");
    assert_eq!(summary["evidence_restored"], 2, "{summary:#}");
    // Every token comes back with its secret's hash, and every write's
    // result under its key.
    assert_eq!(summary["tokens"], 5, "{summary:#}");
    assert_eq!(summary["tokens_restored"], 5, "{summary:#}");
    assert_eq!(summary["tokens_not_restored"], 0, "{summary:#}");
    let idempotency_lines = lines(&whole)
        .iter()
        .filter(|line| line_type(line) == "idempotency")
        .count();
    // One per write of `build_ledger`.
    assert_eq!(idempotency_lines, 14);
    assert_eq!(summary["idempotency_records"], idempotency_lines);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(imported.join("custody.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the imported database is private");
    }
    // The migration path: the signing key comes from a node of the source.
    std::fs::copy(
        ledger.server.data.join("log-signing.key"),
        imported.join("log-signing.key"),
    )
    .unwrap();
    let report = common::assert_verify_ok(&imported);
    assert_eq!(report["checked"]["log_entries"], size);
    assert_eq!(report["checked"]["outside_checkpoints"], 1, "{report:#}");
    assert_eq!(
        recomputed_root(&custody_store::Location::Embedded(imported.clone())),
        (root, size)
    );
    serve_restored(&ledger, &imported, None);

    // Into a fresh PostgreSQL database.
    let database = TestDatabase::create();
    let output = command()
        .args(["import", "--bundle"])
        .arg(&whole)
        .args(["--database-url", &database.url, "--key", &ledger.key])
        .output()
        .unwrap();
    assert_success(&output, "custody import --database-url");
    // The nodes keep their data directories (keys, checkpoints file,
    // evidence): every checkpoint the source signed is in the new database.
    let output = command()
        .args([
            "verify",
            "--json",
            "--database-url",
            &database.url,
            "--data",
        ])
        .arg(&ledger.server.data)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(codes(&report), Vec::<String>::new(), "{report:#}");
    assert!(
        report["checked"]["checkpoints"].as_u64().unwrap() >= 2,
        "{report:#}"
    );
    assert_eq!(
        recomputed_root(&custody_store::Location::Postgres(database.url.clone())),
        (root, size)
    );

    // A second import into the same database changes nothing and says why.
    let output = command()
        .args(["import", "--bundle"])
        .arg(&whole)
        .args(["--database-url", &database.url])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("the target store is not empty"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        recomputed_root(&custody_store::Location::Postgres(database.url.clone())),
        (root, size)
    );
    // A node of the restored database, with the source's signing key.
    let node = dir.path().join("node");
    std::fs::create_dir(&node).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    serve_restored(&ledger, &node, Some(&database.url));

    // A bundle without token or idempotency lines (as version 1 made them)
    // still imports. Its events record each token's whole hash, so the
    // tokens are restored from the record. (A real version 1 bundle's
    // events record the first 16 hex digits only: those tokens are stored
    // unusable and the summary says how many; `custody-store`'s import unit
    // test covers that.)
    let old = dir.path().join("version-1.jsonl");
    let mut version_1: Vec<String> = lines(&whole)
        .into_iter()
        .filter(|line| !matches!(line_type(line).as_str(), "token" | "idempotency"))
        .collect();
    let mut header = line_json(&version_1[0]);
    header["version"] = Value::from(1);
    version_1[0] = header.to_string();
    write_with_fixed_trailer(&old, &version_1);
    let (output, report) = verify_bundle(&old, &["--key", &ledger.key]);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(report["bundle"]["token_lines"], 0, "{report:#}");
    let from_old = dir.path().join("from-version-1");
    let output = command()
        .args(["import", "--bundle"])
        .arg(&old)
        .arg("--data")
        .arg(&from_old)
        .output()
        .unwrap();
    assert_success(&output, "custody import of a version 1 bundle");
    assert!(
        common::stdout(&output).contains("restored 5 bearer tokens"),
        "{}",
        common::stdout(&output)
    );
    std::fs::copy(
        ledger.server.data.join("log-signing.key"),
        from_old.join("log-signing.key"),
    )
    .unwrap();
    common::assert_verify_ok(&from_old);
    let served = common::spawn_serve(&from_old, None).unwrap();
    let output = common::cli_at(&served.url, &ledger.server.admin_token, &["whoami"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    drop(served);
    // Exported again, with token lines, and imported again: the same.
    let again = dir.path().join("again.jsonl");
    export(&from_old, &again, &[]);
    let output = command()
        .args(["import", "--bundle"])
        .arg(&again)
        .arg("--data")
        .arg(dir.path().join("from-again"))
        .output()
        .unwrap();
    assert_success(&output, "custody import of a store imported from version 1");
    assert!(
        common::stdout(&output).contains("restored 5 bearer tokens"),
        "{}",
        common::stdout(&output)
    );

    // A partial bundle is refused, and no directory is made.
    let case = dir.path().join("case.jsonl");
    export(&ledger.server.data, &case, &["--case", &ledger.reviewed]);
    let target = dir.path().join("from-case");
    let output = command()
        .args(["import", "--bundle"])
        .arg(&case)
        .arg("--data")
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("not the whole log"),
        "{}",
        stderr(&output)
    );
    assert!(!target.exists());

    // A bundle with findings is refused (exit 1), and no directory is made.
    let mut tampered = lines(&whole);
    let position = event_line_positions(&tampered)[5];
    tampered.remove(position);
    let broken = dir.path().join("broken.jsonl");
    write_with_fixed_trailer(&broken, &tampered);
    let output = command()
        .args(["import", "--bundle"])
        .arg(&broken)
        .arg("--data")
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(!target.exists());

    // A non-empty directory is refused and left as it was.
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("notes.txt"), b"mine").unwrap();
    let output = command()
        .args(["import", "--bundle"])
        .arg(&whole)
        .arg("--data")
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1);
}

/// Serves the store imported from `ledger` (at `data`, or in the database
/// at `database_url` with `data` as the node's directory), with the
/// source's signing key, and checks that it is the source deployment's to
/// administer: its tokens authenticate as they did there (the admin's,
/// Alice's), a revoked or unknown one does not, and a write retried under
/// its idempotency key gets its first answer without growing the log.
#[track_caller]
fn serve_restored(ledger: &Ledger, data: &Path, database_url: Option<&str>) {
    std::fs::copy(
        ledger.server.data.join("log-signing.key"),
        data.join("log-signing.key"),
    )
    .unwrap();
    let node = common::spawn_serve(data, database_url).unwrap();
    let location = match database_url {
        Some(url) => custody_store::Location::Postgres(url.to_string()),
        None => custody_store::Location::Embedded(data.to_path_buf()),
    };
    let admin = &ledger.server.admin_token;
    let output = common::cli_at(&node.url, admin, &["whoami"]);
    assert_success(&output, "custody whoami with the source's admin token");
    assert!(
        common::stdout(&output).starts_with("admin "),
        "{}",
        common::stdout(&output)
    );
    // An administrative act: only an admin may list every token.
    let output = common::cli_at(&node.url, admin, &["token", "list", "--json"]);
    assert_success(&output, "custody token list with the source's admin token");
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 5, "{listed:#}");
    let output = common::cli_at(&node.url, &ledger.alice, &["whoami"]);
    assert_success(&output, "custody whoami with Alice's token");
    let unknown = format!("cust_{}", "0".repeat(64));
    for (token, what) in [
        (&unknown, "an unknown token"),
        (&ledger.revoked, "a revoked token"),
    ] {
        let output = common::cli_at(&node.url, token, &["whoami"]);
        assert_eq!(output.status.code(), Some(2), "{what}: {}", stderr(&output));
    }

    let (_, before) = recomputed_root(&location);
    let output = common::cli_at(&node.url, &ledger.alice, RETRIED_WRITE);
    assert_success(&output, "the write retried after the restore");
    assert_eq!(common::stdout(&output).trim(), ledger.retried);
    let (_, after) = recomputed_root(&location);
    assert_eq!(after, before, "a retried write appends nothing");
    drop(node);
}

#[test]
fn a_flipped_byte_in_any_line_of_a_bundle_fails_verification() {
    let ledger = build_ledger();
    let dir = tempfile::tempdir().unwrap();
    let trusted = custody_verify::parse_keys(std::slice::from_ref(&ledger.key)).unwrap();
    for (name, extra) in [
        ("whole.jsonl", vec!["--with-evidence"]),
        ("case.jsonl", vec!["--case", ledger.survivor.as_str()]),
    ] {
        let file = dir.path().join(name);
        export(&ledger.server.data, &file, &extra);
        let bytes = std::fs::read(&file).unwrap();
        let intact =
            custody_verify::bundle::verify_bundle(&bytes[..], &trusted, &mut |_| {}).unwrap();
        assert!(intact.report.ok, "{:#?}", intact.report.findings);
        // In every line, its first byte, one in the middle and its newline:
        // the digest, a proof or the rebuilt tree must catch every one.
        // (Each check parses the whole bundle and verifies its signatures,
        // unoptimised, so not every byte.)
        let mut positions = Vec::new();
        let mut start = 0;
        for line in bytes.split_inclusive(|byte| *byte == b'\n') {
            positions.extend([start, start + line.len() / 2, start + line.len() - 1]);
            start += line.len();
        }
        for position in positions {
            let mut tampered = bytes.clone();
            tampered[position] ^= 0x01;
            let checked =
                custody_verify::bundle::verify_bundle(&tampered[..], &trusted, &mut |_| {})
                    .unwrap();
            assert!(
                !checked.report.ok,
                "{name}: flipping byte {position} passed"
            );
        }
    }
}

#[test]
fn a_tampered_bundle_fails_naming_what_broke() {
    let ledger = build_ledger();
    let dir = tempfile::tempdir().unwrap();
    let key = ledger.key.as_str();
    let whole = dir.path().join("whole.jsonl");
    export(&ledger.server.data, &whole, &["--with-evidence"]);
    let original = lines(&whole);
    let events = event_line_positions(&original);
    let file = dir.path().join("tampered.jsonl");

    // An event dropped: the trailer no longer matches, and the rebuilt tree
    // has a gap and never reaches the checkpoint's size.
    let mut dropped = original.clone();
    dropped.remove(events[4]);
    write_raw(&file, &dropped);
    assert_fails_including(
        &file,
        key,
        &[
            "bundle.digest-mismatch",
            "checkpoint.beyond-log",
            "log.index-gap",
        ],
    );
    // The same with the trailer recomputed: the signed checkpoint still
    // catches it.
    write_with_fixed_trailer(&file, &dropped);
    let report = assert_fails_including(&file, key, &["checkpoint.beyond-log", "log.index-gap"]);
    assert!(!codes(&report).contains(&"bundle.digest-mismatch".to_string()));

    // The last event dropped and the trailer recomputed: the checkpoint
    // commits to more entries than the bundle holds (and the result of the
    // write that appended it names an event the bundle lacks).
    let mut truncated = original.clone();
    truncated.remove(*events.last().unwrap());
    write_with_fixed_trailer(&file, &truncated);
    assert_fails_with(
        &file,
        key,
        &["bundle.idempotency-unrecorded", "checkpoint.beyond-log"],
    );

    // An event's bytes altered with the trailer recomputed: the rebuilt
    // root is not the signed one.
    let mut altered = original.clone();
    let comment = events
        .iter()
        .copied()
        .find(|position| event_of(&original[*position]).body.kind_name() == "comment_added")
        .unwrap();
    let mut value = line_json(&altered[comment]);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value["event"].as_str().unwrap())
        .unwrap();
    let text = String::from_utf8(bytes)
        .unwrap()
        .replacen("done", "DONE", 1);
    value["event"] = Value::from(base64::engine::general_purpose::STANDARD.encode(text.as_bytes()));
    altered[comment] = value.to_string();
    write_with_fixed_trailer(&file, &altered);
    assert_fails_including(&file, key, &["checkpoint.root-mismatch"]);

    // Two events swapped.
    let mut swapped = original.clone();
    swapped.swap(events[3], events[4]);
    write_raw(&file, &swapped);
    let report = assert_fails_including(
        &file,
        key,
        &["bundle.digest-mismatch", "bundle.out-of-order"],
    );
    let out_of_order = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == "bundle.out-of-order")
        .unwrap();
    assert_eq!(
        out_of_order["log_index"],
        line_json(&original[events[3]])["log_index"]
    );

    // The trailer altered.
    let last = original.len() - 1;
    let mut trailer = original.clone();
    let mut value = line_json(&trailer[last]);
    let digest = value["sha256"].as_str().unwrap().to_string();
    let other = if digest.starts_with('0') { "1" } else { "0" };
    value["sha256"] = Value::from(format!("{other}{}", &digest[1..]));
    trailer[last] = value.to_string();
    write_raw(&file, &trailer);
    assert_fails_with(&file, key, &["bundle.digest-mismatch"]);
    let mut counts = original.clone();
    counts[last] = original[last].replace("\"lines\":", "\"lines\":1");
    write_raw(&file, &counts);
    assert_fails_with(&file, key, &["bundle.digest-mismatch"]);

    // Cut short before the trailer, or appended to.
    write_raw(&file, &original[..last]);
    assert_fails_with(&file, key, &["bundle.truncated"]);
    let mut appended = original.clone();
    appended.push("{}".to_string());
    write_raw(&file, &appended);
    assert_fails_with(&file, key, &["bundle.truncated"]);

    // A line that is not a bundle line.
    let mut junk = original.clone();
    junk.insert(
        events[2],
        "{\"type\":\"event\",\"log_index\":\"x\"}".to_string(),
    );
    write_with_fixed_trailer(&file, &junk);
    assert_fails_with(&file, key, &["bundle.malformed", "bundle.digest-mismatch"]);

    // The blob of the evidence altered (and the trailer recomputed).
    let mut blob = original.clone();
    let evidence = blob
        .iter()
        .position(|line| line.starts_with("{\"type\":\"evidence\"") && line.contains("\"blob\""))
        .unwrap();
    let mut value = line_json(&blob[evidence]);
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(value["blob"].as_str().unwrap())
        .unwrap();
    bytes[0] ^= 1;
    value["blob"] = Value::from(base64::engine::general_purpose::STANDARD.encode(&bytes));
    blob[evidence] = value.to_string();
    write_with_fixed_trailer(&file, &blob);
    assert_fails_with(&file, key, &["evidence.blob-altered"]);
    // Its evidence line dropped: the event's reference is unlisted.
    let mut unlisted = original.clone();
    unlisted.remove(evidence);
    write_with_fixed_trailer(&file, &unlisted);
    assert_fails_with(&file, key, &["bundle.evidence-unlisted"]);

    // Another log's key: the checkpoint is not signed by it.
    let mut other = Server::start();
    other.stop();
    let other_key = other.log_keys()[0].clone();
    assert_fails_including(&whole, &other_key, &["checkpoint.bad-signature"]);
}

#[test]
fn case_and_range_bundles_verify_and_say_what_they_cannot_prove() {
    let mut ledger = build_ledger();
    let dir = tempfile::tempdir().unwrap();
    let key = ledger.key.clone();
    // The reviewed case is covered by the checkpoint the server signed as
    // it stopped; more events and a newer checkpoint follow, so its bundle
    // carries a consistency proof from the older one.
    ledger.server.restart();
    let alice = ledger.server.principal("erin");
    ledger
        .server
        .cli_ok(&alice, &["comment", &ledger.denied, "later"]);
    ledger.server.sign_checkpoint();
    ledger.server.stop();

    for with_evidence in [false, true] {
        let case = dir.path().join(format!("case-{with_evidence}.jsonl"));
        let mut extra = vec!["--case", ledger.reviewed.as_str()];
        if with_evidence {
            extra.push("--with-evidence");
        }
        export(&ledger.server.data, &case, &extra);
        let (output, report) = verify_bundle(&case, &["--key", &key]);
        assert_eq!(output.status.code(), Some(0), "{report:#}");
        assert_eq!(codes(&report), ["bundle.partial"], "{report:#}");
        assert_eq!(report["bundle"]["consistency_proofs"], 1, "{report:#}");
        assert_eq!(
            report["checked"]["evidence_blobs"],
            u64::from(with_evidence)
        );
        let partial = &report["findings"][0];
        assert_eq!(partial["case_id"], ledger.reviewed.as_str());
        assert!(
            partial["message"]
                .as_str()
                .unwrap()
                .contains("cannot prove that the case has no events after that checkpoint"),
            "{partial:#}"
        );
        if with_evidence {
            let original = lines(&case);
            let file = dir.path().join("case-blob.jsonl");
            let mut blob = original.clone();
            let evidence = blob
                .iter()
                .position(|line| line.starts_with("{\"type\":\"evidence\""))
                .unwrap();
            blob[evidence] = blob[evidence].replacen("\"blob\":\"", "\"blob\":\"AAAA", 1);
            write_with_fixed_trailer(&file, &blob);
            assert_fails_with(&file, &key, &["evidence.blob-altered"]);
            let mut without = original.clone();
            let mut value = line_json(&without[evidence]);
            value.as_object_mut().unwrap().remove("blob");
            without[evidence] = value.to_string();
            write_with_fixed_trailer(&file, &without);
            assert_fails_with(&file, &key, &["evidence.blob-missing"]);
        }
    }

    // A merged case's bundle cannot check the other half of the merge: it
    // says so, naming the link, and still passes.
    let merged = dir.path().join("merged.jsonl");
    export(&ledger.server.data, &merged, &["--case", &ledger.duplicate]);
    let (output, report) = verify_bundle(&merged, &["--key", &key]);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    let partials: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|finding| finding["code"] == "bundle.partial")
        .collect();
    assert_eq!(partials.len(), 2, "{report:#}");
    assert!(partials.iter().any(|finding| finding["message"]
        .as_str()
        .unwrap()
        .contains(ledger.survivor.as_str())));

    // Tampering with a case bundle.
    let case = dir.path().join("case-false.jsonl");
    let original = lines(&case);
    let events = event_line_positions(&original);
    let file = dir.path().join("tampered.jsonl");
    // An event's bytes altered, and the trailer recomputed: its inclusion
    // proof no longer leads to the signed root.
    let mut altered = original.clone();
    let mut value = line_json(&altered[events[1]]);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value["event"].as_str().unwrap())
        .unwrap();
    let text = String::from_utf8(bytes)
        .unwrap()
        .replacen("\"ok\"", "\"OK\"", 1);
    value["event"] = Value::from(base64::engine::general_purpose::STANDARD.encode(text.as_bytes()));
    altered[events[1]] = value.to_string();
    write_with_fixed_trailer(&file, &altered);
    let report = assert_fails_including(&file, &key, &["bundle.inclusion-invalid"]);
    let invalid = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == "bundle.inclusion-invalid")
        .unwrap();
    assert_eq!(invalid["case_id"], ledger.reviewed.as_str());
    assert_eq!(invalid["seq"], 2);
    // An event of another case slipped in (with its valid proof).
    let denied_bundle = dir.path().join("denied.jsonl");
    export(
        &ledger.server.data,
        &denied_bundle,
        &["--case", &ledger.denied],
    );
    let foreign = lines(&denied_bundle)
        .into_iter()
        .find(|line| line.starts_with("{\"type\":\"event\""))
        .unwrap();
    let foreign_index = line_json(&foreign)["log_index"].as_u64().unwrap();
    let mut mixed = original.clone();
    let at = events
        .iter()
        .copied()
        .find(|position| {
            line_json(&original[*position])["log_index"]
                .as_u64()
                .unwrap()
                > foreign_index
        })
        .unwrap_or(events[events.len() - 1] + 1);
    mixed.insert(at, foreign);
    write_with_fixed_trailer(&file, &mixed);
    let report = assert_fails_with(&file, &key, &["bundle.outside-scope"]);
    assert_eq!(report["findings"][0]["case_id"], ledger.denied.as_str());
    // The consistency proof altered.
    let mut inconsistent = original.clone();
    let consistency = inconsistent
        .iter()
        .position(|line| line.starts_with("{\"type\":\"consistency\""))
        .unwrap();
    let mut value = line_json(&inconsistent[consistency]);
    value["proof"][0] = Value::from(base64::engine::general_purpose::STANDARD.encode([7_u8; 32]));
    inconsistent[consistency] = value.to_string();
    write_with_fixed_trailer(&file, &inconsistent);
    assert_fails_with(&file, &key, &["bundle.consistency-invalid"]);
    // An event's proof removed.
    let mut unproven = original.clone();
    let mut value = line_json(&unproven[events[0]]);
    value.as_object_mut().unwrap().remove("proof");
    unproven[events[0]] = value.to_string();
    write_with_fixed_trailer(&file, &unproven);
    assert_fails_with(&file, &key, &["bundle.inclusion-invalid"]);

    // A range bundle: whole within its range, chains checked inside it.
    let range = dir.path().join("range.jsonl");
    export(
        &ledger.server.data,
        &range,
        &["--since", "3", "--until", "15"],
    );
    let (output, report) = verify_bundle(&range, &["--key", &key]);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(codes(&report), ["bundle.partial"], "{report:#}");
    assert_eq!(report["checked"]["log_entries"], 12);
    assert!(report["bundle"]["inclusion_proofs"].as_u64().unwrap() >= 12);
    let original = lines(&range);
    let events = event_line_positions(&original);
    let mut gap = original.clone();
    gap.remove(events[4]);
    write_with_fixed_trailer(&file, &gap);
    // Index 7 is an event of the administration record, whose next event is
    // in the range too: its chain jumps.
    let report = assert_fails_with(&file, &key, &["chain.seq-gap", "log.index-gap"]);
    let gap = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == "log.index-gap")
        .unwrap();
    assert_eq!(gap["log_index"], 7);
    let mut short = original.clone();
    short.remove(*events.last().unwrap());
    write_with_fixed_trailer(&file, &short);
    let report = assert_fails_with(&file, &key, &["log.index-gap"]);
    assert_eq!(report["findings"][0]["log_index"], 14);
    // The range's first event checked against the case's chain: an event
    // whose predecessor is in the range must link to it.
    let reviewed_events: Vec<usize> = events
        .iter()
        .copied()
        .filter(|position| event_of(&original[*position]).case_id.as_str() == ledger.reviewed)
        .collect();
    assert!(reviewed_events.len() >= 2);
}

#[test]
fn tampered_token_and_idempotency_lines_fail_naming_what_broke() {
    let ledger = build_ledger();
    let dir = tempfile::tempdir().unwrap();
    let key = ledger.key.as_str();
    let whole = dir.path().join("whole.jsonl");
    export(&ledger.server.data, &whole, &[]);
    let original = lines(&whole);
    let (output, report) = verify_bundle(&whole, &["--key", key]);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(report["bundle"]["token_lines"], 5, "{report:#}");
    let positions = |kind: &str| -> Vec<usize> {
        original
            .iter()
            .enumerate()
            .filter(|(_, line)| line_type(line) == kind)
            .map(|(position, _)| position)
            .collect()
    };
    let tokens = positions("token");
    let records = positions("idempotency");
    assert_eq!(tokens.len(), 5);
    let file = dir.path().join("tampered.jsonl");

    // One digit of a token's secret hash changed (the trailer recomputed):
    // the hash no longer begins with what its token_issued event records.
    let mut altered = original.clone();
    let mut value = line_json(&altered[tokens[0]]);
    let hash = value["secret_sha256"].as_str().unwrap().to_string();
    let first = if hash.starts_with('0') { "1" } else { "0" };
    value["secret_sha256"] = Value::from(format!("{first}{}", &hash[1..]));
    altered[tokens[0]] = value.to_string();
    write_with_fixed_trailer(&file, &altered);
    let report = assert_fails_with(&file, key, &["bundle.token-mismatch"]);
    assert!(
        report["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does not begin with"),
        "{report:#}"
    );
    // And an import refuses it, making nothing.
    let target = dir.path().join("refused");
    let output = command()
        .args(["import", "--bundle"])
        .arg(&file)
        .arg("--data")
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("bundle.token-mismatch"),
        "{}",
        stderr(&output)
    );
    assert!(!target.exists());

    // A token line dropped: the token it restores is named.
    let mut dropped = original.clone();
    let dropped_id = line_json(&dropped[tokens[1]])["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    dropped.remove(tokens[1]);
    write_with_fixed_trailer(&file, &dropped);
    let report = assert_fails_with(&file, key, &["bundle.token-mismatch"]);
    assert!(
        report["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("token {dropped_id} ")),
        "{report:#}"
    );
    // Every token line dropped from a version 2 bundle: each token named.
    let none: Vec<String> = original
        .iter()
        .filter(|line| line_type(line) != "token")
        .cloned()
        .collect();
    write_with_fixed_trailer(&file, &none);
    let report = assert_fails_with(&file, key, &["bundle.token-mismatch"]);
    assert_eq!(
        report["findings"].as_array().unwrap().len(),
        5,
        "{report:#}"
    );

    // A line for a token the log never issued.
    let mut added = original.clone();
    let mut value = line_json(&added[tokens[0]]);
    value["token_id"] = Value::from("tok_ffffffffffffffff");
    added.insert(tokens[0] + 1, value.to_string());
    write_with_fixed_trailer(&file, &added);
    assert_fails_with(&file, key, &["bundle.token-unrecorded"]);

    // A revoked token's line made active again.
    let mut revived = original.clone();
    let revoked = tokens
        .iter()
        .copied()
        .find(|position| !line_json(&original[*position])["revoked_at"].is_null())
        .unwrap();
    let mut value = line_json(&revived[revoked]);
    value["revoked_at"] = Value::Null;
    revived[revoked] = value.to_string();
    write_with_fixed_trailer(&file, &revived);
    let report = assert_fails_with(&file, key, &["bundle.token-mismatch"]);
    assert!(
        report["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("is active in the line, but the log revokes it"),
        "{report:#}"
    );

    // The retried write's record: its key changed, its answer changed, or
    // given twice.
    let retried = records
        .iter()
        .copied()
        .find(|position| line_json(&original[*position])["key"] == RETRIED_KEY)
        .unwrap();
    let mut rekeyed = original.clone();
    let mut value = line_json(&rekeyed[retried]);
    value["key"] = Value::from("another-key");
    rekeyed[retried] = value.to_string();
    write_with_fixed_trailer(&file, &rekeyed);
    assert_fails_with(&file, key, &["bundle.idempotency-unrecorded"]);
    let mut answered = original.clone();
    let mut value = line_json(&answered[retried]);
    let response = value["response"]
        .as_str()
        .unwrap()
        .replace(&ledger.retried, &ledger.reviewed);
    value["response"] = Value::from(response);
    answered[retried] = value.to_string();
    write_with_fixed_trailer(&file, &answered);
    assert_fails_with(&file, key, &["bundle.idempotency-unrecorded"]);
    let mut twice = original.clone();
    twice.insert(retried + 1, original[retried].clone());
    write_with_fixed_trailer(&file, &twice);
    assert_fails_with(&file, key, &["bundle.idempotency-unrecorded"]);
    // The record of the request that found its ticket's case open appends
    // nothing: made to name a case the log does not hold, it is caught.
    let existing = records
        .iter()
        .copied()
        .find(|position| {
            line_json(&original[*position])["response"]
                .as_str()
                .unwrap()
                .contains("\"appended\":[]")
        })
        .unwrap();
    let mut elsewhere = original.clone();
    let mut value = line_json(&elsewhere[existing]);
    let response = value["response"]
        .as_str()
        .unwrap()
        .replace(&ledger.survivor, &format!("AC-{}", "0".repeat(32)));
    value["response"] = Value::from(response);
    elsewhere[existing] = value.to_string();
    write_with_fixed_trailer(&file, &elsewhere);
    assert_fails_with(&file, key, &["bundle.idempotency-unrecorded"]);

    // A case bundle carries no tokens or idempotency records.
    let case = dir.path().join("case.jsonl");
    export(&ledger.server.data, &case, &["--case", &ledger.reviewed]);
    let mut smuggled = lines(&case);
    let evidence = smuggled
        .iter()
        .position(|line| line_type(line) == "evidence")
        .unwrap();
    smuggled.insert(evidence, original[records[0]].clone());
    smuggled.insert(evidence, original[tokens[0]].clone());
    write_with_fixed_trailer(&file, &smuggled);
    assert_fails_with(
        &file,
        key,
        &["bundle.idempotency-unrecorded", "bundle.token-unrecorded"],
    );
}
