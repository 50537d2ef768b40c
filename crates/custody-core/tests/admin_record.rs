//! The administration record at the level of the pure domain: principals,
//! tokens and delegation grants are events; every administrative act is
//! re-checked against who was an admin when it was recorded, every vendor
//! action against its grant as it stood, and the stored projections against
//! the record. Each forgery is named by its own code.

#![allow(clippy::unwrap_used, clippy::cast_possible_wrap)]

use custody_core::admin::{self, AdminRows, IdentityRow, TokenRow};
use custody_core::audit::{Auditor, Report, StoredEvent};
use custody_core::delegation::DelegationGrant;
use custody_core::lifecycle::{self, Draft, Placement};
use custody_core::model::{Actor, AuthContext, Change, ChangeKind, Principal, PrincipalKind, Via};
use custody_core::policy::AppliedRule;
use custody_core::{CaseId, CaseView, Event, Timestamp};

fn actor(name: &str, kind: PrincipalKind, org: Option<&str>) -> Actor {
    Actor {
        principal: name.parse().unwrap(),
        kind,
        org: org.map(str::to_string),
        groups: Vec::new(),
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Cli,
        auth: AuthContext::Token {
            token_id: format!("tok_{name}"),
        },
    }
}

fn principal(name: &str, kind: PrincipalKind, groups: &[&str], org: Option<&str>) -> Principal {
    Principal {
        id: name.parse().unwrap(),
        display_name: name.to_string(),
        kind,
        groups: groups.iter().map(|group| group.to_string()).collect(),
        org: org.map(str::to_string),
    }
}

fn change() -> Change {
    Change::new(
        "user:ann".parse().unwrap(),
        ChangeKind::Grant,
        "db-reader".to_string(),
        Some("prod-db".to_string()),
        None,
    )
    .unwrap()
}

const T0: i64 = 1_800_000_000_000_000;

/// A log of several cases, sealed and chained as the store does.
#[derive(Default)]
struct Log {
    events: Vec<Event>,
}

impl Log {
    fn append(&mut self, case: Option<&CaseId>, actor: Actor, draft: Draft) -> CaseId {
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
        let recorded_at = Timestamp::from_micros(T0 + self.events.len() as i64);
        let event = draft.seal(
            actor,
            Placement {
                case_id: case_id.clone(),
                seq,
                prev_hash,
                recorded_at,
                occurred_at: None,
                idempotency_key: None,
                origin: None,
            },
        );
        self.events.push(event);
        case_id
    }

    fn audit(&self, rows: Option<&AdminRows>) -> Report {
        let mut auditor = Auditor::new();
        for (index, event) in self.events.iter().enumerate() {
            auditor.observe_event(&StoredEvent {
                log_index: index as u64,
                case_id: event.case_id.to_string(),
                seq: event.seq as i64,
                bytes: event.canonical_bytes(),
                stored_leaf: None,
            });
        }
        if let Some(rows) = rows {
            auditor.check_admin_rows(rows);
        }
        let heads = self
            .case_ids()
            .into_iter()
            .filter_map(|case_id| {
                CaseView::replay(self.events.iter().filter(|event| event.case_id == case_id))
            })
            .map(|view| custody_core::audit::StoredCaseHead {
                drill: false,
                case_id: view.case_id.to_string(),
                head_seq: view.head_seq as i64,
                head_hash: view.head_hash.to_hex(),
                state: view.state.as_str().to_string(),
            })
            .collect::<Vec<_>>();
        auditor.finish(heads)
    }

    fn case_ids(&self) -> Vec<CaseId> {
        let mut ids: Vec<CaseId> = Vec::new();
        for event in &self.events {
            if !ids.contains(&event.case_id) {
                ids.push(event.case_id.clone());
            }
        }
        ids
    }
}

fn codes(report: &Report) -> Vec<&'static str> {
    report
        .findings
        .iter()
        .map(|finding| finding.code.as_str())
        .collect()
}

fn grant(id: &str, valid_until: i64) -> DelegationGrant {
    DelegationGrant {
        grant_id: id.to_string(),
        vendor_org: "msp-co".to_string(),
        principals: vec!["vera".parse().unwrap()],
        on_behalf_of: "dba-team".to_string(),
        entitlements: vec!["db-*".to_string()],
        resources: vec!["prod-*".to_string()],
        valid_until: Timestamp::from_micros(valid_until),
        revoked_at: None,
        granted_by: "admin".parse().unwrap(),
        granted_at: Timestamp::from_micros(T0),
    }
}

/// `init` (system adds the first admin), the admin adds alice, vera (a
/// vendor) and grants msp-co a delegation; alice opens a case.
fn deployment() -> (Log, CaseId, CaseId) {
    let mut log = Log::default();
    let system = Actor::system();
    let admin_actor = actor("admin", PrincipalKind::Human, None);
    let record = log.append(
        None,
        system.clone(),
        admin::principal_added(
            &principal("admin", PrincipalKind::Human, &["admins"], None),
            true,
        ),
    );
    log.append(
        Some(&record),
        system,
        admin::token_issued(
            "tok_admin",
            &"admin".parse().unwrap(),
            &"ab".repeat(32),
            None,
            true,
        ),
    );
    for added in [
        principal("alice", PrincipalKind::Human, &[], None),
        principal("vera", PrincipalKind::Vendor, &[], Some("msp-co")),
    ] {
        log.append(
            Some(&record),
            admin_actor.clone(),
            admin::principal_added(&added, false),
        );
    }
    log.append(
        Some(&record),
        admin_actor,
        admin::delegation_granted(&grant("dg_1", T0 + 1_000_000_000), false),
    );
    let case = log.append(
        None,
        actor("alice", PrincipalKind::Human, None),
        lifecycle::request(change(), None, None, &AppliedRule::brief_default()).unwrap(),
    );
    (log, record, case)
}

fn vendor(grant_id: &str) -> Actor {
    let mut vera = actor("vera", PrincipalKind::Vendor, Some("msp-co"));
    vera.delegation_grant = Some(grant_id.to_string());
    vera.on_behalf_of = Some("dba-team".to_string());
    vera
}

fn comment(log: &Log, case: &CaseId, actor: &Actor) -> Draft {
    let view = CaseView::replay(log.events.iter().filter(|event| &event.case_id == case)).unwrap();
    lifecycle::comment(&view, actor, "done".to_string())
}

#[test]
fn an_honest_administration_record_and_vendor_action_pass() {
    let (mut log, _, case) = deployment();
    let draft = comment(&log, &case, &vendor("dg_1"));
    log.append(Some(&case), vendor("dg_1"), draft);
    let report = log.audit(None);
    assert!(report.ok, "{:#?}", report.findings);
    assert_eq!(report.checked.admin_events, 5);
    assert_eq!(report.checked.delegated_actions, 1);
}

#[test]
fn a_vendor_action_recorded_after_its_grant_was_revoked_is_named() {
    let (mut log, record, case) = deployment();
    log.append(
        Some(&record),
        actor("admin", PrincipalKind::Human, None),
        admin::delegation_revoked("dg_1", Timestamp::from_micros(T0 + 6), false),
    );
    let draft = comment(&log, &case, &vendor("dg_1"));
    log.append(Some(&case), vendor("dg_1"), draft);
    let report = log.audit(None);
    assert_eq!(codes(&report), vec!["delegation.grant-revoked"]);
    assert_eq!(report.findings[0].case_id.as_deref(), Some(case.as_str()));
    assert_eq!(report.findings[0].log_index, Some(7));
}

#[test]
fn vendor_actions_outside_their_grant_are_named_by_what_is_wrong() {
    // A grant that ended, one never granted, another party served, another
    // entitlement.
    let (mut log, record, case) = deployment();
    log.append(
        Some(&record),
        actor("admin", PrincipalKind::Human, None),
        admin::delegation_granted(&grant("dg_short", T0 + 7), false),
    );
    let draft = comment(&log, &case, &vendor("dg_short"));
    log.append(Some(&case), vendor("dg_short"), draft);
    let draft = comment(&log, &case, &vendor("dg_forged"));
    log.append(Some(&case), vendor("dg_forged"), draft);
    let mut elsewhere = vendor("dg_1");
    elsewhere.on_behalf_of = Some("finance".to_string());
    let draft = comment(&log, &case, &elsewhere);
    log.append(Some(&case), elsewhere, draft);
    let report = log.audit(None);
    assert_eq!(
        codes(&report),
        vec![
            "delegation.grant-expired",
            "delegation.grant-unrecorded",
            "delegation.grant-mismatch",
        ],
        "{:#?}",
        report.findings
    );

    let mut log = Log::default();
    let (base, _, _) = deployment();
    log.events = base.events;
    let other = log.append(
        None,
        actor("alice", PrincipalKind::Human, None),
        lifecycle::request(
            Change::new(
                "user:ann".parse().unwrap(),
                ChangeKind::Grant,
                "admin".to_string(),
                Some("prod-db".to_string()),
                None,
            )
            .unwrap(),
            None,
            None,
            &AppliedRule::brief_default(),
        )
        .unwrap(),
    );
    let draft = comment(&log, &other, &vendor("dg_1"));
    log.append(Some(&other), vendor("dg_1"), draft);
    assert_eq!(
        codes(&log.audit(None)),
        vec!["delegation.grant-out-of-scope"]
    );
}

#[test]
fn an_admin_act_by_someone_who_was_not_an_admin_is_named() {
    let (mut log, record, _) = deployment();
    // Alice (no groups) makes mallory an admin; then system acts after the
    // record's opening.
    log.append(
        Some(&record),
        actor("alice", PrincipalKind::Human, None),
        admin::principal_added(
            &principal("mallory", PrincipalKind::Human, &["admins"], None),
            false,
        ),
    );
    log.append(
        Some(&record),
        Actor::system(),
        admin::principal_added(
            &principal("trudy", PrincipalKind::Human, &["admins"], None),
            true,
        ),
    );
    let report = log.audit(None);
    assert_eq!(
        codes(&report),
        vec!["admin.not-admin", "admin.not-admin"],
        "{:#?}",
        report.findings
    );
    assert_eq!(report.findings[0].log_index, Some(6));
    assert_eq!(report.findings[1].log_index, Some(7));
}

#[test]
fn a_second_revocation_or_an_unknown_token_is_an_invalid_record() {
    let (mut log, record, _) = deployment();
    let admin_actor = actor("admin", PrincipalKind::Human, None);
    for at in [T0 + 6, T0 + 7] {
        log.append(
            Some(&record),
            admin_actor.clone(),
            admin::delegation_revoked("dg_1", Timestamp::from_micros(at), false),
        );
    }
    log.append(
        Some(&record),
        admin_actor,
        admin::token_revoked("tok_nobody", &"alice".parse().unwrap(), false),
    );
    let report = log.audit(None);
    assert_eq!(
        codes(&report),
        vec!["admin.record-invalid", "admin.record-invalid"],
        "{:#?}",
        report.findings
    );
}

#[test]
fn administration_events_outside_the_record_are_misplaced() {
    let (mut log, _, case) = deployment();
    log.append(
        Some(&case),
        actor("admin", PrincipalKind::Human, None),
        admin::principal_added(
            &principal("mallory", PrincipalKind::Human, &["admins"], None),
            false,
        ),
    );
    // A second record, opened by a forger.
    log.append(
        None,
        actor("admin", PrincipalKind::Human, None),
        admin::principal_added(
            &principal("trudy", PrincipalKind::Human, &["admins"], None),
            false,
        ),
    );
    let report = log.audit(None);
    assert_eq!(
        codes(&report),
        vec!["admin.record-misplaced", "admin.record-misplaced"],
        "{:#?}",
        report.findings
    );
}

fn honest_rows() -> AdminRows {
    let mut granted = grant("dg_1", T0 + 1_000_000_000);
    granted.granted_at = Timestamp::from_micros(T0);
    AdminRows {
        principals: vec![
            principal("admin", PrincipalKind::Human, &["admins"], None),
            principal("alice", PrincipalKind::Human, &[], None),
            principal("vera", PrincipalKind::Vendor, &[], Some("msp-co")),
        ],
        tokens: vec![TokenRow {
            token_id: "tok_admin".to_string(),
            principal: "admin".to_string(),
            secret_sha256_hex: "ab".repeat(32),
            expires_at: None,
            revoked: false,
        }],
        grants: vec![granted],
        identities: Vec::new(),
        oidc: Vec::new(),
        made: Vec::new(),
    }
}

#[test]
fn stored_principals_tokens_and_grants_must_be_the_records() {
    let (log, _, _) = deployment();
    // The grant's recorded time is the event's.
    let mut rows = honest_rows();
    rows.grants[0].granted_at = log.events[4]
        .body
        .clone()
        .pipe_granted_at()
        .expect("a grant event");
    let report = log.audit(Some(&rows));
    assert!(report.ok, "{:#?}", report.findings);

    // A principal made an admin behind the store's back; another's groups
    // changed; a token inserted; a revoked grant made whole again.
    let mut forged = rows.clone();
    forged.principals.push(principal(
        "mallory",
        PrincipalKind::Human,
        &["admins"],
        None,
    ));
    forged.principals[1].groups = vec!["admins".to_string()];
    forged.tokens.push(TokenRow {
        token_id: "tok_mallory".to_string(),
        principal: "mallory".to_string(),
        secret_sha256_hex: "cd".repeat(32),
        expires_at: None,
        revoked: false,
    });
    forged.tokens[0].secret_sha256_hex = "ef".repeat(32);
    forged.grants[0].valid_until = Timestamp::from_micros(T0 + 9_000_000_000);
    // A grant inserted that the record never granted.
    let mut inserted = rows.grants[0].clone();
    inserted.grant_id = "dg_inserted_behind_the_store".to_string();
    forged.grants.push(inserted);
    let mut report = log.audit(Some(&forged)).findings;
    report.sort_by_key(|finding| finding.code);
    let found: Vec<&str> = report.iter().map(|finding| finding.code.as_str()).collect();
    assert_eq!(
        found,
        vec![
            "admin.grant-mismatch",
            "admin.grant-unrecorded",
            "admin.principal-mismatch",
            "admin.principal-unrecorded",
            "admin.token-mismatch",
            "admin.token-unrecorded",
        ]
    );
}

#[test]
fn a_store_without_a_record_is_reported_as_legacy_not_as_tampered() {
    let log = Log::default();
    let report = log.audit(Some(&honest_rows()));
    assert_eq!(codes(&report), vec!["admin.unrecorded-legacy"]);
    assert_eq!(
        report.findings[0].severity,
        custody_core::lifecycle::Severity::Info
    );
}

/// The grant time a `delegation_granted` event records.
trait GrantedAt {
    fn pipe_granted_at(self) -> Option<Timestamp>;
}

impl GrantedAt for custody_core::EventBody {
    fn pipe_granted_at(self) -> Option<Timestamp> {
        match self {
            custody_core::EventBody::DelegationGranted(granted) => Some(granted.granted_at),
            _ => None,
        }
    }
}

#[test]
fn an_admin_demoted_by_a_recorded_group_change_administers_no_more() {
    let (mut log, record, _) = deployment();
    let admin_actor = actor("admin", PrincipalKind::Human, None);
    let alice: custody_core::PrincipalId = "alice".parse().unwrap();
    log.append(
        Some(&record),
        admin_actor.clone(),
        admin::principal_groups_changed(&alice, &[], &["admins".to_string()], false),
    );
    log.append(
        Some(&record),
        actor("alice", PrincipalKind::Human, None),
        admin::principal_added(&principal("bob", PrincipalKind::Human, &[], None), false),
    );
    log.append(
        Some(&record),
        admin_actor.clone(),
        admin::principal_groups_changed(&alice, &["admins".to_string()], &[], false),
    );
    assert!(log.audit(None).ok, "{:#?}", log.audit(None).findings);
    // Demoted, alice acts anyway; and a change that misstates the groups
    // it replaces.
    log.append(
        Some(&record),
        actor("alice", PrincipalKind::Human, None),
        admin::principal_added(&principal("carol", PrincipalKind::Human, &[], None), false),
    );
    log.append(
        Some(&record),
        admin_actor,
        admin::principal_groups_changed(&alice, &["sre".to_string()], &[], false),
    );
    let report = log.audit(None);
    assert_eq!(
        codes(&report),
        vec!["admin.not-admin", "admin.record-invalid"],
        "{:#?}",
        report.findings
    );
    assert_eq!(report.findings[0].log_index, Some(9));
}

fn connector(name: &str) -> custody_core::model::ConnectorName {
    name.parse().unwrap()
}

fn outside(id: &str) -> custody_core::model::ExternalUser {
    id.parse().unwrap()
}

fn id(name: &str) -> custody_core::PrincipalId {
    name.parse().unwrap()
}

/// The deployment, then the admin maps Slack's U01ALICE to alice, remaps
/// it to vera and back to alice, maps U02VERA to vera and unmaps it.
fn mapped_deployment() -> (Log, CaseId) {
    let (mut log, record, _) = deployment();
    let admin_actor = actor("admin", PrincipalKind::Human, None);
    let slack = connector("slack");
    for draft in [
        admin::identity_mapped(&slack, &outside("U01ALICE"), &id("alice"), None, false),
        admin::identity_mapped(
            &slack,
            &outside("U01ALICE"),
            &id("vera"),
            Some(&id("alice")),
            false,
        ),
        admin::identity_mapped(
            &slack,
            &outside("U01ALICE"),
            &id("alice"),
            Some(&id("vera")),
            false,
        ),
        admin::identity_mapped(&slack, &outside("U02VERA"), &id("vera"), None, false),
        admin::identity_unmapped(&slack, &outside("U02VERA"), &id("vera"), false),
    ] {
        log.append(Some(&record), admin_actor.clone(), draft);
    }
    (log, record)
}

fn identity_row(connector: &str, external_user: &str, principal: &str) -> IdentityRow {
    IdentityRow {
        connector: connector.to_string(),
        external_user: external_user.to_string(),
        principal: principal.to_string(),
    }
}

#[test]
fn mappings_of_outside_users_are_replayed_from_the_record() {
    let (log, _) = mapped_deployment();
    let report = log.audit(None);
    assert!(report.ok, "{:#?}", report.findings);
    assert_eq!(report.checked.admin_events, 10);
    let mut state = admin::AdminState::default();
    for event in &log.events {
        state.apply(event);
    }
    let mapped: Vec<(&str, &str, &str)> = state
        .identities
        .iter()
        .map(|((connector, user), principal)| {
            (connector.as_str(), user.as_str(), principal.as_str())
        })
        .collect();
    assert_eq!(mapped, vec![("slack", "U01ALICE", "alice")]);
}

#[test]
fn a_mapping_that_does_not_follow_from_the_record_is_named() {
    let (mut log, record) = mapped_deployment();
    let admin_actor = actor("admin", PrincipalKind::Human, None);
    let slack = connector("slack");
    let forged = [
        // Mapped to someone the record never added, and to `system`.
        admin::identity_mapped(&slack, &outside("U03"), &id("ghost"), None, false),
        admin::identity_mapped(&slack, &outside("U04"), &id("system"), None, false),
        // A remap that misstates what it replaces, and one to the same principal.
        admin::identity_mapped(
            &slack,
            &outside("U01ALICE"),
            &id("vera"),
            Some(&id("admin")),
            false,
        ),
        admin::identity_mapped(
            &slack,
            &outside("U01ALICE"),
            &id("alice"),
            Some(&id("alice")),
            false,
        ),
        // Unmapped while not mapped, and from a principal it is not mapped to.
        admin::identity_unmapped(&slack, &outside("U02VERA"), &id("vera"), false),
        admin::identity_unmapped(&slack, &outside("U01ALICE"), &id("vera"), false),
    ];
    let count = forged.len();
    for draft in forged {
        log.append(Some(&record), admin_actor.clone(), draft);
    }
    // A non-admin maps a user of its own.
    log.append(
        Some(&record),
        actor("alice", PrincipalKind::Human, None),
        admin::identity_mapped(
            &connector("jira"),
            &outside("5b10ac8d82e05b22cc7d4ef5"),
            &id("alice"),
            None,
            false,
        ),
    );
    let report = log.audit(None);
    let mut expected = vec!["admin.record-invalid"; count];
    expected.push("admin.not-admin");
    assert_eq!(codes(&report), expected, "{:#?}", report.findings);
    // Each names the event that breaks the rule, in log order.
    let first = log.events.len() - count - 1;
    for (offset, finding) in report.findings.iter().enumerate() {
        assert_eq!(finding.log_index, Some((first + offset) as u64));
    }
    assert!(report.findings[1].message.contains("`system`"));
}

#[test]
fn stored_mappings_of_outside_users_must_be_the_records() {
    let (log, _) = mapped_deployment();
    let mut rows = honest_rows();
    rows.grants[0].granted_at = log.events[4]
        .body
        .clone()
        .pipe_granted_at()
        .expect("a grant event");
    rows.identities = vec![identity_row("slack", "U01ALICE", "alice")];
    let report = log.audit(Some(&rows));
    assert!(report.ok, "{:#?}", report.findings);

    // A mapping inserted behind the store's back, the unmapped one
    // restored, and a mapping with another case of its ID.
    let mut inserted = rows.clone();
    inserted.identities.extend([
        identity_row("slack", "U09MALLORY", "admin"),
        identity_row("slack", "U02VERA", "vera"),
        identity_row("slack", "u01alice", "alice"),
    ]);
    let report = log.audit(Some(&inserted));
    assert_eq!(
        codes(&report),
        vec![
            "admin.identity-unrecorded",
            "admin.identity-unrecorded",
            "admin.identity-unrecorded"
        ],
        "{:#?}",
        report.findings
    );
    assert!(report.findings[0].message.contains("act as admin"));

    // The mapping pointed at another principal; then deleted.
    let mut pointed = rows.clone();
    pointed.identities[0].principal = "admin".to_string();
    assert_eq!(
        codes(&log.audit(Some(&pointed))),
        vec!["admin.identity-mismatch"]
    );
    let mut deleted = rows.clone();
    deleted.identities.clear();
    let report = log.audit(Some(&deleted));
    assert_eq!(codes(&report), vec!["admin.identity-mismatch"]);
    assert!(report.findings[0].message.contains("not stored"));

    // A store without a record holds no mapping honestly.
    let empty = Log::default();
    let mut legacy = honest_rows();
    legacy.identities = vec![identity_row("slack", "U01ALICE", "alice")];
    assert_eq!(
        codes(&empty.audit(Some(&legacy))),
        vec!["admin.identity-unrecorded", "admin.unrecorded-legacy"]
    );
}

#[test]
fn a_mapping_outside_the_administration_record_is_misplaced() {
    let (mut log, _, case) = deployment();
    log.append(
        Some(&case),
        actor("admin", PrincipalKind::Human, None),
        admin::identity_mapped(
            &connector("slack"),
            &outside("U1"),
            &id("alice"),
            None,
            false,
        ),
    );
    assert_eq!(codes(&log.audit(None)), vec!["admin.record-misplaced"]);
}
