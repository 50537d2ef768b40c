//! `custody log`: checkpoints, the log's keys, and proofs (a case's proof
//! bundle, its offline verification, the consistency of two checkpoints).

use std::path::Path;
use std::process::ExitCode;

use custody_core::proof::CaseProofBundle;
use custody_server::keys::{self, LogSigner};
use custody_verify::parse_keys;

use super::{connect, key_error, read_text};
use crate::cli::LogCommand;
use crate::error::CliError;
use crate::output::{self, say, tell};

/// `custody log ...`.
pub async fn run(command: LogCommand) -> Result<ExitCode, CliError> {
    match command {
        LogCommand::Checkpoint { new, connection } => {
            // Reading the checkpoint needs no token; signing one does.
            let note = if new {
                connect(&connection)?.sign_checkpoint().await?
            } else {
                super::connect_public(&connection)?.checkpoint().await?
            };
            print!("{}", custody_client::escape_lines(&note));
        }
        LogCommand::Keys { data } => {
            let signer = LogSigner::load(&data.data).map_err(key_error)?;
            for key in signer.verifier_keys() {
                println!("{key}");
            }
            let retired = keys::retired_keys(&data.data).map_err(key_error)?;
            for key in retired {
                println!("{key}\tretired");
            }
        }
        LogCommand::AddKey { data } => {
            let key = keys::add(&data.data).map_err(key_error)?;
            println!("{key}");
            eprintln!("added; restart `custody serve` so that both keys sign, publish the new verifier key, then retire the old one");
        }
        LogCommand::RetireKey { key_id, data } => {
            let key = keys::retire(&data.data, &key_id).map_err(key_error)?;
            println!("{key}\tretired");
            eprintln!("retired; restart `custody serve`. Checkpoints it signed stay verifiable with the key above");
        }
        LogCommand::Prove {
            case,
            out,
            connection,
        } => {
            let answer = connect(&connection)?.case_proof(&case).await?;
            let events = answer.document()?.events.len();
            // The bundle is written as the server sent it.
            let text = serde_json::to_string_pretty(answer.json())
                .map_err(|error| CliError::Usage(error.to_string()))?;
            std::fs::write(&out, text + "\n").map_err(|error| {
                CliError::Io(format!("cannot write {}: {error}", out.display()))
            })?;
            eprintln!(
                "wrote {} events of {case} with their proofs to {}",
                events,
                out.display()
            );
        }
        LogCommand::VerifyProof {
            file,
            keys,
            witnesses,
            min_witnesses,
            json,
        } => {
            let trusted = parse_keys(&keys).map_err(|error| CliError::Usage(error.to_string()))?;
            let policy = custody_verify::witness_policy(&witnesses, min_witnesses.unwrap_or(0))?;
            let text = read_text(&file)?;
            let bundle: CaseProofBundle = serde_json::from_str(&text).map_err(|error| {
                CliError::Usage(format!(
                    "{} is not a case proof bundle: {error}",
                    file.display()
                ))
            })?;
            let witnessed = policy.as_ref().map(|policy| {
                custody_core::audit::witness::cosigners(&bundle.checkpoint, policy)
                    .and_then(|names| {
                        if names.len() >= policy.min {
                            Ok(names)
                        } else {
                            Err(format!(
                                "the proof's checkpoint is cosigned by {} of the given witnesses ({}), fewer than the {} required",
                                names.len(),
                                if names.is_empty() { "none".to_string() } else { names.join(", ") },
                                policy.min
                            ))
                        }
                    })
            });
            let verified = bundle.verify(&trusted).map_err(|error| error.to_string());
            match verified.and_then(|verified| match witnessed {
                Some(Err(error)) => Err(error),
                Some(Ok(names)) => Ok((verified, names)),
                None => Ok((verified, Vec::new())),
            }) {
                Ok((verified, cosigners)) => {
                    if json {
                        output::print_json(
                            &serde_json::json!({"ok": verified.rule_findings.is_empty(), "proof": verified, "witnesses": cosigners}),
                        );
                    } else {
                        say!(
                            "ok: {} events of {} ({}) are in the log {} at size {}",
                            verified.events,
                            verified.case_id,
                            verified.state,
                            verified.origin,
                            verified.checkpoint_size
                        );
                        say!(
                            "    they are the case's events 1 to {} in order; events the case may have after them are not covered by this bundle (run `custody verify` on the log for completeness)",
                            verified.events
                        );
                        for witness in &cosigners {
                            say!("    cosigned by the witness {witness}");
                        }
                        for code in &verified.rule_findings {
                            say!("  finding: {code}");
                        }
                    }
                    if !verified.rule_findings.is_empty() {
                        return Ok(ExitCode::from(1));
                    }
                }
                Err(error) => {
                    if json {
                        output::print_json(
                            &serde_json::json!({"ok": false, "error": error.to_string()}),
                        );
                    } else {
                        tell!("proof rejected: {error}");
                    }
                    return Ok(ExitCode::from(1));
                }
            }
        }
        LogCommand::Consistency {
            old,
            new,
            keys,
            connection,
        } => {
            let trusted = parse_keys(&keys).map_err(|error| CliError::Usage(error.to_string()))?;
            let verify = |path: &Path| -> Result<custody_log::VerifiedCheckpoint, CliError> {
                let text = read_text(path)?;
                custody_log::verify_checkpoint(text.as_bytes(), &trusted).map_err(|error| {
                    CliError::refused(
                        format!(
                            "{} is not a checkpoint signed by the given key: {error}",
                            path.display()
                        ),
                        None,
                        None,
                    )
                })
            };
            let old_checkpoint = verify(&old)?;
            let new_checkpoint = verify(&new)?;
            let proof =
                if old_checkpoint.size() == new_checkpoint.size() || old_checkpoint.size() == 0 {
                    Vec::new()
                } else if old_checkpoint.size() > new_checkpoint.size() {
                    return Err(CliError::Usage(format!(
                    "the old checkpoint ({}) is larger than the new one ({}); swap --old and --new",
                    old_checkpoint.size(),
                    new_checkpoint.size()
                )));
                } else {
                    super::connect_public(&connection)?
                        .consistency_proof(old_checkpoint.size(), new_checkpoint.size())
                        .await?
                };
            match new_checkpoint.verify_consistency_from(old_checkpoint.checkpoint(), &proof) {
                Ok(()) => println!(
                    "ok: the log at size {} extends the log at size {}",
                    new_checkpoint.size(),
                    old_checkpoint.size()
                ),
                Err(error) => {
                    eprintln!(
                        "inconsistent: the checkpoint at size {} does not extend the one at size {}: {error}",
                        new_checkpoint.size(),
                        old_checkpoint.size()
                    );
                    return Ok(ExitCode::from(1));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
