//! Every code in `docs/findings.md` is produced by a test that asserts it,
//! every code the sources use is in the one table of codes
//! (`custody_core::code::Code`), and the table and the doc say the same.
//!
//! [`COVERAGE`] lists every documented code with what produces it:
//!
//! - [`Producer::Fixture`]: a tampered or rule-breaking trail built here and
//!   fed to the real [`Auditor`], or a write-time rule called directly.
//!   [`every_fixture_produces_exactly_its_code`] asserts that an audit holds
//!   the code exactly once, about the case, sequence number and log index the
//!   fixture names, and no other code than the ones it names besides; that
//!   every finding has a severity the table gives its code; that a refusal
//!   carries the code and that the table says how the API answers it; that
//!   an escalation is recorded under it.
//! - [`Producer::Test`]: a test elsewhere (an e2e test through the real binary
//!   and store, or a store test) that produces the code. The row names the
//!   file and the function holding the assertion;
//!   [`named_tests_assert_their_codes`] checks that the function exists, that
//!   it is a `#[test]` or is called from one in the same file, and that its
//!   code (comments removed) holds the code as a string literal.
//!
//! [`documented_codes_are_exactly_the_covered_codes`] parses the tables of
//! `docs/findings.md` and fails when a documented code has no row here or a
//! row names a code the doc does not have.
//! [`the_table_of_codes_is_the_doc`] fails when a code of the table is not
//! documented, a documented code is not in the table, a row of the doc is
//! not the table's row ([`Code::doc`]), or the severities the doc names are
//! not the table's ([`Code::severities`]).
//! [`the_sources_name_codes_only_through_the_table`] scans the sources
//! (`src/` and `crates/*/src/`, `#[cfg(test)]` items and comments excluded):
//! no string literal shaped like a code (`family.some-code`) may appear
//! outside the table (`crates/custody-core/src/code.rs`), and every code of
//! the table must be named (`Code::Variant`) somewhere else, so the table
//! holds no code nothing emits. A literal counts as a code when its family
//! is the family of a documented code, or when it stands where codes used to
//! be passed ([`CODE_CONTEXTS`]: after `code:`, `rule:`, `Refusal::new(`,
//! `with_rule(`, `"rule":`, `finding(`...), so a code of a new family
//! spelled as a string is caught too.
//!
//! # Adding a code
//!
//! 1. Add it to the table in `crates/custody-core/src/code.rs`: its variant,
//!    the code, its severities as a finding, how the API answers a refusal
//!    under it, and its row of the doc.
//! 2. Document it in `docs/findings.md`: the same row, starting `` | `family.code` | ``.
//! 3. Add a row to [`COVERAGE`], in the section of the doc it belongs to.
//!    Prefer a [`Producer::Fixture`]: write a `fn` returning an [`Outcome`]
//!    (see the fixtures below for the [`Trail`] builder: append drafts, forge
//!    events with any placement, edit the stored rows, the case heads or the
//!    log's checkpoints, then audit). Name where the finding must point with
//!    [`At`] and list in `also` any other code the same tampering necessarily
//!    produces. When only the store, the server or the CLI produce the code,
//!    name the e2e test that asserts it with [`Producer::Test`].
//! 4. If the source holds a literal shaped like a code that is not one (a
//!    configuration key, a file name), add it to [`NOT_CODES`] with a reason.
//!
//! A fixture for a finding, for example:
//!
//! ```ignore
//! ("chain.prev-hash-mismatch", Fixture(chain_prev_hash_mismatch)),
//!
//! fn chain_prev_hash_mismatch() -> Outcome {
//!     let mut trail = Trail::default();
//!     let case = trail.append(None, human("alice"), request_draft("admin"));
//!     let bad = Some(Sha256Hash::of(b"another event"));
//!     trail.forge(&case, 2, bad, human("bob"), comment_draft("forged"), None);
//!     audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
//! }
//! ```
//!
//! A refusal returns `Outcome::Refused(refusal)` (see [`refused`]); a reason
//! the ledger records an escalation or obligation under returns
//! `Outcome::Recorded(reasons)`.
//!
//! Merging two branches that both add codes: keep both sets of rows.

#![allow(clippy::unwrap_used, clippy::cast_possible_wrap)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use custody_core::audit::{
    Auditor, LogAudit, Report, StoredCaseHead, StoredCheckpointRow, StoredEvent,
};
use custody_core::case::CaseView;
use custody_core::event::{
    Attempt, CaseLink, Comment, Decision, DeliveryOutcome, EventBody, Evidence, HeldEvidence,
};
use custody_core::lifecycle::{self, Draft, Placement, Refusal};
use custody_core::model::{Actor, AuthContext, Change, ChangeKind, PrincipalKind, Role, Via};
use custody_core::policy::AppliedRule;
use custody_core::{CaseId, Code, Event, Sha256Hash, Timestamp};
use custody_log::{leaf_hash, root_from_leaf_hashes, Checkpoint, SignerKey};

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

/// What produces a documented code.
#[derive(Clone, Copy)]
enum Producer {
    /// A fixture in this file.
    Fixture(fn() -> Outcome),
    /// The function `holder` in `file` (relative to the workspace root)
    /// asserts the code.
    Test {
        file: &'static str,
        holder: &'static str,
    },
}

use Producer::{Fixture, Test};

/// Every documented code and what produces it, in the doc's order.
const COVERAGE: &[(&str, Producer)] = &[
    // Integrity of the stored trail.
    ("log.index-gap", Fixture(log_index_gap)),
    ("log.index-duplicate", Fixture(log_index_duplicate)),
    ("event.malformed", Fixture(event_malformed)),
    ("event.not-canonical", Fixture(event_not_canonical)),
    ("event.index-mismatch", Fixture(event_index_mismatch)),
    (
        "event.external-id-repeated",
        Fixture(event_external_id_repeated),
    ),
    ("chain.missing-start", Fixture(chain_missing_start)),
    ("chain.seq-gap", Fixture(chain_seq_gap)),
    ("chain.out-of-order", Fixture(chain_out_of_order)),
    (
        "chain.prev-hash-mismatch",
        Fixture(chain_prev_hash_mismatch),
    ),
    ("chain.head-mismatch", Fixture(chain_head_mismatch)),
    ("case.events-missing", Fixture(case_events_missing)),
    ("case.missing-head", Fixture(case_missing_head)),
    ("case.no-request", Fixture(case_no_request)),
    ("case.second-request", Fixture(case_second_request)),
    (
        "case.projection-mismatch",
        Fixture(case_projection_mismatch),
    ),
    (
        "deployment.mismatch",
        Test {
            file: "crates/custody-bench/tests/tamper.rs",
            holder: "the_deployment_facts_are_compared_with_the_log",
        },
    ),
    // The Merkle log and its checkpoints.
    ("log.leaf-mismatch", Fixture(log_leaf_mismatch)),
    ("log.leaf-missing", Fixture(log_leaf_missing)),
    ("log.leaf-without-event", Fixture(log_leaf_without_event)),
    (
        "log.node-mismatch",
        Test {
            file: "tests/e2e/log_tamper.rs",
            holder: "verify_names_an_altered_moved_or_missing_interior_merkle_node",
        },
    ),
    (
        "checkpoint.bad-signature",
        Fixture(checkpoint_bad_signature),
    ),
    ("checkpoint.row-mismatch", Fixture(checkpoint_row_mismatch)),
    (
        "checkpoint.root-mismatch",
        Fixture(checkpoint_root_mismatch),
    ),
    ("checkpoint.beyond-log", Fixture(checkpoint_beyond_log)),
    (
        "log.no-checkpoint",
        Test {
            file: "tests/e2e/log_tamper.rs",
            holder: "verify_fails_a_consistent_rewrite_whose_stored_checkpoints_were_deleted",
        },
    ),
    (
        "log.uncovered-tail",
        Test {
            file: "tests/e2e/checkpoints.rs",
            holder: "entries_left_uncovered_longer_than_three_checkpoint_intervals_fail_verify",
        },
    ),
    ("witness.no-quorum", Fixture(witness_no_quorum)),
    (
        "witness.uncovered-tail",
        Test {
            file: "tests/e2e/witness.rs",
            holder: "a_witness_that_is_down_delays_cosigning_but_loses_nothing",
        },
    ),
    ("witness.bad-cosignature", Fixture(witness_bad_cosignature)),
    (
        "checkpoint.none-outside",
        Test {
            file: "tests/e2e/log_tamper.rs",
            holder: "verify_fails_a_consistent_rewrite_whose_stored_checkpoints_were_deleted",
        },
    ),
    (
        "checkpoint.missing-from-database",
        Test {
            file: "tests/e2e/log_tamper.rs",
            holder: "verify_fails_when_the_newest_events_are_deleted_with_their_checkpoint",
        },
    ),
    (
        "checkpoint.outside-torn",
        Test {
            file: "tests/e2e/log_tamper.rs",
            holder: "verify_fails_when_the_newest_events_are_deleted_with_their_checkpoint",
        },
    ),
    (
        "checkpoint.outside-malformed",
        Test {
            file: "tests/e2e/log_tamper.rs",
            holder: "verify_fails_when_the_newest_events_are_deleted_with_their_checkpoint",
        },
    ),
    // The administration record and vendor actions against their grants
    // (tested with the record's own builder in admin_record.rs).
    (
        "admin.grant-mismatch",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "stored_principals_tokens_and_grants_must_be_the_records",
        },
    ),
    (
        "admin.grant-unrecorded",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "stored_principals_tokens_and_grants_must_be_the_records",
        },
    ),
    (
        "admin.not-admin",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "an_admin_act_by_someone_who_was_not_an_admin_is_named",
        },
    ),
    (
        "admin.principal-mismatch",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "stored_principals_tokens_and_grants_must_be_the_records",
        },
    ),
    (
        "admin.principal-unrecorded",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "stored_principals_tokens_and_grants_must_be_the_records",
        },
    ),
    (
        "admin.record-invalid",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "a_second_revocation_or_an_unknown_token_is_an_invalid_record",
        },
    ),
    (
        "admin.record-misplaced",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "administration_events_outside_the_record_are_misplaced",
        },
    ),
    (
        "admin.token-mismatch",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "stored_principals_tokens_and_grants_must_be_the_records",
        },
    ),
    (
        "admin.token-unrecorded",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "stored_principals_tokens_and_grants_must_be_the_records",
        },
    ),
    (
        "admin.identity-unrecorded",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "stored_mappings_of_outside_users_must_be_the_records",
        },
    ),
    (
        "admin.identity-mismatch",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "stored_mappings_of_outside_users_must_be_the_records",
        },
    ),
    (
        "admin.unrecorded-legacy",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "a_store_without_a_record_is_reported_as_legacy_not_as_tampered",
        },
    ),
    (
        "delegation.grant-expired",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "vendor_actions_outside_their_grant_are_named_by_what_is_wrong",
        },
    ),
    (
        "delegation.grant-mismatch",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "vendor_actions_outside_their_grant_are_named_by_what_is_wrong",
        },
    ),
    (
        "delegation.grant-out-of-scope",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "vendor_actions_outside_their_grant_are_named_by_what_is_wrong",
        },
    ),
    (
        "delegation.grant-revoked",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "a_vendor_action_recorded_after_its_grant_was_revoked_is_named",
        },
    ),
    (
        "delegation.grant-unrecorded",
        Test {
            file: "crates/custody-core/tests/admin_record.rs",
            holder: "vendor_actions_outside_their_grant_are_named_by_what_is_wrong",
        },
    ),
    ("since.bad-signature", Fixture(since_bad_signature)),
    ("since.not-extended", Fixture(since_not_extended)),
    ("since.beyond-log", Fixture(since_beyond_log)),
    // Lifecycle and separation of duties.
    (
        "sod.requester-cannot-approve",
        Fixture(sod_requester_cannot_approve),
    ),
    (
        "sod.requester-cannot-deny",
        Fixture(sod_requester_cannot_deny),
    ),
    (
        "sod.executor-sole-approver",
        Fixture(sod_executor_sole_approver),
    ),
    (
        "sod.reviewer-is-requester",
        Fixture(sod_reviewer_is_requester),
    ),
    (
        "sod.reviewer-is-executor",
        Fixture(sod_reviewer_is_executor),
    ),
    (
        "lifecycle.execution-without-approval",
        Fixture(lifecycle_execution_without_approval),
    ),
    (
        "lifecycle.approved-after-execution",
        Fixture(lifecycle_approved_after_execution),
    ),
    (
        "lifecycle.approval-not-recorded",
        Fixture(lifecycle_approval_not_recorded),
    ),
    ("lifecycle.not-open", Fixture(lifecycle_not_open)),
    (
        "approval.change-mismatch",
        Fixture(approval_change_mismatch),
    ),
    ("lifecycle.not-approved", Fixture(lifecycle_not_approved)),
    ("lifecycle.not-executed", Fixture(lifecycle_not_executed)),
    ("lifecycle.case-denied", Fixture(lifecycle_case_denied)),
    (
        "lifecycle.already-executed",
        Fixture(lifecycle_already_executed),
    ),
    (
        "lifecycle.already-reviewed",
        Fixture(lifecycle_already_reviewed),
    ),
    (
        "approval.already-approved",
        Fixture(approval_already_approved),
    ),
    (
        "policy.approver-not-in-group",
        Fixture(policy_approver_not_in_group),
    ),
    (
        "policy.approver-not-in-stage",
        Fixture(policy_approver_not_in_stage),
    ),
    ("policy.unrecorded", Fixture(policy_unrecorded)),
    ("policy.record-forged", Fixture(policy_record_forged)),
    ("policy.record-mismatch", Fixture(policy_record_mismatch)),
    ("policy.record-broken", Fixture(policy_record_broken)),
    (
        "evidence.blob-missing",
        Test {
            file: "tests/e2e/evidence.rs",
            holder: "uploads_and_tampering",
        },
    ),
    (
        "evidence.blob-altered",
        Test {
            file: "tests/e2e/evidence.rs",
            holder: "uploads_and_tampering",
        },
    ),
    (
        "evidence.blob-unreferenced",
        Test {
            file: "tests/e2e/evidence.rs",
            holder: "uploads_and_tampering",
        },
    ),
    (
        "evidence.link-unverified",
        Fixture(evidence_link_unverified),
    ),
    ("evidence.link-drifted", Fixture(evidence_link_drifted)),
    ("evidence.unattached", Fixture(evidence_unattached)),
    ("evidence.unmatched-link", Fixture(evidence_unmatched_link)),
    (
        "evidence.record-misplaced",
        Fixture(evidence_record_misplaced),
    ),
    (
        "evidence.record-mismatch",
        Test {
            file: "crates/custody-bench/tests/tamper.rs",
            holder: "the_evidence_record_rows_are_compared_with_their_events",
        },
    ),
    (
        "evidence.too-large",
        Test {
            file: "tests/e2e/evidence.rs",
            holder: "over_the_limit",
        },
    ),
    (
        "evidence.address-refused",
        Test {
            file: "tests/e2e/evidence.rs",
            holder: "every_private_address_class_is_refused_and_nothing_is_recorded",
        },
    ),
    (
        "evidence.invalid-url",
        Test {
            file: "tests/e2e/findings.rs",
            holder: "a_link_that_is_not_a_url_is_refused_as_evidence_invalid_url",
        },
    ),
    (
        "evidence.hash-mismatch",
        Test {
            file: "tests/e2e/evidence.rs",
            holder: "uploads_and_tampering",
        },
    ),
    ("notify.undelivered", Fixture(notify_undelivered)),
    (
        "notify.reviewer-not-notified",
        Fixture(notify_reviewer_not_notified),
    ),
    (
        "notify.already-delivered",
        Test {
            file: "tests/e2e/notify_channels.rs",
            holder: "jetstream",
        },
    ),
    ("policy.record-misplaced", Fixture(policy_record_misplaced)),
    ("sod.approver-same-org", Fixture(sod_approver_same_org)),
    (
        "policy.executor-not-allowed",
        Fixture(policy_executor_not_allowed),
    ),
    (
        "policy.break-glass-not-allowed",
        Fixture(policy_break_glass_not_allowed),
    ),
    (
        "break-glass.review-overdue",
        Fixture(break_glass_review_overdue),
    ),
    (
        "approval.unconfirmed-attestation",
        Fixture(approval_unconfirmed_attestation),
    ),
    ("connector.ticket-drift", Fixture(connector_ticket_drift)),
    ("change.unsanctioned", Fixture(change_unsanctioned)),
    (
        "change.unsanctioned-misplaced",
        Fixture(change_unsanctioned_misplaced),
    ),
    (
        "drift.wider-than-approved",
        Fixture(drift_wider_than_approved),
    ),
    (
        "drift.access-after-revocation",
        Fixture(drift_access_after_revocation),
    ),
    ("drift.before-approval", Fixture(drift_before_approval)),
    ("drift.actor-mismatch", Fixture(drift_actor_mismatch)),
    (
        "drift.nhi-credential-unsanctioned",
        Fixture(drift_nhi_credential_unsanctioned),
    ),
    ("ticket.already-linked", Fixture(ticket_already_linked)),
    (
        "sod.requester-cannot-attest",
        Fixture(sod_requester_cannot_attest),
    ),
    (
        "approval.nothing-to-confirm",
        Fixture(approval_nothing_to_confirm),
    ),
    ("approval.overdue", Fixture(approval_overdue)),
    ("delegation.missing", Fixture(delegation_missing)),
    (
        "delegation.none",
        Test {
            file: "crates/custody-core/tests/lifecycle_scenarios.rs",
            holder: "vendor_actions_without_a_grant_are_findings_and_grants_bound_scope_and_time",
        },
    ),
    (
        "delegation.out-of-scope",
        Test {
            file: "crates/custody-core/tests/lifecycle_scenarios.rs",
            holder: "vendor_actions_without_a_grant_are_findings_and_grants_bound_scope_and_time",
        },
    ),
    (
        "delegation.expired",
        Test {
            file: "crates/custody-core/tests/lifecycle_scenarios.rs",
            holder: "vendor_actions_without_a_grant_are_findings_and_grants_bound_scope_and_time",
        },
    ),
    ("review.change-mismatch", Fixture(review_change_mismatch)),
    (
        "revocation.unmatched-link",
        Fixture(revocation_unmatched_link),
    ),
    ("review.overdue", Fixture(review_overdue)),
    (
        "expiry.revocation-overdue",
        Fixture(expiry_revocation_overdue),
    ),
    ("expiry.revocation-due", Fixture(expiry_revocation_due)),
    ("expiry.notice", Fixture(expiry_notice)),
    (
        "lifecycle.not-time-bound",
        Fixture(lifecycle_not_time_bound),
    ),
    (
        "lifecycle.already-revoked",
        Fixture(lifecycle_already_revoked),
    ),
    (
        "policy.duration-required",
        Fixture(policy_duration_required),
    ),
    (
        "policy.duration-too-long",
        Fixture(policy_duration_too_long),
    ),
    ("lifecycle.case-merged", Fixture(lifecycle_case_merged)),
    ("merge.same-case", Fixture(merge_same_case)),
    (
        "merge.duplicate-executed",
        Fixture(merge_duplicate_executed),
    ),
    ("merge.unmatched-link", Fixture(merge_unmatched_link)),
    ("merge.not-allowed", Fixture(merge_not_allowed)),
    (
        "lifecycle.break-glass-misplaced",
        Fixture(lifecycle_break_glass_misplaced),
    ),
    (
        "lifecycle.system-event-forged",
        Fixture(lifecycle_system_event_forged),
    ),
    ("notify.dead-letter", Fixture(notify_dead_letter)),
    // Auditor bundles.
    (
        "bundle.malformed",
        Test {
            file: "tests/e2e/bundle.rs",
            holder: "a_tampered_bundle_fails_naming_what_broke",
        },
    ),
    (
        "bundle.digest-mismatch",
        Test {
            file: "tests/e2e/bundle.rs",
            holder: "a_tampered_bundle_fails_naming_what_broke",
        },
    ),
    (
        "bundle.truncated",
        Test {
            file: "tests/e2e/bundle.rs",
            holder: "a_tampered_bundle_fails_naming_what_broke",
        },
    ),
    (
        "bundle.inclusion-invalid",
        Test {
            file: "tests/e2e/bundle.rs",
            holder: "case_and_range_bundles_verify_and_say_what_they_cannot_prove",
        },
    ),
    (
        "bundle.consistency-invalid",
        Test {
            file: "tests/e2e/bundle.rs",
            holder: "case_and_range_bundles_verify_and_say_what_they_cannot_prove",
        },
    ),
    (
        "bundle.out-of-order",
        Test {
            file: "tests/e2e/bundle.rs",
            holder: "a_tampered_bundle_fails_naming_what_broke",
        },
    ),
    (
        "bundle.outside-scope",
        Test {
            file: "tests/e2e/bundle.rs",
            holder: "case_and_range_bundles_verify_and_say_what_they_cannot_prove",
        },
    ),
    (
        "bundle.evidence-unlisted",
        Test {
            file: "tests/e2e/bundle.rs",
            holder: "a_tampered_bundle_fails_naming_what_broke",
        },
    ),
    (
        "bundle.token-unrecorded",
        Test {
            file: "tests/e2e/bundle.rs",
            holder: "tampered_token_and_idempotency_lines_fail_naming_what_broke",
        },
    ),
    (
        "bundle.token-mismatch",
        Test {
            file: "tests/e2e/bundle.rs",
            holder: "tampered_token_and_idempotency_lines_fail_naming_what_broke",
        },
    ),
    (
        "bundle.idempotency-unrecorded",
        Test {
            file: "tests/e2e/bundle.rs",
            holder: "tampered_token_and_idempotency_lines_fail_naming_what_broke",
        },
    ),
    (
        "bundle.keys-untrusted",
        Test {
            file: "tests/e2e/bundle.rs",
            holder: "a_whole_log_bundle_verifies_and_rebuilds_a_store_on_both_backends",
        },
    ),
    (
        "bundle.partial",
        Test {
            file: "tests/e2e/bundle.rs",
            holder: "case_and_range_bundles_verify_and_say_what_they_cannot_prove",
        },
    ),
    // Writes.
    (
        "ticket.connector-owned",
        Test {
            file: "tests/e2e/connectors/jira.rs",
            holder: "an_issue_carrying_a_case_id_is_linked_to_that_case_and_written_back",
        },
    ),
    (
        "idempotency.key-reused",
        Test {
            file: "tests/e2e/lifecycle.rs",
            holder: "idempotency_ticket_dedupe_and_duplicate_open",
        },
    ),
    (
        "case.duplicate-open",
        Test {
            file: "tests/e2e/lifecycle.rs",
            holder: "idempotency_ticket_dedupe_and_duplicate_open",
        },
    ),
    (
        "drill.not-allowed",
        Test {
            file: "tests/e2e/drill.rs",
            holder: "a_member_outside_drills_cannot_open_a_drill_case",
        },
    ),
    (
        "oidc.identity-mismatch",
        Test {
            file: "tests/e2e/oidc.rs",
            holder: "oidc_on",
        },
    ),
    (
        "principal.exists",
        Test {
            file: "tests/e2e/findings.rs",
            holder: "adding_a_principal_twice_is_refused_as_principal_exists",
        },
    ),
    (
        "admin.last-admin",
        Test {
            file: "tests/e2e/admin_record.rs",
            holder: "the_last_admin_cannot_be_taken_out_of_admins",
        },
    ),
];

/// String literals in the sources shaped like codes that are not codes.
const NOT_CODES: &[(&str, &str)] = &[
    (
        "notify.routes",
        "the configuration key named in a routing error",
    ),
    ("evidence.bin", "a file name in the benchmark"),
    ("log.rs", "a module path in the store"),
    ("witness.key", "the file holding a witness's private key"),
];

// ---------------------------------------------------------------------------
// What a fixture yields
// ---------------------------------------------------------------------------

/// What a fixture produced.
enum Outcome {
    /// An audit: the code must be in it once, at `at`, beside `also` only.
    Audit {
        // Boxed: a report (with its statistics) is much larger than the
        // other variants.
        report: Box<Report>,
        at: At,
        also: Vec<&'static str>,
    },
    /// A write-time refusal: it must carry the code.
    Refused(Refusal),
    /// Reasons the ledger records escalations (or obligations) under.
    Recorded(Vec<String>),
}

/// Where a finding must point.
#[derive(Debug, PartialEq, Eq)]
struct At {
    case_id: Option<String>,
    seq: Option<u64>,
    log_index: Option<u64>,
}

fn at(case: Option<&CaseId>, seq: Option<u64>, log_index: Option<u64>) -> At {
    At {
        case_id: case.map(ToString::to_string),
        seq,
        log_index,
    }
}

fn audit(report: Report, at: At) -> Outcome {
    Outcome::Audit {
        report: Box::new(report),
        at,
        also: Vec::new(),
    }
}

fn audit_also(report: Report, at: At, also: &[&'static str]) -> Outcome {
    Outcome::Audit {
        report: Box::new(report),
        at,
        also: also.to_vec(),
    }
}

// ---------------------------------------------------------------------------
// The trail builder
// ---------------------------------------------------------------------------

const T0: i64 = 1_800_000_000_000_000;

fn time(seconds: i64) -> Timestamp {
    Timestamp::from_micros(T0 + seconds * 1_000_000)
}

fn human(name: &str) -> Actor {
    Actor {
        principal: name.parse().unwrap(),
        kind: PrincipalKind::Human,
        org: None,
        groups: Vec::new(),
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Cli,
        auth: AuthContext::Token {
            token_id: format!("tok_{name}"),
        },
    }
}

fn rule() -> AppliedRule {
    AppliedRule::default_rule(Sha256Hash::of(b"the policy"))
}

fn change(entitlement: &str) -> Change {
    timed_change(entitlement, None)
}

fn timed_change(entitlement: &str, duration_seconds: Option<u64>) -> Change {
    Change::new(
        "user:ann".parse().unwrap(),
        ChangeKind::Grant,
        entitlement.to_string(),
        None,
        duration_seconds,
    )
    .unwrap()
}

fn request_draft(entitlement: &str) -> Draft {
    lifecycle::request(change(entitlement), None, None, &rule()).unwrap()
}

fn comment_draft(text: &str) -> Draft {
    Draft {
        body: EventBody::CommentAdded(Comment {
            text: text.to_string(),
        }),
        role: Role::Observer,
        causation: None,
    }
}

/// The events of a log as the store writes them: sealed, chained, canonical,
/// one second apart. Rows, heads and checkpoints are derived from them and
/// may be edited before the audit.
#[derive(Default)]
struct Trail {
    events: Vec<Event>,
}

impl Trail {
    /// Appends `draft` to `case` (a new case when `None`) as the store would.
    fn append(&mut self, case: Option<&CaseId>, actor: Actor, draft: Draft) -> CaseId {
        self.append_occurred(case, actor, draft, None)
    }

    fn append_occurred(
        &mut self,
        case: Option<&CaseId>,
        actor: Actor,
        draft: Draft,
        occurred_at: Option<Timestamp>,
    ) -> CaseId {
        let previous = case.and_then(|case| {
            self.events
                .iter()
                .rev()
                .find(|event| &event.case_id == case)
        });
        let (case_id, seq, prev_hash) = match previous {
            Some(event) => (event.case_id.clone(), event.seq + 1, Some(event.hash())),
            None => (case.cloned().unwrap_or_else(CaseId::generate), 1, None),
        };
        self.forge(&case_id, seq, prev_hash, actor, draft, occurred_at);
        case_id
    }

    /// Appends an event with any placement, as a forger with database access could.
    fn forge(
        &mut self,
        case: &CaseId,
        seq: u64,
        prev_hash: Option<Sha256Hash>,
        actor: Actor,
        draft: Draft,
        occurred_at: Option<Timestamp>,
    ) {
        let event = draft.seal(
            actor,
            Placement {
                case_id: case.clone(),
                seq,
                prev_hash,
                recorded_at: time(self.events.len() as i64),
                occurred_at,
                idempotency_key: None,
                origin: None,
            },
        );
        self.events
            .push(Event::decode(&event.canonical_bytes()).expect("sealed events decode"));
    }

    fn view(&self, case: &CaseId) -> CaseView {
        CaseView::replay(self.events.iter().filter(|event| &event.case_id == case)).unwrap()
    }

    fn last(&self, case: &CaseId) -> &Event {
        self.events
            .iter()
            .rev()
            .find(|event| &event.case_id == case)
            .unwrap()
    }

    /// The stored rows, with their Merkle leaves.
    fn rows(&self) -> Vec<StoredEvent> {
        self.events
            .iter()
            .enumerate()
            .map(|(index, event)| {
                let bytes = event.canonical_bytes();
                StoredEvent {
                    log_index: index as u64,
                    case_id: event.case_id.to_string(),
                    seq: event.seq as i64,
                    stored_leaf: Some(leaf_hash(&bytes).to_vec()),
                    bytes,
                }
            })
            .collect()
    }

    /// The case rows the store writes beside the events: one per case that
    /// is not a record (the policy record, an evidence record), at its last
    /// event.
    fn heads(&self) -> Vec<StoredCaseHead> {
        let mut firsts: Vec<&Event> = Vec::new();
        for event in &self.events {
            if !firsts.iter().any(|first| first.case_id == event.case_id) {
                firsts.push(event);
            }
        }
        firsts
            .into_iter()
            .filter(|first| {
                !matches!(
                    first.body,
                    EventBody::PolicyAdopted(_) | EventBody::EvidenceHeld(_)
                )
            })
            .map(|first| {
                let last = self.last(&first.case_id);
                let state = CaseView::replay(
                    self.events
                        .iter()
                        .filter(|event| event.case_id == first.case_id),
                )
                .map(|view| view.state.as_str().to_string())
                .unwrap_or_else(|| "open".to_string());
                StoredCaseHead {
                    drill: false,
                    case_id: first.case_id.to_string(),
                    head_seq: last.seq as i64,
                    head_hash: last.hash().to_hex(),
                    state,
                }
            })
            .collect()
    }

    fn audit(&self) -> Report {
        run(&self.rows(), self.heads(), Auditor::new())
    }

    fn audit_at(&self, now: Timestamp) -> Report {
        run(&self.rows(), self.heads(), Auditor::new().at(now))
    }
}

fn run(rows: &[StoredEvent], heads: Vec<StoredCaseHead>, mut auditor: Auditor) -> Report {
    for row in rows {
        auditor.observe_event(row);
    }
    auditor.finish(heads)
}

/// Three cases, interleaved: request A, request B, comment on A, request C.
fn three_cases() -> (Trail, CaseId, CaseId, CaseId) {
    let mut trail = Trail::default();
    let a = trail.append(None, human("alice"), request_draft("admin"));
    let b = trail.append(None, human("alice"), request_draft("reader"));
    trail.append(Some(&a), human("bob"), comment_draft("looks fine"));
    let c = trail.append(None, human("carol"), request_draft("writer"));
    (trail, a, b, c)
}

// ---------------------------------------------------------------------------
// The Merkle log: a key, leaves, signed checkpoints
// ---------------------------------------------------------------------------

fn log_key() -> SignerKey {
    SignerKey::from_seed("custody-test-log", &[7; 32]).unwrap()
}

fn other_key() -> SignerKey {
    SignerKey::from_seed("custody-test-log", &[8; 32]).unwrap()
}

fn root_of(rows: &[StoredEvent]) -> [u8; 32] {
    let leaves: Vec<_> = rows.iter().map(|row| leaf_hash(&row.bytes)).collect();
    root_from_leaf_hashes(&leaves)
}

fn signed(size: u64, root: [u8; 32], key: &SignerKey) -> String {
    Checkpoint::new("custody-test-log", size, root)
        .unwrap()
        .sign(&[key])
        .unwrap()
}

/// A log audit whose stored checkpoint covers every row honestly.
fn honest_log(rows: &[StoredEvent]) -> LogAudit {
    let root = root_of(rows);
    LogAudit {
        outside: Vec::new(),
        checkpoint_interval_seconds: 0,
        trusted_keys: vec![log_key().verifier_key()],
        checkpoints: vec![StoredCheckpointRow {
            size: rows.len() as u64,
            root: root.to_vec(),
            note: signed(rows.len() as u64, root, &log_key()),
        }],
        since: None,
        stored_leaves: rows.len() as u64,
        now: None,
        witnessed: None,
    }
}

fn audit_log(trail: &Trail, rows: &[StoredEvent], log: LogAudit) -> Report {
    run(rows, trail.heads(), Auditor::with_log(log))
}

// ---------------------------------------------------------------------------
// Fixtures: integrity of the stored trail
// ---------------------------------------------------------------------------

fn log_index_gap() -> Outcome {
    // B's only event deleted: a hole at index 1, and B's case row remains.
    let (trail, _, b, _) = three_cases();
    let mut rows = trail.rows();
    rows.remove(1);
    let report = run(&rows, trail.heads(), Auditor::new());
    let missing: Vec<_> = report
        .findings
        .iter()
        .filter(|finding| finding.code == "case.events-missing")
        .collect();
    assert_eq!(missing[0].case_id.as_deref(), Some(b.as_str()));
    audit_also(report, at(None, None, Some(1)), &["case.events-missing"])
}

fn log_index_duplicate() -> Outcome {
    // A's comment stored under B's index too (a table rebuilt without its key).
    let (trail, a, _, _) = three_cases();
    let mut rows = trail.rows();
    rows.truncate(3);
    rows[2].log_index = 1;
    let heads = trail
        .heads()
        .into_iter()
        .filter(|head| head.case_id != trail.events[3].case_id.as_str())
        .collect();
    audit(
        run(&rows, heads, Auditor::new()),
        at(Some(&a), None, Some(1)),
    )
}

fn event_malformed() -> Outcome {
    // A's comment overwritten with bytes that are not an event: the case's
    // head no longer matches what is stored.
    let (trail, a, _, _) = three_cases();
    let mut rows = trail.rows();
    rows[2].bytes = b"\x00 not an event".to_vec();
    audit_also(
        run(&rows, trail.heads(), Auditor::new()),
        at(Some(&a), Some(2), Some(2)),
        &["chain.head-mismatch"],
    )
}

fn event_not_canonical() -> Outcome {
    let (trail, a, _, _) = three_cases();
    let mut rows = trail.rows();
    let mut spaced = b"{ ".to_vec();
    spaced.extend_from_slice(&rows[2].bytes[1..]);
    rows[2].bytes = spaced;
    audit_also(
        run(&rows, trail.heads(), Auditor::new()),
        at(Some(&a), Some(2), Some(2)),
        &["chain.head-mismatch"],
    )
}

fn event_index_mismatch() -> Outcome {
    let (trail, a, _, _) = three_cases();
    let mut rows = trail.rows();
    rows[2].seq = 7;
    audit(
        run(&rows, trail.heads(), Auditor::new()),
        at(Some(&a), Some(2), Some(2)),
    )
}

/// One connector record (source, external ID) recorded in two cases: the
/// second is the repeat.
fn event_external_id_repeated() -> Outcome {
    let mut trail = Trail::default();
    let a = trail.append(None, human("alice"), request_draft("admin"));
    let b = trail.append(None, human("alice"), request_draft("db"));
    trail.append(Some(&a), human("bob"), comment_draft("from the ticket"));
    trail.append(
        Some(&b),
        human("bob"),
        comment_draft("from the ticket again"),
    );
    for index in [2, 3] {
        trail.events[index].source = Some("jira".into());
        trail.events[index].external_id = Some("10001-1700000000000".into());
    }
    audit(trail.audit(), at(Some(&b), Some(2), Some(3)))
}

fn chain_missing_start() -> Outcome {
    // A case whose first stored event is a request at seq 2 linking to
    // an event that is not stored.
    let mut trail = Trail::default();
    let case = CaseId::generate();
    trail.forge(
        &case,
        2,
        Some(Sha256Hash::of(b"an event that was removed")),
        human("alice"),
        request_draft("admin"),
        None,
    );
    audit(trail.audit(), at(Some(&case), Some(2), Some(0)))
}

fn chain_seq_gap() -> Outcome {
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let first = trail.last(&case).hash();
    trail.forge(
        &case,
        3,
        Some(first),
        human("bob"),
        comment_draft("skips 2"),
        None,
    );
    audit(trail.audit(), at(Some(&case), Some(3), Some(1)))
}

fn chain_out_of_order() -> Outcome {
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    trail.append(Some(&case), human("bob"), comment_draft("second"));
    let second = trail.last(&case).hash();
    trail.forge(
        &case,
        2,
        Some(second),
        human("bob"),
        comment_draft("again 2"),
        None,
    );
    audit(trail.audit(), at(Some(&case), Some(2), Some(2)))
}

fn chain_prev_hash_mismatch() -> Outcome {
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    trail.forge(
        &case,
        2,
        Some(Sha256Hash::of(b"another event")),
        human("bob"),
        comment_draft("forged"),
        None,
    );
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

fn chain_head_mismatch() -> Outcome {
    let (trail, a, _, _) = three_cases();
    let mut heads = trail.heads();
    let head = heads
        .iter_mut()
        .find(|head| head.case_id == a.as_str())
        .unwrap();
    head.head_seq = 3;
    head.head_hash = Sha256Hash::of(b"a later event").to_hex();
    audit(
        run(&trail.rows(), heads, Auditor::new()),
        at(Some(&a), Some(2), None),
    )
}

fn case_events_missing() -> Outcome {
    let (trail, _, _, _) = three_cases();
    let ghost = CaseId::generate();
    let mut heads = trail.heads();
    heads.push(StoredCaseHead {
        drill: false,
        case_id: ghost.to_string(),
        head_seq: 2,
        head_hash: Sha256Hash::of(b"gone").to_hex(),
        state: "approved".to_string(),
    });
    audit(
        run(&trail.rows(), heads, Auditor::new()),
        at(Some(&ghost), None, None),
    )
}

fn case_missing_head() -> Outcome {
    let (trail, _, b, _) = three_cases();
    let heads = trail
        .heads()
        .into_iter()
        .filter(|head| head.case_id != b.as_str())
        .collect();
    audit(
        run(&trail.rows(), heads, Auditor::new()),
        at(Some(&b), None, None),
    )
}

fn case_no_request() -> Outcome {
    // A case that starts with a comment (its case row written by the forger too).
    let (mut trail, _, _, _) = three_cases();
    let stray = trail.append(None, human("mallory"), comment_draft("no request"));
    audit(trail.audit(), at(Some(&stray), Some(1), Some(4)))
}

fn case_second_request() -> Outcome {
    let (mut trail, a, _, _) = three_cases();
    trail.append(Some(&a), human("alice"), request_draft("root"));
    audit(trail.audit(), at(Some(&a), Some(3), Some(4)))
}

fn case_projection_mismatch() -> Outcome {
    let (trail, _, b, _) = three_cases();
    let mut heads = trail.heads();
    heads
        .iter_mut()
        .find(|head| head.case_id == b.as_str())
        .unwrap()
        .state = "reviewed".to_string();
    audit(
        run(&trail.rows(), heads, Auditor::new()),
        at(Some(&b), None, None),
    )
}

// ---------------------------------------------------------------------------
// Fixtures: the Merkle log and its checkpoints
// ---------------------------------------------------------------------------

fn log_leaf_mismatch() -> Outcome {
    let (trail, a, _, _) = three_cases();
    let rows = trail.rows();
    let log = honest_log(&rows);
    let mut tampered = rows.clone();
    tampered[2].stored_leaf = Some(vec![0; 32]);
    audit(
        audit_log(&trail, &tampered, log),
        at(Some(&a), Some(2), Some(2)),
    )
}

fn log_leaf_missing() -> Outcome {
    let (trail, a, _, _) = three_cases();
    let rows = trail.rows();
    let log = honest_log(&rows);
    let mut tampered = rows.clone();
    tampered[2].stored_leaf = None;
    audit(
        audit_log(&trail, &tampered, log),
        at(Some(&a), Some(2), Some(2)),
    )
}

fn log_leaf_without_event() -> Outcome {
    let (trail, _, _, _) = three_cases();
    let rows = trail.rows();
    let mut log = honest_log(&rows);
    log.stored_leaves += 1;
    audit(audit_log(&trail, &rows, log), at(None, None, Some(4)))
}

fn checkpoint_bad_signature() -> Outcome {
    let (trail, _, _, _) = three_cases();
    let rows = trail.rows();
    let mut log = honest_log(&rows);
    log.checkpoints[0].note = signed(4, root_of(&rows), &other_key());
    // Its only checkpoint does not count, so nothing covers the log.
    audit_also(
        audit_log(&trail, &rows, log),
        at(None, None, None),
        &["log.no-checkpoint"],
    )
}

fn checkpoint_row_mismatch() -> Outcome {
    let (trail, _, _, _) = three_cases();
    let rows = trail.rows();
    let mut log = honest_log(&rows);
    log.checkpoints[0].size = 3;
    audit(audit_log(&trail, &rows, log), at(None, None, None))
}

fn checkpoint_root_mismatch() -> Outcome {
    // Signed over the honest log; then A's comment rewritten consistently
    // (its leaf and its case row too), so only the signed root can tell.
    let (trail, _, _, _) = three_cases();
    let log = honest_log(&trail.rows());
    let mut rewritten = trail;
    let mut event = rewritten.events[2].clone();
    event.body = EventBody::CommentAdded(Comment {
        text: "rewritten".to_string(),
    });
    rewritten.events[2] = Event::decode(&event.canonical_bytes()).unwrap();
    let rows = rewritten.rows();
    audit(audit_log(&rewritten, &rows, log), at(None, None, Some(3)))
}

fn checkpoint_beyond_log() -> Outcome {
    let (trail, _, _, _) = three_cases();
    let rows = trail.rows();
    let mut log = honest_log(&rows);
    let note = signed(5, [1; 32], &log_key());
    log.checkpoints.push(StoredCheckpointRow {
        size: 5,
        root: vec![1; 32],
        note,
    });
    audit(audit_log(&trail, &rows, log), at(None, None, Some(4)))
}

fn since_bad_signature() -> Outcome {
    let (trail, _, _, _) = three_cases();
    let rows = trail.rows();
    let mut log = honest_log(&rows);
    log.since = Some(signed(2, root_of(&rows[..2]), &other_key()));
    audit(audit_log(&trail, &rows, log), at(None, None, None))
}

fn since_not_extended() -> Outcome {
    let (trail, _, _, _) = three_cases();
    let rows = trail.rows();
    let mut log = honest_log(&rows);
    log.since = Some(signed(2, [2; 32], &log_key()));
    audit(audit_log(&trail, &rows, log), at(None, None, Some(1)))
}

fn since_beyond_log() -> Outcome {
    let (trail, _, _, _) = three_cases();
    let rows = trail.rows();
    let mut log = honest_log(&rows);
    log.since = Some(signed(9, [2; 32], &log_key()));
    audit(audit_log(&trail, &rows, log), at(None, None, Some(4)))
}

// ---------------------------------------------------------------------------
// Fixtures: lifecycle, separation of duties, records
// ---------------------------------------------------------------------------

fn approval(change_hash: Sha256Hash) -> Draft {
    Draft {
        body: EventBody::ApprovalGranted(Decision {
            change_hash,
            comment: None,
            chat: None,
        }),
        role: Role::Approver,
        causation: None,
    }
}

fn execution(applied: Option<Change>) -> Draft {
    Draft {
        body: EventBody::ExecutionCompleted(custody_core::event::Execution {
            change_set: None,
            change_set_hash: None,
            comment: None,
            applied,
        }),
        role: Role::Executor,
        causation: None,
    }
}

fn sod_requester_cannot_approve() -> Outcome {
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let hash = trail.view(&case).change_hash;
    trail.append(Some(&case), human("alice"), approval(hash));
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

fn lifecycle_execution_without_approval() -> Outcome {
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    trail.append(Some(&case), human("carol"), execution(None));
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

fn approval_change_mismatch() -> Outcome {
    // An approval bound to another change than the one requested.
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let other = change("root").digest();
    assert_ne!(other, trail.view(&case).change_hash);
    trail.append(Some(&case), human("bob"), approval(other));
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

fn executed_case(trail: &mut Trail) -> CaseId {
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let draft = lifecycle::approve(&trail.view(&case), &human("bob"), None).unwrap();
    trail.append(Some(&case), human("bob"), draft);
    let view = trail.view(&case);
    let draft = lifecycle::execute(
        view.approved().unwrap(),
        &human("carol"),
        None,
        None,
        true,
        None,
    )
    .unwrap();
    trail.append(Some(&case), human("carol"), draft);
    case
}

fn review_change_mismatch() -> Outcome {
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let draft = lifecycle::approve(&trail.view(&case), &human("bob"), None).unwrap();
    trail.append(Some(&case), human("bob"), draft);
    let view = trail.view(&case);
    let draft = lifecycle::execute(
        view.approved().unwrap(),
        &human("carol"),
        None,
        None,
        true,
        Some(change("root")),
    )
    .unwrap();
    trail.append(Some(&case), human("carol"), draft);
    audit(trail.audit(), at(Some(&case), Some(3), Some(2)))
}

fn review_overdue() -> Outcome {
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let mut rule = rule();
    rule.review_deadline_seconds = Some(3600);
    if let EventBody::RequestCreated(request) = &mut trail.events[0].body {
        request.rule = rule;
    }
    let draft = lifecycle::approve(&trail.view(&case), &human("bob"), None).unwrap();
    trail.append(Some(&case), human("bob"), draft);
    let view = trail.view(&case);
    let draft = lifecycle::execute(
        view.approved().unwrap(),
        &human("carol"),
        None,
        None,
        true,
        None,
    )
    .unwrap();
    trail.append(Some(&case), human("carol"), draft);
    audit(
        trail.audit_at(time(2 * 3600 + 10)),
        at(Some(&case), None, None),
    )
}

fn expiry_revocation_overdue() -> Outcome {
    let mut trail = Trail::default();
    let timed = timed_change("admin", Some(3600));
    let case = trail.append(
        None,
        human("alice"),
        lifecycle::request(timed, None, None, &rule()).unwrap(),
    );
    let draft = lifecycle::approve(&trail.view(&case), &human("bob"), None).unwrap();
    trail.append(Some(&case), human("bob"), draft);
    let view = trail.view(&case);
    let draft = lifecycle::execute(
        view.approved().unwrap(),
        &human("carol"),
        None,
        None,
        true,
        None,
    )
    .unwrap();
    trail.append(Some(&case), human("carol"), draft);
    // Reviewed, so only the missing revocation is due.
    let view = trail.view(&case);
    let draft = lifecycle::review(
        view.executed().unwrap(),
        &human("dave"),
        custody_core::event::ReviewOutcome::Confirmed,
        None,
    )
    .unwrap();
    trail.append(Some(&case), human("dave"), draft);
    audit(trail.audit_at(time(3 * 3600)), at(Some(&case), None, None))
}

fn timed_executed_view(duration: u64) -> CaseView {
    let mut trail = Trail::default();
    let timed = timed_change("admin", Some(duration));
    let case = trail.append(
        None,
        human("alice"),
        lifecycle::request(timed, None, None, &rule()).unwrap(),
    );
    let draft = lifecycle::approve(&trail.view(&case), &human("bob"), None).unwrap();
    trail.append(Some(&case), human("bob"), draft);
    let view = trail.view(&case);
    let draft = lifecycle::execute(
        view.approved().unwrap(),
        &human("carol"),
        None,
        None,
        true,
        None,
    )
    .unwrap();
    trail.append(Some(&case), human("carol"), draft);
    trail.view(&case)
}

fn expiry_revocation_due() -> Outcome {
    let view = timed_executed_view(3600);
    let due = lifecycle::overdue(&view, time(2 * 3600));
    let recorded = due
        .iter()
        .map(
            |(reason, deadline)| match lifecycle::escalate(*reason, *deadline).body {
                EventBody::RevocationDue(_) => reason.to_string(),
                other => format!("{reason} recorded as {}", other.kind_name()),
            },
        )
        .collect();
    Outcome::Recorded(recorded)
}

fn expiry_notice() -> Outcome {
    // Long grants get a notice before they end.
    let view = timed_executed_view(24 * 3600);
    let due = lifecycle::overdue(&view, time(23 * 3600 + 60));
    let recorded = due
        .iter()
        .map(
            |(reason, deadline)| match lifecycle::escalate(*reason, *deadline).body {
                EventBody::ExpiryApproaching(_) => reason.to_string(),
                other => format!("{reason} recorded as {}", other.kind_name()),
            },
        )
        .collect();
    Outcome::Recorded(recorded)
}

fn approval_overdue() -> Outcome {
    let mut trail = Trail::default();
    let mut slow = rule();
    slow.approval_deadline_seconds = Some(3600);
    let case = trail.append(
        None,
        human("alice"),
        lifecycle::request(change("admin"), None, None, &slow).unwrap(),
    );
    let view = trail.view(&case);
    assert!(lifecycle::overdue(&view, time(1800)).is_empty(), "not yet");
    let recorded = lifecycle::overdue(&view, time(3601))
        .iter()
        .map(
            |(reason, deadline)| match lifecycle::escalate(*reason, *deadline).body {
                EventBody::EscalationRaised(escalation) => escalation.reason.to_string(),
                other => format!("{reason} recorded as {}", other.kind_name()),
            },
        )
        .collect();
    Outcome::Recorded(recorded)
}

fn break_glass_review_overdue() -> Outcome {
    let mut trail = Trail::default();
    let drafts = lifecycle::break_glass(
        change("admin"),
        "the database is down".to_string(),
        None,
        &rule(),
        None,
        time(0),
    )
    .unwrap();
    let mut case = None;
    for draft in drafts {
        case = Some(trail.append(case.as_ref(), human("carol"), draft));
    }
    let case = case.unwrap();
    let deadline = trail.view(&case).break_glass_deadline.unwrap();
    audit(
        trail.audit_at(deadline.plus_seconds(60)),
        at(Some(&case), None, None),
    )
}

fn delegation_missing() -> Outcome {
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let mut vendor = human("acme-support");
    vendor.kind = PrincipalKind::Vendor;
    vendor.org = Some("acme".to_string());
    trail.append(Some(&case), vendor, comment_draft("on it"));
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

fn revocation_unmatched_link() -> Outcome {
    // A review opened a revocation case, but the revocation case's half of
    // the link is gone.
    let mut trail = Trail::default();
    let case = executed_case(&mut trail);
    let revocation = CaseId::generate();
    trail.append(
        Some(&case),
        human("dave"),
        Draft {
            body: EventBody::RevocationOpened(CaseLink {
                other_case: revocation,
            }),
            role: Role::Reviewer,
            causation: None,
        },
    );
    audit(trail.audit(), at(Some(&case), None, Some(3)))
}

fn merge_unmatched_link() -> Outcome {
    let mut trail = Trail::default();
    let survivor = trail.append(None, human("alice"), request_draft("admin"));
    let duplicate = trail.append(None, human("alice"), request_draft("root"));
    let (into_duplicate, _into_survivor) = lifecycle::merge(
        &trail.view(&duplicate),
        &trail.view(&survivor),
        &human("alice"),
        None,
    )
    .unwrap();
    trail.append(Some(&duplicate), human("alice"), into_duplicate);
    audit(trail.audit(), at(Some(&duplicate), None, Some(2)))
}

fn lifecycle_case_merged() -> Outcome {
    let mut trail = Trail::default();
    let survivor = trail.append(None, human("alice"), request_draft("admin"));
    let duplicate = trail.append(None, human("alice"), request_draft("root"));
    let (into_duplicate, into_survivor) = lifecycle::merge(
        &trail.view(&duplicate),
        &trail.view(&survivor),
        &human("alice"),
        None,
    )
    .unwrap();
    trail.append(Some(&duplicate), human("alice"), into_duplicate);
    trail.append(Some(&survivor), human("alice"), into_survivor);
    trail.append(Some(&duplicate), human("carol"), execution(None));
    audit(trail.audit(), at(Some(&duplicate), Some(3), Some(4)))
}

fn held(ticket: &str, bytes: &[u8]) -> Draft {
    Draft {
        body: EventBody::EvidenceHeld(HeldEvidence {
            ticket: ticket.parse().unwrap(),
            evidence: Evidence {
                sha256: Sha256Hash::of(bytes),
                size: bytes.len() as u64,
                file_name: Some("screenshot.png".to_string()),
                declared_media_type: None,
                sniffed_media_type: "image/png".to_string(),
                link: None,
            },
        }),
        role: Role::Observer,
        causation: None,
    }
}

fn evidence_record_misplaced() -> Outcome {
    // An evidence record holds held evidence and its release only.
    let mut trail = Trail::default();
    let record = trail.append(None, human("bob"), held("jira:SEC-9", b"shot"));
    trail.append(Some(&record), human("mallory"), comment_draft("slipped in"));
    audit(trail.audit(), at(Some(&record), Some(2), Some(1)))
}

fn policy_record_misplaced() -> Outcome {
    let mut trail = Trail::default();
    let policy = custody_core::policy::Policy::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    trail.append(
        Some(&case),
        Actor::system(),
        lifecycle::adopt_policy(&policy, None, "a request's case"),
    );
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

fn link_evidence(trail: &mut Trail, case: &CaseId, body: EventBody) {
    let draft = lifecycle::evidence(&trail.view(case), &human("bob"), body).unwrap();
    trail.append(Some(case), human("bob"), draft);
}

fn evidence_link_unverified() -> Outcome {
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    link_evidence(
        &mut trail,
        &case,
        EventBody::EvidenceUnverified(custody_core::event::LinkFailure {
            url: "https://wiki.example/change".to_string(),
            error: "timed out".to_string(),
        }),
    );
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

fn evidence_link_drifted() -> Outcome {
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    link_evidence(
        &mut trail,
        &case,
        EventBody::EvidenceRechecked(custody_core::event::Recheck {
            url: "https://wiki.example/change".to_string(),
            previous: Sha256Hash::of(b"then"),
            sha256: Some(Sha256Hash::of(b"now")),
            status: Some(200),
            drifted: true,
            error: None,
        }),
    );
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

fn notify_undelivered() -> Outcome {
    // A notification given up on and never escalated.
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    trail.events[0].notify.push(custody_core::notice::Owed {
        delivery_id: "dl-1".to_string(),
        kind: "change_requested".to_string(),
        audience: custody_core::notice::Audience::Approvers,
        channel: "hook".to_string(),
        recipient: None,
    });
    let attempt = Attempt {
        delivery_id: "dl-1".to_string(),
        channel: "hook".to_string(),
        recipient: None,
        attempt: 5,
        outcome: DeliveryOutcome::Dead,
        status: Some(500),
        error: Some("server error".to_string()),
        latency_ms: 3,
    };
    // Recorded without its escalation, which a forger removed.
    for draft in lifecycle::record_delivery(attempt, false, time(10)) {
        trail.append(Some(&case), Actor::system(), draft);
    }
    audit(trail.audit(), at(Some(&case), Some(1), Some(0)))
}

fn notify_dead_letter() -> Outcome {
    let attempt = Attempt {
        delivery_id: "dl-1".to_string(),
        channel: "hook".to_string(),
        recipient: None,
        attempt: 5,
        outcome: DeliveryOutcome::Dead,
        status: Some(500),
        error: Some("server error".to_string()),
        latency_ms: 3,
    };
    let recorded = lifecycle::record_delivery(attempt, true, time(10))
        .into_iter()
        .filter_map(|draft| match draft.body {
            EventBody::EscalationRaised(escalation) => Some(escalation.reason.to_string()),
            _ => None,
        })
        .collect();
    Outcome::Recorded(recorded)
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[test]
fn every_fixture_produces_exactly_its_code() {
    let mut failures = Vec::new();
    for (code, producer) in COVERAGE {
        let Fixture(fixture) = producer else { continue };
        match fixture() {
            Outcome::Audit { report, at, also } => {
                let hits: Vec<_> = report
                    .findings
                    .iter()
                    .filter(|finding| finding.code == *code)
                    .collect();
                let mut expected: Vec<&str> = also.clone();
                expected.push(code);
                expected.sort_unstable();
                // The fixtures' log audits hold no checkpoint from outside
                // the database, which the audit notes (info) by design.
                let mut found: Vec<&str> = report
                    .findings
                    .iter()
                    .map(|finding| finding.code.as_str())
                    .filter(|found| *found != "checkpoint.none-outside" || expected.contains(found))
                    .collect();
                found.sort_unstable();
                if hits.len() != 1 {
                    failures.push(format!(
                        "{code}: expected once, found {}: {:#?}",
                        hits.len(),
                        report.findings
                    ));
                    continue;
                }
                let got = At {
                    case_id: hits[0].case_id.clone(),
                    seq: hits[0].seq,
                    log_index: hits[0].log_index,
                };
                if got != at {
                    failures.push(format!("{code}: points at {got:?}, expected {at:?}"));
                }
                if found != expected {
                    failures.push(format!(
                        "{code}: the report holds {found:?}, expected exactly {expected:?}: {:#?}",
                        report.findings
                    ));
                }
                if report.ok {
                    failures.push(format!("{code}: the report says ok"));
                }
                for finding in &report.findings {
                    if !finding.code.severities().contains(&finding.severity) {
                        failures.push(format!(
                            "{code}: {} is reported as {}, but the table gives it {:?}",
                            finding.code,
                            finding.severity.as_str(),
                            finding.code.severities()
                        ));
                    }
                }
            }
            Outcome::Refused(refusal) => {
                if refusal.rule != *code {
                    failures.push(format!(
                        "{code}: refused under {} ({})",
                        refusal.rule, refusal.message
                    ));
                }
                if refusal.rule.answer().is_none() {
                    failures.push(format!(
                        "{code}: refused, but the table says no write is refused under it (no answer)"
                    ));
                }
            }
            Outcome::Recorded(reasons) => {
                if reasons != [code.to_string()] {
                    failures.push(format!("{code}: recorded {reasons:?}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The codes of `docs/findings.md`: the first cell of every table row, when
/// it is one backticked code.
fn documented_codes() -> Vec<String> {
    let doc = std::fs::read_to_string(workspace().join("docs/findings.md"))
        .expect("read docs/findings.md");
    doc.lines()
        .filter_map(|line| {
            let cell = line.strip_prefix("| `")?;
            let (code, _) = cell.split_once('`')?;
            is_code_shaped(code).then(|| code.to_string())
        })
        .collect()
}

#[test]
fn documented_codes_are_exactly_the_covered_codes() {
    let documented = documented_codes();
    assert!(
        documented.len() > 80,
        "the doc's tables were not found: {documented:?}"
    );
    let mut seen = BTreeSet::new();
    let twice: Vec<_> = documented
        .iter()
        .filter(|code| !seen.insert(code.as_str()))
        .collect();
    assert!(twice.is_empty(), "documented twice: {twice:?}");
    let mut rows = BTreeSet::new();
    for (code, _) in COVERAGE {
        assert!(rows.insert(*code), "{code} has two rows in COVERAGE");
    }
    let documented: BTreeSet<&str> = documented.iter().map(String::as_str).collect();
    let uncovered: Vec<_> = documented.difference(&rows).collect();
    let undocumented: Vec<_> = rows.difference(&documented).collect();
    assert!(
        uncovered.is_empty(),
        "documented in docs/findings.md but produced by no test (add a row to COVERAGE): {uncovered:?}"
    );
    assert!(
        undocumented.is_empty(),
        "covered here but not documented in docs/findings.md: {undocumented:?}"
    );
}

#[test]
fn named_tests_assert_their_codes() {
    let mut failures = Vec::new();
    for (code, producer) in COVERAGE {
        match producer {
            Fixture(_) => {}
            Test { file, holder } => {
                if let Err(error) = check_holder(file, holder, code) {
                    failures.push(format!("{code}: {file}::{holder}: {error}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `holder` is a function of `file` that holds `code` as a string literal
/// outside comments, and is a test or is called from one in the same file.
fn check_holder(file: &str, holder: &str, code: &str) -> Result<(), String> {
    let source = std::fs::read(workspace().join(file))
        .map_err(|error| format!("cannot read it: {error}"))?;
    let lexed = Lexed::new(&source);
    let functions = lexed.functions();
    let Some(function) = functions.iter().find(|function| function.name == holder) else {
        return Err("no such function".to_string());
    };
    if !lexed
        .literals
        .iter()
        .any(|literal| function.body.contains(&literal.start) && literal.value == code)
    {
        return Err(format!(
            "it holds no string literal \"{code}\" outside comments"
        ));
    }
    let called_by_a_test = functions.iter().any(|caller| {
        caller.is_test
            && caller.name != holder
            && find_all(
                &lexed.masked[caller.body.clone()],
                format!("{holder}(").as_bytes(),
            )
            .into_iter()
            .any(|at| {
                at == 0 || {
                    let before = lexed.masked[caller.body.start + at - 1];
                    !(before.is_ascii_alphanumeric() || before == b'_')
                }
            })
    });
    if function.is_test || called_by_a_test {
        Ok(())
    } else {
        Err("it is not a #[test] and no test in the file calls it".to_string())
    }
}

// ---------------------------------------------------------------------------
// Emitted codes
// ---------------------------------------------------------------------------

/// `family.some-code`: lowercase words joined by hyphens, one dot.
fn is_code_shaped(text: &str) -> bool {
    let word = |part: &str| {
        !part.is_empty()
            && part.starts_with(|c: char| c.is_ascii_lowercase())
            && part.split('-').all(|piece| {
                !piece.is_empty()
                    && piece
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
    };
    match text.split_once('.') {
        Some((family, name)) => word(family) && word(name),
        None => false,
    }
}

/// Where a literal passed as a rule or finding code stands: what precedes it.
const CODE_CONTEXTS: &[&str] = &[
    "code:",
    "rule:",
    "rule: Some(",
    "Refusal::new(",
    "with_rule(",
    "\"rule\":",
    "\"code\":",
    "finding(",
    "reason:",
];

fn rust_files(directory: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

/// The Rust files of `src/` and every crate's `src/`.
fn source_files() -> Vec<PathBuf> {
    let root = workspace();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    for crate_dir in std::fs::read_dir(root.join("crates"))
        .expect("crates/")
        .flatten()
    {
        rust_files(&crate_dir.path().join("src"), &mut files);
    }
    assert!(files.len() > 20, "the sources were not found: {files:?}");
    files
}

/// Every code-shaped literal in the sources outside test modules, with where
/// it stands, that is documented-family or stands where a code is passed.
fn emitted_codes(families: &BTreeSet<String>) -> BTreeMap<String, Vec<String>> {
    let root = workspace();
    let mut emitted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in source_files() {
        let source = std::fs::read(&file).unwrap();
        let lexed = Lexed::new(&source);
        let tests = lexed.test_modules();
        for literal in &lexed.literals {
            if !is_code_shaped(&literal.value)
                || tests.iter().any(|range| range.contains(&literal.start))
            {
                continue;
            }
            let family = literal.value.split('.').next().unwrap_or_default();
            let before: Vec<u8> = lexed.masked[..literal.start]
                .iter()
                .rev()
                .take(40)
                .rev()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            let in_context = CODE_CONTEXTS.iter().any(|context| {
                let context: Vec<u8> = context
                    .bytes()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                before.ends_with(&context)
            });
            if families.contains(family) || in_context {
                let line = source[..literal.start]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count()
                    + 1;
                let place = format!(
                    "{}:{line}",
                    file.strip_prefix(&root).unwrap_or(&file).display()
                );
                emitted
                    .entry(literal.value.clone())
                    .or_default()
                    .push(place);
            }
        }
    }
    emitted
}

/// The table of codes, as a file of the workspace: the one place a code is
/// spelled.
const TABLE: &str = "crates/custody-core/src/code.rs";

/// The rows of `docs/findings.md`'s tables: the code, everything after its
/// cell, and whether the row's table has a severity column.
fn documented_rows() -> Vec<(String, String, bool)> {
    let doc = std::fs::read_to_string(workspace().join("docs/findings.md"))
        .expect("read docs/findings.md");
    let mut with_severity = false;
    let mut rows = Vec::new();
    for line in doc.lines() {
        if line.starts_with("| code |") {
            with_severity = line.contains("| severity");
            continue;
        }
        let Some(cell) = line.strip_prefix("| `") else {
            continue;
        };
        let Some((code, rest)) = cell.split_once("` | ") else {
            continue;
        };
        if !is_code_shaped(code) {
            continue;
        }
        let rest = rest.strip_suffix(" |").unwrap_or(rest);
        rows.push((code.to_string(), rest.to_string(), with_severity));
    }
    rows
}

#[test]
fn the_table_of_codes_is_the_doc() {
    let rows = documented_rows();
    assert!(rows.len() > 80, "the doc's tables were not found: {rows:?}");
    let mut failures = Vec::new();
    let mut documented = BTreeSet::new();
    for (text, rest, with_severity) in &rows {
        documented.insert(text.as_str());
        let Some(code) = Code::parse(text) else {
            failures.push(format!(
                "{text} is documented in docs/findings.md but not in the table ({TABLE})"
            ));
            continue;
        };
        if code.doc() != rest {
            failures.push(format!(
                "{text}: the doc's row and the table's differ:\n  doc:   {rest}\n  table: {}",
                code.doc()
            ));
        }
        // The severities the doc's severity cell names, in order.
        let named: Vec<&str> = if *with_severity {
            let cell = rest.split(" | ").next().unwrap_or_default();
            let mut named = Vec::new();
            for word in cell.split(|c: char| !c.is_ascii_alphabetic()) {
                if ["critical", "high", "medium", "low", "info"].contains(&word)
                    && !named.contains(&word)
                {
                    named.push(word);
                }
            }
            named
        } else {
            Vec::new()
        };
        let table: Vec<&str> = code.severities().iter().map(|s| s.as_str()).collect();
        if named != table {
            failures.push(format!(
                "{text}: the doc names the severities {named:?}, the table {table:?}"
            ));
        }
    }
    for code in Code::ALL {
        if !documented.contains(code.as_str()) {
            failures.push(format!(
                "{code} is in the table ({TABLE}) but not documented in docs/findings.md"
            ));
        }
    }
    let order: Vec<&str> = rows.iter().map(|(code, _, _)| code.as_str()).collect();
    let table_order: Vec<&str> = Code::ALL.iter().map(|code| code.as_str()).collect();
    if failures.is_empty() && order != table_order {
        failures.push("the table lists the codes in another order than the doc".to_string());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_sources_name_codes_only_through_the_table() {
    let documented: BTreeSet<String> = documented_codes().into_iter().collect();
    let families: BTreeSet<String> = documented
        .iter()
        .filter_map(|code| code.split('.').next().map(str::to_string))
        .collect();
    let mut spelled = emitted_codes(&families);
    for (not_code, why) in NOT_CODES {
        assert!(
            spelled.remove(*not_code).is_some(),
            "{not_code} is listed in NOT_CODES ({why}) but no longer in the sources: remove it"
        );
    }
    let outside_the_table: Vec<String> = spelled
        .iter()
        .filter_map(|(code, places)| {
            let places: Vec<&String> = places
                .iter()
                .filter(|place| !place.starts_with(&format!("{TABLE}:")))
                .collect();
            (!places.is_empty()).then(|| {
                format!(
                    "{code} (at {})",
                    places
                        .iter()
                        .map(|place| place.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })
        .collect();
    assert!(
        outside_the_table.is_empty(),
        "the sources spell codes as strings outside the table: name them `Code::...` ({TABLE}), or list a literal that is no code in NOT_CODES:\n{}",
        outside_the_table.join("\n")
    );
    let named = named_codes();
    let unused: Vec<&str> = Code::ALL
        .iter()
        .filter(|code| !named.contains(code.name()))
        .map(|code| code.as_str())
        .collect();
    assert!(
        unused.is_empty(),
        "the table ({TABLE}) holds codes no source names (`Code::...` outside the table and tests): {unused:?}"
    );
}

/// The variants of [`Code`] the sources name (`Code::Variant`) outside the
/// table, test modules and comments.
fn named_codes() -> BTreeSet<String> {
    let root = workspace();
    let mut named = BTreeSet::new();
    for file in source_files() {
        if file
            .strip_prefix(&root)
            .is_ok_and(|path| path == Path::new(TABLE))
        {
            continue;
        }
        let source = std::fs::read(&file).unwrap();
        let lexed = Lexed::new(&source);
        let tests = lexed.test_modules();
        for at in find_all(&lexed.masked, b"Code::") {
            if ident_before(&lexed.masked, at) || tests.iter().any(|range| range.contains(&at)) {
                continue;
            }
            let start = at + b"Code::".len();
            let length = lexed.masked[start..]
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                .unwrap_or(0);
            named
                .insert(String::from_utf8_lossy(&lexed.masked[start..start + length]).into_owned());
        }
    }
    named
}

#[test]
fn the_scanner_finds_codes_and_ignores_comments_and_test_modules() {
    let source = br#"
        // Refusal::new("in.comment", ...)
        /* "block.comment" /* nested */ "still.comment" */
        fn f() { let _ = Finding { code: "audit.found", message: r"raw { brace" }; let c = '{'; }
        fn g<'a>(x: &'a str) { with_rule("http.refused"); validate_name("field.name", x); }
        #[cfg(test)]
        mod tests { fn t() { Refusal::new("test.only", String::new(), ""); } }
    "#;
    let lexed = Lexed::new(source);
    let tests = lexed.test_modules();
    let values: Vec<&str> = lexed
        .literals
        .iter()
        .filter(|literal| !tests.iter().any(|range| range.contains(&literal.start)))
        .map(|literal| literal.value.as_str())
        .collect();
    assert_eq!(
        values,
        ["audit.found", "raw { brace", "http.refused", "field.name"]
    );
    let functions = lexed.functions();
    let names: Vec<&str> = functions
        .iter()
        .map(|function| function.name.as_str())
        .collect();
    assert_eq!(names, ["f", "g", "t"]);
    assert!(is_code_shaped("break-glass.review-overdue"));
    assert!(!is_code_shaped("sod."));
    assert!(!is_code_shaped("custody.db.bak"));
    assert!(!is_code_shaped("Custody.Db"));
}

// ---------------------------------------------------------------------------
// A small Rust lexer: comments, string literals, functions
// ---------------------------------------------------------------------------

struct Literal {
    start: usize,
    value: String,
}

struct Function {
    name: String,
    is_test: bool,
    body: std::ops::Range<usize>,
}

/// A source with comments and the contents of string and char literals
/// blanked out (same length), and the string literals found.
struct Lexed {
    masked: Vec<u8>,
    literals: Vec<Literal>,
}

impl Lexed {
    fn new(source: &[u8]) -> Lexed {
        let mut masked = source.to_vec();
        let mut literals = Vec::new();
        let mut i = 0;
        let blank = |masked: &mut Vec<u8>, from: usize, to: usize| {
            for byte in &mut masked[from..to.min(source.len())] {
                if *byte != b'\n' {
                    *byte = b' ';
                }
            }
        };
        while i < source.len() {
            let rest = &source[i..];
            if rest.starts_with(b"//") {
                let end = rest
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(source.len(), |at| i + at);
                blank(&mut masked, i, end);
                i = end;
            } else if rest.starts_with(b"/*") {
                let mut depth = 0;
                let mut j = i;
                while j < source.len() {
                    if source[j..].starts_with(b"/*") {
                        depth += 1;
                        j += 2;
                    } else if source[j..].starts_with(b"*/") {
                        depth -= 1;
                        j += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        j += 1;
                    }
                }
                blank(&mut masked, i, j);
                i = j;
            } else if let Some((prefix, hashes)) = raw_string_start(source, i) {
                let open = i + prefix;
                let mut close = vec![b'"'];
                close.extend(std::iter::repeat_n(b'#', hashes));
                let end = find_all(&source[open..], &close)
                    .first()
                    .map_or(source.len(), |at| open + at);
                literals.push(Literal {
                    start: i,
                    value: String::from_utf8_lossy(&source[open..end]).into_owned(),
                });
                blank(&mut masked, open, end);
                i = end + close.len();
            } else if source[i] == b'"'
                || (source[i] == b'b' && rest.starts_with(b"b\"") && !ident_before(source, i))
            {
                let open = if source[i] == b'b' { i + 2 } else { i + 1 };
                let mut j = open;
                while j < source.len() && source[j] != b'"' {
                    j += if source[j] == b'\\' { 2 } else { 1 };
                }
                literals.push(Literal {
                    start: i,
                    value: String::from_utf8_lossy(&source[open..j.min(source.len())]).into_owned(),
                });
                blank(&mut masked, open, j);
                i = j + 1;
            } else if source[i] == b'\'' {
                // A char literal, or a lifetime.
                if rest.starts_with(b"'\\") {
                    let end = source[i + 2..]
                        .iter()
                        .position(|b| *b == b'\'')
                        .map_or(source.len(), |at| i + 2 + at);
                    blank(&mut masked, i + 1, end);
                    i = end + 1;
                } else if let Some(width) = char_width(&source[i + 1..]) {
                    if source.get(i + 1 + width) == Some(&b'\'') {
                        blank(&mut masked, i + 1, i + 1 + width);
                        i += width + 2;
                    } else {
                        i += 1;
                    }
                } else {
                    i += 1;
                }
            } else {
                i += 1;
            }
        }
        Lexed { masked, literals }
    }

    /// The byte ranges of items under `#[cfg(test)]`.
    fn test_modules(&self) -> Vec<std::ops::Range<usize>> {
        find_all(&self.masked, b"#[cfg(test)]")
            .into_iter()
            .filter_map(|at| {
                let after = at + b"#[cfg(test)]".len();
                let open = after
                    + self.masked[after..]
                        .iter()
                        .position(|b| *b == b'{' || *b == b';')?;
                if self.masked[open] == b';' {
                    return Some(at..open);
                }
                Some(at..self.matching(open))
            })
            .collect()
    }

    /// The index of the brace closing the one at `open`.
    fn matching(&self, open: usize) -> usize {
        let mut depth = 0usize;
        for (offset, byte) in self.masked[open..].iter().enumerate() {
            match byte {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return open + offset;
                    }
                }
                _ => {}
            }
        }
        self.masked.len()
    }

    /// Every `fn NAME` with a body, and whether an attribute marks it a test.
    fn functions(&self) -> Vec<Function> {
        let mut functions = Vec::new();
        for at in find_all(&self.masked, b"fn ") {
            if ident_before(&self.masked, at) {
                continue;
            }
            let name_start = at + 3;
            let name_len = self.masked[name_start..]
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                .unwrap_or(0);
            if name_len == 0 {
                continue;
            }
            let name = String::from_utf8_lossy(&self.masked[name_start..name_start + name_len])
                .into_owned();
            let Some(open) = self.masked[name_start..]
                .iter()
                .position(|b| *b == b'{' || *b == b';')
            else {
                continue;
            };
            let open = name_start + open;
            if self.masked[open] == b';' {
                continue;
            }
            // The attributes just before the signature.
            let head = &self.masked[..at];
            let line_starts: Vec<usize> = head
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(index, _)| index)
                .collect();
            let mut is_test = false;
            for window in line_starts.windows(2).rev() {
                let line = String::from_utf8_lossy(&head[window[0] + 1..window[1]])
                    .trim()
                    .to_string();
                if line.starts_with("#[") {
                    is_test |= line.starts_with("#[test]") || line.starts_with("#[tokio::test");
                } else {
                    break;
                }
            }
            functions.push(Function {
                name,
                is_test,
                body: open..self.matching(open),
            });
        }
        functions
    }
}

fn ident_before(source: &[u8], at: usize) -> bool {
    at > 0 && (source[at - 1].is_ascii_alphanumeric() || source[at - 1] == b'_')
}

/// `r"`, `r#"`, `br"`, `br##"`...: the prefix length up to the quote, and the hashes.
fn raw_string_start(source: &[u8], at: usize) -> Option<(usize, usize)> {
    if ident_before(source, at) {
        return None;
    }
    let mut i = at;
    if source.get(i) == Some(&b'b') {
        i += 1;
    }
    if source.get(i) != Some(&b'r') {
        return None;
    }
    i += 1;
    let hashes = source[i..].iter().take_while(|b| **b == b'#').count();
    i += hashes;
    (source.get(i) == Some(&b'"')).then_some((i + 1 - at, hashes))
}

fn char_width(rest: &[u8]) -> Option<usize> {
    let first = *rest.first()?;
    let width = match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    };
    (rest.len() >= width).then_some(width)
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return Vec::new();
    }
    (0..=haystack.len() - needle.len())
        .filter(|at| &haystack[*at..*at + needle.len()] == needle)
        .collect()
}

// ---------------------------------------------------------------------------
// Fixtures: rules of a case's rule, records, notifications
// ---------------------------------------------------------------------------

/// Opens a case under `rule` requested by `requester`.
fn open_under(trail: &mut Trail, requester: Actor, rule: &AppliedRule) -> CaseId {
    trail.append(
        None,
        requester,
        lifecycle::request(change("admin"), None, None, rule).unwrap(),
    )
}

fn in_org(name: &str, org: &str) -> Actor {
    let mut actor = human(name);
    actor.org = Some(org.to_string());
    actor
}

fn review_draft() -> Draft {
    Draft {
        body: EventBody::ReviewCompleted(custody_core::event::Review {
            outcome: custody_core::event::ReviewOutcome::Confirmed,
            comment: None,
        }),
        role: Role::Reviewer,
        causation: None,
    }
}

fn sod_executor_sole_approver() -> Outcome {
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let draft = lifecycle::approve(&trail.view(&case), &human("bob"), None).unwrap();
    trail.append(Some(&case), human("bob"), draft);
    trail.append(Some(&case), human("bob"), execution(None));
    audit(trail.audit(), at(Some(&case), Some(3), Some(2)))
}

fn sod_reviewer_is_requester() -> Outcome {
    let mut trail = Trail::default();
    let case = executed_case(&mut trail);
    trail.append(Some(&case), human("alice"), review_draft());
    audit(trail.audit(), at(Some(&case), Some(4), Some(3)))
}

fn sod_reviewer_is_executor() -> Outcome {
    let mut trail = Trail::default();
    let case = executed_case(&mut trail);
    trail.append(Some(&case), human("carol"), review_draft());
    audit(trail.audit(), at(Some(&case), Some(4), Some(3)))
}

fn policy_approver_not_in_group() -> Outcome {
    let mut trail = Trail::default();
    let mut rule = rule();
    rule.approver_groups = vec!["security".to_string()];
    let case = open_under(&mut trail, human("alice"), &rule);
    let hash = trail.view(&case).change_hash;
    trail.append(Some(&case), human("bob"), approval(hash));
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

fn sod_approver_same_org() -> Outcome {
    let mut trail = Trail::default();
    let mut rule = rule();
    rule.approver_not_in_requester_org = true;
    let case = open_under(&mut trail, in_org("alice", "acme"), &rule);
    let hash = trail.view(&case).change_hash;
    trail.append(Some(&case), in_org("bob", "acme"), approval(hash));
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

fn policy_executor_not_allowed() -> Outcome {
    let mut trail = Trail::default();
    let mut rule = rule();
    rule.executor_groups = vec!["operators".to_string()];
    let case = open_under(&mut trail, human("alice"), &rule);
    let draft = lifecycle::approve(&trail.view(&case), &human("bob"), None).unwrap();
    trail.append(Some(&case), human("bob"), draft);
    trail.append(Some(&case), human("carol"), execution(None));
    audit(trail.audit(), at(Some(&case), Some(3), Some(2)))
}

fn policy_break_glass_not_allowed() -> Outcome {
    // Break-glass written under a rule that forbids it (the write path refuses it).
    let mut trail = Trail::default();
    let mut drafts = lifecycle::break_glass(
        change("admin"),
        "the database is down".to_string(),
        None,
        &rule(),
        None,
        time(0),
    )
    .unwrap();
    if let EventBody::RequestCreated(request) = &mut drafts[0].body {
        request.rule.break_glass = false;
    }
    let mut case = None;
    for draft in drafts {
        case = Some(trail.append(case.as_ref(), human("carol"), draft));
    }
    let case = case.unwrap();
    // Reported at the invocation, the event that claims break-glass.
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

fn chat(approver: &str) -> custody_core::event::ChatApproval {
    custody_core::event::ChatApproval {
        channel: "slack:#access".to_string(),
        permalink: "https://chat.example/m/1".to_string(),
        message_sha256: Sha256Hash::of(b"approved"),
        approver: approver.parse().unwrap(),
    }
}

fn approval_unconfirmed_attestation() -> Outcome {
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let draft =
        lifecycle::approve_with(&trail.view(&case), &human("bob"), None, Some(chat("dave")))
            .unwrap();
    trail.append(Some(&case), human("bob"), draft);
    audit(trail.audit(), at(Some(&case), Some(2), None))
}

/// The ticket describes another change after the approval.
fn connector_ticket_drift() -> Outcome {
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let draft = lifecycle::approve(&trail.view(&case), &human("bob"), None).unwrap();
    trail.append(Some(&case), human("bob"), draft);
    let ticket: custody_core::model::Ticket = "jira:SEC-1".parse().unwrap();
    trail.append(
        Some(&case),
        human("bob"),
        lifecycle::ticket_changed(ticket, change("root")),
    );
    audit(trail.audit(), at(Some(&case), Some(3), Some(2)))
}

fn observer() -> Actor {
    Actor::observer("okta", "00u1")
}

/// What a connector saw: `change`, made by a user mapped to `principal`.
fn observed(change: Change, principal: Option<&str>) -> custody_core::observation::Observed {
    use custody_core::observation::{MatchedBy, Observed, ObservedActor};
    Observed {
        source_kind: "okta".into(),
        action: "group.user_membership.add".into(),
        raw_sha256: Sha256Hash::of(b"the raw record"),
        actor: ObservedActor {
            id: "00u1".into(),
            kind: None,
            display: None,
            on_behalf_of: None,
            session: None,
            source_identity: None,
            principal: principal.map(|name| name.parse().unwrap()),
        },
        change,
        matched_by: MatchedBy::Window,
        matched_on: None,
        review_deadline: None,
        drift: Vec::new(),
    }
}

/// A case approved by bob and executed by carol: its ID.
fn executed_case_of(trail: &mut Trail, change: Change) -> CaseId {
    let case = trail.append(
        None,
        human("alice"),
        lifecycle::request(change, None, None, &rule()).unwrap(),
    );
    let draft = lifecycle::approve(&trail.view(&case), &human("bob"), None).unwrap();
    trail.append(Some(&case), human("bob"), draft);
    let view = trail.view(&case);
    let draft = lifecycle::execute(
        view.approved().unwrap(),
        &human("carol"),
        None,
        None,
        true,
        None,
    )
    .unwrap();
    trail.append(Some(&case), human("carol"), draft);
    case
}

/// An observed change no case sanctioned: the case it opened, unreviewed.
fn change_unsanctioned() -> Outcome {
    let mut trail = Trail::default();
    let [request, observation] = lifecycle::unsanctioned(
        &observer(),
        observed(change("admin"), None),
        &rule(),
        time(0),
    )
    .unwrap();
    let case = trail.append(None, observer(), request);
    trail.append(Some(&case), observer(), observation);
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

/// An observation claiming to have opened a case someone requested.
fn change_unsanctioned_misplaced() -> Outcome {
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let mut claim = observed(change("admin"), None);
    claim.review_deadline = Some(time(3600));
    trail.append(
        Some(&case),
        observer(),
        Draft {
            body: EventBody::ExecutionObserved(claim),
            role: Role::Observer,
            causation: None,
        },
    );
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

fn drift_wider_than_approved() -> Outcome {
    let mut trail = Trail::default();
    let case = executed_case_of(&mut trail, change("admin"));
    let draft = lifecycle::observe(
        &trail.view(&case),
        &observer(),
        observed(change("root"), Some("carol")),
    )
    .unwrap();
    trail.append(Some(&case), observer(), draft);
    audit(trail.audit(), at(Some(&case), Some(4), Some(3)))
}

/// Time-bound access past its end, which the source saw granted and never
/// saw revoked.
fn drift_access_after_revocation() -> Outcome {
    let mut trail = Trail::default();
    let case = executed_case_of(&mut trail, timed_change("admin", Some(60)));
    let draft = lifecycle::observe(
        &trail.view(&case),
        &observer(),
        observed(change("admin"), Some("carol")),
    )
    .unwrap();
    trail.append(Some(&case), observer(), draft);
    audit(trail.audit_at(time(3600)), at(Some(&case), None, None))
}

fn drift_before_approval() -> Outcome {
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let draft = lifecycle::observe(
        &trail.view(&case),
        &observer(),
        observed(change("admin"), None),
    )
    .unwrap();
    trail.append(Some(&case), observer(), draft);
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

fn drift_actor_mismatch() -> Outcome {
    let mut trail = Trail::default();
    let case = executed_case_of(&mut trail, change("admin"));
    let draft = lifecycle::observe(
        &trail.view(&case),
        &observer(),
        observed(change("admin"), Some("dan")),
    )
    .unwrap();
    trail.append(Some(&case), observer(), draft);
    audit(trail.audit(), at(Some(&case), Some(4), Some(3)))
}

/// An API key created with no case.
fn drift_nhi_credential_unsanctioned() -> Outcome {
    let mut trail = Trail::default();
    let key = Change::new(
        "api_key:deploy-key-1".parse().unwrap(),
        ChangeKind::Create,
        "api-key".into(),
        None,
        None,
    )
    .unwrap();
    let [request, observation] =
        lifecycle::unsanctioned(&observer(), observed(key, None), &rule(), time(0)).unwrap();
    let case = trail.append(None, observer(), request);
    trail.append(Some(&case), observer(), observation);
    audit_also(
        trail.audit(),
        at(Some(&case), Some(2), Some(1)),
        &["change.unsanctioned"],
    )
}

/// A second ticket linked to a case that carries one (forged: the writer
/// refuses it).
fn ticket_already_linked() -> Outcome {
    let mut trail = Trail::default();
    let first: custody_core::model::Ticket = "jira:SEC-1".parse().unwrap();
    let second: custody_core::model::Ticket = "jira:SEC-2".parse().unwrap();
    let case = trail.append(
        None,
        human("alice"),
        lifecycle::request(change("admin"), None, Some(first.clone()), &rule()).unwrap(),
    );
    // The same ticket again is no finding; another one is.
    trail.append(
        Some(&case),
        human("bob"),
        lifecycle::link_ticket(&trail.view(&case), &human("bob"), first).unwrap(),
    );
    assert!(lifecycle::link_ticket(&trail.view(&case), &human("bob"), second.clone()).is_err());
    trail.append(
        Some(&case),
        human("bob"),
        Draft {
            body: EventBody::TicketLinked(custody_core::event::TicketLinked { ticket: second }),
            role: Role::Observer,
            causation: None,
        },
    );
    audit(trail.audit(), at(Some(&case), Some(3), Some(2)))
}

/// No drift: the ticket edited before any approval, or edited after it
/// without changing what it describes; and one write's events may share
/// their origin.
#[test]
fn a_ticket_that_still_describes_the_approved_change_is_no_drift() {
    let ticket: custody_core::model::Ticket = "jira:SEC-1".parse().unwrap();
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    trail.append(
        Some(&case),
        human("bob"),
        lifecycle::ticket_changed(ticket.clone(), change("root")),
    );
    let draft = lifecycle::approve(&trail.view(&case), &human("bob"), None).unwrap();
    trail.append(Some(&case), human("bob"), draft);
    trail.append(
        Some(&case),
        human("bob"),
        lifecycle::ticket_changed(ticket, change("admin")),
    );
    trail.append(Some(&case), human("bob"), comment_draft("one write"));
    trail.append(
        Some(&case),
        human("bob"),
        comment_draft("one write, second event"),
    );
    for index in [4, 5] {
        trail.events[index].source = Some("jira".into());
        trail.events[index].external_id = Some("one-record".into());
    }
    // Editing the two events breaks their chain (reported, not asserted
    // here); only the drift and origin rules are judged.
    let rows = trail.rows();
    let report = run(&rows, trail.heads(), Auditor::new());
    let codes: Vec<String> = report
        .findings
        .iter()
        .map(|finding| finding.code.to_string())
        .collect();
    assert!(
        !codes
            .iter()
            .any(|code| code == "connector.ticket-drift" || code == "event.external-id-repeated"),
        "{codes:?}"
    );
}

fn lifecycle_approved_after_execution() -> Outcome {
    // Executed first, observed; the approval recorded later was also given later.
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let draft =
        lifecycle::execute_observed(&trail.view(&case), &human("carol"), None, None, None).unwrap();
    trail.append(Some(&case), human("carol"), draft);
    let draft = lifecycle::approve(&trail.view(&case), &human("bob"), None).unwrap();
    trail.append(Some(&case), human("bob"), draft);
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

fn policy_record(trail: &mut Trail, actor: Actor) -> CaseId {
    trail.append(
        None,
        actor,
        lifecycle::adopt_policy(&custody_core::policy::Policy::default(), None, "built-in"),
    )
}

fn policy_unrecorded() -> Outcome {
    // Once the log records policies, a case decided by a policy it never
    // adopted is a policy change nobody can audit.
    let mut trail = Trail::default();
    policy_record(&mut trail, Actor::system());
    let case = trail.append(None, human("alice"), request_draft("admin"));
    audit(trail.audit(), at(Some(&case), Some(1), Some(1)))
}

fn policy_record_forged() -> Outcome {
    let mut trail = Trail::default();
    let record = policy_record(&mut trail, human("mallory"));
    audit(trail.audit(), at(Some(&record), Some(1), Some(0)))
}

fn policy_record_mismatch() -> Outcome {
    let mut trail = Trail::default();
    let mut draft =
        lifecycle::adopt_policy(&custody_core::policy::Policy::default(), None, "built-in");
    if let EventBody::PolicyAdopted(adopted) = &mut draft.body {
        adopted.policy_hash = Sha256Hash::of(b"another policy");
    }
    let record = trail.append(None, Actor::system(), draft);
    audit(trail.audit(), at(Some(&record), Some(1), Some(0)))
}

fn policy_record_broken() -> Outcome {
    let mut trail = Trail::default();
    let record = policy_record(&mut trail, Actor::system());
    trail.append(
        Some(&record),
        Actor::system(),
        lifecycle::adopt_policy(
            &custody_core::policy::Policy::default(),
            Some(Sha256Hash::of(b"not the policy before it")),
            "built-in",
        ),
    );
    audit(trail.audit(), at(Some(&record), Some(2), Some(1)))
}

fn policy_approver_not_in_stage() -> Outcome {
    let policy: custody_core::policy::Policy =
        serde_json::from_value(serde_json::json!({"rules": [{
            "name": "staged",
            "subject_kinds": ["user"],
            "stages": [
                {"name": "owner", "approver_groups": ["owners"]},
                {"name": "security", "approver_groups": ["security"]}
            ]
        }]}))
        .unwrap();
    policy.validate().unwrap();
    let rule = policy.decide(&change("admin"));
    let mut trail = Trail::default();
    let case = open_under(&mut trail, human("alice"), &rule);
    let hash = trail.view(&case).change_hash;
    let mut sam = human("sam");
    sam.groups = vec!["security".to_string()];
    // Security before the owner: out of order.
    trail.append(Some(&case), sam, approval(hash));
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

fn evidence_unattached() -> Outcome {
    let mut trail = Trail::default();
    let record = trail.append(None, human("bob"), held("jira:SEC-9", b"shot"));
    assert!(trail.audit_at(time(3600)).ok, "within the grace period");
    audit(
        trail.audit_at(time(25 * 3600)),
        at(Some(&record), Some(1), Some(0)),
    )
}

fn evidence_unmatched_link() -> Outcome {
    // A case claims held evidence its record never released.
    let mut trail = Trail::default();
    let record = trail.append(None, human("bob"), held("jira:SEC-9", b"shot"));
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let EventBody::EvidenceHeld(held) = &trail.events[0].body else {
        unreachable!("the record starts with held evidence")
    };
    let joined = EventBody::EvidenceJoined(custody_core::event::EvidenceJoin {
        record: record.clone(),
        evidence: vec![held.evidence.clone()],
    });
    let draft = lifecycle::evidence(&trail.view(&case), &human("alice"), joined).unwrap();
    trail.append(Some(&case), human("alice"), draft);
    audit(trail.audit(), at(Some(&case), None, Some(2)))
}

fn notify_reviewer_not_notified() -> Outcome {
    // Automation executed before any reviewer heard of the approved change.
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let draft = lifecycle::approve(&trail.view(&case), &human("bob"), None).unwrap();
    trail.append(Some(&case), human("bob"), draft);
    trail.events[1].notify.push(custody_core::notice::Owed {
        delivery_id: "dl-review".to_string(),
        kind: custody_core::notice::CHANGE_APPROVED_FOR_REVIEW.to_string(),
        audience: custody_core::notice::Audience::Reviewers,
        channel: "hook".to_string(),
        recipient: None,
    });
    let mut robot = human("deploy-bot");
    robot.kind = PrincipalKind::Automation;
    let view = trail.view(&case);
    let draft =
        lifecycle::execute(view.approved().unwrap(), &robot, None, None, true, None).unwrap();
    trail.append(Some(&case), robot, draft);
    audit(trail.audit(), at(Some(&case), Some(3), Some(2)))
}

// Write-time refusals of the lifecycle.

fn refused<T: std::fmt::Debug>(result: Result<T, Refusal>) -> Outcome {
    Outcome::Refused(result.expect_err("the step must be refused"))
}

fn open_case() -> (Trail, CaseId) {
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    (trail, case)
}

fn sod_requester_cannot_deny() -> Outcome {
    let (trail, case) = open_case();
    refused(lifecycle::deny(&trail.view(&case), &human("alice"), None))
}

fn lifecycle_not_approved() -> Outcome {
    let (trail, case) = open_case();
    refused(trail.view(&case).approved().map(|_| ()))
}

fn lifecycle_not_executed() -> Outcome {
    let (mut trail, case) = open_case();
    let draft = lifecycle::approve(&trail.view(&case), &human("bob"), None).unwrap();
    trail.append(Some(&case), human("bob"), draft);
    refused(trail.view(&case).executed().map(|_| ()))
}

fn lifecycle_case_denied() -> Outcome {
    let (mut trail, case) = open_case();
    let draft = lifecycle::deny(&trail.view(&case), &human("bob"), None).unwrap();
    trail.append(Some(&case), human("bob"), draft);
    refused(lifecycle::approve(&trail.view(&case), &human("dave"), None))
}

fn lifecycle_already_executed() -> Outcome {
    let mut trail = Trail::default();
    let case = executed_case(&mut trail);
    refused(lifecycle::approve(&trail.view(&case), &human("dave"), None))
}

fn lifecycle_already_reviewed() -> Outcome {
    let mut trail = Trail::default();
    let case = executed_case(&mut trail);
    let view = trail.view(&case);
    let draft = lifecycle::review(
        view.executed().unwrap(),
        &human("dave"),
        custody_core::event::ReviewOutcome::Confirmed,
        None,
    )
    .unwrap();
    trail.append(Some(&case), human("dave"), draft);
    refused(trail.view(&case).executed().map(|_| ()))
}

fn approval_already_approved() -> Outcome {
    let mut trail = Trail::default();
    let mut rule = rule();
    rule.approvals = 2;
    let case = open_under(&mut trail, human("alice"), &rule);
    let draft = lifecycle::approve(&trail.view(&case), &human("bob"), None).unwrap();
    trail.append(Some(&case), human("bob"), draft);
    refused(lifecycle::approve(&trail.view(&case), &human("bob"), None))
}

fn observed_first() -> (Trail, CaseId) {
    let (mut trail, case) = open_case();
    let draft =
        lifecycle::execute_observed(&trail.view(&case), &human("carol"), None, None, None).unwrap();
    trail.append(Some(&case), human("carol"), draft);
    (trail, case)
}

fn lifecycle_approval_not_recorded() -> Outcome {
    let (trail, case) = observed_first();
    refused(trail.view(&case).executed().map(|_| ()))
}

fn lifecycle_not_open() -> Outcome {
    // On an approved case the same event is an ordinary execution: the
    // observed command is refused, not the event. (On an executed case the
    // rule table refuses first, with lifecycle.already-executed.)
    let (mut trail, case) = open_case();
    let hash = trail.view(&case).change_hash;
    trail.append(Some(&case), human("bob"), approval(hash));
    refused(lifecycle::execute_observed(
        &trail.view(&case),
        &human("carol"),
        None,
        None,
        None,
    ))
}

fn lifecycle_not_time_bound() -> Outcome {
    let mut trail = Trail::default();
    let case = executed_case(&mut trail);
    refused(lifecycle::execute_revocation(
        &trail.view(&case),
        &human("carol"),
        None,
        None,
    ))
}

fn lifecycle_already_revoked() -> Outcome {
    let mut trail = Trail::default();
    let timed = timed_change("admin", Some(3600));
    let case = trail.append(
        None,
        human("alice"),
        lifecycle::request(timed, None, None, &rule()).unwrap(),
    );
    let draft = lifecycle::approve(&trail.view(&case), &human("bob"), None).unwrap();
    trail.append(Some(&case), human("bob"), draft);
    let view = trail.view(&case);
    let draft = lifecycle::execute(
        view.approved().unwrap(),
        &human("carol"),
        None,
        None,
        true,
        None,
    )
    .unwrap();
    trail.append(Some(&case), human("carol"), draft);
    let draft =
        lifecycle::execute_revocation(&trail.view(&case), &human("carol"), None, None).unwrap();
    trail.append(Some(&case), human("carol"), draft);
    refused(lifecycle::execute_revocation(
        &trail.view(&case),
        &human("carol"),
        None,
        None,
    ))
}

fn capped() -> AppliedRule {
    let mut rule = rule();
    rule.max_duration_seconds = Some(3600);
    rule
}

fn policy_duration_required() -> Outcome {
    refused(lifecycle::request(change("admin"), None, None, &capped()))
}

fn policy_duration_too_long() -> Outcome {
    let long = timed_change("admin", Some(7200));
    refused(lifecycle::request(long, None, None, &capped()))
}

fn merge_same_case() -> Outcome {
    let (trail, case) = open_case();
    let view = trail.view(&case);
    refused(lifecycle::merge(&view, &view, &human("carol"), None))
}

fn merge_duplicate_executed() -> Outcome {
    let mut trail = Trail::default();
    let executed = executed_case(&mut trail);
    let other = trail.append(None, human("dave"), request_draft("reader"));
    refused(lifecycle::merge(
        &trail.view(&executed),
        &trail.view(&other),
        &human("carol"),
        None,
    ))
}

fn sod_requester_cannot_attest() -> Outcome {
    let (trail, case) = open_case();
    refused(lifecycle::approve_with(
        &trail.view(&case),
        &human("alice"),
        None,
        Some(chat("bob")),
    ))
}

fn approval_nothing_to_confirm() -> Outcome {
    let (trail, case) = open_case();
    refused(lifecycle::confirm_approval(
        &trail.view(&case),
        &human("bob"),
        &custody_core::EventId::generate(),
    ))
}

fn merge_not_allowed() -> Outcome {
    // Alice requested only the surviving case: she may not merge frank's
    // request into her own (that would close his request), nor may carol,
    // who requested neither and is no admin. Alice's merge is forged in.
    let mut trail = Trail::default();
    let survivor = trail.append(None, human("alice"), request_draft("admin"));
    let duplicate = trail.append(None, human("frank"), request_draft("root"));
    let (into_duplicate, into_survivor) = lifecycle::merge(
        &trail.view(&duplicate),
        &trail.view(&survivor),
        &human("frank"),
        None,
    )
    .unwrap();
    for outsider in ["alice", "carol"] {
        assert_eq!(
            lifecycle::merge(
                &trail.view(&duplicate),
                &trail.view(&survivor),
                &human(outsider),
                None
            )
            .unwrap_err()
            .rule,
            "merge.not-allowed"
        );
    }
    trail.append(Some(&duplicate), human("alice"), into_duplicate);
    trail.append(Some(&survivor), human("alice"), into_survivor);
    audit(trail.audit(), at(Some(&duplicate), Some(2), Some(2)))
}

fn lifecycle_break_glass_misplaced() -> Outcome {
    // A break-glass invocation slipped into a case already underway.
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let comment = lifecycle::comment(&trail.view(&case), &human("alice"), "note".into());
    trail.append(Some(&case), human("alice"), comment);
    let [_, invoked, _] = lifecycle::break_glass(
        change("admin"),
        "the database is down".to_string(),
        None,
        &rule(),
        None,
        time(0),
    )
    .unwrap();
    trail.append(Some(&case), human("alice"), invoked);
    audit(trail.audit(), at(Some(&case), Some(3), Some(2)))
}

fn lifecycle_system_event_forged() -> Outcome {
    // An escalation recorded by a person, not by the ledger's `system`.
    let mut trail = Trail::default();
    let case = trail.append(None, human("alice"), request_draft("admin"));
    let escalation = lifecycle::escalate(lifecycle::REVIEW_OVERDUE, time(0));
    trail.append(Some(&case), human("carol"), escalation);
    audit(trail.audit(), at(Some(&case), Some(2), Some(1)))
}

// ---------------------------------------------------------------------------
// Fixtures: the witness policy (`verify --witness --min-witnesses`)
// ---------------------------------------------------------------------------

fn witness_key() -> custody_log::CosignerKey {
    custody_log::CosignerKey::from_seed("witness.test/w1", &[9; 32]).unwrap()
}

/// A stored cosignature by the test witness of the log's checkpoint of the
/// first `size` rows.
fn cosignature_row(
    rows: &[StoredEvent],
    size: usize,
) -> custody_core::audit::witness::CosignatureRow {
    let note = signed(size as u64, root_of(&rows[..size]), &log_key());
    let text = custody_log::note::Note::parse(note.as_bytes())
        .unwrap()
        .text()
        .to_string();
    custody_core::audit::witness::CosignatureRow {
        witness: "w1".into(),
        size: size as u64,
        line: witness_key()
            .cosign(&text, 1_700_000_000)
            .unwrap()
            .to_line()
            .trim_end()
            .to_string(),
        note,
    }
}

/// The honest log audited as `verify --witness --min-witnesses 1` does:
/// the cosigned checkpoints are checked like ones held outside, and the
/// policy's findings added.
fn witnessed(
    trail: &Trail,
    rows: &[StoredEvent],
    rows_cosigned: &[custody_core::audit::witness::CosignatureRow],
) -> Report {
    let policy = custody_core::audit::witness::WitnessPolicy {
        witnesses: vec![witness_key().verifier()],
        min: 1,
    };
    let outcome = custody_core::audit::witness::check(rows_cosigned, &policy, rows.len() as u64);
    let mut log = honest_log(rows);
    // The server signed at 3 as well: what the witness cosigned is stored.
    log.checkpoints.insert(
        0,
        StoredCheckpointRow {
            size: 3,
            root: root_of(&rows[..3]).to_vec(),
            note: signed(3, root_of(&rows[..3]), &log_key()),
        },
    );
    log.witnessed = outcome.newest.clone();
    log.outside.extend(outcome.cosigned);
    let mut report = audit_log(trail, rows, log);
    report.add_findings(outcome.findings);
    report
}

fn witness_no_quorum() -> Outcome {
    let (trail, _, _, _) = three_cases();
    let rows = trail.rows();
    audit(witnessed(&trail, &rows, &[]), at(None, None, None))
}

fn witness_bad_cosignature() -> Outcome {
    let (trail, _, _, _) = three_cases();
    let rows = trail.rows();
    // The witness's line of size 3, stored with the checkpoint of size 4.
    let mut forged = cosignature_row(&rows, 3);
    let honest = cosignature_row(&rows, 4);
    forged.note = honest.note;
    forged.size = 4;
    audit_also(
        witnessed(&trail, &rows, &[forged]),
        at(None, None, Some(3)),
        &["witness.no-quorum"],
    )
}

// ---------------------------------------------------------------------------
// The continuous monitor's incremental audit
// ---------------------------------------------------------------------------

/// Whatever the split, a [`custody_core::audit::Watch`] fed the rows in two
/// scans (a checkpoint signed after each) finds what one full audit of the
/// same rows and checkpoints finds: on an honest trail, and on one whose
/// comment was edited before either scan read it.
#[test]
fn the_incremental_audit_finds_what_the_full_audit_finds() {
    use custody_core::audit::{Watch, WatchOptions};
    let (trail, _, _, _) = three_cases();
    let honest = trail.rows();
    let mut edited = trail.rows();
    let at = edited[2]
        .bytes
        .windows(4)
        .position(|window| window == b"fine")
        .unwrap();
    edited[2].bytes[at..at + 4].copy_from_slice(b"good");
    let now = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
    let key = |finding: &custody_core::audit::Finding| {
        (
            finding.code.as_str().to_string(),
            finding.case_id.clone(),
            finding.log_index,
        )
    };
    for rows in [honest, edited] {
        let n = rows.len();
        for split in 1..n {
            let checkpoint = |size: usize| {
                let root = root_of(&rows[..size]);
                StoredCheckpointRow {
                    size: size as u64,
                    root: root.to_vec(),
                    note: signed(size as u64, root, &log_key()),
                }
            };
            let checkpoints = vec![checkpoint(split), checkpoint(n)];
            let mut full = Auditor::with_log(LogAudit {
                checkpoints: checkpoints.clone(),
                ..honest_log(&rows)
            })
            .at(now);
            for row in &rows {
                full.observe_event(row);
            }
            let mut expected: Vec<_> = full
                .finish(trail.heads())
                .findings
                .iter()
                .filter(|finding| finding.code != "checkpoint.none-outside")
                .map(key)
                .collect();
            expected.sort();

            let mut watch = Watch::new(WatchOptions {
                trusted_keys: vec![log_key().verifier_key()],
                ..WatchOptions::default()
            });
            watch.begin_scan(&checkpoints[..1], split as u64);
            for row in &rows[..split] {
                assert!(watch.observe(row));
            }
            assert!(!watch.finish_pass());
            watch.report(Vec::new(), None, now);
            watch.begin_scan(&checkpoints, n as u64);
            for row in &rows {
                assert!(watch.observe(row));
            }
            assert!(!watch.finish_pass(), "nothing verified changed");
            assert_eq!(watch.verified(), n as u64);
            let mut found: Vec<_> = watch
                .report(trail.heads(), None, now)
                .findings
                .iter()
                .map(key)
                .collect();
            found.sort();
            assert_eq!(found, expected, "split at {split}");
        }
    }
}

/// A row the watch verified, edited before the next scan: the scan starts
/// over and reports what `verify` reports.
#[test]
fn the_incremental_audit_starts_over_when_a_verified_row_changes() {
    use custody_core::audit::{Watch, WatchOptions};
    let (trail, _, _, _) = three_cases();
    let rows = trail.rows();
    let mut watch = Watch::new(WatchOptions {
        trusted_keys: vec![log_key().verifier_key()],
        ..WatchOptions::default()
    });
    let log = honest_log(&rows);
    watch.begin_scan(&log.checkpoints, rows.len() as u64);
    rows.iter().for_each(|row| assert!(watch.observe(row)));
    assert!(!watch.finish_pass());
    let now = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
    assert!(watch.report(trail.heads(), None, now).ok);
    let mut edited = rows.clone();
    let last = edited[2].bytes.len() - 2;
    edited[2].bytes[last] ^= 1;
    watch.begin_scan(&log.checkpoints, rows.len() as u64);
    let read: Vec<bool> = edited.iter().map(|row| watch.observe(row)).collect();
    assert_eq!(
        read,
        [true, true, false, false],
        "it stops at the edited row"
    );
    assert!(watch.finish_pass());
    watch.restart(&log.checkpoints, rows.len() as u64);
    edited.iter().for_each(|row| assert!(watch.observe(row)));
    assert!(!watch.finish_pass());
    assert!(watch.last_change().is_some());
    let report = watch.report(trail.heads(), None, now);
    let codes: Vec<&str> = report.findings.iter().map(|f| f.code.as_str()).collect();
    assert!(codes.contains(&"log.leaf-mismatch"), "{codes:?}");
    assert!(codes.contains(&"checkpoint.root-mismatch"), "{codes:?}");
}

/// The audit lets go of notifications that can no longer make a finding
/// (delivered ones) as it reads a long log; one given up on, and an
/// automated execution ahead of its reviewers, read before that, are still
/// reported.
#[test]
fn delivered_notifications_are_let_go_of_and_the_undelivered_still_found() {
    let owe = |trail: &mut Trail, index: usize, id: &str, kind: &str, audience| {
        trail.events[index].notify.push(custody_core::notice::Owed {
            delivery_id: id.to_string(),
            kind: kind.to_string(),
            audience,
            channel: "hook".to_string(),
            recipient: None,
        });
    };
    let attempt = |id: &str, outcome| Attempt {
        delivery_id: id.to_string(),
        channel: "hook".to_string(),
        recipient: None,
        attempt: 1,
        outcome,
        status: Some(202),
        error: None,
        latency_ms: 3,
    };
    let mut trail = Trail::default();
    // Given up on, never escalated.
    let undelivered = trail.append(None, human("alice"), request_draft("admin"));
    owe(
        &mut trail,
        0,
        "dl-dead",
        "change_requested",
        custody_core::notice::Audience::Approvers,
    );
    for draft in
        lifecycle::record_delivery(attempt("dl-dead", DeliveryOutcome::Dead), false, time(10))
    {
        trail.append(Some(&undelivered), Actor::system(), draft);
    }
    // Automation ahead of the reviewers, whose notice is delivered after.
    let automated = trail.append(None, human("alice"), request_draft("admin"));
    let draft = lifecycle::approve(&trail.view(&automated), &human("bob"), None).unwrap();
    trail.append(Some(&automated), human("bob"), draft);
    let approved_at = trail.events.len() - 1;
    owe(
        &mut trail,
        approved_at,
        "dl-review",
        custody_core::notice::CHANGE_APPROVED_FOR_REVIEW,
        custody_core::notice::Audience::Reviewers,
    );
    let mut robot = human("deploy-bot");
    robot.kind = PrincipalKind::Automation;
    let view = trail.view(&automated);
    let draft =
        lifecycle::execute(view.approved().unwrap(), &robot, None, None, true, None).unwrap();
    trail.append(Some(&automated), robot, draft);
    for draft in lifecycle::record_delivery(
        attempt("dl-review", DeliveryOutcome::Delivered),
        false,
        time(100_000),
    ) {
        trail.append(Some(&automated), Actor::system(), draft);
    }
    // Then many notifications, each delivered: enough for the audit to
    // let go of what it holds (it does at 4,096 kept).
    for index in 0..5_000 {
        let case = trail.append(None, human("alice"), request_draft("reader"));
        let last = trail.events.len() - 1;
        let id = format!("dl-{index}");
        owe(
            &mut trail,
            last,
            &id,
            "change_requested",
            custody_core::notice::Audience::Approvers,
        );
        for draft in
            lifecycle::record_delivery(attempt(&id, DeliveryOutcome::Delivered), false, time(20))
        {
            trail.append(Some(&case), Actor::system(), draft);
        }
    }
    let report = trail.audit_at(time(200_000));
    let found: Vec<(String, Option<String>)> = report
        .findings
        .iter()
        .filter(|finding| finding.code.as_str().starts_with("notify."))
        .map(|finding| (finding.code.as_str().to_string(), finding.case_id.clone()))
        .collect();
    assert!(
        found.contains(&(
            Code::NotifyUndelivered.as_str().to_string(),
            Some(undelivered.to_string())
        )),
        "{found:?}"
    );
    assert!(
        found.contains(&(
            Code::NotifyReviewerNotNotified.as_str().to_string(),
            Some(automated.to_string())
        )),
        "{found:?}"
    );
    assert_eq!(found.len(), 2, "{found:?}");
}

/// One scan of the monitor over `rows` and `heads` as `Store::watch` runs
/// it: pages of rows, the retired cases a page writes to read back first,
/// the case rows after the rows, and a second pass over everything when
/// something verified changed.
fn watch_scan(
    watch: &mut custody_core::audit::Watch,
    rows: &[StoredEvent],
    heads: &[StoredCaseHead],
    checkpoints: &[StoredCheckpointRow],
    now: Timestamp,
) -> Report {
    watch.begin_scan(checkpoints, rows.len() as u64);
    for _pass in 0..2 {
        'pages: for page in rows.chunks(3) {
            for case_id in watch.cases_to_restore(page) {
                let before = watch.restore_before();
                let case_rows: Vec<StoredEvent> = rows
                    .iter()
                    .filter(|row| row.case_id == case_id && row.log_index < before)
                    .cloned()
                    .collect();
                watch.restore(&case_id, &case_rows);
            }
            for row in page {
                if !watch.observe(row) {
                    break 'pages;
                }
            }
        }
        if watch.finish_pass() {
            watch.restart(checkpoints, rows.len() as u64);
            continue;
        }
        for head in heads {
            watch.observe_head(head.clone());
        }
        if !watch.heads_changed() {
            break;
        }
        watch.restart(checkpoints, rows.len() as u64);
    }
    watch.report(Vec::new(), None, now)
}

/// A finding about a case: its code, case, sequence number and log index.
type CaseFinding = (String, Option<String>, Option<u64>, Option<u64>);

/// The findings about cases, comparable between the monitor and `verify`.
fn case_findings(report: &Report) -> Vec<CaseFinding> {
    let mut found: Vec<_> = report
        .findings
        .iter()
        .filter(|finding| finding.case_id.is_some())
        .map(|finding| {
            (
                finding.code.as_str().to_string(),
                finding.case_id.clone(),
                finding.seq,
                finding.log_index,
            )
        })
        .collect();
    found.sort();
    found
}

/// The monitor lets go of idle cases between scans and keeps only a sum of
/// their case rows; a retired case written to again is rebuilt from its
/// rows; a case with a deadline still to come is kept. At every scan it
/// finds about the cases what a full audit finds.
#[test]
fn the_monitor_lets_go_of_idle_cases_and_takes_them_back_when_written_to() {
    use custody_core::audit::{Watch, WatchOptions};
    let mut trail = Trail::default();
    let plain: Vec<CaseId> = (0..4)
        .map(|index| trail.append(None, human("alice"), request_draft(&format!("role{index}"))))
        .collect();
    // Executed without approval: an end-of-trail finding with no deadline.
    let unapproved = trail.append(None, human("alice"), request_draft("admin"));
    trail.append(Some(&unapproved), human("carol"), execution(None));
    // Break-glass: its post-hoc review is due later.
    let mut glass = None;
    for draft in lifecycle::break_glass(
        change("admin"),
        "the database is down".to_string(),
        None,
        &rule(),
        None,
        time(0),
    )
    .unwrap()
    {
        glass = Some(trail.append(glass.as_ref(), human("carol"), draft));
    }
    let glass = glass.unwrap();
    let deadline = trail.view(&glass).break_glass_deadline.unwrap();
    let before_deadline = time(60);
    assert!(before_deadline < deadline);

    let mut watch = Watch::new(WatchOptions {
        trusted_keys: vec![log_key().verifier_key()],
        idle_after_entries: 1,
        ..WatchOptions::default()
    });
    let mut checkpoints: Vec<StoredCheckpointRow> = Vec::new();
    let mut scan = |watch: &mut Watch, trail: &Trail, heads: Vec<StoredCaseHead>, now| {
        let rows = trail.rows();
        if checkpoints.last().map(|row| row.size) != Some(rows.len() as u64) {
            checkpoints.extend(honest_log(&rows).checkpoints);
        }
        let report = watch_scan(watch, &rows, &heads, &checkpoints, now);
        let full = run(&rows, heads, Auditor::new().at(now));
        assert_eq!(case_findings(&report), case_findings(&full), "{report:#?}");
        report
    };

    // Cases are let go of one entry after their latest (`idle_after`),
    // all but the break-glass case, whose review is still to come (and
    // which holds the latest row).
    let first = scan(&mut watch, &trail, trail.heads(), before_deadline);
    assert!(
        !case_findings(&first).is_empty(),
        "the unapproved execution is found"
    );
    assert_eq!((watch.held_cases(), watch.retired_cases()), (1, 5));
    scan(&mut watch, &trail, trail.heads(), before_deadline);
    assert_eq!((watch.held_cases(), watch.retired_cases()), (1, 5));
    // A retired case written to again, and a new one.
    trail.append(Some(&plain[1]), human("bob"), comment_draft("looks fine"));
    trail.append(None, human("dave"), request_draft("reader"));
    let third = scan(&mut watch, &trail, trail.heads(), before_deadline);
    assert!(
        third
            .findings
            .iter()
            .all(|finding| finding.code != Code::ChainMissingStart),
        "{third:#?}"
    );
    // The commented case was taken back, then let go of again; the new
    // one holds the latest row.
    assert_eq!((watch.held_cases(), watch.retired_cases()), (2, 5));
    // The kept case falls due.
    let overdue = scan(&mut watch, &trail, trail.heads(), deadline.plus_seconds(60));
    assert!(
        overdue
            .findings
            .iter()
            .any(|finding| finding.code == Code::BreakGlassReviewOverdue
                && finding.case_id.as_deref() == Some(glass.as_str())),
        "{overdue:#?}"
    );
    // Reviewed at last, and another case written after it: the break-glass
    // case has no deadline left and is let go of; the one written to last
    // is taken back and held.
    assert_eq!((watch.held_cases(), watch.retired_cases()), (2, 5));
    let view = trail.view(&glass);
    let draft = lifecycle::review(
        view.executed().unwrap(),
        &human("dave"),
        custody_core::event::ReviewOutcome::Confirmed,
        None,
    )
    .unwrap();
    trail.append(Some(&glass), human("dave"), draft);
    trail.append(Some(&plain[2]), human("bob"), comment_draft("closed"));
    scan(
        &mut watch,
        &trail,
        trail.heads(),
        deadline.plus_seconds(120),
    );
    assert_eq!((watch.held_cases(), watch.retired_cases()), (1, 6));
    // A retired case's row edited: the scan starts over and names it.
    assert!(watch.retired_cases() > 0);
    let mut heads = trail.heads();
    let edited = heads
        .iter_mut()
        .find(|head| head.case_id == plain[3].as_str())
        .unwrap();
    edited.state = "approved".to_string();
    let named = scan(&mut watch, &trail, heads, before_deadline);
    assert!(
        watch
            .last_change()
            .is_some_and(|why| why.contains("case row")),
        "{:?}",
        watch.last_change()
    );
    assert!(
        named
            .findings
            .iter()
            .any(|finding| finding.code == Code::CaseProjectionMismatch
                && finding.case_id.as_deref() == Some(plain[3].as_str())),
        "{named:#?}"
    );
    // A row added for a case without events, and a retired case's row
    // deleted: each is named.
    for (edit, code) in [
        ("added", Code::CaseEventsMissing),
        ("deleted", Code::CaseMissingHead),
    ] {
        scan(&mut watch, &trail, trail.heads(), before_deadline);
        scan(&mut watch, &trail, trail.heads(), before_deadline);
        assert!(watch.retired_cases() > 0);
        let mut heads = trail.heads();
        if edit == "added" {
            heads.push(StoredCaseHead {
                case_id: CaseId::generate().to_string(),
                head_seq: 1,
                head_hash: "00".repeat(32),
                state: "open".to_string(),
                drill: false,
            });
        } else {
            heads.retain(|head| head.case_id != plain[0].as_str());
        }
        let named = scan(&mut watch, &trail, heads, before_deadline);
        assert!(
            named.findings.iter().any(|finding| finding.code == code),
            "{edit}: {named:#?}"
        );
        // A row of no case seen is named at once; a retired case's row
        // gone makes the scan start over.
        assert_eq!(watch.last_change().is_some(), edit == "deleted", "{edit}");
    }
    // A row read back for a retired case that is not the one verified.
    scan(&mut watch, &trail, trail.heads(), before_deadline);
    scan(&mut watch, &trail, trail.heads(), before_deadline);
    assert!(watch.retired_cases() > 0);
    let rows = trail.rows();
    let retired_rows: Vec<StoredEvent> = rows
        .iter()
        .filter(|row| row.case_id == plain[0].as_str())
        .cloned()
        .collect();
    let mut doctored = retired_rows.clone();
    let last = doctored[0].bytes.len() - 2;
    doctored[0].bytes[last] ^= 1;
    watch.begin_scan(&checkpoints, rows.len() as u64);
    watch.restore(plain[0].as_str(), &doctored);
    assert!(!watch.observe(&rows[0]), "the scan stops at once");
    assert!(watch.finish_pass(), "and starts over");
}

/// A caller that gives the case rows to the report itself (not to
/// `observe_head` first): a retired case's row edited is reported, the
/// cases held are compared as before, and the next scan starts over and
/// names the case.
#[test]
fn a_report_given_the_case_rows_still_checks_the_retired_ones() {
    use custody_core::audit::{Watch, WatchOptions};
    let (trail, a, _, _) = three_cases();
    let rows = trail.rows();
    let log = honest_log(&rows);
    let now = time(3_600);
    let mut watch = Watch::new(WatchOptions {
        trusted_keys: vec![log_key().verifier_key()],
        idle_after_entries: 1,
        ..WatchOptions::default()
    });
    let scan = |watch: &mut Watch, heads: Vec<StoredCaseHead>| {
        watch.begin_scan(&log.checkpoints, rows.len() as u64);
        rows.iter().for_each(|row| assert!(watch.observe(row)));
        watch.finish_pass();
        watch.report(heads, None, now)
    };
    assert!(scan(&mut watch, trail.heads()).ok);
    assert!(watch.retired_cases() > 0, "cases let go of");
    let mut edited = trail.heads();
    edited
        .iter_mut()
        .find(|head| head.case_id == a.as_str())
        .unwrap()
        .state = "approved".to_string();
    let report = scan(&mut watch, edited.clone());
    let codes: Vec<&str> = report.findings.iter().map(|f| f.code.as_str()).collect();
    assert_eq!(
        codes,
        [Code::ChainHeadMismatch.as_str()],
        "only the edit, no held case without its row: {report:#?}"
    );
    watch.begin_scan(&log.checkpoints, rows.len() as u64);
    rows.iter().for_each(|row| {
        watch.observe(row);
    });
    assert!(watch.finish_pass(), "the next scan starts over");
    watch.restart(&log.checkpoints, rows.len() as u64);
    rows.iter().for_each(|row| assert!(watch.observe(row)));
    assert!(!watch.finish_pass());
    let named = watch.report(edited, None, now);
    assert!(
        named
            .findings
            .iter()
            .any(|finding| finding.code == Code::CaseProjectionMismatch
                && finding.case_id.as_deref() == Some(a.as_str())),
        "{named:#?}"
    );
}

/// A merge is judged with the surviving case as it stood: a survivor the
/// monitor let go of is read back before the merge's first row, so a merge
/// into a case merged already is found as a full audit finds it.
#[test]
fn a_merge_into_a_case_let_go_of_is_judged_with_it() {
    use custody_core::audit::{Watch, WatchOptions};
    let mut trail = Trail::default();
    // Alice's first request is merged (honestly) into her second.
    let survivor = trail.append(None, human("alice"), request_draft("admin"));
    let kept = trail.append(None, human("alice"), request_draft("admin-2"));
    let (into_duplicate, into_survivor) = lifecycle::merge(
        &trail.view(&survivor),
        &trail.view(&kept),
        &human("alice"),
        None,
    )
    .unwrap();
    trail.append(Some(&survivor), human("alice"), into_duplicate);
    trail.append(Some(&kept), human("alice"), into_survivor);
    let duplicate = trail.append(None, human("alice"), request_draft("root"));
    trail.append(None, human("carol"), request_draft("reader"));
    let mut watch = Watch::new(WatchOptions {
        trusted_keys: vec![log_key().verifier_key()],
        idle_after_entries: 1,
        ..WatchOptions::default()
    });
    let now = time(3_600);
    let mut checkpoints = honest_log(&trail.rows()).checkpoints;
    watch_scan(&mut watch, &trail.rows(), &trail.heads(), &checkpoints, now);
    assert!(watch.retired_cases() >= 2, "the merged case is let go of");
    // A merge of another request into the case merged already, forged in:
    // only the merged case as it stood tells it is wrong. Its other half
    // comes a page later (`watch_scan` reads pages of 3), so in the
    // merge's page only the merge names the merged case.
    let (mut into_duplicate, mut into_survivor) = lifecycle::merge(
        &trail.view(&duplicate),
        &trail.view(&kept),
        &human("alice"),
        None,
    )
    .unwrap();
    if let EventBody::DuplicateMerged(link) = &mut into_duplicate.body {
        link.other_case = survivor.clone();
    }
    if let EventBody::DuplicateLinked(link) = &mut into_survivor.body {
        link.other_case = duplicate.clone();
    }
    trail.append(Some(&duplicate), human("alice"), into_duplicate);
    trail.append(None, human("dave"), request_draft("writer"));
    trail.append(None, human("erin"), request_draft("auditor"));
    trail.append(Some(&survivor), human("alice"), into_survivor);
    let rows = trail.rows();
    checkpoints.extend(honest_log(&rows).checkpoints);
    let report = watch_scan(&mut watch, &rows, &trail.heads(), &checkpoints, now);
    let full = run(&rows, trail.heads(), Auditor::new().at(now));
    assert!(
        full.findings.iter().any(
            |finding| finding.case_id.as_deref() == Some(duplicate.as_str())
                && finding.seq == Some(2)
        ),
        "the forged merge is found: {full:#?}"
    );
    assert_eq!(case_findings(&report), case_findings(&full), "{report:#?}");
}

/// What the monitor holds follows the cases in play: a log that grows by
/// new cases at every scan keeps about one scan's worth of trails.
#[test]
fn the_monitor_holds_the_cases_of_the_last_scan_not_of_the_whole_log() {
    use custody_core::audit::{Watch, WatchOptions};
    let mut trail = Trail::default();
    let mut watch = Watch::new(WatchOptions {
        trusted_keys: vec![log_key().verifier_key()],
        idle_after_entries: 50,
        ..WatchOptions::default()
    });
    let mut checkpoints: Vec<StoredCheckpointRow> = Vec::new();
    let now = time(3_600);
    for scan in 0..5_u64 {
        for index in 0..50 {
            trail.append(
                None,
                human("alice"),
                request_draft(&format!("role-{scan}-{index}")),
            );
        }
        let rows = trail.rows();
        checkpoints.extend(honest_log(&rows).checkpoints);
        let report = watch_scan(&mut watch, &rows, &trail.heads(), &checkpoints, now);
        assert!(
            report
                .findings
                .iter()
                .all(|finding| finding.case_id.is_none()),
            "{report:#?}"
        );
        // The cases written before this scan are let go of once it is done.
        assert_eq!(watch.held_cases(), 50);
        assert_eq!(watch.retired_cases(), 50 * scan);
    }
}

/// An operator who rewrote the entries after an old cosigned checkpoint
/// deletes the newer cosignatures: the tail the witnesses no longer cover
/// is an error once it is older than signing and cosigning take, like
/// `log.uncovered-tail`, not the normal tail of a live log.
#[test]
fn an_old_unwitnessed_tail_is_high_and_a_young_one_info() {
    let (trail, _, _, _) = three_cases();
    let rows = trail.rows();
    let severity = |now: Timestamp| {
        let policy = custody_core::audit::witness::WitnessPolicy {
            witnesses: vec![witness_key().verifier()],
            min: 1,
        };
        let outcome = custody_core::audit::witness::check(&[cosignature_row(&rows, 2)], &policy, 4);
        let mut log = honest_log(&rows);
        log.now = Some(now);
        log.witnessed = outcome.newest.clone();
        log.outside.extend(outcome.cosigned);
        let mut report = audit_log(&trail, &rows, log);
        report.add_findings(outcome.findings);
        let tails: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.code == Code::WitnessUncoveredTail)
            .map(|f| (f.severity, f.log_index, f.message.clone()))
            .collect();
        assert_eq!(tails.len(), 1, "{:?}", report.findings);
        tails.into_iter().next().unwrap()
    };
    // Entry 2 was recorded at T0 + 2 s.
    let (young, index, _) = severity(time(10));
    assert_eq!(
        (young, index),
        (custody_core::severity::Severity::Info, Some(2))
    );
    let (old, _, message) = severity(time(24 * 3600));
    assert_eq!(old, custody_core::severity::Severity::High, "{message}");
    assert!(message.contains("deleted"), "{message}");
}
