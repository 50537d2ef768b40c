//! The drill's scenarios (docs/drill.md), each in case(s) of its own, each
//! judged by what the trail read back through the API shows.

use std::time::Duration;

use custody_api::{
    BreakGlassBody, CaseDocument, CasesQuery, ComponentsDocument, DecisionBody, DelegationBody,
    ExecutionBody, IdentityBody, LinkBody, MergeBody, NotificationsQuery, OutboxEntry, RequestBody,
    ReviewBody, SubjectBody, WriteOutcome,
};
use custody_client::{Answer, Client, ClientError, Upload};
use custody_core::observation::MatchedBy;
use custody_core::policy::AppliedRule;
use custody_report::{ScenarioResult, ScenarioStatus};
use serde_json::Value;
use sha2::Digest;

use super::chat::{self, SlackSigning};
use super::sources;
use super::{
    Cast, APPROVER, AUTOMATION, DRILL_ENTITLEMENT, ESCALATION_ENTITLEMENT, EXECUTOR,
    OFFLINE_APPROVER, REQUESTER, REVIEWER, VENDOR,
};

/// How long the drill waits for something the server does in the
/// background (a notification delivered, a sink's cursor to move).
const BACKGROUND_WAIT: Duration = Duration::from_secs(30);

/// How often the drill looks again while it waits.
const POLL: Duration = Duration::from_millis(200);

/// The longest approval deadline `notification-failure` waits for: a
/// drill rule with a longer one (or none) leaves it not covered.
pub const MAX_APPROVAL_DEADLINE_SECONDS: u64 = 120;

/// The party the drill's vendor acts for.
const ON_BEHALF_OF: &str = "drill-team";

/// A running drill.
pub struct Drill<'a> {
    run: String,
    admin: &'a Client,
    cast: Cast,
    components: ComponentsDocument,
    rules: Rules,
    dead_link: Option<&'a DeadLink>,
    /// The largest log index a drill write appended.
    last_log_index: Option<u64>,
    /// Drill cases left open, denied at the end.
    open_cases: Vec<String>,
    /// Delegation grants made, revoked at the end.
    grants: Vec<String>,
    /// What signs the chat connector's requests, when the drill knows it.
    slack: Option<SlackSigning>,
}

/// The rules the deployment's policy decides drill cases by.
pub struct Rules {
    /// The rule for [`DRILL_ENTITLEMENT`], every scenario's but one.
    pub access: AppliedRule,
    /// The rule for [`ESCALATION_ENTITLEMENT`], `notification-failure`'s.
    pub escalation: AppliedRule,
}

/// What one scenario did and saw.
struct Trace {
    id: &'static str,
    title: &'static str,
    did: Vec<String>,
    shows: Vec<String>,
    problems: Vec<String>,
    cases: Vec<String>,
    not_covered: Option<String>,
}

impl Trace {
    fn new(id: &'static str, title: &'static str) -> Trace {
        Trace {
            id,
            title,
            did: Vec::new(),
            shows: Vec::new(),
            problems: Vec::new(),
            cases: Vec::new(),
            not_covered: None,
        }
    }

    fn did(&mut self, line: impl Into<String>) {
        self.did.push(line.into());
    }

    /// Records what the trail shows when `holds`, or a problem when not.
    fn check(&mut self, holds: bool, what: impl Into<String>) {
        let what = what.into();
        if holds {
            self.shows.push(what);
        } else {
            self.problems.push(format!("expected, not shown: {what}"));
        }
    }

    fn case(&mut self, case_id: &str) {
        if !self.cases.iter().any(|known| known == case_id) {
            self.cases.push(case_id.to_string());
        }
    }

    fn finish(self, outcome: Result<(), String>) -> ScenarioResult {
        let mut problems = self.problems;
        if let Err(error) = outcome {
            problems.push(error);
        }
        let status = if let Some(reason) = self.not_covered {
            problems.insert(0, reason);
            ScenarioStatus::NotCovered
        } else if problems.is_empty() && !self.shows.is_empty() {
            ScenarioStatus::Passed
        } else {
            ScenarioStatus::Failed
        };
        ScenarioResult {
            id: self.id.to_string(),
            title: self.title.to_string(),
            status,
            did: self.did,
            trail_shows: self.shows,
            problems,
            case_ids: self.cases,
        }
    }
}

/// A step's error as the scenario's problem.
fn step<T>(what: &str, result: Result<T, ClientError>) -> Result<T, String> {
    result.map_err(|error| format!("{what}: {error}"))
}

/// A step's answer as its document, or the scenario's problem: what was
/// asked and why it failed.
fn fetched<T: serde::de::DeserializeOwned>(
    what: &str,
    result: Result<Answer<T>, ClientError>,
) -> Result<T, String> {
    step(what, result)?
        .document()
        .map_err(|error| format!("{what}: {error}"))
}

/// The rule code of a refusal, if the error is one.
fn refusal_rule(error: &ClientError) -> Option<String> {
    match error {
        ClientError::Refused(answer) | ClientError::Rejected(answer) => {
            answer.problem().and_then(|problem| problem.rule.clone())
        }
        _ => None,
    }
}

/// The events of a case document as JSON, in sequence order.
fn events(document: &Value) -> Vec<Value> {
    document["events"].as_array().cloned().unwrap_or_default()
}

/// The (role, principal) of an event.
fn actor_of(event: &Value) -> (String, String) {
    (
        event["role"].as_str().unwrap_or_default().to_string(),
        event["actor"]["principal"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// Whether each event links to the hash of the one before it, with
/// gapless sequence numbers from 1.
fn chain_whole(document: &CaseDocument) -> bool {
    document.events.iter().enumerate().all(|(position, event)| {
        let seq_ok = u64::try_from(position).is_ok_and(|position| event.seq == position + 1);
        let link_ok = match position.checked_sub(1) {
            None => event.prev_hash.is_none(),
            Some(before) => document
                .events
                .get(before)
                .is_some_and(|previous| event.prev_hash == Some(previous.hash())),
        };
        seq_ok && link_ok
    })
}

impl<'a> Drill<'a> {
    /// A drill of run `run` by `cast`, on a deployment with `components`,
    /// whose policy decides drill cases by `rules`.
    pub fn new(
        run: String,
        admin: &'a Client,
        cast: Cast,
        components: ComponentsDocument,
        rules: Rules,
        dead_link: Option<&'a DeadLink>,
        slack: Option<SlackSigning>,
    ) -> Drill<'a> {
        Drill {
            run,
            admin,
            cast,
            components,
            rules,
            dead_link,
            last_log_index: None,
            open_cases: Vec::new(),
            grants: Vec::new(),
            slack,
        }
    }

    /// Runs every scenario, in the documented order (export last: it
    /// waits for every other scenario's events to reach the sinks).
    pub async fn run_all(&mut self) -> Vec<ScenarioResult> {
        let mut results = Vec::new();
        macro_rules! scenario {
            ($id:literal, $title:literal, $method:ident) => {{
                let mut trace = Trace::new($id, $title);
                let outcome = if self.rules.access.approvals > 1 && trace.not_covered.is_none() {
                    Err(format!(
                        "the policy's rule for `{DRILL_ENTITLEMENT}` needs {} approvals and the drill has one approver (docs/drill.md: the policy a drill expects)",
                        self.rules.access.approvals
                    ))
                } else {
                    self.$method(&mut trace).await
                };
                results.push(trace.finish(outcome));
            }};
        }
        scenario!(
            "lifecycle",
            "request, approval, execution and review by four distinct principals, proven in the log",
            lifecycle
        );
        scenario!(
            "duplicates",
            "retried writes, a duplicate request and two tickets for one need",
            duplicates
        );
        scenario!(
            "notification-failure",
            "an approver who never answers is escalated and the case proceeds through another; every channel's notices are attempted and recorded",
            notification_failure
        );
        scenario!(
            "disconnected-attachment",
            "evidence held for a ticket joins its case; blobs hash to what was recorded; a dead link is unverified",
            disconnected_attachment
        );
        scenario!(
            "break-glass",
            "an emergency change executed before approval, reviewed post hoc by another principal",
            break_glass
        );
        scenario!(
            "chat-approval",
            "an approval given in chat, formalised through a chat connector",
            chat_approval
        );
        scenario!(
            "automation-first",
            "an automation principal executes; the reviewer is told after, and the trail shows the order",
            automation_first
        );
        scenario!(
            "vendor-delegation",
            "a vendor acting under a delegation grant is accepted, outside it refused",
            vendor_delegation
        );
        scenario!(
            "late-records",
            "records arriving late and out of order keep the timeline ordered and the trail whole",
            late_records
        );
        scenario!(
            "unsanctioned-change",
            "an access change observed by a source connector opens an unsanctioned case",
            unsanctioned_change
        );
        scenario!(
            "export",
            "the drill's events reach every configured export sink",
            export
        );
        results
    }

    /// Denies the drill cases left open and revokes the drill's grants.
    pub async fn clean_up(&mut self) {
        for case_id in std::mem::take(&mut self.open_cases) {
            let key = format!("drill-{}-cleanup-{case_id}", self.run);
            let _ = self
                .cast
                .approver
                .deny(
                    &case_id,
                    &DecisionBody {
                        comment: Some("custody drill: closing a drill case".to_string()),
                        ..DecisionBody::default()
                    },
                    &key,
                )
                .await;
        }
        for grant in std::mem::take(&mut self.grants) {
            let _ = self.admin.revoke_delegation(&grant).await;
        }
    }

    fn key(&self, scenario: &str, step: &str) -> String {
        format!("drill-{}-{scenario}-{step}", self.run)
    }

    fn subject(&self, scenario: &str) -> SubjectBody {
        SubjectBody {
            kind: "user".to_string(),
            id: format!("drill-{}-{scenario}", self.run),
        }
    }

    fn note(&mut self, outcome: &WriteOutcome) {
        for event in &outcome.appended {
            self.last_log_index = Some(
                self.last_log_index
                    .map_or(event.log_index, |last| last.max(event.log_index)),
            );
        }
    }

    /// Opens a drill case as the requester.
    async fn request(
        &mut self,
        trace: &mut Trace,
        scenario: &str,
        entitlement: &str,
        ticket: Option<String>,
    ) -> Result<String, String> {
        let body = RequestBody {
            subject: self.subject(scenario),
            entitlement: entitlement.to_string(),
            change: None,
            resource: None,
            duration: None,
            justification: Some("custody drill".to_string()),
            ticket,
            drill: true,
        };
        let outcome = fetched(
            "the request",
            self.cast
                .requester
                .create_case(&body, &self.key(scenario, "request"))
                .await,
        )?;
        self.note(&outcome);
        let case_id = outcome.case_id.to_string();
        trace.case(&case_id);
        trace.did(format!(
            "{REQUESTER} requested {entitlement} for {}:{} (drill case {case_id})",
            body.subject.kind, body.subject.id
        ));
        Ok(case_id)
    }

    async fn approve(
        &mut self,
        trace: &mut Trace,
        case_id: &str,
        occurred_at: Option<String>,
    ) -> Result<(), String> {
        let outcome = fetched(
            "the approval",
            self.cast
                .approver
                .approve(
                    case_id,
                    &DecisionBody {
                        comment: Some("custody drill".to_string()),
                        occurred_at: occurred_at.clone(),
                        ..DecisionBody::default()
                    },
                    &self.key(case_id, "approve"),
                )
                .await,
        )?;
        self.note(&outcome);
        trace.did(match occurred_at {
            Some(at) => format!("{APPROVER} approved {case_id}, saying it happened at {at}"),
            None => format!("{APPROVER} approved {case_id}"),
        });
        Ok(())
    }

    async fn execute_as(
        &mut self,
        trace: &mut Trace,
        who: Who,
        case_id: &str,
        body: ExecutionBody,
    ) -> Result<WriteOutcome, ClientError> {
        let client = match who {
            Who::Executor => &self.cast.executor,
            Who::Vendor => &self.cast.vendor,
            Who::Automation => &self.cast.automation,
        };
        let key = self.key(case_id, &format!("execute-{}", who.name()));
        let outcome = client.execute(case_id, &body, &key).await?.document()?;
        self.note(&outcome);
        trace.did(format!(
            "{} recorded the execution of {case_id}",
            who.name()
        ));
        Ok(outcome)
    }

    async fn review(&mut self, trace: &mut Trace, case_id: &str) -> Result<(), String> {
        let outcome = fetched(
            "the review",
            self.cast
                .reviewer
                .review(
                    case_id,
                    &ReviewBody {
                        outcome: "confirmed".to_string(),
                        comment: Some("custody drill".to_string()),
                    },
                    &self.key(case_id, "review"),
                )
                .await,
        )?;
        self.note(&outcome);
        trace.did(format!("{REVIEWER} confirmed {case_id} in review"));
        Ok(())
    }

    /// The notifications `case_id` owes, as the outbox holds them now.
    async fn notices(&self, case_id: &str) -> Result<Vec<OutboxEntry>, String> {
        Ok(fetched(
            "the case's notifications",
            self.admin
                .notifications(&NotificationsQuery {
                    case: Some(case_id.to_string()),
                    failed: false,
                    limit: None,
                })
                .await,
        )?
        .notifications)
    }

    /// The case as read back: typed, and its JSON.
    async fn read(&self, case_id: &str) -> Result<(CaseDocument, Value), String> {
        let answer = step("reading the case back", self.admin.case(case_id).await)?;
        let document = answer
            .document()
            .map_err(|error| format!("reading the case back: {error}"))?;
        Ok((document, answer.into_json()))
    }

    /// Checks what every drill case shows: the drill flag, a whole chain.
    fn check_case(trace: &mut Trace, document: &CaseDocument, json: &Value) {
        let case_id = document.case_id.to_string();
        trace.check(
            document.view.drill && json["events"][0]["payload"]["drill"] == Value::Bool(true),
            format!("{case_id} is a drill case (`drill: true` in its first event)"),
        );
        trace.check(
            chain_whole(document),
            format!(
                "the {} events of {case_id} chain by hash, seq 1 to {}",
                document.events.len(),
                document.events.len()
            ),
        );
    }

    /// Checks that the events of `json` by the four case roles are, in
    /// order, by `expected` (role, principal).
    fn check_roles(trace: &mut Trace, json: &Value, expected: &[(&str, &str)]) {
        let seen: Vec<(String, String)> = events(json)
            .iter()
            .map(actor_of)
            .filter(|(role, _)| {
                matches!(
                    role.as_str(),
                    "requester" | "approver" | "executor" | "reviewer"
                )
            })
            .collect();
        let wanted: Vec<(String, String)> = expected
            .iter()
            .map(|(role, principal)| (role.to_string(), principal.to_string()))
            .collect();
        let described = expected
            .iter()
            .map(|(role, principal)| format!("{role} {principal}"))
            .collect::<Vec<_>>()
            .join(", then ");
        trace.check(seen == wanted, format!("the steps in order: {described}"));
        if seen != wanted {
            trace.problems.push(format!(
                "the trail shows: {}",
                seen.iter()
                    .map(|(role, principal)| format!("{role} {principal}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }

    /// Executes an approved case as the drill's executor and reviews it,
    /// then checks what the trail shows: a drill case, whole, reviewed,
    /// each step by the drill's principal for it, in order.
    async fn execute_and_review(
        &mut self,
        trace: &mut Trace,
        case_id: &str,
    ) -> Result<CaseDocument, String> {
        step(
            "the execution",
            self.execute_as(trace, Who::Executor, case_id, ExecutionBody::default())
                .await,
        )?;
        self.review(trace, case_id).await?;
        let (document, json) = self.read(case_id).await?;
        Self::check_case(trace, &document, &json);
        trace.check(
            document.state.to_string() == "reviewed",
            format!("{case_id} is reviewed (it is {})", document.state),
        );
        Self::check_roles(
            trace,
            &json,
            &[
                ("requester", REQUESTER),
                ("approver", APPROVER),
                ("executor", EXECUTOR),
                ("reviewer", REVIEWER),
            ],
        );
        Ok(document)
    }

    async fn lifecycle(&mut self, trace: &mut Trace) -> Result<(), String> {
        let case_id = self
            .request(trace, "lifecycle", DRILL_ENTITLEMENT, None)
            .await?;
        self.approve(trace, &case_id, None).await?;
        let document = self.execute_and_review(trace, &case_id).await?;
        // The case's inclusion in the log, against a checkpoint signed now,
        // verified here with the log's published keys.
        step("signing a checkpoint", self.admin.sign_checkpoint().await)?;
        let keys = fetched("reading the log's keys", self.admin.log_keys().await)?;
        let trusted = custody_verify::parse_keys(&keys.verifier_keys)
            .map_err(|error| format!("the log's verifier keys do not parse: {error}"))?;
        let bundle = fetched("the case's proof", self.admin.case_proof(&case_id).await)?;
        trace.did(format!(
            "fetched the proof of {case_id} and verified it offline"
        ));
        match bundle.verify(&trusted) {
            Ok(verified) => trace.check(
                // Notices may append events after the read: the proof
                // covers at least every event read before the checkpoint.
                verified.events >= document.events.len(),
                format!(
                    "each of its {} events is included in the log under checkpoint {} (size {})",
                    verified.events, verified.origin, verified.checkpoint_size
                ),
            ),
            Err(error) => trace.check(false, format!("the case's proof verifies ({error})")),
        }
        Ok(())
    }

    async fn duplicates(&mut self, trace: &mut Trace) -> Result<(), String> {
        let body = RequestBody {
            subject: self.subject("duplicates"),
            entitlement: DRILL_ENTITLEMENT.to_string(),
            change: None,
            resource: None,
            duration: None,
            justification: Some("custody drill".to_string()),
            ticket: None,
            drill: true,
        };
        let key = self.key("duplicates", "request");
        let first = fetched(
            "the request",
            self.cast.requester.create_case(&body, &key).await,
        )?;
        self.note(&first);
        let case_id = first.case_id.to_string();
        trace.case(&case_id);
        self.open_cases.push(case_id.clone());
        trace.did(format!("{REQUESTER} requested a change (case {case_id})"));
        let retry = fetched(
            "the retried request",
            self.cast.requester.create_case(&body, &key).await,
        )?;
        trace.did("retried the same request with the same Idempotency-Key");
        trace.check(
            retry.case_id == first.case_id && retry.replayed && retry.appended == first.appended,
            format!(
                "the retry was answered as a replay of {case_id}, with the first write's events"
            ),
        );
        let again = self
            .cast
            .requester
            .create_case(&body, &self.key("duplicates", "second-request"))
            .await;
        trace.did("requested the same change again under a new key");
        match again {
            Err(error) => trace.check(
                refusal_rule(&error).as_deref()
                    == Some(custody_core::Code::CaseDuplicateOpen.as_str()),
                format!("the second request was refused as `case.duplicate-open` ({error})"),
            ),
            Ok(answer) => trace.check(
                false,
                format!(
                    "the second request is refused as a duplicate (it answered {})",
                    answer.json()
                ),
            ),
        }
        // Two tickets raised for one need: two cases, merged into one.
        let mut tickets = Vec::new();
        for (index, resource) in ["drill-ticket-1", "drill-ticket-2"].iter().enumerate() {
            let body = RequestBody {
                resource: Some(resource.to_string()),
                ticket: Some(format!("drill:{}-dup-{index}", self.run)),
                ..body.clone()
            };
            let outcome = fetched(
                "a ticket's request",
                self.cast
                    .requester
                    .create_case(&body, &self.key("duplicates", &format!("ticket-{index}")))
                    .await,
            )?;
            self.note(&outcome);
            trace.case(outcome.case_id.as_str());
            tickets.push(outcome.case_id.to_string());
        }
        let (survivor, duplicate) = (tickets[0].clone(), tickets[1].clone());
        self.open_cases.push(survivor.clone());
        let merged = fetched(
            "the merge",
            self.cast
                .requester
                .merge(
                    &duplicate,
                    &MergeBody {
                        into: survivor.clone(),
                        comment: "custody drill: two tickets for one need".to_string(),
                    },
                    &self.key("duplicates", "merge"),
                )
                .await,
        )?;
        self.note(&merged);
        trace.did(format!(
            "opened {survivor} and {duplicate} from two tickets, and merged {duplicate} into {survivor}"
        ));
        let (duplicate_document, _) = self.read(&duplicate).await?;
        let (survivor_document, _) = self.read(&survivor).await?;
        trace.check(
            duplicate_document
                .view
                .merged_into
                .as_ref()
                .map(ToString::to_string)
                == Some(survivor.clone())
                && survivor_document
                    .view
                    .duplicates
                    .iter()
                    .any(|case| case.to_string() == duplicate),
            format!("{duplicate} is merged into {survivor}, and {survivor} lists it"),
        );
        let (document, json) = self.read(&case_id).await?;
        Self::check_case(trace, &document, &json);
        trace.check(
            events(&json)
                .iter()
                .filter(|event| event["kind"] == "request_created")
                .count()
                == 1,
            format!("{case_id} holds one request, not two"),
        );
        trace.did(
            "connector replays are exercised by unsanctioned-change where a source is configured",
        );
        Ok(())
    }

    async fn notification_failure(&mut self, trace: &mut Trace) -> Result<(), String> {
        if self.components.notification_channels.is_empty() {
            trace.not_covered = Some(
                "no notification channel is configured ([[notify.channels]]): nothing is attempted, so nothing can be shown retried or escalated"
                    .to_string(),
            );
            return Ok(());
        }
        let rule = self.rules.escalation.clone();
        let Some(deadline_seconds) = rule
            .approval_deadline_seconds
            .filter(|seconds| *seconds <= MAX_APPROVAL_DEADLINE_SECONDS)
        else {
            trace.not_covered = Some(match rule.approval_deadline_seconds {
                None => format!(
                    "the rule `{}` that governs `{ESCALATION_ENTITLEMENT}` sets no approval_deadline: an approver who never answers is never escalated, so the drill cannot stage one; give drills a rule with an approval_deadline of at most {MAX_APPROVAL_DEADLINE_SECONDS}s (docs/drill.md)",
                    rule.name
                ),
                Some(seconds) => format!(
                    "the drill rule's approval deadline is {} (rule `{}`, which governs `{ESCALATION_ENTITLEMENT}`), longer than the drill waits for an escalation; give drills a rule with an approval_deadline of at most {MAX_APPROVAL_DEADLINE_SECONDS}s (docs/drill.md)",
                    custody_core::model::format_duration(seconds),
                    rule.name
                ),
            });
            return Ok(());
        };
        if rule.approvals > 1 {
            return Err(format!(
                "the policy's rule `{}` for `{ESCALATION_ENTITLEMENT}` needs {} approvals and the drill has one approver who answers (docs/drill.md: the policy a drill expects)",
                rule.name, rule.approvals
            ));
        }
        let case_id = self
            .request(trace, "notification-failure", ESCALATION_ENTITLEMENT, None)
            .await?;
        trace.did(format!(
            "left the approval to {OFFLINE_APPROVER}, an approver with no token: it never answers"
        ));
        // The ledger's timer escalates the request once its deadline passed.
        let wait = Duration::from_secs(deadline_seconds) + BACKGROUND_WAIT;
        let until = tokio::time::Instant::now() + wait;
        loop {
            let (_, json) = self.read(&case_id).await?;
            if overdue_escalation(&json).is_some() || tokio::time::Instant::now() >= until {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        trace.did(format!(
            "waited up to {}s for the ledger to escalate it (rule `{}`: approvals due within {})",
            wait.as_secs(),
            rule.name,
            custody_core::model::format_duration(deadline_seconds)
        ));
        // Every notice of the case so far (the approvers', the escalation's)
        // is delivered, or given up on, or the wait ends.
        let until = tokio::time::Instant::now() + BACKGROUND_WAIT;
        let mut entries;
        loop {
            entries = self.notices(&case_id).await?;
            let settled = !entries.is_empty()
                && entries
                    .iter()
                    .all(|entry| entry.state == "delivered" || entry.state == "dead");
            if settled || tokio::time::Instant::now() >= until {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        trace.did(format!(
            "waited up to {}s for the notices of {case_id} on {} channel(s)",
            BACKGROUND_WAIT.as_secs(),
            self.components.notification_channels.len()
        ));
        // The case proceeds through the approver who answers the escalation.
        self.approve(trace, &case_id, None).await?;
        self.execute_and_review(trace, &case_id).await?;
        let (_, json) = self.read(&case_id).await?;
        let all = events(&json);
        let approval_notices = all
            .first()
            .map(|request| owed(request, "approval_needed"))
            .unwrap_or_default();
        trace.check(
            !approval_notices.is_empty(),
            format!(
                "the request owed its approvers a notice: {}",
                describe_owed(&approval_notices)
            ),
        );
        let escalation = overdue_escalation(&json);
        trace.check(
            escalation.is_some_and(|event| {
                actor_of(event) == ("system".to_string(), "system".to_string())
            }),
            format!(
                "nobody approved within {}: the ledger (system) raised `approval.overdue`{}",
                custody_core::model::format_duration(deadline_seconds),
                escalation
                    .map(|event| format!(
                        " at seq {}, deadline {}",
                        event["seq"],
                        event["payload"]["deadline"].as_str().unwrap_or_default()
                    ))
                    .unwrap_or_default()
            ),
        );
        let escalation_seq = escalation.and_then(|event| event["seq"].as_u64());
        let approvals: Vec<&Value> = all
            .iter()
            .filter(|event| event["kind"] == "approval_granted")
            .collect();
        trace.check(
            !approvals.is_empty()
                && approvals.iter().all(|approval| {
                    actor_of(approval).1 == APPROVER
                        && approval["seq"].as_u64() > escalation_seq
                        && escalation_seq.is_some()
                }),
            format!(
                "the approval came after the escalation, from the second approver {APPROVER}, none from {OFFLINE_APPROVER}"
            ),
        );
        let escalation_notices = escalation
            .map(|event| owed(event, "escalation"))
            .unwrap_or_default();
        trace.check(
            !escalation_notices.is_empty(),
            format!(
                "the escalation owed the escalation route a notice: {}",
                describe_owed(&escalation_notices)
            ),
        );
        let escalation_attempts: Vec<&Value> = all
            .iter()
            .filter(|event| {
                event["kind"] == "notification_attempted"
                    && escalation_notices
                        .iter()
                        .any(|(delivery, _, _)| event["payload"]["delivery_id"] == *delivery)
            })
            .collect();
        trace.check(
            escalation_attempts
                .iter()
                .any(|attempt| attempt["payload"]["outcome"] == "delivered"),
            format!(
                "the escalation's notice was delivered ({} attempt(s) on the record: {})",
                escalation_attempts.len(),
                escalation_attempts
                    .iter()
                    .map(|attempt| format!(
                        "{} {}",
                        attempt["payload"]["channel"].as_str().unwrap_or_default(),
                        attempt["payload"]["outcome"].as_str().unwrap_or_default()
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        for channel in &self.components.notification_channels {
            let mine: Vec<_> = entries
                .iter()
                .filter(|entry| entry.channel == channel.name)
                .collect();
            if mine.is_empty() {
                trace.problems.push(format!(
                    "channel {} ({}) carried no notice of {case_id}: no route of the audiences it owes (approvers, escalation, requester, executor, reviewers) names it, so the drill cannot show it delivers; route the escalation to it, for drills at least ([notify.rules.RULE] escalation = [\"{}\"])",
                    channel.name, channel.kind, channel.name
                ));
                continue;
            }
            let delivered: Vec<&str> = mine
                .iter()
                .filter(|entry| entry.state == "delivered")
                .map(|entry| entry.kind.as_str())
                .collect();
            let failures: Vec<String> = mine
                .iter()
                .filter_map(|entry| entry.last_error.clone())
                .collect();
            trace.check(
                !delivered.is_empty(),
                format!(
                    "channel {} ({}) delivered {}{}",
                    channel.name,
                    channel.kind,
                    if delivered.is_empty() {
                        "a notice".to_string()
                    } else {
                        delivered.join(", ")
                    },
                    failures
                        .first()
                        .map(|error| format!(" (last error: {error})"))
                        .unwrap_or_default()
                ),
            );
        }
        let attempted = all
            .iter()
            .filter(|event| event["kind"] == "notification_attempted")
            .count();
        let attempts: u32 = entries.iter().map(|entry| entry.attempts).sum();
        trace.check(
            attempted > 0 || attempts == 0,
            format!("the attempts are events of the case ({attempted} notification_attempted)"),
        );
        Ok(())
    }

    async fn disconnected_attachment(&mut self, trace: &mut Trace) -> Result<(), String> {
        let ticket = format!("drill:{}-attachment", self.run);
        let content = format!(
            "custody drill {} attachment {}",
            self.run,
            uuid::Uuid::now_v7()
        );
        let digest = custody_core::hex::encode(&sha2::Sha256::digest(content.as_bytes()));
        let path = std::env::temp_dir().join(format!("custody-drill-{}.txt", self.run));
        std::fs::write(&path, &content)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|error| format!("cannot open {}: {error}", path.display()))?;
        let held = self
            .cast
            .requester
            .upload_for_reference(
                &ticket,
                Upload {
                    file,
                    length: u64::try_from(content.len()).unwrap_or(u64::MAX),
                    name: Some("drill-attachment.txt".to_string()),
                    media_type: Some("text/plain".to_string()),
                },
                &self.key("attachment", "held"),
            )
            .await;
        let _ = std::fs::remove_file(&path);
        let held = fetched("the upload for the ticket", held)?;
        self.note(&held.outcome);
        trace.did(format!(
            "uploaded evidence for ticket {ticket} before any case carried it"
        ));
        trace.check(held.held, format!("the evidence was held for {ticket}"));
        let case_id = self
            .request(trace, "attachment", DRILL_ENTITLEMENT, Some(ticket.clone()))
            .await?;
        self.open_cases.push(case_id.clone());
        let (document, json) = self.read(&case_id).await?;
        Self::check_case(trace, &document, &json);
        trace.check(
            events(&json)
                .iter()
                .any(|event| event["kind"] == "evidence_joined"),
            format!("the held evidence joined {case_id} when it named {ticket}"),
        );
        let listed = fetched("the case's evidence", self.admin.evidence(&case_id).await)?;
        let found = listed
            .evidence
            .iter()
            .any(|item| item.payload.to_string().contains(&digest));
        trace.check(
            found,
            format!("{case_id} lists the evidence by its SHA-256 {digest}"),
        );
        if found {
            let rehashed = self.rehash(&case_id, &digest).await;
            trace.check(
                rehashed.is_ok(),
                format!(
                    "downloaded back, it hashes to {digest}{}",
                    rehashed
                        .err()
                        .map(|error| format!(" ({error})"))
                        .unwrap_or_default()
                ),
            );
        }
        match self.dead_link {
            Some(dead) => {
                let url = dead.url.clone();
                let answer = self
                    .cast
                    .requester
                    .capture_link(&case_id, &LinkBody { url: url.clone() }, &self.key("attachment", "link"))
                    .await;
                trace.did(format!("attached the dead link {url} (it answers 404)"));
                if let Ok(answer) = &answer {
                    if let Ok(outcome) = answer.document() {
                        self.note(&outcome);
                    }
                }
                let (_, json) = self.read(&case_id).await?;
                trace.check(
                    events(&json)
                        .iter()
                        .any(|event| event["kind"] == "evidence_unverified"),
                    "the dead link is recorded as unverified",
                );
            }
            None => trace.did(
                "no dead link attached: the drill serves one on loopback only for an embedded deployment",
            ),
        }
        // Every earlier drill case's evidence still downloads and hashes to
        // what its events recorded.
        let cases = fetched(
            "the case list",
            self.admin
                .cases(&CasesQuery {
                    state: None,
                    limit: Some(1000),
                    unsanctioned: None,
                    // Listings leave drill cases out unless asked for.
                    include_drills: Some(true),
                })
                .await,
        )?;
        let mut checked = 0usize;
        for summary in cases
            .cases
            .iter()
            .filter(|summary| summary.requester == REQUESTER && summary.case_id != case_id)
        {
            let listed = fetched(
                "an earlier case's evidence",
                self.admin.evidence(&summary.case_id).await,
            )?;
            for item in &listed.evidence {
                let mut hashes = Vec::new();
                blob_hashes(&item.payload, &mut hashes);
                for sha256 in hashes {
                    checked += 1;
                    if let Err(error) = self.rehash(&summary.case_id, &sha256).await {
                        trace.problems.push(format!(
                            "evidence {sha256} of earlier drill case {}: {error}",
                            summary.case_id
                        ));
                    }
                }
            }
        }
        trace.did(format!(
            "re-downloaded and re-hashed {checked} piece(s) of evidence of earlier drill cases"
        ));
        Ok(())
    }

    /// Downloads blob `sha256` of `case_id` and checks its hash.
    async fn rehash(&self, case_id: &str, sha256: &str) -> Result<(), String> {
        let mut download = self
            .admin
            .download_evidence(case_id, sha256)
            .await
            .map_err(|error| format!("cannot download it: {error}"))?;
        let mut hasher = sha2::Sha256::new();
        while let Some(chunk) = download.chunk().await.map_err(|error| error.to_string())? {
            hasher.update(chunk.as_ref());
        }
        let got = custody_core::hex::encode(&hasher.finalize());
        if got == sha256 {
            Ok(())
        } else {
            Err(format!("it hashes to {got}"))
        }
    }

    async fn break_glass(&mut self, trace: &mut Trace) -> Result<(), String> {
        let body = BreakGlassBody {
            subject: self.subject("break-glass"),
            entitlement: DRILL_ENTITLEMENT.to_string(),
            change: None,
            resource: None,
            duration: None,
            justification: "custody drill: emergency".to_string(),
            ticket: None,
            change_set: None,
            drill: true,
        };
        let outcome = fetched(
            "break-glass",
            self.cast
                .executor
                .break_glass(&body, &self.key("break-glass", "invoke"))
                .await,
        )?;
        self.note(&outcome);
        let case_id = outcome.case_id.to_string();
        trace.case(&case_id);
        trace.did(format!(
            "{EXECUTOR} invoked break-glass and executed at once (case {case_id})"
        ));
        let (document, _) = self.read(&case_id).await?;
        trace.check(
            document.state.to_string() == "pending_review"
                && document.view.break_glass_deadline.is_some(),
            format!(
                "{case_id} waits for a post-hoc review with a deadline (it is {})",
                document.state
            ),
        );
        self.review(trace, &case_id).await?;
        let (document, json) = self.read(&case_id).await?;
        Self::check_case(trace, &document, &json);
        trace.check(
            document.state.to_string() == "reviewed",
            format!("{case_id} is reviewed (it is {})", document.state),
        );
        let kinds: Vec<(String, String)> = events(&json)
            .iter()
            .map(|event| {
                (
                    event["kind"].as_str().unwrap_or_default().to_string(),
                    event["actor"]["principal"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        let invoked = kinds
            .iter()
            .position(|(kind, by)| kind == "break_glass_invoked" && by == EXECUTOR);
        let reviewed = kinds
            .iter()
            .position(|(kind, by)| kind == "review_completed" && by == REVIEWER);
        trace.check(
            matches!((invoked, reviewed), (Some(invoked), Some(reviewed)) if invoked < reviewed),
            format!("break_glass_invoked by {EXECUTOR}, then review_completed by {REVIEWER}"),
        );
        Ok(())
    }

    async fn chat_approval(&mut self, trace: &mut Trace) -> Result<(), String> {
        let chat: Vec<(String, String)> = self
            .components
            .connectors
            .iter()
            .filter(|connector| connector.kind == "slack" || connector.kind == "teams")
            .map(|connector| (connector.name.clone(), connector.kind.clone()))
            .collect();
        if chat.is_empty() {
            trace.not_covered =
                Some("no chat connector (slack or teams) is configured".to_string());
            return Ok(());
        }
        let named = self
            .slack
            .as_ref()
            .and_then(|signing| signing.connector.clone());
        let Some((connector, _)) = chat
            .iter()
            .find(|(name, kind)| {
                kind == "slack" && named.as_ref().is_none_or(|named| named == name)
            })
            .cloned()
        else {
            trace.not_covered = Some(format!(
                "chat connector(s) {} configured, but the drill signs Slack interactions only (a Teams request is signed by Microsoft's Bot Framework, which the drill cannot sign for)",
                chat.iter()
                    .map(|(name, kind)| format!("{name} ({kind})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return Ok(());
        };
        let Some(signing) = self.slack.clone() else {
            trace.not_covered = Some(format!(
                "slack connector {connector} is configured, but the drill does not know its signing secret: give --slack-signing-secret (or CUSTODY_DRILL_SLACK_SIGNING_SECRET)"
            ));
            return Ok(());
        };
        // The Slack user who clicks is the drill's approver for the while.
        let user = format!("U0DRILL{}", self.run.to_uppercase());
        step(
            "mapping the drill's Slack user",
            self.admin
                .map_identity(
                    &connector,
                    &user,
                    &IdentityBody {
                        principal: APPROVER.to_string(),
                    },
                )
                .await,
        )?;
        trace.did(format!(
            "mapped Slack user {user} of connector {connector} to {APPROVER}"
        ));
        let outcome = self.chat_click(trace, &connector, &signing, &user).await;
        let unmapped = self.admin.unmap_identity(&connector, &user).await;
        match unmapped {
            Ok(_) => trace.did(format!("unmapped Slack user {user} again")),
            Err(error) => trace.problems.push(format!(
                "unmapping Slack user {user} failed ({error}): remove it with `custody connector unmap {connector} {user}`"
            )),
        }
        outcome
    }

    /// The chat approval, its Slack user mapped to the drill's approver.
    async fn chat_click(
        &mut self,
        trace: &mut Trace,
        connector: &str,
        signing: &SlackSigning,
        user: &str,
    ) -> Result<(), String> {
        let case_id = self
            .request(trace, "chat-approval", DRILL_ENTITLEMENT, None)
            .await?;
        let now = custody_core::Timestamp::now().as_micros();
        let message_ts = chat::slack_ts(now - 1_000_000);
        let action_ts = chat::slack_ts(now);
        let text = format!(
            "custody drill: Approval needed for case {case_id}: grant {DRILL_ENTITLEMENT} (requested by {REQUESTER})"
        );
        let (headers, body) = chat::approve_click(
            signing,
            user,
            &case_id,
            &text,
            &message_ts,
            &action_ts,
            now.div_euclid(1_000_000),
        );
        let (status, answer) = step(
            "the Slack interaction",
            self.admin
                .connector_post(connector, "actions", &headers, body)
                .await,
        )?;
        trace.did(format!(
            "posted a signed Slack block action to connector {connector}: {user} clicked Approve on {case_id}'s message in {}",
            chat::CHANNEL
        ));
        trace.check(
            status == 200,
            format!(
                "the connector accepted the signed click (HTTP {status}{})",
                if status == 200 {
                    String::new()
                } else {
                    format!(": {}", custody_core::text::escape(&answer))
                }
            ),
        );
        let (document, json) = self.read(&case_id).await?;
        let approval = events(&json)
            .into_iter()
            .find(|event| event["kind"] == "approval_granted")
            .unwrap_or_default();
        if let Some(log_index) = approval["log_index"].as_u64() {
            self.last_log_index = Some(
                self.last_log_index
                    .map_or(log_index, |last| last.max(log_index)),
            );
        }
        let chat = &approval["payload"]["chat"];
        let digest = custody_core::hex::encode(&sha2::Sha256::digest(text.as_bytes()));
        trace.check(
            actor_of(&approval) == ("approver".to_string(), APPROVER.to_string())
                && approval["actor"]["via"] == format!("connector:{connector}")
                && approval["source"] == connector
                && approval["external_id"] == format!("{action_ts}:{user}"),
            format!(
                "the approval of {case_id} is {APPROVER}'s, via connector:{connector}, external ID {action_ts}:{user}"
            ),
        );
        trace.check(
            chat["channel"] == format!("slack:{}", chat::CHANNEL)
                && chat["approver"] == APPROVER
                && chat["message_sha256"] == digest
                && chat["permalink"]
                    .as_str()
                    .is_some_and(|link| !link.is_empty()),
            format!(
                "it carries its chat context: channel slack:{}, the message's SHA-256, a permalink",
                chat::CHANNEL
            ),
        );
        trace.check(
            document.state.to_string() == "approved",
            format!("{case_id} is approved (it is {})", document.state),
        );
        if document.state.to_string() != "approved" {
            self.open_cases.push(case_id);
            return Ok(());
        }
        self.execute_and_review(trace, &case_id).await?;
        Ok(())
    }

    async fn automation_first(&mut self, trace: &mut Trace) -> Result<(), String> {
        let case_id = self
            .request(trace, "automation-first", DRILL_ENTITLEMENT, None)
            .await?;
        self.approve(trace, &case_id, None).await?;
        let executed = step(
            "the automation's execution",
            self.execute_as(trace, Who::Automation, &case_id, ExecutionBody::default())
                .await,
        )?;
        let execution_event = executed
            .appended
            .first()
            .map(|event| event.event_id.clone())
            .unwrap_or_default();
        if !self.components.notification_channels.is_empty() {
            let entries = self.notices(&case_id).await?;
            trace.check(
                entries
                    .iter()
                    .any(|entry| entry.event_id == execution_event),
                format!("the execution {execution_event} owes a notice (queued with it)"),
            );
        } else {
            trace.did("no notification channel: the notice owed after the execution is not queued anywhere");
        }
        self.review(trace, &case_id).await?;
        let (document, json) = self.read(&case_id).await?;
        Self::check_case(trace, &document, &json);
        Self::check_roles(
            trace,
            &json,
            &[
                ("requester", REQUESTER),
                ("approver", APPROVER),
                ("executor", AUTOMATION),
                ("reviewer", REVIEWER),
            ],
        );
        trace.check(
            events(&json)
                .iter()
                .any(|event| event["role"] == "executor" && event["actor"]["kind"] == "automation"),
            format!("the executor of {case_id} is an automation principal"),
        );
        Ok(())
    }

    async fn vendor_delegation(&mut self, trace: &mut Trace) -> Result<(), String> {
        let inside = format!("drill:vendor-{}", self.run);
        let outside = format!("drill:outside-{}", self.run);
        let grant = fetched(
            "the delegation grant",
            self.admin
                .grant_delegation(&DelegationBody {
                    vendor_org: super::VENDOR_ORG.to_string(),
                    principals: vec![VENDOR.to_string()],
                    on_behalf_of: ON_BEHALF_OF.to_string(),
                    entitlements: vec![inside.clone()],
                    resources: Vec::new(),
                    valid_for: "1h".to_string(),
                })
                .await,
        )?;
        self.grants.push(grant.grant_id.clone());
        trace.did(format!(
            "granted {VENDOR} ({}) a delegation {} for {inside}, on behalf of {ON_BEHALF_OF}",
            super::VENDOR_ORG,
            grant.grant_id
        ));
        let covered = self.request(trace, "vendor-inside", &inside, None).await?;
        self.approve(trace, &covered, None).await?;
        let accepted = self
            .execute_as(trace, Who::Vendor, &covered, ExecutionBody::default())
            .await;
        trace.check(
            accepted.is_ok(),
            format!(
                "the vendor's execution of {covered}, under the grant, was accepted{}",
                accepted
                    .as_ref()
                    .err()
                    .map(|error| format!(" ({error})"))
                    .unwrap_or_default()
            ),
        );
        let (document, json) = self.read(&covered).await?;
        Self::check_case(trace, &document, &json);
        trace.check(
            events(&json).iter().any(|event| {
                event["role"] == "executor"
                    && event["actor"]["delegation_grant"] == Value::String(grant.grant_id.clone())
                    && event["actor"]["on_behalf_of"] == ON_BEHALF_OF
            }),
            format!(
                "the execution names grant {} and acts for {ON_BEHALF_OF}",
                grant.grant_id
            ),
        );
        if accepted.is_ok() {
            self.review(trace, &covered).await?;
        }
        let uncovered = self
            .request(trace, "vendor-outside", &outside, None)
            .await?;
        self.approve(trace, &uncovered, None).await?;
        let refused = self
            .execute_as(trace, Who::Vendor, &uncovered, ExecutionBody::default())
            .await;
        match refused {
            Err(error) if error.is_refusal() => trace.check(
                true,
                format!("the vendor's execution of {uncovered}, outside the grant, was refused ({})", refusal_rule(&error).unwrap_or_default()),
            ),
            Err(error) => trace.check(false, format!("the vendor's execution outside the grant is refused (it failed otherwise: {error})")),
            Ok(_) => trace.check(false, format!("the vendor's execution of {uncovered}, outside the grant, is refused (it was accepted)")),
        }
        // The uncovered case is executed by the drill's executor and reviewed,
        // so the drill leaves no approved case waiting.
        step(
            "the execution",
            self.execute_as(trace, Who::Executor, &uncovered, ExecutionBody::default())
                .await,
        )?;
        self.review(trace, &uncovered).await?;
        Ok(())
    }

    async fn late_records(&mut self, trace: &mut Trace) -> Result<(), String> {
        let case_id = self
            .request(trace, "late-records", DRILL_ENTITLEMENT, None)
            .await?;
        let now = custody_core::Timestamp::now();
        let executed_at = now.plus_seconds(-3600).to_string();
        let approved_at = now.plus_seconds(-7200).to_string();
        step(
            "the observed execution",
            self.execute_as(
                trace,
                Who::Executor,
                &case_id,
                ExecutionBody {
                    observed: true,
                    occurred_at: Some(executed_at.clone()),
                    ..ExecutionBody::default()
                },
            )
            .await,
        )?;
        trace.did(format!(
            "the execution arrived first, saying it happened at {executed_at}"
        ));
        self.approve(trace, &case_id, Some(approved_at.clone()))
            .await?;
        let (document, json) = self.read(&case_id).await?;
        trace.check(
            document.state.to_string() == "executed"
                && json["view"]["approved_after_execution"] != Value::Bool(true),
            format!(
                "with the late approval {case_id} is executed as if in order (it is {})",
                document.state
            ),
        );
        self.review(trace, &case_id).await?;
        let (document, json) = self.read(&case_id).await?;
        Self::check_case(trace, &document, &json);
        let all = events(&json);
        let approval = all.iter().find(|event| event["kind"] == "approval_granted");
        let execution = all.iter().find(|event| event["role"] == "executor");
        let ordered = match (approval, execution) {
            (Some(approval), Some(execution)) => {
                approval["seq"].as_u64() > execution["seq"].as_u64()
                    && approval["occurred_at"].as_str() < execution["occurred_at"].as_str()
                    && approval["occurred_at"].as_str() < approval["recorded_at"].as_str()
            }
            _ => false,
        };
        trace.check(
            ordered,
            "the approval is recorded after the execution (higher seq) but occurred before it, both before they were recorded",
        );
        trace.check(
            document.state.to_string() == "reviewed",
            format!("{case_id} is reviewed (it is {})", document.state),
        );
        Ok(())
    }

    async fn unsanctioned_change(&mut self, trace: &mut Trace) -> Result<(), String> {
        let sources: Vec<(String, String)> = self
            .components
            .connectors
            .iter()
            .filter(|connector| connector.source)
            .map(|connector| (connector.name.clone(), connector.kind.clone()))
            .collect();
        if sources.is_empty() {
            trace.not_covered = Some(
                "no source of observed changes is configured (okta, cloudtrail, entra, github, vault, kubernetes)"
                    .to_string(),
            );
            return Ok(());
        }
        let Some((source, _)) = sources
            .iter()
            .find(|(_, kind)| sources::WRITTEN.contains(&kind.as_str()))
            .cloned()
        else {
            trace.not_covered = Some(format!(
                "source(s) {} configured, but the drill writes the batch format of {} only, and a batch in another format would be refused whole (docs/drill.md)",
                sources
                    .iter()
                    .map(|(name, kind)| format!("{name} ({kind})"))
                    .collect::<Vec<_>>()
                    .join(", "),
                sources::WRITTEN.join(", ")
            ));
            return Ok(());
        };
        let staged = sources::okta(&self.run);
        let first = fetched(
            "the batch",
            self.admin
                .ingest_marked(&source, staged.batch.clone(), true)
                .await,
        )?;
        trace.did(format!(
            "sent source {source} a batch in its export format (`POST /v1/ingest/{source}?drill=true`): record {}, {} added to {} by an administrator no case names",
            staged.external_id, staged.subject, staged.entitlement
        ));
        trace.check(
            first.unsanctioned == 1
                && first.matched == 0
                && first.duplicates == 0
                && first.refused.is_empty()
                && first.cases.len() == 1,
            format!(
                "the batch opened one case ({} unsanctioned, {} matched, {} duplicate, {} refused)",
                first.unsanctioned,
                first.matched,
                first.duplicates,
                first.refused.len()
            ),
        );
        let Some(case_id) = first.cases.first().cloned() else {
            return Err(format!(
                "the batch was recorded in no case{}",
                first
                    .refused
                    .first()
                    .map(|refusal| format!(" ({}: {})", refusal.external_id, refusal.error))
                    .unwrap_or_default()
            ));
        };
        trace.case(&case_id);
        let (document, json) = self.read(&case_id).await?;
        Self::check_case(trace, &document, &json);
        trace.check(
            document.view.opened_by_observation && document.state.to_string() == "pending_review",
            format!(
                "{case_id} was opened by the observation and waits for a post-hoc review (it is {})",
                document.state
            ),
        );
        let recorded = |document: &CaseDocument| {
            document
                .view
                .observations
                .iter()
                .filter(|observation| {
                    observation.source == source
                        && observation.external_id == staged.external_id
                        && observation.change.subject().to_string() == staged.subject
                        && observation.change.entitlement() == staged.entitlement
                        && observation.matched_by == MatchedBy::Unmatched
                })
                .count()
        };
        trace.check(
            recorded(&document) == 1,
            format!(
                "the observed change is recorded in {case_id}: {} gained {}, record {} of {source}, matched by nothing",
                staged.subject, staged.entitlement, staged.external_id
            ),
        );
        trace.check(
            events(&json).first().map(actor_of)
                == Some(("observer".to_string(), "system".to_string())),
            format!("{case_id} was requested by the ledger itself, as observer"),
        );
        // A connector replaying the same record appends nothing.
        let before = ledger_events(&json);
        let replay = fetched(
            "the replayed batch",
            self.admin
                .ingest_marked(&source, staged.batch.clone(), true)
                .await,
        )?;
        trace.did("sent the same batch again, as a connector replaying it would");
        trace.check(
            replay.duplicates == 1
                && replay.unsanctioned == 0
                && replay.matched == 0
                && replay.refused.is_empty()
                && replay.cases == [case_id.clone()],
            format!(
                "the replay was answered as a duplicate of the record in {case_id} ({} duplicate, {} unsanctioned, {} matched)",
                replay.duplicates, replay.unsanctioned, replay.matched
            ),
        );
        let (document, json) = self.read(&case_id).await?;
        trace.check(
            recorded(&document) == 1 && ledger_events(&json) == before,
            format!(
                "the replay appended nothing: {case_id} holds one observation and {before} events"
            ),
        );
        // A post-hoc review closes it, as a reviewer closes any.
        self.review(trace, &case_id).await?;
        let (document, json) = self.read(&case_id).await?;
        trace.check(
            document.state.to_string() == "reviewed"
                && events(&json).iter().any(|event| {
                    event["kind"] == "review_completed" && actor_of(event).1 == REVIEWER
                }),
            format!(
                "{case_id} is reviewed post hoc by {REVIEWER} (it is {})",
                document.state
            ),
        );
        Ok(())
    }

    async fn export(&mut self, trace: &mut Trace) -> Result<(), String> {
        if self.components.export_sinks.is_empty() {
            trace.not_covered = Some("no export sink is configured ([[export.sinks]])".to_string());
            return Ok(());
        }
        let Some(last) = self.last_log_index else {
            return Err("the drill appended no event to look for in the sinks".to_string());
        };
        let deadline = tokio::time::Instant::now() + BACKGROUND_WAIT;
        let mut sinks;
        loop {
            sinks = fetched("the components", self.admin.components().await)?.export_sinks;
            let caught_up = sinks
                .iter()
                .all(|sink| sink.cursor.is_some_and(|cursor| cursor > last));
            if caught_up || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        trace.did(format!(
            "waited up to {}s for every sink's cursor to pass log index {last}, the drill's last event",
            BACKGROUND_WAIT.as_secs()
        ));
        for sink in &sinks {
            trace.check(
                sink.cursor.is_some_and(|cursor| cursor > last),
                format!(
                    "sink {} ({}) accepted every drill event (cursor {})",
                    sink.name,
                    sink.kind,
                    sink.cursor
                        .map_or("none".to_string(), |cursor| cursor.to_string())
                ),
            );
        }
        Ok(())
    }
}

/// The blob hashes an evidence event's payload names (`sha256` members,
/// at any depth: one attachment, or the pieces a held record joined with).
fn blob_hashes(payload: &Value, hashes: &mut Vec<String>) {
    match payload {
        Value::Object(members) => {
            for (name, value) in members {
                match (name.as_str(), value) {
                    ("sha256", Value::String(hash)) => {
                        if !hashes.contains(hash) {
                            hashes.push(hash.clone());
                        }
                    }
                    _ => blob_hashes(value, hashes),
                }
            }
        }
        Value::Array(values) => {
            for value in values {
                blob_hashes(value, hashes);
            }
        }
        _ => {}
    }
}

/// The `escalation_raised` event of a case document whose reason is
/// `approval.overdue`, if there is one.
fn overdue_escalation(document: &Value) -> Option<&Value> {
    document["events"].as_array()?.iter().find(|event| {
        event["kind"] == "escalation_raised"
            && event["payload"]["reason"] == custody_core::Code::ApprovalOverdue.as_str()
    })
}

/// The notices of `kind` an event owes: (delivery ID, channel, recipient).
fn owed(event: &Value, kind: &str) -> Vec<(String, String, Option<String>)> {
    event["notify"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|notice| notice["kind"] == kind)
        .map(|notice| {
            (
                notice["delivery_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                notice["channel"].as_str().unwrap_or_default().to_string(),
                notice["recipient"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// Owed notices as `channel → recipient`, for the trail's lines.
fn describe_owed(notices: &[(String, String, Option<String>)]) -> String {
    if notices.is_empty() {
        return "none".to_string();
    }
    notices
        .iter()
        .map(|(_, channel, recipient)| match recipient {
            Some(recipient) => format!("{channel} → {recipient}"),
            None => format!("{channel} (the channel's own recipients)"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The events of a case document that a write of the drill's appends:
/// all but the notices' attempts (which the outbox records meanwhile).
fn ledger_events(document: &Value) -> usize {
    events(document)
        .iter()
        .filter(|event| event["kind"] != "notification_attempted")
        .count()
}

/// Who records an execution.
#[derive(Clone, Copy)]
enum Who {
    Executor,
    Vendor,
    Automation,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Executor => EXECUTOR,
            Who::Vendor => VENDOR,
            Who::Automation => AUTOMATION,
        }
    }
}

/// The path of the dead link: `verify`'s `evidence.link-unverified` about
/// it is the finding the drill means to cause.
pub const DEAD_LINK_PATH: &str = "/custody-drill-dead-link";

/// A dead external link for the embedded drill: an HTTP server on loopback
/// that answers every request `404 Not Found`.
pub struct DeadLink {
    /// Its URL.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl DeadLink {
    /// Starts it; `None` when no loopback port can be bound.
    pub async fn start() -> Option<DeadLink> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.ok()?;
        let address = listener.local_addr().ok()?;
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let _ = socket.read(&mut buffer).await;
                    let _ = socket
                        .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                });
            }
        });
        Some(DeadLink {
            url: format!("http://{address}{DEAD_LINK_PATH}"),
            task,
        })
    }
}

impl Drop for DeadLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
