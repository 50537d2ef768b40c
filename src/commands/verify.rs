//! `custody verify`: the whole trail, offline. The check is
//! `custody-verify`'s; this renders its report.

use std::process::ExitCode;

use custody_server::config::Config;

use crate::cli::VerifyArgs;
use crate::error::CliError;
use crate::output;
use crate::progress::SharedProgress;

/// `custody verify`: exit 0 only when nothing is wrong, 1 on findings.
pub async fn verify(args: VerifyArgs) -> Result<ExitCode, CliError> {
    if let Some(bundle) = args.bundle {
        return verify_bundle(&bundle, &args.keys, args.json);
    }
    // The servers' configuration says where evidence blobs are and how
    // often checkpoints are signed.
    let config = args
        .config
        .map(|path| Config::load(&path).map_err(|error| CliError::Usage(error.to_string())))
        .transpose()?;
    let progress = SharedProgress::new("verify", "events", args.json);
    let request = custody_verify::Request {
        data_dir: args.data,
        database_url: args.database_url,
        since_checkpoint: args.since_checkpoint,
        checkpoints: args.checkpoints,
        keys: args.keys,
        evidence_store: config
            .as_ref()
            .map(|config| config.evidence.store.clone())
            .unwrap_or_default(),
        checkpoint_interval_seconds: config
            .as_ref()
            .map_or(0, |config| config.log.checkpoint_interval_seconds),
        progress: Some(progress.callback()),
        witnesses: args.witnesses,
        min_witnesses: args.min_witnesses.unwrap_or(0),
        clock: None,
    };
    let verification = custody_verify::verify(request).await;
    progress.finish();
    let verification = verification?;
    let report = &verification.report;
    if args.json {
        output::print_json(report);
    } else {
        output::print_report(report, &verification.location.to_string());
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `custody verify --bundle FILE [--key VKEY ...]`: no server, no database.
fn verify_bundle(
    path: &std::path::Path,
    keys: &[String],
    json: bool,
) -> Result<ExitCode, CliError> {
    let trusted =
        custody_verify::parse_keys(keys).map_err(|error| CliError::Usage(error.to_string()))?;
    let (reader, read, mut progress) = crate::progress::read_with_progress("verify", path, json)
        .map_err(|error| CliError::Io(format!("cannot read {}: {error}", path.display())))?;
    let verification = custody_verify::bundle::verify_bundle(reader, &trusted, &mut |_| {
        progress.set(read.load(std::sync::atomic::Ordering::Relaxed));
    })
    .map_err(|error| CliError::Io(format!("{}: {error}", path.display())))?;
    progress.finish();
    if json {
        output::print_json(&verification);
    } else {
        let facts = &verification.bundle;
        let what = facts.scope.as_ref().map_or_else(
            || "an unreadable bundle".to_string(),
            |scope| scope.describe(),
        );
        output::print_report(
            &verification.report,
            &format!(
                "bundle {} ({what} of {}, checkpoint size {}, {} inclusion proofs, keys {})",
                path.display(),
                facts.origin.as_deref().unwrap_or("an unknown log"),
                facts
                    .checkpoint_size
                    .map_or_else(|| "unknown".to_string(), |size| size.to_string()),
                facts.inclusion_proofs,
                if facts.keys_given {
                    "given with --key"
                } else {
                    "only those the bundle carries"
                }
            ),
        );
    }
    Ok(if verification.report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
