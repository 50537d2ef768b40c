//! Two `custody serve` processes on one data directory (a second node
//! started by mistake, or a rolling restart): the log stays one log, because
//! sequencing happens inside SQLite's write lock, not in a process's memory.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use common::{assert_verify_ok, Server};
use serde_json::json;

#[test]
fn two_servers_on_one_store_keep_one_gapless_log() {
    let server = Server::start();
    let alice = server.principal("alice");
    let bob = server.principal("bob");

    // A second server process on the same data directory.
    let mut second = common::command()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&server.data)
        .env("CUSTODY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a second custody serve");
    let stderr = second.stderr.take().expect("stderr");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sender = Some(sender);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(address) = line.strip_prefix("listening on ") {
                if let Some(sender) = sender.take() {
                    let _ = sender.send(address.trim().to_string());
                }
            }
        }
    });
    let second_url = format!(
        "http://{}",
        receiver
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the second server starts")
    );

    // Both servers take writes at the same time.
    let client = server.client();
    let urls = [server.url.clone(), second_url.clone()];
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    server.runtime().block_on(async {
        let mut tasks = Vec::new();
        for writer in 0..8 {
            let client = client.clone();
            let url = urls[writer % 2].clone();
            let token = if writer % 2 == 0 { alice.clone() } else { bob.clone() };
            let acknowledged = acknowledged.clone();
            tasks.push(tokio::spawn(async move {
                let body = json!({"subject": {"kind": "user", "id": format!("u{writer}")}, "entitlement": "reader"});
                let (status, opened) =
                    common::post_with_key(&client, &url, &token, "/v1/cases", &format!("open-{writer}"), &body)
                        .await
                        .expect("request");
                assert_eq!(status, 201, "{opened}");
                let case = opened["case_id"].as_str().unwrap().to_string();
                for index in 0..25 {
                    let (status, outcome) = common::post_with_key(
                        &client,
                        &url,
                        &token,
                        &format!("/v1/cases/{case}/comments"),
                        &format!("comment-{writer}-{index}"),
                        &json!({"text": format!("note {index}")}),
                    )
                    .await
                    .expect("comment");
                    assert_eq!(status, 200, "{outcome}");
                    acknowledged.lock().unwrap().push(outcome["appended"][0]["log_index"].as_u64().unwrap());
                }
            }));
        }
        for task in tasks {
            task.await.expect("writer");
        }
    });
    let _ = second.kill();
    let _ = second.wait();

    // One log: every acknowledged index is distinct and the log is gapless.
    let mut indexes = acknowledged.lock().unwrap().clone();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(
        indexes.len(),
        8 * 25,
        "two writes were given the same log index"
    );
    // The writes, the one adoption of the policy and the administration
    // record (init's admin, alice and bob, each with a token): the second
    // node runs the same (default) policy, so its start recorded nothing.
    assert_eq!(server.log_size(), 8 * 26 + 1 + 6);
    let policy = server.cli_json(&server.admin_token, &["policy"]);
    assert_eq!(
        policy["history"].as_array().map(Vec::len),
        Some(1),
        "{policy:#}"
    );
    let report = assert_verify_ok(&server.data);
    assert_eq!(report["checked"]["events"], 8 * 26 + 1 + 6);
}
