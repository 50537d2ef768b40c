//! Writes a bundle as its parts arrive, hashing every byte for the trailer.

use std::io::Write;

use sha2::{Digest, Sha256};

use super::{
    encode_base64, encode_hashes, BundleError, ContextLine, EventLine, EvidenceLine, Header,
    IdempotencyLine, Line, Record, Scope, TokenLine, Trailer,
};

/// Writes one bundle to `W`, line by line, in the layout's order (it
/// refuses a part out of order). [`BundleWriter::finish`] writes the
/// trailer; a bundle not finished has none, and a reader reports it
/// truncated.
pub struct BundleWriter<W: Write> {
    out: W,
    hasher: Sha256,
    lines: u64,
    events: u64,
    evidence: u64,
    tokens: u64,
    idempotency: u64,
    whole_log: bool,
    last: &'static str,
    last_stage: u8,
    last_event: Option<u64>,
    buffer: Vec<u8>,
}

impl<W: Write> BundleWriter<W> {
    /// Starts a bundle with its header.
    pub fn new(out: W, header: Header) -> Result<BundleWriter<W>, BundleError> {
        let mut writer = BundleWriter {
            out,
            hasher: Sha256::new(),
            lines: 0,
            events: 0,
            evidence: 0,
            tokens: 0,
            idempotency: 0,
            whole_log: header.scope == Scope::Log,
            last: "header",
            last_stage: 0,
            last_event: None,
            buffer: Vec::new(),
        };
        writer.put(&Line::Header(header))?;
        Ok(writer)
    }

    /// A verifier key (`name+keyid+base64`).
    pub fn key(&mut self, vkey: &str) -> Result<(), BundleError> {
        self.put(&Line::Key {
            vkey: vkey.to_string(),
        })
    }

    /// The signed checkpoint note the proofs are against.
    pub fn checkpoint(&mut self, note: &str) -> Result<(), BundleError> {
        self.put(&Line::Checkpoint {
            note: note.to_string(),
        })
    }

    /// An older signed checkpoint of the log, stored at `created_at`.
    pub fn history(&mut self, note: &str, created_at: &str) -> Result<(), BundleError> {
        self.put(&Line::History {
            note: note.to_string(),
            created_at: created_at.to_string(),
        })
    }

    /// An older signed checkpoint and the consistency proof from it to the
    /// bundle's checkpoint.
    pub fn consistency(&mut self, from: &str, proof: &[[u8; 32]]) -> Result<(), BundleError> {
        self.put(&Line::Consistency {
            from: from.to_string(),
            proof: encode_hashes(proof),
        })
    }

    /// An event of the policy or administration record, with its inclusion
    /// proof.
    pub fn context(
        &mut self,
        record: Record,
        log_index: u64,
        bytes: &[u8],
        proof: &[[u8; 32]],
    ) -> Result<(), BundleError> {
        self.put(&Line::Context(ContextLine {
            record,
            log_index,
            event: encode_base64(bytes),
            proof: encode_hashes(proof),
        }))
    }

    /// An event in the bundle's scope, in log order, with its inclusion
    /// proof unless the bundle is of the whole log.
    pub fn event(
        &mut self,
        log_index: u64,
        bytes: &[u8],
        proof: Option<&[[u8; 32]]>,
    ) -> Result<(), BundleError> {
        if let Some(previous) = self.last_event {
            if log_index <= previous {
                return Err(BundleError::EventOrder {
                    index: log_index,
                    previous,
                });
            }
        }
        self.put(&Line::Event(EventLine {
            log_index,
            event: encode_base64(bytes),
            proof: proof.map(encode_hashes),
        }))?;
        self.last_event = Some(log_index);
        self.events += 1;
        Ok(())
    }

    /// A row of the store's `tokens` table, with its secret's full SHA-256
    /// (whole-log bundles only).
    pub fn token(&mut self, token: TokenLine) -> Result<(), BundleError> {
        let line = Line::Token(token);
        self.whole_log_only(&line)?;
        self.put(&line)?;
        self.tokens += 1;
        Ok(())
    }

    /// A write's idempotency record (whole-log bundles only).
    pub fn idempotency(&mut self, record: IdempotencyLine) -> Result<(), BundleError> {
        let line = Line::Idempotency(record);
        self.whole_log_only(&line)?;
        self.put(&line)?;
        self.idempotency += 1;
        Ok(())
    }

    /// An evidence blob's record, and its bytes when the bundle carries them.
    pub fn evidence(
        &mut self,
        sha256: &str,
        media_type: &str,
        size: u64,
        blob: Option<&[u8]>,
    ) -> Result<(), BundleError> {
        self.put(&Line::Evidence(EvidenceLine {
            sha256: sha256.to_string(),
            media_type: media_type.to_string(),
            size,
            blob: blob.map(encode_base64),
        }))?;
        self.evidence += 1;
        Ok(())
    }

    /// Events written so far.
    pub fn events_written(&self) -> u64 {
        self.events
    }

    /// Token lines written so far.
    pub fn tokens_written(&self) -> u64 {
        self.tokens
    }

    /// Idempotency lines written so far.
    pub fn idempotency_written(&self) -> u64 {
        self.idempotency
    }

    fn whole_log_only(&self, line: &Line) -> Result<(), BundleError> {
        if self.whole_log {
            Ok(())
        } else {
            Err(BundleError::NotWholeLog {
                line: line.type_name(),
            })
        }
    }

    /// Writes the trailer, flushes, and returns the output and the trailer.
    pub fn finish(mut self) -> Result<(W, Trailer), BundleError> {
        let trailer = Trailer {
            lines: self.lines,
            events: self.events,
            evidence: self.evidence,
            sha256: custody_core::hex::encode(&self.hasher.clone().finalize()),
        };
        self.put(&Line::Trailer(trailer.clone()))?;
        self.out.flush()?;
        Ok((self.out, trailer))
    }

    fn put(&mut self, line: &Line) -> Result<(), BundleError> {
        let stage = line.stage();
        let first = self.lines == 0 && matches!(line, Line::Header(_));
        if !first && (stage < self.last_stage || matches!(line, Line::Header(_))) {
            return Err(BundleError::Order {
                line: line.type_name(),
                after: self.last,
            });
        }
        // Checkpoint and trailer lines are one each.
        if !first && stage == self.last_stage && matches!(line, Line::Checkpoint { .. }) {
            return Err(BundleError::Order {
                line: line.type_name(),
                after: self.last,
            });
        }
        self.buffer.clear();
        serde_json::to_writer(&mut self.buffer, line)
            .map_err(|error| BundleError::Encode(error.to_string()))?;
        self.buffer.push(b'\n');
        self.out.write_all(&self.buffer)?;
        if !matches!(line, Line::Trailer(_)) {
            self.hasher.update(&self.buffer);
            self.lines += 1;
        }
        self.last = line.type_name();
        self.last_stage = stage;
        Ok(())
    }
}
