//! Data-driven workflow scenarios: each file in `tests/scenarios/` is a
//! governed-workflow story (an edge case done right, or done wrong), run
//! through the real CLI against a real server, once on the embedded store and
//! once on PostgreSQL. The format is documented in
//! `tests/scenarios/README.md`. A scenario that moves time (`advance`) runs
//! its server in the test's process on a test clock (`common::in_process`).

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use common::{stderr, stdout, Server, TestStore};
use serde_json::Value;

/// Scenarios run at once (each has its own server and store).
const PARALLEL: usize = 4;

#[test]
fn scenarios_on_the_embedded_store() {
    run_all(TestStore::Embedded);
}

#[test]
fn scenarios_on_postgres() {
    run_all(TestStore::Postgres);
}

fn scenario_files() -> Vec<PathBuf> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .expect("tests/scenarios exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "scenario"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 18,
        "expected the scenario files in {}, found {}",
        directory.display(),
        files.len()
    );
    files
}

fn run_all(store: TestStore) {
    let files = scenario_files();
    let mut failures = Vec::new();
    for chunk in files.chunks(PARALLEL) {
        let results: Vec<(PathBuf, Result<(), String>)> = std::thread::scope(|scope| {
            let running: Vec<_> = chunk
                .iter()
                .map(|file| {
                    scope.spawn(move || {
                        let outcome = std::panic::catch_unwind(|| run_scenario(file, store))
                            .unwrap_or_else(|panic| {
                                Err(panic
                                    .downcast_ref::<String>()
                                    .cloned()
                                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                                    .unwrap_or_else(|| "panicked".to_string()))
                            });
                        (file.clone(), outcome)
                    })
                })
                .collect();
            running
                .into_iter()
                .map(|handle| handle.join().expect("scenario thread"))
                .collect()
        });
        for (file, outcome) in results {
            if let Err(message) = outcome {
                failures.push(format!(
                    "{} ({store:?}):\n{message}",
                    file.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} scenario(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// One parsed step of a scenario.
#[derive(Debug)]
enum Step {
    /// `as NAME ARGS... => ok [BIND[=PATH]]` or `=> refused RULE`.
    Run {
        who: String,
        args: Vec<String>,
        expect: Expect,
    },
    /// `advance DURATION`: the test clock moves forward, a scan interval
    /// at a time, with a scan at every step.
    Advance(i64),
    /// `state CASE STATE`.
    State(String, String),
    /// `show CASE PATH VALUE`: a field of `custody show CASE --json`.
    Show(String, String, String),
    /// `wait CASE PATH VALUE`: like `show`, polled until it holds (the
    /// ledger's timers act on their own schedule), for at most 30 seconds.
    Wait(String, String, String),
    /// `check VAR PATH VALUE`: a field of a bound JSON output.
    Check(String, String, String),
    /// `findings [CODE[@CASE]]...`: exactly these verify findings.
    Findings(Vec<String>),
    /// `restart`: restart the server with the `config2` lines as its config.
    Restart,
}

#[derive(Debug)]
enum Expect {
    Ok {
        bind: Option<(String, Option<String>)>,
    },
    Refused(String),
}

struct Scenario {
    config: Vec<String>,
    config2: Vec<String>,
    principals: Vec<(String, Vec<String>)>,
    steps: Vec<(usize, Step)>,
}

fn parse(text: &str) -> Result<Scenario, String> {
    let mut scenario = Scenario {
        config: Vec::new(),
        config2: Vec::new(),
        principals: Vec::new(),
        steps: Vec::new(),
    };
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let error = |message: &str| format!("line {number}: {message}: {line}");
        let (keyword, rest) = trimmed.split_once(' ').unwrap_or((trimmed, ""));
        match keyword {
            "config" => scenario.config.push(rest.to_string()),
            "config2" => scenario.config2.push(rest.to_string()),
            "principal" => {
                let words = split_words(rest).map_err(|message| error(&message))?;
                let (name, args) = words.split_first().ok_or_else(|| error("no name"))?;
                scenario.principals.push((name.clone(), args.to_vec()));
            }
            "as" => {
                let (command, expectation) = rest
                    .split_once(" => ")
                    .ok_or_else(|| error("an `as` step needs `=> ok` or `=> refused RULE`"))?;
                let words = split_words(command).map_err(|message| error(&message))?;
                let (who, args) = words.split_first().ok_or_else(|| error("no principal"))?;
                let expectation: Vec<&str> = expectation.split_whitespace().collect();
                let expect = match expectation.as_slice() {
                    ["ok"] => Expect::Ok { bind: None },
                    ["ok", bind] => Expect::Ok {
                        bind: Some(match bind.split_once('=') {
                            Some((name, path)) => (name.to_string(), Some(path.to_string())),
                            None => (bind.to_string(), None),
                        }),
                    },
                    ["refused", rule] => Expect::Refused(rule.to_string()),
                    _ => return Err(error("expected `ok [NAME[=PATH]]` or `refused RULE`")),
                };
                scenario.steps.push((
                    number,
                    Step::Run {
                        who: who.clone(),
                        args: args.to_vec(),
                        expect,
                    },
                ));
            }
            "advance" => scenario.steps.push((
                number,
                Step::Advance(
                    custody_core::model::parse_duration(rest.trim())
                        .map_err(|_| error("a duration such as 90s, 30m or 5h"))?
                        as i64,
                ),
            )),
            "state" | "show" | "wait" | "check" => {
                let words = split_words(rest).map_err(|message| error(&message))?;
                let step = match (keyword, words.as_slice()) {
                    ("state", [case, state]) => Step::State(case.clone(), state.clone()),
                    ("show", [case, path, value]) => {
                        Step::Show(case.clone(), path.clone(), value.clone())
                    }
                    ("wait", [case, path, value]) => {
                        Step::Wait(case.clone(), path.clone(), value.clone())
                    }
                    ("check", [var, path, value]) => {
                        Step::Check(var.clone(), path.clone(), value.clone())
                    }
                    _ => return Err(error("wrong number of words")),
                };
                scenario.steps.push((number, step));
            }
            "findings" => scenario.steps.push((
                number,
                Step::Findings(rest.split_whitespace().map(str::to_string).collect()),
            )),
            "restart" => scenario.steps.push((number, Step::Restart)),
            _ => return Err(error("unknown keyword")),
        }
    }
    Ok(scenario)
}

/// Splits on whitespace; double quotes group words (no escapes).
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut any = false;
    for character in text.chars() {
        match character {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            c => {
                current.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err("unbalanced quote".to_string());
    }
    if any {
        words.push(current);
    }
    Ok(words)
}

/// The value at a dotted path (`events.0.kind`); array indexes are numbers,
/// `len` is the length of an array.
fn at_path<'a>(value: &'a Value, path: &str) -> Option<std::borrow::Cow<'a, Value>> {
    let mut current = value;
    let parts: Vec<&str> = path.split('.').collect();
    for (position, part) in parts.iter().enumerate() {
        if *part == "len" && position == parts.len() - 1 {
            return current
                .as_array()
                .map(|items| std::borrow::Cow::Owned(Value::from(items.len())));
        }
        current = match part.parse::<usize>() {
            Ok(index) => current.get(index)?,
            Err(_) => current.get(part)?,
        };
    }
    Some(std::borrow::Cow::Borrowed(current))
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn run_scenario(file: &Path, store: TestStore) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|error| error.to_string())?;
    let scenario = parse(&text)?;
    let config = (!scenario.config.is_empty()).then(|| scenario.config.join("\n") + "\n");
    let moves_time = scenario
        .steps
        .iter()
        .any(|(_, step)| matches!(step, Step::Advance(_)));
    let (mut server, _) = if moves_time {
        Server::start_in_process(store, config.as_deref())
    } else {
        Server::start_on(store, None, config.as_deref())
    };
    let mut tokens: HashMap<String, String> = HashMap::new();
    tokens.insert("admin".to_string(), server.admin_token.clone());
    for (name, args) in &scenario.principals {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tokens.insert(name.clone(), server.principal_with(name, &args));
    }
    let mut vars: HashMap<String, String> = HashMap::new();
    let substitute = |word: &str, vars: &HashMap<String, String>| -> Result<String, String> {
        let mut out = word.to_string();
        // Longest names first, so $CASE2 is not read as $CASE followed by 2.
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort_by_key(|name| std::cmp::Reverse(name.len()));
        for name in names {
            out = out.replace(&format!("${name}"), &vars[name]);
        }
        if out.contains('$') {
            return Err(format!("unbound variable in `{word}`"));
        }
        Ok(out)
    };
    for (line, step) in &scenario.steps {
        let fail = |message: String| Err(format!("line {line}: {message}"));
        match step {
            Step::Run { who, args, expect } => {
                let token = tokens
                    .get(who)
                    .ok_or_else(|| format!("line {line}: unknown principal {who}"))?;
                let args = args
                    .iter()
                    .map(|arg| substitute(arg, &vars))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|message| format!("line {line}: {message}"))?;
                let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
                // A refused step must change nothing: take the ledger's state
                // before it, to compare after.
                let before = match expect {
                    Expect::Refused(_) => Some(Snapshot::take(&server, &args)),
                    Expect::Ok { .. } => None,
                };
                let output = server.cli(Some(token), &arg_refs);
                let shown = format!(
                    "`custody {}` as {who} exited {:?}\nstdout: {}\nstderr: {}",
                    args.join(" "),
                    output.status.code(),
                    stdout(&output),
                    stderr(&output)
                );
                match expect {
                    Expect::Ok { bind } => {
                        if !output.status.success() {
                            return fail(format!("expected success; {shown}"));
                        }
                        if let Some((name, path)) = bind {
                            let value = match path {
                                None => stdout(&output).trim().to_string(),
                                Some(path) => {
                                    let json: Value = serde_json::from_str(&stdout(&output))
                                        .map_err(|error| {
                                            format!("line {line}: output is not JSON ({error}); {shown}")
                                        })?;
                                    if path == "." {
                                        json.to_string()
                                    } else {
                                        at_path(&json, path).map(|v| as_text(&v)).ok_or_else(
                                            || {
                                                format!(
                                                    "line {line}: no {path} in the output; {shown}"
                                                )
                                            },
                                        )?
                                    }
                                }
                            };
                            vars.insert(name.clone(), value);
                        }
                    }
                    Expect::Refused(rule) => {
                        if output.status.code() != Some(1)
                            || !stderr(&output).contains(rule.as_str())
                        {
                            return fail(format!("expected a refusal naming {rule}; {shown}"));
                        }
                        if let Some(before) = before {
                            if let Err(message) = before.unchanged(&server) {
                                return fail(format!(
                                    "the refused step changed the ledger: {message}; {shown}"
                                ));
                            }
                        }
                    }
                }
            }
            Step::Advance(seconds) => {
                server.advance(*seconds);
            }
            Step::State(case, state) => {
                let case = substitute(case, &vars)?;
                let document = server.show(&server.admin_token, &case);
                if document["state"] != state.as_str() {
                    return fail(format!(
                        "case {case} is {} not {state}\n{document:#}",
                        document["state"]
                    ));
                }
            }
            Step::Show(case, path, value) => {
                let case = substitute(case, &vars)?;
                let value = substitute(value, &vars)?;
                let document = server.show(&server.admin_token, &case);
                let found = at_path(&document, path).map(|v| as_text(&v));
                if found.as_deref() != Some(value.as_str()) {
                    return fail(format!(
                        "show {case} {path}: expected {value}, found {found:?}\n{document:#}"
                    ));
                }
            }
            Step::Wait(case, path, value) => {
                let case = substitute(case, &vars)?;
                let value = substitute(value, &vars)?;
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                loop {
                    let document = server.show(&server.admin_token, &case);
                    let found = at_path(&document, path).map(|v| as_text(&v));
                    if found.as_deref() == Some(value.as_str()) {
                        break;
                    }
                    if std::time::Instant::now() > deadline {
                        return fail(format!(
                            "wait {case} {path}: {value} never came, last {found:?}\n{document:#}"
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            Step::Check(var, path, value) => {
                let value = substitute(value, &vars)?;
                let json: Value = serde_json::from_str(
                    vars.get(var)
                        .ok_or_else(|| format!("line {line}: {var} is not bound"))?,
                )
                .map_err(|error| format!("line {line}: {var} is not JSON: {error}"))?;
                let found = at_path(&json, path).map(|v| as_text(&v));
                if found.as_deref() != Some(value.as_str()) {
                    return fail(format!(
                        "{var} {path}: expected {value}, found {found:?}\n{json:#}"
                    ));
                }
            }
            Step::Findings(expected) => {
                let (output, report) = server.verify_with(&[]);
                let mut actual: Vec<(String, String)> = report["findings"]
                    .as_array()
                    .ok_or_else(|| format!("line {line}: verify printed no findings list"))?
                    .iter()
                    // Info findings (the live log's young tail) say nothing is wrong.
                    .filter(|finding| finding["severity"] != "info")
                    .map(|finding| {
                        (
                            as_text(&finding["code"]),
                            finding["case_id"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
                let described = format!("{report:#}");
                for wanted in expected {
                    let (code, case) = match wanted.split_once('@') {
                        Some((code, case)) => (code.to_string(), Some(substitute(case, &vars)?)),
                        None => (wanted.clone(), None),
                    };
                    let position = actual.iter().position(|(found, found_case)| {
                        *found == code && case.as_ref().is_none_or(|case| case == found_case)
                    });
                    match position {
                        Some(position) => {
                            actual.remove(position);
                        }
                        None => {
                            return fail(format!(
                                "verify did not report {wanted}; report: {described}"
                            ))
                        }
                    }
                }
                if !actual.is_empty() {
                    return fail(format!(
                        "verify reported findings the scenario does not expect: {actual:?}; report: {described}"
                    ));
                }
                let expected_exit = if expected.is_empty() { 0 } else { 1 };
                if output.status.code() != Some(expected_exit) {
                    return fail(format!(
                        "verify exited {:?}, expected {expected_exit}; report: {described}",
                        output.status.code()
                    ));
                }
            }
            Step::Restart => {
                let path = server
                    .config_path()
                    .ok_or_else(|| format!("line {line}: `restart` needs `config` lines"))?;
                std::fs::write(&path, scenario.config2.join("\n") + "\n")
                    .map_err(|error| error.to_string())?;
                server.restart_configured();
            }
        }
    }
    Ok(())
}

/// What a refused step must leave as it was: the log's size, the number of
/// cases, and the events (count and head) of every case the step names.
struct Snapshot {
    log_size: u64,
    cases: usize,
    /// Case ID → its events' IDs in sequence order.
    events: Vec<(String, Vec<String>)>,
}

/// The `event_id`s of a case's events, in sequence order.
fn event_ids(server: &Server, case: &str) -> Vec<String> {
    server
        .events(&server.admin_token, case)
        .iter()
        .map(|event| as_text(&event["event_id"]))
        .collect()
}

impl Snapshot {
    fn take(server: &Server, args: &[String]) -> Snapshot {
        Snapshot {
            log_size: server.log_size(),
            cases: server.case_count(),
            events: args
                .iter()
                .filter(|arg| common::is_case_id(arg))
                .map(|case| (case.clone(), event_ids(server, case)))
                .collect(),
        }
    }

    /// Compares the ledger with the snapshot. The ledger's own timers (the
    /// `system` actor: escalations, `revocation_due`, delivery attempts) run
    /// on their own schedule and may append meanwhile; every entry appended
    /// since the snapshot must be one of theirs, and each case named by the
    /// step must have exactly its old events followed by those.
    fn unchanged(&self, server: &Server) -> Result<(), String> {
        // The cases' events first, then the log: every event a case gained
        // is then in the log range read below.
        let after: Vec<(&String, &Vec<String>, Vec<String>)> = self
            .events
            .iter()
            .map(|(case, before)| (case, before, event_ids(server, case)))
            .collect();
        let log_size = server.log_size();
        if log_size < self.log_size {
            return Err(format!(
                "the log shrank from {} to {log_size}",
                self.log_size
            ));
        }
        let mut by_timers: Vec<String> = Vec::new();
        if log_size > self.log_size {
            let entries = server.get_json(&format!(
                "/v1/log/entries?start={}&end={log_size}",
                self.log_size
            ));
            for entry in entries["entries"].as_array().into_iter().flatten() {
                let leaf = base64::engine::general_purpose::STANDARD
                    .decode(as_text(&entry["leaf"]))
                    .map_err(|error| format!("log entry is not base64: {error}"))?;
                let event: Value = serde_json::from_slice(&leaf)
                    .map_err(|error| format!("log entry is not JSON: {error}"))?;
                if event["actor"]["principal"] != "system" {
                    return Err(format!(
                        "the log grew from {} to {log_size} with an event not written by the \
                         ledger's timers: {event}",
                        self.log_size
                    ));
                }
                by_timers.push(as_text(&event["event_id"]));
            }
        }
        let cases = server.case_count();
        if cases != self.cases {
            return Err(format!(
                "the case count went from {} to {cases}",
                self.cases
            ));
        }
        for (case, before, after) in after {
            let kept = after.len() >= before.len() && after[..before.len()] == before[..];
            let gained = &after[before.len().min(after.len())..];
            if !kept || gained.iter().any(|event| !by_timers.contains(event)) {
                return Err(format!(
                    "case {case} had {} events (head {:?}), now {} (head {:?})",
                    before.len(),
                    before.last(),
                    after.len(),
                    after.last()
                ));
            }
        }
        Ok(())
    }
}
