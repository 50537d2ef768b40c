//! What operators see on their screens and in their logs: `token list`
//! tells expired tokens from active ones; the CLI ends quietly when its
//! output is closed early (`custody cases | head -1`); the server's log has
//! colour codes only on a terminal and says `listening` once; no log level
//! shows the NATS password; a broken `--config` file is reported without
//! echoing its secrets.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{assert_success, command, stderr, stdout, Server, TestStore};
use custody_core::Timestamp;
use serde_json::Value;

/// A `custody serve` whose stderr goes to a file; killed when dropped.
struct LoggedServer {
    child: Child,
    url: String,
    log_file: std::path::PathBuf,
    admin_token: String,
    _root: tempfile::TempDir,
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LoggedServer {
    /// `custody init` on a fresh directory, then `custody serve` on it with
    /// `env` and its stderr written to a file (not a terminal).
    fn start(config: Option<&str>, env: &[(&str, &str)]) -> LoggedServer {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let init = command()
            .args(["init", "--json", "--data"])
            .arg(&data)
            .output()
            .unwrap();
        assert_success(&init, "custody init");
        let report: Value = serde_json::from_str(&stdout(&init)).unwrap();
        let admin_token = report["admin_token"].as_str().unwrap().to_string();
        let log_file = root.path().join("server.log");
        let mut serve = command();
        serve
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data);
        if let Some(config) = config {
            let path = root.path().join("custody.toml");
            std::fs::write(&path, config).unwrap();
            serve.arg("--config").arg(path);
        }
        for (name, value) in env {
            serve.env(name, value);
        }
        let child = serve
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_file).unwrap())
            .spawn()
            .unwrap();
        let mut server = LoggedServer {
            child,
            url: String::new(),
            log_file,
            admin_token,
            _root: root,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = server.log();
            if let Some(addr) = log
                .lines()
                .find_map(|line| line.strip_prefix("listening on "))
            {
                server.url = format!("http://{}", addr.trim());
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("custody serve exited ({status}) before listening:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "custody serve did not listen:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The log so far.
    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_file).unwrap_or_default()).into_owned()
    }

    /// A client command against this server.
    fn cli(&self, token: &str, args: &[&str]) -> std::process::Output {
        common::cli_at(&self.url, token, args)
    }

    /// Stops the server with SIGTERM; returns the whole log.
    fn stop(mut self) -> String {
        common::terminate(&mut self.child);
        self.log()
    }
}

#[test]
fn token_list_shows_expired_tokens_as_expired() {
    // The server runs an hour behind the system clock (`common::in_process`):
    // a token that lives a second has expired for the CLI, which judges a
    // token's status by the system clock, and not yet for the server,
    // until the test moves its clock.
    let (server, _) = Server::start_in_process_at(
        TestStore::Embedded,
        None,
        Timestamp::now().plus_seconds(-3600),
    );
    let added = server.cli(Some(&server.admin_token), &["principal", "add", "bob"]);
    assert_success(&added, "principal add bob");
    let short = server.cli_json(
        &server.admin_token,
        &["token", "create", "bob", "--ttl", "1s"],
    );
    let short_id = short["token_id"].as_str().unwrap().to_string();
    let long = server.cli_json(
        &server.admin_token,
        &["token", "create", "bob", "--ttl", "1d"],
    );
    let long_id = long["token_id"].as_str().unwrap().to_string();
    // Until the server's clock passes its expiry, the short token works...
    let whoami = server.cli(short["token"].as_str(), &["whoami"]);
    assert_success(&whoami, "whoami with the short token");
    // ...and then the server agrees: it no longer authenticates.
    server.clock().advance_seconds(2);
    let refused = server.cli(short["token"].as_str(), &["whoami"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));

    let list = server.cli_json(&server.admin_token, &["token", "list", "bob"]);
    let status = |id: &str| {
        list["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|token| token["token_id"] == id)
            .unwrap_or_else(|| panic!("{id} listed: {list:#}"))["status"]
            .clone()
    };
    assert_eq!(status(&short_id), "expired", "{list:#}");
    assert_eq!(status(&long_id), "active", "{list:#}");

    let text = server.cli_ok(&server.admin_token, &["token", "list", "bob"]);
    let line = |id: &str| {
        text.lines()
            .find(|line| line.starts_with(id))
            .unwrap_or_else(|| panic!("{id} listed:\n{text}"))
            .to_string()
    };
    assert!(line(&short_id).trim_end().ends_with("expired"), "{text}");
    assert!(line(&long_id).trim_end().ends_with("active"), "{text}");

    let revoked = server.cli(Some(&server.admin_token), &["token", "revoke", &long_id]);
    assert_success(&revoked, "token revoke");
    let list = server.cli_json(&server.admin_token, &["token", "list", "bob"]);
    let revoked_status = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|token| token["token_id"] == long_id.as_str())
        .unwrap()["status"]
        .clone();
    assert_eq!(revoked_status, "revoked", "{list:#}");
}

/// Runs a client command whose standard output is closed before it prints.
fn run_with_closed_stdout(
    server: &Server,
    token: &str,
    args: &[&str],
) -> (std::process::ExitStatus, String) {
    let mut child = command()
        .args(args)
        .env("CUSTODY_URL", &server.url)
        .env("CUSTODY_TOKEN", token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away at once, as `head` does once it has its lines.
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap(), err)
}

#[test]
fn closed_stdout_ends_the_cli_quietly() {
    let server = Server::start();
    let alice = server.principal("alice");
    let case = server.cli_ok(
        &alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            "admin",
        ],
    );
    let case = case.trim();
    for args in [
        vec!["notifications"],
        vec!["cases"],
        vec!["cases", "--json"],
        vec!["show", case],
        vec!["show", case, "--json"],
        vec!["token", "list"],
        vec!["principal", "list"],
    ] {
        let (status, err) = run_with_closed_stdout(&server, &server.admin_token, &args);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe") && !err.contains("backtrace"),
            "custody {args:?} with a closed stdout printed: {err}"
        );
        assert!(
            status.success() || status.signal() == Some(13),
            "custody {args:?} with a closed stdout should exit 0 or by SIGPIPE, got {status}: {err}"
        );
    }
    // And in a real shell pipeline, as the issue reported it.
    let piped = Command::new("bash")
        .args(["-c", "set -o pipefail; \"$CUSTODY\" show \"$CASE\" | head -1; echo \"status=${PIPESTATUS[0]}\""])
        .env("CUSTODY", common::bin())
        .env("CASE", case)
        .env("CUSTODY_URL", &server.url)
        .env("CUSTODY_TOKEN", &server.admin_token)
        .output()
        .unwrap();
    assert!(!stderr(&piped).contains("panicked"), "{}", stderr(&piped));
    let status_line = stdout(&piped);
    assert!(
        status_line.contains("status=0") || status_line.contains("status=141"),
        "{status_line}"
    );
}

#[test]
fn server_log_in_a_file_has_no_colour_codes_and_says_listening_once() {
    let server = LoggedServer::start(None, &[("CUSTODY_LOG", "info,tower_http=debug")]);
    let who = server.cli(&server.admin_token, &["whoami"]);
    assert_success(&who, "whoami");
    let log = server.stop();
    assert!(
        log.contains("INFO") || log.contains("WARN"),
        "the log has events to check: {log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file:\n{log:?}"
    );
    let listening: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("listening"))
        .collect();
    assert_eq!(
        listening.len(),
        1,
        "`listening` once: {listening:#?}\n{log}"
    );
    assert!(
        listening[0].starts_with("listening on 127.0.0.1:"),
        "{listening:?}"
    );
}

/// Runs `custody serve` on a pseudo-terminal (`script`), until its first
/// warning; returns what the terminal showed.
fn serve_on_a_terminal(no_color: Option<&str>) -> String {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let serve = format!(
        "exec '{}' serve --listen 127.0.0.1:0 --data '{}'",
        common::bin(),
        data.display()
    );
    let mut script = Command::new("script");
    script
        .args(["-qec", &serve, "/dev/null"])
        .env_remove("CUSTODY_LOG")
        .env_remove("CUSTODY_LOG_FORMAT")
        .env_remove("CUSTODY_CONFIG")
        .env_remove("CUSTODY_DATA")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    if let Some(value) = no_color {
        script.env("NO_COLOR", value);
    }
    let mut child = script.spawn().expect("run script");
    let group = child.id();
    let output = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            seen.push_str(&line);
            seen.push('\n');
            // The warning is logged during start-up, and `listening on`
            // printed once start-up is done.
            if seen.contains("no notification channels are configured")
                && seen.contains("listening on")
            {
                break;
            }
        }
        let _ = sender.send(seen);
    });
    let seen = receiver.recv_timeout(Duration::from_secs(60));
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .status();
    let _ = child.wait();
    seen.expect("the server logs its first warning")
}

#[test]
fn server_log_is_coloured_only_on_a_terminal_and_never_with_no_color() {
    let coloured = serve_on_a_terminal(None);
    assert!(coloured.contains("listening on"), "{coloured:?}");
    assert!(
        coloured.contains("\u{1b}["),
        "a terminal gets colour: {coloured:?}"
    );
    let plain = serve_on_a_terminal(Some("1"));
    assert!(plain.contains("WARN"), "{plain:?}");
    assert!(
        !plain.contains('\u{1b}'),
        "NO_COLOR=1 means no colour: {plain:?}"
    );
}

#[test]
fn debug_log_never_shows_the_nats_password() {
    let password = "pw-d0-not-log-7f3a9c";
    let nats = std::env::var("CUSTODY_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string());
    let host = nats
        .split_once("://")
        .map_or(nats.as_str(), |(_, rest)| rest);
    let config = format!(
        "[notify]\nbackoff_initial_ms = 100\nbackoff_max_ms = 400\npoll_interval_ms = 50\nmax_attempts = 3\n\n[[notify.channels]]\ntype = \"nats\"\nname = \"bus\"\nurl = \"nats://custody:{password}@{host}\"\nsubject = \"custody.secrets-test\"\nsource = \"custody/e2e\"\ntimeout_seconds = 2\n"
    );
    let server = LoggedServer::start(
        Some(&config),
        &[("CUSTODY_LOG", "debug,async_nats=trace,sqlx=warn")],
    );
    let added = server.cli(&server.admin_token, &["principal", "add", "alice"]);
    assert_success(&added, "principal add");
    let alice = stdout(&server.cli(&server.admin_token, &["token", "create", "alice"]))
        .trim()
        .to_string();
    let request = server.cli(
        &alice,
        &[
            "request",
            "--subject",
            "user:alice",
            "--entitlement",
            "admin",
        ],
    );
    assert_success(&request, "request");
    // Wait until the deliverer has tried NATS (with the password) at least once.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = server.cli(&server.admin_token, &["notifications", "--json"]);
        assert_success(&list, "notifications");
        let list: Value = serde_json::from_str(&stdout(&list)).unwrap();
        let attempted = list["notifications"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|entry| entry["attempts"].as_u64().unwrap_or(0) > 0);
        if attempted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery was attempted: {list:#}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = server.stop();
    assert!(log.contains("DEBUG"), "the log is at debug level:\n{log}");
    assert!(
        !log.contains(password),
        "the NATS password is in the log:\n{}",
        log.lines()
            .filter(|line| line.contains(password))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn broken_config_file_is_reported_by_line_and_key_without_its_secrets() {
    let root = tempfile::tempdir().unwrap();
    let secret = "smtp-pw-9c1e77";
    let config = root.path().join("custody.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"127.0.0.1:0\"\n\n[[notify.channels]]\ntype = \"nats\"\nname = \"bus\"\nurl = \"nats://custody:{secret}@127.0.0.1:4222\nsubject = \"x\"\n"),
    )
    .unwrap();
    let output = command()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(root.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(!err.contains(secret), "the secret is echoed: {err}");
    assert!(
        err.contains("line 7, column ") && err.contains("key `notify.channels.url`"),
        "the error names the line and the key: {err}"
    );
    assert!(!Path::new(&root.path().join("data")).exists() || !err.contains("initialised"));
}
