//! The witness policy of `custody verify --witness KEY --min-witnesses N`:
//! which stored checkpoints enough of the given witnesses cosigned
//! (C2SP tlog-cosignature, `cosignature/v1`).
//!
//! [`check`] verifies every stored cosignature line that names one of the
//! given witness keys against the checkpoint it was stored with, counts each
//! witness once per checkpoint, and returns the checkpoints that at least
//! `N` of them cosigned, with their cosignatures appended. The caller hands
//! those to the log audit as checkpoints held outside the database: the log
//! must have their roots at their sizes (`checkpoint.root-mismatch`,
//! `checkpoint.beyond-log` otherwise), which is what makes a history
//! rewritten and re-signed after a witness saw it fail, however it was
//! re-signed. The findings of the policy itself:
//!
//! - `witness.no-quorum`: no checkpoint has `N` valid cosignatures;
//! - `witness.uncovered-tail`: entries after the newest such checkpoint
//!   (the log audit reports it, given [`WitnessOutcome::newest`] as
//!   [`super::LogAudit::witnessed`], because it judges the entries' age);
//! - `witness.bad-cosignature`: a stored line names a given witness and
//!   does not verify (forged, or stored with another checkpoint), or is
//!   stored at another size than the checkpoint it cosigns (moved). The
//!   size is always the cosigned checkpoint's own.

use std::collections::BTreeMap;

use custody_log::note::{Note, NoteSignature};
use custody_log::{Checkpoint, CosignatureVerifier};

use super::{Finding, OutsideCheckpoint};
use crate::code::Code;

/// A stored cosignature, as the store hands it over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignatureRow {
    /// The witness's name in the deployment's configuration.
    pub witness: String,
    /// The size of the checkpoint.
    pub size: u64,
    /// The checkpoint as the log signed it.
    pub note: String,
    /// The cosignature line, without its newline.
    pub line: String,
}

/// The auditor's witness policy.
#[derive(Clone, Debug, Default)]
pub struct WitnessPolicy {
    /// The witnesses the auditor trusts.
    pub witnesses: Vec<CosignatureVerifier>,
    /// How many of them must have cosigned a checkpoint.
    pub min: usize,
}

/// What [`check`] found.
#[derive(Clone, Debug, Default)]
pub struct WitnessOutcome {
    /// The checkpoints cosigned by at least `min` witnesses, each with its
    /// cosignatures appended, for the log audit.
    pub cosigned: Vec<OutsideCheckpoint>,
    /// The newest of them: its size and the witnesses that cosigned it.
    pub newest: Option<(u64, Vec<String>)>,
    /// The findings of the policy.
    pub findings: Vec<Finding>,
}

/// The given witnesses (their keys, as text) whose cosignature on the
/// signed checkpoint `note` verifies, each once. A line that names a given
/// witness's key and does not verify is an error: it was forged or altered.
pub fn cosigners(note: &str, policy: &WitnessPolicy) -> Result<Vec<String>, String> {
    let note = Note::parse(note.as_bytes()).map_err(|error| error.to_string())?;
    let mut names = Vec::new();
    for witness in &policy.witnesses {
        match witness.verify_note(&note) {
            (_, true) => {
                return Err(format!(
                    "the checkpoint carries a cosignature by {witness} that does not verify: it was forged or altered"
                ))
            }
            (Some(_), false) => names.push(witness.to_string()),
            (None, false) => {}
        }
    }
    Ok(names)
}

/// Applies `policy` to the stored cosignatures of a log of `log_size`
/// entries.
pub fn check(rows: &[CosignatureRow], policy: &WitnessPolicy, log_size: u64) -> WitnessOutcome {
    let mut outcome = WitnessOutcome::default();
    // By checkpoint (size, note): the lines of given witnesses that verify.
    let mut by_checkpoint: BTreeMap<(u64, String), Vec<(usize, NoteSignature)>> = BTreeMap::new();
    for row in rows {
        let Ok(line) = NoteSignature::parse_line(&row.line) else {
            continue;
        };
        let Some((index, witness)) = policy
            .witnesses
            .iter()
            .enumerate()
            .find(|(_, witness)| witness.matches(&line))
        else {
            continue;
        };
        // The size is the cosigned checkpoint's own: the row's size column
        // is the operator's to change, the signed text is not.
        let checkpoint = Note::parse(row.note.as_bytes())
            .map_err(|error| error.to_string())
            .and_then(|note| {
                let size = Checkpoint::parse(note.text())
                    .map_err(|error| error.to_string())?
                    .size();
                Ok((note.text().to_string(), size))
            });
        match checkpoint.and_then(|(text, size)| {
            witness
                .verify(&text, &line)
                .map(|_| size)
                .map_err(|e| e.to_string())
        }) {
            Ok(size) => {
                if size != row.size {
                    outcome.findings.push(
                        Finding::new(
                            Code::WitnessBadCosignature,
                            format!(
                                "the cosignature stored for witness `{}` at size {} cosigns the checkpoint at size {size}: it was moved to another checkpoint behind the store's back",
                                crate::text::escape(&row.witness),
                                row.size
                            ),
                        )
                        .log_index(row.size.checked_sub(1)),
                    );
                }
                let lines = by_checkpoint.entry((size, row.note.clone())).or_default();
                if !lines.iter().any(|(i, _)| *i == index) {
                    lines.push((index, line));
                }
            }
            Err(error) => outcome.findings.push(
                Finding::new(
                    Code::WitnessBadCosignature,
                    format!(
                        "the cosignature stored for witness `{}` on the checkpoint at size {} names the key {witness} but does not verify ({error}): it was forged or altered",
                        crate::text::escape(&row.witness),
                        row.size
                    ),
                )
                .log_index(row.size.checked_sub(1)),
            ),
        }
    }
    for ((size, note), lines) in by_checkpoint {
        if lines.len() < policy.min.max(1) {
            continue;
        }
        let mut cosigned = note.clone();
        for (_, line) in &lines {
            cosigned.push_str(&line.to_line());
        }
        let names: Vec<String> = lines
            .iter()
            .filter_map(|(i, _)| policy.witnesses.get(*i).map(ToString::to_string))
            .collect();
        outcome.cosigned.push(OutsideCheckpoint {
            note: cosigned,
            source: format!(
                "the checkpoint at size {size} cosigned by {}",
                names.join(", ")
            ),
        });
        if outcome.newest.as_ref().is_none_or(|(n, _)| size > *n) {
            outcome.newest = Some((size, names));
        }
    }
    if outcome.newest.is_none() && log_size > 0 {
        outcome.findings.push(Finding::new(
            Code::WitnessNoQuorum,
            format!(
                "no stored checkpoint is cosigned by at least {} of the {} given witnesses: nothing outside the operator's reach confirms the log's history (the witnesses are down or not configured, or their cosignatures were deleted)",
                policy.min,
                policy.witnesses.len()
            ),
        ));
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_log::{CosignerKey, SignerKey};

    fn note(size: u64) -> String {
        let key = SignerKey::from_seed("log", &[1; 32]).unwrap();
        Checkpoint::new("log", size, [u8::try_from(size).unwrap(); 32])
            .unwrap()
            .sign(&[&key])
            .unwrap()
    }

    fn row(witness: &CosignerKey, name: &str, size: u64) -> CosignatureRow {
        let note = note(size);
        let text = Note::parse(note.as_bytes()).unwrap().text().to_string();
        CosignatureRow {
            witness: name.into(),
            size,
            line: witness
                .cosign(&text, 1)
                .unwrap()
                .to_line()
                .trim_end()
                .to_string(),
            note,
        }
    }

    #[test]
    fn counts_each_given_witness_once_and_finds_the_newest_quorum() {
        let a = CosignerKey::from_seed("a", &[2; 32]).unwrap();
        let b = CosignerKey::from_seed("b", &[3; 32]).unwrap();
        let stranger = CosignerKey::from_seed("c", &[4; 32]).unwrap();
        let policy = WitnessPolicy {
            witnesses: vec![a.verifier(), b.verifier()],
            min: 2,
        };
        let rows = vec![
            row(&a, "a", 3),
            row(&b, "b", 3),
            row(&a, "a", 5),
            row(&a, "a-again", 5),
            row(&stranger, "c", 5),
        ];
        let outcome = check(&rows, &policy, 7);
        assert_eq!(outcome.cosigned.len(), 1);
        assert_eq!(outcome.newest.as_ref().map(|n| n.0), Some(3));
        assert!(outcome.findings.is_empty(), "{:?}", outcome.findings);
        // With one witness enough, size 5 counts.
        let one = WitnessPolicy { min: 1, ..policy };
        assert_eq!(check(&rows, &one, 5).newest.map(|n| n.0), Some(5));
        assert!(check(&rows, &one, 5).findings.is_empty());
    }

    #[test]
    fn forged_lines_and_no_quorum_are_findings() {
        let a = CosignerKey::from_seed("a", &[2; 32]).unwrap();
        let policy = WitnessPolicy {
            witnesses: vec![a.verifier()],
            min: 1,
        };
        let mut forged = row(&a, "a", 3);
        forged.note = note(4);
        forged.size = 4;
        let outcome = check(&[forged], &policy, 4);
        let codes: Vec<Code> = outcome.findings.iter().map(|f| f.code).collect();
        assert_eq!(
            codes,
            vec![Code::WitnessBadCosignature, Code::WitnessNoQuorum]
        );
        assert!(check(&[], &policy, 0).findings.is_empty());
    }

    #[test]
    fn the_size_is_the_cosigned_checkpoints_not_the_rows_column() {
        // The operator moves an old cosignature up to the log's size (only
        // its size column: the line must keep verifying on its note), so
        // that the unwitnessed tail looks witnessed.
        let a = CosignerKey::from_seed("a", &[2; 32]).unwrap();
        let policy = WitnessPolicy {
            witnesses: vec![a.verifier()],
            min: 1,
        };
        let mut moved = row(&a, "a", 3);
        moved.size = 9;
        let outcome = check(&[moved], &policy, 9);
        assert_eq!(outcome.newest.as_ref().map(|n| n.0), Some(3));
        let codes: Vec<Code> = outcome.findings.iter().map(|f| f.code).collect();
        assert_eq!(codes, vec![Code::WitnessBadCosignature]);
        assert!(
            outcome.findings[0].message.contains("size 9")
                && outcome.findings[0].message.contains("size 3"),
            "{}",
            outcome.findings[0].message
        );
        // The cosigned checkpoint still goes to the log audit, at its size.
        assert_eq!(outcome.cosigned.len(), 1);
        assert!(outcome.cosigned[0].source.contains("size 3"));
    }
}
