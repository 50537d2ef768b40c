//! The mutations, and how each is applied behind the store's back.
//!
//! Rows are read generically (every column as its SQLite type and bytes)
//! and the table is rewritten with the change, with its triggers dropped
//! first and put back after, in one transaction: what anyone holding the
//! database file can do.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sqlx::{Connection as _, Row as _, SqliteConnection};

use crate::build::Pristine;

/// A deterministic generator (xorshift64*).
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Random {
        Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

/// A table of the database.
#[derive(Clone, Debug)]
pub struct Table {
    pub name: String,
    pub columns: Vec<String>,
    /// Whether each column is part of the primary key.
    pub primary: Vec<bool>,
    pub rows: usize,
}

/// What to do to a table's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    Flip,
    Delete,
    Swap,
    Truncate,
}

/// What a mutation changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Row {
        table: String,
        column: Option<String>,
        kind: RowKind,
    },
    /// An event changed and everything a clever attacker can recompute
    /// recomputed: the case's chain, the head hash, every Merkle node; with
    /// `resign`, every checkpoint signed again with the data directory's key
    /// (database and `checkpoints` file).
    Rewrite {
        resign: bool,
    },
    /// The log's newest entries removed with their nodes, the checkpoints
    /// above, and their entries of the `checkpoints` file; a checkpoint of
    /// the shorter log signed with the directory's key.
    Rollback,
    Blob(&'static str),
    CheckpointsFile(&'static str),
    LogBundle,
    CaseBundle,
}

/// One mutation.
#[derive(Clone, Debug)]
pub struct Mutation {
    pub target: Target,
    /// For bundles: what is done.
    pub bundle_kind: &'static str,
}

impl Mutation {
    /// A short description: what is mutated, how.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Row {
                table,
                column,
                kind,
            } => match column {
                Some(column) => format!("{} {table}.{column}", kind_name(*kind)),
                None => format!("{} {table}", kind_name(*kind)),
            },
            Target::Rewrite { resign: false } => "consistent rewrite (events, chain, nodes)".into(),
            Target::Rewrite { resign: true } => "consistent rewrite + checkpoints re-signed".into(),
            Target::Rollback => "rollback (tail, nodes, checkpoints re-signed)".into(),
            Target::Blob(kind) => format!("{kind} evidence blob"),
            Target::CheckpointsFile(kind) => format!("{kind} checkpoints file"),
            Target::LogBundle => format!("{} whole-log bundle", self.bundle_kind),
            Target::CaseBundle => format!("{} case bundle", self.bundle_kind),
        }
    }

    /// The row of the summary this mutation is counted in.
    pub fn group(&self) -> String {
        match &self.target {
            Target::Row { table, kind, .. } => format!("{table}: {}", kind_name(*kind)),
            _ => self.describe(),
        }
    }
}

fn kind_name(kind: RowKind) -> &'static str {
    match kind {
        RowKind::Flip => "flip",
        RowKind::Delete => "delete row",
        RowKind::Swap => "swap rows",
        RowKind::Truncate => "truncate tail",
    }
}

/// Tables that are not evidence: what is mutated there is not part of the
/// trail, and `docs/tamper.md` says why for each. Only a mutation verify
/// does not catch is counted here; one it catches counts as caught.
pub fn by_design(mutation: &Mutation) -> bool {
    match &mutation.target {
        Target::Row { table, .. } => matches!(
            table.as_str(),
            // Working state, updated in place by design; what it did is in
            // the events (notification_* events, the sinks' own copies).
            "outbox" | "export_cursors" | "pull_cursors"
            // Sign-in state of the console: not a record of anything.
            | "console_sessions" | "console_logins"
            // The answers kept for retried writes: a cache, not a record.
            | "idempotency"
            // The migrations' bookkeeping.
            | "schema_version"
        ),
        // The checkpoints file is a subset of the checkpoints by design
        // (each node appends only what it signed, and a failed copy never
        // fails the signing): an entry missing from it is no evidence lost
        // while the database holds the checkpoint.
        Target::CheckpointsFile("delete an entry of") => true,
        _ => false,
    }
}

/// Every table of the pristine database, with its columns and rows.
pub async fn tables(data_dir: &Path) -> Result<Vec<Table>> {
    let mut connection = connect(data_dir).await?;
    let names: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut connection)
    .await?;
    let mut tables = Vec::new();
    for (name,) in names {
        let info = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT name, pk FROM pragma_table_info('{name}') ORDER BY cid"
        )))
        .fetch_all(&mut connection)
        .await?;
        let columns = info.iter().map(|row| row.get::<String, _>(0)).collect();
        let primary = info.iter().map(|row| row.get::<i64, _>(1) > 0).collect();
        let (rows,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{name}\""
        )))
        .fetch_one(&mut connection)
        .await?;
        tables.push(Table {
            name,
            columns,
            primary,
            rows: rows as usize,
        });
    }
    Ok(tables)
}

/// Every regular file under `directory`.
pub fn files_under(directory: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if !directory.exists() {
        return Ok(files);
    }
    for entry in std::fs::read_dir(directory)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(files_under(&path)?);
        } else {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Picks the next mutation.
pub fn choose(random: &mut Random, tables: &[Table], blobs: &[PathBuf]) -> Mutation {
    let filled: Vec<&Table> = tables.iter().filter(|table| table.rows > 0).collect();
    let roll = random.below(100);
    let bundle_kinds = ["flip", "truncate", "remove a line of"];
    let target = match roll {
        0..=59 => {
            let table = filled[random.below(filled.len())];
            let kind = [
                RowKind::Flip,
                RowKind::Flip,
                RowKind::Flip,
                RowKind::Delete,
                RowKind::Swap,
                RowKind::Truncate,
            ][random.below(6)];
            let column = (kind == RowKind::Flip)
                .then(|| table.columns[random.below(table.columns.len())].clone());
            Target::Row {
                table: table.name.clone(),
                column,
                kind,
            }
        }
        60..=63 => Target::Rewrite { resign: false },
        64..=67 => Target::Rewrite { resign: true },
        68..=70 => Target::Rollback,
        71..=78 if !blobs.is_empty() => {
            Target::Blob(["flip", "delete", "truncate"][random.below(3)])
        }
        71..=88 => Target::CheckpointsFile(
            [
                "flip",
                "truncate",
                "delete lines of",
                "delete an entry of",
                "delete",
            ][random.below(5)],
        ),
        89..=93 => Target::LogBundle,
        _ => Target::CaseBundle,
    };
    Mutation {
        target,
        bundle_kind: bundle_kinds[random.below(3)],
    }
}

/// Copies a data directory (files and subdirectories).
pub fn copy_directory(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_directory(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// What a mutation did.
pub enum Applied {
    /// Nothing could change (say, a swap of two equal rows).
    NoOp,
    /// Done; what exactly (row, byte).
    Done(String),
}

async fn connect(data_dir: &Path) -> Result<SqliteConnection> {
    Ok(SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(data_dir.join(custody_store::DATABASE_FILE))
            .foreign_keys(false),
    )
    .await?)
}

/// A cell as SQLite holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cell {
    kind: String,
    bytes: Vec<u8>,
}

impl Cell {
    fn literal(&self) -> String {
        let hex: String = self
            .bytes
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect();
        match self.kind.as_str() {
            "null" => "NULL".into(),
            "integer" | "real" => String::from_utf8_lossy(&self.bytes).into_owned(),
            "text" => format!("CAST(X'{hex}' AS TEXT)"),
            _ => format!("X'{hex}'"),
        }
    }
}

async fn read_rows(connection: &mut SqliteConnection, table: &Table) -> Result<Vec<Vec<Cell>>> {
    let select: Vec<String> = table
        .columns
        .iter()
        .map(|column| format!("typeof(\"{column}\"), hex(\"{column}\")"))
        .collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM \"{}\"",
        select.join(", "),
        table.name
    )))
    .fetch_all(&mut *connection)
    .await?;
    rows.iter()
        .map(|row| {
            (0..table.columns.len())
                .map(|index| {
                    let hex: String = row.get(index * 2 + 1);
                    Ok(Cell {
                        kind: row.get(index * 2),
                        bytes: custody_core::hex::decode(&hex.to_lowercase()).context("hex")?,
                    })
                })
                .collect()
        })
        .collect()
}

/// Replaces every row of `table` with `rows`, triggers dropped and put back.
async fn write_rows(
    connection: &mut SqliteConnection,
    table: &Table,
    rows: &[Vec<Cell>],
) -> Result<()> {
    let mut transaction = connection.begin().await?;
    let triggers: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
    )
    .bind(&table.name)
    .fetch_all(&mut *transaction)
    .await?;
    for (name, _) in &triggers {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER \"{name}\"")))
            .execute(&mut *transaction)
            .await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM \"{}\"",
        table.name
    )))
    .execute(&mut *transaction)
    .await?;
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|column| format!("\"{column}\""))
        .collect();
    for row in rows {
        let values: Vec<String> = row.iter().map(Cell::literal).collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO \"{}\" ({}) VALUES ({})",
            table.name,
            columns.join(", "),
            values.join(", ")
        )))
        .execute(&mut *transaction)
        .await
        .with_context(|| format!("re-inserting into {}", table.name))?;
    }
    for (_, sql) in &triggers {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut *transaction)
            .await?;
    }
    transaction.commit().await?;
    Ok(())
}

fn flip_cell(cell: &mut Cell, random: &mut Random) -> String {
    match cell.kind.as_str() {
        "null" => {
            *cell = Cell {
                kind: "text".into(),
                bytes: b"x".to_vec(),
            };
            "NULL set to 'x'".into()
        }
        "integer" => {
            let value: i64 = String::from_utf8_lossy(&cell.bytes).parse().unwrap_or(0);
            let flipped = value ^ (1 << random.below(4));
            cell.bytes = flipped.to_string().into_bytes();
            format!("{value} -> {flipped}")
        }
        "real" => {
            let value: f64 = String::from_utf8_lossy(&cell.bytes).parse().unwrap_or(0.0);
            cell.bytes = format!("{:?}", value + 1.0).into_bytes();
            "real + 1".into()
        }
        "text" if !cell.bytes.is_empty() => {
            // An ASCII letter or digit changed to another, so the text
            // stays UTF-8 and looks plausible.
            let candidates: Vec<usize> = (0..cell.bytes.len())
                .filter(|&index| cell.bytes[index].is_ascii_alphanumeric())
                .collect();
            let index = if candidates.is_empty() {
                random.below(cell.bytes.len())
            } else {
                candidates[random.below(candidates.len())]
            };
            let before = cell.bytes[index];
            cell.bytes[index] = match before {
                b'0'..=b'8' | b'a'..=b'y' | b'A'..=b'Y' => before + 1,
                b'9' => b'0',
                b'z' => b'a',
                b'Z' => b'A',
                other => other ^ 1,
            };
            format!(
                "byte {index} {:?} -> {:?}",
                before as char, cell.bytes[index] as char
            )
        }
        _ if !cell.bytes.is_empty() => {
            let index = random.below(cell.bytes.len());
            cell.bytes[index] ^= 1 << random.below(8);
            format!("byte {index} bit-flipped")
        }
        _ => {
            cell.bytes.push(b'x');
            "empty value given a byte".into()
        }
    }
}

/// Applies a mutation to a copy of the data directory.
pub async fn apply_to_directory(
    directory: &Path,
    mutation: &Mutation,
    random: &mut Random,
    pristine: &Pristine,
) -> Result<Applied> {
    match &mutation.target {
        Target::Row {
            table,
            column,
            kind,
        } => {
            let tables = tables(directory).await?;
            let table = tables
                .iter()
                .find(|candidate| &candidate.name == table)
                .context("table")?;
            let mut connection = connect(directory).await?;
            let mut rows = read_rows(&mut connection, table).await?;
            if rows.is_empty() {
                return Ok(Applied::NoOp);
            }
            let detail = match kind {
                RowKind::Flip => {
                    let column_index = table
                        .columns
                        .iter()
                        .position(|name| Some(name) == column.as_ref())
                        .context("column")?;
                    let row = random.below(rows.len());
                    format!(
                        "row {row}: {}",
                        flip_cell(&mut rows[row][column_index], random)
                    )
                }
                RowKind::Delete => {
                    let row = random.below(rows.len());
                    rows.remove(row);
                    format!("row {row} of {}", rows.len() + 1)
                }
                RowKind::Truncate => {
                    let count = 1 + random.below(rows.len().min(5));
                    rows.truncate(rows.len() - count);
                    format!("last {count} rows")
                }
                RowKind::Swap => {
                    if rows.len() < 2 {
                        return Ok(Applied::NoOp);
                    }
                    let first = random.below(rows.len());
                    let mut second = random.below(rows.len() - 1);
                    if second >= first {
                        second += 1;
                    }
                    let mut changed = false;
                    for (column, primary) in table.primary.iter().enumerate() {
                        if !primary || table.primary.iter().all(|primary| *primary) {
                            let a = rows[first][column].clone();
                            let b = std::mem::replace(&mut rows[second][column], a.clone());
                            changed |= a != b;
                            rows[first][column] = b;
                        }
                    }
                    if !changed {
                        return Ok(Applied::NoOp);
                    }
                    format!("rows {first} and {second} (all but the key)")
                }
            };
            // A key changed into one another row has: SQLite refuses it,
            // so nothing changed.
            if let Err(error) = write_rows(&mut connection, table, &rows).await {
                if format!("{error:#}").contains("UNIQUE constraint failed") {
                    return Ok(Applied::NoOp);
                }
                return Err(error);
            }
            connection.close().await?;
            Ok(Applied::Done(detail))
        }
        Target::Rewrite { resign } => rewrite(directory, *resign, random, pristine).await,
        Target::Rollback => rollback(directory, random).await,
        Target::Blob(kind) => {
            let blobs = files_under(&directory.join("evidence"))?;
            if blobs.is_empty() {
                return Ok(Applied::NoOp);
            }
            let path = &blobs[random.below(blobs.len())];
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let mut bytes = std::fs::read(path)?;
            match *kind {
                "flip" if !bytes.is_empty() => {
                    let index = random.below(bytes.len());
                    bytes[index] ^= 1 << random.below(8);
                    std::fs::write(path, &bytes)?;
                }
                "truncate" => {
                    bytes.truncate(random.below(bytes.len()));
                    std::fs::write(path, &bytes)?;
                }
                _ => std::fs::remove_file(path)?,
            }
            Ok(Applied::Done(name))
        }
        Target::CheckpointsFile(kind) => {
            let path = directory.join(custody_store::checkpoint_file::CHECKPOINTS_FILE);
            let text = std::fs::read(&path)?;
            let detail = match *kind {
                "flip" => {
                    let mut bytes = text;
                    let index = random.below(bytes.len());
                    bytes[index] ^= 1 << random.below(7);
                    std::fs::write(&path, &bytes)?;
                    format!("byte {index}")
                }
                "truncate" => {
                    let at = random.below(text.len());
                    std::fs::write(&path, &text[..at])?;
                    format!("at byte {at} of {}", text.len())
                }
                "delete lines of" => {
                    let text = String::from_utf8_lossy(&text).into_owned();
                    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
                    let start = random.below(lines.len());
                    let count = 1 + random.below(4.min(lines.len() - start));
                    lines.drain(start..start + count);
                    std::fs::write(&path, lines.concat())?;
                    format!("lines {}..{}", start + 1, start + count)
                }
                "delete an entry of" => {
                    let text = String::from_utf8_lossy(&text).into_owned();
                    let notes = custody_store::checkpoint_file::parse(&text).notes;
                    let drop = random.below(notes.len());
                    let kept: String = notes
                        .iter()
                        .enumerate()
                        .filter(|(index, _)| *index != drop)
                        .map(|(_, note)| custody_store::checkpoint_file::frame(note))
                        .collect();
                    std::fs::write(&path, kept)?;
                    format!("entry {} of {}", drop + 1, notes.len())
                }
                _ => {
                    std::fs::remove_file(&path)?;
                    "the whole file".into()
                }
            };
            Ok(Applied::Done(detail))
        }
        Target::LogBundle | Target::CaseBundle => Ok(Applied::NoOp),
    }
}

/// Applies a mutation to a copy of a bundle; `None` when nothing changed.
pub fn apply_to_bundle(
    path: &Path,
    mutation: &Mutation,
    random: &mut Random,
) -> Result<Option<String>> {
    let mut bytes = std::fs::read(path)?;
    let detail = match mutation.bundle_kind {
        "flip" => {
            let index = random.below(bytes.len());
            bytes[index] ^= 1 << random.below(7);
            format!("byte {index} of {}", bytes.len())
        }
        "truncate" => {
            let at = random.below(bytes.len());
            bytes.truncate(at);
            format!("at byte {at}")
        }
        _ => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
            let index = random.below(lines.len());
            let kind = lines[index]
                .split("\"type\":\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("?")
                .to_string();
            lines.remove(index);
            bytes = lines.concat().into_bytes();
            format!("line {} ({kind})", index + 1)
        }
    };
    std::fs::write(path, bytes)?;
    Ok(Some(detail))
}

/// The events of the log, in order: (log_index, case_id, seq, bytes).
async fn events(connection: &mut SqliteConnection) -> Result<Vec<(i64, String, i64, Vec<u8>)>> {
    Ok(
        sqlx::query_as("SELECT log_index, case_id, seq, bytes FROM events ORDER BY log_index")
            .fetch_all(&mut *connection)
            .await?,
    )
}

fn hash_value(bytes: &[u8]) -> serde_json::Value {
    serde_json::to_value(custody_core::Sha256Hash::of(bytes)).unwrap_or_default()
}

/// Changes one string in the event: a timestamp moved by a second, an ID
/// or text with one character changed.
fn change_some_string(value: &mut serde_json::Value, random: &mut Random) -> Option<String> {
    fn leaves(value: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, child) in map {
                    if matches!(
                        key.as_str(),
                        "case_id" | "event_id" | "prev_hash" | "kind" | "seq" | "v"
                    ) {
                        continue;
                    }
                    path.push(key.clone());
                    leaves(child, path, out);
                    path.pop();
                }
            }
            serde_json::Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    path.push(index.to_string());
                    leaves(child, path, out);
                    path.pop();
                }
            }
            serde_json::Value::String(_) => out.push(path.clone()),
            _ => {}
        }
    }
    let mut all = Vec::new();
    leaves(value, &mut Vec::new(), &mut all);
    if all.is_empty() {
        return None;
    }
    let path = all[random.below(all.len())].clone();
    let mut cursor = &mut *value;
    for step in &path {
        cursor = match cursor {
            serde_json::Value::Object(map) => map.get_mut(step)?,
            serde_json::Value::Array(items) => items.get_mut(step.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    let serde_json::Value::String(text) = cursor else {
        return None;
    };
    let before = text.clone();
    if let Ok(time) = custody_core::Timestamp::parse(text) {
        *text = time.plus_seconds(1).to_string();
    } else {
        let mut cell = Cell {
            kind: "text".into(),
            bytes: text.clone().into_bytes(),
        };
        flip_cell(&mut cell, random);
        *text = String::from_utf8(cell.bytes).ok()?;
    }
    Some(format!("{} {:?} -> {:?}", path.join("."), before, text))
}

/// Recomputes every stored Merkle node from the events' bytes.
async fn rebuild_nodes(
    connection: &mut SqliteConnection,
    leaves: &[Vec<u8>],
) -> Result<Vec<[u8; 32]>> {
    let leaf_hashes: Vec<[u8; 32]> = leaves
        .iter()
        .map(|bytes| custody_log::merkle::leaf_hash(bytes))
        .collect();
    let mut levels = vec![leaf_hashes.clone()];
    while levels.last().map_or(0, Vec::len) > 1 {
        let below = levels.last().cloned().unwrap_or_default();
        levels.push(
            below
                .chunks_exact(2)
                .map(|pair| custody_log::merkle::node_hash(&pair[0], &pair[1]))
                .collect(),
        );
    }
    let stored: Vec<(i64, i64)> = sqlx::query_as("SELECT level, idx FROM log_nodes")
        .fetch_all(&mut *connection)
        .await?;
    let mut transaction = connection.begin().await?;
    drop_triggers(&mut transaction, "log_nodes").await?;
    for (level, index) in stored {
        if let Some(hash) = levels
            .get(level as usize)
            .and_then(|nodes| nodes.get(index as usize))
        {
            sqlx::query("UPDATE log_nodes SET hash = ? WHERE level = ? AND idx = ?")
                .bind(hash.to_vec())
                .bind(level)
                .bind(index)
                .execute(&mut *transaction)
                .await?;
        } else {
            sqlx::query("DELETE FROM log_nodes WHERE level = ? AND idx = ?")
                .bind(level)
                .bind(index)
                .execute(&mut *transaction)
                .await?;
        }
    }
    transaction.commit().await?;
    Ok(leaf_hashes)
}

async fn drop_triggers(connection: &mut SqliteConnection, table: &str) -> Result<()> {
    let triggers: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?")
            .bind(table)
            .fetch_all(&mut *connection)
            .await?;
    for (name,) in triggers {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER \"{name}\"")))
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// Signs checkpoints again with the directory's key: every row of the
/// `checkpoints` table (sizes at most the log's), rewritten in the database
/// and in the `checkpoints` file.
async fn resign(
    directory: &Path,
    connection: &mut SqliteConnection,
    leaf_hashes: &[[u8; 32]],
    extra_size: Option<u64>,
) -> Result<()> {
    let signer = custody_store::keys::LogSigner::load(directory)?;
    let key = signer.signers.last().context("a signer")?;
    let mut sizes: Vec<(i64,)> = sqlx::query_as("SELECT size FROM checkpoints ORDER BY size")
        .fetch_all(&mut *connection)
        .await?;
    if let Some(size) = extra_size {
        if !sizes.iter().any(|(known,)| *known as u64 == size) {
            sizes.push((size as i64,));
        }
    }
    let mut transaction = connection.begin().await?;
    drop_triggers(&mut transaction, "checkpoints").await?;
    sqlx::query("DELETE FROM checkpoints")
        .execute(&mut *transaction)
        .await?;
    let mut file = String::new();
    for (size,) in sizes {
        let size = size as u64;
        if size as usize > leaf_hashes.len() {
            continue;
        }
        let root = custody_log::merkle::root_from_leaf_hashes(&leaf_hashes[..size as usize]);
        let note = custody_log::Checkpoint::new(&signer.origin, size, root)?.sign(&[key])?;
        sqlx::query("INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)")
            .bind(size as i64)
            .bind(root.to_vec())
            .bind(&note)
            .bind(custody_core::Timestamp::now().to_string())
            .execute(&mut *transaction)
            .await?;
        file.push_str(&custody_store::checkpoint_file::frame(&note));
    }
    transaction.commit().await?;
    std::fs::write(
        directory.join(custody_store::checkpoint_file::CHECKPOINTS_FILE),
        file,
    )?;
    Ok(())
}

async fn rewrite(
    directory: &Path,
    resign_all: bool,
    random: &mut Random,
    _pristine: &Pristine,
) -> Result<Applied> {
    let mut connection = connect(directory).await?;
    let mut log = events(&mut connection).await?;
    let chosen = random.below(log.len());
    let mut value: serde_json::Value = serde_json::from_slice(&log[chosen].3)?;
    let Some(detail) = change_some_string(&mut value, random) else {
        return Ok(Applied::NoOp);
    };
    let old_head = custody_core::Sha256Hash::of(&log[chosen].3);
    log[chosen].3 = custody_core::canonical::to_canonical_bytes(&value);
    // The case's later events link to the changed one: relink them.
    let case = log[chosen].1.clone();
    let mut previous = log[chosen].3.clone();
    let mut head_before = old_head;
    for entry in log.iter_mut().skip(chosen + 1) {
        if entry.1 != case {
            continue;
        }
        head_before = custody_core::Sha256Hash::of(&entry.3);
        let mut later: serde_json::Value = serde_json::from_slice(&entry.3)?;
        if let Some(link) = later.get_mut("prev_hash") {
            *link = hash_value(&previous);
        }
        entry.3 = custody_core::canonical::to_canonical_bytes(&later);
        previous = entry.3.clone();
    }
    let mut transaction = connection.begin().await?;
    drop_triggers(&mut transaction, "events").await?;
    for (index, _, _, bytes) in log.iter().skip(chosen) {
        let event: serde_json::Value = serde_json::from_slice(bytes)?;
        sqlx::query("UPDATE events SET bytes = ?, recorded_at = coalesce(?, recorded_at), kind = coalesce(?, kind) WHERE log_index = ?")
            .bind(bytes.clone())
            .bind(event["recorded_at"].as_str().map(str::to_string))
            .bind(event["kind"].as_str().map(str::to_string))
            .bind(index)
            .execute(&mut *transaction)
            .await?;
    }
    // The case's row, rebuilt from its rewritten events as the writer makes
    // it (every column and the stored view), when they still rebuild a
    // request's case; else its head hash, when it was the changed chain's end.
    let rebuilt = log
        .iter()
        .filter(|entry| entry.1 == case)
        .map(|entry| custody_core::Event::decode(&entry.3).ok())
        .collect::<Option<Vec<_>>>()
        .and_then(|events| custody_core::CaseView::replay(&events));
    match rebuilt {
        Some(view) => {
            let row = custody_core::case::CaseRow::of(&view);
            sqlx::query(
                "UPDATE cases SET state = ?, change_key = ?, ticket = ?, requester = ?, summary = ?,
                 opened_at = ?, updated_at = ?, head_seq = ?, head_hash = ?, next_deadline = ?,
                 view = ?, drill = ? WHERE case_id = ?",
            )
            .bind(row.state)
            .bind(row.change_key)
            .bind(row.ticket)
            .bind(row.requester)
            .bind(row.summary)
            .bind(row.opened_at)
            .bind(row.updated_at)
            .bind(row.head_seq as i64)
            .bind(row.head_hash)
            .bind(row.next_deadline)
            .bind(serde_json::to_vec(&view)?)
            .bind(row.drill)
            .bind(&case)
            .execute(&mut *transaction)
            .await?;
        }
        None => {
            let head_text = serde_json::to_value(head_before)?;
            sqlx::query("UPDATE cases SET head_hash = ? WHERE case_id = ? AND head_hash = ?")
                .bind(
                    hash_value(&previous)
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
                .bind(&case)
                .bind(head_text.as_str().unwrap_or_default().to_string())
                .execute(&mut *transaction)
                .await?;
        }
    }
    transaction.commit().await?;
    let leaves: Vec<Vec<u8>> = log.iter().map(|entry| entry.3.clone()).collect();
    let leaf_hashes = rebuild_nodes(&mut connection, &leaves).await?;
    if resign_all {
        resign(directory, &mut connection, &leaf_hashes, None).await?;
    }
    connection.close().await?;
    Ok(Applied::Done(format!(
        "log index {}: {detail}",
        log[chosen].0
    )))
}

async fn rollback(directory: &Path, random: &mut Random) -> Result<Applied> {
    let mut connection = connect(directory).await?;
    let log = events(&mut connection).await?;
    let count = 1 + random.below(5.min(log.len() - 1));
    let size = log.len() - count;
    let mut transaction = connection.begin().await?;
    drop_triggers(&mut transaction, "events").await?;
    sqlx::query("DELETE FROM events WHERE log_index >= ?")
        .bind(size as i64)
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    let leaves: Vec<Vec<u8>> = log.iter().take(size).map(|entry| entry.3.clone()).collect();
    let leaf_hashes = rebuild_nodes(&mut connection, &leaves).await?;
    // Nodes over removed leaves go (a node is complete or absent).
    let mut transaction = connection.begin().await?;
    drop_triggers(&mut transaction, "log_nodes").await?;
    let nodes: Vec<(i64, i64)> = sqlx::query_as("SELECT level, idx FROM log_nodes")
        .fetch_all(&mut *transaction)
        .await?;
    for (level, index) in nodes {
        if ((index + 1) << level) as usize > size {
            sqlx::query("DELETE FROM log_nodes WHERE level = ? AND idx = ?")
                .bind(level)
                .bind(index)
                .execute(&mut *transaction)
                .await?;
        }
    }
    transaction.commit().await?;
    resign(directory, &mut connection, &leaf_hashes, Some(size as u64)).await?;
    connection.close().await?;
    Ok(Applied::Done(format!(
        "{count} newest entries of {}",
        log.len()
    )))
}
