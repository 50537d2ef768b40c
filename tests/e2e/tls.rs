//! HTTPS served by `custody serve` itself (`docs/tls.md`), against a real
//! server process and a CA made by the `openssl` command: the CLI and a
//! reqwest client trusting the CA are served, a client that does not trust
//! it is refused, plain HTTP to the TLS port is answered and closed, a
//! stalled handshake is closed at the header-read timeout, SIGHUP reloads
//! the certificate, and bad files stop the start with nothing served.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;

/// A test CA and server certificates it issues for `localhost` and
/// `127.0.0.1`, made with the openssl command (Debian's `openssl`; `cargo
/// xtask test` installs it).
struct Pki {
    dir: PathBuf,
    name: String,
}

/// A certificate and its key.
struct Issued {
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn create(dir: &Path, name: &str) -> Pki {
        let pki = Pki {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=custody test CA {name}"),
            "-keyout",
            pki.path("ca.key").to_str().unwrap(),
            "-out",
            pki.path("ca.pem").to_str().unwrap(),
        ]);
        pki
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(format!("{}-{file}", self.name))
    }

    fn ca_cert(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// A server certificate named `name`, valid for `days` from now (a
    /// negative number makes one that expired).
    fn issue(&self, name: &str, days: i32) -> Issued {
        let key = self.path(&format!("{name}.key"));
        let csr = self.path(&format!("{name}.csr"));
        let cert = self.path(&format!("{name}.pem"));
        let ext = self.path(&format!("{name}.ext"));
        std::fs::write(
            &ext,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            self.ca_cert().to_str().unwrap(),
            "-CAkey",
            self.path("ca.key").to_str().unwrap(),
            "-CAcreateserial",
            "-days",
            &days.to_string(),
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        Issued { cert, key }
    }
}

fn openssl(args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run openssl ({error}): install Debian's openssl (`cargo xtask test` does: apt-get install openssl)")
        });
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A TOML string literal of a path (temporary paths need no escapes).
fn toml_path(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

/// A `custody serve` whose `[server]` section serves `issued` over HTTPS,
/// with a one-second header-read timeout; and its `https://localhost:PORT`.
fn start_https(issued: &Issued) -> (Server, String) {
    start_https_with(issued, "header_read_timeout_seconds = 1\n")
}

/// [`start_https`] with other `[server]` settings.
fn start_https_with(issued: &Issued, server_settings: &str) -> (Server, String) {
    let config = format!(
        "[server]\ntls_cert = {}\ntls_key = {}\n{server_settings}",
        toml_path(&issued.cert),
        toml_path(&issued.key)
    );
    let (server, _) = Server::start_configured(None, Some(&config));
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    (server, format!("https://localhost:{port}"))
}

/// `GET url` (with `token` when given) by a reqwest client that trusts
/// only the CA certificates `roots`: the status and HTTP version, or
/// reqwest's error.
fn get_trusting(
    server: &Server,
    roots: &[&Path],
    url: &str,
    token: Option<&str>,
) -> Result<(u16, reqwest::Version), reqwest::Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certificates = roots
        .iter()
        .map(|path| reqwest::Certificate::from_pem(&std::fs::read(path).unwrap()).unwrap());
    let client = reqwest::Client::builder()
        .tls_certs_only(certificates)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    server.runtime().block_on(async {
        let mut request = client.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await?;
        Ok((answer.status().as_u16(), answer.version()))
    })
}

#[test]
fn the_cli_and_a_client_trusting_the_ca_are_served_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path(), "a");
    let issued = pki.issue("server", 1);
    let (server, url) = start_https(&issued);
    let ca = pki.ca_cert();
    let ca_text = ca.to_str().unwrap();

    // The CLI with --ca-cert, and with CUSTODY_CA_CERT.
    let cli = |args: &[&str], ca_env: Option<&str>| {
        let mut command = common::command();
        command
            .args(args)
            .env("CUSTODY_URL", &url)
            .env("CUSTODY_TOKEN", &server.admin_token)
            .env_remove("CUSTODY_CA_CERT");
        if let Some(ca) = ca_env {
            command.env("CUSTODY_CA_CERT", ca);
        }
        command.output().expect("run custody")
    };
    let added = cli(
        &[
            "principal",
            "add",
            "alice",
            "--group",
            "staff",
            "--ca-cert",
            ca_text,
        ],
        None,
    );
    common::assert_success(&added, "principal add over HTTPS with --ca-cert");
    let case = cli(
        &[
            "request",
            "--subject",
            "user:bob",
            "--entitlement",
            "db-read",
            "--justification",
            "over TLS",
        ],
        Some(ca_text),
    );
    common::assert_success(&case, "request over HTTPS with CUSTODY_CA_CERT");
    let case_id = common::stdout(&case).trim().to_string();
    assert!(common::is_case_id(&case_id), "{case_id}");
    let shown = cli(&["show", &case_id, "--json"], Some(ca_text));
    common::assert_success(&shown, "show over HTTPS");
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["case_id"], case_id.as_str());
    // Reading the checkpoint needs no token: the public client trusts the CA too.
    let checkpoint = cli(&["log", "checkpoint", "--ca-cert", ca_text], None);
    common::assert_success(&checkpoint, "log checkpoint over HTTPS");

    // Without the CA the CLI is refused, says why and what to do, and
    // exits 2 (a connection error).
    let refused = cli(&["cases"], None);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = common::stderr(&refused);
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");
    assert!(stderr.contains("--ca-cert"), "{stderr}");
    // A CA file that is not one is a clear error too.
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let bad_ca = cli(&["cases", "--ca-cert", garbage.to_str().unwrap()], None);
    assert_eq!(bad_ca.status.code(), Some(2), "{bad_ca:?}");
    assert!(
        common::stderr(&bad_ca).contains("holds no PEM certificate"),
        "{}",
        common::stderr(&bad_ca)
    );

    // reqwest trusting only the CA: served, over HTTP/1.1 (ALPN).
    let health = get_trusting(&server, &[&ca], &format!("{url}/healthz"), None).unwrap();
    assert_eq!(health, (200, reqwest::Version::HTTP_11));
    let whoami = get_trusting(
        &server,
        &[&ca],
        &format!("{url}/v1/whoami"),
        Some(&server.admin_token),
    )
    .unwrap();
    assert_eq!(whoami.0, 200);

    // Served over HTTPS, the console's cookies are Secure and `__Host-`
    // named, with no `[console] secure_cookies` set.
    let cookies: Vec<String> = server.runtime().block_on(async {
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap()])
            .build()
            .unwrap();
        let answer = client
            .get(format!("{url}/sign-in"))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        // Served over HTTPS, browsers are told to use nothing else.
        assert_eq!(
            answer.headers()["strict-transport-security"],
            "max-age=31536000"
        );
        answer
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|value| value.to_str().unwrap().to_string())
            .collect()
    });
    assert!(
        cookies
            .iter()
            .any(|cookie| cookie.starts_with("__Host-custody_sign_in=")
                && cookie.contains("; Secure")
                && cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Lax")),
        "{cookies:?}"
    );

    // A client trusting another CA is refused by its own TLS.
    let other = Pki::create(dir.path(), "other");
    let error = get_trusting(
        &server,
        &[&other.ca_cert()],
        &format!("{url}/healthz"),
        None,
    )
    .expect_err("a client that does not trust the CA is refused");
    assert!(error.is_connect(), "{error:?}");
}

#[test]
fn plain_http_to_the_tls_port_is_answered_and_a_stalled_handshake_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path(), "b");
    let (server, url) = start_https(&pki.issue("server", 1));

    // Plain HTTP: a 400 in plain HTTP naming https://, then closed.
    let mut plain = TcpStream::connect(&server.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    plain
        .read_to_string(&mut answer)
        .expect("the server answers and closes, without waiting for the timeout");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("https://"), "{answer}");

    // The CLI pointed at http:// shows that answer.
    let output = common::command()
        .args(["cases"])
        .env("CUSTODY_URL", format!("http://{}", server.addr))
        .env("CUSTODY_TOKEN", &server.admin_token)
        .output()
        .unwrap();
    assert_ne!(output.status.code(), Some(0));
    assert!(
        common::stderr(&output).contains("speaks HTTPS"),
        "{}",
        common::stderr(&output)
    );

    // A handshake that starts and stalls (a record header, then nothing)
    // is closed at the header-read timeout (1 s here), like a slow header.
    for stall in [&b""[..], &[0x16, 0x03, 0x01][..]] {
        let mut stalled = TcpStream::connect(&server.addr).unwrap();
        stalled.write_all(stall).unwrap();
        stalled
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let started = Instant::now();
        let mut sink = Vec::new();
        let _ = stalled.read_to_end(&mut sink);
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_secs(10),
            "a stalled handshake ({stall:?}) stayed open {waited:?}"
        );
    }

    // And the server still serves.
    let health = get_trusting(&server, &[&pki.ca_cert()], &format!("{url}/healthz"), None);
    assert_eq!(health.unwrap().0, 200);
}

#[test]
fn over_the_connection_limit_a_tls_connection_is_closed_unanswered() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path(), "limit");
    let (server, url) = start_https_with(
        &pki.issue("server", 1),
        "max_connections = 1\nheader_read_timeout_seconds = 60\n",
    );
    // One connection that has not begun its handshake holds the one slot
    // (connections are accepted in the order they were made).
    let held = TcpStream::connect(&server.addr).unwrap();
    let mut extra = TcpStream::connect(&server.addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let _ = extra.read_to_end(&mut received);
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the connection over the limit stayed open {:?}",
        started.elapsed()
    );
    // Its slot back, the server serves again.
    drop(held);
    common::wait_until("the server serves HTTPS again", || {
        get_trusting(&server, &[&pki.ca_cert()], &format!("{url}/healthz"), None)
            .is_ok_and(|(status, _)| status == 200)
    });
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_the_old_one_when_the_new_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let first = Pki::create(dir.path(), "first");
    let second = Pki::create(dir.path(), "second");
    let served = first.issue("served", 1);
    let (server, url) = start_https(&served);
    let hangup = || {
        let status = Command::new("kill")
            .args(["-HUP", &server.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let healthy = |ca: &Path| {
        get_trusting(&server, &[ca], &format!("{url}/healthz"), None)
            .is_ok_and(|(status, _)| status == 200)
    };
    assert!(healthy(&first.ca_cert()));
    assert!(!healthy(&second.ca_cert()));

    // Renewed in place (as an ACME client does), then SIGHUP.
    let renewed = second.issue("renewed", 1);
    std::fs::copy(&renewed.cert, &served.cert).unwrap();
    std::fs::copy(&renewed.key, &served.key).unwrap();
    hangup();
    common::wait_until("the renewed certificate is served", || {
        healthy(&second.ca_cert())
    });
    assert!(!healthy(&first.ca_cert()));

    // A bad pair is refused and the served one stays.
    std::fs::write(&served.cert, "not a certificate\n").unwrap();
    hangup();
    common::wait_until("the refused reload is logged", || {
        server.log().contains("was not reloaded")
    });
    assert!(healthy(&second.ca_cert()));
}

#[test]
fn bad_certificate_files_stop_the_start_with_a_clear_error_and_nothing_served() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path(), "c");
    let good = pki.issue("good", 1);
    let other = pki.issue("other", 1);
    let expired = pki.issue("expired", -1);
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN NOTHING-----\nabc\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let s = |path: &Path| path.to_str().unwrap().to_string();
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "missing certificate file",
            vec![
                "--tls-cert".into(),
                s(&missing),
                "--tls-key".into(),
                s(&good.key),
            ],
            "cannot read the TLS certificate",
        ),
        (
            "missing key file",
            vec![
                "--tls-cert".into(),
                s(&good.cert),
                "--tls-key".into(),
                s(&missing),
            ],
            "cannot read the TLS private key",
        ),
        (
            "no certificate in the file",
            vec![
                "--tls-cert".into(),
                s(&garbage),
                "--tls-key".into(),
                s(&good.key),
            ],
            "holds no PEM certificate",
        ),
        (
            "a certificate given as the key",
            vec![
                "--tls-cert".into(),
                s(&good.cert),
                "--tls-key".into(),
                s(&good.cert),
            ],
            "holds no PEM private key",
        ),
        (
            "the key of another certificate",
            vec![
                "--tls-cert".into(),
                s(&good.cert),
                "--tls-key".into(),
                s(&other.key),
            ],
            "does not belong to the certificate",
        ),
        (
            "an expired certificate",
            vec![
                "--tls-cert".into(),
                s(&expired.cert),
                "--tls-key".into(),
                s(&expired.key),
            ],
            "expired at",
        ),
        (
            "a certificate without its key",
            vec!["--tls-cert".into(), s(&good.cert)],
            "--tls-key (server.tls_key) is not",
        ),
        (
            "a key without its certificate",
            vec!["--tls-key".into(), s(&good.key)],
            "--tls-cert (server.tls_cert) is not",
        ),
    ];
    for (what, flags, expected) in cases {
        let data = dir.path().join(format!("data-{}", what.replace(' ', "-")));
        let mut serve = common::command();
        serve
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .args(&flags)
            .env_remove("CUSTODY_TLS_CERT")
            .env_remove("CUSTODY_TLS_KEY")
            .env("CUSTODY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = serve.spawn().expect("spawn custody serve");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what}: custody serve started instead of refusing");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(status.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{what}: expected `{expected}` in {stderr}"
        );
        assert!(stderr.contains("hint:"), "{what}: no hint in {stderr}");
        assert!(!stderr.contains("listening on"), "{what}: {stderr}");
        // Refused before the data directory was touched: nothing was made.
        assert!(!data.exists(), "{what}: the data directory was created");
    }
}

#[test]
fn the_config_file_needs_both_tls_settings() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("custody.toml");
    std::fs::write(&config, "[server]\ntls_cert = \"/nonexistent/cert.pem\"\n").unwrap();
    let data = dir.path().join("data");
    let output = common::command()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .env_remove("CUSTODY_TLS_CERT")
        .env_remove("CUSTODY_TLS_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        common::stderr(&output).contains("--tls-key (server.tls_key) is not"),
        "{}",
        common::stderr(&output)
    );
    assert!(!data.exists());
}
