//! Human-readable output.
//!
//! Every line printed here goes through [`custody_core::text::escape`] (the
//! `say!` macro), so text that came from outside (a justification, a file
//! name, a remote server's error) cannot move the cursor, overwrite a line or
//! reorder what the reader sees: control, bidi and invisible characters are
//! shown as `\r`, `\u{202e}`, ... JSON output escapes the same characters
//! as `\uXXXX`.

use custody_core::audit::Report;
use custody_core::text::escape;
use serde::Serialize;
use serde_json::Value;

use crate::client::{problem_text, ClientError};

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
/// escaped (the server's words are escaped in [`problem_text`]).
pub fn render_error(error: &ClientError) -> String {
    match error {
        ClientError::Refused(problem) => format!("refused: {}", problem_text(problem)),
        ClientError::Rejected(problem) => format!("error: {}", problem_text(problem)),
        ClientError::Usage(text) | ClientError::Connection(text) => {
            format!("error: {}", escape_lines(text))
        }
    }
}

/// Escapes each line of `text`, keeping the line breaks.
pub fn escape_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| escape(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Percent-encodes one URL path segment.
pub fn path_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'@') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Prints a case's timeline: a header, then one line per event with time,
/// role, actor and what happened.
pub fn print_timeline(document: &Value) {
    let view = &document["view"];
    say!(
        "{}  {}",
        document["case_id"].as_str().unwrap_or_default(),
        document["state"]
            .as_str()
            .unwrap_or_default()
            .to_uppercase()
    );
    let change = &view["change"];
    let mut what = format!(
        "{} {} to {}:{}",
        change["kind"].as_str().unwrap_or_default(),
        change["entitlement"].as_str().unwrap_or_default(),
        change["subject"]["kind"].as_str().unwrap_or_default(),
        change["subject"]["id"].as_str().unwrap_or_default()
    );
    if let Some(resource) = change["resource"].as_str() {
        what.push_str(&format!(" on {resource}"));
    }
    say!("  change:  {what}");
    say!(
        "  rule:    {}",
        view["rule"]["name"].as_str().unwrap_or_default()
    );
    for stage in document["stages"].as_array().cloned().unwrap_or_default() {
        let approvers = join(&stage["approvers"]);
        let groups = join(&stage["approver_groups"]);
        say!(
            "  stage {}: {}/{} approvals{}{}",
            stage["name"].as_str().unwrap_or_default(),
            stage["approvers"].as_array().map(Vec::len).unwrap_or(0),
            stage["required"],
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
    if let Some(deadline) = view["break_glass_deadline"].as_str() {
        let status = if view["reviews"]
            .as_array()
            .is_some_and(|reviews| !reviews.is_empty())
        {
            "reviewed"
        } else {
            "REVIEW DUE"
        };
        say!(
            "  break-glass: post-hoc review due {} ({status})",
            short_time(deadline)
        );
    }
    if let Some(applied) = view["applied"].as_object() {
        let applied_text = format!(
            "{} {} to {}:{}{}",
            applied["kind"].as_str().unwrap_or_default(),
            applied["entitlement"].as_str().unwrap_or_default(),
            applied["subject"]["kind"].as_str().unwrap_or_default(),
            applied["subject"]["id"].as_str().unwrap_or_default(),
            applied["resource"]
                .as_str()
                .map(|resource| format!(" on {resource}"))
                .unwrap_or_default()
        );
        let marker = if view["applied"] == view["change"] {
            "(as approved)"
        } else {
            "(DIFFERS FROM THE APPROVED CHANGE)"
        };
        say!("  applied: {applied_text} {marker}");
    }
    if let Some(revocation) = view["revocation_case"].as_str() {
        say!("  revoked by review: revocation case {revocation}");
    }
    if let Some(reviewed) = view["opened_by_review_of"].as_str() {
        say!("  opened by the review of {reviewed}");
    }
    if let Some(survivor) = view["merged_into"].as_str() {
        say!("  merged:  duplicate of {survivor} (follow that case)");
    }
    for duplicate in view["duplicates"].as_array().into_iter().flatten() {
        say!(
            "  duplicate: {} merged into this case",
            duplicate.as_str().unwrap_or_default()
        );
    }
    if let Some(ticket) = view["ticket"].as_object() {
        say!(
            "  ticket:  {}:{}",
            ticket["system"].as_str().unwrap_or_default(),
            ticket["key"].as_str().unwrap_or_default()
        );
    }
    say!();
    for event in document["events"].as_array().into_iter().flatten() {
        let actor = &event["actor"];
        let mut who = format!(
            "{} ({}",
            actor["principal"].as_str().unwrap_or_default(),
            actor["kind"].as_str().unwrap_or_default()
        );
        if let Some(on_behalf_of) = actor["on_behalf_of"].as_str() {
            who.push_str(&format!(" for {on_behalf_of}"));
        }
        who.push_str(&format!(
            " via {})",
            actor["via"].as_str().unwrap_or_default()
        ));
        let occurred = event["occurred_at"].as_str().unwrap_or_default();
        let recorded = event["recorded_at"].as_str().unwrap_or_default();
        let late = if occurred != recorded && occurred.get(..19) != recorded.get(..19) {
            format!(" (recorded {})", short_time(recorded))
        } else {
            String::new()
        };
        say!(
            "  #{:<3} {}  {:<9}  {:<28}  {}{late}",
            event["seq"].as_u64().unwrap_or_default(),
            short_time(occurred),
            event["role"].as_str().unwrap_or_default(),
            who,
            describe(event)
        );
    }
}

/// Prints an evidence record: evidence held for a ticket until a case
/// carries it, then its release.
pub fn print_record(record: &Value) {
    say!(
        "{}  EVIDENCE RECORD (not a case)",
        record["record_id"].as_str().unwrap_or_default()
    );
    say!(
        "  ticket:  {}",
        record["ticket"].as_str().unwrap_or_default()
    );
    match record["released_to"].as_str() {
        Some(case) => say!("  released to case {case} (follow that case)"),
        None => say!("  held until a case is requested with this ticket"),
    }
    say!();
    for event in record["events"].as_array().into_iter().flatten() {
        let actor = &event["actor"];
        say!(
            "  #{:<3} {}  {:<9}  {:<28}  {}",
            event["seq"].as_u64().unwrap_or_default(),
            short_time(event["recorded_at"].as_str().unwrap_or_default()),
            event["role"].as_str().unwrap_or_default(),
            format!(
                "{} ({} via {})",
                actor["principal"].as_str().unwrap_or_default(),
                actor["kind"].as_str().unwrap_or_default(),
                actor["via"].as_str().unwrap_or_default()
            ),
            describe(event)
        );
    }
}

/// Prints the administration record: one line per event, with who did it.
pub fn print_admin_record(document: &Value) {
    let Some(record) = document["record"].as_str() else {
        say!("no administration record yet");
        return;
    };
    say!("administration record {record}");
    say!("  prove it offline: custody log prove {record} --out admin-record.proof");
    say!();
    for event in document["events"].as_array().into_iter().flatten() {
        let actor = &event["actor"];
        let token = actor["auth"]["token_id"]
            .as_str()
            .map(|token| format!(", token {token}"))
            .unwrap_or_default();
        say!(
            "  #{:<3} {}  {:<6}  {} (via {}{token})  {}",
            event["seq"].as_u64().unwrap_or_default(),
            short_time(event["recorded_at"].as_str().unwrap_or_default()),
            event["role"].as_str().unwrap_or_default(),
            actor["principal"].as_str().unwrap_or_default(),
            actor["via"].as_str().unwrap_or_default(),
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

fn describe(event: &Value) -> String {
    // Decoding into the domain type gives the same summary the server would;
    // fall back to the kind name for events this client does not know.
    match serde_json::from_value::<custody_core::Event>(event.clone()) {
        Ok(event) => event.body.summary(),
        Err(_) => event["kind"].as_str().unwrap_or("event").to_string(),
    }
}

/// Prints the case list as a table.
pub fn print_cases(list: &Value) {
    let cases = list["cases"].as_array().cloned().unwrap_or_default();
    if cases.is_empty() {
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
    for case in cases {
        say!(
            "{:<35}  {:<9}  {:<16}  {:<20}  {}",
            case["case_id"].as_str().unwrap_or_default(),
            case["state"].as_str().unwrap_or_default(),
            case["requester"].as_str().unwrap_or_default(),
            short_time(case["opened_at"].as_str().unwrap_or_default()),
            case["summary"].as_str().unwrap_or_default()
        );
    }
}

/// Prints the principal list as a table.
pub fn print_principals(list: &Value) {
    say!("{:<24}  {:<10}  {:<12}  GROUPS", "NAME", "KIND", "ORG");
    for principal in list["principals"].as_array().into_iter().flatten() {
        let groups: Vec<&str> = principal["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        say!(
            "{:<24}  {:<10}  {:<12}  {}",
            principal["id"].as_str().unwrap_or_default(),
            principal["kind"].as_str().unwrap_or_default(),
            principal["org"].as_str().unwrap_or("-"),
            groups.join(",")
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

/// Prints the token list as a table.
pub fn print_tokens(list: &Value) {
    say!(
        "{:<20}  {:<16}  {:<20}  {:<20}  STATUS",
        "TOKEN",
        "PRINCIPAL",
        "CREATED",
        "EXPIRES"
    );
    for token in list["tokens"].as_array().into_iter().flatten() {
        let status = match (token["revoked_at"].as_str(), token["status"].as_str()) {
            (Some(at), _) => format!(
                "revoked {} by {}",
                short_time(at),
                token["revoked_by"].as_str().unwrap_or("?")
            ),
            (None, Some("expired")) => "expired".to_string(),
            (None, _) => "active".to_string(),
        };
        say!(
            "{:<20}  {:<16}  {:<20}  {:<20}  {status}",
            token["token_id"].as_str().unwrap_or_default(),
            token["principal"].as_str().unwrap_or_default(),
            short_time(token["created_at"].as_str().unwrap_or_default()),
            token["expires_at"]
                .as_str()
                .map(short_time)
                .unwrap_or_else(|| "never".to_string()),
        );
    }
}

/// `custody policy`: the rules in force, then the record of adoptions.
pub fn print_policy(document: &Value) {
    say!(
        "policy {}",
        document["policy_hash"].as_str().unwrap_or_default()
    );
    let rules = document["policy"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if rules.is_empty() {
        say!("  no rules: every change needs one approval from anyone but the requester");
    }
    for rule in &rules {
        let stages = rule["stages"].as_array().cloned().unwrap_or_default();
        let approvals = if stages.is_empty() {
            let groups = join(&rule["approver_groups"]);
            format!(
                "{} approval(s){}",
                rule["approvals"],
                if groups.is_empty() {
                    String::new()
                } else {
                    format!(" from {groups}")
                }
            )
        } else {
            stages
                .iter()
                .map(|stage| {
                    let groups = join(&stage["approver_groups"]);
                    format!(
                        "{}: {}{}",
                        stage["name"].as_str().unwrap_or_default(),
                        stage["approvals"],
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
        say!(
            "  rule {}: {approvals}",
            rule["name"].as_str().unwrap_or_default()
        );
    }
    say!();
    say!(
        "policy record {}:",
        document["record"].as_str().unwrap_or("(none)")
    );
    for adoption in document["history"].as_array().cloned().unwrap_or_default() {
        say!(
            "  #{:<3} {}  {}  from {}  rules: {}",
            adoption["seq"],
            adoption["recorded_at"].as_str().unwrap_or_default(),
            adoption["policy_hash"].as_str().unwrap_or_default(),
            adoption["source"].as_str().unwrap_or_default(),
            join(&adoption["rules"])
        );
    }
}

fn join(list: &Value) -> String {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// `custody notifications`: one line per notification.
pub fn print_notifications(list: &Value) {
    let notifications = list["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if notifications.is_empty() {
        say!("no notifications");
        return;
    }
    for entry in notifications {
        let recipient = entry["recipient"]
            .as_str()
            .map(|recipient| format!(" {recipient}"))
            .unwrap_or_default();
        let error = entry["last_error"]
            .as_str()
            .map(|error| format!("  last error: {}", error.lines().next().unwrap_or_default()))
            .unwrap_or_default();
        say!(
            "{:<9} {}  {}  {} to {} via {}{recipient}  attempts {}{error}",
            entry["state"].as_str().unwrap_or_default().to_uppercase(),
            entry["delivery_id"].as_str().unwrap_or_default(),
            entry["case_id"].as_str().unwrap_or_default(),
            entry["kind"].as_str().unwrap_or_default(),
            entry["audience"].as_str().unwrap_or_default(),
            entry["channel"].as_str().unwrap_or_default(),
            entry["attempts"],
        );
    }
}

/// `custody evidence list`: one line per evidence event.
pub fn print_evidence(list: &Value) {
    let items = list["evidence"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        say!("no evidence");
        return;
    }
    for item in items {
        let payload = &item["payload"];
        let line = match item["kind"].as_str().unwrap_or_default() {
            "evidence_attached" => match payload["link"].as_object() {
                Some(link) => format!(
                    "{}  {} bytes  link {} ({})",
                    payload["sha256"].as_str().unwrap_or_default(),
                    payload["size"],
                    link["url"].as_str().unwrap_or_default(),
                    link["status"]
                ),
                None => format!(
                    "{}  {} bytes  {} ({})",
                    payload["sha256"].as_str().unwrap_or_default(),
                    payload["size"],
                    payload["file_name"].as_str().unwrap_or("unnamed"),
                    payload["sniffed_media_type"].as_str().unwrap_or_default()
                ),
            },
            "evidence_unverified" => format!(
                "UNVERIFIED link {}: {}",
                payload["url"].as_str().unwrap_or_default(),
                payload["error"].as_str().unwrap_or_default()
            ),
            "evidence_rechecked" => format!(
                "{} link {}",
                if payload["drifted"] == true {
                    "CHANGED"
                } else {
                    "rechecked"
                },
                payload["url"].as_str().unwrap_or_default()
            ),
            other => other.to_string(),
        };
        say!(
            "{}  by {}  {line}",
            item["recorded_at"].as_str().unwrap_or_default(),
            item["by"].as_str().unwrap_or_default()
        );
    }
}
