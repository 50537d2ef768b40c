//! Witnesses (C2SP tlog-witness, tlog-cosignature): two real `custody
//! witness serve` processes on loopback and a real `custody serve` that
//! pushes its checkpoints to them.
//!
//! Invariants: a witness cosigns only checkpoints that extend the one it
//! cosigned last, so a history rewritten and re-signed with the real key,
//! or an older checkpoint pushed again, is refused, across a restart too;
//! a witness that is down only delays cosigning; `verify --witness
//! --min-witnesses` and `log verify-proof --witness` accept only what
//! enough witnesses cosigned.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::tamper::{replace, Db, TRIGGERS};
use common::{Server, TestStore};
use custody_core::Event;
use custody_log::note::Note;
use custody_log::Checkpoint;
use serde_json::Value;
use tempfile::TempDir;

/// A server that signs checkpoints only when asked (and as it starts and stops).
const QUIET: &str = "[log]\ncheckpoint_interval_seconds = 3600\n";

/// A running `custody witness serve`.
struct Witness {
    _root: TempDir,
    data: PathBuf,
    name: String,
    log_key: String,
    addr: String,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl Witness {
    /// Starts a witness named `name` trusting `log_key`, on a free port.
    fn start(name: &str, log_key: &str) -> Witness {
        let root = tempfile::tempdir().unwrap();
        let mut witness = Witness {
            data: root.path().join("witness"),
            _root: root,
            name: name.to_string(),
            log_key: log_key.to_string(),
            addr: "127.0.0.1:0".to_string(),
            child: None,
            log: Arc::new(Mutex::new(String::new())),
        };
        witness.spawn();
        witness
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "the witness is running");
        let mut child = common::command()
            .args(["witness", "serve", "--listen", &self.addr, "--data"])
            .arg(&self.data)
            .args(["--log-key", &self.log_key, "--name", &self.name])
            .env("CUSTODY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn custody witness serve");
        let stderr = child.stderr.take().unwrap();
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
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        match receiver.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => {
                self.addr = addr;
                self.child = Some(child);
            }
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "custody witness serve did not start ({error}):\n{}",
                    self.log()
                );
            }
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Stops it (SIGTERM).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            common::terminate(&mut child);
        }
    }

    /// Starts it again on the same address and data directory.
    fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `custody witness key --data DIR`.
    fn key(&self) -> String {
        let output = common::command()
            .args(["witness", "key", "--data"])
            .arg(&self.data)
            .output()
            .unwrap();
        common::assert_success(&output, "custody witness key");
        common::stdout(&output).trim().to_string()
    }

    /// The files of its state directory and their bytes.
    fn state(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(self.data.join("logs"))
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                (path, bytes)
            })
            .collect();
        files.sort();
        files
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A server pushing to two witnesses, A and B.
fn deployment() -> (Server, Witness, Witness) {
    deployment_on(TestStore::Embedded)
}

/// [`deployment`] with the ledger in `store`.
fn deployment_on(store: TestStore) -> (Server, Witness, Witness) {
    let (mut server, _) = Server::start_on(store, None, Some(QUIET));
    let log_key = server.log_keys()[0].clone();
    let a = Witness::start("witness.test/a", &log_key);
    let b = Witness::start("witness.test/b", &log_key);
    let key = a.key();
    assert!(
        a.log().contains(&format!("witness verifier key: {key}")),
        "the witness prints its key at start:\n{}",
        a.log()
    );
    assert!(
        !a.log().contains("PRIVATE+KEY"),
        "the secret is never printed"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(a.data.join("witness.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the witness key is private");
    }
    let mut config = QUIET.to_string();
    for (name, witness) in [("a", &a), ("b", &b)] {
        config.push_str(&format!(
            "\n[[witnesses]]\nname = \"{name}\"\nurl = \"{}\"\nkey = \"{}\"\n",
            witness.url(),
            witness.key()
        ));
    }
    std::fs::write(server.config_path().unwrap(), config).unwrap();
    server.restart_configured();
    (server, a, b)
}

/// The latest checkpoint as served, and the key names of its signature lines.
fn served_checkpoint(server: &Server) -> (u64, Vec<String>, String) {
    let client = server.client();
    let url = format!("{}/v1/log/checkpoint", server.url);
    let note = server
        .runtime()
        .block_on(async move { client.get(url).send().await?.text().await })
        .unwrap();
    let parsed = Note::parse(note.as_bytes()).expect("a signed note");
    let size = Checkpoint::parse(parsed.text()).unwrap().size();
    let names = parsed
        .signatures()
        .iter()
        .map(|s| s.name().to_string())
        .collect();
    (size, names, note)
}

/// Polls until the latest checkpoint is at least `size` and cosigned by
/// every witness of `witnesses`; returns the served note.
fn wait_cosigned(server: &Server, size: u64, witnesses: &[&Witness]) -> String {
    let mut note = String::new();
    common::wait_until("the witnesses' cosignatures", || {
        let (served, names, text) = served_checkpoint(server);
        note = text;
        served >= size && witnesses.iter().all(|w| names.contains(&w.name))
    });
    note
}

/// Adds a case (one event) and signs a checkpoint covering it; returns the
/// new size.
fn append_and_sign(server: &Server, token: &str, subject: &str) -> u64 {
    server.cli_ok(
        token,
        &["request", "--subject", subject, "--entitlement", "reader"],
    );
    let note = server.sign_checkpoint();
    Checkpoint::parse(Note::parse(note.as_bytes()).unwrap().text())
        .unwrap()
        .size()
}

/// POSTs an add-checkpoint body to a witness; returns the status, content
/// type and body.
fn post(server: &Server, witness: &Witness, body: String) -> (u16, String, String) {
    let client = server.client();
    let url = format!("{}/add-checkpoint", witness.url());
    server
        .runtime()
        .block_on(async move {
            let response = client.post(url).body(body).send().await?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            Ok::<_, reqwest::Error>((status, content_type, response.text().await?))
        })
        .unwrap()
}

/// The checkpoint note without the witnesses' lines (as the log signed it).
fn log_signed(note: &str, origin: &str) -> String {
    let parsed = Note::parse(note.as_bytes()).unwrap();
    let mut out = format!("{}\n", parsed.text());
    for signature in parsed.signatures().iter().filter(|s| s.name() == origin) {
        out.push_str(&signature.to_line());
    }
    out
}

fn origin(server: &Server) -> String {
    server.log_keys()[0].split('+').next().unwrap().to_string()
}

fn verify_witnessed(server: &Server, witnesses: &[&Witness], min: &str) -> (i32, Value) {
    let keys: Vec<String> = witnesses.iter().map(|w| w.key()).collect();
    let mut args: Vec<&str> = Vec::new();
    for key in &keys {
        args.extend(["--witness", key.as_str()]);
    }
    args.extend(["--min-witnesses", min]);
    let (output, report) = server.verify_with(&args);
    (output.status.code().unwrap(), report)
}

fn codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_healthy_deployment_is_cosigned_by_both_witnesses_and_verifies() {
    let (server, a, b) = deployment();
    let alice = server.principal("alice");
    let size = append_and_sign(&server, &alice, "user:ann");
    let note = wait_cosigned(&server, size, &[&a, &b]);
    // Each cosignature verifies with its witness's key on the checkpoint.
    let parsed = Note::parse(note.as_bytes()).unwrap();
    for witness in [&a, &b] {
        let key = custody_log::CosignatureVerifier::parse(&witness.key()).unwrap();
        let (good, failed) = key.verify_note(&parsed);
        assert!(good.is_some() && !failed, "{note}");
    }
    let (code, report) = verify_witnessed(&server, &[&a, &b], "2");
    assert_eq!(code, 0, "{report:#}");
    assert!(
        !codes(&report).iter().any(|c| c.starts_with("witness.")),
        "{report:#}"
    );

    // --min-witnesses needs --witness: a usage error.
    let output = common::command()
        .args(["verify", "--data"])
        .arg(&server.data)
        .args(["--min-witnesses", "1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        common::stderr(&output).contains("--witness"),
        "{}",
        common::stderr(&output)
    );
    // More witnesses required than given: a usage error too.
    let key = a.key();
    let output = common::command()
        .args(["verify", "--data"])
        .arg(&server.data)
        .args(["--witness", &key, "--min-witnesses", "2"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", common::stderr(&output));

    // A proof signed now carries no cosignature yet: refused with 2 required.
    let case = server
        .cli_ok(
            &alice,
            &["request", "--subject", "user:bo", "--entitlement", "admin"],
        )
        .trim()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proof.json");
    let prove = |file: &Path| {
        server.cli_ok(
            &alice,
            &["log", "prove", &case, "--out", file.to_str().unwrap()],
        );
    };
    prove(&file);
    let log_key = server.log_keys()[0].clone();
    let verify_proof = |file: &Path, min: &str| {
        common::command()
            .args(["log", "verify-proof"])
            .arg(file)
            .args([
                "--key",
                &log_key,
                "--witness",
                &a.key(),
                "--witness",
                &b.key(),
                "--min-witnesses",
                min,
            ])
            .output()
            .unwrap()
    };
    let refused = verify_proof(&file, "2");
    assert_eq!(
        refused.status.code(),
        Some(1),
        "{}",
        common::stdout(&refused)
    );
    assert!(
        common::stdout(&refused).contains("fewer than the 2 required")
            || common::stderr(&refused).contains("fewer than the 2 required"),
        "{}{}",
        common::stdout(&refused),
        common::stderr(&refused)
    );
    // Once both witnesses cosigned that checkpoint, the same proof, made
    // again, is accepted.
    let (size, _, _) = served_checkpoint(&server);
    wait_cosigned(&server, size, &[&a, &b]);
    prove(&file);
    let accepted = verify_proof(&file, "2");
    assert_eq!(
        accepted.status.code(),
        Some(0),
        "{}{}",
        common::stdout(&accepted),
        common::stderr(&accepted)
    );
    let text = common::stdout(&accepted);
    assert!(
        text.contains("cosigned by the witness witness.test/a"),
        "{text}"
    );
    assert!(
        text.contains("cosigned by the witness witness.test/b"),
        "{text}"
    );
}

#[test]
fn a_rewritten_and_re_signed_history_is_refused_by_both_witnesses() {
    let (mut server, a, b) = deployment();
    let alice = server.principal("alice");
    let case = server
        .cli_ok(
            &alice,
            &["request", "--subject", "user:ann", "--entitlement", "admin"],
        )
        .trim()
        .to_string();
    server.cli_ok(&alice, &["comment", &case, "looks fine"]);
    let size = append_and_sign(&server, &alice, "user:cy");
    wait_cosigned(&server, size, &[&a, &b]);
    server.stop();
    let before = (a.state(), b.state());

    // The operator holds the database and the signing key: the comment is
    // rewritten, the tree rebuilt, the checkpoints replaced and re-signed
    // with the real key, and the data directory's copies removed.
    let mut db = Db::open(&server.data);
    db.drop_triggers(&TRIGGERS);
    let (log_index, bytes) = db.event(&case, 2);
    let forged = replace(&bytes, "looks fine", "looks fino");
    Event::decode(&forged).expect("still a canonical event");
    db.set_bytes(log_index, &forged);
    db.fix_case_heads();
    let tree = db.rebuild_log_nodes();
    assert_eq!(tree.size(), size);
    let signer = custody_store::keys::LogSigner::load(&server.data).unwrap();
    let resign = |n: u64| {
        Checkpoint::new(&signer.origin, n, tree.root_at(n).unwrap())
            .unwrap()
            .sign(&[&signer.signers[0]])
            .unwrap()
    };
    db.run("DELETE FROM checkpoints");
    db.put_checkpoint(size, &tree.root(), &resign(size));
    db.close();
    std::fs::remove_file(server.data.join("checkpoints")).unwrap();

    // Without witnesses, nothing outside the operator's reach is left.
    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(0), "{report:#}");

    // Pushed to the witnesses, the forged history is refused: at the
    // same size it is a fork (409), from old 0 a stale size (409 with the
    // witness's size), and a longer forged tree's own proof fails (422).
    let forged_note = resign(size);
    for witness in [&a, &b] {
        let (status, content_type, body) =
            post(&server, witness, format!("old {size}\n\n{forged_note}"));
        assert_eq!(status, 409, "a fork: {body}");
        assert!(body.contains("fork"), "{body}");
        let (status, content_type_0, body) =
            post(&server, witness, format!("old 0\n\n{forged_note}"));
        assert_eq!((status, body.as_str()), (409, format!("{size}\n").as_str()));
        assert_eq!(content_type_0, "text/x.tlog.size");
        assert_ne!(content_type, "text/x.tlog.size");
    }
    let mut longer = tree.clone();
    longer.append_data(b"one more");
    let longer_note = Checkpoint::new(&signer.origin, size + 1, longer.root())
        .unwrap()
        .sign(&[&signer.signers[0]])
        .unwrap();
    let proof: String = longer
        .consistency_proof(size, size + 1)
        .unwrap()
        .iter()
        .map(|hash| format!("{}\n", base64_encode(hash)))
        .collect();
    for witness in [&a, &b] {
        let (status, _, body) = post(
            &server,
            witness,
            format!("old {size}\n{proof}\n{longer_note}"),
        );
        assert_eq!(status, 422, "{body}");
        assert!(witness.log().contains("refused the checkpoint"));
    }
    assert_eq!((a.state(), b.state()), before, "nothing was cosigned");

    // The auditor who trusts the witnesses sees the rewrite.
    let (code, report) = verify_witnessed(&server, &[&a, &b], "1");
    assert_eq!(code, 1, "{report:#}");
    let found = codes(&report);
    assert!(
        found.contains(&"checkpoint.root-mismatch".to_string()),
        "{report:#}"
    );
    let mismatch = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "checkpoint.root-mismatch")
        .unwrap();
    assert!(
        mismatch["message"]
            .as_str()
            .unwrap()
            .contains("cosigned by"),
        "the finding names the witnesses' checkpoint: {mismatch}"
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Two cosigned checkpoints; returns the older as the log signed it and
/// the sizes.
fn two_checkpoints(server: &Server, a: &Witness, b: &Witness) -> (String, u64, u64) {
    let alice = server.principal("alice");
    let first = append_and_sign(server, &alice, "user:ann");
    let older = wait_cosigned(server, first, &[a, b]);
    let second = append_and_sign(server, &alice, "user:ben");
    wait_cosigned(server, second, &[a, b]);
    (log_signed(&older, &origin(server)), first, second)
}

#[test]
fn a_rollback_is_refused() {
    let (server, a, b) = deployment();
    let (older, first, second) = two_checkpoints(&server, &a, &b);
    assert!(first < second);
    for witness in [&a, &b] {
        for old in [0, first] {
            let (status, content_type, body) =
                post(&server, witness, format!("old {old}\n\n{older}"));
            assert_eq!(status, 409, "{body}");
            assert_eq!(content_type, "text/x.tlog.size");
            assert_eq!(body, format!("{second}\n"));
        }
    }
}

#[test]
fn the_witness_keeps_its_state_across_a_restart() {
    let (server, mut a, b) = deployment();
    let (older, _, second) = two_checkpoints(&server, &a, &b);
    let key = a.key();
    a.restart();
    assert_eq!(a.key(), key, "the same key after a restart");
    assert!(
        a.log().contains(&format!("cosigned last at size {second}")),
        "{}",
        a.log()
    );
    let (status, _, body) = post(&server, &a, format!("old 0\n\n{older}"));
    assert_eq!((status, body), (409, format!("{second}\n")));
    // Malformed input changes nothing and says what is wrong.
    let (status, _, body) = post(&server, &a, "old 01\n\n".to_string());
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("old N"), "{body}");
    let (status, _, body) = post(
        &server,
        &a,
        format!(
            "old {second}\n\n{}",
            older.replace("\u{2014} ", "\u{2014} someone.else ")
        ),
    );
    assert!(matches!(status, 400 | 403), "{status} {body}");
}

#[test]
fn a_witness_that_is_down_delays_cosigning_but_loses_nothing() {
    let (server, a, mut b) = deployment();
    let alice = server.principal("alice");
    let first = append_and_sign(&server, &alice, "user:ann");
    wait_cosigned(&server, first, &[&a, &b]);
    b.stop();
    let second = append_and_sign(&server, &alice, "user:ben");
    let third = append_and_sign(&server, &alice, "user:cy");
    assert!(first < second && second < third);
    // A goes on cosigning; the newest checkpoint lacks B.
    wait_cosigned(&server, third, &[&a]);
    let (_, names, _) = served_checkpoint(&server);
    assert!(!names.contains(&b.name), "{names:?}");
    // Meanwhile the log's tail is not witnessed by both: reported, not failed.
    let (code, report) = verify_witnessed(&server, &[&a, &b], "2");
    assert_eq!(code, 0, "{report:#}");
    assert!(
        codes(&report).contains(&"witness.uncovered-tail".to_string()),
        "{report:#}"
    );
    // B comes back and ends up cosigning the latest checkpoint, with a
    // proof from the size it cosigned last.
    b.restart();
    wait_cosigned(&server, third, &[&a, &b]);
    assert!(b.log().contains(&format!("old={first}")), "{}", b.log());
    let (code, report) = verify_witnessed(&server, &[&a, &b], "2");
    assert_eq!(code, 0, "{report:#}");
    assert!(
        !codes(&report).iter().any(|c| c.starts_with("witness.")),
        "{report:#}"
    );
}

/// The cosignatures table and the witness lease on PostgreSQL (migration
/// 0008): cosigned, served and verified as on SQLite.
#[test]
fn cosignatures_are_stored_and_verified_on_postgresql() {
    let (server, a, b) = deployment_on(TestStore::Postgres);
    let alice = server.principal("alice");
    let size = append_and_sign(&server, &alice, "user:ann");
    wait_cosigned(&server, size, &[&a, &b]);
    let (code, report) = verify_witnessed(&server, &[&a, &b], "2");
    assert_eq!(code, 0, "{report:#}");
    assert!(
        !codes(&report).iter().any(|c| c.starts_with("witness.")),
        "{report:#}"
    );
}

/// A witness in this process, behind a switch that makes it answer every
/// request with a `409` naming a size far beyond the log.
struct LyingWitness {
    url: String,
    name: String,
    key: String,
    lying: Arc<std::sync::atomic::AtomicBool>,
    lies: Arc<std::sync::atomic::AtomicUsize>,
    _root: TempDir,
}

impl LyingWitness {
    fn start(log_key: &str) -> LyingWitness {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let root = tempfile::tempdir().unwrap();
        let key = custody_log::CosignerKey::generate("witness.test/lying").unwrap();
        let verifier = key.verifier().to_string();
        let witness = Arc::new(
            custody_server::witness::service::Witness::open(
                root.path(),
                key,
                custody_verify::parse_keys(&[log_key.to_string()]).unwrap(),
                custody_core::time::SystemClock::shared(),
            )
            .unwrap(),
        );
        let lying = Arc::new(AtomicBool::new(true));
        let lies = Arc::new(AtomicUsize::new(0));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (switch, count) = (lying.clone(), lies.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let answer = move |body: axum::body::Bytes| {
                    let (witness, switch, count) = (witness.clone(), switch.clone(), count.clone());
                    async move {
                        if switch.load(Ordering::SeqCst) {
                            count.fetch_add(1, Ordering::SeqCst);
                            return (
                                axum::http::StatusCode::CONFLICT,
                                [(axum::http::header::CONTENT_TYPE, "text/x.tlog.size")],
                                "1000000\n".to_string(),
                            );
                        }
                        let (status, content_type, body) = witness.add_checkpoint(&body).await;
                        (
                            status,
                            [(axum::http::header::CONTENT_TYPE, content_type)],
                            body,
                        )
                    }
                };
                let router =
                    axum::Router::new().route("/add-checkpoint", axum::routing::post(answer));
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, router).await.unwrap();
            });
        });
        LyingWitness {
            url,
            name: "witness.test/lying".into(),
            key: verifier,
            lying,
            lies,
            _root: root,
        }
    }
}

/// A witness that once answered a size beyond the log (a broken or hostile
/// witness, or one whose state belonged to another deployment) must not
/// stop the worker for good: the size is not taken as the witness's, and
/// once the witness answers truthfully it cosigns again.
#[test]
fn a_witness_that_claimed_a_size_beyond_the_log_is_asked_again() {
    use std::sync::atomic::Ordering;
    let (mut server, _) = Server::start_on(TestStore::Embedded, None, Some(QUIET));
    let witness = LyingWitness::start(&server.log_keys()[0]);
    let config = format!(
        "{QUIET}\n[[witnesses]]\nname = \"lying\"\nurl = \"{}\"\nkey = \"{}\"\n",
        witness.url, witness.key
    );
    std::fs::write(server.config_path().unwrap(), config).unwrap();
    server.restart_configured();
    common::wait_until("an answer of a size beyond the log", || {
        witness.lies.load(Ordering::SeqCst) >= 1
    });
    witness.lying.store(false, Ordering::SeqCst);
    let alice = server.principal("alice");
    let size = append_and_sign(&server, &alice, "user:ann");
    common::wait_until("the witness's cosignature", || {
        let (served, names, _) = served_checkpoint(&server);
        served >= size && names.contains(&witness.name)
    });
}

/// An existing witness directory whose key became readable by others is
/// tightened at start, as `custody serve` does with its data directory.
#[cfg(unix)]
#[test]
fn the_witness_takes_group_and_other_permissions_away_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let (server, _) = Server::start_on(TestStore::Embedded, None, Some(QUIET));
    let mut witness = Witness::start("witness.test/perms", &server.log_keys()[0]);
    witness.stop();
    let key = witness.data.join("witness.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&witness.data, std::fs::Permissions::from_mode(0o755)).unwrap();
    witness.spawn();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600, "{}", witness.log());
    assert_eq!(mode(&witness.data), 0o700, "{}", witness.log());
}
