//! The crash campaign (`cargo xtask crash`): a real `custody serve` under
//! concurrent load is killed with SIGKILL at a random moment, restarted on
//! the same store, and checked, run after run.
//!
//! The load: writer tasks take cases through every stage (request, evidence
//! upload, approval through the API or through the Teams connector's signed
//! webhook, execution, review); the server meanwhile delivers notifications
//! to a webhook receiver of this process and pushes every event to an export
//! webhook sink of this process. After each kill the campaign runs `custody
//! verify` on the crashed store, restarts the server and checks that every
//! write answered 2xx is in the ledger and every evidence blob an event names
//! can be downloaded with its hash. After the last run it waits for the
//! server to deliver every notification the ledger owes and to push every
//! event to the sink, then prints the figures and exits 1 when a goal is
//! missed. See docs/crash.md.

#![forbid(unsafe_code)]
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "durations and counts far below the limits of the types"
)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The Teams outgoing webhook's security token (base64, as Teams shows it).
const TEAMS_TOKEN: &str = "q0Z9n3kXvJt6m5yB1cR8eW2aL4sD7fG0hJ3kP6uY9iE=";
/// The Teams approver's Entra object ID, mapped to `chat-approver`.
const APPROVER_AAD: &str = "9a4f5162-7d8e-4f90-b1a2-c3d4e5f60718";
/// The notification channel the campaign counts deliveries on.
const CHANNEL: &str = "hook";
/// The finding of a blob no event names: expected right after a kill that
/// cut an upload off between its blob and its event.
const UNREFERENCED: &str = custody_core::Code::EvidenceBlobUnreferenced.as_str();

const USAGE: &str = "usage: custody-crash --custody PATH [--runs N] [--store sqlite|postgres] \
[--seed S] [--seconds-per-run N] [--max-seconds N] [--workers N] [--dir DIR] [--database-url URL]";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Store {
    Sqlite,
    Postgres,
}

struct Args {
    custody: PathBuf,
    runs: u32,
    store: Store,
    seed: u64,
    seconds_per_run: f64,
    max_seconds: u64,
    workers: usize,
    dir: Option<PathBuf>,
    admin_database_url: String,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        custody: PathBuf::new(),
        runs: 100,
        store: Store::Sqlite,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64,
        seconds_per_run: 3.0,
        max_seconds: 3600,
        workers: 6,
        dir: None,
        admin_database_url: std::env::var("CUSTODY_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string()),
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let mut value = || {
            iter.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--custody" => args.custody = PathBuf::from(value()?),
            "--runs" => args.runs = value()?.parse()?,
            "--store" => {
                args.store = match value()?.as_str() {
                    "sqlite" | "embedded" => Store::Sqlite,
                    "postgres" | "postgresql" => Store::Postgres,
                    other => bail!("unknown store {other}\n{USAGE}"),
                }
            }
            "--seed" => args.seed = value()?.parse()?,
            "--seconds-per-run" => args.seconds_per_run = value()?.parse()?,
            "--max-seconds" => args.max_seconds = value()?.parse()?,
            "--workers" => args.workers = value()?.parse()?,
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            "--database-url" => args.admin_database_url = value()?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    anyhow::ensure!(
        !args.custody.as_os_str().is_empty(),
        "--custody is required\n{USAGE}"
    );
    anyhow::ensure!(
        args.runs > 0 && args.workers > 0,
        "--runs and --workers must be positive"
    );
    anyhow::ensure!(
        args.seconds_per_run >= 0.1,
        "--seconds-per-run must be at least 0.1"
    );
    Ok(args)
}

/// splitmix64: the campaign's only source of randomness, from `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What the receivers of this process saw: per delivery ID (notifications)
/// and per event ID (the export sink), how many times.
#[derive(Default)]
struct Received {
    notify: Mutex<HashMap<String, u32>>,
    export: Mutex<HashMap<String, u32>>,
    export_batches: AtomicU64,
}

async fn start_receivers(received: Arc<Received>) -> Result<String> {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    async fn notify(
        State(received): State<Arc<Received>>,
        headers: HeaderMap,
        _body: Bytes,
    ) -> StatusCode {
        let id = headers
            .get(custody_notify::DELIVERY_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        *received
            .notify
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(id)
            .or_default() += 1;
        StatusCode::OK
    }
    async fn export(State(received): State<Arc<Received>>, body: Bytes) -> StatusCode {
        let mut ids = Vec::new();
        for line in body.split(|byte| *byte == b'\n') {
            if line.is_empty() {
                continue;
            }
            let Ok(event) = serde_json::from_slice::<Value>(line) else {
                return StatusCode::BAD_REQUEST;
            };
            let Some(id) = event["event_id"].as_str() else {
                return StatusCode::BAD_REQUEST;
            };
            ids.push(id.to_string());
        }
        received.export_batches.fetch_add(1, Ordering::Relaxed);
        let mut seen = received
            .export
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for id in ids {
            *seen.entry(id).or_default() += 1;
        }
        StatusCode::OK
    }
    let app = axum::Router::new()
        .route("/notify", axum::routing::post(notify))
        .route("/export", axum::routing::post(export))
        .with_state(received);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{address}"))
}

/// A running `custody serve`.
struct Serve {
    child: Child,
    base: String,
}

impl Serve {
    fn kill9(mut self) -> Result<()> {
        // `Child::kill` is SIGKILL on Unix.
        self.child.kill().context("SIGKILL the server")?;
        self.child.wait().context("reap the server")?;
        Ok(())
    }

    fn terminate(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9()
    }
}

struct Campaign {
    args: Args,
    root: PathBuf,
    data: PathBuf,
    config: PathBuf,
    database_url: Option<String>,
    server_log: PathBuf,
}

impl Campaign {
    fn store_args(&self, command: &mut Command) {
        command.arg("--data").arg(&self.data);
        if let Some(url) = &self.database_url {
            command.args(["--database-url", url]);
        }
    }

    fn custody(&self) -> Command {
        let mut command = Command::new(&self.args.custody);
        for name in [
            "CUSTODY_URL",
            "CUSTODY_TOKEN",
            "CUSTODY_DATA",
            "CUSTODY_CONFIG",
            "CUSTODY_DATABASE_URL",
            "CUSTODY_LOG_FORMAT",
        ] {
            command.env_remove(name);
        }
        command.stdin(Stdio::null());
        command
    }

    /// Starts `custody serve` and waits for it to listen.
    fn serve(&self, run: &str) -> Result<Serve> {
        let mut command = self.custody();
        command.args(["serve", "--listen", "127.0.0.1:0"]);
        self.store_args(&mut command);
        command.arg("--config").arg(&self.config);
        let mut child = command
            .env("CUSTODY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn custody serve")?;
        let stderr = child.stderr.take().context("piped stderr")?;
        let (sender, receiver) = std::sync::mpsc::channel::<Result<String, String>>();
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.server_log)?;
        writeln!(log, "---- {run}: custody serve starts")?;
        std::thread::spawn(move || {
            let mut sender = Some(sender);
            let mut seen = String::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    if let Some(sender) = sender.take() {
                        let _ = sender.send(Ok(addr.trim().to_string()));
                    }
                }
                let _ = writeln!(log, "{line}");
                if sender.is_some() {
                    seen.push_str(&line);
                    seen.push('\n');
                }
            }
            if let Some(sender) = sender.take() {
                let _ = sender.send(Err(seen));
            }
        });
        match receiver.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(addr)) => Ok(Serve {
                child,
                base: format!("http://{addr}"),
            }),
            Ok(Err(stderr)) => {
                let status = child.wait()?;
                bail!("custody serve exited ({status}) before listening:\n{stderr}")
            }
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("custody serve did not listen within 120 s: {error}")
            }
        }
    }

    /// `custody verify --json` on the store: the codes of the findings that
    /// are more than notes, and the events checked.
    fn verify(&self) -> Result<(Vec<String>, u64)> {
        let mut command = self.custody();
        command.args(["verify", "--json"]);
        self.store_args(&mut command);
        // The evidence store is outside the data directory.
        command.arg("--config").arg(&self.config);
        let output = command.output().context("run custody verify")?;
        let report: Value = serde_json::from_slice(&output.stdout).with_context(|| {
            format!(
                "verify printed no JSON (exit {:?}): {}",
                output.status.code(),
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
        let codes = report["findings"]
            .as_array()
            .context("verify findings")?
            .iter()
            .filter(|finding| finding["severity"] != "info")
            .map(|finding| finding["code"].as_str().unwrap_or("?").to_string())
            .collect();
        Ok((codes, report["checked"]["events"].as_u64().unwrap_or(0)))
    }
}

/// One write answered 2xx.
#[derive(Clone, Debug)]
enum Ack {
    /// An API write: the events its answer says it appended.
    Api {
        what: &'static str,
        case: String,
        events: Vec<String>,
    },
    /// A Teams approval answered "Recorded.": the case must hold an approval.
    Teams { case: String },
}

/// What the ledger holds, read from the log through the API, entry by
/// entry, across runs.
#[derive(Default)]
struct Ledger {
    size: u64,
    events: HashSet<String>,
    /// Cases with an `approval_granted` event.
    approved: HashSet<String>,
    /// Events of the load's kinds per case and kind: each write is one.
    per_case: HashMap<(String, String), u32>,
    /// A case with two events of one of the load's kinds (a write recorded twice).
    recorded_twice: u64,
    /// Owed deliveries on [`CHANNEL`], by delivery ID.
    owed: HashSet<String>,
    /// Owed deliveries on other channels.
    owed_elsewhere: u64,
    /// Evidence blobs events name, checked or not yet: (case, sha256).
    evidence: Vec<(String, String)>,
    evidence_checked: usize,
}

struct Tokens {
    admin: String,
    requester: String,
    approver: String,
    executor: String,
    reviewer: String,
}

#[derive(Default)]
struct Totals {
    runs: u32,
    acked: BTreeMap<&'static str, u64>,
    lost: u64,
    lost_examples: Vec<String>,
    refused: BTreeMap<String, u64>,
    verify_findings: BTreeMap<String, u64>,
    evidence_missing: u64,
    /// `evidence.blob-unreferenced` findings on the crashed stores.
    unreferenced_after_kill: u64,
    /// Writes cut off by a kill, sent again after the restart.
    in_doubt: u64,
    /// Of those, the ones the server had committed (the retry was a replay).
    in_doubt_committed: u64,
    /// Of those, the ones refused on the retry.
    in_doubt_refused: u64,
    in_doubt_examples: Vec<String>,
    log_shrank: u64,
    kill_after_ms: Vec<u64>,
    /// Restarted servers killed again while recovering.
    recovery_kills: u64,
    restart_ms: Vec<u64>,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(error) => {
            eprintln!("custody-crash: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool> {
    let args = parse_args()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(campaign(args))
}

async fn campaign(args: Args) -> Result<bool> {
    let started = Instant::now();
    let mut rng = Rng(args.seed);
    let root = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("custody-crash-{}", args.seed)),
    };
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    std::fs::create_dir_all(&root)?;
    let data = root.join("data");
    let database_url = match args.store {
        Store::Sqlite => None,
        Store::Postgres => Some(create_database(&args.admin_database_url, args.seed).await?),
    };
    let received = Arc::new(Received::default());
    let receivers = start_receivers(received.clone()).await?;
    let config = root.join("custody.toml");
    std::fs::write(
        &config,
        format!(
            "[notify]\nbackoff_initial_ms = 100\nbackoff_max_ms = 1000\npoll_interval_ms = 50\nlease_seconds = 3\nmax_attempts = 50\n\n\
             [[notify.channels]]\ntype = \"webhook\"\nname = \"{CHANNEL}\"\nurl = \"{receivers}/notify\"\nsecret = \"crash-notify-secret\"\ntimeout_seconds = 2\n\n\
             [export]\npoll_interval_ms = 50\nlease_seconds = 3\nbackoff_initial_ms = 100\nbackoff_max_ms = 1000\n\n\
             [[export.sinks]]\nkind = \"webhook\"\nname = \"sink\"\nurl = \"{receivers}/export\"\nsecret = \"crash-export-secret\"\ntimeout_seconds = 2\n\n\
             [evidence.store]\nbackend = \"local\"\npath = \"{}\"\n\n\
             [[connectors]]\nname = \"teams\"\nkind = \"teams\"\nsecret = \"{TEAMS_TOKEN}\"\n",
            root.join("evidence").display()
        ),
    )?;
    let campaign = Campaign {
        server_log: root.join("serve.log"),
        args,
        root,
        data,
        config,
        database_url,
    };
    let args = &campaign.args;
    println!(
        "crash campaign: {} runs on {:?}, seed {}, kill within {} s of load, {} writers, at most {} s; in {}",
        args.runs,
        args.store,
        args.seed,
        args.seconds_per_run,
        args.workers,
        args.max_seconds,
        campaign.root.display()
    );

    // Initialise the store and the principals.
    let mut init = campaign.custody();
    init.args(["init", "--json"]);
    campaign.store_args(&mut init);
    let output = init.output().context("custody init")?;
    anyhow::ensure!(
        output.status.success(),
        "custody init failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout)?;
    let admin = report["admin_token"]
        .as_str()
        .context("admin_token")?
        .to_string();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let server = campaign.serve("setup")?;
    let token = |name: &'static str| token_of(&http, &server.base, &admin, name);
    let tokens = Arc::new(Tokens {
        requester: token("requester").await?,
        approver: token("approver").await?,
        executor: token("executor").await?,
        reviewer: token("reviewer").await?,
        admin: admin.clone(),
    });
    token("chat-approver").await?;
    http.put(format!(
        "{}/v1/connectors/teams/identities/{APPROVER_AAD}",
        server.base
    ))
    .bearer_auth(&admin)
    .json(&json!({"principal": "chat-approver"}))
    .send()
    .await?
    .error_for_status()
    .context("mapping the Teams approver")?;
    let mut server = Some(server);

    let mut ledger = Ledger::default();
    let mut totals = Totals::default();
    let deadline = started + Duration::from_secs(args.max_seconds);
    for run in 0..args.runs {
        if Instant::now() >= deadline {
            println!(
                "time cap of {} s reached after {run} runs",
                args.max_seconds
            );
            break;
        }
        let serve = match server.take() {
            Some(serve) => serve,
            None => {
                let begun = Instant::now();
                let serve = campaign.serve(&format!("run {run}"))?;
                totals.restart_ms.push(begun.elapsed().as_millis() as u64);
                serve
            }
        };
        // After a restart: everything acknowledged before is still there.
        scan_log(&http, &serve.base, &admin, &mut ledger, &mut totals).await?;
        check_evidence(&http, &serve.base, &admin, &mut ledger, &mut totals).await?;

        // The load, and the kill at a random moment.
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(RunLog::default()));
        let mut writers = Vec::new();
        for worker in 0..args.workers {
            writers.push(tokio::spawn(writer(
                http.clone(),
                serve.base.clone(),
                tokens.clone(),
                (run, worker, rng.next()),
                stop.clone(),
                log.clone(),
            )));
        }
        let kill_after = Duration::from_secs_f64(0.05 + rng.unit() * (args.seconds_per_run - 0.05));
        tokio::time::sleep(kill_after).await;
        serve.kill9()?;
        stop.store(true, Ordering::SeqCst);
        for writer in writers {
            writer.await?;
        }
        totals.kill_after_ms.push(kill_after.as_millis() as u64);
        totals.runs += 1;
        let RunLog {
            mut acks,
            in_doubt,
            refused,
        } = std::mem::take(
            &mut *log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (status, count) in refused {
            *totals.refused.entry(status).or_default() += count;
        }

        // The crashed store verifies, before any restart. A blob whose
        // upload was cut off before its event is expected here (the
        // in-doubt retry below adopts it); it is counted at the end.
        let (codes, _) = campaign.verify()?;
        for code in codes {
            if code == UNREFERENCED {
                totals.unreferenced_after_kill += 1;
            } else {
                *totals.verify_findings.entry(code).or_default() += 1;
            }
        }

        // One run in four, the restarted server is killed again within
        // 300 ms of listening, while it recovers (leases of the dead
        // server's deliveries and pushes, the first polls), with no load.
        if rng.unit() < 0.25 {
            let again = campaign.serve(&format!("run {run} recovery"))?;
            tokio::time::sleep(Duration::from_secs_f64(rng.unit() * 0.3)).await;
            again.kill9()?;
            totals.recovery_kills += 1;
            let (codes, _) = campaign.verify()?;
            for code in codes {
                if code == UNREFERENCED {
                    totals.unreferenced_after_kill += 1;
                } else {
                    *totals
                        .verify_findings
                        .entry(format!("{code} (recovery kill)"))
                        .or_default() += 1;
                }
            }
        }

        // Restart; send every write that was cut off again with its key,
        // as a client would; then every acknowledged write is there.
        let begun = Instant::now();
        let serve = campaign.serve(&format!("run {run} restart"))?;
        totals.restart_ms.push(begun.elapsed().as_millis() as u64);
        for op in &in_doubt {
            totals.in_doubt += 1;
            match perform(&http, &serve.base, op).await {
                Ok((ack, replayed)) => {
                    if replayed {
                        totals.in_doubt_committed += 1;
                    }
                    acks.push(ack);
                }
                Err(failure) => {
                    totals.in_doubt_refused += 1;
                    if totals.in_doubt_examples.len() < 10 {
                        totals.in_doubt_examples.push(format!(
                            "run {run}: {} {}: {}",
                            op.what, op.key, failure.text
                        ));
                    }
                }
            }
        }
        scan_log(&http, &serve.base, &admin, &mut ledger, &mut totals).await?;
        check_evidence(&http, &serve.base, &admin, &mut ledger, &mut totals).await?;
        let mut lost_now = 0;
        for ack in &acks {
            let (what, present) = match ack {
                Ack::Api { what, case, events } => (
                    *what,
                    !case.is_empty()
                        && !events.is_empty()
                        && events.iter().all(|id| ledger.events.contains(id)),
                ),
                Ack::Teams { case } => ("teams approval", ledger.approved.contains(case)),
            };
            *totals.acked.entry(what).or_default() += 1;
            if !present {
                lost_now += 1;
                if totals.lost_examples.len() < 10 {
                    totals.lost_examples.push(format!("run {run}: {ack:?}"));
                }
            }
        }
        totals.lost += lost_now;
        println!(
            "run {run:>3}: killed after {:>5} ms, {:>4} writes acknowledged, {:>2} in doubt, {lost_now} lost, log {} events",
            kill_after.as_millis(),
            acks.len(),
            in_doubt.len(),
            ledger.size
        );
        server = Some(serve);
    }

    // The last server: every owed notification delivered, every event pushed.
    let serve = match server.take() {
        Some(serve) => serve,
        None => campaign.serve("final")?,
    };
    let drain_started = Instant::now();
    let drain_deadline = drain_started + Duration::from_secs(180);
    let (undelivered, unexported) = loop {
        scan_log(&http, &serve.base, &admin, &mut ledger, &mut totals).await?;
        let undelivered = {
            let seen = received
                .notify
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            ledger
                .owed
                .iter()
                .filter(|id| !seen.contains_key(*id))
                .count()
        };
        let unexported = {
            let seen = received
                .export
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            ledger
                .events
                .iter()
                .filter(|id| !seen.contains_key(*id))
                .count()
        };
        if (undelivered == 0 && unexported == 0) || Instant::now() >= drain_deadline {
            break (undelivered, unexported);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let drain = drain_started.elapsed();
    check_evidence(&http, &serve.base, &admin, &mut ledger, &mut totals).await?;
    let dead = dead_notifications(&http, &serve.base, &tokens.admin).await?;
    serve.terminate()?;
    let (final_codes, final_checked) = campaign.verify()?;
    let mut final_unreferenced = 0u64;
    for code in &final_codes {
        if code == UNREFERENCED {
            final_unreferenced += 1;
        } else {
            *totals
                .verify_findings
                .entry(format!("{code} (final)"))
                .or_default() += 1;
        }
    }

    let (notify_received, notify_duplicates) = tally(&received.notify);
    let (export_received, export_duplicates) = tally(&received.export);
    let acked_total: u64 = totals.acked.values().sum();
    let verify_total: u64 = totals.verify_findings.values().sum();
    let elapsed = started.elapsed();
    println!();
    println!(
        "crash campaign: {} runs on {:?}, seed {}, {:.0} s (drain after the last run {:.1} s)",
        totals.runs,
        args.store,
        args.seed,
        elapsed.as_secs_f64(),
        drain.as_secs_f64()
    );
    println!(
        "  kill after (ms): median {} max {}; {} more kills within 300 ms of a restart; restart to listening (ms): median {} max {}",
        median(&totals.kill_after_ms),
        totals.kill_after_ms.iter().max().unwrap_or(&0),
        totals.recovery_kills,
        median(&totals.restart_ms),
        totals.restart_ms.iter().max().unwrap_or(&0)
    );
    println!(
        "  acknowledged writes: {acked_total} ({}); refused or cut off: {}",
        totals
            .acked
            .iter()
            .map(|(what, count)| format!("{what} {count}"))
            .collect::<Vec<_>>()
            .join(", "),
        if totals.refused.is_empty() {
            "none".to_string()
        } else {
            totals
                .refused
                .iter()
                .map(|(what, count)| format!("{what} {count}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    println!(
        "  writes cut off by a kill and sent again after the restart: {} ({} had been committed, {} refused)",
        totals.in_doubt, totals.in_doubt_committed, totals.in_doubt_refused
    );
    println!(
        "  {UNREFERENCED} on the crashed stores (uploads cut off before their event): {}",
        totals.unreferenced_after_kill
    );
    println!(
        "  ledger: {} events, verify checked {final_checked} at the end",
        ledger.size
    );
    println!();
    let rows = [
        ("acknowledged writes lost", totals.lost + totals.log_shrank, format!("of {acked_total}")),
        (
            "verify findings (log vs events, any code)",
            verify_total,
            format!(
                "{} verify passes (after each kill, and at the end); {UNREFERENCED} after kills not counted",
                u64::from(totals.runs) + totals.recovery_kills + 1
            ),
        ),
        (
            "writes recorded twice",
            ledger.recorded_twice,
            "cases with two events of one kind of the load".to_string(),
        ),
        (
            "cut-off writes refused when sent again",
            totals.in_doubt_refused,
            format!("of {}", totals.in_doubt),
        ),
        (
            "deliveries lost",
            undelivered as u64,
            format!(
                "of {} owed on {CHANNEL}; {notify_received} received, {notify_duplicates} duplicates; {dead} dead in the outbox; {} owed elsewhere",
                ledger.owed.len(),
                ledger.owed_elsewhere
            ),
        ),
        (
            "evidence referenced but missing",
            totals.evidence_missing,
            format!("of {} blobs named", ledger.evidence.len()),
        ),
        (
            "evidence blobs no event names (final verify)",
            final_unreferenced,
            "after every cut-off upload was sent again".to_string(),
        ),
        (
            "events not pushed to the export sink",
            unexported as u64,
            format!(
                "of {}; {export_received} received, {export_duplicates} duplicates, {} batches",
                ledger.events.len(),
                received.export_batches.load(Ordering::Relaxed)
            ),
        ),
    ];
    println!("| check | goal | found | |");
    println!("|---|---|---|---|");
    for (name, found, detail) in &rows {
        println!("| {name} | 0 | {found} | {detail} |");
    }
    for example in &totals.in_doubt_examples {
        println!("  refused when sent again: {example}");
    }
    for example in &totals.lost_examples {
        println!("  lost: {example}");
    }
    if totals.log_shrank > 0 {
        println!(
            "  the log shrank across a restart {} times",
            totals.log_shrank
        );
    }
    for (code, count) in &totals.verify_findings {
        println!("  verify finding {code}: {count}");
    }
    let ok = rows.iter().all(|(_, found, _)| *found == 0);
    println!();
    println!("{}", if ok { "all goals met" } else { "GOALS MISSED" });
    if ok {
        if let Some(url) = &campaign.database_url {
            drop_database(&args.admin_database_url, url).await;
        }
        let _ = std::fs::remove_dir_all(&campaign.root);
    } else {
        println!("the store is kept in {}", campaign.root.display());
    }
    Ok(ok)
}

fn tally(map: &Mutex<HashMap<String, u32>>) -> (usize, u64) {
    let map = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let duplicates = map.values().map(|count| u64::from(count - 1)).sum();
    (map.len(), duplicates)
}

fn median(values: &[u64]) -> u64 {
    let mut values = values.to_vec();
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// Reads the log from where the last scan stopped.
async fn scan_log(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    ledger: &mut Ledger,
    totals: &mut Totals,
) -> Result<()> {
    let health: Value = http
        .get(format!("{base}/healthz"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let size = health["log_size"].as_u64().context("log_size")?;
    if size < ledger.size {
        totals.log_shrank += 1;
        println!("the log shrank from {} to {size}", ledger.size);
        return Ok(());
    }
    while ledger.size < size {
        let page: Value = http
            .get(format!(
                "{base}/v1/log/entries?start={}&end={size}",
                ledger.size
            ))
            .bearer_auth(admin)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let entries = page["entries"].as_array().context("entries")?;
        anyhow::ensure!(!entries.is_empty(), "no log entries from {}", ledger.size);
        for entry in entries {
            anyhow::ensure!(
                entry["index"] == json!(ledger.size),
                "out of order: {entry}"
            );
            let leaf = base64::engine::general_purpose::STANDARD
                .decode(entry["leaf"].as_str().context("leaf")?)?;
            let event: Value = serde_json::from_slice(&leaf)?;
            let case = event["case_id"].as_str().unwrap_or_default().to_string();
            ledger
                .events
                .insert(event["event_id"].as_str().context("event_id")?.to_string());
            let kind = event["kind"].as_str().unwrap_or_default();
            if [
                "request_created",
                "evidence_attached",
                "approval_granted",
                "execution_completed",
                "review_completed",
            ]
            .contains(&kind)
            {
                let count = ledger
                    .per_case
                    .entry((case.clone(), kind.to_string()))
                    .or_default();
                *count += 1;
                if *count == 2 {
                    ledger.recorded_twice += 1;
                    println!("case {case} has two {kind} events");
                }
            }
            match event["kind"].as_str() {
                Some("approval_granted") => {
                    ledger.approved.insert(case.clone());
                }
                Some("evidence_attached") => {
                    if let Some(sha) = event["payload"]["sha256"].as_str() {
                        ledger.evidence.push((case.clone(), sha.to_string()));
                    }
                }
                _ => {}
            }
            for owed in event["notify"].as_array().into_iter().flatten() {
                if owed["channel"] == CHANNEL {
                    if let Some(id) = owed["delivery_id"].as_str() {
                        ledger.owed.insert(id.to_string());
                    }
                } else {
                    ledger.owed_elsewhere += 1;
                }
            }
            ledger.size += 1;
        }
    }
    Ok(())
}

/// Downloads every evidence blob named since the last check, and checks its hash.
async fn check_evidence(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    ledger: &mut Ledger,
    totals: &mut Totals,
) -> Result<()> {
    while ledger.evidence_checked < ledger.evidence.len() {
        let (case, sha) = &ledger.evidence[ledger.evidence_checked];
        let response = http
            .get(format!("{base}/v1/cases/{case}/evidence/{sha}"))
            .bearer_auth(admin)
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        let hash = custody_core::hex::encode(&Sha256::digest(&bytes));
        if !status.is_success() || &hash != sha {
            totals.evidence_missing += 1;
            println!("evidence {sha} of {case} missing: {status}");
        }
        ledger.evidence_checked += 1;
    }
    Ok(())
}

async fn dead_notifications(http: &reqwest::Client, base: &str, admin: &str) -> Result<usize> {
    let list: Value = http
        .get(format!("{base}/v1/notifications?failed=true&limit=1000"))
        .bearer_auth(admin)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(list["notifications"].as_array().map_or(0, |list| {
        list.iter().filter(|entry| entry["state"] == "dead").count()
    }))
}

async fn token_of(http: &reqwest::Client, base: &str, admin: &str, name: &str) -> Result<String> {
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

/// One request of the load, kept so that one cut off can be sent again.
#[derive(Clone, Debug)]
struct Op {
    what: &'static str,
    case: Option<String>,
    path: String,
    token: String,
    key: String,
    body: Body,
}

#[derive(Clone, Debug)]
enum Body {
    Json(Value),
    Bytes(Vec<u8>),
    /// A Teams activity (JSON), signed and posted to the connector's webhook.
    Teams(Vec<u8>),
}

/// Why a request was not acknowledged: cut off (the server died, or
/// answered 5xx: the write may or may not have happened) or refused.
#[derive(Debug)]
struct Failure {
    in_doubt: bool,
    text: String,
}

/// Sends `op` to the server at `base`: its acknowledgement, or why not.
async fn perform(http: &reqwest::Client, base: &str, op: &Op) -> Result<(Ack, bool), Failure> {
    let cut_off = |_| Failure {
        in_doubt: true,
        text: format!("{}: cut off", op.what),
    };
    let request = http.post(format!("{base}{}", op.path));
    let request = match &op.body {
        Body::Json(value) => request
            .bearer_auth(&op.token)
            .header("idempotency-key", &op.key)
            .json(value),
        Body::Bytes(bytes) => request
            .bearer_auth(&op.token)
            .header("idempotency-key", &op.key)
            .header("content-type", "application/octet-stream")
            .body(bytes.clone()),
        Body::Teams(body) => {
            let key = base64::engine::general_purpose::STANDARD
                .decode(TEAMS_TOKEN)
                .unwrap_or_default();
            let signature = base64::engine::general_purpose::STANDARD
                .encode(custody_connect::signature::hmac_sha256(&key, &[body]));
            request
                .header("authorization", format!("HMAC {signature}"))
                .header("content-type", "application/json")
                .body(body.clone())
        }
    };
    let response = request.send().await.map_err(cut_off)?;
    let status = response.status();
    let text = response.text().await.map_err(cut_off)?;
    if !status.is_success() {
        return Err(Failure {
            in_doubt: status.is_server_error(),
            text: format!(
                "{}: {status} {}",
                op.what,
                text.chars().take(160).collect::<String>()
            ),
        });
    }
    let answer: Value = serde_json::from_str(&text).map_err(|_| Failure {
        in_doubt: false,
        text: format!("{}: {status} not JSON", op.what),
    })?;
    if let Body::Teams(_) = op.body {
        let headline = &answer["attachments"][0]["content"]["body"][0]["text"];
        // A message Teams delivers again (its answer was cut off) is
        // answered as a replay: the decision was recorded the first time.
        if headline == "Already recorded: nothing new was added." {
            let case = op.case.clone().unwrap_or_default();
            return Ok((Ack::Teams { case }, true));
        }
        if headline != "Recorded." {
            return Err(Failure {
                in_doubt: false,
                text: format!("{}: {status} {headline}", op.what),
            });
        }
        let case = op.case.clone().unwrap_or_default();
        return Ok((Ack::Teams { case }, false));
    }
    let case = answer["case_id"].as_str().unwrap_or_default().to_string();
    let replayed = answer["replayed"] == true;
    Ok((
        Ack::Api {
            what: op.what,
            case,
            events: appended(&answer),
        },
        replayed,
    ))
}

/// What the writers of one run did.
#[derive(Default)]
struct RunLog {
    acks: Vec<Ack>,
    in_doubt: Vec<Op>,
    refused: BTreeMap<String, u64>,
}

/// One writer: cases through every stage until the server dies.
async fn writer(
    http: reqwest::Client,
    base: String,
    tokens: Arc<Tokens>,
    (run, worker, seed): (u32, usize, u64),
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<RunLog>>,
) {
    let mut rng = Rng(seed);
    let outcome = |op: &Op, result: Result<(Ack, bool), Failure>| {
        let mut log = log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match result {
            Ok((ack, _)) => {
                log.acks.push(ack.clone());
                Ok(ack)
            }
            Err(failure) => {
                if failure.in_doubt {
                    log.in_doubt.push(op.clone());
                }
                *log.refused.entry(failure.text).or_default() += 1;
                Err(failure.in_doubt)
            }
        }
    };
    let mut index = 0u64;
    'cases: while !stop.load(Ordering::SeqCst) {
        index += 1;
        let key = format!("crash-{run}-{worker}-{index}");
        let open = Op {
            what: "request",
            case: None,
            path: "/v1/cases".to_string(),
            token: tokens.requester.clone(),
            key: format!("{key}-open"),
            body: Body::Json(json!({
                "subject": {"kind": "user", "id": key},
                "entitlement": "crash:access",
                "justification": "crash campaign"
            })),
        };
        let result = perform(&http, &base, &open).await;
        let case = match outcome(&open, result) {
            Ok(Ack::Api { case, .. }) => case,
            // Cut off: the server is gone; this writer's run is over.
            Err(true) => break 'cases,
            _ => continue 'cases,
        };
        // Evidence, of a random size up to 64 KiB, unique to this case.
        let mut content = format!("evidence of {case} ({key})\n").into_bytes();
        let extra = (rng.next() % 65_536) as usize;
        content.extend((0..extra).map(|_| b'a' + (rng.next() % 26) as u8));
        let approval = if index.is_multiple_of(2) {
            Op {
                what: "teams approval",
                case: Some(case.clone()),
                path: "/v1/connectors/teams/webhook".to_string(),
                token: String::new(),
                key: key.clone(),
                body: Body::Teams(teams_activity(&key, &case)),
            }
        } else {
            Op {
                what: "approval",
                case: Some(case.clone()),
                path: format!("/v1/cases/{case}/approvals"),
                token: tokens.approver.clone(),
                key: format!("{key}-approve"),
                body: Body::Json(json!({"comment": "crash campaign"})),
            }
        };
        let steps = [
            Op {
                what: "evidence",
                case: Some(case.clone()),
                path: format!("/v1/cases/{case}/evidence?name=ticket.txt"),
                token: tokens.requester.clone(),
                key: format!("{key}-evidence"),
                body: Body::Bytes(content),
            },
            approval,
            Op {
                what: "execution",
                case: Some(case.clone()),
                path: format!("/v1/cases/{case}/executions"),
                token: tokens.executor.clone(),
                key: format!("{key}-execute"),
                body: Body::Json(json!({})),
            },
            Op {
                what: "review",
                case: Some(case.clone()),
                path: format!("/v1/cases/{case}/reviews"),
                token: tokens.reviewer.clone(),
                key: format!("{key}-review"),
                body: Body::Json(json!({"outcome": "confirmed", "comment": "crash campaign"})),
            },
        ];
        for op in steps {
            if stop.load(Ordering::SeqCst) {
                break 'cases;
            }
            let result = perform(&http, &base, &op).await;
            match outcome(&op, result) {
                Ok(_) => {}
                Err(true) => break 'cases,
                Err(false) => continue 'cases,
            }
        }
    }
}

fn appended(answer: &Value) -> Vec<String> {
    answer["appended"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["event_id"].as_str().map(str::to_string))
        .collect()
}

/// `@Custody approve CASE` from the mapped Teams approver, as Teams posts it.
fn teams_activity(id: &str, case: &str) -> Vec<u8> {
    let activity = json!({
        "type": "message",
        "id": id,
        "timestamp": custody_core::Timestamp::now().to_string(),
        "serviceUrl": "https://smba.trafficmanager.net/emea/",
        "channelId": "msteams",
        "from": {"id": "29:crash", "name": "Approver", "aadObjectId": APPROVER_AAD},
        "conversation": {
            "isGroup": true,
            "id": format!("19:crash@thread.tacv2;messageid={id}"),
            "conversationType": "channel",
            "tenantId": "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9"
        },
        "textFormat": "plain",
        "text": format!("<at>Custody</at> approve {case} crash campaign\n"),
        "channelData": {
            "teamsChannelId": "19:crash@thread.tacv2",
            "tenant": {"id": "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9"}
        }
    });
    serde_json::to_vec(&activity).unwrap_or_default()
}

/// A fresh database for the campaign on the PostgreSQL server of `admin_url`.
async fn create_database(admin_url: &str, seed: u64) -> Result<String> {
    use sqlx::Connection;
    let name = format!(
        "custody_crash_{}_{}",
        seed % 1_000_000_007,
        std::process::id()
    );
    let mut connection = sqlx::PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to {admin_url}"))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut connection)
        .await?;
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base.to_string())
        .context("the database URL names a database")?;
    Ok(format!("{base}/{name}"))
}

async fn drop_database(admin_url: &str, url: &str) {
    use sqlx::Connection;
    let Some((_, name)) = url.rsplit_once('/') else {
        return;
    };
    if let Ok(mut connection) = sqlx::PgConnection::connect(admin_url).await {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut connection)
        .await;
    }
}
