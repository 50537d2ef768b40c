//! `custody verify`: the whole trail, offline. The check is
//! `custody-verify`'s; this renders its report.

use std::process::ExitCode;

use custody_server::config::Config;

use crate::cli::VerifyArgs;
use crate::error::CliError;
use crate::output;

/// `custody verify`: exit 0 only when nothing is wrong, 1 on findings.
pub async fn verify(args: VerifyArgs) -> Result<ExitCode, CliError> {
    if let Some(bundle) = args.bundle {
        return Err(CliError::Usage(format!(
            "cannot verify {}: export bundles are not produced by this version of Custody yet\nhint: verify the data directory with --data",
            bundle.display()
        )));
    }
    // The servers' configuration says where evidence blobs are and how
    // often checkpoints are signed.
    let config = args
        .config
        .map(|path| Config::load(&path).map_err(|error| CliError::Usage(error.to_string())))
        .transpose()?;
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
        clock: None,
    };
    let verification = custody_verify::verify(request).await?;
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
