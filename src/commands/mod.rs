//! One module per command group. Each takes its arguments as `cli.rs`
//! parsed them, calls the server (through `custody-client`) or a library
//! crate, and prints the result with `output`.

mod admin;
mod case;
mod connector;
mod delegation;
mod drill;
mod evidence;
mod export;
mod import;
mod log;
mod notifications;
mod principal;
mod serve;
mod token;
mod verify;
mod witness;

use std::path::Path;
use std::process::ExitCode;

use custody_api::SubjectBody;
use custody_client::Client;

use crate::cli::{Command, ConnectionArgs};
use crate::error::CliError;

/// Runs one command.
pub async fn run(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Init(args) => serve::init(args).await,
        Command::Serve(args) => serve::serve(args).await,
        Command::Verify(args) => verify::verify(args).await,
        Command::Drill(args) => drill::drill(args).await,
        Command::Export(args) => export::export(args).await,
        Command::Import(args) => import::import(args).await,
        Command::Log(command) => log::run(command).await,
        Command::Principal(command) => principal::run(command).await,
        Command::Whoami(args) => principal::whoami(args).await,
        Command::Token(command) => token::run(command).await,
        Command::Delegation(command) => delegation::run(command).await,
        Command::Admin(command) => admin::run(command).await,
        Command::Connector(command) => connector::run(command).await,
        Command::Ingest(args) => connector::ingest(args).await,
        Command::Policy(args) => admin::policy(args).await,
        Command::Notifications(args) => notifications::run(args).await,
        Command::Request(args) => case::request(args).await,
        Command::BreakGlass(args) => case::break_glass(args).await,
        Command::Approve(args) => case::approve(args).await,
        Command::Deny(args) => case::deny(args).await,
        Command::Execute(args) => case::execute(args).await,
        Command::Review(args) => case::review(args).await,
        Command::Comment(args) => case::comment(args).await,
        Command::Merge(args) => case::merge(args).await,
        Command::Show(args) => case::show(args).await,
        Command::Cases(args) => case::cases(args).await,
        Command::Attach(args) => evidence::attach(args).await,
        Command::Evidence(command) => evidence::run(command).await,
        Command::Witness(command) => witness::run(command).await,
    }
}

/// A client for the server, authenticating with the token.
fn connect(connection: &ConnectionArgs) -> Result<Client, CliError> {
    trusting(
        Client::new(&connection.url, connection.token.as_deref())?,
        connection,
    )
}

/// A client for the routes that need no token (checkpoints, proofs).
fn connect_public(connection: &ConnectionArgs) -> Result<Client, CliError> {
    trusting(Client::public(&connection.url)?, connection)
}

/// `client`, trusting `--ca-cert` (`CUSTODY_CA_CERT`) when given.
fn trusting(client: Client, connection: &ConnectionArgs) -> Result<Client, CliError> {
    Ok(match &connection.ca_cert {
        Some(path) => client.trusting(path)?,
        None => client,
    })
}

/// Every write carries an idempotency key; without one from the user, a
/// fresh key is made so the client's own retries can never double-append.
fn idempotency_key(given: &Option<String>) -> String {
    given
        .clone()
        .unwrap_or_else(|| format!("cli-{}", uuid::Uuid::now_v7().simple()))
}

/// `KIND:ID` as the API's subject; the server checks the kind.
fn subject(subject: &str) -> Result<SubjectBody, CliError> {
    let (kind, id) = subject.split_once(':').ok_or_else(|| {
        CliError::Usage(format!(
            "`{subject}` is not a subject (expected KIND:ID, e.g. user:alice or api_key:ci-deploy)"
        ))
    })?;
    Ok(SubjectBody {
        kind: kind.to_string(),
        id: id.to_string(),
    })
}

/// A whole text file.
fn read_text(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|error| CliError::Io(format!("cannot read {}: {error}", path.display())))
}

/// A failure of the log's key files: a bad request (an unknown key, the
/// last key retired) is usage, the rest is the files.
fn key_error(error: custody_server::keys::KeyError) -> CliError {
    use custody_server::keys::KeyError;
    match error {
        KeyError::UnknownKey(_) | KeyError::Inconsistent(_) => CliError::Usage(error.to_string()),
        _ => CliError::Io(error.to_string()),
    }
}
