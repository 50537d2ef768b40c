//! Helpers shared by the end-to-end tests: a real `custody serve` process on a
//! fresh data directory, the real CLI, and a small HTTP client.
//!
//! Everything here is synchronous; HTTP calls run on a private Tokio runtime.

#![allow(dead_code, clippy::unwrap_used)]

pub mod browser;
pub mod fixture;
pub mod in_process;
pub mod load;
pub mod tamper;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `custody` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_custody")
}

/// A `custody` command with no ambient configuration leaking in.
pub fn command() -> Command {
    let mut command = Command::new(bin());
    for name in [
        "CUSTODY_URL",
        "CUSTODY_TOKEN",
        "CUSTODY_DATA",
        "CUSTODY_CONFIG",
        "CUSTODY_DATABASE_URL",
        "CUSTODY_LOG_FORMAT",
    ] {
        command.env_remove(name);
    }
    command.stdin(Stdio::null());
    command
}

/// The check `custody verify --json` runs (`custody_verify::verify`, which
/// the CLI calls and prints as JSON, exiting 1 when the report is not ok),
/// made in this process with `request`: for a check made at a test clock
/// (`request.clock`), so that no test waits for time to pass. Returns what
/// the CLI would have: its exit status and stdout, and the report.
pub fn verify_request(request: custody_verify::Request) -> (Output, Value) {
    use std::os::unix::process::ExitStatusExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for verify");
    let verification = runtime
        .block_on(custody_verify::verify(request))
        .unwrap_or_else(|error| panic!("verify could not check: {error}"));
    let report = serde_json::to_value(&verification.report).expect("the report as JSON");
    let code = if verification.report.ok { 0 } else { 1 };
    let output = Output {
        // A wait status: the exit code in the second byte.
        status: std::process::ExitStatus::from_raw(code << 8),
        stdout: serde_json::to_vec_pretty(&report).expect("the report as text"),
        stderr: Vec::new(),
    };
    (output, report)
}

/// Runs `custody verify --data DIR --json`; returns the process output and the parsed report.
pub fn verify_dir(data: &Path) -> (Output, Value) {
    verify_dir_with(data, &[])
}

/// Asserts that `verify` on `data` exits 0 with `ok: true` and no findings
/// but info ones (such as the young tail of a live log that no checkpoint
/// covers yet).
pub fn assert_verify_ok(data: &Path) -> Value {
    let (output, report) = verify_dir(data);
    assert_eq!(
        output.status.code(),
        Some(0),
        "verify should pass; report: {report:#}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report["ok"], true, "verify report: {report:#}");
    assert_eq!(
        report["findings"].as_array().map(|findings| findings
            .iter()
            .filter(|finding| finding["severity"] != "info")
            .count()),
        Some(0),
        "verify report: {report:#}"
    );
    report
}

/// Copies every file of a data directory (database, WAL, keys) into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy directory");
    for entry in std::fs::read_dir(from).expect("read data directory") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// Polls until `done` holds, for at most 30 seconds: for what a running
/// process does on its own (a delivery, a receiver being called), never for
/// a deadline to pass (see `in_process`).
#[track_caller]
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops a `custody serve` process with SIGTERM (a graceful shutdown) and
/// reaps it, polling for its exit for up to 30 s; SIGKILL after that, or
/// when the signal could not be sent.
pub fn terminate(child: &mut Child) {
    let signalled = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|status| status.success());
    if signalled {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Text of a process's stdout.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Text of a process's stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Panics with both streams unless the command exited 0.
#[track_caller]
pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed with exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
}

/// Asserts that a client command was refused (exit 1) and that stderr names `rule`.
#[track_caller]
pub fn assert_refused(output: &Output, rule: &str) {
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected a refusal naming {rule} (exit 1)\nstdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
    assert!(
        stderr(output).contains(rule),
        "stderr should name the rule {rule}\nstderr: {}",
        stderr(output)
    );
}

/// True when `text` is a case ID: `AC-` and 32 lowercase hex digits.
pub fn is_case_id(text: &str) -> bool {
    text.strip_prefix("AC-").is_some_and(|hex| {
        hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// A response from the HTTP helper.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// All headers, lowercase names.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub text: String,
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub json: Value,
}

impl Response {
    /// One header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A request body for the HTTP helper.
pub enum Body {
    /// No body.
    None,
    /// A JSON value, sent with `Content-Type: application/json`.
    Json(Value),
    /// Raw bytes, sent with the given content type (or none).
    Raw(Vec<u8>, Option<&'static str>),
}

/// Which store a test server keeps its ledger in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestStore {
    /// The embedded SQLite file in the data directory.
    Embedded,
    /// A fresh PostgreSQL database of its own (see [`TestDatabase`]).
    Postgres,
}

/// Both stores, for tests that must hold on each.
pub const STORES: [TestStore; 2] = [TestStore::Embedded, TestStore::Postgres];

/// The PostgreSQL server the tests use: `CUSTODY_TEST_DATABASE_URL`, which
/// `cargo xtask test` sets after finding or starting PostgreSQL.
pub fn test_database_admin_url() -> String {
    std::env::var("CUSTODY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A PostgreSQL database created for one test and dropped after it.
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    name: String,
}

impl TestDatabase {
    /// Creates an empty database with a unique name on the test server.
    pub fn create() -> TestDatabase {
        let admin = test_database_admin_url();
        let name = format!("custody_t_{}", uuid_like());
        run_admin_sql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin
            .rsplit_once('/')
            .map(|(base, _)| base.to_string())
            .expect("the test database URL names a database");
        TestDatabase {
            url: format!("{base}/{name}"),
            name,
        }
    }

    /// Runs SQL statements directly on this database, bypassing Custody (for
    /// tamper tests). Returns the error text if the database refused them.
    pub fn execute(&self, sql: &str) -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build Tokio runtime");
        runtime.block_on(async {
            use sqlx::Connection;
            let mut connection = sqlx::PgConnection::connect(&self.url)
                .await
                .map_err(|error| error.to_string())?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                .execute(&mut connection)
                .await
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = test_database_admin_url();
        let _ = std::panic::catch_unwind(|| {
            run_admin_sql(
                &admin,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            )
        });
    }
}

fn run_admin_sql(admin_url: &str, sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build Tokio runtime");
    runtime.block_on(async {
        use sqlx::Connection;
        let mut connection = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "cannot reach the tests' PostgreSQL at {admin_url}: {error}\nhint: run the tests with `cargo xtask test`, which finds or starts PostgreSQL"
                )
            });
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
    });
}

/// 32 random hex digits.
pub fn uuid_like() -> String {
    let mut bytes = [0u8; 16];
    getrandom_bytes(&mut bytes);
    custody_core::hex::encode(&bytes)
}

fn getrandom_bytes(buffer: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(buffer))
        .expect("read /dev/urandom");
}

/// A running `custody serve` on its own temporary data directory.
pub struct Server {
    /// Keeps the temporary directory alive; removed on drop.
    pub root: TempDir,
    /// The data directory.
    pub data: PathBuf,
    /// The PostgreSQL database holding the ledger, when not embedded.
    pub database: Option<TestDatabase>,
    /// The first admin's bearer token from `custody init --json`.
    pub admin_token: String,
    /// `host:port` the server listens on.
    pub addr: String,
    /// `http://host:port`.
    pub url: String,
    child: Option<Child>,
    /// Set when the server runs in this process ([`Server::start_in_process`]).
    in_process: Option<in_process::InProcess>,
    log: Arc<Mutex<String>>,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Server {
    /// Initialises a fresh data directory with `custody init --json` and starts `custody serve` on it.
    pub fn start() -> Server {
        Server::start_configured(None, None).0
    }

    /// Everything the server processes wrote to stderr so far (nothing for
    /// a server in this process).
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The process ID of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// True while the server process has not exited.
    pub fn is_running(&mut self) -> bool {
        if self.in_process.is_some() {
            return self.in_process_running();
        }
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// `kill -9` the server: no shutdown, no flush, no checkpoint. (A
    /// server in this process has its task aborted.)
    pub fn kill9(&mut self) {
        if self.in_process.is_some() {
            return self.stop_in_process(true);
        }
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL on Unix.
            child.kill().expect("kill -9 the server");
            child.wait().expect("reap the server");
        }
    }

    /// Stops the server with SIGTERM (graceful shutdown), falling back to SIGKILL.
    pub fn stop(&mut self) {
        if self.in_process.is_some() {
            return self.stop_in_process(false);
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        terminate(&mut child);
    }

    /// Starts a new server process on the same data directory (stopping a running one with SIGKILL).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn_configured();
    }

    /// Runs a client command against this server with `token` (none: no token at all).
    pub fn cli(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut command = command();
        command.args(args).env("CUSTODY_URL", &self.url);
        if let Some(token) = token {
            command.env("CUSTODY_TOKEN", token);
        }
        command.output().expect("run custody")
    }

    /// Runs a client command that must succeed; returns its stdout.
    #[track_caller]
    pub fn cli_ok(&self, token: &str, args: &[&str]) -> String {
        let output = self.cli(Some(token), args);
        assert_success(&output, &format!("custody {}", args.join(" ")));
        stdout(&output)
    }

    /// Runs a client command with `--json` appended that must succeed; returns the parsed JSON.
    #[track_caller]
    pub fn cli_json(&self, token: &str, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let text = self.cli_ok(token, &args);
        serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("custody {} --json: {error}\n{text}", args.join(" ")))
    }

    /// Adds a principal as the admin and issues a token for it; returns the token.
    pub fn principal(&self, name: &str) -> String {
        self.principal_with(name, &[])
    }

    /// Like [`Server::principal`] with extra `principal add` arguments (`--kind`, `--group`).
    pub fn principal_with(&self, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["principal", "add", name];
        args.extend_from_slice(extra);
        self.cli_ok(&self.admin_token, &args);
        let token = self.cli_ok(&self.admin_token, &["token", "create", name]);
        let token = token.trim().to_string();
        assert!(
            token.starts_with("cust_") && !token.contains(char::is_whitespace),
            "token create should print only the token, got {token:?}"
        );
        token
    }

    /// `custody show CASE --json` as `token`.
    pub fn show(&self, token: &str, case: &str) -> Value {
        self.cli_json(token, &["show", case])
    }

    /// The events of a case, from `show --json`.
    pub fn events(&self, token: &str, case: &str) -> Vec<Value> {
        self.show(token, case)["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Sends one HTTP request and collects the response.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Response {
        let request = self.build(method, path, token, headers, body);
        self.runtime
            .block_on(collect(request))
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
    }

    /// Like [`Server::http`] but returns transport errors instead of panicking.
    pub fn try_http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<Response, reqwest::Error> {
        let request = self.build(method, path, token, headers, body);
        self.runtime.block_on(collect(request))
    }

    fn build(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Body,
    ) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match body {
            Body::None => request,
            Body::Json(value) => request
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&value).expect("encode JSON")),
            Body::Raw(bytes, content_type) => {
                if let Some(content_type) = content_type {
                    request = request.header("content-type", content_type);
                }
                request.body(bytes)
            }
        }
    }

    /// `GET path` with the admin token; panics unless 200.
    pub fn get_json(&self, path: &str) -> Value {
        let response = self.http("GET", path, Some(&self.admin_token), &[], Body::None);
        assert_eq!(response.status, 200, "GET {path}: {}", response.text);
        response.json
    }

    /// The log size reported by `/healthz`.
    pub fn log_size(&self) -> u64 {
        let health = self.http("GET", "/healthz", None, &[], Body::None);
        assert_eq!(health.status, 200, "/healthz: {}", health.text);
        assert_eq!(health.json["status"], "ok", "/healthz: {}", health.text);
        health.json["log_size"]
            .as_u64()
            .unwrap_or_else(|| panic!("/healthz has no log_size: {}", health.text))
    }

    /// Number of cases the server lists (up to 1000).
    pub fn case_count(&self) -> usize {
        self.get_json("/v1/cases?limit=1000")["cases"]
            .as_array()
            .map(Vec::len)
            .expect("case list")
    }

    /// The Tokio runtime the HTTP helper uses, for tests that drive concurrent load.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// A clone of the HTTP client.
    pub fn client(&self) -> reqwest::Client {
        self.http.clone()
    }
}

async fn collect(request: reqwest::RequestBuilder) -> Result<Response, reqwest::Error> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let text = response.text().await?;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Response {
        status,
        content_type,
        headers,
        text,
        json,
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_in_process(true);
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Where [`Server::start_configured`] writes the server's `--config` file,
/// inside the server's temporary root (beside the data directory).
pub const CONFIG_FILE: &str = "custody.toml";

impl Server {
    /// Like [`Server::start`], but `custody init` gets `--origin ORIGIN` when
    /// given, and `custody serve` runs with `--config` of the TOML text
    /// `config` when given (kept across [`Server::restart_configured`]).
    /// Also returns the parsed `init --json` report.
    pub fn start_configured(origin: Option<&str>, config: Option<&str>) -> (Server, Value) {
        Server::start_on(TestStore::Embedded, origin, config)
    }

    /// [`Server::start_configured`] with the ledger in `store`.
    pub fn start_on(
        store: TestStore,
        origin: Option<&str>,
        config: Option<&str>,
    ) -> (Server, Value) {
        Server::start_with(store, origin, config, None)
    }

    /// [`Server::start_on`], with the server in this process when
    /// `in_process` is given.
    fn start_with(
        store: TestStore,
        origin: Option<&str>,
        config: Option<&str>,
        in_process: Option<in_process::InProcess>,
    ) -> (Server, Value) {
        let database = match store {
            TestStore::Embedded => None,
            TestStore::Postgres => Some(TestDatabase::create()),
        };
        let root = tempfile::Builder::new()
            .prefix("custody-e2e-")
            .tempdir()
            .expect("create temporary directory");
        let data = root.path().join("data");
        let mut init = command();
        init.args(["init", "--json", "--data"]).arg(&data);
        if let Some(database) = &database {
            init.args(["--database-url", &database.url]);
        }
        if let Some(origin) = origin {
            init.args(["--origin", origin]);
        }
        let output = init.output().expect("run custody init");
        assert_success(&output, "custody init --json");
        let report: Value =
            serde_json::from_slice(&output.stdout).expect("init --json prints JSON");
        for field in ["data_dir", "admin_token", "verifier_key"] {
            assert!(
                report[field]
                    .as_str()
                    .is_some_and(|value| !value.is_empty()),
                "init --json lacks {field}: {report}"
            );
        }
        if let Some(config) = config {
            std::fs::write(root.path().join(CONFIG_FILE), config).expect("write the config file");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("build Tokio runtime");
        let http = http_client();
        let mut server = Server {
            root,
            data,
            database,
            admin_token: report["admin_token"].as_str().unwrap().to_string(),
            addr: String::new(),
            url: String::new(),
            child: None,
            in_process,
            log: Arc::new(Mutex::new(String::new())),
            runtime,
            http,
        };
        server.spawn_configured();
        (server, report)
    }

    /// The `--config` file of this server, if [`Server::start_configured`] wrote one.
    pub fn config_path(&self) -> Option<PathBuf> {
        let path = self.root.path().join(CONFIG_FILE);
        path.exists().then_some(path)
    }

    /// Stops the server gracefully and starts it again on the same data
    /// directory, with the same `--config` file if there is one.
    pub fn restart_configured(&mut self) {
        self.stop();
        self.spawn_configured();
    }

    fn spawn_configured(&mut self) {
        assert!(self.child.is_none(), "a server is already running");
        if self.in_process.is_some() {
            return self.spawn_in_process();
        }
        let mut serve = command();
        serve
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&self.data);
        if let Some(database) = &self.database {
            serve.args(["--database-url", &database.url]);
        }
        if let Some(config) = self.config_path() {
            serve.arg("--config").arg(config);
        }
        let mut child = serve
            .env("CUSTODY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn custody serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (sender, receiver) = mpsc::channel::<String>();
        let log = self.log.clone();
        std::thread::spawn(move || {
            let mut sender = Some(sender);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    if let Some(sender) = sender.take() {
                        let _ = sender.send(addr.trim().to_string());
                    }
                }
                let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        match receiver.recv_timeout(START_TIMEOUT) {
            Ok(addr) => {
                self.url = format!("http://{addr}");
                self.addr = addr;
                self.child = Some(child);
            }
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "custody serve did not report `listening on` ({error}); its stderr:\n{}",
                    self.log()
                );
            }
        }
    }

    /// The lines `custody log keys --data DIR` prints (works with the server stopped).
    pub fn log_keys(&self) -> Vec<String> {
        let output = command()
            .args(["log", "keys", "--data"])
            .arg(&self.data)
            .output()
            .expect("run custody log keys");
        assert_success(&output, "custody log keys");
        stdout(&output).lines().map(str::to_string).collect()
    }

    /// `custody verify --json` on this server's store (its data directory,
    /// and its database when it has one) with `extra` arguments. For a
    /// server in this process, the check `custody verify` runs, at the
    /// server's test clock ([`in_process`]), without `extra` arguments.
    pub fn verify_with(&self, extra: &[&str]) -> (Output, Value) {
        if self.in_process.is_some() {
            assert!(
                extra.is_empty(),
                "verify of an in-process server takes no arguments: {extra:?}"
            );
            return self.verify_at_test_clock();
        }
        let mut arguments: Vec<&str> = Vec::new();
        if let Some(database) = &self.database {
            arguments.extend(["--database-url", database.url.as_str()]);
        }
        arguments.extend_from_slice(extra);
        verify_dir_with(&self.data, &arguments)
    }

    /// Asserts that `verify` on this server's store passes with no findings.
    pub fn assert_verify_ok(&self) -> Value {
        let (output, report) = self.verify_with(&[]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "verify should pass; report: {report:#}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(report["ok"], true, "verify report: {report:#}");
        report
    }

    /// `custody log checkpoint --new` as the admin: the signed note it prints.
    pub fn sign_checkpoint(&self) -> String {
        self.cli_ok(&self.admin_token, &["log", "checkpoint", "--new"])
    }
}

/// Runs `custody verify --json --data DIR` with extra arguments
/// (`--since-checkpoint FILE`, `--key KEY`); returns the output and the report.
pub fn verify_dir_with(data: &Path, extra: &[&str]) -> (Output, Value) {
    let output = command()
        .args(["verify", "--json", "--data"])
        .arg(data)
        .args(extra)
        .output()
        .expect("run custody verify");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "verify --json printed no JSON ({error}); exit {:?}\nstdout: {}\nstderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, report)
}

/// The tests' HTTP client. reqwest is built with rustls and no default
/// crypto provider (as the `custody` binary is), so the provider is installed
/// first.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build HTTP client")
}

/// POSTs `body` as JSON with a bearer token and an idempotency key; returns
/// the status and the body (JSON, or the text as a JSON string). Transport
/// errors (a killed server) are returned, not panicked on.
pub async fn post_with_key(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    path: &str,
    key: &str,
    body: &Value,
) -> Result<(u16, Value), reqwest::Error> {
    let response = client
        .post(format!("{url}{path}"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A `custody serve` process started by [`spawn_serve`]; killed on drop.
pub struct Node {
    /// `http://host:port`.
    pub url: String,
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `custody serve --listen 127.0.0.1:0 --data DATA [--database-url URL]`.
/// Returns the running node, or everything it wrote to stderr if it exited
/// before listening (a refused start).
pub fn spawn_serve(data: &Path, database_url: Option<&str>) -> Result<Node, String> {
    spawn_serve_configured(data, database_url, None)
}

/// [`spawn_serve`] with `--config FILE` when given.
pub fn spawn_serve_configured(
    data: &Path,
    database_url: Option<&str>,
    config: Option<&Path>,
) -> Result<Node, String> {
    spawn_serve_listening(data, database_url, config, "127.0.0.1:0")
}

/// [`spawn_serve_configured`] listening on `listen` (a port known before
/// the server starts, for a configuration that names its own URL).
pub fn spawn_serve_listening(
    data: &Path,
    database_url: Option<&str>,
    config: Option<&Path>,
    listen: &str,
) -> Result<Node, String> {
    let mut serve = command();
    serve
        .args(["serve", "--listen", listen, "--data"])
        .arg(data);
    if let Some(url) = database_url {
        serve.args(["--database-url", url]);
    }
    if let Some(config) = config {
        serve.arg("--config").arg(config);
    }
    let mut child = serve
        .env("CUSTODY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn custody serve");
    let stderr = child.stderr.take().expect("piped stderr");
    let (sender, receiver) = mpsc::channel::<Result<String, String>>();
    std::thread::spawn(move || {
        let mut seen = String::new();
        let mut sender = Some(sender);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("listening on ") {
                if let Some(sender) = sender.take() {
                    let _ = sender.send(Ok(addr.trim().to_string()));
                }
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        if let Some(sender) = sender.take() {
            let _ = sender.send(Err(seen));
        }
    });
    match receiver.recv_timeout(START_TIMEOUT) {
        Ok(Ok(addr)) => Ok(Node {
            url: format!("http://{addr}"),
            child,
        }),
        Ok(Err(stderr)) => {
            let status = child.wait().expect("reap custody serve");
            Err(format!("exit {:?}\n{stderr}", status.code()))
        }
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("custody serve neither listened nor exited: {error}");
        }
    }
}

/// Runs a client command against `url` with `token`.
pub fn cli_at(url: &str, token: &str, args: &[&str]) -> Output {
    command()
        .args(args)
        .env("CUSTODY_URL", url)
        .env("CUSTODY_TOKEN", token)
        .output()
        .expect("run custody")
}

/// An HTTP server of the test's own (a webhook receiver, a web page) on
/// 127.0.0.1, with a runtime of its own; it serves until dropped.
pub struct HttpStub {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _runtime: tokio::runtime::Runtime,
}

impl HttpStub {
    /// Serves `app` on a free port with `threads` worker threads.
    pub fn serve(app: axum::Router, threads: usize) -> HttpStub {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .expect("build Tokio runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        runtime.spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        HttpStub {
            base,
            _runtime: runtime,
        }
    }
}
