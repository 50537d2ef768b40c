//! Reads a bundle one line at a time, checking its layout and, at the
//! trailer, the digest and counts of everything before it.

use std::collections::VecDeque;
use std::io::{BufRead, Read};

use sha2::{Digest, Sha256};

use super::{Line, MAX_LINE_BYTES};

/// A line read and parsed, with its number (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadLine {
    /// Its line number, from 1.
    pub number: u64,
    /// What it says.
    pub line: Line,
}

/// What is wrong with a bundle's bytes or layout. Every variant but
/// [`LineError::Io`] lets reading go on, so a verifier reports all of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// The input failed; reading stops.
    #[error("cannot read the bundle: {0}")]
    Io(std::io::Error),
    /// A line is longer than [`MAX_LINE_BYTES`]; reading stops.
    #[error("line {number} is longer than {MAX_LINE_BYTES} bytes")]
    TooLong {
        /// The line.
        number: u64,
    },
    /// A line is not a bundle line (not JSON, an unknown type, a missing or
    /// unknown field, not UTF-8, no final newline).
    #[error("line {number} is not a bundle line: {message}")]
    Malformed {
        /// The line.
        number: u64,
        /// Why.
        message: String,
    },
    /// A line stands where the layout does not allow it.
    #[error("line {number} is a {line} line after a {after} line, out of the bundle's order")]
    OutOfPlace {
        /// The line.
        number: u64,
        /// Its type.
        line: &'static str,
        /// The type of the line before it.
        after: &'static str,
    },
    /// The trailer's digest is not that of the bytes before it.
    #[error("the trailer says the {lines} lines before it hash to {expected}, but they hash to {actual}: lines were altered, dropped, added or reordered")]
    DigestMismatch {
        /// Lines before the trailer, as read.
        lines: u64,
        /// The trailer's digest.
        expected: String,
        /// The digest of what was read.
        actual: String,
    },
    /// A count of the trailer is not what was read.
    #[error("the trailer counts {expected} {what} but {actual} were read")]
    CountMismatch {
        /// Which count (`lines`, `event lines`, `evidence lines`).
        what: &'static str,
        /// The trailer's count.
        expected: u64,
        /// What was read.
        actual: u64,
    },
    /// The bundle ends without a trailer.
    #[error("the bundle ends after {lines} lines without a trailer: it was truncated")]
    Truncated {
        /// Lines read.
        lines: u64,
    },
    /// Bytes follow the trailer.
    #[error("line {number} follows the trailer: the bundle ends at its trailer")]
    AfterTrailer {
        /// The first line after the trailer.
        number: u64,
    },
}

/// Reads a bundle line by line; see the module documentation.
pub struct BundleReader<R: BufRead> {
    input: R,
    hasher: Sha256,
    number: u64,
    events: u64,
    evidence: u64,
    last: &'static str,
    last_stage: Option<u8>,
    trailer_seen: bool,
    done: bool,
    pending: VecDeque<Result<ReadLine, LineError>>,
    buffer: Vec<u8>,
}

impl<R: BufRead> BundleReader<R> {
    /// A reader over `input`.
    pub fn new(input: R) -> BundleReader<R> {
        BundleReader {
            input,
            hasher: Sha256::new(),
            number: 0,
            events: 0,
            evidence: 0,
            last: "start of the file",
            last_stage: None,
            trailer_seen: false,
            done: false,
            pending: VecDeque::new(),
            buffer: Vec::new(),
        }
    }

    /// Reads the next raw line (with its newline); `Ok(false)` at the end.
    fn read_raw(&mut self) -> Result<bool, LineError> {
        self.buffer.clear();
        let limit = u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX) + 1;
        let read = (&mut self.input)
            .take(limit)
            .read_until(b'\n', &mut self.buffer)
            .map_err(LineError::Io)?;
        if read == 0 {
            return Ok(false);
        }
        self.number += 1;
        if self.buffer.len() > MAX_LINE_BYTES {
            return Err(LineError::TooLong {
                number: self.number,
            });
        }
        Ok(true)
    }

    fn step(&mut self) {
        match self.read_raw() {
            Err(error) => {
                self.done = true;
                self.pending.push_back(Err(error));
            }
            Ok(false) => {
                self.done = true;
                if !self.trailer_seen {
                    self.pending
                        .push_back(Err(LineError::Truncated { lines: self.number }));
                }
            }
            Ok(true) if self.trailer_seen => {
                self.done = true;
                self.pending.push_back(Err(LineError::AfterTrailer {
                    number: self.number,
                }));
            }
            Ok(true) => self.parse_line(),
        }
    }

    fn parse_line(&mut self) {
        let number = self.number;
        let parsed = match self.buffer.strip_suffix(b"\n") {
            None => Err("the line does not end with a newline".to_string()),
            Some(text) => serde_json::from_slice::<Line>(text).map_err(|error| error.to_string()),
        };
        let line = match parsed {
            Ok(line) => line,
            Err(message) => {
                self.hasher.update(&self.buffer);
                self.pending
                    .push_back(Err(LineError::Malformed { number, message }));
                return;
            }
        };
        let stage = line.stage();
        let out_of_place = match self.last_stage {
            None => !matches!(line, Line::Header(_)),
            Some(last) => {
                stage < last
                    || matches!(line, Line::Header(_))
                    || (stage == last && matches!(line, Line::Checkpoint { .. }))
            }
        };
        if let Line::Trailer(trailer) = &line {
            self.trailer_seen = true;
            let lines = number - 1;
            let actual = custody_core::hex::encode(&self.hasher.clone().finalize());
            if actual != trailer.sha256 {
                self.pending.push_back(Err(LineError::DigestMismatch {
                    lines,
                    expected: trailer.sha256.clone(),
                    actual,
                }));
            }
            for (what, expected, actual) in [
                ("lines", trailer.lines, lines),
                ("event lines", trailer.events, self.events),
                ("evidence lines", trailer.evidence, self.evidence),
            ] {
                if expected != actual {
                    self.pending.push_back(Err(LineError::CountMismatch {
                        what,
                        expected,
                        actual,
                    }));
                }
            }
        } else {
            self.hasher.update(&self.buffer);
        }
        match &line {
            Line::Event(_) => self.events += 1,
            Line::Evidence(_) => self.evidence += 1,
            _ => {}
        }
        if out_of_place {
            self.pending.push_back(Err(LineError::OutOfPlace {
                number,
                line: line.type_name(),
                after: self.last,
            }));
        } else {
            self.last_stage = Some(stage);
            self.last = line.type_name();
        }
        self.pending.push_back(Ok(ReadLine { number, line }));
    }
}

impl<R: BufRead> Iterator for BundleReader<R> {
    type Item = Result<ReadLine, LineError>;

    /// The next line or problem. A line out of place is reported and then
    /// yielded anyway, for the caller to judge; the trailer is yielded after
    /// the problems its check found.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            self.step();
        }
    }
}
