//! The soak (`CUSTODY_BENCH_ONLY=soak`; `CUSTODY_BENCH_SOAK_SECONDS`,
//! default 600): a release `custody serve` on the embedded store, with a
//! webhook notification channel delivering to a local HTTP receiver and a
//! webhook export push sink to the same receiver, loaded at 70% of the
//! maximum write rate measured first in the same run (a 10 s `wrk` of
//! `POST /v1/cases` with 64 connections against a fresh server, as the
//! `http` section does; `CUSTODY_BENCH_SOAK_RATE` gives the rate instead).
//!
//! The load generator is open-loop and in this process: requests are
//! scheduled at fixed intervals and each one's latency counts from when it
//! was due, not from when it was sent, so a server that falls behind shows
//! in the latency (no coordinated omission). Per 10 s window: requests,
//! errors, p50 and p99 latency, the server's RSS, notifications and export
//! batches received. Written to `target/bench/soak.csv` and plotted in
//! `target/bench/soak.svg` (RSS and p99 against time; `CUSTODY_BENCH_OUT`
//! sets the directory). Flat means: the least-squares slope over the
//! windows after the first minute moves RSS by less than 20% of its mean
//! over the soak, and p99 of the last third is at most twice that of the
//! second window onwards' first third; both slopes are printed.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::served::{self, Served};

const WINDOW: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Received {
    notifications: AtomicU64,
    export_posts: AtomicU64,
    export_bytes: AtomicU64,
}

/// The receiver of notifications and export batches, counting both.
async fn receiver(received: Arc<Received>) -> Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let notify = received.clone();
    let export = received.clone();
    let app = axum::Router::new()
        .route(
            "/notify",
            axum::routing::post(move || {
                let notify = notify.clone();
                async move {
                    notify.notifications.fetch_add(1, Ordering::Relaxed);
                    axum::http::StatusCode::OK
                }
            }),
        )
        .route(
            "/export",
            axum::routing::post(move |body: axum::body::Bytes| {
                let export = export.clone();
                async move {
                    export.export_posts.fetch_add(1, Ordering::Relaxed);
                    export
                        .export_bytes
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    axum::http::StatusCode::OK
                }
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

/// One 10 s window's figures.
struct Window {
    start_seconds: f64,
    requests: usize,
    errors: usize,
    p50_ms: f64,
    p99_ms: f64,
    rss_mib: f64,
    notifications: u64,
    export_posts: u64,
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a fraction of the last index"
    )]
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

/// Least-squares slope of `y` against `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let variance: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if variance == 0.0 {
        0.0
    } else {
        covariance / variance
    }
}

pub(crate) async fn soak() -> Result<()> {
    let seconds: u64 = std::env::var("CUSTODY_BENCH_SOAK_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(600);
    let load_before = served::load_average();
    let (max_rate, measured) = match std::env::var("CUSTODY_BENCH_SOAK_RATE")
        .ok()
        .and_then(|value| value.parse::<f64>().ok())
    {
        Some(rate) => (rate / 0.7, "given by CUSTODY_BENCH_SOAK_RATE"),
        None => (
            crate::http_load::max_write_rate(10).await?.rate(),
            "measured: wrk, 64 connections, 10 s",
        ),
    };
    let rate = (max_rate * 0.7).max(1.0);
    let received = Arc::new(Received::default());
    let (base, stop_receiver) = receiver(received.clone()).await?;
    let directory = tempfile::tempdir()?;
    let data = directory.path().join("soak");
    let config = directory.path().join("custody.toml");
    // The continuous monitor runs at the server's default interval unless
    // CUSTODY_BENCH_SOAK_MONITOR_SECONDS says otherwise (0 turns it off).
    let monitor = match std::env::var("CUSTODY_BENCH_SOAK_MONITOR_SECONDS") {
        Ok(seconds) => format!("\n[monitor]\ninterval_seconds = {}\n", seconds.trim()),
        Err(_) => String::new(),
    };
    std::fs::write(
        &config,
        format!(
            "[notify]\npoll_interval_ms = 50\n\n\
             [[notify.channels]]\ntype = \"webhook\"\nname = \"hook\"\nurl = \"{base}/notify\"\nsecret = \"soak-secret\"\ntimeout_seconds = 5\n\n\
             [export]\npoll_interval_ms = 200\n\n\
             [[export.sinks]]\nkind = \"webhook\"\nname = \"siem\"\nurl = \"{base}/export\"\nsecret = \"soak-export-secret\"\ntimeout_seconds = 5\n{monitor}"
        ),
    )?;
    let token = served::init(&data, None)?;
    let server = Served::start(&data, None, Some(&config)).await?;
    println!(
        "soak: {seconds} s at {rate:.0} writes/s (70% of {max_rate:.0}/s, {measured}), webhook notifications and an export push sink to a local receiver (load average {load_before})"
    );

    // Open-loop generator: request i is due at start + i / rate.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    let (sender, mut results) = tokio::sync::mpsc::unbounded_channel::<(f64, f64, u16)>();
    let started = Instant::now();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a positive count of requests"
    )]
    let total = (rate * seconds as f64) as u64;
    let url = format!("{}/v1/cases", server.base);
    let generator = {
        let token = token.clone();
        tokio::spawn(async move {
            // Below the server's `max_connections` (512): over it, the
            // server answers 503 "Too many connections" by design, which
            // says nothing about how it holds up (stop 27's first soaks
            // counted those as failures).
            let in_flight = Arc::new(tokio::sync::Semaphore::new(448));
            let mut sent = 0u64;
            while sent < total {
                tokio::time::sleep(Duration::from_millis(1)).await;
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "a positive count of requests"
                )]
                let due_now = ((started.elapsed().as_secs_f64() * rate) as u64).min(total);
                while sent < due_now {
                    let due = started + Duration::from_secs_f64(sent as f64 / rate);
                    let permit = in_flight.clone().acquire_owned().await?;
                    let http = http.clone();
                    let url = url.clone();
                    let token = token.clone();
                    let sender = sender.clone();
                    let key = format!("soak-{sent}");
                    tokio::spawn(async move {
                        let body = format!(
                            r#"{{"subject":{{"kind":"user","id":"soak-{key}"}},"entitlement":"admin","justification":"soak"}}"#
                        );
                        // The status, 0 for a request that got no answer
                        // (refused, reset, timed out).
                        let status = match http
                            .post(&url)
                            .bearer_auth(&token)
                            .header("idempotency-key", &key)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await
                        {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                match response.bytes().await {
                                    Ok(_) => status,
                                    Err(_) => 0,
                                }
                            }
                            Err(_) => 0,
                        };
                        let latency = due.elapsed().as_secs_f64() * 1e3;
                        let _ = sender.send(((due - started).as_secs_f64(), latency, status));
                        drop(permit);
                    });
                    sent += 1;
                }
            }
            Ok::<_, anyhow::Error>(())
        })
    };

    // Per window: collect what was due in it, sample the server.
    let window_count = seconds.div_ceil(WINDOW.as_secs());
    let mut buckets: Vec<(Vec<f64>, usize)> = (0..window_count).map(|_| (Vec::new(), 0)).collect();
    let mut samples = Vec::new();
    // Failed requests by status (0: no answer).
    let mut failures = std::collections::BTreeMap::<u16, u64>::new();
    for window in 0..window_count {
        let end = started + WINDOW * u32::try_from(window + 1)?;
        tokio::time::sleep_until(end.into()).await;
        samples.push((
            server.rss_kib() as f64 / 1024.0,
            received.notifications.load(Ordering::Relaxed),
            received.export_posts.load(Ordering::Relaxed),
        ));
        while let Ok((due, latency, status)) = results.try_recv() {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "seconds"
            )]
            let index = ((due / WINDOW.as_secs_f64()) as usize).min(buckets.len() - 1);
            buckets[index].0.push(latency);
            if !(200..300).contains(&status) {
                buckets[index].1 += 1;
                *failures.entry(status).or_insert(0u64) += 1;
            }
        }
    }
    generator.await??;
    // The stragglers of the last window.
    let drain_deadline = Instant::now() + Duration::from_secs(30);
    let mut answered: usize = buckets.iter().map(|bucket| bucket.0.len()).sum();
    while (answered as u64) < total && Instant::now() < drain_deadline {
        match tokio::time::timeout(Duration::from_secs(1), results.recv()).await {
            Ok(Some((due, latency, status))) => {
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "seconds"
                )]
                let index = ((due / WINDOW.as_secs_f64()) as usize).min(buckets.len() - 1);
                buckets[index].0.push(latency);
                if !(200..300).contains(&status) {
                    buckets[index].1 += 1;
                    *failures.entry(status).or_insert(0u64) += 1;
                }
                answered += 1;
            }
            _ => continue,
        }
    }
    let peak_mib = server.peak_kib() as f64 / 1024.0;
    let windows: Vec<Window> = buckets
        .into_iter()
        .zip(&samples)
        .enumerate()
        .map(
            |(index, ((mut latencies, errors), &(rss_mib, notifications, export_posts)))| {
                latencies.sort_by(f64::total_cmp);
                Window {
                    start_seconds: index as f64 * WINDOW.as_secs_f64(),
                    requests: latencies.len(),
                    errors,
                    p50_ms: percentile(&latencies, 0.5),
                    p99_ms: percentile(&latencies, 0.99),
                    rss_mib,
                    notifications,
                    export_posts,
                }
            },
        )
        .collect();
    drop(server);
    let _ = stop_receiver.send(());

    let out = match std::env::var("CUSTODY_BENCH_OUT") {
        Ok(path) => std::path::PathBuf::from(path),
        Err(_) => std::env::current_exe()?
            .parent()
            .and_then(std::path::Path::parent)
            .context("the target directory")?
            .join("bench"),
    };
    std::fs::create_dir_all(&out)?;
    let mut csv = String::from(
        "window_start_s,requests,errors,p50_ms,p99_ms,rss_mib,notifications_received,export_posts_received\n",
    );
    for window in &windows {
        writeln!(
            csv,
            "{},{},{},{:.2},{:.2},{:.1},{},{}",
            window.start_seconds,
            window.requests,
            window.errors,
            window.p50_ms,
            window.p99_ms,
            window.rss_mib,
            window.notifications,
            window.export_posts
        )?;
    }
    std::fs::write(out.join("soak.csv"), &csv)?;
    std::fs::write(
        out.join("soak.svg"),
        svg(&windows, rate, &served::load_average()),
    )?;

    // Flatness, after the first minute (warm-up: caches, pools).
    let steady: Vec<&Window> = windows.iter().filter(|w| w.start_seconds >= 60.0).collect();
    let steady = if steady.len() >= 3 {
        steady
    } else {
        windows.iter().collect()
    };
    let rss: Vec<(f64, f64)> = steady
        .iter()
        .map(|w| (w.start_seconds / 60.0, w.rss_mib))
        .collect();
    let p99: Vec<(f64, f64)> = steady
        .iter()
        .map(|w| (w.start_seconds / 60.0, w.p99_ms))
        .collect();
    let rss_slope = slope(&rss);
    let p99_slope = slope(&p99);
    let mean_rss = rss.iter().map(|p| p.1).sum::<f64>() / rss.len().max(1) as f64;
    let span_minutes = rss.last().map_or(0.0, |p| p.0) - rss.first().map_or(0.0, |p| p.0);
    let third = (steady.len() / 3).max(1);
    let mut first: Vec<f64> = steady[..third].iter().map(|w| w.p99_ms).collect();
    let mut last: Vec<f64> = steady[steady.len() - third..]
        .iter()
        .map(|w| w.p99_ms)
        .collect();
    let (first_p99, last_p99) = (crate::median(&mut first), crate::median(&mut last));
    let requests: usize = windows.iter().map(|w| w.requests).sum();
    let errors: usize = windows.iter().map(|w| w.errors).sum();
    let mut all_p99: Vec<f64> = windows.iter().map(|w| w.p99_ms).collect();
    println!(
        "  {requests} requests answered of {total} sent ({errors} errors), {:.0} writes/s achieved; {} notifications and {} export batches ({:.1} MB) received",
        requests as f64 / seconds as f64,
        received.notifications.load(Ordering::Relaxed),
        received.export_posts.load(Ordering::Relaxed),
        received.export_bytes.load(Ordering::Relaxed) as f64 / 1e6
    );
    println!(
        "  server RSS: mean {mean_rss:.1} MiB, peak {peak_mib:.1} MiB, slope {rss_slope:+.3} MiB/min ({:+.1}% of the mean over the steady {span_minutes:.1} min)",
        100.0 * rss_slope * span_minutes / mean_rss.max(1e-9)
    );
    println!(
        "  p99 per window: median {:.2} ms, max {:.2} ms, slope {p99_slope:+.3} ms/min; first third {first_p99:.2} ms, last third {last_p99:.2} ms",
        crate::median(&mut all_p99),
        windows.iter().map(|w| w.p99_ms).fold(0.0, f64::max)
    );
    if !failures.is_empty() {
        let by_status: Vec<String> = failures
            .iter()
            .map(|(status, count)| match status {
                0 => format!("{count} unanswered"),
                _ => format!("{count} × {status}"),
            })
            .collect();
        println!("  failed requests: {}", by_status.join(", "));
    }
    println!("  written: {} and soak.svg", out.join("soak.csv").display());
    anyhow::ensure!(errors == 0, "{errors} requests failed during the soak");
    anyhow::ensure!(
        (rss_slope * span_minutes).abs() < 0.2 * mean_rss,
        "the server's RSS is not flat: {rss_slope:+.3} MiB/min"
    );
    anyhow::ensure!(
        last_p99 <= 2.0 * first_p99.max(1.0),
        "p99 is not flat: {first_p99:.2} ms in the first third, {last_p99:.2} ms in the last"
    );
    Ok(())
}

/// A plotted series: its label, colour and value per window.
type Series = (&'static str, &'static str, fn(&Window) -> f64);

/// Two panels against time: the server's RSS (MiB) and the p99 latency
/// (ms) per 10 s window, as polylines with their axes' ranges labelled.
fn svg(windows: &[Window], rate: f64, load: &str) -> String {
    let (width, panel, margin) = (800.0, 220.0, 60.0);
    let duration = windows.last().map_or(1.0, |w| w.start_seconds + 10.0);
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{margin}" y="20" font-size="14">custody soak: {rate:.0} writes/s for {duration:.0} s, per 10 s window (load average at the end {load})</text>
"##,
        2.0 * panel + 3.0 * margin
    );
    let series: [Series; 2] = [
        ("server RSS (MiB)", "#1f77b4", |w: &Window| w.rss_mib),
        ("p99 latency (ms)", "#d62728", |w: &Window| w.p99_ms),
    ];
    for (row, (label, colour, value)) in series.iter().enumerate() {
        let top = margin + row as f64 * (panel + margin);
        let max = windows.iter().map(value).fold(0.0, f64::max).max(1e-9) * 1.1;
        let plot_width = width - 2.0 * margin;
        let points: Vec<String> = windows
            .iter()
            .map(|w| {
                format!(
                    "{:.1},{:.1}",
                    margin + plot_width * (w.start_seconds + 5.0) / duration,
                    top + panel - panel * value(w) / max
                )
            })
            .collect();
        let _ = write!(
            out,
            r##"<rect x="{margin}" y="{top}" width="{plot_width}" height="{panel}" fill="none" stroke="#999"/>
<text x="{margin}" y="{:.1}">{label}</text>
<text x="{:.1}" y="{:.1}" text-anchor="end">{max:.1}</text>
<text x="{:.1}" y="{:.1}" text-anchor="end">0</text>
<text x="{margin}" y="{:.1}">0 s</text>
<text x="{:.1}" y="{:.1}" text-anchor="end">{duration:.0} s</text>
<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>
"##,
            top - 6.0,
            margin - 4.0,
            top + 10.0,
            margin - 4.0,
            top + panel,
            top + panel + 16.0,
            margin + plot_width,
            top + panel + 16.0,
            points.join(" ")
        );
    }
    out.push_str("</svg>\n");
    out
}
