//! Embedded schema migrations, applied in order inside one transaction each.

use sqlx::SqliteConnection;

/// Every migration, in order. Never edit a shipped migration: add a new one.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/0001_ledger.sql"))];

/// Brings the schema up to date.
pub(crate) async fn run(connection: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT")
        .execute(&mut *connection)
        .await?;
    let current: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        .fetch_one(&mut *connection)
        .await?;
    for (version, sql) in MIGRATIONS {
        if *version <= current {
            continue;
        }
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut *connection)
            .await?;
        let applied = async {
            sqlx::raw_sql(*sql).execute(&mut *connection).await?;
            sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
                .bind(version)
                .execute(&mut *connection)
                .await?;
            Ok::<(), sqlx::Error>(())
        }
        .await;
        match applied {
            Ok(()) => {
                sqlx::raw_sql("COMMIT").execute(&mut *connection).await?;
            }
            Err(error) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut *connection).await?;
                return Err(error);
            }
        }
    }
    Ok(())
}
