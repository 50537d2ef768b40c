//! Inbound connector throughput: Teams outgoing webhook approvals (signed,
//! verified, mapped, recorded and answered with the card) per second
//! through a real server, beside the same approvals through the HTTP API in
//! the same run, alternating in rounds.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine;
use serde_json::{json, Value};

use crate::{median, Measurement};

/// The webhook's security token (base64, as Teams shows it).
const TOKEN: &str = "q0Z9n3kXvJt6m5yB1cR8eW2aL4sD7fG0hJ3kP6uY9iE=";
/// The approver's Microsoft Entra object ID, mapped to `chat-approver`.
const APPROVER_AAD: &str = "9a4f5162-7d8e-4f90-b1a2-c3d4e5f60718";

/// The benchmark: `clients` concurrent senders, `per_client` approvals
/// each per round, `rounds` rounds of each side.
pub async fn connector_inbound(clients: usize, per_client: usize, rounds: usize) -> Result<()> {
    let directory = tempfile::tempdir()?;
    let data_dir = directory.path().join("connectors");
    let (store, report) = custody_server::init::initialise(
        &data_dir,
        &custody_store::Location::Embedded(data_dir.clone()),
        None,
    )
    .await
    .context("initialising the connector benchmark's data directory")?;
    let teams: custody_connect::config::ConnectorConfig = toml::from_str(&format!(
        "name = \"teams\"\nkind = \"teams\"\nsecret = \"{TOKEN}\"\n"
    ))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = custody_server::ServeOptions {
        checkpoint_interval: Duration::from_secs(5),
        connectors: vec![teams],
        witnesses: Vec::new(),
        ..crate::bench_options(&data_dir)?
    };
    let server = tokio::spawn(custody_server::serve_listener(
        store,
        listener,
        options,
        async move {
            let _ = stopped.await;
        },
    ));
    // reqwest is built with rustls and no default crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let base = format!("http://{address}");
    let admin = report.admin_token;
    let token_of = |name: &'static str| crate::drill::token_of(&http, &base, &admin, name);
    let requester = token_of("requester").await?;
    let api_approver = token_of("api-approver").await?;
    token_of("chat-approver").await?;
    http.put(format!(
        "{base}/v1/connectors/teams/identities/{APPROVER_AAD}"
    ))
    .bearer_auth(&admin)
    .json(&json!({"principal": "chat-approver"}))
    .send()
    .await?
    .error_for_status()
    .context("mapping the Teams approver (the identity map's API)")?;

    let mut webhook_rates = Vec::new();
    let mut api_rates = Vec::new();
    let mut ratios = Vec::new();
    let mut webhook_latencies = Vec::new();
    for round in 0..rounds {
        let cases = open_cases(&http, &base, &requester, clients * per_client * 2, round).await?;
        let (webhook_cases, api_cases) = cases.split_at(clients * per_client);
        let webhook = through_webhook(&http, &base, webhook_cases, clients, round).await?;
        let api = through_api(&http, &base, &api_approver, api_cases, clients, round).await?;
        ratios.push(webhook.per_second() / api.per_second());
        webhook_rates.push(webhook.per_second());
        api_rates.push(api.per_second());
        webhook_latencies.extend(webhook.latencies);
    }
    let mut webhook = Measurement {
        operations: 0,
        elapsed: Duration::ZERO,
        latencies: webhook_latencies,
    };
    println!(
        "inbound connector webhooks (Teams approvals: HMAC verified, replay-checked, mapped, recorded, card answered), {clients} concurrent senders, {rounds} rounds of {} (medians)",
        clients * per_client
    );
    println!(
        "  Teams webhook:      {:>10.0} approvals/s   p50 {:>7.2} ms  p99 {:>7.2} ms",
        median(&mut webhook_rates),
        webhook.percentile(0.50).as_secs_f64() * 1e3,
        webhook.percentile(0.99).as_secs_f64() * 1e3
    );
    println!(
        "  HTTP API:           {:>10.0} approvals/s   (POST /v1/cases/{{id}}/approvals, bearer token)",
        median(&mut api_rates)
    );
    println!(
        "  ratio webhook/API:  {:>10.2}   (per round: {})",
        median(&mut ratios.clone()),
        ratios
            .iter()
            .map(|ratio| format!("{ratio:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}

/// Opens `count` cases as the requester, 16 at a time, each for another
/// subject (a second open case for the same change is a duplicate);
/// returns their IDs.
async fn open_cases(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    count: usize,
    round: usize,
) -> Result<Vec<String>> {
    let mut cases = Vec::with_capacity(count);
    let mut pending = Vec::new();
    for index in 0..count {
        let http = http.clone();
        let url = format!("{base}/v1/cases");
        let token = token.to_string();
        pending.push(tokio::spawn(async move {
            let opened: Value = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"subject": {"kind": "user", "id": format!("user{round}-{index}")}, "entitlement": "admin"}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            anyhow::Ok(opened["case_id"].as_str().context("case_id")?.to_string())
        }));
        if pending.len() == 16 || index + 1 == count {
            for task in pending.drain(..) {
                cases.push(task.await??);
            }
        }
    }
    Ok(cases)
}

/// The activity Teams posts for `approve CASE` typed by the approver.
fn activity(id: &str, case: &str, sent: &str) -> Value {
    json!({
        "type": "message",
        "id": id,
        "timestamp": sent,
        "serviceUrl": "https://smba.trafficmanager.net/emea/",
        "channelId": "msteams",
        "from": {"id": "29:bench", "name": "Approver", "aadObjectId": APPROVER_AAD},
        "conversation": {
            "isGroup": true,
            "id": format!("19:bench@thread.tacv2;messageid={id}"),
            "conversationType": "channel",
            "tenantId": "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9"
        },
        "textFormat": "plain",
        "text": format!("<at>Custody</at> approve {case}\n"),
        "channelData": {
            "teamsChannelId": "19:bench@thread.tacv2",
            "tenant": {"id": "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9"}
        }
    })
}

/// Now as an activity timestamp.
fn activity_timestamp() -> String {
    custody_core::Timestamp::now().to_string()
}

async fn through_webhook(
    http: &reqwest::Client,
    base: &str,
    cases: &[String],
    clients: usize,
    round: usize,
) -> Result<Measurement> {
    let key = base64::engine::general_purpose::STANDARD.decode(TOKEN)?;
    let url = format!("{base}/v1/connectors/teams/webhook");
    let chunk = cases.len().div_ceil(clients);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (client, cases) in cases.chunks(chunk).enumerate() {
        let http = http.clone();
        let url = url.clone();
        let key = key.clone();
        let cases = cases.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(cases.len());
            for (index, case) in cases.iter().enumerate() {
                let body = serde_json::to_vec(&activity(
                    &format!("{round}-{client}-{index}"),
                    case,
                    &activity_timestamp(),
                ))?;
                let signature = base64::engine::general_purpose::STANDARD
                    .encode(custody_connect::signature::hmac_sha256(&key, &[&body]));
                let begun = Instant::now();
                let answer: Value = http
                    .post(&url)
                    .header("authorization", format!("HMAC {signature}"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                latencies.push(begun.elapsed());
                let headline = &answer["attachments"][0]["content"]["body"][0]["text"];
                anyhow::ensure!(
                    headline == "Recorded.",
                    "the webhook was not recorded: {answer}"
                );
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Measurement {
        operations: latencies.len() as u64,
        elapsed: started.elapsed(),
        latencies,
    })
}

async fn through_api(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    cases: &[String],
    clients: usize,
    round: usize,
) -> Result<Measurement> {
    let chunk = cases.len().div_ceil(clients);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (client, cases) in cases.chunks(chunk).enumerate() {
        let http = http.clone();
        let base = base.to_string();
        let token = token.to_string();
        let cases = cases.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(cases.len());
            for (index, case) in cases.iter().enumerate() {
                let begun = Instant::now();
                http.post(format!("{base}/v1/cases/{case}/approvals"))
                    .bearer_auth(&token)
                    .header(
                        "idempotency-key",
                        format!("approve-{round}-{client}-{index}"),
                    )
                    .json(&json!({"comment": "benchmark"}))
                    .send()
                    .await?
                    .error_for_status()?;
                latencies.push(begun.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Measurement {
        operations: latencies.len() as u64,
        elapsed: started.elapsed(),
        latencies,
    })
}
