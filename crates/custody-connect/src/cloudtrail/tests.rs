#![allow(clippy::unwrap_used)]

use std::io::Write;

use serde_json::{json, Value};

use super::*;
use crate::Headers;
use custody_core::model::{ChangeKind, PrincipalKind, SubjectKind};
use custody_core::observation::ObservedChange;

const SECRET: &str = "eb-api-key-0123456789abcdef";
const ACCOUNT: &str = "111122223333";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/cloudtrail/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn config(extra: &str) -> CloudTrailConfig {
    toml::from_str(&format!("name = \"aws\"\nkind = \"cloudtrail\"\n{extra}"))
        .map(|config: crate::config::ConnectorConfig| match config {
            crate::config::ConnectorConfig::Cloudtrail(config) => config,
            _ => unreachable!("the kind is cloudtrail"),
        })
        .unwrap()
}

fn source() -> Box<dyn Source> {
    config(&format!("secret = \"{SECRET}\"\n"))
        .build_source()
        .unwrap()
}

/// A record of `name` by an IAM user, with `parameters` and `extra` fields.
fn record(source: &str, name: &str, parameters: Value, extra: Value) -> Value {
    let mut record = json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLECAROL01",
            "arn": format!("arn:aws:iam::{ACCOUNT}:user/carol"),
            "accountId": ACCOUNT,
            "userName": "carol"
        },
        "eventTime": "2026-03-14T09:02:40Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "requestParameters": parameters,
        "responseElements": null,
        "eventID": format!("id-{name}"),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT
    });
    for (key, value) in extra.as_object().unwrap() {
        record[key] = value.clone();
    }
    record
}

fn iam(name: &str, parameters: Value) -> Value {
    record("iam.amazonaws.com", name, parameters, json!({}))
}

fn log_file(records: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "Records": records })).unwrap()
}

fn one(record: Value) -> Result<Option<ObservedChange>, Refusal> {
    let parsed = parse_log_file(&log_file(&[record]))?;
    assert_eq!(parsed.observations.len() + parsed.skipped, 1);
    Ok(parsed.observations.into_iter().next())
}

fn change_of(observation: &ObservedChange) -> (SubjectKind, String, ChangeKind, String) {
    let change = &observation.change;
    (
        change.subject().kind,
        change.subject().id.clone(),
        change.kind(),
        change.entitlement().to_string(),
    )
}

#[test]
fn every_read_call_maps_to_its_change() {
    let policy = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess";
    let role = format!("arn:aws:iam::{ACCOUNT}:role/payments-admin");
    type Expected<'a> = (SubjectKind, &'a str, ChangeKind, String);
    let cases: Vec<(Value, Expected<'_>)> = vec![
        (
            iam(
                "AttachUserPolicy",
                json!({"userName": "dave", "policyArn": policy}),
            ),
            (SubjectKind::User, "dave", ChangeKind::Grant, policy.into()),
        ),
        (
            iam(
                "DetachUserPolicy",
                json!({"userName": "dave", "policyArn": policy}),
            ),
            (SubjectKind::User, "dave", ChangeKind::Revoke, policy.into()),
        ),
        (
            iam(
                "AttachRolePolicy",
                json!({"roleName": "deploy", "policyArn": policy}),
            ),
            (
                SubjectKind::Role,
                "deploy",
                ChangeKind::Grant,
                policy.into(),
            ),
        ),
        (
            iam(
                "DetachRolePolicy",
                json!({"roleName": "deploy", "policyArn": policy}),
            ),
            (
                SubjectKind::Role,
                "deploy",
                ChangeKind::Revoke,
                policy.into(),
            ),
        ),
        (
            iam(
                "PutRolePolicy",
                json!({"roleName": "deploy", "policyName": "s3-write", "policyDocument": "{\"Version\":\"2012-10-17\"}"}),
            ),
            (
                SubjectKind::Role,
                "deploy",
                ChangeKind::Grant,
                "inline-policy/s3-write".into(),
            ),
        ),
        (
            iam(
                "DeleteRolePolicy",
                json!({"roleName": "deploy", "policyName": "s3-write"}),
            ),
            (
                SubjectKind::Role,
                "deploy",
                ChangeKind::Revoke,
                "inline-policy/s3-write".into(),
            ),
        ),
        (
            iam(
                "AddUserToGroup",
                json!({"userName": "dave", "groupName": "billing"}),
            ),
            (
                SubjectKind::User,
                "dave",
                ChangeKind::Grant,
                "group/billing".into(),
            ),
        ),
        (
            iam(
                "RemoveUserFromGroup",
                json!({"userName": "dave", "groupName": "billing"}),
            ),
            (
                SubjectKind::User,
                "dave",
                ChangeKind::Revoke,
                "group/billing".into(),
            ),
        ),
        (
            iam("CreateAccessKey", json!({"userName": "deploy-bot"})),
            (
                SubjectKind::ApiKey,
                "deploy-bot",
                ChangeKind::Create,
                "access-key".into(),
            ),
        ),
        (
            iam(
                "UpdateAccessKey",
                json!({"userName": "deploy-bot", "accessKeyId": "AKIAEXAMPLEKEY00001", "status": "Inactive"}),
            ),
            (
                SubjectKind::ApiKey,
                "deploy-bot",
                ChangeKind::Revoke,
                "access-key".into(),
            ),
        ),
        (
            iam(
                "UpdateAccessKey",
                json!({"userName": "deploy-bot", "accessKeyId": "AKIAEXAMPLEKEY00001", "status": "Active"}),
            ),
            (
                SubjectKind::ApiKey,
                "deploy-bot",
                ChangeKind::Grant,
                "access-key".into(),
            ),
        ),
        (
            iam(
                "DeleteAccessKey",
                json!({"userName": "deploy-bot", "accessKeyId": "AKIAEXAMPLEKEY00001"}),
            ),
            (
                SubjectKind::ApiKey,
                "deploy-bot",
                ChangeKind::Delete,
                "access-key".into(),
            ),
        ),
        (
            // A user managing its own key names nobody: the caller's.
            iam(
                "DeleteAccessKey",
                json!({"accessKeyId": "AKIAEXAMPLEKEY00001"}),
            ),
            (
                SubjectKind::ApiKey,
                "carol",
                ChangeKind::Delete,
                "access-key".into(),
            ),
        ),
        (
            iam(
                "CreateLoginProfile",
                json!({"userName": "dave", "passwordResetRequired": true}),
            ),
            (
                SubjectKind::User,
                "dave",
                ChangeKind::Create,
                "console-login".into(),
            ),
        ),
        (
            record(
                "sts.amazonaws.com",
                "AssumeRole",
                json!({"roleArn": role, "roleSessionName": "dave-session", "sourceIdentity": "dave"}),
                json!({"readOnly": true}),
            ),
            (SubjectKind::User, "dave", ChangeKind::Grant, role.clone()),
        ),
    ];
    for (record, (kind, subject, change, entitlement)) in cases {
        let name = record["eventName"].as_str().unwrap().to_string();
        let observation = one(record)
            .unwrap()
            .unwrap_or_else(|| panic!("{name} skipped"));
        assert_eq!(
            change_of(&observation),
            (kind, subject.to_string(), change, entitlement),
            "{name}"
        );
        assert_eq!(observation.action, name);
        assert_eq!(observation.external_id, format!("id-{name}"));
        assert_eq!(observation.change.resource(), Some("aws:111122223333"));
        assert_eq!(
            observation.occurred_at,
            custody_core::Timestamp::parse("2026-03-14T09:02:40Z").unwrap()
        );
    }
}

#[test]
fn a_new_access_key_response_names_its_user() {
    let record = iam("CreateAccessKey", Value::Null);
    let mut record = record;
    record["responseElements"] = json!({"accessKey": {"userName": "deploy-bot", "accessKeyId": "AKIAEXAMPLENEWKEY002", "status": "Active"}});
    let observation = one(record).unwrap().unwrap();
    assert_eq!(observation.change.subject().id, "deploy-bot");
    assert!(custody_core::observation::is_non_human_credential(
        &observation.change
    ));
}

#[test]
fn failed_reads_and_unread_calls_are_skipped() {
    let skipped = [
        record(
            "iam.amazonaws.com",
            "AttachUserPolicy",
            json!({"userName": "mallory", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
            json!({"errorCode": "AccessDenied", "errorMessage": "not authorized"}),
        ),
        record(
            "iam.amazonaws.com",
            "AttachUserPolicy",
            json!({"userName": "mallory", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
            json!({"readOnly": true}),
        ),
        iam("ListAttachedRolePolicies", json!({"roleName": "deploy"})),
        iam("CreateRole", json!({"roleName": "deploy"})),
        // The right name from another service is another call.
        record(
            "s3.amazonaws.com",
            "AttachUserPolicy",
            json!({"userName": "dave", "policyArn": "x"}),
            json!({}),
        ),
        // AssumeRole without a source identity: a service's session.
        record(
            "sts.amazonaws.com",
            "AssumeRole",
            json!({"roleArn": "arn:aws:iam::111122223333:role/task", "roleSessionName": "1234"}),
            json!({"readOnly": true}),
        ),
        // Not even an API call record.
        json!({"eventVersion": "1.09", "eventType": "AwsServiceEvent"}),
    ];
    let parsed = parse_log_file(&log_file(&skipped)).unwrap();
    assert!(parsed.observations.is_empty(), "{:?}", parsed.observations);
    assert_eq!(parsed.skipped, skipped.len());
}

#[test]
fn a_read_record_missing_what_it_needs_is_refused_naming_it() {
    let mut no_id = iam(
        "AttachUserPolicy",
        json!({"userName": "dave", "policyArn": "p"}),
    );
    no_id.as_object_mut().unwrap().remove("eventID");
    let mut no_identity = iam(
        "AttachUserPolicy",
        json!({"userName": "dave", "policyArn": "p"}),
    );
    no_identity.as_object_mut().unwrap().remove("userIdentity");
    let mut bad_time = iam(
        "AttachUserPolicy",
        json!({"userName": "dave", "policyArn": "p"}),
    );
    bad_time["eventTime"] = json!("14/03/2026 09:02");
    let cases = [
        (no_id, "no `eventID`"),
        (no_identity, "no `userIdentity`"),
        (bad_time, "eventTime"),
        (
            iam("AttachUserPolicy", json!({"policyArn": "p"})),
            "no `userName`",
        ),
        (
            iam("AttachRolePolicy", json!({"roleName": "deploy"})),
            "no `policyArn`",
        ),
        (iam("AttachRolePolicy", Value::Null), "no `roleName`"),
        (
            iam(
                "UpdateAccessKey",
                json!({"userName": "deploy-bot", "status": "Paused"}),
            ),
            "neither Active nor Inactive",
        ),
        (
            // An identifier outside the safe set is refused, not mangled.
            iam(
                "AddUserToGroup",
                json!({"userName": "da\u{202e}ve", "groupName": "g"}),
            ),
            "subject",
        ),
        (
            iam(
                "AddUserToGroup",
                json!({"userName": "dave", "groupName": "bad\ngroup"}),
            ),
            "change",
        ),
    ];
    for (record, expected) in cases {
        let name = record["eventName"].clone();
        match one(record) {
            Err(Refusal::Malformed(message)) => {
                assert!(message.contains(expected), "{name}: {message}");
                assert!(
                    message.contains("AttachUserPolicy")
                        || message.contains("id-")
                        || message.contains("eventID")
                        || message.contains("record"),
                    "{message}"
                );
            }
            other => panic!("{name}: expected a refusal mentioning {expected}, got {other:?}"),
        }
    }
}

#[test]
fn the_fixture_log_file_reads_as_documented() {
    let parsed = source().parse_batch(&fixture("log-file.json")).unwrap();
    // Read: AttachRolePolicy, CreateAccessKey, AssumeRole with a source
    // identity. Skipped: a denied call, a read, a service's AssumeRole.
    assert_eq!(parsed.observations.len(), 3, "{:?}", parsed.observations);
    assert_eq!(parsed.skipped, 3);

    let attach = &parsed.observations[0];
    assert_eq!(attach.external_id, "0c9e4b1a-7d2f-4e8a-9b3c-1d5e6f7a8b90");
    assert_eq!(
        attach.actor.id,
        "arn:aws:iam::111122223333:role/provisioner"
    );
    assert_eq!(
        attach.actor.session.as_deref(),
        Some("AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b")
    );
    assert_eq!(
        attach.actor.source_identity.as_deref(),
        Some("carol@example.com")
    );
    assert_eq!(
        attach.actor.display.as_deref(),
        Some("provisioner/AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b")
    );
    // The executor's session name carries the case ID.
    assert_eq!(
        attach
            .case_hint
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b")
    );
    assert_eq!(
        change_of(attach),
        (
            SubjectKind::Role,
            "payments-deploy".into(),
            ChangeKind::Grant,
            "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess".into()
        )
    );

    let key = &parsed.observations[1];
    assert_eq!(key.actor.id, "arn:aws:iam::111122223333:user/deploy-bot");
    assert_eq!(key.actor.display.as_deref(), Some("deploy-bot"));
    assert_eq!(key.case_hint, None);
    assert_eq!(change_of(key).1, "deploy-bot");

    let assume = &parsed.observations[2];
    assert_eq!(
        assume.actor.id,
        "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0a1b2c3d4e5f6a7b"
    );
    assert_eq!(
        assume.actor.on_behalf_of.as_deref(),
        Some("94482488-3041-7026-18f3-be45837cd0e4")
    );
    assert_eq!(assume.actor.session.as_deref(), Some("alice@example.com"));
    // The new session's name comes first: the case it was opened for.
    assert_eq!(
        assume
            .case_hint
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6c")
    );
    assert_eq!(
        change_of(assume),
        (
            SubjectKind::User,
            "alice@example.com".into(),
            ChangeKind::Grant,
            "arn:aws:iam::111122223333:role/break-glass-admin".into()
        )
    );
    // Each record's hash is of its own bytes, so no two are alike.
    assert_ne!(attach.raw_sha256, key.raw_sha256);
}

#[test]
fn a_session_tag_or_the_source_identity_may_carry_the_case_id() {
    let case = "AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6d";
    let by_tag = record(
        "sts.amazonaws.com",
        "AssumeRole",
        json!({"roleArn": "arn:aws:iam::111122223333:role/admin", "roleSessionName": "dave", "sourceIdentity": "dave", "tags": [{"key": "custody-case", "value": case}]}),
        json!({}),
    );
    assert_eq!(
        one(by_tag).unwrap().unwrap().case_hint.unwrap().to_string(),
        case
    );
    let mut in_session = iam(
        "AddUserToGroup",
        json!({"userName": "dave", "groupName": "ops"}),
    );
    in_session["userIdentity"] = json!({
        "type": "AssumedRole",
        "arn": "arn:aws:sts::111122223333:assumed-role/ops-admin/bob",
        "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::111122223333:role/ops-admin", "userName": "ops-admin"}, "sourceIdentity": case}
    });
    let observation = one(in_session).unwrap().unwrap();
    assert_eq!(observation.case_hint.unwrap().to_string(), case);
    assert_eq!(
        observation.actor.id,
        "arn:aws:iam::111122223333:role/ops-admin"
    );
    assert_eq!(observation.actor.session.as_deref(), Some("bob"));
}

#[test]
fn an_aws_service_acts_as_automation() {
    let mut record = iam(
        "AttachRolePolicy",
        json!({"roleName": "r", "policyArn": "p"}),
    );
    record["userIdentity"] =
        json!({"type": "AWSService", "invokedBy": "cloudformation.amazonaws.com"});
    let observation = one(record).unwrap().unwrap();
    assert_eq!(observation.actor.id, "cloudformation.amazonaws.com");
    assert_eq!(observation.actor.kind, Some(PrincipalKind::Automation));
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn a_gzipped_log_file_is_read_like_the_plain_one() {
    let plain = fixture("log-file.json");
    let zipped = gzip(&plain);
    assert_eq!(
        source().parse_batch(&zipped).unwrap(),
        source().parse_batch(&plain).unwrap()
    );
}

#[test]
fn a_file_that_inflates_past_the_limit_or_is_damaged_is_refused() {
    let big = gzip(&vec![b' '; 4096]);
    let small = config(&format!("secret = \"{SECRET}\"\nmax_file_bytes = 1024\n"))
        .build_source()
        .unwrap();
    assert!(matches!(
        small.parse_batch(&big),
        Err(Refusal::TooLarge { limit: 1024, .. })
    ));
    let mut damaged = gzip(&fixture("log-file.json"));
    let middle = damaged.len() / 2;
    damaged.truncate(middle);
    assert!(matches!(
        source().parse_batch(&damaged),
        Err(Refusal::Malformed(message)) if message.contains("gzip")
    ));
    for junk in [&b"not json"[..], b"{\"Records\": 3}", b"{}", b"[1]"] {
        assert!(
            matches!(source().parse_batch(junk), Err(Refusal::Malformed(_))),
            "{}",
            String::from_utf8_lossy(junk)
        );
    }
}

fn push(body: &[u8], headers: &[(&str, &str)], endpoint: &str) -> Result<Parsed, Refusal> {
    let headers = Headers::new(
        headers
            .iter()
            .map(|(name, value)| (*name, value.as_bytes().to_vec())),
    );
    let request = Request {
        endpoint,
        headers: &headers,
        body,
        tls: true,
    };
    let source = source();
    source.authenticate(&request)?;
    source.parse_push(&request)
}

#[test]
fn an_eventbridge_event_is_read_when_its_api_key_matches() {
    let body = fixture("eventbridge-add-user-to-group.json");
    let parsed = push(&body, &[("X-Api-Key", SECRET)], "events").unwrap();
    assert_eq!(parsed.observations.len(), 1);
    let observation = &parsed.observations[0];
    assert_eq!(
        observation.external_id,
        "9e8d7c6b-5a4f-4e3d-2c1b-0a9f8e7d6c5b"
    );
    assert_eq!(
        change_of(observation),
        (
            SubjectKind::User,
            "dave".into(),
            ChangeKind::Grant,
            "group/billing-readers".into()
        )
    );
    // The raw record is the event as it was sent.
    assert_eq!(observation.raw_sha256, crate::observe::raw_hash(&body));
    // The same record in a log file is the same observation but for its hash.
    let detail: Value = serde_json::from_slice::<Value>(&body).unwrap()["detail"].clone();
    let from_file = &parse_log_file(&log_file(&[detail])).unwrap().observations[0];
    assert_eq!(from_file.external_id, observation.external_id);
    assert_eq!(from_file.change, observation.change);
    assert_eq!(from_file.actor, observation.actor);

    // An array of events, with one that is no API call.
    let other = json!({"version": "0", "id": "x", "detail-type": "AWS Console Sign In via CloudTrail", "source": "aws.signin", "detail": {}});
    let both = serde_json::to_vec(&json!([
        serde_json::from_slice::<Value>(&body).unwrap(),
        other
    ]))
    .unwrap();
    let parsed = push(&both, &[("x-api-key", SECRET)], "events").unwrap();
    assert_eq!((parsed.observations.len(), parsed.skipped), (1, 1));
}

#[test]
fn a_push_without_the_right_key_is_refused() {
    let body = fixture("eventbridge-add-user-to-group.json");
    for headers in [
        vec![],
        vec![("x-api-key", "eb-api-key-0123456789abcdeX")],
        vec![("authorization", SECRET)],
        vec![("x-api-key", SECRET), ("x-api-key", SECRET)],
    ] {
        assert!(
            matches!(
                push(&body, &headers, "events"),
                Err(Refusal::Unauthenticated(_))
            ),
            "{headers:?}"
        );
    }
    // A source configured for S3 only takes no push at all.
    let s3_only = config(
        "bucket = \"trail-logs\"\naccess_key_id = \"AKIAEXAMPLE\"\nsecret_access_key = \"s\"\n",
    )
    .build_source()
    .unwrap();
    let headers = Headers::new([("x-api-key", SECRET.as_bytes().to_vec())]);
    let request = Request {
        endpoint: "events",
        headers: &headers,
        body: &body,
        tls: true,
    };
    assert!(matches!(
        s3_only.authenticate(&request),
        Err(Refusal::Unauthenticated(_))
    ));
}

#[test]
fn a_push_elsewhere_or_of_another_shape_is_refused() {
    let body = fixture("eventbridge-add-user-to-group.json");
    assert!(matches!(
        push(&body, &[("x-api-key", SECRET)], "webhook"),
        Err(Refusal::Malformed(_))
    ));
    let mut event: Value = serde_json::from_slice(&body).unwrap();
    event.as_object_mut().unwrap().remove("detail");
    assert!(matches!(
        push(&serde_json::to_vec(&event).unwrap(), &[("x-api-key", SECRET)], "events"),
        Err(Refusal::Malformed(message)) if message.contains("detail")
    ));
    assert!(matches!(
        push(b"{\"detail\": {}}", &[("x-api-key", SECRET)], "events"),
        Err(Refusal::Malformed(message)) if message.contains("detail-type")
    ));
}

#[test]
fn the_settings_are_checked() {
    let refused = [
        ("", "reads nothing"),
        ("secret = \"short\"\n", "at least 16"),
        (&format!("secret = \"{SECRET}\"\nheader = \"x api key\"\n") as &str, "header"),
        ("bucket = \"trail-logs\"\n", "access_key_id"),
        (
            "bucket = \"trail-logs\"\naccess_key_id = \"AKIAEXAMPLE\"\n",
            "secret_access_key",
        ),
        (
            "bucket = \"trail-logs\"\naccess_key_id = \"AKIAEXAMPLE\"\nsecret_access_key = \"s\"\npoll_interval_seconds = 0\n",
            "poll_interval_seconds",
        ),
        (
            "bucket = \"trail-logs\"\naccess_key_id = \"AKIAEXAMPLE\"\nsecret_access_key = \"s\"\nprefix = \"AWSLogs/1/\"\nstart_after = \"other/\"\n",
            "start_after",
        ),
    ];
    for (settings, expected) in refused {
        match config(settings).build_source() {
            Err(message) => assert!(message.contains(expected), "{settings}: {message}"),
            Ok(_) => panic!("{settings}: accepted"),
        }
    }
    assert!(toml::from_str::<crate::config::ConnectorConfig>(
        "name = \"aws\"\nkind = \"cloudtrail\"\nbucket_name = \"x\"\n"
    )
    .is_err());

    let settings = config("bucket = \"trail-logs\"\nregion = \"eu-west-1\"\naccess_key_id = \"AKIAEXAMPLE\"\nsecret_access_key = \"s\"\n")
        .s3_settings()
        .unwrap()
        .unwrap();
    assert_eq!(settings.endpoint, "https://s3.eu-west-1.amazonaws.com");
    assert!(!settings.path_style);
    assert_eq!(
        (settings.poll_interval_seconds, settings.settle_seconds),
        (60, 300)
    );
    let local = config("bucket = \"trail-logs\"\nendpoint = \"http://127.0.0.1:9000\"\naccess_key_id = \"AKIAEXAMPLE\"\nsecret_access_key = \"s\"\n")
        .s3_settings()
        .unwrap()
        .unwrap();
    assert!(local.path_style);
    assert!(!format!("{local:?}").contains("secret_access_key: Secret(\"s\")"));
}
