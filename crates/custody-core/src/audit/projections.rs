//! The stored rows the server reads instead of the log, against what the
//! log says: the `cases` rows' listing columns and stored view, the
//! `evidence_records` rows, and the `deployment` facts. Each is compared
//! once every event has been observed and before [`Auditor::finish`], with
//! what the auditor holds already (each case's rebuilt view, each evidence
//! record's trail, the policy and administration records); the rows come
//! in pages from the store and nothing more is kept per case.

use std::collections::BTreeSet;

use super::finding::Finding;
use super::Auditor;
use crate::case::{CaseRow, CaseView};
use crate::code::Code;
use crate::severity::Severity;
use crate::text;
use crate::time::Timestamp;

/// The columns of a `cases` row beside the head, state and drill flag
/// ([`super::StoredCaseHead`]): what listings and the console show, what
/// the server finds and times cases by, and the stored view itself.
#[derive(Clone, Debug)]
pub struct StoredCaseRow {
    /// The case ID.
    pub case_id: String,
    /// `head_seq`: the row is compared only when its head is the head of
    /// the stored events (else `chain.head-mismatch` says the row is of
    /// other events, and every column would differ with it).
    pub head_seq: i64,
    /// `head_hash`.
    pub head_hash: String,
    /// `change_key`.
    pub change_key: String,
    /// `ticket`.
    pub ticket: Option<String>,
    /// `requester`.
    pub requester: String,
    /// `summary`.
    pub summary: String,
    /// `opened_at`.
    pub opened_at: String,
    /// `updated_at`.
    pub updated_at: String,
    /// `next_deadline`.
    pub next_deadline: Option<String>,
    /// `view`: the stored projection, JSON.
    pub view: Vec<u8>,
}

/// A row of the `evidence_records` table.
#[derive(Clone, Debug)]
pub struct StoredEvidenceRecordRow {
    /// `ticket`: the reference the record holds evidence for.
    pub ticket: String,
    /// `case_id`: the record's own case ID.
    pub case_id: String,
    /// `released_to`: the case it was released to.
    pub released_to: Option<String>,
    /// `created_at`.
    pub created_at: String,
}

/// A row of the `deployment` table.
#[derive(Clone, Debug)]
pub struct StoredDeploymentRow {
    /// `key`.
    pub key: String,
    /// `value`.
    pub value: String,
    /// `created_at`.
    pub created_at: String,
}

/// How much later than its first event an `evidence_records` row written
/// by an older version may say it was made (see
/// [`Auditor::check_evidence_record_rows`]).
const OLDER_WRITER_SECONDS: i64 = 60;

/// The facts the store writes in the `deployment` table.
const POLICY_RECORD: &str = "policy_record";
const ADMIN_RECORD: &str = "admin_record";
const LOG_ORIGIN: &str = "log_origin";

impl Auditor {
    /// Compares a page of `cases` rows with the cases their events rebuild
    /// (call after every event was observed, before [`Auditor::finish`],
    /// which compares the head, state and drill flag and reports rows
    /// without events and cases without rows).
    pub fn check_case_rows(&mut self, rows: &[StoredCaseRow]) {
        for row in rows {
            let Some(trail) = self.cases.get(&row.case_id) else {
                continue;
            };
            let Some(view) = trail.view.as_ref() else {
                continue;
            };
            if i64::try_from(trail.last_seq) != Ok(row.head_seq)
                || row.head_hash != trail.last_hash.to_hex()
            {
                continue;
            }
            self.findings.extend(case_row_findings(row, view));
        }
    }

    /// Compares the `evidence_records` rows with the evidence records of
    /// the log (call after every event was observed).
    pub fn check_evidence_record_rows(&mut self, rows: &[StoredEvidenceRecordRow]) {
        let mut found = Vec::new();
        let mut rows_for: BTreeSet<&str> = BTreeSet::new();
        for row in rows {
            rows_for.insert(row.case_id.as_str());
            let finding = |severity: Severity, message: String| {
                Finding::new(Code::EvidenceRecordMismatch, message)
                    .severity(severity)
                    .case(row.case_id.clone())
            };
            let Some(record) = self
                .cases
                .get(&row.case_id)
                .and_then(|trail| trail.evidence_record.as_ref())
            else {
                found.push(finding(
                    Severity::High,
                    format!(
                        "the evidence record row of ticket {} names {}, which is not an evidence record: evidence held for the ticket would be added to that trail",
                        text::escape(&row.ticket),
                        text::escape(&row.case_id)
                    ),
                ));
                continue;
            };
            if row.ticket != record.ticket {
                found.push(finding(
                    Severity::High,
                    format!(
                        "the evidence record {} is stored for ticket {}, but its events hold evidence for {}",
                        row.case_id,
                        text::escape(&row.ticket),
                        text::escape(&record.ticket)
                    ),
                ));
            }
            if row.released_to != record.released_to {
                found.push(finding(
                    Severity::High,
                    format!(
                        "the evidence record {} (ticket {}) is stored as released to {}, but its events {}",
                        row.case_id,
                        text::escape(&row.ticket),
                        row.released_to
                            .as_deref()
                            .map_or_else(|| "no case".to_string(), |name| text::escape(name).into_owned()),
                        record.released_to.as_deref().map_or_else(
                            || "never release it".to_string(),
                            |case| format!("release it to {case}")
                        )
                    ),
                ));
            }
            if row.created_at != record.first_recorded_at.to_string() {
                // Versions before the writer wrote the event's time wrote
                // the time of the batch's commit, moments later; nothing
                // reads the column, so such a row is only noted.
                let older_writer = Timestamp::parse(&row.created_at).is_ok_and(|at| {
                    at > record.first_recorded_at
                        && at <= record.first_recorded_at.plus_seconds(OLDER_WRITER_SECONDS)
                });
                found.push(finding(
                    if older_writer {
                        Severity::Info
                    } else {
                        Severity::Medium
                    },
                    format!(
                        "the evidence record {} (ticket {}) is stored as made at {}, but its first event was recorded at {}{}",
                        row.case_id,
                        text::escape(&row.ticket),
                        text::escape(&row.created_at),
                        record.first_recorded_at,
                        if older_writer {
                            " (earlier versions wrote the time of the write's commit, moments later)"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
        let mut missing: Vec<(&String, &str)> = self
            .cases
            .iter()
            .filter_map(|(case_id, trail)| {
                trail
                    .evidence_record
                    .as_ref()
                    .map(|record| (case_id, record.ticket.as_str()))
            })
            .filter(|(case_id, _)| !rows_for.contains(case_id.as_str()))
            .collect();
        missing.sort();
        for (case_id, ticket) in missing {
            found.push(
                Finding::new(
                    Code::EvidenceRecordMismatch,
                    format!(
                        "the evidence record {case_id} holds evidence for ticket {} but has no evidence record row: the server would not find it, and a case carrying the ticket would not be given its evidence",
                        text::escape(ticket)
                    ),
                )
                .case(case_id.clone()),
            );
        }
        self.findings.extend(found);
    }

    /// Compares the `deployment` facts with the log (call after every
    /// event was observed): the policy and administration records' case
    /// IDs and when their first events were recorded, and `origin`, the
    /// origin the stored checkpoints are signed for (`None` when no stored
    /// checkpoint verifies, which other findings report).
    pub fn check_deployment_rows(&mut self, rows: &[StoredDeploymentRow], origin: Option<&str>) {
        let policy = self.policies.record.clone();
        let admin = self.admin.record.clone().zip(self.admin.record_opened_at);
        let mut found = Vec::new();
        let finding = |severity: Severity, message: String| {
            Finding::new(Code::DeploymentMismatch, message).severity(severity)
        };
        let mut seen = BTreeSet::new();
        for row in rows {
            if !seen.insert(row.key.as_str()) {
                continue;
            }
            let (what, expected) = match row.key.as_str() {
                POLICY_RECORD => ("policy record", policy.as_ref()),
                ADMIN_RECORD => ("administration record", admin.as_ref()),
                LOG_ORIGIN => {
                    // No event says when the origin was claimed (a server's
                    // first start, or an import): only a time that cannot be
                    // is reported.
                    if !possible_time(&row.created_at, self.now) {
                        found.push(finding(
                            Severity::Medium,
                            format!(
                                "the deployment's log origin is stored as claimed at {}, which is not a time before this audit",
                                text::escape(&row.created_at)
                            ),
                        ));
                    }
                    if let Some(origin) = origin {
                        if row.value != origin {
                            found.push(finding(
                                Severity::Critical,
                                format!(
                                    "the deployment's log origin is stored as {}, but its checkpoints are signed for {}: the server would sign for another log",
                                    text::escape(&row.value),
                                    text::escape(origin)
                                ),
                            ));
                        }
                    }
                    continue;
                }
                other => {
                    found.push(finding(
                        Severity::Critical,
                        format!(
                            "the deployment table holds a fact {} (= {}) the store never writes",
                            text::escape(other),
                            text::escape(&row.value)
                        ),
                    ));
                    continue;
                }
            };
            match expected {
                None => found.push(finding(
                    Severity::Critical,
                    format!(
                        "the deployment's {what} is stored as {}, but the log holds no {what}",
                        text::escape(&row.value)
                    ),
                )),
                Some((case_id, _)) if &row.value != case_id => found.push(
                    finding(
                        Severity::Critical,
                        format!(
                            "the deployment's {what} is stored as {}, but the log's {what} is {case_id}: the server would read and extend another trail as the {what}",
                            text::escape(&row.value)
                        ),
                    )
                    .case(case_id.clone()),
                ),
                Some((case_id, opened_at)) => {
                    if row.created_at != opened_at.to_string() {
                        found.push(
                            finding(
                                Severity::Medium,
                                format!(
                                    "the deployment's {what} is stored as set at {}, but its first event was recorded at {opened_at}",
                                    text::escape(&row.created_at)
                                ),
                            )
                            .case(case_id.clone()),
                        );
                    }
                }
            }
        }
        let expected: [(&str, &str, Option<&str>); 3] = [
            (
                POLICY_RECORD,
                "policy record",
                policy.as_ref().map(|(id, _)| id.as_str()),
            ),
            (
                ADMIN_RECORD,
                "administration record",
                admin.as_ref().map(|(id, _)| id.as_str()),
            ),
            (LOG_ORIGIN, "log origin", origin),
        ];
        for (key, what, value) in expected {
            if let (Some(value), false) = (value, seen.contains(key)) {
                found.push(finding(
                    Severity::Critical,
                    format!(
                        "the deployment table does not say the {what} is {}: the server would {}",
                        text::escape(value),
                        if key == LOG_ORIGIN {
                            "take the origin of whatever key it is given"
                        } else {
                            "open a second one"
                        }
                    ),
                ));
            }
        }
        self.findings.extend(found);
    }
}

/// How far ahead of the auditor's clock a server's may have been when it
/// wrote a time no event records.
const CLOCK_SKEW_SECONDS: i64 = 3600;

/// Whether `stored` is a time the store could have written by `now`: it
/// parses, and is not after `now` (give or take [`CLOCK_SKEW_SECONDS`]).
fn possible_time(stored: &str, now: Option<Timestamp>) -> bool {
    Timestamp::parse(stored)
        .is_ok_and(|at| now.is_none_or(|now| at <= now.plus_seconds(CLOCK_SKEW_SECONDS)))
}

impl Auditor {
    /// Checks the stored checkpoints' `created_at` (size and time): the
    /// signing time is not in the signed note, so only a time that cannot
    /// be is reported (one that does not parse, or is after the audit).
    pub fn check_checkpoint_times(&mut self, rows: &[(u64, String)]) {
        for (size, created_at) in rows {
            if !possible_time(created_at, self.now) {
                self.findings.push(
                    Finding::new(
                        Code::CheckpointRowMismatch,
                        format!(
                            "the checkpoint of size {size} is stored as signed at {}, which is not a time before this audit",
                            text::escape(created_at)
                        ),
                    )
                    .severity(Severity::Medium),
                );
            }
        }
    }
}

/// What differs between a stored `cases` row and the row of the rebuilt
/// view ([`CaseRow::of`], the writer's own).
fn case_row_findings(row: &StoredCaseRow, view: &CaseView) -> Vec<Finding> {
    let rebuilt = CaseRow::of(view);
    // (column, stored, rebuilt, whether the server acts on it)
    let none = || "none".to_string();
    let columns = [
        (
            "change_key",
            row.change_key.clone(),
            rebuilt.change_key,
            true,
        ),
        (
            "ticket",
            row.ticket.clone().unwrap_or_else(none),
            rebuilt.ticket.unwrap_or_else(none),
            true,
        ),
        (
            "next_deadline",
            row.next_deadline.clone().unwrap_or_else(none),
            rebuilt.next_deadline.unwrap_or_else(none),
            true,
        ),
        ("summary", row.summary.clone(), rebuilt.summary, false),
        ("requester", row.requester.clone(), rebuilt.requester, false),
        ("opened_at", row.opened_at.clone(), rebuilt.opened_at, false),
        (
            "updated_at",
            row.updated_at.clone(),
            rebuilt.updated_at,
            false,
        ),
    ];
    let mut found = Vec::new();
    for (column, stored, rebuilt, acted_on) in columns {
        if stored != rebuilt {
            found.push(
                Finding::new(
                    Code::CaseProjectionMismatch,
                    format!(
                        "case {} is stored with {column} {}, but its events rebuild it with {}",
                        row.case_id,
                        text::escape(&stored),
                        text::escape(&rebuilt)
                    ),
                )
                .severity(if acted_on {
                    Severity::High
                } else {
                    Severity::Medium
                })
                .case(row.case_id.clone()),
            );
        }
    }
    // The writer stores `serde_json::to_vec` of the view: the same bytes
    // are the same view, and the comparison below is only for the others.
    let same_bytes = serde_json::to_vec(view).is_ok_and(|bytes| bytes == row.view);
    let differs = if same_bytes {
        None
    } else {
        match serde_json::from_slice::<CaseView>(&row.view) {
            Err(error) => Some(format!("does not decode ({error})")),
            Ok(stored) => {
                // Decoding ignores what the view does not know (a key
                // renamed by a flipped bit, say) and fills fields a view
                // written by an older version lacks: the stored JSON must
                // also hold nothing but what the rebuilt view holds.
                let stored_json = serde_json::from_slice(&row.view).unwrap_or_default();
                let fields = differing_fields(&stored, &stored_json, view);
                (stored != *view || !fields.is_empty()).then(|| {
                    if fields.is_empty() {
                        "differs".to_string()
                    } else {
                        format!("differs in {}", fields.join(", "))
                    }
                })
            }
        }
    };
    if let Some(differs) = differs {
        found.push(
            Finding::new(
                Code::CaseProjectionMismatch,
                format!(
                    "case {} is stored with a view that {differs} from what its events rebuild: the server reads the case as the stored view says",
                    row.case_id
                ),
            )
            .severity(Severity::High)
            .case(row.case_id.clone()),
        );
    }
    found
}

/// The top-level fields in which a stored view (decoded, and as stored)
/// differs from the rebuilt one, by name.
fn differing_fields(
    stored: &CaseView,
    stored_json: &serde_json::Value,
    rebuilt: &CaseView,
) -> Vec<String> {
    let (Ok(serde_json::Value::Object(decoded)), Ok(serde_json::Value::Object(rebuilt))) =
        (serde_json::to_value(stored), serde_json::to_value(rebuilt))
    else {
        return vec!["its fields".to_string()];
    };
    let empty = serde_json::Map::new();
    let stored_json = stored_json.as_object().unwrap_or(&empty);
    let names: BTreeSet<&String> = decoded
        .keys()
        .chain(rebuilt.keys())
        .chain(stored_json.keys())
        .collect();
    names
        .into_iter()
        .filter(|name| {
            decoded.get(*name) != rebuilt.get(*name)
                || stored_json.get(*name).is_some_and(|stored| {
                    rebuilt
                        .get(*name)
                        .is_none_or(|rebuilt| !covered(stored, rebuilt))
                })
        })
        .map(|name| format!("`{}`", text::escape(name)))
        .collect()
}

/// Whether everything `stored` holds is in `rebuilt` as it is there (keys
/// `stored` lacks are left to the decoded comparison: an older version's
/// view lacks the fields added since).
fn covered(stored: &serde_json::Value, rebuilt: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (stored, rebuilt) {
        (Value::Object(stored), Value::Object(rebuilt)) => stored.iter().all(|(key, value)| {
            rebuilt
                .get(key)
                .is_some_and(|rebuilt| covered(value, rebuilt))
        }),
        (Value::Array(stored), Value::Array(rebuilt)) => {
            stored.len() == rebuilt.len()
                && stored
                    .iter()
                    .zip(rebuilt)
                    .all(|(stored, rebuilt)| covered(stored, rebuilt))
        }
        _ => stored == rebuilt,
    }
}

#[cfg(test)]
mod tests {
    use super::covered;
    use serde_json::json;

    #[test]
    fn a_stored_view_may_lack_fields_but_hold_nothing_else() {
        let rebuilt =
            json!({"state": "open", "approvals": [{"by": "bob", "seq": 2}], "drill": false});
        // An older version's view, without a field added since.
        assert!(covered(
            &json!({"state": "open", "approvals": [{"by": "bob", "seq": 2}]}),
            &rebuilt
        ));
        // A key renamed (decoding would ignore it), at the top or inside.
        assert!(!covered(
            &json!({"state": "open", "approvals": [{"by": "bob", "seq": 2}], "drilm": false}),
            &rebuilt
        ));
        assert!(!covered(
            &json!({"state": "open", "approvals": [{"bx": "bob", "seq": 2}], "drill": false}),
            &rebuilt
        ));
        // A value changed, an element added.
        assert!(!covered(&json!({"state": "opeo"}), &rebuilt));
        assert!(!covered(
            &json!({"approvals": [{"by": "bob", "seq": 2}, {"by": "eve", "seq": 3}]}),
            &rebuilt
        ));
    }
}
