//! The connection loop: HTTP/1.1 over TCP with the limits a server facing
//! hostile clients needs.
//!
//! - **Header-read timeout**: a client has `header_read_timeout` to send a
//!   whole request header; a half-sent header (slowloris) or an idle
//!   keep-alive connection is closed when it passes.
//! - **Request timeout**: from its header, a request has `request_timeout` to
//!   be read and answered; past it the answer is `408` problem+json and the
//!   connection is closed. A write cut this way is not acknowledged; retrying
//!   with the same `Idempotency-Key` replays it if it was recorded.
//! - **Connection limit**: at most `max_connections` connections are served
//!   at once; a connection beyond it is answered `503` problem+json with
//!   `Retry-After` and closed (over TLS, closed unanswered), so the server
//!   stays responsive and bounded.
//! - **Shutdown deadline**: when `shutdown` resolves, the listener closes,
//!   idle connections close, and requests in progress get `shutdown_grace`
//!   to finish and be answered (with `Connection: close`). At the deadline
//!   every connection still open is dropped. A write is acknowledged only by
//!   its answer, and every answered write is durable, so nothing acknowledged
//!   is lost; a request dropped at the deadline was never acknowledged.
//! - **TLS** (when the server has a certificate, [`crate::tls`]): the
//!   handshake runs inside the connection's slot and within the header-read
//!   timeout, so a stalled handshake is closed like a stalled header. A
//!   client that sends plain HTTP to the TLS port is answered `400`
//!   problem+json in plain HTTP, naming `https://`, and closed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::problem::{types, Problem};

/// The limits the connection loop enforces (the `[server]` section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time to send a whole request header; also how long an idle
    /// keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// Time for a request, from its header, to be read and answered.
    pub request_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
    /// After shutdown begins, how long requests in progress may take.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        crate::config::ServerConfig::default().connection_limits()
    }
}

/// Refusals being written at once, beyond which an extra connection is
/// closed without an answer (each refusal lives at most [`REFUSAL_TIME`]).
const MAX_REFUSALS: usize = 64;
/// How long writing a `503` to a refused connection may take.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` resolves, then drains the
/// connections within the shutdown deadline. With `tls`, every connection
/// is HTTPS.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app.layer(axum::middleware::from_fn_with_state(
        limits.request_timeout,
        limit_request_time,
    ));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Reap finished connections so the set stays as large as the open ones.
        while connections.try_join_next().is_some() {}
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a little instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("custody_http_connections_refused_total").increment(1);
            // A TLS client cannot read a plain-text answer, and a
            // handshake for a refusal would spend what the limit saves:
            // over the limit, a TLS connection is closed unanswered.
            if tls.is_some() {
                continue;
            }
            if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let app = app.clone();
        let mut stopped = stopped.clone();
        let tls = tls.clone();
        let handshake_time = limits.header_read_timeout;
        connections.spawn(async move {
            let _slot = slot;
            let Some(acceptor) = tls else {
                return serve_connection(&builder, TokioIo::new(stream), app, stopped).await;
            };
            // The handshake is bounded like a request header, and given
            // up when shutdown begins: no request is in progress yet.
            let accepted = tokio::select! {
                accepted = tokio::time::timeout(handshake_time, handshake(acceptor, stream)) => {
                    accepted.unwrap_or_else(|_| {
                        metrics::counter!("custody_tls_handshakes_failed_total").increment(1);
                        tracing::debug!("a TLS handshake did not finish within the header-read timeout");
                        None
                    })
                }
                _ = stopped.wait_for(|stop| *stop) => None,
            };
            if let Some(stream) = accepted {
                serve_connection(&builder, TokioIo::new(stream), app, stopped).await;
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let open = connections.len();
    if open > 0 {
        tracing::info!(
            open,
            deadline_seconds = limits.shutdown_grace.as_secs(),
            "shutting down: finishing the requests in progress"
        );
    }
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "the shutdown deadline passed: dropping the connections still open"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Serves HTTP/1.1 on one connection (plain or TLS) until it closes, or
/// until shutdown begins: then idle connections close now, and a request in
/// progress is finished and answered with `Connection: close`.
async fn serve_connection<I>(
    builder: &http1::Builder,
    io: I,
    app: Router,
    mut stopped: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    let connection = builder.serve_connection(io, TowerToHyperService::new(app));
    let mut connection = std::pin::pin!(connection);
    let stopping = tokio::select! {
        _ = connection.as_mut() => false,
        _ = stopped.wait_for(|stop| *stop) => true,
    };
    if stopping {
        connection.as_mut().graceful_shutdown();
        let _ = connection.await;
    }
}

/// The TLS handshake of one connection, or `None` when it failed. A client
/// whose first byte is not a TLS handshake record speaks something else
/// (plain HTTP, most likely): it is answered `400` in plain HTTP.
async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    /// The content type of a TLS handshake record (RFC 8446, section 5.1).
    const HANDSHAKE_RECORD: u8 = 0x16;
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(1) if first[0] == HANDSHAKE_RECORD => {}
        Ok(1) => {
            metrics::counter!("custody_tls_handshakes_failed_total").increment(1);
            let problem = Problem::new(
                StatusCode::BAD_REQUEST,
                types::INVALID_REQUEST,
                "Plain HTTP sent to the HTTPS port",
                "this server speaks HTTPS (TLS) on this port",
            )
            .with_hint("use an https:// URL (CUSTODY_URL or --url)");
            answer_and_close(stream, "400 Bad Request", "", &problem).await;
            return None;
        }
        _ => return None,
    }
    match acceptor.accept(stream).await {
        Ok(stream) => Some(stream),
        Err(error) => {
            metrics::counter!("custody_tls_handshakes_failed_total").increment(1);
            tracing::debug!(%error, "a TLS handshake failed");
            None
        }
    }
}

/// Answers a connection over the limit with `503` and closes it.
async fn refuse(stream: TcpStream) {
    let problem = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        types::UNAVAILABLE,
        "Too many connections",
        "the server is serving as many connections as it is configured to",
    )
    .with_hint("retry shortly; an operator can raise [server] max_connections");
    answer_and_close(
        stream,
        "503 Service Unavailable",
        "retry-after: 1\r\n",
        &problem,
    )
    .await;
}

/// Writes `problem` as a whole HTTP/1.1 answer with `status` (and the
/// `extra_headers` lines) on a connection no HTTP server serves, then
/// closes it, within [`REFUSAL_TIME`].
async fn answer_and_close(
    mut stream: TcpStream,
    status: &str,
    extra_headers: &str,
    problem: &Problem,
) {
    let body = serde_json::to_string(problem).unwrap_or_default();
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/problem+json\r\n{extra_headers}connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        let _ = stream.shutdown().await;
        // Read what the client sends until it closes, so closing does not
        // reset the connection before the client has read the answer.
        let mut sink = [0u8; 1024];
        while let Ok(read) = stream.read(&mut sink).await {
            if read == 0 {
                break;
            }
        }
    })
    .await;
}

/// Answers `408` when a request is not read and answered within the limit.
async fn limit_request_time(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("custody_http_requests_timed_out_total").increment(1);
            let mut response = Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                types::REQUEST_TIMEOUT,
                "Request timeout",
                format!(
                    "the request was not read and answered within {} seconds",
                    limit.as_secs()
                ),
            )
            .with_hint("send the request faster; a write cut short was not acknowledged: retry it with the same Idempotency-Key")
            .into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}
