//! The project's own automation: `cargo xtask test` and `cargo xtask bench`.
//!
//! `test` runs every test of the workspace once (one build), after making sure
//! the services the tests need are running: it finds PostgreSQL on
//! 127.0.0.1:5432 or starts the local cluster, and exports its URL as
//! `CUSTODY_TEST_DATABASE_URL`. It also makes sure Python's `jsonschema`
//! package imports (the OCSF export test validates with it), installing it
//! with pip (`--user`) or apt when it is missing; and it installs with
//! apt-get the Debian packages whose programs the tests start when they are
//! missing (rsyslog with its OpenSSL driver for the syslog sink tests,
//! openssl for their CA, chromium for the readiness report's HTML), and
//! installs the official SARIF validator (`@microsoft/sarif-multitool`)
//! with npm under `target/sarif-multitool`, exported to the tests as
//! `CUSTODY_SARIF_MULTITOOL`, and the browser harness's npm packages
//! (`playwright-core` and `axe-core`, pinned) under `target/browser-tools`,
//! exported as `CUSTODY_BROWSER_TOOLS` (`tests/common/browser.rs`), and the
//! certified OpenID provider
//! (`oidc-provider`, pinned) under `target/oidc-provider`, exported as
//! `CUSTODY_OIDC_PROVIDER` (tests/oidc/provider.mjs starts it).
//!
//! `bench` builds the benchmark harness (and, for the drill benchmark, the
//! `custody` binary) in release mode and runs it; every
//! figure is printed beside a baseline measured in the same run.

#![forbid(unsafe_code)]

mod apifuzz;
mod bench_tools;
mod fuzz;

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitCode};
use std::time::Duration;

mod crash;
mod tamper;

const POSTGRES: &str = "127.0.0.1:5432";
const TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match arguments.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match task {
        "test" => test(rest),
        "bench" => bench(rest),
        "crash" => crash::crash(rest),
        "apifuzz" => apifuzz::apifuzz(rest),
        "tamper" => tamper::tamper(rest),
        "fuzz" => fuzz::fuzz(rest),
        _ => {
            eprintln!("usage: cargo xtask <task> [arguments]");
            eprintln!("  test     run every test (finds or starts PostgreSQL first)");
            eprintln!("  bench    run the benchmarks in release mode");
            eprintln!(
                "  crash    kill -9 a loaded server at random, restart, check (docs/crash.md)"
            );
            eprintln!("  apifuzz  fuzz the HTTP API of a live server with schemathesis (docs/api-fuzzing.md)");
            eprintln!("  tamper   mutate a data directory behind the store's back, check verify names it (docs/tamper.md)");
            eprintln!("  fuzz     run the fuzz targets: --seconds N [--target NAME]... [--jobs J] (docs/fuzzing.md)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn test(extra: &[String]) -> Result<(), String> {
    ensure_postgres()?;
    ensure_python_jsonschema()?;
    ensure_packages()?;
    let sarif_multitool = ensure_sarif_multitool()?;
    let browser_tools = ensure_browser_tools()?;
    let oidc_provider = ensure_oidc_provider()?;
    let mut command = cargo();
    command
        .args(["test", "--workspace", "--all-targets", "--locked"])
        .args(extra)
        .env("CUSTODY_TEST_DATABASE_URL", TEST_DATABASE_URL)
        // The power-cut test must run here, not report that it could not.
        .env("CUSTODY_REQUIRE_POWER_LOSS", "1")
        // The readiness report's SARIF is checked by the official validator.
        .env("CUSTODY_SARIF_MULTITOOL", &sarif_multitool)
        // The browser tests' playwright-core and axe-core.
        .env("CUSTODY_BROWSER_TOOLS", &browser_tools)
        // The OpenID provider the OIDC tests sign in with.
        .env("CUSTODY_OIDC_PROVIDER", &oidc_provider);
    run(command)?;
    // Doc tests are a separate pass in cargo; they reuse the same build.
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--doc", "--locked"]);
    run(doc)
}

fn bench(extra: &[String]) -> Result<(), String> {
    // The drill benchmark runs the `custody` binary, built beside the
    // harness (only when the drill is among the benchmarks run).
    let only = std::env::var("CUSTODY_BENCH_ONLY").ok();
    if bench_tools::needs_wrk(only.as_deref()) {
        bench_tools::ensure_wrk()?;
    }
    if bench_tools::needs_postgres(only.as_deref()) {
        ensure_postgres()?;
    }
    if bench_tools::needs_custody(only.as_deref()) {
        let mut build = cargo();
        build.args(["build", "--release", "--locked", "--bin", "custody"]);
        run(build)?;
    }
    let mut command = cargo();
    command
        .args([
            "run",
            "--release",
            "--locked",
            "--package",
            "custody-bench",
            "--",
        ])
        .args(extra);
    run(command)
}

/// A nested cargo, with the environment it would have had if run by hand.
///
/// `cargo xtask` is `cargo run`, which sets the variables cargo gives a
/// running crate (`CARGO_MANIFEST_DIR=.../xtask`, `CARGO_PKG_NAME=xtask`,
/// ...). The nested cargo passes them on, and build scripts that read them
/// declare them with `rerun-if-env-changed` (ring's does, for
/// `CARGO_MANIFEST_DIR` and `CARGO_PKG_*`), so every dependency above ring
/// (rustls, reqwest, sqlx's TLS, the whole workspace) was rebuilt under
/// `cargo xtask test`, and again by the next plain `cargo test` or `cargo
/// clippy`. Removing them makes the nested build share the same artifacts.
fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if set_by_cargo_run(name) {
            command.env_remove(name);
        }
    }
    command
}

/// Whether `name` is one of the variables `cargo run` sets for the crate it
/// runs (`CARGO` itself, the path of cargo, is kept: it is how to run it).
fn set_by_cargo_run(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

fn run(mut command: Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|error| format!("cannot run {command:?}: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed with {status}"))
    }
}

/// The Debian packages whose programs the tests start.
const TEST_PACKAGES: &[&str] = &[
    // The syslog sink tests: a real rsyslogd receiving over TCP, and over
    // TLS through its OpenSSL network stream driver (lmnsd_ossl).
    "rsyslog",
    "rsyslog-openssl",
    // The test CA of the TLS syslog test.
    "openssl",
    // The readiness report's HTML page, rendered and screenshotted headless;
    // the browser tests' Chromium, driven by playwright-core.
    "chromium",
];

/// The npm package of the official SARIF validator, and where it goes.
const SARIF_MULTITOOL_PACKAGE: &str = "@microsoft/sarif-multitool";
const SARIF_MULTITOOL_DIR: &str = "target/sarif-multitool";

/// Installs the SARIF multitool with npm under `target/` when it is missing;
/// returns the path of its `sarif-multitool` program.
fn ensure_sarif_multitool() -> Result<std::path::PathBuf, String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("xtask has no parent directory")?
        .join(SARIF_MULTITOOL_DIR);
    let program = root.join("node_modules/.bin/sarif-multitool");
    if program.exists() {
        return Ok(program);
    }
    eprintln!("xtask: installing {SARIF_MULTITOOL_PACKAGE} for the tests");
    std::fs::create_dir_all(&root)
        .map_err(|error| format!("cannot create {}: {error}", root.display()))?;
    let mut install = Command::new("npm");
    install
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&root)
        .arg(SARIF_MULTITOOL_PACKAGE);
    run(install).map_err(|error| format!("{error} (is npm installed?)"))?;
    if program.exists() {
        Ok(program)
    } else {
        Err(format!(
            "npm installed {SARIF_MULTITOOL_PACKAGE} but {} is missing",
            program.display()
        ))
    }
}

/// The browser harness's npm packages, each at the version the tests were
/// written against (playwright-core drives Debian's Chromium: it downloads
/// no browser), and where they go.
const BROWSER_TOOLS: &[(&str, &str)] = &[("playwright-core", "1.65.1"), ("axe-core", "4.14.1")];
const BROWSER_TOOLS_DIR: &str = "target/browser-tools";

/// The OpenID provider of the OIDC tests (a certified implementation),
/// pinned, and where it goes.
const OIDC_PROVIDER: &[(&str, &str)] = &[("oidc-provider", "9.13.3")];
const OIDC_PROVIDER_DIR: &str = "target/oidc-provider";

/// Installs the browser harness's npm packages; returns their npm prefix.
fn ensure_browser_tools() -> Result<std::path::PathBuf, String> {
    ensure_npm_packages(BROWSER_TOOLS_DIR, BROWSER_TOOLS, "the browser tests")
}

/// Installs `oidc-provider`; returns the directory that holds its
/// `node_modules`.
fn ensure_oidc_provider() -> Result<std::path::PathBuf, String> {
    ensure_npm_packages(OIDC_PROVIDER_DIR, OIDC_PROVIDER, "the OIDC tests")
}

/// Installs with npm under `dir` (relative to the workspace) each package
/// not there at its pinned version; returns the npm prefix they are under.
fn ensure_npm_packages(
    dir: &str,
    packages: &[(&str, &str)],
    purpose: &str,
) -> Result<std::path::PathBuf, String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("xtask has no parent directory")?
        .join(dir);
    let installed_version = |package: &str| -> Option<String> {
        let manifest =
            std::fs::read_to_string(root.join("node_modules").join(package).join("package.json"))
                .ok()?;
        // `"version": "X"`, read without a JSON parser in xtask.
        let after = manifest.split("\"version\"").nth(1)?;
        Some(after.split('"').nth(1)?.to_string())
    };
    let missing: Vec<String> = packages
        .iter()
        .filter(|(package, version)| installed_version(package).as_deref() != Some(*version))
        .map(|(package, version)| format!("{package}@{version}"))
        .collect();
    if missing.is_empty() {
        return Ok(root);
    }
    eprintln!("xtask: installing {} for {purpose}", missing.join(", "));
    std::fs::create_dir_all(&root)
        .map_err(|error| format!("cannot create {}: {error}", root.display()))?;
    let mut install = Command::new("npm");
    install
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--save-exact",
            "--prefix",
        ])
        .arg(&root)
        .args(&missing);
    run(install).map_err(|error| format!("{error} (is npm installed? apt-get install npm)"))?;
    for (package, version) in packages {
        if installed_version(package).as_deref() != Some(*version) {
            return Err(format!(
                "npm did not install {package}@{version} under {}",
                root.display()
            ));
        }
    }
    Ok(root)
}

/// Whether dpkg has `package` installed.
fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["--show", "--showformat=${Status}", package])
        .output()
        .is_ok_and(|output| output.stdout.ends_with(b"install ok installed"))
}

/// Installs with apt-get the test packages that are missing.
fn ensure_packages() -> Result<(), String> {
    let missing: Vec<&str> = TEST_PACKAGES
        .iter()
        .copied()
        .filter(|package| !installed(package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {} for the tests", missing.join(", "));
    let mut update = Command::new("apt-get");
    update.args(["update", "-q"]);
    run(update)?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(install)
}

fn postgres_reachable() -> bool {
    // Safe: a constant socket address.
    let address: SocketAddr = POSTGRES.parse().expect("valid address");
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
}

/// Finds PostgreSQL, or starts the machine's cluster with `pg_ctlcluster`.
fn ensure_postgres() -> Result<(), String> {
    if postgres_reachable() {
        return Ok(());
    }
    eprintln!("xtask: PostgreSQL is not answering on {POSTGRES}; starting the local cluster");
    let versions = std::fs::read_dir("/etc/postgresql").map_err(|error| {
        format!("PostgreSQL is not running and not installed (/etc/postgresql: {error})")
    })?;
    for version in versions.flatten() {
        let version = version.file_name().to_string_lossy().to_string();
        let _ = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version, "main", "start"])
            .status();
    }
    for _ in 0..50 {
        if postgres_reachable() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("PostgreSQL did not start on {POSTGRES}"))
}

/// Whether Python 3 can import the Draft 2020-12 validator of `jsonschema`.
fn python_jsonschema_importable() -> bool {
    Command::new("python3")
        .args(["-c", "from jsonschema import Draft202012Validator"])
        .status()
        .is_ok_and(|status| status.success())
}

/// Makes sure `crates/custody-export/tests/validate_ocsf.py` can run: the
/// OCSF export test validates every event with the `jsonschema` package (a
/// maintained JSON Schema validator). Tries pip (`--user`, then also
/// `--break-system-packages` where the system Python is marked as
/// externally managed), then Debian's `python3-jsonschema`.
fn ensure_python_jsonschema() -> Result<(), String> {
    if python_jsonschema_importable() {
        return Ok(());
    }
    eprintln!("xtask: the Python package jsonschema is missing; installing it");
    let attempts: [&[&str]; 3] = [
        &[
            "python3",
            "-m",
            "pip",
            "install",
            "--user",
            "--quiet",
            "jsonschema",
        ],
        &[
            "python3",
            "-m",
            "pip",
            "install",
            "--user",
            "--quiet",
            "--break-system-packages",
            "jsonschema",
        ],
        &["apt-get", "install", "-y", "-q", "python3-jsonschema"],
    ];
    for attempt in attempts {
        let _ = Command::new(attempt[0]).args(&attempt[1..]).status();
        if python_jsonschema_importable() {
            return Ok(());
        }
    }
    Err(
        "cannot import the Python package jsonschema (needed by the OCSF export test): \
         install it with `pip install --user jsonschema` or `apt-get install python3-jsonschema`"
            .to_string(),
    )
}
