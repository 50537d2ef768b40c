//! Verify, export, storage and reads at scale (`CUSTODY_BENCH_ONLY=scale`;
//! `CUSTODY_BENCH_SCALE_EVENTS` the log sizes, comma-separated, default
//! 1000000; a list such as `1000000,10000000` grows the same store and
//! measures at each size, which is what shows memory flat).
//! `CUSTODY_BENCH_SCALE_DIR=DIR` keeps the store in DIR (with its token and
//! the 1,000-event case's ID) and grows it on the next run instead of
//! building it again: 10M events take most of an hour to append here.
//!
//! How the store is built: `custody init` makes the data directory (key,
//! first admin), then this process opens the store in it and appends
//! through the store API with 256 concurrent writers (the group commit
//! batches them), each opening a case every tenth write and commenting on
//! it otherwise (so a tenth of the events are requests, cases of ten
//! events), plus one case of 1,000 events for the `show` figure. That is
//! the store API's own speed, durable writes included: the slow part.
//!
//! At each size, with the store closed:
//! - `custody verify --data DIR` (the release binary) and `custody export
//!   --format jsonl --out FILE`, each timed and its peak RSS taken from
//!   `/usr/bin/time -f %M` (the child's getrusage), beside `sha256sum` of
//!   the events' canonical bytes concatenated in log order (the very bytes
//!   verify re-hashes), written to a file first; the ratio is verify's
//!   speed over sha256sum's (goal at least 0.5), memory goal flat and under
//!   100 MiB;
//! - storage: the data directory's bytes (database, WAL, key, everything)
//!   per event beside the events' average canonical length;
//! - reads through a release `custody serve` on that data directory:
//!   `GET /v1/cases` with filters and `GET /v1/cases/{id}` of the
//!   1,000-event case, p50/p99 of sequential requests, beside `/healthz`.

use std::path::Path;
use std::process::{Command, Stdio};

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use custody_core::command::{CaseStep, Opening};
use custody_core::model::{Change, ChangeKind, Subject, SubjectKind};
use custody_core::CaseId;
use custody_store::{CaseWrite, Store};
use sqlx::{ConnectOptions, Row};

use crate::served::{self, Served};

fn sizes() -> Vec<u64> {
    match std::env::var("CUSTODY_BENCH_SCALE_EVENTS") {
        Ok(text) => text
            .split(',')
            .filter_map(|size| size.trim().parse().ok())
            .collect(),
        Err(_) => vec![1_000_000],
    }
}

fn opening(actor: &str, key: String, subject: String) -> Result<CaseWrite> {
    Ok(CaseWrite {
        actor: crate::actor(actor)?,
        idempotency_key: key,
        command: Opening::Request {
            drill: false,
            change: Change::new(
                Subject {
                    kind: SubjectKind::User,
                    id: subject,
                },
                ChangeKind::Grant,
                "admin".into(),
                Some("scale".into()),
                None,
            )
            .expect("a valid change"),
            justification: None,
            ticket: None,
            rule: custody_core::policy::AppliedRule::brief_default(),
        }
        .into(),
        occurred_at: None,
        connector: None,
    })
}

fn comment(actor: &str, key: String, case_id: &CaseId, index: u64) -> Result<CaseWrite> {
    Ok(CaseWrite {
        actor: crate::actor(actor)?,
        idempotency_key: key,
        command: CaseStep::Comment {
            case_id: case_id.clone(),
            text: format!("scale note {index:08}"),
        }
        .into(),
        occurred_at: None,
        connector: None,
    })
}

/// Appends about `count` events with 256 writers; `round` keeps the keys
/// of successive fills apart.
async fn fill(store: &Store, count: u64, round: u64) -> Result<()> {
    let writers = 256u64;
    let per_writer = count.div_ceil(writers);
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("scale{writer}");
            let mut case_id = None;
            for index in 0..per_writer {
                let key = format!("r{round}-{index}");
                let write = match (&case_id, index % 10) {
                    (Some(case_id), 1..) => comment(&name, key, case_id, index)?,
                    _ => opening(&name, key, format!("u{writer}-{round}-{index}"))?,
                };
                let outcome = store.write(write).await?;
                if index % 10 == 0 {
                    case_id = Some(outcome.case_id);
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Runs `command` under `/usr/bin/time`; returns (seconds, peak RSS KiB).
fn timed(command: &mut Command, what: &str) -> Result<(f64, u64)> {
    let report = tempfile::NamedTempFile::new()?;
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .args(["-f", "%M", "-o"])
        .arg(report.path())
        .arg(command.get_program())
        .args(command.get_args())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    let started = Instant::now();
    let output = wrapped
        .output()
        .with_context(|| format!("running {what}"))?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(report.path())?;
    let peak = text
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .next_back()
        .with_context(|| format!("/usr/bin/time printed {text:?}"))?;
    Ok((seconds, peak))
}

/// Writes the events' canonical bytes in log order to `out`; returns
/// (events, bytes).
async fn canonical_bytes(data: &Path, out: &Path) -> Result<(u64, u64)> {
    use std::io::Write as _;
    let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data.join(custody_store::DATABASE_FILE))
        .read_only(true)
        .connect()
        .await?;
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let (mut events, mut bytes) = (0u64, 0u64);
    let mut last = -1i64;
    loop {
        let rows = sqlx::query(
            "SELECT log_index, bytes FROM events WHERE log_index > ? ORDER BY log_index LIMIT 50000",
        )
        .bind(last)
        .fetch_all(&mut connection)
        .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let event: &[u8] = row.try_get("bytes")?;
            file.write_all(event)?;
            bytes += event.len() as u64;
            last = row.try_get("log_index")?;
        }
        events += rows.len() as u64;
    }
    file.flush()?;
    Ok((events, bytes))
}

/// p50 and p99 (ms) of `count` sequential GETs of `url`.
async fn latencies(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    count: usize,
) -> Result<(f64, f64)> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let response = http.get(url).bearer_auth(token).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        samples.push(started.elapsed());
        anyhow::ensure!(status.is_success(), "GET {url}: {status}");
        std::hint::black_box(body);
    }
    samples.sort();
    let at = |fraction: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a fraction of the last index"
        )]
        let index = ((samples.len() as f64 - 1.0) * fraction).round() as usize;
        samples[index].as_secs_f64() * 1e3
    };
    Ok((at(0.5), at(0.99)))
}

pub(crate) async fn scale_bench() -> Result<()> {
    // CUSTODY_BENCH_SCALE_DIR keeps the store (and grows it on the next
    // run) instead of a temporary directory: building 10M events takes most
    // of an hour on two cores.
    let kept = std::env::var_os("CUSTODY_BENCH_SCALE_DIR").map(std::path::PathBuf::from);
    let directory = tempfile::tempdir()?;
    let root = kept
        .clone()
        .unwrap_or_else(|| directory.path().to_path_buf());
    std::fs::create_dir_all(&root)?;
    let data = root.join("ledger");
    let token_file = root.join("token");
    let big_file = root.join("big-case");
    let token = if kept.is_some() && token_file.exists() {
        std::fs::read_to_string(&token_file)?.trim().to_string()
    } else {
        let token = served::init(&data, None)?;
        std::fs::write(&token_file, &token)?;
        token
    };
    let custody = served::custody_binary()?;
    println!(
        "verify, export, storage and reads at scale (embedded store; load average {})",
        served::load_average()
    );
    let mut big_case: Option<CaseId> = match std::fs::read_to_string(&big_file) {
        Ok(text) => Some(text.trim().parse().context("the kept big case's ID")?),
        Err(_) => None,
    };
    for target in sizes() {
        let store = Store::open(&data).await?;
        if big_case.is_none() {
            let outcome = store
                .write(opening("scalebig", "big".into(), "big".into())?)
                .await?;
            for index in 1..1000 {
                store
                    .write(comment(
                        "scalebig",
                        format!("big-{index}"),
                        &outcome.case_id,
                        index,
                    )?)
                    .await?;
            }
            std::fs::write(&big_file, outcome.case_id.to_string())?;
            big_case = Some(outcome.case_id);
        }
        let before = store.log_size().await?;
        let started = Instant::now();
        if target > before {
            // The size before keeps this fill's idempotency keys apart from
            // those of a kept store's earlier fills.
            fill(&store, target - before, before).await?;
        }
        let size = store.log_size().await?;
        let build_seconds = started.elapsed().as_secs_f64();
        drop(store);
        // The writer task closes its connection once every handle is gone.
        tokio::time::sleep(Duration::from_secs(1)).await;
        if size > before {
            println!(
                "  {size} events ({} appended through the store API in {build_seconds:.0} s, {:.0} events/s)",
                size - before,
                ((size - before) as f64) / build_seconds.max(1e-9)
            );
        } else {
            println!("  {size} events (the kept store of an earlier run: nothing appended)");
        }
        // Verify wants the log covered by a signed checkpoint (held in the
        // data directory too): a server signs one on request.
        {
            let server = Served::start(&data, None, None).await?;
            reqwest::Client::new()
                .post(format!("{}/v1/log/checkpoint", server.base))
                .bearer_auth(&token)
                .send()
                .await?
                .error_for_status()?;
        }
        // The server's start-up may have written (a policy adoption, the
        // checkpoint's own bookkeeping): measure the log as it now stands.
        let size = {
            let store = Store::open(&data).await?;
            let size = store.log_size().await?;
            drop(store);
            tokio::time::sleep(Duration::from_secs(1)).await;
            size
        };
        let disk = served::disk_bytes(&data);
        let canonical = root.join("canonical.bin");
        let (events, bytes) = canonical_bytes(&data, &canonical).await?;
        anyhow::ensure!(events == size, "read {events} events of {size}");
        let mut sha = Vec::new();
        for _ in 0..3 {
            sha.push(timed(Command::new("sha256sum").arg(&canonical), "sha256sum")?.0);
        }
        let sha_seconds = crate::median(&mut sha);
        let (verify_seconds, verify_kib) = timed(
            Command::new(&custody)
                .args(["verify", "--data"])
                .arg(&data)
                .env_remove("CUSTODY_CONFIG"),
            "custody verify",
        )?;
        let export_file = root.join("export.jsonl");
        let (export_seconds, export_kib) = timed(
            Command::new(&custody)
                .args(["export", "--format", "jsonl", "--data"])
                .arg(&data)
                .arg("--out")
                .arg(&export_file)
                .env_remove("CUSTODY_CONFIG")
                .env_remove("CUSTODY_URL"),
            "custody export",
        )?;
        let export_bytes = std::fs::metadata(&export_file)?.len();
        std::fs::remove_file(&export_file)?;
        std::fs::remove_file(&canonical)?;
        let mb = bytes as f64 / 1e6;
        println!(
            "    sha256sum:        {:>8.2} s  ({:.0} MB of canonical event bytes, {:.0} events/s)",
            sha_seconds,
            mb,
            size as f64 / sha_seconds
        );
        println!(
            "    custody verify:   {:>8.2} s  {:>8.0} events/s  peak RSS {:>6.1} MiB  ratio verify/sha256sum {:.2} (goal 0.5; memory goal < 100 MiB, flat)",
            verify_seconds,
            size as f64 / verify_seconds,
            verify_kib as f64 / 1024.0,
            sha_seconds / verify_seconds
        );
        println!(
            "    custody export:   {:>8.2} s  {:>8.0} events/s  peak RSS {:>6.1} MiB  ratio export/sha256sum {:.2}  ({:.0} MB of jsonl)",
            export_seconds,
            size as f64 / export_seconds,
            export_kib as f64 / 1024.0,
            sha_seconds / export_seconds,
            export_bytes as f64 / 1e6
        );
        println!(
            "    storage:          {:>8.0} bytes on disk per event, canonical {:.0} bytes per event: amplification {:.2}  ({:.0} MB in the data directory)",
            disk as f64 / size as f64,
            bytes as f64 / size as f64,
            disk as f64 / bytes as f64,
            disk as f64 / 1e6
        );

        // Reads through a real server on this data directory.
        let server = Served::start(&data, None, None).await?;
        let http = reqwest::Client::new();
        let count = 200;
        let (health50, health99) =
            latencies(&http, &format!("{}/healthz", server.base), &token, count).await?;
        println!(
            "    reads ({count} sequential requests each), baseline /healthz p50 {health50:.2} ms p99 {health99:.2} ms:"
        );
        let big = big_case.clone().context("the 1,000-event case")?;
        let shown: serde_json::Value = http
            .get(format!("{}/v1/cases/{big}", server.base))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let shown_events = shown["events"].as_array().map_or(0, Vec::len);
        anyhow::ensure!(
            shown_events == 1000,
            "the big case shows {shown_events} events"
        );
        for (label, path) in [
            ("list ?limit=100", "/v1/cases?limit=100".to_string()),
            (
                "list ?state=open&limit=100",
                "/v1/cases?state=open&limit=100".to_string(),
            ),
            (
                "list ?state=reviewed&limit=100",
                "/v1/cases?state=reviewed&limit=100".to_string(),
            ),
            (
                "list ?unsanctioned=true",
                "/v1/cases?unsanctioned=true&limit=100".to_string(),
            ),
            ("show (1,000 events)", format!("/v1/cases/{big}")),
        ] {
            let (p50, p99) =
                latencies(&http, &format!("{}{path}", server.base), &token, count).await?;
            println!(
                "      {label:<30} p50 {p50:>8.2} ms  p99 {p99:>8.2} ms  (p99 / healthz p99 {:.1})",
                p99 / health99
            );
        }
        drop(server);
    }
    Ok(())
}
