//! The administration record, re-checked: each event judged against the
//! record as it stood before it (the rule functions of [`crate::admin`]),
//! each action under a delegation grant against that grant as it stood, and
//! the stored projections against the replayed record.

use crate::admin::{check_delegated_action, is_admin_event, AdminRows, AdminState, IdentityRow};
use crate::code::Code;
use crate::event::Event;
use crate::lifecycle::Refusal;
use crate::model::{Actor, Change, ConnectorName, ExternalUser};
use crate::severity::Severity;
use crate::text;
use crate::time::Timestamp;

use super::finding::Finding;

/// An action taken under a grant the record did not hold yet when it was
/// recorded; judged at the end (a grant recorded later from an older data
/// directory is judged by its recorded times).
#[derive(Clone)]
struct DeferredAction {
    grant_id: String,
    actor: Actor,
    change: Change,
    at: Timestamp,
    finding: Finding,
}

/// What the audit keeps of the administration record while streaming.
#[derive(Clone, Default)]
pub(crate) struct AdminAudit {
    /// The administration record's case ID, once seen, and when its first
    /// event was recorded.
    pub(super) record: Option<String>,
    pub(super) record_opened_at: Option<Timestamp>,
    /// When and by whom the record made each row.
    made: super::made::Made,
    pub(crate) state: AdminState,
    deferred: Vec<DeferredAction>,
    pub(crate) findings: Vec<Finding>,
    /// Administration events checked.
    pub(crate) events: u64,
    /// Actions under delegation grants re-checked.
    pub(crate) delegated_actions: u64,
}

fn finding_at(event: &Event, log_index: u64, refusal: Refusal, severity: Severity) -> Finding {
    Finding::new(refusal.rule, refusal.message)
        .severity(severity)
        .at_event(event, log_index)
}

impl AdminAudit {
    /// Whether the first event of a case opens the administration record
    /// (the first case whose first event is an administration event); a
    /// second such case is reported.
    pub(crate) fn opens_record(&mut self, event: &Event, log_index: u64) -> bool {
        if !is_admin_event(&event.body) {
            return false;
        }
        if self.record.is_some() {
            self.findings.push(finding_at(
                event,
                log_index,
                Refusal {
                    rule: Code::AdminRecordMisplaced,
                    message: format!(
                        "case {} holds a {} event, but the administration record is {}: a second record was forged",
                        event.case_id,
                        event.body.kind_name(),
                        self.record.as_deref().unwrap_or_default()
                    ),
                    hint: None,
                },
                Severity::High,
            ));
            // Judged as a record of its own; its events still count nowhere.
            return true;
        }
        self.record = Some(event.case_id.to_string());
        self.record_opened_at = Some(event.recorded_at);
        true
    }

    /// Checks and applies one event of an administration record.
    pub(crate) fn observe_record_event(&mut self, event: &Event, log_index: u64) {
        if self.record.as_deref() != Some(event.case_id.as_str()) {
            return;
        }
        self.events += 1;
        for (refusal, severity) in self.state.violations(event) {
            self.findings
                .push(finding_at(event, log_index, refusal, severity));
        }
        self.state.apply(event);
        let identities = &self.state.identities;
        self.made.observe(event, |connector, user| {
            identities
                .keys()
                .any(|(c, u)| c.to_string() == connector && u.to_string() == user)
        });
    }

    /// Re-checks a case event taken under a delegation grant against the
    /// grant as the record stands at it.
    pub(crate) fn observe_delegated_action(
        &mut self,
        event: &Event,
        change: &Change,
        log_index: u64,
    ) {
        let Some(grant_id) = &event.actor.delegation_grant else {
            return;
        };
        self.delegated_actions += 1;
        match self.state.grants.get(grant_id) {
            Some(state) => {
                if let Err(refusal) = check_delegated_action(
                    &state.grant,
                    state.grant.revoked_at.is_some(),
                    &event.actor,
                    change,
                    event.recorded_at,
                ) {
                    self.findings
                        .push(finding_at(event, log_index, refusal, Severity::High));
                }
            }
            None => self.deferred.push(DeferredAction {
                grant_id: grant_id.clone(),
                actor: event.actor.clone(),
                change: change.clone(),
                at: event.recorded_at,
                finding: finding_at(
                    event,
                    log_index,
                    Refusal {
                        rule: Code::DelegationGrantUnrecorded,
                        message: format!(
                            "{} acted under delegation grant {}, which the administration record had not granted when the action was recorded",
                            event.actor.principal, grant_id
                        ),
                        hint: None,
                    },
                    Severity::High,
                ),
            }),
        }
    }

    /// Compares the stored projections with the record.
    pub(crate) fn check_rows(&mut self, rows: &AdminRows) {
        let finding = |code: Code, message: String| Finding::new(code, message);
        if self.record.is_none() {
            if !rows.principals.is_empty() || !rows.tokens.is_empty() || !rows.grants.is_empty() {
                self.findings.push(Finding::new(
                    Code::AdminUnrecordedLegacy,
                    format!(
                        "the store holds {} principal(s), {} token(s) and {} delegation grant(s) but no administration record: it was made by a version that did not record administration; `custody serve` records them when it next starts",
                        rows.principals.len(),
                        rows.tokens.len(),
                        rows.grants.len()
                    ),
                ));
            }
            // No version stored a mapping without recording it: every row
            // of a store without a record was put there behind its back.
            for row in &rows.identities {
                self.findings.push(identity_unrecorded(
                    row,
                    "there is no administration record",
                ));
            }
            found_oidc(&mut self.findings, &AdminState::default(), &rows.oidc);
            return;
        }
        let state = &self.state;
        let mut found = Vec::new();
        for row in &rows.principals {
            match state.principals.get(&row.id) {
                None => found.push(finding(
                    Code::AdminPrincipalUnrecorded,
                    format!(
                        "principal {} (groups: {}) is stored but the administration record never added it: it was inserted behind the store's back",
                        row.id,
                        row.groups.join(", ")
                    ),
                )),
                Some(recorded) => {
                    let mut groups = row.groups.clone();
                    groups.sort();
                    groups.dedup();
                    let mut recorded_groups = recorded.groups.clone();
                    recorded_groups.sort();
                    recorded_groups.dedup();
                    if groups != recorded_groups
                        || row.kind != recorded.kind
                        || row.org != recorded.org
                        || row.display_name != recorded.display_name
                    {
                        found.push(finding(
                            Code::AdminPrincipalMismatch,
                            format!(
                                "principal {} is stored as {} in groups [{}] of {}, but the administration record says {} in groups [{}] of {}",
                                row.id,
                                row.kind.as_str(),
                                groups.join(", "),
                                row.org.as_deref().unwrap_or("no organisation"),
                                recorded.kind.as_str(),
                                recorded_groups.join(", "),
                                recorded.org.as_deref().unwrap_or("no organisation")
                            ),
                        ));
                    }
                }
            }
        }
        for id in state.principals.keys() {
            if !rows.principals.iter().any(|row| &row.id == id) {
                found.push(finding(
                    Code::AdminPrincipalMismatch,
                    format!("principal {id} is in the administration record but not stored"),
                ));
            }
        }
        for row in &rows.tokens {
            match state.tokens.get(&row.token_id) {
                None => found.push(finding(
                    Code::AdminTokenUnrecorded,
                    format!(
                        "token {} of {} is stored but the administration record never issued it",
                        row.token_id, row.principal
                    ),
                )),
                Some(recorded) => {
                    let expires = recorded.expires_at.map(|at| at.to_string());
                    if recorded.principal.as_str() != row.principal
                        || !recorded.hash_matches(&row.secret_sha256_hex)
                        || expires != row.expires_at
                        || recorded.revoked != row.revoked
                    {
                        found.push(finding(
                            Code::AdminTokenMismatch,
                            format!(
                                "token {} is stored for {} ({}, expires {}) but the administration record says {} ({}, expires {}){}",
                                row.token_id,
                                row.principal,
                                if row.revoked { "revoked" } else { "active" },
                                row.expires_at.as_deref().unwrap_or("never"),
                                recorded.principal,
                                if recorded.revoked { "revoked" } else { "active" },
                                expires.as_deref().unwrap_or("never"),
                                if !recorded.hash_matches(&row.secret_sha256_hex) {
                                    ", and its secret's hash differs"
                                } else {
                                    ""
                                }
                            ),
                        ));
                    }
                }
            }
        }
        for id in state.tokens.keys() {
            if !rows.tokens.iter().any(|row| &row.token_id == id) {
                found.push(finding(
                    Code::AdminTokenMismatch,
                    format!("token {id} is in the administration record but not stored"),
                ));
            }
        }
        for row in &rows.grants {
            match state.grants.get(&row.grant_id) {
                None => found.push(finding(
                    Code::AdminGrantUnrecorded,
                    format!(
                        "delegation grant {} to {} is stored but the administration record never granted it",
                        row.grant_id, row.vendor_org
                    ),
                )),
                Some(recorded) if &recorded.grant != row => found.push(finding(
                    Code::AdminGrantMismatch,
                    format!(
                        "delegation grant {} is stored (revoked: {}) differently from the administration record (revoked: {})",
                        row.grant_id,
                        row.revoked_at
                            .map(|at| at.to_string())
                            .unwrap_or_else(|| "no".to_string()),
                        recorded
                            .grant
                            .revoked_at
                            .map(|at| at.to_string())
                            .unwrap_or_else(|| "no".to_string())
                    ),
                )),
                Some(_) => {}
            }
        }
        for id in state.grants.keys() {
            if !rows.grants.iter().any(|row| &row.grant_id == id) {
                found.push(finding(
                    Code::AdminGrantMismatch,
                    format!("delegation grant {id} is in the administration record but not stored"),
                ));
            }
        }
        found.extend(check_identities(state, &rows.identities));
        found_oidc(&mut found, state, &rows.oidc);
        found.extend(self.made.check(&rows.made, |issuer, subject| {
            state
                .oidc
                .get(&(issuer.to_string(), subject.to_string()))
                .map(ToString::to_string)
        }));
        self.findings.extend(found);
    }

    /// The findings, with every deferred action judged.
    pub(crate) fn finish(mut self) -> Vec<Finding> {
        for action in std::mem::take(&mut self.deferred) {
            let judged = match self.state.grants.get(&action.grant_id) {
                // Recorded later from an older data directory: judged by the
                // times it records.
                Some(state) if state.legacy && state.grant.granted_at <= action.at => {
                    check_delegated_action(
                        &state.grant,
                        state.grant.revoked_at.is_some_and(|at| at <= action.at),
                        &action.actor,
                        &action.change,
                        action.at,
                    )
                    .map_err(|refusal| Finding {
                        code: refusal.rule,
                        message: refusal.message,
                        ..action.finding.clone()
                    })
                }
                _ => Err(action.finding),
            };
            if let Err(finding) = judged {
                self.findings.push(finding);
            }
        }
        self.findings
    }
}

fn identity_unrecorded(row: &IdentityRow, why: &str) -> Finding {
    Finding::new(
        Code::AdminIdentityUnrecorded,
        format!(
            "{} user {} is stored as mapped to {}, but {why}: the mapping was inserted behind the store's back, and it would let that outside user act as {}",
            text::escape(&row.connector),
            text::escape(&row.external_user),
            text::escape(&row.principal),
            text::escape(&row.principal)
        ),
    )
}

/// The stored bindings of OpenID Connect identities against the record's
/// (the `principal_added` events by the principals themselves).
fn found_oidc(
    found: &mut Vec<Finding>,
    state: &AdminState,
    rows: &[crate::admin::OidcIdentityRow],
) {
    let mut stored = std::collections::BTreeSet::new();
    for row in rows {
        stored.insert((row.issuer.clone(), row.subject.clone()));
        match state.oidc.get(&(row.issuer.clone(), row.subject.clone())) {
            None => found.push(Finding::new(
                Code::AdminIdentityUnrecorded,
                format!(
                    "the OpenID Connect identity {} of {} is stored as bound to {}, but the administration record never bound it: the binding was inserted behind the store's back, and it would let that identity sign in as {}",
                    text::escape(&row.subject),
                    text::escape(&row.issuer),
                    text::escape(&row.principal),
                    text::escape(&row.principal)
                ),
            )),
            Some(principal) if principal.as_str() != row.principal => found.push(Finding::new(
                Code::AdminIdentityMismatch,
                format!(
                    "the OpenID Connect identity {} of {} is stored as bound to {}, but the administration record binds it to {}",
                    text::escape(&row.subject),
                    text::escape(&row.issuer),
                    text::escape(&row.principal),
                    principal
                ),
            )),
            Some(_) => {}
        }
    }
    for ((issuer, subject), principal) in &state.oidc {
        if !stored.contains(&(issuer.clone(), subject.clone())) {
            found.push(Finding::new(
                Code::AdminIdentityMismatch,
                format!(
                    "the OpenID Connect identity {} of {} is bound to {principal} in the administration record but not stored",
                    text::escape(subject),
                    text::escape(issuer)
                ),
            ));
        }
    }
}

/// The stored mappings of outside users against the record's.
fn check_identities(state: &AdminState, rows: &[IdentityRow]) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut stored = std::collections::BTreeSet::new();
    for row in rows {
        stored.insert((row.connector.as_str(), row.external_user.as_str()));
        // A row no event could have written (a name that does not parse)
        // is one the record does not hold.
        let key = row
            .connector
            .parse::<ConnectorName>()
            .ok()
            .zip(row.external_user.parse::<ExternalUser>().ok());
        let recorded = key.and_then(|key| state.identities.get_key_value(&key));
        match recorded {
            None => found.push(identity_unrecorded(
                row,
                "the administration record never mapped it (or unmapped it since)",
            )),
            Some((_, principal)) if principal.as_str() != row.principal => found.push(Finding::new(
                Code::AdminIdentityMismatch,
                format!(
                    "{} user {} is stored as mapped to {}, but the administration record maps it to {}",
                    text::escape(&row.connector),
                    text::escape(&row.external_user),
                    text::escape(&row.principal),
                    principal
                ),
            )),
            Some(_) => {}
        }
    }
    for ((connector, user), principal) in &state.identities {
        if !stored.contains(&(connector.as_str(), user.as_str())) {
            found.push(Finding::new(
                Code::AdminIdentityMismatch,
                format!(
                    "{connector} user {user} is mapped to {principal} in the administration record but not stored"
                ),
            ));
        }
    }
    found
}
