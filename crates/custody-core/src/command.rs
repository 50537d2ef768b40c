//! Commands: what the ledger is asked to write, before it is decided.
//!
//! A [`CaseCommand`] is either what a client may ask for
//! ([`ClientCommand`]) or what only the ledger writes, as its `system` actor
//! ([`LedgerCommand`]: escalations of missed deadlines, delivery attempts).
//! A client command is decided by its shape: an [`Opening`] has no case yet
//! (the store finds or makes one), a [`CaseStep`] is decided against the one
//! case it names ([`CaseStep::decide`]), a [`Merge`] with both of its cases
//! ([`Merge::decide`]). Each kind holds only what it can decide, so no
//! decision has a branch for a command that cannot reach it.
//!
//! A command is parsed from input at the edge. Its canonical bytes are the
//! fingerprint an idempotency key is bound to: the same key with a
//! different command is refused. They are the bytes of one flat object
//! tagged `command` (`{"command": "approve", "case_id": ...}`), whichever
//! kind holds it, so fingerprints stored before the kinds were split still
//! match.

use serde::Serialize;

use crate::case::CaseView;
use crate::event::ReviewOutcome;
use crate::id::{CaseId, Sha256Hash};
use crate::lifecycle::{self, Draft, Refusal};
use crate::model::{Actor, Change, Ticket};
use crate::policy::AppliedRule;

/// A write against the case ledger.
#[derive(Clone, Debug, PartialEq, Serialize)]
// Written as the command it holds: the kinds add no level to the fingerprint.
#[serde(untagged)]
// One command is built per write and moved, never stored in bulk: the size
// difference between variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum CaseCommand {
    /// What a client may ask for.
    Client(ClientCommand),
    /// What only the ledger writes.
    Ledger(LedgerCommand),
}

/// What a client may ask for.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
// One command is built per write and moved, never stored in bulk: the size
// difference between variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum ClientCommand {
    /// A command that has no case yet.
    Open(Opening),
    /// A step on one existing case.
    Step(CaseStep),
    /// A merge of two cases.
    Merge(Merge),
}

/// A client command that has no case yet: the store opens one, or finds the
/// one it belongs to.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum Opening {
    /// Open a case for a change.
    Request {
        /// The change asked for.
        change: Change,
        /// Why.
        justification: Option<String>,
        /// The external ticket it came from.
        ticket: Option<Ticket>,
        /// The policy rule that governs it, decided by the server from its
        /// configuration (never by the client).
        rule: AppliedRule,
        /// A drill's (`custody drill`): recorded in the case's request.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        drill: bool,
    },
    /// Open a case by break-glass: the change was made in an emergency,
    /// before approval (see [`lifecycle::break_glass`]).
    BreakGlass {
        /// The change made.
        change: Change,
        /// The emergency.
        justification: String,
        /// The external ticket, if any.
        ticket: Option<Ticket>,
        /// The policy rule that governs it, decided by the server.
        rule: AppliedRule,
        /// What was actually changed.
        change_set: Option<crate::change_set::ChangeSet>,
        /// A drill's (`custody drill`): recorded in the case's request.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        drill: bool,
    },
    /// Record a change a connector observed: in the case it correlates to
    /// (see [`crate::observation`]), or in a case of its own when no case
    /// sanctioned it. Written only by the server for a connector, as the
    /// ledger's observer actor.
    Observe {
        /// The connector's kind (`okta`, `cloudtrail`, ...).
        source_kind: String,
        /// What was observed (its actor mapped by the server).
        observation: crate::observation::ObservedChange,
        /// The policy rule for the change, decided by the server: what an
        /// unsanctioned case's post-hoc review deadline comes from.
        rule: AppliedRule,
        /// A drill's: a case the observation opens is a drill case (a
        /// matched observation joins its case, drill or not).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        drill: bool,
    },
    /// Record evidence for an external reference: in the case that carries
    /// it, or held in the reference's evidence record until a case does.
    HoldEvidence {
        /// The reference.
        ticket: crate::model::Ticket,
        /// What was stored.
        evidence: crate::event::Evidence,
    },
}

/// A step on one existing case, decided against it ([`CaseStep::decide`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum CaseStep {
    /// Approve the case's change.
    Approve {
        /// The case.
        case_id: CaseId,
        /// Optional comment.
        comment: Option<String>,
        /// For an approval given in chat.
        chat: Option<crate::event::ChatApproval>,
    },
    /// Confirm an approval someone else recorded for the actor from chat.
    ConfirmApproval {
        /// The case.
        case_id: CaseId,
        /// The attested approval event.
        approval_event: crate::EventId,
    },
    /// Deny the case's change.
    Deny {
        /// The case.
        case_id: CaseId,
        /// Optional comment.
        comment: Option<String>,
    },
    /// Record an execution.
    Execute {
        /// The case.
        case_id: CaseId,
        /// What was actually changed.
        change_set: Option<crate::change_set::ChangeSet>,
        /// Optional comment, or the error of a failed execution.
        comment: Option<String>,
        /// `false` records a failed attempt.
        completed: bool,
        /// The change actually applied, when it differs from the approved one.
        applied: Option<Change>,
        /// Observed before its approval is recorded (a late record elsewhere).
        observed: bool,
    },
    /// Record the post-change review.
    Review {
        /// The case.
        case_id: CaseId,
        /// The outcome.
        outcome: ReviewOutcome,
        /// Optional comment.
        comment: Option<String>,
        /// For outcome `revoke`: the policy rule of the revocation case it
        /// opens, decided by the server.
        revocation_rule: Option<AppliedRule>,
    },
    /// Add a comment.
    Comment {
        /// The case.
        case_id: CaseId,
        /// The text.
        text: String,
    },
    /// Link an outside ticket that carries the case's ID to the case.
    LinkTicket {
        /// The case.
        case_id: CaseId,
        /// The ticket.
        ticket: Ticket,
    },
    /// Record what a connector saw the case's ticket describe now.
    RecordTicketChange {
        /// The case.
        case_id: CaseId,
        /// The ticket.
        ticket: Ticket,
        /// The change its fields describe now.
        change: Change,
    },
    /// Record the revocation of time-bound access that reached its end.
    ExecuteRevocation {
        /// The case.
        case_id: CaseId,
        /// What was actually changed.
        change_set: Option<crate::change_set::ChangeSet>,
        /// Optional comment.
        comment: Option<String>,
    },
    /// Record evidence stored by its hash (an upload or a link snapshot).
    AttachEvidence {
        /// The case.
        case_id: CaseId,
        /// What was stored.
        evidence: crate::event::Evidence,
    },
    /// Record that a link could not be captured.
    RecordLinkFailure {
        /// The case.
        case_id: CaseId,
        /// The link and why.
        failure: crate::event::LinkFailure,
    },
    /// Record a link fetched again and compared with its snapshot.
    RecordRecheck {
        /// The case.
        case_id: CaseId,
        /// The comparison.
        recheck: crate::event::Recheck,
    },
}

/// Merge a duplicate case into the case that survives (see [`lifecycle::merge`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
// Written `{"command": "merge", ...}` like every other command.
#[serde(tag = "command", rename = "merge")]
pub struct Merge {
    /// The duplicate, closed into the survivor.
    pub duplicate: CaseId,
    /// The surviving case.
    pub into: CaseId,
    /// Why they are one change.
    pub comment: Option<String>,
}

/// What only the ledger writes, as its `system` actor.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum LedgerCommand {
    /// The ledger escalates an overdue obligation (system actor only).
    Escalate {
        /// The case.
        case_id: CaseId,
        /// The obligation whose deadline passed (written as `reason`, its code).
        reason: crate::obligation::Obligation,
        /// The deadline that passed.
        deadline: crate::Timestamp,
    },
    /// The outbox records one delivery attempt (system actor only; see
    /// [`lifecycle::record_delivery`]).
    RecordDelivery {
        /// The case that owes the notification.
        case_id: CaseId,
        /// The attempt.
        attempt: crate::event::Attempt,
        /// Whether a final failure is escalated.
        escalate: bool,
        /// When to try again, after a failure that will be retried.
        next_attempt_at: Option<crate::Timestamp>,
    },
    /// The continuous monitor records a finding in the case it concerns
    /// (system actor only; see [`lifecycle::raise_finding_as`]).
    RaiseFinding {
        /// The case.
        case_id: CaseId,
        /// The finding.
        finding: crate::event::FindingRaised,
    },
}

impl CaseCommand {
    /// The case the command targets; `None` for an [`Opening`], which has
    /// none yet (for a merge, the duplicate).
    pub fn case_id(&self) -> Option<&CaseId> {
        match self {
            CaseCommand::Client(ClientCommand::Open(_)) => None,
            CaseCommand::Client(ClientCommand::Step(step)) => Some(step.case_id()),
            CaseCommand::Client(ClientCommand::Merge(merge)) => Some(&merge.duplicate),
            CaseCommand::Ledger(command) => Some(command.case_id()),
        }
    }

    /// Every case the command writes to (two for a merge).
    pub fn case_ids(&self) -> Vec<&CaseId> {
        match self {
            CaseCommand::Client(ClientCommand::Merge(merge)) => {
                vec![&merge.duplicate, &merge.into]
            }
            other => other.case_id().into_iter().collect(),
        }
    }

    /// The fingerprint an idempotency key is bound to.
    pub fn fingerprint(&self) -> Sha256Hash {
        Sha256Hash::of(&crate::canonical::to_canonical_bytes(self))
    }
}

impl CaseStep {
    /// The case the step is on.
    pub fn case_id(&self) -> &CaseId {
        match self {
            CaseStep::Approve { case_id, .. }
            | CaseStep::ConfirmApproval { case_id, .. }
            | CaseStep::Deny { case_id, .. }
            | CaseStep::Execute { case_id, .. }
            | CaseStep::Review { case_id, .. }
            | CaseStep::Comment { case_id, .. }
            | CaseStep::RecordTicketChange { case_id, .. }
            | CaseStep::LinkTicket { case_id, .. }
            | CaseStep::ExecuteRevocation { case_id, .. }
            | CaseStep::AttachEvidence { case_id, .. }
            | CaseStep::RecordLinkFailure { case_id, .. }
            | CaseStep::RecordRecheck { case_id, .. } => case_id,
        }
    }

    /// Decides the step against its case, as it stands.
    pub fn decide(&self, case: &CaseView, actor: &Actor) -> Result<Draft, Refusal> {
        match self {
            CaseStep::Approve { comment, chat, .. } => {
                lifecycle::approve_with(case, actor, comment.clone(), chat.clone())
            }
            CaseStep::ConfirmApproval { approval_event, .. } => {
                lifecycle::confirm_approval(case, actor, approval_event)
            }
            CaseStep::Deny { comment, .. } => lifecycle::deny(case, actor, comment.clone()),
            CaseStep::Execute {
                change_set,
                comment,
                applied,
                observed: true,
                ..
            } => lifecycle::execute_observed(
                case,
                actor,
                change_set.clone(),
                comment.clone(),
                applied.clone(),
            ),
            CaseStep::Execute {
                change_set,
                comment,
                completed,
                applied,
                ..
            } => lifecycle::execute(
                case.approved()?,
                actor,
                change_set.clone(),
                comment.clone(),
                *completed,
                applied.clone(),
            ),
            CaseStep::Review {
                outcome, comment, ..
            } => lifecycle::review(case.executed()?, actor, *outcome, comment.clone()),
            CaseStep::Comment { text, .. } => Ok(lifecycle::comment(case, actor, text.clone())),
            CaseStep::LinkTicket { ticket, .. } => {
                lifecycle::link_ticket(case, actor, ticket.clone())
            }
            CaseStep::RecordTicketChange { ticket, change, .. } => {
                Ok(lifecycle::ticket_changed(ticket.clone(), change.clone()))
            }
            CaseStep::ExecuteRevocation {
                change_set,
                comment,
                ..
            } => lifecycle::execute_revocation(case, actor, change_set.clone(), comment.clone()),
            CaseStep::AttachEvidence { evidence, .. } => lifecycle::evidence(
                case,
                actor,
                crate::event::EventBody::EvidenceAttached(evidence.clone()),
            ),
            CaseStep::RecordLinkFailure { failure, .. } => lifecycle::evidence(
                case,
                actor,
                crate::event::EventBody::EvidenceUnverified(failure.clone()),
            ),
            CaseStep::RecordRecheck { recheck, .. } => lifecycle::evidence(
                case,
                actor,
                crate::event::EventBody::EvidenceRechecked(recheck.clone()),
            ),
        }
    }
}

impl Merge {
    /// Decides the merge with both cases as they stand: the event for the
    /// duplicate and the event for the survivor (see [`lifecycle::merge`]).
    pub fn decide(
        &self,
        duplicate: &CaseView,
        survivor: &CaseView,
        actor: &Actor,
    ) -> Result<(Draft, Draft), Refusal> {
        lifecycle::merge(duplicate, survivor, actor, self.comment.clone())
    }
}

impl LedgerCommand {
    /// The case the ledger writes to.
    pub fn case_id(&self) -> &CaseId {
        match self {
            LedgerCommand::Escalate { case_id, .. }
            | LedgerCommand::RecordDelivery { case_id, .. }
            | LedgerCommand::RaiseFinding { case_id, .. } => case_id,
        }
    }

    /// Decides the command against its case, as it stands at `now`: the
    /// events to append (an escalation; a delivery attempt, and an
    /// escalation when a notification is given up on).
    pub fn decide(
        &self,
        case: &CaseView,
        actor: &Actor,
        now: crate::Timestamp,
    ) -> Result<Vec<Draft>, Refusal> {
        match self {
            LedgerCommand::Escalate {
                reason, deadline, ..
            } => Ok(vec![lifecycle::escalate_as(
                case, actor, *reason, *deadline,
            )?]),
            LedgerCommand::RecordDelivery {
                attempt, escalate, ..
            } => Ok(lifecycle::record_delivery(attempt.clone(), *escalate, now)),
            LedgerCommand::RaiseFinding { finding, .. } => Ok(vec![lifecycle::raise_finding_as(
                case,
                actor,
                finding.clone(),
            )?]),
        }
    }
}

impl From<ClientCommand> for CaseCommand {
    fn from(command: ClientCommand) -> CaseCommand {
        CaseCommand::Client(command)
    }
}

impl From<LedgerCommand> for CaseCommand {
    fn from(command: LedgerCommand) -> CaseCommand {
        CaseCommand::Ledger(command)
    }
}

impl From<Opening> for ClientCommand {
    fn from(command: Opening) -> ClientCommand {
        ClientCommand::Open(command)
    }
}

impl From<CaseStep> for ClientCommand {
    fn from(command: CaseStep) -> ClientCommand {
        ClientCommand::Step(command)
    }
}

impl From<Merge> for ClientCommand {
    fn from(command: Merge) -> ClientCommand {
        ClientCommand::Merge(command)
    }
}

impl From<Opening> for CaseCommand {
    fn from(command: Opening) -> CaseCommand {
        CaseCommand::Client(command.into())
    }
}

impl From<CaseStep> for CaseCommand {
    fn from(command: CaseStep) -> CaseCommand {
        CaseCommand::Client(command.into())
    }
}

impl From<Merge> for CaseCommand {
    fn from(command: Merge) -> CaseCommand {
        CaseCommand::Client(command.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Attempt, ChatApproval, DeliveryOutcome, Evidence, LinkFailure, Recheck};
    use crate::model::ChangeKind;
    use crate::obligation::Obligation;
    use crate::Timestamp;

    /// One command of every kind, and its canonical bytes as they were when
    /// commands were one flat enum: the idempotency records stored since
    /// bind these fingerprints.
    #[test]
    fn fingerprints_are_those_of_the_flat_command() {
        let case: CaseId = "AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b".parse().unwrap();
        let other: CaseId = "AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6c".parse().unwrap();
        let change = Change::new(
            "user:ann".parse().unwrap(),
            ChangeKind::Grant,
            "admin".into(),
            Some("db".into()),
            Some(3600),
        )
        .unwrap();
        let rule = AppliedRule::default_rule(Sha256Hash::of(b"policy"));
        let at = Timestamp::from_micros(1_800_000_000_000_000);
        let set = crate::change_set::ChangeSet::from_json(r#"{"added": ["role/admin"], "n": 2}"#)
            .unwrap();
        let evidence = Evidence {
            sha256: Sha256Hash::of(b"x"),
            size: 1,
            file_name: Some("a.txt".into()),
            declared_media_type: None,
            sniffed_media_type: "text/plain".into(),
            link: None,
        };
        let attempt = Attempt {
            delivery_id: "EV-1.0".into(),
            channel: "hook".into(),
            recipient: None,
            attempt: 2,
            outcome: DeliveryOutcome::Failed,
            status: Some(500),
            error: Some("boom".into()),
            latency_ms: 7,
        };
        let commands: Vec<CaseCommand> = vec![
            Opening::Request {
                change: change.clone(),
                justification: Some("why".into()),
                ticket: Some("jira:SEC-1".parse().unwrap()),
                rule: rule.clone(),
                drill: false,
            }
            .into(),
            CaseStep::Approve {
                case_id: case.clone(),
                comment: Some("ok".into()),
                chat: Some(ChatApproval {
                    channel: "slack:#a".into(),
                    permalink: "https://x/1".into(),
                    message_sha256: Sha256Hash::of(b"m"),
                    approver: "bob".parse().unwrap(),
                }),
            }
            .into(),
            CaseStep::ConfirmApproval {
                case_id: case.clone(),
                approval_event: "EV-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b".parse().unwrap(),
            }
            .into(),
            CaseStep::Deny {
                case_id: case.clone(),
                comment: None,
            }
            .into(),
            CaseStep::Execute {
                case_id: case.clone(),
                change_set: Some(set.clone()),
                comment: None,
                completed: true,
                applied: Some(change.clone()),
                observed: false,
            }
            .into(),
            CaseStep::Review {
                case_id: case.clone(),
                outcome: ReviewOutcome::Revoke,
                comment: None,
                revocation_rule: Some(rule.clone()),
            }
            .into(),
            CaseStep::Comment {
                case_id: case.clone(),
                text: "hello".into(),
            }
            .into(),
            Opening::BreakGlass {
                change: change.clone(),
                justification: "outage".into(),
                ticket: None,
                rule: rule.clone(),
                change_set: Some(set),
                drill: false,
            }
            .into(),
            CaseStep::ExecuteRevocation {
                case_id: case.clone(),
                change_set: None,
                comment: Some("gone".into()),
            }
            .into(),
            LedgerCommand::Escalate {
                case_id: case.clone(),
                reason: Obligation::Review,
                deadline: at,
            }
            .into(),
            LedgerCommand::RecordDelivery {
                case_id: case.clone(),
                attempt,
                escalate: true,
                next_attempt_at: Some(at),
            }
            .into(),
            CaseStep::AttachEvidence {
                case_id: case.clone(),
                evidence: evidence.clone(),
            }
            .into(),
            Opening::HoldEvidence {
                ticket: "jira:SEC-2".parse().unwrap(),
                evidence,
            }
            .into(),
            CaseStep::RecordLinkFailure {
                case_id: case.clone(),
                failure: LinkFailure {
                    url: "https://x/".into(),
                    error: "timeout".into(),
                },
            }
            .into(),
            CaseStep::RecordRecheck {
                case_id: case.clone(),
                recheck: Recheck {
                    url: "https://x/".into(),
                    previous: Sha256Hash::of(b"p"),
                    sha256: None,
                    status: None,
                    drifted: true,
                    error: Some("gone".into()),
                },
            }
            .into(),
            Merge {
                duplicate: case,
                into: other,
                comment: None,
            }
            .into(),
        ];
        let expected = [
            r#"{"change":{"duration_seconds":3600,"entitlement":"admin","kind":"grant","resource":"db","subject":{"id":"ann","kind":"user"}},"command":"request","justification":"why","rule":{"allow_attested_approvals":false,"approvals":1,"approver_groups":[],"approver_not_in_requester_org":false,"break_glass":true,"executor_groups":[],"executor_kinds":[],"max_duration_seconds":null,"name":"default","policy_hash":"823412d1eacb67956220e532959f0104603057c88704863ca38e7cd188fda812","post_hoc_review_seconds":86400,"review_deadline_seconds":null},"ticket":{"key":"SEC-1","system":"jira"}}"#,
            r#"{"case_id":"AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b","chat":{"approver":"bob","channel":"slack:#a","message_sha256":"62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a","permalink":"https://x/1"},"command":"approve","comment":"ok"}"#,
            r#"{"approval_event":"EV-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b","case_id":"AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b","command":"confirm_approval"}"#,
            r#"{"case_id":"AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b","command":"deny","comment":null}"#,
            r#"{"applied":{"duration_seconds":3600,"entitlement":"admin","kind":"grant","resource":"db","subject":{"id":"ann","kind":"user"}},"case_id":"AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b","change_set":{"added":["role/admin"],"n":2},"command":"execute","comment":null,"completed":true,"observed":false}"#,
            r#"{"case_id":"AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b","command":"review","comment":null,"outcome":"revoke","revocation_rule":{"allow_attested_approvals":false,"approvals":1,"approver_groups":[],"approver_not_in_requester_org":false,"break_glass":true,"executor_groups":[],"executor_kinds":[],"max_duration_seconds":null,"name":"default","policy_hash":"823412d1eacb67956220e532959f0104603057c88704863ca38e7cd188fda812","post_hoc_review_seconds":86400,"review_deadline_seconds":null}}"#,
            r#"{"case_id":"AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b","command":"comment","text":"hello"}"#,
            r#"{"change":{"duration_seconds":3600,"entitlement":"admin","kind":"grant","resource":"db","subject":{"id":"ann","kind":"user"}},"change_set":{"added":["role/admin"],"n":2},"command":"break_glass","justification":"outage","rule":{"allow_attested_approvals":false,"approvals":1,"approver_groups":[],"approver_not_in_requester_org":false,"break_glass":true,"executor_groups":[],"executor_kinds":[],"max_duration_seconds":null,"name":"default","policy_hash":"823412d1eacb67956220e532959f0104603057c88704863ca38e7cd188fda812","post_hoc_review_seconds":86400,"review_deadline_seconds":null},"ticket":null}"#,
            r#"{"case_id":"AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b","change_set":null,"command":"execute_revocation","comment":"gone"}"#,
            r#"{"case_id":"AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b","command":"escalate","deadline":"2027-01-15T08:00:00.000000Z","reason":"review.overdue"}"#,
            r#"{"attempt":{"attempt":2,"channel":"hook","delivery_id":"EV-1.0","error":"boom","latency_ms":7,"outcome":"failed","recipient":null,"status":500},"case_id":"AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b","command":"record_delivery","escalate":true,"next_attempt_at":"2027-01-15T08:00:00.000000Z"}"#,
            r#"{"case_id":"AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b","command":"attach_evidence","evidence":{"declared_media_type":null,"file_name":"a.txt","link":null,"sha256":"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881","size":1,"sniffed_media_type":"text/plain"}}"#,
            r#"{"command":"hold_evidence","evidence":{"declared_media_type":null,"file_name":"a.txt","link":null,"sha256":"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881","size":1,"sniffed_media_type":"text/plain"},"ticket":{"key":"SEC-2","system":"jira"}}"#,
            r#"{"case_id":"AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b","command":"record_link_failure","failure":{"error":"timeout","url":"https://x/"}}"#,
            r#"{"case_id":"AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b","command":"record_recheck","recheck":{"drifted":true,"error":"gone","previous":"148de9c5a7a44d19e56cd9ae1a554bf67847afb0c58f6e12fa29ac7ddfca9940","sha256":null,"status":null,"url":"https://x/"}}"#,
            r#"{"command":"merge","comment":null,"duplicate":"AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b","into":"AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6c"}"#,
        ];
        assert_eq!(commands.len(), expected.len());
        for (command, expected) in commands.iter().zip(expected) {
            let bytes = crate::canonical::to_canonical_bytes(command);
            assert_eq!(String::from_utf8(bytes).unwrap(), expected);
        }
    }
}
