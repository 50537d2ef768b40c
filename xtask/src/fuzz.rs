//! `cargo xtask fuzz --seconds N [--target NAME]... [--jobs J]`: runs the
//! libFuzzer targets of `fuzz/` (docs/fuzzing.md) for N seconds each and
//! prints, per target, the executions, the coverage libFuzzer reached
//! (`cov`: edges, `ft`: features) and the crashes; the exit status is
//! nonzero when any target crashed.
//!
//! It installs `cargo-fuzz` (`cargo install cargo-fuzz --locked`) when
//! `cargo fuzz` is missing, and builds with `--sanitizer none`, which the
//! stable toolchain accepts (AddressSanitizer needs nightly; the code under
//! test forbids `unsafe`, so what the fuzzer looks for is panics, overflows
//! and hangs, which need no sanitizer). The build goes to `fuzz/target`,
//! never the shared build directory: instrumented objects are of no use to
//! a normal build and the reverse.
//!
//! The committed seeds in `fuzz/corpus/TARGET` are only read: what a run
//! discovers goes to `fuzz/target/corpus/TARGET` (kept between runs), and a
//! crashing input to `fuzz/artifacts/TARGET/`, to become a regression test
//! of the crate that owns the parser.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The options of one `cargo xtask fuzz`.
struct Options {
    seconds: u64,
    targets: Vec<String>,
    jobs: u32,
}

/// What libFuzzer reported for one target.
struct Outcome {
    target: String,
    executions: Option<u64>,
    coverage: Option<u64>,
    features: Option<u64>,
    crashes: Vec<PathBuf>,
    status: String,
}

pub fn fuzz(arguments: &[String]) -> Result<(), String> {
    let options = parse_options(arguments)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("xtask lives in the repository root")?
        .to_path_buf();
    ensure_cargo_fuzz()?;
    let mut build = cargo_fuzz(&root);
    build.args(["build", "--sanitizer", "none"]);
    if options.targets.len() == 1 {
        build.args(&options.targets);
    }
    crate::run(build)?;
    let targets = if options.targets.is_empty() {
        list_targets(&root)?
    } else {
        options.targets.clone()
    };
    let started = std::time::SystemTime::now();
    let mut outcomes = Vec::new();
    for target in &targets {
        eprintln!("xtask fuzz: {target} for {} s", options.seconds);
        outcomes.push(run_target(&root, target, &options)?);
    }
    print_table(&outcomes, &options, started);
    let crashed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.crashes.is_empty()).collect();
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} target(s) crashed: {}; reproduce with `cargo fuzz run --sanitizer none TARGET FILE` \
             (CARGO_TARGET_DIR=fuzz/target)",
            crashed.len(),
            crashed
                .iter()
                .map(|o| o.target.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

fn parse_options(arguments: &[String]) -> Result<Options, String> {
    let mut options = Options {
        seconds: 60,
        targets: Vec::new(),
        jobs: 1,
    };
    let mut arguments = arguments.iter();
    while let Some(argument) = arguments.next() {
        let mut value = |name: &str| {
            arguments
                .next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match argument.as_str() {
            "--seconds" => {
                options.seconds = value("--seconds")?
                    .parse()
                    .map_err(|error| format!("--seconds: {error}"))?;
            }
            "--target" => options.targets.push(value("--target")?),
            "--jobs" => {
                options.jobs = value("--jobs")?
                    .parse()
                    .map_err(|error| format!("--jobs: {error}"))?;
                if options.jobs == 0 {
                    return Err("--jobs must be at least 1".to_string());
                }
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}`\nusage: cargo xtask fuzz --seconds N [--target NAME]... [--jobs J]"
                ))
            }
        }
    }
    Ok(options)
}

/// `cargo fuzz` in the repository root, building into `fuzz/target`.
fn cargo_fuzz(root: &Path) -> Command {
    let mut command = crate::cargo();
    command
        .arg("fuzz")
        .current_dir(root)
        .env("CARGO_TARGET_DIR", root.join("fuzz/target"))
        .env_remove("CARGO_BUILD_BUILD_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR");
    command
}

fn ensure_cargo_fuzz() -> Result<(), String> {
    let found = crate::cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if found {
        return Ok(());
    }
    eprintln!("xtask fuzz: installing cargo-fuzz");
    let mut install = crate::cargo();
    install.args(["install", "cargo-fuzz", "--locked"]);
    crate::run(install)
}

fn list_targets(root: &Path) -> Result<Vec<String>, String> {
    let output = cargo_fuzz(root)
        .arg("list")
        .output()
        .map_err(|error| format!("cannot run cargo fuzz list: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo fuzz list failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect())
}

fn artifacts(directory: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| {
                    ["crash-", "oom-", "timeout-", "leak-"]
                        .iter()
                        .any(|prefix| name.starts_with(prefix))
                })
        })
        .collect();
    found.sort();
    found
}

fn run_target(root: &Path, target: &str, options: &Options) -> Result<Outcome, String> {
    let work = root.join("fuzz/target/corpus").join(target);
    let seeds = root.join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&work).map_err(|error| format!("{}: {error}", work.display()))?;
    std::fs::create_dir_all(&seeds).map_err(|error| format!("{}: {error}", seeds.display()))?;
    let artifact_directory = root.join("fuzz/artifacts").join(target);
    let before = artifacts(&artifact_directory);
    let mut command = cargo_fuzz(root);
    command
        .args(["run", "--sanitizer", "none", target])
        .arg(&work)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={}", options.seconds))
        // An input that takes over 10 s is a hang worth reporting.
        .arg("-timeout=10")
        .arg("-print_final_stats=1");
    if options.jobs > 1 {
        command.arg(format!("-fork={}", options.jobs));
    }
    let output = command
        .output()
        .map_err(|error| format!("cannot run cargo fuzz run {target}: {error}"))?;
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    let log_path = root.join("fuzz/target/logs").join(format!("{target}.log"));
    if let Some(parent) = log_path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("{}: {error}", parent.display()))?;
    }
    std::fs::write(&log_path, &log).map_err(|error| format!("{}: {error}", log_path.display()))?;
    let crashes: Vec<PathBuf> = artifacts(&artifact_directory)
        .into_iter()
        .filter(|path| !before.contains(path))
        .collect();
    if !output.status.success() || !crashes.is_empty() {
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!(
            "xtask fuzz: {target} failed ({}); the last lines of {}:",
            output.status,
            log_path.display()
        );
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
    }
    let (executions, coverage, features) = final_stats(&log);
    let status = if !crashes.is_empty() {
        "crashed".to_string()
    } else if output.status.success() {
        "ok".to_string()
    } else {
        format!("failed ({})", output.status)
    };
    let mut crashes = crashes;
    if crashes.is_empty() && !output.status.success() {
        // A failure that left no artifact (a build error, a panic at start-up)
        // is a crash all the same.
        crashes.push(log_path);
    }
    Ok(Outcome {
        target: target.to_string(),
        executions,
        coverage,
        features,
        crashes,
        status,
    })
}

/// Executions, `cov` and `ft` from libFuzzer's output: the executions of
/// `Done N runs` (or of the last status line's `#N`, in fork mode), the
/// coverage of the last status line.
fn final_stats(log: &str) -> (Option<u64>, Option<u64>, Option<u64>) {
    let number_after = |line: &str, key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    let status = log
        .lines()
        .rev()
        .find(|line| line.starts_with('#') && line.contains(" cov: "));
    let coverage = status.and_then(|line| number_after(line, "cov: "));
    let features = status.and_then(|line| number_after(line, "ft: "));
    let done = log.lines().rev().find_map(|line| {
        line.strip_prefix("Done ")
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
    });
    let executions = done.or_else(|| {
        status.and_then(|line| {
            line.trim_start_matches('#')
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    });
    (executions, coverage, features)
}

fn show(value: Option<u64>) -> String {
    value.map_or_else(|| "?".to_string(), |value| value.to_string())
}

fn print_table(outcomes: &[Outcome], options: &Options, started: std::time::SystemTime) {
    let unix = started
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    println!(
        "fuzz: {} s per target, {} job(s), started at Unix time {unix}",
        options.seconds, options.jobs
    );
    println!(
        "{:<24} {:>12} {:>8} {:>8} {:>8}  status",
        "target", "executions", "cov", "ft", "crashes"
    );
    for outcome in outcomes {
        println!(
            "{:<24} {:>12} {:>8} {:>8} {:>8}  {}",
            outcome.target,
            show(outcome.executions),
            show(outcome.coverage),
            show(outcome.features),
            outcome.crashes.len(),
            outcome.status
        );
        for crash in &outcome.crashes {
            println!("    {}", crash.display());
        }
    }
}
