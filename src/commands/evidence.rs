//! Evidence: `custody attach` (a file, a link, or a file for a ticket no
//! case carries yet) and `custody evidence` (list, download, recheck).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use custody_api::{LinkBody, RecheckBody, WriteOutcome};
use custody_client::{Client, Upload};

use super::{connect, idempotency_key};
use crate::cli::{AttachArgs, ConnectionArgs, EvidenceCommand};
use crate::error::CliError;
use crate::output::{self, say, tell};

/// `custody attach`.
pub async fn attach(args: AttachArgs) -> Result<ExitCode, CliError> {
    let client = connect(&ConnectionArgs {
        url: args.server,
        token: args.token,
        ca_cert: args.ca_cert,
    })?;
    // With --ticket the one positional argument is the file.
    let (case, file) = match (&args.ticket, args.file) {
        (Some(_), None) => (String::new(), Some(PathBuf::from(&args.case))),
        (Some(_), Some(_)) => {
            return Err(CliError::Usage(
                "with --ticket, give only the FILE (the evidence joins the case that carries the ticket)".to_string(),
            ))
        }
        (None, file) => (args.case, file),
    };
    let key = idempotency_key(&args.idempotency_key);
    // The outcome, and the evidence record's ID when an upload for a
    // ticket is held.
    let (json, outcome, record_id): (serde_json::Value, Option<WriteOutcome>, Option<String>) =
        match (file, args.url) {
            (_, Some(url)) => {
                let answer = client
                    .capture_link(&case, &LinkBody { url }, &key)
                    .await?;
                let outcome = (!args.json).then(|| answer.document()).transpose()?;
                (answer.into_json(), outcome, None)
            }
            (Some(file), None) => {
                let upload = open_upload(&file, args.name, args.media_type).await?;
                match &args.ticket {
                    Some(ticket) => {
                        let answer = client.upload_for_reference(ticket, upload, &key).await?;
                        let held = (!args.json).then(|| answer.document()).transpose()?;
                        let (outcome, record_id) = match held {
                            Some(held) => (Some(held.outcome), held.record_id),
                            None => (None, None),
                        };
                        (answer.into_json(), outcome, record_id)
                    }
                    None => {
                        let answer = client.upload(&case, upload, &key).await?;
                        let outcome = (!args.json).then(|| answer.document()).transpose()?;
                        (answer.into_json(), outcome, None)
                    }
                }
            }
            (None, None) => {
                return Err(CliError::Usage(
                    "give a FILE to upload or --url URL to capture\nusage: custody attach CASE FILE | custody attach CASE --url URL | custody attach --ticket SYSTEM:KEY FILE".to_string(),
                ))
            }
        };
    match outcome {
        None => output::print_json(&json),
        Some(outcome) => {
            let kind = outcome
                .appended
                .first()
                .map(|event| event.kind.as_str())
                .unwrap_or_default();
            if kind == "evidence_unverified" {
                tell!(
                    "the link could not be captured; it is recorded as unverified (`custody evidence list {case}`)"
                );
                say!("recorded an unverified link in {case}");
            } else if kind == "evidence_held" {
                let record = record_id.unwrap_or_else(|| outcome.case_id.to_string());
                say!(
                    "held for {} in evidence record {record} until a case carries it (`custody show {record}`)",
                    args.ticket.as_deref().unwrap_or_default(),
                );
            } else {
                say!("attached evidence to {}", outcome.case_id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The file to upload, with the name to record (the file's own by default).
async fn open_upload(
    file: &Path,
    name: Option<String>,
    media_type: Option<String>,
) -> Result<Upload, CliError> {
    let cannot_read =
        |error: std::io::Error| CliError::Io(format!("cannot read {}: {error}", file.display()));
    let opened = tokio::fs::File::open(file).await.map_err(cannot_read)?;
    let length = opened.metadata().await.map_err(cannot_read)?.len();
    let name = name.or_else(|| {
        file.file_name()
            .map(|name| name.to_string_lossy().into_owned())
    });
    Ok(Upload {
        file: opened,
        length,
        name,
        media_type,
    })
}

/// `custody evidence ...`.
pub async fn run(command: EvidenceCommand) -> Result<ExitCode, CliError> {
    match command {
        EvidenceCommand::List {
            case,
            connection,
            json,
        } => {
            let answer = connect(&connection)?.evidence(&case).await?;
            if json {
                output::print_json(answer.json());
            } else {
                output::print_evidence(&answer.document()?);
            }
        }
        EvidenceCommand::Get {
            case,
            sha256,
            out,
            connection,
        } => {
            download(&connect(&connection)?, &case, &sha256, &out).await?;
            say!("{sha256}  {}", out.display());
        }
        EvidenceCommand::Recheck {
            case,
            connection,
            json,
        } => {
            let answer = connect(&connection)?.recheck(&RecheckBody { case }).await?;
            if json {
                output::print_json(answer.json());
            } else {
                for item in answer.document()?.rechecked {
                    say!(
                        "{}  {}  {}",
                        if item.drifted {
                            "CHANGED  "
                        } else {
                            "unchanged"
                        },
                        item.case_id,
                        item.url
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Downloads a blob beside `out`, hashing it on the way; only bytes that
/// hash to `sha256` are renamed into place.
async fn download(client: &Client, case: &str, sha256: &str, out: &Path) -> Result<(), CliError> {
    use sha2::Digest as _;
    use tokio::io::AsyncWriteExt as _;
    let wanted = sha256.to_ascii_lowercase();
    if wanted.len() != 64 || !wanted.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(CliError::Usage(format!(
            "`{sha256}` is not a SHA-256 (64 hex digits)"
        )));
    }
    let mut download = client.download_evidence(case, &wanted).await?;
    let partial = out.with_extension("partial");
    let cannot_write = |error: std::io::Error| {
        CliError::Io(format!("cannot write {}: {error}", partial.display()))
    };
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(cannot_write)?;
    let mut hasher = sha2::Sha256::new();
    let written = async {
        while let Some(chunk) = download.chunk().await? {
            hasher.update(chunk.as_ref());
            file.write_all(chunk.as_ref()).await.map_err(cannot_write)?;
        }
        file.sync_all().await.map_err(cannot_write)
    }
    .await;
    if let Err(error) = written {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(error);
    }
    let got = custody_core::hex::encode(&hasher.finalize());
    if got != wanted {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(CliError::refused(
            format!("the server sent bytes that hash to {got}, not {wanted}: the stored evidence was altered; nothing was written"),
            Some(custody_core::Code::EvidenceHashMismatch.as_str()),
            Some("run `custody verify` on the server's data"),
        ));
    }
    tokio::fs::rename(&partial, out)
        .await
        .map_err(|error| CliError::Io(format!("cannot write {}: {error}", out.display())))
}
