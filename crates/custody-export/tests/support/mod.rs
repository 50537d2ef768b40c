//! One real event of every kind, for the format tests.
//!
//! [`bodies`] builds one `EventBody` of every variant, with `text` wherever
//! the event holds free text, and [`all_kind_names`] asks serde for every
//! variant the enum has, so [`every_kind_is_built`](crate) fails when a
//! variant is added to `EventBody` and not here.

#![allow(dead_code, clippy::unwrap_used)]

pub mod parse;

use custody_core::event::*;
use custody_core::model::{
    Actor, AuthContext, Change, ChangeKind, ExternalUser, PrincipalKind, Role, Subject, Ticket, Via,
};
use custody_core::policy::AppliedRule;
use custody_core::{CaseId, EventId, Sha256Hash, Timestamp};
use custody_export::{CaseRoles, Record, Roles};

/// Hostile free text: every character class a format must escape.
pub const HOSTILE: &str = "a|b=c\\d\"e]f[g\nh\ri\0j\u{202e}k\u{7}l naïve 日本 =| \\n end";

pub const CASE: &str = "AC-019ad2c1a7f37c3e8b1f4d2a9c0e5b71";

pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_micros(1_800_000_000_000_000 + seconds * 1_000_000 + 123_456)
}

pub fn hash(seed: &[u8]) -> Sha256Hash {
    Sha256Hash::of(seed)
}

pub fn event_id(n: u32) -> EventId {
    format!("EV-019ad2c1a7f37{n:03}8b1f4d2a9c0e5b71")
        .parse()
        .unwrap()
}

pub fn human(name: &str) -> Actor {
    Actor {
        principal: name.parse().unwrap(),
        kind: PrincipalKind::Human,
        org: Some("example".into()),
        groups: vec!["security".into()],
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Cli,
        auth: AuthContext::Token {
            token_id: format!("tok_{name}"),
        },
    }
}

/// A vendor operator acting for an internal team under a grant, through a
/// connector, authenticated by OIDC; `on_behalf_of` holds `text`.
pub fn vendor(name: &str, text: &str) -> Actor {
    Actor {
        principal: name.parse().unwrap(),
        kind: PrincipalKind::Vendor,
        org: Some("acme".into()),
        groups: Vec::new(),
        on_behalf_of: Some(format!("platform-team {text}")),
        delegation_grant: Some("dg_0001".into()),
        via: Via::Connector("okta".into()),
        auth: AuthContext::Oidc {
            issuer: "https://id.example".into(),
            subject: "00u1".into(),
        },
    }
}

/// An observer whose action came in through a connector: the outside
/// system's user, mapped to `name`; the connector's text holds `text`.
pub fn through_connector(name: &str, text: &str) -> Actor {
    Actor {
        principal: name.parse().unwrap(),
        kind: PrincipalKind::Human,
        org: None,
        groups: Vec::new(),
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Connector("jira".into()),
        auth: AuthContext::Connector {
            connector: "jira".into(),
            external_user: format!("5b10ac8d {text}"),
        },
    }
}

pub fn change(kind: ChangeKind, subject: &str) -> Change {
    Change::new(
        subject.parse::<Subject>().unwrap(),
        kind,
        "role:admin".into(),
        Some("prod-db".into()),
        Some(3600),
    )
    .unwrap()
}

fn evidence(text: &str) -> Evidence {
    Evidence {
        sha256: hash(b"blob"),
        size: 42,
        file_name: Some(format!("report {text}.pdf")),
        declared_media_type: Some("application/pdf".into()),
        sniffed_media_type: "application/pdf".into(),
        link: Some(LinkCapture {
            url: "https://wiki.example/page".into(),
            final_url: "https://wiki.example/page?v=2".into(),
            status: 200,
            fetched_at: at(5),
        }),
    }
}

fn execution(text: &str, applied: Option<Change>) -> Execution {
    Execution {
        change_set: Some(serde_json::json!({"applied": [text], "count": 1})),
        change_set_hash: Some(hash(b"change set")),
        comment: Some(text.to_owned()),
        applied,
    }
}

/// An outside user's ID holding as much of `text` as one may: every
/// character but the invisible ones, so the formats' escaping of `|`, `=`,
/// `\`, quotes and brackets is exercised on it too.
pub fn outside_user(text: &str) -> ExternalUser {
    let visible: String = text
        .chars()
        .filter(|c| !custody_core::text::is_unsafe_char(*c))
        .collect();
    let mut id = format!("U0{}", visible.trim_end());
    while id.len() > custody_core::model::MAX_EXTERNAL_USER_BYTES {
        id.pop();
        id = id.trim_end().to_string();
    }
    id.parse().unwrap()
}

/// One body of every `EventBody` variant, with the role and actor it is
/// recorded with, `text` in every free-text field.
pub fn bodies(text: &str) -> Vec<(EventBody, Role, Actor)> {
    let requested = change(ChangeKind::Grant, "user:bob");
    let other = || {
        "AC-019ad2c1a7f37ddd8b1f4d2a9c0e5b72"
            .parse::<CaseId>()
            .unwrap()
    };
    let system = Actor::system;
    let admin = || human("admin");
    let comment = Some(text.to_owned());
    vec![
        (
            EventBody::RequestCreated(RequestCreated {
                drill: false,
                change_hash: requested.digest(),
                change: requested.clone(),
                rule: AppliedRule::brief_default(),
                justification: comment.clone(),
                ticket: Some(Ticket {
                    system: "jira".into(),
                    key: "SEC-142".into(),
                }),
            }),
            Role::Requester,
            human("alice"),
        ),
        (
            EventBody::ApprovalGranted(Decision {
                change_hash: requested.digest(),
                comment: comment.clone(),
                chat: Some(ChatApproval {
                    channel: format!("slack:#access {text}"),
                    permalink: "https://chat.example/p/1".into(),
                    message_sha256: hash(b"message"),
                    approver: "carol".parse().unwrap(),
                }),
            }),
            Role::Approver,
            human("carol"),
        ),
        (
            EventBody::ApprovalConfirmed(Confirmation {
                approval_event: event_id(2),
            }),
            Role::Approver,
            vendor("dave@acme", text),
        ),
        (
            EventBody::ApprovalDenied(Decision {
                change_hash: requested.digest(),
                comment: comment.clone(),
                chat: None,
            }),
            Role::Approver,
            human("erin"),
        ),
        (
            EventBody::ExecutionCompleted(execution(text, Some(requested.clone()))),
            Role::Executor,
            vendor("vic@acme", text),
        ),
        (
            EventBody::ExecutionFailed(execution(text, None)),
            Role::Executor,
            vendor("vic@acme", text),
        ),
        (
            EventBody::ReviewCompleted(Review {
                outcome: ReviewOutcome::Mismatch,
                comment: comment.clone(),
            }),
            Role::Reviewer,
            human("rita"),
        ),
        (
            EventBody::CommentAdded(Comment {
                text: text.to_owned(),
            }),
            Role::Observer,
            human("olga"),
        ),
        (
            // What an identity provider saw done, by an outside actor whose
            // name and session come from the source (hostile text).
            EventBody::ExecutionObserved(custody_core::observation::Observed {
                source_kind: "okta".into(),
                action: "group.user_membership.add".into(),
                raw_sha256: Sha256Hash::of(text.as_bytes()),
                actor: custody_core::observation::ObservedActor {
                    id: "00u-olga".into(),
                    kind: None,
                    display: Some(text.to_owned()),
                    on_behalf_of: Some(text.to_owned()),
                    session: Some(text.to_owned()),
                    source_identity: None,
                    principal: None,
                },
                change: requested.clone(),
                matched_by: custody_core::observation::MatchedBy::Window,
                matched_on: None,
                review_deadline: None,
                drift: vec!["drift.actor-mismatch".into()],
            }),
            Role::Observer,
            Actor::observer("okta", "00u-olga"),
        ),
        (
            EventBody::TicketLinked(TicketLinked {
                ticket: Ticket {
                    system: "jira".into(),
                    key: "SEC-143".into(),
                },
            }),
            Role::Observer,
            through_connector("olga", text),
        ),
        (
            EventBody::TicketChanged(TicketChanged {
                ticket: Ticket {
                    system: "jira".into(),
                    key: "SEC-142".into(),
                },
                change: requested.clone(),
            }),
            Role::Observer,
            through_connector("olga", text),
        ),
        (
            EventBody::DuplicateMerged(MergeLink {
                other_case: other(),
                comment: comment.clone(),
            }),
            Role::Observer,
            human("olga"),
        ),
        (
            EventBody::DuplicateLinked(MergeLink {
                other_case: other(),
                comment: comment.clone(),
            }),
            Role::Observer,
            human("olga"),
        ),
        (
            EventBody::BreakGlassInvoked(BreakGlass {
                justification: text.to_owned(),
                review_deadline: at(86_400),
            }),
            Role::Executor,
            human("oncall"),
        ),
        (
            // The monitor's finding: its message quotes what it found.
            EventBody::FindingRaised(FindingRaised {
                code: "log.leaf-mismatch".into(),
                severity: "critical".into(),
                message: text.to_owned(),
                event_id: Some(event_id(1).to_string()),
                log_index: Some(1),
                scanned_to: 9,
            }),
            Role::System,
            system(),
        ),
        (
            EventBody::EscalationRaised(Escalation {
                reason: EscalationReason::DeadLetter,
                deadline: at(60),
                delivery_id: Some(format!("{}.1", event_id(1))),
            }),
            Role::System,
            system(),
        ),
        (
            EventBody::RevocationDue(RevocationDue {
                expired_at: at(3600),
            }),
            Role::System,
            system(),
        ),
        (
            EventBody::RevocationExecuted(execution(text, Some(requested.revocation()))),
            Role::Executor,
            human("vic"),
        ),
        (
            EventBody::RevocationOpened(CaseLink {
                other_case: other(),
            }),
            Role::Reviewer,
            human("rita"),
        ),
        (
            EventBody::OpenedByReview(CaseLink {
                other_case: other(),
            }),
            Role::Reviewer,
            human("rita"),
        ),
        (
            EventBody::NotificationAttempted(Attempt {
                delivery_id: format!("{}.1", event_id(1)),
                channel: "mail".into(),
                recipient: Some("carol@example.com".into()),
                attempt: 3,
                outcome: DeliveryOutcome::Dead,
                status: Some(550),
                error: comment.clone(),
                latency_ms: 120,
            }),
            Role::System,
            system(),
        ),
        (
            EventBody::ExpiryApproaching(ExpiryApproaching {
                expires_at: at(3600),
            }),
            Role::System,
            system(),
        ),
        (
            EventBody::EvidenceAttached(evidence(text)),
            Role::Observer,
            human("olga"),
        ),
        (
            EventBody::EvidenceUnverified(LinkFailure {
                url: "https://wiki.example/gone".into(),
                error: text.to_owned(),
            }),
            Role::Observer,
            human("olga"),
        ),
        (
            EventBody::EvidenceRechecked(Recheck {
                url: "https://wiki.example/page".into(),
                previous: hash(b"blob"),
                sha256: Some(hash(b"blob 2")),
                status: Some(200),
                drifted: true,
                error: None,
            }),
            Role::System,
            system(),
        ),
        (
            EventBody::EvidenceHeld(HeldEvidence {
                ticket: Ticket {
                    system: "jira".into(),
                    key: "SEC-142".into(),
                },
                evidence: evidence(text),
            }),
            Role::Observer,
            human("olga"),
        ),
        (
            EventBody::EvidenceJoined(EvidenceJoin {
                record: other(),
                evidence: vec![evidence(text)],
            }),
            Role::System,
            system(),
        ),
        (
            EventBody::EvidenceReleased(CaseLink {
                other_case: other(),
            }),
            Role::System,
            system(),
        ),
        (
            EventBody::PolicyAdopted(PolicyAdopted {
                policy_hash: hash(b"policy"),
                policy: serde_json::json!({"rules": [{"name": text}]}),
                previous_hash: Some(hash(b"old policy")),
                source: format!("/etc/custody {text}.toml"),
            }),
            Role::System,
            system(),
        ),
        (
            EventBody::PrincipalAdded(PrincipalAdded {
                principal: "vic@acme".parse().unwrap(),
                display_name: format!("Vic {text}"),
                kind: PrincipalKind::Vendor,
                groups: vec!["operators".into()],
                org: Some("acme".into()),
            }),
            Role::Admin,
            admin(),
        ),
        (
            EventBody::PrincipalGroupsChanged(PrincipalGroupsChanged {
                principal: "bob".parse().unwrap(),
                previous: vec!["dev".into()],
                groups: vec!["admins".into(), "dev".into()],
            }),
            Role::Admin,
            admin(),
        ),
        (
            EventBody::TokenIssued(TokenIssued {
                token_id: "tok_0001".into(),
                principal: "bob".parse().unwrap(),
                secret_sha256_prefix: "0123456789abcdef".into(),
                secret_sha256: None,
                expires_at: Some(at(86_400)),
            }),
            Role::Admin,
            admin(),
        ),
        (
            EventBody::TokenRevoked(TokenRevoked {
                token_id: "tok_0001".into(),
                principal: "bob".parse().unwrap(),
            }),
            Role::Admin,
            admin(),
        ),
        (
            EventBody::IdentityMapped(IdentityMapped {
                connector: "slack".parse().unwrap(),
                external_user: outside_user(text),
                principal: "bob".parse().unwrap(),
                previous: Some("carol".parse().unwrap()),
            }),
            Role::Admin,
            admin(),
        ),
        (
            EventBody::IdentityUnmapped(IdentityUnmapped {
                connector: "slack".parse().unwrap(),
                external_user: outside_user(text),
                principal: "bob".parse().unwrap(),
            }),
            Role::Admin,
            admin(),
        ),
        (
            EventBody::DelegationGranted(DelegationGranted {
                grant_id: "dg_0001".into(),
                vendor_org: "acme".into(),
                principals: vec!["vic@acme".parse().unwrap()],
                on_behalf_of: format!("platform-team {text}"),
                entitlements: vec!["role:*".into()],
                resources: vec!["prod-*".into()],
                valid_until: at(86_400 * 30),
                granted_by: "admin".parse().unwrap(),
                granted_at: at(0),
            }),
            Role::Admin,
            admin(),
        ),
        (
            EventBody::DelegationRevoked(DelegationRevoked {
                grant_id: "dg_0001".into(),
                revoked_at: at(7200),
            }),
            Role::Admin,
            admin(),
        ),
    ]
}

/// Every variant name `EventBody` has, as serde knows them: its error for
/// an unknown kind lists them all, straight from the enum's definition.
pub fn all_kind_names() -> Vec<String> {
    let error = serde_json::from_value::<EventBody>(
        serde_json::json!({"kind": "no_such_kind", "payload": null}),
    )
    .unwrap_err()
    .to_string();
    let list = error
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("unexpected serde message: {error}"))
        .1;
    let list = list.split(" at line").next().unwrap();
    list.split(", ")
        .map(|name| name.trim().trim_matches('`').to_owned())
        .collect()
}

/// Events of one case (all sharing [`CASE`]), sealed in order, with text in
/// every free-text field.
pub fn events(text: &str) -> Vec<Event> {
    let case_id: CaseId = CASE.parse().unwrap();
    let mut previous: Option<Sha256Hash> = None;
    bodies(text)
        .into_iter()
        .enumerate()
        .map(|(index, (body, role, actor))| {
            let seq = u64::try_from(index).unwrap() + 1;
            let offset = i64::try_from(index).unwrap();
            let event = Event {
                v: EVENT_FORMAT_VERSION,
                event_id: event_id(u32::try_from(index).unwrap() + 1),
                case_id: case_id.clone(),
                seq,
                prev_hash: previous,
                body,
                actor,
                role,
                occurred_at: at(offset * 10 - 1),
                recorded_at: at(offset * 10),
                source: None,
                external_id: None,
                causation: (seq > 1).then(|| event_id(1)),
                idempotency_key: Some(format!("key-{seq}")),
                notify: Vec::new(),
            };
            previous = Some(event.hash());
            event
        })
        .collect()
}

/// One exported record: an event with its canonical bytes and the roles as
/// of it.
pub struct Exported {
    pub log_index: u64,
    pub event: Event,
    pub bytes: Vec<u8>,
    pub roles: Roles,
}

impl Exported {
    pub fn record(&self) -> Record<'_> {
        Record {
            log_index: self.log_index,
            event: &self.event,
            bytes: &self.bytes,
            roles: &self.roles,
        }
    }
}

/// [`events`] with the roles tracked as an export tracks them.
pub fn exported(text: &str) -> Vec<Exported> {
    let mut tracker = CaseRoles::new(16);
    events(text)
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            let roles = tracker.observe(&event).clone();
            Exported {
                log_index: 1000 + u64::try_from(index).unwrap(),
                bytes: event.canonical_bytes(),
                event,
                roles,
            }
        })
        .collect()
}
