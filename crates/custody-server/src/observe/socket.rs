//! Vault's `socket` audit device: a TCP listener per `vault` source with a
//! `socket_listen` address, started with `custody serve`.
//!
//! Vault connects (`vault audit enable socket address=HOST:PORT
//! socket_type=tcp`) and writes one JSON record per line, and nothing
//! else: no authentication and no acknowledgement. So the listener is on
//! loopback unless the source's settings say the network is trusted
//! (`socket_trusted_network`), each line is parsed on its own
//! (`custody_connect::vault`) and recorded in the order Vault wrote it
//! ([`super::record`]), and a line that cannot be read is logged and
//! counted, never answered. A record the ledger could not take (a database
//! error) is retried a few times while Vault waits; after that it is lost
//! to the socket, and Vault's `file` device, ingested later with
//! `custody ingest`, is the way to recover it (the request IDs already
//! recorded append nothing). See docs/observations/vault.md.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use custody_connect::config::ConnectorConfig;
use custody_connect::observe::Parsed;

use super::SourceEntry;
use crate::AppState;

/// How often a record the ledger could not take is tried.
const ATTEMPTS: u32 = 5;

/// A bound listener and the source it feeds.
pub struct Bound {
    entry: Arc<SourceEntry>,
    listener: TcpListener,
    max_line_bytes: usize,
}

/// Binds the socket of every `vault` source that has one, before anything
/// else starts: an address that cannot be bound stops start-up.
pub async fn bind(connectors: &crate::connectors::Connectors) -> Result<Vec<Bound>, String> {
    let mut bound = Vec::new();
    for entry in connectors.sources() {
        let ConnectorConfig::Vault(config) = &entry.config else {
            continue;
        };
        let Some(address) = config.socket_address()? else {
            continue;
        };
        let listener = TcpListener::bind(address).await.map_err(|error| {
            format!(
                "connector `{}` (vault): cannot listen on {address} for the socket audit device: {error}",
                entry.name
            )
        })?;
        tracing::info!(connector = %entry.name, %address, "listening for Vault's socket audit device (unauthenticated: keep it on loopback or a trusted network)");
        bound.push(Bound {
            entry: entry.clone(),
            listener,
            max_line_bytes: config.max_line_bytes,
        });
    }
    Ok(bound)
}

/// Accepts Vault's connections on every bound socket until aborted;
/// returns the accept loops' handles.
pub fn start(state: &AppState, bound: Vec<Bound>) -> Vec<tokio::task::JoinHandle<()>> {
    bound
        .into_iter()
        .map(|bound| tokio::spawn(accept(state.clone(), bound)))
        .collect()
}

async fn accept(state: AppState, bound: Bound) {
    loop {
        match bound.listener.accept().await {
            Ok((stream, peer)) => {
                tracing::info!(connector = %bound.entry.name, %peer, "Vault's socket audit device connected");
                tokio::spawn(read_lines(
                    state.clone(),
                    bound.entry.clone(),
                    stream,
                    bound.max_line_bytes,
                ));
            }
            Err(error) => {
                tracing::warn!(connector = %bound.entry.name, %error, "accepting a socket connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one connection's lines until Vault closes it.
async fn read_lines(
    state: AppState,
    entry: Arc<SourceEntry>,
    mut stream: TcpStream,
    max_line_bytes: usize,
) {
    let mut pending: Vec<u8> = Vec::new();
    // Set while the rest of an over-long line is thrown away.
    let mut discarding = false;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(connector = %entry.name, %error, "reading Vault's socket failed; the connection is closed");
                break;
            }
        };
        let mut rest = &chunk[..read];
        while let Some(end) = rest.iter().position(|byte| *byte == b'\n') {
            if discarding {
                discarding = false;
            } else {
                pending.extend_from_slice(&rest[..end]);
                line(&state, &entry, &pending).await;
            }
            pending.clear();
            rest = &rest[end + 1..];
        }
        if !discarding {
            pending.extend_from_slice(rest);
            if pending.len() > max_line_bytes {
                refused(
                    &entry,
                    "too_large",
                    &format!("a line over max_line_bytes ({max_line_bytes}) is skipped"),
                );
                pending.clear();
                discarding = true;
            }
        }
    }
    if !pending.is_empty() && !discarding {
        line(&state, &entry, &pending).await;
    }
}

fn refused(entry: &SourceEntry, reason: &'static str, error: &str) {
    metrics::counter!(
        "custody_connector_refusals_total",
        "connector" => entry.name.clone(),
        "reason" => reason
    )
    .increment(1);
    tracing::warn!(connector = %entry.name, reason, error = %custody_core::text::escape(error), "a record from Vault's socket was not recorded");
}

/// Parses and records one line.
async fn line(state: &AppState, entry: &SourceEntry, line: &[u8]) {
    let parsed = match entry.source.parse_batch(line) {
        Ok(parsed) => parsed,
        Err(refusal) => {
            refused(entry, refusal.label(), &refusal.to_string());
            return;
        }
    };
    if parsed.observations.is_empty() {
        return;
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let summary = super::record(
            state,
            entry,
            Parsed {
                observations: parsed.observations.clone(),
                skipped: 0,
            },
        )
        .await;
        let retry = summary
            .refused
            .iter()
            .find(|refusal| refusal.error.starts_with(super::RETRY));
        for refusal in summary
            .refused
            .iter()
            .filter(|refusal| !refusal.error.starts_with(super::RETRY))
        {
            refused(
                entry,
                "refused",
                &format!("{}: {}", refusal.external_id, refusal.error),
            );
        }
        let Some(retry) = retry else {
            return;
        };
        if attempt >= ATTEMPTS {
            refused(
                entry,
                "not_recorded",
                &format!(
                    "{}: {} (given up after {ATTEMPTS} attempts; ingest Vault's file device to recover it)",
                    retry.external_id, retry.error
                ),
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
    }
}
