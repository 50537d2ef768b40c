//! GitHub webhook deliveries, read into observations (see [`super`]).
//!
//! A delivery is one event (`X-GitHub-Event`) whose payload's `action`
//! says what happened. Most payloads carry no time of their own: a record
//! is dated when the server received it (GitHub delivers within seconds),
//! except a deploy key, dated by its `created_at`.

use serde_json::Value;

use custody_core::model::{ChangeKind, SubjectKind};
use custody_core::Timestamp;

use super::{
    actor, deploy_key_entitlement, organization_role, permissions_entitlement, qualified,
    repository_role, without_case_id, Observation, DELIVERY_HEADER, EVENT_HEADER,
};
use crate::observe::Parsed;
use crate::record_json::{at, flag, id_text, parse as parse_json, text};
use crate::{Refusal, Request};

/// Parses an authenticated delivery received at `received_at` (`None`
/// when the caller has no clock: a record that needs it is refused).
pub fn parse(
    request: &Request<'_>,
    received_at: Option<Timestamp>,
    organization: Option<&str>,
) -> Result<Parsed, Refusal> {
    let event = single_header(request, EVENT_HEADER)?;
    let delivery = single_header(request, DELIVERY_HEADER)?;
    if !is_delivery_id(delivery) {
        return Err(Refusal::Malformed(format!(
            "the {DELIVERY_HEADER} header is not a delivery GUID (hexadecimal digits and hyphens)"
        )));
    }
    if event == "ping" {
        return Ok(Parsed::default());
    }
    let payload = parse_json(request.body, "the webhook's body")?;
    if !payload.is_object() {
        return Err(Refusal::Malformed(
            "the webhook's body is not a JSON object".into(),
        ));
    }
    let payload_organization = text(&payload, &["organization", "login"]);
    if let (Some(expected), Some(found)) = (organization, payload_organization) {
        if !expected.eq_ignore_ascii_case(found) {
            return Ok(skipped());
        }
    }
    let organization = payload_organization.or(organization);
    let Some(action) = text(&payload, &["action"]) else {
        return Ok(skipped());
    };
    let read = Delivery {
        event,
        action,
        delivery,
        payload: &payload,
        organization,
        received_at,
        raw: request.body,
    };
    let observation = match (event, action) {
        ("membership", "added" | "removed") => read.team_membership()?,
        ("organization", "member_added" | "member_removed" | "member_invited") => {
            read.organization_membership()?
        }
        ("member", "added" | "edited" | "removed") => read.collaborator()?,
        ("team", "added_to_repository" | "removed_from_repository" | "edited") => {
            read.team_repository()?
        }
        ("deploy_key", "created" | "deleted") => read.deploy_key()?,
        ("personal_access_token_request", "approved") => read.token_request()?,
        _ => None,
    };
    Ok(match observation {
        Some(observation) => Parsed {
            observations: vec![observation.build()?],
            skipped: 0,
        },
        None => skipped(),
    })
}

fn skipped() -> Parsed {
    Parsed {
        observations: Vec::new(),
        skipped: 1,
    }
}

fn single_header<'a>(request: &Request<'a>, name: &str) -> Result<&'a str, Refusal> {
    if request.headers.repeated(name) {
        return Err(Refusal::Malformed(format!(
            "the {name} header is sent more than once"
        )));
    }
    request
        .headers
        .get(name)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            Refusal::Malformed(format!(
                "the {name} header is missing; GitHub sends it with every delivery"
            ))
        })
}

/// A GUID as GitHub sends it: hexadecimal digits and hyphens, 1 to 64.
fn is_delivery_id(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|byte| byte.is_ascii_hexdigit() || byte == b'-')
}

/// What a delivery changed.
struct Seen {
    subject: (SubjectKind, String),
    kind: ChangeKind,
    entitlement: String,
    resource: String,
    hints: Vec<String>,
}

struct Delivery<'a> {
    event: &'a str,
    action: &'a str,
    delivery: &'a str,
    payload: &'a Value,
    organization: Option<&'a str>,
    received_at: Option<Timestamp>,
    raw: &'a [u8],
}

impl<'a> Delivery<'a> {
    fn record(&self) -> String {
        format!("{} ({}.{})", self.delivery, self.event, self.action)
    }

    fn malformed(&self, what: &str) -> Refusal {
        Refusal::Malformed(format!(
            "delivery {}: {what}",
            custody_core::text::escape(&self.record())
        ))
    }

    fn require(&self, path: &[&str]) -> Result<&'a str, Refusal> {
        text(self.payload, path)
            .ok_or_else(|| self.malformed(&format!("`{}` is missing", path.join("."))))
    }

    fn received_at(&self) -> Result<Timestamp, Refusal> {
        self.received_at.ok_or_else(|| {
            self.malformed("the payload carries no time, and no time of receipt was given")
        })
    }

    fn sender(&self) -> Result<custody_core::observation::ObservedActor, Refusal> {
        let login = self.require(&["sender", "login"])?;
        let bot = text(self.payload, &["sender", "type"]) == Some("Bot");
        Ok(actor(login, bot))
    }

    fn observation(
        &self,
        external_id: String,
        occurred_at: Timestamp,
        change: Seen,
    ) -> Result<Option<Observation<'a>>, Refusal> {
        Ok(Some(Observation {
            external_id,
            action: format!("{}.{}", self.event, self.action),
            occurred_at,
            actor: self.sender()?,
            subject: change.subject,
            kind: change.kind,
            entitlement: change.entitlement,
            resource: Some(change.resource),
            hints: change.hints,
            raw: self.raw,
        }))
    }

    fn grant_or_revoke(&self, grant: &[&str]) -> ChangeKind {
        if grant.contains(&self.action) {
            ChangeKind::Grant
        } else {
            ChangeKind::Revoke
        }
    }

    /// `membership`: a user added to or removed from a team.
    fn team_membership(&self) -> Result<Option<Observation<'a>>, Refusal> {
        if text(self.payload, &["scope"]).is_some_and(|scope| scope != "team") {
            return Ok(None);
        }
        let member = self.require(&["member", "login"])?;
        let team = self.require(&["team", "slug"])?;
        self.observation(
            self.delivery.to_string(),
            self.received_at()?,
            Seen {
                subject: (SubjectKind::User, member.to_string()),
                kind: self.grant_or_revoke(&["added"]),
                entitlement: "member".to_string(),
                resource: format!("team:{}", qualified(self.organization, team)),
                hints: Vec::new(),
            },
        )
    }

    /// `organization`: a member added, removed or invited, with its role.
    fn organization_membership(&self) -> Result<Option<Observation<'a>>, Refusal> {
        let Some(organization) = self.organization else {
            return Err(self.malformed("`organization.login` is missing"));
        };
        let (subject, role) = if self.action == "member_invited" {
            let invitee = text(self.payload, &["invitation", "login"])
                .or_else(|| text(self.payload, &["user", "login"]))
                .or_else(|| text(self.payload, &["invitation", "email"]))
                .ok_or_else(|| {
                    self.malformed("the invitation names neither a login nor an email")
                })?;
            (invitee, text(self.payload, &["invitation", "role"]))
        } else {
            (
                self.require(&["membership", "user", "login"])?,
                text(self.payload, &["membership", "role"]),
            )
        };
        self.observation(
            self.delivery.to_string(),
            self.received_at()?,
            Seen {
                subject: (SubjectKind::User, subject.to_string()),
                kind: self.grant_or_revoke(&["member_added", "member_invited"]),
                entitlement: organization_role(role.unwrap_or("member")),
                resource: format!("org:{organization}"),
                hints: Vec::new(),
            },
        )
    }

    /// `member`: a repository collaborator added, their role edited, or
    /// removed.
    fn collaborator(&self) -> Result<Option<Observation<'a>>, Refusal> {
        let member = self.require(&["member", "login"])?;
        let repository = self.require(&["repository", "full_name"])?;
        let role = text(self.payload, &["changes", "permission", "to"])
            .or_else(|| text(self.payload, &["changes", "role_name", "to"]))
            .or_else(|| {
                (self.action == "removed")
                    .then(|| text(self.payload, &["changes", "old_permission", "from"]))
                    .flatten()
            })
            .map_or_else(|| "collaborator".to_string(), repository_role);
        self.observation(
            self.delivery.to_string(),
            self.received_at()?,
            Seen {
                subject: (SubjectKind::User, member.to_string()),
                kind: self.grant_or_revoke(&["added", "edited"]),
                entitlement: role,
                resource: format!("repo:{repository}"),
                hints: Vec::new(),
            },
        )
    }

    /// `team`: a team added to or removed from a repository, or its role
    /// there edited (its role is the highest of the repository's
    /// `permissions` flags).
    fn team_repository(&self) -> Result<Option<Observation<'a>>, Refusal> {
        if self.action == "edited"
            && at(self.payload, &["changes", "repository", "permissions"]).is_none()
        {
            // An edit of the team itself (its name, its privacy).
            return Ok(None);
        }
        let team = self.require(&["team", "slug"])?;
        let repository = self.require(&["repository", "full_name"])?;
        let role = ["admin", "maintain", "push", "triage", "pull"]
            .into_iter()
            .find(|role| flag(self.payload, &["repository", "permissions", role]) == Some(true))
            .map_or_else(|| "collaborator".to_string(), repository_role);
        self.observation(
            self.delivery.to_string(),
            self.received_at()?,
            Seen {
                subject: (SubjectKind::Group, qualified(self.organization, team)),
                kind: self.grant_or_revoke(&["added_to_repository", "edited"]),
                entitlement: role,
                resource: format!("repo:{repository}"),
                hints: Vec::new(),
            },
        )
    }

    /// `deploy_key`: a deploy key created or deleted; named by its
    /// repository and key ID, which no redelivery or replay changes.
    fn deploy_key(&self) -> Result<Option<Observation<'a>>, Refusal> {
        let repository = self.require(&["repository", "full_name"])?;
        let repository_id = id_text(self.payload, &["repository", "id"])
            .ok_or_else(|| self.malformed("`repository.id` is missing"))?;
        let key_id = id_text(self.payload, &["key", "id"])
            .ok_or_else(|| self.malformed("`key.id` is missing"))?;
        let title = self.require(&["key", "title"])?;
        let read_only = flag(self.payload, &["key", "read_only"]).unwrap_or(false);
        let occurred_at = match (self.action, text(self.payload, &["key", "created_at"])) {
            ("created", Some(created_at)) => Timestamp::parse(created_at)
                .map_err(|error| self.malformed(&format!("`key.created_at`: {error}")))?,
            _ => self.received_at()?,
        };
        let kind = if self.action == "created" {
            ChangeKind::Create
        } else {
            ChangeKind::Delete
        };
        self.observation(
            format!("deploy_key.{}:{repository_id}:{key_id}", self.action),
            occurred_at,
            Seen {
                subject: (
                    SubjectKind::ApiKey,
                    format!("{repository}/{}", without_case_id(title)),
                ),
                kind,
                entitlement: deploy_key_entitlement(read_only).to_string(),
                resource: format!("repo:{repository}"),
                hints: vec![title.to_string()],
            },
        )
    }

    /// `personal_access_token_request` approved: the token may now act on
    /// the organization with the permissions it holds.
    fn token_request(&self) -> Result<Option<Observation<'a>>, Refusal> {
        let Some(organization) = self.organization else {
            return Err(self.malformed("`organization.login` is missing"));
        };
        let request = &self.payload["personal_access_token_request"];
        let request_id = id_text(request, &["id"])
            .ok_or_else(|| self.malformed("`personal_access_token_request.id` is missing"))?;
        let owner = text(request, &["owner", "login"]).ok_or_else(|| {
            self.malformed("`personal_access_token_request.owner.login` is missing")
        })?;
        let token_id = id_text(request, &["token_id"])
            .ok_or_else(|| self.malformed("`personal_access_token_request.token_id` is missing"))?;
        let entitlement = permissions_entitlement(request.get("permissions_result"))
            .or_else(|| permissions_entitlement(request.get("permissions_added")))
            .unwrap_or_else(|| "access".to_string());
        let hints = text(request, &["token_name"])
            .map(str::to_string)
            .into_iter()
            .collect();
        self.observation(
            format!("personal_access_token_request.{}:{request_id}", self.action),
            self.received_at()?,
            Seen {
                subject: (SubjectKind::Token, format!("{owner}/pat-{token_id}")),
                kind: ChangeKind::Grant,
                entitlement,
                resource: format!("org:{organization}"),
                hints,
            },
        )
    }
}
