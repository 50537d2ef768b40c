//! HTTP writes under load from outside the server: a real `custody serve`
//! (the release binary) on the embedded store and on PostgreSQL (a fresh
//! database, dropped after), loaded by `wrk` with a Lua script that posts
//! case requests (`POST /v1/cases`, each with its own idempotency key and
//! subject, with the admin's token), at several connection counts. Each
//! write run is followed by the baseline in the same run: `wrk` against the
//! same server's `/healthz` with the same connections and duration. The
//! figures: throughput, p50/p99/p999 latency (wrk's own histogram; p999
//! from the Lua `done()` callback), and the ratio writes/health
//! (`CUSTODY_BENCH_ONLY=http` runs only this;
//! `CUSTODY_BENCH_HTTP_SECONDS` sets each run's length, default 10;
//! `CUSTODY_BENCH_HTTP_CONNECTIONS` the connection counts, default
//! 16,64,256). wrk runs on the same 2 cores as the server.

use anyhow::Result;

use crate::served::{self, Served, WrkRun};

/// Seconds of each wrk run.
fn run_seconds() -> u64 {
    std::env::var("CUSTODY_BENCH_HTTP_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(10)
}

fn connection_counts() -> Vec<usize> {
    match std::env::var("CUSTODY_BENCH_HTTP_CONNECTIONS") {
        Ok(text) => text
            .split(',')
            .filter_map(|count| count.trim().parse().ok())
            .collect(),
        Err(_) => vec![16, 64, 256],
    }
}

/// Writes the wrk scripts into `directory`: (post cases, get).
pub(crate) fn scripts(
    directory: &std::path::Path,
) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let post = directory.join("post-cases.lua");
    let get = directory.join("get.lua");
    std::fs::write(&post, served::POST_CASES_LUA)?;
    std::fs::write(&get, served::GET_LUA)?;
    Ok((post, get))
}

fn print_run(label: &str, run: &WrkRun) {
    println!(
        "    {label:<18} {:>8.0} req/s   p50 {:>7.2} ms  p99 {:>7.2} ms  p999 {:>7.2} ms  ({:.0} requests, {:.0} errors)",
        run.rate(),
        run.p50_ms,
        run.p99_ms,
        run.p999_ms,
        run.requests,
        run.errors
    );
}

/// The whole HTTP write benchmark, embedded then PostgreSQL.
pub(crate) async fn http_writes() -> Result<()> {
    let seconds = run_seconds();
    let counts = connection_counts();
    let directory = tempfile::tempdir()?;
    let (post, get) = scripts(directory.path())?;
    println!(
        "HTTP writes (POST /v1/cases) into a release `custody serve`, loaded by wrk (2 threads, {seconds} s per run), beside wrk against the same server's /healthz (load average {})",
        served::load_average()
    );
    for backend in ["embedded", "postgres"] {
        let data = directory.path().join(backend);
        let database = if backend == "postgres" {
            Some(crate::postgres::Database::create("http").await?)
        } else {
            None
        };
        let url = database.as_ref().map(|database| database.url.clone());
        let outcome = async {
            let token = served::init(&data, url.as_deref())?;
            let server = Served::start(&data, url.as_deref(), None).await?;
            println!("  {backend} store:");
            let mut best: Option<WrkRun> = None;
            for &connections in &counts {
                let write = served::wrk(
                    &post,
                    &format!("{}/v1/cases", server.base),
                    connections,
                    seconds,
                    &[&token, &format!("{backend}-c{connections}")],
                )?;
                let health = served::wrk(
                    &get,
                    &format!("{}/healthz", server.base),
                    connections,
                    seconds,
                    &[],
                )?;
                println!("   {connections} connections:");
                print_run("writes", &write);
                print_run("/healthz", &health);
                println!(
                    "    ratio writes/healthz: {:>6.3}   goal 5,000 writes/s at p99 < 50 ms: {}",
                    write.rate() / health.rate(),
                    if write.rate() >= 5000.0 && write.p99_ms < 50.0 {
                        "met"
                    } else {
                        "not met"
                    }
                );
                anyhow::ensure!(
                    write.errors == 0.0,
                    "{} write requests failed",
                    write.errors
                );
                if best.is_none_or(|best| write.rate() > best.rate()) {
                    best = Some(write);
                }
            }
            if let Some(best) = best {
                println!(
                    "   best: {:.0} writes/s (p99 {:.2} ms); server peak RSS {:.1} MiB",
                    best.rate(),
                    best.p99_ms,
                    server.peak_kib() as f64 / 1024.0
                );
            }
            drop(server);
            Ok::<_, anyhow::Error>(())
        }
        .await;
        if let Some(database) = database {
            database.drop_now().await?;
        }
        outcome?;
    }
    Ok(())
}

/// The best write rate of a short wrk run (`seconds`) against a fresh
/// embedded server with 64 connections: the soak's maximum.
pub(crate) async fn max_write_rate(seconds: u64) -> Result<WrkRun> {
    let directory = tempfile::tempdir()?;
    let (post, _) = scripts(directory.path())?;
    let data = directory.path().join("max");
    let token = served::init(&data, None)?;
    let server = Served::start(&data, None, None).await?;
    let run = served::wrk(
        &post,
        &format!("{}/v1/cases", server.base),
        64,
        seconds,
        &[&token, "max"],
    )?;
    anyhow::ensure!(run.errors == 0.0, "{} write requests failed", run.errors);
    Ok(run)
}
