//! `cargo xtask bench`: whole-system figures, each beside a baseline measured
//! in the same run on the same machine, reported as a ratio.
//!
//! 1. Durable appends per second through the store API with many concurrent
//!    writers, beside raw SQLite inserts of rows of the same size, with the
//!    same pragmas and durability (WAL, synchronous=FULL), batched the same way
//!    (the same average number of rows per transaction as the store's group
//!    commit achieved).
//! 2. Appends per second through HTTP with concurrent clients, beside the
//!    store API figure.
//!
//! 3. Export throughput of every line format at 250k and 1M events beside
//!    `cat` of the same bytes, and the exporting process's peak memory.
//!
//! 4. Inbound connector webhooks (Teams approvals: verified, recorded,
//!    answered) per second beside the same approvals through the HTTP API
//!    (`CUSTODY_BENCH_ONLY=connectors` runs only this).
//!
//! 7. CloudTrail ingest of a generated trail of 1M records (parsed,
//!    correlated, recorded) beside serde_json parsing alone and beside
//!    plain appends, with the peak memory at 250k and 1M records
//!    (`CUSTODY_BENCH_ONLY=cloudtrail` runs only this;
//!    `CUSTODY_BENCH_CLOUDTRAIL_RECORDS` sets the size).
//!
//! 8. The readiness report at 1M events: verify alone beside verify, the
//!    report built and rendered as HTML and SARIF, time and peak memory as
//!    ratios (`CUSTODY_BENCH_ONLY=report` runs only this;
//!    `CUSTODY_BENCH_REPORT_EVENTS` sets the size).
//! 9. A full `custody drill --embedded` (every scenario, every channel on
//!    loopback): time and peak memory beside the same number of plain cases
//!    through the API (`CUSTODY_BENCH_ONLY=drill` runs only this; see
//!    `drill.rs`).
//! 10. The web console's case page (1,000 events) and inbox (10,000 open
//!     cases waiting), p50 and p99 over HTTP, beside the JSON API's read of
//!     the same data (`CUSTODY_BENCH_ONLY=console` runs only this; see
//!     `console.rs`).
//!
//! 11. Durable appends on PostgreSQL with one and with two store nodes on
//!     one database, beside raw multi-row INSERTs of rows of the same size
//!     and batching (`CUSTODY_BENCH_ONLY=postgres`; see `postgres.rs`).
//! 12. HTTP writes into a release `custody serve` (embedded and
//!     PostgreSQL) loaded by `wrk` at several connection counts, beside
//!     `wrk` against the same server's `/healthz`
//!     (`CUSTODY_BENCH_ONLY=http`; see `http_load.rs`).
//! 13. Verify, export, storage amplification and reads at 1M (and 10M by
//!     hand) events, beside `sha256sum` of the canonical bytes
//!     (`CUSTODY_BENCH_ONLY=scale`; see `scale.rs`).
//! 14. A 10-minute soak at 70% of the maximum write rate with deliveries
//!     and an export sink: RSS and p99 per 10 s window, CSV and SVG
//!     (`CUSTODY_BENCH_ONLY=soak`; see `soak.rs`). Not part of the default
//!     run (it takes 10 minutes): run it by name.
//!
//! Sizes can be scaled with `CUSTODY_BENCH_SCALE` (default 1).

#![forbid(unsafe_code)]

mod cloudtrail;
mod connectors;
mod console;
mod drill;
mod http_load;
mod postgres;
mod report;
mod scale;
mod served;
mod soak;
pub mod trail;

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use custody_core::command::{CaseStep, Opening};
use custody_core::model::{
    Actor, AuthContext, Change, ChangeKind, PrincipalId, PrincipalKind, Subject, SubjectKind, Via,
};
use custody_core::CaseId;
use custody_store::{CaseWrite, Store, StoreOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Row};

struct Measurement {
    operations: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Measurement {
    fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&mut self, fraction: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.sort();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a fraction of the last index, so within the list"
        )]
        let index = ((self.latencies.len() as f64 - 1.0) * fraction).round() as usize;
        self.latencies[index]
    }
}

fn main() -> Result<()> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if arguments.first().map(String::as_str) == Some(EXPORT_CHILD) {
        return export_child(&arguments[1..]);
    }
    if arguments.first().map(String::as_str) == Some(report::REPORT_CHILD) {
        return report::report_child(&arguments[1..]);
    }
    if arguments.first().map(String::as_str) == Some(drill::BASELINE_CHILD) {
        return drill::baseline_child(&arguments[1..]);
    }
    let scale: u64 = std::env::var("CUSTODY_BENCH_SCALE")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1)
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(scale))
}

async fn run(scale: u64) -> Result<()> {
    // 11-14, each by name only, or (but the soak) after the others. Their
    // HTTP clients need the process's TLS provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match std::env::var("CUSTODY_BENCH_ONLY").as_deref() {
        Ok("postgres") => return postgres::postgres_appends(100 * scale).await,
        Ok("http") => return http_load::http_writes().await,
        Ok("scale") => return scale::scale_bench().await,
        Ok("soak") => return soak::soak().await,
        _ => {}
    }
    // 6. Export throughput and memory (`CUSTODY_BENCH_EXPORT_SIZES`, default
    //    250000,1000000); `CUSTODY_BENCH_ONLY=export` runs only this.
    let export_sizes: Vec<u64> = match std::env::var("CUSTODY_BENCH_EXPORT_SIZES") {
        Ok(text) => text
            .split(',')
            .filter_map(|size| size.trim().parse().ok())
            .collect(),
        Err(_) => vec![250_000, 1_000_000],
    };
    // 8. The readiness report (`CUSTODY_BENCH_REPORT_EVENTS`, default 1M);
    //    `CUSTODY_BENCH_ONLY=report` runs only this.
    let report_events: u64 = std::env::var("CUSTODY_BENCH_REPORT_EVENTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1_000_000);
    if std::env::var("CUSTODY_BENCH_ONLY").as_deref() == Ok("report") {
        return report::report_bench(report_events).await;
    }
    if std::env::var("CUSTODY_BENCH_ONLY").as_deref() == Ok("export") {
        return export_throughput(&export_sizes).await;
    }
    let cloudtrail_records: u64 = std::env::var("CUSTODY_BENCH_CLOUDTRAIL_RECORDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1_000_000);
    if std::env::var("CUSTODY_BENCH_ONLY").as_deref() == Ok("cloudtrail") {
        return cloudtrail::cloudtrail_ingest(cloudtrail_records).await;
    }
    let connector_per_client = usize::try_from(40 * scale)?;
    if std::env::var("CUSTODY_BENCH_ONLY").as_deref() == Ok("connectors") {
        return connectors::connector_inbound(16, connector_per_client, 5).await;
    }
    if std::env::var("CUSTODY_BENCH_ONLY").as_deref() == Ok("drill") {
        return drill::drill_bench().await;
    }
    // 10. The console's pages (`CUSTODY_BENCH_CONSOLE_REQUESTS`, default 200
    //     per page); `CUSTODY_BENCH_ONLY=console` runs only this.
    let console_requests: usize = std::env::var("CUSTODY_BENCH_CONSOLE_REQUESTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(200)
        .max(1);
    if std::env::var("CUSTODY_BENCH_ONLY").as_deref() == Ok("console") {
        return console::console_pages(1000, 10_000, console_requests).await;
    }
    let writers = 64;
    // `CUSTODY_BENCH_APPENDS_PER_WRITER` sets section 1's size directly
    // (small, for a run under `valgrind --tool=callgrind`).
    let appends_per_writer = std::env::var("CUSTODY_BENCH_APPENDS_PER_WRITER")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(150 * scale);
    if std::env::var("CUSTODY_BENCH_ONLY").as_deref() == Ok("appends") {
        durable_appends(writers, appends_per_writer, 3).await?;
        return Ok(());
    }
    println!(
        "custody benchmarks (scale {scale}; {} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!();

    // 0. Evidence upload of a large file beside sha256sum of the same file,
    //    first, so the process's peak memory is the upload's.
    evidence_upload(1024 * 1024 * 1024 * scale).await?;
    println!();

    // 1. Store API with concurrent writers, alternating with the baseline in
    //    several rounds so both see the same machine; the median ratio is reported.
    let rounds = 3;
    let (directory, store, store_rate) =
        durable_appends(writers, appends_per_writer, rounds).await?;

    // 2. The Merkle log's cost: the same workload with the log on and off,
    //    alternating.
    let mut log_ratios = Vec::new();
    let on_directory = tempfile::tempdir()?;
    let off_directory = tempfile::tempdir()?;
    let on_store = Store::open(on_directory.path()).await?;
    let off_store = Store::open_with(
        off_directory.path(),
        StoreOptions {
            merkle_log: false,
            ..StoreOptions::default()
        },
    )
    .await?;
    let on_cases = open_cases(&on_store, writers).await?;
    let off_cases = open_cases(&off_store, writers).await?;
    let (mut on_rates, mut off_rates) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let off = append_through_store(&off_store, &off_cases, appends_per_writer, round).await?;
        let on = append_through_store(&on_store, &on_cases, appends_per_writer, round).await?;
        log_ratios.push(on.per_second() / off.per_second());
        on_rates.push(on.per_second());
        off_rates.push(off.per_second());
    }
    println!("durable appends with the Merkle log on and off, {writers} concurrent writers, {rounds} rounds (medians)");
    println!(
        "  log on:             {:>10.0} appends/s",
        median(&mut on_rates)
    );
    println!(
        "  log off:            {:>10.0} appends/s",
        median(&mut off_rates)
    );
    println!(
        "  ratio on/off:       {:>10.2}   (per round: {}; goal at least 0.8)",
        median(&mut log_ratios.clone()),
        log_ratios
            .iter()
            .map(|ratio| format!("{ratio:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    drop(off_store);

    // 2b. The outbox's cost: requests that each owe a notification, with the
    //     outbox on (a route for approvers) and off (no route), alternating.
    outbox_cost(writers, appends_per_writer / 3, rounds).await?;
    println!();

    // 2c. Deliveries to a local webhook receiver beside plain POSTs to it.
    deliveries(usize::try_from(2000 * scale)?).await?;
    println!();

    // 2d. Inbound connector webhooks beside the same writes through the API.
    connectors::connector_inbound(16, connector_per_client, 5).await?;
    println!();

    // 2e. A full drill beside as many plain cases through the API.
    drill::drill_bench().await?;
    println!();

    // 2f. The console's pages beside the API's reads of the same data.
    console::console_pages(1000, 10_000, console_requests).await?;
    println!();

    // 3. Full verify throughput beside sha256sum over the same bytes.
    verify_throughput(directory.path()).await?;
    println!();

    // 4. HTTP with concurrent clients.
    let clients = 32;
    let requests_per_client = 100 * scale;
    let mut http_run =
        append_through_http(directory.path(), store, clients, requests_per_client).await?;
    let http_rate = http_run.per_second();
    println!("durable appends over HTTP, {clients} concurrent clients");
    println!(
        "  HTTP API:           {:>10.0} appends/s   p50 {:>7.2} ms  p99 {:>7.2} ms",
        http_rate,
        http_run.percentile(0.50).as_secs_f64() * 1e3,
        http_run.percentile(0.99).as_secs_f64() * 1e3
    );
    println!("  ratio HTTP/store:   {:>10.2}", http_rate / store_rate);
    println!();

    // 5. Proof generation from the stored tree at large sizes.
    let sizes: Vec<u64> = match std::env::var("CUSTODY_BENCH_PROOF_SIZES") {
        Ok(text) => text
            .split(',')
            .filter_map(|size| size.trim().parse().ok())
            .collect(),
        Err(_) => vec![1_000_000, 10_000_000],
    };
    proof_generation(&sizes).await?;
    println!();

    export_throughput(&export_sizes).await?;
    println!();

    cloudtrail::cloudtrail_ingest(cloudtrail_records).await?;
    println!();

    report::report_bench(report_events).await?;
    println!();

    postgres::postgres_appends(100 * scale).await?;
    println!();
    http_load::http_writes().await?;
    println!();
    scale::scale_bench().await?;
    Ok(())
}

/// Section 1: durable appends through the store API with `writers`
/// concurrent writers, alternating with raw SQLite inserts of rows of the
/// same size, same durability and batching, in `rounds` rounds; returns the
/// store (and its directory) for the later sections, and the median rate.
async fn durable_appends(
    writers: usize,
    appends_per_writer: u64,
    rounds: usize,
) -> Result<(tempfile::TempDir, Store, f64)> {
    let directory = tempfile::tempdir()?;
    let store = Store::open(directory.path()).await?;
    let cases = open_cases(&store, writers).await?;
    let baseline_directory = tempfile::tempdir()?;
    let mut baseline_connection = baseline_database(baseline_directory.path()).await?;
    let mut ratios = Vec::new();
    let mut store_rates = Vec::new();
    let mut baseline_rates = Vec::new();
    let mut store_latencies = Vec::new();
    let mut rows_per_commit = 1.0;
    let mut average_row_bytes = 0;
    let mut baseline_rows = 0;
    for round in 0..rounds {
        let before = store.commit_counters();
        let store_run = append_through_store(&store, &cases, appends_per_writer, round).await?;
        let after = store.commit_counters();
        let commits = after.commits - before.commits;
        rows_per_commit = ((after.events - before.events) as f64 / commits.max(1) as f64).max(1.0);
        average_row_bytes = average_event_bytes(directory.path()).await?;
        // Baseline: raw inserts of rows of the same size, same pragmas and
        // durability, in transactions of the same average size.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a ratio of counts, at least 1"
        )]
        let rows_per_transaction = rows_per_commit.round() as u64;
        let baseline = raw_sqlite_inserts(
            &mut baseline_connection,
            baseline_rows,
            store_run.operations,
            rows_per_transaction,
            average_row_bytes,
        )
        .await?;
        baseline_rows += baseline.operations;
        ratios.push(store_run.per_second() / baseline.per_second());
        store_rates.push(store_run.per_second());
        baseline_rates.push(baseline.per_second());
        store_latencies.extend(store_run.latencies);
    }
    let mut store_run = Measurement {
        operations: 0,
        elapsed: Duration::ZERO,
        latencies: store_latencies,
    };
    let store_rate = median(&mut store_rates);
    println!("durable appends, store API, {writers} concurrent writers, {rounds} rounds (medians)");
    println!(
        "  store API:          {:>10.0} appends/s   p50 {:>7.2} ms  p99 {:>7.2} ms",
        store_rate,
        store_run.percentile(0.50).as_secs_f64() * 1e3,
        store_run.percentile(0.99).as_secs_f64() * 1e3
    );
    println!(
        "  raw SQLite inserts: {:>10.0} rows/s      (rows of {} bytes, {:.1} rows per transaction, WAL + synchronous=FULL)",
        median(&mut baseline_rates),
        average_row_bytes,
        rows_per_commit
    );
    println!(
        "  ratio store/raw:    {:>10.2}   (per round: {}; aim 0.5 now, goal 0.8)",
        median(&mut ratios.clone()),
        ratios
            .iter()
            .map(|ratio| format!("{ratio:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  group commit:       {:>10.1} writes per transaction",
        rows_per_commit
    );
    println!();
    Ok((directory, store, store_rate))
}

/// Audits a store and hashes the same event bytes with `sha256sum`; the
/// ratio says how close verification runs to the hashing limit.
async fn verify_throughput(directory: &std::path::Path) -> Result<()> {
    let store = custody_store::ReadOnlyStore::open(directory).await?;
    let mut verify_rates = Vec::new();
    let mut report = None;
    for _ in 0..3 {
        let started = Instant::now();
        let audited = store.audit(Vec::new(), None).await?;
        verify_rates.push(audited.checked.events as f64 / started.elapsed().as_secs_f64());
        report = Some(audited);
    }
    let report = report.context("no audit ran")?;
    anyhow::ensure!(
        report.ok,
        "the benchmark store does not verify: {:?}",
        report.findings.first()
    );
    // The same bytes, concatenated, through sha256sum.
    let mut connection = SqliteConnectOptions::new()
        .filename(directory.join(custody_store::DATABASE_FILE))
        .read_only(true)
        .connect()
        .await?;
    let rows = sqlx::query("SELECT bytes FROM events ORDER BY log_index")
        .fetch_all(&mut connection)
        .await?;
    let mut all = Vec::new();
    for row in &rows {
        let bytes: Vec<u8> = row.try_get("bytes")?;
        all.extend_from_slice(&bytes);
    }
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), &all)?;
    let mut sha_rates = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let status = std::process::Command::new("sha256sum")
            .arg(file.path())
            .stdout(std::process::Stdio::null())
            .status()
            .context("running sha256sum")?;
        anyhow::ensure!(status.success(), "sha256sum failed");
        sha_rates.push(rows.len() as f64 / started.elapsed().as_secs_f64());
    }
    let verify_rate = median(&mut verify_rates);
    let sha_rate = median(&mut sha_rates);
    println!(
        "full verify (re-hash, chains, rules, Merkle tree) of {} events, {:.1} MB",
        rows.len(),
        all.len() as f64 / 1e6
    );
    println!("  custody verify:     {:>10.0} events/s", verify_rate);
    println!(
        "  sha256sum:          {:>10.0} events/s (same bytes, including process start)",
        sha_rate
    );
    println!(
        "  ratio verify/sha:   {:>10.2}   (aim 0.3 now, goal 0.5)",
        verify_rate / sha_rate
    );
    Ok(())
}

/// Builds the stored node table of a log of `size` leaves directly (the
/// event rows are not needed to prove), then times inclusion and
/// consistency proofs read from it.
async fn proof_generation(sizes: &[u64]) -> Result<()> {
    for &size in sizes {
        let directory = tempfile::tempdir()?;
        drop(Store::open(directory.path()).await?);
        let mut connection = SqliteConnectOptions::new()
            .filename(directory.path().join(custody_store::DATABASE_FILE))
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Off)
            .connect()
            .await?;
        let build_started = Instant::now();
        let mut frontier_tree = custody_log::MemoryTree::new();
        let mut rows: Vec<(u8, u64, [u8; 32])> = Vec::with_capacity(1 << 16);
        sqlx::raw_sql("BEGIN").execute(&mut connection).await?;
        for leaf in 0..size {
            for node in frontier_tree.append_data(&leaf.to_be_bytes()) {
                rows.push((node.id.level, node.id.index, node.hash));
            }
            if rows.len() >= 8192 || leaf + 1 == size {
                for chunk in rows.chunks(256) {
                    let mut insert: sqlx::QueryBuilder<sqlx::Sqlite> =
                        sqlx::QueryBuilder::new("INSERT INTO log_nodes (level, idx, hash) ");
                    insert.push_values(chunk, |mut row, (level, index, hash)| {
                        row.push_bind(i64::from(*level))
                            .push_bind(index.cast_signed())
                            .push_bind(hash.to_vec());
                    });
                    insert.build().execute(&mut connection).await?;
                }
                rows.clear();
            }
        }
        sqlx::raw_sql("COMMIT").execute(&mut connection).await?;
        let build_time = build_started.elapsed();
        let expected_root = frontier_tree.root();
        drop(frontier_tree);

        let samples = 2000u64;
        let mut inclusion = Measurement {
            operations: samples,
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
        };
        let mut consistency = Measurement {
            operations: samples,
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
        };
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            // xorshift: deterministic, dependency-free sampling.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let root = custody_store::log::tree_root(&mut connection, size).await?;
        anyhow::ensure!(root == expected_root, "the stored tree's root is wrong");
        for _ in 0..samples {
            let index = next() % size;
            let started = Instant::now();
            let proof = custody_store::log::inclusion_proof(&mut connection, index, size).await?;
            inclusion.latencies.push(started.elapsed());
            custody_log::verify_inclusion(
                &custody_log::leaf_hash(&index.to_be_bytes()),
                index,
                size,
                &proof,
                &root,
            )?;
            let old = 1 + next() % (size - 1);
            let started = Instant::now();
            let proof = custody_store::log::consistency_proof(&mut connection, old, size).await?;
            consistency.latencies.push(started.elapsed());
            std::hint::black_box(proof);
        }
        println!(
            "proof generation from the stored tree at {size} entries (tree built in {:.1} s; {samples} random proofs each, all verified)",
            build_time.as_secs_f64()
        );
        println!(
            "  inclusion:          p50 {:>7.3} ms  p99 {:>7.3} ms",
            inclusion.percentile(0.50).as_secs_f64() * 1e3,
            inclusion.percentile(0.99).as_secs_f64() * 1e3
        );
        println!(
            "  consistency:        p50 {:>7.3} ms  p99 {:>7.3} ms",
            consistency.percentile(0.50).as_secs_f64() * 1e3,
            consistency.percentile(0.99).as_secs_f64() * 1e3
        );
    }
    Ok(())
}

fn actor(name: &str) -> Result<Actor> {
    Ok(Actor {
        principal: PrincipalId::from_str(name)?,
        kind: PrincipalKind::Human,
        org: None,
        groups: Vec::new(),
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Api,
        auth: AuthContext::Token {
            token_id: format!("tok_{name}"),
        },
    })
}

async fn open_cases(store: &Store, writers: usize) -> Result<Vec<CaseId>> {
    let mut cases = Vec::new();
    for writer in 0..writers {
        let name = format!("writer{writer}");
        cases.push(open_case(store, &actor(&name)?, &name).await?);
    }
    Ok(cases)
}

/// Opens one case requested by `actor` for the user `name` (a grant of
/// `admin`), the case a bench writer then appends to.
async fn open_case(store: &Store, actor: &Actor, name: &str) -> Result<CaseId> {
    let outcome = store
        .write(CaseWrite {
            actor: actor.clone(),
            idempotency_key: format!("open-{name}"),
            command: Opening::Request {
                drill: false,
                change: Change::new(
                    Subject {
                        kind: SubjectKind::User,
                        id: name.to_string(),
                    },
                    ChangeKind::Grant,
                    "admin".into(),
                    Some("bench".into()),
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
        .await?;
    Ok(outcome.case_id)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn append_through_store(
    store: &Store,
    cases: &[CaseId],
    per_writer: u64,
    round: usize,
) -> Result<Measurement> {
    let started = Instant::now();
    let per_writer_capacity = usize::try_from(per_writer)?;
    let mut tasks = Vec::new();
    for (writer, case_id) in cases.iter().enumerate() {
        let store = store.clone();
        let case_id = case_id.clone();
        let actor = actor(&format!("writer{writer}"))?;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_writer_capacity);
            for index in 0..per_writer {
                let begun = Instant::now();
                store
                    .write(CaseWrite {
                        actor: actor.clone(),
                        idempotency_key: format!("comment-{round}-{index}"),
                        command: CaseStep::Comment {
                            case_id: case_id.clone(),
                            text: format!("benchmark note {index:08}"),
                        }
                        .into(),
                        occurred_at: None,
                        connector: None,
                    })
                    .await?;
                latencies.push(begun.elapsed());
            }
            Ok::<_, custody_store::StoreError>(latencies)
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

async fn average_event_bytes(directory: &std::path::Path) -> Result<usize> {
    let mut connection = SqliteConnectOptions::new()
        .filename(directory.join(custody_store::DATABASE_FILE))
        .read_only(true)
        .connect()
        .await?;
    let row = sqlx::query("SELECT CAST(AVG(LENGTH(bytes)) AS INTEGER) AS average FROM events")
        .fetch_one(&mut connection)
        .await?;
    let average: i64 = row.try_get("average")?;
    Ok(usize::try_from(average)?)
}

async fn baseline_database(directory: &std::path::Path) -> Result<sqlx::SqliteConnection> {
    let mut connection = SqliteConnectOptions::new()
        .filename(directory.join("baseline.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE events (log_index INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, case_id TEXT NOT NULL,
         seq INTEGER NOT NULL, kind TEXT NOT NULL, recorded_at TEXT NOT NULL, bytes BLOB NOT NULL, UNIQUE (case_id, seq)) STRICT",
    )
    .execute(&mut connection)
    .await?;
    Ok(connection)
}

/// Inserts `rows` rows after the `first` already written, one INSERT per row,
/// `rows_per_transaction` rows per durable commit.
async fn raw_sqlite_inserts(
    connection: &mut sqlx::SqliteConnection,
    first: u64,
    rows: u64,
    rows_per_transaction: u64,
    row_bytes: usize,
) -> Result<Measurement> {
    let payload = vec![b'x'; row_bytes];
    let started = Instant::now();
    let mut written = 0u64;
    while written < rows {
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut *connection)
            .await?;
        let batch = rows_per_transaction.min(rows - written);
        for _ in 0..batch {
            let row = first + written;
            sqlx::query(
                "INSERT INTO events (log_index, event_id, case_id, seq, kind, recorded_at, bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(i64::try_from(row)?)
            .bind(format!("EV-{row:032}"))
            .bind(format!("AC-{:032}", row % 64))
            .bind(i64::try_from(row / 64)?)
            .bind("comment_added")
            .bind("2026-11-29T00:00:00.000000Z")
            .bind(&payload)
            .execute(&mut *connection)
            .await?;
            written += 1;
        }
        sqlx::raw_sql("COMMIT").execute(&mut *connection).await?;
    }
    Ok(Measurement {
        operations: rows,
        elapsed: started.elapsed(),
        latencies: Vec::new(),
    })
}

async fn append_through_http(
    directory: &std::path::Path,
    store: Store,
    clients: usize,
    per_client: u64,
) -> Result<Measurement> {
    drop(store);
    // A fresh principal and token for each client, through the same store the
    // server uses, so every request is authenticated for real.
    let data_dir = directory.join("http");
    let (store, report) = custody_server::init::initialise(
        &data_dir,
        &custody_store::Location::Embedded(data_dir.clone()),
        None,
    )
    .await
    .context("initialising the HTTP benchmark's data directory")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = custody_server::ServeOptions {
        checkpoint_interval: Duration::from_secs(5),
        scan_interval: Duration::from_secs(10),
        ..bench_options(&data_dir)?
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
    let mut tokens = Vec::new();
    for client in 0..clients {
        let name = format!("client{client}");
        http.post(format!("{base}/v1/principals"))
            .bearer_auth(&report.admin_token)
            .json(&serde_json::json!({"name": name}))
            .send()
            .await?
            .error_for_status()?;
        let issued: serde_json::Value = http
            .post(format!("{base}/v1/principals/{name}/tokens"))
            .bearer_auth(&report.admin_token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = issued["token"].as_str().context("token")?.to_string();
        let opened: serde_json::Value = http
            .post(format!("{base}/v1/cases"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"subject": {"kind": "user", "id": name}, "entitlement": "admin"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let case_id = opened["case_id"].as_str().context("case_id")?.to_string();
        tokens.push((token, case_id));
    }
    let started = Instant::now();
    let per_client_capacity = usize::try_from(per_client)?;
    let mut tasks = Vec::new();
    for (token, case_id) in tokens {
        let http = http.clone();
        let url = format!("{base}/v1/cases/{case_id}/comments");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client_capacity);
            for index in 0..per_client {
                let begun = Instant::now();
                http.post(&url)
                    .bearer_auth(&token)
                    .header("idempotency-key", format!("comment-{index}"))
                    .json(&serde_json::json!({"text": format!("benchmark note {index:08}")}))
                    .send()
                    .await?
                    .error_for_status()?;
                latencies.push(begun.elapsed());
            }
            Ok::<_, reqwest::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    let _ = server.await;
    Ok(Measurement {
        operations: latencies.len() as u64,
        elapsed,
        latencies,
    })
}

/// Requests per second (each owing one notification) with the outbox on and off.
async fn outbox_cost(writers: usize, per_writer: u64, rounds: usize) -> Result<()> {
    let on_directory = tempfile::tempdir()?;
    let off_directory = tempfile::tempdir()?;
    let on_store = Store::open(on_directory.path()).await?;
    let off_store = Store::open(off_directory.path()).await?;
    let mut routing = custody_core::notice::Routing::default();
    routing.routes.insert(
        custody_core::notice::Audience::Approvers,
        vec![custody_core::notice::Route {
            channel: "hooks".to_string(),
            recipient: None,
        }],
    );
    on_store.set_notification_routing(routing);
    let (mut on_rates, mut off_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let off = requests_through_store(&off_store, writers, per_writer, round).await?;
        let on = requests_through_store(&on_store, writers, per_writer, round).await?;
        ratios.push(on.per_second() / off.per_second());
        on_rates.push(on.per_second());
        off_rates.push(off.per_second());
    }
    let queued = on_store.outbox_backlog().await?.0;
    anyhow::ensure!(
        queued == (writers as u64) * per_writer * rounds as u64,
        "the outbox holds {queued} notifications, not one per request"
    );
    println!("durable requests owing a notification, outbox on and off, {writers} concurrent writers, {rounds} rounds (medians)");
    println!(
        "  outbox on:          {:>10.0} requests/s",
        median(&mut on_rates)
    );
    println!(
        "  outbox off:         {:>10.0} requests/s",
        median(&mut off_rates)
    );
    println!(
        "  ratio on/off:       {:>10.2}   (per round: {}; goal at least 0.8)",
        median(&mut ratios.clone()),
        ratios
            .iter()
            .map(|ratio| format!("{ratio:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

async fn requests_through_store(
    store: &Store,
    writers: usize,
    per_writer: u64,
    round: usize,
) -> Result<Measurement> {
    let started = Instant::now();
    let per_writer_capacity = usize::try_from(per_writer)?;
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = store.clone();
        let actor = actor(&format!("writer{writer}"))?;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_writer_capacity);
            for index in 0..per_writer {
                let begun = Instant::now();
                store
                    .write(CaseWrite {
                        actor: actor.clone(),
                        idempotency_key: format!("request-{round}-{index}"),
                        command: Opening::Request {
                            drill: false,
                            change: Change::new(
                                Subject {
                                    kind: SubjectKind::User,
                                    id: format!("u{writer}-{round}-{index}"),
                                },
                                ChangeKind::Grant,
                                "reader".into(),
                                None,
                                None,
                            )
                            .expect("a valid change"),
                            justification: Some("benchmark".into()),
                            ticket: None,
                            rule: custody_core::policy::AppliedRule::brief_default(),
                        }
                        .into(),
                        occurred_at: None,
                        connector: None,
                    })
                    .await?;
                latencies.push(begun.elapsed());
            }
            Ok::<_, custody_store::StoreError>(latencies)
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

/// A local webhook receiver that counts what it accepts.
async fn counting_receiver() -> Result<(String, std::sync::Arc<std::sync::atomic::AtomicUsize>)> {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let counter = count.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, count))
}

/// Deliveries per second through the outbox (claim, signed POST, recorded
/// attempt) beside plain POSTs of same-sized bodies to the same receiver
/// with the same concurrency.
async fn deliveries(count: usize) -> Result<()> {
    let concurrency = 32;
    let (url, received) = counting_receiver().await?;
    let directory = tempfile::tempdir()?;
    let data_dir = directory.path().join("deliveries");
    let (store, _) = custody_server::init::initialise(
        &data_dir,
        &custody_store::Location::Embedded(data_dir.clone()),
        None,
    )
    .await?;
    let notify: custody_server::delivery::NotifyConfig = toml::from_str(&format!(
        "poll_interval_ms = 10\nconcurrency = {concurrency}\nlease_seconds = 30\n\n[[channels]]\ntype = \"webhook\"\nname = \"hooks\"\nurl = \"{url}\"\nsecret = \"bench secret\"\n\n[routes]\napprovers = [\"hooks\"]\n"
    ))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = custody_server::ServeOptions {
        notify,
        ..bench_options(&data_dir)?
    };
    let server = tokio::spawn(custody_server::serve_listener(
        store.clone(),
        listener,
        options,
        async move {
            let _ = stopped.await;
        },
    ));
    // Wait until the server has installed the routing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let writers = 16;
    let per_writer = count / writers;
    let total = per_writer * writers;
    requests_through_store(&store, writers, per_writer as u64, 0).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while store.outbox_backlog().await?.0 > 0 {
        anyhow::ensure!(Instant::now() < deadline, "deliveries did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let outbox_elapsed = started.elapsed();
    let delivered = received.load(std::sync::atomic::Ordering::Relaxed);
    anyhow::ensure!(
        delivered >= total,
        "the receiver got {delivered} of {total} notifications"
    );
    let _ = stop.send(());
    let _ = server.await;

    // Baseline: the same number of POSTs of the same size, same concurrency.
    let body = vec![b'x'; 1200];
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let http = http.clone();
        let url = url.clone();
        let body = body.clone();
        let share = total / concurrency;
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                http.post(&url)
                    .body(body.clone())
                    .send()
                    .await?
                    .error_for_status()?;
            }
            Ok::<_, reqwest::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let direct_elapsed = started.elapsed();
    let outbox_rate = total as f64 / outbox_elapsed.as_secs_f64();
    let direct_rate = (total / concurrency * concurrency) as f64 / direct_elapsed.as_secs_f64();
    println!(
        "webhook deliveries to a local receiver, {total} notifications, {concurrency} in flight"
    );
    println!(
        "  through the outbox: {:>10.0} deliveries/s (queued, claimed, signed, posted, attempt recorded)",
        outbox_rate
    );
    println!("  plain POSTs:        {:>10.0} requests/s", direct_rate);
    println!("  ratio outbox/POST:  {:>10.2}", outbox_rate / direct_rate);
    Ok(())
}

fn status_kib(field: &str) -> u64 {
    process_status_kib("self", field)
}

/// A field of `/proc/PROCESS/status` in KiB (0 when unreadable, as for a
/// process gone).
fn process_status_kib(process: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{process}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// Streams a file of `size` bytes to the evidence upload API of an
/// in-process server, beside `sha256sum` of the same file; prints the peak
/// memory the process reached during the upload above its idle size.
async fn evidence_upload(size: u64) -> Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let directory = tempfile::tempdir()?;
    let file = directory.path().join("evidence.bin");
    {
        let mut out = tokio::fs::File::create(&file).await?;
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut block = vec![0u8; 1024 * 1024];
        for _ in 0..size / block.len() as u64 {
            for chunk in block.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
            }
            out.write_all(&block).await?;
        }
        out.sync_all().await?;
    }
    // Baseline: sha256sum of the same bytes (page cache warm for both).
    let started = Instant::now();
    let output = tokio::process::Command::new("sha256sum")
        .arg(&file)
        .output()
        .await?;
    let sha256sum_elapsed = started.elapsed();
    anyhow::ensure!(output.status.success(), "sha256sum failed");
    let expected = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();

    let data_dir = directory.path().join("server");
    let (store, report) = custody_server::init::initialise(
        &data_dir,
        &custody_store::Location::Embedded(data_dir.clone()),
        None,
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let evidence = custody_server::api::evidence::EvidenceConfig {
        max_upload_bytes: size + 1,
        ..Default::default()
    };
    let options = custody_server::ServeOptions {
        evidence: custody_server::api::evidence::EvidenceState::new(
            std::sync::Arc::new(custody_evidence::LocalBlobStore::new(
                data_dir.join("evidence"),
            )),
            evidence,
        ),
        ..bench_options(&data_dir)?
    };
    let server = tokio::spawn(custody_server::serve_listener(
        store,
        listener,
        options,
        async move {
            let _ = stopped.await;
        },
    ));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let base = format!("http://{address}");
    let opened: serde_json::Value = http
        .post(format!("{base}/v1/cases"))
        .bearer_auth(&report.admin_token)
        .json(&serde_json::json!({"subject": {"kind": "user", "id": "bench"}, "entitlement": "evidence"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let case_id = opened["case_id"].as_str().context("case_id")?.to_string();
    // Idle size, then the peak (VmHWM, reset first) while uploading.
    let idle_kib = status_kib("VmRSS:");
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let started = Instant::now();
    let body = tokio::fs::File::open(&file).await?;
    let outcome: serde_json::Value = http
        .post(format!(
            "{base}/v1/cases/{case_id}/evidence?name=evidence.bin"
        ))
        .bearer_auth(&report.admin_token)
        .header("idempotency-key", "bench-upload")
        .header(reqwest::header::CONTENT_LENGTH, size)
        .body(reqwest::Body::wrap_stream(
            tokio_util::io::ReaderStream::new(body),
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let upload_elapsed = started.elapsed();
    let peak_kib = status_kib("VmHWM:");
    anyhow::ensure!(
        outcome["appended"][0]["kind"] == "evidence_attached",
        "the upload was not recorded: {outcome}"
    );
    let _ = stop.send(());
    let _ = server.await;
    let stored = data_dir
        .join("evidence")
        .join("sha256")
        .join(&expected[..2])
        .join(&expected);
    anyhow::ensure!(
        stored.is_file(),
        "the blob is not stored under the sha256sum digest"
    );

    let mib = size as f64 / (1024.0 * 1024.0);
    let upload_rate = mib / upload_elapsed.as_secs_f64();
    let sha_rate = mib / sha256sum_elapsed.as_secs_f64();
    println!("evidence upload of {mib:.0} MiB over HTTP (streamed, hashed, fsynced, recorded)");
    println!("  upload:             {:>10.0} MiB/s", upload_rate);
    println!("  sha256sum:          {:>10.0} MiB/s", sha_rate);
    println!("  ratio upload/sha256sum: {:>6.2}", upload_rate / sha_rate);
    println!(
        "  peak memory above idle: {:>6.1} MiB (process, server and client; goal under 64 MiB)",
        peak_kib.saturating_sub(idle_kib) as f64 / 1024.0
    );
    Ok(())
}

/// The argument that makes this binary the export child of
/// [`export_throughput`]: `custody-bench export-child DIR FORMAT OUT`.
const EXPORT_CHILD: &str = "export-child";

/// Runs one export in this process (the child of [`export_throughput`]) and
/// prints `events bytes seconds peak_kib` on standard output: the peak
/// resident size (VmHWM) is then the export's alone.
fn export_child(arguments: &[String]) -> Result<()> {
    let [directory, format, out] = arguments else {
        anyhow::bail!("usage: custody-bench {EXPORT_CHILD} DIR FORMAT OUT");
    };
    let format: custody_export::Format = format.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        use std::io::Write as _;
        let store = custody_store::ReadOnlyStore::open(std::path::Path::new(directory)).await?;
        let started = Instant::now();
        let mut exporter = custody_server::exporter::Exporter::start(
            store,
            custody_export::Encoder::new(format, "bench"),
            None,
            custody_export::Cursor(0),
            None,
        )
        .await?;
        let mut file = std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(out)?);
        let mut buffer = Vec::with_capacity(1 << 20);
        let mut bytes = 0;
        while !exporter.is_done() {
            exporter.next_page(4096, &mut buffer).await?;
            file.write_all(&buffer)?;
            bytes += buffer.len();
            buffer.clear();
        }
        file.flush()?;
        drop(file);
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{} {bytes} {elapsed} {}",
            exporter.exported(),
            status_kib("VmHWM:")
        );
        Ok(())
    })
}

/// Appends `count` comments spread over `cases` through the store API.
async fn fill(store: &Store, cases: &[CaseId], count: u64, round: usize) -> Result<()> {
    let writers = u64::try_from(cases.len())?;
    append_through_store(store, cases, count.div_ceil(writers), round).await?;
    Ok(())
}

/// Export throughput of every line format at the log sizes given (default
/// 250k and 1M events), each in a child process, beside `cat` of the very
/// bytes it wrote; and the child's peak memory, which must stay flat.
async fn export_throughput(sizes: &[u64]) -> Result<()> {
    let directory = tempfile::tempdir()?;
    let data = directory.path().join("ledger");
    let store = Store::open_with(
        &data,
        StoreOptions {
            // The export reads the events alone; the log only slows the build.
            merkle_log: false,
            ..StoreOptions::default()
        },
    )
    .await?;
    let cases = open_cases(&store, 256).await?;
    let mut size = store.log_size().await?;
    let itself = std::env::current_exe()?;
    let out = directory.path().join("export.out");
    println!("export throughput, every line format, beside `cat` of the same bytes (a child process per export)");
    for (round, &target) in sizes.iter().enumerate() {
        if target > size {
            let started = Instant::now();
            fill(&store, &cases, target - size, round + 100).await?;
            size = store.log_size().await?;
            println!(
                "  log of {size} events (built in {:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
        for format in custody_export::Format::ALL {
            let fields = child_figures(
                std::process::Command::new(&itself)
                    .arg(EXPORT_CHILD)
                    .arg(&data)
                    .arg(format.name())
                    .arg(&out),
                "the export child",
            )?;
            let [events, bytes, seconds, peak_kib] = fields[..] else {
                anyhow::bail!("the export child printed {fields:?}");
            };
            let started = Instant::now();
            let status = std::process::Command::new("cat")
                .arg(&out)
                .stdout(std::process::Stdio::null())
                .status()
                .context("running cat")?;
            anyhow::ensure!(status.success(), "cat failed");
            let cat_seconds = started.elapsed().as_secs_f64();
            let mb = bytes / 1e6;
            println!(
                "  {:<12} {:>8.0} events/s  {:>7.1} MB/s  cat {:>8.1} MB/s  ratio {:>5.3}  peak {:>6.1} MiB  ({events:.0} events, {mb:.0} MB)",
                format.name(),
                events / seconds,
                mb / seconds,
                mb / cat_seconds,
                cat_seconds / seconds,
                peak_kib / 1024.0,
            );
        }
    }
    Ok(())
}

/// Runs a child process of the benchmark and reads the figures it prints
/// (numbers separated by white space); `what` names it in errors.
pub(crate) fn child_figures(command: &mut std::process::Command, what: &str) -> Result<Vec<f64>> {
    let output = command
        .output()
        .with_context(|| format!("running {what}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{what} printed {text:?}"))
}

/// What every benchmark's server runs with unless it says otherwise: the
/// data directory's signing key and evidence store, the built-in policy, no
/// notification channels, sinks or connectors, checkpoints and obligation
/// scans once a minute (out of the measured path), the system clock.
pub(crate) fn bench_options(data_dir: &std::path::Path) -> Result<custody_server::ServeOptions> {
    Ok(custody_server::ServeOptions {
        // The benchmarks measure the write path: no monitor scans.
        monitor: custody_server::monitor::MonitorOptions {
            interval_seconds: 0,
            poll: Duration::from_secs(1),
            trusted_keys: Vec::new(),
            checkpoint_interval_seconds: 60,
            idle_after_entries: 0,
        },
        max_body_bytes: 1024 * 1024,
        checkpoint_interval: Duration::from_secs(60),
        checkpoint_copies: custody_server::checkpoint_copies::CheckpointCopies::none(),
        log: custody_server::keys::LogSigner::load(data_dir)?,
        policy: custody_core::policy::Policy::default(),
        policy_source: "built-in default".to_string(),
        scan_interval: Duration::from_secs(60),
        notify: custody_server::delivery::NotifyConfig::default(),
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
