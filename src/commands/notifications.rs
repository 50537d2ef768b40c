//! `custody notifications [CASE] [--failed]` and `custody notifications
//! retry ID`.

use std::process::ExitCode;

use custody_api::NotificationsQuery;

use super::connect;
use crate::cli::{NotificationsArgs, NotificationsCommand};
use crate::error::CliError;
use crate::output::{self, say};

/// The most notifications listed.
const LIMIT: u32 = 1000;

/// `custody notifications ...`.
pub async fn run(args: NotificationsArgs) -> Result<ExitCode, CliError> {
    match args.action {
        Some(NotificationsCommand::Retry {
            delivery_id,
            connection,
            json,
        }) => {
            let answer = connect(&connection)?
                .retry_notification(&delivery_id)
                .await?;
            if json {
                output::print_json(answer.json());
            } else {
                let entry = answer.document()?;
                say!(
                    "{delivery_id} is due now (state {}, {} attempt(s) so far)",
                    entry.state,
                    entry.attempts
                );
            }
        }
        None => {
            let query = NotificationsQuery {
                case: args.case,
                failed: args.failed,
                limit: Some(LIMIT),
            };
            let answer = connect(&args.connection)?.notifications(&query).await?;
            if args.json {
                output::print_json(answer.json());
            } else {
                output::print_notifications(&answer.document()?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
