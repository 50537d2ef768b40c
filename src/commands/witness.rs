//! `custody witness serve` and `custody witness key`: a minimal C2SP witness
//! (`custody_server::witness::service`).

use std::process::ExitCode;
use std::sync::Arc;

use custody_server::witness::service::{self, Witness};

use crate::cli::{WitnessCommand, WitnessServeArgs};
use crate::error::CliError;

/// Runs one `custody witness` command.
pub async fn run(command: WitnessCommand) -> Result<ExitCode, CliError> {
    match command {
        WitnessCommand::Serve(args) => serve(args).await,
        WitnessCommand::Key { data } => {
            let key = service::read_key(&data).map_err(CliError::Io)?;
            println!("{}", key.verifier());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `custody witness serve`: serves until SIGINT or SIGTERM.
async fn serve(args: WitnessServeArgs) -> Result<ExitCode, CliError> {
    crate::logging::init();
    // Every argument is checked before the data directory is touched.
    let log_keys = custody_verify::parse_keys(&args.log_keys).map_err(|error| {
        CliError::Usage(format!(
            "--log-key {error}\nhint: give the log's verifier key, as `custody log keys --data DIR` prints it"
        ))
    })?;
    if let Some(name) = &args.name {
        if !custody_log::note::is_valid_key_name(name) {
            return Err(CliError::Usage(format!(
                "--name `{}` is not a key name: it must be non-empty, with no spaces and no `+`",
                custody_core::text::escape(name)
            )));
        }
    }
    let (key, created) =
        service::open_key(&args.data, args.name.as_deref()).map_err(CliError::Io)?;
    let path = args.data.join(service::KEY_FILE);
    if created {
        eprintln!(
            "created the witness key in {} (mode 0600; keep it secret, back it up)",
            path.display()
        );
    }
    eprintln!("witness verifier key: {}", key.verifier());
    eprintln!("kept in {}", path.display());
    let witness = Witness::open(
        &args.data,
        key,
        log_keys,
        custody_core::time::SystemClock::shared(),
    )
    .map_err(CliError::Io)?;
    for (origin, size) in witness.origins().await {
        match size {
            Some(size) => eprintln!("witnessing {origin} (cosigned last at size {size})"),
            None => eprintln!("witnessing {origin} (nothing cosigned yet)"),
        }
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|error| CliError::Io(format!("cannot listen on {}: {error}", args.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|error| CliError::Io(format!("cannot listen on {}: {error}", args.listen)))?;
    eprintln!("listening on {local}");
    custody_server::connections::serve(
        listener,
        Arc::new(witness).router(),
        custody_server::connections::ConnectionLimits::default(),
        None,
        super::serve::shutdown_signal(),
    )
    .await
    .map_err(|error| CliError::Io(format!("cannot serve on {local}: {error}")))?;
    Ok(ExitCode::SUCCESS)
}
