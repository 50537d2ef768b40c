//! Continuous export from `custody serve` to the push sinks of
//! `[[export.sinks]]`: a real rsyslog over TCP and over TLS (a CA made by
//! the test), Splunk HEC and webhook receivers started in the test, a sink
//! that goes down mid-stream and comes back, two nodes on one PostgreSQL,
//! and a rotating file.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener as StdTcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;

use crate::common::{self, wait_until, HttpStub, Server, TestStore};

// --- the ledger side ------------------------------------------------------

/// Four principals and one case driven from request to review by them.
struct Parties {
    alice: String,
    bob: String,
    carol: String,
    dave: String,
}

impl Parties {
    fn add(server: &Server) -> Parties {
        Parties {
            alice: server.principal("alice"),
            bob: server.principal("bob"),
            carol: server.principal("carol"),
            dave: server.principal("dave"),
        }
    }

    /// Request (alice), approval (bob), execution (carol), review (dave).
    fn whole_case(&self, server: &Server, entitlement: &str) -> String {
        let case = self.request(server, entitlement);
        server.cli_ok(&self.bob, &["approve", &case]);
        server.cli_ok(&self.carol, &["execute", &case]);
        server.cli_ok(&self.dave, &["review", &case, "--outcome", "confirmed"]);
        case
    }

    /// A request by alice; returns the case ID.
    fn request(&self, server: &Server, entitlement: &str) -> String {
        server
            .cli_ok(
                &self.alice,
                &[
                    "request",
                    "--subject",
                    "user:erin",
                    "--entitlement",
                    entitlement,
                ],
            )
            .trim()
            .to_string()
    }
}

/// The event IDs of the whole log, in log order, read through the API.
fn log_event_ids(server: &Server) -> Vec<String> {
    use base64::Engine;
    let size = server.log_size();
    let mut ids = Vec::new();
    while (ids.len() as u64) < size {
        let page = server.get_json(&format!("/v1/log/entries?start={}&end={size}", ids.len()));
        let entries = page["entries"].as_array().unwrap();
        assert!(!entries.is_empty());
        for entry in entries {
            let leaf = base64::engine::general_purpose::STANDARD
                .decode(entry["leaf"].as_str().unwrap())
                .unwrap();
            let event: Value = serde_json::from_slice(&leaf).unwrap();
            ids.push(event["event_id"].as_str().unwrap().to_string());
        }
    }
    ids
}

/// One metric's value for one sink from a node's `/metrics`, if present.
fn sink_metric(server: &Server, url: &str, metric: &str, sink: &str) -> Option<f64> {
    let text = server
        .runtime()
        .block_on(async {
            server
                .client()
                .get(format!("{url}/metrics"))
                .send()
                .await?
                .text()
                .await
        })
        .expect("GET /metrics");
    let name = format!("{metric}{{sink=\"{sink}\"}}");
    text.lines()
        .find_map(|line| line.strip_prefix(&name))
        .map(|value| value.trim().parse::<f64>().unwrap())
}

fn free_port() -> u16 {
    StdTcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// --- a real rsyslog -------------------------------------------------------

/// The certificates of a test CA and of a server it signed for 127.0.0.1
/// and localhost, made with the openssl command.
struct TestCa {
    ca_cert: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

impl TestCa {
    fn create(dir: &Path, name: &str) -> TestCa {
        let path = |file: &str| dir.join(format!("{name}-{file}"));
        let run = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .output()
                .expect("run openssl");
            assert!(
                output.status.success(),
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let s = |p: &PathBuf| p.to_str().unwrap().to_string();
        let (ca_key, ca_cert) = (path("ca.key"), path("ca.pem"));
        let (key, csr, cert, ext) = (
            path("server.key"),
            path("server.csr"),
            path("server.pem"),
            path("server.ext"),
        );
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=custody test CA {name}"),
            "-keyout",
            &s(&ca_key),
            "-out",
            &s(&ca_cert),
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &s(&key),
            "-out",
            &s(&csr),
        ]);
        std::fs::write(
            &ext,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            &s(&csr),
            "-CA",
            &s(&ca_cert),
            "-CAkey",
            &s(&ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &s(&ext),
            "-out",
            &s(&cert),
        ]);
        TestCa {
            ca_cert,
            server_cert: cert,
            server_key: key,
        }
    }
}

/// `rsyslogd` in the foreground with a configuration of its own: imtcp on a
/// loopback port (octet-counted framing, TLS through the openssl driver
/// when given certificates), every message's raw text into one file.
struct Rsyslog {
    port: u16,
    output: PathBuf,
    config: PathBuf,
    pid_file: PathBuf,
    child: Option<Child>,
}

impl Rsyslog {
    fn start(dir: &Path, name: &str, tls: Option<&TestCa>) -> Rsyslog {
        let work = dir.join(format!("{name}-work"));
        std::fs::create_dir_all(&work).unwrap();
        let output = dir.join(format!("{name}.log"));
        let port = free_port();
        let driver = match tls {
            None => String::new(),
            Some(ca) => format!(
                "global(DefaultNetstreamDriver=\"ossl\" DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\")\n",
                ca.ca_cert.display(),
                ca.server_cert.display(),
                ca.server_key.display()
            ),
        };
        let stream = if tls.is_some() {
            " StreamDriver.Name=\"ossl\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\""
        } else {
            ""
        };
        let config = dir.join(format!("{name}.conf"));
        std::fs::write(
            &config,
            format!(
                "global(workDirectory=\"{work}\")\n{driver}\
                 module(load=\"imtcp\"{stream})\n\
                 input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
                 template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
                 action(type=\"omfile\" file=\"{output}\" template=\"raw\" flushOnTXEnd=\"on\" asyncWriting=\"off\")\n",
                work = work.display(),
                output = output.display(),
            ),
        )
        .unwrap();
        let mut rsyslog = Rsyslog {
            port,
            output,
            config,
            pid_file: dir.join(format!("{name}.pid")),
            child: None,
        };
        rsyslog.spawn();
        rsyslog
    }

    fn spawn(&mut self) {
        let child = Command::new(rsyslogd())
            .arg("-n")
            .arg("-f")
            .arg(&self.config)
            .arg("-i")
            .arg(&self.pid_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rsyslogd (cargo xtask test installs it)");
        self.child = Some(child);
        let port = self.port;
        wait_until("rsyslogd to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The messages received so far, one per line.
    fn messages(&self) -> Vec<String> {
        std::fs::read_to_string(&self.output)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

fn rsyslogd() -> &'static str {
    if Path::new("/usr/sbin/rsyslogd").exists() {
        "/usr/sbin/rsyslogd"
    } else {
        "rsyslogd"
    }
}

/// The `[custody@...]` structured data of one RFC 5424 message, parsed the
/// way a collector would: `name="value"` pairs with `\"`, `\\` and `\]`
/// escapes. Repeated names keep every value in order.
fn structured_data(message: &str) -> BTreeMap<String, Vec<String>> {
    let start = message.find("[custody@").expect("a custody SD-ELEMENT");
    let mut params = BTreeMap::new();
    let mut rest = &message[start..];
    rest = &rest[rest.find(' ').unwrap() + 1..];
    while let Some(equals) = rest.find("=\"") {
        let name = rest[..equals].trim().to_string();
        let mut value = String::new();
        let mut chars = rest[equals + 2..].char_indices();
        let mut end = None;
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        if !matches!(escaped, '"' | '\\' | ']') {
                            value.push('\\');
                        }
                        value.push(escaped);
                    }
                }
                '"' => {
                    end = Some(equals + 2 + at + 1);
                    break;
                }
                _ => value.push(c),
            }
        }
        params.entry(name).or_insert_with(Vec::new).push(value);
        let end = end.expect("a closed PARAM-VALUE");
        rest = &rest[end..];
        if rest.starts_with(']') {
            break;
        }
    }
    params
}

fn one(params: &BTreeMap<String, Vec<String>>, name: &str) -> String {
    let values = params
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {params:?}"));
    assert_eq!(values.len(), 1, "{name}: {values:?}");
    values[0].clone()
}

#[test]
fn a_real_rsyslog_receives_the_push_over_tcp_and_tls_with_the_case_id_and_all_four_roles() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::create(dir.path(), "good");
    let other_ca = TestCa::create(dir.path(), "other");
    let mut plain = Rsyslog::start(dir.path(), "plain", None);
    let mut tls = Rsyslog::start(dir.path(), "tls", Some(&ca));
    // A third sink points at the TLS collector but trusts another CA: the
    // handshake must fail and nothing reach the collector through it.
    let config = format!(
        "[export]\npoll_interval_ms = 50\nbackoff_initial_ms = 50\nbackoff_max_ms = 300\nhost = \"custody-test\"\n\
         [[export.sinks]]\nkind = \"syslog\"\nname = \"plain\"\naddress = \"{}\"\ntransport = \"tcp\"\n\
         [[export.sinks]]\nkind = \"syslog\"\nname = \"tls\"\naddress = \"{}\"\nca_file = \"{}\"\n\
         [[export.sinks]]\nkind = \"syslog\"\nname = \"untrusted\"\naddress = \"{}\"\nca_file = \"{}\"\nserver_name = \"localhost\"\n",
        plain.address(),
        tls.address(),
        ca.ca_cert.display(),
        tls.address(),
        other_ca.ca_cert.display(),
    );
    let (mut server, _) = Server::start_on(TestStore::Embedded, None, Some(&config));
    let parties = Parties::add(&server);
    // The case is requested and approved, pushed, and the server restarted
    // before it is executed and reviewed: the restarted worker knows the
    // requester and the approver only from the ledger (its cursor is in
    // the middle of the case), and must name them all the same.
    let case = parties.request(&server, "db-admin");
    server.cli_ok(&parties.bob, &["approve", &case]);
    let pushed = server.log_size() as usize;
    wait_until("the first half to reach rsyslog", || {
        plain.messages().len() >= pushed && tls.messages().len() >= pushed
    });
    server.restart_configured();
    server.cli_ok(&parties.carol, &["execute", &case]);
    server.cli_ok(&parties.dave, &["review", &case, "--outcome", "confirmed"]);
    let events = server.events(&server.admin_token, &case);
    let review = events.last().unwrap();
    assert_eq!(review["kind"], "review_completed", "{review}");
    let principal = |kind: &str| {
        events
            .iter()
            .find(|event| event["role"] == kind)
            .unwrap_or_else(|| panic!("no {kind} event"))["actor"]["principal"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let all_ids = log_event_ids(&server);
    for collector in [&plain, &tls] {
        wait_until("the whole log to reach rsyslog", || {
            collector.messages().len() >= all_ids.len()
        });
        let messages = collector.messages();
        // Every event of the log, once, in log order, each a whole RFC 5424
        // message from the configured host.
        let received: Vec<String> = messages
            .iter()
            .map(|message| {
                assert!(message.starts_with('<'), "{message}");
                assert!(
                    message.contains(" custody-test custody "),
                    "the HOSTNAME and APP-NAME: {message}"
                );
                one(&structured_data(message), "event_id")
            })
            .collect();
        assert_eq!(received, all_ids);
        // The review's message names the case and who played each role.
        let review_message = messages
            .iter()
            .find(|message| message.contains(review["event_id"].as_str().unwrap()))
            .unwrap();
        let params = structured_data(review_message);
        assert_eq!(one(&params, "case_id"), case);
        assert_eq!(one(&params, "role"), "reviewer");
        assert_eq!(one(&params, "requester"), principal("requester"));
        assert_eq!(params["approver"], vec![principal("approver")]);
        assert_eq!(one(&params, "executor"), principal("executor"));
        assert_eq!(one(&params, "reviewer"), principal("reviewer"));
        let distinct: BTreeSet<String> = ["requester", "approver", "executor", "reviewer"]
            .into_iter()
            .map(principal)
            .collect();
        assert_eq!(distinct.len(), 4, "four different principals");
        // Every message of the case carries its ID.
        let of_case = messages
            .iter()
            .filter(|message| one(&structured_data(message), "case_id") == case)
            .count();
        assert_eq!(of_case, events.len());
    }
    // The TLS collector got each event once: the untrusted sink never
    // completed a handshake, and says why.
    wait_until("the untrusted sink to report the failed handshake", || {
        server.log().contains("sink `untrusted`: TLS with")
    });
    assert_eq!(tls.messages().len(), all_ids.len());
    let lag = sink_metric(
        &server,
        &server.url,
        "custody_export_lag_events",
        "untrusted",
    );
    assert!(lag.is_none_or(|lag| lag > 0.0), "{lag:?}");
    wait_until("the tls cursor to pass the last event", || {
        sink_metric(&server, &server.url, "custody_export_cursor", "tls")
            == Some(all_ids.len() as f64)
    });

    // Both collectors go down (killed) and come back on their ports: the
    // sinks notice the closed connections, reconnect once the collectors
    // answer, and resume at their cursors: every event once, in log order.
    plain.stop();
    tls.stop();
    parties.whole_case(&server, "while-rsyslog-is-down");
    let all_ids = log_event_ids(&server);
    wait_until("the sinks to fail against the stopped collectors", || {
        sink_metric(
            &server,
            &server.url,
            "custody_export_failures_total",
            "plain",
        )
        .is_some_and(|failures| failures >= 1.0)
    });
    plain.spawn();
    tls.spawn();
    for collector in [&plain, &tls] {
        wait_until("the push to resume", || {
            collector.messages().len() >= all_ids.len()
        });
        let received: Vec<String> = collector
            .messages()
            .iter()
            .map(|message| one(&structured_data(message), "event_id"))
            .collect();
        assert_eq!(received, all_ids);
    }
}

// --- HTTP receivers -------------------------------------------------------

/// What an HTTP receiver saw: each request's headers and body.
#[derive(Default)]
struct Seen {
    requests: Mutex<Vec<(HeaderMap, Bytes)>>,
    down: AtomicBool,
}

impl Seen {
    fn requests(&self) -> Vec<(HeaderMap, Bytes)> {
        self.requests.lock().unwrap().clone()
    }
}

async fn receive(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if seen.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    seen.requests.lock().unwrap().push((headers, body));
    StatusCode::OK
}

fn receiver(path: &str) -> (HttpStub, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route(path, post(receive))
        .with_state(seen.clone());
    (HttpStub::serve(app, 2), seen)
}

const WEBHOOK_SECRET: &str = "a long random webhook secret";

/// The event IDs of every record a webhook receiver accepted, in arrival
/// order, after checking each request's signature and headers.
fn webhook_event_ids(seen: &Seen, sink: &str) -> Vec<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut ids = Vec::new();
    for (headers, body) in seen.requests() {
        let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_string();
        custody_notify::verify_webhook_signature(
            WEBHOOK_SECRET.as_bytes(),
            &header("custody-timestamp"),
            &body,
            &header("custody-signature"),
            now,
            300,
        )
        .expect("a valid signature");
        assert_eq!(header("content-type"), "application/x-ndjson");
        assert_eq!(header("custody-export-sink"), sink);
        let lines: Vec<Value> = body
            .split(|byte| *byte == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect();
        let (first, last) = header("custody-export-range")
            .split_once('-')
            .map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()))
            .unwrap();
        assert_eq!(
            last - first + 1,
            lines.len() as u64,
            "the range counts the records"
        );
        assert_eq!(
            header("custody-delivery-id"),
            format!("export:{sink}:{first}-{last}")
        );
        ids.extend(
            lines
                .iter()
                .map(|line| line["event_id"].as_str().unwrap().to_string()),
        );
    }
    ids
}

fn webhook_sink(name: &str, url: &str) -> String {
    format!(
        "[[export.sinks]]\nkind = \"webhook\"\nname = \"{name}\"\nurl = \"{url}\"\nsecret = \"{WEBHOOK_SECRET}\"\ntimeout_seconds = 2\n"
    )
}

#[test]
fn hec_and_webhook_receivers_get_the_token_the_envelope_and_the_signature() {
    let (hec, hec_seen) = receiver("/services/collector/event");
    let (hook, hook_seen) = receiver("/hook");
    let config = format!(
        "[export]\npoll_interval_ms = 50\n\
         [[export.sinks]]\nkind = \"hec\"\nname = \"splunk\"\nformat = \"jsonl\"\nurl = \"{}\"\ntoken = \"11111111-2222-3333-4444-555555555555\"\nsourcetype = \"custody:events\"\nindex = \"audit\"\nhost = \"node-a\"\n\
         {}",
        hec.base,
        webhook_sink("hook", &format!("{}/hook", hook.base)),
    );
    let (server, _) = Server::start_on(TestStore::Embedded, None, Some(&config));
    let parties = Parties::add(&server);
    let case = parties.whole_case(&server, "db-admin");
    let all_ids = log_event_ids(&server);

    wait_until("every event to reach the webhook", || {
        webhook_event_ids(&hook_seen, "hook").len() >= all_ids.len()
    });
    assert_eq!(webhook_event_ids(&hook_seen, "hook"), all_ids);

    let envelopes = || -> Vec<Value> {
        hec_seen
            .requests()
            .iter()
            .flat_map(|(headers, body)| {
                assert_eq!(
                    headers["authorization"],
                    "Splunk 11111111-2222-3333-4444-555555555555"
                );
                assert_eq!(headers["content-type"], "application/json");
                // HEC's batch form: envelopes one after another.
                serde_json::Deserializer::from_slice(body)
                    .into_iter::<Value>()
                    .map(Result::unwrap)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    wait_until("every event to reach HEC", || {
        envelopes().len() >= all_ids.len()
    });
    let envelopes = envelopes();
    let events = server.events(&server.admin_token, &case);
    for (index, envelope) in envelopes.iter().enumerate() {
        let event = &envelope["event"];
        assert_eq!(envelope["fields"]["event_id"], event["event_id"]);
        assert_eq!(envelope["fields"]["case_id"], event["case_id"]);
        assert_eq!(envelope["fields"]["log_index"], index.to_string());
        assert_eq!(envelope["host"], "node-a");
        assert_eq!(envelope["source"], "custody");
        assert_eq!(envelope["sourcetype"], "custody:events");
        assert_eq!(envelope["index"], "audit");
        assert_eq!(
            envelope
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<BTreeSet<_>>(),
            [
                "event",
                "fields",
                "host",
                "index",
                "source",
                "sourcetype",
                "time"
            ]
            .map(String::from)
            .into(),
        );
    }
    let ids: Vec<String> = envelopes
        .iter()
        .map(|envelope| envelope["event"]["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, all_ids);
    // `time` is the event's occurred_at in epoch seconds, to the microsecond.
    let request = &events[0];
    let envelope = envelopes
        .iter()
        .find(|envelope| envelope["event"]["event_id"] == request["event_id"])
        .unwrap();
    let occurred = custody_core::Timestamp::parse(request["occurred_at"].as_str().unwrap())
        .unwrap()
        .as_micros();
    // Read as written, not through a float.
    #[derive(serde::Deserialize)]
    struct Time {
        time: Box<serde_json::value::RawValue>,
        fields: Value,
    }
    let time = hec_seen
        .requests()
        .iter()
        .flat_map(|(_, body)| {
            serde_json::Deserializer::from_slice(body)
                .into_iter::<Time>()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        })
        .find(|raw| raw.fields["event_id"] == envelope["fields"]["event_id"])
        .unwrap()
        .time
        .get()
        .to_string();
    let (seconds, fraction) = time.split_once('.').unwrap();
    assert_eq!(fraction.len(), 6, "{time}");
    assert_eq!(
        seconds.parse::<i64>().unwrap() * 1_000_000 + fraction.parse::<i64>().unwrap(),
        occurred
    );
}

#[test]
fn a_sink_that_goes_down_mid_stream_gets_everything_once_when_it_returns() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let config = format!(
        "[export]\npoll_interval_ms = 50\nbatch_size = 3\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\n{}",
        webhook_sink("hook", &url)
    );
    let seen = Arc::new(Seen::default());
    let serve = |seen: Arc<Seen>| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        let app = Router::new().route("/hook", post(receive)).with_state(seen);
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        runtime
    };
    let receiving = serve(seen.clone());
    let (server, _) = Server::start_on(TestStore::Embedded, None, Some(&config));
    let parties = Parties::add(&server);
    parties.whole_case(&server, "first");
    let before = log_event_ids(&server);
    wait_until("the first events to arrive", || {
        webhook_event_ids(&seen, "hook").len() >= before.len()
    });

    // The receiver stops: connections are refused while cases go on.
    receiving.shutdown_background();
    for index in 0..3 {
        parties.whole_case(&server, &format!("while-down-{index}"));
    }
    let all_ids = log_event_ids(&server);
    wait_until("the failures to be counted", || {
        sink_metric(
            &server,
            &server.url,
            "custody_export_failures_total",
            "hook",
        )
        .is_some_and(|failures| failures >= 2.0)
    });
    // The lag counts the events not pushed (the gauge is refreshed at each
    // attempt, so it may trail the last writes by one attempt).
    let behind = (all_ids.len() - before.len()) as f64;
    wait_until("the lag to count every event not pushed", || {
        sink_metric(&server, &server.url, "custody_export_lag_events", "hook") == Some(behind)
    });
    wait_until("the lag in seconds to show", || {
        sink_metric(&server, &server.url, "custody_export_lag_seconds", "hook")
            .is_some_and(|seconds| seconds > 0.0)
    });
    assert_eq!(
        sink_metric(&server, &server.url, "custody_export_cursor", "hook"),
        Some(before.len() as f64),
        "the cursor waits where the sink stopped"
    );

    // Back on the same port: the push resumes at the cursor, and every
    // event arrives once, in log order, with nothing lost.
    let _receiving = serve(seen.clone());
    wait_until("the push to catch up", || {
        webhook_event_ids(&seen, "hook").len() >= all_ids.len()
    });
    assert_eq!(webhook_event_ids(&seen, "hook"), all_ids);
    wait_until("the lag to reach zero", || {
        sink_metric(&server, &server.url, "custody_export_lag_events", "hook") == Some(0.0)
    });
    assert_eq!(
        sink_metric(&server, &server.url, "custody_export_lag_seconds", "hook"),
        Some(0.0)
    );

    // A sink that answers 503 is an outage too, and so is a restart of
    // the server itself: the cursor is in the database.
    seen.down.store(true, Ordering::SeqCst);
    parties.whole_case(&server, "while-refused");
    let all_ids = log_event_ids(&server);
    wait_until("a refused batch to be counted", || {
        sink_metric(&server, &server.url, "custody_export_lag_events", "hook")
            .is_some_and(|lag| lag > 0.0)
    });
    let mut server = server;
    server.restart_configured();
    seen.down.store(false, Ordering::SeqCst);
    wait_until("the push to catch up after the restart", || {
        webhook_event_ids(&seen, "hook").len() >= all_ids.len()
    });
    assert_eq!(webhook_event_ids(&seen, "hook"), all_ids);
}

#[test]
fn two_nodes_on_one_postgres_push_each_event_once() {
    let (hook, seen) = receiver("/hook");
    let config = format!(
        "[export]\npoll_interval_ms = 20\nbatch_size = 2\nlease_seconds = 3\n{}",
        webhook_sink("hook", &format!("{}/hook", hook.base))
    );
    let (mut server, _) = Server::start_on(TestStore::Postgres, None, Some(&config));
    let database_url = server.database.as_ref().unwrap().url.clone();
    let second = server.root.path().join("second");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::copy(
        server.data.join("log-signing.key"),
        second.join("log-signing.key"),
    )
    .unwrap();
    let node = common::spawn_serve_configured(
        &second,
        Some(&database_url),
        server.config_path().as_deref(),
    )
    .expect("the second node starts");
    let parties = Parties::add(&server);
    // Cases written through both nodes, while both poll the one cursor.
    for index in 0..4 {
        parties.whole_case(&server, &format!("first-{index}"));
        let case = common::cli_at(
            &node.url,
            &parties.alice,
            &[
                "request",
                "--subject",
                "user:erin",
                "--entitlement",
                &format!("second-{index}"),
            ],
        );
        common::assert_success(&case, "request through the second node");
    }
    let all_ids = log_event_ids(&server);
    wait_until("every event to be pushed", || {
        webhook_event_ids(&seen, "hook").len() >= all_ids.len()
    });
    assert_eq!(
        webhook_event_ids(&seen, "hook"),
        all_ids,
        "each event once, in log order"
    );
    // The cursor moves just after the receiver accepts.
    wait_until("the cursor to pass the last event", || {
        cursor_row(&database_url, "hook").0 == all_ids.len() as i64
    });
    assert!(
        cursor_row(&database_url, "hook").1.is_some(),
        "a node holds the lease"
    );

    // The node holding the lease dies without giving it up; the other takes
    // over once it has run out, and pushes what follows, once.
    let first_holds =
        sink_metric(&server, &server.url, "custody_export_lease_held", "hook") == Some(1.0);
    if first_holds {
        server.restart();
    } else {
        drop(node);
    }
    for index in 0..2 {
        parties.whole_case(&server, &format!("after-{index}"));
    }
    let all_ids = log_event_ids(&server);
    wait_until("the survivor to push the rest", || {
        webhook_event_ids(&seen, "hook").len() >= all_ids.len()
    });
    assert_eq!(webhook_event_ids(&seen, "hook"), all_ids);
    wait_until("the cursor to pass the last event", || {
        cursor_row(&database_url, "hook").0 == all_ids.len() as i64
    });
}

/// The `export_cursors` row of a sink: its next index and lease owner.
fn cursor_row(database_url: &str, sink: &str) -> (i64, Option<String>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::{Connection, Row};
        let mut connection = sqlx::PgConnection::connect(database_url).await.unwrap();
        let row = sqlx::query("SELECT next_index, lease_owner FROM export_cursors WHERE sink = $1")
            .bind(sink)
            .fetch_one(&mut connection)
            .await
            .unwrap();
        (row.get("next_index"), row.get("lease_owner"))
    })
}

#[test]
fn a_file_sink_rotates_by_size_and_keeps_the_newest_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("custody-events.jsonl");
    let config = format!(
        "[export]\npoll_interval_ms = 50\n\
         [[export.sinks]]\nkind = \"file\"\nname = \"archive\"\npath = \"{}\"\nmax_bytes = 4096\nkeep = 2\n",
        path.display()
    );
    let (server, _) = Server::start_on(TestStore::Embedded, None, Some(&config));
    let parties = Parties::add(&server);
    for index in 0..6 {
        parties.whole_case(&server, &format!("rotated-{index}"));
    }
    let all_ids = log_event_ids(&server);
    let rotated = |number: u32| PathBuf::from(format!("{}.{number}", path.display()));
    let lines = |file: &Path| -> Vec<Value> {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    wait_until("the last event in the file", || {
        lines(&path)
            .last()
            .is_some_and(|last| last["event_id"] == all_ids.last().unwrap().as_str())
    });
    assert!(rotated(1).exists() && rotated(2).exists());
    assert!(!rotated(3).exists(), "keep = 2 keeps two rotated files");
    // Oldest to newest, the kept files hold a run of the log without a gap
    // or a duplicate, ending with its last event; each file is within the
    // limit, and the rotations dropped only the oldest events.
    let mut kept = Vec::new();
    for file in [rotated(2), rotated(1), path.clone()] {
        let size = std::fs::metadata(&file).unwrap().len();
        assert!(size <= 4096, "{}: {size} bytes", file.display());
        kept.extend(
            lines(&file)
                .iter()
                .map(|line| line["event_id"].as_str().unwrap().to_string()),
        );
    }
    assert!(kept.len() < all_ids.len(), "some events were rotated away");
    assert_eq!(kept, all_ids[all_ids.len() - kept.len()..]);
    // The rotated-away events did go out: the cursor moves past them all
    // (just after the last write).
    wait_until("the cursor to pass the last event", || {
        sink_metric(&server, &server.url, "custody_export_cursor", "archive")
            == Some(all_ids.len() as f64)
    });
}

#[test]
fn a_bad_sink_configuration_stops_start_up_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let init = common::command()
        .args(["init", "--json", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    common::assert_success(&init, "custody init");
    for (text, expected) in [
        (
            "[[export.sinks]]\nkind = \"syslog\"\nname = \"s\"\naddress = \"127.0.0.1:6514\"\nca_file = \"/nonexistent/ca.pem\"\n",
            "export sink `s`: cannot read ca_file /nonexistent/ca.pem",
        ),
        (
            "[[export.sinks]]\nkind = \"hec\"\nname = \"h\"\nurl = \"https://splunk:8088\"\n",
            "missing field `token`",
        ),
        (
            "[[export.sinks]]\nkind = \"file\"\nname = \"f\"\npath = \"/nonexistent/dir/x.log\"\n",
            "the directory /nonexistent/dir of path does not exist",
        ),
        (
            "[[export.sinks]]\nkind = \"syslog\"\nname = \"s\"\naddress = \"h:514\"\ntransport = \"tcp\"\nformat = \"ocsf\"\n",
            "its format must be `syslog`",
        ),
        (
            "[[export.sinks]]\nkind = \"kafka\"\nname = \"k\"\n",
            "unknown variant",
        ),
    ] {
        let config = dir.path().join("custody.toml");
        std::fs::write(&config, text).unwrap();
        let error = match common::spawn_serve_configured(&data, None, Some(&config)) {
            Ok(_) => panic!("started with {text}"),
            Err(error) => error,
        };
        assert!(error.starts_with("exit Some(2)"), "{error}");
        assert!(error.contains(expected), "{text}: {error}");
    }
}
