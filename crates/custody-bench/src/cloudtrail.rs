//! CloudTrail ingest: a generated trail ([`crate::trail`]) of `records`
//! records, in gzipped log files of 1000, ingested file after file through
//! a real server (`POST /v1/ingest/aws`: gunzipped, parsed, correlated,
//! recorded), beside `serde_json` parsing alone of the same files (gunzip
//! included) and beside plain appends through the store API, with the
//! process's peak memory at 250k records and at the end (it must stay
//! flat). `CUSTODY_BENCH_ONLY=cloudtrail` runs only this;
//! `CUSTODY_BENCH_CLOUDTRAIL_RECORDS` sets the size (default 1000000).

use std::io::Read as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::trail::{self, SanctionedCase};
use crate::{median, status_kib};

/// Records per log file.
const PER_FILE: usize = 1000;

/// The benchmark.
pub async fn cloudtrail_ingest(records: u64) -> Result<()> {
    let directory = tempfile::tempdir()?;
    let data_dir = directory.path().join("cloudtrail");
    let (store, report) = custody_server::init::initialise(
        &data_dir,
        &custody_store::Location::Embedded(data_dir.clone()),
        None,
    )
    .await
    .context("initialising the CloudTrail benchmark's data directory")?;
    let aws: custody_connect::config::ConnectorConfig = toml::from_str(
        "name = \"aws\"\nkind = \"cloudtrail\"\nsecret = \"bench-eventbridge-api-key-0001\"\n",
    )?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = custody_server::ServeOptions {
        connectors: vec![aws],
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
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let base = format!("http://{address}");
    let admin = report.admin_token;

    // The cases the sanctioned records belong to: one per 40 records.
    let case_count = usize::try_from((records / 40).max(1))?;
    let started = Instant::now();
    let cases = open_cases(&http, &base, &admin, case_count).await?;
    println!(
        "cloudtrail ingest: {case_count} approved cases opened in {:.1} s (setup)",
        started.elapsed().as_secs_f64()
    );

    let files_directory = directory.path().join("trail");
    std::fs::create_dir_all(&files_directory)?;
    let started = Instant::now();
    let generated = trail::generate(
        &files_directory,
        &cases,
        records,
        PER_FILE,
        custody_core::Timestamp::now().plus_seconds(60),
        0x5eed,
    )?;
    println!(
        "  generated {} records ({} access changes, {} duplicates, {} late) in {} files, {:.0} MB of JSON, in {:.1} s",
        generated.records,
        generated.access_changes,
        generated.duplicates,
        generated.late,
        generated.files.len(),
        generated.json_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    // Baseline: gunzip and serde_json into a Value, file after file.
    let mut parse_rates = Vec::new();
    let mut custody_parse_rates = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let mut count = 0u64;
        for file in &generated.files {
            let mut json = Vec::new();
            flate2::read::GzDecoder::new(std::fs::File::open(file)?).read_to_end(&mut json)?;
            let value: Value = serde_json::from_slice(&json)?;
            count += value["Records"]
                .as_array()
                .map_or(0, |records| records.len() as u64);
        }
        parse_rates.push(count as f64 / started.elapsed().as_secs_f64());
        // Custody's own parser alone (gunzip, parse, map), nothing recorded.
        let started = Instant::now();
        for file in &generated.files {
            let bytes = std::fs::read(file)?;
            let json = custody_connect::cloudtrail::gunzip_if_gzipped(&bytes, 256 << 20)
                .map_err(|refusal| anyhow::anyhow!("{refusal}"))?;
            std::hint::black_box(
                custody_connect::cloudtrail::parse_log_file(&json)
                    .map_err(|refusal| anyhow::anyhow!("{refusal}"))?,
            );
        }
        custody_parse_rates.push(count as f64 / started.elapsed().as_secs_f64());
    }

    // The ingest, file after file, as the S3 reader does.
    let idle_kib = status_kib("VmRSS:");
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let mut peaks = Vec::new();
    let mut totals = (0u64, 0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut sent = 0u64;
    let quarter = records / 4;
    for file in &generated.files {
        let bytes = std::fs::read(file)?;
        let summary: Value = http
            .post(format!("{base}/v1/ingest/aws"))
            .bearer_auth(&admin)
            .body(bytes)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let count = |field: &str| summary[field].as_u64().unwrap_or(0);
        anyhow::ensure!(
            summary["refused"].as_array().is_none_or(Vec::is_empty),
            "records were refused: {summary}"
        );
        totals.0 += count("observations");
        totals.1 += count("skipped");
        totals.2 += count("matched");
        totals.3 += count("unsanctioned");
        totals.4 += count("duplicates");
        let before = sent;
        sent += count("observations") + count("skipped");
        if before < quarter && sent >= quarter {
            peaks.push((sent, status_kib("VmHWM:"), started.elapsed()));
        }
    }
    let elapsed = started.elapsed();
    peaks.push((sent, status_kib("VmHWM:"), elapsed));
    let (observations, skipped, matched, unsanctioned, duplicates) = totals;
    let appended = matched + unsanctioned * 2;
    let ingest_rate = sent as f64 / elapsed.as_secs_f64();

    // Plain appends through the store API (comments, 64 concurrent
    // writers), for the ledger's own rate on this machine.
    let append_directory = tempfile::tempdir()?;
    let append_store = custody_store::Store::open(append_directory.path()).await?;
    let writers = crate::open_cases(&append_store, 64).await?;
    let mut append_rates = Vec::new();
    for round in 0..3 {
        let run = crate::append_through_store(&append_store, &writers, 500, round).await?;
        append_rates.push(run.per_second());
    }
    let append_rate = median(&mut append_rates);
    let parse_rate = median(&mut parse_rates);
    let custody_parse_rate = median(&mut custody_parse_rates);

    println!(
        "CloudTrail ingest of {sent} records in {} gzipped log files of {PER_FILE} (POST /v1/ingest, file after file: gunzipped, parsed, correlated, recorded)",
        generated.files.len()
    );
    println!(
        "  outcome:            {observations} access changes ({matched} matched, {unsanctioned} unsanctioned, {duplicates} duplicates), {skipped} skipped; {appended} events appended"
    );
    println!(
        "  ingest:             {:>10.0} records/s   {:>8.0} access changes/s   {:>8.0} events appended/s   ({:.1} s)",
        ingest_rate,
        observations as f64 / elapsed.as_secs_f64(),
        appended as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  serde_json alone:   {:>10.0} records/s   (gunzip + serde_json::Value of the same files)",
        parse_rate
    );
    println!(
        "  custody parser:     {:>10.0} records/s   (gunzip + parse + map, nothing recorded)",
        custody_parse_rate
    );
    println!(
        "  plain appends:      {:>10.0} appends/s   (comments through the store API, 64 writers)",
        append_rate
    );
    println!(
        "  ratio ingest/parse: {:>10.3}   ratio events appended/plain appends: {:.2}",
        ingest_rate / parse_rate,
        appended as f64 / elapsed.as_secs_f64() / append_rate
    );
    for (at, peak_kib, time) in &peaks {
        println!(
            "  peak memory at {:>8} records: {:>7.1} MiB above idle ({:.0} s in)",
            at,
            peak_kib.saturating_sub(idle_kib) as f64 / 1024.0,
            time.as_secs_f64()
        );
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
    Ok(())
}

/// Opens and approves `count` cases, one per role, 16 at a time.
async fn open_cases(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    count: usize,
) -> Result<Vec<SanctionedCase>> {
    let token_of = |name: &'static str| {
        let http = http.clone();
        let base = base.to_string();
        let admin = admin.to_string();
        async move {
            http.post(format!("{base}/v1/principals"))
                .bearer_auth(&admin)
                .json(&json!({"name": name}))
                .send()
                .await?
                .error_for_status()?;
            let issued: Value = http
                .post(format!("{base}/v1/principals/{name}/tokens"))
                .bearer_auth(&admin)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            anyhow::Ok(issued["token"].as_str().context("token")?.to_string())
        }
    };
    let requester = token_of("trail-requester").await?;
    let approver = token_of("trail-approver").await?;
    let mut cases = Vec::with_capacity(count);
    let mut pending = Vec::new();
    for index in 0..count {
        let http = http.clone();
        let base = base.to_string();
        let requester = requester.clone();
        let approver = approver.clone();
        pending.push(tokio::spawn(async move {
            let role = trail::role_of(index);
            let opened: Value = http
                .post(format!("{base}/v1/cases"))
                .bearer_auth(&requester)
                .json(&json!({
                    "subject": {"kind": "role", "id": role},
                    "entitlement": trail::APPROVED_POLICY,
                    "resource": format!("aws:{}", trail::ACCOUNT),
                }))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let case_id = opened["case_id"].as_str().context("case_id")?.to_string();
            http.post(format!("{base}/v1/cases/{case_id}/approvals"))
                .bearer_auth(&approver)
                .json(&json!({}))
                .send()
                .await?
                .error_for_status()?;
            anyhow::Ok(SanctionedCase { case_id, role })
        }));
        if pending.len() == 16 || index + 1 == count {
            for task in pending.drain(..) {
                cases.push(task.await??);
            }
        }
    }
    Ok(cases)
}
