//! `custody connector`: map, unmap and list the outside users a connector
//! trusts, each as the principal it is mapped to.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;

use custody_api::{IdentitiesBody, IdentityBody, IdentityChange, IdentityEntry, IdentityMapping};
use custody_core::model::{ConnectorName, ExternalUser, PrincipalId, SYSTEM_PRINCIPAL};

use super::connect;
use crate::cli::ConnectorCommand;
use crate::error::CliError;
use crate::output::{self, say};

/// The most bad lines of a file one error names.
const MOST_BAD_LINES_SHOWN: usize = 20;

/// `custody connector ...`.
pub async fn run(command: ConnectorCommand) -> Result<ExitCode, CliError> {
    match command {
        ConnectorCommand::Map {
            name,
            external_user,
            principal,
            file,
            connection,
            json,
        } => {
            connector_name(&name)?;
            let client = connect(&connection)?;
            let changes = match (file, external_user, principal) {
                (Some(file), _, _) => {
                    let entries = read_mappings(&file)?;
                    // Named against the principals as they are, so a bad
                    // line is named by its number; the server decides the
                    // file as one write all the same.
                    let known: BTreeSet<String> = client
                        .principals()
                        .await?
                        .document()?
                        .principals
                        .into_iter()
                        .map(|principal| principal.id.to_string())
                        .collect();
                    check_principals(&file, &entries, &known)?;
                    let body = IdentitiesBody {
                        identities: entries.into_iter().map(|(_, entry)| entry).collect(),
                    };
                    let answer = client.map_identities(&name, &body).await?;
                    if json {
                        output::print_json(answer.json());
                        return Ok(ExitCode::SUCCESS);
                    }
                    answer.document()?.changes
                }
                (None, Some(external_user), Some(principal)) => {
                    let answer = client
                        .map_identity(&name, &external_user, &IdentityBody { principal })
                        .await?;
                    if json {
                        output::print_json(answer.json());
                        return Ok(ExitCode::SUCCESS);
                    }
                    vec![answer.document()?]
                }
                _ => {
                    return Err(CliError::Usage(
                        "give EXTERNAL_USER and PRINCIPAL, or --file FILE".to_string(),
                    ))
                }
            };
            print_changes(&changes);
        }
        ConnectorCommand::Unmap {
            name,
            external_user,
            connection,
            json,
        } => {
            connector_name(&name)?;
            let answer = connect(&connection)?
                .unmap_identity(&name, &external_user)
                .await?;
            if json {
                output::print_json(answer.json());
            } else {
                let removed = answer.document()?.mapping;
                say!(
                    "unmapped {} user {} (was {})",
                    removed.connector,
                    removed.external_user,
                    removed.principal
                );
            }
        }
        ConnectorCommand::Identities {
            name,
            connection,
            json,
        } => {
            connector_name(&name)?;
            let answer = connect(&connection)?.identities(&name).await?;
            if json {
                output::print_json(answer.json());
            } else {
                print_identities(&answer.document()?.identities);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn connector_name(name: &str) -> Result<ConnectorName, CliError> {
    ConnectorName::from_str(name).map_err(|error| CliError::Usage(error.to_string()))
}

fn print_changes(changes: &[IdentityChange]) {
    let recorded = changes.iter().filter(|change| change.recorded).count();
    for change in changes {
        let mapping = &change.mapping;
        match (&change.previous, change.recorded) {
            (_, false) => say!(
                "{} user {} is mapped to {} already: nothing recorded",
                mapping.connector,
                mapping.external_user,
                mapping.principal
            ),
            (Some(previous), true) => say!(
                "remapped {} user {} to {} (was {previous})",
                mapping.connector,
                mapping.external_user,
                mapping.principal
            ),
            (None, true) => say!(
                "mapped {} user {} to {}",
                mapping.connector,
                mapping.external_user,
                mapping.principal
            ),
        }
    }
    if changes.len() > 1 {
        say!(
            "{recorded} mapping(s) recorded, {} unchanged",
            changes.len() - recorded
        );
    }
}

fn print_identities(identities: &[IdentityMapping]) {
    if identities.is_empty() {
        say!("no outside user is mapped: the connector trusts no one");
        return;
    }
    let width = identities
        .iter()
        .map(|mapping| mapping.external_user.chars().count())
        .max()
        .unwrap_or(0)
        .max("EXTERNAL_USER".len());
    say!(
        "{:<width$}  {:<16}  {:<27}  BY",
        "EXTERNAL_USER",
        "PRINCIPAL",
        "MAPPED"
    );
    for mapping in identities {
        say!(
            "{:<width$}  {:<16}  {:<27}  {}",
            mapping.external_user,
            mapping.principal,
            mapping.mapped_at,
            mapping.mapped_by.as_deref().unwrap_or("system")
        );
    }
}

/// Reads a file of mappings, refusing it whole (naming each bad line) when
/// a line is not a mapping.
fn read_mappings(file: &Path) -> Result<Vec<(usize, IdentityEntry)>, CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| CliError::Io(format!("cannot read {}: {error}", file.display())))?;
    parse_mappings(&text).map_err(|bad| refused_file(file, &bad))
}

/// The principals the file names must exist: checked before anything is
/// sent, so the line is named.
fn check_principals(
    file: &Path,
    entries: &[(usize, IdentityEntry)],
    known: &BTreeSet<String>,
) -> Result<(), CliError> {
    let bad: Vec<String> = entries
        .iter()
        .filter(|(_, entry)| !known.contains(&entry.principal))
        .map(|(line, entry)| format!("line {line}: principal {} does not exist", entry.principal))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(refused_file(file, &bad))
    }
}

fn refused_file(file: &Path, bad: &[String]) -> CliError {
    let mut message = format!(
        "{} is refused, and nothing was recorded: {} bad line(s)",
        file.display(),
        bad.len()
    );
    for line in bad.iter().take(MOST_BAD_LINES_SHOWN) {
        message.push_str("\n  ");
        message.push_str(line);
    }
    if bad.len() > MOST_BAD_LINES_SHOWN {
        message.push_str(&format!(
            "\n  and {} more",
            bad.len() - MOST_BAD_LINES_SHOWN
        ));
    }
    message.push_str("\nhint: each line is `external_user,principal` (a first line `external_user,principal` is a header; `#` starts a comment); fix the lines named and run the command again");
    CliError::Usage(message)
}

/// The mappings of a CSV text, with their line numbers (from 1): one
/// `external_user,principal` per line; blank lines, `#` comments and a
/// first line `external_user,principal` (a header) are skipped; a field may
/// be quoted (`"..."`, a quote inside written twice), and white space
/// around an unquoted field is not part of it (no ID begins or ends with
/// white space). Every bad line is named, with why: one that is not two
/// fields, an ID no outside system has (see [`ExternalUser`]), a name no
/// principal has, `system`, a user mapped twice.
fn parse_mappings(text: &str) -> Result<Vec<(usize, IdentityEntry)>, Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    let mut first_line_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen_content = false;
    for (index, raw) in text.split('\n').enumerate() {
        let number = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let first = !seen_content;
        seen_content = true;
        let fields = match split_fields(line) {
            Ok(fields) => fields,
            Err(problem) => {
                bad.push(format!("line {number}: {problem}"));
                continue;
            }
        };
        let [external_user, principal] = fields.as_slice() else {
            bad.push(format!(
                "line {number}: {} field(s); a line is `external_user,principal`",
                fields.len()
            ));
            continue;
        };
        if first
            && external_user.eq_ignore_ascii_case("external_user")
            && principal.eq_ignore_ascii_case("principal")
        {
            continue;
        }
        if let Err(error) = ExternalUser::from_str(external_user) {
            bad.push(format!("line {number}: {error}"));
            continue;
        }
        match PrincipalId::from_str(principal) {
            Err(error) => {
                bad.push(format!("line {number}: {error}"));
                continue;
            }
            Ok(id) if id.as_str() == SYSTEM_PRINCIPAL => {
                bad.push(format!(
                    "line {number}: `system` is the ledger itself; no outside user may act as it"
                ));
                continue;
            }
            Ok(_) => {}
        }
        if let Some(first) = first_line_of.get(external_user) {
            bad.push(format!(
                "line {number}: {external_user} is mapped on line {first} already; map each user once"
            ));
            continue;
        }
        first_line_of.insert(external_user.clone(), number);
        entries.push((
            number,
            IdentityEntry {
                external_user: external_user.clone(),
                principal: principal.clone(),
            },
        ));
    }
    if !bad.is_empty() {
        return Err(bad);
    }
    if entries.is_empty() {
        return Err(vec!["the file holds no mapping".to_string()]);
    }
    Ok(entries)
}

/// The comma-separated fields of a line, each optionally quoted.
fn split_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("a quoted field is not closed".to_string()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => {
                    return Err("text follows a quoted field before the next comma".to_string())
                }
            }
        } else {
            let mut ended = true;
            for c in chars.by_ref() {
                if c == ',' {
                    ended = false;
                    break;
                }
                field.push(c);
            }
            fields.push(field.trim_matches([' ', '\t']).to_string());
            if ended {
                return Ok(fields);
            }
        }
    }
}

/// `custody ingest --source NAME FILE`: sends the file to the server, which
/// parses it the source's way and records each access change. Exits 1 when
/// the ledger refused any record (each is listed), 0 otherwise.
pub async fn ingest(args: crate::cli::IngestArgs) -> Result<ExitCode, CliError> {
    connector_name(&args.source)?;
    // The server reads at most this much; a larger file is refused here,
    // before it is read into memory.
    const MAX_INGEST_BYTES: u64 = 256 * 1024 * 1024;
    if let Ok(metadata) = std::fs::metadata(&args.file) {
        if metadata.len() > MAX_INGEST_BYTES {
            return Err(CliError::Usage(format!(
                "{} is {} bytes; a batch file is at most {MAX_INGEST_BYTES} bytes: split the export into several files and ingest each",
                args.file.display(),
                metadata.len()
            )));
        }
    }
    let file = std::fs::read(&args.file)
        .map_err(|error| CliError::Io(format!("cannot read {}: {error}", args.file.display())))?;
    if file.is_empty() {
        return Err(CliError::Usage(format!(
            "{} is empty: nothing to ingest",
            args.file.display()
        )));
    }
    let answer = connect(&args.connection)?
        .ingest(&args.source, file)
        .await?;
    let summary = answer.document()?;
    if args.json {
        output::print_json(answer.json());
    } else {
        say!(
            "{}: {} access changes read ({} other records skipped): {} matched a case, {} unsanctioned (each opened a case), {} already recorded, {} refused",
            summary.source,
            summary.observations,
            summary.skipped,
            summary.matched,
            summary.unsanctioned,
            summary.duplicates,
            summary.refused.len()
        );
        for refusal in &summary.refused {
            say!("refused {}: {}", refusal.external_id, refusal.error);
        }
        if summary.unsanctioned > 0 {
            say!("what changed without a case: custody cases --unsanctioned");
        }
    }
    Ok(if summary.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(usize, String, String)> {
        parse_mappings(text)
            .unwrap()
            .into_iter()
            .map(|(line, entry)| (line, entry.external_user, entry.principal))
            .collect()
    }

    #[test]
    fn a_file_of_mappings_is_read_line_by_line() {
        let text = "\u{feff}external_user,principal\r\n# Slack users\r\n\r\nU01ALICE,alice\r\n  u01alice , bob\n\"557058:f5,8\",alice\n\"say \"\"hi\"\"\", carol\n";
        assert_eq!(
            pairs(text),
            [
                (4, "U01ALICE".into(), "alice".into()),
                (5, "u01alice".into(), "bob".into()),
                (6, "557058:f5,8".into(), "alice".into()),
                (7, "say \"hi\"".into(), "carol".into()),
            ]
        );
        // A header only counts as the first line: later, it is a mapping
        // (of a principal named `principal`, which must then exist).
        assert_eq!(
            pairs("U1,alice\nexternal_user,principal\n")[1],
            (2, "external_user".into(), "principal".into())
        );
    }

    #[test]
    fn every_bad_line_is_named_and_the_file_refused() {
        let text = "U1,alice\nU2\nU3,alice,extra\nU1,bob\n,alice\nU4,Alice\nU5,system\n\"U6,alice\nU7 \u{200b},alice\n.,alice\nU8,\"carol\" x\n";
        let bad = parse_mappings(text).unwrap_err();
        let lines: Vec<&str> = bad
            .iter()
            .map(|problem| problem.split(':').next().unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                "line 2", "line 3", "line 4", "line 5", "line 6", "line 7", "line 8", "line 9",
                "line 10", "line 11"
            ],
            "{bad:#?}"
        );
        assert!(bad[2].contains("mapped on line 1 already"), "{bad:#?}");
        assert!(bad[5].contains("`system`"), "{bad:#?}");
        assert_eq!(
            parse_mappings("# nothing\n\n").unwrap_err(),
            ["the file holds no mapping"]
        );
    }
}
