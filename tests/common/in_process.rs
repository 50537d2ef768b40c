//! The server run in the test's own process, on a test clock.
//!
//! A `custody serve` process reads the system clock, so a test of a
//! deadline would have to wait for it to pass. Here the data directory is
//! made by the real `custody init` and the CLI still talks to the server
//! over HTTP, but the server is `custody_server`'s library
//! ([`custody_server::serve_listener_with`], with the options `custody
//! serve` builds, [`custody_server::ServeOptions::from_config`]) running on
//! the [`Server`]'s runtime with a [`ManualClock`] the test moves. Its timer
//! scans every [`SCAN_INTERVAL`] of real time at the clock's time, so what is
//! due is decided by the test, never by how long the test took.
//!
//! The store runs on the same clock ([`custody_store::StoreOptions::clock`]):
//! every `recorded_at`, deadline and outbox due time is the test clock's,
//! and so is the notification deliverer's time (a retry falls due when the
//! test moves the clock past its backoff). [`Server::verify_with`] makes the
//! check `custody verify` makes at the same clock
//! ([`super::verify_request`]), so a test never waits for the system clock
//! to reach a deadline. The clock starts at the system's time and only
//! moves forward.

use std::sync::Arc;
use std::time::Duration;

use custody_core::time::{Clock, ManualClock, SharedClock};
use custody_core::Timestamp;
use custody_server::timer::{scan_overdue, Acted};
use custody_store::Store;
use serde_json::Value;

use super::{Server, TestStore};

/// How often the in-process server's timer scans, in real time. Short: the
/// test clock, not the wall clock, decides what a scan finds due.
pub const SCAN_INTERVAL: Duration = Duration::from_millis(25);

/// The simulated time between two scans of [`Server::advance`]: the scan
/// interval a deployment would have.
pub const STEP_SECONDS: i64 = 60;

/// The checkpoint interval an in-process server's store is verified with
/// ([`Server::verify_with`]): a day.
pub const VERIFY_CHECKPOINT_INTERVAL_SECONDS: u64 = 24 * 3600;

/// The server's library running on the [`Server`]'s runtime.
pub struct InProcess {
    clock: Arc<ManualClock>,
    running: Option<Running>,
}

struct Running {
    store: Store,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl InProcess {
    fn new(start: Timestamp) -> InProcess {
        InProcess {
            clock: Arc::new(ManualClock::new(start)),
            running: None,
        }
    }
}

impl Server {
    /// Like [`Server::start_on`], but the server runs in this process on a
    /// [`ManualClock`] that only the test moves ([`Server::clock`],
    /// [`Server::advance`]).
    pub fn start_in_process(store: TestStore, config: Option<&str>) -> (Server, Value) {
        Server::start_in_process_at(store, config, Timestamp::now())
    }

    /// [`Server::start_in_process`] with the clock standing at `start`: in
    /// the past, for what the CLI judges by the system clock (a token's
    /// status) while the server has not reached it yet. What `custody
    /// init` recorded keeps the system's time.
    pub fn start_in_process_at(
        store: TestStore,
        config: Option<&str>,
        start: Timestamp,
    ) -> (Server, Value) {
        Server::start_with(store, None, config, Some(InProcess::new(start)))
    }

    /// The clock of an in-process server.
    pub fn clock(&self) -> &ManualClock {
        &self.in_process().clock
    }

    /// The clock of an in-process server, as the server and its store hold it.
    pub fn shared_clock(&self) -> SharedClock {
        self.in_process().clock.clone() as SharedClock
    }

    /// Runs `future` on the server's runtime (a second node's work, such
    /// as a monitor scan the test drives itself).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The store of a running in-process server.
    pub fn store(&self) -> Store {
        self.in_process()
            .running
            .as_ref()
            .expect("the in-process server is running")
            .store
            .clone()
    }

    /// Moves the clock of an in-process server forward by `seconds`,
    /// [`STEP_SECONDS`] at a time, and at every step scans for overdue
    /// obligations as a second node would (the server's own timer keeps
    /// scanning meanwhile). Returns what those scans acted on; when it
    /// returns, every obligation due by the clock's time has been acted on,
    /// by one of the two.
    pub fn advance(&self, seconds: i64) -> Vec<Acted> {
        let store = self.store();
        let clock = self.clock();
        let mut acted = Vec::new();
        let mut left = seconds;
        while left > 0 {
            let step = left.min(STEP_SECONDS);
            clock.advance_seconds(step);
            left -= step;
            let now = clock.now();
            acted.extend(
                self.runtime
                    .block_on(scan_overdue(&store, now))
                    .unwrap_or_else(|error| panic!("scan at {now}: {error}")),
            );
        }
        acted
    }

    /// What `custody verify --json` reports on this server's store, checked
    /// at the server's clock (see [`super::verify_request`]).
    ///
    /// The server signs its periodic checkpoints by real time, while the
    /// test moves its clock by hours: judged by the server's interval, the
    /// log's tail would look hours old for want of checkpoints no
    /// deployment would have skipped. So the check assumes a day's interval
    /// ([`VERIFY_CHECKPOINT_INTERVAL_SECONDS`]), longer than any test moves
    /// the clock. (How old a tail may grow is tested at a test clock in
    /// `tests/e2e/checkpoints.rs`.)
    pub(super) fn verify_at_test_clock(&self) -> (std::process::Output, Value) {
        super::verify_request(custody_verify::Request {
            data_dir: Some(self.data.clone()),
            database_url: self.database.as_ref().map(|database| database.url.clone()),
            checkpoint_interval_seconds: VERIFY_CHECKPOINT_INTERVAL_SECONDS,
            clock: Some(self.in_process().clock.clone() as SharedClock),
            ..custody_verify::Request::default()
        })
    }

    fn in_process(&self) -> &InProcess {
        self.in_process
            .as_ref()
            .expect("the server runs in this process (Server::start_in_process)")
    }

    /// Starts the in-process server on the data directory, with the
    /// `--config` file if there is one, as `custody serve` would.
    pub(super) fn spawn_in_process(&mut self) {
        let config_path = self.config_path();
        let config = match &config_path {
            Some(path) => custody_server::config::Config::load(path)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display())),
            None => custody_server::config::Config::default(),
        };
        let policy_source = match &config_path {
            Some(path) => std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
            None => "built-in default (no --config)".to_string(),
        };
        let location = custody_store::Location::choose(
            &self.data,
            self.database.as_ref().map(|database| database.url.as_str()),
        )
        .expect("the store's location");
        // One clock for the store and the server.
        let clock = self.in_process().clock.clone() as SharedClock;
        let store_options = custody_store::StoreOptions {
            clock: clock.clone(),
            ..custody_store::StoreOptions::default()
        };
        let store = match self
            .runtime
            .block_on(custody_server::init::open_or_initialise(
                &self.data,
                &location,
                store_options,
            ))
            .expect("open the store")
        {
            custody_server::init::Opened::Existing(store) => store,
            custody_server::init::Opened::Created(..) => {
                panic!("`custody init` made the data directory before the server starts")
            }
        };
        let limits = config.server.connection_limits();
        let mut options =
            custody_server::ServeOptions::from_config(config, &self.data, policy_source)
                .expect("the server's options");
        options.clock = clock;
        options.scan_interval = SCAN_INTERVAL;
        // The monitor too looks at the test clock that often.
        options.monitor.poll = SCAN_INTERVAL;
        // Its own monitor runs only when the test's configuration asks for
        // it: the other tests move the clock by hours, and their findings
        // (the log's tail signed by real time) are not theirs to assert.
        let monitored = config_path
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .is_some_and(|text| text.contains("[monitor]"));
        if !monitored {
            options.monitor.interval_seconds = 0;
        }
        let listener = self
            .runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address").to_string();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = self.runtime.spawn(custody_server::serve_listener_with(
            store.clone(),
            listener,
            options,
            limits,
            async move {
                let _ = stopped.await;
            },
        ));
        self.url = format!("http://{addr}");
        self.addr = addr;
        self.in_process.as_mut().expect("in-process server").running = Some(Running {
            store,
            shutdown,
            task,
        });
        // The socket is bound already; the server answers once it has
        // checked its checkpoints and adopted its policy.
        let deadline = std::time::Instant::now() + super::START_TIMEOUT;
        loop {
            let finished = self
                .in_process()
                .running
                .as_ref()
                .is_some_and(|running| running.task.is_finished());
            if finished {
                let running = self.in_process.as_mut().unwrap().running.take().unwrap();
                let outcome = self.runtime.block_on(running.task);
                panic!("the in-process server stopped: {outcome:?}");
            }
            if let Ok(health) = self.try_http("GET", "/healthz", None, &[], super::Body::None) {
                if health.status == 200 {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the in-process server did not answer /healthz"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the in-process server: gracefully (it signs a last checkpoint)
    /// or, with `abort`, at once.
    pub(super) fn stop_in_process(&mut self, abort: bool) {
        let Some(running) = self
            .in_process
            .as_mut()
            .and_then(|in_process| in_process.running.take())
        else {
            return;
        };
        if abort {
            running.task.abort();
            let _ = self.runtime.block_on(running.task);
        } else {
            let _ = running.shutdown.send(());
            self.runtime
                .block_on(running.task)
                .expect("the in-process server's task")
                .expect("the in-process server stopped cleanly");
        }
    }

    /// True while the in-process server runs.
    pub(super) fn in_process_running(&self) -> bool {
        self.in_process
            .as_ref()
            .and_then(|in_process| in_process.running.as_ref())
            .is_some_and(|running| !running.task.is_finished())
    }
}
