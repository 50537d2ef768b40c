//! The project's own automation: `cargo xtask test` and `cargo xtask bench`.
//!
//! `test` runs every test of the workspace once (one build), after making sure
//! the services the tests need are running: it finds PostgreSQL on
//! 127.0.0.1:5432 or starts the local cluster, and exports its URL as
//! `CUSTODY_TEST_DATABASE_URL`.
//!
//! `bench` builds the benchmark harness in release mode and runs it; every
//! figure is printed beside a baseline measured in the same run.

#![forbid(unsafe_code)]

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitCode};
use std::time::Duration;

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
        _ => {
            eprintln!("usage: cargo xtask <test|bench> [extra cargo arguments]");
            eprintln!("  test   run every test (finds or starts PostgreSQL first)");
            eprintln!("  bench  run the benchmarks in release mode");
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
    let mut command = cargo();
    command
        .args(["test", "--workspace", "--all-targets", "--locked"])
        .args(extra)
        .env("CUSTODY_TEST_DATABASE_URL", TEST_DATABASE_URL)
        // The power-cut test must run here, not report that it could not.
        .env("CUSTODY_REQUIRE_POWER_LOSS", "1");
    run(command)?;
    // Doc tests are a separate pass in cargo; they reuse the same build.
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--doc", "--locked"]);
    run(doc)
}

fn bench(extra: &[String]) -> Result<(), String> {
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
