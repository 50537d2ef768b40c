//! What the store's tests that run on both backends share: a store made
//! for one test (a SQLite file, or a PostgreSQL database on the server
//! `CUSTODY_TEST_DATABASE_URL` names) and removed afterwards.

#![allow(dead_code, clippy::unwrap_used)]

use std::str::FromStr;

use custody_core::model::{Actor, AuthContext, PrincipalId, PrincipalKind, Via};
use custody_store::Location;

/// A human principal acting through the API with a token named after it.
pub fn actor(name: &str) -> Actor {
    Actor {
        principal: PrincipalId::from_str(name).unwrap(),
        kind: PrincipalKind::Human,
        org: None,
        groups: Vec::new(),
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Api,
        auth: AuthContext::Token {
            token_id: format!("tok_{name}"),
        },
    }
}

/// Where a test's store lives, removed afterwards.
pub enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

pub fn postgres_admin_url() -> String {
    std::env::var("CUSTODY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

pub async fn run_sql_on(url: &str, statements: &[&str]) {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap_or_else(|error| {
        panic!("cannot reach the tests' PostgreSQL at {url}: {error}\nhint: run the tests with `cargo xtask test`, which finds or starts PostgreSQL")
    });
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_string()))
            .execute(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
    }
}

impl Backend {
    /// A new store's place; `prefix` names the PostgreSQL database made for it.
    pub async fn new(postgres: bool, prefix: &str) -> Backend {
        if !postgres {
            return Backend::Sqlite(tempfile::tempdir().unwrap());
        }
        let admin_url = postgres_admin_url();
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).unwrap();
        let name = format!("{prefix}_{}", custody_core::hex::encode(&suffix));
        run_sql_on(&admin_url, &[&format!("CREATE DATABASE {name}")]).await;
        Backend::Postgres { admin_url, name }
    }

    pub fn location(&self) -> Location {
        match self {
            Backend::Sqlite(directory) => Location::Embedded(directory.path().to_path_buf()),
            Backend::Postgres { admin_url, name } => {
                let base = admin_url.rsplit_once('/').unwrap().0;
                Location::Postgres(format!("{base}/{name}"))
            }
        }
    }

    /// Runs SQL on the database directly, as someone with access to it could.
    pub async fn tamper(&self, sql: &str) {
        match self {
            Backend::Sqlite(directory) => {
                use sqlx::ConnectOptions;
                let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(directory.path().join(custody_store::DATABASE_FILE))
                    .connect()
                    .await
                    .unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                    .execute(&mut connection)
                    .await
                    .unwrap();
            }
            Backend::Postgres { .. } => {
                let Location::Postgres(url) = self.location() else {
                    unreachable!("a PostgreSQL backend has a PostgreSQL location")
                };
                run_sql_on(&url, &[sql]).await;
            }
        }
    }

    pub async fn drop_database(self) {
        if let Backend::Postgres { admin_url, name } = self {
            run_sql_on(
                &admin_url,
                &[&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")],
            )
            .await;
        }
    }
}
