//! `custody`: the command line. Glue only: it parses arguments, calls the
//! server's HTTP API (client commands) or the library crates (server and
//! auditor commands), and prints the result.
//!
//! Exit codes: 0 success; 1 refused (policy, separation of duties, not found,
//! conflict) or, for `verify`, findings; 2 usage or connection errors.

mod cli;
mod commands;
mod error;
mod logging;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, WitnessCommand};

fn main() -> ExitCode {
    stop_quietly_on_closed_output(true);
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Serve { .. } | Command::Witness(WitnessCommand::Serve(_))
    ) {
        // A server whose log reader went away keeps serving.
        stop_quietly_on_closed_output(false);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run(cli))
}

/// When `stop` is true, the process ends quietly, as Unix tools do, once
/// the reader of its output has gone (`custody cases | head -1`): SIGPIPE
/// ends it (a shell reports status 141) instead of `println!` panicking on
/// the broken pipe. When false, SIGPIPE is ignored again (Rust's default),
/// and writes to a closed pipe are errors.
// The workspace's one unsafe block: Rust has no safe way to restore a
// signal's default action (unsafe_code is denied everywhere else, and
// forbidden in every library crate).
#[allow(unsafe_code)]
fn stop_quietly_on_closed_output(stop: bool) {
    #[cfg(unix)]
    // SAFETY: `signal` only sets this process's disposition of SIGPIPE; it
    // runs before the async runtime starts any other thread.
    unsafe {
        libc::signal(
            libc::SIGPIPE,
            if stop { libc::SIG_DFL } else { libc::SIG_IGN },
        );
    }
    #[cfg(not(unix))]
    let _ = stop;
}

async fn run(cli: Cli) -> ExitCode {
    match commands::run(cli.command).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("{}", output::render_error(&error));
            ExitCode::from(error.exit_code())
        }
    }
}
