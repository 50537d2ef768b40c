//! The readiness report at a large log: `verify` alone beside `verify`
//! followed by building the report and rendering it as HTML and SARIF, each
//! in a child process of its own so that its peak memory (VmHWM) is its own.
//! Both are run in alternating rounds on the same ledger; the figures are
//! the medians and their ratios (`CUSTODY_BENCH_ONLY=report` runs only this;
//! `CUSTODY_BENCH_REPORT_EVENTS` sets the size, default 1,000,000).

use std::time::Instant;

use anyhow::{Context, Result};
use custody_store::Store;

/// The argument that makes this binary the child of [`report_bench`]:
/// `custody-bench report-child DIR verify|report`.
pub(crate) const REPORT_CHILD: &str = "report-child";

/// Runs `verify` (and, for `report`, builds and renders the report) in this
/// process and prints `seconds peak_kib bytes report_seconds` on standard
/// output: the whole run, and the report's own part (building and rendering,
/// after verify), which is timed apart so that a difference between the two
/// children can be told from the machine's noise.
pub(crate) fn report_child(arguments: &[String]) -> Result<()> {
    let [directory, mode] = arguments else {
        anyhow::bail!("usage: custody-bench {REPORT_CHILD} DIR verify|report");
    };
    let with_report = match mode.as_str() {
        "verify" => false,
        "report" => true,
        other => anyhow::bail!("unknown mode {other}: verify or report"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = custody_store::ReadOnlyStore::open(std::path::Path::new(directory)).await?;
        let started = Instant::now();
        let audited = store.audit(Vec::new(), None).await?;
        let mut bytes = 0;
        let report_started = Instant::now();
        if with_report {
            let report = custody_report::build(custody_report::Input {
                subject: "ledger bench",
                generated_at: custody_core::Timestamp::now(),
                verify: Some(&audited),
                drill: None,
            });
            for format in [custody_report::Format::Html, custody_report::Format::Sarif] {
                bytes += custody_report::render(&report, format).len();
            }
        }
        let report_seconds = report_started.elapsed().as_secs_f64();
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{elapsed} {} {bytes} {report_seconds}",
            super::status_kib("VmHWM:")
        );
        Ok(())
    })
}

/// Builds a ledger of `events` events and times verify alone against
/// verify + report (build, HTML, SARIF), with each one's peak memory.
pub(crate) async fn report_bench(events: u64) -> Result<()> {
    let directory = tempfile::tempdir()?;
    let data = directory.path().join("ledger");
    let store = Store::open(&data).await?;
    let cases = super::open_cases(&store, 256).await?;
    let size = store.log_size().await?;
    let started = Instant::now();
    if events > size {
        super::fill(&store, &cases, events - size, 300).await?;
    }
    let size = store.log_size().await?;
    drop(store);
    println!(
        "readiness report at {size} events (built in {:.0} s): verify alone beside verify + report (HTML and SARIF), a child process each",
        started.elapsed().as_secs_f64()
    );
    let itself = std::env::current_exe()?;
    let run = |mode: &str| -> Result<(f64, f64, f64, f64)> {
        let output = std::process::Command::new(&itself)
            .arg(REPORT_CHILD)
            .arg(&data)
            .arg(mode)
            .output()
            .context("running the report child")?;
        anyhow::ensure!(
            output.status.success(),
            "the report child failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout);
        let fields: Vec<f64> = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("the report child printed {text:?}"))?;
        let [seconds, peak_kib, bytes, report_seconds] = fields[..] else {
            anyhow::bail!("the report child printed {text:?}");
        };
        Ok((seconds, peak_kib, bytes, report_seconds))
    };
    let (mut verify_times, mut verify_peaks) = (Vec::new(), Vec::new());
    let (mut report_times, mut report_peaks, mut report_bytes) = (Vec::new(), Vec::new(), 0.0);
    let mut own_times = Vec::new();
    for _ in 0..3 {
        let (seconds, peak, _, _) = run("verify")?;
        verify_times.push(seconds);
        verify_peaks.push(peak);
        let (seconds, peak, bytes, own) = run("report")?;
        report_times.push(seconds);
        report_peaks.push(peak);
        own_times.push(own);
        report_bytes = bytes;
    }
    let own_time = super::median(&mut own_times);
    let verify_time = super::median(&mut verify_times);
    let report_time = super::median(&mut report_times);
    let verify_peak = super::median(&mut verify_peaks);
    let report_peak = super::median(&mut report_peaks);
    println!(
        "  verify alone:        {verify_time:>8.2} s   peak {:>7.1} MiB",
        verify_peak / 1024.0
    );
    println!(
        "  verify + report:     {report_time:>8.2} s   peak {:>7.1} MiB   ({:.0} kB of HTML and SARIF)",
        report_peak / 1024.0,
        report_bytes / 1e3
    );
    println!(
        "  ratio time:          {:>8.3}   (goal: at most 1.05, the report adds nothing that grows with the log)",
        report_time / verify_time
    );
    println!(
        "  the report's own part: {:>6.1} ms (building and rendering, timed apart: {:.4} of verify alone)",
        own_time * 1e3,
        own_time / verify_time
    );
    println!("  ratio peak memory:   {:>8.3}", report_peak / verify_peak);
    Ok(())
}
