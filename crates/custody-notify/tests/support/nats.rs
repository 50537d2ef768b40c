//! A NATS server with JetStream for tests, and streams of their own.
//!
//! The server is `$CUSTODY_TEST_NATS_URL`, else the one on 127.0.0.1:4222.
//! When neither answers, [`NatsServer::start`] starts a `nats-server -js` on
//! a free port (stopped when dropped), so the tests need no running
//! service, only the `nats-server` binary.
//!
//! ```ignore
//! let (server, context) = NatsServer::start().await;
//! let stream = UniqueStream::create(&server, &context, "custody-test").await;
//! // publish to stream.subject("events") ...
//! assert_eq!(stream.message_count().await, 1);
//! stream.delete().await.unwrap(); // or dropped: deleted all the same
//! ```

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::StreamMessage, stream};
use serde_json::Value;

use super::{free_port, unique};

/// A NATS server with JetStream: an existing one, or one this process
/// started (stopped when dropped).
pub struct NatsServer {
    /// `nats://host:port`.
    pub url: String,
    child: Option<(Child, tempfile::TempDir)>,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some((child, _store)) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A JetStream context on `url` if a server answers there with JetStream
/// enabled (within about 4 seconds), else `None`.
pub async fn jetstream_answers(url: &str) -> Option<jetstream::Context> {
    let connect = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(1))
        .connect(url);
    let client = tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .ok()?
        .ok()?;
    // A raw account-info request: async-nats's typed `query_account` cannot
    // parse the answer of older servers (Debian ships 2.9), the rest works.
    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        client.request("$JS.API.INFO", "".into()),
    )
    .await
    .ok()?
    .ok()?;
    let info: Value = serde_json::from_slice(&answer.payload).ok()?;
    if info.get("error").is_some() {
        return None;
    }
    Some(jetstream::new(client))
}

impl NatsServer {
    /// Finds a JetStream server (see the module documentation) or starts
    /// one; returns it with a JetStream context connected to it. The
    /// context's connection runs on the calling runtime.
    pub async fn start() -> (NatsServer, jetstream::Context) {
        let url = std::env::var("CUSTODY_TEST_NATS_URL")
            .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string());
        if let Some(context) = jetstream_answers(&url).await {
            return (NatsServer { url, child: None }, context);
        }
        let port = free_port();
        let store = tempfile::tempdir().unwrap();
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("no NATS server at {url}, and `nats-server` could not be started: {error}")
            });
        let server = NatsServer {
            url: format!("nats://127.0.0.1:{port}"),
            child: Some((child, store)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(context) = jetstream_answers(&server.url).await {
                return (server, context);
            }
            assert!(Instant::now() < deadline, "nats-server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A JetStream stream no other test run uses, capturing `<prefix>.>` with
/// a two-minute duplicate window. It is deleted when dropped (also when the
/// test panics), unless [`UniqueStream::delete`] deleted it already.
pub struct UniqueStream {
    /// The stream's name: the prefix with `_` for `-`.
    pub name: String,
    /// The subject prefix it captures (`<prefix>.>`): `<base>-<pid>-<nanos>-<n>`.
    pub prefix: String,
    url: String,
    context: jetstream::Context,
    deleted: bool,
}

impl UniqueStream {
    /// Creates the stream on `server`, its prefix made unique from `base`
    /// (such as `custody-test`).
    pub async fn create(
        server: &NatsServer,
        context: &jetstream::Context,
        base: &str,
    ) -> UniqueStream {
        let prefix = unique(base);
        let name = prefix.replace('-', "_");
        context
            .create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![format!("{prefix}.>")],
                duplicate_window: Duration::from_secs(120),
                // A run that dies before deleting its stream leaves nothing for long.
                max_age: Duration::from_secs(600),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|error| panic!("cannot create the stream {name}: {error}"));
        UniqueStream {
            name,
            prefix,
            url: server.url.clone(),
            context: context.clone(),
            deleted: false,
        }
    }

    /// A subject the stream captures: `<prefix>.<last>`.
    pub fn subject(&self, last: &str) -> String {
        format!("{}.{last}", self.prefix)
    }

    /// How many messages the stream holds.
    pub async fn message_count(&self) -> u64 {
        let stream = self.context.get_stream(&self.name).await.unwrap();
        stream.get_info().await.unwrap().state.messages
    }

    /// Every message the stream holds, in order.
    pub async fn messages(&self) -> Vec<StreamMessage> {
        let stream = self.context.get_stream(&self.name).await.unwrap();
        let state = stream.get_info().await.unwrap().state;
        let mut messages = Vec::new();
        if state.messages == 0 {
            return messages;
        }
        for sequence in state.first_sequence..=state.last_sequence {
            messages.push(
                stream
                    .get_raw_message(sequence)
                    .await
                    .unwrap_or_else(|error| {
                        panic!("cannot read message {sequence} of {}: {error}", self.name)
                    }),
            );
        }
        messages
    }

    /// Deletes the stream now, saying whether the server agreed.
    pub async fn delete(mut self) -> Result<(), String> {
        self.deleted = true;
        self.context
            .delete_stream(&self.name)
            .await
            .map(|_| ())
            .map_err(|error| format!("cannot delete the stream {}: {error}", self.name))
    }
}

impl Drop for UniqueStream {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        // Drop cannot await, and may run inside a runtime (where blocking on
        // it would panic) or outside one: delete over a connection of its
        // own, on a thread and runtime of its own, within a few seconds.
        let url = self.url.clone();
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    if let Ok(client) = async_nats::connect(url.as_str()).await {
                        let _ = jetstream::new(client).delete_stream(&name).await;
                    }
                })
                .await;
            });
        });
        let _ = cleanup.join();
    }
}
