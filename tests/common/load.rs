//! Concurrent writers against a live server, for the tests that kill it in
//! the middle of the load: each writer opens a case and comments on it,
//! again and again, and keeps every write the server acknowledged, so the
//! test can look for each one after the crash.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Server;

/// One write the server acknowledged with a 2xx.
#[derive(Clone, Debug)]
pub struct Ack {
    /// The writer's bearer token.
    pub token: String,
    /// The path it was posted to.
    pub path: String,
    /// Its idempotency key.
    pub key: String,
    /// What was posted.
    pub body: Value,
    /// The answer's status.
    pub status: u16,
    /// The answer (the write's outcome).
    pub response: Value,
}

impl Ack {
    /// The case the write went to.
    pub fn case_id(&self) -> &str {
        self.response["case_id"]
            .as_str()
            .expect("case_id in write outcome")
    }

    /// The IDs of the events the write appended.
    pub fn event_ids(&self) -> Vec<String> {
        self.response["appended"]
            .as_array()
            .expect("appended in write outcome")
            .iter()
            .map(|event| event["event_id"].as_str().expect("event_id").to_string())
            .collect()
    }
}

#[derive(Default)]
struct Tally {
    acked: Vec<Ack>,
    /// Responses that were neither a success nor a dropped connection.
    unexpected: Vec<String>,
}

/// Writers running on a server's runtime until they are stopped or the
/// server goes away.
pub struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `workers` writers; writer `id` writes with `tokens[id %
    /// tokens.len()]`, opens cases for the subjects `user:PREFIX-ID-N` and
    /// adds `comments` comments to each.
    pub fn start(
        server: &Server,
        tokens: &[String],
        workers: usize,
        comments: usize,
        prefix: &str,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let handles = (0..workers)
            .map(|id| {
                server.runtime().spawn(worker(
                    Writer {
                        id,
                        client: server.client(),
                        url: server.url.clone(),
                        token: tokens[id % tokens.len()].clone(),
                        comments,
                        prefix: prefix.to_string(),
                    },
                    stop.clone(),
                    tally.clone(),
                ))
            })
            .collect();
        Load {
            stop,
            tally,
            handles,
        }
    }

    /// How many writes were acknowledged so far.
    pub fn acked(&self) -> usize {
        self.tally.lock().unwrap().acked.len()
    }

    /// Polls until `enough(server, acknowledged writes, time since the
    /// call)` holds, and returns how long that took. Fails when the server
    /// dies first or `limit` passes.
    pub fn wait_until(
        &self,
        server: &mut Server,
        limit: Duration,
        mut enough: impl FnMut(&Server, usize, Duration) -> bool,
    ) -> Duration {
        let started = Instant::now();
        let deadline = started + limit;
        loop {
            let acked = self.acked();
            if enough(server, acked, started.elapsed()) {
                return started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "only {acked} writes acknowledged in {:?} (or the test's other condition never held); server log:\n{}",
                started.elapsed(),
                server.log()
            );
            assert!(
                server.is_running(),
                "the server died under load:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the writers (after the server was killed, they end at their
    /// next request) and returns every acknowledged write, asserting that
    /// no write was answered with an error before.
    pub fn finish(self, server: &Server) -> Vec<Ack> {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.handles {
            server.runtime().block_on(handle).expect("worker panicked");
        }
        let tally = std::mem::take(&mut *self.tally.lock().unwrap());
        assert!(
            tally.unexpected.is_empty(),
            "writes were answered with errors before the crash:\n{}\nserver log:\n{}",
            tally.unexpected.join("\n"),
            server.log()
        );
        tally.acked
    }
}

/// One writer's settings.
struct Writer {
    id: usize,
    client: reqwest::Client,
    url: String,
    token: String,
    comments: usize,
    prefix: String,
}

/// Opens cases and comments on them until the server goes away or `stop` is set.
async fn worker(writer: Writer, stop: Arc<AtomicBool>, tally: Arc<Mutex<Tally>>) {
    let Writer {
        id,
        client,
        url,
        token,
        comments,
        prefix,
    } = writer;
    let record = |path: String, key: String, body: Value, status: u16, response: Value| {
        let mut tally = tally.lock().unwrap();
        if (200..300).contains(&status) {
            tally.acked.push(Ack {
                token: token.clone(),
                path,
                key,
                body,
                status,
                response,
            });
            true
        } else {
            tally
                .unexpected
                .push(format!("worker {id}: {path} answered {status}: {response}"));
            false
        }
    };
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let body = json!({
            "subject": {"kind": "user", "id": format!("{prefix}-{id}-{n}")},
            "entitlement": "reader",
            "justification": format!("load from worker {id}"),
        });
        let key = format!("request-{id}-{n}");
        let Ok((status, response)) =
            super::post_with_key(&client, &url, &token, "/v1/cases", &key, &body).await
        else {
            return;
        };
        if !record("/v1/cases".to_string(), key, body, status, response.clone()) {
            continue;
        }
        let case = response["case_id"].as_str().unwrap_or_default().to_string();
        let path = format!("/v1/cases/{case}/comments");
        for k in 0..comments {
            let body = json!({"text": format!("comment {k} from worker {id}")});
            let key = format!("comment-{id}-{n}-{k}");
            let Ok((status, response)) =
                super::post_with_key(&client, &url, &token, &path, &key, &body).await
            else {
                return;
            };
            record(path.clone(), key, body, status, response);
        }
    }
}
