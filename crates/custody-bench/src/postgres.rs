//! Durable appends through the store API on PostgreSQL, with one store node
//! and with two store nodes on the same database (64 concurrent writers on
//! each), beside raw batched multi-row `INSERT`s of rows of the same size
//! into a table of the same shape (the `events` table's columns, keys and
//! unique constraints), in transactions of the same average size as the
//! store's group commit achieved, from as many connections as there are
//! nodes (`CUSTODY_BENCH_ONLY=postgres` runs only this).
//!
//! The database is a fresh one created for the run and dropped after it, on
//! the server of `CUSTODY_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Both sides run with the
//! server's own durability (`synchronous_commit` as configured, `on` by
//! default). Store runs and baseline runs alternate over three rounds and
//! the medians are reported, so both see the same machine.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use custody_core::command::CaseStep;
use custody_core::model::Actor;
use custody_core::CaseId;
use custody_store::{CaseWrite, Location, Store, StoreOptions};
use sqlx::{Connection, Row};

/// The server URL the benchmark's database is created on.
pub(crate) fn admin_url() -> String {
    std::env::var("CUSTODY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A database created for one benchmark and dropped by [`Database::drop_now`].
pub(crate) struct Database {
    admin: String,
    name: String,
    /// Its URL.
    pub(crate) url: String,
}

impl Database {
    /// Creates `custody_bench_<tag>_<pid>` on the server of [`admin_url`].
    pub(crate) async fn create(tag: &str) -> Result<Database> {
        let admin = admin_url();
        let name = format!("custody_bench_{tag}_{}", std::process::id());
        let mut connection = sqlx::PgConnection::connect(&admin)
            .await
            .with_context(|| format!("connecting to {}", custody_store::redact_url(&admin)))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut connection)
        .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await?;
        let base = admin
            .rsplit_once('/')
            .map(|(base, _)| base.to_string())
            .context("the database URL names no database")?;
        let url = format!("{base}/{name}");
        Ok(Database { admin, name, url })
    }

    /// Drops the database (closing whatever is still connected to it).
    pub(crate) async fn drop_now(self) -> Result<()> {
        let mut connection = sqlx::PgConnection::connect(&self.admin).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut connection)
        .await?;
        Ok(())
    }
}

/// A writer: its case and the actor that writes to it.
struct Writer {
    case_id: CaseId,
    actor: Actor,
}

/// Opens one case per writer on `store`, for principals named `PREFIX-N`.
async fn open_writers(store: &Store, prefix: &str, writers: usize) -> Result<Vec<Writer>> {
    let mut opened = Vec::new();
    for writer in 0..writers {
        let name = format!("{prefix}{writer}");
        let actor = super::actor(&name)?;
        let case_id = super::open_case(store, &actor, &name).await?;
        opened.push(Writer { case_id, actor });
    }
    Ok(opened)
}

/// Every writer of every node appends `per_writer` comments, concurrently;
/// returns the events appended and the time taken.
async fn append(
    nodes: &[(Store, Vec<Writer>)],
    per_writer: u64,
    round: usize,
) -> Result<(u64, Duration)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (store, writers) in nodes {
        for writer in writers {
            let store = store.clone();
            let case_id = writer.case_id.clone();
            let actor = writer.actor.clone();
            tasks.push(tokio::spawn(async move {
                for index in 0..per_writer {
                    store
                        .write(CaseWrite {
                            actor: actor.clone(),
                            idempotency_key: format!("pg-{round}-{index}"),
                            command: CaseStep::Comment {
                                case_id: case_id.clone(),
                                text: format!("benchmark note {index:08}"),
                            }
                            .into(),
                            occurred_at: None,
                            connector: None,
                        })
                        .await?;
                }
                Ok::<_, custody_store::StoreError>(())
            }));
        }
    }
    let mut count = 0;
    for task in tasks {
        task.await??;
        count += per_writer;
    }
    Ok((count, started.elapsed()))
}

/// The baseline's table: the `events` table's shape.
const RAW_TABLE: &str = "CREATE TABLE raw_events (
    log_index   BIGINT PRIMARY KEY,
    event_id    TEXT   NOT NULL UNIQUE,
    case_id     TEXT   NOT NULL,
    seq         BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    recorded_at TEXT   NOT NULL,
    bytes       BYTEA  NOT NULL,
    UNIQUE (case_id, seq)
)";

/// Inserts `rows` rows of `row_bytes` bytes from `connections` connections
/// at once, each committing transactions of one multi-row `INSERT` of
/// `per_transaction` rows; `first` is the first row's number.
async fn raw_inserts(
    url: &str,
    connections: usize,
    first: u64,
    rows: u64,
    per_transaction: u64,
    row_bytes: usize,
) -> Result<(u64, Duration)> {
    let payload = vec![b'x'; row_bytes];
    let share = rows / connections as u64;
    let mut opened = Vec::new();
    for _ in 0..connections {
        opened.push(sqlx::PgConnection::connect(url).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (lane, mut connection) in opened.into_iter().enumerate() {
        let payload = payload.clone();
        let start = first + lane as u64 * share;
        tasks.push(tokio::spawn(async move {
            let mut written = 0u64;
            while written < share {
                let batch = per_transaction.min(share - written);
                let mut transaction = connection.begin().await?;
                let mut insert: sqlx::QueryBuilder<sqlx::Postgres> = sqlx::QueryBuilder::new(
                    "INSERT INTO raw_events (log_index, event_id, case_id, seq, kind, recorded_at, bytes) ",
                );
                insert.push_values(0..batch, |mut row, offset| {
                    let number = start + written + offset;
                    row.push_bind(number.cast_signed())
                        .push_bind(format!("EV-{number:032}"))
                        .push_bind(format!("AC-{:032}", number % 64))
                        .push_bind((number / 64).cast_signed())
                        .push_bind("comment_added")
                        .push_bind("2026-11-29T00:00:00.000000Z")
                        .push_bind(payload.clone());
                });
                insert.build().execute(&mut *transaction).await?;
                transaction.commit().await?;
                written += batch;
            }
            Ok::<_, sqlx::Error>(written)
        }));
    }
    let mut count = 0;
    for task in tasks {
        count += task.await??;
    }
    Ok((count, started.elapsed()))
}

/// Runs the PostgreSQL append benchmark for one and for two store nodes.
pub(crate) async fn postgres_appends(per_writer: u64) -> Result<()> {
    let database = Database::create("appends").await?;
    let outcome = run(&database.url, per_writer).await;
    database.drop_now().await?;
    outcome
}

async fn run(url: &str, per_writer: u64) -> Result<()> {
    let writers = 64;
    let rounds = 3;
    let location = Location::Postgres(url.to_string());
    let first = Store::open_at(&location, StoreOptions::default()).await?;
    let second = Store::open_at(&location, StoreOptions::default()).await?;
    let mut raw = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(RAW_TABLE).execute(&mut raw).await?;
    let one = vec![(first.clone(), open_writers(&first, "pga", writers).await?)];
    let two = vec![
        (first.clone(), open_writers(&first, "pgb", writers).await?),
        (second.clone(), open_writers(&second, "pgc", writers).await?),
    ];
    println!(
        "durable appends on PostgreSQL ({}), {writers} concurrent writers per store node, {rounds} rounds (medians)",
        server_version(&mut raw).await?
    );
    let mut baseline_rows = 0u64;
    for (label, nodes) in [("one node", &one), ("two nodes", &two)] {
        let (mut store_rates, mut raw_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let mut per_commit = 1.0;
        let mut row_bytes = 0;
        for round in 0..rounds {
            let before: Vec<_> = nodes
                .iter()
                .map(|(store, _)| store.commit_counters())
                .collect();
            let (appended, elapsed) = append(nodes, per_writer, round).await?;
            let (mut commits, mut events) = (0, 0);
            for ((store, _), before) in nodes.iter().zip(&before) {
                let after = store.commit_counters();
                commits += after.commits - before.commits;
                events += after.events - before.events;
            }
            per_commit = (events as f64 / commits.max(1) as f64).max(1.0);
            row_bytes = average_bytes(&mut raw).await?;
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a ratio of counts, at least 1"
            )]
            let per_transaction = per_commit.round() as u64;
            let (inserted, raw_elapsed) = raw_inserts(
                url,
                nodes.len(),
                baseline_rows,
                appended,
                per_transaction,
                row_bytes,
            )
            .await?;
            baseline_rows += inserted;
            let store_rate = appended as f64 / elapsed.as_secs_f64();
            let raw_rate = inserted as f64 / raw_elapsed.as_secs_f64();
            store_rates.push(store_rate);
            raw_rates.push(raw_rate);
            ratios.push(store_rate / raw_rate);
        }
        println!("  {label}:");
        println!(
            "    store API:        {:>10.0} appends/s",
            super::median(&mut store_rates)
        );
        println!(
            "    raw INSERTs:      {:>10.0} rows/s      (rows of {row_bytes} bytes, {per_commit:.1} rows per multi-row INSERT and transaction, {} connection(s))",
            super::median(&mut raw_rates),
            nodes.len()
        );
        println!(
            "    ratio store/raw:  {:>10.2}   (per round: {}; goal 0.5)",
            super::median(&mut ratios.clone()),
            ratios
                .iter()
                .map(|ratio| format!("{ratio:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // Both nodes' appends are one log: check it with a read of its size.
    let size = first.log_size().await?;
    let events: i64 = sqlx::query("SELECT COUNT(*) AS n FROM events")
        .fetch_one(&mut raw)
        .await?
        .try_get("n")?;
    anyhow::ensure!(
        size == u64::try_from(events)?,
        "the log holds {size} entries for {events} events"
    );
    Ok(())
}

async fn server_version(connection: &mut sqlx::PgConnection) -> Result<String> {
    let row = sqlx::query("SHOW server_version")
        .fetch_one(&mut *connection)
        .await?;
    let version: String = row.try_get(0)?;
    let row = sqlx::query("SHOW synchronous_commit")
        .fetch_one(&mut *connection)
        .await?;
    let synchronous: String = row.try_get(0)?;
    Ok(format!(
        "PostgreSQL {version}, synchronous_commit={synchronous}"
    ))
}

async fn average_bytes(connection: &mut sqlx::PgConnection) -> Result<usize> {
    let row = sqlx::query("SELECT CAST(AVG(LENGTH(bytes)) AS BIGINT) AS average FROM events")
        .fetch_one(&mut *connection)
        .await?;
    let average: i64 = row.try_get("average")?;
    Ok(usize::try_from(average)?)
}
