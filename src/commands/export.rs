//! `custody export`: events in a line format (OCSF, syslog, CEF, ECS,
//! CloudEvents, JSON lines), or an auditor's bundle.
//!
//! Where it reads: the ledger directly when `--data` or `--database-url`
//! is given (as `verify` does; no server needed, works beside a running
//! one), otherwise the server at `--url` / `$CUSTODY_URL` with an auditor's
//! or an admin's token (`GET /v1/export`). The encoding is the same either
//! way ([`custody_server::exporter`]).
//!
//! It streams page by page, so memory stays flat. It prints the cursor to
//! resume from (`next cursor: N` on standard error, or `next_cursor` in the
//! `--json` summary, also on standard error since standard output may carry
//! the export): `--since N` then continues with no gap and no duplicate.
//! Bad input (format, cursor, case) is refused before anything is written;
//! with `--out`, the file is replaced only when the whole export succeeded.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

use custody_api::ExportQuery;
use custody_core::CaseId;
use custody_export::{Cursor, Encoder, Format};
use custody_server::exporter::{host_name, Exporter, ExporterError};
use custody_store::{Location, ReadOnlyStore};

use crate::cli::ExportArgs;
use crate::error::CliError;
use crate::progress::Progress;

/// Log entries read (and encoded) at a time from a ledger read directly.
const PAGE: u64 = 4096;

/// What an export did, as the summary reports it.
#[derive(Debug, serde::Serialize)]
struct Summary {
    format: String,
    /// Events written.
    events: u64,
    /// Where it started.
    since: u64,
    /// The cursor to resume from (`--since`).
    next_cursor: u64,
    /// The file written, or `null` for standard output.
    out: Option<PathBuf>,
}

/// `custody export`.
pub async fn export(args: ExportArgs) -> Result<ExitCode, CliError> {
    if args.format == "bundle" {
        return export_bundle(args).await;
    }
    if args.with_evidence || args.config.is_some() {
        return Err(CliError::Usage(
            "--with-evidence and --config are for --format bundle; the line formats carry the evidence hashes in their events".to_string(),
        ));
    }
    let format = Format::from_str(&args.format).map_err(|error| {
        CliError::Usage(format!(
            "{error}\nhint: docs/export.md describes each format and what it carries"
        ))
    })?;
    let case = args
        .case
        .as_deref()
        .map(CaseId::from_str)
        .transpose()
        .map_err(|error| CliError::Usage(format!("--case: {error}")))?;
    let since = parse_cursor("--since", args.since.as_deref())?.unwrap_or_default();
    let until = parse_cursor("--until", args.until.as_deref())?;
    if let Some(until) = until {
        if until < since {
            return Err(CliError::Usage(format!(
                "--until {until} is before --since {since}: the range is empty the wrong way round"
            )));
        }
    }
    if let Some(out) = &args.out {
        refuse_out_in_data_directory(out, args.data.as_deref())?;
    }
    let mut output = Output::open(args.out.as_deref())?;
    let direct = args.data.is_some() || args.database_url.is_some();
    let result = if direct {
        export_direct(&args, format, case, since, until, &mut output).await
    } else {
        export_over_http(&args, format, case, since, until, &mut output).await
    };
    let (events, next_cursor) = match result {
        Ok(done) => done,
        Err(failure) => {
            let written = output.is_stdout() && failure.resume_from > since.0;
            output.discard();
            return Err(match failure.error {
                CliError::Ledger(message) if written => CliError::Ledger(format!(
                    "{message}\nthe events before cursor {} were written; resume with --since {}",
                    failure.resume_from, failure.resume_from
                )),
                error => error,
            });
        }
    };
    output.commit()?;
    let summary = Summary {
        format: format.to_string(),
        events,
        since: since.0,
        next_cursor,
        out: args.out.clone(),
    };
    if args.json {
        eprintln!("{}", serde_json::to_string(&summary).unwrap_or_default());
    } else {
        let destination = match &summary.out {
            Some(path) => path.display().to_string(),
            None => "standard output".to_string(),
        };
        eprintln!("exported {events} events ({format}) to {destination}");
        eprintln!("next cursor: {next_cursor}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `custody export --format bundle`: the auditor bundle (docs/bundle.md),
/// written by `custody_verify::bundle` through `import.rs`. A bundle is of
/// one case, or of a range of the log, never both.
async fn export_bundle(args: ExportArgs) -> Result<ExitCode, CliError> {
    if args.case.is_some() && (args.since.is_some() || args.until.is_some()) {
        return Err(CliError::Usage(
            "a bundle is of one case (--case) or of a range of the log (--since/--until), not both"
                .to_string(),
        ));
    }
    if let Some(out) = &args.out {
        // As for the line formats: a bundle written into the data directory
        // (the default one included) could replace the ledger.
        let data = args.data.clone().or_else(|| {
            args.database_url
                .is_none()
                .then(|| PathBuf::from(custody_verify::DEFAULT_DATA_DIR))
        });
        refuse_out_in_data_directory(out, data.as_deref())?;
        if out.is_dir() {
            return Err(CliError::Usage(format!(
                "--out {}: is a directory; name the file to write",
                out.display()
            )));
        }
    }
    super::import::export_bundle(args).await
}

/// Refuses an `--out` inside a data directory (`--data`, or
/// `$CUSTODY_DATA`): the export replaces its file whole, so `--out
/// DATA/custody.db` would put the export in place of the ledger.
pub(crate) fn refuse_out_in_data_directory(
    out: &Path,
    data: Option<&Path>,
) -> Result<(), CliError> {
    let from_environment = std::env::var_os("CUSTODY_DATA").map(PathBuf::from);
    let directories = data
        .map(Path::to_path_buf)
        .into_iter()
        .chain(from_environment)
        .filter_map(|directory| std::fs::canonicalize(directory).ok());
    let parent = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // Where the file would land: its directory, and the file itself when it
    // is a link to somewhere else.
    let places: Vec<PathBuf> = [
        std::fs::canonicalize(parent).ok(),
        std::fs::canonicalize(out).ok(),
    ]
    .into_iter()
    .flatten()
    .collect();
    for directory in directories {
        if places.iter().any(|place| place.starts_with(&directory)) {
            return Err(CliError::Usage(format!(
                "--out {}: that is inside the data directory {}, and an export written there could replace the ledger\nhint: write the export outside the data directory",
                out.display(),
                directory.display()
            )));
        }
    }
    Ok(())
}

/// A failed export, with the cursor of the first event not written.
struct Failure {
    error: CliError,
    resume_from: u64,
}

fn parse_cursor(flag: &str, text: Option<&str>) -> Result<Option<Cursor>, CliError> {
    text.map(Cursor::from_str)
        .transpose()
        .map_err(|error| CliError::Usage(format!("{flag}: {error}")))
}

/// Reads the ledger itself: a data directory's embedded store or a
/// PostgreSQL database, read-only.
async fn export_direct(
    args: &ExportArgs,
    format: Format,
    case: Option<CaseId>,
    since: Cursor,
    until: Option<Cursor>,
    output: &mut Output,
) -> Result<(u64, u64), Failure> {
    let failed = |error: CliError| Failure {
        error,
        resume_from: since.0,
    };
    let data = args.data.clone().unwrap_or_else(|| PathBuf::from("."));
    let location = Location::choose(&data, args.database_url.as_deref())
        .map_err(|error| failed(CliError::Usage(error.to_string())))?;
    let store = ReadOnlyStore::open_at(&location)
        .await
        .map_err(|error| failed(CliError::Ledger(error.to_string())))?;
    let mut exporter =
        Exporter::start(store, Encoder::new(format, host_name()), case, since, until)
            .await
            .map_err(|error| failed(exporter_error(error)))?
            .include_drills(args.include_drills);
    let mut progress = Progress::new("export", "entries", exporter.end().0 - since.0, args.json);
    let mut buffer = Vec::with_capacity(1 << 20);
    while !exporter.is_done() {
        let resume_from = exporter.cursor().0;
        let failed = |error| Failure { error, resume_from };
        exporter
            .next_page(PAGE, &mut buffer)
            .await
            .map_err(|error| failed(exporter_error(error)))?;
        output.write_all(&buffer).map_err(failed)?;
        buffer.clear();
        progress.set(exporter.cursor().0 - since.0);
    }
    progress.finish();
    Ok((exporter.exported(), exporter.cursor().0))
}

/// Asks the server, page by page; the end of the export is fixed by the
/// first page's answer.
async fn export_over_http(
    args: &ExportArgs,
    format: Format,
    case: Option<CaseId>,
    since: Cursor,
    until: Option<Cursor>,
    output: &mut Output,
) -> Result<(u64, u64), Failure> {
    let mut cursor = since.0;
    let mut until = until.map(|until| until.0);
    let failed = |error: CliError, resume_from: u64| Failure { error, resume_from };
    let client = super::connect(&args.connection).map_err(|error| failed(error, cursor))?;
    let mut events = 0;
    let mut progress = None;
    loop {
        let query = ExportQuery {
            format: format.to_string(),
            case: case.as_ref().map(ToString::to_string),
            since: Some(cursor),
            until,
            limit: None,
            include_drills: args.include_drills.then_some(true),
        };
        let mut page = client
            .export_page(&query)
            .await
            .map_err(|error| failed(error.into(), cursor))?;
        if page.next_cursor < cursor || (page.next_cursor == cursor && !page.is_last()) {
            return Err(failed(
                CliError::Ledger(format!(
                    "the server's export does not move on from cursor {cursor}"
                )),
                cursor,
            ));
        }
        until = Some(page.end);
        let progress = progress.get_or_insert_with(|| {
            Progress::new(
                "export",
                "entries",
                page.end.saturating_sub(since.0),
                args.json,
            )
        });
        while let Some(chunk) = page
            .chunk()
            .await
            .map_err(|error| failed(CliError::Ledger(error.to_string()), cursor))?
        {
            let chunk = chunk.as_ref();
            events += bytecount(chunk);
            output
                .write_all(chunk)
                .map_err(|error| failed(error, cursor))?;
        }
        cursor = page.next_cursor;
        progress.set(cursor - since.0);
        if page.is_last() {
            return Ok((events, cursor));
        }
    }
}

/// Every format writes one line per event.
fn bytecount(chunk: &[u8]) -> u64 {
    chunk
        .iter()
        .filter(|&&byte| byte == b'\n')
        .fold(0, |count, _| count + 1)
}

fn exporter_error(error: ExporterError) -> CliError {
    match error {
        ExporterError::UnknownCase(case) => CliError::refused(
            format!("the ledger holds no case {case}"),
            None,
            Some("list cases with `custody cases`"),
        ),
        error => {
            let message = match error.hint() {
                Some(hint) => format!("{error}\nhint: {hint}"),
                None => error.to_string(),
            };
            if error.is_usage() {
                CliError::Usage(message)
            } else {
                CliError::Ledger(message)
            }
        }
    }
}

/// Where the export goes: standard output, or a temporary file beside
/// `--out` renamed over it once the export is whole.
pub(crate) enum Output {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File {
        temporary: PathBuf,
        destination: PathBuf,
        file: Option<std::io::BufWriter<std::fs::File>>,
    },
}

impl Output {
    pub(crate) fn open(out: Option<&Path>) -> Result<Output, CliError> {
        let Some(destination) = out else {
            return Ok(Output::Stdout(std::io::BufWriter::with_capacity(
                1 << 16,
                std::io::stdout(),
            )));
        };
        let name = destination.file_name().ok_or_else(|| {
            CliError::Usage(format!("--out {}: not a file name", destination.display()))
        })?;
        if destination.is_dir() {
            // Refused now, not after a whole export that cannot be renamed.
            return Err(CliError::Usage(format!(
                "--out {}: is a directory; name the file to write",
                destination.display()
            )));
        }
        let mut temporary_name = std::ffi::OsString::from(".");
        temporary_name.push(name);
        temporary_name.push(format!(".{}.partial", std::process::id()));
        let temporary = destination.with_file_name(temporary_name);
        if std::fs::symlink_metadata(destination).is_ok_and(|meta| meta.file_type().is_symlink()) {
            // Renaming over a link would replace the link, not write its target.
            return Err(CliError::Usage(format!(
                "--out {}: is a symbolic link; name the file itself",
                destination.display()
            )));
        }
        // Owner-only, like the data directory: an export holds every event.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(|error| {
                CliError::Io(format!(
                    "cannot write beside {}: {error}",
                    destination.display()
                ))
            })?;
        Ok(Output::File {
            temporary,
            destination: destination.to_path_buf(),
            file: Some(std::io::BufWriter::with_capacity(1 << 16, file)),
        })
    }

    fn is_stdout(&self) -> bool {
        matches!(self, Output::Stdout(_))
    }

    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<(), CliError> {
        let written = match self {
            Output::Stdout(out) => out.write_all(bytes),
            Output::File { file, .. } => match file {
                Some(file) => file.write_all(bytes),
                None => Ok(()),
            },
        };
        written.map_err(|error| CliError::Io(format!("cannot write the export: {error}")))
    }

    /// Makes the export visible: flushes standard output, or syncs the
    /// temporary file and renames it over `--out`.
    pub(crate) fn commit(&mut self) -> Result<(), CliError> {
        match self {
            Output::Stdout(out) => out
                .flush()
                .map_err(|error| CliError::Io(format!("cannot write the export: {error}"))),
            Output::File {
                temporary,
                destination,
                file,
            } => {
                let Some(file) = file.take() else {
                    return Ok(());
                };
                let finished = file
                    .into_inner()
                    .map_err(|error| error.into_error())
                    .and_then(|file| {
                        // A file replaced keeps its permissions: an export
                        // holds every event, and an owner-only file must
                        // not come back readable by all.
                        if let Ok(existing) = std::fs::metadata(&*destination) {
                            file.set_permissions(existing.permissions())?;
                        }
                        Ok(file)
                    })
                    .and_then(|file| file.sync_all())
                    .and_then(|()| std::fs::rename(&*temporary, &*destination));
                finished.map_err(|error| {
                    let _ = std::fs::remove_file(&*temporary);
                    CliError::Io(format!("cannot write {}: {error}", destination.display()))
                })
            }
        }
    }

    /// Drops what was written to a file; what went to standard output is
    /// flushed (the error says up to which cursor).
    pub(crate) fn discard(&mut self) {
        match self {
            Output::Stdout(out) => {
                let _ = out.flush();
            }
            Output::File {
                temporary, file, ..
            } => {
                if file.take().is_some() {
                    let _ = std::fs::remove_file(&*temporary);
                }
            }
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        // A temporary file is never left behind, whatever path the command
        // left by.
        if let Output::File { file: Some(_), .. } = self {
            self.discard();
        }
    }
}
