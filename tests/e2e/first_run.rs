//! The first run, as a new user meets it: the README's first command
//! (`custody serve`, nothing else) in a fresh working directory, started
//! twice; `serve --data` on a nested directory that does not exist; every
//! half-initialised data directory a crash or a lost file can leave; the
//! README's "Five minutes with Custody" walk-through, run as written; and the
//! modes of the files in the data directory.
//!
//! Every test runs the real binary. The listen address comes from
//! `CUSTODY_LISTEN` (port 0, or a free port), so the README's commands run
//! unchanged.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::{assert_success, command, stderr, stdout};
use serde_json::Value;

/// How long a server may take to start.
const START: Duration = Duration::from_secs(60);

/// A `custody serve` process; stopped (SIGKILL) when dropped.
struct Serving {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
    /// The thread that copies the server's stderr into `log`; it ends when
    /// the pipe closes.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serving {
    /// Everything the server wrote to stderr so far.
    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The admin token the server printed when it initialised the directory.
    fn printed_token(&self) -> Option<String> {
        printed_token(&self.log())
    }

    /// Stops the server with SIGTERM and waits for it.
    fn stop(mut self) -> String {
        common::terminate(&mut self.child);
        // The reader thread has seen everything once the pipe closed.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.log()
    }

    /// A client command against this server.
    fn cli(&self, token: &str, args: &[&str]) -> Output {
        common::cli_at(&self.url, token, args)
    }
}

/// The token in a server log's `admin token (shown once; ...): cust_...` line.
fn printed_token(log: &str) -> Option<String> {
    log.lines()
        .find_map(|line| line.strip_prefix("admin token (shown once; keep it secret): "))
        .map(|token| token.trim().to_string())
}

/// Starts `custody ARGS` in `cwd` with `CUSTODY_LISTEN=127.0.0.1:0`. Returns
/// the running server, or its exit code and stderr when it stopped before
/// listening.
fn serve(cwd: &Path, args: &[&str]) -> Result<Serving, (Option<i32>, String)> {
    let mut child = command()
        .args(args)
        .current_dir(cwd)
        .env("CUSTODY_LISTEN", "127.0.0.1:0")
        .env("CUSTODY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn custody");
    let log = Arc::new(Mutex::new(String::new()));
    let (sender, receiver) = mpsc::channel::<Option<String>>();
    let stream = child.stderr.take().expect("piped stderr");
    let seen = log.clone();
    let reader = std::thread::spawn(move || {
        let mut sender = Some(sender);
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            seen.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_str(&format!("{line}\n"));
            if let Some(addr) = line.strip_prefix("listening on ") {
                if let Some(sender) = sender.take() {
                    let _ = sender.send(Some(addr.trim().to_string()));
                }
            }
        }
        if let Some(sender) = sender.take() {
            let _ = sender.send(None);
        }
    });
    match receiver.recv_timeout(START) {
        Ok(Some(addr)) => Ok(Serving {
            child,
            url: format!("http://{addr}"),
            log,
            reader: Some(reader),
        }),
        Ok(None) => {
            let status = child.wait().expect("reap custody");
            // The reader thread says `None` once the pipe closed: the log is whole.
            let text = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
            Err((status.code(), text))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("custody {args:?} neither listened nor exited");
        }
    }
}

/// Starts a server that must come up.
#[track_caller]
fn serve_ok(cwd: &Path, args: &[&str]) -> Serving {
    serve(cwd, args).unwrap_or_else(|(code, log)| {
        panic!("custody {args:?} did not start (exit {code:?}):\n{log}")
    })
}

/// Starts a server that must be refused; returns its stderr.
#[track_caller]
fn serve_refused(cwd: &Path, args: &[&str]) -> String {
    match serve(cwd, args) {
        Ok(serving) => panic!(
            "custody {args:?} should have been refused, but it serves:\n{}",
            serving.stop()
        ),
        Err((code, log)) => {
            assert_eq!(code, Some(2), "a refused start exits 2:\n{log}");
            assert!(!log.contains("panicked"), "{log}");
            log
        }
    }
}

/// `custody whoami --json` with `token`; the principal's ID.
#[track_caller]
fn whoami(serving: &Serving, token: &str) -> String {
    let output = serving.cli(token, &["whoami", "--json"]);
    assert_success(&output, "custody whoami");
    let who: Value = serde_json::from_str(&stdout(&output)).expect("whoami --json");
    who["principal"]["id"]
        .as_str()
        .or_else(|| who["id"].as_str())
        .unwrap_or_else(|| panic!("whoami --json has no principal id: {who}"))
        .to_string()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn readme_first_command_serve_initialises_a_new_directory_and_the_second_start_reuses_it() {
    let cwd = tempfile::tempdir().unwrap();
    // Exactly the README's first command: `cargo run --release -- serve`.
    let first = serve_ok(cwd.path(), &["serve"]);
    let token = first
        .printed_token()
        .unwrap_or_else(|| panic!("the first start prints the admin token:\n{}", first.log()));
    assert_eq!(whoami(&first, &token), "admin");
    let added = first.cli(&token, &["principal", "add", "alice"]);
    assert_success(&added, "principal add alice");
    let data = cwd.path().join("custody-data");
    assert!(data.join("custody.db").is_file());
    assert!(data.join("log-signing.key").is_file());
    let log = first.stop();
    assert_eq!(
        log.matches("admin token").count(),
        1,
        "the token is printed once:\n{log}"
    );

    let second = serve_ok(cwd.path(), &["serve"]);
    assert_eq!(
        second.printed_token(),
        None,
        "a second start prints no new token:\n{}",
        second.log()
    );
    assert!(!second.log().contains("initialised"), "{}", second.log());
    assert_eq!(
        whoami(&second, &token),
        "admin",
        "the first token still works"
    );
    let list = second.cli(&token, &["principal", "list", "--json"]);
    assert_success(&list, "principal list");
    assert!(
        stdout(&list).contains("\"alice\""),
        "the second start serves the same data: {}",
        stdout(&list)
    );
    second.stop();
    common::assert_verify_ok(&data);
}

#[test]
fn serve_initialises_a_nested_data_directory_that_does_not_exist() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("x").join("new").join("dir");
    let data_arg = data.to_str().unwrap();
    let first = serve_ok(root.path(), &["serve", "--data", data_arg]);
    let token = first.printed_token().expect("admin token printed");
    assert_eq!(whoami(&first, &token), "admin");
    first.stop();
    let second = serve_ok(root.path(), &["serve", "--data", data_arg]);
    assert_eq!(second.printed_token(), None, "{}", second.log());
    assert_eq!(whoami(&second, &token), "admin");
    second.stop();
    assert_eq!(mode(&data), 0o700);
}

/// A data directory as an interrupted initialisation by an older version
/// left it: `custody.db` made, migrated and nothing else (what the first
/// `serve` on a new directory left before this was fixed).
#[test]
fn interrupted_init_an_empty_database_without_key_is_completed() {
    for zero_bytes in [true, false] {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("custody-data");
        std::fs::create_dir(&data).unwrap();
        if zero_bytes {
            // A crash right after the file was created.
            std::fs::write(data.join("custody.db"), b"").unwrap();
        } else {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let store = custody_store::Store::open(&data).await.unwrap();
                drop(store);
            });
        }
        let serving = serve_ok(root.path(), &["serve"]);
        let token = serving
            .printed_token()
            .unwrap_or_else(|| panic!("completing init prints a token:\n{}", serving.log()));
        assert_eq!(whoami(&serving, &token), "admin");
        serving.stop();
        let again = serve_ok(root.path(), &["serve"]);
        assert_eq!(again.printed_token(), None, "{}", again.log());
        assert_eq!(whoami(&again, &token), "admin");
        again.stop();
        common::assert_verify_ok(&data);
    }
}

/// Interrupted after the admin, its token and the key were made, before the
/// origin was recorded: completed with a new token (the first was never
/// shown) and the key that was written.
#[test]
fn interrupted_init_admin_and_key_without_recorded_origin_is_completed() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("custody-data");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let verifier = runtime.block_on(async {
        let store = custody_store::Store::open(&data).await.unwrap();
        store
            .add_principal(
                custody_core::model::Principal {
                    id: "admin".parse().unwrap(),
                    display_name: "Administrator".to_string(),
                    kind: custody_core::model::PrincipalKind::Human,
                    groups: vec!["admins".to_string()],
                    org: None,
                },
                None,
            )
            .await
            .unwrap();
        store
            .create_token("admin".parse().unwrap(), None, None)
            .await
            .unwrap();
        custody_server::keys::create(&data, "custody.local/interrupted")
            .unwrap()
            .to_string()
    });
    let serving = serve_ok(root.path(), &["serve"]);
    let log = serving.log();
    assert!(
        log.contains("completed the interrupted initialisation of ./custody-data"),
        "{log}"
    );
    assert!(
        log.contains(&format!("log verifier key: {verifier}")),
        "{log}"
    );
    let token = serving.printed_token().expect("a new admin token");
    assert_eq!(whoami(&serving, &token), "admin");
    serving.stop();
    let again = serve_ok(root.path(), &["serve"]);
    assert_eq!(again.printed_token(), None, "{}", again.log());
    again.stop();
}

/// The log's origin is recorded but the key is gone. An unused ledger is
/// refused with the instruction to remove it; following it starts over.
/// A used ledger is refused with the instruction to restore the key; no new
/// key is ever made for it.
#[test]
fn database_with_recorded_origin_but_no_key_is_refused_with_what_to_do() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("custody-data");
    let init = command()
        .args(["init", "--json", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_success(&init, "custody init");
    std::fs::remove_file(data.join("log-signing.key")).unwrap();
    let refusal = serve_refused(root.path(), &["serve"]);
    assert!(
        refusal.contains("has no log-signing.key"),
        "the refusal says what is missing:\n{refusal}"
    );
    assert!(
        refusal.contains("hint: it holds no case and no checkpoint, so it was left by an interrupted initialisation: remove ./custody-data/custody.db (and custody.db-wal, custody.db-shm if present) and run the command again"),
        "the refusal says what to do:\n{refusal}"
    );
    assert!(!data.join("log-signing.key").exists(), "no key was made");
    // Following the hint works.
    for file in ["custody.db", "custody.db-wal", "custody.db-shm"] {
        let _ = std::fs::remove_file(data.join(file));
    }
    let serving = serve_ok(root.path(), &["serve"]);
    let token = serving.printed_token().expect("a fresh deployment");
    assert_eq!(whoami(&serving, &token), "admin");
    let signed = serving.cli(&token, &["log", "checkpoint", "--new"]);
    assert_success(&signed, "log checkpoint --new");
    serving.stop();

    // Used (a checkpoint was signed): restore the key.
    std::fs::rename(data.join("log-signing.key"), root.path().join("saved.key")).unwrap();
    let refusal = serve_refused(root.path(), &["serve"]);
    assert!(
        refusal.contains("hint: restore log-signing.key into ./custody-data from a backup"),
        "{refusal}"
    );
    assert!(!data.join("log-signing.key").exists(), "no key was made");
    std::fs::rename(root.path().join("saved.key"), data.join("log-signing.key")).unwrap();
    let serving = serve_ok(root.path(), &["serve"]);
    assert_eq!(serving.printed_token(), None);
    assert_eq!(whoami(&serving, &token), "admin");
    serving.stop();
}

/// The key without its database: starting would begin a second history
/// signed with the same key. Refused, and nothing is created.
#[test]
fn key_without_database_is_refused_and_nothing_is_created() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("custody-data");
    serve_ok(root.path(), &["serve"]).stop();
    for file in ["custody.db", "custody.db-wal", "custody.db-shm"] {
        let _ = std::fs::remove_file(data.join(file));
    }
    let refusal = serve_refused(root.path(), &["serve"]);
    assert!(
        refusal.contains("./custody-data holds the log signing key log-signing.key but no ledger (custody.db is missing)"),
        "{refusal}"
    );
    assert!(
        refusal.contains("hint: restore custody.db (with custody.db-wal if there is one) from a backup of ./custody-data"),
        "{refusal}"
    );
    assert!(
        !data.join("custody.db").exists(),
        "no empty ledger was made"
    );
    // `custody init` refuses the same way.
    let init = command()
        .args(["init", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(init.status.code(), Some(2), "{}", stderr(&init));
    assert!(stderr(&init).contains("but no ledger"), "{}", stderr(&init));
    assert!(!data.join("custody.db").exists());
    // Following the hint (move the directory aside) starts a new deployment.
    std::fs::rename(&data, root.path().join("old-custody-data")).unwrap();
    let serving = serve_ok(root.path(), &["serve"]);
    assert!(serving.printed_token().is_some());
    serving.stop();
}

/// A key that has signed checkpoints (the `checkpoints` file holds them)
/// beside an empty ledger (a zero-byte `custody.db`, or a new empty one) is
/// not an interrupted initialisation: completing it would sign a second
/// history with the same key. Refused like a missing ledger, and nothing is
/// changed.
#[test]
fn key_that_signed_beside_an_empty_database_is_refused_and_nothing_is_changed() {
    for zero_bytes in [true, false] {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("custody-data");
        let serving = serve_ok(root.path(), &["serve"]);
        // The server signs a checkpoint as it starts.
        let deadline = Instant::now() + START;
        while std::fs::metadata(data.join("checkpoints")).map_or(0, |file| file.len()) == 0 {
            assert!(
                Instant::now() < deadline,
                "no checkpoint signed:\n{}",
                serving.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        serving.stop();
        let checkpoints = std::fs::read(data.join("checkpoints")).unwrap();
        for file in ["custody.db", "custody.db-wal", "custody.db-shm"] {
            let _ = std::fs::remove_file(data.join(file));
        }
        if zero_bytes {
            std::fs::write(data.join("custody.db"), b"").unwrap();
        } else {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let store = custody_store::Store::open(&data).await.unwrap();
                drop(store);
            });
        }
        let refusal = serve_refused(root.path(), &["serve"]);
        assert!(
            refusal.contains("./custody-data holds the log signing key log-signing.key and checkpoints it signed (checkpoints), but its ledger is empty (custody.db holds no history): starting would begin a second history signed with the same key"),
            "{refusal}"
        );
        assert!(
            refusal.contains("hint: restore custody.db (with custody.db-wal if there is one) from a backup of ./custody-data"),
            "{refusal}"
        );
        assert_eq!(printed_token(&refusal), None, "{refusal}");
        assert!(!refusal.contains("interrupted initialisation"), "{refusal}");
        if zero_bytes {
            assert_eq!(
                std::fs::metadata(data.join("custody.db")).unwrap().len(),
                0,
                "the empty ledger was left as it was"
            );
        }
        assert_eq!(
            std::fs::read(data.join("checkpoints")).unwrap(),
            checkpoints,
            "nothing was signed"
        );
        // `custody init` refuses the same way.
        let init = command()
            .args(["init", "--data"])
            .arg(&data)
            .output()
            .unwrap();
        assert_eq!(init.status.code(), Some(2), "{}", stderr(&init));
        assert!(
            stderr(&init).contains("but its ledger is empty"),
            "{}",
            stderr(&init)
        );
    }
}

/// A ledger that was used (a principal other than admin) with neither a
/// recorded origin nor a key is refused: nothing proves it was never signed.
#[test]
fn used_ledger_without_origin_or_key_is_refused_with_what_to_do() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("custody-data");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = custody_store::Store::open(&data).await.unwrap();
        store
            .add_principal(
                custody_core::model::Principal {
                    id: "bob".parse().unwrap(),
                    display_name: "Bob".to_string(),
                    kind: custody_core::model::PrincipalKind::Human,
                    groups: vec![],
                    org: None,
                },
                None,
            )
            .await
            .unwrap();
    });
    let refusal = serve_refused(root.path(), &["serve"]);
    assert!(
        refusal.contains("holds a ledger that was used (log size ")
            && refusal.contains(
                ") without a recorded log origin, and ./custody-data has no log-signing.key"
            ),
        "{refusal}"
    );
    assert!(
        refusal.contains("hint: copy the deployment's log-signing.key into ./custody-data"),
        "{refusal}"
    );
    assert!(!data.join("log-signing.key").exists());
}

/// `custody init` on an initialised directory is refused and says how to
/// start it; on a half-initialised one it completes it.
#[test]
fn init_refuses_an_initialised_directory_and_completes_an_interrupted_one() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("custody-data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("custody.db"), b"").unwrap();
    let init = command()
        .args(["init", "--json", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_success(&init, "custody init on an interrupted directory");
    let report: Value = serde_json::from_str(&stdout(&init)).unwrap();
    assert!(report["admin_token"].as_str().unwrap().starts_with("cust_"));
    let again = command()
        .args(["init", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again)
            .contains("is already initialised\nhint: start it with `custody serve --data"),
        "{}",
        stderr(&again)
    );
}

/// The data directory is 0700; the database, its WAL and SHM, the key,
/// every other file and every evidence blob 0600; every directory 0700:
/// after the first start, after writes and an evidence upload, and after a
/// restart of a directory an older version left readable by others.
#[test]
fn data_directory_files_are_private() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("nested").join("custody-data");
    let data_arg = data.to_str().unwrap();
    let serving = serve_ok(root.path(), &["serve", "--data", data_arg]);
    let admin = serving.printed_token().unwrap();
    assert_private(&data);
    let added = serving.cli(&admin, &["principal", "add", "alice"]);
    assert_success(&added, "principal add");
    let alice = stdout(&serving.cli(&admin, &["token", "create", "alice"]))
        .trim()
        .to_string();
    let request = serving.cli(
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
    let case = stdout(&request).trim().to_string();
    let file = root.path().join("screenshot.txt");
    std::fs::write(&file, "the change as it was made").unwrap();
    let attach = serving.cli(&alice, &["attach", &case, file.to_str().unwrap()]);
    assert_success(&attach, "attach");
    let checkpoint = serving.cli(&admin, &["log", "checkpoint", "--new"]);
    assert_success(&checkpoint, "log checkpoint --new");
    let files = assert_private(&data);
    for expected in [
        "custody.db",
        "custody.db-wal",
        "custody.db-shm",
        "log-signing.key",
    ] {
        assert!(
            files.iter().any(|path| path.ends_with(expected)),
            "{expected} checked: {files:?}"
        );
    }
    assert!(
        files
            .iter()
            .any(|path| path.starts_with(data.join("evidence/sha256"))),
        "an evidence blob was checked: {files:?}"
    );
    serving.stop();

    // A directory an older version left open to others is closed at start.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for file in ["custody.db", "log-signing.key"] {
        std::fs::set_permissions(data.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let serving = serve_ok(root.path(), &["serve", "--data", data_arg]);
    assert_private(&data);
    serving.stop();
}

/// Asserts every directory under `root` (and `root`) is 0700 and every file
/// 0600; returns the files checked.
#[track_caller]
fn assert_private(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        assert_eq!(mode(&directory), 0o700, "directory {}", directory.display());
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "file {}", path.display());
                files.push(path);
            }
        }
    }
    files
}

/// The sh block of README.md's "Five minutes with Custody", as written.
fn readme_walkthrough() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md");
    let section = readme
        .split_once("## Five minutes with Custody")
        .expect("README.md has the walk-through section")
        .1;
    let block = section
        .split_once("```sh\n")
        .expect("the section has an sh block")
        .1;
    block
        .split_once("\n```")
        .expect("the sh block ends")
        .0
        .to_string()
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the README's walk-through in bash in a fresh directory. The only
/// changes: the build line is dropped and PATH points at the binary under
/// test (it is built already), and `CUSTODY_LISTEN` / `CUSTODY_URL` point
/// at a free port.
#[test]
fn readme_walkthrough_runs_end_to_end() {
    let script = readme_walkthrough();
    let build = "cargo build --release\n";
    let path = "export PATH=\"$PWD/target/release:$PATH\"\n";
    assert!(script.starts_with(&format!("{build}{path}")), "{script}");
    let bin_dir = Path::new(common::bin()).parent().unwrap();
    let script = script.replacen(build, "", 1).replacen(
        path,
        &format!("export PATH=\"{}:$PATH\"\n", bin_dir.display()),
        1,
    );
    // Report every command that fails, with its status; nothing else changes.
    let script = format!(
        "trap 'echo \"README-STEP-FAILED status=$? command=$BASH_COMMAND\" >&2' ERR\n{script}"
    );
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new("bash");
    child
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env_remove("CUSTODY_TOKEN")
        .env_remove("CUSTODY_DATA")
        .env_remove("CUSTODY_URL")
        .env_remove("CUSTODY_CONFIG")
        .env_remove("CUSTODY_DATABASE_URL")
        .env_remove("CUSTODY_LOG_FORMAT")
        .env("TMPDIR", work.path())
        .env("CUSTODY_LISTEN", format!("127.0.0.1:{port}"))
        .env("CUSTODY_URL", format!("http://127.0.0.1:{port}"))
        .env("CUSTODY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that whatever it leaves running (the
        // server it started) is stopped with it.
        .process_group(0);
    let child = child.spawn().expect("run bash");
    let group = child.id();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    let output = receiver.recv_timeout(Duration::from_secs(300));
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
    let output = output
        .expect("the walk-through finishes within 5 minutes")
        .expect("bash ran");
    let out = stdout(&output);
    let err = stderr(&output);
    let context = format!("stdout:\n{out}\nstderr:\n{err}");
    let failures: Vec<&str> = err
        .lines()
        .filter(|line| line.starts_with("README-STEP-FAILED"))
        .collect();
    assert_eq!(
        failures,
        vec!["README-STEP-FAILED status=1 command=CUSTODY_TOKEN=$ALICE custody approve \"$CASE\""],
        "only the requester's own approval fails, with exit 1\n{context}"
    );
    assert!(
        err.contains("sod.requester-cannot-approve"),
        "the refusal names its rule\n{context}"
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "the final verify exits 0\n{context}"
    );
    let shown = out
        .lines()
        .find(|line| common::is_case_id(line.split_whitespace().next().unwrap_or_default()))
        .unwrap_or_else(|| panic!("`custody show` prints the case\n{context}"));
    assert!(
        shown.trim_end().ends_with("REVIEWED"),
        "the case is reviewed: {shown}\n{context}"
    );
    assert!(!err.contains("panicked"), "{context}");
}
