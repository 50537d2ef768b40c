//! The HTTP API's request bodies and query strings (custody-api's types, as
//! the server's extractors read them: `serde_json` for bodies,
//! `serde_urlencoded` for queries), then the custody-core parsers the
//! handlers run on their fields before anything is written (the subject,
//! change kind, duration, ticket, change set, times, IDs, free text). The
//! first byte picks the type.
#![no_main]

use std::str::FromStr;

use custody_api::{
    BreakGlassBody, CasesQuery, CommentBody, ConsistencyQuery, DecisionBody, DelegationBody,
    EntriesQuery, ExecutionBody, ExportQuery, GroupsBody, IdentitiesBody, IdentityBody,
    InclusionQuery, LinkBody, MergeBody, NotificationsQuery, PrincipalBody, RecheckBody,
    RequestBody, ReviewBody, SubjectBody, TokenBody, TokensQuery,
};
use custody_core::change_set::ChangeSet;
use custody_core::event::ReviewOutcome;
use custody_core::model::{
    parse_duration, validate_label, validate_name, validate_text, Change, ChangeKind, PrincipalId,
    PrincipalKind, Subject, SubjectKind, Ticket,
};
use custody_core::{CaseId, EventId, Timestamp};
use custody_fuzz::split_selector;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

fn body<T: DeserializeOwned>(input: &[u8]) -> Option<T> {
    serde_json::from_slice(input).ok()
}

fn query<T: DeserializeOwned>(input: &[u8]) -> Option<T> {
    serde_urlencoded::from_bytes(input).ok()
}

/// What `POST /v1/cases` and `POST /v1/break-glass` check before the store
/// (custody-server's `parse_change`).
fn change(
    subject: &SubjectBody,
    kind: Option<&str>,
    entitlement: &str,
    resource: Option<&str>,
    duration: Option<&str>,
    ticket: Option<&str>,
) {
    let Ok(subject_kind) = SubjectKind::from_str(&subject.kind) else {
        return;
    };
    let Ok(id) = validate_name("subject.id", &subject.id) else {
        return;
    };
    let kind = match kind {
        Some(kind) => match ChangeKind::from_str(kind) {
            Ok(kind) => kind,
            Err(_) => return,
        },
        None => ChangeKind::Grant,
    };
    let duration_seconds = match duration.map(parse_duration).transpose() {
        Ok(seconds) => seconds,
        Err(_) => return,
    };
    let subject = Subject {
        kind: subject_kind,
        id,
    };
    if let Ok(change) = Change::new(
        subject,
        kind,
        entitlement.to_string(),
        resource.map(str::to_string),
        duration_seconds,
    ) {
        let _ = change.digest();
        let _ = change.revocation();
    }
    if let Some(ticket) = ticket {
        let _ = Ticket::from_str(ticket);
    }
}

fn text(field: &'static str, value: Option<&str>) {
    if let Some(value) = value {
        let _ = validate_text(field, value);
    }
}

fn time(value: Option<&str>) {
    if let Some(value) = value {
        let _ = Timestamp::parse(value);
    }
}

fn change_set(raw: Option<&serde_json::value::RawValue>) {
    if let Some(raw) = raw {
        let _ = ChangeSet::from_json(raw.get());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, input)) = split_selector(data) else {
        return;
    };
    match selector % 23 {
        0 => {
            if let Some(request) = body::<RequestBody>(input) {
                change(
                    &request.subject,
                    request.change.as_deref(),
                    &request.entitlement,
                    request.resource.as_deref(),
                    request.duration.as_deref(),
                    request.ticket.as_deref(),
                );
                text("justification", request.justification.as_deref());
            }
        }
        1 => {
            if let Some(request) = body::<BreakGlassBody>(input) {
                change(
                    &request.subject,
                    request.change.as_deref(),
                    &request.entitlement,
                    request.resource.as_deref(),
                    request.duration.as_deref(),
                    request.ticket.as_deref(),
                );
                text("justification", Some(&request.justification));
                change_set(request.change_set.as_deref());
            }
        }
        2 => {
            if let Some(decision) = body::<DecisionBody>(input) {
                text("comment", decision.comment.as_deref());
                time(decision.occurred_at.as_deref());
                if let Some(chat) = &decision.chat {
                    time(Some(&chat.message_time));
                    text("channel", Some(&chat.channel));
                    let _ = chat.approver.as_deref().map(PrincipalId::from_str);
                }
                let _ = decision.confirm.as_deref().map(EventId::from_str);
            }
        }
        3 => {
            if let Some(execution) = body::<ExecutionBody>(input) {
                change_set(execution.change_set.as_deref());
                text("comment", execution.comment.as_deref());
                time(execution.occurred_at.as_deref());
            }
        }
        4 => {
            if let Some(review) = body::<ReviewBody>(input) {
                let _ = ReviewOutcome::from_str(&review.outcome);
                text("comment", review.comment.as_deref());
            }
        }
        5 => {
            if let Some(comment) = body::<CommentBody>(input) {
                text("text", Some(&comment.text));
            }
        }
        6 => {
            if let Some(merge) = body::<MergeBody>(input) {
                let _ = CaseId::from_str(&merge.into);
                text("comment", Some(&merge.comment));
            }
        }
        7 => {
            if let Some(principal) = body::<PrincipalBody>(input) {
                let _ = PrincipalId::from_str(&principal.name);
                let _ = principal.kind.as_deref().map(PrincipalKind::from_str);
                for group in &principal.groups {
                    let _ = validate_name("group", group);
                }
                if let Some(display_name) = &principal.display_name {
                    let _ = validate_label("display_name", display_name);
                }
            }
        }
        8 => {
            if let Some(groups) = body::<GroupsBody>(input) {
                for group in &groups.groups {
                    let _ = validate_name("group", group);
                }
            }
        }
        9 => {
            if let Some(identity) = body::<IdentityBody>(input) {
                let _ = PrincipalId::from_str(&identity.principal);
            }
        }
        10 => {
            if let Some(identities) = body::<IdentitiesBody>(input) {
                for entry in &identities.identities {
                    let _ = PrincipalId::from_str(&entry.principal);
                }
            }
        }
        11 => {
            if let Some(delegation) = body::<DelegationBody>(input) {
                let _ = parse_duration(&delegation.valid_for);
                let _ = PrincipalId::from_str(&delegation.on_behalf_of);
                for principal in &delegation.principals {
                    let _ = PrincipalId::from_str(principal);
                }
                for entitlement in &delegation.entitlements {
                    let _ = validate_name("entitlement", entitlement);
                }
            }
        }
        12 => {
            let _ = body::<LinkBody>(input);
        }
        13 => {
            if let Some(recheck) = body::<RecheckBody>(input) {
                let _ = recheck.case.as_deref().map(CaseId::from_str);
            }
        }
        14 => {
            if let Some(token) = body::<TokenBody>(input) {
                let _ = token.ttl.as_deref().map(parse_duration);
            }
        }
        15 => {
            let _ = query::<CasesQuery>(input);
        }
        16 => {
            let _ = query::<EntriesQuery>(input);
        }
        17 => {
            let _ = query::<InclusionQuery>(input);
        }
        18 => {
            let _ = query::<ConsistencyQuery>(input);
        }
        19 => {
            let _ = query::<TokensQuery>(input);
        }
        20 => {
            let _ = query::<ExportQuery>(input);
        }
        21 => {
            let _ = query::<NotificationsQuery>(input);
        }
        _ => {
            // Identifiers that arrive in paths.
            if let Ok(text) = std::str::from_utf8(input) {
                let _ = CaseId::from_str(text);
                let _ = EventId::from_str(text);
                let _ = custody_core::Sha256Hash::from_str(text);
            }
        }
    }
});
