//! Tampering with a stopped server's embedded store the way someone with
//! file access could: a writable SQLite connection to a copy of its data
//! directory ([`Db`]), and the checks the tamper tests share. `custody
//! verify` must then say exactly what was done.

use std::path::Path;

use custody_core::{CaseView, Event, Sha256Hash};
use custody_log::MemoryTree;
use serde_json::Value;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row, SqliteConnection};
use tempfile::TempDir;

/// The append-only triggers of the events table.
pub const EVENT_TRIGGERS: [&str; 2] = ["events_refuse_update", "events_refuse_delete"];

/// Every append-only trigger of the ledger.
pub const TRIGGERS: [&str; 6] = [
    "events_refuse_update",
    "events_refuse_delete",
    "log_nodes_refuse_update",
    "log_nodes_refuse_delete",
    "checkpoints_refuse_update",
    "checkpoints_refuse_delete",
];

/// A fresh copy of a (stopped) server's data directory, to tamper with.
pub fn copy_of(data: &Path) -> TempDir {
    let copy = tempfile::Builder::new()
        .prefix("custody-tamper-")
        .tempdir()
        .unwrap();
    super::copy_dir(data, copy.path());
    copy
}

/// Replaces the first occurrence of `from` with `to` (same length) in `bytes`.
pub fn replace(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|window| window == from.as_bytes())
        .unwrap_or_else(|| panic!("{from:?} not in {}", String::from_utf8_lossy(bytes)));
    let mut out = bytes.to_vec();
    out[at..at + from.len()].copy_from_slice(to.as_bytes());
    out
}

/// Runs `verify --json` (with `extra` arguments), asserts it exited 1 with
/// well-formed findings, and returns the report and the findings.
#[track_caller]
pub fn verify_fails(data: &Path, extra: &[&str]) -> (Value, Vec<Value>) {
    let (output, report) = super::verify_dir_with(data, extra);
    failed(&format!("{extra:?}"), &output, report)
}

/// Like [`verify_fails`], the check made in this process with `request`
/// (at its clock: [`super::verify_request`]).
#[track_caller]
pub fn verify_request_fails(request: custody_verify::Request) -> (Value, Vec<Value>) {
    let (output, report) = super::verify_request(request);
    failed("(at a test clock)", &output, report)
}

#[track_caller]
fn failed(how: &str, output: &std::process::Output, report: Value) -> (Value, Vec<Value>) {
    assert_eq!(
        output.status.code(),
        Some(1),
        "verify {how} must exit 1 on a tampered store: {report:#}\nstderr: {}",
        super::stderr(output)
    );
    assert_eq!(report["ok"], false, "{report:#}");
    let findings = report["findings"].as_array().cloned().unwrap_or_default();
    assert!(!findings.is_empty(), "{report:#}");
    for finding in &findings {
        for field in ["code", "severity", "message"] {
            assert!(
                finding[field].as_str().is_some_and(|text| !text.is_empty()),
                "finding without {field}: {finding}"
            );
        }
    }
    (report, findings)
}

/// A writable connection to a copy of a data directory.
pub struct Db {
    runtime: tokio::runtime::Runtime,
    connection: Option<SqliteConnection>,
}

impl Db {
    /// Opens the copy's `custody.db`.
    pub fn open(data: &Path) -> Db {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let options = SqliteConnectOptions::new().filename(data.join("custody.db"));
        let connection = runtime
            .block_on(options.connect())
            .expect("open custody.db");
        Db {
            runtime,
            connection: Some(connection),
        }
    }

    /// The runtime and the connection, for statements of a test's own.
    pub fn connection(&mut self) -> (&tokio::runtime::Runtime, &mut SqliteConnection) {
        (
            &self.runtime,
            self.connection.as_mut().expect("open connection"),
        )
    }

    /// Asserts that the store's append-only triggers refuse every statement
    /// of `statements`.
    #[track_caller]
    pub fn assert_append_only(&mut self, statements: &[&str]) {
        for sql in statements {
            let error = self
                .execute(sql)
                .expect_err(&format!("the store accepted `{sql}`"));
            assert!(
                error.contains("append-only"),
                "`{sql}` was refused for the wrong reason: {error}"
            );
        }
    }

    /// Runs SQL; returns rows affected or the database's error message.
    pub fn execute(&mut self, sql: &str) -> Result<u64, String> {
        let (runtime, connection) = self.connection();
        runtime
            .block_on(sqlx::raw_sql(AssertSqlSafe(sql.to_string())).execute(&mut *connection))
            .map(|done| done.rows_affected())
            .map_err(|error| error.to_string())
    }

    /// Runs SQL that must succeed; returns rows affected.
    #[track_caller]
    pub fn run(&mut self, sql: &str) -> u64 {
        self.execute(sql)
            .unwrap_or_else(|error| panic!("`{sql}`: {error}"))
    }

    /// Removes the `triggers` ([`EVENT_TRIGGERS`], [`TRIGGERS`]), as someone
    /// with file access could.
    pub fn drop_triggers(&mut self, triggers: &[&str]) {
        for trigger in triggers {
            self.execute(&format!("DROP TRIGGER {trigger}"))
                .unwrap_or_else(|error| panic!("drop trigger {trigger}: {error}"));
        }
    }

    /// The number `sql` (a `SELECT COUNT(*)` or the like) returns.
    pub fn count(&mut self, sql: &str) -> i64 {
        let (runtime, connection) = self.connection();
        runtime
            .block_on(
                sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.to_string()))
                    .fetch_one(&mut *connection),
            )
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
    }

    /// `(log_index, case_id, seq, bytes)` of every event, in log order.
    pub fn events(&mut self) -> Vec<(i64, String, i64, Vec<u8>)> {
        let (runtime, connection) = self.connection();
        runtime
            .block_on(
                sqlx::query("SELECT log_index, case_id, seq, bytes FROM events ORDER BY log_index")
                    .fetch_all(&mut *connection),
            )
            .expect("read events")
            .iter()
            .map(|row| {
                (
                    row.get("log_index"),
                    row.get("case_id"),
                    row.get("seq"),
                    row.get("bytes"),
                )
            })
            .collect()
    }

    /// `(log_index, event_id, bytes)` of one event row.
    pub fn event_with_id(&mut self, case: &str, seq: i64) -> (i64, String, Vec<u8>) {
        let (runtime, connection) = self.connection();
        let row = runtime
            .block_on(
                sqlx::query(
                    "SELECT log_index, event_id, bytes FROM events WHERE case_id = ? AND seq = ?",
                )
                .bind(case)
                .bind(seq)
                .fetch_one(&mut *connection),
            )
            .unwrap_or_else(|error| panic!("event {case} seq {seq}: {error}"));
        (row.get("log_index"), row.get("event_id"), row.get("bytes"))
    }

    /// `(log_index, bytes)` of one event row.
    pub fn event(&mut self, case: &str, seq: i64) -> (i64, Vec<u8>) {
        let (log_index, _, bytes) = self.event_with_id(case, seq);
        (log_index, bytes)
    }

    /// Replaces the bytes of the event at `log_index`.
    pub fn set_bytes(&mut self, log_index: i64, bytes: &[u8]) {
        let (runtime, connection) = self.connection();
        let done = runtime
            .block_on(
                sqlx::query("UPDATE events SET bytes = ? WHERE log_index = ?")
                    .bind(bytes)
                    .bind(log_index)
                    .execute(&mut *connection),
            )
            .expect("update bytes");
        assert_eq!(done.rows_affected(), 1);
    }

    /// Inserts an event row and its Merkle leaf (INSERT needs no trigger dropped).
    pub fn insert(&mut self, log_index: i64, event: &Event) {
        let (runtime, connection) = self.connection();
        runtime
            .block_on(
                sqlx::query(
                    "INSERT INTO events (log_index, event_id, case_id, seq, kind, recorded_at, bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(log_index)
                .bind(event.event_id.as_str())
                .bind(event.case_id.as_str())
                .bind(event.seq as i64)
                .bind(event.body.kind_name())
                .bind(event.recorded_at.to_string())
                .bind(event.canonical_bytes())
                .execute(&mut *connection),
            )
            .expect("insert an event row");
        // Its Merkle leaf too, as a thorough forger would (unless the index
        // already has one).
        runtime
            .block_on(
                sqlx::query("INSERT OR IGNORE INTO log_nodes (level, idx, hash) VALUES (0, ?, ?)")
                    .bind(log_index)
                    .bind(custody_log::leaf_hash(&event.canonical_bytes()).to_vec())
                    .execute(&mut *connection),
            )
            .expect("insert the event's leaf");
    }

    /// Replaces the note of the stored checkpoint at `size`.
    pub fn set_note(&mut self, size: u64, note: &str) {
        let (runtime, connection) = self.connection();
        let done = runtime
            .block_on(
                sqlx::query("UPDATE checkpoints SET note = ? WHERE size = ?")
                    .bind(note)
                    .bind(size as i64)
                    .execute(&mut *connection),
            )
            .expect("update checkpoint note");
        assert_eq!(done.rows_affected(), 1);
    }

    /// Stores a checkpoint row at `size`, replacing any existing one.
    pub fn put_checkpoint(&mut self, size: u64, root: &[u8; 32], note: &str) {
        let (runtime, connection) = self.connection();
        runtime
            .block_on(
                sqlx::query("DELETE FROM checkpoints WHERE size = ?")
                    .bind(size as i64)
                    .execute(&mut *connection),
            )
            .expect("remove the old checkpoint");
        runtime
            .block_on(
                sqlx::query(
                    "INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, '2025-01-01T00:00:00Z')",
                )
                .bind(size as i64)
                .bind(root.to_vec())
                .bind(note)
                .execute(&mut *connection),
            )
            .expect("insert checkpoint");
    }

    /// Throws away every log node and stores the complete nodes of a tree
    /// built from the current events' bytes, as a careful forger would.
    pub fn rebuild_log_nodes(&mut self) -> MemoryTree {
        let events = self.events();
        let mut tree = MemoryTree::new();
        let mut nodes = Vec::new();
        for (_, _, _, bytes) in &events {
            nodes.extend(tree.append_data(bytes));
        }
        self.execute("DELETE FROM log_nodes")
            .expect("clear log nodes");
        let (runtime, connection) = self.connection();
        for node in nodes {
            runtime
                .block_on(
                    sqlx::query("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)")
                        .bind(i64::from(node.id.level))
                        .bind(node.id.index as i64)
                        .bind(node.hash.to_vec())
                        .execute(&mut *connection),
                )
                .expect("insert log node");
        }
        tree
    }

    /// Makes every case record agree with its stored events (head and
    /// state), as a careful forger would.
    pub fn fix_case_heads(&mut self) {
        let events = self.events();
        let (runtime, connection) = self.connection();
        let cases: Vec<String> = runtime
            .block_on(sqlx::query_scalar("SELECT case_id FROM cases").fetch_all(&mut *connection))
            .expect("read cases");
        for case in cases {
            let mut trail: Vec<(i64, Vec<u8>)> = events
                .iter()
                .filter(|(_, case_id, _, _)| *case_id == case)
                .map(|(_, _, seq, bytes)| (*seq, bytes.clone()))
                .collect();
            trail.sort_by_key(|(seq, _)| *seq);
            let decoded: Vec<Event> = trail
                .iter()
                .map(|(_, bytes)| Event::decode(bytes).expect("stored events decode"))
                .collect();
            let view = CaseView::replay(&decoded).expect("the case starts with its request");
            let (head_seq, head_bytes) = trail.last().expect("the case keeps an event");
            assert_eq!(view.head_hash, Sha256Hash::of(head_bytes));
            // The whole row, as the writer makes it: `verify` compares
            // every column and the stored view with the events.
            let row = custody_core::case::CaseRow::of(&view);
            runtime
                .block_on(
                    sqlx::query(
                        "UPDATE cases SET head_seq = ?, head_hash = ?, state = ?, change_key = ?, ticket = ?,
                         requester = ?, summary = ?, opened_at = ?, updated_at = ?, next_deadline = ?,
                         view = ?, drill = ? WHERE case_id = ?",
                    )
                    .bind(*head_seq)
                    .bind(row.head_hash)
                    .bind(row.state)
                    .bind(row.change_key)
                    .bind(row.ticket)
                    .bind(row.requester)
                    .bind(row.summary)
                    .bind(row.opened_at)
                    .bind(row.updated_at)
                    .bind(row.next_deadline)
                    .bind(serde_json::to_vec(&view).expect("a view encodes"))
                    .bind(row.drill)
                    .bind(&case)
                    .execute(&mut *connection),
                )
                .expect("move the case head");
        }
    }

    /// Closes the connection (checkpointing SQLite's WAL into the file).
    pub fn close(mut self) {
        if let Some(connection) = self.connection.take() {
            self.runtime.block_on(connection.close()).expect("close");
        }
    }
}
