//! Human-readable output.
//!
//! Every line printed here goes through [`custody_core::text::escape`] (the
//! `say!` macro), so text that came from outside (a justification, a file
//! name, a remote server's error) cannot move the cursor, overwrite a line or
//! reorder what the reader sees: control, bidi and invisible characters are
//! shown as `\r`, `\u{202e}`, ... JSON output escapes the same characters
//! as `\uXXXX`.

use custody_api::{
    AdminRecordDocument, CaseDocument, CaseList, EvidenceList, EvidenceRecordView,
    NotificationList, PolicyDocument, PrincipalList, TokenInfo,
};
use custody_client::{escape_lines, render_problem};
use custody_core::audit::Report;
use custody_core::event::{Evidence, LinkFailure, Recheck};
use custody_core::model::AuthContext;
use custody_core::Event;
use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// `println!` with every unsafe character of the line escaped (see
/// [`custody_core::text::escape`]). Each call prints exactly one line.
macro_rules! say {
    () => {
        println!()
    };
    ($($arg:tt)*) => {
        println!("{}", custody_core::text::escape(&format!($($arg)*)))
    };
}

/// `eprintln!` with every unsafe character of the line escaped.
macro_rules! tell {
    ($($arg:tt)*) => {
        eprintln!("{}", custody_core::text::escape(&format!($($arg)*)))
    };
}

pub(crate) use say;
pub(crate) use tell;

/// Prints a value as pretty JSON on stdout; characters JSON leaves raw but a
/// terminal would act on (C1 controls, DEL, bidi and invisible characters)
/// are written as `\uXXXX`, which every JSON reader decodes back.
pub fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{}", custody_core::text::escape_json_text(&text)),
        Err(error) => eprintln!("error: cannot encode output: {error}"),
    }
}

/// The message printed on stderr for a failed command: every line of it
/// escaped (the server's words are escaped in [`render_problem`] and `ClientError`'s messages).
pub fn render_error(error: &CliError) -> String {
    match error {
        CliError::Client(error) if error.is_refusal() => format!("refused: {error}"),
        CliError::Client(error) => format!("error: {error}"),
        CliError::Refused(problem) => format!("refused: {}", render_problem(problem)),
        CliError::Usage(text) | CliError::Io(text) | CliError::Ledger(text) => {
            format!("error: {}", escape_lines(text))
        }
    }
}

/// Prints a case's timeline: a header, then one line per event with time,
/// role, actor and what happened.
pub fn print_timeline(document: &CaseDocument) {
    let view = &document.view;
    say!(
        "{}  {}",
        document.case_id,
        document.state.as_str().to_uppercase()
    );
    let change = &view.change;
    let mut what = format!(
        "{} {} to {}:{}",
        change.kind().as_str(),
        change.entitlement(),
        change.subject().kind.as_str(),
        change.subject().id
    );
    if let Some(resource) = change.resource() {
        what.push_str(&format!(" on {resource}"));
    }
    say!("  change:  {what}");
    say!("  rule:    {}", view.rule.name);
    for stage in &document.stages {
        let approvers = stage
            .approvers
            .iter()
            .map(|approver| approver.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let groups = stage.approver_groups.join(", ");
        say!(
            "  stage {}: {}/{} approvals{}{}",
            stage.name,
            stage.approvers.len(),
            stage.required,
            if groups.is_empty() {
                String::new()
            } else {
                format!(" from {groups}")
            },
            if approvers.is_empty() {
                String::new()
            } else {
                format!(" ({approvers})")
            }
        );
    }
    if let Some(deadline) = &view.break_glass_deadline {
        let status = if view.reviews.is_empty() {
            "REVIEW DUE"
        } else {
            "reviewed"
        };
        say!(
            "  break-glass: post-hoc review due {} ({status})",
            short_time(&deadline.to_string())
        );
    }
    if let Some(applied) = &view.applied {
        let applied_text = format!(
            "{} {} to {}:{}{}",
            applied.kind().as_str(),
            applied.entitlement(),
            applied.subject().kind.as_str(),
            applied.subject().id,
            applied
                .resource()
                .map(|resource| format!(" on {resource}"))
                .unwrap_or_default()
        );
        let marker = if *applied == view.change {
            "(as approved)"
        } else {
            "(DIFFERS FROM THE APPROVED CHANGE)"
        };
        say!("  applied: {applied_text} {marker}");
    }
    if let Some(revocation) = &view.revocation_case {
        say!("  revoked by review: revocation case {revocation}");
    }
    if let Some(reviewed) = &view.opened_by_review_of {
        say!("  opened by the review of {reviewed}");
    }
    if let Some(survivor) = &view.merged_into {
        say!("  merged:  duplicate of {survivor} (follow that case)");
    }
    for duplicate in &view.duplicates {
        say!("  duplicate: {duplicate} merged into this case");
    }
    if let Some(ticket) = &view.ticket {
        say!("  ticket:  {}:{}", ticket.system, ticket.key);
    }
    say!();
    for event in &document.events {
        let actor = &event.actor;
        let mut who = format!("{} ({}", actor.principal, actor.kind.as_str());
        if let Some(on_behalf_of) = &actor.on_behalf_of {
            who.push_str(&format!(" for {on_behalf_of}"));
        }
        who.push_str(&format!(" via {})", actor.via));
        let occurred = event.occurred_at.to_string();
        let recorded = event.recorded_at.to_string();
        let late = if occurred != recorded && occurred.get(..19) != recorded.get(..19) {
            format!(" (recorded {})", short_time(&recorded))
        } else {
            String::new()
        };
        say!(
            "  #{:<3} {}  {:<9}  {:<28}  {}{late}",
            event.seq,
            short_time(&occurred),
            event.role.as_str(),
            who,
            describe(event)
        );
    }
}

/// Prints an evidence record: evidence held for a ticket until a case
/// carries it, then its release.
pub fn print_record(record: &EvidenceRecordView) {
    say!("{}  EVIDENCE RECORD (not a case)", record.record_id);
    say!("  ticket:  {}", record.ticket);
    match &record.released_to {
        Some(case) => say!("  released to case {case} (follow that case)"),
        None => say!("  held until a case is requested with this ticket"),
    }
    say!();
    for event in &record.events {
        let actor = &event.actor;
        say!(
            "  #{:<3} {}  {:<9}  {:<28}  {}",
            event.seq,
            short_time(&event.recorded_at.to_string()),
            event.role.as_str(),
            format!(
                "{} ({} via {})",
                actor.principal,
                actor.kind.as_str(),
                actor.via
            ),
            describe(event)
        );
    }
}

/// Prints the administration record: one line per event, with who did it.
pub fn print_admin_record(document: &AdminRecordDocument) {
    let Some(record) = &document.record else {
        say!("no administration record yet");
        return;
    };
    say!("administration record {record}");
    say!("  prove it offline: custody log prove {record} --out admin-record.proof");
    say!();
    for event in &document.events {
        let actor = &event.actor;
        let token = match &actor.auth {
            AuthContext::Token { token_id } => format!(", token {token_id}"),
            _ => String::new(),
        };
        say!(
            "  #{:<3} {}  {:<6}  {} (via {}{token})  {}",
            event.seq,
            short_time(&event.recorded_at.to_string()),
            event.role.as_str(),
            actor.principal,
            actor.via,
            describe(event)
        );
    }
}

fn short_time(timestamp: &str) -> String {
    // 2026-11-29T01:54:43.123456Z -> 2026-11-29 01:54:43Z
    match (timestamp.get(..10), timestamp.get(11..19)) {
        (Some(date), Some(time)) => format!("{date} {time}Z"),
        _ => timestamp.to_string(),
    }
}

/// The one-line summary of an event, the same the server would give.
fn describe(event: &Event) -> String {
    event.body.summary()
}

/// Prints the case list as a table.
pub fn print_cases(list: &CaseList) {
    if list.cases.is_empty() {
        say!("no cases");
        return;
    }
    say!(
        "{:<35}  {:<9}  {:<16}  {:<20}  CHANGE",
        "CASE",
        "STATE",
        "REQUESTER",
        "OPENED"
    );
    for case in &list.cases {
        say!(
            "{:<35}  {:<9}  {:<16}  {:<20}  {}",
            case.case_id,
            case.state,
            case.requester,
            short_time(&case.opened_at),
            if case.drill {
                format!("[drill] {}", case.summary)
            } else {
                case.summary.clone()
            }
        );
    }
}

/// Prints the principal list as a table.
pub fn print_principals(list: &PrincipalList) {
    say!("{:<24}  {:<10}  {:<12}  GROUPS", "NAME", "KIND", "ORG");
    for principal in &list.principals {
        say!(
            "{:<24}  {:<10}  {:<12}  {}",
            // As text: an identifier's `Display` ignores the column width.
            principal.id.as_str(),
            principal.kind.as_str(),
            principal.org.as_deref().unwrap_or("-"),
            principal.groups.join(",")
        );
    }
}

/// Prints an audit report.
pub fn print_report(report: &Report, checked_where: &str) {
    let checked = &report.checked;
    say!(
        "checked {}: {} log entries, {} events, {} trails (cases and records), {} chain links, {} rule evaluations, {} Merkle leaves, {} signed checkpoints, {} checkpoints held outside the database, {} case links, {} evidence blobs",
        checked_where,
        checked.log_entries,
        checked.events,
        checked.cases,
        checked.chain_links,
        checked.rules,
        checked.leaves,
        checked.checkpoints,
        checked.outside_checkpoints,
        checked.case_links,
        checked.evidence_blobs
    );
    if report.ok {
        say!("ok: the trail is intact and no rule is broken");
        if report.findings.is_empty() {
            return;
        }
        say!("{} note(s):", report.findings.len());
    } else {
        say!("{} finding(s):", report.findings.len());
    }
    for finding in &report.findings {
        let mut place = String::new();
        if let Some(case_id) = &finding.case_id {
            place.push_str(case_id);
        }
        if let Some(seq) = finding.seq {
            place.push_str(&format!(" seq {seq}"));
        }
        if let Some(index) = finding.log_index {
            place.push_str(&format!(" (log index {index})"));
        }
        say!(
            "  {:<8} {:<38} {}",
            finding.severity.as_str().to_uppercase(),
            finding.code,
            place.trim()
        );
        say!("           {}", finding.message);
    }
}

/// A token of `custody token list`, with whether it still authenticates.
#[derive(Debug, Serialize)]
pub struct TokenRow {
    /// The token as the server lists it.
    #[serde(flatten)]
    pub token: TokenInfo,
    /// `revoked`, `expired` (its `expires_at` is not after now: it no longer
    /// authenticates) or `active`.
    pub status: &'static str,
}

/// Prints the token list as a table.
pub fn print_tokens(tokens: &[TokenRow]) {
    say!(
        "{:<20}  {:<16}  {:<20}  {:<20}  STATUS",
        "TOKEN",
        "PRINCIPAL",
        "CREATED",
        "EXPIRES"
    );
    for TokenRow { token, status } in tokens {
        let status = match (&token.revoked_at, *status) {
            (Some(at), _) => format!(
                "revoked {} by {}",
                short_time(at),
                token.revoked_by.as_deref().unwrap_or("?")
            ),
            (None, "expired") => "expired".to_string(),
            (None, _) => "active".to_string(),
        };
        say!(
            "{:<20}  {:<16}  {:<20}  {:<20}  {status}",
            token.token_id,
            token.principal,
            short_time(&token.created_at),
            token
                .expires_at
                .as_deref()
                .map(short_time)
                .unwrap_or_else(|| "never".to_string()),
        );
    }
}

/// `custody policy`: the rules in force, then the record of adoptions.
pub fn print_policy(document: &PolicyDocument) {
    say!("policy {}", document.policy_hash);
    let rules = &document.policy.rules;
    if rules.is_empty() {
        say!("  no rules: every change needs one approval from anyone but the requester");
    }
    for rule in rules {
        let approvals = if rule.stages.is_empty() {
            let groups = rule.approver_groups.join(", ");
            format!(
                "{} approval(s){}",
                rule.approvals,
                if groups.is_empty() {
                    String::new()
                } else {
                    format!(" from {groups}")
                }
            )
        } else {
            rule.stages
                .iter()
                .map(|stage| {
                    let groups = stage.approver_groups.join(", ");
                    format!(
                        "{}: {}{}",
                        stage.name,
                        stage.approvals,
                        if groups.is_empty() {
                            String::new()
                        } else {
                            format!(" from {groups}")
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join(", then ")
        };
        say!("  rule {}: {approvals}", rule.name);
    }
    say!();
    say!(
        "policy record {}:",
        document.record.as_deref().unwrap_or("(none)")
    );
    for adoption in &document.history {
        // The sequence number is not padded: this line has always been
        // printed so.
        say!(
            "  #{} {}  {}  from {}  rules: {}",
            adoption.seq,
            adoption.recorded_at,
            adoption.policy_hash,
            adoption.source,
            adoption.rules.join(", ")
        );
    }
}

/// `custody notifications`: one line per notification.
pub fn print_notifications(list: &NotificationList) {
    if list.notifications.is_empty() {
        say!("no notifications");
        return;
    }
    for entry in &list.notifications {
        let recipient = entry
            .recipient
            .as_ref()
            .map(|recipient| format!(" {recipient}"))
            .unwrap_or_default();
        let error = entry
            .last_error
            .as_ref()
            .map(|error| format!("  last error: {}", error.lines().next().unwrap_or_default()))
            .unwrap_or_default();
        say!(
            "{:<9} {}  {}  {} to {} via {}{recipient}  attempts {}{error}",
            entry.state.to_uppercase(),
            entry.delivery_id,
            entry.case_id,
            entry.kind,
            entry.audience,
            entry.channel,
            entry.attempts,
        );
    }
}

/// `custody evidence list`: one line per evidence event.
pub fn print_evidence(list: &EvidenceList) {
    if list.evidence.is_empty() {
        say!("no evidence");
        return;
    }
    for item in &list.evidence {
        // The payload is the event's, by its kind (the answer documents it
        // as an object); one this client cannot read shows its kind alone.
        let payload = &item.payload;
        let line = match item.kind.as_str() {
            "evidence_attached" => match Evidence::deserialize(payload) {
                Ok(Evidence {
                    sha256,
                    size,
                    link: Some(link),
                    ..
                }) => format!(
                    "{sha256}  {size} bytes  link {} ({})",
                    link.url, link.status
                ),
                Ok(Evidence {
                    sha256,
                    size,
                    file_name,
                    sniffed_media_type,
                    ..
                }) => format!(
                    "{sha256}  {size} bytes  {} ({sniffed_media_type})",
                    file_name.as_deref().unwrap_or("unnamed")
                ),
                Err(_) => item.kind.clone(),
            },
            "evidence_unverified" => match LinkFailure::deserialize(payload) {
                Ok(failure) => format!("UNVERIFIED link {}: {}", failure.url, failure.error),
                Err(_) => item.kind.clone(),
            },
            "evidence_rechecked" => match Recheck::deserialize(payload) {
                Ok(recheck) => format!(
                    "{} link {}",
                    if recheck.drifted {
                        "CHANGED"
                    } else {
                        "rechecked"
                    },
                    recheck.url
                ),
                Err(_) => item.kind.clone(),
            },
            other => other.to_string(),
        };
        say!("{}  by {}  {line}", item.recorded_at, item.by);
    }
}
