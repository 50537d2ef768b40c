//! `custody admin record` and `custody policy`: the deployment's records of
//! administration and of policy.

use std::process::ExitCode;

use super::connect;
use crate::cli::{AdminCommand, PolicyArgs};
use crate::error::CliError;
use crate::output;

/// `custody admin ...`.
pub async fn run(command: AdminCommand) -> Result<ExitCode, CliError> {
    match command {
        AdminCommand::Record { connection, json } => {
            let answer = connect(&connection)?.admin_record().await?;
            if json {
                output::print_json(answer.json());
            } else {
                output::print_admin_record(&answer.document()?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `custody policy`: the policy in force and every policy change on record.
pub async fn policy(args: PolicyArgs) -> Result<ExitCode, CliError> {
    let answer = connect(&args.connection)?.policy().await?;
    if args.json {
        output::print_json(answer.json());
    } else {
        output::print_policy(&answer.document()?);
    }
    Ok(ExitCode::SUCCESS)
}
