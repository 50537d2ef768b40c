//! The HTTP edge under hostile connections, with real sockets against the
//! real `custody serve`: the header-read timeout (slowloris), the request
//! timeout, the connection limit, the shutdown deadline, and a write in
//! flight at SIGTERM; and token authentication over HTTP (expired tokens,
//! tokens that cannot be Custody tokens, non-ASCII headers).

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Body, Server, TestStore};
use serde_json::{json, Value};

/// An HTTP answer read from a raw socket.
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    head: String,
    body: String,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(&server.addr).expect("connect to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("set a read timeout");
    stream
}

/// Reads one answer (head and a `Content-Length` body, or until the server closes).
fn read_answer(stream: &mut TcpStream) -> Result<RawAnswer, String> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&received, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).into_owned();
            let length = head.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())
                    .flatten()
            });
            let body_start = end + 4;
            if let Some(length) = length {
                while received.len() < body_start + length {
                    match stream.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(read) => received.extend_from_slice(&chunk[..read]),
                        Err(error) => return Err(format!("reading the body: {error}")),
                    }
                }
            }
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|code| code.parse().ok())
                .ok_or_else(|| format!("no status line in {head:?}"))?;
            let body = String::from_utf8_lossy(&received[body_start..]).into_owned();
            return Ok(RawAnswer { status, head, body });
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(format!("closed after {} bytes", received.len())),
            Ok(read) => received.extend_from_slice(&chunk[..read]),
            Err(error) => return Err(format!("reading: {error}")),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Waits until the server closes `stream` (read returns 0 or a reset);
/// returns how long that took, or `None` if it was still open after `limit`.
fn wait_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("set a read timeout");
    let mut chunk = [0u8; 1024];
    while started.elapsed() < limit {
        match stream.read(&mut chunk) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

fn sigterm(server: &Server) {
    let status = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
}

/// Waits up to `limit` for the server process to exit; returns how long it took.
fn wait_exit(server: &mut Server, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if !server.is_running() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

const HALF_HEADER: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: custody\r\nX-Slow: ";

#[test]
fn slowloris_half_header_is_closed_after_the_header_read_timeout() {
    let (server, _) =
        Server::start_configured(None, Some("[server]\nheader_read_timeout_seconds = 1\n"));
    let mut slow = connect(&server);
    slow.write_all(HALF_HEADER).expect("send half a header");
    let closed = wait_closed(&mut slow, Duration::from_secs(10));
    let closed = closed.expect("a half-sent header must not hold the connection open");
    assert!(
        closed >= Duration::from_millis(800) && closed < Duration::from_secs(5),
        "closed after {closed:?}; the header-read timeout is 1 s"
    );
    // The server is fine afterwards.
    server.log_size();
}

#[test]
fn a_request_body_that_never_arrives_is_answered_408_after_the_request_timeout() {
    let (server, _) =
        Server::start_configured(None, Some("[server]\nrequest_timeout_seconds = 1\n"));
    let before = server.log_size();
    let mut slow = connect(&server);
    let head = format!(
        "POST /v1/cases HTTP/1.1\r\nHost: custody\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nIdempotency-Key: slow-body\r\nContent-Length: 200\r\n\r\n{{\"subject\":",
        server.admin_token
    );
    let started = Instant::now();
    slow.write_all(head.as_bytes()).expect("send the head");
    let answer = read_answer(&mut slow).expect("an answer to the stalled request");
    let took = started.elapsed();
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(answer.json()["type"], "urn:custody:problem:request-timeout");
    assert_eq!(answer.header("connection").as_deref(), Some("close"));
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(5),
        "answered after {took:?}; the request timeout is 1 s"
    );
    assert!(
        wait_closed(&mut slow, Duration::from_secs(5)).is_some(),
        "the connection is closed after the 408"
    );
    assert_eq!(server.log_size(), before, "a cut request writes nothing");
}

#[test]
fn sigterm_with_a_held_half_header_exits_within_the_shutdown_deadline() {
    let (mut server, _) = Server::start_configured(
        None,
        Some("[server]\nheader_read_timeout_seconds = 120\nshutdown_grace_seconds = 2\n"),
    );
    let mut slow = connect(&server);
    slow.write_all(HALF_HEADER).expect("send half a header");
    // Let the server accept it.
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&server);
    let exited = wait_exit(&mut server, Duration::from_secs(20));
    let exited = exited.expect("a held half-open connection must not keep the server up");
    assert!(
        exited < Duration::from_secs(6),
        "exited {exited:?} after SIGTERM; the deadline is 2 s"
    );
    assert!(
        wait_closed(&mut slow, Duration::from_secs(5)).is_some(),
        "the held connection is closed"
    );
    server.assert_verify_ok();
}

#[test]
fn connections_over_the_limit_are_refused_with_503_and_the_server_stays_responsive() {
    let (server, _) = Server::start_configured(
        None,
        Some("[server]\nmax_connections = 3\nheader_read_timeout_seconds = 60\n"),
    );
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = connect(&server);
            stream.write_all(HALF_HEADER).expect("send half a header");
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A fourth connection is answered at once, not left hanging.
    let started = Instant::now();
    let mut extra = connect(&server);
    extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: custody\r\n\r\n")
        .expect("send a request");
    let answer = read_answer(&mut extra).expect("an answer over the limit");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(answer.header("retry-after").as_deref(), Some("1"));
    assert_eq!(answer.json()["type"], "urn:custody:problem:unavailable");
    // The held connections are still served: finishing one header gets an answer.
    held[0].write_all(b"1\r\n\r\n").expect("finish the header");
    let answer = read_answer(&mut held[0]).expect("an answer on a held connection");
    assert_eq!(answer.status, 200, "{answer:?}");
    // Once the held connections go, new ones are served again.
    held.clear();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut fresh = connect(&server);
        fresh
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: custody\r\nConnection: close\r\n\r\n")
            .expect("send a request");
        let answer = read_answer(&mut fresh).expect("an answer");
        if answer.status == 200 {
            break;
        }
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(
            Instant::now() < deadline,
            "the server still refuses after the held connections closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_write_in_flight_at_sigterm_is_finished_answered_and_kept() {
    let (mut server, _) = Server::start_configured(
        None,
        Some("[server]\nshutdown_grace_seconds = 10\nheader_read_timeout_seconds = 120\n"),
    );
    let body = serde_json::to_vec(&json!({
        "subject": {"kind": "user", "id": "alice"},
        "entitlement": "admin",
        "justification": "in flight at SIGTERM",
    }))
    .unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut writer = connect(&server);
    let head = format!(
        "POST /v1/cases HTTP/1.1\r\nHost: custody\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nIdempotency-Key: in-flight\r\nContent-Length: {}\r\n\r\n",
        server.admin_token,
        body.len()
    );
    writer.write_all(head.as_bytes()).expect("send the head");
    writer.write_all(first).expect("send half the body");
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&server);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.is_running(),
        "the server waits for the request in progress"
    );
    // New connections are no longer accepted.
    let refused = TcpStream::connect(&server.addr).and_then(|mut stream| {
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: custody\r\n\r\n")?;
        let mut buffer = [0u8; 64];
        stream.read(&mut buffer)
    });
    assert!(
        matches!(refused, Err(_) | Ok(0)),
        "a connection after SIGTERM is not served: {refused:?}"
    );
    writer.write_all(rest).expect("send the rest of the body");
    let answer = read_answer(&mut writer).expect("the write in flight is answered");
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(answer.header("connection").as_deref(), Some("close"));
    let case_id = answer.json()["case_id"]
        .as_str()
        .expect("the answer names the case")
        .to_string();
    let exited = wait_exit(&mut server, Duration::from_secs(10));
    assert!(
        exited.is_some(),
        "the server exits once the write is answered"
    );
    server.restart_configured();
    let case = server.get_json(&format!("/v1/cases/{case_id}"));
    assert_eq!(case["state"], "open", "{case}");
    assert_eq!(case["events"].as_array().map(Vec::len), Some(1));
    server.assert_verify_ok();
}

/// A write attempted with `authorization`: it must be a 401 problem with
/// `detail` containing `why`, and nothing may be written.
#[track_caller]
fn assert_unauthorized_writes_nothing(server: &Server, authorization: &[u8], why: &str) {
    let before = server.log_size();
    let cases = server.case_count();
    let body = br#"{"subject":{"kind":"user","id":"mallory"},"entitlement":"admin"}"#;
    let mut stream = connect(server);
    let mut request = Vec::new();
    request.extend_from_slice(b"POST /v1/cases HTTP/1.1\r\nHost: custody\r\nAuthorization: ");
    request.extend_from_slice(authorization);
    request.extend_from_slice(
        format!(
            "\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(body);
    stream.write_all(&request).expect("send the request");
    let answer = read_answer(&mut stream).expect("an answer");
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/problem+json"),
        "{answer:?}"
    );
    assert_eq!(answer.header("www-authenticate").as_deref(), Some("Bearer"));
    let problem = answer.json();
    assert_eq!(
        problem["type"], "urn:custody:problem:unauthorized",
        "{problem}"
    );
    assert_eq!(problem["status"], 401, "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(why), "detail {detail:?} should say {why:?}");
    assert_eq!(server.log_size(), before, "a refused write appends nothing");
    assert_eq!(server.case_count(), cases, "a refused write opens no case");
}

#[test]
fn an_expired_token_is_refused_401_and_writes_nothing() {
    // In this process, on a test clock (`common::in_process`): the token
    // expires when the test moves the clock.
    let (server, _) = Server::start_in_process(TestStore::Embedded, None);
    server.cli_ok(&server.admin_token, &["principal", "add", "brief"]);
    let issued = server.http(
        "POST",
        "/v1/principals/brief/tokens",
        Some(&server.admin_token),
        &[],
        Body::Json(json!({"ttl": "1s"})),
    );
    assert_eq!(issued.status, 201, "{}", issued.text);
    let token = issued.json["token"].as_str().expect("a token").to_string();
    // Valid at first...
    let whoami = server.http("GET", "/v1/whoami", Some(&token), &[], Body::None);
    assert_eq!(whoami.status, 200, "{}", whoami.text);
    server.clock().advance_seconds(1);
    // ...and refused once expired (at its expiry: `expires_at <= now`).
    assert_unauthorized_writes_nothing(
        &server,
        format!("Bearer {token}").as_bytes(),
        "unknown or has expired",
    );
}

#[test]
fn a_token_without_the_cust_prefix_is_refused_401_and_writes_nothing() {
    let server = Server::start();
    let bare = server
        .admin_token
        .strip_prefix("cust_")
        .expect("tokens start with cust_");
    assert_unauthorized_writes_nothing(
        &server,
        format!("Bearer {bare}").as_bytes(),
        "does not start with `cust_`",
    );
    assert_unauthorized_writes_nothing(
        &server,
        format!("Bearer CUST_{bare}").as_bytes(),
        "does not start with `cust_`",
    );
}

#[test]
fn a_token_over_256_characters_is_refused_401_and_writes_nothing() {
    let server = Server::start();
    // The real token, padded: only the length is wrong.
    let long = format!(
        "{}{}",
        server.admin_token,
        "0".repeat(257 - server.admin_token.len())
    );
    assert_eq!(long.len(), 257);
    assert_unauthorized_writes_nothing(
        &server,
        format!("Bearer {long}").as_bytes(),
        "longer than 256 characters",
    );
    let huge = format!("cust_{}", "a".repeat(4000));
    assert_unauthorized_writes_nothing(
        &server,
        format!("Bearer {huge}").as_bytes(),
        "longer than 256 characters",
    );
}

#[test]
fn a_non_ascii_authorization_header_is_refused_401_and_writes_nothing() {
    let server = Server::start();
    // UTF-8 (é) and a lone obs-text byte, each after a valid token.
    let mut utf8 = format!("Bearer {}", server.admin_token).into_bytes();
    utf8.extend_from_slice("é".as_bytes());
    assert_unauthorized_writes_nothing(&server, &utf8, "non-ASCII");
    let mut latin1 = format!("Bearer {}", server.admin_token).into_bytes();
    latin1.push(0xff);
    assert_unauthorized_writes_nothing(&server, &latin1, "non-ASCII");
}
