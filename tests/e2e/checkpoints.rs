//! Invariant 11: checkpoints held outside the database. Every checkpoint a
//! server signs is also appended to its data directory's `checkpoints` file
//! (and written to `log.checkpoints_dir`), and `custody verify` checks the
//! log against them, reports entries no checkpoint covers once they are
//! older than a few checkpoint intervals, and says so when it checked no
//! checkpoint held outside the database. On both stores.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use common::{command, verify_dir_with, Server, TestStore, STORES};
use custody_core::{ManualClock, Timestamp};
use serde_json::Value;

/// `(code, severity)` of every finding, in report order.
fn found(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| {
            (
                finding["code"].as_str().unwrap_or_default().to_string(),
                finding["severity"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn request(server: &Server, token: &str, subject: &str) -> String {
    server
        .cli_ok(
            token,
            &["request", "--subject", subject, "--entitlement", "reader"],
        )
        .trim()
        .to_string()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The notes framed in a checkpoints file.
fn entries(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|line| *line == "-----BEGIN CUSTODY CHECKPOINT-----")
        .count()
}

#[test]
fn an_honest_live_server_verifies_with_at_most_the_young_tail_noted() {
    for store in STORES {
        let (mut server, _) = Server::start_on(store, None, None);
        let alice = server.principal("alice");
        for subject in ["user:ann", "user:ben", "user:cat"] {
            request(&server, &alice, subject);
        }
        // While it runs, the newest writes may wait for the next checkpoint:
        // that is noted, never failed.
        let (output, report) = server.verify_with(&[]);
        assert_eq!(output.status.code(), Some(0), "{store:?}: {report:#}");
        assert_eq!(report["ok"], true, "{report:#}");
        for (code, severity) in found(&report) {
            assert_eq!(
                (code.as_str(), severity.as_str()),
                ("log.uncovered-tail", "info"),
                "{store:?}: {report:#}"
            );
        }
        let file = server.data.join("checkpoints");
        assert!(
            report["checked"]["outside_checkpoints"].as_u64() >= Some(1),
            "the checkpoints file was read: {report:#}"
        );
        assert_eq!(mode(&file), 0o600, "{store:?}");

        // A stopped server signed its last writes as it stopped: nothing is
        // uncovered, and every checkpoint in the database is in the file.
        server.stop();
        let (output, report) = server.verify_with(&[]);
        assert_eq!(output.status.code(), Some(0), "{store:?}: {report:#}");
        assert_eq!(found(&report), Vec::<(String, String)>::new(), "{report:#}");
        assert_eq!(
            report["checked"]["covered_entries"], report["checked"]["log_entries"],
            "{report:#}"
        );
        assert_eq!(
            report["checked"]["outside_checkpoints"], report["checked"]["checkpoints"],
            "{store:?}: {report:#}"
        );
        assert_eq!(
            Some(entries(&file) as u64),
            report["checked"]["checkpoints"].as_u64(),
            "one entry per checkpoint signed: {}",
            std::fs::read_to_string(&file).unwrap()
        );
    }
}

#[test]
fn entries_left_uncovered_longer_than_three_checkpoint_intervals_fail_verify() {
    // A server that signs only as it starts, then crashes (no checkpoint at
    // shutdown): its last write is covered by no checkpoint.
    let quiet = "[log]\ncheckpoint_interval_seconds = 3600\n";
    let (mut server, _) = Server::start_configured(None, Some(quiet));
    let alice = server.principal("alice");
    request(&server, &alice, "user:ann");
    server.kill9();
    let config = server.config_path().unwrap();
    let config = config.to_str().unwrap();

    // By the server's own interval (an hour), the tail is young.
    let (output, report) = verify_dir_with(&server.data, &["--config", config]);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(
        found(&report),
        vec![("log.uncovered-tail".to_string(), "info".to_string())],
        "{report:#}"
    );
    // The checkpoint signed at start covers init's admin and its token and
    // the policy's adoption (entries 0 to 2); alice and her request are not.
    assert_eq!(report["findings"][0]["log_index"], 3, "{report:#}");

    // With checkpoints every second, three seconds without one is an error:
    // at a clock four seconds ahead, the uncovered entries are older.
    let later = ManualClock::new(Timestamp::now().plus_seconds(4));
    let (output, report) = common::verify_request(custody_verify::Request {
        data_dir: Some(server.data.clone()),
        checkpoint_interval_seconds: 1,
        clock: Some(Arc::new(later)),
        ..custody_verify::Request::default()
    });
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(
        found(&report),
        vec![("log.uncovered-tail".to_string(), "high".to_string())],
        "{report:#}"
    );
    let message = report["findings"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("covers 3 of the log's 6 entries"),
        "{message}"
    );

    // A node killed as soon as it says it listens has already signed the
    // tail its crashed predecessor left.
    server.restart_configured();
    server.kill9();
    let (output, report) = verify_dir_with(&server.data, &["--config", config]);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(found(&report), Vec::<(String, String)>::new(), "{report:#}");

    // Restarted, the server signs as it starts, and the tail is covered.
    let every_second = server.root.path().join("every-second.toml");
    std::fs::write(&every_second, "[log]\ncheckpoint_interval_seconds = 1\n").unwrap();
    server.restart_configured();
    // Serving (so that SIGTERM is a graceful shutdown, not the default action).
    assert_eq!(server.log_size(), 6);
    server.stop();
    let (output, report) =
        verify_dir_with(&server.data, &["--config", every_second.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(found(&report), Vec::<(String, String)>::new(), "{report:#}");
}

/// On PostgreSQL, the database's writers are meant never to hold the key:
/// they can delete the newest events with the checkpoints that covered them.
/// The node's checkpoints file and the configured checkpoints directory
/// still hold those checkpoints.
#[test]
fn checkpoints_held_outside_catch_a_truncated_postgres_log() {
    let copies = tempfile::tempdir().unwrap();
    let config = format!(
        "[log]\ncheckpoint_interval_seconds = 3600\ncheckpoints_dir = \"{}\"\n",
        copies.path().display()
    );
    let (mut server, init) = Server::start_on(TestStore::Postgres, None, Some(&config));
    let key = init["verifier_key"].as_str().unwrap().to_string();
    let alice = server.principal("alice");
    request(&server, &alice, "user:ann");
    server.sign_checkpoint();
    let kept = server.log_size();
    let last = request(&server, &alice, "user:ben");
    server.sign_checkpoint();
    assert_eq!(server.log_size(), kept + 1);
    server.stop();

    // The directory holds one private file per checkpoint: at 3 (signed as
    // the server started), `kept` and `kept + 1`.
    let mut files: Vec<String> = std::fs::read_dir(copies.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [3, kept, kept + 1]
            .iter()
            .map(|size| format!("checkpoint-{size:020}.note"))
            .collect::<Vec<_>>()
    );
    assert_eq!(mode(&copies.path().join(&files[2])), 0o600);

    // The newest event deleted with its case row, its Merkle nodes and the
    // checkpoint that covered it: the rest is self-consistent.
    let database = server.database.as_ref().unwrap();
    database
        .execute(&format!(
            "ALTER TABLE events DISABLE TRIGGER USER;
             ALTER TABLE log_nodes DISABLE TRIGGER USER;
             ALTER TABLE checkpoints DISABLE TRIGGER USER;
             DELETE FROM events WHERE log_index >= {kept};
             DELETE FROM log_nodes WHERE ((idx + 1) << level::int) > {kept};
             DELETE FROM cases WHERE case_id = '{last}';
             DELETE FROM checkpoints WHERE size > {kept};"
        ))
        .expect("tamper with the triggers off");

    // The database alone, with the key: nothing to see, and verify says
    // that it checked no checkpoint held outside the database.
    let output = command()
        .args([
            "verify",
            "--json",
            "--database-url",
            &database.url,
            "--key",
            &key,
        ])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(
        found(&report),
        vec![("checkpoint.none-outside".to_string(), "info".to_string())],
        "{report:#}"
    );

    let caught = vec![
        ("checkpoint.beyond-log".to_string(), "critical".to_string()),
        (
            "checkpoint.missing-from-database".to_string(),
            "critical".to_string(),
        ),
    ];
    // The checkpoints directory...
    let output = command()
        .args([
            "verify",
            "--json",
            "--database-url",
            &database.url,
            "--key",
            &key,
        ])
        .arg("--checkpoints")
        .arg(copies.path())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let mut codes = found(&report);
    codes.sort();
    assert_eq!(codes, caught, "{report:#}");
    // ...and the node's data directory, whose checkpoints file is read by default.
    let (output, report) = server.verify_with(&[]);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let mut codes = found(&report);
    codes.sort();
    assert_eq!(codes, caught, "{report:#}");
}
