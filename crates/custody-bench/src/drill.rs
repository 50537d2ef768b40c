//! 8. A full `custody drill --embedded` with every channel configured (a
//!    webhook notification receiver, a webhook and a file export sink, a
//!    Slack connector, an Okta source, all on loopback): its wall time and
//!    peak memory in a child process, beside the same number of plain cases
//!    (request, approval, execution, review through the HTTP API of a
//!    server in the process, also a child) in the same run
//!    (`CUSTODY_BENCH_ONLY=drill` runs only this).
//!
//! The drill runs the `custody` binary beside this one (`target/release/
//! custody`, built by `cargo xtask bench`), or `CUSTODY_BENCH_CUSTODY`.
//! Its peak memory is its `VmHWM` (a high-water mark), read from
//! `/proc/PID/status` every 10 ms until it exits.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};

/// The argument that makes this binary the baseline's child.
pub const BASELINE_CHILD: &str = "drill-baseline-child";

/// The benchmark.
pub async fn drill_bench() -> Result<()> {
    let custody = custody_binary()?;
    let directory = tempfile::tempdir()?;
    let (base, stop_stub) = receivers().await?;
    let config = directory.path().join("custody.toml");
    std::fs::write(
        &config,
        format!(
            "[notify]\nbackoff_initial_ms = 100\nbackoff_max_ms = 400\npoll_interval_ms = 50\nmax_attempts = 5\n\n\
             [[notify.channels]]\ntype = \"webhook\"\nname = \"hook\"\nurl = \"{base}/notify\"\nsecret = \"bench-secret\"\ntimeout_seconds = 2\n\n\
             [export]\npoll_interval_ms = 50\n\n\
             [[export.sinks]]\nkind = \"webhook\"\nname = \"siem\"\nurl = \"{base}/export\"\nsecret = \"bench-export-secret\"\ntimeout_seconds = 2\n\n\
             [[export.sinks]]\nkind = \"file\"\nname = \"archive\"\npath = \"{}\"\n\n\
             [[connectors]]\nname = \"slack\"\nkind = \"slack\"\nsecret = \"bench-slack-secret\"\nbot_token = \"xoxb-bench\"\napi_url = \"{base}/slack\"\n\n\
             [[connectors]]\nname = \"okta\"\nkind = \"okta\"\n",
            directory.path().join("events.jsonl").display()
        ),
    )?;
    let out = directory.path().join("drill-output.json");
    let started = Instant::now();
    let mut child = std::process::Command::new(&custody)
        .args(["drill", "--embedded", "--json", "--config"])
        .arg(&config)
        .env_remove("CUSTODY_URL")
        .env_remove("CUSTODY_TOKEN")
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", custody.display()))?;
    let mut peak_kib = 0;
    let status = loop {
        peak_kib = peak_kib.max(crate::process_status_kib(&child.id().to_string(), "VmHWM:"));
        if let Some(status) = child.try_wait()? {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let drill_seconds = started.elapsed().as_secs_f64();
    let _ = stop_stub.send(());
    let report: Value = serde_json::from_slice(&std::fs::read(&out)?).with_context(|| {
        format!(
            "the drill printed no JSON (exit {status}): {}",
            std::fs::read_to_string(&out).unwrap_or_default()
        )
    })?;
    anyhow::ensure!(
        status.success() && report["ok"] == true,
        "the drill did not pass: {report:#}"
    );
    let scenarios = report["scenarios"].as_array().context("scenarios")?;
    let passed = scenarios
        .iter()
        .filter(|scenario| scenario["status"] == "passed")
        .count();
    let mut case_ids: Vec<String> = scenarios
        .iter()
        .flat_map(|scenario| {
            scenario["case_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|case| case.as_str().map(str::to_string))
        })
        .collect();
    case_ids.sort();
    case_ids.dedup();
    let count = case_ids.len();

    // The baseline, in a child process of this binary.
    let itself = std::env::current_exe()?;
    let fields = crate::child_figures(
        std::process::Command::new(&itself)
            .arg(BASELINE_CHILD)
            .arg(count.to_string()),
        "the baseline child",
    )?;
    let [baseline_seconds, baseline_peak_kib] = fields[..] else {
        anyhow::bail!("the baseline child printed {fields:?}");
    };
    #[allow(clippy::cast_precision_loss, reason = "kibibytes, far below 2^52")]
    let drill_mib = peak_kib as f64 / 1024.0;
    let baseline_mib = baseline_peak_kib / 1024.0;
    println!(
        "custody drill --embedded, every channel configured ({passed} of {} scenarios passed, {count} drill cases), beside {count} plain cases through the API (child processes, init to exit)",
        scenarios.len()
    );
    println!(
        "  drill:              {drill_seconds:>8.2} s   peak {drill_mib:>6.1} MiB  (init, serve, scenarios with their background waits, verify)"
    );
    println!(
        "  plain cases:        {baseline_seconds:>8.2} s   peak {baseline_mib:>6.1} MiB  (init, serve, request/approve/execute/review each)"
    );
    println!(
        "  ratio drill/plain:  {:>8.2} time   {:>6.2} memory",
        drill_seconds / baseline_seconds,
        drill_mib / baseline_mib
    );
    Ok(())
}

/// The `custody` binary the drill runs.
fn custody_binary() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("CUSTODY_BENCH_CUSTODY") {
        return Ok(PathBuf::from(path));
    }
    let itself = std::env::current_exe()?;
    let beside = itself
        .parent()
        .context("the benchmark's directory")?
        .join("custody");
    anyhow::ensure!(
        beside.is_file(),
        "{} is missing: build it with `cargo build --release --locked --bin custody` (cargo xtask bench does), or set CUSTODY_BENCH_CUSTODY",
        beside.display()
    );
    Ok(beside)
}

/// The drill's outside world on loopback: a notification receiver, an
/// export sink and Slack's Web API, each answering success.
async fn receivers() -> Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let app = axum::Router::new()
        .route(
            "/notify",
            axum::routing::post(|| async { axum::http::StatusCode::OK }),
        )
        .route(
            "/export",
            axum::routing::post(|| async { axum::http::StatusCode::OK }),
        )
        .route(
            "/slack/{method}",
            axum::routing::post(|| async {
                axum::Json(json!({"ok": true, "channel": "C0CUSTODYDRILL", "ts": "1.2"}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Ok((format!("http://{address}"), stop))
}

/// The baseline's child: a data directory initialised, a server in this
/// process, `count` cases each requested, approved, executed and reviewed
/// by four principals through the HTTP API, the server stopped; prints
/// `seconds peak_kib`.
pub fn baseline_child(arguments: &[String]) -> Result<()> {
    let [count] = arguments else {
        anyhow::bail!("usage: custody-bench {BASELINE_CHILD} CASES");
    };
    let count: usize = count.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    runtime.block_on(plain_cases(count))?;
    println!(
        "{} {}",
        started.elapsed().as_secs_f64(),
        crate::status_kib("VmHWM:")
    );
    Ok(())
}

async fn plain_cases(count: usize) -> Result<()> {
    let directory = tempfile::tempdir()?;
    let data_dir = directory.path().join("plain");
    let (store, report) = custody_server::init::initialise(
        &data_dir,
        &custody_store::Location::Embedded(data_dir.clone()),
        None,
    )
    .await
    .context("initialising the baseline's data directory")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(custody_server::serve_listener(
        store,
        listener,
        crate::bench_options(&data_dir)?,
        async move {
            let _ = stopped.await;
        },
    ));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let base = format!("http://{address}");
    let admin = report.admin_token;
    let mut tokens = Vec::new();
    for name in ["requester", "approver", "executor", "reviewer"] {
        tokens.push(token_of(&http, &base, &admin, name).await?);
    }
    let [requester, approver, executor, reviewer] = &tokens[..] else {
        anyhow::bail!("four tokens");
    };
    for index in 0..count {
        let opened: Value = http
            .post(format!("{base}/v1/cases"))
            .bearer_auth(requester)
            .header("idempotency-key", format!("plain-{index}"))
            .json(&json!({"subject": {"kind": "user", "id": format!("plain-{index}")}, "entitlement": "plain:access"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let case = opened["case_id"].as_str().context("case_id")?;
        for (token, step, body) in [
            (approver, "approvals", json!({"comment": "baseline"})),
            (executor, "executions", json!({})),
            (
                reviewer,
                "reviews",
                json!({"outcome": "confirmed", "comment": "baseline"}),
            ),
        ] {
            http.post(format!("{base}/v1/cases/{case}/{step}"))
                .bearer_auth(token)
                .header("idempotency-key", format!("plain-{index}-{step}"))
                .json(&body)
                .send()
                .await?
                .error_for_status()
                .with_context(|| format!("the {step} of {case}"))?;
        }
    }
    let _ = stop.send(());
    server.await??;
    Ok(())
}

/// Adds principal `name` and issues it a token.
pub(crate) async fn token_of(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    name: &str,
) -> Result<String> {
    http.post(format!("{base}/v1/principals"))
        .bearer_auth(admin)
        .json(&json!({"name": name}))
        .send()
        .await?
        .error_for_status()?;
    let issued: Value = http
        .post(format!("{base}/v1/principals/{name}/tokens"))
        .bearer_auth(admin)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(issued["token"].as_str().context("token")?.to_string())
}
