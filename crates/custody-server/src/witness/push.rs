//! Pushing the log's checkpoints to its witnesses (`[[witnesses]]`).
//!
//! One worker per witness and node. It works only while it holds the
//! witness's lease in the store (`pull_cursors`, source `witness:NAME`), so
//! several nodes on one database push once; the lease's cursor is the size
//! the witness last cosigned, as far as this deployment knows.
//!
//! Each round reads the newest stored checkpoint. Unless the witness's
//! cosignature of it is stored, the worker sends it (C2SP tlog-witness
//! `add-checkpoint`) with a consistency proof from the witness's size
//! (`old 0` and no proof at first). A `409` with a `text/x.tlog.size` body
//! tells the witness's real size: the worker moves its cursor there and
//! sends again with a proof from it. A size beyond the newest checkpoint is
//! a rollback (or a wrong witness): reported, never recorded, and asked
//! about again next round. A `200` carries the cosignature, which
//! is verified with the witness's configured key before it is stored.
//!
//! A witness that is down or refuses only delays cosigning: the worker
//! retries with backoff (half a second, doubling, at most
//! [`MAX_BACKOFF`]), and then sends whatever checkpoint is newest, with a
//! proof from the witness's size, so nothing is lost. A refusal other than
//! a size mismatch (a fork, a proof the witness rejects) means the log no
//! longer extends what the witness saw: it is logged as an error and
//! counted (`custody_witness_refusals_total`).

use std::sync::Arc;
use std::time::Duration;

use custody_core::time::SharedClock;
use custody_log::note::Note;
use custody_log::witness::{
    cosignature_of, parse_signatures, parse_size_body, AddCheckpoint, SIZE_CONTENT_TYPE,
};
use custody_store::{PullCursorOperation, PullLease, Store, StoredCheckpoint, StoredCosignature};

use super::WitnessTarget;

/// How long a worker's lease lasts without renewal.
const LEASE_SECONDS: i64 = 120;

/// How often an idle worker looks for a new checkpoint.
const POLL: Duration = Duration::from_secs(1);

/// The first wait after a failure.
const MIN_BACKOFF: Duration = Duration::from_millis(500);

/// The longest wait between two attempts at a witness that fails.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long one request to a witness may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The largest answer read from a witness.
const ANSWER_LIMIT: usize = 64 * 1024;

/// Sends after a `409` told the witness's size, within one round.
const MAX_RESYNCS: usize = 3;

/// The running push workers of this node.
pub struct Pushers {
    owner: String,
    workers: Vec<(String, tokio::task::JoinHandle<()>)>,
}

/// What one round did.
#[derive(Debug, PartialEq, Eq)]
enum Round {
    /// Another node holds the lease, the log has no checkpoint, or the
    /// witness's cosignature of the newest one is stored.
    Idle,
    /// The witness cosigned the checkpoint of this size.
    Cosigned(u64),
}

impl Pushers {
    /// Stops the workers and gives their leases up.
    pub async fn stop(self, store: &Store, clock: &SharedClock) {
        for (_, worker) in &self.workers {
            worker.abort();
        }
        let now = clock.now();
        for (name, worker) in self.workers {
            let _ = worker.await;
            if let Err(error) = store
                .pull_cursor(
                    &lease_name(&name),
                    &self.owner,
                    PullCursorOperation::Release,
                    now,
                    now,
                )
                .await
            {
                tracing::warn!(witness = %name, %error, "could not give up the witness's lease; another node takes it when it runs out");
            }
        }
    }
}

/// Starts a worker for every configured witness.
pub fn start(store: &Store, targets: &[WitnessTarget], clock: &SharedClock) -> Pushers {
    let mut suffix = [0u8; 6];
    if let Err(error) = getrandom::fill(&mut suffix) {
        tracing::error!(%error, "no randomness available: no checkpoint is sent to the witnesses");
        return Pushers {
            owner: String::new(),
            workers: Vec::new(),
        };
    }
    let owner = format!(
        "witness-{}-{}",
        std::process::id(),
        custody_core::hex::encode(&suffix)
    );
    let mut workers = Vec::new();
    for target in targets {
        let sender = match custody_notify::connector::CallSender::new(&target.name, REQUEST_TIMEOUT)
        {
            Ok(sender) => sender,
            Err(error) => {
                tracing::error!(witness = %target.name, %error, "cannot send checkpoints to the witness");
                continue;
            }
        };
        let worker = Worker {
            store: store.clone(),
            target: target.clone(),
            client: sender.client().clone(),
            owner: owner.clone(),
            clock: clock.clone(),
        };
        workers.push((target.name.clone(), tokio::spawn(Arc::new(worker).run())));
    }
    Pushers { owner, workers }
}

fn lease_name(witness: &str) -> String {
    format!("witness:{witness}")
}

struct Worker {
    store: Store,
    target: WitnessTarget,
    client: reqwest::Client,
    owner: String,
    clock: SharedClock,
}

impl Worker {
    async fn run(self: Arc<Self>) {
        let mut backoff = MIN_BACKOFF;
        loop {
            match self.round().await {
                Ok(round) => {
                    backoff = MIN_BACKOFF;
                    if let Round::Cosigned(size) = round {
                        metrics::counter!("custody_witness_cosignatures_total", "witness" => self.target.name.clone()).increment(1);
                        metrics::gauge!("custody_witness_cosigned_size", "witness" => self.target.name.clone()).set(size as f64);
                        tracing::info!(witness = %self.target.name, size, "the witness cosigned the checkpoint");
                        continue;
                    }
                    tokio::time::sleep(POLL).await;
                }
                Err(error) => {
                    metrics::counter!("custody_witness_failures_total", "witness" => self.target.name.clone()).increment(1);
                    tracing::warn!(witness = %self.target.name, %error, retry_in_ms = backoff.as_millis(), "the witness did not cosign the checkpoint; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn round(&self) -> Result<Round, String> {
        let lease = lease_name(&self.target.name);
        let now = self.clock.now();
        let held = self
            .store
            .pull_cursor(
                &lease,
                &self.owner,
                PullCursorOperation::Lease,
                now,
                now.plus_seconds(LEASE_SECONDS),
            )
            .await
            .map_err(|error| format!("cannot take the witness's lease: {error}"))?;
        let PullLease::Held(cursor) = held else {
            return Ok(Round::Idle);
        };
        let known: u64 = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let Some(latest) = self
            .store
            .latest_checkpoint()
            .await
            .map_err(|error| format!("cannot read the newest checkpoint: {error}"))?
        else {
            return Ok(Round::Idle);
        };
        let stored = self
            .store
            .cosignatures(Some(latest.size))
            .await
            .map_err(|error| format!("cannot read the stored cosignatures: {error}"))?;
        if stored
            .iter()
            .any(|c| c.witness == self.target.name && c.root == latest.root)
        {
            return Ok(Round::Idle);
        }
        // A size beyond the newest checkpoint is never kept as the witness's
        // (see below); one kept by an older version is asked about again
        // (`old 0` changes nothing at a witness that has a size: it answers
        // it).
        let mut known = if known > latest.size { 0 } else { known };
        for _ in 0..=MAX_RESYNCS {
            match self.send(&latest, known).await? {
                Sent::Cosigned(cosignature) => {
                    self.store
                        .add_cosignature(cosignature)
                        .await
                        .map_err(|error| format!("cannot store the cosignature: {error}"))?;
                    self.advance(&lease, latest.size).await?;
                    return Ok(Round::Cosigned(latest.size));
                }
                Sent::WitnessAt(size) if size > latest.size => {
                    // The log was rolled back, or the witness is wrong
                    // (broken, hostile, or keeping another deployment's
                    // log). Either way the size is not recorded: the next
                    // round asks again, so a witness that is put right
                    // cosigns again.
                    return Err(self.rolled_back(size, latest.size));
                }
                Sent::WitnessAt(size) => {
                    tracing::info!(witness = %self.target.name, size, "the witness's latest cosigned size; sending again with a proof from it");
                    known = size;
                    self.advance(&lease, size).await?;
                }
            }
        }
        Err(format!(
            "the witness's size kept changing over {MAX_RESYNCS} attempts"
        ))
    }

    async fn advance(&self, lease: &str, size: u64) -> Result<(), String> {
        let now = self.clock.now();
        self.store
            .pull_cursor(
                lease,
                &self.owner,
                PullCursorOperation::Advance {
                    to: size.to_string(),
                },
                now,
                now.plus_seconds(LEASE_SECONDS),
            )
            .await
            .map(|_| ())
            .map_err(|error| format!("cannot record the witness's size: {error}"))
    }

    /// Reports a witness whose size is beyond the newest checkpoint.
    fn rolled_back(&self, witness_size: u64, log_size: u64) -> String {
        metrics::counter!("custody_witness_refusals_total", "witness" => self.target.name.clone())
            .increment(1);
        tracing::error!(witness = %self.target.name, witness_size, log_size, "the witness cosigned a larger tree of this log than the newest checkpoint: the log was rolled back, or the witness holds another log under this origin");
        format!(
            "the witness cosigned size {witness_size}, larger than the newest checkpoint ({log_size}): the log was rolled back, or the witness holds another log under this origin"
        )
    }

    /// Sends `checkpoint` with a proof from `old`.
    async fn send(&self, checkpoint: &StoredCheckpoint, old: u64) -> Result<Sent, String> {
        if old > checkpoint.size {
            return Err(self.rolled_back(old, checkpoint.size));
        }
        let proof = if old == 0 || old == checkpoint.size {
            Vec::new()
        } else {
            self.store
                .consistency_proof(old, checkpoint.size)
                .await
                .map_err(|error| {
                    format!(
                        "cannot prove size {} consistent with {old}: {error}",
                        checkpoint.size
                    )
                })?
        };
        let request = AddCheckpoint::new(old, proof, &checkpoint.note)
            .map_err(|error| format!("cannot make the request: {error}"))?;
        let answer = self
            .client
            .post(self.target.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(request.to_body())
            .send()
            .await
            .map_err(|error| format!("cannot reach the witness: {}", error.without_url()))?;
        let status = answer.status().as_u16();
        let content_type = answer
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = read_limited(answer).await?;
        match status {
            200 => {
                let text = Note::parse(checkpoint.note.as_bytes())
                    .map_err(|error| format!("the stored checkpoint is malformed: {error}"))?
                    .text()
                    .to_string();
                let lines = parse_signatures(&body).map_err(|error| error.to_string())?;
                let (line, cosignature) = cosignature_of(&self.target.key, &text, &lines)
                    .map_err(|error| {
                        format!(
                            "the witness's answer holds no valid cosignature by its configured key {}: {error}",
                            self.target.key
                        )
                    })?;
                Ok(Sent::Cosigned(StoredCosignature {
                    witness: self.target.name.clone(),
                    size: checkpoint.size,
                    root: checkpoint.root,
                    note: checkpoint.note.clone(),
                    line: line.to_line().trim_end_matches('\n').to_string(),
                    cosigned_at: cosignature.timestamp(),
                    recorded_at: String::new(),
                }))
            }
            409 if content_type.starts_with(SIZE_CONTENT_TYPE) => parse_size_body(&body)
                .map(Sent::WitnessAt)
                .map_err(|error| error.to_string()),
            _ => {
                let quoted = String::from_utf8_lossy(body.get(..300).unwrap_or(&body)).into_owned();
                let said = custody_core::text::escape(quoted.trim()).to_string();
                if matches!(status, 409 | 422) {
                    metrics::counter!("custody_witness_refusals_total", "witness" => self.target.name.clone()).increment(1);
                    tracing::error!(witness = %self.target.name, status, size = checkpoint.size, answer = %said, "the witness refused the checkpoint: the log does not extend what the witness saw");
                }
                Err(format!("the witness answered {status}: {said}"))
            }
        }
    }
}

enum Sent {
    Cosigned(StoredCosignature),
    WitnessAt(u64),
}

async fn read_limited(mut answer: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = answer
        .chunk()
        .await
        .map_err(|error| format!("cannot read the witness's answer: {}", error.without_url()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > ANSWER_LIMIT {
            return Err(format!(
                "the witness's answer is larger than {ANSWER_LIMIT} bytes"
            ));
        }
    }
    Ok(body)
}
