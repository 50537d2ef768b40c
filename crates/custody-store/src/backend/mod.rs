//! The two SQL backends: the embedded SQLite file and PostgreSQL.
//!
//! Both run the same code. The files `write.rs`, `log.rs` and `read.rs`
//! are compiled once per backend, each time against that backend's `Db`,
//! `Conn`, `Pool` and `DbRow` and its few dialect constants, so the
//! writer's decisions, the log and every query are one source that cannot
//! drift apart, and neither backend pays for dynamic dispatch or a lowest
//! common denominator of types. The SQL itself is written once: `$N`
//! placeholders (which sqlx's SQLite driver binds by number too), `ON
//! CONFLICT`, row values, and only `BIGINT`-, `TEXT`- and blob-typed
//! columns, which mean the same in both.

/// The embedded single-file store.
pub(crate) mod sqlite {
    pub(crate) type Db = sqlx::Sqlite;
    pub(crate) type Conn = sqlx::SqliteConnection;
    pub(crate) type Pool = sqlx::SqlitePool;
    pub(crate) type DbRow = sqlx::sqlite::SqliteRow;

    /// Opens a write transaction holding the database's write lock at once
    /// (a deferred transaction upgrading later could fail with
    /// `SQLITE_BUSY_SNAPSHOT`, bypassing the busy handler).
    const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
    /// A read transaction: one snapshot for every statement in it (WAL).
    const BEGIN_SNAPSHOT: &str = "BEGIN";
    const SCHEMA_VERSION_TABLE: &str =
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT";
    /// Every migration, in order. Never edit a shipped migration: add a new one.
    const MIGRATIONS: &[(i64, &str)] = &[
        (1, include_str!("../../migrations/sqlite/0001_ledger.sql")),
        (
            2,
            include_str!("../../migrations/sqlite/0002_deployment.sql"),
        ),
        (3, include_str!("../../migrations/sqlite/0003_outbox.sql")),
        (
            4,
            include_str!("../../migrations/sqlite/0004_evidence_records.sql"),
        ),
        (
            5,
            include_str!("../../migrations/sqlite/0005_export_cursors.sql"),
        ),
        (
            6,
            include_str!("../../migrations/sqlite/0006_connector_identities.sql"),
        ),
        (
            7,
            include_str!("../../migrations/sqlite/0007_pull_cursors.sql"),
        ),
        (
            8,
            include_str!("../../migrations/sqlite/0008_case_drill.sql"),
        ),
        (
            9,
            include_str!("../../migrations/sqlite/0009_cosignatures.sql"),
        ),
        (
            10,
            include_str!("../../migrations/sqlite/0010_oidc_identities.sql"),
        ),
        (
            11,
            include_str!("../../migrations/sqlite/0011_console_sessions.sql"),
        ),
        (
            12,
            include_str!("../../migrations/sqlite/0012_console_logins.sql"),
        ),
        (
            13,
            include_str!("../../migrations/sqlite/0013_case_listing.sql"),
        ),
        (
            14,
            include_str!("../../migrations/sqlite/0014_outbox_age.sql"),
        ),
    ];
    /// Leases due outbox rows. The write lock serialises claims already.
    const CLAIM_DELIVERIES: &str = "UPDATE outbox SET lease_owner = $1, lease_until = $2
        WHERE delivery_id IN (SELECT delivery_id FROM outbox
            WHERE state = 'pending' AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
            ORDER BY next_attempt_at LIMIT $4)
        RETURNING delivery_id, case_id, event_id, kind, channel, recipient, attempts";
    /// What makes a commit durable, as the writer's connection reports it:
    /// `synchronous` 2 is FULL (the WAL is fsynced at every commit).
    const DURABILITY_SETTINGS: &[(&str, &str)] = &[
        (
            "synchronous",
            "SELECT CAST(synchronous AS TEXT) FROM pragma_synchronous",
        ),
        (
            "journal_mode",
            "SELECT journal_mode FROM pragma_journal_mode",
        ),
        (
            "foreign_keys",
            "SELECT CAST(foreign_keys AS TEXT) FROM pragma_foreign_keys",
        ),
    ];

    include!("prelude.rs");
    include!("write.rs");
    include!("log.rs");
    include!("read.rs");
    include!("import.rs");
    include!("console.rs");
}

/// PostgreSQL, shared by several `custody serve` nodes.
pub(crate) mod postgres {
    pub(crate) type Db = sqlx::Postgres;
    pub(crate) type Conn = sqlx::PgConnection;
    pub(crate) type Pool = sqlx::PgPool;
    pub(crate) type DbRow = sqlx::postgres::PgRow;

    /// Opens a write transaction and takes the deployment-wide writer lock
    /// (a transaction-scoped advisory lock, released by COMMIT or ROLLBACK
    /// and by the server if the node dies). Every node's writer takes it, so
    /// log indexes are assigned by one writer at a time: the log stays one
    /// gapless log however many nodes append. READ COMMITTED suffices under
    /// the lock: each statement sees every transaction committed before it.
    const BEGIN_WRITE: &str =
        "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock(7166468590386881657)";
    /// A read transaction over one snapshot, for the audit.
    const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    const SCHEMA_VERSION_TABLE: &str =
        "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)";
    /// Every migration, in order. Never edit a shipped migration: add a new one.
    const MIGRATIONS: &[(i64, &str)] = &[
        (1, include_str!("../../migrations/postgres/0001_ledger.sql")),
        (2, include_str!("../../migrations/postgres/0002_outbox.sql")),
        (
            3,
            include_str!("../../migrations/postgres/0003_evidence_records.sql"),
        ),
        (
            4,
            include_str!("../../migrations/postgres/0004_export_cursors.sql"),
        ),
        (
            5,
            include_str!("../../migrations/postgres/0005_connector_identities.sql"),
        ),
        (
            6,
            include_str!("../../migrations/postgres/0006_pull_cursors.sql"),
        ),
        (
            7,
            include_str!("../../migrations/postgres/0007_case_drill.sql"),
        ),
        (
            8,
            include_str!("../../migrations/postgres/0008_cosignatures.sql"),
        ),
        (
            9,
            include_str!("../../migrations/postgres/0009_oidc_identities.sql"),
        ),
        (
            10,
            include_str!("../../migrations/postgres/0010_console_sessions.sql"),
        ),
        (
            11,
            include_str!("../../migrations/postgres/0011_console_logins.sql"),
        ),
        (
            12,
            include_str!("../../migrations/postgres/0012_case_listing.sql"),
        ),
        (
            13,
            include_str!("../../migrations/postgres/0013_outbox_age.sql"),
        ),
    ];
    /// Leases due outbox rows; `SKIP LOCKED` lets several nodes' workers
    /// claim at once without waiting for or double-claiming each other's rows.
    const CLAIM_DELIVERIES: &str = "UPDATE outbox SET lease_owner = $1, lease_until = $2
        WHERE delivery_id IN (SELECT delivery_id FROM outbox
            WHERE state = 'pending' AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
            ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED)
        RETURNING delivery_id, case_id, event_id, kind, channel, recipient, attempts";
    /// What makes a commit durable, as the writer's session reports it.
    const DURABILITY_SETTINGS: &[(&str, &str)] = &[
        (
            "synchronous_commit",
            "SELECT current_setting('synchronous_commit')",
        ),
        ("fsync", "SELECT current_setting('fsync')"),
        (
            "full_page_writes",
            "SELECT current_setting('full_page_writes')",
        ),
    ];

    include!("prelude.rs");
    include!("write.rs");
    include!("log.rs");
    include!("read.rs");
    include!("import.rs");
    include!("console.rs");
}
