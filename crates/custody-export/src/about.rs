//! What an event is about, in the flat terms CEF and ECS use: the identity
//! whose access it changes (or would change), the group, the entitlement
//! and the resource. OCSF, with its richer classes, works from the event
//! itself (see [`crate::ocsf`]).

use std::borrow::Cow;

use custody_core::event::EventBody;
use custody_core::model::{Change, SubjectKind};

use crate::{case_change, Record};

/// The identity and the access an event is about.
#[derive(Debug, Default)]
pub(crate) struct About {
    /// The identity's unique name: `KIND:ID` for a subject, the principal
    /// ID for a principal.
    pub(crate) user_id: Option<String>,
    /// Its name: the subject's ID, the principal ID, the vendor organisation.
    pub(crate) user_name: Option<String>,
    /// The group it joins or leaves, or the group whose privileges change.
    pub(crate) group: Option<String>,
    /// The entitlement, or the privilege granted.
    pub(crate) privilege: Option<String>,
    /// The resource the entitlement applies to.
    pub(crate) resource: Option<String>,
    /// The change kind (`grant`, `revoke`, ...) when there is a change.
    pub(crate) change: Option<&'static str>,
}

/// The change an event concerns: an execution's applied change, a
/// revocation of the case's change, or the case's change.
pub(crate) fn change_of<'a>(record: &'a Record<'_>) -> Option<Cow<'a, Change>> {
    match &record.event.body {
        EventBody::ExecutionCompleted(execution) | EventBody::ExecutionFailed(execution) => {
            match &execution.applied {
                Some(applied) => Some(Cow::Borrowed(applied)),
                None => case_change(record).map(Cow::Borrowed),
            }
        }
        EventBody::ExecutionObserved(observed) => Some(Cow::Borrowed(&observed.change)),
        EventBody::RevocationExecuted(execution) => match &execution.applied {
            Some(applied) => Some(Cow::Borrowed(applied)),
            None => case_change(record).map(|change| Cow::Owned(change.revocation())),
        },
        _ => case_change(record).map(Cow::Borrowed),
    }
}

pub(crate) fn about(record: &Record<'_>) -> About {
    match &record.event.body {
        EventBody::PrincipalAdded(added) => About {
            user_id: Some(added.principal.to_string()),
            user_name: Some(added.principal.to_string()),
            ..About::default()
        },
        EventBody::PrincipalGroupsChanged(changed) => About {
            user_id: Some(changed.principal.to_string()),
            user_name: Some(changed.principal.to_string()),
            group: Some(changed.groups.join(",")),
            ..About::default()
        },
        EventBody::TokenIssued(issued) => About {
            user_id: Some(issued.principal.to_string()),
            user_name: Some(issued.principal.to_string()),
            privilege: Some(format!("token:{}", issued.token_id)),
            ..About::default()
        },
        EventBody::TokenRevoked(revoked) => About {
            user_id: Some(revoked.principal.to_string()),
            user_name: Some(revoked.principal.to_string()),
            privilege: Some(format!("token:{}", revoked.token_id)),
            ..About::default()
        },
        EventBody::DelegationGranted(grant) => {
            let name = match grant.principals.as_slice() {
                [only] => only.to_string(),
                _ => grant.vendor_org.clone(),
            };
            About {
                user_id: Some(name.clone()),
                user_name: Some(name),
                privilege: Some(format!("act_on_behalf_of:{}", grant.on_behalf_of)),
                resource: Some(grant.grant_id.clone()),
                ..About::default()
            }
        }
        EventBody::DelegationRevoked(revoked) => About {
            resource: Some(revoked.grant_id.clone()),
            ..About::default()
        },
        // The principal gains (or loses) an outside user who acts as it.
        EventBody::IdentityMapped(mapped) => About {
            user_id: Some(mapped.principal.to_string()),
            user_name: Some(mapped.principal.to_string()),
            privilege: Some(format!(
                "identity:connector:{}:{}",
                mapped.connector, mapped.external_user
            )),
            ..About::default()
        },
        EventBody::IdentityUnmapped(unmapped) => About {
            user_id: Some(unmapped.principal.to_string()),
            user_name: Some(unmapped.principal.to_string()),
            privilege: Some(format!(
                "identity:connector:{}:{}",
                unmapped.connector, unmapped.external_user
            )),
            ..About::default()
        },
        _ => match change_of(record) {
            Some(change) => {
                let subject = change.subject();
                let group = if subject.kind == SubjectKind::Group {
                    Some(subject.id.clone())
                } else {
                    change
                        .entitlement()
                        .strip_prefix("group:")
                        .map(str::to_owned)
                };
                About {
                    user_id: Some(subject.to_string()),
                    user_name: Some(subject.id.clone()),
                    group,
                    privilege: Some(change.entitlement().to_owned()),
                    resource: change.resource().map(str::to_owned),
                    change: Some(change.kind().as_str()),
                }
            }
            None => About::default(),
        },
    }
}

/// Free text the event carries (a comment, a justification, an error).
pub(crate) fn text_of(body: &EventBody) -> Option<&str> {
    match body {
        EventBody::RequestCreated(request) => request.justification.as_deref(),
        EventBody::ApprovalGranted(decision) | EventBody::ApprovalDenied(decision) => {
            decision.comment.as_deref()
        }
        EventBody::ExecutionCompleted(execution)
        | EventBody::ExecutionFailed(execution)
        | EventBody::RevocationExecuted(execution) => execution.comment.as_deref(),
        EventBody::ReviewCompleted(review) => review.comment.as_deref(),
        EventBody::CommentAdded(comment) => Some(&comment.text),
        EventBody::DuplicateMerged(link) | EventBody::DuplicateLinked(link) => {
            link.comment.as_deref()
        }
        EventBody::BreakGlassInvoked(break_glass) => Some(&break_glass.justification),
        EventBody::NotificationAttempted(attempt) => attempt.error.as_deref(),
        EventBody::EvidenceUnverified(failure) => Some(&failure.error),
        EventBody::EvidenceRechecked(recheck) => recheck.error.as_deref(),
        // The monitor's finding, in its own words (cef, ecs, syslog and
        // cloudevents carry it as the event's text).
        EventBody::FindingRaised(raised) => Some(&raised.message),
        _ => None,
    }
}

/// The evidence an event names: (SHA-256 hex, file name, URL) each.
pub(crate) fn evidence_of(body: &EventBody) -> Vec<(String, Option<&str>, Option<&str>)> {
    fn one(evidence: &custody_core::event::Evidence) -> (String, Option<&str>, Option<&str>) {
        (
            evidence.sha256.to_hex(),
            evidence.file_name.as_deref(),
            evidence.link.as_ref().map(|link| link.url.as_str()),
        )
    }
    match body {
        EventBody::EvidenceAttached(evidence) => vec![one(evidence)],
        EventBody::EvidenceHeld(held) => vec![one(&held.evidence)],
        EventBody::EvidenceJoined(join) => join.evidence.iter().map(one).collect(),
        EventBody::EvidenceRechecked(recheck) => {
            vec![(recheck.previous.to_hex(), None, Some(recheck.url.as_str()))]
        }
        _ => Vec::new(),
    }
}
