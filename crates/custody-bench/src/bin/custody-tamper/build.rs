//! The pristine data directory: a real server (in this process, on
//! loopback) driven through its HTTP API the way users drive it, then
//! stopped, and a whole-log and a case bundle exported from it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

/// What the campaign mutates copies of.
pub struct Pristine {
    /// The data directory (server stopped).
    pub data_dir: PathBuf,
    /// A copy of its `checkpoints` file, held outside it: the auditor's.
    pub outside_checkpoints: PathBuf,
    /// A whole-log bundle with the evidence blobs.
    pub log_bundle: PathBuf,
    /// A bundle of one case.
    pub case_bundle: PathBuf,
    /// The log's verifier keys, as text.
    pub keys: Vec<String>,
    /// Events in the log.
    pub events: u64,
    /// Steps of the scenario that the server refused (reported, not fatal).
    pub refused_steps: Vec<String>,
}

struct Api {
    http: reqwest::Client,
    base: String,
    refused: Vec<String>,
    counter: u64,
}

impl Api {
    /// A write; a refusal is noted, not fatal, so that the campaign still
    /// runs when one scenario step changes meaning.
    async fn post(&mut self, token: &str, path: &str, body: Value) -> Option<Value> {
        self.counter += 1;
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("idempotency-key", format!("tamper-{}", self.counter))
            .json(&body)
            .send()
            .await;
        self.answer(path, response).await
    }

    async fn upload(&mut self, token: &str, path: &str, bytes: Vec<u8>) -> Option<Value> {
        self.counter += 1;
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("idempotency-key", format!("tamper-{}", self.counter))
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await;
        self.answer(path, response).await
    }

    async fn delete(&mut self, token: &str, path: &str) -> Option<Value> {
        let response = self
            .http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await;
        self.answer(path, response).await
    }

    async fn get(&mut self, token: &str, path: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await;
        self.answer(path, response).await
    }

    async fn answer(
        &mut self,
        path: &str,
        response: reqwest::Result<reqwest::Response>,
    ) -> Option<Value> {
        match response {
            Ok(response) if response.status().is_success() => {
                Some(response.json().await.unwrap_or(Value::Null))
            }
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                self.refused.push(format!("{path}: {status} {body}"));
                None
            }
            Err(error) => {
                self.refused.push(format!("{path}: {error}"));
                None
            }
        }
    }

    async fn principal(&mut self, admin: &str, body: Value) -> Result<(String, String)> {
        let name = body["name"].as_str().context("name")?.to_string();
        self.post(admin, "/v1/principals", body).await;
        let issued = self
            .post(admin, &format!("/v1/principals/{name}/tokens"), json!({}))
            .await
            .with_context(|| format!("a token for {name}: {:?}", self.refused))?;
        Ok((
            issued["token"].as_str().context("token")?.to_string(),
            issued["token_id"].as_str().unwrap_or_default().to_string(),
        ))
    }
}

/// Builds the pristine directory under `root`.
pub async fn build(root: &Path) -> Result<Pristine> {
    let data_dir = root.join("pristine");
    let (store, report) = custody_server::init::initialise(
        &data_dir,
        &custody_store::Location::Embedded(data_dir.clone()),
        None,
    )
    .await
    .context("initialising the pristine data directory")?;

    // A notification receiver that fails every third delivery, so the
    // outbox holds delivered rows, retried ones and attempts of both kinds.
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let receiver = axum::Router::new().route(
        "/notify",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) % 3 == 2 {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let receiver_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_address = receiver_listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(receiver_listener, receiver).await;
    });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(custody_server::serve_listener(
        store,
        listener,
        options(&data_dir, &format!("http://{receiver_address}/notify"))?,
        async move {
            let _ = stopped.await;
        },
    ));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut api = Api {
        http: reqwest::Client::new(),
        base: format!("http://{address}"),
        refused: Vec::new(),
        counter: 0,
    };
    let admin = report.admin_token.clone();
    scenario(&mut api, &admin).await?;

    // Let the deliveries (and their retries) settle, then sign.
    let mut last = u64::MAX;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pending = api
            .get(&admin, "/v1/notifications?limit=1000")
            .await
            .and_then(|list| {
                list["notifications"].as_array().map(|rows| {
                    rows.iter()
                        .filter(|row| row["state"] == "pending" && row["attempts"] == 0)
                        .count()
                })
            })
            .unwrap_or(0) as u64;
        let now = received.load(Ordering::SeqCst);
        if pending == 0 && now == last {
            break;
        }
        last = now;
    }
    api.post(&admin, "/v1/log/checkpoint", json!({})).await;
    let _ = stop.send(());
    server.await??;

    let keys: Vec<String> = custody_store::keys::trusted_keys(&data_dir)?
        .iter()
        .map(ToString::to_string)
        .collect();
    let outside_checkpoints = root.join("outside-checkpoints");
    std::fs::copy(
        data_dir.join(custody_store::checkpoint_file::CHECKPOINTS_FILE),
        &outside_checkpoints,
    )
    .context("the pristine directory has no checkpoints file")?;

    let store = custody_store::ReadOnlyStore::open(&data_dir).await?;
    let events = store.log_size().await?;
    let blobs = custody_evidence::LocalBlobStore::new(data_dir.join("evidence"));
    let trusted = custody_store::keys::trusted_keys(&data_dir)?;
    let log_bundle = root.join("whole-log-bundle.jsonl");
    let case_bundle = root.join("case-bundle.jsonl");
    let case_id: String = sqlx_first_case(&data_dir).await?;
    for (path, scope) in [
        (&log_bundle, custody_export::bundle::Scope::Log),
        (
            &case_bundle,
            custody_export::bundle::Scope::Case { case_id },
        ),
    ] {
        let request = custody_verify::bundle::MakeRequest {
            scope,
            with_evidence: true,
            keys: trusted.clone(),
        };
        let file = std::fs::File::create(path)?;
        custody_verify::bundle::make_bundle(
            &store,
            &request,
            Some(&blobs),
            custody_core::Timestamp::now(),
            std::io::BufWriter::new(file),
            &mut |_, _| {},
        )
        .await
        .map_err(|error| anyhow::anyhow!("exporting {}: {error}", path.display()))?;
    }
    Ok(Pristine {
        data_dir,
        outside_checkpoints,
        log_bundle,
        case_bundle,
        keys,
        events,
        refused_steps: api.refused,
    })
}

/// The first request case whose events include an evidence upload (so the
/// case bundle carries a blob).
async fn sqlx_first_case(data_dir: &Path) -> Result<String> {
    use sqlx::Connection as _;
    let mut connection = sqlx::SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(data_dir.join(custody_store::DATABASE_FILE))
            .read_only(true),
    )
    .await?;
    let row: (String,) = sqlx::query_as(
        "SELECT case_id FROM events WHERE kind = 'evidence_attached' ORDER BY log_index LIMIT 1",
    )
    .fetch_one(&mut connection)
    .await
    .or(sqlx::query_as(
        "SELECT case_id FROM cases WHERE case_id LIKE 'AC-%' ORDER BY opened_at LIMIT 1",
    )
    .fetch_one(&mut connection)
    .await)?;
    Ok(row.0)
}

/// The users' work: principals and groups, a vendor under a delegation,
/// cases through every stage, a denial, a break-glass, comments, evidence
/// (in a case and held for a ticket), tokens issued and revoked, a
/// delegation revoked, checkpoints signed along the way.
async fn scenario(api: &mut Api, admin: &str) -> Result<()> {
    let (requester, _) = api
        .principal(
            admin,
            json!({"name": "rita", "kind": "human", "groups": ["dev"]}),
        )
        .await?;
    let (approver, _) = api
        .principal(
            admin,
            json!({"name": "abe", "kind": "human", "groups": ["approvers"]}),
        )
        .await?;
    let (executor, _) = api
        .principal(admin, json!({"name": "provisioner", "kind": "automation"}))
        .await?;
    let (reviewer, _) = api
        .principal(
            admin,
            json!({"name": "rev", "kind": "human", "groups": ["security"]}),
        )
        .await?;
    let (oncall, _) = api
        .principal(admin, json!({"name": "oncall", "kind": "human"}))
        .await?;
    let (vendor, _) = api
        .principal(
            admin,
            json!({"name": "vera", "kind": "vendor", "org": "msp-co"}),
        )
        .await?;
    let (_, spare_token_id) = api
        .principal(admin, json!({"name": "ci-bot", "kind": "service"}))
        .await?;
    let grant = api
        .post(
            admin,
            "/v1/delegations",
            json!({"vendor_org": "msp-co", "on_behalf_of": "dba-team", "valid_for": "30d",
                   "principals": ["vera"], "entitlements": ["db-*"], "resources": []}),
        )
        .await;
    api.post(admin, "/v1/log/checkpoint", json!({})).await;

    let mut cases = Vec::new();
    for index in 0..6 {
        let opened = api
            .post(
                &requester,
                "/v1/cases",
                json!({"subject": {"kind": if index % 2 == 0 {"user"} else {"service_account"}, "id": format!("subject-{index}")},
                       "entitlement": format!("db-read-{index}"), "change": "grant",
                       "resource": format!("prod-db-{index}"), "duration": "8h",
                       "justification": format!("ticket work {index}"),
                       "ticket": format!("jira:OPS-{index}")}),
            )
            .await;
        let Some(case) = opened.and_then(|opened| opened["case_id"].as_str().map(str::to_string))
        else {
            continue;
        };
        cases.push(case.clone());
        api.post(
            &requester,
            &format!("/v1/cases/{case}/comments"),
            json!({"text": format!("context for case {index}")}),
        )
        .await;
        if index == 5 {
            api.post(
                &approver,
                &format!("/v1/cases/{case}/denials"),
                json!({"comment": "not needed"}),
            )
            .await;
            continue;
        }
        api.upload(
            &requester,
            &format!("/v1/cases/{case}/evidence?name=screenshot-{index}.txt"),
            format!("evidence of case {index}: the ticket's screenshot\n").into_bytes(),
        )
        .await;
        api.post(
            &approver,
            &format!("/v1/cases/{case}/approvals"),
            json!({"comment": "ok"}),
        )
        .await;
        let executing = if index == 3 { &vendor } else { &executor };
        api.post(
            executing,
            &format!("/v1/cases/{case}/executions"),
            json!({"comment": "applied",
                   "change_set": {"changes": [{"op": "grant", "subject": format!("user:subject-{index}"), "entitlement": format!("db-read-{index}"), "resource": format!("prod-db-{index}")}]}}),
        )
        .await;
        if index != 4 {
            api.post(
                &reviewer,
                &format!("/v1/cases/{case}/reviews"),
                json!({"outcome": if index == 2 {"revoke"} else {"confirmed"}, "comment": "checked"}),
            )
            .await;
        }
        if index == 1 {
            api.post(admin, "/v1/log/checkpoint", json!({})).await;
        }
    }
    // Evidence held for a ticket no case carries yet, then one that does.
    api.upload(
        &requester,
        "/v1/evidence?ticket=jira:OPS-99&name=held.txt",
        b"held evidence for OPS-99\n".to_vec(),
    )
    .await;
    api.upload(
        &requester,
        "/v1/evidence?ticket=jira:OPS-0&name=late.txt",
        b"late evidence for OPS-0\n".to_vec(),
    )
    .await;
    // Break-glass, reviewed after.
    if let Some(opened) = api
        .post(
            &oncall,
            "/v1/break-glass",
            json!({"subject": {"kind": "user", "id": "db-oncall"}, "entitlement": "db-admin",
                   "resource": "prod-db-0", "justification": "outage INC-7"}),
        )
        .await
    {
        if let Some(case) = opened["case_id"].as_str() {
            api.post(
                &reviewer,
                &format!("/v1/cases/{case}/reviews"),
                json!({"outcome": "confirmed", "comment": "justified"}),
            )
            .await;
        }
    }
    // Administration: a token revoked, a delegation revoked, groups changed.
    api.delete(admin, &format!("/v1/tokens/{spare_token_id}"))
        .await;
    if let Some(grant_id) = grant
        .as_ref()
        .and_then(|grant| grant["grant_id"].as_str().map(str::to_string))
    {
        api.delete(admin, &format!("/v1/delegations/{grant_id}"))
            .await;
    }
    api.http
        .put(format!("{}/v1/principals/rev/groups", api.base))
        .bearer_auth(admin)
        .json(&json!({"groups": ["security", "auditors"]}))
        .send()
        .await?;
    anyhow::ensure!(cases.len() >= 4, "too few cases opened: {:?}", api.refused);
    Ok(())
}

fn options(data_dir: &Path, notify_url: &str) -> Result<custody_server::ServeOptions> {
    let notify: custody_server::delivery::NotifyConfig = toml::from_str(&format!(
        "backoff_initial_ms = 100\nbackoff_max_ms = 200\npoll_interval_ms = 50\nmax_attempts = 3\n\n\
         [[channels]]\ntype = \"webhook\"\nname = \"hook\"\nurl = \"{notify_url}\"\nsecret = \"tamper-secret\"\ntimeout_seconds = 2\n"
    ))?;
    Ok(custody_server::ServeOptions {
        monitor: custody_server::monitor::MonitorOptions {
            interval_seconds: 0,
            poll: Duration::from_secs(1),
            trusted_keys: Vec::new(),
            checkpoint_interval_seconds: 3600,
            idle_after_entries: 0,
        },
        max_body_bytes: 1024 * 1024,
        checkpoint_interval: Duration::from_secs(3600),
        checkpoint_copies: custody_server::checkpoint_copies::CheckpointCopies::open(
            data_dir, None,
        )
        .map_err(anyhow::Error::msg)?,
        log: custody_server::keys::LogSigner::load(data_dir)?,
        policy: custody_core::policy::Policy::default(),
        policy_source: "built-in default".to_string(),
        scan_interval: Duration::from_secs(3600),
        notify,
        export: custody_server::push::ExportConfig::default(),
        connectors: Vec::new(),
        witnesses: Vec::new(),
        evidence: custody_server::api::evidence::EvidenceState::new(
            std::sync::Arc::new(custody_evidence::LocalBlobStore::new(
                data_dir.join("evidence"),
            )),
            Default::default(),
        ),
        clock: custody_core::time::SystemClock::shared(),
        tls: None,
        oidc: None,
        console: custody_server::config::ConsoleConfig::default(),
    })
}
