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
    if let Some(out) = &args.out {
        // Refused before the audit, which may take long on a large log.
        super::export::refuse_out_in_data_directory(out, args.data.as_deref())?;
    }
    if let Some(bundle) = &args.bundle {
        return verify_bundle(
            bundle,
            &args.keys,
            args.json,
            args.report,
            args.out.as_deref(),
        );
    }
    // The servers' configuration says where evidence blobs are and how
    // often checkpoints are signed.
    let config = args
        .config
        .map(|path| Config::load(&path).map_err(|error| CliError::Usage(error.to_string())))
        .transpose()?;
    let progress = SharedProgress::new("verify", "events", args.json || args.report.is_some());
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
    if let Some(format) = args.report {
        return write_report(
            &format!("ledger {}", verification.location),
            report,
            format,
            args.out.as_deref(),
        );
    }
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
    report: Option<custody_report::Format>,
    out: Option<&std::path::Path>,
) -> Result<ExitCode, CliError> {
    let trusted =
        custody_verify::parse_keys(keys).map_err(|error| CliError::Usage(error.to_string()))?;
    let (reader, read, mut progress) =
        crate::progress::read_with_progress("verify", path, json || report.is_some())
            .map_err(|error| CliError::Io(format!("cannot read {}: {error}", path.display())))?;
    let verification = custody_verify::bundle::verify_bundle(reader, &trusted, &mut |_| {
        progress.set(read.load(std::sync::atomic::Ordering::Relaxed));
    })
    .map_err(|error| CliError::Io(format!("{}: {error}", path.display())))?;
    progress.finish();
    if let Some(format) = report {
        return write_report(
            &format!("bundle {}", path.display()),
            &verification.report,
            format,
            out,
        );
    }
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

/// `verify --report FORMAT [--out FILE]`: the readiness report of the trail
/// (`docs/report.md`). Exit 0 only when nothing is wrong and the verdict is
/// ready; 1 on findings or a verdict of not ready.
fn write_report(
    subject: &str,
    audit: &custody_core::audit::Report,
    format: custody_report::Format,
    out: Option<&std::path::Path>,
) -> Result<ExitCode, CliError> {
    let report = custody_report::build(custody_report::Input {
        subject,
        generated_at: custody_core::Timestamp::now(),
        verify: Some(audit),
        drill: None,
    });
    let rendered = custody_report::render(&report, format);
    let mut output = super::export::Output::open(out)?;
    let written = output
        .write_all(rendered.as_bytes())
        .and_then(|()| output.commit());
    if written.is_err() {
        output.discard();
    }
    written?;
    Ok(if audit.ok && report.verdict.ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
