//! `custody admin record` and `custody policy`: the deployment's records of
//! administration and of policy; `custody admin recover-token`, an admin's
//! token issued in the ledger itself.

use std::path::PathBuf;
use std::process::ExitCode;

use custody_core::admin::ADMINS_GROUP;
use custody_core::model::PrincipalId;
use custody_store::{Location, ReadOnlyStore, Store, StoreOptions};

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
        AdminCommand::RecoverToken {
            data,
            database_url,
            principal,
            ttl_seconds,
            json,
        } => recover_token(data, database_url, &principal, ttl_seconds, json).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Issues `principal` a token by writing to the ledger directly. Refused
/// unless the store exists and `principal` is a recorded admin; the token
/// is recorded in the administration record like any other, issued by
/// `system`, so the recovery is on the trail for every auditor.
async fn recover_token(
    data: Option<PathBuf>,
    database_url: Option<String>,
    principal: &str,
    ttl_seconds: u64,
    json: bool,
) -> Result<(), CliError> {
    let data = data.unwrap_or_else(|| PathBuf::from(custody_verify::DEFAULT_DATA_DIR));
    let location = Location::choose(&data, database_url.as_deref())
        .map_err(|error| CliError::Usage(error.to_string()))?;
    // Opening read-only first: it refuses a directory or a database that
    // holds no ledger, where opening for writing would create one.
    ReadOnlyStore::open_at(&location)
        .await
        .map_err(|error| CliError::Ledger(error.to_string()))?;
    let principal_id: PrincipalId = principal
        .parse()
        .map_err(|error| CliError::Usage(format!("--principal: {error}")))?;
    let store = Store::open_at(&location, StoreOptions::default())
        .await
        .map_err(|error| CliError::Ledger(error.to_string()))?;
    let known = store
        .principal(&principal_id)
        .await
        .map_err(|error| CliError::Ledger(error.to_string()))?
        .ok_or_else(|| {
            CliError::Usage(format!(
                "{principal} is not a principal of this ledger\nhint: `custody admin record` (or the bundle) lists the admins"
            ))
        })?;
    if !known.groups.iter().any(|group| group == ADMINS_GROUP) {
        return Err(CliError::Usage(format!(
            "{principal} is not in the `{ADMINS_GROUP}` group; a recovered token is for an admin only"
        )));
    }
    let issued = store
        .create_token(principal_id, (ttl_seconds > 0).then_some(ttl_seconds), None)
        .await
        .map_err(|error| CliError::Ledger(error.to_string()))?;
    if json {
        output::print_json(&serde_json::json!({
            "token_id": issued.token_id,
            "token": issued.token,
            "principal": issued.principal,
            "expires_at": issued.expires_at,
        }));
    } else {
        println!(
            "issued {} to {} (recorded as issued by system; shown once, keep it secret):\n  {}",
            issued.token_id, issued.principal, issued.token
        );
    }
    Ok(())
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
