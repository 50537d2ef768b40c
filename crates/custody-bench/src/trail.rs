//! A generator of realistic CloudTrail streams for load tests: log files
//! (`{"Records": [...]}`, gzipped, named as CloudTrail names them) of
//! mostly sanctioned access changes, some unsanctioned, some drift, among
//! the reads and failed calls a trail is mostly made of, with duplicates
//! and late arrivals.
//!
//! The mix, per record (deterministic for a seed):
//!
//! | share | what | recorded as |
//! |---|---|---|
//! | 40 % | `AttachRolePolicy` of a case's policy, in a session named by the case ID | matched by case ID |
//! | 25 % | the same without the case ID (another session) | matched by window |
//! | 5 % | `AttachRolePolicy` of `AdministratorAccess` in a case's session | matched, `drift.wider-than-approved` |
//! | 3 % | `CreateAccessKey` for a service user no case names | unsanctioned (a non-human credential) |
//! | 2 % | `AddUserToGroup` no case names | unsanctioned |
//! | 20 % | reads (`ListRoles`, `GetRole`, `DescribeInstances`, ...) | skipped |
//! | 5 % | calls denied (`errorCode`) | skipped |
//!
//! On top: 2 % of records are delivered a second time in a later file
//! (duplicates: appended once), and 5 % are held back and delivered one to
//! three files late, after records that happened after them.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use custody_core::Timestamp;
use serde_json::{json, Value};

/// The account of the generated trail.
pub const ACCOUNT: &str = "210987654321";
/// The policy the sanctioned cases approve.
pub const APPROVED_POLICY: &str = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess";
/// The policy the drifting records attach instead.
pub const WIDER_POLICY: &str = "arn:aws:iam::aws:policy/AdministratorAccess";

/// A case the stream's sanctioned records belong to: `role:<role>` gets
/// [`APPROVED_POLICY`] on `aws:<ACCOUNT>`.
#[derive(Clone, Debug)]
pub struct SanctionedCase {
    /// Its ID.
    pub case_id: String,
    /// The role it grants the policy to.
    pub role: String,
}

/// What was generated.
#[derive(Clone, Debug, Default)]
pub struct Generated {
    /// The files, in delivery (key) order.
    pub files: Vec<PathBuf>,
    /// Records written, duplicates included.
    pub records: u64,
    /// Of which access changes (first deliveries).
    pub access_changes: u64,
    /// Of which second deliveries.
    pub duplicates: u64,
    /// Of which delivered late.
    pub late: u64,
    /// Bytes of JSON written (before gzip).
    pub json_bytes: u64,
}

/// The role of the `index`th sanctioned case.
pub fn role_of(index: usize) -> String {
    format!("svc-{index:06}")
}

/// Writes `records` records in files of `per_file` into `directory`, for
/// `cases` (which must exist in the ledger, approved), starting at `start`.
pub fn generate(
    directory: &Path,
    cases: &[SanctionedCase],
    records: u64,
    per_file: usize,
    start: Timestamp,
    seed: u64,
) -> Result<Generated> {
    anyhow::ensure!(!cases.is_empty(), "the stream needs at least one case");
    let mut random = XorShift(seed | 1);
    let mut generated = Generated::default();
    let mut file: Vec<Value> = Vec::with_capacity(per_file);
    // Records held back for a later file: (files to wait, record).
    let mut held: Vec<(usize, Value)> = Vec::new();
    let mut earlier: Vec<Value> = Vec::new();
    let mut written = 0u64;
    let mut index = 0u64;
    while written < records {
        // Time moves on a little per record: a busy account.
        let at = start.plus_seconds(i64::try_from(index / 20).unwrap_or(i64::MAX));
        let id = format!("{seed:08x}-bench-{index:012x}");
        let record = make_record(&mut random, cases, &id, at, &mut generated);
        index += 1;
        let roll = random.below(100);
        if roll < 5 {
            held.push((1 + random.index(3), record));
        } else {
            if roll < 7 && earlier.len() < 64 {
                earlier.push(record.clone());
            }
            file.push(record);
            written += 1;
        }
        if file.len() >= per_file {
            // Duplicates of earlier records, and the late ones now due.
            for record in earlier.drain(..) {
                file.push(record);
                generated.duplicates += 1;
                written += 1;
            }
            let mut still_held = Vec::with_capacity(held.len());
            for (wait, record) in held.drain(..) {
                if wait <= 1 {
                    file.push(record);
                    generated.late += 1;
                    written += 1;
                } else {
                    still_held.push((wait - 1, record));
                }
            }
            held = still_held;
            flush(directory, &mut file, &mut generated, at)?;
        }
    }
    for (_, record) in held.drain(..) {
        file.push(record);
        generated.late += 1;
        written += 1;
    }
    if !file.is_empty() {
        let at = start.plus_seconds(i64::try_from(index / 20).unwrap_or(i64::MAX));
        flush(directory, &mut file, &mut generated, at)?;
    }
    generated.records = written;
    Ok(generated)
}

fn flush(
    directory: &Path,
    file: &mut Vec<Value>,
    generated: &mut Generated,
    at: Timestamp,
) -> Result<()> {
    let json = serde_json::to_vec(&json!({ "Records": file }))?;
    generated.json_bytes += json.len() as u64;
    let minute = at.to_string();
    // 2026-03-14T09:15:00.000000Z -> 20260314T0915Z
    let stamp = format!(
        "{}{}{}T{}{}Z",
        &minute[0..4],
        &minute[5..7],
        &minute[8..10],
        &minute[11..13],
        &minute[14..16]
    );
    let name = format!(
        "{ACCOUNT}_CloudTrail_us-east-1_{stamp}_{:016}.json.gz",
        generated.files.len()
    );
    let path = directory.join(name);
    let mut encoder =
        flate2::write::GzEncoder::new(std::fs::File::create(&path)?, flate2::Compression::fast());
    encoder.write_all(&json)?;
    encoder.finish()?;
    generated.files.push(path);
    file.clear();
    Ok(())
}

fn make_record(
    random: &mut XorShift,
    cases: &[SanctionedCase],
    id: &str,
    at: Timestamp,
    generated: &mut Generated,
) -> Value {
    let case = &cases[random.index(cases.len())];
    let roll = random.below(100);
    let (name, source, parameters, session, error, read_only) = match roll {
        0..=39 => (
            "AttachRolePolicy",
            "iam.amazonaws.com",
            json!({"roleName": case.role, "policyArn": APPROVED_POLICY}),
            format!("custody-{}", case.case_id),
            false,
            false,
        ),
        40..=64 => (
            "AttachRolePolicy",
            "iam.amazonaws.com",
            json!({"roleName": case.role, "policyArn": APPROVED_POLICY}),
            format!("deploy-{}", random.below(1000)),
            false,
            false,
        ),
        65..=69 => (
            "AttachRolePolicy",
            "iam.amazonaws.com",
            json!({"roleName": case.role, "policyArn": WIDER_POLICY}),
            case.case_id.clone(),
            false,
            false,
        ),
        70..=72 => (
            "CreateAccessKey",
            "iam.amazonaws.com",
            json!({"userName": format!("svc-bot-{}", random.below(100_000))}),
            format!("ops-{}", random.below(50)),
            false,
            false,
        ),
        73..=74 => (
            "AddUserToGroup",
            "iam.amazonaws.com",
            json!({"userName": format!("user-{}", random.below(100_000)), "groupName": "billing-admins"}),
            format!("ops-{}", random.below(50)),
            false,
            false,
        ),
        75..=94 => {
            let (name, source) = [
                ("ListRoles", "iam.amazonaws.com"),
                ("GetRole", "iam.amazonaws.com"),
                ("DescribeInstances", "ec2.amazonaws.com"),
                ("GetCallerIdentity", "sts.amazonaws.com"),
            ][random.index(4)];
            (
                name,
                source,
                json!({"roleName": case.role}),
                format!("reader-{}", random.below(50)),
                false,
                true,
            )
        }
        _ => (
            "AttachUserPolicy",
            "iam.amazonaws.com",
            json!({"userName": format!("user-{}", random.below(1000)), "policyArn": WIDER_POLICY}),
            format!("intruder-{}", random.below(50)),
            true,
            false,
        ),
    };
    if !read_only && !error {
        generated.access_changes += 1;
    }
    let mut record = json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": format!("AROAEXAMPLEPROVISION:{session}"),
            "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/provisioner/{session}"),
            "accountId": ACCOUNT,
            "accessKeyId": "ASIAEXAMPLESESSION01",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROAEXAMPLEPROVISION",
                    "arn": format!("arn:aws:iam::{ACCOUNT}:role/provisioner"),
                    "accountId": ACCOUNT,
                    "userName": "provisioner"
                },
                "attributes": {"creationDate": at.to_string(), "mfaAuthenticated": "false"}
            }
        },
        "eventTime": at.to_string(),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.24",
        "userAgent": "aws-cli/2.15.0 md/awscrt#0.19.19 ua/2.0 os/linux#6.1",
        "requestParameters": parameters,
        "responseElements": null,
        "requestID": format!("r-{id}"),
        "eventID": id,
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "iam.amazonaws.com"}
    });
    if error {
        record["errorCode"] = json!("AccessDenied");
        record["errorMessage"] = json!("User is not authorized to perform: iam:AttachUserPolicy");
    }
    record
}

/// xorshift64: deterministic, dependency-free.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }

    /// An index below `bound`.
    fn index(&mut self, bound: usize) -> usize {
        let bound = u64::try_from(bound).unwrap_or(u64::MAX);
        // Below a usize bound, so it fits.
        usize::try_from(self.below(bound)).unwrap_or(0)
    }
}
