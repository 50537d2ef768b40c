//! The library's own decisions, without a running server: the trust policy
//! refuses to check without a key it may trust, a missing ledger is a
//! database failure, and the evidence audit names every blob that is
//! missing, altered or referenced by nothing. (`tests/e2e_*.rs` of the
//! `custody` package run the whole check through the CLI.)

use custody_core::audit::{Checked, EvidenceRef, Report};
use custody_core::Sha256Hash;
use custody_evidence::{BlobStore, LocalBlobStore};
use custody_verify::{audit_evidence, parse_keys, verify, Request, VerifyError};

#[tokio::test]
async fn a_database_without_a_trusted_key_is_not_checked() {
    let request = Request {
        database_url: Some("postgres://custody@127.0.0.1:1/nothing".to_string()),
        ..Request::default()
    };
    let error = verify(request).await.expect_err("no key to trust");
    assert!(
        matches!(error, VerifyError::NoTrustedKeys { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().starts_with(
            "cannot verify postgres://custody@127.0.0.1:1/nothing without trusted log keys\nhint: pass --key VKEY"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_data_directory_without_a_ledger_is_a_database_failure() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let request = Request {
        data_dir: Some(directory.path().join("nothing-here")),
        ..Request::default()
    };
    let error = verify(request).await.expect_err("no ledger");
    assert!(matches!(error, VerifyError::Open(_)), "{error:?}");
    assert!(error.is_database() && !error.is_io(), "{error:?}");
    assert!(
        error.to_string().contains("holds no Custody database"),
        "{error}"
    );
}

#[test]
fn a_key_that_is_not_a_verifier_key_is_named() {
    let error = parse_keys(&["not-a-key".to_string()]).expect_err("not a key");
    assert!(
        error
            .to_string()
            .starts_with("`not-a-key` is not a verifier key (expected name+keyid+base64"),
        "{error}"
    );
}

fn reference(case: &str, sha256: [u8; 32], size: Option<u64>, log_index: u64) -> EvidenceRef {
    EvidenceRef {
        case_id: case.to_string(),
        event_id: format!("EV-{log_index}"),
        seq: 2,
        log_index,
        sha256: Sha256Hash(sha256),
        size,
    }
}

#[tokio::test]
async fn the_evidence_audit_names_missing_altered_and_unreferenced_blobs() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let blobs = LocalBlobStore::new(directory.path().to_path_buf());
    let mut stored = Vec::new();
    for content in [&b"intact"[..], b"to be altered", b"nobody's"] {
        let mut reader = content;
        stored.push(blobs.put_stream(&mut reader, 1024).await.expect("stored"));
    }
    // Alter the second blob behind the store's back.
    std::fs::write(blobs.blob_path(&stored[1].sha256), b"altered!").expect("altered");
    let mut report = Report {
        ok: true,
        checked: Checked::default(),
        findings: Vec::new(),
        stats: custody_core::audit::Stats::default(),
        evidence: vec![
            reference("AC-intact", *stored[0].sha256.as_bytes(), Some(6), 1),
            reference("AC-altered", *stored[1].sha256.as_bytes(), Some(13), 2),
            reference("AC-missing", [7; 32], None, 3),
            // The intact blob again, recorded with another size.
            reference("AC-resized", *stored[0].sha256.as_bytes(), Some(5), 4),
        ],
    };
    audit_evidence(&mut report, &blobs)
        .await
        .expect("the store answers");
    let found: Vec<(&str, Option<&str>)> = report
        .findings
        .iter()
        .map(|finding| (finding.code.as_str(), finding.case_id.as_deref()))
        .collect();
    assert_eq!(
        found,
        vec![
            ("evidence.blob-altered", Some("AC-altered")),
            ("evidence.blob-missing", Some("AC-missing")),
            ("evidence.blob-altered", Some("AC-resized")),
            ("evidence.blob-unreferenced", None),
        ]
    );
    assert!(!report.ok);
    assert_eq!(report.checked.evidence_blobs, 3);
    assert!(report.findings[3]
        .message
        .contains(&stored[2].sha256.to_hex()));
}
