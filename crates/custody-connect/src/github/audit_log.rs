//! GitHub organization audit log entries, read into observations (see
//! [`super`]): what the REST API's `GET /orgs/{org}/audit-log` answers,
//! what the web UI exports as JSON, and what audit log streaming writes
//! as JSON lines.
//!
//! An entry names its action (`team.add_member`), its actor's login, its
//! time in milliseconds since the epoch (`@timestamp`, or `created_at`)
//! and its ID (`_document_id`), and the fields of the action (`user`,
//! `team`, `repo`, `permission`, ...). An entry without an actor is
//! GitHub's own doing (a deprovisioning, an expiry) and is recorded as
//! the actor `github`.

use serde_json::Value;

use custody_core::model::{ChangeKind, SubjectKind};

use super::{
    actor, deploy_key_entitlement, organization_role, permissions_entitlement, qualified,
    repository_role, without_case_id, Observation,
};
use crate::observe::Parsed;
use crate::record_json::{array_elements, flag, from_epoch_millis, id_text, json_lines, text};
use crate::Refusal;

/// The actions read; every other is counted as skipped.
pub const ACTIONS: &[&str] = &[
    "team.add_member",
    "team.remove_member",
    "org.add_member",
    "org.remove_member",
    "org.update_member",
    "org.invite_member",
    "repo.add_member",
    "repo.remove_member",
    "repo.update_member",
    "team.add_repository",
    "team.remove_repository",
    "team.update_repository_permission",
    "public_key.create",
    "public_key.delete",
    "personal_access_token.access_granted",
    "personal_access_token.access_revoked",
];

/// Reads a file of entries: a JSON array (the REST API's answer, the web
/// UI's JSON export) or JSON lines (audit log streaming).
pub fn parse_file(bytes: &[u8], organization: Option<&str>) -> Result<Parsed, Refusal> {
    let trimmed = crate::record_json::trim_ascii(bytes);
    let entries = if trimmed.first() == Some(&b'[') {
        array_elements(trimmed, "the audit log file")?
    } else {
        json_lines(bytes, "the audit log file")?
    };
    parse_entries(&entries, organization)
}

/// Reads a page of the REST API (a JSON array).
pub fn parse_page(bytes: &[u8], organization: Option<&str>) -> Result<Parsed, Refusal> {
    parse_entries(&array_elements(bytes, "the audit log page")?, organization)
}

fn parse_entries(
    entries: &[(&[u8], Value)],
    organization: Option<&str>,
) -> Result<Parsed, Refusal> {
    let mut parsed = Parsed::default();
    for (raw, entry) in entries {
        match parse_entry(raw, entry, organization)? {
            Some(observation) => parsed.observations.push(observation.build()?),
            None => parsed.skipped += 1,
        }
    }
    Ok(parsed)
}

/// One entry: its observation, `None` when it changes no access Custody
/// reads (another action, another organization, a user's own SSH key).
fn parse_entry<'a>(
    raw: &'a [u8],
    entry: &'a Value,
    organization: Option<&str>,
) -> Result<Option<Observation<'a>>, Refusal> {
    let Some(action) = text(entry, &["action"]) else {
        return Ok(None);
    };
    if !ACTIONS.contains(&action) {
        return Ok(None);
    }
    let entry_organization = text(entry, &["org"]);
    if let (Some(expected), Some(found)) = (organization, entry_organization) {
        if !expected.eq_ignore_ascii_case(found) {
            return Ok(None);
        }
    }
    let organization = entry_organization.or(organization);
    let Some(document_id) = text(entry, &["_document_id"]) else {
        return Err(Refusal::Malformed(format!(
            "an audit log entry of action `{action}` has no `_document_id`"
        )));
    };
    let read = Entry {
        document_id,
        action,
        entry,
    };
    let occurred_at = ["@timestamp", "created_at"]
        .into_iter()
        .find_map(|field| entry.get(field).and_then(from_epoch_millis))
        .ok_or_else(|| {
            read.malformed("neither `@timestamp` nor `created_at` is a time in milliseconds")
        })?;
    let user = || read.require("user");
    let (subject, kind, entitlement, resource, hints) = match action {
        "team.add_member" | "team.remove_member" => {
            let team = read.require("team")?;
            (
                (SubjectKind::User, user()?.to_string()),
                grant_if(action == "team.add_member"),
                "member".to_string(),
                format!("team:{}", qualified(organization, team)),
                Vec::new(),
            )
        }
        "org.add_member" | "org.remove_member" | "org.update_member" | "org.invite_member" => {
            let organization = organization.ok_or_else(|| read.malformed("`org` is missing"))?;
            let subject = text(entry, &["user"])
                .or_else(|| text(entry, &["invitee"]))
                .or_else(|| text(entry, &["email"]))
                .ok_or_else(|| read.malformed("`user` is missing"))?;
            let role = text(entry, &["permission"])
                .or_else(|| text(entry, &["role"]))
                .unwrap_or("member");
            (
                (SubjectKind::User, subject.to_string()),
                grant_if(action != "org.remove_member"),
                organization_role(role),
                format!("org:{organization}"),
                Vec::new(),
            )
        }
        "repo.add_member" | "repo.remove_member" | "repo.update_member" => {
            let repository = read.require("repo")?;
            let role = text(entry, &["permission"])
                .or_else(|| {
                    (action == "repo.remove_member")
                        .then(|| text(entry, &["old_permission"]))
                        .flatten()
                })
                .map_or_else(|| "collaborator".to_string(), repository_role);
            (
                (SubjectKind::User, user()?.to_string()),
                grant_if(action != "repo.remove_member"),
                role,
                format!("repo:{repository}"),
                Vec::new(),
            )
        }
        "team.add_repository" | "team.remove_repository" | "team.update_repository_permission" => {
            let team = read.require("team")?;
            let repository = read.require("repo")?;
            let role = text(entry, &["permission"])
                .map_or_else(|| "collaborator".to_string(), repository_role);
            (
                (SubjectKind::Group, qualified(organization, team)),
                grant_if(action != "team.remove_repository"),
                role,
                format!("repo:{repository}"),
                Vec::new(),
            )
        }
        "public_key.create" | "public_key.delete" => {
            // Without a repository it is a user's own SSH key, not a
            // deploy key of the organization's.
            let Some(repository) = text(entry, &["repo"]) else {
                return Ok(None);
            };
            let title = read.require("title")?;
            let read_only = flag(entry, &["read_only"]).unwrap_or(false);
            (
                (
                    SubjectKind::ApiKey,
                    format!("{repository}/{}", without_case_id(title)),
                ),
                if action == "public_key.create" {
                    ChangeKind::Create
                } else {
                    ChangeKind::Delete
                },
                deploy_key_entitlement(read_only).to_string(),
                format!("repo:{repository}"),
                vec![title.to_string()],
            )
        }
        "personal_access_token.access_granted" | "personal_access_token.access_revoked" => {
            let organization = organization.ok_or_else(|| read.malformed("`org` is missing"))?;
            let token_id = id_text(entry, &["token_id"])
                .ok_or_else(|| read.malformed("`token_id` is missing"))?;
            let entitlement = permissions_entitlement(entry.get("permissions"))
                .unwrap_or_else(|| "access".to_string());
            let hints = text(entry, &["token_name"])
                .map(str::to_string)
                .into_iter()
                .collect();
            (
                (SubjectKind::Token, format!("{}/pat-{token_id}", user()?)),
                grant_if(action == "personal_access_token.access_granted"),
                entitlement,
                format!("org:{organization}"),
                hints,
            )
        }
        _ => return Ok(None),
    };
    Ok(Some(Observation {
        external_id: document_id.to_string(),
        action: action.to_string(),
        occurred_at,
        actor: actor(
            text(entry, &["actor"]).unwrap_or("github"),
            flag(entry, &["actor_is_bot"]) == Some(true),
        ),
        subject,
        kind,
        entitlement,
        resource: Some(resource),
        hints,
        raw,
    }))
}

fn grant_if(grant: bool) -> ChangeKind {
    if grant {
        ChangeKind::Grant
    } else {
        ChangeKind::Revoke
    }
}

struct Entry<'a> {
    document_id: &'a str,
    action: &'a str,
    entry: &'a Value,
}

impl<'a> Entry<'a> {
    fn malformed(&self, what: &str) -> Refusal {
        Refusal::Malformed(format!(
            "audit log entry {} ({}): {what}",
            custody_core::text::escape(self.document_id),
            self.action
        ))
    }

    fn require(&self, field: &str) -> Result<&'a str, Refusal> {
        text(self.entry, &[field]).ok_or_else(|| self.malformed(&format!("`{field}` is missing")))
    }
}
