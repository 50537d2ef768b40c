//! `custody principal` (add, list, set-groups) and `custody whoami`.

use std::process::ExitCode;

use custody_api::{GroupsBody, PrincipalBody};

use super::connect;
use crate::cli::{PrincipalCommand, WhoamiArgs};
use crate::error::CliError;
use crate::output::{self, say};

/// `custody principal ...`.
pub async fn run(command: PrincipalCommand) -> Result<ExitCode, CliError> {
    match command {
        PrincipalCommand::Add {
            name,
            kind,
            groups,
            org,
            display_name,
            connection,
            json,
        } => {
            let body = PrincipalBody {
                name,
                kind: Some(kind),
                display_name,
                groups,
                org,
            };
            let answer = connect(&connection)?.add_principal(&body).await?;
            if json {
                output::print_json(answer.json());
            } else {
                say!("added principal {}", answer.document()?.id);
            }
        }
        PrincipalCommand::List { connection, json } => {
            let answer = connect(&connection)?.principals().await?;
            if json {
                output::print_json(answer.json());
            } else {
                output::print_principals(&answer.document()?);
            }
        }
        PrincipalCommand::SetGroups {
            name,
            groups,
            connection,
            json,
        } => {
            let answer = connect(&connection)?
                .set_groups(&name, &GroupsBody { groups })
                .await?;
            if json {
                output::print_json(answer.json());
            } else {
                let principal = answer.document()?;
                println!("{} groups: {}", principal.id, principal.groups.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `custody whoami`: who the token belongs to.
pub async fn whoami(args: WhoamiArgs) -> Result<ExitCode, CliError> {
    let answer = connect(&args.connection)?.whoami().await?;
    if args.json {
        output::print_json(answer.json());
    } else {
        let who = answer.document()?;
        say!(
            "{} ({}) via token {}",
            who.principal.id,
            who.principal.kind.as_str(),
            who.token_id
        );
    }
    Ok(ExitCode::SUCCESS)
}
