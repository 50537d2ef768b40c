//! `custody-tamper`: the tamper campaign of issue 17, run by `cargo xtask
//! tamper --mutations N [--seed S] [--verbose] [--keep DIR] [--json]`.
//!
//! It builds one realistic data directory through a real server's HTTP
//! API (see [`build`]), then, for each mutation, copies it, applies ONE
//! random mutation behind the store's back (triggers dropped and put back,
//! as whoever holds the database file can), runs `custody_verify::verify`
//! on the copy, and classifies the outcome:
//!
//! - `caught`: a finding the pristine directory does not have;
//! - `caught-with-outside`: nothing new on the directory alone, but new
//!   findings once the auditor's copy of the checkpoints (held outside the
//!   directory) is given with `--checkpoints`;
//! - `by-design`: the mutated column or table is not evidence (working
//!   state, sessions, caches the audit never reads; `docs/tamper.md` says
//!   why for each);
//! - `refused`: verify stopped with an error instead of a finding;
//! - `missed`: nothing at all.
//!
//! Bundles are mutated and checked with `verify_bundle` and the log's keys.
//! The exit status is 1 when anything was missed or refused. `--only TEXT`
//! (repeatable) keeps only the mutations whose description contains one of
//! the texts (`--only log_nodes`, `--only "delegations.vendor_org"`).

#![forbid(unsafe_code)]
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "row counts, log sizes and SQLite integers of a test data directory of a few hundred rows"
)]

mod build;
mod mutate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mutate::{Mutation, Random, Target};

/// How a mutation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Caught,
    CaughtWithOutside,
    ByDesign,
    Refused,
    Missed,
    /// The mutation changed nothing (an empty table, a value already so).
    NoOp,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Caught => "caught",
            Outcome::CaughtWithOutside => "caught-with-outside",
            Outcome::ByDesign => "by-design",
            Outcome::Refused => "refused",
            Outcome::Missed => "missed",
            Outcome::NoOp => "no-op",
        }
    }
}

const ALL: [Outcome; 6] = [
    Outcome::Caught,
    Outcome::CaughtWithOutside,
    Outcome::ByDesign,
    Outcome::Refused,
    Outcome::Missed,
    Outcome::NoOp,
];

struct Options {
    mutations: usize,
    seed: u64,
    verbose: bool,
    keep: Option<PathBuf>,
    json: bool,
    /// Only mutations whose description contains one of these.
    only: Vec<String>,
}

fn parse(arguments: &[String]) -> Result<Options> {
    let mut options = Options {
        mutations: 1000,
        seed: 17,
        verbose: false,
        keep: None,
        json: false,
        only: Vec::new(),
    };
    let mut iter = arguments.iter();
    while let Some(argument) = iter.next() {
        match argument.as_str() {
            "--mutations" => options.mutations = iter.next().context("--mutations N")?.parse()?,
            "--seed" => options.seed = iter.next().context("--seed S")?.parse()?,
            "--verbose" => options.verbose = true,
            "--json" => options.json = true,
            "--only" => options.only.push(iter.next().context("--only TEXT")?.clone()),
            "--keep" => options.keep = Some(PathBuf::from(iter.next().context("--keep DIR")?)),
            other => anyhow::bail!(
                "unknown argument {other}\nusage: custody-tamper [--mutations N] [--seed S] [--verbose] [--keep DIR] [--json] [--only TEXT]..."
            ),
        }
    }
    Ok(options)
}

fn main() -> std::process::ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let result = parse(&arguments).and_then(|options| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(campaign(options))
    });
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(error) => {
            eprintln!("custody-tamper: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// One mutation's record.
struct Record {
    number: usize,
    mutation: Mutation,
    outcome: Outcome,
    codes: Vec<String>,
    detail: String,
}

async fn campaign(options: Options) -> Result<bool> {
    let started = std::time::Instant::now();
    let temporary = tempfile::tempdir()?;
    let root = match &options.keep {
        Some(directory) => {
            std::fs::create_dir_all(directory)?;
            directory.clone()
        }
        None => temporary.path().to_path_buf(),
    };
    let pristine = build::build(&root).await?;
    let baseline = verify_directory(&pristine.data_dir, &[], &pristine)
        .await
        .map_err(|error| anyhow::anyhow!("the pristine directory does not verify: {error}"))?;
    let tables = mutate::tables(&pristine.data_dir).await?;
    let blobs = mutate::files_under(&pristine.data_dir.join("evidence"))?;
    eprintln!(
        "custody-tamper: pristine directory of {} events, {} tables, {} evidence blobs, {} baseline findings{} (built in {:.1} s)",
        pristine.events,
        tables.len(),
        blobs.len(),
        baseline.len(),
        if baseline.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                baseline.iter().map(|(code, _)| code.as_str()).collect::<Vec<_>>().join(", ")
            )
        },
        started.elapsed().as_secs_f64()
    );
    if !pristine.refused_steps.is_empty() && options.verbose {
        for step in &pristine.refused_steps {
            eprintln!("  scenario step refused: {step}");
        }
    }
    let bundle_baseline = [
        verify_bundle_file(&pristine.log_bundle, &pristine)?,
        verify_bundle_file(&pristine.case_bundle, &pristine)?,
    ];

    let mut random = Random::new(options.seed);
    let mut records = Vec::with_capacity(options.mutations);
    let work = root.join("work");
    for number in 0..options.mutations {
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)?;
        // With --only, draw until a mutation matches (a bounded number of
        // times, so that a text nothing matches ends the run).
        let mut mutation = mutate::choose(&mut random, &tables, &blobs);
        let mut draws = 0;
        while !options.only.is_empty()
            && !options
                .only
                .iter()
                .any(|text| mutation.describe().contains(text.as_str()))
        {
            draws += 1;
            anyhow::ensure!(
                draws < 100_000,
                "no mutation matches --only {:?}",
                options.only
            );
            mutation = mutate::choose(&mut random, &tables, &blobs);
        }
        let record = match &mutation.target {
            Target::LogBundle | Target::CaseBundle => {
                let (source, baseline) = if mutation.target == Target::LogBundle {
                    (&pristine.log_bundle, &bundle_baseline[0])
                } else {
                    (&pristine.case_bundle, &bundle_baseline[1])
                };
                let copy = work.join("mutated-bundle.jsonl");
                std::fs::copy(source, &copy)?;
                let applied = mutate::apply_to_bundle(&copy, &mutation, &mut random)?;
                let (outcome, codes, detail) = match applied {
                    None => (Outcome::NoOp, Vec::new(), String::new()),
                    Some(detail) => match verify_bundle_file(&copy, &pristine) {
                        Err(error) => {
                            (Outcome::Refused, Vec::new(), format!("{detail}: {error:#}"))
                        }
                        Ok(found) => {
                            let new = new_findings(baseline, &found);
                            if new.is_empty() {
                                (Outcome::Missed, Vec::new(), detail)
                            } else {
                                (Outcome::Caught, new, detail)
                            }
                        }
                    },
                };
                Record {
                    number,
                    mutation,
                    outcome,
                    codes,
                    detail,
                }
            }
            _ => {
                let directory = work.join("data");
                mutate::copy_directory(&pristine.data_dir, &directory)?;
                let applied =
                    mutate::apply_to_directory(&directory, &mutation, &mut random, &pristine)
                        .await
                        .with_context(|| format!("applying {}", mutation.describe()))?;
                classify(number, mutation, applied, &directory, &baseline, &pristine).await
            }
        };
        if options.verbose {
            eprintln!(
                "#{:<4} {:<10} {:<44} {:<20} {}",
                record.number,
                record.outcome.name(),
                record.mutation.describe(),
                record.codes.join(","),
                record.detail
            );
        } else if matches!(record.outcome, Outcome::Missed | Outcome::Refused) {
            eprintln!(
                "#{} {}: {} ({})",
                record.number,
                record.outcome.name(),
                record.mutation.describe(),
                record.detail
            );
        }
        records.push(record);
    }
    let _ = std::fs::remove_dir_all(&work);
    print_summary(&options, &pristine, &records, started.elapsed());
    Ok(!records
        .iter()
        .any(|record| matches!(record.outcome, Outcome::Missed | Outcome::Refused)))
}

async fn classify(
    number: usize,
    mutation: Mutation,
    applied: mutate::Applied,
    directory: &Path,
    baseline: &[(String, String)],
    pristine: &build::Pristine,
) -> Record {
    let (outcome, codes, detail) = match applied {
        mutate::Applied::NoOp => (Outcome::NoOp, Vec::new(), String::new()),
        mutate::Applied::Done(detail) => match verify_directory(directory, &[], pristine).await {
            Err(error) => (Outcome::Refused, Vec::new(), format!("{detail}: {error}")),
            Ok(found) => {
                let new = new_findings(baseline, &found);
                if !new.is_empty() {
                    (Outcome::Caught, new, detail)
                } else {
                    match verify_directory(
                        directory,
                        std::slice::from_ref(&pristine.outside_checkpoints),
                        pristine,
                    )
                    .await
                    {
                        Ok(found) if !new_findings(baseline, &found).is_empty() => (
                            Outcome::CaughtWithOutside,
                            new_findings(baseline, &found),
                            detail,
                        ),
                        Err(error) => (
                            Outcome::Refused,
                            Vec::new(),
                            format!("{detail} (with the outside checkpoints): {error}"),
                        ),
                        Ok(_) if mutate::by_design(&mutation) => {
                            (Outcome::ByDesign, Vec::new(), detail)
                        }
                        Ok(_) => (Outcome::Missed, Vec::new(), detail),
                    }
                }
            }
        },
    };
    Record {
        number,
        mutation,
        outcome,
        codes,
        detail,
    }
}

/// Runs `custody verify` on `directory` (with `checkpoints` held outside),
/// returning its findings as (code, message).
async fn verify_directory(
    directory: &Path,
    checkpoints: &[PathBuf],
    pristine: &build::Pristine,
) -> Result<Vec<(String, String)>, custody_verify::VerifyError> {
    let _ = pristine;
    let verification = custody_verify::verify(custody_verify::Request {
        data_dir: Some(directory.to_path_buf()),
        checkpoints: checkpoints.to_vec(),
        checkpoint_interval_seconds: 3600,
        ..Default::default()
    })
    .await?;
    Ok(findings_of(&verification.report))
}

fn verify_bundle_file(path: &Path, pristine: &build::Pristine) -> Result<Vec<(String, String)>> {
    let keys = custody_verify::parse_keys(&pristine.keys)?;
    let file = std::fs::File::open(path)?;
    let verification =
        custody_verify::bundle::verify_bundle(std::io::BufReader::new(file), &keys, &mut |_| {})
            .map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(findings_of(&verification.report))
}

fn findings_of(report: &custody_core::audit::Report) -> Vec<(String, String)> {
    report
        .findings
        .iter()
        .map(|finding| (finding.code.as_str().to_string(), finding.message.clone()))
        .collect()
}

/// The codes of findings in `found` beyond those of `baseline` (as a
/// multiset of code and message).
fn new_findings(baseline: &[(String, String)], found: &[(String, String)]) -> Vec<String> {
    let mut left: BTreeMap<&(String, String), usize> = BTreeMap::new();
    for finding in baseline {
        *left.entry(finding).or_default() += 1;
    }
    let mut codes = Vec::new();
    for finding in found {
        match left.get_mut(finding) {
            Some(count) if *count > 0 => *count -= 1,
            _ => {
                if !codes.contains(&finding.0) {
                    codes.push(finding.0.clone());
                }
            }
        }
    }
    codes
}

fn print_summary(
    options: &Options,
    pristine: &build::Pristine,
    records: &[Record],
    elapsed: std::time::Duration,
) {
    let mut totals: BTreeMap<Outcome, usize> = BTreeMap::new();
    let mut by_group: BTreeMap<String, BTreeMap<Outcome, usize>> = BTreeMap::new();
    let mut codes_by_group: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for record in records {
        *totals.entry(record.outcome).or_default() += 1;
        let group = record.mutation.group();
        *by_group
            .entry(group.clone())
            .or_default()
            .entry(record.outcome)
            .or_default() += 1;
        for code in &record.codes {
            *codes_by_group
                .entry(group.clone())
                .or_default()
                .entry(code.clone())
                .or_default() += 1;
        }
    }
    if options.json {
        let groups: serde_json::Map<String, serde_json::Value> = by_group
            .iter()
            .map(|(group, counts)| {
                (
                    group.clone(),
                    serde_json::json!({
                        "outcomes": counts.iter().map(|(outcome, count)| (outcome.name().to_string(), serde_json::json!(count))).collect::<serde_json::Map<_, _>>(),
                        "codes": codes_by_group.get(group).cloned().unwrap_or_default(),
                    }),
                )
            })
            .collect();
        let summary = serde_json::json!({
            "mutations": records.len(),
            "seed": options.seed,
            "events": pristine.events,
            "seconds": elapsed.as_secs_f64(),
            "outcomes": totals.iter().map(|(outcome, count)| (outcome.name().to_string(), serde_json::json!(count))).collect::<serde_json::Map<_, _>>(),
            "groups": groups,
            "not_caught": records.iter().filter(|record| matches!(record.outcome, Outcome::Missed | Outcome::Refused)).map(|record| serde_json::json!({
                "number": record.number, "outcome": record.outcome.name(), "mutation": record.mutation.describe(), "detail": record.detail,
            })).collect::<Vec<_>>(),
        });
        println!("{summary:#}");
        return;
    }
    println!(
        "custody tamper: {} mutations, seed {}, {} events in the pristine log, {:.1} s",
        records.len(),
        options.seed,
        pristine.events,
        elapsed.as_secs_f64()
    );
    print!("{:<34}", "target / mutation");
    for outcome in ALL {
        print!(" {:>9}", short(outcome));
    }
    println!("  codes (most frequent)");
    for (group, counts) in &by_group {
        print!("{group:<34}");
        for outcome in ALL {
            print!(" {:>9}", counts.get(&outcome).copied().unwrap_or(0));
        }
        let mut codes: Vec<(&String, &usize)> = codes_by_group
            .get(group)
            .map(|codes| codes.iter().collect())
            .unwrap_or_default();
        codes.sort_by(|a, b| b.1.cmp(a.1));
        println!(
            "  {}",
            codes
                .iter()
                .take(3)
                .map(|(code, _)| code.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    print!("{:<34}", "total");
    for outcome in ALL {
        print!(" {:>9}", totals.get(&outcome).copied().unwrap_or(0));
    }
    println!();
}

fn short(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Caught => "caught",
        Outcome::CaughtWithOutside => "outside",
        Outcome::ByDesign => "by-design",
        Outcome::Refused => "refused",
        Outcome::Missed => "missed",
        Outcome::NoOp => "no-op",
    }
}
