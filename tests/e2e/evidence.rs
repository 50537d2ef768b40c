//! Evidence through the real server and CLI: uploads stored by their hash,
//! downloads that re-check it, tampering that `custody verify` names, the
//! size limit, link capture with its address refusals, rechecks that catch a
//! changed page, and the S3 backend (moto's real S3 API server).

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use crate::common;

#[path = "../../crates/custody-evidence/tests/common/moto.rs"]
#[allow(dead_code)]
pub(crate) mod moto;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::response::IntoResponse as _;
use common::{stderr, HttpStub, Server, TestStore, STORES};
use serde_json::Value;

/// Bytes that differ from run to run and compress poorly.
fn random_bytes(length: usize) -> Vec<u8> {
    let mut state = u64::from_str_radix(&common::uuid_like()[..16], 16).unwrap() | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    custody_core::hex::encode(&sha2::Sha256::digest(bytes))
}

fn blob_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(directory) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn request(server: &Server, token: &str, entitlement: &str) -> String {
    server
        .cli_ok(
            token,
            &[
                "request",
                "--subject",
                "user:alice",
                "--entitlement",
                entitlement,
                "--justification",
                "audit evidence",
            ],
        )
        .trim()
        .to_string()
}

/// The sorted codes of the findings above info (an info finding, such as the
/// young tail of the live log, says nothing is wrong).
fn codes(report: &Value) -> Vec<String> {
    let mut codes: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|finding| finding["severity"] != "info")
        .map(|finding| finding["code"].as_str().unwrap().to_string())
        .collect();
    codes.sort();
    codes
}

#[test]
fn uploads_are_stored_by_hash_and_every_tampering_is_named() {
    for store in STORES {
        uploads_and_tampering(store);
    }
}

fn uploads_and_tampering(store: TestStore) {
    let (server, _) = Server::start_on(store, None, None);
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let first = request(&server, &alice, "role/a");
    let second = request(&server, &alice, "role/b");
    let content = random_bytes(3 * 1024 * 1024 + 17);
    let sha = sha256_hex(&content);
    let file = server.root.path().join("access-review.pdf");
    std::fs::write(&file, &content).unwrap();

    let outcome = server.cli_json(
        &alice,
        &[
            "attach",
            &first,
            file.to_str().unwrap(),
            "--media-type",
            "application/pdf",
        ],
    );
    assert_eq!(outcome["appended"][0]["kind"], "evidence_attached");
    // The same bytes attached to another case are stored once.
    server.cli_ok(&bob, &["attach", &second, file.to_str().unwrap()]);
    let evidence_root = server.data.join("evidence");
    let stored = blob_files(&evidence_root.join("sha256"));
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].file_name().unwrap().to_str().unwrap(), sha);
    assert!(blob_files(&evidence_root.join("tmp")).is_empty());

    let event = server
        .events(&alice, &first)
        .into_iter()
        .find(|event| event["kind"] == "evidence_attached")
        .unwrap();
    assert_eq!(event["payload"]["sha256"], sha.as_str());
    assert_eq!(event["payload"]["size"], content.len() as u64);
    assert_eq!(event["payload"]["file_name"], "access-review.pdf");
    assert_eq!(event["payload"]["declared_media_type"], "application/pdf");
    assert_eq!(
        event["payload"]["sniffed_media_type"],
        "application/octet-stream"
    );
    assert_eq!(event["actor"]["principal"], "alice");
    let listed = server.cli_json(&alice, &["evidence", "list", &first]);
    assert_eq!(listed["evidence"].as_array().unwrap().len(), 1);

    // Download re-checks the hash.
    let out = server.root.path().join("downloaded.pdf");
    server.cli_ok(
        &bob,
        &[
            "evidence",
            "get",
            &first,
            &sha,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&out).unwrap(), content);
    // A hash the case does not hold is not served.
    let other = sha256_hex(b"something else");
    let missing = server.cli(
        Some(&bob),
        &["evidence", "get", &first, &other, "--out", "/dev/null"],
    );
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    let report = server.assert_verify_ok();
    assert_eq!(report["checked"]["evidence_blobs"], 1, "{report:#}");

    // One byte altered: the download refuses to keep it, and verify names both cases.
    let mut altered = content.clone();
    altered[1000] ^= 0x01;
    std::fs::write(&stored[0], &altered).unwrap();
    let out2 = server.root.path().join("tampered.pdf");
    let output = server.cli(
        Some(&bob),
        &[
            "evidence",
            "get",
            &first,
            &sha,
            "--out",
            out2.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("evidence.hash-mismatch"),
        "{}",
        stderr(&output)
    );
    assert!(!out2.exists() && !out2.with_extension("partial").exists());
    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        codes(&report),
        ["evidence.blob-altered", "evidence.blob-altered"],
        "{report:#}"
    );

    // Deleted: verify names the missing blob.
    std::fs::remove_file(&stored[0]).unwrap();
    let (_, report) = server.verify_with(&[]);
    assert_eq!(
        codes(&report),
        ["evidence.blob-missing", "evidence.blob-missing"],
        "{report:#}"
    );
    let cases: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|finding| finding["severity"] != "info")
        .map(|finding| finding["case_id"].as_str().unwrap())
        .collect();
    assert!(cases.contains(&first.as_str()) && cases.contains(&second.as_str()));

    // Put back, plus a blob nobody references.
    std::fs::write(&stored[0], &content).unwrap();
    let stray = b"not evidence of anything";
    let stray_sha = sha256_hex(stray);
    let stray_path = evidence_root
        .join("sha256")
        .join(&stray_sha[..2])
        .join(&stray_sha);
    std::fs::create_dir_all(stray_path.parent().unwrap()).unwrap();
    std::fs::write(&stray_path, stray).unwrap();
    let (_, report) = server.verify_with(&[]);
    assert_eq!(codes(&report), ["evidence.blob-unreferenced"], "{report:#}");
    assert!(report["findings"][0]["message"]
        .as_str()
        .unwrap()
        .contains(&stray_sha));
}

#[test]
fn an_upload_over_the_limit_leaves_nothing_behind() {
    for store in STORES {
        over_the_limit(store);
    }
}

fn over_the_limit(store: TestStore) {
    let config = "[evidence]\nmax_upload_bytes = 1048576\n";
    let (server, _) = Server::start_on(store, None, Some(config));
    let alice = server.principal("alice");
    let case = request(&server, &alice, "role/a");
    let before = server.log_size();
    let file = server.root.path().join("big.bin");
    std::fs::write(&file, random_bytes(2 * 1024 * 1024)).unwrap();
    let output = server.cli(Some(&alice), &["attach", &case, file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("evidence.too-large"),
        "{}",
        stderr(&output)
    );

    // Without a Content-Length the limit is enforced while streaming.
    let url = format!("{}/v1/cases/{case}/evidence?name=big.bin", server.url);
    // Its own connection: the server closes it after refusing the rest.
    let client = common::http_client();
    let token = alice.clone();
    let status = server.runtime().block_on(async move {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            (0..40).map(|_| Ok(vec![7u8; 64 * 1024])).collect();
        let body = reqwest::Body::wrap_stream(futures_util_stream(chunks));
        client
            .post(url)
            .bearer_auth(token)
            .header("idempotency-key", "too-large-stream")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 413);
    assert_eq!(server.log_size(), before, "nothing was appended");
    assert!(
        blob_files(&server.data.join("evidence")).is_empty(),
        "{:?}",
        blob_files(&server.data.join("evidence"))
    );
    // A file within the limit goes through.
    let small = server.root.path().join("small.bin");
    std::fs::write(&small, random_bytes(1024)).unwrap();
    server.cli_ok(&alice, &["attach", &case, small.to_str().unwrap()]);
    server.assert_verify_ok();
}

/// A stream of the given chunks (reqwest's `wrap_stream` wants a `Stream`).
fn futures_util_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core_stream::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_core_stream::iter(chunks)
}

mod futures_core_stream {
    pub use futures_util::stream::{iter, Stream};
}

/// A web page whose content the test changes.
struct Page {
    url: String,
    body: Arc<Mutex<String>>,
    _stub: HttpStub,
}

impl Page {
    fn start(initial: &str) -> Page {
        let body = Arc::new(Mutex::new(initial.to_string()));
        let served = body.clone();
        let app = axum::Router::new()
            .route(
                "/wiki/access-policy",
                axum::routing::get(move || {
                    let served = served.clone();
                    async move { served.lock().unwrap().clone() }
                }),
            )
            .route(
                "/missing",
                axum::routing::get(|| async {
                    (axum::http::StatusCode::NOT_FOUND, "no such page, sorry")
                }),
            )
            .route(
                "/to-c1",
                axum::routing::get(|| async {
                    // A Location with a C1 CSI (U+009B) and a bidi override,
                    // which HTTP allows as obs-text bytes.
                    let mut response = axum::http::StatusCode::FOUND.into_response();
                    response.headers_mut().insert(
                        axum::http::header::LOCATION,
                        axum::http::HeaderValue::from_bytes(
                            "/next\u{9b}2J\u{9b}31m\u{202e}fdp.exe".as_bytes(),
                        )
                        .unwrap(),
                    );
                    response
                }),
            );
        let stub = HttpStub::serve(app, 1);
        Page {
            url: format!("{}/wiki/access-policy", stub.base),
            body,
            _stub: stub,
        }
    }
}

#[test]
fn links_are_captured_refused_or_unverified_and_rechecks_catch_changes() {
    for store in STORES {
        links(store);
    }
}

fn links(store: TestStore) {
    let page = Page::start("<html><body>Access policy v1</body></html>");
    // The test's page is on loopback, so this deployment allows 127.0.0.1.
    let config = "[evidence.fetch]\ntimeout_seconds = 3\nallow = [\"127.0.0.1\"]\n";
    let (server, _) = Server::start_on(store, None, Some(config));
    let alice = server.principal("alice");
    let case = request(&server, &alice, "role/a");
    let outcome = server.cli_json(&alice, &["attach", &case, "--url", &page.url]);
    assert_eq!(outcome["appended"][0]["kind"], "evidence_attached");
    let event = server
        .events(&alice, &case)
        .into_iter()
        .find(|event| event["kind"] == "evidence_attached")
        .unwrap();
    let link = &event["payload"]["link"];
    assert_eq!(link["url"], page.url.as_str());
    assert_eq!(link["final_url"], page.url.as_str());
    assert_eq!(link["status"], 200);
    assert_eq!(event["payload"]["sniffed_media_type"], "text/html");
    let first_sha = event["payload"]["sha256"].as_str().unwrap().to_string();
    assert_eq!(
        first_sha,
        sha256_hex(b"<html><body>Access policy v1</body></html>")
    );

    // A link that cannot be fetched is recorded as unverified, and verify says so.
    let dead = "http://127.0.0.1:9/nothing-listens-here";
    let outcome = server.cli_json(&alice, &["attach", &case, "--url", dead]);
    assert_eq!(outcome["appended"][0]["kind"], "evidence_unverified");

    // Unchanged: the recheck records it.
    let recheck = server.cli_json(&server.admin_token, &["evidence", "recheck", &case]);
    let rechecked = recheck["rechecked"].as_array().unwrap();
    assert_eq!(
        rechecked.len(),
        1,
        "only captured links are rechecked: {recheck}"
    );
    assert_eq!(rechecked[0]["drifted"], false);
    let (_, report) = server.verify_with(&[]);
    assert_eq!(codes(&report), ["evidence.link-unverified"], "{report:#}");

    // The page changes: the next recheck records the drift, and verify names it.
    *page.body.lock().unwrap() =
        "<html><body>Access policy v2: anyone may approve</body></html>".to_string();
    let recheck = server.cli_json(&server.admin_token, &["evidence", "recheck", &case]);
    assert_eq!(recheck["rechecked"][0]["drifted"], true);
    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        codes(&report),
        ["evidence.link-drifted", "evidence.link-unverified"],
        "{report:#}"
    );
    // Both versions are kept, and both are downloadable from the case.
    let out = server.root.path().join("v1.html");
    server.cli_ok(
        &alice,
        &[
            "evidence",
            "get",
            &case,
            &first_sha,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "<html><body>Access policy v1</body></html>"
    );
}

#[test]
fn every_private_address_class_is_refused_and_nothing_is_recorded() {
    let page = Page::start("internal");
    let (server, _) = Server::start_on(TestStore::Embedded, None, None);
    let alice = server.principal("alice");
    let case = request(&server, &alice, "role/a");
    let before = server.log_size();
    let port = page
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let refused = [
        (
            format!("http://127.0.0.1:{port}/wiki/access-policy"),
            "loopback",
        ),
        ("http://[::1]/".to_string(), "loopback"),
        ("http://localhost/".to_string(), "loopback"),
        ("http://10.1.2.3/".to_string(), "private"),
        ("http://172.16.0.1/".to_string(), "private"),
        ("http://192.168.1.1/".to_string(), "private"),
        ("http://[fc00::1]/".to_string(), "private"),
        ("http://169.254.1.1/".to_string(), "link-local"),
        ("http://[fe80::1]/".to_string(), "link-local"),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "metadata",
        ),
        ("http://metadata.google.internal/".to_string(), "metadata"),
        ("http://0.0.0.0/".to_string(), "unspecified"),
        ("http://100.64.0.1/".to_string(), "carrier-grade-nat"),
        ("http://[::ffff:127.0.0.1]/".to_string(), "loopback"),
        ("http://224.0.0.1/".to_string(), "multicast"),
        ("http://2130706433/".to_string(), "loopback"),
    ];
    for (url, class) in &refused {
        let output = server.cli(Some(&alice), &["attach", &case, "--url", url]);
        assert_eq!(output.status.code(), Some(1), "{url}: {}", stderr(&output));
        let text = stderr(&output);
        assert!(text.contains("evidence.address-refused"), "{url}: {text}");
        assert!(
            text.contains(class),
            "{url} should be refused as {class}: {text}"
        );
    }
    for url in ["file:///etc/passwd", "http://user:secret@example.com/"] {
        let output = server.cli(Some(&alice), &["attach", &case, "--url", url]);
        assert_eq!(output.status.code(), Some(1), "{url}: {}", stderr(&output));
    }
    assert_eq!(server.log_size(), before, "refusals record nothing");
    assert!(blob_files(&server.data.join("evidence")).is_empty());
}

#[test]
fn the_s3_backend_stores_serves_and_verifies_evidence() {
    for store in STORES {
        s3_backend(store);
    }
}

fn s3_backend(store: TestStore) {
    let bucket = format!("custody-e2e-{}", &common::uuid_like()[..12]);
    let staging = tempfile::tempdir().unwrap();
    let s3 = moto::config(&bucket, staging.path().to_path_buf());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let blobs = custody_evidence::S3BlobStore::new(s3.clone()).unwrap();
    runtime.block_on(blobs.create_bucket()).unwrap();
    let config = format!(
        "[evidence.store]\nbackend = \"s3\"\nendpoint = \"{}\"\nbucket = \"{bucket}\"\nregion = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nprefix = \"evidence\"\n",
        s3.endpoint, s3.region, s3.access_key_id, s3.secret_access_key
    );
    let (server, _) = Server::start_on(store, None, Some(&config));
    let alice = server.principal("alice");
    let case = request(&server, &alice, "role/a");
    let content = random_bytes(200_000);
    let sha = sha256_hex(&content);
    let file = server.root.path().join("review.csv");
    std::fs::write(&file, &content).unwrap();
    server.cli_ok(&alice, &["attach", &case, file.to_str().unwrap()]);
    // Stored in the bucket, not in the data directory.
    assert!(blob_files(&server.data.join("evidence").join("sha256")).is_empty());
    let digest: custody_evidence::Sha256Digest = sha.parse().unwrap();
    assert!(runtime
        .block_on(custody_evidence::BlobStore::exists(&blobs, &digest))
        .unwrap());
    let out = server.root.path().join("back.csv");
    server.cli_ok(
        &alice,
        &[
            "evidence",
            "get",
            &case,
            &sha,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&out).unwrap(), content);
    // verify reads the same bucket through the configuration file.
    let config_path = server.config_path().unwrap();
    let (output, report) = server.verify_with(&["--config", config_path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(report["checked"]["evidence_blobs"], 1);
    // Deleted from the bucket: verify names it.
    runtime
        .block_on(custody_evidence::BlobStore::delete(&blobs, &digest))
        .unwrap();
    let (_, report) = server.verify_with(&["--config", config_path.to_str().unwrap()]);
    assert_eq!(codes(&report), ["evidence.blob-missing"], "{report:#}");
}

#[test]
fn evidence_for_a_ticket_waits_for_the_case_that_carries_it() {
    for store in STORES {
        held_for_ticket(store);
    }
}

fn held_for_ticket(store: TestStore) {
    let (server, _) = Server::start_on(store, None, None);
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let content = random_bytes(50_000);
    let sha = sha256_hex(&content);
    let file = server.root.path().join("approval-screenshot.png");
    std::fs::write(&file, &content).unwrap();

    // No case carries jira:SEC-9 yet: the evidence is held in its record.
    let held = server.cli_json(
        &bob,
        &["attach", "--ticket", "jira:SEC-9", file.to_str().unwrap()],
    );
    assert_eq!(held["appended"][0]["kind"], "evidence_held");
    let record = held["case_id"].as_str().unwrap().to_string();
    server.assert_verify_ok();

    // The request that carries the ticket takes it in.
    let case = server
        .cli_ok(
            &alice,
            &[
                "request",
                "--subject",
                "user:alice",
                "--entitlement",
                "db-admin",
                "--ticket",
                "jira:SEC-9",
                "--justification",
                "migration",
            ],
        )
        .trim()
        .to_string();
    assert_ne!(case, record);
    let events = server.events(&alice, &case);
    let joined = events
        .iter()
        .find(|event| event["kind"] == "evidence_joined")
        .expect("the held evidence joined the case");
    assert_eq!(joined["payload"]["record"], record.as_str());
    assert_eq!(joined["payload"]["evidence"][0]["sha256"], sha.as_str());
    let out = server.root.path().join("joined.png");
    server.cli_ok(
        &alice,
        &[
            "evidence",
            "get",
            &case,
            &sha,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&out).unwrap(), content);

    // Later evidence for the ticket goes straight to the case.
    let later = server.root.path().join("later.txt");
    std::fs::write(&later, b"follow-up").unwrap();
    let outcome = server.cli_json(
        &bob,
        &["attach", "--ticket", "jira:SEC-9", later.to_str().unwrap()],
    );
    assert_eq!(outcome["case_id"], case.as_str());
    assert_eq!(outcome["appended"][0]["kind"], "evidence_attached");
    let report = server.assert_verify_ok();
    assert_eq!(report["checked"]["evidence_blobs"], 2, "{report:#}");
    assert!(report["checked"]["case_links"].as_u64().unwrap() >= 2);
}

#[test]
fn a_merged_duplicate_takes_no_evidence_and_nothing_is_stored() {
    let (server, _) = Server::start_on(TestStore::Embedded, None, None);
    let alice = server.principal("alice");
    let survivor = request(&server, &alice, "role/a");
    let duplicate = request(&server, &alice, "role/b");
    // The requester of both cases merges them (an unrelated principal may not).
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
    let before = server.log_size();
    let file = server.root.path().join("late.txt");
    std::fs::write(&file, random_bytes(10_000)).unwrap();
    let output = server.cli(
        Some(&alice),
        &["attach", &duplicate, file.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("lifecycle.case-merged"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.log_size(), before);
    assert!(blob_files(&server.data.join("evidence")).is_empty());
    // The survivor takes it.
    server.cli_ok(&alice, &["attach", &survivor, file.to_str().unwrap()]);
    server.assert_verify_ok();
}

/// Stop 26's API fuzzing: a write refused after its upload was stored left
/// the blob behind, referenced by nothing (`evidence.blob-unreferenced`).
/// A refused write now lets go of the blob its own upload stored, and
/// keeps one that another write records.
#[test]
fn a_write_refused_after_its_upload_was_stored_leaves_no_blob_behind() {
    for store in STORES {
        refused_after_upload(store);
    }
}

fn refused_after_upload(store: TestStore) {
    let (server, _) = Server::start_on(store, None, None);
    let alice = server.principal("alice");
    let case = request(&server, &alice, "role/a");
    let upload = |path: &str, key: &str, bytes: &[u8]| {
        server.http(
            "POST",
            path,
            Some(&alice),
            &[("idempotency-key", key)],
            common::Body::Raw(bytes.to_vec(), Some("application/octet-stream")),
        )
    };
    let stored_blobs = || {
        blob_files(&server.data.join("evidence"))
            .into_iter()
            .filter(|path| !path.to_string_lossy().contains(".tmp"))
            .collect::<Vec<_>>()
    };
    let first = random_bytes(4096);
    let attached = upload(&format!("/v1/cases/{case}/evidence"), "reused-key", &first);
    assert_eq!(attached.status, 200, "{}", attached.text);
    let kept = stored_blobs();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let before = server.log_size();

    // The same idempotency key with other content: refused once the body
    // is stored (the key's first write named other bytes).
    let other = random_bytes(5000);
    let refused = upload(&format!("/v1/cases/{case}/evidence"), "reused-key", &other);
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(server.log_size(), before, "nothing was recorded");
    assert_eq!(stored_blobs(), kept, "the refused upload's blob was let go");
    // The same for evidence held for a reference.
    let held = upload(
        "/v1/evidence?ticket=jira:SEC-9",
        "held-key",
        &random_bytes(300),
    );
    assert_eq!(held.status, 200, "{}", held.text);
    let kept = stored_blobs();
    let refused = upload(
        "/v1/evidence?ticket=jira:SEC-9",
        "held-key",
        &random_bytes(301),
    );
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(stored_blobs(), kept);

    // Content already stored and recorded stays when a write of it is
    // refused: the first write's evidence is not touched.
    let before = server.log_size();
    let refused = upload(&format!("/v1/cases/{case}/evidence"), "held-key", &first);
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(server.log_size(), before);
    assert_eq!(stored_blobs(), kept);
    let download = server.http(
        "GET",
        &format!("/v1/cases/{case}/evidence/{}", sha256_hex(&first)),
        Some(&alice),
        &[],
        common::Body::None,
    );
    assert_eq!(download.status, 200, "{}", download.text);
    server.assert_verify_ok();
}

/// The base URL (`http://host:port`) of a page.
fn base_of(page: &Page) -> String {
    page.url.trim_end_matches("/wiki/access-policy").to_string()
}

/// Issue 10: a captured link that answers an error used to leave its body
/// as a blob no event references (`evidence.blob-unreferenced`, no case).
/// Now nothing is stored, the link is recorded as unverified, and verify
/// reports only that.
#[test]
fn a_link_that_answers_an_error_leaves_no_unreferenced_blob() {
    let page = Page::start("unused");
    let config = "[evidence.fetch]\ntimeout_seconds = 3\nallow = [\"127.0.0.1\"]\n";
    let (server, _) = Server::start_on(TestStore::Embedded, None, Some(config));
    let alice = server.principal("alice");
    let case = request(&server, &alice, "role/a");
    let missing = format!("{}/missing", base_of(&page));
    let outcome = server.cli_json(&alice, &["attach", &case, "--url", &missing]);
    assert_eq!(outcome["appended"][0]["kind"], "evidence_unverified");
    let event = server
        .events(&alice, &case)
        .into_iter()
        .find(|event| event["kind"] == "evidence_unverified")
        .unwrap();
    let error = event["payload"]["error"].as_str().unwrap();
    assert!(error.contains("answered HTTP 404"), "{error}");
    assert!(
        blob_files(&server.data.join("evidence"))
            .iter()
            .all(|path| !path.to_string_lossy().contains("sha256")),
        "no blob may be stored for an error page: {:?}",
        blob_files(&server.data.join("evidence"))
    );
    let (_, report) = server.verify_with(&[]);
    assert_eq!(codes(&report), ["evidence.link-unverified"], "{report:#}");
}

/// Issue 10: a remote server put a C1 control (U+009B, the 8-bit CSI) into
/// the ledger through a redirect's `Location`, and `evidence list` printed
/// it. The remote text is escaped before it is stored, and the list shows
/// the escape.
#[test]
fn a_redirect_location_with_a_c1_control_is_stored_and_listed_escaped() {
    let page = Page::start("unused");
    let config = "[evidence.fetch]\ntimeout_seconds = 3\nallow = [\"127.0.0.1\"]\n";
    let (server, _) = Server::start_on(TestStore::Embedded, None, Some(config));
    let alice = server.principal("alice");
    let case = request(&server, &alice, "role/a");
    let link = format!("{}/to-c1", base_of(&page));
    let outcome = server.cli_json(&alice, &["attach", &case, "--url", &link]);
    assert_eq!(outcome["appended"][0]["kind"], "evidence_unverified");
    // What the server stored (read over the API, not through the CLI).
    let stored = server.get_json(&format!("/v1/cases/{case}/evidence"));
    let error = stored["evidence"][0]["payload"]["error"].as_str().unwrap();
    assert!(
        !error.chars().any(custody_core::text::is_unsafe_char),
        "a remote string reached the ledger raw: {error:?}"
    );
    assert!(
        error.contains(r"/next\u{9b}2J\u{9b}31m\u{202e}fdp.exe"),
        "{error}"
    );
    let listed = server.cli_ok(&alice, &["evidence", "list", &case]);
    assert!(
        !listed
            .chars()
            .any(|c| c != '\n' && custody_core::text::is_unsafe_char(c)),
        "{listed:?}"
    );
    assert!(listed.contains(r"\u{9b}2J"), "{listed}");
}

/// Issue 10: `name=%ff%fe` was recorded as U+FFFD characters. A name that
/// is not UTF-8 is refused, and so is one outside the identifier rules (a
/// bidi override that makes `\u{202e}fdp.exe` show as `exe.pdf`); nothing is
/// stored or appended.
#[test]
fn evidence_names_that_are_not_utf8_or_not_identifiers_are_refused() {
    let (server, _) = Server::start_on(TestStore::Embedded, None, None);
    let alice = server.principal("alice");
    let case = request(&server, &alice, "role/a");
    let before = server.log_size();
    for (query, expected) in [
        ("name=%ff%fe", "`name` is not percent-encoded UTF-8"),
        (
            "name=report%C0%AE.pdf",
            "`name` is not percent-encoded UTF-8",
        ),
        (
            "name=%E2%80%AEfdp.exe",
            r"name holds the character `\u{202e}` (U+202E) at position 1",
        ),
        (
            "name=a%E2%80%8Bb.pdf",
            r"name holds the character `\u{200b}` (U+200B) at position 2",
        ),
        (
            "name=a%0Db.pdf",
            r"name holds the character `\u{d}` (U+000D) at position 2",
        ),
        (
            "name=%D0%B0.pdf",
            r"name holds the character `\u{430}` (U+0430) at position 1",
        ),
    ] {
        for path in [
            format!("/v1/cases/{case}/evidence?{query}"),
            format!("/v1/evidence?ticket=jira:SEC-3&{query}"),
        ] {
            let response = server.http(
                "POST",
                &path,
                Some(&alice),
                &[("idempotency-key", &common::uuid_like())],
                common::Body::Raw(b"evidence bytes".to_vec(), Some("text/plain")),
            );
            assert_eq!(response.status, 400, "{path}: {}", response.text);
            assert_eq!(
                response.content_type.as_deref(),
                Some("application/problem+json"),
                "{path}"
            );
            let detail = response.json["detail"].as_str().unwrap();
            assert!(detail.contains(expected), "{path}: {detail}");
        }
    }
    // POST /v1/evidence without a ticket is a problem+json too.
    let response = server.http(
        "POST",
        "/v1/evidence?name=a.pdf",
        Some(&alice),
        &[("idempotency-key", "no-ticket")],
        common::Body::Raw(b"x".to_vec(), None),
    );
    assert_eq!(response.status, 400, "{}", response.text);
    assert_eq!(
        response.content_type.as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(server.log_size(), before);
    assert!(
        blob_files(&server.data.join("evidence"))
            .iter()
            .all(|path| !path.to_string_lossy().contains("sha256")),
        "a refused upload stores nothing"
    );
    // A good name with a space and parentheses is an identifier.
    let good = server.http(
        "POST",
        &format!("/v1/cases/{case}/evidence?name=Q3%20review%20(final).pdf"),
        Some(&alice),
        &[("idempotency-key", "good-name")],
        common::Body::Raw(b"%PDF-1.7 review".to_vec(), None),
    );
    assert_eq!(good.status, 200, "{}", good.text);
    assert_eq!(
        good.json["appended"][0]["kind"], "evidence_attached",
        "{}",
        good.text
    );
}

/// Issue 10: `attach --ticket` answered with the evidence record's ID in
/// `case_id`, and `custody show` said that ID does not exist. The answer now
/// says what the ID is, and `show` (and the API) display the record.
#[test]
fn a_held_upload_names_its_record_and_show_displays_it() {
    let (server, _) = Server::start_on(TestStore::Embedded, None, None);
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let file = server.root.path().join("screenshot.png");
    std::fs::write(&file, b"\x89PNG held").unwrap();
    let held = server.cli_json(
        &bob,
        &["attach", "--ticket", "jira:SEC-5", file.to_str().unwrap()],
    );
    assert_eq!(held["held"], true, "{held:#}");
    let record = held["record_id"].as_str().unwrap().to_string();
    assert_eq!(held["case_id"], record.as_str(), "kept for older clients");
    let message = held["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("evidence record {record}")) && message.contains("jira:SEC-5"),
        "{message}"
    );

    let human = server.cli_ok(
        &bob,
        &["attach", "--ticket", "jira:SEC-5", file.to_str().unwrap()],
    );
    assert!(
        human.contains(&format!("evidence record {record}"))
            && human.contains(&format!("custody show {record}")),
        "{human}"
    );

    let shown = server.cli_ok(&alice, &["show", &record]);
    assert!(
        shown.starts_with(&format!("{record}  EVIDENCE RECORD")),
        "{shown}"
    );
    assert!(shown.contains("ticket:  jira:SEC-5"), "{shown}");
    assert!(shown.contains("held until a case is requested"), "{shown}");
    let document = server.cli_json(&alice, &["show", &record]);
    assert_eq!(document["kind"], "evidence_record");
    assert_eq!(document["record_id"], record.as_str());
    assert_eq!(document["events"][0]["kind"], "evidence_held");
    let api = server.get_json(&format!("/v1/evidence/records/{record}"));
    assert_eq!(api["ticket"], "jira:SEC-5");

    // Once a case carries the ticket, the record says where its evidence went.
    let case = server
        .cli_ok(
            &alice,
            &[
                "request",
                "--subject",
                "user:alice",
                "--entitlement",
                "db-admin",
                "--ticket",
                "JIRA:sec-5",
                "--justification",
                "migration",
            ],
        )
        .trim()
        .to_string();
    let shown = server.cli_ok(&alice, &["show", &record]);
    assert!(
        shown.contains(&format!("released to case {case}")),
        "{shown}"
    );
    let later = server.cli_json(
        &bob,
        &["attach", "--ticket", "jira:SEC-5", file.to_str().unwrap()],
    );
    assert_eq!(later["held"], false);
    assert_eq!(later["record_id"], Value::Null);
    assert_eq!(later["case_id"], case.as_str());

    // An ID that is neither a case nor a record is still "not found".
    let unknown = server.cli(
        Some(&alice),
        &["show", "AC-0190f0a0b0c07d8e9fa0b1c2d3e4f5a6"],
    );
    assert_eq!(unknown.status.code(), Some(1), "{}", stderr(&unknown));
    server.assert_verify_ok();
}
