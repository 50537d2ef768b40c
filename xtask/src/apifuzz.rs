//! `cargo xtask apifuzz`: the API fuzzing campaign (issue 17).
//!
//! Runs [schemathesis](https://schemathesis.readthedocs.io) (pinned, from
//! PyPI, in a virtual environment under `target/schemathesis-venv`) against
//! the OpenAPI document of a real `custody serve`: the debug binary, on a
//! fresh data directory (the embedded store) and a free loopback port. The
//! admin token is made the way a new user makes it (`custody init --json`),
//! and a non-admin principal and its token with `custody principal add` and
//! `custody token create`. Schemathesis runs three passes: with the admin's
//! token, with no token, and with the non-admin's token.
//!
//! Afterwards the server must still answer `GET /healthz`; it is stopped
//! (SIGTERM) and `custody verify` must find the data directory clean. The
//! requests and server errors are counted by the server itself
//! (`custody_http_requests_total` on `/metrics`, by status), the failures by
//! schemathesis (its JSON report). Any server error, any failed check, a
//! dead server or a verify finding makes the command fail.
//!
//! See `docs/api-fuzzing.md` for the checks and why some are left out.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The schemathesis release the campaign was written against.
const SCHEMATHESIS_VERSION: &str = "4.32.5";
/// Where its virtual environment goes, under the workspace.
const VENV_DIR: &str = "target/schemathesis-venv";
/// Where each run's data directory and reports go, under the workspace.
const RUN_DIR: &str = "target/apifuzz";

/// What the schema cannot say, allowed per operation (schemathesis'
/// documented way, as `tests/e2e/openapi.rs` allows it): a rule about the
/// log's current size or a relation between two parameters is state, not
/// shape. The `[parameters]` table (a real case and evidence hash) is put
/// before it.
const CONFIG: &str = r#"
# GET /v1/log/entries: `start` after `end`, or beyond the log, is a 400.
[[operations]]
include-name = "GET /v1/log/entries"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

# A proof for a tree size the log has not reached, or an index outside it, is a 400.
[[operations]]
include-name = "GET /v1/log/proof/inclusion"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

[[operations]]
include-name = "GET /v1/log/proof/consistency"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

# GET /v1/export: a cursor beyond the log, or `until` before `since`, is a 400.
[[operations]]
include-name = "GET /v1/export"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]
"#;

/// Schemathesis' checks that are wrong for Custody by design; `--checks
/// all` runs every other one. Each is explained in `docs/api-fuzzing.md`.
pub const EXCLUDED_CHECKS: &[(&str, &str)] = &[(
    "object_level_authorization",
    "every principal may read every case (a system of record is read by auditors and reviewers; separation of duties is judged on writes), so one principal reading another's case is not a leak; what only admins may do is fuzzed by the non-admin pass (403)",
)];

/// Findings `custody verify` makes that the fuzzed data causes, tolerated
/// after a run (each is still printed, with its count).
pub const TOLERATED_FINDINGS: &[(&str, &str)] = &[
    (
        "evidence.link-unverified",
        "by design (invariant 8): the run asks the server to capture links to hosts that do not exist, which are recorded as unverified and raised as findings",
    ),
    (
        "evidence.blob-unreferenced",
        "a known defect, open: an upload whose write is refused (an Idempotency-Key reused for another body, say) leaves its blob, stored before the write was decided, with no event referencing it",
    ),
];

/// The command line of `cargo xtask apifuzz`.
struct Options {
    /// Schemathesis' `--max-examples`: test cases per operation and phase.
    examples: u32,
    /// The time budget of each pass, in seconds.
    seconds: u32,
    /// The checks to run, as schemathesis names them.
    checks: Vec<String>,
    /// The random seed, for a run that can be repeated.
    seed: Option<u64>,
}

const USAGE: &str =
    "usage: cargo xtask apifuzz [--examples N] [--seconds N] [--checks LIST|all] [--seed N]
  --examples N   test cases per operation and phase (default 50)
  --seconds N    time budget of each of the three passes (default 120)
  --checks LIST  comma-separated schemathesis checks, or `all` (default all, minus
                 the checks docs/api-fuzzing.md explains are wrong by design)
  --seed N       schemathesis' random seed";

fn parse_options(arguments: &[String]) -> Result<Options, String> {
    let mut options = Options {
        examples: 50,
        seconds: 120,
        checks: Vec::new(),
        seed: None,
    };
    let mut checks = "all".to_string();
    let mut rest = arguments.iter();
    while let Some(flag) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let number = |text: String| -> Result<u64, String> {
            text.parse::<u64>()
                .map_err(|_| format!("{flag}: `{text}` is not a number\n{USAGE}"))
        };
        match flag.as_str() {
            "--examples" => {
                options.examples = u32::try_from(number(value()?)?)
                    .map_err(|_| format!("--examples: too large\n{USAGE}"))?;
            }
            "--seconds" => {
                options.seconds = u32::try_from(number(value()?)?)
                    .map_err(|_| format!("--seconds: too large\n{USAGE}"))?;
            }
            "--checks" => checks = value()?,
            "--seed" => options.seed = Some(number(value()?)?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if options.examples == 0 || options.seconds == 0 {
        return Err(format!(
            "--examples and --seconds must be at least 1\n{USAGE}"
        ));
    }
    options.checks = if checks == "all" {
        all_checks()
    } else {
        checks
            .split(',')
            .map(str::trim)
            .filter(|check| !check.is_empty())
            .map(str::to_string)
            .collect()
    };
    if options.checks.is_empty() {
        return Err(format!("--checks names no check\n{USAGE}"));
    }
    Ok(options)
}

/// Every check of schemathesis 4 that applies to an OpenAPI document,
/// minus [`EXCLUDED_CHECKS`].
fn all_checks() -> Vec<String> {
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "positive_data_acceptance",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
        "use_after_free",
        "ensure_resource_availability",
        "ignored_auth",
        "object_level_authorization",
    ]
    .iter()
    .filter(|check| {
        !EXCLUDED_CHECKS
            .iter()
            .any(|(excluded, _)| excluded == *check)
    })
    .map(|check| check.to_string())
    .collect()
}

/// One schemathesis pass: who it authenticates as.
struct Pass {
    name: &'static str,
    token: Option<String>,
}

/// What one pass found, from schemathesis' JSON report.
struct PassResult {
    name: &'static str,
    test_cases: u64,
    /// `(failure title, count, operations)` of each kind of failure.
    failures: Vec<(String, u64, Vec<String>)>,
    errors: Vec<(String, u64)>,
    seconds: f64,
    exit_code: i32,
}

/// `cargo xtask apifuzz`.
pub fn apifuzz(arguments: &[String]) -> Result<(), String> {
    let options = parse_options(arguments)?;
    let workspace = workspace()?;
    let schemathesis = ensure_schemathesis(&workspace)?;
    let custody = build_custody(&workspace)?;

    let run = workspace.join(RUN_DIR);
    if run.exists() {
        std::fs::remove_dir_all(&run)
            .map_err(|error| format!("cannot clear {}: {error}", run.display()))?;
    }
    let data = run.join("data");
    std::fs::create_dir_all(&run)
        .map_err(|error| format!("cannot create {}: {error}", run.display()))?;

    // The admin's token, as a new user gets it (README: `custody init --json`).
    let init = command_output(
        Command::new(&custody)
            .args(["init", "--json", "--data"])
            .arg(&data),
    )?;
    let init: serde_json::Value = serde_json::from_str(&init)
        .map_err(|error| format!("`custody init --json` printed no JSON: {error}"))?;
    let admin_token = init["admin_token"]
        .as_str()
        .ok_or("`custody init --json` printed no admin_token")?
        .to_string();

    let started = Instant::now();
    let mut server = Server::start(&custody, &data, &run.join("server.log"))?;
    let outcome = campaign(
        &options,
        &schemathesis,
        &custody,
        &server,
        &admin_token,
        &run,
    );
    let alive = server.healthy();
    let stopped = server.stop();
    let outcome = outcome?;

    let verify = Command::new(&custody)
        .args(["verify", "--json", "--data"])
        .arg(&data)
        .output()
        .map_err(|error| format!("cannot run custody verify: {error}"))?;
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap_or_default();
    let mut findings: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for finding in report["findings"].as_array().into_iter().flatten() {
        // Info findings are not faults (the young tail of the log that the
        // next checkpoint covers, for one).
        if finding["severity"] == "info" {
            continue;
        }
        let code = finding["code"].as_str().unwrap_or("?").to_string();
        *findings.entry(code).or_insert(0) += 1;
    }
    let tolerated = |code: &str| TOLERATED_FINDINGS.iter().any(|(known, _)| *known == code);
    let verify_ran = report["checked"].is_object();
    let verify_clean = verify_ran && findings.keys().all(|code| tolerated(code));
    let describe = |filter: &dyn Fn(&str) -> bool| {
        findings
            .iter()
            .filter(|(code, _)| filter(code))
            .map(|(code, count)| format!("{code} x{count}"))
            .collect::<Vec<_>>()
            .join(", ")
    };

    // The summary.
    let (requests, server_errors, by_status) = outcome.counts;
    let failed_checks: u64 = outcome
        .passes
        .iter()
        .flat_map(|pass| pass.failures.iter().map(|(_, count, _)| count))
        .sum();
    let schema_violations: u64 = outcome
        .passes
        .iter()
        .flat_map(|pass| pass.failures.iter())
        .filter(|(title, _, _)| is_schema_violation(title))
        .map(|(_, count, _)| count)
        .sum();
    let errors: u64 = outcome
        .passes
        .iter()
        .flat_map(|pass| pass.errors.iter().map(|(_, count)| count))
        .sum();
    println!();
    println!("apifuzz summary (schemathesis {SCHEMATHESIS_VERSION})");
    println!("  checks:            {}", options.checks.join(","));
    println!(
        "  examples:          {} per operation and phase; budget {} s per pass; seed {}",
        options.examples,
        options.seconds,
        options
            .seed
            .map_or_else(|| "random".to_string(), |seed| seed.to_string())
    );
    for pass in &outcome.passes {
        println!(
            "  pass {:<10} {} test cases in {:.0} s, {} failures, {} errors (schemathesis exit {})",
            pass.name,
            pass.test_cases,
            pass.seconds,
            pass.failures.iter().map(|(_, count, _)| count).sum::<u64>(),
            pass.errors.iter().map(|(_, count)| count).sum::<u64>(),
            pass.exit_code
        );
        for (title, count, operations) in &pass.failures {
            println!("    failure: {title} x{count}: {}", operations.join(", "));
        }
        for (title, count) in &pass.errors {
            println!("    error: {title} x{count}");
        }
    }
    println!("  requests served:   {requests} (by status: {by_status})");
    println!("  server errors:     {server_errors} (5xx answered, counted by the server)");
    println!("  schema violations: {schema_violations}");
    println!("  failed checks:     {failed_checks}");
    println!("  schemathesis errors: {errors}");
    println!(
        "  server afterwards: {}",
        if alive {
            "alive (GET /healthz 200)"
        } else {
            "NOT answering /healthz"
        }
    );
    println!("  server stopped:    {stopped}");
    println!(
        "  verify:            exit {:?}, ok {}; {}",
        verify.status.code(),
        report["ok"],
        if !verify_ran {
            format!("DID NOT RUN: {}", String::from_utf8_lossy(&verify.stderr))
        } else if verify_clean {
            "clean apart from the tolerated findings".to_string()
        } else {
            format!("NOT clean: {}", describe(&|code| !tolerated(code)))
        }
    );
    println!(
        "  tolerated findings: {} (docs/api-fuzzing.md)",
        describe(&|code| tolerated(code))
    );
    println!(
        "  duration:          {:.0} s (data and reports under {})",
        started.elapsed().as_secs_f64(),
        run.display()
    );
    let stopped_cleanly = !stopped.starts_with("KILLED");
    if server_errors == 0
        && failed_checks == 0
        && errors == 0
        && alive
        && stopped_cleanly
        && verify_clean
    {
        Ok(())
    } else {
        Err("the API fuzzing campaign found problems (see the summary above)".to_string())
    }
}

/// Whether a schemathesis failure title says a response contradicts the
/// document (its status, content type, headers or body).
fn is_schema_violation(title: &str) -> bool {
    let title = title.to_ascii_lowercase();
    title.contains("schema")
        || title.contains("undocumented")
        || title.contains("content type")
        || title.contains("content-type")
        || title.contains("header")
        || title.contains("json")
}

struct Campaign {
    passes: Vec<PassResult>,
    /// Requests the server answered, those answered 5xx, and the counts by
    /// status as text.
    counts: (u64, u64, String),
}

fn campaign(
    options: &Options,
    schemathesis: &Path,
    custody: &Path,
    server: &Server,
    admin_token: &str,
    run: &Path,
) -> Result<Campaign, String> {
    // A non-admin, made as an admin makes one (README).
    let client = |args: &[&str]| -> Result<String, String> {
        command_output(
            Command::new(custody)
                .args(args)
                .env("CUSTODY_URL", &server.url)
                .env("CUSTODY_TOKEN", admin_token),
        )
    };
    client(&["principal", "add", "fuzz-user", "--group", "requesters"])?;
    let user_token = client(&["token", "create", "fuzz-user"])?
        .trim()
        .to_string();
    // Real identifiers, so that operations on a case reach their logic
    // rather than 404: a case the non-admin requested, with a piece of
    // evidence.
    let as_user = |args: &[&str]| -> Result<String, String> {
        command_output(
            Command::new(custody)
                .args(args)
                .env("CUSTODY_URL", &server.url)
                .env("CUSTODY_TOKEN", &user_token),
        )
    };
    let case_id = as_user(&[
        "request",
        "--subject",
        "user:yan",
        "--entitlement",
        "reader",
    ])?
    .trim()
    .to_string();
    let evidence_file = run.join("ticket.txt");
    std::fs::write(&evidence_file, "approved in the change board\n")
        .map_err(|error| format!("cannot write {}: {error}", evidence_file.display()))?;
    let evidence_path = evidence_file.to_string_lossy().into_owned();
    as_user(&["attach", &case_id, &evidence_path])?;
    let listed: serde_json::Value =
        serde_json::from_str(&as_user(&["evidence", "list", &case_id, "--json"])?)
            .map_err(|error| format!("`custody evidence list --json`: {error}"))?;
    let sha256 = listed["evidence"][0]["payload"]["sha256"]
        .as_str()
        .ok_or_else(|| format!("no evidence hash in {listed}"))?
        .to_string();
    let config = run.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!("[parameters]\ncase_id = \"{case_id}\"\nsha256 = \"{sha256}\"\n{CONFIG}"),
    )
    .map_err(|error| format!("cannot write {}: {error}", config.display()))?;

    let before = server.request_counts()?;
    let passes = [
        Pass {
            name: "admin",
            token: Some(admin_token.to_string()),
        },
        Pass {
            name: "no-token",
            token: None,
        },
        Pass {
            name: "non-admin",
            token: Some(user_token),
        },
    ];
    let mut results = Vec::new();
    for pass in passes {
        results.push(run_pass(
            options,
            schemathesis,
            &config,
            server,
            &pass,
            run,
        )?);
        if !server.healthy() {
            return Err(format!(
                "the server stopped answering /healthz during the {} pass (its log: {})",
                pass.name,
                run.join("server.log").display()
            ));
        }
    }
    let after = server.request_counts()?;
    let mut requests = 0;
    let mut server_errors = 0;
    let mut by_status = Vec::new();
    for (status, count) in &after {
        let count = count - before.get(status).copied().unwrap_or(0);
        if count == 0 {
            continue;
        }
        requests += count;
        if status.starts_with('5') {
            server_errors += count;
        }
        by_status.push(format!("{status}: {count}"));
    }
    Ok(Campaign {
        passes: results,
        counts: (requests, server_errors, by_status.join(", ")),
    })
}

fn run_pass(
    options: &Options,
    schemathesis: &Path,
    config: &Path,
    server: &Server,
    pass: &Pass,
    run: &Path,
) -> Result<PassResult, String> {
    let report = run.join(format!("schemathesis-{}.json", pass.name));
    let mut command = Command::new(schemathesis);
    command
        // Its cache (`.schemathesis/`) goes with the run, not in the tree.
        .current_dir(run)
        .arg("--config-file")
        .arg(config)
        .arg("run")
        .arg(format!("{}/v1/openapi.json", server.url))
        .args(["--checks", &options.checks.join(",")])
        .args(["--max-examples", &options.examples.to_string()])
        .args(["--max-time", &options.seconds.to_string()])
        // One worker: with two, Hypothesis parses lambdas' source in two
        // threads at once, which CPython 3.11 can fail ("AST constructor
        // recursion depth mismatch", a runtime error of the run).
        .args(["--workers", "1"])
        .args(["--request-timeout", "30"])
        .args(["--generation-database", "none"])
        .args(["--suppress-health-check", "all"])
        .args(["--report", "json"])
        .arg("--report-json-path")
        .arg(&report)
        .arg("--no-color")
        // No proxy from the environment between schemathesis and loopback.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    if let Some(seed) = options.seed {
        command.args(["--seed", &seed.to_string()]);
    }
    if let Some(token) = &pass.token {
        command.args(["--header", &format!("Authorization: Bearer {token}")]);
        // Revoking the pass's own token would end the pass (everything
        // after it a 401); revocation with no token is fuzzed in the
        // `no-token` pass, and checked in tests/e2e/tokens.rs.
        command.args(["--exclude-operation-id", "revoke_token"]);
    }
    eprintln!(
        "xtask: schemathesis pass `{}` against {} (up to {} s)",
        pass.name, server.url, options.seconds
    );
    // Its own report goes to the terminal, with the token masked.
    let status = command
        .status()
        .map_err(|error| format!("cannot run {}: {error}", schemathesis.display()))?;
    let text = std::fs::read_to_string(&report).map_err(|error| {
        format!(
            "schemathesis ({status}) wrote no report {}: {error}",
            report.display()
        )
    })?;
    let document: serde_json::Value = serde_json::from_str(&text)
        .map_err(|error| format!("{}: not JSON: {error}", report.display()))?;
    let failures = document["failures"]
        .as_array()
        .map(|failures| {
            failures
                .iter()
                .map(|failure| {
                    (
                        failure["title"].as_str().unwrap_or("?").to_string(),
                        failure["count"].as_u64().unwrap_or(1),
                        failure["operations"]
                            .as_array()
                            .map(|operations| {
                                operations
                                    .iter()
                                    .map(|operation| {
                                        operation
                                            .as_str()
                                            .map_or_else(|| operation.to_string(), str::to_string)
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let errors = document["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| {
                    (
                        error["title"].as_str().unwrap_or("?").to_string(),
                        error["count"].as_u64().unwrap_or(1),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(PassResult {
        name: pass.name,
        test_cases: document["test_cases"]["generated"].as_u64().unwrap_or(0),
        failures,
        errors,
        seconds: document["running_time"].as_f64().unwrap_or(0.0),
        exit_code: status.code().unwrap_or(-1),
    })
}

/// The workspace root (xtask's parent directory).
fn workspace() -> Result<PathBuf, String> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "xtask has no parent directory".to_string())
}

/// Creates the virtual environment and installs the pinned schemathesis
/// when it is missing or another version; returns its program.
fn ensure_schemathesis(workspace: &Path) -> Result<PathBuf, String> {
    let venv = workspace.join(VENV_DIR);
    let program = venv.join("bin/schemathesis");
    let installed = Command::new(&program)
        .arg("--version")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string());
    if installed
        .as_deref()
        .is_some_and(|version| version.ends_with(&format!(" {SCHEMATHESIS_VERSION}")))
    {
        return Ok(program);
    }
    eprintln!(
        "xtask: installing schemathesis {SCHEMATHESIS_VERSION} in {}",
        venv.display()
    );
    if !venv.join("bin/pip").exists() {
        let mut create = Command::new("python3");
        create.args(["-m", "venv"]).arg(&venv);
        crate::run(create).map_err(|error| {
            format!("{error} (is python3-venv installed? apt-get install python3-venv)")
        })?;
    }
    let mut install = Command::new(venv.join("bin/pip"));
    install.args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("schemathesis=={SCHEMATHESIS_VERSION}"),
    ]);
    crate::run(install)?;
    if program.exists() {
        Ok(program)
    } else {
        Err(format!(
            "pip installed schemathesis but {} is missing",
            program.display()
        ))
    }
}

/// Builds the `custody` binary (debug, sharing the tests' build) and
/// returns its path.
fn build_custody(workspace: &Path) -> Result<PathBuf, String> {
    let mut build = crate::cargo();
    build.args(["build", "--locked", "--bin", "custody"]);
    crate::run(build)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|target| {
            if target.is_absolute() {
                target
            } else {
                workspace.join(target)
            }
        })
        .unwrap_or_else(|| workspace.join("target"));
    let binary = target.join("debug/custody");
    if binary.exists() {
        Ok(binary)
    } else {
        Err(format!(
            "cargo built custody but {} is missing",
            binary.display()
        ))
    }
}

/// Runs `command`; its standard output when it succeeds.
fn command_output(command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|error| format!("cannot run {command:?}: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A `custody serve` this command started.
struct Server {
    child: Child,
    /// `host:port`.
    address: String,
    /// `http://host:port`.
    url: String,
}

impl Server {
    /// Starts `custody serve` on `data` and a free loopback port (port 0:
    /// the server prints `listening on ADDR` once bound); its standard
    /// error goes on to `log`.
    fn start(custody: &Path, data: &Path, log: &Path) -> Result<Server, String> {
        let mut child = Command::new(custody)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot start custody serve: {error}"))?;
        let stderr = child.stderr.take().ok_or("custody serve has no stderr")?;
        let mut lines = BufReader::new(stderr);
        let mut address = None;
        let mut line = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Some(found) = line.trim().strip_prefix("listening on ") {
                        address = Some(found.to_string());
                        break;
                    }
                }
            }
        }
        let Some(address) = address else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "custody serve did not say where it listens: {line}"
            ));
        };
        // The rest of its log goes to a file, read on by a thread so that
        // the server never blocks on a full pipe.
        let mut file = std::fs::File::create(log)
            .map_err(|error| format!("cannot create {}: {error}", log.display()))?;
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            let mut lines = lines;
            loop {
                match lines.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(read) => {
                        if file.write_all(&buffer[..read]).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let url = format!("http://{address}");
        Ok(Server {
            child,
            address,
            url,
        })
    }

    /// `GET path` over plain HTTP/1.1; the status and body.
    fn get(&self, path: &str) -> Result<(u16, String), String> {
        let mut stream = TcpStream::connect(&self.address)
            .map_err(|error| format!("cannot connect to {}: {error}", self.address))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|error| error.to_string())?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.address
        )
        .map_err(|error| format!("GET {path}: {error}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .map_err(|error| format!("GET {path}: {error}"))?;
        let response = String::from_utf8_lossy(&response).into_owned();
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|status| status.parse().ok())
            .ok_or_else(|| format!("GET {path}: not an HTTP response"))?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Whether it answers `GET /healthz` with 200.
    fn healthy(&self) -> bool {
        self.get("/healthz").is_ok_and(|(status, _)| status == 200)
    }

    /// `custody_http_requests_total` from `/metrics`, summed by status.
    fn request_counts(&self) -> Result<std::collections::BTreeMap<String, u64>, String> {
        let (status, body) = self.get("/metrics")?;
        if status != 200 {
            return Err(format!("GET /metrics answered {status}"));
        }
        let mut counts = std::collections::BTreeMap::new();
        // Chunked or not, each sample is a line of its own.
        for line in body.lines() {
            let Some(rest) = line.strip_prefix("custody_http_requests_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            let Some(status) = labels
                .split(',')
                .find_map(|label| label.strip_prefix("status=\""))
                .map(|status| status.trim_end_matches('"').to_string())
            else {
                continue;
            };
            let value: f64 = value.trim().parse().unwrap_or(0.0);
            // Counters are whole numbers.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let value = value as u64;
            *counts.entry(status).or_insert(0) += value;
        }
        Ok(counts)
    }

    /// Stops it with SIGTERM (a graceful shutdown), or SIGKILL when it has
    /// not exited after 30 seconds; says how it ended.
    fn stop(&mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!("on SIGTERM ({status})");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        "KILLED: it did not stop within 30 s of SIGTERM".to_string()
    }
}
