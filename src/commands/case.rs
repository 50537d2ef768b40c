//! Cases: requesting a change (or recording break-glass), the steps after
//! it (approve, deny, execute, review, comment, merge), one case's timeline
//! and the case list.

use std::path::Path;
use std::process::ExitCode;

use custody_api::{
    AppliedBody, BreakGlassBody, CasesQuery, ChatBody, CommentBody, DecisionBody, ExecutionBody,
    MergeBody, RequestBody, ReviewBody, WriteOutcome,
};
use custody_client::{Answer, ClientError};

use super::{connect, idempotency_key, subject};
use crate::cli::{
    ApproveArgs, BreakGlassArgs, CasesArgs, CommentArgs, DenyArgs, ExecuteArgs, MergeArgs,
    RequestArgs, ReviewArgs, ShowArgs, WriteArgs,
};
use crate::error::CliError;
use crate::output::{self, say};

/// `custody request`: prints only the new case ID.
pub async fn request(args: RequestArgs) -> Result<ExitCode, CliError> {
    let body = RequestBody {
        drill: false,
        subject: subject(&args.subject)?,
        entitlement: args.entitlement,
        change: Some(args.change),
        resource: args.resource,
        duration: args.duration,
        justification: args.justification,
        ticket: args.ticket,
    };
    let write = &args.write;
    let answer = connect(&write.connection)?
        .create_case(&body, &idempotency_key(&write.idempotency_key))
        .await?;
    if write.json {
        output::print_json(answer.json());
    } else {
        let outcome = answer.document()?;
        // Only the case ID on stdout, so scripts can capture it.
        say!("{}", outcome.case_id);
        if outcome.existing {
            eprintln!("note: an open case already carries this ticket; returned it instead of opening a second one");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `custody break-glass`: prints only the case ID.
pub async fn break_glass(args: BreakGlassArgs) -> Result<ExitCode, CliError> {
    let change_set = args
        .change_set
        .as_deref()
        .map(read_change_set)
        .transpose()?;
    let body = BreakGlassBody {
        drill: false,
        subject: subject(&args.subject)?,
        entitlement: args.entitlement,
        change: Some(args.change),
        resource: args.resource,
        duration: args.duration,
        justification: args.justification,
        ticket: args.ticket,
        change_set,
    };
    let write = &args.write;
    let answer = connect(&write.connection)?
        .break_glass(&body, &idempotency_key(&write.idempotency_key))
        .await?;
    if write.json {
        output::print_json(answer.json());
    } else {
        say!("{}", answer.document()?.case_id);
        eprintln!("break-glass recorded; a post-hoc review by someone else is now due (custody show CASE)");
    }
    Ok(ExitCode::SUCCESS)
}

/// `custody approve`: an approval, a chat approval recorded (for oneself
/// or attested for someone else), or the confirmation of an attested one.
pub async fn approve(args: ApproveArgs) -> Result<ExitCode, CliError> {
    // clap requires the other chat fields with --chat-channel.
    let chat = args.chat_channel.map(|channel| ChatBody {
        channel,
        permalink: args.chat_permalink.unwrap_or_default(),
        message_time: args.chat_time.unwrap_or_default(),
        message_text: args.chat_text.unwrap_or_default(),
        approver: args.approver,
    });
    let verb = if args.confirm.is_some() {
        "confirmed the chat approval on"
    } else {
        "approved"
    };
    let body = DecisionBody {
        comment: args.comment,
        occurred_at: args.occurred_at,
        chat,
        confirm: args.confirm,
    };
    let write = &args.write;
    let answer = connect(&write.connection)?
        .approve(&args.case, &body, &idempotency_key(&write.idempotency_key))
        .await;
    written(answer, &args.case, write, verb)
}

/// `custody deny`.
pub async fn deny(args: DenyArgs) -> Result<ExitCode, CliError> {
    let body = DecisionBody {
        comment: args.comment,
        ..DecisionBody::default()
    };
    let write = &args.write;
    let answer = connect(&write.connection)?
        .deny(&args.case, &body, &idempotency_key(&write.idempotency_key))
        .await;
    written(answer, &args.case, write, "denied")
}

/// `custody execute`: a completed or failed execution, the revocation of
/// time-bound access, or an execution observed before its approval.
pub async fn execute(args: ExecuteArgs) -> Result<ExitCode, CliError> {
    let applied_subject = args.applied_subject.as_deref().map(subject).transpose()?;
    let applied = (applied_subject.is_some()
        || args.applied_entitlement.is_some()
        || args.applied_resource.is_some())
    .then_some(AppliedBody {
        subject: applied_subject,
        change: None,
        entitlement: args.applied_entitlement,
        resource: args.applied_resource,
    });
    let change_set = args
        .change_set
        .as_deref()
        .map(read_change_set)
        .transpose()?;
    let (status, verb) = if args.revocation {
        ("revocation", "recorded the revocation of")
    } else if args.failed {
        ("failed", "recorded failed execution of")
    } else {
        ("completed", "executed")
    };
    let body = ExecutionBody {
        change_set,
        comment: args.comment,
        status: Some(status.to_string()),
        observed: args.observed,
        occurred_at: args.occurred_at,
        applied,
    };
    let write = &args.write;
    let answer = connect(&write.connection)?
        .execute(&args.case, &body, &idempotency_key(&write.idempotency_key))
        .await;
    written(answer, &args.case, write, verb)
}

/// `custody review`.
pub async fn review(args: ReviewArgs) -> Result<ExitCode, CliError> {
    let body = ReviewBody {
        outcome: args.outcome,
        comment: args.comment,
    };
    let write = &args.write;
    let answer = connect(&write.connection)?
        .review(&args.case, &body, &idempotency_key(&write.idempotency_key))
        .await;
    written(answer, &args.case, write, "reviewed")
}

/// `custody comment`.
pub async fn comment(args: CommentArgs) -> Result<ExitCode, CliError> {
    let body = CommentBody { text: args.text };
    let write = &args.write;
    let answer = connect(&write.connection)?
        .comment(&args.case, &body, &idempotency_key(&write.idempotency_key))
        .await;
    written(answer, &args.case, write, "commented on")
}

/// `custody merge DUPLICATE --into SURVIVOR`.
pub async fn merge(args: MergeArgs) -> Result<ExitCode, CliError> {
    let body = MergeBody {
        into: args.into,
        comment: args.comment,
    };
    let write = &args.write;
    let answer = connect(&write.connection)?
        .merge(
            &args.duplicate,
            &body,
            &idempotency_key(&write.idempotency_key),
        )
        .await;
    written(answer, &args.duplicate, write, "merged")
}

/// Prints the outcome of a write to `case`: `VERB CASE: state STATE`, or
/// the document with `--json`.
fn written(
    answer: Result<Answer<WriteOutcome>, ClientError>,
    case: &str,
    write: &WriteArgs,
    verb: &str,
) -> Result<ExitCode, CliError> {
    let answer = answer?;
    if write.json {
        output::print_json(answer.json());
    } else {
        let outcome = answer.document()?;
        let replayed = if outcome.replayed {
            " (already recorded; nothing new appended)"
        } else {
            ""
        };
        say!("{verb} {case}: state {}{replayed}", outcome.state.as_str());
    }
    Ok(ExitCode::SUCCESS)
}

/// `custody show`: a case's timeline, or an evidence record (the ID an
/// upload held for a ticket answered with).
pub async fn show(args: ShowArgs) -> Result<ExitCode, CliError> {
    let client = connect(&args.connection)?;
    let answer = match client.case(&args.case).await {
        Ok(answer) => answer,
        // Not a case: perhaps an evidence record.
        Err(ClientError::Refused(problem)) if problem.status() == Some(404) => {
            match client.evidence_record(&args.case).await {
                Ok(record) => {
                    if args.json {
                        output::print_json(record.json());
                    } else {
                        output::print_record(&record.document()?);
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                Err(_) => return Err(ClientError::Refused(problem).into()),
            }
        }
        Err(error) => return Err(error.into()),
    };
    if args.json {
        output::print_json(answer.json());
    } else {
        output::print_timeline(&answer.document()?);
    }
    Ok(ExitCode::SUCCESS)
}

/// `custody cases`: newest first.
pub async fn cases(args: CasesArgs) -> Result<ExitCode, CliError> {
    let query = CasesQuery {
        state: args.state,
        limit: Some(args.limit),
        unsanctioned: args.unsanctioned.then_some(true),
        include_drills: args.include_drills.then_some(true),
    };
    let answer = connect(&args.connection)?.cases(&query).await?;
    if args.json {
        output::print_json(answer.json());
    } else {
        output::print_cases(&answer.document()?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads and parses a change set file once, as the server would: every
/// limit, and each key once (a key given twice would otherwise be dropped
/// here, unseen, before the server could refuse it). Sent as the parsed
/// change set, so the server parses exactly what was checked here.
fn read_change_set(path: &Path) -> Result<Box<serde_json::value::RawValue>, CliError> {
    use custody_core::change_set::{ChangeSet, ChangeSetError};
    let text = std::fs::read_to_string(path).map_err(|error| {
        CliError::Io(format!(
            "cannot read change set {}: {error}",
            path.display()
        ))
    })?;
    let change_set = ChangeSet::from_json(&text).map_err(|error| match error {
        ChangeSetError::Syntax(error) => CliError::Usage(format!(
            "change set {} is not JSON: {error}\nhint: describe the applied change as a JSON object, e.g. {{\"added\": [\"role/admin\"]}}",
            path.display()
        )),
        refused => CliError::Usage(format!(
            "change set {} is refused: {refused}",
            path.display()
        )),
    })?;
    serde_json::value::to_raw_value(&change_set).map_err(|error| {
        CliError::Usage(format!(
            "change set {} cannot be written as JSON: {error}",
            path.display()
        ))
    })
}
