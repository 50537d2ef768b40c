//! `custody drill`: runs the documented scenario set (docs/drill.md) against
//! a running deployment (`--url`, an admin's `--token`) or a throwaway
//! embedded one (`--embedded`), through the public API only, the way a user
//! would. Every case it opens is a drill case (`drill: true` at request
//! time) about a drill subject (`user:drill-<run>-<scenario>`); nothing is
//! executed outside the ledger.
//!
//! The drill makes its own principals (`drill-requester`, `drill-approver`,
//! `drill-executor`, `drill-reviewer`, `drill-vendor`, `drill-automation`)
//! when they are missing, with the groups the deployment's policy asks of
//! the rules that govern `drill:access` and `drill:escalation`, issues each
//! a one-hour token and revokes those tokens at the end, also when a
//! scenario failed; and `drill-approver-offline`, an approver with no
//! token, who never answers. Embedded, the drill serves rules of its own
//! for drill cases (`give_drills_their_rules`).

mod chat;
mod scenarios;
mod sources;

use std::path::Path;
use std::process::ExitCode;

use custody_api::{ComponentsDocument, GroupsBody, PrincipalBody, TokenBody};
use custody_client::{Client, ClientError};
use custody_core::model::{Change, ChangeKind, Subject, SubjectKind};
use custody_report::{Format, ScenarioResult, ScenarioStatus};

use crate::cli::DrillArgs;
use crate::error::CliError;

/// The group whose members (beside admins) may open drill cases.
const DRILLS_GROUP: &str = "drills";

/// The entitlement every drill case names (a policy may give drills a rule
/// of their own with `entitlements = ["drill:*"]`).
pub const DRILL_ENTITLEMENT: &str = "drill:access";

/// The entitlement of `notification-failure`'s case, which its approver
/// leaves unanswered until the ledger escalates it: a deployment can give
/// it a rule of its own with a short `approval_deadline` without touching
/// the other drill cases (docs/drill.md).
pub const ESCALATION_ENTITLEMENT: &str = "drill:escalation";

/// The group of the drill's approvers under the embedded drill's rules.
const DRILL_APPROVERS: &str = "drill-approvers";

/// The embedded drill's rule for drill cases (`drill:*`).
const DRILL_RULE: &str = "custody-drill";

/// The embedded drill's rule for [`ESCALATION_ENTITLEMENT`], tried first.
pub const DRILL_ESCALATION_RULE: &str = "custody-drill-escalation";

/// The approval deadline of [`DRILL_ESCALATION_RULE`]: short, so the drill
/// waits seconds for its escalation.
const EMBEDDED_APPROVAL_DEADLINE: &str = "1s";

/// The embedded deployment's `[workflow] scan_interval_seconds` (the
/// smallest there is): the ledger's timer sees the deadline pass within a
/// second.
const EMBEDDED_SCAN_INTERVAL_SECONDS: u64 = 1;

/// How long the drill's tokens live, at most (they are revoked at the end).
const TOKEN_TTL: &str = "1h";

/// `custody drill`.
pub async fn drill(args: DrillArgs) -> Result<ExitCode, CliError> {
    let format = args
        .report
        .as_deref()
        .map(str::parse::<Format>)
        .transpose()
        .map_err(CliError::Usage)?;
    if args.out.is_some() && format.is_none() {
        return Err(CliError::Usage(
            "--out names the file of a --report: give --report text|json|sarif|html".to_string(),
        ));
    }
    if !args.embedded && (args.config.is_some() || args.keep.is_some()) {
        return Err(CliError::Usage(
            "--config and --keep are for --embedded: a deployment reached with --url runs with its own configuration".to_string(),
        ));
    }
    let (results, verify, subject) = if args.embedded {
        let (results, verify) = embedded(&args).await?;
        (results, Some(verify), "embedded deployment".to_string())
    } else {
        let admin = super::connect(&args.connection)?;
        let slack = args
            .slack_signing_secret
            .clone()
            .map(|secret| chat::SlackSigning {
                connector: None,
                secret,
                team_id: args.slack_team_id.clone(),
            });
        let results = run(&admin, None, slack).await?;
        (results, None, format!("deployment {}", args.connection.url))
    };
    let mut failed = results
        .iter()
        .any(|result| result.status == ScenarioStatus::Failed)
        || verify.as_ref().is_some_and(|report| {
            report.findings.iter().any(|finding| {
                !expected(finding, &results)
                    && finding.severity > custody_core::severity::Severity::Info
            })
        });
    if let Some(format) = format {
        // The findings the drill caused on purpose are its scenarios'
        // evidence, not the deployment's defects: the verdict is judged
        // without them (the scenarios say what they showed).
        let judged = verify.as_ref().map(|report| {
            let mut judged = report.clone();
            judged
                .findings
                .retain(|finding| !expected(finding, &results));
            judged.add_findings([]);
            judged
        });
        let report = custody_report::build(custody_report::Input {
            subject: &subject,
            generated_at: custody_core::Timestamp::now(),
            verify: judged.as_ref(),
            drill: Some(&results),
        });
        // As for `verify --report`: a verdict of not ready fails the run,
        // so a pipeline that gates on the exit code sees it.
        failed |= !report.verdict.ready;
        let text = custody_report::render(&report, format);
        let mut output = super::export::Output::open(args.out.as_deref())?;
        let written = output
            .write_all(text.as_bytes())
            .and_then(|()| output.commit());
        if written.is_err() {
            output.discard();
        }
        written?;
    } else if args.json {
        crate::output::print_json(&serde_json::json!({
            "ok": !failed,
            "subject": subject,
            "scenarios": results,
            "verify": verify,
        }));
    } else {
        print_table(&results, verify.as_ref(), |finding| {
            expected(finding, &results)
        });
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether `finding` is one the drill causes on purpose, in the cases of
/// the scenario that causes it: its dead link recorded as unverified
/// (invariant 8), and automation executing before the reviewer was told
/// (what `automation-first` stages).
fn expected(finding: &custody_core::audit::Finding, results: &[ScenarioResult]) -> bool {
    let in_scenario = |id: &str| {
        results.iter().any(|result| {
            result.id == id
                && finding
                    .case_id
                    .as_ref()
                    .is_some_and(|case| result.case_ids.contains(case))
        })
    };
    match finding.code {
        custody_core::Code::EvidenceLinkUnverified => in_scenario("disconnected-attachment"),
        custody_core::Code::NotifyReviewerNotNotified => in_scenario("automation-first"),
        _ => false,
    }
}

/// The scenarios as a table, then what each did and shows.
fn print_table(
    results: &[ScenarioResult],
    verify: Option<&custody_core::audit::Report>,
    expected: impl Fn(&custody_core::audit::Finding) -> bool,
) {
    let width = results
        .iter()
        .map(|result| result.id.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!("{:<width$}  {:<11}  CASES", "SCENARIO", "STATUS");
    for result in results {
        println!(
            "{:<width$}  {:<11}  {}",
            result.id,
            result.status.as_str(),
            result.case_ids.join(" ")
        );
    }
    for result in results {
        println!();
        println!(
            "{} ({}): {}",
            result.id,
            result.status.as_str(),
            result.title
        );
        for line in &result.did {
            println!("  did: {}", custody_core::text::escape(line));
        }
        for line in &result.trail_shows {
            println!("  trail: {}", custody_core::text::escape(line));
        }
        for line in &result.problems {
            println!("  problem: {}", custody_core::text::escape(line));
        }
    }
    if let Some(report) = verify {
        println!();
        println!(
            "verify: {} ({} findings)",
            if report.ok { "ok" } else { "findings" },
            report.findings.len()
        );
        for finding in &report.findings {
            println!(
                "  {}{} {}: {}",
                if expected(finding) {
                    "(expected: the drill's dead link) "
                } else {
                    ""
                },
                finding.severity.as_str(),
                finding.code,
                custody_core::text::escape(&finding.message)
            );
        }
    }
}

/// What the embedded mode adds to its server: the evidence fetcher may
/// reach the drill's own dead-link server on loopback.
const EMBEDDED_EVIDENCE: &str = "[evidence.fetch]\nallow = [\"127.0.0.1\"]\ntimeout_seconds = 5\n";

/// `--embedded`: a throwaway deployment in a temporary data directory (or
/// `--keep DIR`), served in this process on a loopback port, drilled, then
/// verified offline; the directory is removed unless kept.
async fn embedded(
    args: &DrillArgs,
) -> Result<(Vec<ScenarioResult>, custody_core::audit::Report), CliError> {
    let run = run_id();
    let (data, remove) = match &args.keep {
        Some(dir) => {
            let empty = std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none());
            if !empty {
                return Err(CliError::Usage(format!(
                    "--keep {}: the directory is not empty (the drill makes a new deployment there)",
                    dir.display()
                )));
            }
            (dir.clone(), false)
        }
        None => (
            std::env::temp_dir().join(format!("custody-drill-{run}")),
            true,
        ),
    };
    let outcome = embedded_in(&data, args.config.as_deref()).await;
    if remove {
        let _ = std::fs::remove_dir_all(&data);
    }
    outcome
}

async fn embedded_in(
    data: &Path,
    config_path: Option<&Path>,
) -> Result<(Vec<ScenarioResult>, custody_core::audit::Report), CliError> {
    let mut text = match config_path {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|error| CliError::Io(format!("cannot read {}: {error}", path.display())))?,
        None => String::new(),
    };
    if !text.contains("[evidence.fetch]") {
        text.push('\n');
        text.push_str(EMBEDDED_EVIDENCE);
    }
    let described = |error: String| {
        CliError::Usage(format!(
            "{}: {error}",
            config_path.map_or("the embedded configuration".to_string(), |path| path
                .display()
                .to_string())
        ))
    };
    let mut config = custody_server::config::Config::parse(&text).map_err(described)?;
    give_drills_their_rules(&mut config).map_err(described)?;
    config
        .export
        .check_files()
        .map_err(|error| CliError::Usage(error.to_string()))?;
    let evidence_store = config.evidence.store.clone();
    // The drill signs its chat approval with the Slack connector's secret
    // from the configuration it was given.
    let slack = config
        .connectors
        .iter()
        .find_map(|connector| match connector {
            custody_connect::config::ConnectorConfig::Slack(slack) => Some(chat::SlackSigning {
                connector: Some(slack.name.clone()),
                secret: slack.secret.expose().to_string(),
                team_id: slack.team_id.clone(),
            }),
            _ => None,
        });
    let checkpoint_interval_seconds = config.log.checkpoint_interval_seconds;
    let location = custody_store::Location::choose(data, None)
        .map_err(|error| CliError::Usage(error.to_string()))?;
    let (store, report) = custody_server::init::initialise(data, &location, None)
        .await
        .map_err(|error| CliError::Ledger(error.to_string()))?;
    let options = custody_server::ServeOptions::from_config(
        config,
        data,
        "custody drill --embedded".to_string(),
    )
    .map_err(CliError::Usage)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|error| CliError::Io(format!("cannot listen on loopback: {error}")))?;
    let address = listener
        .local_addr()
        .map_err(|error| CliError::Io(error.to_string()))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(custody_server::serve_listener(
        store,
        listener,
        options,
        async move {
            let _ = stopped.await;
        },
    ));
    let url = format!("http://{address}");
    let dead_link = scenarios::DeadLink::start().await;
    let results = match Client::new(&url, Some(&report.admin_token)) {
        Ok(admin) => run(&admin, dead_link.as_ref(), slack).await,
        Err(error) => Err(error.into()),
    };
    let _ = stop.send(());
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(CliError::Io(format!("the embedded server failed: {error}"))),
        Err(error) => return Err(CliError::Io(format!("the embedded server failed: {error}"))),
    }
    let results = results?;
    let verification = custody_verify::verify(custody_verify::Request {
        data_dir: Some(data.to_path_buf()),
        database_url: None,
        since_checkpoint: None,
        checkpoints: Vec::new(),
        keys: Vec::new(),
        evidence_store,
        checkpoint_interval_seconds,
        progress: None,
        clock: None,
        witnesses: Vec::new(),
        min_witnesses: 0,
    })
    .await?;
    Ok((results, verification.report))
}

/// The embedded deployment's own rules for drill cases, tried before the
/// rules of `--config` (which replace none of them: a rule of the same name
/// is dropped): [`DRILL_ESCALATION_RULE`] for [`ESCALATION_ENTITLEMENT`],
/// whose approvals are due within [`EMBEDDED_APPROVAL_DEADLINE`], and
/// [`DRILL_RULE`] for every other drill entitlement; both ask one approval
/// from the drill's own group [`DRILL_APPROVERS`], so the drill's principals
/// join no group of the configuration. The timer scans every second, and
/// the escalation rule's notices go to every channel: the approvers' to the
/// offline approver, the escalation's to the approver who answers it (by
/// name where a channel takes a recipient; a mail channel takes only
/// addresses, so its notices go to its `to` list).
fn give_drills_their_rules(config: &mut custody_server::config::Config) -> Result<(), String> {
    let rule = |name: &str, entitlement: &str, approval_deadline: Option<&str>| {
        custody_core::policy::Rule {
            name: name.to_string(),
            subject_kinds: Vec::new(),
            entitlements: vec![entitlement.to_string()],
            resources: Vec::new(),
            changes: Vec::new(),
            approvals: 1,
            approver_groups: vec![DRILL_APPROVERS.to_string()],
            approver_not_in_requester_org: false,
            executor_groups: Vec::new(),
            executor_kinds: Vec::new(),
            max_duration: None,
            break_glass: true,
            post_hoc_review_deadline: None,
            review_deadline: None,
            allow_attested_approvals: false,
            approval_deadline: approval_deadline.map(str::to_string),
            stages: Vec::new(),
        }
    };
    let rules = &mut config.policy.rules;
    rules.retain(|known| known.name != DRILL_RULE && known.name != DRILL_ESCALATION_RULE);
    rules.insert(0, rule(DRILL_RULE, "drill:*", None));
    rules.insert(
        0,
        rule(
            DRILL_ESCALATION_RULE,
            ESCALATION_ENTITLEMENT,
            Some(EMBEDDED_APPROVAL_DEADLINE),
        ),
    );
    config
        .policy
        .validate()
        .map_err(|error| error.to_string())?;
    config.workflow.scan_interval_seconds = EMBEDDED_SCAN_INTERVAL_SECONDS;
    let routes = |recipient: &str| -> Vec<String> {
        config
            .notify
            .channels
            .iter()
            .map(|channel| match channel.kind() {
                "email" => channel.name().to_string(),
                _ => format!("{}:{recipient}", channel.name()),
            })
            .collect()
    };
    if !config.notify.channels.is_empty() {
        let table = [
            ("approvers".to_string(), routes(OFFLINE_APPROVER)),
            ("escalation".to_string(), routes(APPROVER)),
        ]
        .into_iter()
        .collect();
        config
            .notify
            .rules
            .insert(DRILL_ESCALATION_RULE.to_string(), table);
    }
    Ok(())
}

/// A fresh run ID: the drill's subjects, tickets and idempotency keys all
/// carry it, so a rerun never meets an earlier run's open cases.
fn run_id() -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    // The time-ordered head and the random tail: short, and unique enough.
    format!("{}{}", &id[..8], &id[24..])
}

/// The drill's principals and their clients.
pub struct Cast {
    pub requester: Client,
    pub approver: Client,
    pub executor: Client,
    pub reviewer: Client,
    pub vendor: Client,
    pub automation: Client,
}

/// Names of the drill's principals.
pub const REQUESTER: &str = "drill-requester";
pub const APPROVER: &str = "drill-approver";
pub const EXECUTOR: &str = "drill-executor";
pub const REVIEWER: &str = "drill-reviewer";
pub const VENDOR: &str = "drill-vendor";
pub const AUTOMATION: &str = "drill-automation";
/// The approver who is never reached: in the approver groups, with no
/// token, so it never answers (`notification-failure`).
pub const OFFLINE_APPROVER: &str = "drill-approver-offline";
/// The vendor's organisation.
pub const VENDOR_ORG: &str = "drill-vendor-org";

/// Sets up the principals, runs every scenario, and revokes the drill's
/// tokens and delegation grants whatever happened.
async fn run(
    admin: &Client,
    dead_link: Option<&scenarios::DeadLink>,
    slack: Option<chat::SlackSigning>,
) -> Result<Vec<ScenarioResult>, CliError> {
    let run = run_id();
    let components: ComponentsDocument = admin.components().await?.document()?;
    let policy = admin.policy().await?.document()?.policy;
    let rule_for = |entitlement: &str| {
        Change::new(
            Subject {
                kind: SubjectKind::User,
                id: format!("drill-{run}"),
            },
            ChangeKind::Grant,
            entitlement.to_string(),
            None,
            None,
        )
        .map(|change| policy.decide(&change))
        .map_err(|error| CliError::Usage(error.to_string()))
    };
    let rule = rule_for(DRILL_ENTITLEMENT)?;
    let escalation_rule = rule_for(ESCALATION_ENTITLEMENT)?;
    // The approvers (the one who answers and the one who never does) may
    // approve under either rule.
    let mut approver_groups = Vec::new();
    for governing in [&rule, &escalation_rule] {
        approver_groups.extend(governing.approver_groups.clone());
        for stage in governing.stages() {
            approver_groups.extend(stage.approver_groups);
        }
    }
    let executor_groups = rule.executor_groups.clone();
    let cast_plan: [(&str, &str, Vec<String>, Option<&str>); 6] = [
        (REQUESTER, "human", vec![DRILLS_GROUP.to_string()], None),
        (APPROVER, "human", approver_groups.clone(), None),
        // The executor opens the break-glass drill case itself.
        (
            EXECUTOR,
            "human",
            [executor_groups.clone(), vec![DRILLS_GROUP.to_string()]].concat(),
            None,
        ),
        (REVIEWER, "human", Vec::new(), None),
        (VENDOR, "vendor", executor_groups.clone(), Some(VENDOR_ORG)),
        (AUTOMATION, "automation", executor_groups, None),
    ];
    let mut issued: Vec<String> = Vec::new();
    let mut tokens: Vec<String> = Vec::new();
    let mut setup = Ok(());
    for (name, kind, mut groups, org) in cast_plan {
        groups.sort();
        groups.dedup();
        match principal_with_token(admin, name, kind, groups, org).await {
            Ok((token_id, token)) => {
                issued.push(token_id);
                tokens.push(token);
            }
            Err(error) => {
                setup = Err(error);
                break;
            }
        }
    }
    // The offline approver gets no token: it can never answer.
    if setup.is_ok() {
        approver_groups.sort();
        approver_groups.dedup();
        setup = ensure_principal(admin, OFFLINE_APPROVER, "human", approver_groups, None).await;
    }
    let results = match setup {
        Ok(()) => {
            // The admin's connection (its URL and trusted authorities),
            // with each principal's token.
            let client = |index: usize| -> Result<Client, CliError> {
                Ok(
                    admin.as_token(Some(tokens.get(index).map(String::as_str).ok_or_else(
                        || CliError::Usage("a principal of the drill has no token".to_string()),
                    )?)),
                )
            };
            let cast = Cast {
                requester: client(0)?,
                approver: client(1)?,
                executor: client(2)?,
                reviewer: client(3)?,
                vendor: client(4)?,
                automation: client(5)?,
            };
            let mut drill = scenarios::Drill::new(
                run,
                admin,
                cast,
                components,
                scenarios::Rules {
                    access: rule,
                    escalation: escalation_rule,
                },
                dead_link,
                slack,
            );
            let results = drill.run_all().await;
            drill.clean_up().await;
            Ok(results)
        }
        Err(error) => Err(error),
    };
    // The tokens go whatever happened: a drill leaves no live credential.
    let mut revocation_errors = Vec::new();
    for token_id in &issued {
        if let Err(error) = admin.revoke_token(token_id).await {
            revocation_errors.push(format!("{token_id}: {error}"));
        }
    }
    let results = results?;
    if !revocation_errors.is_empty() {
        return Err(CliError::Io(format!(
            "the drill ran, but revoking its tokens failed: {}\nhint: revoke them with `custody token revoke`",
            revocation_errors.join("; ")
        )));
    }
    Ok(results)
}

/// Adds `name` when missing (or sets its groups when present) and issues
/// it a short-lived token: (token ID, token).
async fn principal_with_token(
    admin: &Client,
    name: &str,
    kind: &str,
    groups: Vec<String>,
    org: Option<&str>,
) -> Result<(String, String), CliError> {
    ensure_principal(admin, name, kind, groups, org).await?;
    let issued = admin
        .create_token(
            name,
            &TokenBody {
                ttl: Some(TOKEN_TTL.to_string()),
            },
        )
        .await?
        .document()?;
    Ok((issued.token_id, issued.token))
}

/// Adds `name` when missing, or sets its groups when present.
async fn ensure_principal(
    admin: &Client,
    name: &str,
    kind: &str,
    groups: Vec<String>,
    org: Option<&str>,
) -> Result<(), CliError> {
    let added = admin
        .add_principal(&PrincipalBody {
            name: name.to_string(),
            kind: Some(kind.to_string()),
            display_name: Some(format!("custody drill ({kind})")),
            groups: groups.clone(),
            org: org.map(str::to_string),
        })
        .await;
    match added {
        Ok(_) => {}
        Err(ClientError::Refused(answer))
            if answer.problem().and_then(|problem| problem.rule.as_deref())
                == Some(custody_core::Code::PrincipalExists.as_str()) =>
        {
            admin.set_groups(name, &GroupsBody { groups }).await?;
        }
        Err(error) => return Err(error.into()),
    }
    Ok(())
}
