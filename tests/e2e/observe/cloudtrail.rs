//! AWS CloudTrail end to end: log files read from an S3 bucket (moto's
//! real S3 API server) with the cursor surviving a kill, EventBridge events
//! pushed with the API destination's key, replays, late records, an
//! unsanctioned access key that escalates, drift in `verify --json`.
//! (docs/observations/cloudtrail.md)

use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{self, wait_until, Body, Server, TestStore, STORES};
use crate::evidence::moto;
use custody_core::code::Code;
use custody_core::time::Clock as _;
use custody_core::Timestamp;

const CONNECTOR: &str = "aws";
const ACCOUNT: &str = "111122223333";
const API_KEY: &str = "eb-connection-key-7f3a9c2e41d8b605";
const PREFIX: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/";
const READ_ONLY: &str = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess";
const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";

/// The connector's settings: pushes always, the bucket when given.
fn config(bucket: Option<&str>, extra: &str) -> String {
    let mut text = format!(
        "[workflow]\nscan_interval_seconds = 1\n{extra}\n[[connectors]]\nname = \"{CONNECTOR}\"\nkind = \"cloudtrail\"\nsecret = \"{API_KEY}\"\n"
    );
    if let Some(bucket) = bucket {
        let server = moto::moto();
        text.push_str(&format!(
            "bucket = \"{bucket}\"\nprefix = \"{PREFIX}\"\nregion = \"{}\"\nendpoint = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\npoll_interval_seconds = 1\nsettle_seconds = 0\n",
            moto::REGION,
            server.endpoint,
            server.access_key_id,
            server.secret_access_key
        ));
    }
    text
}

/// A CloudTrail record of `name` with `parameters`, made by the
/// `provisioner` role in a session named `session`.
fn record(id: &str, at: Timestamp, name: &str, parameters: Value, session: &str) -> Value {
    let source = if name == "AssumeRole" {
        "sts.amazonaws.com"
    } else {
        "iam.amazonaws.com"
    };
    json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": format!("AROAEXAMPLEPROVISION:{session}"),
            "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/provisioner/{session}"),
            "accountId": ACCOUNT,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "arn": format!("arn:aws:iam::{ACCOUNT}:role/provisioner"),
                    "accountId": ACCOUNT,
                    "userName": "provisioner"
                },
                "attributes": {"creationDate": at.to_string(), "mfaAuthenticated": "false"}
            }
        },
        "eventTime": at.to_string(),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.24",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": parameters,
        "responseElements": null,
        "eventID": id,
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT
    })
}

fn attach(id: &str, at: Timestamp, role: &str, policy: &str, session: &str) -> Value {
    record(
        id,
        at,
        "AttachRolePolicy",
        json!({"roleName": role, "policyArn": policy}),
        session,
    )
}

fn log_file(records: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "Records": records })).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The EventBridge event carrying `record`, as an API destination sends it.
fn event(record: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": "0",
        "id": format!("eb-{}", record["eventID"].as_str().unwrap()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.iam",
        "account": ACCOUNT,
        "time": record["eventTime"],
        "region": "us-east-1",
        "resources": [],
        "detail": record
    }))
    .unwrap()
}

fn push(server: &Server, body: &[u8], key: Option<&str>) -> common::Response {
    let headers: Vec<(&str, &str)> = key.map(|key| ("x-api-key", key)).into_iter().collect();
    server.http(
        "POST",
        &format!("/v1/connectors/{CONNECTOR}/events"),
        None,
        &headers,
        Body::Raw(body.to_vec(), Some("application/json")),
    )
}

fn ingest(server: &Server, body: &[u8]) -> Value {
    let response = server.http(
        "POST",
        &format!("/v1/ingest/{CONNECTOR}"),
        Some(&server.admin_token),
        &[],
        Body::Raw(body.to_vec(), Some("application/octet-stream")),
    );
    assert_eq!(response.status, 200, "{}", response.text);
    response.json
}

/// A case for `role:<role>` to get `policy` in the account, approved.
fn approved_case(server: &Server, role: &str, policy: &str, extra: &[&str]) -> String {
    let alice = server.principal("alice");
    let bob = server.principal("bob");
    let mut arguments = vec![
        "request",
        "--subject",
        &format!("role:{role}"),
        "--entitlement",
        policy,
        "--resource",
        "aws:111122223333",
    ]
    .into_iter()
    .map(str::to_string)
    .collect::<Vec<_>>();
    arguments.extend(extra.iter().map(|argument| argument.to_string()));
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    let case = server.cli_ok(&alice, &arguments).trim().to_string();
    server.cli_ok(&bob, &["approve", &case]);
    case
}

/// The external IDs of the case's observations, in case order.
fn observed(server: &Server, case: &str) -> Vec<String> {
    server
        .events(&server.admin_token, case)
        .iter()
        .filter(|event| event["kind"] == "execution_observed")
        .map(|event| {
            assert_eq!(event["source"], CONNECTOR, "{event}");
            assert_eq!(event["actor"]["via"], format!("connector:{CONNECTOR}"));
            event["external_id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Reads `sql` against the server's store while it is stopped.
fn execute(server: &Server, sql: &str) {
    match &server.database {
        Some(database) => database.execute(sql).unwrap(),
        None => {
            common::tamper::Db::open(&server.data).run(sql);
        }
    }
}

/// What the lease of a killed node comes to once it has run out.
const EXPIRE_LEASE: &str = "UPDATE pull_cursors SET lease_owner = NULL, lease_until = NULL";

fn key_of(minute: usize) -> String {
    format!(
        "{PREFIX}2026/03/14/{ACCOUNT}_CloudTrail_us-east-1_20260314T09{minute:02}Z_u{minute:02}q7Wm3Xr2Lp9Ka.json.gz"
    )
}

#[test]
fn log_files_are_read_from_s3_once_each_across_a_kill_and_a_lost_cursor() {
    for store in STORES {
        s3_pull(store);
    }
}

fn s3_pull(store: TestStore) {
    let bucket = format!("custody-trail-{}", &common::uuid_like()[..12]);
    let staging = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s3 =
        custody_evidence::S3BlobStore::new(moto::config(&bucket, staging.path().to_path_buf()))
            .unwrap();
    runtime.block_on(s3.create_bucket()).unwrap();
    let upload = |key: &str, bytes: Vec<u8>| {
        runtime.block_on(s3.put_object_bytes(key, bytes)).unwrap();
    };
    let (mut server, _) = Server::start_on(store, None, Some(&config(Some(&bucket), "")));
    let case = approved_case(&server, "payments-deploy", READ_ONLY, &[]);
    let at = Timestamp::now();
    // Ten files of twenty records, every record made in the case's session.
    let mut expected = Vec::new();
    for file in 0..10 {
        let records: Vec<Value> = (0..20)
            .map(|index| {
                let id = format!("e2e-{file:02}-{index:02}");
                expected.push(id.clone());
                attach(&id, at, "payments-deploy", READ_ONLY, &case)
            })
            .collect();
        upload(&key_of(file), gzip(&log_file(&records)));
    }
    // A digest file and a stray object are passed over.
    upload(
        &format!("AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2026/03/14/{ACCOUNT}_CloudTrail-Digest_us-east-1_t_us-east-1_20260314T090500Z.json.gz"),
        gzip(b"{\"digestStartTime\": \"x\"}"),
    );
    upload(&format!("{PREFIX}README.txt"), b"not a log file".to_vec());

    // Killed as soon as the reading has begun, then restarted once its
    // lease has run out (a restarted process is another lease owner; the
    // lease is expired here rather than waited for).
    wait_until("the first records", || !observed(&server, &case).is_empty());
    server.kill9();
    execute(&server, EXPIRE_LEASE);
    server.restart();
    wait_until("every record of the ten files", || {
        observed(&server, &case).len() >= expected.len()
    });
    let mut seen = observed(&server, &case);
    seen.sort();
    assert_eq!(seen, expected, "no gap, no duplicate");

    // The cursor is lost (as if the node died between recording a file and
    // moving past it, ten times over): every file is read again, and
    // nothing is appended for them.
    let log_size = server.log_size();
    server.stop();
    execute(&server, "UPDATE pull_cursors SET cursor = NULL");
    execute(&server, EXPIRE_LEASE);
    let late: Vec<Value> = (0..3)
        .map(|index| {
            attach(
                &format!("e2e-late-{index}"),
                at,
                "payments-deploy",
                READ_ONLY,
                &case,
            )
        })
        .collect();
    upload(&key_of(30), gzip(&log_file(&late)));
    server.restart_configured();
    wait_until("the new file, after the re-read ones", || {
        observed(&server, &case).len() >= expected.len() + late.len()
    });
    // Files are read in key order: the new file comes after the others.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        server.log_size(),
        log_size + late.len() as u64,
        "only the new file's records were appended"
    );
    let mut seen = observed(&server, &case);
    seen.sort();
    let mut all = expected.clone();
    all.extend((0..3).map(|index| format!("e2e-late-{index}")));
    all.sort();
    assert_eq!(seen, all);
}

#[test]
fn an_eventbridge_push_needs_the_key_and_is_recorded_once_in_any_order() {
    for store in STORES {
        pushes(store);
    }
}

fn pushes(store: TestStore) {
    let (server, _) = Server::start_on(store, None, Some(&config(None, "")));
    let case = approved_case(&server, "payments-deploy", READ_ONLY, &[]);
    let now = Timestamp::now();
    let granted = attach(
        "push-attach-1",
        now.plus_seconds(30),
        "payments-deploy",
        READ_ONLY,
        &case,
    );
    let revoked = record(
        "push-detach-1",
        now.plus_seconds(90),
        "DetachRolePolicy",
        json!({"roleName": "payments-deploy", "policyArn": READ_ONLY}),
        &case,
    );

    // Refused without the key, with another, and in the clear of a
    // different header: nothing changes.
    let before = server.log_size();
    for key in [None, Some("eb-connection-key-7f3a9c2e41d8b60X"), Some("")] {
        let answer = push(&server, &event(&granted), key);
        assert_eq!(answer.status, 401, "{key:?}: {}", answer.text);
    }
    let wrong_header = server.http(
        "POST",
        &format!("/v1/connectors/{CONNECTOR}/events"),
        None,
        &[("authorization", API_KEY)],
        Body::Raw(event(&granted), Some("application/json")),
    );
    assert_eq!(wrong_header.status, 401);
    assert_eq!(server.log_size(), before, "a refused push records nothing");

    // Out of order: the revocation arrives before the grant it ends.
    let answer = push(&server, &event(&revoked), Some(API_KEY));
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["matched"], 1, "{}", answer.json);
    let answer = push(&server, &event(&granted), Some(API_KEY));
    assert_eq!(answer.json["matched"], 1, "{}", answer.json);
    assert_eq!(answer.json["cases"], json!([case]));
    assert_eq!(observed(&server, &case), ["push-detach-1", "push-attach-1"]);
    let events = server.events(&server.admin_token, &case);
    let times: Vec<&str> = events
        .iter()
        .filter(|event| event["kind"] == "execution_observed")
        .map(|event| event["occurred_at"].as_str().unwrap())
        .collect();
    // Each keeps the time CloudTrail gives it, not the time it arrived.
    assert_eq!(
        times,
        [
            now.plus_seconds(90).to_string(),
            now.plus_seconds(30).to_string()
        ]
    );

    // A replay storm: the same events many times, pushed and ingested
    // from a log file too, append nothing.
    let after = server.log_size();
    for _ in 0..25 {
        let answer = push(&server, &event(&granted), Some(API_KEY));
        assert_eq!(answer.json["duplicates"], 1, "{}", answer.json);
    }
    let summary = ingest(
        &server,
        &gzip(&log_file(&[granted.clone(), revoked.clone()])),
    );
    assert_eq!(summary["duplicates"], 2, "{summary}");
    assert_eq!(server.log_size(), after, "replays appended something");
    assert_eq!(observed(&server, &case).len(), 2);
}

#[test]
fn an_unsanctioned_access_key_opens_a_case_that_escalates_when_nobody_reviews_it() {
    let rule = "[[policy.rules]]\nname = \"keys\"\nsubject_kinds = [\"api_key\"]\npost_hoc_review_deadline = \"2s\"\n";
    let (server, _) = Server::start_in_process(TestStore::Embedded, Some(&config(None, rule)));
    let now = server.clock().now();
    let mut key = record(
        "key-create-1",
        now,
        "CreateAccessKey",
        json!({"userName": "deploy-bot"}),
        "nightly-rotation",
    );
    key["responseElements"] = json!({"accessKey": {"userName": "deploy-bot", "accessKeyId": "AKIAEXAMPLENEWKEY002", "status": "Active"}});
    let summary = ingest(&server, &log_file(&[key]));
    assert_eq!(summary["unsanctioned"], 1, "{summary}");
    let case = summary["cases"][0].as_str().unwrap().to_string();

    let listed = server.cli_json(&server.admin_token, &["cases", "--unsanctioned"]);
    let ids: Vec<&str> = listed
        .as_array()
        .or_else(|| listed["cases"].as_array())
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|case| case["case_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [case.as_str()]);

    let events = server.events(&server.admin_token, &case);
    let observation = events
        .iter()
        .find(|event| event["kind"] == "execution_observed")
        .unwrap();
    assert_eq!(observation["role"], "observer");
    let drift = observation["payload"]["drift"].to_string();
    assert!(
        drift.contains(&Code::ChangeUnsanctioned.to_string())
            && drift.contains(&Code::DriftNhiCredentialUnsanctioned.to_string()),
        "{observation}"
    );
    let deadline = Timestamp::parse(
        observation["payload"]["review_deadline"]
            .as_str()
            .unwrap_or_else(|| panic!("no review deadline: {observation}")),
    )
    .unwrap();

    // Nobody reviews: past the deadline, the ledger escalates.
    server.clock().set(deadline.plus_seconds(1));
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let events = server.events(&server.admin_token, &case);
        if events
            .iter()
            .any(|event| event["kind"] == "escalation_raised")
        {
            break;
        }
        assert!(Instant::now() < until, "no escalation: {events:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == Code::DriftNhiCredentialUnsanctioned.to_string())
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(finding["case_id"], case.as_str());
}

#[test]
fn a_policy_wider_than_approved_is_drift_in_verify() {
    for store in STORES {
        wider(store);
    }
}

fn wider(store: TestStore) {
    let (server, _) = Server::start_on(store, None, Some(&config(None, "")));
    let case = approved_case(&server, "payments-deploy", READ_ONLY, &[]);
    // The executor's session carries the case ID, and attaches more than
    // the case approved.
    let admin = attach(
        "wider-1",
        Timestamp::now().plus_seconds(5),
        "payments-deploy",
        ADMIN,
        &format!("custody-{case}"),
    );
    let answer = push(&server, &event(&admin), Some(API_KEY));
    assert_eq!(answer.json["matched"], 1, "{}", answer.json);
    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == Code::DriftWiderThanApproved.to_string())
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(finding["case_id"], case.as_str(), "{finding}");
    assert_eq!(finding["source"], CONNECTOR, "{finding}");
    assert_eq!(finding["external_id"], "wider-1", "{finding}");
}

#[test]
fn access_still_granted_after_the_case_expired_is_drift() {
    let (server, _) = Server::start_in_process(TestStore::Embedded, Some(&config(None, "")));
    let case = approved_case(&server, "payments-deploy", READ_ONLY, &["--duration", "1h"]);
    let carol = server.principal("carol");
    server.cli_ok(&carol, &["execute", &case]);
    let granted = attach(
        "expiry-attach-1",
        server.clock().now().plus_seconds(1),
        "payments-deploy",
        READ_ONLY,
        "nightly",
    );
    // No case ID: bound to the case by its change, inside its window.
    let summary = ingest(&server, &log_file(&[granted]));
    assert_eq!(summary["matched"], 1, "{summary}");
    assert_eq!(summary["cases"], json!([case]));
    // Two hours on: the access ended an hour ago, and CloudTrail never saw
    // the policy detached.
    server.advance(2 * 3600);
    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == Code::DriftAccessAfterRevocation.to_string())
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(finding["case_id"], case.as_str(), "{finding}");
    assert_eq!(finding["source"], CONNECTOR, "{finding}");
    assert_eq!(finding["external_id"], "expiry-attach-1", "{finding}");

    // Once CloudTrail sees it detached, the finding is gone.
    let detached = record(
        "expiry-detach-1",
        server.clock().now(),
        "DetachRolePolicy",
        json!({"roleName": "payments-deploy", "policyArn": READ_ONLY}),
        "nightly",
    );
    let summary = ingest(&server, &log_file(&[detached]));
    assert_eq!(summary["matched"], 1, "{summary}");
    let (_, report) = server.verify_with(&[]);
    assert!(
        !report
            .to_string()
            .contains(&Code::DriftAccessAfterRevocation.to_string()),
        "{report:#}"
    );
}
