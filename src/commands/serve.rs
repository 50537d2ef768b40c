//! `custody init` and `custody serve`: the server's side of the binary.

use std::process::ExitCode;

use custody_server::config::Config;
use custody_server::init;
use custody_server::keys::LogSigner;
use custody_server::tls::{Tls, TlsFiles};
use custody_store::StoreOptions;

use crate::cli::{InitArgs, ServeArgs};
use crate::error::CliError;
use crate::output;

/// `custody init`.
pub async fn init(args: InitArgs) -> Result<ExitCode, CliError> {
    let data = args.data.data;
    let location = custody_store::Location::choose(&data, args.database_url.as_deref())
        .map_err(|error| CliError::Usage(error.to_string()))?;
    let (_store, report) = init::initialise(&data, &location, args.origin.as_deref())
        .await
        .map_err(|error| CliError::Ledger(error.to_string()))?;
    if args.json {
        output::print_json(&report);
    } else {
        if report.resumed {
            println!(
                "Completed the interrupted initialisation of {}",
                report.data_dir.display()
            );
        } else {
            println!("Initialised {}", report.data_dir.display());
        }
        println!();
        println!("Admin token (shown once; keep it secret):");
        println!("  {}", report.admin_token);
        println!();
        println!("Log verifier key (give it to auditors):");
        println!("  {}", report.verifier_key);
        println!();
        println!("Next: custody serve --data {}", report.data_dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `custody serve`: initialises the data directory when it is new, then
/// serves until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs) -> Result<ExitCode, CliError> {
    crate::logging::init();
    let data = args.data.data;
    let config_path = args.config;
    let config = match &config_path {
        Some(path) => Config::load(path).map_err(|error| CliError::Usage(error.to_string()))?,
        None => Config::default(),
    };
    // Before the data directory is touched: the files the export sinks
    // name (certificates, a file sink's directory) are there.
    config
        .export
        .check_files()
        .map_err(|error| CliError::Usage(error.to_string()))?;
    // The certificate and key are read and checked before the data
    // directory is touched: a bad pair serves nothing and changes nothing.
    let tls = TlsFiles::pair(
        args.tls_cert.or_else(|| config.server.tls_cert.clone()),
        args.tls_key.or_else(|| config.server.tls_key.clone()),
    )
    .and_then(|files| {
        files
            .map(|files| Tls::load(files, custody_core::time::Timestamp::now()))
            .transpose()
    })
    .map_err(|error| CliError::Usage(error.to_string()))?;
    let policy_source = match &config_path {
        Some(path) => format!(
            "{}",
            std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.clone())
                .display()
        ),
        None => "built-in default (no --config)".to_string(),
    };
    let location = custody_store::Location::choose(&data, args.database_url.as_deref())
        .map_err(|error| CliError::Usage(error.to_string()))?;
    let store = match init::open_or_initialise(&data, &location, StoreOptions::default())
        .await
        .map_err(|error| CliError::Ledger(error.to_string()))?
    {
        init::Opened::Existing(store) => store,
        init::Opened::Created(store, report) => {
            let what = if report.resumed {
                "completed the interrupted initialisation of"
            } else {
                "initialised"
            };
            eprintln!(
                "{what} {} (ledger: {location})\nadmin token (shown once; keep it secret): {}\nlog verifier key: {}",
                report.data_dir.display(),
                report.admin_token,
                report.verifier_key
            );
            store
        }
    };
    let listen = args.listen.unwrap_or(config.server.listen);
    let log = LogSigner::load(&data).map_err(super::key_error)?;
    let checkpoint_copies = custody_server::checkpoint_copies::CheckpointCopies::open(
        &data,
        config.log.checkpoints_dir.as_deref(),
    )
    .map_err(CliError::Io)?;
    // Before anything is written or signed: the log must extend every
    // checkpoint signed for it (the database's, the data directory's
    // file, log.checkpoints_dir).
    checkpoint_copies
        .check(&store)
        .await
        .map_err(|error| CliError::Ledger(format!("refusing to start: {error}")))?;
    // Built field by field (not `ServeOptions::from_config`) so that each
    // failure keeps its own exit category: keys, files, the ledger.
    let trusted_keys = custody_server::keys::trusted_keys(&data).map_err(super::key_error)?;
    let options = custody_server::ServeOptions {
        monitor: custody_server::monitor::MonitorOptions {
            interval_seconds: config.monitor.interval_seconds,
            poll: std::time::Duration::from_secs(1),
            trusted_keys,
            checkpoint_interval_seconds: config.log.checkpoint_interval_seconds,
            idle_after_entries: 0,
        },
        // One clock for the store and the server: the store's (the system's).
        clock: store.clock().clone(),
        tls: tls.clone(),
        oidc: config.oidc.clone(),
        console: config.console.clone(),
        checkpoint_copies,
        max_body_bytes: config.server.max_body_bytes,
        checkpoint_interval: std::time::Duration::from_secs(config.log.checkpoint_interval_seconds),
        log,
        policy: config.policy,
        policy_source,
        scan_interval: std::time::Duration::from_secs(config.workflow.scan_interval_seconds),
        notify: config.notify,
        export: config.export,
        connectors: config.connectors.clone(),
        witnesses: config.witnesses.clone(),
        evidence: custody_server::api::evidence::EvidenceState::new(
            config
                .evidence
                .store
                .open(&data.join("evidence"))
                .map_err(|error| {
                    CliError::Io(format!("cannot open the evidence store: {error}"))
                })?,
            config.evidence.clone(),
        ),
    };
    let limits = config.server.connection_limits();
    if let Some(tls) = &tls {
        let summary = tls.summary();
        tracing::info!(
            cert = %tls.files().cert.display(),
            not_after = %summary.not_after,
            "serving HTTPS"
        );
        #[cfg(unix)]
        tokio::spawn(reload_on_hangup(tls.clone()));
    }
    custody_server::serve(store, listen, options, limits, shutdown_signal())
        .await
        .map_err(|error| CliError::Io(format!("cannot serve on {listen}: {error}")))?;
    Ok(ExitCode::SUCCESS)
}

/// Reads the certificate and key again on every SIGHUP (renewed by an ACME
/// client, say): a good pair is served from the next handshake on; a bad
/// one is logged and the served pair stays.
#[cfg(unix)]
async fn reload_on_hangup(tls: Tls) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot listen for SIGHUP: the TLS certificate reloads only on restart");
        return;
    };
    while hangups.recv().await.is_some() {
        match tls.reload(custody_core::time::Timestamp::now()) {
            Ok(summary) => tracing::info!(
                cert = %tls.files().cert.display(),
                not_after = %summary.not_after,
                "reloaded the TLS certificate"
            ),
            Err(error) => tracing::error!(
                %error,
                "the TLS certificate was not reloaded: still serving the previous one"
            ),
        }
    }
}

/// Resolves on SIGINT or, on Unix, SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
