//! A real `custody serve` (the release binary beside the benchmark, or
//! `CUSTODY_BENCH_CUSTODY`) in a child process, for the benchmarks that
//! load a server from outside: `http`, `scale` and `soak`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The `custody` binary.
pub(crate) fn custody_binary() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("CUSTODY_BENCH_CUSTODY") {
        return Ok(PathBuf::from(path));
    }
    let beside = std::env::current_exe()?
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

/// `custody init --json` of `data` (on PostgreSQL at `database_url` when
/// given): returns the first admin's token.
pub(crate) fn init(data: &Path, database_url: Option<&str>) -> Result<String> {
    let mut command = Command::new(custody_binary()?);
    command.args(["init", "--json", "--data"]).arg(data);
    if let Some(url) = database_url {
        command.args(["--database-url", url]);
    }
    let output = command
        .env_remove("CUSTODY_DATABASE_URL")
        .env_remove("CUSTODY_CONFIG")
        .output()
        .context("running custody init")?;
    anyhow::ensure!(
        output.status.success(),
        "custody init failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(report["admin_token"]
        .as_str()
        .context("custody init printed no admin_token")?
        .to_string())
}

/// A running `custody serve`, killed when dropped.
pub(crate) struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
}

impl Served {
    /// Starts `custody serve` on `data` (and `database_url`, `config` when
    /// given) on a free loopback port and waits for `/healthz`.
    pub(crate) async fn start(
        data: &Path,
        database_url: Option<&str>,
        config: Option<&Path>,
    ) -> Result<Served> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let address = format!("127.0.0.1:{port}");
        let mut command = Command::new(custody_binary()?);
        command
            .args(["serve", "--listen", &address, "--data"])
            .arg(data)
            .env_remove("CUSTODY_DATABASE_URL")
            .env_remove("CUSTODY_CONFIG")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = database_url {
            command.args(["--database-url", url]);
        }
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let child = command.spawn().context("starting custody serve")?;
        let mut served = Served {
            child,
            base: format!("http://{address}"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = http.get(format!("{}/healthz", served.base)).send().await {
                if response.status().is_success() {
                    break;
                }
            }
            if let Some(status) = served.child.try_wait()? {
                anyhow::bail!("custody serve exited: {status}");
            }
            anyhow::ensure!(Instant::now() < deadline, "custody serve did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(served)
    }

    /// The server's process ID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident size now, in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        crate::process_status_kib(&self.pid().to_string(), "VmRSS:")
    }

    /// Its peak resident size, in KiB.
    pub(crate) fn peak_kib(&self) -> u64 {
        crate::process_status_kib(&self.pid().to_string(), "VmHWM:")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one `wrk` run reported.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WrkRun {
    pub(crate) requests: f64,
    pub(crate) seconds: f64,
    /// Responses with a status of 400 or more, and socket errors.
    pub(crate) errors: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
}

impl WrkRun {
    pub(crate) fn rate(&self) -> f64 {
        self.requests / self.seconds
    }
}

/// The Lua script that posts case requests, each with its own
/// idempotency key and subject, authenticated with the token given as the
/// script's first argument; `done` prints the figures on one line.
pub(crate) const POST_CASES_LUA: &str = r#"
local threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  token = args[1]
  prefix = args[2]
  counter = 0
end
function request()
  counter = counter + 1
  local key = prefix .. "-" .. id .. "-" .. counter
  local body = '{"subject":{"kind":"user","id":"load-' .. key .. '"},"entitlement":"admin","justification":"load test"}'
  return wrk.format("POST", "/v1/cases", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = key,
  }, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("CUSTODY-WRK %d %d %d %d %d %d\n", summary.requests, summary.duration,
    e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"#;

/// The same figures for plain GETs of the URL given to wrk.
pub(crate) const GET_LUA: &str = r#"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("CUSTODY-WRK %d %d %d %d %d %d\n", summary.requests, summary.duration,
    e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"#;

/// Runs `wrk --latency` with `script` against `url` for `seconds` with
/// `connections` connections on 2 threads; `arguments` go to the script.
pub(crate) fn wrk(
    script: &Path,
    url: &str,
    connections: usize,
    seconds: u64,
    arguments: &[&str],
) -> Result<WrkRun> {
    let output = Command::new("wrk")
        .args(["-t", "2", "--latency", "--timeout", "10s"])
        .arg("-c")
        .arg(connections.to_string())
        .arg("-d")
        .arg(format!("{seconds}s"))
        .arg("-s")
        .arg(script)
        .arg(url)
        .arg("--")
        .args(arguments)
        .output()
        .context("running wrk (apt-get install -y wrk; cargo xtask bench installs it)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "wrk failed: {text}");
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("CUSTODY-WRK "))
        .with_context(|| format!("wrk printed no figures: {text}"))?;
    let fields: Vec<f64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let [requests, micros, errors, p50, p99, p999] = fields[..] else {
        anyhow::bail!("wrk printed {line}");
    };
    Ok(WrkRun {
        requests,
        seconds: micros / 1e6,
        errors,
        p50_ms: p50 / 1e3,
        p99_ms: p99 / 1e3,
        p999_ms: p999 / 1e3,
    })
}

/// The load average (1, 5, 15 minutes), for the record.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Bytes of every file under `path`, recursively.
pub(crate) fn disk_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0);
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => disk_bytes(&entry.path()),
            _ => entry.metadata().map(|meta| meta.len()).unwrap_or(0),
        })
        .sum()
}
