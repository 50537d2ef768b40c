//! `custody token`: create, list, revoke.

use std::process::ExitCode;

use custody_api::{TokenBody, TokenInfo, TokensQuery};
use custody_core::Timestamp;

use super::connect;
use crate::cli::TokenCommand;
use crate::error::CliError;
use crate::output::{self, say, TokenRow};

/// `custody token ...`.
pub async fn run(command: TokenCommand) -> Result<ExitCode, CliError> {
    match command {
        TokenCommand::Create {
            name,
            ttl,
            connection,
            json,
        } => {
            let answer = connect(&connection)?
                .create_token(&name, &TokenBody { ttl })
                .await?;
            if json {
                output::print_json(answer.json());
            } else {
                println!("{}", answer.document()?.token);
            }
        }
        TokenCommand::List {
            name,
            connection,
            json,
        } => {
            let list = connect(&connection)?
                .tokens(&TokensQuery { principal: name })
                .await?
                .document()?;
            let now = Timestamp::now();
            let tokens: Vec<TokenRow> = list
                .tokens
                .into_iter()
                .map(|token| TokenRow {
                    status: status(&token, now),
                    token,
                })
                .collect();
            if json {
                // Through a JSON value, so that the members are printed in
                // the order every other document is (sorted).
                output::print_json(&serde_json::json!({ "tokens": tokens }));
            } else {
                output::print_tokens(&tokens);
            }
        }
        TokenCommand::Revoke {
            token_id,
            connection,
            json,
        } => {
            let answer = connect(&connection)?.revoke_token(&token_id).await?;
            if json {
                output::print_json(answer.json());
            } else {
                let revoked = answer.document()?;
                say!(
                    "revoked {} of {} at {}",
                    revoked.token_id,
                    revoked.principal,
                    revoked.revoked_at.unwrap_or_default()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a token still authenticates at `now`: `revoked`, `expired` (its
/// `expires_at` is not after `now`) or `active`.
fn status(token: &TokenInfo, now: Timestamp) -> &'static str {
    if token.revoked_at.is_some() {
        "revoked"
    } else if token
        .expires_at
        .as_deref()
        .and_then(|text| Timestamp::parse(text).ok())
        .is_some_and(|expires_at| expires_at <= now)
    {
        "expired"
    } else {
        "active"
    }
}
