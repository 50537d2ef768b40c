//! `custody delegation`: grant, list, revoke.

use std::process::ExitCode;

use custody_api::DelegationBody;

use super::connect;
use crate::cli::DelegationCommand;
use crate::error::CliError;
use crate::output::{self, say};

/// `custody delegation ...`.
pub async fn run(command: DelegationCommand) -> Result<ExitCode, CliError> {
    match command {
        DelegationCommand::Grant {
            vendor_org,
            on_behalf_of,
            valid_for,
            principals,
            entitlements,
            resources,
            connection,
            json,
        } => {
            let body = DelegationBody {
                vendor_org,
                principals,
                on_behalf_of,
                entitlements,
                resources,
                valid_for,
            };
            let answer = connect(&connection)?.grant_delegation(&body).await?;
            if json {
                output::print_json(answer.json());
            } else {
                say!("{}", answer.document()?.grant_id);
            }
        }
        DelegationCommand::Revoke {
            grant_id,
            connection,
            json,
        } => {
            let answer = connect(&connection)?.revoke_delegation(&grant_id).await?;
            if json {
                output::print_json(answer.json());
            } else {
                say!("revoked {grant_id}");
            }
        }
        DelegationCommand::List { connection, json } => {
            let answer = connect(&connection)?.delegations().await?;
            if json {
                output::print_json(answer.json());
            } else {
                for grant in answer.document()?.delegations {
                    say!(
                        "{}  {} for {} until {}{}",
                        grant.grant_id,
                        grant.vendor_org,
                        grant.on_behalf_of,
                        grant.valid_until,
                        if grant.revoked_at.is_some() {
                            "  (revoked)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
