//! `custody drill`: the scenario set against a throwaway embedded
//! deployment (with and without channels, with a sabotaged channel) and
//! against a running `custody serve` whose evidence blob is deleted behind
//! its back; and who may open a drill case.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::common::{self, Body, HttpStub, Server};

/// Runs `custody drill ARGS --json`; the exit code and the JSON.
fn drill(args: &[&str], url: Option<(&str, &str)>) -> (Output, Value) {
    let mut command = common::command();
    command.arg("drill").args(args).arg("--json");
    match url {
        Some((url, token)) => {
            command.args(["--url", url, "--token", token]);
        }
        None => {
            command
                .env_remove("CUSTODY_URL")
                .env_remove("CUSTODY_TOKEN");
        }
    }
    let output = command.output().expect("run custody drill");
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "drill printed no JSON ({error}): {}\n{}",
            common::stdout(&output),
            common::stderr(&output)
        )
    });
    (output, json)
}

/// Runs `custody drill --embedded --config CONFIG --keep KEPT --json`.
fn embedded_drill(config: &str, kept: &Path) -> (Output, Value) {
    drill(
        &[
            "--embedded",
            "--config",
            config,
            "--keep",
            kept.to_str().unwrap(),
        ],
        None,
    )
}

/// The IDs of the scenarios with `status`.
fn with_status(report: &Value, status: &str) -> BTreeSet<String> {
    report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .filter(|scenario| scenario["status"] == status)
        .map(|scenario| scenario["id"].as_str().unwrap().to_string())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

/// What passes on any deployment: the scenarios that need no component.
const ALWAYS: &[&str] = &[
    "lifecycle",
    "duplicates",
    "disconnected-attachment",
    "break-glass",
    "automation-first",
    "vendor-delegation",
    "late-records",
];

#[test]
fn an_embedded_drill_without_channels_passes_and_reports_what_it_cannot_cover() {
    let keep = tempfile::tempdir().unwrap();
    let kept = keep.path().join("deployment");
    let (output, report) = drill(&["--embedded", "--keep", kept.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(with_status(&report, "passed"), set(ALWAYS), "{report:#}");
    assert_eq!(
        with_status(&report, "not_covered"),
        set(&[
            "notification-failure",
            "chat-approval",
            "unsanctioned-change",
            "export"
        ]),
        "{report:#}"
    );
    for scenario in report["scenarios"].as_array().unwrap() {
        if scenario["status"] == "not_covered" {
            assert!(
                scenario["problems"][0]
                    .as_str()
                    .unwrap()
                    .contains("configured"),
                "a not-covered scenario says what is missing: {scenario:#}"
            );
            continue;
        }
        assert!(
            !scenario["case_ids"].as_array().unwrap().is_empty(),
            "{scenario:#}"
        );
    }
    // The kept deployment holds the drill's cases, each flagged as a drill
    // in its request event, and verify's only finding is the dead link the
    // drill attached on purpose.
    let findings: Vec<&str> = report["verify"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|finding| finding["severity"] != "info")
        .map(|finding| finding["code"].as_str().unwrap())
        .collect();
    assert_eq!(findings, ["evidence.link-unverified"], "{report:#}");
    let (output, verified) = common::verify_dir(&kept);
    assert_eq!(output.status.code(), Some(1), "the dead link is a finding");
    assert_eq!(verified["checked"], report["verify"]["checked"]);
}

#[test]
fn a_drill_against_a_server_flags_its_cases_and_a_deleted_blob_fails_only_disconnected_attachment()
{
    let server = Server::start();
    let (output, report) = drill(&[], Some((&server.url, &server.admin_token)));
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(with_status(&report, "passed"), set(ALWAYS), "{report:#}");
    assert!(report["verify"].is_null(), "no offline verify with --url");

    // Every case the drill opened carries `drill: true` in its request.
    for scenario in report["scenarios"].as_array().unwrap() {
        for case in scenario["case_ids"].as_array().unwrap() {
            let document = server.show(&server.admin_token, case.as_str().unwrap());
            assert_eq!(document["view"]["drill"], true, "{document:#}");
            assert_eq!(
                document["events"][0]["payload"]["drill"], true,
                "{document:#}"
            );
        }
    }
    // The drill's tokens are revoked.
    let tokens = server.cli_json(&server.admin_token, &["token", "list"]);
    for token in tokens["tokens"].as_array().unwrap() {
        if token["principal"].as_str().unwrap().starts_with("drill-") {
            assert!(!token["revoked_at"].is_null(), "{token:#}");
        }
    }

    // A blob deleted behind the store's back fails exactly the scenario
    // that re-hashes earlier drill cases' evidence.
    let mut deleted = 0;
    delete_files(&server.data.join("evidence"), &mut deleted);
    assert!(deleted > 0, "the drill stored evidence");
    let (output, report) = drill(&[], Some((&server.url, &server.admin_token)));
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(
        with_status(&report, "failed"),
        set(&["disconnected-attachment"]),
        "{report:#}"
    );
    let attachment = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|scenario| scenario["id"] == "disconnected-attachment")
        .unwrap();
    assert!(
        attachment["problems"]
            .to_string()
            .contains("earlier drill case"),
        "{attachment:#}"
    );
}

fn delete_files(directory: &Path, deleted: &mut usize) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            delete_files(&path, deleted);
        } else {
            std::fs::remove_file(&path).unwrap();
            *deleted += 1;
        }
    }
}

/// A webhook receiver (notifications) and a webhook export sink on
/// loopback; `healthy` says whether the notification receiver answers 200
/// or 500.
fn receivers(healthy: Arc<AtomicBool>) -> HttpStub {
    let app = axum::Router::new()
        .route(
            "/notify",
            axum::routing::post(move || {
                let healthy = healthy.clone();
                async move {
                    if healthy.load(Ordering::SeqCst) {
                        axum::http::StatusCode::OK
                    } else {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    }
                }
            }),
        )
        .route(
            "/export",
            axum::routing::post(|| async { axum::http::StatusCode::OK }),
        )
        // Slack's Web API, as the connector writes back a chat approval.
        .route(
            "/slack/{method}",
            axum::routing::post(|| async {
                axum::Json(
                    serde_json::json!({"ok": true, "channel": "C0CUSTODYDRILL", "ts": "1.2"}),
                )
            }),
        );
    HttpStub::serve(app, 1)
}

/// The signing secret of the healthy drill's Slack connector.
const SLACK_SECRET: &str = "drill-slack-signing-secret";

/// [`channels_config`] plus a Slack connector (its Web API the stub) and
/// an Okta source: every channel the drill can exercise.
fn every_channel_config(stub: &HttpStub, file_sink: &Path) -> String {
    format!(
        "{}\n[[connectors]]\nname = \"slack\"\nkind = \"slack\"\nsecret = \"{SLACK_SECRET}\"\nbot_token = \"xoxb-drill\"\napi_url = \"{}/slack\"\nteam_id = \"T0DRILLTEAM\"\n\n\
         [[connectors]]\nname = \"okta\"\nkind = \"okta\"\n",
        channels_config(stub, file_sink),
        stub.base
    )
}

fn channels_config(stub: &HttpStub, file_sink: &Path) -> String {
    format!(
        "[notify]\nbackoff_initial_ms = 100\nbackoff_max_ms = 400\npoll_interval_ms = 50\nmax_attempts = 5\n\n\
         [[notify.channels]]\ntype = \"webhook\"\nname = \"hook\"\nurl = \"{base}/notify\"\nsecret = \"drill-secret\"\ntimeout_seconds = 2\n\n\
         [export]\npoll_interval_ms = 50\n\n\
         [[export.sinks]]\nkind = \"webhook\"\nname = \"siem\"\nurl = \"{base}/export\"\nsecret = \"drill-export-secret\"\ntimeout_seconds = 2\n\n\
         [[export.sinks]]\nkind = \"file\"\nname = \"archive\"\npath = \"{file}\"\n",
        base = stub.base,
        file = file_sink.display()
    )
}

#[test]
fn an_embedded_drill_with_channels_covers_them_and_a_failing_channel_fails_only_its_scenario() {
    let directory = tempfile::tempdir().unwrap();
    let healthy = Arc::new(AtomicBool::new(true));
    let stub = receivers(healthy.clone());
    let config = directory.path().join("custody.toml");
    std::fs::write(
        &config,
        channels_config(&stub, &directory.path().join("events.jsonl")),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let kept = directory.path().join("deployment");

    let (output, report) = embedded_drill(config, &kept);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    let mut covered = set(ALWAYS);
    covered.extend(set(&["notification-failure", "export"]));
    assert_eq!(with_status(&report, "passed"), covered, "{report:#}");
    assert!(
        std::fs::read_to_string(directory.path().join("events.jsonl"))
            .unwrap()
            .contains("drill-requester"),
        "the file sink holds the drill's events"
    );
    let staged = scenario(&report, "notification-failure");
    let events = exported(&kept, staged["case_ids"][0].as_str().unwrap());
    assert_escalated_then_approved_by_the_second_approver(&events);
    // The approvers' notice went to the offline approver, the escalation's
    // to the approver who answered it, and both were delivered.
    assert_eq!(
        events[0]["notify"][0]["recipient"], "drill-approver-offline",
        "{events:#?}"
    );
    let delivered_to: BTreeSet<&str> = events
        .iter()
        .filter(|event| {
            event["kind"] == "notification_attempted" && event["payload"]["outcome"] == "delivered"
        })
        .filter_map(|event| event["payload"]["recipient"].as_str())
        .collect();
    assert!(
        delivered_to.contains("drill-approver-offline") && delivered_to.contains("drill-approver"),
        "{events:#?}"
    );

    // The notification receiver answers 500: the notices are attempted and
    // recorded, the cases proceed (the escalation is raised all the same,
    // and the second approver approves), and only notification-failure
    // fails.
    healthy.store(false, Ordering::SeqCst);
    let kept = directory.path().join("sabotaged");
    let (output, report) = embedded_drill(config, &kept);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(
        with_status(&report, "failed"),
        set(&["notification-failure"]),
        "{report:#}"
    );
    let staged = scenario(&report, "notification-failure");
    assert!(
        staged["problems"]
            .to_string()
            .contains("channel hook (webhook) delivered"),
        "{staged:#}"
    );
    let events = exported(&kept, staged["case_ids"][0].as_str().unwrap());
    assert_escalated_then_approved_by_the_second_approver(&events);
    assert!(
        !events
            .iter()
            .any(|event| event["kind"] == "notification_attempted"
                && event["payload"]["outcome"] == "delivered"),
        "{events:#?}"
    );
}

/// The trail of `notification-failure`'s case: the ledger (`system`)
/// escalated the unanswered request as `approval.overdue`, the escalation
/// owed a notice that was attempted, and the only approval is by the
/// second approver, after the escalation; the case was reviewed.
fn assert_escalated_then_approved_by_the_second_approver(events: &[Value]) {
    let escalation = events
        .iter()
        .find(|event| {
            event["kind"] == "escalation_raised" && event["payload"]["reason"] == "approval.overdue"
        })
        .unwrap_or_else(|| panic!("no escalation: {events:#?}"));
    assert_eq!(escalation["actor"]["principal"], "system");
    let owed = escalation["notify"]
        .as_array()
        .expect("the escalation owes notices");
    assert!(
        owed.iter().all(|notice| notice["kind"] == "escalation"),
        "{escalation:#}"
    );
    let delivery = owed[0]["delivery_id"].clone();
    assert!(
        events
            .iter()
            .any(|event| event["kind"] == "notification_attempted"
                && event["payload"]["delivery_id"] == delivery),
        "the escalation's notice was attempted: {events:#?}"
    );
    let approvals: Vec<&Value> = events
        .iter()
        .filter(|event| event["kind"] == "approval_granted")
        .collect();
    assert_eq!(approvals.len(), 1, "{events:#?}");
    assert_eq!(approvals[0]["actor"]["principal"], "drill-approver");
    assert!(approvals[0]["seq"].as_u64() > escalation["seq"].as_u64());
    assert!(
        events
            .iter()
            .any(|event| event["kind"] == "review_completed"),
        "{events:#?}"
    );
}

/// Every scenario the drill has, by ID.
const ALL: &[&str] = &[
    "lifecycle",
    "duplicates",
    "notification-failure",
    "disconnected-attachment",
    "break-glass",
    "chat-approval",
    "automation-first",
    "vendor-delegation",
    "late-records",
    "unsanctioned-change",
    "export",
];

/// The scenario `id` of a drill's JSON.
fn scenario<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|scenario| scenario["id"] == id)
        .unwrap_or_else(|| panic!("no scenario {id}: {report:#}"))
}

#[test]
fn an_embedded_drill_with_every_channel_passes_all_eleven_scenarios() {
    let directory = tempfile::tempdir().unwrap();
    let stub = receivers(Arc::new(AtomicBool::new(true)));
    let config = directory.path().join("custody.toml");
    std::fs::write(
        &config,
        every_channel_config(&stub, &directory.path().join("events.jsonl")),
    )
    .unwrap();
    let kept = directory.path().join("deployment");
    let (output, report) = embedded_drill(config.to_str().unwrap(), &kept);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(with_status(&report, "passed"), set(ALL), "{report:#}");
    assert!(with_status(&report, "not_covered").is_empty(), "{report:#}");
    assert!(with_status(&report, "failed").is_empty(), "{report:#}");
    assert_eq!(report["ok"], true);

    // The unsanctioned change: one drill case, opened by the observation,
    // reviewed post hoc; the replayed batch appended nothing to it.
    let unsanctioned = scenario(&report, "unsanctioned-change");
    let cases = unsanctioned["case_ids"].as_array().unwrap();
    assert_eq!(cases.len(), 1, "{unsanctioned:#}");
    let events = exported(&kept, cases[0].as_str().unwrap());
    assert_eq!(events[0]["kind"], "request_created", "{events:#?}");
    assert_eq!(events[0]["payload"]["drill"], true, "{events:#?}");
    assert_eq!(events[0]["actor"]["principal"], "system", "{events:#?}");
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .filter(|kind| *kind != "notification_attempted")
        .collect();
    assert_eq!(
        kinds,
        ["request_created", "execution_observed", "review_completed"],
        "the replay appended no second observation; the reviewer closed the case"
    );
    let review = events
        .iter()
        .find(|event| event["kind"] == "review_completed")
        .unwrap();
    assert_eq!(review["actor"]["principal"], "drill-reviewer");

    // The chat approval: the drill's approver, via the Slack connector,
    // with the message's provenance; the case proceeded to review.
    let chat = scenario(&report, "chat-approval");
    let events = exported(&kept, chat["case_ids"][0].as_str().unwrap());
    let approval = events
        .iter()
        .find(|event| event["kind"] == "approval_granted")
        .expect("an approval");
    assert_eq!(approval["actor"]["principal"], "drill-approver");
    assert_eq!(approval["actor"]["via"], "connector:slack");
    assert_eq!(
        approval["payload"]["chat"]["channel"],
        "slack:C0CUSTODYDRILL"
    );
    assert_eq!(approval["payload"]["chat"]["approver"], "drill-approver");
    assert!(
        events
            .iter()
            .any(|event| event["kind"] == "review_completed"),
        "{events:#?}"
    );
    assert!(
        chat["did"].to_string().contains("unmapped Slack user"),
        "the drill's Slack user is unmapped at the end: {chat:#}"
    );
}

/// The events of `case` in the ledger of data directory `data`, exported
/// offline (drill cases included).
fn exported(data: &Path, case: &str) -> Vec<Value> {
    let output = common::command()
        .args([
            "export",
            "--format",
            "jsonl",
            "--include-drills",
            "--case",
            case,
            "--data",
        ])
        .arg(data)
        .output()
        .unwrap();
    common::assert_success(&output, "export of a drill case");
    common::stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn a_drill_against_a_server_covers_chat_approval_only_with_the_signing_secret() {
    let stub = receivers(Arc::new(AtomicBool::new(true)));
    let config = format!(
        "[[connectors]]\nname = \"slack\"\nkind = \"slack\"\nsecret = \"{SLACK_SECRET}\"\nbot_token = \"xoxb-drill\"\napi_url = \"{}/slack\"\n\n\
         [[connectors]]\nname = \"vault\"\nkind = \"vault\"\n",
        stub.base
    );
    let (server, _) = Server::start_configured(None, Some(&config));
    let (output, report) = drill(&[], Some((&server.url, &server.admin_token)));
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    let chat = scenario(&report, "chat-approval");
    assert_eq!(chat["status"], "not_covered", "{chat:#}");
    assert!(
        chat["problems"][0]
            .as_str()
            .unwrap()
            .contains("--slack-signing-secret"),
        "{chat:#}"
    );
    let unsanctioned = scenario(&report, "unsanctioned-change");
    assert_eq!(unsanctioned["status"], "not_covered", "{unsanctioned:#}");
    assert!(
        unsanctioned["problems"][0]
            .as_str()
            .unwrap()
            .contains("vault (vault)"),
        "a source the drill cannot write is named: {unsanctioned:#}"
    );
    // A wrong secret: the connector refuses the click, and the scenario fails.
    let (output, report) = drill(
        &["--slack-signing-secret", "not-the-secret"],
        Some((&server.url, &server.admin_token)),
    );
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(
        with_status(&report, "failed"),
        set(&["chat-approval"]),
        "{report:#}"
    );
    // The right one: it passes.
    let (output, report) = drill(
        &["--slack-signing-secret", SLACK_SECRET],
        Some((&server.url, &server.admin_token)),
    );
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(
        scenario(&report, "chat-approval")["status"],
        "passed",
        "{report:#}"
    );
}

/// A running deployment's rule for drill entitlements decides whether the
/// drill can stage an escalation: with a deadline of hours it says so
/// (not covered, naming the deadline); with one of seconds it waits for
/// the escalation and passes, through the same trail as embedded.
#[test]
fn a_drill_against_a_server_waits_for_an_escalation_only_when_the_deadline_is_short() {
    let stub = receivers(Arc::new(AtomicBool::new(true)));
    let config = |deadline: &str| {
        format!(
            "[workflow]\nscan_interval_seconds = 1\n\n\
             [[policy.rules]]\nname = \"drills\"\nentitlements = [\"drill:*\"]\napproval_deadline = \"{deadline}\"\n\n\
             [notify]\nbackoff_initial_ms = 100\nbackoff_max_ms = 400\npoll_interval_ms = 50\n\n\
             [[notify.channels]]\ntype = \"webhook\"\nname = \"hook\"\nurl = \"{}/notify\"\nsecret = \"drill-secret\"\ntimeout_seconds = 2\n",
            stub.base
        )
    };
    let (server, _) = Server::start_configured(None, Some(&config("4h")));
    let (output, report) = drill(&[], Some((&server.url, &server.admin_token)));
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    let staged = scenario(&report, "notification-failure");
    assert_eq!(staged["status"], "not_covered", "{staged:#}");
    let reason = staged["problems"][0].as_str().unwrap();
    assert!(
        reason.contains("approval deadline is 4h") && reason.contains("at most 120s"),
        "{staged:#}"
    );
    assert!(
        staged["case_ids"].as_array().unwrap().is_empty(),
        "{staged:#}"
    );
    drop(server);

    let (server, _) = Server::start_configured(None, Some(&config("2s")));
    let (output, report) = drill(&[], Some((&server.url, &server.admin_token)));
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    let staged = scenario(&report, "notification-failure");
    assert_eq!(staged["status"], "passed", "{staged:#}");
    let events = server.events(&server.admin_token, staged["case_ids"][0].as_str().unwrap());
    assert_escalated_then_approved_by_the_second_approver(&events);
    drop(server);

    // A channel routed only for the security team carries nothing of the
    // case: the scenario says so, and fails, instead of skipping it.
    let quiet = format!(
        "{}\n[[notify.channels]]\ntype = \"webhook\"\nname = \"quiet\"\nurl = \"{}/notify\"\nsecret = \"drill-secret\"\ntimeout_seconds = 2\n\n\
         [notify.routes]\napprovers = [\"hook\"]\nrequester = [\"hook\"]\nexecutor = [\"hook\"]\nreviewers = [\"hook\"]\nescalation = [\"hook\"]\nsecurity = [\"quiet\"]\n",
        config("2s"),
        stub.base
    );
    let (server, _) = Server::start_configured(None, Some(&quiet));
    let (output, report) = drill(&[], Some((&server.url, &server.admin_token)));
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(
        with_status(&report, "failed"),
        set(&["notification-failure"]),
        "{report:#}"
    );
    let staged = scenario(&report, "notification-failure");
    assert!(
        staged["problems"]
            .to_string()
            .contains("channel quiet (webhook) carried no notice"),
        "{staged:#}"
    );
}

#[test]
fn a_member_outside_drills_cannot_open_a_drill_case() {
    let server = Server::start();
    let outsider = server.principal("outsider");
    let driller = server.principal_with("driller", &["--group", "drills"]);
    let body = |subject: &str| {
        Body::Json(serde_json::json!({
            "subject": {"kind": "user", "id": subject},
            "entitlement": "drill:access",
            "drill": true,
        }))
    };
    let refused = server.http(
        "POST",
        "/v1/cases",
        Some(&outsider),
        &[("Idempotency-Key", "outsider-1")],
        body("drill-outsider"),
    );
    assert_eq!(refused.status, 403, "{}", refused.text);
    let problem: Value = serde_json::from_str(&refused.text).unwrap();
    assert_eq!(problem["rule"], "drill.not-allowed", "{problem:#}");
    assert!(problem["hint"].as_str().unwrap().contains("drills"));
    let refused = server.http(
        "POST",
        "/v1/break-glass",
        Some(&outsider),
        &[("Idempotency-Key", "outsider-2")],
        Body::Json(serde_json::json!({
            "subject": {"kind": "user", "id": "drill-outsider"},
            "entitlement": "drill:access",
            "justification": "drill",
            "drill": true,
        })),
    );
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(
        server.case_count(),
        0,
        "a refused drill case records nothing"
    );
    // The same principal opens a real case; a member of `drills` a drill case.
    let real = server.cli(
        Some(&outsider),
        &[
            "request",
            "--subject",
            "user:real",
            "--entitlement",
            "drill:access",
        ],
    );
    common::assert_success(&real, "a real case by the outsider");
    let real = common::stdout(&real);
    assert_eq!(server.show(&outsider, real.trim())["view"]["drill"], false);
    let opened = server.http(
        "POST",
        "/v1/cases",
        Some(&driller),
        &[("Idempotency-Key", "driller-1")],
        body("drill-member"),
    );
    assert_eq!(opened.status, 201, "{}", opened.text);
    let case: Value = serde_json::from_str(&opened.text).unwrap();
    let events = server.events(&driller, case["case_id"].as_str().unwrap());
    assert_eq!(events[0]["payload"]["drill"], true, "{events:#?}");
}

#[test]
fn drill_usage_errors_exit_2() {
    let output = common::command()
        .args(["drill", "--keep", "/tmp/x"])
        .env_remove("CUSTODY_URL")
        .env_remove("CUSTODY_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", common::stderr(&output));
    let output = common::command()
        .args(["drill", "--embedded", "--report", "pdf"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", common::stderr(&output));
    assert!(common::stderr(&output).contains("not a report format"));
}
