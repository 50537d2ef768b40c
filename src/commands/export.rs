//! `custody export`: the ledger read directly, written in a format. This
//! branch builds the auditor bundle only (`--format bundle`, in
//! `import.rs` beside `custody import`); the line formats are built in the
//! export formatters' branch.

use std::process::ExitCode;

use crate::cli::ExportArgs;
use crate::error::CliError;

/// `custody export --format FORMAT ...`.
pub async fn export(args: ExportArgs) -> Result<ExitCode, CliError> {
    match args.format.as_str() {
        "bundle" => super::import::export_bundle(args).await,
        "ocsf" | "syslog" | "cef" | "ecs" | "cloudevents" | "jsonl" => Err(CliError::Usage(format!(
            "the {} export format is not available in this build; --format bundle is",
            args.format
        ))),
        other => Err(CliError::Usage(format!(
            "unknown export format `{other}`; expected one of ocsf, syslog, cef, ecs, cloudevents, jsonl, bundle"
        ))),
    }
}
