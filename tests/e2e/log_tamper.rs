//! Invariant: the Merkle log and its signed checkpoints make tampering with a
//! real store visible. The store refuses to change or remove log nodes and
//! checkpoints; when someone with file access does it anyway (dropping the
//! triggers), `custody verify` fails and names what was done with a specific
//! finding code. A checkpoint an auditor saved earlier proves that the log
//! still extends it. A crash never separates an event from its leaf.
//!
//! One store is built through the real CLI with checkpoints signed at sizes 16
//! and 20 (`cp6` and `cp10`: 6 and 10 entries past the start) and the one the
//! server signs as it starts, at size 3 (the log's first entries are `init`'s
//! first admin and token in the administration record, then the adoption of
//! the server's policy; the four principals and their tokens follow, log 3
//! to 10, so the cases' events start at log 11); each scenario tampers
//! with a fresh copy of its data directory and runs the real `custody verify`
//! on it.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use crate::common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::load::{Ack, Load};
use common::tamper::{self, replace, verify_fails, verify_request_fails, Db, TRIGGERS};
use common::{assert_verify_ok, verify_dir_with, Body, Server};
use custody_core::{Event, ManualClock, Sha256Hash, Timestamp};
use custody_log::note::SignerKey;
use custody_log::{leaf_hash, verify_checkpoint, Checkpoint, MemoryTree, NodeId, VerifierKey};
use serde_json::Value;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};
use tempfile::TempDir;

/// A server that signs checkpoints only when asked (`log checkpoint --new`).
const QUIET: &str = "[log]\ncheckpoint_interval_seconds = 3600\n";

/// The store every scenario starts from (its server is stopped).
struct Fixture {
    server: Server,
    /// The log's origin line (and its signing key's name).
    origin: String,
    /// The deployment's verifier key from `custody init`.
    verifier_key: String,
    /// Full lifecycle plus a comment; log indices 1, 3, 5, 7, 9.
    full: String,
    /// The signed checkpoint at size 6, as `log checkpoint --new` printed it.
    cp6: String,
    /// The signed checkpoint at size 10.
    cp10: String,
    /// A genuine checkpoint of another deployment with the same origin name
    /// but its own key.
    other_cp: String,
    /// That deployment's verifier key.
    other_key: String,
    /// Files holding the checkpoints above, for `--since-checkpoint`.
    files: TempDir,
}

impl Fixture {
    fn file(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }

    fn trusted(&self) -> Vec<VerifierKey> {
        vec![VerifierKey::parse(&self.verifier_key).expect("init prints a verifier key")]
    }

    /// The verified root of one of the fixture's checkpoints.
    fn root(&self, note: &str) -> [u8; 32] {
        *verify_checkpoint(note.as_bytes(), &self.trusted())
            .expect("the fixture's checkpoints verify")
            .root_hash()
    }
}

fn build_fixture() -> Fixture {
    let ledger = common::fixture::build(Some(QUIET), true);
    let verifier_key = ledger.init["verifier_key"].as_str().unwrap().to_string();
    let origin = verifier_key
        .split('+')
        .next()
        .expect("name+id+key")
        .to_string();
    let server = ledger.server;
    let full = ledger.full;
    let [cp6, cp10] = <[String; 2]>::try_from(ledger.checkpoints).expect("two checkpoints");

    // Another deployment: its own `custody init` and key, the same origin name;
    // its log holds its own policy's adoption and one request.
    let (mut other, other_report) = Server::start_configured(Some(&origin), Some(QUIET));
    let zed = other.principal("zed");
    other.cli_ok(
        &zed,
        &[
            "request",
            "--subject",
            "user:zed",
            "--entitlement",
            "reader",
        ],
    );
    let other_cp = other.sign_checkpoint();
    other.stop();
    let other_key = other_report["verifier_key"].as_str().unwrap().to_string();
    assert_ne!(other_key, verifier_key);
    assert_eq!(other_key.split('+').next(), Some(origin.as_str()));
    assert!(
        other_cp.starts_with(&format!("{origin}\n6\n")),
        "{other_cp}"
    );

    let files = tempfile::Builder::new()
        .prefix("custody-saved-")
        .tempdir()
        .unwrap();
    for (name, note) in [("cp6", &cp6), ("cp10", &cp10), ("other", &other_cp)] {
        std::fs::write(files.path().join(name), note).unwrap();
    }
    let fixture = Fixture {
        server,
        origin,
        verifier_key,
        full,
        cp6,
        cp10,
        other_cp,
        other_key,
        files,
    };
    // Sanity: both checkpoints verify with the deployment's key and cover 6 and 10 entries.
    for (note, size) in [(&fixture.cp6, 16), (&fixture.cp10, 20)] {
        let verified = verify_checkpoint(note.as_bytes(), &fixture.trusted())
            .unwrap_or_else(|error| panic!("checkpoint does not verify: {error}\n{note}"));
        assert_eq!(verified.size(), size);
        assert_eq!(verified.origin(), fixture.origin);
    }
    // The checkpoints at 1 (signed as the server started), 6 and 10.
    let report = assert_verify_ok(&fixture.server.data);
    assert_eq!(report["checked"]["checkpoints"], 3, "{report:#}");
    assert_eq!(report["checked"]["leaves"], 20, "{report:#}");
    fixture
}

/// A fresh copy of the fixture's data directory.
fn fresh_copy(fixture: &Fixture) -> TempDir {
    tamper::copy_of(&fixture.server.data)
}

/// Runs `verify --json` (with `extra` arguments) and asserts it passed.
#[track_caller]
fn verify_passes(data: &Path, extra: &[&str]) -> Value {
    let (output, report) = verify_dir_with(data, extra);
    assert_eq!(
        output.status.code(),
        Some(0),
        "verify {extra:?} should pass: {report:#}\nstderr: {}",
        common::stderr(&output)
    );
    assert_eq!(report["ok"], true, "{report:#}");
    report
}

/// The sorted finding codes.
fn codes(findings: &[Value]) -> Vec<String> {
    let mut codes: Vec<String> = findings
        .iter()
        .map(|finding| finding["code"].as_str().unwrap_or_default().to_string())
        .collect();
    codes.sort();
    codes
}

/// The findings with `code`.
fn with_code<'a>(findings: &'a [Value], code: &str) -> Vec<&'a Value> {
    findings
        .iter()
        .filter(|finding| finding["code"] == code)
        .collect()
}

/// The log indices the findings with `code` point at, sorted.
fn indices(findings: &[Value], code: &str) -> Vec<u64> {
    let mut indices: Vec<u64> = with_code(findings, code)
        .iter()
        .filter_map(|finding| finding["log_index"].as_u64())
        .collect();
    indices.sort();
    indices
}

/// Rewrites the comment of the fixture's `full` case (log 3) and re-chains
/// every later event of the case, moving its head, so that the case chains
/// stay whole; then rebuilds every log node from the rewritten events.
/// Returns the rebuilt tree.
fn consistent_rewrite(db: &mut Db, full: &str) -> MemoryTree {
    let (log_index, bytes) = db.event(full, 2);
    assert_eq!(log_index, 13);
    let mut previous = replace(&bytes, "looks fine", "looks fino");
    Event::decode(&previous).expect("the rewritten comment is still a canonical event");
    db.set_bytes(log_index, &previous);
    for seq in 3..=5 {
        let (log_index, bytes) = db.event(full, seq);
        let mut event = Event::decode(&bytes).expect("stored events decode");
        event.prev_hash = Some(Sha256Hash::of(&previous));
        let rewritten = event.canonical_bytes();
        assert_ne!(rewritten, bytes);
        db.set_bytes(log_index, &rewritten);
        previous = rewritten;
    }
    db.fix_case_heads();
    db.rebuild_log_nodes()
}

/// Deletes the events from `keep` on and every log node that covers one of
/// them, and makes the case records agree: a careful truncation.
fn careful_truncation(db: &mut Db, keep: u64) {
    assert_eq!(
        db.execute(&format!("DELETE FROM events WHERE log_index >= {keep}")),
        Ok(20 - keep)
    );
    // Node (level, idx) covers leaves [idx * 2^level, (idx + 1) * 2^level).
    db.execute(&format!(
        "DELETE FROM log_nodes WHERE ((idx + 1) << level) > {keep}"
    ))
    .expect("delete the truncated log nodes");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM log_nodes WHERE level = 0"),
        keep as i64
    );
    db.fix_case_heads();
    // What remains is exactly the tree of the first `keep` events.
    let tree =
        MemoryTree::from_leaf_hashes(db.events().iter().map(|(_, _, _, bytes)| leaf_hash(bytes)));
    let (runtime, connection) = db.connection();
    let stored = runtime
        .block_on(sqlx::query("SELECT level, idx, hash FROM log_nodes").fetch_all(&mut *connection))
        .unwrap();
    for row in stored {
        let level: i64 = row.get("level");
        let idx: i64 = row.get("idx");
        let hash: Vec<u8> = row.get("hash");
        assert_eq!(
            tree.get_node(NodeId::new(level as u8, idx as u64))
                .map(|hash| hash.to_vec()),
            Some(hash),
            "node ({level}, {idx}) survives the truncation unchanged"
        );
    }
}

#[test]
fn verify_detects_and_names_every_tampering_with_the_log() {
    let fixture = build_fixture();
    let full = fixture.full.as_str();

    // The store itself refuses to change or remove log nodes and checkpoints.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        let nodes = db.count("SELECT COUNT(*) FROM log_nodes");
        db.assert_append_only(&[
            "UPDATE log_nodes SET hash = zeroblob(32)",
            "UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 19",
            "DELETE FROM log_nodes",
            "DELETE FROM log_nodes WHERE level = 0 AND idx = 19",
            "UPDATE checkpoints SET note = 'forged'",
            "UPDATE checkpoints SET root = zeroblob(32) WHERE size = 20",
            "DELETE FROM checkpoints",
            "DELETE FROM checkpoints WHERE size = 20",
        ]);
        assert_eq!(db.count("SELECT COUNT(*) FROM log_nodes"), nodes);
        assert_eq!(
            db.count("SELECT COUNT(*) FROM log_nodes WHERE level = 0"),
            20
        );
        assert_eq!(db.count("SELECT COUNT(*) FROM checkpoints"), 3);
        assert_eq!(
            db.count("SELECT COUNT(*) FROM checkpoints WHERE note = 'forged'"),
            0
        );
        db.close();
        assert_verify_ok(copy.path());
    }

    // (a) One byte of an event flipped: its stored leaf no longer hashes it,
    // and neither signed root is reproduced.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&TRIGGERS);
        let (log_index, bytes) = db.event(full, 2);
        db.set_bytes(log_index, &replace(&bytes, "looks fine", "looks fino"));
        db.close();
        let (report, findings) = verify_fails(copy.path(), &[]);
        assert_eq!(
            indices(&findings, "log.leaf-mismatch"),
            vec![13],
            "{report:#}"
        );
        assert_eq!(
            with_code(&findings, "log.leaf-mismatch")[0]["case_id"],
            full,
            "{report:#}"
        );
        assert_eq!(
            indices(&findings, "checkpoint.root-mismatch"),
            vec![15, 19],
            "both checkpoints signed after it cover the flipped byte (the one at size 3 does not): {report:#}"
        );
    }

    // (b) A middle event deleted (its leaf left behind).
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&TRIGGERS);
        assert_eq!(db.execute("DELETE FROM events WHERE log_index = 15"), Ok(1));
        db.close();
        let (report, findings) = verify_fails(copy.path(), &[]);
        assert_eq!(indices(&findings, "log.index-gap"), vec![15], "{report:#}");
        assert_eq!(
            with_code(&findings, "log.leaf-without-event").len(),
            1,
            "20 leaves but 19 events: {report:#}"
        );
    }

    // (c) Two events swapped: neither stored leaf hashes the event now at its index.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&TRIGGERS);
        let (second_index, second) = db.event(full, 2);
        let (third_index, third) = db.event(full, 3);
        db.set_bytes(second_index, &third);
        db.set_bytes(third_index, &second);
        db.close();
        let (report, findings) = verify_fails(copy.path(), &[]);
        assert_eq!(
            indices(&findings, "log.leaf-mismatch"),
            vec![13, 15],
            "{report:#}"
        );
        assert!(
            !with_code(&findings, "checkpoint.root-mismatch").is_empty(),
            "{report:#}"
        );
    }

    // (d) The tail truncated by a careful attacker: the last two events, their
    // leaves and every node above them deleted, the case records rolled back.
    // Everything left is self-consistent; only the signed checkpoint at size 20
    // remembers that the log was longer.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&TRIGGERS);
        careful_truncation(&mut db, 18);
        db.close();
        let (report, findings) = verify_fails(copy.path(), &[]);
        assert_eq!(
            codes(&findings),
            vec!["checkpoint.beyond-log"],
            "{report:#}"
        );
        assert_eq!(findings[0]["log_index"], 18, "{report:#}");
        let message = findings[0]["message"].as_str().unwrap();
        assert!(
            message.contains("20") && message.contains("18"),
            "the finding says how long the log was and is: {message}"
        );
    }

    // (e) A checkpoint replaced: its root line edited; the signature fails.
    {
        let copy = fresh_copy(&fixture);
        let forged_root = fixture.root(&fixture.cp6);
        let original_root = fixture.root(&fixture.cp10);
        let edited = fixture
            .cp10
            .replacen(&base64_of(&original_root), &base64_of(&forged_root), 1);
        assert_ne!(edited, fixture.cp10);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&TRIGGERS);
        db.set_note(20, &edited);
        db.close();
        let (report, findings) = verify_fails(copy.path(), &[]);
        assert_eq!(
            codes(&findings),
            vec!["checkpoint.bad-signature"],
            "{report:#}"
        );
    }

    // (f) A checkpoint replaced by one of another deployment (same origin
    // name, another key).
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&TRIGGERS);
        db.set_note(20, &fixture.other_cp);
        db.close();
        let (report, findings) = verify_fails(copy.path(), &[]);
        assert_eq!(
            codes(&findings),
            vec!["checkpoint.bad-signature"],
            "{report:#}"
        );
    }

    // (g) A forged checkpoint re-signed with a key that is not configured,
    // named like the log: replacing the real one, or added beside it (an
    // INSERT, which needs no trigger dropped).
    {
        let rogue = SignerKey::generate(&fixture.origin).expect("generate a key");
        let forged_root = leaf_hash(b"forged history");
        let forged = Checkpoint::new(&fixture.origin, 20, forged_root)
            .unwrap()
            .sign(&[&rogue])
            .unwrap();
        // Well-formed: it verifies with the forger's own key, just not with the log's.
        verify_checkpoint(forged.as_bytes(), &[rogue.verifier_key()])
            .expect("the forgery is a well-formed signed checkpoint");
        assert!(verify_checkpoint(forged.as_bytes(), &fixture.trusted()).is_err());

        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&TRIGGERS);
        db.put_checkpoint(20, &forged_root, &forged);
        db.close();
        let (report, findings) = verify_fails(copy.path(), &[]);
        // The data directory's checkpoints file still holds the real one.
        assert_eq!(
            codes(&findings),
            vec![
                "checkpoint.bad-signature",
                "checkpoint.missing-from-database"
            ],
            "{report:#}"
        );

        let extra_root = leaf_hash(b"forged at size 5");
        let extra = Checkpoint::new(&fixture.origin, 5, extra_root)
            .unwrap()
            .sign(&[&rogue])
            .unwrap();
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.put_checkpoint(5, &extra_root, &extra);
        db.close();
        let (report, findings) = verify_fails(copy.path(), &[]);
        assert_eq!(
            codes(&findings),
            vec!["checkpoint.bad-signature"],
            "{report:#}"
        );
        assert!(
            findings[0]["message"].as_str().unwrap().contains("size 5"),
            "{report:#}"
        );
    }

    // (h) A genuine checkpoint moved to another row: the row's size and root
    // are not what the note signs.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&TRIGGERS);
        db.set_note(20, &fixture.cp6);
        db.close();
        let (report, findings) = verify_fails(copy.path(), &[]);
        assert_eq!(
            codes(&findings),
            vec!["checkpoint.row-mismatch"],
            "{report:#}"
        );
    }

    // (i) A leaf deleted from the log, its event kept.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&TRIGGERS);
        assert_eq!(
            db.execute("DELETE FROM log_nodes WHERE level = 0 AND idx = 17"),
            Ok(1)
        );
        db.close();
        let (report, findings) = verify_fails(copy.path(), &[]);
        assert_eq!(codes(&findings), vec!["log.leaf-missing"], "{report:#}");
        assert_eq!(findings[0]["log_index"], 17, "{report:#}");
    }

    // (j) A leaf overwritten in the log, its event kept.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&TRIGGERS);
        assert_eq!(
            db.execute("UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 14"),
            Ok(1)
        );
        db.close();
        let (report, findings) = verify_fails(copy.path(), &[]);
        assert_eq!(codes(&findings), vec!["log.leaf-mismatch"], "{report:#}");
        assert_eq!(findings[0]["log_index"], 14, "{report:#}");
    }

    // (k) A consistent rewrite: an event rewritten, the case's later events
    // re-chained, its head moved and every log node rebuilt from the
    // rewritten events. Chains and leaves agree; only the signed roots
    // cannot be reproduced.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&TRIGGERS);
        let tree = consistent_rewrite(&mut db, full);
        assert_ne!(tree.root_at(16).unwrap(), fixture.root(&fixture.cp6));
        assert_ne!(tree.root_at(20).unwrap(), fixture.root(&fixture.cp10));
        db.close();
        let (report, findings) = verify_fails(copy.path(), &[]);
        assert_eq!(
            codes(&findings),
            vec!["checkpoint.root-mismatch", "checkpoint.root-mismatch"],
            "{report:#}"
        );
        assert_eq!(
            indices(&findings, "checkpoint.root-mismatch"),
            vec![15, 19],
            "{report:#}"
        );
    }

    // The original is untouched by all of this.
    assert_verify_ok(&fixture.server.data);
}

/// The severity of every finding with `code`.
fn severities(findings: &[Value], code: &str) -> Vec<String> {
    with_code(findings, code)
        .iter()
        .map(|finding| finding["severity"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A `--config` file for `verify` that says how often the servers sign.
fn interval_config(dir: &Path, seconds: u64) -> PathBuf {
    let path = dir.join(format!("interval-{seconds}.toml"));
    std::fs::write(
        &path,
        format!("[log]\ncheckpoint_interval_seconds = {seconds}\n"),
    )
    .unwrap();
    path
}

/// Issue 10's attack: someone who can write to the database but holds no
/// signing key stops the server, drops the triggers, rewrites an event
/// consistently (the case's chain, its case row, every Merkle node) and
/// deletes the stored checkpoints. The data directory's checkpoints file,
/// to which the server appended every checkpoint it signed, still holds what
/// the log signed; without any checkpoint, old entries are an error.
#[test]
fn verify_fails_a_consistent_rewrite_whose_stored_checkpoints_were_deleted() {
    let fixture = build_fixture();
    let copy = fresh_copy(&fixture);
    let mut db = Db::open(copy.path());
    db.drop_triggers(&TRIGGERS);
    consistent_rewrite(&mut db, &fixture.full);
    assert_eq!(db.execute("DELETE FROM checkpoints"), Ok(3));
    db.close();

    let (report, findings) = verify_fails(copy.path(), &[]);
    assert_eq!(report["checked"]["checkpoints"], 0, "{report:#}");
    assert_eq!(report["checked"]["outside_checkpoints"], 3, "{report:#}");
    assert_eq!(
        codes(&findings),
        vec![
            "checkpoint.missing-from-database",
            "checkpoint.missing-from-database",
            "checkpoint.missing-from-database",
            "checkpoint.root-mismatch",
            "checkpoint.root-mismatch",
        ],
        "{report:#}"
    );
    assert_eq!(
        indices(&findings, "checkpoint.root-mismatch"),
        vec![15, 19],
        "the checkpoints at 16 and 20 cover the rewritten event: {report:#}"
    );
    assert_eq!(
        indices(&findings, "checkpoint.missing-from-database"),
        vec![2, 15, 19],
        "{report:#}"
    );
    for code in [
        "checkpoint.root-mismatch",
        "checkpoint.missing-from-database",
    ] {
        assert!(
            severities(&findings, code)
                .iter()
                .all(|severity| severity == "critical"),
            "{report:#}"
        );
    }

    // An attacker who can also write to the data directory removes the file.
    // Entries without any checkpoint are then the normal tail of a live log
    // while they are younger than three checkpoint intervals (an info)...
    let saved = tempfile::tempdir().unwrap();
    std::fs::rename(
        copy.path().join("checkpoints"),
        saved.path().join("checkpoints"),
    )
    .unwrap();
    let hourly = interval_config(saved.path(), 3600);
    let report = verify_passes(copy.path(), &["--config", hourly.to_str().unwrap()]);
    let findings = report["findings"].as_array().unwrap().clone();
    assert_eq!(
        codes(&findings),
        vec!["checkpoint.none-outside", "log.no-checkpoint"],
        "{report:#}"
    );
    assert_eq!(severities(&findings, "log.no-checkpoint"), vec!["info"]);
    assert_eq!(
        severities(&findings, "checkpoint.none-outside"),
        vec!["info"]
    );
    assert_eq!(findings[0]["log_index"], Value::Null, "{report:#}");
    // ...and an error once they are older: at a clock four seconds ahead,
    // every entry is older than three intervals of a second.
    let later = ManualClock::new(Timestamp::now().plus_seconds(4));
    let (report, findings) = verify_request_fails(custody_verify::Request {
        data_dir: Some(copy.path().to_path_buf()),
        checkpoint_interval_seconds: 1,
        clock: Some(Arc::new(later)),
        ..custody_verify::Request::default()
    });
    assert_eq!(
        codes(&findings),
        vec!["checkpoint.none-outside", "log.no-checkpoint"],
        "{report:#}"
    );
    assert_eq!(severities(&findings, "log.no-checkpoint"), vec!["high"]);
    assert_eq!(indices(&findings, "log.no-checkpoint"), vec![0]);

    // A copy of the file kept elsewhere (`--checkpoints FILE`, or a
    // directory of them) catches the rewrite as the data directory's did.
    let kept = saved.path().join("checkpoints");
    for place in [kept.as_path(), saved.path()] {
        let (report, findings) =
            verify_fails(copy.path(), &["--checkpoints", place.to_str().unwrap()]);
        assert_eq!(
            indices(&findings, "checkpoint.root-mismatch"),
            vec![15, 19],
            "{report:#}"
        );
    }
}

/// The newest events deleted together with the checkpoint that covered
/// them: what is left is self-consistent and its stored checkpoints verify,
/// but the checkpoints file remembers the longer log.
#[test]
fn verify_fails_when_the_newest_events_are_deleted_with_their_checkpoint() {
    let fixture = build_fixture();
    let copy = fresh_copy(&fixture);
    let mut db = Db::open(copy.path());
    db.drop_triggers(&TRIGGERS);
    careful_truncation(&mut db, 18);
    assert_eq!(db.execute("DELETE FROM checkpoints WHERE size > 18"), Ok(1));
    db.close();
    let (report, findings) = verify_fails(copy.path(), &[]);
    assert_eq!(
        codes(&findings),
        vec!["checkpoint.beyond-log", "checkpoint.missing-from-database"],
        "{report:#}"
    );
    assert_eq!(
        indices(&findings, "checkpoint.beyond-log"),
        vec![18],
        "{report:#}"
    );
    assert_eq!(
        indices(&findings, "checkpoint.missing-from-database"),
        vec![19],
        "{report:#}"
    );
    let message = with_code(&findings, "checkpoint.beyond-log")[0]["message"]
        .as_str()
        .unwrap();
    assert!(
        message.contains("held outside the database") && message.contains("checkpoints"),
        "the finding names where the checkpoint was held: {message}"
    );

    // An entry torn by a crash while appending is noted and ignored...
    let file = copy.path().join("checkpoints");
    let original = std::fs::read_to_string(&file).unwrap();
    let mut text = original.clone();
    text.push_str("-----BEGIN CUSTODY CHECKPOINT-----\ncustody.local/x\n11\n");
    std::fs::write(&file, &text).unwrap();
    let (report, findings) = verify_fails(copy.path(), &[]);
    assert_eq!(
        severities(&findings, "checkpoint.outside-torn"),
        vec!["info"],
        "{report:#}"
    );
    assert_eq!(findings.len(), 3, "{report:#}");
    // ...and a file whose entries were edited by hand is reported as such.
    let mut text = original;
    text.push_str("size 8 is all there ever was\n");
    std::fs::write(&file, text).unwrap();
    let (report, findings) = verify_fails(copy.path(), &[]);
    assert_eq!(
        severities(&findings, "checkpoint.outside-malformed"),
        vec!["high"],
        "{report:#}"
    );
}

/// `custody serve` on a data directory, expected to be refused: its stderr.
#[track_caller]
fn serve_refused(data: &Path, config: Option<&Path>) -> String {
    match common::spawn_serve_configured(data, None, config) {
        Ok(_) => panic!("serve should have refused to start on a rewritten history"),
        Err(stderr) => {
            assert!(
                stderr.starts_with("exit Some(2)\n"),
                "a refused start exits 2: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
            stderr
        }
    }
}

/// What a refused start must leave as it was.
#[derive(Debug, PartialEq, Eq)]
struct Untouched {
    checkpoint_rows: Vec<i64>,
    events: i64,
    file: Vec<u8>,
}

impl Untouched {
    fn of(data: &Path) -> Untouched {
        let mut db = Db::open(data);
        let (runtime, connection) = db.connection();
        let checkpoint_rows = runtime
            .block_on(
                sqlx::query_scalar("SELECT size FROM checkpoints ORDER BY size")
                    .fetch_all(&mut *connection),
            )
            .unwrap();
        let events = db.count("SELECT COUNT(*) FROM events");
        db.close();
        Untouched {
            checkpoint_rows,
            events,
            file: std::fs::read(data.join("checkpoints")).unwrap_or_default(),
        }
    }
}

/// The fork attack: someone who can write to the database but holds no
/// key rewrites an event consistently (bytes, chain, case head, Merkle
/// nodes), deletes the checkpoint rows that cover it, and restarts the
/// server, hoping it signs the rewritten history with the real key. The
/// server checks the log against the newest checkpoint of the database and
/// of every place outside it before it writes or signs anything, and
/// refuses to start, naming the checkpoint, its size and both roots.
#[test]
fn serve_refuses_to_sign_a_history_rewritten_in_the_database() {
    let fixture = build_fixture();
    let hex = |root: &[u8; 32]| custody_core::hex::encode(root);
    let honest_16 = hex(&fixture.root(&fixture.cp6));
    let honest_20 = hex(&fixture.root(&fixture.cp10));

    // The newest row deleted: the database's newest left (size 16) covers
    // the rewritten event.
    let copy = fresh_copy(&fixture);
    let mut db = Db::open(copy.path());
    db.drop_triggers(&TRIGGERS);
    let tree = consistent_rewrite(&mut db, &fixture.full);
    assert_eq!(db.execute("DELETE FROM checkpoints WHERE size = 20"), Ok(1));
    db.close();
    let forged_16 = hex(&tree.root_at(16).unwrap());
    let forged_20 = hex(&tree.root_at(20).unwrap());
    let before = Untouched::of(copy.path());
    let refusal = serve_refused(copy.path(), None);
    assert!(
        refusal.contains(&format!(
            "refusing to start: the log stored in the database does not match the signed checkpoint at size 16 held in the database: the checkpoint's root is {honest_16}, the stored log's root at size 16 is {forged_16}"
        )),
        "{refusal}"
    );
    assert!(
        refusal.contains("hint: run `custody verify` to see what changed, and restore the database from a backup"),
        "{refusal}"
    );
    assert!(!refusal.contains("listening on"), "{refusal}");
    assert_eq!(
        Untouched::of(copy.path()),
        before,
        "nothing was written or signed"
    );

    // Every checkpoint row that covers it deleted: the data directory's
    // checkpoints file still holds the checkpoint at size 20.
    let copy = fresh_copy(&fixture);
    let mut db = Db::open(copy.path());
    db.drop_triggers(&TRIGGERS);
    consistent_rewrite(&mut db, &fixture.full);
    assert_eq!(db.execute("DELETE FROM checkpoints WHERE size > 3"), Ok(2));
    db.close();
    let file = copy.path().join("checkpoints");
    let before = Untouched::of(copy.path());
    let refusal = serve_refused(copy.path(), None);
    assert!(
        refusal.contains(&format!(
            "does not match the signed checkpoint at size 20 held in {}: the checkpoint's root is {honest_20}, the stored log's root at size 20 is {forged_20}",
            file.display()
        )),
        "{refusal}"
    );
    assert_eq!(
        Untouched::of(copy.path()),
        before,
        "nothing was written or signed"
    );

    // The file removed too, but a copy in log.checkpoints_dir (another
    // mount) still holds it.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::rename(&file, elsewhere.path().join("checkpoints")).unwrap();
    let config = elsewhere.path().join("custody.toml");
    std::fs::write(
        &config,
        format!(
            "{QUIET}checkpoints_dir = \"{}\"\n",
            elsewhere.path().display()
        ),
    )
    .unwrap();
    let refusal = serve_refused(copy.path(), Some(&config));
    assert!(
        refusal.contains(&format!(
            "does not match the signed checkpoint at size 20 held in {}: the checkpoint's root is {honest_20}",
            elsewhere.path().display()
        )),
        "{refusal}"
    );

    // The events after a checkpoint deleted with it: the log is shorter
    // than the checkpoint the file holds.
    let copy = fresh_copy(&fixture);
    let mut db = Db::open(copy.path());
    db.drop_triggers(&TRIGGERS);
    careful_truncation(&mut db, 18);
    assert_eq!(db.execute("DELETE FROM checkpoints WHERE size > 18"), Ok(1));
    db.close();
    let before = Untouched::of(copy.path());
    let refusal = serve_refused(copy.path(), None);
    assert!(
        refusal.contains(&format!(
            "the log stored in the database is shorter than the signed checkpoint at size 20 held in {} (root {honest_20}): it holds 18 entries",
            copy.path().join("checkpoints").display()
        )),
        "{refusal}"
    );
    assert_eq!(
        Untouched::of(copy.path()),
        before,
        "nothing was written or signed"
    );

    // An honest restart still serves, and signs.
    let copy = fresh_copy(&fixture);
    let quiet = copy.path().join("quiet.toml");
    std::fs::write(&quiet, QUIET).unwrap();
    let node = common::spawn_serve_configured(copy.path(), None, Some(&quiet))
        .unwrap_or_else(|stderr| panic!("an honest restart must serve: {stderr}"));
    let signed = common::cli_at(&node.url, "", &["log", "checkpoint"]);
    common::assert_success(&signed, "custody log checkpoint");
    assert!(
        common::stdout(&signed).contains("\n20\n"),
        "{}",
        common::stdout(&signed)
    );
}

#[test]
fn a_saved_checkpoint_proves_the_log_still_extends_it() {
    let mut fixture = build_fixture();
    let cp6 = fixture.file("cp6");
    let cp10 = fixture.file("cp10");
    let other = fixture.file("other");

    // The honest log extends both checkpoints saved from it.
    let report = verify_passes(&fixture.server.data, &since(&cp6));
    assert_eq!(report["checked"]["checkpoints"], 3, "{report:#}");
    verify_passes(&fixture.server.data, &since(&cp10));

    // A checkpoint of another deployment (same origin name, another key) is
    // not this log's.
    {
        let (report, findings) = verify_fails(&fixture.server.data, &since(&other));
        assert_eq!(codes(&findings), vec!["since.bad-signature"], "{report:#}");
    }
    // Trusting its key with --key, it verifies, and this log does not extend it.
    {
        let mut args = since(&other);
        args.extend(["--key", fixture.other_key.as_str()]);
        let (report, findings) = verify_fails(&fixture.server.data, &args);
        assert_eq!(codes(&findings), vec!["since.not-extended"], "{report:#}");
    }
    // A checkpoint of this log's real root, re-signed by a key that is not configured.
    {
        let rogue = SignerKey::generate(&fixture.origin).unwrap();
        let resigned = Checkpoint::new(&fixture.origin, 20, fixture.root(&fixture.cp10))
            .unwrap()
            .sign(&[&rogue])
            .unwrap();
        let path = fixture.file("resigned");
        std::fs::write(&path, resigned).unwrap();
        let (report, findings) = verify_fails(&fixture.server.data, &since(&path));
        assert_eq!(codes(&findings), vec!["since.bad-signature"], "{report:#}");
    }

    // History rewritten consistently by someone who also holds the signing
    // key: the stored checkpoints are re-signed over the rewritten log, so
    // the store is self-consistent and a plain verify passes. The
    // checkpoints the auditor saved earlier are not extended.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&TRIGGERS);
        let tree = consistent_rewrite(&mut db, &fixture.full);
        let key_file = std::fs::read_to_string(copy.path().join("log-signing.key")).unwrap();
        let signer = SignerKey::parse(key_file.lines().next().unwrap().trim()).unwrap();
        for size in [16, 20] {
            let root = tree.root_at(size).unwrap();
            let note = Checkpoint::new(&fixture.origin, size, root)
                .unwrap()
                .sign(&[&signer])
                .unwrap();
            db.put_checkpoint(size, &root, &note);
        }
        db.close();
        // The checkpoints file of the data directory still holds the
        // checkpoints signed before the rewrite...
        let (report, findings) = verify_fails(copy.path(), &[]);
        assert_eq!(
            indices(&findings, "checkpoint.root-mismatch"),
            vec![15, 19],
            "{report:#}"
        );
        assert_eq!(
            indices(&findings, "checkpoint.missing-from-database"),
            vec![15, 19],
            "{report:#}"
        );
        // ...but whoever can write to the data directory rewrites it too:
        // then the store is self-consistent, and verify passes, saying that
        // no checkpoint held outside the database was checked.
        std::fs::remove_file(copy.path().join("checkpoints")).unwrap();
        let report = verify_passes(copy.path(), &[]);
        assert_eq!(
            codes(report["findings"].as_array().unwrap()),
            vec!["checkpoint.none-outside"],
            "{report:#}"
        );
        for saved in [&cp6, &cp10] {
            let (report, findings) = verify_fails(copy.path(), &since(saved));
            assert_eq!(codes(&findings), vec!["since.not-extended"], "{report:#}");
        }
    }

    // The tail truncated by a careful attacker who also removed the signed
    // checkpoints that covered it: the saved checkpoint at size 10 is beyond
    // the log; the one at size 6 is still extended.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&TRIGGERS);
        careful_truncation(&mut db, 18);
        assert_eq!(db.execute("DELETE FROM checkpoints WHERE size > 18"), Ok(1));
        db.close();
        // The attacker can write to the data directory too.
        std::fs::remove_file(copy.path().join("checkpoints")).unwrap();
        let (report, findings) = verify_fails(copy.path(), &since(&cp10));
        assert_eq!(codes(&findings), vec!["since.beyond-log"], "{report:#}");
        assert_eq!(findings[0]["log_index"], 18, "{report:#}");
        verify_passes(copy.path(), &since(&cp6));
    }

    // The honest log grows after the save: it still extends the saved checkpoints.
    // (Restarted with the same policy, the server records no new adoption.)
    fixture.server.restart_configured();
    assert_eq!(fixture.server.log_size(), 20);
    let erin = fixture.server.principal("erin");
    fixture.server.cli_ok(
        &erin,
        &[
            "request",
            "--subject",
            "user:eve",
            "--entitlement",
            "reader",
        ],
    );
    fixture.server.sign_checkpoint();
    assert_eq!(fixture.server.log_size(), 23);
    fixture.server.stop();
    for saved in [&cp6, &cp10] {
        let report = verify_passes(&fixture.server.data, &since(saved));
        assert_eq!(report["checked"]["checkpoints"], 4, "{report:#}");
    }
}

/// `--since-checkpoint PATH`.
fn since(path: &Path) -> Vec<&str> {
    vec!["--since-checkpoint", path.to_str().unwrap()]
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ---------------------------------------------------------------------------
// kill -9 during concurrent appends
// ---------------------------------------------------------------------------

const CRASH_WORKERS: usize = 6;

#[test]
fn kill_9_during_appends_never_separates_an_event_from_its_leaf() {
    // Checkpoints are signed every second, concurrently with the appends.
    let (mut server, _) =
        Server::start_configured(None, Some("[log]\ncheckpoint_interval_seconds = 1\n"));
    let tokens: Vec<String> = ["w1", "w2", "w3"]
        .iter()
        .map(|name| server.principal(name))
        .collect();
    let load = Load::start(&server, &tokens, CRASH_WORKERS, 2, "log-crash");

    // Run the load until a few hundred writes are acknowledged and the
    // periodic signer has signed under load, then kill the server mid-write.
    load.wait_until(
        &mut server,
        Duration::from_secs(120),
        |server, acked, elapsed| {
            acked >= 200
                && elapsed >= Duration::from_millis(1200)
                && server
                    .http("GET", "/v1/log/checkpoint", None, &[], Body::None)
                    .status
                    == 200
        },
    );
    server.kill9();
    let acked: Vec<String> = load
        .finish(&server)
        .iter()
        .flat_map(Ack::event_ids)
        .collect();

    // Read the crashed database as it was left.
    let options = SqliteConnectOptions::new()
        .filename(server.data.join("custody.db"))
        .read_only(true);
    let (events, nodes, checkpoints) = server.runtime().block_on(async {
        let mut connection = options.connect().await.expect("open the crashed database");
        let events: Vec<(i64, String, Vec<u8>)> =
            sqlx::query("SELECT log_index, event_id, bytes FROM events ORDER BY log_index")
                .fetch_all(&mut connection)
                .await
                .expect("read events")
                .iter()
                .map(|row| (row.get("log_index"), row.get("event_id"), row.get("bytes")))
                .collect();
        let nodes: Vec<(i64, i64, Vec<u8>)> =
            sqlx::query("SELECT level, idx, hash FROM log_nodes ORDER BY level, idx")
                .fetch_all(&mut connection)
                .await
                .expect("read log nodes")
                .iter()
                .map(|row| (row.get("level"), row.get("idx"), row.get("hash")))
                .collect();
        let checkpoints: Vec<(i64, Vec<u8>)> =
            sqlx::query("SELECT size, root FROM checkpoints ORDER BY size")
                .fetch_all(&mut connection)
                .await
                .expect("read checkpoints")
                .iter()
                .map(|row| (row.get("size"), row.get("root")))
                .collect();
        connection.close().await.expect("close");
        (events, nodes, checkpoints)
    });
    let size = events.len();
    assert!(size >= acked.len(), "{size} events stored");
    for (position, (log_index, _, _)) in events.iter().enumerate() {
        assert_eq!(*log_index, position as i64, "the log is gapless");
    }
    let stored: HashSet<&str> = events.iter().map(|(_, id, _)| id.as_str()).collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged events lost: {lost:?}");

    // As many leaves as events, and every event's leaf is SHA-256(0x00 || bytes).
    let leaves: Vec<&(i64, i64, Vec<u8>)> =
        nodes.iter().filter(|(level, _, _)| *level == 0).collect();
    assert_eq!(
        leaves.len(),
        size,
        "{} leaves for {size} events after kill -9",
        leaves.len()
    );
    for ((_, idx, hash), (log_index, event_id, bytes)) in leaves.iter().zip(&events) {
        assert_eq!(idx, log_index, "leaf and event indices agree");
        assert_eq!(
            hash.as_slice(),
            leaf_hash(bytes).as_slice(),
            "the leaf at {idx} does not hash event {event_id}"
        );
    }
    // Every stored node is the node of the tree of the stored events, and none is missing.
    let mut tree = MemoryTree::new();
    let mut expected = 0;
    for (_, _, bytes) in &events {
        expected += tree.append_data(bytes).len();
    }
    assert_eq!(nodes.len(), expected, "stored nodes vs complete subtrees");
    for (level, idx, hash) in &nodes {
        assert_eq!(
            tree.get_node(NodeId::new(*level as u8, *idx as u64))
                .map(|node| node.to_vec()),
            Some(hash.clone()),
            "log node ({level}, {idx})"
        );
    }
    // Every checkpoint signed under load is a root of the stored log.
    assert!(
        !checkpoints.is_empty(),
        "a checkpoint was signed under load"
    );
    for (checkpoint_size, root) in &checkpoints {
        assert!(*checkpoint_size as usize <= size);
        assert_eq!(
            tree.root_at(*checkpoint_size as u64).unwrap().as_slice(),
            root.as_slice(),
            "checkpoint at size {checkpoint_size}"
        );
    }
    eprintln!(
        "{} writes acknowledged before kill -9; {size} events, {} nodes, {} checkpoints stored",
        acked.len(),
        nodes.len(),
        checkpoints.len()
    );

    // The crashed directory verifies as it is.
    let report = assert_verify_ok(&server.data);
    assert_eq!(report["checked"]["leaves"], size as u64, "{report:#}");
    assert_eq!(
        report["checked"]["checkpoints"],
        checkpoints.len() as u64,
        "{report:#}"
    );

    // After a restart the log continues from where it stopped.
    server.restart_configured();
    assert_eq!(server.log_size(), size as u64);
    let writer = server.principal("after-crash");
    server.cli_ok(
        &writer,
        &[
            "request",
            "--subject",
            "user:late",
            "--entitlement",
            "reader",
        ],
    );
    let note = server.sign_checkpoint();
    assert!(
        // The new principal and its token, then the request.
        note.lines().nth(1) == Some((size + 3).to_string().as_str()),
        "the new checkpoint covers the new event: {note}"
    );
    server.stop();
    assert_verify_ok(&server.data);
}

/// The stored Merkle nodes above the leaves serve every proof the store
/// gives out; `verify` rebuilds the tree from the events, and also checks
/// each stored node against its children, so a node altered, moved to
/// another level or removed behind the store's back is named
/// (`log.node-mismatch`), pointing at the node's first leaf, with no other
/// code (the events and the signed roots are intact).
#[test]
fn verify_names_an_altered_moved_or_missing_interior_merkle_node() {
    let fixture = build_fixture();
    let messages = |findings: &[Value]| -> Vec<String> {
        findings
            .iter()
            .map(|finding| finding["message"].as_str().unwrap_or_default().to_string())
            .collect()
    };

    // Altered: the node over leaves 4..8 zeroed. Only it is named: its
    // parent (over leaves 0..8) hashes the zeroed bytes but is right.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&TRIGGERS);
        assert_eq!(
            db.execute("UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 1"),
            Ok(1)
        );
        db.close();
        let (report, findings) = verify_fails(copy.path(), &[]);
        assert!(
            codes(&findings)
                .iter()
                .all(|code| code == "log.node-mismatch"),
            "{report:#}"
        );
        assert_eq!(
            indices(&findings, "log.node-mismatch"),
            vec![4],
            "{report:#}"
        );
    }

    // Moved: the node over leaves 8..12 stored one level up, where no
    // complete subtree has its index; its own place is empty.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&TRIGGERS);
        assert_eq!(
            db.execute("UPDATE log_nodes SET level = 3, idx = 7 WHERE level = 2 AND idx = 2"),
            Ok(1)
        );
        db.close();
        let (report, findings) = verify_fails(copy.path(), &[]);
        assert!(
            codes(&findings)
                .iter()
                .all(|code| code == "log.node-mismatch"),
            "{report:#}"
        );
        let messages = messages(
            &with_code(&findings, "log.node-mismatch")
                .into_iter()
                .cloned()
                .collect::<Vec<_>>(),
        );
        assert!(
            messages
                .iter()
                .any(|message| message.contains("level 2, index 2 is missing")),
            "{report:#}"
        );
        assert!(
            messages
                .iter()
                .any(|message| message.contains("level 3, index 7")
                    && message.contains("no complete subtree")),
            "{report:#}"
        );
    }

    // Removed: the highest node of all (over the first 16 leaves), so that
    // no row is left at its level.
    {
        let copy = fresh_copy(&fixture);
        let mut db = Db::open(copy.path());
        db.drop_triggers(&TRIGGERS);
        assert_eq!(
            db.execute("DELETE FROM log_nodes WHERE level = (SELECT MAX(level) FROM log_nodes)"),
            Ok(1)
        );
        db.close();
        let (report, findings) = verify_fails(copy.path(), &[]);
        assert!(
            codes(&findings)
                .iter()
                .all(|code| code == "log.node-mismatch"),
            "{report:#}"
        );
        assert_eq!(
            indices(&findings, "log.node-mismatch"),
            vec![0],
            "{report:#}"
        );
    }
}
