//! `jsonl`: Custody's own events, one per line, exactly as stored.
//!
//! Each line is the event's canonical RFC 8785 bytes as the ledger stored
//! and hashed them, followed by `\n`: `sha256` of a line without its newline
//! is the hash the next event of the case links to and the Merkle leaf's
//! content. Nothing is added (no log index, no wrapper), so an auditor can
//! hash each line as it is. Canonical JSON escapes every C0 control inside
//! strings, so no event holds a raw newline; it keeps other characters
//! (bidi controls, U+2028) raw, as they are stored and hashed.

use crate::{ExportError, Record};

/// Appends the record's canonical bytes and a newline.
pub fn encode(record: &Record<'_>, out: &mut Vec<u8>) -> Result<(), ExportError> {
    if record.bytes.contains(&b'\n') || record.bytes.contains(&b'\r') {
        return Err(ExportError::Encode {
            index: record.log_index,
            reason: "the stored bytes hold a raw line break, so they are not canonical JSON"
                .to_owned(),
        });
    }
    out.extend_from_slice(record.bytes);
    out.push(b'\n');
    Ok(())
}
