//! The tamper-evident log over HTTP and the CLI: signed checkpoints, entries,
//! inclusion and consistency proofs, offline case proofs, the periodic
//! signer and key rotation, each checked against a real `custody serve` with
//! the `custody-log` verifiers (never with the server's own word).

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{assert_success, assert_verify_ok, copy_dir, verify_dir_with, Body, Response, Server};
use custody_core::Event;
use custody_log::note::SignerKey;
use custody_log::{
    leaf_hash, verify_checkpoint, verify_consistency, verify_inclusion, Checkpoint, MemoryTree,
    Note, VerifiedCheckpoint, VerifierKey,
};
use serde_json::{json, Value};

/// A server that signs checkpoints only when asked.
const QUIET: &str = "[log]\ncheckpoint_interval_seconds = 3600\n";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|error| panic!("{text:?} is not standard base64: {error}"))
}

fn hashes(value: &Value) -> Vec<[u8; 32]> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list of hashes: {value}"))
        .iter()
        .map(|hash| {
            unb64(hash.as_str().expect("a base64 string"))
                .try_into()
                .expect("32-byte hash")
        })
        .collect()
}

fn key(text: &str) -> VerifierKey {
    VerifierKey::parse(text.trim()).unwrap_or_else(|error| panic!("{text:?}: {error}"))
}

#[track_caller]
fn verified(note: &str, keys: &[VerifierKey]) -> VerifiedCheckpoint {
    verify_checkpoint(note.as_bytes(), keys)
        .unwrap_or_else(|error| panic!("checkpoint does not verify: {error}\n{note}"))
}

/// Asserts an RFC 9457 problem with `status` and `problem_type`.
#[track_caller]
fn assert_problem(response: &Response, status: u16, problem_type: &str) {
    assert_eq!(response.status, status, "{}", response.text);
    assert!(
        response
            .content_type
            .as_deref()
            .is_some_and(|value| value.starts_with("application/problem+json")),
        "content type {:?}: {}",
        response.content_type,
        response.text
    );
    assert_eq!(response.json["type"], problem_type, "{}", response.text);
    assert_eq!(response.json["status"], status, "{}", response.text);
}

const INVALID: &str = "urn:custody:problem:invalid-request";

/// Opens `cases` cases with `comments` comments each, concurrently (8
/// writers), through the HTTP API; returns the case IDs.
fn write_cases(
    server: &Server,
    token: &str,
    tag: &str,
    cases: usize,
    comments: usize,
) -> Vec<String> {
    const WRITERS: usize = 8;
    let handles: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let client = server.client();
            let url = server.url.clone();
            let token = token.to_string();
            let tag = tag.to_string();
            server.runtime().spawn(async move {
                let post = |path: String, key: String, body: Value| {
                    let request = client
                        .post(format!("{url}{path}"))
                        .bearer_auth(&token)
                        .header("idempotency-key", key)
                        .json(&body);
                    async move {
                        let response = request.send().await.expect("send a write");
                        let status = response.status().as_u16();
                        let value: Value = response.json().await.expect("a JSON answer");
                        assert!((200..300).contains(&status), "{path}: {status} {value}");
                        value
                    }
                };
                let mut ids = Vec::new();
                for n in (writer..cases).step_by(WRITERS) {
                    let outcome = post(
                        "/v1/cases".to_string(),
                        format!("{tag}-request-{n}"),
                        json!({
                            "subject": {"kind": "user", "id": format!("{tag}-{n}")},
                            "entitlement": "reader",
                            "justification": format!("case {n} of {tag}"),
                        }),
                    )
                    .await;
                    let case = outcome["case_id"].as_str().expect("case_id").to_string();
                    for k in 0..comments {
                        post(
                            format!("/v1/cases/{case}/comments"),
                            format!("{tag}-comment-{n}-{k}"),
                            json!({"text": format!("comment {k} on case {n}")}),
                        )
                        .await;
                    }
                    ids.push(case);
                }
                ids
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|handle| server.runtime().block_on(handle).expect("writer panicked"))
        .collect()
}

/// `GET /v1/log/entries?start=..&end=..` as `token`; panics unless 200.
fn entries(server: &Server, token: &str, start: u64, end: u64) -> Vec<Value> {
    let path = format!("/v1/log/entries?start={start}&end={end}");
    let response = server.http("GET", &path, Some(token), &[], Body::None);
    assert_eq!(response.status, 200, "{path}: {}", response.text);
    response.json["entries"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{path}: no entries list: {}", response.text))
}

#[test]
fn checkpoints_entries_and_proofs_over_http_verify_independently() {
    let (server, report) = Server::start_configured(None, Some(QUIET));
    let init_key = report["verifier_key"].as_str().unwrap().to_string();
    let trusted = [key(&init_key)];
    let origin = init_key.split('+').next().unwrap().to_string();
    let alice = server.principal("alice");

    // A served log is never empty: `init` recorded the first admin and its
    // token in the administration record, and before serving the server
    // recorded the adoption of its policy and signed a checkpoint of the
    // three as it started. Alice's addition and token came after it.
    assert_eq!(server.log_size(), 5);
    let start = server.http("GET", "/v1/log/checkpoint", None, &[], Body::None);
    assert_eq!(start.status, 200, "{}", start.text);
    let start_checkpoint = verified(&start.text, &trusted);
    assert_eq!(start_checkpoint.size(), 3);
    let setup = entries(&server, &alice, 0, 3);
    assert_eq!(setup.len(), 3);
    let setup_leaves: Vec<Vec<u8>> = setup
        .iter()
        .map(|entry| unb64(entry["leaf"].as_str().expect("leaf")))
        .collect();
    let kinds: Vec<&str> = setup_leaves
        .iter()
        .map(|leaf| {
            Event::decode(leaf)
                .expect("a canonical event")
                .body
                .kind_name()
        })
        .collect();
    assert_eq!(kinds, ["principal_added", "token_issued", "policy_adopted"]);
    let setup_hashes: Vec<_> = setup_leaves.iter().map(|leaf| leaf_hash(leaf)).collect();
    assert_eq!(
        *start_checkpoint.root_hash(),
        custody_log::root_from_leaf_hashes(&setup_hashes)
    );
    // Signing covers alice's events; then there is nothing new to sign:
    // signing returns that checkpoint unchanged.
    let start = server.http(
        "POST",
        "/v1/log/checkpoint",
        Some(&server.admin_token),
        &[],
        Body::None,
    );
    assert_eq!(start.status, 200, "{}", start.text);
    assert_eq!(verified(&start.text, &trusted).size(), 5);
    let again = server.http(
        "POST",
        "/v1/log/checkpoint",
        Some(&server.admin_token),
        &[],
        Body::None,
    );
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.text, start.text, "nothing new to sign");
    assert_eq!(
        server.cli_ok(&server.admin_token, &["log", "checkpoint"]),
        start.text
    );

    // The verifier keys are public.
    let keys = server.http("GET", "/v1/log/keys", None, &[], Body::None);
    assert_eq!(keys.status, 200, "{}", keys.text);
    assert_eq!(keys.json["origin"], origin.as_str(), "{}", keys.text);
    assert_eq!(
        keys.json["verifier_keys"],
        json!([init_key]),
        "{}",
        keys.text
    );

    // More than one page of entries, with a checkpoint in the middle.
    let mut cases = write_cases(&server, &alice, "first", 100, 4);
    let first_size = server.log_size();
    assert_eq!(first_size, 505);
    let forbidden = server.http("POST", "/v1/log/checkpoint", Some(&alice), &[], Body::None);
    assert_problem(&forbidden, 403, "urn:custody:problem:forbidden");
    let anonymous = server.http("POST", "/v1/log/checkpoint", None, &[], Body::None);
    assert_problem(&anonymous, 401, "urn:custody:problem:unauthorized");
    let first = server.http(
        "POST",
        "/v1/log/checkpoint",
        Some(&server.admin_token),
        &[],
        Body::None,
    );
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(
        first
            .content_type
            .as_deref()
            .is_some_and(|value| value.starts_with("text/plain")),
        "{:?}",
        first.content_type
    );
    let first_note = first.text.clone();
    let first_checkpoint = verified(&first_note, &trusted);
    assert_eq!(first_checkpoint.size(), first_size);
    assert_eq!(first_checkpoint.origin(), origin);

    cases.extend(write_cases(&server, &alice, "second", 106, 4));
    let size = server.log_size();
    assert_eq!(size, 1035);
    let second_note = server.sign_checkpoint();
    // Nothing new to sign: the latest is returned unchanged.
    assert_eq!(server.sign_checkpoint(), second_note);
    let latest = server.http("GET", "/v1/log/checkpoint", None, &[], Body::None);
    assert_eq!(latest.status, 200, "{}", latest.text);
    assert_eq!(latest.text, second_note, "GET returns exactly the note");
    assert_eq!(
        server.cli_ok(&alice, &["log", "checkpoint"]),
        second_note,
        "`log checkpoint` prints exactly the note"
    );
    let second_checkpoint = verified(&second_note, &trusted);
    assert_eq!(second_checkpoint.size(), server.log_size());
    let root = *second_checkpoint.root_hash();
    // Another key does not verify it.
    let stranger = SignerKey::generate(&origin).unwrap().verifier_key();
    assert!(verify_checkpoint(second_note.as_bytes(), &[stranger]).is_err());

    // Entries: exact leaf bytes, pages of at most 1000.
    let anonymous = server.http(
        "GET",
        "/v1/log/entries?start=0&end=10",
        None,
        &[],
        Body::None,
    );
    assert_problem(&anonymous, 401, "urn:custody:problem:unauthorized");
    let mut all = entries(&server, &alice, 0, 5000);
    assert_eq!(all.len(), 1000, "one page holds at most 1000 entries");
    let rest = entries(&server, &alice, 1000, 2000);
    assert_eq!(rest.len(), 35);
    all.extend(rest);
    assert_eq!(entries(&server, &alice, 7, 9).len(), 2, "end is exclusive");
    assert!(entries(&server, &alice, 5, 5).is_empty());
    assert!(entries(&server, &alice, size, size + 10).is_empty());
    let mut tree = MemoryTree::new();
    let mut leaves = Vec::new();
    for (position, entry) in all.iter().enumerate() {
        assert_eq!(entry["index"], position as u64, "{entry}");
        let leaf = unb64(entry["leaf"].as_str().expect("leaf"));
        let event = Event::decode(&leaf)
            .unwrap_or_else(|error| panic!("entry {position} is not a canonical event: {error}"));
        assert_eq!(
            event.canonical_bytes(),
            leaf,
            "entry {position}: exact bytes"
        );
        assert_eq!(entry["case_id"], event.case_id.as_str(), "{entry}");
        tree.append_data(&leaf);
        leaves.push((event, leaf));
    }
    // The checkpoint's root is the root of exactly these entries.
    assert_eq!(tree.root(), root);
    assert_eq!(tree.root_at(3).unwrap(), *start_checkpoint.root_hash());
    assert_eq!(
        tree.root_at(first_size).unwrap(),
        *first_checkpoint.root_hash()
    );
    // The entries are the cases' events.
    for case in cases.iter().step_by(37) {
        let shown: Vec<Value> = server.events(&alice, case);
        let logged: Vec<&Event> = leaves
            .iter()
            .map(|(event, _)| event)
            .filter(|event| event.case_id.as_str() == case)
            .collect();
        assert_eq!(shown.len(), 5);
        assert_eq!(logged.len(), 5);
        for (shown, logged) in shown.iter().zip(logged) {
            assert_eq!(shown["event_id"], logged.event_id.as_str());
        }
    }
    for path in [
        "/v1/log/entries?start=10&end=9",
        "/v1/log/entries?start=10",
        "/v1/log/entries?start=x&end=10",
    ] {
        let response = server.http("GET", path, Some(&alice), &[], Body::None);
        assert_problem(&response, 400, INVALID);
    }

    // Inclusion: every entry in the latest checkpoint, a sample in the first.
    for (index, (_, leaf)) in leaves.iter().enumerate() {
        let index = index as u64;
        let document = server.get_json(&format!(
            "/v1/log/proof/inclusion?index={index}&size={size}"
        ));
        assert_eq!(document["index"], index);
        assert_eq!(document["size"], size);
        let proof = hashes(&document["proof"]);
        verify_inclusion(&leaf_hash(leaf), index, size, &proof, &root)
            .unwrap_or_else(|error| panic!("inclusion of {index} in {size}: {error}"));
        if index == 17 {
            // A proof is bound to its leaf and index.
            assert!(verify_inclusion(&leaf_hash(b"other"), index, size, &proof, &root).is_err());
            assert!(verify_inclusion(&leaf_hash(leaf), index + 1, size, &proof, &root).is_err());
        }
    }
    for index in (0..first_size).step_by(13) {
        let document = server.get_json(&format!(
            "/v1/log/proof/inclusion?index={index}&size={first_size}"
        ));
        verify_inclusion(
            &leaf_hash(&leaves[index as usize].1),
            index,
            first_size,
            &hashes(&document["proof"]),
            first_checkpoint.root_hash(),
        )
        .unwrap_or_else(|error| panic!("inclusion of {index} in {first_size}: {error}"));
    }
    for path in [
        format!("/v1/log/proof/inclusion?index={size}&size={size}"),
        format!("/v1/log/proof/inclusion?index={}&size={size}", size + 5),
        format!("/v1/log/proof/inclusion?index=0&size={}", size + 1),
        "/v1/log/proof/inclusion?index=0&size=0".to_string(),
        "/v1/log/proof/inclusion?index=0".to_string(),
        "/v1/log/proof/inclusion?index=-1&size=3".to_string(),
    ] {
        let response = server.http("GET", &path, None, &[], Body::None);
        assert_problem(&response, 400, INVALID);
    }

    // Consistency between the two checkpoints, and from other sizes.
    let document = server.get_json(&format!(
        "/v1/log/proof/consistency?from={first_size}&to={size}"
    ));
    assert_eq!(document["from"], first_size);
    assert_eq!(document["to"], size);
    let proof = hashes(&document["proof"]);
    verify_consistency(
        first_size,
        size,
        first_checkpoint.root_hash(),
        &root,
        &proof,
    )
    .expect("the second checkpoint extends the first");
    second_checkpoint
        .verify_consistency_from(first_checkpoint.checkpoint(), &proof)
        .expect("the second checkpoint extends the first");
    let mut broken = proof.clone();
    broken[0][0] ^= 1;
    assert!(verify_consistency(
        first_size,
        size,
        first_checkpoint.root_hash(),
        &root,
        &broken
    )
    .is_err());
    assert!(verify_consistency(first_size, size, &leaf_hash(b"x"), &root, &proof).is_err());
    for from in [1, 2, 3, 7, 8, 9, 64, 333, 999, 1000, 1030, 1031] {
        let document = server.get_json(&format!("/v1/log/proof/consistency?from={from}&to={size}"));
        verify_consistency(
            from,
            size,
            &tree.root_at(from).unwrap(),
            &root,
            &hashes(&document["proof"]),
        )
        .unwrap_or_else(|error| panic!("consistency {from} -> {size}: {error}"));
    }
    for path in [
        format!("/v1/log/proof/consistency?from=1&to={}", size + 1),
        format!(
            "/v1/log/proof/consistency?from={}&to={}",
            size + 1,
            size + 2
        ),
        format!("/v1/log/proof/consistency?from={size}&to={first_size}"),
        "/v1/log/proof/consistency?from=0&to=5".to_string(),
        "/v1/log/proof/consistency?from=1".to_string(),
    ] {
        let response = server.http("GET", &path, None, &[], Body::None);
        assert_problem(&response, 400, INVALID);
    }
}

#[test]
fn checkpoints_signed_amid_concurrent_writes_fail_no_write() {
    let (server, report) = Server::start_configured(None, Some(QUIET));
    let trusted = [key(report["verifier_key"].as_str().unwrap())];
    let alice = server.principal("alice");
    // An admin asks for checkpoints as fast as it can while eight writers
    // append; checkpoint jobs then share group commits with case writes.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let signer = {
        let client = server.client();
        let url = server.url.clone();
        let token = server.admin_token.clone();
        let done = done.clone();
        server.runtime().spawn(async move {
            let mut notes = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let response = client
                    .post(format!("{url}/v1/log/checkpoint"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("POST /v1/log/checkpoint");
                let status = response.status().as_u16();
                let text = response.text().await.expect("a body");
                // The log is never empty (the policy's adoption is its first
                // entry), so every request signs or returns a checkpoint.
                assert_eq!(status, 200, "POST /v1/log/checkpoint: {text}");
                notes.push(text);
            }
            notes
        })
    };
    write_cases(&server, &alice, "busy", 160, 2);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let notes = server
        .runtime()
        .block_on(signer)
        .expect("the signer panicked");
    assert!(notes.len() > 1, "{} checkpoints signed", notes.len());
    let size = server.log_size();
    assert_eq!(size, 485);
    let mut previous: Option<VerifiedCheckpoint> = None;
    for note in &notes {
        let checkpoint = verified(note, &trusted);
        assert!(checkpoint.size() <= size);
        if let Some(previous) = &previous {
            assert!(checkpoint.size() >= previous.size());
            if checkpoint.size() > previous.size() {
                let document = server.get_json(&format!(
                    "/v1/log/proof/consistency?from={}&to={}",
                    previous.size(),
                    checkpoint.size()
                ));
                checkpoint
                    .verify_consistency_from(previous.checkpoint(), &hashes(&document["proof"]))
                    .expect("every checkpoint extends the one before");
            }
        }
        previous = Some(checkpoint);
    }
}

/// A case with its whole lifecycle, interleaved with another case's events.
fn lifecycle(server: &Server) -> (String, String) {
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let carol = server.principal("carol");
    let dave = server.principal("dave");
    let full = server
        .cli_ok(
            &alice,
            &[
                "request",
                "--subject",
                "user:ann",
                "--entitlement",
                "admin",
                "--justification",
                "quarterly access review",
            ],
        )
        .trim()
        .to_string();
    let other = server
        .cli_ok(
            &alice,
            &[
                "request",
                "--subject",
                "user:ben",
                "--entitlement",
                "reader",
            ],
        )
        .trim()
        .to_string();
    server.cli_ok(&bob, &["comment", &full, "looks fine to me"]);
    server.cli_ok(&bob, &["approve", &full]);
    server.cli_ok(&bob, &["comment", &other, "who is ben?"]);
    server.cli_ok(&carol, &["execute", &full]);
    server.cli_ok(&dave, &["review", &full, "--outcome", "confirmed"]);
    (full, other)
}

fn verify_proof(file: &Path, keys: &[&str]) -> (std::process::Output, Value) {
    let mut command = common::command();
    command.args(["log", "verify-proof", "--json"]).arg(file);
    for key in keys {
        command.args(["--key", key]);
    }
    let output = command.output().expect("run custody log verify-proof");
    let report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output, report)
}

#[track_caller]
fn assert_rejected(file: &Path, keys: &[&str], what: &str, reason: &str) {
    let (output, report) = verify_proof(file, keys);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{what}: the bundle must be rejected\nstdout: {}\nstderr: {}",
        common::stdout(&output),
        common::stderr(&output)
    );
    assert_eq!(report["ok"], false, "{what}: {report:#}");
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|error| error.contains(reason)),
        "{what}: expected the reason `{reason}`: {report:#}"
    );
}

#[test]
fn case_proof_verifies_offline_and_rejects_every_alteration() {
    let (mut server, report) = Server::start_configured(None, Some(QUIET));
    let init_key = report["verifier_key"].as_str().unwrap().to_string();
    let origin = init_key.split('+').next().unwrap().to_string();
    let (full, other) = lifecycle(&server);
    let size = server.log_size();
    // Init's admin and token, the policy, four principals with a token
    // each (the administration record), and the two cases.
    assert_eq!(size, 18);

    // The only checkpoint (signed as the server started) covers the policy's
    // adoption, not the case: proving signs one that covers the case.
    let bundle_file = server.root.path().join("bundle.json");
    server.cli_ok(
        &server.admin_token,
        &[
            "log",
            "prove",
            &full,
            "--out",
            bundle_file.to_str().unwrap(),
        ],
    );
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(&bundle_file).unwrap())
        .expect("the bundle is JSON");
    assert_eq!(bundle["format"], "custody-case-proof/v1");
    assert_eq!(bundle["case_id"], full.as_str());
    let checkpoint = verified(bundle["checkpoint"].as_str().unwrap(), &[key(&init_key)]);
    assert_eq!(checkpoint.size(), size);
    let events = bundle["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 5);
    // Log 0 to 10 are init's admin, the policy's adoption and four
    // principals with their tokens; the other case has 12 and 15.
    let expected_indices = [11, 13, 14, 16, 17];
    for (position, entry) in events.iter().enumerate() {
        assert_eq!(entry["index"], expected_indices[position], "{entry}");
        let leaf = unb64(entry["leaf"].as_str().unwrap());
        let event = Event::decode(&leaf).expect("a canonical event");
        assert_eq!(event.case_id.as_str(), full);
        assert_eq!(event.seq, position as u64 + 1);
        let proof = custody_log::TlogProof::parse(entry["proof"].as_str().unwrap().as_bytes())
            .expect("a C2SP tlog-proof");
        proof
            .verify(&leaf, &[key(&init_key)])
            .expect("the tlog-proof verifies on its own");
    }
    // The HTTP endpoint serves the same bundle, to token holders only.
    let served = server.get_json(&format!("/v1/cases/{full}/proof"));
    assert_eq!(served, bundle);
    let anonymous = server.http(
        "GET",
        &format!("/v1/cases/{full}/proof"),
        None,
        &[],
        Body::None,
    );
    assert_problem(&anonymous, 401, "urn:custody:problem:unauthorized");
    let missing = server.cli(
        Some(&server.admin_token),
        &[
            "log",
            "prove",
            "AC-0000000000000000000000000000000f",
            "--out",
            server.root.path().join("missing.json").to_str().unwrap(),
        ],
    );
    assert_eq!(
        missing.status.code(),
        Some(1),
        "{}",
        common::stderr(&missing)
    );

    // A later, genuine checkpoint of the same log.
    // (Ben and his token are two events of the administration record.)
    let ben = server.principal("ben");
    server.cli_ok(&ben, &["comment", &other, "it's me"]);
    let later = server.sign_checkpoint();
    assert_eq!(verified(&later, &[key(&init_key)]).size(), size + 3);

    // Another deployment, named like this log: a different key.
    let other_dir = tempfile::tempdir().unwrap();
    let init = common::command()
        .args(["init", "--json", "--origin", &origin, "--data"])
        .arg(other_dir.path().join("data"))
        .output()
        .unwrap();
    assert_success(&init, "custody init of another deployment");
    let other_report: Value = serde_json::from_slice(&init.stdout).unwrap();
    let other_key = other_report["verifier_key"].as_str().unwrap().to_string();
    assert_ne!(other_key, init_key);

    // Offline: no server runs from here on.
    server.stop();

    let (output, report) = verify_proof(&bundle_file, &[&init_key]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        common::stdout(&output),
        common::stderr(&output)
    );
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["proof"]["case_id"], full.as_str(), "{report:#}");
    assert_eq!(report["proof"]["events"], 5, "{report:#}");
    assert_eq!(report["proof"]["state"], "reviewed", "{report:#}");
    assert_eq!(report["proof"]["checkpoint_size"], size, "{report:#}");
    // Human output too; the other deployment's key beside the right one does not hurt.
    let output = common::command()
        .args(["log", "verify-proof"])
        .arg(&bundle_file)
        .args(["--key", &other_key, "--key", &init_key])
        .output()
        .unwrap();
    assert_success(&output, "verify-proof with two keys");
    assert!(
        common::stdout(&output).starts_with("ok: 5 events of"),
        "{}",
        common::stdout(&output)
    );

    // Rejected: the wrong key.
    assert_rejected(
        &bundle_file,
        &[&other_key],
        "another deployment's key",
        "the checkpoint is not signed by the given key: note has no signature from a trusted key",
    );
    let index = |position: usize| bundle["events"][position]["index"].as_u64().unwrap();

    let altered = |name: &str, change: &dyn Fn(&mut Value)| {
        let mut copy = bundle.clone();
        change(&mut copy);
        let path = other_dir.path().join(name);
        std::fs::write(&path, serde_json::to_string_pretty(&copy).unwrap()).unwrap();
        path
    };
    // One leaf byte flipped.
    let flipped = altered("flipped.json", &|bundle| {
        let entry = &mut bundle["events"][1];
        let leaf = unb64(entry["leaf"].as_str().unwrap());
        let leaf = String::from_utf8(leaf)
            .unwrap()
            .replacen("looks fine", "looks fino", 1)
            .into_bytes();
        Event::decode(&leaf).expect("still a canonical event");
        entry["leaf"] = json!(b64(&leaf));
    });
    assert_rejected(
        &flipped,
        &[&init_key],
        "a leaf byte flipped",
        &format!(
            "log entry {}: the inclusion proof does not verify",
            index(1)
        ),
    );
    // An event dropped: a middle one, or the request.
    for (name, drop, reason) in [
        (
            "dropped-middle.json",
            2,
            "event 3 has seq 4: events are missing or out of order",
        ),
        (
            "dropped-first.json",
            0,
            "event 1 has seq 2: events are missing or out of order",
        ),
    ] {
        let dropped = altered(name, &|bundle| {
            bundle["events"].as_array_mut().unwrap().remove(drop);
        });
        assert_rejected(
            &dropped,
            &[&init_key],
            name,
            &format!("the trail of case {full} is not whole: {reason}"),
        );
    }
    // Two events swapped.
    let swapped = altered("swapped.json", &|bundle| {
        bundle["events"].as_array_mut().unwrap().swap(1, 2);
    });
    assert_rejected(
        &swapped,
        &[&init_key],
        "two events swapped",
        &format!(
            "the trail of case {full} is not whole: event 2 has seq 3: events are missing or out of order"
        ),
    );
    // The checkpoint replaced: by a later genuine one, or with an edited root.
    let replaced = altered("replaced.json", &|bundle| {
        bundle["checkpoint"] = json!(later);
    });
    assert_rejected(
        &replaced,
        &[&init_key],
        "the checkpoint replaced by a later one",
        &format!(
            "log entry {}: the proof refers to a different checkpoint",
            index(0)
        ),
    );
    let root_line = b64(checkpoint.root_hash());
    let edited_note =
        bundle["checkpoint"]
            .as_str()
            .unwrap()
            .replacen(&root_line, &b64(&leaf_hash(b"forged")), 1);
    let edited = altered("edited.json", &|bundle| {
        bundle["checkpoint"] = json!(edited_note);
    });
    assert_rejected(
        &edited,
        &[&init_key],
        "the checkpoint's root line edited",
        &format!(
            "the checkpoint is not signed by the given key: invalid signature from {}",
            // The key's name and ID: `name+id+public key`.
            init_key
                .splitn(3, '+')
                .take(2)
                .collect::<Vec<_>>()
                .join("+")
        ),
    );
    // The events of another case.
    let foreign = altered("foreign.json", &|bundle| {
        bundle["case_id"] = json!(other);
    });
    assert_rejected(
        &foreign,
        &[&init_key],
        "the bundle claims another case",
        &format!(
            "log entry {}: the event belongs to case {full}, not {other}",
            index(0)
        ),
    );
}

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn log_consistency_accepts_real_checkpoints_and_refuses_forged_ones() {
    let (server, report) = Server::start_configured(None, Some(QUIET));
    let init_key = report["verifier_key"].as_str().unwrap().to_string();
    let origin = init_key.split('+').next().unwrap().to_string();
    let alice = server.principal("alice");
    write_cases(&server, &alice, "early", 3, 0);
    let old = server.sign_checkpoint();
    write_cases(&server, &alice, "late", 4, 1);
    let new = server.sign_checkpoint();
    let old_size = verified(&old, &[key(&init_key)]).size();
    assert_eq!(old_size, 8);
    let new_size = verified(&new, &[key(&init_key)]).size();
    assert_eq!(new_size, 16);
    let dir = server.root.path();
    let old_file = write_file(dir, "old.txt", &old);
    let new_file = write_file(dir, "new.txt", &new);
    let consistency = |old: &str, new: &str| {
        server.cli(
            None,
            &[
                "log",
                "consistency",
                "--old",
                old,
                "--new",
                new,
                "--key",
                &init_key,
            ],
        )
    };

    let output = consistency(&old_file, &new_file);
    assert_success(&output, "log consistency of two real checkpoints");
    assert!(
        common::stdout(&output).starts_with("ok"),
        "{}",
        common::stdout(&output)
    );
    assert_success(
        &consistency(&new_file, &new_file),
        "a checkpoint extends itself",
    );

    // Forged with the log's own signing key (as an insider could): the
    // signature is fine, the server's proof does not lead to the forged root.
    let signer_line = std::fs::read_to_string(server.data.join("log-signing.key")).unwrap();
    let signer = SignerKey::parse(signer_line.lines().next().unwrap().trim()).unwrap();
    let forged_new = Checkpoint::new(&origin, new_size, leaf_hash(b"forged"))
        .unwrap()
        .sign(&[&signer])
        .unwrap();
    let forged_new_file = write_file(dir, "forged-new.txt", &forged_new);
    let output = consistency(&old_file, &forged_new_file);
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    assert!(
        common::stderr(&output).contains("inconsistent"),
        "{}",
        common::stderr(&output)
    );
    let forged_old = Checkpoint::new(&origin, old_size, leaf_hash(b"forged"))
        .unwrap()
        .sign(&[&signer])
        .unwrap();
    let forged_old_file = write_file(dir, "forged-old.txt", &forged_old);
    let output = consistency(&forged_old_file, &new_file);
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));

    // Forged with a key that is not the log's, over the real root.
    let rogue = SignerKey::generate(&origin).unwrap();
    let resigned = Checkpoint::new(
        &origin,
        new_size,
        *verified(&new, &[key(&init_key)]).root_hash(),
    )
    .unwrap()
    .sign(&[&rogue])
    .unwrap();
    let resigned_file = write_file(dir, "resigned.txt", &resigned);
    let output = consistency(&old_file, &resigned_file);
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));

    // Old and new the wrong way round is a usage error.
    let output = consistency(&new_file, &old_file);
    assert_eq!(output.status.code(), Some(2), "{}", common::stderr(&output));
}

#[test]
fn the_periodic_signer_signs_checkpoints_by_itself() {
    let (server, report) =
        Server::start_configured(None, Some("[log]\ncheckpoint_interval_seconds = 1\n"));
    let trusted = [key(report["verifier_key"].as_str().unwrap())];
    let alice = server.principal("alice");

    // Nobody asks for a checkpoint; one covering the whole log appears.
    let wait_for = |size: u64| -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let response = server.http("GET", "/v1/log/checkpoint", None, &[], Body::None);
            if response.status == 200 && verified(&response.text, &trusted).size() == size {
                return response.text;
            }
            assert!(
                Instant::now() < deadline,
                "no checkpoint of size {size} within 15 s; latest: {} {}\nserver log:\n{}",
                response.status,
                response.text,
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // At start: init's admin and token, the policy's adoption, then alice
    // and her token.
    assert_eq!(server.log_size(), 5);
    let start = wait_for(5);
    write_cases(&server, &alice, "tick", 2, 1);
    let first = wait_for(9);
    write_cases(&server, &alice, "tock", 1, 2);
    let second = wait_for(12);
    assert_ne!(start, first);
    assert_ne!(first, second);
}

#[test]
fn key_rotation_signs_with_both_keys_and_keeps_old_checkpoints_verifiable() {
    let (mut server, report) = Server::start_configured(None, Some(QUIET));
    let key_a = report["verifier_key"].as_str().unwrap().to_string();
    let origin = key_a.split('+').next().unwrap().to_string();
    let alice = server.principal("alice");
    assert_eq!(server.log_keys(), vec![key_a.clone()]);
    let signatures = |note: &str| Note::parse(note.as_bytes()).unwrap().signatures().len();

    // Init's admin and token and the policy's adoption (log 0 to 2, in the
    // checkpoint signed at start), alice and her token, then a case and a
    // comment.
    write_cases(&server, &alice, "before", 1, 1);
    let cp1 = server.sign_checkpoint();
    assert_eq!(signatures(&cp1), 1);
    assert_eq!(verified(&cp1, &[key(&key_a)]).size(), 7);

    // Add a key; after a restart both sign.
    let output = common::command()
        .args(["log", "add-key", "--data"])
        .arg(&server.data)
        .output()
        .unwrap();
    assert_success(&output, "log add-key");
    let key_b = common::stdout(&output).trim().to_string();
    assert_ne!(key_b, key_a);
    assert_eq!(key_b.split('+').next(), Some(origin.as_str()), "{key_b}");
    assert_eq!(server.log_keys(), vec![key_a.clone(), key_b.clone()]);
    server.restart_configured();
    // The policy is unchanged: the restart records nothing.
    assert_eq!(server.log_size(), 7);
    let keys = server.get_json("/v1/log/keys");
    assert_eq!(keys["verifier_keys"], json!([key_a, key_b]));
    write_cases(&server, &alice, "during", 1, 0);
    let cp2 = server.sign_checkpoint();
    assert_eq!(signatures(&cp2), 2, "{cp2}");
    assert_eq!(verified(&cp2, &[key(&key_a)]).size(), 8);
    assert_eq!(verified(&cp2, &[key(&key_b)]).size(), 8);

    // Retire the old key; after a restart only the new one signs.
    let key_a_id = key_a.split('+').nth(1).unwrap().to_string();
    let output = common::command()
        .args(["log", "retire-key", &key_a_id, "--data"])
        .arg(&server.data)
        .output()
        .unwrap();
    assert_success(&output, "log retire-key");
    assert_eq!(common::stdout(&output).trim(), format!("{key_a}\tretired"));
    assert_eq!(
        server.log_keys(),
        vec![key_b.clone(), format!("{key_a}\tretired")]
    );
    // The last signing key cannot be retired.
    let key_b_id = key_b.split('+').nth(1).unwrap().to_string();
    let output = common::command()
        .args(["log", "retire-key", &key_b_id, "--data"])
        .arg(&server.data)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", common::stderr(&output));
    assert!(
        common::stderr(&output).contains("last signing key"),
        "{}",
        common::stderr(&output)
    );
    server.restart_configured();
    assert_eq!(
        server.get_json("/v1/log/keys")["verifier_keys"],
        json!([key_b])
    );
    write_cases(&server, &alice, "after", 1, 0);
    let cp3 = server.sign_checkpoint();
    assert_eq!(signatures(&cp3), 1, "{cp3}");
    assert_eq!(verified(&cp3, &[key(&key_b)]).size(), 9);
    assert!(verify_checkpoint(cp3.as_bytes(), &[key(&key_a)]).is_err());
    server.stop();

    // The first checkpoints (at start and cp1), signed only by the retired
    // key, still verify.
    let report = assert_verify_ok(&server.data);
    assert_eq!(report["checked"]["checkpoints"], 4, "{report:#}");

    // Without the retired key it would not: the retired keys file is what keeps it verifiable...
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&server.data, copy.path());
    std::fs::remove_file(copy.path().join("log-retired-keys")).unwrap();
    let (output, report) = verify_dir_with(copy.path(), &[]);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2, "{report:#}");
    for (finding, size) in findings.iter().zip(["size 3", "size 7"]) {
        assert_eq!(finding["code"], "checkpoint.bad-signature", "{report:#}");
        assert!(
            finding["message"].as_str().unwrap().contains(size),
            "{report:#}"
        );
    }
    // ...or an auditor's --key.
    let (output, report) = verify_dir_with(copy.path(), &["--key", &key_a]);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
}

#[test]
fn reading_the_checkpoint_needs_no_token() {
    let server = Server::start();
    let alice = server.principal("alice");
    server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            "reader",
        ],
    );
    let signed = server.cli_ok(&server.admin_token, &["log", "checkpoint", "--new"]);
    let output = server.cli(None, &["log", "checkpoint"]);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    assert_eq!(common::stdout(&output), signed);
    // Signing one does need an admin's token.
    let output = server.cli(None, &["log", "checkpoint", "--new"]);
    assert_eq!(output.status.code(), Some(2));
}
