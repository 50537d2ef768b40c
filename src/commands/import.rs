//! The auditor bundle's commands: `custody export --format bundle` (making
//! one from a ledger) and `custody import --bundle` (rebuilding an empty
//! store from a whole-log one). The work is `custody_verify::bundle`'s;
//! this picks the ledger, the keys and the files, and prints the outcome.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use custody_core::{CaseId, Timestamp};
use custody_server::config::Config;
use custody_server::keys;
use custody_store::checkpoint_file::{CheckpointFile, CHECKPOINTS_FILE};
use custody_store::{Import, Location, ReadOnlyStore};
use custody_verify::bundle::{self, MakeError, MakeRequest, Scope};
use custody_verify::{parse_keys, DEFAULT_DATA_DIR};

use crate::cli::{ExportArgs, ImportArgs};
use crate::error::CliError;
use crate::output::{self, say, tell};
use crate::progress::Progress;

/// `custody export --format bundle [--case CASE | --since N [--until M]]`.
pub async fn export_bundle(args: ExportArgs) -> Result<ExitCode, CliError> {
    let scope = match (&args.case, &args.since, &args.until) {
        (Some(case), _, _) => {
            case.parse::<CaseId>()
                .map_err(|error| CliError::Usage(format!("`{case}` is not a case ID: {error}")))?;
            Scope::Case {
                case_id: case.clone(),
            }
        }
        (None, None, None) => Scope::Log,
        (None, since, until) => Scope::Range {
            since: cursor(since.as_deref())?.unwrap_or(0),
            until: cursor(until.as_deref())?,
        },
    };
    let config = args
        .config
        .as_ref()
        .map(|path| Config::load(path).map_err(|error| CliError::Usage(error.to_string())))
        .transpose()?;
    let (location, data_dir) = match (&args.database_url, args.data) {
        (None, data) => {
            let directory = data.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
            (Location::Embedded(directory.clone()), Some(directory))
        }
        (Some(url), data) => (
            Location::choose(Path::new("."), Some(url))
                .map_err(|error| CliError::Usage(error.to_string()))?,
            data,
        ),
    };
    let directory = data_dir.ok_or_else(|| {
        CliError::Usage(
            "a bundle carries the log's verifier keys, which are read from a node's data directory\nhint: pass --data DIR beside --database-url".to_string(),
        )
    })?;
    let log_keys = keys::trusted_keys(&directory).map_err(|error| {
        CliError::Io(format!(
            "cannot read the log's keys in {}: {error}",
            directory.display()
        ))
    })?;
    let store = ReadOnlyStore::open_at(&location)
        .await
        .map_err(|error| CliError::Ledger(error.to_string()))?;
    let blobs = if args.with_evidence {
        let store_config = config
            .as_ref()
            .map(|config| config.evidence.store.clone())
            .unwrap_or_default();
        Some(
            store_config
                .open(&directory.join("evidence"))
                .map_err(|error| {
                    CliError::Io(format!("cannot open the evidence store: {error}"))
                })?,
        )
    } else {
        None
    };
    let request = MakeRequest {
        scope,
        with_evidence: args.with_evidence,
        keys: log_keys,
    };
    // A bundle written to a file appears under its name only when complete.
    let partial_path = args.out.as_ref().map(|path| {
        let mut name = path.as_os_str().to_owned();
        name.push(".partial");
        PathBuf::from(name)
    });
    let out: Box<dyn Write> = match &partial_path {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .map_err(|error| {
                    CliError::Io(format!("cannot create {}: {error}", path.display()))
                })?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut bar: Option<Progress> = None;
    let made = bundle::make_bundle(
        &store,
        &request,
        blobs.as_deref(),
        Timestamp::now(),
        BufWriter::new(out),
        &mut |done, total| {
            bar.get_or_insert_with(|| Progress::new("export", "events", total, args.json))
                .set(done);
        },
    )
    .await;
    if let Some(bar) = bar.as_mut() {
        bar.finish();
    }
    let (writer, made) = match made {
        Ok(made) => made,
        Err(error) => {
            if let Some(path) = &partial_path {
                let _ = std::fs::remove_file(path);
            }
            return Err(make_error(error));
        }
    };
    let finished = writer
        .into_inner()
        .map_err(|error| CliError::Io(format!("cannot write the bundle: {}", error.error())))
        .and_then(|mut out| {
            out.flush()
                .map_err(|error| CliError::Io(format!("cannot write the bundle: {error}")))
        });
    if let (Some(partial), Some(path)) = (&partial_path, &args.out) {
        let renamed = finished.and_then(|()| {
            File::open(partial)
                .and_then(|file| file.sync_all())
                .and_then(|()| std::fs::rename(partial, path))
                .map_err(|error| CliError::Io(format!("cannot write {}: {error}", path.display())))
        });
        if let Err(error) = renamed {
            let _ = std::fs::remove_file(partial);
            return Err(error);
        }
    } else {
        finished?;
    }
    if args.json && args.out.is_some() {
        output::print_json(&made);
    } else {
        tell!(
            "wrote a bundle of {}: {} events, {} evidence blobs{}{}, against the checkpoint at size {}; sha256 {}",
            made.scope.describe(),
            made.events,
            made.evidence,
            if args.with_evidence { " (with their bytes)" } else { " (hashes only)" },
            if made.scope == Scope::Log {
                format!(
                    ", {} tokens (their secrets' SHA-256: keep the bundle like a database backup), {} idempotency records",
                    made.tokens, made.idempotency_records
                )
            } else {
                String::new()
            },
            made.checkpoint_size,
            made.sha256
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cursor(text: Option<&str>) -> Result<Option<u64>, CliError> {
    text.map(|text| {
        if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(CliError::Usage(format!(
                "invalid cursor `{text}`: a cursor is a log index (a whole number), as printed by the previous export"
            )));
        }
        text.parse().map_err(|_| {
            CliError::Usage(format!("invalid cursor `{text}`: too large"))
        })
    })
    .transpose()
}

fn make_error(error: MakeError) -> CliError {
    let message = error.to_string();
    match error {
        MakeError::CaseNotFound { .. } => CliError::refused(message, None, None),
        MakeError::Store(_) | MakeError::Corrupt { .. } => CliError::Ledger(message),
        MakeError::Write(_) | MakeError::Evidence { .. } => CliError::Io(message),
        _ => CliError::Usage(message),
    }
}

/// `custody import --bundle FILE (--data DIR | --database-url URL)`.
pub async fn import(args: ImportArgs) -> Result<ExitCode, CliError> {
    let trusted = parse_keys(&args.keys).map_err(|error| CliError::Usage(error.to_string()))?;
    // First the whole bundle is checked; nothing is touched unless it is
    // a whole log with nothing wrong.
    let (reader, read, mut progress) =
        crate::progress::read_with_progress("check", &args.bundle, args.json).map_err(|error| {
            CliError::Io(format!("cannot read {}: {error}", args.bundle.display()))
        })?;
    let verification = bundle::verify_bundle(reader, &trusted, &mut |_| {
        progress.set(read.load(std::sync::atomic::Ordering::Relaxed));
    })
    .map_err(|error| CliError::Io(format!("{}: {error}", args.bundle.display())))?;
    progress.finish();
    if let Some(scope) = &verification.bundle.scope {
        if *scope != Scope::Log {
            return Err(CliError::Usage(
                bundle::ImportError::Partial(scope.describe()).to_string(),
            ));
        }
    }
    if !verification.report.ok {
        if !args.json {
            output::print_report(&verification.report, &args.bundle.display().to_string());
        }
        let code = verification
            .report
            .findings
            .first()
            .map(|finding| finding.code.as_str());
        return Err(CliError::refused(
            format!(
                "{} does not verify ({} findings), so nothing was imported",
                args.bundle.display(),
                verification.report.findings.len()
            ),
            code,
            Some("run `custody verify --bundle FILE` to see every finding"),
        ));
    }
    let (location, created) =
        match (&args.database_url, &args.data) {
            (Some(url), _) => (
                Location::choose(Path::new("."), Some(url))
                    .map_err(|error| CliError::Usage(error.to_string()))?,
                None,
            ),
            (None, Some(directory)) => (
                Location::Embedded(directory.clone()),
                Some(prepare_directory(directory)?),
            ),
            (None, None) => return Err(CliError::Usage(
                "give the store to fill: --data DIR (a new data directory) or --database-url URL"
                    .to_string(),
            )),
        };
    // Where carried evidence blobs go: the configured store, else the new
    // data directory's `evidence/`; with only a database URL and no
    // configured store, nowhere (said in the summary).
    let store_config = args
        .config
        .as_ref()
        .map(|path| Config::load(path).map_err(|error| CliError::Usage(error.to_string())))
        .transpose()?
        .map(|config| config.evidence.store);
    let blobs = match (&store_config, &created) {
        (None, None) => None,
        (config, directory) => Some(
            config
                .clone()
                .unwrap_or_default()
                .open(
                    &directory
                        .as_ref()
                        .map(|created| created.directory.join("evidence"))
                        .unwrap_or_else(|| PathBuf::from("evidence")),
                )
                .map_err(|error| {
                    CliError::Io(format!("cannot open the evidence store: {error}"))
                })?,
        ),
    };
    if let Some(created) = &created {
        // The database is private from its first byte, as `serve` makes it
        // (SQLite then creates its WAL and SHM files with the same mode).
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let path = created.directory.join("custody.db");
        if let Err(error) = options.open(&path) {
            created.undo();
            return Err(CliError::Io(format!(
                "cannot create {}: {error}",
                path.display()
            )));
        }
    }
    let imported = async {
        let import = Import::begin(&location)
            .await
            .map_err(|error| CliError::Ledger(error.to_string()))?;
        let (reader, read, mut progress) =
            crate::progress::read_with_progress("import", &args.bundle, args.json).map_err(
                |error| CliError::Io(format!("cannot read {}: {error}", args.bundle.display())),
            )?;
        let imported = bundle::import_bundle(
            reader,
            import,
            blobs.as_deref(),
            Timestamp::now(),
            &mut |_| progress.set(read.load(std::sync::atomic::Ordering::Relaxed)),
        )
        .await;
        progress.finish();
        imported.map_err(|error| match error {
            bundle::ImportError::Io(_) | bundle::ImportError::Evidence(_) => {
                CliError::Io(error.to_string())
            }
            bundle::ImportError::Partial(_) => CliError::Usage(error.to_string()),
            _ => CliError::Ledger(error.to_string()),
        })
    }
    .await;
    let imported = match imported {
        Ok(imported) => imported,
        Err(error) => {
            if let Some(created) = &created {
                created.undo();
            }
            return Err(error);
        }
    };
    if let Some(created) = &created {
        // The checkpoint is also held outside the database, as a node keeps it.
        let file = created.directory.join(CHECKPOINTS_FILE);
        CheckpointFile::open(&file)
            .and_then(|mut file| file.append(imported.checkpoint_size, &imported.checkpoint_note))
            .map_err(|error| CliError::Io(format!("cannot write {}: {error}", file.display())))?;
    }
    if args.json {
        output::print_json(&imported);
    } else {
        say!(
            "imported {} events ({} cases, {} notifications) of {} into {location}; its root is the checkpoint's at size {}",
            imported.summary.events,
            imported.summary.cases,
            imported.summary.notifications,
            imported.origin,
            imported.checkpoint_size
        );
        if imported.evidence_not_restored > 0 {
            say!(
                "{} evidence blobs were not restored: the bundle carries only their hashes (export it --with-evidence), or no evidence store was given (--config with [evidence.store]); copy them into the evidence store before `custody verify`",
                imported.evidence_not_restored
            );
        }
        if imported.tokens_not_restored > 0 {
            say!(
                "{} of {} bearer tokens were not restored: the bundle carries no usable hash of their secrets (it was made before bundle version 2, or from a store restored from such a bundle), so they are on the record but authenticate nobody and must be re-issued; {} idempotency records were restored (docs/bundle.md)",
                imported.tokens_not_restored,
                imported.summary.tokens,
                imported.summary.idempotency_records
            );
        } else {
            say!(
                "restored {} bearer tokens (the same tokens authenticate) and {} idempotency records",
                imported.summary.tokens_restored,
                imported.summary.idempotency_records
            );
        }
        say!("next: copy the log's signing key (log-signing.key, and log-retired-keys if present) from a node of the source deployment into the data directory before `custody serve` (docs/bundle.md)");
    }
    Ok(ExitCode::SUCCESS)
}

/// A data directory an import fills: what to remove if it fails.
struct PreparedDirectory {
    directory: PathBuf,
    created: bool,
}

impl PreparedDirectory {
    /// Removes what the import made: the database files, and the directory
    /// when the import created it.
    fn undo(&self) {
        for name in [
            "custody.db",
            "custody.db-wal",
            "custody.db-shm",
            "custody.db-journal",
        ] {
            let _ = std::fs::remove_file(self.directory.join(name));
        }
        let _ = std::fs::remove_dir_all(self.directory.join("evidence"));
        if self.created {
            let _ = std::fs::remove_dir_all(&self.directory);
        }
    }
}

/// Creates the data directory (0700), or accepts an existing empty one.
fn prepare_directory(directory: &Path) -> Result<PreparedDirectory, CliError> {
    match std::fs::read_dir(directory) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(CliError::Usage(format!(
                    "{} is not empty: an import fills only a new data directory, so nothing was changed\nhint: give a directory that does not exist yet",
                    directory.display()
                )));
            }
            Ok(PreparedDirectory {
                directory: directory.to_path_buf(),
                created: false,
            })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(directory).map_err(|error| {
                CliError::Io(format!("cannot create {}: {error}", directory.display()))
            })?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(directory, std::fs::Permissions::from_mode(0o700));
            }
            Ok(PreparedDirectory {
                directory: directory.to_path_buf(),
                created: true,
            })
        }
        Err(error) => Err(CliError::Io(format!(
            "cannot read {}: {error}",
            directory.display()
        ))),
    }
}
