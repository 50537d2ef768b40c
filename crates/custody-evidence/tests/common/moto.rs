//! A real S3 server for the tests: moto's standalone server (PyPI package
//! `moto[server]`), started once per test binary.
//!
//! moto is used from the system Python if it is importable there; otherwise
//! from `$CUSTODY_MOTO_DIR` (default `/tmp/custody-moto`), where it is
//! installed with `python3 -m pip install --target` on first use and reused
//! afterwards. The server is started through a small shell watchdog that
//! stops it (by its own process ID) as soon as the test process is gone, so
//! no server outlives the tests, even after a panic.
//!
//! moto accepts any signature by default ([`moto`]). A second server,
//! [`moto_checking_signatures`], has every request's SigV4 signature checked
//! by an independent implementation (moto verifies with botocore's signer):
//! the helper creates an IAM user with an `s3:*` policy and an access key
//! while authentication is still off, then switches it on with moto's
//! `/moto-api/reset-auth`. That server cannot check `ListObjectsV2` with a
//! prefix: moto re-signs the query as werkzeug decoded it (`%2F` becomes
//! `/`), whereas SigV4 (and real S3) sign the encoded form, so correct
//! signatures are refused there. The AWS documentation's list example in
//! the unit tests covers the query encoding instead.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use custody_evidence::sigv4::{
    self, Credentials, RequestToSign, SigningScope, EMPTY_PAYLOAD_SHA256,
};
use custody_evidence::{S3BlobStore, S3Config, Sha256Digest};

/// A running moto server.
pub struct Moto {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// `127.0.0.1:<port>`.
    pub authority: String,
    /// The access key the server knows.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
}

/// The server of this test binary that accepts any signature, started on
/// first use.
pub fn moto() -> &'static Moto {
    static SERVER: OnceLock<Result<Moto, String>> = OnceLock::new();
    match SERVER.get_or_init(|| start(false)) {
        Ok(server) => server,
        Err(problem) => panic!("could not start the moto S3 server: {problem}"),
    }
}

/// The server of this test binary that checks every signature, started on
/// first use.
pub fn moto_checking_signatures() -> &'static Moto {
    static SERVER: OnceLock<Result<Moto, String>> = OnceLock::new();
    match SERVER.get_or_init(|| start(true)) {
        Ok(server) => server,
        Err(problem) => panic!("could not start the signature-checking moto S3 server: {problem}"),
    }
}

pub const REGION: &str = "us-east-1";

/// A config for a bucket on the [`moto`] server, staging in `staging`.
pub fn config(bucket: &str, staging: PathBuf) -> S3Config {
    config_on(moto(), bucket, staging)
}

/// A config for a bucket on `server`, staging in `staging`.
pub fn config_on(server: &Moto, bucket: &str, staging: PathBuf) -> S3Config {
    S3Config {
        endpoint: server.endpoint.clone(),
        bucket: bucket.to_string(),
        region: REGION.into(),
        access_key_id: server.access_key_id.clone(),
        secret_access_key: server.secret_access_key.clone(),
        prefix: Some("evidence".into()),
        path_style: true,
        staging_directory: Some(staging),
    }
}

/// A store on a new bucket (created with the store's signed PUT).
pub async fn store_on_new_bucket(bucket: &str, staging: PathBuf) -> S3BlobStore {
    let store = S3BlobStore::new(config(bucket, staging)).unwrap();
    store.create_bucket().await.unwrap();
    store
}

/// Sends a request signed with our SigV4, without going through the store.
pub async fn raw_request(
    method: reqwest::Method,
    path: &str,
    query: &[(&str, &str)],
    body: Vec<u8>,
) -> reqwest::Response {
    let server = moto();
    let payload_hash = if body.is_empty() {
        EMPTY_PAYLOAD_SHA256.to_string()
    } else {
        Sha256Digest::of(&body).to_hex()
    };
    let amz_date = sigv4::amz_date(SystemTime::now());
    let authorization = sigv4::authorization(
        &Credentials {
            access_key_id: server.access_key_id.clone(),
            secret_access_key: server.secret_access_key.clone(),
        },
        &SigningScope {
            amz_date: &amz_date,
            region: REGION,
            service: "s3",
        },
        &RequestToSign {
            method: method.as_str(),
            canonical_uri: path,
            query,
            headers: &[
                ("host", &server.authority),
                ("x-amz-content-sha256", &payload_hash),
                ("x-amz-date", &amz_date),
            ],
            payload_sha256_hex: &payload_hash,
        },
    );
    let query_string = sigv4::canonical_query_string(query);
    let url = if query_string.is_empty() {
        format!("{}{path}", server.endpoint)
    } else {
        format!("{}{path}?{query_string}", server.endpoint)
    };
    reqwest::Client::new()
        .request(method, url)
        .header("x-amz-content-sha256", payload_hash)
        .header("x-amz-date", amz_date)
        .header("authorization", authorization)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Every key in the bucket, listed without the store's help.
pub async fn raw_list_keys(bucket: &str) -> Vec<String> {
    let response = raw_request(
        reqwest::Method::GET,
        &format!("/{bucket}"),
        &[("list-type", "2")],
        Vec::new(),
    )
    .await;
    assert!(
        response.status().is_success(),
        "listing {bucket}: {}",
        response.status()
    );
    let body = response.text().await.unwrap();
    body.split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split("</Key>").next())
        .map(str::to_owned)
        .collect()
}

fn start(check_signatures: bool) -> Result<Moto, String> {
    let python_path = find_or_install_moto()?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|error| format!("no free port: {error}"))?
        .port();
    let log_path = std::env::temp_dir().join(format!("custody-moto-{port}.log"));
    let log = std::fs::File::create(&log_path)
        .map_err(|error| format!("cannot create {}: {error}", log_path.display()))?;
    let watchdog = format!(
        "python3 -m moto.server -H 127.0.0.1 -p {port} & server=$!\n\
         trap 'kill $server 2>/dev/null' EXIT\n\
         while kill -0 {parent} 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 0.5; done",
        parent = std::process::id()
    );
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(watchdog)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|error| error.to_string())?)
        .stderr(log);
    if let Some(path) = &python_path {
        command.env("PYTHONPATH", path);
    }
    command
        .spawn()
        .map_err(|error| format!("cannot run sh: {error}"))?;

    let authority = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !answers_http(&authority) {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!(
                "moto did not answer on {authority} within 60 s; its output:\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The log only matters when the server does not come up; do not leave
    // one file per test run in the temporary directory.
    let _ = std::fs::remove_file(&log_path);
    let (access_key_id, secret_access_key) = if check_signatures {
        let key = create_access_key(&authority)?;
        // From now on every request must carry a valid signature of a known key.
        let reset = http_exchange(&authority, "POST", "/moto-api/reset-auth", &[], "0")?;
        if !reset.contains("\"ok\"") {
            return Err(format!("moto did not switch authentication on: {reset}"));
        }
        key
    } else {
        ("testing".to_string(), "testing".to_string())
    };
    Ok(Moto {
        endpoint: format!("http://{authority}"),
        authority,
        access_key_id,
        secret_access_key,
    })
}

fn answers_http(authority: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(authority) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut start = [0u8; 5];
    stream.read_exact(&mut start).is_ok() && &start == b"HTTP/"
}

/// `None` when the system Python has moto, else the directory to put on
/// `PYTHONPATH` (installing moto there first if needed).
fn find_or_install_moto() -> Result<Option<PathBuf>, String> {
    let importable = |python_path: Option<&PathBuf>| {
        let mut command = Command::new("python3");
        command
            .args(["-c", "import moto.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match python_path {
            Some(path) => command.env("PYTHONPATH", path),
            None => command.env_remove("PYTHONPATH"),
        };
        command.status().is_ok_and(|status| status.success())
    };
    if importable(None) {
        return Ok(None);
    }
    let directory = std::env::var_os("CUSTODY_MOTO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/custody-moto"));
    if importable(Some(&directory)) {
        return Ok(Some(directory));
    }
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&directory)
        .arg("moto[server]")
        .output()
        .map_err(|error| format!("cannot run python3 -m pip: {error}"))?;
    if !output.status.success() || !importable(Some(&directory)) {
        return Err(format!(
            "installing moto[server] into {} failed: {}",
            directory.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(Some(directory))
}

/// Creates an IAM user allowed `s3:*` and an access key for it, through
/// moto's IAM query API (unauthenticated at this point).
fn create_access_key(authority: &str) -> Result<(String, String), String> {
    const USER: &str = "custody-evidence-tests";
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let mut answer = String::new();
    for parameters in [
        vec![("Action", "CreateUser"), ("UserName", USER)],
        vec![
            ("Action", "PutUserPolicy"),
            ("UserName", USER),
            ("PolicyName", "evidence-s3"),
            ("PolicyDocument", policy),
        ],
        vec![("Action", "CreateAccessKey"), ("UserName", USER)],
    ] {
        let mut form: Vec<String> = parameters
            .iter()
            .map(|(name, value)| format!("{name}={}", sigv4::uri_encode(value, true)))
            .collect();
        form.push("Version=2010-05-08".into());
        let body = form.join("&");
        // moto routes by the service named in the credential scope; the
        // signature itself is not checked yet.
        let amz_date = sigv4::amz_date(SystemTime::now());
        let authorization = sigv4::authorization(
            &Credentials {
                access_key_id: "AKIASETUP".into(),
                secret_access_key: "setup".into(),
            },
            &SigningScope {
                amz_date: &amz_date,
                region: REGION,
                service: "iam",
            },
            &RequestToSign {
                method: "POST",
                canonical_uri: "/",
                query: &[],
                headers: &[("host", authority), ("x-amz-date", &amz_date)],
                payload_sha256_hex: &Sha256Digest::of(body.as_bytes()).to_hex(),
            },
        );
        answer = http_exchange(
            authority,
            "POST",
            "/",
            &[
                ("Authorization", &authorization),
                ("X-Amz-Date", &amz_date),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            &body,
        )?;
        if !answer.starts_with("HTTP/1.1 200") && !answer.starts_with("HTTP/1.0 200") {
            return Err(format!("moto IAM {} failed: {answer}", parameters[0].1));
        }
    }
    let value = |tag: &str| {
        answer
            .split(&format!("<{tag}>"))
            .nth(1)
            .and_then(|rest| rest.split(&format!("</{tag}>")).next())
            .map(str::to_owned)
            .ok_or_else(|| format!("no <{tag}> in moto's CreateAccessKey answer: {answer}"))
    };
    Ok((value("AccessKeyId")?, value("SecretAccessKey")?))
}

/// One HTTP/1.0 request over a plain socket; returns the whole answer.
fn http_exchange(
    authority: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<String, String> {
    let mut stream =
        TcpStream::connect(authority).map_err(|error| format!("connect to moto: {error}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|error| error.to_string())?;
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .map_err(|error| format!("send to moto: {error}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|error| format!("read from moto: {error}"))?;
    Ok(answer)
}
